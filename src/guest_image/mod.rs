//! `autoconv guest build`: workload guests as multiboot v1 ELF images, written without any
//! external toolchain.
//!
//! The same file boots under `qemu-system-x86_64 -enable-kvm -m 512 -kernel guest.img` and under
//! `autoconv run --kvm guest.img`. The workload runs in 64-bit long mode at CPL3 (guest code at
//! CPL0 is emulated ~1000x slower on this project's hosts), writes pages in a chosen pattern and
//! pace, counts its progress in guest memory ([`layout::STATUS_GPA`]) and writes one marker byte
//! to COM1 every `marker_every_sweeps` sweeps.

mod asm;
pub mod layout;

use std::fmt;

/// Byte the workload writes to COM1 after a sweep (as QEMU's own auto-converge test guest).
pub const MARKER_BYTE: u8 = b'B';
/// Magic at the start of the info block: identifies an autoconv image and its format version.
pub const INFO_MAGIC: &[u8; 8] = b"ACGUEST1";
/// Offset of the TSC frequency (kHz, u64) in the info block: the VMM patches it at load time.
pub const INFO_TSC_KHZ_OFFSET: u64 = 64;
const INFO_BYTES: usize = 112;

/// Multiboot v1 header magic.
pub const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;

/// How the workload picks the page to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Each page of the working set in address order (QEMU's test guest, the reference run).
    Sequential,
    /// Uniformly random pages of the working set (xorshift64).
    Random,
    /// A hot part of the working set gets most of the writes, the rest are spread over the
    /// cold part.
    HotCold,
    /// No page writes: spins with `pause`.
    Idle,
}

impl Pattern {
    fn code(self) -> u32 {
        match self {
            Pattern::Sequential => 0,
            Pattern::Random => 1,
            Pattern::HotCold => 2,
            Pattern::Idle => 3,
        }
    }

    fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            0 => Pattern::Sequential,
            1 => Pattern::Random,
            2 => Pattern::HotCold,
            3 => Pattern::Idle,
            _ => return None,
        })
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Sequential => "sequential",
            Pattern::Random => "random",
            Pattern::HotCold => "hotcold",
            Pattern::Idle => "idle",
        }
    }
}

impl std::str::FromStr for Pattern {
    type Err = GuestSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "sequential" | "seq" => Pattern::Sequential,
            "random" => Pattern::Random,
            "hotcold" | "hot-cold" => Pattern::HotCold,
            "idle" => Pattern::Idle,
            _ => return Err(GuestSpecError::Pattern(s.to_string())),
        })
    }
}

/// How fast the workload writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the vCPU goes.
    None,
    /// CPU-time pace: a fixed spin (`dec; jnz` iterations) after each write. Throttling the
    /// vCPU slows the writes in proportion.
    CpuSpin {
        /// Spin iterations per page write.
        iterations_per_write: u32,
    },
    /// Wall-clock pace: TSC deadlines with catch-up. Throttling does not slow the writes until
    /// the vCPU can no longer keep up (it bursts after each throttle sleep).
    WallClock {
        /// Page writes per second per vCPU.
        writes_per_s: u64,
    },
}

impl Pace {
    fn encode(self) -> (u32, u64) {
        match self {
            Pace::None => (0, 0),
            Pace::CpuSpin {
                iterations_per_write,
            } => (1, u64::from(iterations_per_write)),
            Pace::WallClock { writes_per_s } => (2, writes_per_s),
        }
    }

    fn decode(kind: u32, value: u64) -> Option<Self> {
        Some(match kind {
            0 => Pace::None,
            1 => Pace::CpuSpin {
                iterations_per_write: u32::try_from(value).ok()?,
            },
            2 => Pace::WallClock {
                writes_per_s: value,
            },
            _ => return None,
        })
    }
}

impl fmt::Display for Pace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pace::None => f.write_str("none"),
            Pace::CpuSpin {
                iterations_per_write,
            } => write!(f, "cpu:{iterations_per_write}"),
            Pace::WallClock { writes_per_s } => write!(f, "wall:{writes_per_s}"),
        }
    }
}

