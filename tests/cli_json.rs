//! `--json` on every command that prints results: stdout is one JSON document (the text goes
//! to stderr), with a `format_version`, real booleans and numbers, and QEMU's `query-migrate`
//! names beside autoconv's unit-suffixed fields.

mod common;
use common::{autoconv, repo, scenarios, text};
use serde_json::Value;

fn heavy() -> String {
    scenarios().join("heavy.toml").to_str().unwrap().to_string()
}

/// Run in `cwd`, expect `code`, parse stdout as one JSON document.
fn json_of(args: &[&str], cwd: &std::path::Path, code: i32) -> Value {
    let o = autoconv(args, cwd);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {}", text(&o)));
    // advise's document is versioned on its own (ADVISE_FORMAT_VERSION).
    let expected = if args.first() == Some(&"advise") {
        1
    } else {
        2
    };
    assert_eq!(v["format_version"], expected, "{args:?}: {v}");
    v
}

#[test]
fn sweep_json_has_typed_grid_values_and_the_whole_ranking() {
    let dir = tempfile::tempdir().unwrap();
    let h = heavy();
    let v = json_of(
        &[
            "sweep",
            &h,
            "--grid",
            "cpu-throttle-initial=20,30",
            "--grid",
            "auto-converge=on,off",
            "--grid",
            "max-bandwidth=1GiB/s",
            "--out",
            "sw",
            "--json",
        ],
        dir.path(),
        0,
    );
    assert_eq!(v["axes"][0]["values"], serde_json::json!([20, 30]));
    assert_eq!(v["axes"][1]["values"], serde_json::json!([true, false]));
    assert_eq!(v["axes"][2]["values"], serde_json::json!([1u64 << 30]));
    let points = v["ranking"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    // Best first; auto-converge off never converges on heavy, so it ranks last, as such.
    assert_eq!(points[0]["rank"], 1);
    assert_eq!(points[0]["converged"], true);
    assert_eq!(points[0]["values"]["auto-converge"], true);
    let last = &points[3];
    assert_eq!(last["converged"], false);
    assert_eq!(last["values"]["auto-converge"], false);
    assert!(last["stats"]["total_time_ms"].is_null(), "{last}");
    let t0 = points[0]["stats"]["total_time_ms"]["mean"]
        .as_f64()
        .unwrap();
    let t1 = points[1]["stats"]["total_time_ms"]["mean"]
        .as_f64()
        .unwrap();
    assert!(t0 <= t1, "{t0} {t1}");
    // The file the sweep wrote says the same, with its version.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sw/sweep.json")).unwrap())
            .unwrap();
    assert_eq!(file["format_version"], 2);
    assert_eq!(file["axes"], v["axes"]);
}

#[test]
fn merge_json_ranks_the_shards_as_the_unsharded_sweep_does() {
    let dir = tempfile::tempdir().unwrap();
    let h = heavy();
    let grid = [
        "--grid",
        "cpu-throttle-initial=20:50:10",
        "--grid",
        "cpu-throttle-increment=10,20",
    ];
    let mut whole = vec!["sweep", h.as_str()];
    whole.extend(grid);
    whole.extend(["--out", "whole", "--json"]);
    let whole = json_of(&whole, dir.path(), 0);
    for (k, out) in [("1/2", "s1"), ("2/2", "s2")] {
        let mut a = vec!["sweep", h.as_str()];
        a.extend(grid);
        a.extend(["--shard", k, "--out", out]);
        let o = autoconv(&a, dir.path());
        assert_eq!(o.status.code(), Some(0), "{a:?}: {}", text(&o));
    }
    let v = json_of(
        &["merge", "s2/runs.csv", "s1/runs.csv", "--json"],
        dir.path(),
        0,
    );
    assert_eq!(v["runs"], 8);
    assert_eq!(
        v["shards"],
        serde_json::json!(["s2/runs.csv", "s1/runs.csv"])
    );
    assert_eq!(
        v["axes"],
        serde_json::json!(["cpu-throttle-initial", "cpu-throttle-increment"])
    );
    assert_eq!(v["ranking"], whole["ranking"], "merged ranking differs");
}

#[test]
fn sim_summary_has_booleans_a_version_and_query_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let h = heavy();
    let v = json_of(&["sim", &h, "--json", "--no-out"], dir.path(), 0);
    assert_eq!(v["parameters"]["migration"]["auto-converge"], true);
    assert_eq!(v["query-migrate"]["total-time"], v["total_time_ms"]);
    assert_eq!(
        v["query-migrate"]["ram"]["transferred"],
        v["transferred_bytes"]
    );
    // A migration autoconv stopped at its time limit is one QEMU would still be running.
    let v = json_of(
        &[
            "sim",
            &h,
            "--json",
            "--no-out",
            "--set",
            "auto-converge=off",
            "--set",
            "autoconv.time_limit_s=20",
        ],
        dir.path(),
        1,
    );
    assert_eq!(v["status"], "not-converged");
    assert_eq!(v["query-migrate"]["status"], "active");
    assert!(v["query-migrate"].get("downtime").is_none());
    assert!(v["query-migrate"].get("cpu-throttle-percentage").is_none());
}

