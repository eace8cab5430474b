//! autoconv: understand and tune QEMU's auto-converge.
//!
//! * [`migration`]: the one pre-copy migration core (state machine, auto-converge, throttle).
//! * `sim`: the seeded synthetic guest, virtual clock and simulated link.
//! * `scenario`: scenario files and `--set` overrides.
//! * `report`: timeseries.csv / summary.json.

#![deny(missing_docs)]

pub mod cli;
pub mod guest_image;
pub mod kvm;
pub mod migration;
pub mod transport;
pub mod units;
