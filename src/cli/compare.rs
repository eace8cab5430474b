//! `autoconv compare`: a recorded run next to a simulation of a scenario with its parameters.

use super::exit;
use super::out::{errln, out, outln};
use anyhow::Context;
use autoconv::check::compare::{format_comparison, metrics_from_summary, overrides_from_summary};
use autoconv::migration::Timeline;
use autoconv::report::write_run_dir;
use autoconv::scenario::Scenario;
use autoconv::sweep::RunMetrics;
use clap::Args;
use std::path::PathBuf;

/// Compare a recorded run with a simulation of a scenario under the run's parameters.
///
/// How close does the (calibrated) simulator come to a real run (`run --kvm`)?
///
/// Reads RUN_DIR/summary.json, applies the QEMU parameters and autoconv settings the run used
/// to FILE.toml (then any --set), simulates, and prints both outcomes side by side: status,
/// total time, downtime, dirty syncs, highest throttle, bytes sent, guest CPU lost, and the
/// throttle sequence. To predict a real guest, FILE.toml describes its memory and working set
/// with a region of pattern = "profile" whose CSV came from `autoconv profile --kvm`.
///
/// Examples:
///   autoconv profile --kvm guest.img -o guest-profile.csv
///   autoconv run --kvm guest.img --set cpu-throttle-initial=30 --out results/real
///   autoconv compare results/real scenarios/calibrated.toml \
///       --set region.heap.profile=guest-profile.csv
///   autoconv compare results/heavy scenarios/calibrated.toml --out results/heavy-predicted
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompareArgs {
    /// A run directory with summary.json (from `run --kvm` or `sim --out`).
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// The scenario to simulate (usually one calibrated on the same guest's profile).
    #[arg(value_name = "FILE.toml")]
    pub scenario: PathBuf,
    /// Applied after the run's parameters. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Seed for the simulation [default: the scenario's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also write the simulated run directory here (to plot it next to the real one).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(args: CompareArgs) -> anyhow::Result<u8> {
    let path = args.run.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let summary: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let real = metrics_from_summary(&path.display().to_string(), &summary)?;
    let mut sets = overrides_from_summary(&summary);
    let from_run = sets.len();
    sets.extend(args.sets.iter().cloned());
    let scenario = Scenario::load(&args.scenario, &sets)?;
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
        args.run.display(),
        args.scenario.display()
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
    Ok(exit::OK)
}
