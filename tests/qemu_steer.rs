//! autoconv's predictive policy steering a real QEMU 7.2's auto-converge: `run --qemu
//! --set autoconv.policy=predictive`, and `record --qmp SOCKET --steer predictive` on a QEMU
//! another client owns (whose parameters come back as they were).
//!
//! Needs qemu-system-x86_64 and /dev/kvm: skips with a printed reason where they are missing,
//! and fails instead when AUTOCONV_REQUIRE_ALL=1 (CI).

mod common;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use common::process::{bin, summary};
use common::qemu_pair::QemuPair;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The throttle percentages QEMU reported, in order, without repeats.
fn qemu_throttle_steps(s: &Value) -> Vec<u64> {
    s["throttle_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[test]
fn run_qemu_with_the_predictive_policy_lands_qemus_first_step_where_the_policy_wants() {
    let Some(_g) = common::prereq::qemu(
        "run_qemu_with_the_predictive_policy_lands_qemus_first_step_where_the_policy_wants",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::sequential_cli(dir.path());
    let out = dir.path().join("run");
    let o = bin()
        .args([
            "run",
            "--qemu",
            &img,
            "--mem",
            "64MiB",
            "--set",
            "auto-converge=on",
            "--set",
            "max-bandwidth=16MiB/s",
            "--set",
            "autoconv.policy=predictive",
            "--set",
            "autoconv.time_limit_s=120",
            "--warmup",
            "500ms",
            "--after",
            "300ms",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    assert!(
        stdout.contains("steer (autoconv.policy=predictive)"),
        "{stdout}"
    );
    let s = summary(&out);
    assert_eq!(s["status"], "completed");
    let actions = s["steer"]["actions"].as_array().unwrap();
    assert!(!actions.is_empty(), "{s}");
    // The first step QEMU took is the cpu-throttle-initial autoconv set before it: the
    // writer re-dirties every pass, so the policy wants max-cpu-throttle (99) at once.
    assert_eq!(actions[0]["parameter"], "cpu-throttle-initial");
    assert_eq!(actions[0]["value"], 99);
    let steps = qemu_throttle_steps(&s);
    assert_eq!(steps.first(), Some(&99), "{steps:?}");
    // And QEMU's own parameters show it was QEMU that throttled, from its staircase.
    assert_eq!(s["parameters"]["autoconv"]["policy"], "predictive");
}

#[test]
fn record_steer_predictive_steers_someone_elses_qemu_and_puts_its_parameters_back() {
    let Some(_g) = common::prereq::qemu(
        "record_steer_predictive_steers_someone_elses_qemu_and_puts_its_parameters_back",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = common::guest::sequential_cli(dir.path());
    let pair = QemuPair::start(&img);
    let mut user = pair.user();
    // Without auto-converge there is nothing to steer: refused before anything is sent.
    let o = bin()
        .args([
            "record",
            "--qmp",
            pair.second_qmp_arg(),
            "--steer",
            "predictive",
            "--wait",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("auto-converge capability is off"),
        "{}",
        text(&o.stderr)
    );
    user.execute(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "auto-converge", "state": true}]})),
    )
    .unwrap();
    user.execute(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 16u64 << 20, "cpu-throttle-initial": 25})),
    )
    .unwrap();
    // Let the guest start writing before the migration: its first COM1 marker (booting an
    // autoconv image under QEMU here takes seconds), then a little more.
    let t = std::time::Instant::now();
    while pair.src.serial_len() == 0 && t.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pair.src.serial_len() > 0, "the guest wrote no COM1 marker");
    std::thread::sleep(Duration::from_millis(1000));
    let out = dir.path().join("rec");
    let o = bin()
        .args([
            "record",
            "--qmp",
            pair.second_qmp_arg(),
            "--steer",
            "predictive",
            "--migrate",
            &pair.uri,
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    assert!(stdout.contains("set cpu-throttle-initial=99"), "{stdout}");
    let s = summary(&out);
    assert_eq!(s["status"], "completed");
    assert_eq!(qemu_throttle_steps(&s).first(), Some(&99), "{s}");
    // The user's own value is back.
    let after = user.execute("query-migrate-parameters", None).unwrap();
    assert_eq!(after["cpu-throttle-initial"], 25);
    assert_eq!(after["cpu-throttle-increment"], 10);
    drop(pair);
}
