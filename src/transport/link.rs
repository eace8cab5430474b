//! The source side of the stream: the core's [`Link`] on a TCP socket.
//!
//! Page data goes from guest memory to the socket with `writev`, without a copy; runs of
//! consecutive pages share one header.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::protocol::{
    Command, Header, Hello, HEADER_BYTES, HELLO_BYTES, MAGIC, MAX_MESSAGE_BYTES, MAX_RUN_PAGES,
    PAGE_BYTES, VERSION,
};
use super::{read_full, TransportError};
use crate::kvm::memory::GuestRam;
use crate::migration::{BackendError, Link, PageBatch, PageCost};

/// How long a write may block before the destination is declared gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for the destination's verdict after COMPLETE (it hashes all its memory).
const RESULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Most iovecs per writev (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// Figures the link measured (for reports and benchmarks).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LinkStats {
    /// Time to digest the source's memory at completion (ms).
    pub source_digest_ms: f64,
    /// From sending COMPLETE to the destination's answer (its verification, restore and
    /// resume included), ms.
    pub destination_verdict_ms: f64,
    /// Bytes written.
    pub bytes_sent: u64,
}

/// The migration stream to a destination.
pub struct TcpLink {
    stream: TcpStream,
    ram: Arc<GuestRam>,
    headers: Vec<[u8; HEADER_BYTES]>,
    runs: Vec<(usize, Option<(u64, u64)>)>,
    stats: LinkStats,
    closed: bool,
}

impl TcpLink {
    /// Connect and shake hands: the destination creates a VM of the same shape or says why not.
    pub fn connect(
        addr: SocketAddr,
        ram: Arc<GuestRam>,
        vcpus: u32,
    ) -> Result<TcpLink, TransportError> {
        let connect_err = |source| TransportError::Connect {
            addr: format!("tcp:{addr}"),
            source,
        };
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(connect_err)?;
        let io = |during| move |source| TransportError::Io { during, source };
        stream
            .set_nodelay(true)
            .map_err(io("configuring the socket"))?;
        stream
            .set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(io("configuring the socket"))?;
        stream
            .set_read_timeout(Some(RESULT_TIMEOUT))
            .map_err(io("configuring the socket"))?;
        let hello = Hello {
            ram_bytes: ram.bytes(),
            vcpus,
            flags: 0,
        };
        stream
            .write_all(&hello.encode())
            .map_err(io("sending the handshake"))?;
        let mut reply = [0u8; 20];
        read_full(
            &mut stream,
            &mut reply,
            "destination",
            "reading the handshake reply",
        )?;
        if &reply[0..8] != MAGIC {
            return Err(TransportError::BadHandshake(
                "the destination does not speak autoconv's migration protocol".into(),
            ));
        }
        let u32_at = |at: usize| {
            u32::from_le_bytes([reply[at], reply[at + 1], reply[at + 2], reply[at + 3]])
        };
        if u32_at(8) != VERSION {
            return Err(TransportError::BadHandshake(format!(
                "the destination speaks protocol version {}, this autoconv {VERSION}",
                u32_at(8)
            )));
        }
        let (status, msg_len) = (u32_at(12), u32_at(16).min(MAX_MESSAGE_BYTES));
        let mut msg = vec![0u8; msg_len as usize];
        read_full(
            &mut stream,
            &mut msg,
            "destination",
            "reading the handshake reply",
        )?;
        if status != 0 {
            return Err(TransportError::BadHandshake(format!(
                "the destination refused: {}",
                String::from_utf8_lossy(&msg)
            )));
        }
        let _ = HELLO_BYTES;
        Ok(TcpLink {
            stream,
            ram,
            headers: Vec::new(),
            runs: Vec::new(),
            stats: LinkStats::default(),
            closed: false,
        })
    }

