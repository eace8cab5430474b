//! dirty-limit on a real guest: per-vCPU dirty rings, QEMU's controller every period, the
//! sleep served on the vCPU thread at each full ring. Needs /dev/kvm: skipped with a printed
//! reason where it is missing, failed when AUTOCONV_REQUIRE_ALL=1 (as CI sets it).

mod common;

use std::process::Command;

use autoconv::guest_image::{build_image, GuestSpec, Pattern};

fn kvm_usable(test: &str) -> bool {
    // The shared skip policy: SKIPPED with the reason, or a failure under CI.
    common::require::require_kvm(test)
}

#[test]
fn dirty_limit_on_a_real_guest_slows_its_writer_and_converges_with_memory_verified() {
    if !kvm_usable("dirty_limit_on_a_real_guest") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("rand.img");
    let spec = GuestSpec {
        pattern: Pattern::Random,
        wss_bytes: 64 << 20,
        ..GuestSpec::default()
    };
    std::fs::write(&img, build_image(&spec).unwrap()).unwrap();
    let out = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_autoconv"))
        .args(["run", "--kvm"])
        .arg(&img)
        .args(["--mem", "128MiB", "--warmup", "1s", "--after", "300ms"])
        .args(["--dirty-log", "ring", "--set", "auto-converge=off"])
        .args(["--set", "dirty-limit=on", "--set", "max-bandwidth=16MiB/s"])
        .args(["--set", "autoconv.time_limit_s=60", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["memory_verified"], true);
    // The controller put the writer to sleep at its full rings, and no CPU throttle ran.
    assert!(
        summary["dirty_limit_throttle_time_per_round_us"]
            .as_u64()
            .unwrap()
            > 0,
        "{summary}"
    );
    assert_eq!(summary["max_throttle_pct"], 0);
    assert!(summary["guest_cpu_lost_s"].as_f64().unwrap() > 0.0);
    let events = std::fs::read_to_string(out.join("events.csv")).unwrap();
    assert!(events.contains("dirty-limit-set,1,"), "{events}");
}
