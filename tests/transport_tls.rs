//! The migration stream against peers that are not the source: TLS with both ends
//! authenticated (QEMU's tls-creds-x509 layout, certificates made by rcgen), handshakes under
//! one overall deadline, a listener nothing can end or block, memory bounded before it is
//! allocated, and memory verification bound to the session (a recorded stream replayed does
//! not verify).
//!
//! Tests marked KVM need /dev/kvm: they skip with a printed reason, or fail when
//! AUTOCONV_REQUIRE_ALL=1 (CI) says nothing may be skipped.

#[path = "support/certs.rs"]
mod certs;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoconv::kvm::memory::{keyed_page_digest, GuestRam};
use autoconv::migration::{CancelToken, MigrationStatus};
use autoconv::session::kvm::{run_migration, Destination, RunOptions};
use autoconv::transport::incoming::{self, DestinationConfig};
use autoconv::transport::protocol::{
    Command, Header, Hello, COMPLETE_DIGEST, HEADER_BYTES, HELLO_BYTES, NONCE_BYTES,
    REPLY_FIXED_BYTES,
};
use autoconv::transport::tls::{self, ClientTls, Endpoint, TlsCreds};
use autoconv::transport::{verify, TransportError};

/// Good credentials in `dir/good`, and an intruder's: it trusts the real CA (it knows whom it
/// talks to) but its own certificate comes from another CA.
fn creds(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let good = dir.join("good");
    certs::write_creds(&good, "autoconv test CA");
    let other = dir.join("other");
    certs::write_creds(&other, "someone else's CA");
    let intruder = dir.join("intruder");
    std::fs::create_dir_all(&intruder).unwrap();
    std::fs::copy(good.join("ca-cert.pem"), intruder.join("ca-cert.pem")).unwrap();
    for f in ["client-cert.pem", "client-key.pem"] {
        std::fs::copy(other.join(f), intruder.join(f)).unwrap();
    }
    (good, intruder)
}

fn hello(ram_bytes: u64) -> Hello {
    Hello {
        ram_bytes,
        vcpus: 1,
        flags: 0,
        nonce: [5; NONCE_BYTES],
    }
}

type Reports = Arc<Mutex<Vec<String>>>;

/// `serve` on its own thread, its reports collected.
fn serving(
    config: DestinationConfig,
) -> (
    SocketAddr,
    CancelToken,
    Reports,
    std::thread::JoinHandle<Result<incoming::Incoming, TransportError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancelToken::new();
    let reports: Reports = Arc::default();
    let (c, r) = (cancel.clone(), reports.clone());
    let h = std::thread::spawn(move || {
        incoming::serve(&listener, &c, &config, &mut |line| {
            r.lock().unwrap().push(line.to_string())
        })
    });
    (addr, cancel, reports, h)
}

