//! QEMU's figures and settings as the monitor shows them: `query-migrate` (live from the core's
//! last window, final from its outcome through the same mapping as `--json`),
//! `query-migrate-parameters`, `query-migrate-capabilities`, and HMP's `info` texts in QEMU
//! 7.2's layout.

use serde_json::{json, Map, Value};

use super::state::{Monitor, Phase};
use crate::migration::{
    vocabulary, MigrationConfig, MigrationOutcome, MigrationStatus, QemuVersion, Sample,
};

/// QEMU's target page size.
const PAGE_SIZE_BYTES: u64 = 4096;

/// The capabilities a monitor lists for the QEMU release autoconv mimics, in
/// `query-migrate-capabilities` order: exactly that release's `MigrationCapability` enum.
pub fn capability_names(version: QemuVersion) -> Vec<&'static str> {
    vocabulary::capabilities_of(version)
}

/// `query-migrate-capabilities`: every capability with its state (only the modelled ones can
/// be on).
pub fn capabilities_json(config: &MigrationConfig) -> Value {
    let p = &config.params;
    Value::Array(
        capability_names(config.autoconv.qemu_version)
            .into_iter()
            .map(|name| {
                let state = match name {
                    "auto-converge" => p.auto_converge,
                    "dirty-limit" => p.dirty_limit,
                    _ => false,
                };
                json!({"capability": name, "state": state})
            })
            .collect(),
    )
}

/// `query-migrate-parameters`: the parameters autoconv models, under QEMU's names (the ones
/// QEMU adds that autoconv does not model are left out rather than made up).
pub fn parameters_json(config: &MigrationConfig) -> Value {
    let p = &config.params;
    let mut m = Map::new();
    m.insert(
        "throttle-trigger-threshold".into(),
        p.throttle_trigger_threshold.into(),
    );
    m.insert("cpu-throttle-initial".into(), p.cpu_throttle_initial.into());
    m.insert(
        "cpu-throttle-increment".into(),
        p.cpu_throttle_increment.into(),
    );
    m.insert(
        "cpu-throttle-tailslow".into(),
        p.cpu_throttle_tailslow.into(),
    );
    m.insert("max-cpu-throttle".into(), p.max_cpu_throttle.into());
    m.insert("max-bandwidth".into(), p.max_bandwidth.into());
    m.insert("downtime-limit".into(), p.downtime_limit.into());
    if config.autoconv.qemu_version.has_dirty_limit() {
        m.insert("vcpu-dirty-limit".into(), p.vcpu_dirty_limit.into());
        m.insert(
            "x-vcpu-dirty-limit-period".into(),
            p.x_vcpu_dirty_limit_period.into(),
        );
    }
    Value::Object(m)
}

/// HMP's `info migrate_parameters`, in QEMU 7.2's order and units.
pub fn parameters_text(config: &MigrationConfig) -> String {
    let p = &config.params;
    let on_off = |b: bool| if b { "on" } else { "off" };
    let mut s = format!(
        "throttle-trigger-threshold: {}\ncpu-throttle-initial: {}\ncpu-throttle-increment: {}\n\
         cpu-throttle-tailslow: {}\nmax-cpu-throttle: {}\nmax-bandwidth: {} bytes/second\n\
         downtime-limit: {} ms\n",
        p.throttle_trigger_threshold,
        p.cpu_throttle_initial,
        p.cpu_throttle_increment,
        on_off(p.cpu_throttle_tailslow),
        p.max_cpu_throttle,
        p.max_bandwidth,
        p.downtime_limit,
    );
    if config.autoconv.qemu_version.has_dirty_limit() {
        s.push_str(&format!(
            "vcpu-dirty-limit: {} MB/s\nx-vcpu-dirty-limit-period: {} ms\n",
            p.vcpu_dirty_limit, p.x_vcpu_dirty_limit_period
        ));
    }
    s
}

/// HMP's `info migrate_capabilities`.
pub fn capabilities_text(config: &MigrationConfig) -> String {
    let mut s = String::new();
    if let Value::Array(caps) = capabilities_json(config) {
        for c in caps {
            let on = c["state"].as_bool().unwrap_or(false);
            s.push_str(&format!(
                "{}: {}\n",
                c["capability"].as_str().unwrap_or_default(),
                if on { "on" } else { "off" }
            ));
        }
    }
    s
}

/// `query-migrate` now: `{}` before any migration, `{"status": "setup"}` until the core's
/// first window, then the live figures, then the final ones.
pub fn query_migrate(monitor: &Monitor) -> Value {
    let config = monitor.config();
    match monitor.phase() {
        Phase::Idle => json!({}),
        Phase::Requested(_) | Phase::Running(None) => json!({"status": "setup"}),
        Phase::Running(Some(s)) => live(&s, monitor.ram_bytes(), &config),
        Phase::Ended(o) => ended(&o, monitor.ram_bytes()),
    }
}

