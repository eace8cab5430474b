//! `autoconv sim` and `autoconv params`.

use super::exit;
use super::out::{errln, out, outln, print_json};
use anyhow::Context;
use autoconv::migration::{
    vocabulary, AutoconvSettings, MigrationOutcome, MigrationParameters, MigrationStatus,
    QemuVersion, Timeline,
};
use autoconv::report::{summary_json, write_run_dir, Summary};
use autoconv::scenario::Scenario;
use autoconv::units::format_bytes;
use clap::Args;
use std::path::PathBuf;

/// Simulate one migration of a scenario's synthetic guest.
///
/// Writes DIR/timeseries.csv (one row per 100 ms window), DIR/events.csv (dirty syncs,
/// throttle steps, switchover) and DIR/summary.json, and prints a short summary. The same
/// scenario, parameters and seed always give byte-identical files.
///
/// Examples:
///   autoconv sim scenarios/heavy.toml
///   autoconv sim scenarios/heavy.toml --set cpu-throttle-initial=30 --set cpu-throttle-increment=20
///   autoconv sim scenarios/heavy.toml --set auto-converge=off --out /tmp/heavy-off
///   autoconv sim scenarios/hotcold.toml --seed 7 --set guest.memory=64GiB
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SimArgs {
    /// Scenario file (TOML); see scenarios/ and the README for every key.
    #[arg(value_name = "FILE.toml")]
    pub scenario: PathBuf,
    /// Seed for the guest model's randomness [default: the scenario's `seed`].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override a migration parameter by its QEMU name (cpu-throttle-initial=30,
    /// auto-converge=on, max-bandwidth=64MiB/s) or any scenario value by its path
    /// (guest.memory=64GiB, link.bandwidth=25Gbit/s, region.heap.write_rate_pages_s=2e6,
    /// autoconv.time_limit_s=120). Repeatable; later ones win.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Output directory [default: results/<scenario name>].
    #[arg(long, value_name = "DIR", conflicts_with = "no_out")]
    pub out: Option<PathBuf>,
    /// Write no files; only print the summary.
    #[arg(long)]
    pub no_out: bool,
    /// Print summary.json on stdout instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

/// List the migration parameters autoconv takes, with QEMU's defaults and ranges.
#[derive(Debug, Args)]
pub struct ParamsArgs {
    /// Print the table as one JSON document (defaults typed: booleans and numbers).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SimArgs) -> anyhow::Result<u8> {
    let scenario = Scenario::load(&args.scenario, &args.sets)?;
    // A calibration made on another host may not describe the guest as it runs here.
    for w in autoconv::check::calibration::scenario_host_warnings(&scenario) {
        errln!("autoconv: {w}");
    }
    let seed = args.seed.unwrap_or(scenario.seed);
    let out_dir = (!args.no_out).then(|| {
        args.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("results").join(&scenario.name))
    });
    // Refused before the run, not after it.
    if let Some(dir) = &out_dir {
        autoconv::report::check_output_dir(dir)?;
    }
    let mut timeline = Timeline::default();
    let outcome = autoconv::sim::simulate(&scenario, seed, &mut timeline);
    let mut summary = sim_summary(&scenario, seed, &outcome);
    // What `advise RUN_DIR` needs to rebuild the workload: the file and the --sets, as given.
    summary.extra.insert(
        "scenario_file".into(),
        args.scenario.display().to_string().into(),
    );
    summary
        .extra
        .insert("sets".into(), serde_json::json!(args.sets));
    if let Some(dir) = &out_dir {
        write_run_dir(dir, &timeline, &summary, &[])
            .with_context(|| format!("writing results to {}", dir.display()))?;
    }
    if args.json {
        out!("{}", summary_json(&summary)?);
    } else {
        print_summary(&scenario, seed, &outcome, out_dir.as_deref());
    }
    Ok(exit::for_outcome(&outcome))
}

/// The summary of a simulated run.
pub fn sim_summary(scenario: &Scenario, seed: u64, outcome: &MigrationOutcome) -> Summary {
    let mut summary = Summary::new(
        &scenario.name,
        Some(seed),
        "sim",
        outcome,
        scenario.settings(),
    );
    summary.extra.insert(
        "model".into(),
        serde_json::to_value(scenario.guest.model).unwrap_or_default(),
    );
    summary
}