impl std::str::FromStr for Pace {
    type Err = GuestSpecError;
    /// "none", "cpu:ITERATIONS" (spin per write), "wall:PAGES_PER_S" (per vCPU).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GuestSpecError::Pace(s.to_string());
        if s == "none" {
            return Ok(Pace::None);
        }
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        let value: u64 = value.replace('_', "").parse().map_err(|_| bad())?;
        if value == 0 {
            return Err(bad());
        }
        match kind {
            "cpu" => Ok(Pace::CpuSpin {
                iterations_per_write: u32::try_from(value).map_err(|_| bad())?,
            }),
            "wall" => Ok(Pace::WallClock {
                writes_per_s: value,
            }),
            _ => Err(bad()),
        }
    }
}

/// The hot part of a hot/cold workload: `hot_wss_pct` % of the working set receives
/// `hot_write_pct` % of the writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotSpec {
    /// Share of the working set that is hot, %.
    pub hot_wss_pct: u32,
    /// Share of the writes that go to the hot part, %.
    pub hot_write_pct: u32,
}

impl Default for HotSpec {
    fn default() -> Self {
        Self {
            hot_wss_pct: 10,
            hot_write_pct: 90,
        }
    }
}

impl std::str::FromStr for HotSpec {
    type Err = GuestSpecError;
    /// "WSS%:WRITES%", e.g. "10%:90%" (the % signs are optional).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GuestSpecError::Hot(s.to_string());
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        let pct = |t: &str| -> Result<u32, GuestSpecError> {
            let v: u32 = t.trim().trim_end_matches('%').parse().map_err(|_| bad())?;
            if (1..=99).contains(&v) {
                Ok(v)
            } else {
                Err(bad())
            }
        };
        Ok(HotSpec {
            hot_wss_pct: pct(a)?,
            hot_write_pct: pct(b)?,
        })
    }
}

/// A workload guest to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestSpec {
    /// Which pages are written.
    pub pattern: Pattern,
    /// Working set in bytes, shared evenly between the vCPUs (starts at 4 MiB).
    pub wss_bytes: u64,
    /// Hot/cold split (hotcold pattern only).
    pub hot: HotSpec,
    /// Write pacing.
    pub pace: Pace,
    /// vCPUs the workload expects (each gets a slice of the working set). Under QEMU without
    /// `-smp`, only vCPU 0 runs, on its slice.
    pub vcpus: u32,
    /// One marker byte to COM1 every this many sweeps (0: never).
    pub marker_every_sweeps: u32,
    /// PRNG seed (random and hotcold patterns).
    pub seed: u32,
    /// TSC frequency the wall-clock pace assumes when the VMM does not patch it in (kHz).
    pub tsc_khz: u64,
}

impl Default for GuestSpec {
    fn default() -> Self {
        Self {
            pattern: Pattern::Sequential,
            wss_bytes: 256 << 20,
            hot: HotSpec::default(),
            pace: Pace::None,
            vcpus: 1,
            marker_every_sweeps: 1,
            seed: 1,
            tsc_khz: 0,
        }
    }
}

impl GuestSpec {
    /// Pages each vCPU writes.
    pub fn slice_pages(&self) -> u64 {
        (self.wss_bytes / 4096 / u64::from(self.vcpus.max(1))).max(1)
    }

    /// (hot pages, cold pages, threshold on the low 32 random bits for a hot write).
    fn hot_split(&self) -> (u64, u64, u64) {
        let pages = self.slice_pages();
        let hot = (pages * u64::from(self.hot.hot_wss_pct) / 100).clamp(1, pages.max(2) - 1);
        let cold = pages.saturating_sub(hot).max(1);
        let threshold = (u64::from(self.hot.hot_write_pct) << 32) / 100;
        (hot, cold, threshold)
    }

    /// Guest memory the workload needs: up to the end of its working set.
    pub fn min_mem_bytes(&self) -> u64 {
        layout::WSS_BASE_GPA + self.slice_pages() * 4096 * u64::from(self.vcpus.max(1))
    }

