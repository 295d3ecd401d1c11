//! Generates each domU's device tree, node for node and property for
//! property as Xen's dom0less builder does, so guests and test oracles
//! written against Xen see the same tree.
//!
//! The emission order, node names and encodings follow Xen's
//! `prepare_dtb_domU`: root cells, `/chosen`, `/cpus`, `/memory@…`, the GIC,
//! `/timer`, `/hypervisor` (only for enhanced domains), `/psci` and, with
//! `vpl011`, `/sbsa-uart@22000000`. Only what a non-direct-mapped 64-bit
//! domU gets is generated: no partial device tree, no `/reserved-memory`.
//! The GIC node is a GICv3's or a GICv2's, as the host's GIC (and so the
//! domain's vGIC) is.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use vm_fdt::FdtWriter;

use crate::guest_layout::{
    GUEST_GICV2_GICC, GUEST_GICV2_GICD, GUEST_GICV3_GICD, GUEST_GICV3_GICR0, GUEST_PHANDLE_GIC,
    GUEST_PL011, GUEST_VPL011_SPI, GUEST_VTIMER_PPI,
};
use crate::memmap::Range;
pub use crate::vgic::GicVersion;

/// Most vCPUs a domU may have (Xen's `GUEST_MAX_VCPUS`).
pub const GUEST_MAX_VCPUS: u32 = 128;
/// The secure physical timer's PPI (Xen's `GUEST_TIMER_PHYS_S_PPI`).
pub const GUEST_TIMER_PHYS_S_PPI: u32 = 29;
/// The non-secure physical timer's PPI (Xen's `GUEST_TIMER_PHYS_NS_PPI`).
pub const GUEST_TIMER_PHYS_NS_PPI: u32 = 30;
/// Largest tree Oxen hands a guest: Xen's cap for a domU's tree
/// (`DOMU_DTB_SIZE`). Real trees are a few KiB; only absurd `bootargs` get
/// near it.
pub const GUEST_DTB_MAX: usize = 2 << 20;

/// Cells of an address and of a size at the root (Xen's
/// `GUEST_ROOT_ADDRESS_CELLS` / `GUEST_ROOT_SIZE_CELLS`).
const ROOT_CELLS: u32 = 2;
/// Every interrupt Xen describes targets all CPUs (the GICv2-style cpumask
/// in the third cell, which GICv3 bindings ignore but Xen still writes).
const CPUMASK_ALL: u32 = 0xf;
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
const IRQ_TYPE_LEVEL_LOW: u32 = 8;
/// The vPL011's fixed line speed.
const VPL011_SPEED: u32 = 115_200;
/// PSCI 0.1 function IDs Xen still advertises next to the 0.2+ ones.
const PSCI_0_1_CPU_OFF: u32 = 1;
const PSCI_0_1_CPU_ON: u32 = 2;

/// Everything about one domU that its device tree shows.
#[derive(Debug, Clone, Copy)]
pub struct GuestDtSpec<'a> {
    /// Number of vCPUs, 1 to [`GUEST_MAX_VCPUS`] (8 with a GICv2).
    pub vcpus: u32,
    /// The domain's vGIC, the host's GIC version.
    pub gic: GicVersion,
    /// The first host `/cpus/cpu` node's `compatible`, copied verbatim: its
    /// value without the final NUL, so a list keeps its inner NULs
    /// (`"arm,cortex-a72\0arm,armv8"`). `None` leaves the property out.
    pub cpu_compatible: Option<&'a str>,
    /// The first host CPU node's `clock-frequency`, if it has one.
    pub cpu_clock_frequency: Option<u32>,
    /// Guest RAM banks (IPA), non-empty, in the order Xen fills them.
    pub memory: &'a [Range],
    /// The kernel module's `bootargs`; `None` leaves the property out.
    pub bootargs: Option<&'a str>,
    /// IPA range of the ramdisk copy; `None` or an empty range leaves the
    /// `linux,initrd-*` properties out.
    pub initrd: Option<Range>,
    /// Whether the domain has the emulated SBSA UART.
    pub vpl011: bool,
    /// The host timer node's `clock-frequency`, if it has one.
    pub timer_clock_frequency: Option<u32>,
}

