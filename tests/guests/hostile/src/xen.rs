//! The few well-formed Xen calls the checks make (the attack's are in
//! `attack`): argument structures built field by field in a buffer the
//! guest owns, and the grant-table and event-channel operations.

pub use oxen_guest_common::xen::*;

use crate::trap;

/// A hypercall argument structure.
#[repr(C, align(8))]
pub struct Arg<const N: usize>(pub [u8; N]);

impl<const N: usize> Arg<N> {
    pub const fn new() -> Self {
        Self([0; N])
    }

    pub fn set(&mut self, off: usize, bytes: &[u8]) -> &mut Self {
        self.0[off..off + bytes.len()].copy_from_slice(bytes);
        self
    }

    pub fn set16(&mut self, off: usize, v: u16) -> &mut Self {
        self.set(off, &v.to_le_bytes())
    }

    pub fn set32(&mut self, off: usize, v: u32) -> &mut Self {
        self.set(off, &v.to_le_bytes())
    }

    pub fn set64(&mut self, off: usize, v: u64) -> &mut Self {
        self.set(off, &v.to_le_bytes())
    }

    pub fn get16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.0[off], self.0[off + 1]])
    }

    pub fn get32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_le_bytes(b)
    }

    pub fn get64(&self, off: usize) -> u64 {
        let mut b = [0; 8];
        b.copy_from_slice(&self.0[off..off + 8]);
        u64::from_le_bytes(b)
    }

    pub fn addr(&mut self) -> u64 {
        self.0.as_mut_ptr() as usize as u64
    }
}

/// `hvm_op(get_param)` of this domain's parameter `index`.
pub fn hvm_param(index: u32) -> Result<u64, i64> {
    let mut a = Arg::<16>::new();
    a.set16(0, DOMID_SELF).set32(4, index);
    match trap::hypercall(nr::HVM_OP, [1, a.addr(), 0, 0, 0]) {
        0 => Ok(a.get64(8)),
        e => Err(e),
    }
}

pub const HVM_PARAM_STORE_PFN: u32 = 1;
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;

/// `EVTCHNOP_send` on `port`.
pub fn send(port: u32) -> i64 {
    let mut a = Arg::<8>::new();
    a.set32(0, port);
    trap::hypercall(nr::EVENT_CHANNEL_OP, [evtchnop::SEND, a.addr(), 0, 0, 0])
}

/// `XENMEM_add_to_physmap` of this domain.
pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> i64 {
    let mut a = Arg::<24>::new();
    a.set16(0, DOMID_SELF)
        .set16(2, 1)
        .set32(4, space)
        .set64(8, idx)
        .set64(16, gpfn);
    trap::hypercall(nr::MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP, a.addr(), 0, 0, 0])
}

/// One `map_grant_ref` of `gref` from `dom` at `at`: (status, handle).
pub fn map(at: u64, flags: u32, gref: u32, dom: u16) -> (i64, u32) {
    let mut a = Arg::<32>::new();
    a.set64(0, at)
        .set32(8, flags)
        .set32(12, gref)
        .set16(16, dom)
        .set16(18, 0x7777);
    let r = trap::hypercall(
        nr::GRANT_TABLE_OP,
        [gnttabop::MAP_GRANT_REF, a.addr(), 1, 0, 0],
    );
    if r != 0 {
        return (r, 0);
    }
    (i64::from(a.get16(18) as i16), a.get32(20))
}

/// One `unmap_grant_ref`: its status.
pub fn unmap(at: u64, handle: u32) -> i64 {
    let mut a = Arg::<24>::new();
    a.set64(0, at).set32(16, handle).set16(20, 0x7777);
    let r = trap::hypercall(
        nr::GRANT_TABLE_OP,
        [gnttabop::UNMAP_GRANT_REF, a.addr(), 1, 0, 0],
    );
    if r != 0 {
        return r;
    }
    i64::from(a.get16(20) as i16)
}

/// One `GNTTABOP_copy`: its status (or the call's error).
pub fn copy(src: (u64, u16, u16), dst: (u64, u16, u16), len: u16, flags: u16) -> i64 {
    let mut a = Arg::<40>::new();
    a.set64(0, src.0)
        .set16(8, src.1)
        .set16(10, src.2)
        .set64(16, dst.0)
        .set16(24, dst.1)
        .set16(26, dst.2)
        .set16(32, len)
        .set16(34, flags)
        .set16(36, 0x7777);
    let r = trap::hypercall(nr::GRANT_TABLE_OP, [gnttabop::COPY, a.addr(), 1, 0, 0]);
    if r != 0 {
        return r;
    }
    i64::from(a.get16(36) as i16)
}

/// Grant-table v1 entry `gref` in the frame at `table`: `dom` may use
/// frame `gfn` (read-write unless `readonly`).
pub fn grant(table: Shared, gref: usize, dom: u16, gfn: u32, readonly: bool) {
    table.w16(gref * 8 + 2, dom);
    table.w32(gref * 8 + 4, gfn);
    let flags = gnt::GTF_PERMIT_ACCESS | if readonly { gnt::GTF_READONLY } else { 0 };
    crate::arch::barrier();
    table.w16(gref * 8, flags);
}
