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
    // `[autoconv]` first: its qemu_version decides which capabilities `[migration]` may name.
    let mut config = MigrationConfig::default();
    if let Some(Value {
        kind: Kind::Table(t),
        ..
    }) = doc.get("autoconv")
    {
        config.autoconv = read_autoconv(&ctx, t)?;
    }
    if let Some(Value {
        kind: Kind::Table(t),
        ..
    }) = doc.get("migration")
    {
        read_migration(&ctx, t, &mut config.params, config.autoconv.qemu_version)?;
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
            // Capabilities and boolean parameters as JSON booleans, the rest as numbers.
            let value = match v.as_str() {
                "on" => serde_json::Value::Bool(true),
                "off" => serde_json::Value::Bool(false),
                _ => v
                    .parse::<u64>()
                    .map(serde_json::Value::from)
                    .unwrap_or(serde_json::Value::from(v)),
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        migration_config_from_sets(&sets).unwrap_err().to_string()
    }

    /// A capability is refused as the release posed as would refuse it: QEMU's words for an
    /// unknown enum value, with when QEMU added or dropped it; the release that has it gets
    /// autoconv's "not modelled" instead.
    #[test]
    fn a_capability_the_release_lacks_is_refused_as_that_release_would() {
        let e = refusal(&["compress=on"]);
        assert!(
            e.contains("Parameter 'capability' does not accept value 'compress' (autoconv.qemu_version is 10.2; QEMU 9.1 removed it)"),
            "{e}"
        );
        let e = refusal(&["autoconv.qemu_version=7.2", "mapped-ram=on"]);
        assert!(
            e.contains("does not accept value 'mapped-ram' (autoconv.qemu_version is 7.2; QEMU 9.0 added it)"),
            "{e}"
        );
        let e = refusal(&["autoconv.qemu_version=9.0", "compress=on"]);
        assert!(
            e.contains("QEMU capability 'compress' is not modelled by autoconv"),
            "{e}"
        );
        let e = refusal(&["mapped-ram=on"]);
        assert!(
            e.contains("QEMU capability 'mapped-ram' is not modelled by autoconv"),
            "{e}"
        );
    }
}
