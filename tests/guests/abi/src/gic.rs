//! The GIC as a guest sees it: the distributor and, on a GICv3, the
//! redistributors and the system-register CPU interface, or, on a GICv2,
//! the memory-mapped CPU interface the device tree names; SGIs; and the
//! IRQ handler that counts every interrupt each vCPU takes. A guest gets
//! its host's GIC version (on Xen as on Oxen), so the version is learnt
//! from the tree at run time and one guest image drives both.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

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

/// GICv2 distributor registers (the GICv3 ones above at the same offsets
/// serve too: GICD_CTLR, GICD_IGROUPR, GICD_ISENABLER, GICD_IPRIORITYR).
const GICD_ITARGETSR: usize = 0x0800;
const GICD_SGIR: usize = 0x0f00;
/// GICD_SGIR's TargetListFilter: the CPUs in the target list, or every
/// CPU but the sender.
const SGIR_TO_LIST: u32 = 0 << 24;
const SGIR_TO_OTHERS: u32 = 1 << 24;
/// GICv2 CPU-interface registers.
const GICC_CTLR: usize = 0x0000;
const GICC_PMR: usize = 0x0004;
const GICC_BPR: usize = 0x0008;
const GICC_IAR: usize = 0x000c;
const GICC_EOIR: usize = 0x0010;
/// GICD_CTLR.Enable and GICC_CTLR.Enable (a non-secure view has one group).
const V2_ENABLE: u32 = 1 << 0;
/// GICC_IAR's interrupt ID (its bits 12:10 name an SGI's sender).
const IAR_INTID_V2: u32 = 0x3ff;

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
/// Whether the tree's GIC is a GICv2 (then GICC is its CPU interface).
static V2: AtomicBool = AtomicBool::new(false);
static GICC: AtomicUsize = AtomicUsize::new(0);

/// Interrupts counted per vCPU, for INTIDs below this.
pub const COUNTED: usize = 64;

/// How many times each vCPU took each interrupt.
static COUNTS: [[AtomicU32; COUNTED]; MAX_VCPUS] =
    [const { [const { AtomicU32::new(0) }; COUNTED] }; MAX_VCPUS];

/// How many times vCPU `cpu` took interrupt `intid`.
pub fn count(cpu: usize, intid: u32) -> u32 {
    COUNTS[cpu][intid as usize].load(Ordering::Acquire)
}

/// Uses the GICv3 distributor at `gicd` and the redistributor region at
/// `gicr` of `gicr_size` bytes (from the device tree's GIC node).
pub fn init(gicd: usize, gicr: usize, gicr_size: usize) {
    GICD.store(gicd, Ordering::Release);
    GICR.store(gicr, Ordering::Release);
    GICR_SIZE.store(gicr_size, Ordering::Release);
    V2.store(false, Ordering::Release);
}

/// Uses the GICv2 distributor at `gicd` and CPU interface at `gicc`.
pub fn init_v2(gicd: usize, gicc: usize) {
    GICD.store(gicd, Ordering::Release);
    GICC.store(gicc, Ordering::Release);
    V2.store(true, Ordering::Release);
}

/// Whether the GIC is a GICv2.
pub fn is_v2() -> bool {
    V2.load(Ordering::Acquire)
}

fn gicc(offset: usize) -> usize {
    GICC.load(Ordering::Acquire) + offset
}

/// This vCPU's CPU-interface number on a GICv2: its index, as both Xen
/// and Oxen number a domain's vCPUs (MPIDR Aff0 = index for up to 8).
fn v2_cpu_bit(aff: u64) -> u32 {
    let index = (aff & 0xf) + ((aff >> 8) & 0xff) * 16;
    if index < 8 { 1 << index } else { 0 }
}

fn gicd(offset: usize) -> usize {
    GICD.load(Ordering::Acquire) + offset
}

