//! One whole real-KVM migration, as `autoconv run --kvm` performs it: boot the image, let it
//! run, migrate it with the core over TCP (to a destination in this process or elsewhere),
//! and check both sides afterwards.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::kvm::clock::MonotonicClock;
use crate::kvm::dma::DmaConfig;
use crate::kvm::host_cpu::{self, HostCpu};
use crate::kvm::loader::LoadPlan;
use crate::kvm::machine::{BootPath, Machine, MachineConfig, VcpuCounters};
use crate::kvm::progress::{run_warnings, GuestActivity};
use crate::kvm::source::{KvmSource, SyncTiming};
use crate::kvm::KvmError;
use crate::migration::{
    migrate, CancelToken, Event, FailureKind, MigrationConfig, MigrationOutcome, MigrationStatus,
    Recorder, Sample, Timeline,
};
use crate::transport::incoming::{accept_one_with, DestinationConfig, IncomingStats};
use crate::transport::link::{LinkStats, LinkTimeouts, TcpLink};
use crate::transport::verify::VerifyMode;
use crate::transport::TransportError;

/// How far past `autoconv.time_limit_s` the link may wait, so that the core, which measures
/// the limit from its own start a moment later, sees it passed when a wait is cut there.
const TIME_LIMIT_GRACE: Duration = Duration::from_millis(100);

/// Where the guest goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A destination this process starts on 127.0.0.1 (one command shows a whole migration).
    Local,
    /// `autoconv incoming` elsewhere.
    Remote(SocketAddr),
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The multiboot image.
    pub image: PathBuf,
    /// VM shape (vCPUs default to the image's).
    pub machine: MachineConfig,
    /// Boot path.
    pub boot: BootPath,
    /// QEMU parameters and autoconv settings.
    pub config: MigrationConfig,
    /// Where to.
    pub destination: Destination,
    /// How long the guest runs before `migrate` (the reference run waited 4 s).
    pub warmup_ms: u64,
    /// How long to watch the surviving guest after the migration ends.
    pub after_ms: u64,
    /// Fault injection: lose this page's dirty bits (tests).
    pub drop_dirty_gfn: Option<u64>,
    /// Before booting, fill guest memory above the image's working-set base (4 MiB) with
    /// non-zero data, so every page travels as a normal page (benchmarks with an idle guest).
    pub prefill: bool,
    /// An emulated DMA device writing guest memory from the host.
    pub dma: Option<DmaConfig>,
    /// The stream inside TLS (the local destination uses the same credentials' server side).
    pub tls: Option<crate::transport::tls::ClientTls>,
    /// How the destination verifies memory before resuming the guest.
    pub verify: VerifyMode,
    /// How long the source waits on the destination (the deadline is set from
    /// `autoconv.time_limit_s` when the migration starts).
    pub timeouts: LinkTimeouts,
}

/// The guest's progress over an interval.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Progress {
    /// Counters at the start.
    pub start: Vec<VcpuCounters>,
    /// Counters at the end.
    pub end: Vec<VcpuCounters>,
    /// Interval length (ms).
    pub interval_ms: u64,
    /// Page writes per second over it (all vCPUs).
    pub pages_written_per_s: f64,
    /// COM1 bytes over it.
    pub serial_bytes: u64,
}

fn total(c: &[VcpuCounters]) -> u64 {
    c.iter().map(|c| c.pages_written).sum()
}

/// Watch a running machine for `ms`.
pub fn watch(machine: &Machine, ms: u64, cancel: &CancelToken) -> Progress {
    let mark = ProgressMark::now(machine);
    cancel.wait_timeout(Duration::from_millis(ms));
    mark.until_now(machine)
}

/// A running machine's counters at one moment, to measure its [`Progress`] from there.
struct ProgressMark {
    start: Vec<VcpuCounters>,
    serial_bytes: u64,
    at: Instant,
}

impl ProgressMark {
    fn now(machine: &Machine) -> Self {
        Self {
            start: machine.counters(),
            serial_bytes: machine.serial_bytes(),
            at: Instant::now(),
        }
    }

    fn until_now(self, machine: &Machine) -> Progress {
        let end = machine.counters();
        let dt = self.at.elapsed();
        Progress {
            pages_written_per_s: (total(&end).saturating_sub(total(&self.start))) as f64
                / dt.as_secs_f64().max(1e-9),
            start: self.start,
            end,
            interval_ms: dt.as_millis() as u64,
            serial_bytes: machine.serial_bytes() - self.serial_bytes,
        }
    }
}

