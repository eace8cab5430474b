//! Auto-converge's decision: when to throttle and by how much (`migration_trigger_throttle` and
//! `mig_throttle_guest_down` in QEMU's migration/ram.c). Pure logic, so QEMU's step sequences
//! can be checked directly.

use super::cpu_throttle::clamp_pct;
use super::params::MigrationParameters;

/// The trigger's state between sync periods.
#[derive(Clone, Debug, Default)]
pub struct AutoConverge {
    /// `dirty_rate_high_cnt`: qualifying periods since the last step. Only ever incremented
    /// when the condition holds and reset when the throttle steps, so the throttle rises on
    /// every 2nd qualifying period, consecutive or not.
    dirty_rate_high_cnt: u32,
}

/// The figures of one sync period (>= 1 s) that the trigger compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodFigures {
    /// Pages newly dirtied during the period, times the page size.
    pub bytes_dirty_period: u64,
    /// Bytes transferred during the period.
    pub bytes_xfer_period: u64,
}

impl AutoConverge {
    /// `migration_trigger_throttle`: given the period's figures and the current percentage
    /// (0 = throttle inactive), return the percentage to set, if the throttle steps now.
    pub fn on_period(
        &mut self,
        params: &MigrationParameters,
        figures: PeriodFigures,
        current_pct: u32,
    ) -> Option<u32> {
        if !params.auto_converge {
            return None;
        }
        let bytes_dirty_threshold = self.fires(params, figures)?;
        Some(throttle_guest_down(
            params,
            current_pct,
            figures.bytes_dirty_period,
            bytes_dirty_threshold,
        ))
    }
}

impl AutoConverge {
    /// The condition of `migration_trigger_throttle`, shared by auto-converge and dirty-limit:
    /// true on every 2nd period whose dirty bytes exceed the threshold. Returns the period's
    /// `bytes_dirty_threshold` when it fires.
    pub fn fires(&mut self, params: &MigrationParameters, figures: PeriodFigures) -> Option<u64> {
        // Integer math as in QEMU: the threshold truncates.
        let bytes_dirty_threshold =
            figures.bytes_xfer_period * u64::from(params.throttle_trigger_threshold) / 100;
        if figures.bytes_dirty_period <= bytes_dirty_threshold {
            return None;
        }
        self.dirty_rate_high_cnt += 1;
        if self.dirty_rate_high_cnt < 2 {
            return None;
        }
        self.dirty_rate_high_cnt = 0;
        Some(bytes_dirty_threshold)
    }
}

/// `mig_throttle_guest_down`: the next percentage.
pub fn throttle_guest_down(
    params: &MigrationParameters,
    current_pct: u32,
    bytes_dirty_period: u64,
    bytes_dirty_threshold: u64,
) -> u32 {
    if current_pct == 0 {
        // Not throttling yet: start at cpu-throttle-initial (not capped by max-cpu-throttle,
        // which QEMU's parameter check keeps >= initial anyway).
        return clamp_pct(params.cpu_throttle_initial);
    }
    let increment = u64::from(params.cpu_throttle_increment);
    let step = if !params.cpu_throttle_tailslow {
        increment
    } else {
        // The guest CPU share at which dirtying would just meet the threshold; step no further
        // than that, so the throttle slows down as it nears the point that converges.
        let cpu_now = u64::from(100 - current_pct);
        let ratio = bytes_dirty_threshold as f64 / bytes_dirty_period as f64;
        let cpu_ideal = (cpu_now as f64 * ratio) as u64;
        cpu_now.saturating_sub(cpu_ideal).min(increment)
    };
    let next = (u64::from(current_pct) + step).min(u64::from(params.max_cpu_throttle));
    clamp_pct(next as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(initial: u32, increment: u32, max: u32) -> MigrationParameters {
        MigrationParameters {
            auto_converge: true,
            cpu_throttle_initial: initial,
            cpu_throttle_increment: increment,
            max_cpu_throttle: max,
            ..MigrationParameters::default()
        }
    }

    /// Drive the trigger with periods that always qualify; collect the steps.
    fn sequence(p: &MigrationParameters, periods: usize) -> Vec<u32> {
        let mut ac = AutoConverge::default();
        let mut pct = 0;
        let mut steps = Vec::new();
        let hot = PeriodFigures {
            bytes_dirty_period: 1000,
            bytes_xfer_period: 1000,
        };
        for _ in 0..periods {
            if let Some(next) = ac.on_period(p, hot, pct) {
                if next != pct {
                    steps.push(next);
                }
                pct = next;
            }
        }
        steps
    }

    #[test]
    fn defaults_step_20_to_99() {
        let steps = sequence(&params(20, 10, 99), 40);
        assert_eq!(steps, vec![20, 30, 40, 50, 60, 70, 80, 90, 99]);
    }

    #[test]
    fn initial_5_increment_25_max_95() {
        let steps = sequence(&params(5, 25, 95), 40);
        assert_eq!(steps, vec![5, 30, 55, 80, 95]);
    }

    #[test]
    fn reaching_99_needs_18_qualifying_periods() {
        let p = params(20, 10, 99);
        assert_eq!(sequence(&p, 17).last(), Some(&90));
        assert_eq!(sequence(&p, 18).last(), Some(&99));
    }

    #[test]
    fn steps_on_every_second_qualifying_period_not_necessarily_consecutive() {
        let p = params(20, 10, 99);
        let mut ac = AutoConverge::default();
        let hot = PeriodFigures {
            bytes_dirty_period: 600,
            bytes_xfer_period: 1000,
        };
        let cool = PeriodFigures {
            bytes_dirty_period: 500, // not above 50% of 1000: does not qualify
            bytes_xfer_period: 1000,
        };
        assert_eq!(ac.on_period(&p, hot, 0), None);
        assert_eq!(ac.on_period(&p, cool, 0), None);
        assert_eq!(ac.on_period(&p, cool, 0), None);
        assert_eq!(ac.on_period(&p, hot, 0), Some(20));
        assert_eq!(ac.on_period(&p, hot, 20), None);
        assert_eq!(ac.on_period(&p, hot, 20), Some(30));
    }

    #[test]
    fn off_without_capability() {
        let mut p = params(20, 10, 99);
        p.auto_converge = false;
        assert!(sequence(&p, 40).is_empty());
    }

    #[test]
    fn tailslow_steps_toward_the_ideal_share() {
        let mut p = params(20, 10, 99);
        p.cpu_throttle_tailslow = true;
        // At 20%, cpu_now = 80. Dirtying 1.25x the threshold: ideal = 80 * 0.8 = 64 -> step 16,
        // capped at the increment: 30.
        assert_eq!(throttle_guest_down(&p, 20, 1250, 1000), 30);
        // Dirtying just above the threshold: ideal = (u64)(80 * 1000/1010) = 79 -> step 1.
        assert_eq!(throttle_guest_down(&p, 20, 1010, 1000), 21);
        // Without tailslow the same figures step by the full increment.
        p.cpu_throttle_tailslow = false;
        assert_eq!(throttle_guest_down(&p, 20, 1010, 1000), 30);
    }

    #[test]
    fn threshold_is_integer_math() {
        let p = params(20, 10, 99);
        let mut ac = AutoConverge::default();
        // 999 * 50 / 100 = 499 (truncated): 500 dirty bytes is above it.
        let f = PeriodFigures {
            bytes_dirty_period: 500,
            bytes_xfer_period: 999,
        };
        assert_eq!(ac.on_period(&p, f, 0), None);
        assert_eq!(ac.on_period(&p, f, 0), Some(20));
    }
}
