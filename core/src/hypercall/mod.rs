//! Xen hypercall dispatch: a table filled through `linkme` by core and by
//! the subsystems (hypercall number → handler, with the interface that
//! must be granted to the calling domain), and the handlers core owns.
//!
//! Handlers see the calling vCPU only through [`Caller`], so they run
//! unchanged against a fake in host tests.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod console;
pub mod hvm;
pub mod memory;
pub mod sched;
pub mod vcpu;
pub mod version;

#[cfg(test)]
pub(crate) mod fake;

use alloc::vec::Vec;

use crate::subsystem::Interface;
use crate::xen::DomId;
use crate::xen::errno::{self, Errno};

/// What a hypercall asks the scheduler to do once it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Let other vCPUs run first.
    Yield,
    /// Wait for an event (`SCHEDOP_block`).
    Block,
    /// Stop the domain (`SCHEDOP_shutdown` reason).
    Shutdown(ShutdownReason),
    /// Xen's hypercall continuation: the call did part of its work and
    /// must be issued again with these arguments (x0–x4) once other vCPUs
    /// had their turn, so that no guest keeps a pCPU inside one call for
    /// as long as it likes. The handler's return value is then dropped.
    Continue([u64; 5]),
}

/// `SCHEDOP_shutdown` reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    Poweroff,
    Reboot,
    Suspend,
    Crash,
    Watchdog,
    SoftReset,
}

/// The calling vCPU, as a hypercall handler sees it.
pub trait Caller {
    fn domid(&self) -> DomId;
    fn vcpu(&self) -> usize;
    fn nr_vcpus(&self) -> usize;
    /// Whether a domain with this ID exists.
    fn domain_exists(&self, domid: DomId) -> bool;
    /// Whether the calling domain was given `i` (interfaces it was not
    /// given are closed).
    fn granted(&self, i: Interface) -> bool;
    /// Copies from a guest virtual address (translated through the vCPU's
    /// stage 1 and stage 2); `EFAULT` on any failure.
    fn read(&mut self, gva: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Copies to a guest virtual address; `EFAULT` on any failure.
    fn write(&mut self, gva: u64, data: &[u8]) -> Result<(), Errno>;
    /// Reads one of the domain's HVM parameters (0 when unset).
    fn hvm_param(&self, index: u32) -> u64;
    /// Asks the scheduler for something after the call returns.
    fn request(&mut self, r: Request);
    /// Writes guest console output (`console_io` write).
    fn console_write(&mut self, bytes: &[u8]);
    /// Takes up to `max` bytes of console input for the domain.
    fn console_read(&mut self, max: usize) -> Vec<u8>;
    /// Records the guest-virtual address of a vCPU's runstate area.
    fn set_runstate_area(&mut self, vcpu: usize, gva: u64);
}

/// A handler: the caller and x0..x4; returns x0.
pub type Handler = fn(&mut dyn Caller, [u64; 5]) -> i64;

/// One entry of the hypercall table.
pub struct Hypercall {
    pub nr: u64,
    pub name: &'static str,
    /// The interface a domain must have been given; `None`: always open.
    pub interface: Option<Interface>,
    pub handler: Handler,
}

/// Every hypercall linked into the image.
#[linkme::distributed_slice]
pub static HYPERCALLS: [Hypercall];

/// An `XENMEM_add_to_physmap` space served by a subsystem.
pub struct PhysmapSpace {
    pub space: u32,
    pub interface: Interface,
    /// (caller, idx, gpfn) → 0 or an error.
    pub handler: fn(&mut dyn Caller, u64, u64) -> Result<(), Errno>,
}

/// Every add_to_physmap space linked into the image.
#[linkme::distributed_slice]
pub static PHYSMAP_SPACES: [PhysmapSpace];

/// A `vcpu_op` command served by a subsystem.
pub struct VcpuOp {
    pub cmd: u64,
    pub interface: Interface,
    /// (caller, vcpuid, argument address) → x0.
    pub handler: fn(&mut dyn Caller, usize, u64) -> i64,
}

/// Every subsystem vcpu_op linked into the image.
#[linkme::distributed_slice]
pub static VCPU_OPS: [VcpuOp];

/// Looks up and runs hypercall `nr`. Unknown numbers, and interfaces the
/// calling domain was not given, answer `-ENOSYS` (as a Xen without the
/// interface would).
pub fn dispatch(table: &[Hypercall], caller: &mut dyn Caller, nr: u64, args: [u64; 5]) -> i64 {
    match table.iter().find(|h| h.nr == nr) {
        Some(h) if h.interface.is_none_or(|i| caller.granted(i)) => (h.handler)(caller, args),
        _ => errno::ENOSYS.ret(),
    }
}

/// Two table entries claiming one number would make dispatch depend on
/// link order: reported at boot.
pub fn duplicates(table: &[Hypercall]) -> Vec<(u64, &'static str, &'static str)> {
    let mut out = Vec::new();
    for (i, a) in table.iter().enumerate() {
        for b in table.iter().skip(i + 1) {
            if a.nr == b.nr {
                out.push((a.nr, a.name, b.name));
            }
        }
    }
    out
}

/// Reads a little-endian integer field of a guest structure.
pub(crate) fn field<const N: usize>(buf: &[u8], off: usize) -> u64 {
    // N ≤ 8; a field past the end of `buf` reads as 0.
    let mut v = [0u8; 8];
    if let (Some(to), Some(from)) = (v.get_mut(..N), buf.get(off..off.saturating_add(N))) {
        to.copy_from_slice(from);
    }
    u64::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use super::fake::FakeCaller;
    use super::*;

    fn ok(_: &mut dyn Caller, a: [u64; 5]) -> i64 {
        a[0] as i64 + 1
    }

    const TABLE: &[Hypercall] = &[
        Hypercall {
            nr: 17,
            name: "open",
            interface: None,
            handler: ok,
        },
        Hypercall {
            nr: 32,
            name: "evtchn",
            interface: Some(Interface::EventChannel),
            handler: ok,
        },
    ];

    #[test]
    fn unknown_numbers_answer_enosys() {
        let mut c = FakeCaller::new();
        assert_eq!(dispatch(TABLE, &mut c, 1, [0; 5]), -38);
    }

    #[test]
    fn an_interface_the_domain_was_not_given_is_closed() {
        let mut c = FakeCaller::new();
        assert_eq!(dispatch(TABLE, &mut c, 32, [1, 0, 0, 0, 0]), -38);
        c.granted.push(Interface::EventChannel);
        assert_eq!(dispatch(TABLE, &mut c, 32, [1, 0, 0, 0, 0]), 2);
    }

    #[test]
    fn duplicate_numbers_are_found() {
        let dup = [
            Hypercall {
                nr: 5,
                name: "a",
                interface: None,
                handler: ok,
            },
            Hypercall {
                nr: 5,
                name: "b",
                interface: None,
                handler: ok,
            },
        ];
        assert_eq!(duplicates(&dup), [(5, "a", "b")]);
        assert!(duplicates(TABLE).is_empty());
    }
}
