//! `advise -o front.png`: the Pareto front as total time against guest CPU lost, each point
//! labelled with its max throttle; QEMU's defaults and the recommendation marked.

use super::{err, palette, render, tick, titled, Figure, Format, PlotError, FAMILY};
use crate::advise::Advice;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

struct FrontFigure<'a> {
    name: &'a str,
    advice: &'a Advice,
}

fn xy(r: &crate::sweep::RunMetrics) -> Option<(f64, f64)> {
    r.total_time_ms
        .map(|t| (t as f64 / 1000.0, r.guest_cpu_lost_s))
}

impl Figure for FrontFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let a = self.advice;
        let subtitle = format!(
            "Pareto front of {} policies ({} results); labels: max throttle of the results within the limits",
            a.policies_evaluated,
            a.front.len()
        );
        let area = titled(
            root,
            &format!("{}: total time vs guest CPU lost", self.name),
            &subtitle,
        )?;
        let mut pts: Vec<(f64, f64)> = a.front.iter().filter_map(|p| xy(&p.group.run)).collect();
        pts.extend(xy(&a.defaults.group.run));
        if pts.is_empty() {
            area.draw(&Text::new(
                "no policy converges",
                (40, 40),
                (FAMILY, 24).into_font(),
            ))
            .map_err(err)?;
            return Ok(());
        }
        let xmax = pts.iter().map(|p| p.0).fold(0.0, f64::max) * 1.1 + 1.0;
        let ymax = pts.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1 + 1.0;
        let mut chart = ChartBuilder::on(&area)
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("total time (s)")
            .y_desc("guest CPU lost (vCPU-s)")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FAMILY, 18))
            .axis_desc_style((FAMILY, 20))
            .draw()
            .map_err(err)?;
        let front: Vec<(f64, f64, u32, bool)> = a
            .front
            .iter()
            .filter_map(|p| {
                xy(&p.group.run).map(|(x, y)| (x, y, p.group.run.max_throttle_pct, p.allowed))
            })
            .collect();
        chart
            .draw_series(front.iter().map(|&(x, y, m, allowed)| {
                let colour = if allowed {
                    palette::BLUE
                } else {
                    palette::GREY
                };
                // Only points within the limits are labelled: the others crowd together.
                let label = if allowed {
                    format!("{m} %")
                } else {
                    String::new()
                };
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 5, colour.filled())
                    + Text::new(label, (6, -16), (FAMILY, 14).into_font())
            }))
            .map_err(err)?
            .label("front (grey: over the limits)")
            .legend(|(x, y)| Circle::new((x + 10, y), 5, palette::BLUE.filled()));
        if let Some((x, y)) = xy(&a.defaults.group.run) {
            chart
                .draw_series(std::iter::once(TriangleMarker::new(
                    (x, y),
                    9,
                    palette::RED.filled(),
                )))
                .map_err(err)?
                .label("QEMU's defaults")
                .legend(|(x, y)| TriangleMarker::new((x + 10, y), 7, palette::RED.filled()));
        }
        if let Some((x, y)) = a.recommended.as_ref().and_then(|r| xy(&r.group.run)) {
            chart
                .draw_series(std::iter::once(Cross::new(
                    (x, y),
                    10,
                    palette::GREEN.stroke_width(3),
                )))
                .map_err(err)?
                .label("recommended")
                .legend(|(x, y)| Cross::new((x + 10, y), 7, palette::GREEN.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FAMILY, 18))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// The front of `advice` as PNG or SVG bytes (format from `path`'s extension).
pub fn draw_front(path: &Path, name: &str, advice: &Advice) -> Result<Vec<u8>, PlotError> {
    let format = Format::from_path(path)?;
    render(&FrontFigure { name, advice }, format, super::DEFAULT_SIZE)
}
