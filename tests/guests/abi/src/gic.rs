//! The GICv3 as a guest sees it: the distributor and redistributors the
//! device tree names, the system-register CPU interface, SGIs, and the IRQ
//! handler that counts every interrupt each vCPU takes.

use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use oxen_guest_common::msg;
use oxen_guest_common::msg::Msg;

use crate::arch::{self, mmio};
use crate::smp::MAX_VCPUS;

/// Distributor registers.
const GICD_CTLR: usize = 0x0000;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_IROUTER: usize = 0x6000;
/// GICD_CTLR: Group 1 enables, affinity routing, register write pending.
const CTLR_ENABLE_G1: u32 = 1 << 0;
const CTLR_ENABLE_G1A: u32 = 1 << 1;
const CTLR_ARE_NS: u32 = 1 << 4;
const CTLR_RWP: u32 = 1 << 31;

/// Redistributor registers: each vCPU has an RD frame and an SGI frame.
const GICR_STRIDE: usize = 0x2_0000;
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
const GICR_SGI: usize = 0x1_0000;
const GICR_IGROUPR0: usize = GICR_SGI + 0x0080;
const GICR_ISENABLER0: usize = GICR_SGI + 0x0100;
const GICR_IPRIORITYR: usize = GICR_SGI + 0x0400;
const TYPER_LAST: u64 = 1 << 4;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

/// The priority every interrupt gets: above the priority mask.
const PRIORITY: u32 = 0xa0;

/// The virtual timer's PPI.
pub const VTIMER_PPI: u32 = 27;
/// The vPL011's SPI.
pub const UART_SPI: u32 = 32;
/// The event-channel upcall PPI (`/hypervisor` interrupts, `<1 15 0xf08>`).
pub const EVTCHN_PPI: u32 = 31;

static GICD: AtomicUsize = AtomicUsize::new(0);
static GICR: AtomicUsize = AtomicUsize::new(0);
static GICR_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Interrupts counted per vCPU, for INTIDs below this.
pub const COUNTED: usize = 64;

/// How many times each vCPU took each interrupt.
static COUNTS: [[AtomicU32; COUNTED]; MAX_VCPUS] =
    [const { [const { AtomicU32::new(0) }; COUNTED] }; MAX_VCPUS];

/// How many times vCPU `cpu` took interrupt `intid`.
pub fn count(cpu: usize, intid: u32) -> u32 {
    COUNTS[cpu][intid as usize].load(Ordering::Acquire)
}

/// Uses the distributor at `gicd` and the redistributor region at `gicr`
/// of `gicr_size` bytes (from the device tree's GIC node).
pub fn init(gicd: usize, gicr: usize, gicr_size: usize) {
    GICD.store(gicd, Ordering::Release);
    GICR.store(gicr, Ordering::Release);
    GICR_SIZE.store(gicr_size, Ordering::Release);
}

fn gicd(offset: usize) -> usize {
    GICD.load(Ordering::Acquire) + offset
}

/// Turns on the distributor's Group 1 forwarding (vCPU0, once).
pub fn enable_distributor() -> Result<(), Msg> {
    // SAFETY: GICD is the distributor the device tree names; GICD_CTLR is
    // one of its registers.
    unsafe {
        mmio::write32(
            gicd(GICD_CTLR),
            CTLR_ARE_NS | CTLR_ENABLE_G1A | CTLR_ENABLE_G1,
        )
    };
    // SAFETY: as above.
    let settled = arch::wait_for(arch::ms(1000), || unsafe {
        mmio::read32(gicd(GICD_CTLR)) & CTLR_RWP == 0
    });
    if !settled {
        return Err(msg!("GICD_CTLR.RWP stayed set for 1 s"));
    }
    Ok(())
}

/// The redistributor frame whose GICR_TYPER affinity is this vCPU's MPIDR.
fn redistributor() -> Result<usize, Msg> {
    let m = arch::mpidr();
    let aff = ((m >> 32) & 0xff) << 24 | (m & 0xff_ffff);
    let base = GICR.load(Ordering::Acquire);
    let size = GICR_SIZE.load(Ordering::Acquire);
    let mut at = 0;
    while at + GICR_STRIDE <= size {
        // SAFETY: `base + at` is a frame inside the redistributor region the
        // device tree names; GICR_TYPER is its first 64-bit ID register.
        let typer = unsafe { mmio::read64(base + at + GICR_TYPER) };
        if typer >> 32 == aff {
            return Ok(base + at);
        }
        if typer & TYPER_LAST != 0 {
            break;
        }
        at += GICR_STRIDE;
    }
    Err(msg!(
        "no redistributor has affinity {aff:#x} (MPIDR_EL1 {m:#x}); searched {:#x} bytes",
        at + GICR_STRIDE
    ))
}

