//! Guest RAM: one anonymous mapping from guest-physical 0, through vm-memory, with a dirty
//! bitmap of its own for writes the host makes (an emulated device's DMA), which KVM's dirty
//! log never sees.

use vm_memory::bitmap::AtomicBitmap;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::error::KvmError;

/// Target page size.
pub const PAGE_BYTES: u64 = 4096;

/// Guest memory of one VM.
pub struct GuestRam {
    mem: GuestMemoryMmap<AtomicBitmap>,
    host: *mut u8,
    bytes: u64,
}

// SAFETY: `host` points into the mapping owned by `mem`, which lives as long as `self` and is
// itself Send + Sync; concurrent access to guest memory is the nature of a VMM (the guest writes
// it through KVM at any time) and every access below goes through raw pointers or vm-memory.
unsafe impl Send for GuestRam {}
// SAFETY: as above.
unsafe impl Sync for GuestRam {}

impl GuestRam {
    /// Map `bytes` of zeroed guest memory at guest-physical 0.
    pub fn new(bytes: u64) -> Result<Self, KvmError> {
        if !((8 << 20)..=(1 << 40)).contains(&bytes) || bytes % (2 << 20) != 0 {
            return Err(KvmError::MemorySize(bytes));
        }
        Self::map(bytes)
    }

    /// Memory of any whole number of pages up to 1 GiB, for what handles guest memory without
    /// a VM (the migration stream's fuzz harness); a VM needs the sizes [`GuestRam::new`]
    /// accepts.
    pub fn without_vm(bytes: u64) -> Result<Self, KvmError> {
        if !(PAGE_BYTES..=(1 << 30)).contains(&bytes) || bytes % PAGE_BYTES != 0 {
            return Err(KvmError::MemorySize(bytes));
        }
        Self::map(bytes)
    }

    fn map(bytes: u64) -> Result<Self, KvmError> {
        let mem =
            GuestMemoryMmap::<AtomicBitmap>::from_ranges(&[(GuestAddress(0), bytes as usize)])
                .map_err(|source| KvmError::GuestMemory { bytes, source })?;
        let host = mem
            .get_host_address(GuestAddress(0))
            .map_err(|_| KvmError::MemorySize(bytes))?;
        // Transparent huge pages, as QEMU asks for guest RAM: far fewer page faults when a
        // destination first fills its memory (KVM still logs dirty pages at 4 KiB).
        // SAFETY: advice on a mapping we own, whole range; failure only loses the advice.
        unsafe {
            libc::madvise(host.cast(), bytes as usize, libc::MADV_HUGEPAGE);
        }
        Ok(Self { mem, host, bytes })
    }

