//! A running VM: memory, vCPU threads, COM1, the throttle timer; load, start, pause, save and
//! restore.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_bindings::kvm_clock_data;
use serde::{Deserialize, Serialize};

use super::control::Control;
use super::error::{ImageError, KvmError};
use super::loader::{LoadPlan, MBI_GPA};
use super::memory::GuestRam;
use super::serial::Serial;
use super::vstate::vcpu::{Vcpu, VcpuEnd, VcpuState};
use super::vstate::vm::{DirtyLogMode, Vm};
use crate::guest_image::{layout, INFO_TSC_KHZ_OFFSET};

/// Shape of a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineConfig {
    /// Guest memory in bytes (a multiple of 2 MiB).
    pub mem_bytes: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// How dirty pages are read from KVM.
    pub dirty_log: DirtyLogMode,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            mem_bytes: 512 << 20,
            vcpus: 1,
            dirty_log: DirtyLogMode::Bitmap,
        }
    }
}

/// How a multiboot image is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BootPath {
    /// autoconv images start in long mode at their 64-bit trampoline (a dozen emulated CPL0
    /// instructions instead of the 32-bit boot); other kernels through multiboot.
    #[default]
    Auto,
    /// Always through the multiboot entry (32-bit protected mode), as QEMU boots it. vCPUs
    /// other than 0 of an autoconv image start at its trampoline (there is no SIPI
    /// emulation); those of other kernels are not started.
    Multiboot,
}

/// The spelling `--boot` takes.
impl std::fmt::Display for BootPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BootPath::Auto => "auto",
            BootPath::Multiboot => "multiboot",
        })
    }
}

impl std::str::FromStr for BootPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" | "fast" => Ok(BootPath::Auto),
            "multiboot" => Ok(BootPath::Multiboot),
            _ => Err(format!(
                "unknown boot path {s:?} (expected auto or multiboot)"
            )),
        }
    }
}

/// Progress counters of one vCPU of an autoconv workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuCounters {
    /// Completed sweeps of its working-set slice.
    pub sweeps: u64,
    /// Page writes made.
    pub pages_written: u64,
}

/// Where the status page is and how many slots it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusArea {
    /// Guest-physical address of the status page.
    pub gpa: u64,
    /// Slots (vCPUs of the workload).
    pub vcpus: u32,
}

enum Slot {
    Parked(Vcpu),
    Running(JoinHandle<(Vcpu, VcpuEnd)>),
    /// Only while moving between the two.
    Empty,
}

/// Everything a destination needs besides memory to resume the guest.
#[derive(Debug, Serialize, Deserialize)]
pub struct MachineState {
    /// Format version of this structure.
    pub version: u32,
    /// Each vCPU's state.
    pub vcpus: Vec<VcpuState>,
    /// The KVM clock.
    pub clock: kvm_clock_data,
    /// COM1 bytes written so far (the destination's count continues from it).
    pub serial_bytes: u64,
    /// The workload's status page, if it has one.
    pub status: Option<StatusArea>,
    /// vCPUs that had stopped with an error (index, reason), and stay stopped.
    pub failed_vcpus: Vec<(u32, String)>,
    /// vCPUs the guest never started (a foreign kernel's APs: autoconv starts only the boot
    /// vCPU of a multiboot kernel it did not build), which stay stopped on the destination too.
    /// Absent from a source before this field: none.
    #[serde(default)]
    pub never_started_vcpus: Vec<u32>,
}

const STATE_VERSION: u32 = 1;

/// A VM with its threads.
pub struct Machine {
    vm: Vm,
    control: Arc<Control>,
    serial: Arc<Serial>,
    slots: Vec<Slot>,
    /// vCPUs not to start (failed, or APs of a foreign multiboot kernel).
    disabled: Vec<bool>,
    timer: Option<JoinHandle<()>>,
    dma_config: Option<super::dma::DmaConfig>,
    dma: Option<super::dma::Dma>,
    dma_written: u64,
    status: Option<StatusArea>,
    failures: Arc<Mutex<Vec<(u32, String)>>>,
    serial_base: u64,
}

