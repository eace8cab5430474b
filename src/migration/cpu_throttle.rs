//! QEMU's vCPU throttle engine (`migration/cpu-throttle.c`; `cpus.c` in 2.5-5.0).
//!
//! A timer fires every `10 ms / (1 - p)`; at each tick every vCPU is made to sleep
//! `10 ms * p / (1 - p)` (+1 ns), so it runs ~10 ms and then sleeps, asleep a fraction `p` of
//! the time. Both backends use these numbers: the KVM backend to time real sleeps, the
//! simulator (through [`ThrottleSchedule`]) to know how much CPU a throttled vCPU got.

/// Lowest percentage `cpu_throttle_set` accepts (values below are raised to it).
pub const CPU_THROTTLE_PCT_MIN: u32 = 1;
/// Highest percentage `cpu_throttle_set` accepts (values above are lowered to it).
pub const CPU_THROTTLE_PCT_MAX: u32 = 99;
/// Run time between two throttle sleeps.
pub const CPU_THROTTLE_TIMESLICE_NS: u64 = 10_000_000;

/// `cpu_throttle_set`'s clamp to [1, 99].
pub fn clamp_pct(pct: u32) -> u32 {
    pct.clamp(CPU_THROTTLE_PCT_MIN, CPU_THROTTLE_PCT_MAX)
}

/// Sleep per tick, as `cpu_throttle_thread` computes it: `(int64)(p/(1-p) * 10ms + 1)`.
pub fn sleep_ns(pct: u32) -> u64 {
    let p = f64::from(pct) / 100.0;
    let ratio = p / (1.0 - p);
    (ratio * CPU_THROTTLE_TIMESLICE_NS as f64 + 1.0) as u64
}

/// Timer period, as `cpu_throttle_timer_tick` re-arms it: `10ms / (1 - p)`.
pub fn period_ns(pct: u32) -> u64 {
    let p = f64::from(pct) / 100.0;
    (CPU_THROTTLE_TIMESLICE_NS as f64 / (1.0 - p)) as u64
}

/// The throttle timer and one vCPU's sleeps, replayed exactly on a virtual clock.
///
/// All vCPUs are ticked together, so one schedule describes every vCPU of a guest.
/// Semantics kept from QEMU: the first `set` of an inactive throttle ticks at once; a change of
/// percentage while active is picked up at the next tick (the timer is not re-armed, 6.0+);
/// `stop` lets the timer lapse at its next tick; a sleep in progress is never cut short by a
/// change of percentage, only by [`ThrottleSchedule::vm_stop`].
#[derive(Clone, Debug, Default)]
pub struct ThrottleSchedule {
    pct: u32,
    /// When the timer fires next; `None` while the timer is not armed.
    next_tick_ns: Option<u64>,
    /// Start and end of the current (or last) sleep.
    sleep_start_ns: u64,
    sleep_end_ns: u64,
    /// Time up to which [`ThrottleSchedule::advance`] has accounted.
    accounted_ns: u64,
}

impl ThrottleSchedule {
    /// An inactive throttle, accounting from `now_ns`.
    pub fn new(now_ns: u64) -> Self {
        Self {
            accounted_ns: now_ns,
            sleep_start_ns: now_ns,
            sleep_end_ns: now_ns,
            ..Self::default()
        }
    }

    /// Current percentage (0 when inactive).
    pub fn pct(&self) -> u32 {
        self.pct
    }

    /// `cpu_throttle_set` at `now_ns`. Call [`ThrottleSchedule::advance`] up to `now_ns` first.
    pub fn set(&mut self, pct: u32, now_ns: u64) {
        let was_active = self.pct != 0;
        self.pct = clamp_pct(pct);
        if !was_active {
            // An armed-but-lapsing timer from a previous stop still fires at its time; QEMU
            // would tick at once here too (timer_tick is called directly), so re-arm now.
            self.tick(now_ns);
        }
    }

    /// `cpu_throttle_stop`: percentage 0; the timer lapses at its next tick.
    pub fn stop(&mut self) {
        self.pct = 0;
    }

    /// The VM stops: a sleep in progress ends now (QEMU wakes throttled vCPUs on stop).
    pub fn vm_stop(&mut self, now_ns: u64) {
        if self.sleep_end_ns > now_ns {
            self.sleep_end_ns = now_ns.max(self.sleep_start_ns);
        }
    }

    fn tick(&mut self, at_ns: u64) {
        if self.pct == 0 {
            self.next_tick_ns = None;
            return;
        }
        // "for each vcpu not already scheduled": a vCPU still asleep is not given a second sleep.
        if self.sleep_end_ns <= at_ns {
            self.sleep_start_ns = at_ns;
            self.sleep_end_ns = at_ns + sleep_ns(self.pct);
        }
        self.next_tick_ns = Some(at_ns + period_ns(self.pct));
    }