    /// Fault in (and zero) all of guest memory now, so that filling it later (a migration
    /// destination receiving pages) does not pay the first-touch faults page by page.
    /// Best effort: kernels before 5.14 lack MADV_POPULATE_WRITE and nothing happens.
    pub fn prefault(&self) {
        // SAFETY: advice on the whole mapping we own; populating writes zeroes the kernel would
        // write on first touch anyway, and no vCPU runs yet.
        unsafe {
            libc::madvise(
                self.host.cast(),
                self.bytes as usize,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }

    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Pages.
    pub fn pages(&self) -> u64 {
        self.bytes / PAGE_BYTES
    }

    /// Host address of guest-physical 0 (for KVM's memory slot).
    pub fn host_base(&self) -> u64 {
        self.host as u64
    }

    /// Raw pointer to a page. Panics if `gfn` is not below [`GuestRam::pages`], in release
    /// builds too: the pointer is handed to `writev` and hashed, so an out-of-range one would
    /// read another mapping of this process (a bounds check is noise beside a 4 KiB copy).
    pub fn page_ptr(&self, gfn: u64) -> *mut u8 {
        assert!(
            gfn < self.pages(),
            "guest page {gfn} outside guest memory ({} pages)",
            self.pages()
        );
        // SAFETY: gfn < pages (checked above), so the offset stays inside the mapping.
        unsafe { self.host.add((gfn * PAGE_BYTES) as usize) }
    }

    /// Copy bytes into guest memory as a device would (tracked in the host dirty bitmap).
    pub fn write(&self, gpa: u64, data: &[u8]) -> bool {
        self.mem.write_slice(data, GuestAddress(gpa)).is_ok()
    }

    /// Read an aligned u64 the guest may be writing concurrently (progress counters).
    pub fn read_u64(&self, gpa: u64) -> u64 {
        self.mem.read_obj::<u64>(GuestAddress(gpa)).unwrap_or(0)
    }

    /// Write an aligned u64 (tracked).
    pub fn write_u64(&self, gpa: u64, value: u64) -> bool {
        self.mem.write_obj(value, GuestAddress(gpa)).is_ok()
    }

    /// True if the page holds only zeroes. Reads with volatile loads: the guest may be writing
    /// the page right now (a torn answer is harmless: such a page is dirty again and resent).
    pub fn is_zero_page(&self, gfn: u64) -> bool {
        let p = self.page_ptr(gfn) as *const u64;
        let mut acc = 0u64;
        for chunk in 0..(PAGE_BYTES as usize / 8 / 8) {
            for i in 0..8 {
                // SAFETY: inside the page, 8-byte aligned (pages are 4 KiB aligned).
                acc |= unsafe { p.add(chunk * 8 + i).read_volatile() };
            }
            if acc != 0 {
                return false;
            }
        }
        true
    }

    /// Guest memory as a byte slice, for when no vCPU runs (digests, loading, receiving).
    ///
    /// # Safety
    /// No vCPU of this VM may be running and nothing else may access the range while the
    /// slice lives (guest memory is shared, not owned by `&self`).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, gpa: u64, len: u64) -> Option<&mut [u8]> {
        let end = gpa.checked_add(len)?;
        if end > self.bytes {
            return None;
        }
        // SAFETY: the range is inside the mapping (checked above); exclusivity is the caller's
        // promise.
        Some(unsafe { std::slice::from_raw_parts_mut(self.host.add(gpa as usize), len as usize) })
    }

    /// Pages written by the host since the last call, one bit per page, and reset.
    pub fn take_host_dirty(&self) -> Vec<u64> {
        self.mem
            .iter()
            .next()
            .map(|r| std::ops::Deref::deref(r).bitmap().get_and_reset())
            .unwrap_or_default()
    }

    /// Forget host writes so far (loading the image is not a migration write).
    pub fn reset_host_dirty(&self) {
        if let Some(r) = self.mem.iter().next() {
            std::ops::Deref::deref(r).bitmap().reset();
        }
    }

    /// CRC32 of each page in `[first_gfn, first_gfn + out.len())`, computed on up to `threads`
    /// threads. Only meaningful while no vCPU runs.
    pub fn page_digests(&self, first_gfn: u64, out: &mut [u32], threads: usize) {
        self.digests_with(first_gfn, out, threads, |_, page| crc32fast::hash(page));
    }

    /// Like [`GuestRam::page_digests`] over all of memory, but each CRC32 starts from `key`
    /// and covers the page's number before its bytes: digests of one migration session (whose
    /// key both ends derive) say nothing about another's, and a page at the wrong address
    /// does not match.
    pub fn keyed_page_digests(&self, key: u32, out: &mut [u32], threads: usize) {
        self.digests_with(0, out, threads, |gfn, page| {
            keyed_page_digest(key, gfn, page)
        });
    }

    /// [`keyed_page_digest`] of page `gfn` as it is now. The guest may be writing it: a torn
    /// read gives a digest of bytes that were never all there at once, which is harmless
    /// where a write also marks the page dirty (it is sent, and digested, again).
    pub fn keyed_digest_of(&self, key: u32, gfn: u64) -> u32 {
        let p = self.page_ptr(gfn);
        // SAFETY: a whole page inside the mapping (page_ptr checks gfn); reading bytes a vCPU
        // may write concurrently is what a VMM's migration does (see above).
        let page = unsafe { std::slice::from_raw_parts(p, PAGE_BYTES as usize) };
        keyed_page_digest(key, gfn, page)
    }

    fn digests_with(
        &self,
        first_gfn: u64,
        out: &mut [u32],
        threads: usize,
        digest: impl Fn(u64, &[u8]) -> u32 + Sync,
    ) {
        assert!(first_gfn + out.len() as u64 <= self.pages());
        let digest = &digest;
        let chunk = out.len().div_ceil(threads.max(1)).max(1);
        let queue = std::sync::Mutex::new(
            out.chunks_mut(chunk)
                .enumerate()
                .map(|(i, part)| (first_gfn + (i * chunk) as u64, part))
                .collect::<Vec<_>>(),
        );
        let work = || loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((base, part)) = next else { break };
            for (j, d) in part.iter_mut().enumerate() {
                let gfn = base + j as u64;
                let p = self.page_ptr(gfn);
                // SAFETY: a whole page inside the mapping (asserted above); the guest is
                // stopped (see above), so nothing changes it while it is hashed.
                let page = unsafe { std::slice::from_raw_parts(p, PAGE_BYTES as usize) };
                *d = digest(gfn, page);
            }
        };
        std::thread::scope(|s| {
            // Helper threads only speed it up: one the host refuses (RLIMIT_NPROC, memory)
            // leaves its chunks to the others and to this thread, never a panic mid-switchover.
            for _ in 1..threads.max(1) {
                let helper = std::thread::Builder::new().name("page-digest".into());
                if helper.spawn_scoped(s, work).is_err() {
                    break;
                }
            }
            work();
        });
    }
}

/// CRC32 of a page's number and bytes, starting from `key`: the digest both ends of a
/// migration session compare (see `transport::verify`).
pub fn keyed_page_digest(key: u32, gfn: u64, page: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(key);
    h.update(&gfn.to_le_bytes());
    h.update(page);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every thread count, more threads than pages included, gives each page its own digest.
    #[test]
    fn digests_are_the_same_whatever_the_thread_count() {
        let ram = GuestRam::without_vm(1 << 20).unwrap();
        for gfn in 0..ram.pages() {
            assert!(ram.write_u64(gfn * PAGE_BYTES + 8 * (gfn % 7), gfn * 0x9e37_79b9 + 1));
        }
        let one_by_one: Vec<u32> = (0..ram.pages())
            .map(|gfn| ram.keyed_digest_of(7, gfn))
            .collect();
        for threads in [0, 1, 2, 3, 8, 1000] {
            let mut out = vec![0u32; ram.pages() as usize];
            ram.keyed_page_digests(7, &mut out, threads);
            assert_eq!(out, one_by_one, "{threads} threads");
        }
        let mut tail = vec![0u32; 10];
        ram.page_digests(ram.pages() - 10, &mut tail, 3);
        let mut whole = vec![0u32; ram.pages() as usize];
        ram.page_digests(0, &mut whole, 2);
        assert_eq!(tail, whole[whole.len() - 10..]);
    }

    #[test]
    fn the_last_page_is_reachable() {
        let ram = GuestRam::new(8 << 20).unwrap();
        assert!(ram.is_zero_page(ram.pages() - 1));
    }

    /// Checked in release builds too (`cargo test --release` is how the suite runs).
    #[test]
    #[should_panic(expected = "guest page 2048 outside guest memory (2048 pages)")]
    fn a_page_past_the_end_is_refused() {
        let ram = GuestRam::new(8 << 20).unwrap();
        ram.page_ptr(ram.pages());
    }
}
