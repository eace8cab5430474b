//! What the migration core needs from the world, injected.
//!
//! The core is QEMU's migration thread and `ram.c` bookkeeping; it never reads the wall clock,
//! the OS or a random source. A backend gives it three things:
//!
//! * a [`Clock`]: virtual time advanced by the simulator, or `CLOCK_MONOTONIC` for KVM;
//! * a [`Guest`]: the VM being migrated: dirty tracking into the migration bitmap, page access,
//!   the vCPU throttle, stop/start, device state;
//! * a [`Link`]: the migration stream to the destination.
//!
//! Keeping these three apart is what lets one state machine be checked against closed-form
//! models in the simulator and then drive a real guest unchanged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Errors a backend reports to the core. Backends keep their own typed errors and box them here,
/// so the core stays ignorant of KVM, sockets or models.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A link that stopped making progress (the destination stopped reading or answering) and
/// that its backend gave up on after a bound it was given. The core ends such a migration as
/// QEMU ends one the user stops with `migrate_cancel`: `cancelled`, the source guest resumed
/// and intact (or `not-converged` when the bound was the run's time limit), never `failed`,
/// which is for a stream that broke. The text says what stalled and for how long.
#[derive(Debug)]
pub struct LinkStalled(pub String);

impl std::fmt::Display for LinkStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LinkStalled {}

/// The link handed the guest over (it told the destination to run it) and then heard nothing
/// back, so the destination may be running it or may not. The core ends the migration
/// `failed` and leaves the source guest stopped: resuming it could leave two copies of one
/// guest running. The text says what was sent and what did not come back.
#[derive(Debug)]
pub struct HandoverUnconfirmed(pub String);

impl std::fmt::Display for HandoverUnconfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HandoverUnconfirmed {}

/// QEMU's refusal of `dirty-limit` without a dirty ring (`migrate_caps_check`).
pub const DIRTY_RING_REQUIRED: &str =
    "dirty-limit requires KVM with accelerator property 'dirty-ring-size' set";

/// Migration time in nanoseconds from an arbitrary origin.
pub trait Clock {
    /// Current time.
    fn now_ns(&self) -> u64;
    /// Wait until `deadline_ns` (rate limiting between 100 ms windows). A real clock may return
    /// early when the migration is cancelled; the core re-checks the time after every call.
    fn sleep_until(&mut self, deadline_ns: u64);
}

/// One page taken from the migration bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRef {
    /// Guest frame number (guest physical address / page size).
    pub gfn: u64,
    /// The page is all zeroes: QEMU sends it as a header only.
    pub zero: bool,
}

/// Bytes one page costs on the wire, headers included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCost {
    /// A page sent with its data (QEMU: 8-byte header + 4096).
    pub normal_page_bytes: u64,
    /// An all-zero page (QEMU: 8-byte header + 1 byte).
    pub zero_page_bytes: u64,
}

impl PageCost {
    /// QEMU's RAM stream for 4 KiB pages within one RAM block.
    pub const QEMU_4K: PageCost = PageCost {
        normal_page_bytes: 8 + 4096,
        zero_page_bytes: 8 + 1,
    };
}

/// Pages taken from the migration bitmap in one step, in send order.
#[derive(Clone, Debug, Default)]
pub struct PageBatch {
    /// Pages with data on them.
    pub normal_pages: u64,
    /// All-zero pages (QEMU's `duplicate` counter).
    pub zero_pages: u64,
    /// Page-exact backends list each page here; aggregate models leave it empty and only
    /// give the two counts.
    pub pages: Vec<PageRef>,
}

impl PageBatch {
    /// Empty the batch, keeping its allocation.
    pub fn clear(&mut self) {
        self.normal_pages = 0;
        self.zero_pages = 0;
        self.pages.clear();
    }

    /// Pages in the batch.
    pub fn len(&self) -> u64 {
        self.normal_pages + self.zero_pages
    }

    /// True if no page was taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Cumulative counters a guest exposes for reports (never used for migration decisions).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GuestObservation {
    /// Number of vCPUs.
    pub vcpus: u32,
    /// vCPU-nanoseconds spent asleep in the throttle, summed over vCPUs, since the start.
    pub throttle_sleep_vcpu_ns: u64,
    /// Page writes the guest has made since the start (its own progress measure).
    pub pages_written: u64,
    /// Dirty-limit in force: query-migrate's `dirty-limit-throttle-time-per-round` (us).
    pub dirty_limit_throttle_time_per_round_us: u64,
    /// Dirty-limit in force: query-migrate's `dirty-limit-ring-full-time` (us).
    pub dirty_limit_ring_full_time_us: u64,
}

/// The VM being migrated, as the source side of QEMU's `ram.c` and `cpus.c` sees it.
pub trait Guest {
    /// Target page size in bytes (4096 on x86).
    fn page_size_bytes(&self) -> u64;
    /// Guest RAM in bytes.
    fn ram_bytes(&self) -> u64;

