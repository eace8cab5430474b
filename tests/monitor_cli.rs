//! `run --kvm IMAGE --qmp unix:PATH` and `--monitor stdio` as their users drive them: QEMU's own
//! Python client library (`qemu.qmp`, which nobody here wrote) runs a whole migration over QMP,
//! and an operator types the auto-converge feature page's HMP lines. Skipped, with a printed
//! reason, without /dev/kvm or python3's qemu.qmp; failed instead under AUTOCONV_REQUIRE_ALL=1.

mod common;

use std::io::{BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{bin, json, wait_with_limit};

/// python3 with QEMU's `qemu.qmp` (CI installs it: .ci/run).
fn require_qemu_qmp(test: &str) -> bool {
    let missing = match Command::new("python3")
        .args(["-c", "import qemu.qmp"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "python3 cannot import qemu.qmp (pip install qemu.qmp): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("no python3: {e}")),
    };
    common::require::decide(test, missing, common::require::required())
}

fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// The test: QEMU's own client sets auto-converge and its parameters, starts the
/// migration, polls it to `completed` as it would against QEMU, and reads the throttle.
#[test]
fn qemu_qmp_drives_a_whole_migration() {
    let test = "qemu_qmp_drives_a_whole_migration";
    if !require_qemu_qmp(test) {
        return;
    }
    let Some(_g) = common::prereq::kvm(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let (mut dest, addr) =
        common::incoming::start(&dir.path().join("dest"), &["--run-for", "1000ms"]);
    let sock = dir.path().join("qmp.sock");
    let src_out = dir.path().join("src");
    let mut run = bin()
        .args(["run", "--kvm", &img, "--mem", "64MiB", "--qmp"])
        .arg(format!("unix:{}", sock.display()))
        .arg("--out")
        .arg(&src_out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_out = read_all(run.stdout.take().unwrap());
    let run_err = read_all(run.stderr.take().unwrap());
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no socket after 20 s"
        );
        assert!(
            run.try_wait().unwrap().is_none(),
            "run ended before serving QMP"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the socket steers the guest: owner only"
    );

    let driver = common::repo().join("tests/fixtures/qmp/migrate.py");
    let mut client = Command::new("python3")
        .arg(&driver)
        .arg(&sock)
        .arg(&addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client_out = read_all(client.stdout.take().unwrap());
    let client_err = read_all(client.stderr.take().unwrap());
    let status = wait_with_limit(&mut run, Duration::from_secs(240), "run --kvm --qmp");
    let client_status = wait_with_limit(&mut client, Duration::from_secs(30), "qemu.qmp client");
    let (out, err) = (run_out.join().unwrap(), run_err.join().unwrap());
    let (cout, cerr) = (client_out.join().unwrap(), client_err.join().unwrap());
    let context = format!("run:\n{out}\n{err}\nclient:\n{cout}\n{cerr}");
    assert!(status.success(), "{context}");
    assert!(client_status.success(), "{context}");
    let seen: serde_json::Value = serde_json::from_str(cout.trim()).expect(&context);

    assert_eq!(seen["status_before"]["status"], "running", "{context}");
    // The x- names set the parameters under their QEMU names.
    assert_eq!(seen["parameters"]["cpu-throttle-initial"], 30);
    assert_eq!(seen["parameters"]["cpu-throttle-increment"], 20);
    assert_eq!(seen["parameters"]["max-bandwidth"], 16 << 20);
    let caps = seen["capabilities"].as_array().unwrap();
    assert!(caps.contains(&serde_json::json!({"capability": "auto-converge", "state": true})));
    // QEMU's error shape reached the client as QEMU's would.
    assert_eq!(seen["range_error"]["class"], "GenericError", "{context}");
    assert_eq!(
        seen["range_error"]["desc"],
        "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99"
    );

    let last = &seen["final"];
    assert_eq!(last["status"], "completed", "{context}");
    assert!(last["total-time"].as_u64().unwrap() > 0, "{context}");
    assert!(
        last["ram"]["transferred"].as_u64().unwrap() >= 32 << 20,
        "{context}"
    );
    // The throttle the client read started at the initial value and went up by the increment.
    let throttles: Vec<u64> = seen["throttles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(throttles.first(), Some(&30), "{context}");
    for w in throttles.windows(2) {
        assert!(
            w[1] == (w[0] + 20).min(99),
            "throttle went {w:?}, not by 20: {context}"
        );
    }
    assert!(
        seen["statuses"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("active")),
        "{context}"
    );
    assert_eq!(seen["status_after"]["status"], "postmigrate", "{context}");
    assert_eq!(seen["status_after"]["running"], false);

    // The run's own record agrees with what the client read, settings included.
    let summary = json(&src_out.join("summary.json"));
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["memory_verified"], true);
    assert_eq!(summary["query-migrate"]["total-time"], last["total-time"]);
    assert_eq!(
        summary["query-migrate"]["ram"]["transferred"],
        last["ram"]["transferred"]
    );
    let steps: Vec<u64> = summary["throttle_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        steps.starts_with(&throttles[..1]),
        "{steps:?} vs {throttles:?}"
    );
    assert!(out.contains("migration completed"), "{context}");
    assert!(!sock.exists(), "the run removes its socket");
    assert!(wait_with_limit(&mut dest, Duration::from_secs(30), "incoming").success());
}

/// Reads a child's stdout into a shared buffer as it comes.
fn collect(r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let t = text.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            t.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// The auto-converge feature page's workflow at the human monitor, line for line.
#[test]
fn the_seed_pages_hmp_lines_on_monitor_stdio() {
    let Some(_g) = common::prereq::kvm("the_seed_pages_hmp_lines_on_monitor_stdio") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let (mut dest, addr) =
        common::incoming::start(&dir.path().join("dest"), &["--run-for", "1000ms"]);
    let mut run = bin()
        .args(["run", "--kvm", &img, "--mem", "64MiB", "--monitor", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = collect(run.stdout.take().unwrap());
    let err = read_all(run.stderr.take().unwrap());
    let mut stdin = run.stdin.take().unwrap();
    let mut say = |line: &str| {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    };
    say("migrate_set_capability auto-converge on");
    say("migrate_set_parameter x-cpu-throttle-initial 30");
    say("migrate_set_parameter max-bandwidth 16");
    say("info migrate_parameters");
    say(&format!("migrate -d {addr}"));
    let t0 = Instant::now();
    loop {
        say("info migrate");
        std::thread::sleep(Duration::from_millis(300));
        if out.lock().unwrap().contains("Migration status: completed") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "not completed after 180 s:\n{}",
            out.lock().unwrap()
        );
    }
    say("info status");
    say("quit");
    let status = wait_with_limit(&mut run, Duration::from_secs(60), "run --monitor stdio");
    std::thread::sleep(Duration::from_millis(200));
    let text = out.lock().unwrap().clone();
    let context = format!("{text}\nstderr:\n{}", err.join().unwrap());
    assert!(status.success(), "{context}");
    assert!(text.contains("cpu-throttle-initial: 30\n"), "{context}");
    assert!(
        text.contains("max-bandwidth: 16777216 bytes/second\n"),
        "{context}"
    );
    assert!(text.contains("Migration status: active\n"), "{context}");
    // The feature page's line, the first throttle being cpu-throttle-initial.
    assert!(text.contains("cpu throttle percentage: 30\n"), "{context}");
    assert!(
        text.contains("VM status: paused (postmigrate)\n"),
        "{context}"
    );
    assert!(text.contains("migration completed"), "{context}");
    assert!(wait_with_limit(&mut dest, Duration::from_secs(30), "incoming").success());
}

/// The socket is the user's path: a file that is not a socket is never replaced.
#[test]
fn qmp_refuses_to_replace_a_file_and_tcp() {
    let Some(_g) = common::prereq::kvm("qmp_refuses_to_replace_a_file_and_tcp") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let keep = dir.path().join("notes.txt");
    std::fs::write(&keep, "mine").unwrap();
    let o = bin()
        .args(["run", "--kvm", &img, "--mem", "64MiB", "--qmp"])
        .arg(format!("unix:{}", keep.display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", common::text(&o));
    let err = common::stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "mine");

    let o = bin()
        .args(["run", "--kvm", &img, "--qmp", "tcp:127.0.0.1:4444"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", common::text(&o));
    assert!(common::stderr(&o).contains("--qmp takes unix:PATH"));
}
