//! `autoconv guest build`: workload guests as multiboot v1 ELF images, written without any
//! external toolchain.
//!
//! The same file boots under `qemu-system-x86_64 -enable-kvm -m 512 -kernel guest.img` and under
//! `autoconv run --kvm guest.img`. The workload runs in 64-bit long mode at CPL3 (guest code at
//! CPL0 is emulated ~1000x slower on this project's hosts), writes pages in a chosen pattern and
//! pace, counts its progress in guest memory ([`layout::STATUS_GPA`]) and writes one marker byte
//! to COM1 every `marker_every_sweeps` sweeps.

//!
//! * [`spec`]: the workload's options and their checks.
//! * [`info`]: the info block an image carries, which the VMM reads back.
//! * [`image`]: the multiboot ELF writer.
//! * [`tsc`]: the host's TSC frequency, baked into images for wall-clock pacing.

mod asm;
pub mod image;
pub mod info;
pub mod layout;
pub mod spec;
pub mod tsc;

pub use image::{build_image, tss_descriptor, MULTIBOOT_MAGIC};
pub use info::{InfoBlock, INFO_MAGIC, INFO_TSC_KHZ_OFFSET};
pub use spec::{GuestSpec, GuestSpecError, HotSpec, Pace, Pattern, MARKER_BYTE};
pub use tsc::measure_tsc_khz;
