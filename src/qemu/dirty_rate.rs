//! A running VM's dirty rate over QMP: QEMU's `calc-dirty-rate` / `query-dirty-rate`, at several
//! `calc-time` values, plus the VM's memory and vCPUs. It only measures: no parameter of the VM
//! is changed.
//!
//! QEMU (7.1+) measures one rate per `calc-dirty-rate`, in one of three modes:
//! * `page-sampling` (any accelerator): hashes `sample-pages` random pages per GiB of each RAM
//!   block of 128 MiB or more at the start and the end of `calc-time`, and scales the share that
//!   changed to the block's size;
//! * `dirty-bitmap` (KVM): turns dirty logging on for `calc-time` and counts the pages logged;
//! * `dirty-ring` (KVM started with `-accel kvm,dirty-ring-size=N`): counts each vCPU's dirty
//!   ring entries, and reports a rate per vCPU as well. The rings are harvested and the pages
//!   re-protected all through the interval, so a page written again later counts again: the
//!   rate does not saturate with the interval (measured: 25-27 MiB/s at 1, 2, 4 and 8 s on a
//!   guest whose 64 MiB working set fills in ~4 s) and cannot show the working set. It serves
//!   here only to tell which vCPUs write ([`per_vcpu_rates`]). A VM with dirty rings refuses
//!   `dirty-bitmap`, so its curve comes from page sampling.
//!
//! In each mode the reply's `dirty-rate` is an integer in MiB/s (QEMU's "MB/s" is 2^20 bytes)
//! over the interval: distinct pages dirtied in the interval, times 4 KiB, divided by it.
//! Multiplied back by the interval, it is one point of U(T), the distinct pages dirtied in T,
//! which [`crate::sim::working_set_fit`] fits.

use serde_json::{json, Value};
use std::time::Duration;

/// Bytes in QEMU's dirty-rate unit (its "MB" is `1 << 20`).
pub const DIRTY_RATE_UNIT_BYTES: f64 = (1u64 << 20) as f64;

/// A QMP session able to run a command: implemented for [`crate::qemu::qmp::QmpClient`], and
/// by scripted peers in tests.
pub trait QmpExecute {
    /// Run `command` with `arguments`; its `return` value, or why not.
    fn qmp(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpFailure>;
}

impl QmpExecute for crate::qemu::qmp::QmpClient {
    fn qmp(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpFailure> {
        use crate::qemu::qmp::QmpError;
        self.execute(command, arguments).map_err(|e| match e {
            QmpError::Command { desc, .. } => QmpFailure::Refused(desc),
            other => QmpFailure::Broken(other.to_string()),
        })
    }
}

/// Why a command gave no value.
#[derive(Clone, Debug, PartialEq, displaydoc::Display, thiserror::Error)]
pub enum QmpFailure {
    // QEMU's own error text: QEMU refused the command.
    /// {0}
    Refused(String),
    // The session broke: socket, timeout, malformed reply.
    /// {0}
    Broken(String),
}

/// How QEMU measures (`calc-dirty-rate`'s `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirtyRateMode {
    /// `page-sampling`.
    PageSampling,
    /// `dirty-bitmap`.
    DirtyBitmap,
    /// `dirty-ring`.
    DirtyRing,
}

impl DirtyRateMode {
    /// QEMU's name.
    pub fn name(self) -> &'static str {
        match self {
            DirtyRateMode::PageSampling => "page-sampling",
            DirtyRateMode::DirtyBitmap => "dirty-bitmap",
            DirtyRateMode::DirtyRing => "dirty-ring",
        }
    }

    /// From QEMU's name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            DirtyRateMode::PageSampling,
            DirtyRateMode::DirtyBitmap,
            DirtyRateMode::DirtyRing,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }

    /// Modes that count distinct pages over the interval, tried in this order when the user
    /// names none: an exact count with dirty logging on (what a migration sees), then
    /// sampling, which always works.
    pub const AUTO_ORDER: [DirtyRateMode; 2] =
        [DirtyRateMode::DirtyBitmap, DirtyRateMode::PageSampling];
}

