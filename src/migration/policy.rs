//! Who chooses the throttle percentage when auto-converge's trigger fires (`autoconv.policy`).
//!
//! * `qemu` (default): QEMU's staircase, [`throttle_guest_down`], unchanged.
//! * `predictive` (autoconv's own, not QEMU's): picks the percentage that its model of the
//!   guest says costs the least guest CPU over the rest of the migration, instead of climbing.
//!   When the trigger fires again while throttled the prediction was wrong: it climbs by at
//!   least `cpu-throttle-increment`, as QEMU would, so it reaches any percentage no later (in
//!   trigger firings) than QEMU's staircase does.
//!
//! The model. With the guest's dirty rate `d(s) = a + b*s` at CPU share `s = 1 - p/100` (`a`
//! the part a throttle cannot slow, e.g. DMA or wall-paced writers) and the link's bandwidth
//! `B`, the R bytes left drain in `R / (B - d(s))`, and the guest loses `p * R / (B - d(s))`
//! of CPU meanwhile. Its slope in `p` has the sign of `B - (a + b)`:
//! * the guest, unthrottled, dirties at least what the link carries: every step up loses
//!   less CPU *and* ends sooner, so the best choice is the highest allowed
//!   (`max-cpu-throttle`);
//! * it dirties less: the lowest throttle that keeps the trigger quiet (a dirty rate under
//!   [`PREDICTIVE_TARGET_SHARE_OF_THRESHOLD`] of the trigger's threshold) loses the least.
//!
//! What a sync period measures is not the write rate. QEMU counts pages *newly* dirty since
//! the last sync, and a page written twice counts once: over a period whose pass re-sent `N`
//! pages, a guest writing `w` pages/s at random leaves `U = N (1 - e^(-wT/N))` of them dirty,
//! which can never exceed `N`, i.e. the measured rate can never exceed the transfer rate. A
//! fast writer therefore *measures* just under the bandwidth; taken at face value (as the
//! first version of this policy did) it looks like a guest the link nearly keeps up with, and
//! the first jump undershoots. So each period's rate is inverted through that curve first:
//! `w = -(N/T) ln(1 - U/N)`, with `N/T` the transfer rate (the same inversion
//! `pattern = "profile"` regions use to turn a profile into a write rate).
//!
//! A profile (`autoconv.profile`), where given, is the guest's curve measured without a
//! migration (no pass caps it): the first choice is made on it, before any throttled period
//! exists; measured periods take over once the throttle has moved.
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

impl PeriodMeasurement {
    /// The write rate (bytes/s) that leaves the measured newly-dirty rate over a period
    /// whose passes re-sent `xfer_bytes_s` worth of pages: `-x ln(1 - d/x)`; infinite when
    /// the guest re-dirtied everything sent (the measurement only bounds it from below).
    pub fn write_bytes_s(&self) -> f64 {
        let (d, x) = (self.dirty_bytes_s, self.xfer_bytes_s);
        if x <= 0.0 {
            return d;
        }
        if d >= x {
            return f64::INFINITY;
        }
        -x * (1.0 - d / x).ln()
    }
}

/// A guest's throttle-vs-dirty-rate curve from a profile: (percentage, dirty bytes/s),
/// measured with the throttle held and no migration running.
pub type ProfileCurve = Vec<(u32, f64)>;

/// The policy in force for one migration.
#[derive(Clone, Debug)]
pub enum ThrottlePolicy {
    /// QEMU's staircase.
    Qemu,
    /// autoconv's predictive policy.
    Predictive(Predictive),
}

