//! The aggregate RAM model: no per-page state, so a 1 TiB guest simulates in the same memory as
//! a 1 GiB one.
//!
//! Each region's migration bitmap is a [`SegList`]. The dirty log is kept per writer in closed
//! form: a sequential sweep's log is the interval it covered since the last harvest; a uniform
//! writer's log is `U(n) = N (1 - e^(-n/N))` distinct pages after `n` writes, spread evenly. At
//! a harvest the realised count is drawn around that mean with the exact variance of uniform
//! sampling, from the region's own seeded stream, so seeds matter where randomness does.

use super::model::{pages_within, solve_cpu_writes, Access, Layout, NewPages, RamModel, Step};
use super::rng::{SimRng, Stream};
use super::segments::SegList;
use crate::migration::{PageBatch, PageCost};
use std::sync::Arc;

/// A region's dirty-log state in closed form.
#[derive(Clone, Debug)]
enum LogState {
    /// Not written by any workload.
    Untouched,
    /// Swept in address order: pages advanced since the writer started, and at the last harvest.
    Sequential { total: f64, at_sync: f64 },
    /// Written uniformly at random: writes since the last harvest.
    Uniform { writes: f64 },
}

/// A sequential target's new pages: the ones the sweep has not covered since the harvest.
pub(crate) struct SeqView {
    pub(crate) remaining: f64,
}

impl NewPages for SeqView {
    fn most_new(&self) -> f64 {
        self.remaining
    }
    fn new_pages(&self, y: f64) -> (f64, f64) {
        if y < self.remaining {
            (y, 1.0)
        } else {
            (self.remaining, 0.0)
        }
    }
}

/// A uniform target's new pages: `unwritten (1 - e^(-y/N))` after `y` more writes.
pub(crate) struct UniView {
    pub(crate) pages: f64,
    pub(crate) unwritten: f64,
}

impl NewPages for UniView {
    fn most_new(&self) -> f64 {
        self.unwritten
    }
    fn new_pages(&self, y: f64) -> (f64, f64) {
        let e = libm::exp(-y / self.pages);
        (self.unwritten * (1.0 - e), self.unwritten / self.pages * e)
    }
}

/// Distinct pages after `n` uniform writes into `pages` pages: mean and variance.
pub fn uniform_distinct(pages: f64, n: f64) -> (f64, f64) {
    if pages <= 0.0 || n <= 0.0 {
        return (0.0, 0.0);
    }
    let ln_q = libm::log1p(-1.0 / pages);
    let q_n = libm::exp(n * ln_q);
    let mean = pages * (1.0 - q_n);
    if pages <= 2.0 {
        return (mean, 0.0);
    }
    // Var = N q^n (1 - q^n) - N (N-1) [q^2n - (1-2/N)^n], the bracket written stably as
    // (1-2/N)^n * expm1(n * log1p(1/(N(N-2)))).
    let b = libm::exp(n * libm::log1p(-2.0 / pages));
    let bracket = b * libm::expm1(n * libm::log1p(1.0 / (pages * (pages - 2.0))));
    let var = pages * q_n * (1.0 - q_n) - pages * (pages - 1.0) * bracket;
    (mean, var.max(0.0))
}

/// The aggregate model.
///
/// Clones are cheap (a look-ahead copy per sample): the layout is shared, and the bitmaps and
/// random streams, which the writers never touch, are copied only if the clone writes them.
#[derive(Clone)]
pub struct AggregateModel {
    layout: Arc<Layout>,
    bitmaps: Arc<Vec<SegList>>,
    logs: Vec<LogState>,
    rngs: Arc<Vec<SimRng>>,
    cursor_region: usize,
    cursor_pos: u64,
    dirty: u64,
    logging: bool,
    /// Each writer's last CPU writes per vCPU-ns of budget: the next solve's starting point.
    writes_per_ns: Vec<Option<f64>>,
    /// Each writer's share of its vCPUs' running time left by a dirty limit (1 = none).
    run_share: Vec<f64>,
    /// Each writer's CPU writes since the start (what its vCPUs' dirty rings see).
    cpu_written: Vec<f64>,
    /// Expected zero pages in each region (never written, not filled at boot)...
    zero_pages: Vec<f64>,
    /// ...and how many of them are in the migration bitmap, still to be sent as zero pages.
    zero_in_bitmap: Vec<f64>,
    /// Fractional zero pages carried between takes, so counts stay whole.
    zero_carry: Vec<f64>,
}

