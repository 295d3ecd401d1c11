//! Interrupt latency: how long from the moment an interrupt is due until
//! the guest's IRQ handler runs, read with the virtual counter.
//!
//! - `timer`: vCPU 0 arms its virtual timer (`CNTV_CVAL_EL0`) a little
//!   ahead and waits; the handler reads `CNTVCT_EL0` at entry (the vector's
//!   second instruction, [`crate::guest_irq`]), and the latency is that
//!   minus `CNTV_CVAL_EL0`.
//! - `sgi`: vCPU 0 reads the counter and sends SGI [`SGI`] to vCPU 1
//!   (`ICC_SGI1R_EL1`, which both hypervisors trap); vCPU 1's handler
//!   takes its entry time minus that.
//!
//! Each is measured twice: with the waiting vCPU spinning with IRQs open
//! (the interrupt reaches a running vCPU) and with it in WFI (the
//! hypervisor must wake it). The GIC code is the abi guest's
//! (`tests/guests/abi/src/gic.rs`), cut to what these two need.

use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use oxen_guest_common::dt::Dt;
use oxen_guest_common::msg;
use oxen_guest_common::msg::Msg;
use oxen_guest_common::psci;

use oxen_guest_common::arch::mmio;

use crate::arch;

/// The virtual timer's PPI.
const VTIMER_PPI: u32 = 27;
/// The SGI vCPU 0 sends vCPU 1.
const SGI: u32 = 1;
/// Rounds before the timed ones.
const WARMUP: u32 = 10;

const GICD_CTLR: usize = 0x0000;
const CTLR_ENABLE_G1: u32 = 1 << 0;
const CTLR_ENABLE_G1A: u32 = 1 << 1;
const CTLR_ARE_NS: u32 = 1 << 4;
const CTLR_RWP: u32 = 1 << 31;
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
/// Every SGI and PPI gets this priority, above the mask.
const PRIORITY: u32 = 0xa0;

static GICD: AtomicUsize = AtomicUsize::new(0);
static GICR: AtomicUsize = AtomicUsize::new(0);
static GICR_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The MMU is off, so memory is Device memory: plain loads and stores are
/// coherent between vCPUs, exclusives are not to be relied on. Each of
/// these has one writer.
///
/// Interrupts handled (written by the handler's vCPU).
static TAKEN: AtomicU32 = AtomicU32::new(0);
/// The last interrupt's latency in ticks (written by the handler's vCPU).
static LATENCY: AtomicU64 = AtomicU64::new(0);
/// When vCPU 0 sent the SGI (written by vCPU 0).
static SENT: AtomicU64 = AtomicU64::new(0);
/// Whether vCPU 1 waits spinning (1) or in WFI (0) (written by vCPU 0).
static SPIN: AtomicU32 = AtomicU32::new(0);
/// vCPU 1 is up and its GIC interface enabled (written by vCPU 1).
static SECONDARY_UP: AtomicU32 = AtomicU32::new(0);

/// vCPU 1's stack (only the entry code names it).
#[unsafe(no_mangle)]
static mut BENCH_SECONDARY_STACK: oxen_guest_common::boot::Stack =
    oxen_guest_common::boot::Stack::new();

core::arch::global_asm!(
    r#"
    /* PSCI CPU_ON target for vCPU 1: FP/SIMD on, its stack, the vectors. */
    .section .text.bench_secondary_entry, "ax"
    .balign 4
    .global bench_secondary_entry
bench_secondary_entry:
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb
    ldr     x1, =BENCH_SECONDARY_STACK
    add     x1, x1, #{stack_size}
    mov     sp, x1
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    isb
    mov     x29, xzr
    mov     x30, xzr
    bl      bench_secondary_main
1:  wfi
    b       1b
"#,
    stack_size = const oxen_guest_common::boot::STACK_SIZE,
);

/// Takes the GIC's addresses from the guest device tree (the first node
/// with `interrupt-controller`: distributor, then redistributor region).
fn gic_from_dt(dt: &Dt) -> Result<(), Msg> {
    let n = dt
        .find(|n| n.depth == 1 && n.prop("interrupt-controller").is_some())?
        .ok_or_else(|| msg!("no interrupt-controller node in the device tree"))?;
    let reg = n
        .cells("reg")
        .filter(|r| r.len() >= 8)
        .ok_or_else(|| msg!("/{}: reg has fewer than 8 cells", n.name()))?;
    GICD.store(reg.num(0, 2) as usize, Ordering::Relaxed);
    GICR.store(reg.num(4, 2) as usize, Ordering::Relaxed);
    GICR_SIZE.store(reg.num(6, 2) as usize, Ordering::Relaxed);
    Ok(())
}

/// Turns on the distributor's Group 1 forwarding (vCPU 0, once).
fn enable_distributor() -> Result<(), Msg> {
    let ctlr = GICD.load(Ordering::Relaxed) + GICD_CTLR;
    // SAFETY: GICD_CTLR of the distributor the device tree names.
    unsafe { mmio::write32(ctlr, CTLR_ARE_NS | CTLR_ENABLE_G1A | CTLR_ENABLE_G1) };
    let settled = wait_for(arch::ms(1000), || {
        // SAFETY: as above.
        let v = unsafe { mmio::read32(ctlr) };
        v & CTLR_RWP == 0
    });
    if !settled {
        return Err(msg!("GICD_CTLR.RWP stayed set for 1 s"));
    }
    Ok(())
}

