//! A sweep's objective along one grid axis as a line: non-converged points as crosses on the
//! top edge, with the range over seeds when there are several.

use super::{err, palette, tick, titled, Figure, SweepCell, FAMILY};
use plotters::coord::Shift;
use plotters::prelude::*;

/// An objective along one grid axis.
pub(super) struct LinePlot {
    pub(super) title: String,
    pub(super) subtitle: String,
    pub(super) x_name: String,
    pub(super) x_values: Vec<String>,
    pub(super) numeric_x: Option<Vec<f64>>,
    pub(super) points: Vec<SweepCell>,
    pub(super) unit: String,
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
            // Room for the last tick's label, centred on the right edge.
            .margin_right(48)
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
        let converged: Vec<(f64, &SweepCell)> = xs
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
        let partial: Vec<(f64, &SweepCell)> = converged
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
