//! A model of one domain's virtual GIC, a GICv3 or a GICv2 as the host's
//! is ([`GicVersion`]): the state of its interrupts, the distributor (and
//! GICv3 redistributor) registers the guest programs, and the list-register
//! values that present interrupts to each vCPU.
//!
//! A vGICv3 guest sees Xen's layout (distributor at `GUEST_GICV3_GICD`, one
//! 128 KiB redistributor per vCPU from `GUEST_GICV3_GICR0`) of a GICv3 with a
//! single security state (`GICD_CTLR.DS` = 1) and affinity routing always on
//! (`v3.rs`). A vGICv2 guest sees a GICv2 distributor without the Security
//! Extensions at `GUEST_GICV2_GICD` and its CPU interface at
//! `GUEST_GICV2_GICC` (`v2.rs`).
//!
//! Either way the CPU interface is the hardware's virtual one (the GICv3
//! `ICV_*` system registers, or the GICv2 GICV frame mapped at
//! `GUEST_GICV2_GICC`): the caller traps guest distributor MMIO (and
//! `ICC_SGI1R_EL1` writes on a GICv3) to [`Vgic::mmio`] (and
//! [`Vgic::write_sgi1r`]), calls [`Vgic::flush_lrs`] before entering a vCPU
//! and [`Vgic::sync_lrs`] after leaving it, and IPIs or wakes the vCPUs in the
//! [`Kicks`] each call returns. List-register values are always in the GICv3
//! `ICH_LR<n>_EL2` layout; a GICv2 host converts them with [`lr_to_v2`] and
//! [`lr_from_v2`].
//!
//! The model is the authority on an interrupt's state except while a list
//! register holds it; sync folds back what the guest did to it (acknowledged,
//! EOIed, deactivated). One interrupt group is delivered: group 1 on a
//! vGICv3, where a guest that puts an interrupt in group 0 (a virtual FIQ)
//! never receives it; group 0 on a vGICv2, where every interrupt is group 0
//! (see `v2.rs` for why).
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod irq;
mod lr;
#[cfg(any(test, feature = "gicv2", feature = "gicv3"))]
mod regs;
mod set;
#[cfg(any(test, feature = "gicv2"))]
mod v2;
#[cfg(any(test, feature = "gicv3"))]
mod v3;

pub use lr::ListRegister;
#[cfg(any(test, feature = "gicv2"))]
pub use lr::{lr_from_v2, lr_to_v2};

use alloc::boxed::Box;
use alloc::sync::Arc;
#[cfg(test)]
use alloc::vec::Vec;
use core::fmt;
use core::ops::{BitOr, BitOrAssign};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::guest_layout::{GUEST_GICV2_GICD, GUEST_GICV3_GICD, GUEST_GICV3_GICR0};
use irq::Irq;
use set::IrqSet;

/// Most vCPUs one vGIC serves: one bit each in [`Kicks`]. (The 16 MiB
/// redistributor window would hold 128, Xen's `GUEST_MAX_VCPUS`.)
pub const MAX_VCPUS: usize = 64;
/// Most vCPUs a vGICv2 serves: GICD_ITARGETSR and GICD_SGIR name CPUs by
/// an 8-bit mask.
pub const GICV2_MAX_VCPUS: usize = 8;
/// Most SPIs: INTIDs 32..=1019.
pub const MAX_SPIS: u32 = 1020 - 32;
/// Most list registers a CPU interface has (`ICH_VTR_EL2.ListRegs` + 1).
pub const MAX_LRS: usize = 16;

/// The GIC architecture a vGIC presents. It is the host's: the guest's CPU
/// interface is the hardware's virtual one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    V2,
    V3,
}

impl GicVersion {
    /// Whether this image carries the vGIC for this version: its board
    /// enables the `gicv2` or `gicv3` feature (host tests carry both).
    pub const fn is_built(self) -> bool {
        match self {
            GicVersion::V2 => cfg!(any(test, feature = "gicv2")),
            GicVersion::V3 => cfg!(any(test, feature = "gicv3")),
        }
    }

    /// Most vCPUs a vGIC of this version serves.
    pub const fn max_vcpus(self) -> usize {
        match self {
            GicVersion::V2 => GICV2_MAX_VCPUS,
            GicVersion::V3 => MAX_VCPUS,
        }
    }
}