fn wait_for_reports(reports: &Reports, n: usize, limit: Duration) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let r = reports.lock().unwrap().clone();
        if r.len() >= n || t0.elapsed() > limit {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn peers_without_a_certificate_from_the_ca_are_refused_before_any_frame_and_the_listener_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (good, intruder) = creds(dir.path());
    let mut config = DestinationConfig::plain(Default::default());
    config.tls = TlsCreds::load(&good, Endpoint::Server).unwrap().server();
    config.handshake_timeout = Duration::from_millis(1500);
    // Authenticated sources asking for more than --max-mem are refused in the handshake too.
    config.max_mem_bytes = Some(64 << 20);
    let (addr, cancel, reports, server) = serving(config);

    // 1. A certificate from another CA: refused in the TLS handshake; its Hello gets no reply.
    let t0 = Instant::now();
    let intruder_tls = ClientTls {
        creds: TlsCreds::load(&intruder, Endpoint::Client).unwrap(),
        hostname: None,
    };
    let tcp = TcpStream::connect(addr).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    // TLS 1.3: the client's side of the handshake may end before the server has judged its
    // certificate; the refusal then shows on the first read.
    if let Ok(mut conn) = tls::connect(&intruder_tls, addr, tcp, deadline) {
        let _ = conn.write_all_slices(&[&hello(64 << 20).encode()]);
        let mut reply = [0u8; REPLY_FIXED_BYTES];
        assert!(
            conn.read_exact(&mut reply).is_err(),
            "an intruder got a handshake reply"
        );
    }
    // 2. The migration protocol in the clear, to a TLS destination.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.write_all(&hello(64 << 20).encode()).unwrap();
    // 3. A port scan: connect and close.
    drop(TcpStream::connect(addr).unwrap());
    // 4. Silence, and 5. one byte every 200 ms: both cut by the 1.5 s overall deadline.
    let _silent = TcpStream::connect(addr).unwrap();
    let trickler = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let t0 = Instant::now();
        for b in [0x16u8, 3, 1, 0, 200].iter().cycle().take(100) {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        t0.elapsed()
    });
    // 6. A source with good credentials asking for 4 GiB: refused by --max-mem, with a reply.
    let good_tls = ClientTls {
        creds: TlsCreds::load(&good, Endpoint::Client).unwrap(),
        hostname: None,
    };
    let tcp = TcpStream::connect(addr).unwrap();
    let mut conn = tls::connect(
        &good_tls,
        addr,
        tcp,
        Instant::now() + Duration::from_secs(5),
    )
    .expect("a source with good credentials completes the TLS handshake");
    conn.write_all_slices(&[&hello(4 << 30).encode()]).unwrap();
    let mut fixed = [0u8; REPLY_FIXED_BYTES];
    conn.read_exact(&mut fixed).unwrap();
    let (reply, len) = autoconv::transport::protocol::Reply::decode_fixed(&fixed).unwrap();
    let mut msg = vec![0u8; len as usize];
    conn.read_exact(&mut msg).unwrap();
    let msg = String::from_utf8(msg).unwrap();
    assert_eq!(reply.status, 1);
    assert!(msg.contains("--max-mem"), "{msg}");

    let r = wait_for_reports(&reports, 6, Duration::from_secs(6));
    let trickled = trickler.join().unwrap();
    assert!(
        trickled < Duration::from_secs(4),
        "a trickling peer was kept for {trickled:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    assert_eq!(r.len(), 6, "{r:#?}");
    let count = |needle: &str| r.iter().filter(|l| l.contains(needle)).count();
    assert!(
        count("TLS: handshake with the source failed") >= 4,
        "{r:#?}"
    );
    assert!(
        r.iter().any(|l| l.contains("UnknownIssuer")),
        "the intruder's refusal must say why: {r:#?}"
    );
    assert_eq!(count("deadline"), 2, "{r:#?}");
    assert_eq!(count("--max-mem"), 1, "{r:#?}");
    // None of this ended the destination.
    assert!(!server.is_finished());
    cancel.cancel();
    assert!(matches!(
        server.join().unwrap(),
        Err(TransportError::Cancelled)
    ));
}

#[test]
fn the_source_checks_the_destination_certificate_against_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = creds(dir.path());
    let creds = TlsCreds::load(&good, Endpoint::Both).unwrap();
    for (hostname, ok) in [
        (None, true),
        (Some("localhost"), true),
        (Some("migration.example"), false),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server_config = creds.server().unwrap();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tls::accept(server_config, tcp, Instant::now() + Duration::from_secs(5)).map(|_| ())
        });
        let client = ClientTls {
            creds: creds.clone(),
            hostname: hostname.map(str::to_string),
        };
        let tcp = TcpStream::connect(addr).unwrap();
        let r = tls::connect(&client, addr, tcp, Instant::now() + Duration::from_secs(5));
        let _ = server.join().unwrap();
        match (r, ok) {
            (Ok(_), true) => {}
            (Err(e), false) => {
                let e = e.to_string();
                assert!(
                    e.contains("migration.example") && e.contains("not valid for name"),
                    "{e}"
                );
            }
            (Ok(_), false) => panic!("{hostname:?} was accepted"),
            (Err(e), true) => panic!("{hostname:?}: {e}"),
        }
    }
}

