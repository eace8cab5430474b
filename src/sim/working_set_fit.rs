//! Working set and write rate from how the distinct pages dirtied grow with the interval.
//!
//! A guest writing w pages/s uniformly at random over a working set of N pages dirties
//! U(T) = N(1 - e^(-wT/N)) distinct pages in an interval T (the model the simulator's random
//! regions and calibrated writers use, [`crate::scenario::calibrate`]): linear (slope w) while
//! wT << N, saturating at N. One dirty rate is one point of that curve and cannot tell a small
//! working set written fast from a large one written slowly; several intervals can.
//!
//! [`fit`] finds the least-squares (N, w) through measured (T, U) points. With a = w/N the
//! model is linear in N for a fixed a, so N has a closed form for each a (variable projection)
//! and only a is searched: a log-spaced scan, then golden-section refinement around the best
//! scan point. No random starts, no platform libm: the same points give the same bits.

/// One measurement: `distinct_pages` dirtied over `interval_s`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntervalSample {
    /// Interval measured over (s), above 0.
    pub interval_s: f64,
    /// Distinct pages dirtied in it.
    pub distinct_pages: f64,
}

/// The fitted curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkingSetFit {
    /// Working set N (pages).
    pub working_set_pages: f64,
    /// Write rate w (page writes/s, as a uniform random writer would make them).
    pub write_rate_pages_s: f64,
    /// N reached the ceiling it was given (the guest's memory): the curve had not bent over
    /// the measured intervals, so N is only known to be large; w is still the initial slope.
    pub at_ceiling: bool,
    /// U(T_max)/N: how far into saturation the longest interval got (0..1). Under ~0.3 the
    /// curve is nearly straight over the intervals and N is poorly determined.
    pub saturation: f64,
    /// Root-mean-square residual (pages).
    pub rms_pages: f64,
}

impl WorkingSetFit {
    /// U(T) of the fitted curve.
    pub fn distinct_pages(&self, interval_s: f64) -> f64 {
        uniform_distinct_pages(self.working_set_pages, self.write_rate_pages_s, interval_s)
    }
}

/// U(T) = N(1 - e^(-wT/N)): distinct pages a uniform writer of `w` pages/s dirties in `t_s`
/// over `n` pages.
pub fn uniform_distinct_pages(n: f64, w: f64, t_s: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    -n * libm::expm1(-w * t_s / n)
}

/// Why points cannot be fitted.
#[derive(Debug, PartialEq, displaydoc::Display, thiserror::Error)]
pub enum FitError {
    /// at least two different intervals are needed to separate the working set from the write rate,
    /// found {0}
    TooFewIntervals(usize),
    /// interval {0} s: intervals must be finite and above 0
    BadInterval(f64),
    /// {0} distinct pages: counts must be finite and >= 0
    BadCount(f64),
    /// the guest dirtied no pages in any interval: there is no write rate to fit
    NoWrites,
}

