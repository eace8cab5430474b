//! A sweep's objective over two grid axes as a heatmap: cells that did not converge in light
//! grey with a cross, outside the colour scale.

use super::{err, palette, titled, Figure, SweepCell, FAMILY};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor;

/// An objective over two grid axes.
pub(super) struct Heatmap {
    pub(super) title: String,
    pub(super) subtitle: String,
    pub(super) x_name: String,
    pub(super) y_name: String,
    pub(super) x_values: Vec<String>,
    pub(super) y_values: Vec<String>,
    /// [y][x]
    pub(super) cells: Vec<Vec<Option<SweepCell>>>,
    pub(super) unit: String,
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
                    Some(SweepCell { value: None, .. }) => {
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
        // The best cells (lowest value among those where every seed converged, ties all
        // marked: the rest of the grid made no difference there): a black frame inside a
        // white one, visible on any colour of the scale.
        let full: Vec<(usize, usize, f64)> = self
            .cells
            .iter()
            .enumerate()
            .flat_map(|(j, row)| row.iter().enumerate().map(move |(i, c)| (i, j, c)))
            .filter_map(|(i, j, c)| match c {
                Some(c) if c.completed == c.runs => c.value.map(|v| (i, j, v)),
                _ => None,
            })
            .collect();
        let best = full.iter().map(|c| c.2).fold(f64::INFINITY, f64::min);
        for &(i, j, _) in full.iter().filter(|c| c.2 <= best + best.abs() * 1e-9) {
            let (x, y) = (i as f64, j as f64);
            for (colour, width) in [(WHITE, frame_px + 3), (BLACK, frame_px)] {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x - 0.47, y - 0.47), (x + 0.47, y + 0.47)],
                        colour.stroke_width(width),
                    )))
                    .map_err(err)?;
            }
        }
        // Colour bar with the scale, and the key for cells that did not converge.
        let bar = bar_area.margin(30, 60, 10, 20);
        let (bw, bh) = bar.dim_in_pixel();
        let bar_h = bh.saturating_sub(200).max(50) as i32;
        // Below the bar's title, clear of the top label (drawn 7 px above its value).
        let top = 44;
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
        let key3 = key2 + 44;
        bar.draw(&Rectangle::new(
            [(0, key3), (28, key3 + 28)],
            WHITE.stroke_width(6),
        ))
        .map_err(err)?;
        bar.draw(&Rectangle::new(
            [(0, key3), (28, key3 + 28)],
            BLACK.stroke_width(3),
        ))
        .map_err(err)?;
        bar.draw(&text("best (all".into(), (34, key3), 14))
            .map_err(err)?;
        bar.draw(&text("seeds converged)".into(), (34, key3 + 15), 14))
            .map_err(err)?;
        let _ = bw;
        Ok(())
    }
}
