//! A model of one domain's virtual GICv3: the state of its interrupts, the
//! distributor and redistributor registers the guest programs, and the
//! list-register values that present interrupts to each vCPU.
//!
//! The guest sees Xen's layout (distributor at `GUEST_GICV3_GICD`, one
//! 128 KiB redistributor per vCPU from `GUEST_GICV3_GICR0`) of a GICv3 with a
//! single security state (`GICD_CTLR.DS` = 1) and affinity routing always on.
//! Its CPU interface is the hardware's virtual one: the caller traps guest
//! MMIO and `ICC_SGI1R_EL1` writes to [`Vgic::mmio`] and
//! [`Vgic::write_sgi1r`], calls [`Vgic::flush_lrs`] before entering a vCPU
//! and [`Vgic::sync_lrs`] after leaving it, and IPIs or wakes the vCPUs in the
//! [`Kicks`] each call returns.
//!
//! The model is the authority on an interrupt's state except while a list
//! register holds it; sync folds back what the guest did to it (acknowledged,
//! EOIed, deactivated). Only group 1 is delivered: a guest that puts an
//! interrupt in group 0 (a virtual FIQ) never receives it.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod irq;
mod lr;
mod regs;
mod set;

pub use lr::ListRegister;

use alloc::vec::Vec;
use core::fmt;
use core::ops::{BitOr, BitOrAssign};

use irq::Irq;
use set::IrqSet;

/// Most vCPUs one vGIC serves: one bit each in [`Kicks`]. (The 16 MiB
/// redistributor window would hold 128, Xen's `GUEST_MAX_VCPUS`.)
pub const MAX_VCPUS: usize = 64;
/// Most SPIs: INTIDs 32..=1019.
pub const MAX_SPIS: u32 = 1020 - 32;
/// Most list registers a CPU interface has (`ICH_VTR_EL2.ListRegs` + 1).
pub const MAX_LRS: usize = 16;

/// A set of vCPUs that gained something deliverable and must be woken from
/// WFI, or interrupted if running, to reload their list registers. It may
/// name the vCPU that made the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kicks(pub u64);

impl Kicks {
    pub const NONE: Kicks = Kicks(0);

    pub fn one(vcpu: usize) -> Self {
        Kicks(1 << vcpu)
    }

    pub fn contains(self, vcpu: usize) -> bool {
        vcpu < MAX_VCPUS && self.0 & 1 << vcpu != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The vCPU indices, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_VCPUS).filter(move |&v| self.contains(v))
    }

    fn without(self, vcpu: usize) -> Self {
        Kicks(self.0 & !(1 << vcpu))
    }
}

impl BitOr for Kicks {
    type Output = Kicks;

    fn bitor(self, rhs: Kicks) -> Kicks {
        Kicks(self.0 | rhs.0)
    }
}

impl BitOrAssign for Kicks {
    fn bitor_assign(&mut self, rhs: Kicks) {
        self.0 |= rhs.0;
    }
}

/// A trapped guest access; `size` is in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read { size: u8 },
    Write { size: u8, value: u64 },
}

impl Access {
    pub fn size(self) -> u8 {
        match self {
            Access::Read { size } | Access::Write { size, .. } => size,
        }
    }
}

/// A guest access the vGIC refuses; the caller injects a data abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// The address is in neither the distributor nor the redistributor
    /// window.
    OutsideWindows { ipa: u64 },
    /// A size other than 1, 2, 4 or 8 bytes.
    UnsupportedSize { ipa: u64, size: u8 },
    /// The address is not a multiple of the size.
    Misaligned { ipa: u64, size: u8 },
    /// The register does not take accesses of this size.
    BadWidth {
        ipa: u64,
        size: u8,
        register: &'static str,
        sizes: &'static [u8],
    },
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MmioError::OutsideWindows { ipa } => write!(
                f,
                "vGIC: {ipa:#x} is outside the distributor ({}) and redistributor ({}) windows",
                crate::guest_layout::GUEST_GICV3_GICD,
                crate::guest_layout::GUEST_GICV3_GICR0
            ),
            MmioError::UnsupportedSize { ipa, size } => write!(
                f,
                "vGIC: {size}-byte access at {ipa:#x} (expected 1, 2, 4 or 8 bytes)"
            ),
            MmioError::Misaligned { ipa, size } => write!(
                f,
                "vGIC: {size}-byte access at {ipa:#x} is not aligned to its size"
            ),
            MmioError::BadWidth {
                ipa,
                size,
                register,
                sizes,
            } => {
                write!(
                    f,
                    "vGIC: {register} at {ipa:#x} does not take {size}-byte accesses (expected "
                )?;
                for (i, s) in sizes.iter().enumerate() {
                    match i {
                        0 => {}
                        i if i + 1 == sizes.len() => f.write_str(" or ")?,
                        _ => f.write_str(", ")?,
                    }
                    write!(f, "{s}")?;
                }
                f.write_str(" bytes)")
            }
        }
    }
}

