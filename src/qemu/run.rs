//! `run --qemu`: a source and an `-incoming defer` destination `qemu-system-x86_64
//! -enable-kvm` on this host, driven over QMP: parameters set, the guest's workload awaited
//! (its COM1 markers), `migrate`, `query-migrate` every 100 ms into a [`MigrationRecorder`],
//! `migrate_cancel` at `autoconv.time_limit_s`, then the guest watched on whichever side runs
//! it. QEMU runs its own migration algorithm here; autoconv only drives and records it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::process::{find_binary, ProcessError, QemuProcess, RunDir};
use super::qmp::{MigrationInfo, QemuVersion, QmpClient, QmpError};
use super::recorder::MigrationRecorder;
use super::steer::{params_from_qemu, Steer, SteerAction, SteerError};
use crate::guest_image::{InfoBlock, Pattern};
use crate::kvm::host_cpu;
use crate::migration::{CancelToken, MigrationConfig, MigrationOutcome, MigrationStatus, Timeline};

/// How long a `completed` reply without its figures is asked again.
pub const SETTLE_FIGURES: Duration = Duration::from_secs(1);

/// How often `query-migrate` is polled (as the shared reference trace was taken).
pub const POLL_MS: u64 = 100;
/// How long an autoconv image may take to write its first COM1 marker under QEMU (its 32-bit
/// multiboot path runs emulated CPL0 code here: 4-15 s when the host is idle).
pub const BOOT_TIMEOUT_MS: u64 = 180_000;
/// How long another kernel gets to write its first COM1 byte before it is taken for a guest
/// that writes none (then it runs for --warmup only).
pub const FOREIGN_MARKER_WAIT_MS: u64 = 30_000;
const QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// What `run --qemu` needs.
#[derive(Clone, Debug)]
pub struct QemuRunOptions {
    /// The QEMU binary (a path or a name on PATH).
    pub binary: String,
    /// The guest kernel (multiboot v1), passed with `-kernel`.
    pub image: PathBuf,
    /// Guest memory in bytes (a multiple of 1 MiB).
    pub mem_bytes: u64,
    /// vCPUs (0: as many as the image was built for, else 1).
    pub vcpus: u32,
    /// Validated settings (QEMU parameters and autoconv's).
    pub config: MigrationConfig,
    /// QEMU parameter names the user set (canonical): sent even if this QEMU lacks them, so
    /// QEMU itself refuses them.
    pub user_set: Vec<String>,
    /// The `autoconv.qemu_version` the user set, if any (must match QEMU's).
    pub user_qemu_version: Option<String>,
    /// QEMU settings autoconv does not model (`multifd-channels`, `xbzrle`, ...), handed to
    /// both QEMUs as given: QEMU runs its own algorithm, so they need no model here.
    pub passthrough: Vec<PassThrough>,
    /// How long the guest runs (after its first marker, if it writes markers) before `migrate`.
    pub warmup_ms: u64,
    /// How long to watch the guest after the migration.
    pub after_ms: u64,
}

/// A QEMU migration setting passed to QEMU under its QMP name, unmodelled by autoconv.
#[derive(Clone, Debug, PartialEq)]
pub struct PassThrough {
    /// Its QMP name.
    pub name: String,
    /// The value as QMP takes it (a boolean, an integer or a string).
    pub value: Value,
    /// A capability (`migrate-set-capabilities`) rather than a parameter.
    pub capability: bool,
}

impl PassThrough {
    /// `name` set to the command-line text `value`: `on`/`off`/`true`/`false` become booleans,
    /// digits an integer, anything else a string (QEMU says if the type is wrong).
    pub fn new(name: &str, value: &str, capability: bool) -> PassThrough {
        PassThrough {
            name: name.to_string(),
            value: json_value(value.trim().trim_matches('"')),
            capability,
        }
    }
}

