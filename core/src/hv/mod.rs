//! The running hypervisor: domains and their vCPUs, the per-CPU scheduler,
//! guest traps, interrupts and the guest-facing consoles. Target-only; the
//! logic it drives (vGIC, vPL011, PSCI decoding, stage-2 tables, loader
//! plans) is pure and host-tested in its own modules.

pub mod build;
pub mod domain;
pub mod hcall;
pub mod irq;
pub mod sched;
pub mod services;
pub mod trap;

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::console_mux::ConsoleMux;
use crate::frames::FrameAllocator;
use crate::hostdt::Platform;

pub use domain::{Domain, VcpuRef};

/// Facts and shared state of the running hypervisor.
pub struct Hv {
    pub nr_pcpus: usize,
    pub pcpu_mpidr: Vec<u64>,
    pub ipa_bits: u32,
    pub pa_bits: u32,
    pub vtcr: u64,
    pub midr: u64,
    pub platform: Platform,
    pub frames: spin::Mutex<FrameAllocator>,
    pub domains: spin::Mutex<Vec<Arc<Domain>>>,
    pub console: Option<&'static dyn crate::drivers::Uart>,
    pub mux: spin::Mutex<ConsoleMux>,
    /// The console command being typed while the input is on Oxen.
    pub line: spin::Mutex<crate::console_cmd::LineEditor>,
    /// The pCPU each (domid, vcpu) runs on, fixed at first build so a
    /// rebooted domain keeps its placement.
    pub placement: spin::Mutex<Vec<((u16, usize), usize)>>,
    /// The linked subsystems, in declared order.
    pub registry: crate::subsystem::Registry,
    /// Xen's SILO policy (the default, `xsm=silo`): domains talk only to
    /// domains the configuration connects them to. `xsm=dummy` opens it.
    pub silo: bool,
    /// Xen's `bootscrub` (default on): zero fresh RAM — never handed out
    /// since power-on — before a domain gets it. RAM handed out before is
    /// zeroed regardless (`frames::Chunk::fresh`).
    pub scrub_fresh: bool,
    /// Pairs of domains the configuration connects.
    pub connections: spin::Mutex<Vec<(crate::xen::DomId, crate::xen::DomId)>>,
}

static HV: spin::Once<Hv> = spin::Once::new();

/// The hypervisor state (after boot has set it up).
pub fn hv() -> &'static Hv {
    HV.get()
        .expect("hypervisor state used before boot set it up")
}

/// Installs the hypervisor state; once, by the boot CPU.
pub fn install(hv: Hv) -> &'static Hv {
    HV.call_once(|| hv)
}

impl Hv {
    /// The domain with this id, if it exists.
    pub fn domain(&self, id: u16) -> Option<Arc<Domain>> {
        self.domains.lock().iter().find(|d| d.id == id).cloned()
    }

    /// The pCPU for vCPU `vcpu` of domain `domid`, assigning the next one
    /// round-robin the first time.
    pub fn place(&self, domid: u16, vcpu: usize) -> usize {
        let mut p = self.placement.lock();
        if let Some((_, cpu)) = p.iter().find(|(k, _)| *k == (domid, vcpu)) {
            return *cpu;
        }
        let cpu = p.len() % self.nr_pcpus;
        p.push(((domid, vcpu), cpu));
        cpu
    }
}
