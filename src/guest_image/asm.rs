//! The image's machine code, written with iced-x86's code assembler.
//!
//! Three pieces, placed back to back at [`CODE_GPA`]:
//! 1. the 32-bit multiboot entry (CPL0, ~12 instructions): load the GDT, enable PAE, long mode
//!    and paging with the image's prebuilt page tables, far-jump to 64-bit code;
//! 2. the 64-bit CPL0 trampoline (~10 instructions): `iretq` to CPL3 with IOPL 3, vCPU index 0
//!    (the `idle` image's trampoline halts at CPL0 instead);
//! 3. the CPL3 workload, entered with the vCPU index in `rdi` (by the trampoline, or directly
//!    by a VMM that starts vCPUs at CPL3).
//!
//! CPL0 code is emulated ~1000x slower on these hosts, so pieces 1 and 2 stay tiny: the page
//! tables and GDT are data in the image, not built at run time.

use iced_x86::code_asm::*;
use iced_x86::IcedError;

use super::layout::{self, selectors};
use super::{GuestSpec, Pace, Pattern};

/// Addresses of the generated pieces.
pub struct Code {
    /// All code bytes, to be placed at [`layout::CODE_GPA`].
    pub bytes: Vec<u8>,
    /// The 64-bit CPL0 trampoline.
    pub trampoline: u64,
    /// Where the CPL3 workload starts.
    pub user_entry: u64,
}

/// Register roles in the workload (documented once, used everywhere below).
/// rdi: vCPU index; rbx: its status slot; r8: slice base; r9: slice pages; rcx: index in the
/// sweep; r12: pages written; r13: xorshift64 state; r14: next TSC deadline; r15: TSC ticks per
/// write; rax, rdx, rsi, r10, r11: scratch.
pub fn generate(spec: &GuestSpec) -> Result<Code, String> {
    generate_inner(spec).map_err(|e| e.to_string())?
}

fn generate_inner(spec: &GuestSpec) -> Result<Result<Code, String>, IcedError> {
    let entry32 = entry32()?;
    let tramp_gpa = layout::CODE_GPA + entry32.len() as u64;
    // The 32-bit entry's far jump targets the trampoline, so its address must be known first;
    // entry32 is position-independent in size, so assemble it again with the right target.
    let entry32 = entry32_with_target(tramp_gpa)?;
    let user_gpa_guess = tramp_gpa + 64;
    let tramp = if spec.pattern == Pattern::Idle {
        idle64()?
    } else {
        trampoline64(user_gpa_guess)?
    };
    if tramp.len() as u64 > 64 {
        return Ok(Err(format!(
            "trampoline of {} bytes grew past its slot",
            tramp.len()
        )));
    }
    let mut bytes = entry32;
    bytes.extend_from_slice(&tramp);
    bytes.resize((user_gpa_guess - layout::CODE_GPA) as usize, 0xcc);
    let user = workload(spec, user_gpa_guess)?;
    bytes.extend_from_slice(&user);
    Ok(Ok(Code {
        bytes,
        trampoline: tramp_gpa,
        user_entry: user_gpa_guess,
    }))
}

fn entry32() -> Result<Vec<u8>, IcedError> {
    entry32_with_target(0)
}

fn entry32_with_target(target: u64) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(32)?;
    a.cli()?;
    a.mov(eax, layout::GDT_PTR_GPA as u32)?;
    a.lgdt(ptr(eax))?;
    a.mov(eax, layout::CR4 as u32)?;
    a.mov(cr4, eax)?;
    a.mov(eax, layout::PML4_GPA as u32)?;
    a.mov(cr3, eax)?;
    a.mov(ecx, 0xC000_0080u32)?; // IA32_EFER
    a.rdmsr()?;
    a.or(eax, 0x100)?; // LME
    a.wrmsr()?;
    a.mov(eax, layout::CR0 as u32)?;
    a.mov(cr0, eax)?;
    // The trampoline takes the vCPU index in edi and its stack in esp: vCPU 0 here.
    a.xor(edi, edi)?;
    a.mov(esp, layout::BOOT_STACK_TOP_GPA as u32)?;
    // jmp far KERNEL_CODE64:target (ptr16:32), written out: iced's assembler has no far-ptr form.
    let mut far = vec![0xEA];
    far.extend_from_slice(&(target as u32).to_le_bytes());
    far.extend_from_slice(&selectors::KERNEL_CODE64.to_le_bytes());
    a.db(&far)?;
    a.assemble(layout::CODE_GPA)
}