#[test]
fn a_handshake_has_one_overall_deadline_and_memory_is_checked_before_it_is_allocated() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = DestinationConfig::plain(Default::default());
    config.handshake_timeout = Duration::from_secs(1);
    config.max_mem_bytes = Some(64 << 20);
    let c = config.clone();
    let server = std::thread::spawn(move || {
        let mut out = Vec::new();
        for _ in 0..2 {
            let (tcp, peer) = listener.accept().unwrap();
            let t0 = Instant::now();
            out.push((incoming::handshake(tcp, peer, &c).map(|_| ()), t0.elapsed()));
        }
        out
    });
    // A valid Hello, one byte every 100 ms (4.8 s in all): the per-read timeout would allow it.
    let mut s = TcpStream::connect(addr).unwrap();
    for b in hello(32 << 20).encode() {
        if s.write_all(&[b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // A Hello asking for 1 TiB.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&hello(1 << 40).encode()).unwrap();
    let out = server.join().unwrap();
    let (r, took) = &out[0];
    let e = autoconv::migration::error_chain(r.as_ref().unwrap_err());
    assert!(e.contains("deadline"), "{e}");
    assert!(*took < Duration::from_millis(1500), "{took:?}");
    let e = out[1].0.as_ref().unwrap_err().to_string();
    assert!(e.contains("at most 67108864 (--max-mem)"), "{e}");
}

// ---- with KVM ----

/// The 8 MiB paced guest, built into `dir`, in 32 MiB to `destination`, no rate limit.
fn options(dir: &Path, destination: Destination) -> RunOptions {
    RunOptions {
        machine: common::run_options::machine(32 << 20),
        config: common::run_options::unlimited(),
        destination,
        ..common::run_options::local(common::guest::paced(dir, 8 << 20))
    }
}

#[test]
fn a_migration_inside_tls_completes_with_both_ends_authenticated() {
    let Some(_g) = common::prereq::kvm("a_migration_inside_tls_completes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = creds(dir.path());
    let mut opts = options(dir.path(), Destination::Local);
    opts.tls = Some(ClientTls {
        creds: TlsCreds::load(&good, Endpoint::Both).unwrap(),
        hostname: None,
    });
    let r = run_migration(&opts, &CancelToken::new()).unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Completed,
        "{:?}",
        r.outcome
    );
    assert_eq!(r.memory_verified, Some(true));
    assert!(r.link.tls);
    let d = r.destination.unwrap();
    assert!(d.resumed && d.stats.tls, "{d:?}");
    assert_eq!(d.counters_at_resume, r.source_final);
}

#[test]
fn a_real_source_migrates_past_silent_scanning_and_garbage_peers() {
    let Some(_g) =
        common::prereq::kvm("a_real_source_migrates_past_silent_scanning_and_garbage_peers")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (addr, cancel, reports, server) = serving(DestinationConfig::plain(Default::default()));
    let _silent = TcpStream::connect(addr).unwrap();
    drop(TcpStream::connect(addr).unwrap());
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .write_all(b"GET / HTTP/1.0\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n")
        .unwrap();
    drop(garbage);
    let t0 = Instant::now();
    let r = run_migration(
        &options(dir.path(), Destination::Remote(addr)),
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Completed,
        "{:?}",
        r.outcome
    );
    // The silent peer (10 s deadline) did not hold the real source up.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    let inc = server
        .join()
        .unwrap()
        .expect("the real source's guest resumed");
    assert_eq!(inc.counters_at_resume, r.source_final);
    let r = reports.lock().unwrap().clone();
    assert!(r.len() >= 2, "{r:#?}");
    assert!(r.iter().any(|l| l.contains("bad magic")), "{r:#?}");
    assert!(
        r.iter().any(|l| l.contains("closed the connection before")),
        "{r:#?}"
    );
    cancel.cancel();
}

/// What the source sent, and what the destination answered.
type Recording = (Vec<u8>, Vec<u8>);

/// Relay between a source and a destination, recording both directions.
fn recording_relay(to: SocketAddr) -> (SocketAddr, std::thread::JoinHandle<Recording>) {
    common::relay::start(to, record, record)
}

/// Pass every byte on, keeping a copy.
fn record(from: &mut TcpStream, to: &mut TcpStream) -> Vec<u8> {
    let mut rec = Vec::new();
    common::relay::filter(from, to, |read| {
        rec.extend_from_slice(read);
        read.len()
    });
    rec
}

/// Rewrite a recorded stream as an attacker would: change a byte of the first page sent,
/// then recompute every digest (each page's, and COMPLETE's: the stream digest, or every
/// page's) for the memory that stream now builds, keyed with `key`.
fn forge(recorded: &[u8], key: u32) -> Vec<u8> {
    let mut out = recorded.to_vec();
    let mut hb = [0u8; HELLO_BYTES];
    hb.copy_from_slice(&out[..HELLO_BYTES]);
    let ram_bytes = Hello::decode(&hb).unwrap().ram_bytes;
    let ram = GuestRam::new(ram_bytes).unwrap();
    let mut at = HELLO_BYTES;
    let mut changed = false;
    let mut stream = crc32fast::Hasher::new_with_initial(key);
    loop {
        let mut h = [0u8; HEADER_BYTES];
        h.copy_from_slice(&out[at..at + HEADER_BYTES]);
        let header = Header::decode(&h, ram_bytes).unwrap();
        let body = at + HEADER_BYTES;
        let len = header.payload_bytes() as usize;
        if header.command != Command::Complete {
            stream.update(&h);
        }
        if header.command == Command::DeviceState {
            stream.update(&out[body..body + len]);
        }
        match header.command {
            Command::Pages => {
                if !changed {
                    out[body] ^= 0x5a;
                    changed = true;
                }
                let data = header.count as usize * 4096;
                assert!(ram.write(header.arg, &out[body..body + data]));
                for i in 0..header.count as usize {
                    let gfn = header.arg / 4096 + i as u64;
                    let page = &out[body + i * 4096..body + (i + 1) * 4096];
                    let d = keyed_page_digest(key, gfn, page);
                    let at = body + data + 4 * i;
                    out[at..at + 4].copy_from_slice(&d.to_le_bytes());
                }
            }
            Command::ZeroPages => {
                assert!(ram.write(header.arg, &vec![0u8; header.count as usize * 4096]));
            }
            Command::Complete => {
                if header.arg == COMPLETE_DIGEST {
                    let d = stream.clone().finalize();
                    out[body..body + 4].copy_from_slice(&d.to_le_bytes());
                } else {
                    let mut d = vec![0u32; ram.pages() as usize];
                    ram.keyed_page_digests(key, &mut d, 1);
                    for (i, v) in d.iter().enumerate() {
                        out[body + 4 * i..body + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
                    }
                }
                return out;
            }
            _ => {}
        }
        at = body + len;
    }
}

/// Replay `stream` to a fresh destination, reading its reply like a source.
fn replay(stream: &[u8]) -> Result<incoming::Incoming, TransportError> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dest = std::thread::spawn(move || {
        incoming::accept_one(&listener, &CancelToken::new(), Default::default())
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let stream = stream.to_vec();
    let mut r = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = s.write_all(&stream);
    });
    let mut sink = Vec::new();
    let _ = r.read_to_end(&mut sink);
    let _ = writer.join();
    dest.join().unwrap()
}

#[test]
fn a_recorded_stream_replayed_with_recomputed_digests_is_refused() {
    let Some(_g) =
        common::prereq::kvm("a_recorded_stream_replayed_with_recomputed_digests_is_refused")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (addr, _cancel, _reports, server) = serving(DestinationConfig::plain(Default::default()));
    let (relay, recording) = recording_relay(addr);
    let r = run_migration(
        &options(dir.path(), Destination::Remote(relay)),
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(
        r.outcome.status,
        MigrationStatus::Completed,
        "{:?}",
        r.outcome
    );
    drop(server.join().unwrap().unwrap());
    let (sent, answered) = recording.join().unwrap();
    // The attacker knows both nonces of the recorded session: recompute its key.
    let mut src_nonce = [0u8; NONCE_BYTES];
    src_nonce.copy_from_slice(&sent[32..48]);
    let mut dst_nonce = [0u8; NONCE_BYTES];
    dst_nonce.copy_from_slice(&answered[16..32]);
    let old_key = verify::session_key(&src_nonce, &dst_nonce, None);

    // Replayed as recorded, and forged with digests recomputed for that session: refused, every
    // page, because this destination keys its digests with a nonce of its own.
    for (what, stream) in [
        ("as recorded", sent.clone()),
        ("forged", forge(&sent, old_key)),
    ] {
        match replay(&stream) {
            Err(TransportError::VerificationFailed {
                mismatched_pages,
                pages,
                ..
            }) => assert_eq!(mismatched_pages, pages, "{what}"),
            Err(e) => panic!("{what}: refused for another reason: {e}"),
            Ok(_) => panic!("{what}: a replayed stream resumed a guest"),
        }
    }
    // Control: the forgery itself is well formed. A live forger that reads this session's
    // nonce and keys its digests with it gets in: in the clear only the nonce binds the
    // digests, and keeping such a peer out is what TLS authentication is for.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dest = std::thread::spawn(move || {
        incoming::accept_one(&listener, &CancelToken::new(), Default::default())
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&sent[..HELLO_BYTES]).unwrap();
    let mut fixed = [0u8; REPLY_FIXED_BYTES];
    s.read_exact(&mut fixed).unwrap();
    let (reply, _) = autoconv::transport::protocol::Reply::decode_fixed(&fixed).unwrap();
    let live_key = verify::session_key(&src_nonce, &reply.nonce, None);
    s.write_all(&forge(&sent, live_key)[HELLO_BYTES..]).unwrap();
    let inc = dest
        .join()
        .unwrap()
        .expect("the live forgery is accepted in the clear");
    assert!(!inc.stats.tls);
}
