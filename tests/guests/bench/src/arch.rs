//! The few instructions the guest needs: the exception level, the virtual
//! counter, the SMCCC and Xen hypercall conduits, `yield`, and
//! device-register access. Each wraps one instruction, so the code above
//! it is safe Rust.

use core::arch::asm;

/// The exception level the guest runs at: 1 under a hypervisor, 2 when
/// QEMU started it directly with `virtualization=on`.
pub fn current_el() -> u64 {
    let v: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { asm!("mrs {}, CurrentEL", out(reg) v, options(nomem, nostack, preserves_flags)) };
    (v >> 2) & 3
}

/// The virtual counter. The `isb` keeps the read from being taken early,
/// so a measured interval never starts before the code before it ended.
pub fn ticks() -> u64 {
    let v: u64;
    // SAFETY: reading the counter has no side effects.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// The counter's frequency in Hz (QEMU's 62.5 MHz if the register says 0).
pub fn ticks_per_second() -> u64 {
    let v: u64;
    // SAFETY: reading the frequency register has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    if v == 0 { 62_500_000 } else { v }
}

/// `ms` milliseconds in counter ticks.
pub fn ms(ms: u64) -> u64 {
    ticks_per_second() / 1000 * ms
}

/// A `yield` hint. The hypervisors do not trap it, but QEMU without
/// multi-threaded TCG (as under `-icount`) moves on to its next CPU, so a
/// vCPU that polls shared memory lets the CPU that will write it run.
pub fn yield_now() {
    // SAFETY: a hint with no architectural effect.
    unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// Waits for an interrupt (returns at once if one is pending, even masked).
pub fn wfi() {
    // SAFETY: WFI only suspends this CPU.
    unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// The SMC Calling Convention through `HVC #0` (the conduit the guest
/// tree's `/psci` node names): function `fid`, arguments in x1–x3, result
/// in x0.
pub fn smccc(fid: u32, a1: u64, a2: u64, a3: u64) -> u64 {
    let r: u64;
    // SAFETY: the hypervisor implements the call; a caller may clobber
    // x0–x17 (SMCCC), which the C ABI clobber covers.
    unsafe {
        asm!(
            "hvc #0",
            inlateout("x0") u64::from(fid) => r,
            in("x1") a1, in("x2") a2, in("x3") a3,
            clobber_abi("C"),
            options(nostack)
        )
    };
    r
}

/// A Xen hypercall: `HVC #0xEA1` with the number in x16 and up to three
/// arguments; the result is x0 (a negative errno on failure).
///
/// # Safety
///
/// Any argument the call reads as a guest address must point at memory of
/// this guest that holds the structure the call expects and that Rust
/// lets the hypervisor read and write for the length of the call.
pub unsafe fn hypercall(nr: u64, a0: u64, a1: u64, a2: u64) -> i64 {
    let r: u64;
    // SAFETY: the caller's contract covers the memory the call touches;
    // without `nomem`, the compiler assumes the call reads and writes
    // memory. The hypervisor may clobber x16 and the argument registers,
    // which the C ABI clobber covers.
    unsafe {
        asm!(
            "hvc #0xea1",
            inlateout("x0") a0 => r,
            in("x1") a1, in("x2") a2,
            in("x16") nr,
            clobber_abi("C"),
            options(nostack)
        )
    };
    r as i64
}

/// 32-bit device-register access, one plain load or store each, so the
/// hypervisor's trap has a full syndrome to emulate from.
pub mod mmio {
    use core::arch::asm;

    /// # Safety
    ///
    /// `addr` is a 4-byte aligned register of a device this guest owns,
    /// never RAM that Rust code uses.
    pub unsafe fn read32(addr: usize) -> u32 {
        let v: u32;
        // SAFETY: the caller's contract.
        unsafe {
            asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, preserves_flags))
        };
        v
    }

    /// # Safety
    ///
    /// As for [`read32`].
    pub unsafe fn write32(addr: usize, v: u32) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack, preserves_flags))
        };
    }
}
