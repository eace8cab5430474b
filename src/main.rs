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
    }
}
