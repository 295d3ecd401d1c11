//! The FIFO delivery ABI: a 32-bit event word per port in guest pages
//! (PENDING, MASKED, LINKED, BUSY and a 17-bit link), and per vCPU a control
//! block with one queue head per priority and a `ready` bitmap.
//!
//! The hypervisor appends to a queue's tail; the guest consumes from its
//! head, clearing LINKED as it goes. The tail is the hypervisor's own record:
//! if the tail's word is no longer LINKED the guest has drained the queue,
//! and the new event becomes the head.

use alloc::vec::Vec;

use crate::Port;
use crate::abi::fifo;
use crate::domain::Domain;
use crate::env::{Env, SharedPage};

/// The page and byte offset of `port`'s event word, if the array covers it.
fn word<P>(pages: &[P], port: Port) -> Option<(&P, usize)> {
    let page = pages.get((port / fifo::WORDS_PER_PAGE) as usize)?;
    Some((page, (port % fifo::WORDS_PER_PAGE) as usize * 4))
}

/// Points the LINKED word at `off` to `link`, unless the guest has unlinked
/// it: `Some(true)` linked, `Some(false)` not LINKED any more, `None` the
/// guest changed the word meanwhile.
fn try_set_link<P: SharedPage>(page: &P, off: usize, w: &mut u32, link: Port) -> Option<bool> {
    if *w & fifo::LINKED == 0 {
        return Some(false);
    }
    let new = (*w & !(fifo::BUSY | fifo::LINK_MASK)) | link;
    match page.compare_exchange_u32(off, *w, new) {
        Ok(_) => Some(true),
        Err(current) => {
            *w = current;
            None
        }
    }
}

/// Links `tail` to `port`; `false` when the tail was not LINKED (the queue
/// was empty). A guest may only set or clear MASKED, clear PENDING, or
/// unlink a LINKED word; setting BUSY stops it unmasking, so after that the
/// exchange can fail only a few times. Like Xen, give up after four tries
/// and treat the event as linked.
fn set_link<P: SharedPage>(pages: &[P], tail: Port, port: Port) -> bool {
    let Some((page, off)) = word(pages, tail) else {
        return false;
    };
    let mut w = page.load_u32(off);
    if let Some(linked) = try_set_link(page, off, &mut w, port) {
        return linked;
    }
    page.fetch_or_u32(off, fifo::BUSY);
    w = page.load_u32(off);
    for _ in 0..4 {
        if let Some(linked) = try_set_link(page, off, &mut w, port) {
            if !linked {
                page.fetch_and_u32(off, !fifo::BUSY);
            }
            return linked;
        }
    }
    page.fetch_and_u32(off, !fifo::BUSY);
    true
}

impl<P: SharedPage> Domain<P> {
    /// Switches the domain to the FIFO ABI (its first `init_control`): every
    /// bound port keeps its 2-level pending state, to be raised once the
    /// event array covers it, and gets the default priority.
    pub(crate) fn fifo_start(&mut self) {
        // Port 0 never carries events: a head of 0 means an empty queue.
        for port in 1..self.ports.len() as Port {
            let pending = self.l2_is_pending(port);
            let c = self.channel_mut(port);
            c.deferred = pending;
            c.priority = fifo::PRIORITY_DEFAULT;
        }
        self.fifo = Some(Vec::new());
    }

    /// Back to the 2-level ABI (`EVTCHNOP_reset`): the control blocks and
    /// event array are let go.
    pub(crate) fn fifo_stop(&mut self) {
        self.fifo = None;
        for v in &mut self.vcpus {
            v.control = None;
            v.tails = [0; fifo::QUEUES];
        }
        for c in &mut self.ports {
            c.deferred = false;
            c.last_queue = (0, 0);
        }
    }

    /// Adds one event-array page, covering the next 1024 ports, and raises
    /// the events that became pending while they had no word.
    pub(crate) fn fifo_add_page<E: Env>(&mut self, env: &E, page: P) {
        let Some(pages) = self.fifo.as_mut() else {
            return;
        };
        let first = pages.len() as Port * fifo::WORDS_PER_PAGE;
        pages.push(page);
        let end = (first + fifo::WORDS_PER_PAGE).min(self.ports.len() as Port);
        for port in first..end {
            let c = self.channel_mut(port);
            if c.deferred {
                c.deferred = false;
                let vcpu = c.notify_vcpu;
                self.fifo_set_pending(env, vcpu, port);
            }
        }
    }

