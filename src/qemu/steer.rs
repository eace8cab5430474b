//! `--steer predictive`: autoconv's predictive policy steering a real QEMU's auto-converge.
//!
//! QEMU keeps its own staircase: at each trigger firing it sets `cpu-throttle-initial` (the
//! first time) or adds `cpu-throttle-increment`, reading both at that moment. So before each
//! firing autoconv sets them live (`migrate-set-parameters`) to land QEMU's next throttle where
//! the policy wants it. The policy is the core's ([`Predictive`]), fed each sync period's
//! figures from `query-migrate`: `dirty-pages-rate` (QEMU's newly-dirty rate of the period)
//! and the bytes `transferred` over it. Being outside QEMU, it sees a period only after the
//! sync that closed it, where QEMU may already have fired: the choice QEMU applies is the one
//! made on the periods before (one period later than in the simulator).

use serde_json::{json, Map, Value};

use super::qmp::MigrationInfo;
use crate::migration::policy::{PeriodMeasurement, Predictive, ProfileCurve};
use crate::migration::MigrationParameters;

/// QEMU closes a dirty-rate period at the first sync at least this long after the last.
const PERIOD_MS: u64 = 1000;

/// Why `--steer` cannot steer this QEMU (exit 2).
#[derive(Debug, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum SteerError {
    /// --steer predictive steers auto-converge's throttle, but the auto-converge capability is off
    /// (migrate-set-capabilities auto-converge on)
    AutoConvergeOff,
    /// --steer predictive sets cpu-throttle-increment, which cpu-throttle-tailslow would cut short;
    /// turn cpu-throttle-tailslow off
    Tailslow,
    /// query-migrate-parameters has no {0}: this QEMU cannot be steered
    Missing(&'static str),
}

/// One `migrate-set-parameters` autoconv sent.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SteerAction {
    /// Migration time (QEMU's `total-time`, ms) when it was sent.
    pub t_ms: u64,
    /// The parameter, by QEMU's name.
    pub parameter: &'static str,
    /// Its new value.
    pub value: u32,
    /// The throttle QEMU's next step will land on.
    pub next_pct: u32,
}

/// Where the last closed period ended.
#[derive(Clone, Copy, Debug)]
struct Mark {
    t_ms: u64,
    transferred: u64,
    dirty_sync_count: u64,
    /// The throttle in force right after that sync (after any step it made).
    pct: u32,
}

/// The steering state for one migration.
#[derive(Debug)]
pub struct Steer {
    /// The user's parameters as QEMU had them before steering (the policy's, and restored at
    /// the end).
    params: MigrationParameters,
    policy: Predictive,
    mark: Option<Mark>,
    /// The throttle seen at the previous poll (in force during the period now closing).
    last_pct: u32,
    sent_initial: u32,
    sent_increment: u32,
    /// Every change sent, in order.
    pub actions: Vec<SteerAction>,
}

/// Read the auto-converge parameters and capability QEMU has (`query-migrate-parameters`,
/// and whether `auto-converge` is on) into the core's parameters.
pub fn params_from_qemu(
    parameters: &Value,
    auto_converge: bool,
) -> Result<MigrationParameters, SteerError> {
    let num = |name: &'static str| {
        parameters
            .get(name)
            .and_then(Value::as_u64)
            .map(|v| v as u32)
            .ok_or(SteerError::Missing(name))
    };
    let p = MigrationParameters {
        auto_converge,
        throttle_trigger_threshold: num("throttle-trigger-threshold")?,
        cpu_throttle_initial: num("cpu-throttle-initial")?,
        cpu_throttle_increment: num("cpu-throttle-increment")?,
        cpu_throttle_tailslow: parameters
            .get("cpu-throttle-tailslow")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        max_cpu_throttle: num("max-cpu-throttle")?,
        ..MigrationParameters::default()
    };
    if !p.auto_converge {
        return Err(SteerError::AutoConvergeOff);
    }
    if p.cpu_throttle_tailslow {
        return Err(SteerError::Tailslow);
    }
    Ok(p)
}

