//! The command line: a thin layer over the library. Errors reach the user as one line with
//! their causes; exit codes mean something (see [`ExitCode`]).

mod advise;
mod check;
mod compare;
mod completions;
mod ctrl_c;
mod guest;
mod incoming;
mod kvm_guest;
pub mod out;
mod plot;
mod profile;
mod profile_qmp;
mod qemu;
mod run_kvm;
mod run_monitor;
mod sim;
mod sweep;
mod values;

use clap::{Parser, Subcommand};

/// Exit codes.
pub mod exit {
    /// The migration completed (or the command succeeded).
    pub const OK: u8 = 0;
    /// The command ran, but the migration did not complete (not-converged, failed, cancelled).
    pub const NOT_COMPLETED: u8 = 1;
    /// Bad input or an error before or outside the migration.
    pub const ERROR: u8 = 2;
    /// The migration failed: the destination's copy of memory differed from the source's, so
    /// it did not run the guest (the source guest runs on).
    pub const MEMORY_MISMATCH: u8 = 3;
    /// The migration failed: the guest failed at the source (KVM, a vCPU, dirty tracking).
    pub const GUEST_FAULT: u8 = 4;

    use autoconv::migration::{FailureKind, MigrationOutcome, MigrationStatus};

    /// The code for a migration's end, from its typed outcome (never from its reason text).
    pub fn for_outcome(o: &MigrationOutcome) -> u8 {
        match (o.status, o.failure) {
            (MigrationStatus::Completed, _) => OK,
            (_, Some(FailureKind::MemoryMismatch { .. })) => MEMORY_MISMATCH,
            (_, Some(FailureKind::GuestFault)) => GUEST_FAULT,
            _ => NOT_COMPLETED,
        }
    }
}

/// Understand and tune QEMU's auto-converge.
///
/// autoconv runs QEMU's pre-copy live migration with auto-converge CPU throttling, one core
/// driving either a seeded synthetic guest (`sim`) or a real KVM guest (`run --kvm`), so you
/// can see whether and how fast a workload converges under a cpu-throttle-initial /
/// cpu-throttle-increment policy before touching production. `sweep`, `plot`, `profile`,
/// `compare` and `check` build on it: compare policies, see the curves, calibrate the model
/// on a real guest, and catch regressions in convergence time.
///
/// Exit codes: 0 = migration completed; 1 = it did not (not-converged, cancelled, or failed on
/// the link or at the destination); 2 = bad input or another error; 3 = failed: the
/// destination's memory differed from the source's; 4 = failed: the guest failed at the source.
#[derive(Debug, Parser)]
#[command(name = "autoconv", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Sim(sim::SimArgs),
    /// Run a real guest and live-migrate it: autoconv's VMM (`run --kvm IMAGE`) or real QEMU
    /// (`run --qemu IMAGE`).
    Run(run_kvm::KvmRunArgs),
    Record(qemu::RecordArgs),
    /// Be the destination of a live migration of a real guest.
    Incoming(incoming::IncomingArgs),
    Profile(profile::ProfileArgs),
    /// Build guest images.
    Guest {
        #[command(subcommand)]
        command: GuestCommand,
    },
    Params(sim::ParamsArgs),
    Sweep(sweep::SweepArgs),
    Merge(sweep::MergeArgs),
    Plot(plot::PlotArgs),
    Check(check::CheckArgs),
    Compare(compare::CompareArgs),
    Advise(advise::AdviseArgs),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
}

#[derive(Debug, Subcommand)]
enum GuestCommand {
    /// Write a workload guest image (multiboot v1 ELF) without any external toolchain.
    Build(guest::GuestBuildArgs),
}

/// Parse the command line and run it; returns the process exit code.
pub fn main() -> anyhow::Result<u8> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim::run(args),
        Command::Run(args) => run_kvm::run_kvm(&args),
        Command::Record(args) => qemu::record(&args),
        Command::Incoming(args) => incoming::incoming(&args),
        Command::Profile(args) => profile::run(args),
        Command::Guest {
            command: GuestCommand::Build(args),
        } => guest::guest_build(&args),
        Command::Params(args) => sim::params(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Merge(args) => sweep::merge(args),
        Command::Plot(args) => plot::run(args),
        Command::Check(args) => check::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Advise(args) => advise::run(args),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
    }
}

/// An error as one line, each cause said once. anyhow's `{:#}` appends every source, and an
/// error that already formats its source into its message (`cannot write x: Is a directory`)
/// would say it twice; a cause whose text is already in the line is left out.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    // Multi-line messages (a parser's excerpt) still make one line on stderr.
    line.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::{exit, one_line};
    use autoconv::migration::{FailureKind, MigrationStatus};

    /// The exit code comes from the outcome's typed failure, never from its reason text: a
    /// guest fault whose text speaks of memory is still 4, a mismatch worded as a lost link
    /// still 3, an untyped failure 1, and a completed migration 0 whatever it carries.
    #[test]
    fn each_typed_end_has_its_exit_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/light.toml");
        let scenario = autoconv::scenario::Scenario::load(&path, &[]).unwrap();
        let done = autoconv::sim::simulate(&scenario, scenario.seed, &mut ());
        assert_eq!(done.status, MigrationStatus::Completed);
        let end = |status, failure, reason: &str| {
            let mut o = done.clone();
            o.status = status;
            o.failure = failure;
            o.reason = Some(reason.into());
            exit::for_outcome(&o)
        };
        let mismatch = FailureKind::MemoryMismatch {
            mismatched_pages: 1,
            pages: 8,
            first_gpa: 0x1000,
        };
        let failed = MigrationStatus::Failed;
        let guest = Some(FailureKind::GuestFault);
        assert_eq!(end(failed, guest, "memory differs"), exit::GUEST_FAULT);
        assert_eq!(exit::GUEST_FAULT, 4);
        assert_eq!(end(failed, Some(mismatch), "connection lost"), 3);
        assert_eq!(end(failed, Some(FailureKind::LinkLost), "vCPU 0"), 1);
        assert_eq!(end(failed, None, "guest fault"), 1);
        assert_eq!(end(MigrationStatus::Cancelled, None, "cancelled"), 1);
        assert_eq!(end(MigrationStatus::NotConverged, None, "time limit"), 1);
        assert_eq!(end(MigrationStatus::Completed, guest, "vCPU 0"), 0);
    }

    #[derive(Debug, displaydoc::Display, thiserror::Error)]
    /// cannot write out/summary.json: {0}
    struct Write(#[source] std::io::Error);

    #[test]
    fn a_cause_in_the_message_is_said_once() {
        let io = std::io::Error::from_raw_os_error(libc::EISDIR);
        let e = anyhow::Error::new(Write(io));
        let line = one_line(&e);
        assert_eq!(line.matches("Is a directory").count(), 1, "{line}");
        assert_eq!(
            line,
            "cannot write out/summary.json: Is a directory (os error 21)"
        );
    }

    #[test]
    fn context_and_cause_both_appear() {
        let e = anyhow::anyhow!("bad value\n  at line 3").context("reading a.toml");
        assert_eq!(one_line(&e), "reading a.toml: bad value; at line 3");
    }
}
