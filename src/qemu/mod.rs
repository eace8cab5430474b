//! Real QEMU in the loop: a running VM's dirty rate over QMP ([`dirty_rate`]).

pub mod dirty_rate;