impl ThrottlePolicy {
    /// A fresh policy of kind `policy`; `profile` is the guest's curve where one is given.
    pub fn new(policy: Policy, profile: Option<&ProfileCurve>) -> Self {
        match policy {
            Policy::Qemu => ThrottlePolicy::Qemu,
            Policy::Predictive => ThrottlePolicy::Predictive(Predictive::with_profile(
                profile.cloned().unwrap_or_default(),
            )),
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

/// What the model chose, before `max-cpu-throttle` and the fall-back rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The guest out-dirties the link: the highest throttle allowed.
    Highest,
    /// The lowest percentage that brings the dirty rate to the target.
    Pct(u32),
}

/// The predictive policy's memory: the write rate last estimated at each steady percentage,
/// the best bandwidth seen, and the profile if one was given.
#[derive(Clone, Debug, Default)]
pub struct Predictive {
    /// (percentage, write bytes/s), one per percentage, sorted by percentage.
    points: Vec<(u32, f64)>,
    bandwidth_bytes_s: f64,
    /// The profile's curve, sorted by percentage; empty without one.
    profile: ProfileCurve,
    /// Fires where the model was used, and fires where it had to climb instead.
    pub predictions: u32,
    /// Fires that came while already throttled: the previous choice did not suffice.
    pub fallbacks: u32,
}

impl Predictive {
    /// A policy that makes its first choice on `profile` (empty: on the measurements).
    pub fn with_profile(mut profile: ProfileCurve) -> Self {
        profile.sort_by_key(|p| p.0);
        profile.dedup_by_key(|p| p.0);
        Self {
            profile,
            ..Self::default()
        }
    }

    /// Record a period.
    pub fn observe(&mut self, m: PeriodMeasurement) {
        self.bandwidth_bytes_s = self.bandwidth_bytes_s.max(m.xfer_bytes_s);
        let Some(pct) = m.steady_pct else { return };
        let w = m.write_bytes_s();
        match self.points.binary_search_by_key(&pct, |p| p.0) {
            Ok(i) => self.points[i].1 = w,
            Err(i) => self.points.insert(i, (pct, w)),
        }
    }

    /// The model's choice for a dirty-rate target of `target_bytes_s` against the link's
    /// `bandwidth_bytes_s`, from the measured points, or `None` when they say throttling does
    /// not lower the rate (or there are none).
    pub fn choose(&self, target_bytes_s: f64, bandwidth_bytes_s: f64) -> Option<Choice> {
        if bandwidth_bytes_s <= 0.0 {
            return None;
        }
        let share = |pct: u32| 1.0 - f64::from(pct) / 100.0;
        // dirty(s) = a + b*s, s = the guest's CPU share. One point: all CPU-bound (a = 0).
        // More: the line through the two highest percentages (the freshest, nearest ones).
        let (a, b) = match self.points.as_slice() {
            [] => return None,
            [(_, d)] if d.is_infinite() => return Some(Choice::Highest),
            [(p, d)] => (0.0, d / share(*p).max(1e-9)),
            [.., (_, da), (_, db)] if da.is_infinite() || db.is_infinite() => {
                return Some(Choice::Highest)
            }
            [.., (pa, da), (pb, db)] => {
                let (sa, sb) = (share(*pa), share(*pb));
                let b = (da - db) / (sa - sb);
                (db - b * sb, b)
            }
        };
        if b.is_nan() || b <= 0.0 || !b.is_finite() {
            return None;
        }
        if a + b >= bandwidth_bytes_s {
            return Some(Choice::Highest);
        }
        let s = (target_bytes_s - a) / b;
        Some(Choice::Pct(if s >= 1.0 {
            0
        } else if s <= 0.01 {
            99
        } else {
            // A hair below, so a share that is exact in decimals is not rounded up by binary
            // noise.
            ((1.0 - s) * 100.0 - 1e-9).ceil() as u32
        }))
    }

    /// The same choice read off the profile's curve (linear between its rows), or `None`
    /// without a profile.
    pub fn choose_on_profile(&self, target_bytes_s: f64, bandwidth_bytes_s: f64) -> Option<Choice> {
        if bandwidth_bytes_s <= 0.0 {
            return None; // no link measured yet: nothing to compare the curve with
        }
        let (&(_, unthrottled), rest) = self.profile.split_first()?;
        if self.profile[0].0 != 0 || unthrottled >= bandwidth_bytes_s {
            // A profile without its unthrottled row cannot say whether the guest out-dirties
            // the link; with it at or above the bandwidth, it does.
            return (self.profile[0].0 == 0).then_some(Choice::Highest);
        }
        if unthrottled <= target_bytes_s {
            return Some(Choice::Pct(0));
        }
        let mut prev = self.profile[0];
        for &(pct, d) in rest {
            if d <= target_bytes_s {
                // Linear between prev (above the target) and this row (at or below it).
                let f = (prev.1 - target_bytes_s) / (prev.1 - d);
                let at = f64::from(prev.0) + f * f64::from(pct - prev.0);
                return Some(Choice::Pct((at - 1e-9).ceil() as u32));
            }
            prev = (pct, d);
        }
        Some(Choice::Highest)
    }

    /// The percentage it would set if the trigger fired now at `current_pct` (0 = not yet
    /// throttling): what the core sets, and what `record --steer` arranges for QEMU to set.
    pub fn pct_if_fired(&self, params: &MigrationParameters, current_pct: u32) -> u32 {
        let bandwidth = self.bandwidth_bytes_s;
        let target = PREDICTIVE_TARGET_SHARE_OF_THRESHOLD
            * f64::from(params.throttle_trigger_threshold)
            / 100.0
            * bandwidth;
        let highest = params.max_cpu_throttle;
        let as_pct = |c: Choice| match c {
            Choice::Highest => highest,
            Choice::Pct(p) => p,
        };
        let pct = if current_pct == 0 {
            // The first choice: the profile where given, else the unthrottled measurements.
            self.choose_on_profile(target, bandwidth)
                .or_else(|| self.choose(target, bandwidth))
                .map_or(params.cpu_throttle_initial, as_pct)
        } else {
            // Still too hot at the chosen throttle: climb at least as QEMU would.
            self.choose(target, bandwidth)
                .map_or(0, as_pct)
                .max(current_pct + params.cpu_throttle_increment)
        };
        clamp_pct(pct.min(params.max_cpu_throttle))
    }

    fn next_pct(&mut self, params: &MigrationParameters, current_pct: u32) -> u32 {
        if current_pct == 0 {
            let bandwidth = self.bandwidth_bytes_s;
            let target = PREDICTIVE_TARGET_SHARE_OF_THRESHOLD
                * f64::from(params.throttle_trigger_threshold)
                / 100.0
                * bandwidth;
            let modelled = self.choose_on_profile(target, bandwidth).is_some()
                || self.choose(target, bandwidth).is_some();
            self.predictions += u32::from(modelled);
        } else {
            self.fallbacks += 1;
        }
        self.pct_if_fired(params, current_pct)
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

    fn with_points(points: &[(u32, f64)]) -> Predictive {
        Predictive {
            points: points.to_vec(),
            ..Predictive::default()
        }
    }

    #[test]
    fn qemu_policy_is_the_staircase() {
        let mut p = ThrottlePolicy::new(Policy::Qemu, None);
        let params = params();
        assert_eq!(p.next_pct(&params, 0, 10, 1), 20);
        assert_eq!(p.next_pct(&params, 20, 10, 1), 30);
        assert_eq!(p.next_pct(&params, 90, 10, 1), 99);
    }

    #[test]
    fn the_write_rate_inverts_the_unique_page_curve() {
        // Half of what was sent came back dirty: w = x ln 2.
        let w = period(0, 50e6, 100e6).write_bytes_s();
        assert!((w - 100e6 * std::f64::consts::LN_2).abs() < 1.0, "{w}");
        // A guest writing exactly at the link's rate re-dirties 1 - 1/e of a pass.
        let at_link = period(0, 100e6 * (1.0 - (-1.0f64).exp()), 100e6).write_bytes_s();
        assert!((at_link - 100e6).abs() < 1.0, "{at_link}");
        // Everything sent came back dirty: the period only bounds the rate from below.
        assert_eq!(period(0, 100e6, 100e6).write_bytes_s(), f64::INFINITY);
        // No transfer: nothing to correct.
        assert_eq!(period(0, 7e6, 0.0).write_bytes_s(), 7e6);
    }

    #[test]
    fn a_guest_that_out_dirties_the_link_gets_the_highest_throttle_at_once() {
        // 97% of the pass came back dirty (heavy.toml's first fire): w = 3.5 x > B.
        let mut p = ThrottlePolicy::new(Policy::Predictive, None);
        p.observe(period(0, 97e6, 100e6));
        assert_eq!(p.next_pct(&params(), 0, 1, 0), 99);
        let mut capped = params();
        capped.max_cpu_throttle = 80;
        let mut p = ThrottlePolicy::new(Policy::Predictive, None);
        p.observe(period(0, 97e6, 100e6));
        assert_eq!(p.next_pct(&capped, 0, 1, 0), 80);
    }

    #[test]
    fn a_guest_the_link_keeps_up_with_gets_the_lowest_throttle_that_quiets_the_trigger() {
        // 55 % of the pass re-dirtied: w = -100 ln(0.45) = 79.85 MB/s < B = 100 MB/s.
        // Target 0.8 * 50 % * 100 = 40 MB/s -> share 40 / 79.85 = 0.501 -> 50 %.
        let mut p = ThrottlePolicy::new(Policy::Predictive, None);
        p.observe(period(0, 55e6, 100e6));
        let w: f64 = -100e6 * 0.45f64.ln();
        let expected = ((1.0 - 40e6 / w) * 100.0).ceil() as u32;
        assert_eq!(expected, 50);
        assert_eq!(p.next_pct(&params(), 0, 1, 0), expected);
    }

    #[test]
    fn two_points_separate_dma_from_cpu() {
        // write = 20 MB/s DMA + 60 MB/s * share: at 0% 80, at 50% 50; B = 100 > 80.
        let pr = with_points(&[(0, 80e6), (50, 50e6)]);
        // Target 40 MB/s: 20 + 60 s = 40 -> s = 1/3 -> 67%.
        assert_eq!(pr.choose(40e6, 100e6), Some(Choice::Pct(67)));
        // Below the DMA floor nothing suffices: the highest throttle.
        assert_eq!(pr.choose(10e6, 100e6), Some(Choice::Pct(99)));
        // The same guest on a 70 MB/s link: it out-dirties it unthrottled.
        assert_eq!(pr.choose(28e6, 70e6), Some(Choice::Highest));
    }

    #[test]
    fn wrong_prediction_climbs_at_least_by_the_increment() {
        let params = params();
        // A fit that says the current percentage already suffices still climbs.
        let mut q = ThrottlePolicy::new(Policy::Predictive, None);
        q.observe(period(0, 55e6, 100e6));
        assert_eq!(q.next_pct(&params, 0, 1, 0), 50);
        q.observe(period(50, 10e6, 100e6));
        assert_eq!(q.next_pct(&params, 50, 1, 0), 60);
        // At 50 % the rate hardly fell (a writer the throttle barely slows): the line through
        // the two points puts 40 MB/s out of reach -> 99, capped by max-cpu-throttle.
        let mut p = ThrottlePolicy::new(Policy::Predictive, None);
        p.observe(period(0, 55e6, 100e6));
        assert_eq!(p.next_pct(&params, 0, 1, 0), 50);
        p.observe(period(50, 53e6, 100e6));
        let mut capped = params.clone();
        capped.max_cpu_throttle = 80;
        assert_eq!(p.next_pct(&capped, 50, 1, 0), 80);
        let ThrottlePolicy::Predictive(pr) = &p else {
            unreachable!()
        };
        assert_eq!((pr.predictions, pr.fallbacks), (1, 1));
    }

    #[test]
    fn no_information_falls_back_to_qemus_first_step() {
        let mut p = ThrottlePolicy::new(Policy::Predictive, None);
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
        assert_eq!(pr.choose(1e6, 1e8), None);
    }

    #[test]
    fn a_profile_makes_the_first_choice_on_its_curve() {
        // Unthrottled 90 MB/s under a 100 MB/s link; the curve bends: 80 at 50 %, 20 at 80 %.
        // Target 40 MB/s lies 2/3 of the way from 50 % to 80 %: 70 %.
        let curve = vec![(80, 20e6), (0, 90e6), (50, 80e6)];
        let mut p = ThrottlePolicy::new(Policy::Predictive, Some(&curve));
        // The measurement alone (97 % re-dirtied) would say "out-dirties": 99.
        p.observe(period(0, 97e6, 100e6));
        assert_eq!(p.next_pct(&params(), 0, 1, 0), 70);
        // A profile at or above the link's rate unthrottled: the highest.
        let hot = vec![(0, 120e6), (50, 60e6)];
        let mut p = ThrottlePolicy::new(Policy::Predictive, Some(&hot));
        p.observe(period(0, 30e6, 100e6));
        assert_eq!(p.next_pct(&params(), 0, 1, 0), 99);
        // A profile with no row reaching the target: the highest too.
        let flat = vec![(0, 90e6), (99, 50e6)];
        assert_eq!(
            Predictive::with_profile(flat).choose_on_profile(40e6, 100e6),
            Some(Choice::Highest)
        );
        // One without its unthrottled row says nothing; the measurements decide.
        let partial = vec![(20, 90e6), (60, 30e6)];
        assert_eq!(
            Predictive::with_profile(partial).choose_on_profile(40e6, 100e6),
            None
        );
    }
}
