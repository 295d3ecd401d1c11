//! The Xen hypercalls the guest makes (structures from Xen's public
//! headers, as listed in the project's spec; the numbers are the common
//! crate's): `xen_version`, `memory_op` to map `shared_info`,
//! `grant_table_op` `query_size` and `event_channel_op` `status`, `send`,
//! `init_control`, `expand_array`.
//! Structures live on the guest's stack; with the MMU off a stack address
//! is the guest-physical address the hypervisor reads.

use oxen_guest_common::xen::nr::{EVENT_CHANNEL_OP, GRANT_TABLE_OP, MEMORY_OP, XEN_VERSION};
use oxen_guest_common::xen::{
    DOMID_SELF, XENMAPSPACE_SHARED_INFO, XENMEM_ADD_TO_PHYSMAP, evtchnop, gnttabop, xenver,
};

use crate::arch::hypercall;

/// A hypercall's result: `Ok` with a non-negative x0, else the errno.
pub type HcResult = Result<u64, i64>;

fn result(r: i64) -> HcResult {
    if r < 0 { Err(r) } else { Ok(r as u64) }
}

/// Calls `op` of hypercall `nr` with a pointer to `arg` and `count`.
fn with_arg<T>(nr: u64, op: u64, arg: &mut T, count: u64) -> HcResult {
    // SAFETY: `arg` is an exclusive borrow of the `repr(C)` structure this
    // (`nr`, `op`) pair reads and writes, alive for the whole call.
    result(unsafe { hypercall(nr, [op, arg as *mut T as u64, count, 0, 0]) })
}

/// `xen_version(XENVER_version)`: `major << 16 | minor`.
pub fn xen_version() -> HcResult {
    // SAFETY: XENVER_version reads no argument; the null pointer is unused.
    result(unsafe { hypercall(XEN_VERSION, [xenver::VERSION, 0, 0, 0, 0]) })
}

#[repr(C)]
struct AddToPhysmap {
    domid: u16,
    size: u16,
    space: u32,
    idx: u64,
    gpfn: u64,
}

/// Maps the domain's `shared_info` page at guest frame `gpfn`.
pub fn map_shared_info(gpfn: u64) -> HcResult {
    let mut a = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn,
    };
    with_arg(MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, &mut a, 0)
}

#[repr(C)]
struct QuerySize {
    dom: u16,
    nr_frames: u32,
    max_nr_frames: u32,
    status: i16,
}

/// `GNTTABOP_query_size` for this domain: the hypercall's result, or the
/// operation's own status when that is an error.
pub fn gnttab_query_size() -> HcResult {
    let mut q = QuerySize {
        dom: DOMID_SELF,
        nr_frames: 0,
        max_nr_frames: 0,
        status: 0,
    };
    let r = with_arg(GRANT_TABLE_OP, gnttabop::QUERY_SIZE, &mut q, 1)?;
    if q.status < 0 {
        Err(i64::from(q.status))
    } else {
        Ok(r)
    }
}

#[repr(C)]
struct Status {
    dom: u16,
    port: u32,
    status: u32,
    vcpu: u32,
    detail: [u32; 2],
}

/// `EVTCHNOP_status` of this domain's `port`: the port's state
/// (`EVTCHNSTAT_*`).
pub fn evtchn_status(port: u32) -> HcResult {
    let mut s = Status {
        dom: DOMID_SELF,
        port,
        status: 0,
        vcpu: 0,
        detail: [0; 2],
    };
    with_arg(EVENT_CHANNEL_OP, evtchnop::STATUS, &mut s, 0)?;
    Ok(u64::from(s.status))
}

/// `EVTCHNOP_send` on `port`.
pub fn evtchn_send(port: u32) -> HcResult {
    let mut p = port;
    with_arg(EVENT_CHANNEL_OP, evtchnop::SEND, &mut p, 0)
}

#[repr(C)]
struct InitControl {
    control_gfn: u64,
    offset: u32,
    vcpu: u32,
    link_bits: u8,
    pad: [u8; 7],
}

/// `EVTCHNOP_init_control`: switches the domain to the FIFO ABI with
/// vCPU 0's control block at the start of frame `gfn`.
pub fn fifo_init_control(gfn: u64) -> HcResult {
    let mut c = InitControl {
        control_gfn: gfn,
        offset: 0,
        vcpu: 0,
        link_bits: 0,
        pad: [0; 7],
    };
    with_arg(EVENT_CHANNEL_OP, evtchnop::INIT_CONTROL, &mut c, 0)
}

/// `EVTCHNOP_expand_array`: adds frame `gfn` to the FIFO event array.
pub fn fifo_expand_array(gfn: u64) -> HcResult {
    let mut g = gfn;
    with_arg(EVENT_CHANNEL_OP, evtchnop::EXPAND_ARRAY, &mut g, 0)
}

#[repr(C)]
struct HvmParam {
    domid: u16,
    pad: u16,
    index: u32,
    value: u64,
}

/// `HVMOP_get_param(index)` for this domain.
pub fn hvm_get_param(index: u32) -> HcResult {
    let mut p = HvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    // HVMOP_get_param is op 1; the op takes no count.
    with_arg(oxen_guest_common::xen::nr::HVM_OP, 1, &mut p, 0)?;
    Ok(p.value)
}
