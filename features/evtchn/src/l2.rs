//! The 2-level delivery ABI: a pending and a mask bitmap in `shared_info`,
//! a selector word and an upcall flag in each `vcpu_info`.

use crate::Port;
use crate::abi::{NR_2L_CHANNELS, shared};
use crate::domain::Domain;
use crate::env::{Env, SharedPage};

/// Byte offset of the 64-bit word holding `port` within a bitmap, and the
/// port's bit in it.
fn bit(port: Port) -> (usize, u64) {
    ((port / 64) as usize * 8, 1u64 << (port % 64))
}

impl<P: SharedPage> Domain<P> {
    /// Marks `port` pending and tells `vcpu`, in the order the guest's scan
    /// relies on: pending bit, then (if unmasked) selector bit, then upcall.
    pub(crate) fn l2_set_pending<E: Env>(&mut self, env: &E, vcpu: usize, port: Port) {
        if port >= NR_2L_CHANNELS {
            return;
        }
        let (w, b) = bit(port);
        if self.shared_info.fetch_or_u64(shared::EVTCHN_PENDING + w, b) & b != 0 {
            return;
        }
        let masked = self.shared_info.load_u64(shared::EVTCHN_MASK + w) & b != 0;
        if !masked && !self.test_and_set_sel(vcpu, port / 64) {
            self.mark_events_pending(env, vcpu);
        }
        env.port_pending(self.id, port);
    }

    pub(crate) fn l2_clear_pending(&mut self, port: Port) {
        if port < NR_2L_CHANNELS {
            let (w, b) = bit(port);
            self.shared_info
                .fetch_and_u64(shared::EVTCHN_PENDING + w, !b);
        }
    }

    /// Clears the mask bit; an event that arrived while masked is announced
    /// now, on the port's notify vCPU.
    pub(crate) fn l2_unmask<E: Env>(&mut self, env: &E, port: Port) {
        if port >= NR_2L_CHANNELS {
            return;
        }
        let (w, b) = bit(port);
        let vcpu = self.channel(port).notify_vcpu;
        let was_masked = self.shared_info.fetch_and_u64(shared::EVTCHN_MASK + w, !b) & b != 0;
        if was_masked && self.l2_is_pending(port) && !self.test_and_set_sel(vcpu, port / 64) {
            self.mark_events_pending(env, vcpu);
        }
    }

    pub(crate) fn l2_is_pending(&self, port: Port) -> bool {
        if port >= NR_2L_CHANNELS {
            return false;
        }
        let (w, b) = bit(port);
        self.shared_info.load_u64(shared::EVTCHN_PENDING + w) & b != 0
    }
}

#[cfg(test)]
mod tests {
    use oxen_core::xen::DOMID_SELF;
    use oxen_core::xen::errno::EINVAL;

    use crate::abi::shared;
    use crate::fake::Sys;
    use crate::{Port, SharedPage};

    /// Domain 2 sends on an interdomain channel; returns domain 1's port.
    fn channel(s: &mut Sys) -> (Port, Port) {
        let p1 = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        let p2 = s.ev.bind_interdomain(&s.env, 2, 1, p1).unwrap();
        s.env.take_upcalls();
        (p1, p2)
    }

    #[test]
    fn e1_unmasked_event_sets_pending_selector_and_upcall_with_one_injection() {
        let mut s = Sys::two();
        let (p1, p2) = channel(&mut s);
        s.ev.send(&s.env, 2, p2).unwrap();
        assert!(s.l2_pending(1, p1));
        assert_eq!(s.sel0(1), 1 << (p1 / 64));
        assert_eq!(s.upcall0(1), 1);
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
    }

    #[test]
    fn e2_no_second_injection_while_upcall_pending_is_set() {
        let mut s = Sys::two();
        let (_, p2) = channel(&mut s);
        let other = s.ev.alloc_unbound(1, DOMID_SELF, 2).unwrap();
        let other2 = s.ev.bind_interdomain(&s.env, 2, 1, other).unwrap();
        s.ev.send(&s.env, 2, p2).unwrap();
        s.env.take_upcalls();
        // The guest has not scanned yet: it only cleared the selector.
        s.si(1).store_u64(shared::PENDING_SEL, 0);
        s.ev.send(&s.env, 2, other2).unwrap();
        assert!(s.l2_pending(1, other));
        assert_ne!(s.sel0(1), 0);
        assert!(s.env.take_upcalls().is_empty());
    }

    #[test]
    fn e3_masked_event_sets_only_the_pending_bit() {
        let mut s = Sys::two();
        let (p1, p2) = channel(&mut s);
        s.set_l2_mask(1, p1, true);
        s.ev.send(&s.env, 2, p2).unwrap();
        assert!(s.l2_pending(1, p1));
        assert_eq!(s.sel0(1), 0);
        assert_eq!(s.upcall0(1), 0);
        assert!(s.env.take_upcalls().is_empty());
    }

