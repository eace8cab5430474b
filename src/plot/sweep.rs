//! A sweep's runs as a picture: the objective averaged over the seeds that converged at each
//! grid point (with their range when there are several), drawn as a [`Heatmap`] over two axes
//! or a [`LinePlot`] along one; [`crate::sweep::select`] picks the axes.

use super::heatmap::Heatmap;
use super::line::LinePlot;
use super::{render, Format, PlotError, SweepCell};
use crate::sweep::{axis_scale, select_axes, summarize, ComboSummary, Metric, RunsTable};

/// What to draw from a runs table.
#[derive(Clone, Debug)]
pub struct SweepPlotOptions {
    /// The figure shown.
    pub objective: Metric,
    /// Axis across (default: the first grid axis).
    pub x: Option<String>,
    /// Axis up (default: the second grid axis, if any).
    pub y: Option<String>,
    /// Fix other axes: NAME=VALUE.
    pub filters: Vec<String>,
    /// Title (default: from the table).
    pub title: Option<String>,
}

/// How an objective is shown: divisor and unit label.
fn scale(m: Metric) -> (f64, &'static str) {
    match m {
        Metric::TotalTime => (1000.0, "total time (s)"),
        Metric::Downtime => (1.0, "downtime (ms)"),
        Metric::Transferred => ((1u64 << 30) as f64, "transferred (GiB)"),
        Metric::GuestCpuLost => (1.0, "guest CPU lost to throttling (vCPU-s)"),
        Metric::DirtySyncs => (1.0, "dirty syncs"),
        Metric::MaxThrottle => (1.0, "highest throttle (%)"),
    }
}

/// Plot a sweep's runs; returns the file's bytes.
pub fn sweep_plot(
    table: &RunsTable,
    opts: &SweepPlotOptions,
    format: Format,
    size: (u32, u32),
) -> Result<Vec<u8>, PlotError> {
    let selection = select_axes(table, opts.x.as_deref(), opts.y.as_deref(), &opts.filters)
        .map_err(|e| PlotError::Input(e.to_string()))?;
    let (x, y, fixed, sub) = (selection.x, selection.y, &selection.fixed, &selection.table);
    let distinct = |i: usize| selection.values(i);
    let combos = summarize(sub);
    let (div, unit) = scale(opts.objective);
    let cell = |c: &ComboSummary| {
        let s = c.stat(opts.objective);
        SweepCell {
            value: s.map(|s| s.mean / div),
            lo: s.map_or(0.0, |s| s.min / div),
            hi: s.map_or(0.0, |s| s.max / div),
            completed: c.completed,
            runs: c.runs,
        }
    };
    let scenario = table
        .rows
        .first()
        .map(|r| {
            std::path::Path::new(&r.scenario)
                .file_stem()
                .map_or(r.scenario.clone(), |s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let seeds: Vec<u64> = {
        let mut s: Vec<u64> = sub.rows.iter().map(|r| r.seed).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let seeds_text = if seeds.len() == 1 {
        format!("seed {}", seeds[0])
    } else {
        format!(
            "mean over the seeds that converged ({} seeds: {}..{})",
            seeds.len(),
            seeds[0],
            seeds[seeds.len() - 1]
        )
    };
    let mut sub_parts = vec![seeds_text];
    if !fixed.is_empty() {
        sub_parts.push(
            fixed
                .iter()
                .map(|(i, v)| format!("{}={v}", table.axes[*i]))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if let Some(first) = table.rows.first() {
        if !first.sets.is_empty() {
            sub_parts.push(format!("--set {}", first.sets.join(" ")));
        }
    }
    let subtitle = sub_parts.join("; ");
    match y {
        Some(y) => {
            let x_values = distinct(x);
            let y_values = distinct(y);
            let mut cells: Vec<Vec<Option<SweepCell>>> = (0..y_values.len())
                .map(|_| (0..x_values.len()).map(|_| None).collect())
                .collect();
            for c in &combos {
                let i = x_values.iter().position(|v| *v == c.axis_values[x]);
                let j = y_values.iter().position(|v| *v == c.axis_values[y]);
                if let (Some(i), Some(j)) = (i, j) {
                    cells[j][i] = Some(cell(c));
                }
            }
            let title = opts.title.clone().unwrap_or_else(|| {
                format!(
                    "{scenario}: {unit} by {} and {} (lower is better)",
                    table.axes[x], table.axes[y]
                )
            });
            let (xs, ys) = (
                axis_scale(&table.axes[x], &x_values),
                axis_scale(&table.axes[y], &y_values),
            );
            let fig = Heatmap {
                title,
                subtitle,
                x_name: xs.title,
                y_name: ys.title,
                x_values: xs.labels,
                y_values: ys.labels,
                cells,
                unit: unit.to_string(),
            };
            render(&fig, format, size)
        }
        None => {
            let x_values = distinct(x);
            let points = x_values
                .iter()
                .map(|v| {
                    combos
                        .iter()
                        .find(|c| &c.axis_values[x] == v)
                        .map(&cell)
                        .unwrap_or(SweepCell {
                            value: None,
                            lo: 0.0,
                            hi: 0.0,
                            completed: 0,
                            runs: 0,
                        })
                })
                .collect();
            let title = opts.title.clone().unwrap_or_else(|| {
                format!("{scenario}: {unit} by {} (lower is better)", table.axes[x])
            });
            let xs = axis_scale(&table.axes[x], &x_values);
            let fig = LinePlot {
                title,
                subtitle,
                x_name: xs.title,
                x_values: xs.labels,
                numeric_x: xs.numbers,
                points,
                unit: unit.to_string(),
            };
            render(&fig, format, size)
        }
    }
}
