//! Scenario files: a guest people recognise (memory, vCPUs, regions with access patterns and
//! write rates), the host's costs, the link, and the migration parameters under QEMU's names.
//! Every key is documented in README.md and in the shipped scenarios.
//!
//! This module holds what a scenario is; `read` turns a parsed document ([`doc`]) into a
//! checked [`Scenario`], [`settings`] names its migration settings for summaries, and
//! [`calibrate`] turns a measured profile into a region's workload. The simulator compiles a
//! scenario into its own model (`crate::sim::compile`).

pub mod calibrate;
pub mod doc;
mod profile_region;
mod read;
pub mod settings;
mod values;

use crate::migration::MigrationConfig;
use calibrate::{ProfileAccess, ThrottleCurve};
use doc::{apply_overrides, parse_document, parse_override, Table};
pub use doc::{Context, Override, ScenarioError};
use serde::Serialize;
pub use settings::{migration_config_from_sets, migration_settings_json};
use std::path::Path;

/// The only page size modelled: x86's `TARGET_PAGE_SIZE`.
pub const PAGE_SIZE_BYTES: u64 = 4096;
/// The simulated host's dirty ring per vCPU: QEMU's suggested first value for
/// `dirty-ring-size`.
pub const DEFAULT_DIRTY_RING_SIZE: u64 = 4096;
/// The page-exact model keeps a few bits to bytes per page: keep it to guests it can serve.
pub const PAGE_EXACT_MAX_BYTES: u64 = 16 << 30;

/// Which RAM model simulates the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Counts and closed forms, any size (default).
    Aggregate,
    /// One bit per page, every page choice drawn: the yardstick for small guests.
    PageExact,
}

/// How a region's pages are written.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "pattern")]
pub enum Pattern {
    /// Sweeps in address order; with N vCPUs, each sweeps its own 1/N slice.
    Sequential,
    /// Uniformly random pages.
    Random,
    /// Uniformly random within a hot set and a cold set, by share of writes.
    Hotcold {
        /// Size of the hot set (at the region's start).
        hot_bytes: u64,
        /// Share of writes that go to the hot set (%).
        hot_writes_pct: f64,
    },
    /// Holds data, never written during the migration.
    Static,
    /// Written as a measured profile says (`autoconv profile`, real or simulated): the rate at
    /// each throttle comes from the profile, by an equivalent writer over the region's pages
    /// (see [`calibrate`]).
    Profile {
        /// The profile CSV, as resolved (relative to the scenario file's directory).
        profile: String,
        /// Page choice of the equivalent writer.
        access: ProfileAccess,
        /// Equivalent write rate at each measured throttle level.
        curve: ThrottleCurve,
    },
}

/// A rate change over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseSpec {
    /// Migration time it starts (s).
    pub start_s: f64,
    /// Write rate as a percentage of `write_rate_pages_s`.
    pub rate_pct: f64,
}

/// A region of guest memory and the workload writing it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionSpec {
    /// Name (for `--set region.NAME.KEY` and reports).
    pub name: String,
    /// Guest-physical offset.
    pub offset_bytes: u64,
    /// Size.
    pub size_bytes: u64,
    /// Access pattern.
    #[serde(flatten)]
    pub pattern: Pattern,
    /// Page writes per second into the region with the guest unthrottled, all writers together.
    pub write_rate_pages_s: f64,
    /// vCPUs running the CPU-bound part.
    pub vcpus: u32,
    /// Share of the writes that need guest CPU (slowed by throttling); the rest is device DMA.
    pub cpu_bound_pct: f64,
    /// Share of the region's pages holding data at boot; the rest are zero pages until written.
    pub filled_pct: f64,
    /// Rate changes over time.
    pub phases: Vec<PhaseSpec>,
}

/// The guest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GuestSpec {
    /// RAM.
    pub memory_bytes: u64,
    /// vCPUs (all are throttled).
    pub vcpus: u32,
    /// RAM model.
    pub model: ModelKind,
    /// Device state sent at switchover.
    pub device_state_bytes: u64,
    /// How long the workload runs before the migration starts (s), turning zero pages into
    /// data.
    pub warmup_s: f64,
}