    /// Account time up to `t_ns` and return how long one vCPU slept in the throttle during it.
    /// The vCPU ran for the rest of the interval.
    pub fn advance(&mut self, t_ns: u64) -> u64 {
        let mut cursor = self.accounted_ns;
        if t_ns <= cursor {
            return 0;
        }
        let mut slept = 0;
        loop {
            let tick = self.next_tick_ns.filter(|&tick| tick <= t_ns);
            let next = tick.unwrap_or(t_ns);
            slept += overlap(self.sleep_start_ns, self.sleep_end_ns, cursor, next);
            cursor = next;
            let Some(tick) = tick else { break };
            // Many identical cycles at a constant percentage: count them in one step.
            let (period, sleep) = (period_ns(self.pct), sleep_ns(self.pct));
            let cycles = if self.pct != 0 && self.sleep_end_ns <= tick && sleep < period {
                (t_ns - tick) / period
            } else {
                0
            };
            if cycles > 0 {
                slept += cycles * sleep;
                let last = tick + (cycles - 1) * period;
                self.sleep_start_ns = last;
                self.sleep_end_ns = last + sleep;
                self.next_tick_ns = Some(last + period);
                cursor = last + period;
            } else {
                self.tick(tick);
            }
        }
        self.accounted_ns = t_ns;
        slept
    }
}

fn overlap(a0: u64, a1: u64, b0: u64, b1: u64) -> u64 {
    let lo = a0.max(b0);
    let hi = a1.min(b1);
    hi.saturating_sub(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_and_period_match_qemu_formulas() {
        // 20%: sleep 2.5 ms per 12.5 ms period.
        assert_eq!(sleep_ns(20), 2_500_001);
        assert_eq!(period_ns(20), 12_500_000);
        // 99%: sleep 990 ms per second, +1 ns rounding guard.
        assert_eq!(sleep_ns(99), 990_000_000);
        assert_eq!(period_ns(99), 1_000_000_000 - 1);
        assert_eq!(clamp_pct(0), 1);
        assert_eq!(clamp_pct(150), 99);
    }

    #[test]
    fn run_time_is_ten_ms_per_period_at_every_percentage() {
        for pct in [1, 5, 20, 50, 75, 90, 99] {
            let mut s = ThrottleSchedule::new(0);
            s.set(pct, 0);
            let horizon = 100 * period_ns(pct);
            let slept = s.advance(horizon);
            let ran = horizon - slept;
            let expected_ran = 100 * (period_ns(pct) - sleep_ns(pct));
            assert_eq!(ran, expected_ran, "pct {pct}");
            let share = slept as f64 / horizon as f64;
            assert!(
                (share - f64::from(pct) / 100.0).abs() < 1e-3,
                "pct {pct}: {share}"
            );
        }
    }

    #[test]
    fn advance_in_small_steps_equals_one_big_step() {
        let mut a = ThrottleSchedule::new(0);
        let mut b = ThrottleSchedule::new(0);
        a.set(30, 1_000);
        b.set(30, 1_000);
        a.advance(1_000);
        b.advance(1_000);
        let big = a.advance(777_777_777);
        let mut small = 0;
        let mut t = 1_000;
        while t < 777_777_777 {
            t = (t + 3_333_333).min(777_777_777);
            small += b.advance(t);
        }
        assert_eq!(big, small);
    }

    #[test]
    fn percentage_change_waits_for_next_tick_and_sleep_is_not_cut() {
        let mut s = ThrottleSchedule::new(0);
        s.set(99, 0); // sleeps [0, 990 ms), next tick at ~1 s
        assert_eq!(s.advance(10_000_000), 10_000_000);
        s.set(20, 10_000_000); // only pct changes; the 990 ms sleep goes on
        let slept = s.advance(period_ns(99));
        assert_eq!(slept, sleep_ns(99) - 10_000_000);
        // From the next tick on, 20% applies.
        let t0 = period_ns(99);
        let slept = s.advance(t0 + period_ns(20));
        assert_eq!(slept, sleep_ns(20));
    }

    #[test]
    fn stop_lets_timer_lapse_and_vm_stop_cuts_sleep() {
        let mut s = ThrottleSchedule::new(0);
        s.set(50, 0);
        s.advance(1_000_000);
        s.stop();
        // The current 10 ms sleep finishes; nothing after it.
        let slept = s.advance(1_000_000_000);
        assert_eq!(slept, sleep_ns(50) - 1_000_000);

        let mut s = ThrottleSchedule::new(0);
        s.set(99, 0);
        s.advance(5_000_000);
        s.vm_stop(5_000_000);
        assert_eq!(s.advance(500_000_000), 0);
    }
}
