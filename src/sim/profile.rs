//! `autoconv profile` on a scenario: hold the throttle at each level with dirty logging on and
//! measure the model's dirty rate as QEMU would (pages newly dirty per harvest period), without
//! any migration. The same numbers `autoconv profile --kvm` takes from a real guest.
//!
//! Between harvests nothing is sent, so after each harvest the migration bitmap is emptied as
//! if every page had been sent: the next harvest then counts every page the guest dirtied in
//! the period, not only those that were clean in the bitmap (which is what a migration's
//! `dirty-pages-rate` approaches when the link keeps up).

use super::aggregate::AggregateModel;
use super::clock::VirtualTime;
use super::compile;
use super::exact::ExactModel;
use super::guest::{HostCosts, SimGuest};
use super::model::RamModel;
use crate::migration::cpu_throttle::period_ns;
use crate::migration::{Guest, PageBatch, PageCost};
use crate::report::profile::{Profile, ProfileRow};
use crate::scenario::{ModelKind, Scenario, PAGE_SIZE_BYTES};

/// How to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileOptions {
    /// Throttle levels (%), increasing; 0 = unthrottled.
    pub levels_pct: Vec<u32>,
    /// Time measured at each level, after settling (ms).
    pub hold_ms: u64,
    /// Harvest period (ms); QEMU rates are over periods of at least 1000 ms.
    pub interval_ms: u64,
    /// Written to the `source` column.
    pub source: String,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            levels_pct: vec![0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99],
            hold_ms: 5000,
            interval_ms: 1000,
            source: String::new(),
        }
    }
}

/// Measure `scenario`'s guest model at every level of `opts`.
pub fn profile(scenario: &Scenario, seed: u64, opts: &ProfileOptions) -> Profile {
    let layout = compile::layout(scenario);
    match scenario.guest.model {
        ModelKind::Aggregate => {
            profile_with_model(scenario, AggregateModel::new(layout, seed), opts)
        }
        ModelKind::PageExact => profile_with_model(scenario, ExactModel::new(layout, seed), opts),
    }
}

/// [`profile`] with a model the caller built.
pub fn profile_with_model<M: RamModel>(
    scenario: &Scenario,
    model: M,
    opts: &ProfileOptions,
) -> Profile {
    let time = VirtualTime::default();
    let mut guest = SimGuest::new(
        model,
        time.clone(),
        scenario.guest.vcpus,
        PAGE_SIZE_BYTES,
        scenario.guest.memory_bytes,
        compile::layout(scenario).phase_boundaries_ns(),
        HostCosts {
            sync_ns_per_gib: scenario.host.dirty_sync_us_per_gib * 1e3,
            device_state_bytes: scenario.guest.device_state_bytes,
        },
    );
    let mut batch = PageBatch::default();
    // Errors cannot happen in the simulator's guest; a failed harvest would read as 0.
    let mut harvest = |guest: &mut SimGuest<M>| -> u64 {
        let newly = guest.sync_dirty_bitmap().unwrap_or(0);
        batch.clear();
        let _ = guest.take_dirty_pages(u64::MAX, PageCost::QEMU_4K, &mut batch);
        newly
    };
    let _ = guest.start_dirty_tracking();
    harvest(&mut guest);
    let interval_ns = opts.interval_ms.max(1) * 1_000_000;
    let syncs = (opts.hold_ms / opts.interval_ms.max(1)).max(1);
    let mut rows = Vec::new();
    for &pct in &opts.levels_pct {
        guest.set_throttle_pct(pct.min(99));
        // Settle: let a whole throttle cycle pass (990 ms asleep at 99%) and start the hold
        // on a fresh harvest.
        let settle_ns = if pct == 0 { 0 } else { period_ns(pct.min(99)) };
        time.advance_ns(settle_ns.max(interval_ns));
        harvest(&mut guest);
        let obs0 = guest.observe();
        let t0 = time.now_ns();
        let mut last = t0;
        let (mut total_new, mut lo, mut hi) = (0u64, f64::INFINITY, 0.0f64);
        for _ in 0..syncs {
            time.advance_ns(interval_ns);
            let now = time.now_ns();
            let newly = harvest(&mut guest);
            let rate = newly as f64 / ((now - last) as f64 / 1e9);
            lo = lo.min(rate);
            hi = hi.max(rate);
            total_new += newly;
            last = now;
        }
        let obs1 = guest.observe();
        // The counters run to now (past the last harvest's own cost), so divide by that span.
        let secs = (time.now_ns() - t0) as f64 / 1e9;
        let slept_s = (obs1.throttle_sleep_vcpu_ns - obs0.throttle_sleep_vcpu_ns) as f64 / 1e9;
        rows.push(ProfileRow {
            throttle_pct: pct,
            dirty_pages_s: total_new as f64 / ((last - t0) as f64 / 1e9),
            interval_ms: opts.interval_ms,
            dirty_pages_s_min: Some(lo),
            dirty_pages_s_max: Some(hi),
            guest_write_pages_s: Some((obs1.pages_written - obs0.pages_written) as f64 / secs),
            guest_cpu_pct: Some(
                100.0 * (1.0 - slept_s / (f64::from(scenario.guest.vcpus) * secs)).max(0.0),
            ),
            hold_ms: Some((last - t0) / 1_000_000),
            syncs: Some(syncs),
            page_size_bytes: Some(PAGE_SIZE_BYTES),
            memory_bytes: Some(scenario.guest.memory_bytes),
            vcpus: Some(scenario.guest.vcpus),
            source: Some(opts.source.clone()),
            // A model runs the same on every host.
            host_cpu_model: None,
            host_cores: None,
        });
    }
    guest.set_throttle_pct(0);
    guest.stop_dirty_tracking();
    Profile { rows }
}
