//! What only a vGICv3 has: the distributor's and redistributors' windows at
//! Xen's GICv3 layout, IROUTER routing by affinity, and SGIs sent through
//! `ICC_SGI1R_EL1`.
//!
//! Offsets and fields are the Arm GICv3 architecture's. With affinity
//! routing always on, the distributor's registers for INTIDs 0-31 are
//! RAZ/WI (the redistributors own them); so are the legacy and LPI
//! registers, and every offset that is not a register here.

use alloc::vec::Vec;

use super::regs::{
    BIT_REGS, BYTE_OR_WORD, BitReg, GICD_CTLR, GICD_IIDR, GICD_TYPER, ICFGR, IPRIORITYR, Scope,
    WORD, read_only, width,
};
use super::{Access, IrqRef, Kicks, MmioError, Vgic, VgicError};
use crate::guest_layout::{GUEST_GICV3_GICD, GUEST_GICV3_GICR0};

const GICD_TYPER2: u64 = 0x000c;
const GICD_IROUTER: u64 = 0x6000;
const PIDR2: u64 = 0xffe8;

const GICR_CTLR: u64 = 0x0000;
const GICR_IIDR: u64 = 0x0004;
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
/// Each vCPU's redistributor: the RD_base frame, then the SGI_base frame.
const REDIST_FRAME: u64 = 0x1_0000;
const REDIST_STRIDE: u64 = 2 * REDIST_FRAME;

const CTLR_ARE: u32 = 1 << 4;
const CTLR_DS: u32 = 1 << 6;

/// INTIDs are 10 bits (no LPIs).
const TYPER_IDBITS: u32 = (10 - 1) << 19;
/// IROUTER and ICC_SGI1R honour Aff3.
const TYPER_A3V: u32 = 1 << 24;

/// Arm's JEP106 code as implementer (as KVM does), product 'O' for Oxen,
/// revision 0: matches none of the IIDRs guests key errata on.
const IIDR: u32 = 0x4f00_043b;
/// ArchRev = 3 (GICv3) with Arm's JEP106 identity bits, as Arm's GICs
/// report; guests check ArchRev before using a distributor or
/// redistributor.
const PIDR2_GICV3: u32 = 0x3b;

const IROUTER_IRM: u64 = 1 << 31;
/// Aff3 (39:32), IRM (31), Aff2, Aff1, Aff0 (23:0); the rest is RES0.
const IROUTER_MASK: u64 = 0xff_8000_0000 | 0xff_ffff;

const GICR_TYPER_LAST: u64 = 1 << 4;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

const WORD_OR_DOUBLE: &[u8] = &[4, 8];

/// A GICv3 distributor reaches only SPIs.
const DISTRIBUTOR: Scope = Scope {
    private: None,
    spis: true,
};

/// What a vGICv3 keeps beside the interrupts' state.
#[derive(Default)]
pub(super) struct V3State {
    /// Each vCPU's packed affinity ([`affinity_of`] its MPIDR).
    affinities: Vec<u32>,
    /// Each SPI's GICD_IROUTER<n>, RES0 bits clear.
    irouters: Vec<u64>,
    /// Each vCPU's GICR_WAKER.ProcessorSleep (ChildrenAsleep follows it at
    /// once).
    asleep: Vec<bool>,
}

impl V3State {
    /// The state for vCPUs with these MPIDRs (which IROUTER and ICC_SGI1R
    /// name) and `nr_spis` SPIs routed to affinity 0.0.0.0, or why the
    /// MPIDRs cannot be told apart by a GICv3.
    pub fn new(vcpu_mpidrs: &[u64], nr_spis: u32) -> Result<Self, VgicError> {
        let mut affinities: Vec<u32> = Vec::with_capacity(vcpu_mpidrs.len());
        for (vcpu, &mpidr) in vcpu_mpidrs.iter().enumerate() {
            let affinity = affinity_of(mpidr);
            if affinity & 0xff > 15 {
                return Err(VgicError::Aff0TooLarge { vcpu, mpidr });
            }
            if let Some(first) = affinities.iter().position(|&a| a == affinity) {
                return Err(VgicError::DuplicateAffinity {
                    first,
                    second: vcpu,
                    mpidr,
                });
            }
            affinities.push(affinity);
        }
        Ok(Self {
            asleep: affinities.iter().map(|_| true).collect(),
            affinities,
            irouters: (0..nr_spis).map(|_| 0).collect(),
        })
    }

