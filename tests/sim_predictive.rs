//! autoconv.policy = "predictive" against QEMU's staircase on every shipped scenario.
//! The policy's constants were fixed before these runs (see src/migration/policy.rs).

mod common;
use autoconv::migration::MigrationStatus;
use common::*;

fn shipped_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(scenarios())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "toml").then(|| p.file_stem().unwrap().to_string_lossy().into())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn predictive_converges_sooner_with_no_more_cpu_lost_wherever_qemus_default_throttles_and_converges(
) {
    let mut compared = 0;
    for name in shipped_names() {
        let qemu = run(&shipped(&name, &[])).0;
        let pred = run(&shipped(&name, &["autoconv.policy=predictive"])).0;
        if qemu.status != MigrationStatus::Completed {
            // dma.toml: no throttle converges it; the predictive policy must not pretend to.
            assert_ne!(pred.status, MigrationStatus::Completed, "{name}");
            continue;
        }
        assert_eq!(pred.status, MigrationStatus::Completed, "{name}: {pred:?}");
        if qemu.throttle_steps.is_empty() {
            // No throttle needed: the policy is never asked, the run is the same.
            assert_eq!(pred, qemu, "{name}");
            continue;
        }
        compared += 1;
        assert!(
            pred.total_time_ms <= qemu.total_time_ms,
            "{name}: {:?} ms vs QEMU's {:?} ms",
            pred.total_time_ms,
            qemu.total_time_ms
        );
        assert!(
            pred.guest_cpu_lost_s <= qemu.guest_cpu_lost_s,
            "{name}: {} vCPU-s lost vs QEMU's {}",
            pred.guest_cpu_lost_s,
            qemu.guest_cpu_lost_s
        );
        assert!(
            pred.downtime_ms <= Some(qemu.downtime_ms.unwrap() + 50),
            "{name}: downtime {:?} vs {:?}",
            pred.downtime_ms,
            qemu.downtime_ms
        );
    }
    assert!(compared >= 8, "only {compared} scenarios throttled");
}

#[test]
fn predictive_first_step_is_the_fit_not_cpu_throttle_initial() {
    // heavy: 4 CPU-bound vCPUs; the first fire measures only unthrottled periods, so the fit
    // is dirty = rate0 * share and the first step lands well above QEMU's 20 %.
    let (o, t) = run(&shipped("heavy", &["autoconv.policy=predictive"]));
    let first = throttle_sets(&t)[0];
    let (_, tq) = run(&shipped("heavy", &[]));
    assert_eq!(
        first.0,
        throttle_sets(&tq)[0].0,
        "same trigger, same moment"
    );
    assert!(first.1 > 20, "{first:?}");
    assert!(o.throttle_steps.len() < 9);
}

#[test]
fn predictive_is_refused_with_dirty_limit_and_named_in_the_summary() {
    let path = scenarios().join("one-hot-writer.toml");
    let err = autoconv::scenario::Scenario::load(
        &path,
        &[
            "auto-converge=off".into(),
            "dirty-limit=on".into(),
            "autoconv.policy=predictive".into(),
        ],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("does not apply to dirty-limit"),
        "{err}"
    );
    let err =
        autoconv::scenario::Scenario::load(&path, &["autoconv.policy=smart".into()]).unwrap_err();
    assert!(err.to_string().contains("expected \"qemu\""), "{err}");
    let s = shipped("heavy", &["autoconv.policy=predictive"]);
    assert_eq!(s.settings()["autoconv"]["policy"], "predictive");
}
