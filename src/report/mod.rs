//! Run outputs other tools can read: `timeseries.csv` (one row per ~100 ms window),
//! `events.csv` (syncs, throttle steps, switchover) and `summary.json`. Both backends write
//! them through here, so a simulated and a real run compare column for column.
//!
//! A run directory appears whole or not at all: files are written into a hidden sibling and
//! renamed into place at the end. Nothing autoconv did not write is ever replaced, moved or
//! deleted: see [`write_dir_atomically`] and [`write_file_atomically`].

pub mod host;
pub mod json;
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
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum ReportError {
    /// cannot write {path}: {source}
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// {path} exists and is not a directory: refusing to replace it
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// refusing to write into {path}: it is not empty and not autoconv's output (no
    /// .autoconv-output in it); choose another directory
    NotOurs {
        /// The path.
        path: PathBuf,
    },
    /// {path} is not a regular file: refusing to replace it
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// cannot encode {what}: {message}
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
    /// [`json::FORMAT_VERSION`]: what a reader of this file can rely on.
    pub format_version: u32,
    /// Scenario name (or guest image for KVM runs).
    pub scenario: String,
    /// Seed (simulator) or null.
    pub seed: Option<u64>,
    /// "sim" or "kvm".
    pub backend: String,
    /// How the migration ended, as the core reports it.
    #[serde(flatten)]
    pub outcome: MigrationOutcome,
    /// The outcome's figures as QEMU's `query-migrate` names them, in QEMU's units.
    #[serde(rename = "query-migrate")]
    pub query_migrate: serde_json::Value,
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
            format_version: json::FORMAT_VERSION,
            query_migrate: json::query_migrate(&outcome),
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

/// The file that marks a directory as autoconv's output: a short JSON naming the command that
/// wrote it and the files it wrote. Only such a directory (or an empty one) is ever written
/// into; files in it that the marker does not list (a user's notes, `autoconv plot`'s
/// pictures) are kept when it is written again.
pub const OUTPUT_MARKER: &str = ".autoconv-output";

/// Files every version of autoconv has written into its output directories: a directory that
/// holds nothing else (output of a version from before the marker) counts as autoconv's own.
const KNOWN_OUTPUT_FILES: &[&str] = &[
    "timeseries.csv",
    "events.csv",
    "summary.json",
    "serial.txt",
    "incoming.json",
    "runs.csv",
    "combos.csv",
    "sweep.json",
];

/// What is at an output directory's path.
enum Existing {
    Nothing,
    /// An empty directory, or autoconv's own output (with the files it wrote there).
    Ours(Vec<String>),
}

/// Refuse `dir` as an output directory unless it is absent, empty or autoconv's own output
/// (see [`OUTPUT_MARKER`]). Commands call it before they start, so a long run is not wasted on
/// a refusal at the end.
pub fn check_output_dir(dir: &Path) -> Result<(), ReportError> {
    existing_output(dir).map(|_| ())
}

fn existing_output(dir: &Path) -> Result<Existing, ReportError> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(io(dir)(e)),
    };
    if !meta.is_dir() {
        return Err(ReportError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Ok(Existing::Ours(Vec::new()));
    }
    if names.iter().any(|n| n == OUTPUT_MARKER) {
        let marker = dir.join(OUTPUT_MARKER);
        let text = fs::read_to_string(&marker).map_err(io(&marker))?;
        let listed = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("files")?.as_array().map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str())
                        // Only plain names: a marker cannot make autoconv touch anything
                        // outside the directory it sits in.
                        .filter(|f| is_plain_name(f))
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
            })
            .unwrap_or_default();
        return Ok(Existing::Ours(listed));
    }
    if names
        .iter()
        .all(|n| KNOWN_OUTPUT_FILES.contains(&n.as_str()))
    {
        return Ok(Existing::Ours(names));
    }
    Err(ReportError::NotOurs {
        path: dir.to_path_buf(),
    })
}

