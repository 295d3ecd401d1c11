//! The Xen hypercall cases: `xen_version`, `hvm_op`, `memory_op`,
//! `vcpu_op`, `vm_assist`, `sched_op`, event channels (in one domain and,
//! through a static channel, between two), grant tables between two
//! domains, interfaces closed to a domain without `xen,enhanced`, and
//! hostile arguments. Which groups run comes from the kernel's bootargs:
//!
//! - `test.xen=on`: the hypercalls every domU may make, and `shared_info`;
//! - `test.evtchn=local`: event channels inside the domain;
//! - `test.peer=ping|pong evtchn.port=P evtchn.remote=D:Q evtchn.rounds=N
//!   evtchn.abi=fifo|2l`: a static channel from port P to domain D's
//!   port Q, N round trips (ping sends first; pong's port starts pending);
//! - `test.gnttab=on` (with `test.peer`): ping grants, pong maps;
//! - `test.closed=on`: the interfaces a domain without `xen,enhanced` is
//!   refused on Oxen and served on Xen (the note says which);
//! - `test.hostile=on`: bad pointers, huge counts, misaligned arguments.
//!
//! Two domains coordinate only through their static channel: each step
//! of the grant cases is one event, strictly alternating, so at most one
//! event is ever in flight.

use core::sync::atomic::{AtomicUsize, Ordering};

use oxen_guest_common::dt;
use oxen_guest_common::msg;
use oxen_guest_common::msg::Msg;

use crate::arch::{self, ms};
use crate::cases::Ctx;
use crate::ensure;
use crate::gic;
use crate::report::{Verdict, case};
use crate::trap;
use crate::xen::{self, Arg, DOMID_SELF, Page, Shared, Status, err, evtchnop, gnt, gnttabop, nr};

/// Longest wait for the hypervisor.
const WAIT_MS: u64 = 3000;
/// Longest wait for the other domain at the first meeting: it runs its
/// own cases first, and may share a pCPU with us.
const MEET_MS: u64 = 60_000;
/// Longest wait for the other domain once both are in step.
const STEP_MS: u64 = 10_000;
/// Inside the vPCI ECAM window: nothing is mapped there for a domU.
const UNMAPPED: u64 = 0x1000_0000;
/// Where this domain maps its grant-table frame 0 (Linux's choice, the
/// start of the grant window).
const GNTTAB_GFN: u64 = 0x38000;
/// Grant references the cases use (0–7 are the toolstack's).
const REF_RW: u32 = 8;
const REF_RO: u32 = 9;
const REF_NEVER: u32 = 10;
/// What the granter writes in its page, and what the mapper answers.
const FROM_GRANTER: u64 = 0x6772_616e_7465_7221;
const FROM_MAPPER: u64 = 0x6d61_7070_6572_2121;
const REPLY: u64 = 0x7265_706c_7921_2121;
const COPIED: u64 = 0x636f_7069_6564_2121;

/// The device tree's address (x0 at entry), for the hostile cases that
/// need a page of RAM nothing else uses.
static DTB: AtomicUsize = AtomicUsize::new(0);

/// Records where the device tree is.
pub fn set_dtb(addr: usize) {
    DTB.store(addr, Ordering::Release);
}

/// The granter's pages, and the mapper's page for copies.
static GRANTED: Page = Page::new();
static GRANTED_RO: Page = Page::new();
static COPY_PAGE: Page = Page::new();
/// The runstate area `register_runstate_memory_area` writes.
static RUNSTATE: Page = Page::new();

fn on(ctx: &Ctx, key: &str) -> bool {
    dt::bootarg(ctx.bootargs, key) == Some("on")
}

/// Runs the groups the bootargs ask for.
pub fn run(ctx: &Ctx) {
    if on(ctx, "test.closed") {
        closed_cases();
    }
    if on(ctx, "test.xen") {
        hypercall_cases(ctx);
    }
    if dt::bootarg(ctx.bootargs, "test.evtchn") == Some("local") {
        local_evtchn_cases();
    }
    if let Some(role) = dt::bootarg(ctx.bootargs, "test.peer") {
        peer_cases(ctx, role);
    }
    if on(ctx, "test.hostile") {
        hostile_cases(ctx);
    }
}

fn returns(what: &str, got: i64, want: i64) -> Verdict {
    ensure!(got == want, "{what} returned {got}, expected {want}");
    Ok(Msg::new())
}

/// Lets IRQs in until `done` holds or `WAIT_MS` pass.
fn wait_irq(mut done: impl FnMut() -> bool) -> bool {
    arch::irq_enable();
    let ok = arch::wait_for(ms(WAIT_MS), &mut done);
    arch::irq_disable();
    ok
}

fn upcalls() -> u32 {
    gic::count(0, gic::EVTCHN_PPI)
}

// ---- closed interfaces (no xen,enhanced) ----

/// A call Oxen refuses to a domain without `xen,enhanced` (`-ENOSYS`, as
/// a Xen built without the interface) and Xen serves (0): the note says
/// which, and the expectations pin it per peer.
fn closed_or_served(what: &str, r: i64) -> Verdict {
    match r {
        err::ENOSYS => Ok(msg!("enosys")),
        0 => Ok(msg!("served")),
        _ => Err(msg!(
            "{what} returned {r}, expected -38 (closed) or 0 (served)"
        )),
    }
}

fn closed_cases() {
    case("closed.event_channel_op", || {
        let mut a = Arg::<24>::new();
        a.set16(0, DOMID_SELF).set32(4, 0);
        let r = xen::evtchn_op(evtchnop::STATUS, &mut a);
        closed_or_served("EVTCHNOP_status of port 0", r)
    });
    case("closed.grant_table_op", || {
        let mut a = Arg::<16>::new();
        a.set16(0, DOMID_SELF);
        let r = xen::gnttab_op(gnttabop::QUERY_SIZE, &mut a, 1);
        closed_or_served("GNTTABOP_query_size", r)
    });
    case("closed.add_to_physmap_shared_info", || {
        let r = xen::add_to_physmap(xen::XENMAPSPACE_SHARED_INFO, 0, xen::SHARED_INFO.gfn());
        closed_or_served("add_to_physmap(shared_info)", r)
    });
    case("closed.add_to_physmap_grant_table", || {
        let r = xen::add_to_physmap(xen::XENMAPSPACE_GRANT_TABLE, 0, GNTTAB_GFN);
        closed_or_served("add_to_physmap(grant_table)", r)
    });
    case("closed.register_vcpu_info", || {
        let mut a = Arg::<16>::new();
        a.set64(0, xen::VCPU_INFO_PAGE.gfn())
            .set32(8, xen::VCPU_INFO_OFFSET as u32);
        let r = arch::hypercall(nr::VCPU_OP, [10, 0, a.addr(), 0, 0]);
        closed_or_served("register_vcpu_info", r)
    });
    // Served by both whatever the domain's interfaces.
    case("closed.xen_version_served", || {
        let r = arch::hypercall(nr::XEN_VERSION, [0; 5]);
        ensure!(
            r == 0x4_0014,
            "XENVER_version returned {r:#x}, expected 0x40014 (4.20)"
        );
        Ok(Msg::new())
    });
}

