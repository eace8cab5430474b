//! `autoconv profile FILE.toml`: the throttle vs dirty-rate curve of a simulated guest (or,
//! with `--kvm`, a real one; with `--qmp`, a running QEMU VM's, fitted and modelled).

use super::ctrl_c::ctrl_c_token;
use super::exit;
use super::kvm_guest::KvmGuestArgs;
use super::out::{json_mode, out, outln, print_json};
use super::values::parse_positive_duration_ms;
use anyhow::Context;
use autoconv::migration::dirty_rate::DirtyRateOptions;
use autoconv::migration::{error_chain, MigrationParameters};
use autoconv::report::profile::{Profile, Verdict};
use autoconv::report::write_file_atomically;
use autoconv::scenario::Scenario;
use autoconv::session::kvm_profile;
use autoconv::sim::profile::{profile, ProfileOptions};
use autoconv::units::format_bytes;
use autoconv::units::parse_rate_bytes_s;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Measure a workload's dirty rate at each throttle level (the throttle vs dirty-rate curve).
///
/// Holds the vCPU throttle at each level with dirty logging on, as during a migration but with
/// nothing sent, and measures QEMU's dirty-pages-rate: distinct pages newly dirtied per harvest
/// period (--sync-interval). On a scenario (FILE.toml) the simulated guest is measured; with
/// --kvm IMAGE a real guest. The curve decides whether auto-converge can work: QEMU raises the
/// throttle while the bytes dirtied in a period exceed throttle-trigger-threshold (50%) of the
/// bytes sent, so the migration settles at the first level under that line, or never
/// converges if even 99% stays above it.
///
/// With --qmp SOCKET, a running QEMU VM is measured from outside, unthrottled and changing
/// nothing: QEMU's calc-dirty-rate at each --calc-times interval gives the distinct pages
/// dirtied in it; a fit of U(T) = N(1 - e^(-wT/N)) gives the working set N and write rate w;
/// the throttled rows are modelled (CPU-bound writes, slowed in proportion), and
/// --scenario-out writes a scenario of the VM that `autoconv sim` runs as is.
///
/// All write the same CSV (format in the README and src/report/profile.rs), which a scenario
/// region can use as its workload: pattern = "profile", profile = "FILE.csv".
///
/// Examples:
///   autoconv profile scenarios/heavy.toml -o heavy-profile.csv --plot heavy-profile.png
///   autoconv profile scenarios/dma.toml --levels 0,50,90,99 --hold 10s
///   autoconv profile --kvm rnd.img --mem 1GiB -o rnd-profile.csv
///   autoconv plot rnd-profile.csv --bandwidth 1GiB/s
///   autoconv profile --qmp /run/vm1.qmp -o vm1-profile.csv --scenario-out vm1.toml
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    override_usage = "autoconv profile FILE.toml [OPTIONS]\n       autoconv profile --kvm IMAGE [OPTIONS]\n       autoconv profile --qmp SOCKET [-o PROFILE.csv] [--scenario-out VM.toml] [OPTIONS]"
)]
pub struct ProfileArgs {
    /// Scenario file (TOML) of a simulated guest; or --kvm IMAGE for a real one.
    #[arg(
        value_name = "FILE.toml",
        required_unless_present_any = ["image", "qmp"],
        conflicts_with_all = ["image", "qmp"]
    )]
    pub scenario: Option<PathBuf>,
    /// A running QEMU VM's QMP socket (a unix socket the VM serves with -qmp
    /// unix:PATH,server=on,wait=off; give the VM a spare one if something else holds its QMP).
    #[arg(long, value_name = "SOCKET", conflicts_with = "image")]
    pub qmp: Option<PathBuf>,
    /// --qmp: calc-time values (s) to measure at, comma-separated; spread them around the
    /// time the guest takes to write its working set over.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,4,8",
        requires = "qmp"
    )]
    pub calc_times: Vec<u64>,
    /// --qmp: measurements at each calc-time (the fit uses them all).
    #[arg(long, default_value_t = 1, requires = "qmp")]
    pub repeats: u32,
    /// --qmp: calc-dirty-rate's mode for the curve: auto (dirty-bitmap, else page-sampling;
    /// plus one dirty-ring reading for per-vCPU rates when the VM has dirty rings),
    /// dirty-bitmap or page-sampling.
    #[arg(long, default_value = "auto", requires = "qmp")]
    pub mode: String,
    /// --qmp, page-sampling: pages sampled per GiB (QEMU's sample-pages; QEMU's default 512
    /// when not given). More samples, less noise.
    #[arg(long, requires = "qmp")]
    pub sample_pages: Option<u64>,
    /// --qmp: also write a scenario of the VM here (runs with `autoconv sim` as is).
    #[arg(long, value_name = "VM.toml", requires = "qmp")]
    pub scenario_out: Option<PathBuf>,
    /// A real guest under KVM (`--kvm IMAGE` and its machine options).
    #[command(flatten)]
    pub kvm: Option<KvmGuestArgs>,
    /// Simulated guests: seed for the model [default: the scenario's `seed`].
    #[arg(long, conflicts_with = "image")]
    pub seed: Option<u64>,
    /// Simulated guests: override a parameter or scenario value, as for `autoconv sim`.
    #[arg(long = "set", value_name = "NAME=VALUE", conflicts_with = "image")]
    pub sets: Vec<String>,
    /// Throttle levels (%), comma-separated, increasing.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,10,20,30,40,50,60,70,80,90,99"
    )]
    pub levels: Vec<u32>,
    /// Time measured at each level, after settling (e.g. 3s, 1500ms).
    #[arg(long, default_value = "3s", value_parser = parse_positive_duration_ms)]
    pub hold: u64,
    /// Dirty-log harvest period (QEMU computes its rate over periods of at least 1 s).
    #[arg(long, alias = "interval", default_value = "1s", value_parser = parse_positive_duration_ms)]
    pub sync_interval: u64,
    /// Write the profile CSV here.
    #[arg(short = 'o', long = "output", value_name = "OUT.csv")]
    pub output: Option<PathBuf>,
    /// Also draw the curve with auto-converge's threshold line (.png or .svg).
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// Migration bandwidth to judge the curve against [default: the scenario's max-bandwidth
    /// within its link; for --kvm, QEMU's default 128MiB/s].
    #[arg(long, value_name = "RATE")]
    pub bandwidth: Option<String>,
    /// Print the profile rows and the verdict as one JSON document on stdout; the text goes
    /// to stderr.
    #[arg(long)]
    pub json: bool,
}

