//! Real QEMU in the loop, as a user runs it: `run --qemu`, `record --qmp` of a migration
//! another QMP client starts, `record --from-log`, `record --virsh` (with a stand-in virsh),
//! and bad input: a missing binary, a parameter QEMU refuses, a socket that is not QMP, a
//! malformed reply, a source QEMU killed mid-run, Ctrl-C. No QEMU is ever left behind.
//!
//! Tests that need qemu-system-x86_64 and /dev/kvm skip with a printed reason where they are
//! missing, and fail instead when AUTOCONV_REQUIRE_ALL=1 (CI).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::process::{bin, summary};
use common::qemu_pair::QemuPair;

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run autoconv")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Pids of live processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // A zombie is already dead; only its parent's wait is missing.
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// The QEMUs a given autoconv process started live under this name.
fn run_dir_of(autoconv_pid: u32) -> String {
    format!("autoconv-qemu-{autoconv_pid}-")
}

fn assert_nothing_left(autoconv_pid: u32) {
    let needle = run_dir_of(autoconv_pid);
    let t = Instant::now();
    while !processes_with(&needle).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        processes_with(&needle),
        Vec::<u32>::new(),
        "QEMU left behind"
    );
    let leftover: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&needle))
        .collect();
    assert!(leftover.is_empty(), "run dir left behind: {leftover:?}");
}

/// Start `autoconv run --qemu` and wait until it says it is migrating.
// The child goes back to the caller, which waits for it (`finish`).
#[allow(clippy::zombie_processes)]
fn start_migrating(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            let status = child.wait();
            panic!("autoconv ended ({status:?}) before migrating: {seen}{err}");
        }
        seen.push_str(&line);
        if line.starts_with("migrating to") {
            return (child, out, seen);
        }
    }
}

fn finish(
    mut child: Child,
    mut out: BufReader<std::process::ChildStdout>,
    mut seen: String,
) -> (i32, String, String) {
    std::io::Read::read_to_string(&mut out, &mut seen).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), seen, err)
}

