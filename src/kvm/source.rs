//! The core's [`Guest`] on a running [`Machine`]: KVM's dirty log (plus the host's own writes)
//! feeds the page-exact migration bitmap; the throttle, stop and start act on the vCPU threads.

use std::time::Instant;

use super::dirty_limit::DirtyLimitThread;
use super::error::KvmError;
use super::machine::Machine;
use super::memory::PAGE_BYTES;
use super::vstate::vm::DirtyLogMode;
use crate::migration::bitmap::DirtyBitmap;
use crate::migration::dirty_limit::VcpuDirtyLimit;
use crate::migration::env::DIRTY_RING_REQUIRED;
use crate::migration::{BackendError, Guest, GuestObservation, PageBatch, PageCost, PageRef};

/// QEMU's default `clear-bitmap-shift`: in manual-clear mode, pages are re-protected in chunks
/// of 2^18 pages (1 GiB) just before the first page of the chunk is sent.
pub const CLEAR_CHUNK_SHIFT: u32 = 18;

/// Timing of dirty-log syncs (for the benchmark's "time per sync per GiB").
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct SyncTiming {
    /// Syncs made.
    pub syncs: u64,
    /// Total time in them (ns).
    pub total_ns: u64,
    /// Longest (ns).
    pub max_ns: u64,
}

/// A running machine, as the migration core's source guest.
pub struct KvmSource<'m> {
    machine: &'m mut Machine,
    bitmap: DirtyBitmap,
    /// Manual-clear mode: harvested bits not yet re-protected in KVM, and which chunks have any.
    pending_clear: Vec<u64>,
    chunk_pending: Vec<bool>,
    /// Fault injection: this page's dirty bit is dropped at every sync (tests only).
    drop_dirty_gfn: Option<u64>,
    timing: SyncTiming,
    /// Pages KVM's dirty log reported, summed over the syncs (the guest's own writes).
    dirty_logged_pages: u64,
    /// dirty-limit's controller, once its trigger has fired (ring mode only).
    dirty_limit: Option<DirtyLimitThread>,
}

impl<'m> KvmSource<'m> {
    /// Wrap a machine (running or not).
    pub fn new(machine: &'m mut Machine) -> Self {
        let pages = machine.ram().pages();
        Self {
            machine,
            bitmap: DirtyBitmap::new(pages),
            pending_clear: Vec::new(),
            chunk_pending: Vec::new(),
            drop_dirty_gfn: None,
            timing: SyncTiming::default(),
            dirty_logged_pages: 0,
            dirty_limit: None,
        }
    }

    /// Fault injection for tests: lose every dirty bit of page `gfn`, as a buggy dirty tracker
    /// would. Memory verification must then fail.
    pub fn inject_dropped_dirty_page(&mut self, gfn: u64) {
        self.drop_dirty_gfn = Some(gfn);
    }

    /// Dirty-log sync timing so far.
    pub fn sync_timing(&self) -> SyncTiming {
        self.timing
    }

    /// Pages KVM's dirty log reported so far, summed over the syncs: whether (and roughly how
    /// much) the guest wrote memory, for any kernel.
    pub fn dirty_logged_pages(&self) -> u64 {
        self.dirty_logged_pages
    }

    /// The machine.
    pub fn machine(&self) -> &Machine {
        self.machine
    }

    fn drop_injected(&self, log: &mut [u64]) {
        if let Some(gfn) = self.drop_dirty_gfn {
            if let Some(w) = log.get_mut((gfn / 64) as usize) {
                *w &= !(1u64 << (gfn % 64));
            }
        }
    }

    fn clear_chunk_for(&mut self, gfn: u64) -> Result<(), BackendError> {
        let chunk = (gfn >> CLEAR_CHUNK_SHIFT) as usize;
        if !self.chunk_pending.get(chunk).copied().unwrap_or(false) {
            return Ok(());
        }
        self.chunk_pending[chunk] = false;
        let words_per_chunk = (1usize << CLEAR_CHUNK_SHIFT) / 64;
        let start = chunk * words_per_chunk;
        let end = (start + words_per_chunk).min(self.pending_clear.len());
        let mut bits = self.pending_clear[start..end].to_vec();
        self.pending_clear[start..end].fill(0);
        self.machine
            .vm()
            .clear_dirty_log(start as u64 * 64, &mut bits)?;
        Ok(())
    }
}

