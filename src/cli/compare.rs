//! `autoconv compare`: runs side by side. A recorded run next to a simulation of a scenario
//! with its parameters; several run directories; or several policies on one scenario.

use super::exit;
use super::out::{errln, json_mode, out, outln, print_json};
use anyhow::Context;
use autoconv::check::compare::{
    format_comparison, format_runs, metrics_from_summary, overrides_from_summary,
};
use autoconv::migration::Timeline;
use autoconv::plot::{overlay_plot, Format, OverlayRun, RunData, DEFAULT_SIZE};
use autoconv::report::{json, write_file_atomically, write_run_dir};
use autoconv::scenario::Scenario;
use autoconv::sweep::RunMetrics;
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Put runs side by side: a recorded run and its simulation, several runs, or several policies.
///
/// RUN_DIR FILE.toml: how close does the (calibrated) simulator come to a real run (`run
/// --kvm`)? Reads RUN_DIR/summary.json, applies the QEMU parameters and autoconv settings the
/// run used to FILE.toml (then any --set), simulates, and prints both outcomes side by side.
/// To predict a real guest, FILE.toml describes its memory and working set with a region of
/// pattern = "profile" whose CSV came from `autoconv profile --kvm`.
///
/// RUN_DIR RUN_DIR...: the runs' outcomes in one table, each against the first.
///
/// FILE.toml --policy P --policy Q...: simulates the scenario once per policy (each a
/// comma-separated list of NAME=VALUE, applied after any --set) and tabulates them, the first
/// policy the reference.
///
/// Every form prints one table (status, total time, downtime, dirty syncs, highest throttle,
/// bytes sent, guest CPU lost, the throttle steps); --plot draws the throttle and the remaining
/// memory of every run over time on one picture.
///
/// Examples:
///   autoconv compare results/real scenarios/calibrated.toml \
///       --set region.heap.profile=guest-profile.csv
///   autoconv compare results/a results/b results/c --plot abc.png
///   autoconv compare scenarios/heavy.toml \
///       --policy 'cpu-throttle-initial=20,cpu-throttle-increment=10' \
///       --policy 'cpu-throttle-initial=30,cpu-throttle-increment=20' \
///       --policy 'cpu-throttle-initial=60,cpu-throttle-increment=5' --plot policies.png
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompareArgs {
    /// RUN_DIR FILE.toml, RUN_DIR RUN_DIR..., or FILE.toml with --policy.
    #[arg(value_name = "RUN_DIR|FILE.toml", required = true)]
    pub inputs: Vec<PathBuf>,
    /// A policy to simulate on FILE.toml: NAME=VALUE[,NAME=VALUE...]. Repeatable.
    #[arg(long = "policy", value_name = "NAME=VALUE,...")]
    pub policies: Vec<String>,
    /// Applied to every simulation (after a run's parameters, before a --policy). Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Seed for the simulations [default: the scenario's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// RUN_DIR FILE.toml: also write the simulated run directory here (to plot it next to the
    /// real one).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Draw every run's throttle and remaining memory over time on one picture (.png or .svg).
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// Print the runs as one JSON document on stdout; the text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// One column of the comparison.
struct Column {
    label: String,
    /// Where it came from: a run directory, or a scenario and the sets it was simulated with.
    source: Value,
    metrics: RunMetrics,
    overlay: Option<OverlayRun>,
}

pub fn run(args: CompareArgs) -> anyhow::Result<u8> {
    if args.json {
        json_mode();
    }
    if let Some(p) = &args.plot {
        Format::from_path(p)?;
        autoconv::report::check_output_file(p)?;
    }
    let is_scenario = |p: &Path| !p.is_dir();
    let (mode, columns) = if !args.policies.is_empty() {
        let [scenario] = args.inputs.as_slice() else {
            anyhow::bail!("--policy compares policies on one scenario: give one FILE.toml");
        };
        if args.out.is_some() {
            anyhow::bail!("--out writes the simulation of RUN_DIR FILE.toml; with --policy, use `autoconv sim` for a run directory");
        }
        ("policies", policies(&args, scenario)?)
    } else if args.inputs.len() == 2 && is_scenario(&args.inputs[1]) {
        ("run-vs-sim", run_vs_sim(&args)?)
    } else {
        if args.inputs.len() < 2 {
            anyhow::bail!(
                "compare needs RUN_DIR FILE.toml, two or more RUN_DIRs, or FILE.toml with --policy"
            );
        }
        if let Some(file) = args.inputs.iter().find(|p| is_scenario(p)) {
            anyhow::bail!(
                "{}: not a run directory (several inputs are compared as run directories; a scenario goes with one RUN_DIR, or alone with --policy)",
                file.display()
            );
        }
        if args.out.is_some() || !args.sets.is_empty() || args.seed.is_some() {
            anyhow::bail!("--out, --set and --seed apply to simulations; comparing run directories simulates nothing");
        }
        ("runs", run_dirs(&args)?)
    };
    if mode != "run-vs-sim" {
        let cols: Vec<(String, RunMetrics)> = columns
            .iter()
            .map(|c| (c.label.clone(), c.metrics.clone()))
            .collect();
        out!("{}", format_runs(&cols));
    }
    if let Some(path) = &args.plot {
        let runs: Vec<OverlayRun> = columns.iter().filter_map(|c| c.overlay.clone()).collect();
        let title = match mode {
            "policies" => format!(
                "{}: policies side by side",
                args.inputs[0]
                    .file_name()
                    .map_or(args.inputs[0].display().to_string(), |n| n
                        .to_string_lossy()
                        .into_owned())
            ),
            "run-vs-sim" => "recorded run vs simulation".to_string(),
            _ => "runs side by side".to_string(),
        };
        let bytes = overlay_plot(&runs, &title, Format::from_path(path)?, DEFAULT_SIZE)
            .with_context(|| format!("plotting {}", path.display()))?;
        write_file_atomically(path, &bytes)?;
        outln!("wrote {}", path.display());
    }
    if args.json {
        let cols: Vec<Value> = columns
            .iter()
            .map(|c| json!({"label": c.label, "source": c.source, "run": c.metrics.to_json()}))
            .collect();
        print_json(&json!({
            "format_version": json::FORMAT_VERSION,
            "mode": mode,
            "columns": cols,
        }));
    }
    Ok(exit::OK)
}

/// The throttle and remaining memory of a timeline, for the overlay.
fn overlay_of_timeline(label: &str, t: &Timeline) -> OverlayRun {
    OverlayRun {
        label: label.to_string(),
        points: t
            .samples
            .iter()
            .map(|s| {
                (
                    s.t_ms as f64 / 1000.0,
                    f64::from(s.throttle_pct),
                    s.remaining_bytes as f64,
                )
            })
            .collect(),
        switchover_s: t.events.iter().find_map(|e| match e {
            autoconv::migration::Event::Switchover { t_ms, .. } => Some(*t_ms as f64 / 1000.0),
            _ => None,
        }),
    }
}

fn overlay_of_dir(label: &str, dir: &Path) -> anyhow::Result<OverlayRun> {
    let d = RunData::load(dir)?;
    Ok(OverlayRun {
        label: label.to_string(),
        points: d
            .samples
            .iter()
            .map(|s| (s.t_s, s.throttle_pct, s.remaining_bytes))
            .collect(),
        switchover_s: d.switchover_s,
    })
}

fn read_summary(dir: &Path) -> anyhow::Result<(String, Value)> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let summary: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    Ok((path.display().to_string(), summary))
}

