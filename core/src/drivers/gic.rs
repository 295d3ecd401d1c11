//! The physical GICv3, initialised with the `arm-gic` crate. The virtual
//! CPU interface (list registers) is Oxen's own and arrives with the vGIC.

use core::ptr::NonNull;

use arm_gic::IntId;
use arm_gic::gicv3::registers::{Gicd, GicrSgi};
use arm_gic::gicv3::{GicV3, SgiTarget, SgiTargetGroup};
use arm_gic::{UniqueMmioPointer, gicv3::GicCpuInterface};

use crate::hostdt::Gic as GicInfo;

static GIC: spin::Mutex<Option<GicV3<'static>>> = spin::Mutex::new(None);

/// What the distributor reports about itself.
#[derive(Debug, Clone, Copy)]
pub struct GicSummary {
    pub spis: u32,
}

/// Initialises the distributor and every redistributor, and this (the boot)
/// CPU's interface, from the (validated) device tree's GICv3 node: its
/// windows are not RAM (checked) and the identity map maps them as Device
/// memory. Only the first call initialises; later ones return `None`.
pub fn init(info: &GicInfo, cpus: usize, boot_cpu: usize) -> Option<GicSummary> {
    let mut slot = GIC.lock();
    if slot.is_some() {
        return None;
    }
    let windows = core::iter::once(&info.distributor).chain(info.redistributors.iter());
    if windows.clone().any(|w| crate::arch::mem::is_ram(w.start)) || info.redistributors.is_empty()
    {
        return None;
    }
    GicCpuInterface::enable_system_register_el2(true);
    let gicd = NonNull::new(info.distributor.start as *mut Gicd).expect("GICD at 0");
    let gicr = NonNull::new(info.redistributors[0].start as *mut GicrSgi).expect("GICR at 0");
    // SAFETY: the addresses are the GIC's per the device tree, outside RAM
    // (checked), mapped as Device memory; only this driver touches them,
    // and only this first call creates the handle.
    let mut gic = unsafe { GicV3::new(UniqueMmioPointer::new(gicd), gicr, cpus) }
        .expect("GICv3 redistributor layout");
    gic.setup(boot_cpu);
    let spis = gic.typer().num_spis();
    *slot = Some(gic);
    Some(GicSummary { spis })
}

/// Wakes this CPU's redistributor and enables its system-register interface.
pub fn init_cpu(cpu: usize) {
    GicCpuInterface::enable_system_register_el2(true);
    if let Some(gic) = GIC.lock().as_mut() {
        gic.init_cpu(cpu);
    }
    // `init_cpu` leaves the group-1 enable of this CPU's interface alone.
    GicCpuInterface::enable_group1(true);
}

/// Enables a private interrupt (SGI or PPI, by INTID) on this CPU.
pub fn enable_private(cpu: usize, intid: u32) {
    if let Some(gic) = GIC.lock().as_mut() {
        let id = if intid < 16 {
            IntId::sgi(intid)
        } else {
            IntId::ppi(intid - 16)
        };
        let _ = gic.set_interrupt_priority(id, Some(cpu), 0x80);
        let _ = gic.enable_interrupt(id, Some(cpu), true);
    }
}

/// Enables a shared interrupt (by INTID), routed to the CPU with `mpidr`.
pub fn enable_spi(intid: u32, mpidr: u64) {
    if let Some(gic) = GIC.lock().as_mut() {
        let id = IntId::spi(intid - 32);
        let _ = gic.set_interrupt_priority(id, None, 0x80);
        let _ = gic.distributor().set_routing(id, Some(mpidr));
        let _ = gic.enable_interrupt(id, None, true);
    }
}

/// Lets every priority through this CPU's interface.
pub fn unmask_priorities() {
    GicCpuInterface::set_priority_mask(0xff);
}

/// Sends SGI `sgi` to the CPU with affinity `mpidr`.
pub fn send_sgi(sgi: u32, mpidr: u64) {
    let target = SgiTarget::List {
        affinity3: ((mpidr >> 32) & 0xff) as u8,
        affinity2: ((mpidr >> 16) & 0xff) as u8,
        affinity1: ((mpidr >> 8) & 0xff) as u8,
        target_list: 1 << (mpidr & 0xf),
    };
    let _ = GicCpuInterface::send_sgi(IntId::sgi(sgi), target, SgiTargetGroup::CurrentGroup1);
}
