//! Evaluate every policy of a [`Space`] on a scenario, simulating only the runs that can
//! differ.
//!
//! The migration core reads cpu-throttle-initial, -increment, -tailslow and max-cpu-throttle
//! only to compute the next throttle percentage (`mig_throttle_guest_down`). Two policies that
//! share throttle-trigger-threshold and set the same percentages, in the same order, therefore
//! give the same run: the simulator is deterministic and nothing else differs. After each run
//! the percentages it set are recorded; a later policy of the same group (same initial,
//! tailslow and trigger threshold) that provably sets the same ones, given what the run
//! revealed, reuses its result instead of simulating it. This is exact, not a heuristic: the
//! test `memo_equals_simulating_every_policy` checks it against simulating every policy.

use super::policy::{Policy, Space, ThrottlePolicy};
use crate::migration::{Event, Recorder};
use crate::scenario::Scenario;
use crate::sim;
use crate::sweep::RunMetrics;
use rayon::prelude::*;

/// Every policy of a space with its run.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// (policy, index into `runs`), in [`Space::policies`] order within each group.
    pub policies: Vec<(Policy, usize)>,
    /// The distinct runs simulated.
    pub runs: Vec<RunMetrics>,
}

impl Evaluation {
    /// The run of policy number `i`.
    pub fn run_of(&self, i: usize) -> &RunMetrics {
        &self.runs[self.policies[i].1]
    }
}

/// Records the percentage of every throttle set (repeated sets at the cap included).
#[derive(Default)]
struct ThrottleSets(Vec<u32>);

impl Recorder for ThrottleSets {
    fn event(&mut self, event: &Event) {
        if let Event::ThrottleSet { pct, .. } = event {
            self.0.push(*pct);
        }
    }
    fn wants_samples(&self) -> bool {
        false
    }
}

/// Simulate `scenario` under `policy` with `seed`.
pub fn simulate_policy(scenario: &Scenario, policy: &Policy, seed: u64) -> RunMetrics {
    simulate_recording(scenario, policy, seed).0
}

fn simulate_recording(scenario: &Scenario, policy: &Policy, seed: u64) -> (RunMetrics, Vec<u32>) {
    let mut s = scenario.clone();
    policy.apply_to(&mut s.migration);
    let mut sets = ThrottleSets::default();
    let outcome = sim::simulate(&s, seed, &mut sets);
    (RunMetrics::from(&outcome), sets.0)
}

/// A simulated run and what it revealed about the throttle.
struct Known {
    policy: ThrottlePolicy,
    sets: Vec<u32>,
    run: usize,
}

/// Whether `p` (same initial, tailslow and trigger threshold as `k.policy`) sets exactly the
/// percentages `k` set. Each step of `k` from `a` to `b` tells what `p` would do there:
/// - `b` is `k`'s cap: `p` lands on it only with the same cap and an increment >= b - a;
/// - otherwise the step was `k`'s increment (no tailslow, or tailslow not limiting) and `p`
///   needs the same increment; or tailslow limited it to b - a < increment, and any increment
///   >= b - a does the same. Either way `p`'s cap must not clip b.
fn sets_same(k: &Known, p: &ThrottlePolicy) -> bool {
    let kp = &k.policy;
    for w in k.sets.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b == kp.max_throttle_pct {
            if p.max_throttle_pct != kp.max_throttle_pct || p.increment_pct < b - a {
                return false;
            }
            continue;
        }
        let diff = b.saturating_sub(a);
        let limited_by_tailslow = kp.tailslow && diff < kp.increment_pct;
        let same_step = if limited_by_tailslow {
            p.increment_pct >= diff
        } else {
            p.increment_pct == kp.increment_pct
        };
        if !same_step || p.max_throttle_pct < b {
            return false;
        }
    }
    true
}

/// Evaluate a group of policies sharing initial, tailslow and trigger threshold, in order.
fn evaluate_group(
    scenario: &Scenario,
    seed: u64,
    group: &[ThrottlePolicy],
) -> (Vec<usize>, Vec<RunMetrics>) {
    let mut known: Vec<Known> = Vec::new();
    let mut runs = Vec::new();
    let mut index = Vec::with_capacity(group.len());
    for p in group {
        if let Some(k) = known.iter().find(|k| sets_same(k, p)) {
            index.push(k.run);
            continue;
        }
        let (run, sets) = simulate_recording(scenario, &Policy::Throttle(*p), seed);
        known.push(Known {
            policy: *p,
            sets,
            run: runs.len(),
        });
        index.push(runs.len());
        runs.push(run);
    }
    (index, runs)
}

/// Policies of `space` grouped for [`evaluate_groups`]: same trigger threshold, tailslow and
/// initial; within one, the highest cap first (its runs answer for lower caps the throttle
/// never reached), increments rising.
pub fn groups_of(space: &Space) -> Vec<Vec<ThrottlePolicy>> {
    let mut groups = Vec::new();
    for &trigger in &space.trigger_threshold_pct {
        for &tailslow in &space.tailslow {
            for &initial in &space.initial_pct {
                let mut caps: Vec<u32> = space
                    .max_throttle_pct
                    .iter()
                    .copied()
                    .filter(|&m| m >= initial)
                    .collect();
                caps.sort_unstable_by(|a, b| b.cmp(a));
                let mut g = Vec::new();
                for &max in &caps {
                    for &increment in &space.increment_pct {
                        g.push(ThrottlePolicy {
                            initial_pct: initial,
                            increment_pct: increment,
                            tailslow,
                            trigger_threshold_pct: trigger,
                            max_throttle_pct: max,
                        });
                    }
                }
                if !g.is_empty() {
                    groups.push(g);
                }
            }
        }
    }
    groups
}