fn print_summary(
    scenario: &Scenario,
    seed: u64,
    o: &MigrationOutcome,
    out: Option<&std::path::Path>,
) {
    let p = &scenario.migration.params;
    outln!(
        "{} (seed {seed}): auto-converge {}{}, cpu-throttle-initial {}, cpu-throttle-increment {}, max-bandwidth {}, downtime-limit {} ms",
        scenario.name,
        if p.auto_converge { "on" } else { "off" },
        match (p.dirty_limit, scenario.migration.autoconv.policy) {
            (true, _) => ", dirty-limit on",
            (false, autoconv::migration::Policy::Predictive) => ", autoconv.policy predictive",
            (false, autoconv::migration::Policy::Qemu) => "",
        },
        p.cpu_throttle_initial,
        p.cpu_throttle_increment,
        if p.max_bandwidth == 0 {
            "unlimited".to_string()
        } else {
            format!("{}/s", format_bytes(p.max_bandwidth))
        },
        p.downtime_limit,
    );
    match o.status {
        MigrationStatus::Completed => outln!(
            "  completed in {:.1} s, downtime {} ms, {} dirty syncs, {} transferred",
            o.elapsed_ms as f64 / 1000.0,
            o.downtime_ms.unwrap_or(0),
            o.dirty_sync_count,
            format_bytes(o.transferred_bytes)
        ),
        status => outln!(
            "  {} after {:.1} s: {}; {} dirty syncs, {} transferred",
            status.as_str().to_uppercase(),
            o.elapsed_ms as f64 / 1000.0,
            o.reason.as_deref().unwrap_or("no reason given"),
            o.dirty_sync_count,
            format_bytes(o.transferred_bytes)
        ),
    }
    if p.dirty_limit {
        // The line this run's policy adds: dirty-limit, not auto-converge.
        match o.dirty_limit_throttle_time_per_round_us {
            Some(us) if o.guest_cpu_lost_s > 0.0 => outln!(
                "  dirty-limit: {} MB/s per vCPU, period {} ms; sleep per ring-full {:.1} ms at switchover, guest lost {:.1} vCPU-s to it",
                p.vcpu_dirty_limit,
                p.x_vcpu_dirty_limit_period,
                us as f64 / 1000.0,
                o.guest_cpu_lost_s
            ),
            _ => outln!("  dirty-limit: never engaged"),
        }
    } else if o.throttle_steps.is_empty() {
        outln!("  throttle: never engaged");
    } else {
        let steps: Vec<String> = o.throttle_steps.iter().map(u32::to_string).collect();
        outln!(
            "  throttle: {} % (max {} %), guest lost {:.1} vCPU-s to throttling",
            steps.join(" -> "),
            o.max_throttle_pct,
            o.guest_cpu_lost_s
        );
    }
    if let Some(dir) = out {
        outln!(
            "  wrote {}/{{timeseries.csv,events.csv,summary.json}}",
            dir.display()
        );
    }
}

