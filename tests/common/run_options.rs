//! [`RunOptions`] for the KVM tests, so a test names only what it changes: a guest image
//! migrated in 64 MiB to a destination in this process, after 300 ms of warm-up and with
//! 300 ms watched afterwards, nothing injected, QEMU's default parameters. A test overrides
//! fields with struct update syntax: `RunOptions { warmup_ms: 100, ..local(image) }`.

use std::path::PathBuf;

use autoconv::kvm::{BootPath, MachineConfig};
use autoconv::migration::{MigrationConfig, ParamValue};
use autoconv::session::kvm::{Destination, RunOptions};

/// Guest memory of [`local`]'s machine.
pub const MEM_BYTES: u64 = 64 << 20;

/// `image` migrated to a destination in this process, with the defaults above.
pub fn local(image: PathBuf) -> RunOptions {
    RunOptions {
        image,
        machine: machine(MEM_BYTES),
        boot: BootPath::Auto,
        config: MigrationConfig::default(),
        destination: Destination::Local,
        warmup_ms: 300,
        after_ms: 300,
        drop_dirty_gfn: None,
        prefill: false,
        dma: None,
        tls: None,
        verify: Default::default(),
        timeouts: Default::default(),
    }
}

/// A machine of `mem_bytes` with as many vCPUs as the image asks for.
pub fn machine(mem_bytes: u64) -> MachineConfig {
    MachineConfig {
        mem_bytes,
        vcpus: 0,
        ..MachineConfig::default()
    }
}

/// QEMU's defaults with `sets` applied (parameter names as `migrate-set-parameters` takes them).
pub fn config(sets: &[(&str, ParamValue)]) -> MigrationConfig {
    let mut c = MigrationConfig::default();
    for (name, value) in sets {
        c.params
            .set(name, value)
            .unwrap_or_else(|e| panic!("test parameter {name}: {e}"));
    }
    c
}

/// QEMU's defaults but `max-bandwidth` 0 (no rate limit), as most transport tests want.
pub fn unlimited() -> MigrationConfig {
    config(&[("max-bandwidth", ParamValue::Int(0))])
}
