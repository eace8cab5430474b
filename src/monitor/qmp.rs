//! QMP, one connection's side: the greeting, capabilities negotiation, each input checked
//! as QEMU checks it (one error reply for a bad frame, never a dropped connection), and the
//! commands a migration needs, answered in QEMU 7.2's shapes.

use serde_json::{json, Map, Value};

use super::query;
use super::state::{CommandError, Monitor};
use crate::migration::{ParamValue, QemuVersion};

/// The commands served, for `query-commands`.
pub const COMMANDS: &[&str] = &[
    "qmp_capabilities",
    "query-commands",
    "query-status",
    "query-version",
    "query-migrate",
    "query-migrate-parameters",
    "query-migrate-capabilities",
    "migrate-set-capabilities",
    "migrate-set-parameters",
    "migrate",
    "migrate_cancel",
    "quit",
];

/// The greeting QEMU sends first: the QEMU release autoconv mimics, autoconv named as the
/// package so nobody mistakes it for QEMU, no out-of-band capability.
pub fn greeting(monitor: &Monitor) -> Value {
    let v = monitor.config().autoconv.qemu_version;
    json!({"QMP": {
        "version": {
            "qemu": {"micro": 0, "minor": v.minor, "major": v.major},
            "package": format!("autoconv {}", env!("CARGO_PKG_VERSION")),
        },
        "capabilities": [],
    }})
}

/// What to do after a reply.
#[derive(Debug, PartialEq)]
pub enum After {
    /// Read the next line.
    Continue,
    /// The client said `quit`: send the reply, the SHUTDOWN event, and close.
    Quit,
}

/// One client's session.
pub struct Session<'a> {
    monitor: &'a Monitor,
    negotiated: bool,
}

impl<'a> Session<'a> {
    /// A new connection, before `qmp_capabilities`.
    pub fn new(monitor: &'a Monitor) -> Self {
        Self {
            monitor,
            negotiated: false,
        }
    }

