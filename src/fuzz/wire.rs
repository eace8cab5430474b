//! Fuzz target: the destination's side of the migration stream after the handshake — the
//! Hello's checks, every frame header, page writes into guest memory, the device state,
//! the session-keyed verification, READY and the wait for COMMIT, and the resume decision —
//! against 64 KiB of guest memory without a VM (loading and starting are recorded, not done).
//!
//! Seeded with valid streams (digest and full verification) whose device state was recorded
//! from a real KVM guest (`fuzz/seeds/device-state.json`); the structure-aware mutations edit
//! frames and, when they change memory, can recompute the digests that travel with the pages
//! and those of COMPLETE, so mutated streams get past verification to the resume as often as
//! they fail it.

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Features, Target};
use crate::kvm::memory::keyed_page_digest;
use crate::kvm::memory::GuestRam;
use crate::kvm::MachineState;
use crate::transport::incoming::{check_hello, receive_stream, IncomingStats, Resume};
use crate::transport::protocol::{
    Command, DestinationFailure, Header, Hello, COMPLETE_DIGEST, COMPLETE_FULL, DIGEST_BYTES,
    HEADER_BYTES, HELLO_BYTES, NONCE_BYTES, PAGE_BYTES,
};
use crate::transport::verify::session_key;
use crate::transport::TransportError;

/// Guest memory of the harness.
pub const RAM_BYTES: u64 = 64 << 10;
/// The destination's nonce in every execution (the session key then depends on the input's
/// Hello only).
const DEST_NONCE: [u8; NONCE_BYTES] = [0xd5; NONCE_BYTES];

/// The stream decoder and destination.
pub struct Wire {
    ram: GuestRam,
    scratch: GuestRam,
    device_state: Option<Vec<u8>>,
}

/// The input as the destination reads it; what it answers goes to `out`.
struct Duplex<'a> {
    input: &'a [u8],
    out: Vec<u8>,
}

impl Read for Duplex<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Records what the destination would do with the VM.
#[derive(Default)]
struct Recorded {
    /// vCPUs of the state loaded.
    loaded_vcpus: Option<usize>,
    started: bool,
}

impl Resume for Recorded {
    fn load(&mut self, state: MachineState) -> Result<Duration, String> {
        self.loaded_vcpus = Some(state.vcpus.len());
        Ok(Duration::ZERO)
    }

    fn start(&mut self) -> Result<Duration, String> {
        assert!(self.loaded_vcpus.is_some(), "started before loading");
        self.started = true;
        Ok(Duration::ZERO)
    }
}

/// A frame as found in an input: where its header starts and its payload ends.
#[derive(Clone, Copy)]
struct Span {
    at: usize,
    end: usize,
    command: u8,
}

/// The frames of `input` after its Hello, read leniently (no range checks) until one cannot
/// be delimited.
fn frames(input: &[u8]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut at = HELLO_BYTES;
    while at + HEADER_BYTES <= input.len() && out.len() < 4096 {
        let h = &input[at..at + HEADER_BYTES];
        let count = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        let payload = match h[0] {
            1 => count * (PAGE_BYTES + DIGEST_BYTES),
            2 | 3 => 0,
            4 | 6..=8 => count,
            5 => count * DIGEST_BYTES,
            _ => break,
        };
        let end = (at + HEADER_BYTES).saturating_add(payload as usize);
        if end > input.len() {
            break;
        }
        out.push(Span {
            at,
            end,
            command: h[0],
        });
        at = end;
    }
    out
}

fn frame(command: Command, count: u32, arg: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = Header {
        command,
        count,
        arg,
    }
    .encode()
    .to_vec();
    b.extend_from_slice(payload);
    b
}

impl Wire {
    /// Seeds built around `root/fuzz/seeds/device-state.json`.
    pub fn new(root: &Path) -> Wire {
        Wire {
            ram: GuestRam::without_vm(RAM_BYTES).expect("64 KiB of memory"),
            scratch: GuestRam::without_vm(RAM_BYTES).expect("64 KiB of memory"),
            device_state: std::fs::read(root.join("fuzz/seeds/device-state.json")).ok(),
        }
    }