/// Turns on the distributor's Group 1 forwarding (vCPU0, once).
pub fn enable_distributor() -> Result<(), Msg> {
    if is_v2() {
        // SAFETY: GICD is the distributor the device tree names; GICD_CTLR
        // is one of its registers. A GICv2 has no RWP to wait for.
        unsafe { mmio::write32(gicd(GICD_CTLR), V2_ENABLE) };
        return Ok(());
    }
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
    if is_v2() {
        return init_cpu_v2();
    }
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

/// [`init_cpu`] on a GICv2: the distributor's banked words for INTIDs 0-31
/// are this vCPU's, and the CPU interface is memory-mapped.
fn init_cpu_v2() -> Result<(), Msg> {
    // SAFETY: GICD and GICC are the distributor and CPU interface the
    // device tree names; every offset below is one of their registers, and
    // the words for INTIDs 0-31 are banked per vCPU.
    unsafe {
        mmio::write32(gicd(GICD_IGROUPR), 0);
        for n in 0..8 {
            mmio::write32(gicd(GICD_IPRIORITYR + 4 * n), PRIORITY * 0x0101_0101);
        }
        mmio::write32(gicd(GICD_ISENABLER), 0xffff | 1 << VTIMER_PPI);
        mmio::write32(gicc(GICC_PMR), 0xff);
        mmio::write32(gicc(GICC_BPR), 0);
        mmio::write32(gicc(GICC_CTLR), V2_ENABLE);
    }
    // SAFETY: as above; GICC_CTLR reads back.
    let ctlr = unsafe { mmio::read32(gicc(GICC_CTLR)) };
    if ctlr & V2_ENABLE == 0 {
        return Err(msg!(
            "GICC_CTLR reads {ctlr:#x} after enabling it: the CPU interface is not there"
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
    if is_v2() {
        // SAFETY: GICD_ISENABLER0 is banked per vCPU; writing a 1 only
        // enables that interrupt.
        unsafe { mmio::write32(gicd(GICD_ISENABLER), 1 << (intid % 32)) };
        return Ok(());
    }
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
        if is_v2() {
            // One byte per INTID, the mask of CPU interfaces it goes to.
            let word = gicd(GICD_ITARGETSR + n / 4 * 4);
            let t = mmio::read32(word) & !(0xff << shift) | v2_cpu_bit(aff) << shift;
            mmio::write32(word, t);
        } else {
            mmio::write64(gicd(GICD_IROUTER + n * 8), aff);
        }
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
    if is_v2() {
        write_sgir(SGIR_TO_LIST | v2_cpu_bit(aff) << 16 | intid & 0xf);
        return;
    }
    let aff0 = aff & 0xf;
    let aff1 = (aff >> 8) & 0xff;
    write_sgi1r(u64::from(intid & 0xf) << 24 | aff1 << 16 | 1 << aff0);
}

/// Sends SGI `intid` to every vCPU but this one (IRM = 1).
pub fn send_sgi_to_others(intid: u32) {
    if is_v2() {
        write_sgir(SGIR_TO_OTHERS | intid & 0xf);
        return;
    }
    write_sgi1r(1 << 40 | u64::from(intid & 0xf) << 24);
}

/// Writes GICD_SGIR (GICv2).
fn write_sgir(v: u32) {
    // SAFETY: GICD_SGIR of the distributor the device tree names;
    // generating an SGI only affects interrupt delivery.
    unsafe { mmio::write32(gicd(GICD_SGIR), v) };
}

/// Acknowledges the highest-priority pending interrupt; returns the value
/// to end it with (on a GICv2 an SGI's carries its sender).
fn acknowledge() -> u32 {
    if is_v2() {
        // SAFETY: reading GICC_IAR acknowledges the interrupt this handler
        // is about to deal with.
        return unsafe { mmio::read32(gicc(GICC_IAR)) };
    }
    let v: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges the interrupt this handler
    // is about to deal with.
    unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    (v & 0xff_ffff) as u32
}

fn end_of_interrupt(iar: u32) {
    if is_v2() {
        // SAFETY: GICC_EOIR with the value GICC_IAR gave drops its priority
        // and deactivates it (EOImode 0).
        unsafe { mmio::write32(gicc(GICC_EOIR), iar) };
        return;
    }
    let intid = iar;
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
    let iar = acknowledge();
    let intid = if is_v2() { iar & IAR_INTID_V2 } else { iar };
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
    end_of_interrupt(iar);
}
