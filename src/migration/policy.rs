//! Who chooses the throttle percentage when auto-converge's trigger fires (`autoconv.policy`).
//!
//! * `qemu` (default): QEMU's staircase, [`throttle_guest_down`], unchanged.
//! * `predictive` (autoconv's own, not QEMU's): fits the dirty rate the migration measured at
//!   each throttle so far against the guest's CPU share, and jumps to the lowest percentage
//!   that fit says brings the dirty rate under a fixed share of the trigger's threshold of the
//!   measured bandwidth, instead of climbing. When the trigger fires again while throttled the
//!   prediction was wrong: it climbs by at least `cpu-throttle-increment`, as QEMU would, so it
//!   reaches any percentage no later (in trigger firings) than QEMU's staircase does.
//!
//! The trigger itself (when to act) is QEMU's in both: [`super::auto_converge::AutoConverge`].

use super::auto_converge::throttle_guest_down;
use super::cpu_throttle::clamp_pct;
use super::params::{MigrationParameters, Policy};

/// Predictive aims the dirty rate at this share of the trigger's threshold
/// (`throttle-trigger-threshold` % of the bandwidth): a margin for the fit's error.
/// Fixed before any evaluation; not tuned per scenario.
pub const PREDICTIVE_TARGET_SHARE_OF_THRESHOLD: f64 = 0.8;

/// What one sync period (>= 1 s) measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeriodMeasurement {
    /// Throttle percentage in force for the whole period; `None` if it changed within it.
    pub steady_pct: Option<u32>,
    /// Bytes newly dirtied per second (QEMU's `num_dirty_pages_period` x page / period).
    pub dirty_bytes_s: f64,
    /// Bytes put on the wire per second during the period.
    pub xfer_bytes_s: f64,
}

/// The policy in force for one migration.
#[derive(Clone, Debug)]
pub enum ThrottlePolicy {
    /// QEMU's staircase.
    Qemu,
    /// autoconv's predictive policy.
    Predictive(Predictive),
}

impl ThrottlePolicy {
    /// A fresh policy of kind `policy`.
    pub fn new(policy: Policy) -> Self {
        match policy {
            Policy::Qemu => ThrottlePolicy::Qemu,
            Policy::Predictive => ThrottlePolicy::Predictive(Predictive::default()),
        }
    }

    /// Every sync period, whether or not the trigger fires.
    pub fn observe(&mut self, m: PeriodMeasurement) {
        if let ThrottlePolicy::Predictive(p) = self {
            p.observe(m);
        }
    }

    /// The trigger fired: the percentage to set (`current_pct` 0 = not throttling yet).
    pub fn next_pct(
        &mut self,
        params: &MigrationParameters,
        current_pct: u32,
        bytes_dirty_period: u64,
        bytes_dirty_threshold: u64,
    ) -> u32 {
        match self {
            ThrottlePolicy::Qemu => throttle_guest_down(
                params,
                current_pct,
                bytes_dirty_period,
                bytes_dirty_threshold,
            ),
            ThrottlePolicy::Predictive(p) => p.next_pct(params, current_pct),
        }
    }
}

/// The predictive policy's memory: the dirty rate last measured at each steady percentage and
/// the best bandwidth seen.
#[derive(Clone, Debug, Default)]
pub struct Predictive {
    /// (percentage, dirty bytes/s), one per percentage, sorted by percentage.
    points: Vec<(u32, f64)>,
    bandwidth_bytes_s: f64,
    /// Fires where the fit was used, and fires where it had to climb instead.
    pub predictions: u32,
    /// Fires that came while already throttled: the previous choice did not suffice.
    pub fallbacks: u32,
}

impl Predictive {
    /// Record a period.
    pub fn observe(&mut self, m: PeriodMeasurement) {
        self.bandwidth_bytes_s = self.bandwidth_bytes_s.max(m.xfer_bytes_s);
        let Some(pct) = m.steady_pct else { return };
        match self.points.binary_search_by_key(&pct, |p| p.0) {
            Ok(i) => self.points[i].1 = m.dirty_bytes_s,
            Err(i) => self.points.insert(i, (pct, m.dirty_bytes_s)),
        }
    }

    /// The lowest percentage the fit says brings the dirty rate to `target_bytes_s`, or
    /// `None` when the measurements say throttling does not lower it.
    pub fn predict_pct(&self, target_bytes_s: f64) -> Option<u32> {
        let share = |pct: u32| 1.0 - f64::from(pct) / 100.0;
        // dirty(s) = a + b*s, s = the guest's CPU share. One point: all CPU-bound (a = 0).
        // More: the line through the two highest percentages (the freshest, nearest ones).
        let (a, b) = match self.points.as_slice() {
            [] => return None,
            [(p, d)] => (0.0, d / share(*p).max(1e-9)),
            [.., (pa, da), (pb, db)] => {
                let (sa, sb) = (share(*pa), share(*pb));
                let b = (da - db) / (sa - sb);
                (db - b * sb, b)
            }
        };
        if b.is_nan() || b <= 0.0 || !b.is_finite() {
            return None;
        }
        let s = (target_bytes_s - a) / b;
        if s >= 1.0 {
            return Some(0);
        }
        if s <= 0.01 {
            return Some(99);
        }
        // A hair below, so a share that is exact in decimals is not rounded up by binary noise.
        Some(((1.0 - s) * 100.0 - 1e-9).ceil() as u32)
    }

