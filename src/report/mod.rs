//! Run outputs other tools can read: `timeseries.csv` (one row per ~100 ms window),
//! `events.csv` (syncs, throttle steps, switchover) and `summary.json`. Both backends write
//! them through here, so a simulated and a real run compare column for column.
//!
//! A run directory appears whole or not at all: files are written into a hidden sibling and
//! renamed into place at the end.

pub mod host;
pub mod profile;

use crate::migration::{Event, MigrationOutcome, Sample, Timeline};
use serde::Serialize;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Columns of `timeseries.csv`, in order.
pub const TIMESERIES_COLUMNS: &[&str] = &[
    "t_ms",
    "status",
    "throttle_pct",
    "transferred_bytes",
    "remaining_bytes",
    "dirty_pages_rate",
    "dirty_sync_count",
    "expected_downtime_ms",
    "mbps",
    "guest_cpu_pct",
    "guest_write_pages_s",
    "dirty_limit_throttle_time_per_round_us",
    "dirty_limit_ring_full_time_us",
];

/// Failure to write outputs.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// cannot write {path}: {source}
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// cannot encode {what}: {message}
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// Which output.
        what: &'static str,
        /// Why.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `summary.json`: what produced the run, the core's outcome (its fields at the top level:
/// status, total_time_ms, downtime_ms, throttle_steps, ...), and every parameter used.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Scenario name (or guest image for KVM runs).
    pub scenario: String,
    /// Seed (simulator) or null.
    pub seed: Option<u64>,
    /// "sim" or "kvm".
    pub backend: String,
    /// How the migration ended, as the core reports it.
    #[serde(flatten)]
    pub outcome: MigrationOutcome,
    /// Every setting used (QEMU parameters under their names, then autoconv's and the guest's).
    pub parameters: serde_json::Value,
    /// Backend-specific fields (e.g. memory_verified for KVM runs).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Summary {
    /// A summary of `outcome`.
    pub fn new(
        scenario: &str,
        seed: Option<u64>,
        backend: &str,
        outcome: &MigrationOutcome,
        parameters: serde_json::Value,
    ) -> Self {
        let mut outcome = outcome.clone();
        outcome.guest_cpu_lost_s = round6(outcome.guest_cpu_lost_s);
        Self {
            scenario: scenario.to_string(),
            seed,
            backend: backend.to_string(),
            outcome,
            parameters,
            extra: serde_json::Map::new(),
        }
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Write the samples as CSV (fixed decimals, so files compare byte for byte).
pub fn write_timeseries<W: Write>(out: W, samples: &[Sample]) -> Result<(), ReportError> {
    let enc = |e: csv::Error| ReportError::Encode {
        what: "timeseries.csv",
        message: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(out);
    w.write_record(TIMESERIES_COLUMNS).map_err(enc)?;
    for s in samples {
        w.write_record([
            s.t_ms.to_string(),
            s.status.as_str().to_string(),
            s.throttle_pct.to_string(),
            s.transferred_bytes.to_string(),
            s.remaining_bytes.to_string(),
            s.dirty_pages_rate.to_string(),
            s.dirty_sync_count.to_string(),
            s.expected_downtime_ms.to_string(),
            format!("{:.3}", s.mbps),
            format!("{:.2}", s.guest_cpu_pct),
            format!("{:.1}", s.guest_write_pages_s),
            s.dirty_limit_throttle_time_per_round_us.to_string(),
            s.dirty_limit_ring_full_time_us.to_string(),
        ])
        .map_err(enc)?;
    }
    w.flush().map_err(|e| ReportError::Encode {
        what: "timeseries.csv",
        message: e.to_string(),
    })
}

/// Write the events as CSV: t_ms, event, value, detail.
pub fn write_events<W: Write>(out: W, events: &[Event]) -> Result<(), ReportError> {
    let enc = |e: csv::Error| ReportError::Encode {
        what: "events.csv",
        message: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["t_ms", "event", "value", "detail"])
        .map_err(enc)?;
    for e in events {
        let row = match e {
            Event::DirtySync {
                t_ms,
                dirty_sync_count,
                newly_dirty_pages,
                reason,
            } => [
                t_ms.to_string(),
                "dirty-sync".to_string(),
                dirty_sync_count.to_string(),
                format!(
                    "{} newly_dirty_pages={newly_dirty_pages}",
                    serde_json::to_value(reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
            ],
            Event::ThrottleSet { t_ms, pct } => [
                t_ms.to_string(),
                "throttle-set".to_string(),
                pct.to_string(),
                String::new(),
            ],
            Event::DirtyLimitSet { t_ms, quota_mb_s } => [
                t_ms.to_string(),
                "dirty-limit-set".to_string(),
                quota_mb_s.to_string(),
                "vcpu-dirty-limit MB/s".to_string(),
            ],
            Event::Switchover {
                t_ms,
                remaining_bytes,
            } => [
                t_ms.to_string(),
                "switchover".to_string(),
                remaining_bytes.to_string(),
                "remaining_bytes".to_string(),
            ],
        };
        w.write_record(&row).map_err(enc)?;
    }
    w.flush().map_err(|e| ReportError::Encode {
        what: "events.csv",
        message: e.to_string(),
    })
}

/// The summary as pretty JSON with a trailing newline.
pub fn summary_json(summary: &Summary) -> Result<String, ReportError> {
    let mut s = serde_json::to_string_pretty(summary).map_err(|e| ReportError::Encode {
        what: "summary.json",
        message: e.to_string(),
    })?;
    s.push('\n');
    Ok(s)
}

/// Write a run directory: timeseries.csv, events.csv, summary.json and any `extra_files`
/// (name, contents), e.g. a real guest's serial.txt, all or nothing (see
/// [`write_dir_atomically`]).
pub fn write_run_dir(
    dir: &Path,
    timeline: &Timeline,
    summary: &Summary,
    extra_files: &[(&str, &[u8])],
) -> Result<(), ReportError> {
    let mut timeseries = Vec::new();
    write_timeseries(&mut timeseries, &timeline.samples)?;
    let mut events = Vec::new();
    write_events(&mut events, &timeline.events)?;
    let summary = summary_json(summary)?;
    let mut files: Vec<(&str, &[u8])> = vec![
        ("timeseries.csv", &timeseries),
        ("events.csv", &events),
        ("summary.json", summary.as_bytes()),
    ];
    files.extend_from_slice(extra_files);
    write_dir_atomically(dir, &files)
}

/// Write a directory of files (name, contents). It is built beside `dir` under a hidden name
/// and renamed into place, replacing an older one, so a reader never sees it half-written and
/// a failure leaves nothing behind.
pub fn write_dir_atomically(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), ReportError> {
    let staging = staging_dir(dir);
    let result = (|| {
        fs::create_dir_all(&staging).map_err(io(&staging))?;
        for (name, bytes) in files {
            let path = staging.join(name);
            fs::write(&path, bytes).map_err(io(&path))?;
        }
        replace_dir(&staging, dir)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Write one file via a hidden sibling and a rename, so it appears whole or not at all.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = staging_dir(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let result = fs::write(&tmp, bytes)
        .map_err(io(&tmp))
        .and_then(|()| fs::rename(&tmp, path).map_err(io(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A hidden sibling of `dir` to build it in.
pub fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    let hidden = format!(".{name}.partial-{}", std::process::id());
    match parent {
        Some(p) => p.join(hidden),
        None => PathBuf::from(hidden),
    }
}

/// Move a finished `staging` directory to `dir`, replacing what was there.
pub fn replace_dir(staging: &Path, dir: &Path) -> Result<(), ReportError> {
    if dir.exists() {
        let old = staging.with_extension("old");
        fs::rename(dir, &old).map_err(io(dir))?;
        fs::rename(staging, dir).map_err(io(dir))?;
        let _ = fs::remove_dir_all(&old);
    } else {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        fs::rename(staging, dir).map_err(io(dir))?;
    }
    Ok(())
}