/// Least-squares fit of U(T) = N(1 - e^(-wT/N)) to `samples`, with N at most
/// `max_working_set_pages` (the guest's memory: no working set is larger).
pub fn fit(
    samples: &[IntervalSample],
    max_working_set_pages: f64,
) -> Result<WorkingSetFit, FitError> {
    for s in samples {
        if !s.interval_s.is_finite() || s.interval_s <= 0.0 {
            return Err(FitError::BadInterval(s.interval_s));
        }
        if !s.distinct_pages.is_finite() || s.distinct_pages < 0.0 {
            return Err(FitError::BadCount(s.distinct_pages));
        }
    }
    let mut intervals: Vec<f64> = samples.iter().map(|s| s.interval_s).collect();
    intervals.sort_by(f64::total_cmp);
    intervals.dedup();
    if intervals.len() < 2 {
        return Err(FitError::TooFewIntervals(intervals.len()));
    }
    if samples.iter().all(|s| s.distinct_pages == 0.0) {
        return Err(FitError::NoWrites);
    }
    let (t_min, t_max) = (intervals[0], intervals[intervals.len() - 1]);
    let ceiling = max_working_set_pages.max(1.0);

    // a = w/N spans from "no bend at all over t_max" to "saturated within a hundredth of t_min".
    let (lo, hi) = ((1e-6 / t_max).ln(), (100.0 / t_min).ln());
    const SCAN: usize = 400;
    let cost_at = |ln_a: f64| projected(samples, libm::exp(ln_a), ceiling);
    let mut best = 0;
    let mut best_cost = f64::INFINITY;
    for i in 0..=SCAN {
        let c = cost_at(lo + (hi - lo) * i as f64 / SCAN as f64).1;
        if c < best_cost {
            best_cost = c;
            best = i;
        }
    }
    // Golden section between the scan neighbours of the best point.
    let step = (hi - lo) / SCAN as f64;
    let (mut x0, mut x3) = (
        lo + step * best.saturating_sub(1) as f64,
        lo + step * (best + 1).min(SCAN) as f64,
    );
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = x3 - g * (x3 - x0);
    let mut x2 = x0 + g * (x3 - x0);
    let (mut c1, mut c2) = (cost_at(x1).1, cost_at(x2).1);
    for _ in 0..100 {
        if c1 <= c2 {
            x3 = x2;
            x2 = x1;
            c2 = c1;
            x1 = x3 - g * (x3 - x0);
            c1 = cost_at(x1).1;
        } else {
            x0 = x1;
            x1 = x2;
            c1 = c2;
            x2 = x0 + g * (x3 - x0);
            c2 = cost_at(x2).1;
        }
    }
    let mut ln_a = if c1 <= c2 { x1 } else { x2 };
    if cost_at(lo + step * best as f64).1 < cost_at(ln_a).1 {
        ln_a = lo + step * best as f64;
    }
    let a = libm::exp(ln_a);
    let (n, cost) = cost_at(ln_a);
    Ok(WorkingSetFit {
        working_set_pages: n,
        write_rate_pages_s: n * a,
        at_ceiling: n >= ceiling * (1.0 - 1e-9),
        saturation: -libm::expm1(-a * t_max),
        rms_pages: (cost / samples.len() as f64).sqrt(),
    })
}

