//! What only a vGICv2 has: a GICv2 distributor without the Security
//! Extensions at Xen's `GUEST_GICV2_GICD`, its registers for INTIDs 0-31
//! banked per accessing vCPU, SPIs routed by GICD_ITARGETSR and SGIs sent
//! through GICD_SGIR.
//!
//! Offsets and fields are the Arm GICv2 architecture's (IHI 0048B). The
//! guest's CPU interface at `GUEST_GICV2_GICC` is the hardware's virtual
//! one (GICV), mapped in stage 2 by the caller: nothing here emulates it.
//! Offsets of the window that are not registers here (NSACR, the
//! implementation-defined and identification space but ICPIDR2) read as
//! zero and ignore writes.
//!
//! # Every interrupt is group 0
//!
//! IGROUPR is RAZ/WI, as on Xen, and list registers carry Grp1 = 0, as
//! Xen's GICv2 driver writes them (it never sets the bit). That is what a
//! guest's virtual CPU interface signals. GICV_CTLR has the layout of a CPU
//! interface without the Security Extensions: EnableGrp0 (bit 0),
//! EnableGrp1 (1), AckCtl (2), FIQEn (3). Linux's GICv2 driver, written
//! for the Non-secure view of a physical interface where bit 0 enables
//! group 1, writes 1 to GICC_CTLR, which here is EnableGrp0, and never sets
//! AckCtl or FIQEn. A group 1 list register would then never be signalled
//! (EnableGrp1 = 0), and GICV_IAR would answer 1022 for it even if it were
//! (AckCtl = 0); a group 0 one is signalled as a virtual IRQ (FIQEn = 0)
//! and acknowledged through GICV_IAR. In the distributor likewise
//! GICD_CTLR.EnableGrp0 (bit 0, the Enable bit Linux sets) gates delivery;
//! EnableGrp1 is kept for the guest to read back and does nothing.

use super::regs::{
    BIT_REGS, BYTE_OR_WORD, BitReg, GICD_CTLR, GICD_IIDR, GICD_TYPER, ICFGR, IPRIORITYR, Scope,
    WORD, read_only, width,
};
use super::{Access, IrqRef, Kicks, MmioError, Vgic};
use crate::guest_layout::GUEST_GICV2_GICD;

const ITARGETSR: u64 = 0x0800;
const GICD_SGIR: u64 = 0x0f00;
const CPENDSGIR: u64 = 0x0f10;
const SPENDSGIR: u64 = 0x0f20;
const ICPIDR2: u64 = 0x0fe8;

/// CPUNumber: the number of CPU interfaces less one.
const TYPER_CPUS_SHIFT: u32 = 5;

/// Arm's JEP106 code as implementer, product 0, revision 0: what Xen's
/// vGICv2 reports.
const IIDR: u32 = 0x0000_043b;
/// ArchRev = 2 (GICv2) with Arm's JEP106 identity bits, as a GIC-400
/// reports. (Xen's vGICv2 aborts a read of it.)
const PIDR2_GICV2: u32 = 0x2b;

/// GICD_SGIR: the SGI's INTID, the CPU target list and the filter that
/// says whom the list names.
const SGIR_INTID_MASK: u32 = 0xf;
const SGIR_TARGETS_SHIFT: u32 = 16;
const SGIR_FILTER_SHIFT: u32 = 24;
const SGIR_FILTER_LIST: u32 = 0;
const SGIR_FILTER_OTHERS: u32 = 1;
const SGIR_FILTER_SELF: u32 = 2;

/// The bit a pending SGI shows in GICD_SPENDSGIR / GICD_CPENDSGIR: the
/// vGIC does not track SGI sources, so every SGI reads as sent by vCPU 0,
/// as its list registers say (CPUID 0, see `lr.rs`).
const SGI_SOURCE: u64 = 1 << 0;

