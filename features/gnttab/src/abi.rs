//! The guest ABI of grant tables: `grant_table_op` sub-op numbers, status
//! codes, flag bits, the version-1 entry and the byte layout of every
//! argument structure (AArch64, little endian).

/// `GNTTABOP_*` sub-op numbers (the low 12 bits of `grant_table_op`'s
/// first argument).
pub mod cmd {
    pub const MAP_GRANT_REF: u32 = 0;
    pub const UNMAP_GRANT_REF: u32 = 1;
    pub const SETUP_TABLE: u32 = 2;
    pub const DUMP_TABLE: u32 = 3;
    pub const TRANSFER: u32 = 4;
    pub const COPY: u32 = 5;
    pub const QUERY_SIZE: u32 = 6;
    pub const UNMAP_AND_REPLACE: u32 = 7;
    pub const SET_VERSION: u32 = 8;
    pub const GET_STATUS_FRAMES: u32 = 9;
    pub const GET_VERSION: u32 = 10;
    pub const SWAP_GRANT_REF: u32 = 11;
    pub const CACHE_FLUSH: u32 = 12;

    /// Bits of the command that name the sub-op; the bits above carry a
    /// continuation argument, which only `cache_flush` may have.
    pub const MASK: u32 = (1 << 12) - 1;
    /// Where the continuation argument starts.
    pub const ARG_SHIFT: u32 = 12;
}

/// `GNTST_*`: the per-element status a sub-op writes back.
pub mod gntst {
    pub const OKAY: i16 = 0;
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_VIRT_ADDR: i16 = -5;
    pub const BAD_DEV_ADDR: i16 = -6;
    pub const NO_DEVICE_SPACE: i16 = -7;
    pub const PERMISSION_DENIED: i16 = -8;
    pub const BAD_PAGE: i16 = -9;
    pub const BAD_COPY_ARG: i16 = -10;
    pub const ADDRESS_TOO_BIG: i16 = -11;
    pub const EAGAIN: i16 = -12;
    pub const NO_SPACE: i16 = -13;
}

/// `GTF_*`: the `flags` of a grant entry.
pub mod gtf {
    pub const INVALID: u16 = 0;
    pub const PERMIT_ACCESS: u16 = 1;
    pub const ACCEPT_TRANSFER: u16 = 2;
    /// Version 2 only; in a version-1 entry it is just not `PERMIT_ACCESS`.
    pub const TRANSITIVE: u16 = 3;
    pub const TYPE_MASK: u16 = 3;
    pub const READONLY: u16 = 1 << 2;
    /// Set by the hypervisor while the grant is mapped or copied from.
    pub const READING: u16 = 1 << 3;
    /// Set by the hypervisor while the grant is mapped writable or copied to.
    pub const WRITING: u16 = 1 << 4;
    pub const PWT: u16 = 1 << 5;
    pub const PCD: u16 = 1 << 6;
    pub const PAT: u16 = 1 << 7;
    /// Version 2 only; refused in a version-1 entry that is mapped.
    pub const SUB_PAGE: u16 = 1 << 8;
}

/// `GNTMAP_*`: the `flags` of `map_grant_ref`.
pub mod gntmap {
    pub const DEVICE_MAP: u32 = 1 << 0;
    pub const HOST_MAP: u32 = 1 << 1;
    pub const READONLY: u32 = 1 << 2;
    pub const APPLICATION_MAP: u32 = 1 << 3;
    pub const CONTAINS_PTE: u32 = 1 << 4;
}

/// `GNTCOPY_*`: the `flags` of `copy`.
pub mod gntcopy {
    pub const SOURCE_GREF: u16 = 1 << 0;
    pub const DEST_GREF: u16 = 1 << 1;
}

/// `GNTTAB_CACHE_*`: the `op` of `cache_flush`.
pub mod cache {
    pub const CLEAN: u32 = 1 << 0;
    pub const INVAL: u32 = 1 << 1;
    pub const SOURCE_GREF: u32 = 1 << 31;
}

/// Entries 0 to 7 belong to the toolstack; guests allocate from 8.
pub const NR_RESERVED_ENTRIES: u32 = 8;
/// The console's reserved entry.
pub const RESERVED_CONSOLE: u32 = 0;
/// The xenstore page's reserved entry (seeded at boot for xenstore).
pub const RESERVED_XENSTORE: u32 = 1;