/// For a fixed a = w/N: the least-squares N (capped at `ceiling`) and its sum of squares.
fn projected(samples: &[IntervalSample], a: f64, ceiling: f64) -> (f64, f64) {
    let f = |t: f64| -libm::expm1(-a * t);
    let (mut uf, mut ff) = (0.0, 0.0);
    for s in samples {
        let fi = f(s.interval_s);
        uf += s.distinct_pages * fi;
        ff += fi * fi;
    }
    let n = if ff > 0.0 {
        (uf / ff).clamp(0.0, ceiling)
    } else {
        0.0
    };
    let cost = samples
        .iter()
        .map(|s| (s.distinct_pages - n * f(s.interval_s)).powi(2))
        .sum();
    (n, cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{Rng, SeedableRng};

    fn curve(n: f64, w: f64, ts: &[f64]) -> Vec<IntervalSample> {
        ts.iter()
            .map(|&t| IntervalSample {
                interval_s: t,
                distinct_pages: uniform_distinct_pages(n, w, t),
            })
            .collect()
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b
    }

    #[test]
    fn closed_form_points_give_back_their_parameters() {
        // From barely bent to nearly saturated at the longest interval.
        for (n, w) in [
            (16384.0, 12_000.0),
            (65536.0, 20_000.0),
            (1_000_000.0, 300_000.0),
            (4096.0, 50_000.0),
        ] {
            let f = fit(&curve(n, w, &[1.0, 2.0, 4.0, 8.0]), 1e9).unwrap();
            assert!(rel(f.working_set_pages, n) < 1e-6, "{n} {w}: {f:?}");
            assert!(rel(f.write_rate_pages_s, w) < 1e-6, "{n} {w}: {f:?}");
            assert!(!f.at_ceiling);
            assert!(f.rms_pages < 1e-3 * n, "{f:?}");
        }
    }

    #[test]
    fn the_fit_is_deterministic() {
        let pts = curve(20_000.0, 9_000.0, &[1.0, 3.0, 5.0]);
        assert_eq!(fit(&pts, 1e9).unwrap(), fit(&pts, 1e9).unwrap());
    }

    #[test]
    fn noisy_points_land_near_the_truth() {
        // 3% multiplicative noise, 3 repeats at 5 intervals, 20 seeds: the working set and
        // the rate stay within 10% (N/w = 1.6 s: the intervals see the curve bend).
        let (n, w) = (32768.0, 20_000.0);
        let mut worst: f64 = 0.0;
        for seed in 0..20u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut pts = Vec::new();
            for t in [0.5, 1.0, 2.0, 4.0, 8.0] {
                for _ in 0..3 {
                    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    let noise = 1.0 + 0.03 * (2.0 * u - 1.0);
                    pts.push(IntervalSample {
                        interval_s: t,
                        distinct_pages: uniform_distinct_pages(n, w, t) * noise,
                    });
                }
            }
            let f = fit(&pts, 1e9).unwrap();
            worst = worst
                .max(rel(f.working_set_pages, n))
                .max(rel(f.write_rate_pages_s, w));
        }
        assert!(worst < 0.10, "worst relative error {worst}");
    }

    #[test]
    fn a_straight_line_hits_the_memory_ceiling_and_keeps_the_slope() {
        // wT/N is at most 0.016: the intervals cannot see a bend. The guest has 2M pages
        // (8 GiB), so the fit stops there.
        let pts = curve(1e7, 20_000.0, &[1.0, 2.0, 4.0, 8.0]);
        let f = fit(&pts, 2_097_152.0).unwrap();
        assert!(f.at_ceiling, "{f:?}");
        assert_eq!(f.working_set_pages, 2_097_152.0);
        // Forced to the ceiling the best curve bends a little: the slope stays within 5%.
        assert!(rel(f.write_rate_pages_s, 20_000.0) < 0.05, "{f:?}");
        assert!(f.saturation < 0.1, "{f:?}");
    }

    #[test]
    fn a_saturated_curve_reports_the_working_set() {
        // All intervals long past N/w: U = N everywhere; N is exact, w is only a lower bound.
        let pts = curve(8192.0, 1e6, &[1.0, 2.0, 4.0]);
        let f = fit(&pts, 1e9).unwrap();
        assert!(rel(f.working_set_pages, 8192.0) < 1e-6, "{f:?}");
        assert!(f.saturation > 0.999);
    }

    #[test]
    fn bad_points_are_refused() {
        let one = [IntervalSample {
            interval_s: 1.0,
            distinct_pages: 5.0,
        }];
        assert_eq!(fit(&one, 1e6), Err(FitError::TooFewIntervals(1)));
        let twice = [one[0], one[0]];
        assert_eq!(fit(&twice, 1e6), Err(FitError::TooFewIntervals(1)));
        let zero = curve(100.0, 0.0, &[1.0, 2.0]);
        assert_eq!(fit(&zero, 1e6), Err(FitError::NoWrites));
        let bad_t = [
            one[0],
            IntervalSample {
                interval_s: 0.0,
                distinct_pages: 1.0,
            },
        ];
        assert_eq!(fit(&bad_t, 1e6), Err(FitError::BadInterval(0.0)));
        let bad_u = [
            one[0],
            IntervalSample {
                interval_s: 2.0,
                distinct_pages: f64::NAN,
            },
        ];
        assert!(matches!(fit(&bad_u, 1e6), Err(FitError::BadCount(_))));
    }
}