impl Steer {
    /// Steer a migration whose user parameters are `params`, with the guest's profile if given.
    pub fn new(params: MigrationParameters, profile: Option<&ProfileCurve>) -> Self {
        Self {
            sent_initial: params.cpu_throttle_initial,
            sent_increment: params.cpu_throttle_increment,
            params,
            policy: Predictive::with_profile(profile.cloned().unwrap_or_default()),
            mark: None,
            last_pct: 0,
            actions: Vec::new(),
        }
    }

    /// One `query-migrate` reply: record a period if a sync closed one, then the
    /// `migrate-set-parameters` arguments that put QEMU's next step where the policy wants it
    /// (None when they are already there or the migration is not active).
    pub fn on_poll(&mut self, info: &MigrationInfo) -> Option<Value> {
        let ram = info.ram.as_ref()?;
        let t_ms = info.total_time_ms?;
        let pct = info.cpu_throttle_percentage.unwrap_or(0) as u32;
        let seen_pct = std::mem::replace(&mut self.last_pct, pct);
        let now = Mark {
            t_ms,
            transferred: ram.transferred,
            dirty_sync_count: ram.dirty_sync_count,
            pct,
        };
        match self.mark {
            None if ram.dirty_sync_count >= 1 => self.mark = Some(now),
            None => return None,
            Some(m) if ram.dirty_sync_count > m.dirty_sync_count && t_ms > m.t_ms + PERIOD_MS => {
                let secs = (t_ms - m.t_ms) as f64 / 1000.0;
                let page = if ram.page_size > 0 {
                    ram.page_size
                } else {
                    4096
                };
                self.policy.observe(PeriodMeasurement {
                    // The period ran at what the last sync left, if nothing changed until
                    // the poll before this one.
                    steady_pct: (m.pct == seen_pct).then_some(seen_pct),
                    dirty_bytes_s: (ram.dirty_pages_rate * page) as f64,
                    xfer_bytes_s: ram.transferred.saturating_sub(m.transferred) as f64 / secs,
                });
                self.mark = Some(now);
            }
            Some(_) => {}
        }
        if info.status != "active" {
            return None;
        }
        self.steer(t_ms, pct)
    }

    /// The arguments that set the user's own values back (None if nothing was changed).
    pub fn restore(&self) -> Option<Value> {
        let mut args = Map::new();
        if self.sent_initial != self.params.cpu_throttle_initial {
            args.insert(
                "cpu-throttle-initial".into(),
                json!(self.params.cpu_throttle_initial),
            );
        }
        if self.sent_increment != self.params.cpu_throttle_increment {
            args.insert(
                "cpu-throttle-increment".into(),
                json!(self.params.cpu_throttle_increment),
            );
        }
        (!args.is_empty()).then_some(Value::Object(args))
    }