    /// IROUTER's choice: vCPU 0 for "any" (IRM = 1), else the vCPU with
    /// that affinity; an affinity no vCPU has holds the SPI pending.
    pub fn route_target(&self, route: u64) -> Option<usize> {
        if route & IROUTER_IRM != 0 {
            return Some(0);
        }
        let affinity = affinity_of(route);
        self.affinities.iter().position(|&a| a == affinity)
    }
}

/// The affinity fields of an MPIDR or IROUTER value (the same positions),
/// packed as GICR_TYPER reports them: Aff3.Aff2.Aff1.Aff0.
fn affinity_of(value: u64) -> u32 {
    (value & 0xff_ffff) as u32 | (((value >> 32) & 0xff) as u32) << 24
}

/// One 32-bit half of a 64-bit register, or all of it, as `access` asks
/// (`upper`: the access is at offset 4 of the register).
fn half(value: u64, size: u8, upper: bool) -> u64 {
    match (size, upper) {
        (8, _) => value,
        (_, true) => value >> 32,
        (_, false) => value & 0xffff_ffff,
    }
}

/// `old` with the part `access` covers replaced by `value`.
fn merge_half(old: u64, value: u64, size: u8, upper: bool) -> u64 {
    match (size, upper) {
        (8, _) => value,
        (_, true) => (old & 0xffff_ffff) | (value & 0xffff_ffff) << 32,
        (_, false) => (old & !0xffff_ffff) | (value & 0xffff_ffff),
    }
}

impl Vgic {
    /// [`Vgic::mmio`] on a vGICv3, the access's size and alignment checked.
    /// The accessing vCPU does not matter: with affinity routing every
    /// redistributor has its own frame, and the distributor is not banked.
    pub(super) fn mmio_v3(
        &mut self,
        _vcpu: usize,
        ipa: u64,
        access: Access,
    ) -> Result<(u64, Kicks), MmioError> {
        if GUEST_GICV3_GICD.contains(ipa) {
            return self.distributor_v3(ipa, ipa - GUEST_GICV3_GICD.start, access);
        }
        if GUEST_GICV3_GICR0.contains(ipa) {
            let offset = ipa - GUEST_GICV3_GICR0.start;
            let vcpu = (offset / REDIST_STRIDE) as usize;
            let offset = offset % REDIST_STRIDE;
            if vcpu >= self.cpus.len() {
                return Ok(read_only(access, 0));
            }
            return if offset < REDIST_FRAME {
                self.rd_frame(vcpu, ipa, offset, access)
            } else {
                self.sgi_frame(vcpu, ipa, offset - REDIST_FRAME, access)
            };
        }
        Err(MmioError::OutsideWindows {
            ipa,
            version: self.version,
        })
    }

    /// A trapped write of `value` to ICC_SGI1R_EL1 by `vcpu`: SGI INTID
    /// (bits 27:24) to every other vCPU when IRM (bit 40) is set, else to
    /// the vCPUs with Aff3.Aff2.Aff1 (bits 55:48, 39:32, 23:16) whose Aff0
    /// is RS * 16 + n (RS bits 47:44) for each bit n of TargetList (15:0).
    /// As with a single security state, an SGI configured as group 0 at a
    /// target is not sent there. Ignored by a vGICv2, whose guests send
    /// SGIs through GICD_SGIR.
    pub fn write_sgi1r(&mut self, vcpu: usize, value: u64) -> Kicks {
        if vcpu >= self.cpus.len() {
            return Kicks::NONE;
        }
        let intid = ((value >> 24) & 0xf) as u32;
        let broadcast = value & 1 << 40 != 0;
        let upper = ((value >> 16) & 0xff
            | ((value >> 32) & 0xff) << 8
            | ((value >> 48) & 0xff) << 16) as u32;
        let range = ((value >> 44) & 0xf) as u32;
        let mut kicks = Kicks::NONE;
        for target in 0..self.cpus.len() {
            // Empty on a vGICv2: nothing is sent.
            let Some(&affinity) = self.v3.affinities.get(target) else {
                continue;
            };
            let named = if broadcast {
                target != vcpu
            } else {
                let aff0 = affinity & 0xff;
                affinity >> 8 == upper && aff0 / 16 == range && value & 1 << (aff0 % 16) != 0
            };
            let group1 = self
                .cpus
                .get(target)
                .and_then(|c| c.private.get(intid as usize))
                .is_some_and(|irq| irq.delivered_group);
            if named && group1 {
                let r = IrqRef::Private {
                    vcpu: target,
                    intid,
                };
                kicks |= self.update(r, |irq| irq.latch = true);
            }
        }
        kicks
    }

