//! Structure-aware mutation of device-tree blobs: a blob is read into a
//! tree of nodes and properties, one edit of the kind a person makes in a
//! `.dts` is applied (a cell changed, a string swapped for another known
//! one, a property or node renamed, dropped, duplicated or moved), and the
//! tree is written back as a blob. The writer checks nothing, so names and
//! values that dtc would refuse reach Oxen's reader too.

use oxen_core::hostdt::Fdt;

/// An owned node.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub name: Vec<u8>,
    pub props: Vec<(Vec<u8>, Vec<u8>)>,
    pub children: Vec<Node>,
}

/// An owned tree: memory reservations and the root.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub reserve: Vec<(u64, u64)>,
    pub root: Node,
}

impl Tree {
    /// Reads a blob with Oxen's own reader; `None` if it refuses it.
    pub fn read(blob: &[u8]) -> Option<Tree> {
        let fdt = Fdt::parse(blob).ok()?;
        fn build(fdt: &Fdt<'_>, id: usize) -> Node {
            let n = fdt.node(id);
            Node {
                name: n.name.as_bytes().to_vec(),
                props: n
                    .props
                    .iter()
                    .map(|p| (p.name.as_bytes().to_vec(), p.value.to_vec()))
                    .collect(),
                children: fdt.children(id).map(|c| build(fdt, c)).collect(),
            }
        }
        Some(Tree {
            reserve: fdt
                .mem_reserve()
                .iter()
                .map(|r| (r.start, r.end - r.start))
                .collect(),
            root: build(&fdt, fdt.root()),
        })
    }

    /// The blob: version 17, header, reservations, structure, strings.
    pub fn write(&self) -> Vec<u8> {
        let mut strings: Vec<u8> = Vec::new();
        let mut structure: Vec<u8> = Vec::new();
        fn pad(v: &mut Vec<u8>) {
            while !v.len().is_multiple_of(4) {
                v.push(0);
            }
        }
        fn put(v: &mut Vec<u8>, x: u32) {
            v.extend_from_slice(&x.to_be_bytes());
        }
        fn node(n: &Node, s: &mut Vec<u8>, strings: &mut Vec<u8>) {
            put(s, 1);
            s.extend_from_slice(&n.name);
            s.push(0);
            pad(s);
            for (name, value) in &n.props {
                let off = match find(strings, name) {
                    Some(o) => o,
                    None => {
                        let o = strings.len();
                        strings.extend_from_slice(name);
                        strings.push(0);
                        o
                    }
                };
                put(s, 3);
                put(s, value.len() as u32);
                put(s, off as u32);
                s.extend_from_slice(value);
                pad(s);
            }
            for c in &n.children {
                node(c, s, strings);
            }
            put(s, 2);
        }
        fn find(strings: &[u8], name: &[u8]) -> Option<usize> {
            let mut at = 0;
            for s in strings.split(|&b| b == 0) {
                if s == name {
                    return Some(at);
                }
                at += s.len() + 1;
            }
            None
        }
        node(&self.root, &mut structure, &mut strings);
        put(&mut structure, 9);

        let rsv_off = 40usize;
        let struct_off = rsv_off + 16 * (self.reserve.len() + 1);
        let strings_off = struct_off + structure.len();
        let total = strings_off + strings.len();
        let mut out = Vec::with_capacity(total);
        for v in [
            0xd00d_feed,
            total as u32,
            struct_off as u32,
            strings_off as u32,
            rsv_off as u32,
            17,
            16,
            0,
            strings.len() as u32,
            structure.len() as u32,
        ] {
            put(&mut out, v);
        }
        for &(a, s) in self.reserve.iter().chain(core::iter::once(&(0, 0))) {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&s.to_be_bytes());
        }
        out.extend_from_slice(&structure);
        out.extend_from_slice(&strings);
        out
    }
}

