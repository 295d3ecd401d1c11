//! A domain's stage-2 translation tables (guest IPA to host PA), built as
//! plain data over [`TableMemory`] so that the logic is tested on the host.
//!
//! 4 KiB granule, lookup starting at level 1 for IPA sizes of 32 to 40 bits
//! (two concatenated level-1 tables at 40 bits): 1 GiB blocks, 2 MiB blocks
//! and 4 KiB pages. Descriptors assume FEAT_S2FWB is off, so the memory type
//! in a descriptor combines with the guest's own stage-1 attributes.

use core::fmt;

use crate::memmap::Range;
use crate::pagetable::PAGE_SIZE;

/// Where table pages come from and how they are reached (the arch layer
/// implements this over identity-mapped RAM; tests use a fake).
pub trait TableMemory {
    /// `n` physically contiguous zeroed 4 KiB tables aligned to n*4 KiB;
    /// returns the PA of the first.
    fn alloc_tables(&mut self, n: usize) -> Option<u64>;
    /// Gives back one 4 KiB table (each page of a concatenated root is
    /// freed on its own).
    fn free_table(&mut self, pa: u64);
    /// The table at `pa`, for reading.
    fn table(&self, pa: u64) -> &[u64; 512];
    /// The table at `pa`, for writing.
    fn table_mut(&mut self, pa: u64) -> &mut [u64; 512];
    /// Break-before-make: a descriptor that was valid and covered `ipa` has
    /// just been made invalid, and nothing new has been written in its place
    /// yet. If the tables are live, the arch layer must invalidate the TLB
    /// entries for `ipa` (for this VMID) before returning; tables it
    /// pointed to are freed only after this call. The default does nothing,
    /// which is right while no vCPU runs on these tables.
    fn invalidate(&mut self, ipa: Range) {
        let _ = ipa;
    }
}

/// Table memory with a per-domain budget: at most `limit` 4 KiB table
/// pages live at once, Xen's P2M pool (`xen,domain-p2m-mem-mb`). A guest
/// makes the hypervisor allocate tables by mapping foreign pages at
/// scattered addresses (one table per 2 MiB it touches), so without a
/// budget one domain could take the whole heap; at the budget a mapping
/// fails with [`S2Error::OutOfTables`] (the guest sees `-ENOMEM`, or a
/// grant map's `GNTST_general_error`), and other domains are untouched.
#[derive(Debug, Default)]
pub struct Budgeted<M> {
    inner: M,
    limit: usize,
    used: usize,
}

impl<M: TableMemory> Budgeted<M> {
    pub fn new(inner: M, limit: usize) -> Self {
        Self {
            inner,
            limit,
            used: 0,
        }
    }

    /// Table pages live now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The budget, in table pages.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl<M: TableMemory> TableMemory for Budgeted<M> {
    fn alloc_tables(&mut self, n: usize) -> Option<u64> {
        let after = self.used.checked_add(n).filter(|&u| u <= self.limit)?;
        let pa = self.inner.alloc_tables(n)?;
        self.used = after;
        Some(pa)
    }

    fn free_table(&mut self, pa: u64) {
        self.used = self.used.saturating_sub(1);
        self.inner.free_table(pa);
    }

    fn table(&self, pa: u64) -> &[u64; 512] {
        self.inner.table(pa)
    }

    fn table_mut(&mut self, pa: u64) -> &mut [u64; 512] {
        self.inner.table_mut(pa)
    }

    fn invalidate(&mut self, ipa: Range) {
        self.inner.invalidate(ipa);
    }
}

/// The memory type of a stage-2 mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S2Mem {
    /// RAM: Normal inner and outer write-back, inner shareable.
    Normal,
    /// MMIO: Device-nGnRE.
    Device,
}

/// What a guest may do with a stage-2 mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Attrs {
    pub mem: S2Mem,
    /// Writable; always readable.
    pub write: bool,
    /// Executable at EL1 and EL0. Device memory never is.
    pub exec: bool,
}

impl S2Attrs {
    /// Guest RAM: Normal, read/write, executable.
    pub const RAM: S2Attrs = S2Attrs {
        mem: S2Mem::Normal,
        write: true,
        exec: true,
    };
    /// A device's registers: Device-nGnRE, read/write, never executable.
    pub const MMIO: S2Attrs = S2Attrs {
        mem: S2Mem::Device,
        write: true,
        exec: false,
    };
}

/// Why stage-2 tables could not be built or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S2Error {
    /// The IPA size is not one [`Stage2`] supports.
    BadIpaBits(u32),
    /// The IPA range does not start and end on page boundaries.
    UnalignedIpa(Range),
    /// The PA is not page-aligned.
    UnalignedPa(u64),
    /// The IPA range reaches past the domain's address space.
    IpaOutOfRange { ipa: Range, ipa_bits: u32 },
    /// The PA range reaches past what a descriptor can hold.
    PaOutOfRange { pa: u64, size: u64 },
    /// Device memory was asked to be executable.
    ExecutableDevice(Range),
    /// [`TableMemory::alloc_tables`] failed. What was mapped before that
    /// stays mapped.
    OutOfTables,
}

