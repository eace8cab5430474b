//! A small synchronous QMP client over a unix socket, and a validated parser of QMP messages.
//!
//! QMP is line-delimited JSON: QEMU greets with `{"QMP": {...}}`, the client sends
//! `qmp_capabilities`, then each command gets one `{"return": ...}` or `{"error": ...}`
//! reply, with `{"event": ...}` lines interleaved at any time. Every message from the socket
//! goes through [`parse_message`], which checks its shape and never panics: a socket that is
//! not QMP or a malformed reply becomes one [`QmpError`] line.
//!
//! API, in full:
//! * [`QmpClient::connect`]: connect, read the greeting, negotiate capabilities.
//! * [`QmpClient::execute`]: run any command with JSON arguments; the `return` value or
//!   QEMU's own error text ([`QmpError::Command`]).
//! * [`QmpClient::query_migrate`] / [`QmpClient::query_version`]: typed, validated replies
//!   ([`MigrationInfo`] keeps every field of the reply as well, under QEMU's names).
//! * [`QmpClient::take_events`]: the events that arrived while waiting for replies.
//! * [`parse_message`], [`MigrationInfo::from_value`]: the parsers, for replies from files.
//!
//! Why not the `qapi` crate: its types are generated from one (newer) QEMU schema, so passing
//! parameters through by the names `--set` takes and keeping every `query-migrate` field of
//! the QEMU actually running would need a hand mapping per field; this client stays untyped
//! on the wire and validates only what autoconv reads.

use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest QMP line accepted (a `query-migrate` reply is ~1 KiB; this stops a peer that never
/// sends a newline from eating memory).
pub const MAX_LINE_BYTES: u64 = 4 << 20;

/// What goes wrong talking QMP. Each message is one line naming the socket or command.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum QmpError {
    /// cannot connect to QMP socket {path}: {error}
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// QMP socket {path}: {error}
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// QMP socket {path}: no reply within {timeout_ms} ms
    Timeout {
        /// The socket.
        path: PathBuf,
        /// The read timeout.
        timeout_ms: u64,
    },
    /// QMP socket {path}: the peer closed the connection (QEMU exited?)
    Closed {
        /// The socket.
        path: PathBuf,
    },
    /// {path} is not a QMP socket: expected QEMU's {{"QMP": ...}} greeting, got {got}
    NotQmp {
        /// The socket.
        path: PathBuf,
        /// What came instead (shortened).
        got: String,
    },
    /// malformed QMP message: {why}: {line}
    Malformed {
        /// What is wrong.
        why: String,
        /// The message (shortened).
        line: String,
    },
    /// {command}: {desc}
    Command {
        /// The command QEMU refused.
        command: String,
        /// QEMU's error class (e.g. GenericError).
        class: String,
        /// QEMU's error text.
        desc: String,
    },
}

/// QEMU's version as `query-version` and the greeting give it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QemuVersion {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Micro.
    pub micro: u64,
    /// Distribution package string (e.g. "Debian 1:7.2+dfsg-7"), may be empty.
    pub package: String,
}

impl QemuVersion {
    /// From the `{"qemu": {"major", "minor", "micro"}, "package"}` object.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let qemu = v
            .get("qemu")
            .and_then(Value::as_object)
            .ok_or("no \"qemu\" object")?;
        let num = |k: &str| {
            qemu.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("qemu.{k} is not a non-negative integer"))
        };
        Ok(QemuVersion {
            major: num("major")?,
            minor: num("minor")?,
            micro: num("micro")?,
            package: v
                .get("package")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .to_string(),
        })
    }

    /// "MAJOR.MINOR", the form `autoconv.qemu_version` takes.
    pub fn major_minor(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl std::fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)?;
        if !self.package.is_empty() {
            write!(f, " ({})", self.package)?;
        }
        Ok(())
    }
}

/// An asynchronous QMP event (e.g. MIGRATION, STOP, RESUME).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QmpEvent {
    /// Event name.
    pub event: String,
    /// Its data (null when none).
    pub data: Value,
    /// QEMU's timestamp (seconds since the epoch, host clock); None if absent.
    pub timestamp_s: Option<f64>,
}

