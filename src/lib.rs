//! autoconv: understand and tune QEMU's auto-converge.
//!
//! * [`migration`]: the one pre-copy migration core (state machine, auto-converge, throttle).
//! * [`sim`]: the seeded synthetic guest, virtual clock and simulated link.
//! * [`kvm`]: a small VMM running real guests under KVM, and [`guest_image`] to build them.
//! * [`transport`]: the framed TCP migration stream and the destination.
//! * [`scenario`]: scenario files and `--set` overrides.
//! * [`report`]: timeseries.csv, events.csv, summary.json.

#![deny(missing_docs)]

pub mod cli;
pub mod guest_image;
pub mod kvm;
pub mod migration;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod transport;
pub mod units;
