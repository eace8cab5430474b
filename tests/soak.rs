//! A soak: real KVM migrations back to back in one process (each boots a guest, migrates it
//! over TCP to a destination on its own thread, verifies memory, resumes it there and tears
//! both down), checking that every one completes with memory verified and that nothing is
//! left behind: the process's file descriptors and threads come back to their count after
//! the first migration, and its resident memory does not grow with the runs.
//!
//! 5 migrations by default (seconds); `AUTOCONV_SOAK_RUNS=50 cargo test --release --test soak
//! -- --nocapture` is the soak the README reports. Skipped with a printed reason without
//! /dev/kvm; failing instead under AUTOCONV_REQUIRE_ALL=1. tests/soak_cli.rs is the same soak as
//! separate `run --kvm` and `incoming` processes (its own binary: its children's pipes and
//! threads would count here).

mod common;

use std::time::Instant;

use autoconv::guest_image::{GuestSpec, Pattern};
use autoconv::migration::{CancelToken, MigrationStatus};
use autoconv::session::kvm::{run_migration, RunOptions};

/// What the process holds after one migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    fds: usize,
    threads: usize,
    rss_kib: u64,
}

fn held() -> Held {
    let count = |dir: &str| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Held {
        // read_dir holds one descriptor of its own while counting: the same every time.
        fds: count("/proc/self/fd"),
        threads: own_threads(),
        rss_kib,
    }
}

/// This process's threads, without the kernel's: KVM runs a VM's NX huge page recovery as a
/// task of the process (`kvm-nx-lpage-re`), which exits on its own time after the VM's last
/// descriptor closes, so counting it would call a thread autoconv already let go "left behind"
/// (or, still exiting after the first run, make the baseline one too high).
fn own_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                    !comm.starts_with("kvm-")
                })
                .count()
        })
        .unwrap_or(0)
}

fn runs() -> usize {
    std::env::var("AUTOCONV_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(2)
}

#[test]
fn migrations_back_to_back_verify_and_leave_nothing_behind() {
    if !common::require::require_kvm("migrations_back_to_back_verify_and_leave_nothing_behind") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = GuestSpec {
        pattern: Pattern::Random,
        wss_bytes: 8 << 20,
        ..GuestSpec::default()
    };
    let mut config = common::run_options::unlimited();
    config.params.auto_converge = true;
    let opts = RunOptions {
        machine: common::run_options::machine(32 << 20),
        config,
        warmup_ms: 100,
        after_ms: 100,
        ..common::run_options::local(common::guest::image(dir.path(), "g.img", &spec))
    };
    let n = runs();
    let t0 = Instant::now();
    let mut first = None;
    let mut max_rss_kib = 0;
    let mut pages_verified = 0u64;
    let mut mismatches = 0u64;
    for i in 0..n {
        let r = run_migration(&opts, &CancelToken::new()).unwrap();
        assert_eq!(
            r.outcome.status,
            MigrationStatus::Completed,
            "migration {i}: {:?}",
            r.outcome
        );
        if r.memory_verified != Some(true) {
            mismatches += 1;
        }
        let d = r.destination.as_ref().expect("local destination");
        assert!(
            d.resumed,
            "migration {i}: destination did not resume: {d:?}"
        );
        pages_verified += d.stats.verified_pages;
        drop(r);
        let now = held();
        max_rss_kib = max_rss_kib.max(now.rss_kib);
        let base = *first.get_or_insert(now);
        assert_eq!(
            (now.fds, now.threads),
            (base.fds, base.threads),
            "migration {i}: descriptors or threads left behind (after the first: {base:?}, now: {now:?})"
        );
        // Guest memory (32 MiB on each side) is unmapped after each run; allocator caches
        // may keep a little.
        assert!(
            now.rss_kib < base.rss_kib + 16 * 1024,
            "migration {i}: resident memory grew from {} KiB to {} KiB",
            base.rss_kib,
            now.rss_kib
        );
    }
    assert_eq!(mismatches, 0);
    let base = first.unwrap();
    let last = held();
    println!(
        "soak: {n} migrations in {:.1} s, all completed, memory verified ({pages_verified} pages compared, {mismatches} mismatches); after the first / last: {} / {} fds, {} / {} threads, RSS {} / {} KiB (max {} KiB)",
        t0.elapsed().as_secs_f64(),
        base.fds,
        last.fds,
        base.threads,
        last.threads,
        base.rss_kib,
        last.rss_kib,
        max_rss_kib
    );
}
