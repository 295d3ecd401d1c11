//! The guest's own device tree (address in x0 at entry), walked with
//! `fdt-rs` without a heap: each query walks the token stream again, which
//! costs nothing for a tree of a few hundred bytes.

use fdt_rs::base::DevTree;
use fdt_rs::base::parse::ParsedTok;
use fdt_rs::prelude::FallibleIterator;

use crate::msg;
use crate::msg::Msg;

/// Nodes deeper than this are skipped (a domU tree is three levels deep).
const MAX_DEPTH: usize = 6;
/// Properties kept per node; a domU node has at most nine.
const MAX_PROPS: usize = 24;

/// A property: its name and raw big-endian value.
#[derive(Clone, Copy)]
pub struct Prop {
    pub name: &'static str,
    pub value: &'static [u8],
}

/// A node, with its path and properties.
#[derive(Clone, Copy)]
pub struct Node {
    /// 0 for the root.
    pub depth: usize,
    names: [&'static str; MAX_DEPTH],
    props: [Prop; MAX_PROPS],
    nprops: usize,
}

impl Node {
    const EMPTY: Prop = Prop {
        name: "",
        value: &[],
    };

    /// The node's name with its unit address (`""` for the root).
    pub fn name(&self) -> &'static str {
        self.names[self.depth.min(MAX_DEPTH - 1)]
    }

    /// The name of the ancestor at `depth` (1: the child of the root).
    pub fn ancestor(&self, depth: usize) -> &'static str {
        if depth <= self.depth && depth < MAX_DEPTH {
            self.names[depth]
        } else {
            ""
        }
    }

    /// The raw value of property `name`.
    pub fn prop(&self, name: &str) -> Option<&'static [u8]> {
        self.props[..self.nprops]
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value)
    }

    /// Property `name` as one NUL-terminated string.
    pub fn str(&self, name: &str) -> Option<&'static str> {
        let v = self.prop(name)?;
        let (last, body) = v.split_last()?;
        if *last != 0 || body.contains(&0) {
            return None;
        }
        core::str::from_utf8(body).ok()
    }

    /// Property `name` as a single 32-bit cell.
    pub fn u32(&self, name: &str) -> Option<u32> {
        cells(self.prop(name)?)
            .filter(|c| c.len() == 1)
            .map(|c| c.get(0))
    }

    /// Property `name` as 32-bit cells.
    pub fn cells(&self, name: &str) -> Option<Cells> {
        cells(self.prop(name)?)
    }

    /// Whether `compatible` lists `what`.
    pub fn is_compatible(&self, what: &str) -> bool {
        self.prop("compatible")
            .is_some_and(|v| v.split(|b| *b == 0).any(|s| s == what.as_bytes()))
    }
}

