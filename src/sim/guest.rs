//! The simulated guest: a RAM model, the QEMU throttle replayed on virtual time, and the costs
//! the host adds (dirty-log harvests take time). Implements the core's [`Guest`].

use super::clock::VirtualTime;
use super::model::{RamModel, Step};
use crate::migration::cpu_throttle::ThrottleSchedule;
use crate::migration::{BackendError, Guest, GuestObservation, PageBatch, PageCost};

/// Host costs the model charges.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HostCosts {
    /// Virtual time one dirty-log harvest takes, per GiB of guest memory (ns).
    pub sync_ns_per_gib: f64,
    /// Device state sent at switchover (bytes).
    pub device_state_bytes: u64,
}

/// A guest whose memory behaves as `M` says.
pub struct SimGuest<M> {
    model: M,
    time: VirtualTime,
    accounted_ns: u64,
    throttle: ThrottleSchedule,
    stopped: bool,
    logging: bool,
    vcpus: u32,
    page_size_bytes: u64,
    ram_bytes: u64,
    phase_boundaries_ns: Vec<u64>,
    costs: HostCosts,
    throttle_sleep_vcpu_ns: u64,
    pages_written: f64,
    /// Virtual time at which the migration starts (after any warm-up).
    migration_start_ns: u64,
}

impl<M: RamModel> SimGuest<M> {
    /// A running guest at virtual time `time`.
    pub fn new(
        model: M,
        time: VirtualTime,
        vcpus: u32,
        page_size_bytes: u64,
        ram_bytes: u64,
        phase_boundaries_ns: Vec<u64>,
        costs: HostCosts,
    ) -> Self {
        let now = time.now_ns();
        Self {
            model,
            accounted_ns: now,
            throttle: ThrottleSchedule::new(now),
            time,
            stopped: false,
            logging: false,
            vcpus,
            page_size_bytes,
            ram_bytes,
            phase_boundaries_ns,
            costs,
            throttle_sleep_vcpu_ns: 0,
            pages_written: 0.0,
            migration_start_ns: now,
        }
    }

    /// Let the workload run for `duration_ns` before the migration starts (dirty logging
    /// off), so its writes turn zero pages into data as they did on the real guest.
    pub fn warm_up(&mut self, duration_ns: u64) {
        self.migration_start_ns = self.time.now_ns() + duration_ns;
        self.time.advance_ns(duration_ns);
        self.catch_up();
    }

    /// The RAM model, after the run.
    pub fn into_model(self) -> M {
        self.model
    }

    /// Let the guest run up to the current virtual time.
    fn catch_up(&mut self) {
        let now = self.time.now_ns();
        while self.accounted_ns < now {
            let from = self.accounted_ns;
            let next_phase = self
                .phase_boundaries_ns
                .iter()
                .map(|&b| b + self.migration_start_ns)
                .find(|&b| b > from)
                .unwrap_or(u64::MAX);
            let to = now.min(next_phase);
            let slept = self.throttle.advance(to);
            if !self.stopped {
                let wall = to - from;
                self.throttle_sleep_vcpu_ns += slept * u64::from(self.vcpus);
                self.pages_written += self.model.run_writers(Step {
                    wall_ns: wall as f64,
                    cpu_ns_per_vcpu: wall.saturating_sub(slept) as f64,
                    // Phases count from the migration's start (negative during a warm-up).
                    t_s: (from as f64 - self.migration_start_ns as f64) / 1e9,
                    logging: self.logging,
                    throttle_pct: self.throttle.pct(),
                });
            }
            self.accounted_ns = to;
        }
    }
}

impl<M: RamModel> Guest for SimGuest<M> {
    fn page_size_bytes(&self) -> u64 {
        self.page_size_bytes
    }

    fn ram_bytes(&self) -> u64 {
        self.ram_bytes
    }

    fn start_dirty_tracking(&mut self) -> Result<(), BackendError> {
        self.catch_up();
        self.model.start_logging();
        self.logging = true;
        Ok(())
    }

    fn sync_dirty_bitmap(&mut self) -> Result<u64, BackendError> {
        self.catch_up();
        let newly = self.model.sync();
        let gib = self.ram_bytes as f64 / f64::from(1u32 << 30);
        self.time
            .advance_ns((self.costs.sync_ns_per_gib * gib) as u64);
        Ok(newly)
    }

    fn dirty_pages(&self) -> u64 {
        self.model.dirty_pages()
    }

    fn take_dirty_pages(
        &mut self,
        max_bytes: u64,
        cost: PageCost,
        batch: &mut PageBatch,
    ) -> Result<(), BackendError> {
        self.catch_up();
        self.model.take(max_bytes, cost, batch);
        Ok(())
    }

    fn stop_dirty_tracking(&mut self) {
        self.catch_up();
        self.model.stop_logging();
        self.logging = false;
    }

    fn set_throttle_pct(&mut self, pct: u32) {
        self.catch_up();
        if pct == 0 {
            self.throttle.stop();
        } else {
            self.throttle.set(pct, self.time.now_ns());
        }
    }

    fn vm_stop(&mut self) -> Result<(), BackendError> {
        self.catch_up();
        self.throttle.vm_stop(self.time.now_ns());
        self.stopped = true;
        Ok(())
    }

    fn vm_start(&mut self) -> Result<(), BackendError> {
        self.catch_up();
        self.stopped = false;
        Ok(())
    }

    fn save_device_state(&mut self, out: &mut Vec<u8>) -> Result<(), BackendError> {
        out.resize(out.len() + self.costs.device_state_bytes as usize, 0);
        Ok(())
    }

    fn observe(&mut self) -> GuestObservation {
        self.catch_up();
        GuestObservation {
            vcpus: self.vcpus,
            throttle_sleep_vcpu_ns: self.throttle_sleep_vcpu_ns,
            pages_written: self.pages_written as u64,
        }
    }
}
