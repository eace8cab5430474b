//! autoconv: understand and tune QEMU's auto-converge.
//!
//! * [`migration`]: the one pre-copy migration core (state machine, auto-converge, throttle).
//! * `sim`: the seeded synthetic guest, virtual clock and simulated link.
//! * `scenario`: scenario files and `--set` overrides.
//! * `report`: timeseries.csv / summary.json.
//! * `sweep`: policy grids run in parallel, ranked; shards and merges.
//! * `plot`: PNG/SVG pictures of runs, sweeps and profiles.
//! * `check`: baselines re-run, regressions reported.

#![deny(missing_docs)]

pub mod check;
pub mod cli;
pub mod migration;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod sweep;
pub mod units;