impl Machine {
    /// Create the VM, its memory and vCPUs (not running).
    pub fn new(cfg: MachineConfig) -> Result<Machine, KvmError> {
        if cfg.vcpus == 0 || cfg.vcpus > layout::MAX_VCPUS {
            return Err(KvmError::VcpuCount(cfg.vcpus));
        }
        super::vstate::install_kick_handler()?;
        let ram = Arc::new(GuestRam::new(cfg.mem_bytes)?);
        let vm = Vm::new(ram, cfg.dirty_log)?;
        let slots = (0..cfg.vcpus)
            .map(|i| vm.create_vcpu(i).map(Slot::Parked))
            .collect::<Result<Vec<_>, _>>()?;
        let control = Arc::new(Control::new(cfg.vcpus));
        let timer = super::throttle::spawn_timer(control.clone())
            .map_err(KvmError::thread("throttle timer"))?;
        Ok(Machine {
            vm,
            control,
            serial: Arc::new(Serial::default()),
            slots,
            disabled: vec![false; cfg.vcpus as usize],
            timer: Some(timer),
            status: None,
            failures: Arc::new(Mutex::new(Vec::new())),
            serial_base: 0,
            dma_config: None,
            dma: None,
            dma_written: 0,
        })
    }

    /// Create a VM and load a checked image into it, ready to start.
    pub fn boot(cfg: MachineConfig, plan: &LoadPlan, path: BootPath) -> Result<Machine, KvmError> {
        if let Some(info) = &plan.info {
            if info.vcpus != cfg.vcpus {
                return Err(ImageError::VcpuMismatch {
                    image: info.vcpus,
                    asked: cfg.vcpus,
                }
                .into());
            }
        }
        let mut m = Machine::new(cfg)?;
        m.load(plan, path)?;
        Ok(m)
    }

    fn load(&mut self, plan: &LoadPlan, path: BootPath) -> Result<(), KvmError> {
        let ram = self.vm.ram().clone();
        for s in &plan.segments {
            ram.write(s.gpa, &plan.bytes[s.file_range.clone()]);
            // Memory is fresh (zero), so bss needs no writes.
        }
        let mem = ram.bytes();
        write_multiboot_info(&ram, mem);
        let Some(info) = &plan.info else {
            // A foreign kernel: vCPU 0 through multiboot, the others never started.
            for (i, d) in self.disabled.iter_mut().enumerate() {
                *d = i != 0;
            }
            return self
                .vcpu(0)?
                .set_multiboot_entry(plan.entry, MBI_GPA as u32, MBI_GPA as u32);
        };
        // Tell the workload the real TSC frequency (its wall-clock pace depends on it).
        if let Some(khz) = self.vcpu(0)?.tsc_khz() {
            ram.write_u64(layout::INFO_GPA + INFO_TSC_KHZ_OFFSET, u64::from(khz));
        }
        self.status = Some(StatusArea {
            gpa: info.status_gpa,
            vcpus: info.vcpus,
        });
        for i in 0..self.slots.len() as u32 {
            let v = self.vcpu(i)?;
            if i == 0 && path == BootPath::Multiboot {
                v.set_multiboot_entry(plan.entry, MBI_GPA as u32, MBI_GPA as u32)?;
            } else {
                v.set_long_mode_entry(info)?;
            }
        }
        ram.reset_host_dirty();
        Ok(())
    }

    fn vcpu(&self, i: u32) -> Result<&Vcpu, KvmError> {
        match self.slots.get(i as usize) {
            Some(Slot::Parked(v)) => Ok(v),
            _ => Err(KvmError::BadState(format!("vCPU {i} is not parked"))),
        }
    }

    /// Guest memory.
    pub fn ram(&self) -> &Arc<GuestRam> {
        self.vm.ram()
    }

    /// The VM (dirty logging).
    pub fn vm_mut(&mut self) -> &mut Vm {
        &mut self.vm
    }

    /// The VM.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }

