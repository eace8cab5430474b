//! The policies `autoconv advise` searches, and the space it searches them in.
//!
//! Extension point: a later policy family (autoconv's `predictive`, QEMU's `dirty-limit`) is a
//! new [`Policy`] variant with its own `apply_to`, `describe` and a list of candidates added
//! by [`Space::policies`]; the search, the front and the recommendation work on any variant.

use crate::migration::params::Policy as ThrottlePicker;
use crate::migration::MigrationConfig;

/// QEMU's auto-converge CPU throttle, by its five parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThrottlePolicy {
    /// `cpu-throttle-initial`, %.
    pub initial_pct: u32,
    /// `cpu-throttle-increment`, %.
    pub increment_pct: u32,
    /// `cpu-throttle-tailslow`.
    pub tailslow: bool,
    /// `throttle-trigger-threshold`, %.
    pub trigger_threshold_pct: u32,
    /// `max-cpu-throttle`, %.
    pub max_throttle_pct: u32,
}

impl ThrottlePolicy {
    /// QEMU's defaults (with auto-converge on).
    pub const QEMU_DEFAULT: ThrottlePolicy = ThrottlePolicy {
        initial_pct: 20,
        increment_pct: 10,
        tailslow: false,
        trigger_threshold_pct: 50,
        max_throttle_pct: 99,
    };

    /// The value of one dimension, by QEMU name, as a number (tailslow: 0/1).
    pub fn get(&self, name: &str) -> u32 {
        match name {
            "cpu-throttle-initial" => self.initial_pct,
            "cpu-throttle-increment" => self.increment_pct,
            "cpu-throttle-tailslow" => u32::from(self.tailslow),
            "throttle-trigger-threshold" => self.trigger_threshold_pct,
            "max-cpu-throttle" => self.max_throttle_pct,
            _ => 0,
        }
    }

    /// This policy with one dimension changed.
    pub fn with(&self, name: &str, value: u32) -> ThrottlePolicy {
        let mut p = *self;
        match name {
            "cpu-throttle-initial" => p.initial_pct = value,
            "cpu-throttle-increment" => p.increment_pct = value,
            "cpu-throttle-tailslow" => p.tailslow = value != 0,
            "throttle-trigger-threshold" => p.trigger_threshold_pct = value,
            "max-cpu-throttle" => p.max_throttle_pct = value,
            _ => {}
        }
        p
    }
}

/// The dimensions of [`ThrottlePolicy`], by QEMU name, in the order reports list them.
pub const THROTTLE_DIMENSIONS: [&str; 5] = [
    "cpu-throttle-initial",
    "cpu-throttle-increment",
    "max-cpu-throttle",
    "throttle-trigger-threshold",
    "cpu-throttle-tailslow",
];

/// One policy the advisor can recommend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// QEMU's auto-converge throttle.
    Throttle(ThrottlePolicy),
    /// autoconv's predictive policy choosing auto-converge's throttle (not QEMU's: on a real
    /// QEMU it needs autoconv steering it, `autoconv record --qmp SOCKET --steer predictive`),
    /// with QEMU's default trigger and staircase parameters for its fall-back.
    Predictive {
        /// `max-cpu-throttle`, %: the highest it may choose.
        max_throttle_pct: u32,
    },
    /// QEMU 8.1+'s `dirty-limit` capability (auto-converge off) at a per-vCPU quota.
    DirtyLimit {
        /// `vcpu-dirty-limit`, MB/s.
        quota_mb_s: u32,
    },
}

/// The `vcpu-dirty-limit` quotas the advisor tries: QEMU's default (1 MB/s) and a few more.
pub const DIRTY_LIMIT_QUOTAS_MB_S: [u32; 4] = [1, 10, 50, 200];

