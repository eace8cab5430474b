//! Real QEMU in the loop: a QMP client ([`qmp`]), a running VM's dirty rate measured over it
//! ([`dirty_rate`]) and that VM written as a profile and a scenario ([`measured_vm`]). QEMU
//! runs its own migration algorithm; this module drives and records QEMU, it does not run
//! autoconv's core.

pub mod dirty_rate;
pub mod measured_vm;
pub mod qmp;
