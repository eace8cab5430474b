//! `autoconv advise`: the policy to set, as settings to paste.

use super::exit;
use super::out::{out, outln};
use super::values::parse_deadline_ms;
use anyhow::{bail, Context};
use autoconv::advise::apply::{forms, ApplyForms};
use autoconv::advise::{advise, Advice, Constraints, Point, Request, Space};
use autoconv::report::write_file_atomically;
use autoconv::scenario::{Scenario, ScenarioSource};
use autoconv::sweep::Metric;
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Version of the JSON `advise --json` prints.
pub const ADVISE_FORMAT_VERSION: u32 = 1;

/// Which auto-converge policy to set for a workload, and how to set it.
///
/// Evaluates every policy of cpu-throttle-initial 1-99 x cpu-throttle-increment 1-99 x
/// max-cpu-throttle (50, 60, 70, 80, 90, 99 and --max-throttle) x throttle-trigger-threshold
/// (25, 50, 75) x cpu-throttle-tailslow (off, on) on the workload, on all cores. Policies that
/// provably set the same throttle percentages share one simulation, so the whole space takes
/// about a second. Prints the Pareto front of total time, guest CPU lost and max throttle
/// (policies giving the same result on one line), the best policy within the limits beside
/// QEMU's defaults, and the settings as QMP commands, HMP lines and a virsh command line.
/// When nothing converges within the limits, says what would: a downtime-limit, a
/// max-bandwidth, a faster link, or that the workload's writes are device DMA that no
/// throttle slows.
///
/// SOURCE is a scenario (FILE.toml), a profile CSV from `autoconv profile` (with --bandwidth;
/// --mem overrides the size the CSV records), or a run directory written by `autoconv sim
/// --out` (its summary.json holds the workload and parameters).
///
/// Exit status: 0 = a policy is recommended; 1 = no policy converges within the limits.
///
/// Examples:
///   autoconv advise scenarios/heavy.toml --max-throttle 70
///   autoconv advise scenarios/heavy.toml --deadline 40s --objective guest_cpu_lost
///   autoconv advise scenarios/dma.toml
///   autoconv advise guest-profile.csv --bandwidth 10Gbit/s --max-throttle 50 --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct AdviseArgs {
    /// FILE.toml, PROFILE.csv or RUN_DIR.
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// Highest throttle the guest may bear, % (1-99).
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u32).range(1..=99))]
    pub max_throttle: Option<u32>,
    /// Latest the migration may complete: 90s, 2m, 1m30s, 1500ms (a unit is required).
    #[arg(long, value_name = "DURATION", value_parser = parse_deadline_ms)]
    pub deadline: Option<u64>,
    /// Most vCPU-seconds the guest may lose to throttling.
    #[arg(long, value_name = "SECONDS")]
    pub max_cpu_lost: Option<f64>,
    /// What "best" means within the limits (lower is better): total_time, guest_cpu_lost,
    /// max_throttle, transferred, downtime.
    #[arg(long, default_value = "total_time", value_parser = super::sweep::parse_metric)]
    pub objective: Metric,
    /// Seeds each result of the front is re-run with to show how robust it is (seeds 1 to N).
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub seeds: u64,
    /// Applied to the scenario first, as for `autoconv sim`. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Profile CSV source: the guest's memory size [default: the size the CSV records].
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Profile CSV source: the migration link's bandwidth, e.g. 10Gbit/s (also max-bandwidth).
    #[arg(long, value_name = "RATE")]
    pub bandwidth: Option<String>,
    /// The libvirt domain name the virsh lines use.
    #[arg(long, default_value = "DOMAIN")]
    pub domain: String,
    /// How many points of the front to print [all with --json].
    #[arg(long, default_value_t = 12, value_name = "K")]
    pub top: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also draw the front (total time vs guest CPU lost, by max throttle) to FILE.png/.svg.
    #[arg(short = 'o', long = "output", value_name = "FILE.png")]
    pub output: Option<PathBuf>,
    /// Threads [default: one per core].
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// A scenario for a profile CSV: the whole memory written as the profile says.
fn scenario_from_profile(path: &Path, args: &AdviseArgs) -> anyhow::Result<Scenario> {
    let Some(bandwidth) = &args.bandwidth else {
        bail!(
            "{}: a profile CSV does not record the link: give --bandwidth RATE (e.g. 10Gbit/s)",
            path.display()
        );
    };
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let first = rdr
        .records()
        .next()
        .transpose()?
        .with_context(|| format!("{}: no rows", path.display()))?;
    let recorded = |name: &str| col(name).and_then(|i| first.get(i)).map(str::to_string);
    let memory = match (&args.mem, recorded("memory_bytes")) {
        (Some(m), _) => m.clone(),
        (None, Some(m)) => m,
        (None, None) => bail!(
            "{}: the CSV does not record the guest's memory: give --mem SIZE",
            path.display()
        ),
    };
    let vcpus = recorded("vcpus").unwrap_or_else(|| "1".into());
    let abs =
        std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "profile".into());
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let text = format!(
        "name = {name}\n[guest]\nmemory = {memory}\nvcpus = {vcpus}\n\
         [[region]]\nname = \"measured\"\nsize = {memory}\npattern = \"profile\"\nprofile = {profile}\n\
         [link]\nbandwidth = {bw}\n[migration]\nauto-converge = true\nmax-bandwidth = {bw}\n",
        name = q(&stem),
        memory = q(&memory),
        profile = q(&abs.display().to_string()),
        bw = q(bandwidth),
    );
    let source = ScenarioSource::parse(&path.display().to_string(), &stem, &text)?;
    Ok(source.build(&args.sets)?)
}

