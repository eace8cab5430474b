//! Calibrated workloads: a region whose writes follow a measured profile (the CSV of
//! `autoconv profile`, from a real guest or a model) instead of hand-set rates.
//!
//! # Method
//!
//! A profile gives, at each throttle level p, the dirty rate D(p): distinct pages newly dirty
//! per harvest period T (QEMU's `dirty-pages-rate`, T usually 1 s). The simulator needs a
//! write rate it can run for any length of time, so each D(p) is turned into the rate w(p) of
//! an equivalent writer over the region's N pages that dirties exactly D(p)·T distinct pages in
//! T:
//!
//! * uniform random writes (`profile_access = "random"`, the default): U(T) = N(1 - e^(-wT/N))
//!   inverted, w = -(N/T) ln(1 - D·T/N);
//! * hot/cold writes (`profile_access = "hotcold"` with `hot_size` H and `hot_writes_pct` h):
//!   U(T) = H(1 - e^(-h·wT/H)) + C(1 - e^(-(1-h)·wT/C)) with C = N - H, increasing in w and
//!   solved by bisection;
//! * a sequential sweep (`profile_access = "sequential"`): every write is a new page until the
//!   region wraps, w = D.
//!
//! During a simulation the region is written at w(p) for the throttle p in force, linearly
//! interpolated between measured levels (constant beyond the first and last). The writes are
//! wall-clock writes: the throttle acts only through the curve, which already holds everything
//! the measurement saw (vCPU sleeps, dirty-logging faults, work the guest does between writes),
//! so no fault cost is added on top.
//!
//! # Limits
//!
//! * The equivalence is exact only at the period T the profile was measured over. A migration's
//!   sync periods are often longer (a first pass over a big guest) or shorter; a real workload
//!   whose page choice is neither uniform over N pages nor a sweep (hot/cold skew, a working
//!   set that moves) dirties a different number of pages over other periods than the
//!   equivalent writer does. Choose `size` as the measured working set and the access that
//!   resembles the workload.
//! * The throttle is looked up at its current percentage: the delay until QEMU's next throttle
//!   tick and the in-progress sleep when the percentage changes are not in the curve.
//! * Rates between measured levels are interpolated; QEMU's default steps (20, 30, ..., 99) land
//!   on the profile's 10% grid except for 99, which the default profile measures too.
//! * A profile taken with dirty logging on includes its fault costs; one measured with logging
//!   off would overstate what a guest dirties during a migration.

use crate::report::profile::{interpolate, Profile};
use serde::Serialize;

/// How a calibrated region's equivalent writer picks pages.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "access")]
pub enum ProfileAccess {
    /// Uniformly at random over the region.
    Random,
    /// In address order, wrapping.
    Sequential,
    /// Uniformly within a hot set at the region's start and the cold rest, by share of writes.
    Hotcold {
        /// Pages in the hot set.
        hot_pages: u64,
        /// Share of writes to the hot set (%).
        hot_writes_pct: f64,
    },
}

/// A profile that cannot drive a region.
#[derive(Debug, Clone, PartialEq, displaydoc::Display, thiserror::Error)]
pub enum CalibrationError {
    /// the profile dirties {dirty_pages:.0} distinct pages per {interval_ms} ms at {throttle_pct}%
    /// throttle, more than the region's {region_pages} pages: make `size` the guest's working set
    RegionTooSmall {
        /// Throttle level.
        throttle_pct: u32,
        /// Pages dirtied per period.
        dirty_pages: f64,
        /// Period.
        interval_ms: u64,
        /// Region size in pages.
        region_pages: u64,
    },
}

/// The equivalent write rate at each measured throttle level.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThrottleCurve {
    /// (throttle %, page writes per second of wall time), increasing in throttle.
    pub points: Vec<(u32, f64)>,
}

/// A profile dirtying more than N pages per period by this factor is refused rather than
/// clamped (measurement noise may put a saturated region slightly above N).
const SATURATION_SLACK: f64 = 1.02;

impl ThrottleCurve {
    /// The curve for a region of `region_pages` pages written with `access`.
    pub fn from_profile(
        profile: &Profile,
        region_pages: u64,
        access: ProfileAccess,
    ) -> Result<ThrottleCurve, CalibrationError> {
        let n = region_pages as f64;
        let t = profile.interval_ms() as f64 / 1000.0;
        let mut points = Vec::with_capacity(profile.rows.len());
        for r in &profile.rows {
            let u = r.dirty_pages_s * t;
            if u > n * SATURATION_SLACK {
                return Err(CalibrationError::RegionTooSmall {
                    throttle_pct: r.throttle_pct,
                    dirty_pages: u,
                    interval_ms: profile.interval_ms(),
                    region_pages,
                });
            }
            let w = match access {
                ProfileAccess::Sequential => u.min(n) / t,
                ProfileAccess::Random => {
                    // A saturated region (every page dirty each period) is written at the rate
                    // that leaves half a page clean on average: any faster looks the same.
                    let u = u.min(n - 0.5).max(0.0);
                    -(n / t) * libm::log1p(-u / n)
                }
                ProfileAccess::Hotcold {
                    hot_pages,
                    hot_writes_pct,
                } => {
                    let h = hot_writes_pct / 100.0;
                    let parts = [(hot_pages as f64, h), (n - hot_pages as f64, 1.0 - h)];
                    invert_distinct(&parts, u.min(n - 0.5).max(0.0), t)
                }
            };
            points.push((r.throttle_pct, w));
        }
        Ok(ThrottleCurve { points })
    }

