//! `autoconv advise`: which auto-converge policy to set for a workload, as settings an operator
//! can paste.
//!
//! Every policy of a [`Space`] is evaluated on the scenario ([`search`]: exact, simulating only
//! runs that can differ), the results are grouped by identical outcome and reduced to their
//! Pareto front of total time, guest CPU lost and max throttle ([`front`]), the best policy under
//! the user's constraints is set beside QEMU's defaults, and written as QMP, HMP and virsh
//! settings ([`apply`]). When nothing converges, [`rescue`] says what would.
//!
//! Pure library code: no printing, no files, no wall clock (the CLI times the search).

pub mod apply;
pub mod front;
pub mod policy;
pub mod rescue;
pub mod search;

pub use front::ResultGroup;
pub use policy::{Policy, Space, ThrottlePolicy};
pub use rescue::Rescue;

use crate::scenario::Scenario;
use crate::sweep::{Metric, RunMetrics};

/// Limits a recommended policy must respect (all optional).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Constraints {
    /// Highest throttle the guest may bear, %.
    pub max_throttle_pct: Option<u32>,
    /// Latest the migration may complete, ms.
    pub deadline_ms: Option<u64>,
    /// Most vCPU-seconds the guest may lose to throttling.
    pub max_cpu_lost_s: Option<f64>,
}

impl Constraints {
    /// The run completed within every limit.
    pub fn allows(&self, run: &RunMetrics) -> bool {
        run.converged()
            && self
                .max_throttle_pct
                .is_none_or(|m| run.max_throttle_pct <= m)
            && self
                .deadline_ms
                .is_none_or(|d| run.total_time_ms.is_some_and(|t| t <= d))
            && self
                .max_cpu_lost_s
                .is_none_or(|c| run.guest_cpu_lost_s <= c)
    }

    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Constraints::default()
    }
}

/// What to advise on.
#[derive(Clone, Debug)]
pub struct Request {
    /// The workload.
    pub scenario: Scenario,
    /// Seed of the search (the scenario's by default).
    pub seed: u64,
    /// Seeds each point of the front (and the recommendation) is re-run with, for robustness.
    pub robustness_seeds: Vec<u64>,
    /// The policies to consider.
    pub space: Space,
    /// Limits.
    pub constraints: Constraints,
    /// What "best" means among the policies within the limits.
    pub objective: Metric,
}

/// How a result holds across seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Robustness {
    /// Seeds tried.
    pub seeds: usize,
    /// Seeds where the migration completed within the constraints.
    pub within_constraints: usize,
    /// Seeds where it completed.
    pub converged: usize,
    /// Fastest and slowest total time over the seeds that completed (ms).
    pub total_time_ms: Option<(u64, u64)>,
}

/// A result with its robustness.
#[derive(Clone, Debug)]
pub struct Point {
    /// The result and the policies that give it.
    pub group: ResultGroup,
    /// Within the constraints (on the search seed).
    pub allowed: bool,
    /// Across the robustness seeds.
    pub robustness: Robustness,
}

/// The advisor's answer.
#[derive(Clone, Debug)]
pub struct Advice {
    /// Policies evaluated.
    pub policies_evaluated: usize,
    /// Distinct runs simulated for them (the others provably repeat one of these).
    pub runs_simulated: usize,
    /// How the space was covered.
    pub coverage: Coverage,
    /// Policies whose migration completed.
    pub policies_converged: usize,
    /// Distinct results among those.
    pub distinct_results: usize,
    /// The Pareto front, fastest first.
    pub front: Vec<Point>,
    /// QEMU's default policy (auto-converge on) on this scenario.
    pub defaults: Point,
    /// The best policy within the constraints, if any.
    pub recommended: Option<Point>,
    /// When nothing converges within the constraints: what would.
    pub rescue: Option<Rescue>,
}