// ---- hypercalls every domU may make ----

fn hypercall_cases(ctx: &Ctx) {
    case("xen.version", || {
        let r = arch::hypercall(nr::XEN_VERSION, [0; 5]);
        ensure!(
            r == 0x4_0014,
            "XENVER_version returned {r:#x}, expected 0x40014 (4.20)"
        );
        Ok(Msg::new())
    });
    case("xen.get_features", || {
        let mut a = Arg::<8>::new();
        let r = xen::call(nr::XEN_VERSION, 6, &mut a);
        ensure!(r == 0, "XENVER_get_features(0) returned {r}");
        let map = a.get32(4);
        ensure!(
            map == 0x5_6005,
            "XENVER_get_features(0) submap is {map:#x}, expected 0x56005"
        );
        let mut b = Arg::<8>::new();
        b.set32(0, 1);
        let r = xen::call(nr::XEN_VERSION, 6, &mut b);
        returns("XENVER_get_features(submap 1)", r, err::EINVAL)
    });
    case("xen.pagesize", || {
        let r = arch::hypercall(nr::XEN_VERSION, [7, 0, 0, 0, 0]);
        ensure!(
            r == 4096,
            "XENVER_pagesize(NULL) returned {r}, expected 4096"
        );
        let mut a = Arg::<8>::new();
        let r = xen::call(nr::XEN_VERSION, 7, &mut a);
        returns("XENVER_pagesize with a buffer", r, err::EINVAL)
    });
    case("hvm.get_params", || {
        for (index, name) in [
            (1, "STORE_PFN"),
            (2, "STORE_EVTCHN"),
            (17, "CONSOLE_PFN"),
            (18, "CONSOLE_EVTCHN"),
        ] {
            let mut a = Arg::<16>::new();
            a.set16(0, DOMID_SELF).set32(4, index).set64(8, 0xdead);
            let r = xen::call(nr::HVM_OP, 1, &mut a);
            ensure!(r == 0, "HVMOP_get_param({name}) returned {r}, expected 0");
            ensure!(
                a.get64(8) == 0,
                "HVM_PARAM_{name} reads {:#x}, expected 0 (no xenstore)",
                a.get64(8)
            );
        }
        Ok(Msg::new())
    });
    case("hvm.set_param_eperm", || {
        let mut a = Arg::<16>::new();
        a.set16(0, DOMID_SELF).set32(4, 1).set64(8, 0x1234);
        let r = xen::call(nr::HVM_OP, 0, &mut a);
        returns("HVMOP_set_param(STORE_PFN)", r, err::EPERM)
    });
    case("hvm.get_param_index3_einval", || {
        let mut a = Arg::<16>::new();
        a.set16(0, DOMID_SELF).set32(4, 3);
        let r = xen::call(nr::HVM_OP, 1, &mut a);
        returns("HVMOP_get_param(index 3)", r, err::EINVAL)
    });
    case("hvm.unknown_op_enosys", || {
        let mut a = Arg::<16>::new();
        let r = xen::call(nr::HVM_OP, 5, &mut a);
        returns("hvm_op(5)", r, err::ENOSYS)
    });
    case("mem.add_to_physmap_shared_info", map_shared_info);
    case("mem.add_to_physmap_shared_info_idx1", || {
        let r = xen::add_to_physmap(xen::XENMAPSPACE_SHARED_INFO, 1, xen::SHARED_INFO.gfn());
        returns("add_to_physmap(shared_info, idx 1)", r, err::EINVAL)
    });
    case("mem.add_to_physmap_unknown_space", || {
        let r = xen::add_to_physmap(7, 0, xen::SHARED_INFO.gfn());
        returns("add_to_physmap(space 7)", r, err::ENOSYS)
    });
    case("vcpu.register_vcpu_info_misaligned", || {
        for offset in [4u32, 4072] {
            let r = register_vcpu_info(0, offset);
            ensure!(
                r == err::ENXIO,
                "register_vcpu_info at offset {offset} returned {r}, expected -6 (ENXIO)"
            );
        }
        Ok(Msg::new())
    });
    case("vcpu.register_vcpu_info_bad_vcpu", || {
        let r = register_vcpu_info(ctx.vcpus as u64, xen::VCPU_INFO_OFFSET as u32);
        returns(
            "register_vcpu_info for a vCPU past the last",
            r,
            err::ENOENT,
        )
    });
    case("vcpu.register_vcpu_info", register_vcpu_info_twice);
    case("vcpu.unknown_op_einval", || {
        let r = arch::hypercall(nr::VCPU_OP, [8, 0, 0, 0, 0]);
        returns("vcpu_op(set_singleshot_timer)", r, err::EINVAL)
    });
    case("vcpu.register_runstate", || {
        let area = Shared::of(&RUNSTATE);
        area.fill(0xff);
        let mut a = Arg::<8>::new();
        a.set64(0, RUNSTATE.addr() as u64);
        // vcpu_op(cmd, vcpuid, arg): the argument is x2.
        let r = arch::hypercall(nr::VCPU_OP, [5, 0, a.addr(), 0, 0]);
        ensure!(
            r == 0,
            "register_runstate_memory_area returned {r}, expected 0"
        );
        let state = area.r32(0);
        ensure!(
            state == 0,
            "the runstate area's state is {state:#x}, expected 0 (running)"
        );
        Ok(Msg::new())
    });
    case("vm_assist", || {
        for (cmd, ty, want) in [
            (0, 5, 0),
            (1, 5, 0),
            (0, 0, err::EINVAL),
            (2, 5, err::ENOSYS),
        ] {
            let r = arch::hypercall(nr::VM_ASSIST, [cmd, ty, 0, 0, 0]);
            ensure!(
                r == want,
                "vm_assist({cmd}, {ty}) returned {r}, expected {want}"
            );
        }
        Ok(Msg::new())
    });
    case("vm_assist.bad_cmd_and_type", || {
        // Xen checks the type before the command.
        let r = arch::hypercall(nr::VM_ASSIST, [2, 0, 0, 0, 0]);
        returns("vm_assist(2, 0)", r, err::EINVAL)
    });
    case("sched.yield", || {
        let r = arch::hypercall(nr::SCHED_OP, [0; 5]);
        returns("SCHEDOP_yield", r, 0)
    });
    case("sched.poll_too_many_ports", || {
        let mut ports = Arg::<{ 4 * 129 }>::new();
        let mut a = Arg::<24>::new();
        a.set64(0, ports.addr()).set32(8, 129).set64(16, 0);
        let r = xen::call(nr::SCHED_OP, 3, &mut a);
        returns("SCHEDOP_poll with 129 ports", r, err::EINVAL)
    });
}

