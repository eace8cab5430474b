//! The throttle timer thread (QEMU's `cpu_throttle_timer_tick`), real-time version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::Control;
use crate::migration::cpu_throttle::period_ns;

/// Start the timer thread. It idles while the throttle is off; when it becomes active it ticks
/// at once, then every `period_ns(pct)` with the percentage of each tick (a change of
/// percentage while active waits for the next tick; 0 lets the timer lapse at its next tick).
pub fn spawn_timer(control: Arc<Control>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("throttle-timer".into())
        .spawn(move || {
            'idle: while control.timer_wait_active() {
                loop {
                    let pct = control.throttle_pct();
                    if pct == 0 {
                        continue 'idle; // the timer lapses
                    }
                    control.timer_tick();
                    let next = Instant::now() + Duration::from_nanos(period_ns(pct));
                    match control.timer_wait_until(next) {
                        Err(()) => break 'idle,
                        Ok(_restart_or_deadline) => {}
                    }
                }
            }
        })
}
