//! Per-combination statistics over seeds, and the ranking of policies by an objective.
//!
//! A run that did not complete has no time to converge: it is never averaged into a time and
//! never ranked as one. Statistics are over the runs that completed; a combination where some
//! seeds did not converge ranks after every combination where all did, and one where none did
//! is listed as "did not converge".

use super::table::{RunMetrics, RunsTable};
use std::fmt::Write as _;
use std::io::Write;

/// A figure of merit (lower is better for all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// QEMU's total-time (completed runs only).
    TotalTime,
    /// QEMU's downtime (completed runs only).
    Downtime,
    /// Bytes on the wire.
    Transferred,
    /// vCPU-seconds lost to throttling.
    GuestCpuLost,
    /// dirty-sync-count.
    DirtySyncs,
    /// Highest throttle.
    MaxThrottle,
}

impl Metric {
    /// Every metric, in the order summaries list them.
    pub const ALL: [Metric; 6] = [
        Metric::TotalTime,
        Metric::Downtime,
        Metric::Transferred,
        Metric::GuestCpuLost,
        Metric::DirtySyncs,
        Metric::MaxThrottle,
    ];

    /// The CSV column it reads.
    pub fn column(self) -> &'static str {
        match self {
            Metric::TotalTime => "total_time_ms",
            Metric::Downtime => "downtime_ms",
            Metric::Transferred => "transferred_bytes",
            Metric::GuestCpuLost => "guest_cpu_lost_s",
            Metric::DirtySyncs => "dirty_sync_count",
            Metric::MaxThrottle => "max_throttle_pct",
        }
    }

    /// Short name (`--objective` / `--metric` value).
    pub fn name(self) -> &'static str {
        match self {
            Metric::TotalTime => "total_time",
            Metric::Downtime => "downtime",
            Metric::Transferred => "transferred",
            Metric::GuestCpuLost => "guest_cpu_lost",
            Metric::DirtySyncs => "dirty_syncs",
            Metric::MaxThrottle => "max_throttle",
        }
    }

    /// Read a short name or a column name.
    pub fn parse(text: &str) -> Result<Metric, String> {
        let t = text.trim().replace('-', "_");
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == t || m.column() == t)
            .ok_or_else(|| {
                format!(
                    "unknown metric {text:?}: expected one of {}",
                    Metric::ALL.map(Metric::name).join(", ")
                )
            })
    }

    /// The value for a run; `None` where it has none (times of a run that did not complete).
    pub fn value(self, m: &RunMetrics) -> Option<f64> {
        match self {
            Metric::TotalTime => m.total_time_ms.map(|v| v as f64),
            Metric::Downtime => m.downtime_ms.map(|v| v as f64),
            Metric::Transferred => Some(m.transferred_bytes as f64),
            Metric::GuestCpuLost => Some(m.guest_cpu_lost_s),
            Metric::DirtySyncs => Some(m.dirty_sync_count as f64),
            Metric::MaxThrottle => Some(f64::from(m.max_throttle_pct)),
        }
    }

    /// A value for people: "64.4 s", "297 ms", "64.06 GiB", "82.3 vCPU-s", "21", "80 %".
    pub fn format(self, v: f64) -> String {
        match self {
            Metric::TotalTime => format!("{:.1} s", v / 1000.0),
            Metric::Downtime => format!("{v:.0} ms"),
            Metric::Transferred => crate::units::format_bytes(v.round() as u64),
            Metric::GuestCpuLost => format!("{v:.1} vCPU-s"),
            Metric::DirtySyncs if v.fract() == 0.0 => format!("{v:.0}"),
            Metric::DirtySyncs => format!("{v:.1}"),
            Metric::MaxThrottle => format!("{v:.0} %"),
        }
    }
}

impl Metric {
    /// A value to the unit the figure is measured in, for comparisons where small moves
    /// matter: "95.812 s", "297 ms", "68719476736 B", "82.345678 vCPU-s".
    pub fn format_exact(self, v: f64) -> String {
        match self {
            Metric::TotalTime => format!("{:.3} s", v / 1000.0),
            Metric::Transferred => format!("{v:.0} B"),
            Metric::GuestCpuLost => format!("{v:.6} vCPU-s"),
            other => other.format(v),
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Mean, min, max and sample standard deviation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Sample standard deviation (0 for one value).
    pub sd: f64,
}

impl Stats {
    /// Of `values`, or `None` if empty.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Stats {
            mean,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            sd: var.sqrt(),
        })
    }

    /// max - min.
    pub fn spread(&self) -> f64 {
        self.max - self.min
    }
}