/// `profile --json`: the rows as the CSV has them, and the verdict at the bandwidth used.
pub(super) fn profile_json(p: &Profile, bandwidth: f64, trigger: u32) -> serde_json::Value {
    let v = p.verdict(bandwidth, trigger);
    serde_json::json!({
        "format_version": autoconv::report::json::FORMAT_VERSION,
        "rows": p.rows,
        "verdict": {
            "bandwidth_bytes_s": v.bandwidth_bytes_s,
            "throttle-trigger-threshold": v.trigger_pct,
            "threshold_pages_s": v.threshold_pages_s,
            "bandwidth_pages_s": v.bandwidth_pages_s,
            "settles_at_pct": v.settles_at_pct,
            "converges": v.settles_at_pct.is_some(),
        },
    })
}

/// The bandwidth a migration of `s` gets: max-bandwidth within the link (0 = the link).
pub fn migration_bandwidth_bytes_s(s: &Scenario) -> u64 {
    match s.migration.params.max_bandwidth {
        0 => s.link.bandwidth_bytes_s,
        m => m.min(s.link.bandwidth_bytes_s),
    }
}

/// Lines explaining a verdict to a person.
pub fn verdict_text(p: &Profile, v: &Verdict) -> String {
    let page = p.rows[0].page_size_bytes.unwrap_or(4096) as f64;
    let rate = |pages: f64| format!("{}/s", format_bytes((pages * page).round() as u64));
    let mut out = format!(
        "at {} (throttle-trigger-threshold {}%), auto-converge raises the throttle while the dirty rate exceeds {:.0} pages/s ({})\n",
        rate(v.bandwidth_pages_s),
        v.trigger_pct,
        v.threshold_pages_s,
        rate(v.threshold_pages_s)
    );
    match v.settles_at_pct {
        Some(0) => out.push_str("  -> the workload is under the line unthrottled: it converges without throttling\n"),
        Some(pct) => out.push_str(&format!(
            "  -> first measured level under the line: {pct}% throttle ({:.0} pages/s); the throttle should stop rising there\n",
            p.rows.iter().find(|r| r.throttle_pct == pct).map_or(0.0, |r| r.dirty_pages_s)
        )),
        None => {
            let last = &p.rows[p.rows.len() - 1];
            out.push_str(&format!(
                "  -> even at {}% throttle the dirty rate is {:.0} pages/s, above the line: auto-converge cannot make this workload converge at this bandwidth\n",
                last.throttle_pct, last.dirty_pages_s
            ));
        }
    }
    out
}

