//! The Xen interfaces the hypercall, event-channel and grant-table cases
//! use: argument layouts (AArch64, little endian, spec §3.5), the pages the
//! guest shares with the hypervisor, and event reception in both the
//! 2-level and the FIFO ABI. Xen's numbers, `Page` and `Shared` are the
//! common crate's, re-exported here.
//!
//! The MMU is off, so a buffer's address is its guest-physical address
//! and a page's frame number is its address >> 12. Shared pages are read
//! and written with single volatile accesses: the hypervisor (or the peer
//! domain) changes them behind the compiler's back.

pub use oxen_guest_common::xen::*;

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use oxen_guest_common::msg;
use oxen_guest_common::msg::Msg;

use crate::arch;

/// A hypercall argument structure, built and read field by field.
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

    /// The structure's guest address, for a hypercall argument.
    pub fn addr(&mut self) -> u64 {
        self.0.as_mut_ptr() as usize as u64
    }
}

/// Hypercall `nr` with `a0` and a pointer to `arg`.
pub fn call<const N: usize>(nr: u64, a0: u64, arg: &mut Arg<N>) -> i64 {
    arch::hypercall(nr, [a0, arg.addr(), 0, 0, 0])
}

/// `event_channel_op(cmd, arg)`.
pub fn evtchn_op<const N: usize>(cmd: u64, arg: &mut Arg<N>) -> i64 {
    call(nr::EVENT_CHANNEL_OP, cmd, arg)
}

/// `grant_table_op(cmd, arg, count)`.
pub fn gnttab_op<const N: usize>(cmd: u64, arg: &mut Arg<N>, count: u64) -> i64 {
    arch::hypercall(nr::GRANT_TABLE_OP, [cmd, arg.addr(), count, 0, 0])
}

/// Where `shared_info` is mapped (a page of the guest's RAM, as Linux does).
pub static SHARED_INFO: Page = Page::new();
/// Where vCPU0 moves its `vcpu_info` (at [`VCPU_INFO_OFFSET`]).
pub static VCPU_INFO_PAGE: Page = Page::new();
pub const VCPU_INFO_OFFSET: usize = 64;
/// vCPU0's FIFO control block and the first page of the event array.
pub static FIFO_CONTROL: Page = Page::new();
pub static FIFO_ARRAY: Page = Page::new();

/// Address of vCPU0's `vcpu_info`; 0 until `shared_info` is mapped.
static VCPU_INFO: AtomicUsize = AtomicUsize::new(0);
/// Whether events arrive through the FIFO ABI (after `init_control`).
static FIFO: AtomicU32 = AtomicU32::new(0);

/// `shared_info` is mapped: vCPU0's `vcpu_info` is its first 48 bytes.
pub fn shared_info_mapped() {
    VCPU_INFO.store(SHARED_INFO.addr(), Ordering::Release);
}

/// vCPU0's `vcpu_info` moved to `addr` (`register_vcpu_info`).
pub fn vcpu_info_moved(addr: usize) {
    VCPU_INFO.store(addr, Ordering::Release);
}

/// vCPU0's `vcpu_info`, once `shared_info` is mapped.
pub fn vcpu_info() -> Option<Shared> {
    match VCPU_INFO.load(Ordering::Acquire) {
        0 => None,
        a => Some(Shared(a)),
    }
}

/// The upcall handler (PPI 31): clears `evtchn_upcall_pending` and the
/// selector, as a guest does before scanning. Waiters look at the ports
/// themselves, so nothing else is needed here; the GIC code counts it.
pub fn upcall() {
    if let Some(vi) = vcpu_info() {
        vi.w8(VI_UPCALL_PENDING, 0);
        vi.w64(VI_PENDING_SEL, 0);
    }
}

/// Events now arrive through the FIFO ABI.
pub fn use_fifo() {
    FIFO_NEXT.store(0, Ordering::Release);
    FIFO.store(1, Ordering::Release);
}

pub fn is_fifo() -> bool {
    FIFO.load(Ordering::Acquire) != 0
}

/// Whether `port` has an event pending (2-level: `shared_info`; FIFO: its
/// event word, ports below 1024 only).
pub fn pending(port: u32) -> bool {
    let p = port as usize;
    if is_fifo() {
        fifo_word(port) & FIFO_PENDING != 0
    } else {
        Shared::of(&SHARED_INFO).r64(SI_PENDING + p / 64 * 8) & 1 << (p % 64) != 0
    }
}

