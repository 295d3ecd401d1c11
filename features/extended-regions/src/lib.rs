//! Xen's extended regions: the guest-physical ranges a domU may use for
//! foreign mappings (grant maps, unpopulated-alloc), advertised after the
//! grant-table window in the `reg` of its `/hypervisor` node.
//!
//! Computed as Xen computes them for non-direct-mapped domUs: the part of
//! each guest RAM bank above the memory actually given to the domain, within
//! the stage-2 IPA size, minus anything else placed there, aligned to 2 MiB
//! and kept only when at least 64 MiB. Xen's `ext_regions=no` turns them off.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Guest input reaches everything here: no unwrap, expect or unchecked
// index outside the tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use linkme::distributed_slice;
use oxen_core::config::Enhanced;
use oxen_core::guest_layout::GUEST_RAM_BANKS;
use oxen_core::memmap::{Range, RangeSet};
use oxen_core::subsystem::{
    DomainSetup, HypervisorParts, InitContext, InitError, Interface, SUBSYSTEMS, Subsystem,
};

const MIB: u64 = 1 << 20;
/// Regions are aligned (and sized) to 2 MiB.
pub const ALIGN: u64 = 2 * MIB;
/// Smaller holes are not worth advertising.
pub const MIN_SIZE: u64 = 64 * MIB;

/// The extended regions of a domU whose RAM banks hold `allocated` bytes
/// each (see `guest_layout::ram_split`), with a stage-2 of `ipa_bits`, and
/// with `exclude` (static shared memory, passthrough ranges) carved out.
pub fn domu_regions(allocated: [u64; 2], ipa_bits: u32, exclude: &[Range]) -> Vec<Range> {
    let ipa_end = 1u64.checked_shl(ipa_bits).unwrap_or(u64::MAX);
    let mut holes = RangeSet::new();
    for (bank, used) in GUEST_RAM_BANKS.iter().zip(allocated) {
        let start = (bank.start + used).next_multiple_of(ALIGN);
        let end = bank.end.min(ipa_end);
        if end > start && end - start >= MIN_SIZE {
            holes.insert(Range { start, end });
        }
    }
    for r in exclude {
        holes.remove(*r);
    }
    holes
        .iter()
        .map(|r| r.shrink_to(ALIGN))
        .filter(|r| r.size() >= MIN_SIZE)
        .collect()
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether extended regions are advertised (Xen's `ext_regions` option).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

struct ExtendedRegions;

impl Subsystem for ExtendedRegions {
    fn name(&self) -> &'static str {
        "extended-regions"
    }

    /// After the grant-table window (`reg[0]`), whose owner comes first.
    fn order(&self) -> u32 {
        30
    }

    fn options(&self) -> &'static [&'static str] {
        &["ext_regions"]
    }

    fn init(&self, ctx: &InitContext<'_>) -> Result<(), InitError> {
        let on = match ctx.bootargs.boolean("ext_regions") {
            None => true,
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                return Err(InitError {
                    message: alloc::format!("{e}"),
                });
            }
        };
        ENABLED.store(on, Ordering::Relaxed);
        Ok(())
    }

    fn provides(&self) -> Option<Interface> {
        Some(Interface::ExtendedRegions)
    }

    /// Every domain with a `/hypervisor` node gets its extended regions.
    fn grants(&self, enhanced: Enhanced) -> bool {
        matches!(enhanced, Enhanced::NoXenstore | Enhanced::Enabled)
    }

    fn hypervisor_node(&self, dom: &DomainSetup<'_>, node: &mut HypervisorParts) {
        // Oxen runs 64-bit guests only; Xen gives 32-bit guests none.
        if enabled() && dom.has(Interface::ExtendedRegions) {
            node.reg
                .extend(domu_regions(dom.ram_split, dom.ipa_bits, &[]));
        }
    }
}

#[distributed_slice(SUBSYSTEMS)]
static EXTENDED_REGIONS: &dyn Subsystem = &ExtendedRegions;

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    // Xen's worked values for a domU (IPA >= 40 bits), spec §2.5.
    #[test]
    fn regions_for_128_mib_match_xen() {
        assert_eq!(
            domu_regions([128 * MIB, 0], 40, &[]),
            [
                r(0x4800_0000, 0x1_0000_0000),
                r(0x2_0000_0000, 0x100_0000_0000)
            ]
        );
    }

    #[test]
    fn regions_for_512_mib_match_xen() {
        assert_eq!(
            domu_regions([512 * MIB, 0], 40, &[]),
            [
                r(0x6000_0000, 0x1_0000_0000),
                r(0x2_0000_0000, 0x100_0000_0000)
            ]
        );
    }

    #[test]
    fn regions_for_4_gib_skip_the_full_bank0() {
        assert_eq!(
            domu_regions([3 * GIB, GIB], 40, &[]),
            [r(0x2_4000_0000, 0x100_0000_0000)]
        );
    }

    #[test]
    fn small_ipa_drops_bank1_entirely() {
        // 32-bit IPA: bank 1 (at 8 GiB) is unreachable.
        assert_eq!(
            domu_regions([128 * MIB, 0], 32, &[]),
            [r(0x4800_0000, 0x1_0000_0000)]
        );
    }

    #[test]
    fn unaligned_ram_end_rounds_up_to_2_mib() {
        assert_eq!(domu_regions([129 * MIB, 0], 32, &[])[0].start, 0x4820_0000);
    }

    #[test]
    fn holes_smaller_than_64_mib_are_dropped() {
        // 3 GiB - 32 MiB of RAM leaves a 32 MiB hole in bank 0.
        assert_eq!(
            domu_regions([3 * GIB - 32 * MIB, 0], 32, &[]),
            Vec::<Range>::new()
        );
    }

    #[test]
    fn excluded_ranges_are_carved_out_and_realigned() {
        let shm = r(0x8000_0000 + MIB, 0x9000_0000);
        assert_eq!(
            domu_regions([128 * MIB, 0], 32, &[shm]),
            [r(0x4800_0000, 0x8000_0000), r(0x9000_0000, 0x1_0000_0000)]
        );
    }
}
