//! The source side of the stream: the core's [`Link`] on a TCP socket.
//!
//! Page data goes from guest memory to the socket with `writev`, without a copy; runs of
//! consecutive pages share one header. Each page is digested (keyed CRC32) just before it
//! goes, and its digest follows the run, so the destination checks every page as it arrives
//! and nothing needs re-reading after the last byte (unless `--verify full` asks for it).

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{Conn, Socket};
use super::protocol::{
    Command, DestinationFailure, Header, Hello, Reply, COMPLETE_DIGEST, COMPLETE_FULL,
    DIGEST_BYTES, HEADER_BYTES, MAX_MESSAGE_BYTES, MAX_RUN_PAGES, PAGE_BYTES, REPLY_FIXED_BYTES,
};
use super::tls::ClientTls;
use super::verify::VerifyMode;
use super::{read_full, TransportError};
use crate::kvm::memory::GuestRam;
use crate::migration::{
    BackendError, CancelToken, Failure, HandoverUnconfirmed, Link, LinkStalled, PageBatch, PageCost,
};

/// Default of [`LinkTimeouts::stall`].
pub const STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Default of [`LinkTimeouts::handshake`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// What passing [`LinkTimeouts::deadline`] means.
const DEADLINE_WHAT: &str = "the run's time limit was reached";

/// How long the source waits on its destination (`run --kvm --handshake-timeout D
/// --stall-timeout D`). QEMU's source has no such bounds: a destination that stops reading
/// holds its migration `active` until `migrate_cancel`; autoconv gives up by itself, the way
/// that cancel would (see [`crate::migration::LinkStalled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTimeouts {
    /// The whole handshake, from connect to the destination's reply (which comes once it has
    /// created the VM and faulted its memory in).
    pub handshake: Duration,
    /// After the handshake: longest any send to the destination, or the wait for its verdict,
    /// may go without moving a byte.
    pub stall: Duration,
    /// No wait after the handshake goes past this (the run's time limit).
    pub deadline: Option<Instant>,
}

impl Default for LinkTimeouts {
    fn default() -> Self {
        LinkTimeouts {
            handshake: HANDSHAKE_TIMEOUT,
            stall: STALL_TIMEOUT,
            deadline: None,
        }
    }
}
/// Most iovecs per writev (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// Figures the link measured (for reports and benchmarks).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LinkStats {
    /// How the destination verified memory.
    pub verify: VerifyMode,
    /// Time spent digesting pages as they were sent, over the whole migration (ms).
    pub sent_digest_ms: f64,
    /// Time to digest all of the source's memory at completion (ms; `--verify full` only).
    pub source_digest_ms: f64,
    /// From sending COMPLETE to the destination's READY (its verification and state restore),
    /// then COMMIT and its answer (the vCPUs started), ms.
    pub destination_verdict_ms: f64,
    /// From sending COMMIT to the destination's answer, ms.
    pub commit_ms: f64,
    /// COMMIT was sent and no answer came: the destination may be running the guest, so the
    /// source's stays stopped.
    pub commit_unconfirmed: bool,
    /// Bytes written (the stream's, before TLS framing).
    pub bytes_sent: u64,
    /// The stream went inside TLS.
    pub tls: bool,
}

/// One run of a batch: its header's index, and for data pages (first gfn, pages, offset of
/// their digests in `digests`).
type Run = (usize, Option<(u64, u64, usize)>);

/// The migration stream to a destination.
pub struct TcpLink {
    conn: Conn,
    ram: Arc<GuestRam>,
    /// Digest key of this session (see `verify`).
    digest_key: u32,
    headers: Vec<[u8; HEADER_BYTES]>,
    runs: Vec<Run>,
    /// The digests of a batch's data pages, in wire order (little-endian u32s).
    digests: Vec<u8>,
    /// The stream digest so far: every header and device state sent (see `protocol`).
    stream: crc32fast::Hasher,
    stats: LinkStats,
    closed: bool,
    stall: Duration,
    /// A wait on the destination timed out: no abort frame will get through.
    stalled: std::cell::Cell<bool>,
    /// Cancelling this ends the wait for the destination's READY (before COMMIT only).
    cancel: Option<CancelToken>,
}