impl fmt::Display for S2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadIpaBits(bits) => write!(
                f,
                "a {bits}-bit guest physical address space is not supported \
                 (expected {MIN_IPA_BITS} to {MAX_IPA_BITS} bits)"
            ),
            Self::UnalignedIpa(ipa) => {
                write!(f, "guest range {ipa} is not page-aligned")
            }
            Self::UnalignedPa(pa) => write!(f, "host address {pa:#x} is not page-aligned"),
            Self::IpaOutOfRange { ipa, ipa_bits } => write!(
                f,
                "guest range {ipa} is beyond the domain's {ipa_bits}-bit address space"
            ),
            Self::PaOutOfRange { pa, size } => write!(
                f,
                "host range of {size:#x} bytes at {pa:#x} is beyond the \
                 {MAX_PA_BITS}-bit physical address space"
            ),
            Self::ExecutableDevice(ipa) => write!(
                f,
                "guest range {ipa}: device memory cannot be mapped executable"
            ),
            Self::OutOfTables => f.write_str("out of memory for stage-2 tables"),
        }
    }
}

/// The smallest IPA size supported.
pub const MIN_IPA_BITS: u32 = 32;
/// The largest IPA size supported: 1 TiB, two concatenated level-1 tables.
pub const MAX_IPA_BITS: u32 = 40;
/// Output addresses are 48 bits without FEAT_LPA/LPA2.
const MAX_PA_BITS: u32 = 48;
const ENTRIES: usize = 512;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const TYPE_MASK: u64 = 0b11;
const MEMATTR_MASK: u64 = 0b1111 << 2;
const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
const S2AP_READ: u64 = 0b01 << 6;
const S2AP_WRITE: u64 = 0b10 << 6;
const SH_OUTER: u64 = 0b10 << 8;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

const VTCR_T0SZ_SHIFT: u32 = 0;
const VTCR_SL0_LEVEL1: u64 = 0b01 << 6;
const VTCR_IRGN0_WBWA: u64 = 0b01 << 8;
const VTCR_ORGN0_WBWA: u64 = 0b01 << 10;
const VTCR_SH0_INNER: u64 = 0b11 << 12;
const VTCR_TG0_4K: u64 = 0b00 << 14;
const VTCR_PS_SHIFT: u32 = 16;
const VTCR_RES1: u64 = 1 << 31;
const VTTBR_VMID_SHIFT: u32 = 48;

fn shift(level: u32) -> u32 {
    12 + 9 * (3 - level)
}

fn is_table(desc: u64, level: u32) -> bool {
    level < 3 && desc & TYPE_MASK == VALID | TABLE_OR_PAGE
}

fn leaf_kind(level: u32) -> u64 {
    if level == 3 {
        VALID | TABLE_OR_PAGE
    } else {
        VALID
    }
}

fn leaf_attrs(attrs: S2Attrs) -> u64 {
    let access = S2AP_READ | if attrs.write { S2AP_WRITE } else { 0 };
    let mem = match attrs.mem {
        S2Mem::Normal => MEMATTR_NORMAL_WB | SH_INNER,
        // Device memory is outer shareable whatever SH says; say so.
        S2Mem::Device => MEMATTR_DEVICE_NGNRE | SH_OUTER,
    };
    let xn = if attrs.exec { 0 } else { XN };
    mem | access | AF | xn
}

fn decode_attrs(desc: u64) -> S2Attrs {
    S2Attrs {
        mem: if desc & MEMATTR_MASK == MEMATTR_NORMAL_WB {
            S2Mem::Normal
        } else {
            S2Mem::Device
        },
        write: desc & S2AP_WRITE != 0,
        exec: desc & XN == 0,
    }
}

/// The PA encoding of VTCR_EL2.PS for a CPU with `pa_bits` of physical
/// address: the largest size the CPU has, capped at 48 bits since
/// descriptors here hold no more.
fn ps_field(pa_bits: u32) -> u64 {
    match pa_bits {
        0..36 => 0b000,
        36..40 => 0b001,
        40..42 => 0b010,
        42..44 => 0b011,
        44..48 => 0b100,
        _ => 0b101,
    }
}

/// VTCR_EL2 for stage-2 tables of `ipa_bits` (32 to 40) on a CPU with
/// `pa_bits` of physical address, before any [`Stage2`] exists: the value is
/// the same for every domain with that IPA size. See [`Stage2::vtcr`].
pub fn vtcr(ipa_bits: u32, pa_bits: u32) -> u64 {
    debug_assert!((MIN_IPA_BITS..=MAX_IPA_BITS).contains(&ipa_bits));
    VTCR_RES1
        | (ps_field(pa_bits) << VTCR_PS_SHIFT)
        | VTCR_TG0_4K
        | VTCR_SH0_INNER
        | VTCR_ORGN0_WBWA
        | VTCR_IRGN0_WBWA
        | VTCR_SL0_LEVEL1
        | (u64::from(64 - ipa_bits) << VTCR_T0SZ_SHIFT)
}