/// A scenario for a run directory written by `autoconv sim --out`: its summary records the
/// scenario file's workload and the parameters it ran with.
fn scenario_from_run(dir: &Path, args: &AdviseArgs) -> anyhow::Result<Scenario> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let summary: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let Some(file) = summary["scenario_file"].as_str() else {
        bail!(
            "{}: the run does not name its scenario file (a real guest's run, or an older autoconv): give the scenario, or a profile CSV from `autoconv profile --kvm`",
            path.display()
        );
    };
    let mut sets: Vec<String> = summary["sets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    sets.extend(autoconv::check::compare::overrides_from_summary(&summary));
    sets.extend(args.sets.iter().cloned());
    Scenario::load(Path::new(file), &sets)
        .with_context(|| format!("the scenario {} names", path.display()))
}

fn load_source(args: &AdviseArgs) -> anyhow::Result<Scenario> {
    let p = &args.source;
    if p.is_dir() {
        return scenario_from_run(p, args);
    }
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("csv") {
        return scenario_from_profile(p, args);
    }
    if args.mem.is_some() || args.bandwidth.is_some() {
        bail!("--mem and --bandwidth describe a profile CSV's guest; a scenario sets them itself (use --set guest.memory=SIZE or --set link.bandwidth=RATE)");
    }
    Ok(Scenario::load(p, &args.sets)?)
}

pub fn run(args: AdviseArgs) -> anyhow::Result<u8> {
    let t0 = Instant::now();
    let scenario = load_source(&args)?;
    if let Some(out) = &args.output {
        autoconv::plot::Format::from_path(out)?;
    }
    let pool = super::sweep::pool(args.jobs)?;
    let constraints = Constraints {
        max_throttle_pct: args.max_throttle,
        deadline_ms: args.deadline,
        max_cpu_lost_s: args.max_cpu_lost,
    };
    let req = Request {
        seed: scenario.seed,
        robustness_seeds: (1..=args.seeds).collect(),
        space: Space::standard(args.max_throttle),
        constraints,
        objective: args.objective,
        scenario,
    };
    let advice = pool.install(|| advise(&req));
    let secs = t0.elapsed().as_secs_f64();
    let threads = pool.current_num_threads();
    let apply = advice.recommended.as_ref().map(|r| {
        forms(
            &r.group.representative,
            &req.scenario.migration.params,
            &args.domain,
        )
    });
    if let Some(out) = &args.output {
        let png = autoconv::plot::advise::draw_front(out, &req.scenario.name, &advice)?;
        write_file_atomically(out, &png)?;
    }
    if args.json {
        let v = advice_json(&req, &advice, apply.as_ref(), secs, threads);
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        out!(
            "{}",
            format_advice(&req, &advice, apply.as_ref(), secs, threads, args.top)
        );
        if let Some(out) = &args.output {
            outln!("wrote {}", out.display());
        }
    }
    Ok(if advice.recommended.is_some() {
        exit::OK
    } else {
        exit::NOT_COMPLETED
    })
}

