//! The VM file descriptor: memory slot, dirty logging, KVM clock, in-kernel irqchip.

use std::sync::Arc;

use std::os::fd::AsRawFd;

use kvm_bindings::{
    kvm_clear_dirty_log, kvm_clock_data, kvm_enable_cap, kvm_userspace_memory_region, CpuId,
    KVM_CAP_DIRTY_LOG_RING, KVM_CAP_DIRTY_LOG_RING_ACQ_REL, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
    KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, KVM_MAX_CPUID_ENTRIES, KVM_MEM_LOG_DIRTY_PAGES,
};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vmm_sys_util::ioctl::ioctl_with_ref;

use super::super::error::KvmError;
use super::super::memory::GuestRam;
use super::dirty_ring::DirtyRings;
use super::vcpu::Vcpu;

/// Ioctl numbers kvm-ioctls does not wrap, defined as linux/kvm.h does.
#[allow(missing_docs)]
mod nr {
    use kvm_bindings::kvm_clear_dirty_log;
    use vmm_sys_util::ioctl_iowr_nr;
    // _IOWR(KVMIO, 0xc0, struct kvm_clear_dirty_log)
    ioctl_iowr_nr!(
        KVM_CLEAR_DIRTY_LOG,
        kvm_bindings::KVMIO,
        0xc0,
        kvm_clear_dirty_log
    );
}
use nr::KVM_CLEAR_DIRTY_LOG;

/// The memory slot holding all of guest RAM.
const RAM_SLOT: u32 = 0;
/// Where KVM may put the TSS it needs for real-mode emulation (above any guest RAM we map
/// below 4 GiB; Firecracker uses the same spot).
const KVM_TSS_GPA: usize = 0xfffb_d000;

/// How dirty pages are learnt from KVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DirtyLogMode {
    /// KVM_GET_DIRTY_LOG, which also re-protects the pages (the default).
    #[default]
    Bitmap,
    /// Manual protect (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): KVM_GET_DIRTY_LOG only reads, and
    /// KVM_CLEAR_DIRTY_LOG re-protects a chunk just before its pages are sent, as QEMU does.
    ManualClear,
    /// The per-vCPU dirty ring (KVM_CAP_DIRTY_LOG_RING), `bytes` per vCPU (16 per entry).
    Ring {
        /// Ring size per vCPU (a power of two, 4 KiB up to what KVM allows).
        bytes: u32,
    },
}

/// The spelling `--dirty-log` takes (`bitmap`, `clear`, `ring:16KiB`), so a summary names the
/// mode as the user would type it.
impl std::fmt::Display for DirtyLogMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirtyLogMode::Bitmap => f.write_str("bitmap"),
            DirtyLogMode::ManualClear => f.write_str("clear"),
            DirtyLogMode::Ring { bytes } => {
                let b = u64::from(*bytes);
                let (value, unit) = [(30, "GiB"), (20, "MiB"), (10, "KiB")]
                    .into_iter()
                    .find(|(shift, _)| b >= 1 << shift && b % (1 << shift) == 0)
                    .map_or((b, ""), |(shift, unit)| (b >> shift, unit));
                write!(f, "ring:{value}{unit}")
            }
        }
    }
}

impl std::str::FromStr for DirtyLogMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bitmap" => Ok(DirtyLogMode::Bitmap),
            "clear" | "manual-clear" => Ok(DirtyLogMode::ManualClear),
            // QEMU's usual dirty-ring-size of 4096 entries.
            "ring" => Ok(DirtyLogMode::Ring { bytes: 64 << 10 }),
            _ => {
                if let Some(size) = s.strip_prefix("ring:") {
                    let bytes = crate::units::parse_size_bytes(size).map_err(|e| e.to_string())?;
                    if !bytes.is_power_of_two() || !(4096..=(1 << 30)).contains(&bytes) {
                        return Err(format!(
                            "dirty ring of {bytes} bytes: it must be a power of two from 4KiB"
                        ));
                    }
                    return Ok(DirtyLogMode::Ring {
                        bytes: bytes as u32,
                    });
                }
                Err(format!(
                    "unknown dirty-log mode {s:?} (expected bitmap, clear, ring or ring:SIZE)"
                ))
            }
        }
    }
}

/// A KVM VM with its memory.
pub struct Vm {
    kvm: Kvm,
    fd: VmFd,
    ram: Arc<GuestRam>,
    mode: DirtyLogMode,
    logging: bool,
    cpuid: CpuId,
    msr_list: Vec<u32>,
    rings: Option<Arc<DirtyRings>>,
}

