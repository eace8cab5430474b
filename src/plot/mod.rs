//! Plots a person can read without the code: one run's timeline, a sweep's heatmap or line,
//! and a profile's throttle vs dirty-rate curve against auto-converge's threshold.
//!
//! Drawn with plotters to PNG (bitmap, encoded in memory) or SVG. Text uses DejaVu Sans,
//! shipped in `assets/fonts` and embedded in the binary, through plotters' `ab_glyph` renderer:
//! no fontconfig, freetype or system font is needed, so plots look the same on every machine.

pub mod advise;
mod heatmap;
mod line;
mod overlay;
mod profile;
mod run;
mod sweep;

pub use overlay::{overlay_plot, OverlayRun};
pub use profile::{profile_plot, profile_plot_as};
pub use run::{run_plot, RunData};
pub use sweep::{sweep_plot, SweepPlotOptions};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor;
use std::path::Path;

/// One grid point of a sweep as plotted: the objective over the seeds that converged.
pub(crate) struct SweepCell {
    /// Mean over converged seeds, in display units.
    pub(crate) value: Option<f64>,
    /// Lowest converged seed.
    pub(crate) lo: f64,
    /// Highest converged seed.
    pub(crate) hi: f64,
    /// Seeds that converged.
    pub(crate) completed: usize,
    /// Seeds run.
    pub(crate) runs: usize,
}

/// DejaVu Sans (Bitstream Vera license; see assets/fonts/).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name every text style here uses.
pub(crate) const FAMILY: &str = "sans-serif";

/// A plot that cannot be made.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum PlotError {
    /// {0}: the output must end in .png or .svg
    Format(String),
    /// {0}
    Input(String),
    /// drawing failed: {0}
    Draw(String),
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PNG (RGB, 8 bits).
    Png,
    /// SVG.
    Svg,
}

impl Format {
    /// From a file name's extension.
    pub fn from_path(path: &Path) -> Result<Format, PlotError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(PlotError::Format(path.display().to_string())),
        }
    }
}

/// Default picture size (pixels).
pub const DEFAULT_SIZE: (u32, u32) = (1280, 960);

/// Something drawable on any plotters backend.
pub(crate) trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn register_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid font (checked by a test); plotters falls back to bold from
        // normal, so one face serves both.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Draw `fig` at `size` and return the file's bytes.
pub(crate) fn render(
    fig: &impl Figure,
    format: Format,
    size: (u32, u32),
) -> Result<Vec<u8>, PlotError> {
    register_fonts();
    let (w, h) = size;
    if w < 200 || h < 150 || w > 10_000 || h > 10_000 {
        return Err(PlotError::Input(format!(
            "size {w}x{h}: choose between 200x150 and 10000x10000 pixels"
        )));
    }
    match format {
        Format::Svg => {
            let mut s = String::new();
            {
                let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
                fig.draw(&root).map_err(PlotError::Draw)?;
                root.present().map_err(|e| PlotError::Draw(e.to_string()))?;
            }
            Ok(s.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                fig.draw(&root).map_err(PlotError::Draw)?;
                root.present().map_err(|e| PlotError::Draw(e.to_string()))?;
            }
            let mut out = Vec::new();
            {
                let mut enc = png::Encoder::new(&mut out, w, h);
                enc.set_color(png::ColorType::Rgb);
                enc.set_depth(png::BitDepth::Eight);
                let mut writer = enc
                    .write_header()
                    .map_err(|e| PlotError::Draw(e.to_string()))?;
                writer
                    .write_image_data(&rgb)
                    .map_err(|e| PlotError::Draw(e.to_string()))?;
            }
            Ok(out)
        }
    }
}

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A title line and a smaller subtitle line at the top of `root`; returns the area below.
pub(crate) fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<DB, Shift>, String> {
    root.fill(&WHITE).map_err(err)?;
    let (w, _) = root.dim_in_pixel();
    let centre = (w / 2) as i32;
    let style = |size: u32| {
        TextStyle::from((FAMILY, size).into_font())
            .color(&BLACK)
            .pos(text_anchor::Pos::new(
                text_anchor::HPos::Center,
                text_anchor::VPos::Top,
            ))
    };
    root.draw(&Text::new(title.to_string(), (centre, 10), style(26)))
        .map_err(err)?;
    let mut height = 46;
    if !subtitle.is_empty() {
        root.draw(&Text::new(subtitle.to_string(), (centre, 44), style(17)))
            .map_err(err)?;
        height = 72;
    }
    Ok(root.split_vertically(height).1)
}

/// Axis numbers without needless decimals: 0, 20, 40 or 0.5, 1.0, 1.5.
pub(crate) fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if (v * 10.0 - (v * 10.0).round()).abs() < 1e-6 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A polyline drawn as one two-point element per segment. plotters joins the segments of a
/// thick polyline with mitres whose inner corner is unbounded, so a sharp reversal (a sawtooth's
/// drop at a sync, a rate's dip) spikes far past the data, even through the axis below; lone
/// segments have no joins.
pub(crate) fn segments(
    points: impl IntoIterator<Item = (f64, f64)>,
    style: ShapeStyle,
) -> Vec<PathElement<(f64, f64)>> {
    let points: Vec<(f64, f64)> = points.into_iter().collect();
    points
        .windows(2)
        .map(|w| PathElement::new(vec![w[0], w[1]], style))
        .collect()
}

/// Colours used across plots (colour-blind-safe pairs from the Okabe-Ito palette).
pub(crate) mod palette {
    use plotters::style::RGBColor;
    /// Blue.
    pub const BLUE: RGBColor = RGBColor(0, 114, 178);
    /// Vermillion.
    pub const RED: RGBColor = RGBColor(213, 94, 0);
    /// Orange.
    pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
    /// Bluish green.
    pub const GREEN: RGBColor = RGBColor(0, 158, 115);
    /// Reddish purple: the switchover, apart from the vermillion dirty rate.
    pub const PURPLE: RGBColor = RGBColor(204, 121, 167);
    /// Sky blue: dirty-limit's sleep per ring-full round.
    pub const SKY: RGBColor = RGBColor(86, 180, 233);
    /// Mid grey.
    pub const GREY: RGBColor = RGBColor(150, 150, 150);
    /// Light grey, for cells that did not converge: no hue, so it cannot be read as a value
    /// on the (blue to yellow) colour scale.
    pub const NOT_CONVERGED: RGBColor = RGBColor(200, 200, 200);
}

/// "1.5 GiB"-style scaling for an axis: (divisor, unit) for the largest value.
pub(crate) fn byte_scale(max_bytes: f64) -> (f64, &'static str) {
    const G: f64 = (1u64 << 30) as f64;
    const M: f64 = (1u64 << 20) as f64;
    if max_bytes >= 2.0 * G {
        (G, "GiB")
    } else if max_bytes >= 2.0 * M {
        (M, "MiB")
    } else {
        (1024.0, "KiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_font_loads() {
        assert!(plotters::style::register_font("test-family", FontStyle::Normal, FONT).is_ok());
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_path(Path::new("a.PNG")).unwrap(), Format::Png);
        assert_eq!(Format::from_path(Path::new("a.svg")).unwrap(), Format::Svg);
        assert!(Format::from_path(Path::new("a.jpg")).is_err());
    }
}
