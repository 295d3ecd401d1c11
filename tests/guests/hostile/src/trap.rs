//! The guest's vectors, which survive what the hypervisor injects: every
//! instruction that may fault is *armed* (its address stored first) and
//! followed by a `nop`; the synchronous handler counts the exception by
//! class and resumes at that `nop`, so the guest goes on whether the
//! return address pointed at the instruction or after it. SErrors are
//! counted and returned from. An exception anywhere else is a stray: the
//! guest can no longer trust itself, and the run fails.
//!
//! The instructions themselves live here too, one armed stub each.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

global_asm!(
    r#"
    .section .text.vectors, "ax"
    .balign 0x800
    .global guest_vectors
guest_vectors:
    .irp kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 0x80
    sub     sp, sp, #256
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       guest_vector_common
    .endr

guest_vector_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    bl      guest_exception
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #256
    eret
"#
);

/// The armed instruction's address; 0 when none is.
static ARMED: AtomicU64 = AtomicU64::new(0);
/// Synchronous exceptions taken at an armed instruction, by class (EC).
static BY_CLASS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
static SERRORS: AtomicU64 = AtomicU64::new(0);
static IRQS: AtomicU64 = AtomicU64::new(0);
/// Every exception the guest survived: the per-call outcome compares it.
static TOTAL: AtomicU64 = AtomicU64::new(0);
static LAST_FAR: AtomicU64 = AtomicU64::new(0);
static LAST_ESR: AtomicU64 = AtomicU64::new(0);
/// The first exception that was not at an armed instruction.
static STRAY_ESR: AtomicU64 = AtomicU64::new(0);
static STRAY_ELR: AtomicU64 = AtomicU64::new(0);
static STRAYS: AtomicU64 = AtomicU64::new(0);

