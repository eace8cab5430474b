//! The fault matrix: `autoconv run --kvm` in one network namespace, `autoconv incoming` in
//! another, joined by a veth pair with a `tc tbf` bandwidth cap (netem does not exist in these
//! kernels, so delay, stalls and resets come from a relay this test runs in the source's
//! namespace, and packet loss from an nft `numgen random` rule in the destination's). Each row injects one fault into a real migration and asserts how it ends: the
//! source's exit code and status, one `reason:` line, the source guest running on unthrottled,
//! the destination never resuming a guest it did not verify, and nothing left behind (no
//! process in either namespace, no stray file). Needs root, /dev/kvm and iproute2: skipped
//! with a printed reason without them, failing instead under AUTOCONV_REQUIRE_ALL=1.
//!
//! Stop-and-copy is made long on purpose: with `downtime-limit=60000` the source switches
//! over after its first 100 ms window, so nearly the whole first pass goes with the guest
//! stopped, and a fault injected 2 s into the migration (4 s after the source starts) lands
//! in it; the precopy rows inject at the same time, 2 s into a 5 s first pass. The
//! verification rows hold the destination's READY in the relay (the source then sees what a
//! destination stalled in verification shows it); the relay counts the destination's bytes,
//! so a Ctrl-C can be sent while the source waits for that verdict.
//!
//! One test runs the rows in order and prints the table the README shows
//! (`cargo test --release --test faults -- --nocapture`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SRC_IP: &str = "10.213.0.1";
const DST_IP: &str = "10.213.0.2";
const DST_PORT: u16 = 4444;
/// The source's --stall-timeout in every row.
const STALL_S: u64 = 3;
/// The destination's --stall-timeout in every row.
const DST_STALL_S: u64 = 5;
/// Bytes of the destination's handshake reply (no message): what the relay lets back in
/// HOLD_BACK mode, so that READY and what follows never reach the source.
const REPLY_BYTES: u64 = autoconv::transport::protocol::REPLY_FIXED_BYTES as u64;

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// Two namespaces and the veth pair between them; removed on drop.
struct Net {
    src: String,
    dst: String,
    src_if: String,
}

