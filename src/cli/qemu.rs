//! `autoconv run --qemu IMAGE` and `autoconv record`: real QEMU, driven or watched over QMP,
//! written to the same run files as `sim` and `run --kvm`.

use super::out::{errln, outln};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use super::ctrl_c::ctrl_c_token;
use super::exit;
use super::run_kvm::KvmRunArgs;
use super::values::parse_duration_ms;
use autoconv::migration::vocabulary;
use autoconv::migration::{MigrationOutcome, MigrationParameters, Timeline};
use autoconv::qemu::record::{self, QmpSource, Recording, VirshSource};
use autoconv::qemu::run::{run_migration, PassThrough, QemuRunOptions, QemuRunReport};
use autoconv::report::Summary;
use autoconv::units::format_bytes;

/// Record a migration that real QEMU runs, into timeseries.csv, events.csv and summary.json.
///
/// Attaches to a running QEMU (its QMP socket, or a libvirt domain through virsh) and polls
/// `query-migrate` every 100 ms until the migration ends; or reads such replies from a log.
/// Read-only: it never changes a parameter or starts a migration unless --migrate or --steer
/// is given.
/// QEMU serves one client per -qmp socket: give your VM a second one for autoconv, e.g.
/// `-qmp unix:/run/vm-autoconv.sock,server=on,wait=off`.
///
/// Examples:
///   autoconv record --qmp /run/vm-autoconv.sock --out runs/prod-1
///   autoconv record --qmp /run/vm-autoconv.sock --migrate tcp:10.0.0.2:4444 --out runs/p2
///   autoconv record --virsh myvm --out runs/myvm
///   autoconv record --from-log query-migrate.jsonl --out runs/replayed
///   autoconv record --qmp /run/vm-autoconv.sock --steer predictive --out runs/steered
#[derive(Args, Debug, Clone)]
#[command(
    verbatim_doc_comment,
    group(clap::ArgGroup::new("from").required(true).args(["qmp", "from_log", "virsh"]))
)]
pub struct RecordArgs {
    /// A QMP socket (unix) of the QEMU to watch.
    #[arg(long, value_name = "SOCKET")]
    pub qmp: Option<PathBuf>,
    /// A libvirt domain: polls through `virsh qemu-monitor-command DOMAIN`.
    #[arg(long, value_name = "DOMAIN")]
    pub virsh: Option<String>,
    /// A log of query-migrate replies, one JSON object per line (`{"return": {...}}`, with an
    /// optional "t": seconds since the start; without it, lines are 100 ms apart).
    #[arg(long, value_name = "FILE")]
    pub from_log: Option<PathBuf>,
    /// Start the migration to this URI (QMP `migrate`) instead of waiting for someone else to.
    #[arg(long, value_name = "URI", conflicts_with = "from_log")]
    pub migrate: Option<String>,
    /// How long to wait for a migration to start.
    #[arg(long, default_value = "10min", value_parser = parse_duration_ms, conflicts_with = "from_log")]
    pub wait: u64,
    /// vCPUs of the guest, for the vCPU-seconds the throttle took (--from-log only; a live
    /// QEMU is asked with query-cpus-fast).
    #[arg(long, default_value_t = 1, requires = "from_log")]
    pub vcpus: u32,
    /// Write timeseries.csv, events.csv, summary.json and query-migrate.jsonl (every poll, in
    /// the --from-log format) there.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Steer QEMU's auto-converge with autoconv's policy (not QEMU's): before each of QEMU's
    /// throttle steps, set cpu-throttle-initial / cpu-throttle-increment live
    /// (migrate-set-parameters) so the step lands where the policy wants; the values you had
    /// are set back when the migration ends.
    #[arg(long, value_name = "POLICY", value_parser = ["predictive"], conflicts_with = "from_log")]
    pub steer: Option<String>,
    /// The guest's profile CSV (from `autoconv profile`) for --steer's first choice.
    #[arg(long, value_name = "PROFILE.csv", requires = "steer")]
    pub profile: Option<PathBuf>,
}

/// The name of a QEMU parameter a `--set` names, if it is one (canonical spelling).
fn set_parameter_name(set: &str) -> Option<String> {
    let name = set.split_once('=').map_or(set, |(n, _)| n).trim();
    let name = name.strip_prefix("migration.").unwrap_or(name);
    MigrationParameters::canonical_name(name).map(str::to_string)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "guest".into())
}