    fn steer(&mut self, t_ms: u64, pct: u32) -> Option<Value> {
        let want = self.policy.pct_if_fired(&self.params, pct);
        let (parameter, value) = if pct == 0 {
            ("cpu-throttle-initial", want)
        } else {
            // QEMU steps to min(pct + increment, max-cpu-throttle); at the top nothing moves it.
            if want <= pct {
                return None;
            }
            ("cpu-throttle-increment", want - pct)
        };
        let sent = if pct == 0 {
            &mut self.sent_initial
        } else {
            &mut self.sent_increment
        };
        if *sent == value {
            return None;
        }
        *sent = value;
        self.actions.push(SteerAction {
            t_ms,
            parameter,
            value,
            next_pct: want,
        });
        Some(json!({ parameter: value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(t_ms: u64, sync: u64, transferred: u64, rate_pages: u64, pct: u64) -> MigrationInfo {
        let mut v = json!({
            "status": "active",
            "total-time": t_ms,
            "ram": {"transferred": transferred, "dirty-pages-rate": rate_pages,
                    "dirty-sync-count": sync, "page-size": 4096}
        });
        if pct > 0 {
            v["cpu-throttle-percentage"] = json!(pct);
        }
        MigrationInfo::from_value(&v).unwrap()
    }

    fn params() -> MigrationParameters {
        params_from_qemu(
            &json!({"throttle-trigger-threshold": 50, "cpu-throttle-initial": 20,
                    "cpu-throttle-increment": 10, "max-cpu-throttle": 99,
                    "cpu-throttle-tailslow": false}),
            true,
        )
        .unwrap()
    }

    #[test]
    fn a_guest_that_re_dirties_the_pass_gets_initial_99_before_qemus_first_step() {
        let mut s = Steer::new(params(), None);
        // 100 MB/s on the wire, the period's newly-dirty rate 97 MB/s (23682 pages/s).
        assert_eq!(s.on_poll(&info(100, 1, 0, 0, 0)), None);
        assert_eq!(s.on_poll(&info(1500, 1, 140_000_000, 0, 0)), None);
        let set = s.on_poll(&info(2100, 2, 200_000_000, 23_682, 0));
        assert_eq!(set, Some(json!({"cpu-throttle-initial": 99})));
        // Sent once.
        assert_eq!(s.on_poll(&info(2200, 2, 210_000_000, 23_682, 0)), None);
        // QEMU stepped to 99: at max-cpu-throttle nothing more to steer; the user's values
        // come back at the end.
        assert_eq!(s.on_poll(&info(4300, 3, 420_000_000, 1_000, 99)), None);
        assert_eq!(s.restore(), Some(json!({"cpu-throttle-initial": 20})));
        assert_eq!(s.actions.len(), 1);
        assert_eq!(s.actions[0].t_ms, 2100);
    }

    #[test]
    fn a_wrong_first_choice_steers_the_increment_to_the_refit() {
        let mut s = Steer::new(params(), None);
        s.on_poll(&info(100, 1, 0, 0, 0));
        // 55 % of a 100 MB/s pass re-dirtied: the link keeps up; the choice is 50 %.
        let set = s.on_poll(&info(1101, 2, 100_100_000, 13_428, 0));
        assert_eq!(set, Some(json!({"cpu-throttle-initial": 50})));
        // QEMU fired at the next sync with 50 (this period still ran at 0).
        assert_eq!(s.on_poll(&info(2202, 3, 210_200_000, 13_428, 50)), None);
        // A steady period at 50 % whose rate hardly fell (53 MB/s): out of reach of the line
        // -> 99, i.e. an increment of 49.
        let set = s.on_poll(&info(3303, 4, 320_300_000, 12_939, 50));
        assert_eq!(set, Some(json!({"cpu-throttle-increment": 49})));
        assert_eq!(
            s.restore(),
            Some(json!({"cpu-throttle-initial": 20, "cpu-throttle-increment": 10}))
        );
    }

    #[test]
    fn a_profile_decides_the_first_step_once_the_link_is_measured() {
        let curve = vec![(0, 90e6), (50, 80e6), (80, 20e6)];
        let mut s = Steer::new(params(), Some(&curve));
        // No link measured yet: nothing to steer.
        assert_eq!(s.on_poll(&info(100, 1, 0, 0, 0)), None);
        // After a 100 MB/s period the profile's curve decides: 70 %.
        let set = s.on_poll(&info(1101, 2, 100_100_000, 24_000, 0));
        assert_eq!(set, Some(json!({"cpu-throttle-initial": 70})));
    }

    #[test]
    fn refusals_name_the_parameter() {
        let p = json!({"throttle-trigger-threshold": 50, "cpu-throttle-initial": 20,
                       "cpu-throttle-increment": 10, "max-cpu-throttle": 99,
                       "cpu-throttle-tailslow": true});
        assert_eq!(params_from_qemu(&p, true), Err(SteerError::Tailslow));
        assert_eq!(
            params_from_qemu(&p, false),
            Err(SteerError::AutoConvergeOff)
        );
        assert_eq!(
            params_from_qemu(&json!({}), true),
            Err(SteerError::Missing("throttle-trigger-threshold"))
        );
    }
}
