//! Where things live in an autoconv guest image and in the guest's memory.
//!
//! Every address here is a guest-physical address, identity-mapped by the image's own page
//! tables. These are part of the image format: the host reads the progress counters at
//! [`STATUS_GPA`] without any exit, and the KVM backend's fast path starts vCPUs at
//! [`InfoBlock::user_entry`](super::InfoBlock) using the GDT and page tables below.
//!
//! ```text
//! 0x0010_0000  header page: multiboot v1 header (offset 0), autoconv info block (offset 0x40),
//!              32-bit GDT pointer (offset 0x100), boot stack top (end of page)
//! 0x0010_1000  status page: 64-byte header, then one 64-byte slot per vCPU:
//!              +0 sweeps (u64), +8 pages written (u64), +16 running flag (u64)
//! 0x0010_2000  code: 32-bit multiboot entry, 64-bit CPL0 trampoline, CPL3 workload
//! 0x0010_4000  GDT (null, kcode64, kdata, ucode32, udata, ucode64, TSS), TSS at +0x100
//! 0x0010_5000  PML4, 0x0010_6000 PDPT, 0x0010_7000.. one page directory per GiB mapped
//! 0x0040_0000  the workload's working set (4 MiB up), split evenly between vCPUs
//! ```

/// Where the image's single loadable segment starts (1 MiB, as multiboot kernels do).
pub const LOAD_GPA: u64 = 0x10_0000;
/// The multiboot v1 header, at the start of the segment.
pub const MULTIBOOT_HEADER_GPA: u64 = LOAD_GPA;
/// The autoconv info block (see [`super::InfoBlock`]).
pub const INFO_GPA: u64 = LOAD_GPA + 0x40;
/// The 6-byte pseudo-descriptor the 32-bit entry loads with `lgdt`.
pub const GDT_PTR_GPA: u64 = LOAD_GPA + 0x100;
/// Top of the tiny stack the CPL0 trampoline of vCPU 0 uses for its `iretq` frame; vCPU i uses
/// [`boot_stack_top`]`(i)`, 64 bytes lower per vCPU.
pub const BOOT_STACK_TOP_GPA: u64 = LOAD_GPA + 0x1000 - 0x10;

/// Boot stack of vCPU `index` (only the trampoline's five-word `iretq` frame lives there).
pub fn boot_stack_top(index: u32) -> u64 {
    BOOT_STACK_TOP_GPA - 64 * u64::from(index)
}
/// The status page: progress counters the host reads without exits.
pub const STATUS_GPA: u64 = LOAD_GPA + 0x1000;
/// Bytes per vCPU slot in the status page (one cache line: vCPUs never share a line).
pub const STATUS_SLOT_BYTES: u64 = 64;
/// Offset of a vCPU's sweep counter in its slot.
pub const SLOT_SWEEPS_OFFSET: u64 = 0;
/// Offset of a vCPU's pages-written counter in its slot.
pub const SLOT_PAGES_WRITTEN_OFFSET: u64 = 8;
/// Offset of a vCPU's "workload running" flag in its slot.
pub const SLOT_RUNNING_OFFSET: u64 = 16;
/// First instruction of the image (32-bit multiboot entry).
pub const CODE_GPA: u64 = LOAD_GPA + 0x2000;
/// Room for code.
pub const CODE_MAX_BYTES: u64 = 0x2000;
/// The GDT.
pub const GDT_GPA: u64 = LOAD_GPA + 0x4000;
/// The 64-bit TSS (present so a fast-path start has a valid task register).
pub const TSS_GPA: u64 = GDT_GPA + 0x100;
/// Page-map level 4.
pub const PML4_GPA: u64 = LOAD_GPA + 0x5000;
/// The one page-directory-pointer table.
pub const PDPT_GPA: u64 = LOAD_GPA + 0x6000;
/// First page directory (2 MiB pages).
pub const PD_GPA: u64 = LOAD_GPA + 0x7000;
/// The working set starts here, as in QEMU's own auto-converge test guests.
pub const WSS_BASE_GPA: u64 = 4 << 20;
/// The page directories must end below the working set.
pub const MAX_MAPPED_GIB: u64 = (WSS_BASE_GPA - PD_GPA) / 4096;

/// Selectors of the image's GDT.
pub mod selectors {
    /// 64-bit kernel code.
    pub const KERNEL_CODE64: u16 = 0x08;
    /// Kernel data.
    pub const KERNEL_DATA: u16 = 0x10;
    /// User data, RPL 3.
    pub const USER_DATA: u16 = 0x20 | 3;
    /// 64-bit user code, RPL 3.
    pub const USER_CODE64: u16 = 0x28 | 3;
    /// The TSS.
    pub const TSS: u16 = 0x30;
}

/// GDT entries, in selector order (the TSS takes the last two).
pub const GDT_ENTRIES: [u64; 6] = [
    0,
    0x00AF_9A00_0000_FFFF, // kernel code: 64-bit, DPL 0
    0x00CF_9200_0000_FFFF, // kernel data
    0x00CF_FA00_0000_FFFF, // user code 32-bit (unused, keeps the SYSRET-style order)
    0x00CF_F200_0000_FFFF, // user data, DPL 3
    0x00AF_FA00_0000_FFFF, // user code: 64-bit, DPL 3
];
/// The TSS's I/O permission bitmap starts right after its 0x68 bytes and covers ports
/// 0..1024, all allowed, then the terminating 0xff byte. (These hosts check the bitmap even
/// with IOPL 3, so `out` to COM1 at CPL3 needs it.)
pub const TSS_IOMAP_OFFSET: u32 = 0x68;
/// Last byte of the TSS, I/O bitmap and terminator included.
pub const TSS_LIMIT: u32 = TSS_IOMAP_OFFSET + 1024 / 8;
/// Bytes of the GDT (6 entries + a 16-byte TSS descriptor).
pub const GDT_BYTES: u64 = 8 * 6 + 16;

/// RFLAGS for the workload: IF clear, IOPL 3 (so `out` to COM1 works at CPL3), bit 1 set.
pub const USER_RFLAGS: u64 = 0x3002;
/// CR0: PE, MP, ET, NE, WP, PG.
pub const CR0: u64 = 0x8001_0033;
/// CR4: PAE, OSFXSR, OSXMMEXCPT.
pub const CR4: u64 = 0x620;
/// EFER: LME and LMA.
pub const EFER: u64 = 0x500;
/// Page-table entry flags: present, writable, user. Page directory entries add PS (2 MiB).
pub const PTE_PRESENT_RW_USER: u64 = 0x7;
/// A 2 MiB page.
pub const PDE_LARGE: u64 = 0x80;

/// The status slot of vCPU `index`.
pub fn status_slot_gpa(index: u32) -> u64 {
    STATUS_GPA + STATUS_SLOT_BYTES * (u64::from(index) + 1)
}

/// Most vCPUs an image supports (slots in the status page; kept modest on purpose).
pub const MAX_VCPUS: u32 = 32;
