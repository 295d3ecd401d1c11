//! How much hypervisor heap the configured domains can make Oxen hold at
//! their bounds (docs/bounds.md): core's share per domain (stage-2 tables
//! up to the P2M pool, vCPUs, the guest device tree, the domain's own
//! records) plus what each subsystem says of itself
//! ([`Subsystem::heap_budget`](crate::subsystem::Subsystem::heap_budget)).
//! The boot reserves the total next to the fixed heap, so one domain at its
//! bounds never leaves another without memory.

use crate::config::DomainConfig;
use crate::subsystem::{BudgetInput, Interface, Registry};

/// Bytes of the fixed heap (`arch::heap`).
pub const HEAP_SIZE: usize = 8 * 1024 * 1024;
/// Bytes of stack each CPU gets.
pub const STACK_SIZE: usize = 64 * 1024;
/// Most CPUs Oxen brings up: the width of its per-CPU bitmaps. How many a
/// machine has is its tree's fact (`/cpus`); the work area holds a stack
/// for each of those.
pub const MAX_CPUS: usize = 64;

/// The work area the boot takes from free RAM before the MMU is on, for a
/// machine with `cpus` CPUs: the fixed heap, then one stack per CPU.
pub const fn work_area_size(cpus: usize) -> u64 {
    let cpus = if cpus > MAX_CPUS { MAX_CPUS } else { cpus };
    (HEAP_SIZE + STACK_SIZE * cpus) as u64
}

/// Per vCPU: its context, run-state, vGIC private interrupts and list
/// registers, with room to spare.
pub const VCPU_BYTES: u64 = 64 * 1024;
/// Per domain: the domain record, its vGIC distributor state, the guest
/// device tree while it is built, the vPL011 and console buffers.
pub const DOMAIN_BYTES: u64 = 512 * 1024;

/// The heap `cfg` can make core and every subsystem of `registry` hold at
/// its bounds, given the interfaces it is `granted`.
pub fn domain_budget(cfg: &DomainConfig, granted: &[Interface], registry: &Registry) -> u64 {
    let input = BudgetInput {
        vcpus: cfg.vcpus,
        memory_kib: cfg.memory_kib,
        granted,
        max_grant_frames: cfg.max_grant_frames,
        max_maptrack_frames: cfg.max_maptrack_frames,
        max_evtchn_port: cfg.max_evtchn_port,
    };
    // Stage-2 table pages come from the heap, up to the P2M pool.
    let core = cfg.p2m_pages * 4096 + u64::from(cfg.vcpus) * VCPU_BYTES + DOMAIN_BYTES;
    registry
        .iter()
        .map(|s| s.heap_budget(&input))
        .fold(core, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testdts::{DOMU1, Host};

    #[test]
    fn core_counts_the_p2m_pool_the_vcpus_and_the_domain() {
        let sys = Host::new(DOMU1).read().unwrap();
        let d = &sys.domains[0];
        let none = Registry::from_slice(&[]).unwrap();
        assert_eq!(
            domain_budget(d, &[], &none),
            d.p2m_pages * 4096 + u64::from(d.vcpus) * VCPU_BYTES + DOMAIN_BYTES
        );
    }
}