/// One grid point over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct ComboSummary {
    /// Values on each axis.
    pub axis_values: Vec<String>,
    /// Seeds run.
    pub runs: usize,
    /// Of which completed.
    pub completed: usize,
    /// Seeds, in order.
    pub seeds: Vec<u64>,
    /// Per metric (in [`Metric::ALL`] order), over the completed runs.
    pub stats: Vec<Option<Stats>>,
    /// How the runs that did not complete ended (distinct statuses, in order seen).
    pub other_statuses: Vec<String>,
    /// Highest throttle over all runs, completed or not.
    pub max_throttle_pct: u32,
    /// Longest migration time over the runs that did not complete (ms).
    pub gave_up_after_ms: Option<u64>,
}

impl ComboSummary {
    /// Statistics of `metric`.
    pub fn stat(&self, metric: Metric) -> Option<Stats> {
        let i = Metric::ALL.iter().position(|m| *m == metric)?;
        self.stats[i]
    }

    /// 0: every seed converged, 1: some did, 2: none did.
    pub fn class(&self) -> u8 {
        if self.completed == self.runs {
            0
        } else if self.completed > 0 {
            1
        } else {
            2
        }
    }
}

/// Group a table's rows by grid point (in order of first appearance, i.e. grid order).
pub fn summarize(table: &RunsTable) -> Vec<ComboSummary> {
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut members: Vec<Vec<&RunMetrics>> = Vec::new();
    let mut seeds: Vec<Vec<u64>> = Vec::new();
    for row in &table.rows {
        let k = *index.entry(row.axis_values.clone()).or_insert_with(|| {
            order.push(row.axis_values.clone());
            members.push(Vec::new());
            seeds.push(Vec::new());
            order.len() - 1
        });
        members[k].push(&row.metrics);
        seeds[k].push(row.seed);
    }
    order
        .into_iter()
        .zip(members)
        .zip(seeds)
        .map(|((axis_values, runs), seeds)| {
            let done: Vec<&RunMetrics> = runs.iter().copied().filter(|m| m.converged()).collect();
            let mut other_statuses: Vec<String> = Vec::new();
            for m in runs.iter().filter(|m| !m.converged()) {
                if !other_statuses.contains(&m.status) {
                    other_statuses.push(m.status.clone());
                }
            }
            let stats = Metric::ALL
                .iter()
                .map(|metric| {
                    let v: Vec<f64> = done.iter().filter_map(|m| metric.value(m)).collect();
                    Stats::of(&v)
                })
                .collect();
            ComboSummary {
                axis_values,
                runs: runs.len(),
                completed: done.len(),
                seeds,
                stats,
                other_statuses,
                max_throttle_pct: runs.iter().map(|m| m.max_throttle_pct).max().unwrap_or(0),
                gave_up_after_ms: runs
                    .iter()
                    .filter(|m| !m.converged())
                    .map(|m| m.elapsed_ms)
                    .max(),
            }
        })
        .collect()
}

/// Indices into `combos`, best first: every seed converged (by mean objective), then some
/// converged (more converged first), then none; ties in grid order.
pub fn rank_combos(combos: &[ComboSummary], objective: Metric) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..combos.len()).collect();
    idx.sort_by(|&a, &b| {
        let (ca, cb) = (&combos[a], &combos[b]);
        let frac = |c: &ComboSummary| c.completed as f64 / c.runs.max(1) as f64;
        let obj = |c: &ComboSummary| c.stat(objective).map_or(f64::INFINITY, |s| s.mean);
        ca.class()
            .cmp(&cb.class())
            .then(frac(cb).total_cmp(&frac(ca)))
            .then(obj(ca).total_cmp(&obj(cb)))
            .then(a.cmp(&b))
    });
    idx
}