    /// The vCPU's control block (page, offset), if it registered one.
    fn fifo_control(&self, vcpu: usize) -> Option<&(P, usize)> {
        self.vcpus.get(vcpu)?.control.as_ref()
    }

    /// The tail Oxen keeps for one of the vCPU's queues.
    fn fifo_tail(&mut self, vcpu: usize, priority: usize) -> Option<&mut Port> {
        self.vcpus.get_mut(vcpu)?.tails.get_mut(priority)
    }

    pub(crate) fn fifo_pages(&self) -> usize {
        self.fifo.as_ref().map_or(0, Vec::len)
    }

    /// Marks `port` pending and, unless it is masked or already queued,
    /// appends it to the queue of its priority on `vcpu`; an empty queue
    /// turning non-empty sets its `ready` bit, and the first ready bit raises
    /// the upcall.
    pub(crate) fn fifo_set_pending<E: Env>(&mut self, env: &E, vcpu: usize, port: Port) {
        let Some(pages) = self.fifo.as_ref() else {
            return;
        };
        let Some((page, off)) = word(pages, port) else {
            self.channel_mut(port).deferred = true;
            return;
        };
        let was_pending = page.fetch_or_u32(off, fifo::PENDING) & fifo::PENDING != 0;
        let priority = self.channel(port).priority as usize;
        // "Linked" until the queue turns out to have been empty: only then is
        // there a ready bit to set.
        let mut linked = true;
        // Without a control block the guest cannot have unmasked anything
        // yet, so there is nowhere to queue the event: it stays just pending.
        if self.fifo_control(vcpu).is_some()
            && page.load_u32(off) & fifo::MASKED == 0
            && page.fetch_or_u32(off, fifo::LINKED) & fifo::LINKED == 0
        {
            // The event was its old queue's tail and the guest has since
            // taken it off: that queue is empty, and must not be appended to
            // through this word again.
            let (old_vcpu, old_priority) = self.channel(port).last_queue;
            if let Some(old_tail) = self.fifo_tail(old_vcpu, usize::from(old_priority))
                && *old_tail == port
            {
                *old_tail = 0;
            }
            self.channel_mut(port).last_queue = (vcpu, priority as u8);

            let tail = self.fifo_tail(vcpu, priority).map_or(0, |t| *t);
            let pages = self.fifo.as_deref().unwrap_or(&[]);
            linked = tail != 0 && set_link(pages, tail, port);
            if !linked && let Some((control, cb)) = self.fifo_control(vcpu) {
                control.store_u32(cb + fifo::HEAD + 4 * priority, port);
            }
            if let Some(t) = self.fifo_tail(vcpu, priority) {
                *t = port;
            }
        }
        if !linked {
            let newly_ready = match self.fifo_control(vcpu) {
                Some((control, cb)) => {
                    let bit = 1u32 << priority;
                    control.fetch_or_u32(cb + fifo::READY, bit) & bit == 0
                }
                None => false,
            };
            if newly_ready {
                self.mark_events_pending(env, vcpu);
            }
        }
        if !was_pending {
            env.port_pending(self.id, port);
        }
    }

    /// Clears PENDING only: the guest unlinks (and skips) events that are no
    /// longer pending when it reaches them.
    pub(crate) fn fifo_clear_pending(&mut self, port: Port) {
        if let Some((page, off)) = self.fifo.as_deref().and_then(|p| word(p, port)) {
            page.fetch_and_u32(off, !fifo::PENDING);
        }
    }

    /// Clears MASKED and queues the event if it is pending.
    pub(crate) fn fifo_unmask<E: Env>(&mut self, env: &E, port: Port) {
        let Some((page, off)) = self.fifo.as_deref().and_then(|p| word(p, port)) else {
            return;
        };
        page.fetch_and_u32(off, !fifo::MASKED);
        if page.load_u32(off) & fifo::PENDING != 0 {
            let vcpu = self.channel(port).notify_vcpu;
            self.fifo_set_pending(env, vcpu, port);
        }
    }

    pub(crate) fn fifo_is_pending(&self, port: Port) -> bool {
        self.fifo
            .as_deref()
            .and_then(|p| word(p, port))
            .is_some_and(|(page, off)| page.load_u32(off) & fifo::PENDING != 0)
    }

