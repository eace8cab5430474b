//! Destinations of the tests' migrations: `autoconv incoming` in its own process (the CLI
//! tests'), or a destination in the test's own process (the transport tests').

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;

use autoconv::migration::CancelToken;
use autoconv::transport::incoming::{accept_one_with, DestinationConfig, Incoming};
use autoconv::transport::TransportError;

/// What a destination in this process ends with: the guest it resumed, or why not.
pub type InProcess = JoinHandle<Result<Incoming, TransportError>>;

/// A destination in this process on a free local port, taking one migration under `config`;
/// its address and its thread.
pub fn in_process(config: DestinationConfig) -> (SocketAddr, InProcess) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = std::thread::spawn(move || accept_one_with(&listener, &CancelToken::new(), &config));
    (addr, h)
}

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
