//! What both RAM models share: the guest's memory layout, its writers, and the cost model that
//! turns vCPU time into page writes.
//!
//! A writer is a workload: a stream of page writes at `cpu_rate_pages_s` when its vCPUs run
//! unthrottled, plus `dma_rate_pages_s` that no throttle slows (device DMA). While dirty logging
//! is on, a CPU write to a page not written since the last harvest takes a write-protect fault
//! costing `fault_ns` of vCPU time (~3 us on these machines); DMA writes never fault.

use crate::migration::{PageBatch, PageCost};
use crate::scenario::calibrate::ThrottleCurve;

/// A stretch of guest-physical memory with one behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRegion {
    /// First guest frame.
    pub start_pfn: u64,
    /// Pages.
    pub pages: u64,
    /// Share of its pages holding data when the migration starts (sent as full pages); the
    /// rest are zero pages (sent as headers) until written. 0 = free memory, 1 = all data.
    pub filled: f64,
}

/// How a writer picks pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Address order, wrapping: one target region.
    Sequential,
    /// Uniformly at random within each target, targets chosen by share.
    Random,
}

/// A writer's share of writes into one region.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Index into the layout's regions.
    pub region: usize,
    /// Fraction of the writer's writes that land here (shares sum to 1).
    pub share: f64,
}

/// A rate change at a point of migration time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase {
    /// From this migration time on (s)...
    pub start_s: f64,
    /// ...rates are multiplied by this (1.0 = as specified).
    pub rate_scale: f64,
}

/// One workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Writer {
    /// Name for reports.
    pub name: String,
    /// Page choice.
    pub access: Access,
    /// Where writes land.
    pub targets: Vec<Target>,
    /// Writes/s from vCPUs running unthrottled, all of this writer's vCPUs together.
    pub cpu_rate_pages_s: f64,
    /// Writes/s the throttle cannot slow (device DMA).
    pub dma_rate_pages_s: f64,
    /// vCPUs running the CPU part.
    pub vcpus: u32,
    /// Rate changes over time, sorted by start.
    pub phases: Vec<Phase>,
    /// A calibrated writer: its wall-clock rate at each throttle percentage, from a measured
    /// profile (see [`crate::scenario::calibrate`]). Replaces `dma_rate_pages_s`; `cpu_rate_pages_s` is 0.
    pub curve: Option<ThrottleCurve>,
}

impl Writer {
    /// Writes/s no CPU budget limits at throttle `throttle_pct`: the DMA rate, or for a
    /// calibrated writer the rate its profile gives at that throttle. `run_share` is the share
    /// of its vCPUs' time a dirty limit leaves them (1 = none): DMA ignores it; a calibrated
    /// writer's vCPUs asleep in dirty-limit's sleeps are read off the curve as if asleep in
    /// the throttle, at `100 - (100 - throttle_pct) * run_share` %.
    pub fn dma_rate_at(&self, throttle_pct: u32, run_share: f64) -> f64 {
        match &self.curve {
            Some(c) if run_share < 1.0 => {
                c.rate_at_pct(100.0 - (100.0 - f64::from(throttle_pct)) * run_share.max(0.0))
            }
            Some(c) => c.rate_at(throttle_pct),
            None => self.dma_rate_pages_s,
        }
    }

    /// Writes/s its vCPUs make while running (not asleep), all together, at `t_s`: what fills
    /// their dirty rings. For a calibrated writer, its profile's unthrottled rate.
    pub fn ring_rate_pages_s(&self, t_s: f64) -> f64 {
        let running = match &self.curve {
            Some(c) => c.rate_at(0),
            None => self.cpu_rate_pages_s,
        };
        running * self.rate_scale_at(t_s)
    }

    /// Whether its writes are vCPU writes that fill dirty rings (the CPU part, or a calibrated
    /// writer's curve), rather than DMA only.
    pub fn is_calibrated(&self) -> bool {
        self.curve.is_some()
    }

    /// Rate multiplier in force at `t_s`.
    pub fn rate_scale_at(&self, t_s: f64) -> f64 {
        self.phases
            .iter()
            .rev()
            .find(|p| p.start_s <= t_s)
            .map_or(1.0, |p| p.rate_scale)
    }
}

