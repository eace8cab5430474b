//! autoconv's monitor refuses what QEMU refuses, in QEMU's words: the same QMP and HMP lines go
//! to a real `qemu-system-x86_64` and to autoconv's in-process monitor, and every reply must be
//! the same. QEMU needs no guest and no KVM for this (`-machine none`), so the test is cheap.
//!
//! Known differences, left out on purpose and listed in the README: autoconv accepts QEMU 2.5's
//! `x-cpu-throttle-*` names, refuses a negative `max-bandwidth` (QEMU 7.2 takes it as a huge
//! unsigned rate), and HMP's long `downtime-limit` size-syntax help is not reproduced.

mod common;

use autoconv::migration::params::QemuVersion;
use autoconv::migration::MigrationConfig;
use autoconv::monitor::{hmp, qmp, Monitor};
use common::qemu_vm::QemuVm;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// `migrate-set-parameters` arguments, in order (each may depend on the ones before).
fn parameter_cases() -> Vec<Value> {
    vec![
        json!({"cpu-throttle-initial": 0}),
        json!({"cpu-throttle-initial": 100}),
        json!({"cpu-throttle-initial": 300}),
        json!({"cpu-throttle-initial": -1}),
        json!({"cpu-throttle-initial": 1.5}),
        json!({"cpu-throttle-initial": "x"}),
        json!({"cpu-throttle-initial": true}),
        json!({"cpu-throttle-increment": 0}),
        json!({"cpu-throttle-increment": 100}),
        json!({"throttle-trigger-threshold": 0}),
        json!({"throttle-trigger-threshold": 101}),
        json!({"throttle-trigger-threshold": 256}),
        json!({"max-cpu-throttle": 0}),
        json!({"max-cpu-throttle": 100}),
        json!({"downtime-limit": 2_000_001}),
        json!({"downtime-limit": -1}),
        json!({"downtime-limit": "x"}),
        json!({"downtime-limit": 1.5}),
        json!({"max-bandwidth": "x"}),
        json!({"max-bandwidth": 1.5}),
        json!({"max-bandwidth": true}),
        json!({"cpu-throttle-tailslow": 1}),
        json!({"cpu-throttle-tailslow": "on"}),
        json!({"no-such-parameter": 1}),
        // Accepted, then a rule between two parameters.
        json!({"cpu-throttle-initial": 50}),
        json!({"max-cpu-throttle": 30}),
        json!({"max-cpu-throttle": 50}),
        json!({"cpu-throttle-initial": 20, "max-cpu-throttle": 99}),
        json!({"downtime-limit": 2_000_000}),
        json!({"cpu-throttle-tailslow": true}),
        // A parameter of a later release than the one compared with.
        json!({"avail-switchover-bandwidth": 5}),
    ]
}

/// HMP command lines, in order.
const HMP_CASES: &[&str] = &[
    "migrate_set_parameter cpu-throttle-initial 0",
    "migrate_set_parameter cpu-throttle-initial 300",
    "migrate_set_parameter cpu-throttle-initial -1",
    "migrate_set_parameter cpu-throttle-initial 1.5",
    "migrate_set_parameter cpu-throttle-initial x",
    "migrate_set_parameter throttle-trigger-threshold 0",
    "migrate_set_parameter max-cpu-throttle 5",
    "migrate_set_parameter downtime-limit 3000000",
    "migrate_set_parameter cpu-throttle-tailslow x",
    "migrate_set_parameter nope 1",
    "migrate_set_capability auto-converge maybe",
    "migrate_set_capability nope on",
    "migrate_set_parameter cpu-throttle-initial 30",
    "migrate_set_capability auto-converge on",
];

/// A QEMU with nothing but a QMP socket, read line by line: replies are compared whole, errors
/// included. Killed on drop.
struct Qemu {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    _vm: QemuVm,
}

impl Qemu {
    fn start() -> Qemu {
        let vm = QemuVm::start(&["-machine", "none", "-nodefaults", "-display", "none"]);
        let stream = UnixStream::connect(&vm.qemu.qmp_path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut q = Qemu {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            _vm: vm,
        };
        let greeting = q.read();
        assert!(greeting.get("QMP").is_some(), "{greeting}");
        assert_eq!(
            q.ask(json!({"execute": "qmp_capabilities"})),
            json!({"return": {}})
        );
        q
    }

    fn read(&mut self) -> Value {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read QMP");
            assert!(!line.is_empty(), "QEMU closed its QMP socket");
            let v: Value = serde_json::from_str(&line).expect("QEMU sent JSON");
            if v.get("event").is_none() {
                return v;
            }
        }
    }

    fn ask(&mut self, command: Value) -> Value {
        writeln!(self.writer, "{command}").unwrap();
        self.read()
    }

    fn hmp(&mut self, line: &str) -> String {
        let r = self.ask(json!({"execute": "human-monitor-command",
                                "arguments": {"command-line": line}}));
        r["return"]
            .as_str()
            .unwrap_or_else(|| panic!("{line}: {r}"))
            .replace("\r\n", "\n")
    }
}

/// autoconv's monitor, posing as the QEMU release it is compared with.
fn autoconv_monitor(version: QemuVersion) -> std::sync::Arc<Monitor> {
    let mut config = MigrationConfig::default();
    config.autoconv.qemu_version = version;
    Monitor::new(config, false)
}

fn qemu_version(q: &mut Qemu) -> QemuVersion {
    let v = q.ask(json!({"execute": "query-version"}));
    let (major, minor) = (&v["return"]["qemu"]["major"], &v["return"]["qemu"]["minor"]);
    QemuVersion::parse(&format!("{major}.{minor}"))
        .unwrap_or_else(|| panic!("QEMU {major}.{minor} is not a release autoconv models"))
}

#[test]
fn migrate_set_parameters_refusals_match_qemu() {
    if !common::require::require_qemu("migrate_set_parameters_refusals_match_qemu") {
        return;
    }
    let mut q = Qemu::start();
    let monitor = autoconv_monitor(qemu_version(&mut q));
    let mut session = qmp::Session::new(&monitor);
    session
        .handle_input(r#"{"execute":"qmp_capabilities"}"#)
        .unwrap();
    let mut differences = Vec::new();
    let mut refusals = 0;
    for args in parameter_cases() {
        let command = json!({"execute": "migrate-set-parameters", "arguments": args});
        let theirs = q.ask(command.clone());
        let (mine, _) = session.handle_input(&command.to_string()).unwrap();
        refusals += theirs.get("error").is_some() as usize;
        if theirs != mine {
            differences.push(format!("{args}\n  QEMU:     {theirs}\n  autoconv: {mine}"));
        }
    }
    assert!(
        refusals >= 20,
        "the table must exercise refusals: {refusals}"
    );
    assert!(
        differences.is_empty(),
        "autoconv's monitor words these differently from QEMU:\n{}",
        differences.join("\n")
    );
}

#[test]
fn hmp_refusals_match_qemu() {
    if !common::require::require_qemu("hmp_refusals_match_qemu") {
        return;
    }
    let mut q = Qemu::start();
    let monitor = autoconv_monitor(qemu_version(&mut q));
    let mut differences = Vec::new();
    for line in HMP_CASES {
        let theirs = q.hmp(line);
        let (mine, _) = hmp::execute(&monitor, line);
        if theirs != mine {
            differences.push(format!(
                "{line}\n  QEMU:     {theirs:?}\n  autoconv: {mine:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "autoconv's HMP words these differently from QEMU:\n{}",
        differences.join("\n")
    );
}
