//! Outputs never destroy what autoconv did not write: a directory is written into only when it
//! is absent, empty or autoconv's own output (`.autoconv-output`); a re-run keeps the files a
//! user or `autoconv plot` added; a file in the way is an error, never moved aside; a
//! scenario's name cannot point outside results/.

mod common;
use common::{autoconv, scenarios, stderr, text};

use std::fs;
use std::path::Path;

fn heavy() -> String {
    scenarios().join("heavy.toml").display().to_string()
}

fn light() -> String {
    scenarios().join("light.toml").display().to_string()
}

/// Every entry of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn refused_in_one_line(o: &std::process::Output, path: &str) {
    assert_eq!(o.status.code(), Some(2), "{}", text(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(path), "names {path}: {err}");
}

#[test]
fn sim_into_a_directory_of_the_users_refuses_and_keeps_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("sc")).unwrap();
    fs::copy(heavy(), d.join("sc/heavy.toml")).unwrap();
    fs::write(d.join("sc/notes.txt"), "mine").unwrap();
    let o = autoconv(&["sim", "sc/heavy.toml", "--out", "sc"], d);
    refused_in_one_line(&o, "sc");
    assert!(
        stderr(&o).contains("not autoconv's output"),
        "{}",
        stderr(&o)
    );
    assert_eq!(entries(&d.join("sc")), ["heavy.toml", "notes.txt"]);
    assert_eq!(fs::read_to_string(d.join("sc/notes.txt")).unwrap(), "mine");
}

#[test]
fn a_file_in_the_way_is_an_error_and_is_not_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("existing.txt"), "keep").unwrap();
    let o = autoconv(&["sim", &light(), "--out", "existing.txt"], d);
    refused_in_one_line(&o, "existing.txt");
    assert_eq!(entries(d), ["existing.txt"]);
    assert_eq!(fs::read_to_string(d.join("existing.txt")).unwrap(), "keep");
}

#[test]
fn re_running_into_its_own_output_keeps_the_users_files_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An empty directory is fine.
    fs::create_dir(d.join("run")).unwrap();
    let o = autoconv(&["sim", &light(), "--out", "run"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let marker: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.join("run/.autoconv-output")).unwrap()).unwrap();
    assert_eq!(
        marker["files"],
        serde_json::json!(["timeseries.csv", "events.csv", "summary.json"])
    );
    assert!(marker["command"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "sim"));
    fs::write(d.join("run/notes.txt"), "mine").unwrap();
    let o = autoconv(&["plot", "run", "-o", "run/plot.svg"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let before = fs::read(d.join("run/summary.json")).unwrap();

    let o = autoconv(&["sim", &light(), "--seed", "7", "--out", "run"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        entries(&d.join("run")),
        [
            ".autoconv-output",
            "events.csv",
            "notes.txt",
            "plot.svg",
            "summary.json",
            "timeseries.csv"
        ]
    );
    assert_eq!(fs::read_to_string(d.join("run/notes.txt")).unwrap(), "mine");
    // autoconv's own files were replaced.
    assert_ne!(fs::read(d.join("run/summary.json")).unwrap(), before);
}

#[test]
fn sweep_into_a_directory_of_the_users_refuses_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("out")).unwrap();
    fs::write(d.join("out/data.csv"), "mine").unwrap();
    let o = autoconv(
        &[
            "sweep",
            &light(),
            "--grid",
            "cpu-throttle-initial=10,20",
            "--out",
            "out",
        ],
        d,
    );
    refused_in_one_line(&o, "out");
    assert_eq!(entries(&d.join("out")), ["data.csv"]);
    // Into its own output again: fine.
    let o = autoconv(
        &[
            "sweep",
            &light(),
            "--grid",
            "cpu-throttle-initial=10,20",
            "--out",
            "sw",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = autoconv(
        &[
            "sweep",
            &light(),
            "--grid",
            "cpu-throttle-initial=10,30",
            "--out",
            "sw",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn scenario_names_are_plain_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("victim")).unwrap();
    fs::write(d.join("victim/keep.txt"), "mine").unwrap();
    let text_of = fs::read_to_string(light()).unwrap();
    for bad in ["../victim", "/tmp/x", "", "a/b", "a\\\\b", ".."] {
        let toml = text_of.replace("name = \"light\"", &format!("name = \"{bad}\""));
        fs::write(d.join("s.toml"), toml).unwrap();
        let o = autoconv(&["sim", "s.toml"], d);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("s.toml:6"), "{bad}: file:line: {err}");
        assert!(err.contains("not a plain name"), "{err}");
    }
    assert_eq!(entries(&d.join("victim")), ["keep.txt"]);
    assert!(!d.join("results").exists());
}

#[test]
fn single_file_outputs_never_replace_a_directory_or_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = autoconv(&["sim", &light(), "--out", "run"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    fs::create_dir(d.join("p.svg")).unwrap();
    let o = autoconv(&["plot", "run", "-o", "p.svg"], d);
    refused_in_one_line(&o, "p.svg");
    assert!(d.join("p.svg").is_dir());
    // /dev/null stays a device (`--out`, `-o` and `--save` alike).
    let o = autoconv(&["sim", &light(), "--out", "/dev/null"], d);
    refused_in_one_line(&o, "/dev/null");
    let o = autoconv(
        &[
            "sweep",
            &light(),
            "--grid",
            "cpu-throttle-initial=10,20",
            "--out",
            "sw",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = autoconv(&["merge", "sw/runs.csv", "-o", "/dev/null"], d);
    refused_in_one_line(&o, "/dev/null");
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}