    /// Recompute the digests of every PAGES frame and of a full COMPLETE frame for the memory
    /// the input's frames build, keyed for the input's session (what a source that sent those
    /// pages would have sent).
    fn fix_digests(&self, input: &mut [u8]) -> bool {
        if input.len() < HELLO_BYTES {
            return false;
        }
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&input[32..48]);
        let key = session_key(&nonce, &DEST_NONCE, None);
        // SAFETY: `scratch` is this harness's own memory, no VM and no other user.
        let mem = unsafe { self.scratch.slice_mut(0, RAM_BYTES) }.expect("whole memory");
        mem.fill(0);
        let mut fixed = false;
        let mut stream = crc32fast::Hasher::new_with_initial(key);
        for s in frames(input) {
            let h = &input[s.at..s.at + HEADER_BYTES];
            if s.command != 5 {
                stream.update(h);
            }
            if s.command == 4 {
                stream.update(&input[s.at + HEADER_BYTES..s.end]);
            }
            let count = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
            let arg = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
            let body = s.at + HEADER_BYTES;
            let in_ram = arg
                .checked_add(count * PAGE_BYTES)
                .is_some_and(|e| e <= RAM_BYTES);
            match s.command {
                1 if in_ram => {
                    let a = arg as usize;
                    let data = (count * PAGE_BYTES) as usize;
                    mem[a..a + data].copy_from_slice(&input[body..body + data]);
                    for i in 0..count {
                        let at = a + (i * PAGE_BYTES) as usize;
                        let page = &mem[at..at + PAGE_BYTES as usize];
                        let d = keyed_page_digest(key, arg / PAGE_BYTES + i, page);
                        let to = body + data + (i * DIGEST_BYTES) as usize;
                        input[to..to + 4].copy_from_slice(&d.to_le_bytes());
                    }
                    fixed = true;
                }
                2 if in_ram => {
                    let a = arg as usize;
                    mem[a..a + (count * PAGE_BYTES) as usize].fill(0);
                }
                5 if arg == COMPLETE_DIGEST && s.end - body == 4 => {
                    let d = stream.clone().finalize();
                    input[body..body + 4].copy_from_slice(&d.to_le_bytes());
                    fixed = true;
                }
                5 if arg == COMPLETE_FULL
                    && (s.end - body) as u64 == RAM_BYTES / PAGE_BYTES * 4 =>
                {
                    let mut d = vec![0u32; (RAM_BYTES / PAGE_BYTES) as usize];
                    self.scratch.keyed_page_digests(key, &mut d, 1);
                    for (i, v) in d.iter().enumerate() {
                        input[body + 4 * i..body + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    fixed = true;
                }
                _ => {}
            }
        }
        fixed
    }

    fn stream(&self, tail: &[u8]) -> Vec<u8> {
        // The digests after the pages are left zero: fix_digests fills them in.
        let pages = |gfn: u64, n: u64| {
            let mut data: Vec<u8> = (0..n * PAGE_BYTES)
                .map(|i| ((i / 7) as u8) ^ (gfn as u8).wrapping_mul(31))
                .collect();
            data.resize((n * (PAGE_BYTES + DIGEST_BYTES)) as usize, 0);
            frame(Command::Pages, n as u32, gfn * PAGE_BYTES, &data)
        };
        let mut s = Hello {
            ram_bytes: RAM_BYTES,
            vcpus: 1,
            flags: 0,
            nonce: [0x5a; NONCE_BYTES],
        }
        .encode()
        .to_vec();
        s.extend(pages(0, 3));
        s.extend(frame(Command::ZeroPages, 5, 3 * PAGE_BYTES, &[]));
        s.extend(frame(Command::EndOfIteration, 0, 0, &[]));
        s.extend(pages(8, 8));
        s.extend(pages(1, 1));
        s.extend(frame(Command::EndOfIteration, 0, 0, &[]));
        s.extend_from_slice(tail);
        s
    }
}

impl Target for Wire {
    fn name(&self) -> &'static str {
        "wire"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let digests = frame(
            Command::Complete,
            (RAM_BYTES / PAGE_BYTES) as u32,
            COMPLETE_FULL,
            &vec![0u8; (RAM_BYTES / PAGE_BYTES * DIGEST_BYTES) as usize],
        );
        let digest_only = frame(Command::Complete, 1, COMPLETE_DIGEST, &[0; 4]);
        let commit = frame(Command::Commit, 0, 0, &[]);
        let abort = frame(Command::Abort, 4, 0, b"quit");
        let mut seeds = Vec::new();
        if let Some(state) = &self.device_state {
            let dev = frame(Command::DeviceState, state.len() as u32, 0, state);
            for complete in [&digests, &digest_only] {
                // Committed, aborted after READY, and silent after READY.
                for after in [&commit, &abort, &Vec::new()] {
                    let mut whole =
                        self.stream(&[dev.clone(), complete.clone(), after.clone()].concat());
                    self.fix_digests(&mut whole);
                    seeds.push(whole);
                }
            }
        }
        let mut no_state = self.stream(&digests);
        self.fix_digests(&mut no_state);
        seeds.push(no_state);
        seeds.push(self.stream(&abort));
        seeds
    }

