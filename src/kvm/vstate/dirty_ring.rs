//! KVM's dirty ring (KVM_CAP_DIRTY_LOG_RING[_ACQ_REL]): each vCPU publishes the pages it
//! dirties in a ring shared with the VMM, instead of a per-slot bitmap.
//!
//! kvm-ioctls maps neither the rings nor KVM_RESET_DIRTY_RINGS, so both are here. Harvesting
//! (by the migration thread at a sync, or by a vCPU thread whose ring filled up) moves entries
//! into a shared atomic bitmap, marks them for reset, and asks KVM to re-protect the pages.

use std::fs::File;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use kvm_bindings::kvm_dirty_gfn;
use vmm_sys_util::ioctl::ioctl;

use super::super::error::KvmError;

/// Ioctl numbers kvm-ioctls does not wrap.
#[allow(missing_docs)]
mod nr {
    use vmm_sys_util::ioctl_io_nr;
    // _IO(KVMIO, 0xc7)
    ioctl_io_nr!(KVM_RESET_DIRTY_RINGS, kvm_bindings::KVMIO, 0xc7);
}

const GFN_F_DIRTY: u32 = 1;
const GFN_F_RESET: u32 = 2;
/// The rings' offset in a vCPU fd's mmap space, in pages (KVM_DIRTY_LOG_PAGE_OFFSET).
const RING_PAGE_OFFSET: i64 = kvm_bindings::KVM_DIRTY_LOG_PAGE_OFFSET as i64;

struct Ring {
    base: *mut kvm_dirty_gfn,
    entries: u32,
    bytes: usize,
    /// Next entry to look at (the ring's fetch index), under the lock that serialises harvests.
    fetch: Mutex<u32>,
    /// Entries harvested from this ring since it was mapped: the pages this vCPU dirtied, as
    /// QEMU's per-vCPU dirty rate counts them (dirty-limit).
    harvested_total: AtomicU64,
}

// SAFETY: `base` is a MAP_SHARED mapping owned by this Ring until Drop; all accesses to the
// entries' flags are atomic, and the fetch index is behind a mutex.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `map`.
        unsafe {
            libc::munmap(self.base.cast(), self.bytes);
        }
    }
}

/// Every vCPU's dirty ring and the pages harvested from them.
pub struct DirtyRings {
    rings: Mutex<Vec<Option<Ring>>>,
    bytes_per_ring: usize,
    /// One bit per page: harvested, not yet taken by a sync.
    harvested: Vec<AtomicU64>,
    /// A dup of the VM fd, for KVM_RESET_DIRTY_RINGS from any thread.
    vm: File,
}

