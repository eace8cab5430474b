//! `autoconv run --kvm IMAGE`: run a real guest, live-migrate it, report and write the run.

use super::out::{errln, outln};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::ctrl_c::ctrl_c_token;
use super::kvm_guest::{counters_text, KvmGuestArgs};
use super::values::parse_duration_ms;
use autoconv::migration::{FailureKind, MigrationConfig};
use autoconv::report::Summary;
use autoconv::session::kvm::{self as session, Destination, RunOptions, RunReport};
use autoconv::transport;

/// `autoconv run --kvm IMAGE` or `autoconv run --qemu IMAGE`: run a real guest and
/// live-migrate it.
#[derive(Args, Debug, Clone)]
#[command(
    after_help = RUN_HELP,
    group(clap::ArgGroup::new("backend").required(true).args(["image", "qemu"])),
    override_usage = "autoconv run --kvm IMAGE [OPTIONS]\n       autoconv run --qemu IMAGE [--mem SIZE] [--vcpus N] [--set NAME=VALUE]... [--warmup D] [--after D] [--out DIR] [--qemu-binary PATH]"
)]
pub struct KvmRunArgs {
    /// The guest and its VM.
    #[command(flatten)]
    pub guest: KvmGuestArgs,
    /// Run the guest under real QEMU instead (a source and an -incoming destination
    /// qemu-system-x86_64 -enable-kvm on this host, driven over QMP): QEMU's own migration,
    /// recorded into the same files. Takes --mem, --vcpus, --set, --warmup, --after, --out.
    #[arg(
        long = "qemu",
        value_name = "IMAGE",
        conflicts_with_all = ["image", "migrate", "dirty_log", "boot", "dma", "dma_wss"]
    )]
    pub qemu: Option<PathBuf>,
    /// The QEMU binary for --qemu (a path, or a name looked up on PATH).
    /// [default: qemu-system-x86_64]
    #[arg(long, value_name = "PATH", requires = "qemu")]
    pub qemu_binary: Option<String>,
    /// Migrate to `autoconv incoming` listening there (tcp:HOST:PORT). Without it, autoconv
    /// starts a destination itself on 127.0.0.1, so one command shows a whole migration.
    #[arg(long, value_name = "tcp:HOST:PORT")]
    pub migrate: Option<String>,
    /// A QEMU migration parameter or capability by its QEMU name (auto-converge=on,
    /// max-bandwidth=64MiB/s, downtime-limit=300, cpu-throttle-initial=20,
    /// cpu-throttle-increment=10, cpu-throttle-tailslow=off, max-cpu-throttle=99,
    /// throttle-trigger-threshold=50, avail-switchover-bandwidth=0), or an autoconv setting
    /// (autoconv.time_limit_s=600, autoconv.qemu_version=7.2), as `autoconv sim` takes them.
    /// With --qemu, QEMU's settings autoconv does not model (multifd=on, multifd-channels=4,
    /// xbzrle-cache-size=67108864) go to QEMU as given. Repeatable; later ones win.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Write timeseries.csv, events.csv, summary.json (as `autoconv sim` writes them, plus
    /// memory_verified, the guest's slowdown, the destination's state) and serial.txt (the
    /// source guest's COM1 output) there.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// How long the guest runs before the migration starts (with --qemu: after its first
    /// COM1 output, which QEMU's slow multiboot path delays by seconds).
    #[arg(long, default_value = "4s", value_parser = parse_duration_ms)]
    pub warmup: u64,
    /// How long to watch the guest after the migration (on the destination if it completed,
    /// on the source if not).
    #[arg(long, default_value = "2s", value_parser = parse_duration_ms)]
    pub after: u64,
    /// Migrate inside TLS with these credentials (as QEMU's tls-creds-x509 dir=): DIR holds
    /// ca-cert.pem, client-cert.pem and client-key.pem (and server-cert.pem, server-key.pem
    /// for the local destination when there is no --migrate).
    #[arg(long, value_name = "DIR")]
    pub tls_creds: Option<PathBuf>,
    /// The name the destination's certificate must carry (QEMU's tls-hostname; default: the
    /// host in --migrate, or 127.0.0.1 for the local destination).
    #[arg(long, value_name = "NAME", requires = "tls_creds")]
    pub tls_hostname: Option<String>,
    /// Give up on a destination that has not answered the handshake (connect, TLS, its
    /// reply once it has built the VM) within this.
    #[arg(long, default_value = "30s", value_parser = parse_duration_ms, conflicts_with = "qemu")]
    pub handshake_timeout: u64,
    /// Give up on a destination that moves no byte for this long (it stopped reading, or does
    /// not answer at switchover): the migration ends `cancelled`, as QEMU's migrate_cancel
    /// ends it, the source guest resumed; the wait never goes past autoconv.time_limit_s
    /// (then `not-converged`). QEMU itself would wait for ever.
    #[arg(long, default_value = "15s", value_parser = parse_duration_ms, conflicts_with = "qemu")]
    pub stall_timeout: u64,
    /// The calibrated scenario meant to predict this run (a FILE.toml whose workload is a
    /// measured profile): warn if this guest's unthrottled write rate, measured in the
    /// warm-up, is more than 10% off its profile's (the calibration would not hold).
    #[arg(long, value_name = "FILE.toml")]
    pub calibrated: Option<PathBuf>,
    /// How the destination proves its memory before the guest runs there: digest (each page
    /// checked as it arrives against the digest the source took as it sent it; nothing is
    /// re-read while the guest is paused) or full (also re-read and compare all memory on
    /// both sides with the guest stopped: catches a dirty page the dirty log lost, at the
    /// price of a longer pause).
    #[arg(
        long,
        value_name = "MODE",
        default_value = "digest",
        conflicts_with = "qemu"
    )]
    pub verify: transport::verify::VerifyMode,
    /// Serve QMP on this unix socket (unix:PATH, created 0600) and keep the guest running
    /// until a client says `migrate` (to an `autoconv incoming`), as QEMU's `-qmp` does: the
    /// client sets capabilities and parameters, starts the migration, polls `query-migrate`
    /// and says `quit`. See README, "A QEMU monitor on a real guest".
    #[arg(long, value_name = "unix:PATH", conflicts_with_all = ["qemu", "migrate"])]
    pub qmp: Option<String>,
    /// Serve QEMU's human monitor (HMP) on stdin/stdout: `migrate_set_capability`,
    /// `migrate_set_parameter`, `migrate -d tcp:HOST:PORT`, `info migrate`, `quit`. The end of
    /// stdin quits once a migration in progress has ended.
    #[arg(long, value_name = "stdio", value_parser = ["stdio"], conflicts_with_all = ["qemu", "migrate"])]
    pub monitor: Option<String>,
    /// Fault injection, for tests: lose every dirty bit of the page at this guest physical
    /// address (0x... or decimal), as a broken dirty log would. With --verify full the
    /// destination then finds the stale copy and refuses the guest (exit 3).
    #[arg(
        long = "x-drop-dirty-page",
        value_name = "GPA",
        hide = true,
        value_parser = parse_gpa,
        conflicts_with = "qemu"
    )]
    pub x_drop_dirty_page: Option<u64>,
}

