//! The deterministic simulator: a scenario's guest, a virtual clock and a simulated link,
//! migrated by the one core in [`crate::migration`].
//!
//! Results depend only on the scenario, its parameters and the seed: time is virtual, every
//! random draw comes from a seeded ChaCha stream per subsystem, and transcendental functions
//! come from a pure-Rust libm, so the same inputs give byte-identical outputs on any machine.

pub mod aggregate;
pub mod clock;
pub mod compile;
pub mod exact;
pub mod guest;
pub mod link;
pub mod model;
pub mod profile;
pub mod rng;
pub mod segments;
pub mod working_set_fit;

use crate::migration::{migrate, CancelToken, MigrationOutcome, Recorder};
use crate::scenario::{ModelKind, Scenario};
use aggregate::AggregateModel;
use clock::{SimClock, VirtualTime};
use exact::ExactModel;
use guest::{HostCosts, SimGuest};
use link::SimLink;
use model::RamModel;

/// Simulate one migration of `scenario` with `seed`, reporting samples and events to
/// `recorder`.
pub fn simulate<R: Recorder + ?Sized>(
    scenario: &Scenario,
    seed: u64,
    recorder: &mut R,
) -> MigrationOutcome {
    let layout = compile::layout(scenario);
    match scenario.guest.model {
        ModelKind::Aggregate => {
            simulate_with_model(scenario, AggregateModel::new(layout, seed), recorder).0
        }
        ModelKind::PageExact => {
            simulate_with_model(scenario, ExactModel::new(layout, seed), recorder).0
        }
    }
}

/// Like [`simulate`] with a model the caller built; the model comes back after the run so its
/// state (e.g. how many segments it holds) can be inspected.
pub fn simulate_with_model<M: RamModel, R: Recorder + ?Sized>(
    scenario: &Scenario,
    model: M,
    recorder: &mut R,
) -> (MigrationOutcome, M) {
    let time = VirtualTime::default();
    let mut clock = SimClock::new(time.clone(), (scenario.host.timer_slack_us * 1e3) as u64);
    let mut link = SimLink::new(
        time.clone(),
        scenario.link.bandwidth_bytes_s,
        scenario.link.page_header_bytes,
    );
    let layout = compile::layout(scenario);
    let layout_boundaries = layout.phase_boundaries_ns();
    let guest = SimGuest::new(
        model,
        time,
        scenario.guest.vcpus,
        crate::scenario::PAGE_SIZE_BYTES,
        scenario.guest.memory_bytes,
        layout_boundaries,
        HostCosts {
            sync_ns_per_gib: scenario.host.dirty_sync_us_per_gib * 1e3,
            device_state_bytes: scenario.guest.device_state_bytes,
        },
    );
    let mut guest = if scenario.host.dirty_ring_size > 0 {
        guest.with_dirty_rings(scenario.host.dirty_ring_size, layout.writers)
    } else {
        guest
    };
    guest.warm_up((scenario.guest.warmup_s * 1e9) as u64);
    let outcome = migrate(
        &scenario.migration,
        &mut clock,
        &mut guest,
        &mut link,
        recorder,
        &CancelToken::new(),
    );
    (outcome, guest.into_model())
}