impl AggregateModel {
    /// A model of `layout`, its sampling noise drawn from `seed`.
    pub fn new(layout: Layout, seed: u64) -> Self {
        let mut logs = vec![LogState::Untouched; layout.regions.len()];
        for w in &layout.writers {
            for t in &w.targets {
                logs[t.region] = match w.access {
                    Access::Sequential => LogState::Sequential {
                        total: 0.0,
                        at_sync: 0.0,
                    },
                    Access::Random => LogState::Uniform { writes: 0.0 },
                };
            }
        }
        let bitmaps = layout
            .regions
            .iter()
            .map(|r| SegList::new(r.pages))
            .collect();
        let rngs = (0..layout.regions.len())
            .map(|i| SimRng::new(seed, Stream::AggregateRegion(i as u32)))
            .collect();
        let writes_per_ns = vec![None; layout.writers.len()];
        let zero_pages: Vec<f64> = layout
            .regions
            .iter()
            .map(|r| (1.0 - r.filled.clamp(0.0, 1.0)) * r.pages as f64)
            .collect();
        let n = layout.regions.len();
        Self {
            layout: Arc::new(layout),
            bitmaps: Arc::new(bitmaps),
            logs,
            rngs: Arc::new(rngs),
            cursor_region: 0,
            cursor_pos: 0,
            dirty: 0,
            logging: false,
            run_share: vec![1.0; writes_per_ns.len()],
            cpu_written: vec![0.0; writes_per_ns.len()],
            writes_per_ns,
            zero_pages,
            zero_in_bitmap: vec![0.0; n],
            zero_carry: vec![0.0; n],
        }
    }

    /// Segments held across all regions (memory use is proportional to this).
    pub fn segments(&self) -> usize {
        self.bitmaps.iter().map(SegList::segments).sum()
    }

    fn reset_logs(&mut self) {
        for log in &mut self.logs {
            match log {
                LogState::Untouched => {}
                LogState::Sequential { total, at_sync } => *at_sync = *total,
                LogState::Uniform { writes } => *writes = 0.0,
            }
        }
    }
}

impl RamModel for AggregateModel {
    fn take_ignores_writes(&self) -> bool {
        // Writes only turn zero pages into data: a take reads nothing they change once no
        // written region has a zero page waiting in the bitmap.
        self.logs
            .iter()
            .zip(&self.zero_in_bitmap)
            .all(|(log, &z)| matches!(log, LogState::Untouched) || z <= 0.0)
    }

    fn lookahead(&self) -> Option<Self> {
        Some(self.clone())
    }

    fn set_run_shares(&mut self, shares: &[f64]) {
        self.run_share.copy_from_slice(shares);
    }

    fn cpu_writes(&self) -> &[f64] {
        &self.cpu_written
    }

    fn start_logging(&mut self) {
        for b in Arc::make_mut(&mut self.bitmaps) {
            b.fill();
        }
        self.zero_in_bitmap.clone_from(&self.zero_pages);
        self.dirty = self.layout.total_pages();
        self.reset_logs();
        self.logging = true;
    }

    fn stop_logging(&mut self) {
        self.logging = false;
    }

