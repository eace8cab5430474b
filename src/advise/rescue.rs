//! When no policy converges under the constraints: what would. A higher downtime-limit or
//! max-bandwidth (found by bisection, then checked), a faster link, or the verdict that the
//! workload's dirtying does not come from the guest's CPUs, so no throttle can slow it.

use super::policy::{Policy, ThrottlePolicy};
use super::search::simulate_policy;
use super::Constraints;
use crate::scenario::{Pattern, Scenario};
use crate::sweep::RunMetrics;

/// What would make the migration converge.
#[derive(Clone, Debug, PartialEq)]
pub struct Rescue {
    /// The policy the searches below use: the strongest throttle the constraints allow.
    pub policy: Policy,
    /// Its run as the scenario stands.
    pub run: RunMetrics,
    /// The same policy's run with the throttle at 99 % from the start (is throttling able to
    /// help at all?).
    pub at_99: RunMetrics,
    /// Writes per second that no throttle slows (device DMA), bytes/s.
    pub dma_write_bytes_s: f64,
    /// The bandwidth the migration may use (max-bandwidth within the link), bytes/s.
    pub bandwidth_bytes_s: u64,
    /// The smallest downtime-limit (ms) that converges within the constraints, if any up to
    /// QEMU's maximum does.
    pub downtime_limit_ms: Option<(u64, RunMetrics)>,
    /// The smallest max-bandwidth (bytes/s) that converges within the constraints, if any up
    /// to the link's capacity does.
    pub max_bandwidth: Option<(u64, RunMetrics)>,
    /// When no max-bandwidth within the link converges: the slowest link (bytes/s,
    /// max-bandwidth unlimited) on which it does, if any up to 16 times the current one.
    pub link_bandwidth: Option<(u64, RunMetrics)>,
}

impl Rescue {
    /// Even a 99 % throttle from the start does not converge: throttling cannot help.
    pub fn throttle_cannot_help(&self) -> bool {
        !self.at_99.converged()
    }
}

/// The smallest value in `lo..=hi` for which `ok` holds, assuming it holds from some point on
/// (checked: the value returned was tried and held).
fn bisect(lo: u64, hi: u64, ok: &dyn Fn(u64) -> Option<RunMetrics>) -> Option<(u64, RunMetrics)> {
    if let Some(r) = ok(lo) {
        return Some((lo, r));
    }
    let mut best = ok(hi).map(|r| (hi, r))?;
    let (mut lo, mut hi) = (lo, hi);
    // Stop at ~1 % resolution: the answer is advice, not a threshold to the byte.
    while hi > lo && hi - lo > (hi / 100).max(1) {
        let mid = lo + (hi - lo) / 2;
        match ok(mid) {
            Some(r) => {
                best = (mid, r);
                hi = mid;
            }
            None => lo = mid + 1,
        }
    }
    Some(best)
}

/// Device (DMA) writes per second: the share of each region's writes that does not come from
/// a vCPU.
pub fn dma_write_bytes_s(scenario: &Scenario) -> f64 {
    scenario
        .regions
        .iter()
        .filter(|r| !matches!(r.pattern, Pattern::Static | Pattern::Profile { .. }))
        .map(|r| r.write_rate_pages_s * (1.0 - r.cpu_bound_pct / 100.0))
        .sum::<f64>()
        * crate::scenario::PAGE_SIZE_BYTES as f64
}

/// Work out what would converge, for a scenario where no policy does under `constraints`.
pub fn rescue(scenario: &Scenario, constraints: &Constraints, seed: u64) -> Rescue {
    let cap = constraints.max_throttle_pct.unwrap_or(99).clamp(1, 99);
    let strongest = |pct: u32| {
        Policy::Throttle(ThrottlePolicy {
            initial_pct: pct,
            increment_pct: ThrottlePolicy::QEMU_DEFAULT.increment_pct,
            tailslow: false,
            trigger_threshold_pct: ThrottlePolicy::QEMU_DEFAULT.trigger_threshold_pct,
            max_throttle_pct: pct,
        })
    };
    let policy = strongest(cap);
    let run = simulate_policy(scenario, &policy, seed);
    let at_99 = simulate_policy(scenario, &strongest(99), seed);
    let link = scenario.link.bandwidth_bytes_s;
    let params = &scenario.migration.params;
    let bandwidth_bytes_s = if params.max_bandwidth == 0 {
        link
    } else {
        params.max_bandwidth.min(link)
    };
    let fits = |s: &Scenario| {
        let r = simulate_policy(s, &policy, seed);
        constraints.allows(&r).then_some(r)
    };
    let downtime_limit_ms = bisect(params.downtime_limit, 2_000_000, &|ms| {
        let mut s = scenario.clone();
        s.migration.params.downtime_limit = ms;
        fits(&s)
    });
    let max_bandwidth = if params.max_bandwidth != 0 && params.max_bandwidth < link {
        bisect(params.max_bandwidth, link, &|bw| {
            let mut s = scenario.clone();
            s.migration.params.max_bandwidth = bw;
            fits(&s)
        })
    } else {
        None
    };
    // A faster link only matters when the whole of this one is not enough.
    let link_bandwidth = if max_bandwidth.is_none() {
        bisect(link, link.saturating_mul(16), &|bw| {
            let mut s = scenario.clone();
            s.link.bandwidth_bytes_s = bw;
            s.migration.params.max_bandwidth = 0;
            fits(&s)
        })
    } else {
        None
    };
    Rescue {
        policy,
        run,
        at_99,
        dma_write_bytes_s: dma_write_bytes_s(scenario),
        bandwidth_bytes_s,
        downtime_limit_ms,
        max_bandwidth,
        link_bandwidth,
    }
}