/// Costs the host adds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostSpec {
    /// vCPU time of the write-protect fault on the first write to a page after a harvest (us).
    pub dirty_fault_us: f64,
    /// Time one dirty-log harvest takes per GiB of guest memory (us).
    pub dirty_sync_us_per_gib: f64,
    /// How late the migration thread wakes from its rate-limit sleep (us).
    pub timer_slack_us: f64,
    /// Entries of each vCPU's KVM dirty ring (QEMU's `-accel kvm,dirty-ring-size=N`); 0 = no
    /// dirty ring, which makes QEMU refuse `dirty-limit`.
    pub dirty_ring_size: u64,
}

/// The network between source and destination.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkSpec {
    /// Capacity of the wire (bytes/s); `max-bandwidth` limits within it.
    pub bandwidth_bytes_s: u64,
    /// Bytes each page carries on the wire beyond its 4096 (a zero page: these + 1). QEMU's RAM
    /// stream has an 8-byte header; autoconv's VMM sends a 4-byte digest per page and a 16-byte
    /// header per run of up to 1024 pages: 4. The rate limit and QEMU's measured bandwidth
    /// count these bytes while `remaining` counts pages x 4096, so this decides at which window
    /// a pass falls under `threshold_size` (README, Fidelity: the 256 MiB/s gap).
    pub page_header_bytes: u64,
}

/// QEMU's RAM stream: the 8-byte offset-and-flags header before each page.
pub const QEMU_PAGE_HEADER_BYTES: u64 = 8;

/// A complete, checked scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Name (default: the file's stem).
    pub name: String,
    /// What it models.
    pub description: String,
    /// Seed used unless `--seed` says otherwise.
    pub seed: u64,
    /// The guest.
    pub guest: GuestSpec,
    /// Its regions, sorted by offset.
    pub regions: Vec<RegionSpec>,
    /// Host costs.
    pub host: HostSpec,
    /// The link.
    pub link: LinkSpec,
    /// Migration parameters and autoconv settings.
    pub migration: MigrationConfig,
}

/// A parsed file, ready to be built with any overrides (parse once, build many: sweeps).
#[derive(Clone, Debug)]
pub struct ScenarioSource {
    /// The file as the user named it.
    pub path: String,
    /// Default name: the file's stem.
    pub stem: String,
    doc: Table,
}

impl ScenarioSource {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        Self::parse(&shown, &stem, &text)
    }

    /// Parse `text` as if read from `path`.
    pub fn parse(path: &str, stem: &str, text: &str) -> Result<Self, ScenarioError> {
        Ok(Self {
            path: path.to_string(),
            stem: stem.to_string(),
            doc: parse_document(path, text)?,
        })
    }

    /// Build with `--set` arguments applied (in order; later ones win).
    pub fn build(&self, sets: &[String]) -> Result<Scenario, ScenarioError> {
        let overrides = sets
            .iter()
            .enumerate()
            .map(|(i, s)| parse_override(s, i))
            .collect::<Result<Vec<_>, _>>()?;
        self.build_with(&overrides)
    }

    /// Build with already parsed overrides.
    pub fn build_with(&self, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
        let mut doc = self.doc.clone();
        apply_overrides(&mut doc, overrides)?;
        let ctx = Context {
            path: self.path.clone(),
            sets: overrides.iter().map(|o| o.arg.clone()).collect(),
        };
        read::read_scenario(&ctx, &self.stem, &doc)
    }
}

impl Scenario {
    /// Load `path` and apply `sets`.
    pub fn load(path: &Path, sets: &[String]) -> Result<Scenario, ScenarioError> {
        ScenarioSource::load(path)?.build(sets)
    }

    /// Guest pages.
    pub fn total_pages(&self) -> u64 {
        self.guest.memory_bytes / PAGE_SIZE_BYTES
    }
}