fn regs() -> (u64, u64, u64) {
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

/// Entered from every vector with the table entry's index.
#[unsafe(no_mangle)]
extern "C" fn guest_exception(kind: u64) {
    let (esr, far, elr) = regs();
    TOTAL.fetch_add(1, Ordering::Relaxed);
    match kind {
        // Synchronous, from this EL (either stack pointer).
        0 | 4 => {
            let at = ARMED.load(Ordering::Relaxed);
            if at != 0 && (elr == at || elr == at + 4) {
                BY_CLASS[((esr >> 26) & 0x3f) as usize].fetch_add(1, Ordering::Relaxed);
                LAST_ESR.store(esr, Ordering::Relaxed);
                LAST_FAR.store(far, Ordering::Relaxed);
                // SAFETY: resumes at the `nop` that follows every armed
                // instruction; the handler restores every register.
                unsafe {
                    asm!("msr elr_el1, {}", in(reg) at + 4, options(nomem, nostack, preserves_flags))
                };
                return;
            }
            stray(esr, elr);
        }
        1 | 5 => {
            // IRQs stay masked; one can only come if the hypervisor let it.
            IRQS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: returning with PSTATE.I set in the saved state keeps
            // the interrupt out; it changes nothing else.
            unsafe {
                asm!(
                    "mrs {t}, spsr_el1",
                    "orr {t}, {t}, #0x80",
                    "msr spsr_el1, {t}",
                    t = out(reg) _,
                    options(nomem, nostack)
                )
            };
        }
        3 | 7 => {
            SERRORS.fetch_add(1, Ordering::Relaxed);
        }
        _ => stray(esr, elr),
    }
}

fn stray(esr: u64, elr: u64) {
    if STRAYS.fetch_add(1, Ordering::Relaxed) == 0 {
        STRAY_ESR.store(esr, Ordering::Relaxed);
        STRAY_ELR.store(elr, Ordering::Relaxed);
    }
    crate::report::fatal(oxen_guest_common::msg!(
        "an exception the guest did not arm: ESR_EL1 {esr:#x}, ELR_EL1 {elr:#x}"
    ));
}

/// Exceptions survived so far (synchronous at armed instructions, SErrors,
/// IRQs).
pub fn total() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// The FAR and ESR of the last armed exception.
pub fn last() -> (u64, u64) {
    (
        LAST_FAR.load(Ordering::Relaxed),
        LAST_ESR.load(Ordering::Relaxed),
    )
}

/// Armed exceptions by class, SErrors and IRQs.
pub fn counts() -> ([u64; 64], u64, u64) {
    let mut c = [0; 64];
    for (i, v) in BY_CLASS.iter().enumerate() {
        c[i] = v.load(Ordering::Relaxed);
    }
    (
        c,
        SERRORS.load(Ordering::Relaxed),
        IRQS.load(Ordering::Relaxed),
    )
}

/// Runs `$insn` armed: its address is stored first, a `nop` follows, and
/// the operands are the caller's. x9 and x10 are taken for the arming.
macro_rules! armed {
    ($insn:expr $(, $($op:tt)*)?) => {
        // SAFETY: the instruction is armed, so any exception it takes
        // resumes after it; callers pass addresses the guest does not
        // use for Rust data (scratch, or where it has no RAM), and what
        // it computes is only counted.
        unsafe {
            asm!(
                "adr x9, 2f",
                "str x9, [x10]",
                concat!("2: ", $insn),
                "nop",
                "str xzr, [x10]",
                out("x9") _,
                inout("x10") ARMED.as_ptr() => _,
                $($($op)*)?
            )
        }
    };
}

/// A Xen hypercall, armed (an undefined one injects an exception).
pub fn hypercall(nr: u64, a: [u64; 5]) -> i64 {
    let r: u64;
    armed!(
        "hvc #0xea1",
        inlateout("x0") a[0] => r,
        inlateout("x1") a[1] => _,
        inlateout("x2") a[2] => _,
        inlateout("x3") a[3] => _,
        inlateout("x4") a[4] => _,
        inlateout("x16") nr => _,
        clobber_abi("C"),
        options(nostack)
    );
    r as i64
}

/// An SMCCC call through `HVC #0` or `SMC #0`; x0 on return.
pub fn smccc(smc: bool, fid: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let r: u64;
    if smc {
        armed!(
            "smc #0",
            inlateout("x0") fid => r,
            inlateout("x1") a1 => _, inlateout("x2") a2 => _, inlateout("x3") a3 => _,
            clobber_abi("C"),
            options(nostack)
        );
    } else {
        armed!(
            "hvc #0",
            inlateout("x0") fid => r,
            inlateout("x1") a1 => _, inlateout("x2") a2 => _, inlateout("x3") a3 => _,
            clobber_abi("C"),
            options(nostack)
        );
    }
    r
}

/// An HVC with an immediate neither PSCI's nor Xen's.
pub fn hvc_other(which: u64) {
    match which % 3 {
        0 => armed!("hvc #1", options(nostack)),
        1 => armed!("hvc #0xffff", options(nostack)),
        _ => armed!("hvc #0xea0", options(nostack)),
    }
}

/// One access of kind `kind` at `addr`; writes store `v`.
pub fn access(kind: u64, addr: u64, v: u64) {
    match kind % 18 {
        0 => armed!("ldrb w11, [x12]", out("x11") _, in("x12") addr, options(nostack)),
        1 => armed!("ldrh w11, [x12]", out("x11") _, in("x12") addr, options(nostack)),
        2 => armed!("ldr w11, [x12]", out("x11") _, in("x12") addr, options(nostack)),
        3 => armed!("ldr x11, [x12]", out("x11") _, in("x12") addr, options(nostack)),
        4 => armed!("strb w11, [x12]", in("x11") v, in("x12") addr, options(nostack)),
        5 => armed!("strh w11, [x12]", in("x11") v, in("x12") addr, options(nostack)),
        6 => armed!("str w11, [x12]", in("x11") v, in("x12") addr, options(nostack)),
        7 => armed!("str x11, [x12]", in("x11") v, in("x12") addr, options(nostack)),
        // No syndrome for the hypervisor to emulate from (ISV = 0).
        8 => {
            armed!("ldp w11, w13, [x12]", out("x11") _, out("x13") _, in("x12") addr, options(nostack))
        }
        9 => armed!("stp x11, x11, [x12]", in("x11") v, in("x12") addr, options(nostack)),
        10 => armed!("ldr x11, [x12], #8", out("x11") _, inout("x12") addr => _, options(nostack)),
        11 => armed!("str w11, [x12, #4]!", in("x11") v, inout("x12") addr => _, options(nostack)),
        12 => armed!("ldrsh x11, [x12]", out("x11") _, in("x12") addr, options(nostack)),
        13 => armed!("ldxr w11, [x12]", out("x11") _, in("x12") addr, options(nostack)),
        14 => armed!("stlr w11, [x12]", in("x11") v, in("x12") addr, options(nostack)),
        15 => armed!("ldar x11, [x12]", out("x11") _, in("x12") addr, options(nostack)),
        16 => armed!("ld1 {{v0.16b}}, [x12]", out("v0") _, in("x12") addr, options(nostack)),
        _ => armed!("dc civac, x12", in("x12") addr, options(nostack)),
    }
}

/// How many system-register operations [`sysreg`] knows.
pub const SYSREGS: u64 = 44;

/// System-register operation `which`: the trapped ones (GIC CPU
/// interface, physical timer, PMU, debug, implementation defined, set/way
/// cache maintenance) and a few EL2 registers, which are undefined at
/// EL1. Writes store `v`.
pub fn sysreg(which: u64, v: u64) {
    macro_rules! rd {
        ($r:literal) => {
            armed!(concat!("mrs x11, ", $r), out("x11") _, options(nostack))
        };
    }
    macro_rules! wr {
        ($r:literal) => {
            armed!(concat!("msr ", $r, ", x11"), in("x11") v, options(nostack))
        };
    }
    match which % SYSREGS {
        0 => wr!("icc_sgi1r_el1"),
        1 => wr!("icc_sgi0r_el1"),
        2 => wr!("icc_asgi1r_el1"),
        3 => wr!("icc_eoir1_el1"),
        4 => wr!("icc_dir_el1"),
        5 => wr!("icc_pmr_el1"),
        6 => wr!("icc_bpr1_el1"),
        7 => wr!("icc_ctlr_el1"),
        8 => wr!("icc_igrpen1_el1"),
        9 => rd!("icc_iar1_el1"),
        10 => rd!("icc_hppir1_el1"),
        11 => rd!("icc_rpr_el1"),
        12 => rd!("icc_sre_el1"),
        13 => wr!("cntp_ctl_el0"),
        14 => wr!("cntp_cval_el0"),
        15 => wr!("cntp_tval_el0"),
        16 => rd!("cntpct_el0"),
        17 => rd!("cntp_ctl_el0"),
        18 => rd!("pmcr_el0"),
        19 => wr!("pmcr_el0"),
        20 => rd!("pmccntr_el0"),
        21 => wr!("pmcntenset_el0"),
        22 => wr!("pmuserenr_el0"),
        23 => rd!("mdscr_el1"),
        24 => rd!("oslsr_el1"),
        25 => wr!("oslar_el1"),
        26 => wr!("osdlr_el1"),
        27 => rd!("dbgbcr0_el1"),
        28 => wr!("dbgbvr0_el1"),
        29 => rd!("mdrar_el1"),
        30 => rd!("dbgauthstatus_el1"),
        31 => rd!("actlr_el1"),
        32 => rd!("s3_1_c15_c2_0"),
        33 => wr!("s3_1_c15_c2_0"),
        34 => rd!("s3_1_c11_c0_2"),
        35 => rd!("id_aa64dfr0_el1"),
        36 => rd!("ctr_el0"),
        37 => armed!("dc isw, x11", in("x11") v, options(nostack)),
        38 => armed!("dc cisw, x11", in("x11") v, options(nostack)),
        39 => rd!("s3_4_c1_c1_0"),  // HCR_EL2
        40 => rd!("s3_4_c14_c1_0"), // CNTHCTL_EL2
        41 => wr!("s3_0_c15_c0_0"),
        42 => rd!("pmevcntr0_el0"),
        _ => wr!("dbgbcr0_el1"),
    }
}

/// `WFI`, for the timer-armed waits of the CPU_SUSPEND-like calls.
pub fn wfi() {
    armed!("wfi", options(nostack));
}