/// Bytes in a page and in a grant-table frame.
pub const PAGE_SIZE: usize = 4096;
/// Bytes in a version-1 grant entry: `u16 flags`, `u16 domid`, `u32 frame`.
pub const ENTRY_SIZE: usize = 8;
/// Version-1 entries in one frame.
pub const ENTRIES_PER_FRAME: u32 = (PAGE_SIZE / ENTRY_SIZE) as u32;
/// Maptrack entries (mapping handles) per maptrack frame: Xen's
/// `struct grant_mapping` is 16 bytes.
pub const MAPTRACK_PER_FRAME: u32 = 256;
/// Frames a table has from the start (`INITIAL_NR_GRANT_FRAMES` on Arm).
pub const INITIAL_FRAMES: u32 = 1;
/// The only grant-table version Arm has (`GNTTAB_MAX_VERSION`).
pub const VERSION: u32 = 1;
/// `gfn` reported for a frame that is not placed in the guest
/// (`INVALID_GFN`).
pub const INVALID_GFN: u64 = u64::MAX;

/// One version-1 grant entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    pub flags: u16,
    /// The domain the grant is for.
    pub domid: u16,
    /// The granter's guest frame number.
    pub frame: u32,
}

impl Entry {
    /// `flags` and `domid` as the one 32-bit word the hypervisor updates
    /// atomically (flags in the low half).
    pub fn header(self) -> u32 {
        u32::from(self.flags) | u32::from(self.domid) << 16
    }
}

/// `struct gnttab_map_grant_ref` (32 bytes).
pub mod map {
    pub const SIZE: usize = 32;
    pub const HOST_ADDR: usize = 0;
    pub const FLAGS: usize = 8;
    pub const REF: usize = 12;
    pub const DOM: usize = 16;
    pub const STATUS: usize = 18;
    pub const HANDLE: usize = 20;
    pub const DEV_BUS_ADDR: usize = 24;
}

/// `struct gnttab_unmap_grant_ref` (24 bytes).
pub mod unmap {
    pub const SIZE: usize = 24;
    pub const HOST_ADDR: usize = 0;
    pub const DEV_BUS_ADDR: usize = 8;
    pub const HANDLE: usize = 16;
    pub const STATUS: usize = 20;
}

/// `struct gnttab_setup_table` (24 bytes).
pub mod setup_table {
    pub const SIZE: usize = 24;
    pub const DOM: usize = 0;
    pub const NR_FRAMES: usize = 4;
    pub const STATUS: usize = 8;
    /// Guest virtual address of a `u64` array, one gfn per frame.
    pub const FRAME_LIST: usize = 16;
}

/// `struct gnttab_copy` (40 bytes): two 16-byte `gnttab_copy_ptr`s
/// (`u32 ref` or `u64 gmfn` at 0, `u16 domid` at 8, `u16 offset` at 10).
pub mod copy {
    pub const SIZE: usize = 40;
    pub const SOURCE: usize = 0;
    pub const DEST: usize = 16;
    pub const PTR_REF_OR_GMFN: usize = 0;
    pub const PTR_DOMID: usize = 8;
    pub const PTR_OFFSET: usize = 10;
    pub const LEN: usize = 32;
    pub const FLAGS: usize = 34;
    pub const STATUS: usize = 36;
}

/// `struct gnttab_query_size` (16 bytes).
pub mod query_size {
    pub const SIZE: usize = 16;
    pub const DOM: usize = 0;
    pub const NR_FRAMES: usize = 4;
    pub const MAX_NR_FRAMES: usize = 8;
    pub const STATUS: usize = 12;
}

/// `struct gnttab_unmap_and_replace` (24 bytes).
pub mod unmap_and_replace {
    pub const SIZE: usize = 24;
    pub const HOST_ADDR: usize = 0;
    pub const NEW_ADDR: usize = 8;
    pub const HANDLE: usize = 16;
    pub const STATUS: usize = 20;
}

/// `struct gnttab_set_version` (4 bytes).
pub mod set_version {
    pub const SIZE: usize = 4;
    pub const VERSION: usize = 0;
}

/// `struct gnttab_get_status_frames` (16 bytes).
pub mod get_status_frames {
    pub const SIZE: usize = 16;
    pub const NR_FRAMES: usize = 0;
    pub const DOM: usize = 4;
    pub const STATUS: usize = 6;
    pub const FRAME_LIST: usize = 8;
}

/// `struct gnttab_get_version` (8 bytes).
pub mod get_version {
    pub const SIZE: usize = 8;
    pub const DOM: usize = 0;
    pub const VERSION: usize = 4;
}

/// `struct gnttab_swap_grant_ref` (12 bytes).
pub mod swap_grant_ref {
    pub const SIZE: usize = 12;
    pub const REF_A: usize = 0;
    pub const REF_B: usize = 4;
    pub const STATUS: usize = 8;
}

