//! Turns the board's ELF into an arm64 Image: the bytes of its loadable
//! segments laid out from the load address, checked for the Linux boot
//! header that QEMU `-kernel` and U-Boot `booti` look for.

use std::path::Path;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// A loadable segment: physical address and file bytes.
struct Segment<'a> {
    paddr: u64,
    data: &'a [u8],
}

fn load_segments(elf: &[u8]) -> Result<Vec<Segment<'_>>, String> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err("not a little-endian ELF64 file".into());
    }
    if u16_at(elf, 18) != 183 {
        return Err("not an AArch64 ELF".into());
    }
    let phoff = u64_at(elf, 32) as usize;
    let phentsize = u16_at(elf, 54) as usize;
    let phnum = u16_at(elf, 56) as usize;
    let mut segs = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let ph = elf.get(ph..ph + 56).ok_or("program header out of bounds")?;
        if u32_at(ph, 0) != 1 {
            continue; // not PT_LOAD
        }
        let offset = u64_at(ph, 8) as usize;
        let paddr = u64_at(ph, 24);
        let filesz = u64_at(ph, 32) as usize;
        if filesz == 0 {
            continue;
        }
        let data = elf
            .get(offset..offset + filesz)
            .ok_or("segment data out of bounds")?;
        segs.push(Segment { paddr, data });
    }
    if segs.is_empty() {
        return Err("no loadable segment".into());
    }
    Ok(segs)
}

/// Checks that every relocation the image carries is one the entry code
/// applies (`R_AARCH64_RELATIVE`, in `SHT_RELA` or packed `SHT_RELR`
/// sections): anything else would stop the boot before it can print.
pub fn check_relocations(elf: &[u8]) -> Result<(), String> {
    const SHT_RELA: u32 = 4;
    const SHF_ALLOC: u64 = 2;
    const R_AARCH64_RELATIVE: u32 = 1027;
    let shoff = u64_at(elf, 0x28) as usize;
    let shentsize = u16_at(elf, 0x3a) as usize;
    let shnum = u16_at(elf, 0x3c) as usize;
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        let sh = elf.get(sh..sh + 64).ok_or("section header out of bounds")?;
        if u32_at(sh, 4) != SHT_RELA || u64_at(sh, 8) & SHF_ALLOC == 0 {
            continue;
        }
        let (off, size) = (u64_at(sh, 0x18) as usize, u64_at(sh, 0x20) as usize);
        let body = elf
            .get(off..off + size)
            .ok_or("relocations out of bounds")?;
        for (n, r) in body.chunks_exact(24).enumerate() {
            let kind = u32_at(r, 8);
            if kind != R_AARCH64_RELATIVE {
                return Err(format!(
                    "relocation {n} at {:#x} is of type {kind}; the entry code applies only \
                     R_AARCH64_RELATIVE ({R_AARCH64_RELATIVE})",
                    u64_at(r, 0)
                ));
            }
        }
    }
    Ok(())
}

/// Lays out the segments into a flat image starting at the lowest address.
pub fn flatten(elf: &[u8]) -> Result<Vec<u8>, String> {
    let segs = load_segments(elf)?;
    check_relocations(elf)?;
    let base = segs.iter().map(|s| s.paddr).min().unwrap_or(0);
    let end = segs
        .iter()
        .map(|s| s.paddr + s.data.len() as u64)
        .max()
        .unwrap_or(0);
    let mut out = vec![0u8; (end - base) as usize];
    for s in &segs {
        let at = (s.paddr - base) as usize;
        out[at..at + s.data.len()].copy_from_slice(s.data);
    }
    check_header(&out)?;
    Ok(out)
}

/// Checks the arm64 Image header: magic, text offset, and an image size
/// that covers at least the file.
pub fn check_header(img: &[u8]) -> Result<(u64, u64), String> {
    if img.len() < 64 || &img[0x38..0x3c] != b"ARM\x64" {
        return Err("missing the arm64 Image magic at offset 0x38".into());
    }
    let text_offset = u64_at(img, 8);
    let image_size = u64_at(img, 16);
    if image_size < img.len() as u64 {
        return Err(format!(
            "image_size {image_size:#x} is smaller than the file ({:#x})",
            img.len()
        ));
    }
    Ok((text_offset, image_size))
}

