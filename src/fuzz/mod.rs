//! Fuzzing on stable Rust: a seeded, structure-aware mutator with outcome feedback.
//!
//! No nightly toolchain (cargo-fuzz) and no AFL toolchain here, so the harness is ours: each
//! target turns an input into a set of *features* (which frames or fields it parsed, which
//! error it ended in, how far it got: page writes, verification, resume), and an input that
//! shows a feature not seen before joins the corpus. Mutations are generic (bit flips,
//! interesting integers, byte ranges inserted, deleted, duplicated, spliced from another
//! input) or the target's own, which know the format (frame headers, digests recomputed so a
//! changed page still verifies, TOML values, CSV fields, multiboot header fields). Everything
//! comes from one seed: a run is reproducible. A panic is a finding (the input is kept);
//! nothing else is.
//!
//! The coverage reported is the number of distinct features, not compiler-instrumented
//! branch coverage.

mod class;
pub mod monitor;
pub mod multiboot;
pub mod profile;
pub mod qmp;
pub mod scenario;
pub mod text;
pub mod wire;

pub use class::error_class;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What one execution showed, as labels (hashed into the seen set).
#[derive(Default)]
pub struct Features {
    ids: Vec<u64>,
}

impl Features {
    /// Record a feature.
    pub fn add(&mut self, label: &str) {
        if std::env::var_os("AUTOCONV_FUZZ_DEBUG").is_some() {
            eprintln!("feature: {label}");
        }
        self.ids.push(fnv(label.as_bytes()));
    }

    /// Record an error outcome as its kind ([`error_class`]: quoted text, numbers and what
    /// the message echoes of `input` blanked), so that one kind of error is one feature.
    /// `input` is the text the message may echo unquoted, "" if it quotes its echoes.
    pub fn error(&mut self, stage: &str, message: &str, input: &str) {
        self.add(&format!("{stage}: {}", error_class(message, input)));
    }
}