    fn next_pct(&mut self, params: &MigrationParameters, current_pct: u32) -> u32 {
        let target = PREDICTIVE_TARGET_SHARE_OF_THRESHOLD
            * f64::from(params.throttle_trigger_threshold)
            / 100.0
            * self.bandwidth_bytes_s;
        let predicted = self.predict_pct(target);
        let pct = if current_pct == 0 {
            self.predictions += u32::from(predicted.is_some());
            predicted.unwrap_or(params.cpu_throttle_initial)
        } else {
            // Still too hot at the chosen throttle: climb at least as QEMU would.
            self.fallbacks += 1;
            predicted
                .unwrap_or(0)
                .max(current_pct + params.cpu_throttle_increment)
        };
        clamp_pct(pct.min(params.max_cpu_throttle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> MigrationParameters {
        MigrationParameters {
            auto_converge: true,
            ..MigrationParameters::default()
        }
    }

    fn period(pct: u32, dirty: f64, xfer: f64) -> PeriodMeasurement {
        PeriodMeasurement {
            steady_pct: Some(pct),
            dirty_bytes_s: dirty,
            xfer_bytes_s: xfer,
        }
    }

    #[test]
    fn qemu_policy_is_the_staircase() {
        let mut p = ThrottlePolicy::new(Policy::Qemu);
        let params = params();
        assert_eq!(p.next_pct(&params, 0, 10, 1), 20);
        assert_eq!(p.next_pct(&params, 20, 10, 1), 30);
        assert_eq!(p.next_pct(&params, 90, 10, 1), 99);
    }

    #[test]
    fn one_cpu_bound_measurement_jumps_to_the_closed_form() {
        // 100 MB/s dirtied unthrottled against 100 MB/s sent: target 0.8 * 50% * 100 = 40 MB/s
        // -> CPU share 0.4 -> 60%.
        let mut p = ThrottlePolicy::new(Policy::Predictive);
        p.observe(period(0, 100e6, 100e6));
        assert_eq!(p.next_pct(&params(), 0, 1, 0), 60);
    }

    #[test]
    fn two_points_separate_dma_from_cpu() {
        // dirty = 20 MB/s DMA + 80 MB/s * share: at 0% 100, at 50% 60.
        let mut pr = Predictive::default();
        pr.observe(period(0, 100e6, 100e6));
        pr.observe(period(50, 60e6, 100e6));
        // Target 40 MB/s: 20 + 80 s = 40 -> s = 0.25 -> 75%.
        assert_eq!(pr.predict_pct(40e6), Some(75));
        // Below the DMA floor nothing suffices: the highest throttle.
        assert_eq!(pr.predict_pct(10e6), Some(99));
    }

    #[test]
    fn wrong_prediction_climbs_at_least_by_the_increment() {
        let mut p = ThrottlePolicy::new(Policy::Predictive);
        let params = params();
        p.observe(period(0, 100e6, 100e6));
        assert_eq!(p.next_pct(&params, 0, 1, 0), 60);
        // At 60% the rate hardly fell (a hot set the throttle barely slows): the line through
        // (0, 100) and (60, 95) puts 40 MB/s out of reach -> 99, capped by max-cpu-throttle.
        p.observe(period(60, 95e6, 100e6));
        let mut capped = params.clone();
        capped.max_cpu_throttle = 80;
        assert_eq!(p.next_pct(&capped, 60, 1, 0), 80);
        // A fit that says the current percentage already suffices still climbs.
        let mut q = ThrottlePolicy::new(Policy::Predictive);
        q.observe(period(0, 100e6, 100e6));
        q.observe(period(60, 30e6, 100e6));
        assert_eq!(q.next_pct(&params, 60, 1, 0), 70);
    }

    #[test]
    fn no_information_falls_back_to_qemus_first_step() {
        let mut p = ThrottlePolicy::new(Policy::Predictive);
        assert_eq!(p.next_pct(&params(), 0, 1, 0), 20);
        // Periods with a change of throttle inside are not used as points.
        p.observe(PeriodMeasurement {
            steady_pct: None,
            dirty_bytes_s: 1e9,
            xfer_bytes_s: 1e8,
        });
        let ThrottlePolicy::Predictive(pr) = &p else {
            unreachable!()
        };
        assert_eq!(pr.predict_pct(1e6), None);
    }
}
