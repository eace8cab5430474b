//! Fuzz target: the multiboot v1 loader (header search, a.out kludge, ELF32, autoconv's info
//! block), seeded with autoconv's own images, a foreign a.out-kludge kernel and the
//! long-mode CPL3 fixture kernel (an ELF, built by /work/shared/fixtures/longmode-cpl3).

use std::path::Path;

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Features, Target};
use crate::guest_image::{build_image, GuestSpec, Pace, Pattern};
use crate::kvm::loader::LoadPlan;

const MAGIC: u32 = 0x1BAD_B002;
/// Guest memory the images are checked against.
const MEM_BYTES: u64 = 64 << 20;

/// The multiboot loader.
pub struct Multiboot {
    seeds: Vec<Vec<u8>>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn header_offset(b: &[u8]) -> Option<usize> {
    (0..b.len().min(8192).saturating_sub(11))
        .step_by(4)
        .find(|&o| u32_at(b, o) == Some(MAGIC))
}

/// A foreign multiboot kernel with the a.out kludge: loads itself at 1 MiB and halts.
fn aout_kernel() -> Vec<u8> {
    let load = 0x10_0000u32;
    let flags = 1u32 << 16;
    let mut k = Vec::new();
    for v in [
        MAGIC,
        flags,
        0u32.wrapping_sub(MAGIC.wrapping_add(flags)),
        load,
        load,
        0,
        0,
        load + 32,
    ] {
        k.extend_from_slice(&v.to_le_bytes());
    }
    k.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]); // cli; hlt; jmp $-1
    k
}

impl Multiboot {
    /// Seeds from autoconv's image builder, the a.out kernel above and
    /// `root/fuzz/seeds/longmode-cpl3.elf` (plus that ELF with the kludge flag cleared, so the
    /// ELF path is seeded too).
    pub fn new(root: &Path) -> Multiboot {
        let mut seeds = Vec::new();
        for (pattern, vcpus) in [
            (Pattern::Sequential, 1),
            (Pattern::Random, 2),
            (Pattern::Idle, 1),
        ] {
            let spec = GuestSpec {
                pattern,
                vcpus,
                wss_bytes: 1 << 20,
                pace: Pace::None,
                ..GuestSpec::default()
            };
            if let Ok(img) = build_image(&spec) {
                seeds.push(img);
            }
        }
        seeds.push(aout_kernel());
        if let Ok(elf) = std::fs::read(root.join("fuzz/seeds/longmode-cpl3.elf")) {
            let mut no_kludge = elf.clone();
            if let Some(o) = header_offset(&no_kludge) {
                let flags = u32_at(&no_kludge, o + 4).unwrap_or(0) & !(1 << 16);
                put_u32(&mut no_kludge, o + 4, flags);
                put_u32(
                    &mut no_kludge,
                    o + 8,
                    0u32.wrapping_sub(MAGIC.wrapping_add(flags)),
                );
            }
            seeds.push(elf);
            seeds.push(no_kludge);
        }
        Multiboot { seeds }
    }
}

const VALUES: [u32; 10] = [
    0,
    1,
    0x1000,
    0x10_0000,
    0x40_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_f000,
    0xffff_ffff,
    64 << 20,
];

impl Target for Multiboot {
    fn name(&self) -> &'static str {
        "multiboot"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn max_len(&self) -> usize {
        1 << 17
    }

    fn run(&mut self, input: &[u8], f: &mut Features) {
        match LoadPlan::parse(input.to_vec(), MEM_BYTES) {
            Ok(plan) => {
                f.add("loaded");
                f.add(&format!("segments {}", plan.segments.len().min(8)));
                f.add(&format!("info {}", plan.info.is_some()));
                // What the VMM then relies on: every segment inside guest memory.
                for s in &plan.segments {
                    assert!(s.end_gpa() <= MEM_BYTES, "segment beyond memory: {s:?}");
                    assert!(
                        s.file_range.start <= s.file_range.end
                            && s.file_range.end <= plan.bytes.len(),
                        "segment beyond the file: {s:?}"
                    );
                }
                if let Some(info) = &plan.info {
                    f.add(&format!("info vcpus {}", info.vcpus.min(8)));
                }
            }
            Err(e) => f.error("load", &e.to_string(), ""),
        }
    }

    fn mutate(&self, input: &mut Vec<u8>, rng: &mut ChaCha8Rng) -> bool {
        let elf = input.starts_with(b"\x7fELF");
        let choice = rng.next_u64() % if elf { 3 } else { 2 };
        let value = |rng: &mut ChaCha8Rng, old: u32| match rng.next_u64() % 3 {
            0 => VALUES[(rng.next_u64() % VALUES.len() as u64) as usize],
            1 => old
                .wrapping_add((rng.next_u64() % 9) as u32)
                .wrapping_sub(4),
            _ => rng.next_u64() as u32,
        };
        if choice < 2 {
            // A multiboot header field, the checksum kept right so the header is still found.
            let Some(o) = header_offset(input) else {
                return false;
            };
            let field = 1 + (rng.next_u64() % 7) as usize;
            let at = o + 4 * field;
            let Some(old) = u32_at(input, at) else {
                return false;
            };
            let v = if field == 1 {
                old ^ (1 << (rng.next_u64() % 32))
            } else {
                value(rng, old)
            };
            put_u32(input, at, v);
            if choice == 0 || field == 1 {
                let flags = u32_at(input, o + 4).unwrap_or(0);
                put_u32(input, o + 8, 0u32.wrapping_sub(MAGIC.wrapping_add(flags)));
            }
            true
        } else {
            // An ELF32 header or program header field.
            let phoff = u32_at(input, 0x1c).unwrap_or(0) as usize;
            let fields = [
                0x18usize,
                0x1c,
                0x2a,
                0x2c,
                phoff,
                phoff + 4,
                phoff + 8,
                phoff + 16,
                phoff + 20,
            ];
            let at = fields[(rng.next_u64() % fields.len() as u64) as usize];
            let Some(old) = u32_at(input, at) else {
                return false;
            };
            if at == 0x2a || at == 0x2c {
                let v = (value(rng, old) & 0xffff) as u16;
                input[at..at + 2].copy_from_slice(&v.to_le_bytes());
            } else {
                put_u32(input, at, value(rng, old));
            }
            true
        }
    }
}
