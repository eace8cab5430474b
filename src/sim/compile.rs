//! A scenario compiled into the RAM models' layout: its regions become address-ordered model
//! regions (a slice per vCPU, or a hot and a cold set) and their workloads become writers.

use super::model::{Access, Layout, ModelRegion, Phase, Target, Writer};
use crate::scenario::calibrate::{ProfileAccess, ThrottleCurve};
use crate::scenario::{Pattern, RegionSpec, Scenario, PAGE_SIZE_BYTES};

/// The memory layout and writers the RAM models run for `scenario`.
pub fn layout(scenario: &Scenario) -> Layout {
    let page = PAGE_SIZE_BYTES;
    let mut regions = Vec::new();
    let mut writers = Vec::new();
    let mut cursor = 0;
    let zero_gap = |regions: &mut Vec<ModelRegion>, from: u64, to: u64| {
        if to > from {
            regions.push(ModelRegion {
                start_pfn: from,
                pages: to - from,
                filled: 0.0,
            });
        }
    };
    for r in &scenario.regions {
        let start = r.offset_bytes / page;
        let pages = r.size_bytes / page;
        zero_gap(&mut regions, cursor, start);
        cursor = start + pages;
        let cpu_share = r.cpu_bound_pct / 100.0;
        let phases: Vec<Phase> = r
            .phases
            .iter()
            .map(|p| Phase {
                start_s: p.start_s,
                rate_scale: p.rate_pct / 100.0,
            })
            .collect();
        let writer = |name: String, access, targets, slices: f64, vcpus| Writer {
            name,
            access,
            targets,
            cpu_rate_pages_s: r.write_rate_pages_s * cpu_share / slices,
            dma_rate_pages_s: r.write_rate_pages_s * (1.0 - cpu_share) / slices,
            vcpus,
            phases: phases.clone(),
            curve: None,
        };
        match &r.pattern {
            Pattern::Static => regions.push(ModelRegion {
                start_pfn: start,
                pages,
                filled: r.filled_pct / 100.0,
            }),
            Pattern::Profile { access, curve, .. } => {
                let mut w = profile_writer(r, start, pages, access, curve, &mut regions);
                w.vcpus = profile_vcpus(scenario, r);
                writers.push(w);
            }
            Pattern::Sequential => {
                let slices = u64::from(r.vcpus.max(1));
                let per = pages / slices;
                for k in 0..slices {
                    let len = if k + 1 == slices {
                        pages - per * k
                    } else {
                        per
                    };
                    let idx = regions.len();
                    regions.push(ModelRegion {
                        start_pfn: start + per * k,
                        pages: len,
                        filled: r.filled_pct / 100.0,
                    });
                    let name = if slices > 1 {
                        format!("{}[{k}]", r.name)
                    } else {
                        r.name.clone()
                    };
                    let vcpus = u32::from(r.vcpus > 0);
                    writers.push(writer(
                        name,
                        Access::Sequential,
                        vec![Target {
                            region: idx,
                            share: 1.0,
                        }],
                        slices as f64,
                        vcpus,
                    ));
                }
            }
            Pattern::Random => {
                let idx = regions.len();
                regions.push(ModelRegion {
                    start_pfn: start,
                    pages,
                    filled: r.filled_pct / 100.0,
                });
                writers.push(writer(
                    r.name.clone(),
                    Access::Random,
                    vec![Target {
                        region: idx,
                        share: 1.0,
                    }],
                    1.0,
                    r.vcpus,
                ));
            }
            Pattern::Hotcold {
                hot_bytes,
                hot_writes_pct,
            } => {
                let hot = hot_bytes / page;
                let idx = regions.len();
                regions.push(ModelRegion {
                    start_pfn: start,
                    pages: hot,
                    filled: r.filled_pct / 100.0,
                });
                regions.push(ModelRegion {
                    start_pfn: start + hot,
                    pages: pages - hot,
                    filled: r.filled_pct / 100.0,
                });
                let h = hot_writes_pct / 100.0;
                let mut targets = vec![Target {
                    region: idx,
                    share: h,
                }];
                if h < 1.0 {
                    targets.push(Target {
                        region: idx + 1,
                        share: 1.0 - h,
                    });
                }
                if h == 0.0 {
                    targets.remove(0);
                }
                writers.push(writer(
                    r.name.clone(),
                    Access::Random,
                    targets,
                    1.0,
                    r.vcpus,
                ));
            }
        }
    }
    zero_gap(&mut regions, cursor, scenario.total_pages());
    Layout {
        page_size_bytes: page,
        regions,
        writers,
        vcpus: scenario.guest.vcpus,
        fault_ns: scenario.host.dirty_fault_us * 1e3,
    }
}

