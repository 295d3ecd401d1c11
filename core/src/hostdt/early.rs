//! The one device-tree read done before the MMU is on: the RAM banks, found
//! without allocating (there is no heap yet) so the identity map can mark
//! them Normal memory.

use fdt_rs::base::DevTree;
use fdt_rs::prelude::{FallibleIterator, PropReader};

use super::fdt::read_cells;
use crate::memmap::Range;

/// Most RAM banks the early scan records; more are ignored until the full
/// parse (and reported there).
pub const MAX_EARLY_BANKS: usize = 16;

/// RAM banks found by [`memory_banks`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Banks {
    pub ranges: [Range; MAX_EARLY_BANKS],
    pub len: usize,
}

impl Banks {
    pub fn iter(&self) -> impl Iterator<Item = &Range> {
        self.ranges[..self.len].iter()
    }
}

/// Reads the `reg` of every `device_type = "memory"` node directly under the
/// root. `None` if the blob is not a device tree.
pub fn memory_banks(blob: &[u8]) -> Option<Banks> {
    if !(blob.as_ptr() as usize).is_multiple_of(4) {
        return None;
    }
    // SAFETY: 4-byte alignment is checked above; the function bounds-checks
    // the header it reads.
    let size = unsafe { DevTree::read_totalsize(blob) }.ok()?;
    let buf = blob.get(..size)?;
    // SAFETY: `buf` is aligned and exactly `totalsize` long.
    let dt = unsafe { DevTree::new(buf) }.ok()?;

    let root = dt.root().ok()??;
    let (mut ac, mut sc) = (2usize, 1usize);
    let mut props = root.props();
    while let Some(p) = props.next().ok()? {
        match p.name().ok()? {
            "#address-cells" => ac = p.u32(0).ok()? as usize,
            "#size-cells" => sc = p.u32(0).ok()? as usize,
            _ => {}
        }
    }

    let mut banks = Banks::default();
    let mut nodes = dt.nodes();
    while let Some(node) = nodes.next().ok()? {
        let mut is_memory = false;
        let mut reg: &[u8] = &[];
        let mut props = node.props();
        while let Some(p) = props.next().ok()? {
            match p.name().ok()? {
                "device_type" => is_memory = p.str().ok() == Some("memory"),
                "reg" => reg = p.raw(),
                _ => {}
            }
        }
        if !is_memory || ac + sc == 0 {
            continue;
        }
        let entry = ac + sc;
        for i in 0..reg.len() / 4 / entry {
            let (Some(a), Some(s)) = (
                read_cells(reg, i * entry, ac),
                read_cells(reg, i * entry + ac, sc),
            ) else {
                continue;
            };
            if let Some(r) = Range::with_size(a, s).filter(|r| !r.is_empty())
                && banks.len < MAX_EARLY_BANKS
            {
                banks.ranges[banks.len] = r;
                banks.len += 1;
            }
        }
    }
    Some(banks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostdt::testdt::Virt;

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
        assert!(memory_banks(blob.bytes()).is_none());
    }
}