    fn distributor_v3(
        &mut self,
        ipa: u64,
        offset: u64,
        access: Access,
    ) -> Result<(u64, Kicks), MmioError> {
        let scope = DISTRIBUTOR;
        match offset {
            // ARE and DS are fixed at one; only the group enables are
            // stored.
            GICD_CTLR => {
                width(ipa, access, "GICD_CTLR", WORD)?;
                Ok(match access {
                    Access::Read { .. } => {
                        let ctlr = CTLR_ARE | CTLR_DS | self.group_enable_bits();
                        (u64::from(ctlr), Kicks::NONE)
                    }
                    Access::Write { value, .. } => (0, self.write_group_enables(value as u32)),
                })
            }
            GICD_TYPER => {
                width(ipa, access, "GICD_TYPER", WORD)?;
                Ok(read_only(access, u64::from(self.typer_v3())))
            }
            GICD_IIDR => {
                width(ipa, access, "GICD_IIDR", WORD)?;
                Ok(read_only(access, u64::from(IIDR)))
            }
            // No vSGIs (nASSGIcap = 0) and nothing else to report.
            GICD_TYPER2 => {
                width(ipa, access, "GICD_TYPER2", WORD)?;
                Ok(read_only(access, 0))
            }
            o if BIT_REGS.contains(&o) => {
                let (reg, word) = BitReg::at(o);
                width(ipa, access, reg.name(true), WORD)?;
                Ok(self.bit_reg(scope, reg, 32 * word, access))
            }
            o if (IPRIORITYR..IPRIORITYR + 0x400).contains(&o) => {
                width(ipa, access, "GICD_IPRIORITYR<n>", BYTE_OR_WORD)?;
                Ok(self.priorities(scope, (o - IPRIORITYR) as u32, access))
            }
            o if (ICFGR..ICFGR + 0x100).contains(&o) => {
                width(ipa, access, "GICD_ICFGR<n>", WORD)?;
                Ok(self.config(scope, 4 * (o - ICFGR) as u32, access))
            }
            o if (GICD_IROUTER..GICD_IROUTER + 0x2000).contains(&o) => {
                width(ipa, access, "GICD_IROUTER<n>", WORD_OR_DOUBLE)?;
                let intid = ((o - GICD_IROUTER) / 8) as u32;
                Ok(self.irouter(intid, o % 8 == 4, access))
            }
            PIDR2 => {
                width(ipa, access, "GICD_PIDR2", WORD)?;
                Ok(read_only(access, u64::from(PIDR2_GICV3)))
            }
            _ => Ok(read_only(access, 0)),
        }
    }

