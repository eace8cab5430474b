//! The page-exact RAM model: a real migration bitmap ([`DirtyBitmap`], the one the KVM backend
//! uses), a real dirty log, and every newly written page chosen by the seeded generator.
//!
//! It does not simulate each write: between two writes to a page not yet in the log there are a
//! geometric number of writes to pages already in it, which change nothing but cost time, so
//! the model draws that number and jumps (exact, by memorylessness). Cost is proportional to
//! the pages written, not the writes. Meant for guests up to a few GiB; it is the yardstick
//! the aggregate model is tested against.

use super::model::{Access, Layout, RamModel, Step};
use super::rng::{SimRng, Stream};
use crate::migration::bitmap::DirtyBitmap;
use crate::migration::{PageBatch, PageCost};

/// Per-region log state.
enum RegionLog {
    Untouched,
    /// Pages advanced since the writer started, and at the last harvest.
    Sequential {
        pos: u64,
        at_sync: u64,
    },
    /// Pages of the region in a random order; the first `in_log` are in the dirty log.
    Uniform {
        order: Vec<u32>,
        in_log: u64,
    },
}

/// The page-exact model.
pub struct ExactModel {
    layout: Layout,
    bitmap: DirtyBitmap,
    log: Vec<u64>,
    logs: Vec<RegionLog>,
    rngs: Vec<SimRng>,
    /// vCPU time and DMA writes carried between steps (less than one write each).
    cpu_carry_ns: Vec<f64>,
    dma_carry: Vec<f64>,
    /// Each writer's share of its vCPUs' running time left by a dirty limit (1 = none).
    run_share: Vec<f64>,
    /// Each writer's CPU writes since the start (what its vCPUs' dirty rings see).
    cpu_written: Vec<f64>,
    logging: bool,
    /// One bit per page: holds data (else a zero page, sent as a header).
    data: Vec<u64>,
    /// Some written region still has zero pages: writes must pick pages even with logging off
    /// (a warm-up), to know which become data.
    track_fill: bool,
}

fn set_log_range(log: &mut [u64], a: u64, b: u64) {
    let mut p = a;
    while p < b {
        let w = (p / 64) as usize;
        let bit = p % 64;
        let n = (64 - bit).min(b - p);
        let mask = if n == 64 {
            u64::MAX
        } else {
            ((1u64 << n) - 1) << bit
        };
        log[w] |= mask;
        p += n;
    }
}

impl ExactModel {
    /// A model of `layout`, its page choices drawn from `seed`.
    pub fn new(layout: Layout, seed: u64) -> Self {
        let pages = layout.total_pages();
        let mut logs: Vec<RegionLog> = layout
            .regions
            .iter()
            .map(|_| RegionLog::Untouched)
            .collect();
        for w in &layout.writers {
            for t in &w.targets {
                let n = layout.regions[t.region].pages;
                logs[t.region] = match w.access {
                    Access::Sequential => RegionLog::Sequential { pos: 0, at_sync: 0 },
                    Access::Random => RegionLog::Uniform {
                        order: (0..n as u32).collect(),
                        in_log: 0,
                    },
                };
            }
        }
        let rngs = (0..layout.regions.len())
            .map(|i| SimRng::new(seed, Stream::ExactRegion(i as u32)))
            .collect();
        let writers = layout.writers.len();
        let mut data = vec![0u64; pages.div_ceil(64) as usize];
        for (i, r) in layout.regions.iter().enumerate() {
            let filled = r.filled.clamp(0.0, 1.0);
            if filled >= 1.0 {
                set_log_range(&mut data, r.start_pfn, r.start_pfn + r.pages);
            } else if filled > 0.0 {
                // Which pages hold data at boot: drawn from the region's own stream.
                let mut rng = SimRng::new(seed, Stream::ExactFill(i as u32));
                for pfn in r.start_pfn..r.start_pfn + r.pages {
                    if rng.f64() < filled {
                        data[(pfn / 64) as usize] |= 1 << (pfn % 64);
                    }
                }
            }
        }
        let track_fill = layout.writers.iter().any(|w| {
            w.targets
                .iter()
                .any(|t| layout.regions[t.region].filled < 1.0)
        });
        Self {
            bitmap: DirtyBitmap::new(pages),
            log: vec![0; pages.div_ceil(64) as usize],
            logs,
            rngs,
            cpu_carry_ns: vec![0.0; writers],
            dma_carry: vec![0.0; writers],
            run_share: vec![1.0; writers],
            cpu_written: vec![0.0; writers],
            logging: false,
            data,
            track_fill,
            layout,
        }
    }

    fn region_of(&self, pfn: u64) -> usize {
        self.layout
            .regions
            .partition_point(|r| r.start_pfn <= pfn)
            .saturating_sub(1)
    }