/// Ports the one event-array page covers.
const FIFO_PORTS: u32 = 1024;

/// `port`'s FIFO event word (0 beyond the array's one page).
fn fifo_word(port: u32) -> u32 {
    if port < FIFO_PORTS {
        Shared::of(&FIFO_ARRAY).r32(4 * port as usize)
    } else {
        0
    }
}

/// The control block's queue head for the default priority.
const FIFO_DEFAULT_HEAD: usize = FIFO_HEAD + 4 * FIFO_DEFAULT_PRIORITY;

/// Consumes `port`'s event if one is pending; whether there was one.
///
/// Plain read-modify-writes are enough: the cases keep at most one event
/// in flight per port, so the hypervisor does not touch these words while
/// the guest does (and exclusives are not reliable with the MMU off).
pub fn consume(port: u32) -> bool {
    if is_fifo() {
        return fifo_consume(port);
    }
    if !pending(port) {
        return false;
    }
    let p = port as usize;
    let si = Shared::of(&SHARED_INFO);
    let at = SI_PENDING + p / 64 * 8;
    si.w64(at, si.r64(at) & !(1 << (p % 64)));
    true
}

/// The next event to take off the default-priority queue, 0 when the
/// guest has reached its end (the next head then comes from the control
/// block). Like Linux, the guest keeps its place in the queue itself and
/// never writes the control block's `head`.
static FIFO_NEXT: AtomicU32 = AtomicU32::new(0);

/// The FIFO side of [`consume`]: walks the default-priority queue as a
/// guest must, from the head the hypervisor published, unlinking each
/// event, until it meets `port` pending.
///
/// A PENDING bit alone is not enough to take an event: the hypervisor sets
/// it first, then links the event and writes the queue head, and sets the
/// `ready` bit last. An event taken between those steps leaves `ready`
/// set with nothing behind it, and the next event's upcall is never sent
/// (`ready` does not change), so only queued events are consumed. Ports
/// other than `port` met on the way are unlinked and stay PENDING.
fn fifo_consume(port: u32) -> bool {
    let words = Shared::of(&FIFO_ARRAY);
    let ctl = Shared::of(&FIFO_CONTROL);
    let bit = 1u32 << FIFO_DEFAULT_PRIORITY;
    loop {
        let mut head = FIFO_NEXT.load(Ordering::Acquire);
        if head == 0 {
            if ctl.r32(0) & bit == 0 {
                return false;
            }
            head = ctl.r32(FIFO_DEFAULT_HEAD);
            if head == 0 || head >= FIFO_PORTS {
                return false;
            }
        }
        let at = 4 * head as usize;
        let word = words.r32(at);
        let next = word & FIFO_LINK_MASK;
        if next == 0 {
            // The end of the queue: `ready` goes before LINKED, so that an
            // event queued after this one is seen as a new head and sets
            // `ready` again (raising the upcall).
            ctl.w32(0, ctl.r32(0) & !bit);
        }
        let mine = head == port && word & FIFO_PENDING != 0;
        let keep = if mine { 0 } else { word & FIFO_PENDING };
        words.w32(
            at,
            (word & !(FIFO_PENDING | FIFO_LINKED | FIFO_LINK_MASK)) | keep,
        );
        FIFO_NEXT.store(next, Ordering::Release);
        if mine {
            return true;
        }
    }
}

/// Waits (in WFI, IRQs let in) until `port` is pending and consumes it;
/// false after `timeout` ticks. The upcall ends each WFI; the virtual
/// timer, armed for what is left of `timeout`, ends the last one, so a
/// lost upcall is a reported timeout, not a hung guest.
pub fn wait_event(port: u32, timeout: u64) -> bool {
    let start = arch::ticks();
    let got = loop {
        arch::irq_disable();
        if consume(port) {
            break true;
        }
        let waited = arch::ticks().wrapping_sub(start);
        if waited > timeout {
            break false;
        }
        arch::vtimer::arm(timeout - waited + 1);
        arch::wfi();
        arch::irq_enable();
    };
    arch::vtimer::stop();
    got
}

/// What the guest sees of `port` and its upcall, for a failure message:
/// the event word (FIFO) or pending bit (2-level), the FIFO `ready` bits
/// and queue head, and `vcpu_info`'s `evtchn_upcall_pending`.
pub fn describe(port: u32) -> Msg {
    let up = vcpu_info().map_or(0xff, |vi| vi.r8(VI_UPCALL_PENDING));
    if is_fifo() {
        let ctl = Shared::of(&FIFO_CONTROL);
        msg!(
            "event word {:#x}, ready {:#x}, head {}, upcall_pending {up}",
            fifo_word(port),
            ctl.r32(0),
            ctl.r32(FIFO_DEFAULT_HEAD)
        )
    } else {
        msg!("pending {}, upcall_pending {up}", pending(port))
    }
}