/// Splits `--set`s into what autoconv models (checked here) and QEMU's own settings autoconv
/// does not model (`multifd-channels=4`, `xbzrle=on`), which go to QEMU as they are.
fn split_passthrough(sets: &[String]) -> (Vec<String>, Vec<PassThrough>) {
    let mut modelled = Vec::new();
    let mut passthrough = Vec::new();
    for set in sets {
        let (name, value) = set.split_once('=').unwrap_or((set, ""));
        let name = name.trim();
        let name = name.strip_prefix("migration.").unwrap_or(name);
        match vocabulary::unmodelled(name) {
            Some(kind) if set.contains('=') => passthrough.push(PassThrough::new(
                name,
                value,
                kind == vocabulary::Unmodelled::Capability,
            )),
            _ => modelled.push(set.clone()),
        }
    }
    (modelled, passthrough)
}

/// Handler of `autoconv run --qemu IMAGE`: exit 0 if QEMU's migration completed, 1 if not.
pub fn run_qemu(args: &KvmRunArgs, image: &Path) -> anyhow::Result<u8> {
    let (modelled, passthrough) = split_passthrough(&args.set);
    let config = autoconv::scenario::migration_config_from_sets(&modelled)?;
    let user_qemu_version = args.set.iter().rev().find_map(|s| {
        let (n, v) = s.split_once('=')?;
        (n.trim() == "autoconv.qemu_version").then(|| v.trim().trim_matches('"').to_string())
    });
    let opts = QemuRunOptions {
        binary: args
            .qemu_binary
            .clone()
            .unwrap_or_else(|| "qemu-system-x86_64".into()),
        image: image.to_path_buf(),
        mem_bytes: args.guest.mem,
        vcpus: args.guest.vcpus.unwrap_or(0),
        config,
        user_set: modelled
            .iter()
            .filter_map(|s| set_parameter_name(s))
            .collect(),
        passthrough,
        user_qemu_version,
        warmup_ms: args.warmup,
        after_ms: args.after,
    };
    let (cancel, done) = ctrl_c_token();
    let report = run_migration(&opts, &cancel, &mut |line| {
        outln!("{line}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
    });
    done.store(true, Ordering::SeqCst);
    let report = report?;
    print_run(&report);
    if let Some(dir) = &args.out {
        let summary = run_summary(&report, image, args);
        autoconv::report::write_run_dir(
            dir,
            &report.timeline,
            &summary,
            &[
                ("serial.txt", &report.source_serial),
                ("query-migrate.jsonl", report.polls_jsonl.as_bytes()),
            ],
        )
        .with_context(|| format!("writing results to {}", dir.display()))?;
        outln!(
            "wrote {}/{{timeseries.csv,events.csv,summary.json,serial.txt,query-migrate.jsonl}}",
            dir.display()
        );
    }
    Ok(exit::for_outcome(&report.outcome))
}

fn print_outcome(o: &MigrationOutcome, downtime_limit_ms: Option<u64>) {
    let limit = downtime_limit_ms.map_or(String::new(), |l| format!("limit {l} ms; "));
    outln!(
        "migration {}: {} ms, downtime {} ({}guest paused {} from the source's STOP to the destination's RESUME), {} transferred, {} normal + {} zero pages, {} dirty syncs, throttle steps {:?}",
        o.status,
        o.elapsed_ms,
        o.downtime_ms.map_or("-".to_string(), |d| format!("{d} ms")),
        limit,
        o.guest_pause_ms.map_or("-".to_string(), |d| format!("{d} ms")),
        format_bytes(o.transferred_bytes),
        o.normal_pages,
        o.zero_pages,
        o.dirty_sync_count,
        o.throttle_steps
    );
    if let Some(reason) = &o.reason {
        outln!("reason: {reason}");
    }
}

fn print_run(r: &QemuRunReport) {
    if let Some(img) = &r.image {
        outln!("guest: {img}");
    }
    if let Some(why) = &r.steer_stopped {
        outln!("{why}");
    }
    outln!(
        "QEMU {} ({}), {} vCPU(s)",
        r.qemu_version,
        r.binary.display(),
        r.vcpus
    );
    outln!(
        "before migrating: {:.0} page writes/s ({} COM1 markers in {} ms)",
        r.before.pages_written_per_s,
        r.before.markers,
        r.before.interval_ms
    );
    print_outcome(&r.outcome, Some(r.config.params.downtime_limit));
    outln!("{}", r.host_cpu.summary_line());
    outln!(
        "{} after the migration: {:.0} page writes/s ({} markers in {} ms){}",
        r.after_side,
        r.after.pages_written_per_s,
        r.after.markers,
        r.after.interval_ms,
        match r.destination_running {
            Some(true) => ", destination running",
            Some(false) => ", destination NOT running",
            None => "",
        }
    );
    if let Some(w) = progress_warning(r) {
        errln!("autoconv: warning: {w}");
    }
}

/// The warning for a guest that showed no progress during the migration.
fn progress_warning(r: &QemuRunReport) -> Option<String> {
    (r.serial_bytes_during == 0).then(|| {
        "the guest wrote nothing to COM1 during the migration: under QEMU that is its only visible progress, so these figures may measure no workload".to_string()
    })
}

fn qemu_json(v: Option<&autoconv::qemu::qmp::QemuVersion>) -> Value {
    v.map_or(Value::Null, |v| {
        json!({
            "version": format!("{}.{}.{}", v.major, v.minor, v.micro),
            "package": v.package,
        })
    })
}

fn run_summary(r: &QemuRunReport, image: &Path, args: &KvmRunArgs) -> Summary {
    let mut parameters = autoconv::scenario::migration_settings_json(&r.config);
    if let Some(obj) = parameters.as_object_mut() {
        // Only what this QEMU has (7.2 has no avail-switchover-bandwidth, so it was not sent).
        if let Some(Value::Object(m)) = obj.get_mut("migration") {
            let qemu = &r.qemu_parameters["parameters"];
            m.retain(|k, _| k == "auto-converge" || qemu.get(k).is_some());
        }
        // What QEMU itself reports it ran with, read back after setting.
        obj.insert("qemu".into(), r.qemu_parameters.clone());
        // The settings autoconv does not model, handed to QEMU as given.
        obj.insert(
            "passed_to_qemu".into(),
            Value::Object(
                r.passthrough
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect(),
            ),
        );
        obj.insert(
            "guest".into(),
            json!({
                "image": image.display().to_string(),
                "memory_bytes": args.guest.mem,
                "vcpus": r.vcpus,
                "warmup_ms": args.warmup,
            }),
        );
    }
    let mut summary = Summary::new(&stem(image), None, "qemu", &r.outcome, parameters);
    let before = r.before.pages_written_per_s;
    let during = if r.outcome.elapsed_ms > 0 {
        r.outcome.guest_pages_written as f64 * 1000.0 / r.outcome.elapsed_ms as f64
    } else {
        0.0
    };
    let mut qemu = qemu_json(Some(&r.qemu_version));
    let warnings: Vec<String> = progress_warning(r).into_iter().collect();
    qemu["binary"] = json!(r.binary.display().to_string());
    qemu["args"] = json!(r.source_args);
    let extra = [
        // autoconv's own verdict (not a QEMU figure), as for run --kvm: false = the guest
        // wrote nothing to COM1 during the migration, so these figures may measure no workload.
        ("guest_progress", json!(r.serial_bytes_during > 0)),
        ("warnings", json!(warnings)),
        ("qemu", qemu),
        (
            "last_query_migrate_reply",
            Value::Object(r.final_query_migrate.clone()),
        ),
        (
            "guest",
            json!({
                "image": r.image,
                "write_pages_s_before": before,
                "write_pages_s_during": during,
                "slowdown_pct": if before > 0.0 { 100.0 * (1.0 - during / before) } else { 0.0 },
                "serial_bytes": r.source_serial.len(),
                "serial_bytes_during_migration": r.serial_bytes_during,
                "progress_from": "COM1 markers",
            }),
        ),
        (
            "after",
            json!({
                "side": r.after_side,
                "progress": r.after,
                "destination_running": r.destination_running,
            }),
        ),
    ];
    for (k, v) in extra {
        summary.extra.insert(k.into(), v);
    }
    // Not QEMU figures: autoconv read them from /proc, per QEMU thread name (ms of CPU).
    let by_name = |threads: &[(String, f64)]| {
        Value::Object(
            threads
                .iter()
                .map(|(n, ms)| (n.clone(), json!((ms * 10.0).round() / 10.0)))
                .collect(),
        )
    };
    summary.extra.insert(
        "host_cpu".into(),
        json!({
            "wall_ms": r.host_cpu.wall_ms.round(),
            "source_threads_ms": by_name(&r.host_cpu.source),
            "destination_threads_ms": by_name(&r.host_cpu.destination),
        }),
    );
    if !r.steer_actions.is_empty() || r.steer_stopped.is_some() {
        summary.extra.insert(
            "steer".into(),
            json!({"policy": "predictive", "actions": r.steer_actions, "stopped": r.steer_stopped}),
        );
    }
    summary
}

/// Handler of `autoconv record`.
pub fn record(args: &RecordArgs) -> anyhow::Result<u8> {
    let (name, from, rec) = if let Some(log) = &args.from_log {
        let rec = record::read_log(log, args.vcpus)?;
        (stem(log), format!("log:{}", log.display()), rec)
    } else {
        let steer = match &args.steer {
            None => None,
            Some(_) => Some(record::SteerRequest {
                profile: match &args.profile {
                    None => None,
                    Some(p) => {
                        Some(autoconv::report::profile::Profile::read(p)?.dirty_bytes_curve())
                    }
                },
            }),
        };
        let (cancel, done) = ctrl_c_token();
        let result = if let Some(sock) = &args.qmp {
            let client =
                autoconv::qemu::qmp::QmpClient::connect(sock, std::time::Duration::from_secs(10))?;
            outln!(
                "attached to {} (QEMU {}); {}",
                sock.display(),
                client.version(),
                waiting_text(args)
            );
            let mut src = QmpSource(client);
            record::record_channel(
                &mut src,
                args.migrate.as_deref(),
                args.wait / 1000,
                &cancel,
                steer.as_ref(),
            )
            .map(|r| (stem(sock), format!("qmp:{}", sock.display()), r))
        } else {
            let domain = args.virsh.clone().unwrap_or_default();
            outln!(
                "polling domain {domain} through virsh; {}",
                waiting_text(args)
            );
            let mut src = VirshSource {
                domain: domain.clone(),
                virsh: "virsh".into(),
            };
            record::record_channel(
                &mut src,
                args.migrate.as_deref(),
                args.wait / 1000,
                &cancel,
                steer.as_ref(),
            )
            .map(|r| (domain.clone(), format!("virsh:{domain}"), r))
        };
        done.store(true, Ordering::SeqCst);
        result?
    };
    if let Some(v) = &rec.qemu_version {
        outln!("QEMU {v}");
    }
    outln!("{} polls recorded", rec.timeline.samples.len());
    print_steer(&rec.steer_actions, rec.steer_stopped.as_deref());
    let limit = rec
        .qemu_parameters
        .as_ref()
        .and_then(|p| p["parameters"]["downtime-limit"].as_u64());
    print_outcome(&rec.outcome, limit);
    if let Some(dir) = &args.out {
        let summary = record_summary(&rec, &name, &from);
        write_recording(dir, &rec.timeline, &summary, &rec.polls_jsonl)?;
    }
    Ok(exit::for_outcome(&rec.outcome))
}

fn waiting_text(args: &RecordArgs) -> String {
    match &args.migrate {
        Some(uri) => format!("starting the migration to {uri}"),
        None => "recording the migration that runs there (read-only)".into(),
    }
}

fn record_summary(rec: &Recording, name: &str, from: &str) -> Summary {
    let parameters = json!({ "qemu": rec.qemu_parameters });
    let mut summary = Summary::new(name, None, "qemu", &rec.outcome, parameters);
    summary
        .extra
        .insert("qemu".into(), qemu_json(rec.qemu_version.as_ref()));
    summary.extra.insert(
        "last_query_migrate_reply".into(),
        Value::Object(rec.final_query_migrate.clone()),
    );
    summary.extra.insert("recorded_from".into(), json!(from));
    if !rec.steer_actions.is_empty() || rec.steer_stopped.is_some() {
        summary.extra.insert(
            "steer".into(),
            json!({"policy": "predictive", "actions": rec.steer_actions, "stopped": rec.steer_stopped}),
        );
    }
    summary.extra.insert("vcpus".into(), json!(rec.vcpus));
    summary
}

fn write_recording(
    dir: &Path,
    timeline: &Timeline,
    summary: &Summary,
    polls: &str,
) -> anyhow::Result<()> {
    autoconv::report::write_run_dir(
        dir,
        timeline,
        summary,
        &[("query-migrate.jsonl", polls.as_bytes())],
    )
    .with_context(|| format!("writing results to {}", dir.display()))?;
    outln!(
        "wrote {}/{{timeseries.csv,events.csv,summary.json,query-migrate.jsonl}}",
        dir.display()
    );
    Ok(())
}

/// What `--steer` (or `run --qemu` with the predictive policy) set, one line each.
fn print_steer(actions: &[autoconv::qemu::steer::SteerAction], stopped: Option<&str>) {
    for a in actions {
        outln!(
            "steer (autoconv.policy=predictive): at {} ms set {}={} so QEMU's next throttle step lands at {} %",
            a.t_ms, a.parameter, a.value, a.next_pct
        );
    }
    if let Some(why) = stopped {
        outln!("{why}");
    }
}
