//! The instructions this guest needs beyond the common ones (re-exported
//! here): system registers, IRQ masking, the virtual timer, and the Xen
//! hypercall conduit as the cases call it. Each wraps one instruction, so
//! the code above it is safe Rust.

use core::arch::asm;

pub use oxen_guest_common::arch::{mmio, ms, smccc, ticks, ticks_per_second, wfi};

/// MPIDR_EL1: the affinity the hypervisor gave this vCPU.
pub fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// This vCPU's index, as set by [`set_cpu_index`] at entry.
pub fn cpu_index() -> usize {
    let v: u64;
    // SAFETY: TPIDR_EL1 is a scratch register only this guest uses.
    unsafe { asm!("mrs {}, tpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v as usize
}

/// Records this vCPU's index for [`cpu_index`] (exception handlers use it).
pub fn set_cpu_index(i: usize) {
    // SAFETY: TPIDR_EL1 is a scratch register only this guest uses.
    unsafe {
        asm!("msr tpidr_el1, {}", in(reg) i as u64, options(nomem, nostack, preserves_flags))
    };
}

/// The syndrome, fault address and return address of the exception being
/// handled.
pub fn exception_regs() -> (u64, u64, u64) {
    let (esr, far, elr): (u64, u64, u64);
    // SAFETY: reading the EL1 exception registers has no side effects.
    unsafe {
        asm!(
            "mrs {0}, esr_el1",
            "mrs {1}, far_el1",
            "mrs {2}, elr_el1",
            out(reg) esr, out(reg) far, out(reg) elr,
            options(nomem, nostack, preserves_flags)
        )
    };
    (esr, far, elr)
}

/// Makes the exception being handled return to `pc`.
pub fn set_return_address(pc: u64) {
    // SAFETY: only called from a synchronous-exception handler, to resume
    // after an instruction the running case placed there to fault.
    unsafe { asm!("msr elr_el1, {}", in(reg) pc, options(nomem, nostack, preserves_flags)) };
}

/// Lets IRQs in.
pub fn irq_enable() {
    // SAFETY: the vector table is installed before any IRQ source is
    // enabled, and its handler preserves every register.
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack, preserves_flags)) };
}

/// Keeps IRQs out.
pub fn irq_disable() {
    // SAFETY: masking IRQs has no effect on memory.
    unsafe { asm!("msr daifset, #2", "isb", options(nostack, preserves_flags)) };
}

/// Polls `done` until it holds or `timeout` ticks pass; whether it held.
pub fn wait_for(timeout: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = ticks();
    loop {
        if done() {
            return true;
        }
        if ticks().wrapping_sub(start) > timeout {
            return done();
        }
        core::hint::spin_loop();
    }
}

/// The EL1 virtual timer.
pub mod vtimer {
    use core::arch::asm;

    /// CNTV_CTL_EL0.ENABLE (IMASK and ISTATUS clear).
    const ENABLE: u64 = 1 << 0;

    /// Fires after `ticks` counter ticks.
    pub fn arm(ticks: u64) {
        // SAFETY: programming this vCPU's own timer has no effect on memory.
        unsafe {
            asm!(
                "msr cntv_tval_el0, {t}",
                "msr cntv_ctl_el0, {c}",
                "isb",
                t = in(reg) ticks, c = in(reg) ENABLE,
                options(nomem, nostack, preserves_flags)
            )
        };
    }

    /// Turns the timer off.
    pub fn stop() {
        // SAFETY: as for `arm`.
        unsafe {
            asm!(
                "msr cntv_ctl_el0, xzr",
                "isb",
                options(nomem, nostack, preserves_flags)
            )
        };
    }

    pub fn ctl() -> u64 {
        let v: u64;
        // SAFETY: reading the timer control has no side effects.
        unsafe {
            asm!("mrs {}, cntv_ctl_el0", out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }
}

/// A Xen hypercall (see [`oxen_guest_common::arch::hypercall`]), safe to
/// call: pointer arguments are guest addresses of buffers the caller owns,
/// which the hypervisor may read and write while the call runs, or
/// addresses the case expects it to refuse.
pub fn hypercall(nr: u64, a: [u64; 5]) -> i64 {
    // SAFETY: the hypervisor only touches memory the arguments point at,
    // which callers own for the duration of the call (the asm is not
    // `nomem`, so the compiler assumes that memory may change), or refuses
    // an address where the guest has no RAM.
    unsafe { oxen_guest_common::arch::hypercall(nr, a) }
}