#[test]
fn run_qemu_completes_writes_the_files_and_from_log_replays_them() {
    let Some(_g) =
        common::prereq::qemu("run_qemu_completes_writes_the_files_and_from_log_replays_them")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::sequential_cli(dir.path());
    let out = dir.path().join("run");
    let o = run(&[
        "run",
        "--qemu",
        &img,
        "--mem",
        "64MiB",
        "--set",
        "auto-converge=on",
        "--set",
        "max-bandwidth=1GiB/s",
        "--warmup",
        "500ms",
        "--after",
        "500ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    assert!(stdout.contains("migration completed"), "{stdout}");
    let s = summary(&out);
    assert_eq!(s["backend"], "qemu");
    assert_eq!(s["status"], "completed");
    // QEMU's version from query-version, and what `--version` of the same binary says.
    let version = s["qemu"]["version"].as_str().unwrap().to_string();
    let banner = text(
        &Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        banner.contains(&format!("version {version}")),
        "{version} vs {banner}"
    );
    let mm: Vec<&str> = version.split('.').take(2).collect();
    assert_eq!(s["parameters"]["autoconv"]["qemu_version"], mm.join("."));
    // The figures are QEMU's own: the summary's and the last query-migrate reply agree.
    let q = &s["last_query_migrate_reply"];
    assert_eq!(q["status"], "completed");
    assert_eq!(s["total_time_ms"], q["total-time"]);
    assert_eq!(s["downtime_ms"], q["downtime"]);
    assert_eq!(s["transferred_bytes"], q["ram"]["transferred"]);
    assert_eq!(s["dirty_sync_count"], q["ram"]["dirty-sync-count"]);
    // The whole working set was sent at least once, and the parameter was QEMU's.
    assert!(q["ram"]["transferred"].as_u64().unwrap() >= 32 << 20);
    assert_eq!(
        s["parameters"]["qemu"]["parameters"]["max-bandwidth"],
        1u64 << 30
    );
    assert_eq!(
        s["parameters"]["qemu"]["capabilities_on"],
        serde_json::json!(["auto-converge"])
    );
    // The guest ran on the destination afterwards.
    assert_eq!(s["after"]["side"], "destination");
    assert_eq!(s["after"]["destination_running"], true);
    assert_eq!(s["guest_progress"], true);
    assert!(
        s["after"]["progress"]["markers"].as_u64().unwrap() > 0,
        "{s}"
    );
    let serial = std::fs::read(out.join("serial.txt")).unwrap();
    assert!(!serial.is_empty() && serial.iter().all(|&b| b == b'B'));
    let ts = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    assert!(ts.starts_with("t_ms,status,throttle_pct,"));
    assert!(
        ts.lines().last().unwrap().split(',').nth(1) == Some("completed"),
        "{ts}"
    );

    // The polls replay through --from-log into the same events and outcome.
    let replay = dir.path().join("replay");
    let o = run(&[
        "record",
        "--from-log",
        out.join("query-migrate.jsonl").to_str().unwrap(),
        "--out",
        replay.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("events.csv")).unwrap(),
        std::fs::read_to_string(replay.join("events.csv")).unwrap()
    );
    let r = summary(&replay);
    for k in [
        "status",
        "total_time_ms",
        "downtime_ms",
        "transferred_bytes",
        "throttle_steps",
    ] {
        assert_eq!(r[k], s[k], "{k}");
    }
}

#[test]
fn a_source_qemu_killed_mid_run_is_a_failed_migration_and_nothing_is_left() {
    let Some(_g) = common::prereq::qemu(
        "a_source_qemu_killed_mid_run_is_a_failed_migration_and_nothing_is_left",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::sequential_cli(dir.path());
    let out = dir.path().join("run");
    // 8 MiB/s: the migration takes seconds, long enough to kill the source in it.
    let (child, stdout, seen) = start_migrating(&[
        "run",
        "--qemu",
        &img,
        "--mem",
        "64MiB",
        "--set",
        "max-bandwidth=8MiB/s",
        "--warmup",
        "200ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(700));
    let sources = processes_with(&format!("{}0/source.qmp", run_dir_of(pid)));
    assert_eq!(sources.len(), 1, "{sources:?}");
    // kill(1) the one source QEMU this autoconv started, by its pid.
    Command::new("kill")
        .args(["-9", &sources[0].to_string()])
        .status()
        .unwrap();
    let (code, stdout, stderr) = finish(child, stdout, seen);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("migration failed"), "{stdout}");
    assert!(stdout.contains("source QEMU exited (signal: 9"), "{stdout}");
    assert_eq!(summary(&out)["status"], "failed");
    assert_nothing_left(pid);
}

#[test]
fn ctrl_c_cancels_qemus_migration_and_nothing_is_left() {
    let Some(_g) = common::prereq::qemu("ctrl_c_cancels_qemus_migration_and_nothing_is_left")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::sequential_cli(dir.path());
    let (child, stdout, seen) = start_migrating(&[
        "run",
        "--qemu",
        &img,
        "--mem",
        "64MiB",
        "--set",
        "max-bandwidth=8MiB/s",
        "--warmup",
        "200ms",
        "--after",
        "300ms",
    ]);
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let (code, stdout, stderr) = finish(child, stdout, seen);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("migration cancelled"), "{stdout}");
    // The source guest ran on after the cancel.
    assert!(stdout.contains("source after the migration"), "{stdout}");
    assert_nothing_left(pid);
}

#[test]
fn refused_parameter_missing_binary_and_wrong_version_exit_2_before_anything_runs() {
    // No QEMU needed for these two.
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::sequential_cli(dir.path());
    let o = run(&[
        "run",
        "--qemu",
        &img,
        "--qemu-binary",
        "/nonexistent/qemu-system-x86_64",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("QEMU binary /nonexistent/qemu-system-x86_64 not found"),
        "{err}"
    );
    let o = run(&["run", "--qemu", &img, "--set", "cpu-throttle-initial=0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr)
        .contains("Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99"));

    let Some(_g) = common::prereq::qemu(
        "refused_parameter_missing_binary_and_wrong_version_exit_2_before_anything_runs",
    ) else {
        return;
    };
    let t = Instant::now();
    // autoconv knows avail-switchover-bandwidth (QEMU 8.2+); a 7.2 refuses it in its words.
    let o = bin()
        .args([
            "run",
            "--qemu",
            &img,
            "--mem",
            "64MiB",
            "--set",
            "avail-switchover-bandwidth=1GiB/s",
        ])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    let qemu = text(
        &Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    );
    if qemu.contains("version 7.") || qemu.contains("version 8.0") || qemu.contains("version 8.1") {
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("source QEMU: migrate-set-parameters: Parameter 'avail-switchover-bandwidth' is unexpected"),
            "{err}"
        );
        // Refused while the source was still paused (-S), long before a guest boot.
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    }
    let o = run(&[
        "run",
        "--qemu",
        &img,
        "--mem",
        "64MiB",
        "--set",
        "autoconv.qemu_version=9.2",
    ]);
    let err = text(&o.stderr);
    if !qemu.contains("version 9.2") {
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("autoconv.qemu_version=9.2 disagrees with the QEMU being run"),
            "{err}"
        );
    }
}

/// A fake QMP server: a greeting, `qmp_capabilities` answered, then `replies` in turn.
fn fake_qmp(first: &'static str, replies: Vec<&'static str>) -> (PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.qmp");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _ = s.write_all(first.as_bytes());
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut replies = replies.into_iter();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            let id = v["id"].clone();
            let reply = match v["execute"].as_str() {
                Some("qmp_capabilities") => format!("{{\"return\": {{}}, \"id\": {id}}}\n"),
                Some("query-migrate") => match replies.next() {
                    Some(r) => r.to_string(),
                    None => return,
                },
                _ => format!("{{\"error\": {{\"class\": \"CommandNotFound\", \"desc\": \"no\"}}, \"id\": {id}}}\n"),
            };
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (path, dir)
}

const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": []}}\n";

#[test]
fn record_names_a_socket_that_is_not_qmp_and_a_malformed_reply() {
    let (path, _d) = fake_qmp("SSH-2.0-OpenSSH_9.2p1\r\n", vec![]);
    let o = run(&["record", "--qmp", path.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("is not a QMP socket") && err.contains("SSH-2.0"),
        "{err}"
    );

    let (path, _d) = fake_qmp(
        GREETING,
        vec!["{\"return\": {\"status\": \"active\", \"ram\": {\"transferred\": \"lots\"}}}\n"],
    );
    let out = _d.path().join("out");
    let o = run(&[
        "record",
        "--qmp",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("malformed QMP message") && err.contains("ram.transferred"),
        "{err}"
    );
    assert!(!out.exists(), "no half-written output");

    let (path, _d) = fake_qmp(GREETING, vec!["{\"return\": {\"status\": \"active\"\n"]);
    let o = run(&["record", "--qmp", path.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("malformed QMP message: not JSON"), "{err}");
}

#[test]
fn record_from_log_reads_t_and_refuses_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("m.jsonl");
    let lines = [
        r#"{"return": {}}"#,
        r#"{"t": 0.5, "return": {"status": "active", "total-time": 0, "ram": {"transferred": 100, "remaining": 4096, "dirty-sync-count": 1}}}"#,
        "",
        r#"{"t": 1.5, "return": {"status": "active", "total-time": 1000, "cpu-throttle-percentage": 20, "ram": {"transferred": 200, "remaining": 4096, "dirty-sync-count": 3}}}"#,
        r#"{"t": 2.0, "return": {"status": "completed", "total-time": 1450, "downtime": 20, "setup-time": 3, "ram": {"transferred": 300, "remaining": 0, "dirty-sync-count": 4, "normal": 7, "duplicate": 9}}}"#,
    ];
    std::fs::write(&log, lines.join("\n")).unwrap();
    let out = dir.path().join("out");
    let o = run(&[
        "record",
        "--from-log",
        log.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let s = summary(&out);
    assert_eq!(s["total_time_ms"], 1450);
    assert_eq!(s["downtime_ms"], 20);
    assert_eq!(s["throttle_steps"], serde_json::json!([20]));
    assert_eq!(s["last_query_migrate_reply"]["ram"]["normal"], 7);
    let ts = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    let t: Vec<&str> = ts
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    // The migration started at t = 0.5 s (its total-time was 0 then).
    assert_eq!(t, ["0", "1000", "1500"]);
    let ev = std::fs::read_to_string(out.join("events.csv")).unwrap();
    assert!(ev.contains("1000,throttle-set,20,"), "{ev}");
    assert!(ev.contains("1430,switchover,4096,"), "{ev}");

    for (bad, want) in [
        (
            "{\"t\": 1, \"return\": {\"status\": \"active\"}}\n{\"t\": 0.5, \"return\": {}}",
            ":2: \"t\" goes backwards",
        ),
        ("{\"event\": \"STOP\"}", ":1: not a query-migrate reply"),
        (
            "{\"return\": {\"status\": \"flying\"}}",
            ":1: unknown migration status \"flying\"",
        ),
        ("{\"return\": {}}", "no migration was seen"),
    ] {
        std::fs::write(&log, bad).unwrap();
        let o = run(&["record", "--from-log", log.to_str().unwrap()]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(want), "{bad}: {err}");
    }
}

#[test]
fn record_virsh_polls_through_virsh_qemu_monitor_command() {
    // Without libvirtd (tests/virsh_record.rs has the real one): a stand-in `virsh` on PATH
    // answers as libvirt does (QMP's reply on stdout) and logs the commands it got.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("virsh");
    let calls = dir.path().join("calls");
    let count = dir.path().join("n");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
echo "$@" >> {calls}
[ "$1" = qemu-monitor-command ] && [ "$2" = vm1 ] || {{ echo "error: failed to get domain '$2'" >&2; exit 1; }}
case "$3" in
  *query-version*) echo '{{"return":{{"qemu":{{"major":7,"minor":2,"micro":0}},"package":""}},"id":"libvirt-1"}}' ;;
  *query-cpus-fast*) echo '{{"return":[{{"cpu-index":0}},{{"cpu-index":1}}],"id":"libvirt-2"}}' ;;
  *query-migrate-parameters*) echo '{{"return":{{"downtime-limit":300}},"id":"libvirt-3"}}' ;;
  *query-migrate-capabilities*) echo '{{"return":[{{"capability":"auto-converge","state":true}}],"id":"libvirt-4"}}' ;;
  *query-migrate*)
    n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}
    if [ $n -lt 3 ]; then echo '{{"return":{{"status":"active","total-time":'$((n*100))',"cpu-throttle-percentage":20,"ram":{{"transferred":1,"remaining":2,"dirty-sync-count":2}}}},"id":"libvirt-5"}}'
    else echo '{{"return":{{"status":"completed","total-time":300,"downtime":9,"ram":{{"transferred":5,"remaining":0,"dirty-sync-count":3}}}},"id":"libvirt-6"}}'; fi ;;
  *) echo "error: unexpected $3" >&2; exit 1 ;;
esac
"#,
            calls = calls.display(),
            count = count.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = dir.path().join("out");
    let o = bin()
        .args(["record", "--virsh", "vm1", "--out", out.to_str().unwrap()])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["total_time_ms"], 300);
    assert_eq!(s["vcpus"], 2);
    assert_eq!(s["recorded_from"], "virsh:vm1");
    assert_eq!(s["qemu"]["version"], "7.2.0");
    // Read-only: nothing but queries was sent.
    let sent = std::fs::read_to_string(&calls).unwrap();
    assert!(
        sent.lines().all(|l| l.contains("\"execute\":\"query-")),
        "{sent}"
    );
    // A domain virsh does not know: virsh's own message, exit 2.
    let o = bin()
        .args(["record", "--virsh", "nosuch"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("failed to get domain 'nosuch'"), "{err}");
}

