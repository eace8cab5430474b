//! Real KVM guests, migrated by the core. Each test skips with a printed reason when /dev/kvm is
//! not usable, and fails instead under AUTOCONV_REQUIRE_ALL=1 (CI): it never passes silently.
//!
//! The tests share two cores with everything else, so they take a lock and run one at a time,
//! with small guests and bandwidth limits chosen so each finishes in seconds.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::guest::image;
use common::run_options::config;

use autoconv::guest_image::{build_image, layout, GuestSpec, Pace, Pattern};
use autoconv::kvm::{BootPath, LoadPlan, Machine, MachineConfig};
use autoconv::migration::dirty_rate::DirtyRateOptions;
use autoconv::migration::{CancelToken, FailureKind, MigrationConfig, MigrationStatus, ParamValue};
use autoconv::session::kvm::{run_migration, Destination, RunOptions, RunReport};
use autoconv::transport::protocol;
use autoconv::transport::verify::VerifyMode;

/// Sequential writes over 32 MiB, ~20 us of spinning per write: tens of thousands of page
/// writes/s (a few sweeps/s), so
/// throttling slows it in proportion.
/// Measure a booted machine with the one dirty-rate routine every backend uses.
fn profile_machine(
    m: &mut Machine,
    opts: &DirtyRateOptions,
) -> Result<autoconv::migration::dirty_rate::DirtyRates, autoconv::migration::BackendError> {
    autoconv::session::kvm_profile::profile_machine(m, opts, &CancelToken::new())
}

fn rate_options(levels_pct: &[u32], hold_ms: u64, interval_ms: u64) -> DirtyRateOptions {
    DirtyRateOptions {
        levels_pct: levels_pct.to_vec(),
        hold_ms,
        interval_ms,
    }
}

fn paced_spec() -> GuestSpec {
    GuestSpec {
        pattern: Pattern::Sequential,
        wss_bytes: 32 << 20,
        pace: Pace::CpuSpin {
            iterations_per_write: 50_000,
        },
        marker_every_sweeps: 1,
        ..GuestSpec::default()
    }
}

/// Pages in the paced guest's working set: one sweep writes each once.
const PACED_WSS_PAGES: u64 = (32 << 20) / 4096;

/// The paced guest's own unthrottled rates on this host, now (a 1 s profile at 0%): the
/// tests size links, waits and limits from it, so a loaded host makes them slower, not wrong.
/// Fixed figures (">10K page writes/s") failed under load although the code was right.
fn unthrottled_rate(img: &Path) -> autoconv::migration::dirty_rate::LevelDirtyRate {
    let mut m = boot_small(img);
    m.start().unwrap();
    let row = profile_machine(&mut m, &rate_options(&[0], 1_000, 500))
        .unwrap()
        .levels
        .remove(0);
    assert!(
        row.guest_write_pages_s > 100.0 && row.dirty_pages_s > 100.0,
        "the guest barely runs: {row:?}"
    );
    row
}

/// A link `times` slower than the guest dirties memory unthrottled (so no pass can end below
/// the downtime threshold without a throttle), capped at 32 MiB/s, in whole pages per second.
fn link_slower_than_guest(
    rate: &autoconv::migration::dirty_rate::LevelDirtyRate,
    times: f64,
) -> u64 {
    let bytes_s = (rate.dirty_pages_s * 4096.0 / times) as u64;
    (bytes_s.min(32 << 20) / 4096).max(1) * 4096
}

/// Milliseconds one pass over the paced guest's working set takes on a `bandwidth` link.
fn pass_ms(bandwidth_bytes_s: u64) -> u64 {
    (32u64 << 20) * 1000 / bandwidth_bytes_s
}

/// CPU time the host gave this process's vCPU threads so far (ns).
fn vcpu_cpu_ns() -> u64 {
    autoconv::kvm::host_cpu::tasks()
        .iter()
        .filter(|t| t.name.starts_with("vcpu"))
        .map(|t| t.cpu_ns)
        .sum()
}

