//! What a workload guest runs: its page pattern, pace, hot/cold split and vCPUs, parsed from
//! their command-line spellings and checked before an image is written.

use std::fmt;

use super::layout;

/// Byte the workload writes to COM1 after a sweep (as QEMU's own auto-converge test guest).
pub const MARKER_BYTE: u8 = b'B';

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
    pub(super) fn code(self) -> u32 {
        match self {
            Pattern::Sequential => 0,
            Pattern::Random => 1,
            Pattern::HotCold => 2,
            Pattern::Idle => 3,
        }
    }

    pub(super) fn from_code(c: u32) -> Option<Self> {
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
    pub(super) fn encode(self) -> (u32, u64) {
        match self {
            Pace::None => (0, 0),
            Pace::CpuSpin {
                iterations_per_write,
            } => (1, u64::from(iterations_per_write)),
            Pace::WallClock { writes_per_s } => (2, writes_per_s),
        }
    }

    pub(super) fn decode(kind: u32, value: u64) -> Option<Self> {
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
    pub(super) fn hot_split(&self) -> (u64, u64, u64) {
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

    pub(super) fn validate(&self) -> Result<(), GuestSpecError> {
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

    pub(super) fn mapped_bytes(&self) -> u64 {
        self.min_mem_bytes().div_ceil(1 << 30).max(1) << 30
    }
}

/// A workload that cannot be built.
#[derive(Debug, Clone, PartialEq, displaydoc::Display, thiserror::Error)]
pub enum GuestSpecError {
    /// unknown pattern {0:?} (expected sequential, random, hotcold or idle)
    Pattern(String),
    /// cannot read pace {0:?} (expected none, cpu:ITERATIONS_PER_WRITE or wall:PAGES_PER_S, e.g.
    /// cpu:2000 or wall:50000)
    Pace(String),
    /// cannot read hot spec {0:?} (expected WSS%:WRITES%, e.g. 10%:90%, each 1..99)
    Hot(String),
    /// {0} vCPUs: an image supports 1 to 32
    Vcpus(u32),
    /// working set of {0} bytes: it must be a whole number of 4 KiB pages, at least one per vCPU,
    /// and end below 1 TiB
    Wss(u64),
    /// internal error assembling the guest code: {0}
    Assemble(String),
}
