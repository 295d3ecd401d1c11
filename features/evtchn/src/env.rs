//! What the event-channel state machine needs from the hypervisor: guest
//! pages it shares with a guest, and ways to interrupt a vCPU or a
//! subsystem.

use oxen_core::xen::DomId;

use crate::Port;

/// A 4 KiB page the event-channel code shares with a guest: a domain's
/// `shared_info`, the page holding a registered `vcpu_info`, a FIFO control
/// block's page or an event-array page.
///
/// Offsets are in bytes from the start of the page; callers only pass
/// offsets that are naturally aligned for the access and lie inside the
/// page. The guest changes the same memory concurrently, so every
/// read-modify-write is a single atomic operation, and each access orders
/// like a full barrier (Xen's guest atomics are fully ordered): delivery
/// depends on, for instance, the pending bit being visible before the
/// selector bit.
pub trait SharedPage {
    /// Reads the 64-bit word at `off`.
    fn load_u64(&self, off: usize) -> u64;
    /// Writes the 64-bit word at `off`.
    fn store_u64(&self, off: usize, value: u64);
    /// Atomically ORs `bits` into the word at `off`; returns the old value.
    fn fetch_or_u64(&self, off: usize, bits: u64) -> u64;
    /// Atomically ANDs `bits` into the word at `off`; returns the old value.
    fn fetch_and_u64(&self, off: usize, bits: u64) -> u64;
    /// Reads the 32-bit word at `off`.
    fn load_u32(&self, off: usize) -> u32;
    /// Writes the 32-bit word at `off`.
    fn store_u32(&self, off: usize, value: u32);
    /// Atomically ORs `bits` into the word at `off`; returns the old value.
    fn fetch_or_u32(&self, off: usize, bits: u32) -> u32;
    /// Atomically ANDs `bits` into the word at `off`; returns the old value.
    fn fetch_and_u32(&self, off: usize, bits: u32) -> u32;
    /// Atomically replaces the word at `off` with `new` if it holds `old`:
    /// `Ok(old)` when it did, `Err(current)` when it did not.
    fn compare_exchange_u32(&self, off: usize, old: u32, new: u32) -> Result<u32, u32>;
}

/// The hypervisor as the event-channel code sees it.
///
/// Every method is called while the caller holds `&mut EventChannels`, so
/// none may call back into it; one that needs to (a subsystem answering a
/// kick with a notification) queues the work and does it afterwards.
pub trait Env {
    /// The page type handed out by [`Env::guest_page`].
    type Page: SharedPage;

    /// The page of `dom` at guest frame `gfn`, if that frame is RAM of the
    /// domain the guest may write. The handle keeps the page usable until it
    /// is dropped (the domain is destroyed, or the ABI lets go of it).
    fn guest_page(&self, dom: DomId, gfn: u64) -> Option<Self::Page>;

    /// Raise the event upcall (the event-channel PPI, 31 for domUs) on
    /// `vcpu` of `dom` and kick that vCPU. Called on each 0→1 transition of
    /// the vCPU's `evtchn_upcall_pending`.
    fn upcall(&self, dom: DomId, vcpu: usize);

    /// The guest `dom` sent an event on `port`, whose other end is inside the
    /// hypervisor and was bound with this `callback` id.
    fn notify_hypervisor(&self, callback: u32, dom: DomId, port: Port);

    /// `port` of `dom` has just become pending, masked or not, so a vCPU
    /// waiting for it in `SCHEDOP_poll` can be woken.
    fn port_pending(&self, _dom: DomId, _port: Port) {}
}

