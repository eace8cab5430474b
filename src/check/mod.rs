//! Regression checks: re-run every row of a baseline runs CSV (scenario, `--set`s, grid values,
//! seed) and compare the outcome with the baseline's.
//!
//! A row regresses when a chosen metric got worse by more than the tolerance (all metrics are
//! lower-is-better), when a run that completed no longer does, or when a run that did not
//! complete now ends differently (e.g. `failed` where it was `not-converged`). Runs that did not
//! complete have no time to compare: only their status is. Simulated runs are deterministic, so
//! the default tolerance is 0: any worsening is reported; the tolerance serves real runs.

pub mod calibration;
pub mod compare;

use crate::scenario::doc::parse_override;
use crate::scenario::{ScenarioError, ScenarioSource};
use crate::sweep::{Metric, RunMetrics, RunRow, RunsTable};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// A baseline that cannot be re-run.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum CheckError {
    /// run {run} of the baseline: {source}
    Scenario {
        /// Baseline run index.
        run: usize,
        /// Why.
        #[source]
        source: ScenarioError,
    },
    /// --tolerance {0}: expected a percentage of 0 or more
    Tolerance(f64),
}

/// How one figure moved.
#[derive(Clone, Debug, PartialEq)]
pub enum Movement {
    /// Status changed (the old and new status names).
    Status {
        /// Baseline status.
        was: String,
        /// Status now.
        now: String,
        /// A regression (lost convergence or a new failure), rather than a gain.
        worse: bool,
    },
    /// A metric changed between two completed runs.
    Metric {
        /// Which.
        metric: Metric,
        /// Baseline value.
        was: f64,
        /// Value now.
        now: f64,
        /// Beyond the tolerance in the bad direction.
        worse: bool,
    },
}

impl Movement {
    /// A regression.
    pub fn is_worse(&self) -> bool {
        match self {
            Movement::Status { worse, .. } | Movement::Metric { worse, .. } => *worse,
        }
    }
}

/// One baseline row re-run.
#[derive(Clone, Debug)]
pub struct RowCheck {
    /// The baseline row.
    pub baseline: RunRow,
    /// The outcome now.
    pub now: RunMetrics,
    /// What moved (empty: unchanged for the metrics checked).
    pub moves: Vec<Movement>,
}

impl RowCheck {
    /// Any regression in this row.
    pub fn regressed(&self) -> bool {
        self.moves.iter().any(Movement::is_worse)
    }
}

/// The whole check.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// Grid axis names of the baseline.
    pub axes: Vec<String>,
    /// Every row, in baseline order.
    pub rows: Vec<RowCheck>,
    /// Metrics compared.
    pub metrics: Vec<Metric>,
    /// Tolerance (%).
    pub tolerance_pct: f64,
}

impl CheckReport {
    /// Rows with a regression.
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|r| r.regressed()).count()
    }

    /// Rows that moved only for the better.
    pub fn improvements(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| !r.moves.is_empty() && !r.regressed())
            .count()
    }

    /// The re-run results as a runs table (same rows, today's outcomes): a refreshed baseline.
    pub fn as_table(&self) -> RunsTable {
        RunsTable {
            axes: self.axes.clone(),
            rows: self
                .rows
                .iter()
                .map(|r| RunRow {
                    metrics: r.now.clone(),
                    ..r.baseline.clone()
                })
                .collect(),
        }
    }
}

/// Compare one outcome with its baseline.
pub fn compare(
    was: &RunMetrics,
    now: &RunMetrics,
    metrics: &[Metric],
    tolerance_pct: f64,
) -> Vec<Movement> {
    let mut moves = Vec::new();
    if was.status != now.status {
        // Losing convergence is always a regression; so is any new way of not completing.
        let worse = !now.converged();
        moves.push(Movement::Status {
            was: was.status.clone(),
            now: now.status.clone(),
            worse,
        });
        return moves;
    }
    if !was.converged() {
        return moves;
    }
    for &m in metrics {
        let (Some(a), Some(b)) = (m.value(was), m.value(now)) else {
            continue;
        };
        if a == b {
            continue;
        }
        let limit = a + a.abs() * tolerance_pct / 100.0;
        moves.push(Movement::Metric {
            metric: m,
            was: a,
            now: b,
            worse: b > limit,
        });
    }
    moves
}

