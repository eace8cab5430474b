//! Kernels autoconv did not build, under its VMM: the shared long-mode CPL3 fixture (built with
//! gcc), and tiny hand-assembled multiboot kernels for the boot state and failure reports.
//!
//! A prerequisite that is missing (/dev/kvm, gcc, ld) skips a test with a printed reason, or
//! fails it when AUTOCONV_REQUIRE_ALL=1 (as CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;

use autoconv::migration::{CancelToken, MigrationStatus, ParamValue};
use autoconv::session::kvm::{run_migration, RunOptions, RunReport};

mod common;

/// The KVM lock, or None (skipped) when /dev/kvm (and gcc and ld, if needed) are missing.
fn prerequisites(test: &str, needs_gcc: bool) -> Option<std::sync::MutexGuard<'static, ()>> {
    let tools: &[&str] = if needs_gcc { &["gcc", "ld"] } else { &[] };
    common::prereq::kvm_with_tools(test, tools)
}

/// Build tests/fixtures/longmode-cpl3 with its own build script.
fn build_fixture(dir: &Path, wss_bytes: u64, pace: u32) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/longmode-cpl3");
    let out = dir.join("sweep.elf");
    let o = Command::new("bash")
        .arg(src.join("build.sh"))
        .arg(wss_bytes.to_string())
        .arg(pace.to_string())
        .arg(&out)
        .output()
        .expect("run build.sh");
    assert!(
        o.status.success(),
        "building the fixture failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// `image` with `sets`, after `warmup_ms`, watched 500 ms after the migration.
fn options(image: PathBuf, sets: &[(&str, ParamValue)], warmup_ms: u64) -> RunOptions {
    RunOptions {
        config: common::run_options::config(sets),
        warmup_ms,
        after_ms: 500,
        ..common::run_options::local(image)
    }
}

fn run(dir: &Path, name: &str, kernel: Vec<u8>, warmup_ms: u64) -> RunReport {
    let p = dir.join(name);
    std::fs::write(&p, kernel).unwrap();
    let opts = options(p, &[("max-bandwidth", ParamValue::Int(0))], warmup_ms);
    run_migration(&opts, &CancelToken::new()).unwrap()
}

/// The defect of issue 7: the fixture printed nothing after its switch to CPL3 and wrote no
/// page, yet the run said `completed`. It must run at CPL3 (its `B`s are written there only),
/// write pages while it is migrated, migrate with memory verified and go on on the
/// destination.
#[test]
fn the_longmode_cpl3_fixture_runs_at_cpl3_and_migrates() {
    let test = "the_longmode_cpl3_fixture_runs_at_cpl3_and_migrates";
    let Some(_kvm) = prerequisites(test, true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 16 MiB swept as fast as the vCPU goes: every 4 KiB page of it is re-dirtied between
    // two syncs; 128 MiB/s (QEMU's default) moves it in ~125 ms, under the 300 ms limit.
    let img = build_fixture(dir.path(), 16 << 20, 0);
    let opts = options(img, &[], 1_000);
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Completed,
        "{:?}",
        r.outcome
    );
    assert!(r.image.is_none(), "not an autoconv image");
    assert!(
        r.source_vcpu_failures.is_empty(),
        "{:?}",
        r.source_vcpu_failures
    );
    assert!(r.before.serial_bytes > 0, "no COM1 output from CPL3");
    assert!(
        r.source_serial.iter().all(|&b| b == b'B'),
        "unexpected COM1 bytes"
    );
    // Page writes while migrating, seen in KVM's dirty log (the kernel keeps no counters):
    // far more pages than its stack and page tables (a few), though not necessarily a whole
    // 4096-page sweep: a loaded host gave the vCPU 3679 pages' worth of the ~125 ms.
    assert!(r.activity.dirty_logged_pages >= 256, "{:?}", r.activity);
    assert!(r.guest_progress());
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.memory_verified, Some(true));
    let d = r.destination.as_ref().expect("local destination");
    assert!(d.resumed, "{d:?}");
    assert!(d.vcpu_failures.is_empty(), "{:?}", d.vcpu_failures);
    let p = d.progress.as_ref().unwrap();
    assert!(
        p.serial_bytes > 0,
        "no COM1 output on the destination: {p:?}"
    );
}

