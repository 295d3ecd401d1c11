//! PSCI as Oxen offers it to guests (through `HVC #0`, as the guest device
//! tree's `/psci` node says, or `SMC #0`): decoding a call into what to do.
//! Oxen reports PSCI 1.1 and SMCCC 1.2, like Xen 4.18 and later.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

/// PSCI version reported to guests: 1.1.
pub const PSCI_VERSION: u64 = (1 << 16) | 1;
/// SMC Calling Convention version reported to guests: 1.2.
pub const SMCCC_VERSION: u64 = (1 << 16) | 2;

pub const SUCCESS: i64 = 0;
pub const NOT_SUPPORTED: i64 = -1;
pub const INVALID_PARAMETERS: i64 = -2;
pub const DENIED: i64 = -3;
pub const ALREADY_ON: i64 = -4;
pub const ON_PENDING: i64 = -5;

/// AFFINITY_INFO results.
pub const AFFINITY_ON: i64 = 0;
pub const AFFINITY_OFF: i64 = 1;

mod fid {
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
    pub const CPU_SUSPEND_64: u32 = 0xc400_0001;
    pub const CPU_OFF: u32 = 0x8400_0002;
    pub const CPU_ON_32: u32 = 0x8400_0003;
    pub const CPU_ON_64: u32 = 0xc400_0003;
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    pub const PSCI_FEATURES: u32 = 0x8400_000a;
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
}

/// A decoded call (registers x0..x3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Version,
    CpuSuspend,
    CpuOff,
    CpuOn {
        target: u64,
        entry: u64,
        context: u64,
    },
    AffinityInfo {
        target: u64,
        level: u64,
    },
    MigrateInfoType,
    SystemOff,
    SystemReset,
    Features(u32),
    SmcccVersion,
    SmcccArchFeatures(u32),
    Unknown(u32),
}

/// Decodes x0..x3. SMC32 calls only look at the low 32 bits of arguments.
pub fn decode(x: [u64; 4]) -> Call {
    let f = x[0] as u32;
    let narrow = |v: u64| {
        if f & 0x4000_0000 == 0 {
            v & 0xffff_ffff
        } else {
            v
        }
    };
    match f {
        fid::PSCI_VERSION => Call::Version,
        fid::CPU_SUSPEND_32 | fid::CPU_SUSPEND_64 => Call::CpuSuspend,
        fid::CPU_OFF => Call::CpuOff,
        fid::CPU_ON_32 | fid::CPU_ON_64 => Call::CpuOn {
            target: narrow(x[1]),
            entry: narrow(x[2]),
            context: narrow(x[3]),
        },
        fid::AFFINITY_INFO_32 | fid::AFFINITY_INFO_64 => Call::AffinityInfo {
            target: narrow(x[1]),
            level: narrow(x[2]),
        },
        fid::MIGRATE_INFO_TYPE => Call::MigrateInfoType,
        fid::SYSTEM_OFF => Call::SystemOff,
        fid::SYSTEM_RESET => Call::SystemReset,
        fid::PSCI_FEATURES => Call::Features(x[1] as u32),
        fid::SMCCC_VERSION => Call::SmcccVersion,
        fid::SMCCC_ARCH_FEATURES => Call::SmcccArchFeatures(x[1] as u32),
        other => Call::Unknown(other),
    }
}

/// PSCI_FEATURES: 0 for a function Oxen implements, NOT_SUPPORTED otherwise.
pub fn features(f: u32) -> i64 {
    match decode([u64::from(f), 0, 0, 0]) {
        Call::Unknown(_) | Call::SmcccArchFeatures(_) => NOT_SUPPORTED,
        _ => SUCCESS,
    }
}

/// The vCPU (by index) a CPU_ON/AFFINITY_INFO target MPIDR names, using
/// Xen's vCPU affinity layout (Aff0 = id % 16, Aff1 = id / 16).
pub fn vcpu_of_mpidr(mpidr: u64, nr_vcpus: usize) -> Option<usize> {
    if mpidr & !0xffff != 0 {
        return None;
    }
    let aff0 = (mpidr & 0xff) as usize;
    let aff1 = ((mpidr >> 8) & 0xff) as usize;
    if aff0 >= 16 {
        return None;
    }
    let id = aff1 * 16 + aff0;
    (id < nr_vcpus).then_some(id)
}

/// The MPIDR affinity of vCPU `id` (what the guest DT's `cpu@` reg says).
pub fn mpidr_of_vcpu(id: usize) -> u64 {
    ((id as u64 / 16) << 8) | (id as u64 % 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_on_32_truncates_arguments() {
        let c = decode([0x8400_0003, 0x1_0000_0001, 0xffff_ffff_4008_0000, 7]);
        assert_eq!(
            c,
            Call::CpuOn {
                target: 1,
                entry: 0x4008_0000,
                context: 7
            }
        );
    }

    #[test]
    fn cpu_on_64_keeps_arguments() {
        let c = decode([0xc400_0003, 0x101, 0x1_4008_0000, 7]);
        assert_eq!(
            c,
            Call::CpuOn {
                target: 0x101,
                entry: 0x1_4008_0000,
                context: 7
            }
        );
    }

    #[test]
    fn features_reports_implemented_functions_only() {
        assert_eq!(features(0xc400_0003), SUCCESS);
        assert_eq!(features(0x8400_000a), SUCCESS);
        assert_eq!(features(0x8400_0005), NOT_SUPPORTED); // CPU_FREEZE-era MIGRATE
        assert_eq!(features(0x8400_0012), NOT_SUPPORTED);
    }

    #[test]
    fn mpidr_and_vcpu_index_round_trip_in_xens_layout() {
        assert_eq!(mpidr_of_vcpu(16), 0x100);
        assert_eq!(vcpu_of_mpidr(0x100, 17), Some(16));
        assert_eq!(vcpu_of_mpidr(0x100, 16), None);
        assert_eq!(vcpu_of_mpidr(0x10, 64), None, "Aff0 above 15 is never used");
        assert_eq!(vcpu_of_mpidr(1 << 16, 64), None);
    }
}
