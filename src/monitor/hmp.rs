//! HMP, the human monitor (`--monitor stdio`): the lines of QEMU's auto-converge feature page
//! (`migrate_set_capability auto-converge on`, `migrate_set_parameter x-cpu-throttle-initial
//! 30`, `migrate -d tcp:...`, `info migrate`, `info migrate_parameters`) and the few more a
//! migration needs, answered in QEMU 7.2's wording.

use std::io::{BufRead, Write};

use super::query;
use super::state::{CommandError, Monitor};
use crate::migration::ParamValue;

/// The prompt QEMU prints.
pub const PROMPT: &str = "(qemu) ";

/// The first line: what this monitor is, so nobody mistakes it for QEMU's.
pub fn banner() -> String {
    format!(
        "autoconv {} monitor (QEMU's migration commands) - type 'help' for more information\n",
        env!("CARGO_PKG_VERSION")
    )
}

const HELP: &str = "\
info migrate -- show migration status
info migrate_capabilities -- show current migration capabilities
info migrate_parameters -- show current migration parameters
info status -- show the current VM status (running|paused)
migrate [-d] uri -- migrate to URI (using -d to not wait for completion)
migrate_cancel  -- cancel the current VM migration
migrate_set_capability capability state -- Enable/Disable the usage of a capability for migration
migrate_set_parameter parameter value -- Set the parameter for migration
quit|q  -- quit the emulator
";

/// Run one command line; returns the text to print and whether the client quit.
pub fn execute(monitor: &Monitor, line: &str) -> (String, bool) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&command, args)) = words.split_first() else {
        return (String::new(), false);
    };
    let error = |e: CommandError| format!("Error: {}\n", e.desc);
    let out = match (command, args) {
        ("help" | "?", _) => HELP.to_string(),
        ("quit" | "q", []) => {
            monitor.request_quit();
            return (String::new(), true);
        }
        ("info", [what]) => match *what {
            "migrate" => query::migrate_text(&query::query_migrate(monitor)),
            "migrate_parameters" => query::parameters_text(&monitor.config()),
            "migrate_capabilities" => query::capabilities_text(&monitor.config()),
            "status" => {
                let (status, running) = monitor.run_state();
                if running {
                    "VM status: running\n".to_string()
                } else {
                    format!("VM status: paused ({status})\n")
                }
            }
            other => format!("info: unknown subcommand '{other}'; try 'help'\n"),
        },
        // HMP looks a name up in QAPI's enum before anything else, and words a miss its own way.
        ("migrate_set_capability" | "migrate_set_parameter", [name, _])
            if !known_to_hmp(command, monitor, name) =>
        {
            format!("Error: invalid parameter value: {name}\n")
        }
        ("migrate_set_parameter", ["cpu-throttle-tailslow", value])
            if !matches!(*value, "on" | "off") =>
        {
            "Error: Parameter 'cpu-throttle-tailslow' expects 'on' or 'off'\n".into()
        }
        ("migrate_set_capability", [name, state]) => {
            let on = match *state {
                "on" => true,
                "off" => false,
                _ => {
                    return (
                        "Expected 'on' or 'off'\nTry \"help migrate_set_capability\" for more information\n".into(),
                        false,
                    )
                }
            };
            match monitor.set_capabilities(&[(name.to_string(), on)]) {
                Ok(()) => String::new(),
                Err(e) => error(e),
            }
        }
        ("migrate_set_parameter", [name, value]) => {
            match monitor.set_parameters(&[(name.to_string(), param_value(name, value))]) {
                Ok(()) => String::new(),
                Err(e) => error(e),
            }
        }
        ("migrate", ["-d", uri]) => match monitor.migrate(uri) {
            Ok(()) => String::new(),
            Err(e) => error(e),
        },
        ("migrate", [uri]) => match monitor.migrate(uri) {
            // Without -d QEMU's monitor waits for the end.
            Ok(()) => {
                monitor.wait_migration_ended();
                match query::query_migrate(monitor)["error-desc"].as_str() {
                    Some(e) => format!("Error: {e}\n"),
                    None => String::new(),
                }
            }
            Err(e) => error(e),
        },
        ("migrate_cancel", []) => {
            monitor.cancel_migration();
            String::new()
        }
        (
            "info"
            | "migrate_set_capability"
            | "migrate_set_parameter"
            | "migrate"
            | "migrate_cancel"
            | "quit"
            | "q",
            _,
        ) => format!("{command}: wrong number of arguments; try 'help {command}'\n"),
        (other, _) => format!("unknown command: '{other}'\n"),
    };
    (out, false)
}

/// Whether HMP's enum lookup finds `name`: a capability of the QEMU release the monitor poses
/// as (one it added later or has dropped is a miss, as on that release), or a parameter of that
/// release or one autoconv knows QEMU has but does not model (refused later, in autoconv's
/// words, rather than pretending QEMU lacks it).
fn known_to_hmp(command: &str, monitor: &Monitor, name: &str) -> bool {
    let version = monitor.config().autoconv.qemu_version;
    if command == "migrate_set_capability" {
        return query::capability_names(version).contains(&name);
    }
    crate::migration::vocabulary::unmodelled(name).is_some()
        || super::state::is_monitor_parameter(name, version)
}

