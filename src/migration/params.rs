//! Migration parameters and capabilities, under QEMU's names, with QEMU's defaults, ranges and
//! error wording (qapi/migration.json, `migrate_params_check`).
//!
//! The settings QEMU does not have (how long autoconv lets a migration run, which QEMU release to
//! mimic) live apart, in [`AutoconvSettings`], so nobody mistakes them for QEMU behaviour.

use super::vocabulary;
use serde::Serialize;

/// A parameter value as given on a command line or in a file, before it is checked.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// An integer.
    Int(i64),
    /// A floating-point number (refused where QEMU wants an integer).
    Float(f64),
    /// `true`/`false` (`on`/`off` arrive as [`ParamValue::Str`] and are accepted for booleans).
    Bool(bool),
    /// Anything else.
    Str(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Str(v) => write!(f, "{v:?}"),
        }
    }
}

/// A refused parameter; the messages are QEMU's. Each variant's doc comment is its message
/// (displaydoc).
#[derive(Debug, Clone, PartialEq, displaydoc::Display, thiserror::Error)]
pub enum ParameterError {
    /// Parameter '{name}' expects {expected}
    InvalidValue {
        /// The parameter's name.
        name: String,
        /// What QEMU says it expects.
        expected: String,
    },
    /// Invalid parameter type for '{name}', expected: {expected}
    InvalidType {
        /// The parameter's name.
        name: String,
        /// The type QEMU wants.
        expected: &'static str,
    },
    /// {message}
    Refused {
        /// QEMU's whole message, for a check QEMU words in its own way (e.g. the dirty-limit
        /// parameters).
        message: String,
    },
    /// QEMU {kind} '{name}' is not modelled by autoconv
    NotModelled {
        /// "parameter" or "capability".
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// {name}={bytes} is {bytes} bytes/s: did you mean {bytes}MiB/s? (a bare number is bytes/s, as in QMP; write {bytes}B/s if you mean it)
    BareBandwidth {
        /// The parameter's name.
        name: String,
        /// The number as given.
        bytes: u64,
    },
    /// Parameter '{name}' is unexpected{hint}
    Unknown {
        /// The name given.
        name: String,
        /// A suggestion, e.g. " (did you mean 'cpu-throttle-initial'?)".
        hint: String,
    },
}

/// QEMU's migration parameters and the `auto-converge` capability.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrationParameters {
    /// Capability `auto-converge` (off by default).
    pub auto_converge: bool,
    /// `throttle-trigger-threshold`, % (1..=100, default 50): the throttle is raised when the
    /// bytes dirtied in a period exceed this share of the bytes transferred.
    pub throttle_trigger_threshold: u32,
    /// `cpu-throttle-initial`, % (1..=99, default 20).
    pub cpu_throttle_initial: u32,
    /// `cpu-throttle-increment`, % (1..=99, default 10).
    pub cpu_throttle_increment: u32,
    /// `cpu-throttle-tailslow` (default false).
    pub cpu_throttle_tailslow: bool,
    /// `max-cpu-throttle`, % (cpu-throttle-initial..=99, default 99).
    pub max_cpu_throttle: u32,
    /// `downtime-limit`, ms (0..=2,000,000, default 300).
    pub downtime_limit: u64,
    /// `max-bandwidth`, bytes/s (0 = unlimited, default 134217728 = 128 MiB/s since QEMU 5.2).
    pub max_bandwidth: u64,
    /// `avail-switchover-bandwidth`, bytes/s (0 = use the measured bandwidth).
    pub avail_switchover_bandwidth: u64,
    /// Capability `dirty-limit` (8.1+, off by default; excludes auto-converge).
    pub dirty_limit: bool,
    /// `vcpu-dirty-limit`, MB/s (>= 1, default 1): each vCPU's dirty-rate quota once the
    /// trigger fires with `dirty-limit` on.
    pub vcpu_dirty_limit: u64,
    /// `x-vcpu-dirty-limit-period`, ms (1..=1000, default 1000): how often each vCPU's dirty
    /// rate is measured and its sleep adjusted.
    pub x_vcpu_dirty_limit_period: u64,
}

