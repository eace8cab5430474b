//! A workload's throttle vs dirty-rate curve, with the line auto-converge must get under at a
//! given bandwidth: QEMU raises the throttle while the bytes dirtied in a sync period exceed
//! throttle-trigger-threshold % of the bytes sent.

use super::{byte_scale, err, palette, render, tick, titled, Figure, Format, PlotError, FAMILY};
use crate::report::profile::{Profile, Verdict};
use crate::units::format_bytes;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::Path;

struct ProfileFigure<'a> {
    profile: &'a Profile,
    verdict: Verdict,
    title: String,
}

impl Figure for ProfileFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let p = self.profile;
        let v = &self.verdict;
        let page = p.rows[0].page_size_bytes.unwrap_or(4096) as f64;
        let bw_text = format!("{}/s", format_bytes(v.bandwidth_bytes_s.round() as u64));
        let verdict = match v.settles_at_pct {
            Some(0) => "converges without throttling".to_string(),
            Some(pct) => format!("auto-converge stops raising the throttle at {pct} %"),
            None => "never under the line: auto-converge cannot converge this workload".into(),
        };
        let subtitle = format!(
            "migration bandwidth {bw_text}, throttle-trigger-threshold {} %: {verdict}",
            v.trigger_pct
        );
        let area = titled(root, &self.title, &subtitle)?;
        let max_rate = p
            .rows
            .iter()
            .map(|r| {
                r.dirty_pages_s_max
                    .unwrap_or(r.dirty_pages_s)
                    .max(r.dirty_pages_s)
            })
            .fold(v.bandwidth_pages_s, f64::max)
            * page;
        let (div, unit) = byte_scale(max_rate);
        let to_y = |pages_s: f64| pages_s * page / div;
        let y_top = max_rate / div * 1.12;
        let mut chart = ChartBuilder::on(&area)
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(90)
            .right_y_label_area_size(90)
            .build_cartesian_2d(0.0..100.0, 0.0..y_top)
            .map_err(err)?
            .set_secondary_coord(0.0..100.0, 0.0..y_top * div / page);
        chart
            .configure_mesh()
            .x_desc("CPU throttle held (%)")
            .y_desc(format!("dirty rate ({unit}/s)"))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .axis_desc_style((FAMILY, 18))
            .label_style((FAMILY, 15))
            .light_line_style(palette::GREY.mix(0.15))
            .draw()
            .map_err(err)?;
        chart
            .configure_secondary_axes()
            .y_desc("dirty rate (pages/s)")
            .y_label_formatter(&|v: &f64| format!("{v:.0}"))
            .axis_desc_style((FAMILY, 18))
            .label_style((FAMILY, 15))
            .draw()
            .map_err(err)?;
        // The zone where the throttle keeps rising.
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, to_y(v.threshold_pages_s)), (100.0, y_top)],
                palette::RED.mix(0.06).filled(),
            )))
            .map_err(err)?;
        let note = TextStyle::from((FAMILY, 15).into_font()).color(&palette::RED);
        chart
            .draw_series(std::iter::once(Text::new(
                "above this line auto-converge keeps raising the throttle".to_string(),
                (1.5, to_y(v.threshold_pages_s) + y_top * 0.035),
                note,
            )))
            .map_err(err)?;
        let bw_style = palette::GREY.stroke_width(2);
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                vec![
                    (0.0, to_y(v.bandwidth_pages_s)),
                    (100.0, to_y(v.bandwidth_pages_s)),
                ],
                8,
                6,
                bw_style,
            )))
            .map_err(err)?
            .label(format!("migration bandwidth {bw_text}"))
            .legend(move |(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 20, y)], 8, 6, bw_style)
            });
        let th_style = palette::RED.stroke_width(3);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (0.0, to_y(v.threshold_pages_s)),
                    (100.0, to_y(v.threshold_pages_s)),
                ],
                th_style,
            )))
            .map_err(err)?
            .label(format!(
                "threshold: {} % of the bandwidth (throttle rises above it)",
                v.trigger_pct
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], th_style));
        let line = palette::BLUE.stroke_width(3);
        chart
            .draw_series(LineSeries::new(
                p.rows
                    .iter()
                    .map(|r| (f64::from(r.throttle_pct), to_y(r.dirty_pages_s))),
                line,
            ))
            .map_err(err)?
            .label("measured dirty rate (mean; bars: min .. max per harvest)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line));
        chart
            .draw_series(p.rows.iter().map(|r| {
                Circle::new(
                    (f64::from(r.throttle_pct), to_y(r.dirty_pages_s)),
                    5,
                    line.filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(p.rows.iter().filter_map(|r| {
                let (lo, hi) = (r.dirty_pages_s_min?, r.dirty_pages_s_max?);
                Some(ErrorBar::new_vertical(
                    f64::from(r.throttle_pct),
                    to_y(lo),
                    to_y(r.dirty_pages_s),
                    to_y(hi),
                    palette::BLUE.mix(0.6).stroke_width(2),
                    10,
                ))
            }))
            .map_err(err)?;
        if let Some(pct) = v.settles_at_pct {
            let x = f64::from(pct);
            let style = palette::GREEN.stroke_width(2);
            chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    vec![(x, 0.0), (x, y_top)],
                    6,
                    5,
                    style,
                )))
                .map_err(err)?
                .label(format!("first level under the threshold: {pct} %"))
                .legend(move |(x, y)| {
                    DashedPathElement::new(vec![(x, y), (x + 20, y)], 6, 5, style)
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.5))
            .label_font((FAMILY, 15))
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// Plot `profile` with the threshold for `bandwidth_bytes_s` and `trigger_pct`; the format
/// comes from `path`'s extension. Returns the file's bytes.
pub fn profile_plot(
    profile: &Profile,
    title: &str,
    bandwidth_bytes_s: f64,
    trigger_pct: u32,
    path: &Path,
) -> Result<Vec<u8>, PlotError> {
    let format = Format::from_path(path)?;
    profile_plot_as(
        profile,
        title,
        bandwidth_bytes_s,
        trigger_pct,
        format,
        super::DEFAULT_SIZE,
    )
}

/// [`profile_plot`] with an explicit format and size.
pub fn profile_plot_as(
    profile: &Profile,
    title: &str,
    bandwidth_bytes_s: f64,
    trigger_pct: u32,
    format: Format,
    size: (u32, u32),
) -> Result<Vec<u8>, PlotError> {
    if !(bandwidth_bytes_s.is_finite() && bandwidth_bytes_s > 0.0) {
        return Err(PlotError::Input("the bandwidth must be above 0".into()));
    }
    let fig = ProfileFigure {
        profile,
        verdict: profile.verdict(bandwidth_bytes_s, trigger_pct),
        title: title.to_string(),
    };
    render(&fig, format, size)
}
