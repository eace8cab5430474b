//! One migration connection: a TCP socket that can be held to an overall deadline (the
//! handshake's), carried in the clear or inside TLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::migration::CancelToken;

/// A TCP socket whose reads and writes fail once a deadline has passed, however slowly the
/// peer trickles bytes (a per-read timeout alone lets 1 byte/s hold a connection for ever).
pub struct Socket {
    tcp: TcpStream,
    deadline: Option<Instant>,
    /// What passing the deadline means (for the error).
    deadline_what: &'static str,
    /// Longest reads and writes may go without moving a byte (None: until the deadline).
    stall: Option<Duration>,
    /// When a byte last moved (the stall bound counts from here, not from each call: a
    /// write that moves a little and then blocks must not restart the clock).
    progress_at: std::cell::Cell<Instant>,
    /// What a stall error says (default [`STALLED`]).
    stall_what: Option<String>,
    /// Reads give up when this is cancelled (checked before each read, and every
    /// [`CANCEL_POLL`] while one blocks).
    cancel: Option<CancelToken>,
}

/// The error text of a read or write that moved no byte for the stall bound.
pub const STALLED: &str = "no progress";
/// The error text of a read given up because its cancel token was cancelled.
pub const CANCELLED: &str = "cancelled";
/// How often a blocked read looks at its cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(50);

impl Socket {
    /// Wrap a connected socket (blocking mode), held to `deadline` if given.
    pub fn new(tcp: TcpStream, deadline: Option<Instant>) -> std::io::Result<Socket> {
        tcp.set_nonblocking(false)?;
        Ok(Socket {
            tcp,
            deadline,
            deadline_what: "the handshake deadline passed",
            stall: None,
            progress_at: std::cell::Cell::new(Instant::now()),
            cancel: None,
            stall_what: None,
        })
    }

    /// From now on a read or write that moves no byte for `stall` fails (TimedOut, "no
    /// progress"), and none waits past `deadline` (TimedOut, `deadline_what`).
    pub fn hold_to(
        &mut self,
        stall: Duration,
        deadline: Option<Instant>,
        deadline_what: &'static str,
    ) {
        self.stall = Some(stall.max(Duration::from_millis(1)));
        self.deadline = deadline;
        self.deadline_what = deadline_what;
        self.progress_at.set(Instant::now());
    }

    /// Say this, rather than [`STALLED`], when the stall bound passes.
    pub fn describe_stall(&mut self, what: String) {
        self.stall_what = Some(what);
    }

    /// From now on a read blocked on the peer ends (Other, [`CANCELLED`]) soon after `cancel`
    /// is cancelled; None: reads wait for their bounds only.
    pub fn watch_cancel(&mut self, cancel: Option<CancelToken>) {
        self.cancel = cancel;
    }

    /// Bytes moved (the link's own `writev` reports here too).
    pub(crate) fn progressed(&self) {
        self.progress_at.set(Instant::now());
    }

    /// The socket itself.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Before each operation (the link's own `writev` too): arm the socket's timeout with the
    /// stall bound or what is left of the deadline, whichever is shorter.
    pub(crate) fn arm(&self, read: bool) -> std::io::Result<()> {
        let left = match self.deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        self.deadline_what,
                    ));
                }
                Some(left)
            }
        };
        let stall_left = match self.stall {
            None => None,
            Some(stall) => {
                let left = stall.saturating_sub(self.progress_at.get().elapsed());
                if left.is_zero() {
                    return Err(self.stalled());
                }
                Some(left)
            }
        };
        let poll = (read && self.cancel.is_some()).then_some(CANCEL_POLL);
        let Some(timeout) = [left, stall_left, poll].into_iter().flatten().min() else {
            return Ok(());
        };
        if read {
            self.tcp.set_read_timeout(Some(timeout))
        } else {
            self.tcp.set_write_timeout(Some(timeout))
        }
    }

    /// SO_RCVTIMEO/SO_SNDTIMEO expiry shows as EAGAIN: name it for what it is.
    pub(crate) fn timed_out(&self, e: std::io::Error) -> std::io::Error {
        if e.kind() != std::io::ErrorKind::WouldBlock
            || (self.deadline.is_none() && self.stall.is_none())
        {
            return e;
        }
        let passed = self.deadline.is_some_and(|d| Instant::now() >= d);
        if passed || self.stall.is_none() {
            return std::io::Error::new(std::io::ErrorKind::TimedOut, self.deadline_what);
        }
        self.stalled()
    }

    /// The stall error. Once reported, the bound counts afresh, so that one last message
    /// (a destination telling its source it gave up) can still go out.
    fn stalled(&self) -> std::io::Error {
        self.progressed();
        let what = self.stall_what.as_deref().unwrap_or(STALLED);
        std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string())
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            // Checked before every read, not only when one would block: a stream in full
            // flow never blocks long enough for the poll below to see the token.
            if self.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                return Err(std::io::Error::other(CANCELLED));
            }
            self.arm(true)?;
            match self.tcp.read(buf) {
                Ok(n) => {
                    self.progressed();
                    return Ok(n);
                }
                // A poll for the cancel token timed out: cancelled, or wait on (arm() then
                // says whether a real bound has passed).
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && self.cancel.is_some() => {
                    if self.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                        return Err(std::io::Error::other(CANCELLED));
                    }
                    if self.deadline.is_none() && self.stall.is_none() {
                        continue;
                    }
                    let passed = self.deadline.is_some_and(|d| Instant::now() >= d)
                        || self
                            .stall
                            .is_some_and(|s| self.progress_at.get().elapsed() >= s);
                    if passed {
                        return Err(self.timed_out(e));
                    }
                }
                Err(e) => return Err(self.timed_out(e)),
            }
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm(false)?;
        let n = self.tcp.write(buf).map_err(|e| self.timed_out(e))?;
        self.progressed();
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A migration connection, plain or TLS (either end).
pub enum Conn {
    /// In the clear.
    Plain(Socket),
    /// TLS, this side the server (the destination).
    Server(Box<rustls::StreamOwned<rustls::ServerConnection, Socket>>),
    /// TLS, this side the client (the source).
    Client(Box<rustls::StreamOwned<rustls::ClientConnection, Socket>>),
}

