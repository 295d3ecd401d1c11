//! `memory_op` (12): `XENMEM_add_to_physmap` routed by space to the
//! subsystem that owns it (shared_info → event channels, grant_table →
//! grant tables).

use super::{Caller, HYPERCALLS, Hypercall, PHYSMAP_SPACES, PhysmapSpace, field};
use crate::xen::errno::{ENOSYS, EPERM, ESRCH};
use crate::xen::{DOMID_SELF, nr};

pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// The handler, with the spaces to route to.
pub fn memory_op_with(spaces: &[PhysmapSpace], c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    // The low 6 bits are the sub-op; the rest a continuation extent.
    let (cmd, arg) = (a[0] & 0x3f, a[1]);
    if cmd != XENMEM_ADD_TO_PHYSMAP {
        return ENOSYS.ret();
    }
    // struct xen_add_to_physmap: u16 domid, u16 size, u32 space, u64 idx, u64 gpfn.
    let mut b = [0u8; 24];
    if let Err(e) = c.read(arg, &mut b) {
        return e.ret();
    }
    let domid = field::<2>(&b, 0) as u16;
    let space = field::<4>(&b, 4) as u32;
    let (idx, gpfn) = (field::<8>(&b, 8), field::<8>(&b, 16));
    if domid != DOMID_SELF && domid != c.domid() {
        return if c.domain_exists(domid) { EPERM } else { ESRCH }.ret();
    }
    match spaces.iter().find(|s| s.space == space) {
        Some(s) if c.granted(s.interface) => match (s.handler)(c, idx, gpfn) {
            Ok(()) => 0,
            Err(e) => e.ret(),
        },
        // gmfn, gmfn_range, gmfn_foreign, dev_mmio and unknown spaces, and
        // spaces of interfaces the domain was not given.
        _ => ENOSYS.ret(),
    }
}

fn memory_op(c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    memory_op_with(&PHYSMAP_SPACES, c, a)
}

crate::arch::register! {
    HYPERCALLS,
    static MEMORY_OP: Hypercall = Hypercall {
        nr: nr::MEMORY_OP,
        name: "memory_op",
        interface: None,
        handler: memory_op,
    };
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BASE, FakeCaller};
    use super::*;
    use crate::subsystem::Interface;
    use crate::xen::errno::{EINVAL, Errno};

    fn shared_info(_: &mut dyn Caller, idx: u64, _gpfn: u64) -> Result<(), Errno> {
        if idx == 0 { Ok(()) } else { Err(EINVAL) }
    }

    const SPACES: &[PhysmapSpace] = &[PhysmapSpace {
        space: XENMAPSPACE_SHARED_INFO,
        interface: Interface::EventChannel,
        handler: shared_info,
    }];

    fn call(c: &mut FakeCaller, domid: u16, space: u32, idx: u64) -> i64 {
        let mut b = [0u8; 24];
        b[..2].copy_from_slice(&domid.to_le_bytes());
        b[4..8].copy_from_slice(&space.to_le_bytes());
        b[8..16].copy_from_slice(&idx.to_le_bytes());
        b[16..].copy_from_slice(&0x4_0000u64.to_le_bytes());
        c.put(BASE, &b);
        memory_op_with(SPACES, c, [7, BASE, 0, 0, 0])
    }

    #[test]
    fn shared_info_reaches_its_subsystem_when_granted() {
        let mut c = FakeCaller::new();
        c.granted.push(Interface::EventChannel);
        assert_eq!(call(&mut c, DOMID_SELF, 0, 0), 0);
        assert_eq!(call(&mut c, DOMID_SELF, 0, 1), -22);
    }

    #[test]
    fn closed_or_unknown_spaces_are_enosys() {
        let mut c = FakeCaller::new();
        assert_eq!(call(&mut c, DOMID_SELF, 0, 0), -38, "not granted");
        c.granted.push(Interface::EventChannel);
        assert_eq!(call(&mut c, DOMID_SELF, 4, 0), -38, "gmfn_foreign");
        assert_eq!(call(&mut c, DOMID_SELF, 7, 0), -38, "unknown space");
    }

    #[test]
    fn other_domains_are_eperm_or_esrch_and_other_subops_enosys() {
        let mut c = FakeCaller::new();
        c.granted.push(Interface::EventChannel);
        assert_eq!(call(&mut c, 2, 0, 0), -1);
        assert_eq!(call(&mut c, 9, 0, 0), -3);
        assert_eq!(memory_op_with(SPACES, &mut c, [6, BASE, 0, 0, 0]), -38);
    }
}
