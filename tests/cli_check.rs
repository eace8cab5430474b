//! `autoconv check`: passes on its own baseline and on the committed ones, fails with a table
//! on a deliberately worsened baseline or a lost convergence.

mod common;
use common::{autoconv, repo, text};

use std::path::{Path, PathBuf};

/// A baseline of heavy with one grid point that does not converge.
fn make_baseline(dir: &Path) -> PathBuf {
    let out = dir.join("sw");
    let o = autoconv(
        &[
            "sweep",
            "scenarios/heavy.toml",
            "--grid",
            "max-cpu-throttle=40,80,99",
            "--set",
            "autoconv.time_limit_s=120",
            "--out",
            out.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    out.join("runs.csv")
}

/// Replace `column` of data row `row` (0-based) with `value`.
fn edit(path: &Path, row: usize, column: &str, value: &str) -> PathBuf {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().clone();
    let col = header.iter().position(|h| h == column).unwrap();
    let mut rows: Vec<Vec<String>> = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect();
    rows[row][col] = value.to_string();
    let out = path.with_file_name(format!("edited-{column}-{row}.csv"));
    let mut w = csv::Writer::from_path(&out).unwrap();
    w.write_record(&header).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.flush().unwrap();
    out
}

fn cell(path: &Path, row: usize, column: &str) -> String {
    let mut r = csv::Reader::from_path(path).unwrap();
    let col = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == column)
        .unwrap();
    r.records().nth(row).unwrap().unwrap()[col].to_string()
}

#[test]
fn committed_baselines_pass() {
    let mut args = vec!["check".to_string()];
    for e in std::fs::read_dir(repo().join("results/baselines")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv") {
            args.push(p.strip_prefix(repo()).unwrap().display().to_string());
        }
    }
    assert!(args.len() >= 7, "a baseline per shipped scenario: {args:?}");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = autoconv(&args, &repo());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok: no regression"));
}

#[test]
fn check_passes_on_its_own_baseline_and_saves_it_identically() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_baseline(dir.path());
    let saved = dir.path().join("saved.csv");
    let o = autoconv(
        &[
            "check",
            base.to_str().unwrap(),
            "--save",
            saved.to_str().unwrap(),
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("0 regressed, 0 improved, 3 unchanged"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        std::fs::read(&base).unwrap()
    );
}

#[test]
fn check_fails_on_a_worsened_baseline_with_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_baseline(dir.path());
    // Row 1 (max-cpu-throttle=80) converged; pretend the baseline was 10% faster.
    let t: u64 = cell(&base, 1, "total_time_ms").parse().unwrap();
    let faster = edit(&base, 1, "total_time_ms", &(t * 10 / 11).to_string());
    let o = autoconv(&["check", faster.to_str().unwrap()], &repo());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("1 regressed, 0 improved, 2 unchanged"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("WORSE"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("heavy max-cpu-throttle=80 seed 1"), "{line}");
    assert!(
        line.contains("total_time") && line.contains("+10.0"),
        "{line}"
    );
    assert!(out.contains("FAILED: 1 run(s) regressed"));
    // Within a tolerance it passes; the movement is still listed.
    let o = autoconv(
        &["check", faster.to_str().unwrap(), "--tolerance", "12"],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("within"));
    // A baseline that was slower is an improvement, not a failure.
    let slower = edit(&base, 1, "total_time_ms", &(t * 2).to_string());
    let o = autoconv(&["check", slower.to_str().unwrap()], &repo());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("0 regressed, 1 improved"), "{}", text(&o));
}

#[test]
fn check_fails_when_a_run_no_longer_converges_or_another_metric_worsens() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_baseline(dir.path());
    // Row 0 (max-cpu-throttle=40) does not converge; a baseline saying it did must fail.
    assert_eq!(cell(&base, 0, "status"), "not-converged");
    let said_completed = edit(&base, 0, "status", "completed");
    let said_completed = edit(&said_completed, 0, "total_time_ms", "50000");
    let o = autoconv(&["check", said_completed.to_str().unwrap()], &repo());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("no longer converges"), "{out}");
    assert!(out.contains("completed in 50.0 s"), "{out}");
    assert!(out.contains("not-converged after 120 s"), "{out}");
    // Downtime is only checked when asked for.
    let d: u64 = cell(&base, 2, "downtime_ms").parse().unwrap();
    let lower = edit(&base, 2, "downtime_ms", &(d / 2).to_string());
    let o = autoconv(&["check", lower.to_str().unwrap()], &repo());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = autoconv(
        &[
            "check",
            lower.to_str().unwrap(),
            "--metric",
            "total_time",
            "--metric",
            "downtime",
        ],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("downtime"), "{}", text(&o));
}

#[test]
fn unusable_baselines_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = make_baseline(dir.path());
    let moved = edit(&base, 0, "scenario", "scenarios/gone.toml");
    let o = autoconv(&["check", moved.to_str().unwrap()], &repo());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("run 0 of the baseline: cannot read scenario scenarios/gone.toml"),
        "{}",
        text(&o)
    );
    let bad_set = edit(&base, 1, "sets", "cpu-throttle-initial=100");
    let o = autoconv(&["check", bad_set.to_str().unwrap()], &repo());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("expects an integer in the range of 1 to 99"),
        "{}",
        text(&o)
    );
    std::fs::write(dir.path().join("x.csv"), "a,b\n").unwrap();
    let o = autoconv(&["check", "x.csv"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not a runs CSV"), "{}", text(&o));
}
