//! The soak as a user runs it: `autoconv run --kvm` processes migrating to `autoconv incoming`
//! processes, back to back. In its own test binary: the in-process soak (tests/soak.rs) counts
//! its process's descriptors and threads, which this test's children's pipes would change.
//!
//! 3 migrations by default; `AUTOCONV_SOAK_RUNS=50 cargo test --release --test soak_cli --
//! --nocapture` is the soak the README reports.

mod common;

use std::time::{Duration, Instant};
/// The soak as a user runs it: each migration is an `autoconv run --kvm` process migrating to
/// an `autoconv incoming` process over TCP. Every pair must exit 0 with memory verified on
/// both sides, and when the last has exited no process of ours is left and the output
/// directories hold only what autoconv wrote. (Descriptors, threads and memory are the
/// kernel's to reclaim at each exit; the in-process soak above checks them.)
#[test]
fn cli_migrations_back_to_back_verify_and_leave_no_process_behind() {
    let test = "cli_migrations_back_to_back_verify_and_leave_no_process_behind";
    let Some(_kvm) = common::prereq::kvm(test) else {
        return;
    };
    let n = std::env::var("AUTOCONV_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize);
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::paced_cli(dir.path());
    let started = Instant::now();
    for i in 0..n {
        let src_out = dir.path().join(format!("src{i}"));
        let dest_out = dir.path().join(format!("dest{i}"));
        let (mut dest, addr) = common::incoming::start(&dest_out, &["--run-for", "200ms"]);
        let run = common::process::bin()
            .args(["run", "--kvm", &img, "--mem", "64MiB", "--warmup", "300ms"])
            .args([
                "--after",
                "200ms",
                "--migrate",
                &addr,
                "--set",
                "max-bandwidth=0",
            ])
            .arg("--out")
            .arg(&src_out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "migration {i}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let dest_status =
            common::process::wait_with_limit(&mut dest, Duration::from_secs(30), "incoming");
        assert!(
            dest_status.success(),
            "migration {i}: incoming {dest_status}"
        );
        let src = common::process::json(&src_out.join("summary.json"));
        let inc = common::process::json(&dest_out.join("incoming.json"));
        assert_eq!(src["status"], "completed", "migration {i}");
        assert_eq!(src["memory_verified"], true, "migration {i}");
        assert_eq!(inc["status"], "completed", "migration {i}");
        assert_eq!(inc["memory_verified"], true, "migration {i}");
    }
    // No child of this test process survives (every incoming and run was waited for; a
    // leaked grandchild would be re-parented, so look for our output paths too).
    let me = std::process::id().to_string();
    let dir_text = dir.path().display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if pid.parse::<u32>().is_err() || pid == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&dir_text),
            "process {pid} is left behind: {cmdline}"
        );
    }
    // Only autoconv's own files in the output directories.
    for i in 0..n {
        for (side, expected) in [
            (
                "src",
                &["summary.json", "timeseries.csv", "events.csv", "serial.txt"][..],
            ),
            ("dest", &["incoming.json", "serial.txt"][..]),
        ] {
            let out = dir.path().join(format!("{side}{i}"));
            let names: Vec<String> = std::fs::read_dir(&out)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            for e in expected {
                assert!(
                    names.iter().any(|n| n == e),
                    "{side}{i}: no {e} in {names:?}"
                );
            }
        }
    }
    println!(
        "{n} CLI migrations (run --kvm -> incoming, separate processes) in {:.1} s, 0 memory mismatches, no process left",
        started.elapsed().as_secs_f64()
    );
}
