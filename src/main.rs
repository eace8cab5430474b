use clap::{Parser, Subcommand};

use autoconv::cli::kvm;

/// autoconv: QEMU pre-copy live migration with auto-converge, on a simulator or real KVM guests.
#[derive(Parser, Debug)]
#[command(name = "autoconv", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a real guest under KVM and live-migrate it (`run --kvm IMAGE`).
    Run(kvm::KvmRunArgs),
    /// Be the destination of a live migration.
    Incoming(kvm::IncomingArgs),
    /// Measure a guest's dirty rate at each throttle level (`profile --kvm IMAGE`).
    Profile(kvm::KvmProfileArgs),
    /// Guest images.
    Guest {
        #[command(subcommand)]
        command: GuestCommand,
    },
}

#[derive(Subcommand, Debug)]
enum GuestCommand {
    /// Write a workload guest image (multiboot v1 ELF) without any external toolchain.
    Build(kvm::GuestBuildArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Guest {
            command: GuestCommand::Build(args),
        } => kvm::guest_build(&args),
        Command::Run(args) => kvm::run_kvm(&args),
        Command::Incoming(args) => kvm::incoming(&args),
        Command::Profile(args) => kvm::profile_kvm(&args),
    }
}
