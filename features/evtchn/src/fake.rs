//! Test doubles: guest pages in host memory and a hypervisor that records
//! what it is asked to do, plus readers for the guest-visible state.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use oxen_core::xen::DomId;

use crate::abi::{fifo, shared};
use crate::{Env, EventChannels, Policy, Port, SharedPage};

/// A 4 KiB page; clones share the memory, as two mappings of one frame do.
/// A test can make compare-and-exchange fail, as it does when the guest
/// changes the word at the same moment.
#[derive(Clone)]
pub struct FakePage(Rc<RefCell<Vec<u8>>>, Rc<Cell<u32>>);

impl FakePage {
    pub fn new() -> Self {
        Self(
            Rc::new(RefCell::new(alloc::vec![0; 4096])),
            Rc::new(Cell::new(0)),
        )
    }

    /// The next `n` compare-and-exchanges on this page fail.
    pub fn fail_next_cas(&self, n: u32) {
        self.1.set(n);
    }

    fn get<const N: usize>(&self, off: usize) -> [u8; N] {
        assert!(
            off.is_multiple_of(N),
            "misaligned {N}-byte access at {off:#x}"
        );
        let mut b = [0; N];
        b.copy_from_slice(&self.0.borrow()[off..off + N]);
        b
    }

    fn set<const N: usize>(&self, off: usize, b: [u8; N]) {
        assert!(
            off.is_multiple_of(N),
            "misaligned {N}-byte access at {off:#x}"
        );
        self.0.borrow_mut()[off..off + N].copy_from_slice(&b);
    }

    pub fn byte(&self, off: usize) -> u8 {
        self.0.borrow()[off]
    }

    pub fn set_byte(&self, off: usize, v: u8) {
        self.0.borrow_mut()[off] = v;
    }
}

impl SharedPage for FakePage {
    fn load_u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.get(off))
    }
    fn store_u64(&self, off: usize, value: u64) {
        self.set(off, value.to_le_bytes());
    }
    fn fetch_or_u64(&self, off: usize, bits: u64) -> u64 {
        let old = self.load_u64(off);
        self.store_u64(off, old | bits);
        old
    }
    fn fetch_and_u64(&self, off: usize, bits: u64) -> u64 {
        let old = self.load_u64(off);
        self.store_u64(off, old & bits);
        old
    }
    fn load_u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.get(off))
    }
    fn store_u32(&self, off: usize, value: u32) {
        self.set(off, value.to_le_bytes());
    }
    fn fetch_or_u32(&self, off: usize, bits: u32) -> u32 {
        let old = self.load_u32(off);
        self.store_u32(off, old | bits);
        old
    }
    fn fetch_and_u32(&self, off: usize, bits: u32) -> u32 {
        let old = self.load_u32(off);
        self.store_u32(off, old & bits);
        old
    }
    fn compare_exchange_u32(&self, off: usize, old: u32, new: u32) -> Result<u32, u32> {
        let cur = self.load_u32(off);
        if self.1.get() > 0 {
            self.1.set(self.1.get() - 1);
            return Err(cur);
        }
        if cur == old {
            self.store_u32(off, new);
            Ok(cur)
        } else {
            Err(cur)
        }
    }
}

/// The hypervisor around the event channels: guest RAM pages by (domain,
/// frame), and logs of upcalls, hypervisor notifications and pending ports.
#[derive(Default)]
pub struct FakeEnv {
    ram: RefCell<BTreeMap<(DomId, u64), FakePage>>,
    pub upcalls: RefCell<Vec<(DomId, usize)>>,
    pub kicks: RefCell<Vec<(u32, DomId, Port)>>,
    pub pending: RefCell<Vec<(DomId, Port)>>,
}

impl FakeEnv {
    /// Guest RAM frame `gfn` of `dom` (created zeroed on first use).
    pub fn ram(&self, dom: DomId, gfn: u64) -> FakePage {
        self.ram
            .borrow_mut()
            .entry((dom, gfn))
            .or_insert_with(FakePage::new)
            .clone()
    }

    pub fn take_upcalls(&self) -> Vec<(DomId, usize)> {
        core::mem::take(&mut *self.upcalls.borrow_mut())
    }
}

impl Env for FakeEnv {
    type Page = FakePage;

    fn guest_page(&self, dom: DomId, gfn: u64) -> Option<FakePage> {
        self.ram.borrow().get(&(dom, gfn)).cloned()
    }