    fn validate(&self) -> Result<(), GuestSpecError> {
        if self.vcpus == 0 || self.vcpus > layout::MAX_VCPUS {
            return Err(GuestSpecError::Vcpus(self.vcpus));
        }
        if self.wss_bytes < 4096 * u64::from(self.vcpus) || self.wss_bytes % 4096 != 0 {
            return Err(GuestSpecError::Wss(self.wss_bytes));
        }
        if self.mapped_bytes() > layout::MAX_MAPPED_GIB << 30 {
            return Err(GuestSpecError::Wss(self.wss_bytes));
        }
        Ok(())
    }

    fn mapped_bytes(&self) -> u64 {
        self.min_mem_bytes().div_ceil(1 << 30).max(1) << 30
    }
}

/// A workload that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuestSpecError {
    /// unknown pattern {0:?} (expected sequential, random, hotcold or idle)
    #[error("unknown pattern {0:?} (expected sequential, random, hotcold or idle)")]
    Pattern(String),
    /// cannot read pace {0:?} (expected none, cpu:ITERATIONS_PER_WRITE or wall:PAGES_PER_S)
    #[error(
        "cannot read pace {0:?} (expected none, cpu:ITERATIONS_PER_WRITE or wall:PAGES_PER_S, e.g. cpu:2000 or wall:50000)"
    )]
    Pace(String),
    /// cannot read hot spec {0:?} (expected WSS%:WRITES%, e.g. 10%:90%, each 1..99)
    #[error("cannot read hot spec {0:?} (expected WSS%:WRITES%, e.g. 10%:90%, each 1..99)")]
    Hot(String),
    /// vCPUs must be 1..=32
    #[error("{0} vCPUs: an image supports 1 to 32")]
    Vcpus(u32),
    /// bad working set size
    #[error(
        "working set of {0} bytes: it must be a whole number of 4 KiB pages, at least one per vCPU, and end below 1 TiB"
    )]
    Wss(u64),
    /// The assembler refused the generated code (a bug in autoconv).
    #[error("internal error assembling the guest code: {0}")]
    Assemble(String),
}

/// What an autoconv image says about itself (its info block), read back by the VMM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoBlock {
    /// vCPUs the workload was built for.
    pub vcpus: u32,
    /// Access pattern.
    pub pattern: Pattern,
    /// Pacing.
    pub pace: Pace,
    /// Working set bytes (all vCPUs).
    pub wss_bytes: u64,
    /// Where the working set starts.
    pub wss_base_gpa: u64,
    /// Hot/cold split.
    pub hot: HotSpec,
    /// Marker every N sweeps.
    pub marker_every_sweeps: u32,
    /// TSC kHz baked in at build time.
    pub tsc_khz: u64,
    /// The CPL3 workload entry (rdi = vCPU index).
    pub user_entry: u64,
    /// The 64-bit CPL0 trampoline (edi = vCPU index, esp = its boot stack) that `iretq`s to
    /// the workload: where a VMM's fast path starts vCPUs.
    pub trampoline: u64,
    /// Bytes identity-mapped by the image's page tables.
    pub mapped_bytes: u64,
    /// The status page.
    pub status_gpa: u64,
}

impl InfoBlock {
    /// Guest memory the workload touches (end of its working set).
    pub fn min_mem_bytes(&self) -> u64 {
        self.wss_base_gpa + self.wss_bytes
    }

    fn encode(&self, seed: u32) -> [u8; INFO_BYTES] {
        let mut b = [0u8; INFO_BYTES];
        b[0..8].copy_from_slice(INFO_MAGIC);
        put32(&mut b, 8, 1);
        put32(&mut b, 12, self.vcpus);
        put32(&mut b, 16, self.pattern.code());
        let (kind, value) = self.pace.encode();
        put32(&mut b, 20, kind);
        put64(&mut b, 24, value);
        put64(&mut b, 32, self.wss_bytes);
        put64(&mut b, 40, self.wss_base_gpa);
        put32(&mut b, 48, self.hot.hot_wss_pct);
        put32(&mut b, 52, self.hot.hot_write_pct);
        put32(&mut b, 56, self.marker_every_sweeps);
        put32(&mut b, 60, seed);
        put64(&mut b, INFO_TSC_KHZ_OFFSET as usize, self.tsc_khz);
        put64(&mut b, 72, self.user_entry);
        put64(&mut b, 80, self.mapped_bytes);
        put64(&mut b, 88, self.status_gpa);
        put64(&mut b, 96, self.trampoline);
        b
    }

