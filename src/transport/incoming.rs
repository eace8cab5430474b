//! The destination: accept migrations, check every frame, load memory and state, verify
//! memory against the source's session-keyed digests, and resume the guest.
//!
//! Every page arrives with the digest the source took as it sent it; the destination digests
//! what it received as it goes (in parallel with the source, which is digesting the next
//! pages) and keeps, per page, whether its last copy matched. At COMPLETE only that record
//! is checked, so the guest resumes without re-reading memory; a full re-read on both sides
//! happens only when the source asks for it (`--verify full`).
//!
//! Nothing a peer does before it is admitted can end or block the destination: each
//! connection's handshake (TLS, then the Hello) runs on its own thread under one overall
//! deadline, a peer that fails it is reported and forgotten, and guest memory is allocated
//! only for a peer that passed it, within `--max-mem`.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::conn::{Conn, Socket};
use super::protocol::{
    Command, DestinationFailure, Header, Hello, Reply, COMPLETE_DIGEST, DIGEST_BYTES, HEADER_BYTES,
    HELLO_BYTES, MAX_MESSAGE_BYTES, MAX_RUN_PAGES, PAGE_BYTES,
};
use super::verify::VerifyMode;
use super::{read_full, TransportError};
use crate::kvm::memory::{keyed_page_digest, GuestRam};
use crate::kvm::{DirtyLogMode, Machine, MachineConfig, MachineState};
use crate::migration::CancelToken;

/// Default of [`DestinationConfig::stall_timeout`].
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// What passing [`DestinationConfig::deadline`] means.
const DEADLINE_WHAT: &str = "the destination's deadline for one migration passed (--deadline)";
/// Default overall deadline of one peer's handshake (TLS and Hello), however it trickles.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further peers are closed at once until one ends.
pub const MAX_PENDING_HANDSHAKES: usize = 16;
/// Most vCPUs a source may ask for.
pub const MAX_VCPUS: u32 = 256;

/// How the destination admits sources.
#[derive(Clone, Debug)]
pub struct DestinationConfig {
    /// Dirty logging of the destination's VM (it is not migrated on, but the VM is built alike).
    pub dirty_log: DirtyLogMode,
    /// TLS with client authentication; None: in the clear.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most guest memory a source may ask for (None: 90% of the host's available memory,
    /// which applies in any case).
    pub max_mem_bytes: Option<u64>,
    /// Overall deadline of a handshake.
    pub handshake_timeout: Duration,
    /// After the handshake: longest the source may go without moving a byte (mid-stream, or
    /// before its COMMIT), and longest a write to it may block.
    pub stall_timeout: Duration,
    /// Longest one admitted migration may take, from its handshake to the guest running
    /// (None: no bound, as QEMU's destination has none).
    pub deadline: Option<Duration>,
    /// [`serve`] goes on listening after an admitted migration fails. Off by default, as
    /// QEMU's `-incoming` destination exits when loading a migration fails; peers refused in
    /// the handshake never end it either way.
    pub keep_listening: bool,
}

impl DestinationConfig {
    /// In the clear, default limits.
    pub fn plain(dirty_log: DirtyLogMode) -> DestinationConfig {
        DestinationConfig {
            dirty_log,
            tls: None,
            max_mem_bytes: None,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            stall_timeout: STALL_TIMEOUT,
            deadline: None,
            keep_listening: false,
        }
    }
}

/// A migration that did not end with its guest running here: why, and the stream's figures
/// as far as it went (None when no source got past the handshake).
#[derive(Debug)]
pub struct IncomingFailed {
    /// Why.
    pub error: TransportError,
    /// What was received, verified and waited for until then (boxed: errors stay small).
    pub stats: Option<Box<IncomingStats>>,
}

impl From<TransportError> for IncomingFailed {
    fn from(error: TransportError) -> Self {
        IncomingFailed { error, stats: None }
    }
}