/// The common defaults, the guest watched for 500 ms after the migration.
fn options(image: PathBuf, config: MigrationConfig) -> RunOptions {
    RunOptions {
        config,
        after_ms: 500,
        ..common::run_options::local(image)
    }
}

fn pages(c: &[autoconv::kvm::VcpuCounters]) -> u64 {
    c.iter().map(|c| c.pages_written).sum()
}

/// The source guest must run on, unthrottled, after a migration that did not complete.
/// A booted (not yet started) 64 MiB, 1-vCPU machine running `img`.
fn boot_small(img: &Path) -> Machine {
    let plan = LoadPlan::from_file(img, 64 << 20).unwrap();
    Machine::boot(
        MachineConfig {
            mem_bytes: 64 << 20,
            vcpus: 1,
            ..MachineConfig::default()
        },
        &plan,
        BootPath::Auto,
    )
    .unwrap()
}

/// Relative to the guest's own pace before the migration on this run: a 99% throttle left on
/// would give ~1% of it, a stopped guest 0.
fn assert_source_survived(r: &RunReport) {
    assert_eq!(r.source_throttle_after_pct, 0, "throttle left on");
    let after = r.source_after.as_ref().expect("source watched after");
    assert!(
        after.pages_written_per_s > 0.1 * r.before.pages_written_per_s,
        "source guest not running (freely) after the failure: {after:?} vs before {:?}",
        r.before
    );
}

#[test]
fn auto_converge_makes_a_nonconverging_guest_converge_and_the_destination_runs_on() {
    let Some(_g) = common::prereq::kvm("auto_converge_makes_a_nonconverging_guest_converge") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "paced.img", &paced_spec());
    // A link three times slower than the guest dirties memory on this host now: without a
    // throttle every pass re-dirties the whole working set and none ends below the 300 ms
    // threshold. Limits and waits scale with the pass time, so a loaded host is slower only.
    let rate = unthrottled_rate(&img);
    let bandwidth = link_slower_than_guest(&rate, 3.0);
    let pass = pass_ms(bandwidth);
    let base = [
        ("max-bandwidth", ParamValue::Int(bandwidth as i64)),
        ("cpu-throttle-initial", ParamValue::Int(99)),
    ];
    // Watch the destination for one and a half sweeps at the unthrottled pace: a marker falls.
    let sweep_ms = (PACED_WSS_PAGES as f64 * 1000.0 / rate.guest_write_pages_s) as u64;
    let watched = |c: MigrationConfig| {
        let mut o = options(img.clone(), c);
        o.after_ms = (sweep_ms * 3 / 2).max(500);
        o
    };

    let mut without = config(&base);
    without.autoconv.time_limit_ms = (5 * pass).max(5_000);
    let r = run_migration(&watched(without), &CancelToken::new()).unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::NotConverged,
        "{rate:?} {bandwidth} B/s: {:?}",
        r.outcome
    );
    assert!(r.outcome.throttle_steps.is_empty());
    assert_source_survived(&r);

    let mut with = config(&base);
    with.params.auto_converge = true;
    with.autoconv.time_limit_ms = (30 * pass).max(30_000);
    let r = run_migration(&watched(with), &CancelToken::new()).unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Completed,
        "{rate:?} {bandwidth} B/s: {:?}",
        r.outcome
    );
    // Straight to 99% (it may step "again" to 99 if a pass needs more time under load).
    assert!(!r.outcome.throttle_steps.is_empty());
    assert!(
        r.outcome.throttle_steps.iter().all(|&p| p == 99),
        "{:?}",
        r.outcome
    );
    assert!(r.outcome.guest_cpu_lost_s > 0.5, "{:?}", r.outcome);
    assert_eq!(r.memory_verified, Some(true));
    let d = r.destination.as_ref().expect("local destination");
    assert!(d.resumed, "{d:?}");
    // Counters continue from exactly where the source stopped...
    assert_eq!(d.counters_at_resume, r.source_final);
    assert!(pages(&r.source_final) > 0);
    // ...and keep moving on the destination, at the unthrottled pace.
    let p = d.progress.as_ref().unwrap();
    assert!(pages(&p.end) > pages(&r.source_final));
    assert!(
        p.pages_written_per_s > 0.3 * r.before.pages_written_per_s,
        "destination {} vs before {}",
        p.pages_written_per_s,
        r.before.pages_written_per_s
    );
    // One marker per sweep: a destination that wrote a whole sweep's pages crossed a marker.
    let written = pages(&p.end) - pages(&p.start);
    assert!(
        p.serial_bytes > 0 || written < PACED_WSS_PAGES,
        "markers continue on the destination: {written} pages, no marker"
    );
    assert!(d.vcpu_failures.is_empty());
    assert!(
        r.guest_progress() && r.warnings.is_empty(),
        "{:?}",
        r.warnings
    );
}