/// Evaluate groups of policies (each sharing initial, tailslow and trigger threshold) in
/// parallel; results in group order.
pub fn evaluate_groups(
    scenario: &Scenario,
    seed: u64,
    groups: &[Vec<ThrottlePolicy>],
) -> Evaluation {
    let done: Vec<(Vec<usize>, Vec<RunMetrics>)> = groups
        .par_iter()
        .map(|g| evaluate_group(scenario, seed, g))
        .collect();
    let mut out = Evaluation {
        policies: Vec::new(),
        runs: Vec::new(),
    };
    for (g, (index, runs)) in groups.iter().zip(done) {
        let base = out.runs.len();
        out.policies.extend(
            g.iter()
                .zip(index)
                .map(|(p, i)| (Policy::Throttle(*p), base + i)),
        );
        out.runs.extend(runs);
    }
    out
}

/// Evaluate every policy of `space` on `scenario` with `seed`, on the current rayon pool.
pub fn evaluate(scenario: &Scenario, space: &Space, seed: u64) -> Evaluation {
    evaluate_groups(scenario, seed, &groups_of(space))
}

impl Evaluation {
    /// Add another evaluation's policies and runs.
    pub fn extend(&mut self, other: Evaluation) {
        let base = self.runs.len();
        self.policies
            .extend(other.policies.into_iter().map(|(p, i)| (p, base + i)));
        self.runs.extend(other.runs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(p: ThrottlePolicy, sets: &[u32]) -> Known {
        Known {
            policy: p,
            sets: sets.to_vec(),
            run: 0,
        }
    }

    fn tp(initial: u32, increment: u32, max: u32, tailslow: bool) -> ThrottlePolicy {
        ThrottlePolicy {
            initial_pct: initial,
            increment_pct: increment,
            tailslow,
            trigger_threshold_pct: 50,
            max_throttle_pct: max,
        }
    }

    #[test]
    fn steps_to_the_cap_match_any_increment_that_reaches_it() {
        // 90 then 99 (capped) then 99 again: any increment >= 9 does the same.
        let k = known(tp(90, 20, 99, false), &[90, 99, 99]);
        assert!(sets_same(&k, &tp(90, 9, 99, false)));
        assert!(sets_same(&k, &tp(90, 99, 99, false)));
        assert!(!sets_same(&k, &tp(90, 8, 99, false)));
        // A lower cap would stop at it instead.
        assert!(!sets_same(&k, &tp(90, 20, 95, false)));
    }

    #[test]
    fn a_cap_the_run_never_reached_changes_nothing() {
        let k = known(tp(20, 10, 99, false), &[20, 30, 40]);
        assert!(sets_same(&k, &tp(20, 10, 40, false)));
        assert!(sets_same(&k, &tp(20, 10, 70, false)));
        assert!(!sets_same(&k, &tp(20, 10, 35, false)));
        assert!(!sets_same(&k, &tp(20, 11, 99, false)));
        // Only the initial was ever set: every increment and cap gives this run.
        let k = known(tp(20, 10, 99, false), &[20]);
        assert!(sets_same(&k, &tp(20, 77, 20, false)));
    }

    #[test]
    fn tailslow_steps_shorter_than_the_increment_bound_it_from_below() {
        // Steps of 10 (the increment), then 4 and 2 (tailslow).
        let k = known(tp(20, 10, 99, true), &[20, 30, 34, 36]);
        assert!(sets_same(&k, &tp(20, 10, 99, true)));
        assert!(!sets_same(&k, &tp(20, 12, 99, true)));
        let k = known(tp(20, 10, 99, true), &[20, 24, 26]);
        assert!(sets_same(&k, &tp(20, 4, 99, true)));
        assert!(sets_same(&k, &tp(20, 60, 99, true)));
        assert!(!sets_same(&k, &tp(20, 3, 99, true)));
    }

    fn heavy() -> Scenario {
        Scenario::load(std::path::Path::new("scenarios/heavy.toml"), &[]).unwrap()
    }

    #[test]
    fn memo_equals_simulating_every_policy() {
        // Initials high enough to reach the caps, increments and caps that clip, both
        // tailslow settings: every branch of `sets_same` is taken.
        let space = Space {
            initial_pct: (60..=99).step_by(3).collect(),
            increment_pct: (1..=99).step_by(7).collect(),
            tailslow: vec![false, true],
            trigger_threshold_pct: vec![50, 25],
            max_throttle_pct: vec![70, 85, 99],
        };
        let s = heavy();
        let eval = evaluate(&s, &space, 1);
        assert!(
            eval.runs.len() * 2 < eval.policies.len(),
            "the memo should save most runs here: {} of {}",
            eval.runs.len(),
            eval.policies.len()
        );
        let mut expected: Vec<(Policy, RunMetrics)> = eval
            .policies
            .par_iter()
            .map(|(p, _)| (*p, simulate_policy(&s, p, 1)))
            .collect();
        let mut got: Vec<(Policy, RunMetrics)> = eval
            .policies
            .iter()
            .map(|(p, r)| (*p, eval.runs[*r].clone()))
            .collect();
        expected.sort_by_key(|a| a.0);
        got.sort_by_key(|a| a.0);
        assert_eq!(got.len(), space.policies().len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g, e, "policy {:?}", g.0);
        }
    }
}