/// What the destination received.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IncomingStats {
    /// Page frames with data received (pages).
    pub normal_pages: u64,
    /// Zero pages received.
    pub zero_pages: u64,
    /// END_OF_ITER markers.
    pub iterations: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Pages compared at verification.
    pub verified_pages: u64,
    /// How the source asked for memory to be verified.
    pub verify: VerifyMode,
    /// Time spent digesting pages as they arrived, over the whole stream (ms).
    pub received_digest_ms: f64,
    /// Time from COMPLETE to the verdict on memory: checking the per-page record, and under
    /// `--verify full` digesting all of memory and comparing (ms).
    pub verify_ms: f64,
    /// Time to restore vCPU/VM state and start the vCPUs (ms).
    pub resume_ms: f64,
    /// From READY to the source's COMMIT (ms).
    pub commit_wait_ms: f64,
    /// The stream came inside TLS from an authenticated source.
    pub tls: bool,
}

/// A guest received and resumed.
pub struct Incoming {
    /// The running guest.
    pub machine: Machine,
    /// The workload's counters as loaded, just before the vCPUs started (they must equal the
    /// source's final values).
    pub counters_at_resume: Vec<crate::kvm::VcpuCounters>,
    /// Transfer figures.
    pub stats: IncomingStats,
}

/// A peer that passed the handshake: authenticated (under TLS) and asking for a VM this
/// destination will build.
pub struct Admitted {
    conn: Conn,
    hello: Hello,
    peer: SocketAddr,
    /// When its connection was accepted ([`DestinationConfig::deadline`] counts from here).
    accepted_at: Instant,
}

/// Wait for one connection (checking `cancel` every 100 ms), then receive one migration on
/// it, in the clear. One attempt: whatever that peer does decides the result.
pub fn accept_one(
    listener: &TcpListener,
    cancel: &CancelToken,
    dirty_log: DirtyLogMode,
) -> Result<Incoming, TransportError> {
    accept_one_with(listener, cancel, &DestinationConfig::plain(dirty_log))
}

/// [`accept_one`] with a configuration (TLS, limits). `cancel` also ends the admitted
/// migration, at any point until the guest starts here, as in [`serve_with_stats`]
/// ([`TransportError::CancelledHere`]; the source keeps its guest).
pub fn accept_one_with(
    listener: &TcpListener,
    cancel: &CancelToken,
    config: &DestinationConfig,
) -> Result<Incoming, TransportError> {
    listener
        .set_nonblocking(true)
        .map_err(|source| TransportError::Io {
            during: "listening",
            source,
        })?;
    let (tcp, peer) = loop {
        if cancel.is_cancelled() {
            return Err(TransportError::Cancelled);
        }
        match listener.accept() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                cancel.wait_timeout(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(TransportError::Io {
                    during: "accepting the source's connection",
                    source,
                })
            }
        }
    };
    let mut admitted = handshake(tcp, peer, config)?;
    if cancel.is_cancelled() {
        let e = TransportError::CancelledHere {
            during: "admitting the source",
        };
        return Err(refuse(&mut admitted.conn, e));
    }
    // The one receive path, watching `cancel` as `serve_with_stats` does.
    receive(admitted, config, Some(cancel)).map_err(|f| f.error)
}

/// [`serve_with_stats`] without the figures of a failed migration.
pub fn serve(
    listener: &TcpListener,
    cancel: &CancelToken,
    config: &DestinationConfig,
    report: &mut dyn FnMut(&str),
) -> Result<Incoming, TransportError> {
    serve_with_stats(listener, cancel, config, report).map_err(|f| f.error)
}

