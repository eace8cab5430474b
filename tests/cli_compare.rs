//! `autoconv compare`: a recorded run next to a simulation with the run's parameters.

mod common;
use common::{autoconv, repo, text};

#[test]
fn the_runs_parameters_are_applied_so_the_same_scenario_matches_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // A run with non-default parameters; the scenario file has the defaults.
    let o = autoconv(
        &[
            "sim",
            "scenarios/heavy.toml",
            "--set",
            "cpu-throttle-initial=40",
            "--set",
            "cpu-throttle-increment=25",
            "--out",
            run.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let sim_dir = dir.path().join("again");
    let o = autoconv(
        &[
            "compare",
            run.to_str().unwrap(),
            "scenarios/heavy.toml",
            "--out",
            sim_dir.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("--set cpu-throttle-initial=40"), "{out}");
    assert!(out.contains("--set cpu-throttle-increment=25"), "{out}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {out}"))
            .to_string()
    };
    assert!(
        line("throttle steps").contains("40 65 90") && line("throttle steps").ends_with("same")
    );
    for m in ["total_time", "downtime", "transferred"] {
        assert!(line(m).ends_with("+0.0%"), "{}", line(m));
    }
    assert!(line("dirty_syncs").ends_with("+0"));
    // The simulated run directory is the same run: identical files.
    for f in ["timeseries.csv", "events.csv"] {
        assert_eq!(
            std::fs::read(run.join(f)).unwrap(),
            std::fs::read(sim_dir.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn calibrated_scenario_predicts_heavy_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = autoconv(
        &[
            "sim",
            "scenarios/heavy.toml",
            "--out",
            run.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0));
    let o = autoconv(
        &[
            "compare",
            run.to_str().unwrap(),
            "scenarios/calibrated.toml",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let steps = out
        .lines()
        .find(|l| l.contains("throttle steps"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(steps.ends_with("same"), "{out}");
    let o = autoconv(&["compare", "nowhere", "scenarios/heavy.toml"], &repo());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("cannot read nowhere/summary.json"),
        "{}",
        text(&o)
    );
}
