//! Calls to PSCI firmware through SMC (the only conduit that reaches
//! firmware from EL2; the host DT's `method` is checked at boot).

use core::arch::asm;

pub const PSCI_VERSION: u32 = 0x8400_0000;
pub const CPU_ON_64: u32 = 0xc400_0003;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const SYSTEM_RESET: u32 = 0x8400_0009;

/// A PSCI error return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PsciError(pub i64);

impl PsciError {
    pub fn describe(self) -> &'static str {
        match self.0 {
            -1 => "NOT_SUPPORTED",
            -2 => "INVALID_PARAMETERS",
            -3 => "DENIED",
            -4 => "ALREADY_ON",
            -5 => "ON_PENDING",
            -6 => "INTERNAL_FAILURE",
            -7 => "NOT_PRESENT",
            -8 => "DISABLED",
            -9 => "INVALID_ADDRESS",
            _ => "unknown error",
        }
    }
}

fn smc(fid: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    // SAFETY: an SMCCC call; firmware preserves x18-x30 and sp and may
    // clobber x0-x17, all declared here.
    unsafe {
        asm!(
            "smc #0",
            inlateout("x0") u64::from(fid) => ret,
            inlateout("x1") a1 => _,
            inlateout("x2") a2 => _,
            inlateout("x3") a3 => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack),
        );
    }
    ret
}

/// PSCI version as (major, minor).
pub fn version() -> (u16, u16) {
    let v = smc(PSCI_VERSION, 0, 0, 0) as u32;
    ((v >> 16) as u16, v as u16)
}

/// Starts the CPU with affinity `mpidr` at physical address `entry`, MMU
/// off, with `context` in x0.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    match smc(CPU_ON_64, mpidr, entry, context) {
        0 => Ok(()),
        e => Err(PsciError(e)),
    }
}

/// Powers the machine off (QEMU exits with status 0).
pub fn system_off() -> ! {
    smc(SYSTEM_OFF, 0, 0, 0);
    super::cpu::halt()
}

/// Resets the machine (QEMU with `-no-reboot` exits).
pub fn system_reset() -> ! {
    smc(SYSTEM_RESET, 0, 0, 0);
    super::cpu::halt()
}