/// `compare FILE.toml --policy ...`: one simulation per policy.
fn policies(args: &CompareArgs, path: &Path) -> anyhow::Result<Vec<Column>> {
    let mut cols = Vec::new();
    for policy in &args.policies {
        let policy_sets: Vec<String> = policy
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if policy_sets.is_empty() {
            anyhow::bail!("--policy {policy:?}: expected NAME=VALUE[,NAME=VALUE...]");
        }
        let mut sets = args.sets.clone();
        sets.extend(policy_sets.iter().cloned());
        let scenario = Scenario::load(path, &sets).with_context(|| format!("--policy {policy}"))?;
        let seed = args.seed.unwrap_or(scenario.seed);
        let mut timeline = Timeline::default();
        let outcome = autoconv::sim::simulate(&scenario, seed, &mut timeline);
        let label = policy_label(&policy_sets);
        cols.push(Column {
            overlay: Some(overlay_of_timeline(&label, &timeline)),
            label,
            source: json!({"scenario": path.display().to_string(), "sets": sets, "seed": seed}),
            metrics: RunMetrics::from(&outcome),
        });
    }
    outln!(
        "{}: {} polic{} simulated (seed {}), each against the first",
        path.display(),
        cols.len(),
        if cols.len() == 1 { "y" } else { "ies" },
        args.seed
            .map_or("of the scenario".to_string(), |s| s.to_string())
    );
    Ok(cols)
}