    fn max_len(&self) -> usize {
        1 << 20
    }

    fn run(&mut self, input: &[u8], f: &mut Features) {
        let Some(hello) = input.get(..HELLO_BYTES) else {
            f.add("short hello");
            return;
        };
        let hello = match Hello::decode(hello.try_into().expect("48 bytes")) {
            Ok(h) => h,
            Err(e) => return f.error("hello", &e.to_string(), ""),
        };
        if let Err(e) = check_hello(&hello, Some(RAM_BYTES)) {
            return f.error("hello check", &e.to_string(), "");
        }
        if hello.ram_bytes != RAM_BYTES {
            // A real destination would build a VM of that size; this harness has one size.
            f.add("other memory size");
            return;
        }
        let spans = frames(input);
        let mut prev = 0u8;
        for s in &spans {
            f.add(&format!("frame {prev}->{}", s.command));
            prev = s.command;
        }
        // SAFETY: the harness's own memory, no VM and no other user.
        unsafe { self.ram.slice_mut(0, RAM_BYTES) }
            .expect("whole memory")
            .fill(0);
        let key = session_key(&hello.nonce, &DEST_NONCE, None);
        let mut stats = IncomingStats::default();
        let mut reader = BufReader::new(Duplex {
            input: &input[HELLO_BYTES..],
            out: Vec::new(),
        });
        let mut vm = Recorded::default();
        let r = receive_stream(&mut reader, &self.ram, key, &mut stats, &mut vm);
        match &r {
            Ok(()) => f.add("resumed"),
            Err(e) => {
                match e {
                    TransportError::VerificationFailed { .. } => f.add("verification failed"),
                    // The reason is the peer's text: one feature, whatever it says.
                    TransportError::SourceAborted(_) => f.add("aborted by the source"),
                    _ => f.error("stream", &e.to_string(), ""),
                }
            }
        }
        assert_eq!(
            vm.started,
            r.is_ok(),
            "resumed without success or the reverse"
        );
        if let Some(n) = vm.loaded_vcpus {
            f.add(&format!("loaded vcpus {}", n.min(4)));
        }
        let bucket = |n: u64| 64 - n.leading_zeros();
        f.add(&format!("normal pages {}", bucket(stats.normal_pages)));
        f.add(&format!("zero pages {}", bucket(stats.zero_pages)));
        f.add(&format!("iterations {}", bucket(stats.iterations)));
        if stats.verified_pages > 0 {
            f.add("verified");
        }
        // The answers, if any, must be what a source can read: READY only for a loaded
        // guest, then RESULT_OK exactly when the guest was started, never both verdicts.
        let out = &reader.get_ref().out;
        let mut answers = Vec::new();
        let mut at = 0;
        while at < out.len() {
            let h: [u8; HEADER_BYTES] = out[at..at + HEADER_BYTES]
                .try_into()
                .expect("a whole header");
            let v = Header::decode(&h, RAM_BYTES).expect("an answer decodes");
            let end = at + HEADER_BYTES + v.payload_bytes() as usize;
            answers.push((v, &out[at + HEADER_BYTES..end]));
            at = end;
        }
        assert_eq!(at, out.len(), "answers end on a frame");
        let (ready, verdict) = match answers.as_slice() {
            [] => (false, None),
            [(h, _)] if h.command == Command::Ready => (true, None),
            [(h, _), v] if h.command == Command::Ready => (true, Some(*v)),
            [v] => (false, Some(*v)),
            other => panic!("answers {other:?}"),
        };
        assert_eq!(
            ready,
            vm.loaded_vcpus.is_some(),
            "READY without a loaded guest"
        );
        let command = verdict.map(|(h, _)| h.command);
        assert!(matches!(
            command,
            None | Some(Command::ResultOk | Command::ResultFailed)
        ));
        assert_eq!(command == Some(Command::ResultOk), r.is_ok());
        if ready {
            f.add(&format!("after READY {command:?}"));
        }
        if let Some((v, payload)) = verdict.filter(|(h, _)| h.command == Command::ResultFailed) {
            // A failure verdict says its kind in the code the source reads, not only in
            // words: a verification failure arrives with its figures.
            let (failure, _) =
                DestinationFailure::decode(&v, payload).expect("the failure verdict decodes");
            if let Err(TransportError::VerificationFailed {
                mismatched_pages,
                pages,
                first_gpa,
            }) = &r
            {
                assert_eq!(
                    failure,
                    DestinationFailure::MemoryMismatch {
                        mismatched_pages: *mismatched_pages,
                        pages: *pages,
                        first_gpa: *first_gpa,
                    }
                );
            }
        }
    }

