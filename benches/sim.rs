//! Simulator speed: one run of scenarios/heavy.toml, and the 99 x 99 grid of
//! cpu-throttle-initial x cpu-throttle-increment over scenarios/big.toml (a 64 GiB guest) on one
//! core and on all cores, each run simulated whole; and on one core as `autoconv sweep` runs it,
//! the runs going on from what they share ([`autoconv::sim::SharedStarts`]).
//!
//!   cargo bench --bench sim

use autoconv::scenario::Scenario;
use criterion::{criterion_group, criterion_main, Criterion};
use rayon::prelude::*;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path, &[]).expect("shipped scenario")
}

/// Every (initial, increment) pair in 1..=99 x 1..=99.
fn grid(base: &Scenario) -> Vec<Scenario> {
    let mut v = Vec::with_capacity(99 * 99);
    for initial in 1..=99 {
        for increment in 1..=99 {
            let mut s = base.clone();
            s.migration.params.cpu_throttle_initial = initial;
            s.migration.params.cpu_throttle_increment = increment;
            v.push(s);
        }
    }
    v
}

fn run_all(grid: &[Scenario]) -> u64 {
    grid.iter()
        .map(|s| autoconv::sim::simulate(s, s.seed, &mut ()).elapsed_ms)
        .sum()
}

fn run_all_parallel(grid: &[Scenario]) -> u64 {
    grid.par_iter()
        .map(|s| autoconv::sim::simulate(s, s.seed, &mut ()).elapsed_ms)
        .sum()
}

/// The grid as `autoconv sweep` runs it: from the shared start.
fn run_all_shared(grid: &[Scenario]) -> u64 {
    let first = &grid[0];
    let shared = autoconv::sim::SharedStarts::new(first, first.seed).expect("aggregate model");
    grid.iter()
        .map(|s| {
            shared
                .finish(s, s.seed)
                .expect("same but policy")
                .elapsed_ms
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let heavy = load("heavy");
    c.bench_function("heavy.toml one run", |b| {
        b.iter(|| {
            let mut timeline = autoconv::migration::Timeline::default();
            black_box(autoconv::sim::simulate(&heavy, 1, &mut timeline))
        })
    });

    let cells = grid(&load("big"));
    let mut g = c.benchmark_group("big.toml 99x99 initial x increment grid");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    g.bench_function("one core", |b| {
        b.iter(|| one.install(|| black_box(run_all(&cells))))
    });
    g.bench_function("one core, shared starts", |b| {
        b.iter(|| black_box(run_all_shared(&cells)))
    });
    g.bench_function(
        format!("all cores ({})", rayon::current_num_threads()),
        |b| b.iter(|| black_box(run_all_parallel(&cells))),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