/// `compare RUN_DIR RUN_DIR...`.
fn run_dirs(args: &CompareArgs) -> anyhow::Result<Vec<Column>> {
    let mut cols = Vec::new();
    for dir in &args.inputs {
        let (path, summary) = read_summary(dir)?;
        let metrics = metrics_from_summary(&path, &summary)?;
        let label = dir.display().to_string();
        let overlay = match &args.plot {
            Some(_) => Some(overlay_of_dir(&label, dir)?),
            None => None,
        };
        cols.push(Column {
            source: json!({"run_dir": label, "backend": summary["backend"]}),
            label,
            metrics,
            overlay,
        });
    }
    outln!("{} runs, each against the first", cols.len());
    Ok(cols)
}

/// `compare RUN_DIR FILE.toml`: the run, and the scenario simulated with the run's parameters.
fn run_vs_sim(args: &CompareArgs) -> anyhow::Result<Vec<Column>> {
    let (run_dir, scenario_path) = (&args.inputs[0], &args.inputs[1]);
    let (path, summary) = read_summary(run_dir)?;
    let real = metrics_from_summary(&path, &summary)?;
    let mut sets = overrides_from_summary(&summary);
    let from_run = sets.len();
    sets.extend(args.sets.iter().cloned());
    let scenario = Scenario::load(scenario_path, &sets)?;
    // A real run says how fast its guest wrote before the migration; a calibration made on
    // another host or guest predicts something else.
    if let Some(rate) = summary["guest"]["write_pages_s_before"].as_f64() {
        for w in autoconv::check::calibration::scenario_rate_warnings(&scenario, rate) {
            errln!("autoconv: {w}");
        }
    }
    if let Some(dir) = &args.out {
        autoconv::report::check_output_dir(dir)?;
    }
    let seed = args.seed.unwrap_or(scenario.seed);
    let mut timeline = Timeline::default();
    let outcome = autoconv::sim::simulate(&scenario, seed, &mut timeline);
    let sim = RunMetrics::from(&outcome);
    let backend = summary["backend"].as_str().unwrap_or("run");
    outln!(
        "{} ({backend}) vs {} simulated (seed {seed})",
        run_dir.display(),
        scenario_path.display()
    );
    if from_run > 0 {
        outln!(
            "  parameters from the run: --set {}",
            sets[..from_run].join(" --set ")
        );
    } else {
        outln!("  the run's summary names no parameters: the scenario's own are used");
    }
    out!(
        "{}",
        format_comparison(&format!("recorded ({backend})"), &real, &sim)
    );
    if let Some(dir) = &args.out {
        let summary = super::sim::sim_summary(&scenario, seed, &outcome);
        write_run_dir(dir, &timeline, &summary, &[])
            .with_context(|| format!("writing results to {}", dir.display()))?;
        outln!("  wrote {}", dir.display());
    }
    let recorded_label = format!("{} ({backend})", run_dir.display());
    let recorded_overlay = match &args.plot {
        Some(_) => Some(overlay_of_dir(&recorded_label, run_dir)?),
        None => None,
    };
    let sim_label = format!("{} simulated", scenario_path.display());
    Ok(vec![
        Column {
            overlay: recorded_overlay,
            label: recorded_label,
            source: json!({"run_dir": run_dir.display().to_string(), "backend": backend}),
            metrics: real,
        },
        Column {
            overlay: Some(overlay_of_timeline(&sim_label, &timeline)),
            label: sim_label,
            source: json!({"scenario": scenario_path.display().to_string(), "sets": sets, "seed": seed}),
            metrics: sim,
        },
    ])
}

/// A policy's short name for table heads and legends: QEMU's throttle parameters without
/// their common words ("initial=30 increment=20"); anything else as given.
fn policy_label(sets: &[String]) -> String {
    const SHORT: &[(&str, &str)] = &[
        ("cpu-throttle-initial", "initial"),
        ("cpu-throttle-increment", "increment"),
        ("cpu-throttle-tailslow", "tailslow"),
        ("max-cpu-throttle", "max"),
        ("throttle-trigger-threshold", "trigger"),
    ];
    sets.iter()
        .map(|s| {
            let (name, value) = s.split_once('=').unwrap_or((s, ""));
            let canonical = autoconv::migration::MigrationParameters::canonical_name(name.trim())
                .unwrap_or(name);
            match SHORT.iter().find(|(n, _)| *n == canonical) {
                Some((_, short)) => format!("{short}={}", value.trim()),
                None => s.clone(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
