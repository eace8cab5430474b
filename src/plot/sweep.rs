//! A sweep's objective over its grid: a heatmap over two axes (cells that did not converge in
//! light grey with a cross, outside the colour scale), or a line over one (non-converged points as crosses on the top
//! edge), averaged over the seeds that converged, with their range when there are several.

use super::{err, palette, render, tick, titled, Figure, Format, PlotError, FAMILY};
use crate::sweep::{summarize, ComboSummary, Metric, RunsTable};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor;

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

struct Cell {
    /// Mean over converged seeds, in display units.
    value: Option<f64>,
    lo: f64,
    hi: f64,
    completed: usize,
    runs: usize,
}

struct Heatmap {
    title: String,
    subtitle: String,
    x_name: String,
    y_name: String,
    x_values: Vec<String>,
    y_values: Vec<String>,
    /// [y][x]
    cells: Vec<Vec<Option<Cell>>>,
    unit: String,
}

struct LinePlot {
    title: String,
    subtitle: String,
    x_name: String,
    x_values: Vec<String>,
    numeric_x: Option<Vec<f64>>,
    points: Vec<Cell>,
    unit: String,
}

/// Perceptually ordered colours from low (good, dark blue) to high (bad, yellow).
fn colour(t: f64) -> RGBColor {
    const STOPS: [(f64, (u8, u8, u8)); 5] = [
        (0.0, (13, 8, 135)),
        (0.25, (84, 2, 163)),
        (0.5, (185, 50, 137)),
        (0.75, (244, 136, 73)),
        (1.0, (240, 249, 33)),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    for w in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if t <= b {
            let f = (t - a) / (b - a);
            let mix =
                |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
            return RGBColor(mix(ca.0, cb.0), mix(ca.1, cb.1), mix(ca.2, cb.2));
        }
    }
    let c = STOPS[STOPS.len() - 1].1;
    RGBColor(c.0, c.1, c.2)
}

fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Figure for Heatmap {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let area = titled(root, &self.title, &self.subtitle)?;
        let (w, _) = area.dim_in_pixel();
        let (plot_area, bar_area) = area.split_horizontally(w.saturating_sub(190));
        let (nx, ny) = (self.x_values.len(), self.y_values.len());
        let values: Vec<f64> = self
            .cells
            .iter()
            .flatten()
            .flatten()
            .filter_map(|c| c.value)
            .collect();
        let vmin = values.iter().copied().fold(f64::INFINITY, f64::min);
        let vmax = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // A log scale when values span more than 4x, so one slow corner of the grid does not
        // paint everything else the same colour.
        let log_scale = vmin > 0.0 && vmax / vmin > 4.0;
        let norm = |v: f64| {
            if vmax <= vmin {
                0.0
            } else if log_scale {
                (v.ln() - vmin.ln()) / (vmax.ln() - vmin.ln())
            } else {
                (v - vmin) / (vmax - vmin)
            }
        };
        let unnorm = |t: f64| {
            if log_scale {
                (vmin.ln() + t * (vmax.ln() - vmin.ln())).exp()
            } else {
                vmin + t * (vmax - vmin)
            }
        };
        let every = |n: usize| (n / 20).max(1);
        let x_vals = self.x_values.clone();
        let y_vals = self.y_values.clone();
        let x_fmt = move |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < x_vals.len() {
                x_vals[i as usize].clone()
            } else {
                String::new()
            }
        };
        let y_fmt = move |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < y_vals.len() {
                y_vals[i as usize].clone()
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(14)
            .x_label_area_size(56)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..nx as f64 - 0.5, -0.5..ny as f64 - 0.5)
            .map_err(err)?;
        // One tick per value when they fit, else every k-th.
        let (kx, ky) = (every(nx), every(ny));
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(self.x_name.as_str())
            .y_desc(self.y_name.as_str())
            .axis_desc_style((FAMILY, 18))
            .label_style((FAMILY, 15))
            .x_labels(nx.div_ceil(kx) + 1)
            .y_labels(ny.div_ceil(ky) + 1)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()
            .map_err(err)?;
        let annotate = nx <= 16 && ny <= 20;
        // Crosses and frames only where a cell is big enough to hold them.
        let (pw, ph) = plot_area.dim_in_pixel();
        let cell_px = (pw / nx.max(1) as u32).min(ph / ny.max(1) as u32);
        let frame_px = if cell_px >= 16 { 3 } else { 1 };
        for (j, row) in self.cells.iter().enumerate() {
            for (i, cell) in row.iter().enumerate() {
                let (x, y) = (i as f64, j as f64);
                let rect = [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)];
                match cell {
                    None => {}
                    Some(Cell { value: None, .. }) => {
                        chart
                            .draw_series(std::iter::once(Rectangle::new(
                                rect,
                                palette::NOT_CONVERGED.filled(),
                            )))
                            .map_err(err)?;
                        if cell_px >= 10 {
                            let cross = BLACK.stroke_width(2);
                            let d = 0.28;
                            chart
                                .draw_series([
                                    PathElement::new(vec![(x - d, y - d), (x + d, y + d)], cross),
                                    PathElement::new(vec![(x - d, y + d), (x + d, y - d)], cross),
                                ])
                                .map_err(err)?;
                        }
                    }
                    Some(c) => {
                        let v = c.value.unwrap_or(0.0);
                        let fill = colour(norm(v));
                        chart
                            .draw_series(std::iter::once(Rectangle::new(rect, fill.filled())))
                            .map_err(err)?;
                        if c.completed < c.runs {
                            // Some seeds did not converge: an orange frame, and k/n in the text.
                            chart
                                .draw_series(std::iter::once(Rectangle::new(
                                    [(x - 0.46, y - 0.46), (x + 0.46, y + 0.46)],
                                    palette::ORANGE.stroke_width(frame_px),
                                )))
                                .map_err(err)?;
                        }
                        if annotate {
                            let light = norm(v) > 0.6;
                            let mut text = short(v);
                            if c.completed < c.runs {
                                text = format!("{text} ({}/{})", c.completed, c.runs);
                            }
                            let style = TextStyle::from((FAMILY, 13).into_font())
                                .color(if light { &BLACK } else { &WHITE })
                                .pos(text_anchor::Pos::new(
                                    text_anchor::HPos::Center,
                                    text_anchor::VPos::Center,
                                ));
                            chart
                                .draw_series(std::iter::once(Text::new(text, (x, y), style)))
                                .map_err(err)?;
                        }
                    }
                }
            }
        }
        // Colour bar with the scale, and the key for cells that did not converge.
        let bar = bar_area.margin(30, 60, 10, 20);
        let (bw, bh) = bar.dim_in_pixel();
        let bar_h = bh.saturating_sub(130).max(50) as i32;
        let top = 24;
        let text = |s: String, pos: (i32, i32), size: u32| {
            Text::new(
                s,
                pos,
                TextStyle::from((FAMILY, size).into_font()).color(&BLACK),
            )
        };
        let unit = if log_scale {
            format!("{} (log scale)", self.unit)
        } else {
            self.unit.clone()
        };
        bar.draw(&text(unit, (0, 0), 15)).map_err(err)?;
        let steps = 64;
        for k in 0..steps {
            let t = 1.0 - k as f64 / steps as f64;
            let y0 = top + bar_h * k / steps;
            let y1 = top + bar_h * (k + 1) / steps;
            bar.draw(&Rectangle::new([(0, y0), (28, y1 + 1)], colour(t).filled()))
                .map_err(err)?;
        }
        if values.is_empty() {
            bar.draw(&text("no grid point converged".into(), (34, top), 14))
                .map_err(err)?;
        } else {
            for (k, t) in [1.0, 0.75, 0.5, 0.25, 0.0].into_iter().enumerate() {
                let label = match k {
                    0 => format!("{} (worst)", short(vmax)),
                    4 => format!("{} (best)", short(vmin)),
                    _ => short(unnorm(t)),
                };
                let y = top + (f64::from(bar_h) * (1.0 - t)) as i32 - 7;
                bar.draw(&text(label, (34, y), 14)).map_err(err)?;
            }
        }
        let key_y = top + bar_h + 24;
        bar.draw(&Rectangle::new(
            [(0, key_y), (28, key_y + 28)],
            palette::NOT_CONVERGED.filled(),
        ))
        .map_err(err)?;
        bar.draw(&PathElement::new(
            vec![(6, key_y + 6), (22, key_y + 22)],
            BLACK.stroke_width(2),
        ))
        .map_err(err)?;
        bar.draw(&PathElement::new(
            vec![(6, key_y + 22), (22, key_y + 6)],
            BLACK.stroke_width(2),
        ))
        .map_err(err)?;
        bar.draw(&text("did not".into(), (34, key_y), 14))
            .map_err(err)?;
        bar.draw(&text("converge".into(), (34, key_y + 15), 14))
            .map_err(err)?;
        let key2 = key_y + 44;
        bar.draw(&Rectangle::new(
            [(0, key2), (28, key2 + 28)],
            palette::ORANGE.stroke_width(3),
        ))
        .map_err(err)?;
        bar.draw(&text("some seeds".into(), (34, key2), 14))
            .map_err(err)?;
        bar.draw(&text("did not".into(), (34, key2 + 15), 14))
            .map_err(err)?;
        let _ = bw;
        Ok(())
    }
}

