//! The profile CSV: a workload's dirty rate at each throttle percentage, measured with dirty
//! logging on as during a migration. `autoconv profile` writes it from a simulated scenario,
//! `autoconv profile --kvm` from a real guest; a scenario region can take it as its workload
//! (`pattern = "profile"`), and `autoconv plot` draws it against auto-converge's threshold.
//!
//! One row per throttle level, columns in this order (the first three are required to read a
//! profile; the rest describe how it was measured and may be empty or absent):
//!
//! | column | meaning |
//! |---|---|
//! | `throttle_pct` | throttle held (0 = none, 1..99 as `cpu-throttle-percentage`); strictly increasing |
//! | `dirty_pages_s` | distinct pages newly dirtied per second, harvested every `interval_ms` (QEMU's `dirty-pages-rate`): mean over the hold |
//! | `interval_ms` | dirty-log harvest period the rate was measured over (QEMU computes its rate over periods of at least 1000 ms) |
//! | `dirty_pages_s_min`, `dirty_pages_s_max` | lowest and highest rate among the harvests of the hold |
//! | `guest_write_pages_s` | page writes per second the guest made (repeat writes to a page included): its own progress |
//! | `guest_cpu_pct` | CPU share the vCPUs got (100 = unthrottled) |
//! | `hold_ms` | time measured at this level (after settling) |
//! | `syncs` | harvests in the hold |
//! | `page_size_bytes` | page size (4096) |
//! | `memory_bytes` | guest RAM |
//! | `vcpus` | guest vCPUs |
//! | `source` | what was measured: `sim:<scenario> seed=<n>`, `kvm:<image>` or `qmp:<socket> ...` |
//! | `host_cpu_model` | the host a real guest was measured on: `model name` of its /proc/cpuinfo |
//! | `host_cores` | that host's logical CPUs |
//! | `verdict_bandwidth_bytes_s` | the migration bandwidth `autoconv profile` judged the curve at (what `plot` draws the threshold for unless told `--bandwidth`) |
//! | `verdict_throttle_trigger_threshold_pct` | the throttle-trigger-threshold of that verdict |
//!
//! The metadata columns repeat on every row so the file stays one self-describing table that
//! any CSV tool reads. The guest's unthrottled write rate, which tells whether a guest runs as
//! it did when profiled, is `guest_write_pages_s` of the `throttle_pct` 0 row. `dirty_pages_per_s` and `guest_write_pages_per_s` are accepted as
//! older spellings of the two rate columns.

use crate::migration::dirty_rate::DirtyRates;
use serde::Deserialize;
use std::io::Write;
use std::path::Path;

/// Columns written, in order.
pub const PROFILE_COLUMNS: &[&str] = &[
    "throttle_pct",
    "dirty_pages_s",
    "interval_ms",
    "dirty_pages_s_min",
    "dirty_pages_s_max",
    "guest_write_pages_s",
    "guest_cpu_pct",
    "hold_ms",
    "syncs",
    "page_size_bytes",
    "memory_bytes",
    "vcpus",
    "source",
    "host_cpu_model",
    "host_cores",
    "verdict_bandwidth_bytes_s",
    "verdict_throttle_trigger_threshold_pct",
];

/// One throttle level.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
pub struct ProfileRow {
    /// Throttle held (%).
    pub throttle_pct: u32,
    /// Distinct pages newly dirtied per second (mean over the hold).
    #[serde(alias = "dirty_pages_per_s")]
    pub dirty_pages_s: f64,
    /// Harvest period (ms).
    pub interval_ms: u64,
    /// Lowest per-harvest rate.
    #[serde(default)]
    pub dirty_pages_s_min: Option<f64>,
    /// Highest per-harvest rate.
    #[serde(default)]
    pub dirty_pages_s_max: Option<f64>,
    /// The guest's own page writes per second.
    #[serde(default, alias = "guest_write_pages_per_s")]
    pub guest_write_pages_s: Option<f64>,
    /// CPU share the vCPUs got (%).
    #[serde(default)]
    pub guest_cpu_pct: Option<f64>,
    /// Time measured (ms).
    #[serde(default)]
    pub hold_ms: Option<u64>,
    /// Harvests measured.
    #[serde(default)]
    pub syncs: Option<u64>,
    /// Page size (bytes).
    #[serde(default)]
    pub page_size_bytes: Option<u64>,
    /// Guest RAM (bytes).
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Guest vCPUs.
    #[serde(default)]
    pub vcpus: Option<u32>,
    /// What was measured.
    #[serde(default)]
    pub source: Option<String>,
    /// CPU model of the host a real guest was measured on (profiles before it: absent).
    #[serde(default)]
    pub host_cpu_model: Option<String>,
    /// Logical CPUs of that host.
    #[serde(default)]
    pub host_cores: Option<u32>,
    /// The migration bandwidth the profile's verdict was judged at (bytes/s), so a re-plot
    /// of the CSV draws the verdict `profile` printed.
    #[serde(default)]
    pub verdict_bandwidth_bytes_s: Option<u64>,
    /// The throttle-trigger-threshold of that verdict (%).
    #[serde(default)]
    pub verdict_throttle_trigger_threshold_pct: Option<u32>,
}