/// One message from a QMP server.
#[derive(Clone, Debug, PartialEq)]
pub enum QmpMessage {
    /// The greeting: QEMU's version and offered capabilities.
    Greeting {
        /// Version.
        version: QemuVersion,
        /// Capabilities offered (e.g. "oob").
        capabilities: Vec<String>,
    },
    /// A successful reply.
    Return {
        /// The `id` echoed back, if the command had one.
        id: Option<Value>,
        /// The returned value.
        value: Value,
    },
    /// A failed command.
    Error {
        /// The `id` echoed back.
        id: Option<Value>,
        /// Error class.
        class: String,
        /// Error text.
        desc: String,
    },
    /// An event.
    Event(QmpEvent),
}

/// Shorten a line for an error message (whole chars, escaped).
fn snippet(s: &str) -> String {
    const MAX: usize = 120;
    let t = s.trim_end();
    if t.chars().count() <= MAX {
        format!("{t:?}")
    } else {
        let cut: String = t.chars().take(MAX).collect();
        format!("{cut:?}...")
    }
}

fn malformed(why: impl Into<String>, line: &str) -> QmpError {
    QmpError::Malformed {
        why: why.into(),
        line: snippet(line),
    }
}

/// Parse one QMP line. Anything that is not one JSON object of a known QMP shape is
/// [`QmpError::Malformed`].
pub fn parse_message(line: &str) -> Result<QmpMessage, QmpError> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| malformed(format!("not JSON ({e})"), line))?;
    let obj = v
        .as_object()
        .ok_or_else(|| malformed("not a JSON object", line))?;
    let id = obj.get("id").cloned();
    if let Some(g) = obj.get("QMP") {
        let version = g
            .get("version")
            .ok_or_else(|| malformed("greeting without a version", line))
            .and_then(|v| {
                QemuVersion::from_value(v)
                    .map_err(|e| malformed(format!("greeting version: {e}"), line))
            })?;
        let capabilities = match g.get("capabilities") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| {
                    c.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| malformed("a capability is not a string", line))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(malformed("capabilities is not an array", line)),
        };
        return Ok(QmpMessage::Greeting {
            version,
            capabilities,
        });
    }
    if let Some(value) = obj.get("return") {
        return Ok(QmpMessage::Return {
            id,
            value: value.clone(),
        });
    }
    if let Some(err) = obj.get("error") {
        let text = |k: &str| {
            err.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| malformed(format!("error without a string \"{k}\""), line))
        };
        return Ok(QmpMessage::Error {
            id,
            class: text("class")?,
            desc: text("desc")?,
        });
    }
    if let Some(event) = obj.get("event") {
        let event = event
            .as_str()
            .ok_or_else(|| malformed("event name is not a string", line))?
            .to_string();
        let timestamp_s = obj.get("timestamp").and_then(|t| {
            let s = t.get("seconds")?.as_f64()?;
            let us = t.get("microseconds")?.as_f64()?;
            Some(s + us / 1e6)
        });
        return Ok(QmpMessage::Event(QmpEvent {
            event,
            data: obj.get("data").cloned().unwrap_or(Value::Null),
            timestamp_s,
        }));
    }
    Err(malformed(
        "neither a greeting, a return, an error nor an event",
        line,
    ))
}

/// QEMU's `MigrationStatus` values, as `query-migrate` names them.
pub const QEMU_MIGRATION_STATUSES: &[&str] = &[
    "none",
    "setup",
    "cancelling",
    "cancelled",
    "active",
    "postcopy-active",
    "postcopy-paused",
    "postcopy-recover",
    "completed",
    "failed",
    "colo",
    "pre-switchover",
    "device",
    "wait-unplug",
];