    fn sync(&mut self) -> u64 {
        if !self.logging {
            return 0;
        }
        let mut newly = 0;
        let bitmaps = Arc::make_mut(&mut self.bitmaps);
        let rngs = Arc::make_mut(&mut self.rngs);
        for (i, log) in self.logs.iter_mut().enumerate() {
            let pages = self.layout.regions[i].pages;
            let bitmap = &mut bitmaps[i];
            match log {
                LogState::Untouched => {}
                LogState::Sequential { total, at_sync } => {
                    let written = (total.floor() - at_sync.floor()) as u64;
                    let len = written.min(pages);
                    if len > 0 {
                        let end = (total.floor() as u64) % pages;
                        let start = (end + pages - len) % pages;
                        if len == pages {
                            newly += bitmap.set_range(0, pages);
                        } else if start < end {
                            newly += bitmap.set_range(start, end);
                        } else {
                            newly += bitmap.set_range(start, pages);
                            newly += bitmap.set_range(0, end);
                        }
                    }
                    *at_sync = *total;
                }
                LogState::Uniform { writes } => {
                    let n = pages as f64;
                    let (mean, var) = uniform_distinct(n, *writes);
                    let realised = (mean + libm::sqrt(var) * rngs[i].normal()).clamp(0.0, n);
                    let clean = (pages - bitmap.dirty()) as f64;
                    let new = libm::round(realised * clean / n) as u64;
                    let before = bitmap.dirty();
                    bitmap.spread(new);
                    newly += bitmap.dirty() - before;
                    *writes = 0.0;
                }
            }
        }
        self.dirty += newly;
        newly
    }

    fn dirty_pages(&self) -> u64 {
        self.dirty
    }

    fn take(&mut self, max_bytes: u64, cost: PageCost, batch: &mut PageBatch) {
        if self.dirty == 0 {
            return;
        }
        let regions = self.layout.regions.len();
        // Once per take, not per region hop: make_mut costs two atomic operations.
        let bitmaps = Arc::make_mut(&mut self.bitmaps);
        let mut spent = 0;
        let mut fruitless_hops = 0;
        // spent >= max_bytes is pages_within's 0: the budget is used up.
        while self.dirty > 0 && fruitless_hops <= regions && spent < max_bytes {
            let r = self.cursor_region;
            // Zero pages are spread evenly among the region's dirty pages.
            let in_bitmap = bitmaps[r].dirty();
            // (The test on zero_in_bitmap first spares a division in the usual case.)
            let zero_share = if in_bitmap == 0 || self.zero_in_bitmap[r] <= 0.0 {
                0.0
            } else {
                (self.zero_in_bitmap[r] / in_bitmap as f64).clamp(0.0, 1.0)
            };
            let page_bytes = if zero_share >= 1.0 - 1e-12 {
                cost.zero_page_bytes
            } else {
                cost.normal_page_bytes
            };
            let allowed = pages_within(max_bytes, spent, page_bytes);
            if allowed == 0 {
                break;
            }
            let (taken, pos) = bitmaps[r].take(self.cursor_pos, allowed);
            let zero = if zero_share >= 1.0 - 1e-12 {
                taken
            } else if zero_share <= 1e-12 {
                0
            } else {
                let exact = taken as f64 * zero_share + self.zero_carry[r];
                let whole = libm::floor(exact).min(taken as f64);
                self.zero_carry[r] = exact - whole;
                whole as u64
            };
            self.zero_in_bitmap[r] = (self.zero_in_bitmap[r] - taken as f64 * zero_share).max(0.0);
            batch.zero_pages += zero;
            batch.normal_pages += taken - zero;
            spent += zero * cost.zero_page_bytes + (taken - zero) * cost.normal_page_bytes;
            self.dirty -= taken;
            fruitless_hops = if taken > 0 { 0 } else { fruitless_hops + 1 };
            if pos >= self.layout.regions[r].pages {
                self.cursor_region = (self.cursor_region + 1) % regions;
                self.cursor_pos = 0;
            } else {
                self.cursor_pos = pos;
            }
        }
    }

