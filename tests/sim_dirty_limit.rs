//! dirty-limit (QEMU 8.1+) in the simulator, pinned to the closed forms of QEMU's per-vCPU
//! controller (system/dirtylimit.c): one vCPU writing w pages/s against a quota of q MB/s.

mod common;
use autoconv::migration::{Event, MigrationStatus};
use common::*;

/// One vCPU sweeping `size` at `rate` pages/s, no fault cost, a link too slow to converge.
fn one_writer(rate: u64, size: &str, sets: &[&str]) -> autoconv::scenario::Scenario {
    let toml = format!(
        r#"
[guest]
memory = "1GiB"
vcpus = 1
[[region]]
name = "w"
size = "{size}"
pattern = "sequential"
write_rate_pages_s = {rate}
vcpus = 1
[host]
dirty_fault_us = 0
dirty_sync_us_per_gib = 0
[migration]
auto-converge = false
dirty-limit = true
max-bandwidth = "64MiB/s"
[autoconv]
time_limit_s = 40
"#
    );
    scenario(&toml, sets)
}

fn dirty_limit_set_ms(t: &autoconv::migration::Timeline) -> u64 {
    t.events
        .iter()
        .find_map(|e| match e {
            Event::DirtyLimitSet { t_ms, .. } => Some(*t_ms),
            _ => None,
        })
        .expect("dirty-limit's trigger fired")
}

#[test]
fn one_period_takes_390_to_100_mb_s_as_qemu_computes() {
    // 100,000 pages/s = 390 MB/s (whole MiB). Ring 4096 x 4 KiB = 16 MiB: ring-full time
    // 16e6/390 = 41025 us. Error 74% > 50%: sleep += 41025 * 74/26 = 116763 us per ring-full.
    // The vCPU then runs 40.96 ms (4096 pages at 100 K/s) per 40.96 + 116.763 ms:
    // 25,970 pages/s = 101 MB/s, within the 25 MB/s tolerance, so it stays there.
    let (o, t) = run(&one_writer(100_000, "256MiB", &["vcpu-dirty-limit=100"]));
    assert_eq!(o.status, MigrationStatus::NotConverged);
    let set_ms = dirty_limit_set_ms(&t);
    let expect_pages_s = 100_000.0 * 40.96 / (40.96 + 116.763);
    let late: Vec<_> = t
        .samples
        .iter()
        .filter(|s| s.t_ms > set_ms + 2_500 && s.status == MigrationStatus::Active)
        .collect();
    assert!(late.len() > 50, "{} samples", late.len());
    for s in &late {
        assert_eq!(s.dirty_limit_throttle_time_per_round_us, 116_763, "{s:?}");
        assert_eq!(s.dirty_limit_ring_full_time_us, 41_025, "{s:?}");
        let err = (s.guest_write_pages_s - expect_pages_s).abs() / expect_pages_s;
        assert!(
            err < 0.01,
            "{} pages/s vs {expect_pages_s}",
            s.guest_write_pages_s
        );
        // The throttle engine is not involved, and the vCPU's lost share is the sleep's.
        assert_eq!(s.throttle_pct, 0);
        let cpu = 100.0 * 40.96 / (40.96 + 116.763);
        assert!(
            (s.guest_cpu_pct - cpu).abs() < 1.0,
            "{} vs {cpu}",
            s.guest_cpu_pct
        );
    }
    // Before the trigger nothing is limited.
    let early = t
        .samples
        .iter()
        .find(|s| s.t_ms + 200 < set_ms && s.t_ms > 500);
    assert_eq!(
        early.map(|s| s.dirty_limit_throttle_time_per_round_us),
        Some(0)
    );
    assert_eq!(o.dirty_limit_throttle_time_per_round_us, Some(116_763));
}

#[test]
fn the_rate_settles_within_qemus_tolerance_of_any_quota() {
    for quota in [30_u64, 50, 150, 200, 300] {
        let set = format!("vcpu-dirty-limit={quota}");
        let (_, t) = run(&one_writer(
            100_000,
            "256MiB",
            &[&set, "autoconv.time_limit_s=60", "max-bandwidth=16MiB/s"],
        ));
        let set_ms = dirty_limit_set_ms(&t);
        // Within 15 s every quota has settled (the small steps take at most ~8 periods).
        let late: Vec<f64> = t
            .samples
            .iter()
            .filter(|s| s.t_ms > set_ms + 15_000 && s.status == MigrationStatus::Active)
            .map(|s| s.guest_write_pages_s * 4096.0 / f64::from(1u32 << 20))
            .collect();
        assert!(late.len() > 50, "quota {quota}: set at {set_ms} ms");
        for mb_s in late {
            // The controller measures whole MiB per period, so allow one more MB/s.
            assert!(
                (mb_s - quota as f64).abs() <= 26.0,
                "quota {quota}: settled at {mb_s:.1} MB/s"
            );
        }
    }
}

