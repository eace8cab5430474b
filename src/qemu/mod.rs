//! Real QEMU in the loop: a QMP client ([`qmp`]). QEMU runs its own migration algorithm; this
//! module drives and records QEMU, it does not run autoconv's core.

pub mod qmp;