/// A name that stays inside the directory it is joined to: not empty, no path separator, not
/// `.` or `..`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// The marker's contents: the command line and the files written.
fn marker_json(files: &[&str]) -> Vec<u8> {
    let command: Vec<String> = std::env::args().collect();
    let v = serde_json::json!({
        "written_by": format!("autoconv {}", env!("CARGO_PKG_VERSION")),
        "command": command,
        "files": files,
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

/// Write a directory of files (name, contents) and its [`OUTPUT_MARKER`].
///
/// A new directory is built beside `dir` under a hidden name and renamed into place, so it
/// appears whole or not at all. An existing one is written into only if it is empty or
/// autoconv's own output: each file is staged under a hidden name first and all are renamed
/// at the end; files the previous output wrote and this one does not are removed, and every
/// other file (a user's, a plot) is kept. Anything else at `dir` (a file, a directory of
/// someone else's) is refused with an error naming it, and nothing is touched.
pub fn write_dir_atomically(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), ReportError> {
    for (name, _) in files {
        debug_assert!(is_plain_name(name) && *name != OUTPUT_MARKER, "{name}");
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    let marker = marker_json(&names);
    let mut all: Vec<(&str, &[u8])> = files.to_vec();
    all.push((OUTPUT_MARKER, &marker));
    match existing_output(dir)? {
        Existing::Nothing => write_new_dir(dir, &all),
        Existing::Ours(previous) => {
            write_into_dir(dir, &all)?;
            // What the previous output wrote and this one did not (a KVM run's serial.txt
            // under a simulated run) would be mistaken for part of this one.
            for old in previous {
                if !names.contains(&old.as_str()) && old != OUTPUT_MARKER {
                    let _ = fs::remove_file(dir.join(&old));
                }
            }
            Ok(())
        }
    }
}

fn write_new_dir(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), ReportError> {
    let staging = staging_dir(dir);
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    // create_dir, not create_dir_all: never write into a directory that happens to exist.
    fs::create_dir(&staging).map_err(io(&staging))?;
    let result = (|| {
        for (name, bytes) in files {
            let path = staging.join(name);
            fs::write(&path, bytes).map_err(io(&path))?;
        }
        // rename(2) onto a path that appeared meanwhile fails unless it is an empty
        // directory: nothing of anyone else's can be replaced here.
        fs::rename(&staging, dir).map_err(io(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

fn write_into_dir(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), ReportError> {
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| {
        for (name, bytes) in files {
            let target = dir.join(name);
            if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
                return Err(ReportError::NotAFile { path: target });
            }
            let tmp = staging_dir(&target);
            write_new_file(&tmp, bytes)?;
            staged.push((tmp, target));
        }
        for (tmp, target) in &staged {
            fs::rename(tmp, target).map_err(io(target))?;
        }
        Ok(())
    })();
    if result.is_err() {
        for (tmp, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
    }
    result
}

/// Create `path` (which must not exist) with `bytes`.
fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io(path))?;
    let r = f.write_all(bytes).and_then(|()| f.sync_data());
    if let Err(e) = r {
        drop(f);
        let _ = fs::remove_file(path);
        return Err(io(path)(e));
    }
    Ok(())
}

/// Refuse `path` as an output file unless it is absent or a regular file (which the write
/// replaces: the user named it). A directory, a device, a FIFO or a symlink is never replaced.
pub fn check_output_file(path: &Path) -> Result<(), ReportError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(ReportError::NotAFile {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Write one file via a hidden sibling and a rename, so it appears whole or not at all. An
/// existing regular file at `path` is replaced; anything else there is refused
/// ([`check_output_file`]).
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    check_output_file(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = staging_dir(path);
    write_new_file(&tmp, bytes)?;
    let result = check_output_file(path).and_then(|()| fs::rename(&tmp, path).map_err(io(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A hidden sibling of `path` to build it in.
pub fn staging_dir(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let hidden = format!(".{name}.partial-{}", std::process::id());
    match parent {
        Some(p) => p.join(hidden),
        None => PathBuf::from(hidden),
    }
}