    /// A port still on a queue cannot be reused until the guest unlinks it.
    pub(crate) fn fifo_is_busy(&self, port: Port) -> bool {
        self.fifo
            .as_deref()
            .and_then(|p| word(p, port))
            .is_some_and(|(page, off)| page.load_u32(off) & fifo::LINKED != 0)
    }
}

#[cfg(test)]
mod tests {
    use oxen_core::xen::DOMID_SELF;
    use oxen_core::xen::errno::{EINVAL, ENOENT, ENOSPC, ENOSYS, EOPNOTSUPP};

    use crate::abi::fifo;
    use crate::fake::guest::{drain, head, ready, set_word, word};
    use crate::fake::{FakePage, Sys};
    use crate::{Policy, Port, SharedPage};

    const CONTROL: u64 = 0x50000;
    const ARRAY: u64 = 0x50100;

    /// Domain 1 (two vCPUs) on FIFO with vCPU 0's control block and one
    /// event-array page; the guest has unmasked everything.
    fn fifo_domain() -> (Sys, FakePage, FakePage) {
        let mut s = Sys::new(Policy::Open, true, &[(1, 2), (2, 2)]);
        let control = s.env.ram(1, CONTROL);
        let array = s.env.ram(1, ARRAY);
        assert_eq!(s.ev.init_control(&s.env, 1, CONTROL, 0, 0), Ok(17));
        s.ev.expand_array(&s.env, 1, ARRAY).unwrap();
        (s, control, array)
    }

    #[test]
    fn init_control_returns_17_link_bits_and_switches_the_domain_to_fifo() {
        let (s, _, _) = fifo_domain();
        assert!(s.ev.uses_fifo(1));
        assert!(!s.ev.uses_fifo(2));
    }

    #[test]
    fn init_control_without_fifo_offered_returns_eopnotsupp() {
        let mut s = Sys::two();
        s.env.ram(1, CONTROL);
        assert_eq!(s.ev.init_control(&s.env, 1, CONTROL, 0, 0), Err(EOPNOTSUPP));
        assert!(!s.ev.uses_fifo(1));
    }

    #[test]
    fn init_control_checks_vcpu_offset_frame_and_repeats() {
        let mut s = Sys::new(Policy::Open, true, &[(1, 2)]);
        s.env.ram(1, CONTROL);
        assert_eq!(s.ev.init_control(&s.env, 1, CONTROL, 0, 2), Err(ENOENT));
        assert_eq!(s.ev.init_control(&s.env, 1, CONTROL, 4, 0), Err(EINVAL));
        assert_eq!(s.ev.init_control(&s.env, 1, CONTROL, 4032, 0), Err(EINVAL));
        assert_eq!(s.ev.init_control(&s.env, 1, 0x9999, 0, 0), Err(EINVAL));
        assert!(!s.ev.uses_fifo(1), "a failed init_control leaves 2-level");
        assert_eq!(s.ev.init_control(&s.env, 1, CONTROL, 4024, 0), Ok(17));
        assert_eq!(s.ev.init_control(&s.env, 1, CONTROL, 0, 0), Err(EINVAL));
        assert_eq!(s.ev.init_control(&s.env, 1, CONTROL, 0, 1), Ok(17));
    }

    #[test]
    fn expand_array_needs_fifo_writable_ram_and_stops_at_128_pages() {
        let mut s = Sys::new(Policy::Open, true, &[(1, 1)]);
        s.env.ram(1, CONTROL);
        s.env.ram(1, ARRAY);
        assert_eq!(s.ev.expand_array(&s.env, 1, ARRAY), Err(EOPNOTSUPP));
        s.ev.init_control(&s.env, 1, CONTROL, 0, 0).unwrap();
        assert_eq!(s.ev.expand_array(&s.env, 1, 0x9999), Err(EINVAL));
        for _ in 0..128 {
            assert_eq!(s.ev.expand_array(&s.env, 1, ARRAY), Ok(()));
        }
        assert_eq!(s.ev.expand_array(&s.env, 1, ARRAY), Err(ENOSPC));
    }