impl Policy {
    /// Set this policy's parameters (and the capability it needs) on `config`, turning off
    /// whatever other policy the scenario chose.
    pub fn apply_to(&self, config: &mut MigrationConfig) {
        let params = &mut config.params;
        match self {
            Policy::Throttle(t) => {
                config.autoconv.policy = ThrottlePicker::Qemu;
                config.autoconv.profile = None;
                params.dirty_limit = false;
                params.auto_converge = true;
                params.cpu_throttle_initial = t.initial_pct;
                params.cpu_throttle_increment = t.increment_pct;
                params.cpu_throttle_tailslow = t.tailslow;
                params.throttle_trigger_threshold = t.trigger_threshold_pct;
                params.max_cpu_throttle = t.max_throttle_pct;
            }
            Policy::Predictive { max_throttle_pct } => {
                Policy::Throttle(ThrottlePolicy {
                    max_throttle_pct: *max_throttle_pct,
                    ..ThrottlePolicy::QEMU_DEFAULT
                })
                .apply_to(config);
                config.autoconv.policy = ThrottlePicker::Predictive;
            }
            Policy::DirtyLimit { quota_mb_s } => {
                config.autoconv.policy = ThrottlePicker::Qemu;
                config.autoconv.profile = None;
                let params = &mut config.params;
                params.auto_converge = false;
                params.dirty_limit = true;
                params.vcpu_dirty_limit = u64::from(*quota_mb_s);
            }
        }
    }

    /// QEMU parameter (name, value) pairs, as QMP takes them.
    pub fn parameters(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            Policy::Throttle(t) => vec![
                ("cpu-throttle-initial", t.initial_pct.into()),
                ("cpu-throttle-increment", t.increment_pct.into()),
                ("cpu-throttle-tailslow", t.tailslow.into()),
                ("max-cpu-throttle", t.max_throttle_pct.into()),
                ("throttle-trigger-threshold", t.trigger_threshold_pct.into()),
            ],
            // autoconv sets cpu-throttle-initial/-increment live while it steers.
            Policy::Predictive { max_throttle_pct } => Policy::Throttle(ThrottlePolicy {
                max_throttle_pct: *max_throttle_pct,
                ..ThrottlePolicy::QEMU_DEFAULT
            })
            .parameters(),
            Policy::DirtyLimit { quota_mb_s } => vec![("vcpu-dirty-limit", (*quota_mb_s).into())],
        }
    }

    /// The command that applies a policy QEMU cannot run on its own, if it is one.
    pub fn steering(&self) -> Option<&'static str> {
        match self {
            Policy::Predictive { .. } => Some(
                "autoconv record --qmp SOCKET --steer predictive [--profile PROFILE.csv] --migrate URI",
            ),
            _ => None,
        }
    }

    /// Capabilities the policy must turn off (QEMU refuses dirty-limit beside auto-converge).
    pub fn capabilities_off(&self) -> Vec<&'static str> {
        match self {
            Policy::DirtyLimit { .. } => vec!["auto-converge"],
            _ => Vec::new(),
        }
    }

    /// What the guest's QEMU must already have for this policy, if anything.
    pub fn prerequisite(&self) -> Option<&'static str> {
        match self {
            Policy::DirtyLimit { .. } => Some(
                "QEMU 8.1 or later, started with KVM's dirty ring: -accel kvm,dirty-ring-size=4096 (libvirt: <features><kvm><dirty-ring state='on' size='4096'/></kvm></features>)",
            ),
            _ => None,
        }
    }

    /// Capabilities the policy turns on.
    pub fn capabilities(&self) -> Vec<&'static str> {
        match self {
            Policy::Throttle(_) | Policy::Predictive { .. } => vec!["auto-converge"],
            Policy::DirtyLimit { .. } => vec!["dirty-limit"],
        }
    }

    /// "initial 70, increment 10, max 70" (non-default extras only).
    pub fn describe(&self) -> String {
        match self {
            Policy::Throttle(t) => {
                let mut s = format!(
                    "cpu-throttle-initial={} cpu-throttle-increment={}",
                    t.initial_pct, t.increment_pct
                );
                let d = ThrottlePolicy::QEMU_DEFAULT;
                if t.max_throttle_pct != d.max_throttle_pct {
                    s.push_str(&format!(" max-cpu-throttle={}", t.max_throttle_pct));
                }
                if t.trigger_threshold_pct != d.trigger_threshold_pct {
                    s.push_str(&format!(
                        " throttle-trigger-threshold={}",
                        t.trigger_threshold_pct
                    ));
                }
                if t.tailslow != d.tailslow {
                    s.push_str(" cpu-throttle-tailslow=on");
                }
                s
            }
            Policy::Predictive { max_throttle_pct } => {
                if *max_throttle_pct == ThrottlePolicy::QEMU_DEFAULT.max_throttle_pct {
                    "autoconv.policy=predictive (steering QEMU)".to_string()
                } else {
                    format!(
                        "autoconv.policy=predictive max-cpu-throttle={max_throttle_pct} (steering QEMU)"
                    )
                }
            }
            Policy::DirtyLimit { quota_mb_s } => {
                format!("dirty-limit=on vcpu-dirty-limit={quota_mb_s}")
            }
        }
    }

    /// How far from QEMU's defaults (for tie-breaks: prefer the smallest change).
    pub fn distance_from_default(&self) -> (u32, u32) {
        match self {
            Policy::Throttle(t) => {
                let d = ThrottlePolicy::QEMU_DEFAULT;
                let changed = THROTTLE_DIMENSIONS
                    .iter()
                    .filter(|n| t.get(n) != d.get(n))
                    .count() as u32;
                let moved = THROTTLE_DIMENSIONS
                    .iter()
                    .map(|n| t.get(n).abs_diff(d.get(n)))
                    .sum();
                (changed, moved)
            }
            // Another mechanism than QEMU's default: after any staircase that ties.
            Policy::Predictive { max_throttle_pct } => (
                THROTTLE_DIMENSIONS.len() as u32 + 1,
                max_throttle_pct.abs_diff(ThrottlePolicy::QEMU_DEFAULT.max_throttle_pct),
            ),
            Policy::DirtyLimit { quota_mb_s } => {
                (THROTTLE_DIMENSIONS.len() as u32 + 2, quota_mb_s.abs_diff(1))
            }
        }
    }
}