fn map_shared_info() -> Verdict {
    // A page that cannot be mistaken for a fresh shared_info.
    let page = Shared::of(&xen::SHARED_INFO);
    page.fill(0xa5);
    let r = xen::add_to_physmap(xen::XENMAPSPACE_SHARED_INFO, 0, xen::SHARED_INFO.gfn());
    ensure!(r == 0, "add_to_physmap(shared_info, idx 0) returned {r}");
    xen::shared_info_mapped();
    // Every port starts unmasked, and nothing lives past the structure.
    for off in (xen::SI_MASK..xen::SI_MASK + 512)
        .chain(1088..4096)
        .step_by(8)
    {
        let v = page.r64(off);
        ensure!(
            v == 0,
            "shared_info at offset {off} reads {v:#x}, expected 0 (the RAM page is still there?)"
        );
    }
    ensure!(
        page.r8(1) != 0xa5,
        "shared_info's first vcpu_info still holds the RAM page's pattern"
    );
    Ok(Msg::new())
}

fn register_vcpu_info(vcpu: u64, offset: u32) -> i64 {
    let mut a = Arg::<16>::new();
    a.set64(0, xen::VCPU_INFO_PAGE.gfn()).set32(8, offset);
    arch::hypercall(nr::VCPU_OP, [10, vcpu, a.addr(), 0, 0])
}

/// First registration 0, with one upcall (E7); the second `-EBUSY`.
fn register_vcpu_info_twice() -> Verdict {
    ensure!(
        xen::vcpu_info().is_some(),
        "shared_info is not mapped (mem.add_to_physmap_shared_info failed)"
    );
    gic::enable_ppi(gic::EVTCHN_PPI)?;
    let before = upcalls();
    let r = register_vcpu_info(0, xen::VCPU_INFO_OFFSET as u32);
    ensure!(r == 0, "register_vcpu_info(vCPU0) returned {r}, expected 0");
    let vi = Shared(xen::VCPU_INFO_PAGE.addr() + xen::VCPU_INFO_OFFSET);
    xen::vcpu_info_moved(vi.0);
    let (up, sel) = (vi.r8(xen::VI_UPCALL_PENDING), vi.r64(xen::VI_PENDING_SEL));
    ensure!(
        up == 1 && sel == u64::MAX,
        "after register_vcpu_info upcall_pending is {up} and pending_sel {sel:#x}, expected 1 and all ones"
    );
    ensure!(
        wait_irq(|| upcalls() != before),
        "no upcall (PPI 31) within {WAIT_MS} ms of register_vcpu_info"
    );
    let r = register_vcpu_info(0, xen::VCPU_INFO_OFFSET as u32);
    returns("a second register_vcpu_info(vCPU0)", r, err::EBUSY)
}

// ---- event channels inside one domain ----

fn local_evtchn_cases() {
    case("evtchn.status_port0_closed", || {
        let s = xen::status(0).map_err(|e| msg!("EVTCHNOP_status(0) returned {e}"))?;
        ensure!(
            s.status == xen::EVTCHNSTAT_CLOSED,
            "port 0's status is {}, expected 0 (closed)",
            s.status
        );
        Ok(Msg::new())
    });
    case("evtchn.alloc_unbound_first_port", || {
        let p = xen::alloc_unbound(DOMID_SELF).map_err(|e| msg!("alloc_unbound returned {e}"))?;
        let s = xen::status(p).map_err(|e| msg!("status({p}) returned {e}"))?;
        let closed = xen::close(p);
        ensure!(
            p == 1,
            "the first port of a fresh domain is {p}, expected 1"
        );
        ensure!(
            s.status == xen::EVTCHNSTAT_UNBOUND && s.dom == self_domid(),
            "status of the unbound port is {s:?}, expected unbound towards this domain"
        );
        returns("close", closed, 0)
    });
    case("evtchn.send_port0_einval", || {
        returns("EVTCHNOP_send(0)", xen::send(0), err::EINVAL)
    });
    case("evtchn.send_out_of_range_einval", || {
        returns("EVTCHNOP_send(5000)", xen::send(5000), err::EINVAL)
    });
    case("evtchn.send_unbound_dropped", || {
        let p = xen::alloc_unbound(DOMID_SELF).map_err(|e| msg!("alloc_unbound returned {e}"))?;
        let r = xen::send(p);
        let pend = xen::pending(p);
        xen::close(p);
        ensure!(r == 0, "send on an unbound port returned {r}, expected 0");
        ensure!(!pend, "send on an unbound port left it pending");
        Ok(Msg::new())
    });
    case("evtchn.loopback_ipi", loopback_ipi);
    case("evtchn.masked_then_unmask", masked_then_unmask);
    case("evtchn.loopback_interdomain", loopback_interdomain);
    case("evtchn.bind_virq_24_einval", || {
        let r = xen::bind_virq(24, 0).err().unwrap_or(0);
        returns("bind_virq(24)", r, err::EINVAL)
    });
    case("evtchn.bind_virq_twice_eexist", || {
        let p = xen::bind_virq(0, 0).map_err(|e| msg!("bind_virq(TIMER, 0) returned {e}"))?;
        let again = xen::bind_virq(0, 0);
        xen::close(p);
        returns(
            "a second bind_virq(TIMER, 0)",
            again.err().unwrap_or(0),
            err::EEXIST,
        )
    });
    case("evtchn.bind_pirq_eopnotsupp", || {
        let mut a = Arg::<12>::new();
        let r = xen::evtchn_op(evtchnop::BIND_PIRQ, &mut a);
        returns("bind_pirq", r, err::EOPNOTSUPP)
    });
    case("evtchn.bind_interdomain_missing_domain", || {
        let r = xen::bind_interdomain(999, 1).err().unwrap_or(0);
        returns("bind_interdomain to domain 999", r, err::ESRCH)
    });
    case("evtchn.unknown_cmd_enosys", || {
        let mut a = Arg::<24>::new();
        returns(
            "event_channel_op(99)",
            xen::evtchn_op(99, &mut a),
            err::ENOSYS,
        )
    });
    case("evtchn.exhaustion", exhaustion);
}

