//! The Pareto front of total time, guest CPU lost and max throttle, with the policies that give
//! each result collapsed into one line ("any increment from 5 to 50 gives the same result").

use super::policy::{Policy, ThrottlePolicy, THROTTLE_DIMENSIONS};
use super::search::Evaluation;
use crate::sweep::RunMetrics;
use std::collections::{HashMap, HashSet};

/// A result and every policy of the space that gives it.
#[derive(Clone, Debug)]
pub struct ResultGroup {
    /// The run (one of the identical ones).
    pub run: RunMetrics,
    /// The policy closest to QEMU's defaults among those giving this result.
    pub representative: Policy,
    /// How many policies give this result.
    pub policies: usize,
    /// For each dimension, the values that give the same result with the representative's
    /// other values unchanged: ("cpu-throttle-increment", "1-99").
    pub same_result: Vec<(&'static str, String)>,
}

/// Identity of a result: every figure the advisor reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ResultKey {
    status: String,
    total_time_ms: Option<u64>,
    downtime_ms: Option<u64>,
    transferred_bytes: u64,
    max_throttle_pct: u32,
    guest_cpu_lost_us: u64,
    /// Results of different mechanisms stay apart even when equal.
    family: u8,
}

fn family(p: &Policy) -> u8 {
    match p {
        Policy::Throttle(_) => 0,
        Policy::Predictive { .. } => 1,
        Policy::DirtyLimit { .. } => 2,
    }
}

fn key(run: &RunMetrics, policy: &Policy) -> ResultKey {
    ResultKey {
        status: run.status.clone(),
        total_time_ms: run.total_time_ms,
        downtime_ms: run.downtime_ms,
        transferred_bytes: run.transferred_bytes,
        max_throttle_pct: run.max_throttle_pct,
        guest_cpu_lost_us: (run.guest_cpu_lost_s * 1e6).round() as u64,
        family: family(policy),
    }
}

/// Group the evaluated policies by identical result (completed runs only), in the order of
/// first appearance.
pub fn group_results(eval: &Evaluation) -> Vec<ResultGroup> {
    let mut order: Vec<ResultKey> = Vec::new();
    let mut members: HashMap<ResultKey, Vec<Policy>> = HashMap::new();
    let mut runs: HashMap<ResultKey, usize> = HashMap::new();
    for (policy, run) in &eval.policies {
        let r = &eval.runs[*run];
        if !r.converged() {
            continue;
        }
        let k = key(r, policy);
        members
            .entry(k.clone())
            .or_insert_with(|| {
                order.push(k.clone());
                runs.insert(k.clone(), *run);
                Vec::new()
            })
            .push(*policy);
    }
    order
        .into_iter()
        .map(|k| {
            let policies = &members[&k];
            let representative = *policies
                .iter()
                .min_by_key(|p| (p.distance_from_default(), **p))
                .expect("a group has a member");
            ResultGroup {
                run: eval.runs[runs[&k]].clone(),
                representative,
                policies: policies.len(),
                same_result: same_result(&representative, policies),
            }
        })
        .collect()
}

/// Per dimension, the values that keep the result when only that dimension moves.
fn same_result(rep: &Policy, members: &[Policy]) -> Vec<(&'static str, String)> {
    let Policy::Throttle(rep) = rep else {
        return Vec::new();
    };
    let set: HashSet<ThrottlePolicy> = members
        .iter()
        .filter_map(|p| match p {
            Policy::Throttle(t) => Some(*t),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for dim in THROTTLE_DIMENSIONS {
        let candidates = if dim == "cpu-throttle-tailslow" {
            0..=1
        } else {
            1..=100
        };
        let values: Vec<u32> = candidates
            .filter(|v| set.contains(&rep.with(dim, *v)))
            .collect();
        if values.len() > 1 {
            let text = if dim == "cpu-throttle-tailslow" {
                "on or off".to_string()
            } else {
                ranges(&values)
            };
            out.push((dim, text));
        }
    }
    out
}

/// "5-50", "1, 3, 7-9": sorted integers as ranges.
pub fn ranges(values: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let start = values[i];
        let mut end = start;
        while i + 1 < values.len() && values[i + 1] == end + 1 {
            i += 1;
            end = values[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(", ")
}

/// The three figures the front trades off, lower is better.
fn figures(r: &RunMetrics) -> (u64, f64, u32) {
    (
        r.total_time_ms.unwrap_or(u64::MAX),
        r.guest_cpu_lost_s,
        r.max_throttle_pct,
    )
}

fn dominates(a: &RunMetrics, b: &RunMetrics) -> bool {
    let (ta, ca, ma) = figures(a);
    let (tb, cb, mb) = figures(b);
    ta <= tb && ca <= cb && ma <= mb && (ta < tb || ca < cb || ma < mb)
}

/// The groups no other group beats on all of total time, guest CPU lost and max throttle,
/// fastest first.
pub fn pareto_front(groups: &[ResultGroup]) -> Vec<ResultGroup> {
    let mut sorted: Vec<&ResultGroup> = groups.iter().collect();
    sorted.sort_by(|a, b| {
        let (ta, ca, ma) = figures(&a.run);
        let (tb, cb, mb) = figures(&b.run);
        ta.cmp(&tb).then(ca.total_cmp(&cb)).then(ma.cmp(&mb))
    });
    let mut front: Vec<&ResultGroup> = Vec::new();
    for g in sorted {
        // Anything that dominates g sorts before it, so checking the front so far suffices.
        if !front.iter().any(|f| dominates(&f.run, &g.run)) {
            front.push(g);
        }
    }
    front.into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_join_consecutive_values() {
        assert_eq!(ranges(&[5, 6, 7, 8, 50]), "5-8, 50");
        assert_eq!(ranges(&[1, 3, 4]), "1, 3-4");
        assert_eq!(ranges(&[42]), "42");
    }

    fn run(t: u64, cpu: f64, max: u32) -> RunMetrics {
        RunMetrics {
            status: "completed".into(),
            total_time_ms: Some(t),
            elapsed_ms: t,
            downtime_ms: Some(1),
            transferred_bytes: 1,
            dirty_sync_count: 1,
            max_throttle_pct: max,
            throttle_steps: vec![],
            guest_cpu_lost_s: cpu,
            guest_pages_written: 0,
        }
    }

    #[test]
    fn front_keeps_only_undominated_results() {
        let g = |r| ResultGroup {
            run: r,
            representative: Policy::Throttle(ThrottlePolicy::QEMU_DEFAULT),
            policies: 1,
            same_result: vec![],
        };
        let groups = vec![
            g(run(100, 5.0, 50)),
            g(run(50, 9.0, 90)),
            g(run(120, 6.0, 60)), // beaten by the first on all three
            g(run(100, 5.0, 40)), // beats the first
        ];
        let front = pareto_front(&groups);
        let times: Vec<_> = front
            .iter()
            .map(|f| (f.run.total_time_ms, f.run.max_throttle_pct))
            .collect();
        assert_eq!(times, vec![(Some(50), 90), (Some(100), 40)]);
    }
}