/// A mapping being made: the whole request, so that any IPA inside it
/// knows its PA.
#[derive(Clone, Copy)]
struct Job {
    ipa: Range,
    pa: u64,
    leaf: u64,
}

impl Job {
    fn pa_of(&self, ipa: u64) -> u64 {
        self.pa + (ipa - self.ipa.start)
    }
}

/// One domain's stage-2 tables.
#[derive(Debug)]
pub struct Stage2 {
    root: u64,
    ipa_bits: u32,
}

impl Stage2 {
    /// Empty tables for an IPA space of `ipa_bits` (32 to 40).
    pub fn new(mem: &mut impl TableMemory, ipa_bits: u32) -> Result<Self, S2Error> {
        if !(MIN_IPA_BITS..=MAX_IPA_BITS).contains(&ipa_bits) {
            return Err(S2Error::BadIpaBits(ipa_bits));
        }
        let root_tables = if ipa_bits > 39 {
            1 << (ipa_bits - 39)
        } else {
            1
        };
        let root = mem.alloc_tables(root_tables).ok_or(S2Error::OutOfTables)?;
        debug_assert_eq!(root % (root_tables as u64 * PAGE_SIZE), 0);
        Ok(Self { root, ipa_bits })
    }

    /// The PA of the (first) root table.
    pub fn root_pa(&self) -> u64 {
        self.root
    }

    /// The size of the domain's IPA space in bits.
    pub fn ipa_bits(&self) -> u32 {
        self.ipa_bits
    }

    /// VTCR_EL2 for these tables on a CPU with `pa_bits` of physical
    /// address: T0SZ from the IPA size, lookup from level 1, write-back
    /// write-allocate inner-shareable table walks, 4 KiB granule, PS from
    /// `pa_bits` and 8-bit VMIDs (VS clear).
    pub fn vtcr(&self, pa_bits: u32) -> u64 {
        vtcr(self.ipa_bits, pa_bits)
    }

    /// VTTBR_EL2 for these tables: the root and `vmid` in bits 63:48. With
    /// 8-bit VMIDs (as [`Stage2::vtcr`] sets up) `vmid` must be below 256,
    /// so that bits 63:56 stay zero.
    pub fn vttbr(&self, vmid: u16) -> u64 {
        (u64::from(vmid) << VTTBR_VMID_SHIFT) | self.root
    }

    fn root_entries(&self) -> usize {
        1 << (self.ipa_bits - shift(1))
    }

    fn check_ipa(&self, ipa: Range) -> Result<(), S2Error> {
        if !ipa.start.is_multiple_of(PAGE_SIZE)
            || !ipa.end.is_multiple_of(PAGE_SIZE)
            || ipa.start > ipa.end
        {
            return Err(S2Error::UnalignedIpa(ipa));
        }
        if ipa.end > 1 << self.ipa_bits {
            return Err(S2Error::IpaOutOfRange {
                ipa,
                ipa_bits: self.ipa_bits,
            });
        }
        Ok(())
    }