/// This domain's ID, from the status of a port unbound towards itself.
pub(crate) fn self_domid() -> u16 {
    match xen::alloc_unbound(DOMID_SELF) {
        Ok(p) => {
            let d = xen::status(p).map(|s| s.dom).unwrap_or(0);
            xen::close(p);
            d
        }
        Err(_) => 0,
    }
}

/// C34 / E1 / E2 / E5: an IPI port sent to itself.
fn loopback_ipi() -> Verdict {
    let vi = xen::vcpu_info().ok_or_else(|| msg!("shared_info is not mapped"))?;
    let p = xen::bind_ipi(0).map_err(|e| msg!("bind_ipi(0) returned {e}"))?;
    let r = check_loopback_ipi(vi, p);
    xen::close(p);
    r
}

fn check_loopback_ipi(vi: Shared, p: u32) -> Verdict {
    let s = xen::status(p).map_err(|e| msg!("status({p}) returned {e}"))?;
    ensure!(
        s.status == xen::EVTCHNSTAT_IPI && s.vcpu == 0,
        "status of the IPI port {p} is {s:?}, expected ipi on vCPU0"
    );
    ensure!(
        vi.r8(xen::VI_UPCALL_PENDING) == 0,
        "upcall_pending is already set before the send"
    );
    let before = upcalls();
    ensure!(xen::send(p) == 0, "send({p}) failed");
    let sel = vi.r64(xen::VI_PENDING_SEL);
    ensure!(
        xen::pending(p),
        "port {p} is not pending in shared_info after send"
    );
    ensure!(
        sel & 1 << (p / 64) != 0 && vi.r8(xen::VI_UPCALL_PENDING) == 1,
        "after send pending_sel is {sel:#x} and upcall_pending {}, expected bit {} and 1",
        vi.r8(xen::VI_UPCALL_PENDING),
        p / 64
    );
    ensure!(
        wait_irq(|| upcalls() != before),
        "no upcall (PPI 31) within {WAIT_MS} ms of the send"
    );
    // E5: a second send while pending changes nothing and raises nothing.
    let once = upcalls();
    ensure!(xen::send(p) == 0, "the second send({p}) failed");
    let (sel, up) = (vi.r64(xen::VI_PENDING_SEL), vi.r8(xen::VI_UPCALL_PENDING));
    arch::irq_enable();
    arch::wait_for(ms(50), || false);
    arch::irq_disable();
    ensure!(
        sel == 0 && up == 0 && upcalls() == once,
        "a send to a port already pending set pending_sel {sel:#x} / upcall_pending {up} / {} upcall(s)",
        upcalls() - once
    );
    ensure!(xen::consume(p), "port {p} lost its pending bit");
    Ok(Msg::new())
}

/// E3 / E4: an event on a masked port waits for `EVTCHNOP_unmask`.
fn masked_then_unmask() -> Verdict {
    let vi = xen::vcpu_info().ok_or_else(|| msg!("shared_info is not mapped"))?;
    let si = Shared::of(&xen::SHARED_INFO);
    let p = xen::bind_ipi(0).map_err(|e| msg!("bind_ipi(0) returned {e}"))?;
    let (w, bit) = (xen::SI_MASK + (p as usize / 64) * 8, 1u64 << (p % 64));
    si.w64(w, si.r64(w) | bit);
    let before = upcalls();
    let r = (|| {
        ensure!(xen::send(p) == 0, "send({p}) failed");
        arch::irq_enable();
        arch::wait_for(ms(50), || false);
        arch::irq_disable();
        ensure!(
            xen::pending(p),
            "the masked port {p} is not pending after send"
        );
        ensure!(
            vi.r64(xen::VI_PENDING_SEL) == 0 && upcalls() == before,
            "a send to a masked port set pending_sel ({:#x}) or raised an upcall",
            vi.r64(xen::VI_PENDING_SEL)
        );
        let mut a = Arg::<4>::new();
        a.set32(0, p);
        let r = xen::evtchn_op(evtchnop::UNMASK, &mut a);
        ensure!(r == 0, "EVTCHNOP_unmask({p}) returned {r}");
        ensure!(
            si.r64(w) & bit == 0,
            "EVTCHNOP_unmask({p}) left the mask bit set"
        );
        ensure!(
            wait_irq(|| upcalls() != before),
            "no upcall within {WAIT_MS} ms of unmasking a pending port"
        );
        Ok(Msg::new())
    })();
    si.w64(w, si.r64(w) & !bit);
    xen::consume(p);
    xen::close(p);
    r
}

