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

use crate::migration::{
    migrate, migrate_until, resume, CancelToken, Clock, MigrationOutcome, PauseAt, Paused,
    Progress, Recorder,
};
use crate::scenario::{ModelKind, Scenario};
use aggregate::AggregateModel;
use clock::{SimClock, VirtualTime};
use exact::ExactModel;
use guest::{HostCosts, SimGuest};
use link::SimLink;
use model::{RamModel, Writer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Simulate one migration of `scenario` with `seed`, reporting samples and events to
/// `recorder`.
pub fn simulate<R: Recorder + ?Sized>(
    scenario: &Scenario,
    seed: u64,
    recorder: &mut R,
) -> MigrationOutcome {
    let layout = compile::layout(scenario);
    let boundaries = layout.phase_boundaries_ns();
    let writers = ring_writers(scenario, &layout);
    match scenario.guest.model {
        ModelKind::Aggregate => {
            let model = AggregateModel::new(layout, seed);
            Sim::new(scenario, model, boundaries, writers).migrate(scenario, recorder)
        }
        ModelKind::PageExact => {
            let model = ExactModel::new(layout, seed);
            Sim::new(scenario, model, boundaries, writers).migrate(scenario, recorder)
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
    let layout = compile::layout(scenario);
    let mut sim = Sim::new(
        scenario,
        model,
        layout.phase_boundaries_ns(),
        layout.writers,
    );
    let outcome = sim.migrate(scenario, recorder);
    (outcome, sim.guest.into_model())
}

/// The writers the guest's dirty rings need (none without rings: no copy).
fn ring_writers(scenario: &Scenario, layout: &model::Layout) -> Vec<Writer> {
    if scenario.host.dirty_ring_size > 0 {
        layout.writers.clone()
    } else {
        Vec::new()
    }
}

/// A simulation's backends: the migration thread's clock, the guest and the link, on one
/// virtual time.
struct Sim<M> {
    clock: SimClock,
    guest: SimGuest<M>,
    link: SimLink,
}

impl<M: RamModel> Sim<M> {
    /// `scenario`'s backends around `model`, warmed up: `boundaries` and `writers` are its
    /// layout's.
    fn new(scenario: &Scenario, model: M, boundaries: Vec<u64>, writers: Vec<Writer>) -> Self {
        let time = VirtualTime::default();
        let clock = SimClock::new(time.clone(), (scenario.host.timer_slack_us * 1e3) as u64);
        let link = SimLink::new(
            time.clone(),
            scenario.link.bandwidth_bytes_s,
            scenario.link.page_header_bytes,
        );
        let guest = SimGuest::new(
            model,
            time,
            scenario.guest.vcpus,
            crate::scenario::PAGE_SIZE_BYTES,
            scenario.guest.memory_bytes,
            boundaries,
            HostCosts {
                sync_ns_per_gib: scenario.host.dirty_sync_us_per_gib * 1e3,
                device_state_bytes: scenario.guest.device_state_bytes,
            },
        );
        let mut guest = if scenario.host.dirty_ring_size > 0 {
            guest.with_dirty_rings(scenario.host.dirty_ring_size, writers)
        } else {
            guest
        };
        guest.warm_up((scenario.guest.warmup_s * 1e9) as u64);
        Self { clock, guest, link }
    }

    fn migrate<R: Recorder + ?Sized>(
        &mut self,
        scenario: &Scenario,
        recorder: &mut R,
    ) -> MigrationOutcome {
        migrate(
            &scenario.migration,
            &mut self.clock,
            &mut self.guest,
            &mut self.link,
            recorder,
            &CancelToken::new(),
        )
    }

    /// A copy as it stands, on a time of its own.
    fn fork(&self) -> Self
    where
        M: Clone,
    {
        let time = VirtualTime::at(self.clock.now_ns());
        Self {
            clock: self.clock.with_time(time.clone()),
            link: self.link.with_time(time.clone()),
            guest: self.guest.with_time(time),
        }
    }
}

/// Where the runs of a policy sweep part ways.
///
/// A grid over the parameters only the throttle policy reads
/// ([`crate::migration::MigrationParameters::policy_only_from`]) runs migrations that stand
/// exactly alike until the policy first picks a percentage, and after that alike for as long
/// as they picked the same percentages. So one scenario's migration is simulated up to the
/// turn of the policy's first pick and paused there, and each run goes on from a copy of that;
/// where two runs have picked the same so far, the second one to get there also pauses a copy
/// before the next pick's turn, and every later run with those picks jumps to it. Each run's
/// outcome is the very one [`simulate`] gives (`shared_starts_give_each_point_what_simulate_gives_it`
/// compares them), without simulating the stretches it shares with others again.
pub struct SharedStarts {
    scenario: Scenario,
    seed: u64,
    root: Fork,
    /// Later forks, by the picks that lead to them.
    forks: Mutex<HashMap<Vec<u32>, Fork>>,
}

/// Points where runs part, kept at most: ~100 bytes each, a few KB for the few where a copy
/// is paused (the 99 x 99 grid of big.toml records about 20,000). Past this, runs go on without
/// recording new ones: the same outcomes, less shared, memory bounded on the largest grids.
const MAX_FORKS: usize = 1 << 17;

/// A point where runs part.
#[derive(Clone)]
enum Fork {
    /// One run got here: a second one makes it a fork.
    Seen,
    /// A run is pausing a copy here.
    Building,
    /// Paused before the turn of the next pick.
    Paused(Arc<Node>),
    /// The migration ended without another pick: the same for all.
    Ended(Arc<MigrationOutcome>),
}

/// A simulation paused between two turns.
struct Node {
    sim: Sim<AggregateModel>,
    paused: Paused,
}

impl Node {
    fn copy(&self) -> (Sim<AggregateModel>, Paused) {
        (self.sim.fork(), self.paused.clone())
    }
}

impl SharedStarts {
    /// `scenario`'s shared start with `seed`; `None` for the page-exact model (not copied).
    pub fn new(scenario: &Scenario, seed: u64) -> Option<Self> {
        if scenario.guest.model != ModelKind::Aggregate {
            return None;
        }
        let sim = || {
            let layout = compile::layout(scenario);
            let boundaries = layout.phase_boundaries_ns();
            let writers = ring_writers(scenario, &layout);
            Sim::new(
                scenario,
                AggregateModel::new(layout, seed),
                boundaries,
                writers,
            )
        };
        let until = |sim: &mut Sim<AggregateModel>, pause| {
            migrate_until(
                &scenario.migration,
                &mut sim.clock,
                &mut sim.guest,
                &mut sim.link,
                &mut (),
                &CancelToken::new(),
                pause,
            )
        };
        // Once to learn the turn of the first pick, once more to stop before it.
        let first = match until(&mut sim(), PauseAt::AfterPolicyPick(1)) {
            Progress::Done(outcome, picks) if picks.pcts.is_empty() => Err(outcome),
            // The first pick in the turn the migration ended in.
            Progress::Done(_, picks) => Ok(picks),
            Progress::Paused(p) => Ok(p.policy_picks().clone()),
        };
        let root = match first {
            Err(outcome) => Fork::Ended(Arc::new(outcome)),
            Ok(picks) => {
                if picks.pcts.len() != 1 {
                    return None;
                }
                let turn = picks.last_turn?;
                let mut second = sim();
                match until(&mut second, PauseAt::BeforeTurn(turn)) {
                    Progress::Paused(paused) => Fork::Paused(Arc::new(Node {
                        sim: second,
                        paused,
                    })),
                    Progress::Done(..) => return None,
                }
            }
        };
        Some(Self {
            scenario: scenario.clone(),
            seed,
            root,
            forks: Mutex::new(HashMap::new()),
        })
    }

    /// The outcome of [`simulate`]`(scenario, seed, &mut ())`, from the shared start; `None`
    /// if `scenario` or `seed` differ from this one's in more than the policy's parameters.
    pub fn finish(&self, scenario: &Scenario, seed: u64) -> Option<MigrationOutcome> {
        if seed != self.seed || !same_but_policy(scenario, &self.scenario) {
            return None;
        }
        let (mut sim, mut paused) = match &self.root {
            Fork::Paused(node) => node.copy(),
            Fork::Ended(outcome) => return Some(MigrationOutcome::clone(outcome)),
            Fork::Seen | Fork::Building => return None,
        };
        // A copy taken right after a pick, to pause before the next pick's turn once this run
        // has found that turn.
        let mut building: Option<(Vec<u32>, Sim<AggregateModel>, Paused)> = None;
        loop {
            let picks = paused.policy_picks().pcts.len();
            let progress = resume(
                paused,
                &scenario.migration,
                &mut sim.clock,
                &mut sim.guest,
                &mut sim.link,
                &mut (),
                &CancelToken::new(),
                Some(PauseAt::AfterPolicyPick(picks + 1)),
            );
            let next = match &progress {
                Progress::Paused(p) => p.policy_picks(),
                Progress::Done(_, picks) => picks,
            };
            if let Some((key, mut copy, at)) = building.take() {
                // The next pick's turn, if exactly one pick followed the copy's.
                let next_turn = (next.pcts.len() == picks + 1)
                    .then_some(next.last_turn)
                    .flatten();
                let fork = match (&progress, next_turn) {
                    (Progress::Done(outcome, _), _) if next.pcts.len() == picks => {
                        Some(Fork::Ended(Arc::new(outcome.clone())))
                    }
                    (_, Some(turn)) => match resume(
                        at,
                        &scenario.migration,
                        &mut copy.clock,
                        &mut copy.guest,
                        &mut copy.link,
                        &mut (),
                        &CancelToken::new(),
                        Some(PauseAt::BeforeTurn(turn)),
                    ) {
                        Progress::Paused(p) => Some(Fork::Paused(Arc::new(Node {
                            sim: copy,
                            paused: p,
                        }))),
                        Progress::Done(..) => None,
                    },
                    _ => None,
                };
                if let Some(fork) = fork {
                    self.lock().insert(key, fork);
                }
            }
            paused = match progress {
                Progress::Done(outcome, _) => return Some(outcome),
                Progress::Paused(p) => p,
            };
            // Right after a pick: has another run been here?
            let key = &paused.policy_picks().pcts[..];
            let here = {
                let mut forks = self.lock();
                match forks.get_mut(key) {
                    None => {
                        if forks.len() < MAX_FORKS {
                            forks.insert(key.to_vec(), Fork::Seen);
                        }
                        None
                    }
                    Some(f @ Fork::Seen) => {
                        // The second run here: it pauses a copy for the ones after it.
                        *f = Fork::Building;
                        building = Some((key.to_vec(), sim.fork(), paused.clone()));
                        None
                    }
                    Some(f) => Some(f.clone()),
                }
            };
            match here {
                Some(Fork::Paused(node)) => (sim, paused) = node.copy(),
                Some(Fork::Ended(outcome)) => return Some(MigrationOutcome::clone(&outcome)),
                _ => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u32>, Fork>> {
        // A poisoned lock only means another run panicked; the map is still whole.
        self.forks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `a` simulates as `b` does up to the policy's first pick: equal but for the
/// parameters only the policy reads (and name, description and default seed, which the
/// simulation never reads).
fn same_but_policy(a: &Scenario, b: &Scenario) -> bool {
    let mut params = a.migration.params.clone();
    params.policy_only_from(&b.migration.params);
    params == b.migration.params
        && a.migration.autoconv == b.migration.autoconv
        && a.guest == b.guest
        && a.regions == b.regions
        && a.host == b.host
        && a.link == b.link
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::doc::parse_override;
    use crate::scenario::ScenarioSource;
    use std::path::Path;

    /// A shipped scenario with `--set`s applied.
    fn scenario(file: &str, sets: &[String]) -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(file);
        let overrides: Vec<_> = sets
            .iter()
            .enumerate()
            .map(|(i, s)| parse_override(s, i).expect(s))
            .collect();
        let source = ScenarioSource::load(&path).expect("scenario");
        source.build_with(&overrides).expect("valid --set")
    }

    #[test]
    fn shared_starts_give_each_point_what_simulate_gives_it() {
        // Three increments per initial percentage: the second run with a first pick makes a
        // fork there and the third jumps to it, so every path is taken.
        for (file, base) in [
            ("heavy.toml", vec![]),
            (
                "calibrated.toml",
                vec!["autoconv.policy=predictive".to_string()],
            ),
            (
                "one-hot-writer.toml",
                vec!["cpu-throttle-tailslow=on".to_string()],
            ),
        ] {
            let first = scenario(file, &base);
            let shared = SharedStarts::new(&first, first.seed).expect("aggregate model");
            for initial in [10, 40, 99] {
                for increment in [5, 20, 50] {
                    let mut sets = base.clone();
                    sets.push(format!("cpu-throttle-initial={initial}"));
                    sets.push(format!("cpu-throttle-increment={increment}"));
                    let s = scenario(file, &sets);
                    let expected = simulate(&s, s.seed, &mut ());
                    assert_eq!(
                        shared.finish(&s, s.seed).as_ref(),
                        Some(&expected),
                        "{file} {sets:?}"
                    );
                }
            }
            let forks = shared.lock();
            if file == "heavy.toml" {
                assert!(
                    forks.values().any(|f| matches!(f, Fork::Paused(_))),
                    "{file}: no run went on from a paused fork"
                );
            }
            assert!(
                forks
                    .values()
                    .any(|f| matches!(f, Fork::Paused(_) | Fork::Ended(_))),
                "{file}: no run went on from a fork"
            );
        }
    }

    #[test]
    fn shared_starts_refuse_what_they_do_not_share() {
        let first = scenario("heavy.toml", &[]);
        let shared = SharedStarts::new(&first, first.seed).expect("aggregate model");
        assert!(shared.finish(&first, first.seed).is_some());
        assert_eq!(shared.finish(&first, first.seed + 1), None, "another seed");
        let other = scenario("heavy.toml", &["max-bandwidth=2GiB/s".to_string()]);
        assert_eq!(shared.finish(&other, other.seed), None, "another bandwidth");
        let exact = scenario("heavy.toml", &["guest.model=page-exact".to_string()]);
        assert!(SharedStarts::new(&exact, exact.seed).is_none());
    }
}