/// A whole profile, rows in increasing throttle order.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Rows.
    pub rows: Vec<ProfileRow>,
}

/// A profile that cannot be read.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum ProfileError {
    /// cannot read profile {path}: {message}
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// {path}:{line}: {message}
    Invalid {
        /// The file.
        path: String,
        /// Line (1 = header).
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Where auto-converge stands against a profile at one bandwidth.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// Migration bandwidth assumed (bytes/s).
    pub bandwidth_bytes_s: f64,
    /// `throttle-trigger-threshold` (%).
    pub trigger_pct: u32,
    /// Dirty rate below which auto-converge stops raising the throttle (pages/s):
    /// trigger% of the bandwidth.
    pub threshold_pages_s: f64,
    /// The bandwidth in pages/s: a dirty rate at or above it can never converge.
    pub bandwidth_pages_s: f64,
    /// First measured throttle level whose dirty rate is at or under the threshold.
    pub settles_at_pct: Option<u32>,
}

impl Profile {
    /// The curve the predictive policy reads: (throttle %, dirty bytes/s) per row.
    pub fn dirty_bytes_curve(&self) -> Vec<(u32, f64)> {
        self.rows
            .iter()
            .map(|r| {
                let page = r.page_size_bytes.unwrap_or(4096) as f64;
                (r.throttle_pct, r.dirty_pages_s * page)
            })
            .collect()
    }

    /// The rows of a measurement by the core's dirty-rate routine, `source` naming what was
    /// measured (`sim:<scenario> seed=<n>`, `kvm:<image>`) and `host` the machine a real guest
    /// ran on (None for a model, which runs the same on every host).
    pub fn from_dirty_rates(
        rates: &DirtyRates,
        source: &str,
        host: Option<&crate::report::host::HostInfo>,
    ) -> Profile {
        let rows = rates
            .levels
            .iter()
            .map(|l| ProfileRow {
                throttle_pct: l.throttle_pct,
                dirty_pages_s: l.dirty_pages_s,
                interval_ms: rates.interval_ms,
                dirty_pages_s_min: Some(l.dirty_pages_s_min),
                dirty_pages_s_max: Some(l.dirty_pages_s_max),
                guest_write_pages_s: Some(l.guest_write_pages_s),
                guest_cpu_pct: Some(l.guest_cpu_pct),
                hold_ms: Some(l.hold_ms),
                syncs: Some(l.syncs),
                page_size_bytes: Some(rates.page_size_bytes),
                memory_bytes: Some(rates.ram_bytes),
                vcpus: Some(rates.vcpus),
                source: Some(source.to_string()),
                host_cpu_model: host.map(|h| h.cpu_model.clone()),
                host_cores: host.map(|h| h.cores),
                verdict_bandwidth_bytes_s: None,
                verdict_throttle_trigger_threshold_pct: None,
            })
            .collect();
        Profile { rows }
    }

    /// Record on every row the bandwidth and trigger the verdict was judged at.
    pub fn set_verdict_settings(&mut self, bandwidth_bytes_s: f64, trigger_pct: u32) {
        for r in &mut self.rows {
            r.verdict_bandwidth_bytes_s = Some(bandwidth_bytes_s.round() as u64);
            r.verdict_throttle_trigger_threshold_pct = Some(trigger_pct);
        }
    }

    /// The bandwidth (bytes/s) and trigger (%) the file's verdict was judged at, if it says.
    pub fn verdict_settings(&self) -> (Option<f64>, Option<u32>) {
        let first = self.rows.first();
        (
            first
                .and_then(|r| r.verdict_bandwidth_bytes_s)
                .filter(|&b| b > 0)
                .map(|b| b as f64),
            first.and_then(|r| r.verdict_throttle_trigger_threshold_pct),
        )
    }

