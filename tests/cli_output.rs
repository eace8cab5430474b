//! Standard output that goes away: a closed pipe (`| head -1`, `| true`) ends the command
//! quietly with its own exit code, a full disk (`> /dev/full`) is one error line and exit 2,
//! never a panic; every error is one line with each cause said once.

mod common;
use common::{scenarios, text};

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Run autoconv in `cwd` with stdout a pipe whose read end is closed before it writes.
fn closed_stdout(args: &[&str], cwd: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoconv"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run autoconv");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait for autoconv")
}

fn to_dev_full(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoconv"))
        .args(args)
        .current_dir(cwd)
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .expect("run autoconv")
}

fn heavy() -> String {
    scenarios().join("heavy.toml").display().to_string()
}

#[test]
fn a_closed_pipe_ends_sim_quietly_and_its_files_are_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let o = closed_stdout(&["sim", &heavy(), "--out", "run"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(o.stderr.is_empty(), "{}", text(&o));
    assert!(dir.path().join("run/summary.json").is_file());
}

#[test]
fn a_closed_pipe_ends_params_sweep_and_check_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = [
        "sweep",
        &heavy(),
        "--grid",
        "cpu-throttle-initial=10,30",
        "--out",
        "sw",
    ];
    for args in [&["params"][..], &sweep[..]] {
        let o = closed_stdout(args, dir.path());
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        let err = common::stderr(&o);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
    }
    // The sweep's runs.csv names the scenario by its absolute path: check can re-run it here.
    let o = closed_stdout(&["check", "sw/runs.csv"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(o.stderr.is_empty(), "{}", text(&o));
}

#[test]
fn a_full_disk_on_stdout_is_one_error_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["params"][..], &["sim", &heavy(), "--out", "run"][..]] {
        let o = to_dev_full(args, dir.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = common::stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(
            err.trim_end(),
            "autoconv: error: writing standard output: No space left on device (os error 28)"
        );
    }
}

#[test]
fn an_os_error_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let o = common::autoconv(&["sim", "d"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = common::stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
}

#[test]
fn check_names_the_baseline_it_could_not_re_run() {
    // Shipped baselines name scenarios relative to the repository root: from elsewhere they
    // cannot be found, and the error must say which baseline was being checked.
    let dir = tempfile::tempdir().unwrap();
    let baseline = common::repo().join("results/baselines/light.csv");
    let o = common::autoconv(&["check", baseline.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = common::stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("checking {}", baseline.display())),
        "{err}"
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