    #[test]
    fn a_domain_at_its_event_array_bound_leaves_another_expanding() {
        let mut s = Sys::new(Policy::Open, true, &[(1, 1), (2, 1)]);
        for d in [1, 2] {
            s.env.ram(d, CONTROL);
            s.env.ram(d, ARRAY);
            s.ev.init_control(&s.env, d, CONTROL, 0, 0).unwrap();
        }
        for _ in 0..128 {
            s.ev.expand_array(&s.env, 1, ARRAY).unwrap();
        }
        assert_eq!(s.ev.expand_array(&s.env, 1, ARRAY), Err(ENOSPC));
        assert_eq!(s.ev.expand_array(&s.env, 2, ARRAY), Ok(()));
        let p = s.ev.bind_ipi(2, 0).unwrap();
        assert_eq!(s.ev.send(&s.env, 2, p), Ok(()));
    }

    #[test]
    fn set_priority_is_fifo_only_and_bounded_by_15() {
        let mut s = Sys::two();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        assert_eq!(s.ev.set_priority(1, p, 3), Err(ENOSYS));
        let (mut s, _, _) = fifo_domain();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        assert_eq!(s.ev.set_priority(1, p, 16), Err(EINVAL));
        assert_eq!(s.ev.set_priority(1, 5000, 3), Err(EINVAL));
        assert_eq!(s.ev.set_priority(1, p, 15), Ok(()));
    }