/// Failures before the migration started (exit 2).
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum QemuRunError {
    /// {0}
    Process(#[from] ProcessError),
    /// {role} QEMU: {error}
    Qmp {
        /// "source" or "destination".
        role: &'static str,
        /// What went wrong.
        error: QmpError,
    },
    /// {0}
    Image(#[from] crate::kvm::ImageError),
    /// --mem {mem_bytes} bytes is not a whole number of MiB (QEMU's -m takes MiB)
    Mem {
        /// What was given.
        mem_bytes: u64,
    },
    /// autoconv.qemu_version={set} disagrees with the QEMU being run ({actual}); drop the --set,
    /// the version comes from query-version
    VersionMismatch {
        /// What the user set.
        set: String,
        /// What QEMU says.
        actual: String,
    },
    /// QEMU {version} is older than the oldest release autoconv models (7.2)
    UnknownVersion {
        /// QEMU's version.
        version: String,
    },
    /// the guest wrote no COM1 marker within {timeout_ms} ms of starting under QEMU (an autoconv
    /// image writes one per sweep)
    NoMarkers {
        /// How long we waited.
        timeout_ms: u64,
    },
    /// interrupted before the migration started
    Interrupted,
    /// {0}
    Steer(#[from] SteerError),
}

/// The guest's progress as its COM1 markers show it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Progress {
    /// Markers counted over the interval.
    pub markers: u64,
    /// Page writes per second they mean (0 if unknown).
    pub pages_written_per_s: f64,
    /// The interval (ms).
    pub interval_ms: u64,
}

/// What a `run --qemu` produced.
#[derive(Debug)]
pub struct QemuRunReport {
    /// QEMU's version (`query-version` of the source).
    pub qemu_version: QemuVersion,
    /// The QEMU binary run.
    pub binary: PathBuf,
    /// The QEMU command line of the source (without the QMP and serial options).
    pub source_args: Vec<String>,
    /// The settings actually used (autoconv.qemu_version set from QEMU's).
    pub config: MigrationConfig,
    /// `query-migrate-parameters` and `query-migrate-capabilities` after setting them.
    pub qemu_parameters: Value,
    /// The unmodelled settings handed to QEMU.
    pub passthrough: Vec<PassThrough>,
    /// vCPUs.
    pub vcpus: u32,
    /// The image's own description, if it is an autoconv image.
    pub image: Option<String>,
    /// Guest progress during the warmup.
    pub before: Progress,
    /// Samples and events.
    pub timeline: Timeline,
    /// How it ended.
    pub outcome: MigrationOutcome,
    /// The last `query-migrate` reply, every figure under QEMU's name.
    pub final_query_migrate: Map<String, Value>,
    /// Every poll as `--from-log` lines.
    pub polls_jsonl: String,
    /// The source guest's COM1 output.
    pub source_serial: Vec<u8>,
    /// COM1 bytes the source guest wrote during the migration (its only visible progress).
    pub serial_bytes_during: u64,
    /// Which side ran the guest after the migration ("destination" or "source").
    pub after_side: &'static str,
    /// Guest progress after the migration, on that side.
    pub after: Progress,
    /// Whether the destination was running the guest after a completed migration.
    pub destination_running: Option<bool>,
    /// With `autoconv.policy=predictive`: what autoconv set live to steer QEMU's throttle.
    pub steer_actions: Vec<SteerAction>,
    /// Why steering stopped early, if it did.
    pub steer_stopped: Option<String>,
    /// Host CPU of both QEMU processes' threads from `migrate` to the migration's end.
    pub host_cpu: QemuHostCpu,
}

/// Host CPU each QEMU thread used during the migration (from `/proc/PID/task/*/stat`, in
/// clock ticks, sampled at each 100 ms poll): on a 2-core host the vCPU, QEMU's migration thread and the destination share
/// the cores, so this is the footprint to set beside `run --kvm`'s.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct QemuHostCpu {
    /// Wall-clock time measured over (ms).
    pub wall_ms: f64,
    /// The source's threads by name (`CPU 0/KVM`, `live_migration`, ...): ms of CPU.
    pub source: Vec<(String, f64)>,
    /// The destination's threads by name: ms of CPU.
    pub destination: Vec<(String, f64)>,
}

impl QemuHostCpu {
    /// One line for the terminal: each thread's share of one core.
    pub fn summary_line(&self) -> String {
        let side = |threads: &[(String, f64)]| {
            let total: f64 = threads.iter().map(|(_, ms)| ms).sum();
            let mut parts = vec![format!("{:.0}%", self.pct(total))];
            parts.extend(
                threads
                    .iter()
                    .filter(|(_, ms)| self.pct(*ms) >= 0.5)
                    .map(|(n, ms)| format!("{n} {:.0}%", self.pct(*ms))),
            );
            parts.join(", ")
        };
        format!(
            "host CPU over {:.0} ms (% of one core): source QEMU {}; destination QEMU {}",
            self.wall_ms,
            side(&self.source),
            side(&self.destination)
        )
    }

    fn pct(&self, ms: f64) -> f64 {
        if self.wall_ms > 0.0 {
            100.0 * ms / self.wall_ms
        } else {
            0.0
        }
    }
}

/// Page writes one COM1 marker stands for in an autoconv image (each vCPU writes one after
/// every `marker_every` sweeps of its slice of the working set); None for other kernels.
pub fn pages_per_marker(info: Option<&InfoBlock>) -> Option<f64> {
    let info = info?;
    if info.marker_every_sweeps == 0 {
        return None;
    }
    if info.pattern == Pattern::Idle {
        return Some(0.0);
    }
    Some(
        f64::from(info.marker_every_sweeps) * (info.wss_bytes / 4096) as f64
            / f64::from(info.vcpus.max(1)),
    )
}

fn qmp_err(role: &'static str) -> impl Fn(QmpError) -> QemuRunError {
    move |error| QemuRunError::Qmp { role, error }
}

/// Start QEMU, connect QMP.
fn start(
    role: &'static str,
    binary: &Path,
    args: &[String],
    dir: &Path,
) -> Result<(QemuProcess, QmpClient), QemuRunError> {
    let mut p = QemuProcess::spawn(role, binary, args, dir)?;
    p.wait_for_socket(Duration::from_secs(30))?;
    let c = match QmpClient::connect(&p.qmp_path, QMP_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            // A QEMU that exits at once (bad option, no KVM) says why on stderr.
            std::thread::sleep(Duration::from_millis(200));
            p.check_alive("at start")?;
            return Err(qmp_err(role)(e));
        }
    };
    Ok((p, c))
}

