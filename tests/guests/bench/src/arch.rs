//! The instructions this guest needs beyond the common ones (re-exported
//! here): the exception level, and `yield`. Each wraps one instruction, so
//! the code above it is safe Rust.

use core::arch::asm;

pub use oxen_guest_common::arch::{hypercall, ms, smccc, ticks, ticks_per_second, wfi};

/// The exception level the guest runs at: 1 under a hypervisor, 2 when
/// QEMU started it directly with `virtualization=on`.
pub fn current_el() -> u64 {
    let v: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { asm!("mrs {}, CurrentEL", out(reg) v, options(nomem, nostack, preserves_flags)) };
    (v >> 2) & 3
}

/// The physical counter: time since the machine started (both hypervisors
/// let EL1 read it; only the virtual one is offset per domain).
pub fn physical_ticks() -> u64 {
    let v: u64;
    // SAFETY: reading the counter has no side effects.
    unsafe {
        asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// A `yield` hint. The hypervisors do not trap it, but QEMU without
/// multi-threaded TCG (as under `-icount`) moves on to its next CPU, so a
/// vCPU that polls shared memory lets the CPU that will write it run.
pub fn yield_now() {
    // SAFETY: a hint with no architectural effect.
    unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// A full data memory barrier: the ring's data before its index, and the
/// index before the data it publishes.
pub fn barrier() {
    // SAFETY: a barrier has no effect beyond ordering memory accesses.
    unsafe { asm!("dmb sy", options(nostack, preserves_flags)) };
}
