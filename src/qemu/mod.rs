//! Real QEMU in the loop: a QMP client ([`qmp`]) and a running VM's dirty rate measured over it
//! ([`dirty_rate`]). QEMU runs its own migration algorithm; this module drives and records
//! QEMU, it does not run autoconv's core.

pub mod dirty_rate;
pub mod qmp;
