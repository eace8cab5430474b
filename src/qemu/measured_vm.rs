//! A VM measured from outside (`autoconv profile --qmp`) written as a profile CSV and as a
//! scenario `autoconv sim` runs as is.
//!
//! What was measured: unthrottled, the distinct pages dirtied over several intervals, fitted to
//! U(T) = N(1 - e^(-wT/N)) ([`crate::sim::working_set_fit`]). What is modelled: the throttled
//! part. The writes are taken as CPU-bound, so a throttle of p% leaves the vCPUs (1 - p/100) of
//! their time and the write rate falls in proportion, w(p) = w(1 - p/100), still uniform over
//! the same N pages. The profile's rows are that model at QEMU's throttle levels, each the
//! dirty rate per 1 s harvest, D(p) = U(1 s; N, w(p)); the scenario describes the same guest
//! with a random region of N pages written at w by CPU-bound writers, so the simulator's own
//! throttle model (sleeps, write-protect faults) applies.

use crate::report::host::HostInfo;
use crate::report::profile::{Profile, ProfileRow};
use crate::scenario::PAGE_SIZE_BYTES;
use crate::sim::working_set_fit::{uniform_distinct_pages, IntervalSample, WorkingSetFit};
use crate::units::format_bytes;
use std::fmt::Write as _;

/// QEMU's throttle levels the modelled profile gives (the default `profile` levels).
pub const MODELLED_LEVELS_PCT: [u32; 11] = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99];

/// Harvest period of the modelled profile's rates (QEMU's dirty-pages-rate period).
pub const PROFILE_INTERVAL_MS: u64 = 1000;

/// A VM as measured.
#[derive(Clone, Debug)]
pub struct MeasuredVm {
    /// Guest RAM (bytes).
    pub memory_bytes: u64,
    /// Guest vCPUs.
    pub vcpus: u32,
    /// vCPUs seen writing (per-vCPU rates), or all of them when QEMU gave no per-vCPU rates.
    pub writing_vcpus: u32,
    /// The measured points.
    pub samples: Vec<IntervalSample>,
    /// The fit through them.
    pub fit: WorkingSetFit,
    /// What was measured, for the profile's `source` and the scenario's comments.
    pub source: String,
    /// Where.
    pub host: HostInfo,
}

impl MeasuredVm {
    /// The working set in whole pages (at least one, at most the guest's memory).
    pub fn working_set_pages(&self) -> u64 {
        let max = (self.memory_bytes / PAGE_SIZE_BYTES).max(1);
        (self.fit.working_set_pages.round() as u64).clamp(1, max)
    }

    /// The modelled write rate at throttle `pct` (page writes/s).
    pub fn write_pages_s_at(&self, pct: u32) -> f64 {
        self.fit.write_rate_pages_s * (1.0 - f64::from(pct) / 100.0)
    }

    /// The profile CSV: the model at [`MODELLED_LEVELS_PCT`].
    pub fn profile(&self) -> Profile {
        let n = self.working_set_pages() as f64;
        let t_s = PROFILE_INTERVAL_MS as f64 / 1000.0;
        Profile {
            rows: MODELLED_LEVELS_PCT
                .iter()
                .map(|&pct| {
                    let w = self.write_pages_s_at(pct);
                    ProfileRow {
                        throttle_pct: pct,
                        dirty_pages_s: uniform_distinct_pages(n, w, t_s) / t_s,
                        interval_ms: PROFILE_INTERVAL_MS,
                        dirty_pages_s_min: None,
                        dirty_pages_s_max: None,
                        guest_write_pages_s: Some(w),
                        guest_cpu_pct: Some(100.0 - f64::from(pct)),
                        hold_ms: None,
                        syncs: None,
                        page_size_bytes: Some(PAGE_SIZE_BYTES),
                        memory_bytes: Some(self.memory_bytes),
                        vcpus: Some(self.vcpus),
                        source: Some(self.source.clone()),
                        host_cpu_model: Some(self.host.cpu_model.clone()),
                        host_cores: Some(self.host.cores),
                        verdict_bandwidth_bytes_s: None,
                        verdict_throttle_trigger_threshold_pct: None,
                    }
                })
                .collect(),
        }
    }

