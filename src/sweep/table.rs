//! `runs.csv`: one row per run of a sweep, carrying everything needed to re-run it (scenario
//! path, `--set`s, grid values, seed) and its outcome. `autoconv merge`, `autoconv check` and
//! `autoconv plot` read it back.
//!
//! Columns, in order:
//! `run_index, run_count, scenario, sets, <one column per grid axis>, seed, status,
//! total_time_ms, elapsed_ms, downtime_ms, transferred_bytes, dirty_sync_count,
//! max_throttle_pct, throttle_steps, guest_cpu_lost_s, guest_pages_written`.
//! The grid axes are the columns between `sets` and `seed`, named as on the command line.
//! `sets` holds the `--set` arguments separated by `;`; `throttle_steps` the percentages in
//! order separated by spaces; `total_time_ms` and `downtime_ms` are empty unless the
//! migration completed. Numbers are printed with fixed decimals so files compare byte for byte.

use crate::migration::{MigrationOutcome, MigrationStatus};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;

/// Columns before the grid axes.
pub const LEAD_COLUMNS: &[&str] = &["run_index", "run_count", "scenario", "sets"];
/// Columns after the grid axes.
pub const TAIL_COLUMNS: &[&str] = &[
    "seed",
    "status",
    "total_time_ms",
    "elapsed_ms",
    "downtime_ms",
    "transferred_bytes",
    "dirty_sync_count",
    "max_throttle_pct",
    "throttle_steps",
    "guest_cpu_lost_s",
    "guest_pages_written",
];

/// A runs CSV that cannot be read or merged.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum TableError {
    /// cannot read {path}: {message}
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// {path}:{line}: {message}
    Invalid {
        /// The file.
        path: String,
        /// Line (1-based; 1 is the header).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// {0}
    Merge(String),
    /// cannot write {path}: {message}
    Write {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// How one run ended: QEMU's end-of-migration figures.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMetrics {
    /// QEMU status name or `not-converged`.
    pub status: String,
    /// Only for a completed migration.
    pub total_time_ms: Option<u64>,
    /// Migration time until it ended, whatever the status.
    pub elapsed_ms: u64,
    /// Only for a completed migration.
    pub downtime_ms: Option<u64>,
    /// Bytes on the wire.
    pub transferred_bytes: u64,
    /// dirty-sync-count.
    pub dirty_sync_count: u64,
    /// Highest throttle set.
    pub max_throttle_pct: u32,
    /// Every percentage set, in order.
    pub throttle_steps: Vec<u32>,
    /// vCPU-seconds lost to throttling (rounded to 1 us).
    pub guest_cpu_lost_s: f64,
    /// Page writes the guest made during the migration.
    pub guest_pages_written: u64,
}

impl RunMetrics {
    /// One run's figures as JSON (a sweep's row, an advise or compare run): autoconv's
    /// unit-suffixed fields.
    pub fn to_json(&self) -> Value {
        let m = self;
        json!({
            "status": m.status,
            "total_time_ms": m.total_time_ms,
            "elapsed_ms": m.elapsed_ms,
            "downtime_ms": m.downtime_ms,
            "transferred_bytes": m.transferred_bytes,
            "dirty_sync_count": m.dirty_sync_count,
            "max_throttle_pct": m.max_throttle_pct,
            "throttle_steps": m.throttle_steps,
            "guest_cpu_lost_s": m.guest_cpu_lost_s,
            "guest_pages_written": m.guest_pages_written,
            "query-migrate": m.query_migrate(),
        })
    }

    /// The `query-migrate` figures a sweep's row keeps (a subset of
    /// [`crate::report::json::query_migrate`]'s).
    pub fn query_migrate(&self) -> Value {
        let m = self;
        let status = if m.status == MigrationStatus::NotConverged.as_str() {
            "active"
        } else {
            m.status.as_str()
        };
        let mut q = Map::new();
        q.insert("status".into(), Value::from(status));
        q.insert(
            "total-time".into(),
            Value::from(m.total_time_ms.unwrap_or(m.elapsed_ms)),
        );
        if let Some(d) = m.downtime_ms {
            q.insert("downtime".into(), Value::from(d));
        }
        q.insert(
            "ram".into(),
            json!({"transferred": m.transferred_bytes, "dirty-sync-count": m.dirty_sync_count}),
        );
        if let Some(&pct) = m.throttle_steps.last() {
            q.insert("cpu-throttle-percentage".into(), Value::from(pct));
        }
        Value::Object(q)
    }

    /// The migration completed.
    pub fn converged(&self) -> bool {
        self.status == MigrationStatus::Completed.as_str()
    }
}

impl From<&MigrationOutcome> for RunMetrics {
    fn from(o: &MigrationOutcome) -> Self {
        Self {
            status: o.status.as_str().to_string(),
            total_time_ms: o.total_time_ms,
            elapsed_ms: o.elapsed_ms,
            downtime_ms: o.downtime_ms,
            transferred_bytes: o.transferred_bytes,
            dirty_sync_count: o.dirty_sync_count,
            max_throttle_pct: o.max_throttle_pct,
            throttle_steps: o.throttle_steps.clone(),
            // Rounded as written, so a row read back equals the row computed.
            guest_cpu_lost_s: (o.guest_cpu_lost_s * 1e6).round() / 1e6,
            guest_pages_written: o.guest_pages_written,
        }
    }
}

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    /// Position in the whole sweep (0-based).
    pub run_index: usize,
    /// Runs in the whole sweep (all shards).
    pub run_count: usize,
    /// Scenario file as named on the command line.
    pub scenario: String,
    /// `--set` arguments applied before the grid values.
    pub sets: Vec<String>,
    /// The value on each grid axis (as `--set` text).
    pub axis_values: Vec<String>,
    /// Seed.
    pub seed: u64,
    /// Outcome.
    pub metrics: RunMetrics,
}