impl DirtyRings {
    /// Rings of `bytes_per_ring` each for a VM (`vm_fd`) of `pages` pages.
    pub(super) fn new(vm_fd: RawFd, bytes_per_ring: usize, pages: u64) -> Result<Self, KvmError> {
        // SAFETY: dup of a valid open fd; the new fd is owned by the File below.
        let fd = unsafe { libc::dup(vm_fd) };
        if fd < 0 {
            return Err(KvmError::DirtyLog(format!(
                "cannot dup the VM fd: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Self {
            rings: Mutex::new(Vec::new()),
            bytes_per_ring,
            harvested: (0..pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            vm: unsafe { File::from_raw_fd(fd) },
        })
    }

    /// Map vCPU `index`'s ring (right after creating the vCPU).
    pub(super) fn map(&self, index: u32, vcpu_fd: RawFd) -> Result<(), KvmError> {
        let page = 4096i64;
        // SAFETY: mapping KVM's ring pages of a vCPU fd at the documented offset, of the size
        // given to KVM_ENABLE_CAP; the result is checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                self.bytes_per_ring,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu_fd,
                RING_PAGE_OFFSET * page,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(KvmError::DirtyLog(format!(
                "cannot map vCPU {index}'s dirty ring: {}",
                std::io::Error::last_os_error()
            )));
        }
        let ring = Ring {
            base: base.cast(),
            entries: (self.bytes_per_ring / std::mem::size_of::<kvm_dirty_gfn>()) as u32,
            bytes: self.bytes_per_ring,
            fetch: Mutex::new(0),
            harvested_total: AtomicU64::new(0),
        };
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        if rings.len() <= index as usize {
            rings.resize_with(index as usize + 1, || None);
        }
        rings[index as usize] = Some(ring);
        Ok(())
    }

    fn harvest_ring(&self, ring: &Ring) -> u64 {
        let mut fetch = ring.fetch.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        loop {
            let i = (*fetch % ring.entries) as usize;
            // SAFETY: i < entries, so the entry lies inside the mapping.
            let entry = unsafe { ring.base.add(i) };
            // SAFETY: the flags word is the entry's first u32, 4-byte aligned, valid for the
            // mapping's lifetime (longer than this borrow), and KVM accesses it atomically too
            // (the ring's acquire/release protocol).
            let flags = unsafe { &*(entry as *const AtomicU32) };
            if flags.load(Ordering::Acquire) & GFN_F_DIRTY == 0 {
                break;
            }
            // SAFETY: the entry is published (DIRTY seen with acquire), so its fields are
            // stable until we hand it back with RESET.
            let (slot, offset) = unsafe { ((*entry).slot, (*entry).offset) };
            if slot == 0 {
                if let Some(w) = self.harvested.get((offset / 64) as usize) {
                    w.fetch_or(1 << (offset % 64), Ordering::Relaxed);
                }
            }
            flags.store(GFN_F_RESET, Ordering::Release);
            *fetch = fetch.wrapping_add(1);
            n += 1;
        }
        ring.harvested_total.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// KVM_RESET_DIRTY_RINGS with every signal blocked on the calling thread. On this
    /// project's kernels a reset that finds a signal pending (the throttle's kick reaching a
    /// vCPU thread that is emptying its full ring) stops early yet reports success, and some
    /// entries it consumed are never write-protected again: later writes to those pages are
    /// logged nowhere and the destination keeps stale copies (79 pages on a 512 MiB guest).
    /// A kick that arrives meanwhile stays pending and is delivered on return: its handler
    /// sets immediate_exit, so the next KVM_RUN still exits at once. QEMU is immune for a
    /// related reason: its vCPU threads unblock their kick signal only inside KVM_RUN.
    fn reset(&self) -> Result<(), KvmError> {
        let _blocked = SignalsBlocked::new();
        // SAFETY: KVM_RESET_DIRTY_RINGS on a VM fd takes no argument.
        let ret = unsafe { ioctl(&self.vm, nr::KVM_RESET_DIRTY_RINGS()) };
        if ret < 0 {
            return Err(KvmError::Ioctl {
                op: "KVM_RESET_DIRTY_RINGS",
                source: kvm_ioctls::Error::last(),
            });
        }
        Ok(())
    }

    /// A vCPU's ring is full (KVM_EXIT_DIRTY_RING_FULL): empty it so the vCPU can go on.
    pub fn harvest_vcpu(&self, index: u32) -> Result<(), KvmError> {
        {
            let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(Some(r)) = rings.get(index as usize) {
                self.harvest_ring(r);
            }
        }
        self.reset()
    }

    /// Harvest every ring (keeping the pages for the next [`DirtyRings::collect`]) and return
    /// each vCPU's entries harvested since its ring was mapped: QEMU's flush before it measures
    /// per-vCPU dirty rates.
    pub fn flush_counts(&self) -> Result<Vec<u64>, KvmError> {
        let counts = {
            let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
            rings
                .iter()
                .map(|r| match r {
                    Some(r) => {
                        self.harvest_ring(r);
                        r.harvested_total.load(Ordering::Relaxed)
                    }
                    None => 0,
                })
                .collect()
        };
        self.reset()?;
        Ok(counts)
    }

    /// Entries of each ring.
    pub fn entries_per_ring(&self) -> u64 {
        (self.bytes_per_ring / std::mem::size_of::<kvm_dirty_gfn>()) as u64
    }

    /// Harvest every ring and take all pages harvested so far (one bit per page).
    pub fn collect(&self) -> Result<Vec<u64>, KvmError> {
        {
            let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
            for r in rings.iter().flatten() {
                self.harvest_ring(r);
            }
        }
        self.reset()?;
        Ok(self
            .harvested
            .iter()
            .map(|w| w.swap(0, Ordering::Relaxed))
            .collect())
    }
}

/// Every blockable signal blocked on this thread until dropped (the previous mask restored).
struct SignalsBlocked {
    previous: libc::sigset_t,
    /// A signal mask belongs to a thread: the guard must be dropped where it was made.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl SignalsBlocked {
    fn new() -> Self {
        // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask only write the sets
        // they are given, which live on this stack frame. pthread_sigmask cannot fail with a
        // valid `how` and set (and SIGKILL/SIGSTOP are silently left unblocked).
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
            Self {
                previous,
                _not_send: std::marker::PhantomData,
            }
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask `new` saved, on the same thread (the guard is not Send).
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}
