//! Virtual time for the simulator: it moves only when the simulated link sends, a sync costs
//! time, or the migration thread sleeps. Nothing reads the host's clock.

use crate::migration::Clock;
use std::cell::Cell;
use std::rc::Rc;

/// Shared virtual time in ns; the link, the guest and the migration thread hold handles.
#[derive(Clone, Debug, Default)]
pub struct VirtualTime(Rc<Cell<u64>>);

impl VirtualTime {
    /// Now.
    pub fn now_ns(&self) -> u64 {
        self.0.get()
    }

    /// Move time forward by `ns`.
    pub fn advance_ns(&self, ns: u64) {
        self.0.set(self.0.get() + ns);
    }

    /// Move time forward to `t_ns` (never backwards).
    pub fn advance_to_ns(&self, t_ns: u64) {
        if t_ns > self.0.get() {
            self.0.set(t_ns);
        }
    }
}

/// The migration thread's clock. Its rate-limit sleeps end `timer_slack_ns` late, as a real
/// host's timed waits do (QEMU 7.2 on these machines: ~2.5 ms per 100 ms window).
#[derive(Clone, Debug)]
pub struct SimClock {
    time: VirtualTime,
    timer_slack_ns: u64,
}

impl SimClock {
    /// A clock over `time`.
    pub fn new(time: VirtualTime, timer_slack_ns: u64) -> Self {
        Self {
            time,
            timer_slack_ns,
        }
    }
}

impl Clock for SimClock {
    fn now_ns(&self) -> u64 {
        self.time.now_ns()
    }

    fn sleep_until(&mut self, deadline_ns: u64) {
        if deadline_ns > self.time.now_ns() {
            self.time.advance_to_ns(deadline_ns + self.timer_slack_ns);
        }
    }
}