impl TcpLink {
    /// Connect in the clear and shake hands: the destination creates a VM of the same shape or
    /// says why not.
    pub fn connect(
        addr: SocketAddr,
        ram: Arc<GuestRam>,
        vcpus: u32,
    ) -> Result<TcpLink, TransportError> {
        Self::connect_with(addr, ram, vcpus, None, &LinkTimeouts::default())
    }

    /// Connect, inside TLS if `tls` is given, and shake hands, within `timeouts`.
    pub fn connect_with(
        addr: SocketAddr,
        ram: Arc<GuestRam>,
        vcpus: u32,
        tls: Option<&ClientTls>,
        timeouts: &LinkTimeouts,
    ) -> Result<TcpLink, TransportError> {
        let deadline = Instant::now() + timeouts.handshake;
        let connect_err = |source| TransportError::Connect {
            addr: format!("tcp:{addr}"),
            source,
        };
        let connect_timeout = timeouts
            .handshake
            .clamp(Duration::from_millis(1), Duration::from_secs(5));
        let tcp = TcpStream::connect_timeout(&addr, connect_timeout).map_err(connect_err)?;
        let io = |during| move |source| TransportError::Io { during, source };
        tcp.set_nodelay(true)
            .map_err(io("configuring the socket"))?;
        let mut conn = match tls {
            Some(t) => super::tls::connect(t, addr, tcp, deadline)?,
            None => {
                Conn::Plain(Socket::new(tcp, Some(deadline)).map_err(io("configuring the socket"))?)
            }
        };
        let source_nonce = super::verify::nonce()?;
        let hello = Hello {
            ram_bytes: ram.bytes(),
            vcpus,
            flags: 0,
            nonce: source_nonce,
        };
        conn.write_all_slices(&[&hello.encode()])
            .map_err(io("sending the handshake"))?;
        let mut fixed = [0u8; REPLY_FIXED_BYTES];
        read_full(
            &mut conn,
            &mut fixed,
            "destination",
            "reading the handshake reply",
        )?;
        let (reply, msg_len) = Reply::decode_fixed(&fixed)?;
        let mut msg = vec![0u8; msg_len as usize];
        read_full(
            &mut conn,
            &mut msg,
            "destination",
            "reading the handshake reply",
        )?;
        if reply.status != 0 {
            return Err(TransportError::BadHandshake(format!(
                "the destination refused: {}",
                String::from_utf8_lossy(&msg)
            )));
        }
        let digest_key =
            super::verify::session_key(&source_nonce, &reply.nonce, conn.exported_secret());
        conn.socket_mut()
            .hold_to(timeouts.stall, timeouts.deadline, DEADLINE_WHAT);
        let stats = LinkStats {
            tls: conn.is_tls(),
            ..LinkStats::default()
        };
        Ok(TcpLink {
            conn,
            ram,
            digest_key,
            headers: Vec::new(),
            runs: Vec::new(),
            digests: Vec::new(),
            stream: crc32fast::Hasher::new_with_initial(digest_key),
            stats,
            closed: false,
            stall: timeouts.stall,
            stalled: std::cell::Cell::new(false),
            cancel: None,
        })
    }