/// The redistributor frame whose GICR_TYPER affinity is this vCPU's.
fn redistributor() -> Result<usize, Msg> {
    let m = mpidr();
    let aff = ((m >> 32) & 0xff) << 24 | (m & 0xff_ffff);
    let (base, size) = (
        GICR.load(Ordering::Relaxed),
        GICR_SIZE.load(Ordering::Relaxed),
    );
    let mut at = 0;
    while at + GICR_STRIDE <= size {
        // SAFETY: a frame inside the redistributor region the device tree
        // names; GICR_TYPER is its 64-bit ID register.
        let typer = unsafe { mmio::read64(base + at + GICR_TYPER) };
        if typer >> 32 == aff {
            return Ok(base + at);
        }
        if typer & TYPER_LAST != 0 {
            break;
        }
        at += GICR_STRIDE;
    }
    Err(msg!("no redistributor has affinity {aff:#x}"))
}

/// Wakes this vCPU's redistributor, puts its SGIs and PPIs in Group 1 above
/// the priority mask, enables SGI [`SGI`] and the virtual timer's PPI, and
/// turns on the system-register CPU interface.
fn init_cpu() -> Result<(), Msg> {
    let rd = redistributor()?;
    // SAFETY: `rd` is this vCPU's redistributor frame; every offset below
    // is one of its registers.
    unsafe {
        let waker = mmio::read32(rd + GICR_WAKER);
        mmio::write32(rd + GICR_WAKER, waker & !WAKER_PROCESSOR_SLEEP);
    }
    // SAFETY: as above.
    let awake = wait_for(arch::ms(1000), || unsafe {
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
        mmio::write32(rd + GICR_ISENABLER0, 1 << SGI | 1 << VTIMER_PPI);
    }
    let sre: u64;
    // SAFETY: the CPU interface registers only affect interrupt delivery to
    // this vCPU, whose vectors are installed.
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
    if sre & 1 == 0 {
        return Err(msg!(
            "ICC_SRE_EL1.SRE reads 0: no system-register interface"
        ));
    }
    Ok(())
}

fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn irq_enable() {
    // SAFETY: the vectors are installed before any source is enabled, and
    // the IRQ entry preserves every register the interrupted code uses.
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack, preserves_flags)) };
}

fn irq_disable() {
    // SAFETY: masking IRQs has no effect on memory.
    unsafe { asm!("msr daifset, #2", "isb", options(nostack, preserves_flags)) };
}

