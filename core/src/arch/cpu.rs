//! Small typed wrappers around CPU registers and instructions.

use core::arch::asm;

/// MPIDR_EL1 affinity fields (Aff3..Aff0), without the flag bits.
pub fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v & 0xff_00ff_ffff
}

/// The current exception level (0–3).
pub fn current_el() -> u64 {
    let v: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { asm!("mrs {}, CurrentEL", out(reg) v, options(nomem, nostack, preserves_flags)) };
    (v >> 2) & 3
}

/// This CPU's index in the host device tree's `/cpus`, kept in TPIDR_EL2.
pub fn index() -> usize {
    let v: u64;
    // SAFETY: TPIDR_EL2 is a scratch register Oxen owns.
    unsafe { asm!("mrs {}, tpidr_el2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v as usize
}

/// Records this CPU's index (once, at bring-up).
pub fn set_index(i: usize) {
    // SAFETY: TPIDR_EL2 is a scratch register Oxen owns; nothing else reads it.
    unsafe {
        asm!("msr tpidr_el2, {}", in(reg) i as u64, options(nomem, nostack, preserves_flags))
    };
}

/// ID_AA64MMFR0_EL1.PARange decoded into physical address bits.
pub fn pa_bits() -> u32 {
    let v: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe {
        asm!("mrs {}, id_aa64mmfr0_el1", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    match v & 0xf {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}

/// Counter frequency in Hz (CNTFRQ_EL0).
pub fn counter_frequency() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The physical counter (CNTPCT_EL0).
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading the counter has no side effects; the ISB orders it.
    unsafe {
        asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Waits for an event (another CPU's SEV, an interrupt, …).
/// Waits for an interrupt to become pending (with IRQs masked, it stays
/// pending: the CPU only wakes).
pub fn wfi() {
    // SAFETY: WFI only pauses this CPU.
    unsafe { asm!("wfi", options(nomem, nostack, preserves_flags)) };
}

pub fn wfe() {
    // SAFETY: WFE only pauses this CPU.
    unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
}

/// Wakes CPUs waiting in WFE.
pub fn sev() {
    // SAFETY: SEV only signals an event.
    unsafe { asm!("dsb ish", "sev", options(nostack, preserves_flags)) };
}

/// Stops this CPU for good: interrupts masked, waiting forever.
/// Waits for an interrupt with IRQs still masked, so an interrupt that
/// arrived before the call still ends the wait; then unmasks them briefly
/// to take whatever is pending, on this stack. The caller holds no lock an
/// interrupt handler may take.
pub fn wait_and_take_irqs() {
    // The IRQ vector saves the general registers but not FP/SIMD: its
    // handler is called like a C function, so the caller-saved registers
    // (SIMD ones included) are declared clobbered.
    // SAFETY: the IRQ vector handles interrupts on the current stack and
    // returns here; the clobbers cover what a handler may change.
    unsafe {
        core::arch::asm!(
            "wfi",
            "msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            clobber_abi("C"),
            options(nostack)
        )
    };
}

pub fn halt() -> ! {
    loop {
        // SAFETY: masking interrupts and waiting only affects this CPU.
        unsafe { asm!("msr daifset, #0xf", "wfi", options(nomem, nostack)) };
    }
}