fn json_value(v: &str) -> Value {
    match v {
        "on" | "true" => Value::Bool(true),
        "off" | "false" => Value::Bool(false),
        _ => v
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(v)),
    }
}

/// Send the pass-through capabilities, then parameters; QEMU's refusal is returned as is.
/// Both sides get them: QEMU needs some on the destination too (`multifd` and its channels,
/// `postcopy-ram`, `return-path`), and the others do no harm there.
fn set_passthrough(qmp: &mut QmpClient, passthrough: &[PassThrough]) -> Result<(), QmpError> {
    let caps: Vec<Value> = passthrough
        .iter()
        .filter(|p| p.capability)
        .map(|p| serde_json::json!({"capability": p.name, "state": p.value}))
        .collect();
    if !caps.is_empty() {
        qmp.execute(
            "migrate-set-capabilities",
            Some(serde_json::json!({ "capabilities": caps })),
        )?;
    }
    let params: Map<String, Value> = passthrough
        .iter()
        .filter(|p| !p.capability)
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    if !params.is_empty() {
        qmp.execute("migrate-set-parameters", Some(Value::Object(params)))?;
    }
    Ok(())
}

/// Set auto-converge and the parameters on the source, then the pass-through settings; QEMU's
/// refusal is returned as is.
fn set_parameters(
    qmp: &mut QmpClient,
    config: &MigrationConfig,
    user_set: &[String],
    passthrough: &[PassThrough],
) -> Result<Value, QmpError> {
    let have = qmp.execute("query-migrate-parameters", None)?;
    let mut params = Map::new();
    for (name, value) in config.params.to_pairs() {
        if name == "auto-converge" {
            continue;
        }
        // A parameter this QEMU lacks is left out unless the user asked for it by name
        // (then QEMU's own "Parameter '...' is unexpected" is the answer).
        if have.get(name).is_some() || user_set.iter().any(|u| u == name) {
            params.insert(name.to_string(), json_value(&value));
        }
    }
    qmp.execute(
        "migrate-set-capabilities",
        Some(serde_json::json!({"capabilities": [
            {"capability": "auto-converge", "state": config.params.auto_converge}
        ]})),
    )?;
    qmp.execute("migrate-set-parameters", Some(Value::Object(params)))?;
    set_passthrough(qmp, passthrough)?;
    let parameters = qmp.execute("query-migrate-parameters", None)?;
    let caps = qmp.execute("query-migrate-capabilities", None)?;
    let enabled: Vec<Value> = caps
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c.get("state") == Some(&Value::Bool(true)))
                .filter_map(|c| c.get("capability").cloned())
                .collect()
        })
        .unwrap_or_default();
    Ok(serde_json::json!({"parameters": parameters, "capabilities_on": enabled}))
}