/// A running migration's figures from the core's last ~100 ms window.
fn live(s: &Sample, ram_bytes: u64, config: &MigrationConfig) -> Value {
    let mut m = Map::new();
    m.insert("status".into(), s.status.as_str().into());
    m.insert("total-time".into(), s.t_ms.into());
    if s.status == MigrationStatus::Active {
        m.insert("expected-downtime".into(), s.expected_downtime_ms.into());
    }
    m.insert(
        "ram".into(),
        json!({
            "transferred": s.transferred_bytes,
            "remaining": s.remaining_bytes,
            "total": ram_bytes,
            "dirty-pages-rate": s.dirty_pages_rate,
            "mbps": s.mbps,
            "dirty-sync-count": s.dirty_sync_count,
            "page-size": PAGE_SIZE_BYTES,
        }),
    );
    // QEMU shows the percentage while the throttle is on.
    if s.throttle_pct > 0 {
        m.insert("cpu-throttle-percentage".into(), s.throttle_pct.into());
    }
    if config.params.dirty_limit {
        m.insert(
            "dirty-limit-throttle-time-per-round".into(),
            s.dirty_limit_throttle_time_per_round_us.into(),
        );
        m.insert(
            "dirty-limit-ring-full-time".into(),
            s.dirty_limit_ring_full_time_us.into(),
        );
    }
    Value::Object(m)
}

/// An ended migration's figures: `--json`'s `query-migrate` mapping, shown as QEMU shows an
/// ended migration (the throttle is off; a failure carries `error-desc`). autoconv's
/// `not-converged` (its time limit, QEMU has none) is over here, so it shows as `failed`
/// with the reason: a client polling for an end must see one.
fn ended(o: &MigrationOutcome, ram_bytes: u64) -> Value {
    let mut v = crate::report::json::query_migrate(o);
    if let Value::Object(m) = &mut v {
        m.remove("cpu-throttle-percentage");
        if let Some(Value::Object(ram)) = m.get_mut("ram") {
            ram.insert("total".into(), ram_bytes.into());
            ram.insert("remaining".into(), 0u64.into());
        }
        let status = match o.status {
            MigrationStatus::NotConverged => MigrationStatus::Failed,
            s => s,
        };
        m.insert("status".into(), status.as_str().into());
        if status == MigrationStatus::Failed {
            m.insert(
                "error-desc".into(),
                o.reason.clone().unwrap_or_default().into(),
            );
        }
    }
    v
}