#[test]
fn higher_throttle_means_fewer_guest_writes() {
    let Some(_g) = common::prereq::kvm("higher_throttle_means_fewer_guest_writes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "paced.img", &paced_spec());
    let mut m = boot_small(&img);
    m.start().unwrap();
    // One level at a time, with the CPU the host gave the vCPU over each: on a loaded host the
    // guest gets less than a core even unthrottled, so its writes are compared per CPU second.
    let mut rows = Vec::new();
    let mut cpu_share = Vec::new();
    for pct in [0, 50, 90] {
        let (cpu0, t0) = (vcpu_cpu_ns(), std::time::Instant::now());
        let row = profile_machine(&mut m, &rate_options(&[pct], 1_000, 500))
            .unwrap()
            .levels
            .remove(0);
        cpu_share.push((vcpu_cpu_ns() - cpu0) as f64 / t0.elapsed().as_nanos() as f64);
        rows.push(row);
    }
    let w: Vec<f64> = rows.iter().map(|r| r.guest_write_pages_s).collect();
    assert!(w[0] > 100.0, "the guest runs: {rows:?}");
    // The guest's own writes per second of CPU, unthrottled on this run.
    let writes_per_cpu_s = w[0] / cpu_share[0].max(0.01);
    for (r, share) in rows.iter().zip(&cpu_share) {
        let p = f64::from(r.throttle_pct);
        // The throttle's sleeps take the vCPU's share of time: 50% leaves ~50%, 90% ~10%. A late
        // timer (loaded host) sleeps it less often, so the bound above is generous; an absent
        // throttle leaves 100.
        assert!(
            r.guest_cpu_pct > 100.0 - p - 12.0 && r.guest_cpu_pct <= 100.0 - p / 2.0 + 0.5,
            "cpu share {} at {}%: {rows:?}",
            r.guest_cpu_pct,
            r.throttle_pct
        );
        // And the guest writes no more than that share of time lets it, at its own pace per
        // CPU second (half again for noise): on an idle host 90% cuts writes to ~10%.
        assert!(
            r.guest_write_pages_s <= 1.5 * writes_per_cpu_s * r.guest_cpu_pct / 100.0,
            "{}% must slow the guest: {rows:?}, vCPU core shares {cpu_share:?}",
            r.throttle_pct
        );
        // The vCPU thread sleeps when throttled instead of spinning: its host CPU follows the
        // guest's share. The margin is the thread's own exits, signals and the level's setup
        // (a CI run saw 0.16 at 90%); a spinning thread would show ~1.0.
        assert!(
            *share <= 1.05 * (r.guest_cpu_pct / 100.0) + 0.10,
            "{cpu_share:?} {rows:?}"
        );
        assert!(r.dirty_pages_s > 0.0);
    }
    // Throttle removed at the end: the guest is back at full speed.
    assert_eq!(m.throttle_pct(), 0);
}

#[test]
fn a_dropped_dirty_bit_fails_memory_verification() {
    let Some(_g) = common::prereq::kvm("a_dropped_dirty_bit_fails_memory_verification") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "paced.img", &paced_spec());
    // The status page changes with every write the guest makes: losing its dirty bit means
    // the destination keeps the stale copy from the first pass. Only the full re-read sees
    // it: the digests sent with the pages prove the destination holds what was sent. At
    // 16 MiB/s the first pass takes seconds, so even a starved guest writes again after its
    // status page was sent, and the 60 s downtime limit lets the second pass be the last.
    let mut opts = options(
        img,
        config(&[
            ("max-bandwidth", ParamValue::Int(16 << 20)),
            ("downtime-limit", ParamValue::Int(60_000)),
        ]),
    );
    opts.drop_dirty_gfn = Some(layout::STATUS_GPA / 4096);
    opts.verify = VerifyMode::Full;
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    assert_eq!(r.outcome.status, MigrationStatus::Failed, "{:?}", r.outcome);
    assert_eq!(r.memory_verified, Some(false));
    // Typed: the kind and the page, not a search of the reason text.
    match r.outcome.failure {
        Some(FailureKind::MemoryMismatch {
            mismatched_pages,
            pages,
            first_gpa,
        }) => {
            assert_eq!(first_gpa, layout::STATUS_GPA, "names the page");
            assert!(mismatched_pages >= 1 && pages == (64 << 20) / 4096);
        }
        other => panic!("expected a memory mismatch, got {other:?}: {:?}", r.outcome),
    }
    let reason = r.outcome.reason.clone().unwrap();
    assert!(
        reason.contains("0x101000"),
        "the text names the page too: {reason}"
    );
    let d = r.destination.as_ref().unwrap();
    assert!(
        !d.resumed,
        "the destination must not run a guest whose memory differs"
    );
    assert_source_survived(&r);
}

