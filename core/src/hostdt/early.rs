//! The one device-tree read done before the MMU is on: the RAM banks, found
//! without allocating (there is no heap yet) so the identity map can mark
//! them Normal memory. Whatever stops this read is named: a damaged blob,
//! a memory node whose `reg` does not decode, overlapping banks, or no
//! memory at all.

use core::fmt;

use super::blob::{Blob, FdtError, Token};
use super::fdt::read_cells;
use crate::memmap::Range;

/// Most RAM banks the early scan records (and the identity map maps).
pub const MAX_EARLY_BANKS: usize = 16;

/// RAM banks found by [`memory_banks`], each with its node's name.
#[derive(Clone, Copy, Debug, Default)]
pub struct Banks<'dt> {
    pub ranges: [Range; MAX_EARLY_BANKS],
    pub names: [&'dt str; MAX_EARLY_BANKS],
    pub len: usize,
}

impl Banks<'_> {
    pub fn iter(&self) -> impl Iterator<Item = &Range> {
        self.ranges[..self.len].iter()
    }
}

/// Why the early scan found no RAM to run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyError<'dt> {
    /// The blob itself is damaged.
    Blob(FdtError),
    /// No enabled `device_type = "memory"` node with a non-empty `reg`;
    /// the name of a `memory@…` node that lacks the `device_type`, if any.
    NoMemory(Option<&'dt str>),
    /// The root's `#address-cells` or `#size-cells` is unusable.
    RootCells(&'static str, Option<u32>),
    /// A memory node's `reg` is not whole (address, size) pairs.
    Reg {
        node: &'dt str,
        bytes: usize,
        ac: usize,
        sc: usize,
        defaulted: bool,
    },
    /// A bank whose end does not fit in 64 bits.
    Wraps { node: &'dt str, entry: usize },
    /// Two banks share addresses.
    Overlap {
        node: &'dt str,
        range: Range,
        other: &'dt str,
        other_range: Range,
    },
    /// More banks than [`MAX_EARLY_BANKS`].
    TooMany(&'dt str),
}

impl fmt::Display for EarlyError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Blob(e) => write!(f, "{e}"),
            Self::NoMemory(untyped) => {
                f.write_str(
                    "describes no memory: no node directly under / has device_type = \"memory\" \
                     and a non-empty reg",
                )?;
                match untyped {
                    Some(n) => write!(f, " (/{n} has no device_type = \"memory\"; add it)"),
                    None => f.write_str(
                        " (expected e.g. memory@40000000 { device_type = \"memory\"; \
                         reg = <0x0 0x40000000 0x0 0x80000000>; })",
                    ),
                }
            }
            Self::RootCells(prop, v) => {
                write!(f, "/: {prop} = ")?;
                match v {
                    Some(v) => write!(f, "<{v}>")?,
                    None => f.write_str("a value that is not one cell")?,
                }
                f.write_str(" cannot describe memory (expected <1> or <2>)")
            }
            Self::Reg {
                node,
                bytes,
                ac,
                sc,
                defaulted,
            } => {
                write!(
                    f,
                    "/{node}: reg of {bytes} bytes is not a list of (address, size) pairs of \
                     {ac}+{sc} cells (the #address-cells and #size-cells of /)"
                )?;
                if defaulted {
                    f.write_str(
                        "; / lacks #address-cells or #size-cells, so the DT spec's defaults 2 \
                         and 1 apply (write both, e.g. <2> and <2>)",
                    )?;
                }
                Ok(())
            }
            Self::Wraps { node, entry } => write!(
                f,
                "/{node}: reg entry {entry} does not fit in 64 bits or wraps the address space"
            ),
            Self::Overlap {
                node,
                range,
                other,
                other_range,
            } => write!(
                f,
                "/{node}: reg {range} overlaps /{other} at {other_range} (each byte of RAM is \
                 described once)"
            ),
            Self::TooMany(node) => write!(
                f,
                "/{node}: more than {MAX_EARLY_BANKS} RAM banks (Oxen maps at most \
                 {MAX_EARLY_BANKS}; merge adjacent banks)"
            ),
        }
    }
}

impl From<FdtError> for EarlyError<'_> {
    fn from(e: FdtError) -> Self {
        Self::Blob(e)
    }
}

/// The memory node being read: its name and the properties that matter.
#[derive(Default)]
struct MemoryNode<'dt> {
    name: &'dt str,
    is_memory: bool,
    enabled: bool,
    reg: Option<&'dt [u8]>,
}

fn cell(value: &[u8]) -> Option<u32> {
    (value.len() == 4).then(|| u32::from_be_bytes([value[0], value[1], value[2], value[3]]))
}

