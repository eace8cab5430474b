//! What the VMM's threads share to steer the vCPU threads: stop requests, throttle sleeps and
//! the kicks that get a vCPU out of KVM_RUN.
//!
//! The throttle works as QEMU's `cpu-throttle.c`: a timer ([`super::throttle`]) fires every
//! [`period_ns`](crate::migration::cpu_throttle::period_ns) and, for each vCPU not already
//! scheduled, schedules one sleep of [`sleep_ns`](crate::migration::cpu_throttle::sleep_ns)
//! (computed when the sleep starts, from the percentage then) and kicks the vCPU. The vCPU
//! thread serves it between two KVM_RUN calls, waiting on a condition variable so a stop
//! request ends the sleep at once (stop-and-copy never waits out a 990 ms sleep).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::vstate::vcpu::RunControl;
use crate::migration::cpu_throttle::sleep_ns;

/// Per-vCPU shared state.
#[derive(Default)]
struct PerVcpu {
    /// QEMU's `throttle_thread_scheduled`.
    throttle_scheduled: AtomicBool,
    /// Nanoseconds spent asleep in the throttle, since the VM was created.
    slept_ns: AtomicU64,
    /// Host CPU of this vCPU's threads that have ended (each start makes a new one).
    ended_threads_cpu_ns: AtomicU64,
    /// Dirty-limit: sleep served each time this vCPU's dirty ring fills (us; 0 = none).
    dirty_limit_sleep_us: AtomicU64,
}

#[derive(Default)]
struct State {
    /// vCPU threads must leave their loop.
    stop: bool,
    /// The throttle timer thread must end.
    shutdown: bool,
    /// The throttle went from 0 to active: the timer ticks at once.
    throttle_restart: bool,
    /// pthread ids of running vCPU threads (None when not running).
    threads: Vec<Option<libc::pthread_t>>,
}

/// Shared between the VMM, the vCPU threads and the throttle timer.
pub struct Control {
    state: Mutex<State>,
    cvar: Condvar,
    throttle_pct: AtomicU32,
    vcpus: Vec<PerVcpu>,
}

impl Control {
    /// For `vcpus` vCPUs.
    pub fn new(vcpus: u32) -> Self {
        Self {
            state: Mutex::new(State {
                threads: vec![None; vcpus as usize],
                ..State::default()
            }),
            cvar: Condvar::new(),
            throttle_pct: AtomicU32::new(0),
            vcpus: (0..vcpus).map(|_| PerVcpu::default()).collect(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// Called by each vCPU thread as it starts.
    pub fn register_thread(&self, index: u32) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        self.lock().threads[index as usize] = Some(me);
    }

    /// Called by each vCPU thread just before it ends: no kick may target it afterwards. Its
    /// CPU time is banked under the same lock, so [`Control::vcpu_cpu_ns`] never misses it.
    pub fn unregister_thread(&self, index: u32) {
        let mut st = self.lock();
        self.vcpus[index as usize]
            .ended_threads_cpu_ns
            .fetch_add(super::host_cpu::this_thread_ns(), Ordering::SeqCst);
        st.threads[index as usize] = None;
        drop(st);
        self.cvar.notify_all();
    }

    /// Host CPU used by all vCPU threads so far, ended and running (ns).
    pub fn vcpu_cpu_ns(&self) -> u64 {
        let st = self.lock();
        let ended: u64 = self
            .vcpus
            .iter()
            .map(|v| v.ended_threads_cpu_ns.load(Ordering::SeqCst))
            .sum();
        let live: u64 = st
            .threads
            .iter()
            .flatten()
            // SAFETY: a registered thread unregisters (under this lock) before it ends, and we
            // hold the lock, so `t` is a live thread of this process.
            .filter_map(|t| unsafe { super::host_cpu::thread_ns(*t) })
            .sum();
        ended + live
    }

    /// Allow vCPU threads to run (before starting them).
    pub fn clear_stop(&self) {
        self.lock().stop = false;
    }

    /// Ask every vCPU thread to leave its loop: wakes throttle sleeps and halts, kicks
    /// threads out of KVM_RUN.
    pub fn request_stop(&self) {
        let st = {
            let mut st = self.lock();
            st.stop = true;
            st
        };
        self.kick_all_locked(&st);
        drop(st);
        self.cvar.notify_all();
    }

    /// Wait until every vCPU thread has unregistered.
    pub fn wait_all_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        while st.threads.iter().any(Option::is_some) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .cvar
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            // A thread may still be entering KVM_RUN: kick again.
            self.kick_all_locked(&st);
        }
        true
    }

    fn kick_all_locked(&self, st: &State) {
        for t in st.threads.iter().flatten() {
            // SAFETY: a registered thread unregisters (under this lock) before it ends, and
            // we hold the lock, so `t` is a live thread of this process.
            unsafe { super::vstate::kick_thread(*t) };
        }
    }

    // ---- throttle ----

    /// Current throttle percentage (0 = off).
    pub fn throttle_pct(&self) -> u32 {
        self.throttle_pct.load(Ordering::SeqCst)
    }