/// The `/hypervisor` node, composed elsewhere from subsystem contributions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypervisorNode {
    /// The Xen version presented, as `(major, minor)`.
    pub version: (u16, u16),
    /// `reg` entries in order: the grant-table window, then extended
    /// regions. Empty is written as Xen writes a build without grant
    /// tables: one `<0 0 0 0>` entry.
    pub reg: Vec<Range>,
    /// INTID of the event-channel upcall (a PPI, normally
    /// [`GUEST_EVTCHN_PPI`](crate::guest_layout::GUEST_EVTCHN_PPI)); `None` leaves out `interrupts` and
    /// `interrupt-parent`.
    pub interrupt_ppi: Option<u32>,
}

/// Why a guest device tree could not be generated. Each message names the
/// guest node and property, the value and what would be accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum GuestDtError {
    /// The vCPU count is 0 or above `max`: [`GUEST_MAX_VCPUS`], or what a
    /// GICv2 can target.
    VcpuCount { vcpus: u32, max: u32 },
    /// No RAM bank was given.
    NoMemory,
    /// A RAM bank is empty or inverted.
    EmptyMemoryBank { index: usize, bank: Range },
    /// The ramdisk range ends before it starts.
    InvertedInitrd(Range),
    /// A string property would contain a NUL byte.
    NulInString {
        path: &'static str,
        property: &'static str,
        value: String,
    },
    /// The event-channel interrupt is not a PPI.
    NotAPpi(u32),
    /// A `/hypervisor` `reg` entry ends before it starts.
    InvertedHypervisorReg { index: usize, range: Range },
    /// The finished tree is larger than [`GUEST_DTB_MAX`].
    TooLarge(usize),
    /// The FDT writer refused a node or property.
    Write(vm_fdt::Error),
}

impl fmt::Display for GuestDtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VcpuCount { vcpus, max } => write!(
                f,
                "/cpus: {vcpus} vCPUs is out of range (expected 1 to {max})"
            ),
            Self::NoMemory => write!(f, "/memory: reg has no bank (expected at least one)"),
            Self::EmptyMemoryBank { index, bank } => write!(
                f,
                "/memory: reg bank {index} = {bank:?} is empty or inverted \
                 (expected a range with end above start)"
            ),
            Self::InvertedInitrd(r) => write!(
                f,
                "/chosen: linux,initrd-start = {:#x} is above linux,initrd-end = {:#x} \
                 (expected start <= end)",
                r.start, r.end
            ),
            Self::NulInString {
                path,
                property,
                value,
            } => write!(
                f,
                "{path}: {property} = {value:?} contains a NUL byte (expected text without NUL)"
            ),
            Self::NotAPpi(intid) => write!(
                f,
                "/hypervisor: interrupts = INTID {intid} is not a PPI (expected 16 to 31)"
            ),
            Self::InvertedHypervisorReg { index, range } => write!(
                f,
                "/hypervisor: reg entry {index} = {range:?} ends before it starts \
                 (expected start <= end)"
            ),
            Self::TooLarge(size) => write!(
                f,
                "/: the device tree is {size} bytes (expected at most {GUEST_DTB_MAX})"
            ),
            Self::Write(e) => write!(f, "device tree writer: {e}"),
        }
    }
}

impl From<vm_fdt::Error> for GuestDtError {
    fn from(e: vm_fdt::Error) -> Self {
        Self::Write(e)
    }
}

/// The MPIDR affinity Xen gives vCPU `vcpu`: 16 vCPUs per cluster, so
/// vCPU 16 is `0x100` (Aff1 = 1, Aff0 = 0).
pub fn vcpu_affinity(vcpu: u32) -> u32 {
    (vcpu & 0xf) | ((vcpu >> 4) << 8)
}