    /// What the link measured so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    fn io(during: &'static str) -> impl Fn(std::io::Error) -> TransportError {
        move |source| TransportError::Io { during, source }
    }

    fn send_frame(&mut self, header: Header, payload: &[u8]) -> Result<u64, TransportError> {
        let h = header.encode();
        let mut buf = Vec::with_capacity(HEADER_BYTES + payload.len());
        buf.extend_from_slice(&h);
        buf.extend_from_slice(payload);
        self.stream
            .write_all(&buf)
            .map_err(Self::io("sending to the destination"))?;
        self.stats.bytes_sent += buf.len() as u64;
        Ok(buf.len() as u64)
    }

    /// writev every iovec, resuming after partial writes.
    fn writev_all(&mut self, iov: &mut [libc::iovec]) -> Result<(), TransportError> {
        let fd = self.stream.as_raw_fd();
        let mut start = 0;
        while start < iov.len() {
            let n_iov = (iov.len() - start).min(IOV_MAX);
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
                    source: e,
                });
            }
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
            let data = (!first.zero).then_some((first.gfn, n as u64));
            self.runs.push((self.headers.len() - 1, data));
            total += HEADER_BYTES as u64 + if first.zero { 0 } else { n as u64 * PAGE_BYTES };
            i += n;
        }
        let mut iov = Vec::with_capacity(self.runs.len() * 2);
        for (h, data) in &self.runs {
            iov.push(libc::iovec {
                iov_base: self.headers[*h].as_ptr() as *mut libc::c_void,
                iov_len: HEADER_BYTES,
            });
            if let Some((gfn, n)) = data {
                iov.push(libc::iovec {
                    iov_base: self.ram.page_ptr(*gfn).cast(),
                    iov_len: (*n * PAGE_BYTES) as usize,
                });
            }
        }
        self.writev_all(&mut iov)?;
        self.stats.bytes_sent += total;
        Ok(total)
    }

    fn complete_inner(&mut self) -> Result<u64, TransportError> {
        let pages = self.ram.pages();
        let t0 = Instant::now();
        let mut digests = vec![0u32; pages as usize];
        self.ram.page_digests(0, &mut digests, 2);
        let mut payload = Vec::with_capacity(digests.len() * 4);
        for d in &digests {
            payload.extend_from_slice(&d.to_le_bytes());
        }
        self.stats.source_digest_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let bytes = self.send_frame(
            Header {
                command: Command::Complete,
                count: pages as u32,
                arg: 0,
            },
            &payload,
        )?;
        let mut h = [0u8; HEADER_BYTES];
        read_full(
            &mut self.stream,
            &mut h,
            "destination",
            "waiting for the destination's verdict",
        )?;
        let header = Header::decode(&h, self.ram.bytes())?;
        let mut msg = vec![0u8; header.payload_bytes() as usize];
        read_full(
            &mut self.stream,
            &mut msg,
            "destination",
            "reading the destination's verdict",
        )?;
        self.stats.destination_verdict_ms = t1.elapsed().as_secs_f64() * 1e3;
        match header.command {
            Command::ResultOk => Ok(bytes),
            Command::ResultFailed => Err(TransportError::Destination(
                String::from_utf8_lossy(&msg).into_owned(),
            )),
            other => Err(TransportError::BadFrame(format!(
                "the destination answered {other:?} to COMPLETE"
            ))),
        }
    }
}

impl Link for TcpLink {
    fn send_pages(&mut self, batch: &PageBatch) -> Result<u64, BackendError> {
        Ok(self.send_batch(batch)?)
    }

    fn send_end_of_iteration(&mut self) -> Result<u64, BackendError> {
        Ok(self.send_frame(
            Header {
                command: Command::EndOfIteration,
                count: 0,
                arg: 0,
            },
            &[],
        )?)
    }

    fn send_device_state(&mut self, state: &[u8]) -> Result<u64, BackendError> {
        Ok(self.send_frame(
            Header {
                command: Command::DeviceState,
                count: state.len() as u32,
                arg: 0,
            },
            state,
        )?)
    }

    fn page_cost(&self) -> PageCost {
        // Headers are per run of pages; charging one per page keeps the budget an upper bound.
        PageCost {
            normal_page_bytes: PAGE_BYTES + HEADER_BYTES as u64,
            zero_page_bytes: HEADER_BYTES as u64,
        }
    }

    fn batch_bytes_hint(&self) -> u64 {
        1 << 20
    }

    fn complete(&mut self) -> Result<u64, BackendError> {
        let r = self.complete_inner();
        self.closed = true;
        Ok(r?)
    }

    fn abort(&mut self, reason: &str) {
        if !self.closed {
            let _ = self.stream.set_write_timeout(Some(Duration::from_secs(1)));
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
        let _ = self.stream.shutdown(Shutdown::Both);
        self.closed = true;
    }
}
