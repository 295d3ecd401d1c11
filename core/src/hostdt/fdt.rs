//! An owned view of a flattened device tree.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::blob::{Blob, FdtError, Token};
use crate::memmap::Range;

/// Index of a node in [`Fdt`].
pub type NodeId = usize;

/// A problem with one node or property, worded for the person who wrote the
/// device tree: where, which property, what was found, what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtError {
    pub path: String,
    pub property: Option<String>,
    pub message: String,
}

impl DtError {
    pub fn node(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            property: None,
            message: message.into(),
        }
    }

    pub fn prop(path: impl Into<String>, property: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            property: Some(property.into()),
            message: message.into(),
        }
    }
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.property {
            Some(p) => write!(f, "{}: {} {}", self.path, p, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// A property: name and raw big-endian value.
#[derive(Debug, Clone, Copy)]
pub struct Prop<'dt> {
    pub name: &'dt str,
    pub value: &'dt [u8],
}

impl<'dt> Prop<'dt> {
    /// The `i`th 32-bit cell.
    pub fn cell(&self, i: usize) -> Option<u32> {
        let b = self.value.get(i * 4..i * 4 + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Number of whole 32-bit cells.
    pub fn cells(&self) -> usize {
        self.value.len() / 4
    }

    /// A single-cell value (exactly 4 bytes).
    pub fn u32(&self) -> Option<u32> {
        (self.value.len() == 4).then(|| self.cell(0)).flatten()
    }

    /// A two-cell value (exactly 8 bytes).
    pub fn u64(&self) -> Option<u64> {
        (self.value.len() == 8)
            .then(|| read_cells(self.value, 0, 2))
            .flatten()
    }

    /// A NUL-terminated string holding no other NUL.
    pub fn str(&self) -> Option<&'dt str> {
        let (last, body) = self.value.split_last()?;
        if *last != 0 || body.contains(&0) {
            return None;
        }
        core::str::from_utf8(body).ok()
    }

    /// A string list (each entry NUL-terminated); empty for a malformed one.
    pub fn strings(&self) -> impl Iterator<Item = &'dt str> + 'dt {
        let ok = self.value.last() == Some(&0);
        let v: &'dt [u8] = if ok {
            &self.value[..self.value.len() - 1]
        } else {
            &[]
        };
        v.split(|b| *b == 0)
            .filter(move |_| ok)
            .map(|s| core::str::from_utf8(s).unwrap_or(""))
    }

    /// The value as text for an error message.
    pub fn display(&self) -> String {
        if let Some(s) = self.str() {
            return format!("\"{s}\"");
        }
        if self.value.is_empty() {
            return String::from("<empty>");
        }
        let printable = |b: &[u8]| !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c));
        if let Some(body) = self.value.strip_suffix(&[0])
            && body.split(|b| *b == 0).all(printable)
        {
            let quoted: Vec<String> = body
                .split(|b| *b == 0)
                .map(|s| format!("\"{}\"", String::from_utf8_lossy(s)))
                .collect();
            return quoted.join(", ");
        }
        if printable(self.value) {
            return format!(
                "[the bytes \"{}\" without a terminating NUL]",
                String::from_utf8_lossy(self.value)
            );
        }
        if self.value.len().is_multiple_of(4) {
            let cells: Vec<String> = (0..self.cells())
                .map(|i| format!("{:#x}", self.cell(i).unwrap_or(0)))
                .collect();
            return format!("<{}>", cells.join(" "));
        }
        format!("[{} bytes]", self.value.len())
    }
}

/// Reads `n` big-endian cells starting at cell `at` as one number.
pub(crate) fn read_cells(value: &[u8], at: usize, n: usize) -> Option<u64> {
    if n > 2 {
        // Only the low 64 bits are meaningful to Oxen; higher cells must be 0.
        let hi = read_cells(value, at, n - 2)?;
        return (hi == 0)
            .then(|| read_cells(value, at + n - 2, 2))
            .flatten();
    }
    let mut v = 0u64;
    for i in 0..n {
        let b = value.get((at + i) * 4..(at + i) * 4 + 4)?;
        v = (v << 32) | u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    }
    Some(v)
}

