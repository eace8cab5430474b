//! Seeds as test inputs: properties of the core that must hold for every seed, checked over
//! many. `AUTOCONV_TEST_SEED=N` runs seed N alone (to replay a failure); otherwise seeds 1..=32.
//! A failure names its seed.

use autoconv::migration::MigrationStatus;
use autoconv::scenario::Scenario;
use std::path::Path;

fn seeds() -> Vec<u64> {
    match std::env::var("AUTOCONV_TEST_SEED") {
        Ok(s) => vec![s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("AUTOCONV_TEST_SEED={s:?} is not a seed (an integer)"))],
        Err(_) => (1..=32).collect(),
    }
}

#[test]
fn throttle_steps_follow_qemus_staircase_for_every_seed() {
    // QEMU's default policy (tailslow off): cpu-throttle-initial first, then
    // min(previous + cpu-throttle-increment, max-cpu-throttle), each change listed once.
    let heavy = Scenario::load(Path::new("scenarios/heavy.toml"), &[]).unwrap();
    let p = &heavy.migration.params;
    assert!(!p.cpu_throttle_tailslow);
    for seed in seeds() {
        let o = autoconv::sim::simulate(&heavy, seed, &mut ());
        let replay = format!("seed {seed} (replay: AUTOCONV_TEST_SEED={seed})");
        assert_eq!(o.status, MigrationStatus::Completed, "{replay}: {o:?}");
        let steps = &o.throttle_steps;
        assert_eq!(
            steps.first(),
            Some(&p.cpu_throttle_initial),
            "{replay}: {steps:?}"
        );
        for w in steps.windows(2) {
            let expected = (w[0] + p.cpu_throttle_increment).min(p.max_cpu_throttle);
            assert_eq!(w[1], expected, "{replay}: {steps:?}");
        }
        assert_eq!(
            o.max_throttle_pct,
            steps.iter().copied().max().unwrap_or(0),
            "{replay}"
        );
        // The throttle only ever costs the guest CPU time once it is set.
        assert!(o.guest_cpu_lost_s > 0.0, "{replay}: {o:?}");
    }
}
