//! The hypervisor's own (EL2 stage-1) identity map, built as plain data so
//! that its layout is tested on the host.
//!
//! 4 KiB granule, 39-bit addresses, lookup starting at level 1: 1 GiB
//! blocks, 2 MiB blocks and 4 KiB pages. RAM is Normal write-back
//! inner-shareable; everything else is Device-nGnRnE and never executable.

use core::fmt;

use crate::memmap::Range;

/// Bytes in a page and in a translation table.
pub const PAGE_SIZE: u64 = 4096;
/// Addresses the identity map covers: `[0, 1 << VA_BITS)`.
pub const VA_BITS: u32 = 39;
const ENTRIES: usize = 512;

/// MAIR_EL2 value matching the attribute indices used in descriptors:
/// index 0 Device-nGnRnE, index 1 Normal inner/outer write-back
/// read/write-allocate.
pub const MAIR_EL2: u64 = 0xff << 8;

/// A translation table: one 4 KiB page of descriptors.
#[repr(C, align(4096))]
#[derive(Clone)]
pub struct Table(pub [u64; ENTRIES]);

impl Table {
    pub const ZERO: Table = Table([0; ENTRIES]);
}

/// What a mapped address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// MMIO: Device-nGnRnE, execute-never.
    Device,
    /// RAM: Normal write-back, inner shareable.
    Normal,
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The range is not page-aligned.
    Unaligned(Range),
    /// The range reaches past `1 << VA_BITS`.
    OutOfRange(Range),
    /// The table pool has no table left.
    PoolExhausted,
    /// The boot CPU's MMU is on already.
    AlreadyOn,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned(r) => write!(f, "range {r} is not page-aligned"),
            Self::AlreadyOn => f.write_str("the MMU is on already"),
            Self::OutOfRange(r) => write!(f, "range {r} is beyond the {VA_BITS}-bit map"),
            Self::PoolExhausted => f.write_str("out of page-table pages"),
        }
    }
}

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_SHIFT: u32 = 2;
const AP_RES1: u64 = 1 << 6; // AP[1] is RES1 in the EL2 regime; AP[2]=0: read/write
const SH_INNER: u64 = 0b11 << 8;
const SH_OUTER: u64 = 0b10 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

fn leaf_attrs(ty: MemType) -> u64 {
    match ty {
        MemType::Device => (0 << ATTR_SHIFT) | AP_RES1 | SH_OUTER | AF | XN,
        MemType::Normal => (1 << ATTR_SHIFT) | AP_RES1 | SH_INNER | AF,
    }
}

fn leaf_type(desc: u64) -> MemType {
    if (desc >> ATTR_SHIFT) & 0b111 == 1 {
        MemType::Normal
    } else {
        MemType::Device
    }
}

fn shift(level: u32) -> u32 {
    12 + 9 * (3 - level)
}

/// Builds an identity map inside a pool of tables that is itself
/// identity-mapped at `pool_pa` (table `i` lives at `pool_pa + i * 4096`).
pub struct IdentityMap<'a> {
    pool: &'a mut [Table],
    used: usize,
    pool_pa: u64,
}

impl<'a> IdentityMap<'a> {
    /// Starts an empty map whose root is the pool's first table.
    pub fn new(pool: &'a mut [Table], pool_pa: u64) -> Result<Self, MapError> {
        if pool.is_empty() {
            return Err(MapError::PoolExhausted);
        }
        pool[0] = Table::ZERO;
        Ok(Self {
            pool,
            used: 1,
            pool_pa,
        })
    }

    /// Physical address of the level-1 table, for TTBR0_EL2.
    pub fn root_pa(&self) -> u64 {
        self.pool_pa
    }