fn robustness(req: &Request, policy: &Policy) -> Robustness {
    use rayon::prelude::*;
    let runs: Vec<RunMetrics> = req
        .robustness_seeds
        .par_iter()
        .map(|&s| search::simulate_policy(&req.scenario, policy, s))
        .collect();
    let times: Vec<u64> = runs.iter().filter_map(|r| r.total_time_ms).collect();
    Robustness {
        seeds: runs.len(),
        within_constraints: runs.iter().filter(|r| req.constraints.allows(r)).count(),
        converged: runs.iter().filter(|r| r.converged()).count(),
        total_time_ms: times.iter().min().copied().zip(times.iter().max().copied()),
    }
}

/// Ordering key of a result under `objective`; ties broken by total time, guest CPU lost, max
/// throttle, then by the smallest change from QEMU's defaults.
fn rank_key(objective: Metric, g: &ResultGroup) -> (f64, u64, f64, u32, (u32, u32)) {
    (
        objective.value(&g.run).unwrap_or(f64::INFINITY),
        g.run.total_time_ms.unwrap_or(u64::MAX),
        g.run.guest_cpu_lost_s,
        g.run.max_throttle_pct,
        g.representative.distance_from_default(),
    )
}

fn cmp_keys(
    a: &(f64, u64, f64, u32, (u32, u32)),
    b: &(f64, u64, f64, u32, (u32, u32)),
) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0)
        .then(a.1.cmp(&b.1))
        .then(a.2.total_cmp(&b.2))
        .then(a.3.cmp(&b.3))
        .then(a.4.cmp(&b.4))
}

/// How the search covered the space.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Coverage {
    /// Policies of the base plane (QEMU's trigger threshold, tailslow off: every initial x
    /// increment x max-cpu-throttle), all evaluated.
    pub exhaustive: usize,
    /// Policies evaluated with the other trigger thresholds and tailslow, around the best
    /// results of the base plane (every increment, for each of their initial and cap).
    pub refined: usize,
    /// (throttle-trigger-threshold, max-cpu-throttle) pairs left out: throttling at the cap
    /// from the first step does not converge, so no policy under that cap throttles enough.
    pub hopeless_caps: Vec<(u32, u32)>,
    /// Policies of the space not evaluated (hopeless caps, or trigger/tailslow variants of
    /// results far from the best).
    pub not_evaluated: usize,
    /// Policies of other mechanisms than QEMU's staircase evaluated beside it (predictive,
    /// dirty-limit at its quotas).
    pub other_mechanisms: usize,
}

/// autoconv's predictive policy always (it steers QEMU's own auto-converge), under each
/// max-cpu-throttle of `caps`; dirty-limit at [`policy::DIRTY_LIMIT_QUOTAS_MB_S`] unless
/// [`dirty_limit_left_out`] says why not.
pub fn other_policies(scenario: &Scenario, caps: &[u32], throttle_limited: bool) -> Vec<Policy> {
    let mut out: Vec<Policy> = caps
        .iter()
        .map(|&max_throttle_pct| Policy::Predictive { max_throttle_pct })
        .collect();
    if dirty_limit_left_out(scenario, throttle_limited).is_none() {
        out.extend(
            policy::DIRTY_LIMIT_QUOTAS_MB_S
                .iter()
                .map(|&quota_mb_s| Policy::DirtyLimit { quota_mb_s }),
        );
    }
    out
}

/// Why the search leaves dirty-limit out for `scenario`, if it does: the scenario's QEMU lacks
/// it (8.1+), its host gives the vCPUs no dirty ring, or a max-throttle limit is set
/// (`throttle_limited`: dirty-limit has no throttle percentage to hold to; its vCPU sleeps may
/// reach 99 ring-full times). Profile (calibrated) regions are no reason: their writes are
/// their vCPUs' and the simulator limits them as QEMU would.
pub fn dirty_limit_left_out(scenario: &Scenario, throttle_limited: bool) -> Option<String> {
    let version = scenario.migration.autoconv.qemu_version;
    if !version.has_dirty_limit() {
        Some(format!(
            "it needs QEMU 8.1+; the scenario's autoconv.qemu_version is {version}"
        ))
    } else if scenario.host.dirty_ring_size == 0 {
        Some("it needs a dirty ring; the scenario's host.dirty_ring_size is 0".to_string())
    } else if throttle_limited {
        Some(
            "--max-throttle is set, and dirty-limit has no throttle percentage to hold to"
                .to_string(),
        )
    } else {
        None
    }
}