fn check_levels(levels: &[u32]) -> anyhow::Result<()> {
    if levels.windows(2).any(|w| w[1] <= w[0]) {
        anyhow::bail!("--levels must be increasing percentages, e.g. 0,10,20,...,90,99");
    }
    if let Some(bad) = levels.iter().find(|&&l| l > 99) {
        anyhow::bail!("--levels: {bad} is not a throttle percentage (0 to 99)");
    }
    if levels.len() < 2 {
        anyhow::bail!("--levels: a profile needs at least two levels");
    }
    Ok(())
}

fn bandwidth_arg(text: &str) -> anyhow::Result<f64> {
    let bw = parse_rate_bytes_s(text).map_err(|e| anyhow::anyhow!("--bandwidth: {e}"))?;
    if bw == 0 {
        anyhow::bail!("--bandwidth must be above 0");
    }
    Ok(bw as f64)
}

pub fn run(args: ProfileArgs) -> anyhow::Result<u8> {
    check_levels(&args.levels)?;
    if args.json {
        json_mode();
    }
    let bandwidth = args.bandwidth.as_deref().map(bandwidth_arg).transpose()?;
    if let Some(socket) = args.qmp.clone() {
        return super::profile_qmp::run(&args, &socket, bandwidth);
    }
    if let Some(guest) = args.kvm.clone() {
        return run_kvm(args, guest, bandwidth);
    }
    let Some(path) = args.scenario.clone() else {
        anyhow::bail!("name a scenario (FILE.toml) or a real guest (--kvm IMAGE)");
    };
    let scenario = Scenario::load(&path, &args.sets)?;
    let seed = args.seed.unwrap_or(scenario.seed);
    let opts = ProfileOptions {
        levels_pct: args.levels.clone(),
        hold_ms: args.hold,
        interval_ms: args.sync_interval,
        source: format!("sim:{} seed={seed}", path.display()),
    };
    let p =
        profile(&scenario, seed, &opts).map_err(|e| anyhow::anyhow!(error_chain(e.as_ref())))?;
    outln!(
        "{} (seed {seed}): dirty rate per {} ms harvest, {} ms held at each level",
        scenario.name,
        args.sync_interval,
        args.hold
    );
    print_rows(&p);
    let bw = bandwidth.unwrap_or(migration_bandwidth_bytes_s(&scenario) as f64);
    let trigger = scenario.migration.params.throttle_trigger_threshold;
    out!("{}", verdict_text(&p, &p.verdict(bw, trigger)));
    if let Some(out) = &args.output {
        let mut bytes = Vec::new();
        let mut p = p.clone();
        p.set_verdict_settings(bw, trigger);
        p.write(&mut bytes)?;
        write_file_atomically(out, &bytes)?;
        outln!("wrote {}", out.display());
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{}: dirty rate vs throttle (simulated, seed {seed})",
            scenario.name
        );
        plot_to(&p, &title, bw, trigger, path)?;
    }
    if args.json {
        print_json(&profile_json(&p, bw, trigger));
    }
    Ok(exit::OK)
}