/// HMP's value for `migrate_set_parameter`: a number is a number, except the bandwidths, which
/// HMP reads in MiB/s unless a unit follows (`64` is 64 MiB/s, `64M` too, `1G` is 1 GiB/s).
fn param_value(name: &str, text: &str) -> ParamValue {
    let bandwidth = matches!(name, "max-bandwidth" | "avail-switchover-bandwidth");
    if bandwidth {
        let sized = match text.parse::<u64>() {
            Ok(mib) => mib.checked_mul(1 << 20),
            Err(_) => crate::units::parse_size_bytes(text).ok(),
        };
        return match sized {
            Some(0) => ParamValue::Int(0),
            Some(bytes) => ParamValue::Str(format!("{bytes}B/s")),
            None => ParamValue::Str(text.to_string()),
        };
    }
    match text.parse::<i64>() {
        Ok(i) => ParamValue::Int(i),
        Err(_) => ParamValue::Str(text.to_string()),
    }
}

/// Serve HMP on `input`/`output` until `quit` or the end of the input (which quits too, once
/// a migration in progress has ended: a script piped in has nobody left to ask).
pub fn serve(monitor: &Monitor, input: impl BufRead, mut output: impl Write) {
    let _ = output.write_all(banner().as_bytes());
    let _ = write!(output, "{PROMPT}");
    let _ = output.flush();
    for line in input.lines() {
        let Ok(line) = line else { break };
        let (text, quit) = execute(monitor, &line);
        let _ = output.write_all(text.as_bytes());
        if quit {
            let _ = output.flush();
            return;
        }
        let _ = write!(output, "{PROMPT}");
        let _ = output.flush();
    }
    let _ = writeln!(output);
    let _ = output.flush();
    monitor.wait_migration_ended();
    monitor.request_quit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::MigrationConfig;

    fn run(m: &Monitor, line: &str) -> String {
        let (out, quit) = execute(m, line);
        assert!(!quit, "{line}");
        out
    }

    /// The feature page's own lines, as an operator types them.
    #[test]
    fn the_seed_pages_commands() {
        let m = Monitor::new(MigrationConfig::default(), false);
        assert_eq!(run(&m, "info migrate"), "");
        assert_eq!(run(&m, "migrate_set_capability auto-converge on"), "");
        assert_eq!(
            run(&m, "migrate_set_parameter x-cpu-throttle-initial 30"),
            ""
        );
        assert_eq!(
            run(&m, "migrate_set_parameter x-cpu-throttle-increment 15"),
            ""
        );
        let params = run(&m, "info migrate_parameters");
        assert!(params.contains("cpu-throttle-initial: 30\n"), "{params}");
        assert!(params.contains("cpu-throttle-increment: 15\n"), "{params}");
        assert!(run(&m, "info migrate_capabilities").contains("auto-converge: on\n"));
        // HMP's bandwidth is MiB/s unless a unit says otherwise.
        assert_eq!(run(&m, "migrate_set_parameter max-bandwidth 64"), "");
        assert!(
            run(&m, "info migrate_parameters").contains("max-bandwidth: 67108864 bytes/second\n")
        );
        assert_eq!(run(&m, "migrate -d tcp:127.0.0.1:4444"), "");
        assert_eq!(
            run(&m, "info migrate"),
            "Migration status: setup\ntotal time: 0 ms\n"
        );
        assert_eq!(run(&m, "info status"), "VM status: running\n");
    }

    #[test]
    fn refusals_in_qemus_words() {
        let m = Monitor::new(MigrationConfig::default(), false);
        assert_eq!(run(&m, "foo"), "unknown command: 'foo'\n");
        assert_eq!(
            run(&m, "migrate_set_capability auto-converge maybe"),
            "Expected 'on' or 'off'\nTry \"help migrate_set_capability\" for more information\n"
        );
        assert_eq!(
            run(&m, "migrate_set_parameter cpu-throttle-initial 100"),
            "Error: Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99\n"
        );
        assert_eq!(
            run(&m, "migrate_set_capability postcopy-ram on"),
            "Error: QEMU capability 'postcopy-ram' is not modelled by autoconv\n"
        );
        // QEMU 9.1 dropped `compress`: the default 10.2 monitor's enum lookup misses it, as
        // 10.2's does, while a 7.2 monitor has it (off is what autoconv does anyway).
        assert_eq!(
            run(&m, "migrate_set_capability compress off"),
            "Error: invalid parameter value: compress\n"
        );
        let mut config = MigrationConfig::default();
        config.autoconv.qemu_version = crate::migration::QemuVersion::OLDEST;
        let old = Monitor::new(config, false);
        assert_eq!(run(&old, "migrate_set_capability compress off"), "");
        assert_eq!(
            run(&old, "migrate_set_capability mapped-ram off"),
            "Error: invalid parameter value: mapped-ram\n"
        );
        assert_eq!(run(&m, ""), "");
        assert_eq!(execute(&m, "quit"), (String::new(), true));
        assert!(m.quit_requested());
    }

    #[test]
    fn end_of_input_quits() {
        let m = Monitor::new(MigrationConfig::default(), false);
        let mut out = Vec::new();
        serve(&m, &b"info status\n"[..], &mut out);
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("autoconv "), "{out}");
        assert!(out.contains("(qemu) VM status: running\n(qemu) "), "{out}");
        assert!(m.quit_requested());
    }
}