    /// The state shared with the vCPU threads (throttle and dirty-limit sleeps).
    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    /// vCPUs.
    pub fn vcpu_count(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The workload's status page, if known.
    pub fn status_area(&self) -> Option<StatusArea> {
        self.status
    }

    /// Declare where the workload's counters are (the destination learns it from the source).
    pub fn set_status_area(&mut self, status: Option<StatusArea>) {
        self.status = status;
    }

    /// Attach an emulated DMA device; it runs while the vCPUs run.
    pub fn set_dma(&mut self, cfg: Option<super::dma::DmaConfig>) -> Result<(), KvmError> {
        if let Some(c) = &cfg {
            let end = c.region_gpa.checked_add(c.region_bytes);
            if c.region_bytes < 4096 || end.is_none_or(|e| e > self.ram().bytes()) {
                return Err(KvmError::BadState(format!(
                    "DMA region {:#x}+{} is outside guest memory",
                    c.region_gpa, c.region_bytes
                )));
            }
        }
        self.dma_config = cfg;
        Ok(())
    }

    /// Page writes the DMA device made so far.
    pub fn dma_pages_written(&self) -> u64 {
        self.dma_written
    }

    /// Start (or resume) every vCPU thread (and the DMA device, if any).
    pub fn start(&mut self) -> Result<(), KvmError> {
        self.control.clear_stop();
        if let (Some(cfg), None) = (self.dma_config, &self.dma) {
            let dma = super::dma::Dma::start(self.ram().clone(), cfg, self.dma_written)
                .map_err(KvmError::thread("DMA device"))?;
            self.dma = Some(dma);
        }
        for i in 0..self.slots.len() {
            if self.disabled[i] {
                continue;
            }
            // Only a parked vCPU starts: taking a running one's slot would drop its handle and
            // leave its thread unjoined.
            if !matches!(self.slots[i], Slot::Parked(_)) {
                continue;
            }
            let Slot::Parked(mut vcpu) = std::mem::replace(&mut self.slots[i], Slot::Empty) else {
                unreachable!("checked parked above");
            };
            let control = self.control.clone();
            let serial = self.serial.clone();
            let failures = self.failures.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("vcpu{i}"))
                .spawn(move || {
                    let index = vcpu.index();
                    control.register_thread(index);
                    let end = vcpu.run_loop(control.as_ref(), &serial);
                    if let VcpuEnd::Failed(why) = &end {
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((index, why.clone()));
                    }
                    control.unregister_thread(index);
                    (vcpu, end)
                });
            match spawned {
                Ok(h) => self.slots[i] = Slot::Running(h),
                Err(e) => {
                    // The closure (and the vCPU in it) is gone; stop the others cleanly.
                    let _ = self.pause();
                    return Err(KvmError::thread("vCPU")(e));
                }
            }
        }
        Ok(())
    }

    /// Stop every vCPU thread (cutting throttle sleeps short) and join it.
    pub fn pause(&mut self) -> Result<(), KvmError> {
        // Devices stop with the VM: nothing writes guest memory during stop-and-copy.
        if let Some(dma) = self.dma.take() {
            self.dma_written = dma.stop();
        }
        self.control.request_stop();
        self.control.wait_all_stopped(Duration::from_secs(10));
        let mut err = None;
        for i in 0..self.slots.len() {
            // A vCPU that never ran (a foreign kernel's AP, one that failed before) stays
            // parked: taking its slot would drop it and report it lost.
            if matches!(self.slots[i], Slot::Parked(_)) {
                continue;
            }
            if let Slot::Running(h) = std::mem::replace(&mut self.slots[i], Slot::Empty) {
                match h.join() {
                    Ok((vcpu, end)) => {
                        if matches!(end, VcpuEnd::Failed(_)) {
                            self.disabled[i] = true;
                        }
                        self.slots[i] = Slot::Parked(vcpu);
                    }
                    Err(_) => {
                        err = Some(KvmError::VcpuFailed {
                            index: i as u32,
                            reason: "its thread panicked".into(),
                        })
                    }
                }
            } else if let Slot::Empty = self.slots[i] {
                err = Some(KvmError::VcpuFailed {
                    index: i as u32,
                    reason: "lost".into(),
                });
            }
        }
        err.map_or(Ok(()), Err)
    }

