//! `record`: turn a migration someone else runs into autoconv's run files. Three sources of
//! `query-migrate` replies: a QMP socket of the user's QEMU ([`QmpSource`]), libvirt's
//! `virsh qemu-monitor-command` ([`VirshSource`]), or a log of replies ([`read_log`]).
//! Read-only: nothing here changes a parameter or starts a migration unless `--migrate` says so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::qmp::{parse_message, MigrationInfo, QemuVersion, QmpClient, QmpError, QmpMessage};
use super::recorder::MigrationRecorder;
use super::run::{POLL_MS, SETTLE_FIGURES};
use super::steer::{params_from_qemu, Steer, SteerAction, SteerError};
use crate::migration::policy::ProfileCurve;
use crate::migration::{CancelToken, MigrationOutcome, MigrationStatus, Timeline};

/// Recording failed before anything was recorded (exit 2).
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum RecordError {
    /// {0}
    Qmp(#[from] QmpError),
    /// virsh: {0}
    Virsh(String),
    /// cannot read {path}: {error}
    Read {
        /// The log.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// {path}:{line}: {why}
    Log {
        /// The log.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// {what}: no migration was seen (every query-migrate reply had no status)
    NoMigration {
        /// The log, socket or domain.
        what: String,
    },
    /// no migration started on {what} within {timeout_s} s
    Timeout {
        /// The socket or domain.
        what: String,
        /// How long we waited.
        timeout_s: u64,
    },
    /// interrupted before a migration started
    Interrupted,
    /// {0}
    Steer(#[from] SteerError),
}

/// `--steer predictive`: what steering needs beyond the QEMU it talks to.
#[derive(Clone, Debug, Default)]
pub struct SteerRequest {
    /// The guest's profile curve, if given.
    pub profile: Option<ProfileCurve>,
}

/// Something that answers QMP commands: a socket or virsh.
pub trait QmpChannel {
    /// Run `command` with `arguments`; the return value.
    fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, RecordError>;
    /// A name for messages.
    fn name(&self) -> String;
}

/// A user's QEMU QMP socket.
pub struct QmpSource(pub QmpClient);

impl QmpChannel for QmpSource {
    fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, RecordError> {
        Ok(self.0.execute(command, arguments)?)
    }
    fn name(&self) -> String {
        self.0.path().display().to_string()
    }
}

/// A libvirt domain, through `virsh qemu-monitor-command DOMAIN JSON`.
pub struct VirshSource {
    /// The domain.
    pub domain: String,
    /// The virsh binary (default "virsh").
    pub virsh: String,
}

impl QmpChannel for VirshSource {
    fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, RecordError> {
        let mut cmd = serde_json::json!({"execute": command});
        if let Some(a) = arguments {
            cmd["arguments"] = a;
        }
        let out = Command::new(&self.virsh)
            .arg("qemu-monitor-command")
            .arg(&self.domain)
            .arg(cmd.to_string())
            .output()
            .map_err(|e| RecordError::Virsh(format!("cannot run {}: {e}", self.virsh)))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let line = err
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no message");
            return Err(RecordError::Virsh(format!(
                "{} qemu-monitor-command {} failed ({}): {line}",
                self.virsh, self.domain, out.status
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        match parse_message(text.trim())? {
            QmpMessage::Return { value, .. } => Ok(value),
            QmpMessage::Error { class, desc, .. } => Err(QmpError::Command {
                command: command.to_string(),
                class,
                desc,
            }
            .into()),
            _ => Err(RecordError::Virsh(format!(
                "{command}: expected a return or an error from virsh, got {}",
                text.trim()
            ))),
        }
    }
    fn name(&self) -> String {
        format!("domain {}", self.domain)
    }
}

/// What a recording produced.
#[derive(Debug)]
pub struct Recording {
    /// QEMU's version, when the source could say.
    pub qemu_version: Option<QemuVersion>,
    /// `query-migrate-parameters` and enabled capabilities, when the source could say.
    pub qemu_parameters: Option<Value>,
    /// vCPUs (1 when unknown).
    pub vcpus: u32,
    /// Samples and events.
    pub timeline: Timeline,
    /// How it ended.
    pub outcome: MigrationOutcome,
    /// The last reply.
    pub final_query_migrate: serde_json::Map<String, Value>,
    /// Every poll as `--from-log` lines.
    pub polls_jsonl: String,
    /// What `--steer` set, in order (empty without it).
    pub steer_actions: Vec<SteerAction>,
    /// Why steering stopped early, if it did (the recording went on).
    pub steer_stopped: Option<String>,
}

fn migration_info(v: &Value, what: &str) -> Result<MigrationInfo, RecordError> {
    MigrationInfo::from_value(v).map_err(|why| {
        QmpError::Malformed {
            why: format!("{what}: {why}"),
            line: v.to_string().chars().take(120).collect(),
        }
        .into()
    })
}

/// Record the migration on `channel`: start it with `migrate` to `migrate_uri` if given,
/// else wait (up to `wait_s`) for one to start; poll every 100 ms until it ends or `cancel`
/// (then the migration goes on; the recording says it stopped early). With `steer`, set
/// `cpu-throttle-initial`/`-increment` live as autoconv's predictive policy wants
/// ([`Steer`]), and set the user's values back at the end.
pub fn record_channel(
    channel: &mut dyn QmpChannel,
    migrate_uri: Option<&str>,
    wait_s: u64,
    cancel: &CancelToken,
    steer: Option<&SteerRequest>,
) -> Result<Recording, RecordError> {
    let qemu_version = channel
        .execute("query-version", None)
        .ok()
        .and_then(|v| QemuVersion::from_value(&v).ok());
    let vcpus = channel
        .execute("query-cpus-fast", None)
        .ok()
        .and_then(|v| v.as_array().map(|a| a.len() as u32))
        .unwrap_or(1);
    let parameters = channel.execute("query-migrate-parameters", None).ok();
    let caps = channel
        .execute("query-migrate-capabilities", None)
        .ok()
        .and_then(|c| {
            c.as_array().map(|a| {
                a.iter()
                    .filter(|c| c.get("state") == Some(&Value::Bool(true)))
                    .filter_map(|c| c.get("capability").cloned())
                    .collect::<Vec<_>>()
            })
        });
    let mut steerer = match steer {
        None => None,
        Some(req) => {
            let p = parameters
                .clone()
                .ok_or(SteerError::Missing("any parameter"))?;
            let auto_converge = caps
                .as_ref()
                .is_some_and(|c| c.iter().any(|c| c.as_str() == Some("auto-converge")));
            Some(Steer::new(
                params_from_qemu(&p, auto_converge)?,
                req.profile.as_ref(),
            ))
        }
    };
    let mut steer_stopped = None;
    let qemu_parameters = parameters
        .map(|p| serde_json::json!({"parameters": p, "capabilities_on": caps.unwrap_or_default()}));

    let t0 = Instant::now();
    if let Some(uri) = migrate_uri {
        channel.execute("migrate", Some(serde_json::json!({"uri": uri})))?;
    }
    let mut rec = MigrationRecorder::new(vcpus);
    let mut stopped_early = false;
    let mut lost = None;
    // A migration that ended before we attached is still recorded (its final figures); one
    // that is not running yet is waited for.
    loop {
        let obs_ms = t0.elapsed().as_millis() as u64;
        let v = match channel.execute("query-migrate", None) {
            Ok(v) => v,
            Err(e) if rec.started() => {
                lost = Some(format!("lost QEMU during the migration: {e}"));
                break;
            }
            Err(e) => return Err(e),
        };
        let mut info = migration_info(&v, "query-migrate")?;
        // Ask again until QEMU has written the completed migration's figures (see
        // completed_before_its_figures); a 10 ms migration otherwise records total-time 0.
        let settle_by = Instant::now() + SETTLE_FIGURES;
        while info.completed_before_its_figures() && Instant::now() < settle_by {
            std::thread::sleep(Duration::from_millis(10));
            match channel.execute("query-migrate", None) {
                Ok(v) => info = migration_info(&v, "query-migrate")?,
                Err(_) => break,
            }
        }
        if rec.push(obs_ms, &info, None) {
            break;
        }
        if let Some(s) = steerer.as_mut().filter(|_| steer_stopped.is_none()) {
            if let Some(args) = s.on_poll(&info) {
                if let Err(e) = channel.execute("migrate-set-parameters", Some(args)) {
                    // QEMU's own staircase goes on from here; the recording too.
                    steer_stopped = Some(format!("steering stopped: {e}"));
                }
            }
        }
        if cancel.is_cancelled() {
            if !rec.started() {
                return Err(RecordError::Interrupted);
            }
            stopped_early = true;
            break;
        }
        if !rec.started() && t0.elapsed() > Duration::from_secs(wait_s) {
            return Err(RecordError::Timeout {
                what: channel.name(),
                timeout_s: wait_s,
            });
        }
        let next = Duration::from_millis(obs_ms / POLL_MS * POLL_MS + POLL_MS);
        std::thread::sleep(next.saturating_sub(t0.elapsed()));
    }
    let mut steer_actions = Vec::new();
    if let Some(s) = steerer {
        if let Some(args) = s.restore() {
            if let Err(e) = channel.execute("migrate-set-parameters", Some(args)) {
                steer_stopped.get_or_insert(format!(
                    "setting the user's cpu-throttle-initial/-increment back failed: {e}"
                ));
            }
        }
        steer_actions = s.actions;
    }
    let final_query_migrate = rec.last().map(|l| l.raw.clone()).unwrap_or_default();
    let polls_jsonl = rec.polls_jsonl();
    let (timeline, outcome) = if let Some(why) = lost {
        rec.finish(Some(MigrationStatus::Failed), Some(why), None)
    } else if stopped_early {
        rec.finish(
            Some(MigrationStatus::Cancelled),
            Some(
                "recording stopped (Ctrl-C) before the migration ended; the migration goes on"
                    .into(),
            ),
            None,
        )
    } else {
        rec.finish(None, None, None)
    };
    Ok(Recording {
        qemu_version,
        qemu_parameters,
        vcpus,
        timeline,
        outcome,
        final_query_migrate,
        polls_jsonl,
        steer_actions,
        steer_stopped,
    })
}

/// Read a log of `query-migrate` replies, one JSON object per line (`{"return": {...}}`, with
/// an optional `"t"`: seconds since the start; without it lines are 100 ms apart). Blank lines
/// are skipped; anything else that is not such a reply is an error naming the line.
pub fn read_log(path: &Path, vcpus: u32) -> Result<Recording, RecordError> {
    let text = std::fs::read_to_string(path).map_err(|error| RecordError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse_log(path, &text, vcpus)
}

/// [`read_log`] on the log's text (`path` names it in errors).
pub fn parse_log(path: &Path, text: &str, vcpus: u32) -> Result<Recording, RecordError> {
    let bad = |line: usize, why: String| RecordError::Log {
        path: path.to_path_buf(),
        line,
        why,
    };
    let mut rec = MigrationRecorder::new(vcpus);
    let mut n = 0u64;
    let mut last_t_ms = 0u64;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = match parse_message(line) {
            Ok(QmpMessage::Return { value, .. }) => value,
            Ok(_) => {
                return Err(bad(
                    i + 1,
                    "not a query-migrate reply (expected {\"return\": {...}})".into(),
                ))
            }
            Err(e) => return Err(bad(i + 1, e.to_string())),
        };
        let t_ms = match serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("t").cloned())
        {
            None => n * POLL_MS,
            Some(t) => {
                let s = t
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| {
                        bad(
                            i + 1,
                            format!("\"t\" must be non-negative seconds, got {t}"),
                        )
                    })?;
                (s * 1000.0).round() as u64
            }
        };
        if t_ms < last_t_ms {
            return Err(bad(
                i + 1,
                format!("\"t\" goes backwards ({} ms after {} ms)", t_ms, last_t_ms),
            ));
        }
        last_t_ms = t_ms;
        let info = MigrationInfo::from_value(&value).map_err(|why| bad(i + 1, why))?;
        n += 1;
        if rec.push(t_ms, &info, None) {
            break;
        }
    }
    if !rec.started() {
        return Err(RecordError::NoMigration {
            what: path.display().to_string(),
        });
    }
    let final_query_migrate = rec.last().map(|l| l.raw.clone()).unwrap_or_default();
    let polls_jsonl = rec.polls_jsonl();
    let (timeline, outcome) = rec.finish(None, None, None);
    Ok(Recording {
        qemu_version: None,
        qemu_parameters: None,
        vcpus,
        timeline,
        outcome,
        final_query_migrate,
        polls_jsonl,
        steer_actions: Vec::new(),
        steer_stopped: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Replies `query-migrate` from a script (the last one repeats), everything else with {}.
    struct Scripted(VecDeque<Value>);

    impl QmpChannel for Scripted {
        fn execute(&mut self, command: &str, _: Option<Value>) -> Result<Value, RecordError> {
            Ok(match command {
                "query-migrate" if self.0.len() > 1 => self.0.pop_front().unwrap(),
                "query-migrate" => self.0[0].clone(),
                _ => serde_json::json!({}),
            })
        }
        fn name(&self) -> String {
            "scripted".into()
        }
    }

    #[test]
    fn a_completed_reply_before_its_figures_is_asked_again() {
        let ram = serde_json::json!({"transferred": 4096, "remaining": 0, "total": 4096,
            "duplicate": 0, "normal": 1, "dirty-sync-count": 2, "mbps": 1.0,
            "dirty-pages-rate": 0});
        // QEMU 7.2's order: `completed` first, total-time and downtime filled in after.
        let replies = VecDeque::from([
            serde_json::json!({"status": "completed", "total-time": 0, "downtime": 0,
                "setup-time": 1, "ram": ram}),
            serde_json::json!({"status": "completed", "total-time": 0, "downtime": 0,
                "setup-time": 1, "ram": ram}),
            serde_json::json!({"status": "completed", "total-time": 10, "downtime": 4,
                "setup-time": 1, "ram": ram}),
        ]);
        let r = record_channel(
            &mut Scripted(replies),
            None,
            1,
            &CancelToken::default(),
            None,
        )
        .unwrap();
        assert_eq!(r.outcome.status, MigrationStatus::Completed);
        assert_eq!(r.outcome.total_time_ms, Some(10));
        assert_eq!(r.outcome.downtime_ms, Some(4));
        assert_eq!(r.final_query_migrate["total-time"], 10);
    }
}
