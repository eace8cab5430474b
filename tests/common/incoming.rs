//! `autoconv incoming` in its own process, the destination of the CLI tests' migrations.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

/// Start `autoconv incoming tcp:127.0.0.1:0 --out OUT EXTRA...` on a free port; the child and
/// the address from its first line. Its stdout is drained from then on, so it never blocks on
/// a full pipe; its stderr is left to the test.
pub fn start(out: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = super::process::bin()
        .args(["incoming", "tcp:127.0.0.1:0", "--out"])
        .arg(out)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}