/// Accept sources until one migrates: each connection is handshaken on its own thread, so a
/// silent, slow, unauthenticated or malformed peer neither ends nor blocks the destination;
/// each such failure is passed to `report` (one line) and the destination goes on listening.
/// Ends with the first guest resumed, the first admitted migration that fails (as QEMU's
/// destination does; with `keep_listening` that is reported too and it goes on), or
/// [`TransportError::Cancelled`].
///
/// `cancel` (Ctrl-C) also ends an admitted migration, at any point until the guest starts
/// here: the destination drops it ([`TransportError::CancelledHere`]) and the source, whose
/// connection breaks or whose COMMIT is refused, takes its guest back.
pub fn serve_with_stats(
    listener: &TcpListener,
    cancel: &CancelToken,
    config: &DestinationConfig,
    report: &mut dyn FnMut(&str),
) -> Result<Incoming, IncomingFailed> {
    listener
        .set_nonblocking(true)
        .map_err(|source| TransportError::Io {
            during: "listening",
            source,
        })?;
    let (tx, rx) = mpsc::channel::<Result<Admitted, (SocketAddr, TransportError)>>();
    let pending = Arc::new(AtomicUsize::new(0));
    loop {
        if cancel.is_cancelled() {
            return Err(TransportError::Cancelled.into());
        }
        let mut idle = true;
        match listener.accept() {
            Ok((tcp, peer)) => {
                idle = false;
                if pending.load(Ordering::SeqCst) >= MAX_PENDING_HANDSHAKES {
                    report(&format!(
                        "refused {peer}: {MAX_PENDING_HANDSHAKES} handshakes already in progress"
                    ));
                } else {
                    pending.fetch_add(1, Ordering::SeqCst);
                    let (tx, count, config) = (tx.clone(), pending.clone(), config.clone());
                    let spawned =
                        std::thread::Builder::new()
                            .name("handshake".into())
                            .spawn(move || {
                                let r = handshake(tcp, peer, &config).map_err(|e| (peer, e));
                                count.fetch_sub(1, Ordering::SeqCst);
                                let _ = tx.send(r);
                            });
                    if spawned.is_err() {
                        pending.fetch_sub(1, Ordering::SeqCst);
                        report(&format!("refused {peer}: cannot start a thread for it"));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => report(&format!("accept failed: {e}")),
        }
        while let Ok(r) = rx.try_recv() {
            idle = false;
            match r {
                Err((peer, e)) => report(&format!(
                    "refused {peer}: {}",
                    crate::migration::error_chain(&e)
                )),
                Ok(admitted) => {
                    let peer = admitted.peer;
                    match receive(admitted, config, Some(cancel)) {
                        Ok(incoming) => return Ok(incoming),
                        Err(f) if !config.keep_listening || cancel.is_cancelled() => return Err(f),
                        Err(f) => report(&format!(
                            "migration from {peer} failed: {}",
                            crate::migration::error_chain(&f.error)
                        )),
                    }
                }
            }
        }
        if idle {
            cancel.wait_timeout(Duration::from_millis(20));
        }
    }
}

/// MemAvailable from /proc/meminfo.
fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn refuse(conn: &mut Conn, e: TransportError) -> TransportError {
    let r = Reply {
        status: 1,
        nonce: [0; super::protocol::NONCE_BYTES],
        message: e.to_string(),
    };
    let _ = conn.write_all_slices(&[&r.encode()]);
    e
}

/// Check a Hello against what this destination accepts (before any memory is allocated).
pub fn check_hello(hello: &Hello, max_mem_bytes: Option<u64>) -> Result<(), TransportError> {
    if hello.vcpus == 0 || hello.vcpus > MAX_VCPUS {
        return Err(TransportError::BadHandshake(format!(
            "{} vCPUs (1..={MAX_VCPUS} accepted)",
            hello.vcpus
        )));
    }
    if let Some(max) = max_mem_bytes {
        if hello.ram_bytes > max {
            return Err(TransportError::BadHandshake(format!(
                "the source's guest has {} bytes of memory; this destination accepts at most {max} (--max-mem)",
                hello.ram_bytes
            )));
        }
    }
    // Refuse memory this host cannot back before mapping (and populating) it.
    if let Some(avail) = available_memory_bytes() {
        if hello.ram_bytes > avail / 10 * 9 {
            return Err(TransportError::BadHandshake(format!(
                "the source's guest has {} bytes of memory; this host has {avail} available",
                hello.ram_bytes
            )));
        }
    }
    Ok(())
}

/// One peer's handshake, all under `config.handshake_timeout`: TLS (the peer must present a
/// certificate the CA signed), then its Hello, checked.
pub fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    config: &DestinationConfig,
) -> Result<Admitted, TransportError> {
    let accepted_at = Instant::now();
    let deadline = accepted_at + config.handshake_timeout;
    let io = |during| move |source| TransportError::Io { during, source };
    let _ = tcp.set_nodelay(true);
    let mut conn = match &config.tls {
        Some(tls) => super::tls::accept(tls.clone(), tcp, deadline)?,
        None => {
            Conn::Plain(Socket::new(tcp, Some(deadline)).map_err(io("configuring the socket"))?)
        }
    };
    let mut hello = [0u8; HELLO_BYTES];
    read_full(&mut conn, &mut hello, "source", "reading the handshake").map_err(|e| match e {
        TransportError::Closed { .. } => TransportError::BadHandshake(
            "the peer closed the connection before its handshake was complete".into(),
        ),
        e => e,
    })?;
    let hello = match Hello::decode(&hello) {
        Ok(h) => h,
        Err(e) => return Err(refuse(&mut conn, e)),
    };
    if let Err(e) = check_hello(&hello, config.max_mem_bytes) {
        return Err(refuse(&mut conn, e));
    }
    Ok(Admitted {
        conn,
        hello,
        peer,
        accepted_at,
    })
}

/// Build the VM an admitted source asked for, accept, and receive its migration.
pub fn receive_admitted(
    admitted: Admitted,
    config: &DestinationConfig,
) -> Result<Incoming, TransportError> {
    receive(admitted, config, None).map_err(|f| f.error)
}

/// [`receive_admitted`], given up when `cancel` is cancelled before the guest starts.
fn receive(
    admitted: Admitted,
    config: &DestinationConfig,
    cancel: Option<&CancelToken>,
) -> Result<Incoming, IncomingFailed> {
    let Admitted {
        mut conn,
        hello,
        accepted_at,
        ..
    } = admitted;
    let io = |during| move |source| TransportError::Io { during, source };
    let machine = Machine::new(MachineConfig {
        mem_bytes: hello.ram_bytes,
        vcpus: hello.vcpus,
        dirty_log: config.dirty_log,
    });
    let mut machine = match machine {
        Ok(m) => m,
        Err(e) => {
            let why = crate::migration::error_chain(&e);
            let _ = refuse(
                &mut conn,
                TransportError::Vm(format!("cannot create the VM: {why}")),
            );
            return Err(TransportError::Vm(why).into());
        }
    };
    // Fault the memory in before accepting, so receiving pages is a plain copy.
    machine.ram().prefault();
    let nonce = super::verify::nonce()?;
    conn.socket_mut().watch_cancel(cancel.cloned());
    let key = super::verify::session_key(&hello.nonce, &nonce, conn.exported_secret());
    let accepted = Reply {
        status: 0,
        nonce,
        message: String::new(),
    };
    conn.socket_mut().hold_to(
        config.stall_timeout,
        config.deadline.and_then(|d| accepted_at.checked_add(d)),
        DEADLINE_WHAT,
    );
    conn.socket_mut().describe_stall(format!(
        "the source moved nothing for {} s (--stall-timeout)",
        config.stall_timeout.as_secs_f64()
    ));
    conn.write_all_slices(&[&accepted.encode()])
        .map_err(io("answering the handshake"))?;
    let mut stats = IncomingStats {
        tls: conn.is_tls(),
        ..IncomingStats::default()
    };
    let ram = machine.ram().clone();
    let mut reader = BufReader::with_capacity(256 << 10, conn);
    let mut vm = LoadAndStart {
        machine: &mut machine,
        counters_at_resume: Vec::new(),
        cancel,
    };
    if let Err(e) = receive_stream(&mut reader, &ram, key, &mut stats, &mut vm) {
        let error = match cancel {
            Some(c) if c.is_cancelled() => cancelled_here(e),
            _ => e,
        };
        return Err(IncomingFailed {
            error,
            stats: Some(Box::new(stats)),
        });
    }
    let counters_at_resume = vm.counters_at_resume;
    Ok(Incoming {
        machine,
        counters_at_resume,
        stats,
    })
}

/// A migration given up because this destination was cancelled, said as such (the error
/// the cancelled read or start left says only where it was).
fn cancelled_here(e: TransportError) -> TransportError {
    let during = match e {
        // What the source did or what memory showed stands, cancelled or not.
        TransportError::VerificationFailed { .. } | TransportError::SourceAborted(_) => return e,
        TransportError::Io { during, .. } => during,
        TransportError::NotCommitted(_) => "waiting for the source's COMMIT",
        TransportError::Vm(_) => "starting the guest on the source's COMMIT",
        _ => "receiving the migration",
    };
    TransportError::CancelledHere { during }
}

/// What the destination does with a guest whose memory verified: load its state at once,
/// start it only once the source has committed.
pub trait Resume {
    /// Restore the vCPU/VM state, vCPUs not started; how long it took, or why it failed.
    fn load(&mut self, state: MachineState) -> Result<Duration, String>;
    /// Start the vCPUs (after COMMIT); how long it took, or why it failed.
    fn start(&mut self) -> Result<Duration, String>;
}

struct LoadAndStart<'a> {
    machine: &'a mut Machine,
    counters_at_resume: Vec<crate::kvm::VcpuCounters>,
    /// Cancelled by the time COMMIT comes: the guest does not start (the source, told so,
    /// takes it back).
    cancel: Option<&'a CancelToken>,
}

impl Resume for LoadAndStart<'_> {
    fn load(&mut self, state: MachineState) -> Result<Duration, String> {
        let t0 = Instant::now();
        self.machine.restore_state(&state).map_err(|e| {
            format!(
                "cannot load the guest's state: {}",
                crate::migration::error_chain(&e)
            )
        })?;
        self.counters_at_resume = self.machine.counters();
        Ok(t0.elapsed())
    }

    fn start(&mut self) -> Result<Duration, String> {
        if self.cancel.is_some_and(|c| c.is_cancelled()) {
            return Err("cancelled on the destination (Ctrl-C) before the guest started".into());
        }
        let t0 = Instant::now();
        self.machine.start().map_err(|e| {
            format!(
                "cannot resume the guest: {}",
                crate::migration::error_chain(&e)
            )
        })?;
        Ok(t0.elapsed())
    }
}

