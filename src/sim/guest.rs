//! The simulated guest: a RAM model, the QEMU throttle replayed on virtual time, and the costs
//! the host adds (dirty-log harvests take time). Implements the core's [`Guest`].

use super::clock::VirtualTime;
use super::model::{RamModel, Step, Writer};
use crate::migration::cpu_throttle::ThrottleSchedule;
use crate::migration::dirty_limit::{dirty_rate_mb_s, DirtyLimitController, VcpuDirtyLimit};
use crate::migration::{BackendError, Guest, GuestObservation, PageBatch, PageCost};

/// The guest's dirty rings and, once dirty-limit is in force, QEMU's per-vCPU controller.
///
/// Each writer's vCPUs dirty their rings with the writer's CPU writes, split evenly; a vCPU
/// fills its ring in `ring_entries / (its CPU write rate)` of running time and then serves
/// its `throttle_us_per_full`, so it runs `fill / (fill + sleep)` of the time (a fluid
/// version of QEMU's run-until-full-then-sleep). DMA writes fill no vCPU's ring and are not
/// slowed. vCPUs no writer uses measure 0 MB/s and are never slowed. A calibrated (profile)
/// writer's writes are its vCPUs' writes: its rings fill at its profile's unthrottled rate,
/// and the share of time its vCPUs sleep is read off its profile as a throttle percentage.
#[derive(Clone)]
struct DirtyRings {
    ring_entries: u64,
    /// Per writer: (first vCPU index, vCPUs, CPU writes/s of all its vCPUs unthrottled,
    /// phases), from the layout.
    writers: Vec<Writer>,
    first_vcpu: Vec<usize>,
    limit: Option<ActiveLimit>,
}

