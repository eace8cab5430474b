//! A recommended policy as settings an operator pastes: QMP commands (JSON), HMP lines, and a
//! `virsh migrate` command line with `virsh qemu-monitor-command` for what virsh has no option
//! for.

use super::policy::Policy;
use crate::migration::MigrationParameters;
use serde_json::{json, Map, Value};

/// The same settings in the three forms.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplyForms {
    /// `migrate-set-capabilities` then `migrate-set-parameters`, one JSON command a line.
    pub qmp: Vec<Value>,
    /// `migrate_set_capability` / `migrate_set_parameter` lines.
    pub hmp: Vec<String>,
    /// `virsh qemu-monitor-command` lines for parameters virsh has no option for, then the
    /// `virsh migrate` line.
    pub virsh: Vec<String>,
}

/// Parameters virsh sets itself: `--auto-converge-initial`, `--auto-converge-increment`,
/// `--bandwidth` (MiB/s).
const VIRSH_HAS: &[&str] = &[
    "cpu-throttle-initial",
    "cpu-throttle-increment",
    "max-bandwidth",
];

/// HMP's max-bandwidth takes MiB unless a suffix says otherwise (QEMU's hmp code reads it with
/// `qemu_strtosz_MiB`), so always write the suffix.
fn hmp_bandwidth(bytes: u64) -> String {
    if bytes % (1 << 30) == 0 && bytes > 0 {
        format!("{}G", bytes >> 30)
    } else if bytes % (1 << 20) == 0 {
        format!("{}M", bytes >> 20)
    } else {
        format!("{bytes}B")
    }
}

fn hmp_value(v: &Value) -> String {
    match v {
        Value::Bool(true) => "on".into(),
        Value::Bool(false) => "off".into(),
        other => other.to_string(),
    }
}

