//! Turning the user's file into the host device tree Oxen would be given:
//! a `.dtb` as it is, a `.dts` compiled with dtc, and a config fragment
//! (`configs/*.dts`: a `/chosen` without the machine) merged onto the
//! board's own tree with its boot modules placed as `cargo xtask run`
//! places them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use oxen_core::hostdt::{Fdt, NodeId};

use crate::board::Board;

/// A device tree blob at an 8-byte-aligned address, as the reader needs.
pub struct Blob {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Blob {
    pub fn new(bytes: &[u8]) -> Self {
        let mut buf = vec![0u8; bytes.len() + 8];
        let start = buf.as_ptr().align_offset(8);
        buf[start..start + bytes.len()].copy_from_slice(bytes);
        Self {
            buf,
            start,
            len: bytes.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// Runs dtc with `args`, `input` on its stdin; its output.
pub fn dtc(args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("dtc")
        .args(["-q", "-o", "-"])
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run dtc ({e}); install it with `apt-get install device-tree-compiler`")
        })?;
    // dtc reads all of its input before it writes, so this cannot deadlock.
    child
        .stdin
        .take()
        .ok_or("dtc has no stdin")?
        .write_all(input)
        .map_err(|e| format!("writing to dtc: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for dtc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dtc refused the tree:\n{}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(out.stdout)
}

/// Compiles DTS text (`/include/`s resolved from `dir`).
pub fn compile(text: &str, dir: &Path) -> Result<Vec<u8>, String> {
    let dir = dir.to_string_lossy();
    dtc(&["-I", "dts", "-O", "dtb", "-i", &dir], text.as_bytes())
}

/// A blob back to DTS text.
pub fn decompile(blob: &[u8]) -> Result<String, String> {
    let out = dtc(&["-I", "dtb", "-O", "dts"], blob)?;
    String::from_utf8(out).map_err(|e| format!("dtc wrote no text: {e}"))
}

/// The host tree, and what was assumed to make it.
pub struct Loaded {
    pub blob: Vec<u8>,
    /// Values that are not in the user's file.
    pub assumed: Vec<String>,
    /// Whether the file was a config fragment.
    pub fragment: bool,
}

/// A tree without memory and CPUs describes no machine: it is a config
/// fragment, to be merged onto the board's tree.
pub fn is_fragment(fdt: &Fdt<'_>) -> bool {
    let has_memory = fdt
        .ids()
        .any(|n| fdt.prop_str(n, "device_type") == Some("memory"));
    !has_memory && fdt.find("/cpus").is_none()
}

/// The `xtask,*` settings of a config.
const FILE_PROP: &str = "xtask,file";
const SHARE_PROP: &str = "xtask,share";
const MEMORY_PROP: &str = "xtask,qemu-memory";
const CPUS_PROP: &str = "xtask,qemu-cpus";

/// Where `cargo xtask run` starts placing modules, and their alignment.
pub const MODULE_BASE: u64 = 0x5000_0000;
pub const MODULE_ALIGN: u64 = 2 << 20;
/// The size assumed for a module whose file oxen-check cannot see.
pub const ASSUMED_MODULE_SIZE: u64 = 2 << 20;

/// Reads the file the user named.
pub fn load(path: &Path, board: &Board) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let is_dts = path.extension().is_some_and(|e| e == "dts" || e == "dtsi")
        || !bytes.starts_with(&[0xd0, 0x0d, 0xfe, 0xed]);
    if !is_dts {
        return Ok(Loaded {
            blob: bytes,
            assumed: Vec::new(),
            fragment: false,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let alone = compile(&text, dir).map_err(|e| format!("{}: {e}", path.display()))?;
    let alone_blob = Blob::new(&alone);
    let fdt = Fdt::parse(alone_blob.bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    if !is_fragment(&fdt) {
        return Ok(Loaded {
            blob: alone,
            assumed: Vec::new(),
            fragment: false,
        });
    }
    merge_fragment(&text, &fdt, dir, board)
}

/// The memory a config's machine gets, as `cargo xtask run` computes it:
/// what `xtask,qemu-memory` says, else the domains' memory, the modules and
/// 512 MiB spare in whole GiB, at least 2 GiB.
fn machine_memory_mib(fdt: &Fdt<'_>, modules_end: u64, board: &Board) -> Result<u64, String> {
    if let Some(s) = fdt.prop_str(0, MEMORY_PROP) {
        return parse_size_mib(s).ok_or(format!(
            "/: {MEMORY_PROP} = \"{s}\" is not a size (expected e.g. \"3G\" or \"2560M\")"
        ));
    }
    let domains_kib: u64 = fdt
        .find("/chosen")
        .map(|c| {
            fdt.children(c)
                .filter(|&d| fdt.is_compatible(d, "xen,domain"))
                .filter_map(|d| {
                    let p = fdt.prop(d, "memory")?;
                    match p.cells() {
                        2 => p.u64(),
                        1 => p.u32().map(u64::from),
                        _ => None,
                    }
                })
                .sum()
        })
        .unwrap_or(0);
    let modules_mib = modules_end.saturating_sub(board.ram_base) >> 20;
    let need = domains_kib / 1024 + modules_mib + 512;
    Ok(need.div_ceil(1024).max(2) * 1024)
}

/// `"3G"`, `"2560M"` in MiB.
pub fn parse_size_mib(s: &str) -> Option<u64> {
    let t = s.trim();
    let (n, mult) = if let Some(n) = t.strip_suffix(['G', 'g']) {
        (n, 1024)
    } else if let Some(n) = t.strip_suffix(['M', 'm']) {
        (n, 1)
    } else {
        return None;
    };
    n.parse::<u64>()
        .ok()
        .filter(|&v| v > 0)
        .and_then(|v| v.checked_mul(mult))
}

/// One module node of a fragment that has no `reg` yet.
struct Unplaced {
    node: NodeId,
    file: String,
    share: bool,
}

fn merge_fragment(
    text: &str,
    alone: &Fdt<'_>,
    dir: &Path,
    board: &Board,
) -> Result<Loaded, String> {
    let mut assumed = vec![format!(
        "a config fragment: merged onto {}'s own device tree ({})",
        board.name, board.tree_origin
    )];
    let cpus = match alone.prop(0, CPUS_PROP) {
        None => 2,
        Some(p) => match p.u32() {
            Some(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "/: {CPUS_PROP} = {} (expected e.g. <4>)",
                    p.display()
                ));
            }
        },
    };

    // The modules, placed before the machine's memory is known (it depends
    // on where they end).
    let mut unplaced = Vec::new();
    for n in alone.ids() {
        if let Some(file) = alone.prop_str(n, FILE_PROP)
            && !alone.has_prop(n, "reg")
        {
            unplaced.push(Unplaced {
                node: n,
                file: file.to_string(),
                share: alone.has_prop(n, SHARE_PROP),
            });
        }
    }
    let mut regs: BTreeMap<NodeId, (u64, u64)> = BTreeMap::new();
    let mut next = MODULE_BASE;
    let mut unsized_files = Vec::new();
    for (i, m) in unplaced.iter().enumerate() {
        let first_share = (0..i)
            .find(|&j| m.share && unplaced[j].share && unplaced[j].file == m.file)
            .map(|j| unplaced[j].node);
        if let Some(&r) = first_share.and_then(|n| regs.get(&n)) {
            regs.insert(m.node, r);
            continue;
        }
        let size = match std::fs::metadata(dir.join(&m.file)).or(std::fs::metadata(&m.file)) {
            Ok(md) if md.is_file() => md.len(),
            _ => {
                unsized_files.push(format!("{} (\"{}\")", alone.path(m.node), m.file));
                ASSUMED_MODULE_SIZE
            }
        };
        let at = next.div_ceil(MODULE_ALIGN) * MODULE_ALIGN;
        next = at + size;
        regs.insert(m.node, (at, size));
    }
    if !unsized_files.is_empty() {
        assumed.push(format!(
            "module sizes: {} MiB each for the files oxen-check cannot see, placed as `cargo xtask \
             run` places them (2 MiB-aligned from {MODULE_BASE:#x}, in tree order): {}",
            ASSUMED_MODULE_SIZE >> 20,
            unsized_files.join(", ")
        ));
    }
    let memory_mib = machine_memory_mib(alone, next, board)?;
    assumed.push(format!(
        "the machine: {cpus} CPU(s), {memory_mib} MiB of RAM from {:#x}{}",
        board.ram_base,
        if alone.has_prop(0, MEMORY_PROP) {
            ""
        } else {
            " (computed as `cargo xtask run` does)"
        }
    ));

    // The board's tree, then the fragment: dtc merges a later root block
    // into the tree before it.
    let mut merged = String::from("/dts-v1/;\n");
    merged.push_str(&board.tree(cpus, memory_mib << 20));
    merged.push_str("\n/* ---- the config ---- */\n");
    for line in text.lines() {
        if line.trim() != "/dts-v1/;" {
            merged.push_str(line);
            merged.push('\n');
        }
    }
    let blob = compile(&merged, dir)?;
    let merged_blob = Blob::new(&blob);
    let fdt = Fdt::parse(merged_blob.bytes()).map_err(|e| e.to_string())?;
    // Node IDs of the fragment alone are not those of the merged tree:
    // match by path.
    let by_path: BTreeMap<String, (u64, u64)> =
        regs.iter().map(|(&n, &r)| (alone.path(n), r)).collect();
    let edits: BTreeMap<NodeId, (u64, u64)> = fdt
        .ids()
        .filter_map(|n| by_path.get(&fdt.path(n)).map(|&r| (n, r)))
        .collect();
    let blob = rewrite(&fdt, &edits).map_err(|e| format!("rewriting the merged tree: {e}"))?;
    Ok(Loaded {
        blob,
        assumed,
        fragment: true,
    })
}

/// The tree again, each node of `regs` given `reg = <address size>` in its
/// parent's cells and a unit address, and every `xtask,*` property gone.
pub fn rewrite(fdt: &Fdt<'_>, regs: &BTreeMap<NodeId, (u64, u64)>) -> Result<Vec<u8>, String> {
    let reserve: Vec<vm_fdt::FdtReserveEntry> = fdt
        .mem_reserve()
        .iter()
        .filter_map(|r| vm_fdt::FdtReserveEntry::new(r.start, r.size()).ok())
        .collect();
    let mut w = vm_fdt::FdtWriter::new_with_mem_reserv(&reserve).map_err(|e| e.to_string())?;
    w.set_boot_cpuid_phys(fdt.boot_cpuid());
    write_node(fdt, fdt.root(), regs, &mut w)?;
    w.finish().map_err(|e| e.to_string())
}

fn cells(value: u64, n: u32) -> Vec<u8> {
    match n {
        1 => (value as u32).to_be_bytes().to_vec(),
        _ => value.to_be_bytes().to_vec(),
    }
}

fn write_node(
    fdt: &Fdt<'_>,
    id: NodeId,
    regs: &BTreeMap<NodeId, (u64, u64)>,
    w: &mut vm_fdt::FdtWriter,
) -> Result<(), String> {
    let node = fdt.node(id);
    let reg = regs.get(&id);
    let name = match reg {
        Some((addr, _)) => format!("{}@{addr:x}", node.name.split('@').next().unwrap_or("")),
        None => node.name.to_string(),
    };
    let handle = w.begin_node(&name).map_err(|e| format!("{name}: {e}"))?;
    for p in &node.props {
        if p.name.starts_with("xtask,") || (reg.is_some() && p.name == "reg") {
            continue;
        }
        w.property(p.name, p.value)
            .map_err(|e| format!("{name}: {}: {e}", p.name))?;
    }
    if let Some(&(addr, size)) = reg {
        let parent = node.parent.unwrap_or(0);
        let mut v = cells(addr, fdt.address_cells(parent));
        v.extend(cells(size, fdt.size_cells(parent)));
        w.property("reg", &v)
            .map_err(|e| format!("{name}: reg: {e}"))?;
    }
    for c in fdt.children(id) {
        write_node(fdt, c, regs, w)?;
    }
    w.end_node(handle).map_err(|e| format!("{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_the_xtask_reads_them() {
        assert_eq!(parse_size_mib("3G"), Some(3072));
        assert_eq!(parse_size_mib("2560M"), Some(2560));
        assert_eq!(parse_size_mib("0G"), None);
        assert_eq!(parse_size_mib("12"), None);
    }
}