    /// Answer one input; `None` for a blank one (QEMU answers nothing).
    pub fn handle_input(&mut self, line: &str) -> Option<(Value, After)> {
        if line.trim().is_empty() {
            return None;
        }
        let input: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return Some((
                    error_reply(
                        &CommandError::generic(format!("JSON parse error, {e}")),
                        None,
                    ),
                    After::Continue,
                ))
            }
        };
        let Value::Object(input) = input else {
            let e = CommandError::generic("QMP input must be a JSON object");
            return Some((error_reply(&e, None), After::Continue));
        };
        let id = input.get("id").cloned();
        let (reply, after) = match self.dispatch(&input) {
            Ok((ret, after)) => (ret, after),
            Err(e) => return Some((error_reply(&e, id), After::Continue)),
        };
        let mut r = Map::new();
        r.insert("return".into(), reply);
        if let Some(id) = id {
            r.insert("id".into(), id);
        }
        Some((Value::Object(r), after))
    }

    fn dispatch(&mut self, input: &Map<String, Value>) -> Result<(Value, After), CommandError> {
        for key in input.keys() {
            if !matches!(key.as_str(), "execute" | "arguments" | "id") {
                return Err(CommandError::generic(format!(
                    "QMP input member '{key}' is unexpected"
                )));
            }
        }
        let command = match input.get("execute") {
            None => return Err(CommandError::generic("QMP input lacks member 'execute'")),
            Some(Value::String(c)) => c.as_str(),
            Some(_) => {
                return Err(CommandError::generic(
                    "QMP input member 'execute' must be a string",
                ))
            }
        };
        let empty = Map::new();
        let args = match input.get("arguments") {
            None => &empty,
            Some(Value::Object(a)) => a,
            Some(_) => {
                return Err(CommandError::generic(
                    "QMP input member 'arguments' must be an object",
                ))
            }
        };
        if !self.negotiated && command != "qmp_capabilities" {
            return Err(not_found(
                "Expecting capabilities negotiation with 'qmp_capabilities'",
            ));
        }
        let m = self.monitor;
        let done = |v: Value| Ok((v, After::Continue));
        match command {
            "qmp_capabilities" => {
                if self.negotiated {
                    return Err(not_found(
                        "Capabilities negotiation is already complete, command ignored",
                    ));
                }
                only(args, &["enable"])?;
                if let Some(enable) = args.get("enable") {
                    let Value::Array(caps) = enable else {
                        return Err(wrong_type("enable", "array"));
                    };
                    if let Some(c) = caps.first() {
                        let name = c.as_str().unwrap_or_default();
                        return Err(CommandError::generic(format!(
                            "Capability '{name}' not available"
                        )));
                    }
                }
                self.negotiated = true;
                done(json!({}))
            }
            "query-commands" => {
                only(args, &[])?;
                done(Value::Array(
                    COMMANDS.iter().map(|c| json!({"name": c})).collect(),
                ))
            }
            "query-version" => {
                only(args, &[])?;
                done(greeting(m)["QMP"]["version"].clone())
            }
            "query-status" => {
                only(args, &[])?;
                let (status, running) = m.run_state();
                done(json!({"status": status, "singlestep": false, "running": running}))
            }
            "query-migrate" => {
                only(args, &[])?;
                done(query::query_migrate(m))
            }
            "query-migrate-parameters" => {
                only(args, &[])?;
                done(query::parameters_json(&m.config()))
            }
            "query-migrate-capabilities" => {
                only(args, &[])?;
                done(query::capabilities_json(&m.config()))
            }
            "migrate-set-capabilities" => {
                only(args, &["capabilities"])?;
                m.set_capabilities(&capabilities_arg(args)?)?;
                done(json!({}))
            }
            "migrate-set-parameters" => {
                let version = m.config().autoconv.qemu_version;
                let params = args
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), param_value(k, v, version)?)))
                    .collect::<Result<Vec<_>, CommandError>>()?;
                m.set_parameters(&params)?;
                done(json!({}))
            }
            "migrate" => {
                only(args, &["uri", "blk", "inc", "detach", "resume"])?;
                for flag in ["blk", "inc", "detach", "resume"] {
                    match args.get(flag) {
                        Some(Value::Bool(true)) if flag != "detach" => {
                            return Err(CommandError::generic(format!(
                                "QEMU's migrate '{flag}' is not modelled by autoconv"
                            )));
                        }
                        None | Some(Value::Bool(_)) => {}
                        Some(_) => return Err(wrong_type(flag, "boolean")),
                    }
                }
                let uri = match args.get("uri") {
                    None => return Err(CommandError::generic("Parameter 'uri' is missing")),
                    Some(Value::String(u)) => u,
                    Some(_) => return Err(wrong_type("uri", "string")),
                };
                m.migrate(uri)?;
                done(json!({}))
            }
            "migrate_cancel" => {
                only(args, &[])?;
                m.cancel_migration();
                done(json!({}))
            }
            "quit" => {
                only(args, &[])?;
                m.request_quit();
                Ok((json!({}), After::Quit))
            }
            other => Err(not_found(&format!(
                "The command {other} has not been found"
            ))),
        }
    }
}

/// The event QEMU sends when a client's `quit` stops it.
pub fn shutdown_event() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    json!({
        "timestamp": {"seconds": now.as_secs(), "microseconds": now.subsec_micros()},
        "event": "SHUTDOWN",
        "data": {"guest": false, "reason": "host-qmp-quit"},
    })
}

/// The error reply for a refused input.
pub fn error_reply(e: &CommandError, id: Option<Value>) -> Value {
    let mut r = Map::new();
    r.insert("error".into(), json!({"class": e.class, "desc": e.desc}));
    if let Some(id) = id {
        r.insert("id".into(), id);
    }
    Value::Object(r)
}

/// The error for an input longer than the monitor takes.
pub fn too_long() -> Value {
    error_reply(
        &CommandError::generic(format!(
            "JSON parse error, input longer than {} bytes",
            super::frame::MAX_INPUT_BYTES
        )),
        None,
    )
}

fn not_found(desc: &str) -> CommandError {
    CommandError {
        class: "CommandNotFound",
        desc: desc.into(),
    }
}

fn wrong_type(name: &str, expected: &str) -> CommandError {
    CommandError::generic(format!(
        "Invalid parameter type for '{name}', expected: {expected}"
    ))
}

/// Refuse an argument the command does not take (QEMU's wording).
fn only(args: &Map<String, Value>, allowed: &[&str]) -> Result<(), CommandError> {
    match args.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(CommandError::generic(format!(
            "Parameter '{k}' is unexpected"
        ))),
        None => Ok(()),
    }
}