/// A vGIC that cannot be built as asked; the caller adds the domain's node
/// path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VgicError {
    VcpuCount {
        nr_vcpus: usize,
    },
    SpiCount {
        nr_spis: u32,
    },
    MpidrCount {
        nr_vcpus: usize,
        mpidrs: usize,
    },
    /// SGIs name targets by a 16-bit list of Aff0 values.
    Aff0TooLarge {
        vcpu: usize,
        mpidr: u64,
    },
    DuplicateAffinity {
        first: usize,
        second: usize,
        mpidr: u64,
    },
}

impl fmt::Display for VgicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VgicError::VcpuCount { nr_vcpus } => write!(
                f,
                "vGIC: {nr_vcpus} vCPUs is out of range (expected 1 to {MAX_VCPUS})"
            ),
            VgicError::SpiCount { nr_spis } => write!(
                f,
                "vGIC: nr_spis = {nr_spis} is out of range (expected at most {MAX_SPIS})"
            ),
            VgicError::MpidrCount { nr_vcpus, mpidrs } => write!(
                f,
                "vGIC: {mpidrs} MPIDRs given for {nr_vcpus} vCPUs (expected one per vCPU)"
            ),
            VgicError::Aff0TooLarge { vcpu, mpidr } => write!(
                f,
                "vGIC: vCPU {vcpu} MPIDR {mpidr:#x} has Aff0 {} (expected 0 to 15)",
                mpidr & 0xff
            ),
            VgicError::DuplicateAffinity {
                first,
                second,
                mpidr,
            } => write!(
                f,
                "vGIC: vCPUs {first} and {second} share the affinity of MPIDR {mpidr:#x} \
                 (expected distinct affinities)"
            ),
        }
    }
}

/// What [`Vgic::flush_lrs`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LrFlush {
    /// `out[..count]` hold interrupts; the rest of `out` is left as the
    /// caller had it (zero, for registers to load)
    /// (invalid).
    pub count: usize,
    /// More interrupts wait than fit: set `ICH_HCR_EL2.UIE` so the vCPU exits
    /// once the guest has consumed most of them.
    pub underflow: bool,
}

/// One vCPU's redistributor and the list registers last given to it.
struct VcpuState {
    private: [Irq; 32],
    /// GICR_WAKER.ProcessorSleep (ChildrenAsleep follows it at once).
    asleep: bool,
    written: [u64; MAX_LRS],
    nr_written: usize,
    /// Every interrupt this vCPU would list if the distributor's group 1
    /// were enabled ([`Irq::may_want_lr`] with this vCPU its
    /// destination), and perhaps some that no longer would: flush and
    /// `has_pending` look only at these, and flush drops the stale ones.
    candidates: IrqSet,
}

/// Where an interrupt's state lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IrqRef {
    Private { vcpu: usize, intid: u32 },
    Spi(usize),
}

impl IrqRef {
    fn intid(self) -> u32 {
        match self {
            IrqRef::Private { intid, .. } => intid,
            IrqRef::Spi(i) => 32 + i as u32,
        }
    }
}

/// The affinity fields of an MPIDR or IROUTER value (the same positions),
/// packed as GICR_TYPER reports them: Aff3.Aff2.Aff1.Aff0.
fn affinity_of(value: u64) -> u32 {
    (value & 0xff_ffff) as u32 | (((value >> 32) & 0xff) as u32) << 24
}