    fn rd_frame(
        &mut self,
        vcpu: usize,
        ipa: u64,
        offset: u64,
        access: Access,
    ) -> Result<(u64, Kicks), MmioError> {
        match offset {
            // No LPIs: EnableLPIs and everything else read as zero.
            GICR_CTLR => {
                width(ipa, access, "GICR_CTLR", WORD)?;
                Ok(read_only(access, 0))
            }
            GICR_IIDR => {
                width(ipa, access, "GICR_IIDR", WORD)?;
                Ok(read_only(access, u64::from(IIDR)))
            }
            o if o == GICR_TYPER || o == GICR_TYPER + 4 => {
                width(ipa, access, "GICR_TYPER", WORD_OR_DOUBLE)?;
                let typer = self.gicr_typer(vcpu);
                Ok(read_only(
                    access,
                    half(typer, access.size(), o != GICR_TYPER),
                ))
            }
            GICR_WAKER => {
                width(ipa, access, "GICR_WAKER", WORD)?;
                // `vcpu` was checked by the caller (the redistributor frame
                // it names exists).
                let Some(asleep) = self.v3.asleep.get_mut(vcpu) else {
                    return Ok(read_only(access, 0));
                };
                Ok(match access {
                    Access::Read { .. } => {
                        let asleep = if *asleep {
                            WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP
                        } else {
                            0
                        };
                        (u64::from(asleep), Kicks::NONE)
                    }
                    // Nothing to quiesce: the children follow at once.
                    Access::Write { value, .. } => {
                        *asleep = value as u32 & WAKER_PROCESSOR_SLEEP != 0;
                        (0, Kicks::NONE)
                    }
                })
            }
            PIDR2 => {
                width(ipa, access, "GICR_PIDR2", WORD)?;
                Ok(read_only(access, u64::from(PIDR2_GICV3)))
            }
            _ => Ok(read_only(access, 0)),
        }
    }

    fn sgi_frame(
        &mut self,
        vcpu: usize,
        ipa: u64,
        offset: u64,
        access: Access,
    ) -> Result<(u64, Kicks), MmioError> {
        let scope = Scope {
            private: Some(vcpu),
            spis: false,
        };
        match offset {
            // Only word 0 of each block exists without extended PPIs.
            o if BIT_REGS.contains(&o) && o % 0x80 == 0 => {
                let (reg, _) = BitReg::at(o);
                width(ipa, access, reg.name(false), WORD)?;
                Ok(self.bit_reg(scope, reg, 0, access))
            }
            o if (IPRIORITYR..IPRIORITYR + 32).contains(&o) => {
                width(ipa, access, "GICR_IPRIORITYR<n>", BYTE_OR_WORD)?;
                Ok(self.priorities(scope, (o - IPRIORITYR) as u32, access))
            }
            o if o == ICFGR || o == ICFGR + 4 => {
                let name = if o == ICFGR {
                    "GICR_ICFGR0"
                } else {
                    "GICR_ICFGR1"
                };
                width(ipa, access, name, WORD)?;
                Ok(self.config(scope, 4 * (o - ICFGR) as u32, access))
            }
            _ => Ok(read_only(access, 0)),
        }
    }

    /// ITLinesNumber covers the SPIs in blocks of 32; no LPIs, no MBIS, no
    /// security extension (one security state), CPUNumber 0 since affinity
    /// routing is always on, 1-of-N SPIs supported, Aff0 limited to 0-15
    /// for SGIs (RSS = 0).
    fn typer_v3(&self) -> u32 {
        self.nr_spis.div_ceil(32) | TYPER_IDBITS | TYPER_A3V
    }

    /// Affinity_Value from the vCPU's MPIDR, Processor_Number its index,
    /// Last on the final vCPU's redistributor; no LPI support bits.
    fn gicr_typer(&self, vcpu: usize) -> u64 {
        let affinity = self.v3.affinities.get(vcpu).copied().unwrap_or(0);
        let mut typer = u64::from(affinity) << 32 | (vcpu as u64) << 8;
        if vcpu + 1 == self.cpus.len() {
            typer |= GICR_TYPER_LAST;
        }
        typer
    }