/// A page-aligned guest physical address, hex with 0x or decimal.
fn parse_gpa(text: &str) -> Result<u64, String> {
    let gpa = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|_| format!("cannot read {text:?} as a guest address (e.g. 0x101000)"))?;
    if gpa % 4096 != 0 {
        return Err(format!("{text} is not page aligned (a multiple of 0x1000)"));
    }
    Ok(gpa)
}

const RUN_HELP: &str = "\
The guest boots in a KVM VM, runs for --warmup, then the same pre-copy core as
`autoconv sim` migrates it over TCP: dirty pages come from KVM's dirty log, the
throttle really puts the vCPU threads to sleep (QEMU's cpu-throttle timing), and at
switchover the destination proves it holds the last copy the source sent of every page (a
keyed CRC32 per page, checked as it arrives; --verify full also re-reads all memory on both
sides) before it resumes the guest.

Examples:
  autoconv guest build -o seq.img
  autoconv run --kvm seq.img --set auto-converge=on --set max-bandwidth=64MiB/s --out runs/seq
  autoconv incoming tcp:127.0.0.1:4444 &          # a destination in its own process
  autoconv run --kvm seq.img --migrate tcp:127.0.0.1:4444 --set max-bandwidth=0

Ctrl-C cancels the migration; the source guest keeps running, unthrottled.

With --qemu IMAGE, QEMU migrates instead of autoconv (see README, \"Real QEMU in the loop\"):
  autoconv run --qemu seq.img --set auto-converge=on --set max-bandwidth=64MiB/s --out runs/q";

/// Handler of `autoconv run --kvm`: the exit code of the migration's outcome
/// ([`super::exit::for_outcome`]).
pub fn run_kvm(args: &KvmRunArgs) -> anyhow::Result<u8> {
    if let Some(dir) = &args.out {
        autoconv::report::check_output_dir(dir)?;
    }
    if let Some(image) = &args.qemu {
        return super::qemu::run_qemu(args, image);
    }
    let config = autoconv::scenario::migration_config_from_sets(&args.set)?;
    let calibrated = args
        .calibrated
        .as_ref()
        .map(|p| autoconv::scenario::Scenario::load(p, &[]))
        .transpose()?;
    if config.params.dirty_limit
        && !matches!(
            args.guest.dirty_log,
            autoconv::kvm::DirtyLogMode::Ring { .. }
        )
    {
        // QEMU refuses the capability without dirty rings.
        anyhow::bail!(
            "{} (here: --dirty-log ring)",
            autoconv::migration::env::DIRTY_RING_REQUIRED
        );
    }
    // Bad monitor addresses are refused before the guest is even looked at.
    if let Some(address) = &args.qmp {
        autoconv::monitor::socket::parse_address(address)?;
    }
    args.guest.check_runnable()?;
    let destination = match &args.migrate {
        None => Destination::Local,
        Some(a) => Destination::Remote(transport::parse_tcp_address(a)?),
    };
    let tls = match &args.tls_creds {
        None => None,
        Some(dir) => {
            let endpoint = if args.migrate.is_some() {
                transport::tls::Endpoint::Client
            } else {
                transport::tls::Endpoint::Both
            };
            Some(transport::tls::ClientTls {
                creds: transport::tls::TlsCreds::load(dir, endpoint)?,
                hostname: args
                    .tls_hostname
                    .clone()
                    .or_else(|| args.migrate.as_deref().and_then(transport::tcp_host)),
            })
        }
    };
    let opts = RunOptions {
        image: args.guest.image()?.to_path_buf(),
        machine: args.guest.machine(),
        boot: args.guest.boot,
        config: config.clone(),
        destination,
        warmup_ms: args.warmup,
        after_ms: args.after,
        drop_dirty_gfn: args.x_drop_dirty_page.map(|gpa| gpa / 4096),
        prefill: false,
        dma: args.guest.dma(),
        tls,
        verify: args.verify,
        timeouts: transport::link::LinkTimeouts {
            handshake: Duration::from_millis(args.handshake_timeout.max(1)),
            stall: Duration::from_millis(args.stall_timeout.max(1)),
            deadline: None,
        },
    };
    if args.qmp.is_some() || args.monitor.is_some() {
        let ring = matches!(
            args.guest.dirty_log,
            autoconv::kvm::DirtyLogMode::Ring { .. }
        );
        let Some(report) = super::run_monitor::run_with_monitor(args, &opts, ring)? else {
            outln!("no migration: the monitor's client quit before `migrate`");
            return Ok(super::exit::OK);
        };
        return finish_run(args, &report, &calibrated);
    }
    let (cancel, done) = ctrl_c_token();
    let report = session::run_migration(&opts, &cancel);
    done.store(true, Ordering::SeqCst);
    let report = report?;
    finish_run(args, &report, &calibrated)
}

/// Print the run, warn about its calibration, write its directory; the exit code.
fn finish_run(
    args: &KvmRunArgs,
    report: &RunReport,
    calibrated: &Option<autoconv::scenario::Scenario>,
) -> anyhow::Result<u8> {
    // The settings the migration ran with (a monitor's client may have changed them).
    let config = &report.config;
    print_run_report(report, config);
    if let Some(s) = &calibrated {
        for w in autoconv::check::calibration::scenario_rate_warnings(
            s,
            report.before.pages_written_per_s,
        ) {
            errln!("autoconv: {w}");
        }
    }
    if let Some(dir) = &args.out {
        let summary = kvm_summary(report, config, args);
        autoconv::report::write_run_dir(
            dir,
            &report.timeline,
            &summary,
            &[("serial.txt", &report.source_serial)],
        )
        .with_context(|| format!("writing results to {}", dir.display()))?;
        outln!(
            "wrote {}/{{timeseries.csv,events.csv,summary.json,serial.txt}}",
            dir.display()
        );
    }
    let code = super::exit::for_outcome(&report.outcome);
    if code == super::exit::GUEST_FAULT {
        // Not the guest's own doing but this host's (a KVM call, a thread it could not start):
        // said on stderr like any other error, naming the step that failed.
        errln!(
            "autoconv: error: the guest backend failed at the source: {}",
            report
                .outcome
                .reason
                .as_deref()
                .unwrap_or("no reason given")
        );
    }
    Ok(code)
}

fn print_run_report(r: &RunReport, config: &MigrationConfig) {
    let o = &r.outcome;
    if let Some(img) = &r.image {
        outln!("guest: {img}");
    }
    outln!(
        "before migrating: {:.0} page writes/s, {} COM1 bytes in {} ms",
        r.before.pages_written_per_s,
        r.before.serial_bytes,
        r.before.interval_ms
    );
    outln!(
        "migration {}: {} ms, downtime {} (limit {} ms; guest paused {} until the destination verified memory and resumed it), {} transferred, {} normal + {} zero pages, {} dirty syncs, throttle steps {:?}",
        o.status,
        o.elapsed_ms,
        o.downtime_ms.map_or("-".to_string(), |d| format!("{d} ms")),
        config.params.downtime_limit,
        o.guest_pause_ms.map_or("-".to_string(), |d| format!("{d} ms")),
        autoconv::units::format_bytes(o.transferred_bytes),
        o.normal_pages,
        o.zero_pages,
        o.dirty_sync_count,
        o.throttle_steps
    );
    if let Some(reason) = &o.reason {
        outln!("reason: {reason}");
    }
    outln!(
        "guest during migration: {} page writes, {} pages in KVM's dirty log, {} COM1 bytes, {:.2} vCPU-s lost to the throttle",
        o.guest_pages_written,
        r.activity.dirty_logged_pages,
        r.activity.serial_bytes,
        o.guest_cpu_lost_s
    );
    // What autoconv adds to QEMU's downtime before the guest runs again.
    let after_last_byte_ms = o
        .guest_pause_ms
        .zip(o.downtime_ms)
        .map_or(0, |(p, d)| p.saturating_sub(d));
    match r.memory_verified {
        Some(true) => match r.link.verify {
            transport::verify::VerifyMode::Digest => outln!(
                "memory verified: the destination holds the last copy the source sent of every page (keyed CRC32 per page, checked as it arrived; guest resumed {} ms after the last byte)",
                after_last_byte_ms
            ),
            transport::verify::VerifyMode::Full => outln!(
                "memory verified: source and destination equal (keyed CRC32 of every page, re-read on both sides with the guest stopped; guest resumed {} ms after the last byte)",
                after_last_byte_ms
            ),
        },
        Some(false) => match o.failure {
            Some(FailureKind::MemoryMismatch {
                mismatched_pages,
                pages,
                first_gpa,
            }) => outln!(
                "memory verification FAILED: {mismatched_pages} of {pages} pages differ, the first at guest address {first_gpa:#x}; the destination did not run the guest"
            ),
            _ => outln!("memory verification FAILED"),
        },
        None => outln!("memory not verified (the migration did not reach switchover)"),
    }
    if let Some(d) = &r.destination {
        if d.resumed {
            outln!(
                "destination: resumed at {} (source final: {}); then {:.0} page writes/s, {} COM1 bytes over {} ms",
                counters_text(&d.counters_at_resume),
                counters_text(&r.source_final),
                d.progress.as_ref().map_or(0.0, |p| p.pages_written_per_s),
                d.progress.as_ref().map_or(0, |p| p.serial_bytes),
                d.progress.as_ref().map_or(0, |p| p.interval_ms)
            );
        } else if let Some(e) = &d.error {
            outln!("destination: {e}");
        }
    }
    if let Some(p) = &r.source_after {
        outln!(
            "source guest after the migration ended: still running, {:.0} page writes/s, throttle {}%",
            p.pages_written_per_s, r.source_throttle_after_pct
        );
    }
    if r.source_paused {
        outln!(
            "source guest after the migration ended: paused (it was handed to the destination, which did not confirm; it may be running there)"
        );
    }
    outln!("{}", r.host_cpu.summary_line());
    for w in &r.warnings {
        errln!("autoconv: warning: {w}");
    }
}

/// summary.json for a real run: the simulator's fields (same names, same meaning), then what
/// only a real guest can tell.
fn kvm_summary(r: &RunReport, config: &MigrationConfig, args: &KvmRunArgs) -> Summary {
    let mut parameters = autoconv::scenario::migration_settings_json(config);
    if let Some(obj) = parameters.as_object_mut() {
        obj.insert(
            "guest".into(),
            serde_json::json!({
                "image": args.guest.image.as_deref().map(|p| p.display().to_string()),
                "memory_bytes": r.ram_bytes,
                "vcpus": r.vcpus,
                "dirty_log": args.guest.dirty_log.to_string(),
                "boot": args.guest.boot.to_string(),
                "dma": r.dma,
                "warmup_ms": args.warmup,
            }),
        );
    }
    let name = args
        .guest
        .image
        .as_deref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "guest".into());
    let mut summary = Summary::new(&name, None, "kvm", &r.outcome, parameters);
    let before = r.before.pages_written_per_s;
    let during = if r.outcome.elapsed_ms > 0 {
        r.outcome.guest_pages_written as f64 * 1000.0 / r.outcome.elapsed_ms as f64
    } else {
        0.0
    };
    let sync_ms = |ns: u64| ns as f64 / 1e6;
    let mean_sync_ns = r
        .sync_timing
        .total_ns
        .checked_div(r.sync_timing.syncs)
        .unwrap_or(0);
    let gib = r.ram_bytes as f64 / f64::from(1u32 << 30);
    let extra = [
        ("memory_verified", serde_json::json!(r.memory_verified)),
        // autoconv's own verdict (not a QEMU figure): false = the guest wrote nothing during
        // the migration, so these figures measure no workload.
        ("guest_progress", serde_json::json!(r.guest_progress())),
        ("warnings", serde_json::json!(r.warnings)),
        (
            "host_cpu",
            serde_json::to_value(r.host_cpu).unwrap_or_default(),
        ),
        (
            "guest",
            serde_json::json!({
                "image": r.image,
                "write_pages_s_before": before,
                "write_pages_s_during": during,
                // The cost the user pays: how much slower the guest ran while migrating.
                "slowdown_pct": if before > 0.0 { 100.0 * (1.0 - during / before) } else { 0.0 },
                "source_final_counters": r.source_final,
                "dma_pages_written": r.dma_pages_written,
                "serial_bytes": r.source_serial_bytes,
                "during_migration": r.activity,
                "source_vcpu_failures": r.source_vcpu_failures,
            }),
        ),
        (
            "destination",
            serde_json::to_value(&r.destination).unwrap_or_default(),
        ),
        (
            "source_after",
            serde_json::json!({
                "progress": r.source_after,
                "throttle_pct": r.source_throttle_after_pct,
                "paused": r.source_paused,
            }),
        ),
        (
            "dirty_log_sync",
            serde_json::json!({
                "syncs": r.sync_timing.syncs,
                "mean_ms": sync_ms(mean_sync_ns),
                "max_ms": sync_ms(r.sync_timing.max_ns),
                "mean_ms_per_gib": if gib > 0.0 { sync_ms(mean_sync_ns) / gib } else { 0.0 },
            }),
        ),
        ("link", serde_json::to_value(r.link).unwrap_or_default()),
    ];
    for (k, v) in extra {
        summary.extra.insert(k.into(), v);
    }
    summary
}
