//! The calling vCPU as hypercall handlers see it ([`Caller`]): guest
//! memory through the vCPU's own translation, the domain's HVM parameters,
//! consoles and scheduler requests.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use alloc::vec::Vec;

use super::VcpuRef;
use super::domain::{Domain, Shutdown};
use super::sched::After;
use crate::arch::{guest, mem};
use crate::hypercall::{Caller, Request, ShutdownReason};
use crate::memmap::Range;
use crate::subsystem::Interface;
use crate::xen::DomId;
use crate::xen::errno::{EFAULT, Errno};

/// Copies guest-virtual `[gva, gva+len)` of the loaded vCPU, page by page;
/// `None` on any translation failure or page that is not the domain's RAM.
pub fn read_guest(dom: &Domain, gva: u64, out: &mut [u8]) -> Option<()> {
    let mut done = 0usize;
    while done < out.len() {
        let va = gva.checked_add(done as u64)?;
        let pa = guest::translate_gva(va, false)?;
        let n = (0x1000 - (pa & 0xfff)).min((out.len() - done) as u64);
        let host = Range::with_size(pa, n)?;
        if !dom.mem.lock().owns_host(host) {
            return None;
        }
        // `n` is at most what is left of `out`.
        if !mem::read_ram(host.start, out.get_mut(done..done + n as usize)?) {
            return None;
        }
        done += n as usize;
    }
    Some(())
}

/// Copies into guest-virtual `[gva, gva+len)` of the loaded vCPU.
pub fn write_guest(dom: &Domain, gva: u64, data: &[u8]) -> Option<()> {
    let mut done = 0usize;
    while done < data.len() {
        let va = gva.checked_add(done as u64)?;
        let pa = guest::translate_gva(va, true)?;
        let n = (0x1000 - (pa & 0xfff)).min((data.len() - done) as u64);
        let host = Range::with_size(pa, n)?;
        if !dom.mem.lock().owns_host(host) {
            return None;
        }
        // `n` is at most what is left of `data`.
        if !mem::write_ram(host.start, data.get(done..done + n as usize)?) {
            return None;
        }
        done += n as usize;
    }
    Some(())
}

/// The vCPU that made the hypercall.
pub struct CurrentVcpu<'a> {
    v: &'a VcpuRef,
    after: After,
    again: Option<[u64; 5]>,
}

impl<'a> CurrentVcpu<'a> {
    pub fn new(v: &'a VcpuRef) -> Self {
        Self {
            v,
            after: After::Continue,
            again: None,
        }
    }

    /// What the scheduler should do once the hypercall returns.
    pub fn after(&self) -> After {
        self.after
    }

    /// The arguments to issue the hypercall again with, if it asked for a
    /// continuation.
    pub fn again(&self) -> Option<[u64; 5]> {
        self.again
    }
}

impl Caller for CurrentVcpu<'_> {
    fn domid(&self) -> DomId {
        self.v.dom.id
    }

    fn vcpu(&self) -> usize {
        self.v.idx
    }

    fn nr_vcpus(&self) -> usize {
        self.v.dom.vcpus.len()
    }

    fn domain_exists(&self, domid: DomId) -> bool {
        super::hv().domain(domid).is_some()
    }

    fn granted(&self, i: Interface) -> bool {
        // A loop rather than `contains`, which a size-optimised build calls
        // out of line: this is asked on every hypercall.
        for &g in self.v.dom.granted.iter() {
            if g == i {
                return true;
            }
        }
        false
    }

    fn read(&mut self, gva: u64, buf: &mut [u8]) -> Result<(), Errno> {
        read_guest(&self.v.dom, gva, buf).ok_or(EFAULT)
    }

    fn write(&mut self, gva: u64, data: &[u8]) -> Result<(), Errno> {
        write_guest(&self.v.dom, gva, data).ok_or(EFAULT)
    }

    fn hvm_param(&self, index: u32) -> u64 {
        self.v
            .dom
            .hvm_params
            .lock()
            .get(index as usize)
            .copied()
            .unwrap_or(0)
    }

    fn request(&mut self, r: Request) {
        match r {
            Request::Yield => self.after = After::Yield,
            Request::Block => self.after = After::Block,
            Request::Continue(args) => {
                self.again = Some(args);
                self.after = After::Yield;
            }
            Request::Shutdown(reason) => {
                let why = match reason {
                    ShutdownReason::Poweroff => Shutdown::Poweroff,
                    ShutdownReason::Reboot => Shutdown::Reboot,
                    ShutdownReason::Crash
                    | ShutdownReason::Watchdog
                    | ShutdownReason::Suspend
                    | ShutdownReason::SoftReset => Shutdown::Crash,
                };
                self.v.dom.begin_shutdown(why);
            }
        }
    }

    fn console_write(&mut self, bytes: &[u8]) {
        self.v.dom.console_write(&self.v.dom.hvc_out, bytes);
    }

    fn console_read(&mut self, max: usize) -> Vec<u8> {
        let mut q = self.v.dom.hvc_in.lock();
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    fn set_runstate_area(&mut self, vcpu: usize, gva: u64) {
        let Some(target) = self.v.dom.vcpus.get(vcpu) else {
            return;
        };
        target.runstate.lock().gva = gva;
        if vcpu == self.v.idx {
            super::sched::publish_runstate(self.v);
        }
    }
}
