//! A U-Boot boot script as Xen's ImageBuilder (`uboot-script-gen`) writes
//! it: `load`s of the files to RAM, `fdt` commands that edit the host tree
//! in U-Boot, and the closing `booti`. Read for its memory layout and its
//! edits to the tree; everything else is listed as not read.

use std::path::{Path, PathBuf};

use oxen_core::memmap::Range;

/// One file the script loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    pub line: usize,
    pub addr: u64,
    /// The file as the script names it.
    pub file: String,
    /// Its size, when the file is next to the script.
    pub size: Option<u64>,
}

impl Load {
    pub fn range(&self) -> Option<Range> {
        self.size
            .and_then(|s| Range::with_size(self.addr, s.max(1)))
    }
}

/// What was read from a script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    pub loads: Vec<Load>,
    /// `booti KERNEL - FDT`.
    pub booti: Option<(u64, Option<u64>)>,
    /// The script's `fdt set` / `mknod` / `rm` edits, as DTS text to
    /// append to the tree.
    pub overlay: String,
    /// Lines not read, with why.
    pub unread: Vec<String>,
}

/// A number as U-Boot reads it in scripts: hex, with or without `0x`.
fn number(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u64::from_str_radix(t, 16).ok()
}

/// Splits a command line into words, keeping `"…"` and `<…>` whole.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut close = None;
    for c in line.chars() {
        match close {
            Some(end) => {
                cur.push(c);
                if c == end {
                    close = None;
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => {
                if cur.is_empty() {
                    close = match c {
                        '"' => Some('"'),
                        '<' => Some('>'),
                        '[' => Some(']'),
                        _ => None,
                    };
                }
                cur.push(c);
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A property value of `fdt set` in DTS syntax (`"a" "b"` → `"a", "b"`).
fn dts_value(values: &[String]) -> String {
    values.join(", ")
}

/// Reads `text`, a script whose files are sized from `dir`.
pub fn parse(text: &str, dir: &Path) -> Script {
    let mut s = Script::default();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w = words(&line.replace("\\#", "#"));
        let unread = |why: &str| format!("line {line_no}: `{line}`: {why}");
        match w.first().map(String::as_str) {
            Some("load" | "fatload" | "ext4load" | "ext2load") if w.len() >= 5 => {
                match number(&w[3]) {
                    Some(addr) => s.loads.push(load(line_no, addr, &w[4], dir)),
                    None => s.unread.push(unread("the address is not a number")),
                }
            }
            Some("tftpb" | "tftpboot") if w.len() >= 3 => match number(&w[1]) {
                Some(addr) => s.loads.push(load(line_no, addr, &w[2], dir)),
                None => s.unread.push(unread("the address is not a number")),
            },
            Some("booti") if w.len() >= 2 => match number(&w[1]) {
                Some(k) => s.booti = Some((k, w.get(3).and_then(|f| number(f)))),
                None => s.unread.push(unread("the kernel address is not a number")),
            },
            Some("fdt") => match (w.get(1).map(String::as_str), w.len()) {
                (Some("set"), 4) => s
                    .overlay
                    .push_str(&format!("&{{{}}} {{ {}; }};\n", w[2], w[3])),
                (Some("set"), n) if n >= 5 => s.overlay.push_str(&format!(
                    "&{{{}}} {{ {} = {}; }};\n",
                    w[2],
                    w[3],
                    dts_value(&w[4..])
                )),
                (Some("mknod"), 4) => s
                    .overlay
                    .push_str(&format!("&{{{}}} {{ {} {{ }}; }};\n", w[2], w[3])),
                (Some("rm"), 3) => s
                    .overlay
                    .push_str(&format!("/delete-node/ &{{{}}};\n", w[2])),
                (Some("rm"), 4) => s.overlay.push_str(&format!(
                    "&{{{}}} {{ /delete-property/ {}; }};\n",
                    w[2], w[3]
                )),
                (Some("addr" | "resize" | "chosen"), _) => {}
                _ => s
                    .unread
                    .push(unread("an fdt command oxen-check does not apply")),
            },
            Some("setenv" | "echo" | "env" | "saveenv") => {}
            _ => s.unread.push(unread("not a command oxen-check reads")),
        }
    }
    s
}

fn load(line: usize, addr: u64, file: &str, dir: &Path) -> Load {
    let file = file.trim_matches('"').to_string();
    let path: PathBuf = dir.join(&file);
    Load {
        line,
        addr,
        size: std::fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len()),
        file,
    }
}

/// An arm64 Image header's `text_offset`, `image_size` and whether its
/// flags let it run at any 2 MiB-aligned address (bit 3).
pub fn image_header(bytes: &[u8]) -> Option<(u64, u64, bool)> {
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    if bytes.get(56..60) != Some(b"ARM\x64") {
        return None;
    }
    Some((word(8)?, word(16)?, word(24)? & (1 << 3) != 0))
}

/// Where U-Boot's `booti` runs an Image loaded at `addr`: a header that may
/// run anywhere stays at its 2 MiB-aligned address (plus `text_offset`);
/// any other moves to RAM base + `text_offset`.
pub fn booti_destination(addr: u64, ram_base: u64, text_offset: u64, anywhere: bool) -> u64 {
    let base = if anywhere {
        addr.saturating_sub(text_offset)
    } else {
        ram_base
    };
    base.div_ceil(2 << 20) * (2 << 20) + text_offset
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = r#"load mmc 0:1 0x40C00000 host.dtb
fdt addr 0x40C00000
fdt resize 1024
fdt set /chosen \#address-cells <0x2>
fdt mknod /chosen domU0
fdt set /chosen/domU0 compatible "xen,domain"
fdt set /chosen/domU0 vpl011
fdt mknod /chosen/domU0 module@40E00000
fdt set /chosen/domU0/module@40E00000 compatible "multiboot,kernel" "multiboot,module"
load mmc 0:1 0x40E00000 Image
load mmc 0:1 0x40200000 xen
setenv fdt_high 0xffffffffffffffff
bootm 0x40200000
booti 0x40200000 - 0x40C00000
"#;

    #[test]
    fn loads_and_booti_are_read_with_their_addresses() {
        let s = parse(SCRIPT, Path::new("/nonexistent"));
        let at: Vec<(u64, &str)> = s.loads.iter().map(|l| (l.addr, l.file.as_str())).collect();
        assert_eq!(
            at,
            [
                (0x40c0_0000, "host.dtb"),
                (0x40e0_0000, "Image"),
                (0x4020_0000, "xen")
            ]
        );
        assert!(s.loads.iter().all(|l| l.size.is_none()));
        assert_eq!(s.booti, Some((0x4020_0000, Some(0x40c0_0000))));
        assert_eq!(s.unread.len(), 1);
        assert!(s.unread[0].starts_with("line 13: `bootm 0x40200000`"));
    }

    #[test]
    fn fdt_edits_become_dts_that_dtc_applies_in_order() {
        let s = parse(SCRIPT, Path::new("."));
        assert_eq!(
            s.overlay,
            "&{/chosen} { #address-cells = <0x2>; };\n\
             &{/chosen} { domU0 { }; };\n\
             &{/chosen/domU0} { compatible = \"xen,domain\"; };\n\
             &{/chosen/domU0} { vpl011; };\n\
             &{/chosen/domU0} { module@40E00000 { }; };\n\
             &{/chosen/domU0/module@40E00000} { compatible = \"multiboot,kernel\", \"multiboot,module\"; };\n"
        );
    }

    #[test]
    fn booti_moves_an_image_unless_it_may_run_anywhere() {
        // Oxen before issue 17: text_offset 2 MiB, fixed.
        assert_eq!(
            booti_destination(0x4060_0000, 0x4000_0000, 0x20_0000, false),
            0x4020_0000
        );
        // Xen and Oxen now: text_offset 0, anywhere.
        assert_eq!(
            booti_destination(0x4060_0000, 0x4000_0000, 0, true),
            0x4060_0000
        );
    }
}