/// Wakes this vCPU's redistributor, puts its SGIs and PPIs in Group 1 with
/// a priority above the mask, enables the SGIs and the virtual timer's PPI,
/// and turns on the system-register CPU interface.
pub fn init_cpu() -> Result<(), Msg> {
    let rd = redistributor()?;
    // SAFETY: `rd` is this vCPU's redistributor frame (found above); every
    // offset used below is one of its registers.
    unsafe {
        let waker = mmio::read32(rd + GICR_WAKER);
        mmio::write32(rd + GICR_WAKER, waker & !WAKER_PROCESSOR_SLEEP);
    }
    // SAFETY: as above.
    let awake = arch::wait_for(arch::ms(1000), || unsafe {
        mmio::read32(rd + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0
    });
    if !awake {
        return Err(msg!("GICR_WAKER.ChildrenAsleep stayed set for 1 s"));
    }
    // SAFETY: as above.
    unsafe {
        mmio::write32(rd + GICR_IGROUPR0, u32::MAX);
        for n in 0..8 {
            mmio::write32(rd + GICR_IPRIORITYR + 4 * n, PRIORITY * 0x0101_0101);
        }
        mmio::write32(rd + GICR_ISENABLER0, 0xffff | 1 << VTIMER_PPI);
    }
    let sre = icc_enable();
    if sre & 1 == 0 {
        return Err(msg!(
            "ICC_SRE_EL1.SRE reads 0 after setting it: no system-register interface"
        ));
    }
    Ok(())
}

/// Sets ICC_SRE_EL1.SRE, opens the priority mask and enables Group 1;
/// returns ICC_SRE_EL1 as read back.
fn icc_enable() -> u64 {
    let sre: u64;
    // SAFETY: the CPU interface registers only affect interrupt delivery to
    // this vCPU, whose handler is installed.
    unsafe {
        asm!(
            "mrs {s}, S3_0_C12_C12_5",   // ICC_SRE_EL1
            "orr {s}, {s}, #1",
            "msr S3_0_C12_C12_5, {s}",
            "isb",
            "mrs {s}, S3_0_C12_C12_5",
            "mov {t}, #0xff",
            "msr S3_0_C4_C6_0, {t}",     // ICC_PMR_EL1
            "msr S3_0_C12_C12_3, xzr",   // ICC_BPR1_EL1
            "mov {t}, #1",
            "msr S3_0_C12_C12_7, {t}",   // ICC_IGRPEN1_EL1
            "isb",
            s = out(reg) sre,
            t = out(reg) _,
            options(nomem, nostack, preserves_flags)
        )
    };
    sre
}

/// Enables PPI `intid` on this vCPU (its group and priority were set by
/// [`init_cpu`]). Kept apart from `init_cpu` so the event-channel upcall
/// is only let in once the guest can clear `evtchn_upcall_pending`: Xen
/// injects it again on every entry while that flag is set.
pub fn enable_ppi(intid: u32) -> Result<(), Msg> {
    let rd = redistributor()?;
    // SAFETY: `rd` is this vCPU's redistributor frame; GICR_ISENABLER0 is
    // one of its registers, and writing a 1 only enables that interrupt.
    unsafe { mmio::write32(rd + GICR_ISENABLER0, 1 << (intid % 32)) };
    Ok(())
}

/// Routes SPI `intid` to the vCPU with affinity `aff`, in Group 1, and
/// enables it.
pub fn enable_spi(intid: u32, aff: u64) {
    let n = intid as usize;
    // SAFETY: GICD is the distributor the device tree names; the offsets are
    // the group, priority, routing and enable registers of `intid`.
    unsafe {
        let group = gicd(GICD_IGROUPR + n / 32 * 4);
        mmio::write32(group, mmio::read32(group) | 1 << (n % 32));
        let prio = gicd(GICD_IPRIORITYR + n / 4 * 4);
        let shift = 8 * (n % 4);
        let p = mmio::read32(prio) & !(0xff << shift) | PRIORITY << shift;
        mmio::write32(prio, p);
        mmio::write64(gicd(GICD_IROUTER + n * 8), aff);
        mmio::write32(gicd(GICD_ISENABLER + n / 32 * 4), 1 << (n % 32));
    }
}

fn write_sgi1r(v: u64) {
    // SAFETY: generating an SGI only affects interrupt delivery.
    unsafe {
        asm!(
            "msr S3_0_C12_C11_5, {}",   // ICC_SGI1R_EL1
            "isb",
            in(reg) v,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Sends SGI `intid` to the vCPU with MPIDR affinity `aff` (Aff1.Aff0;
/// both Xen and Oxen keep Aff0 below 16).
pub fn send_sgi(intid: u32, aff: u64) {
    let aff0 = aff & 0xf;
    let aff1 = (aff >> 8) & 0xff;
    write_sgi1r(u64::from(intid & 0xf) << 24 | aff1 << 16 | 1 << aff0);
}

/// Sends SGI `intid` to every vCPU but this one (IRM = 1).
pub fn send_sgi_to_others(intid: u32) {
    write_sgi1r(1 << 40 | u64::from(intid & 0xf) << 24);
}

fn acknowledge() -> u32 {
    let v: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges the interrupt this handler
    // is about to deal with.
    unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    (v & 0xff_ffff) as u32
}

fn end_of_interrupt(intid: u32) {
    // SAFETY: ICC_EOIR1_EL1 with the INTID just acknowledged drops its
    // priority and deactivates it (EOImode 0).
    unsafe {
        asm!(
            "msr S3_0_C12_C12_1, {}",
            in(reg) u64::from(intid),
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// The IRQ vector's handler: acknowledges one interrupt, quietens its
/// source (the timer is stopped, the UART's TX interrupt masked), counts
/// it for this vCPU and ends it.
pub fn handle_irq() {
    let intid = acknowledge();
    if intid >= 1020 {
        return; // spurious: nothing to end
    }
    match intid {
        VTIMER_PPI => arch::vtimer::stop(),
        EVTCHN_PPI => crate::xen::upcall(),
        UART_SPI => {
            crate::console::set_reg(crate::console::IMSC, 0);
            crate::console::set_reg(crate::console::ICR, crate::console::INT_TX);
        }
        _ => {}
    }
    let cpu = arch::cpu_index().min(MAX_VCPUS - 1);
    if let Some(c) = COUNTS[cpu].get(intid as usize) {
        // Only this vCPU writes its counters: a plain increment is enough
        // (and read-modify-write atomics are not an option with the MMU off).
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Release);
    }
    end_of_interrupt(intid);
}
