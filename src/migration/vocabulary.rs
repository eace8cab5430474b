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

/// One member of QEMU's `MigrationCapability` enum and the releases that have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// QEMU's name.
    pub name: &'static str,
    /// The first release autoconv models that has it (7.2 for all that 7.2 has).
    pub added: QemuVersion,
    /// The first release without it, if QEMU has dropped it.
    pub removed: Option<QemuVersion>,
}

impl Capability {
    /// Whether QEMU `version`'s enum has this capability.
    pub fn in_release(&self, version: QemuVersion) -> bool {
        self.added <= version && self.removed.is_none_or(|gone| version < gone)
    }
}

/// QEMU 7.2, whose capabilities the table below lists first.
const V7_2: QemuVersion = QemuVersion::OLDEST;
/// QEMU 8.1 (`switchover-ack`, `dirty-limit`).
const V8_1: QemuVersion = QemuVersion::DIRTY_LIMIT;
/// QEMU 9.0 (`mapped-ram`).
const V9_0: QemuVersion = QemuVersion { major: 9, minor: 0 };
/// QEMU 9.1 dropped block migration (`block`) and the old compression threads (`compress`).
const V9_1: QemuVersion = QemuVersion { major: 9, minor: 1 };

const fn cap(name: &'static str, added: QemuVersion) -> Capability {
    Capability {
        name,
        added,
        removed: None,
    }
}

const fn gone(name: &'static str, added: QemuVersion, removed: QemuVersion) -> Capability {
    Capability {
        name,
        added,
        removed: Some(removed),
    }
}

/// QEMU's migration capabilities (`MigrationCapability` in qapi/migration.json, 7.2 to 10.2)
/// in QEMU's order, which every release keeps: a release's enum is this table filtered by
/// [`Capability::in_release`]. From QEMU's qapi/migration.json at 8.1 and 9.1 and
/// docs/about/removed-features.rst ("removed in 9.1" for `block` and `compress`); 9.2
/// deprecated `zero-blocks` but 10.2 still has it, and 9.1 to 10.2 add none.
pub const CAPABILITIES: &[Capability] = &[
    cap("xbzrle", V7_2),
    cap("rdma-pin-all", V7_2),
    cap("auto-converge", V7_2),
    cap("zero-blocks", V7_2),
    gone("compress", V7_2, V9_1),
    cap("events", V7_2),
    cap("postcopy-ram", V7_2),
    cap("x-colo", V7_2),
    cap("release-ram", V7_2),
    gone("block", V7_2, V9_1),
    cap("return-path", V7_2),
    cap("pause-before-switchover", V7_2),
    cap("multifd", V7_2),
    cap("dirty-bitmaps", V7_2),
    cap("postcopy-blocktime", V7_2),
    cap("late-block-activate", V7_2),
    cap("x-ignore-shared", V7_2),
    cap("validate-uuid", V7_2),
    cap("background-snapshot", V7_2),
    cap("zero-copy-send", V7_2),
    cap("postcopy-preempt", V7_2),
    cap("switchover-ack", V8_1),
    cap("dirty-limit", V8_1),
    cap("mapped-ram", V9_0),
];

/// QEMU `version`'s `MigrationCapability` enum, in its order (what its
/// `query-migrate-capabilities` lists).
pub fn capabilities_of(version: QemuVersion) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .filter(|c| c.in_release(version))
        .map(|c| c.name)
        .collect()
}

/// The capability named `name`, in whichever release has it.
pub fn capability(name: &str) -> Option<&'static Capability> {
    CAPABILITIES.iter().find(|c| c.name == name)
}

/// The capabilities autoconv models.
pub const MODELLED_CAPABILITIES: &[&str] = &["auto-converge", "dirty-limit"];

/// The QEMU migration capabilities autoconv does not model, in QEMU's order: those of every
/// release from 7.2 to 10.2 (a release's own are [`capabilities_of`]).
pub fn unmodelled_capabilities() -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .map(|c| c.name)
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

    /// Each release's enum as QEMU's qapi/migration.json declares it (8.1's and 9.1's read
    /// in full; 9.0 is 8.1's plus `mapped-ram`; 9.2 to 10.2 are 9.1's).
    #[test]
    fn each_release_lists_its_own_enum_in_qemus_order() {
        let v = |s| QemuVersion::parse(s).unwrap();
        let v7_2 = [
            "xbzrle",
            "rdma-pin-all",
            "auto-converge",
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
        ];
        assert_eq!(capabilities_of(v("7.2")), v7_2);
        assert_eq!(capabilities_of(v("8.0")), v7_2);
        let v8_1: Vec<&str> = v7_2
            .iter()
            .copied()
            .chain(["switchover-ack", "dirty-limit"])
            .collect();
        assert_eq!(capabilities_of(v("8.1")), v8_1);
        assert_eq!(capabilities_of(v("8.2")), v8_1);
        let v9_0: Vec<&str> = v8_1.iter().copied().chain(["mapped-ram"]).collect();
        assert_eq!(capabilities_of(v("9.0")), v9_0);
        let v9_1: Vec<&str> = v9_0
            .iter()
            .copied()
            .filter(|n| !matches!(*n, "compress" | "block"))
            .collect();
        assert_eq!(v9_1.len(), 22);
        assert_eq!(v9_1[3..6], ["zero-blocks", "events", "postcopy-ram"]);
        for later in ["9.1", "9.2", "10.0", "10.1", "10.2"] {
            assert_eq!(capabilities_of(v(later)), v9_1, "{later}");
        }
        // Every capability some release has is still known to autoconv (not a typo).
        for c in CAPABILITIES {
            let modelled = MODELLED_CAPABILITIES.contains(&c.name);
            assert_eq!(unmodelled(c.name).is_some(), !modelled, "{}", c.name);
        }
        assert_eq!(capability("block").and_then(|c| c.removed), Some(V9_1));
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