/// Decides when the migration starts and with which settings, and sees it as it runs: the
/// warm-up of `run --kvm` ([`run_migration`]), or a monitor whose client says `migrate`
/// (`run --kvm --qmp`).
pub trait MigrationGate {
    /// Called once the guest runs; returns when the migration is to start, with its settings,
    /// destination and cancel token. `None` ends the run without a migration.
    fn wait_for_migrate(&mut self, machine: &Machine) -> Option<MigrateRequest>;
    /// A ~100 ms window of the running migration ended.
    fn sample(&mut self, _sample: &Sample) {}
    /// Something happened in the running migration.
    fn event(&mut self, _event: &Event) {}
    /// The migration ended (the source guest still exists: stopped if it completed, running
    /// otherwise). May block until whoever controls the run is done with it.
    fn ended(&mut self, _machine: &Machine, _outcome: &MigrationOutcome) {}
}

/// How a migration is to start.
#[derive(Clone, Debug)]
pub struct MigrateRequest {
    /// QEMU parameters and autoconv settings.
    pub config: MigrationConfig,
    /// Where to.
    pub destination: Destination,
    /// Cancels the migration (QEMU's `migrate_cancel`, Ctrl-C).
    pub cancel: CancelToken,
}

/// The warm-up gate: the migration starts after `warmup_ms` (or at once when cancelled).
struct Warmup<'a> {
    opts: &'a RunOptions,
    cancel: &'a CancelToken,
}

impl MigrationGate for Warmup<'_> {
    fn wait_for_migrate(&mut self, _machine: &Machine) -> Option<MigrateRequest> {
        self.cancel
            .wait_timeout(Duration::from_millis(self.opts.warmup_ms));
        Some(MigrateRequest {
            config: self.opts.config.clone(),
            destination: self.opts.destination.clone(),
            cancel: self.cancel.clone(),
        })
    }
}

/// The timeline and the gate both see the migration's samples and events.
struct Tee<'a> {
    timeline: &'a mut Timeline,
    gate: &'a mut dyn MigrationGate,
}

impl Recorder for Tee<'_> {
    fn sample(&mut self, sample: &Sample) {
        self.timeline.sample(sample);
        self.gate.sample(sample);
    }
    fn event(&mut self, event: &Event) {
        self.timeline.event(event);
        self.gate.event(event);
    }
}

/// What the local destination saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DestinationReport {
    /// The guest was received, verified and resumed.
    pub resumed: bool,
    /// Why not, if not.
    pub error: Option<String>,
    /// Counters right after resuming (must equal the source's final ones).
    pub counters_at_resume: Vec<VcpuCounters>,
    /// The guest's progress on the destination after resuming.
    pub progress: Option<Progress>,
    /// Transfer figures.
    pub stats: IncomingStats,
    /// vCPUs that failed on the destination.
    pub vcpu_failures: Vec<(u32, String)>,
    /// Host CPU of the destination's vCPU threads while the resumed guest was watched (ms).
    pub vcpus_cpu_ms_after: f64,
}

/// Everything a run found out.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The core's outcome.
    pub outcome: MigrationOutcome,
    /// The settings the migration ran with.
    #[serde(skip)]
    pub config: MigrationConfig,
    /// Samples and events.
    #[serde(skip)]
    pub timeline: Timeline,
    /// True if source and destination memory were proven equal (digest per page); false if
    /// the comparison failed; None if the migration never got that far.
    pub memory_verified: Option<bool>,
    /// The guest's progress before the migration (free running, no dirty logging).
    pub before: Progress,
    /// Source counters when the source stopped for good (completed) or when the migration
    /// ended (otherwise).
    pub source_final: Vec<VcpuCounters>,
    /// Failed/cancelled migrations: the source guest's progress afterwards (it must run on,
    /// unthrottled).
    pub source_after: Option<Progress>,
    /// Throttle percentage on the source after the migration ended (must be 0).
    pub source_throttle_after_pct: u32,
    /// The source guest was left stopped although the migration did not complete: COMMIT
    /// was sent and not confirmed, so the destination may be running it.
    pub source_paused: bool,
    /// The local destination's view (None for a remote one).
    pub destination: Option<DestinationReport>,
    /// Dirty-log sync timing.
    pub sync_timing: SyncTiming,
    /// The link's own figures.
    pub link: LinkStats,
    /// Guest RAM (bytes).
    pub ram_bytes: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// COM1 bytes the source guest wrote in total.
    pub source_serial_bytes: u64,
    /// What the image says about itself (autoconv images).
    pub image: Option<String>,
    /// The emulated DMA device, if any.
    pub dma: Option<DmaConfig>,
    /// Pages it wrote on the source.
    pub dma_pages_written: u64,
    /// What the source guest wrote to COM1 (its first MiB).
    #[serde(skip)]
    pub source_serial: Vec<u8>,
    /// What the source guest did during the migration.
    pub activity: GuestActivity,
    /// Host CPU during the migration, by thread.
    pub host_cpu: HostCpu,
    /// Source vCPUs that stopped with an error (index, reason).
    pub source_vcpu_failures: Vec<(u32, String)>,
    /// What makes this run's figures suspect (a guest that made no progress, a failed vCPU),
    /// one line each; empty for a sound measurement.
    pub warnings: Vec<String>,
}