/// Re-run every row of `baseline` (scenario paths relative to the working directory) on the
/// current rayon pool; `done` is called after each run.
pub fn check(
    baseline: &RunsTable,
    metrics: &[Metric],
    tolerance_pct: f64,
    done: &(dyn Fn() + Sync),
) -> Result<CheckReport, CheckError> {
    if !(tolerance_pct.is_finite() && tolerance_pct >= 0.0) {
        return Err(CheckError::Tolerance(tolerance_pct));
    }
    // Parse each scenario file once.
    let mut sources: HashMap<&str, ScenarioSource> = HashMap::new();
    for row in &baseline.rows {
        if !sources.contains_key(row.scenario.as_str()) {
            let s = ScenarioSource::load(Path::new(&row.scenario)).map_err(|source| {
                CheckError::Scenario {
                    run: row.run_index,
                    source,
                }
            })?;
            sources.insert(&row.scenario, s);
        }
    }
    let rows = baseline
        .rows
        .par_iter()
        .map(|row| {
            let overrides = row
                .overrides(&baseline.axes)
                .iter()
                .enumerate()
                .map(|(i, s)| parse_override(s, i))
                .collect::<Result<Vec<_>, _>>();
            let scenario = overrides
                .and_then(|o| sources[row.scenario.as_str()].build_with(&o))
                .map_err(|source| CheckError::Scenario {
                    run: row.run_index,
                    source,
                })?;
            let outcome = crate::sim::simulate(&scenario, row.seed, &mut ());
            let now = RunMetrics::from(&outcome);
            let moves = compare(&row.metrics, &now, metrics, tolerance_pct);
            done();
            Ok(RowCheck {
                baseline: row.clone(),
                now,
                moves,
            })
        })
        .collect::<Result<Vec<_>, CheckError>>()?;
    Ok(CheckReport {
        axes: baseline.axes.clone(),
        rows,
        metrics: metrics.to_vec(),
        tolerance_pct,
    })
}

fn status_text(m: &RunMetrics) -> String {
    if m.converged() {
        format!(
            "completed in {:.1} s",
            m.total_time_ms.unwrap_or(0) as f64 / 1000.0
        )
    } else {
        format!("{} after {:.0} s", m.status, m.elapsed_ms as f64 / 1000.0)
    }
}

