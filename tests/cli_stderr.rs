//! A closed (`2>&-`) or full (`2>/dev/full`) stderr: no panic (std's `eprintln!` panics on
//! ENOSPC: exit 101), the exit code still says how the command went, and no message meant
//! for the terminal lands in a file autoconv writes (Rust's runtime gives a closed standard
//! descriptor /dev/null before `main`, so the next file opened cannot become descriptor 2).

mod common;
use common::{scenarios, text};

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

#[derive(Clone, Copy)]
enum Stderr {
    Closed,
    Full,
}

/// Run autoconv in `cwd` with stdout piped and stderr closed or /dev/full.
fn run(args: &[&str], cwd: &Path, stderr: Stderr) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoconv"));
    cmd.args(args).current_dir(cwd).stdout(Stdio::piped());
    match stderr {
        Stderr::Full => {
            cmd.stderr(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            );
        }
        Stderr::Closed => {
            cmd.stderr(Stdio::null());
            // SAFETY: between fork and exec only close(2) runs, which is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::close(2);
                    Ok(())
                });
            }
        }
    }
    cmd.output().expect("run autoconv")
}

fn light() -> String {
    scenarios().join("light.toml").display().to_string()
}

#[test]
fn exit_codes_hold_with_stderr_closed_or_full() {
    let dir = tempfile::tempdir().unwrap();
    let light = light();
    let cases: [(&[&str], i32); 4] = [
        // Completed: 0.
        (&["sim", &light, "--no-out"], 0),
        // Not converged within the time limit: 1 (its reason goes to stdout).
        (
            &[
                "sim",
                &light,
                "--no-out",
                "--set",
                "autoconv.time_limit_s=2",
            ],
            1,
        ),
        // Bad input: 2, its one error line lost, not a panic.
        (&["sim", &light, "--set", "no-such-parameter=1"], 2),
        // A command-line error (clap's own message): 2.
        (&["sim", "--no-such-flag"], 2),
    ];
    for stderr in [Stderr::Closed, Stderr::Full] {
        for (args, code) in &cases {
            let o = run(args, dir.path(), stderr);
            assert_eq!(o.status.code(), Some(*code), "{args:?}: {}", text(&o));
        }
    }
}

#[test]
fn a_closed_stderr_does_not_put_messages_into_output_files() {
    // With descriptor 2 left closed, the first file opened would become "stderr" and receive
    // the error and warning lines.
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "sim",
            &light(),
            "--out",
            "r",
            "--set",
            "no-such-parameter=1",
        ],
        dir.path(),
        Stderr::Closed,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!dir.path().join("r").exists());
    let o = run(&["sim", &light(), "--out", "r"], dir.path(), Stderr::Closed);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for f in std::fs::read_dir(dir.path().join("r")).unwrap() {
        let p = f.unwrap().path();
        let body = std::fs::read(&p).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("autoconv:"), "{}: {body}", p.display());
    }
}

#[test]
fn a_closed_stdout_loses_the_lines_but_not_the_run() {
    // `>&-`: Rust's runtime puts /dev/null there, so printing "succeeds" (exit 0); the run is
    // done and written, and no result line went into its files.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoconv"));
    cmd.args(["sim", &light(), "--out", "r"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only close(1) runs, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(o.stderr.is_empty(), "{}", text(&o));
    for f in ["summary.json", "timeseries.csv", "events.csv"] {
        let body = std::fs::read_to_string(dir.path().join("r").join(f)).unwrap();
        assert!(!body.contains("light (seed"), "{f}: {body}");
    }
}
