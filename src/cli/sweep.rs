//! `autoconv sweep` and `autoconv merge`.

use super::exit;
use super::out::{errln, json_mode, out, outln, print_json};
use anyhow::Context;
use autoconv::report::{json, write_dir_atomically, write_file_atomically};
use autoconv::scenario::ScenarioSource;
use autoconv::sweep::eta::long_sweep_notice;
use autoconv::sweep::rank::{format_ranking, ranking_json, write_combos};
use autoconv::sweep::{
    merge_tables, summarize, Axis, Metric, Plan, RunsTable, Seeds, Shard, SweepSpec,
};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// Run a scenario over a grid of parameter values, in parallel, and rank the policies.
///
/// Every combination of the --grid axes runs once per seed. Any migration parameter (QEMU's
/// name) or scenario value (by path, as for `sim --set`) can be an axis; every value is checked
/// before anything runs, so an out-of-range value is refused with QEMU's wording.
///
/// Writes DIR/runs.csv (one row per run: scenario, --sets, grid values, seed, status,
/// total_time_ms, downtime_ms, transferred_bytes, dirty_sync_count, max_throttle_pct,
/// throttle_steps, guest_cpu_lost_s, ...), DIR/combos.csv (per grid point: mean, min, max and
/// sd of each figure over the seeds that converged) and DIR/sweep.json, then prints the best
/// grid points by --objective. Runs that did not converge are listed as such, never as a time.
/// Rows are in grid order (first axis slowest, then seeds) whatever the thread count.
///
/// Examples:
///   autoconv sweep scenarios/heavy.toml \
///       --grid cpu-throttle-initial=10:90:10 --grid cpu-throttle-increment=5:50:5
///   autoconv plot results/sweep-heavy       # heatmap of total time over the two axes
///   autoconv sweep scenarios/hotcold.toml --grid cpu-throttle-initial=10:60:10 \
///       --seeds 5 --objective guest_cpu_lost
///   autoconv sweep scenarios/heavy.toml \
///       --grid max-bandwidth=256MiB/s:2GiB/s:256MiB/s --grid auto-converge=on,off
///   autoconv sweep scenarios/big.toml --grid cpu-throttle-initial=1:99:1 \
///       --grid cpu-throttle-increment=1:99:1 --shard 2/4 --out results/big-2
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SweepArgs {
    /// Scenario file (TOML).
    #[arg(value_name = "FILE.toml")]
    pub scenario: PathBuf,
    /// A grid axis: NAME=START:END:STEP (END included when a step lands on it; sizes and rates
    /// may carry units: guest.memory=16GiB:64GiB:16GiB) or NAME=V1,V2,... (auto-converge=on,off).
    /// NAME is a QEMU parameter (cpu-throttle-initial) or a scenario path
    /// (region.heap.write_rate_pages_s). Repeatable; the first axis varies slowest.
    #[arg(long = "grid", value_name = "NAME=START:END:STEP")]
    pub grid: Vec<String>,
    /// Seeds per grid point: N (seeds 1 to N) or A..B (A to B, both included)
    /// [default: the scenario's seed].
    #[arg(long, value_name = "N|A..B")]
    pub seeds: Option<String>,
    /// Applied to every run before the grid values, as for `autoconv sim`. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Output directory [default: results/sweep-<scenario name>, or
    /// results/sweep-<name>-shard-K-of-N with --shard].
    #[arg(long, value_name = "DIR", conflicts_with = "no_out")]
    pub out: Option<PathBuf>,
    /// Write no files; only print the ranking.
    #[arg(long)]
    pub no_out: bool,
    /// What "best" means (lower is better): total_time, guest_cpu_lost, transferred, downtime
    /// (also dirty_syncs, max_throttle).
    #[arg(long, default_value = "total_time", value_parser = parse_metric)]
    pub objective: Metric,
    /// How many of the best grid points to print.
    #[arg(long, default_value_t = 10, value_name = "K")]
    pub top: usize,
    /// Run only the K-th of N slices (every N-th run, from run K-1), e.g. one per machine;
    /// join the slices' runs.csv with `autoconv merge`. `auto` takes K and N from a Slurm job
    /// array (SLURM_ARRAY_TASK_ID, _MIN, _MAX, _STEP, _COUNT); `auto/N` takes K from a
    /// Kubernetes Indexed Job (JOB_COMPLETION_INDEX, 0-based) or checks Slurm's N. deploy/ has
    /// an sbatch script and an Indexed Job manifest.
    #[arg(long, value_name = "K/N|auto|auto/N")]
    pub shard: Option<String>,
    /// Threads [default: one per core].
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Print the sweep (as sweep.json) and its whole ranking as one JSON document on stdout,
    /// instead of the table; other messages go to stderr.
    #[arg(long)]
    pub json: bool,
}