    /// Page writes per second (wall time) with the throttle at `pct`.
    pub fn rate_at(&self, pct: u32) -> f64 {
        self.rate_at_pct(f64::from(pct))
    }

    /// [`Self::rate_at`] at a fractional percentage: the share of time the vCPUs sleep, from
    /// the throttle or from dirty-limit's sleeps, as a throttle would make them sleep.
    pub fn rate_at_pct(&self, pct: f64) -> f64 {
        let pts: Vec<(f64, f64)> = self
            .points
            .iter()
            .map(|&(p, w)| (f64::from(p), w))
            .collect();
        interpolate(&pts, pct)
    }
}

/// Distinct pages after writing `w` pages/s for `t` s spread over `parts` (pages, share).
fn distinct(parts: &[(f64, f64)], w: f64, t: f64) -> f64 {
    parts
        .iter()
        .filter(|(pages, _)| *pages > 0.0)
        .map(|&(pages, share)| pages * -libm::expm1(-share * w * t / pages))
        .sum()
}

/// The rate `w` at which [`distinct`] reaches `u` (it increases with `w`), by bisection.
fn invert_distinct(parts: &[(f64, f64)], u: f64, t: f64) -> f64 {
    if u <= 0.0 {
        return 0.0;
    }
    let mut hi = u / t;
    // A share of 0 can never fill its part: stop doubling once nothing more is gained.
    for _ in 0..200 {
        if distinct(parts, hi, t) >= u {
            break;
        }
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if distinct(parts, mid, t) < u {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(rows: &[(u32, f64)]) -> Profile {
        let mut text = String::from("throttle_pct,dirty_pages_s,interval_ms\n");
        for (p, d) in rows {
            text.push_str(&format!("{p},{d},1000\n"));
        }
        Profile::parse("p.csv", &text).unwrap()
    }

    #[test]
    fn uniform_inversion_reproduces_the_measured_distinct_pages() {
        let n = 100_000u64;
        let p = profile(&[(0, 60_000.0), (50, 20_000.0), (99, 100.0)]);
        let c = ThrottleCurve::from_profile(&p, n, ProfileAccess::Random).unwrap();
        for (&(pct, w), row) in c.points.iter().zip(&p.rows) {
            let u = n as f64 * (1.0 - (-w / n as f64).exp());
            assert!(
                (u - row.dirty_pages_s).abs() < 1e-6 * row.dirty_pages_s,
                "{pct}: {u}"
            );
            // More writes than distinct pages: repeat writes are hidden in the measurement.
            assert!(w >= row.dirty_pages_s);
        }
        assert_eq!(c.rate_at(25), (c.points[0].1 + c.points[1].1) / 2.0);
        let s = ThrottleCurve::from_profile(&p, n, ProfileAccess::Sequential).unwrap();
        assert_eq!(s.points[1], (50, 20_000.0));
        // Hot/cold, solved numerically: the rate gives back the measured distinct pages, and a
        // 100% hot share over the whole region is the uniform case.
        let hc = ProfileAccess::Hotcold {
            hot_pages: 10_000,
            hot_writes_pct: 90.0,
        };
        let c = ThrottleCurve::from_profile(&p, n, hc).unwrap();
        for (&(_, w), row) in c.points.iter().zip(&p.rows) {
            let u = distinct(&[(10_000.0, 0.9), (90_000.0, 0.1)], w, 1.0);
            assert!(
                (u - row.dirty_pages_s).abs() < 1e-6 * row.dirty_pages_s,
                "{u}"
            );
        }
        let all_hot = ProfileAccess::Hotcold {
            hot_pages: n,
            hot_writes_pct: 100.0,
        };
        let a = ThrottleCurve::from_profile(&p, n, all_hot).unwrap();
        let r = ThrottleCurve::from_profile(&p, n, ProfileAccess::Random).unwrap();
        for (x, y) in a.points.iter().zip(&r.points) {
            assert!((x.1 - y.1).abs() < 1e-6 * y.1);
        }
    }

    #[test]
    fn a_region_smaller_than_what_is_dirtied_is_refused() {
        let p = profile(&[(0, 150_000.0), (99, 100.0)]);
        let e = ThrottleCurve::from_profile(&p, 100_000, ProfileAccess::Random).unwrap_err();
        assert!(
            e.to_string()
                .contains("more than the region's 100000 pages"),
            "{e}"
        );
        // Just saturated: accepted, finite.
        let p = profile(&[(0, 100_500.0), (99, 100.0)]);
        let c = ThrottleCurve::from_profile(&p, 100_000, ProfileAccess::Random).unwrap();
        assert!(c.points[0].1.is_finite() && c.points[0].1 > 100_000.0);
    }
}
