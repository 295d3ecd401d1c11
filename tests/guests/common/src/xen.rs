//! What of Xen's public interface the guests share (AArch64, little endian,
//! spec §3.5): hypercall numbers, sub-ops, errno values and the layouts of
//! the pages a guest shares with the hypervisor, and those pages
//! themselves.
//!
//! The MMU is off, so a buffer's address is its guest-physical address
//! and a page's frame number is its address >> 12. Shared pages are read
//! and written with single volatile accesses: the hypervisor (or the peer
//! domain) changes them behind the compiler's back.

use core::cell::UnsafeCell;

/// Hypercall numbers (`public/xen.h`).
pub mod nr {
    pub const MEMORY_OP: u64 = 12;
    pub const XEN_VERSION: u64 = 17;
    pub const GRANT_TABLE_OP: u64 = 20;
    pub const VM_ASSIST: u64 = 21;
    pub const VCPU_OP: u64 = 24;
    pub const SCHED_OP: u64 = 29;
    pub const EVENT_CHANNEL_OP: u64 = 32;
    pub const HVM_OP: u64 = 34;
}

/// `xen_version` sub-ops.
pub mod xenver {
    pub const VERSION: u64 = 0;
}

/// Xen's errno values, negated as hypercalls return them.
pub mod err {
    pub const EPERM: i64 = -1;
    pub const ENOENT: i64 = -2;
    pub const ESRCH: i64 = -3;
    pub const ENXIO: i64 = -6;
    pub const EFAULT: i64 = -14;
    pub const EBUSY: i64 = -16;
    pub const EEXIST: i64 = -17;
    pub const EINVAL: i64 = -22;
    pub const ENOSPC: i64 = -28;
    pub const ENOSYS: i64 = -38;
    pub const EOPNOTSUPP: i64 = -95;
}

/// The caller's own domain, wherever a call takes a domain ID.
pub const DOMID_SELF: u16 = 0x7ff0;

/// `event_channel_op` sub-ops.
pub mod evtchnop {
    pub const BIND_INTERDOMAIN: u64 = 0;
    pub const BIND_VIRQ: u64 = 1;
    pub const BIND_PIRQ: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const SEND: u64 = 4;
    pub const STATUS: u64 = 5;
    pub const ALLOC_UNBOUND: u64 = 6;
    pub const BIND_IPI: u64 = 7;
    pub const UNMASK: u64 = 9;
    pub const INIT_CONTROL: u64 = 11;
    pub const EXPAND_ARRAY: u64 = 12;
}

/// `EVTCHNOP_status` states.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `grant_table_op` sub-ops.
pub mod gnttabop {
    pub const MAP_GRANT_REF: u64 = 0;
    pub const UNMAP_GRANT_REF: u64 = 1;
    pub const COPY: u64 = 5;
    pub const QUERY_SIZE: u64 = 6;
}

/// Grant entry flags (`GTF_*`), mapping flags (`GNTMAP_*`), copy flags
/// and per-element statuses (`GNTST_*`).
pub mod gnt {
    pub const GTF_PERMIT_ACCESS: u16 = 1;
    pub const GTF_READONLY: u16 = 1 << 2;
    pub const GTF_READING: u16 = 1 << 3;
    pub const GTF_WRITING: u16 = 1 << 4;
    pub const GNTMAP_DEVICE_MAP: u32 = 1;
    pub const GNTMAP_HOST_MAP: u32 = 2;
    pub const GNTMAP_READONLY: u32 = 4;
    pub const GNTCOPY_SOURCE_GREF: u16 = 1;
    pub const GNTCOPY_DEST_GREF: u16 = 2;
    pub const OKAY: i16 = 0;
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_COPY_ARG: i16 = -10;
}

