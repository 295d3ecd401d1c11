//! The few instructions the guest needs: system registers, the SMCCC and
//! Xen hypercall conduits, the virtual counter, and device-register access.
//! Each wraps one instruction, so the code above it is safe Rust.

use core::arch::asm;

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

/// Waits for an interrupt (returns at once if one is pending, even masked).
pub fn wfi() {
    // SAFETY: WFI only suspends this vCPU.
    unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// The virtual counter.
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

/// The SMC Calling Convention through `HVC #0` (the conduit the guest
/// tree's `/psci` node names): function `fid`, arguments in x1–x3, result
/// in x0.
pub fn smccc(fid: u32, a1: u64, a2: u64, a3: u64) -> u64 {
    let r: u64;
    // SAFETY: the hypervisor implements the call; a caller may clobber
    // x0–x17 (SMCCC), which the C ABI clobber covers. CPU_ON entry points
    // passed here are this guest's own code.
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
/// arguments; the result is x0 (a negative errno on failure). Pointer
/// arguments are guest addresses (the MMU is off: virtual = physical) of
/// buffers the caller owns, which the hypervisor may read and write while
/// the call runs, or addresses the case expects it to refuse.
pub fn hypercall(nr: u64, a: [u64; 5]) -> i64 {
    let r: u64;
    // SAFETY: the hypervisor only touches memory the arguments point at,
    // which callers own for the duration of the call (the asm is not
    // `nomem`, so the compiler assumes that memory may change); it may
    // clobber x16 and the argument registers, which the C ABI clobber
    // covers.
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
    /// `addr` is a 4-byte aligned register of a device this guest owns (or
    /// an address the running case expects to fault), never RAM that Rust
    /// code uses.
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

    /// # Safety
    ///
    /// As for [`read32`], 8-byte aligned.
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
    pub unsafe fn write64(addr: usize, v: u64) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack, preserves_flags))
        };
    }
}