/// Generates the device tree blob for one domU. `hypervisor` is `None` for a
/// domain without `xen,enhanced`, which then gets no `/hypervisor` node.
pub fn build(
    spec: &GuestDtSpec<'_>,
    hypervisor: Option<&HypervisorNode>,
) -> Result<Vec<u8>, GuestDtError> {
    validate(spec, hypervisor)?;

    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_u32("#address-cells", ROOT_CELLS)?;
    fdt.property_u32("#size-cells", ROOT_CELLS)?;
    chosen(&mut fdt, spec.bootargs, spec.initrd)?;
    cpus(
        &mut fdt,
        spec.vcpus,
        spec.cpu_compatible,
        spec.cpu_clock_frequency,
    )?;
    memory(&mut fdt, spec.memory)?;
    gic(&mut fdt, spec.gic)?;
    timer(&mut fdt, spec.timer_clock_frequency)?;
    if let Some(node) = hypervisor {
        hypervisor_node(&mut fdt, node)?;
    }
    psci(&mut fdt)?;
    if spec.vpl011 {
        vpl011(&mut fdt)?;
    }
    fdt.end_node(root)?;
    let blob = fdt.finish()?;

    if blob.len() > GUEST_DTB_MAX {
        return Err(GuestDtError::TooLarge(blob.len()));
    }
    Ok(blob)
}

/// Checks the inputs before anything is written, so a bad value is reported
/// in the guest's terms rather than as a writer failure.
fn validate(
    spec: &GuestDtSpec<'_>,
    hypervisor: Option<&HypervisorNode>,
) -> Result<(), GuestDtError> {
    let max = match spec.gic {
        GicVersion::V2 => crate::vgic::GICV2_MAX_VCPUS as u32,
        GicVersion::V3 => GUEST_MAX_VCPUS,
    };
    if !(1..=max).contains(&spec.vcpus) {
        return Err(GuestDtError::VcpuCount {
            vcpus: spec.vcpus,
            max,
        });
    }
    if spec.memory.is_empty() {
        return Err(GuestDtError::NoMemory);
    }
    if let Some((index, &bank)) = spec.memory.iter().enumerate().find(|(_, b)| b.is_empty()) {
        return Err(GuestDtError::EmptyMemoryBank { index, bank });
    }
    if let Some(r) = spec.initrd.filter(|r| r.end < r.start) {
        return Err(GuestDtError::InvertedInitrd(r));
    }
    if let Some(args) = spec.bootargs.filter(|a| a.contains('\0')) {
        return Err(GuestDtError::NulInString {
            path: "/chosen",
            property: "bootargs",
            value: String::from(args),
        });
    }
    if let Some(node) = hypervisor {
        if let Some(intid) = node.interrupt_ppi.filter(|i| !(16..32).contains(i)) {
            return Err(GuestDtError::NotAPpi(intid));
        }
        if let Some((index, &range)) = node.reg.iter().enumerate().find(|(_, r)| r.end < r.start) {
            return Err(GuestDtError::InvertedHypervisorReg { index, range });
        }
    }
    Ok(())
}

/// Appends `r` as a root-cells (2 + 2) address/size pair.
fn push_range(cells: &mut Vec<u32>, r: Range) {
    let size = r.end - r.start;
    cells.extend_from_slice(&[
        (r.start >> 32) as u32,
        r.start as u32,
        (size >> 32) as u32,
        size as u32,
    ]);
}

/// Root-cells `reg` value for `ranges`.
fn reg_cells(ranges: &[Range]) -> Vec<u32> {
    let mut cells = Vec::with_capacity(ranges.len() * 4);
    for &r in ranges {
        push_range(&mut cells, r);
    }
    cells
}

