//! aarch64 at EL2: the image header and entry points, exception vectors,
//! the MMU, firmware (PSCI) calls and small CPU helpers. With `drivers`,
//! the only code in Oxen that uses `unsafe`: everything else in core is
//! compiled with `unsafe_code` denied and reaches the hardware, physical
//! memory and memory shared with guests through the safe functions here,
//! which check what they can.
//!
//! Two modules build on the host too, for the host tests of the code above
//! them: [`shared`] (guest-shared pages) and [`cell`].
#![allow(unsafe_code)]

/// Assembly shared by the EL2 and the guest exception paths, which lay
/// out the first 272 bytes of their frames alike (`exception::Frame`,
/// `guest::GuestFrame`): x0–x30 at 0, ELR_EL2 at 248, SPSR_EL2 at 256.
/// The vector entry has already stored x0 and x1.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
macro_rules! save_gprs_asm {
    () => {
        r#"
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
    mrs     x1, elr_el2
    mrs     x2, spsr_el2
    stp     x30, x1, [sp, #240]
    str     x2, [sp, #256]
"#
    };
}

/// The other half of [`save_gprs_asm`]: restores ELR_EL2, SPSR_EL2 and
/// x0–x30 from the frame at `sp` (the caller then pops the frame and
/// returns with `eret`).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
macro_rules! restore_gprs_asm {
    () => {
        r#"
    ldp     x30, x1, [sp, #240]
    ldr     x2, [sp, #256]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x0, x1, [sp, #0]
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
"#
    };
}

pub mod cell;
pub mod shared;

/// Registers a static in one of core's own `linkme` slices:
/// `crate::arch::register! { SLICE, static NAME: Type = value; }`. linkme
/// places the entry with `#[link_section]`, which core's crate-wide
/// `unsafe_code` lint counts (in crates that register into core's slices
/// from outside, the macro is external and the lint stays quiet); the
/// allowance lives here, once.
macro_rules! register {
    ($slice:path, $(#[$meta:meta])* $vis:vis static $name:ident: $ty:ty = $value:expr;) => {
        $(#[$meta])*
        #[allow(unsafe_code)]
        #[linkme::distributed_slice($slice)]
        $vis static $name: $ty = $value;
    };
}
pub(crate) use register;

cfg_if::cfg_if! {
    if #[cfg(all(target_arch = "aarch64", target_os = "none"))] {
        pub mod cpu;
        pub mod entry;
        pub mod exception;
        pub mod guest;
        pub mod heap;
        pub mod mem;
        pub mod mmu;
        pub mod psci;
    }
}