/// alloc_unbound to itself, bind_interdomain to that port (left pending),
/// send both ways, close one end (E9).
fn loopback_interdomain() -> Verdict {
    let me = self_domid();
    let a = xen::alloc_unbound(DOMID_SELF).map_err(|e| msg!("alloc_unbound returned {e}"))?;
    let b = match xen::bind_interdomain(DOMID_SELF, a) {
        Ok(b) => b,
        Err(e) => {
            xen::close(a);
            return Err(msg!("bind_interdomain(self, {a}) returned {e}"));
        }
    };
    let r = (|| {
        ensure!(
            xen::consume(b),
            "the port bind_interdomain returned ({b}) is not pending"
        );
        let sa = xen::status(a).map_err(|e| msg!("status({a}) returned {e}"))?;
        ensure!(
            sa.status == xen::EVTCHNSTAT_INTERDOMAIN && sa.dom == me && sa.port == b,
            "status({a}) is {sa:?}, expected interdomain to domain {me} port {b}"
        );
        ensure!(xen::send(a) == 0, "send({a}) failed");
        ensure!(
            xen::wait_event(b, ms(WAIT_MS)),
            "send({a}) did not make port {b} pending with an upcall"
        );
        ensure!(xen::send(b) == 0, "send({b}) failed");
        ensure!(
            xen::wait_event(a, ms(WAIT_MS)),
            "send({b}) did not make port {a} pending with an upcall"
        );
        let c = xen::close(a);
        ensure!(c == 0, "close({a}) returned {c}");
        let sb = xen::status(b).map_err(|e| msg!("status({b}) returned {e}"))?;
        ensure!(
            sb.status == xen::EVTCHNSTAT_UNBOUND && sb.dom == me,
            "after closing {a}, status({b}) is {sb:?}, expected unbound towards domain {me}"
        );
        Ok(Msg::new())
    })();
    xen::close(a);
    xen::close(b);
    r
}

/// E10: ports 1 to 1023, then `-ENOSPC`.
fn exhaustion() -> Verdict {
    let mut got = 0u32;
    let mut last = 0;
    let r = loop {
        match xen::alloc_unbound(DOMID_SELF) {
            Ok(p) => {
                if p != got + 1 && last == 0 {
                    last = p;
                }
                got += 1;
                if got > 5000 {
                    break 0;
                }
            }
            Err(e) => break e,
        }
    };
    for p in 1..=got {
        xen::close(p);
    }
    ensure!(
        last == 0,
        "allocation {} returned port {last}, expected ports in order from 1",
        last
    );
    ensure!(
        got == 1023 && r == err::ENOSPC,
        "{got} alloc_unbound calls succeeded and the next returned {r}, expected 1023 and -28 (ENOSPC)"
    );
    Ok(Msg::new())
}

// ---- two domains through a static channel ----

/// The static channel as the bootargs describe it.
struct Channel {
    port: u32,
    remote_dom: u16,
    remote_port: u32,
    ping: bool,
}

fn channel(ctx: &Ctx, role: &str) -> Result<Channel, Msg> {
    let port = dt::bootarg(ctx.bootargs, "evtchn.port")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| msg!("bootargs have no evtchn.port=N"))?;
    let (d, q) = dt::bootarg(ctx.bootargs, "evtchn.remote")
        .and_then(|r| r.split_once(':'))
        .ok_or_else(|| msg!("bootargs have no evtchn.remote=DOM:PORT"))?;
    let remote_dom = d.parse().map_err(|_| msg!("evtchn.remote domain {d:?}"))?;
    let remote_port = q.parse().map_err(|_| msg!("evtchn.remote port {q:?}"))?;
    let ping = match role {
        "ping" => true,
        "pong" => false,
        r => return Err(msg!("test.peer={r} (expected ping or pong)")),
    };
    Ok(Channel {
        port,
        remote_dom,
        remote_port,
        ping,
    })
}

fn peer_cases(ctx: &Ctx, role: &str) {
    let ch = match channel(ctx, role) {
        Ok(ch) => ch,
        Err(why) => {
            case("evtchn.static_config", || Err(why));
            return;
        }
    };
    let fifo = dt::bootarg(ctx.bootargs, "evtchn.abi") == Some("fifo");
    let rounds: u32 = dt::bootarg(ctx.bootargs, "evtchn.rounds")
        .and_then(|r| r.parse().ok())
        .unwrap_or(100);
    if xen::vcpu_info().is_none() {
        // Map shared_info quietly when test.xen did not already.
        let r = xen::add_to_physmap(xen::XENMAPSPACE_SHARED_INFO, 0, xen::SHARED_INFO.gfn());
        if r == 0 {
            xen::shared_info_mapped();
        }
        let _ = gic::enable_ppi(gic::EVTCHN_PPI);
    }
    if !ch.ping {
        // E8: before anything else touches it.
        case("evtchn.static_remote_pending", || {
            ensure!(
                xen::vcpu_info().is_some(),
                "shared_info could not be mapped"
            );
            ensure!(
                xen::consume(ch.port),
                "port {} (bound second, by bind_interdomain) is not pending at start",
                ch.port
            );
            Ok(Msg::new())
        });
    }
    case("evtchn.static_status", || {
        let s = xen::status(ch.port).map_err(|e| msg!("status({}) returned {e}", ch.port))?;
        let want = Status {
            status: xen::EVTCHNSTAT_INTERDOMAIN,
            vcpu: 0,
            dom: ch.remote_dom,
            port: ch.remote_port,
        };
        ensure!(s == want, "status({}) is {s:?}, expected {want:?}", ch.port);
        Ok(Msg::new())
    });
    if fifo {
        case("evtchn.fifo_init_control", || match xen::init_fifo() {
            Ok(17) => Ok(Msg::new()),
            Ok(bits) => Err(msg!("init_control says link_bits {bits}, expected 17")),
            Err((what, r)) => Err(msg!("{what} returned {r}, expected 0")),
        });
    }
    let ping_pong = case_ok("evtchn.ping_pong", || ping_pong(&ch, rounds));
    if ping_pong && on(ctx, "test.gnttab") {
        if ch.ping {
            granter_cases(&ch);
        } else {
            mapper_cases(ctx, &ch);
        }
    }
}

/// Runs a case; whether it passed.
fn case_ok(name: &'static str, f: impl FnOnce() -> Verdict) -> bool {
    let mut ok = false;
    case(name, || {
        let r = f();
        ok = r.is_ok();
        r
    });
    ok
}