/// A 3-cell GIC specifier for `intid` (a PPI or an SPI) as Xen's
/// `set_interrupt` writes it: all-CPU mask, type `irq_type`.
fn gic_interrupt(intid: u32, irq_type: u32) -> [u32; 3] {
    let flags = (CPUMASK_ALL << 8) | irq_type;
    if intid < 32 {
        [1, intid - 16, flags]
    } else {
        [0, intid - 32, flags]
    }
}

/// `interrupts` followed by `interrupt-parent`, as Xen always pairs them.
fn interrupts(fdt: &mut FdtWriter, specifiers: &[[u32; 3]]) -> Result<(), GuestDtError> {
    let cells: Vec<u32> = specifiers.iter().flatten().copied().collect();
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.property_u32("interrupt-parent", GUEST_PHANDLE_GIC)?;
    Ok(())
}

/// `/chosen`: the kernel command line and the ramdisk bracket. No
/// `stdout-path`: Xen gives domUs none, so Linux needs `console=` in
/// `bootargs`.
fn chosen(
    fdt: &mut FdtWriter,
    bootargs: Option<&str>,
    initrd: Option<Range>,
) -> Result<(), GuestDtError> {
    let node = fdt.begin_node("chosen")?;
    if let Some(args) = bootargs {
        fdt.property_string("bootargs", args)?;
    }
    // Always 8-byte values, so the tree's size does not depend on where the
    // ramdisk lands and a loader may build once to learn the size.
    if let Some(r) = initrd.filter(|r| !r.is_empty()) {
        fdt.property_u64("linux,initrd-start", r.start)?;
        fdt.property_u64("linux,initrd-end", r.end)?;
    }
    fdt.end_node(node)?;
    Ok(())
}

