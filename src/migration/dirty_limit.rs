//! QEMU's per-vCPU dirty-rate limit (`system/dirtylimit.c`, used by migration's `dirty-limit`
//! capability since 8.1).
//!
//! Every `x-vcpu-dirty-limit-period` a stats thread measures each vCPU's dirty rate (MB/s, from
//! its dirty ring) and adjusts that vCPU's `throttle_us_per_full`: a sleep the vCPU serves each
//! time its dirty ring fills. Only vCPUs that write memory are slowed. Pure arithmetic, so both
//! backends replay the same controller and the tests can pin it to QEMU's numbers.

/// No adjustment while quota and current rate are this close (MB/s).
pub const DIRTYLIMIT_TOLERANCE_RANGE_MB_S: u64 = 25;
/// Above this error (% of the larger rate) the sleep is corrected in proportion; below it,
/// by a tenth of the ring-full time.
pub const DIRTYLIMIT_LINEAR_ADJUSTMENT_PCT: u64 = 50;
/// The small correction: ring-full time divided by this.
pub const DIRTYLIMIT_THROTTLE_SLIGHT_STEP_SIZE: i64 = 10;
/// The sleep per ring-full is capped at this many ring-full times.
pub const DIRTYLIMIT_THROTTLE_PCT_MAX: i64 = 99;

/// What the core asks a guest to enforce once dirty-limit's trigger fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuDirtyLimit {
    /// `vcpu-dirty-limit`: each vCPU's quota (MB/s).
    pub quota_mb_s: u64,
    /// `x-vcpu-dirty-limit-period`: measurement and adjustment period (ms).
    pub period_ms: u64,
}

/// QEMU's dirty rate of one vCPU over a period: pages to whole MiB first (truncating), then
/// per second (`do_calculate_dirtyrate`).
pub fn dirty_rate_mb_s(pages: u64, page_size_bytes: u64, period_ms: u64) -> u64 {
    let mib = pages.saturating_mul(page_size_bytes) >> 20;
    mib * 1000 / period_ms.max(1)
}

/// The controller's state for every vCPU of a guest.
#[derive(Clone, Debug)]
pub struct DirtyLimitController {
    ring_mib: u64,
    /// Highest rate ever measured on any vCPU: QEMU keeps it in a function-static and never
    /// lowers it, so the ring-full time only shrinks.
    max_dirtyrate_mb_s: u64,
    throttle_us_per_full: Vec<i64>,
    current_mb_s: Vec<u64>,
}

impl DirtyLimitController {
    /// `vcpus` vCPUs, each with a dirty ring of `ring_entries` pages of `page_size_bytes`.
    pub fn new(vcpus: usize, ring_entries: u64, page_size_bytes: u64) -> Self {
        Self {
            ring_mib: ring_entries.saturating_mul(page_size_bytes) >> 20,
            max_dirtyrate_mb_s: 0,
            throttle_us_per_full: vec![0; vcpus],
            current_mb_s: vec![0; vcpus],
        }
    }

    /// `dirtylimit_dirty_ring_full_time`: how long (us) the fastest vCPU seen fills its ring.
    /// Updates the remembered maximum rate, as QEMU does.
    pub fn ring_full_time_us(&mut self, rate_mb_s: u64) -> u64 {
        self.max_dirtyrate_mb_s = self.max_dirtyrate_mb_s.max(rate_mb_s);
        if self.max_dirtyrate_mb_s == 0 {
            // QEMU never asks with a zero rate; guard the division anyway.
            return 0;
        }
        self.ring_mib * 1_000_000 / self.max_dirtyrate_mb_s
    }

    /// One period's measurement for `vcpu` against `quota_mb_s` (`dirtylimit_adjust_throttle`).
    pub fn adjust(&mut self, vcpu: usize, quota_mb_s: u64, current_mb_s: u64) {
        self.current_mb_s[vcpu] = current_mb_s;
        if quota_mb_s.abs_diff(current_mb_s) <= DIRTYLIMIT_TOLERANCE_RANGE_MB_S {
            return;
        }
        self.set_throttle(vcpu, quota_mb_s, current_mb_s);
    }

    /// `dirtylimit_set_throttle`.
    fn set_throttle(&mut self, vcpu: usize, quota: u64, current: u64) {
        if current == 0 {
            self.throttle_us_per_full[vcpu] = 0;
            return;
        }
        let ring_full_us = self.ring_full_time_us(current) as i64;
        let sleep = &mut self.throttle_us_per_full[vcpu];
        let (lo, hi) = (quota.min(current), quota.max(current));
        if (hi - lo) * 100 / hi > DIRTYLIMIT_LINEAR_ADJUSTMENT_PCT {
            // Proportional: the share of time the vCPU should lose, as sleep per ring-full.
            let sleep_pct = (hi - lo) * 100 / hi;
            let step_us = (ring_full_us as u64 * sleep_pct) as f64 / (100 - sleep_pct) as f64;
            let step_us = step_us as u64 as i64;
            if quota < current {
                *sleep += step_us;
            } else {
                *sleep -= step_us;
            }
        } else if quota < current {
            *sleep += ring_full_us / DIRTYLIMIT_THROTTLE_SLIGHT_STEP_SIZE;
        } else {
            *sleep -= ring_full_us / DIRTYLIMIT_THROTTLE_SLIGHT_STEP_SIZE;
        }
        *sleep = (*sleep)
            .min(ring_full_us * DIRTYLIMIT_THROTTLE_PCT_MAX)
            .max(0);
    }

    /// The sleep `vcpu` serves each time its dirty ring fills (us).
    pub fn throttle_us_per_full(&self, vcpu: usize) -> u64 {
        self.throttle_us_per_full[vcpu] as u64
    }