#[test]
fn unreachable_destination_fails_cleanly() {
    let Some(_g) = common::prereq::kvm("unreachable_destination_fails_cleanly") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "paced.img", &paced_spec());
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed again: nobody listens there
    let mut opts = options(img, MigrationConfig::default());
    opts.destination = Destination::Remote(addr);
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    assert_eq!(r.outcome.status, MigrationStatus::Failed);
    let reason = r.outcome.reason.clone().unwrap();
    assert!(
        reason.contains("cannot connect to the destination"),
        "{reason}"
    );
    assert!(reason.contains("refused"), "{reason}");
    assert_source_survived(&r);
}

#[test]
fn connection_dropped_mid_migration_fails_cleanly() {
    let Some(_g) = common::prereq::kvm("connection_dropped_mid_migration_fails_cleanly") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "paced.img", &paced_spec());
    // A destination that accepts, takes ~4 MiB of stream, then hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        // Speak the current handshake (the Hello in, an accepting Reply out), so the source
        // gets past it and the drop happens mid-stream, not in the handshake.
        let mut hello = [0u8; protocol::HELLO_BYTES];
        s.read_exact(&mut hello).unwrap();
        let reply = protocol::Reply {
            status: 0,
            nonce: [9; protocol::NONCE_BYTES],
            message: String::new(),
        };
        s.write_all(&reply.encode()).unwrap();
        let mut sink = vec![0u8; 4 << 20];
        let _ = s.read_exact(&mut sink);
        // Dropping the socket closes it.
    });
    let mut opts = options(img, config(&[("max-bandwidth", ParamValue::Int(16 << 20))]));
    opts.destination = Destination::Remote(addr);
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    fake.join().unwrap();
    assert_eq!(r.outcome.status, MigrationStatus::Failed, "{:?}", r.outcome);
    let reason = r.outcome.reason.clone().unwrap();
    assert!(reason.contains("connection lost"), "{reason}");
    assert!(r.outcome.elapsed_ms < 10_000);
    assert_source_survived(&r);
}