/// How many vCPUs a profile region's writes come from: its `vcpus` if given, else the vCPUs
/// no other region's workload uses (a profile measures the whole guest, every vCPU running),
/// split between the profile regions without `vcpus`, the first ones taking any remainder.
/// Their dirty rings fill with the region's writes, so dirty-limit slows them as QEMU would.
fn profile_vcpus(scenario: &Scenario, r: &RegionSpec) -> u32 {
    if r.vcpus > 0 {
        return r.vcpus;
    }
    let unset = |o: &&RegionSpec| matches!(o.pattern, Pattern::Profile { .. }) && o.vcpus == 0;
    let given: u32 = scenario.regions.iter().map(|o| o.vcpus).sum();
    let free = scenario.guest.vcpus.saturating_sub(given);
    let sharing = scenario.regions.iter().filter(unset).count() as u32;
    let rank = scenario
        .regions
        .iter()
        .filter(unset)
        .position(|o| std::ptr::eq(o, r))
        .unwrap_or(0) as u32;
    free / sharing.max(1) + u32::from(rank < free % sharing.max(1))
}

/// The model regions (one, or hot and cold) and the calibrated writer of a profile region of
/// `pages` pages at frame `start`; the regions are appended to `regions`.
fn profile_writer(
    r: &RegionSpec,
    start: u64,
    pages: u64,
    access: &ProfileAccess,
    curve: &ThrottleCurve,
    regions: &mut Vec<ModelRegion>,
) -> Writer {
    let idx = regions.len();
    let (access, targets) = match *access {
        ProfileAccess::Hotcold {
            hot_pages,
            hot_writes_pct,
        } => {
            regions.push(ModelRegion {
                start_pfn: start,
                pages: hot_pages,
                filled: r.filled_pct / 100.0,
            });
            regions.push(ModelRegion {
                start_pfn: start + hot_pages,
                pages: pages - hot_pages,
                filled: r.filled_pct / 100.0,
            });
            let h = hot_writes_pct / 100.0;
            let targets = [(idx, h), (idx + 1, 1.0 - h)]
                .into_iter()
                .filter(|(_, share)| *share > 0.0)
                .map(|(region, share)| Target { region, share })
                .collect();
            (Access::Random, targets)
        }
        other => {
            regions.push(ModelRegion {
                start_pfn: start,
                pages,
                filled: r.filled_pct / 100.0,
            });
            let access = if other == ProfileAccess::Sequential {
                Access::Sequential
            } else {
                Access::Random
            };
            (
                access,
                vec![Target {
                    region: idx,
                    share: 1.0,
                }],
            )
        }
    };
    Writer {
        name: r.name.clone(),
        access,
        targets,
        // Its rate is the curve's at the throttle in force; no CPU budget, no fault cost on
        // top of what the measurement already holds.
        cpu_rate_pages_s: 0.0,
        dma_rate_pages_s: 0.0,
        vcpus: 0,
        phases: r
            .phases
            .iter()
            .map(|p| Phase {
                start_s: p.start_s,
                rate_scale: p.rate_pct / 100.0,
            })
            .collect(),
        curve: Some(curve.clone()),
    }
}
