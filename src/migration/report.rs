//! What a migration reports: its status, one sample per ~100 ms window, discrete events, and
//! the outcome. Both backends produce these from the same core, so their files compare directly.

use serde::Serialize;

use super::failure::FailureKind;

/// QEMU's migration states, plus autoconv's own `not-converged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationStatus {
    /// Dirty logging starts, first bitmap sync.
    Setup,
    /// Pre-copy passes.
    Active,
    /// The source is stopped: last pages and device state (stop-and-copy).
    Device,
    /// The destination has everything.
    Completed,
    /// An error ended the migration; the source guest runs on.
    Failed,
    /// Cancel requested, cleaning up.
    Cancelling,
    /// Cancelled; the source guest runs on.
    Cancelled,
    /// autoconv's own: the migration did not complete within the time limit
    /// (QEMU would keep trying forever). Never a time to converge.
    NotConverged,
}

impl MigrationStatus {
    /// The name as QEMU's `query-migrate` prints it (or autoconv's `not-converged`).
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Setup => "setup",
            MigrationStatus::Active => "active",
            MigrationStatus::Device => "device",
            MigrationStatus::Completed => "completed",
            MigrationStatus::Failed => "failed",
            MigrationStatus::Cancelling => "cancelling",
            MigrationStatus::Cancelled => "cancelled",
            MigrationStatus::NotConverged => "not-converged",
        }
    }

    /// True once the migration has ended, whatever the way.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MigrationStatus::Completed
                | MigrationStatus::Failed
                | MigrationStatus::Cancelled
                | MigrationStatus::NotConverged
        )
    }
}

impl std::fmt::Display for MigrationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `timeseries.csv`: the state at the end of a ~100 ms window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Migration time since `migrate` (ms).
    pub t_ms: u64,
    /// Migration status.
    pub status: MigrationStatus,
    /// `cpu-throttle-percentage` (0 when not throttling).
    pub throttle_pct: u32,
    /// Bytes put on the wire so far.
    pub transferred_bytes: u64,
    /// Dirty pages still to send, in bytes (`ram.remaining`).
    pub remaining_bytes: u64,
    /// QEMU's `dirty-pages-rate` (pages/s), measured over the last >= 1 s sync period.
    pub dirty_pages_rate: u64,
    /// QEMU's `dirty-sync-count`.
    pub dirty_sync_count: u64,
    /// QEMU's `expected-downtime` (ms).
    pub expected_downtime_ms: u64,
    /// QEMU's `mbps` over the last window.
    pub mbps: f64,
    /// CPU share the guest's vCPUs got (100 = unthrottled, 0 = stopped), since the last row.
    pub guest_cpu_pct: f64,
    /// Page writes per second the guest made since the last row (its own progress).
    pub guest_write_pages_s: f64,
    /// QEMU's `dirty-limit-throttle-time-per-round` (us; 0 unless dirty-limit is in force).
    pub dirty_limit_throttle_time_per_round_us: u64,
    /// QEMU's `dirty-limit-ring-full-time` (us; 0 unless dirty-limit is in force).
    pub dirty_limit_ring_full_time_us: u64,
}

/// Discrete events for plots and summaries.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A dirty-bitmap sync.
    DirtySync {
        /// When (ms).
        t_ms: u64,
        /// The new `dirty-sync-count`.
        dirty_sync_count: u64,
        /// Pages newly dirty in the bitmap at this sync.
        newly_dirty_pages: u64,
        /// Why the sync ran.
        reason: SyncReason,
    },
    /// `cpu_throttle_set` by auto-converge.
    ThrottleSet {
        /// When (ms).
        t_ms: u64,
        /// The new percentage.
        pct: u32,
    },
    /// Dirty-limit's trigger fired: every vCPU gets a dirty-rate quota.
    DirtyLimitSet {
        /// When (ms).
        t_ms: u64,
        /// `vcpu-dirty-limit` (MB/s).
        quota_mb_s: u64,
    },
    /// The source stopped for stop-and-copy.
    Switchover {
        /// When (ms).
        t_ms: u64,
        /// Bytes still dirty at that moment, before the final sync.
        remaining_bytes: u64,
    },
}

/// Why a dirty-bitmap sync happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncReason {
    /// At setup (the bitmap starts all ones).
    Setup,
    /// The pass drained below `threshold_size`.
    PassEnd,
    /// QEMU 9.2+'s 5 s fallback sync under auto-converge.
    Periodic,
    /// At stop-and-copy.
    Final,
}