    /// Read an info block from the bytes at [`layout::INFO_GPA`]. `None` if these bytes are not
    /// an autoconv info block of a known version, or are inconsistent.
    pub fn decode(b: &[u8]) -> Option<InfoBlock> {
        if b.len() < INFO_BYTES || &b[0..8] != INFO_MAGIC || get32(b, 8) != 1 {
            return None;
        }
        let info = InfoBlock {
            vcpus: get32(b, 12),
            pattern: Pattern::from_code(get32(b, 16))?,
            pace: Pace::decode(get32(b, 20), get64(b, 24))?,
            wss_bytes: get64(b, 32),
            wss_base_gpa: get64(b, 40),
            hot: HotSpec {
                hot_wss_pct: get32(b, 48),
                hot_write_pct: get32(b, 52),
            },
            marker_every_sweeps: get32(b, 56),
            tsc_khz: get64(b, INFO_TSC_KHZ_OFFSET as usize),
            user_entry: get64(b, 72),
            mapped_bytes: get64(b, 80),
            status_gpa: get64(b, 88),
            trampoline: get64(b, 96),
        };
        let sane = (1..=layout::MAX_VCPUS).contains(&info.vcpus)
            && info.status_gpa == layout::STATUS_GPA
            && info.wss_base_gpa.checked_add(info.wss_bytes).is_some()
            && [info.user_entry, info.trampoline]
                .iter()
                .all(|a| (layout::CODE_GPA..layout::CODE_GPA + layout::CODE_MAX_BYTES).contains(a));
        sane.then_some(info)
    }
}

