//! A migration's settings outside a scenario file: read from the `--set`s of a real guest with
//! the scenario's own readers, and named for summaries as QEMU names them.

use super::doc::{apply_overrides, parse_override, Context, Kind, ScenarioError, Table, Value};
use super::read::{check_migration_config, read_autoconv, read_migration};
use super::Scenario;
use crate::migration::MigrationConfig;

/// The migration settings of a run with no scenario file (a real guest): QEMU parameters by
/// their names and `autoconv.*` settings, read by the same code, with the same messages, as a
/// scenario's `[migration]` and `[autoconv]` tables.
pub fn migration_config_from_sets(sets: &[String]) -> Result<MigrationConfig, ScenarioError> {
    let overrides = sets
        .iter()
        .enumerate()
        .map(|(i, s)| parse_override(s, i))
        .collect::<Result<Vec<_>, _>>()?;
    for o in &overrides {
        if !matches!(
            o.path.first().map(String::as_str),
            Some("migration" | "autoconv")
        ) {
            return Err(ScenarioError::BadSet {
                arg: o.arg.clone(),
                message: format!(
                    "`{}` is a scenario value; a real guest takes QEMU parameters (cpu-throttle-initial=30) and autoconv settings (autoconv.time_limit_s=120, autoconv.qemu_version=7.2)",
                    o.path.join(".")
                ),
            });
        }
    }
    let mut doc = Table::default();
    apply_overrides(&mut doc, &overrides)?;
    let ctx = Context {
        path: "command line".into(),
        sets: overrides.iter().map(|o| o.arg.clone()).collect(),
    };
    let mut config = MigrationConfig::default();
    if let Some(Value {
        kind: Kind::Table(t),
        ..
    }) = doc.get("migration")
    {
        read_migration(&ctx, t, &mut config.params)?;
    }
    if let Some(Value {
        kind: Kind::Table(t),
        ..
    }) = doc.get("autoconv")
    {
        config.autoconv = read_autoconv(&ctx, t)?;
    }
    check_migration_config(&ctx, &doc, &config)?;
    Ok(config)
}

/// `{"migration": {QEMU name: value}, "autoconv": {...}}`: how every summary names the
/// settings a migration ran with.
pub fn migration_settings_json(config: &MigrationConfig) -> serde_json::Value {
    let params: serde_json::Map<String, serde_json::Value> = config
        .params
        .to_pairs()
        .into_iter()
        .map(|(k, v)| {
            let value = v
                .parse::<u64>()
                .map(serde_json::Value::from)
                .unwrap_or(serde_json::Value::from(v));
            (k.to_string(), value)
        })
        .collect();
    let mut json = serde_json::json!({
        "migration": params,
        "autoconv": {
            "time_limit_s": config.autoconv.time_limit_ms as f64 / 1000.0,
            "qemu_version": config.autoconv.qemu_version.to_string(),
            "policy": config.autoconv.policy.as_str(),
        },
    });
    if let Some(p) = &config.autoconv.profile {
        json["autoconv"]["profile"] = serde_json::Value::from(p.path.clone());
    }
    json
}

impl Scenario {
    /// Every setting as (name, value) for summaries: QEMU's parameters under their names, then
    /// the scenario's own keys.
    pub fn settings(&self) -> serde_json::Value {
        let mut v = migration_settings_json(&self.migration);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("guest".into(), serde_json::json!(self.guest));
            obj.insert("regions".into(), serde_json::json!(self.regions));
            obj.insert("host".into(), serde_json::json!(self.host));
            obj.insert("link".into(), serde_json::json!(self.link));
        }
        v
    }
}