#[test]
fn cancel_mid_migration_resumes_the_source_unthrottled() {
    let Some(_g) = common::prereq::kvm("cancel_mid_migration_resumes_the_source_unthrottled")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "paced.img", &paced_spec());
    // Throttled at 50% and no further on a link four times slower than the guest dirties
    // memory unthrottled (on this host, now): at half speed it still re-dirties its whole
    // working set every pass, so this migration cannot complete before the cancel.
    let rate = unthrottled_rate(&img);
    let bandwidth = link_slower_than_guest(&rate, 4.0);
    let mut c = config(&[
        ("max-bandwidth", ParamValue::Int(bandwidth as i64)),
        ("cpu-throttle-initial", ParamValue::Int(50)),
        ("max-cpu-throttle", ParamValue::Int(50)),
    ]);
    c.params.auto_converge = true;
    c.autoconv.time_limit_ms = 60 * pass_ms(bandwidth);
    let opts = options(img, c);
    let cancel = CancelToken::new();
    let canceller = {
        let c = cancel.clone();
        // After the throttle's first step (two passes after the first), in pass times.
        let after_ms = opts.warmup_ms + pass_ms(bandwidth) * 9 / 2;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(after_ms));
            c.cancel();
        })
    };
    let r = run_migration(&opts, &cancel).unwrap();
    canceller.join().unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Cancelled,
        "{rate:?} {bandwidth} B/s: {:?}",
        r.outcome
    );
    assert!(!r.outcome.throttle_steps.is_empty(), "the throttle was on");
    assert_eq!(r.memory_verified, None);
    assert_source_survived(&r);
    let d = r.destination.as_ref().unwrap();
    assert!(!d.resumed);
}

#[test]
fn no_thread_is_left_behind() {
    let Some(_g) = common::prereq::kvm("no_thread_is_left_behind") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "paced.img", &paced_spec());
    // The test harness runs threads of its own; count the VMM's, by name.
    let ours = || -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|c| c.trim().to_string())
            .filter(|c| c.starts_with("vcpu") || c == "throttle-timer" || c == "destination")
            .collect()
    };
    assert!(ours().is_empty(), "{:?}", ours());
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut opts = options(img.clone(), MigrationConfig::default());
    opts.destination = Destination::Remote(addr);
    run_migration(&opts, &CancelToken::new()).unwrap();
    let opts = options(img, config(&[("max-bandwidth", ParamValue::Int(0))]));
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    assert_eq!(r.outcome.status, MigrationStatus::Completed);
    // Other tests of this binary wait for the KVM lock we hold, so any VMM thread is ours.
    assert!(ours().is_empty(), "threads left behind: {:?}", ours());
}

#[test]
fn both_boot_paths_and_multiple_vcpus_run_the_workload() {
    let Some(_g) = common::prereq::kvm("both_boot_paths_and_multiple_vcpus_run_the_workload")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = GuestSpec {
        pattern: Pattern::Random,
        wss_bytes: 16 << 20,
        vcpus: 2,
        marker_every_sweeps: 1,
        ..GuestSpec::default()
    };
    let img = image(dir.path(), "two.img", &spec);
    let plan = LoadPlan::from_file(&img, 64 << 20).unwrap();
    for path in [BootPath::Auto, BootPath::Multiboot] {
        let mut m = Machine::boot(
            MachineConfig {
                mem_bytes: 64 << 20,
                vcpus: 2,
                ..MachineConfig::default()
            },
            &plan,
            path,
        )
        .unwrap();
        m.start().unwrap();
        // The multiboot path's 32-bit boot is emulated (slow), and a loaded host slower still:
        // wait until every vCPU wrote and a marker fell, up to a generous 20 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline
            && m.failures().is_empty()
            && !(m.counters().iter().all(|c| c.pages_written > 0) && m.serial_bytes() > 0)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let c = m.counters();
        assert!(m.failures().is_empty(), "{path:?}: {:?}", m.failures());
        assert!(c.iter().all(|c| c.pages_written > 0), "{path:?}: {c:?}");
        assert!(m.serial_bytes() > 0, "{path:?}: markers on COM1");
        assert!(m.serial_output().iter().all(|&b| b == b'B'));
    }
}