    fn mutate(&self, input: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> bool {
        let spans = frames(input);
        if spans.is_empty() {
            return false;
        }
        let s = spans[(rng.next_u64() % spans.len() as u64) as usize];
        match rng.next_u64() % 8 {
            0 => {
                // A header field: command, count or address.
                let field = rng.next_u64() % 3;
                let h = &mut input[s.at..s.at + HEADER_BYTES];
                match field {
                    0 => h[0] = 1 + (rng.next_u64() % 11) as u8,
                    1 => {
                        let v = match rng.next_u64() % 3 {
                            0 => rng.next_u64() % 20,
                            1 => u32::from_le_bytes([h[4], h[5], h[6], h[7]])
                                .wrapping_add(1)
                                .into(),
                            _ => rng.next_u64(),
                        } as u32;
                        h[4..8].copy_from_slice(&v.to_le_bytes());
                    }
                    _ => {
                        let v = match rng.next_u64() % 3 {
                            0 => (rng.next_u64() % 20) * PAGE_BYTES,
                            1 => rng.next_u64() % RAM_BYTES,
                            _ => u64::MAX - (rng.next_u64() % 3) * PAGE_BYTES,
                        };
                        h[8..16].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            1 => {
                input.drain(s.at..s.end);
            }
            2 => {
                let copy = input[s.at..s.end].to_vec();
                let t = spans[(rng.next_u64() % spans.len() as u64) as usize];
                input.splice(t.at..t.at, copy);
            }
            3 | 4 => {
                // Change memory a PAGES frame carries, then let the digests follow.
                let Some(p) = spans
                    .iter()
                    .find(|p| p.command == 1 && p.end > p.at + HEADER_BYTES)
                else {
                    return false;
                };
                let body = p.at + HEADER_BYTES;
                let i = body + (rng.next_u64() as usize % (p.end - body));
                input[i] = input[i].wrapping_add(1 + (rng.next_u64() % 255) as u8);
                self.fix_digests(input);
            }
            5 => {
                // Edit the device state (JSON) and keep its count right.
                let Some(d) = spans.iter().find(|p| p.command == 4) else {
                    return false;
                };
                let body = d.at + HEADER_BYTES;
                let mut text = input[body..d.end].to_vec();
                if !super::text::mutate(
                    &mut text,
                    rng,
                    &["null", "-1", "[]", "{}", "\"x\"", "1e400"],
                ) {
                    return false;
                }
                let n = text.len() as u32;
                input.splice(body..d.end, text);
                input[d.at + 4..d.at + 8].copy_from_slice(&n.to_le_bytes());
            }
            6 => {
                // A Hello field.
                let at = [8usize, 12, 16, 24, 28][(rng.next_u64() % 5) as usize];
                let v = super::INTERESTING[(rng.next_u64() % 14) as usize].to_le_bytes();
                let w = if at == 16 { 8 } else { 4 };
                input[at..at + w].copy_from_slice(&v[..w]);
            }
            _ => return self.fix_digests(input),
        }
        true
    }
}
