//! Multiboot v1 loading, checked entirely before any VM exists.
//!
//! [`LoadPlan::parse`] reads a kernel file (ELF32 or the a.out kludge), checks everything a
//! corrupt, truncated, foreign or too-large image could get wrong, and returns what to copy
//! where. Nothing here touches KVM.

use super::error::ImageError;
use crate::guest_image::{layout, InfoBlock, MULTIBOOT_MAGIC};

/// Where autoconv puts the multiboot information structure and memory map for the kernel.
pub const MBI_GPA: u64 = 0x9000;
/// End of the area reserved for it.
pub const MBI_END_GPA: u64 = 0xA000;
/// The stack a multiboot kernel starts on: [BOOT_STACK_GPA, MBI_GPA), ESP = [`MBI_GPA`].
/// The multiboot spec leaves ESP undefined, but kernels run under QEMU (whose option ROM
/// leaves ESP on the BIOS stack in low memory) may push before setting their own: with ESP = 0
/// the first 64-bit push faults at 0xffff_ffff_ffff_fff8 and, with no IDT, triple-faults.
pub const BOOT_STACK_GPA: u64 = 0x8000;
/// EAX at a multiboot kernel's entry.
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// How far into the file the multiboot header may be.
const HEADER_SEARCH_BYTES: usize = 8192;
/// Largest image file read (anything bigger is not one of the kernels autoconv runs).
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// One piece of the image to place in guest memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub gpa: u64,
    /// Byte range in the file to copy there.
    pub file_range: std::ops::Range<usize>,
    /// Zero bytes after the copied ones (bss).
    pub zero_bytes: u64,
}

impl Segment {
    /// End of the segment in guest memory.
    pub fn end_gpa(&self) -> u64 {
        self.gpa + self.file_range.len() as u64 + self.zero_bytes
    }
}

/// A checked image, ready to be placed in memory.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// What goes where.
    pub segments: Vec<Segment>,
    /// The 32-bit entry point.
    pub entry: u32,
    /// The autoconv info block, if this is an autoconv workload image.
    pub info: Option<InfoBlock>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
}