    fn upcall(&self, dom: DomId, vcpu: usize) {
        self.upcalls.borrow_mut().push((dom, vcpu));
    }

    fn notify_hypervisor(&self, callback: u32, dom: DomId, port: Port) {
        self.kicks.borrow_mut().push((callback, dom, port));
    }

    fn port_pending(&self, dom: DomId, port: Port) {
        self.pending.borrow_mut().push((dom, port));
    }
}

/// A system under test: event channels, the fake hypervisor, and each
/// domain's `shared_info` page as the guest would map it.
pub struct Sys {
    pub ev: EventChannels<FakePage>,
    pub env: FakeEnv,
    pub shared: BTreeMap<DomId, FakePage>,
}

impl Sys {
    /// Domains `(id, vcpus)` with Xen's dom0less port limit of 1023.
    pub fn new(policy: Policy, fifo: bool, doms: &[(DomId, usize)]) -> Self {
        let mut s = Self {
            ev: EventChannels::new(policy, fifo),
            env: FakeEnv::default(),
            shared: BTreeMap::new(),
        };
        for &(d, v) in doms {
            let page = FakePage::new();
            s.ev.domain_created(d, v, 1023, page.clone()).unwrap();
            s.shared.insert(d, page);
        }
        s
    }

    /// Two domains, 1 and 2, with two vCPUs each, allowed to connect.
    pub fn two() -> Self {
        Self::new(Policy::Open, false, &[(1, 2), (2, 2)])
    }

    pub fn si(&self, dom: DomId) -> &FakePage {
        &self.shared[&dom]
    }

    pub fn l2_pending(&self, dom: DomId, port: Port) -> bool {
        let w = self
            .si(dom)
            .load_u64(shared::EVTCHN_PENDING + (port / 64) as usize * 8);
        w & (1 << (port % 64)) != 0
    }

    pub fn set_l2_mask(&self, dom: DomId, port: Port, masked: bool) {
        let off = shared::EVTCHN_MASK + (port / 64) as usize * 8;
        let bit = 1u64 << (port % 64);
        if masked {
            self.si(dom).fetch_or_u64(off, bit);
        } else {
            self.si(dom).fetch_and_u64(off, !bit);
        }
    }

    /// vCPU 0's `evtchn_pending_sel` while it lives in `shared_info`.
    pub fn sel0(&self, dom: DomId) -> u64 {
        self.si(dom).load_u64(shared::PENDING_SEL)
    }

    /// vCPU 0's `evtchn_upcall_pending` while it lives in `shared_info`.
    pub fn upcall0(&self, dom: DomId) -> u8 {
        self.si(dom).byte(shared::UPCALL_PENDING)
    }
}

/// FIFO guest-side helpers: an event array page per 1024 ports, and a
/// control block at offset 0 of its own frame.
pub mod guest {
    use super::*;

    pub fn word(page: &FakePage, port: Port) -> u32 {
        page.load_u32((port % fifo::WORDS_PER_PAGE) as usize * 4)
    }

    pub fn set_word(page: &FakePage, port: Port, v: u32) {
        page.store_u32((port % fifo::WORDS_PER_PAGE) as usize * 4, v);
    }

    pub fn head(control: &FakePage, priority: usize) -> u32 {
        control.load_u32(fifo::HEAD + 4 * priority)
    }

    pub fn ready(control: &FakePage) -> u32 {
        control.load_u32(fifo::READY)
    }

    /// Drains queue `priority` as a guest does: from the head, following
    /// links and unlinking each event; returns the events that were pending
    /// and unmasked, clearing their PENDING bit as Linux's ack does.
    pub fn drain(array: &FakePage, control: &FakePage, priority: usize) -> Vec<Port> {
        let mut out = Vec::new();
        let mut port = head(control, priority);
        control.store_u32(fifo::HEAD + 4 * priority, 0);
        while port != 0 {
            let w = word(array, port);
            let next = w & fifo::LINK_MASK;
            set_word(
                array,
                port,
                w & !(fifo::LINKED | fifo::LINK_MASK | fifo::PENDING),
            );
            if w & fifo::PENDING != 0 && w & fifo::MASKED == 0 {
                out.push(port);
            }
            port = next;
        }
        control.fetch_and_u32(fifo::READY, !(1 << priority));
        out
    }
}