impl Figure for LinePlot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let area = titled(root, &self.title, &self.subtitle)?;
        let xs: Vec<f64> = match &self.numeric_x {
            Some(v) => v.clone(),
            None => (0..self.x_values.len()).map(|i| i as f64).collect(),
        };
        let (xmin, xmax) = (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let pad = ((xmax - xmin) * 0.04).max(0.5);
        let hi = self
            .points
            .iter()
            .filter(|p| p.value.is_some())
            .map(|p| p.hi)
            .fold(0.0, f64::max);
        let y_top = if hi > 0.0 { hi * 1.15 } else { 1.0 };
        let labels = self.x_values.clone();
        let categorical = self.numeric_x.is_none();
        let x_fmt = move |v: &f64| {
            if categorical {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                    labels[i as usize].clone()
                } else {
                    String::new()
                }
            } else {
                tick(v)
            }
        };
        let mut chart = ChartBuilder::on(&area)
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(84)
            .build_cartesian_2d(xmin - pad..xmax + pad, 0.0..y_top)
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.x_name.as_str())
            .y_desc(self.unit.as_str())
            .axis_desc_style((FAMILY, 18))
            .label_style((FAMILY, 15))
            .light_line_style(palette::GREY.mix(0.15))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&tick);
        if categorical {
            mesh.x_labels(self.x_values.len() + 1);
        }
        mesh.draw().map_err(err)?;
        let line = palette::BLUE.stroke_width(3);
        let converged: Vec<(f64, &Cell)> = xs
            .iter()
            .copied()
            .zip(&self.points)
            .filter(|(_, p)| p.value.is_some())
            .collect();
        // Break the line where a point did not converge, so no time is drawn through it.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (x, p) in xs.iter().zip(&self.points) {
            match p.value {
                Some(v) => segments.last_mut().map_or((), |s| s.push((*x, v))),
                None => segments.push(Vec::new()),
            }
        }
        let mut first = true;
        for seg in segments.into_iter().filter(|s| !s.is_empty()) {
            let s = chart.draw_series(LineSeries::new(seg, line)).map_err(err)?;
            if first {
                s.label("mean over the seeds that converged")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line));
                first = false;
            }
        }
        chart
            .draw_series(
                converged
                    .iter()
                    .map(|(x, p)| Circle::new((*x, p.value.unwrap_or(0.0)), 5, line.filled())),
            )
            .map_err(err)?;
        let multi = self.points.iter().any(|p| p.runs > 1);
        if multi {
            let bar = palette::BLUE.mix(0.6).stroke_width(2);
            chart
                .draw_series(converged.iter().map(|(x, p)| {
                    ErrorBar::new_vertical(*x, p.lo, p.value.unwrap_or(0.0), p.hi, bar, 10)
                }))
                .map_err(err)?
                .label("min .. max over seeds")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x + 10, y - 6), (x + 10, y + 6)], bar)
                });
        }
        let partial: Vec<(f64, &Cell)> = converged
            .iter()
            .copied()
            .filter(|(_, p)| p.completed < p.runs)
            .collect();
        if !partial.is_empty() {
            let ring = palette::ORANGE.stroke_width(3);
            chart
                .draw_series(
                    partial
                        .iter()
                        .map(|(x, p)| Circle::new((*x, p.value.unwrap_or(0.0)), 10, ring)),
                )
                .map_err(err)?
                .label("some seeds did not converge")
                .legend(move |(x, y)| Circle::new((x + 10, y), 6, ring));
        }
        let failed: Vec<f64> = xs
            .iter()
            .zip(&self.points)
            .filter(|(_, p)| p.value.is_none())
            .map(|(x, _)| *x)
            .collect();
        if !failed.is_empty() {
            let cross = palette::RED.stroke_width(3);
            chart
                .draw_series(
                    failed
                        .iter()
                        .map(|&x| Cross::new((x, y_top * 0.96), 9, cross)),
                )
                .map_err(err)?
                .label("did not converge (no time)")
                .legend(move |(x, y)| Cross::new((x + 10, y), 6, cross));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .label_font((FAMILY, 15))
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// Plot a sweep's runs; returns the file's bytes.
pub fn sweep_plot(
    table: &RunsTable,
    opts: &SweepPlotOptions,
    format: Format,
    size: (u32, u32),
) -> Result<Vec<u8>, PlotError> {
    let input = |m: String| PlotError::Input(m);
    if table.axes.is_empty() {
        return Err(input(
            "the sweep has no grid axis: nothing to plot against (plot a run directory instead)"
                .into(),
        ));
    }
    let find = |name: &str| {
        table.axes.iter().position(|a| a == name).ok_or_else(|| {
            input(format!(
                "no grid axis `{name}` (axes: {})",
                table.axes.join(", ")
            ))
        })
    };
    // Rows kept by --where.
    let mut fixed: Vec<(usize, String)> = Vec::new();
    for f in &opts.filters {
        let (n, v) = f
            .split_once('=')
            .ok_or_else(|| input(format!("--where {f}: expected NAME=VALUE")))?;
        fixed.push((find(n.trim())?, v.trim().to_string()));
    }
    let rows: Vec<_> = table
        .rows
        .iter()
        .filter(|r| fixed.iter().all(|(i, v)| &r.axis_values[*i] == v))
        .cloned()
        .collect();
    if rows.is_empty() {
        return Err(input("no run matches the --where filters".into()));
    }
    let x = match &opts.x {
        Some(n) => find(n)?,
        None => (0..table.axes.len())
            .find(|i| !fixed.iter().any(|(f, _)| f == i))
            .unwrap_or(0),
    };
    let y = match &opts.y {
        Some(n) => Some(find(n)?),
        None => (0..table.axes.len()).find(|i| *i != x && !fixed.iter().any(|(f, _)| f == i)),
    };
    // Every other axis must hold one value, or the plot would mix grid points silently.
    let distinct = |i: usize| {
        let mut v: Vec<&String> = Vec::new();
        for r in &rows {
            if !v.contains(&&r.axis_values[i]) {
                v.push(&r.axis_values[i]);
            }
        }
        v.into_iter().cloned().collect::<Vec<String>>()
    };
    for i in 0..table.axes.len() {
        if i != x && Some(i) != y && distinct(i).len() > 1 {
            return Err(input(format!(
                "the sweep has {} grid axes: choose what to plot with --x and --y and fix `{}` with --where {}=VALUE (values: {})",
                table.axes.len(),
                table.axes[i],
                table.axes[i],
                distinct(i).join(", ")
            )));
        }
    }
    let sub = RunsTable {
        axes: table.axes.clone(),
        rows: rows.clone(),
    };
    let combos = summarize(&sub);
    let (div, unit) = scale(opts.objective);
    let cell = |c: &ComboSummary| {
        let s = c.stat(opts.objective);
        Cell {
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
            let mut cells: Vec<Vec<Option<Cell>>> = (0..y_values.len())
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
            let fig = Heatmap {
                title,
                subtitle,
                x_name: table.axes[x].clone(),
                y_name: table.axes[y].clone(),
                x_values,
                y_values,
                cells,
                unit: unit.to_string(),
            };
            render(&fig, format, size)
        }
        None => {
            let x_values = distinct(x);
            let numeric: Option<Vec<f64>> = x_values.iter().map(|v| v.parse().ok()).collect();
            let points = x_values
                .iter()
                .map(|v| {
                    combos
                        .iter()
                        .find(|c| &c.axis_values[x] == v)
                        .map(&cell)
                        .unwrap_or(Cell {
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
            let fig = LinePlot {
                title,
                subtitle,
                x_name: table.axes[x].clone(),
                x_values,
                numeric_x: numeric,
                points,
                unit: unit.to_string(),
            };
            render(&fig, format, size)
        }
    }
}
