//! `autoconv check`: re-run baselines and fail on regressions.

use super::exit;
use super::out::{out, outln, print_json};
use super::sweep::{parse_metric, pool, progress};
use anyhow::Context;
use autoconv::check::{check, format_report};
use autoconv::check::{CheckReport, Movement};
use autoconv::report::{json, write_file_atomically};
use autoconv::sweep::{Metric, RunsTable};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Re-run the runs a baseline CSV names and fail if any got worse.
///
/// A baseline is the runs.csv of an `autoconv sweep` (or `merge`): each row carries the
/// scenario file, the --set arguments, the grid values and the seed, so it can be re-run
/// exactly. Scenario paths are as recorded, relative to the working directory: run check from
/// where the sweep ran (the repository root for results/baselines/).
///
/// A run regresses when --metric got worse by more than --tolerance percent, when a run that
/// converged no longer does, or when a run that did not converge now ends in another way
/// (e.g. failed). Simulated runs are deterministic, so the default tolerance is 0.
///
/// Exit codes: 0 = nothing regressed; 1 = something regressed (a table says what moved);
/// 2 = the baseline could not be read or re-run.
///
/// Examples:
///   autoconv check results/baselines/*.csv
///   autoconv check results/baselines/heavy.csv --metric total_time --metric downtime \
///       --tolerance 2
///   autoconv check results/baselines/heavy.csv --save results/baselines/heavy.csv
///       (refresh a baseline after reviewing the change)
///
/// To make a baseline:
///   autoconv sweep scenarios/heavy.toml --grid cpu-throttle-initial=10:50:20 --out /tmp/h
///   cp /tmp/h/runs.csv results/baselines/heavy.csv
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CheckArgs {
    /// Baseline runs CSV(s).
    #[arg(value_name = "BASELINE.csv", required = true)]
    pub baselines: Vec<PathBuf>,
    /// Allowed worsening of each metric, in percent of the baseline value.
    #[arg(long, default_value_t = 0.0, value_name = "PCT")]
    pub tolerance: f64,
    /// Metric to compare (lower is better): total_time, downtime, transferred,
    /// guest_cpu_lost, dirty_syncs, max_throttle. Repeatable [default: total_time].
    #[arg(long = "metric", value_parser = parse_metric, value_name = "METRIC")]
    pub metrics: Vec<Metric>,
    /// How many movements for the better to list (regressions are always all listed).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub show: usize,
    /// Write the re-run results here as a new baseline (same format; one baseline only).
    #[arg(long, value_name = "FILE.csv")]
    pub save: Option<PathBuf>,
    /// Threads [default: one per core].
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Print the result as one JSON document on stdout (every row that moved, with its
    /// values as numbers), instead of the tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    if args.save.is_some() && args.baselines.len() != 1 {
        anyhow::bail!("--save needs exactly one baseline");
    }
    let metrics = if args.metrics.is_empty() {
        vec![Metric::TotalTime]
    } else {
        args.metrics.clone()
    };
    let tables = args
        .baselines
        .iter()
        .map(|p| Ok((p, RunsTable::read(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(save) = &args.save {
        autoconv::report::check_output_file(save)?;
    }
    let pool = pool(args.jobs)?;
    let total: usize = tables.iter().map(|(_, t)| t.rows.len()).sum();
    let pb = progress(total, "runs re-run");
    let mut regressed = 0;
    let mut outputs = Vec::new();
    let mut docs = Vec::new();
    for (path, table) in &tables {
        // Scenario paths in a baseline are relative to where the sweep ran: name the baseline,
        // or an error from another directory says nothing of which file it came from.
        let report = pool
            .install(|| check(table, &metrics, args.tolerance, &|| pb.inc(1)))
            .with_context(|| format!("checking {}", path.display()))?;
        regressed += report.regressions();
        docs.push(report_json(&path.display().to_string(), &report));
        outputs.push(format_report(
            &path.display().to_string(),
            &report,
            args.show,
        ));
        if let Some(save) = &args.save {
            let mut bytes = Vec::new();
            report.as_table().write(&mut bytes)?;
            write_file_atomically(save, &bytes)?;
            outputs.push(format!("wrote {}\n", save.display()));
        }
    }
    pb.finish_and_clear();
    if args.json {
        let doc = json!({
            "format_version": json::FORMAT_VERSION,
            "ok": regressed == 0,
            "regressions": regressed,
            "metrics": metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "tolerance_pct": args.tolerance,
            "baselines": docs,
            "saved": args.save.as_ref().map(|p| p.display().to_string()),
        });
        print_json(&doc);
        return Ok(if regressed > 0 {
            exit::NOT_COMPLETED
        } else {
            exit::OK
        });
    }
    for o in outputs {
        out!("{o}");
    }
    if regressed > 0 {
        outln!("FAILED: {regressed} run(s) regressed");
        Ok(exit::NOT_COMPLETED)
    } else {
        outln!("ok: no regression");
        Ok(exit::OK)
    }
}

/// One baseline's check: counts, and every row that moved (unchanged rows are counted only).
fn report_json(name: &str, r: &CheckReport) -> Value {
    let moved: Vec<Value> = r
        .rows
        .iter()
        .filter(|row| !row.moves.is_empty())
        .map(|row| {
            let values: serde_json::Map<String, Value> = r
                .axes
                .iter()
                .zip(&row.baseline.axis_values)
                .map(|(a, v)| (a.clone(), json::typed_value(v)))
                .collect();
            let moves: Vec<Value> = row
                .moves
                .iter()
                .map(|m| match m {
                    Movement::Status { was, now, worse } => {
                        json!({"what": "status", "was": was, "now": now, "worse": worse})
                    }
                    Movement::Metric {
                        metric,
                        was,
                        now,
                        worse,
                    } => json!({
                        "what": metric.column(),
                        "was": was,
                        "now": now,
                        "worse": worse,
                    }),
                })
                .collect();
            json!({
                "run_index": row.baseline.run_index,
                "scenario": row.baseline.scenario,
                "sets": row.baseline.sets,
                "values": values,
                "seed": row.baseline.seed,
                "regressed": row.regressed(),
                "moves": moves,
                "now": row.now.to_json(),
            })
        })
        .collect();
    json!({
        "baseline": name,
        "runs": r.rows.len(),
        "regressions": r.regressions(),
        "improvements": r.improvements(),
        "unchanged": r.rows.iter().filter(|row| row.moves.is_empty()).count(),
        "moved": moved,
    })
}
