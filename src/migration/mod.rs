//! The migration core: QEMU's pre-copy state machine, auto-converge policy and throttle engine.
//!
//! It knows nothing of KVM or of the simulator's model. Time, the guest and the link are
//! injected through the traits in [`env`]; the same code drives both backends. [`dirty_rate`]
//! measures a guest's throttle vs dirty-rate curve over the same traits.

pub mod auto_converge;
pub mod bitmap;
pub mod cpu_throttle;
pub mod dirty_limit;
pub mod dirty_rate;
pub mod env;
pub mod failure;
pub mod params;
pub mod policy;
pub mod precopy;
pub mod report;
pub mod vocabulary;

pub use env::{
    BackendError, CancelToken, Clock, Guest, GuestObservation, HandoverUnconfirmed, Link,
    LinkStalled, PageBatch, PageCost, PageRef,
};
pub use failure::{Failure, FailureKind};
pub use params::{
    AutoconvSettings, MigrationParameters, ParamValue, ParameterError, Policy, QemuVersion,
};
pub use precopy::{
    error_chain, migrate, migrate_until, resume, MigrationConfig, PauseAt, Paused, PolicyPicks,
    Progress,
};
pub use report::{
    Event, MigrationOutcome, MigrationStatus, Recorder, Sample, SyncReason, Timeline,
};
