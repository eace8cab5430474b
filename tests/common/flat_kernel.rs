//! Foreign multiboot kernels assembled in the test: what autoconv must boot and migrate
//! although it did not build them.

/// A flat multiboot kernel (a.out kludge) at 1 MiB made of `code` (32-bit).
pub fn build(code: impl FnOnce(&mut iced_x86::code_asm::CodeAssembler)) -> Vec<u8> {
    let load = 0x10_0000u32;
    let mut a = iced_x86::code_asm::CodeAssembler::new(32).unwrap();
    code(&mut a);
    let code = a.assemble(u64::from(load) + 32).unwrap();
    let flags = 1u32 << 16;
    let mut k = Vec::new();
    for v in [
        0x1BAD_B002u32,
        flags,
        0u32.wrapping_sub(0x1BAD_B002u32.wrapping_add(flags)),
        load,      // header_addr
        load,      // load_addr
        0,         // load_end_addr: whole file
        0,         // bss_end_addr: none
        load + 32, // entry
    ] {
        k.extend_from_slice(&v.to_le_bytes());
    }
    k.extend_from_slice(&code);
    k
}

/// `cli`, then `hlt` for ever: the end of a kernel that has done its work.
pub fn halt_forever(a: &mut iced_x86::code_asm::CodeAssembler) {
    a.cli().unwrap();
    let mut halt = a.create_label();
    a.set_label(&mut halt).unwrap();
    a.hlt().unwrap();
    a.jmp(halt).unwrap();
}
