//! A QEMU-style monitor in front of a real-KVM run (`autoconv run --kvm IMAGE --qmp unix:PATH`,
//! `--monitor stdio`): the guest runs until a client says `migrate`, then the one migration
//! core migrates it over the usual transport while the client polls `query-migrate`.
//!
//! It serves the QMP and HMP subset a migration needs, in QEMU 7.2's shapes and wording; what
//! autoconv does not model is refused by name, never silently ignored. One file per job:
//! [`state`] holds what the commands read and change, [`qmp`] and [`hmp`] speak the two
//! protocols, [`query`] renders QEMU's figures, [`frame`] finds where a QMP input ends, [`socket`]
//! listens on the unix socket.

pub mod frame;
pub mod hmp;
pub mod qmp;
pub mod query;
pub mod socket;
pub mod state;

pub use state::{Monitor, MonitorGate};
