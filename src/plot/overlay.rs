//! Several runs on one picture (`autoconv compare A B C -o FILE`): the throttle and the
//! remaining memory against migration time, one line style per run, so policies can be put
//! side by side.

use super::{byte_scale, err, render, segments, titled, Figure, Format, PlotError, FAMILY};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::RGBColor;

/// One run of an overlay.
#[derive(Clone, Debug, Default)]
pub struct OverlayRun {
    /// Legend text (a directory, or a policy).
    pub label: String,
    /// (migration time s, throttle %, remaining bytes), in time order.
    pub points: Vec<(f64, f64, f64)>,
    /// When the source stopped (s), if it did.
    pub switchover_s: Option<f64>,
}

/// Line colours in order (Okabe-Ito, colour-blind safe; vermillion kept for one run only).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

/// Dash patterns (dash, gap in pixels) in order; (0, 0) is solid. With the colours, two
/// runs differ in both, so a grey print or a colour-blind reader still tells them apart.
const DASHES: [(u32, u32); 4] = [(0, 0), (12, 6), (4, 4), (16, 4)];

/// A run's style: its colour and dash pattern.
fn style(i: usize) -> (RGBColor, (u32, u32)) {
    (COLOURS[i % COLOURS.len()], DASHES[i % DASHES.len()])
}

struct Overlay<'a> {
    runs: &'a [OverlayRun],
    title: &'a str,
}

/// Solid is a dash longer than any plot with a one-pixel gap: one element type for every
/// run, so the legend can draw each run exactly as its line is drawn.
const SOLID: (u32, u32) = (100_000, 1);

fn dash_of(i: usize) -> (u32, u32) {
    match style(i).1 {
        (0, 0) => SOLID,
        d => d,
    }
}

impl Figure for Overlay<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let names: Vec<String> = self.runs.iter().map(|r| r.label.clone()).collect();
        let area = titled(root, self.title, &names.join("  vs  "))?;
        let panels = area.split_evenly((2, 1));
        let t_max = self
            .runs
            .iter()
            .flat_map(|r| {
                r.points
                    .last()
                    .map(|p| p.0)
                    .into_iter()
                    .chain(r.switchover_s)
            })
            .fold(0.1, f64::max)
            * 1.02;
        let rem_max = self
            .runs
            .iter()
            .flat_map(|r| r.points.iter().map(|p| p.2))
            .fold(1.0, f64::max);
        let (div, unit) = byte_scale(rem_max);
        let rem_desc = format!("remaining dirty memory ({unit})");
        // Panel 0: the throttle; panel 1: the remaining memory.
        let panels_spec = [
            ("CPU throttle (%)", 105.0, false),
            (rem_desc.as_str(), rem_max / div * 1.15, true),
        ];
        let value = |p: &(f64, f64, f64), remaining: bool| if remaining { p.2 / div } else { p.1 };
        for (panel, (y_desc, y_max, remaining)) in panels.iter().zip(panels_spec) {
            // The same panel as a single run's plot: mesh, fonts and time axis.
            let mut chart = super::run::panel(panel, t_max, y_max, y_desc)?;
            for (i, run) in self.runs.iter().enumerate() {
                let colour = style(i).0;
                let pts: Vec<(f64, f64)> = run
                    .points
                    .iter()
                    .map(|p| (p.0, value(p, remaining)))
                    .collect();
                let (dash, gap) = dash_of(i);
                let stroke = colour.stroke_width(3);
                // A solid line as lone segments (see segments()); dashes are short enough.
                let drawn = if (dash, gap) == SOLID {
                    chart.draw_series(segments(pts, stroke))
                } else {
                    chart.draw_series(std::iter::once(DashedPathElement::new(
                        pts, dash, gap, stroke,
                    )))
                };
                drawn
                    .map_err(err)?
                    .label(run.label.clone())
                    // The legend draws the run's own dash pattern, long enough to show it.
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 40, y)], dash, gap, stroke)
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.5))
                .legend_area_size(44)
                .label_font((FAMILY, 15))
                .draw()
                .map_err(err)?;
        }
        Ok(())
    }
}

/// Draw `runs` over each other as `format` at `size`; returns the file's bytes.
pub fn overlay_plot(
    runs: &[OverlayRun],
    title: &str,
    format: Format,
    size: (u32, u32),
) -> Result<Vec<u8>, PlotError> {
    if runs.is_empty() || runs.iter().all(|r| r.points.is_empty()) {
        return Err(PlotError::Input("no samples to plot".into()));
    }
    render(&Overlay { runs, title }, format, size)
}