    /// From now on no wait on the destination goes past `deadline` (the run's time limit, set
    /// when the migration starts).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.conn
            .socket_mut()
            .hold_to(self.stall, deadline, DEADLINE_WHAT);
    }

    /// A Ctrl-C while the destination verifies (before COMMIT) cancels the migration: the
    /// wait for READY looks at `cancel`.
    pub fn set_cancel(&mut self, cancel: CancelToken) {
        self.cancel = Some(cancel);
    }

    /// What the link measured so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// How the destination is to verify memory at completion (digests as sent by default).
    pub fn set_verify(&mut self, mode: VerifyMode) {
        self.stats.verify = mode;
    }

    fn io(during: &'static str) -> impl Fn(std::io::Error) -> TransportError {
        move |source| TransportError::Io { during, source }
    }

    fn send_frame(&mut self, header: Header, payload: &[u8]) -> Result<u64, TransportError> {
        let h = header.encode();
        match header.command {
            Command::EndOfIteration => self.stream.update(&h),
            Command::DeviceState => {
                self.stream.update(&h);
                self.stream.update(payload);
            }
            _ => {}
        }
        self.conn
            .write_all_slices(&[&h, payload])
            .map_err(Self::io("sending to the destination"))?;
        let n = (HEADER_BYTES + payload.len()) as u64;
        self.stats.bytes_sent += n;
        Ok(n)
    }

    /// writev every iovec, resuming after partial writes.
    fn writev_all(&mut self, iov: &mut [libc::iovec]) -> Result<(), TransportError> {
        let fd = self.conn.socket().tcp().as_raw_fd();
        let mut start = 0;
        while start < iov.len() {
            let n_iov = (iov.len() - start).min(IOV_MAX);
            self.conn
                .socket()
                .arm(false)
                .map_err(Self::io("sending pages to the destination"))?;
            // SAFETY: `iov[start..start + n_iov]` are valid iovecs pointing into live memory
            // (headers owned by self, or guest memory owned by `self.ram`) for the call.
            let n = unsafe { libc::writev(fd, iov[start..].as_ptr(), n_iov as libc::c_int) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(TransportError::Io {
                    during: "sending pages to the destination",
                    source: self.conn.socket().timed_out(e),
                });
            }
            self.conn.socket().progressed();
            let mut n = n as usize;
            while n > 0 && start < iov.len() {
                let len = iov[start].iov_len;
                if n >= len {
                    n -= len;
                    start += 1;
                } else {
                    // SAFETY: advancing inside the same buffer by fewer bytes than its length.
                    iov[start].iov_base = unsafe { iov[start].iov_base.cast::<u8>().add(n) }.cast();
                    iov[start].iov_len -= n;
                    n = 0;
                }
            }
            while start < iov.len() && iov[start].iov_len == 0 {
                start += 1;
            }
        }
        Ok(())
    }

    fn send_batch(&mut self, batch: &PageBatch) -> Result<u64, TransportError> {
        // Group consecutive pages of the same kind into runs: one header each.
        self.headers.clear();
        self.runs.clear();
        self.digests.clear();
        let t0 = Instant::now();
        let mut i = 0;
        let pages = &batch.pages;
        let mut total = 0u64;
        while i < pages.len() {
            let first = pages[i];
            let mut n = 1;
            while i + n < pages.len()
                && n < MAX_RUN_PAGES as usize
                && pages[i + n].gfn == first.gfn + n as u64
                && pages[i + n].zero == first.zero
            {
                n += 1;
            }
            let header = Header {
                command: if first.zero {
                    Command::ZeroPages
                } else {
                    Command::Pages
                },
                count: n as u32,
                arg: first.gfn * PAGE_BYTES,
            };
            self.headers.push(header.encode());
            let data = (!first.zero).then(|| {
                let at = self.digests.len();
                for gfn in first.gfn..first.gfn + n as u64 {
                    let d = self.ram.keyed_digest_of(self.digest_key, gfn);
                    self.digests.extend_from_slice(&d.to_le_bytes());
                }
                (first.gfn, n as u64, at)
            });
            self.runs.push((self.headers.len() - 1, data));
            total += HEADER_BYTES as u64
                + if first.zero {
                    0
                } else {
                    n as u64 * (PAGE_BYTES + DIGEST_BYTES)
                };
            i += n;
        }
        for h in &self.headers {
            self.stream.update(h);
        }
        self.stats.sent_digest_ms += t0.elapsed().as_secs_f64() * 1e3;
        if self.conn.is_tls() {
            return self.send_runs_tls(total);
        }
        let mut iov = Vec::with_capacity(self.runs.len() * 2);
        for (h, data) in &self.runs {
            iov.push(libc::iovec {
                iov_base: self.headers[*h].as_ptr() as *mut libc::c_void,
                iov_len: HEADER_BYTES,
            });
            if let Some((gfn, n, at)) = data {
                iov.push(libc::iovec {
                    iov_base: self.ram.page_ptr(*gfn).cast(),
                    iov_len: (*n * PAGE_BYTES) as usize,
                });
                iov.push(libc::iovec {
                    iov_base: self.digests[*at..].as_ptr() as *mut libc::c_void,
                    iov_len: (*n * DIGEST_BYTES) as usize,
                });
            }
        }
        self.writev_all(&mut iov)?;
        self.stats.bytes_sent += total;
        Ok(total)
    }

    /// The runs of `send_batch` through TLS: encrypted from guest memory into the session's
    /// send queue (one copy), then written in full records.
    fn send_runs_tls(&mut self, total: u64) -> Result<u64, TransportError> {
        let mut slices: Vec<&[u8]> = Vec::with_capacity(self.runs.len() * 2);
        for (h, data) in &self.runs {
            slices.push(&self.headers[*h]);
            if let Some((gfn, n, at)) = data {
                // SAFETY: `n` pages from `gfn` lie inside guest memory (the core only sends
                // pages of this guest), which `self.ram` keeps mapped while the slice lives. A
                // vCPU may write them meanwhile: the bytes are only copied, and such a page is
                // dirty again, so the core sends it once more.
                slices.push(unsafe {
                    std::slice::from_raw_parts(self.ram.page_ptr(*gfn), (*n * PAGE_BYTES) as usize)
                });
                slices.push(&self.digests[*at..*at + (*n * DIGEST_BYTES) as usize]);
            }
        }
        self.conn
            .write_all_slices(&slices)
            .map_err(Self::io("sending pages to the destination"))?;
        self.stats.bytes_sent += total;
        Ok(total)
    }

    fn complete_inner(&mut self) -> Result<u64, TransportError> {
        let (mut payload, mut count, mut arg) = (Vec::new(), 1, COMPLETE_DIGEST);
        if self.stats.verify == VerifyMode::Digest {
            payload.extend_from_slice(&self.stream.clone().finalize().to_le_bytes());
        } else {
            let pages = self.ram.pages();
            let t0 = Instant::now();
            let mut digests = vec![0u32; pages as usize];
            self.ram
                .keyed_page_digests(self.digest_key, &mut digests, 2);
            payload.reserve(digests.len() * 4);
            for d in &digests {
                payload.extend_from_slice(&d.to_le_bytes());
            }
            self.stats.source_digest_ms = t0.elapsed().as_secs_f64() * 1e3;
            count = pages as u32;
            arg = COMPLETE_FULL;
        }
        let t1 = Instant::now();
        let mut bytes = self.send_frame(
            Header {
                command: Command::Complete,
                count,
                arg,
            },
            &payload,
        )?;
        self.conn.socket_mut().watch_cancel(self.cancel.clone());
        let verdict = self.read_answer("waiting for the destination's verdict");
        self.conn.socket_mut().watch_cancel(None);
        self.stats.destination_verdict_ms = t1.elapsed().as_secs_f64() * 1e3;
        let (header, payload) = verdict?;
        match header.command {
            Command::Ready => {}
            Command::ResultFailed => return Err(destination_failed(&header, &payload)),
            other => {
                return Err(TransportError::BadFrame(format!(
                    "the destination answered {other:?} to COMPLETE"
                )))
            }
        }
        // The last moment the source can still take its guest back.
        if self.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            return Err(TransportError::Cancelled);
        }
        bytes += self.send_frame(
            Header {
                command: Command::Commit,
                count: 0,
                arg: 0,
            },
            &[],
        )?;
        Ok(bytes)
    }

    /// After COMMIT went out: the destination's answer. Anything but RESULT_FAILED short of
    /// RESULT_OK leaves the source unable to know whether the guest runs there.
    fn confirm_commit(&mut self, bytes: u64) -> Result<u64, BackendError> {
        let t0 = Instant::now();
        let answer = self.read_answer("waiting for the destination to confirm COMMIT");
        self.stats.commit_ms = t0.elapsed().as_secs_f64() * 1e3;
        match answer {
            Ok((h, _)) if h.command == Command::ResultOk => Ok(bytes),
            // It says it does not run the guest: the source may take it back.
            Ok((h, payload)) if h.command == Command::ResultFailed => {
                let e = destination_failed(&h, &payload);
                Err(Failure::boxed(e.failure_kind(), e))
            }
            other => {
                let what = match other {
                    Ok((h, _)) => format!("the destination answered {:?}", h.command),
                    Err(e) => crate::migration::error_chain(&e),
                };
                self.stats.commit_unconfirmed = true;
                Err(Box::new(HandoverUnconfirmed(format!(
                    "COMMIT was sent and not confirmed ({what}): the destination may be running the guest, so the source guest stays paused (check the destination before resuming it)"
                ))))
            }
        }
    }

    /// One answer frame from the destination: its header and payload.
    fn read_answer(&mut self, during: &'static str) -> Result<(Header, Vec<u8>), TransportError> {
        let mut h = [0u8; HEADER_BYTES];
        read_full(&mut self.conn, &mut h, "destination", during)?;
        let header = Header::decode(&h, self.ram.bytes())?;
        let mut msg = vec![0u8; header.payload_bytes() as usize];
        read_full(&mut self.conn, &mut msg, "destination", during)?;
        Ok((header, msg))
    }
}