impl Default for MigrationParameters {
    fn default() -> Self {
        Self {
            auto_converge: false,
            throttle_trigger_threshold: 50,
            cpu_throttle_initial: 20,
            cpu_throttle_increment: 10,
            cpu_throttle_tailslow: false,
            max_cpu_throttle: 99,
            downtime_limit: 300,
            max_bandwidth: 134_217_728,
            avail_switchover_bandwidth: 0,
            dirty_limit: false,
            vcpu_dirty_limit: 1,
            x_vcpu_dirty_limit_period: 1000,
        }
    }
}

/// Names accepted by [`MigrationParameters::set`], canonical first.
pub const PARAMETER_NAMES: &[&str] = &[
    "auto-converge",
    "throttle-trigger-threshold",
    "cpu-throttle-initial",
    "cpu-throttle-increment",
    "cpu-throttle-tailslow",
    "max-cpu-throttle",
    "downtime-limit",
    "max-bandwidth",
    "avail-switchover-bandwidth",
    "dirty-limit",
    "vcpu-dirty-limit",
    "x-vcpu-dirty-limit-period",
];

/// The values a parameter takes: one table for [`MigrationParameters::set`]'s checks and for
/// `autoconv params`' range column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRange {
    /// `on` or `off`.
    OnOff,
    /// An integer from `min` to `max`.
    Int {
        /// Lowest accepted.
        min: i64,
        /// Highest accepted.
        max: i64,
    },
    /// An integer from cpu-throttle-initial (checked on the merged set) to `max`.
    FromThrottleInitial {
        /// Highest accepted.
        max: i64,
    },
    /// An integer of at least `min`.
    AtLeast {
        /// Lowest accepted.
        min: i64,
    },
    /// Bytes per second; 0 stands for `zero_means`.
    BytesPerSecond {
        /// What 0 means.
        zero_means: &'static str,
    },
}

impl ParamRange {
    /// The integers `set` accepts (before cross-parameter rules), if it takes an integer.
    pub fn int_bounds(self) -> Option<(i64, i64)> {
        match self {
            ParamRange::Int { min, max } => Some((min, max)),
            ParamRange::FromThrottleInitial { max } => Some((1, max)),
            ParamRange::AtLeast { min } => Some((min, i64::MAX)),
            ParamRange::OnOff | ParamRange::BytesPerSecond { .. } => None,
        }
    }
}

impl std::fmt::Display for ParamRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamRange::OnOff => f.write_str("on|off"),
            ParamRange::Int { min, max } => write!(f, "{min}..{max}"),
            ParamRange::FromThrottleInitial { max } => write!(f, "initial..{max}"),
            ParamRange::AtLeast { min } => write!(f, ">= {min}"),
            ParamRange::BytesPerSecond { zero_means } => write!(f, "0 = {zero_means}"),
        }
    }
}

/// Every parameter's range, in [`PARAMETER_NAMES`] order.
pub const PARAMETER_RANGES: &[(&str, ParamRange)] = &[
    ("auto-converge", ParamRange::OnOff),
    (
        "throttle-trigger-threshold",
        ParamRange::Int { min: 1, max: 100 },
    ),
    ("cpu-throttle-initial", ParamRange::Int { min: 1, max: 99 }),
    (
        "cpu-throttle-increment",
        ParamRange::Int { min: 1, max: 99 },
    ),
    ("cpu-throttle-tailslow", ParamRange::OnOff),
    (
        "max-cpu-throttle",
        ParamRange::FromThrottleInitial { max: 99 },
    ),
    (
        "downtime-limit",
        ParamRange::Int {
            min: 0,
            max: MAX_MIGRATE_DOWNTIME_MS as i64,
        },
    ),
    (
        "max-bandwidth",
        ParamRange::BytesPerSecond {
            zero_means: "unlimited",
        },
    ),
    (
        "avail-switchover-bandwidth",
        ParamRange::BytesPerSecond {
            zero_means: "measured",
        },
    ),
    ("dirty-limit", ParamRange::OnOff),
    ("vcpu-dirty-limit", ParamRange::AtLeast { min: 1 }),
    (
        "x-vcpu-dirty-limit-period",
        ParamRange::Int { min: 1, max: 1000 },
    ),
];

/// QEMU caps downtime-limit at 2000 seconds.
const MAX_MIGRATE_DOWNTIME_MS: u64 = 2_000_000;