/// `migrate-set-capabilities`'s `capabilities`: `[{"capability": NAME, "state": BOOL}, ...]`.
fn capabilities_arg(args: &Map<String, Value>) -> Result<Vec<(String, bool)>, CommandError> {
    let list = match args.get("capabilities") {
        None => return Err(CommandError::generic("Parameter 'capabilities' is missing")),
        Some(Value::Array(l)) => l,
        Some(_) => return Err(wrong_type("capabilities", "array")),
    };
    let mut caps = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = format!("capabilities[{i}]");
        let Value::Object(o) = item else {
            return Err(wrong_type(&at, "object"));
        };
        if let Some(k) = o
            .keys()
            .find(|k| !matches!(k.as_str(), "capability" | "state"))
        {
            return Err(CommandError::generic(format!(
                "Parameter '{at}.{k}' is unexpected"
            )));
        }
        let name = match o.get("capability") {
            None => {
                return Err(CommandError::generic(format!(
                    "Parameter '{at}.capability' is missing"
                )))
            }
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(wrong_type(&format!("{at}.capability"), "string")),
        };
        let state = match o.get("state") {
            None => {
                return Err(CommandError::generic(format!(
                    "Parameter '{at}.state' is missing"
                )))
            }
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(wrong_type(&format!("{at}.state"), "boolean")),
        };
        caps.push((name, state));
    }
    Ok(caps)
}

