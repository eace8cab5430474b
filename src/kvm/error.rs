//! Errors of the KVM backend. Each variant's doc comment is its message (displaydoc), so the
//! two cannot drift apart.

use std::io;

/// What can go wrong creating, loading or running a VM.
#[derive(Debug, displaydoc::Display)]
pub enum KvmError {
    /// cannot open /dev/kvm (is KVM available and are you allowed to use it?)
    OpenKvm(kvm_ioctls::Error),
    /// KVM does not offer {0}, which autoconv needs
    MissingCapability(&'static str),
    /// KVM {op} failed
    Ioctl {
        /// What was attempted (the ioctl's name).
        op: &'static str,
        /// The kernel's answer.
        source: kvm_ioctls::Error,
    },
    /// cannot map {bytes} bytes of guest memory
    GuestMemory {
        /// Requested size.
        bytes: u64,
        /// Why.
        source: vm_memory::mmap::FromRangesError,
    },
    /// guest memory of {0} bytes: it must be a whole number of 2 MiB, from 8 MiB to 1 TiB
    MemorySize(u64),
    /// {0} vCPUs: autoconv runs 1 to 32
    VcpuCount(u32),
    /// {0}
    Image(ImageError),
    /// cannot start the {thread} thread
    Thread {
        /// Which thread (vCPU, throttle timer, DMA device, dirty-limit, destination).
        thread: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// the vCPU state is malformed: {0}
    BadState(String),
    /// vCPU {index} stopped: {reason}
    VcpuFailed {
        /// Which vCPU.
        index: u32,
        /// Why.
        reason: String,
    },
    /// dirty logging: {0}
    DirtyLog(String),
}

// By hand rather than derived: an image error is shown as itself, its cause next (as
// thiserror's `transparent` does), which a derive cannot say beside displaydoc's messages.
impl std::error::Error for KvmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KvmError::OpenKvm(e) => Some(e),
            KvmError::Ioctl { source, .. } => Some(source),
            KvmError::GuestMemory { source, .. } => Some(source),
            KvmError::Image(e) => e.source(),
            KvmError::Thread { source, .. } => Some(source),
            KvmError::MissingCapability(_)
            | KvmError::MemorySize(_)
            | KvmError::VcpuCount(_)
            | KvmError::BadState(_)
            | KvmError::VcpuFailed { .. }
            | KvmError::DirtyLog(_) => None,
        }
    }
}

impl From<ImageError> for KvmError {
    fn from(e: ImageError) -> Self {
        KvmError::Image(e)
    }
}

impl KvmError {
    pub(crate) fn thread(thread: &'static str) -> impl FnOnce(io::Error) -> KvmError {
        move |source| KvmError::Thread { thread, source }
    }

    pub(crate) fn ioctl(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
        move |source| KvmError::Ioctl { op, source }
    }
}

/// Why an image was refused (always before any VM is created).
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum ImageError {
    /// cannot read {path}
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// not a multiboot v1 kernel: no multiboot header (magic 0x1BADB002 with a valid checksum) in its first 8 KiB
    NoMultibootHeader,
    /// the kernel asks for {0}, which autoconv does not provide (only memory, the CPU and COM1)
    UnsupportedFeature(&'static str),
    /// a 64-bit ELF is not a multiboot v1 kernel (give a 32-bit ELF, as QEMU's -kernel also wants)
    Elf64,
    /// corrupt or truncated ELF: {0}
    BadElf(String),
    /// corrupt multiboot header addresses: {0}
    BadAoutKludge(String),
    /// the image needs guest memory up to {needed_bytes} bytes but the guest has {mem_bytes}: give it more with --mem, or build a smaller working set
    TooLarge {
        /// End of the highest byte the image (or its workload) uses.
        needed_bytes: u64,
        /// Guest memory.
        mem_bytes: u64,
    },
    /// a segment at {gpa:#x}..{end:#x} overlaps the boot stack and multiboot information area {area_start:#x}..{area_end:#x}
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
    /// the image was built for {image} vCPU(s) but --vcpus is {asked}
    VcpuMismatch {
        /// vCPUs in the image.
        image: u32,
        /// vCPUs asked for.
        asked: u32,
    },
}
