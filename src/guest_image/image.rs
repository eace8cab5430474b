//! The image writer: a 32-bit multiboot v1 ELF with one loadable segment holding the
//! multiboot header, the info block, the status page, the workload's code, GDT and page tables.

use super::asm;
use super::info::{put32, put64, InfoBlock, INFO_BYTES};
use super::layout;
use super::spec::{GuestSpec, GuestSpecError};

/// Multiboot v1 header magic.
pub const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;

/// Build the image: a 32-bit ELF (as QEMU's multiboot loader wants) with one loadable segment at
/// [`layout::LOAD_GPA`] holding the multiboot header, info block, status page, code, GDT and
/// page tables.
pub fn build_image(spec: &GuestSpec) -> Result<Vec<u8>, GuestSpecError> {
    spec.validate()?;
    let code = asm::generate(spec).map_err(GuestSpecError::Assemble)?;
    if code.bytes.len() as u64 > layout::CODE_MAX_BYTES {
        return Err(GuestSpecError::Assemble(format!(
            "{} bytes of code do not fit in {}",
            code.bytes.len(),
            layout::CODE_MAX_BYTES
        )));
    }
    let mapped_bytes = spec.mapped_bytes();
    let gib = mapped_bytes >> 30;
    let seg_len = (layout::PD_GPA - layout::LOAD_GPA + gib * 4096) as usize;
    let mut seg = vec![0u8; seg_len];
    let at = |gpa: u64| (gpa - layout::LOAD_GPA) as usize;

    // Multiboot v1 header: no flags needed (the ELF headers say where to load).
    let flags: u32 = 0;
    put32(&mut seg, 0, MULTIBOOT_MAGIC);
    put32(&mut seg, 4, flags);
    put32(
        &mut seg,
        8,
        0u32.wrapping_sub(MULTIBOOT_MAGIC.wrapping_add(flags)),
    );

    let info = InfoBlock {
        vcpus: spec.vcpus,
        pattern: spec.pattern,
        pace: spec.pace,
        wss_bytes: spec.slice_pages() * 4096 * u64::from(spec.vcpus),
        wss_base_gpa: layout::WSS_BASE_GPA,
        hot: spec.hot,
        marker_every_sweeps: spec.marker_every_sweeps,
        tsc_khz: spec.tsc_khz,
        user_entry: code.user_entry,
        trampoline: code.trampoline,
        mapped_bytes,
        status_gpa: layout::STATUS_GPA,
    };
    seg[at(layout::INFO_GPA)..at(layout::INFO_GPA) + INFO_BYTES]
        .copy_from_slice(&info.encode(spec.seed));

    // lgdt operand (32-bit form: limit, base).
    let g = at(layout::GDT_PTR_GPA);
    seg[g..g + 2].copy_from_slice(&((layout::GDT_BYTES - 1) as u16).to_le_bytes());
    put32(&mut seg, g + 2, layout::GDT_GPA as u32);

    let c = at(layout::CODE_GPA);
    seg[c..c + code.bytes.len()].copy_from_slice(&code.bytes);

    let g = at(layout::GDT_GPA);
    for (i, e) in layout::GDT_ENTRIES.iter().enumerate() {
        put64(&mut seg, g + 8 * i, *e);
    }
    let (lo, hi) = tss_descriptor(layout::TSS_GPA, layout::TSS_LIMIT);
    put64(&mut seg, g + 48, lo);
    put64(&mut seg, g + 56, hi);
    // TSS: an all-zero I/O bitmap (every port allowed) ended by 0xff.
    put32(
        &mut seg,
        at(layout::TSS_GPA) + 0x64,
        layout::TSS_IOMAP_OFFSET << 16,
    );
    seg[at(layout::TSS_GPA) + layout::TSS_LIMIT as usize] = 0xff;

    // Identity map [0, mapped_bytes) with 2 MiB user pages.
    put64(
        &mut seg,
        at(layout::PML4_GPA),
        layout::PDPT_GPA | layout::PTE_PRESENT_RW_USER,
    );
    for i in 0..gib {
        let pd = layout::PD_GPA + i * 4096;
        put64(
            &mut seg,
            at(layout::PDPT_GPA) + 8 * i as usize,
            pd | layout::PTE_PRESENT_RW_USER,
        );
        for j in 0..512u64 {
            let gpa = (i << 30) | (j << 21);
            put64(
                &mut seg,
                at(pd) + 8 * j as usize,
                gpa | layout::PTE_PRESENT_RW_USER | layout::PDE_LARGE,
            );
        }
    }

    Ok(elf32(
        &seg,
        layout::LOAD_GPA as u32,
        layout::CODE_GPA as u32,
    ))
}

