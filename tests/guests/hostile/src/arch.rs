//! The instructions the guest needs beyond the common ones (re-exported
//! here): a barrier and the EL1 virtual timer. Each wraps one instruction.

use core::arch::asm;

pub use oxen_guest_common::arch::{ms, ticks, ticks_per_second};

/// A full data memory barrier: data before the index or flag that
/// publishes it.
pub fn barrier() {
    // SAFETY: a barrier has no effect beyond ordering memory accesses.
    unsafe { asm!("dmb sy", options(nostack, preserves_flags)) };
}

/// Arms the virtual timer to fire `ticks` from now (ENABLE, IMASK clear),
/// so that a wait for an interrupt always ends.
pub fn timer_arm(ticks: u64) {
    // SAFETY: programming this vCPU's own timer has no effect on memory.
    unsafe {
        asm!(
            "msr cntv_tval_el0, {t}",
            "msr cntv_ctl_el0, {c}",
            "isb",
            t = in(reg) ticks, c = in(reg) 1u64,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Turns the virtual timer off.
pub fn timer_stop() {
    // SAFETY: as for `timer_arm`.
    unsafe {
        asm!(
            "msr cntv_ctl_el0, xzr",
            "isb",
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// CNTV_CTL_EL0: bit 2 (ISTATUS) says the timer condition is met.
pub fn timer_ctl() -> u64 {
    let v: u64;
    // SAFETY: reading the timer control has no side effects.
    unsafe { asm!("mrs {}, cntv_ctl_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}