impl fmt::Display for GicVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GicVersion::V2 => "GICv2",
            GicVersion::V3 => "GICv3",
        })
    }
}

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

    /// The set less `vcpu` (an index past [`MAX_VCPUS`] is in no set).
    pub fn without(self, vcpu: usize) -> Self {
        match vcpu < MAX_VCPUS {
            true => Kicks(self.0 & !(1 << vcpu)),
            false => self,
        }
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
    /// The address is in none of the windows a vGIC of `version` emulates
    /// (for a GICv2, only the distributor's).
    OutsideWindows { ipa: u64, version: GicVersion },
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
            MmioError::OutsideWindows {
                ipa,
                version: GicVersion::V2,
            } => write!(
                f,
                "vGIC: {ipa:#x} is outside the GICv2 distributor window ({GUEST_GICV2_GICD})"
            ),
            MmioError::OutsideWindows {
                ipa,
                version: GicVersion::V3,
            } => write!(
                f,
                "vGIC: {ipa:#x} is outside the distributor ({GUEST_GICV3_GICD}) and \
                 redistributor ({GUEST_GICV3_GICR0}) windows"
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
    /// This image has no vGIC of that version (its board leaves the
    /// driver's feature out).
    NotBuilt {
        version: GicVersion,
    },
    /// Outside 1 to `max` ([`GicVersion::max_vcpus`]).
    VcpuCount {
        nr_vcpus: usize,
        max: usize,
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
            VgicError::NotBuilt { version } => write!(
                f,
                "vGIC: this image has no {version} emulation (expected a board with the \
                 {} feature)",
                match version {
                    GicVersion::V2 => "gicv2",
                    GicVersion::V3 => "gicv3",
                }
            ),
            VgicError::VcpuCount { nr_vcpus, max } => write!(
                f,
                "vGIC: {nr_vcpus} vCPUs is out of range (expected 1 to {max})"
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

/// One vCPU's private interrupts (its redistributor, on a GICv3) and the
/// list registers last given to it.
struct VcpuState {
    private: [Irq; 32],
    written: [u64; MAX_LRS],
    nr_written: usize,
    /// Every interrupt this vCPU would list if the distributor's delivered
    /// group were enabled ([`Irq::may_want_lr`] with this vCPU its
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

/// The virtual GIC of one domain.
pub struct Vgic {
    version: GicVersion,
    nr_spis: u32,
    grp0_enabled: bool,
    grp1_enabled: bool,
    // Boxed slices, not `Vec`s: their size is fixed at `new`, and indexing
    // one is a bounds check and a load, where `Vec`'s `Index` is a call
    // under opt-level `z` (on every exit's path).
    spis: Box<[Irq]>,
    cpus: Box<[VcpuState]>,
    /// Bit `v` set while vCPU `v`'s candidate set may be non-empty (vCPUs
    /// from 64 on always count as set): read without the vGIC's lock by
    /// [`Vgic::may_want_lrs`] so that an exit with nothing to list skips
    /// the lock. Set before a candidate is added, cleared when the last
    /// one goes, always under the lock.
    busy: Arc<AtomicU64>,
    /// What only a vGICv3 keeps (affinities, IROUTERs, GICR_WAKER); empty
    /// on a vGICv2.
    #[cfg(any(test, feature = "gicv3"))]
    v3: v3::V3State,
}

impl Vgic {
    /// A vGICv3 in its reset state for `nr_vcpus` vCPUs with the MPIDRs
    /// they see (which IROUTER and ICC_SGI1R name) and `nr_spis` SPIs:
    /// [`with_version`](Self::with_version) for [`GicVersion::V3`].
    ///
    /// # Panics
    ///
    /// When [`try_new`](Self::try_new) refuses the arguments; the domain's
    /// configuration is validated before any domain is built.
    pub fn new(nr_vcpus: usize, nr_spis: u32, vcpu_mpidrs: &[u64]) -> Self {
        Self::with_version(GicVersion::V3, nr_vcpus, nr_spis, vcpu_mpidrs)
    }

    /// [`new`](Self::new), or why these arguments cannot make a vGICv3.
    pub fn try_new(nr_vcpus: usize, nr_spis: u32, vcpu_mpidrs: &[u64]) -> Result<Self, VgicError> {
        Self::try_with_version(GicVersion::V3, nr_vcpus, nr_spis, vcpu_mpidrs)
    }

    /// A vGIC of `version` in its reset state for `nr_vcpus` vCPUs with the
    /// MPIDRs they see and `nr_spis` SPIs. A vGICv2 routes by vCPU index
    /// and uses the MPIDRs only to check there is one per vCPU.
    ///
    /// # Panics
    ///
    /// When [`try_with_version`](Self::try_with_version) refuses the
    /// arguments.
    pub fn with_version(
        version: GicVersion,
        nr_vcpus: usize,
        nr_spis: u32,
        vcpu_mpidrs: &[u64],
    ) -> Self {
        match Self::try_with_version(version, nr_vcpus, nr_spis, vcpu_mpidrs) {
            Ok(vgic) => vgic,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`with_version`](Self::with_version), or why these arguments cannot
    /// make a vGIC: a version this image does not carry, a vCPU count
    /// outside 1 to [`GicVersion::max_vcpus`], too many SPIs, not one MPIDR
    /// per vCPU, or (GICv3) MPIDRs its SGIs cannot name apart.
    pub fn try_with_version(
        version: GicVersion,
        nr_vcpus: usize,
        nr_spis: u32,
        vcpu_mpidrs: &[u64],
    ) -> Result<Self, VgicError> {
        if !version.is_built() {
            return Err(VgicError::NotBuilt { version });
        }
        let max = version.max_vcpus();
        if nr_vcpus == 0 || nr_vcpus > max {
            return Err(VgicError::VcpuCount { nr_vcpus, max });
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
        let cpus = (0..nr_vcpus)
            .map(|_| VcpuState {
                private: core::array::from_fn(|i| Irq::reset(i as u32)),
                written: [0; MAX_LRS],
                nr_written: 0,
                candidates: IrqSet::default(),
            })
            .collect();
        let busy = Arc::new(AtomicU64::new(0));
        // A vGICv2's SPIs target vCPU 0 (ITARGETSR), as on Xen.
        let spi_target = Some(0);
        #[cfg(any(test, feature = "gicv3"))]
        let v3 = match version {
            GicVersion::V3 => v3::V3State::new(vcpu_mpidrs, nr_spis)?,
            GicVersion::V2 => v3::V3State::default(),
        };
        // A vGICv3's IROUTERs reset to affinity 0.0.0.0.
        #[cfg(any(test, feature = "gicv3"))]
        let spi_target = match version {
            GicVersion::V3 => v3.route_target(0),
            GicVersion::V2 => spi_target,
        };
        let spis = (0..nr_spis)
            .map(|i| Irq {
                target: spi_target,
                ..Irq::reset(32 + i)
            })
            .collect();
        Ok(Self {
            version,
            nr_spis,
            grp0_enabled: false,
            grp1_enabled: false,
            spis,
            cpus,
            busy,
            #[cfg(any(test, feature = "gicv3"))]
            v3,
        })
    }

    /// The handle [`Vgic::may_want_lrs`] reads, for the vGIC's owner to
    /// keep beside its lock.
    pub fn busy_handle(&self) -> Arc<AtomicU64> {
        self.busy.clone()
    }

    /// Whether vCPU `vcpu` may have an interrupt to list, read from `busy`
    /// (a [`Vgic::busy_handle`]) without the vGIC's lock. `false` means
    /// its candidate set was empty when read: a flush would list nothing.
    /// Whoever adds a candidate afterwards does so under the lock and then
    /// notifies the vCPU (the [`Kicks`] every change returns), so a stale
    /// `false` is corrected by the next exit.
    pub fn may_want_lrs(busy: &AtomicU64, vcpu: usize) -> bool {
        vcpu >= 64 || busy.load(Ordering::Acquire) & (1 << vcpu) != 0
    }

    pub fn version(&self) -> GicVersion {
        self.version
    }

    /// Whether `ipa` is in a window [`mmio`](Self::mmio) emulates: the
    /// distributor (and, on a GICv3, the redistributors). A GICv2's CPU
    /// interface window is not: it is mapped, not trapped.
    pub fn covers(&self, ipa: u64) -> bool {
        match self.version {
            GicVersion::V2 => GUEST_GICV2_GICD.contains(ipa),
            GicVersion::V3 => GUEST_GICV3_GICD.contains(ipa) || GUEST_GICV3_GICR0.contains(ipa),
        }
    }

    pub fn nr_vcpus(&self) -> usize {
        self.cpus.len()
    }

    pub fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    /// Makes an interrupt pending, as an edge would: an SGI or PPI of
    /// `vcpu`, or an SPI (`vcpu` is then unused; IROUTER or ITARGETSR
    /// decides). INTIDs the domain does not have, and unknown vCPUs, are
    /// ignored.
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
            // The line already there: no edge, and a level interrupt's
            // pending state is what it was (every vPL011 access drives
            // its line, mostly to the level it had).
            Some(r) if self.get(r).line == high => Kicks::NONE,
            Some(r) => self.update(r, |irq| {
                if irq.edge && high && !irq.line {
                    irq.latch = true;
                }
                irq.line = high;
            }),
            None => Kicks::NONE,
        }
    }

    /// A trapped guest access at `ipa` by `vcpu`: `Ok((value read,
    /// kicks))` (0 for a write), or `Err` when the address is outside the
    /// windows ([`covers`](Self::covers)) or the access is misaligned or of
    /// a size the register does not take (the caller injects an abort).
    /// Offsets inside the windows that are not registers read as zero and
    /// ignore writes, whatever their size, as do interrupts the domain does
    /// not have and (GICv3) redistributor frames past the last vCPU.
    ///
    /// `vcpu` matters on a GICv2 only, whose distributor banks the
    /// registers of INTIDs 0-31 per accessing CPU.
    #[cfg(any(test, feature = "gicv2", feature = "gicv3"))]
    pub fn mmio(
        &mut self,
        vcpu: usize,
        ipa: u64,
        access: Access,
    ) -> Result<(u64, Kicks), MmioError> {
        let size = access.size();
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(MmioError::UnsupportedSize { ipa, size });
        }
        if !ipa.is_multiple_of(u64::from(size)) {
            return Err(MmioError::Misaligned { ipa, size });
        }
        // `try_with_version` builds no vGIC of a version left out.
        #[cfg(any(test, feature = "gicv2"))]
        if self.version == GicVersion::V2 {
            return self.mmio_v2(vcpu, ipa, access);
        }
        #[cfg(any(test, feature = "gicv3"))]
        if self.version == GicVersion::V3 {
            return self.mmio_v3(vcpu, ipa, access);
        }
        Err(MmioError::OutsideWindows {
            ipa,
            version: self.version,
        })
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
        match self.cpus.get(vcpu) {
            Some(c) if !c.candidates.is_empty() => {}
            // The common exit: nothing pending or active here.
            _ => return LrFlush::default(),
        }
        let enabled = self.group_enabled();

        // Keep the best `slots` candidates in order; count the rest. A key
        // packs (inactive, priority, INTID) so that it sorts as that tuple.
        // The walk is a cursor into the live set, which `drop_candidate`
        // changes as it goes (plain loops: iterator adapters are calls
        // under opt-level `z`).
        let mut best = [0u64; MAX_LRS];
        let mut chosen = 0;
        let mut wanted = 0;
        let mut at = 0;
        while let Some(intid) = self
            .cpus
            .get(vcpu)
            .and_then(|c| c.candidates.first_from(at))
        {
            at = intid + 1;
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
            if !irq.wants_lr(enabled) {
                continue;
            }
            wanted += 1;
            let key =
                u64::from(!irq.active) << 40 | u64::from(irq.priority) << 32 | u64::from(intid);
            chosen = insert_sorted(&mut best, chosen, slots, key);
        }

        let mut listed = 0;
        while listed < chosen {
            let Some(&key) = best.get(listed) else { break };
            let Some(r) = self.locate(vcpu, key as u32) else {
                break; // every key was located above
            };
            let value = self.list(vcpu, r);
            match (
                out.get_mut(listed),
                self.cpus
                    .get_mut(vcpu)
                    .and_then(|c| c.written.get_mut(listed)),
            ) {
                (Some(o), Some(w)) => {
                    *o = value;
                    *w = value;
                    listed += 1;
                }
                _ => break,
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
        let mut kicks = Kicks::NONE;
        // Read one written value at a time rather than copy the array:
        // usually one or two of its registers were in use.
        let mut next = 0;
        while next < count {
            let i = next;
            next += 1; // before any `continue`
            let Some(&value) = self.cpus.get(vcpu).and_then(|c| c.written.get(i)) else {
                break;
            };
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
        let enabled = self.group_enabled();
        let mut at = 0;
        while let Some(intid) = cpu.candidates.first_from(at) {
            at = intid + 1;
            let Some(r) = self.locate(vcpu, intid) else {
                continue;
            };
            let irq = self.get(r);
            if irq.deliverable(enabled)
                && (irq.lr_pending() || irq.carried)
                && self.destination(r) == Some(vcpu)
            {
                return true;
            }
        }
        false
    }

    #[inline(always)]
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
    #[inline(always)]
    fn get(&self, r: IrqRef) -> &Irq {
        match r {
            IrqRef::Private { vcpu, intid } => &self.cpus[vcpu].private[intid as usize],
            IrqRef::Spi(i) => &self.spis[i],
        }
    }

    // As `get`.
    #[allow(clippy::indexing_slicing)]
    #[inline(always)]
    fn get_mut(&mut self, r: IrqRef) -> &mut Irq {
        match r {
            IrqRef::Private { vcpu, intid } => &mut self.cpus[vcpu].private[intid as usize],
            IrqRef::Spi(i) => &mut self.spis[i],
        }
    }

    /// The vCPU that would list the interrupt now, if any.
    #[inline(always)]
    fn destination(&self, r: IrqRef) -> Option<usize> {
        match r {
            IrqRef::Private { vcpu, .. } => Some(vcpu),
            IrqRef::Spi(i) => {
                let irq = self.spis.get(i)?;
                match irq.owner {
                    Some(owner) if irq.listed || irq.active => Some(owner),
                    _ => irq.target,
                }
            }
        }
    }

    /// Whether the distributor enables the interrupt group this vGIC
    /// delivers: group 1 on a GICv3, group 0 on a GICv2.
    #[inline(always)]
    fn group_enabled(&self) -> bool {
        match self.version {
            GicVersion::V2 => self.grp0_enabled,
            GicVersion::V3 => self.grp1_enabled,
        }
    }

    /// Applies `change` to one interrupt and says which vCPU, if any, must
    /// reload its list registers to see the result.
    fn update(&mut self, r: IrqRef, change: impl FnOnce(&mut Irq)) -> Kicks {
        let enabled = self.group_enabled();
        let before = (self.get(r).offer(enabled), self.destination(r));
        change(self.get_mut(r));
        let after = (self.get(r).offer(enabled), self.destination(r));
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
    #[inline(always)]
    fn mark(&mut self, r: IrqRef, dest: Option<usize>) {
        if let Some(dest) = dest
            && self.get(r).may_want_lr()
            && let Some(cpu) = self.cpus.get_mut(dest)
        {
            if dest < 64 {
                self.busy.fetch_or(1 << dest, Ordering::AcqRel);
            }
            cpu.candidates.insert(r.intid());
        }
    }

    /// Takes `intid` out of `vcpu`'s candidate set.
    #[inline(always)]
    fn drop_candidate(&mut self, vcpu: usize, intid: u32) {
        if let Some(cpu) = self.cpus.get_mut(vcpu) {
            cpu.candidates.remove(intid);
            if cpu.candidates.is_empty() && vcpu < 64 {
                self.busy.fetch_and(!(1 << vcpu), Ordering::AcqRel);
            }
        }
    }
}

/// Puts `key` into `best[..chosen]`, kept ascending and at most `slots`
/// long (`slots` ≤ [`MAX_LRS`]), dropping the largest when full and `key` is
/// smaller; returns the new length. An insertion sort: there are a handful
/// of candidates, and `partition_point` and `copy_within` are calls under
/// opt-level `z`.
#[inline(always)]
fn insert_sorted(best: &mut [u64; MAX_LRS], chosen: usize, slots: usize, key: u64) -> usize {
    let slots = slots.min(MAX_LRS);
    let chosen = chosen.min(slots);
    let mut j = chosen;
    if chosen == slots {
        match j.checked_sub(1) {
            Some(last) if matches!(best.get(last), Some(&k) if key < k) => j = last,
            _ => return chosen, // no slots, or `key` comes after every one
        }
    }
    // `j` < `slots` ≤ MAX_LRS here, and every index below is under `j`.
    while let Some(prev) = j.checked_sub(1) {
        let Some(&k) = best.get(prev) else { break };
        if k < key {
            break;
        }
        if let Some(b) = best.get_mut(j) {
            *b = k;
        }
        j = prev;
    }
    if let Some(b) = best.get_mut(j) {
        *b = key;
    }
    (chosen + 1).min(slots)
}

impl Vgic {
    /// The list-register value for `r` on `vcpu`, recording that a list
    /// register now holds it.
    fn list(&mut self, vcpu: usize, r: IrqRef) -> u64 {
        let enabled = self.group_enabled();
        let group1 = self.version == GicVersion::V3;
        let intid = r.intid();
        let irq = self.get_mut(r);
        let pending = irq.offer(enabled).pending;
        let lr = ListRegister {
            vintid: intid,
            priority: irq.priority,
            group1,
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
mod tests_v2;

#[cfg(test)]
impl Vgic {
    /// What [`flush_lrs`](Self::flush_lrs) chose before candidate sets
    /// (every interrupt of the domain scanned): the INTIDs it would list,
    /// in order, and how many want a list register. For synced vCPUs.
    fn choice_by_full_scan(&self, vcpu: usize, slots: usize) -> (Vec<u32>, usize) {
        let enabled = self.group_enabled();
        let private = (0..32).map(|intid| IrqRef::Private { vcpu, intid });
        let spis = (0..self.spis.len()).map(IrqRef::Spi);
        let mut keys: Vec<(bool, u8, u32)> = private
            .chain(spis)
            .filter(|&r| self.get(r).wants_lr(enabled) && self.destination(r) == Some(vcpu))
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