impl Vm {
    /// Open KVM, create the VM and map `ram` as its memory.
    pub fn new(ram: Arc<GuestRam>, mode: DirtyLogMode) -> Result<Vm, KvmError> {
        let kvm = Kvm::new().map_err(KvmError::OpenKvm)?;
        for (cap, name) in [
            (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
            (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
            (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(KvmError::MissingCapability(name));
            }
        }
        let fd = kvm.create_vm().map_err(KvmError::ioctl("KVM_CREATE_VM"))?;
        fd.set_tss_address(KVM_TSS_GPA)
            .map_err(KvmError::ioctl("KVM_SET_TSS_ADDR"))?;
        // The in-kernel LAPIC, so its state can be saved and restored like any VMM's.
        fd.create_irq_chip()
            .map_err(KvmError::ioctl("KVM_CREATE_IRQCHIP"))?;
        if mode == DirtyLogMode::ManualClear {
            if fd.check_extension_raw(u64::from(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)) <= 0 {
                return Err(KvmError::MissingCapability(
                    "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (needed by --dirty-log clear)",
                ));
            }
            let mut cap = kvm_enable_cap {
                cap: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
                ..Default::default()
            };
            cap.args[0] = u64::from(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
            fd.enable_cap(&cap)
                .map_err(KvmError::ioctl("KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)"))?;
        }
        let rings = match mode {
            DirtyLogMode::Ring { bytes } => {
                Some(Arc::new(Self::enable_ring(&fd, bytes, ram.pages())?))
            }
            _ => None,
        };
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        let msr_list = kvm
            .get_msr_index_list()
            .map_err(KvmError::ioctl("KVM_GET_MSR_INDEX_LIST"))?
            .as_slice()
            .to_vec();
        let vm = Vm {
            kvm,
            fd,
            ram,
            mode,
            logging: false,
            cpuid,
            msr_list,
            rings,
        };
        vm.set_slot(false)?;
        Ok(vm)
    }

    fn enable_ring(fd: &VmFd, bytes: u32, pages: u64) -> Result<DirtyRings, KvmError> {
        // Prefer the variant with acquire/release ordering (required on weakly ordered hosts,
        // the same on x86).
        let cap = [KVM_CAP_DIRTY_LOG_RING_ACQ_REL, KVM_CAP_DIRTY_LOG_RING]
            .into_iter()
            .find(|&c| fd.check_extension_raw(u64::from(c)) > 0)
            .ok_or(KvmError::MissingCapability(
                "KVM_CAP_DIRTY_LOG_RING (needed by --dirty-log ring)",
            ))?;
        let max = fd.check_extension_raw(u64::from(cap));
        if i64::from(bytes) > i64::from(max) {
            return Err(KvmError::DirtyLog(format!(
                "a dirty ring of {bytes} bytes is more than KVM allows ({max})"
            )));
        }
        let mut enable = kvm_enable_cap {
            cap,
            ..Default::default()
        };
        enable.args[0] = u64::from(bytes);
        fd.enable_cap(&enable)
            .map_err(KvmError::ioctl("KVM_ENABLE_CAP(DIRTY_LOG_RING)"))?;
        DirtyRings::new(fd.as_raw_fd(), bytes as usize, pages)
    }

    fn set_slot(&self, log_dirty: bool) -> Result<(), KvmError> {
        let region = kvm_userspace_memory_region {
            slot: RAM_SLOT,
            flags: if log_dirty {
                KVM_MEM_LOG_DIRTY_PAGES
            } else {
                0
            },
            guest_phys_addr: 0,
            memory_size: self.ram.bytes(),
            userspace_addr: self.ram.host_base(),
        };
        // SAFETY: the region is the mapping owned by `self.ram`, which outlives the VM (the VM
        // holds an Arc to it), and covers exactly `memory_size` bytes.
        unsafe { self.fd.set_user_memory_region(region) }
            .map_err(KvmError::ioctl("KVM_SET_USER_MEMORY_REGION"))
    }

    /// The memory.
    pub fn ram(&self) -> &Arc<GuestRam> {
        &self.ram
    }

    /// The dirty-log mode.
    pub fn dirty_log_mode(&self) -> DirtyLogMode {
        self.mode
    }

    /// The per-vCPU dirty rings, in ring mode.
    pub fn dirty_rings(&self) -> Option<Arc<DirtyRings>> {
        self.rings.clone()
    }

    /// Create vCPU `index` with the host's supported CPUID (its APIC ID set to `index`).
    pub fn create_vcpu(&self, index: u32) -> Result<Vcpu, KvmError> {
        let fd = self
            .fd
            .create_vcpu(u64::from(index))
            .map_err(KvmError::ioctl("KVM_CREATE_VCPU"))?;
        let mut cpuid = self.cpuid.clone();
        for e in cpuid.as_mut_slice() {
            match e.function {
                // Initial APIC ID in EBX[31:24].
                1 => e.ebx = (e.ebx & 0x00ff_ffff) | (index << 24),
                // x2APIC ID.
                0xb | 0x1f => e.edx = index,
                _ => {}
            }
        }
        fd.set_cpuid2(&cpuid)
            .map_err(KvmError::ioctl("KVM_SET_CPUID2"))?;
        let tsc_khz = fd.get_tsc_khz().ok();
        if let Some(r) = &self.rings {
            r.map(index, fd.as_raw_fd())?;
        }
        Ok(Vcpu::new(
            index,
            fd,
            self.msr_list.clone(),
            tsc_khz,
            self.rings.clone(),
        ))
    }

    /// Switch dirty logging on or off on the RAM slot.
    pub fn set_dirty_logging(&mut self, on: bool) -> Result<(), KvmError> {
        if self.logging != on {
            self.set_slot(on)?;
            self.logging = on;
        }
        Ok(())
    }

    /// KVM_GET_DIRTY_LOG for the RAM slot: one bit per page, bit i of word j = page 64j+i.
    /// In bitmap mode the pages are write-protected again; in manual-clear mode they stay
    /// writable until [`Vm::clear_dirty_log`]. In ring mode: every vCPU's ring harvested,
    /// then KVM_RESET_DIRTY_RINGS, in the same layout.
    pub fn get_dirty_log(&self) -> Result<Vec<u64>, KvmError> {
        if let Some(r) = &self.rings {
            return r.collect();
        }
        self.fd
            .get_dirty_log(RAM_SLOT, self.ram.bytes() as usize)
            .map_err(KvmError::ioctl("KVM_GET_DIRTY_LOG"))
    }

    /// KVM_CLEAR_DIRTY_LOG: re-protect the pages set in `bits`, which start at page
    /// `first_page` (a multiple of 64).
    pub fn clear_dirty_log(&self, first_page: u64, bits: &mut [u64]) -> Result<(), KvmError> {
        let pages = self.ram.pages();
        let num_pages = ((bits.len() as u64) * 64).min(pages.saturating_sub(first_page));
        let mut arg = kvm_clear_dirty_log {
            slot: RAM_SLOT,
            num_pages: num_pages as u32,
            first_page,
            ..Default::default()
        };
        arg.__bindgen_anon_1.dirty_bitmap = bits.as_mut_ptr().cast();
        // SAFETY: a VM fd, a kvm_clear_dirty_log whose bitmap pointer covers `num_pages` bits
        // (num_pages <= 64 * bits.len()) and outlives the call.
        let ret = unsafe { ioctl_with_ref(&self.fd, KVM_CLEAR_DIRTY_LOG(), &arg) };
        if ret < 0 {
            return Err(KvmError::Ioctl {
                op: "KVM_CLEAR_DIRTY_LOG",
                source: kvm_ioctls::Error::last(),
            });
        }
        Ok(())
    }

    /// The KVM clock (kvmclock's time base), to carry across a migration.
    pub fn get_clock(&self) -> Result<kvm_clock_data, KvmError> {
        self.fd
            .get_clock()
            .map_err(KvmError::ioctl("KVM_GET_CLOCK"))
    }

    /// Set the KVM clock from a saved one.
    pub fn set_clock(&self, clock: &kvm_clock_data) -> Result<(), KvmError> {
        let c = kvm_clock_data {
            clock: clock.clock,
            ..Default::default()
        };
        self.fd
            .set_clock(&c)
            .map_err(KvmError::ioctl("KVM_SET_CLOCK"))
    }

    /// Keep the KVM handle alive as long as the VM (and offer it for capability checks).
    pub fn kvm(&self) -> &Kvm {
        &self.kvm
    }
}

#[cfg(test)]
mod tests {
    use super::DirtyLogMode;

    #[test]
    fn dirty_log_modes_print_as_the_option_spells_them() {
        for (text, mode) in [
            ("bitmap", DirtyLogMode::Bitmap),
            ("clear", DirtyLogMode::ManualClear),
            ("ring:64KiB", DirtyLogMode::Ring { bytes: 64 << 10 }),
            ("ring:16KiB", DirtyLogMode::Ring { bytes: 16 << 10 }),
            ("ring:1MiB", DirtyLogMode::Ring { bytes: 1 << 20 }),
        ] {
            assert_eq!(mode.to_string(), text);
            assert_eq!(text.parse::<DirtyLogMode>(), Ok(mode));
        }
    }
}