fn free_tcp_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Watch the serial output of `p` for `ms`, returning the marker progress.
fn watch(p: &QemuProcess, ms: u64, per_marker: Option<f64>, cancel: &CancelToken) -> Progress {
    let m0 = p.serial_len();
    let t0 = Instant::now();
    cancel.wait_timeout(Duration::from_millis(ms));
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let markers = p.serial_len().saturating_sub(m0);
    Progress {
        markers,
        pages_written_per_s: per_marker.map_or(0.0, |k| markers as f64 * k / secs),
        interval_ms: (secs * 1000.0) as u64,
    }
}

/// Run one migration under real QEMU. Errors before `migrate` are returned (exit 2); a
/// migration that fails, is cancelled or does not converge is a report. `say` gets one line
/// at each step (QEMU started, guest running, migration started).
pub fn run_migration(
    opts: &QemuRunOptions,
    cancel: &CancelToken,
    say: &mut dyn FnMut(&str),
) -> Result<QemuRunReport, QemuRunError> {
    let binary = find_binary(&opts.binary)?;
    if let Some(why) = crate::kvm::unavailable_reason() {
        return Err(ProcessError::Exited {
            role: "source",
            status: "not started".into(),
            when: "before starting (-enable-kvm needs /dev/kvm)".into(),
            stderr: why,
        }
        .into());
    }
    if opts.mem_bytes % (1 << 20) != 0 || opts.mem_bytes == 0 {
        return Err(QemuRunError::Mem {
            mem_bytes: opts.mem_bytes,
        });
    }
    let plan = crate::kvm::LoadPlan::from_file(&opts.image, opts.mem_bytes)?;
    let info = plan.info.clone();
    let vcpus = if opts.vcpus > 0 {
        opts.vcpus
    } else {
        info.as_ref().map_or(1, |i| i.vcpus)
    };
    let per_marker = pages_per_marker(info.as_ref());
    let image = std::fs::canonicalize(&opts.image).unwrap_or_else(|_| opts.image.clone());
    let args: Vec<String> = [
        "-enable-kvm",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-m",
        &format!("{}M", opts.mem_bytes >> 20),
        "-smp",
        &vcpus.to_string(),
        "-kernel",
        &image.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = RunDir::new()?;
    // The source starts paused (-S) and runs only once QEMU has taken every parameter.
    // debug-threads names QEMU's threads (`CPU 0/KVM`, `live_migration`, ...) for the host
    // CPU per thread; without it every thread is `qemu-system-x86`.
    let mut src_args = args.clone();
    src_args.extend(["-name", "source,debug-threads=on", "-S"].map(String::from));
    let (mut src, mut sq) = start("source", &binary, &src_args, dir.path())?;
    let mut dst_args = args.clone();
    dst_args.extend(
        [
            "-name",
            "destination,debug-threads=on",
            "-incoming",
            "defer",
        ]
        .map(String::from),
    );
    let (mut dst, mut dq) = start("destination", &binary, &dst_args, dir.path())?;

    let version = sq.query_version().map_err(qmp_err("source"))?;
    let mut config = opts.config.clone();
    let qv = crate::migration::QemuVersion::parse(&version.major_minor()).ok_or_else(|| {
        QemuRunError::UnknownVersion {
            version: version.to_string(),
        }
    })?;
    if let Some(set) = &opts.user_qemu_version {
        if crate::migration::QemuVersion::parse(set) != Some(qv) {
            return Err(QemuRunError::VersionMismatch {
                set: set.clone(),
                actual: version.to_string(),
            });
        }
    }
    config.autoconv.qemu_version = qv;
    let qemu_parameters = set_parameters(&mut sq, &config, &opts.user_set, &opts.passthrough)
        .map_err(qmp_err("source"))?;
    set_passthrough(&mut dq, &opts.passthrough).map_err(qmp_err("destination"))?;
    // autoconv's predictive policy steers QEMU's own staircase (`record --steer` does the same
    // on a QEMU someone else runs).
    let mut steerer = match config.autoconv.policy {
        crate::migration::Policy::Qemu => None,
        crate::migration::Policy::Predictive => Some(Steer::new(
            params_from_qemu(&qemu_parameters["parameters"], config.params.auto_converge)?,
            config.autoconv.profile.as_ref().map(|p| &p.curve),
        )),
    };
    let mut steer_stopped = None;
    sq.execute("cont", None).map_err(qmp_err("source"))?;
    say(&format!(
        "QEMU {version}: source pid {}, destination pid {} (-incoming defer); parameters set",
        src.pid(),
        dst.pid()
    ));

    // Wait for the workload (its first COM1 marker), then the warmup. An autoconv image
    // must write one; another kernel may not (then it runs for --warmup only).
    let t_boot = Instant::now();
    let wait_ms = if per_marker.is_some() {
        BOOT_TIMEOUT_MS
    } else {
        FOREIGN_MARKER_WAIT_MS
    };
    while src.serial_len() == 0 && t_boot.elapsed() < Duration::from_millis(wait_ms) {
        if cancel.is_cancelled() {
            return Err(QemuRunError::Interrupted);
        }
        src.check_alive("while the guest booted")?;
        std::thread::sleep(Duration::from_millis(50));
    }
    if src.serial_len() > 0 {
        say(&format!(
            "guest running: first COM1 output {} ms after start; warming up for {} ms",
            t_boot.elapsed().as_millis(),
            opts.warmup_ms
        ));
    } else if per_marker.is_some() {
        return Err(QemuRunError::NoMarkers {
            timeout_ms: BOOT_TIMEOUT_MS,
        });
    } else {
        say(&format!(
            "no COM1 output within {wait_ms} ms: running the guest for --warmup {} ms instead",
            opts.warmup_ms
        ));
    }
    let before = watch(&src, opts.warmup_ms, per_marker, cancel);
    if cancel.is_cancelled() {
        return Err(QemuRunError::Interrupted);
    }
    src.check_alive("while the guest warmed up")?;
    dst.check_alive("while waiting for the migration")?;

    let uri = format!(
        "tcp:127.0.0.1:{}",
        free_tcp_port().map_err(|e| {
            qmp_err("destination")(QmpError::Io {
                path: dir.path().to_path_buf(),
                error: e,
            })
        })?
    );
    dq.execute("migrate-incoming", Some(serde_json::json!({"uri": uri})))
        .map_err(qmp_err("destination"))?;
    let serial_at_migrate = src.serial_len();
    let mut cpu_watch = (
        host_cpu::TaskWatch::start(src.pid()),
        host_cpu::TaskWatch::start(dst.pid()),
    );
    let t0 = Instant::now();
    sq.execute("migrate", Some(serde_json::json!({"uri": uri})))
        .map_err(qmp_err("source"))?;
    say(&format!("migrating to {uri}"));

    let guest_pages = |p: &QemuProcess| per_marker.map(|k| (p.serial_len() as f64 * k) as u64);
    let mut rec = MigrationRecorder::new(vcpus);
    let mut override_status = None;
    let mut reason = None;
    let mut cancel_sent_ms: Option<u64> = None;
    let mut stop_ts = None;
    let mut dest_gone_ms: Option<u64> = None;
    loop {
        let obs_ms = t0.elapsed().as_millis() as u64;
        let mut polled = sq.query_migrate();
        // QEMU marks a migration completed a moment before it fills in total-time and
        // downtime: ask again until it has (bounded), so short migrations keep their figures.
        let settle_by = Instant::now() + SETTLE_FIGURES;
        while polled
            .as_ref()
            .is_ok_and(MigrationInfo::completed_before_its_figures)
            && Instant::now() < settle_by
        {
            std::thread::sleep(Duration::from_millis(10));
            polled = sq.query_migrate();
        }
        for e in sq.take_events() {
            if e.event == "STOP" {
                stop_ts = e.timestamp_s;
            }
        }
        let info: MigrationInfo = match polled {
            Ok(i) => i,
            Err(e) => {
                // The source is gone or its QMP broke: the migration failed.
                std::thread::sleep(Duration::from_millis(100));
                override_status = Some(MigrationStatus::Failed);
                reason = Some(match src.check_alive("during the migration") {
                    Err(dead) => dead.to_string(),
                    Ok(()) => format!("source QEMU: {e}"),
                });
                break;
            }
        };
        cpu_watch.0.sample();
        cpu_watch.1.sample();
        let t_mig = info.total_time_ms.unwrap_or(obs_ms);
        if rec.push(obs_ms, &info, guest_pages(&src)) {
            break;
        }
        if let Some(s) = steerer.as_mut().filter(|_| steer_stopped.is_none()) {
            if let Some(set) = s.on_poll(&info) {
                let text = set.to_string();
                match sq.execute("migrate-set-parameters", Some(set)) {
                    Ok(_) => say(&format!("steer (autoconv.policy=predictive): {text}")),
                    Err(e) => steer_stopped = Some(format!("steering stopped: {e}")),
                }
            }
        }
        if cancel_sent_ms.is_none() {
            let why = if cancel.is_cancelled() {
                Some((MigrationStatus::Cancelled, "cancelled (Ctrl-C)".to_string()))
            } else if t_mig >= config.autoconv.time_limit_ms {
                Some((
                    MigrationStatus::NotConverged,
                    format!(
                        "did not converge within autoconv.time_limit_s={}; cancelled with migrate_cancel",
                        config.autoconv.time_limit_ms as f64 / 1000.0
                    ),
                ))
            } else {
                None
            };
            if let Some((status, why)) = why {
                let _ = sq.execute("migrate_cancel", None);
                cancel_sent_ms = Some(obs_ms);
                override_status = Some(status);
                reason = Some(why);
            }
        } else if cancel_sent_ms.is_some_and(|c| obs_ms > c + 10_000) {
            break; // QEMU did not finish cancelling; report what it showed.
        }
        if let Err(dead) = dst.check_alive("during the migration") {
            let gone = *dest_gone_ms.get_or_insert(obs_ms);
            if reason.is_none() {
                reason = Some(dead.to_string());
            }
            if obs_ms > gone + 5_000 && cancel_sent_ms.is_none() {
                let _ = sq.execute("migrate_cancel", None);
                cancel_sent_ms = Some(obs_ms);
                override_status = Some(MigrationStatus::Failed);
            }
        }
        let next = Duration::from_millis(obs_ms / POLL_MS * POLL_MS + POLL_MS);
        std::thread::sleep(next.saturating_sub(t0.elapsed()));
    }

    cpu_watch.0.sample();
    cpu_watch.1.sample();
    let host_cpu = QemuHostCpu {
        wall_ms: t0.elapsed().as_secs_f64() * 1e3,
        source: cpu_watch.0.cpu_ms_by_name(),
        destination: cpu_watch.1.cpu_ms_by_name(),
    };
    let serial_bytes_during = src.serial_len().saturating_sub(serial_at_migrate);
    let final_query_migrate = rec.last().map(|l| l.raw.clone()).unwrap_or_default();
    let completed = rec
        .last()
        .is_some_and(|l| l.status == "completed" && override_status.is_none());
    // The destination resumes the guest after the source completed: wait for it (2 s).
    let mut destination_running = None;
    let mut resume_ts = None;
    if completed {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            let running = dq
                .execute("query-status", None)
                .ok()
                .and_then(|s| s.get("running").and_then(Value::as_bool));
            for e in dq.take_events() {
                if e.event == "RESUME" {
                    resume_ts = e.timestamp_s;
                }
            }
            destination_running = running;
            if running == Some(true) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let guest_pause_ms = match (stop_ts, resume_ts) {
        (Some(s), Some(r)) if r >= s => Some(((r - s) * 1000.0).round() as u64),
        _ => None,
    };
    let polls_jsonl = rec.polls_jsonl();
    let (timeline, mut outcome) = rec.finish(override_status, reason, guest_pause_ms);
    if completed && destination_running != Some(true) {
        outcome.reason =
            Some("QEMU completed, but the destination did not resume the guest within 2 s".into());
    }
    let (after_side, after_proc) = if completed {
        ("destination", &mut dst)
    } else {
        ("source", &mut src)
    };
    let after = if after_proc.exit_status().is_some() {
        Progress::default()
    } else {
        watch(after_proc, opts.after_ms, per_marker, cancel)
    };
    let source_serial = src.serial();
    src.kill();
    dst.kill();
    Ok(QemuRunReport {
        qemu_version: version,
        binary,
        source_args: args,
        config,
        qemu_parameters,
        passthrough: opts.passthrough.clone(),
        vcpus,
        image: info.map(|i| i.to_string()),
        before,
        timeline,
        outcome,
        final_query_migrate,
        polls_jsonl,
        source_serial,
        serial_bytes_during,
        after_side,
        after,
        destination_running,
        steer_actions: steerer.map(|s| s.actions).unwrap_or_default(),
        steer_stopped,
        host_cpu,
    })
}
