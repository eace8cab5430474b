//! One vCPU: boot registers, the KVM_RUN loop, and its state for migration.

use std::cell::Cell;
use std::sync::Arc;

use kvm_bindings::{
    kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs,
    kvm_vcpu_events, kvm_xcrs, kvm_xsave, Msrs,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use serde::{Deserialize, Serialize};

use super::super::error::KvmError;
use super::super::serial::Serial;
use super::dirty_ring::DirtyRings;
use crate::guest_image::{layout, InfoBlock};

/// What the KVM_RUN loop asks of the VMM between two runs. The threads' coordination (stop
/// requests, throttle and dirty-limit sleeps, halts) implements it one level up, so this
/// ioctl layer depends on nothing above it.
pub trait RunControl {
    /// True once this vCPU must leave its loop.
    fn should_stop(&self) -> bool;
    /// Serve a throttle sleep the timer scheduled for vCPU `index`, if any.
    fn serve_throttle(&self, index: u32);
    /// The guest halted: wait until it is kicked or stopped.
    fn wait_while_halted(&self);
    /// vCPU `index`'s dirty ring was full and harvested: serve dirty-limit's sleep, if any.
    fn serve_dirty_limit(&self, index: u32);
}

/// A vCPU file descriptor and what it needs to save itself.
pub struct Vcpu {
    index: u32,
    fd: VcpuFd,
    msr_list: Vec<u32>,
    tsc_khz: Option<u32>,
    rings: Option<Arc<DirtyRings>>,
}

/// Everything KVM holds about a vCPU that a migration must carry.
#[derive(Debug, Serialize, Deserialize)]
pub struct VcpuState {
    /// Multiprocessing state (runnable, halted, waiting for SIPI).
    pub mp_state: kvm_mp_state,
    /// General registers.
    pub regs: kvm_regs,
    /// Segment and control registers, EFER, APIC base.
    pub sregs: kvm_sregs,
    /// FPU/SSE/AVX state.
    pub xsave: kvm_xsave,
    /// Extended control registers (XCR0).
    pub xcrs: kvm_xcrs,
    /// Debug registers.
    pub debugregs: kvm_debugregs,
    /// The local APIC.
    pub lapic: kvm_lapic_state,
    /// Model-specific registers (TSC, SYSCALL MSRs, kvmclock, ...).
    pub msrs: Vec<kvm_msr_entry>,
    /// Pending exceptions, interrupts, NMIs, SMM state.
    pub events: kvm_vcpu_events,
}

/// How a vCPU thread ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VcpuEnd {
    /// Asked to stop (pause, migration, shutdown).
    Stopped,
    /// The guest or KVM failed; the reason.
    Failed(String),
}

