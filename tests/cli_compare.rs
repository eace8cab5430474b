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

/// `sim heavy --out DIR` with these sets, from the repository.
fn sim_run(dir: &std::path::Path, sets: &[&str]) {
    let mut args = vec![
        "sim",
        "scenarios/heavy.toml",
        "--out",
        dir.to_str().unwrap(),
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = autoconv(&args, &repo());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn several_runs_go_in_one_table_and_one_overlay_plot() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    sim_run(&a, &[]);
    sim_run(
        &b,
        &["cpu-throttle-initial=30", "cpu-throttle-increment=20"],
    );
    sim_run(&c, &["cpu-throttle-initial=60", "cpu-throttle-increment=5"]);
    let svg = dir.path().join("abc.svg");
    let o = autoconv(
        &[
            "compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            c.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
            "--json",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format_version"], 2);
    assert_eq!(v["mode"], "runs");
    let cols = v["columns"].as_array().unwrap();
    assert_eq!(cols.len(), 3);
    // Each column is its run's summary: QEMU's defaults 64.4 s, 30/20 42.3 s, 60/5 34.0 s.
    let t: Vec<u64> = cols
        .iter()
        .map(|c| c["run"]["total_time_ms"].as_u64().unwrap())
        .collect();
    let summary_t = |d: &std::path::Path| {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                .unwrap();
        s["total_time_ms"].as_u64().unwrap()
    };
    assert_eq!(t, vec![summary_t(&a), summary_t(&b), summary_t(&c)]);
    assert_eq!(
        cols[1]["run"]["throttle_steps"],
        serde_json::json!([30, 50, 70, 90])
    );
    assert_eq!(cols[1]["run"]["query-migrate"]["total-time"], t[1]);
    // The text table went to stderr in --json mode: one line per figure, a column per run.
    let err = common::stderr(&o);
    let steps = err.lines().find(|l| l.contains("throttle steps")).unwrap();
    assert!(
        steps.contains("30 50 70 90") && steps.contains("60 65 70 75 80"),
        "{err}"
    );
    // One picture, both panels with their units, a legend entry per run.
    let svg = std::fs::read_to_string(&svg).unwrap();
    for want in [
        "CPU throttle (%)",
        "remaining dirty memory (GiB)",
        "migration time (s)",
    ] {
        assert!(svg.contains(want), "{want}");
    }
    for d in [&a, &b, &c] {
        assert!(svg.contains(&*d.display().to_string()), "{}", d.display());
    }
}

#[test]
fn policies_on_one_scenario_are_simulated_and_tabulated_against_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("p.png");
    let o = autoconv(
        &[
            "compare",
            "scenarios/heavy.toml",
            "--policy",
            "cpu-throttle-initial=20,cpu-throttle-increment=10",
            "--policy",
            "auto-converge-initial=30,auto-converge-increment=20",
            "--plot",
            png.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {out}"))
            .to_string()
    };
    // Heads name the policies; virsh's names are shown as the parameters they set.
    assert!(
        line("initial=20").contains("initial=30 increment=20"),
        "{out}"
    );
    assert!(line("total_time").contains("64.4 s"), "{out}");
    assert!(line("total_time").contains("42.3 s (-34%)"), "{out}");
    assert!(line("max_throttle").contains("90 % (+10)"), "{out}");
    assert!(line("throttle steps").contains("30 50 70 90"), "{out}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    // A policy naming a value out of range is refused, in QEMU's words, naming the policy.
    let o = autoconv(
        &[
            "compare",
            "scenarios/heavy.toml",
            "--policy",
            "cpu-throttle-initial=120",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = common::stderr(&o);
    assert!(err.contains("--policy cpu-throttle-initial=120"), "{err}");
    assert!(
        err.contains("expects an integer in the range of 1 to 99"),
        "{err}"
    );
    // Policies go with one scenario, not with run directories.
    let o = autoconv(
        &[
            "compare",
            "scenarios/heavy.toml",
            "scenarios/dma.toml",
            "--policy",
            "cpu-throttle-initial=30",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