pub(super) fn print_rows(p: &Profile) {
    outln!(
        "  {:>8}  {:>14}  {:>12}  {:>16}  {:>10}",
        "throttle",
        "dirty pages/s",
        "dirty rate",
        "guest writes/s",
        "guest CPU"
    );
    for r in &p.rows {
        outln!(
            "  {:>7}%  {:>14.0}  {:>12}  {:>16.0}  {:>9.1}%",
            r.throttle_pct,
            r.dirty_pages_s,
            format!(
                "{}/s",
                format_bytes((r.dirty_pages_s * 4096.0).round() as u64)
            ),
            r.guest_write_pages_s.unwrap_or(0.0),
            r.guest_cpu_pct.unwrap_or(0.0)
        );
    }
}

pub(super) fn plot_to(
    p: &Profile,
    title: &str,
    bandwidth: f64,
    trigger: u32,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let bytes = autoconv::plot::profile_plot(p, title, bandwidth, trigger, path)
        .with_context(|| format!("plotting {}", path.display()))?;
    write_file_atomically(path, &bytes)?;
    outln!("wrote {}", path.display());
    Ok(())
}

/// `profile --kvm`: boot the guest, measure it with the core's dirty-rate routine, then the
/// same report as for a scenario.
fn run_kvm(args: ProfileArgs, guest: KvmGuestArgs, bandwidth: Option<f64>) -> anyhow::Result<u8> {
    guest.check_runnable()?;
    let image = guest.image()?.to_path_buf();
    let (mut machine, info) =
        kvm_profile::start_guest(&image, guest.machine(), guest.boot, guest.dma())?;
    if let Some(info) = &info {
        outln!("guest: {info}");
    }
    let (cancel, done) = ctrl_c_token();
    // Let the workload get going before the first level.
    cancel.wait_timeout(Duration::from_millis(1000));
    let opts = DirtyRateOptions {
        levels_pct: args.levels.clone(),
        hold_ms: args.hold,
        interval_ms: args.sync_interval,
    };
    let measured = kvm_profile::profile_machine(&mut machine, &opts, &cancel);
    done.store(true, Ordering::SeqCst);
    let measured = measured.map_err(|e| anyhow::anyhow!(error_chain(e.as_ref())))?;
    // The calibration holds on a host like this one: record which it was.
    let host = autoconv::report::host::HostInfo::this_host();
    let p = Profile::from_dirty_rates(&measured, &format!("kvm:{}", image.display()), Some(&host));
    outln!(
        "{}: dirty rate per {} ms harvest, {} ms held at each level",
        image.display(),
        args.sync_interval,
        args.hold
    );
    print_rows(&p);
    // QEMU's default max-bandwidth: what a migration of this guest would get unless told.
    let bw = bandwidth.unwrap_or(MigrationParameters::default().max_bandwidth as f64);
    let trigger = MigrationParameters::default().throttle_trigger_threshold;
    out!("{}", verdict_text(&p, &p.verdict(bw, trigger)));
    if let Some(out) = &args.output {
        let mut bytes = Vec::new();
        let mut p = p.clone();
        p.set_verdict_settings(bw, trigger);
        p.write(&mut bytes)?;
        write_file_atomically(out, &bytes)?;
        outln!("wrote {}", out.display());
    }
    if let Some(plot) = &args.plot {
        let title = format!("{}: dirty rate vs throttle (KVM)", image.display());
        plot_to(&p, &title, bw, trigger, plot)?;
    }
    if args.json {
        print_json(&profile_json(&p, bw, trigger));
    }
    Ok(exit::OK)
}