    /// Tables used so far.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    /// Maps `range` (page-aligned) as `ty`, replacing any earlier mapping of
    /// those addresses and splitting larger blocks as needed.
    pub fn map(&mut self, range: Range, ty: MemType) -> Result<(), MapError> {
        if !range.start.is_multiple_of(PAGE_SIZE) || !range.end.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned(range));
        }
        if range.end > 1 << VA_BITS {
            return Err(MapError::OutOfRange(range));
        }
        if range.is_empty() {
            return Ok(());
        }
        self.map_in(0, 1, 0, range, ty)
    }

    fn alloc(&mut self) -> Result<usize, MapError> {
        let idx = self.used;
        let table = self.pool.get_mut(idx).ok_or(MapError::PoolExhausted)?;
        *table = Table::ZERO;
        self.used += 1;
        Ok(idx)
    }

    fn table_pa(&self, idx: usize) -> u64 {
        self.pool_pa + idx as u64 * PAGE_SIZE
    }

    fn table_idx(&self, desc: u64) -> usize {
        ((desc & ADDR_MASK) - self.pool_pa) as usize / PAGE_SIZE as usize
    }

    fn map_in(
        &mut self,
        table: usize,
        level: u32,
        table_base: u64,
        range: Range,
        ty: MemType,
    ) -> Result<(), MapError> {
        let sh = shift(level);
        let span = 1u64 << sh;
        let first = ((range.start - table_base) >> sh) as usize;
        let last = ((range.end - 1 - table_base) >> sh) as usize;
        for i in first..=last {
            let entry_start = table_base + ((i as u64) << sh);
            let entry = Range {
                start: entry_start,
                end: entry_start + span,
            };
            let sub = Range {
                start: range.start.max(entry.start),
                end: range.end.min(entry.end),
            };
            let old = self.pool[table].0[i];
            if sub == entry {
                let kind = if level == 3 { TABLE_OR_PAGE } else { 0 };
                self.pool[table].0[i] = entry.start | leaf_attrs(ty) | kind | VALID;
                continue;
            }
            let child = if old & VALID != 0 && old & TABLE_OR_PAGE != 0 {
                self.table_idx(old)
            } else {
                let child = self.alloc()?;
                if old & VALID != 0 {
                    // Split the block: the child repeats its type at the next level.
                    let old_ty = leaf_type(old);
                    let csh = shift(level + 1);
                    let kind = if level + 1 == 3 { TABLE_OR_PAGE } else { 0 };
                    for (j, d) in self.pool[child].0.iter_mut().enumerate() {
                        *d =
                            (entry.start + ((j as u64) << csh)) | leaf_attrs(old_ty) | kind | VALID;
                    }
                }
                self.pool[table].0[i] = self.table_pa(child) | TABLE_OR_PAGE | VALID;
                child
            };
            self.map_in(child, level + 1, entry.start, sub, ty)?;
        }
        Ok(())
    }

    /// Walks the tables: the type `addr` is mapped as, if any.
    pub fn lookup(&self, addr: u64) -> Option<MemType> {
        self.walk(addr).map(|(desc, _)| leaf_type(desc))
    }

    /// Walks the tables: the leaf descriptor for `addr` and its level.
    pub fn walk(&self, addr: u64) -> Option<(u64, u32)> {
        if addr >= 1 << VA_BITS {
            return None;
        }
        let mut table = 0;
        for level in 1..=3 {
            let desc = self.pool[table].0[((addr >> shift(level)) & 0x1ff) as usize];
            if desc & VALID == 0 {
                return None;
            }
            if level == 3 || desc & TABLE_OR_PAGE == 0 {
                return Some((desc, level));
            }
            table = self.table_idx(desc);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn pool(n: usize) -> Vec<Table> {
        vec![Table::ZERO; n]
    }

    #[test]
    fn whole_gigabytes_use_level1_blocks() {
        let mut p = pool(4);
        let mut m = IdentityMap::new(&mut p, 0x4010_0000).unwrap();
        m.map(
            Range {
                start: 0,
                end: 4 * GIB,
            },
            MemType::Device,
        )
        .unwrap();
        assert_eq!(m.tables_used(), 1);
        let (desc, level) = m.walk(3 * GIB + 5).unwrap();
        assert_eq!(level, 1);
        assert_eq!(desc & ADDR_MASK, 3 * GIB);
        assert_ne!(desc & XN, 0, "device memory must be execute-never");
    }

    #[test]
    fn ram_inside_a_device_block_splits_it_and_keeps_the_rest_device() {
        let mut p = pool(8);
        let mut m = IdentityMap::new(&mut p, 0x4010_0000).unwrap();
        m.map(
            Range {
                start: 0,
                end: 512 * GIB,
            },
            MemType::Device,
        )
        .unwrap();
        // RAM bank that is not 1 GiB aligned at its end: 0x4000_0000..0x5220_0000.
        let ram = Range {
            start: GIB,
            end: GIB + 290 * MIB + 4096 * 3,
        };
        m.map(ram, MemType::Normal).unwrap();
        assert_eq!(m.lookup(GIB), Some(MemType::Normal));
        assert_eq!(m.lookup(ram.end - 1), Some(MemType::Normal));
        assert_eq!(m.lookup(ram.end), Some(MemType::Device));
        assert_eq!(m.lookup(GIB - 1), Some(MemType::Device));
        assert_eq!(m.lookup(0x0900_0000), Some(MemType::Device));
        // 2 MiB blocks inside the bank, 4 KiB pages at its ragged end.
        assert_eq!(m.walk(GIB + 4 * MIB).unwrap().1, 2);
        assert_eq!(m.walk(ram.end - 1).unwrap().1, 3);
        let (desc, _) = m.walk(GIB + 10 * MIB).unwrap();
        assert_eq!(desc & XN, 0, "RAM must stay executable for the hypervisor");
        assert_eq!(desc & ADDR_MASK, GIB + 10 * MIB, "identity");
    }

    #[test]
    fn unmapped_addresses_have_no_translation() {
        let mut p = pool(4);
        let mut m = IdentityMap::new(&mut p, 0).unwrap();
        m.map(
            Range {
                start: GIB,
                end: 2 * GIB,
            },
            MemType::Normal,
        )
        .unwrap();
        assert_eq!(m.lookup(0), None);
        assert_eq!(m.lookup(1 << VA_BITS), None);
    }

    #[test]
    fn errors_for_unaligned_out_of_range_and_exhausted_pool() {
        let mut p = pool(2);
        let mut m = IdentityMap::new(&mut p, 0).unwrap();
        assert_eq!(
            m.map(
                Range {
                    start: 1,
                    end: 4096
                },
                MemType::Normal
            ),
            Err(MapError::Unaligned(Range {
                start: 1,
                end: 4096
            }))
        );
        let far = Range {
            start: 0,
            end: (1 << VA_BITS) + 4096,
        };
        assert_eq!(m.map(far, MemType::Normal), Err(MapError::OutOfRange(far)));
        // A single page needs a level-2 and a level-3 table: the pool has one.
        assert_eq!(
            m.map(
                Range {
                    start: 0,
                    end: 4096
                },
                MemType::Normal
            ),
            Err(MapError::PoolExhausted)
        );
    }
}
