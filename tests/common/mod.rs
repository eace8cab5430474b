//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod flat_kernel;
pub mod guest;
pub mod incoming;
pub mod prereq;
pub mod process;
pub mod qemu_pair;
pub mod qemu_vm;
pub mod relay;
pub mod require;
pub mod run_options;
pub mod stalled_link;

use autoconv::migration::{Event, MigrationOutcome, SyncReason, Timeline};
use autoconv::scenario::{Scenario, ScenarioSource};

/// Build a scenario from TOML text (plus `--set`s).
pub fn scenario(toml: &str, sets: &[&str]) -> Scenario {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    ScenarioSource::parse("test.toml", "test", toml)
        .and_then(|s| s.build(&sets))
        .unwrap_or_else(|e| panic!("bad test scenario: {e}"))
}

/// Load a shipped scenario.
pub fn shipped(name: &str, sets: &[&str]) -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Scenario::load(&path, &sets).unwrap_or_else(|e| panic!("{e}"))
}

/// Simulate with the scenario's seed, keeping the timeline.
pub fn run(s: &Scenario) -> (MigrationOutcome, Timeline) {
    run_seed(s, s.seed)
}

/// Simulate with `seed`.
pub fn run_seed(s: &Scenario, seed: u64) -> (MigrationOutcome, Timeline) {
    let mut t = Timeline::default();
    let o = autoconv::sim::simulate(s, seed, &mut t);
    (o, t)
}

/// (t_ms, newly dirty) of each sync, with its reason.
pub fn syncs(t: &Timeline) -> Vec<(u64, u64, SyncReason)> {
    t.events
        .iter()
        .filter_map(|e| match e {
            Event::DirtySync {
                t_ms,
                newly_dirty_pages,
                reason,
                ..
            } => Some((*t_ms, *newly_dirty_pages, *reason)),
            _ => None,
        })
        .collect()
}

/// Every throttle set, in order, with its time.
pub fn throttle_sets(t: &Timeline) -> Vec<(u64, u32)> {
    t.events
        .iter()
        .filter_map(|e| match e {
            Event::ThrottleSet { t_ms, pct } => Some((*t_ms, *pct)),
            _ => None,
        })
        .collect()
}

/// Run the autoconv binary in `cwd`.
pub fn autoconv(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_autoconv"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run autoconv")
}

/// The repository root.
pub fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped scenarios.
pub fn scenarios() -> std::path::PathBuf {
    repo().join("scenarios")
}

/// Both output streams, for assertion messages.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Standard error.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
