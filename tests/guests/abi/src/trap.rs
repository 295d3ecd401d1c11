//! The guest's exception vectors. A case that expects an instruction to
//! fault arms its address first; the synchronous handler records the
//! exception and resumes after that instruction, whatever the return
//! address says (Xen and Oxen differ there for an undefined `HVC`).
//! Anything else is unexpected: on vCPU0 it fails the running case and ends
//! the run, on a secondary it is reported through that vCPU's mailbox.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use oxen_guest_common::msg;

use crate::arch;

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

/// The vector entries in table order.
const KINDS: [&str; 16] = [
    "synchronous exception (SP_EL0)",
    "IRQ (SP_EL0)",
    "FIQ (SP_EL0)",
    "SError (SP_EL0)",
    "synchronous exception",
    "IRQ",
    "FIQ",
    "SError",
    "synchronous exception from EL0",
    "IRQ from EL0",
    "FIQ from EL0",
    "SError from EL0",
    "synchronous exception from AArch32",
    "IRQ from AArch32",
    "FIQ from AArch32",
    "SError from AArch32",
];

/// Entered from every vector with the table entry's index; returns through
/// `eret` with every general register restored.
#[unsafe(no_mangle)]
extern "C" fn guest_exception(kind: u64) {
    match kind {
        4 => synchronous(),
        5 => crate::gic::handle_irq(),
        k => unexpected(KINDS[(k & 15) as usize]),
    }
}

/// Address of the instruction the running case expects to fault; 0 when
/// none is armed. Only vCPU0 runs such cases.
static ARMED: AtomicU64 = AtomicU64::new(0);
static TAKEN: AtomicBool = AtomicBool::new(false);
static TAKEN_ESR: AtomicU64 = AtomicU64::new(0);
static TAKEN_FAR: AtomicU64 = AtomicU64::new(0);
static TAKEN_ELR: AtomicU64 = AtomicU64::new(0);

/// A synchronous exception an armed instruction took.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
    /// The armed instruction's address.
    pub at: u64,
}

impl Fault {
    /// The exception class (ESR_EL1.EC).
    pub fn class(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }

    /// Where the return address pointed, relative to the instruction.
    pub fn elr_position(&self) -> &'static str {
        match self.elr.wrapping_sub(self.at) {
            0 => "at",
            4 => "after",
            _ => "elsewhere",
        }
    }
}

fn synchronous() {
    let (esr, far, elr) = arch::exception_regs();
    let at = ARMED.load(Ordering::Acquire);
    if at != 0 && arch::cpu_index() == 0 {
        ARMED.store(0, Ordering::Release);
        TAKEN_ESR.store(esr, Ordering::Relaxed);
        TAKEN_FAR.store(far, Ordering::Relaxed);
        TAKEN_ELR.store(elr, Ordering::Relaxed);
        TAKEN.store(true, Ordering::Release);
        arch::set_return_address(at + 4);
        return;
    }
    unexpected("synchronous exception");
}

fn unexpected(what: &str) -> ! {
    let (esr, far, elr) = arch::exception_regs();
    let cpu = arch::cpu_index();
    if cpu == 0 {
        crate::report::fatal(msg!(
            "unexpected {what}: ESR_EL1 {esr:#x}, ELR_EL1 {elr:#x}, FAR_EL1 {far:#x}"
        ));
    }
    crate::smp::report_fault(cpu, esr, elr);
    loop {
        arch::irq_disable();
        arch::wfi();
    }
}

/// The last armed address: the handler clears `ARMED`, this stays.
static LAST_AT: AtomicU64 = AtomicU64::new(0);

fn disarm() -> Option<Fault> {
    ARMED.store(0, Ordering::Release);
    if !TAKEN.load(Ordering::Acquire) {
        return None;
    }
    TAKEN.store(false, Ordering::Release);
    Some(Fault {
        esr: TAKEN_ESR.load(Ordering::Relaxed),
        far: TAKEN_FAR.load(Ordering::Relaxed),
        elr: TAKEN_ELR.load(Ordering::Relaxed),
        at: LAST_AT.load(Ordering::Relaxed),
    })
}

/// Executes `HVC #0x123`: an immediate that is neither PSCI's 0 nor Xen's
/// hypercall tag. Returns the exception it took, if any.
pub fn hvc_bad_immediate() -> Option<Fault> {
    TAKEN.store(false, Ordering::Release);
    // SAFETY: the HVC's own address is armed before it executes, so the
    // exception it takes returns right after it; the handler preserves
    // every register.
    unsafe {
        asm!(
            "adr x9, 2f",
            "str x9, [x10]",
            "str x9, [x11]",
            "2: hvc #0x123",
            out("x9") _,
            in("x10") ARMED.as_ptr(),
            in("x11") LAST_AT.as_ptr(),
            options(nostack)
        )
    };
    disarm()
}

/// Loads 32 bits from guest-physical `addr`, where nothing may be mapped.
/// Returns the exception the load took, or the value it read.
pub fn probe_load(addr: usize) -> Result<u32, Fault> {
    TAKEN.store(false, Ordering::Release);
    let v: u32;
    // SAFETY: the load's own address is armed before it executes, so a
    // fault returns right after it; the MMU is off, so `addr` is an IPA
    // outside the guest's RAM (the caller's choice), and reading it changes
    // no memory Rust uses.
    unsafe {
        asm!(
            "mov x12, xzr",
            "adr x9, 2f",
            "str x9, [x10]",
            "str x9, [x11]",
            "2: ldr w12, [x13]",
            out("x9") _,
            in("x10") ARMED.as_ptr(),
            in("x11") LAST_AT.as_ptr(),
            in("x13") addr,
            out("x12") v,
            options(nostack)
        )
    };
    match disarm() {
        Some(f) => Err(f),
        None => Ok(v),
    }
}

macro_rules! probe_sysreg {
    ($write:ident, $read:ident, $reg:literal) => {
        #[doc = concat!("Writes `v` to ", $reg, "; the exception it took, if any.")]
        pub fn $write(v: u64) -> Option<Fault> {
            TAKEN.store(false, Ordering::Release);
            // SAFETY: the MSR's own address is armed before it executes, so
            // an exception returns right after it; the register is one the
            // guest owns or the hypervisor emulates.
            unsafe {
                asm!(
                    "adr x9, 2f",
                    "str x9, [x10]",
                    "str x9, [x11]",
                    concat!("2: msr ", $reg, ", x12"),
                    "isb",
                    out("x9") _,
                    in("x10") ARMED.as_ptr(),
                    in("x11") LAST_AT.as_ptr(),
                    in("x12") v,
                    options(nostack)
                )
            };
            disarm()
        }

        #[doc = concat!("Reads ", $reg, ", or the exception the read took.")]
        pub fn $read() -> Result<u64, Fault> {
            TAKEN.store(false, Ordering::Release);
            let v: u64;
            // SAFETY: as for the write: the MRS is armed, and reading the
            // register changes nothing.
            unsafe {
                asm!(
                    "mov x12, xzr",
                    "adr x9, 2f",
                    "str x9, [x10]",
                    "str x9, [x11]",
                    concat!("2: mrs x12, ", $reg),
                    out("x9") _,
                    in("x10") ARMED.as_ptr(),
                    in("x11") LAST_AT.as_ptr(),
                    out("x12") v,
                    options(nostack)
                )
            };
            match disarm() {
                Some(f) => Err(f),
                None => Ok(v),
            }
        }
    };
}

probe_sysreg!(write_pmccntr, read_pmccntr, "pmccntr_el0");
probe_sysreg!(write_dbgbvr0, read_dbgbvr0, "dbgbvr0_el1");
