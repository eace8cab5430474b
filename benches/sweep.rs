//! Sweep throughput in runs per second, on one core and on all cores.
//!
//!   cargo bench --bench sweep
//!
//! Each iteration is a whole `autoconv sweep` as the command does it: check the grid (build
//! every combination), then simulate every run on a rayon pool, rows collected in order.
//! Criterion reports the throughput in runs (elements) per second.

use autoconv::scenario::ScenarioSource;
use autoconv::sweep::{Axis, Plan, Seeds, SweepSpec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::time::Duration;

fn sweep(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = [
        // The classic policy grid on a 16 GiB guest: 9 x 5 = 45 runs of 20-120 s migrations.
        (
            "heavy 9x5",
            "scenarios/heavy.toml",
            vec![
                "cpu-throttle-initial=10:90:10",
                "cpu-throttle-increment=10:50:10",
            ],
        ),
        // A 64 GiB guest: 5 x 5 = 25 runs.
        (
            "big 5x5",
            "scenarios/big.toml",
            vec![
                "cpu-throttle-initial=10:90:20",
                "cpu-throttle-increment=10:90:20",
            ],
        ),
    ];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, file, grid) in cases {
        let source = ScenarioSource::load(&root.join(file)).expect("shipped scenario");
        let axes: Vec<Axis> = grid.iter().map(|g| Axis::parse(g).unwrap()).collect();
        let runs = axes.iter().map(|a| a.values.len()).product::<usize>();
        let mut group = c.benchmark_group(format!("sweep {name}"));
        group
            .throughput(Throughput::Elements(runs as u64))
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        for threads in [1, cores] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let label = if threads == 1 {
                "1 core".to_string()
            } else {
                format!("{threads} cores")
            };
            group.bench_function(label, |b| {
                b.iter(|| {
                    pool.install(|| {
                        let spec = SweepSpec {
                            sets: vec![],
                            axes: axes.clone(),
                            seeds: Seeds::Scenario,
                            shard: None,
                        };
                        let plan = Plan::new(source.clone(), spec).unwrap();
                        let table = plan.run(&|| {}).unwrap();
                        assert_eq!(table.rows.len(), runs);
                        table
                    })
                })
            });
            if threads == cores {
                break;
            }
        }
        group.finish();
    }
}

criterion_group!(benches, sweep);
criterion_main!(benches);
