//! A real guest on the command line: the machine options `run --kvm` and `profile --kvm`
//! share, and how its progress counters print.

use std::path::PathBuf;

use clap::Args;

use super::values::parse_size;
use autoconv::kvm::{BootPath, DirtyLogMode, MachineConfig};

/// Guest shape options shared by `run --kvm` and `profile --kvm`.
#[derive(Args, Debug, Clone)]
pub struct KvmGuestArgs {
    /// The guest: a multiboot v1 image (from `autoconv guest build`, or any multiboot v1 kernel
    /// that needs only memory, the CPU and COM1).
    #[arg(long = "kvm", value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Guest memory (as QEMU's -m).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    pub mem: u64,
    /// vCPUs (default: as many as the image was built for; 1 for other kernels).
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// How KVM reports dirty pages: bitmap (KVM_GET_DIRTY_LOG); clear (manual protect:
    /// KVM_CLEAR_DIRTY_LOG re-protects each 1 GiB chunk just before it is sent, as QEMU
    /// does); ring or ring:SIZE (per-vCPU dirty rings, 64KiB = 4096 entries by default).
    #[arg(long, default_value = "bitmap")]
    pub dirty_log: DirtyLogMode,
    /// Boot path: auto (autoconv images start in long mode at their trampoline, skipping the
    /// slow emulated 32-bit boot) or multiboot (always as QEMU boots them).
    #[arg(long, default_value = "auto")]
    pub boot: BootPath,
    /// An emulated DMA device writing this many pages/s into guest memory from the host
    /// (throttling cannot slow it; its writes are tracked by the VMM, not by KVM).
    #[arg(long, value_name = "PAGES_PER_S")]
    pub dma: Option<u64>,
    /// Size of the region the DMA device cycles through, at the top of guest memory.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub dma_wss: u64,
}

impl KvmGuestArgs {
    /// The image (`--kvm IMAGE`; optional to clap only so `run --qemu` can share the options).
    pub(super) fn image(&self) -> anyhow::Result<&std::path::Path> {
        self.image
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--kvm IMAGE is required"))
    }

    /// Refuse what cannot run: the image first (read and checked against --mem, the same on
    /// any machine), then a host without a usable /dev/kvm.
    pub(super) fn check_runnable(&self) -> anyhow::Result<()> {
        autoconv::kvm::LoadPlan::from_file(self.image()?, self.mem)?;
        if let Some(why) = autoconv::kvm::unavailable_reason() {
            anyhow::bail!("{why}");
        }
        Ok(())
    }

    pub(super) fn machine(&self) -> MachineConfig {
        MachineConfig {
            mem_bytes: self.mem,
            vcpus: self.vcpus.unwrap_or(0),
            dirty_log: self.dirty_log,
        }
    }

    pub(super) fn dma(&self) -> Option<autoconv::kvm::dma::DmaConfig> {
        self.dma.map(|pages_per_s| {
            let bytes = self.dma_wss.min(self.mem) / 4096 * 4096;
            autoconv::kvm::dma::DmaConfig {
                pages_per_s,
                region_gpa: self.mem - bytes,
                region_bytes: bytes,
            }
        })
    }
}

/// "N pages written, M sweeps" over all vCPUs.
pub(super) fn counters_text(c: &[autoconv::kvm::VcpuCounters]) -> String {
    let pages: u64 = c.iter().map(|c| c.pages_written).sum();
    let sweeps: u64 = c.iter().map(|c| c.sweeps).sum();
    format!("{pages} pages written, {sweeps} sweeps")
}