impl Vgic {
    /// [`Vgic::mmio`] on a vGICv2, the access's size and alignment checked:
    /// only the distributor's window is emulated.
    pub(super) fn mmio_v2(
        &mut self,
        vcpu: usize,
        ipa: u64,
        access: Access,
    ) -> Result<(u64, Kicks), MmioError> {
        if !GUEST_GICV2_GICD.contains(ipa) {
            return Err(MmioError::OutsideWindows {
                ipa,
                version: self.version,
            });
        }
        // The banked words for INTIDs 0-31 reach the accessing vCPU's.
        let scope = Scope {
            private: Some(vcpu),
            spis: true,
        };
        match ipa - GUEST_GICV2_GICD.start {
            GICD_CTLR => {
                width(ipa, access, "GICD_CTLR", WORD)?;
                Ok(match access {
                    Access::Read { .. } => (u64::from(self.group_enable_bits()), Kicks::NONE),
                    Access::Write { value, .. } => (0, self.write_group_enables(value as u32)),
                })
            }
            GICD_TYPER => {
                width(ipa, access, "GICD_TYPER", WORD)?;
                Ok(read_only(access, u64::from(self.typer_v2())))
            }
            GICD_IIDR => {
                width(ipa, access, "GICD_IIDR", WORD)?;
                Ok(read_only(access, u64::from(IIDR)))
            }
            o if BIT_REGS.contains(&o) => {
                let (reg, word) = BitReg::at(o);
                width(ipa, access, reg.name(true), WORD)?;
                Ok(match (reg, access) {
                    (BitReg::Group, _) => read_only(access, 0),
                    // SGIs' set- and clear-pending bits are read-only:
                    // GICD_SPENDSGIR and GICD_CPENDSGIR have them.
                    (BitReg::SetPending | BitReg::ClearPending, Access::Write { size, value })
                        if word == 0 =>
                    {
                        let value = value & !0xffff;
                        self.bit_reg(scope, reg, 0, Access::Write { size, value })
                    }
                    _ => self.bit_reg(scope, reg, 32 * word, access),
                })
            }
            o if (IPRIORITYR..IPRIORITYR + 0x400).contains(&o) => {
                width(ipa, access, "GICD_IPRIORITYR<n>", BYTE_OR_WORD)?;
                Ok(self.priorities(scope, (o - IPRIORITYR) as u32, access))
            }
            o if (ITARGETSR..ITARGETSR + 0x400).contains(&o) => {
                width(ipa, access, "GICD_ITARGETSR<n>", BYTE_OR_WORD)?;
                Ok(self.targets(vcpu, (o - ITARGETSR) as u32, access))
            }
            o if (ICFGR..ICFGR + 0x100).contains(&o) => {
                width(ipa, access, "GICD_ICFGR<n>", WORD)?;
                Ok(self.config(scope, 4 * (o - ICFGR) as u32, access))
            }
            // Write-only; reads are UNKNOWN, here zero.
            GICD_SGIR => {
                width(ipa, access, "GICD_SGIR", WORD)?;
                Ok(match access {
                    Access::Read { .. } => (0, Kicks::NONE),
                    Access::Write { value, .. } => (0, self.write_sgir(vcpu, value as u32)),
                })
            }
            o if (CPENDSGIR..CPENDSGIR + 0x10).contains(&o) => {
                width(ipa, access, "GICD_CPENDSGIR<n>", BYTE_OR_WORD)?;
                Ok(self.sgi_pending(vcpu, (o - CPENDSGIR) as u32, false, access))
            }
            o if (SPENDSGIR..SPENDSGIR + 0x10).contains(&o) => {
                width(ipa, access, "GICD_SPENDSGIR<n>", BYTE_OR_WORD)?;
                Ok(self.sgi_pending(vcpu, (o - SPENDSGIR) as u32, true, access))
            }
            ICPIDR2 => {
                width(ipa, access, "GICD_ICPIDR2", WORD)?;
                Ok(read_only(access, u64::from(PIDR2_GICV2)))
            }
            _ => Ok(read_only(access, 0)),
        }
    }

    /// ITLinesNumber covers the SPIs in blocks of 32, CPUNumber is the vCPU
    /// count less one; no Security Extensions, so no LSPI.
    fn typer_v2(&self) -> u32 {
        let cpus = self.cpus.len().saturating_sub(1) as u32;
        self.nr_spis.div_ceil(32) | cpus << TYPER_CPUS_SHIFT
    }

    /// One bit per vCPU of the domain, as CPU target masks name them.
    fn vcpu_mask(&self) -> u32 {
        // A vGICv2 has at most 8 vCPUs.
        (1u32 << self.cpus.len().min(super::GICV2_MAX_VCPUS)) - 1
    }