    #[test]
    fn e4_unmask_announces_an_event_that_arrived_masked() {
        let mut s = Sys::two();
        let (p1, p2) = channel(&mut s);
        s.set_l2_mask(1, p1, true);
        s.ev.send(&s.env, 2, p2).unwrap();
        s.ev.unmask(&s.env, 1, p1).unwrap();
        let mask = s
            .si(1)
            .load_u64(shared::EVTCHN_MASK + (p1 / 64) as usize * 8);
        assert_eq!(mask & (1 << (p1 % 64)), 0);
        assert_eq!(s.sel0(1), 1 << (p1 / 64));
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
    }

    #[test]
    fn unmask_without_a_pending_event_raises_nothing() {
        let mut s = Sys::two();
        let (p1, _) = channel(&mut s);
        s.set_l2_mask(1, p1, true);
        s.ev.unmask(&s.env, 1, p1).unwrap();
        assert_eq!(s.sel0(1), 0);
        assert!(s.env.take_upcalls().is_empty());
    }

    #[test]
    fn unmask_of_an_out_of_range_port_returns_einval() {
        let mut s = Sys::two();
        assert_eq!(s.ev.unmask(&s.env, 1, 1024), Err(EINVAL));
        assert_eq!(s.ev.unmask(&s.env, 1, 1023), Ok(()));
    }

    #[test]
    fn e5_a_second_send_while_pending_changes_nothing() {
        let mut s = Sys::two();
        let (p1, p2) = channel(&mut s);
        s.ev.send(&s.env, 2, p2).unwrap();
        s.env.take_upcalls();
        s.si(1).store_u64(shared::PENDING_SEL, 0);
        s.si(1).set_byte(shared::UPCALL_PENDING, 0);
        s.ev.send(&s.env, 2, p2).unwrap();
        assert!(s.l2_pending(1, p1));
        assert_eq!(s.sel0(1), 0);
        assert_eq!(s.upcall0(1), 0);
        assert!(s.env.take_upcalls().is_empty());
    }

    #[test]
    fn e6_bind_vcpu_moves_delivery_to_vcpu1() {
        let mut s = Sys::two();
        let (p1, p2) = channel(&mut s);
        let page = s.env.ram(1, 0x40020);
        s.ev.register_vcpu_info(&s.env, 1, 1, 0x40020, 0).unwrap();
        page.store_u64(shared::PENDING_SEL, 0);
        page.set_byte(shared::UPCALL_PENDING, 0);
        s.env.take_upcalls();
        s.ev.bind_vcpu(1, p1, 1).unwrap();
        s.ev.send(&s.env, 2, p2).unwrap();
        assert_eq!(page.load_u64(shared::PENDING_SEL), 1 << (p1 / 64));
        assert_eq!(page.byte(shared::UPCALL_PENDING), 1);
        assert_eq!(s.sel0(1), 0);
        assert_eq!(s.env.take_upcalls(), [(1, 1)]);
    }

    #[test]
    fn ports_above_63_use_later_selector_bits() {
        let mut s = Sys::two();
        let mut last = 0;
        for _ in 0..130 {
            last = s.ev.bind_ipi(1, 0).unwrap();
        }
        assert_eq!(last, 130);
        s.ev.send(&s.env, 1, last).unwrap();
        assert_eq!(s.sel0(1), 1 << 2);
        let word = s.si(1).load_u64(shared::EVTCHN_PENDING + 2 * 8);
        assert_eq!(word, 1 << (130 - 128));
    }

    #[test]
    fn a_selector_bit_already_set_means_no_upcall() {
        let mut s = Sys::two();
        let a = s.ev.bind_ipi(1, 0).unwrap();
        let b = s.ev.bind_ipi(1, 0).unwrap();
        s.ev.send(&s.env, 1, a).unwrap();
        s.env.take_upcalls();
        s.si(1).set_byte(shared::UPCALL_PENDING, 0);
        // Same selector word as `a`, whose bit the guest has not consumed.
        s.ev.send(&s.env, 1, b).unwrap();
        assert!(s.l2_pending(1, b));
        assert!(s.env.take_upcalls().is_empty());
    }

    #[test]
    fn every_new_pending_port_is_reported_for_pollers_even_masked() {
        let mut s = Sys::two();
        let (p1, p2) = channel(&mut s);
        s.env.pending.borrow_mut().clear();
        s.set_l2_mask(1, p1, true);
        s.ev.send(&s.env, 2, p2).unwrap();
        s.ev.send(&s.env, 2, p2).unwrap();
        assert_eq!(*s.env.pending.borrow(), [(1, p1)]);
    }
}
