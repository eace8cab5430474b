//! The destination: accept one migration, check every frame, load memory and state, verify
//! memory against the source's digests, and resume the guest.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::protocol::{
    Command, Header, Hello, HEADER_BYTES, HELLO_BYTES, MAGIC, MAX_MESSAGE_BYTES, PAGE_BYTES,
    VERSION,
};
use super::{read_full, TransportError};
use crate::kvm::{DirtyLogMode, Machine, MachineConfig, MachineState};
use crate::migration::CancelToken;

/// If the source says nothing for this long mid-stream, it is gone.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Time to digest and compare memory (ms).
    pub verify_ms: f64,
    /// Time to restore vCPU/VM state and start the vCPUs (ms).
    pub resume_ms: f64,
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

/// Wait for a connection (checking `cancel` every 100 ms), then receive one migration.
pub fn accept_one(
    listener: &TcpListener,
    cancel: &CancelToken,
    dirty_log: DirtyLogMode,
) -> Result<Incoming, TransportError> {
    listener
        .set_nonblocking(true)
        .map_err(|source| TransportError::Io {
            during: "listening",
            source,
        })?;
    let stream = loop {
        if cancel.is_cancelled() {
            return Err(TransportError::Cancelled);
        }
        match listener.accept() {
            Ok((s, _)) => break s,
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
    receive(stream, dirty_log)
}

/// MemAvailable from /proc/meminfo.
fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn reply(stream: &mut TcpStream, status: u32, message: &str) {
    let mut b = Vec::with_capacity(20 + message.len());
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&status.to_le_bytes());
    let msg = &message.as_bytes()[..message.len().min(MAX_MESSAGE_BYTES as usize)];
    b.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    b.extend_from_slice(msg);
    let _ = stream.write_all(&b);
}

fn answer(stream: &mut TcpStream, ok: bool, message: &str) -> Result<(), TransportError> {
    let msg = &message.as_bytes()[..message.len().min(MAX_MESSAGE_BYTES as usize)];
    let h = Header {
        command: if ok {
            Command::ResultOk
        } else {
            Command::ResultFailed
        },
        count: msg.len() as u32,
        arg: 0,
    };
    let mut b = h.encode().to_vec();
    b.extend_from_slice(msg);
    stream.write_all(&b).map_err(|source| TransportError::Io {
        during: "answering the source",
        source,
    })
}

/// Receive one migration on an accepted connection.
pub fn receive(mut stream: TcpStream, dirty_log: DirtyLogMode) -> Result<Incoming, TransportError> {
    let io = |during| move |source| TransportError::Io { during, source };
    stream
        .set_nonblocking(false)
        .map_err(io("configuring the socket"))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(io("configuring the socket"))?;
    let _ = stream.set_nodelay(true);
    let mut hello = [0u8; HELLO_BYTES];
    read_full(&mut stream, &mut hello, "source", "reading the handshake")?;
    let hello = match Hello::decode(&hello) {
        Ok(h) => h,
        Err(e) => {
            reply(&mut stream, 1, &e.to_string());
            return Err(e);
        }
    };
    // Refuse memory this host cannot back before mapping (and populating) it.
    if let Some(avail) = available_memory_bytes() {
        if hello.ram_bytes > avail / 10 * 9 {
            let why = format!(
                "the source's guest has {} bytes of memory; this host has {avail} available",
                hello.ram_bytes
            );
            reply(&mut stream, 1, &why);
            return Err(TransportError::Vm(why));
        }
    }
    let machine = Machine::new(MachineConfig {
        mem_bytes: hello.ram_bytes,
        vcpus: hello.vcpus,
        dirty_log,
    });
    let mut machine = match machine {
        Ok(m) => m,
        Err(e) => {
            let why = crate::migration::error_chain(&e);
            reply(&mut stream, 1, &format!("cannot create the VM: {why}"));
            return Err(TransportError::Vm(why));
        }
    };
    // Fault the memory in before accepting, so receiving pages is a plain copy.
    machine.ram().prefault();
    reply(&mut stream, 0, "");
    let mut writer = stream.try_clone().map_err(io("configuring the socket"))?;
    let mut reader = BufReader::with_capacity(256 << 10, stream);
    let ram = machine.ram().clone();
    let ram_bytes = ram.bytes();
    let mut stats = IncomingStats::default();
    let mut state: Option<MachineState> = None;
    loop {
        let mut h = [0u8; HEADER_BYTES];
        read_full(
            &mut reader,
            &mut h,
            "source",
            "receiving the migration stream",
        )?;
        let header = Header::decode(&h, ram_bytes)?;
        stats.bytes += HEADER_BYTES as u64 + header.payload_bytes();
        match header.command {
            Command::Pages => {
                let len = header.payload_bytes();
                // SAFETY: the destination's vCPUs have not started (they start only after
                // COMPLETE), nothing else touches guest memory, and decode() checked that the
                // range lies inside it.
                let dst = unsafe { ram.slice_mut(header.arg, len) }
                    .ok_or_else(|| TransportError::BadFrame("page range outside memory".into()))?;
                read_full(&mut reader, dst, "source", "receiving pages")?;
                stats.normal_pages += u64::from(header.count);
            }
            Command::ZeroPages => {
                let len = u64::from(header.count) * PAGE_BYTES;
                // SAFETY: as above.
                let dst = unsafe { ram.slice_mut(header.arg, len) }
                    .ok_or_else(|| TransportError::BadFrame("page range outside memory".into()))?;
                dst.fill(0);
                stats.zero_pages += u64::from(header.count);
            }
            Command::EndOfIteration => stats.iterations += 1,
            Command::DeviceState => {
                let mut buf = vec![0u8; header.payload_bytes() as usize];
                read_full(
                    &mut reader,
                    &mut buf,
                    "source",
                    "receiving the device state",
                )?;
                let parsed: MachineState = serde_json::from_slice(&buf).map_err(|e| {
                    TransportError::BadFrame(format!("device state is not valid: {e}"))
                })?;
                state = Some(parsed);
            }
            Command::Complete => {
                let mut buf = vec![0u8; header.payload_bytes() as usize];
                read_full(
                    &mut reader,
                    &mut buf,
                    "source",
                    "receiving the page digests",
                )?;
                let Some(state) = state.take() else {
                    let e = TransportError::BadFrame("COMPLETE before the device state".into());
                    let _ = answer(&mut writer, false, &e.to_string());
                    return Err(e);
                };
                let t0 = Instant::now();
                let pages = ram.pages();
                let mut mine = vec![0u32; pages as usize];
                ram.page_digests(0, &mut mine, 2);
                let mut mismatched = 0u64;
                let mut first = None;
                for (i, (d, chunk)) in mine.iter().zip(buf.chunks_exact(4)).enumerate() {
                    let theirs = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    if *d != theirs {
                        mismatched += 1;
                        first.get_or_insert(i as u64 * PAGE_BYTES);
                    }
                }
                stats.verify_ms = t0.elapsed().as_secs_f64() * 1e3;
                stats.verified_pages = pages;
                if let Some(first_gpa) = first {
                    let e = TransportError::VerificationFailed {
                        mismatched_pages: mismatched,
                        pages,
                        first_gpa,
                    };
                    let _ = answer(&mut writer, false, &e.to_string());
                    return Err(e);
                }
                let t1 = Instant::now();
                let mut counters_at_resume = Vec::new();
                let resumed = machine.restore_state(&state).and_then(|()| {
                    counters_at_resume = machine.counters();
                    machine.start()
                });
                if let Err(e) = resumed {
                    let why = format!(
                        "cannot resume the guest: {}",
                        crate::migration::error_chain(&e)
                    );
                    let _ = answer(&mut writer, false, &why);
                    return Err(TransportError::Vm(why));
                }
                stats.resume_ms = t1.elapsed().as_secs_f64() * 1e3;
                // The guest runs here now; if the source cannot hear it, it still runs.
                let _ = answer(&mut writer, true, "memory verified, guest resumed");
                return Ok(Incoming {
                    machine,
                    counters_at_resume,
                    stats,
                });
            }
            Command::Abort => {
                let mut buf = vec![0u8; header.payload_bytes() as usize];
                read_full(
                    &mut reader,
                    &mut buf,
                    "source",
                    "receiving the abort reason",
                )?;
                return Err(TransportError::SourceAborted(
                    String::from_utf8_lossy(&buf).into_owned(),
                ));
            }
            Command::ResultOk | Command::ResultFailed => {
                return Err(TransportError::BadFrame(format!(
                    "{:?} is not sent by a source",
                    header.command
                )))
            }
        }
    }
}