/// The `ram` object of `query-migrate` (QEMU's `MigrationStats`); the figures autoconv reads.
/// Absent fields read as 0 (older QEMUs lack some).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RamStats {
    /// `transferred` (bytes).
    pub transferred: u64,
    /// `remaining` (bytes).
    pub remaining: u64,
    /// `total` (bytes of guest RAM).
    pub total: u64,
    /// `duplicate` (zero pages).
    pub duplicate: u64,
    /// `normal` (pages sent with data).
    pub normal: u64,
    /// `normal-bytes`.
    pub normal_bytes: u64,
    /// `dirty-pages-rate` (pages/s).
    pub dirty_pages_rate: u64,
    /// `mbps`.
    pub mbps: f64,
    /// `dirty-sync-count`.
    pub dirty_sync_count: u64,
    /// `page-size` (bytes).
    pub page_size: u64,
}

/// A validated `query-migrate` reply: the typed figures autoconv uses, and `raw`, the whole
/// reply as QEMU sent it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MigrationInfo {
    /// `status` (one of [`QEMU_MIGRATION_STATUSES`]); "none" when the reply has no status
    /// (QEMU omits it before the first migration).
    pub status: String,
    /// `total-time` (ms; while active: time so far).
    pub total_time_ms: Option<u64>,
    /// `expected-downtime` (ms).
    pub expected_downtime_ms: Option<u64>,
    /// `downtime` (ms, once completed).
    pub downtime_ms: Option<u64>,
    /// `setup-time` (ms).
    pub setup_time_ms: Option<u64>,
    /// `cpu-throttle-percentage` (absent when not throttling).
    pub cpu_throttle_percentage: Option<u64>,
    /// `ram`, when the migration has started.
    pub ram: Option<RamStats>,
    /// `error-desc` (a failed migration's reason).
    pub error_desc: Option<String>,
    /// `dirty-limit-throttle-time-per-round` (us; QEMU 8.1+, with the dirty-limit capability).
    pub dirty_limit_throttle_time_per_round_us: Option<u64>,
    /// `dirty-limit-ring-full-time` (us; likewise).
    pub dirty_limit_ring_full_time_us: Option<u64>,
    /// The whole reply.
    pub raw: Map<String, Value>,
}

impl MigrationInfo {
    /// Validate a `query-migrate` return value. Fields autoconv reads must have the right
    /// type when present; unknown fields are kept in `raw` and otherwise ignored.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let obj = v.as_object().ok_or("query-migrate returned no object")?;
        let status = match obj.get("status") {
            None => "none".to_string(),
            Some(s) => {
                let s = s.as_str().ok_or("status is not a string")?;
                if !QEMU_MIGRATION_STATUSES.contains(&s) {
                    return Err(format!("unknown migration status {s:?}"));
                }
                s.to_string()
            }
        };
        let ram = match obj.get("ram") {
            None => None,
            Some(r) => {
                let r = r.as_object().ok_or("ram is not an object")?;
                Some(RamStats {
                    transferred: opt_u64(r, "ram.", "transferred")?.unwrap_or(0),
                    remaining: opt_u64(r, "ram.", "remaining")?.unwrap_or(0),
                    total: opt_u64(r, "ram.", "total")?.unwrap_or(0),
                    duplicate: opt_u64(r, "ram.", "duplicate")?.unwrap_or(0),
                    normal: opt_u64(r, "ram.", "normal")?.unwrap_or(0),
                    normal_bytes: opt_u64(r, "ram.", "normal-bytes")?.unwrap_or(0),
                    dirty_pages_rate: opt_u64(r, "ram.", "dirty-pages-rate")?.unwrap_or(0),
                    mbps: match r.get("mbps") {
                        None => 0.0,
                        Some(m) => m
                            .as_f64()
                            .filter(|x| x.is_finite() && *x >= 0.0)
                            .ok_or("ram.mbps is not a non-negative number")?,
                    },
                    dirty_sync_count: opt_u64(r, "ram.", "dirty-sync-count")?.unwrap_or(0),
                    page_size: opt_u64(r, "ram.", "page-size")?.unwrap_or(0),
                })
            }
        };
        let error_desc = match obj.get("error-desc") {
            None => None,
            Some(e) => Some(e.as_str().ok_or("error-desc is not a string")?.to_string()),
        };
        Ok(MigrationInfo {
            status,
            total_time_ms: opt_u64(obj, "", "total-time")?,
            expected_downtime_ms: opt_u64(obj, "", "expected-downtime")?,
            downtime_ms: opt_u64(obj, "", "downtime")?,
            setup_time_ms: opt_u64(obj, "", "setup-time")?,
            cpu_throttle_percentage: opt_u64(obj, "", "cpu-throttle-percentage")?,
            ram,
            error_desc,
            dirty_limit_throttle_time_per_round_us: opt_u64(
                obj,
                "",
                "dirty-limit-throttle-time-per-round",
            )?,
            dirty_limit_ring_full_time_us: opt_u64(obj, "", "dirty-limit-ring-full-time")?,
            raw: obj.clone(),
        })
    }

    /// True once the migration has ended (completed, failed or cancelled).
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }

    /// True for a `completed` reply whose figures QEMU has not filled in yet: QEMU 7.2's
    /// migration thread sets the state first and computes total-time and downtime after
    /// (migration_calculate_complete), so a poll in between reads 0 for both.
    pub fn completed_before_its_figures(&self) -> bool {
        self.status == "completed" && self.total_time_ms.unwrap_or(0) == 0
    }
}