/// The names in an ELF's symbol table (`SHT_SYMTAB`; the release profile
/// keeps it, `debug = true`), empty names left out.
pub fn symbol_names(elf: &[u8]) -> Result<Vec<String>, String> {
    const SHT_SYMTAB: u32 = 2;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err("not a little-endian ELF64 file".into());
    }
    let shoff = u64_at(elf, 0x28) as usize;
    let shentsize = u16_at(elf, 0x3a) as usize;
    let shnum = u16_at(elf, 0x3c) as usize;
    let section = |i: usize| {
        let at = shoff + i * shentsize;
        elf.get(at..at + 64).ok_or("section header out of bounds")
    };
    let body = |sh: &[u8]| {
        let (off, size) = (u64_at(sh, 0x18) as usize, u64_at(sh, 0x20) as usize);
        elf.get(off..off + size).ok_or("section out of bounds")
    };
    let mut names = Vec::new();
    for i in 0..shnum {
        let sh = section(i)?;
        if u32_at(sh, 4) != SHT_SYMTAB {
            continue;
        }
        let strtab = body(section(u32_at(sh, 0x28) as usize)?)?;
        for sym in body(sh)?.chunks_exact(24) {
            let at = u32_at(sym, 0) as usize;
            let name = strtab.get(at..).ok_or("symbol name out of bounds")?;
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if !name.is_empty() {
                names.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok(names)
}

/// The identifiers of a legacy-mangled Rust path (`_ZN9oxen_core4vgic2v24init17h…E`
/// → `oxen_core`, `vgic`, `v2`, `init`, `h…`); empty for other names.
fn mangled_path(symbol: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let Some(mut rest) = symbol.strip_prefix("_ZN") else {
        return out;
    };
    loop {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(len) = rest[..digits].parse::<usize>() else {
            return out;
        };
        let Some(ident) = rest.get(digits..digits + len) else {
            return out;
        };
        out.push(ident);
        rest = &rest[digits + len..];
    }
}

/// Whether a symbol name names `driver`: the driver's name appears in it,
/// or in its path's identifiers run together, case and `_`/`-` aside
/// (`gicv2` in `oxen_core::drivers::gicv2::init`, in `GicV2` and in
/// `vgic::v2`; `cadence-uart` in `cadence_uart`).
pub fn names_driver(symbol: &str, driver: &str) -> bool {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let driver = squash(driver);
    squash(symbol).contains(&driver) || squash(&mangled_path(symbol).concat()).contains(&driver)
}

pub fn elf_to_image(elf_path: &Path, img_path: &Path) -> Result<(), String> {
    let elf = std::fs::read(elf_path).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    let img = flatten(&elf).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    std::fs::write(img_path, img).map_err(|e| format!("{}: {e}", img_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check_rejects_missing_magic_and_short_image_size() {
        let mut img = vec![0u8; 128];
        assert!(check_header(&img).is_err());
        img[0x38..0x3c].copy_from_slice(b"ARM\x64");
        img[16..24].copy_from_slice(&64u64.to_le_bytes());
        assert!(
            check_header(&img)
                .unwrap_err()
                .contains("smaller than the file")
        );
        img[8..16].copy_from_slice(&0x20_0000u64.to_le_bytes());
        img[16..24].copy_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(check_header(&img), Ok((0x20_0000, 0x1000)));
    }

    /// A minimal ELF64 with a symbol table of `names`.
    fn elf_with_symbols(names: &[&str]) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut syms = vec![0u8; 24];
        for n in names {
            let mut sym = vec![0u8; 24];
            sym[..4].copy_from_slice(&(strtab.len() as u32).to_le_bytes());
            syms.extend(sym);
            strtab.extend(n.bytes().chain([0]));
        }
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let (sym_at, str_at) = (64, 64 + syms.len());
        let sh_at = str_at + strtab.len();
        elf.extend(&syms);
        elf.extend(&strtab);
        elf[0x28..0x30].copy_from_slice(&(sh_at as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        let header = |kind: u32, off: usize, size: usize, link: u32| {
            let mut h = vec![0u8; 64];
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            h[0x28..0x2c].copy_from_slice(&link.to_le_bytes());
            h
        };
        elf.extend(header(0, 0, 0, 0));
        elf.extend(header(2, sym_at, syms.len(), 2));
        elf.extend(header(3, str_at, strtab.len(), 0));
        elf
    }

    #[test]
    fn symbol_names_come_from_the_symbol_table() {
        let elf = elf_with_symbols(&[
            "_start",
            "_ZN9oxen_core7drivers5gicv24init17h0123456789abcdefE",
        ]);
        let names = symbol_names(&elf).unwrap();
        assert_eq!(names.len(), 2);
        assert!(names_driver(&names[1], "gicv2"));
        assert!(!names_driver(&names[1], "gicv3"));
        assert!(names_driver("_ZN..$LT$oxen_core..GicV2$GT$", "gicv2"));
        assert!(names_driver(
            "oxen_core::drivers::cadence_uart::putc",
            "cadence-uart"
        ));
        // The vGIC's version modules, through the path's identifiers.
        let v2 = "_ZN9oxen_core4vgic2v239_$LT$impl$u20$oxen_core..vgic..Vgic$GT$10write_sgir17hc64f1b3b7ab7a94eE";
        assert!(names_driver(v2, "gicv2") && !names_driver(v2, "gicv3"));
        assert!(!names_driver(
            "_ZN9oxen_core4vgic3irq4take17h0123456789abcdefE",
            "gicv2"
        ));
        assert_eq!(mangled_path("_ZN4vgic2v2E"), ["vgic", "v2"]);
        assert!(mangled_path("_start").is_empty());
        assert!(symbol_names(b"not an elf").is_err());
    }

    #[test]
    fn non_elf_input_is_refused() {
        assert!(
            flatten(b"not an elf at all, not at all, not at all, not at all, not at all!").is_err()
        );
    }
}
