//! Errors of the KVM backend. Each variant's doc comment is its message.

use std::io;

/// What can go wrong creating, loading or running a VM.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// cannot open /dev/kvm
    #[error("cannot open /dev/kvm (is KVM available and are you allowed to use it?)")]
    OpenKvm(#[source] kvm_ioctls::Error),
    /// KVM lacks a capability autoconv needs
    #[error("KVM does not offer {0}, which autoconv needs")]
    MissingCapability(&'static str),
    /// A KVM ioctl failed.
    #[error("KVM {op} failed")]
    Ioctl {
        /// What was attempted (the ioctl's name).
        op: &'static str,
        /// The kernel's answer.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// guest memory could not be mapped
    #[error("cannot map {bytes} bytes of guest memory")]
    GuestMemory {
        /// Requested size.
        bytes: u64,
        /// Why.
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    /// bad memory size
    #[error("guest memory of {0} bytes: it must be a whole number of 2 MiB, from 8 MiB to 1 TiB")]
    MemorySize(u64),
    /// bad vCPU count
    #[error("{0} vCPUs: autoconv runs 1 to 32")]
    VcpuCount(u32),
    /// The image cannot be used.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A vCPU thread could not be started.
    #[error("cannot start a vCPU thread")]
    Thread(#[source] io::Error),
    /// Saved vCPU state could not be read back.
    #[error("the vCPU state is malformed: {0}")]
    BadState(String),
    /// A vCPU stopped with an error.
    #[error("vCPU {index} stopped: {reason}")]
    VcpuFailed {
        /// Which vCPU.
        index: u32,
        /// Why.
        reason: String,
    },
    /// The dirty ring is full and the ring mode cannot go on.
    #[error("dirty logging: {0}")]
    DirtyLog(String),
}

impl KvmError {
    pub(crate) fn ioctl(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
        move |source| KvmError::Ioctl { op, source }
    }
}

/// Why an image was refused (always before any VM is created).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// cannot read the image file
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// no multiboot header
    #[error(
        "not a multiboot v1 kernel: no multiboot header (magic 0x1BADB002 with a valid checksum) in its first 8 KiB"
    )]
    NoMultibootHeader,
    /// the kernel needs something autoconv does not provide
    #[error(
        "the kernel asks for {0}, which autoconv does not provide (only memory, the CPU and COM1)"
    )]
    UnsupportedFeature(&'static str),
    /// the kernel is a 64-bit ELF
    #[error("a 64-bit ELF is not a multiboot v1 kernel (give a 32-bit ELF, as QEMU's -kernel also wants)")]
    Elf64,
    /// the ELF is corrupt or truncated
    #[error("corrupt or truncated ELF: {0}")]
    BadElf(String),
    /// the a.out-kludge addresses are inconsistent
    #[error("corrupt multiboot header addresses: {0}")]
    BadAoutKludge(String),
    /// the image does not fit in guest memory
    #[error(
        "the image needs guest memory up to {needed_bytes} bytes but the guest has {mem_bytes}: give it more with --mem, or build a smaller working set"
    )]
    TooLarge {
        /// End of the highest byte the image (or its workload) uses.
        needed_bytes: u64,
        /// Guest memory.
        mem_bytes: u64,
    },
    /// the image's loadable parts overlap memory autoconv uses for boot information
    #[error("a segment at {gpa:#x}..{end:#x} overlaps the boot stack and multiboot information area {area_start:#x}..{area_end:#x}")]
    Overlap {
        /// Segment start.
        gpa: u64,
        /// Segment end.
        end: u64,
        /// Reserved area start.
        area_start: u64,
        /// Reserved area end.
        area_end: u64,
    },
    /// the image was built for more vCPUs than the VM has, or the reverse
    #[error("the image was built for {image} vCPU(s) but --vcpus is {asked}")]
    VcpuMismatch {
        /// vCPUs in the image.
        image: u32,
        /// vCPUs asked for.
        asked: u32,
    },
}