/// A node: its name (with unit address), parent, children and properties.
#[derive(Debug, Clone)]
pub struct Node<'dt> {
    pub name: &'dt str,
    pub parent: Option<NodeId>,
    pub children: Vec<NodeId>,
    pub props: Vec<Prop<'dt>>,
}

/// A parsed device tree.
#[derive(Debug, Clone)]
pub struct Fdt<'dt> {
    nodes: Vec<Node<'dt>>,
    mem_reserve: Vec<Range>,
    total_size: usize,
    boot_cpuid: u32,
}

impl<'dt> Fdt<'dt> {
    /// Parses a blob (which may be longer than the tree it holds).
    pub fn parse(buf: &'dt [u8]) -> Result<Self, FdtError> {
        let blob = Blob::new(buf)?;
        let mut nodes: Vec<Node<'dt>> = Vec::new();
        let mut stack: Vec<NodeId> = Vec::new();
        for tok in blob.tokens() {
            match tok? {
                Token::Begin(name) => {
                    let id = nodes.len();
                    let parent = stack.last().copied();
                    if let Some(p) = parent {
                        nodes[p].children.push(id);
                    }
                    nodes.push(Node {
                        name,
                        parent,
                        children: Vec::new(),
                        props: Vec::new(),
                    });
                    stack.push(id);
                }
                Token::End => {
                    stack.pop();
                }
                Token::Prop(name, value) => {
                    // The walker yields properties only inside a node.
                    if let Some(&node) = stack.last() {
                        nodes[node].props.push(Prop { name, value });
                    }
                }
            }
        }
        let mem_reserve = blob
            .mem_reserve()
            .map(|r| r.map(|(a, s)| Range::with_size(a, s).unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            nodes,
            mem_reserve,
            total_size: blob.bytes.len(),
            boot_cpuid: blob.boot_cpuid,
        })
    }

    /// Bytes the tree occupies (its header's `totalsize`).
    pub fn total_size(&self) -> usize {
        self.total_size
    }

    /// The header's `boot_cpuid_phys`.
    pub fn boot_cpuid(&self) -> u32 {
        self.boot_cpuid
    }

    /// `/memreserve/` entries from the header.
    pub fn mem_reserve(&self) -> &[Range] {
        &self.mem_reserve
    }

    pub fn root(&self) -> NodeId {
        0
    }