/// Pong says it is ready, then `rounds` round trips from ping, each
/// waited for with WFI and the upcall: any lost event is a timeout.
fn ping_pong(ch: &Channel, rounds: u32) -> Verdict {
    let start;
    if ch.ping {
        ensure!(
            xen::wait_event(ch.port, ms(MEET_MS)),
            "the peer did not say it was ready within {MEET_MS} ms ({})",
            xen::describe(ch.port)
        );
        start = arch::ticks();
        for i in 0..rounds {
            let r = xen::send(ch.port);
            ensure!(r == 0, "send({}) returned {r} in round {i}", ch.port);
            ensure!(
                xen::wait_event(ch.port, ms(STEP_MS)),
                "round {i} of {rounds}: no answer within {STEP_MS} ms ({}; upcalls taken {})",
                xen::describe(ch.port),
                gic::count(0, gic::EVTCHN_PPI)
            );
        }
    } else {
        let r = xen::send(ch.port);
        ensure!(r == 0, "send({}) (ready) returned {r}", ch.port);
        start = arch::ticks();
        for i in 0..rounds {
            let wait = if i == 0 { MEET_MS } else { STEP_MS };
            ensure!(
                xen::wait_event(ch.port, ms(wait)),
                "round {i} of {rounds}: no event within {wait} ms ({}; upcalls taken {})",
                xen::describe(ch.port),
                gic::count(0, gic::EVTCHN_PPI)
            );
            let r = xen::send(ch.port);
            ensure!(r == 0, "send({}) returned {r} in round {i}", ch.port);
        }
    }
    let took = arch::ticks().wrapping_sub(start) * 1000 / arch::ticks_per_second();
    oxen_guest_common::println!(
        "evtchn.ping_pong: {rounds} round trips in {took} ms ({})",
        if xen::is_fifo() { "FIFO" } else { "2-level" }
    );
    Ok(Msg::new())
}

/// The next step of a two-domain protocol: send, then wait for the answer.
fn step(ch: &Channel) -> Result<(), Msg> {
    let r = xen::send(ch.port);
    ensure!(r == 0, "send({}) returned {r}", ch.port);
    if !xen::wait_event(ch.port, ms(STEP_MS)) {
        return Err(msg!("the peer did not answer within {STEP_MS} ms"));
    }
    Ok(())
}

// ---- grant tables: ping grants, pong maps ----

fn grant_entry(r: u32) -> (usize, Shared) {
    (8 * r as usize, Shared((GNTTAB_GFN << 12) as usize))
}

fn set_grant(r: u32, flags: u16, dom: u16, gfn: u64) {
    let (at, t) = grant_entry(r);
    t.w16(at + 2, dom);
    t.w32(at + 4, gfn as u32);
    // The flags last: the entry is valid only once the rest is in place.
    t.w16(at, flags);
}

fn grant_flags(r: u32) -> u16 {
    let (at, t) = grant_entry(r);
    t.r16(at)
}

/// The granter's side. Steps (one event each, alternating with the
/// mapper): 1 grants ready; 2 mapped and written; 3 answered; 4 unmapped,
/// copies done; 5 revoked; 6 done.
fn granter_cases(ch: &Channel) {
    let page = Shared::of(&GRANTED);
    let ok = case_ok("gnttab.grant_to_peer", || {
        let r = xen::add_to_physmap(xen::XENMAPSPACE_GRANT_TABLE, 0, GNTTAB_GFN);
        ensure!(
            r == 0,
            "add_to_physmap(grant_table, 0, {GNTTAB_GFN:#x}) returned {r}"
        );
        let mut q = Arg::<16>::new();
        q.set16(0, DOMID_SELF);
        let r = xen::gnttab_op(gnttabop::QUERY_SIZE, &mut q, 1);
        ensure!(
            r == 0 && q.get16(12) == 0 && q.get32(4) >= 1 && q.get32(8) == 64,
            "query_size returned {r}, status {}, nr_frames {}, max {} (expected 0, 0, ≥ 1, 64)",
            q.get16(12) as i16,
            q.get32(4),
            q.get32(8)
        );
        page.fill(0);
        page.w64(0, FROM_GRANTER);
        Shared::of(&GRANTED_RO).w64(0, FROM_GRANTER);
        set_grant(REF_RW, gnt::GTF_PERMIT_ACCESS, ch.remote_dom, GRANTED.gfn());
        set_grant(
            REF_RO,
            gnt::GTF_PERMIT_ACCESS | gnt::GTF_READONLY,
            ch.remote_dom,
            GRANTED_RO.gfn(),
        );
        step(ch)?;
        Ok(Msg::new())
    });
    if !ok {
        return;
    }
    case("gnttab.peer_writes_seen", || {
        let v = page.r64(8);
        let flags = grant_flags(REF_RW);
        let r = (|| {
            ensure!(
                v == FROM_MAPPER,
                "the granted page's word 1 is {v:#x} after the peer mapped it, expected {FROM_MAPPER:#x}"
            );
            ensure!(
                flags & (gnt::GTF_READING | gnt::GTF_WRITING)
                    == gnt::GTF_READING | gnt::GTF_WRITING,
                "entry {REF_RW} flags are {flags:#x} while mapped writable, expected GTF_reading and GTF_writing set"
            );
            Ok(Msg::new())
        })();
        page.w64(16, REPLY);
        step(ch)?;
        r
    });
    case("gnttab.unmapped_and_copied", || {
        let flags = grant_flags(REF_RW);
        let copied = page.r64(24);
        let r = (|| {
            ensure!(
                flags & (gnt::GTF_READING | gnt::GTF_WRITING) == 0,
                "entry {REF_RW} flags are {flags:#x} after the peer unmapped, expected GTF_reading/writing clear"
            );
            ensure!(
                copied == COPIED,
                "word 3 of the granted page is {copied:#x} after the peer's grant copy, expected {COPIED:#x}"
            );
            Ok(Msg::new())
        })();
        // Revoke: the entry is not in use any more.
        set_grant(REF_RW, 0, 0, 0);
        step(ch)?;
        r
    });
}