/// Candidates the refinement stage revisits: (initial, cap) of the best results by the
/// objective within the limits, and of the front.
const REFINE_BEST: usize = 8;
const REFINE_FRONT: usize = 16;

/// Evaluate the space and advise.
///
/// The base plane (QEMU's trigger threshold, tailslow off) is evaluated exhaustively; the other
/// trigger thresholds and tailslow are then tried with every increment for the initial and cap
/// of the best results (a search, checked against the exhaustive space by the test
/// `staged_search_finds_the_exhaustive_optimum`).
pub fn advise(req: &Request) -> Advice {
    use rayon::prelude::*;
    let space = &req.space;
    let base_trigger = if space.trigger_threshold_pct.contains(&50) {
        50
    } else {
        space.trigger_threshold_pct[0]
    };
    let base_tailslow = !space.tailslow.contains(&false);
    // Caps whose strongest policy (the cap from the first step) does not converge.
    let pairs: Vec<(u32, u32)> = space
        .trigger_threshold_pct
        .iter()
        .flat_map(|&t| space.max_throttle_pct.iter().map(move |&m| (t, m)))
        .collect();
    let hopeless_caps: Vec<(u32, u32)> = pairs
        .par_iter()
        .filter(|&&(t, m)| {
            let strongest = Policy::Throttle(ThrottlePolicy {
                initial_pct: m,
                increment_pct: ThrottlePolicy::QEMU_DEFAULT.increment_pct,
                tailslow: false,
                trigger_threshold_pct: t,
                max_throttle_pct: m,
            });
            !search::simulate_policy(&req.scenario, &strongest, req.seed).converged()
        })
        .copied()
        .collect();
    let caps_for = |t: u32| -> Vec<u32> {
        space
            .max_throttle_pct
            .iter()
            .copied()
            .filter(|m| !hopeless_caps.contains(&(t, *m)))
            .collect()
    };
    let plane = Space {
        trigger_threshold_pct: vec![base_trigger],
        tailslow: vec![base_tailslow],
        max_throttle_pct: caps_for(base_trigger),
        ..space.clone()
    };
    let mut eval = search::evaluate(&req.scenario, &plane, req.seed);
    let exhaustive = eval.policies.len();

    // Refine: the other trigger thresholds and tailslow around the best of the plane.
    let groups = front::group_results(&eval);
    let mut ranked: Vec<&ResultGroup> = groups
        .iter()
        .filter(|g| req.constraints.allows(&g.run))
        .collect();
    ranked.sort_by(|a, b| cmp_keys(&rank_key(req.objective, a), &rank_key(req.objective, b)));
    let plane_front = front::pareto_front(&groups);
    let mut seeds: Vec<(u32, u32)> = Vec::new();
    let picks = ranked
        .iter()
        .take(REFINE_BEST)
        .map(|g| g.representative)
        .chain(
            plane_front
                .iter()
                .take(REFINE_FRONT)
                .map(|g| g.representative),
        );
    for t in picks.filter_map(|p| match p {
        Policy::Throttle(t) => Some(t),
        _ => None,
    }) {
        if !seeds.contains(&(t.initial_pct, t.max_throttle_pct)) {
            seeds.push((t.initial_pct, t.max_throttle_pct));
        }
    }
    let mut refine_groups = Vec::new();
    for &trigger in &space.trigger_threshold_pct {
        for &tailslow in &space.tailslow {
            if (trigger, tailslow) == (base_trigger, base_tailslow) {
                continue;
            }
            let caps = caps_for(trigger);
            for &(initial, cap) in &seeds {
                if !caps.contains(&cap) {
                    continue;
                }
                refine_groups.push(
                    space
                        .increment_pct
                        .iter()
                        .map(|&increment| ThrottlePolicy {
                            initial_pct: initial,
                            increment_pct: increment,
                            tailslow,
                            trigger_threshold_pct: trigger,
                            max_throttle_pct: cap,
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
    let refined_eval = search::evaluate_groups(&req.scenario, req.seed, &refine_groups);
    let refined = refined_eval.policies.len();
    eval.extend(refined_eval);
    // The other mechanisms: autoconv's predictive policy, and dirty-limit where the scenario
    // can have it. A handful of runs.
    let others = other_policies(
        &req.scenario,
        &space.max_throttle_pct,
        req.constraints.max_throttle_pct.is_some(),
    );
    let other_runs: Vec<RunMetrics> = others
        .par_iter()
        .map(|p| search::simulate_policy(&req.scenario, p, req.seed))
        .collect();
    for (p, run) in others.iter().zip(other_runs) {
        eval.policies.push((*p, eval.runs.len()));
        eval.runs.push(run);
    }
    let coverage = Coverage {
        exhaustive,
        refined,
        not_evaluated: space.policies().len().saturating_sub(exhaustive + refined),
        other_mechanisms: others.len(),
        hopeless_caps,
    };

    let groups = front::group_results(&eval);
    let policies_converged = eval
        .policies
        .iter()
        .filter(|(_, r)| eval.runs[*r].converged())
        .count();
    let best = groups
        .iter()
        .filter(|g| req.constraints.allows(&g.run))
        .min_by(|a, b| cmp_keys(&rank_key(req.objective, a), &rank_key(req.objective, b)));
    let point = |g: &ResultGroup| Point {
        allowed: req.constraints.allows(&g.run),
        robustness: robustness(req, &g.representative),
        group: g.clone(),
    };
    let front: Vec<Point> = front::pareto_front(&groups).iter().map(point).collect();
    let default_policy = Policy::Throttle(ThrottlePolicy::QEMU_DEFAULT);
    let default_run = search::simulate_policy(&req.scenario, &default_policy, req.seed);
    let defaults = point(&ResultGroup {
        run: default_run,
        representative: default_policy,
        policies: 1,
        same_result: Vec::new(),
    });
    let recommended = best.map(point);
    let rescue = recommended
        .is_none()
        .then(|| rescue::rescue(&req.scenario, &req.constraints, req.seed));
    Advice {
        policies_evaluated: eval.policies.len(),
        runs_simulated: eval.runs.len(),
        coverage,
        policies_converged,
        distinct_results: groups.len(),
        front,
        defaults,
        recommended,
        rescue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(constraints: Constraints, objective: Metric, space: Space) -> Request {
        let scenario = Scenario::load(std::path::Path::new("scenarios/heavy.toml"), &[]).unwrap();
        Request {
            seed: scenario.seed,
            robustness_seeds: vec![1],
            space,
            constraints,
            objective,
            scenario,
        }
    }

    /// The best result of simulating every policy of the space, and the other mechanisms.
    fn exhaustive_best(req: &Request) -> Option<ResultGroup> {
        let mut eval = search::evaluate(&req.scenario, &req.space, req.seed);
        let others = other_policies(
            &req.scenario,
            &req.space.max_throttle_pct,
            req.constraints.max_throttle_pct.is_some(),
        );
        for p in others {
            eval.policies.push((p, eval.runs.len()));
            eval.runs
                .push(search::simulate_policy(&req.scenario, &p, req.seed));
        }
        front::group_results(&eval)
            .into_iter()
            .filter(|g| req.constraints.allows(&g.run))
            .min_by(|a, b| cmp_keys(&rank_key(req.objective, a), &rank_key(req.objective, b)))
    }

    #[test]
    fn staged_search_finds_the_exhaustive_optimum() {
        // A coarser square than the CLI's, so that the exhaustive space (every trigger
        // threshold and tailslow) stays quick to simulate whole.
        let space = Space {
            initial_pct: (5..=95).step_by(10).collect(),
            increment_pct: (2..=50).step_by(6).collect(),
            tailslow: vec![false, true],
            trigger_threshold_pct: vec![50, 25, 75],
            max_throttle_pct: vec![60, 70, 80, 99],
        };
        let cases = [
            (Constraints::default(), Metric::TotalTime),
            (
                Constraints {
                    max_throttle_pct: Some(70),
                    ..Constraints::default()
                },
                Metric::TotalTime,
            ),
            (
                Constraints {
                    deadline_ms: Some(40_000),
                    ..Constraints::default()
                },
                Metric::GuestCpuLost,
            ),
            (Constraints::default(), Metric::Transferred),
        ];
        for (constraints, objective) in cases {
            let req = request(constraints.clone(), objective, space.clone());
            let advice = advise(&req);
            let best = exhaustive_best(&req).expect("heavy converges within these limits");
            let got = advice.recommended.expect("a recommendation");
            assert_eq!(
                got.group.run, best.run,
                "{constraints:?} {objective}: staged {:?} vs exhaustive {:?}",
                got.group.representative, best.representative
            );
            assert!(advice.coverage.exhaustive + advice.coverage.refined < space.policies().len());
        }
    }

    #[test]
    fn heavy_under_70_pct_beats_qemus_defaults() {
        let req = request(
            Constraints {
                max_throttle_pct: Some(70),
                ..Constraints::default()
            },
            Metric::TotalTime,
            Space::standard(Some(70)),
        );
        let a = advise(&req);
        let r = a.recommended.expect("a policy within 70 %");
        assert!(r.group.run.max_throttle_pct <= 70);
        let t = r.group.run.total_time_ms.unwrap();
        assert!(t < a.defaults.group.run.total_time_ms.unwrap());
        assert_eq!(a.defaults.group.run.total_time_ms, Some(64_427));
        // No worse than the best of the 99 x 99 grid a sweep would run (QEMU's cap and
        // trigger threshold, tailslow off) among the runs that stayed within 70 %.
        let grid = Space {
            tailslow: vec![false],
            trigger_threshold_pct: vec![50],
            max_throttle_pct: vec![99],
            ..Space::standard(None)
        };
        let eval = search::evaluate(&req.scenario, &grid, req.seed);
        let grid_best = eval
            .runs
            .iter()
            .filter(|r| req.constraints.allows(r))
            .filter_map(|r| r.total_time_ms)
            .min()
            .unwrap();
        assert!(t <= grid_best, "{t} vs the grid's {grid_best}");
        // Every front point is undominated by every evaluated result.
        for p in &a.front {
            assert!(p.group.run.converged());
        }
        assert!(a.rescue.is_none());
    }

    #[test]
    fn nothing_under_60_pct_so_the_rescue_says_what_would() {
        let req = request(
            Constraints {
                max_throttle_pct: Some(60),
                ..Constraints::default()
            },
            Metric::TotalTime,
            Space {
                initial_pct: (10..=60).step_by(10).collect(),
                increment_pct: vec![5, 10, 20],
                ..Space::standard(Some(60))
            },
        );
        let a = advise(&req);
        assert!(a.recommended.is_none());
        let r = a.rescue.expect("a rescue");
        assert!(!r.throttle_cannot_help());
        let (ms, run) = r
            .downtime_limit_ms
            .expect("a downtime-limit that converges");
        assert!(ms > 300 && run.converged() && run.max_throttle_pct <= 60);
        // Just below the value found, it does not converge (the bisection's 1 % resolution).
        let mut s = req.scenario.clone();
        s.migration.params.downtime_limit = ms - ms / 100 - 1;
        assert!(!search::simulate_policy(&s, &r.policy, req.seed).converged());
    }
}
