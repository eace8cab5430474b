//! The names people already use for migration settings, in one place: QEMU's own, the older
//! `x-` spellings, virsh's option names, and the QEMU parameters and capabilities autoconv does
//! not model. `--set`, `--grid`, scenario files and `run --qemu` all ask this module, so a name
//! means the same thing everywhere.

use super::params::QemuVersion;

/// Other spellings of a modelled parameter, and the QEMU name each stands for.
pub const ALIASES: &[(&str, &str)] = &[
    // QEMU 2.5's names, from the original auto-converge feature page.
    ("x-cpu-throttle-initial", "cpu-throttle-initial"),
    ("x-cpu-throttle-increment", "cpu-throttle-increment"),
    // virsh migrate's options (--auto-converge-initial N, --auto-converge-increment M).
    ("auto-converge-initial", "cpu-throttle-initial"),
    ("auto-converge-increment", "cpu-throttle-increment"),
];

/// QEMU migration parameters (`MigrationParameters` in qapi/migration.json, 7.2 to 10.x) that
/// autoconv does not model. The 7.2 ones are what `query-migrate-parameters` lists on the
/// installed QEMU 7.2 (plus `block-bitmap-mapping`, listed only once set); the rest came later.
pub const UNMODELLED_PARAMETERS: &[&str] = &[
    "announce-initial",
    "announce-max",
    "announce-rounds",
    "announce-step",
    "block-bitmap-mapping",
    "block-incremental",
    "compress-level",
    "compress-threads",
    "compress-wait-thread",
    "decompress-threads",
    "max-postcopy-bandwidth",
    "multifd-channels",
    "multifd-compression",
    "multifd-zlib-level",
    "multifd-zstd-level",
    "tls-authz",
    "tls-creds",
    "tls-hostname",
    "x-checkpoint-delay",
    "xbzrle-cache-size",
    // 8.2 and later.
    "mode",
    "zero-page-detection",
    "direct-io",
    "multifd-qatzip-level",
    "cpr-exec-command",
];

/// QEMU 7.2, whose capabilities the table below lists first.
const V7_2: QemuVersion = QemuVersion::OLDEST;
/// QEMU 8.1 (`switchover-ack`, `dirty-limit`).
const V8_1: QemuVersion = QemuVersion::DIRTY_LIMIT;

/// QEMU's migration capabilities (`MigrationCapability`, 7.2 to 10.x) in QEMU's order, each
/// with the release that added it (7.2 for all that 7.2 has).
pub const CAPABILITIES: &[(&str, QemuVersion)] = &[
    ("xbzrle", V7_2),
    ("rdma-pin-all", V7_2),
    ("auto-converge", V7_2),
    ("zero-blocks", V7_2),
    ("compress", V7_2),
    ("events", V7_2),
    ("postcopy-ram", V7_2),
    ("x-colo", V7_2),
    ("release-ram", V7_2),
    ("block", V7_2),
    ("return-path", V7_2),
    ("pause-before-switchover", V7_2),
    ("multifd", V7_2),
    ("dirty-bitmaps", V7_2),
    ("postcopy-blocktime", V7_2),
    ("late-block-activate", V7_2),
    ("x-ignore-shared", V7_2),
    ("validate-uuid", V7_2),
    ("background-snapshot", V7_2),
    ("zero-copy-send", V7_2),
    ("postcopy-preempt", V7_2),
    ("switchover-ack", V8_1),
    ("dirty-limit", V8_1),
    ("mapped-ram", QemuVersion { major: 9, minor: 0 }),
];

/// The capabilities autoconv models.
pub const MODELLED_CAPABILITIES: &[&str] = &["auto-converge", "dirty-limit"];

/// The QEMU migration capabilities autoconv does not model, in QEMU's order.
pub fn unmodelled_capabilities() -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !MODELLED_CAPABILITIES.contains(name))
        .collect()
}

/// What a name not modelled by autoconv is in QEMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmodelled {
    /// A migration parameter (`migrate-set-parameters`).
    Parameter,
    /// A migration capability (`migrate-set-capabilities`).
    Capability,
}

impl Unmodelled {
    /// "parameter" or "capability", for messages.
    pub fn word(self) -> &'static str {
        match self {
            Unmodelled::Parameter => "parameter",
            Unmodelled::Capability => "capability",
        }
    }
}

/// The modelled parameter an alias stands for.
pub fn alias_target(name: &str) -> Option<&'static str> {
    ALIASES.iter().find(|(a, _)| *a == name).map(|(_, n)| *n)
}

/// Whether `name` is a real QEMU parameter or capability that autoconv does not model (so it
/// is not a typo, and `run --qemu` can hand it to QEMU as it is).
pub fn unmodelled(name: &str) -> Option<Unmodelled> {
    if UNMODELLED_PARAMETERS.contains(&name) {
        Some(Unmodelled::Parameter)
    } else if unmodelled_capabilities().contains(&name) {
        Some(Unmodelled::Capability)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::params::PARAMETER_NAMES;

    #[test]
    fn no_name_is_both_modelled_and_unmodelled() {
        for n in PARAMETER_NAMES {
            assert_eq!(unmodelled(n), None, "{n}");
            assert_eq!(alias_target(n), None, "{n}");
        }
        for (alias, target) in ALIASES {
            assert!(PARAMETER_NAMES.contains(target), "{alias} -> {target}");
            assert_eq!(unmodelled(alias), None, "{alias}");
        }
        for p in UNMODELLED_PARAMETERS {
            assert!(!unmodelled_capabilities().contains(p), "{p}");
        }
    }

    #[test]
    fn the_issues_examples_are_known() {
        assert_eq!(unmodelled("multifd-channels"), Some(Unmodelled::Parameter));
        assert_eq!(unmodelled("xbzrle-cache-size"), Some(Unmodelled::Parameter));
        assert_eq!(unmodelled("postcopy-ram"), Some(Unmodelled::Capability));
        assert_eq!(
            alias_target("auto-converge-increment"),
            Some("cpu-throttle-increment")
        );
        assert_eq!(unmodelled("cpu-throttle-intial"), None);
    }
}