    /// Maps `ipa` (page-aligned) to the host range starting at `pa`.
    /// Uses 1 GiB and 2 MiB blocks wherever the IPA and the PA are both
    /// aligned to them, pages elsewhere. Replaces whatever was mapped there,
    /// splitting blocks that are only partly replaced and freeing tables
    /// that a new block makes unreachable.
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        ipa: Range,
        pa: u64,
        attrs: S2Attrs,
    ) -> Result<(), S2Error> {
        self.check_ipa(ipa)?;
        if !pa.is_multiple_of(PAGE_SIZE) {
            return Err(S2Error::UnalignedPa(pa));
        }
        if pa
            .checked_add(ipa.size())
            .is_none_or(|end| end > 1 << MAX_PA_BITS)
        {
            return Err(S2Error::PaOutOfRange {
                pa,
                size: ipa.size(),
            });
        }
        if attrs.mem == S2Mem::Device && attrs.exec {
            return Err(S2Error::ExecutableDevice(ipa));
        }
        if ipa.is_empty() {
            return Ok(());
        }
        let job = Job {
            ipa,
            pa,
            leaf: leaf_attrs(attrs),
        };
        self.map_in(mem, self.root, 1, 0, ipa, &job)
    }

    fn map_in(
        &mut self,
        mem: &mut impl TableMemory,
        table: u64,
        level: u32,
        base: u64,
        range: Range,
        job: &Job,
    ) -> Result<(), S2Error> {
        let sh = shift(level);
        let span = 1u64 << sh;
        let first = ((range.start - base) >> sh) as usize;
        let last = ((range.end - 1 - base) >> sh) as usize;
        for i in first..=last {
            let entry = entry_range(base, i, sh);
            let part = Range {
                start: range.start.max(entry.start),
                end: range.end.min(entry.end),
            };
            let out = job.pa_of(part.start);
            if part == entry && out.is_multiple_of(span) {
                let desc = out | job.leaf | leaf_kind(level);
                self.replace(mem, table, i, level, entry, desc);
                continue;
            }
            let child = self.child(mem, table, i, level, entry)?;
            self.map_in(mem, child, level + 1, entry.start, part, job)?;
        }
        Ok(())
    }

    /// Removes every mapping in `ipa` (page-aligned), splitting blocks that
    /// reach outside it and freeing tables left empty.
    pub fn unmap(&mut self, mem: &mut impl TableMemory, ipa: Range) -> Result<(), S2Error> {
        self.check_ipa(ipa)?;
        if ipa.is_empty() {
            return Ok(());
        }
        self.unmap_in(mem, self.root, 1, 0, ipa)
    }

    fn unmap_in(
        &mut self,
        mem: &mut impl TableMemory,
        table: u64,
        level: u32,
        base: u64,
        range: Range,
    ) -> Result<(), S2Error> {
        let sh = shift(level);
        let first = ((range.start - base) >> sh) as usize;
        let last = ((range.end - 1 - base) >> sh) as usize;
        for i in first..=last {
            if read(mem, table, i) & VALID == 0 {
                continue;
            }
            let entry = entry_range(base, i, sh);
            let part = Range {
                start: range.start.max(entry.start),
                end: range.end.min(entry.end),
            };
            if part == entry {
                self.replace(mem, table, i, level, entry, 0);
                continue;
            }
            let child = self.child(mem, table, i, level, entry)?;
            self.unmap_in(mem, child, level + 1, entry.start, part)?;
            if mem.table(child).iter().all(|d| d & VALID == 0) {
                self.replace(mem, table, i, level, entry, 0);
            }
        }
        Ok(())
    }

    /// Writes `desc` into entry `i` of `table`, which covers `entry`. A valid
    /// descriptor is first made invalid and reported to
    /// [`TableMemory::invalidate`] (break-before-make); tables it pointed to
    /// are freed after that.
    fn replace(
        &mut self,
        mem: &mut impl TableMemory,
        table: u64,
        i: usize,
        level: u32,
        entry: Range,
        desc: u64,
    ) {
        let old = read(mem, table, i);
        if old == desc {
            return;
        }
        if old & VALID != 0 {
            write(mem, table, i, 0);
            mem.invalidate(entry);
            if is_table(old, level) {
                free_tree(mem, old & ADDR_MASK, level + 1);
            }
        }
        if desc != 0 {
            write(mem, table, i, desc);
        }
    }

    /// The next-level table under entry `i` of `table`, creating it if
    /// needed. A block there is split: the new table repeats it in
    /// next-level blocks or pages with the same attributes.
    fn child(
        &mut self,
        mem: &mut impl TableMemory,
        table: u64,
        i: usize,
        level: u32,
        entry: Range,
    ) -> Result<u64, S2Error> {
        let old = read(mem, table, i);
        if is_table(old, level) {
            return Ok(old & ADDR_MASK);
        }
        let child = mem.alloc_tables(1).ok_or(S2Error::OutOfTables)?;
        if old & VALID != 0 {
            let csh = shift(level + 1);
            let attrs = old & !ADDR_MASK & !TYPE_MASK;
            let out = old & ADDR_MASK;
            let kind = leaf_kind(level + 1);
            for (j, d) in mem.table_mut(child).iter_mut().enumerate() {
                *d = (out + ((j as u64) << csh)) | attrs | kind;
            }
        }
        self.replace(mem, table, i, level, entry, child | VALID | TABLE_OR_PAGE);
        Ok(child)
    }

    /// The leaf descriptor mapping `ipa` and its level (1 and 2 are blocks,
    /// 3 a page), if any.
    pub fn walk(&self, mem: &impl TableMemory, ipa: u64) -> Option<(u64, u32)> {
        if ipa >= 1 << self.ipa_bits {
            return None;
        }
        let mut table = self.root;
        for level in 1..=3 {
            // The root index may pass 511: it runs on into the next
            // concatenated table.
            let mut i = (ipa >> shift(level)) as usize;
            if level > 1 {
                i %= ENTRIES;
            }
            let desc = read(mem, table, i);
            if desc & VALID == 0 {
                return None;
            }
            if !is_table(desc, level) {
                return Some((desc, level));
            }
            table = desc & ADDR_MASK;
        }
        None
    }

    /// The host PA and attributes `ipa` is mapped to, if it is.
    pub fn translate(&self, mem: &impl TableMemory, ipa: u64) -> Option<(u64, S2Attrs)> {
        let (desc, level) = self.walk(mem, ipa)?;
        let offset_mask = (1u64 << shift(level)) - 1;
        let pa = (desc & ADDR_MASK & !offset_mask) | (ipa & offset_mask);
        Some((pa, decode_attrs(desc)))
    }

    /// Frees every table, the root included.
    pub fn destroy(self, mem: &mut impl TableMemory) {
        for i in 0..self.root_entries() {
            let desc = read(mem, self.root, i);
            if is_table(desc, 1) {
                free_tree(mem, desc & ADDR_MASK, 2);
            }
        }
        for t in 0..self.root_entries().div_ceil(ENTRIES) {
            mem.free_table(self.root + t as u64 * PAGE_SIZE);
        }
    }
}

