//! What the grant tables need from the hypervisor: grant-table frames,
//! guest pages and stage-2 mappings of them, copies between pages, and the
//! connection policy.

use core::fmt;

use oxen_core::shared::SharedPage;
use oxen_core::xen::DomId;
use oxen_core::xen::errno::Errno;

use crate::abi::{ENTRY_SIZE, Entry};

/// A 4 KiB grant-table frame: 512 version-1 entries that the guest owning
/// the table writes at any moment.
///
/// Every access is one atomic operation on shared memory, as Xen's guest
/// atomics are: the entry's `flags` (bits 0–15) and `domid` (bits 16–31)
/// form the 32-bit header word at byte `8 * index`, and `frame` is the
/// 32-bit word after it.
pub trait GrantFrame {
    /// The header word of entry `index`.
    fn header(&self, index: usize) -> u32;
    /// Replaces the header of entry `index` with `new` if it still holds
    /// `current`; returns the value it held (equal to `current` on success).
    fn compare_exchange_header(&self, index: usize, current: u32, new: u32) -> u32;
    /// Atomically clears `mask` in the 16-bit `flags` of entry `index`,
    /// leaving the domid alone.
    fn clear_flags(&self, index: usize, mask: u16);
    /// The `frame` field of entry `index`.
    fn frame(&self, index: usize) -> u32;
    /// Writes a whole entry (seeding, swapping): the frame first, then the
    /// header, so a reader never sees a valid type with a stale frame.
    fn store(&self, index: usize, entry: Entry);

    /// Entry `index` as a value (two reads; the guest may change it between
    /// them, which the callers tolerate).
    fn entry(&self, index: usize) -> Entry {
        let header = self.header(index);
        Entry {
            flags: header as u16,
            domid: (header >> 16) as u16,
            frame: self.frame(index),
        }
    }
}

/// Core's shared pages are grant frames as they are.
impl GrantFrame for SharedPage {
    fn header(&self, index: usize) -> u32 {
        self.load_u32(index * ENTRY_SIZE)
    }

    fn compare_exchange_header(&self, index: usize, current: u32, new: u32) -> u32 {
        match self.compare_exchange_u32(index * ENTRY_SIZE, current, new) {
            Ok(v) | Err(v) => v,
        }
    }

    fn clear_flags(&self, index: usize, mask: u16) {
        self.fetch_and_u16(index * ENTRY_SIZE, !mask);
    }

    fn frame(&self, index: usize) -> u32 {
        self.load_u32(index * ENTRY_SIZE + 4)
    }

    fn store(&self, index: usize, entry: Entry) {
        self.store_u32(index * ENTRY_SIZE + 4, entry.frame);
        self.store_u32(index * ENTRY_SIZE, entry.header());
    }
}

/// Why a page could not be mapped into, or removed from, a guest's stage-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Something is already mapped at that guest-physical address.
    Occupied,
    /// The address is beyond the domain's guest-physical address space.
    OutOfRange,
    /// No memory for the stage-2 tables.
    NoMemory,
    /// The address does not hold a foreign mapping of that page.
    NotMapped,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Occupied => "the guest-physical page is already in use",
            Self::OutOfRange => "the address is beyond the guest-physical address space",
            Self::NoMemory => "out of memory for stage-2 tables",
            Self::NotMapped => "no mapping of that page is there",
        })
    }
}

/// The data-cache maintenance `cache_flush` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOp {
    /// Write dirty lines back to memory.
    pub clean: bool,
    /// Discard the lines (after cleaning them when `clean` is also set).
    pub invalidate: bool,
}

/// The hypervisor as the grant tables see it.
///
/// Every method is called while the caller holds `&mut GrantTables`, so
/// none may call back into it.
pub trait Env {
    /// A grant-table frame.
    type Frame: GrantFrame;
    /// A page of guest memory, as the hypervisor names it (Oxen: the
    /// page's [`SharedPage`] handle).
    type Page: Copy + PartialEq + fmt::Debug;