/// A 64-bit TSS descriptor (two GDT slots), type 9 (available).
pub fn tss_descriptor(base: u64, limit: u32) -> (u64, u64) {
    let lo = u64::from(limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89u64 << 40)
        | (u64::from(limit >> 16 & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    (lo, base >> 32)
}

/// Offset of the segment in the ELF file (the multiboot header must be in the first 8 KiB).
const ELF_SEGMENT_OFFSET: usize = 0x1000;

fn elf32(segment: &[u8], paddr: u32, entry: u32) -> Vec<u8> {
    let mut f = vec![0u8; ELF_SEGMENT_OFFSET];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 1; // ELFCLASS32
    f[5] = 1; // little endian
    f[6] = 1; // EV_CURRENT
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..28].copy_from_slice(&entry.to_le_bytes());
    f[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
    f[40..42].copy_from_slice(&52u16.to_le_bytes()); // e_ehsize
    f[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
    f[44..46].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    f[46..48].copy_from_slice(&40u16.to_le_bytes()); // e_shentsize
    let ph = 52;
    let len = segment.len() as u32;
    f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f[ph + 4..ph + 8].copy_from_slice(&(ELF_SEGMENT_OFFSET as u32).to_le_bytes());
    f[ph + 8..ph + 12].copy_from_slice(&paddr.to_le_bytes()); // vaddr
    f[ph + 12..ph + 16].copy_from_slice(&paddr.to_le_bytes()); // paddr
    f[ph + 16..ph + 20].copy_from_slice(&len.to_le_bytes());
    f[ph + 20..ph + 24].copy_from_slice(&len.to_le_bytes());
    f[ph + 24..ph + 28].copy_from_slice(&7u32.to_le_bytes()); // RWX
    f[ph + 28..ph + 32].copy_from_slice(&0x1000u32.to_le_bytes());
    f.extend_from_slice(segment);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_image::info::get32;
    use crate::guest_image::{HotSpec, Pace, Pattern};

    #[test]
    fn image_is_a_32bit_multiboot_elf_with_a_readable_info_block() {
        let spec = GuestSpec {
            wss_bytes: 64 << 20,
            vcpus: 2,
            tsc_khz: 2_000_000,
            ..GuestSpec::default()
        };
        let img = build_image(&spec).unwrap();
        assert_eq!(&img[0..4], b"\x7fELF");
        assert_eq!(img[4], 1, "ELFCLASS32: QEMU's multiboot refuses 64-bit ELF");
        let mb = &img[ELF_SEGMENT_OFFSET..];
        assert_eq!(get32(mb, 0), MULTIBOOT_MAGIC);
        assert_eq!(
            get32(mb, 0)
                .wrapping_add(get32(mb, 4))
                .wrapping_add(get32(mb, 8)),
            0
        );
        let info = InfoBlock::decode(&mb[0x40..]).unwrap();
        assert_eq!(info.vcpus, 2);
        assert_eq!(info.wss_bytes, 64 << 20);
        assert_eq!(info.tsc_khz, 2_000_000);
        assert_eq!(info.mapped_bytes, 1 << 30);
        assert!(info.user_entry > layout::CODE_GPA);
    }

    #[test]
    fn every_pattern_and_pace_assembles() {
        for pattern in [
            Pattern::Sequential,
            Pattern::Random,
            Pattern::HotCold,
            Pattern::Idle,
        ] {
            for pace in [
                Pace::None,
                Pace::CpuSpin {
                    iterations_per_write: 100,
                },
                Pace::WallClock { writes_per_s: 1000 },
            ] {
                let spec = GuestSpec {
                    pattern,
                    pace,
                    wss_bytes: 8 << 20,
                    ..GuestSpec::default()
                };
                let img = build_image(&spec).unwrap();
                let info = InfoBlock::decode(&img[ELF_SEGMENT_OFFSET + 0x40..]).unwrap();
                assert_eq!((info.pattern, info.pace), (pattern, pace));
            }
        }
    }

    #[test]
    fn options_parse_and_refuse() {
        assert_eq!(
            "cpu:2000".parse::<Pace>().unwrap(),
            Pace::CpuSpin {
                iterations_per_write: 2000
            }
        );
        assert_eq!(
            "wall:50000".parse::<Pace>().unwrap(),
            Pace::WallClock {
                writes_per_s: 50000
            }
        );
        assert!("wall:0".parse::<Pace>().is_err());
        assert!("fast".parse::<Pace>().is_err());
        assert_eq!(
            "10%:90%".parse::<HotSpec>().unwrap(),
            HotSpec {
                hot_wss_pct: 10,
                hot_write_pct: 90
            }
        );
        assert!("10:100".parse::<HotSpec>().is_err());
        assert!("zigzag".parse::<Pattern>().is_err());
        let bad = GuestSpec {
            vcpus: 0,
            ..GuestSpec::default()
        };
        assert!(matches!(build_image(&bad), Err(GuestSpecError::Vcpus(0))));
        let bad = GuestSpec {
            wss_bytes: 1000,
            ..GuestSpec::default()
        };
        assert!(matches!(build_image(&bad), Err(GuestSpecError::Wss(1000))));
    }
}