impl Guest for KvmSource<'_> {
    fn page_size_bytes(&self) -> u64 {
        PAGE_BYTES
    }

    fn ram_bytes(&self) -> u64 {
        self.machine.ram().bytes()
    }

    fn start_dirty_tracking(&mut self) -> Result<(), BackendError> {
        self.machine.vm_mut().set_dirty_logging(true)?;
        // Host writes before this point are part of the first full pass anyway.
        self.machine.ram().take_host_dirty();
        self.bitmap.set_all();
        if self.machine.vm().dirty_log_mode() == DirtyLogMode::ManualClear {
            let words = self.machine.ram().pages().div_ceil(64) as usize;
            self.pending_clear = vec![0; words];
            self.chunk_pending =
                vec![false; (self.machine.ram().pages() >> CLEAR_CHUNK_SHIFT) as usize + 1];
        }
        Ok(())
    }

    fn sync_dirty_bitmap(&mut self) -> Result<u64, BackendError> {
        let t0 = Instant::now();
        let mut log = self.machine.vm().get_dirty_log()?;
        self.drop_injected(&mut log);
        self.dirty_logged_pages += log.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        let mut newly = self.bitmap.or_log(0, &log);
        if !self.pending_clear.is_empty() {
            let words_per_chunk = (1usize << CLEAR_CHUNK_SHIFT) / 64;
            for (i, w) in log.iter().enumerate() {
                if *w != 0 {
                    self.pending_clear[i] |= *w;
                    self.chunk_pending[i / words_per_chunk] = true;
                }
            }
        }
        // Writes the host made into guest memory (an emulated device) never reach KVM's log.
        let mut host = self.machine.ram().take_host_dirty();
        self.drop_injected(&mut host);
        newly += self.bitmap.or_log(0, &host);
        let ns = t0.elapsed().as_nanos() as u64;
        self.timing.syncs += 1;
        self.timing.total_ns += ns;
        self.timing.max_ns = self.timing.max_ns.max(ns);
        Ok(newly)
    }

    fn dirty_pages(&self) -> u64 {
        self.bitmap.count()
    }

    fn take_dirty_pages(
        &mut self,
        max_bytes: u64,
        cost: PageCost,
        batch: &mut PageBatch,
    ) -> Result<(), BackendError> {
        let mut bytes = 0;
        while bytes < max_bytes {
            let Some(gfn) = self.bitmap.take_next() else {
                break;
            };
            if !self.chunk_pending.is_empty() {
                // Re-protect before reading: a write after this point is logged again.
                self.clear_chunk_for(gfn)?;
            }
            let zero = self.machine.ram().is_zero_page(gfn);
            if zero {
                batch.zero_pages += 1;
                bytes += cost.zero_page_bytes;
            } else {
                batch.normal_pages += 1;
                bytes += cost.normal_page_bytes;
            }
            batch.pages.push(PageRef { gfn, zero });
        }
        Ok(())
    }

    fn stop_dirty_tracking(&mut self) {
        let _ = self.machine.vm_mut().set_dirty_logging(false);
        self.pending_clear.clear();
        self.chunk_pending.clear();
    }

    fn set_throttle_pct(&mut self, pct: u32) {
        self.machine.set_throttle_pct(pct);
    }

    fn vm_stop(&mut self) -> Result<(), BackendError> {
        Ok(self.machine.pause()?)
    }

    fn vm_start(&mut self) -> Result<(), BackendError> {
        Ok(self.machine.start()?)
    }

    fn save_device_state(&mut self, out: &mut Vec<u8>) -> Result<(), BackendError> {
        let state = self.machine.save_state()?;
        serde_json::to_writer(out, &state)?;
        Ok(())
    }

    fn check_dirty_limit(&self) -> Result<(), BackendError> {
        match self.machine.vm().dirty_rings() {
            Some(_) => Ok(()),
            None => Err(DIRTY_RING_REQUIRED.into()),
        }
    }

    fn set_vcpu_dirty_limit(&mut self, limit: Option<VcpuDirtyLimit>) -> Result<(), BackendError> {
        match (limit, self.dirty_limit.as_ref()) {
            (None, _) => {
                if let Some(t) = self.dirty_limit.take() {
                    t.stop();
                }
            }
            (Some(l), Some(running)) => running.set_quota(l.quota_mb_s),
            (Some(l), None) => {
                let rings = self
                    .machine
                    .vm()
                    .dirty_rings()
                    .ok_or_else(|| BackendError::from(DIRTY_RING_REQUIRED))?;
                let t = DirtyLimitThread::start(
                    l,
                    rings,
                    self.machine.control(),
                    self.machine.vcpu_count(),
                )
                .map_err(KvmError::thread("dirty-limit"))?;
                self.dirty_limit = Some(t);
            }
        }
        Ok(())
    }

    fn observe(&mut self) -> GuestObservation {
        let (per_round_us, ring_full_us) = self
            .dirty_limit
            .as_ref()
            .map_or((0, 0), DirtyLimitThread::figures_us);
        GuestObservation {
            vcpus: self.machine.vcpu_count(),
            throttle_sleep_vcpu_ns: self.machine.throttle_slept_ns(),
            pages_written: self.machine.pages_written(),
            dirty_limit_throttle_time_per_round_us: per_round_us,
            dirty_limit_ring_full_time_us: ring_full_us,
        }
    }
}