/// Write the per-combination summary CSV: axes, runs, completed, then mean/min/max/sd of every
/// metric over the completed runs (empty when none completed).
pub fn write_combos<W: Write>(
    out: W,
    axes: &[String],
    combos: &[ComboSummary],
) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = axes.to_vec();
    header.extend(["runs".into(), "completed".into()]);
    for m in Metric::ALL {
        for s in ["mean", "min", "max", "sd"] {
            header.push(format!("{}_{s}", m.column()));
        }
    }
    w.write_record(&header)?;
    for c in combos {
        let mut r = c.axis_values.clone();
        r.push(c.runs.to_string());
        r.push(c.completed.to_string());
        for s in &c.stats {
            match s {
                Some(s) => {
                    r.extend([s.mean, s.min, s.max, s.sd].map(|v| format!("{v:.3}")));
                }
                None => r.extend(std::iter::repeat_n(String::new(), 4)),
            }
        }
        w.write_record(&r)?;
    }
    w.flush()?;
    Ok(())
}

/// The ranked table for a terminal: the `top` best grid points by `objective`, then those that
/// did not converge (listed as such, never with a time).
pub fn format_ranking(
    axes: &[String],
    combos: &[ComboSummary],
    objective: Metric,
    top: usize,
) -> String {
    let order = rank_combos(combos, objective);
    let multi_seed = combos.iter().any(|c| c.runs > 1);
    let label = |c: &ComboSummary| {
        if axes.is_empty() {
            "(no grid)".to_string()
        } else {
            axes.iter()
                .zip(&c.axis_values)
                .map(|(a, v)| format!("{a}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let width = combos
        .iter()
        .map(|c| label(c).len())
        .max()
        .unwrap_or(10)
        .max(10);
    let mut out = String::new();
    let converging: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| combos[i].class() < 2)
        .collect();
    let never: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| combos[i].class() == 2)
        .collect();
    let _ = writeln!(
        out,
        "best {} of {} grid points by {} (lower is better){}:",
        converging.len().min(top),
        combos.len(),
        objective,
        if multi_seed {
            "; mean over the seeds that converged [min .. max]"
        } else {
            ""
        }
    );
    if converging.is_empty() {
        let _ = writeln!(out, "  (none converged)");
    } else {
        let _ = writeln!(
            out,
            "  {:>4}  {:<width$}  {:>9}  {:>10}  {:>8}  {:>11}  {:>6}  {:>12}  {:>14}",
            "rank",
            "grid point",
            "converged",
            "total time",
            "downtime",
            "transferred",
            "syncs",
            "max throttle",
            "guest CPU lost"
        );
    }
    for (rank, &i) in converging.iter().take(top).enumerate() {
        let c = &combos[i];
        let cell = |m: Metric| match c.stat(m) {
            None => "-".to_string(),
            Some(s) => m.format(s.mean),
        };
        let _ = writeln!(
            out,
            "  {:>4}  {:<width$}  {:>9}  {:>10}  {:>8}  {:>11}  {:>6}  {:>12}  {:>14}",
            rank + 1,
            label(c),
            format!("{}/{}", c.completed, c.runs),
            cell(Metric::TotalTime),
            cell(Metric::Downtime),
            cell(Metric::Transferred),
            cell(Metric::DirtySyncs),
            cell(Metric::MaxThrottle),
            cell(Metric::GuestCpuLost),
        );
        if multi_seed {
            if let Some(s) = c.stat(objective) {
                let _ = writeln!(
                    out,
                    "  {:>4}  {:<width$}  {} [{} .. {}], sd {}",
                    "",
                    "",
                    objective,
                    objective.format(s.min),
                    objective.format(s.max),
                    objective.format(s.sd)
                );
            }
        }
    }
    if converging.len() > top {
        let _ = writeln!(out, "  ... {} more that converged", converging.len() - top);
    }
    if !never.is_empty() {
        let _ = writeln!(
            out,
            "did not converge ({} of {} grid points):",
            never.len(),
            combos.len()
        );
        for &i in never.iter().take(top) {
            let c = &combos[i];
            let _ = writeln!(
                out,
                "  {:<width$}  did not converge: {} after {:.0} s{}, throttle reached {} %",
                label(c),
                c.other_statuses.join("/"),
                c.gave_up_after_ms.unwrap_or(0) as f64 / 1000.0,
                if c.runs > 1 {
                    format!(" ({} seeds)", c.runs)
                } else {
                    String::new()
                },
                c.max_throttle_pct
            );
        }
        if never.len() > top {
            let _ = writeln!(out, "  ... {} more", never.len() - top);
        }
    }
    out
}

/// The ranking as JSON: every grid point, best first (as [`format_ranking`] orders them), with
/// its values typed (numbers, booleans, bytes) and mean/min/max/sd of every metric over the
/// seeds that converged.
pub fn ranking_json(
    axes: &[String],
    combos: &[ComboSummary],
    objective: Metric,
) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let points: Vec<Value> = rank_combos(combos, objective)
        .into_iter()
        .enumerate()
        .map(|(rank, i)| {
            let c = &combos[i];
            let values: Map<String, Value> = axes
                .iter()
                .zip(&c.axis_values)
                .map(|(a, v)| (a.clone(), crate::report::json::typed_value(v)))
                .collect();
            let stats: Map<String, Value> = Metric::ALL
                .iter()
                .zip(&c.stats)
                .map(|(m, s)| {
                    let v = s.map_or(
                        Value::Null,
                        |s| json!({"mean": s.mean, "min": s.min, "max": s.max, "sd": s.sd}),
                    );
                    (m.column().to_string(), v)
                })
                .collect();
            json!({
                "rank": rank + 1,
                "values": values,
                "runs": c.runs,
                "completed": c.completed,
                "converged": c.completed == c.runs,
                "seeds": c.seeds,
                "stats": stats,
                "other_statuses": c.other_statuses,
                "max_throttle_pct": c.max_throttle_pct,
                "gave_up_after_ms": c.gave_up_after_ms,
            })
        })
        .collect();
    json!({"objective": objective.name(), "axes": axes, "points": points})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::table::RunRow;

    fn run(v: &str, seed: u64, total: Option<u64>) -> RunRow {
        RunRow {
            run_index: 0,
            run_count: 0,
            scenario: "s".into(),
            sets: vec![],
            axis_values: vec![v.into()],
            seed,
            metrics: RunMetrics {
                status: if total.is_some() {
                    "completed"
                } else {
                    "not-converged"
                }
                .into(),
                total_time_ms: total,
                elapsed_ms: total.unwrap_or(600_000),
                downtime_ms: total.map(|_| 100),
                transferred_bytes: 1,
                dirty_sync_count: 1,
                max_throttle_pct: 1,
                throttle_steps: vec![],
                guest_cpu_lost_s: 0.0,
                guest_pages_written: 0,
            },
        }
    }

    #[test]
    fn non_converged_runs_are_never_a_time() {
        let t = RunsTable {
            axes: vec!["x".into()],
            rows: vec![
                run("a", 1, Some(5000)),
                run("a", 2, Some(7000)),
                run("b", 1, Some(1000)),
                run("b", 2, None), // fastest mean if the failure were counted as anything
                run("c", 1, None),
                run("c", 2, None),
                run("d", 1, Some(6000)),
                run("d", 2, Some(6000)),
            ],
        };
        let combos = summarize(&t);
        assert_eq!(combos.len(), 4);
        let a = combos[0].stat(Metric::TotalTime).unwrap();
        assert_eq!(
            (a.mean, a.min, a.max, a.spread()),
            (6000.0, 5000.0, 7000.0, 2000.0)
        );
        assert!((a.sd - 1414.2135).abs() < 1e-3);
        assert_eq!(combos[1].completed, 1);
        assert_eq!(combos[1].stat(Metric::TotalTime).unwrap().mean, 1000.0);
        assert!(combos[2].stat(Metric::TotalTime).is_none());
        // a (6.0 s) and d (6.0 s, tie: grid order), then b (half converged), then c (none).
        assert_eq!(rank_combos(&combos, Metric::TotalTime), [0, 3, 1, 2]);
        let text = format_ranking(&t.axes, &combos, Metric::TotalTime, 10);
        assert!(
            text.contains("x=c         did not converge: not-converged after 600 s (2 seeds)"),
            "{text}"
        );
        // c appears only in the "did not converge" list, never in the ranked, timed part.
        let (ranked, failed) = text.split_once("did not converge (").unwrap();
        assert!(!ranked.contains("x=c"), "{text}");
        assert!(failed.contains("x=c"), "{text}");
        assert!(text.contains("1/2"), "{text}");
    }

    #[test]
    fn metric_names() {
        assert_eq!(Metric::parse("total_time").unwrap(), Metric::TotalTime);
        assert_eq!(Metric::parse("total_time_ms").unwrap(), Metric::TotalTime);
        assert_eq!(
            Metric::parse("guest-cpu-lost").unwrap(),
            Metric::GuestCpuLost
        );
        assert!(Metric::parse("speed")
            .unwrap_err()
            .contains("expected one of"));
    }
}