/// Which policies to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    /// `cpu-throttle-initial` values (default 1..=99).
    pub initial_pct: Vec<u32>,
    /// `cpu-throttle-increment` values (default 1..=99).
    pub increment_pct: Vec<u32>,
    /// `cpu-throttle-tailslow` values.
    pub tailslow: Vec<bool>,
    /// `throttle-trigger-threshold` values.
    pub trigger_threshold_pct: Vec<u32>,
    /// `max-cpu-throttle` values (each used with the initials it is not below).
    pub max_throttle_pct: Vec<u32>,
}

impl Space {
    /// The whole initial x increment square, tailslow off and on, QEMU's trigger threshold
    /// and a lower and a higher one, and max-cpu-throttle at 99 and every ten below it
    /// (plus `extra_cap`, the throttle the user allows, when given).
    pub fn standard(extra_cap: Option<u32>) -> Space {
        let mut caps: Vec<u32> = vec![50, 60, 70, 80, 90, 99];
        if let Some(c) = extra_cap.filter(|c| (1..=99).contains(c)) {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
        caps.sort_unstable();
        Space {
            initial_pct: (1..=99).collect(),
            increment_pct: (1..=99).collect(),
            tailslow: vec![false, true],
            trigger_threshold_pct: vec![50, 25, 75],
            max_throttle_pct: caps,
        }
    }

    /// Every policy of the space (QEMU refuses max-cpu-throttle below cpu-throttle-initial,
    /// so those are left out).
    pub fn policies(&self) -> Vec<Policy> {
        let mut out = Vec::new();
        for &trigger in &self.trigger_threshold_pct {
            for &tailslow in &self.tailslow {
                for &initial in &self.initial_pct {
                    for &max in &self.max_throttle_pct {
                        if max < initial {
                            continue;
                        }
                        for &increment in &self.increment_pct {
                            out.push(Policy::Throttle(ThrottlePolicy {
                                initial_pct: initial,
                                increment_pct: increment,
                                tailslow,
                                trigger_threshold_pct: trigger,
                                max_throttle_pct: max,
                            }));
                        }
                    }
                }
            }
        }
        out
    }
}