/// `XENMEM_add_to_physmap` and its spaces.
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// `shared_info` layout: vcpu_info[0] at 0, `evtchn_pending` at 48,
/// `evtchn_mask` at 560.
pub const SI_PENDING: usize = 48;
pub const SI_MASK: usize = 560;
/// `vcpu_info`: `evtchn_upcall_pending` at 0, `evtchn_pending_sel` at 8.
pub const VI_UPCALL_PENDING: usize = 0;
pub const VI_PENDING_SEL: usize = 8;

/// FIFO event word bits.
pub const FIFO_PENDING: u32 = 1 << 31;
pub const FIFO_MASKED: u32 = 1 << 30;
pub const FIFO_LINKED: u32 = 1 << 29;
pub const FIFO_LINK_MASK: u32 = (1 << 17) - 1;
/// The default priority of a port's queue.
pub const FIFO_DEFAULT_PRIORITY: usize = 7;
/// The control block: `ready` at 0, `head[16]` at 8.
pub const FIFO_HEAD: usize = 8;

/// One 4 KiB page of guest RAM the guest hands to the hypervisor or maps
/// something over; only ever touched through volatile accesses.
#[repr(C, align(4096))]
pub struct Page(UnsafeCell<[u8; 4096]>);

// SAFETY: every access is a single volatile load or store of an aligned
// field; which vCPU or domain writes what is decided by the protocol of
// the code using the page (one writer per field at a time).
unsafe impl Sync for Page {}

impl Page {
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; 4096]))
    }

    pub fn addr(&self) -> usize {
        self.0.get() as usize
    }

    pub fn gfn(&self) -> u64 {
        self.addr() as u64 >> 12
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::new()
    }
}

/// A volatile view of shared memory at a guest-physical address: a page
/// above, or a foreign page mapped by grant.
#[derive(Clone, Copy)]
pub struct Shared(pub usize);

impl Shared {
    pub fn of(p: &Page) -> Self {
        Self(p.addr())
    }

    #[inline]
    pub fn r8(self, off: usize) -> u8 {
        // SAFETY: `self.0 + off` is inside a page the guest owns or has
        // mapped (callers pass offsets below 4096); a byte is always aligned.
        unsafe { ((self.0 + off) as *const u8).read_volatile() }
    }

    #[inline]
    pub fn w8(self, off: usize, v: u8) {
        // SAFETY: as for `r8`.
        unsafe { ((self.0 + off) as *mut u8).write_volatile(v) }
    }

    #[inline]
    pub fn r16(self, off: usize) -> u16 {
        debug_assert!(off.is_multiple_of(2));
        // SAFETY: as for `r8`; callers pass 2-byte aligned offsets.
        unsafe { ((self.0 + off) as *const u16).read_volatile() }
    }

    #[inline]
    pub fn w16(self, off: usize, v: u16) {
        // SAFETY: as for `r16`.
        unsafe { ((self.0 + off) as *mut u16).write_volatile(v) }
    }

    #[inline]
    pub fn r32(self, off: usize) -> u32 {
        debug_assert!(off.is_multiple_of(4));
        // SAFETY: as for `r8`; callers pass 4-byte aligned offsets.
        unsafe { ((self.0 + off) as *const u32).read_volatile() }
    }

    #[inline]
    pub fn w32(self, off: usize, v: u32) {
        // SAFETY: as for `r32`.
        unsafe { ((self.0 + off) as *mut u32).write_volatile(v) }
    }

    #[inline]
    pub fn r64(self, off: usize) -> u64 {
        debug_assert!(off.is_multiple_of(8));
        // SAFETY: as for `r8`; callers pass 8-byte aligned offsets.
        unsafe { ((self.0 + off) as *const u64).read_volatile() }
    }

    #[inline]
    pub fn w64(self, off: usize, v: u64) {
        // SAFETY: as for `r64`.
        unsafe { ((self.0 + off) as *mut u64).write_volatile(v) }
    }

    pub fn fill(self, v: u8) {
        for off in 0..4096 {
            self.w8(off, v);
        }
    }
}
