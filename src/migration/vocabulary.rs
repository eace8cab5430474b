//! The names people already use for migration settings, in one place: QEMU's own, the older
//! `x-` spellings, virsh's option names, and the QEMU parameters and capabilities autoconv does
//! not model. `--set`, `--grid`, scenario files and `run --qemu` all ask this module, so a name
//! means the same thing everywhere.

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

/// QEMU migration capabilities (`MigrationCapability`, 7.2 to 10.x) that autoconv does not
/// model. `auto-converge` and `dirty-limit` are modelled.
pub const UNMODELLED_CAPABILITIES: &[&str] = &[
    "xbzrle",
    "rdma-pin-all",
    "zero-blocks",
    "compress",
    "events",
    "postcopy-ram",
    "x-colo",
    "release-ram",
    "block",
    "return-path",
    "pause-before-switchover",
    "multifd",
    "dirty-bitmaps",
    "postcopy-blocktime",
    "late-block-activate",
    "x-ignore-shared",
    "validate-uuid",
    "background-snapshot",
    "zero-copy-send",
    "postcopy-preempt",
    // 8.1 and later.
    "switchover-ack",
    "mapped-ram",
];

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
    } else if UNMODELLED_CAPABILITIES.contains(&name) {
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
            assert!(!UNMODELLED_CAPABILITIES.contains(p), "{p}");
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
