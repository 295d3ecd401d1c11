//! The arm64 boot-protocol plan for a domU: where its kernel, device tree and
//! initrd go in guest memory and where it starts. Pure arithmetic; the
//! copying is done elsewhere.
//!
//! The kernel goes at bank 0 + `text_offset`, as Xen places a 64-bit Image.
//! The device tree and initrd are each rounded up to 2 MiB and kept
//! together, the initrd right after the device tree, at the first of these
//! that fits: 128 MiB into bank 0 (if the kernel ends below that), the end
//! of bank 0 (above the kernel), or just below the kernel.

use core::fmt;

use crate::memmap::Range;

/// Bytes of the arm64 Image header [`ImageHeader::parse`] reads.
pub const HEADER_LEN: usize = 64;

const MIB: u64 = 1 << 20;
/// The kernel's base, and the device tree and initrd, are aligned to this.
const ALIGN: u64 = 2 * MIB;
/// Where the device tree goes when there is room, as Xen puts it.
const MODULES_OFFSET: u64 = 128 * MIB;
/// The boot protocol's limit on the device tree.
const MAX_DTB: u64 = 2 * MIB;
/// The `text_offset` every kernel older than Linux 3.17 (whose header has
/// no `image_size`) expects, whatever its header says.
const PRE_3_17_TEXT_OFFSET: u64 = 0x8_0000;
const MAGIC_OFFSET: usize = 0x38;
const MAGIC: [u8; 4] = *b"ARM\x64";
const FLAG_BIG_ENDIAN: u64 = 1 << 0;

/// What the arm64 Image header says about loading the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Where the image goes, from a 2 MiB-aligned base.
    pub text_offset: u64,
    /// Bytes the kernel occupies once running, BSS included; 0 when the
    /// header predates Linux 3.17 and does not say.
    pub image_size: u64,
    /// The header's flags (bit 0 big-endian, bits 1–2 page size, bit 3
    /// placement); 0 for a pre-3.17 header.
    pub flags: u64,
}

impl ImageHeader {
    /// Reads the header at the start of an Image. Refuses anything that is
    /// not a little-endian arm64 Image.
    pub fn parse(head: &[u8]) -> Result<Self, ImageError> {
        if head.len() < HEADER_LEN {
            return Err(ImageError::TooShort { len: head.len() });
        }
        let u64_at = |off: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&head[off..off + 8]);
            u64::from_le_bytes(b)
        };
        let mut magic = [0; 4];
        magic.copy_from_slice(&head[MAGIC_OFFSET..MAGIC_OFFSET + 4]);
        if magic != MAGIC {
            return Err(if head.starts_with(&[0x1f, 0x8b]) {
                ImageError::Compressed
            } else if head.starts_with(b"\x7fELF") {
                ImageError::Elf
            } else {
                ImageError::NotAnImage { found: magic }
            });
        }
        let image_size = u64_at(16);
        if image_size == 0 {
            // Before 3.17 the header's endianness was unspecified and these
            // fields were reserved; the protocol fixes text_offset instead.
            return Ok(Self {
                text_offset: PRE_3_17_TEXT_OFFSET,
                image_size: 0,
                flags: 0,
            });
        }
        let flags = u64_at(24);
        if flags & FLAG_BIG_ENDIAN != 0 {
            return Err(ImageError::BigEndian);
        }
        Ok(Self {
            text_offset: u64_at(8),
            image_size,
            flags,
        })
    }

    /// Bytes to set aside for a kernel whose file is `file_len` bytes: its
    /// `image_size`, or the file itself when the header does not say (or
    /// says less).
    pub fn footprint(&self, file_len: u64) -> u64 {
        self.image_size.max(file_len)
    }
}

/// Why a kernel file is not a bootable Image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the header.
    TooShort { len: usize },
    /// A gzip file, such as Debian's `vmlinuz`.
    Compressed,
    /// An ELF file, such as `vmlinux`.
    Elf,
    /// No arm64 Image magic.
    NotAnImage { found: [u8; 4] },
    /// A big-endian kernel.
    BigEndian,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(
                f,
                "the kernel is {len} bytes, shorter than the {HEADER_LEN}-byte arm64 Image header"
            ),
            Self::Compressed => f.write_str(
                "the kernel is gzip-compressed (expected the uncompressed arm64 Image; gunzip it)",
            ),
            Self::Elf => f.write_str(
                "the kernel is an ELF file (expected the arm64 Image, arch/arm64/boot/Image)",
            ),
            Self::NotAnImage {
                found: [a, b, c, d],
            } => write!(
                f,
                "the kernel is not an arm64 Image: bytes {MAGIC_OFFSET:#x}..{:#x} are \
                 {a:02x} {b:02x} {c:02x} {d:02x} (expected 41 52 4d 64, \"ARM\\x64\")",
                MAGIC_OFFSET + 4
            ),
            Self::BigEndian => f.write_str(
                "the kernel is big-endian (Image flags bit 0 set); guests must be little-endian",
            ),
        }
    }
}