/// Label of the secret both ends export from a TLS session to key the memory digests.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-autoconv-migration-digests";

impl Conn {
    /// The socket underneath.
    pub fn socket(&self) -> &Socket {
        match self {
            Conn::Plain(s) => s,
            Conn::Server(t) => &t.sock,
            Conn::Client(t) => &t.sock,
        }
    }

    /// The socket underneath.
    pub fn socket_mut(&mut self) -> &mut Socket {
        match self {
            Conn::Plain(s) => s,
            Conn::Server(t) => &mut t.sock,
            Conn::Client(t) => &mut t.sock,
        }
    }

    /// True under TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Conn::Plain(_))
    }

    /// Run the TLS handshake to its end (nothing for a plain connection). Errors carry
    /// rustls' reason (unknown CA, bad certificate, name mismatch ...).
    pub fn complete_handshake(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(_) => Ok(()),
            Conn::Server(t) => {
                while t.conn.is_handshaking() {
                    t.conn.complete_io(&mut t.sock)?;
                }
                Ok(())
            }
            Conn::Client(t) => {
                while t.conn.is_handshaking() {
                    t.conn.complete_io(&mut t.sock)?;
                }
                Ok(())
            }
        }
    }

    /// A secret only the two ends of this TLS session know (None in the clear).
    pub fn exported_secret(&self) -> Option<[u8; 32]> {
        let out = [0u8; 32];
        match self {
            Conn::Plain(_) => None,
            Conn::Server(t) => t
                .conn
                .export_keying_material(out, EXPORTER_LABEL, None)
                .ok(),
            Conn::Client(t) => t
                .conn
                .export_keying_material(out, EXPORTER_LABEL, None)
                .ok(),
        }
    }

    /// Write every slice, in order. Under TLS the slices are encrypted into the session's
    /// send queue first and then written out in full records, rather than one small record
    /// (and one system call) per slice.
    pub fn write_all_slices(&mut self, slices: &[&[u8]]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => {
                for b in slices {
                    s.write_all(b)?;
                }
                Ok(())
            }
            Conn::Server(t) => tls_write_all(&mut t.conn, &mut t.sock, slices),
            Conn::Client(t) => tls_write_all(&mut t.conn, &mut t.sock, slices),
        }
    }
}

fn tls_write_all<D>(
    conn: &mut rustls::ConnectionCommon<D>,
    sock: &mut Socket,
    slices: &[&[u8]],
) -> std::io::Result<()> {
    for b in slices {
        let mut rest = *b;
        while !rest.is_empty() {
            let n = conn.writer().write(rest)?;
            rest = &rest[n..];
            // The send queue is full (or the slice is done): put it on the wire.
            if n == 0 || !rest.is_empty() {
                while conn.wants_write() {
                    conn.write_tls(sock)?;
                }
            }
        }
    }
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Server(t) => t.read(buf),
            Conn::Client(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Server(t) => t.write(buf),
            Conn::Client(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Server(t) => t.flush(),
            Conn::Client(t) => t.flush(),
        }
    }
}