/// Names and values people write in Oxen's trees (docs/bindings.md), so
/// that an edit often swaps one meaningful word for another.
const WORDS: &[&str] = &[
    "xen,domain",
    "multiboot,kernel",
    "multiboot,module",
    "multiboot,ramdisk",
    "multiboot,device-tree",
    "xen,linux-zimage",
    "xen,evtchn-v1",
    "xen,evtchn",
    "oxen,vif",
    "oxen,backend",
    "enabled",
    "no-xenstore",
    "disabled",
    "okay",
    "xen,enhanced",
    "vpl011",
    "memory",
    "cpus",
    "nr_spis",
    "max_grant_frames",
    "max_maptrack_frames",
    "max_evtchn_port",
    "xen,xen-bootargs",
    "bootargs",
    "stdout-path",
    "reg",
    "ranges",
    "#address-cells",
    "#size-cells",
    "compatible",
    "status",
    "phandle",
    "device_type",
    "interrupts",
    "interrupt-parent",
    "method",
    "enable-method",
    "arm,gic-v3",
    "arm,pl011",
    "arm,armv8-timer",
    "arm,psci-1.0",
    "arm,cortex-a57",
    "smc",
    "hvc",
    "psci",
    "no-map",
    "reserved-memory",
    "chosen",
    "domU1",
    "domU2",
    "kernel",
    "ramdisk",
    "module@50000000",
    "console=dtuart dtuart=/pl011@9000000",
];

/// A tiny deterministic generator (xorshift), seeded by libFuzzer.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u32) -> Self {
        Rng(u64::from(seed) | 0x9e37_79b9_0000_0000)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.below(WORDS.len())]
    }
}

/// Every node, as a path of child indices from the root.
fn paths(n: &Node, at: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    out.push(at.clone());
    for (i, c) in n.children.iter().enumerate() {
        at.push(i);
        paths(c, at, out);
        at.pop();
    }
}

fn node_mut<'a>(root: &'a mut Node, path: &[usize]) -> &'a mut Node {
    let mut n = root;
    for &i in path {
        n = &mut n.children[i];
    }
    n
}

/// A cell value worth trying.
fn interesting_cell(rng: &mut Rng, old: u32) -> u32 {
    match rng.below(10) {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => u32::MAX,
        4 => old.wrapping_add(1),
        5 => old.wrapping_sub(1),
        6 => old ^ (1 << rng.below(32)),
        7 => 0x8000_0000,
        8 => old.wrapping_mul(2),
        _ => rng.next_u64() as u32,
    }
}

