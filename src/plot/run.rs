//! One run's timeline: throttle, dirty and transfer rates, and remaining bytes against
//! migration time, with the dirty syncs and the switchover marked; for a dirty-limit run, a
//! fourth panel with the vCPUs' sleep per dirty-ring-full round (QEMU 8.1's figures).

use super::{
    byte_scale, err, palette, render, segments, tick, titled, Figure, Format, PlotError, FAMILY,
};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::Path;

/// What the plot needs from a run directory (`timeseries.csv`, `events.csv`, `summary.json`).
#[derive(Clone, Debug, Default)]
pub struct RunData {
    /// (t_s, throttle %, dirty MiB/s... as bytes/s, transfer bytes/s, remaining bytes).
    pub samples: Vec<RunSample>,
    /// Dirty sync times (s).
    pub syncs_s: Vec<f64>,
    /// Switchover time (s), if it happened.
    pub switchover_s: Option<f64>,
    /// Title line.
    pub title: String,
    /// Parameter line.
    pub subtitle: String,
    /// The run had the dirty-limit capability on (or reported a dirty-limit sleep): draw its panel.
    pub dirty_limit: bool,
}

/// One timeseries row, in plot units.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunSample {
    /// Migration time (s).
    pub t_s: f64,
    /// Throttle (%).
    pub throttle_pct: f64,
    /// Dirty rate (bytes/s).
    pub dirty_bytes_s: f64,
    /// Transfer rate (bytes/s).
    pub transfer_bytes_s: f64,
    /// Remaining (bytes).
    pub remaining_bytes: f64,
    /// dirty-limit's sleep per ring-full round (µs; QEMU's dirty-limit-throttle-time-per-round).
    pub dirty_limit_sleep_us: f64,
    /// dirty-limit's ring-full time (µs; QEMU's dirty-limit-ring-full-time).
    pub ring_full_us: f64,
}

impl RunData {
    /// Read a run directory written by `autoconv sim` (or `run --kvm`).
    pub fn load(dir: &Path) -> Result<RunData, PlotError> {
        let input = |m: String| PlotError::Input(m);
        let ts_path = dir.join("timeseries.csv");
        let mut r = csv::Reader::from_path(&ts_path)
            .map_err(|e| input(format!("cannot read {}: {e}", ts_path.display())))?;
        let header = r
            .headers()
            .map_err(|e| input(format!("{}: {e}", ts_path.display())))?
            .clone();
        let col = |name: &str| {
            header.iter().position(|h| h == name).ok_or_else(|| {
                input(format!(
                    "{}: no `{name}` column: not a timeseries.csv from autoconv",
                    ts_path.display()
                ))
            })
        };
        let (c_t, c_thr, c_dirty, c_mbps, c_rem) = (
            col("t_ms")?,
            col("throttle_pct")?,
            col("dirty_pages_rate")?,
            col("mbps")?,
            col("remaining_bytes")?,
        );
        // Older run directories have no dirty-limit columns: their runs had no dirty-limit.
        let c_sleep = header
            .iter()
            .position(|h| h == "dirty_limit_throttle_time_per_round_us");
        let c_ring = header
            .iter()
            .position(|h| h == "dirty_limit_ring_full_time_us");
        let mut samples = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| input(format!("{}: {e}", ts_path.display())))?;
            let line = rec.position().map_or(0, |p| p.line());
            let num = |i: usize| -> Result<f64, PlotError> {
                let text = rec.get(i).unwrap_or("");
                text.parse::<f64>().map_err(|_| {
                    input(format!(
                        "{}:{line}: column {}: expected a number, found {text:?}",
                        ts_path.display(),
                        &header[i]
                    ))
                })
            };
            samples.push(RunSample {
                t_s: num(c_t)? / 1000.0,
                throttle_pct: num(c_thr)?,
                dirty_bytes_s: num(c_dirty)? * 4096.0,
                transfer_bytes_s: num(c_mbps)? * 1e6 / 8.0,
                remaining_bytes: num(c_rem)?,
                dirty_limit_sleep_us: c_sleep.map_or(Ok(0.0), num)?,
                ring_full_us: c_ring.map_or(Ok(0.0), num)?,
            });
        }
        if samples.is_empty() {
            return Err(input(format!("{}: no samples to plot", ts_path.display())));
        }
        let mut data = RunData {
            samples,
            ..RunData::default()
        };
        let ev_path = dir.join("events.csv");
        if let Ok(mut r) = csv::Reader::from_path(&ev_path) {
            for rec in r.records().flatten() {
                let t = rec.get(0).and_then(|t| t.parse::<f64>().ok());
                match (t, rec.get(1)) {
                    (Some(t), Some("dirty-sync")) => data.syncs_s.push(t / 1000.0),
                    (Some(t), Some("switchover")) => data.switchover_s = Some(t / 1000.0),
                    _ => {}
                }
            }
        }
        let sum_path = dir.join("summary.json");
        let summary: serde_json::Value = std::fs::read_to_string(&sum_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        (data.title, data.subtitle) = titles(&summary, dir);
        let dl = &summary["parameters"]["migration"]["dirty-limit"];
        data.dirty_limit = dl.as_bool() == Some(true)
            || dl.as_str() == Some("on")
            || data
                .samples
                .iter()
                .any(|s| s.dirty_limit_sleep_us > 0.0 || s.ring_full_us > 0.0);
        Ok(data)
    }
}