/// Oxen's pages shared with guests (`oxen_core::shared`), which already do
/// every access atomically.
impl SharedPage for oxen_core::shared::SharedPage {
    fn load_u64(&self, off: usize) -> u64 {
        oxen_core::shared::SharedPage::load_u64(self, off)
    }
    fn store_u64(&self, off: usize, value: u64) {
        oxen_core::shared::SharedPage::store_u64(self, off, value)
    }
    fn fetch_or_u64(&self, off: usize, bits: u64) -> u64 {
        oxen_core::shared::SharedPage::fetch_or_u64(self, off, bits)
    }
    fn fetch_and_u64(&self, off: usize, bits: u64) -> u64 {
        oxen_core::shared::SharedPage::fetch_and_u64(self, off, bits)
    }
    fn load_u32(&self, off: usize) -> u32 {
        oxen_core::shared::SharedPage::load_u32(self, off)
    }
    fn store_u32(&self, off: usize, value: u32) {
        oxen_core::shared::SharedPage::store_u32(self, off, value)
    }
    fn fetch_or_u32(&self, off: usize, bits: u32) -> u32 {
        oxen_core::shared::SharedPage::fetch_or_u32(self, off, bits)
    }
    fn fetch_and_u32(&self, off: usize, bits: u32) -> u32 {
        oxen_core::shared::SharedPage::fetch_and_u32(self, off, bits)
    }
    fn compare_exchange_u32(&self, off: usize, old: u32, new: u32) -> Result<u32, u32> {
        oxen_core::shared::SharedPage::compare_exchange_u32(self, off, old, new)
    }
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;

    use oxen_core::shared::{SharedPage as Page, test_page};
    use oxen_core::xen::DOMID_SELF;

    use super::*;
    use crate::abi::{fifo, shared};
    use crate::{EventChannels, Policy};

    /// A hypervisor whose guest RAM is one real page per frame.
    #[derive(Default)]
    struct RealEnv {
        ram: RefCell<alloc::vec::Vec<(u64, Page)>>,
        upcalls: RefCell<alloc::vec::Vec<(DomId, usize)>>,
    }

    impl Env for RealEnv {
        type Page = Page;
        fn guest_page(&self, _dom: DomId, gfn: u64) -> Option<Page> {
            let mut ram = self.ram.borrow_mut();
            if let Some((_, p)) = ram.iter().find(|(g, _)| *g == gfn) {
                return Some(*p);
            }
            let p = test_page();
            ram.push((gfn, p));
            Some(p)
        }
        fn upcall(&self, dom: DomId, vcpu: usize) {
            self.upcalls.borrow_mut().push((dom, vcpu));
        }
        fn notify_hypervisor(&self, _: u32, _: DomId, _: Port) {}
    }

    #[test]
    fn oxens_shared_pages_carry_2_level_delivery() {
        let env = RealEnv::default();
        let si = test_page();
        let mut ev = EventChannels::new(Policy::Silo, false);
        ev.domain_created(1, 1, 1023, si).unwrap();
        let p = ev.bind_ipi(1, 0).unwrap();
        ev.send(&env, 1, p).unwrap();
        assert_eq!(si.load_u64(shared::EVTCHN_PENDING), 1 << p);
        assert_eq!(si.load_u64(shared::PENDING_SEL), 1);
        assert_eq!(si.load_u8(shared::UPCALL_PENDING), 1);
        assert_eq!(*env.upcalls.borrow(), [(1, 0)]);
    }

    #[test]
    fn oxens_shared_pages_carry_fifo_links() {
        let env = RealEnv::default();
        let mut ev = EventChannels::new(Policy::Silo, true);
        ev.domain_created(1, 1, 1023, test_page()).unwrap();
        ev.init_control(&env, 1, 0x100, 0, 0).unwrap();
        ev.expand_array(&env, 1, 0x101).unwrap();
        let a = ev.bind_ipi(1, 0).unwrap();
        let b = ev.bind_ipi(1, 0).unwrap();
        ev.send(&env, 1, a).unwrap();
        ev.send(&env, 1, b).unwrap();
        let array = env.guest_page(1, 0x101).unwrap();
        let control = env.guest_page(1, 0x100).unwrap();
        assert_eq!(
            array.load_u32(4 * a as usize),
            fifo::PENDING | fifo::LINKED | b
        );
        assert_eq!(control.load_u32(fifo::HEAD + 4 * 7), a);
        assert_eq!(ev.status(1, DOMID_SELF, b).unwrap().vcpu, 0);
    }
}