impl MigrationParameters {
    /// Take `other`'s `cpu-throttle-initial`, `cpu-throttle-increment`, `max-cpu-throttle` and
    /// `cpu-throttle-tailslow`: the parameters read only when the throttle policy picks a
    /// percentage. Two configurations equal after this run alike as long as the policy picks
    /// the same ([`super::Paused::policy_picks`]).
    pub fn policy_only_from(&mut self, other: &MigrationParameters) {
        self.cpu_throttle_initial = other.cpu_throttle_initial;
        self.cpu_throttle_increment = other.cpu_throttle_increment;
        self.max_cpu_throttle = other.max_cpu_throttle;
        self.cpu_throttle_tailslow = other.cpu_throttle_tailslow;
    }

    /// The canonical name for `name` (resolving QEMU 2.5's `x-` names and virsh's
    /// `auto-converge-*` options), if it is a modelled parameter.
    pub fn canonical_name(name: &str) -> Option<&'static str> {
        if let Some(n) = PARAMETER_NAMES.iter().find(|n| **n == name) {
            return Some(n);
        }
        vocabulary::alias_target(name)
    }

    /// The values parameter `name` (canonical or alias) takes.
    pub fn range(name: &str) -> Option<ParamRange> {
        let canonical = Self::canonical_name(name)?;
        PARAMETER_RANGES
            .iter()
            .find(|(n, _)| *n == canonical)
            .map(|(_, r)| *r)
    }

    /// Set one parameter by its QEMU name, checking type and range as `migrate-set-parameters`
    /// does. Cross-parameter rules are checked by [`MigrationParameters::validate`].
    pub fn set(&mut self, name: &str, value: &ParamValue) -> Result<(), ParameterError> {
        let Some(canonical) = Self::canonical_name(name) else {
            if let Some(kind) = vocabulary::unmodelled(name) {
                return Err(ParameterError::NotModelled {
                    kind: kind.word(),
                    name: name.to_string(),
                });
            }
            return Err(ParameterError::Unknown {
                name: name.to_string(),
                hint: suggest(name, PARAMETER_NAMES),
            });
        };
        // QEMU 7.2's words, checked against qemu-system-x86_64 by tests/qemu_wording.rs.
        let pct_1_99 = "an integer in the range of 1 to 99";
        // The integer bounds come from the one table `autoconv params` prints.
        let (lo, hi) = Self::range(canonical)
            .and_then(ParamRange::int_bounds)
            .unwrap_or((i64::MIN, i64::MAX));
        match canonical {
            "auto-converge" => self.auto_converge = bool_value(canonical, value)?,
            "dirty-limit" => self.dirty_limit = bool_value(canonical, value)?,
            "vcpu-dirty-limit" => {
                // QEMU's own wording (migration/options.c), underscore included.
                let refused = || ParameterError::Refused {
                    message: "Parameter 'vcpu_dirty_limit' must be greater than 1 MB/s".into(),
                };
                self.vcpu_dirty_limit = match value {
                    ParamValue::Int(v) if (lo..=hi).contains(v) => *v as u64,
                    ParamValue::Int(_) | ParamValue::Float(_) => return Err(refused()),
                    _ => return Err(not_an_integer(canonical)),
                }
            }
            "x-vcpu-dirty-limit-period" => self.x_vcpu_dirty_limit_period = match value {
                ParamValue::Int(v) if (lo..=hi).contains(v) => *v as u64,
                ParamValue::Int(_) | ParamValue::Float(_) => {
                    return Err(ParameterError::Refused {
                        message:
                            "Option x-vcpu-dirty-limit-period expects a value between 1 and 1000"
                                .into(),
                    })
                }
                _ => return Err(not_an_integer(canonical)),
            },
            "cpu-throttle-tailslow" => self.cpu_throttle_tailslow = bool_value(canonical, value)?,
            "throttle-trigger-threshold" => {
                self.throttle_trigger_threshold = uint8_in(
                    canonical,
                    value,
                    lo,
                    hi,
                    "an integer in the range of 1 to 100",
                )? as u32
            }
            "cpu-throttle-initial" => {
                self.cpu_throttle_initial = uint8_in(canonical, value, lo, hi, pct_1_99)? as u32
            }
            "cpu-throttle-increment" => {
                self.cpu_throttle_increment = uint8_in(canonical, value, lo, hi, pct_1_99)? as u32
            }
            "max-cpu-throttle" => {
                self.max_cpu_throttle =
                    uint8_in(canonical, value, lo, hi, MAX_CPU_THROTTLE_RANGE)? as u32
            }
            "downtime-limit" => {
                // QEMU 7.2 prints its macro as written: "(2000 * 1000) ms".
                self.downtime_limit = uint64_in(
                    canonical,
                    value,
                    lo,
                    hi,
                    "an integer in the range of 0 to (2000 * 1000) ms",
                )? as u64
            }
            "max-bandwidth" | "avail-switchover-bandwidth" => {
                let bytes = bandwidth_value(canonical, value)?;
                if canonical == "max-bandwidth" {
                    self.max_bandwidth = bytes;
                } else {
                    self.avail_switchover_bandwidth = bytes;
                }
            }
            _ => unreachable!("every canonical name is handled"),
        }
        Ok(())
    }

    /// Rules between parameters, checked on the merged set as QEMU does.
    pub fn validate(&self) -> Result<(), ParameterError> {
        if self.max_cpu_throttle < self.cpu_throttle_initial || self.max_cpu_throttle > 99 {
            return Err(ParameterError::InvalidValue {
                name: c_field("max-cpu-throttle"),
                expected: MAX_CPU_THROTTLE_RANGE.into(),
            });
        }
        if self.dirty_limit && self.auto_converge {
            // QEMU's message, typo and all (migrate_caps_check).
            return Err(ParameterError::Refused {
                message:
                    "dirty-limit conflicts with auto-converge either of then available currently"
                        .into(),
            });
        }
        Ok(())
    }

    /// Every parameter as (name, value) for reports.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("auto-converge", on_off(self.auto_converge).into()),
            (
                "throttle-trigger-threshold",
                self.throttle_trigger_threshold.to_string(),
            ),
            (
                "cpu-throttle-initial",
                self.cpu_throttle_initial.to_string(),
            ),
            (
                "cpu-throttle-increment",
                self.cpu_throttle_increment.to_string(),
            ),
            (
                "cpu-throttle-tailslow",
                on_off(self.cpu_throttle_tailslow).into(),
            ),
            ("max-cpu-throttle", self.max_cpu_throttle.to_string()),
            ("downtime-limit", self.downtime_limit.to_string()),
            ("max-bandwidth", self.max_bandwidth.to_string()),
            (
                "avail-switchover-bandwidth",
                self.avail_switchover_bandwidth.to_string(),
            ),
            ("dirty-limit", on_off(self.dirty_limit).into()),
            ("vcpu-dirty-limit", self.vcpu_dirty_limit.to_string()),
            (
                "x-vcpu-dirty-limit-period",
                self.x_vcpu_dirty_limit_period.to_string(),
            ),
        ]
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn bool_value(name: &str, value: &ParamValue) -> Result<bool, ParameterError> {
    match value {
        ParamValue::Bool(b) => Ok(*b),
        ParamValue::Str(s) if s == "on" || s == "true" => Ok(true),
        ParamValue::Str(s) if s == "off" || s == "false" => Ok(false),
        _ => Err(ParameterError::InvalidType {
            name: name.into(),
            expected: "boolean",
        }),
    }
}

