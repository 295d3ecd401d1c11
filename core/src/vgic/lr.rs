//! The layout of a GICv3 list register (`ICH_LR<n>_EL2`), the one place
//! that knows which bit means what, and its conversion to and from a GICv2
//! list register (`GICH_LR<n>`) for a GICv2 host.

const INTID_MASK: u64 = 0xffff_ffff;
const PINTID_SHIFT: u32 = 32;
const PINTID_MASK: u64 = 0x1fff;
/// With HW = 0 the bit just above the pINTID's low bits asks for a
/// maintenance interrupt when the guest EOIs the interrupt.
const EOI: u64 = 1 << 41;
const PRIORITY_SHIFT: u32 = 48;
const GROUP1: u64 = 1 << 60;
const HW: u64 = 1 << 61;
const PENDING: u64 = 1 << 62;
const ACTIVE: u64 = 1 << 63;

/// One list register's fields. `encode` gives the value for `ICH_LR<n>_EL2`;
/// `decode` reads back what the guest made of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListRegister {
    /// The INTID the guest sees.
    pub vintid: u32,
    pub priority: u8,
    pub group1: bool,
    pub pending: bool,
    pub active: bool,
    /// HW = 1: the physical INTID that the guest's deactivation of `vintid`
    /// also deactivates.
    pub pintid: Option<u32>,
    /// HW = 0 only: raise a maintenance interrupt when the guest EOIs it, so
    /// that a level-sensitive line can be sampled again.
    pub eoi_maintenance: bool,
}

impl ListRegister {
    /// The register value. A `pintid` wider than the 13-bit field is cut to
    /// it; callers only pass PPIs and SPIs.
    #[inline(always)]
    pub fn encode(&self) -> u64 {
        let mut value = u64::from(self.vintid) | u64::from(self.priority) << PRIORITY_SHIFT;
        if self.group1 {
            value |= GROUP1;
        }
        if self.pending {
            value |= PENDING;
        }
        if self.active {
            value |= ACTIVE;
        }
        match self.pintid {
            Some(pintid) => value |= HW | (u64::from(pintid) & PINTID_MASK) << PINTID_SHIFT,
            None if self.eoi_maintenance => value |= EOI,
            None => {}
        }
        value
    }

    /// The fields of a register value.
    #[inline(always)]
    pub fn decode(value: u64) -> Self {
        let hw = value & HW != 0;
        Self {
            vintid: (value & INTID_MASK) as u32,
            priority: (value >> PRIORITY_SHIFT) as u8,
            group1: value & GROUP1 != 0,
            pending: value & PENDING != 0,
            active: value & ACTIVE != 0,
            pintid: hw.then_some(((value >> PINTID_SHIFT) & PINTID_MASK) as u32),
            eoi_maintenance: !hw && value & EOI != 0,
        }
    }

    /// Neither pending nor active: the slot is free.
    pub fn is_invalid(&self) -> bool {
        !self.pending && !self.active
    }
}

/// GICv2 `GICH_LR<n>` fields (Arm IHI 0048B, the virtual interface
/// control registers).
#[cfg(any(test, feature = "gicv2"))]
mod gich {
    pub const VIRTUAL_MASK: u32 = 0x3ff;
    /// With HW = 1, bits 19:10 are the physical INTID. With HW = 0, bit 19
    /// asks for a maintenance interrupt at EOI and bits 12:10 are an SGI's
    /// source CPUID.
    pub const PHYSICAL_SHIFT: u32 = 10;
    pub const PHYSICAL_MASK: u32 = 0x3ff;
    pub const EOI: u32 = 1 << 19;
    /// Bits 27:23 hold the top five bits of the priority.
    pub const PRIORITY_SHIFT: u32 = 23;
    pub const PRIORITY_MASK: u32 = 0x1f;
    pub const PENDING: u32 = 1 << 28;
    pub const ACTIVE: u32 = 1 << 29;
    pub const GROUP1: u32 = 1 << 30;
    pub const HW: u32 = 1 << 31;
}

