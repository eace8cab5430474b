//! The commit step (protocol v4): a destination resumes a guest only on its source's COMMIT,
//! and a source resumes its own only if COMMIT never went out or the destination said it does
//! not run the guest. Each test makes one side lose the other at one point of that exchange
//! and checks that at most one guest runs afterwards, and which one. Real KVM destinations;
//! skipped with a printed reason without /dev/kvm, failing under AUTOCONV_REQUIRE_ALL=1.

mod common;

use common::incoming::InProcess;
use common::relay;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use autoconv::migration::{CancelToken, MigrationStatus};
use autoconv::session::kvm::{run_migration, RunOptions};
use autoconv::transport::incoming::DestinationConfig;
use autoconv::transport::link::LinkTimeouts;
use autoconv::transport::protocol::{
    Command, Header, Hello, Reply, COMPLETE_DIGEST, HEADER_BYTES, MAX_RUN_PAGES, NONCE_BYTES,
    PAGE_BYTES, REPLY_FIXED_BYTES,
};

/// A destination in this process with a short stall bound.
fn destination(stall: Duration) -> (SocketAddr, InProcess) {
    common::incoming::in_process(DestinationConfig {
        stall_timeout: stall,
        ..DestinationConfig::plain(Default::default())
    })
}

/// A relay that forwards the source's bytes as they come, and the destination's first
/// `back_bytes` only: whatever the destination says after that is read and never delivered,
/// as if the path back were cut (or the destination stalled) at that point.
fn relay_cutting_the_way_back(to: SocketAddr, back_bytes: usize) -> SocketAddr {
    let back = move |from: &mut TcpStream, into: &mut TcpStream| {
        let mut passed = 0;
        relay::filter(from, into, |read| {
            let pass = read.len().min(back_bytes - passed);
            passed += pass;
            pass
        })
    };
    relay::start(to, relay::pass, back).0
}

/// An 8 MiB sequential writer in 32 MiB, the source giving up after `stall` without progress.
fn options(dir: &Path, addr: SocketAddr, stall: Duration) -> RunOptions {
    let timeouts = LinkTimeouts {
        stall,
        ..LinkTimeouts::default()
    };
    common::stalled_link::options(dir, addr, 8 << 20, 32 << 20, timeouts)
}