#[test]
fn images_that_cannot_run_are_refused_before_any_vm() {
    // No KVM needed: these are refused by the loader.
    let dir = tempfile::tempdir().unwrap();
    let good = build_image(&GuestSpec {
        wss_bytes: 256 << 20,
        ..GuestSpec::default()
    })
    .unwrap();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "junk.img",
            b"definitely not a kernel".to_vec(),
            "512MiB",
            "no multiboot header",
        ),
        (
            "truncated.img",
            good[..good.len() / 2].to_vec(),
            "512MiB",
            "truncated",
        ),
        ("big.img", good.clone(), "64MiB", "needs guest memory up to"),
    ];
    let bin = env!("CARGO_BIN_EXE_autoconv");
    for (name, bytes, mem, expect) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = std::process::Command::new(bin)
            .args(["run", "--kvm"])
            .arg(&p)
            .args(["--mem", mem, "--warmup", "0s"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        // The image is checked before /dev/kvm: the same message on a machine without KVM.
        assert!(err.contains(expect), "{name}: {err}");
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
    }
}

#[test]
fn manual_clear_and_dirty_ring_modes_migrate_with_verified_memory() {
    let Some(_g) = common::prereq::kvm("manual_clear_and_dirty_ring_modes_migrate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "paced.img", &paced_spec());
    for mode in ["clear", "ring:16KiB"] {
        let mut opts = options(
            img.clone(),
            config(&[("max-bandwidth", ParamValue::Int(0))]),
        );
        // A 16 KiB ring holds 1024 entries: the guest fills it many times per pass, so the
        // ring-full exits are exercised too.
        opts.machine.dirty_log = mode.parse().unwrap();
        let r = run_migration(&opts, &CancelToken::new()).unwrap();
        assert_eq!(
            r.outcome.status,
            MigrationStatus::Completed,
            "{mode}: {:?}",
            r.outcome
        );
        assert_eq!(r.memory_verified, Some(true), "{mode}");
        let d = r.destination.as_ref().unwrap();
        assert_eq!(d.counters_at_resume, r.source_final, "{mode}");
        assert!(r.outcome.dirty_sync_count >= 2, "{mode}");
    }
}

#[test]
fn dma_writes_are_tracked_and_not_slowed_by_the_throttle() {
    let Some(_g) = common::prereq::kvm("dma_writes_are_tracked_and_not_slowed_by_the_throttle")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A guest that writes nothing: every dirty page comes from the device.
    let img = image(
        dir.path(),
        "idle.img",
        &GuestSpec {
            pattern: Pattern::Idle,
            wss_bytes: 4096,
            marker_every_sweeps: 0,
            ..GuestSpec::default()
        },
    );
    let dma = autoconv::kvm::dma::DmaConfig {
        pages_per_s: 50_000,
        region_gpa: 48 << 20,
        region_bytes: 16 << 20,
    };
    // KVM never logs these host writes: only the VMM's own tracking can carry them, and the
    // memory check at switchover fails if it does not.
    let mut opts = options(
        img.clone(),
        config(&[("max-bandwidth", ParamValue::Int(64 << 20))]),
    );
    opts.dma = Some(dma);
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Completed,
        "{:?}",
        r.outcome
    );
    assert_eq!(r.memory_verified, Some(true));
    // The device ran through the migration (50K pages/s configured; a loaded host gives its
    // thread less, so no fixed rate is asserted).
    assert!(r.dma_pages_written > 1_000, "{}", r.dma_pages_written);
    // Passes after the first found pages to resend: the device's.
    assert!(r.outcome.normal_pages > 4096 + 100, "{:?}", r.outcome);

    let mut m = boot_small(&img);
    m.set_dma(Some(dma)).unwrap();
    m.start().unwrap();
    let rows = profile_machine(&mut m, &rate_options(&[0, 90], 600, 100))
        .unwrap()
        .levels;
    let (free, throttled) = (rows[0].dirty_pages_s, rows[1].dirty_pages_s);
    assert!(free > 1_000.0, "the device wrote while profiled: {rows:?}");
    assert!(
        throttled > 0.7 * free,
        "the throttle must not slow DMA: {rows:?}"
    );
}