/// The error a RESULT_FAILED stands for (or why it cannot be read).
fn destination_failed(header: &Header, payload: &[u8]) -> TransportError {
    match DestinationFailure::decode(header, payload) {
        Ok((failure, message)) => TransportError::Destination { failure, message },
        Err(e) => e,
    }
}

impl TcpLink {
    /// A timed-out wait is a stall the core cancels on ([`LinkStalled`]); anything else broke
    /// the stream (`failed`).
    fn backend(&self, e: TransportError) -> BackendError {
        match &e {
            TransportError::Io { during, source }
                if source.kind() == std::io::ErrorKind::TimedOut =>
            {
                let what = if source.to_string() == super::conn::STALLED {
                    format!(
                        "the destination stalled: nothing moved for {} s while {during} (--stall-timeout)",
                        self.stall.as_secs_f64()
                    )
                } else {
                    format!("the destination stalled while {during}: {source}")
                };
                self.stalled.set(true);
                Box::new(LinkStalled(what))
            }
            _ => Failure::boxed(e.failure_kind(), e),
        }
    }
}

impl Link for TcpLink {
    fn send_pages(&mut self, batch: &PageBatch) -> Result<u64, BackendError> {
        self.send_batch(batch).map_err(|e| self.backend(e))
    }

    fn send_end_of_iteration(&mut self) -> Result<u64, BackendError> {
        self.send_frame(
            Header {
                command: Command::EndOfIteration,
                count: 0,
                arg: 0,
            },
            &[],
        )
        .map_err(|e| self.backend(e))
    }

