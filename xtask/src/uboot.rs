//! The boot flow of a real board: Debian's U-Boot for QEMU arm64
//! (`u-boot-qemu`, started with `-bios`) finds a boot script on a disk,
//! and the script loads the hypervisor, the host DTB and every boot module
//! from that disk, writes the modules into the DTB with `fdt` commands and
//! starts the hypervisor with `booti`, as scripts made with Xen's
//! ImageBuilder do. The same script boots Oxen or Xen: only the file
//! called `hypervisor` differs.
//!
//! The disk is a directory that QEMU presents as a FAT disk (`vvfat`), so
//! no image tools are needed. Layout, from [`LOAD_BASE`], each slot 2 MiB
//! aligned: the DTB, the hypervisor, then each module, the first one 2 MiB
//! after the hypervisor.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::dts::{Node, Source};

/// Where the script puts the DTB. U-Boot's own defaults for QEMU use the
/// first 16 MiB of RAM (its `scriptaddr` is 0x40200000, where the running
/// script sits), so the layout starts above them.
pub const LOAD_BASE: u64 = 0x4100_0000;
/// The 2 MiB slot each file starts in.
pub const SLOT: u64 = 2 << 20;
/// Where the hypervisor goes: the slot after the DTB's.
pub const HYPERVISOR_AT: u64 = LOAD_BASE + SLOT;
/// Where the first module goes: 2 MiB after the hypervisor.
pub const MODULES_AT: u64 = HYPERVISOR_AT + SLOT;

/// A boot module as the script loads it and describes it in the DTB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The file's name on the boot disk.
    pub file: String,
    pub addr: u64,
    /// The node the script creates, e.g. `/chosen/domU1/kernel@41400000`.
    pub path: String,
    /// Its properties as canonical DTS values (`None`: an empty property).
    pub props: Vec<(String, Option<String>)>,
}

/// Takes the (placed) module nodes out of `config`, so that the script
/// adds them, as ImageBuilder's do; returns them in tree order with the
/// path of each.
pub fn take_modules(config: &mut Source, paths: &[String]) -> Vec<(String, Node)> {
    let mut out = Vec::new();
    for p in paths {
        let parts: Vec<&str> = p.trim_start_matches('/').split('/').collect();
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        let mut node = &mut config.root;
        let mut ok = true;
        for part in parents {
            match node.children.iter().position(|c| c.name == *part) {
                Some(i) => node = &mut node.children[i],
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        if let Some(i) = node.children.iter().position(|c| c.name == *last) {
            out.push((p.clone(), node.children.remove(i)));
        }
    }
    out
}

/// A DTS property value as `fdt set` arguments: cells and bytes stay as
/// they are; a list of strings becomes one quoted argument per string.
pub fn fdt_set_args(value: &str) -> String {
    let v = value.trim();
    if !v.starts_with('"') {
        return v.to_string();
    }
    // Split `"a", "b"` at the commas between strings (not inside them).
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_str = false;
    let mut escaped = false;
    for ch in v.chars() {
        if in_str {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_str = false;
                cur.push(ch);
                out.push(std::mem::take(&mut cur));
                continue;
            }
            // U-Boot's shell would expand `$`; keep it literal.
            if ch == '$' {
                cur.push('\\');
            }
            cur.push(ch);
        } else if ch == '"' {
            in_str = true;
            cur.push(ch);
        }
    }
    out.join(" ")
}

/// The boot script's text.
pub fn script(config: &str, dtb_file: &str, modules: &[Module]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Boots configs/{config}.dts: made by `cargo xtask run --uboot`. Loads the host\n\
         # DTB, the hypervisor and each boot module from the disk this script is on,\n\
         # adds the modules to the DTB's /chosen and starts the hypervisor with booti.\n\
         # The same script boots Oxen or Xen: whichever the file `hypervisor` is."
    );
    let dev = "${devtype} ${devnum}:${distro_bootpart}";
    let _ = writeln!(s, "echo oxen-uboot: loading configs/{config}");
    // Keep the DTB where it is loaded: U-Boot would otherwise copy it to the
    // top of RAM before booting.
    let _ = writeln!(s, "setenv fdt_high 0xffffffffffffffff");
    let _ = writeln!(s, "load {dev} {LOAD_BASE:#x} {dtb_file}");
    let _ = writeln!(s, "fdt addr {LOAD_BASE:#x}");
    let _ = writeln!(s, "fdt resize 8192");
    let _ = writeln!(s, "load {dev} {HYPERVISOR_AT:#x} hypervisor");
    for m in modules {
        let _ = writeln!(s, "load {dev} {:#x} {}", m.addr, m.file);
        let (parent, name) = m.path.rsplit_once('/').unwrap_or(("", &m.path));
        let parent = if parent.is_empty() { "/" } else { parent };
        let _ = writeln!(s, "fdt mknod {parent} {name}");
        for (prop, value) in &m.props {
            match value {
                Some(v) => {
                    let _ = writeln!(s, "fdt set {} {prop} {}", m.path, fdt_set_args(v));
                }
                None => {
                    let _ = writeln!(s, "fdt set {} {prop}", m.path);
                }
            }
        }
    }
    let _ = writeln!(
        s,
        "echo oxen-uboot: booti {HYPERVISOR_AT:#x} - {LOAD_BASE:#x}"
    );
    let _ = writeln!(s, "booti {HYPERVISOR_AT:#x} - {LOAD_BASE:#x}");
    s
}