/// The report for a terminal: a summary line, then one line per movement, regressions first.
pub fn format_report(name: &str, r: &CheckReport, show_improvements: usize) -> String {
    let mut out = String::new();
    let metric_names: Vec<&str> = r.metrics.iter().map(|m| m.name()).collect();
    let _ = writeln!(
        out,
        "{name}: {} runs re-run; metrics {} (lower is better), tolerance {}%",
        r.rows.len(),
        metric_names.join(", "),
        r.tolerance_pct
    );
    let regressions = r.regressions();
    let improvements = r.improvements();
    let unchanged = r.rows.len() - regressions - improvements;
    let _ = writeln!(
        out,
        "  {regressions} regressed, {improvements} improved, {unchanged} unchanged"
    );
    let mut lines: Vec<(bool, [String; 6])> = Vec::new();
    for row in &r.rows {
        for m in &row.moves {
            let point = row.baseline.point_label(&r.axes);
            let who = format!(
                "{} {} seed {}",
                Path::new(&row.baseline.scenario)
                    .file_stem()
                    .map_or(row.baseline.scenario.clone(), |s| s
                        .to_string_lossy()
                        .into_owned()),
                point,
                row.baseline.seed
            );
            let cells = match m {
                Movement::Status { worse, .. } => [
                    if *worse { "WORSE" } else { "better" }.to_string(),
                    who,
                    "status".to_string(),
                    status_text(&row.baseline.metrics),
                    status_text(&row.now),
                    if *worse {
                        "no longer converges".to_string()
                    } else {
                        "now converges".to_string()
                    },
                ],
                Movement::Metric {
                    metric,
                    was,
                    now,
                    worse,
                } => [
                    if *worse {
                        "WORSE"
                    } else if now < was {
                        "better"
                    } else {
                        "within"
                    }
                    .to_string(),
                    who,
                    metric.name().to_string(),
                    metric.format_exact(*was),
                    metric.format_exact(*now),
                    if *was != 0.0 {
                        format!("{:+.2}%", (now - was) / was.abs() * 100.0)
                    } else {
                        format!("{:+}", now - was)
                    },
                ],
            };
            lines.push((m.is_worse(), cells));
        }
    }
    // Regressions first, each group in baseline order.
    lines.sort_by_key(|(worse, _)| !*worse);
    let shown: Vec<&(bool, [String; 6])> = lines
        .iter()
        .filter(|(worse, _)| *worse)
        .chain(
            lines
                .iter()
                .filter(|(worse, _)| !*worse)
                .take(show_improvements),
        )
        .collect();
    if !shown.is_empty() {
        let headers = ["", "run", "what", "baseline", "now", "change"];
        let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for (_, c) in &shown {
            for (w, cell) in widths.iter_mut().zip(c.iter()) {
                *w = (*w).max(cell.len());
            }
        }
        let fmt_row = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let _ = writeln!(out, "  {}", fmt_row(&headers.map(str::to_string)));
        for (_, c) in &shown {
            let _ = writeln!(out, "  {}", fmt_row(c));
        }
    }
    let hidden = lines
        .iter()
        .filter(|(w, _)| !*w)
        .count()
        .saturating_sub(show_improvements);
    if hidden > 0 {
        let _ = writeln!(
            out,
            "  ... {hidden} more movements for the better or within tolerance"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(status: &str, total: Option<u64>, bytes: u64) -> RunMetrics {
        RunMetrics {
            status: status.into(),
            total_time_ms: total,
            elapsed_ms: total.unwrap_or(600_000),
            downtime_ms: total.map(|_| 100),
            transferred_bytes: bytes,
            dirty_sync_count: 5,
            max_throttle_pct: 50,
            throttle_steps: vec![20, 30],
            guest_cpu_lost_s: 1.0,
            guest_pages_written: 1,
        }
    }

    #[test]
    fn tolerance_and_convergence() {
        let t = [Metric::TotalTime];
        let base = m("completed", Some(10_000), 100);
        assert!(compare(&base, &base, &t, 0.0).is_empty());
        let slower = m("completed", Some(10_400), 100);
        assert!(compare(&base, &slower, &t, 0.0)[0].is_worse());
        assert!(compare(&base, &slower, &t, 3.9)[0].is_worse());
        assert!(!compare(&base, &slower, &t, 4.0)[0].is_worse());
        let faster = m("completed", Some(9_000), 100);
        assert!(!compare(&base, &faster, &t, 0.0)[0].is_worse());
        // Other metrics are only compared when asked for.
        let more_bytes = m("completed", Some(10_000), 200);
        assert!(compare(&base, &more_bytes, &t, 0.0).is_empty());
        assert!(compare(&base, &more_bytes, &[Metric::Transferred], 0.0)[0].is_worse());
        // Losing convergence is a regression whatever the tolerance; gaining it is not.
        let lost = m("not-converged", None, 100);
        assert!(compare(&base, &lost, &t, 1000.0)[0].is_worse());
        assert!(!compare(&lost, &base, &t, 0.0)[0].is_worse());
        // Two runs that do not converge have no time to compare; a new failure is worse.
        assert!(compare(&lost, &m("not-converged", None, 5), &t, 0.0).is_empty());
        assert!(compare(&lost, &m("failed", None, 5), &t, 0.0)[0].is_worse());
    }
}
