//! Xen's guest physical address map for (non-direct-mapped) domUs on Arm,
//! from Xen's public `arch-arm.h`. Guests find everything through their
//! device tree, but Linux, test oracles and Xen itself assume these exact
//! addresses, so Oxen keeps them.

use crate::memmap::Range;

const fn r(start: u64, size: u64) -> Range {
    Range {
        start,
        end: start + size,
    }
}

/// The vGICv2 distributor, trapped and emulated.
pub const GUEST_GICV2_GICD: Range = r(0x0300_1000, 0x1000);
/// The vGICv2 CPU interface: the hardware's virtual CPU interface (GICV),
/// mapped here in stage 2, never trapped.
pub const GUEST_GICV2_GICC: Range = r(0x0300_2000, 0x2000);
pub const GUEST_GICV3_GICD: Range = r(0x0300_1000, 0x1_0000);
pub const GUEST_GICV3_GICR0: Range = r(0x0302_0000, 0x0100_0000);
pub const GUEST_PL011: Range = r(0x2200_0000, 0x1000);
/// The grant-table window, `reg[0]` of the `/hypervisor` node.
pub const GUEST_GNTTAB: Range = r(0x3800_0000, 0x0100_0000);
/// "Magic" pages; xenstore's ring is the second page.
pub const GUEST_MAGIC: Range = r(0x3900_0000, 0x0100_0000);
/// RAM bank 0: 3 GiB below 4 GiB.
pub const GUEST_RAM0: Range = r(0x4000_0000, 0xc000_0000);
/// RAM bank 1: 1016 GiB from 8 GiB.
pub const GUEST_RAM1: Range = r(0x2_0000_0000, 0xfe_0000_0000);
/// Both RAM banks, filled in order.
pub const GUEST_RAM_BANKS: [Range; 2] = [GUEST_RAM0, GUEST_RAM1];

/// The event-channel upcall PPI.
pub const GUEST_EVTCHN_PPI: u32 = 31;
/// The vPL011's SPI.
pub const GUEST_VPL011_SPI: u32 = 32;
/// The virtual timer's PPI.
pub const GUEST_VTIMER_PPI: u32 = 27;
/// Phandle of the guest's interrupt controller.
pub const GUEST_PHANDLE_GIC: u32 = 65000;

/// How much of each RAM bank a domain with `bytes` of memory fills (bank 0
/// first, as Xen allocates).
pub fn ram_split(bytes: u64) -> [u64; 2] {
    let first = bytes.min(GUEST_RAM0.size());
    [first, (bytes - first).min(GUEST_RAM1.size())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_fills_bank0_then_bank1() {
        assert_eq!(ram_split(128 << 20), [128 << 20, 0]);
        assert_eq!(ram_split(4 << 30), [3 << 30, 1 << 30]);
    }
}