/// Join the runs.csv of a sharded sweep into the file the unsharded sweep writes.
///
/// Every run must be present exactly once and the shards must come from one sweep (same grid
/// axes, same run count); the result is byte-identical to the runs.csv of the same sweep run
/// without --shard. Prints the ranking of the merged sweep.
///
/// Examples:
///   autoconv merge results/big-1/runs.csv results/big-2/runs.csv -o results/big.csv
///   autoconv merge results/big-*/runs.csv -o big.csv --combos big-combos.csv \
///       --objective downtime
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct MergeArgs {
    /// The shards' runs.csv files, in any order.
    #[arg(value_name = "SHARD.csv", required = true)]
    pub shards: Vec<PathBuf>,
    /// Write the merged runs CSV here [default: print only the ranking].
    #[arg(short = 'o', long = "output", value_name = "OUT.csv")]
    pub output: Option<PathBuf>,
    /// Also write the per-grid-point summary (as a sweep's combos.csv) here.
    #[arg(long, value_name = "FILE.csv")]
    pub combos: Option<PathBuf>,
    /// What "best" means in the printed ranking.
    #[arg(long, default_value = "total_time", value_parser = parse_metric)]
    pub objective: Metric,
    /// How many of the best grid points to print.
    #[arg(long, default_value_t = 10, value_name = "K")]
    pub top: usize,
    /// Print the merged sweep (shards, runs, axes) and its whole ranking as one JSON document
    /// on stdout, instead of the table; other messages go to stderr.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn parse_metric(s: &str) -> Result<Metric, String> {
    Metric::parse(s)
}

/// A rayon pool of `jobs` threads (0 or None: one per core).
pub(super) fn pool(jobs: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(j) = jobs.filter(|&j| j > 0) {
        b = b.num_threads(j);
    }
    b.build().context("cannot start worker threads")
}

/// A progress bar on a terminal, nothing otherwise.
pub(super) fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len as u64);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} [{{elapsed}}, eta {{eta}}]");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        pb.set_style(style);
    }
    pb
}

pub fn run(args: SweepArgs) -> anyhow::Result<u8> {
    let t0 = Instant::now();
    if args.json {
        json_mode();
    }
    let axes = args
        .grid
        .iter()
        .map(|g| Axis::parse(g))
        .collect::<Result<Vec<_>, _>>()?;
    let seeds = match &args.seeds {
        Some(s) => Seeds::parse(s)?,
        None => Seeds::Scenario,
    };
    let resolved = args
        .shard
        .as_deref()
        .map(|text| Shard::resolve(text, |name| std::env::var(name).ok()))
        .transpose()?;
    let shard = resolved.as_ref().map(|r| r.shard);
    let source = ScenarioSource::load(&args.scenario)?;
    let pool = pool(args.jobs)?;
    let spec = SweepSpec {
        sets: args.sets.clone(),
        axes,
        seeds,
        shard,
    };
    let plan = pool.install(|| Plan::new(source, spec))?;
    let out_dir = (!args.no_out).then(|| {
        args.out.clone().unwrap_or_else(|| {
            let mut name = format!("sweep-{}", plan.scenario_name());
            if let Some(s) = shard {
                name.push_str(&format!("-shard-{}-of-{}", s.k, s.n));
            }
            PathBuf::from("results").join(name)
        })
    });
    // Refused before the runs, not after them.
    if let Some(dir) = &out_dir {
        autoconv::report::check_output_dir(dir)?;
    }
    let mine = plan.run_indices().len();
    let seeds_text = match plan.seeds() {
        Seeds::Scenario => "1 seed (the scenario's)".to_string(),
        Seeds::List(v) if v.len() == 1 => format!("seed {}", v[0]),
        Seeds::List(v) => format!("{} seeds", v.len()),
    };
    errln!(
        "sweep {}: {} grid point{} x {} = {} run{}{} on {} thread{}",
        plan.scenario_name(),
        plan.combos(),
        if plan.combos() == 1 { "" } else { "s" },
        seeds_text,
        plan.total_runs(),
        if plan.total_runs() == 1 { "" } else { "s" },
        match &resolved {
            Some(r) if r.source != "given" => {
                format!(" (shard {}: {mine} of them; {})", r.shard, r.source)
            }
            Some(r) => format!(" (shard {}: {mine} of them)", r.shard),
            None => String::new(),
        },
        pool.current_num_threads(),
        if pool.current_num_threads() == 1 {
            ""
        } else {
            "s"
        },
    );
    let pb = progress(mine, "runs");
    let done = AtomicUsize::new(0);
    let estimated = AtomicBool::new(false);
    let table = pool.install(|| {
        plan.run(&|| {
            pb.inc(1);
            let done = done.fetch_add(1, Ordering::Relaxed) + 1;
            if estimated.load(Ordering::Relaxed) {
                return;
            }
            let elapsed_s = t0.elapsed().as_secs_f64();
            if let Some(notice) = long_sweep_notice(done, mine, elapsed_s, shard.is_some()) {
                // Said once, by whichever worker gets here first.
                if !estimated.swap(true, Ordering::Relaxed) {
                    pb.suspend(|| eprintln!("sweep: {notice}"));
                }
            }
        })
    })?;
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();

    let combos = summarize(&table);
    if shard.is_some() {
        outln!(
            "shard {}: ranking of this slice only (merge the shards for the whole sweep)",
            shard.map(|s| s.to_string()).unwrap_or_default()
        );
    }
    if !args.json {
        out!(
            "{}",
            format_ranking(&table.axes, &combos, args.objective, args.top)
        );
    }
    if let Some(dir) = &out_dir {
        let mut runs_csv = Vec::new();
        table.write(&mut runs_csv)?;
        let mut files = vec![("runs.csv", runs_csv)];
        if shard.is_none() {
            let mut combos_csv = Vec::new();
            write_combos(&mut combos_csv, &table.axes, &combos)?;
            files.push(("combos.csv", combos_csv));
        }
        let meta = json::to_text(&sweep_json(
            &plan,
            &args,
            table.rows.len(),
            resolved.as_ref(),
        ));
        files.push(("sweep.json", meta.into_bytes()));
        let parts: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        write_dir_atomically(dir, &parts)
            .with_context(|| format!("writing results to {}", dir.display()))?;
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        outln!("wrote {}/{{{}}}", dir.display(), names.join(","));
    }
    outln!(
        "{} runs in {:.2} s ({:.0} runs/s)",
        table.rows.len(),
        secs,
        table.rows.len() as f64 / secs.max(1e-9)
    );
    if args.json {
        let mut doc = sweep_json(&plan, &args, table.rows.len(), resolved.as_ref());
        doc["ranking"] = ranking_json(&table.axes, &combos, args.objective);
        doc["elapsed_s"] = serde_json::Value::from(secs);
        print_json(&doc);
    }
    Ok(exit::OK)
}