/// The VM as QMP describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct VmShape {
    /// RAM: `query-memory-size-summary`'s `base-memory` plus `plugged-memory`.
    pub memory_bytes: u64,
    /// vCPUs: entries of `query-cpus-fast`.
    pub vcpus: u32,
    /// `query-status`'s `status` (`running`, `paused`, ...).
    pub status: String,
}

/// One finished `calc-dirty-rate`.
#[derive(Clone, Debug, PartialEq)]
pub struct DirtyRateReading {
    /// The mode QEMU used.
    pub mode: DirtyRateMode,
    /// `calc-time` (s).
    pub calc_time_s: u64,
    /// `dirty-rate` (MiB/s, QEMU's integer).
    pub dirty_rate_mib_s: u64,
    /// `vcpu-dirty-rate` (dirty-ring mode): (vCPU id, MiB/s).
    pub vcpu_dirty_rate_mib_s: Vec<(u64, u64)>,
    /// `sample-pages` (page-sampling mode), per GiB.
    pub sample_pages: Option<u64>,
}

impl DirtyRateReading {
    /// The rate in 4 KiB pages/s. QEMU truncates to whole MiB/s (256 pages/s), so a reading of
    /// r > 0 stands for [r, r + 1) and is taken at its middle, r + 0.5; 0 stays 0 (an idle
    /// guest). Without that, a fit of a small guest measured over long intervals lands low.
    pub fn dirty_pages_s(&self) -> f64 {
        let mib_s = match self.dirty_rate_mib_s {
            0 => 0.0,
            r => r as f64 + 0.5,
        };
        mib_s * DIRTY_RATE_UNIT_BYTES / 4096.0
    }

    /// Distinct 4 KiB pages dirtied in the interval, as the rate says.
    pub fn distinct_pages(&self) -> f64 {
        self.dirty_pages_s() * self.calc_time_s as f64
    }
}

/// What goes wrong measuring.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum DirtyRateError {
    /// {command}: {failure}
    Qmp {
        /// The command.
        command: String,
        /// Why.
        failure: QmpFailure,
    },
    /// {command}: unexpected reply {reply}: {why}
    Reply {
        /// The command.
        command: String,
        /// The reply (shortened).
        reply: String,
        /// What is wrong with it.
        why: String,
    },
    /// calc-dirty-rate: no mode works on this VM: {0}
    NoMode(String),
    /// query-dirty-rate: still not measured {waited_s} s after a calc-time of {calc_time_s} s
    NeverMeasured {
        /// calc-time asked.
        calc_time_s: u64,
        /// Time waited.
        waited_s: u64,
    },
    /// measuring interrupted
    Interrupted,
}

fn run(
    q: &mut dyn QmpExecute,
    command: &str,
    args: Option<Value>,
) -> Result<Value, DirtyRateError> {
    q.qmp(command, args).map_err(|failure| DirtyRateError::Qmp {
        command: command.into(),
        failure,
    })
}

fn bad_reply(command: &str, reply: &Value, why: impl Into<String>) -> DirtyRateError {
    let mut text = reply.to_string();
    if text.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push_str("...");
    }
    DirtyRateError::Reply {
        command: command.into(),
        reply: text,
        why: why.into(),
    }
}

/// Memory, vCPUs and run state over QMP.
pub fn query_vm_shape(q: &mut dyn QmpExecute) -> Result<VmShape, DirtyRateError> {
    let mem = run(q, "query-memory-size-summary", None)?;
    let base = mem
        .get("base-memory")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad_reply("query-memory-size-summary", &mem, "no base-memory"))?;
    let plugged = mem
        .get("plugged-memory")
        .map(|v| {
            v.as_u64().ok_or_else(|| {
                bad_reply(
                    "query-memory-size-summary",
                    &mem,
                    "plugged-memory is not a byte count",
                )
            })
        })
        .transpose()?
        .unwrap_or(0);
    let cpus = run(q, "query-cpus-fast", None)?;
    let vcpus = cpus
        .as_array()
        .ok_or_else(|| bad_reply("query-cpus-fast", &cpus, "not a list of vCPUs"))?
        .len();
    if vcpus == 0 {
        return Err(bad_reply("query-cpus-fast", &cpus, "the VM has no vCPU"));
    }
    let st = run(q, "query-status", None)?;
    let status = st
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_reply("query-status", &st, "no status"))?
        .to_string();
    Ok(VmShape {
        memory_bytes: base.saturating_add(plugged),
        vcpus: u32::try_from(vcpus).unwrap_or(u32::MAX),
        status,
    })
}