/// A QMP argument as the parameter checker takes it, typed as QMP types it: every modelled
/// parameter is a number but `cpu-throttle-tailslow`, a boolean (no "on", no "64MiB/s").
/// QMP's bandwidths are bytes/s, so a bare number is one (not the `--set` typo the checker
/// guards against).
fn param_value(name: &str, v: &Value, version: QemuVersion) -> Result<ParamValue, CommandError> {
    if !super::state::is_monitor_parameter(name, version) {
        // The name is refused first, by the checker.
        return Ok(ParamValue::Str(v.to_string()));
    }
    let boolean = name == "cpu-throttle-tailslow";
    let bandwidth = matches!(name, "max-bandwidth" | "avail-switchover-bandwidth");
    match v {
        Value::Bool(b) if boolean => Ok(ParamValue::Bool(*b)),
        _ if boolean => Err(wrong_type(name, "boolean")),
        Value::Number(n) => Ok(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if bandwidth && i > 0 => ParamValue::Str(format!("{i}B/s")),
            (Some(i), _) => ParamValue::Int(i),
            (None, Some(f)) => ParamValue::Float(f),
            _ => ParamValue::Str(n.to_string()),
        }),
        // QEMU 7.2's input visitor reads every integer parameter as uint64 first.
        _ => Err(CommandError::generic(format!(
            "Parameter '{name}' expects uint64"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::MigrationConfig;

    fn monitor() -> std::sync::Arc<Monitor> {
        Monitor::new(MigrationConfig::default(), false)
    }

    /// Send one input, get the reply as JSON text (compact, keys sorted by serde_json).
    fn ask(s: &mut Session, input: &str) -> Value {
        s.handle_input(input).expect("a reply").0
    }

    fn negotiated(m: &Monitor) -> Session<'_> {
        let mut s = Session::new(m);
        assert_eq!(
            ask(&mut s, r#"{"execute":"qmp_capabilities"}"#),
            json!({"return": {}})
        );
        s
    }

    fn error(class: &str, desc: &str) -> Value {
        json!({"error": {"class": class, "desc": desc}})
    }

    #[test]
    fn greeting_has_qemus_shape_and_names_autoconv() {
        let m = monitor();
        let g = greeting(&m);
        let v = &g["QMP"]["version"];
        assert!(v["qemu"]["major"].is_u64() && v["qemu"]["minor"].is_u64());
        assert_eq!(v["qemu"]["micro"], 0);
        assert!(v["package"].as_str().unwrap().starts_with("autoconv "));
        assert_eq!(g["QMP"]["capabilities"], json!([]));
    }

    #[test]
    fn commands_wait_for_negotiation_which_happens_once() {
        let m = monitor();
        let mut s = Session::new(&m);
        assert_eq!(
            ask(&mut s, r#"{"execute":"query-status"}"#),
            error(
                "CommandNotFound",
                "Expecting capabilities negotiation with 'qmp_capabilities'"
            )
        );
        assert_eq!(
            ask(
                &mut s,
                r#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#
            ),
            error("GenericError", "Capability 'oob' not available")
        );
        assert_eq!(
            ask(&mut s, r#"{"execute":"qmp_capabilities"}"#),
            json!({"return": {}})
        );
        assert_eq!(
            ask(&mut s, r#"{"execute":"qmp_capabilities"}"#),
            error(
                "CommandNotFound",
                "Capabilities negotiation is already complete, command ignored"
            )
        );
        assert_eq!(
            ask(&mut s, r#"{"execute":"query-status","id":7}"#),
            json!({"return": {"status": "running", "singlestep": false, "running": true}, "id": 7})
        );
    }

    #[test]
    fn bad_frames_get_one_error_each_in_qemus_words() {
        let m = monitor();
        let mut s = negotiated(&m);
        let cases = [
            ("[1]", "QMP input must be a JSON object"),
            (r#"{"foo":1}"#, "QMP input member 'foo' is unexpected"),
            (
                r#"{"execute":1}"#,
                "QMP input member 'execute' must be a string",
            ),
            (r#"{"arguments":{}}"#, "QMP input lacks member 'execute'"),
            (
                r#"{"execute":"query-status","arguments":[]}"#,
                "QMP input member 'arguments' must be an object",
            ),
            (
                r#"{"execute":"query-status","arguments":{"x":1}}"#,
                "Parameter 'x' is unexpected",
            ),
        ];
        for (input, desc) in cases {
            assert_eq!(ask(&mut s, input), error("GenericError", desc), "{input}");
        }
        let garbage = ask(&mut s, "garbage");
        assert_eq!(garbage["error"]["class"], "GenericError");
        assert!(garbage["error"]["desc"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error, "));
        assert_eq!(
            ask(&mut s, r#"{"execute":"foo","id":"a"}"#),
            json!({"error": {"class": "CommandNotFound", "desc": "The command foo has not been found"}, "id": "a"})
        );
        assert!(s.handle_input(" \r\n").is_none());
    }

    #[test]
    fn capabilities_are_set_all_or_none_and_listed_in_qemus_order() {
        let m = monitor();
        let mut s = negotiated(&m);
        let set = |caps: &str| {
            format!(
                r#"{{"execute":"migrate-set-capabilities","arguments":{{"capabilities":{caps}}}}}"#
            )
        };
        assert_eq!(
            ask(
                &mut s,
                &set(r#"[{"capability":"auto-converge","state":true}]"#)
            ),
            json!({"return": {}})
        );
        let list = ask(&mut s, r#"{"execute":"query-migrate-capabilities"}"#)["return"].clone();
        assert_eq!(list[0], json!({"capability": "xbzrle", "state": false}));
        assert_eq!(
            list[2],
            json!({"capability": "auto-converge", "state": true})
        );
        // Off is fine for what autoconv does not model; on is refused by name.
        assert_eq!(
            ask(&mut s, &set(r#"[{"capability":"xbzrle","state":false}]"#)),
            json!({"return": {}})
        );
        let cases = [
            (
                r#"[{"capability":"auto-converge","state":false},{"capability":"xbzrle","state":true}]"#,
                "QEMU capability 'xbzrle' is not modelled by autoconv",
            ),
            (
                r#"[{"capability":"nope","state":true}]"#,
                "Parameter 'capability' does not accept value 'nope'",
            ),
            // Dropped in QEMU 9.1: the default 10.2 monitor's enum has no such value.
            (
                r#"[{"capability":"compress","state":false}]"#,
                "Parameter 'capability' does not accept value 'compress'",
            ),
            (
                r#"[{"capability":"auto-converge"}]"#,
                "Parameter 'capabilities[0].state' is missing",
            ),
            (
                r#"[{"capability":"auto-converge","state":"on"}]"#,
                "Invalid parameter type for 'capabilities[0].state', expected: boolean",
            ),
            (
                "{}",
                "Invalid parameter type for 'capabilities', expected: array",
            ),
        ];
        for (caps, desc) in cases {
            assert_eq!(
                ask(&mut s, &set(caps)),
                error("GenericError", desc),
                "{caps}"
            );
        }
        assert_eq!(
            ask(&mut s, r#"{"execute":"migrate-set-capabilities"}"#),
            error("GenericError", "Parameter 'capabilities' is missing")
        );
        // The refused list changed nothing: auto-converge is still on.
        assert!(m.config().params.auto_converge);
    }

    #[test]
    fn parameters_take_qemu_25_names_and_are_checked_as_set_checks_them() {
        let m = monitor();
        let mut s = negotiated(&m);
        let set =
            |args: &str| format!(r#"{{"execute":"migrate-set-parameters","arguments":{args}}}"#);
        assert_eq!(
            ask(
                &mut s,
                &set(
                    r#"{"x-cpu-throttle-initial":30,"x-cpu-throttle-increment":15,"max-bandwidth":64}"#
                )
            ),
            json!({"return": {}})
        );
        let p = ask(&mut s, r#"{"execute":"query-migrate-parameters"}"#)["return"].clone();
        assert_eq!(p["cpu-throttle-initial"], 30);
        assert_eq!(p["cpu-throttle-increment"], 15);
        // QMP's bandwidth is bytes/s: 64 is 64 bytes/s, as QEMU takes it.
        assert_eq!(p["max-bandwidth"], 64);
        assert_eq!(p["downtime-limit"], 300);
        let cases = [
            (
                r#"{"cpu-throttle-initial":0}"#,
                "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99",
            ),
            (
                r#"{"cpu-throttle-initial":"30"}"#,
                "Parameter 'cpu-throttle-initial' expects uint64",
            ),
            (
                r#"{"cpu-throttle-tailslow":1}"#,
                "Invalid parameter type for 'cpu-throttle-tailslow', expected: boolean",
            ),
            (
                r#"{"multifd-channels":4}"#,
                "QEMU parameter 'multifd-channels' is not modelled by autoconv",
            ),
            (r#"{"auto-converge":true}"#, "Parameter 'auto-converge' is unexpected"),
            (
                r#"{"auto-converge-initial":40}"#,
                "Parameter 'auto-converge-initial' is unexpected",
            ),
            (
                r#"{"cpu-throttle-initial":50,"max-cpu-throttle":40}"#,
                "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial to 99",
            ),
        ];
        for (args, desc) in cases {
            assert_eq!(
                ask(&mut s, &set(args)),
                error("GenericError", desc),
                "{args}"
            );
        }
        // All or none: the refused pair above did not set cpu-throttle-initial to 50.
        assert_eq!(m.config().params.cpu_throttle_initial, 30);
    }

    #[test]
    fn migrate_checks_its_uri_and_starts_once() {
        let m = monitor();
        let mut s = negotiated(&m);
        assert_eq!(
            ask(&mut s, r#"{"execute":"query-migrate"}"#),
            json!({"return": {}})
        );
        let cases = [
            (r#"{}"#, "Parameter 'uri' is missing"),
            (
                r#"{"uri":"foo:bar"}"#,
                "Parameter 'uri' expects a valid migration protocol",
            ),
            (
                r#"{"uri":"unix:/tmp/x"}"#,
                "autoconv migrates over tcp:HOST:PORT to `autoconv incoming` only, not unix:",
            ),
            (
                r#"{"uri":"tcp:127.0.0.1:4444","blk":true}"#,
                "QEMU's migrate 'blk' is not modelled by autoconv",
            ),
        ];
        for (args, desc) in cases {
            let input = format!(r#"{{"execute":"migrate","arguments":{args}}}"#);
            assert_eq!(ask(&mut s, &input), error("GenericError", desc), "{args}");
        }
        let go = r#"{"execute":"migrate","arguments":{"uri":"tcp:127.0.0.1:4444","detach":true}}"#;
        assert_eq!(ask(&mut s, go), json!({"return": {}}));
        assert_eq!(
            ask(&mut s, r#"{"execute":"query-migrate"}"#),
            json!({"return": {"status": "setup"}})
        );
        let busy = error("GenericError", "There's a migration process in progress");
        assert_eq!(ask(&mut s, go), busy);
        assert_eq!(
            ask(
                &mut s,
                r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"auto-converge","state":true}]}}"#
            ),
            busy
        );
        assert_eq!(
            ask(&mut s, r#"{"execute":"migrate_cancel"}"#),
            json!({"return": {}})
        );
        match m.phase() {
            super::super::state::Phase::Requested(r) => assert!(r.cancel.is_cancelled()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quit_answers_then_ends_the_session() {
        let m = monitor();
        let mut s = negotiated(&m);
        let (reply, after) = s.handle_input(r#"{"execute":"quit"}"#).unwrap();
        assert_eq!(reply, json!({"return": {}}));
        assert_eq!(after, After::Quit);
        assert!(m.quit_requested());
        assert_eq!(shutdown_event()["event"], "SHUTDOWN");
    }
}