impl RunReport {
    /// False if the guest wrote no page and no COM1 byte during the migration: the run
    /// measured no workload.
    pub fn guest_progress(&self) -> bool {
        self.activity.progressed()
    }
}

/// Errors before a migration can even start.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum RunError {
    /// {0}
    Kvm(#[from] KvmError),
    /// {0}
    Transport(#[from] TransportError),
    /// the run ended before any migration started
    NoMigration,
}

/// Start a destination in this process: it accepts one migration on `listener`, then watches
/// the resumed guest for `after_ms` and reports.
pub fn spawn_local_destination(
    listener: TcpListener,
    config: DestinationConfig,
    after_ms: u64,
    cancel: CancelToken,
) -> std::io::Result<(JoinHandle<DestinationReport>, mpsc::Receiver<()>)> {
    let (resumed_tx, resumed_rx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name("destination".into())
        .spawn(move || match accept_one_with(&listener, &cancel, &config) {
            Ok(incoming) => {
                let at_resume = incoming.counters_at_resume.clone();
                let _ = resumed_tx.send(());
                let vcpus0 = incoming.machine.vcpu_cpu_ns();
                let progress = watch(&incoming.machine, after_ms, &cancel);
                let vcpus_cpu_ms_after =
                    incoming.machine.vcpu_cpu_ns().saturating_sub(vcpus0) as f64 / 1e6;
                DestinationReport {
                    resumed: true,
                    error: None,
                    counters_at_resume: at_resume,
                    progress: Some(progress),
                    stats: incoming.stats,
                    vcpu_failures: incoming.machine.failures(),
                    vcpus_cpu_ms_after,
                }
            }
            Err(e) => DestinationReport {
                error: Some(crate::migration::error_chain(&e)),
                ..DestinationReport::default()
            },
        })?;
    Ok((h, resumed_rx))
}

/// Boot, run for the warm-up, migrate, check.
pub fn run_migration(opts: &RunOptions, cancel: &CancelToken) -> Result<RunReport, RunError> {
    run_migration_gated(opts, &mut Warmup { opts, cancel })?.ok_or(RunError::NoMigration)
}

/// Boot, run until `gate` says migrate, migrate, check; `None` if the gate ended the run
/// without a migration. `opts.config`, `opts.destination` and `opts.warmup_ms` are the
/// gate's business (the request it returns carries the settings and destination).
pub fn run_migration_gated(
    opts: &RunOptions,
    gate: &mut dyn MigrationGate,
) -> Result<Option<RunReport>, RunError> {
    let plan = LoadPlan::from_file(&opts.image, opts.machine.mem_bytes).map_err(KvmError::from)?;
    let mut cfg = opts.machine;
    if let Some(info) = &plan.info {
        if cfg.vcpus == 0 {
            cfg.vcpus = info.vcpus;
        }
    } else if cfg.vcpus == 0 {
        cfg.vcpus = 1;
    }
    let image = plan.info.as_ref().map(|i| i.to_string());
    let idle_image = plan
        .info
        .as_ref()
        .is_some_and(|i| i.pattern == crate::guest_image::Pattern::Idle);
    let mut machine = Machine::boot(cfg, &plan, opts.boot)?;
    if opts.prefill {
        prefill(&machine);
    }
    machine.set_dma(opts.dma)?;
    machine.start()?;
    let mark = ProgressMark::now(&machine);
    let Some(request) = gate.wait_for_migrate(&machine) else {
        let _ = machine.pause();
        return Ok(None);
    };
    let before = mark.until_now(&machine);
    let cancel = &request.cancel;
    let config = &request.config;

    let (addr, local) = match &request.destination {
        Destination::Remote(a) => (*a, None),
        Destination::Local => {
            let listener =
                TcpListener::bind("127.0.0.1:0").map_err(|source| TransportError::Listen {
                    addr: "tcp:127.0.0.1:0".into(),
                    source,
                })?;
            let addr = listener
                .local_addr()
                .map_err(|source| TransportError::Listen {
                    addr: "tcp:127.0.0.1:0".into(),
                    source,
                })?;
            let mut dest_config = DestinationConfig::plain(cfg.dirty_log);
            if let Some(tls) = &opts.tls {
                dest_config.tls = Some(tls.creds.server().ok_or_else(|| {
                    TransportError::Tls(
                        "the credentials were not loaded for the local destination".into(),
                    )
                })?);
            }
            let dest =
                spawn_local_destination(listener, dest_config, opts.after_ms, cancel.clone())
                    .map_err(KvmError::thread("destination"))?;
            (addr, Some(dest))
        }
    };

    let mut timeline = Timeline::default();
    let ram = machine.ram().clone();
    let serial_at_start = machine.serial_bytes();
    // The local destination's thread, to read its CPU clock while it receives.
    let dest_thread = local.as_ref().map(|(h, _)| h);
    let connect_start = Instant::now();
    let (outcome, sync_timing, link_stats, dirty_logged_pages, host_cpu) =
        match TcpLink::connect_with(addr, ram, cfg.vcpus, opts.tls.as_ref(), &opts.timeouts) {
            Err(e) => {
                let mut outcome = MigrationOutcome::failed_before_start(
                    e.failure_kind(),
                    crate::migration::error_chain(&e),
                );
                // The real time it took to fail (a destination that never answers the
                // handshake costs the whole timeout), not 0.
                outcome.elapsed_ms = connect_start.elapsed().as_millis() as u64;
                (
                    outcome,
                    SyncTiming::default(),
                    LinkStats::default(),
                    0,
                    HostCpu::default(),
                )
            }
            Ok(mut link) => {
                link.set_verify(opts.verify);
                link.set_cancel(cancel.clone());
                let mut source = KvmSource::new(&mut machine);
                if let Some(gfn) = opts.drop_dirty_gfn {
                    source.inject_dropped_dirty_page(gfn);
                }
                let mut clock = MonotonicClock::new(cancel.clone());
                // A stalled destination cannot hold the source past the time limit: the link
                // gives up a moment after it, and the core then calls the run not-converged.
                let limit = Duration::from_millis(config.autoconv.time_limit_ms);
                link.set_deadline(Instant::now().checked_add(limit + TIME_LIMIT_GRACE));
                let mark = CpuMark::now(source.machine(), dest_thread);
                let outcome = migrate(
                    config,
                    &mut clock,
                    &mut source,
                    &mut link,
                    &mut Tee {
                        timeline: &mut timeline,
                        gate: &mut *gate,
                    },
                    cancel,
                );
                let host_cpu = mark.until_now(source.machine(), dest_thread);
                let logged = source.dirty_logged_pages();
                (
                    outcome,
                    source.sync_timing(),
                    link.stats(),
                    logged,
                    host_cpu,
                )
            }
        };
    gate.ended(&machine, &outcome);
    let activity = GuestActivity {
        workload_pages_written: outcome.guest_pages_written,
        dirty_logged_pages,
        serial_bytes: machine.serial_bytes() - serial_at_start,
    };

    let source_final = machine.counters();
    let completed = outcome.status == MigrationStatus::Completed;
    let verification_failed = matches!(outcome.failure, Some(FailureKind::MemoryMismatch { .. }));
    let memory_verified = if completed {
        Some(true)
    } else if verification_failed {
        Some(false)
    } else {
        None
    };
    let source_throttle_after_pct = machine_throttle(&machine);
    // COMMIT sent and not confirmed: the core left the source stopped (it may run there).
    let source_paused = link_stats.commit_unconfirmed;
    let source_after = if completed || source_paused {
        None
    } else {
        // The source must run on: watch it (uncancellable short watch so a Ctrl-C still shows
        // that the guest survived), once a throttle sleep in progress (up to 990 ms at 99%;
        // switching the throttle off does not cut it short, as in QEMU) is over.
        machine.wait_throttle_idle(Duration::from_secs(2));
        Some(watch(&machine, opts.after_ms.max(200), &CancelToken::new()))
    };
    let source_serial_bytes = machine.serial_bytes();
    let source_serial = machine.serial_output();
    // Stop the device so its count is final.
    let _ = machine.pause();
    let dma_pages_written = machine.dma_pages_written();
    let source_vcpu_failures = machine.failures();
    let warnings = run_warnings(&activity, idle_image, &source_vcpu_failures);
    let vcpus = machine.vcpu_count();
    let ram_bytes = machine.ram().bytes();
    drop(machine);

    let destination = match local {
        None => None,
        Some((handle, _resumed)) => {
            if !completed {
                // Unblock a destination still waiting for a connection.
                cancel_local_destination(addr);
            }
            handle.join().ok()
        }
    };

    Ok(Some(RunReport {
        outcome,
        config: request.config.clone(),
        timeline,
        memory_verified,
        before,
        source_final,
        source_after,
        source_throttle_after_pct,
        source_paused,
        destination,
        sync_timing,
        link: link_stats,
        ram_bytes,
        vcpus,
        source_serial_bytes,
        image,
        dma: opts.dma,
        dma_pages_written,
        source_serial,
        activity,
        host_cpu,
        source_vcpu_failures,
        warnings,
    }))
}

/// CPU clocks at the start of a migration, to measure [`HostCpu`] over it.
struct CpuMark {
    at: Instant,
    process_ns: u64,
    this_thread_ns: u64,
    vcpus_ns: u64,
    timer_ns: u64,
    destination_ns: u64,
}

impl CpuMark {
    fn now(m: &Machine, destination: Option<&JoinHandle<DestinationReport>>) -> Self {
        Self {
            at: Instant::now(),
            process_ns: host_cpu::process_ns(),
            this_thread_ns: host_cpu::this_thread_ns(),
            vcpus_ns: m.vcpu_cpu_ns(),
            timer_ns: m.timer_cpu_ns(),
            destination_ns: destination_ns(destination),
        }
    }

    fn until_now(
        &self,
        m: &Machine,
        destination: Option<&JoinHandle<DestinationReport>>,
    ) -> HostCpu {
        let ms = |now: u64, then: u64| now.saturating_sub(then) as f64 / 1e6;
        HostCpu {
            wall_ms: self.at.elapsed().as_secs_f64() * 1e3,
            process_ms: ms(host_cpu::process_ns(), self.process_ns),
            migration_thread_ms: ms(host_cpu::this_thread_ns(), self.this_thread_ns),
            source_vcpus_ms: ms(m.vcpu_cpu_ns(), self.vcpus_ns),
            throttle_timer_ms: ms(m.timer_cpu_ns(), self.timer_ns),
            destination_thread_ms: ms(destination_ns(destination), self.destination_ns),
        }
    }
}

/// CPU of the local destination's thread so far (0 once it has ended: its clock is gone).
fn destination_ns(thread: Option<&JoinHandle<DestinationReport>>) -> u64 {
    use std::os::unix::thread::JoinHandleExt;
    let Some(h) = thread.filter(|h| !h.is_finished()) else {
        return 0;
    };
    // SAFETY: the thread is not joined (we hold its handle) and was running just above; a
    // destination ends only after the migration it serves, which is still going on here.
    unsafe { host_cpu::thread_ns(h.as_pthread_t()) }.unwrap_or(0)
}

/// Non-zero data in every page from 4 MiB up (the guest has not started yet).
fn prefill(machine: &Machine) {
    let ram = machine.ram();
    let mut page = vec![0u8; 4096];
    for gfn in (crate::guest_image::layout::WSS_BASE_GPA / 4096)..ram.pages() {
        page[..8].copy_from_slice(&gfn.to_le_bytes());
        page[4088..].copy_from_slice(&(!gfn).to_le_bytes());
        ram.write(gfn * 4096, &page);
    }
    ram.reset_host_dirty();
}

fn machine_throttle(m: &Machine) -> u32 {
    m.throttle_pct()
}

/// A local destination that never got a stream waits in accept(): connect and hang up so it
/// sees a closed connection and ends.
fn cancel_local_destination(addr: SocketAddr) {
    let _ = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200));
}