#[cfg(any(test, feature = "gicv2"))]
impl ListRegister {
    /// The GICv2 `GICH_LR<n>` value. The priority keeps its top five bits,
    /// all a GICv2 list register holds (and all the vGIC keeps); INTIDs are
    /// cut to the 10-bit fields, callers only pass INTIDs below 1020. An
    /// SGI's source CPUID is 0: the vGIC does not track SGI sources, and a
    /// guest only has to write back to GICV_EOIR the GICV_IAR value it
    /// read, CPUID included.
    pub fn encode_v2(&self) -> u32 {
        let mut value = (self.vintid & gich::VIRTUAL_MASK)
            | (u32::from(self.priority) >> 3) << gich::PRIORITY_SHIFT;
        if self.group1 {
            value |= gich::GROUP1;
        }
        if self.pending {
            value |= gich::PENDING;
        }
        if self.active {
            value |= gich::ACTIVE;
        }
        match self.pintid {
            Some(pintid) => {
                value |= gich::HW | (pintid & gich::PHYSICAL_MASK) << gich::PHYSICAL_SHIFT;
            }
            None if self.eoi_maintenance => value |= gich::EOI,
            None => {}
        }
        value
    }

    /// The fields of a GICv2 `GICH_LR<n>` value; an SGI's source CPUID is
    /// dropped (there is no field for it).
    pub fn decode_v2(value: u32) -> Self {
        let hw = value & gich::HW != 0;
        Self {
            vintid: value & gich::VIRTUAL_MASK,
            priority: (((value >> gich::PRIORITY_SHIFT) & gich::PRIORITY_MASK) << 3) as u8,
            group1: value & gich::GROUP1 != 0,
            pending: value & gich::PENDING != 0,
            active: value & gich::ACTIVE != 0,
            pintid: hw.then_some((value >> gich::PHYSICAL_SHIFT) & gich::PHYSICAL_MASK),
            eoi_maintenance: !hw && value & gich::EOI != 0,
        }
    }
}

/// A list-register value from [`Vgic::flush_lrs`](super::Vgic::flush_lrs)
/// (`ICH_LR<n>_EL2` layout) as the GICv2 `GICH_LR<n>` value to write.
#[cfg(any(test, feature = "gicv2"))]
pub fn lr_to_v2(lr: u64) -> u32 {
    ListRegister::decode(lr).encode_v2()
}

