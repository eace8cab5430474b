//! `autoconv completions` and `autoconv man` come from the CLI definition: every command and
//! flag is in them, the bash script loads in bash, and the page renders as roff.

mod common;

use std::process::Command;

fn stdout(args: &[&str]) -> String {
    let out = common::autoconv(args, &common::repo());
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const COMMANDS: [&str; 15] = [
    "sim",
    "run",
    "record",
    "incoming",
    "profile",
    "guest",
    "params",
    "sweep",
    "merge",
    "plot",
    "check",
    "compare",
    "advise",
    "completions",
    "man",
];

#[test]
fn bash_completion_loads_and_completes_commands_and_flags() {
    let script = stdout(&["completions", "bash"]);
    for c in COMMANDS {
        assert!(script.contains(c), "bash completion lacks {c}");
    }
    assert!(script.contains("--max-throttle") && script.contains("--shard"));
    // Loaded into a real bash, it registers a completion for autoconv and completes a
    // subcommand from its prefix.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("autoconv.bash");
    std::fs::write(&path, &script).unwrap();
    let probe = format!(
        "source {}; complete -p autoconv >/dev/null || exit 3; \
         COMP_WORDS=(autoconv swe); COMP_CWORD=1; COMP_LINE='autoconv swe'; COMP_POINT=12; \
         _autoconv autoconv swe autoconv; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies = String::from_utf8_lossy(&out.stdout);
    assert_eq!(replies.trim(), "sweep", "completions of 'swe': {replies}");
}

#[test]
fn zsh_and_fish_scripts_name_every_command() {
    let zsh = stdout(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef autoconv"));
    let fish = stdout(&["completions", "fish"]);
    for c in COMMANDS {
        assert!(zsh.contains(c), "zsh completion lacks {c}");
        assert!(
            fish.contains(&format!("-a \"{c}\"")),
            "fish completion lacks {c}"
        );
    }
}

#[test]
fn the_man_page_has_a_section_per_command() {
    let page = stdout(&["man"]);
    assert!(
        page.contains(".TH autoconv 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for c in COMMANDS {
        assert!(
            page.contains(&format!(".TH autoconv-{c} ")),
            "man page lacks autoconv-{c}"
        );
    }
    assert!(page.contains("cpu\\-throttle\\-initial"));
}

#[test]
fn an_unknown_shell_is_refused() {
    let out = common::autoconv(&["completions", "tcsh"], &common::repo());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'tcsh'"));
}