/// The settings that make a migration run as advised: `policy` on top of the scenario's
/// bandwidth and downtime parameters (which the advice assumed).
pub fn forms(policy: &Policy, base: &MigrationParameters, domain: &str) -> ApplyForms {
    let mut params: Vec<(&str, Value)> = policy.parameters();
    params.push(("max-bandwidth", base.max_bandwidth.into()));
    params.push(("downtime-limit", base.downtime_limit.into()));
    if base.avail_switchover_bandwidth > 0 {
        params.push((
            "avail-switchover-bandwidth",
            base.avail_switchover_bandwidth.into(),
        ));
    }
    let caps = policy.capabilities();
    let caps_off = policy.capabilities_off();
    let qmp_caps: Vec<Value> = caps_off
        .iter()
        .map(|c| json!({"capability": c, "state": false}))
        .chain(caps.iter().map(|c| json!({"capability": c, "state": true})))
        .collect();
    let args: Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let qmp = vec![
        json!({"execute": "migrate-set-capabilities", "arguments": {"capabilities": qmp_caps}}),
        json!({"execute": "migrate-set-parameters", "arguments": args}),
    ];

    let hmp_line = |k: &str, v: &Value| -> String {
        let value = match (k, v.as_u64()) {
            ("max-bandwidth" | "avail-switchover-bandwidth", Some(b)) => hmp_bandwidth(b),
            _ => hmp_value(v),
        };
        format!("migrate_set_parameter {k} {value}")
    };
    let mut hmp: Vec<String> = caps_off
        .iter()
        .map(|c| format!("migrate_set_capability {c} off"))
        .chain(
            caps.iter()
                .map(|c| format!("migrate_set_capability {c} on")),
        )
        .collect();
    hmp.extend(params.iter().map(|(k, v)| hmp_line(k, v)));

    // virsh: what it has options for on the command line; the rest through the monitor
    // before the migration starts (only what differs from QEMU's defaults, which libvirt
    // leaves alone).
    let defaults = MigrationParameters::default();
    let default_of = |k: &str| -> Option<Value> {
        defaults
            .to_pairs()
            .into_iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| match v.as_str() {
                "on" => Value::Bool(true),
                "off" => Value::Bool(false),
                s => s.parse::<u64>().map(Value::from).unwrap_or(Value::from(s)),
            })
    };
    let mut virsh = Vec::new();
    for c in caps.iter().filter(|c| **c != "auto-converge") {
        // virsh migrate has an option for auto-converge only.
        virsh.push(format!(
            "virsh qemu-monitor-command {domain} --hmp 'migrate_set_capability {c} on'"
        ));
    }
    for (k, v) in &params {
        if VIRSH_HAS.contains(k) || default_of(k).as_ref() == Some(v) {
            continue;
        }
        virsh.push(format!(
            "virsh qemu-monitor-command {domain} --hmp '{}'",
            hmp_line(k, v)
        ));
    }
    let get = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
    let mut cmd = format!("virsh migrate --live {domain} DESTINATION-URI");
    if caps.contains(&"auto-converge") {
        cmd.push_str(" --auto-converge");
        if let Some(v) = get("cpu-throttle-initial") {
            cmd.push_str(&format!(" --auto-converge-initial {v}"));
        }
        if let Some(v) = get("cpu-throttle-increment") {
            cmd.push_str(&format!(" --auto-converge-increment {v}"));
        }
    }
    if base.max_bandwidth > 0 {
        // virsh's --bandwidth is in MiB/s.
        cmd.push_str(&format!(
            " --bandwidth {}",
            base.max_bandwidth.div_ceil(1 << 20)
        ));
    }
    virsh.push(cmd);
    ApplyForms { qmp, hmp, virsh }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::policy::ThrottlePolicy;

    #[test]
    fn three_forms_carry_the_same_values() {
        let policy = Policy::Throttle(ThrottlePolicy {
            initial_pct: 70,
            increment_pct: 10,
            tailslow: false,
            trigger_threshold_pct: 50,
            max_throttle_pct: 70,
        });
        let base = MigrationParameters {
            max_bandwidth: 1 << 30,
            ..MigrationParameters::default()
        };
        let f = forms(&policy, &base, "vm1");
        assert_eq!(
            f.qmp[0].to_string(),
            r#"{"arguments":{"capabilities":[{"capability":"auto-converge","state":true}]},"execute":"migrate-set-capabilities"}"#
        );
        assert_eq!(f.qmp[1]["arguments"]["cpu-throttle-initial"], 70);
        assert_eq!(f.qmp[1]["arguments"]["max-cpu-throttle"], 70);
        assert_eq!(f.qmp[1]["arguments"]["cpu-throttle-tailslow"], false);
        assert_eq!(f.qmp[1]["arguments"]["max-bandwidth"], 1u64 << 30);
        assert!(f
            .hmp
            .contains(&"migrate_set_capability auto-converge on".to_string()));
        assert!(f
            .hmp
            .contains(&"migrate_set_parameter max-bandwidth 1G".to_string()));
        assert!(f
            .hmp
            .contains(&"migrate_set_parameter cpu-throttle-tailslow off".to_string()));
        // virsh has no option for max-cpu-throttle: set through the monitor; defaults skipped.
        assert_eq!(
            f.virsh,
            vec![
                "virsh qemu-monitor-command vm1 --hmp 'migrate_set_parameter max-cpu-throttle 70'",
                "virsh migrate --live vm1 DESTINATION-URI --auto-converge --auto-converge-initial 70 --auto-converge-increment 10 --bandwidth 1024",
            ]
        );
    }

    #[test]
    fn hmp_bandwidth_always_has_a_suffix() {
        assert_eq!(hmp_bandwidth(256 << 20), "256M");
        assert_eq!(hmp_bandwidth(2 << 30), "2G");
        assert_eq!(hmp_bandwidth(1000), "1000B");
        assert_eq!(hmp_bandwidth(0), "0M");
    }
}