    /// GICD_IROUTER<intid>, whole or one half. A write resolves the target
    /// vCPU at once: the affinities never change.
    fn irouter(&mut self, intid: u32, upper: bool, access: Access) -> (u64, Kicks) {
        let Some(r @ IrqRef::Spi(i)) = self.scoped(DISTRIBUTOR, intid) else {
            return read_only(access, 0);
        };
        let Some(&old) = self.v3.irouters.get(i) else {
            return read_only(access, 0); // one IROUTER per SPI
        };
        let size = access.size();
        match access {
            Access::Read { .. } => (half(old, size, upper), Kicks::NONE),
            Access::Write { value, .. } => {
                let route = merge_half(old, value, size, upper) & IROUTER_MASK;
                if let Some(slot) = self.v3.irouters.get_mut(i) {
                    *slot = route;
                }
                let target = self.v3.route_target(route);
                (0, self.update(r, |irq| irq.target = target))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vgic::GicVersion;

    const GICD: u64 = 0x0300_1000;
    const GICR: u64 = 0x0302_0000;
    const SGI_FRAME: u64 = 0x1_0000;

    /// vCPU i has Xen's MPIDR for vCPU i: Aff0 = i & 0xf, Aff1 = i >> 4.
    fn mpidr(i: usize) -> u64 {
        (i as u64 & 0xf) | ((i as u64 >> 4) << 8)
    }

    fn vgic(nr_vcpus: usize, nr_spis: u32) -> Vgic {
        let mpidrs: alloc::vec::Vec<u64> = (0..nr_vcpus).map(mpidr).collect();
        Vgic::new(nr_vcpus, nr_spis, &mpidrs)
    }

    fn read(v: &mut Vgic, ipa: u64, size: u8) -> u64 {
        v.mmio(0, ipa, Access::Read { size }).unwrap().0
    }

    fn write(v: &mut Vgic, ipa: u64, size: u8, value: u64) -> Kicks {
        v.mmio(0, ipa, Access::Write { size, value }).unwrap().1
    }

    fn rd(vcpu: u64) -> u64 {
        GICR + vcpu * 0x20000
    }

    #[test]
    fn affinity_packs_aff3_above_aff2_aff1_aff0() {
        assert_eq!(affinity_of(0x7_8012_0304), 0x0712_0304);
    }

    #[test]
    fn typer_it_lines_number_covers_32_spis() {
        let mut v = vgic(1, 32);

        assert_eq!(read(&mut v, GICD + 4, 4) & 0x1f, 1);
    }

    #[test]
    fn typer_it_lines_number_covers_64_spis() {
        let mut v = vgic(1, 64);

        assert_eq!(read(&mut v, GICD + 4, 4) & 0x1f, 2);
    }

    #[test]
    fn typer_rounds_a_partial_block_of_spis_up() {
        let mut v = vgic(1, 33);

        assert_eq!(read(&mut v, GICD + 4, 4) & 0x1f, 2);
    }

    #[test]
    fn typer_reports_10_id_bits_and_no_lpis_mbis_or_security_extension() {
        let mut v = vgic(2, 32);

        let typer = read(&mut v, GICD + 4, 4);

        assert_eq!((typer >> 19) & 0x1f, 9, "IDbits");
        assert_eq!(typer & (1 << 17 | 1 << 16 | 1 << 10), 0);
    }

    #[test]
    fn ctlr_reads_are_and_ds_fixed_and_keeps_group_enables() {
        let mut v = vgic(1, 32);
        assert_eq!(read(&mut v, GICD, 4), 0x50);

        write(&mut v, GICD, 4, 0x13);

        assert_eq!(read(&mut v, GICD, 4), 0x53);
        write(&mut v, GICD, 4, 0);
        assert_eq!(read(&mut v, GICD, 4), 0x50, "ARE and DS cannot be cleared");
    }

    #[test]
    fn iidr_and_typer2_read_their_fixed_values() {
        let mut v = vgic(1, 32);

        assert_eq!(read(&mut v, GICD + 8, 4), u64::from(IIDR));
        assert_eq!(read(&mut v, GICD + 0xc, 4), 0);
        assert_eq!(read(&mut v, rd(0) + 4, 4), u64::from(IIDR));
    }

    #[test]
    fn pidr2_reports_gicv3_on_distributor_and_every_redistributor() {
        let mut v = vgic(3, 32);

        assert_eq!((read(&mut v, GICD + 0xffe8, 4) >> 4) & 0xf, 3);
        for vcpu in 0..3 {
            assert_eq!((read(&mut v, rd(vcpu) + 0xffe8, 4) >> 4) & 0xf, 3);
        }
    }

    #[test]
    fn spi_enable_is_set_and_cleared_through_its_two_registers() {
        let mut v = vgic(1, 64);

        write(&mut v, GICD + 0x104, 4, 0b1010);
        assert_eq!(read(&mut v, GICD + 0x104, 4), 0b1010);
        assert_eq!(read(&mut v, GICD + 0x184, 4), 0b1010);

        write(&mut v, GICD + 0x184, 4, 0b0010);

        assert_eq!(read(&mut v, GICD + 0x104, 4), 0b1000);
    }

    #[test]
    fn spi_pending_is_set_and_cleared_through_its_two_registers() {
        let mut v = vgic(1, 64);

        write(&mut v, GICD + 0x208, 4, 1 << 5);
        assert_eq!(read(&mut v, GICD + 0x208, 4), 1 << 5);
        assert_eq!(read(&mut v, GICD + 0x288, 4), 1 << 5);

        write(&mut v, GICD + 0x288, 4, 1 << 5);

        assert_eq!(read(&mut v, GICD + 0x208, 4), 0);
    }

    #[test]
    fn spi_active_is_set_and_cleared_through_its_two_registers() {
        let mut v = vgic(1, 32);

        write(&mut v, GICD + 0x304, 4, 0x8000_0001);
        assert_eq!(read(&mut v, GICD + 0x384, 4), 0x8000_0001);

        write(&mut v, GICD + 0x384, 4, 1);

        assert_eq!(read(&mut v, GICD + 0x304, 4), 0x8000_0000);
    }

    #[test]
    fn priority_bytes_and_words_address_the_same_interrupts() {
        let mut v = vgic(1, 32);

        write(&mut v, GICD + 0x420, 4, 0x1020_3040);
        write(&mut v, GICD + 0x425, 1, 0xa0);

        assert_eq!(read(&mut v, GICD + 0x422, 1), 0x20);
        assert_eq!(read(&mut v, GICD + 0x424, 4), 0xa000);
        assert_eq!(read(&mut v, GICD + 0x420, 4), 0x1020_3040);
    }

    #[test]
    fn priority_keeps_only_the_five_implemented_bits() {
        let mut v = vgic(1, 32);

        write(&mut v, GICD + 0x420, 1, 0xff);

        assert_eq!(read(&mut v, GICD + 0x420, 1), 0xf8);
    }

    #[test]
    fn spi_config_reads_back_edge_bits() {
        let mut v = vgic(1, 32);
        assert_eq!(read(&mut v, GICD + 0xc08, 4), 0, "SPIs reset level");

        write(&mut v, GICD + 0xc08, 4, 0b10_00_10);

        assert_eq!(read(&mut v, GICD + 0xc08, 4), 0b10_00_10);
    }

    #[test]
    fn sgi_config_is_always_edge_and_ppi_config_is_programmable() {
        let mut v = vgic(1, 32);

        write(&mut v, rd(0) + SGI_FRAME + 0xc00, 4, 0);
        write(&mut v, rd(0) + SGI_FRAME + 0xc04, 4, 0x8000_0000);

        assert_eq!(read(&mut v, rd(0) + SGI_FRAME + 0xc00, 4), 0xaaaa_aaaa);
        assert_eq!(read(&mut v, rd(0) + SGI_FRAME + 0xc04, 4), 0x8000_0000);
    }

    #[test]
    fn sgi_frame_registers_are_banked_per_vcpu() {
        let mut v = vgic(2, 32);
        let frame1 = rd(1) + SGI_FRAME;

        write(&mut v, frame1 + 0x100, 4, 1 << 27);
        write(&mut v, frame1 + 0x200, 4, 1 << 3);
        write(&mut v, frame1 + 0x41b, 1, 0x80);

        assert_eq!(read(&mut v, frame1 + 0x100, 4), 1 << 27);
        assert_eq!(read(&mut v, frame1 + 0x200, 4), 1 << 3);
        assert_eq!(read(&mut v, frame1 + 0x418, 4), 0x8000_0000);
        let frame0 = rd(0) + SGI_FRAME;
        assert_eq!(read(&mut v, frame0 + 0x100, 4), 0);
        assert_eq!(read(&mut v, frame0 + 0x200, 4), 0);
        assert_eq!(read(&mut v, frame0 + 0x418, 4), 0);
    }

    #[test]
    fn groups_reset_to_group1_and_are_programmable() {
        let mut v = vgic(1, 32);
        assert_eq!(read(&mut v, GICD + 0x84, 4), 0xffff_ffff);
        assert_eq!(read(&mut v, rd(0) + SGI_FRAME + 0x80, 4), 0xffff_ffff);

        write(&mut v, GICD + 0x84, 4, 0xffff_fffe);

        assert_eq!(read(&mut v, GICD + 0x84, 4), 0xffff_fffe);
    }

    #[test]
    fn distributor_words_for_private_interrupts_are_raz_wi() {
        let mut v = vgic(1, 32);

        write(&mut v, GICD + 0x100, 4, 0xffff_ffff);
        write(&mut v, GICD + 0x400, 4, 0x8080_8080);

        assert_eq!(read(&mut v, GICD + 0x100, 4), 0);
        assert_eq!(read(&mut v, GICD + 0x80, 4), 0);
        assert_eq!(read(&mut v, GICD + 0x400, 4), 0);
        assert_eq!(read(&mut v, rd(0) + SGI_FRAME + 0x100, 4), 0);
    }

    #[test]
    fn interrupts_beyond_nr_spis_are_raz_wi() {
        let mut v = vgic(1, 40);

        write(&mut v, GICD + 0x104, 4, 0xffff_ffff);
        write(&mut v, GICD + 0x108, 4, 0xffff_ffff);
        write(&mut v, GICD + 0x44f, 1, 0x80);

        assert_eq!(read(&mut v, GICD + 0x104, 4), 0xffff_ffff);
        assert_eq!(read(&mut v, GICD + 0x108, 4), 0xff, "only SPIs 64..72");
        assert_eq!(read(&mut v, GICD + 0x10c, 4), 0);
        assert_eq!(read(&mut v, GICD + 0x44c, 4), 0);
    }

    #[test]
    fn irouter_reads_back_whole_and_by_halves() {
        let mut v = vgic(2, 32);
        let irouter33 = GICD + 0x6000 + 33 * 8;

        write(&mut v, irouter33, 8, 0x12_0000_0304);
        assert_eq!(read(&mut v, irouter33, 8), 0x12_0000_0304);
        assert_eq!(read(&mut v, irouter33, 4), 0x304);
        assert_eq!(read(&mut v, irouter33 + 4, 4), 0x12);

        write(&mut v, irouter33 + 4, 4, 0x7);

        assert_eq!(read(&mut v, irouter33, 8), 0x7_0000_0304);
    }

    #[test]
    fn irouter_res0_bits_read_as_zero() {
        let mut v = vgic(1, 32);
        let irouter32 = GICD + 0x6100;

        write(&mut v, irouter32, 8, u64::MAX);

        assert_eq!(read(&mut v, irouter32, 8), 0xff_80ff_ffff);
    }

    #[test]
    fn irouter_of_a_missing_spi_or_private_interrupt_is_raz_wi() {
        let mut v = vgic(1, 32);

        write(&mut v, GICD + 0x6000 + 64 * 8, 8, 1 << 31);
        write(&mut v, GICD + 0x6000 + 8, 8, 1 << 31);

        assert_eq!(read(&mut v, GICD + 0x6000 + 64 * 8, 8), 0);
        assert_eq!(read(&mut v, GICD + 0x6000 + 8, 8), 0);
    }

    #[test]
    fn misaligned_access_is_an_error() {
        let mut v = vgic(1, 32);

        let err = v.mmio(0, GICD + 0x102, Access::Read { size: 4 });

        assert_eq!(
            err,
            Err(MmioError::Misaligned {
                ipa: GICD + 0x102,
                size: 4
            })
        );
    }

    #[test]
    fn halfword_access_to_a_word_register_is_an_error_naming_it() {
        let mut v = vgic(1, 32);

        let err = v
            .mmio(0, GICD + 0x104, Access::Write { size: 2, value: 1 })
            .unwrap_err();

        assert!(matches!(
            err,
            MmioError::BadWidth {
                register: "GICD_ISENABLER<n>",
                size: 2,
                ..
            }
        ));
        assert_eq!(
            alloc::format!("{err}"),
            "vGIC: GICD_ISENABLER<n> at 0x3001104 does not take 2-byte accesses (expected 4 bytes)"
        );
    }

    #[test]
    fn doubleword_access_to_a_word_register_is_an_error() {
        let mut v = vgic(1, 32);

        let err = v.mmio(0, GICD, Access::Read { size: 8 }).unwrap_err();

        assert!(matches!(
            err,
            MmioError::BadWidth {
                register: "GICD_CTLR",
                ..
            }
        ));
    }

    #[test]
    fn byte_access_to_irouter_is_an_error_listing_the_accepted_sizes() {
        let mut v = vgic(1, 32);

        let err = v
            .mmio(0, GICD + 0x6100, Access::Read { size: 1 })
            .unwrap_err();

        assert_eq!(
            alloc::format!("{err}"),
            "vGIC: GICD_IROUTER<n> at 0x3007100 does not take 1-byte accesses (expected 4 or 8 bytes)"
        );
    }

    #[test]
    fn three_byte_access_is_an_error() {
        let mut v = vgic(1, 32);

        let err = v.mmio(0, GICD, Access::Read { size: 3 });

        assert_eq!(err, Err(MmioError::UnsupportedSize { ipa: GICD, size: 3 }));
    }

    #[test]
    fn address_outside_both_windows_is_an_error() {
        let mut v = vgic(1, 32);

        assert_eq!(
            v.mmio(0, GICD - 4, Access::Read { size: 4 }),
            Err(MmioError::OutsideWindows {
                ipa: GICD - 4,
                version: GicVersion::V3
            })
        );
        let err = v
            .mmio(0, GICR + 0x0100_0000, Access::Read { size: 4 })
            .unwrap_err();
        assert_eq!(
            alloc::format!("{err}"),
            "vGIC: 0x4020000 is outside the distributor (0x0003001000-0x0003011000) and \
             redistributor (0x0003020000-0x0004020000) windows"
        );
    }

    #[test]
    fn unimplemented_offsets_read_as_zero_and_ignore_writes() {
        let mut v = vgic(1, 32);

        for ipa in [
            GICD + 0x10,
            GICD + 0xf00,
            GICD + 0x800,
            rd(0) + 0x70,
            rd(0) + SGI_FRAME + 0x104,
        ] {
            write(&mut v, ipa, 4, 0xffff_ffff);
            assert_eq!(read(&mut v, ipa, 4), 0, "{ipa:#x}");
        }
        assert_eq!(read(&mut v, GICD + 0x12, 2), 0, "any size is fine there");
    }

    #[test]
    fn waker_reports_asleep_until_woken_and_children_follow() {
        let mut v = vgic(2, 32);
        let waker = rd(1) + 0x14;
        assert_eq!(read(&mut v, waker, 4), 0b110);

        write(&mut v, waker, 4, 0);
        assert_eq!(read(&mut v, waker, 4), 0);
        assert_eq!(read(&mut v, rd(0) + 0x14, 4), 0b110, "vCPU 0 still asleep");

        write(&mut v, waker, 4, 0b010);

        assert_eq!(read(&mut v, waker, 4), 0b110);
    }

    #[test]
    fn gicr_typer_reports_affinity_processor_number_and_last_only_on_the_last_vcpu() {
        let mut v = vgic(18, 32);

        let typer0 = read(&mut v, rd(0) + 8, 8);
        let typer17 = read(&mut v, rd(17) + 8, 8);

        assert_eq!(typer0 & GICR_TYPER_LAST, 0);
        assert_eq!(typer17 & GICR_TYPER_LAST, GICR_TYPER_LAST);
        assert_eq!(typer17 >> 32, 0x101, "vCPU 17 is Aff1 1, Aff0 1");
        assert_eq!((typer17 >> 8) & 0xffff, 17);
    }

    #[test]
    fn gicr_typer_halves_match_the_doubleword() {
        let mut v = vgic(2, 32);

        let whole = read(&mut v, rd(1) + 8, 8);
        let low = read(&mut v, rd(1) + 8, 4);
        let high = read(&mut v, rd(1) + 0xc, 4);

        assert_eq!(high << 32 | low, whole);
    }

    #[test]
    fn redistributor_frames_past_the_last_vcpu_are_raz_wi() {
        let mut v = vgic(2, 32);

        write(&mut v, rd(2) + SGI_FRAME + 0x100, 4, 0xffff_ffff);

        assert_eq!(read(&mut v, rd(2) + 8, 8), 0);
        assert_eq!(read(&mut v, rd(2) + 0xffe8, 4), 0);
        assert_eq!(read(&mut v, rd(2) + SGI_FRAME + 0x100, 4), 0);
    }
}