/// Parse a `query-dirty-rate` reply; `None` while it is not `measured` yet.
pub fn parse_query_dirty_rate(v: &Value) -> Result<Option<DirtyRateReading>, DirtyRateError> {
    const CMD: &str = "query-dirty-rate";
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_reply(CMD, v, "no status"))?;
    match status {
        "unstarted" | "measuring" => return Ok(None),
        "measured" => {}
        other => return Err(bad_reply(CMD, v, format!("unknown status {other:?}"))),
    }
    let uint = |key: &str| {
        v.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_reply(CMD, v, format!("{key} is missing or not a count")))
    };
    let dirty_rate_mib_s = match v.get("dirty-rate").and_then(Value::as_i64) {
        Some(r) if r >= 0 => r as u64,
        // QEMU reports -1 when it could not measure (e.g. no RAM block big enough to sample).
        Some(r) => {
            return Err(bad_reply(
                CMD,
                v,
                format!("dirty-rate {r}: QEMU could not measure"),
            ))
        }
        None => return Err(bad_reply(CMD, v, "dirty-rate is missing")),
    };
    // Before 7.1 there was only page sampling and no `mode` field.
    let mode = match v.get("mode").and_then(Value::as_str) {
        None => DirtyRateMode::PageSampling,
        Some(name) => DirtyRateMode::from_name(name)
            .ok_or_else(|| bad_reply(CMD, v, format!("unknown mode {name:?}")))?,
    };
    let mut vcpu_dirty_rate_mib_s = Vec::new();
    if let Some(list) = v.get("vcpu-dirty-rate") {
        for item in list
            .as_array()
            .ok_or_else(|| bad_reply(CMD, v, "vcpu-dirty-rate is not a list"))?
        {
            let id = item.get("id").and_then(Value::as_u64);
            let rate = item.get("dirty-rate").and_then(Value::as_u64);
            match (id, rate) {
                (Some(id), Some(rate)) => vcpu_dirty_rate_mib_s.push((id, rate)),
                _ => {
                    return Err(bad_reply(
                        CMD,
                        v,
                        "a vcpu-dirty-rate entry needs id and dirty-rate",
                    ))
                }
            }
        }
    }
    Ok(Some(DirtyRateReading {
        mode,
        calc_time_s: uint("calc-time")?,
        dirty_rate_mib_s,
        vcpu_dirty_rate_mib_s,
        sample_pages: v.get("sample-pages").and_then(Value::as_u64),
    }))
}

/// One measurement: `calc-dirty-rate` with `calc_time_s` in `mode`, then `query-dirty-rate`
/// every 100 ms (`sleep` waits; `false` from it stops) until QEMU has measured it.
pub fn measure_once(
    q: &mut dyn QmpExecute,
    mode: DirtyRateMode,
    calc_time_s: u64,
    sample_pages: Option<u64>,
    sleep: &mut dyn FnMut(Duration) -> bool,
) -> Result<DirtyRateReading, DirtyRateError> {
    let mut args = json!({ "calc-time": calc_time_s, "mode": mode.name() });
    if let (DirtyRateMode::PageSampling, Some(n)) = (mode, sample_pages) {
        args["sample-pages"] = json!(n);
    }
    run(q, "calc-dirty-rate", Some(args))?;
    // QEMU's measuring thread sleeps calc-time; allow it generous slack on a busy host.
    let poll = Duration::from_millis(100);
    let limit_ms = calc_time_s * 1000 + 30_000;
    let mut waited_ms = 0;
    loop {
        if !sleep(poll) {
            return Err(DirtyRateError::Interrupted);
        }
        waited_ms += 100;
        let reply = run(q, "query-dirty-rate", None)?;
        if let Some(r) = parse_query_dirty_rate(&reply)? {
            if r.calc_time_s != calc_time_s || r.mode != mode {
                return Err(bad_reply(
                    "query-dirty-rate",
                    &reply,
                    format!(
                        "measured {} s in {} while {} s in {} was asked (another client measuring?)",
                        r.calc_time_s,
                        r.mode.name(),
                        calc_time_s,
                        mode.name()
                    ),
                ));
            }
            return Ok(r);
        }
        if waited_ms > limit_ms {
            return Err(DirtyRateError::NeverMeasured {
                calc_time_s,
                waited_s: waited_ms / 1000,
            });
        }
    }
}