/// The virtual GICv3 of one domain.
pub struct Vgic {
    nr_spis: u32,
    /// Each vCPU's packed affinity ([`affinity_of`] its MPIDR).
    affinities: Vec<u32>,
    grp0_enabled: bool,
    grp1_enabled: bool,
    spis: Vec<Irq>,
    cpus: Vec<VcpuState>,
}

impl Vgic {
    /// A vGIC in its reset state for `nr_vcpus` vCPUs with the MPIDRs they
    /// see (which IROUTER and ICC_SGI1R name) and `nr_spis` SPIs.
    ///
    /// # Panics
    ///
    /// When [`try_new`](Self::try_new) refuses the arguments; the domain's
    /// configuration is validated before any domain is built.
    pub fn new(nr_vcpus: usize, nr_spis: u32, vcpu_mpidrs: &[u64]) -> Self {
        match Self::try_new(nr_vcpus, nr_spis, vcpu_mpidrs) {
            Ok(vgic) => vgic,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`new`](Self::new), or why these arguments cannot make a vGIC.
    pub fn try_new(nr_vcpus: usize, nr_spis: u32, vcpu_mpidrs: &[u64]) -> Result<Self, VgicError> {
        if nr_vcpus == 0 || nr_vcpus > MAX_VCPUS {
            return Err(VgicError::VcpuCount { nr_vcpus });
        }
        if nr_spis > MAX_SPIS {
            return Err(VgicError::SpiCount { nr_spis });
        }
        if vcpu_mpidrs.len() != nr_vcpus {
            return Err(VgicError::MpidrCount {
                nr_vcpus,
                mpidrs: vcpu_mpidrs.len(),
            });
        }
        let mut affinities: Vec<u32> = Vec::with_capacity(nr_vcpus);
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
        let cpus = (0..nr_vcpus)
            .map(|_| VcpuState {
                private: core::array::from_fn(|i| Irq::reset(i as u32)),
                asleep: true,
                written: [0; MAX_LRS],
                nr_written: 0,
                candidates: IrqSet::default(),
            })
            .collect();
        Ok(Self {
            nr_spis,
            affinities,
            grp0_enabled: false,
            grp1_enabled: false,
            spis: (0..nr_spis).map(|i| Irq::reset(32 + i)).collect(),
            cpus,
        })
    }

    pub fn nr_vcpus(&self) -> usize {
        self.cpus.len()
    }

    pub fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    /// Makes an interrupt pending, as an edge would: an SGI or PPI of
    /// `vcpu`, or an SPI (`vcpu` is then unused; IROUTER decides). INTIDs
    /// the domain does not have, and unknown vCPUs, are ignored.
    pub fn inject(&mut self, vcpu: usize, intid: u32) -> Kicks {
        match self.locate(vcpu, intid) {
            Some(r) => self.update(r, |irq| irq.latch = true),
            None => Kicks::NONE,
        }
    }

    /// Like [`inject`](Self::inject), for an occurrence of the physical
    /// interrupt `pintid` that the caller acknowledged but did not
    /// deactivate: the list register gets HW = 1, so the guest's
    /// deactivation deactivates `pintid` too. `pintid` must be a PPI or SPI
    /// (16..1020); anything else is ignored.
    pub fn inject_hw(&mut self, vcpu: usize, intid: u32, pintid: u32) -> Kicks {
        if !(16..1020).contains(&pintid) {
            return Kicks::NONE;
        }
        match self.locate(vcpu, intid) {
            Some(r) => self.update(r, |irq| {
                irq.latch = true;
                irq.hw = Some(pintid);
            }),
            None => Kicks::NONE,
        }
    }

    /// Drives an interrupt's input line (the vPL011's SPI, for one). A
    /// level-sensitive interrupt is pending while the line is high; an
    /// edge-triggered one becomes pending on a rising edge.
    pub fn set_level(&mut self, vcpu: usize, intid: u32, high: bool) -> Kicks {
        match self.locate(vcpu, intid) {
            Some(r) => self.update(r, |irq| {
                if irq.edge && high && !irq.line {
                    irq.latch = true;
                }
                irq.line = high;
            }),
            None => Kicks::NONE,
        }
    }

    /// A trapped write of `value` to ICC_SGI1R_EL1 by `vcpu`: SGI INTID
    /// (bits 27:24) to every other vCPU when IRM (bit 40) is set, else to
    /// the vCPUs with Aff3.Aff2.Aff1 (bits 55:48, 39:32, 23:16) whose Aff0
    /// is RS * 16 + n (RS bits 47:44) for each bit n of TargetList (15:0).
    /// As with a single security state, an SGI configured as group 0 at a
    /// target is not sent there.
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
            let Some(&affinity) = self.affinities.get(target) else {
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
                .is_some_and(|irq| irq.group1);
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

    /// Before entering `vcpu`: fills `out[..count]` with the list-register
    /// values to load (the caller zeroes the rest), active interrupts first, then
    /// pending ones, each by priority (lower value first) then INTID. Every
    /// call must be followed by [`sync_lrs`](Self::sync_lrs) with the values
    /// read back; a flush without one takes the previous values back
    /// unchanged. At most [`MAX_LRS`] and `out.len()` registers are used.
    pub fn flush_lrs(&mut self, vcpu: usize, nr_lrs: usize, out: &mut [u64]) -> LrFlush {
        let Some(cpu) = self.cpus.get(vcpu) else {
            return LrFlush::default();
        };
        if cpu.nr_written != 0 {
            let (written, n) = (cpu.written, cpu.nr_written);
            self.sync_lrs(vcpu, written.get(..n).unwrap_or(&written));
        }
        let slots = nr_lrs.min(out.len()).min(MAX_LRS);
        let candidates = match self.cpus.get(vcpu) {
            Some(c) if !c.candidates.is_empty() => c.candidates.iter(),
            // The common exit: nothing pending or active here.
            _ => return LrFlush::default(),
        };
        let g1 = self.grp1_enabled;

        // Keep the best `slots` candidates in order; count the rest. A key
        // packs (inactive, priority, INTID) so that it sorts as that tuple.
        let mut best = [0u64; MAX_LRS];
        let mut chosen = 0;
        let mut wanted = 0;
        for intid in candidates {
            let Some(r) = self.locate(vcpu, intid) else {
                self.drop_candidate(vcpu, intid);
                continue;
            };
            let irq = self.get(r);
            if !irq.may_want_lr() || self.destination(r) != Some(vcpu) {
                // Stale: whatever change made it a candidate is undone, or
                // it is another vCPU's now (marked there).
                self.drop_candidate(vcpu, intid);
                continue;
            }
            if !irq.wants_lr(g1) {
                continue;
            }
            wanted += 1;
            let key =
                u64::from(!irq.active) << 40 | u64::from(irq.priority) << 32 | u64::from(intid);
            // `chosen` ≤ `slots` ≤ `MAX_LRS`, the length of `best`.
            let at = best
                .get(..chosen)
                .map_or(chosen, |b| b.partition_point(|&k| k < key));
            if at < slots {
                best.copy_within(at..chosen.min(slots - 1), at + 1);
                if let Some(b) = best.get_mut(at) {
                    *b = key;
                }
                chosen = (chosen + 1).min(slots);
            }
        }

        let mut listed = 0;
        for (i, &key) in best.iter().enumerate().take(chosen) {
            let Some(r) = self.locate(vcpu, key as u32) else {
                continue; // every key was located above
            };
            let value = self.list(vcpu, r);
            if let (Some(o), Some(w)) = (
                out.get_mut(i),
                self.cpus.get_mut(vcpu).and_then(|c| c.written.get_mut(i)),
            ) {
                *o = value;
                *w = value;
                listed = i + 1;
            }
        }
        debug_assert_eq!(listed, chosen);
        if let Some(c) = self.cpus.get_mut(vcpu) {
            c.nr_written = chosen;
        }
        LrFlush {
            count: chosen,
            underflow: wanted > chosen,
        }
    }

    /// After leaving `vcpu`: `lrs` are the registers [`flush_lrs`]
    /// (Self::flush_lrs) wrote, read back in the same order. A register now
    /// active was acknowledged; one that lost its pending state was
    /// acknowledged (its edge is consumed); one now invalid was also
    /// deactivated. Returns the other vCPUs that can now take an SPI this
    /// one released.
    pub fn sync_lrs(&mut self, vcpu: usize, lrs: &[u64]) -> Kicks {
        let Some(cpu) = self.cpus.get_mut(vcpu) else {
            return Kicks::NONE;
        };
        let count = core::mem::take(&mut cpu.nr_written);
        let written = cpu.written;
        let mut kicks = Kicks::NONE;
        for (i, &value) in written.iter().enumerate().take(count) {
            let before = ListRegister::decode(value);
            let now = lrs
                .get(i)
                .map(|&v| ListRegister::decode(v))
                .filter(|lr| lr.vintid == before.vintid)
                .unwrap_or(before);
            let Some(r) = self.locate(vcpu, before.vintid) else {
                continue;
            };
            kicks |= self.update(r, |irq| {
                if irq.carried && now.pending {
                    irq.latch = true;
                }
                irq.carried = false;
                irq.listed = false;
                irq.active = now.active;
                if before.pintid.is_some() && now.is_invalid() {
                    irq.hw = None;
                }
                if !now.active {
                    irq.owner = None;
                }
            });
        }
        kicks.without(vcpu)
    }

    /// Whether `vcpu` has a deliverable pending interrupt (to end a WFI).
    /// The guest's priority mask is the caller's to apply.
    pub fn has_pending(&self, vcpu: usize) -> bool {
        let Some(cpu) = self.cpus.get(vcpu) else {
            return false;
        };
        let g1 = self.grp1_enabled;
        let candidates = cpu.candidates.iter();
        candidates.filter_map(|i| self.locate(vcpu, i)).any(|r| {
            let irq = self.get(r);
            irq.deliverable(g1)
                && (irq.lr_pending() || irq.carried)
                && self.destination(r) == Some(vcpu)
        })
    }

    fn locate(&self, vcpu: usize, intid: u32) -> Option<IrqRef> {
        if intid < 32 {
            (vcpu < self.cpus.len()).then_some(IrqRef::Private { vcpu, intid })
        } else {
            let i = (intid - 32) as usize;
            (i < self.spis.len()).then_some(IrqRef::Spi(i))
        }
    }

    // An `IrqRef` is only made by `locate`, or with a vCPU index and INTID
    // just checked against these tables, which keep their size from
    // `Vgic::new` on: indexing with one cannot fail (and a fallback `Irq`
    // could not be handed out by `&mut`).
    #[allow(clippy::indexing_slicing)]
    fn get(&self, r: IrqRef) -> &Irq {
        match r {
            IrqRef::Private { vcpu, intid } => &self.cpus[vcpu].private[intid as usize],
            IrqRef::Spi(i) => &self.spis[i],
        }
    }

    // As `get`.
    #[allow(clippy::indexing_slicing)]
    fn get_mut(&mut self, r: IrqRef) -> &mut Irq {
        match r {
            IrqRef::Private { vcpu, intid } => &mut self.cpus[vcpu].private[intid as usize],
            IrqRef::Spi(i) => &mut self.spis[i],
        }
    }

    /// The vCPU that would list the interrupt now, if any.
    fn destination(&self, r: IrqRef) -> Option<usize> {
        match r {
            IrqRef::Private { vcpu, .. } => Some(vcpu),
            IrqRef::Spi(i) => {
                let irq = self.spis.get(i)?;
                match irq.owner {
                    Some(owner) if irq.listed || irq.active => Some(owner),
                    _ => self.route_target(irq.route),
                }
            }
        }
    }

    /// IROUTER's choice: vCPU 0 for "any" (IRM = 1), else the vCPU with
    /// that affinity; an affinity no vCPU has holds the SPI pending.
    fn route_target(&self, route: u64) -> Option<usize> {
        if route & regs::IROUTER_IRM != 0 {
            return Some(0);
        }
        let affinity = affinity_of(route);
        self.affinities.iter().position(|&a| a == affinity)
    }

    /// Applies `change` to one interrupt and says which vCPU, if any, must
    /// reload its list registers to see the result.
    fn update(&mut self, r: IrqRef, change: impl FnOnce(&mut Irq)) -> Kicks {
        let g1 = self.grp1_enabled;
        let before = (self.get(r).offer(g1), self.destination(r));
        change(self.get_mut(r));
        let after = (self.get(r).offer(g1), self.destination(r));
        self.mark(r, after.1);
        match after.1 {
            Some(dest)
                if after.0.gained_over(before.0) || (after.0.pending && before.1 != after.1) =>
            {
                Kicks::one(dest)
            }
            _ => Kicks::NONE,
        }
    }

    /// Keeps the candidate sets' promise after a change to `r`: if it may
    /// want a list register, its destination `dest` has it as a candidate.
    fn mark(&mut self, r: IrqRef, dest: Option<usize>) {
        if let Some(dest) = dest
            && self.get(r).may_want_lr()
            && let Some(cpu) = self.cpus.get_mut(dest)
        {
            cpu.candidates.insert(r.intid());
        }
    }

    /// Takes `intid` out of `vcpu`'s candidate set.
    fn drop_candidate(&mut self, vcpu: usize, intid: u32) {
        if let Some(cpu) = self.cpus.get_mut(vcpu) {
            cpu.candidates.remove(intid);
        }
    }

    /// The list-register value for `r` on `vcpu`, recording that a list
    /// register now holds it.
    fn list(&mut self, vcpu: usize, r: IrqRef) -> u64 {
        let g1 = self.grp1_enabled;
        let intid = r.intid();
        let irq = self.get_mut(r);
        let pending = irq.offer(g1).pending;
        let lr = ListRegister {
            vintid: intid,
            priority: irq.priority,
            group1: true,
            pending,
            active: irq.active,
            pintid: irq.hw,
            eoi_maintenance: irq.needs_eoi_maintenance(),
        };
        irq.listed = true;
        irq.carried = pending && irq.latch;
        if irq.carried {
            irq.latch = false;
        }
        if let IrqRef::Spi(_) = r {
            irq.owner = Some(vcpu);
        }
        lr.encode()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Vgic {
    /// What [`flush_lrs`](Self::flush_lrs) chose before candidate sets
    /// (every interrupt of the domain scanned): the INTIDs it would list,
    /// in order, and how many want a list register. For synced vCPUs.
    fn choice_by_full_scan(&self, vcpu: usize, slots: usize) -> (Vec<u32>, usize) {
        let g1 = self.grp1_enabled;
        let private = (0..32).map(|intid| IrqRef::Private { vcpu, intid });
        let spis = (0..self.spis.len()).map(IrqRef::Spi);
        let mut keys: Vec<(bool, u8, u32)> = private
            .chain(spis)
            .filter(|&r| self.get(r).wants_lr(g1) && self.destination(r) == Some(vcpu))
            .map(|r| (!self.get(r).active, self.get(r).priority, r.intid()))
            .collect();
        keys.sort();
        let wanted = keys.len();
        (keys.iter().take(slots).map(|k| k.2).collect(), wanted)
    }

    /// Whether every interrupt that may want a list register on `vcpu` is
    /// in its candidate set.
    fn candidates_cover(&self, vcpu: usize) -> bool {
        let private = (0..32).map(|intid| IrqRef::Private { vcpu, intid });
        let spis = (0..self.spis.len()).map(IrqRef::Spi);
        let c = &self.cpus[vcpu].candidates;
        private.chain(spis).all(|r| {
            !(self.get(r).may_want_lr() && self.destination(r) == Some(vcpu))
                || c.contains(r.intid())
        })
    }
}

impl Vgic {
    /// The INTIDs `vcpu` has pending (deliverable or not) and active, for
    /// the hypervisor's state dump.
    pub fn describe(&self, vcpu: usize) -> (alloc::vec::Vec<u32>, alloc::vec::Vec<u32>) {
        let mut pending = alloc::vec::Vec::new();
        let mut active = alloc::vec::Vec::new();
        if vcpu >= self.cpus.len() {
            return (pending, active);
        }
        let private = (0..32).map(|intid| (intid, IrqRef::Private { vcpu, intid }));
        let spis = (0..self.spis.len()).map(|i| (32 + i as u32, IrqRef::Spi(i)));
        for (intid, r) in private.chain(spis) {
            if intid >= 32 && self.destination(r) != Some(vcpu) {
                continue;
            }
            let irq = self.get(r);
            if irq.lr_pending() || irq.carried {
                pending.push(intid);
            }
            if irq.active {
                active.push(intid);
            }
        }
        (pending, active)
    }
}
