//! The distributor registers a vGICv2 and a vGICv3 share: the same offsets
//! and fields in both architectures (control, the one-bit-per-INTID blocks,
//! priorities, configuration), carried out on the vGIC's state, and the
//! access-width check every register makes.

use super::irq::Irq;
use super::{Access, IrqRef, Kicks, MmioError, Vgic};

pub(super) const GICD_CTLR: u64 = 0x0000;
pub(super) const GICD_TYPER: u64 = 0x0004;
pub(super) const GICD_IIDR: u64 = 0x0008;
/// IGROUPR, IS/ICENABLER, IS/ICPENDR and IS/ICACTIVER: seven blocks of
/// 0x80 bytes from here, one bit per INTID; a GICv3 redistributor's SGI
/// frame uses the same offsets for its word 0.
pub(super) const BIT_REGS: core::ops::Range<u64> = 0x0080..0x0400;
pub(super) const IPRIORITYR: u64 = 0x0400;
pub(super) const ICFGR: u64 = 0x0c00;

pub(super) const CTLR_ENABLE_GRP0: u32 = 1 << 0;
pub(super) const CTLR_ENABLE_GRP1: u32 = 1 << 1;

/// Priority bits a guest can set: the virtual CPU interface is only
/// guaranteed to implement five (and a GICv2 list register holds no more),
/// so the low three read as zero, as on a GIC that implements five.
pub(super) const PRIORITY_MASK: u8 = 0xf8;

pub(super) const WORD: &[u8] = &[4];
pub(super) const BYTE_OR_WORD: &[u8] = &[1, 4];

/// The one-bit-per-INTID registers, in offset order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BitReg {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl BitReg {
    /// The register and word index at `offset` inside [`BIT_REGS`].
    pub fn at(offset: u64) -> (BitReg, u32) {
        let reg = match offset / 0x80 {
            1 => BitReg::Group,
            2 => BitReg::SetEnable,
            3 => BitReg::ClearEnable,
            4 => BitReg::SetPending,
            5 => BitReg::ClearPending,
            6 => BitReg::SetActive,
            _ => BitReg::ClearActive,
        };
        (reg, ((offset % 0x80) / 4) as u32)
    }

    /// The register's name in a distributor, or (`distributor` false) in a
    /// GICv3 redistributor's SGI frame.
    pub fn name(self, distributor: bool) -> &'static str {
        match (self, distributor) {
            (BitReg::Group, true) => "GICD_IGROUPR<n>",
            (BitReg::SetEnable, true) => "GICD_ISENABLER<n>",
            (BitReg::ClearEnable, true) => "GICD_ICENABLER<n>",
            (BitReg::SetPending, true) => "GICD_ISPENDR<n>",
            (BitReg::ClearPending, true) => "GICD_ICPENDR<n>",
            (BitReg::SetActive, true) => "GICD_ISACTIVER<n>",
            (BitReg::ClearActive, true) => "GICD_ICACTIVER<n>",
            (BitReg::Group, false) => "GICR_IGROUPR0",
            (BitReg::SetEnable, false) => "GICR_ISENABLER0",
            (BitReg::ClearEnable, false) => "GICR_ICENABLER0",
            (BitReg::SetPending, false) => "GICR_ISPENDR0",
            (BitReg::ClearPending, false) => "GICR_ICPENDR0",
            (BitReg::SetActive, false) => "GICR_ISACTIVER0",
            (BitReg::ClearActive, false) => "GICR_ICACTIVER0",
        }
    }
}

/// Which interrupts a register block reaches: a GICv3 distributor only the
/// SPIs, a GICv3 redistributor only its vCPU's SGIs and PPIs, a GICv2
/// distributor both (its words for INTIDs 0-31 are banked per vCPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Scope {
    /// The vCPU whose SGIs and PPIs the block reaches, if any.
    pub private: Option<usize>,
    pub spis: bool,
}

impl Irq {
    /// Pending as GICD_ISPENDR reads it.
    pub fn pending(&self) -> bool {
        self.latch || self.carried || self.level_high()
    }
}

/// The result of an access to a register that needs no state change:
/// reads give `value`, writes are ignored.
pub(super) fn read_only(access: Access, value: u64) -> (u64, Kicks) {
    match access {
        Access::Read { .. } => (value, Kicks::NONE),
        Access::Write { .. } => (0, Kicks::NONE),
    }
}

/// `Ok` if `register` takes an access of this size.
pub(super) fn width(
    ipa: u64,
    access: Access,
    register: &'static str,
    sizes: &'static [u8],
) -> Result<(), MmioError> {
    let size = access.size();
    if sizes.contains(&size) {
        Ok(())
    } else {
        Err(MmioError::BadWidth {
            ipa,
            size,
            register,
            sizes,
        })
    }
}

impl Vgic {
    /// The interrupt `intid` in `scope`, if the domain has it.
    pub(super) fn scoped(&self, scope: Scope, intid: u32) -> Option<IrqRef> {
        if intid < 32 {
            scope.private.and_then(|vcpu| self.locate(vcpu, intid))
        } else if scope.spis {
            self.locate(0, intid)
        } else {
            None
        }
    }