impl RunRow {
    /// Every override that re-creates this run: the `--set`s, then `AXIS=VALUE` per axis.
    pub fn overrides(&self, axes: &[String]) -> Vec<String> {
        let mut all = self.sets.clone();
        all.extend(
            axes.iter()
                .zip(&self.axis_values)
                .map(|(a, v)| format!("{a}={v}")),
        );
        all
    }

    /// "cpu-throttle-initial=20 cpu-throttle-increment=10" (or "(no grid)").
    pub fn point_label(&self, axes: &[String]) -> String {
        if axes.is_empty() {
            return "(no grid)".into();
        }
        axes.iter()
            .zip(&self.axis_values)
            .map(|(a, v)| format!("{a}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn record(&self) -> Vec<String> {
        let m = &self.metrics;
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        let mut r = vec![
            self.run_index.to_string(),
            self.run_count.to_string(),
            self.scenario.clone(),
            self.sets.join(";"),
        ];
        r.extend(self.axis_values.iter().cloned());
        r.extend([
            self.seed.to_string(),
            m.status.clone(),
            opt(m.total_time_ms),
            m.elapsed_ms.to_string(),
            opt(m.downtime_ms),
            m.transferred_bytes.to_string(),
            m.dirty_sync_count.to_string(),
            m.max_throttle_pct.to_string(),
            m.throttle_steps
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            format!("{:.6}", m.guest_cpu_lost_s),
            m.guest_pages_written.to_string(),
        ]);
        r
    }
}

/// A whole runs CSV.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RunsTable {
    /// Grid axis names, in column order.
    pub axes: Vec<String>,
    /// Rows in run order.
    pub rows: Vec<RunRow>,
}

impl RunsTable {
    /// The header line's fields.
    pub fn header(&self) -> Vec<String> {
        LEAD_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .chain(self.axes.iter().cloned())
            .chain(TAIL_COLUMNS.iter().map(|s| s.to_string()))
            .collect()
    }

    /// Write as CSV.
    pub fn write<W: Write>(&self, out: W) -> Result<(), csv::Error> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(self.header())?;
        for row in &self.rows {
            w.write_record(row.record())?;
        }
        w.flush()?;
        Ok(())
    }

    /// The CSV as a string.
    pub fn to_csv_string(&self) -> String {
        let mut buf = Vec::new();
        // Writing to memory cannot fail.
        let _ = self.write(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Read a runs CSV.
    pub fn read(path: &Path) -> Result<RunsTable, TableError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TableError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&shown, &text)
    }