    /// query-migrate's `dirty-limit-throttle-time-per-round`: the longest per-ring-full sleep
    /// of any vCPU (us).
    pub fn throttle_time_per_round_us(&self) -> u64 {
        self.throttle_us_per_full.iter().copied().max().unwrap_or(0) as u64
    }

    /// query-migrate's `dirty-limit-ring-full-time`: the ring-full time at the vCPUs' average
    /// measured rate (us); 0 when the guest dirties nothing. (QEMU's query also raises the
    /// remembered maximum; here a report never changes the run.)
    pub fn ring_full_time_avg_us(&self) -> u64 {
        let n = self.current_mb_s.len() as u64;
        let sum: u64 = self.current_mb_s.iter().sum();
        let max = self.max_dirtyrate_mb_s.max(sum / n.max(1));
        if sum == 0 || n == 0 || max == 0 {
            return 0;
        }
        self.ring_mib * 1_000_000 / max
    }

    /// Share of wall time a vCPU runs when it fills its ring in `fill_ns` of running time and
    /// then sleeps its `throttle_us_per_full`.
    pub fn run_share(&self, vcpu: usize, fill_ns: f64) -> f64 {
        let sleep_ns = self.throttle_us_per_full[vcpu] as f64 * 1e3;
        if sleep_ns <= 0.0 || !fill_ns.is_finite() {
            return 1.0;
        }
        fill_ns / (fill_ns + sleep_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4096-entry rings of 4 KiB pages: 16 MiB per ring.
    fn ctl(vcpus: usize) -> DirtyLimitController {
        DirtyLimitController::new(vcpus, 4096, 4096)
    }

    #[test]
    fn rate_truncates_to_whole_mib_first() {
        // 255 pages is under 1 MiB: QEMU reports 0 MB/s.
        assert_eq!(dirty_rate_mb_s(255, 4096, 1000), 0);
        assert_eq!(dirty_rate_mb_s(256 * 390 + 100, 4096, 1000), 390);
        assert_eq!(dirty_rate_mb_s(256 * 100, 4096, 500), 200);
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        let mut c = ctl(1);
        c.adjust(0, 100, 125);
        assert_eq!(c.throttle_us_per_full(0), 0);
        c.adjust(0, 1, 26);
        assert_eq!(c.throttle_us_per_full(0), 0);
    }

    #[test]
    fn linear_step_is_qemus_closed_form() {
        let mut c = ctl(1);
        // 390 MB/s against 100: error 74% > 50% -> proportional.
        // ring_full = 16 * 1e6 / 390 = 41025 us; sleep += 41025 * 74 / 26 = 116763 us.
        c.adjust(0, 100, 390);
        assert_eq!(c.throttle_us_per_full(0), 116_763);
        assert_eq!(c.throttle_time_per_round_us(), 116_763);
        // Then 130 against 100: error 23% -> small step of a tenth of the ring-full time
        // (the max rate seen stays 390, so ring_full stays 41025 us).
        c.adjust(0, 100, 130);
        assert_eq!(c.throttle_us_per_full(0), 116_763 + 4_102);
        // Below the quota by more than 50%: the sleep shrinks in proportion.
        c.adjust(0, 100, 40);
        // sleep_pct = 60; step = 41025 * 60 / 40 = 61537.
        assert_eq!(c.throttle_us_per_full(0), 116_763 + 4_102 - 61_537);
    }

    #[test]
    fn sleep_is_capped_at_99_ring_full_times_and_never_negative() {
        let mut c = ctl(1);
        // Quota 1 against 1600: sleep_pct 99 -> 99 ring-full times, the cap.
        c.adjust(0, 1, 1600);
        let ring_full = 16 * 1_000_000 / 1600;
        assert_eq!(c.throttle_us_per_full(0), 99 * ring_full);
        c.adjust(0, 1, 1600);
        assert_eq!(c.throttle_us_per_full(0), 99 * ring_full, "capped");
        let mut c = ctl(1);
        c.adjust(0, 200, 20);
        assert_eq!(c.throttle_us_per_full(0), 0, "clamped at 0");
        // A vCPU that stops dirtying loses its sleep.
        c.adjust(0, 200, 1600);
        assert!(c.throttle_us_per_full(0) > 0);
        c.adjust(0, 200, 0);
        assert_eq!(c.throttle_us_per_full(0), 0);
    }

    #[test]
    fn per_vcpu_and_query_migrate_figures() {
        let mut c = ctl(4);
        c.adjust(0, 1, 400); // the hot writer
        c.adjust(1, 1, 0);
        c.adjust(2, 1, 0);
        c.adjust(3, 1, 0);
        assert!(c.throttle_us_per_full(0) > 0);
        assert_eq!(c.throttle_us_per_full(1), 0, "idle vCPUs are not slowed");
        // Average of 400, 0, 0, 0 = 100 MB/s, but the max seen (400) sets the ring-full time.
        assert_eq!(c.ring_full_time_avg_us(), 16 * 1_000_000 / 400);
        assert_eq!(c.throttle_time_per_round_us(), c.throttle_us_per_full(0));
    }

    #[test]
    fn run_share_of_a_ring_full_cycle() {
        let mut c = ctl(1);
        c.adjust(0, 100, 390);
        // Filling 4096 pages at 100,000 pages/s takes 40.96 ms, then 116.763 ms asleep.
        let share = c.run_share(0, 40.96e6);
        assert!((share - 40.96 / (40.96 + 116.763)).abs() < 1e-12);
        // The vCPU then dirties 100,000 * share pages/s = 101 MB/s: within tolerance of 100.
        let mb_s = dirty_rate_mb_s((100_000.0 * share) as u64, 4096, 1000);
        assert_eq!(mb_s, 101);
    }
}
