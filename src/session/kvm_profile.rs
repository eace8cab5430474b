//! A real guest's throttle vs dirty-rate curve, as `autoconv profile --kvm` measures it: boot
//! the image, then measure the running machine with the core's dirty-rate routine
//! ([`crate::migration::dirty_rate`]) through the same [`Guest`](crate::migration::Guest) and
//! [`Clock`](crate::migration::Clock) a migration uses.

use std::path::Path;

use crate::kvm::clock::MonotonicClock;
use crate::kvm::dma::DmaConfig;
use crate::kvm::source::KvmSource;
use crate::kvm::{BootPath, KvmError, LoadPlan, Machine, MachineConfig};
use crate::migration::dirty_rate::{measure_dirty_rates, DirtyRateOptions, DirtyRates};
use crate::migration::{BackendError, CancelToken};

/// Boot `image` and start its vCPUs (vCPUs default to the image's, 1 for other kernels).
/// Returns the machine and what the image says about itself (autoconv images).
pub fn start_guest(
    image: &Path,
    mut machine: MachineConfig,
    boot: BootPath,
    dma: Option<DmaConfig>,
) -> Result<(Machine, Option<String>), KvmError> {
    let plan = LoadPlan::from_file(image, machine.mem_bytes)?;
    if machine.vcpus == 0 {
        machine.vcpus = plan.info.as_ref().map_or(1, |i| i.vcpus);
    }
    let mut m = Machine::boot(machine, &plan, boot)?;
    m.set_dma(dma)?;
    m.start()?;
    Ok((m, plan.info.as_ref().map(|i| i.to_string())))
}

/// Measure a running machine's dirty rate at every level of `opts`. The throttle and dirty
/// logging are off again on every exit path; a cancellation ends the measurement early with
/// the levels measured so far.
pub fn profile_machine(
    machine: &mut Machine,
    opts: &DirtyRateOptions,
    cancel: &CancelToken,
) -> Result<DirtyRates, BackendError> {
    let mut clock = MonotonicClock::new(cancel.clone());
    let mut source = KvmSource::new(machine);
    measure_dirty_rates(&mut source, &mut clock, opts, cancel)
}