#[test]
fn the_destination_refuses_malformed_streams() {
    use autoconv::transport::incoming::accept_one;
    use autoconv::transport::protocol::{Command, Header, Hello};
    use std::io::{Read, Write};
    let Some(_g) = common::prereq::kvm("the_destination_refuses_malformed_streams") else {
        return;
    };
    let hello = Hello {
        ram_bytes: 64 << 20,
        vcpus: 1,
        flags: 0,
        nonce: [9; 16],
    };
    let header = |command, count, arg| {
        Header {
            command,
            count,
            arg,
        }
        .encode()
        .to_vec()
    };
    let mut bad_command = header(Command::EndOfIteration, 0, 0);
    bad_command[0] = 42;
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
        (
            "bad magic",
            b"NOTAUTOCONV-STREAM-AT-ALL-48-bytes-long-handshak".to_vec(),
            vec![],
            "bad magic",
        ),
        (
            "pages outside memory",
            hello.encode().to_vec(),
            header(Command::Pages, 2, (64 << 20) - 4096),
            "outside guest memory",
        ),
        (
            "unknown command",
            hello.encode().to_vec(),
            bad_command,
            "unknown command 42",
        ),
        (
            "huge device state",
            hello.encode().to_vec(),
            header(Command::DeviceState, u32::MAX, 0),
            "device state of",
        ),
        (
            "device state that is not state",
            hello.encode().to_vec(),
            [header(Command::DeviceState, 5, 0), b"hello".to_vec()].concat(),
            "device state is not valid",
        ),
    ];
    for (name, hello_bytes, frames, expect) in cases {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let dest = std::thread::spawn(move || {
            accept_one(&listener, &CancelToken::new(), Default::default()).map(|_| ())
        });
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&hello_bytes).unwrap();
        let mut reply = [0u8; autoconv::transport::protocol::REPLY_FIXED_BYTES];
        let _ = s.read_exact(&mut reply);
        let _ = s.write_all(&frames);
        let err = dest.join().unwrap().unwrap_err().to_string();
        assert!(err.contains(expect), "{name}: {err}");
    }
}

/// A foreign multiboot kernel (a.out kludge, flat binary): prints "Hi" on COM1 and halts.
fn hello_kernel() -> Vec<u8> {
    use iced_x86::code_asm::*;
    common::flat_kernel::build(|a| {
        a.mov(dx, 0x3f8u32 as i32).unwrap();
        for b in *b"Hi" {
            a.mov(al, i32::from(b)).unwrap();
            a.out(dx, al).unwrap();
        }
        common::flat_kernel::halt_forever(a);
    })
}

#[test]
fn a_foreign_multiboot_kernel_runs_and_migrates() {
    let Some(_g) = common::prereq::kvm("a_foreign_multiboot_kernel_runs_and_migrates") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hello.bin");
    std::fs::write(&p, hello_kernel()).unwrap();
    let mut opts = options(p, config(&[("max-bandwidth", ParamValue::Int(0))]));
    // Its few CPL0 instructions are emulated: give it time to print before migrating.
    opts.warmup_ms = 500;
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Completed,
        "{:?}",
        r.outcome
    );
    assert_eq!(r.memory_verified, Some(true));
    assert_eq!(r.source_serial, b"Hi");
    assert!(r.image.is_none(), "not an autoconv image");
    // It halted during the warm-up: the run is flagged as measuring no workload.
    assert!(!r.guest_progress(), "{:?}", r.activity);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("no progress"), "{:?}", r.warnings);
    let d = r.destination.as_ref().unwrap();
    assert!(d.resumed, "{d:?}");
    assert!(d.vcpu_failures.is_empty(), "{:?}", d.vcpu_failures);
}