#[test]
fn check_json_says_ok_and_counts_each_baseline() {
    let v = json_of(
        &["check", "results/baselines/heavy.csv", "--json"],
        &repo(),
        0,
    );
    assert_eq!(v["ok"], true);
    assert_eq!(v["regressions"], 0);
    let b = &v["baselines"][0];
    assert_eq!(b["baseline"], "results/baselines/heavy.csv");
    assert!(b["runs"].as_u64().unwrap() > 0);
    assert_eq!(b["unchanged"], b["runs"]);
}

#[test]
fn check_json_lists_a_regression_with_numbers() {
    // A baseline whose first run claims to have been a second faster than it is.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("results/baselines/heavy.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = header.iter().position(|c| *c == "total_time_ms").unwrap();
    let mut cells: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    let t: u64 = cells[col].parse().unwrap();
    cells[col] = (t - 1000).to_string();
    lines[1] = cells.join(",");
    // Scenario paths are relative to the repository: run from there, baseline from the tempdir.
    let baseline = dir.path().join("b.csv");
    std::fs::write(&baseline, lines.join("\n") + "\n").unwrap();
    let v = json_of(&["check", baseline.to_str().unwrap(), "--json"], &repo(), 1);
    assert_eq!(v["ok"], false);
    assert_eq!(v["regressions"], 1);
    let m = &v["baselines"][0]["moved"][0];
    assert_eq!(m["regressed"], true);
    assert_eq!(m["moves"][0]["what"], "total_time_ms");
    assert_eq!(m["moves"][0]["was"].as_f64().unwrap(), (t - 1000) as f64);
    assert_eq!(m["moves"][0]["now"].as_f64().unwrap(), t as f64);
    assert_eq!(m["now"]["query-migrate"]["total-time"], t);
}

#[test]
fn profile_json_has_rows_and_a_boolean_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let dma = scenarios().join("dma.toml");
    let v = json_of(
        &[
            "profile",
            dma.to_str().unwrap(),
            "--levels",
            "0,50,99",
            "--hold",
            "1s",
            "--json",
        ],
        dir.path(),
        0,
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["throttle_pct"], 99);
    assert!(rows[0]["dirty_pages_s"].as_f64().unwrap() > 0.0);
    // DMA-bound: not even 99% brings it under the line.
    assert_eq!(v["verdict"]["converges"], false);
    assert!(v["verdict"]["settles_at_pct"].is_null());
}

#[test]
fn params_json_types_defaults_and_lists_aliases_and_unmodelled_names() {
    let dir = tempfile::tempdir().unwrap();
    let v = json_of(&["params", "--json"], dir.path(), 0);
    let params = v["parameters"].as_array().unwrap();
    let by = |n: &str| params.iter().find(|p| p["name"] == n).unwrap().clone();
    assert_eq!(by("auto-converge")["default"], false);
    assert_eq!(by("auto-converge")["kind"], "capability");
    assert_eq!(by("cpu-throttle-initial")["default"], 20);
    assert_eq!(by("max-bandwidth")["default"], 134_217_728u64);
    let aliases = by("cpu-throttle-initial")["aliases"].clone();
    assert!(
        aliases
            .as_array()
            .unwrap()
            .contains(&Value::from("auto-converge-initial")),
        "{aliases}"
    );
    let caps = v["not_modelled"]["capabilities"].as_array().unwrap();
    assert!(caps.contains(&Value::from("postcopy-ram")));
}

#[test]
fn advise_runs_carry_query_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let h = heavy();
    let v = json_of(
        &[
            "advise",
            &h,
            "--max-throttle",
            "70",
            "--seeds",
            "1",
            "--json",
        ],
        dir.path(),
        0,
    );
    let run = &v["recommended"]["run"];
    assert_eq!(run["query-migrate"]["total-time"], run["total_time_ms"]);
    assert_eq!(run["query-migrate"]["status"], "completed");
}