    /// A scenario of this VM named `name`, `command` being how it was made (for its comments).
    pub fn scenario_toml(&self, name: &str, command: &str) -> String {
        let ws_pages = self.working_set_pages();
        let ws_bytes = ws_pages * PAGE_SIZE_BYTES;
        let rest_bytes =
            self.memory_bytes.saturating_sub(ws_bytes) / PAGE_SIZE_BYTES * PAGE_SIZE_BYTES;
        let f = &self.fit;
        let mut t = String::new();
        let _ = writeln!(t, "# {name}: a running VM measured over QMP, made by");
        let _ = writeln!(t, "#   {command}");
        let _ = writeln!(t, "# measured: {} on {}", self.source, self.host);
        let _ = writeln!(t, "#   calc-time   distinct pages dirtied   fitted");
        for s in &self.samples {
            let _ = writeln!(
                t,
                "#   {:>7} s   {:>22.0}   {:>6.0}",
                s.interval_s,
                s.distinct_pages,
                f.distinct_pages(s.interval_s)
            );
        }
        let _ = writeln!(
            t,
            "# fit U(T) = N(1 - e^(-wT/N)): N = {ws_pages} pages ({}), w = {:.0} page writes/s, rms {:.0} pages; the longest interval reached {:.0}% of N{}",
            format_bytes(ws_bytes),
            f.write_rate_pages_s,
            f.rms_pages,
            100.0 * f.saturation,
            if f.at_ceiling {
                " (N hit the guest's memory: the curve had not bent, so the working set is only known to be large)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            t,
            "# modelled: uniform random writes over N, all CPU-bound (a throttle of p% slows them to"
        );
        let _ = writeln!(
            t,
            "# (1 - p/100) w); the rest of memory holds data the guest does not write."
        );
        let _ = writeln!(t);
        let _ = writeln!(t, "name = {}", toml_string(name));
        let _ = writeln!(
            t,
            "description = {}",
            toml_string(&format!(
                "{} guest, {} vCPU(s), {} working set written at {:.0} pages/s (measured over QMP)",
                format_bytes(self.memory_bytes),
                self.vcpus,
                format_bytes(ws_bytes),
                f.write_rate_pages_s
            ))
        );
        let _ = writeln!(t, "seed = 1");
        let _ = writeln!(t);
        let _ = writeln!(t, "[guest]");
        let _ = writeln!(
            t,
            "memory = {:<20} # {}",
            self.memory_bytes,
            format_bytes(self.memory_bytes)
        );
        let _ = writeln!(t, "vcpus = {}", self.vcpus);
        let _ = writeln!(t);
        let _ = writeln!(t, "[[region]]");
        let _ = writeln!(t, "name = \"working-set\"");
        let _ = writeln!(t, "size = {ws_bytes:<22} # {}", format_bytes(ws_bytes));
        let _ = writeln!(t, "pattern = \"random\"");
        let _ = writeln!(
            t,
            "write_rate_pages_s = {:.0}",
            f.write_rate_pages_s.max(1.0)
        );
        let _ = writeln!(
            t,
            "vcpus = {}",
            self.writing_vcpus.clamp(1, self.vcpus.max(1))
        );
        if rest_bytes > 0 {
            let _ = writeln!(t);
            let _ = writeln!(t, "[[region]]");
            let _ = writeln!(t, "name = \"rest\"");
            let _ = writeln!(t, "size = {rest_bytes:<22} # {}", format_bytes(rest_bytes));
            let _ = writeln!(
                t,
                "pattern = \"static\"              # filled_pct = 0 if it is free (zero) memory"
            );
        }
        let _ = writeln!(t);
        let _ = writeln!(t, "[migration]");
        let _ = writeln!(t, "auto-converge = true");
        t
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ScenarioSource;
    use crate::sim::working_set_fit::fit;

    fn vm(n: f64, w: f64, memory_bytes: u64) -> MeasuredVm {
        let samples: Vec<_> = [1.0, 2.0, 4.0, 8.0]
            .iter()
            .map(|&t| IntervalSample {
                interval_s: t,
                distinct_pages: uniform_distinct_pages(n, w, t),
            })
            .collect();
        let fit = fit(&samples, (memory_bytes / 4096) as f64).unwrap();
        MeasuredVm {
            memory_bytes,
            vcpus: 2,
            writing_vcpus: 1,
            samples,
            fit,
            source: "qmp:/tmp/vm.qmp dirty-bitmap".into(),
            host: HostInfo {
                cpu_model: "Test \"CPU\"".into(),
                cores: 4,
            },
        }
    }

    #[test]
    fn the_profile_is_the_closed_form_at_each_level_and_reads_back() {
        let v = vm(16384.0, 12_000.0, 512 << 20);
        let p = v.profile();
        assert_eq!(p.rows.len(), MODELLED_LEVELS_PCT.len());
        let n = v.working_set_pages() as f64;
        assert_eq!(v.working_set_pages(), 16384);
        for r in &p.rows {
            let w = 12_000.0 * (1.0 - f64::from(r.throttle_pct) / 100.0);
            let want = n * (1.0 - (-w / n).exp());
            assert!(
                (r.dirty_pages_s - want).abs() < 1e-3 * want.max(1.0),
                "{r:?}"
            );
        }
        // Lower throttles dirty more.
        assert!(p
            .rows
            .windows(2)
            .all(|w| w[1].dirty_pages_s < w[0].dirty_pages_s));
        let mut bytes = Vec::new();
        p.write(&mut bytes).unwrap();
        let back = Profile::parse("p.csv", &String::from_utf8(bytes).unwrap()).unwrap();
        assert_eq!(back.rows.len(), p.rows.len());
        assert_eq!(back.host(), Some(v.host.clone()));
        assert!((back.unthrottled_write_pages_s().unwrap() - 12_000.0).abs() < 0.1);
    }

    #[test]
    fn the_scenario_loads_and_simulates_as_the_measured_guest() {
        let v = vm(16384.0, 12_000.0, 512 << 20);
        let text = v.scenario_toml("vm", "autoconv profile --qmp /tmp/vm.qmp");
        let s = ScenarioSource::parse("vm.toml", "vm", &text)
            .and_then(|s| s.build(&[]))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(s.guest.memory_bytes, 512 << 20);
        assert_eq!(s.guest.vcpus, 2);
        assert_eq!(s.regions.len(), 2);
        assert_eq!(s.regions[0].size_bytes, 16384 * 4096);
        assert_eq!(s.regions[1].size_bytes, (512 << 20) - 16384 * 4096);
        assert!(s.migration.params.auto_converge);
        let outcome = crate::sim::simulate(&s, 1, &mut ());
        assert!(outcome.elapsed_ms > 0);
    }

    #[test]
    fn a_working_set_as_big_as_memory_leaves_no_rest_region() {
        let v = vm(1e9, 20_000.0, 64 << 20);
        assert!(v.fit.at_ceiling);
        let text = v.scenario_toml("big", "x");
        assert!(text.contains("N hit the guest's memory"), "{text}");
        let s = ScenarioSource::parse("big.toml", "big", &text)
            .and_then(|s| s.build(&[]))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(s.regions.len(), 1);
    }
}