/// CRC-32 (IEEE 802.3, as zlib and U-Boot's image headers use).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A U-Boot legacy image of type "script" holding `text`, as
/// `mkimage -A arm64 -T script -C none -d FILE` writes one: a 64-byte
/// big-endian header, then a multi-file body of one file (its length, a
/// zero terminator, the text).
pub fn script_image(text: &str, name: &str) -> Vec<u8> {
    const MAGIC: u32 = 0x2705_1956;
    const OS_LINUX: u8 = 5;
    const ARCH_ARM64: u8 = 22;
    const TYPE_SCRIPT: u8 = 6;
    const COMP_NONE: u8 = 0;
    let mut body = Vec::new();
    body.extend_from_slice(&(text.len() as u32).to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(text.as_bytes());
    let mut h = vec![0u8; 64];
    let be = |h: &mut [u8], at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_be_bytes());
    be(&mut h, 0, MAGIC);
    // Time 0: the image is reproducible.
    be(&mut h, 12, body.len() as u32);
    be(&mut h, 24, crc32(&body));
    h[28] = OS_LINUX;
    h[29] = ARCH_ARM64;
    h[30] = TYPE_SCRIPT;
    h[31] = COMP_NONE;
    let n = name.as_bytes();
    h[32..32 + n.len().min(31)].copy_from_slice(&n[..n.len().min(31)]);
    let hcrc = crc32(&h);
    be(&mut h, 4, hcrc);
    h.extend_from_slice(&body);
    h
}

/// Puts `from` on the boot disk as `name`: a hard link where possible (the
/// kernels are tens of MiB), else a copy.
pub fn place_file(from: &Path, disk: &Path, name: &str) -> Result<PathBuf, String> {
    let to = disk.join(name);
    let _ = std::fs::remove_file(&to);
    if std::fs::hard_link(from, &to).is_err() {
        std::fs::copy(from, &to)
            .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn a_script_image_has_mkimages_header_and_body() {
        let img = script_image("echo hi\n", "boot");
        assert_eq!(&img[0..4], &0x2705_1956u32.to_be_bytes());
        let size = u32::from_be_bytes(img[12..16].try_into().unwrap()) as usize;
        assert_eq!(size, img.len() - 64);
        assert_eq!(&img[64..68], &8u32.to_be_bytes());
        assert_eq!(&img[68..72], &[0; 4]);
        assert_eq!(&img[72..], b"echo hi\n");
        let dcrc = u32::from_be_bytes(img[24..28].try_into().unwrap());
        assert_eq!(dcrc, crc32(&img[64..]));
        let mut h = img[..64].to_vec();
        let hcrc = u32::from_be_bytes(h[4..8].try_into().unwrap());
        h[4..8].fill(0);
        assert_eq!(hcrc, crc32(&h));
        assert_eq!((img[29], img[30]), (22, 6));
    }

    #[test]
    fn string_lists_become_one_argument_per_string() {
        assert_eq!(
            fdt_set_args(r#""multiboot,kernel", "multiboot,module""#),
            r#""multiboot,kernel" "multiboot,module""#
        );
        assert_eq!(
            fdt_set_args("<0x00 0x41400000 0x47810>"),
            "<0x00 0x41400000 0x47810>"
        );
        assert_eq!(fdt_set_args(r#""a $x, b""#), r#""a \$x, b""#);
    }

    #[test]
    fn the_script_loads_dtb_hypervisor_then_each_module_and_boots() {
        let m = Module {
            file: "m0".into(),
            addr: MODULES_AT,
            path: "/chosen/domU1/kernel@41400000".into(),
            props: vec![
                (
                    "compatible".into(),
                    Some(r#""multiboot,kernel", "multiboot,module""#.into()),
                ),
                ("reg".into(), Some("<0x00 0x41400000 0x1000>".into())),
            ],
        };
        let s = script("x", "host.dtb", &[m]);
        let lines: Vec<&str> = s.lines().filter(|l| !l.starts_with('#')).collect();
        let dev = "${devtype} ${devnum}:${distro_bootpart}";
        assert_eq!(
            lines,
            [
                "echo oxen-uboot: loading configs/x",
                "setenv fdt_high 0xffffffffffffffff",
                &format!("load {dev} 0x41000000 host.dtb"),
                "fdt addr 0x41000000",
                "fdt resize 8192",
                &format!("load {dev} 0x41200000 hypervisor"),
                &format!("load {dev} 0x41400000 m0"),
                "fdt mknod /chosen/domU1 kernel@41400000",
                r#"fdt set /chosen/domU1/kernel@41400000 compatible "multiboot,kernel" "multiboot,module""#,
                "fdt set /chosen/domU1/kernel@41400000 reg <0x00 0x41400000 0x1000>",
                "echo oxen-uboot: booti 0x41200000 - 0x41000000",
                "booti 0x41200000 - 0x41000000",
            ]
        );
    }
}
