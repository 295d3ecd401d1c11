//! `hvm_op` (34): the HVM parameters a domU may read (xenstore and
//! console locations, the callback IRQ) and may not set.

use super::{Caller, HYPERCALLS, Hypercall, field};
use crate::xen::errno::{EINVAL, ENOSYS, EPERM, ESRCH};
use crate::xen::{DOMID_SELF, nr};

pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
pub const HVM_PARAM_STORE_PFN: u32 = 1;
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;
pub const HVM_NR_PARAMS: u32 = 39;

const HVMOP_SET_PARAM: u64 = 0;
const HVMOP_GET_PARAM: u64 = 1;

/// The handler.
pub fn hvm_op(c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    let (op, arg) = (a[0], a[1]);
    if op != HVMOP_SET_PARAM && op != HVMOP_GET_PARAM {
        return ENOSYS.ret();
    }
    // struct xen_hvm_param: u16 domid, u16 pad, u32 index, u64 value.
    let mut buf = [0u8; 16];
    if let Err(e) = c.read(arg, &mut buf) {
        return e.ret();
    }
    let domid = field::<2>(&buf, 0) as u16;
    let index = field::<4>(&buf, 4) as u32;
    if domid != DOMID_SELF && domid != c.domid() {
        return if c.domain_exists(domid) { EPERM } else { ESRCH }.ret();
    }
    let guest_readable = matches!(
        index,
        HVM_PARAM_CALLBACK_IRQ
            | HVM_PARAM_STORE_PFN
            | HVM_PARAM_STORE_EVTCHN
            | HVM_PARAM_CONSOLE_PFN
            | HVM_PARAM_CONSOLE_EVTCHN
    );
    if op == HVMOP_SET_PARAM {
        return if guest_readable || index == HVM_PARAM_MONITOR_RING_PFN {
            EPERM.ret()
        } else {
            EINVAL.ret()
        };
    }
    if index == HVM_PARAM_MONITOR_RING_PFN {
        return EPERM.ret();
    }
    if !guest_readable {
        return EINVAL.ret();
    }
    buf[8..].copy_from_slice(&c.hvm_param(index).to_le_bytes());
    match c.write(arg, &buf) {
        Ok(()) => 0,
        Err(e) => e.ret(),
    }
}

crate::arch::register! {
    HYPERCALLS,
    static HVM_OP: Hypercall = Hypercall {
        nr: nr::HVM_OP,
        name: "hvm_op",
        interface: None,
        handler: hvm_op,
    };
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BASE, FakeCaller};
    use super::*;

    fn param(c: &mut FakeCaller, op: u64, domid: u16, index: u32) -> (i64, u64) {
        let mut buf = [0u8; 16];
        buf[..2].copy_from_slice(&domid.to_le_bytes());
        buf[4..8].copy_from_slice(&index.to_le_bytes());
        buf[8..].copy_from_slice(&0xaaaa_u64.to_le_bytes());
        c.put(BASE, &buf);
        let r = hvm_op(c, [op, BASE, 0, 0, 0]);
        (r, field::<8>(c.bytes(BASE, 16), 8))
    }

    #[test]
    fn store_params_read_as_set_and_zero_when_unset() {
        let mut c = FakeCaller::new();
        assert_eq!(param(&mut c, 1, DOMID_SELF, HVM_PARAM_STORE_PFN), (0, 0));
        c.params.push((HVM_PARAM_STORE_EVTCHN, 1));
        assert_eq!(param(&mut c, 1, DOMID_SELF, HVM_PARAM_STORE_EVTCHN), (0, 1));
        assert_eq!(param(&mut c, 1, 1, HVM_PARAM_CONSOLE_PFN), (0, 0));
    }

    #[test]
    fn guests_cannot_set_params() {
        let mut c = FakeCaller::new();
        assert_eq!(param(&mut c, 0, DOMID_SELF, HVM_PARAM_STORE_PFN).0, -1);
        assert_eq!(param(&mut c, 0, DOMID_SELF, 3).0, -22);
    }

    #[test]
    fn unknown_index_monitor_ring_other_domain_and_other_op() {
        let mut c = FakeCaller::new();
        assert_eq!(param(&mut c, 1, DOMID_SELF, 3).0, -22);
        assert_eq!(
            param(&mut c, 1, DOMID_SELF, HVM_PARAM_MONITOR_RING_PFN).0,
            -1
        );
        assert_eq!(param(&mut c, 1, 2, HVM_PARAM_STORE_PFN).0, -1);
        assert_eq!(param(&mut c, 1, 77, HVM_PARAM_STORE_PFN).0, -3);
        assert_eq!(hvm_op(&mut c, [5, BASE, 0, 0, 0]), -38);
        assert_eq!(hvm_op(&mut c, [1, 0, 0, 0, 0]), -14);
    }
}