impl fmt::Display for InfoBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} over {} on {} vCPU(s), pace {}",
            self.pattern.name(),
            crate::units::format_bytes(self.wss_bytes),
            self.vcpus,
            self.pace
        )?;
        if self.pattern == Pattern::HotCold {
            write!(
                f,
                ", {}% of the set takes {}% of the writes",
                self.hot.hot_wss_pct, self.hot.hot_write_pct
            )?;
        }
        Ok(())
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}
fn get64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Build the image: a 32-bit ELF (as QEMU's multiboot loader wants) with one loadable segment at
/// [`layout::LOAD_GPA`] holding the multiboot header, info block, status page, code, GDT and
/// page tables.
pub fn build_image(spec: &GuestSpec) -> Result<Vec<u8>, GuestSpecError> {
    spec.validate()?;
    let code = asm::generate(spec).map_err(GuestSpecError::Assemble)?;
    if code.bytes.len() as u64 > layout::CODE_MAX_BYTES {
        return Err(GuestSpecError::Assemble(format!(
            "{} bytes of code do not fit in {}",
            code.bytes.len(),
            layout::CODE_MAX_BYTES
        )));
    }
    let mapped_bytes = spec.mapped_bytes();
    let gib = mapped_bytes >> 30;
    let seg_len = (layout::PD_GPA - layout::LOAD_GPA + gib * 4096) as usize;
    let mut seg = vec![0u8; seg_len];
    let at = |gpa: u64| (gpa - layout::LOAD_GPA) as usize;

    // Multiboot v1 header: no flags needed (the ELF headers say where to load).
    let flags: u32 = 0;
    put32(&mut seg, 0, MULTIBOOT_MAGIC);
    put32(&mut seg, 4, flags);
    put32(
        &mut seg,
        8,
        0u32.wrapping_sub(MULTIBOOT_MAGIC.wrapping_add(flags)),
    );

    let info = InfoBlock {
        vcpus: spec.vcpus,
        pattern: spec.pattern,
        pace: spec.pace,
        wss_bytes: spec.slice_pages() * 4096 * u64::from(spec.vcpus),
        wss_base_gpa: layout::WSS_BASE_GPA,
        hot: spec.hot,
        marker_every_sweeps: spec.marker_every_sweeps,
        tsc_khz: spec.tsc_khz,
        user_entry: code.user_entry,
        trampoline: code.trampoline,
        mapped_bytes,
        status_gpa: layout::STATUS_GPA,
    };
    seg[at(layout::INFO_GPA)..at(layout::INFO_GPA) + INFO_BYTES]
        .copy_from_slice(&info.encode(spec.seed));

    // lgdt operand (32-bit form: limit, base).
    let g = at(layout::GDT_PTR_GPA);
    seg[g..g + 2].copy_from_slice(&((layout::GDT_BYTES - 1) as u16).to_le_bytes());
    put32(&mut seg, g + 2, layout::GDT_GPA as u32);

    let c = at(layout::CODE_GPA);
    seg[c..c + code.bytes.len()].copy_from_slice(&code.bytes);

    let g = at(layout::GDT_GPA);
    for (i, e) in layout::GDT_ENTRIES.iter().enumerate() {
        put64(&mut seg, g + 8 * i, *e);
    }
    let (lo, hi) = tss_descriptor(layout::TSS_GPA, layout::TSS_LIMIT);
    put64(&mut seg, g + 48, lo);
    put64(&mut seg, g + 56, hi);
    // TSS: an all-zero I/O bitmap (every port allowed) ended by 0xff.
    put32(
        &mut seg,
        at(layout::TSS_GPA) + 0x64,
        layout::TSS_IOMAP_OFFSET << 16,
    );
    seg[at(layout::TSS_GPA) + layout::TSS_LIMIT as usize] = 0xff;

    // Identity map [0, mapped_bytes) with 2 MiB user pages.
    put64(
        &mut seg,
        at(layout::PML4_GPA),
        layout::PDPT_GPA | layout::PTE_PRESENT_RW_USER,
    );
    for i in 0..gib {
        let pd = layout::PD_GPA + i * 4096;
        put64(
            &mut seg,
            at(layout::PDPT_GPA) + 8 * i as usize,
            pd | layout::PTE_PRESENT_RW_USER,
        );
        for j in 0..512u64 {
            let gpa = (i << 30) | (j << 21);
            put64(
                &mut seg,
                at(pd) + 8 * j as usize,
                gpa | layout::PTE_PRESENT_RW_USER | layout::PDE_LARGE,
            );
        }
    }

    Ok(elf32(
        &seg,
        layout::LOAD_GPA as u32,
        layout::CODE_GPA as u32,
    ))
}

/// A 64-bit TSS descriptor (two GDT slots), type 9 (available).
pub fn tss_descriptor(base: u64, limit: u32) -> (u64, u64) {
    let lo = u64::from(limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89u64 << 40)
        | (u64::from(limit >> 16 & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    (lo, base >> 32)
}

/// Offset of the segment in the ELF file (the multiboot header must be in the first 8 KiB).
const ELF_SEGMENT_OFFSET: usize = 0x1000;

fn elf32(segment: &[u8], paddr: u32, entry: u32) -> Vec<u8> {
    let mut f = vec![0u8; ELF_SEGMENT_OFFSET];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 1; // ELFCLASS32
    f[5] = 1; // little endian
    f[6] = 1; // EV_CURRENT
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..28].copy_from_slice(&entry.to_le_bytes());
    f[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
    f[40..42].copy_from_slice(&52u16.to_le_bytes()); // e_ehsize
    f[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
    f[44..46].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    f[46..48].copy_from_slice(&40u16.to_le_bytes()); // e_shentsize
    let ph = 52;
    let len = segment.len() as u32;
    f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f[ph + 4..ph + 8].copy_from_slice(&(ELF_SEGMENT_OFFSET as u32).to_le_bytes());
    f[ph + 8..ph + 12].copy_from_slice(&paddr.to_le_bytes()); // vaddr
    f[ph + 12..ph + 16].copy_from_slice(&paddr.to_le_bytes()); // paddr
    f[ph + 16..ph + 20].copy_from_slice(&len.to_le_bytes());
    f[ph + 20..ph + 24].copy_from_slice(&len.to_le_bytes());
    f[ph + 24..ph + 28].copy_from_slice(&7u32.to_le_bytes()); // RWX
    f[ph + 28..ph + 32].copy_from_slice(&0x1000u32.to_le_bytes());
    f.extend_from_slice(segment);
    f
}

/// The host's TSC frequency in kHz, measured against CLOCK_MONOTONIC over ~20 ms. Baked into
/// images so the wall-clock pace is right under any VMM on this kind of machine.
pub fn measure_tsc_khz() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        let t0 = unsafe { core::arch::x86_64::_rdtsc() };
        let w0 = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // SAFETY: as above.
        let t1 = unsafe { core::arch::x86_64::_rdtsc() };
        let ns = w0.elapsed().as_nanos().max(1) as u64;
        (t1.wrapping_sub(t0)).saturating_mul(1_000_000) / ns
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_is_a_32bit_multiboot_elf_with_a_readable_info_block() {
        let spec = GuestSpec {
            wss_bytes: 64 << 20,
            vcpus: 2,
            tsc_khz: 2_000_000,
            ..GuestSpec::default()
        };
        let img = build_image(&spec).unwrap();
        assert_eq!(&img[0..4], b"\x7fELF");
        assert_eq!(img[4], 1, "ELFCLASS32: QEMU's multiboot refuses 64-bit ELF");
        let mb = &img[ELF_SEGMENT_OFFSET..];
        assert_eq!(get32(mb, 0), MULTIBOOT_MAGIC);
        assert_eq!(
            get32(mb, 0)
                .wrapping_add(get32(mb, 4))
                .wrapping_add(get32(mb, 8)),
            0
        );
        let info = InfoBlock::decode(&mb[0x40..]).unwrap();
        assert_eq!(info.vcpus, 2);
        assert_eq!(info.wss_bytes, 64 << 20);
        assert_eq!(info.tsc_khz, 2_000_000);
        assert_eq!(info.mapped_bytes, 1 << 30);
        assert!(info.user_entry > layout::CODE_GPA);
    }

    #[test]
    fn every_pattern_and_pace_assembles() {
        for pattern in [
            Pattern::Sequential,
            Pattern::Random,
            Pattern::HotCold,
            Pattern::Idle,
        ] {
            for pace in [
                Pace::None,
                Pace::CpuSpin {
                    iterations_per_write: 100,
                },
                Pace::WallClock { writes_per_s: 1000 },
            ] {
                let spec = GuestSpec {
                    pattern,
                    pace,
                    wss_bytes: 8 << 20,
                    ..GuestSpec::default()
                };
                let img = build_image(&spec).unwrap();
                let info = InfoBlock::decode(&img[ELF_SEGMENT_OFFSET + 0x40..]).unwrap();
                assert_eq!((info.pattern, info.pace), (pattern, pace));
            }
        }
    }

    #[test]
    fn options_parse_and_refuse() {
        assert_eq!(
            "cpu:2000".parse::<Pace>().unwrap(),
            Pace::CpuSpin {
                iterations_per_write: 2000
            }
        );
        assert_eq!(
            "wall:50000".parse::<Pace>().unwrap(),
            Pace::WallClock {
                writes_per_s: 50000
            }
        );
        assert!("wall:0".parse::<Pace>().is_err());
        assert!("fast".parse::<Pace>().is_err());
        assert_eq!(
            "10%:90%".parse::<HotSpec>().unwrap(),
            HotSpec {
                hot_wss_pct: 10,
                hot_write_pct: 90
            }
        );
        assert!("10:100".parse::<HotSpec>().is_err());
        assert!("zigzag".parse::<Pattern>().is_err());
        let bad = GuestSpec {
            vcpus: 0,
            ..GuestSpec::default()
        };
        assert!(matches!(build_image(&bad), Err(GuestSpecError::Vcpus(0))));
        let bad = GuestSpec {
            wss_bytes: 1000,
            ..GuestSpec::default()
        };
        assert!(matches!(build_image(&bad), Err(GuestSpecError::Wss(1000))));
    }
}