/// The mapper's side of [`granter_cases`].
fn mapper_cases(ctx: &Ctx, ch: &Channel) {
    let dom = ch.remote_dom;
    let Some(at) = extended_region(ctx) else {
        case("gnttab.map_peer_grant", || {
            Err(msg!(
                "/hypervisor lists no extended region to map a grant at"
            ))
        });
        return;
    };
    let mut handle = 0;
    let ok = case_ok("gnttab.map_peer_grant", || {
        // Step 1 came with the last ping-pong round? No: the granter sends
        // it after setting up, so wait for it here.
        ensure!(
            xen::wait_event(ch.port, ms(STEP_MS)),
            "the granter did not say its grants are ready within {STEP_MS} ms"
        );
        let (st, h, _) = map(at, gnt::GNTMAP_HOST_MAP, REF_RW, dom, 1);
        ensure!(
            st == gnt::OKAY,
            "map_grant_ref({REF_RW} of domain {dom}) status {st}, expected 0"
        );
        handle = h;
        let v = trap::probe_load(at as usize);
        ensure!(v.is_ok(), "a load from the mapped grant at {at:#x} faulted");
        let first = Shared(at as usize).r64(0);
        ensure!(
            first == FROM_GRANTER,
            "the mapped page reads {first:#x}, expected the granter's {FROM_GRANTER:#x}"
        );
        Shared(at as usize).w64(8, FROM_MAPPER);
        step(ch)?;
        Ok(Msg::new())
    });
    if !ok {
        return;
    }
    case("gnttab.granter_writes_seen", || {
        let v = Shared(at as usize).r64(16);
        ensure!(
            v == REPLY,
            "the mapped page's word 2 is {v:#x}, expected the granter's reply {REPLY:#x}"
        );
        Ok(Msg::new())
    });
    case("gnttab.unmap", || {
        let st = unmap(at, handle);
        ensure!(st == gnt::OKAY, "unmap_grant_ref status {st}, expected 0");
        ensure!(
            trap::probe_load(at as usize).is_err(),
            "a load from {at:#x} after the unmap did not fault"
        );
        Ok(Msg::new())
    });
    case("gnttab.unmap_twice_bad_handle", || {
        let st = unmap(at, handle);
        ensure!(
            st == gnt::BAD_HANDLE,
            "a second unmap_grant_ref status {st}, expected -4 (bad_handle)"
        );
        Ok(Msg::new())
    });
    case("gnttab.map_bad_ref", || {
        map_status(
            "ref 100000",
            at,
            gnt::GNTMAP_HOST_MAP,
            100_000,
            dom,
            gnt::BAD_GNTREF,
        )
    });
    case("gnttab.map_wrong_domid", || {
        map_status(
            "domain 999",
            at,
            gnt::GNTMAP_HOST_MAP,
            REF_RW,
            999,
            gnt::BAD_DOMAIN,
        )
    });
    case("gnttab.map_ungranted_ref", || {
        map_status(
            "an empty entry",
            at,
            gnt::GNTMAP_HOST_MAP,
            REF_NEVER,
            dom,
            gnt::GENERAL_ERROR,
        )
    });
    case("gnttab.map_readonly_grant_writable", || {
        map_status(
            "a read-only grant writable",
            at,
            gnt::GNTMAP_HOST_MAP,
            REF_RO,
            dom,
            gnt::GENERAL_ERROR,
        )
    });
    case("gnttab.map_flags_zero", || {
        map_status("flags 0", at, 0, REF_RW, dom, gnt::BAD_GNTREF)
    });
    case("gnttab.map_device_map", || {
        map_status(
            "GNTMAP_device_map",
            at,
            gnt::GNTMAP_HOST_MAP | gnt::GNTMAP_DEVICE_MAP,
            REF_RW,
            dom,
            gnt::GENERAL_ERROR,
        )
    });
    case("gnttab.map_readonly", || {
        let (st, h, _) = map(
            at,
            gnt::GNTMAP_HOST_MAP | gnt::GNTMAP_READONLY,
            REF_RO,
            dom,
            1,
        );
        ensure!(
            st == gnt::OKAY,
            "map_grant_ref(read-only {REF_RO}) status {st}, expected 0"
        );
        let read = Shared(at as usize).r64(0);
        // No store is tried: on Xen 4.20 a store to a read-only grant
        // mapping never completes (the vCPU stops making progress).
        let un = unmap(at, h);
        ensure!(
            read == FROM_GRANTER,
            "the read-only mapping reads {read:#x}, expected {FROM_GRANTER:#x}"
        );
        ensure!(
            un == gnt::OKAY,
            "unmapping the read-only mapping: status {un}"
        );
        Ok(Msg::new())
    });
    case("gnttab.copy_from_peer", || {
        let local = Shared::of(&COPY_PAGE);
        local.fill(0);
        let st = copy(
            (u64::from(REF_RW), dom, 0),
            (COPY_PAGE.gfn(), DOMID_SELF, 0),
            64,
            gnt::GNTCOPY_SOURCE_GREF,
        )?;
        ensure!(
            st == gnt::OKAY,
            "copy from grant {REF_RW}: status {st}, expected 0"
        );
        let (a, b) = (local.r64(0), local.r64(8));
        ensure!(
            a == FROM_GRANTER && b == FROM_MAPPER,
            "the copy brought {a:#x} {b:#x}, expected {FROM_GRANTER:#x} {FROM_MAPPER:#x}"
        );
        Ok(Msg::new())
    });
    case("gnttab.copy_to_peer", || {
        let local = Shared::of(&COPY_PAGE);
        local.w64(0, COPIED);
        let st = copy(
            (COPY_PAGE.gfn(), DOMID_SELF, 0),
            (u64::from(REF_RW), dom, 24),
            8,
            gnt::GNTCOPY_DEST_GREF,
        )?;
        ensure!(
            st == gnt::OKAY,
            "copy to grant {REF_RW}: status {st}, expected 0"
        );
        Ok(Msg::new())
    });
    case("gnttab.copy_across_page_bound", || {
        let st = copy(
            (u64::from(REF_RW), dom, 4000),
            (COPY_PAGE.gfn(), DOMID_SELF, 0),
            200,
            gnt::GNTCOPY_SOURCE_GREF,
        )?;
        ensure!(
            st == gnt::BAD_COPY_ARG,
            "a copy of 200 bytes from offset 4000: status {st}, expected -10 (bad_copy_arg)"
        );
        Ok(Msg::new())
    });
    case("gnttab.map_revoked", || {
        step(ch)?;
        map_status(
            "a revoked grant",
            at,
            gnt::GNTMAP_HOST_MAP,
            REF_RW,
            dom,
            gnt::GENERAL_ERROR,
        )
    });
    // The granter waits for one more event after revoking.
    let _ = xen::send(ch.port);
}

/// The first extended region `/hypervisor` lists (reg[1]).
fn extended_region(ctx: &Ctx) -> Option<u64> {
    let n = ctx.dt.top("hypervisor").ok()??;
    let reg = n.cells("reg")?;
    (reg.len() >= 8).then(|| reg.num(4, 2))
}

