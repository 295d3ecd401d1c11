//! `vcpu_op` (24) and `vm_assist` (21). Arm allows only
//! `register_vcpu_info` (served by the event-channel subsystem) and
//! `register_runstate_memory_area` (served here).

use super::{Caller, HYPERCALLS, Hypercall, VCPU_OPS, VcpuOp};
use crate::xen::errno::{EINVAL, ENOENT, ENOSYS};
use crate::xen::nr;

pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = 10;
/// VMASST_TYPE_runstate_update_flag, the only type Arm accepts.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u64 = 5;

/// The handler, with the subsystem commands to route to.
pub fn vcpu_op_with(ops: &[VcpuOp], c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    let (cmd, vcpuid, arg) = (a[0], a[1], a[2]);
    if vcpuid >= c.nr_vcpus() as u64 {
        return ENOENT.ret();
    }
    let vcpuid = vcpuid as usize;
    if cmd == VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA {
        let mut b = [0u8; 8];
        if let Err(e) = c.read(arg, &mut b) {
            return e.ret();
        }
        c.set_runstate_area(vcpuid, u64::from_le_bytes(b));
        return 0;
    }
    match ops.iter().find(|o| o.cmd == cmd) {
        Some(op) if c.granted(op.interface) => (op.handler)(c, vcpuid, arg),
        Some(_) => ENOSYS.ret(),
        // Event channels own register_vcpu_info: an image without them
        // answers like a domain they are closed for.
        None if cmd == VCPUOP_REGISTER_VCPU_INFO => ENOSYS.ret(),
        None => EINVAL.ret(),
    }
}

fn vcpu_op(c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    vcpu_op_with(&VCPU_OPS, c, a)
}

/// `vm_assist`: only the runstate-update flag exists on Arm.
pub fn vm_assist(_c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    // Xen checks the type before the command.
    match (a[1], a[0]) {
        (VMASST_TYPE_RUNSTATE_UPDATE_FLAG, 0 | 1) => 0,
        (VMASST_TYPE_RUNSTATE_UPDATE_FLAG, _) => ENOSYS.ret(),
        _ => EINVAL.ret(),
    }
}

crate::arch::register! {
    HYPERCALLS,
    static VCPU_OP: Hypercall = Hypercall {
        nr: nr::VCPU_OP,
        name: "vcpu_op",
        interface: None,
        handler: vcpu_op,
    };
}

crate::arch::register! {
    HYPERCALLS,
    static VM_ASSIST: Hypercall = Hypercall {
        nr: nr::VM_ASSIST,
        name: "vm_assist",
        interface: None,
        handler: vm_assist,
    };
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BASE, FakeCaller};
    use super::*;
    use crate::subsystem::Interface;

    fn info(_: &mut dyn Caller, vcpu: usize, _arg: u64) -> i64 {
        100 + vcpu as i64
    }

    const OPS: &[VcpuOp] = &[VcpuOp {
        cmd: VCPUOP_REGISTER_VCPU_INFO,
        interface: Interface::EventChannel,
        handler: info,
    }];

    #[test]
    fn runstate_area_is_recorded_per_vcpu() {
        let mut c = FakeCaller::new();
        c.put(BASE, &0xffff_8000_1234_5678u64.to_le_bytes());
        assert_eq!(vcpu_op_with(OPS, &mut c, [5, 1, BASE, 0, 0]), 0);
        assert_eq!(c.runstate, [(1, 0xffff_8000_1234_5678)]);
    }

    #[test]
    fn bad_vcpu_is_enoent_and_other_commands_einval() {
        let mut c = FakeCaller::new();
        assert_eq!(vcpu_op_with(OPS, &mut c, [10, 2, BASE, 0, 0]), -2);
        assert_eq!(vcpu_op_with(OPS, &mut c, [8, 0, BASE, 0, 0]), -22);
    }

    #[test]
    fn register_vcpu_info_goes_to_its_subsystem_when_granted() {
        let mut c = FakeCaller::new();
        assert_eq!(vcpu_op_with(OPS, &mut c, [10, 1, BASE, 0, 0]), -38);
        c.granted.push(Interface::EventChannel);
        assert_eq!(vcpu_op_with(OPS, &mut c, [10, 1, BASE, 0, 0]), 101);
    }

    #[test]
    fn register_vcpu_info_without_event_channels_is_closed_not_einval() {
        let mut c = FakeCaller::new();
        assert_eq!(vcpu_op_with(&[], &mut c, [10, 0, BASE, 0, 0]), -38);
    }

    #[test]
    fn vm_assist_accepts_only_the_runstate_flag() {
        let mut c = FakeCaller::new();
        assert_eq!(vm_assist(&mut c, [0, 5, 0, 0, 0]), 0);
        assert_eq!(vm_assist(&mut c, [0, 0, 0, 0, 0]), -22);
        assert_eq!(vm_assist(&mut c, [7, 5, 0, 0, 0]), -38);
        assert_eq!(
            vm_assist(&mut c, [2, 0, 0, 0, 0]),
            -22,
            "type is checked first"
        );
    }
}