    pub fn node(&self, id: NodeId) -> &Node<'dt> {
        &self.nodes[id]
    }

    /// Every node, depth-first in blob order.
    pub fn ids(&self) -> core::ops::Range<NodeId> {
        0..self.nodes.len()
    }

    pub fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes[id].children.iter().copied()
    }

    /// Depth below the root (the root is 0).
    pub fn depth(&self, mut id: NodeId) -> usize {
        let mut d = 0;
        while let Some(p) = self.nodes[id].parent {
            d += 1;
            id = p;
        }
        d
    }

    /// The full path, e.g. `/chosen/domU1`.
    pub fn path(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = id;
        while let Some(p) = self.nodes[cur].parent {
            parts.push(self.nodes[cur].name);
            cur = p;
        }
        if parts.is_empty() {
            return String::from("/");
        }
        parts.reverse();
        let mut s = String::new();
        for part in parts {
            s.push('/');
            s.push_str(part);
        }
        s
    }

    /// Looks up a node by absolute path. A component without a unit address
    /// also matches a node name with one (`/pl011` finds `/pl011@9000000`)
    /// when that is unambiguous.
    pub fn find(&self, path: &str) -> Option<NodeId> {
        let rest = path.strip_prefix('/')?;
        let mut cur = self.root();
        for comp in rest.split('/').filter(|c| !c.is_empty()) {
            let exact = self.children(cur).find(|&c| self.nodes[c].name == comp);
            cur = match exact {
                Some(c) => c,
                None if !comp.contains('@') => {
                    let mut m = self
                        .children(cur)
                        .filter(|&c| self.nodes[c].name.split('@').next() == Some(comp));
                    let first = m.next()?;
                    if m.next().is_some() {
                        return None;
                    }
                    first
                }
                None => return None,
            };
        }
        Some(cur)
    }

    /// Resolves an alias from `/aliases`, or an absolute path.
    pub fn resolve(&self, path_or_alias: &str) -> Option<NodeId> {
        if path_or_alias.starts_with('/') {
            return self.find(path_or_alias);
        }
        let aliases = self.find("/aliases")?;
        let target = self.prop(aliases, path_or_alias)?.str()?;
        self.find(target)
    }

    pub fn prop(&self, id: NodeId, name: &str) -> Option<&Prop<'dt>> {
        self.nodes[id].props.iter().find(|p| p.name == name)
    }

    pub fn has_prop(&self, id: NodeId, name: &str) -> bool {
        self.prop(id, name).is_some()
    }

    pub fn prop_str(&self, id: NodeId, name: &str) -> Option<&'dt str> {
        self.prop(id, name).and_then(Prop::str)
    }

    pub fn prop_u32(&self, id: NodeId, name: &str) -> Option<u32> {
        self.prop(id, name).and_then(Prop::u32)
    }

    /// Whether the node's `compatible` list contains `compat`.
    pub fn is_compatible(&self, id: NodeId, compat: &str) -> bool {
        self.prop(id, "compatible")
            .is_some_and(|p| p.strings().any(|s| s == compat))
    }

    /// `status` is absent, `"okay"` or `"ok"`.
    pub fn is_enabled(&self, id: NodeId) -> bool {
        matches!(self.prop_str(id, "status"), None | Some("okay" | "ok"))
    }

    /// The node with this `phandle` (or `linux,phandle`).
    pub fn by_phandle(&self, phandle: u32) -> Option<NodeId> {
        self.ids().find(|&id| {
            self.prop_u32(id, "phandle") == Some(phandle)
                || self.prop_u32(id, "linux,phandle") == Some(phandle)
        })
    }

    /// The node's own `#address-cells` (default 2, per the DT spec).
    pub fn address_cells(&self, id: NodeId) -> u32 {
        self.prop_u32(id, "#address-cells").unwrap_or(2)
    }

    /// The node's own `#size-cells` (default 1, per the DT spec).
    pub fn size_cells(&self, id: NodeId) -> u32 {
        self.prop_u32(id, "#size-cells").unwrap_or(1)
    }

    /// The `(address, size)` pairs of a property encoded with the cells of
    /// `id`'s parent, as `reg` is.
    pub fn ranges_of(&self, id: NodeId, prop: &str) -> Result<Vec<Range>, DtError> {
        let p = self
            .prop(id, prop)
            .ok_or_else(|| DtError::prop(self.path(id), prop, "is missing"))?;
        let parent = self.nodes[id].parent.unwrap_or(0);
        let (ac, sc) = (
            self.address_cells(parent) as usize,
            self.size_cells(parent) as usize,
        );
        let entry = ac + sc;
        if entry == 0
            || !p.value.len().is_multiple_of(4)
            || !p.cells().is_multiple_of(entry)
            || p.cells() == 0
        {
            let defaulted = if self.has_prop(parent, "#address-cells")
                && self.has_prop(parent, "#size-cells")
            {
                String::new()
            } else {
                format!(
                    " ({} has no #address-cells or #size-cells, so the DT spec's defaults 2 and \
                     1 apply)",
                    self.path(parent)
                )
            };
            return Err(DtError::prop(
                self.path(id),
                prop,
                format!(
                    "= {} is not a list of (address, size) pairs of {ac}+{sc} cells{defaulted}",
                    p.display()
                ),
            ));
        }
        (0..p.cells() / entry)
            .map(|i| {
                let a = read_cells(p.value, i * entry, ac);
                let s = read_cells(p.value, i * entry + ac, sc);
                match (a, s) {
                    (Some(a), Some(s)) => Range::with_size(a, s).ok_or_else(|| {
                        DtError::prop(
                            self.path(id),
                            prop,
                            format!("entry {i} ({a:#x} + {s:#x}) wraps the address space"),
                        )
                    }),
                    _ => Err(DtError::prop(
                        self.path(id),
                        prop,
                        format!("entry {i} does not fit in 64 bits"),
                    )),
                }
            })
            .collect()
    }

    /// `reg`, decoded with the parent's cells.
    pub fn reg(&self, id: NodeId) -> Result<Vec<Range>, DtError> {
        self.ranges_of(id, "reg")
    }
}