/// `map_grant_ref` (count `count`): status, handle, dev_bus_addr.
fn map(at: u64, flags: u32, gref: u32, dom: u16, count: u64) -> (i16, u32, u64) {
    let mut a = Arg::<32>::new();
    a.set64(0, at)
        .set32(8, flags)
        .set32(12, gref)
        .set16(16, dom)
        .set16(18, 0x7777);
    let r = xen::gnttab_op(gnttabop::MAP_GRANT_REF, &mut a, count);
    if r != 0 {
        return (r as i16, 0, 0);
    }
    (a.get16(18) as i16, a.get32(20), a.get64(24))
}

fn map_status(what: &str, at: u64, flags: u32, gref: u32, dom: u16, want: i16) -> Verdict {
    let (st, h, _) = map(at, flags, gref, dom, 1);
    if st == gnt::OKAY {
        unmap(at, h);
    }
    ensure!(
        st == want,
        "map_grant_ref of {what}: status {st}, expected {want}"
    );
    Ok(Msg::new())
}

fn unmap(at: u64, handle: u32) -> i16 {
    let mut a = Arg::<24>::new();
    a.set64(0, at).set32(16, handle).set16(20, 0x7777);
    let r = xen::gnttab_op(gnttabop::UNMAP_GRANT_REF, &mut a, 1);
    if r != 0 {
        return r as i16;
    }
    a.get16(20) as i16
}

/// `GNTTABOP_copy` of one element; each side is (ref or gmfn, domid,
/// offset).
fn copy(src: (u64, u16, u16), dst: (u64, u16, u16), len: u16, flags: u16) -> Result<i16, Msg> {
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
    let r = xen::gnttab_op(gnttabop::COPY, &mut a, 1);
    ensure!(r == 0, "GNTTABOP_copy returned {r}, expected 0");
    Ok(a.get16(36) as i16)
}

// ---- hostile arguments ----

fn hostile_cases(ctx: &Ctx) {
    case("hostile.bad_pointer_efault", || {
        let calls: [(&str, u64, u64); 4] = [
            ("xen_version(get_features)", nr::XEN_VERSION, 6),
            (
                "memory_op(add_to_physmap)",
                nr::MEMORY_OP,
                xen::XENMEM_ADD_TO_PHYSMAP,
            ),
            (
                "event_channel_op(status)",
                nr::EVENT_CHANNEL_OP,
                evtchnop::STATUS,
            ),
            ("hvm_op(get_param)", nr::HVM_OP, 1),
        ];
        for (what, n, cmd) in calls {
            let r = arch::hypercall(n, [cmd, UNMAPPED, 0, 0, 0]);
            ensure!(
                r == err::EFAULT,
                "{what} with its argument at {UNMAPPED:#x} (unmapped) returned {r}, expected -14 (EFAULT)"
            );
        }
        let r = arch::hypercall(
            nr::GRANT_TABLE_OP,
            [gnttabop::QUERY_SIZE, UNMAPPED, 1, 0, 0],
        );
        returns(
            "grant_table_op(query_size) at an unmapped address",
            r,
            err::EFAULT,
        )
    });
    case("hostile.huge_count_query_size", || {
        let mut a = Arg::<16>::new();
        a.set16(0, DOMID_SELF);
        let r = xen::gnttab_op(gnttabop::QUERY_SIZE, &mut a, 0x7fff_ffff);
        returns("query_size with count 0x7fffffff", r, err::EINVAL)
    });
    case("hostile.huge_count_map", || huge_count_map(ctx));
    case("hostile.misaligned_argument_served", || {
        // Structures are copied, not referenced: any alignment works.
        let mut a = Arg::<32>::new();
        let at = a.addr() + 1;
        a.set16(1, DOMID_SELF).set32(5, 0);
        let r = arch::hypercall(nr::EVENT_CHANNEL_OP, [evtchnop::STATUS, at, 0, 0, 0]);
        ensure!(
            r == 0,
            "EVTCHNOP_status with its argument at an odd address returned {r}"
        );
        let st = a.get32(9);
        ensure!(
            st == xen::EVTCHNSTAT_CLOSED,
            "status of port 0 read at an odd address is {st}"
        );
        Ok(Msg::new())
    });
    case("hostile.negative_count_einval", || {
        let mut a = Arg::<32>::new();
        let r = xen::gnttab_op(gnttabop::MAP_GRANT_REF, &mut a, 0xffff_ffff);
        returns("map_grant_ref with count -1", r, err::EINVAL)
    });
}

/// `map_grant_ref` with count 0x7fffffff and one element, placed in the
/// last 32 bytes of RAM: the second element is unmapped, so the call must
/// end with `-EFAULT` instead of running on.
fn huge_count_map(ctx: &Ctx) -> Verdict {
    let mem = ctx
        .dt
        .find(|n| n.depth == 1 && n.str("device_type") == Some("memory"))?
        .and_then(|n| n.cells("reg"))
        .filter(|r| r.len() >= 4)
        .ok_or_else(|| msg!("no memory node"))?;
    let end = (mem.num(0, 2) + mem.num(2, 2)) as usize;
    let dtb = DTB.load(Ordering::Acquire);
    ensure!(
        dtb + (64 << 10) <= end - 4096,
        "the device tree at {dtb:#x} is in the last page of RAM (end {end:#x})"
    );
    let last = Shared(end - 32);
    for off in (0..32).step_by(8) {
        last.w64(off, 0);
    }
    // Element 0: flags 0, which is bad_gntref.
    let r = arch::hypercall(
        nr::GRANT_TABLE_OP,
        [
            gnttabop::MAP_GRANT_REF,
            (end - 32) as u64,
            0x7fff_ffff,
            0,
            0,
        ],
    );
    let st = last.r16(18) as i16;
    ensure!(
        r == err::EFAULT,
        "map_grant_ref with count 0x7fffffff ending at the end of RAM returned {r}, expected -14 (EFAULT)"
    );
    // Xen handles the elements one by one: the first is done (and its
    // status written) before the second cannot be read.
    ensure!(
        st == gnt::BAD_GNTREF,
        "element 0 (flags 0) has status {st}, expected -3 (bad_gntref) written before the call failed on element 1"
    );
    Ok(Msg::new())
}