/// What `migrate_params_check` says `max-cpu-throttle` must be, in QEMU 7.2's words.
const MAX_CPU_THROTTLE_RANGE: &str = "an integer in the range of cpu_throttle_initial to 99";

/// The C field name QEMU's `migrate_params_check` names a parameter by in its range errors
/// (`cpu_throttle_initial`), where QMP's input visitor names it as typed (`cpu-throttle-initial`).
fn c_field(name: &str) -> String {
    name.replace('-', "_")
}

/// An integer QAPI declares `uint8` (the throttle percentages). QEMU refuses it in two steps,
/// each in its own words: the input visitor refuses a value that is not an integer ("expects
/// uint64") or does not fit a byte ("expects uint8_t") under the name as typed; then
/// `migrate_params_check` refuses one out of range under the C field name.
fn uint8_in(
    name: &str,
    value: &ParamValue,
    lo: i64,
    hi: i64,
    expected: &str,
) -> Result<i64, ParameterError> {
    match value {
        ParamValue::Int(v) if !(0..=255).contains(v) => Err(ParameterError::InvalidValue {
            name: name.into(),
            expected: "uint8_t".into(),
        }),
        _ => uint64_in(name, value, lo, hi, expected),
    }
}

/// An integer QAPI declares `uint64`: anything but an integer is the visitor's "expects
/// uint64"; an integer out of range is `migrate_params_check`'s refusal (a negative one too:
/// QEMU reads it as a huge unsigned number, which is out of range).
fn uint64_in(
    name: &str,
    value: &ParamValue,
    lo: i64,
    hi: i64,
    expected: &str,
) -> Result<i64, ParameterError> {
    match value {
        ParamValue::Int(v) if (lo..=hi).contains(v) => Ok(*v),
        ParamValue::Int(_) => Err(ParameterError::InvalidValue {
            name: c_field(name),
            expected: expected.into(),
        }),
        _ => Err(not_an_integer(name)),
    }
}