    #[test]
    fn first_event_becomes_the_queue_head_and_raises_ready_and_the_upcall() {
        let (mut s, control, array) = fifo_domain();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, p).unwrap();
        let prio = usize::from(fifo::PRIORITY_DEFAULT);
        assert_eq!(word(&array, p), fifo::PENDING | fifo::LINKED);
        assert_eq!(head(&control, prio), p);
        assert_eq!(ready(&control), 1 << prio);
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
        assert_eq!(s.upcall0(1), 1);
    }

    #[test]
    fn later_events_link_behind_the_tail_without_another_upcall() {
        let (mut s, control, array) = fifo_domain();
        let a = s.ev.bind_ipi(1, 0).unwrap();
        let b = s.ev.bind_ipi(1, 0).unwrap();
        let c = s.ev.bind_ipi(1, 0).unwrap();
        for p in [a, b, c] {
            s.ev.send(&s.env, 1, p).unwrap();
        }
        assert_eq!(word(&array, a) & fifo::LINK_MASK, b);
        assert_eq!(word(&array, b) & fifo::LINK_MASK, c);
        assert_eq!(word(&array, c) & fifo::LINK_MASK, 0);
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
        assert_eq!(drain(&array, &control, 7), [a, b, c]);
    }

    #[test]
    fn an_event_after_the_guest_drained_the_queue_is_the_new_head() {
        let (mut s, control, array) = fifo_domain();
        let a = s.ev.bind_ipi(1, 0).unwrap();
        let b = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, a).unwrap();
        assert_eq!(drain(&array, &control, 7), [a]);
        s.ev.send(&s.env, 1, b).unwrap();
        assert_eq!(head(&control, 7), b);
        assert_eq!(
            word(&array, a) & fifo::LINK_MASK,
            0,
            "a drained tail is not linked to"
        );
        assert_eq!(ready(&control), 1 << 7);
    }

    #[test]
    fn a_masked_event_is_pending_but_not_queued_until_unmasked() {
        let (mut s, control, array) = fifo_domain();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        set_word(&array, p, fifo::MASKED);
        s.ev.send(&s.env, 1, p).unwrap();
        assert_eq!(word(&array, p), fifo::MASKED | fifo::PENDING);
        assert_eq!(ready(&control), 0);
        assert!(s.env.take_upcalls().is_empty());
        s.ev.unmask(&s.env, 1, p).unwrap();
        assert_eq!(word(&array, p), fifo::PENDING | fifo::LINKED);
        assert_eq!(head(&control, 7), p);
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
    }

    #[test]
    fn a_linked_event_sent_again_is_not_queued_twice() {
        let (mut s, control, array) = fifo_domain();
        let a = s.ev.bind_ipi(1, 0).unwrap();
        let b = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, a).unwrap();
        s.ev.send(&s.env, 1, b).unwrap();
        s.ev.send(&s.env, 1, a).unwrap();
        assert_eq!(word(&array, b) & fifo::LINK_MASK, 0);
        assert_eq!(drain(&array, &control, 7), [a, b]);
    }

    #[test]
    fn priority_chooses_the_queue() {
        let (mut s, control, array) = fifo_domain();
        let urgent = s.ev.bind_ipi(1, 0).unwrap();
        let normal = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.set_priority(1, urgent, 0).unwrap();
        s.ev.send(&s.env, 1, normal).unwrap();
        s.ev.send(&s.env, 1, urgent).unwrap();
        assert_eq!(ready(&control), 1 | 1 << 7);
        assert_eq!(drain(&array, &control, 0), [urgent]);
        assert_eq!(drain(&array, &control, 7), [normal]);
    }

    #[test]
    fn an_event_beyond_the_array_is_raised_when_the_array_grows() {
        // A domain allowed more ports than Xen gives dom0less domUs.
        let mut s = Sys::new(Policy::Open, true, &[]);
        s.ev.domain_created(1, 1, 4095, FakePage::new()).unwrap();
        let control = s.env.ram(1, CONTROL);
        s.env.ram(1, ARRAY);
        s.ev.init_control(&s.env, 1, CONTROL, 0, 0).unwrap();
        s.ev.expand_array(&s.env, 1, ARRAY).unwrap();
        let mut p = 0;
        while p < 1024 {
            p = s.ev.bind_ipi(1, 0).unwrap();
        }
        s.ev.send(&s.env, 1, p).unwrap();
        assert_eq!(s.ev.is_pending(1, p), Some(false));
        assert!(s.env.take_upcalls().is_empty());
        let second = s.env.ram(1, ARRAY + 1);
        s.ev.expand_array(&s.env, 1, ARRAY + 1).unwrap();
        assert_eq!(word(&second, p), fifo::PENDING | fifo::LINKED);
        assert_eq!(head(&control, 7), p);
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
    }

    #[test]
    fn events_pending_under_2_level_carry_over_to_fifo() {
        let mut s = Sys::new(Policy::Open, true, &[(1, 1)]);
        let p = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, p).unwrap();
        let control = s.env.ram(1, CONTROL);
        let array = s.env.ram(1, ARRAY);
        s.ev.init_control(&s.env, 1, CONTROL, 0, 0).unwrap();
        s.ev.expand_array(&s.env, 1, ARRAY).unwrap();
        assert_eq!(word(&array, p), fifo::PENDING | fifo::LINKED);
        assert_eq!(head(&control, 7), p);
    }

    #[test]
    fn a_stray_2_level_pending_bit_on_port_0_is_not_carried_over() {
        let mut s = Sys::new(Policy::Open, true, &[(1, 1)]);
        s.ev.bind_ipi(1, 0).unwrap();
        s.si(1).store_u64(crate::abi::shared::EVTCHN_PENDING, 1);
        let control = s.env.ram(1, CONTROL);
        let array = s.env.ram(1, ARRAY);
        s.ev.init_control(&s.env, 1, CONTROL, 0, 0).unwrap();
        s.ev.expand_array(&s.env, 1, ARRAY).unwrap();
        assert_eq!(word(&array, 0), 0);
        assert_eq!(ready(&control), 0);
    }

    #[test]
    fn a_freed_port_still_queued_is_not_reused_until_the_guest_unlinks_it() {
        let (mut s, control, array) = fifo_domain();
        let a = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, a).unwrap();
        s.ev.close(1, a).unwrap();
        assert_eq!(word(&array, a), fifo::LINKED, "close clears only PENDING");
        let b = s.ev.bind_ipi(1, 0).unwrap();
        assert_ne!(b, a);
        assert_eq!(drain(&array, &control, 7), Vec::<Port>::new());
        assert_eq!(s.ev.bind_ipi(1, 0), Ok(a));
    }

    #[test]
    fn an_event_for_a_vcpu_without_a_control_block_is_only_pending() {
        let (mut s, control, array) = fifo_domain();
        let p = s.ev.bind_ipi(1, 1).unwrap();
        s.ev.send(&s.env, 1, p).unwrap();
        assert_eq!(word(&array, p), fifo::PENDING);
        assert_eq!(ready(&control), 0);
        assert!(s.env.take_upcalls().is_empty());
    }

    #[test]
    fn moving_an_event_to_another_vcpu_empties_its_old_queue() {
        let (mut s, control0, array) = fifo_domain();
        let control1 = s.env.ram(1, CONTROL + 1);
        s.ev.init_control(&s.env, 1, CONTROL + 1, 0, 1).unwrap();
        let (p1, p2) = {
            let p1 = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
            (p1, s.ev.bind_interdomain(&s.env, 2, 1, p1).unwrap())
        };
        let q = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 2, p2).unwrap();
        assert_eq!(drain(&array, &control0, 7), [p1]);
        s.ev.bind_vcpu(1, p1, 1).unwrap();
        s.ev.send(&s.env, 2, p2).unwrap();
        assert_eq!(head(&control1, 7), p1);
        // vCPU 0's queue still had p1 as its tail; q must not be linked
        // behind p1, which now sits on vCPU 1's queue.
        s.ev.send(&s.env, 1, q).unwrap();
        assert_eq!(head(&control0, 7), q);
        assert_eq!(word(&array, p1) & fifo::LINK_MASK, 0);
        assert_eq!(drain(&array, &control1, 7), [p1]);
        assert_eq!(drain(&array, &control0, 7), [q]);
    }

    #[test]
    fn a_guest_racing_the_link_update_gets_busy_set_then_cleared() {
        let (mut s, control, array) = fifo_domain();
        let a = s.ev.bind_ipi(1, 0).unwrap();
        let b = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, a).unwrap();
        array.fail_next_cas(1);
        s.ev.send(&s.env, 1, b).unwrap();
        assert_eq!(word(&array, a), fifo::PENDING | fifo::LINKED | b);
        assert_eq!(drain(&array, &control, 7), [a, b]);
    }

    #[test]
    fn a_link_update_that_keeps_failing_gives_up_and_clears_busy() {
        let (mut s, control, array) = fifo_domain();
        let a = s.ev.bind_ipi(1, 0).unwrap();
        let b = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, a).unwrap();
        array.fail_next_cas(5);
        s.ev.send(&s.env, 1, b).unwrap();
        assert_eq!(word(&array, a) & fifo::BUSY, 0);
        assert_eq!(ready(&control), 1 << 7, "no second ready transition");
    }

    #[test]
    fn unmasking_a_port_the_guest_does_not_cover_does_nothing() {
        let (mut s, control, _) = fifo_domain();
        assert_eq!(s.ev.unmask(&s.env, 1, 1023), Ok(()));
        assert_eq!(s.ev.unmask(&s.env, 1, 1024), Err(EINVAL));
        assert_eq!(ready(&control), 0);
    }

    #[test]
    fn reset_returns_a_fifo_domain_to_the_2_level_abi() {
        let (mut s, _, _) = fifo_domain();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.reset(1, DOMID_SELF).unwrap();
        assert!(!s.ev.uses_fifo(1));
        let q = s.ev.bind_ipi(1, 0).unwrap();
        assert_eq!(q, p);
        s.ev.send(&s.env, 1, q).unwrap();
        assert!(s.l2_pending(1, q));
        assert_eq!(s.ev.init_control(&s.env, 1, CONTROL, 0, 0), Ok(17));
    }

    #[test]
    fn fifo_raises_the_port_limit_beyond_4095() {
        let mut s = Sys::new(Policy::Open, true, &[]);
        s.ev.domain_created(3, 1, 200_000, FakePage::new()).unwrap();
        s.env.ram(3, CONTROL);
        assert_eq!(s.ev.is_pending(3, 5000), None);
        s.ev.init_control(&s.env, 3, CONTROL, 0, 0).unwrap();
        assert_eq!(s.ev.is_pending(3, 5000), Some(false));
        assert_eq!(s.ev.is_pending(3, fifo::NR_CHANNELS - 1), Some(false));
        assert_eq!(s.ev.is_pending(3, fifo::NR_CHANNELS), None);
    }

    #[test]
    fn control_block_heads_follow_its_offset() {
        let mut s = Sys::new(Policy::Open, true, &[(1, 1)]);
        let control = s.env.ram(1, CONTROL);
        s.env.ram(1, ARRAY);
        s.ev.init_control(&s.env, 1, CONTROL, 256, 0).unwrap();
        s.ev.expand_array(&s.env, 1, ARRAY).unwrap();
        let p = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, p).unwrap();
        assert_eq!(control.load_u32(256 + fifo::READY), 1 << 7);
        assert_eq!(control.load_u32(256 + fifo::HEAD + 4 * 7), p);
        assert_eq!(head(&control, 7), 0);
    }
}