/// A foreign kernel on 2 vCPUs: autoconv starts only the boot vCPU (the AP waits for a SIPI
/// that this kernel never sends). Pausing for the stop-and-copy used to drop the parked AP and
/// fail the run as `guest-fault` ("vCPU 1 stopped: lost", exit 4); the AP must stay parked on
/// both sides and the run complete with memory verified.
#[test]
fn a_foreign_kernels_unstarted_ap_stays_parked_through_the_migration() {
    let test = "a_foreign_kernels_unstarted_ap_stays_parked_through_the_migration";
    let Some(_kvm) = prerequisites(test, true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = build_fixture(dir.path(), 16 << 20, 0);
    let mut opts = options(img, &[("max-bandwidth", ParamValue::Int(0))], 300);
    opts.machine.vcpus = 2;
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Completed,
        "{:?}",
        r.outcome
    );
    assert!(r.outcome.failure.is_none(), "{:?}", r.outcome.failure);
    assert!(
        r.source_vcpu_failures.is_empty(),
        "{:?}",
        r.source_vcpu_failures
    );
    assert_eq!(r.memory_verified, Some(true));
    let d = r.destination.as_ref().expect("local destination");
    assert!(d.resumed, "{d:?}");
    assert!(d.vcpu_failures.is_empty(), "{:?}", d.vcpu_failures);
    let p = d.progress.as_ref().unwrap();
    assert!(p.serial_bytes > 0, "the boot vCPU did not go on: {p:?}");
}

/// The multiboot entry gets a usable stack, as under QEMU: a kernel that pushes before setting
/// its own runs (with ESP = 0 its first push went to 0xfffffffc, outside guest memory).
#[test]
fn a_multiboot_kernel_may_push_before_setting_a_stack() {
    let test = "a_multiboot_kernel_may_push_before_setting_a_stack";
    let Some(_kvm) = prerequisites(test, false) else {
        return;
    };
    use iced_x86::code_asm::*;
    let dir = tempfile::tempdir().unwrap();
    let kernel = common::flat_kernel::build(|a| {
        a.push(i32::from(b'S')).unwrap();
        a.pop(eax).unwrap();
        a.mov(dx, 0x3f8u32 as i32).unwrap();
        a.out(dx, al).unwrap();
        common::flat_kernel::halt_forever(a);
    });
    let r = run(dir.path(), "push.bin", kernel, 500);
    assert!(
        r.source_vcpu_failures.is_empty(),
        "{:?}",
        r.source_vcpu_failures
    );
    assert_eq!(r.source_serial, b"S");
}

/// A guest that dies (an exception with no IDT: a triple fault) is reported, and a run whose
/// guest did nothing during the migration is flagged, not passed as a measurement.
#[test]
fn a_dead_guest_is_reported_and_its_run_flagged() {
    let test = "a_dead_guest_is_reported_and_its_run_flagged";
    let Some(_kvm) = prerequisites(test, false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = common::flat_kernel::build(|a| {
        a.ud2().unwrap();
    });
    let r = run(dir.path(), "ud2.bin", kernel, 500);
    // The memory still migrates (QEMU's `completed`)...
    assert_eq!(r.outcome.status, MigrationStatus::Completed);
    assert_eq!(r.memory_verified, Some(true));
    // ...but the run says the guest is dead and measured nothing.
    assert_eq!(
        r.source_vcpu_failures.len(),
        1,
        "{:?}",
        r.source_vcpu_failures
    );
    assert!(
        r.source_vcpu_failures[0].1.contains("triple fault"),
        "{:?}",
        r.source_vcpu_failures
    );
    assert!(!r.guest_progress());
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("no progress"), "{:?}", r.warnings);
    assert!(
        r.warnings[1].contains("source vCPU 0 stopped"),
        "{:?}",
        r.warnings
    );
}
