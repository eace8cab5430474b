//! `autoconv sim` as a user runs it: outputs, exit codes, determinism, and bad input.

mod common;
use common::{autoconv, scenarios, stderr};

#[test]
fn sim_writes_timeseries_events_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let heavy = scenarios().join("heavy.toml");
    let o = autoconv(&["sim", heavy.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("results/heavy");
    let ts = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    let header = ts.lines().next().unwrap();
    for col in [
        "t_ms",
        "status",
        "throttle_pct",
        "transferred_bytes",
        "remaining_bytes",
        "dirty_pages_rate",
        "dirty_sync_count",
        "expected_downtime_ms",
        "mbps",
        "guest_cpu_pct",
    ] {
        assert!(header.split(',').any(|c| c == col), "missing column {col}");
    }
    // One row per 100 ms window.
    let rows: Vec<&str> = ts.lines().skip(1).collect();
    let t: Vec<u64> = rows
        .iter()
        .map(|r| r.split(',').next().unwrap().parse().unwrap())
        .collect();
    let gaps: Vec<u64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    let typical = gaps.iter().filter(|g| (100..=110).contains(*g)).count();
    assert!(typical * 10 >= gaps.len() * 9, "rows are not ~100 ms apart");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for field in [
        "scenario",
        "seed",
        "status",
        "total_time_ms",
        "downtime_ms",
        "transferred_bytes",
        "dirty_sync_count",
        "throttle_steps",
        "max_throttle_pct",
        "guest_cpu_lost_s",
        "parameters",
    ] {
        assert!(summary.get(field).is_some(), "missing field {field}");
    }
    assert_eq!(summary["status"], "completed");
    assert_eq!(
        summary["parameters"]["migration"]["cpu-throttle-initial"],
        20
    );
    // Capabilities and boolean parameters are JSON booleans, numbers are numbers.
    assert_eq!(summary["parameters"]["migration"]["auto-converge"], true);
    assert_eq!(
        summary["parameters"]["migration"]["cpu-throttle-tailslow"],
        false
    );
    assert_eq!(summary["format_version"], 2);
    // QEMU's query-migrate names and units beside autoconv's own fields, the same figures.
    let q = &summary["query-migrate"];
    assert_eq!(q["status"], "completed");
    assert_eq!(q["total-time"], summary["total_time_ms"]);
    assert_eq!(q["downtime"], summary["downtime_ms"]);
    assert_eq!(q["setup-time"], summary["setup_time_ms"]);
    assert_eq!(q["ram"]["transferred"], summary["transferred_bytes"]);
    assert_eq!(q["ram"]["normal"], summary["normal_pages"]);
    assert_eq!(q["ram"]["duplicate"], summary["zero_pages"]);
    assert_eq!(q["ram"]["dirty-sync-count"], summary["dirty_sync_count"]);
    assert_eq!(
        q["ram"]["normal-bytes"].as_u64().unwrap(),
        summary["normal_pages"].as_u64().unwrap() * 4096
    );
    assert_eq!(
        q["cpu-throttle-percentage"],
        summary["throttle_steps"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone()
    );
    assert!(std::fs::read_to_string(out.join("events.csv"))
        .unwrap()
        .contains("throttle-set,20"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("completed in"), "{text}");
}

#[test]
fn not_converged_exits_1_and_reports_no_time() {
    let dir = tempfile::tempdir().unwrap();
    let heavy = scenarios().join("heavy.toml");
    let o = autoconv(
        &[
            "sim",
            heavy.to_str().unwrap(),
            "--set",
            "auto-converge=off",
            "--set",
            "autoconv.time_limit_s=60",
            "--json",
            "--no-out",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["status"], "not-converged");
    assert!(summary["total_time_ms"].is_null());
    assert!(summary["downtime_ms"].is_null());
    assert!(
        !dir.path().join("results").exists(),
        "--no-out writes nothing"
    );
}

#[test]
fn same_seed_gives_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let hotcold = scenarios().join("hotcold.toml");
    let h = hotcold.to_str().unwrap();
    for (out, seed) in [("a", "5"), ("b", "5"), ("c", "6")] {
        let o = autoconv(&["sim", h, "--seed", seed, "--out", out], dir.path());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    for f in ["timeseries.csv", "events.csv", "summary.json"] {
        let a = std::fs::read(dir.path().join("a").join(f)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(f)).unwrap();
        assert_eq!(a, b, "{f} differs between two runs of the same seed");
    }
    let a = std::fs::read(dir.path().join("a/timeseries.csv")).unwrap();
    let c = std::fs::read(dir.path().join("c/timeseries.csv")).unwrap();
    assert_ne!(a, c, "another seed must change a random workload's run");
}

/// Run `sim` on `toml` (written to bad.toml) with `extra` args: it must fail with exit 2,
/// print one error containing every piece of `expect`, and write no output directory.
fn refused(toml: Option<&str>, extra: &[&str], expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(text) = toml {
        std::fs::write(dir.path().join("bad.toml"), text).unwrap();
    }
    let mut args = vec!["sim", "bad.toml", "--out", "out"];
    args.extend_from_slice(extra);
    let o = autoconv(&args, dir.path());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.starts_with("autoconv: error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for piece in expect {
        assert!(err.contains(piece), "expected {piece:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "bad.toml")
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

const GOOD: &str = "[guest]\nmemory = \"1GiB\"\n[[region]]\nname = \"ws\"\nsize = \"256MiB\"\npattern = \"random\"\nwrite_rate_pages_s = 1000\n";

#[test]
fn missing_file() {
    refused(
        None,
        &[],
        &["cannot read scenario bad.toml", "No such file"],
    );
}

#[test]
fn toml_syntax_error_names_line() {
    refused(
        Some("[guest]\nmemory = = 1\n"),
        &[],
        &["bad.toml:2:", "TOML syntax error"],
    );
}

#[test]
fn unknown_key_names_file_line_key_and_suggests() {
    refused(
        Some("[guest]\nmemroy = \"1GiB\"\n"),
        &[],
        &[
            "bad.toml:2:",
            "`guest.memroy`",
            "unknown key",
            "did you mean `memory`",
        ],
    );
}

#[test]
fn wrong_type_names_the_key() {
    refused(
        Some(&GOOD.replace("[guest]\n", "[guest]\nvcpus = \"four\"\n")),
        &[],
        &[
            "bad.toml:2:",
            "`guest.vcpus`",
            "expected an integer, found string",
        ],
    );
}

#[test]
fn out_of_range_parameter_uses_qemus_wording() {
    refused(
        Some(&format!("{GOOD}[migration]\ncpu-throttle-initial = 150\n")),
        &[],
        &[
            "bad.toml:9:",
            "`migration.cpu-throttle-initial`",
            "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99",
        ],
    );
}

#[test]
fn max_below_initial_is_refused() {
    refused(
        Some(&format!(
            "{GOOD}[migration]\ncpu-throttle-initial = 50\nmax-cpu-throttle = 40\n"
        )),
        &[],
        &[
            "bad.toml:10:",
            "expects an integer in the range of cpu_throttle_initial to 99",
        ],
    );
}

#[test]
fn regions_that_do_not_fit_are_refused() {
    refused(
        Some(&GOOD.replace(
            "size = \"256MiB\"",
            "offset = \"900MiB\"\nsize = \"256MiB\"",
        )),
        &[],
        &[
            "`region[0].size`",
            "does not fit in the guest's memory of 1 GiB",
        ],
    );
    refused(
        Some(&format!(
            "{GOOD}[[region]]\nname = \"b\"\noffset = \"128MiB\"\nsize = \"4KiB\"\npattern = \"static\"\n"
        )),
        &[],
        &["region `b` overlaps region `ws`"],
    );
}

#[test]
fn bad_set_arguments_are_named() {
    refused(
        Some(GOOD),
        &["--set", "cpu-throttle-increment=0"],
        &[
            "--set cpu-throttle-increment=0",
            "Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99",
        ],
    );
    refused(
        Some(GOOD),
        &["--set", "guest.memroy=2GiB"],
        &[
            "--set guest.memroy=2GiB",
            "unknown key",
            "did you mean `memory`",
        ],
    );
    refused(
        Some(GOOD),
        &["--set", "nonsense"],
        &["--set nonsense", "expected NAME=VALUE"],
    );
    refused(
        Some(GOOD),
        &["--set", "cpu-throttle-intial=30"],
        &[
            "--set cpu-throttle-intial=30",
            "Parameter 'cpu-throttle-intial' is unexpected (did you mean 'cpu-throttle-initial'?)",
        ],
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = autoconv(&["sim"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let o = autoconv(&["frobnicate"], dir.path());
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn run_kvm_takes_the_same_set_names_and_refuses_bad_ones_first() {
    let dir = tempfile::tempdir().unwrap();
    let run = |sets: &[&str]| {
        let mut args = vec!["run", "--kvm", "missing.img"];
        for s in sets {
            args.extend_from_slice(&["--set", s]);
        }
        autoconv(&args, dir.path())
    };
    // Parameters are checked before the image or /dev/kvm, with the simulator's messages.
    let o = run(&["cpu-throttle-initial=150"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(
        "--set cpu-throttle-initial=150: `migration.cpu-throttle-initial`: Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99"
    ), "{}", stderr(&o));
    let o = run(&["autoconv.qemu_version=6.0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("expected a QEMU release from 7.2 to 10.2"),
        "{}",
        stderr(&o)
    );
    let o = run(&["guest.memory=1GiB"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is a scenario value; a real guest takes QEMU parameters"),
        "{}",
        stderr(&o)
    );
    // Good settings, missing image: a clear error naming the file, exit 2.
    let o = run(&["autoconv.time_limit_s=30", "max-bandwidth=0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.img"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