#[test]
fn a_writer_under_the_quota_is_never_slowed() {
    // 5,000 pages/s = 19 MB/s against the default 1 MB/s: within the 25 MB/s tolerance.
    let (o, t) = run(&one_writer(5_000, "16MiB", &["max-bandwidth=4MiB/s"]));
    assert!(t
        .events
        .iter()
        .any(|e| matches!(e, Event::DirtyLimitSet { quota_mb_s: 1, .. })));
    assert_eq!(o.guest_cpu_lost_s, 0.0);
    assert_eq!(o.dirty_limit_throttle_time_per_round_us, Some(0));
}

#[test]
fn only_the_writing_vcpu_is_slowed_and_it_beats_auto_converge_there() {
    let ac = run(&shipped("one-hot-writer", &[])).0;
    let dl = run(&shipped(
        "one-hot-writer",
        &["auto-converge=off", "dirty-limit=on"],
    ))
    .0;
    assert_eq!(ac.status, MigrationStatus::Completed);
    assert_eq!(dl.status, MigrationStatus::Completed);
    assert!(dl.total_time_ms < ac.total_time_ms, "{dl:?} vs {ac:?}");
    // At most the one writing vCPU's time: 1 vCPU for the whole migration.
    assert!(
        dl.guest_cpu_lost_s < dl.elapsed_ms as f64 / 1000.0,
        "{}",
        dl.guest_cpu_lost_s
    );
    assert!(dl.guest_cpu_lost_s * 5.0 < ac.guest_cpu_lost_s);
    assert!(dl.throttle_steps.is_empty());
}

#[test]
fn the_limit_is_removed_at_the_end_and_dirty_limit_and_auto_converge_exclude_each_other() {
    let (_, t) = run(&shipped(
        "one-hot-writer",
        &["auto-converge=off", "dirty-limit=on"],
    ));
    let last = t.samples.last().unwrap();
    assert_eq!(last.status, MigrationStatus::Completed);
    assert_eq!(last.dirty_limit_throttle_time_per_round_us, 0);
    let path = scenarios().join("one-hot-writer.toml");
    let err = autoconv::scenario::Scenario::load(&path, &["dirty-limit=on".into()]).unwrap_err();
    assert!(
        err.to_string().contains(
            "dirty-limit conflicts with auto-converge either of then available currently"
        ),
        "{err}"
    );
}

#[test]
fn qemu_before_8_1_has_no_dirty_limit_and_no_ring_means_no_dirty_limit() {
    let path = scenarios().join("one-hot-writer.toml");
    let sets = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    let err = autoconv::scenario::Scenario::load(
        &path,
        &sets(&[
            "auto-converge=off",
            "dirty-limit=on",
            "autoconv.qemu_version=7.2",
        ]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("dirty-limit is a QEMU 8.1 capability; autoconv.qemu_version is 7.2"),
        "{err}"
    );
    assert!(autoconv::scenario::Scenario::load(
        &path,
        &sets(&[
            "auto-converge=off",
            "dirty-limit=on",
            "autoconv.qemu_version=8.1"
        ]),
    )
    .is_ok());
    // Without a dirty ring the migration is refused as QEMU refuses the capability.
    let s = autoconv::scenario::Scenario::load(
        &path,
        &sets(&[
            "auto-converge=off",
            "dirty-limit=on",
            "host.dirty_ring_size=0",
        ]),
    )
    .unwrap();
    let (o, _) = run(&s);
    assert_eq!(o.status, MigrationStatus::Failed);
    assert_eq!(
        o.reason.as_deref(),
        Some("dirty-limit requires KVM with accelerator property 'dirty-ring-size' set")
    );
}

#[test]
fn cli_refuses_bad_values_with_qemus_words_and_the_kvm_backend_refuses_dirty_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenarios().join("one-hot-writer.toml");
    let s = s.to_str().unwrap();
    for (set, msg) in [
        (
            "vcpu-dirty-limit=0",
            "Parameter 'vcpu_dirty_limit' must be greater than 1 MB/s",
        ),
        (
            "x-vcpu-dirty-limit-period=0",
            "Option x-vcpu-dirty-limit-period expects a value between 1 and 1000",
        ),
        (
            "host.dirty_ring_size=1000",
            "expected 0 (no dirty ring) or a power of two from 1024 to 65536 entries",
        ),
    ] {
        let o = autoconv(&["sim", s, "--set", set], dir.path());
        assert_eq!(o.status.code(), Some(2), "{set}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(msg), "{set}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // The KVM backend harvests a bitmap: refused before any VM is built.
    let o = autoconv(
        &[
            "run",
            "--kvm",
            "no-such-image.elf",
            "--set",
            "dirty-limit=on",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("dirty-limit requires KVM with accelerator property 'dirty-ring-size' set"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