fn titles(s: &serde_json::Value, dir: &Path) -> (String, String) {
    let name = s["scenario"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| dir.display().to_string());
    let status = s["status"].as_str().unwrap_or("?");
    let mut title = match (status, s["total_time_ms"].as_u64()) {
        ("completed", Some(t)) => format!(
            "{name}: completed in {:.1} s, downtime {} ms",
            t as f64 / 1000.0,
            s["downtime_ms"].as_u64().unwrap_or(0)
        ),
        (status, _) => format!(
            "{name}: {status} after {:.1} s",
            s["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
        ),
    };
    match (s["backend"].as_str(), s["seed"].as_u64()) {
        (Some(b), Some(seed)) => title.push_str(&format!(" ({b}, seed {seed})")),
        (Some(b), None) => title.push_str(&format!(" ({b})")),
        _ => {}
    }
    let m = &s["parameters"]["migration"];
    let text = |k: &str| match &m[k] {
        serde_json::Value::String(v) => v.clone(),
        serde_json::Value::Null => "?".into(),
        v => v.to_string(),
    };
    let bw = match m["max-bandwidth"].as_u64() {
        Some(0) => "unlimited".to_string(),
        Some(b) => format!("{}/s", crate::units::format_bytes(b)),
        None => "?".into(),
    };
    let on = |k: &str| matches!(&m[k], serde_json::Value::Bool(true)) || m[k] == "on";
    let subtitle = if m.is_null() {
        String::new()
    } else if on("dirty-limit") {
        format!(
            "dirty-limit on, vcpu-dirty-limit {} MB/s, x-vcpu-dirty-limit-period {} ms, max-bandwidth {bw}, downtime-limit {} ms",
            text("vcpu-dirty-limit"),
            text("x-vcpu-dirty-limit-period"),
            text("downtime-limit"),
        )
    } else {
        format!(
            "auto-converge {}, cpu-throttle-initial {} %, increment {} %, max {} %, max-bandwidth {bw}, downtime-limit {} ms",
            text("auto-converge"),
            text("cpu-throttle-initial"),
            text("cpu-throttle-increment"),
            text("max-cpu-throttle"),
            text("downtime-limit"),
        )
    };
    (title, subtitle)
}

impl Figure for RunData {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let area = titled(root, &self.title, &self.subtitle)?;
        let panels = area.split_evenly((if self.dirty_limit { 4 } else { 3 }, 1));
        let t_max = self
            .samples
            .last()
            .map_or(1.0, |s| s.t_s)
            .max(self.switchover_s.unwrap_or(0.0))
            .max(0.1)
            * 1.01;
        let small = (FAMILY, 15);
        // 1. Throttle.
        let mut chart = panel(&panels[0], t_max, 105.0, "CPU throttle (%)")?;
        marks(&mut chart, self, 105.0, true)?;
        let throttle_legend = SeriesLabelPosition::UpperLeft;
        let style = palette::BLUE.stroke_width(3);
        chart
            .draw_series(segments(
                self.samples.iter().map(|s| (s.t_s, s.throttle_pct)),
                style,
            ))
            .map_err(err)?
            .label("cpu-throttle-percentage")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        legend_box(&mut chart, small, throttle_legend)?;

        // 2. Rates, in one unit so "dirty below transfer" reads directly.
        let rate_max = self
            .samples
            .iter()
            .map(|s| s.dirty_bytes_s.max(s.transfer_bytes_s))
            .fold(1.0, f64::max);
        let (div, unit) = byte_scale(rate_max);
        // Headroom above the data for the legend.
        let y_max = rate_max / div * 1.45;
        let mut chart = panel(&panels[1], t_max, y_max, &format!("rate ({unit}/s)"))?;
        marks(&mut chart, self, y_max, false)?;
        let dirty = palette::RED.stroke_width(2);
        chart
            .draw_series(segments(
                self.samples.iter().map(|s| (s.t_s, s.dirty_bytes_s / div)),
                dirty,
            ))
            .map_err(err)?
            .label("dirty rate (QEMU dirty-pages-rate x page size)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], dirty));
        let xfer = palette::GREEN.stroke_width(2);
        chart
            .draw_series(segments(
                self.samples
                    .iter()
                    .map(|s| (s.t_s, s.transfer_bytes_s / div)),
                xfer,
            ))
            .map_err(err)?
            .label("transfer rate (QEMU mbps)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], xfer));
        legend_box(&mut chart, small, SeriesLabelPosition::UpperRight)?;

        // 3. Remaining.
        let rem_max = self
            .samples
            .iter()
            .map(|s| s.remaining_bytes)
            .fold(1.0, f64::max);
        let (div, unit) = byte_scale(rem_max);
        let y_max = rem_max / div * 1.35;
        let mut chart = panel(&panels[2], t_max, y_max, &format!("remaining ({unit})"))?;
        marks(&mut chart, self, y_max, false)?;
        let style = palette::ORANGE.stroke_width(2);
        chart
            .draw_series(AreaSeries::new(
                self.samples
                    .iter()
                    .map(|s| (s.t_s, s.remaining_bytes / div)),
                0.0,
                palette::ORANGE.mix(0.25),
            ))
            .map_err(err)?;
        chart
            .draw_series(segments(
                self.samples
                    .iter()
                    .map(|s| (s.t_s, s.remaining_bytes / div)),
                style,
            ))
            .map_err(err)?
            .label("remaining dirty memory (QEMU ram remaining)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        legend_box(&mut chart, small, SeriesLabelPosition::UpperRight)?;

        // 4. dirty-limit: how long each vCPU sleeps per ring-full round, against how long its
        // ring takes to fill (the guest runs for the one and sleeps for the other).
        if self.dirty_limit {
            let ms_max = self
                .samples
                .iter()
                .map(|s| s.dirty_limit_sleep_us.max(s.ring_full_us) / 1000.0)
                .fold(1.0, f64::max);
            let y_max = ms_max * 1.45;
            let mut chart = panel(&panels[3], t_max, y_max, "dirty-limit (ms per round)")?;
            marks(&mut chart, self, y_max, false)?;
            let sleep = palette::SKY.stroke_width(3);
            chart
                .draw_series(segments(
                    self.samples
                        .iter()
                        .map(|s| (s.t_s, s.dirty_limit_sleep_us / 1000.0)),
                    sleep,
                ))
                .map_err(err)?
                .label("vCPU sleep per ring-full round (QEMU dirty-limit-throttle-time-per-round)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], sleep));
            let ring = BLACK.stroke_width(1);
            chart
                .draw_series(segments(
                    self.samples
                        .iter()
                        .map(|s| (s.t_s, s.ring_full_us / 1000.0)),
                    ring,
                ))
                .map_err(err)?
                .label("time to fill the dirty ring (QEMU dirty-limit-ring-full-time)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ring));
            legend_box(&mut chart, small, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    }
}

pub(super) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One of the three panels: time on x, `0..y_max` on y, the same mesh and fonts for all.
pub(super) fn panel<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, Shift>,
    t_max: f64,
    y_max: f64,
    y_desc: &str,
) -> Result<Chart<'a, DB>, String> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(74)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("migration time (s)")
        .y_desc(y_desc)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .axis_desc_style((FAMILY, 16))
        .label_style((FAMILY, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// Dirty syncs (dashed grey) and the switchover (purple) across a panel.
fn marks<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    data: &RunData,
    y_max: f64,
    legend: bool,
) -> Result<(), String> {
    let sync_style = palette::GREY.mix(0.7).stroke_width(1);
    let s = chart
        .draw_series(
            data.syncs_s
                .iter()
                .map(|&t| DashedPathElement::new(vec![(t, 0.0), (t, y_max)], 4, 4, sync_style)),
        )
        .map_err(err)?;
    if legend {
        // The legend draws the dashes too: a solid key would name no line on the plot.
        s.label("dirty sync").legend(move |(x, y)| {
            DashedPathElement::new(vec![(x, y), (x + 20, y)], 4, 4, sync_style)
        });
    }
    if let Some(t) = data.switchover_s {
        let style = palette::PURPLE.stroke_width(3);
        let s = chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(t, 0.0), (t, y_max)],
                style,
            )))
            .map_err(err)?;
        if legend {
            s.label("switchover (source stopped)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    Ok(())
}

fn legend_box<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    font: (&str, u32),
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .label_font(font)
        .draw()
        .map_err(err)
}

/// Plot the run directory `dir` as `format` at `size`; returns the file's bytes.
pub fn run_plot(dir: &Path, format: Format, size: (u32, u32)) -> Result<Vec<u8>, PlotError> {
    let data = RunData::load(dir)?;
    render(&data, format, size)
}