/// A property value read as big-endian 32-bit cells.
#[derive(Clone, Copy)]
pub struct Cells(&'static [u8]);

impl Cells {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Cell `i` (0 past the end).
    pub fn get(&self, i: usize) -> u32 {
        self.0
            .get(i * 4..i * 4 + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Cells `at..at+n` as one number (n is 1 or 2).
    pub fn num(&self, at: usize, n: usize) -> u64 {
        (at..at + n).fold(0, |v, i| (v << 32) | u64::from(self.get(i)))
    }
}

fn cells(v: &'static [u8]) -> Option<Cells> {
    v.len().is_multiple_of(4).then_some(Cells(v))
}

/// The device tree the hypervisor gave this guest.
pub struct Dt {
    tree: DevTree<'static>,
}

impl Dt {
    /// Reads the tree at guest-physical `addr`.
    pub fn at(addr: usize) -> Result<Self, Msg> {
        if addr == 0 || !addr.is_multiple_of(8) {
            return Err(msg!("x0 = {addr:#x} is not a device tree address"));
        }
        // SAFETY: the hypervisor put the tree in this guest's RAM at `addr`
        // (boot protocol: x0), outside the guest image; nothing writes it,
        // so it may be borrowed for the whole run. The header is read first
        // to learn the length.
        let head: &'static [u8] = unsafe { core::slice::from_raw_parts(addr as *const u8, 40) };
        let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if magic != 0xd00d_feed {
            return Err(msg!("no FDT magic at x0 = {addr:#x} (found {magic:#x})"));
        }
        let size = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if !(40..=2 << 20).contains(&size) {
            return Err(msg!("device tree at {addr:#x} claims {size} bytes"));
        }
        // SAFETY: as above, for the `totalsize` bytes the header declares
        // (the boot protocol caps a tree at 2 MiB, checked above).
        let buf: &'static [u8] = unsafe { core::slice::from_raw_parts(addr as *const u8, size) };
        // SAFETY: `buf` is 8-byte aligned (checked above) and exactly the
        // header's `totalsize` long, which is all `DevTree::new` requires.
        let tree = unsafe { DevTree::new(buf) }
            .map_err(|_| msg!("device tree at {addr:#x} has a bad header"))?;
        Ok(Self { tree })
    }

    /// Calls `f` for every node in blob order (a node's properties all come
    /// before its children, so each node is complete when it is passed on).
    pub fn each(&self, mut f: impl FnMut(&Node)) -> Result<(), Msg> {
        let buf = self.tree.buf();
        let strings = buf.get(self.tree.off_dt_strings()..).unwrap_or(&[]);
        let mut cur = Node {
            depth: 0,
            names: [""; MAX_DEPTH],
            props: [Node::EMPTY; MAX_PROPS],
            nprops: 0,
        };
        // Depth of the open node; -1 before the root.
        let mut depth: isize = -1;
        let mut pending = false;
        let mut it = self.tree.parse_iter();
        loop {
            let tok = it
                .next()
                .map_err(|_| msg!("device tree structure block is malformed"))?;
            let Some(tok) = tok else { break };
            match tok {
                ParsedTok::BeginNode(b) => {
                    if pending {
                        f(&cur);
                    }
                    depth += 1;
                    let d = depth as usize;
                    let name = core::str::from_utf8(b.name).unwrap_or("?");
                    if d < MAX_DEPTH {
                        cur.names[d] = name;
                    }
                    cur.depth = d;
                    cur.nprops = 0;
                    pending = d < MAX_DEPTH;
                }
                ParsedTok::EndNode => {
                    if pending {
                        f(&cur);
                        pending = false;
                    }
                    depth -= 1;
                }
                ParsedTok::Prop(p) => {
                    let name = strings
                        .get(p.name_offset..)
                        .and_then(|s| s.split(|b| *b == 0).next())
                        .and_then(|s| core::str::from_utf8(s).ok())
                        .unwrap_or("?");
                    if pending && cur.nprops < MAX_PROPS {
                        cur.props[cur.nprops] = Prop {
                            name,
                            value: p.prop_buf,
                        };
                        cur.nprops += 1;
                    }
                }
                ParsedTok::Nop => {}
            }
        }
        Ok(())
    }

    /// The first node `want` accepts.
    pub fn find(&self, mut want: impl FnMut(&Node) -> bool) -> Result<Option<Node>, Msg> {
        let mut found = None;
        self.each(|n| {
            if found.is_none() && want(n) {
                found = Some(*n);
            }
        })?;
        Ok(found)
    }

    /// The direct child of the root called `name` (with its unit address).
    pub fn top(&self, name: &str) -> Result<Option<Node>, Msg> {
        self.find(|n| n.depth == 1 && n.name() == name)
    }

    /// The root node.
    pub fn root(&self) -> Result<Node, Msg> {
        self.find(|n| n.depth == 0)?
            .ok_or_else(|| msg!("device tree has no root node"))
    }

    /// The base address of the first child of the root that `want`
    /// accepts: its first `reg` entry, read with two address cells as a
    /// domU tree (and QEMU's `virt` tree) has them.
    pub fn top_base(&self, mut want: impl FnMut(&Node) -> bool) -> Option<usize> {
        self.find(|n| n.depth == 1 && want(n))
            .ok()
            .flatten()
            .and_then(|n| n.cells("reg"))
            .filter(|r| r.len() >= 2)
            .map(|r| r.num(0, 2) as usize)
    }

    /// `/chosen/bootargs`, or `""` without one.
    pub fn bootargs(&self) -> &'static str {
        self.top("chosen")
            .ok()
            .flatten()
            .and_then(|c| c.str("bootargs"))
            .unwrap_or("")
    }
}

/// `/chosen/bootargs` read as `key=value` words: the value of `key`.
pub fn bootarg<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    bootargs
        .split_ascii_whitespace()
        .filter_map(|w| w.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}