#[test]
fn record_qmp_records_a_migration_another_client_starts() {
    let Some(_g) = common::prereq::qemu("record_qmp_records_a_migration_another_client_starts")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::sequential_cli(dir.path());
    let pair = QemuPair::start(&img);
    // The user's own client holds the first socket; autoconv attaches to the second.
    let mut user = pair.user();
    user.execute(
        "migrate-set-parameters",
        Some(serde_json::json!({"max-bandwidth": 256u64 << 20})),
    )
    .unwrap();
    let out = dir.path().join("rec");
    let recorder = bin()
        .args([
            "record",
            "--qmp",
            pair.second_qmp_arg(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    user.execute("migrate", Some(serde_json::json!({"uri": pair.uri})))
        .unwrap();
    let o = recorder.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let mine = user.query_migrate().unwrap();
    let s = summary(&out);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["backend"], "qemu");
    // Exactly QEMU's final figures, as the user's own client sees them.
    assert_eq!(s["total_time_ms"].as_u64(), mine.total_time_ms);
    assert_eq!(
        s["transferred_bytes"].as_u64(),
        mine.ram.as_ref().map(|r| r.transferred)
    );
    // Read-only: the recorder changed nothing (the user's max-bandwidth stands).
    assert_eq!(
        s["parameters"]["qemu"]["parameters"]["max-bandwidth"],
        256u64 << 20
    );
    let after = user.execute("query-migrate-parameters", None).unwrap();
    assert_eq!(after["max-bandwidth"], 256u64 << 20);
    drop(pair);
}

/// QEMU settings autoconv does not model go to QEMU under their QMP names (both sides, since
/// multifd needs the destination too) and into summary.json; QEMU's own refusal exits 2 before
/// the run; `run --kvm` and `sim` refuse them as not modelled. `compare` and `plot` take the
/// QEMU run directory.
#[test]
fn unmodelled_qemu_settings_pass_through_to_qemu_and_only_to_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::sequential_cli(dir.path());
    // Refused by autoconv's own backends, before anything runs.
    let o = run(&["run", "--kvm", &img, "--set", "multifd-channels=4"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("QEMU parameter 'multifd-channels' is not modelled by autoconv"),
        "{err}"
    );
    let o = run(&[
        "sim",
        "scenarios/light.toml",
        "--no-out",
        "--set",
        "xbzrle=on",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("QEMU capability 'xbzrle' is not modelled by autoconv"),
        "{}",
        text(&o.stderr)
    );

    let Some(_g) =
        common::prereq::qemu("unmodelled_qemu_settings_pass_through_to_qemu_and_only_to_qemu")
    else {
        return;
    };
    // QEMU refuses a value in its own words: exit 2, one line, nothing written.
    let refused = dir.path().join("refused");
    let o = run(&[
        "run",
        "--qemu",
        &img,
        "--mem",
        "64MiB",
        "--set",
        "multifd-channels=0",
        "--out",
        refused.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        // QEMU 7.2's words, underscore included.
        err.contains("source QEMU: migrate-set-parameters: Parameter 'multifd_channels' expects a value between 1 and 255"),
        "{err}"
    );
    assert!(!refused.join("summary.json").exists());

    let out = dir.path().join("multifd");
    let o = run(&[
        "run",
        "--qemu",
        &img,
        "--mem",
        "64MiB",
        "--set",
        "auto-converge=on",
        "--set",
        "multifd=on",
        "--set",
        "multifd-channels=3",
        "--set",
        "xbzrle-cache-size=8388608",
        "--warmup",
        "500ms",
        "--after",
        "500ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["status"], "completed");
    let passed = &s["parameters"]["passed_to_qemu"];
    assert_eq!(passed["multifd"], true);
    assert_eq!(passed["multifd-channels"], 3);
    assert_eq!(passed["xbzrle-cache-size"], 8388608);
    // QEMU ran with them: what it reports after setting.
    let qemu = &s["parameters"]["qemu"];
    assert_eq!(qemu["parameters"]["multifd-channels"], 3);
    assert_eq!(qemu["parameters"]["xbzrle-cache-size"], 8388608);
    let caps: Vec<&str> = qemu["capabilities_on"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        caps.contains(&"multifd") && caps.contains(&"auto-converge"),
        "{caps:?}"
    );

    // compare and plot take a QEMU run directory.
    let o = run(&[
        "compare",
        out.to_str().unwrap(),
        "scenarios/qemu-7.2-reference.toml",
        "--set",
        "guest.memory=64MiB",
        "--set",
        "region.sweep.size=32MiB",
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    assert!(stdout.contains("recorded (qemu)"), "{stdout}");
    assert!(stdout.contains("total_time"), "{stdout}");
    let png = dir.path().join("multifd.png");
    let o = run(&["plot", out.to_str().unwrap(), "-o", png.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}
