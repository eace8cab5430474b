//! `autoconv guest build`, `autoconv run --kvm`, `autoconv incoming`, `autoconv profile --kvm`:
//! argument structs and handlers for the real-KVM half.

use super::out::outln;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::guest_image::{self, GuestSpec, HotSpec, Pace, Pattern};

/// `autoconv guest build`: write a workload guest image.
#[derive(Args, Debug, Clone)]
#[command(after_help = GUEST_BUILD_HELP)]
pub struct GuestBuildArgs {
    /// Which pages the workload writes: sequential (every page in address order, like QEMU's
    /// own test guest), random, hotcold, or idle (no writes).
    #[arg(long, default_value = "sequential")]
    pub pattern: Pattern,
    /// Working set size, shared evenly between the vCPUs (e.g. 256MiB). It starts at 4 MiB, so
    /// the guest needs at least WSS + 4 MiB of memory.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub wss: u64,
    /// Hot/cold split for --pattern hotcold: WSS%:WRITES% (10%:90% = a tenth of the set takes
    /// nine tenths of the writes).
    #[arg(long, default_value = "10%:90%")]
    pub hot: HotSpec,
    /// Pacing: none (as fast as the vCPU goes); cpu:N (spin N iterations after each write:
    /// CPU-time pace, throttling slows it); wall:R (R page writes/s per vCPU on TSC deadlines
    /// with catch-up: throttling does not slow it until it cannot keep up).
    #[arg(long, default_value = "none")]
    pub pace: Pace,
    /// vCPUs the workload runs on (each writes its own slice of the working set). Under QEMU
    /// without -smp only vCPU 0 runs.
    #[arg(long, default_value_t = 1)]
    pub vcpus: u32,
    /// Write one 'B' to COM1 every N sweeps (0: never).
    #[arg(long, default_value_t = 1)]
    pub marker_every: u32,
    /// Seed of the random and hotcold patterns.
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// Output file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

const GUEST_BUILD_HELP: &str = "\
The image is a multiboot v1 ELF: the same file boots under
  qemu-system-x86_64 -enable-kvm -m 512 -kernel guest.img -serial file:out.txt
and under
  autoconv run --kvm guest.img
It switches to 64-bit long mode and runs the workload at CPL3. Progress counters
(sweeps and pages written, per vCPU) live in guest memory at 0x101040 + 64*vCPU.

Examples:
  autoconv guest build -o seq.img                       # QEMU's test guest: 256 MiB, sequential
  autoconv guest build --pattern random --wss 64MiB --pace cpu:2000 -o rnd.img
  autoconv guest build --pattern hotcold --hot 5%:95% --vcpus 2 -o hc.img
  autoconv guest build --pace wall:100000 -o paced.img  # 100K page writes/s, throttle-proof";

fn parse_size(s: &str) -> Result<u64, String> {
    crate::units::parse_size_bytes(s).map_err(|e| e.to_string())
}

/// Handler of `autoconv guest build`.
pub fn guest_build(args: &GuestBuildArgs) -> anyhow::Result<u8> {
    let spec = GuestSpec {
        pattern: args.pattern,
        wss_bytes: args.wss,
        hot: args.hot,
        pace: args.pace,
        vcpus: args.vcpus,
        marker_every_sweeps: args.marker_every,
        seed: args.seed,
        tsc_khz: guest_image::measure_tsc_khz(),
    };
    let image = guest_image::build_image(&spec)?;
    crate::report::write_file_atomically(&args.output, &image)?;
    outln!(
        "wrote {} ({} bytes): {} {} working set on {} vCPU(s), pace {}; needs --mem >= {}",
        args.output.display(),
        image.len(),
        spec.pattern.name(),
        crate::units::format_bytes(spec.wss_bytes),
        spec.vcpus,
        spec.pace,
        crate::units::format_bytes(spec.min_mem_bytes())
    );
    Ok(super::exit::OK)
}

// ---------------------------------------------------------------------------------------------
// run --kvm, incoming, profile --kvm

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::kvm::session::{self, Destination, RunOptions, RunReport};
use crate::kvm::{BootPath, DirtyLogMode, MachineConfig};
use crate::migration::{CancelToken, MigrationConfig, MigrationStatus};
use crate::report::{write_dir_atomically, Summary};
use crate::transport::{self, incoming};

fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix("min") {
        (n, 60_000.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("cannot read {s:?} as a duration (e.g. 500ms, 4s, 2min)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("cannot read {s:?} as a duration"));
    }
    Ok((v * mult).round() as u64)
}

/// Guest shape options shared by `run --kvm` and `profile --kvm`.
#[derive(Args, Debug, Clone)]
pub struct KvmGuestArgs {
    /// The guest: a multiboot v1 image (from `autoconv guest build`, or any multiboot v1 kernel
    /// that needs only memory, the CPU and COM1).
    #[arg(long = "kvm", value_name = "IMAGE")]
    pub image: PathBuf,
    /// Guest memory (as QEMU's -m).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    pub mem: u64,
    /// vCPUs (default: as many as the image was built for; 1 for other kernels).
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// How KVM reports dirty pages: bitmap (KVM_GET_DIRTY_LOG); clear (manual protect:
    /// KVM_CLEAR_DIRTY_LOG re-protects each 1 GiB chunk just before it is sent, as QEMU
    /// does); ring or ring:SIZE (per-vCPU dirty rings, 64KiB = 4096 entries by default).
    #[arg(long, default_value = "bitmap")]
    pub dirty_log: DirtyLogMode,
    /// Boot path: auto (autoconv images start in long mode at their trampoline, skipping the
    /// slow emulated 32-bit boot) or multiboot (always as QEMU boots them).
    #[arg(long, default_value = "auto")]
    pub boot: BootPath,
    /// An emulated DMA device writing this many pages/s into guest memory from the host
    /// (throttling cannot slow it; its writes are tracked by the VMM, not by KVM).
    #[arg(long, value_name = "PAGES_PER_S")]
    pub dma: Option<u64>,
    /// Size of the region the DMA device cycles through, at the top of guest memory.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub dma_wss: u64,
}

impl KvmGuestArgs {
    fn machine(&self) -> MachineConfig {
        MachineConfig {
            mem_bytes: self.mem,
            vcpus: self.vcpus.unwrap_or(0),
            dirty_log: self.dirty_log,
        }
    }

    fn dma(&self) -> Option<crate::kvm::dma::DmaConfig> {
        self.dma.map(|pages_per_s| {
            let bytes = self.dma_wss.min(self.mem) / 4096 * 4096;
            crate::kvm::dma::DmaConfig {
                pages_per_s,
                region_gpa: self.mem - bytes,
                region_bytes: bytes,
            }
        })
    }
}

/// `autoconv run --kvm IMAGE`: run a real guest and live-migrate it.
#[derive(Args, Debug, Clone)]
#[command(after_help = RUN_HELP)]
pub struct KvmRunArgs {
    /// The guest and its VM.
    #[command(flatten)]
    pub guest: KvmGuestArgs,
    /// Migrate to `autoconv incoming` listening there (tcp:HOST:PORT). Without it, autoconv
    /// starts a destination itself on 127.0.0.1, so one command shows a whole migration.
    #[arg(long, value_name = "tcp:HOST:PORT")]
    pub migrate: Option<String>,
    /// A QEMU migration parameter or capability by its QEMU name (auto-converge=on,
    /// max-bandwidth=64MiB/s, downtime-limit=300, cpu-throttle-initial=20,
    /// cpu-throttle-increment=10, cpu-throttle-tailslow=off, max-cpu-throttle=99,
    /// throttle-trigger-threshold=50, avail-switchover-bandwidth=0), or an autoconv setting
    /// (autoconv.time_limit_s=600, autoconv.qemu_version=7.2), as `autoconv sim` takes them.
    /// Repeatable; later ones win.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Write timeseries.csv, events.csv, summary.json (as `autoconv sim` writes them, plus
    /// memory_verified, the guest's slowdown, the destination's state) and serial.txt (the
    /// source guest's COM1 output) there.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// How long the guest runs before the migration starts.
    #[arg(long, default_value = "4s", value_parser = parse_duration_ms)]
    pub warmup: u64,
    /// How long to watch the guest after the migration (on the destination if it completed,
    /// on the source if not).
    #[arg(long, default_value = "2s", value_parser = parse_duration_ms)]
    pub after: u64,
}

const RUN_HELP: &str = "\
The guest boots in a KVM VM, runs for --warmup, then the same pre-copy core as
`autoconv sim` migrates it over TCP: dirty pages come from KVM's dirty log, the
throttle really puts the vCPU threads to sleep (QEMU's cpu-throttle timing), and at
switchover the destination proves its memory equal to the source's (a CRC32 per page)
before it resumes the guest.

Examples:
  autoconv guest build -o seq.img
  autoconv run --kvm seq.img --set auto-converge=on --set max-bandwidth=64MiB/s --out runs/seq
  autoconv incoming tcp:127.0.0.1:4444 &          # a destination in its own process
  autoconv run --kvm seq.img --migrate tcp:127.0.0.1:4444 --set max-bandwidth=0

Ctrl-C cancels the migration; the source guest keeps running, unthrottled.";

/// `autoconv incoming tcp:HOST:PORT`: be a migration destination.
#[derive(Args, Debug, Clone)]
#[command(after_help = INCOMING_HELP)]
pub struct IncomingArgs {
    /// Where to listen: tcp:HOST:PORT (port 0 picks a free port and prints it).
    #[arg(value_name = "tcp:HOST:PORT")]
    pub address: String,
    /// Write incoming.json and serial.txt there.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Stop the resumed guest after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = parse_duration_ms)]
    pub run_for: Option<u64>,
}

const INCOMING_HELP: &str = "\
Waits for one `autoconv run --kvm ... --migrate tcp:HOST:PORT`, checks every frame
(known commands, sizes, addresses inside guest memory), loads memory and vCPU state,
compares a CRC32 of every page with the source's, and only then resumes the guest,
which keeps running here; its progress counters continue from the source's values.";

/// `autoconv profile --kvm IMAGE`: the throttle vs dirty-rate curve.
#[derive(Args, Debug, Clone)]
#[command(after_help = PROFILE_HELP)]
pub struct KvmProfileArgs {
    /// The guest and its VM.
    #[command(flatten)]
    pub guest: KvmGuestArgs,
    /// Throttle levels (%), comma-separated.
    #[arg(
        long,
        default_value = "0,10,20,30,40,50,60,70,80,90,99",
        value_delimiter = ','
    )]
    pub levels: Vec<u32>,
    /// How long each level is held (measured after a settling period of one throttle period).
    #[arg(long, default_value = "3s", value_parser = parse_duration_ms)]
    pub hold: u64,
    /// How often the dirty log is harvested while holding (QEMU computes its dirty rate over
    /// periods of at least 1 s).
    #[arg(long, default_value = "1s", value_parser = parse_duration_ms)]
    pub sync_interval: u64,
    /// CSV output (default: print only).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

const PROFILE_HELP: &str = "\
Holds the vCPU throttle at each level with dirty logging on (as during a migration) and
measures the guest's dirty rate (distinct pages newly dirtied per second, harvested every
--sync-interval) and its own write rate. If the dirty rate at 99% is still above what the
link carries, auto-converge cannot make this workload converge.

The CSV is the profile format the simulator reads (see README, \"The profile CSV\"):
throttle_pct, dirty_pages_s, interval_ms, ..., guest_write_pages_s, guest_cpu_pct, hold_ms,
syncs, page_size_bytes, memory_bytes, vcpus, source. A scenario region with
pattern = \"profile\" takes it as its workload; `autoconv plot FILE.csv --bandwidth RATE` draws
it against auto-converge's threshold.";

static SIGINT_SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if SIGINT_SEEN.swap(true, Ordering::SeqCst) {
        // A second Ctrl-C: leave now.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// A cancel token that Ctrl-C (SIGINT) trips. The watcher thread ends when `done` is set.
fn ctrl_c_token() -> (CancelToken, std::sync::Arc<AtomicBool>) {
    let token = CancelToken::new();
    let done = std::sync::Arc::new(AtomicBool::new(false));
    if vmm_sys_util::signal::register_signal_handler(libc::SIGINT, on_sigint).is_ok() {
        let (t, d) = (token.clone(), done.clone());
        let _ = std::thread::Builder::new()
            .name("ctrl-c".into())
            .spawn(move || {
                while !d.load(Ordering::SeqCst) {
                    if SIGINT_SEEN.load(Ordering::SeqCst) {
                        eprintln!("autoconv: Ctrl-C: cancelling (again to quit at once)");
                        t.cancel();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
    }
    (token, done)
}

fn counters_text(c: &[crate::kvm::VcpuCounters]) -> String {
    let pages: u64 = c.iter().map(|c| c.pages_written).sum();
    let sweeps: u64 = c.iter().map(|c| c.sweeps).sum();
    format!("{pages} pages written, {sweeps} sweeps")
}

/// Handler of `autoconv run --kvm`: exit 0 if the migration completed, 1 if it did not.
pub fn run_kvm(args: &KvmRunArgs) -> anyhow::Result<u8> {
    let config = crate::scenario::migration_config_from_sets(&args.set)?;
    if let Some(why) = crate::kvm::unavailable_reason() {
        anyhow::bail!("{why}");
    }
    let destination = match &args.migrate {
        None => Destination::Local,
        Some(a) => Destination::Remote(transport::parse_tcp_address(a)?),
    };
    let opts = RunOptions {
        image: args.guest.image.clone(),
        machine: args.guest.machine(),
        boot: args.guest.boot,
        config: config.clone(),
        destination,
        warmup_ms: args.warmup,
        after_ms: args.after,
        drop_dirty_gfn: None,
        prefill: false,
        dma: args.guest.dma(),
    };
    let (cancel, done) = ctrl_c_token();
    let report = session::run_migration(&opts, &cancel);
    done.store(true, Ordering::SeqCst);
    let report = report?;
    print_run_report(&report, &config);
    if let Some(dir) = &args.out {
        let summary = kvm_summary(&report, &config, args);
        crate::report::write_run_dir(
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
    Ok(if report.outcome.status == MigrationStatus::Completed {
        super::exit::OK
    } else {
        super::exit::NOT_COMPLETED
    })
}

fn print_run_report(r: &RunReport, config: &MigrationConfig) {
    let o = &r.outcome;
    if let Some(img) = &r.image {
        outln!("guest: {img}");
    }
    outln!(
        "before migrating: {:.0} page writes/s",
        r.before.pages_written_per_s
    );
    outln!(
        "migration {}: {} ms, downtime {} (limit {} ms; guest paused {} until the destination verified memory and resumed it), {} transferred, {} normal + {} zero pages, {} dirty syncs, throttle steps {:?}",
        o.status,
        o.elapsed_ms,
        o.downtime_ms.map_or("-".to_string(), |d| format!("{d} ms")),
        config.params.downtime_limit,
        o.guest_pause_ms.map_or("-".to_string(), |d| format!("{d} ms")),
        crate::units::format_bytes(o.transferred_bytes),
        o.normal_pages,
        o.zero_pages,
        o.dirty_sync_count,
        o.throttle_steps
    );
    if let Some(reason) = &o.reason {
        outln!("reason: {reason}");
    }
    outln!(
        "guest during migration: {} page writes, {:.2} vCPU-s lost to the throttle",
        o.guest_pages_written,
        o.guest_cpu_lost_s
    );
    match r.memory_verified {
        Some(true) => {
            outln!("memory verified: source and destination equal (CRC32 of every page)")
        }
        Some(false) => outln!("memory verification FAILED"),
        None => outln!("memory not verified (the migration did not reach switchover)"),
    }
    if let Some(d) = &r.destination {
        if d.resumed {
            outln!(
                "destination: resumed at {} (source final: {}); then {:.0} page writes/s over {} ms",
                counters_text(&d.counters_at_resume),
                counters_text(&r.source_final),
                d.progress.as_ref().map_or(0.0, |p| p.pages_written_per_s),
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
}

/// summary.json for a real run: the simulator's fields (same names, same meaning), then what
/// only a real guest can tell.
fn kvm_summary(r: &RunReport, config: &MigrationConfig, args: &KvmRunArgs) -> Summary {
    let mut parameters = crate::scenario::migration_settings_json(config);
    if let Some(obj) = parameters.as_object_mut() {
        obj.insert(
            "guest".into(),
            serde_json::json!({
                "image": args.guest.image.display().to_string(),
                "memory_bytes": r.ram_bytes,
                "vcpus": r.vcpus,
                "dirty_log": format!("{:?}", args.guest.dirty_log).to_lowercase(),
                "boot": format!("{:?}", args.guest.boot).to_lowercase(),
                "dma": r.dma,
                "warmup_ms": args.warmup,
            }),
        );
    }
    let name = args
        .guest
        .image
        .file_stem()
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

/// Handler of `autoconv incoming`.
pub fn incoming(args: &IncomingArgs) -> anyhow::Result<u8> {
    if let Some(why) = crate::kvm::unavailable_reason() {
        anyhow::bail!("{why}");
    }
    let addr = transport::parse_tcp_address(&args.address)?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| transport::TransportError::Listen {
            addr: args.address.clone(),
            source,
        })?;
    let bound = listener.local_addr()?;
    outln!("listening on tcp:{bound}");
    let (cancel, done) = ctrl_c_token();
    let t0 = Instant::now();
    let received = incoming::accept_one(&listener, &cancel, DirtyLogMode::Bitmap);
    let inc = match received {
        Ok(i) => i,
        Err(e) => {
            done.store(true, Ordering::SeqCst);
            let msg = crate::migration::error_chain(&e);
            if let Some(dir) = &args.out {
                let json = pretty(&serde_json::json!({"status": "failed", "error": msg}));
                write_dir_atomically(dir, &[("incoming.json", json.as_bytes())])?;
            }
            eprintln!("autoconv: incoming migration failed: {msg}");
            return Ok(super::exit::NOT_COMPLETED);
        }
    };
    let at_resume = inc.counters_at_resume.clone();
    outln!(
        "migration received in {} ms: memory verified ({} pages, {:.1} ms), guest resumed at {}",
        t0.elapsed().as_millis(),
        inc.stats.verified_pages,
        inc.stats.verify_ms,
        counters_text(&at_resume)
    );
    let run_for = args.run_for.unwrap_or(u64::MAX);
    let started = Instant::now();
    let mut last = at_resume.clone();
    let mut rates = Vec::new();
    while !cancel.is_cancelled() && (started.elapsed().as_millis() as u64) < run_for {
        let left = run_for.saturating_sub(started.elapsed().as_millis() as u64);
        let p = session::watch(&inc.machine, left.min(1000), &cancel);
        rates.push(p.pages_written_per_s);
        last = p.end.clone();
        outln!(
            "guest running: {} ({:.0} page writes/s)",
            counters_text(&last),
            p.pages_written_per_s
        );
        if !inc.machine.failures().is_empty() {
            outln!("guest vCPU failed: {:?}", inc.machine.failures());
            break;
        }
    }
    done.store(true, Ordering::SeqCst);
    if let Some(dir) = &args.out {
        let json = pretty(&serde_json::json!({
            "status": "completed",
            "memory_verified": true,
            "stats": inc.stats,
            "counters_at_resume": at_resume,
            "counters_last": last,
            "ran_ms": started.elapsed().as_millis() as u64,
            "write_pages_s": rates,
            "vcpu_failures": inc.machine.failures(),
            "serial_bytes": inc.machine.serial_bytes(),
        }));
        let serial = inc.machine.serial_output();
        write_dir_atomically(
            dir,
            &[("incoming.json", json.as_bytes()), ("serial.txt", &serial)],
        )?;
    }
    Ok(super::exit::OK)
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// One row of `profile --kvm`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProfileRow {
    /// Throttle held.
    pub throttle_pct: u32,
    /// Distinct pages newly dirtied per second (harvested every sync interval).
    pub dirty_pages_per_s: f64,
    /// The same in bytes.
    pub dirty_bytes_per_s: f64,
    /// The guest's own page writes per second.
    pub guest_write_pages_per_s: f64,
    /// CPU share the vCPUs got (100 = unthrottled).
    pub guest_cpu_pct: f64,
    /// Measured time.
    pub hold_ms: u64,
    /// Harvests in it.
    pub syncs: u64,
}

/// Measure the throttle vs dirty-rate curve of a guest (library entry point of
/// `autoconv profile --kvm`).
pub fn profile_machine(
    machine: &mut crate::kvm::Machine,
    levels: &[u32],
    hold_ms: u64,
    sync_interval_ms: u64,
    cancel: &CancelToken,
) -> anyhow::Result<Vec<ProfileRow>> {
    use crate::migration::cpu_throttle::period_ns;
    machine.vm_mut().set_dirty_logging(true)?;
    let mut rows = Vec::new();
    for &pct in levels {
        if cancel.is_cancelled() {
            break;
        }
        machine.set_throttle_pct(pct);
        // Settle for one throttle period (capped) so the level is in force, then start clean.
        let settle = if pct == 0 {
            100
        } else {
            (period_ns(pct) / 1_000_000).min(1000)
        };
        cancel.wait_timeout(Duration::from_millis(settle));
        machine.vm().get_dirty_log()?;
        machine.ram().take_host_dirty();
        let w0 = machine.pages_written();
        let s0 = machine.throttle_slept_ns();
        let t0 = Instant::now();
        let mut dirty = 0u64;
        let mut syncs = 0u64;
        while (t0.elapsed().as_millis() as u64) < hold_ms && !cancel.is_cancelled() {
            let left = hold_ms - t0.elapsed().as_millis() as u64;
            cancel.wait_timeout(Duration::from_millis(sync_interval_ms.min(left).max(1)));
            let log = machine.vm().get_dirty_log()?;
            // Pages a device wrote from the host count too: a migration must send them.
            let host = machine.ram().take_host_dirty();
            dirty += log
                .iter()
                .zip(host.iter().chain(std::iter::repeat(&0)))
                .map(|(k, h)| u64::from((k | h).count_ones()))
                .sum::<u64>();
            syncs += 1;
        }
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        let slept = machine.throttle_slept_ns() - s0;
        let vcpus = f64::from(machine.vcpu_count());
        rows.push(ProfileRow {
            throttle_pct: pct,
            dirty_pages_per_s: dirty as f64 / secs,
            dirty_bytes_per_s: dirty as f64 * 4096.0 / secs,
            guest_write_pages_per_s: (machine.pages_written() - w0) as f64 / secs,
            guest_cpu_pct: (100.0 * (1.0 - slept as f64 / 1e9 / (secs * vcpus))).clamp(0.0, 100.0),
            hold_ms: (secs * 1e3) as u64,
            syncs,
        });
    }
    machine.set_throttle_pct(0);
    machine.vm_mut().set_dirty_logging(false)?;
    Ok(rows)
}

/// Handler of `autoconv profile --kvm`.
pub fn profile_kvm(args: &KvmProfileArgs) -> anyhow::Result<u8> {
    if let Some(why) = crate::kvm::unavailable_reason() {
        anyhow::bail!("{why}");
    }
    if let Some(bad) = args.levels.iter().find(|&&p| p > 99) {
        anyhow::bail!("throttle level {bad}%: levels are 0..=99");
    }
    let plan = crate::kvm::LoadPlan::from_file(&args.guest.image, args.guest.mem)?;
    let mut cfg = args.guest.machine();
    if cfg.vcpus == 0 {
        cfg.vcpus = plan.info.as_ref().map_or(1, |i| i.vcpus);
    }
    if let Some(info) = &plan.info {
        outln!("guest: {info}");
    }
    let mut machine = crate::kvm::Machine::boot(cfg, &plan, args.guest.boot)?;
    machine.set_dma(args.guest.dma())?;
    machine.start()?;
    let (cancel, done) = ctrl_c_token();
    cancel.wait_timeout(Duration::from_millis(1000));
    let rows = profile_machine(
        &mut machine,
        &args.levels,
        args.hold,
        args.sync_interval,
        &cancel,
    );
    done.store(true, Ordering::SeqCst);
    let rows = rows?;
    outln!("throttle_pct  dirty_pages/s  dirty_MiB/s  guest_writes/s  guest_cpu_pct");
    for r in &rows {
        outln!(
            "{:>12}  {:>13.0}  {:>11.1}  {:>14.0}  {:>13.1}",
            r.throttle_pct,
            r.dirty_pages_per_s,
            r.dirty_bytes_per_s / (1 << 20) as f64,
            r.guest_write_pages_per_s,
            r.guest_cpu_pct
        );
    }
    if let Some(out) = &args.output {
        // The profile CSV the simulator reads (src/report/profile.rs), so a scenario region can
        // take this guest's curve as its workload.
        let vcpus = machine.vcpu_count();
        let profile = crate::report::profile::Profile {
            rows: rows
                .iter()
                .map(|r| crate::report::profile::ProfileRow {
                    throttle_pct: r.throttle_pct,
                    dirty_pages_s: r.dirty_pages_per_s,
                    interval_ms: args.sync_interval,
                    dirty_pages_s_min: None,
                    dirty_pages_s_max: None,
                    guest_write_pages_s: Some(r.guest_write_pages_per_s),
                    guest_cpu_pct: Some(r.guest_cpu_pct),
                    hold_ms: Some(r.hold_ms),
                    syncs: Some(r.syncs),
                    page_size_bytes: Some(4096),
                    memory_bytes: Some(args.guest.mem),
                    vcpus: Some(vcpus),
                    source: Some(format!("kvm:{}", args.guest.image.display())),
                })
                .collect(),
        };
        let mut bytes = Vec::new();
        profile.write(&mut bytes)?;
        crate::report::write_file_atomically(out, &bytes)?;
        outln!("wrote {}", out.display());
    }
    Ok(super::exit::OK)
}