    /// A zeroed page for a grant-table frame, or `None` when memory is
    /// exhausted.
    fn alloc_frame(&mut self) -> Option<Self::Frame>;
    /// Gives back a frame of a destroyed domain. Mappings of it in that
    /// domain's own stage-2 go away with the stage-2; no other domain maps
    /// it (peers' mappings are removed first).
    fn free_frame(&mut self, frame: Self::Frame);
    /// Maps `frame` read/write as normal memory at `gfn` of `dom`
    /// (`XENMEM_add_to_physmap`, space `grant_table`), invalidating the
    /// TLBs for it. The error is what the hypercall returns.
    fn map_frame(&mut self, dom: DomId, gfn: u64, frame: &Self::Frame) -> Result<(), Errno>;

    /// The connection policy (owned by event channels): whether `a` may
    /// share memory with `b`. Only asked for two different domains.
    fn may_connect(&self, a: DomId, b: DomId) -> bool;

    /// The page behind guest frame `gfn` of `dom`, if it is the domain's
    /// own memory (its RAM, or a page the hypervisor gave it) that it may
    /// write when `writable`; `None` for holes, MMIO and pages the domain
    /// itself maps from another domain.
    fn own_page(&self, dom: DomId, gfn: u64, writable: bool) -> Option<Self::Page>;
    /// The host physical address of `page`: what `map_grant_ref` reports
    /// as `dev_bus_addr`, as Xen does, and what `cache_flush` names.
    fn page_address(&self, page: Self::Page) -> u64;

    /// Maps another domain's `page` at `gpa` (page-aligned) of `mapper`'s
    /// stage-2, normal memory, never executable, read-only when
    /// `readonly`. Must fail, changing nothing, if anything is mapped there.
    fn map_foreign(
        &mut self,
        mapper: DomId,
        gpa: u64,
        page: Self::Page,
        readonly: bool,
    ) -> Result<(), MapError>;
    /// Removes the foreign mapping of `page` at `gpa` of `mapper` and
    /// invalidates the TLB entries for it (on every CPU) before returning.
    /// Must fail with [`MapError::NotMapped`], changing nothing, if `gpa`
    /// does not hold a foreign mapping of exactly that page.
    fn unmap_foreign(&mut self, mapper: DomId, gpa: u64, page: Self::Page) -> Result<(), MapError>;

    /// Copies `len` bytes from `src` at `src_offset` to `dst` at
    /// `dst_offset` (both ranges inside their pages; they may be the same
    /// page and overlap, as `memmove`).
    fn copy(
        &mut self,
        src: Self::Page,
        src_offset: usize,
        dst: Self::Page,
        dst_offset: usize,
        len: usize,
    );

    /// Writes `bytes` at guest virtual address `va` of the calling vCPU of
    /// `dom` (`setup_table`'s frame list).
    fn write_guest(&mut self, dom: DomId, va: u64, bytes: &[u8]) -> Result<(), Errno>;

    /// Data-cache maintenance on `len` bytes of `page` from `offset`
    /// (`cache_flush`).
    fn cache_maintenance(&mut self, page: Self::Page, offset: usize, len: usize, op: CacheOp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::gtf;
    use oxen_core::shared::test_page;

    #[test]
    fn shared_page_entries_sit_at_8_byte_strides_with_the_frame_after_the_header() {
        let p = test_page();
        let e = Entry {
            flags: gtf::PERMIT_ACCESS,
            domid: 3,
            frame: 0x4_0123,
        };
        p.store(2, e);
        assert_eq!(p.load_u16(16), gtf::PERMIT_ACCESS);
        assert_eq!(p.load_u16(18), 3);
        assert_eq!(p.load_u32(20), 0x4_0123);
        assert_eq!(p.entry(2), e);
    }

    #[test]
    fn compare_exchange_header_reports_what_was_there() {
        let p = test_page();
        p.store_u32(8, 0x0002_0001);
        assert_eq!(
            p.compare_exchange_header(1, 0x0002_0000, 0x0002_0009),
            0x0002_0001
        );
        assert_eq!(p.header(1), 0x0002_0001, "unchanged on mismatch");
        assert_eq!(
            p.compare_exchange_header(1, 0x0002_0001, 0x0002_0009),
            0x0002_0001
        );
        assert_eq!(p.header(1), 0x0002_0009);
    }

    #[test]
    fn clear_flags_leaves_the_domid_and_other_flags() {
        let p = test_page();
        p.store_u32(0, 0xffff_0000 | u32::from(gtf::READING | gtf::WRITING | 1));
        p.clear_flags(0, gtf::WRITING);
        assert_eq!(p.header(0), 0xffff_0000 | u32::from(gtf::READING | 1));
    }
}
