//! A real guest's throttle vs dirty-rate curve, measured on a running machine (the
//! measurement of `autoconv profile --kvm`).

use std::time::{Duration, Instant};

use crate::migration::CancelToken;

/// One row of `profile --kvm`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProfileRow {
    /// Throttle held.
    pub throttle_pct: u32,
    /// Distinct pages newly dirtied per second (harvested every sync interval).
    pub dirty_pages_per_s: f64,
    /// The same in bytes.
    pub dirty_bytes_per_s: f64,
    /// The guest's own page writes per second.
    pub guest_write_pages_per_s: f64,
    /// CPU share the vCPUs got (100 = unthrottled).
    pub guest_cpu_pct: f64,
    /// Measured time.
    pub hold_ms: u64,
    /// Harvests in it.
    pub syncs: u64,
}

/// Measure the throttle vs dirty-rate curve of a guest (library entry point of
/// `autoconv profile --kvm`).
pub fn profile_machine(
    machine: &mut crate::kvm::Machine,
    levels: &[u32],
    hold_ms: u64,
    sync_interval_ms: u64,
    cancel: &CancelToken,
) -> anyhow::Result<Vec<ProfileRow>> {
    use crate::migration::cpu_throttle::period_ns;
    machine.vm_mut().set_dirty_logging(true)?;
    let mut rows = Vec::new();
    for &pct in levels {
        if cancel.is_cancelled() {
            break;
        }
        machine.set_throttle_pct(pct);
        // Settle for one throttle period (capped) so the level is in force, then start clean.
        let settle = if pct == 0 {
            100
        } else {
            (period_ns(pct) / 1_000_000).min(1000)
        };
        cancel.wait_timeout(Duration::from_millis(settle));
        machine.vm().get_dirty_log()?;
        machine.ram().take_host_dirty();
        let w0 = machine.pages_written();
        let s0 = machine.throttle_slept_ns();
        let t0 = Instant::now();
        let mut dirty = 0u64;
        let mut syncs = 0u64;
        while (t0.elapsed().as_millis() as u64) < hold_ms && !cancel.is_cancelled() {
            let left = hold_ms - t0.elapsed().as_millis() as u64;
            cancel.wait_timeout(Duration::from_millis(sync_interval_ms.min(left).max(1)));
            let log = machine.vm().get_dirty_log()?;
            // Pages a device wrote from the host count too: a migration must send them.
            let host = machine.ram().take_host_dirty();
            dirty += log
                .iter()
                .zip(host.iter().chain(std::iter::repeat(&0)))
                .map(|(k, h)| u64::from((k | h).count_ones()))
                .sum::<u64>();
            syncs += 1;
        }
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        let slept = machine.throttle_slept_ns() - s0;
        let vcpus = f64::from(machine.vcpu_count());
        rows.push(ProfileRow {
            throttle_pct: pct,
            dirty_pages_per_s: dirty as f64 / secs,
            dirty_bytes_per_s: dirty as f64 * 4096.0 / secs,
            guest_write_pages_per_s: (machine.pages_written() - w0) as f64 / secs,
            guest_cpu_pct: (100.0 * (1.0 - slept as f64 / 1e9 / (secs * vcpus))).clamp(0.0, 100.0),
            hold_ms: (secs * 1e3) as u64,
            syncs,
        });
    }
    machine.set_throttle_pct(0);
    machine.vm_mut().set_dirty_logging(false)?;
    Ok(rows)
}
