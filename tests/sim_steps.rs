//! A run's cost follows its events, not its 100 ms windows: the aggregate model's writers are
//! stepped from one event (dirty sync, throttle change, stop...) to the next, and whether
//! samples are recorded never moves a step, so a sweep (no samples) and `sim` (samples) give
//! the same run.

mod common;
use autoconv::migration::{Event, MigrationOutcome, PageBatch, PageCost, Recorder, Timeline};
use autoconv::scenario::Scenario;
use autoconv::sim::aggregate::AggregateModel;
use autoconv::sim::model::{RamModel, Step};
use autoconv::sim::{compile, simulate_with_model};
use common::*;

/// The aggregate model, counting the steps its writers are given.
#[derive(Clone)]
struct Counting {
    inner: AggregateModel,
    steps: u64,
}

impl RamModel for Counting {
    fn start_logging(&mut self) {
        self.inner.start_logging()
    }
    fn stop_logging(&mut self) {
        self.inner.stop_logging()
    }
    fn sync(&mut self) -> u64 {
        self.inner.sync()
    }
    fn dirty_pages(&self) -> u64 {
        self.inner.dirty_pages()
    }
    fn take(&mut self, max_bytes: u64, cost: PageCost, batch: &mut PageBatch) {
        self.inner.take(max_bytes, cost, batch)
    }
    fn run_writers(&mut self, step: Step) -> f64 {
        self.steps += 1;
        self.inner.run_writers(step)
    }
    fn set_run_shares(&mut self, shares: &[f64]) {
        self.inner.set_run_shares(shares)
    }
    fn cpu_writes(&self) -> &[f64] {
        self.inner.cpu_writes()
    }
    fn take_ignores_writes(&self) -> bool {
        self.inner.take_ignores_writes()
    }
    fn lookahead(&self) -> Option<Self> {
        // A look-ahead copy's steps are not the run's: they are not counted back.
        self.inner.lookahead().map(|inner| Counting {
            inner,
            steps: self.steps,
        })
    }
}

/// Throttle sets seen (each is an event the guest must be stepped to).
#[derive(Default)]
struct EventsOnly {
    throttle_sets: u64,
    dirty_syncs: u64,
}

impl Recorder for EventsOnly {
    fn event(&mut self, event: &Event) {
        match event {
            Event::ThrottleSet { .. } => self.throttle_sets += 1,
            Event::DirtySync { .. } => self.dirty_syncs += 1,
            _ => {}
        }
    }
    fn wants_samples(&self) -> bool {
        false
    }
}

fn counted<R: Recorder>(s: &Scenario, recorder: &mut R) -> (MigrationOutcome, u64) {
    let model = Counting {
        inner: AggregateModel::new(compile::layout(s), s.seed),
        steps: 0,
    };
    let (o, m) = simulate_with_model(s, model, recorder);
    (o, m.steps)
}

#[test]
fn steps_follow_events_not_windows() {
    // big.toml: 64 GiB, ~860 windows of 100 ms; its writers are stepped at each sync and
    // throttle set (plus start, stop-and-copy and the end), never per window.
    let s = shipped("big", &[]);
    let mut events = EventsOnly::default();
    let (o, steps) = counted(&s, &mut events);
    let windows = o.elapsed_ms / 100;
    assert!(windows > 500, "{o:?}");
    let bound = events.dirty_syncs + events.throttle_sets + 5;
    assert!(
        steps <= bound,
        "{steps} steps for {} syncs and {} throttle sets ({windows} windows)",
        events.dirty_syncs,
        events.throttle_sets
    );
    assert!(steps >= events.dirty_syncs, "{steps} steps");
}

#[test]
fn recording_samples_never_changes_a_run() {
    // Samples observe the guest on a look-ahead copy: with or without them, the same steps
    // and the same outcome, to the byte. Shipped scenarios cover random, sequential, hot/cold,
    // DMA, calibrated and dirty-limit writers.
    let cases: [(&str, &[&str]); 6] = [
        ("heavy", &[]),
        ("hotcold", &["autoconv.policy=predictive"]),
        ("dma", &[]),
        ("calibrated-kvm-sequential", &[]),
        ("one-hot-writer", &["auto-converge=off", "dirty-limit=on"]),
        ("light", &[]),
    ];
    for (name, sets) in cases {
        let s = shipped(name, sets);
        let mut timeline = Timeline::default();
        let (with, steps_with) = counted(&s, &mut timeline);
        let (without, steps_without) = counted(&s, &mut ());
        assert_eq!(with, without, "{name} {sets:?}");
        assert_eq!(steps_with, steps_without, "{name} {sets:?}");
        // One sample per window (a window is 100 ms plus the sleep's timer slack).
        assert!(
            timeline.samples.len() as u64 >= with.elapsed_ms / 110,
            "{name}"
        );
        // And the counting wrapper is the shipped model: the same outcome as `simulate`.
        assert_eq!(
            with,
            autoconv::sim::simulate(&s, s.seed, &mut ()),
            "{name} {sets:?}"
        );
    }
}
