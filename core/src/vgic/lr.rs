//! The layout of a GICv3 list register (`ICH_LR<n>_EL2`), the one place
//! that knows which bit means what.

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
}