/// QMP's input visitor refusing a value that is not an integer where QAPI wants `uint64`.
fn not_an_integer(name: &str) -> ParameterError {
    ParameterError::InvalidValue {
        name: name.into(),
        expected: "uint64".into(),
    }
}

/// A bare number of bytes/s below this is taken for a MiB/s slip (QMP's `max-bandwidth=64` is
/// 64 bytes/s, HMP's `migrate_set_parameter max-bandwidth 64` and virsh's `--bandwidth 64` are
/// 64 MiB/s). 0 means unlimited and is fine.
const BARE_BANDWIDTH_MIN_BYTES_S: u64 = 1 << 20;

/// Bytes per second: an integer as QEMU takes it, or (an autoconv convenience) a string with a
/// unit such as "64MiB/s" or "10Gbit/s". A bare number under 1 MiB/s (other than 0) is refused
/// with a hint; with a unit ("64B/s") it is taken as written.
fn bandwidth_value(name: &str, value: &ParamValue) -> Result<u64, ParameterError> {
    let expected = "an integer in the range of 0 to 18446744073709551615 bytes/second";
    let bare = |bytes: u64| {
        if bytes > 0 && bytes < BARE_BANDWIDTH_MIN_BYTES_S {
            Err(ParameterError::BareBandwidth {
                name: name.into(),
                bytes,
            })
        } else {
            Ok(bytes)
        }
    };
    match value {
        ParamValue::Int(v) if *v >= 0 => bare(*v as u64),
        ParamValue::Str(s) if !s.is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            bare(s.trim().parse().map_err(|_| ParameterError::InvalidValue {
                name: name.into(),
                expected: expected.into(),
            })?)
        }
        ParamValue::Int(_) => Err(ParameterError::InvalidValue {
            name: name.into(),
            expected: expected.into(),
        }),
        ParamValue::Float(_) | ParamValue::Bool(_) => Err(not_an_integer(name)),
        ParamValue::Str(s) => {
            crate::units::parse_rate_bytes_s(s).map_err(|_| ParameterError::InvalidValue {
                name: name.into(),
                expected: format!("{expected} (or a rate such as \"64MiB/s\")"),
            })
        }
    }
}

/// " (did you mean 'x'?)" for the closest known name, or "".
pub fn suggest(name: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 3.max(name.len() / 4) => format!(" (did you mean '{k}'?)"),
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// QEMU releases whose auto-converge behaviour autoconv can reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct QemuVersion {
    /// Major release.
    pub major: u32,
    /// Minor release.
    pub minor: u32,
}

impl QemuVersion {
    /// The release the spec was read from; the default.
    pub const CURRENT: QemuVersion = QemuVersion {
        major: 10,
        minor: 2,
    };
    /// The oldest release modelled (the reference traces' release).
    pub const OLDEST: QemuVersion = QemuVersion { major: 7, minor: 2 };

    /// Parse "7.2", "10.2", ...; releases before 7.2 are refused (their bulk stage and fixed
    /// trigger threshold are not modelled).
    pub fn parse(s: &str) -> Option<QemuVersion> {
        let (a, b) = s.trim().split_once('.')?;
        let v = QemuVersion {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        };
        (v >= Self::OLDEST && v <= Self::CURRENT).then_some(v)
    }

    /// QEMU 8.1 added the `dirty-limit` migration capability.
    pub const DIRTY_LIMIT: QemuVersion = QemuVersion { major: 8, minor: 1 };

    /// QEMU 8.1 added the `dirty-limit` migration capability.
    pub fn has_dirty_limit(self) -> bool {
        self >= Self::DIRTY_LIMIT
    }