/// Where everything goes in guest memory (IPAs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// Where the kernel file's bytes go.
    pub kernel: Range,
    /// The first instruction: the start of the Image.
    pub entry: u64,
    /// The device tree, passed in x0.
    pub dtb: u64,
    /// Where the initrd's bytes go, if there is one.
    pub initrd: Option<Range>,
}

/// Why a domain's kernel, device tree and initrd do not fit its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The domain has no RAM.
    NoRam,
    /// Bank 0 cannot hold a 2 MiB-aligned kernel base at its start.
    UnalignedBank { bank: Range },
    /// The device tree is larger than the boot protocol allows.
    DtbTooBig { len: u64 },
    /// The kernel (BSS included) does not fit in bank 0.
    KernelTooBig { base: u64, size: u64, bank: Range },
    /// The device tree and initrd fit neither above nor below the kernel.
    NoRoomForModules {
        dtb: u64,
        initrd: u64,
        kernel: Range,
        bank: Range,
    },
}

/// A byte count, in the largest unit that shows it exactly.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n != 0 && n.is_multiple_of(MIB) => write!(f, "{} MiB", n / MIB),
            n if n != 0 && n.is_multiple_of(1024) => write!(f, "{} KiB", n / 1024),
            n => write!(f, "{n} bytes"),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoRam => f.write_str("the domain has no RAM to load its kernel into"),
            Self::UnalignedBank { bank } => write!(
                f,
                "guest RAM bank 0 {bank} does not start on a 2 MiB boundary, \
                 which the arm64 boot protocol needs for the kernel"
            ),
            Self::DtbTooBig { len } => write!(
                f,
                "the guest device tree is {} (the arm64 boot protocol allows at most {})",
                Size(len),
                Size(MAX_DTB)
            ),
            Self::KernelTooBig { base, size, bank } => write!(
                f,
                "the kernel needs {} (its image_size, BSS included) from {base:#x}, \
                 but guest RAM bank 0 {bank} has only {} there",
                Size(size),
                Size(bank.end.saturating_sub(base))
            ),
            Self::NoRoomForModules {
                dtb,
                initrd,
                kernel,
                bank,
            } => write!(
                f,
                "guest RAM bank 0 {bank} has no room for the device tree ({}) and \
                 initrd ({}), each rounded up to 2 MiB, beside the kernel at {kernel}: \
                 {} free above it, {} below",
                Size(dtb),
                Size(initrd),
                Size(bank.end.saturating_sub(kernel.end.next_multiple_of(ALIGN))),
                Size(kernel.start - bank.start)
            ),
        }
    }
}

/// Plans a domU's boot: the kernel at bank 0 + `text_offset`, then the
/// device tree and initrd (each rounded up to 2 MiB, initrd right after the
/// device tree) at bank 0 + 128 MiB if they fit there and the kernel ends
/// below it, else at the end of bank 0 above the kernel, else just below
/// the kernel.
///
/// `ram` is the guest's RAM banks (IPAs, bank 0 first); `kernel_len`,
/// `dtb_len` and `initrd_len` are file sizes.
pub fn plan(
    ram: &[Range],
    kernel: &ImageHeader,
    kernel_len: u64,
    dtb_len: u64,
    initrd_len: Option<u64>,
) -> Result<LoadPlan, LoadError> {
    let bank = *ram.first().ok_or(LoadError::NoRam)?;
    if bank.is_empty() {
        return Err(LoadError::NoRam);
    }
    if !bank.start.is_multiple_of(ALIGN) {
        return Err(LoadError::UnalignedBank { bank });
    }
    if dtb_len > MAX_DTB {
        return Err(LoadError::DtbTooBig { len: dtb_len });
    }

    let size = kernel.footprint(kernel_len);
    let too_big = LoadError::KernelTooBig {
        base: bank.start.saturating_add(kernel.text_offset),
        size,
        bank,
    };
    let base = bank.start.checked_add(kernel.text_offset).ok_or(too_big)?;
    let footprint = Range::with_size(base, size)
        .filter(|k| k.end <= bank.end)
        .ok_or(too_big)?;

    let dtb_space = dtb_len.next_multiple_of(ALIGN);
    let initrd_space = initrd_len
        .unwrap_or(0)
        .checked_next_multiple_of(ALIGN)
        .unwrap_or(u64::MAX);
    let no_room = LoadError::NoRoomForModules {
        dtb: dtb_space,
        initrd: initrd_space,
        kernel: footprint,
        bank,
    };
    let modules = dtb_space.checked_add(initrd_space).ok_or(no_room)?;
    let modules_at = place_modules(bank, footprint, modules).ok_or(no_room)?;

    let dtb = modules_at;
    let initrd = match initrd_len {
        Some(len) => Some(Range::with_size(dtb + dtb_space, len).ok_or(no_room)?),
        None => None,
    };
    Ok(LoadPlan {
        kernel: Range {
            start: base,
            end: base + kernel_len,
        },
        entry: base,
        dtb,
        initrd,
    })
}