    /// GICD_ITARGETSR bytes from INTID `first`, one per INTID. An SGI's or
    /// PPI's byte is read-only and names the reading vCPU (even with a
    /// single vCPU, where the architecture would allow RAZ: Linux finds its
    /// CPU's mask there). An SPI targets the lowest vCPU a write names, as
    /// on Xen (the GIC's 1-of-N model lets any named CPU take it), and
    /// reads back as that vCPU's bit. A byte naming no vCPU of the domain
    /// leaves the SPI without a target: it stays pending, delivered to
    /// none, until a write names one (Xen ignores such a write instead).
    fn targets(&mut self, vcpu: usize, first: u32, access: Access) -> (u64, Kicks) {
        let size = u32::from(access.size());
        match access {
            Access::Read { .. } => {
                let mut value = 0u64;
                for i in 0..size {
                    let intid = first + i;
                    let byte = if intid < 32 {
                        if vcpu < self.cpus.len() { 1 << vcpu } else { 0 }
                    } else {
                        self.locate(vcpu, intid)
                            .and_then(|r| self.get(r).target)
                            .map_or(0, |t| 1 << t)
                    };
                    value |= byte << (8 * i);
                }
                (value, Kicks::NONE)
            }
            Access::Write { value, .. } => {
                let mask = self.vcpu_mask();
                let mut kicks = Kicks::NONE;
                for i in 0..size {
                    let intid = first + i;
                    if intid < 32 {
                        continue;
                    }
                    let Some(r) = self.locate(vcpu, intid) else {
                        continue;
                    };
                    let named = (value >> (8 * i)) as u32 & mask;
                    let target = (named != 0).then(|| named.trailing_zeros() as usize);
                    kicks |= self.update(r, |irq| irq.target = target);
                }
                (0, kicks)
            }
        }
    }

    /// A write of `value` to GICD_SGIR by `vcpu`: SGI INTID (bits 3:0) to
    /// the vCPUs in CPUTargetList (bits 23:16) for TargetListFilter (bits
    /// 25:24) 0, to every other vCPU for 1, to `vcpu` itself for 2; 3 is
    /// reserved and sends nothing. Bits naming no vCPU of the domain are
    /// ignored; NSATT (bit 15) is, too, without Security Extensions.
    fn write_sgir(&mut self, vcpu: usize, value: u32) -> Kicks {
        if vcpu >= self.cpus.len() {
            return Kicks::NONE;
        }
        let intid = value & SGIR_INTID_MASK;
        let named = match (value >> SGIR_FILTER_SHIFT) & 0b11 {
            SGIR_FILTER_LIST => (value >> SGIR_TARGETS_SHIFT) & 0xff,
            SGIR_FILTER_OTHERS => !(1 << vcpu),
            SGIR_FILTER_SELF => 1 << vcpu,
            _ => 0,
        } & self.vcpu_mask();
        let mut kicks = Kicks::NONE;
        for target in 0..self.cpus.len() {
            if named & 1 << target != 0 {
                let r = IrqRef::Private {
                    vcpu: target,
                    intid,
                };
                kicks |= self.update(r, |irq| irq.latch = true);
            }
        }
        kicks
    }

    /// GICD_SPENDSGIR (`set`) or GICD_CPENDSGIR bytes of `vcpu` from SGI
    /// `first`, one per SGI with a bit per source CPU. Sources are not
    /// tracked: a pending SGI reads as sent by vCPU 0 ([`SGI_SOURCE`]), and
    /// a byte naming any vCPU of the domain sets or clears the SGI's
    /// pending state as a whole.
    fn sgi_pending(&mut self, vcpu: usize, first: u32, set: bool, access: Access) -> (u64, Kicks) {
        let size = u32::from(access.size());
        match access {
            Access::Read { .. } => {
                let mut value = 0u64;
                for i in 0..size {
                    let pending = self
                        .locate(vcpu, first + i)
                        .is_some_and(|r| self.get(r).pending());
                    if pending {
                        value |= SGI_SOURCE << (8 * i);
                    }
                }
                (value, Kicks::NONE)
            }
            Access::Write { value, .. } => {
                let mask = u64::from(self.vcpu_mask());
                let mut kicks = Kicks::NONE;
                for i in 0..size {
                    if (value >> (8 * i)) & mask == 0 {
                        continue;
                    }
                    let Some(r) = self.locate(vcpu, first + i) else {
                        continue;
                    };
                    kicks |= self.update(r, |irq| {
                        if set {
                            irq.latch = true;
                        } else {
                            // As ICPENDR: a list register holding it may
                            // still deliver it.
                            irq.latch = false;
                            irq.carried = false;
                        }
                    });
                }
                (0, kicks)
            }
        }
    }
}
