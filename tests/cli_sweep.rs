//! `autoconv sweep` and `autoconv merge` as a user runs them: one row per run equal to a single
//! `sim` run, deterministic order, shards that merge to the unsharded file, and bad grids
//! refused before anything runs.

mod common;
use common::{autoconv, repo, text};

use std::path::Path;

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

const GRID: [&str; 4] = [
    "--grid",
    "cpu-throttle-initial=10:50:20",
    "--grid",
    "cpu-throttle-increment=5,30",
];

#[test]
fn one_row_per_run_equal_to_single_sim_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sw");
    let mut args = vec!["sweep", "scenarios/heavy.toml", "--seeds", "1..2"];
    args.extend(GRID);
    args.extend([
        "--set",
        "max-bandwidth=2GiB/s",
        "--out",
        out.to_str().unwrap(),
    ]);
    let o = autoconv(&args, &repo());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (header, rows) = read_csv(&out.join("runs.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    // 3 initial values x 2 increments x 2 seeds, first axis slowest, then seeds.
    assert_eq!(rows.len(), 12);
    let expected_order: Vec<(String, String, String)> = ["10", "30", "50"]
        .iter()
        .flat_map(|i| {
            ["5", "30"].iter().flat_map(move |inc| {
                ["1", "2"]
                    .iter()
                    .map(move |s| (i.to_string(), inc.to_string(), s.to_string()))
            })
        })
        .collect();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r[col("cpu-throttle-initial")].clone(),
                r[col("cpu-throttle-increment")].clone(),
                r[col("seed")].clone(),
            )
        })
        .collect();
    assert_eq!(got, expected_order);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[col("run_index")], i.to_string());
        assert_eq!(r[col("run_count")], "12");
        assert_eq!(r[col("scenario")], "scenarios/heavy.toml");
        assert_eq!(r[col("sets")], "max-bandwidth=2GiB/s");
    }
    // Every third row, checked against `autoconv sim` with the same settings.
    for r in rows.iter().step_by(3) {
        let initial = format!("cpu-throttle-initial={}", r[col("cpu-throttle-initial")]);
        let inc = format!(
            "cpu-throttle-increment={}",
            r[col("cpu-throttle-increment")]
        );
        let o = autoconv(
            &[
                "sim",
                "scenarios/heavy.toml",
                "--no-out",
                "--json",
                "--seed",
                &r[col("seed")],
                "--set",
                "max-bandwidth=2GiB/s",
                "--set",
                &initial,
                "--set",
                &inc,
            ],
            &repo(),
        );
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).expect("sim --json");
        let num = |v: &serde_json::Value| match v {
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
        assert_eq!(r[col("status")], s["status"].as_str().unwrap());
        for field in [
            "total_time_ms",
            "elapsed_ms",
            "downtime_ms",
            "transferred_bytes",
            "dirty_sync_count",
            "max_throttle_pct",
            "guest_pages_written",
        ] {
            assert_eq!(r[col(field)], num(&s[field]), "{field} of {initial} {inc}");
        }
        let steps: Vec<String> = s["throttle_steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(r[col("throttle_steps")], steps.join(" "));
        let lost: f64 = r[col("guest_cpu_lost_s")].parse().unwrap();
        assert!((lost - s["guest_cpu_lost_s"].as_f64().unwrap()).abs() < 1e-6);
    }
    // Seeds matter on heavy (random writes): the two seeds of a point differ somewhere.
    assert!(rows
        .chunks(2)
        .any(|pair| pair[0][col("transferred_bytes")] != pair[1][col("transferred_bytes")]));
    // combos.csv: one row per grid point with statistics over both seeds.
    let (ch, crow) = read_csv(&out.join("combos.csv"));
    assert_eq!(crow.len(), 6);
    let c = |name: &str| ch.iter().position(|h| h == name).unwrap();
    for (k, cr) in crow.iter().enumerate() {
        let pair = &rows[2 * k..2 * k + 2];
        let done: Vec<f64> = pair
            .iter()
            .filter(|r| r[col("status")] == "completed")
            .map(|r| r[col("total_time_ms")].parse().unwrap())
            .collect();
        assert_eq!(cr[c("runs")], "2");
        assert_eq!(cr[c("completed")], done.len().to_string());
        if !done.is_empty() {
            let mean = done.iter().sum::<f64>() / done.len() as f64;
            let min = done.iter().copied().fold(f64::INFINITY, f64::min);
            let max = done.iter().copied().fold(0.0, f64::max);
            assert_eq!(cr[c("total_time_ms_mean")], format!("{mean:.3}"));
            assert_eq!(cr[c("total_time_ms_min")], format!("{min:.3}"));
            assert_eq!(cr[c("total_time_ms_max")], format!("{max:.3}"));
        }
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.is_empty());
}