    /// True while vCPU threads run.
    pub fn is_running(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::Running(_)))
    }

    /// vCPUs that stopped with an error so far.
    pub fn failures(&self) -> Vec<(u32, String)> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The throttle (`cpu_throttle_set`, 0 = `cpu_throttle_stop`).
    pub fn set_throttle_pct(&self, pct: u32) {
        self.control.set_throttle_pct(pct);
    }

    /// The throttle percentage now (0 = off).
    pub fn throttle_pct(&self) -> u32 {
        self.control.throttle_pct()
    }

    /// Wait until throttle sleeps in progress are over (see [`Control::wait_throttle_idle`]).
    pub fn wait_throttle_idle(&self, timeout: Duration) -> bool {
        self.control.wait_throttle_idle(timeout)
    }

    /// Host CPU used by this machine's vCPU threads since creation (ns).
    pub fn vcpu_cpu_ns(&self) -> u64 {
        self.control.vcpu_cpu_ns()
    }

    /// Host CPU used by its throttle timer thread since creation (ns).
    pub fn timer_cpu_ns(&self) -> u64 {
        use std::os::unix::thread::JoinHandleExt;
        self.timer
            .as_ref()
            // SAFETY: the timer thread lives until Drop joins it, after which `timer` is None.
            .and_then(|t| unsafe { super::host_cpu::thread_ns(t.as_pthread_t()) })
            .unwrap_or(0)
    }

    /// vCPU-nanoseconds slept in the throttle since creation.
    pub fn throttle_slept_ns(&self) -> u64 {
        self.control.throttle_slept_ns()
    }

    /// COM1 bytes written (continues across a migration).
    pub fn serial_bytes(&self) -> u64 {
        self.serial_base + self.serial.byte_count()
    }

    /// COM1 output captured in this process.
    pub fn serial_output(&self) -> Vec<u8> {
        self.serial.captured()
    }

    /// The workload's counters, read from guest memory (no exit involved).
    pub fn counters(&self) -> Vec<VcpuCounters> {
        let Some(st) = self.status else {
            return Vec::new();
        };
        let ram = self.ram();
        (0..st.vcpus)
            .map(|i| {
                let slot = st.gpa + layout::STATUS_SLOT_BYTES * (u64::from(i) + 1);
                VcpuCounters {
                    sweeps: ram.read_u64(slot + layout::SLOT_SWEEPS_OFFSET),
                    pages_written: ram.read_u64(slot + layout::SLOT_PAGES_WRITTEN_OFFSET),
                }
            })
            .collect()
    }

    /// Total page writes of the workload (0 if it has no counters).
    pub fn pages_written(&self) -> u64 {
        self.counters().iter().map(|c| c.pages_written).sum()
    }

    /// Save vCPU and VM state. Every vCPU must be paused.
    pub fn save_state(&self) -> Result<MachineState, KvmError> {
        let failures = self.failures();
        let never_started_vcpus = (0..self.slots.len() as u32)
            .filter(|&i| self.disabled[i as usize] && !failures.iter().any(|(f, _)| *f == i))
            .collect();
        let vcpus = (0..self.vcpu_count())
            .map(|i| self.vcpu(i)?.save_state())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MachineState {
            version: STATE_VERSION,
            vcpus,
            clock: self.vm.get_clock()?,
            serial_bytes: self.serial_bytes(),
            status: self.status,
            failed_vcpus: failures,
            never_started_vcpus,
        })
    }

    /// Restore state saved by [`Machine::save_state`] (vCPUs paused).
    pub fn restore_state(&mut self, s: &MachineState) -> Result<(), KvmError> {
        if s.version != STATE_VERSION {
            return Err(KvmError::BadState(format!(
                "state version {} (this autoconv reads {STATE_VERSION})",
                s.version
            )));
        }
        if s.vcpus.len() != self.slots.len() {
            return Err(KvmError::BadState(format!(
                "{} vCPU states for {} vCPUs",
                s.vcpus.len(),
                self.slots.len()
            )));
        }
        if let Some(st) = s.status {
            if st.vcpus == 0
                || st.vcpus > layout::MAX_VCPUS
                || st
                    .gpa
                    .checked_add(4096)
                    .is_none_or(|e| e > self.ram().bytes())
            {
                return Err(KvmError::BadState(
                    "status area outside guest memory".into(),
                ));
            }
        }
        // VM-wide state first, then each vCPU (Firecracker's order).
        self.vm.set_clock(&s.clock)?;
        for (i, vs) in s.vcpus.iter().enumerate() {
            self.vcpu(i as u32)?.restore_state(vs)?;
        }
        let stopped = s.failed_vcpus.iter().map(|(i, _)| *i);
        for i in stopped.chain(s.never_started_vcpus.iter().copied()) {
            if let Some(d) = self.disabled.get_mut(i as usize) {
                *d = true;
            }
        }
        self.serial_base = s.serial_bytes;
        self.status = s.status;
        Ok(())
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.pause();
        self.control.set_throttle_pct(0);
        self.control.shutdown_timer();
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
    }
}

/// The multiboot information structure and a memory map at [`MBI_GPA`].
fn write_multiboot_info(ram: &GuestRam, mem_bytes: u64) {
    let mmap_gpa = MBI_GPA + 0x100;
    let mut mbi = [0u8; 52];
    let flags: u32 = 1 | (1 << 6); // mem_lower/upper, memory map
    mbi[0..4].copy_from_slice(&flags.to_le_bytes());
    mbi[4..8].copy_from_slice(&639u32.to_le_bytes());
    let upper_kib = ((mem_bytes - (1 << 20)) / 1024).min(u64::from(u32::MAX)) as u32;
    mbi[8..12].copy_from_slice(&upper_kib.to_le_bytes());
    mbi[44..48].copy_from_slice(&48u32.to_le_bytes());
    mbi[48..52].copy_from_slice(&(mmap_gpa as u32).to_le_bytes());
    ram.write(MBI_GPA, &mbi);
    let mut mmap = Vec::new();
    for (base, len) in [(0u64, 0x9_fc00u64), (1 << 20, mem_bytes - (1 << 20))] {
        mmap.extend_from_slice(&20u32.to_le_bytes());
        mmap.extend_from_slice(&base.to_le_bytes());
        mmap.extend_from_slice(&len.to_le_bytes());
        mmap.extend_from_slice(&1u32.to_le_bytes()); // available RAM
    }
    ram.write(mmap_gpa, &mmap);
}
