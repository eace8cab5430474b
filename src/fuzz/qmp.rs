//! Fuzz targets: the QMP client as QEMU's socket would feed it (greeting, replies, events,
//! errors, one JSON object per line), and `record --from-log`'s reader of `query-migrate`
//! replies; both hand what they accept to the recorder that turns polls into a run's timeline
//! and outcome. Seeded with a real QEMU 7.2 migration's replies (`fuzz/seeds/qmp/`: a
//! completed and a cancelled one, recorded by `run --qemu`, thinned to the polls where the
//! status, the throttle or the sync count changed) and QMP sessions built from them.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use super::{Features, Target};
use crate::qemu::qmp::{QmpClient, QmpError};
use crate::qemu::record::parse_log;
use crate::qemu::recorder::{MigrationRecorder, MAX_SYNC_EVENTS_PER_POLL};

/// Most `query-migrate` a session input is asked (each needs one reply line).
const MAX_QUERIES: u64 = 64;

const DICTIONARY: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\n",
    "\"",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"return\": ",
    "\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}",
    "\"event\": \"MIGRATION\"",
    "\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}",
    "\"id\": ",
    "\"QMP\": ",
    "\"t\": ",
    "\"status\": ",
    "\"active\"",
    "\"completed\"",
    "\"cancelled\"",
    "\"failed\"",
    "\"postcopy-active\"",
    "\"ram\": ",
    "\"dirty-sync-count\": ",
    "\"cpu-throttle-percentage\": ",
    "\"total-time\": ",
    "\"downtime\": ",
    "\"setup-time\": ",
    "\"error-desc\": ",
    "\"mbps\": ",
    "\"dirty-limit-throttle-time-per-round\": ",
];

fn seeds(root: &Path, ext: &str) -> Vec<Vec<u8>> {
    super::scenario::read_dir_files(&root.join("fuzz/seeds/qmp"), ext)
}

/// The QMP client on a socket carrying the input.
pub struct QmpSession {
    seeds: Vec<Vec<u8>>,
}

impl QmpSession {
    /// Seeds: `root/fuzz/seeds/qmp/*.qmp`.
    pub fn new(root: &Path) -> QmpSession {
        QmpSession {
            seeds: seeds(root, "qmp"),
        }
    }
}

impl Target for QmpSession {
    fn name(&self) -> &'static str {
        "qmp"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    /// The whole input must fit a socket's buffer (it is written before the client reads).
    fn max_len(&self) -> usize {
        32 << 10
    }

    fn run(&mut self, input: &[u8], f: &mut Features) {
        let Ok((mut server, client_end)) = UnixStream::pair() else {
            f.add("no socket pair");
            return;
        };
        // QEMU's side: everything at once, then end of stream, so the client never waits.
        let _ = server.set_nonblocking(true);
        if server.write_all(input).is_err() {
            f.add("input larger than the socket buffer");
            return;
        }
        let _ = server.shutdown(std::net::Shutdown::Write);
        let mut client = match QmpClient::from_stream(
            client_end,
            Path::new("fuzz.qmp"),
            Duration::from_millis(200),
        ) {
            Ok(c) => c,
            Err(e) => {
                f.error("negotiation", &kind(&e), "");
                return;
            }
        };
        f.add("negotiated");
        let mut rec = MigrationRecorder::new(1);
        let mut polls = 0u64;
        let mut final_seen = false;
        while polls < MAX_QUERIES {
            match client.query_migrate() {
                Ok(info) => {
                    polls += 1;
                    f.add(&format!("status {}", info.status));
                    f.add(&format!("ram {}", info.ram.is_some()));
                    if rec.push(polls * 100, &info, None) {
                        final_seen = true;
                        f.add("final");
                        break;
                    }
                }
                Err(e) => {
                    f.error("query-migrate", &kind(&e), "");
                    break;
                }
            }
        }
        let events = client.take_events();
        f.add(&format!("events {}", events.len().min(4)));
        for e in &events {
            // QEMU's names, not whatever a mutant calls its events (one feature each would
            // grow the corpus without end).
            let name = match e.event.as_str() {
                n @ ("MIGRATION" | "MIGRATION_PASS" | "STOP" | "RESUME" | "SHUTDOWN") => n,
                _ => "other",
            };
            f.add(&format!("event {name}"));
        }
        if rec.started() {
            let (timeline, outcome) = rec.finish(None, None, None);
            f.add(&format!("outcome {} final {final_seen}", outcome.status));
            check_timeline(&timeline, polls);
        }
    }