/// What the destination knows of one page's last copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageRecord {
    /// Never received.
    Missing,
    /// Matched the digest the source sent with it (or a zero page, written here).
    AsSent,
    /// Did not match: a later copy must replace it.
    Differs,
}

/// The verdict to the source: RESULT_OK with `message`, or RESULT_FAILED with the failure's
/// code and figures.
fn answer(
    stream: &mut impl Write,
    verdict: Result<&str, (DestinationFailure, &str)>,
) -> Result<(), TransportError> {
    let b = match verdict {
        Ok(message) => {
            let mut end = message.len().min(MAX_MESSAGE_BYTES as usize);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            let msg = &message.as_bytes()[..end];
            let h = Header {
                command: Command::ResultOk,
                count: msg.len() as u32,
                arg: 0,
            };
            let mut b = h.encode().to_vec();
            b.extend_from_slice(msg);
            b
        }
        Err((failure, message)) => failure.encode(message),
    };
    stream
        .write_all(&b)
        .and_then(|()| stream.flush())
        .map_err(|source| TransportError::Io {
            during: "answering the source",
            source,
        })
}

/// READY: memory verified, state loaded, waiting for COMMIT.
fn ready(stream: &mut impl Write) -> Result<(), TransportError> {
    let h = Header {
        command: Command::Ready,
        count: 0,
        arg: 0,
    };
    stream
        .write_all(&h.encode())
        .and_then(|()| stream.flush())
        .map_err(|source| TransportError::Io {
            during: "answering the source",
            source,
        })
}