#[test]
fn thread_count_and_shards_do_not_change_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |extra: &[&str], out: &str| {
        let mut args = vec!["sweep", "scenarios/hotcold.toml", "--seeds", "2"];
        args.extend(GRID);
        args.extend(extra);
        let out = d.join(out);
        args.extend(["--out", out.to_str().unwrap()]);
        let o = autoconv(&args, &repo());
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        out
    };
    let one = run(&["-j", "1"], "one");
    let two = run(&["-j", "2"], "two");
    let whole = std::fs::read(one.join("runs.csv")).unwrap();
    assert_eq!(whole, std::fs::read(two.join("runs.csv")).unwrap());
    let s1 = run(&["--shard", "1/3"], "s1");
    let s2 = run(&["--shard", "2/3", "-j", "1"], "s2");
    let s3 = run(&["--shard", "3/3"], "s3");
    // Each shard holds only its slice, and no combos.csv (a partial summary would mislead).
    let (_, r2) = read_csv(&s2.join("runs.csv"));
    assert_eq!(r2.len(), 4);
    assert!(r2.iter().all(|r| r[0].parse::<usize>().unwrap() % 3 == 1));
    assert!(!s2.join("combos.csv").exists());
    let merged = d.join("merged.csv");
    let o = autoconv(
        &[
            "merge",
            s3.join("runs.csv").to_str().unwrap(),
            s1.join("runs.csv").to_str().unwrap(),
            s2.join("runs.csv").to_str().unwrap(),
            "-o",
            merged.to_str().unwrap(),
            "--combos",
            d.join("combos.csv").to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read(&merged).unwrap(), whole, "merge != unsharded");
    assert_eq!(
        std::fs::read(d.join("combos.csv")).unwrap(),
        std::fs::read(one.join("combos.csv")).unwrap()
    );
    // A missing shard is named as such, and nothing is written.
    let partial = d.join("partial.csv");
    let o = autoconv(
        &[
            "merge",
            s1.join("runs.csv").to_str().unwrap(),
            s3.join("runs.csv").to_str().unwrap(),
            "-o",
            partial.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("4 of 12 runs are missing"),
        "{}",
        text(&o)
    );
    assert!(!partial.exists());
}

#[test]
fn bad_grids_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (grid, message) in [
        (
            "cpu-throttle-initial=10:90",
            "--grid cpu-throttle-initial=10:90: expected START:END:STEP with three parts",
        ),
        (
            "cpu-throttle-initial=90:10:10",
            "--grid cpu-throttle-initial=90:10:10: START (90) is above END (10)",
        ),
        (
            "cpu-throttle-initial=10:90:0",
            "STEP must be above 0",
        ),
        (
            "cpu-throttle-intial=10:90:10",
            "--grid cpu-throttle-intial=10:90:10: Parameter 'cpu-throttle-intial' is unexpected (did you mean 'cpu-throttle-initial'?)",
        ),
        (
            "cpu-throttle-initial=90:100:5",
            "--grid cpu-throttle-initial=90:100:5: value 100: Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99",
        ),
        (
            "cpu-throttle-initial=10-50",
            "\"10-50\" is not a range: write START:END:STEP (e.g. 10:50:10)",
        ),
        (
            "throttle-trigger-threshold=0,50",
            "value 0: Parameter 'throttle_trigger_threshold' expects an integer in the range of 1 to 100",
        ),
        (
            "guest.memroy=1GiB,2GiB",
            "`guest.memroy`: unknown key (did you mean `memory`?)",
        ),
        (
            "region.nope.size=1GiB,2GiB",
            "no region named `nope`",
        ),
    ] {
        let out = dir.path().join("never");
        let o = autoconv(
            &[
                "sweep",
                "scenarios/heavy.toml",
                "--grid",
                "cpu-throttle-increment=10,20",
                "--grid",
                grid,
                "--out",
                out.to_str().unwrap(),
            ],
            &repo(),
        );
        assert_eq!(o.status.code(), Some(2), "{grid}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(message), "{grid}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        // Nothing ran: no progress, no ranking, no output directory, no staging leftovers.
        assert!(o.stdout.is_empty(), "{grid}: {}", text(&o));
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
    // A combination that breaks a rule between parameters is named by its grid point.
    let o = autoconv(
        &[
            "sweep",
            "scenarios/heavy.toml",
            "--grid",
            "cpu-throttle-initial=20:60:20",
            "--grid",
            "max-cpu-throttle=30,99",
            "--no-out",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("grid point cpu-throttle-initial=40, max-cpu-throttle=30: Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial to 99"),
        "{}",
        text(&o)
    );
    for (args, message) in [
        (vec!["--seeds", "0"], "--seeds 0: at least one seed"),
        (
            vec!["--shard", "4/3"],
            "--shard 4/3: K must be between 1 and N",
        ),
        (vec!["--objective", "speed"], "unknown metric"),
    ] {
        let mut all = vec!["sweep", "scenarios/heavy.toml", "--no-out"];
        all.extend(args);
        let o = autoconv(&all, &repo());
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(message), "{}", text(&o));
    }
}

#[test]
fn ranking_lists_non_converged_points_as_such() {
    let o = autoconv(
        &[
            "sweep",
            "scenarios/heavy.toml",
            "--grid",
            "auto-converge=on,off",
            "--no-out",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let (ranked, failed) = out
        .split_once("did not converge (1 of 2 grid points)")
        .expect(&out);
    assert!(ranked.contains("auto-converge=on"), "{out}");
    assert!(!ranked.contains("auto-converge=off"), "{out}");
    assert!(
        failed.contains("auto-converge=off")
            && failed.contains("did not converge: not-converged after 600 s"),
        "{out}"
    );
}