fn opt_u64(obj: &Map<String, Value>, prefix: &str, key: &str) -> Result<Option<u64>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{prefix}{key} is not a non-negative integer: {v}")),
    }
}

/// A connected, negotiated QMP session. Not thread-safe; one command at a time.
pub struct QmpClient {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    version: QemuVersion,
    events: Vec<QmpEvent>,
    next_id: u64,
    timeout: Duration,
}

impl std::fmt::Debug for QmpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QmpClient")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish()
    }
}

impl QmpClient {
    /// Connect to the socket at `path`, read QEMU's greeting and send `qmp_capabilities`.
    /// `timeout` bounds every later wait for a reply, too.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let stream = UnixStream::connect(path).map_err(|error| QmpError::Connect {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_stream(stream, path, timeout)
    }

    /// As [`QmpClient::connect`], on an already connected stream (`path` names it in errors).
    pub fn from_stream(
        stream: UnixStream,
        path: &Path,
        timeout: Duration,
    ) -> Result<Self, QmpError> {
        let io_err = |error| QmpError::Io {
            path: path.to_path_buf(),
            error,
        };
        stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(io_err)?;
        stream
            .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        let mut client = QmpClient {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            version: QemuVersion {
                major: 0,
                minor: 0,
                micro: 0,
                package: String::new(),
            },
            events: Vec::new(),
            next_id: 1,
            timeout,
        };
        let first = client.read_line()?;
        client.version = match parse_message(&first) {
            Ok(QmpMessage::Greeting { version, .. }) => version,
            _ => {
                return Err(QmpError::NotQmp {
                    path: path.to_path_buf(),
                    got: snippet(&first),
                })
            }
        };
        client.execute("qmp_capabilities", None)?;
        Ok(client)
    }

    /// QEMU's version from its greeting.
    pub fn version(&self) -> &QemuVersion {
        &self.version
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `command` with optional `arguments` (a JSON object) and return its `return` value.
    /// QEMU's refusal is [`QmpError::Command`] with QEMU's own text. Events that arrive in
    /// between are kept for [`QmpClient::take_events`].
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = Map::new();
        msg.insert("execute".into(), Value::from(command));
        if let Some(a) = arguments {
            msg.insert("arguments".into(), a);
        }
        msg.insert("id".into(), Value::from(id));
        let mut line = Value::Object(msg).to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| self.io_error(e))?;
        loop {
            let reply = self.read_line()?;
            let matches = |got: &Option<Value>| got.as_ref().is_none_or(|g| g.as_u64() == Some(id));
            match parse_message(&reply)? {
                QmpMessage::Event(e) => self.events.push(e),
                QmpMessage::Return { id: got, value } if matches(&got) => return Ok(value),
                QmpMessage::Error {
                    id: got,
                    class,
                    desc,
                } if matches(&got) => {
                    return Err(QmpError::Command {
                        command: command.to_string(),
                        class,
                        desc,
                    })
                }
                QmpMessage::Greeting { .. } => {
                    return Err(malformed("a second greeting", &reply));
                }
                // A reply to someone else's id: not ours (should not happen on a
                // one-client socket); skip it.
                QmpMessage::Return { .. } | QmpMessage::Error { .. } => {}
            }
        }
    }

    /// `query-migrate`, validated.
    pub fn query_migrate(&mut self) -> Result<MigrationInfo, QmpError> {
        let v = self.execute("query-migrate", None)?;
        MigrationInfo::from_value(&v).map_err(|why| malformed(why, &v.to_string()))
    }

    /// `query-version`, validated.
    pub fn query_version(&mut self) -> Result<QemuVersion, QmpError> {
        let v = self.execute("query-version", None)?;
        QemuVersion::from_value(&v).map_err(|why| malformed(why, &v.to_string()))
    }

    /// Events received so far (oldest first), emptying the queue.
    pub fn take_events(&mut self) -> Vec<QmpEvent> {
        std::mem::take(&mut self.events)
    }

    fn io_error(&self, source: std::io::Error) -> QmpError {
        match source.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => QmpError::Timeout {
                path: self.path.clone(),
                timeout_ms: self.timeout.as_millis() as u64,
            },
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                QmpError::Closed {
                    path: self.path.clone(),
                }
            }
            _ => QmpError::Io {
                path: self.path.clone(),
                error: source,
            },
        }
    }

    /// One line, without its newline; not UTF-8 or too long is malformed.
    fn read_line(&mut self) -> Result<String, QmpError> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut buf)
            .map_err(|e| self.io_error(e))?;
        if n == 0 {
            return Err(QmpError::Closed {
                path: self.path.clone(),
            });
        }
        if buf.last() != Some(&b'\n') {
            let text = String::from_utf8_lossy(&buf).into_owned();
            return Err(if n as u64 >= MAX_LINE_BYTES {
                malformed(format!("line longer than {MAX_LINE_BYTES} bytes"), &text)
            } else {
                // EOF in the middle of a line.
                malformed("connection closed in the middle of a line", &text)
            });
        }
        String::from_utf8(buf)
            .map_err(|e| malformed("not UTF-8", &String::from_utf8_lossy(e.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}"#;

    #[test]
    fn parses_greeting_return_error_event() {
        match parse_message(GREETING).unwrap() {
            QmpMessage::Greeting {
                version,
                capabilities,
            } => {
                assert_eq!(version.major_minor(), "7.2");
                assert_eq!(version.to_string(), "7.2.0 (Debian 1:7.2+dfsg-7)");
                assert_eq!(capabilities, vec!["oob"]);
            }
            m => panic!("{m:?}"),
        }
        assert_eq!(
            parse_message(r#"{"return": {}, "id": 3}"#).unwrap(),
            QmpMessage::Return {
                id: Some(Value::from(3)),
                value: serde_json::json!({})
            }
        );
        match parse_message(
            r#"{"error": {"class": "GenericError", "desc": "Parameter 'x' is unexpected"}}"#,
        )
        .unwrap()
        {
            QmpMessage::Error { class, desc, .. } => {
                assert_eq!(class, "GenericError");
                assert_eq!(desc, "Parameter 'x' is unexpected");
            }
            m => panic!("{m:?}"),
        }
        match parse_message(r#"{"timestamp": {"seconds": 10, "microseconds": 500000}, "event": "MIGRATION", "data": {"status": "setup"}}"#).unwrap() {
            QmpMessage::Event(e) => {
                assert_eq!(e.event, "MIGRATION");
                assert_eq!(e.timestamp_s, Some(10.5));
                assert_eq!(e.data["status"], "setup");
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        for bad in [
            "",
            "hello",
            "[1,2]",
            "{}",
            r#"{"error": {"class": 1}}"#,
            r#"{"event": 5}"#,
            r#"{"QMP": {"version": {"qemu": {"major": "7"}}}}"#,
            r#"{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": 1}}"#,
        ] {
            let e = parse_message(bad).unwrap_err();
            assert!(matches!(e, QmpError::Malformed { .. }), "{bad}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn migration_info_validates_types_and_keeps_every_field() {
        let v = serde_json::json!({
            "status": "active", "total-time": 1200, "expected-downtime": 300, "setup-time": 4,
            "cpu-throttle-percentage": 30,
            "ram": {"transferred": 4096, "remaining": 8192, "total": 536870912, "duplicate": 7,
                    "normal": 1, "normal-bytes": 4096, "dirty-pages-rate": 1000, "mbps": 536.9,
                    "dirty-sync-count": 2, "page-size": 4096, "multifd-bytes": 0}
        });
        let m = MigrationInfo::from_value(&v).unwrap();
        assert_eq!(m.status, "active");
        assert_eq!(m.cpu_throttle_percentage, Some(30));
        let ram = m.ram.as_ref().unwrap();
        assert_eq!(
            (ram.transferred, ram.remaining, ram.dirty_sync_count),
            (4096, 8192, 2)
        );
        assert_eq!(m.raw["ram"]["multifd-bytes"], 0);
        assert!(!m.is_final());
        assert_eq!(
            MigrationInfo::from_value(&serde_json::json!({}))
                .unwrap()
                .status,
            "none"
        );
        for bad in [
            serde_json::json!([]),
            serde_json::json!({"status": "flying"}),
            serde_json::json!({"status": 3}),
            serde_json::json!({"total-time": -1}),
            serde_json::json!({"ram": {"transferred": "lots"}}),
            serde_json::json!({"ram": {"mbps": "fast"}}),
            serde_json::json!({"ram": 1}),
        ] {
            assert!(MigrationInfo::from_value(&bad).is_err(), "{bad}");
        }
    }

    /// A fake QMP server on a socket: sends `script` lines, answering each request line read
    /// with the next scripted reply.
    fn fake_server(
        greeting: &'static str,
        replies: Vec<&'static str>,
    ) -> (PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = s.write_all(greeting.as_bytes());
            let mut r = BufReader::new(s.try_clone().unwrap());
            for reply in replies {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let _ = s.write_all(reply.as_bytes());
            }
            // Keep the connection open a little so the client sees its last reply.
            std::thread::sleep(Duration::from_millis(200));
        });
        (path, dir)
    }

    #[test]
    fn client_negotiates_executes_and_keeps_events() {
        let greeting: &'static str = Box::leak(format!("{GREETING}\n").into_boxed_str());
        let (path, _dir) = fake_server(
            greeting,
            vec![
                "{\"return\": {}, \"id\": 1}\n",
                "{\"event\": \"STOP\"}\n{\"return\": {\"status\": \"completed\", \"downtime\": 15}, \"id\": 2}\n",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'max-bandwidth' expects uint64\"}, \"id\": 3}\n",
            ],
        );
        let mut c = QmpClient::connect(&path, Duration::from_secs(5)).unwrap();
        assert_eq!(c.version().major_minor(), "7.2");
        let m = c.query_migrate().unwrap();
        assert!(m.is_final());
        assert_eq!(m.downtime_ms, Some(15));
        assert_eq!(c.take_events().len(), 1);
        let e = c
            .execute(
                "migrate-set-parameters",
                Some(serde_json::json!({"max-bandwidth": -1})),
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "migrate-set-parameters: Parameter 'max-bandwidth' expects uint64"
        );
        // The server is gone now: a clear error, not a hang or a panic.
        let e = c.query_migrate().unwrap_err();
        assert!(
            matches!(e, QmpError::Closed { .. } | QmpError::Io { .. }),
            "{e}"
        );
    }

    #[test]
    fn a_socket_that_is_not_qmp_is_named() {
        let (path, _dir) = fake_server("SSH-2.0-OpenSSH_9.2\r\n", vec![]);
        let e = QmpClient::connect(&path, Duration::from_secs(5)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, QmpError::NotQmp { .. }), "{msg}");
        assert!(
            msg.contains("is not a QMP socket") && msg.contains("SSH-2.0"),
            "{msg}"
        );
    }

    #[test]
    fn a_silent_socket_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let e = QmpClient::connect(&path, Duration::from_millis(200)).unwrap_err();
        drop(listener);
        assert!(matches!(e, QmpError::Timeout { .. }), "{e}");
    }
}
