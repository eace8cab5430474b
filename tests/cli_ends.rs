//! Every run ends: a migration whose dirty syncs cannot keep up stops at
//! `autoconv.time_limit_s` with the reason, and a sweep too large to run is refused before it
//! allocates anything per run.

mod common;
use common::{scenarios, text};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run autoconv with a wall-clock limit (killed and failed past it); returns the output and
/// the child's peak memory in KiB.
fn run_with_limit(args: &[&str], limit: Duration) -> (std::process::Output, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoconv"))
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("autoconv {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    // SAFETY: getrusage writes the struct it is given; RUSAGE_CHILDREN covers waited children.
    let maxrss_kib = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    };
    (out, maxrss_kib)
}

#[test]
fn syncs_slower_than_the_periodic_interval_stop_at_the_time_limit() {
    let light = scenarios().join("light.toml");
    for set in ["host.dirty_sync_us_per_gib=1300000", "guest.memory=2500GiB"] {
        let (o, _) = run_with_limit(
            &[
                "sim",
                light.to_str().unwrap(),
                "--set",
                set,
                "--set",
                "autoconv.time_limit_s=120",
                "--no-out",
                "--json",
            ],
            Duration::from_secs(60),
        );
        assert_eq!(o.status.code(), Some(1), "{set}: {}", text(&o));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(s["status"], "not-converged", "{set}");
        let elapsed = s["elapsed_ms"].as_u64().unwrap();
        // Stopped at the limit, give or take one sync.
        assert!((120_000..140_000).contains(&elapsed), "{set}: {elapsed}");
    }
}

#[test]
fn a_sweep_too_large_is_refused_before_it_allocates() {
    let light = scenarios().join("light.toml");
    let light = light.to_str().unwrap();
    for grid in [
        &["--grid", "max-bandwidth=1:10000000:1"][..],
        &[
            "--grid",
            "max-bandwidth=1:900000:1",
            "--grid",
            "cpu-throttle-initial=1:99:1",
        ][..],
    ] {
        let mut args = vec!["sweep", light];
        args.extend_from_slice(grid);
        let t0 = Instant::now();
        let (o, _) = run_with_limit(&args, Duration::from_secs(60));
        assert_eq!(o.status.code(), Some(2), "{grid:?}: {}", text(&o));
        let err = common::stderr(&o);
        assert!(err.contains("at most 1000000"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    }
    // Peak memory of the children so far (the refused sweeps): far from gigabytes.
    // SAFETY: as in run_with_limit.
    let maxrss_kib = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    };
    assert!(maxrss_kib < 400 * 1024, "peak {maxrss_kib} KiB");
}