pub fn params(args: ParamsArgs) -> anyhow::Result<u8> {
    let d = MigrationParameters::default();
    let rows = [
        (
            "auto-converge",
            "capability",
            d.auto_converge.to_string(),
            "throttle vCPUs so busy guests converge",
        ),
        (
            "throttle-trigger-threshold",
            "%",
            d.throttle_trigger_threshold.to_string(),
            "step when dirtied bytes exceed this share of transferred bytes in a sync period",
        ),
        (
            "cpu-throttle-initial",
            "%",
            d.cpu_throttle_initial.to_string(),
            "first throttle percentage (aliases below)",
        ),
        (
            "cpu-throttle-increment",
            "%",
            d.cpu_throttle_increment.to_string(),
            "added at each later step (aliases below)",
        ),
        (
            "cpu-throttle-tailslow",
            "bool",
            d.cpu_throttle_tailslow.to_string(),
            "smaller steps near the percentage that would converge",
        ),
        (
            "max-cpu-throttle",
            "%",
            d.max_cpu_throttle.to_string(),
            "ceiling of the throttle",
        ),
        (
            "downtime-limit",
            "ms",
            d.downtime_limit.to_string(),
            "longest pause allowed for stop-and-copy",
        ),
        (
            "max-bandwidth",
            "bytes/s",
            d.max_bandwidth.to_string(),
            "migration rate limit, enforced per 100 ms window",
        ),
        (
            "avail-switchover-bandwidth",
            "bytes/s",
            d.avail_switchover_bandwidth.to_string(),
            "bandwidth assumed for the switchover decision",
        ),
        (
            "dirty-limit",
            "capability",
            d.dirty_limit.to_string(),
            "QEMU 8.1+: per-vCPU dirty-rate quota instead of auto-converge (needs dirty rings)",
        ),
        (
            "vcpu-dirty-limit",
            "MB/s",
            d.vcpu_dirty_limit.to_string(),
            "each vCPU's dirty-rate quota once dirty-limit's trigger fires",
        ),
        (
            "x-vcpu-dirty-limit-period",
            "ms",
            d.x_vcpu_dirty_limit_period.to_string(),
            "how often each vCPU's dirty rate is measured and its sleep adjusted",
        ),
    ];
    if args.json {
        print_json(&params_json(&d, &rows));
        return Ok(exit::OK);
    }
    outln!(
        "{:<28} {:<10} {:>10}  {:<14} meaning",
        "parameter",
        "unit",
        "default",
        "range"
    );
    for (name, unit, default, meaning) in rows {
        // The range column is the table `set` checks against.
        let range = MigrationParameters::range(name).map_or(String::new(), |r| r.to_string());
        outln!("{name:<28} {unit:<10} {default:>10}  {range:<14} {meaning}");
    }
    outln!();
    outln!("autoconv's own settings ([autoconv] in a scenario; not QEMU's):");
    let a = AutoconvSettings::default();
    outln!(
        "  time_limit_s   {:<5} stop a migration that has not converged and report `not-converged`",
        a.time_limit_ms / 1000
    );
    outln!(
        "  qemu_version   {:<5} reproduce this QEMU release where releases differ ({} .. {})",
        a.qemu_version.to_string(),
        QemuVersion::OLDEST,
        QemuVersion::CURRENT
    );
    outln!(
        "  policy         qemu  who picks the throttle: qemu (QEMU's staircase) or predictive (autoconv's own)"
    );
    outln!();
    outln!("Other names for the same parameters (QEMU 2.5's, virsh migrate's options):");
    for (alias, name) in vocabulary::ALIASES {
        outln!("  {alias:<26} = {name}");
    }
    outln!();
    outln!("QEMU settings autoconv does not model (refused as such, not as typos):");
    outln!(
        "  parameters:   {}",
        vocabulary::UNMODELLED_PARAMETERS.join(" ")
    );
    outln!(
        "  capabilities: {}",
        vocabulary::unmodelled_capabilities().join(" ")
    );
    Ok(exit::OK)
}

/// `params --json`: each parameter with its default as QEMU types it, the aliases, autoconv's
/// own settings and the QEMU names autoconv does not model.
fn params_json(d: &MigrationParameters, rows: &[(&str, &str, String, &str)]) -> serde_json::Value {
    use serde_json::json;
    let defaults = serde_json::to_value(d).unwrap_or_default();
    let params: Vec<serde_json::Value> = rows
        .iter()
        .map(|(name, unit, _, meaning)| {
            let range = MigrationParameters::range(name).map_or(String::new(), |r| r.to_string());
            let aliases: Vec<&str> = vocabulary::ALIASES
                .iter()
                .filter(|(_, n)| n == name)
                .map(|(a, _)| *a)
                .collect();
            json!({
                "name": name,
                "kind": if *unit == "capability" { "capability" } else { "parameter" },
                "unit": unit,
                "default": defaults[*name],
                "range": range,
                "meaning": meaning,
                "aliases": aliases,
            })
        })
        .collect();
    let a = AutoconvSettings::default();
    json!({
        "format_version": autoconv::report::json::FORMAT_VERSION,
        "parameters": params,
        "autoconv": {
            "time_limit_s": a.time_limit_ms as f64 / 1000.0,
            "qemu_version": a.qemu_version.to_string(),
            "qemu_versions": [QemuVersion::OLDEST.to_string(), QemuVersion::CURRENT.to_string()],
            "policy": a.policy.as_str(),
            "policies": autoconv::migration::Policy::NAMES,
        },
        "not_modelled": {
            "parameters": vocabulary::UNMODELLED_PARAMETERS,
            "capabilities": vocabulary::unmodelled_capabilities(),
        },
    })
}
