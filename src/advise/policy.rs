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
}

impl Policy {
    /// Set this policy's parameters (and the capability it needs) on `config`, turning off
    /// whatever other policy the scenario chose.
    pub fn apply_to(&self, config: &mut MigrationConfig) {
        let params = &mut config.params;
        match self {
            Policy::Throttle(t) => {
                config.autoconv.policy = ThrottlePicker::Qemu;
                params.dirty_limit = false;
                params.auto_converge = true;
                params.cpu_throttle_initial = t.initial_pct;
                params.cpu_throttle_increment = t.increment_pct;
                params.cpu_throttle_tailslow = t.tailslow;
                params.throttle_trigger_threshold = t.trigger_threshold_pct;
                params.max_cpu_throttle = t.max_throttle_pct;
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
        }
    }

    /// Capabilities the policy turns on.
    pub fn capabilities(&self) -> Vec<&'static str> {
        match self {
            Policy::Throttle(_) => vec!["auto-converge"],
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