/// Measure at each of `calc_times_s` (`repeats` times each), in `mode` or, with `None`, in the
/// first mode of [`DirtyRateMode::AUTO_ORDER`] QEMU accepts. `each` sees every reading as it
/// arrives.
pub fn measure_series(
    q: &mut dyn QmpExecute,
    mode: Option<DirtyRateMode>,
    calc_times_s: &[u64],
    repeats: u32,
    sample_pages: Option<u64>,
    sleep: &mut dyn FnMut(Duration) -> bool,
    each: &mut dyn FnMut(&DirtyRateReading),
) -> Result<Vec<DirtyRateReading>, DirtyRateError> {
    let mut readings = Vec::new();
    let mut chosen = mode;
    for &t in calc_times_s {
        for _ in 0..repeats.max(1) {
            let r = match chosen {
                Some(m) => measure_once(q, m, t, sample_pages, sleep)?,
                None => {
                    let (m, r) = first_accepted_mode(q, t, sample_pages, sleep)?;
                    chosen = Some(m);
                    r
                }
            };
            each(&r);
            readings.push(r);
        }
    }
    Ok(readings)
}

/// Per-vCPU dirty rates over `calc_time_s` (`dirty-ring` mode), or `None` when the VM has no
/// dirty rings (QEMU refuses the mode).
pub fn per_vcpu_rates(
    q: &mut dyn QmpExecute,
    calc_time_s: u64,
    sleep: &mut dyn FnMut(Duration) -> bool,
) -> Result<Option<DirtyRateReading>, DirtyRateError> {
    match measure_once(q, DirtyRateMode::DirtyRing, calc_time_s, None, sleep) {
        Ok(r) => Ok(Some(r)),
        Err(DirtyRateError::Qmp {
            failure: QmpFailure::Refused(_),
            command,
        }) if command == "calc-dirty-rate" => Ok(None),
        Err(e) => Err(e),
    }
}