/// Reads the `reg` of every enabled `device_type = "memory"` node directly
/// under the root, and checks the whole blob's structure on the way.
pub fn memory_banks(blob: &[u8]) -> Result<Banks<'_>, EarlyError<'_>> {
    let blob = Blob::new(blob)?;
    let (mut ac, mut sc) = (None, None);
    let mut banks = Banks::default();
    let mut depth = 0usize;
    let mut node = MemoryNode::default();
    let mut untyped = None;
    for tok in blob.tokens() {
        match tok? {
            Token::Begin(name) => {
                depth += 1;
                if depth == 2 {
                    node = MemoryNode {
                        name,
                        enabled: true,
                        ..MemoryNode::default()
                    };
                }
            }
            Token::Prop(name, value) => match (depth, name) {
                (1, "#address-cells") => ac = Some(cell(value)),
                (1, "#size-cells") => sc = Some(cell(value)),
                (2, "device_type") => node.is_memory = value == b"memory\0",
                (2, "status") => node.enabled = matches!(value, b"okay\0" | b"ok\0"),
                (2, "reg") => node.reg = Some(value),
                _ => {}
            },
            Token::End => {
                if depth == 2 && node.is_memory && node.enabled {
                    add_banks(&node, ac, sc, &mut banks)?;
                } else if depth == 2
                    && !node.is_memory
                    && node.reg.is_some()
                    && node.name.split('@').next() == Some("memory")
                {
                    untyped = untyped.or(Some(node.name));
                }
                depth -= 1;
            }
        }
    }
    if banks.len == 0 {
        return Err(EarlyError::NoMemory(untyped));
    }
    Ok(banks)
}

fn add_banks<'dt>(
    node: &MemoryNode<'dt>,
    ac: Option<Option<u32>>,
    sc: Option<Option<u32>>,
    banks: &mut Banks<'dt>,
) -> Result<(), EarlyError<'dt>> {
    let Some(reg) = node.reg else { return Ok(()) };
    let cells = |v: Option<Option<u32>>, default: u32, prop| match v {
        None => Ok(default as usize),
        Some(Some(n @ 1..=2)) => Ok(n as usize),
        Some(v) => Err(EarlyError::RootCells(prop, v)),
    };
    let a = cells(ac, 2, "#address-cells")?;
    let s = cells(sc, 1, "#size-cells")?;
    let entry = a + s;
    if reg.is_empty() || !reg.len().is_multiple_of(entry * 4) {
        return Err(EarlyError::Reg {
            node: node.name,
            bytes: reg.len(),
            ac: a,
            sc: s,
            defaulted: ac.is_none() || sc.is_none(),
        });
    }
    for i in 0..reg.len() / 4 / entry {
        let range = read_cells(reg, i * entry, a)
            .zip(read_cells(reg, i * entry + a, s))
            .and_then(|(start, size)| Range::with_size(start, size))
            .ok_or(EarlyError::Wraps {
                node: node.name,
                entry: i,
            })?;
        if range.is_empty() {
            continue;
        }
        if let Some(j) = (0..banks.len).find(|&j| banks.ranges[j].overlaps(&range)) {
            return Err(EarlyError::Overlap {
                node: node.name,
                range,
                other: banks.names[j],
                other_range: banks.ranges[j],
            });
        }
        if banks.len == MAX_EARLY_BANKS {
            return Err(EarlyError::TooMany(node.name));
        }
        banks.ranges[banks.len] = range;
        banks.names[banks.len] = node.name;
        banks.len += 1;
    }
    Ok(())
}

/// Most ranges [`occupied`] records.
pub const MAX_OCCUPIED: usize = 64;

/// Deepest node nesting [`occupied`] follows for `#address-cells`.
const MAX_DEPTH: usize = 16;

/// Memory the device tree says is in use before Oxen runs: `/memreserve/`
/// entries, `/reserved-memory` children, and everything `/chosen` places in
/// RAM (boot modules at any depth, a Linux-style initrd). Read without
/// allocating, so that the heap can be put where none of it lies.
#[derive(Clone, Copy, Debug)]
pub struct Occupied {
    pub ranges: [Range; MAX_OCCUPIED],
    pub len: usize,
    /// More ranges than [`MAX_OCCUPIED`] were found; the rest were dropped.
    pub overflow: bool,
}

impl Default for Occupied {
    fn default() -> Self {
        Self {
            ranges: [Range::default(); MAX_OCCUPIED],
            len: 0,
            overflow: false,
        }
    }
}