    /// QEMU 9.2 added the 5 s periodic dirty sync under auto-converge.
    pub fn has_periodic_dirty_sync(self) -> bool {
        self >= QemuVersion { major: 9, minor: 2 }
    }
}

impl std::fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What autoconv adds to QEMU's migration: named apart so nobody takes it for QEMU behaviour.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AutoconvSettings {
    /// Stop a migration that has not completed after this much migration time and report it as
    /// `not-converged` (QEMU would go on forever). Default 600,000 ms (10 min).
    pub time_limit_ms: u64,
    /// Which QEMU release's behaviour to reproduce where releases differ (default 10.2).
    pub qemu_version: QemuVersion,
    /// Who picks the auto-converge throttle: QEMU's staircase (default) or autoconv's own
    /// predictive policy.
    pub policy: Policy,
    /// The guest's throttle-vs-dirty-rate profile for the predictive policy's first choice
    /// (`autoconv.profile`), if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<PolicyProfile>,
}

/// `autoconv.profile`: a profile CSV read for the predictive policy. Summaries name its file.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyProfile {
    /// The file, as given.
    pub path: String,
    /// Its curve: (throttle %, dirty bytes/s).
    pub curve: super::policy::ProfileCurve,
}

impl Serialize for PolicyProfile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.path)
    }
}

impl Default for AutoconvSettings {
    fn default() -> Self {
        Self {
            time_limit_ms: 600_000,
            qemu_version: QemuVersion::CURRENT,
            policy: Policy::Qemu,
            profile: None,
        }
    }
}

/// `autoconv.policy`: how the throttle percentage is chosen when auto-converge's trigger fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// QEMU's staircase: cpu-throttle-initial, then +cpu-throttle-increment (or tailslow).
    Qemu,
    /// autoconv's own: the throttle its model of the measured dirty rates (and a profile, if
    /// given) says costs the least guest CPU, climbing by cpu-throttle-increment at least when
    /// a prediction proves wrong (see `migration::policy`).
    Predictive,
}

impl Policy {
    /// Every policy name, as `autoconv.policy` takes it.
    pub const NAMES: &'static [&'static str] = &["qemu", "predictive"];

    /// Parse a name from [`Policy::NAMES`].
    pub fn parse(s: &str) -> Option<Policy> {
        match s.trim() {
            "qemu" => Some(Policy::Qemu),
            "predictive" => Some(Policy::Predictive),
            _ => None,
        }
    }

    /// The name `autoconv.policy` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Qemu => "qemu",
            Policy::Predictive => "predictive",
        }
    }
}