fn describe_constraints(c: &Constraints) -> String {
    let mut parts = Vec::new();
    if let Some(m) = c.max_throttle_pct {
        parts.push(format!("max throttle <= {m} %"));
    }
    if let Some(d) = c.deadline_ms {
        parts.push(format!("total time <= {:.1} s", d as f64 / 1000.0));
    }
    if let Some(l) = c.max_cpu_lost_s {
        parts.push(format!("guest CPU lost <= {l} vCPU-s"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn figures_text(r: &autoconv::sweep::RunMetrics) -> String {
    match r.total_time_ms {
        Some(t) => format!(
            "{:.1} s, guest CPU lost {:.1} vCPU-s, max throttle {} %",
            t as f64 / 1000.0,
            r.guest_cpu_lost_s,
            r.max_throttle_pct
        ),
        None => format!(
            "{} after {:.0} s, throttle reached {} %",
            r.status,
            r.elapsed_ms as f64 / 1000.0,
            r.max_throttle_pct
        ),
    }
}

fn robustness_text(p: &Point) -> String {
    let r = &p.robustness;
    let times = r.total_time_ms.map_or(String::new(), |(a, b)| {
        format!(", {:.1}-{:.1} s", a as f64 / 1000.0, b as f64 / 1000.0)
    });
    format!("{}/{} seeds converge{times}", r.converged, r.seeds)
}

fn same_text(p: &Point) -> String {
    let g = &p.group;
    if g.same_result.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = g
        .same_result
        .iter()
        .map(|(dim, values)| format!("any {dim} of {values}"))
        .collect();
    format!("{} give the same result", parts.join("; "))
}

fn pct_change(new: f64, old: f64) -> String {
    if old == 0.0 {
        return String::new();
    }
    format!(" ({:+.0} %)", (new - old) / old * 100.0)
}

/// The text report.
pub fn format_advice(
    req: &Request,
    a: &Advice,
    apply: Option<&ApplyForms>,
    secs: f64,
    threads: usize,
    top: usize,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let sp = &req.space;
    let cov = &a.coverage;
    let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let _ = writeln!(
        s,
        "advise {}: {} policies evaluated, {} distinct runs simulated (policies that provably set the same throttle steps share one), {:.2} s on {} thread{}",
        req.scenario.name,
        a.policies_evaluated,
        a.runs_simulated,
        secs,
        threads,
        if threads == 1 { "" } else { "s" },
    );
    let _ = writeln!(
        s,
        "  all {} of cpu-throttle-initial {} x cpu-throttle-increment {} x max-cpu-throttle {} (>= initial), throttle-trigger-threshold 50, tailslow off;",
        cov.exhaustive,
        autoconv::advise::front::ranges(&sp.initial_pct),
        autoconv::advise::front::ranges(&sp.increment_pct),
        list(&sp.max_throttle_pct),
    );
    let _ = writeln!(
        s,
        "  {} more with throttle-trigger-threshold {} x tailslow off,on around the best results; {} not evaluated",
        cov.refined,
        list(&sp.trigger_threshold_pct),
        cov.not_evaluated,
    );
    let others = autoconv::advise::other_policies(
        &req.scenario,
        &sp.max_throttle_pct,
        req.constraints.max_throttle_pct.is_some(),
    );
    let quotas: Vec<String> = others
        .iter()
        .filter_map(|p| match p {
            autoconv::advise::Policy::DirtyLimit { quota_mb_s } => Some(quota_mb_s.to_string()),
            _ => None,
        })
        .collect();
    let _ = writeln!(
        s,
        "  beside them: autoconv.policy=predictive under each max-cpu-throttle; {}",
        if quotas.is_empty() {
            format!(
                "no dirty-limit ({})",
                autoconv::advise::dirty_limit_left_out(
                    &req.scenario,
                    req.constraints.max_throttle_pct.is_some()
                )
                .unwrap_or_default()
            )
        } else {
            format!("dirty-limit at vcpu-dirty-limit {} MB/s", quotas.join(","))
        }
    );
    if !cov.hopeless_caps.is_empty() {
        let mut caps: Vec<u32> = cov.hopeless_caps.iter().map(|(_, m)| *m).collect();
        caps.sort_unstable();
        caps.dedup();
        let _ = writeln!(
            s,
            "  left out: max-cpu-throttle {} (with some trigger thresholds) -- throttling at the cap from the first step does not converge, so nothing below it does",
            list(&caps)
        );
    }
    let _ = writeln!(
        s,
        "  {} converge, with {} distinct results; limits: {}; objective: {}",
        a.policies_converged,
        a.distinct_results,
        describe_constraints(&req.constraints),
        req.objective.name()
    );
    if !a.front.is_empty() {
        let _ = writeln!(
            s,
            "\nPareto front of total time, guest CPU lost and max throttle ({} result{}; robustness over seeds 1-{}):",
            a.front.len(),
            if a.front.len() == 1 { "" } else { "s" },
            req.robustness_seeds.len()
        );
        let _ = writeln!(
            s,
            "  {:>10}  {:>15}  {:>12}  {:>6}  {:<26}  policy",
            "total time", "guest CPU lost", "max throttle", "limits", "across seeds"
        );
        for p in a.front.iter().take(top) {
            let r = &p.group.run;
            let _ = writeln!(
                s,
                "  {:>10}  {:>15}  {:>12}  {:>6}  {:<26}  {} ({} polic{})",
                Metric::TotalTime.format(r.total_time_ms.unwrap_or(0) as f64),
                Metric::GuestCpuLost.format(r.guest_cpu_lost_s),
                format!("{} %", r.max_throttle_pct),
                if p.allowed { "within" } else { "over" },
                robustness_text(p),
                p.group.representative.describe(),
                p.group.policies,
                if p.group.policies == 1 { "y" } else { "ies" }
            );
            let same = same_text(p);
            if !same.is_empty() {
                let _ = writeln!(s, "  {:>70}{same}", "");
            }
        }
        if a.front.len() > top {
            let _ = writeln!(
                s,
                "  ... {} more (--top K, or --json for all)",
                a.front.len() - top
            );
        }
    }
    let d = &a.defaults;
    let _ = writeln!(
        s,
        "\nQEMU's defaults ({}): {}; {}",
        d.group.representative.describe(),
        figures_text(&d.group.run),
        robustness_text(d)
    );
    match (&a.recommended, apply) {
        (Some(r), Some(f)) => {
            let run = &r.group.run;
            let _ = writeln!(
                s,
                "Recommended (limits: {}; best {}): {}",
                describe_constraints(&req.constraints),
                req.objective.name(),
                r.group.representative.describe()
            );
            let _ = writeln!(s, "  {}; {}", figures_text(run), robustness_text(r));
            let same = same_text(r);
            if !same.is_empty() {
                let _ = writeln!(s, "  {same}");
            }
            match (run.total_time_ms, d.group.run.total_time_ms) {
                (Some(t), Some(dt)) => {
                    let _ = writeln!(
                        s,
                        "  vs QEMU's defaults: total time {:.1} s -> {:.1} s{}, guest CPU lost {:.1} -> {:.1} vCPU-s{}, max throttle {} % -> {} %",
                        dt as f64 / 1000.0,
                        t as f64 / 1000.0,
                        pct_change(t as f64, dt as f64),
                        d.group.run.guest_cpu_lost_s,
                        run.guest_cpu_lost_s,
                        pct_change(run.guest_cpu_lost_s, d.group.run.guest_cpu_lost_s),
                        d.group.run.max_throttle_pct,
                        run.max_throttle_pct
                    );
                }
                (Some(_), None) => {
                    let _ = writeln!(s, "  QEMU's defaults do not converge; this does");
                }
                _ => {}
            }
            if let Some(need) = r.group.representative.prerequisite() {
                let _ = writeln!(s, "\nNeeds {need}.");
            }
            if let Some(cmd) = r.group.representative.steering() {
                let _ = writeln!(
                    s,
                    "\nThis is autoconv's policy, not QEMU's: QEMU runs it only with autoconv steering its auto-converge live:\n  {cmd}\nwith these settings first:"
                );
            }
            let _ = writeln!(s, "\nApply with QMP:");
            for c in &f.qmp {
                let _ = writeln!(s, "  {c}");
            }
            let _ = writeln!(s, "Apply with HMP (QEMU monitor):");
            for l in &f.hmp {
                let _ = writeln!(s, "  {l}");
            }
            let _ = writeln!(s, "Apply with virsh:");
            for l in &f.virsh {
                let _ = writeln!(s, "  {l}");
            }
        }
        _ => {
            let _ = writeln!(
                s,
                "No policy converges within the limits ({}).",
                describe_constraints(&req.constraints)
            );
            if let Some(rescue) = &a.rescue {
                s.push_str(&format_rescue(rescue));
            }
        }
    }
    s
}

fn rate(bytes_s: f64) -> String {
    format!("{:.0} MiB/s", bytes_s / (1u64 << 20) as f64)
}

fn format_rescue(r: &autoconv::advise::Rescue) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if r.throttle_cannot_help() {
        let _ = writeln!(
            s,
            "  Throttling cannot help: even a 99 % throttle from the start does not converge ({}).",
            figures_text(&r.at_99)
        );
        if r.dma_write_bytes_s > 0.0 {
            let _ = writeln!(
                s,
                "  The workload is DMA-bound: its devices write {} that no CPU throttle slows, against {} the migration may send.",
                rate(r.dma_write_bytes_s),
                rate(r.bandwidth_bytes_s as f64)
            );
        }
    } else {
        let _ = writeln!(
            s,
            "  The strongest throttle allowed ({}): {}.",
            r.policy.describe(),
            figures_text(&r.run)
        );
    }
    let _ = writeln!(s, "What would converge (with {}):", r.policy.describe());
    let mut any = false;
    if let Some((ms, run)) = &r.downtime_limit_ms {
        any = true;
        let _ = writeln!(
            s,
            "  downtime-limit={ms} (ms; QEMU's default is 300): {}, downtime {} ms",
            figures_text(run),
            run.downtime_ms.unwrap_or(0)
        );
    }
    if let Some((bw, run)) = &r.max_bandwidth {
        any = true;
        let _ = writeln!(
            s,
            "  max-bandwidth={bw} ({}): {}",
            rate(*bw as f64),
            figures_text(run)
        );
    }
    if let Some((bw, run)) = &r.link_bandwidth {
        any = true;
        let _ = writeln!(
            s,
            "  a {:.1} Gbit/s link (max-bandwidth=0, unlimited): {}",
            *bw as f64 * 8.0 / 1e9,
            figures_text(run)
        );
    }
    if !any {
        let _ = writeln!(
            s,
            "  nothing autoconv tried: no downtime-limit up to 2000 s, no max-bandwidth up to the link, no link up to 16 times faster"
        );
    }
    s
}

fn run_json(r: &autoconv::sweep::RunMetrics) -> Value {
    json!({
        "status": r.status,
        "converged": r.converged(),
        "total_time_ms": r.total_time_ms,
        "elapsed_ms": r.elapsed_ms,
        "downtime_ms": r.downtime_ms,
        "transferred_bytes": r.transferred_bytes,
        "dirty_sync_count": r.dirty_sync_count,
        "max_throttle_pct": r.max_throttle_pct,
        "throttle_steps": r.throttle_steps,
        "guest_cpu_lost_s": r.guest_cpu_lost_s,
        "query-migrate": r.query_migrate(),
    })
}

fn policy_json(p: &autoconv::advise::Policy) -> Value {
    let params: serde_json::Map<String, Value> = p
        .parameters()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut v = json!({"capabilities": p.capabilities(), "parameters": params});
    if let Some(cmd) = p.steering() {
        v["steering"] = json!(cmd);
    }
    if let Some(need) = p.prerequisite() {
        v["prerequisite"] = json!(need);
    }
    if !p.capabilities_off().is_empty() {
        v["capabilities_off"] = json!(p.capabilities_off());
    }
    v
}

fn point_json(p: &Point) -> Value {
    let same: serde_json::Map<String, Value> = p
        .group
        .same_result
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(v.clone())))
        .collect();
    let r = &p.robustness;
    json!({
        "policy": policy_json(&p.group.representative),
        "policies_with_this_result": p.group.policies,
        "same_result": same,
        "run": run_json(&p.group.run),
        "within_limits": p.allowed,
        "robustness": {
            "seeds": r.seeds,
            "converged": r.converged,
            "within_limits": r.within_constraints,
            "total_time_ms_min": r.total_time_ms.map(|t| t.0),
            "total_time_ms_max": r.total_time_ms.map(|t| t.1),
        },
    })
}

fn advice_json(
    req: &Request,
    a: &Advice,
    apply: Option<&ApplyForms>,
    secs: f64,
    threads: usize,
) -> Value {
    let c = &req.constraints;
    let rescue = a.rescue.as_ref().map(|r| {
        let found = |x: &Option<(u64, autoconv::sweep::RunMetrics)>| {
            x.as_ref()
                .map(|(v, run)| json!({"value": v, "run": run_json(run)}))
        };
        json!({
            "policy": policy_json(&r.policy),
            "run": run_json(&r.run),
            "throttle_cannot_help": r.throttle_cannot_help(),
            "run_at_99_pct": run_json(&r.at_99),
            "dma_write_bytes_s": r.dma_write_bytes_s,
            "bandwidth_bytes_s": r.bandwidth_bytes_s,
            "downtime_limit_ms": found(&r.downtime_limit_ms),
            "max_bandwidth_bytes_s": found(&r.max_bandwidth),
            "link_bandwidth_bytes_s": found(&r.link_bandwidth),
        })
    });
    json!({
        "format_version": ADVISE_FORMAT_VERSION,
        "scenario": req.scenario.name,
        "seed": req.seed,
        "objective": req.objective.name(),
        "limits": {
            "max_throttle_pct": c.max_throttle_pct,
            "deadline_ms": c.deadline_ms,
            "max_cpu_lost_s": c.max_cpu_lost_s,
        },
        "space": {
            "cpu-throttle-initial": req.space.initial_pct,
            "cpu-throttle-increment": req.space.increment_pct,
            "max-cpu-throttle": req.space.max_throttle_pct,
            "throttle-trigger-threshold": req.space.trigger_threshold_pct,
            "cpu-throttle-tailslow": req.space.tailslow,
        },
        "policies_evaluated": a.policies_evaluated,
        "coverage": {
            "exhaustive": a.coverage.exhaustive,
            "refined": a.coverage.refined,
            "not_evaluated": a.coverage.not_evaluated,
            "other_mechanisms": a.coverage.other_mechanisms,
            "hopeless_caps": a.coverage.hopeless_caps.iter().map(|(t, m)| json!({"throttle-trigger-threshold": t, "max-cpu-throttle": m})).collect::<Vec<_>>(),
        },
        "runs_simulated": a.runs_simulated,
        "policies_converged": a.policies_converged,
        "distinct_results": a.distinct_results,
        "elapsed_s": secs,
        "threads": threads,
        "front": a.front.iter().map(point_json).collect::<Vec<_>>(),
        "qemu_defaults": point_json(&a.defaults),
        "recommended": a.recommended.as_ref().map(point_json),
        "apply": apply.map(|f| json!({"qmp": f.qmp, "hmp": f.hmp, "virsh": f.virsh})),
        "rescue": rescue,
    })
}