impl Occupied {
    pub fn iter(&self) -> impl Iterator<Item = &Range> {
        self.ranges[..self.len].iter()
    }

    fn push(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        if self.len == MAX_OCCUPIED {
            self.overflow = true;
            return;
        }
        self.ranges[self.len] = r;
        self.len += 1;
    }
}

/// Finds the memory [`Occupied`] describes. Values that do not decode are
/// skipped: the full read of the tree later reports them.
pub fn occupied(blob: &[u8]) -> Result<Occupied, FdtError> {
    let blob = Blob::new(blob)?;
    let mut out = Occupied::default();
    for r in blob.mem_reserve() {
        let (start, size) = r?;
        if let Some(r) = Range::with_size(start, size) {
            out.push(r);
        }
    }
    // cells[d]: (#address-cells, #size-cells) for children of the node at
    // depth d (the root is depth 1), the DT spec's defaults until set.
    let mut cells = [(2usize, 1usize); MAX_DEPTH + 1];
    let mut depth = 0usize;
    // The depth-2 node being read is /chosen or /reserved-memory.
    let mut under = None::<&str>;
    let (mut initrd_start, mut initrd_end) = (None, None);
    for tok in blob.tokens() {
        match tok? {
            Token::Begin(name) => {
                depth += 1;
                if depth <= MAX_DEPTH {
                    cells[depth] = (2, 1);
                }
                if depth == 2 {
                    under = match name {
                        "chosen" | "reserved-memory" => Some(name),
                        _ => None,
                    };
                }
            }
            Token::Prop(name, value) => {
                if depth > MAX_DEPTH {
                    continue;
                }
                match name {
                    "#address-cells" => {
                        if let Some(n @ 1..=2) = cell(value) {
                            cells[depth].0 = n as usize;
                        }
                    }
                    "#size-cells" => {
                        if let Some(n @ 0..=2) = cell(value) {
                            cells[depth].1 = n as usize;
                        }
                    }
                    "reg" if depth >= 3 && under.is_some() => {
                        let (a, sz) = cells[depth - 1];
                        let entry = a + sz;
                        for i in 0..value.len() / 4 / entry.max(1) {
                            let r = read_cells(value, i * entry, a)
                                .zip(read_cells(value, i * entry + a, sz))
                                .and_then(|(start, size)| Range::with_size(start, size));
                            if let Some(r) = r {
                                out.push(r);
                            }
                        }
                    }
                    "linux,initrd-start" if depth == 2 && under == Some("chosen") => {
                        initrd_start = read_cells(value, 0, value.len() / 4)
                    }
                    "linux,initrd-end" if depth == 2 && under == Some("chosen") => {
                        initrd_end = read_cells(value, 0, value.len() / 4)
                    }
                    _ => {}
                }
            }
            Token::End => depth = depth.saturating_sub(1),
        }
    }
    if let (Some(start), Some(end)) = (initrd_start, initrd_end)
        && start < end
    {
        out.push(Range { start, end });
    }
    Ok(out)
}

/// Why no work area was found (shown before the heap exists, so no
/// `String`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoWorkArea {
    Blob(FdtError),
    TooManyRanges,
    NoRoom(u64),
}

impl fmt::Display for NoWorkArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blob(e) => write!(f, "the device tree {e}"),
            Self::TooManyRanges => write!(
                f,
                "/chosen and /reserved-memory place more than {MAX_OCCUPIED} ranges in memory; \
                 Oxen cannot tell where its heap may go"
            ),
            Self::NoRoom(size) => write!(
                f,
                "no free {} MiB of RAM for the hypervisor's heap and stacks: the image, the \
                 device tree, the boot modules and the reservations leave none",
                size >> 20
            ),
        }
    }
}

/// Where the boot puts its heap and stacks (`size` bytes): the highest
/// 2 MiB-aligned fit in `ram`, clear of the image, the tree (at `dtb`) and
/// everything the tree says is occupied (boot modules, reservations),
/// which is where loaders put the least. Allocation-free: the boot runs it
/// with the MMU off; `oxen-check` runs it on the host.
/// How many CPUs `/cpus` lists (its children with `device_type = "cpu"`):
/// how many stacks the work area holds. At least 1.
pub fn cpu_count(blob: &[u8]) -> Result<usize, FdtError> {
    let blob = Blob::new(blob)?;
    let mut depth = 0usize;
    let (mut in_cpus, mut is_cpu, mut count) = (false, false, 0usize);
    for tok in blob.tokens() {
        match tok? {
            Token::Begin(name) => {
                depth += 1;
                if depth == 2 {
                    in_cpus = name == "cpus";
                } else if depth == 3 {
                    is_cpu = false;
                }
            }
            Token::Prop(name, value) => {
                if depth == 3 && in_cpus && name == "device_type" && value == b"cpu\0" {
                    is_cpu = true;
                }
            }
            Token::End => {
                if depth == 3 && in_cpus && is_cpu {
                    count += 1;
                }
                depth = depth.saturating_sub(1);
            }
        }
    }
    Ok(count.max(1))
}