/// sweep.json: what the sweep ran. Grid values are typed (numbers, booleans, bytes) beside
/// the text as given.
fn sweep_json(
    plan: &Plan,
    args: &SweepArgs,
    rows: usize,
    shard: Option<&autoconv::sweep::ResolvedShard>,
) -> serde_json::Value {
    let axes: Vec<serde_json::Value> = plan
        .axes()
        .iter()
        .map(|a| {
            let values: Vec<serde_json::Value> =
                a.values.iter().map(|v| json::typed_value(v)).collect();
            serde_json::json!({"name": a.name, "grid": a.arg, "values": values, "values_as_given": a.values})
        })
        .collect();
    let seeds = match plan.seeds() {
        Seeds::Scenario => serde_json::Value::from("scenario"),
        Seeds::List(v) => serde_json::Value::from(v.clone()),
    };
    serde_json::json!({
        "format_version": json::FORMAT_VERSION,
        "scenario": plan.scenario_path(),
        "scenario_name": plan.scenario_name(),
        "sets": args.sets,
        "axes": axes,
        "seeds": seeds,
        "shard": plan.shard().map(|s| s.to_string()),
        "shard_source": shard.map(|r| r.source.clone()),
        "grid_points": plan.combos(),
        "runs_total": plan.total_runs(),
        "runs_in_this_file": rows,
        "objective": args.objective.name(),
        "autoconv_version": env!("CARGO_PKG_VERSION"),
    })
}

pub fn merge(args: MergeArgs) -> anyhow::Result<u8> {
    if args.json {
        json_mode();
    }
    let parts = args
        .shards
        .iter()
        .map(|p| Ok((p.display().to_string(), RunsTable::read(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = merge_tables(&parts)?;
    let combos = summarize(&merged);
    if !args.json {
        out!(
            "{}",
            format_ranking(&merged.axes, &combos, args.objective, args.top)
        );
    }
    if let Some(out) = &args.output {
        let mut bytes = Vec::new();
        merged.write(&mut bytes)?;
        write_file_atomically(out, &bytes)?;
        outln!(
            "wrote {} ({} runs from {} files)",
            out.display(),
            merged.rows.len(),
            parts.len()
        );
    }
    if let Some(path) = &args.combos {
        let mut bytes = Vec::new();
        write_combos(&mut bytes, &merged.axes, &combos)?;
        write_file_atomically(path, &bytes)?;
        outln!("wrote {}", path.display());
    }
    if args.json {
        let shards: Vec<&str> = parts.iter().map(|(name, _)| name.as_str()).collect();
        print_json(&serde_json::json!({
            "format_version": json::FORMAT_VERSION,
            "shards": shards,
            "runs": merged.rows.len(),
            "axes": merged.axes,
            "objective": args.objective.name(),
            "ranking": ranking_json(&merged.axes, &combos, args.objective),
            "autoconv_version": env!("CARGO_PKG_VERSION"),
        }));
    }
    Ok(exit::OK)
}
