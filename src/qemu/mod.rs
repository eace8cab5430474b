//! Real QEMU in the loop. QEMU runs its own migration algorithm: this module drives and
//! records QEMU (the yardstick the core and the VMM are measured against); it does not run
//! autoconv's core.
//!
//! * [`qmp`]: a small QMP client and a validated reply parser.
//! * [`process`]: QEMU processes that never outlive autoconv.
//! * [`recorder`]: `query-migrate` polls turned into the report's timeline and outcome.
//! * [`run`]: `run --qemu` (a source and a destination QEMU on this host).
//! * [`record`]: `record --qmp`, `--virsh`, `--from-log` (someone else's QEMU).
//! * [`dirty_rate`]: a running VM's dirty rate measured over QMP (`profile --qmp`).
//! * [`measured_vm`]: that VM written as a profile and a scenario.

pub mod dirty_rate;
pub mod measured_vm;
pub mod process;
pub mod qmp;
pub mod record;
pub mod recorder;
pub mod run;
pub mod steer;