    /// GICD_CTLR's EnableGrp0 and EnableGrp1 bits as stored.
    pub(super) fn group_enable_bits(&self) -> u32 {
        let mut bits = 0;
        if self.grp0_enabled {
            bits |= CTLR_ENABLE_GRP0;
        }
        if self.grp1_enabled {
            bits |= CTLR_ENABLE_GRP1;
        }
        bits
    }

    /// Stores GICD_CTLR's two group enables; the one of the group this
    /// vGIC does not deliver is kept for the guest to read back and has no
    /// effect. Enabling the delivered group kicks every vCPU that now has
    /// something to take.
    pub(super) fn write_group_enables(&mut self, value: u32) -> Kicks {
        let was = self.group_enabled();
        self.grp0_enabled = value & CTLR_ENABLE_GRP0 != 0;
        self.grp1_enabled = value & CTLR_ENABLE_GRP1 != 0;
        if was || !self.group_enabled() {
            return Kicks::NONE;
        }
        let mut kicks = Kicks::NONE;
        for vcpu in 0..self.cpus.len() {
            if self.has_pending(vcpu) {
                kicks |= Kicks::one(vcpu);
            }
        }
        kicks
    }

    /// One 32-bit word of IGROUPR / IS/ICENABLER / IS/ICPENDR /
    /// IS/ICACTIVER covering `first..first + 32`.
    pub(super) fn bit_reg(
        &mut self,
        scope: Scope,
        reg: BitReg,
        first: u32,
        access: Access,
    ) -> (u64, Kicks) {
        match access {
            Access::Read { .. } => {
                let mut value = 0u64;
                for bit in 0..32 {
                    let Some(r) = self.scoped(scope, first + bit) else {
                        continue;
                    };
                    let irq = self.get(r);
                    let set = match reg {
                        BitReg::Group => irq.delivered_group,
                        BitReg::SetEnable | BitReg::ClearEnable => irq.enabled,
                        BitReg::SetPending | BitReg::ClearPending => irq.pending(),
                        BitReg::SetActive | BitReg::ClearActive => irq.active,
                    };
                    value |= u64::from(set) << bit;
                }
                (value, Kicks::NONE)
            }
            Access::Write { value, .. } => {
                let mut kicks = Kicks::NONE;
                for bit in 0..32 {
                    let one = value & 1 << bit != 0;
                    // Set/clear registers ignore zeros; IGROUPR takes both.
                    if !one && reg != BitReg::Group {
                        continue;
                    }
                    let Some(r) = self.scoped(scope, first + bit) else {
                        continue;
                    };
                    kicks |= self.update(r, |irq| match reg {
                        BitReg::Group => irq.delivered_group = one,
                        BitReg::SetEnable => irq.enabled = true,
                        BitReg::ClearEnable => irq.enabled = false,
                        BitReg::SetPending => irq.latch = true,
                        // A list register that already holds it may still
                        // deliver it; it is just not handed back at sync.
                        BitReg::ClearPending => {
                            irq.latch = false;
                            irq.carried = false;
                        }
                        BitReg::SetActive => irq.active = true,
                        BitReg::ClearActive => irq.active = false,
                    });
                }
                (0, kicks)
            }
        }
    }

    /// IPRIORITYR bytes from INTID `first`, one per INTID.
    pub(super) fn priorities(&mut self, scope: Scope, first: u32, access: Access) -> (u64, Kicks) {
        let size = u32::from(access.size());
        match access {
            Access::Read { .. } => {
                let mut value = 0u64;
                for i in 0..size {
                    if let Some(r) = self.scoped(scope, first + i) {
                        value |= u64::from(self.get(r).priority) << (8 * i);
                    }
                }
                (value, Kicks::NONE)
            }
            Access::Write { value, .. } => {
                for i in 0..size {
                    if let Some(r) = self.scoped(scope, first + i) {
                        self.get_mut(r).priority = (value >> (8 * i)) as u8 & PRIORITY_MASK;
                    }
                }
                (0, Kicks::NONE)
            }
        }
    }

    /// ICFGR word covering INTIDs `first..first + 16`, two bits each: the
    /// upper one set means edge-triggered. SGIs are always edge and their
    /// fields ignore writes.
    pub(super) fn config(&mut self, scope: Scope, first: u32, access: Access) -> (u64, Kicks) {
        match access {
            Access::Read { .. } => {
                let mut value = 0u64;
                for i in 0..16 {
                    if let Some(r) = self.scoped(scope, first + i) {
                        value |= u64::from(self.get(r).edge) << (2 * i + 1);
                    }
                }
                (value, Kicks::NONE)
            }
            Access::Write { value, .. } => {
                let mut kicks = Kicks::NONE;
                for i in 0..16 {
                    let intid = first + i;
                    if intid < 16 {
                        continue;
                    }
                    if let Some(r) = self.scoped(scope, intid) {
                        let edge = value & 1 << (2 * i + 1) != 0;
                        kicks |= self.update(r, |irq| irq.edge = edge);
                    }
                }
                (0, kicks)
            }
        }
    }
}