/// Rules between QEMU's parameters and autoconv's settings, checked once both are read.
pub fn check_config(
    params: &MigrationParameters,
    autoconv: &AutoconvSettings,
) -> Result<(), String> {
    if params.dirty_limit && !autoconv.qemu_version.has_dirty_limit() {
        return Err(format!(
            "dirty-limit is a QEMU {} capability; autoconv.qemu_version is {} (set it to {} or later, or use auto-converge)",
            QemuVersion::DIRTY_LIMIT,
            autoconv.qemu_version,
            QemuVersion::DIRTY_LIMIT
        ));
    }
    if autoconv.profile.is_some() && autoconv.policy != Policy::Predictive {
        return Err(
            "autoconv.profile is read by autoconv.policy = \"predictive\" only; set that policy too, or drop the profile"
                .to_string(),
        );
    }
    if autoconv.policy == Policy::Predictive && params.dirty_limit {
        return Err(
            "autoconv.policy = \"predictive\" picks the auto-converge throttle; it does not apply to dirty-limit (use auto-converge, or policy \"qemu\")"
                .to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range table is what `set` checks: each integer bound is accepted, one past it is
    /// refused, and every parameter has a range.
    #[test]
    fn set_accepts_exactly_the_table_ranges() {
        assert_eq!(PARAMETER_RANGES.len(), PARAMETER_NAMES.len());
        for (&name, (ranged, range)) in PARAMETER_NAMES.iter().zip(PARAMETER_RANGES) {
            assert_eq!(name, *ranged);
            let Some((lo, hi)) = range.int_bounds() else {
                continue;
            };
            let mut p = MigrationParameters::default();
            assert!(p.set(name, &ParamValue::Int(lo)).is_ok(), "{name} {lo}");
            if lo > 0 {
                assert!(p.set(name, &ParamValue::Int(lo - 1)).is_err(), "{name}");
            }
            if hi < i64::MAX {
                assert!(p.set(name, &ParamValue::Int(hi)).is_ok(), "{name} {hi}");
                assert!(p.set(name, &ParamValue::Int(hi + 1)).is_err(), "{name}");
            }
        }
    }

    #[test]
    fn defaults_are_qemus() {
        let p = MigrationParameters::default();
        assert!(!p.auto_converge);
        assert_eq!(p.throttle_trigger_threshold, 50);
        assert_eq!(p.cpu_throttle_initial, 20);
        assert_eq!(p.cpu_throttle_increment, 10);
        assert!(!p.cpu_throttle_tailslow);
        assert_eq!(p.max_cpu_throttle, 99);
        assert_eq!(p.downtime_limit, 300);
        assert_eq!(p.max_bandwidth, 128 << 20);
        assert_eq!(p.avail_switchover_bandwidth, 0);
    }

    #[test]
    fn out_of_range_values_get_qemus_wording() {
        let mut p = MigrationParameters::default();
        let e = p
            .set("cpu-throttle-initial", &ParamValue::Int(100))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99"
        );
        let e = p
            .set("throttle-trigger-threshold", &ParamValue::Int(0))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Parameter 'throttle_trigger_threshold' expects an integer in the range of 1 to 100"
        );
        let e = p
            .set("downtime-limit", &ParamValue::Int(2_000_001))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms"
        );
        assert!(p.set("downtime-limit", &ParamValue::Int(2_000_000)).is_ok());
        let e = p
            .set("cpu-throttle-tailslow", &ParamValue::Int(1))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid parameter type for 'cpu-throttle-tailslow', expected: boolean"
        );
        // The input visitor's refusals come first and name the parameter as typed.
        for (value, expected) in [
            (ParamValue::Int(300), "uint8_t"),
            (ParamValue::Int(-1), "uint8_t"),
            (ParamValue::Float(1.5), "uint64"),
            (ParamValue::Str("x".into()), "uint64"),
        ] {
            let e = p.set("cpu-throttle-initial", &value).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("Parameter 'cpu-throttle-initial' expects {expected}"),
                "{value}"
            );
        }
        // Nothing was changed by a refused value.
        assert_eq!(p.cpu_throttle_initial, 20);
    }

    #[test]
    fn max_cpu_throttle_must_not_be_below_initial() {
        let mut p = MigrationParameters::default();
        p.set("cpu-throttle-initial", &ParamValue::Int(50)).unwrap();
        p.set("max-cpu-throttle", &ParamValue::Int(40)).unwrap();
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial to 99"
        );
    }

    #[test]
    fn aliases_and_unknown_names() {
        let mut p = MigrationParameters::default();
        p.set("x-cpu-throttle-initial", &ParamValue::Int(30))
            .unwrap();
        p.set("x-cpu-throttle-increment", &ParamValue::Int(15))
            .unwrap();
        assert_eq!((p.cpu_throttle_initial, p.cpu_throttle_increment), (30, 15));
        p.set("auto-converge", &ParamValue::Str("on".into()))
            .unwrap();
        assert!(p.auto_converge);
        let e = p
            .set("cpu-throttle-intial", &ParamValue::Int(30))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Parameter 'cpu-throttle-intial' is unexpected (did you mean 'cpu-throttle-initial'?)"
        );
    }

    #[test]
    fn bandwidth_takes_integers_or_rates() {
        let mut p = MigrationParameters::default();
        p.set("max-bandwidth", &ParamValue::Str("64MiB/s".into()))
            .unwrap();
        assert_eq!(p.max_bandwidth, 64 << 20);
        p.set("max-bandwidth", &ParamValue::Int(0)).unwrap();
        assert_eq!(p.max_bandwidth, 0);
        assert!(p.set("max-bandwidth", &ParamValue::Int(-1)).is_err());
    }

    #[test]
    fn a_bare_bandwidth_under_1_mib_s_is_refused_with_a_hint() {
        let mut p = MigrationParameters::default();
        for v in [ParamValue::Int(64), ParamValue::Str("64".into())] {
            let e = p.set("max-bandwidth", &v).unwrap_err();
            assert_eq!(
                e.to_string(),
                "max-bandwidth=64 is 64 bytes/s: did you mean 64MiB/s? (a bare number is bytes/s, as in QMP; write 64B/s if you mean it)"
            );
        }
        assert_eq!(
            p.max_bandwidth,
            128 << 20,
            "a refused value changes nothing"
        );
        let e = p
            .set(
                "avail-switchover-bandwidth",
                &ParamValue::Int((1 << 20) - 1),
            )
            .unwrap_err();
        assert!(matches!(e, ParameterError::BareBandwidth { .. }), "{e}");
        // With a unit it is what it says; 1 MiB/s and up, or 0 (unlimited), bare is fine.
        p.set("max-bandwidth", &ParamValue::Str("64B/s".into()))
            .unwrap();
        assert_eq!(p.max_bandwidth, 64);
        p.set("max-bandwidth", &ParamValue::Int(1 << 20)).unwrap();
        assert_eq!(p.max_bandwidth, 1 << 20);
        p.set("max-bandwidth", &ParamValue::Int(0)).unwrap();
        assert_eq!(p.max_bandwidth, 0);
    }

    #[test]
    fn virsh_names_are_aliases_and_real_qemu_names_are_not_typos() {
        let mut p = MigrationParameters::default();
        p.set("auto-converge-initial", &ParamValue::Int(30))
            .unwrap();
        p.set("auto-converge-increment", &ParamValue::Int(15))
            .unwrap();
        assert_eq!((p.cpu_throttle_initial, p.cpu_throttle_increment), (30, 15));
        let e = p.set("multifd-channels", &ParamValue::Int(4)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "QEMU parameter 'multifd-channels' is not modelled by autoconv"
        );
        let e = p.set("postcopy-ram", &ParamValue::Bool(true)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "QEMU capability 'postcopy-ram' is not modelled by autoconv"
        );
    }

    #[test]
    fn dirty_limit_parameters_have_qemus_defaults_ranges_and_words() {
        let mut p = MigrationParameters::default();
        assert!(!p.dirty_limit);
        assert_eq!((p.vcpu_dirty_limit, p.x_vcpu_dirty_limit_period), (1, 1000));
        let e = p.set("vcpu-dirty-limit", &ParamValue::Int(0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Parameter 'vcpu_dirty_limit' must be greater than 1 MB/s"
        );
        let e = p
            .set("x-vcpu-dirty-limit-period", &ParamValue::Int(1001))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Option x-vcpu-dirty-limit-period expects a value between 1 and 1000"
        );
        p.set("x-vcpu-dirty-limit-period", &ParamValue::Int(1))
            .unwrap();
        p.set("vcpu-dirty-limit", &ParamValue::Int(1)).unwrap();
        p.set("dirty-limit", &ParamValue::Str("on".into())).unwrap();
        assert!(p.validate().is_ok());
        p.auto_converge = true;
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "dirty-limit conflicts with auto-converge either of then available currently"
        );
    }

    #[test]
    fn dirty_limit_needs_qemu_8_1() {
        let p = MigrationParameters {
            dirty_limit: true,
            ..MigrationParameters::default()
        };
        let mut a = AutoconvSettings {
            qemu_version: QemuVersion::parse("8.0").unwrap(),
            ..AutoconvSettings::default()
        };
        assert!(check_config(&p, &a)
            .unwrap_err()
            .contains("QEMU 8.1 capability"));
        a.qemu_version = QemuVersion::parse("8.1").unwrap();
        assert!(check_config(&p, &a).is_ok());
        assert_eq!(Policy::parse("predictive"), Some(Policy::Predictive));
        assert_eq!(Policy::parse("qemu").map(Policy::as_str), Some("qemu"));
        assert_eq!(Policy::parse("staircase"), None);
    }

    #[test]
    fn qemu_versions() {
        assert_eq!(QemuVersion::parse("7.2"), Some(QemuVersion::OLDEST));
        assert_eq!(QemuVersion::parse("10.2"), Some(QemuVersion::CURRENT));
        assert_eq!(QemuVersion::parse("2.5"), None);
        assert!(!QemuVersion::OLDEST.has_periodic_dirty_sync());
        assert!(QemuVersion::CURRENT.has_periodic_dirty_sync());
    }
}