/// `struct gnttab_cache_flush` (16 bytes).
pub mod cache_flush {
    pub const SIZE: usize = 16;
    /// `u64 dev_bus_addr` (or `u32 ref` with `SOURCE_GREF`).
    pub const ADDR: usize = 0;
    pub const OFFSET: usize = 8;
    pub const LENGTH: usize = 10;
    pub const OP: usize = 12;
}

/// Size in bytes of one element of `grant_table_op`'s argument array for
/// sub-op `cmd` (the low 12 bits of the command), or `None` for a sub-op
/// Oxen answers without reading anything (`dump_table`, `transfer`,
/// unknown ones).
pub fn arg_size(cmd: u32) -> Option<usize> {
    Some(match cmd {
        cmd::MAP_GRANT_REF => map::SIZE,
        cmd::UNMAP_GRANT_REF => unmap::SIZE,
        cmd::SETUP_TABLE => setup_table::SIZE,
        cmd::COPY => copy::SIZE,
        cmd::QUERY_SIZE => query_size::SIZE,
        cmd::UNMAP_AND_REPLACE => unmap_and_replace::SIZE,
        cmd::SET_VERSION => set_version::SIZE,
        cmd::GET_STATUS_FRAMES => get_status_frames::SIZE,
        cmd::GET_VERSION => get_version::SIZE,
        cmd::SWAP_GRANT_REF => swap_grant_ref::SIZE,
        cmd::CACHE_FLUSH => cache_flush::SIZE,
        _ => return None,
    })
}

/// Reads a little-endian field of `N` (at most 8) bytes at `off`. The
/// offsets are the constants above, inside the element sizes the callers
/// check; a field past the end reads as 0 rather than panicking.
pub(crate) fn get<const N: usize>(buf: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    if let (Some(to), Some(from)) = (v.get_mut(..N), buf.get(off..off.saturating_add(N))) {
        to.copy_from_slice(from);
    }
    u64::from_le_bytes(v)
}

/// Writes the low `N` (at most 8) bytes of `v` at `off`, little endian; a
/// field past the end is not written.
pub(crate) fn put<const N: usize>(buf: &mut [u8], off: usize, v: u64) {
    let bytes = v.to_le_bytes();
    if let (Some(to), Some(from)) = (buf.get_mut(off..off.saturating_add(N)), bytes.get(..N)) {
        to.copy_from_slice(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sizes from the spec's table (§3.5.6), written out rather than taken
    // from the constants under test.
    #[test]
    fn argument_sizes_are_xens_for_arm64() {
        let expected = [
            (0, Some(32)),
            (1, Some(24)),
            (2, Some(24)),
            (3, None),
            (4, None),
            (5, Some(40)),
            (6, Some(16)),
            (7, Some(24)),
            (8, Some(4)),
            (9, Some(16)),
            (10, Some(8)),
            (11, Some(12)),
            (12, Some(16)),
            (13, None),
        ];
        for (cmd, size) in expected {
            assert_eq!(arg_size(cmd), size, "sub-op {cmd}");
        }
    }

    #[test]
    fn status_codes_are_xens() {
        let codes = [
            gntst::OKAY,
            gntst::GENERAL_ERROR,
            gntst::BAD_DOMAIN,
            gntst::BAD_GNTREF,
            gntst::BAD_HANDLE,
            gntst::BAD_VIRT_ADDR,
            gntst::BAD_DEV_ADDR,
            gntst::NO_DEVICE_SPACE,
            gntst::PERMISSION_DENIED,
            gntst::BAD_PAGE,
            gntst::BAD_COPY_ARG,
            gntst::ADDRESS_TOO_BIG,
            gntst::EAGAIN,
            gntst::NO_SPACE,
        ];
        assert_eq!(
            codes,
            [0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13]
        );
    }

    #[test]
    fn a_frame_holds_512_entries_and_a_maptrack_frame_256_handles() {
        assert_eq!(ENTRIES_PER_FRAME, 512);
        assert_eq!(MAPTRACK_PER_FRAME, 256);
    }

    #[test]
    fn entry_header_puts_flags_low_and_domid_high() {
        let e = Entry {
            flags: gtf::PERMIT_ACCESS | gtf::READONLY,
            domid: 2,
            frame: 0x4_0000,
        };
        assert_eq!(e.header(), 0x0002_0005);
    }

    #[test]
    fn fields_are_little_endian_of_the_given_width() {
        let mut b = [0xffu8; 8];
        put::<2>(&mut b, 2, 0x1234);
        assert_eq!(b, [0xff, 0xff, 0x34, 0x12, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(get::<2>(&b, 2), 0x1234);
        assert_eq!(get::<4>(&b, 0), 0x1234_ffff);
    }
}