/// `EVTCHNOP_send`.
pub fn send(port: u32) -> i64 {
    let mut a = Arg::<4>::new();
    a.set32(0, port);
    evtchn_op(evtchnop::SEND, &mut a)
}

/// `EVTCHNOP_close`.
pub fn close(port: u32) -> i64 {
    let mut a = Arg::<4>::new();
    a.set32(0, port);
    evtchn_op(evtchnop::CLOSE, &mut a)
}

/// `EVTCHNOP_alloc_unbound{DOMID_SELF, remote}`: the new port.
pub fn alloc_unbound(remote: u16) -> Result<u32, i64> {
    let mut a = Arg::<8>::new();
    a.set16(0, DOMID_SELF).set16(2, remote);
    match evtchn_op(evtchnop::ALLOC_UNBOUND, &mut a) {
        0 => Ok(a.get32(4)),
        e => Err(e),
    }
}

/// `EVTCHNOP_bind_interdomain{remote_dom, remote_port}`: the local port.
pub fn bind_interdomain(dom: u16, port: u32) -> Result<u32, i64> {
    let mut a = Arg::<12>::new();
    a.set16(0, dom).set32(4, port);
    match evtchn_op(evtchnop::BIND_INTERDOMAIN, &mut a) {
        0 => Ok(a.get32(8)),
        e => Err(e),
    }
}

/// `EVTCHNOP_bind_ipi{vcpu}`: the port.
pub fn bind_ipi(vcpu: u32) -> Result<u32, i64> {
    let mut a = Arg::<8>::new();
    a.set32(0, vcpu);
    match evtchn_op(evtchnop::BIND_IPI, &mut a) {
        0 => Ok(a.get32(4)),
        e => Err(e),
    }
}

/// `EVTCHNOP_bind_virq{virq, vcpu}`: the port.
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<u32, i64> {
    let mut a = Arg::<12>::new();
    a.set32(0, virq).set32(4, vcpu);
    match evtchn_op(evtchnop::BIND_VIRQ, &mut a) {
        0 => Ok(a.get32(8)),
        e => Err(e),
    }
}

/// What `EVTCHNOP_status` says about a port of this domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub status: u32,
    pub vcpu: u32,
    /// `unbound.dom` / `interdomain.dom`.
    pub dom: u16,
    /// `interdomain.port`.
    pub port: u32,
}

/// `EVTCHNOP_status{DOMID_SELF, port}`.
pub fn status(port: u32) -> Result<Status, i64> {
    let mut a = Arg::<24>::new();
    a.set16(0, DOMID_SELF).set32(4, port);
    match evtchn_op(evtchnop::STATUS, &mut a) {
        0 => Ok(Status {
            status: a.get32(8),
            vcpu: a.get32(12),
            dom: a.get16(16),
            port: a.get32(20),
        }),
        e => Err(e),
    }
}

/// `XENMEM_add_to_physmap{DOMID_SELF, space, idx, gpfn}`.
pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> i64 {
    let mut a = Arg::<24>::new();
    a.set16(0, DOMID_SELF)
        .set32(4, space)
        .set64(8, idx)
        .set64(16, gpfn);
    call(nr::MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, &mut a)
}

/// `EVTCHNOP_init_control{control_gfn, 0, vcpu 0}` then
/// `EVTCHNOP_expand_array{array_gfn}`: FIFO from now on. The link bits on
/// success, or which call failed and its result.
pub fn init_fifo() -> Result<u8, (&'static str, i64)> {
    let mut a = Arg::<24>::new();
    a.set64(0, FIFO_CONTROL.gfn()).set32(8, 0).set32(12, 0);
    let r = evtchn_op(evtchnop::INIT_CONTROL, &mut a);
    if r != 0 {
        return Err(("init_control", r));
    }
    let link_bits = a.0[16];
    use_fifo();
    let mut e = Arg::<8>::new();
    e.set64(0, FIFO_ARRAY.gfn());
    let r = evtchn_op(evtchnop::EXPAND_ARRAY, &mut e);
    if r != 0 {
        return Err(("expand_array", r));
    }
    Ok(link_bits)
}