/// Arms the virtual timer to fire when the virtual counter reaches `cval`.
fn timer_arm(cval: u64) {
    // SAFETY: programming this vCPU's own timer has no effect on memory.
    unsafe {
        asm!(
            "msr cntv_cval_el0, {v}",
            "msr cntv_ctl_el0, {c}",
            "isb",
            v = in(reg) cval, c = in(reg) 1u64,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Turns the timer off (its interrupt goes low) and returns its CVAL.
fn timer_stop() -> u64 {
    let cval: u64;
    // SAFETY: as for `timer_arm`.
    unsafe {
        asm!(
            "mrs {v}, cntv_cval_el0",
            "msr cntv_ctl_el0, xzr",
            "isb",
            v = out(reg) cval,
            options(nomem, nostack, preserves_flags)
        )
    };
    cval
}

/// Sends SGI [`SGI`] to the vCPU with Aff0 = `aff0` (Aff1-3 zero).
fn send_sgi(aff0: u64) {
    let v = u64::from(SGI) << 24 | 1 << aff0;
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

/// The IRQ vector's handler, `now` being the counter as the vector's
/// second instruction read it: acknowledges one interrupt, records its
/// latency and ends it.
pub fn handle(now: u64) {
    let iar: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges the interrupt handled here.
    unsafe {
        asm!("mrs {}, S3_0_C12_C12_0", out(reg) iar, options(nomem, nostack, preserves_flags))
    };
    let intid = (iar & 0xff_ffff) as u32;
    let due = match intid {
        VTIMER_PPI => timer_stop(),
        SGI => SENT.load(Ordering::Acquire),
        _ => return, // spurious (1020-1023), or nothing this guest enabled
    };
    LATENCY.store(now.wrapping_sub(due), Ordering::Relaxed);
    TAKEN.store(TAKEN.load(Ordering::Relaxed) + 1, Ordering::Release);
    // SAFETY: ICC_EOIR1_EL1 with the INTID just acknowledged drops its
    // priority and deactivates it (EOImode 0).
    unsafe {
        asm!("msr S3_0_C12_C12_1, {}", in(reg) u64::from(intid), options(nomem, nostack, preserves_flags))
    };
}

/// Polls `done` until it holds or `timeout` ticks pass; whether it held.
fn wait_for(timeout: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = arch::ticks();
    while !done() {
        if arch::ticks().wrapping_sub(start) > timeout {
            return done();
        }
        // Under -icount QEMU runs the CPUs in turn; `yield` hands over.
        arch::yield_now();
    }
    true
}

/// Waits until the handler has run `n` times in all: spinning with IRQs
/// open, or in WFI with them masked (opened after each wake, so an
/// interrupt cannot slip in between the check and the WFI, as in Linux's
/// idle loop). A second's worth of ticks without it fails.
fn wait_taken(n: u32, spin: bool) -> Result<(), Msg> {
    let start = arch::ticks();
    let limit = arch::ms(1000);
    loop {
        if spin {
            irq_enable();
        } else {
            irq_disable();
        }
        if TAKEN.load(Ordering::Acquire) >= n {
            irq_enable();
            return Ok(());
        }
        if arch::ticks().wrapping_sub(start) > limit {
            irq_enable();
            return Err(msg!(
                "no interrupt within 1 s (handled {} of {n})",
                TAKEN.load(Ordering::Acquire)
            ));
        }
        if spin {
            arch::yield_now();
        } else {
            arch::wfi();
            irq_enable();
        }
    }
}

/// Sets up the GIC for vCPU 0.
fn setup(dt: &Dt) -> Result<(), Msg> {
    if arch::current_el() != 1 {
        return Err(msg!(
            "interrupt latency needs a hypervisor (running at EL2)"
        ));
    }
    gic_from_dt(dt)?;
    enable_distributor()?;
    init_cpu()?;
    irq_enable();
    Ok(())
}

/// `bench=timer`: `n` timer interrupts `lead` ticks after arming, spinning
/// then in WFI; the total latency of each set is reported.
pub fn timer(dt: &Dt, n: u32, report: impl Fn(&str, u32, u64)) -> Result<(), Msg> {
    setup(dt)?;
    // Far enough ahead that arming and reaching the wait take less.
    let lead = arch::ticks_per_second() / 5000;
    for (name, spin) in [("irq.timer", true), ("irq.timer_wfi", false)] {
        let mut total = 0;
        for round in 0..WARMUP + n {
            let before = TAKEN.load(Ordering::Acquire);
            timer_arm(arch::ticks() + lead);
            wait_taken(before + 1, spin).map_err(|e| msg!("{name}: {e}"))?;
            if round >= WARMUP {
                total += LATENCY.load(Ordering::Relaxed);
            }
        }
        report(name, n, total);
    }
    Ok(())
}

/// `bench=sgi`: starts vCPU 1, then `n` SGIs to it while it spins, and `n`
/// while it waits in WFI.
pub fn sgi(dt: &Dt, n: u32, report: impl Fn(&str, u32, u64)) -> Result<(), Msg> {
    setup(dt)?;
    unsafe extern "C" {
        fn bench_secondary_entry();
    }
    let entry = bench_secondary_entry as *const () as usize as u64;
    let r = psci::cpu_on(1, entry, 0);
    if r != psci::SUCCESS {
        return Err(msg!("PSCI CPU_ON of vCPU 1 returned {r}"));
    }
    if !wait_for(arch::ms(3000), || SECONDARY_UP.load(Ordering::Acquire) != 0) {
        return Err(msg!("vCPU 1 did not come up within 3 s"));
    }
    if SECONDARY_UP.load(Ordering::Acquire) != 1 {
        return Err(msg!("vCPU 1 could not set up its GIC interface"));
    }
    for (name, spin) in [("irq.sgi", true), ("irq.sgi_wfi", false)] {
        SPIN.store(u32::from(spin), Ordering::Release);
        let mut total = 0;
        for round in 0..WARMUP + n {
            let before = TAKEN.load(Ordering::Acquire);
            // Let vCPU 1 settle into its wait (in WFI: blocked in the
            // hypervisor) before the next SGI.
            let settle = arch::ticks() + arch::ticks_per_second() / 5000;
            while arch::ticks() < settle {
                arch::yield_now();
            }
            SENT.store(arch::ticks(), Ordering::Release);
            send_sgi(1);
            if !wait_for(arch::ms(1000), || TAKEN.load(Ordering::Acquire) > before) {
                return Err(msg!("{name}: vCPU 1 did not take SGI {SGI} within 1 s"));
            }
            if round >= WARMUP {
                total += LATENCY.load(Ordering::Relaxed);
            }
        }
        report(name, n, total);
    }
    Ok(())
}

/// vCPU 1 after its entry code: its GIC interface, then waiting for SGIs
/// forever, spinning or in WFI as vCPU 0 says.
#[unsafe(no_mangle)]
extern "C" fn bench_secondary_main() -> ! {
    let ok = init_cpu().is_ok();
    SECONDARY_UP.store(if ok { 1 } else { 2 }, Ordering::Release);
    irq_enable();
    loop {
        if SPIN.load(Ordering::Acquire) != 0 {
            arch::yield_now();
        } else {
            // IRQs stay open: the handler does all the work, and a WFI
            // that an interrupt ends is taken at once.
            arch::wfi();
        }
    }
}