/// Receives samples and events as the migration runs. `()` ignores them (sweeps).
pub trait Recorder {
    /// A ~100 ms window ended.
    fn sample(&mut self, _sample: &Sample) {}
    /// Something happened.
    fn event(&mut self, _event: &Event) {}
    /// False when `sample` ignores its argument: the core then spares the guest the
    /// observation each window's sample needs.
    fn wants_samples(&self) -> bool {
        true
    }
}

impl Recorder for () {
    fn wants_samples(&self) -> bool {
        false
    }
}

/// Keeps everything in memory (a few hundred bytes per 100 ms of migration time).
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Samples in time order.
    pub samples: Vec<Sample>,
    /// Events in time order.
    pub events: Vec<Event>,
}

impl Recorder for Timeline {
    fn sample(&mut self, sample: &Sample) {
        self.samples.push(sample.clone());
    }
    fn event(&mut self, event: &Event) {
        self.events.push(event.clone());
    }
}

/// How a migration ended, with QEMU's end-of-migration counters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationOutcome {
    /// Final status.
    pub status: MigrationStatus,
    /// Why it failed, was cancelled or did not converge.
    pub reason: Option<String>,
    /// When `failed`: what kind of failure (typed; `reason` says it in words). None when the
    /// backend cannot tell (QEMU's query-migrate gives only its error text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// Migration time until the migration ended, whatever the status (ms).
    pub elapsed_ms: u64,
    /// QEMU's `total-time`: only for a completed migration (ms).
    pub total_time_ms: Option<u64>,
    /// QEMU's `setup-time` (ms).
    pub setup_time_ms: u64,
    /// QEMU's `downtime`: from stopping the source until it has sent the last byte (ms); only
    /// when completed.
    pub downtime_ms: Option<u64>,
    /// autoconv's own: from stopping the source until the destination confirmed it had
    /// everything (for a real guest: memory verified and guest resumed), the pause the guest
    /// really sees (ms); only when completed.
    pub guest_pause_ms: Option<u64>,
    /// Bytes put on the wire.
    pub transferred_bytes: u64,
    /// Pages sent with their data (`ram.normal`).
    pub normal_pages: u64,
    /// All-zero pages sent as headers (`ram.duplicate`).
    pub zero_pages: u64,
    /// `dirty-sync-count` at the end.
    pub dirty_sync_count: u64,
    /// Every percentage the throttle took, in order (a repeated set at the maximum is listed
    /// once; events keep every set).
    pub throttle_steps: Vec<u32>,
    /// Highest percentage set (0 if never throttled).
    pub max_throttle_pct: u32,
    /// vCPU-seconds the guest spent asleep in the throttle.
    pub guest_cpu_lost_s: f64,
    /// Page writes the guest made during the migration.
    pub guest_pages_written: u64,
    /// With the `dirty-limit` capability: QEMU's `dirty-limit-throttle-time-per-round` (us)
    /// as query-migrate last showed it before the switchover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dirty_limit_throttle_time_per_round_us: Option<u64>,
    /// With the `dirty-limit` capability: QEMU's `dirty-limit-ring-full-time` (us), likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dirty_limit_ring_full_time_us: Option<u64>,
}

impl MigrationOutcome {
    /// A migration that failed before the core ran (e.g. the destination refused the
    /// connection): nothing sent, nothing throttled.
    pub fn failed_before_start(kind: FailureKind, reason: String) -> Self {
        MigrationOutcome {
            status: MigrationStatus::Failed,
            reason: Some(reason),
            failure: Some(kind),
            elapsed_ms: 0,
            total_time_ms: None,
            setup_time_ms: 0,
            downtime_ms: None,
            guest_pause_ms: None,
            transferred_bytes: 0,
            normal_pages: 0,
            zero_pages: 0,
            dirty_sync_count: 0,
            throttle_steps: Vec::new(),
            max_throttle_pct: 0,
            guest_cpu_lost_s: 0.0,
            guest_pages_written: 0,
            dirty_limit_throttle_time_per_round_us: None,
            dirty_limit_ring_full_time_us: None,
        }
    }

    /// True for a completed migration.
    pub fn converged(&self) -> bool {
        self.status == MigrationStatus::Completed
    }
}