/// HMP's `info migrate` from `query-migrate`, in QEMU 7.2's layout for the fields autoconv
/// has (an empty answer before any migration, as QEMU gives past its globals).
pub fn migrate_text(q: &Value) -> String {
    let mut s = String::new();
    let Some(status) = q["status"].as_str() else {
        return s;
    };
    s.push_str(&format!("Migration status: {status}"));
    match q["error-desc"].as_str() {
        Some(e) if status == "failed" => s.push_str(&format!(" ({e})\n")),
        _ => s.push('\n'),
    }
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    s.push_str(&format!("total time: {} ms\n", u(&q["total-time"])));
    if let Some(d) = q["expected-downtime"].as_u64() {
        s.push_str(&format!("expected downtime: {d} ms\n"));
    }
    if let Some(d) = q["downtime"].as_u64() {
        s.push_str(&format!("downtime: {d} ms\n"));
    }
    if let Some(d) = q["setup-time"].as_u64() {
        s.push_str(&format!("setup: {d} ms\n"));
    }
    let ram = &q["ram"];
    if ram.is_object() {
        let kib = |v: &Value| u(v) >> 10;
        s.push_str(&format!(
            "transferred ram: {} kbytes\n",
            kib(&ram["transferred"])
        ));
        if let Some(mbps) = ram["mbps"].as_f64() {
            s.push_str(&format!("throughput: {mbps:.2} mbps\n"));
        }
        s.push_str(&format!(
            "remaining ram: {} kbytes\n",
            kib(&ram["remaining"])
        ));
        s.push_str(&format!("total ram: {} kbytes\n", kib(&ram["total"])));
        if let Some(d) = ram["duplicate"].as_u64() {
            s.push_str(&format!("duplicate: {d} pages\n"));
        }
        if let Some(n) = ram["normal"].as_u64() {
            s.push_str(&format!("normal: {n} pages\n"));
            s.push_str(&format!(
                "normal bytes: {} kbytes\n",
                kib(&ram["normal-bytes"])
            ));
        }
        s.push_str(&format!(
            "dirty sync count: {}\n",
            u(&ram["dirty-sync-count"])
        ));
        s.push_str(&format!("page size: {} kbytes\n", kib(&ram["page-size"])));
        if let Some(r) = ram["dirty-pages-rate"].as_u64().filter(|r| *r > 0) {
            s.push_str(&format!("dirty pages rate: {r} pages\n"));
        }
    }
    if let Some(p) = q["cpu-throttle-percentage"].as_u64() {
        s.push_str(&format!("cpu throttle percentage: {p}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_10_2_monitor_lists_mapped_ram_and_not_what_9_1_removed() {
        let config = MigrationConfig::default();
        assert_eq!(config.autoconv.qemu_version, QemuVersion::CURRENT);
        let listed: Vec<String> = match capabilities_json(&config) {
            Value::Array(caps) => caps
                .iter()
                .map(|c| c["capability"].as_str().unwrap().to_string())
                .collect(),
            other => panic!("{other}"),
        };
        assert_eq!(listed.last().map(String::as_str), Some("mapped-ram"));
        assert_eq!(listed.len(), 22);
        for removed in ["block", "compress"] {
            assert!(!listed.iter().any(|n| n == removed), "{removed}");
        }
        let text = capabilities_text(&config);
        assert!(
            text.ends_with("dirty-limit: off\nmapped-ram: off\n"),
            "{text}"
        );
    }

    fn sample(status: MigrationStatus, throttle_pct: u32) -> Sample {
        Sample {
            t_ms: 4200,
            status,
            throttle_pct,
            transferred_bytes: 100 << 20,
            remaining_bytes: 30 << 20,
            dirty_pages_rate: 2500,
            dirty_sync_count: 3,
            expected_downtime_ms: 900,
            mbps: 268.44,
            guest_cpu_pct: 80.0,
            guest_write_pages_s: 1000.0,
            dirty_limit_throttle_time_per_round_us: 0,
            dirty_limit_ring_full_time_us: 0,
        }
    }

    #[test]
    fn a_running_migration_shows_qemus_fields_and_the_throttle_while_it_is_on() {
        let config = MigrationConfig::default();
        let q = live(&sample(MigrationStatus::Active, 20), 64 << 20, &config);
        assert_eq!(q["status"], "active");
        assert_eq!(q["total-time"], 4200);
        assert_eq!(q["expected-downtime"], 900);
        assert_eq!(q["ram"]["transferred"], 100u64 << 20);
        assert_eq!(q["ram"]["remaining"], 30u64 << 20);
        assert_eq!(q["ram"]["total"], 64u64 << 20);
        assert_eq!(q["ram"]["dirty-sync-count"], 3);
        assert_eq!(q["cpu-throttle-percentage"], 20);
        // The seed's line.
        let text = migrate_text(&q);
        assert!(text.starts_with("Migration status: active\ntotal time: 4200 ms\n"));
        assert!(text.contains("transferred ram: 102400 kbytes\n"), "{text}");
        assert!(text.contains("throughput: 268.44 mbps\n"), "{text}");
        assert!(text.ends_with("cpu throttle percentage: 20\n"), "{text}");
        let unthrottled = live(&sample(MigrationStatus::Active, 0), 64 << 20, &config);
        assert!(unthrottled.get("cpu-throttle-percentage").is_none());
    }

    #[test]
    fn an_ended_migration_is_final_for_a_polling_client() {
        let mut o = MigrationOutcome::failed_before_start(
            crate::migration::FailureKind::LinkLost,
            "x".into(),
        );
        o.status = MigrationStatus::NotConverged;
        o.reason = Some("did not converge within autoconv.time_limit_s".into());
        o.throttle_steps = vec![20, 30];
        let q = ended(&o, 64 << 20);
        assert_eq!(q["status"], "failed");
        assert_eq!(
            q["error-desc"],
            "did not converge within autoconv.time_limit_s"
        );
        assert!(q.get("cpu-throttle-percentage").is_none());
        assert!(migrate_text(&q).starts_with(
            "Migration status: failed (did not converge within autoconv.time_limit_s)\n"
        ));
        o.status = MigrationStatus::Completed;
        o.total_time_ms = Some(5000);
        o.downtime_ms = Some(12);
        let q = ended(&o, 64 << 20);
        assert_eq!(q["status"], "completed");
        assert_eq!(q["total-time"], 5000);
        assert_eq!(q["downtime"], 12);
        assert!(q.get("error-desc").is_none());
    }

    #[test]
    fn parameters_in_qemu_72s_text_layout() {
        let text = parameters_text(&MigrationConfig::default());
        assert!(text.starts_with(
            "throttle-trigger-threshold: 50\ncpu-throttle-initial: 20\ncpu-throttle-increment: 10\n\
             cpu-throttle-tailslow: off\nmax-cpu-throttle: 99\nmax-bandwidth: 134217728 bytes/second\n\
             downtime-limit: 300 ms\n"
        ), "{text}");
    }
}