    /// Read a profile CSV.
    pub fn read(path: &Path) -> Result<Profile, ProfileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&shown, &text)
    }

    /// Parse a profile CSV's text (`path` for messages).
    pub fn parse(path: &str, text: &str) -> Result<Profile, ProfileError> {
        let invalid = |line: u64, message: String| ProfileError::Invalid {
            path: path.to_string(),
            line,
            message,
        };
        let mut r = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header = r.headers().map_err(|e| invalid(1, e.to_string()))?.clone();
        for required in ["throttle_pct", "interval_ms"] {
            if !header.iter().any(|h| h == required) {
                return Err(invalid(
                    1,
                    format!(
                        "not a profile CSV: no `{required}` column (columns: {})",
                        PROFILE_COLUMNS.join(", ")
                    ),
                ));
            }
        }
        if !header
            .iter()
            .any(|h| h == "dirty_pages_s" || h == "dirty_pages_per_s")
        {
            return Err(invalid(
                1,
                "not a profile CSV: no `dirty_pages_s` column".into(),
            ));
        }
        let mut rows: Vec<ProfileRow> = Vec::new();
        for rec in r.records() {
            let rec =
                rec.map_err(|e| invalid(e.position().map_or(0, |p| p.line()), e.to_string()))?;
            let line = rec.position().map_or(0, |p| p.line());
            let row: ProfileRow = rec
                .deserialize(Some(&header))
                .map_err(|e| invalid(line, e.to_string()))?;
            if row.throttle_pct > 99 {
                return Err(invalid(
                    line,
                    format!("throttle_pct {} is above 99", row.throttle_pct),
                ));
            }
            if let Some(prev) = rows.last() {
                if row.throttle_pct <= prev.throttle_pct {
                    return Err(invalid(
                        line,
                        format!(
                            "throttle_pct must increase from row to row ({} after {})",
                            row.throttle_pct, prev.throttle_pct
                        ),
                    ));
                }
                if row.interval_ms != prev.interval_ms {
                    return Err(invalid(
                        line,
                        format!(
                            "interval_ms {} differs from the rows above ({}): measure every level over the same period",
                            row.interval_ms, prev.interval_ms
                        ),
                    ));
                }
            }
            if !row.dirty_pages_s.is_finite() || row.dirty_pages_s < 0.0 {
                return Err(invalid(
                    line,
                    format!(
                        "dirty_pages_s must be a number >= 0, found {}",
                        row.dirty_pages_s
                    ),
                ));
            }
            if row.interval_ms == 0 {
                return Err(invalid(line, "interval_ms must be above 0".into()));
            }
            if let Some(p) = row.page_size_bytes.filter(|&p| p != 4096) {
                return Err(invalid(
                    line,
                    format!("page_size_bytes {p}: only 4096-byte pages are modelled"),
                ));
            }
            rows.push(row);
        }
        if rows.len() < 2 {
            return Err(invalid(
                1,
                format!(
                    "a profile needs at least two throttle levels, found {}",
                    rows.len()
                ),
            ));
        }
        Ok(Profile { rows })
    }

    /// Write as CSV (fixed decimals, so files compare byte for byte).
    pub fn write<W: Write>(&self, out: W) -> Result<(), csv::Error> {
        let opt_f = |v: Option<f64>, d: usize| v.map_or(String::new(), |x| format!("{x:.d$}"));
        let opt_u = |v: Option<u64>| v.map_or(String::new(), |x| x.to_string());
        let mut w = csv::Writer::from_writer(out);
        w.write_record(PROFILE_COLUMNS)?;
        for r in &self.rows {
            w.write_record([
                r.throttle_pct.to_string(),
                format!("{:.1}", r.dirty_pages_s),
                r.interval_ms.to_string(),
                opt_f(r.dirty_pages_s_min, 1),
                opt_f(r.dirty_pages_s_max, 1),
                opt_f(r.guest_write_pages_s, 1),
                opt_f(r.guest_cpu_pct, 2),
                opt_u(r.hold_ms),
                opt_u(r.syncs),
                opt_u(r.page_size_bytes),
                opt_u(r.memory_bytes),
                opt_u(r.vcpus.map(u64::from)),
                r.source.clone().unwrap_or_default(),
                r.host_cpu_model.clone().unwrap_or_default(),
                opt_u(r.host_cores.map(u64::from)),
                opt_u(r.verdict_bandwidth_bytes_s),
                opt_u(r.verdict_throttle_trigger_threshold_pct.map(u64::from)),
            ])?;
        }
        w.flush()?;
        Ok(())
    }

    /// The guest's own page writes per second unthrottled (`guest_write_pages_s` at 0%), if
    /// measured.
    pub fn unthrottled_write_pages_s(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.throttle_pct == 0)
            .and_then(|r| r.guest_write_pages_s)
    }

    /// The host a real guest was measured on, if the profile says.
    pub fn host(&self) -> Option<crate::report::host::HostInfo> {
        let r = &self.rows[0];
        let cpu_model = r.host_cpu_model.clone().filter(|m| !m.is_empty())?;
        Some(crate::report::host::HostInfo {
            cpu_model,
            cores: r.host_cores.unwrap_or(0),
        })
    }

    /// The harvest period the rates were measured over (ms).
    pub fn interval_ms(&self) -> u64 {
        self.rows[0].interval_ms
    }

    /// The dirty rate at `pct`, linearly interpolated between measured levels and held
    /// constant beyond the first and last.
    pub fn dirty_pages_s_at(&self, pct: f64) -> f64 {
        interpolate(
            &self
                .rows
                .iter()
                .map(|r| (f64::from(r.throttle_pct), r.dirty_pages_s))
                .collect::<Vec<_>>(),
            pct,
        )
    }

    /// Where auto-converge stands at `bandwidth_bytes_s` with `throttle-trigger-threshold`
    /// `trigger_pct`: QEMU raises the throttle while the bytes dirtied in a sync period exceed
    /// trigger% of the bytes sent, so it stops at the first level under that line.
    pub fn verdict(&self, bandwidth_bytes_s: f64, trigger_pct: u32) -> Verdict {
        let page = self.rows[0].page_size_bytes.unwrap_or(4096) as f64;
        let bandwidth_pages_s = bandwidth_bytes_s / page;
        let threshold_pages_s = bandwidth_pages_s * f64::from(trigger_pct) / 100.0;
        Verdict {
            bandwidth_bytes_s,
            trigger_pct,
            threshold_pages_s,
            bandwidth_pages_s,
            settles_at_pct: self
                .rows
                .iter()
                .find(|r| r.dirty_pages_s <= threshold_pages_s)
                .map(|r| r.throttle_pct),
        }
    }
}

