//! `autoconv completions SHELL` and `autoconv man`: generated from the CLI definition itself, so
//! they never drift from the commands and flags that exist.

use super::exit;
use super::Cli;
use clap::{Args, CommandFactory, ValueEnum};
use std::io::Write;

/// Print a shell completion script for autoconv.
///
/// Examples:
///   autoconv completions bash > ~/.local/share/bash-completion/completions/autoconv
///   autoconv completions zsh > ~/.zfunc/_autoconv      # with fpath+=~/.zfunc in ~/.zshrc
///   autoconv completions fish > ~/.config/fish/completions/autoconv.fish
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells with completion scripts.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// Print the manual page (roff) for autoconv and its commands.
///
/// Examples:
///   autoconv man > autoconv.1 && man ./autoconv.1
///   autoconv man | gzip > /usr/local/share/man/man1/autoconv.1.gz
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ManArgs {}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<u8> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "autoconv", &mut script);
    emit(&script)
}

pub fn man(_: &ManArgs) -> anyhow::Result<u8> {
    let mut page = Vec::new();
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    // One page: the top command, then each subcommand's own section.
    for sub in cmd.get_subcommands() {
        let name = format!("autoconv-{}", sub.get_name());
        let sub = sub.clone().display_name(name);
        clap_mangen::Man::new(sub).render(&mut page)?;
    }
    emit(&page)
}

/// Write to stdout; a closed pipe (`| head`) ends quietly as every other command does.
fn emit(bytes: &[u8]) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(exit::OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(exit::OK),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}
