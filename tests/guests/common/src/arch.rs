//! The instructions every guest needs: the virtual counter, WFI, the SMCCC
//! and Xen hypercall conduits, and device-register access. Each wraps one
//! instruction, so the code above it is safe Rust; a guest adds its own
//! next to these. They are `#[inline]` so that a guest's timed loops and
//! register accesses compile as if the wrappers were its own.

use core::arch::asm;

/// The virtual counter. The `isb` keeps the read from being taken early,
/// so a measured interval never starts before the code before it ended.
#[inline]
pub fn ticks() -> u64 {
    let v: u64;
    // SAFETY: reading the counter has no side effects.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// The counter's frequency in Hz (QEMU's 62.5 MHz if the register says 0).
#[inline]
pub fn ticks_per_second() -> u64 {
    let v: u64;
    // SAFETY: reading the frequency register has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    if v == 0 { 62_500_000 } else { v }
}

/// `ms` milliseconds in counter ticks.
#[inline]
pub fn ms(ms: u64) -> u64 {
    ticks_per_second() / 1000 * ms
}

/// Waits for an interrupt (returns at once if one is pending, even masked).
#[inline]
pub fn wfi() {
    // SAFETY: WFI only suspends this CPU.
    unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// The SMC Calling Convention through `HVC #0` (the conduit the guest
/// tree's `/psci` node names): function `fid`, arguments in x1–x3, result
/// in x0.
#[inline]
pub fn smccc(fid: u32, a1: u64, a2: u64, a3: u64) -> u64 {
    let r: u64;
    // SAFETY: the hypervisor implements the call; a caller may clobber
    // x0–x17 (SMCCC), which the C ABI clobber covers. CPU_ON entry points
    // the guests pass here are their own code.
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

/// A Xen hypercall: `HVC #0xEA1` with the number in x16 and up to five
/// arguments in x0–x4; the result is x0 (a negative errno on failure).
/// Pointer arguments are guest addresses: the MMU is off, so virtual is
/// physical.
///
/// # Safety
///
/// Any argument the call reads as a guest address either points at memory
/// of this guest that holds the structure the call expects and that Rust
/// lets the hypervisor read and write for the length of the call, or is
/// one where the guest has no RAM, which the hypervisor must refuse.
#[inline]
pub unsafe fn hypercall(nr: u64, a: [u64; 5]) -> i64 {
    let r: u64;
    // SAFETY: the caller's contract covers the memory the call touches;
    // without `nomem`, the compiler assumes the call reads and writes
    // memory. The hypervisor may clobber x16 and the argument registers,
    // which the C ABI clobber covers.
    unsafe {
        asm!(
            "hvc #0xea1",
            inlateout("x0") a[0] => r,
            in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4],
            in("x16") nr,
            clobber_abi("C"),
            options(nostack)
        )
    };
    r as i64
}

/// 32- and 64-bit device-register access, one plain load or store each, so
/// the hypervisor's trap has a full syndrome to emulate from.
pub mod mmio {
    use core::arch::asm;

    /// # Safety
    ///
    /// `addr` is a 4-byte aligned register of a device this guest owns, or
    /// an address where the caller expects the access to fault; never RAM
    /// that Rust code uses.
    #[inline]
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
    #[inline]
    pub unsafe fn write32(addr: usize, v: u32) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack, preserves_flags))
        };
    }

    /// # Safety
    ///
    /// As for [`read32`], 8-byte aligned.
    #[inline]
    pub unsafe fn read64(addr: usize) -> u64 {
        let v: u64;
        // SAFETY: the caller's contract.
        unsafe {
            asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, preserves_flags))
        };
        v
    }

    /// # Safety
    ///
    /// As for [`read32`], 8-byte aligned.
    #[inline]
    pub unsafe fn write64(addr: usize, v: u64) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack, preserves_flags))
        };
    }
}