impl Net {
    fn create() -> Result<Net, String> {
        let id = std::process::id();
        let net = Net {
            src: format!("acsrc{id}"),
            dst: format!("acdst{id}"),
            src_if: format!("acvs{id}"),
        };
        let dst_if = format!("acvd{id}");
        ip(&["netns", "add", &net.src])?;
        ip(&["netns", "add", &net.dst])?;
        ip(&[
            "link",
            "add",
            &net.src_if,
            "type",
            "veth",
            "peer",
            "name",
            &dst_if,
        ])?;
        ip(&["link", "set", &net.src_if, "netns", &net.src])?;
        ip(&["link", "set", &dst_if, "netns", &net.dst])?;
        for (ns, dev, addr) in [(&net.src, &net.src_if, SRC_IP), (&net.dst, &dst_if, DST_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // The bandwidth cap: 40 Mbit/s from source to destination (stop-and-copy, which QEMU does
        // not rate-limit, then takes seconds for the 32 MiB the guest writes).
        let o = Command::new("tc")
            .args([
                "-n",
                &net.src,
                "qdisc",
                "add",
                "dev",
                &net.src_if,
                "root",
                "tbf",
                "rate",
                "40mbit",
                "burst",
                "256kb",
                "latency",
                "50ms",
            ])
            .output()
            .map_err(|e| format!("cannot run tc: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "tc tbf: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(net)
    }

    fn link(&self, up: bool) {
        ip(&[
            "-n",
            &self.src,
            "link",
            "set",
            &self.src_if,
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }

    /// Drop this share of the TCP packets entering and leaving the destination's namespace
    /// (nft `numgen random`: netem does not exist in these kernels); 0 removes the rule,
    /// after checking that it dropped packets.
    fn loss(&self, pct: u32) {
        let nft = |args: &str| {
            let o = Command::new("ip")
                .args(["netns", "exec", &self.dst, "nft"])
                .args(args.split(' '))
                .output()
                .expect("run nft (apt-get install nftables)");
            assert!(
                o.status.success(),
                "nft {args}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        if pct == 0 {
            let rules = nft("list table inet acloss");
            let dropped: u64 = rules
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| w[0] == "packets")
                .filter_map(|w| w[1].parse::<u64>().ok())
                .sum();
            eprintln!("packet loss: {dropped} TCP packets dropped\n{rules}");
            assert!(dropped > 0, "the loss rule dropped nothing:\n{rules}");
            nft("delete table inet acloss");
            self.segment(65536);
            return;
        }
        // Segments of one MTU on the wire, not 64 KiB super-packets: a drop is one packet's
        // worth, as on a real link.
        self.segment(1500);
        nft("add table inet acloss");
        for hook in ["input", "output"] {
            nft(&format!(
                "add chain inet acloss {hook} {{ type filter hook {hook} priority 0 ; policy accept ; }}"
            ));
            nft(&format!(
                "add rule inet acloss {hook} meta l4proto tcp numgen random mod 100 < {pct} counter drop"
            ));
        }
    }

    /// The largest segment the source's end hands down (GSO), both ends' of the veth.
    fn segment(&self, bytes: u32) {
        let size = bytes.to_string();
        ip(&[
            "-n",
            &self.src,
            "link",
            "set",
            &self.src_if,
            "gso_max_size",
            &size,
        ])
        .unwrap();
        let dst_if = self.src_if.replace("acvs", "acvd");
        ip(&[
            "-n",
            &self.dst,
            "link",
            "set",
            &dst_if,
            "gso_max_size",
            &size,
        ])
        .unwrap();
    }

    /// Processes left in either namespace.
    fn pids(&self) -> String {
        [&self.src, &self.dst]
            .iter()
            .map(|ns| {
                let o = Command::new("ip")
                    .args(["netns", "pids", ns])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&o.stdout).trim().to_string()
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        let _ = ip(&["netns", "del", &self.src]);
        let _ = ip(&["netns", "del", &self.dst]);
    }
}

/// What the relay does with the bytes.
const FORWARD: u8 = 0;
const DELAY: u8 = 1;
const STALL: u8 = 2;
const RESET: u8 = 3;
/// Forward the source's bytes; of the destination's, only its handshake reply.
const HOLD_BACK: u8 = 4;

/// A TCP relay listening on 127.0.0.1 inside the source's namespace, forwarding to the
/// destination across the veth, with one fault mode for all its connections.
struct Relay {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    /// Bytes the destination sent back on the current connection (forwarded or not).
    back: Arc<AtomicU64>,
}

fn enter_netns(name: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: setns only changes this thread's network namespace; the descriptor is open.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the size passed.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Copy `from` to `to` as `mode` says, until either side ends or the mode is RESET. `back`:
/// this is the destination's direction; count its bytes there.
fn pump(mut from: TcpStream, mut to: TcpStream, mode: Arc<AtomicU8>, back: Option<Arc<AtomicU64>>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match mode.load(Ordering::SeqCst) {
            RESET => {
                set_linger_zero(&from);
                set_linger_zero(&to);
                return;
            }
            STALL => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            _ => {}
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Both);
                return;
            }
        };
        if let Some(back) = &back {
            let before = back.fetch_add(n as u64, Ordering::SeqCst);
            if mode.load(Ordering::SeqCst) == HOLD_BACK {
                // Only what is left of the handshake reply goes through.
                let pass = REPLY_BYTES.saturating_sub(before).min(n as u64) as usize;
                if pass > 0 && to.write_all(&buf[..pass]).is_err() {
                    return;
                }
                continue;
            }
        }
        if mode.load(Ordering::SeqCst) == DELAY {
            // ~5 ms per 64 KiB: a slow, jittery path (at most ~13 MB/s).
            std::thread::sleep(Duration::from_millis(2 + (n as u64 % 7)));
        }
        if to.write_all(&buf[..n]).is_err() {
            let _ = from.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

impl Relay {
    fn start(netns: &str) -> Relay {
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let back = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let (m, b, ns) = (mode.clone(), back.clone(), netns.to_string());
        std::thread::spawn(move || {
            enter_netns(&ns).unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            for s in listener.incoming() {
                let Ok(client) = s else { return };
                let dst: SocketAddr = format!("{DST_IP}:{DST_PORT}").parse().unwrap();
                let Ok(server) = TcpStream::connect_timeout(&dst, Duration::from_secs(5)) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (m1, m2) = (m.clone(), m.clone());
                b.store(0, Ordering::SeqCst);
                let b2 = b.clone();
                std::thread::spawn(move || pump(client, server, m1, None));
                std::thread::spawn(move || pump(s2, c2, m2, Some(b2)));
            }
        });
        Relay {
            addr: rx.recv().unwrap(),
            mode,
            back,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

fn autoconv_in(ns: &str, args: &[&str], cwd: &Path) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_autoconv")])
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start autoconv")
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill with a child's pid (`ip netns exec` execs autoconv in place).
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// Wait for `child` at most `limit`; kill it past that (and say so).
fn wait(child: Child, limit: Duration) -> (Output, Duration, bool) {
    let t0 = Instant::now();
    let mut child = child;
    let mut killed = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), t0.elapsed(), killed)
}

/// When a row's fault is injected.
#[derive(Clone, Copy)]
enum Trigger {
    /// This many seconds after the source starts (its 2 s warm-up included).
    After(f64),
    /// Once the destination has answered COMPLETE (READY, held in the relay): the source is
    /// waiting for its verdict.
    Verdict,
}

/// How the source is run.
#[derive(Clone, Copy, PartialEq)]
enum Guest {
    /// A guest writing 1 MiB over and over at max-bandwidth=0: it completes.
    Completes,
    /// A guest writing 32 MiB over and over at 12 MiB/s: the first pass is still going.
    Precopy,
    /// The same with downtime-limit=60000: it switches over after 100 ms, and the rest of
    /// the first pass goes in stop-and-copy.
    StopAndCopy,
}

/// One row of the matrix.
struct Fault {
    name: &'static str,
    guest: Guest,
    /// Through the relay in this mode from the start (else straight across the veth).
    relay: Option<u8>,
    at: Trigger,
    inject: fn(&Relay, &Net, &Child, &Child),
    /// After the source ended: undo (resume, link up, let the relay's connections go).
    undo: fn(&Relay, &Net, &Child),
    /// Source: exit code and status in summary.json (None: the source is killed).
    source_end: Option<(i32, &'static str)>,
    /// The source process ends at most this long after the injection (s).
    source_within_s: f64,
    /// The destination resumes the guest (only when the migration completed).
    resumed: bool,
    /// How long the destination may take to end after the source did (s).
    destination_within_s: f64,
    /// Its error line contains this.
    destination_says: &'static str,
}

fn nothing(_: &Relay, _: &Net, _: &Child) {}

fn release_relay(r: &Relay, _: &Net, _: &Child) {
    r.set(RESET);
}

const FAST: f64 = 5.0;
/// Packets dropped each way in the packet-loss row (%).
const LOSS_PCT: u32 = 10;
/// Time a source given up at its stall bound may take, after the fault: the bound counts
/// from the last byte that moved, and the socket buffers on the way (the source's, the
/// relay's, the destination's: a few MiB) still take bytes for seconds at 12 MiB/s.
const STALLED_S: f64 = STALL_S as f64 + 12.0;
/// Time a destination left without its source (link down) may take to give up.
const ORPHAN_S: f64 = DST_STALL_S as f64 + 5.0;

fn rows() -> Vec<Fault> {
    let sigint = |_: &Relay, _: &Net, src: &Child, _: &Child| signal(src, libc::SIGINT);
    vec![
        Fault {
            name: "link delay and jitter (relay, 2-8 ms per 64 KiB; a guest writing 1 MiB)",
            guest: Guest::Completes,
            relay: Some(FORWARD),
            at: Trigger::After(0.0),
            inject: |r, _, _, _| r.set(DELAY),
            undo: nothing,
            source_end: Some((0, "completed")),
            source_within_s: 60.0,
            resumed: true,
            destination_within_s: 10.0,
            destination_says: "",
        },
        Fault {
            name: "packet loss, 10% each way (nft numgen; a guest writing 1 MiB)",
            guest: Guest::Completes,
            relay: None,
            at: Trigger::After(0.0),
            inject: |_, n, _, _| n.loss(LOSS_PCT),
            undo: |_, n, _| n.loss(0),
            source_end: Some((0, "completed")),
            source_within_s: 60.0,
            resumed: true,
            destination_within_s: 10.0,
            destination_says: "",
        },
        Fault {
            name: "link stall in precopy (relay stops forwarding)",
            guest: Guest::Precopy,
            relay: Some(FORWARD),
            at: Trigger::After(4.0),
            inject: |r, _, _, _| r.set(STALL),
            undo: release_relay,
            source_end: Some((1, "cancelled")),
            source_within_s: STALLED_S,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "",
        },
        Fault {
            name: "connection reset in precopy (relay, RST both ways)",
            guest: Guest::Precopy,
            relay: Some(FORWARD),
            at: Trigger::After(4.0),
            inject: |r, _, _, _| r.set(RESET),
            undo: nothing,
            source_end: Some((1, "failed")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "",
        },
        Fault {
            name: "link down in precopy (ip link set down)",
            guest: Guest::Precopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: |_, n, _, _| n.link(false),
            undo: |_, n, _| n.link(true),
            source_end: Some((1, "cancelled")),
            source_within_s: STALLED_S,
            resumed: false,
            destination_within_s: ORPHAN_S,
            destination_says: "",
        },
        Fault {
            name: "link down in stop-and-copy",
            guest: Guest::StopAndCopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: |_, n, _, _| n.link(false),
            undo: |_, n, _| n.link(true),
            source_end: Some((1, "cancelled")),
            source_within_s: STALLED_S,
            resumed: false,
            destination_within_s: ORPHAN_S,
            destination_says: "",
        },
        Fault {
            name: "destination SIGSTOP in precopy",
            guest: Guest::Precopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: |_, _, _, dst| signal(dst, libc::SIGSTOP),
            undo: |_, _, dst| signal(dst, libc::SIGCONT),
            source_end: Some((1, "cancelled")),
            source_within_s: STALLED_S,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "",
        },
        Fault {
            name: "destination SIGKILL in precopy",
            guest: Guest::Precopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: |_, _, _, dst| signal(dst, libc::SIGKILL),
            undo: nothing,
            source_end: Some((1, "failed")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: 1.0,
            destination_says: "",
        },
        Fault {
            name: "destination SIGKILL in stop-and-copy",
            guest: Guest::StopAndCopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: |_, _, _, dst| signal(dst, libc::SIGKILL),
            undo: nothing,
            source_end: Some((1, "failed")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: 1.0,
            destination_says: "",
        },
        Fault {
            name: "verdict held in verification (relay holds READY: a destination stalled there)",
            guest: Guest::Completes,
            relay: Some(HOLD_BACK),
            at: Trigger::Verdict,
            inject: |_, _, _, _| {},
            undo: nothing,
            source_end: Some((1, "cancelled")),
            source_within_s: STALLED_S,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "did not commit",
        },
        Fault {
            name: "destination Ctrl-C in precopy",
            guest: Guest::Precopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: |_, _, _, dst| signal(dst, libc::SIGINT),
            undo: nothing,
            source_end: Some((1, "failed")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "cancelled on this destination (Ctrl-C) while receiving",
        },
        Fault {
            name: "destination Ctrl-C in stop-and-copy",
            guest: Guest::StopAndCopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: |_, _, _, dst| signal(dst, libc::SIGINT),
            undo: nothing,
            source_end: Some((1, "failed")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "cancelled on this destination (Ctrl-C) while receiving",
        },
        Fault {
            name: "destination Ctrl-C waiting for COMMIT (relay holds its READY)",
            guest: Guest::Completes,
            relay: Some(HOLD_BACK),
            at: Trigger::Verdict,
            inject: |_, _, _, dst| signal(dst, libc::SIGINT),
            undo: nothing,
            source_end: Some((1, "failed")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: FAST,
            destination_says:
                "cancelled on this destination (Ctrl-C) while waiting for the source's COMMIT",
        },
        Fault {
            name: "source SIGKILL in precopy",
            guest: Guest::Precopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: |_, _, src, _| signal(src, libc::SIGKILL),
            undo: nothing,
            source_end: None,
            source_within_s: 1.0,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "",
        },
        Fault {
            name: "source Ctrl-C in setup (in the warm-up, before migrate)",
            guest: Guest::Precopy,
            relay: None,
            at: Trigger::After(1.2),
            inject: sigint,
            undo: nothing,
            source_end: Some((1, "cancelled")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "",
        },
        Fault {
            name: "source Ctrl-C in precopy",
            guest: Guest::Precopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: sigint,
            undo: nothing,
            source_end: Some((1, "cancelled")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "the source aborted the migration",
        },
        Fault {
            name: "source Ctrl-C in stop-and-copy",
            guest: Guest::StopAndCopy,
            relay: None,
            at: Trigger::After(4.0),
            inject: sigint,
            undo: nothing,
            source_end: Some((1, "cancelled")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "the source aborted the migration",
        },
        Fault {
            name: "source Ctrl-C in verification (waiting for the verdict)",
            guest: Guest::Completes,
            relay: Some(HOLD_BACK),
            at: Trigger::Verdict,
            inject: sigint,
            undo: nothing,
            source_end: Some((1, "cancelled")),
            source_within_s: FAST,
            resumed: false,
            destination_within_s: FAST,
            destination_says: "the source aborted the migration",
        },
    ]
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_row(net: &Net, relay: &Relay, dir: &Path, f: &Fault) -> String {
    relay.set(f.relay.unwrap_or(FORWARD));
    // The last row's connection counted too; this row's starts from nothing.
    relay.back.store(0, Ordering::SeqCst);
    let dst_out = dir.join("dst");
    let src_out = dir.join("src");
    let listen = format!("tcp:{DST_IP}:{DST_PORT}");
    let dst_stall = format!("{DST_STALL_S}s");
    let dst = autoconv_in(
        &net.dst,
        &[
            "incoming",
            &listen,
            "--out",
            dst_out.to_str().unwrap(),
            "--run-for",
            "1s",
            "--stall-timeout",
            &dst_stall,
        ],
        dir,
    );
    // The destination listens once it printed so; give it a moment.
    std::thread::sleep(Duration::from_millis(700));
    let target = if f.relay.is_some() {
        format!("tcp:{}", relay.addr)
    } else {
        listen.clone()
    };
    let stall = format!("{STALL_S}s");
    let image = dir.join(if f.guest == Guest::Completes {
        "small.img"
    } else {
        "g.img"
    });
    let mut args = vec![
        "run",
        "--kvm",
        image.to_str().unwrap(),
        "--mem",
        "64MiB",
        "--migrate",
        &target,
        "--stall-timeout",
        &stall,
        "--warmup",
        "2s",
        "--after",
        "500ms",
        "--out",
        src_out.to_str().unwrap(),
        "--set",
    ];
    args.push(match f.guest {
        Guest::Completes => "max-bandwidth=0",
        // Slow enough that the first pass (64 MiB) is still going at the fault.
        Guest::Precopy | Guest::StopAndCopy => "max-bandwidth=12MiB/s",
    });
    if f.guest == Guest::StopAndCopy {
        args.extend(["--set", "downtime-limit=60000"]);
    }
    let src = autoconv_in(&net.src, &args, dir);
    match f.at {
        Trigger::After(s) => std::thread::sleep(Duration::from_secs_f64(s)),
        Trigger::Verdict => wait_for(f.name, || relay.back.load(Ordering::SeqCst) > REPLY_BYTES),
    }
    let injected = Instant::now();
    (f.inject)(relay, net, &src, &dst);
    let (src_o, _, src_killed) = wait(src, Duration::from_secs(90));
    let src_ended = injected.elapsed();
    (f.undo)(relay, net, &dst);
    let (dst_o, dst_took, dst_killed) = wait(dst, Duration::from_secs(60));
    let both = format!("source {}\ndestination {}", text(&src_o), text(&dst_o));
    assert!(!src_killed, "{}: the source did not end\n{both}", f.name);
    assert!(
        src_ended.as_secs_f64() <= f.source_within_s,
        "{}: the source ended {src_ended:?} after the fault (bound {} s)\n{both}",
        f.name,
        f.source_within_s
    );
    let stdout = String::from_utf8_lossy(&src_o.stdout);
    let stderr = String::from_utf8_lossy(&src_o.stderr);
    assert!(!stderr.contains("panicked"), "{}: {both}", f.name);

    // The source: its exit code, its status, one reason line, its guest running after.
    let (source_cell, reason) = match f.source_end {
        None => {
            assert_eq!(
                src_o.status.signal(),
                Some(libc::SIGKILL),
                "{}: {both}",
                f.name
            );
            ("killed (its guest with it)".to_string(), String::new())
        }
        Some((exit, status)) => {
            assert_eq!(src_o.status.code(), Some(exit), "{}: {both}", f.name);
            let summary: serde_json::Value =
                serde_json::from_slice(&std::fs::read(src_out.join("summary.json")).unwrap())
                    .unwrap();
            let got = summary["status"].as_str().unwrap_or_default().to_string();
            assert_eq!(got, status, "{}: {summary}\n{both}", f.name);
            let reasons: Vec<&str> = stdout
                .lines()
                .filter(|l| l.starts_with("reason: "))
                .collect();
            let guest = if exit == 0 {
                assert!(reasons.is_empty(), "{}: {both}", f.name);
                assert!(stdout.contains("memory verified"), "{}: {both}", f.name);
                "handed over"
            } else {
                assert_eq!(reasons.len(), 1, "{}: {both}", f.name);
                let line = stdout
                    .lines()
                    .find(|l| {
                        l.starts_with("source guest after the migration ended: still running")
                    })
                    .unwrap_or_else(|| panic!("{}: source guest not running\n{both}", f.name));
                let rate: f64 = line
                    .split(", ")
                    .nth(1)
                    .and_then(|w| w.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0.0);
                assert!(
                    line.ends_with("throttle 0%") && rate > 0.0,
                    "{}: the source guest is not running on unthrottled: {line}\n{both}",
                    f.name
                );
                "guest runs on"
            };
            (
                format!(
                    "{status} (exit {exit}) {src_ended_s:.1} s after the fault; {guest}",
                    src_ended_s = src_ended.as_secs_f64()
                ),
                reasons
                    .first()
                    .map_or("", |r| r.trim_start_matches("reason: "))
                    .to_string(),
            )
        }
    };

    // The destination: resumed only what it verified and was told to run, and ended.
    let dst_stdout = String::from_utf8_lossy(&dst_o.stdout);
    let dst_err = String::from_utf8_lossy(&dst_o.stderr);
    let resumed = dst_stdout.contains("memory verified") && dst_stdout.contains("guest resumed");
    assert_eq!(resumed, f.resumed, "{}: {both}", f.name);
    let killed = dst_o.status.signal() == Some(libc::SIGKILL);
    let dst_cell = if killed {
        "killed".to_string()
    } else {
        assert!(
            !dst_killed,
            "{}: the destination did not end\n{both}",
            f.name
        );
        assert!(
            dst_took.as_secs_f64() <= f.destination_within_s,
            "{}: the destination took {dst_took:?} after the source\n{both}",
            f.name
        );
        assert_eq!(
            dst_o.status.code(),
            Some(if f.resumed { 0 } else { 1 }),
            "{}: {both}",
            f.name
        );
        assert!(!dst_err.contains("panicked"), "{}: {both}", f.name);
        if f.resumed {
            "exit 0, verified, resumed".to_string()
        } else {
            let lines: Vec<&str> = dst_err
                .lines()
                .filter(|l| l.starts_with("autoconv: incoming migration failed: "))
                .collect();
            assert_eq!(lines.len(), 1, "{}: {both}", f.name);
            assert!(lines[0].contains(f.destination_says), "{}: {both}", f.name);
            format!(
                "exit 1, not resumed: {}",
                lines[0].trim_start_matches("autoconv: incoming migration failed: ")
            )
        }
    };

    // Nothing left: no process in either namespace, no file but the two outputs.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(net.pids(), "", "{}: processes left behind", f.name);
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["g.img", "small.img", "src", "dst"].contains(&n.as_str()))
        .collect();
    left.sort();
    assert!(left.is_empty(), "{}: files left behind: {left:?}", f.name);
    let _ = std::fs::remove_dir_all(&src_out);
    let _ = std::fs::remove_dir_all(&dst_out);
    let cut = |t: &str| t.chars().take(150).collect::<String>();
    format!(
        "| {} | {} | {} | {} |",
        f.name,
        source_cell,
        cut(&dst_cell),
        cut(&reason)
    )
}

/// Poll `ready` until it holds (60 s at most).
fn wait_for(row: &str, ready: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !ready() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{row}: the point of injection never came"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn every_fault_ends_the_migration_cleanly_in_bounded_time() {
    let test = "every_fault_ends_the_migration_cleanly_in_bounded_time";
    if !common::require::require_root(test) || !common::require::require_kvm(test) {
        return;
    }
    let net = match Net::create() {
        Ok(n) => n,
        Err(why) => {
            common::require::decide(
                test,
                Some(format!("cannot build two network namespaces: {why}")),
                common::require::required(),
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    // A guest writing 32 MiB over and over (it cannot converge at 12 MiB/s: the faults hit a
    // migration in full flow) and, for the rows that reach completion, one writing 1 MiB.
    for (name, wss_bytes) in [("g.img", 32 << 20), ("small.img", 1 << 20)] {
        let spec = autoconv::guest_image::GuestSpec {
            pattern: autoconv::guest_image::Pattern::Sequential,
            wss_bytes,
            ..Default::default()
        };
        std::fs::write(
            dir.path().join(name),
            autoconv::guest_image::build_image(&spec).unwrap(),
        )
        .unwrap();
    }
    let relay = Relay::start(&net.src);
    let mut table = vec![
        "| fault | source | destination | source's reason |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    let only = std::env::var("AUTOCONV_FAULTS_ONLY").unwrap_or_default();
    for f in rows().iter().filter(|f| f.name.contains(only.as_str())) {
        table.push(run_row(&net, &relay, dir.path(), f));
        eprintln!("{}", table.last().unwrap());
    }
    println!("{}", table.join("\n"));
}
