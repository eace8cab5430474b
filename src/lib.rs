//! autoconv: understand and tune QEMU's auto-converge.
//!
//! * [`advise`]: the policy to set for a workload, as QMP/HMP/virsh settings.
//! * [`migration`]: the one pre-copy migration core (state machine, auto-converge, throttle).
//! * [`sim`]: the seeded synthetic guest, virtual clock and simulated link.
//! * [`kvm`]: a small VMM running real guests under KVM, and [`guest_image`] to build them.
//! * [`session`]: a whole migration put together: a backend's guest joined to the transport.
//! * [`transport`]: the framed TCP migration stream and the destination.
//! * [`scenario`]: scenario files and `--set` overrides.
//! * [`report`]: timeseries.csv, events.csv, summary.json, the profile CSV.
//! * [`sweep`]: policy grids run in parallel, ranked; shards and merges.
//! * [`plot`]: PNG/SVG pictures of runs, sweeps and profiles.
//! * [`qemu`]: real QEMU driven and recorded over QMP.
//! * [`check`]: baselines re-run, regressions reported; recorded runs vs simulations.

#![deny(missing_docs)]

pub mod advise;
pub mod check;
pub mod fuzz;
pub mod guest_image;
pub mod kvm;
pub mod migration;
pub mod monitor;
pub mod plot;
pub mod qemu;
pub mod report;
pub mod scenario;
pub mod session;
pub mod sim;
pub mod sweep;
pub mod transport;
pub mod units;