    /// `ram_save_setup`: switch dirty logging on and mark every page dirty in the migration
    /// bitmap (QEMU 6.1+ has no bulk stage: the bitmap starts all ones).
    fn start_dirty_tracking(&mut self) -> Result<(), BackendError>;
    /// The harvest half of `migration_bitmap_sync`: fetch the dirty log, OR it into the
    /// migration bitmap and re-protect. Returns the pages *newly* set in the bitmap (pages that
    /// were already dirty there are not counted), as QEMU's `num_dirty_pages_period` wants.
    fn sync_dirty_bitmap(&mut self) -> Result<u64, BackendError>;
    /// `migration_dirty_pages`: pages currently set in the migration bitmap.
    fn dirty_pages(&self) -> u64;
    /// Take dirty pages into `batch`, scanning the bitmap in address order from where the
    /// previous call stopped and wrapping at the end of RAM, clearing their bits. Keep taking
    /// while the batch's wire cost (per `cost`) is below `max_bytes`, so the last page may go
    /// over, as QEMU checks the rate limit before each page. Stop early only when the bitmap
    /// is clean.
    fn take_dirty_pages(
        &mut self,
        max_bytes: u64,
        cost: PageCost,
        batch: &mut PageBatch,
    ) -> Result<(), BackendError>;
    /// Switch dirty logging off (end of migration, any exit path).
    fn stop_dirty_tracking(&mut self);

    /// `cpu_throttle_set` (pct in 1..=99) or, with 0, `cpu_throttle_stop`.
    fn set_throttle_pct(&mut self, pct: u32);
    /// Dirty-limit (`qmp_set_vcpu_dirty_limit` for every vCPU, or with `None`
    /// `qmp_cancel_vcpu_dirty_limit`): measure each vCPU's dirty rate every period and adjust
    /// its sleep per dirty-ring-full as [`super::dirty_limit::DirtyLimitController`] does.
    /// A backend without per-vCPU dirty rings refuses, as QEMU does without `dirty-ring-size`.
    fn set_vcpu_dirty_limit(
        &mut self,
        limit: Option<super::dirty_limit::VcpuDirtyLimit>,
    ) -> Result<(), BackendError> {
        match limit {
            None => Ok(()),
            Some(_) => Err(DIRTY_RING_REQUIRED.into()),
        }
    }
    /// Whether [`Guest::set_vcpu_dirty_limit`] can work: checked when a migration with the
    /// `dirty-limit` capability starts, as QEMU checks when the capability is set.
    fn check_dirty_limit(&self) -> Result<(), BackendError> {
        Err(DIRTY_RING_REQUIRED.into())
    }
    /// `vm_stop` for stop-and-copy: every vCPU out of guest mode, throttle sleeps cut short.
    fn vm_stop(&mut self) -> Result<(), BackendError>;
    /// Resume the source guest after a failed or cancelled migration.
    fn vm_start(&mut self) -> Result<(), BackendError>;
    /// Append the device state (vCPU registers etc.) sent after the last RAM pages.
    fn save_device_state(&mut self, out: &mut Vec<u8>) -> Result<(), BackendError>;

    /// Counters for reports.
    fn observe(&mut self) -> GuestObservation;
}

/// The migration stream to the destination.
pub trait Link {
    /// Send a batch of pages; returns the bytes put on the wire, headers included.
    fn send_pages(&mut self, batch: &PageBatch) -> Result<u64, BackendError>;
    /// End-of-section marker after each `ram_save_iterate` (QEMU's `RAM_SAVE_FLAG_EOS`).
    fn send_end_of_iteration(&mut self) -> Result<u64, BackendError>;
    /// Device state, sent after the final RAM pages during stop-and-copy.
    fn send_device_state(&mut self, state: &[u8]) -> Result<u64, BackendError>;
    /// What one page costs on this link's wire.
    fn page_cost(&self) -> PageCost;
    /// How many bytes the core should hand over per batch: about 1 MiB for a real socket (so
    /// the 50 ms and rate-limit checks stay precise), a few ms of link time for a simulated one.
    fn batch_bytes_hint(&self) -> u64;
    /// The stream is complete: the destination loads it (and, where it can, verifies memory
    /// and resumes the guest). Returns any bytes this exchange put on the wire. An error
    /// means the destination does not run the guest, except [`HandoverUnconfirmed`]: it may.
    fn complete(&mut self) -> Result<u64, BackendError>;
    /// The migration failed or was cancelled: tell the destination, if it can still hear.
    fn abort(&mut self, reason: &str);
}

/// Cancellation shared between a user's Ctrl-C handler, a real clock's sleeps and the core.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    /// Read on every turn of the migration loop: an atomic, not the mutex.
    flag: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the migration to stop; wakes anyone waiting in [`CancelToken::wait_timeout`].
    pub fn cancel(&self) {
        let _guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.flag.store(true, Ordering::SeqCst);
        self.inner.wake.notify_all();
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// Sleep up to `timeout`, returning early (true) if cancelled.
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> bool {
        let guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (_guard, _) = self
            .inner
            .wake
            .wait_timeout_while(guard, timeout, |_| !self.is_cancelled())
            .unwrap_or_else(|e| e.into_inner());
        self.is_cancelled()
    }
}
