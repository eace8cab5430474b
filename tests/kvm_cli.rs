//! The commands as a user runs them: `incoming` in its own process, a killed destination, and
//! Ctrl-C on the source. Skipped, with a printed reason, where /dev/kvm is not usable (failed
//! instead under AUTOCONV_REQUIRE_ALL=1, as CI runs them).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::process::{bin, json, wait_with_limit};

use autoconv::guest_image::layout;

fn pages(counters: &serde_json::Value) -> u64 {
    counters
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pages_written"].as_u64().unwrap())
        .sum()
}

/// `incoming ... | head -1`: the reader goes away after the address line. Printing must not
/// decide the migration's fate: the destination still verifies, resumes and runs the guest.
#[test]
fn incoming_whose_stdout_is_gone_still_resumes_the_guest() {
    let Some(_g) = common::prereq::kvm("incoming_whose_stdout_is_gone_still_resumes_the_guest")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let dest_out = dir.path().join("dest");
    let mut dest = bin()
        .args([
            "incoming",
            "tcp:127.0.0.1:0",
            "--run-for",
            "1000ms",
            "--out",
        ])
        .arg(&dest_out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut reader = BufReader::new(dest.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    drop(reader); // as `head -1` exits
    let run = bin()
        .args(["run", "--kvm", &img, "--mem", "64MiB", "--warmup", "300ms"])
        .args(["--migrate", &addr, "--set", "max-bandwidth=0"])
        .args(["--out", dir.path().join("src").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let status = wait_with_limit(&mut dest, Duration::from_secs(20), "incoming");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut dest.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let inc = json(&dest_out.join("incoming.json"));
    assert_eq!(inc["status"], "completed");
    assert_eq!(inc["memory_verified"], true);
    assert!(pages(&inc["counters_last"]) > pages(&inc["counters_at_resume"]));
}

#[test]
fn incoming_in_its_own_process_resumes_the_guest_where_it_stopped() {
    let Some(_g) = common::prereq::kvm("incoming_in_its_own_process_resumes_the_guest") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let dest_out = dir.path().join("dest");
    let src_out = dir.path().join("src");
    let (mut dest, addr) = common::incoming::start(&dest_out, &["--run-for", "1500ms"]);
    let run = bin()
        .args(["run", "--kvm", &img, "--mem", "64MiB", "--warmup", "300ms"])
        .args(["--migrate", &addr, "--set", "max-bandwidth=0", "--out"])
        .arg(&src_out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(wait_with_limit(&mut dest, Duration::from_secs(20), "incoming").success());

    let src = json(&src_out.join("summary.json"));
    assert_eq!(src["status"], "completed");
    assert_eq!(src["memory_verified"], true);
    let inc = json(&dest_out.join("incoming.json"));
    assert_eq!(inc["status"], "completed");
    assert_eq!(inc["memory_verified"], true);
    // The destination resumed exactly where the source stopped, and went on.
    assert_eq!(
        inc["counters_at_resume"],
        src["guest"]["source_final_counters"]
    );
    assert!(pages(&inc["counters_last"]) > pages(&inc["counters_at_resume"]));
    assert!(inc["ran_ms"].as_u64().unwrap() >= 1000);
    // A marker per sweep of the 32 MiB working set: a destination that wrote a whole sweep's
    // pages crossed one (a loaded host may give the 1.5 s run less than a sweep).
    let serial = std::fs::read(dest_out.join("serial.txt")).unwrap();
    let written = pages(&inc["counters_last"]) - pages(&inc["counters_at_resume"]);
    assert!(
        !serial.is_empty() || written < (32 << 20) / 4096,
        "{written} pages written on the destination, no marker"
    );
    assert!(serial.iter().all(|&b| b == b'B'));
    // The time series has the simulator's columns.
    let ts = std::fs::read_to_string(src_out.join("timeseries.csv")).unwrap();
    assert!(ts.starts_with(
        "t_ms,status,throttle_pct,transferred_bytes,remaining_bytes,dirty_pages_rate,dirty_sync_count,expected_downtime_ms,mbps,guest_cpu_pct,guest_write_pages_s,dirty_limit_throttle_time_per_round_us,dirty_limit_ring_full_time_us"
    ));
}

#[test]
fn killing_the_destination_fails_the_migration_and_the_source_runs_on() {
    let Some(_g) = common::prereq::kvm("killing_the_destination_fails_the_migration") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let src_out = dir.path().join("src");
    let (mut dest, addr) = common::incoming::start(&dir.path().join("dest"), &[]);
    // 8 MiB/s: the first pass alone takes ~4 s, so the kill lands mid-migration.
    let mut run = bin()
        .args(["run", "--kvm", &img, "--mem", "64MiB", "--warmup", "300ms"])
        .args(["--migrate", &addr, "--set", "max-bandwidth=8MiB/s", "--out"])
        .arg(&src_out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    dest.kill().unwrap();
    dest.wait().unwrap();
    let status = wait_with_limit(&mut run, Duration::from_secs(20), "run after the kill");
    // A lost link is a failed migration, not a bad input nor a memory mismatch (exit 1).
    assert_eq!(status.code(), Some(1));
    let src = json(&src_out.join("summary.json"));
    assert_eq!(src["status"], "failed", "{src}");
    assert_eq!(src["failure"]["kind"], "link-lost", "{src}");
    let reason = src["reason"].as_str().unwrap();
    assert!(reason.contains("connection lost"), "{reason}");
    assert_eq!(src["source_after"]["throttle_pct"], 0);
    assert!(
        src["source_after"]["progress"]["pages_written_per_s"]
            .as_f64()
            .unwrap()
            > 1000.0,
        "source guest not running: {src}"
    );
}

/// The typed failure reaches the user: a dirty bit lost on purpose (the status page's, which
/// the guest rewrites with every write) leaves a stale copy that `--verify full` finds; the
/// run exits 3 (memory mismatch), summary.json names the kind and the page, and the
/// destination does not run the guest.
#[test]
fn a_dropped_dirty_bit_exits_3_with_the_page_named() {
    let Some(_g) = common::prereq::kvm("a_dropped_dirty_bit_exits_3_with_the_page_named") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let out = dir.path().join("run");
    let gpa = format!("{:#x}", layout::STATUS_GPA);
    // The destination in its own process: it finds the mismatch and exits 3 too.
    let dest_out = dir.path().join("dest");
    let (mut dest, addr) = common::incoming::start(&dest_out, &[]);
    // 16 MiB/s: the first pass takes seconds, so the guest rewrites its status page after it
    // was sent; the 60 s downtime limit lets the second pass be the last.
    let mut run = bin()
        .args(["run", "--kvm", &img, "--mem", "64MiB", "--warmup", "300ms"])
        .args(["--migrate", &addr])
        .args([
            "--after",
            "300ms",
            "--verify",
            "full",
            "--x-drop-dirty-page",
            &gpa,
        ])
        .args([
            "--set",
            "max-bandwidth=16MiB/s",
            "--set",
            "downtime-limit=60000",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_limit(
        &mut run,
        Duration::from_secs(120),
        "run with a lost dirty bit",
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut run.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(3), "{stdout}");
    let dest_status = wait_with_limit(&mut dest, Duration::from_secs(20), "incoming");
    assert_eq!(
        dest_status.code(),
        Some(3),
        "incoming's exit for a memory mismatch"
    );
    // Its incoming.json says the same, typed as summary.json says it, with the stream's
    // figures: memory compared, no READY, so no wait for a COMMIT.
    let inc = json(&dest_out.join("incoming.json"));
    assert_eq!(inc["status"], "failed", "{inc}");
    assert_eq!(inc["failure"]["kind"], "memory-mismatch", "{inc}");
    assert_eq!(inc["failure"]["first_gpa"], layout::STATUS_GPA, "{inc}");
    assert_eq!(
        inc["stats"]["verified_pages"],
        (64u64 << 20) / 4096,
        "{inc}"
    );
    assert_eq!(inc["stats"]["commit_wait_ms"], 0.0, "{inc}");
    let s = json(&out.join("summary.json"));
    assert_eq!(s["status"], "failed", "{s}");
    assert_eq!(s["failure"]["kind"], "memory-mismatch", "{s}");
    assert_eq!(s["failure"]["first_gpa"], layout::STATUS_GPA, "{s}");
    assert!(
        s["failure"]["mismatched_pages"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert_eq!(s["failure"]["pages"], (64u64 << 20) / 4096, "{s}");
    assert!(
        stdout.contains(&format!(
            "memory verification FAILED: {} of 16384 pages differ, the first at guest address {gpa}",
            s["failure"]["mismatched_pages"]
        )),
        "{stdout}"
    );
}

#[test]
fn ctrl_c_cancels_the_migration_and_the_source_runs_on() {
    let Some(_g) = common::prereq::kvm("ctrl_c_cancels_the_migration") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let src_out = dir.path().join("src");
    let mut run = bin()
        .args(["run", "--kvm", &img, "--mem", "64MiB", "--warmup", "300ms"])
        .args(["--set", "max-bandwidth=8MiB/s", "--set", "auto-converge=on"])
        .arg("--out")
        .arg(&src_out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGINT) };
    let status = wait_with_limit(&mut run, Duration::from_secs(20), "run after Ctrl-C");
    assert!(!status.success());
    let src = json(&src_out.join("summary.json"));
    assert_eq!(src["status"], "cancelled", "{src}");
    assert_eq!(src["source_after"]["throttle_pct"], 0);
    assert!(
        src["source_after"]["progress"]["pages_written_per_s"]
            .as_f64()
            .unwrap()
            > 1000.0
    );
    // The local destination gave up too: it never resumed a guest.
    assert_eq!(src["destination"]["resumed"], false);
}

/// `incoming --out DIR` checks DIR before it listens: no peer (a port scan, `GET /`) can make
/// it write into, let alone empty, a directory of the user's.
#[test]
fn incoming_refuses_a_directory_of_the_users_before_listening() {
    let Some(_g) =
        common::prereq::kvm("incoming_refuses_a_directory_of_the_users_before_listening")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let mut child = bin()
        .args(["incoming", "tcp:127.0.0.1:0", "--out"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_limit(&mut child, Duration::from_secs(10), "incoming");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("not autoconv's output"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
        "mine"
    );
}

/// Ctrl-C on the destination mid-migration: it drops the migration at once (a stream in full
/// flow included), resumes nothing and says `cancelled` in incoming.json with what it had
/// received; the source, its connection gone, fails and its guest runs on unthrottled.
#[test]
fn ctrl_c_on_the_destination_fails_the_source_and_its_guest_runs_on() {
    let Some(_g) = common::prereq::kvm("ctrl_c_on_the_destination_fails_the_source") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let src_out = dir.path().join("src");
    let dest_out = dir.path().join("dest");
    let (mut dest, addr) = common::incoming::start(&dest_out, &[]);
    // 8 MiB/s: the first pass alone takes ~4 s, so the Ctrl-C lands mid-stream.
    let mut run = bin()
        .args(["run", "--kvm", &img, "--mem", "64MiB", "--warmup", "300ms"])
        .args(["--migrate", &addr, "--set", "max-bandwidth=8MiB/s", "--out"])
        .arg(&src_out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = std::time::Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(dest.id() as libc::pid_t, libc::SIGINT) };
    let dest_status = wait_with_limit(&mut dest, Duration::from_secs(5), "incoming after Ctrl-C");
    let dest_took = t0.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut dest.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(dest_status.code(), Some(1), "{err}");
    assert!(dest_took < Duration::from_secs(2), "{dest_took:?}: {err}");
    assert!(
        err.contains(
            "incoming migration failed: cancelled on this destination (Ctrl-C) while receiving"
        ),
        "{err}"
    );
    let inc = json(&dest_out.join("incoming.json"));
    assert_eq!(inc["status"], "cancelled", "{inc}");
    assert!(inc.get("failure").is_none(), "{inc}");
    assert!(inc["stats"]["bytes"].as_u64().unwrap() > 1 << 20, "{inc}");
    assert!(inc.get("counters_at_resume").is_none(), "{inc}");

    let status = wait_with_limit(
        &mut run,
        Duration::from_secs(20),
        "run after the destination's Ctrl-C",
    );
    assert_eq!(status.code(), Some(1));
    let src = json(&src_out.join("summary.json"));
    assert_eq!(src["status"], "failed", "{src}");
    assert_eq!(src["failure"]["kind"], "link-lost", "{src}");
    assert_eq!(src["source_after"]["throttle_pct"], 0);
    assert!(
        src["source_after"]["progress"]["pages_written_per_s"]
            .as_f64()
            .unwrap()
            > 1000.0,
        "source guest not running: {src}"
    );
}
