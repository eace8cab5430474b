//! The info block an autoconv image carries at [`layout::INFO_GPA`]: what the workload is,
//! written by the image builder and read back by the VMM (which patches the TSC frequency).

use std::fmt;

use super::layout;
use super::spec::{HotSpec, Pace, Pattern};

/// Magic at the start of the info block: identifies an autoconv image and its format version.
pub const INFO_MAGIC: &[u8; 8] = b"ACGUEST1";
/// Offset of the TSC frequency (kHz, u64) in the info block: the VMM patches it at load time.
pub const INFO_TSC_KHZ_OFFSET: u64 = 64;
/// Bytes of the info block.
pub(super) const INFO_BYTES: usize = 112;

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

    pub(super) fn encode(&self, seed: u32) -> [u8; INFO_BYTES] {
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

pub(super) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub(super) fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
pub(super) fn get32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}
pub(super) fn get64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}