fn first_accepted_mode(
    q: &mut dyn QmpExecute,
    calc_time_s: u64,
    sample_pages: Option<u64>,
    sleep: &mut dyn FnMut(Duration) -> bool,
) -> Result<(DirtyRateMode, DirtyRateReading), DirtyRateError> {
    let mut refusals = Vec::new();
    for m in DirtyRateMode::AUTO_ORDER {
        match measure_once(q, m, calc_time_s, sample_pages, sleep) {
            Ok(r) => return Ok((m, r)),
            Err(DirtyRateError::Qmp {
                failure: QmpFailure::Refused(why),
                command,
            }) if command == "calc-dirty-rate" => refusals.push(format!("{}: {why}", m.name())),
            Err(e) => return Err(e),
        }
    }
    Err(DirtyRateError::NoMode(refusals.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A QMP peer that answers from a script and records what it was asked.
    struct Scripted {
        replies: VecDeque<Result<Value, QmpFailure>>,
        asked: Vec<(String, Option<Value>)>,
    }

    impl Scripted {
        fn new(replies: Vec<Result<Value, QmpFailure>>) -> Self {
            Scripted {
                replies: replies.into(),
                asked: Vec::new(),
            }
        }
    }

    impl QmpExecute for Scripted {
        fn qmp(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpFailure> {
            self.asked.push((command.to_string(), arguments));
            self.replies
                .pop_front()
                .unwrap_or_else(|| Err(QmpFailure::Broken("script ran out".into())))
        }
    }

    fn no_wait(_: Duration) -> bool {
        true
    }

    fn measured(mode: &str, t: u64, rate: u64) -> Value {
        json!({"status": "measured", "start-time": 100, "calc-time": t, "dirty-rate": rate, "mode": mode})
    }

    #[test]
    fn rates_are_mib_per_second_and_times_give_distinct_pages() {
        let r = parse_query_dirty_rate(&measured("dirty-bitmap", 4, 30))
            .unwrap()
            .unwrap();
        assert_eq!(r.dirty_pages_s(), 30.5 * 256.0);
        assert_eq!(r.distinct_pages(), 30.5 * 256.0 * 4.0);
        let idle = parse_query_dirty_rate(&measured("dirty-bitmap", 4, 0))
            .unwrap()
            .unwrap();
        assert_eq!(idle.distinct_pages(), 0.0);
        assert_eq!(r.mode, DirtyRateMode::DirtyBitmap);
        assert_eq!(
            parse_query_dirty_rate(&json!({"status": "measuring", "calc-time": 1})).unwrap(),
            None
        );
    }

    #[test]
    fn per_vcpu_rates_are_kept_and_old_replies_without_mode_read_as_sampling() {
        let v = json!({"status": "measured", "calc-time": 1, "dirty-rate": 7, "mode": "dirty-ring",
            "vcpu-dirty-rate": [{"id": 0, "dirty-rate": 5}, {"id": 1, "dirty-rate": 2}]});
        let r = parse_query_dirty_rate(&v).unwrap().unwrap();
        assert_eq!(r.vcpu_dirty_rate_mib_s, vec![(0, 5), (1, 2)]);
        let old =
            json!({"status": "measured", "calc-time": 1, "dirty-rate": 7, "sample-pages": 512});
        let r = parse_query_dirty_rate(&old).unwrap().unwrap();
        assert_eq!(r.mode, DirtyRateMode::PageSampling);
        assert_eq!(r.sample_pages, Some(512));
    }

    #[test]
    fn malformed_replies_are_named() {
        for (v, needle) in [
            (json!({"calc-time": 1}), "no status"),
            (json!({"status": "weird"}), "unknown status"),
            (
                json!({"status": "measured", "calc-time": 1}),
                "dirty-rate is missing",
            ),
            (
                json!({"status": "measured", "calc-time": 1, "dirty-rate": -1}),
                "could not measure",
            ),
            (
                json!({"status": "measured", "calc-time": 1, "dirty-rate": 3, "mode": "psychic"}),
                "unknown mode",
            ),
            (
                json!({"status": "measured", "dirty-rate": 3, "mode": "dirty-bitmap"}),
                "calc-time is missing",
            ),
            (
                json!({"status": "measured", "calc-time": 1, "dirty-rate": 3, "vcpu-dirty-rate": [{"id": 0}]}),
                "needs id and dirty-rate",
            ),
        ] {
            let e = parse_query_dirty_rate(&v).unwrap_err().to_string();
            assert!(e.contains(needle), "{v}: {e}");
            assert!(e.starts_with("query-dirty-rate: unexpected reply"), "{e}");
        }
    }

    #[test]
    fn auto_mode_falls_back_to_what_qemu_accepts_and_keeps_it() {
        // A VM with dirty rings refuses dirty-bitmap: page sampling it is.
        let mut q = Scripted::new(vec![
            Err(QmpFailure::Refused(
                "mode dirty-bitmap is not enabled, use other method instead.".into(),
            )),
            Ok(json!({})),
            Ok(json!({"status": "measuring", "calc-time": 1})),
            Ok(measured("page-sampling", 1, 40)),
            Ok(json!({})),
            Ok(measured("page-sampling", 2, 30)),
        ]);
        let mut seen = Vec::new();
        let r = measure_series(&mut q, None, &[1, 2], 1, None, &mut no_wait, &mut |r| {
            seen.push(r.dirty_rate_mib_s)
        })
        .unwrap();
        assert_eq!(seen, vec![40, 30]);
        assert!(r.iter().all(|r| r.mode == DirtyRateMode::PageSampling));
        let calcs: Vec<_> = q
            .asked
            .iter()
            .filter(|(c, _)| c == "calc-dirty-rate")
            .map(|(_, a)| a.clone().unwrap())
            .collect();
        assert_eq!(
            calcs,
            vec![
                json!({"calc-time": 1, "mode": "dirty-bitmap"}),
                json!({"calc-time": 1, "mode": "page-sampling"}),
                json!({"calc-time": 2, "mode": "page-sampling"}),
            ]
        );
    }

    #[test]
    fn per_vcpu_rates_come_from_dirty_rings_or_not_at_all() {
        let mut q = Scripted::new(vec![Err(QmpFailure::Refused(
            "mode dirty-ring is not enabled, use other method instead.".into(),
        ))]);
        assert_eq!(per_vcpu_rates(&mut q, 1, &mut no_wait).unwrap(), None);
        let mut q = Scripted::new(vec![
            Ok(json!({})),
            Ok(
                json!({"status": "measured", "calc-time": 1, "dirty-rate": 26, "mode": "dirty-ring",
                "vcpu-dirty-rate": [{"id": 0, "dirty-rate": 26}, {"id": 1, "dirty-rate": 0}]}),
            ),
        ]);
        let r = per_vcpu_rates(&mut q, 1, &mut no_wait).unwrap().unwrap();
        assert_eq!(r.vcpu_dirty_rate_mib_s, vec![(0, 26), (1, 0)]);
    }

    #[test]
    fn sample_pages_go_only_with_page_sampling_and_a_foreign_measurement_is_refused() {
        let mut q = Scripted::new(vec![Ok(json!({})), Ok(measured("page-sampling", 3, 1))]);
        let e = measure_once(
            &mut q,
            DirtyRateMode::PageSampling,
            2,
            Some(4096),
            &mut no_wait,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            q.asked[0].1,
            Some(json!({"calc-time": 2, "mode": "page-sampling", "sample-pages": 4096}))
        );
        assert!(e.contains("another client measuring"), "{e}");
    }

    #[test]
    fn a_broken_session_and_a_never_finishing_measurement_end_with_one_error() {
        let mut q = Scripted::new(vec![Err(QmpFailure::Broken(
            "QMP socket /x: the peer closed the connection".into(),
        ))]);
        let e = measure_series(&mut q, None, &[1], 1, None, &mut no_wait, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "calc-dirty-rate: QMP socket /x: the peer closed the connection"
        );
        let mut replies = vec![Ok(json!({}))];
        replies.extend((0..400).map(|_| Ok(json!({"status": "measuring", "calc-time": 1}))));
        let mut q = Scripted::new(replies);
        let e = measure_once(&mut q, DirtyRateMode::DirtyBitmap, 1, None, &mut no_wait)
            .unwrap_err()
            .to_string();
        assert!(e.contains("still not measured"), "{e}");
        let mut q = Scripted::new(vec![Ok(json!({}))]);
        let e =
            measure_once(&mut q, DirtyRateMode::DirtyBitmap, 1, None, &mut |_| false).unwrap_err();
        assert!(matches!(e, DirtyRateError::Interrupted));
    }

    #[test]
    fn the_vm_shape_adds_plugged_memory_and_counts_vcpus() {
        let mut q = Scripted::new(vec![
            Ok(json!({"base-memory": 536870912u64, "plugged-memory": 0})),
            Ok(json!([{"cpu-index": 0}, {"cpu-index": 1}])),
            Ok(json!({"status": "running", "running": true})),
        ]);
        let s = query_vm_shape(&mut q).unwrap();
        assert_eq!(
            s,
            VmShape {
                memory_bytes: 536870912,
                vcpus: 2,
                status: "running".into()
            }
        );
        let mut q = Scripted::new(vec![Ok(json!({"total": 1}))]);
        let e = query_vm_shape(&mut q).unwrap_err().to_string();
        assert!(e.contains("no base-memory"), "{e}");
    }
}