/// What entry `i` of a level table at `base` covers (`sh` from [`shift`]).
fn entry_range(base: u64, i: usize, sh: u32) -> Range {
    let start = base + ((i as u64) << sh);
    Range {
        start,
        end: start + (1 << sh),
    }
}

/// Entry `i` of `table`; `i` may run past 511 into the next concatenated
/// root table.
fn read(mem: &impl TableMemory, table: u64, i: usize) -> u64 {
    mem.table(table + (i / ENTRIES) as u64 * PAGE_SIZE)[i % ENTRIES]
}

fn write(mem: &mut impl TableMemory, table: u64, i: usize, desc: u64) {
    mem.table_mut(table + (i / ENTRIES) as u64 * PAGE_SIZE)[i % ENTRIES] = desc;
}

/// Frees the level-`level` table at `table` and every table below it.
fn free_tree(mem: &mut impl TableMemory, table: u64, level: u32) {
    if level < 3 {
        for i in 0..ENTRIES {
            let desc = mem.table(table)[i];
            if is_table(desc, level) {
                free_tree(mem, desc & ADDR_MASK, level + 1);
            }
        }
    }
    mem.free_table(table);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// Tables in a map keyed by PA; counts what is live and records every
    /// invalidation.
    struct FakeMem {
        tables: BTreeMap<u64, Box<[u64; 512]>>,
        next: u64,
        allocated: usize,
        limit: usize,
        invalidated: Vec<Range>,
    }

    impl FakeMem {
        fn new() -> Self {
            Self::with_limit(usize::MAX)
        }

        fn with_limit(limit: usize) -> Self {
            Self {
                tables: BTreeMap::new(),
                next: 0x8_0000_1000,
                allocated: 0,
                limit,
                invalidated: Vec::new(),
            }
        }

        fn live(&self) -> usize {
            self.tables.len()
        }
    }

    impl TableMemory for FakeMem {
        fn alloc_tables(&mut self, n: usize) -> Option<u64> {
            if self.allocated + n > self.limit {
                return None;
            }
            let pa = self.next.next_multiple_of(n as u64 * PAGE_SIZE);
            for k in 0..n as u64 {
                self.tables.insert(pa + k * PAGE_SIZE, Box::new([0; 512]));
            }
            self.next = pa + n as u64 * PAGE_SIZE;
            self.allocated += n;
            Some(pa)
        }

        fn free_table(&mut self, pa: u64) {
            assert!(self.tables.remove(&pa).is_some(), "{pa:#x} freed twice");
        }

        fn table(&self, pa: u64) -> &[u64; 512] {
            &self.tables[&pa]
        }

        fn table_mut(&mut self, pa: u64) -> &mut [u64; 512] {
            self.tables.get_mut(&pa).expect("no table there")
        }

        fn invalidate(&mut self, ipa: Range) {
            self.invalidated.push(ipa);
        }
    }

    fn r(start: u64, size: u64) -> Range {
        Range {
            start,
            end: start + size,
        }
    }

    fn setup(ipa_bits: u32) -> (FakeMem, Stage2) {
        let mut mem = FakeMem::new();
        let s2 = Stage2::new(&mut mem, ipa_bits).unwrap();
        (mem, s2)
    }

    #[test]
    fn ipa_sizes_outside_32_to_40_bits_are_refused() {
        let mut mem = FakeMem::new();
        assert_eq!(
            Stage2::new(&mut mem, 31).unwrap_err(),
            S2Error::BadIpaBits(31)
        );
        assert_eq!(
            Stage2::new(&mut mem, 41).unwrap_err(),
            S2Error::BadIpaBits(41)
        );
        assert_eq!(mem.live(), 0);
        assert!(Stage2::new(&mut mem, 32).is_ok());
    }

    #[test]
    fn a_40_bit_ipa_space_has_two_concatenated_root_tables() {
        let (mut mem, mut s2) = setup(40);
        assert_eq!(mem.live(), 2);
        assert_eq!(
            s2.root_pa() % (2 * PAGE_SIZE),
            0,
            "root must be 8 KiB aligned"
        );
        // The last gigabyte of the 1 TiB space lives in the second root table.
        let top = (1 << 40) - GIB;
        s2.map(&mut mem, r(top, GIB), 0x1_0000_0000, S2Attrs::RAM)
            .unwrap();
        assert_ne!(mem.table(s2.root_pa() + PAGE_SIZE)[511] & VALID, 0);
        assert_eq!(
            s2.translate(&mem, top + 0x1234),
            Some((0x1_0000_1234, S2Attrs::RAM))
        );
    }

    #[test]
    fn an_aligned_gigabyte_is_one_level1_block() {
        let (mut mem, mut s2) = setup(40);
        s2.map(&mut mem, r(0x4000_0000, GIB), 0x8000_0000, S2Attrs::RAM)
            .unwrap();
        assert_eq!(mem.live(), 2, "no table below the root");
        let (desc, level) = s2.walk(&mem, 0x7fff_f000).unwrap();
        assert_eq!(level, 1);
        assert_eq!(desc & TYPE_MASK, 0b01, "block descriptor");
        assert_eq!(
            s2.translate(&mem, 0x4123_4567).map(|(pa, _)| pa),
            Some(0x8123_4567)
        );
    }

    #[test]
    fn aligned_2mib_pieces_are_level2_blocks_and_the_ragged_end_is_pages() {
        let (mut mem, mut s2) = setup(40);
        let ipa = r(0x4000_0000, 6 * MIB + 3 * PAGE_SIZE);
        s2.map(&mut mem, ipa, 0x1_2340_0000, S2Attrs::RAM).unwrap();
        assert_eq!(s2.walk(&mem, 0x4020_0000).unwrap().1, 2);
        let (desc, level) = s2.walk(&mem, 0x4060_2000).unwrap();
        assert_eq!(level, 3);
        assert_eq!(desc & TYPE_MASK, 0b11, "page descriptor");
        assert_eq!(
            s2.translate(&mem, 0x4060_2abc).map(|(pa, _)| pa),
            Some(0x1_23a0_2abc)
        );
        assert_eq!(s2.translate(&mem, ipa.end), None);
        assert_eq!(s2.translate(&mem, ipa.start - 1), None);
    }

    #[test]
    fn a_pa_misaligned_with_its_ipa_is_mapped_with_pages() {
        let (mut mem, mut s2) = setup(40);
        s2.map(&mut mem, r(0x4000_0000, 4 * MIB), 0x9000_1000, S2Attrs::RAM)
            .unwrap();
        assert_eq!(s2.walk(&mem, 0x4000_0000).unwrap().1, 3);
        assert_eq!(s2.walk(&mem, 0x403f_f000).unwrap().1, 3);
        assert_eq!(
            s2.translate(&mem, 0x403f_f000).map(|(pa, _)| pa),
            Some(0x9040_0000)
        );
    }

    #[test]
    fn remapping_a_page_inside_a_block_splits_it_and_keeps_the_rest() {
        let (mut mem, mut s2) = setup(40);
        s2.map(&mut mem, r(0x4000_0000, GIB), 0x8000_0000, S2Attrs::RAM)
            .unwrap();
        let ro = S2Attrs {
            write: false,
            ..S2Attrs::RAM
        };
        s2.map(&mut mem, r(0x4012_3000, PAGE_SIZE), 0x5_0000_0000, ro)
            .unwrap();

        assert_eq!(s2.translate(&mem, 0x4012_3008), Some((0x5_0000_0008, ro)));
        assert_eq!(
            s2.translate(&mem, 0x4012_2ff8),
            Some((0x8012_2ff8, S2Attrs::RAM))
        );
        assert_eq!(
            s2.translate(&mem, 0x4012_4000),
            Some((0x8012_4000, S2Attrs::RAM))
        );
        assert_eq!(s2.walk(&mem, 0x4012_4000).unwrap().1, 3);
        assert_eq!(s2.walk(&mem, 0x4020_0000).unwrap().1, 2);
        assert_eq!(
            s2.translate(&mem, 0x7fff_ffff).map(|(pa, _)| pa),
            Some(0xbfff_ffff)
        );
    }

    #[test]
    fn unmapping_a_page_inside_a_block_splits_it_and_keeps_the_rest() {
        let (mut mem, mut s2) = setup(36);
        s2.map(&mut mem, r(0x4000_0000, 2 * MIB), 0x8000_0000, S2Attrs::RAM)
            .unwrap();
        s2.unmap(&mut mem, r(0x4010_0000, PAGE_SIZE)).unwrap();
        assert_eq!(s2.translate(&mem, 0x4010_0000), None);
        assert_eq!(s2.translate(&mem, 0x4010_0fff), None);
        assert_eq!(
            s2.translate(&mem, 0x400f_f000).map(|(pa, _)| pa),
            Some(0x800f_f000)
        );
        assert_eq!(
            s2.translate(&mem, 0x4010_1000).map(|(pa, _)| pa),
            Some(0x8010_1000)
        );
    }

    #[test]
    fn unmapping_everything_frees_the_tables_it_emptied() {
        let (mut mem, mut s2) = setup(40);
        let ipa = r(0x4000_0000 + PAGE_SIZE, 3 * MIB);
        s2.map(&mut mem, ipa, 0x8000_1000, S2Attrs::RAM).unwrap();
        assert!(mem.live() > 2);
        s2.unmap(&mut mem, ipa).unwrap();
        assert_eq!(s2.translate(&mem, ipa.start), None);
        assert_eq!(mem.live(), 2, "only the root is left");
    }

    #[test]
    fn a_block_over_existing_pages_frees_their_tables() {
        let (mut mem, mut s2) = setup(40);
        s2.map(
            &mut mem,
            r(0x4000_0000, PAGE_SIZE),
            0x8000_0000,
            S2Attrs::RAM,
        )
        .unwrap();
        assert_eq!(mem.live(), 4, "root (2) + level 2 + level 3");
        s2.map(&mut mem, r(0x4000_0000, GIB), 0x1_0000_0000, S2Attrs::RAM)
            .unwrap();
        assert_eq!(mem.live(), 2);
        assert_eq!(s2.walk(&mem, 0x4000_0000).unwrap().1, 1);
    }

    #[test]
    fn read_only_ram_and_device_memory_are_encoded_as_the_architecture_says() {
        let (mut mem, mut s2) = setup(40);
        let ro = S2Attrs {
            write: false,
            exec: false,
            ..S2Attrs::RAM
        };
        s2.map(
            &mut mem,
            r(0x4000_0000, PAGE_SIZE),
            0x8000_0000,
            S2Attrs::RAM,
        )
        .unwrap();
        s2.map(&mut mem, r(0x4000_1000, PAGE_SIZE), 0x8000_1000, ro)
            .unwrap();
        s2.map(
            &mut mem,
            r(0x0800_0000, PAGE_SIZE),
            0x0800_0000,
            S2Attrs::MMIO,
        )
        .unwrap();

        let rw = s2.walk(&mem, 0x4000_0000).unwrap().0;
        assert_eq!((rw >> 2) & 0b1111, 0b1111, "Normal write-back");
        assert_eq!((rw >> 6) & 0b11, 0b11, "read/write");
        assert_eq!((rw >> 8) & 0b11, 0b11, "inner shareable");
        assert_ne!(rw & (1 << 10), 0, "access flag");
        assert_eq!(rw & (1 << 54), 0, "executable");

        let ro_desc = s2.walk(&mem, 0x4000_1000).unwrap().0;
        assert_eq!((ro_desc >> 6) & 0b11, 0b01, "read-only");
        assert_ne!(ro_desc & (1 << 54), 0, "execute-never");

        let dev = s2.walk(&mem, 0x0800_0000).unwrap().0;
        assert_eq!((dev >> 2) & 0b1111, 0b0001, "Device-nGnRE");
        assert_ne!(dev & (1 << 54), 0, "execute-never");

        assert_eq!(s2.translate(&mem, 0x4000_1000).unwrap().1, ro);
        assert_eq!(s2.translate(&mem, 0x0800_0000).unwrap().1, S2Attrs::MMIO);
    }

    #[test]
    fn executable_device_memory_is_refused() {
        let (mut mem, mut s2) = setup(40);
        let ipa = r(0x0800_0000, PAGE_SIZE);
        let attrs = S2Attrs {
            exec: true,
            ..S2Attrs::MMIO
        };
        assert_eq!(
            s2.map(&mut mem, ipa, 0x0800_0000, attrs),
            Err(S2Error::ExecutableDevice(ipa))
        );
        assert_eq!(s2.translate(&mem, ipa.start), None);
    }

    #[test]
    fn out_of_range_and_unaligned_requests_are_errors() {
        let (mut mem, mut s2) = setup(36);
        let beyond = r((1 << 36) - PAGE_SIZE, 2 * PAGE_SIZE);
        assert_eq!(
            s2.map(&mut mem, beyond, 0x8000_0000, S2Attrs::RAM),
            Err(S2Error::IpaOutOfRange {
                ipa: beyond,
                ipa_bits: 36
            })
        );
        assert_eq!(
            s2.unmap(&mut mem, beyond),
            Err(S2Error::IpaOutOfRange {
                ipa: beyond,
                ipa_bits: 36
            })
        );
        let ragged = r(0x4000_0000, 100);
        assert_eq!(
            s2.map(&mut mem, ragged, 0x8000_0000, S2Attrs::RAM),
            Err(S2Error::UnalignedIpa(ragged))
        );
        assert_eq!(
            s2.map(
                &mut mem,
                r(0x4000_0000, PAGE_SIZE),
                0x8000_0800,
                S2Attrs::RAM
            ),
            Err(S2Error::UnalignedPa(0x8000_0800))
        );
        assert_eq!(
            s2.map(
                &mut mem,
                r(0x4000_0000, 2 * PAGE_SIZE),
                (1 << 48) - PAGE_SIZE,
                S2Attrs::RAM
            ),
            Err(S2Error::PaOutOfRange {
                pa: (1 << 48) - PAGE_SIZE,
                size: 2 * PAGE_SIZE
            })
        );
        assert_eq!(mem.live(), 1, "nothing was built");
        assert_eq!(s2.translate(&mem, 1 << 36), None);
    }

    #[test]
    fn running_out_of_tables_is_reported() {
        let mut mem = FakeMem::with_limit(2);
        let mut s2 = Stage2::new(&mut mem, 39).unwrap();
        // One page needs a level-2 and a level-3 table; one is left.
        assert_eq!(
            s2.map(
                &mut mem,
                r(0x4000_0000, PAGE_SIZE),
                0x8000_0000,
                S2Attrs::RAM
            ),
            Err(S2Error::OutOfTables)
        );
    }

    #[test]
    fn vtcr_and_vttbr_for_a_40_bit_ipa_on_a_44_bit_pa_cpu() {
        let (_mem, s2) = setup(40);
        // RES1 bit 31 | PS 0b100 (44 bits) | TG0 4K (0) | SH0 inner (0b11 << 12)
        // | ORGN0 WBWA (0b01 << 10) | IRGN0 WBWA (0b01 << 8) | SL0 level 1
        // (0b01 << 6) | T0SZ 64 - 40 = 24.
        assert_eq!(s2.vtcr(44), 0x8004_3558);
        assert_eq!(
            s2.vttbr(5),
            0x0005_0000_0000_0000 | s2.root_pa(),
            "VMID in bits 63:48"
        );
    }

    #[test]
    fn vtcr_ps_follows_the_cpu_and_stops_at_48_bits() {
        let (_mem, s2) = setup(32);
        let ps = |bits| (s2.vtcr(bits) >> 16) & 0b111;
        assert_eq!(ps(32), 0b000);
        assert_eq!(ps(36), 0b001);
        assert_eq!(ps(40), 0b010);
        assert_eq!(ps(48), 0b101);
        assert_eq!(ps(52), 0b101);
        assert_eq!(s2.vtcr(40) & 0x3f, 32, "T0SZ for a 32-bit IPA space");
        assert_eq!(vtcr(32, 40), s2.vtcr(40), "the free function agrees");
    }

    #[test]
    fn live_changes_are_broken_before_they_are_made() {
        let (mut mem, mut s2) = setup(40);
        s2.map(&mut mem, r(0x4000_0000, 4 * MIB), 0x8000_0000, S2Attrs::RAM)
            .unwrap();
        assert!(mem.invalidated.is_empty(), "nothing was valid before");

        s2.map(
            &mut mem,
            r(0x4000_0000, PAGE_SIZE),
            0x9000_0000,
            S2Attrs::RAM,
        )
        .unwrap();
        // The 2 MiB block went (to be replaced by a table), then the page.
        assert_eq!(
            mem.invalidated,
            [r(0x4000_0000, 2 * MIB), r(0x4000_0000, PAGE_SIZE)]
        );

        mem.invalidated.clear();
        s2.unmap(&mut mem, r(0x4020_0000, 2 * MIB)).unwrap();
        assert_eq!(mem.invalidated, [r(0x4020_0000, 2 * MIB)]);
    }

    #[test]
    fn destroy_frees_every_table() {
        let mut mem = FakeMem::new();
        let mut s2 = Stage2::new(&mut mem, 40).unwrap();
        s2.map(
            &mut mem,
            r(0x4000_0000, 3 * MIB + 8 * PAGE_SIZE),
            0x8000_1000,
            S2Attrs::RAM,
        )
        .unwrap();
        s2.map(
            &mut mem,
            r(0x0302_0000, 0x2_0000),
            0x0800_0000,
            S2Attrs::MMIO,
        )
        .unwrap();
        s2.map(
            &mut mem,
            r(0xff_0000_0000, 4 * PAGE_SIZE),
            0x1_0000_0000,
            S2Attrs::RAM,
        )
        .unwrap();
        assert!(mem.live() > 6);
        s2.destroy(&mut mem);
        assert_eq!(mem.live(), 0, "every table allocated was freed");
    }

    #[test]
    fn a_domain_at_its_table_budget_gets_out_of_tables_and_another_maps_on() {
        // 40-bit IPA: a 2-page root, then one level-2 table for the first
        // GiB and one level-3 table per 2 MiB touched.
        let mut a = Budgeted::new(FakeMem::new(), 8);
        let mut b = Budgeted::new(FakeMem::new(), 8);
        let mut s2a = Stage2::new(&mut a, 40).unwrap();
        let mut s2b = Stage2::new(&mut b, 40).unwrap();
        let page = |i: u64| r(0x4000_0000 + i * 2 * MIB, PAGE_SIZE);
        for i in 0..5 {
            s2a.map(&mut a, page(i), 0x9000_0000, S2Attrs::RAM).unwrap();
        }
        assert_eq!(a.used(), a.limit());
        assert_eq!(
            s2a.map(&mut a, page(5), 0x9000_0000, S2Attrs::RAM),
            Err(S2Error::OutOfTables)
        );
        assert_eq!(s2a.translate(&a, page(5).start), None);
        // The other domain's budget is its own.
        s2b.map(&mut b, page(5), 0x9000_0000, S2Attrs::RAM).unwrap();
        assert!(s2b.translate(&b, page(5).start).is_some());
        // A page inside a 2 MiB already covered needs no new table.
        s2a.map(
            &mut a,
            r(page(0).start + PAGE_SIZE, PAGE_SIZE),
            0x9000_0000,
            S2Attrs::RAM,
        )
        .unwrap();
    }

    #[test]
    fn freed_tables_go_back_to_the_budget() {
        let mut a = Budgeted::new(FakeMem::new(), 64);
        let mut s2 = Stage2::new(&mut a, 40).unwrap();
        s2.map(&mut a, r(0x4000_0000, PAGE_SIZE), 0x9000_0000, S2Attrs::RAM)
            .unwrap();
        assert_eq!(a.used(), 4);
        s2.destroy(&mut a);
        assert_eq!(a.used(), 0);
    }
}