    /// Parse a runs CSV's text (`path` is for messages).
    pub fn parse(path: &str, text: &str) -> Result<RunsTable, TableError> {
        let invalid = |line: u64, message: String| TableError::Invalid {
            path: path.to_string(),
            line,
            message,
        };
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        let header: Vec<String> = r
            .headers()
            .map_err(|e| invalid(1, e.to_string()))?
            .iter()
            .map(str::to_string)
            .collect();
        let n_lead = LEAD_COLUMNS.len();
        let lead_ok = header.len() >= n_lead + TAIL_COLUMNS.len()
            && header[..n_lead]
                .iter()
                .zip(LEAD_COLUMNS)
                .all(|(a, b)| a == b)
            && header[header.len() - TAIL_COLUMNS.len()..]
                .iter()
                .zip(TAIL_COLUMNS)
                .all(|(a, b)| a == b);
        if !lead_ok {
            return Err(invalid(
                1,
                format!(
                    "not a runs CSV from `autoconv sweep`: expected columns {}, <grid axes>, {}",
                    LEAD_COLUMNS.join(","),
                    TAIL_COLUMNS.join(",")
                ),
            ));
        }
        let axes: Vec<String> = header[n_lead..header.len() - TAIL_COLUMNS.len()].to_vec();
        let mut rows = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                invalid(line, e.to_string())
            })?;
            let line = rec.position().map_or(0, |p| p.line());
            let get = |i: usize| rec.get(i).unwrap_or("");
            let col = |name: &str| {
                header
                    .iter()
                    .rposition(|h| h == name)
                    .map_or("", |i| get(i))
            };
            let num = |name: &str| -> Result<u64, TableError> {
                col(name).parse::<u64>().map_err(|_| {
                    invalid(
                        line,
                        format!(
                            "column {name}: expected a whole number, found {:?}",
                            col(name)
                        ),
                    )
                })
            };
            let opt = |name: &str| -> Result<Option<u64>, TableError> {
                if col(name).is_empty() {
                    Ok(None)
                } else {
                    num(name).map(Some)
                }
            };
            let steps = col("throttle_steps")
                .split_whitespace()
                .map(|s| {
                    s.parse::<u32>().map_err(|_| {
                        invalid(
                            line,
                            format!("column throttle_steps: expected percentages, found {s:?}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let lost: f64 = col("guest_cpu_lost_s").parse().map_err(|_| {
                invalid(
                    line,
                    format!(
                        "column guest_cpu_lost_s: expected a number, found {:?}",
                        col("guest_cpu_lost_s")
                    ),
                )
            })?;
            let status = col("status").to_string();
            if status.is_empty() {
                return Err(invalid(line, "column status is empty".into()));
            }
            let sets = get(3);
            rows.push(RunRow {
                run_index: num("run_index")? as usize,
                run_count: num("run_count")? as usize,
                scenario: get(2).to_string(),
                sets: if sets.is_empty() {
                    Vec::new()
                } else {
                    sets.split(';').map(str::to_string).collect()
                },
                axis_values: (n_lead..n_lead + axes.len())
                    .map(|i| get(i).to_string())
                    .collect(),
                seed: num("seed")?,
                metrics: RunMetrics {
                    status,
                    total_time_ms: opt("total_time_ms")?,
                    elapsed_ms: num("elapsed_ms")?,
                    downtime_ms: opt("downtime_ms")?,
                    transferred_bytes: num("transferred_bytes")?,
                    dirty_sync_count: num("dirty_sync_count")?,
                    max_throttle_pct: num("max_throttle_pct")? as u32,
                    throttle_steps: steps,
                    guest_cpu_lost_s: lost,
                    guest_pages_written: num("guest_pages_written")?,
                },
            });
        }
        Ok(RunsTable { axes, rows })
    }
}

/// Join shards of one sweep into the table the unsharded sweep writes: same header, rows in
/// run order, every run exactly once.
pub fn merge_tables(parts: &[(String, RunsTable)]) -> Result<RunsTable, TableError> {
    let merr = |m: String| TableError::Merge(m);
    let Some((first_path, first)) = parts.first() else {
        return Err(merr("nothing to merge: name the shard CSVs".into()));
    };
    let count = first.rows.first().map(|r| r.run_count);
    let mut rows: Vec<Option<(usize, RunRow)>> = Vec::new();
    for (pi, (path, t)) in parts.iter().enumerate() {
        if t.axes != first.axes {
            return Err(merr(format!(
                "{path} has grid axes [{}] but {first_path} has [{}]: not shards of one sweep",
                t.axes.join(", "),
                first.axes.join(", ")
            )));
        }
        for row in &t.rows {
            let expected = count.unwrap_or(row.run_count);
            if row.run_count != expected {
                return Err(merr(format!(
                    "{path}: run {} says the sweep has {} runs, {first_path} says {expected}: not shards of one sweep",
                    row.run_index, row.run_count
                )));
            }
            if row.run_index >= row.run_count {
                return Err(merr(format!(
                    "{path}: run_index {} is not below run_count {}",
                    row.run_index, row.run_count
                )));
            }
            if rows.len() < row.run_count {
                rows.resize(row.run_count, None);
            }
            if let Some((other, _)) = &rows[row.run_index] {
                return Err(merr(format!(
                    "run {} is in both {} and {path}: was a shard given twice?",
                    row.run_index, parts[*other].0
                )));
            }
            rows[row.run_index] = Some((pi, row.clone()));
        }
    }
    let missing: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_none())
        .map(|(i, _)| i)
        .collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(8).map(usize::to_string).collect();
        return Err(merr(format!(
            "{} of {} runs are missing (runs {}{}): is a shard missing?",
            missing.len(),
            rows.len(),
            shown.join(", "),
            if missing.len() > 8 { ", ..." } else { "" }
        )));
    }
    Ok(RunsTable {
        axes: first.axes.clone(),
        rows: rows.into_iter().flatten().map(|(_, r)| r).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize, n: usize, v: &str) -> RunRow {
        RunRow {
            run_index: i,
            run_count: n,
            scenario: "s.toml".into(),
            sets: vec!["auto-converge=on".into(), "guest.memory=1GiB".into()],
            axis_values: vec![v.into()],
            seed: 1,
            metrics: RunMetrics {
                status: if i % 2 == 0 {
                    "completed".into()
                } else {
                    "not-converged".into()
                },
                total_time_ms: (i % 2 == 0).then_some(1234),
                elapsed_ms: 1234,
                downtime_ms: (i % 2 == 0).then_some(12),
                transferred_bytes: 99,
                dirty_sync_count: 3,
                max_throttle_pct: 30,
                throttle_steps: vec![20, 30],
                guest_cpu_lost_s: 1.5,
                guest_pages_written: 7,
            },
        }
    }

    #[test]
    fn round_trip() {
        let t = RunsTable {
            axes: vec!["cpu-throttle-initial".into()],
            rows: (0..4).map(|i| row(i, 4, &(10 * i).to_string())).collect(),
        };
        let text = t.to_csv_string();
        assert!(text.starts_with("run_index,run_count,scenario,sets,cpu-throttle-initial,seed,"));
        let back = RunsTable::parse("x.csv", &text).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.to_csv_string(), text);
    }

    #[test]
    fn merge_needs_every_run_once() {
        let t = |idx: &[usize]| RunsTable {
            axes: vec!["a".into()],
            rows: idx.iter().map(|&i| row(i, 4, "1")).collect(),
        };
        let merged = merge_tables(&[("b".into(), t(&[1, 3])), ("a".into(), t(&[0, 2]))]).unwrap();
        assert_eq!(
            merged.rows.iter().map(|r| r.run_index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let e = merge_tables(&[("a".into(), t(&[0, 2]))]).unwrap_err();
        assert!(
            e.to_string()
                .contains("2 of 4 runs are missing (runs 1, 3)"),
            "{e}"
        );
        let e = merge_tables(&[("a".into(), t(&[0, 1])), ("b".into(), t(&[1, 2, 3]))]).unwrap_err();
        assert!(e.to_string().contains("run 1 is in both a and b"), "{e}");
    }

    #[test]
    fn bad_files_name_the_line() {
        let e = RunsTable::parse("x.csv", "a,b\n1,2\n").unwrap_err();
        assert!(e.to_string().starts_with("x.csv:1: not a runs CSV"), "{e}");
        let t = RunsTable {
            axes: vec!["a".into()],
            rows: vec![row(0, 1, "1")],
        };
        let text = t.to_csv_string().replace(",1234,1234,", ",12x4,1234,");
        let e = RunsTable::parse("x.csv", &text).unwrap_err();
        assert!(
            e.to_string().starts_with("x.csv:2: column total_time_ms"),
            "{e}"
        );
    }
}