/// A GICv2 `GICH_LR<n>` value read back after the guest ran, in the
/// `ICH_LR<n>_EL2` layout [`Vgic::sync_lrs`](super::Vgic::sync_lrs) takes.
#[cfg(any(test, feature = "gicv2"))]
pub fn lr_from_v2(lr: u32) -> u64 {
    ListRegister::decode_v2(lr).encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_group1_interrupt_sets_state_group_priority_and_intid_bits() {
        let lr = ListRegister {
            vintid: 33,
            priority: 0xa0,
            group1: true,
            pending: true,
            ..Default::default()
        };

        let value = lr.encode();

        assert_eq!(value & 0xffff_ffff, 33);
        assert_eq!((value >> 48) & 0xff, 0xa0);
        assert_eq!(value >> 62, 0b01, "state pending");
        assert_ne!(value & 1 << 60, 0, "group 1");
        assert_eq!(value & 1 << 61, 0, "not HW");
    }

    #[test]
    fn hw_interrupt_carries_pintid_and_never_the_eoi_bit() {
        let lr = ListRegister {
            vintid: 27,
            group1: true,
            pending: true,
            pintid: Some(27),
            eoi_maintenance: true,
            ..Default::default()
        };

        let value = lr.encode();

        assert_ne!(value & 1 << 61, 0, "HW");
        assert_eq!((value >> 32) & 0x1fff, 27);
        assert!(!ListRegister::decode(value).eoi_maintenance);
    }

    #[test]
    fn eoi_request_is_bit_41_without_hw() {
        let lr = ListRegister {
            vintid: 32,
            active: true,
            eoi_maintenance: true,
            ..Default::default()
        };

        let value = lr.encode();

        assert_eq!(value & (1 << 41 | 1 << 61), 1 << 41);
        assert_eq!(value >> 62, 0b10, "state active");
    }

    #[test]
    fn decode_reads_back_every_field_encode_wrote() {
        let lr = ListRegister {
            vintid: 1019,
            priority: 0x58,
            group1: true,
            pending: true,
            active: true,
            pintid: Some(1019),
            eoi_maintenance: false,
        };

        assert_eq!(ListRegister::decode(lr.encode()), lr);
    }

    #[test]
    fn state_zero_is_invalid() {
        assert!(ListRegister::decode(32 | 0xa0 << 48 | 1 << 60).is_invalid());
        assert!(!ListRegister::decode(1 << 63 | 32).is_invalid());
    }

    #[test]
    fn v2_pending_group0_interrupt_sets_state_priority_and_intid_bits() {
        let lr = ListRegister {
            vintid: 33,
            priority: 0xa0,
            pending: true,
            ..Default::default()
        };

        let value = lr.encode_v2();

        assert_eq!(value & 0x3ff, 33);
        assert_eq!((value >> 23) & 0x1f, 0xa0 >> 3);
        assert_eq!((value >> 28) & 0b11, 0b01, "state pending");
        assert_eq!(value & (1 << 30 | 1 << 31), 0, "group 0, not HW");
        assert_eq!(value & 0x7_fc00, 0, "no EOI request, CPUID 0");
    }

    #[test]
    fn v2_keeps_only_the_top_five_priority_bits() {
        let lr = ListRegister {
            vintid: 40,
            priority: 0xff,
            pending: true,
            ..Default::default()
        };

        let value = lr.encode_v2();

        assert_eq!(value >> 23 & 0x1f, 0x1f);
        assert_eq!(
            value & 1 << 28,
            1 << 28,
            "priority does not spill into state"
        );
        assert_eq!(ListRegister::decode_v2(value).priority, 0xf8);
    }

    #[test]
    fn v2_hw_interrupt_carries_the_physical_id_in_bits_19_to_10() {
        let lr = ListRegister {
            vintid: 27,
            active: true,
            pintid: Some(1019),
            eoi_maintenance: true,
            ..Default::default()
        };

        let value = lr.encode_v2();

        assert_ne!(value & 1 << 31, 0, "HW");
        assert_eq!((value >> 10) & 0x3ff, 1019);
        assert_eq!((value >> 28) & 0b11, 0b10, "state active");
        assert!(!ListRegister::decode_v2(value).eoi_maintenance);
        assert_eq!(ListRegister::decode_v2(value).pintid, Some(1019));
    }

    #[test]
    fn v2_eoi_request_is_bit_19_without_hw() {
        let lr = ListRegister {
            vintid: 32,
            pending: true,
            eoi_maintenance: true,
            ..Default::default()
        };

        let value = lr.encode_v2();

        assert_eq!(value & (1 << 19 | 1 << 31), 1 << 19);
        assert!(ListRegister::decode_v2(value).eoi_maintenance);
        assert_eq!(ListRegister::decode_v2(value).pintid, None);
    }

    #[test]
    fn v2_group1_is_bit_30() {
        let lr = ListRegister {
            vintid: 1,
            group1: true,
            pending: true,
            ..Default::default()
        };

        assert_eq!(lr.encode_v2() & 1 << 30, 1 << 30);
        assert!(ListRegister::decode_v2(lr.encode_v2()).group1);
    }

    #[test]
    fn v3_values_survive_the_trip_through_a_gicv2_list_register() {
        for lr in [
            ListRegister {
                vintid: 1019,
                priority: 0xa8,
                pending: true,
                active: true,
                eoi_maintenance: true,
                ..Default::default()
            },
            ListRegister {
                vintid: 27,
                priority: 0x08,
                group1: true,
                active: true,
                pintid: Some(27),
                ..Default::default()
            },
            ListRegister {
                vintid: 3,
                pending: true,
                ..Default::default()
            },
        ] {
            let v3 = lr.encode();

            assert_eq!(lr_from_v2(lr_to_v2(v3)), v3, "{lr:?}");
        }
    }

    #[test]
    fn v2_values_survive_the_trip_through_the_v3_layout() {
        // Pending + active, priority 0x15 << 3, EOI, vINTID 0x2a5; then HW
        // with pINTID 0x1f3, group 1, active.
        for v2 in [
            0x3000_0000 | 0x15 << 23 | 1 << 19 | 0x2a5,
            1 << 31 | 1 << 30 | 1 << 29 | 0x1f3 << 10 | 0x1f,
        ] {
            assert_eq!(lr_to_v2(lr_from_v2(v2)), v2, "{v2:#x}");
        }
    }

    #[test]
    fn v2_sgi_source_cpuid_is_dropped_on_the_way_back() {
        let v2 = 1 << 28 | 5 << 10 | 3;

        let lr = ListRegister::decode_v2(v2);

        assert_eq!(lr.vintid, 3);
        assert_eq!(lr.pintid, None);
        assert_eq!(lr_to_v2(lr.encode()), 1 << 28 | 3);
    }
}