/// The stream after the handshake: frames into `ram`, then at COMPLETE the session-keyed
/// verification and, only if every page matches, `resume.load` with the device state, READY
/// to the source, and `resume.start` only on its COMMIT (see `protocol`). Each verdict goes
/// back to the source. Ok means the guest runs here.
pub fn receive_stream<S: Read + Write>(
    reader: &mut BufReader<S>,
    ram: &GuestRam,
    key: u32,
    stats: &mut IncomingStats,
    resume: &mut dyn Resume,
) -> Result<(), TransportError> {
    let ram_bytes = ram.bytes();
    let mut state: Option<MachineState> = None;
    // Per page: never received, last copy as the source sent it, or last copy differing.
    let mut record = vec![PageRecord::Missing; ram.pages() as usize];
    let mut claimed = vec![0u8; (u64::from(MAX_RUN_PAGES) * DIGEST_BYTES) as usize];
    // The stream digest: every header before COMPLETE and every device state (`protocol`).
    let mut stream = crc32fast::Hasher::new_with_initial(key);
    loop {
        let mut h = [0u8; HEADER_BYTES];
        read_full(reader, &mut h, "source", "receiving the migration stream")?;
        let header = Header::decode(&h, ram_bytes)?;
        if header.command != Command::Complete {
            stream.update(&h);
        }
        stats.bytes += HEADER_BYTES as u64 + header.payload_bytes();
        match header.command {
            Command::Pages => {
                let n = u64::from(header.count);
                let len = n * PAGE_BYTES;
                // SAFETY: the destination's vCPUs have not started (they start only after
                // COMPLETE), nothing else touches guest memory, and decode() checked that the
                // range lies inside it.
                let dst = unsafe { ram.slice_mut(header.arg, len) }
                    .ok_or_else(|| TransportError::BadFrame("page range outside memory".into()))?;
                read_full(reader, dst, "source", "receiving pages")?;
                let claimed = &mut claimed[..(n * DIGEST_BYTES) as usize];
                read_full(reader, claimed, "source", "receiving page digests")?;
                let t0 = Instant::now();
                let first = header.arg / PAGE_BYTES;
                for (i, (page, d)) in dst
                    .chunks_exact(PAGE_BYTES as usize)
                    .zip(claimed.chunks_exact(DIGEST_BYTES as usize))
                    .enumerate()
                {
                    let gfn = first + i as u64;
                    let theirs = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                    record[gfn as usize] = if keyed_page_digest(key, gfn, page) == theirs {
                        PageRecord::AsSent
                    } else {
                        PageRecord::Differs
                    };
                }
                stats.received_digest_ms += t0.elapsed().as_secs_f64() * 1e3;
                stats.normal_pages += n;
            }
            Command::ZeroPages => {
                let len = u64::from(header.count) * PAGE_BYTES;
                // SAFETY: as above.
                let dst = unsafe { ram.slice_mut(header.arg, len) }
                    .ok_or_else(|| TransportError::BadFrame("page range outside memory".into()))?;
                dst.fill(0);
                let first = (header.arg / PAGE_BYTES) as usize;
                record[first..first + header.count as usize].fill(PageRecord::AsSent);
                stats.zero_pages += u64::from(header.count);
            }
            Command::EndOfIteration => stats.iterations += 1,
            Command::DeviceState => {
                let mut buf = vec![0u8; header.payload_bytes() as usize];
                read_full(reader, &mut buf, "source", "receiving the device state")?;
                stream.update(&buf);
                let parsed: MachineState = serde_json::from_slice(&buf).map_err(|e| {
                    TransportError::BadFrame(format!("device state is not valid: {e}"))
                })?;
                state = Some(parsed);
            }
            Command::Complete => {
                let mut buf = vec![0u8; header.payload_bytes() as usize];
                read_full(reader, &mut buf, "source", "receiving the page digests")?;
                let writer = reader.get_mut();
                let Some(state) = state.take() else {
                    let e = TransportError::BadFrame("COMPLETE before the device state".into());
                    let _ = answer(writer, Err((DestinationFailure::BadStream, &e.to_string())));
                    return Err(e);
                };
                let t0 = Instant::now();
                let pages = ram.pages();
                // A page never received, or whose last copy is not what the source sent.
                let mut bad: Vec<bool> = record.iter().map(|r| *r != PageRecord::AsSent).collect();
                stats.verify = if header.arg == COMPLETE_DIGEST {
                    let theirs = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    if stream.clone().finalize() != theirs {
                        // Not this session's stream (a replay, or frames changed on the way):
                        // nothing in it can be trusted.
                        bad.fill(true);
                    }
                    VerifyMode::Digest
                } else {
                    // The source re-read its whole memory, stopped: compare ours with it.
                    let mut mine = vec![0u32; pages as usize];
                    ram.keyed_page_digests(key, &mut mine, 2);
                    for ((b, d), chunk) in bad.iter_mut().zip(&mine).zip(buf.chunks_exact(4)) {
                        let theirs = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                        *b |= *d != theirs;
                    }
                    VerifyMode::Full
                };
                let mismatched = bad.iter().filter(|b| **b).count() as u64;
                let first = bad.iter().position(|b| *b).map(|i| i as u64 * PAGE_BYTES);
                stats.verify_ms = t0.elapsed().as_secs_f64() * 1e3;
                stats.verified_pages = pages;
                if let Some(first_gpa) = first {
                    let e = TransportError::VerificationFailed {
                        mismatched_pages: mismatched,
                        pages,
                        first_gpa,
                    };
                    let failure = DestinationFailure::MemoryMismatch {
                        mismatched_pages: mismatched,
                        pages,
                        first_gpa,
                    };
                    let _ = answer(writer, Err((failure, &e.to_string())));
                    return Err(e);
                }
                match resume.load(state) {
                    Ok(took) => stats.resume_ms = took.as_secs_f64() * 1e3,
                    Err(why) => {
                        let _ = answer(writer, Err((DestinationFailure::Vm, &why)));
                        return Err(TransportError::Vm(why));
                    }
                }
                ready(writer)?;
                return await_commit(reader, ram_bytes, stats, resume);
            }
            Command::Abort => {
                let mut buf = vec![0u8; header.payload_bytes() as usize];
                read_full(reader, &mut buf, "source", "receiving the abort reason")?;
                return Err(TransportError::SourceAborted(
                    String::from_utf8_lossy(&buf).into_owned(),
                ));
            }
            Command::Commit => {
                return Err(TransportError::BadFrame(
                    "COMMIT before this destination was READY".into(),
                ))
            }
            Command::ResultOk | Command::ResultFailed | Command::Ready => {
                return Err(TransportError::BadFrame(format!(
                    "{:?} is not sent by a source",
                    header.command
                )))
            }
        }
    }
}