/// Applies one edit to the tree. Returns false when the tree gave it
/// nothing to work on.
pub fn mutate(tree: &mut Tree, rng: &mut Rng) -> bool {
    let mut all = Vec::new();
    paths(&tree.root, &mut Vec::new(), &mut all);
    let path = all[rng.below(all.len())].clone();
    let other = all[rng.below(all.len())].clone();
    let kind = rng.below(14);
    let n = node_mut(&mut tree.root, &path);
    let np = n.props.len();
    match kind {
        // A cell of a property value.
        0..=2 if np > 0 => {
            let p = &mut n.props[rng.below(np)].1;
            if p.len() >= 4 {
                let at = rng.below(p.len() / 4) * 4;
                let old = u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
                let new = interesting_cell(rng, old);
                p[at..at + 4].copy_from_slice(&new.to_be_bytes());
            } else {
                p.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
            }
        }
        // A value one cell longer or shorter, or cut anywhere.
        3 if np > 0 => {
            let p = &mut n.props[rng.below(np)].1;
            match rng.below(3) {
                0 => p.extend_from_slice(&interesting_cell(rng, 0).to_be_bytes()),
                1 => p.truncate(p.len().saturating_sub(4)),
                _ => {
                    let cut = rng.below(p.len() + 1);
                    p.truncate(cut);
                }
            }
        }
        // A string value swapped for a known word, or a second string added.
        4 if np > 0 => {
            let w = rng.word().as_bytes().to_vec();
            let p = &mut n.props[rng.below(np)].1;
            if rng.below(2) == 0 {
                *p = w;
                p.push(0);
            } else {
                p.extend_from_slice(&w);
                p.push(0);
            }
        }
        // A property renamed.
        5 if np > 0 => {
            let i = rng.below(np);
            n.props[i].0 = rng.word().as_bytes().to_vec();
        }
        // A property dropped or duplicated.
        6 if np > 0 => {
            let i = rng.below(np);
            if rng.below(2) == 0 {
                n.props.remove(i);
            } else {
                let p = n.props[i].clone();
                n.props.push(p);
            }
        }
        // A new property: a known name with a few cells, empty, or a word.
        7 => {
            let name = rng.word().as_bytes().to_vec();
            let value = match rng.below(3) {
                0 => Vec::new(),
                1 => {
                    let mut v = rng.word().as_bytes().to_vec();
                    v.push(0);
                    v
                }
                _ => (0..1 + rng.below(4))
                    .flat_map(|_| interesting_cell(rng, 0).to_be_bytes())
                    .collect(),
            };
            n.props.push((name, value));
        }
        // A node renamed: a known word, a unit address added, a long name.
        8 if !path.is_empty() => {
            n.name = match rng.below(4) {
                0 => rng.word().as_bytes().to_vec(),
                1 => {
                    let mut v = n.name.clone();
                    v.extend_from_slice(format!("@{:x}", rng.next_u64() as u32).as_bytes());
                    v
                }
                2 => vec![b'a'; 28 + rng.below(8)],
                _ => Vec::new(),
            };
        }
        // A node dropped.
        9 if !path.is_empty() => {
            let (last, parent) = path.split_last().unwrap_or((&0, &[]));
            node_mut(&mut tree.root, parent).children.remove(*last);
        }
        // A node duplicated next to itself (same name: two domains called
        // alike, two memory nodes).
        10 if !path.is_empty() => {
            let copy = n.clone();
            let (_, parent) = path.split_last().unwrap_or((&0, &[]));
            node_mut(&mut tree.root, parent).children.push(copy);
        }
        // A property moved to another node.
        11 if np > 0 => {
            let p = n.props.remove(rng.below(np));
            // No node moved, so `other` still names one.
            let target = node_mut(&mut tree.root, &other);
            target.props.push(p);
        }
        // A subtree copied under another node (a module in the wrong
        // domain, a domain inside a domain).
        12 if !path.is_empty() => {
            let copy = n.clone();
            node_mut(&mut tree.root, &other).children.push(copy);
        }
        // A memory reservation added, changed or dropped.
        13 => match rng.below(3) {
            0 => tree.reserve.push((
                0x4000_0000 + (rng.below(0x4000) as u64) * 0x1_0000,
                (1 + rng.below(64) as u64) * 0x1_0000,
            )),
            1 if !tree.reserve.is_empty() => {
                let i = rng.below(tree.reserve.len());
                tree.reserve[i].1 = rng.next_u64();
            }
            _ if !tree.reserve.is_empty() => {
                tree.reserve.pop();
            }
            _ => return false,
        },
        _ => return false,
    }
    true
}

/// libFuzzer's custom mutator for blobs: 1 to 3 tree edits when the blob
/// reads as a tree, otherwise (or when the edit has nothing to work on, or
/// the result would be too long) libFuzzer's own byte mutations.
pub fn mutate_blob(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    fallback: impl FnOnce(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut rng = Rng::new(seed);
    // One in eight: bytes, so damage below the tree level is tried too.
    if rng.below(8) != 0
        && let Some(mut tree) = data.get(..size).and_then(Tree::read)
    {
        let mut changed = false;
        for _ in 0..1 + rng.below(3) {
            changed |= mutate(&mut tree, &mut rng);
        }
        if changed {
            let out = tree.write();
            if out.len() <= max_size && out.len() <= data.len() {
                data[..out.len()].copy_from_slice(&out);
                return out.len();
            }
        }
    }
    fallback(data, size, max_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        Tree {
            reserve: vec![(0x4800_0000, 0x1000)],
            root: Node {
                name: Vec::new(),
                props: vec![(b"#address-cells".to_vec(), 2u32.to_be_bytes().to_vec())],
                children: vec![Node {
                    name: b"chosen".to_vec(),
                    props: vec![(b"bootargs".to_vec(), b"x\0".to_vec())],
                    children: Vec::new(),
                }],
            },
        }
    }

    #[test]
    fn a_written_tree_reads_back_the_same() {
        let t = sample();
        let back = Tree::read(&t.write()).expect("Oxen reads what we write");
        assert_eq!(back.write(), t.write());
        assert_eq!(back.root.children[0].props[0].1, b"x\0");
        assert_eq!(back.reserve, t.reserve);
    }

    #[test]
    fn edits_keep_the_tree_writable() {
        let mut rng = Rng::new(7);
        let mut t = sample();
        for _ in 0..2000 {
            mutate(&mut t, &mut rng);
            if t.write().len() > 1 << 16 {
                t = sample();
            }
        }
    }
}