fn trampoline64(user_entry: u64) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    a.mov(eax, u32::from(selectors::KERNEL_DATA))?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    // push imm32 in 64-bit mode pushes the sign-extended quadword (i32 selects that form).
    a.push(i32::from(selectors::USER_DATA))?; // SS
    a.push(0i32)?; // RSP (the workload uses no stack)
    a.push(layout::USER_RFLAGS as i32)?;
    a.push(i32::from(selectors::USER_CODE64))?; // CS
    a.push(user_entry as i32)?; // RIP
    a.iretq()?;
    a.assemble(0)
}

/// The idle "workload": stay at CPL0 and `hlt` with interrupts off, as an idle kernel does. A
/// halted vCPU costs the host nothing (KVM blocks its thread in the kernel; a kick, a throttle
/// sleep or a stop still gets it out, and it halts again), where a CPL3 `pause` loop cost ~65%
/// of a host core: `pause` exits are handled inside KVM here and never reach a VMM that could
/// sleep on them, and CPL3 has no instruction that waits. Only the emulated `hlt` runs at CPL0,
/// once per wake-up. Marks the vCPU's workload as running, writes nothing else.
fn idle64() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    a.mov(rax, rdi)?;
    a.shl(rax, 6)?;
    a.mov(rsi, layout::STATUS_GPA + layout::STATUS_SLOT_BYTES)?;
    a.add(rax, rsi)?;
    a.mov(qword_ptr(rax + layout::SLOT_RUNNING_OFFSET as i32), 1)?;
    let mut halt = a.create_label();
    a.set_label(&mut halt)?;
    a.cli()?;
    a.hlt()?;
    a.jmp(halt)?;
    a.assemble(0)
}

