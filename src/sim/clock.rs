//! Virtual time for the simulator: it moves only when the simulated link sends, a sync costs
//! time, or the migration thread sleeps. Nothing reads the host's clock.

use crate::migration::Clock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared virtual time in ns; the link, the guest and the migration thread hold handles.
///
/// One simulation runs on one thread: relaxed loads and stores (plain moves) suffice. It is
/// atomic only so a paused simulation can be shared between threads that each continue a
/// copy of it on a time of their own ([`VirtualTime::at`]).
#[derive(Clone, Debug, Default)]
pub struct VirtualTime(Arc<AtomicU64>);

impl VirtualTime {
    /// A new time, starting at `t_ns`.
    pub fn at(t_ns: u64) -> Self {
        Self(Arc::new(AtomicU64::new(t_ns)))
    }

    /// Now.
    pub fn now_ns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Move time forward by `ns`.
    pub fn advance_ns(&self, ns: u64) {
        self.0.store(self.now_ns() + ns, Ordering::Relaxed);
    }

    /// Move time forward to `t_ns` (never backwards).
    pub fn advance_to_ns(&self, t_ns: u64) {
        if t_ns > self.now_ns() {
            self.0.store(t_ns, Ordering::Relaxed);
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

    /// This clock on another time.
    pub fn with_time(&self, time: VirtualTime) -> Self {
        Self::new(time, self.timer_slack_ns)
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