#[test]
fn a_verdict_that_comes_after_the_source_gave_up_resumes_nothing_there() {
    // The destination verifies, but its READY does not reach the source within the source's
    // stall bound (a destination stalled in verification looks the same from the source):
    // the source takes its guest back, and the destination, READY sent, never gets COMMIT.
    // Under protocol v3 the destination resumed right after verifying: two guests.
    let Some(_g) = common::prereq::kvm_with_tools("late_verdict", &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (dest, dest_thread) = destination(Duration::from_secs(20));
    let relay = relay_cutting_the_way_back(dest, REPLY_FIXED_BYTES);
    let opts = options(dir.path(), relay, Duration::from_secs(1));
    let t0 = Instant::now();
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    let o = &r.outcome;
    assert_eq!(o.status, MigrationStatus::Cancelled, "{o:?}");
    let reason = o.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("waiting for the destination's verdict"),
        "{reason}"
    );
    assert!(!r.source_paused);
    let after = r.source_after.as_ref().expect("source watched after");
    assert!(
        after.pages_written_per_s > 0.0,
        "source not running: {after:?}"
    );
    // The source closed the connection: the destination ends at once, not at its stall bound.
    let e = match dest_thread.join().unwrap() {
        Ok(_) => panic!("the destination resumed a guest its source had taken back"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("did not commit") && e.contains("will not run this guest"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
}

#[test]
fn a_commit_whose_answer_is_lost_leaves_the_source_paused_and_the_destination_running() {
    // COMMIT arrives, the destination runs the guest, its answer never comes back: the
    // source cannot tell whether it runs there, so it must not run it as well.
    let Some(_g) = common::prereq::kvm_with_tools("lost_commit_answer", &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (dest, dest_thread) = destination(Duration::from_secs(20));
    let relay = relay_cutting_the_way_back(dest, REPLY_FIXED_BYTES + HEADER_BYTES);
    let opts = options(dir.path(), relay, Duration::from_secs(1));
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    let o = &r.outcome;
    assert_eq!(o.status, MigrationStatus::Failed, "{o:?}");
    let reason = o.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("COMMIT was sent and not confirmed")
            && reason.contains("the source guest stays paused"),
        "{reason}"
    );
    assert!(r.source_paused && r.source_after.is_none());
    assert!(r.link.commit_unconfirmed);
    let inc = dest_thread
        .join()
        .unwrap()
        .expect("the destination got COMMIT and runs the guest");
    // It is the source's guest, running on from the source's last counters.
    assert_eq!(inc.counters_at_resume, r.source_final);
    let c0 = inc.machine.counters();
    std::thread::sleep(Duration::from_millis(300));
    let c1 = inc.machine.counters();
    assert!(
        c1[0].pages_written > c0[0].pages_written,
        "destination guest not running"
    );
}

/// A source written by hand: a valid stream for a guest of `ram_bytes` whose memory is all
/// zero, with `state` as its device state, up to and including COMPLETE; returns the socket
/// once the destination has answered COMPLETE, and that answer.
fn fake_source(addr: SocketAddr, ram_bytes: u64, state: &[u8]) -> (TcpStream, Command) {
    let mut s = TcpStream::connect(addr).unwrap();
    let nonce = [0x11; NONCE_BYTES];
    let hello = Hello {
        ram_bytes,
        vcpus: 1,
        flags: 0,
        nonce,
    };
    s.write_all(&hello.encode()).unwrap();
    let mut fixed = [0u8; REPLY_FIXED_BYTES];
    s.read_exact(&mut fixed).unwrap();
    let (reply, len) = Reply::decode_fixed(&fixed).unwrap();
    if reply.status != 0 {
        let mut msg = vec![0u8; len as usize];
        let _ = s.read_exact(&mut msg);
        panic!("handshake refused: {}", String::from_utf8_lossy(&msg));
    }
    let key = autoconv::transport::verify::session_key(&nonce, &reply.nonce, None);
    let mut digest = crc32fast::Hasher::new_with_initial(key);
    let mut out = Vec::new();
    let frame =
        |command, count, arg, payload: &[u8], out: &mut Vec<u8>, digest: &mut crc32fast::Hasher| {
            let h = Header {
                command,
                count,
                arg,
            }
            .encode();
            if command != Command::Complete {
                digest.update(&h);
            }
            if command == Command::DeviceState {
                digest.update(payload);
            }
            out.extend_from_slice(&h);
            out.extend_from_slice(payload);
        };
    let pages = ram_bytes / PAGE_BYTES;
    for first in (0..pages).step_by(MAX_RUN_PAGES as usize) {
        let n = (pages - first).min(u64::from(MAX_RUN_PAGES));
        frame(
            Command::ZeroPages,
            n as u32,
            first * PAGE_BYTES,
            &[],
            &mut out,
            &mut digest,
        );
    }
    frame(Command::EndOfIteration, 0, 0, &[], &mut out, &mut digest);
    frame(
        Command::DeviceState,
        state.len() as u32,
        0,
        state,
        &mut out,
        &mut digest,
    );
    let d = digest.clone().finalize().to_le_bytes();
    frame(
        Command::Complete,
        1,
        COMPLETE_DIGEST,
        &d,
        &mut out,
        &mut digest,
    );
    s.write_all(&out).unwrap();
    let mut h = [0u8; HEADER_BYTES];
    s.read_exact(&mut h).unwrap();
    let answer = Header::decode(&h, ram_bytes).unwrap();
    let mut msg = vec![0u8; answer.payload_bytes() as usize];
    s.read_exact(&mut msg).unwrap();
    (s, answer.command)
}

/// The destination's last answer after READY, if it sends one.
fn last_answer(s: &mut TcpStream) -> Option<(Command, String)> {
    let mut h = [0u8; HEADER_BYTES];
    s.read_exact(&mut h).ok()?;
    let header = Header::decode(&h, 8 << 20).ok()?;
    let mut msg = vec![0u8; header.payload_bytes() as usize];
    s.read_exact(&mut msg).ok()?;
    Some((header.command, String::from_utf8_lossy(&msg).into_owned()))
}

#[test]
fn without_commit_the_destination_never_resumes() {
    let Some(_g) = common::prereq::kvm_with_tools("without_commit", &[]) else {
        return;
    };
    let state = std::fs::read(common::repo().join("fuzz/seeds/device-state.json")).unwrap();
    let ram = 8 << 20;
    // Silent after READY: given up at the stall bound, and the source is told.
    let (addr, dest) = destination(Duration::from_millis(800));
    let (mut s, answer) = fake_source(addr, ram, &state);
    assert_eq!(answer, Command::Ready);
    let t0 = Instant::now();
    let (command, msg) = last_answer(&mut s).expect("the destination says it gave up");
    let waited = t0.elapsed();
    assert_eq!(command, Command::ResultFailed, "{msg}");
    assert!(msg.contains("will not run this guest"), "{msg}");
    let e = dest.join().unwrap().err().expect("not resumed").to_string();
    assert!(
        e.contains("did not commit") && e.contains("moved nothing for 0.8 s (--stall-timeout)"),
        "{e}"
    );
    assert!(
        (Duration::from_millis(700)..Duration::from_secs(8)).contains(&waited),
        "{waited:?}"
    );
    // ABORT after READY: the source keeps its guest.
    let (addr, dest) = destination(Duration::from_secs(20));
    let (mut s, answer) = fake_source(addr, ram, &state);
    assert_eq!(answer, Command::Ready);
    let abort = Header {
        command: Command::Abort,
        count: 4,
        arg: 0,
    };
    s.write_all(&[&abort.encode()[..], b"quit"].concat())
        .unwrap();
    let e = dest.join().unwrap().err().expect("not resumed").to_string();
    assert!(e.contains("the source aborted the migration: quit"), "{e}");
    // The source's connection closed after READY.
    let (addr, dest) = destination(Duration::from_secs(20));
    let (s, answer) = fake_source(addr, ram, &state);
    assert_eq!(answer, Command::Ready);
    drop(s);
    let e = dest.join().unwrap().err().expect("not resumed").to_string();
    assert!(e.contains("did not commit"), "{e}");
    // COMMIT before READY is a protocol error, never a resume.
    let (addr, dest) = destination(Duration::from_secs(20));
    let mut s = TcpStream::connect(addr).unwrap();
    let hello = Hello {
        ram_bytes: ram,
        vcpus: 1,
        flags: 0,
        nonce: [1; NONCE_BYTES],
    };
    s.write_all(&hello.encode()).unwrap();
    let commit = Header {
        command: Command::Commit,
        count: 0,
        arg: 0,
    };
    s.write_all(&commit.encode()).unwrap();
    let e = dest.join().unwrap().err().expect("not resumed").to_string();
    assert!(
        e.contains("COMMIT before this destination was READY"),
        "{e}"
    );
}

#[test]
fn the_destination_gives_up_on_a_trickling_source_at_its_deadline() {
    // One byte a second never trips the stall bound; the overall deadline ends it.
    let Some(_g) = common::prereq::kvm_with_tools("trickling_source", &[]) else {
        return;
    };
    let (addr, dest) = common::incoming::in_process(DestinationConfig {
        stall_timeout: Duration::from_secs(5),
        deadline: Some(Duration::from_millis(1500)),
        ..DestinationConfig::plain(Default::default())
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let hello = Hello {
        ram_bytes: 8 << 20,
        vcpus: 1,
        flags: 0,
        nonce: [1; NONCE_BYTES],
    };
    s.write_all(&hello.encode()).unwrap();
    let t0 = Instant::now();
    let header = Header {
        command: Command::Pages,
        count: 1,
        arg: 0,
    }
    .encode();
    let trickle = std::thread::spawn(move || {
        for b in header.iter().chain(std::iter::repeat(&0u8)) {
            if s.write_all(&[*b]).is_err() || t0.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let e = dest.join().unwrap().err().expect("given up");
    let e = autoconv::migration::error_chain(&e);
    let took = t0.elapsed();
    assert!(
        e.contains("deadline for one migration passed (--deadline)"),
        "{e}"
    );
    assert!(
        (Duration::from_millis(1000)..Duration::from_secs(4)).contains(&took),
        "{took:?}"
    );
    trickle.join().unwrap();
}

/// Ctrl-C on a one-shot destination (`accept_one_with`: `run --kvm`'s local destination)
/// between READY and COMMIT: it says so, tells the source it will not run the guest, and
/// resumes nothing. Before, it went on waiting for COMMIT and resumed the guest.
#[test]
fn ctrl_c_while_a_one_shot_destination_waits_for_commit_resumes_nothing_there() {
    let Some(_g) = common::prereq::kvm_with_tools("ctrl_c_waiting_for_commit", &[]) else {
        return;
    };
    let state = std::fs::read(common::repo().join("fuzz/seeds/device-state.json")).unwrap();
    let cancel = CancelToken::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dest = {
        let (cancel, config) = (cancel.clone(), DestinationConfig::plain(Default::default()));
        std::thread::spawn(move || {
            autoconv::transport::incoming::accept_one_with(&listener, &cancel, &config)
        })
    };
    let (mut s, answer) = fake_source(addr, 8 << 20, &state);
    assert_eq!(answer, Command::Ready);
    cancel.cancel();
    let (command, msg) = last_answer(&mut s).expect("the destination says it gave up");
    assert_eq!(command, Command::ResultFailed, "{msg}");
    assert!(msg.contains("will not run this guest"), "{msg}");
    let e = dest.join().unwrap().err().expect("not resumed");
    assert!(
        matches!(
            e,
            autoconv::transport::TransportError::CancelledHere {
                during: "waiting for the source's COMMIT"
            }
        ),
        "{e}"
    );
}
