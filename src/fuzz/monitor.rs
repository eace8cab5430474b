//! The QMP server of `run --kvm --qmp` ([`crate::monitor`]): bytes as a client sends them,
//! framed as QEMU frames them, each input answered by a session of a fresh monitor. Every
//! reply must be one of QMP's shapes (`return` or `error` with a class and a description),
//! whatever the input.
//!
//! A `migrate` to a host name is not run: the address would be resolved by DNS, which is the
//! network's speed, not the parser's. Addresses as IP literals go through.

use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::{Features, Target};
use crate::migration::MigrationConfig;
use crate::monitor::frame::{Framer, Input};
use crate::monitor::qmp::{After, Session};
use crate::monitor::Monitor;

/// Names and values a QMP client sends.
const DICTIONARY: &[&str] = &[
    r#"{"execute":"qmp_capabilities"}"#,
    r#"{"execute":"query-migrate"}"#,
    r#"{"execute":"migrate","arguments":{"uri":"tcp:127.0.0.1:1"}}"#,
    r#"{"execute":"migrate_cancel"}"#,
    r#"{"execute":"quit"}"#,
    r#""id":"#,
    r#""arguments":"#,
    r#""capability":"auto-converge","state":true"#,
    r#""dirty-limit""#,
    r#""cpu-throttle-initial":"#,
    r#""x-cpu-throttle-increment":"#,
    r#""max-bandwidth":"#,
    r#""downtime-limit":"#,
    r#""multifd-channels":"#,
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "\n",
    "null",
    "true",
    "-1",
    "18446744073709551616",
];

/// The QMP server's input handling, from raw bytes to replies.
pub struct MonitorQmp;

impl MonitorQmp {
    /// The target (its seeds are built in: a session as `qemu.qmp` drives it).
    pub fn new() -> Self {
        MonitorQmp
    }
}

impl Default for MonitorQmp {
    fn default() -> Self {
        Self::new()
    }
}

fn session(lines: &[&str]) -> Vec<u8> {
    lines.join("\n").into_bytes()
}

/// A `migrate` whose host would need a name lookup.
fn resolves_a_name(input: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(input) else {
        return false;
    };
    let Some(uri) = v["arguments"]["uri"].as_str() else {
        return false;
    };
    let host = uri
        .strip_prefix("tcp:")
        .and_then(|rest| rest.rsplit_once(':'))
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'));
    matches!(host, Some(h) if h.parse::<std::net::IpAddr>().is_err())
}

/// Every string (keys and values) of a JSON input, decoded, one a line: what an error may
/// echo unquoted. Not JSON: the text itself.
fn json_strings(text: &str) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.iter().for_each(|(k, x)| {
                out.push_str(k);
                out.push('\n');
                walk(x, out);
            }),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let mut out = String::new();
            walk(&v, &mut out);
            out
        }
        Err(_) => text.to_string(),
    }
}

impl Target for MonitorQmp {
    fn name(&self) -> &'static str {
        "monitor"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![
            session(&[
                r#"{"execute":"qmp_capabilities"}"#,
                r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"auto-converge","state":true}]}}"#,
                r#"{"execute":"migrate-set-parameters","arguments":{"cpu-throttle-initial":30,"cpu-throttle-increment":20,"max-bandwidth":33554432}}"#,
                r#"{"execute":"query-migrate-parameters","id":1}"#,
                r#"{"execute":"migrate","arguments":{"uri":"tcp:127.0.0.1:4444"}}"#,
                r#"{"execute":"query-migrate","id":"poll"}"#,
                r#"{"execute":"migrate_cancel"}"#,
                r#"{"execute":"quit"}"#,
            ]),
            // qemu.qmp sends inputs without a newline between them.
            br#"{"execute":"qmp_capabilities"}{"execute":"query-status"}{"execute":"query-version"}{"execute":"query-commands"}"#
                .to_vec(),
            session(&[
                r#"{"execute":"query-migrate"}"#,
                r#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#,
                r#"{"execute":"migrate-set-parameters","arguments":{"x-cpu-throttle-initial":101}}"#,
                r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"xbzrle","state":true}]}}"#,
                r#"{"execute":"migrate","arguments":{"uri":"exec:cat"}}"#,
                r#"{"execute":"no-such-command"}"#,
                r#"[1, 2]"#,
                r#"{"execute": 3}"#,
            ]),
        ]
    }

    fn max_len(&self) -> usize {
        // Past the server's 64 KiB input limit, so the too-long path is reached.
        80 * 1024
    }

    fn run(&mut self, input: &[u8], f: &mut Features) {
        let monitor = Monitor::new(MigrationConfig::default(), false);
        let mut s = Session::new(&monitor);
        let mut framer = Framer::default();
        let mut inputs = framer.push(input);
        inputs.extend(framer.finish());
        f.add(&format!("inputs {}", inputs.len().min(12)));
        for (i, item) in inputs.into_iter().enumerate() {
            let text = match item {
                Input::TooLong => {
                    f.add("too long");
                    continue;
                }
                Input::Text(t) => t,
            };
            if resolves_a_name(&text) {
                f.add("migrate to a name (not resolved here)");
                continue;
            }
            let Some((reply, after)) = s.handle_input(&text) else {
                f.add("blank");
                continue;
            };
            // QMP's shapes, whatever came in.
            let obj = reply.as_object().expect("a QMP reply is a JSON object");
            if let Some(e) = obj.get("error") {
                let class = e["class"].as_str().expect("an error has a class");
                let desc = e["desc"].as_str().expect("an error has a description");
                assert!(!desc.is_empty(), "an empty error description");
                f.error(&format!("error {class}"), desc, &json_strings(&text));
            } else {
                assert!(
                    obj.contains_key("return"),
                    "neither return nor error: {reply}"
                );
                f.add(&format!("return {}", i.min(8)));
            }
            if after == After::Quit {
                f.add("quit");
                break;
            }
        }
        f.add(&format!("phase {:?}", monitor.run_state()));
    }

    fn mutate(&self, input: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> bool {
        super::text::mutate(input, rng, DICTIONARY)
    }
}