pub fn work_area(
    blob: &[u8],
    ram: &[Range],
    image: Range,
    dtb: Range,
    size: u64,
) -> Result<Range, NoWorkArea> {
    let occupied = occupied(blob).map_err(NoWorkArea::Blob)?;
    if occupied.overflow {
        return Err(NoWorkArea::TooManyRanges);
    }
    let mut taken = [Range::default(); MAX_OCCUPIED + 2];
    taken[0] = image;
    taken[1] = dtb;
    for (t, r) in taken[2..].iter_mut().zip(occupied.iter()) {
        *t = *r;
    }
    let taken = &taken[..2 + occupied.len];
    crate::memmap::highest_fit(ram, taken, size, 2 << 20).ok_or(NoWorkArea::NoRoom(size))
}

#[cfg(test)]
mod tests {
    use super::super::blob::FdtError;
    use super::*;
    use crate::hostdt::testdt::Virt;
    use alloc::string::String;

    #[test]
    fn cpus_are_counted_by_device_type() {
        for n in [1, 2, 12] {
            let v = Virt {
                cpus: n,
                ..Virt::default()
            };
            assert_eq!(cpu_count(v.build().bytes()).unwrap(), n as usize);
        }
    }

    #[test]
    fn finds_every_bank_without_allocating() {
        let v = Virt {
            memory: vec![(0x4000_0000, 0x2000_0000), (0x1_0000_0000, 0x4000_0000)],
            ..Virt::default()
        };
        let blob = v.build();
        let banks = memory_banks(blob.bytes()).unwrap();
        assert_eq!(
            banks.iter().copied().collect::<Vec<_>>(),
            [
                Range {
                    start: 0x4000_0000,
                    end: 0x6000_0000
                },
                Range {
                    start: 0x1_0000_0000,
                    end: 0x1_4000_0000
                }
            ]
        );
    }

    #[test]
    fn garbage_is_not_a_device_tree() {
        let words = [0u32; 16];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let blob = crate::hostdt::testdt::Blob::new(&bytes);
        assert!(matches!(
            memory_banks(blob.bytes()),
            Err(EarlyError::Blob(FdtError::BadMagic(0)))
        ));
    }

    /// QEMU virt's host tree (as the config tests use) with `from` made `to`.
    fn virt_with(from: &str, to: &str) -> crate::hostdt::testdt::Blob {
        use crate::config::testdts::{BASE, dtb, edit};
        let dts = BASE.replace("@RESERVED@", "").replace("@CHOSEN@", "");
        dtb(&edit(&dts, from, to))
    }

    fn early_error(from: &str, to: &str) -> String {
        let blob = virt_with(from, to);
        let e = memory_banks(blob.bytes()).unwrap_err();
        alloc::format!("{e}")
    }

