//! What every JSON document autoconv writes shares: a `format_version`, values typed as what
//! they are (numbers, booleans), and QEMU's own `query-migrate` names beside autoconv's
//! unit-suffixed fields, so a script written against QEMU reads the same figures.

use crate::migration::{MigrationOutcome, MigrationStatus};
use serde_json::{json, Map, Value};

/// The version of autoconv's JSON formats (summary.json, sweep.json and every `--json`
/// output). Raised when a field changes meaning or disappears; new fields do not raise it.
/// 2: a QEMU run's last whole `query-migrate` reply moved from `query_migrate` (one character
/// from autoconv's own `query-migrate` mapping) to `last_query_migrate_reply`.
pub const FORMAT_VERSION: u32 = 2;

/// QEMU's target page size: `ram.normal-bytes` is `ram.normal` pages of it.
const PAGE_SIZE_BYTES: u64 = 4096;

/// A value as typed on a command line (a grid value, a `--set`), as JSON: a number if it is
/// one, a boolean for on/off/true/false, bytes for a size ("16GiB"), bytes/s for a rate
/// ("64MiB/s"), else the text.
pub fn typed_value(text: &str) -> Value {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(x) = t.parse::<f64>() {
        if x.is_finite() {
            return Value::from(x);
        }
    }
    match t {
        "on" | "true" => return Value::Bool(true),
        "off" | "false" => return Value::Bool(false),
        _ => {}
    }
    if t.ends_with("/s") || t.ends_with("bit") || t.ends_with("bps") {
        if let Ok(b) = crate::units::parse_rate_bytes_s(t) {
            return Value::from(b);
        }
    } else if let Ok(b) = crate::units::parse_size_bytes(t) {
        return Value::from(b);
    }
    Value::from(t)
}

/// The figures of a migration that QEMU's `query-migrate` reports, under QEMU's names and in
/// QEMU's units (ms, bytes, pages), as QEMU shows them once the migration has ended. Figures
/// QEMU shows only in some states are left out where QEMU leaves them out (`total-time` and
/// `downtime` of a migration that did not complete).
pub fn query_migrate(o: &MigrationOutcome) -> Value {
    // autoconv's `not-converged` is a migration QEMU would still be running.
    let status = match o.status {
        MigrationStatus::NotConverged => "active",
        other => other.as_str(),
    };
    let mut m = Map::new();
    m.insert("status".into(), Value::from(status));
    if let Some(t) = o.total_time_ms {
        m.insert("total-time".into(), Value::from(t));
    } else {
        m.insert("total-time".into(), Value::from(o.elapsed_ms));
    }
    m.insert("setup-time".into(), Value::from(o.setup_time_ms));
    if let Some(d) = o.downtime_ms {
        m.insert("downtime".into(), Value::from(d));
    }
    m.insert(
        "ram".into(),
        json!({
            "transferred": o.transferred_bytes,
            "normal": o.normal_pages,
            "normal-bytes": o.normal_pages * PAGE_SIZE_BYTES,
            "duplicate": o.zero_pages,
            "dirty-sync-count": o.dirty_sync_count,
            "page-size": PAGE_SIZE_BYTES,
        }),
    );
    if let Some(&pct) = o.throttle_steps.last() {
        m.insert("cpu-throttle-percentage".into(), Value::from(pct));
    }
    if let Some(us) = o.dirty_limit_throttle_time_per_round_us {
        m.insert(
            "dirty-limit-throttle-time-per-round".into(),
            Value::from(us),
        );
    }
    if let Some(us) = o.dirty_limit_ring_full_time_us {
        m.insert("dirty-limit-ring-full-time".into(), Value::from(us));
    }
    Value::Object(m)
}

/// A JSON document for stdout or a file: pretty, with a trailing newline.
pub fn to_text(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values() {
        assert_eq!(typed_value("30"), json!(30));
        assert_eq!(typed_value("0.5"), json!(0.5));
        assert_eq!(typed_value("on"), json!(true));
        assert_eq!(typed_value("off"), json!(false));
        assert_eq!(typed_value("64MiB/s"), json!(64u64 << 20));
        assert_eq!(typed_value("10Gbit/s"), json!(1_250_000_000u64));
        assert_eq!(typed_value("16GiB"), json!(16u64 << 30));
        assert_eq!(typed_value("ring:16KiB"), json!("ring:16KiB"));
    }

    #[test]
    fn query_migrate_uses_qemus_names_and_units() {
        let mut o = MigrationOutcome::failed_before_start(
            crate::migration::FailureKind::LinkLost,
            "x".into(),
        );
        o.status = MigrationStatus::Completed;
        o.total_time_ms = Some(64_400);
        o.elapsed_ms = 64_400;
        o.downtime_ms = Some(297);
        o.normal_pages = 10;
        o.zero_pages = 3;
        o.throttle_steps = vec![20, 30, 99];
        let q = query_migrate(&o);
        assert_eq!(q["status"], "completed");
        assert_eq!(q["total-time"], 64_400);
        assert_eq!(q["downtime"], 297);
        assert_eq!(q["ram"]["normal-bytes"], 40_960);
        assert_eq!(q["ram"]["duplicate"], 3);
        assert_eq!(q["cpu-throttle-percentage"], 99);
        o.status = MigrationStatus::NotConverged;
        o.downtime_ms = None;
        o.total_time_ms = None;
        let q = query_migrate(&o);
        assert_eq!(q["status"], "active");
        assert!(q.get("downtime").is_none());
    }
}