    /// Sequential writer: advance `n` pages, logging them.
    fn advance_sequential(&mut self, region: usize, n: u64) {
        let r = &self.layout.regions[region];
        let (start, pages) = (r.start_pfn, r.pages);
        if let RegionLog::Sequential { pos, .. } = &mut self.logs[region] {
            if n > 0 {
                let from = *pos % pages;
                let ranges = if n >= pages {
                    [(start, start + pages), (0, 0)]
                } else if from + n <= pages {
                    [(start + from, start + from + n), (0, 0)]
                } else {
                    [
                        (start + from, start + pages),
                        (start, start + (from + n - pages)),
                    ]
                };
                for (a, b) in ranges {
                    set_log_range(&mut self.data, a, b);
                    if self.logging {
                        set_log_range(&mut self.log, a, b);
                    }
                }
            }
            *pos += n;
        }
    }

    /// Uniform writers: probability that the next write hits a page not in the log.
    fn new_page_probability(&self, writer: usize) -> f64 {
        self.layout.writers[writer]
            .targets
            .iter()
            .map(|t| match &self.logs[t.region] {
                RegionLog::Uniform { order, in_log } => {
                    let n = order.len() as f64;
                    t.share * (n - *in_log as f64) / n
                }
                _ => 0.0,
            })
            .sum()
    }

    /// One write to a page not yet in the log, target chosen by weight.
    fn write_new_uniform_page(&mut self, writer: usize, p_new: f64, rng_region: usize) {
        let w = &self.layout.writers[writer];
        let mut pick = self.rngs[rng_region].f64() * p_new;
        let mut chosen = w.targets.len() - 1;
        for (k, t) in w.targets.iter().enumerate() {
            let weight = match &self.logs[t.region] {
                RegionLog::Uniform { order, in_log } => {
                    t.share * (order.len() as f64 - *in_log as f64) / order.len() as f64
                }
                _ => 0.0,
            };
            if pick < weight && weight > 0.0 {
                chosen = k;
                break;
            }
            pick -= weight;
        }
        let region = w.targets[chosen].region;
        let start = self.layout.regions[region].start_pfn;
        let rng = &mut self.rngs[region];
        if let RegionLog::Uniform { order, in_log } = &mut self.logs[region] {
            let n = order.len() as u64;
            if *in_log >= n {
                return;
            }
            let j = *in_log + rng.below(n - *in_log);
            order.swap(*in_log as usize, j as usize);
            let page = u64::from(order[*in_log as usize]);
            *in_log += 1;
            let pfn = start + page;
            self.log[(pfn / 64) as usize] |= 1 << (pfn % 64);
            self.data[(pfn / 64) as usize] |= 1 << (pfn % 64);
        }
    }

    fn run_sequential(&mut self, wi: usize, step: &Step, fault_ns: f64) -> f64 {
        let w = &self.layout.writers[wi];
        let region = w.targets[0].region;
        let pages = self.layout.regions[region].pages;
        let scale = w.rate_scale_at(step.t_s);
        let (cpu_rate, vcpus) = (w.cpu_rate_pages_s * scale, f64::from(w.vcpus));
        let dma_exact = w.dma_rate_at(step.throttle_pct, self.run_share[wi]) * scale * step.wall_ns
            / 1e9
            + self.dma_carry[wi];
        let dma = dma_exact.floor() as u64;
        self.dma_carry[wi] = dma_exact - dma as f64;
        if w.is_calibrated() {
            // A calibrated writer's curve writes are its vCPUs' writes: they fill the rings.
            self.cpu_written[wi] += dma as f64;
        }
        self.advance_sequential(region, dma);
        if cpu_rate <= 0.0 || vcpus == 0.0 {
            return dma as f64;
        }
        let write_ns = vcpus * 1e9 / cpu_rate;
        let mut budget = step.cpu_ns_per_vcpu * vcpus * self.run_share[wi] + self.cpu_carry_ns[wi];
        let since = match self.logs[region] {
            RegionLog::Sequential { pos, at_sync } => pos - at_sync,
            _ => 0,
        };
        let unfaulted = if step.logging {
            pages.saturating_sub(since)
        } else {
            0
        };
        let faulting = ((budget / (write_ns + fault_ns)).floor() as u64).min(unfaulted);
        budget -= faulting as f64 * (write_ns + fault_ns);
        let mut writes = faulting;
        if faulting == unfaulted {
            let more = (budget / write_ns).floor() as u64;
            budget -= more as f64 * write_ns;
            writes += more;
        }
        self.cpu_carry_ns[wi] = budget.max(0.0);
        self.cpu_written[wi] += writes as f64;
        self.advance_sequential(region, writes);
        (writes + dma) as f64
    }