    fn send_device_state(&mut self, state: &[u8]) -> Result<u64, BackendError> {
        self.send_frame(
            Header {
                command: Command::DeviceState,
                count: state.len() as u32,
                arg: 0,
            },
            state,
        )
        .map_err(|e| self.backend(e))
    }

    fn page_cost(&self) -> PageCost {
        // Headers are per run of pages; charging one per page keeps the budget an upper bound.
        PageCost {
            normal_page_bytes: PAGE_BYTES + DIGEST_BYTES + HEADER_BYTES as u64,
            zero_page_bytes: HEADER_BYTES as u64,
        }
    }

    fn batch_bytes_hint(&self) -> u64 {
        1 << 20
    }

    fn complete(&mut self) -> Result<u64, BackendError> {
        let r = self.complete_inner();
        let r = match r {
            // COMMIT is out: no abort frame follows, whatever the answer.
            Ok(bytes) => {
                self.closed = true;
                self.confirm_commit(bytes)
            }
            Err(e) => Err(self.backend(e)),
        };
        self.stats.destination_verdict_ms += self.stats.commit_ms;
        r
    }

    fn abort(&mut self, reason: &str) {
        if !self.closed && !self.stalled.get() {
            // A stalled destination gets one more second for the reason, not another stall.
            self.conn
                .socket_mut()
                .hold_to(Duration::from_secs(1), None, DEADLINE_WHAT);
            let mut msg = reason.as_bytes().to_vec();
            msg.truncate(MAX_MESSAGE_BYTES as usize);
            let _ = self.send_frame(
                Header {
                    command: Command::Abort,
                    count: msg.len() as u32,
                    arg: 0,
                },
                &msg,
            );
        }
        let _ = self.conn.socket().tcp().shutdown(Shutdown::Both);
        self.closed = true;
    }
}
