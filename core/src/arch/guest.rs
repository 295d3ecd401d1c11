//! Running guests at EL1: the register frame saved on every exit from a
//! guest (general, FP/SIMD), entering a guest, and the EL2 system registers
//! that hold a vCPU's EL1 context, its timer and
//! the stage-2 configuration.

use core::arch::{asm, global_asm};
use core::mem::{offset_of, size_of};

/// Everything a guest exit saves on the EL2 stack: general registers, PC and
/// PSTATE, and the FP/SIMD registers (Rust code at EL2 may use them).
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestFrame {
    pub x: [u64; 31],
    pub pc: u64,
    pub pstate: u64,
    _pad: u64,
    pub q: [u128; 32],
    pub fpsr: u64,
    pub fpcr: u64,
}

/// Bytes of a guest frame on the stack.
pub const GUEST_FRAME_SIZE: usize = size_of::<GuestFrame>();
const Q_OFF: usize = offset_of!(GuestFrame, q);
const FP_OFF: usize = offset_of!(GuestFrame, fpsr);
const _: () = assert!(GUEST_FRAME_SIZE == 800 && Q_OFF == 272 && FP_OFF == 784);

global_asm!(
    r#"
    .section .text.oxen_guest, "ax"
    .global oxen_guest_exit_common
oxen_guest_exit_common:
"#,
    save_gprs_asm!(),
    r#"
    add     x3, sp, #{q}
    stp     q0, q1, [x3, #0]
    stp     q2, q3, [x3, #32]
    stp     q4, q5, [x3, #64]
    stp     q6, q7, [x3, #96]
    stp     q8, q9, [x3, #128]
    stp     q10, q11, [x3, #160]
    stp     q12, q13, [x3, #192]
    stp     q14, q15, [x3, #224]
    stp     q16, q17, [x3, #256]
    stp     q18, q19, [x3, #288]
    stp     q20, q21, [x3, #320]
    stp     q22, q23, [x3, #352]
    stp     q24, q25, [x3, #384]
    stp     q26, q27, [x3, #416]
    stp     q28, q29, [x3, #448]
    stp     q30, q31, [x3, #480]
    mrs     x4, fpsr
    mrs     x5, fpcr
    add     x3, sp, #{fp}
    stp     x4, x5, [x3]
    mov     x29, xzr                /* the guest's x29 is not a frame record */
    mov     x1, sp
    bl      oxen_guest_trap

    .global oxen_guest_return
oxen_guest_return:
    add     x3, sp, #{q}
    ldp     q0, q1, [x3, #0]
    ldp     q2, q3, [x3, #32]
    ldp     q4, q5, [x3, #64]
    ldp     q6, q7, [x3, #96]
    ldp     q8, q9, [x3, #128]
    ldp     q10, q11, [x3, #160]
    ldp     q12, q13, [x3, #192]
    ldp     q14, q15, [x3, #224]
    ldp     q16, q17, [x3, #256]
    ldp     q18, q19, [x3, #288]
    ldp     q20, q21, [x3, #320]
    ldp     q22, q23, [x3, #352]
    ldp     q24, q25, [x3, #384]
    ldp     q26, q27, [x3, #416]
    ldp     q28, q29, [x3, #448]
    ldp     q30, q31, [x3, #480]
    add     x3, sp, #{fp}
    ldp     x4, x5, [x3]
    msr     fpsr, x4
    msr     fpcr, x5
"#,
    restore_gprs_asm!(),
    r#"
    add     sp, sp, #{size}
    eret

    /* x0: a GuestFrame (not on this stack), x1: this CPU's stack top.
       Copies the frame to the top of the stack and returns into the guest;
       whatever was on the stack is abandoned. */
    .global oxen_enter_guest
oxen_enter_guest:
    sub     x2, x1, #{size}
    mov     x3, x2
1:  ldp     x4, x5, [x0], #16
    stp     x4, x5, [x3], #16
    cmp     x3, x1
    b.lo    1b
    mov     sp, x2
    b       oxen_guest_return
"#,
    q = const Q_OFF,
    fp = const FP_OFF,
    size = const GUEST_FRAME_SIZE,
);

unsafe extern "C" {
    fn oxen_enter_guest(frame: *const GuestFrame, stack_top: usize) -> !;
}

/// The vector code's call on every exit from a guest, with the frame it
/// saved on this CPU's stack.
#[unsafe(no_mangle)]
extern "C" fn oxen_guest_trap(kind: u64, frame: &mut GuestFrame) {
    crate::hv::trap::guest_trap(kind, frame)
}

/// Enters the guest whose state the pCPU's scratch frame holds once
/// `prepare` (which loads the next vCPU) has filled it.
///
/// The frame lives for the hypervisor's life (`'static`) and only this
/// pCPU uses it, so it stays valid after its lock is released here, which
/// must be, since entering never returns.
pub fn enter_scratch(
    scratch: &'static spin::Mutex<alloc::boxed::Box<GuestFrame>>,
    stack_top: usize,
    prepare: impl FnOnce(&mut GuestFrame),
) -> ! {
    let frame: *const GuestFrame = {
        let mut f = scratch.lock();
        prepare(&mut f);
        &**f
    };
    // SAFETY: a heap frame that is never freed (`'static` owner), used by
    // this pCPU only, so no other reference to it exists now.
    enter(unsafe { &*frame }, stack_top)
}

/// Enters the guest whose state is `frame`, abandoning the current stack.
///
/// The caller must have loaded the vCPU's EL1 context, stage-2 and vGIC
/// state on this CPU; `frame` must not live on this CPU's stack.
pub fn enter(frame: &GuestFrame, stack_top: usize) -> ! {
    let f = frame as *const GuestFrame as usize;
    assert!(
        f + GUEST_FRAME_SIZE <= stack_top - crate::arch::entry::STACK_SIZE || f >= stack_top,
        "guest frame on the stack it is copied onto"
    );
    // SAFETY: `frame` is a valid GuestFrame outside the destination stack
    // (checked above); the stack top belongs to this CPU; the caller set up
    // the vCPU context the frame belongs to.
    unsafe { oxen_enter_guest(frame, stack_top) }
}

macro_rules! sysreg_rw {
    ($(#[$m:meta])* $get:ident, $set:ident, $reg:literal) => {
        $(#[$m])*
        #[inline(always)]
        pub fn $get() -> u64 {
            let v: u64;
            // SAFETY: reading this system register has no side effects.
            unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
        $(#[$m])*
        #[inline(always)]
        pub fn $set(v: u64) {
            // SAFETY: EL2 owns this register; callers keep it consistent with
            // the vCPU being run.
            unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nomem, nostack, preserves_flags)) };
        }
    };
}

/// EL2 control registers.
pub mod reg {
    use super::*;
    sysreg_rw!(hcr, set_hcr, "hcr_el2");
    sysreg_rw!(vtcr, set_vtcr, "vtcr_el2");
    sysreg_rw!(vttbr, set_vttbr, "vttbr_el2");
    sysreg_rw!(vmpidr, set_vmpidr, "vmpidr_el2");
    sysreg_rw!(vpidr, set_vpidr, "vpidr_el2");
    sysreg_rw!(cntvoff, set_cntvoff, "cntvoff_el2");
    sysreg_rw!(cnthctl, set_cnthctl, "cnthctl_el2");
    sysreg_rw!(cptr, set_cptr, "cptr_el2");
    sysreg_rw!(mdcr, set_mdcr, "mdcr_el2");
    sysreg_rw!(hstr, set_hstr, "hstr_el2");
    sysreg_rw!(esr, set_esr, "esr_el2");
    sysreg_rw!(far, set_far, "far_el2");
    sysreg_rw!(hpfar, set_hpfar, "hpfar_el2");
    sysreg_rw!(midr, set_midr_unused, "midr_el1");
    sysreg_rw!(cntv_ctl, set_cntv_ctl, "cntv_ctl_el0");
    sysreg_rw!(cntv_cval, set_cntv_cval, "cntv_cval_el0");
    sysreg_rw!(cnthp_ctl, set_cnthp_ctl, "S3_4_C14_C2_1");
    sysreg_rw!(cnthp_cval, set_cnthp_cval, "S3_4_C14_C2_2");
    sysreg_rw!(esr_el1, set_esr_el1, "esr_el1");
    sysreg_rw!(far_el1, set_far_el1, "far_el1");
    sysreg_rw!(elr_el1, set_elr_el1, "elr_el1");
    sysreg_rw!(spsr_el1, set_spsr_el1, "spsr_el1");
    sysreg_rw!(vbar_el1, set_vbar_el1, "vbar_el1");
    sysreg_rw!(par_el1, set_par_el1, "par_el1");
}

/// A vCPU's EL1 (and EL0 thread) system registers.
#[derive(Debug, Clone, Copy, Default)]
pub struct El1Regs {
    pub sctlr: u64,
    pub ttbr0: u64,
    pub ttbr1: u64,
    pub tcr: u64,
    pub mair: u64,
    pub amair: u64,
    pub vbar: u64,
    pub contextidr: u64,
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
    pub tpidr_el1: u64,
    pub sp_el0: u64,
    pub sp_el1: u64,
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    pub afsr0: u64,
    pub afsr1: u64,
    pub par: u64,
    pub cpacr: u64,
    pub cntkctl: u64,
    pub csselr: u64,
    pub mdscr: u64,
    pub cntv_ctl: u64,
    pub cntv_cval: u64,
}

macro_rules! save_restore {
    ($($field:ident => $reg:literal),* $(,)?) => {
        impl El1Regs {
            /// Reads the live registers of the vCPU running on this CPU.
            pub fn save(&mut self) {
                $(
                    // SAFETY: reading an EL1/EL0 context register from EL2 has no side effects.
                    unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) self.$field, options(nomem, nostack, preserves_flags)) };
                )*
            }
            /// Loads these registers for the vCPU about to run on this CPU.
            pub fn restore(&self) {
                $(
                    // SAFETY: EL1 context registers only affect the guest that
                    // is about to run; EL2 does not depend on them.
                    unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) self.$field, options(nomem, nostack, preserves_flags)) };
                )*
            }
        }
    };
}

save_restore! {
    sctlr => "sctlr_el1",
    ttbr0 => "ttbr0_el1",
    ttbr1 => "ttbr1_el1",
    tcr => "tcr_el1",
    mair => "mair_el1",
    amair => "amair_el1",
    vbar => "vbar_el1",
    contextidr => "contextidr_el1",
    tpidr_el0 => "tpidr_el0",
    tpidrro_el0 => "tpidrro_el0",
    tpidr_el1 => "tpidr_el1",
    sp_el0 => "sp_el0",
    sp_el1 => "sp_el1",
    elr => "elr_el1",
    spsr => "spsr_el1",
    esr => "esr_el1",
    far => "far_el1",
    afsr0 => "afsr0_el1",
    afsr1 => "afsr1_el1",
    par => "par_el1",
    cpacr => "cpacr_el1",
    cntkctl => "cntkctl_el1",
    csselr => "csselr_el1",
    mdscr => "mdscr_el1",
    cntv_ctl => "cntv_ctl_el0",
    cntv_cval => "cntv_cval_el0",
}

/// Translates a guest virtual address through the running vCPU's stage 1
/// and stage 2. Returns the host physical address, or `None` if either
/// stage faults.
#[inline(always)]
pub fn translate_gva(gva: u64, write: bool) -> Option<u64> {
    let saved = reg::par_el1();
    // SAFETY: AT only writes PAR_EL1, which is saved above and restored
    // below; the running vCPU's translation regime is loaded.
    unsafe {
        if write {
            asm!("at s12e1w, {}", "isb", in(reg) gva, options(nostack, preserves_flags));
        } else {
            asm!("at s12e1r, {}", "isb", in(reg) gva, options(nostack, preserves_flags));
        }
    }
    let par = reg::par_el1();
    reg::set_par_el1(saved);
    if par & 1 != 0 {
        return None;
    }
    Some((par & 0x000f_ffff_ffff_f000) | (gva & 0xfff))
}

/// Invalidates all stage-1 and stage-2 TLB entries of the VMID in VTTBR_EL2,
/// on every CPU.
pub fn flush_guest_tlb() {
    // SAFETY: TLB maintenance has no memory-safety effect on EL2.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Invalidates every guest TLB entry (all VMIDs) on this CPU.
pub fn flush_all_guest_tlb_local() {
    // SAFETY: TLB maintenance has no memory-safety effect on EL2.
    unsafe {
        asm!(
            "dsb nshst",
            "tlbi alle1",
            "dsb nsh",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Cleans `[start, end)` to the point of coherency and invalidates the
/// instruction cache, after writing code a guest will run with its MMU off.
pub fn clean_for_guest(start: u64, end: u64) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut a = start & !(line - 1);
    while a < end {
        // SAFETY: cleaning a cache line of identity-mapped RAM loses nothing.
        unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    // SAFETY: barriers and I-cache invalidation only.
    unsafe {
        asm!(
            "dsb ish",
            "ic ialluis",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Cleans and/or invalidates the data cache over `[start, end)` to the
/// point of coherency (for guests' cache-maintenance requests on pages they
/// were granted).
pub fn dcache_range(start: u64, end: u64, clean: bool, invalidate: bool) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut a = start & !(line - 1);
    while a < end {
        // SAFETY: cache maintenance by address on RAM the caller owns or was
        // granted; cleaning loses nothing, and invalidation is what the
        // guest asked for on its own (granted) data.
        unsafe {
            match (clean, invalidate) {
                (true, true) => asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)),
                (true, false) => asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)),
                (false, true) => asm!("dc ivac, {}", in(reg) a, options(nostack, preserves_flags)),
                (false, false) => {}
            }
        }
        a += line;
    }
    // SAFETY: a barrier only.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}
