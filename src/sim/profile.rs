//! `autoconv profile` on a scenario: the core's dirty-rate routine
//! ([`crate::migration::dirty_rate`]) run on the scenario's guest model in virtual time,
//! without any migration. The same routine measures a real guest for `autoconv profile --kvm`.

use super::aggregate::AggregateModel;
use super::clock::{SimClock, VirtualTime};
use super::compile;
use super::exact::ExactModel;
use super::guest::{HostCosts, SimGuest};
use super::model::RamModel;
use crate::migration::dirty_rate::{measure_dirty_rates, DirtyRateOptions};
use crate::migration::{BackendError, CancelToken};
use crate::report::profile::Profile;
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
        let d = DirtyRateOptions::default();
        Self {
            levels_pct: d.levels_pct,
            hold_ms: d.hold_ms,
            interval_ms: d.interval_ms,
            source: String::new(),
        }
    }
}

/// Measure `scenario`'s guest model at every level of `opts`.
pub fn profile(
    scenario: &Scenario,
    seed: u64,
    opts: &ProfileOptions,
) -> Result<Profile, BackendError> {
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
) -> Result<Profile, BackendError> {
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
    // Nothing waits on a timer between harvests here: no timer slack.
    let mut clock = SimClock::new(time, 0);
    let rates = DirtyRateOptions {
        levels_pct: opts.levels_pct.clone(),
        hold_ms: opts.hold_ms,
        interval_ms: opts.interval_ms,
    };
    let measured = measure_dirty_rates(&mut guest, &mut clock, &rates, &CancelToken::new())?;
    Ok(Profile::from_dirty_rates(&measured, &opts.source, None))
}