/// Piecewise-linear interpolation through `points` (x increasing), constant outside.
pub fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    let Some(&(x0, y0)) = points.first() else {
        return 0.0;
    };
    if x <= x0 {
        return y0;
    }
    for w in points.windows(2) {
        let ((xa, ya), (xb, yb)) = (w[0], w[1]);
        if x <= xb {
            return ya + (yb - ya) * (x - xa) / (xb - xa);
        }
    }
    points[points.len() - 1].1
}

#[cfg(test)]
mod tests {
    use super::*;

    const KVM_STYLE: &str =
        "throttle_pct,dirty_pages_per_s,interval_ms\n0,1000,1000\n50,500,1000\n99,10,1000\n";

    #[test]
    fn round_trip_and_interpolation() {
        let p = Profile::parse("p.csv", KVM_STYLE).unwrap();
        assert_eq!(p.rows.len(), 3);
        assert_eq!(p.dirty_pages_s_at(25.0), 750.0);
        assert_eq!(p.dirty_pages_s_at(0.0), 1000.0);
        assert_eq!(p.dirty_pages_s_at(99.0), 10.0);
        let mut buf = Vec::new();
        p.write(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with(&PROFILE_COLUMNS.join(",")));
        let back = Profile::parse("p.csv", &text).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn verdict_finds_first_level_under_the_trigger_line() {
        let p = Profile::parse("p.csv", KVM_STYLE).unwrap();
        // 4096 B pages: 2,048,000 B/s is 500 pages/s; 50% of it is 250 pages/s.
        let v = p.verdict(2_048_000.0, 50);
        assert_eq!(v.threshold_pages_s, 250.0);
        assert_eq!(v.settles_at_pct, Some(99));
        let v = p.verdict(4_096_000.0, 50);
        assert_eq!(v.settles_at_pct, Some(50));
        assert_eq!(p.verdict(4096.0, 50).settles_at_pct, None);
    }

    #[test]
    fn bad_profiles_name_line_and_problem() {
        for (text, needle) in [
            (
                "a,b\n1,2\n",
                "p.csv:1: not a profile CSV: no `throttle_pct`",
            ),
            ("throttle_pct,interval_ms\n0,1000\n", "no `dirty_pages_s`"),
            (
                "throttle_pct,dirty_pages_s,interval_ms\n0,10,1000\n0,5,1000\n",
                "p.csv:3: throttle_pct must increase",
            ),
            (
                "throttle_pct,dirty_pages_s,interval_ms\n0,10,1000\n100,5,1000\n",
                "p.csv:3: throttle_pct 100 is above 99",
            ),
            (
                "throttle_pct,dirty_pages_s,interval_ms\n0,ten,1000\n50,5,1000\n",
                "p.csv:2:",
            ),
            (
                "throttle_pct,dirty_pages_s,interval_ms\n0,-1,1000\n50,5,1000\n",
                "must be a number >= 0",
            ),
            (
                "throttle_pct,dirty_pages_s,interval_ms\n0,10,1000\n50,5,500\n",
                "interval_ms 500 differs",
            ),
            (
                "throttle_pct,dirty_pages_s,interval_ms\n0,10,1000\n",
                "at least two throttle levels",
            ),
        ] {
            let e = Profile::parse("p.csv", text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