    fn run_uniform(&mut self, wi: usize, step: &Step, fault_ns: f64) -> f64 {
        let w = &self.layout.writers[wi];
        let rng_region = w.targets[0].region;
        let scale = w.rate_scale_at(step.t_s);
        let (cpu_rate, vcpus) = (w.cpu_rate_pages_s * scale, f64::from(w.vcpus));
        let dma_exact = w.dma_rate_at(step.throttle_pct, self.run_share[wi]) * scale * step.wall_ns
            / 1e9
            + self.dma_carry[wi];
        let mut dma = dma_exact.floor() as u64;
        self.dma_carry[wi] = dma_exact - dma as f64;
        if w.is_calibrated() {
            self.cpu_written[wi] += dma as f64;
        }
        let mut written = dma as f64;
        // Without logging nothing is harvested, so page choices only matter for which zero
        // pages become data.
        let track = step.logging || self.track_fill;
        // DMA writes: free, never fault.
        while track && dma > 0 {
            let p = self.new_page_probability(wi);
            if p <= 0.0 {
                break;
            }
            let k = self.rngs[rng_region].geometric(p);
            if k > dma {
                break; // the rest hit pages already logged (memoryless: redraw next step)
            }
            dma -= k;
            self.write_new_uniform_page(wi, p, rng_region);
        }
        if cpu_rate <= 0.0 || vcpus == 0.0 {
            return written;
        }
        let dma_written = written;
        let write_ns = vcpus * 1e9 / cpu_rate;
        let mut budget = step.cpu_ns_per_vcpu * vcpus * self.run_share[wi] + self.cpu_carry_ns[wi];
        if !track {
            let n = (budget / write_ns).floor();
            self.cpu_carry_ns[wi] = budget - n * write_ns;
            self.cpu_written[wi] += n;
            return written + n;
        }
        loop {
            let p = self.new_page_probability(wi);
            if p <= 0.0 {
                let n = (budget / write_ns).floor();
                budget -= n * write_ns;
                written += n;
                break;
            }
            let k = self.rngs[rng_region].geometric(p);
            let cost = k as f64 * write_ns + fault_ns;
            if cost > budget {
                // Time runs out among the repeat writes before the next new page.
                let n = ((budget / write_ns).floor()).min((k - 1) as f64);
                written += n;
                budget = 0.0;
                break;
            }
            budget -= cost;
            written += k as f64;
            self.write_new_uniform_page(wi, p, rng_region);
        }
        self.cpu_carry_ns[wi] = budget;
        self.cpu_written[wi] += written - dma_written;
        written
    }
}

impl RamModel for ExactModel {
    fn start_logging(&mut self) {
        self.bitmap.set_all();
        self.log.fill(0);
        for l in &mut self.logs {
            match l {
                RegionLog::Untouched => {}
                RegionLog::Sequential { pos, at_sync } => *at_sync = *pos,
                RegionLog::Uniform { in_log, .. } => *in_log = 0,
            }
        }
        self.logging = true;
    }

    fn stop_logging(&mut self) {
        self.logging = false;
    }

    fn sync(&mut self) -> u64 {
        if !self.logging {
            return 0;
        }
        let newly = self.bitmap.or_log(0, &self.log);
        self.log.fill(0);
        for l in &mut self.logs {
            match l {
                RegionLog::Untouched => {}
                RegionLog::Sequential { pos, at_sync } => *at_sync = *pos,
                RegionLog::Uniform { in_log, .. } => *in_log = 0,
            }
        }
        newly
    }

    fn dirty_pages(&self) -> u64 {
        self.bitmap.count()
    }

    fn take(&mut self, max_bytes: u64, cost: PageCost, batch: &mut PageBatch) {
        let mut spent = 0;
        let mut region = self.region_of(self.bitmap.cursor());
        while spent < max_bytes {
            let Some(pfn) = self.bitmap.take_next() else {
                break;
            };
            let r = &self.layout.regions[region];
            if pfn < r.start_pfn || pfn >= r.start_pfn + r.pages {
                region = self.region_of(pfn);
            }
            if self.data[(pfn / 64) as usize] & (1 << (pfn % 64)) != 0 {
                batch.normal_pages += 1;
                spent += cost.normal_page_bytes;
            } else {
                batch.zero_pages += 1;
                spent += cost.zero_page_bytes;
            }
        }
    }

    fn run_writers(&mut self, step: Step) -> f64 {
        let fault_ns = if step.logging {
            self.layout.fault_ns
        } else {
            0.0
        };
        let mut written = 0.0;
        for wi in 0..self.layout.writers.len() {
            written += match self.layout.writers[wi].access {
                Access::Sequential => self.run_sequential(wi, &step, fault_ns),
                Access::Random => self.run_uniform(wi, &step, fault_ns),
            };
        }
        written
    }

    fn set_run_shares(&mut self, shares: &[f64]) {
        self.run_share.copy_from_slice(shares);
    }

    fn cpu_writes(&self) -> &[f64] {
        &self.cpu_written
    }
}