#[derive(Clone)]
struct ActiveLimit {
    limit: VcpuDirtyLimit,
    controller: DirtyLimitController,
    /// End of the current measurement period.
    next_period_ns: u64,
    /// Each writer's cumulative CPU writes at the period's start.
    writes_at_period_start: Vec<f64>,
    /// Each writer's run share in force.
    shares: Vec<f64>,
}

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
    /// Per-vCPU dirty rings (a dirty-limit needs them); `None`: bitmap dirty log only.
    rings: Option<DirtyRings>,
    /// vCPU-ns asleep in dirty-limit sleeps (fractional, summed per step).
    dirty_limit_sleep_vcpu_ns: f64,
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
            rings: None,
            dirty_limit_sleep_vcpu_ns: 0.0,
        }
    }

    /// Give every vCPU a dirty ring of `ring_entries` pages (QEMU's `-accel
    /// kvm,dirty-ring-size=N`), so the `dirty-limit` capability can work. `writers` are the
    /// layout's, in the model's order.
    pub fn with_dirty_rings(mut self, ring_entries: u64, writers: Vec<Writer>) -> Self {
        let mut first_vcpu = Vec::with_capacity(writers.len());
        let mut next = 0;
        for w in &writers {
            first_vcpu.push(next);
            next += w.vcpus as usize;
        }
        self.rings = Some(DirtyRings {
            ring_entries,
            writers,
            first_vcpu,
            limit: None,
        });
        self
    }

    /// The next dirty-limit period end after `from`, if a limit is in force.
    fn next_dirty_limit_period_ns(&self) -> u64 {
        self.rings
            .as_ref()
            .and_then(|r| r.limit.as_ref())
            .map_or(u64::MAX, |l| l.next_period_ns)
    }

    /// A dirty-limit period ended at `now_ns`: measure each vCPU, adjust, new shares.
    fn dirty_limit_period_end(&mut self, now_ns: u64, t_s: f64) {
        let vcpus = self.vcpus as usize;
        let page = self.page_size_bytes;
        let cpu_writes = self.model.cpu_writes().to_vec();
        let Some(rings) = self.rings.as_mut() else {
            return;
        };
        let Some(active) = rings.limit.as_mut() else {
            return;
        };
        let period_ms = active.limit.period_ms;
        let mut rate_mb_s = vec![0; vcpus];
        for (wi, w) in rings.writers.iter().enumerate() {
            if w.vcpus == 0 {
                continue;
            }
            let per_vcpu =
                (cpu_writes[wi] - active.writes_at_period_start[wi]) / f64::from(w.vcpus);
            let rate = dirty_rate_mb_s(per_vcpu.max(0.0) as u64, page, period_ms);
            for v in 0..w.vcpus as usize {
                if let Some(slot) = rate_mb_s.get_mut(rings.first_vcpu[wi] + v) {
                    *slot = rate;
                }
            }
        }
        for (vcpu, rate) in rate_mb_s.into_iter().enumerate() {
            active
                .controller
                .adjust(vcpu, active.limit.quota_mb_s, rate);
        }
        active.writes_at_period_start = cpu_writes;
        active.next_period_ns = now_ns + period_ms * 1_000_000;
        Self::update_shares(rings, t_s);
    }

    /// Each writer's run share from its vCPUs' sleeps and its ring-fill time at `t_s`.
    fn update_shares(rings: &mut DirtyRings, t_s: f64) {
        let Some(active) = rings.limit.as_mut() else {
            return;
        };
        for (wi, w) in rings.writers.iter().enumerate() {
            let rate = w.ring_rate_pages_s(t_s);
            active.shares[wi] = if w.vcpus == 0 || rate <= 0.0 {
                1.0
            } else {
                let fill_ns = rings.ring_entries as f64 * 1e9 * f64::from(w.vcpus) / rate;
                active.controller.run_share(rings.first_vcpu[wi], fill_ns)
            };
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

    /// This guest, as it stands, on another time (a paused simulation's copy).
    pub fn with_time(&self, time: VirtualTime) -> Self
    where
        M: Clone,
    {
        let mut copy = self.with_model(self.model.clone());
        copy.time = time;
        copy
    }

    /// This guest with another model (a look-ahead copy), everything else copied.
    fn with_model<N>(&self, model: N) -> SimGuest<N> {
        SimGuest {
            model,
            time: self.time.clone(),
            accounted_ns: self.accounted_ns,
            throttle: self.throttle.clone(),
            stopped: self.stopped,
            logging: self.logging,
            vcpus: self.vcpus,
            page_size_bytes: self.page_size_bytes,
            ram_bytes: self.ram_bytes,
            phase_boundaries_ns: self.phase_boundaries_ns.clone(),
            costs: self.costs,
            throttle_sleep_vcpu_ns: self.throttle_sleep_vcpu_ns,
            pages_written: self.pages_written,
            migration_start_ns: self.migration_start_ns,
            rings: self.rings.clone(),
            dirty_limit_sleep_vcpu_ns: self.dirty_limit_sleep_vcpu_ns,
        }
    }

    /// What an observation reports, as of the last step.
    fn observation(&self) -> GuestObservation {
        let (per_round_us, ring_full_us) = self
            .rings
            .as_ref()
            .and_then(|r| r.limit.as_ref())
            .map_or((0, 0), |a| {
                (
                    a.controller.throttle_time_per_round_us(),
                    a.controller.ring_full_time_avg_us(),
                )
            });
        GuestObservation {
            vcpus: self.vcpus,
            throttle_sleep_vcpu_ns: self.throttle_sleep_vcpu_ns
                + self.dirty_limit_sleep_vcpu_ns as u64,
            pages_written: self.pages_written as u64,
            dirty_limit_throttle_time_per_round_us: per_round_us,
            dirty_limit_ring_full_time_us: ring_full_us,
        }
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
            let next_period = self.next_dirty_limit_period_ns();
            let to = now.min(next_phase).min(next_period);
            let slept = self.throttle.advance(to);
            let t_s = (from as f64 - self.migration_start_ns as f64) / 1e9;
            if !self.stopped {
                let wall = to - from;
                self.throttle_sleep_vcpu_ns += slept * u64::from(self.vcpus);
                if let Some(rings) = self.rings.as_mut() {
                    Self::update_shares(rings, t_s);
                    if let Some(active) = rings.limit.as_ref() {
                        for (w, share) in rings.writers.iter().zip(&active.shares) {
                            self.dirty_limit_sleep_vcpu_ns +=
                                wall as f64 * (1.0 - share) * f64::from(w.vcpus);
                        }
                        self.model.set_run_shares(&active.shares);
                    }
                }
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
            if to == next_period {
                self.dirty_limit_period_end(to, t_s);
            }
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
        if !self.model.take_ignores_writes() {
            self.catch_up();
        }
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

    fn check_dirty_limit(&self) -> Result<(), BackendError> {
        match self.rings {
            Some(_) => Ok(()),
            None => Err(crate::migration::env::DIRTY_RING_REQUIRED.into()),
        }
    }

    fn set_vcpu_dirty_limit(&mut self, limit: Option<VcpuDirtyLimit>) -> Result<(), BackendError> {
        self.catch_up();
        let now = self.time.now_ns();
        let vcpus = self.vcpus as usize;
        let page = self.page_size_bytes;
        let cpu_writes = self.model.cpu_writes().to_vec();
        let Some(rings) = self.rings.as_mut() else {
            return match limit {
                None => Ok(()),
                Some(_) => Err(crate::migration::env::DIRTY_RING_REQUIRED.into()),
            };
        };
        match limit {
            None => {
                rings.limit = None;
                let ones = vec![1.0; rings.writers.len()];
                self.model.set_run_shares(&ones);
            }
            Some(limit) => match rings.limit.as_mut() {
                // A new quota for a running controller: its state and period carry on.
                Some(active) => active.limit = limit,
                None => {
                    rings.limit = Some(ActiveLimit {
                        limit,
                        controller: DirtyLimitController::new(vcpus, rings.ring_entries, page),
                        next_period_ns: now + limit.period_ms * 1_000_000,
                        writes_at_period_start: cpu_writes,
                        shares: vec![1.0; rings.writers.len()],
                    })
                }
            },
        }
        Ok(())
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
        let bytes = self.costs.device_state_bytes as usize;
        if out.is_empty() {
            // Zeroed allocation: large ones come zero from the OS, no memset per run.
            *out = vec![0; bytes];
        } else {
            out.resize(out.len() + bytes, 0);
        }
        Ok(())
    }

    fn observe(&mut self) -> GuestObservation {
        // A model that can look ahead is observed on a copy run up to now, so samples (taken
        // or not) never move the steps of the real run.
        if let Some(model) = self.model.lookahead() {
            let mut ahead = self.with_model(model);
            ahead.catch_up();
            return ahead.observation();
        }
        self.catch_up();
        self.observation()
    }
}