/// The whole guest as the models see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Page size in bytes.
    pub page_size_bytes: u64,
    /// Address-ordered regions covering all of guest memory.
    pub regions: Vec<ModelRegion>,
    /// Workloads.
    pub writers: Vec<Writer>,
    /// vCPUs of the guest (all are throttled).
    pub vcpus: u32,
    /// vCPU time a write-protect fault costs (ns).
    pub fault_ns: f64,
}

impl Layout {
    /// Total guest pages.
    pub fn total_pages(&self) -> u64 {
        self.regions.iter().map(|r| r.pages).sum()
    }

    /// Every migration time at which some writer's rate changes, sorted, deduplicated.
    pub fn phase_boundaries_ns(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .writers
            .iter()
            .flat_map(|w| w.phases.iter().map(|p| (p.start_s * 1e9) as u64))
            .filter(|&t| t > 0)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Time given to the writers for one step.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// Wall time of the step (ns).
    pub wall_ns: f64,
    /// Time each vCPU ran (not throttled, not stopped) during it (ns).
    pub cpu_ns_per_vcpu: f64,
    /// Migration time at the step's start (s), for phases.
    pub t_s: f64,
    /// Dirty logging on: CPU writes to pages not written since the last harvest fault.
    pub logging: bool,
    /// Throttle percentage in force (0 = none), for calibrated writers.
    pub throttle_pct: u32,
}

/// A RAM model: migration bitmap, dirty log and where writes land.
pub trait RamModel {
    /// Dirty logging on; every page dirty in the migration bitmap; the log cleared.
    fn start_logging(&mut self);
    /// Dirty logging off.
    fn stop_logging(&mut self);
    /// Harvest the log into the bitmap; pages newly set.
    fn sync(&mut self) -> u64;
    /// Pages set in the bitmap.
    fn dirty_pages(&self) -> u64;
    /// Take pages from the send cursor while their cost is below `max_bytes`.
    fn take(&mut self, max_bytes: u64, cost: PageCost, batch: &mut PageBatch);
    /// Let the writers run for `step`; returns page writes made.
    fn run_writers(&mut self, step: Step) -> f64;
    /// Scale each writer's vCPU time by its share (1 = all of `Step::cpu_ns_per_vcpu`): what a
    /// dirty limit's sleeps leave it. One entry per writer.
    fn set_run_shares(&mut self, shares: &[f64]);
    /// Each writer's CPU writes since the start, all its vCPUs together.
    fn cpu_writes(&self) -> &[f64];
    /// The writers' effect need not be applied before a take: what `take` reads (e.g. which
    /// pages are zero) does not change with writes right now. When true the guest lets the
    /// writers run in one step from one event (sync, throttle change, phase...) to the next
    /// instead of one step per batch, which is what makes a run's cost grow with its events
    /// rather than with its 100 ms windows.
    fn take_ignores_writes(&self) -> bool {
        false
    }
    /// A copy to look ahead with: observing the guest (samples) then runs the writers on the
    /// copy, so what is observed never changes where the real steps fall. `None`: this model
    /// is stepped at every observation, as before (the page-exact model).
    fn lookahead(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// How many pages the cost of `cost` allows within `max_bytes` taken so far `spent`: keep
/// taking while the running cost is below `max_bytes`.
pub fn pages_within(max_bytes: u64, spent: u64, page_bytes: u64) -> u64 {
    if spent >= max_bytes {
        0
    } else {
        (max_bytes - spent).div_ceil(page_bytes.max(1))
    }
}

/// Distinct pages newly written when a writer makes `y` more writes, and its derivative, for
/// one target's state. Implemented by each model's per-target state.
pub trait NewPages {
    /// (new pages, d new / d y) after `y` more writes to this target.
    fn new_pages(&self, y: f64) -> (f64, f64);
    /// New pages after unlimited writes: the pages not yet written.
    fn most_new(&self) -> f64;
}

/// Solve for the CPU writes `x` a writer makes with `budget_vcpu_ns` of vCPU time, when each
/// write costs `write_ns` and each CPU write to a new page also costs `fault_ns`; `dma` writes
/// arrive alongside for free. New pages are attributed to CPU writes in proportion `x/(x+dma)`.
/// `targets` gives each target's share and state.
///
/// `guess` is a starting point (e.g. the previous step's answer scaled to this budget); a good
/// one makes the usual case one or two Newton steps.
pub fn solve_cpu_writes(
    budget_vcpu_ns: f64,
    write_ns: f64,
    fault_ns: f64,
    dma: f64,
    targets: &[(f64, &dyn NewPages)],
    guess: Option<f64>,
) -> f64 {
    if budget_vcpu_ns <= 0.0 || !write_ns.is_finite() || write_ns <= 0.0 {
        return 0.0;
    }
    let hi0 = budget_vcpu_ns / write_ns;
    if fault_ns <= 0.0 {
        return hi0;
    }
    // If every page the writer could still fault on cost nothing measurable, skip the solve.
    let most_new: f64 = targets.iter().map(|(_, t)| t.most_new()).sum();
    if most_new * fault_ns <= 1e-9 * budget_vcpu_ns {
        return hi0;
    }
    // g(x) = write_ns*x + fault_ns*phi(x)*New(x+dma) - budget, increasing in x.
    let g = |x: f64| -> (f64, f64) {
        let y = x + dma;
        let (mut new, mut dnew) = (0.0, 0.0);
        for (share, t) in targets {
            let (n, d) = t.new_pages(share * y);
            new += n;
            dnew += share * d;
        }
        let (phi, dphi) = if dma > 0.0 {
            (x / y, dma / (y * y))
        } else {
            (1.0, 0.0)
        };
        (
            write_ns * x + fault_ns * phi * new - budget_vcpu_ns,
            write_ns + fault_ns * (dphi * new + phi * dnew),
        )
    };
    let (mut lo, mut hi) = (0.0, hi0);
    // Without a guess, start as if every write faults: a lower bound.
    let mut x = guess
        .filter(|g| g.is_finite() && *g > 0.0 && *g < hi0)
        .unwrap_or(budget_vcpu_ns / (write_ns + fault_ns));
    for _ in 0..60 {
        let (gx, dg) = g(x);
        if gx.abs() <= 1e-9 * budget_vcpu_ns {
            return x;
        }
        if gx > 0.0 {
            hi = x;
        } else {
            lo = x;
        }
        let newton = x - gx / dg;
        let next = if dg > 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - x).abs() <= 1e-9 * x.max(1.0) {
            return next;
        }
        x = next;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sim::aggregate::{SeqView as Seq, UniView};

    /// A uniform target of `n` pages with `u` already written.
    fn uni(n: f64, u: f64) -> UniView {
        UniView {
            pages: n,
            unwritten: n - u,
        }
    }

    #[test]
    fn sequential_closed_form() {
        // 1 ms of budget, 10 ns per write, 3000 ns per fault, 100 pages left unfaulted:
        // 100 faulting writes cost 301,000 ns, the remaining 699,000 ns give 69,900 writes.
        let t = Seq { remaining: 100.0 };
        let x = solve_cpu_writes(1e6, 10.0, 3000.0, 0.0, &[(1.0, &t)], None);
        assert!((x - 70_000.0).abs() < 1e-3, "{x}");
        // Budget too small to fault all of them.
        let x = solve_cpu_writes(30_100.0, 10.0, 3000.0, 0.0, &[(1.0, &t)], Some(5.0));
        assert!((x - 10.0).abs() < 1e-6, "{x}");
    }

    #[test]
    fn uniform_satisfies_cost_equation() {
        let t = uni(10_000.0, 2_000.0);
        let budget = 5e6;
        let x = solve_cpu_writes(budget, 20.0, 3000.0, 0.0, &[(1.0, &t)], None);
        let warm = solve_cpu_writes(budget, 20.0, 3000.0, 0.0, &[(1.0, &t)], Some(x * 1.3));
        assert!((warm - x).abs() < 1e-6 * x);
        let (new, _) = t.new_pages(x);
        assert!((20.0 * x + 3000.0 * new - budget).abs() < 1e-3 * budget);
    }

    #[test]
    fn no_fault_cost_means_rate_times_time() {
        let t = uni(10.0, 0.0);
        assert_eq!(
            solve_cpu_writes(1e9, 100.0, 0.0, 0.0, &[(1.0, &t)], None),
            1e7
        );
        assert_eq!(
            solve_cpu_writes(0.0, 100.0, 3000.0, 0.0, &[(1.0, &t)], None),
            0.0
        );
    }
}