    fn run_writers(&mut self, step: Step) -> f64 {
        let mut written = 0.0;
        let fault_ns = if step.logging {
            self.layout.fault_ns
        } else {
            0.0
        };
        for (wi, w) in self.layout.writers.iter().enumerate() {
            let scale = w.rate_scale_at(step.t_s);
            let cpu_rate = w.cpu_rate_pages_s * scale;
            let dma =
                w.dma_rate_at(step.throttle_pct, self.run_share[wi]) * scale * step.wall_ns / 1e9;
            let x = if cpu_rate > 0.0 && w.vcpus > 0 {
                let budget = step.cpu_ns_per_vcpu * f64::from(w.vcpus) * self.run_share[wi];
                let write_ns = f64::from(w.vcpus) * 1e9 / cpu_rate;
                let seq: Vec<SeqView>;
                let uni: Vec<UniView>;
                let mut views: Vec<(f64, &dyn NewPages)> = Vec::with_capacity(w.targets.len());
                match w.access {
                    Access::Sequential => {
                        seq = w
                            .targets
                            .iter()
                            .map(|t| {
                                let pages = self.layout.regions[t.region].pages as f64;
                                let since = match self.logs[t.region] {
                                    LogState::Sequential { total, at_sync } => total - at_sync,
                                    _ => 0.0,
                                };
                                SeqView {
                                    remaining: (pages - since).max(0.0),
                                }
                            })
                            .collect();
                        for (t, v) in w.targets.iter().zip(&seq) {
                            views.push((t.share, v));
                        }
                    }
                    Access::Random => {
                        uni = w
                            .targets
                            .iter()
                            .map(|t| {
                                let pages = self.layout.regions[t.region].pages as f64;
                                let writes = match self.logs[t.region] {
                                    LogState::Uniform { writes } => writes,
                                    _ => 0.0,
                                };
                                UniView {
                                    pages,
                                    unwritten: pages * libm::exp(-writes / pages),
                                }
                            })
                            .collect();
                        for (t, v) in w.targets.iter().zip(&uni) {
                            views.push((t.share, v));
                        }
                    }
                }
                let guess = self.writes_per_ns[wi].map(|r| r * budget);
                let x = solve_cpu_writes(budget, write_ns, fault_ns, dma, &views, guess);
                if budget > 0.0 {
                    self.writes_per_ns[wi] = Some(x / budget);
                }
                x
            } else {
                0.0
            };
            // A calibrated writer's curve writes are its vCPUs' writes: they fill the rings.
            self.cpu_written[wi] += if w.is_calibrated() { dma } else { x };
            let y = x + dma;
            for t in &w.targets {
                let z = t.share * y;
                let pages = self.layout.regions[t.region].pages as f64;
                // Writes turn zero pages into data: uniform writes leave a share e^(-z/N)
                // untouched; a sweep covers z/N of the region.
                let has_zero = self.zero_pages[t.region] > 0.0;
                let still_zero = match &mut self.logs[t.region] {
                    LogState::Sequential { total, .. } => {
                        *total += z;
                        (1.0 - z / pages).max(0.0)
                    }
                    LogState::Uniform { writes } => {
                        *writes += z;
                        // Only needed while the region has zero pages (an exp per step saved).
                        if has_zero {
                            libm::exp(-z / pages)
                        } else {
                            1.0
                        }
                    }
                    LogState::Untouched => 1.0,
                };
                if has_zero {
                    self.zero_pages[t.region] *= still_zero;
                    self.zero_in_bitmap[t.region] *= still_zero;
                }
            }
            written += y;
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_distinct_matches_small_exact_case() {
        // 2 writes into 4 pages: E[U] = 4 (1 - (3/4)^2) = 1.75; U is 1 (prob 1/4) or 2 (3/4):
        // Var = E[U^2] - E[U]^2 = (1/4 + 4*3/4) - 1.75^2 = 3.25 - 3.0625 = 0.1875.
        let (mean, var) = uniform_distinct(4.0, 2.0);
        assert!((mean - 1.75).abs() < 1e-12);
        assert!((var - 0.1875).abs() < 1e-12, "{var}");
        // Saturation: U(t) = N (1 - e^(-wt/N)) for large N.
        let (mean, var) = uniform_distinct(1e6, 1e6);
        assert!((mean / 1e6 - (1.0 - (-1.0f64).exp())).abs() < 1e-6);
        assert!(var > 0.0 && var < 1e6);
    }
}