thread_local! {
    /// This thread's kvm_run page, for the kick signal handler.
    static KVM_RUN: Cell<*mut kvm_bindings::kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The kick signal's handler: make the current or next KVM_RUN of this thread return at once.
pub(crate) extern "C" fn kick_handler(
    _sig: libc::c_int,
    _info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    let _ = KVM_RUN.try_with(|p| {
        let run = p.get();
        if !run.is_null() {
            // SAFETY: the pointer is this thread's own mapped kvm_run page, set by the vCPU loop
            // for its whole duration and cleared before the page can go away. A volatile
            // byte store is async-signal-safe.
            unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
        }
    });
}

fn seg(selector: u16, type_: u8, dpl: u8, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

impl Vcpu {
    pub(super) fn new(
        index: u32,
        fd: VcpuFd,
        msr_list: Vec<u32>,
        tsc_khz: Option<u32>,
        rings: Option<Arc<DirtyRings>>,
    ) -> Self {
        Self {
            index,
            fd,
            msr_list,
            tsc_khz,
            rings,
        }
    }

    /// vCPU number.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The vCPU's TSC frequency as KVM reports it.
    pub fn tsc_khz(&self) -> Option<u32> {
        self.tsc_khz
    }

    /// With the in-kernel LAPIC, vCPUs other than 0 start waiting for INIT/SIPI; there is no
    /// one to send them, so make them runnable.
    fn make_runnable(&self) -> Result<(), KvmError> {
        self.fd
            .set_mp_state(kvm_mp_state {
                mp_state: kvm_bindings::KVM_MP_STATE_RUNNABLE,
            })
            .map_err(KvmError::ioctl("KVM_SET_MP_STATE"))
    }

    /// Multiboot v1 entry state: 32-bit protected mode, flat segments, paging off,
    /// EAX = 0x2BADB002, EBX = the multiboot information structure, ESP = `stack_top` (a
    /// usable stack, as QEMU's loader leaves one).
    pub fn set_multiboot_entry(
        &self,
        entry: u32,
        mbi_gpa: u32,
        stack_top: u32,
    ) -> Result<(), KvmError> {
        self.make_runnable()?;
        let mut sregs = self
            .fd
            .get_sregs()
            .map_err(KvmError::ioctl("KVM_GET_SREGS"))?;
        sregs.cs = seg(0x08, 0xb, 0, false);
        let data = seg(0x10, 0x3, 0, false);
        sregs.ds = data;
        sregs.es = data;
        sregs.fs = data;
        sregs.gs = data;
        sregs.ss = data;
        sregs.cr0 = 0x11; // PE, ET
        sregs.cr4 = 0;
        sregs.efer = 0;
        self.fd
            .set_sregs(&sregs)
            .map_err(KvmError::ioctl("KVM_SET_SREGS"))?;
        let regs = kvm_regs {
            rip: u64::from(entry),
            rax: 0x2BAD_B002,
            rbx: u64::from(mbi_gpa),
            rsp: u64::from(stack_top),
            rflags: 0x2,
            ..Default::default()
        };
        self.fd
            .set_regs(&regs)
            .map_err(KvmError::ioctl("KVM_SET_REGS"))
    }

    /// Fast path for autoconv images: start in 64-bit long mode at the image's CPL0 trampoline
    /// (the image's own GDT and page tables), which `iretq`s to the CPL3 workload after a
    /// dozen emulated instructions, skipping the 32-bit boot. `rdi` = vCPU index.
    pub fn set_long_mode_entry(&self, info: &InfoBlock) -> Result<(), KvmError> {
        self.make_runnable()?;
        let mut sregs = self
            .fd
            .get_sregs()
            .map_err(KvmError::ioctl("KVM_GET_SREGS"))?;
        use layout::selectors;
        sregs.cs = seg(selectors::KERNEL_CODE64, 0xb, 0, true);
        let data = seg(selectors::KERNEL_DATA, 0x3, 0, false);
        sregs.ds = data;
        sregs.es = data;
        sregs.fs = data;
        sregs.gs = data;
        sregs.ss = data;
        sregs.tr = kvm_segment {
            base: layout::TSS_GPA,
            limit: layout::TSS_LIMIT,
            selector: selectors::TSS,
            type_: 0xb, // busy 64-bit TSS
            present: 1,
            ..Default::default()
        };
        sregs.gdt.base = layout::GDT_GPA;
        sregs.gdt.limit = (layout::GDT_BYTES - 1) as u16;
        sregs.idt.base = 0;
        sregs.idt.limit = 0;
        sregs.cr0 = layout::CR0;
        sregs.cr3 = layout::PML4_GPA;
        sregs.cr4 = layout::CR4;
        sregs.efer = layout::EFER;
        self.fd
            .set_sregs(&sregs)
            .map_err(KvmError::ioctl("KVM_SET_SREGS"))?;
        let regs = kvm_regs {
            rip: info.trampoline,
            rdi: u64::from(self.index),
            rsp: layout::boot_stack_top(self.index),
            rflags: 0x2,
            ..Default::default()
        };
        self.fd
            .set_regs(&regs)
            .map_err(KvmError::ioctl("KVM_SET_REGS"))
    }

    /// Save the vCPU's state. The vCPU must not be running. Order as Firecracker's: the MP
    /// state first (reading it may latch pending INIT/SIPI events), MSRs after the registers
    /// they depend on, events last.
    pub fn save_state(&self) -> Result<VcpuState, KvmError> {
        let e = KvmError::ioctl;
        let mp_state = self.fd.get_mp_state().map_err(e("KVM_GET_MP_STATE"))?;
        let regs = self.fd.get_regs().map_err(e("KVM_GET_REGS"))?;
        let sregs = self.fd.get_sregs().map_err(e("KVM_GET_SREGS"))?;
        let xsave = self.fd.get_xsave().map_err(e("KVM_GET_XSAVE"))?;
        let xcrs = self.fd.get_xcrs().map_err(e("KVM_GET_XCRS"))?;
        let debugregs = self.fd.get_debug_regs().map_err(e("KVM_GET_DEBUGREGS"))?;
        let lapic = self.fd.get_lapic().map_err(e("KVM_GET_LAPIC"))?;
        let entries: Vec<kvm_msr_entry> = self
            .msr_list
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries)
            .map_err(|err| KvmError::BadState(format!("MSR list: {err:?}")))?;
        let read = self.fd.get_msrs(&mut msrs).map_err(e("KVM_GET_MSRS"))?;
        let msrs = msrs.as_slice()[..read].to_vec();
        let events = self
            .fd
            .get_vcpu_events()
            .map_err(e("KVM_GET_VCPU_EVENTS"))?;
        Ok(VcpuState {
            mp_state,
            regs,
            sregs,
            xsave,
            xcrs,
            debugregs,
            lapic,
            msrs,
            events,
        })
    }

    /// Restore a saved state: MP state, registers, segment/control registers (EFER and the
    /// APIC base before the LAPIC), XSAVE, XCRs, debug registers, LAPIC, MSRs (TSC after
    /// CR4/EFER), events last.
    pub fn restore_state(&self, s: &VcpuState) -> Result<(), KvmError> {
        let e = KvmError::ioctl;
        self.fd
            .set_mp_state(s.mp_state)
            .map_err(e("KVM_SET_MP_STATE"))?;
        self.fd.set_regs(&s.regs).map_err(e("KVM_SET_REGS"))?;
        self.fd.set_sregs(&s.sregs).map_err(e("KVM_SET_SREGS"))?;
        // SAFETY: a kvm_xsave obtained from KVM_GET_XSAVE of a vCPU with the same CPUID (the
        // destination uses the host's supported CPUID like the source): its size matches.
        unsafe { self.fd.set_xsave(&s.xsave) }.map_err(e("KVM_SET_XSAVE"))?;
        self.fd.set_xcrs(&s.xcrs).map_err(e("KVM_SET_XCRS"))?;
        self.fd
            .set_debug_regs(&s.debugregs)
            .map_err(e("KVM_SET_DEBUGREGS"))?;
        self.fd.set_lapic(&s.lapic).map_err(e("KVM_SET_LAPIC"))?;
        let msrs = Msrs::from_entries(&s.msrs)
            .map_err(|err| KvmError::BadState(format!("{} MSRs: {err:?}", s.msrs.len())))?;
        let written = self.fd.set_msrs(&msrs).map_err(e("KVM_SET_MSRS"))?;
        if written != s.msrs.len() {
            let bad = s.msrs.get(written).map(|m| m.index).unwrap_or(0);
            return Err(KvmError::BadState(format!(
                "KVM refused MSR {bad:#x} ({written} of {} restored)",
                s.msrs.len()
            )));
        }
        self.fd
            .set_vcpu_events(&s.events)
            .map_err(e("KVM_SET_VCPU_EVENTS"))
    }

    /// Run until `control` asks this vCPU to stop or the guest fails. COM1 output goes to
    /// `serial`. Throttle sleeps requested by the throttle timer are served here, between
    /// KVM_RUN calls, on this thread (as QEMU runs `cpu_throttle_thread` on the vCPU thread).
    pub fn run_loop(&mut self, control: &dyn RunControl, serial: &Serial) -> VcpuEnd {
        let i = self.index;
        let run_ptr: *mut kvm_bindings::kvm_run = self.fd.get_kvm_run();
        KVM_RUN.with(|p| p.set(run_ptr));
        let end =
            loop {
                if control.should_stop() {
                    break VcpuEnd::Stopped;
                }
                control.serve_throttle(i);
                if control.should_stop() {
                    break VcpuEnd::Stopped;
                }
                match self.fd.run() {
                    Ok(VcpuExit::IoOut(port, data)) => serial.port_out(port, data),
                    Ok(VcpuExit::IoIn(port, data)) => serial.port_in(port, data),
                    Ok(VcpuExit::Hlt) => control.wait_while_halted(),
                    Ok(VcpuExit::Shutdown) => break VcpuEnd::Failed(
                        "the guest shut down (triple fault: an exception it had no handler for)"
                            .into(),
                    ),
                    Ok(VcpuExit::MmioRead(addr, _)) | Ok(VcpuExit::MmioWrite(addr, _)) => {
                        break VcpuEnd::Failed(format!(
                            "the guest accessed {addr:#x}, outside its memory (no device there)"
                        ))
                    }
                    Ok(VcpuExit::FailEntry(reason, cpu)) => {
                        break VcpuEnd::Failed(format!(
                        "KVM could not enter the guest (hardware reason {reason:#x}, cpu {cpu})"
                    ))
                    }
                    Ok(VcpuExit::InternalError) => {
                        break VcpuEnd::Failed("KVM internal error (emulation failure)".into())
                    }
                    Ok(VcpuExit::Unsupported(r)) if r == kvm_bindings::KVM_EXIT_DIRTY_RING_FULL => {
                        // This vCPU's dirty ring is full: harvest it so the vCPU can go on.
                        let harvested = match &self.rings {
                            Some(r) => r.harvest_vcpu(i).map_err(|e| e.to_string()),
                            None => Err("dirty ring full without a dirty ring".to_string()),
                        };
                        if let Err(why) = harvested {
                            break VcpuEnd::Failed(why);
                        }
                        control.serve_dirty_limit(i);
                    }
                    Ok(other) => break VcpuEnd::Failed(format!("unexpected exit {other:?}")),
                    Err(err) if err.errno() == libc::EINTR => {
                        // Kicked: the handler set immediate_exit; clear it and look at control.
                        self.fd.set_kvm_immediate_exit(0);
                    }
                    Err(err) if err.errno() == libc::EAGAIN => {}
                    Err(err) => break VcpuEnd::Failed(format!("KVM_RUN failed: {err}")),
                }
            };
        KVM_RUN.with(|p| p.set(std::ptr::null_mut()));
        self.fd.set_kvm_immediate_exit(0);
        end
    }
}
