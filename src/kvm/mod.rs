//! The real-KVM backend: VMs built on the rust-vmm crates, driven by the same migration core as
//! the simulator.
//!
//! * [`vstate`]: every KVM ioctl (VM, vCPUs, dirty log, state save/restore).
//! * [`machine`]: a VM with its vCPU threads, COM1 and throttle timer.
//! * [`loader`]: multiboot v1 images, checked before any VM exists.
//! * [`source`]: the core's [`Guest`](crate::migration::Guest) on a running machine.
//! * [`host_cpu`]: host CPU time of the VMM's threads.
//! * [`progress`]: whether the guest did anything while it was migrated.

pub mod clock;
pub mod control;
pub mod dirty_limit;
pub mod dma;
pub mod error;
pub mod host_cpu;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod progress;
pub mod serial;
pub mod source;
pub mod throttle;
pub mod vstate;

pub use error::{ImageError, KvmError};
pub use loader::LoadPlan;
pub use machine::{BootPath, Machine, MachineConfig, MachineState, StatusArea, VcpuCounters};
pub use vstate::vm::DirtyLogMode;

/// Why KVM tests and commands cannot run here, or None if /dev/kvm is usable.
pub fn unavailable_reason() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/kvm is not usable: {e}")),
    }
}