/// `/cpus` with one `cpu@<aff>` per vCPU, all started through PSCI.
fn cpus(
    fdt: &mut FdtWriter,
    vcpus: u32,
    compatible: Option<&str>,
    clock_frequency: Option<u32>,
) -> Result<(), GuestDtError> {
    let node = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    // Built once: inner NULs separate the entries of a copied list.
    let compatible = compatible.map(|c| {
        let mut v = Vec::with_capacity(c.len() + 1);
        v.extend_from_slice(c.as_bytes());
        v.push(0);
        v
    });
    for vcpu in 0..vcpus {
        let aff = vcpu_affinity(vcpu);
        let cpu = fdt.begin_node(&format!("cpu@{aff:x}"))?;
        if let Some(c) = &compatible {
            fdt.property("compatible", c)?;
        }
        fdt.property_string("device_type", "cpu")?;
        fdt.property_u32("reg", aff)?;
        if let Some(hz) = clock_frequency {
            fdt.property_u32("clock-frequency", hz)?;
        }
        fdt.property_string("enable-method", "psci")?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(node)?;
    Ok(())
}

/// One `/memory@<first bank>` node listing every bank.
fn memory(fdt: &mut FdtWriter, banks: &[Range]) -> Result<(), GuestDtError> {
    let first = banks.first().ok_or(GuestDtError::NoMemory)?;
    let node = fdt.begin_node(&format!("memory@{:x}", first.start))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u32("reg", &reg_cells(banks))?;
    fdt.end_node(node)?;
    Ok(())
}

/// The virtual GIC. A GICv3's redistributor region is the whole window
/// whatever the vCPU count, as Xen describes it; a GICv2's `reg` is its
/// distributor and its CPU interface (the mapped GICV).
fn gic(fdt: &mut FdtWriter, version: GicVersion) -> Result<(), GuestDtError> {
    let (distributor, second) = match version {
        GicVersion::V2 => (GUEST_GICV2_GICD, GUEST_GICV2_GICC),
        GicVersion::V3 => (GUEST_GICV3_GICD, GUEST_GICV3_GICR0),
    };
    let node = fdt.begin_node(&format!("interrupt-controller@{:x}", distributor.start))?;
    fdt.property_u32("#address-cells", 0)?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    match version {
        GicVersion::V2 => fdt.property_string("compatible", "arm,gic-400")?,
        GicVersion::V3 => {
            fdt.property_string("compatible", "arm,gic-v3")?;
            fdt.property_u32("#redistributor-regions", 1)?;
        }
    }
    fdt.property_array_u32("reg", &reg_cells(&[distributor, second]))?;
    fdt.property_u32("linux,phandle", GUEST_PHANDLE_GIC)?;
    fdt.property_phandle(GUEST_PHANDLE_GIC)?;
    fdt.end_node(node)?;
    Ok(())
}

/// `/timer`: secure physical, non-secure physical and virtual timer PPIs,
/// all level-low as Xen emulates them.
fn timer(fdt: &mut FdtWriter, clock_frequency: Option<u32>) -> Result<(), GuestDtError> {
    let node = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    interrupts(
        fdt,
        &[
            gic_interrupt(GUEST_TIMER_PHYS_S_PPI, IRQ_TYPE_LEVEL_LOW),
            gic_interrupt(GUEST_TIMER_PHYS_NS_PPI, IRQ_TYPE_LEVEL_LOW),
            gic_interrupt(GUEST_VTIMER_PPI, IRQ_TYPE_LEVEL_LOW),
        ],
    )?;
    if let Some(hz) = clock_frequency {
        fdt.property_u32("clock-frequency", hz)?;
    }
    fdt.end_node(node)?;
    Ok(())
}

/// `/hypervisor`: what Linux looks for to find Xen, the grant-table window
/// (`reg[0]`), the extended regions and the event-channel upcall.
fn hypervisor_node(fdt: &mut FdtWriter, h: &HypervisorNode) -> Result<(), GuestDtError> {
    let node = fdt.begin_node("hypervisor")?;
    let (major, minor) = h.version;
    let compatible = format!("xen,xen-{major}.{minor}\0xen,xen\0");
    fdt.property("compatible", compatible.as_bytes())?;
    let no_grant_table = [Range::default()];
    let reg = if h.reg.is_empty() {
        &no_grant_table[..]
    } else {
        &h.reg[..]
    };
    fdt.property_array_u32("reg", &reg_cells(reg))?;
    if let Some(ppi) = h.interrupt_ppi {
        interrupts(fdt, &[gic_interrupt(ppi, IRQ_TYPE_LEVEL_LOW)])?;
    }
    fdt.end_node(node)?;
    Ok(())
}

/// `/psci`: Xen's vPSCI, reached with `HVC #0`; the PSCI 0.1 `cpu_off` and
/// `cpu_on` IDs are listed too, as Xen does.
fn psci(fdt: &mut FdtWriter) -> Result<(), GuestDtError> {
    let node = fdt.begin_node("psci")?;
    fdt.property("compatible", b"arm,psci-1.0\0arm,psci-0.2\0arm,psci\0")?;
    fdt.property_string("method", "hvc")?;
    fdt.property_u32("cpu_off", PSCI_0_1_CPU_OFF)?;
    fdt.property_u32("cpu_on", PSCI_0_1_CPU_ON)?;
    fdt.end_node(node)?;
    Ok(())
}

/// `/sbsa-uart@22000000`: the emulated SBSA UART on SPI 32.
fn vpl011(fdt: &mut FdtWriter) -> Result<(), GuestDtError> {
    let node = fdt.begin_node(&format!("sbsa-uart@{:x}", GUEST_PL011.start))?;
    fdt.property_string("compatible", "arm,sbsa-uart")?;
    fdt.property_array_u32("reg", &reg_cells(&[GUEST_PL011]))?;
    interrupts(fdt, &[gic_interrupt(GUEST_VPL011_SPI, IRQ_TYPE_LEVEL_HIGH)])?;
    fdt.property_u32("current-speed", VPL011_SPEED)?;
    fdt.end_node(node)?;
    Ok(())
}

#[cfg(test)]
mod tests;