fn fnv(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for x in b {
        h ^= u64::from(*x);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// A fuzz target.
pub trait Target {
    /// Its name.
    fn name(&self) -> &'static str;
    /// Valid inputs to start from.
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// Largest input worth trying.
    fn max_len(&self) -> usize {
        1 << 16
    }
    /// Run one input (it must never panic: a panic is a finding).
    fn run(&mut self, input: &[u8], features: &mut Features);
    /// A mutation that knows the format; false if it did nothing.
    fn mutate(&self, _input: &mut Vec<u8>, _rng: &mut ChaCha8Rng) -> bool {
        false
    }
}

/// A fuzzing run's figures.
#[derive(Debug, Clone)]
pub struct Report {
    /// Target.
    pub target: &'static str,
    /// Executions (seeds included).
    pub execs: u64,
    /// Inputs kept for new features.
    pub corpus: usize,
    /// Distinct features reached.
    pub features: usize,
    /// Wall time.
    pub seconds: f64,
    /// The slowest execution.
    pub slowest: Duration,
    /// Panics: the input and the message.
    pub crashes: Vec<(Vec<u8>, String)>,
    /// The features reached (see [`feature_id`]).
    pub seen: HashSet<u64>,
}

/// Small integers and boundaries that parsers get wrong.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x1000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
];

fn pick(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

fn generic_mutation(input: &mut Vec<u8>, other: &[u8], rng: &mut ChaCha8Rng, max_len: usize) {
    let len = input.len();
    match pick(rng, 8) {
        0 if len > 0 => {
            let i = pick(rng, len);
            input[i] ^= 1 << pick(rng, 8);
        }
        1 if len > 0 => {
            let i = pick(rng, len);
            input[i] = rng.next_u64() as u8;
        }
        2 if len >= 8 => {
            let width = [1usize, 2, 4, 8][pick(rng, 4)];
            let i = pick(rng, len - width + 1);
            let v = INTERESTING[pick(rng, INTERESTING.len())].to_le_bytes();
            input[i..i + width].copy_from_slice(&v[..width]);
        }
        3 if len > 1 => {
            let a = pick(rng, len);
            let n = 1 + pick(rng, (len - a).min(64));
            input.drain(a..a + n);
        }
        4 if len > 0 && len < max_len => {
            let a = pick(rng, len);
            let n = 1 + pick(rng, (len - a).min(256));
            let chunk = input[a..a + n].to_vec();
            let at = pick(rng, len + 1);
            input.splice(at..at, chunk);
        }
        5 if len < max_len => {
            let at = pick(rng, len + 1);
            let n = 1 + pick(rng, 16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            input.splice(at..at, bytes);
        }
        6 if !other.is_empty() => {
            // Splice: this input's head, the other's tail.
            let a = pick(rng, len + 1);
            let b = pick(rng, other.len());
            input.truncate(a);
            input.extend_from_slice(&other[b..]);
        }
        _ if len > 0 => {
            input.truncate(pick(rng, len));
        }
        _ => input.push(rng.next_u64() as u8),
    }
    input.truncate(max_len);
}

fn run_one(
    target: &mut dyn Target,
    input: &[u8],
    seen: &mut HashSet<u64>,
    report: &mut Report,
) -> bool {
    let mut features = Features::default();
    let t0 = Instant::now();
    let r = catch_unwind(AssertUnwindSafe(|| target.run(input, &mut features)));
    report.slowest = report.slowest.max(t0.elapsed());
    report.execs += 1;
    if let Err(payload) = r {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        report.crashes.push((input.to_vec(), msg));
        return false;
    }
    let mut new = false;
    for id in features.ids {
        new |= seen.insert(id);
    }
    new
}

/// Run `target` for `execs` executions from `seed`. Panics of the target are caught (and
/// the panic message hook silenced meanwhile) and returned as crashes.
pub fn fuzz(target: &mut dyn Target, execs: u64, seed: u64) -> Report {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut report = Report {
        target: target.name(),
        execs: 0,
        corpus: 0,
        features: 0,
        seconds: 0.0,
        slowest: Duration::ZERO,
        crashes: Vec::new(),
        seen: HashSet::new(),
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let t0 = Instant::now();
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for s in target.seeds() {
        if run_one(target, &s, &mut seen, &mut report) || corpus.is_empty() {
            corpus.push(s);
        }
    }
    let max_len = target.max_len();
    let mut input = Vec::new();
    while report.execs < execs && !corpus.is_empty() {
        // Recent finds are tried more often: they are the frontier.
        let i = if rng.next_u64() % 2 == 0 {
            corpus.len() - 1 - pick(&mut rng, corpus.len().min(16))
        } else {
            pick(&mut rng, corpus.len())
        };
        input.clear();
        input.extend_from_slice(&corpus[i]);
        let other = corpus[pick(&mut rng, corpus.len())].clone();
        for _ in 0..1 + pick(&mut rng, 4) {
            if rng.next_u64() % 2 == 0 && target.mutate(&mut input, &mut rng) {
                continue;
            }
            generic_mutation(&mut input, &other, &mut rng, max_len);
        }
        if run_one(target, &input, &mut seen, &mut report) {
            corpus.push(input.clone());
        }
    }
    std::panic::set_hook(hook);
    report.seconds = t0.elapsed().as_secs_f64();
    report.corpus = corpus.len();
    report.features = seen.len();
    report.seen = seen;
    report
}

/// Every target, seeded from the repository at `root` (the crate's directory).
pub fn targets(root: &std::path::Path) -> Vec<Box<dyn Target>> {
    vec![
        Box::new(wire::Wire::new(root)),
        Box::new(multiboot::Multiboot::new(root)),
        Box::new(scenario::ScenarioText::new(root)),
        Box::new(profile::ProfileCsv::new(root)),
        Box::new(qmp::QmpSession::new(root)),
        Box::new(qmp::QmpLog::new(root)),
        Box::new(monitor::MonitorQmp::new()),
    ]
}

/// Hash of a label, as [`Features`] records it (for tests asking whether a feature was seen).
pub fn feature_id(label: &str) -> u64 {
    fnv(label.as_bytes())
}

/// Run one input and return its features' ids (tests).
pub fn features_of(target: &mut dyn Target, input: &[u8]) -> Vec<u64> {
    let mut f = Features::default();
    target.run(input, &mut f);
    f.ids
}