/// Where `size` bytes of device tree and initrd go in `bank` beside the
/// kernel's `footprint`, all 2 MiB-aligned.
fn place_modules(bank: Range, footprint: Range, size: u64) -> Option<u64> {
    let at_128m = bank.start + MODULES_OFFSET;
    if at_128m.checked_add(size).is_some_and(|end| end <= bank.end) && footprint.end <= at_128m {
        return Some(at_128m);
    }
    let kernel_top = footprint.end.next_multiple_of(ALIGN);
    if let Some(top) = bank.end.checked_sub(size).map(|a| a & !(ALIGN - 1))
        && top >= kernel_top
    {
        return Some(top);
    }
    footprint
        .start
        .checked_sub(size)
        .map(|a| a & !(ALIGN - 1))
        .filter(|&a| a >= bank.start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const GUEST_RAM0: u64 = 0x4000_0000;
    const GIB: u64 = 1 << 30;

    fn header_bytes(text_offset: u64, image_size: u64, flags: u64) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        // A branch instruction, as in a real Image, so nothing relies on zeros.
        h[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes());
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        h
    }

    fn modern(image_size: u64) -> ImageHeader {
        ImageHeader::parse(&header_bytes(0, image_size, 0b1010)).unwrap()
    }

    fn bank(size: u64) -> [Range; 1] {
        [Range {
            start: GUEST_RAM0,
            end: GUEST_RAM0 + size,
        }]
    }

    #[test]
    fn a_modern_header_is_read_field_by_field() {
        let h = ImageHeader::parse(&header_bytes(0x8_0000, 0x2c3_0000, 0b1010)).unwrap();
        assert_eq!(
            h,
            ImageHeader {
                text_offset: 0x8_0000,
                image_size: 0x2c3_0000,
                flags: 0b1010
            }
        );
    }

    #[test]
    fn a_pre_3_17_header_gets_the_default_text_offset_and_its_file_size() {
        // Before 3.17 text_offset was in the kernel's own byte order.
        let bytes = header_bytes(0x0000_0800_0000_0000, 0, 0);
        let h = ImageHeader::parse(&bytes).unwrap();
        assert_eq!(h.text_offset, 0x8_0000);
        assert_eq!(h.footprint(7 * MIB), 7 * MIB);

        let p = plan(&bank(512 * MIB), &h, 7 * MIB, 4096, None).unwrap();
        assert_eq!(p.entry, GUEST_RAM0 + 0x8_0000);
        assert_eq!(
            p.kernel,
            Range {
                start: GUEST_RAM0 + 0x8_0000,
                end: GUEST_RAM0 + 0x8_0000 + 7 * MIB
            }
        );
    }

    #[test]
    fn big_endian_kernels_are_refused() {
        let err = ImageHeader::parse(&header_bytes(0, 0x100_0000, 1)).unwrap_err();
        assert_eq!(err, ImageError::BigEndian);
        assert!(err.to_string().contains("little-endian"));
    }

    #[test]
    fn files_that_are_not_images_say_what_they_are() {
        assert_eq!(
            ImageHeader::parse(&[0; 10]),
            Err(ImageError::TooShort { len: 10 })
        );
        let mut gz = [0u8; HEADER_LEN];
        gz[..3].copy_from_slice(&[0x1f, 0x8b, 0x08]);
        assert_eq!(ImageHeader::parse(&gz), Err(ImageError::Compressed));
        let mut elf = [0u8; HEADER_LEN];
        elf[..4].copy_from_slice(b"\x7fELF");
        assert_eq!(ImageHeader::parse(&elf), Err(ImageError::Elf));
        let mut other = header_bytes(0, MIB, 0);
        other[0x38..0x3c].copy_from_slice(b"ARM\0");
        let err = ImageHeader::parse(&other).unwrap_err();
        assert_eq!(err, ImageError::NotAnImage { found: *b"ARM\0" });
        assert!(
            err.to_string()
                .contains("are 41 52 4d 00 (expected 41 52 4d 64")
        );
    }

    #[test]
    fn d1_512mib_domain_puts_the_dtb_at_128mib_and_the_initrd_2mib_later() {
        let p = plan(
            &bank(512 * MIB),
            &modern(44 * MIB),
            30 * MIB + 123,
            MIB,
            Some(10 * MIB + 5),
        )
        .unwrap();
        assert_eq!(p.entry, 0x4000_0000);
        assert_eq!(
            p.kernel,
            Range {
                start: 0x4000_0000,
                end: 0x4000_0000 + 30 * MIB + 123
            }
        );
        assert_eq!(p.dtb, 0x4800_0000);
        assert_eq!(
            p.initrd,
            Some(Range {
                start: 0x4820_0000,
                end: 0x4820_0000 + 10 * MIB + 5
            })
        );
    }

    #[test]
    fn small_ram_puts_the_modules_at_the_end_of_bank_0() {
        let p = plan(
            &bank(64 * MIB),
            &modern(20 * MIB),
            18 * MIB,
            MIB,
            Some(5 * MIB),
        )
        .unwrap();
        // 2 MiB of device tree + 6 MiB of initrd below 0x4400_0000.
        assert_eq!(p.dtb, 0x4380_0000);
        assert_eq!(p.initrd.unwrap().start, 0x43a0_0000);
        assert_eq!(p.initrd.unwrap().end, 0x43f0_0000);
    }

    #[test]
    fn a_kernel_reaching_past_128mib_pushes_the_modules_to_the_end() {
        let p = plan(&bank(GIB), &modern(130 * MIB), 20 * MIB, MIB, None).unwrap();
        assert_eq!(p.dtb, GUEST_RAM0 + GIB - 2 * MIB);
        assert_eq!(p.initrd, None);
    }

    #[test]
    fn modules_go_below_the_kernel_when_nothing_above_fits() {
        let h = ImageHeader::parse(&header_bytes(32 * MIB, 30 * MIB, 0)).unwrap();
        let p = plan(&bank(64 * MIB), &h, 30 * MIB, 4096, Some(MIB)).unwrap();
        assert_eq!(p.entry, GUEST_RAM0 + 32 * MIB);
        assert_eq!(p.dtb, GUEST_RAM0 + 28 * MIB);
        assert_eq!(p.initrd.unwrap().start, GUEST_RAM0 + 30 * MIB);
        assert!(p.initrd.unwrap().end <= p.entry);
    }

    #[test]
    fn a_big_initrd_that_misses_128mib_goes_to_the_end_of_bank_0() {
        let p = plan(
            &bank(512 * MIB),
            &modern(44 * MIB),
            30 * MIB,
            MIB,
            Some(400 * MIB),
        )
        .unwrap();
        assert_eq!(p.dtb, 0x6000_0000 - 402 * MIB);
        assert_eq!(p.initrd.unwrap().end, 0x6000_0000);
    }

    #[test]
    fn an_initrd_larger_than_the_space_left_is_an_error_naming_the_sizes() {
        let err = plan(
            &bank(512 * MIB),
            &modern(44 * MIB),
            30 * MIB,
            MIB,
            Some(500 * MIB),
        )
        .unwrap_err();
        assert!(matches!(err, LoadError::NoRoomForModules { .. }));
        let msg = err.to_string();
        assert!(msg.contains("device tree (2 MiB)"), "{msg}");
        assert!(msg.contains("initrd (500 MiB)"), "{msg}");
        assert!(
            msg.contains("468 MiB free above it, 0 bytes below"),
            "{msg}"
        );
    }

    #[test]
    fn a_kernel_larger_than_bank_0_is_an_error_naming_the_sizes() {
        let err = plan(&bank(64 * MIB), &modern(80 * MIB), 30 * MIB, MIB, None).unwrap_err();
        assert_eq!(
            err,
            LoadError::KernelTooBig {
                base: GUEST_RAM0,
                size: 80 * MIB,
                bank: bank(64 * MIB)[0]
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("needs 80 MiB"), "{msg}");
        assert!(msg.contains("has only 64 MiB"), "{msg}");
    }

    #[test]
    fn device_tree_over_2mib_no_ram_and_unaligned_banks_are_errors() {
        let h = modern(10 * MIB);
        assert_eq!(
            plan(&bank(GIB), &h, MIB, 2 * MIB + 1, None),
            Err(LoadError::DtbTooBig { len: 2 * MIB + 1 })
        );
        assert_eq!(plan(&[], &h, MIB, MIB, None), Err(LoadError::NoRam));
        let odd = [Range {
            start: GUEST_RAM0 + 0x1000,
            end: GUEST_RAM0 + GIB,
        }];
        assert_eq!(
            plan(&odd, &h, MIB, MIB, None),
            Err(LoadError::UnalignedBank { bank: odd[0] })
        );
    }
}