fn workload(spec: &GuestSpec, ip: u64) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let slice_pages = spec.slice_pages();
    let slice_bytes = slice_pages * 4096;

    // rbx = status slot; rdi kept as the index.
    a.mov(rbx, rdi)?;
    a.shl(rbx, 6)?;
    a.mov(rax, layout::STATUS_GPA + layout::STATUS_SLOT_BYTES)?;
    a.add(rbx, rax)?;
    // r8 = slice base = WSS_BASE + index * slice_bytes.
    a.mov(r8, slice_bytes)?;
    a.imul_2(r8, rdi)?;
    a.mov(rax, layout::WSS_BASE_GPA)?;
    a.add(r8, rax)?;
    a.mov(r9, slice_pages)?;
    // Counters continue from memory (a migrated or restarted guest keeps its values).
    a.mov(
        r12,
        qword_ptr(rbx + layout::SLOT_PAGES_WRITTEN_OFFSET as i32),
    )?;
    a.mov(qword_ptr(rbx + layout::SLOT_RUNNING_OFFSET as i32), 1)?;
    // PRNG seed: distinct per vCPU, never zero.
    a.mov(r13, 0x9E37_79B9_7F4A_7C15u64)?;
    a.lea(rax, ptr(rdi + 1))?;
    a.imul_2(r13, rax)?;
    a.mov(rax, u64::from(spec.seed) | 1)?;
    a.xor(r13, rax)?;

    if let Pace::WallClock { writes_per_s } = spec.pace {
        // r15 = tsc_khz * 1000 / rate (tsc_khz is patched into the info block by a VMM that
        // knows it; under other VMMs the builder's measured value stands).
        a.mov(rsi, layout::INFO_GPA + super::INFO_TSC_KHZ_OFFSET)?;
        a.mov(rax, qword_ptr(rsi))?;
        a.imul_3(rax, rax, 1000)?;
        a.xor(edx, edx)?;
        a.mov(rsi, writes_per_s.max(1))?;
        a.div(rsi)?;
        let mut nonzero = a.create_label();
        a.test(rax, rax)?;
        a.jnz(nonzero)?;
        a.mov(eax, 1)?;
        a.set_label(&mut nonzero)?;
        a.mov(r15, rax)?;
        // r14 = now.
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(r14, rax)?;
    }

    let mut outer = a.create_label();
    let mut inner = a.create_label();
    a.set_label(&mut outer)?;
    a.xor(ecx, ecx)?;
    a.set_label(&mut inner)?;

    match spec.pattern {
        Pattern::Idle => {
            // Not reached through the trampoline (the image idles in `hlt` at CPL0, see
            // `idle64`); a VMM that starts vCPUs at CPL3 gets this: no memory writes, `pause`
            // in a loop, a "sweep" counted every 1024 of them.
            a.mov(r10, 1u64 << 10)?;
            let mut spin = a.create_label();
            a.set_label(&mut spin)?;
            a.pause()?;
            a.dec(r10)?;
            a.jnz(spin)?;
            a.mov(rcx, r9)?; // one pass of the loop is one sweep
        }
        Pattern::Sequential => {
            a.mov(rsi, rcx)?;
            a.shl(rsi, 12)?;
            a.add(rsi, r8)?;
            write_page(&mut a)?;
        }
        Pattern::Random => {
            xorshift(&mut a)?;
            a.mov(rax, r13)?;
            a.mul(r9)?; // rdx = r13 * pages >> 64: uniform index in [0, pages)
            a.mov(rsi, rdx)?;
            a.shl(rsi, 12)?;
            a.add(rsi, r8)?;
            write_page(&mut a)?;
        }
        Pattern::HotCold => {
            let (hot_pages, cold_pages, threshold) = spec.hot_split();
            xorshift(&mut a)?;
            let mut cold = a.create_label();
            let mut chosen = a.create_label();
            a.mov(eax, r13d)?;
            a.mov(r10, threshold)?;
            a.cmp(rax, r10)?;
            a.jae(cold)?;
            a.mov(rax, r13)?;
            a.mov(r10, hot_pages)?;
            a.mul(r10)?;
            a.mov(rsi, rdx)?;
            a.jmp(chosen)?;
            a.set_label(&mut cold)?;
            a.mov(rax, r13)?;
            a.mov(r10, cold_pages)?;
            a.mul(r10)?;
            a.lea(rsi, ptr(rdx + hot_pages as i32))?;
            a.set_label(&mut chosen)?;
            a.shl(rsi, 12)?;
            a.add(rsi, r8)?;
            write_page(&mut a)?;
        }
    }

    match spec.pace {
        Pace::None => {}
        Pace::CpuSpin {
            iterations_per_write,
        } => {
            a.mov(r10d, iterations_per_write.max(1))?;
            let mut spin = a.create_label();
            a.set_label(&mut spin)?;
            a.dec(r10d)?;
            a.jnz(spin)?;
        }
        Pace::WallClock { .. } => {
            // Next deadline; wait for it unless late (late writes go at once: catch-up). The
            // backlog is capped at about one second of writes so a long pause does not turn
            // into an unbounded burst.
            a.add(r14, r15)?;
            let mut wait = a.create_label();
            let mut done = a.create_label();
            let mut late = a.create_label();
            a.set_label(&mut wait)?;
            a.rdtsc()?;
            a.shl(rdx, 32)?;
            a.or(rax, rdx)?;
            a.cmp(rax, r14)?;
            a.jae(late)?;
            a.jmp(wait)?;
            a.set_label(&mut late)?;
            // rax = now; if now - deadline > tsc_hz: deadline = now - tsc_hz.
            a.mov(rdx, rax)?;
            a.sub(rdx, r14)?;
            a.mov(rsi, layout::INFO_GPA + super::INFO_TSC_KHZ_OFFSET)?;
            a.mov(r10, qword_ptr(rsi))?;
            a.imul_3(r10, r10, 1000)?;
            a.cmp(rdx, r10)?;
            a.jbe(done)?;
            a.sub(rax, r10)?;
            a.mov(r14, rax)?;
            a.set_label(&mut done)?;
        }
    }

    a.inc(rcx)?;
    a.cmp(rcx, r9)?;
    a.jb(inner)?;

    // End of a sweep: count it, and every `marker_every` sweeps write one marker to COM1.
    a.mov(rax, qword_ptr(rbx + layout::SLOT_SWEEPS_OFFSET as i32))?;
    a.inc(rax)?;
    a.mov(qword_ptr(rbx + layout::SLOT_SWEEPS_OFFSET as i32), rax)?;
    if spec.marker_every_sweeps > 0 {
        let mut no_marker = a.create_label();
        a.xor(edx, edx)?;
        a.mov(r10, u64::from(spec.marker_every_sweeps))?;
        a.div(r10)?;
        a.test(rdx, rdx)?;
        a.jnz(no_marker)?;
        a.mov(edx, 0x3f8)?;
        a.mov(al, i32::from(super::MARKER_BYTE))?;
        a.out(dx, al)?;
        a.set_label(&mut no_marker)?;
    }
    a.jmp(outer)?;
    a.assemble(ip)
}

/// `inc byte [rsi]`, then publish the write count.
fn write_page(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.inc(byte_ptr(rsi))?;
    a.inc(r12)?;
    a.mov(
        qword_ptr(rbx + layout::SLOT_PAGES_WRITTEN_OFFSET as i32),
        r12,
    )
}

/// xorshift64 step on r13.
fn xorshift(a: &mut CodeAssembler) -> Result<(), IcedError> {
    for (left, by) in [(true, 13), (false, 7), (true, 17)] {
        a.mov(rax, r13)?;
        if left {
            a.shl(rax, by)?;
        } else {
            a.shr(rax, by)?;
        }
        a.xor(r13, rax)?;
    }
    Ok(())
}
