//! A destination that stops reading holds the source no longer than `--stall-timeout`, and never
//! past `autoconv.time_limit_s`; one that never answers the handshake, no longer than
//! `--handshake-timeout`. A stall ends the migration `cancelled` (QEMU's state after
//! migrate_cancel, the only way QEMU leaves a stalled migration), or `not-converged` when the
//! time limit cut it, never `failed`; the source guest runs on unthrottled. Real KVM guests;
//! skipped with a printed reason without /dev/kvm, failing under AUTOCONV_REQUIRE_ALL=1.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use autoconv::migration::{CancelToken, MigrationStatus};
use autoconv::session::kvm::{run_migration, RunOptions, RunReport};
use autoconv::transport::link::LinkTimeouts;
use autoconv::transport::protocol;

/// A 16 MiB sequential writer in 64 MiB: more than the socket buffers hold, so a silent
/// destination stalls the migration while it runs.
fn options(
    dir: &std::path::Path,
    addr: std::net::SocketAddr,
    timeouts: LinkTimeouts,
) -> RunOptions {
    common::stalled_link::options(dir, addr, 16 << 20, 64 << 20, timeouts)
}

/// A destination that accepts the handshake (protocol v2) and then reads nothing, as one
/// stopped with SIGSTOP would. It holds the connection until `release` is dropped.
fn silent_destination(
    answer_handshake: bool,
) -> (
    std::net::SocketAddr,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let h = std::thread::spawn(move || {
        let (mut s, _): (TcpStream, _) = listener.accept().unwrap();
        if answer_handshake {
            let mut hello = [0u8; protocol::HELLO_BYTES];
            s.read_exact(&mut hello).unwrap();
            let reply = protocol::Reply {
                status: 0,
                nonce: [9; protocol::NONCE_BYTES],
                message: String::new(),
            };
            s.write_all(&reply.encode()).unwrap();
        }
        let _ = wait.recv();
    });
    (addr, release, h)
}

fn assert_source_survived(r: &RunReport) {
    assert_eq!(r.source_throttle_after_pct, 0, "throttle left on");
    let after = r.source_after.as_ref().expect("source watched after");
    assert!(
        after.pages_written_per_s > 0.0,
        "source guest not running after the stall: {after:?}"
    );
}

#[test]
fn a_destination_that_stops_reading_is_cancelled_within_the_stall_timeout() {
    let Some(_g) = common::prereq::kvm("a_destination_that_stops_reading_is_cancelled") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (addr, release, fake) = silent_destination(true);
    let timeouts = LinkTimeouts {
        stall: Duration::from_millis(1500),
        ..LinkTimeouts::default()
    };
    let opts = options(dir.path(), addr, timeouts);
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    drop(release);
    fake.join().unwrap();
    let o = &r.outcome;
    assert_eq!(o.status, MigrationStatus::Cancelled, "{o:?}");
    let reason = o.reason.clone().unwrap();
    assert!(
        reason.contains("the destination stalled: nothing moved for 1.5 s")
            && reason.ends_with("migration cancelled"),
        "{reason}"
    );
    // The bound counts from the last byte that moved: filling the socket buffers first takes
    // well under a second on an idle host, seconds on a loaded one.
    assert!(
        (1_500..10_000).contains(&o.elapsed_ms),
        "ended after {} ms",
        o.elapsed_ms
    );
    assert_eq!(r.memory_verified, None);
    assert_source_survived(&r);
}

#[test]
fn the_time_limit_caps_the_stall_timeout_and_the_run_is_not_converged() {
    let Some(_g) = common::prereq::kvm("the_time_limit_caps_the_stall_timeout") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (addr, release, fake) = silent_destination(true);
    // A 60 s stall bound, a 2 s time limit: the limit wins.
    let timeouts = LinkTimeouts {
        stall: Duration::from_secs(60),
        ..LinkTimeouts::default()
    };
    let mut opts = options(dir.path(), addr, timeouts);
    opts.config.autoconv.time_limit_ms = 2_000;
    let t0 = Instant::now();
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    drop(release);
    fake.join().unwrap();
    let o = &r.outcome;
    assert_eq!(o.status, MigrationStatus::NotConverged, "{o:?}");
    let reason = o.reason.clone().unwrap();
    assert!(
        reason.starts_with("stopped at autoconv's time limit of 2 s")
            && reason.contains("the run's time limit was reached"),
        "{reason}"
    );
    assert!(
        (2_000..3_000).contains(&o.elapsed_ms),
        "ended after {} ms",
        o.elapsed_ms
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_source_survived(&r);
}

#[test]
fn a_destination_that_never_answers_the_handshake_fails_at_the_handshake_timeout() {
    let Some(_g) = common::prereq::kvm("a_destination_that_never_answers_the_handshake") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (addr, release, fake) = silent_destination(false);
    let timeouts = LinkTimeouts {
        handshake: Duration::from_millis(1200),
        ..LinkTimeouts::default()
    };
    let opts = options(dir.path(), addr, timeouts);
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    drop(release);
    fake.join().unwrap();
    let o = &r.outcome;
    // Nothing was migrated: the handshake is not a stall of a running migration.
    assert_eq!(o.status, MigrationStatus::Failed, "{o:?}");
    assert!(
        o.reason.as_deref().unwrap().contains("handshake deadline"),
        "{o:?}"
    );
    assert!(
        (1_200..3_000).contains(&o.elapsed_ms),
        "failed after {} ms, reported as the real time",
        o.elapsed_ms
    );
    assert_source_survived(&r);
}