impl LoadPlan {
    /// Read and check an image file.
    pub fn from_file(path: &std::path::Path, mem_bytes: u64) -> Result<LoadPlan, ImageError> {
        let read_err = |source| ImageError::Read {
            path: path.display().to_string(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_IMAGE_BYTES.min(mem_bytes) {
            return Err(ImageError::TooLarge {
                needed_bytes: len,
                mem_bytes,
            });
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        Self::parse(bytes, mem_bytes)
    }

    /// Check an image given as bytes.
    pub fn parse(bytes: Vec<u8>, mem_bytes: u64) -> Result<LoadPlan, ImageError> {
        let (hdr_off, flags) = find_header(&bytes).ok_or(ImageError::NoMultibootHeader)?;
        // Bits 0-15 are requirements: 0 (page-aligned modules: there are none) and 1 (memory
        // information: given) are fine; 2 asks for a video mode, the rest are unknown.
        if flags & (1 << 2) != 0 {
            return Err(ImageError::UnsupportedFeature(
                "a video mode (multiboot flag 2)",
            ));
        }
        if flags & 0xfff8 != 0 {
            return Err(ImageError::UnsupportedFeature(
                "unknown required features (multiboot flags 3-15)",
            ));
        }
        let (segments, entry) = if flags & (1 << 16) != 0 {
            parse_aout_kludge(&bytes, hdr_off)?
        } else {
            parse_elf32(&bytes)?
        };
        let mut needed = 0u64;
        for s in &segments {
            let end = s.end_gpa();
            if s.gpa < MBI_END_GPA && end > BOOT_STACK_GPA {
                return Err(ImageError::Overlap {
                    gpa: s.gpa,
                    end,
                    area_start: BOOT_STACK_GPA,
                    area_end: MBI_END_GPA,
                });
            }
            needed = needed.max(end);
        }
        let info = info_block(&bytes, &segments);
        if let Some(info) = &info {
            needed = needed.max(info.min_mem_bytes());
        }
        if needed > mem_bytes {
            return Err(ImageError::TooLarge {
                needed_bytes: needed,
                mem_bytes,
            });
        }
        if !segments
            .iter()
            .any(|s| (s.gpa..s.end_gpa()).contains(&u64::from(entry)))
        {
            return Err(ImageError::BadElf(format!(
                "entry point {entry:#x} is outside every loaded segment"
            )));
        }
        Ok(LoadPlan {
            bytes,
            segments,
            entry,
            info,
        })
    }
}

fn find_header(bytes: &[u8]) -> Option<(usize, u32)> {
    let limit = bytes.len().min(HEADER_SEARCH_BYTES);
    (0..limit.saturating_sub(11)).step_by(4).find_map(|off| {
        let magic = u32_at(bytes, off)?;
        let flags = u32_at(bytes, off + 4)?;
        let sum = u32_at(bytes, off + 8)?;
        (magic == MULTIBOOT_MAGIC && magic.wrapping_add(flags).wrapping_add(sum) == 0)
            .then_some((off, flags))
    })
}

fn parse_aout_kludge(bytes: &[u8], off: usize) -> Result<(Vec<Segment>, u32), ImageError> {
    let bad = |m: &str| ImageError::BadAoutKludge(m.to_string());
    let f = |i: usize| u32_at(bytes, off + 12 + 4 * i).ok_or_else(|| bad("header truncated"));
    let (header_addr, load_addr, load_end, bss_end, entry) = (f(0)?, f(1)?, f(2)?, f(3)?, f(4)?);
    if load_addr > header_addr {
        return Err(bad("load_addr is above header_addr"));
    }
    let file_start = off
        .checked_sub((header_addr - load_addr) as usize)
        .ok_or_else(|| bad("header_addr - load_addr points before the file"))?;
    let load_len = if load_end == 0 {
        bytes.len() - file_start
    } else {
        load_end
            .checked_sub(load_addr)
            .ok_or_else(|| bad("load_end_addr is below load_addr"))? as usize
    };
    let file_end = file_start
        .checked_add(load_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("the load range runs past the end of the file (truncated image?)"))?;
    let load_end_gpa = u64::from(load_addr) + load_len as u64;
    let zero = if bss_end == 0 {
        0
    } else {
        u64::from(bss_end)
            .checked_sub(load_end_gpa)
            .ok_or_else(|| bad("bss_end_addr is below the end of the loaded image"))?
    };
    Ok((
        vec![Segment {
            gpa: u64::from(load_addr),
            file_range: file_start..file_end,
            zero_bytes: zero,
        }],
        entry,
    ))
}

fn parse_elf32(b: &[u8]) -> Result<(Vec<Segment>, u32), ImageError> {
    let bad = |m: String| ImageError::BadElf(m);
    if b.len() < 52 || &b[0..4] != b"\x7fELF" {
        return Err(bad(
            "no ELF header, and the multiboot header does not give load addresses (flag 16)".into(),
        ));
    }
    match b[4] {
        1 => {}
        2 => return Err(ImageError::Elf64),
        c => return Err(bad(format!("unknown ELF class {c}"))),
    }
    if b[5] != 1 {
        return Err(bad("not little-endian".into()));
    }
    let machine = u16_at(b, 18).unwrap_or(0);
    if machine != 3 {
        return Err(bad(format!("machine {machine} is not i386 (3)")));
    }
    let entry = u32_at(b, 24).unwrap_or(0);
    let phoff = u32_at(b, 28).unwrap_or(0) as usize;
    let phentsize = usize::from(u16_at(b, 42).unwrap_or(0));
    let phnum = usize::from(u16_at(b, 44).unwrap_or(0));
    if phnum == 0 || phentsize < 32 {
        return Err(bad("no program headers".into()));
    }
    let ph_end = phnum
        .checked_mul(phentsize)
        .and_then(|n| n.checked_add(phoff))
        .filter(|&e| e <= b.len())
        .ok_or_else(|| bad("program headers run past the end of the file (truncated?)".into()))?;
    let _ = ph_end;
    let mut segs = Vec::new();
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        let field = |k: usize| u32_at(b, p + 4 * k).unwrap_or(0);
        if field(0) != 1 {
            continue; // not PT_LOAD
        }
        let (offset, paddr, filesz, memsz) = (field(1), field(3), field(4), field(5));
        if memsz < filesz {
            return Err(bad(format!("segment {i}: memsz {memsz} < filesz {filesz}")));
        }
        let start = offset as usize;
        let end = start
            .checked_add(filesz as usize)
            .filter(|&e| e <= b.len())
            .ok_or_else(|| {
                bad(format!(
                    "segment {i} ({filesz} bytes at offset {offset}) runs past the end of the file (truncated?)"
                ))
            })?;
        if memsz == 0 {
            continue;
        }
        segs.push(Segment {
            gpa: u64::from(paddr),
            file_range: start..end,
            zero_bytes: u64::from(memsz - filesz),
        });
    }
    if segs.is_empty() {
        return Err(bad("no loadable segment".into()));
    }
    Ok((segs, entry))
}

/// The autoconv info block, if a segment covers [`layout::INFO_GPA`] and holds one.
fn info_block(bytes: &[u8], segs: &[Segment]) -> Option<InfoBlock> {
    let s = segs
        .iter()
        .find(|s| (s.gpa..s.gpa + s.file_range.len() as u64).contains(&layout::INFO_GPA))?;
    let off = s.file_range.start + (layout::INFO_GPA - s.gpa) as usize;
    InfoBlock::decode(bytes.get(off..s.file_range.end)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_image::{build_image, GuestSpec};

    fn image() -> Vec<u8> {
        build_image(&GuestSpec {
            wss_bytes: 16 << 20,
            ..GuestSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn autoconv_images_load_with_their_info_block() {
        let plan = LoadPlan::parse(image(), 64 << 20).unwrap();
        assert_eq!(plan.entry as u64, layout::CODE_GPA);
        assert_eq!(plan.segments.len(), 1);
        assert_eq!(plan.segments[0].gpa, layout::LOAD_GPA);
        assert_eq!(plan.info.unwrap().wss_bytes, 16 << 20);
    }

    #[test]
    fn bad_images_are_refused_with_a_reason() {
        let err = |bytes: Vec<u8>, mem: u64| LoadPlan::parse(bytes, mem).unwrap_err().to_string();
        assert!(err(b"hello world".to_vec(), 64 << 20).contains("no multiboot header"));
        let img = image();
        // Truncated: the segment runs past the end.
        assert!(err(img[..img.len() - 100].to_vec(), 64 << 20).contains("truncated"));
        // Corrupt checksum.
        let mut c = img.clone();
        c[0x1008] ^= 1;
        assert!(err(c, 64 << 20).contains("no multiboot header"));
        // 64-bit ELF.
        let mut c = img.clone();
        c[4] = 2;
        assert!(err(c, 64 << 20).contains("64-bit ELF"));
        // Working set beyond guest memory.
        assert!(err(img.clone(), 16 << 20).contains("needs guest memory up to"));
        // Video mode requested.
        let mut c = img;
        let flags = 4u32;
        c[0x1004..0x1008].copy_from_slice(&flags.to_le_bytes());
        let sum = 0u32.wrapping_sub(MULTIBOOT_MAGIC.wrapping_add(flags));
        c[0x1008..0x100c].copy_from_slice(&sum.to_le_bytes());
        assert!(err(c, 64 << 20).contains("video mode"));
    }

    #[test]
    fn aout_kludge_kernels_load() {
        // A flat kernel: header at offset 0 with load addresses, code right after.
        let mut k = vec![0u8; 64];
        let flags = 1u32 << 16;
        let w =
            |k: &mut Vec<u8>, at: usize, v: u32| k[at..at + 4].copy_from_slice(&v.to_le_bytes());
        w(&mut k, 0, MULTIBOOT_MAGIC);
        w(&mut k, 4, flags);
        w(
            &mut k,
            8,
            0u32.wrapping_sub(MULTIBOOT_MAGIC.wrapping_add(flags)),
        );
        w(&mut k, 12, 0x10_0000); // header_addr
        w(&mut k, 16, 0x10_0000); // load_addr
        w(&mut k, 20, 0); // load_end: whole file
        w(&mut k, 24, 0x10_2000); // bss_end
        w(&mut k, 28, 0x10_0020); // entry
        let plan = LoadPlan::parse(k, 8 << 20).unwrap();
        assert_eq!(plan.entry, 0x10_0020);
        assert_eq!(plan.segments[0].end_gpa(), 0x10_2000);
        assert!(plan.info.is_none());
    }
}
