//! `autoconv plot`: a run directory, a sweep, or a profile, to PNG or SVG.

use super::exit;
use super::out::outln;
use super::sweep::parse_metric;
use anyhow::Context;
use autoconv::migration::MigrationParameters;
use autoconv::plot::{
    profile_plot_as, run_plot, sweep_plot, Format, SweepPlotOptions, DEFAULT_SIZE,
};
use autoconv::report::profile::Profile;
use autoconv::report::write_file_atomically;
use autoconv::sweep::{Metric, RunsTable};
use autoconv::units::parse_rate_bytes_s;
use clap::Args;
use std::path::{Path, PathBuf};

/// Draw a run, a sweep or a profile as a PNG or SVG picture.
///
/// What is drawn depends on PATH:
///   a run directory (from `sim --out` or `run --kvm`): throttle %, dirty and transfer rates
///     and remaining memory against migration time, dirty syncs and the switchover marked
///     [default output: DIR/timeline.png];
///   a sweep directory or its runs.csv: a heatmap of --objective over two grid axes (cells that
///     did not converge light grey with a cross), or a line over one axis
///     [default: DIR/<objective>.png];
///   a profile CSV (from `autoconv profile`): dirty rate against the throttle held, with the
///     line auto-converge must get under at --bandwidth [default: the CSV's name with .png].
///
/// Examples:
///   autoconv sim scenarios/heavy.toml --out results/heavy && autoconv plot results/heavy
///   autoconv plot results/sweep-heavy --objective guest_cpu_lost -o heavy-cpu.svg
///   autoconv plot results/sweep-big/runs.csv --x cpu-throttle-increment \
///       --where cpu-throttle-initial=20
///   autoconv plot heavy-profile.csv --bandwidth 1GiB/s
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PlotArgs {
    /// A run directory, a sweep directory or runs.csv, or a profile CSV.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Output file; .png or .svg decides the format [default: beside the input].
    #[arg(short = 'o', long = "output", value_name = "FILE.png|FILE.svg")]
    pub output: Option<PathBuf>,
    /// Format of the default output name.
    #[arg(long, default_value = "png", value_parser = ["png", "svg"])]
    pub format: String,
    /// Picture size in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x960", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Sweeps: the figure shown (total_time, guest_cpu_lost, transferred, downtime,
    /// dirty_syncs, max_throttle).
    #[arg(long, default_value = "total_time", value_parser = parse_metric)]
    pub objective: Metric,
    /// Sweeps: the grid axis across [default: the first].
    #[arg(long, value_name = "AXIS")]
    pub x: Option<String>,
    /// Sweeps: the grid axis up, for a heatmap [default: the second, if any].
    #[arg(long, value_name = "AXIS")]
    pub y: Option<String>,
    /// Sweeps: keep only runs with this grid value (needed when there are more than two
    /// axes). Repeatable.
    #[arg(long = "where", value_name = "AXIS=VALUE")]
    pub filters: Vec<String>,
    /// Profiles: the migration bandwidth to judge the curve against [default: the one the
    /// CSV's verdict was judged at (`verdict_bandwidth_bytes_s`), else QEMU's max-bandwidth
    /// default, 128MiB/s].
    #[arg(long, value_name = "RATE")]
    pub bandwidth: Option<String>,
    /// Profiles: throttle-trigger-threshold (%) [default: the CSV's verdict's, else 50].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub trigger: Option<u32>,
    /// Title [default: from the input].
    #[arg(long)]
    pub title: Option<String>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, e.g. 1280x960, found {s:?}"))?;
    let n = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("expected WIDTHxHEIGHT, e.g. 1280x960, found {s:?}"))
    };
    Ok((n(w)?, n(h)?))
}

enum Input {
    Run(PathBuf),
    Sweep(PathBuf),
    Profile(PathBuf),
}

fn classify(path: &Path) -> anyhow::Result<Input> {
    if path.is_dir() {
        if path.join("timeseries.csv").is_file() {
            return Ok(Input::Run(path.to_path_buf()));
        }
        if path.join("runs.csv").is_file() {
            return Ok(Input::Sweep(path.join("runs.csv")));
        }
        anyhow::bail!(
            "{}: neither a run directory (timeseries.csv) nor a sweep directory (runs.csv)",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header = text.lines().next().unwrap_or("");
    if header.starts_with("run_index,") {
        Ok(Input::Sweep(path.to_path_buf()))
    } else if header.split(',').any(|c| c.trim() == "throttle_pct") {
        Ok(Input::Profile(path.to_path_buf()))
    } else {
        anyhow::bail!(
            "{}: not a runs.csv from `autoconv sweep` nor a profile CSV from `autoconv profile`",
            path.display()
        )
    }
}

pub fn run(args: PlotArgs) -> anyhow::Result<u8> {
    let input = classify(&args.path)?;
    let ext = args.format.as_str();
    let (out, bytes) = match input {
        Input::Run(dir) => {
            let out = args
                .output
                .clone()
                .unwrap_or_else(|| dir.join(format!("timeline.{ext}")));
            let bytes = run_plot(&dir, Format::from_path(&out)?, args.size)?;
            (out, bytes)
        }
        Input::Sweep(csv) => {
            let table = RunsTable::read(&csv)?;
            let out = args
                .output
                .clone()
                .unwrap_or_else(|| csv.with_file_name(format!("{}.{ext}", args.objective.name())));
            let opts = SweepPlotOptions {
                objective: args.objective,
                x: args.x.clone(),
                y: args.y.clone(),
                filters: args.filters.clone(),
                title: args.title.clone(),
            };
            let bytes = sweep_plot(&table, &opts, Format::from_path(&out)?, args.size)?;
            (out, bytes)
        }
        Input::Profile(csv) => {
            let p = Profile::read(&csv)?;
            // The verdict `profile` printed, unless told otherwise: the CSV says what it
            // was judged at.
            let (csv_bw, csv_trigger) = p.verdict_settings();
            let defaults = MigrationParameters::default();
            let bw = match &args.bandwidth {
                Some(text) => {
                    let bw = parse_rate_bytes_s(text)
                        .map_err(|e| anyhow::anyhow!("--bandwidth: {e}"))?;
                    if bw == 0 {
                        anyhow::bail!("--bandwidth must be above 0");
                    }
                    bw as f64
                }
                None => csv_bw.unwrap_or(defaults.max_bandwidth as f64),
            };
            let trigger = args
                .trigger
                .or(csv_trigger)
                .unwrap_or(defaults.throttle_trigger_threshold);
            let out = args
                .output
                .clone()
                .unwrap_or_else(|| csv.with_extension(ext));
            let title = args.title.clone().unwrap_or_else(|| {
                let source = p.rows[0].source.clone().unwrap_or_default();
                if source.is_empty() {
                    format!("dirty rate vs throttle: {}", csv.display())
                } else {
                    format!("dirty rate vs throttle: {source}")
                }
            });
            let bytes =
                profile_plot_as(&p, &title, bw, trigger, Format::from_path(&out)?, args.size)?;
            (out, bytes)
        }
    };
    write_file_atomically(&out, &bytes)?;
    outln!("wrote {} ({}x{})", out.display(), args.size.0, args.size.1);
    let _ = DEFAULT_SIZE;
    Ok(exit::OK)
}
