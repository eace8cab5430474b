//! The core's [`Clock`] on CLOCK_MONOTONIC, with sleeps a cancellation cuts short.

use std::time::{Duration, Instant};

use crate::migration::{CancelToken, Clock};

/// Real time since the clock was made.
pub struct MonotonicClock {
    origin: Instant,
    cancel: CancelToken,
}

impl MonotonicClock {
    /// A clock starting at 0 now; `cancel` interrupts its sleeps.
    pub fn new(cancel: CancelToken) -> Self {
        Self {
            origin: Instant::now(),
            cancel,
        }
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn sleep_until(&mut self, deadline_ns: u64) {
        let now = self.now_ns();
        if deadline_ns > now {
            self.cancel
                .wait_timeout(Duration::from_nanos(deadline_ns - now));
        }
    }
}
