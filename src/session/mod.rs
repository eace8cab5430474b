//! Sessions: a whole migration put together from the pieces below it. A session boots a
//! backend's guest, joins it to the transport, runs the one core in [`crate::migration`] and
//! checks both sides afterwards; the backends and the transport know nothing of each other's
//! orchestration.
//!
//! * [`kvm`]: a real-KVM migration as `autoconv run --kvm` performs it.
//! * [`kvm_profile`]: a real guest's throttle vs dirty-rate curve (`autoconv profile --kvm`).

pub mod kvm;
pub mod kvm_profile;
