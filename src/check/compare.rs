//! Compare a recorded run (real KVM, or simulated) with a simulation of a scenario under the
//! same migration parameters: how close does a (calibrated) simulator come?
//!
//! The run's `summary.json` gives its outcome and the QEMU parameters it used; those are
//! applied to the scenario as `--set`s (before any the user adds), so both sides migrate with
//! the same policy, bandwidth limit and downtime limit.

use crate::sweep::{Metric, RunMetrics};
use serde_json::Value;
use std::fmt::Write as _;

/// A summary.json that cannot be compared.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
/// {path}: {message}
pub struct SummaryError {
    /// The file.
    pub path: String,
    /// What is missing or wrong.
    pub message: String,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Bool(true) => Some("on".into()),
        Value::Bool(false) => Some("off".into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// `--set` arguments that reproduce the run's migration parameters and autoconv settings.
///
/// Reads `parameters.migration.<name>` (as `autoconv sim` writes) or `parameters.<name>` (QEMU
/// parameter names at the top of `parameters`), and the time limit and QEMU version from
/// `parameters.autoconv` or `autoconv`.
pub fn overrides_from_summary(summary: &Value) -> Vec<String> {
    let mut sets = Vec::new();
    let params = match &summary["parameters"]["migration"] {
        Value::Object(m) => Some(m),
        _ => summary["parameters"].as_object(),
    };
    if let Some(m) = params {
        for name in crate::migration::params::PARAMETER_NAMES {
            if let Some(v) = m.get(*name).and_then(text) {
                // The run's bytes/s said with their unit, so a slow link the run really had
                // is not taken for a MiB/s slip (see the bare-bandwidth hint).
                let bandwidth = matches!(*name, "max-bandwidth" | "avail-switchover-bandwidth");
                if bandwidth && v.bytes().all(|b| b.is_ascii_digit()) {
                    sets.push(format!("{name}={v}B/s"));
                } else {
                    sets.push(format!("{name}={v}"));
                }
            }
        }
    }
    let settings = [&summary["parameters"]["autoconv"], &summary["autoconv"]];
    for s in settings {
        if let Some(t) = s["time_limit_s"].as_f64() {
            sets.push(format!("autoconv.time_limit_s={t}"));
        } else if let Some(ms) = s["time_limit_ms"].as_u64() {
            sets.push(format!("autoconv.time_limit_s={}", ms as f64 / 1000.0));
        }
        match &s["qemu_version"] {
            Value::String(v) => sets.push(format!("autoconv.qemu_version={v}")),
            Value::Object(o) => {
                if let (Some(a), Some(b)) = (o.get("major"), o.get("minor")) {
                    sets.push(format!("autoconv.qemu_version={a}.{b}"));
                }
            }
            _ => {}
        }
        if s.is_object() {
            break;
        }
    }
    sets
}

/// The outcome recorded in a summary.json.
pub fn metrics_from_summary(path: &str, s: &Value) -> Result<RunMetrics, SummaryError> {
    let missing = |field: &str| SummaryError {
        path: path.to_string(),
        message: format!("no `{field}`: not a summary.json from autoconv"),
    };
    let u = |field: &str| s[field].as_u64().ok_or_else(|| missing(field));
    Ok(RunMetrics {
        status: s["status"]
            .as_str()
            .ok_or_else(|| missing("status"))?
            .to_string(),
        total_time_ms: s["total_time_ms"].as_u64(),
        elapsed_ms: u("elapsed_ms")?,
        downtime_ms: s["downtime_ms"].as_u64(),
        transferred_bytes: u("transferred_bytes")?,
        dirty_sync_count: u("dirty_sync_count")?,
        max_throttle_pct: u("max_throttle_pct")? as u32,
        throttle_steps: s["throttle_steps"]
            .as_array()
            .ok_or_else(|| missing("throttle_steps"))?
            .iter()
            .filter_map(|v| v.as_u64().map(|x| x as u32))
            .collect(),
        guest_cpu_lost_s: s["guest_cpu_lost_s"].as_f64().unwrap_or(0.0),
        guest_pages_written: s["guest_pages_written"].as_u64().unwrap_or(0),
    })
}

/// Relative difference of `b` against `a`, in percent.
pub fn rel_diff_pct(a: f64, b: f64) -> Option<f64> {
    (a != 0.0).then(|| (b - a) / a.abs() * 100.0)
}

/// The side-by-side table.
pub fn format_comparison(real_label: &str, real: &RunMetrics, sim: &RunMetrics) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let status = |m: &RunMetrics| {
        if m.converged() {
            m.status.clone()
        } else {
            format!("{} after {:.0} s", m.status, m.elapsed_ms as f64 / 1000.0)
        }
    };
    rows.push([
        "status".into(),
        status(real),
        status(sim),
        if real.status == sim.status {
            "same".into()
        } else {
            "DIFFERENT".into()
        },
    ]);
    for m in [
        Metric::TotalTime,
        Metric::Downtime,
        Metric::DirtySyncs,
        Metric::MaxThrottle,
        Metric::Transferred,
        Metric::GuestCpuLost,
    ] {
        let (a, b) = (m.value(real), m.value(sim));
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |x| m.format(x));
        let diff = match (a, b) {
            (Some(a), Some(b)) if m == Metric::DirtySyncs || m == Metric::MaxThrottle => {
                format!("{:+}", b - a)
            }
            (Some(a), Some(b)) => rel_diff_pct(a, b).map_or("-".into(), |d| format!("{d:+.1}%")),
            _ => "-".into(),
        };
        rows.push([m.name().into(), cell(a), cell(b), diff]);
    }
    let steps = |m: &RunMetrics| {
        if m.throttle_steps.is_empty() {
            "none".to_string()
        } else {
            m.throttle_steps
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    rows.push([
        "throttle steps".into(),
        steps(real),
        steps(sim),
        if real.throttle_steps == sim.throttle_steps {
            "same".into()
        } else {
            "DIFFERENT".into()
        },
    ]);
    let head = [
        String::new(),
        real_label.to_string(),
        "simulated".to_string(),
        "sim vs run".to_string(),
    ];
    let mut widths = [0usize; 4];
    for r in std::iter::once(&head).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

/// Several runs side by side, one column each, the first the reference: status, the
/// figures (each later column with its change against the first), and the throttle steps.
pub fn format_runs(cols: &[(String, RunMetrics)]) -> String {
    let Some((_, first)) = cols.first() else {
        return String::new();
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut head = vec![String::new()];
    head.extend(cols.iter().map(|(l, _)| l.clone()));
    rows.push(head);
    let status = |m: &RunMetrics| {
        if m.converged() {
            m.status.clone()
        } else {
            format!("{} after {:.0} s", m.status, m.elapsed_ms as f64 / 1000.0)
        }
    };
    let mut r = vec!["status".to_string()];
    r.extend(cols.iter().map(|(_, m)| status(m)));
    rows.push(r);
    for metric in [
        Metric::TotalTime,
        Metric::Downtime,
        Metric::DirtySyncs,
        Metric::MaxThrottle,
        Metric::Transferred,
        Metric::GuestCpuLost,
    ] {
        let mut r = vec![metric.name().to_string()];
        for (i, (_, m)) in cols.iter().enumerate() {
            let cell = match (metric.value(m), metric.value(first)) {
                (None, _) => "-".to_string(),
                (Some(v), _) if i == 0 => metric.format(v),
                (Some(v), Some(a))
                    if metric == Metric::DirtySyncs || metric == Metric::MaxThrottle =>
                {
                    if v == a {
                        format!("{} (same)", metric.format(v))
                    } else {
                        format!("{} ({:+})", metric.format(v), v - a)
                    }
                }
                (Some(v), Some(a)) => match rel_diff_pct(a, v) {
                    Some(d) if d.abs() >= 0.05 => format!("{} ({d:+.0}%)", metric.format(v)),
                    Some(_) => format!("{} (same)", metric.format(v)),
                    None => metric.format(v),
                },
                (Some(v), None) => metric.format(v),
            };
            r.push(cell);
        }
        rows.push(r);
    }
    let mut r = vec!["throttle steps".to_string()];
    r.extend(cols.iter().map(|(_, m)| {
        if m.throttle_steps.is_empty() {
            "none".to_string()
        } else {
            m.throttle_steps
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        }
    }));
    rows.push(r);
    let n = cols.len() + 1;
    let mut widths = vec![0usize; n];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_from_both_summary_layouts() {
        let sim = serde_json::json!({
            "parameters": {
                "migration": {"auto-converge": "on", "cpu-throttle-initial": 30, "max-bandwidth": 1073741824u64},
                "autoconv": {"time_limit_s": 120.0, "qemu_version": "7.2"}
            }
        });
        assert_eq!(
            overrides_from_summary(&sim),
            [
                "auto-converge=on",
                "cpu-throttle-initial=30",
                "max-bandwidth=1073741824B/s",
                "autoconv.time_limit_s=120",
                "autoconv.qemu_version=7.2"
            ]
        );
        let kvm = serde_json::json!({
            "parameters": {"auto-converge": true, "downtime-limit": 300},
            "autoconv": {"time_limit_ms": 600000, "qemu_version": {"major": 10, "minor": 2}}
        });
        assert_eq!(
            overrides_from_summary(&kvm),
            [
                "auto-converge=on",
                "downtime-limit=300",
                "autoconv.time_limit_s=600",
                "autoconv.qemu_version=10.2"
            ]
        );
    }
}