    fn mutate(&self, input: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> bool {
        super::text::mutate(input, rng, DICTIONARY)
    }
}

/// A QMP error as a feature: its kind and what was wrong, never the line or QEMU's text
/// (every mutant would be new).
fn kind(e: &QmpError) -> String {
    match e {
        QmpError::Malformed { why, .. } => format!("malformed: {why}"),
        QmpError::NotQmp { .. } => "not QMP".into(),
        QmpError::Command { class, .. } => format!("command refused: {}", class.len().min(20)),
        QmpError::Timeout { .. } => "timeout".into(),
        QmpError::Closed { .. } => "closed".into(),
        QmpError::Io { error, .. } => format!("io {:?}", error.kind()),
        QmpError::Connect { .. } => "connect".into(),
    }
}

/// What any accepted replies must give: bounded events, times that never go backwards.
fn check_timeline(t: &crate::migration::Timeline, polls: u64) {
    assert!(
        t.events.len() as u64 <= polls * (MAX_SYNC_EVENTS_PER_POLL + 2),
        "{} events from {polls} polls",
        t.events.len()
    );
    assert!(
        t.samples.windows(2).all(|w| w[0].t_ms <= w[1].t_ms),
        "sample times go backwards"
    );
}

/// `record --from-log`: a log of `query-migrate` replies.
pub struct QmpLog {
    seeds: Vec<Vec<u8>>,
}

impl QmpLog {
    /// Seeds: `root/fuzz/seeds/qmp/*.jsonl`.
    pub fn new(root: &Path) -> QmpLog {
        QmpLog {
            seeds: seeds(root, "jsonl"),
        }
    }
}

impl Target for QmpLog {
    fn name(&self) -> &'static str {
        "from-log"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn run(&mut self, input: &[u8], f: &mut Features) {
        let Ok(text) = std::str::from_utf8(input) else {
            // `record` reads the log as UTF-8 and refuses anything else.
            f.add("not utf-8");
            return;
        };
        let path = Path::new("fuzz.jsonl");
        let rec = match parse_log(path, text, 2) {
            Ok(r) => r,
            Err(e) => {
                f.error("log", &e.to_string(), "");
                return;
            }
        };
        f.add("recorded");
        let o = &rec.outcome;
        f.add(&format!("outcome {}", o.status));
        f.add(&format!("reason {}", o.reason.is_some()));
        f.add(&format!("throttle steps {}", o.throttle_steps.len().min(8)));
        f.add(&format!("syncs {}", o.dirty_sync_count.min(20)));
        let polls = rec.polls_jsonl.lines().count() as u64;
        f.add(&format!("polls {}", polls.min(16)));
        check_timeline(&rec.timeline, polls);
        // What `record` writes as query-migrate.jsonl reads back as the same migration.
        let again = parse_log(path, &rec.polls_jsonl, 2)
            .unwrap_or_else(|e| panic!("the recorded polls do not read back: {e}"));
        let a = &again.outcome;
        assert_eq!(
            (
                a.status,
                a.dirty_sync_count,
                a.elapsed_ms,
                &a.throttle_steps
            ),
            (
                o.status,
                o.dirty_sync_count,
                o.elapsed_ms,
                &o.throttle_steps
            ),
            "the recorded polls read back as another migration"
        );
    }

    fn mutate(&self, input: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> bool {
        super::text::mutate(input, rng, DICTIONARY)
    }
}