    /// `cpu_throttle_set` / `cpu_throttle_stop`. Returns nothing; the timer thread reacts.
    pub fn set_throttle_pct(&self, pct: u32) {
        let pct = if pct == 0 {
            0
        } else {
            crate::migration::cpu_throttle::clamp_pct(pct)
        };
        let was = self.throttle_pct.swap(pct, Ordering::SeqCst);
        if was == 0 && pct != 0 {
            self.lock().throttle_restart = true;
            self.cvar.notify_all();
        }
    }

    /// Timer thread: wait while the throttle is off. Returns false on shutdown.
    pub(super) fn timer_wait_active(&self) -> bool {
        let mut st = self.lock();
        loop {
            if st.shutdown {
                return false;
            }
            if self.throttle_pct() != 0 {
                st.throttle_restart = false;
                return true;
            }
            st = self.cvar.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Timer thread: wait until `deadline`. Returns Err(()) on shutdown, Ok(true) when the
    /// throttle was re-activated (tick at once), Ok(false) at the deadline.
    pub(super) fn timer_wait_until(&self, deadline: Instant) -> Result<bool, ()> {
        let mut st = self.lock();
        loop {
            if st.shutdown {
                return Err(());
            }
            if st.throttle_restart {
                st.throttle_restart = false;
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            st = self
                .cvar
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Timer tick: schedule one sleep on every running vCPU that has none scheduled, and kick
    /// it. A stopped VM gets no sleeps (QEMU's throttle timer runs on a clock that stops with
    /// the VM).
    pub(super) fn timer_tick(&self) {
        let st = self.lock();
        if st.stop {
            return;
        }
        for (i, t) in st.threads.iter().enumerate() {
            if let Some(t) = t {
                if !self.vcpus[i]
                    .throttle_scheduled
                    .swap(true, Ordering::SeqCst)
                {
                    // SAFETY: registered thread, lock held (see kick_all_locked).
                    unsafe { super::vstate::kick_thread(*t) };
                }
            }
        }
    }

    /// End the timer thread.
    pub(super) fn shutdown_timer(&self) {
        self.lock().shutdown = true;
        self.cvar.notify_all();
    }

    /// Dirty-limit's controller: the sleep vCPU `index` serves at each full dirty ring.
    pub fn set_dirty_limit_sleep_us(&self, index: u32, us: u64) {
        if let Some(v) = self.vcpus.get(index as usize) {
            v.dirty_limit_sleep_us.store(us, Ordering::SeqCst);
        }
    }

    /// Sleep on the condvar for `duration` (so a stop cuts it short, unlike `thread::sleep`)
    /// and count the time slept as the vCPU's guest CPU lost: the throttle's and dirty-limit's
    /// sleeps are the same kind of wait.
    fn sleep_unless_stopped(&self, v: &PerVcpu, duration: Duration) {
        let start = Instant::now();
        let deadline = start + duration;
        let mut st = self.lock();
        while !st.stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .cvar
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(st);
        v.slept_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::SeqCst);
    }

    /// Wait (up to `timeout`) until no vCPU has a throttle sleep scheduled or in progress. A
    /// sleep is not cut short when the throttle is switched off (QEMU behaves so too), so a
    /// guest is back at full speed only after this.
    pub fn wait_throttle_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .vcpus
                .iter()
                .all(|v| !v.throttle_scheduled.load(Ordering::SeqCst))
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// vCPU-nanoseconds slept in the throttle, all vCPUs, since creation.
    pub fn throttle_slept_ns(&self) -> u64 {
        self.vcpus
            .iter()
            .map(|v| v.slept_ns.load(Ordering::SeqCst))
            .sum()
    }
}

/// The vCPU threads' side: what their KVM_RUN loop asks between two runs.
impl RunControl for Control {
    /// True once a stop was requested.
    fn should_stop(&self) -> bool {
        self.lock().stop
    }

    /// A guest vCPU halted with nothing to wake it: park until a stop request.
    fn wait_while_halted(&self) {
        let mut st = self.lock();
        while !st.stop {
            st = self.cvar.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// vCPU thread: serve a scheduled throttle sleep, if any (`cpu_throttle_thread`).
    fn serve_throttle(&self, index: u32) {
        let v = &self.vcpus[index as usize];
        if !v.throttle_scheduled.load(Ordering::SeqCst) {
            return;
        }
        let pct = self.throttle_pct();
        if pct != 0 {
            self.sleep_unless_stopped(v, Duration::from_nanos(sleep_ns(pct)));
        }
        v.throttle_scheduled.store(false, Ordering::SeqCst);
    }

    /// vCPU thread, after its full dirty ring was harvested: serve dirty-limit's sleep
    /// (`dirtylimit_vcpu_execute`), cut short if the vCPUs are being stopped. Counted with the
    /// throttle's sleeps as guest CPU lost.
    fn serve_dirty_limit(&self, index: u32) {
        let v = &self.vcpus[index as usize];
        let us = v.dirty_limit_sleep_us.load(Ordering::SeqCst);
        if us == 0 {
            return;
        }
        self.sleep_unless_stopped(v, Duration::from_micros(us));
    }
}
