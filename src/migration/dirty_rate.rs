//! A guest's dirty rate at each throttle level: the throttle vs dirty-rate curve that decides
//! whether auto-converge can work (`autoconv profile`). Like QEMU's `calc-dirty-rate`, it
//! measures distinct pages newly dirtied per harvest period with dirty logging on; unlike it,
//! it holds the vCPU throttle at each level in turn (an autoconv measurement: QEMU has no
//! command for it).
//!
//! One routine for every backend: it needs only the core's [`Guest`] and [`Clock`], so the
//! simulator (virtual time) and a real KVM guest (the monotonic clock) are measured the same
//! way. Between harvests nothing is sent, so after each harvest the migration bitmap is
//! emptied as if every page had been sent: the next harvest then counts every page the guest
//! dirtied in the period, not only those that were clean in the bitmap (which is what a
//! migration's `dirty-pages-rate` approaches when the link keeps up).

use super::cpu_throttle::period_ns;
use super::env::{BackendError, CancelToken, Clock, Guest, PageBatch, PageCost};

/// How to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyRateOptions {
    /// Throttle levels (%), increasing; 0 = unthrottled.
    pub levels_pct: Vec<u32>,
    /// Time measured at each level, after settling (ms).
    pub hold_ms: u64,
    /// Harvest period (ms); QEMU rates are over periods of at least 1000 ms.
    pub interval_ms: u64,
}

impl Default for DirtyRateOptions {
    fn default() -> Self {
        Self {
            levels_pct: vec![0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99],
            hold_ms: 5000,
            interval_ms: 1000,
        }
    }
}

/// What one throttle level gave.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelDirtyRate {
    /// Throttle held (%).
    pub throttle_pct: u32,
    /// Distinct pages newly dirtied per second over the hold.
    pub dirty_pages_s: f64,
    /// Lowest rate of one harvest period.
    pub dirty_pages_s_min: f64,
    /// Highest rate of one harvest period.
    pub dirty_pages_s_max: f64,
    /// The guest's own page writes per second.
    pub guest_write_pages_s: f64,
    /// CPU share the vCPUs got (100 = unthrottled).
    pub guest_cpu_pct: f64,
    /// Time measured (ms), from the first harvest to the last.
    pub hold_ms: u64,
    /// Harvests in it.
    pub syncs: u64,
}

/// The whole measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct DirtyRates {
    /// One per level measured, in order (fewer than asked if cancelled).
    pub levels: Vec<LevelDirtyRate>,
    /// Page size of the guest (bytes).
    pub page_size_bytes: u64,
    /// Guest RAM (bytes).
    pub ram_bytes: u64,
    /// vCPUs of the guest.
    pub vcpus: u32,
    /// Harvest period the rates were measured over (ms).
    pub interval_ms: u64,
}

/// Hold the throttle at each level of `opts` with dirty logging on and measure the dirty rate.
/// The throttle is removed and dirty logging switched off on every exit path, errors and
/// cancellation included.
pub fn measure_dirty_rates(
    guest: &mut dyn Guest,
    clock: &mut dyn Clock,
    opts: &DirtyRateOptions,
    cancel: &CancelToken,
) -> Result<DirtyRates, BackendError> {
    let measured = measure_levels(guest, clock, opts, cancel);
    guest.set_throttle_pct(0);
    guest.stop_dirty_tracking();
    let levels = measured?;
    Ok(DirtyRates {
        levels,
        page_size_bytes: guest.page_size_bytes(),
        ram_bytes: guest.ram_bytes(),
        vcpus: guest.observe().vcpus,
        interval_ms: opts.interval_ms,
    })
}

fn measure_levels(
    guest: &mut dyn Guest,
    clock: &mut dyn Clock,
    opts: &DirtyRateOptions,
    cancel: &CancelToken,
) -> Result<Vec<LevelDirtyRate>, BackendError> {
    let mut batch = PageBatch::default();
    // A harvest: the pages newly dirty since the last one, then the bitmap emptied.
    let mut harvest = |guest: &mut dyn Guest| -> Result<u64, BackendError> {
        let newly = guest.sync_dirty_bitmap()?;
        batch.clear();
        guest.take_dirty_pages(u64::MAX, PageCost::QEMU_4K, &mut batch)?;
        Ok(newly)
    };
    guest.start_dirty_tracking()?;
    harvest(guest)?;
    let interval_ns = opts.interval_ms.max(1) * 1_000_000;
    let syncs = (opts.hold_ms / opts.interval_ms.max(1)).max(1);
    let mut levels = Vec::new();
    for &pct in &opts.levels_pct {
        if cancel.is_cancelled() {
            break;
        }
        let pct = pct.min(99);
        guest.set_throttle_pct(pct);
        // Settle: let a whole throttle cycle pass (990 ms asleep at 99%), at least one harvest
        // period, and start the hold on a fresh harvest.
        let settle_ns = if pct == 0 { 0 } else { period_ns(pct) };
        clock.sleep_until(clock.now_ns() + settle_ns.max(interval_ns));
        harvest(guest)?;
        let obs0 = guest.observe();
        let t0 = clock.now_ns();
        let mut last = t0;
        let (mut total_new, mut lo, mut hi) = (0u64, f64::INFINITY, 0.0f64);
        let mut done = 0u64;
        while done < syncs && !cancel.is_cancelled() {
            clock.sleep_until(clock.now_ns() + interval_ns);
            let now = clock.now_ns();
            let newly = harvest(guest)?;
            let rate = newly as f64 / (now.saturating_sub(last).max(1) as f64 / 1e9);
            lo = lo.min(rate);
            hi = hi.max(rate);
            total_new += newly;
            last = now;
            done += 1;
        }
        if done == 0 {
            break;
        }
        let obs1 = guest.observe();
        // The counters run to now (past the last harvest's own cost), so divide by that span.
        let secs = clock.now_ns().saturating_sub(t0).max(1) as f64 / 1e9;
        let slept_s = obs1
            .throttle_sleep_vcpu_ns
            .saturating_sub(obs0.throttle_sleep_vcpu_ns) as f64
            / 1e9;
        let held_ns = last.saturating_sub(t0).max(1);
        levels.push(LevelDirtyRate {
            throttle_pct: pct,
            dirty_pages_s: total_new as f64 / (held_ns as f64 / 1e9),
            dirty_pages_s_min: lo,
            dirty_pages_s_max: hi,
            guest_write_pages_s: obs1.pages_written.saturating_sub(obs0.pages_written) as f64
                / secs,
            guest_cpu_pct: 100.0 * (1.0 - slept_s / (f64::from(obs1.vcpus.max(1)) * secs)).max(0.0),
            hold_ms: held_ns / 1_000_000,
            syncs: done,
        });
    }
    Ok(levels)
}
