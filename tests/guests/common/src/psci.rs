//! PSCI and SMCCC function IDs and results (PSCI 1.1, SMCCC 1.2), and the
//! calls the guests make through `HVC #0`. How a guest powers off stays
//! its own: what it prints, and whether there is a hypervisor to ask.

use crate::arch::smccc;

pub const PSCI_VERSION: u32 = 0x8400_0000;
pub const CPU_OFF: u32 = 0x8400_0002;
pub const CPU_ON_64: u32 = 0xc400_0003;
pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const PSCI_FEATURES: u32 = 0x8400_000a;
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// PSCI_STAT_COUNT, optional in PSCI 1.x: neither Xen nor Oxen has it.
pub const UNIMPLEMENTED: u32 = 0x8400_0012;

pub const SUCCESS: i32 = 0;
pub const NOT_SUPPORTED: i32 = -1;
pub const INVALID_PARAMETERS: i32 = -2;
pub const ALREADY_ON: i32 = -4;

/// AFFINITY_INFO: the target is on / off.
pub const AFFINITY_ON: i32 = 0;
pub const AFFINITY_OFF: i32 = 1;

/// MIGRATE_INFO_TYPE: no Trusted OS, or one that needs no migration.
pub const TOS_NOT_PRESENT_MP: i32 = 2;

/// A PSCI result: the low 32 bits of x0, signed (PSCI returns int32).
pub fn call(fid: u32, a1: u64, a2: u64, a3: u64) -> i32 {
    smccc(fid, a1, a2, a3) as u32 as i32
}

pub fn cpu_on(target: u64, entry: u64, context: u64) -> i32 {
    call(CPU_ON_64, target, entry, context)
}

pub fn affinity_info(target: u64) -> i32 {
    call(AFFINITY_INFO_64, target, 0, 0)
}