    const MEMORY: &str = "    memory@40000000 {
        device_type = \"memory\";
        reg = <0x0 0x40000000 0x0 0x40000000>;
    };";

    #[test]
    fn overlapping_memory_banks_name_both_nodes() {
        let two = alloc::format!(
            "{MEMORY}\n    memory@60000000 {{\n        device_type = \"memory\";\n        \
             reg = <0x0 0x60000000 0x0 0x40000000>;\n    }};"
        );

        let e = early_error(MEMORY, &two);

        assert_eq!(
            e,
            "/memory@60000000: reg 0x0060000000-0x00a0000000 overlaps /memory@40000000 at \
             0x0040000000-0x0080000000 (each byte of RAM is described once)"
        );
    }

    #[test]
    fn a_memory_reg_of_the_wrong_cell_count_names_the_cells() {
        let e = early_error(
            "reg = <0x0 0x40000000 0x0 0x40000000>;",
            "reg = <0x40000000 0x40000000>;",
        );

        assert_eq!(
            e,
            "/memory@40000000: reg of 8 bytes is not a list of (address, size) pairs of 2+2 \
             cells (the #address-cells and #size-cells of /)"
        );
    }

    #[test]
    fn a_root_without_address_cells_says_the_defaults_apply() {
        let e = early_error("    #address-cells = <2>;\n    #size-cells = <2>;\n", "");

        assert!(
            e.ends_with(
                "pairs of 2+1 cells (the #address-cells and #size-cells of /); / lacks \
                 #address-cells or #size-cells, so the DT spec's defaults 2 and 1 apply (write \
                 both, e.g. <2> and <2>)"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_root_address_cells_of_zero_is_refused_with_the_accepted_values() {
        let e = early_error("    #address-cells = <2>;", "    #address-cells = <0>;");

        assert_eq!(
            e,
            "/: #address-cells = <0> cannot describe memory (expected <1> or <2>)"
        );
    }

    #[test]
    fn a_tree_without_a_memory_node_says_what_to_write() {
        let e = early_error(MEMORY, "");

        assert!(e.starts_with("describes no memory: no node directly under / has device_type"));
    }

    #[test]
    fn a_memory_node_without_device_type_is_named() {
        let e = early_error("        device_type = \"memory\";\n", "");

        assert!(
            e.ends_with("(/memory@40000000 has no device_type = \"memory\"; add it)"),
            "{e}"
        );
    }

    #[test]
    fn a_disabled_memory_node_is_not_ram() {
        let e = early_error(
            "device_type = \"memory\";",
            "device_type = \"memory\";\n        status = \"disabled\";",
        );

        assert!(e.starts_with("describes no memory"), "{e}");
    }

    #[test]
    fn a_damaged_blob_is_named_by_the_early_scan() {
        let blob = virt_with("", "");
        let mut bytes = blob.bytes().to_vec();
        bytes[0] = 0;
        let blob = crate::hostdt::testdt::Blob::new(&bytes);

        let e = memory_banks(blob.bytes()).unwrap_err();

        assert!(matches!(
            e,
            EarlyError::Blob(FdtError::BadMagic(0x000d_feed))
        ));
    }

    #[test]
    fn occupied_lists_modules_reservations_and_the_initrd() {
        use crate::config::testdts::{BASE, dtb, edit};
        let dts = BASE
            .replace(
                "@RESERVED@",
                "reserved-memory { #address-cells = <2>; #size-cells = <2>; ranges; \
                 fw@48000000 { reg = <0x0 0x48000000 0x0 0x100000>; }; };",
            )
            .replace(
                "@CHOSEN@",
                "linux,initrd-start = <0x0 0x4a000000>; linux,initrd-end = <0x0 0x4a001000>; \
                 domU1 { compatible = \"xen,domain\"; #address-cells = <1>; #size-cells = <1>; \
                 module@44000000 { compatible = \"multiboot,kernel\", \"multiboot,module\"; \
                 reg = <0x44000000 0x200000>; }; };",
            );
        let dts = edit(
            &dts,
            "/dts-v1/;",
            "/dts-v1/;\n/memreserve/ 0x4f000000 0x2000;",
        );
        let blob = dtb(&dts);
        let o = occupied(blob.bytes()).unwrap();
        let got: Vec<Range> = o.iter().copied().collect();
        let r = |start: u64, size: u64| Range::with_size(start, size).unwrap();
        assert_eq!(
            got,
            [
                r(0x4f00_0000, 0x2000),
                r(0x4800_0000, 0x10_0000),
                r(0x4400_0000, 0x20_0000),
                r(0x4a00_0000, 0x1000)
            ]
        );
        assert!(!o.overflow);
    }

    #[test]
    fn the_work_area_goes_below_a_module_at_the_top_of_ram() {
        use crate::config::testdts::{BASE, dtb};
        // RAM is 0x40000000-0x80000000; a module takes its last 4 MiB.
        let dts = BASE.replace("@RESERVED@", "").replace(
            "@CHOSEN@",
            "domU1 { compatible = \"xen,domain\"; #address-cells = <1>; #size-cells = <1>; \
             module@7fc00000 { compatible = \"multiboot,kernel\", \"multiboot,module\"; \
             reg = <0x7fc00000 0x400000>; }; };",
        );
        let blob = dtb(&dts);
        let ram = [Range::with_size(0x4000_0000, 0x4000_0000).unwrap()];
        let image = Range::with_size(0x4020_0000, 0x10_0000).unwrap();
        let dt = Range::with_size(0x4800_0000, 0x1000).unwrap();
        let mib = 1 << 20;
        let area = work_area(blob.bytes(), &ram, image, dt, 9 * mib).unwrap();
        assert_eq!(area, Range::with_size(0x7f20_0000, 9 * mib).unwrap());
        assert_eq!(
            work_area(blob.bytes(), &ram, image, dt, 2048 * mib),
            Err(NoWorkArea::NoRoom(2048 * mib))
        );
    }
}
