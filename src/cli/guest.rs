//! `autoconv guest build`: write a workload guest image.

use super::out::outln;
use std::path::PathBuf;

use clap::Args;

use super::values::parse_size;
use autoconv::guest_image::{self, GuestSpec, HotSpec, Pace, Pattern};

/// `autoconv guest build`: write a workload guest image.
#[derive(Args, Debug, Clone)]
#[command(after_help = GUEST_BUILD_HELP)]
pub struct GuestBuildArgs {
    /// Which pages the workload writes: sequential (every page in address order, like QEMU's
    /// own test guest), random, hotcold, or idle (no writes).
    #[arg(long, default_value = "sequential")]
    pub pattern: Pattern,
    /// Working set size, shared evenly between the vCPUs (e.g. 256MiB). It starts at 4 MiB, so
    /// the guest needs at least WSS + 4 MiB of memory.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub wss: u64,
    /// Hot/cold split for --pattern hotcold: WSS%:WRITES% (10%:90% = a tenth of the set takes
    /// nine tenths of the writes).
    #[arg(long, default_value = "10%:90%")]
    pub hot: HotSpec,
    /// Pacing: none (as fast as the vCPU goes); cpu:N (spin N iterations after each write:
    /// CPU-time pace, throttling slows it); wall:R (R page writes/s per vCPU on TSC deadlines
    /// with catch-up: throttling does not slow it until it cannot keep up).
    #[arg(long, default_value = "none")]
    pub pace: Pace,
    /// vCPUs the workload runs on (each writes its own slice of the working set). Under QEMU
    /// without -smp only vCPU 0 runs.
    #[arg(long, default_value_t = 1)]
    pub vcpus: u32,
    /// Write one 'B' to COM1 every N sweeps (0: never).
    #[arg(long, default_value_t = 1)]
    pub marker_every: u32,
    /// Seed of the random and hotcold patterns.
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// Output file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

const GUEST_BUILD_HELP: &str = "\
The image is a multiboot v1 ELF: the same file boots under
  qemu-system-x86_64 -enable-kvm -m 512 -kernel guest.img -serial file:out.txt
and under
  autoconv run --kvm guest.img
It switches to 64-bit long mode and runs the workload at CPL3. Progress counters
(sweeps and pages written, per vCPU) live in guest memory at 0x101040 + 64*vCPU.

Examples:
  autoconv guest build -o seq.img                       # QEMU's test guest: 256 MiB, sequential
  autoconv guest build --pattern random --wss 64MiB --pace cpu:2000 -o rnd.img
  autoconv guest build --pattern hotcold --hot 5%:95% --vcpus 2 -o hc.img
  autoconv guest build --pace wall:100000 -o paced.img  # 100K page writes/s, throttle-proof";

/// Handler of `autoconv guest build`.
pub fn guest_build(args: &GuestBuildArgs) -> anyhow::Result<u8> {
    let spec = GuestSpec {
        pattern: args.pattern,
        wss_bytes: args.wss,
        hot: args.hot,
        pace: args.pace,
        vcpus: args.vcpus,
        marker_every_sweeps: args.marker_every,
        seed: args.seed,
        tsc_khz: guest_image::measure_tsc_khz(),
    };
    let image = guest_image::build_image(&spec)?;
    autoconv::report::write_file_atomically(&args.output, &image)?;
    outln!(
        "wrote {} ({} bytes): {} {} working set on {} vCPU(s), pace {}; needs --mem >= {}",
        args.output.display(),
        image.len(),
        spec.pattern.name(),
        autoconv::units::format_bytes(spec.wss_bytes),
        spec.vcpus,
        spec.pace,
        autoconv::units::format_bytes(spec.min_mem_bytes())
    );
    Ok(super::exit::OK)
}