/// After READY: start the guest on COMMIT, and on anything else (ABORT, silence past the
/// stall bound, a closed or broken connection, another frame) drop it, telling the source
/// if it can still hear, so that it may take its guest back.
fn await_commit<S: Read + Write>(
    reader: &mut BufReader<S>,
    ram_bytes: u64,
    stats: &mut IncomingStats,
    resume: &mut dyn Resume,
) -> Result<(), TransportError> {
    let t0 = Instant::now();
    let mut h = [0u8; HEADER_BYTES];
    let got = read_full(reader, &mut h, "source", "waiting for the source's COMMIT")
        .and_then(|()| Header::decode(&h, ram_bytes));
    stats.commit_wait_ms = t0.elapsed().as_secs_f64() * 1e3;
    let why = match got {
        Ok(Header {
            command: Command::Commit,
            ..
        }) => {
            let writer = reader.get_mut();
            return match resume.start() {
                Ok(took) => {
                    stats.resume_ms += took.as_secs_f64() * 1e3;
                    // The guest runs here now; if the source cannot hear it, it still runs.
                    let _ = answer(writer, Ok("guest resumed"));
                    Ok(())
                }
                Err(why) => {
                    let _ = answer(writer, Err((DestinationFailure::Vm, &why)));
                    Err(TransportError::Vm(why))
                }
            };
        }
        Ok(
            header @ Header {
                command: Command::Abort,
                ..
            },
        ) => {
            let mut buf = vec![0u8; header.payload_bytes() as usize];
            read_full(reader, &mut buf, "source", "receiving the abort reason")?;
            return Err(TransportError::SourceAborted(
                String::from_utf8_lossy(&buf).into_owned(),
            ));
        }
        Ok(other) => {
            TransportError::BadFrame(format!("{:?} where COMMIT or ABORT was due", other.command))
        }
        Err(e) => e,
    };
    let e = TransportError::NotCommitted(crate::migration::error_chain(&why));
    let _ = answer(
        reader.get_mut(),
        Err((DestinationFailure::BadStream, &e.to_string())),
    );
    Err(e)
}
