//! The command line: a thin layer over the library. Errors reach the user as one line with
//! their causes; exit codes mean something (see [`ExitCode`]).

mod advise;
mod check;
mod compare;
mod ctrl_c;
mod guest;
mod incoming;
mod kvm_guest;
mod plot;
mod profile;
mod profile_kvm;
mod profile_qmp;
mod run_kvm;
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
/// Exit codes: 0 = migration completed; 1 = it did not (not-converged, failed, cancelled);
/// 2 = bad input or another error.
#[derive(Debug, Parser)]
#[command(name = "autoconv", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Sim(sim::SimArgs),
    /// Run a real guest under KVM and live-migrate it (`run --kvm IMAGE`).
    Run(run_kvm::KvmRunArgs),
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
    }
}
