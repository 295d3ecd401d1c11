//! The physical GICv2 (`arm,gic-400`, `arm,cortex-a15-gic`, …) with its
//! virtualization extension: distributor (GICD), CPU interface (GICC),
//! virtual interface control (GICH) and the virtual CPU interface (GICV)
//! that guests use directly, all memory-mapped.
//!
//! The tree's `reg` is GICD, GICC, GICH, GICV. A GIC-400 decodes each 4 KiB
//! page of its CPU interfaces across 64 KiB, so a tree that describes 128
//! KiB windows (ZynqMP's vendor tree) has page 0 repeated sixteen times and
//! page 1 at +64 KiB; like Linux, the driver recognises a GIC-400 by its
//! CPU interface's IIDR at both +0 and +60 KiB and then uses the last
//! alias of page 0, at +60 KiB, which is followed by page 1: an ordinary 8
//! KiB window. A tree that already describes 8 KiB windows is used as is.
//!
//! Interrupts are ended with EOImode 0 (one write to GICC_EOIR drops the
//! priority and deactivates), since no physical interrupt is handed to a
//! guest to deactivate.

use alloc::format;
use alloc::string::String;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU8, Ordering};

use super::{Acked, IrqChip, VifState};
use crate::hostdt::Gic as GicNode;
use crate::memmap::Range;
use crate::vgic::GicVersion;

// Distributor.
const GICD_CTLR: usize = 0x000;
const GICD_TYPER: usize = 0x004;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_ICPENDR: usize = 0x280;
const GICD_ICACTIVER: usize = 0x380;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
const GICD_ICFGR: usize = 0xc00;
const GICD_SGIR: usize = 0xf00;
// CPU interface.
const GICC_CTLR: usize = 0x00;
const GICC_PMR: usize = 0x04;
const GICC_BPR: usize = 0x08;
const GICC_IAR: usize = 0x0c;
const GICC_EOIR: usize = 0x10;
const GICC_IIDR: usize = 0xfc;
// Virtual interface control.
const GICH_HCR: usize = 0x00;
const GICH_VTR: usize = 0x04;
const GICH_VMCR: usize = 0x08;
const GICH_APR: usize = 0xf0;
const GICH_LR0: usize = 0x100;

/// GICC_IIDR of a GIC-400 (Arm's product 0x02, architecture v2), with the
/// revision fields masked out as Linux masks them (`0x00ff_0fff`).
const GIC400_IIDR: u32 = 0x0002_043b;
const IIDR_MASK: u32 = 0x00ff_0fff;
/// Where the last alias of page 0 starts in a 64 KiB-aliased window.
const ALIAS_OFFSET: u64 = 0xf000;
/// The size of a CPU interface: page 0 and page 1 (GICC_DIR).
const CPU_IF_SIZE: u64 = 0x2000;
/// The priority the hypervisor gives the interrupts it takes.
const PRIORITY: u8 = 0x80;
/// INTIDs at and above this are special (1023: spurious).
const SPECIAL: u32 = 1020;

struct GicV2Chip {
    gicd: usize,
    gicc: usize,
    gich: usize,
    gicv: u64,
    regions: [Range; 4],
    aliased: bool,
    maintenance: Option<u32>,
    spis: u32,
    /// Each CPU's interface bit (from its banked GICD_ITARGETSR0), by CPU
    /// index; 0 until that CPU has initialised its interface.
    masks: [AtomicU8; crate::arch::entry::MAX_CPUS],
}

static CHIP: spin::Once<GicV2Chip> = spin::Once::new();

super::register! {
    super::IRQCHIPS,
    GICV2: super::IrqChipDriver = super::IrqChipDriver {
        name: "GICv2",
        compatible: &["arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a7-gic", "arm,gic-v2"],
        probe,
    };
}

fn read32(addr: usize) -> u32 {
    // SAFETY: only called with addresses inside the GIC windows the tree
    // describes, outside RAM (checked in `probe`) and mapped as Device
    // memory by the identity map.
    unsafe { read_volatile(addr as *const u32) }
}

fn write32(addr: usize, v: u32) {
    // SAFETY: as for `read32`.
    unsafe { write_volatile(addr as *mut u32, v) }
}

fn write8(addr: usize, v: u8) {
    // SAFETY: as for `read32`; the byte-accessible distributor registers
    // (priorities, targets) take byte writes.
    unsafe { write_volatile(addr as *mut u8, v) }
}

fn probe(node: &GicNode, _mpidrs: &[u64], boot_cpu: usize) -> Result<&'static dyn IrqChip, String> {
    if CHIP.get().is_some() {
        return Err(format!("{}: the GIC was initialised twice", node.path));
    }
    if node.regs.len() < 4 {
        return Err(format!(
            "{}: reg has {} region(s); Oxen needs the GICv2's distributor, CPU interface, virtual \
             interface control and virtual CPU interface (4 regions: the virtualization extension)",
            node.path,
            node.regs.len()
        ));
    }
    let regions = [node.regs[0], node.regs[1], node.regs[2], node.regs[3]];
    if let Some(w) = regions.iter().find(|w| crate::arch::mem::is_ram(w.start)) {
        return Err(format!(
            "{}: reg region {w} is RAM, not the GIC's registers",
            node.path
        ));
    }
    for (i, what) in [(1, "CPU interface"), (3, "virtual CPU interface")] {
        if regions[i].size() < CPU_IF_SIZE {
            return Err(format!(
                "{}: reg region {} ({what}) is {:#x} bytes; it needs both 4 KiB pages ({CPU_IF_SIZE:#x})",
                node.path,
                regions[i],
                regions[i].size()
            ));
        }
    }
    let mut gicc = regions[1].start;
    let mut gicv = regions[3].start;
    // A 64 KiB-aliased GIC-400: the same IIDR at +0 and at +60 KiB.
    let aliased = regions[1].size() >= 0x20000
        && regions[3].size() >= 0x20000
        && read32(gicc as usize + GICC_IIDR) & IIDR_MASK == GIC400_IIDR
        && read32((gicc + ALIAS_OFFSET) as usize + GICC_IIDR) & IIDR_MASK == GIC400_IIDR;
    if aliased {
        gicc += ALIAS_OFFSET;
        gicv += ALIAS_OFFSET;
    }
    let gicd = regions[0].start as usize;
    let lines = ((read32(gicd + GICD_TYPER) & 0x1f) + 1) * 32;
    let spis = lines.min(SPECIAL) - 32;
    let chip = CHIP.call_once(|| GicV2Chip {
        gicd,
        gicc: gicc as usize,
        gich: regions[2].start as usize,
        gicv,
        regions,
        aliased,
        maintenance: node.maintenance_intid,
        spis,
        masks: [const { AtomicU8::new(0) }; crate::arch::entry::MAX_CPUS],
    });
    chip.init_distributor();
    chip.init_cpu(boot_cpu);
    Ok(chip)
}

impl GicV2Chip {
    fn init_distributor(&self) {
        let d = self.gicd;
        write32(d + GICD_CTLR, 0);
        let lines = (self.spis + 32) as usize;
        // Every shared interrupt off, idle, level-sensitive, at the
        // hypervisor's priority and aimed at no CPU until enabled.
        for i in (32..lines).step_by(32) {
            write32(d + GICD_ICENABLER + i / 8, !0);
            write32(d + GICD_ICPENDR + i / 8, !0);
            write32(d + GICD_ICACTIVER + i / 8, !0);
        }
        for i in (32..lines).step_by(16) {
            write32(d + GICD_ICFGR + i / 4, 0);
        }
        for i in (32..lines).step_by(4) {
            write32(d + GICD_IPRIORITYR + i, u32::from_ne_bytes([PRIORITY; 4]));
            write32(d + GICD_ITARGETSR + i, 0);
        }
        write32(d + GICD_CTLR, 1);
    }

    fn mask_of(&self, cpu: usize) -> u8 {
        self.masks.get(cpu).map_or(0, |m| m.load(Ordering::Acquire))
    }
}

impl IrqChip for GicV2Chip {
    fn name(&self) -> &'static str {
        "GICv2"
    }

    fn describe(&self) -> String {
        format!(
            "GICv2: distributor at {:#x}, CPU interface at {:#x}, virtual interface control at {:#x}, \
             virtual CPU interface at {:#x}{}, {} SPIs{}",
            self.regions[0].start,
            self.gicc,
            self.gich,
            self.gicv,
            if self.aliased {
                " (64 KiB-aliased GIC-400 windows: using +0xf000)"
            } else {
                ""
            },
            self.spis,
            self.maintenance
                .map(|i| format!(", maintenance interrupt {i}"))
                .unwrap_or_default()
        )
    }

    fn spis(&self) -> u32 {
        self.spis
    }

    fn guest_version(&self) -> GicVersion {
        GicVersion::V2
    }

    fn guest_cpu_window(&self) -> Option<(u64, u64)> {
        Some((self.gicv, CPU_IF_SIZE))
    }

    fn max_guest_vcpus(&self) -> u32 {
        8
    }

    fn init_cpu(&self, cpu: usize) {
        let d = self.gicd;
        // The banked GICD_ITARGETSR0..7 read as this CPU's own bit.
        let own = read32(d + GICD_ITARGETSR) as u8;
        if let Some(m) = self.masks.get(cpu) {
            m.store(own, Ordering::Release);
        }
        // Private interrupts: PPIs off, SGIs on (the kick), all idle, at the
        // hypervisor's priority.
        write32(d + GICD_ICENABLER, 0xffff_0000);
        write32(d + GICD_ISENABLER, 0x0000_ffff);
        write32(d + GICD_ICPENDR, !0);
        write32(d + GICD_ICACTIVER, !0);
        for i in (0..32).step_by(4) {
            write32(d + GICD_IPRIORITYR + i, u32::from_ne_bytes([PRIORITY; 4]));
        }
        let c = self.gicc;
        write32(c + GICC_PMR, 0);
        write32(c + GICC_BPR, 0);
        // Enable, EOImode 0, interrupts signalled as IRQ.
        write32(c + GICC_CTLR, 1);
    }

    fn enable_private(&self, _cpu: usize, intid: u32) {
        let d = self.gicd;
        let i = intid as usize;
        write8(d + GICD_IPRIORITYR + i, PRIORITY);
        write32(d + GICD_ISENABLER, 1 << i);
    }

    fn enable_spi(&self, intid: u32, cpu: usize, _mpidr: u64) {
        let d = self.gicd;
        let i = intid as usize;
        if intid < 32 || intid >= self.spis + 32 {
            return;
        }
        write8(d + GICD_IPRIORITYR + i, PRIORITY);
        write8(d + GICD_ITARGETSR + i, self.mask_of(cpu));
        write32(d + GICD_ISENABLER + (i / 32) * 4, 1 << (i % 32));
    }

    fn unmask_priorities(&self) {
        write32(self.gicc + GICC_PMR, 0xff);
    }

    fn send_sgi(&self, sgi: u32, cpu: usize, _mpidr: u64) {
        let mask = self.mask_of(cpu);
        if mask != 0 {
            // TargetListFilter 0: the CPUs in the list.
            write32(self.gicd + GICD_SGIR, u32::from(mask) << 16 | (sgi & 0xf));
        }
    }

    fn ack(&self) -> Option<Acked> {
        let raw = read32(self.gicc + GICC_IAR);
        let intid = raw & 0x3ff;
        (intid < SPECIAL).then_some(Acked { intid, raw })
    }

    fn eoi(&self, acked: Acked) {
        write32(self.gicc + GICC_EOIR, acked.raw);
    }

    fn vif_init_cpu(&self) {
        let h = self.gich;
        write32(h + GICH_HCR, 0);
        write32(h + GICH_APR, 0);
        for n in 0..self.nr_lrs() {
            write32(h + GICH_LR0 + 4 * n, 0);
        }
    }

    fn nr_lrs(&self) -> usize {
        ((read32(self.gich + GICH_VTR) & 0x3f) as usize + 1).min(crate::vgic::MAX_LRS)
    }

    fn read_lr(&self, n: usize) -> u64 {
        crate::vgic::lr_from_v2(read32(self.gich + GICH_LR0 + 4 * n))
    }

    fn write_lr(&self, n: usize, value: u64) {
        write32(self.gich + GICH_LR0 + 4 * n, crate::vgic::lr_to_v2(value));
    }

    fn set_vif_control(&self, enable: bool, underflow: bool) {
        // GICH_HCR: En (bit 0), UIE (bit 1).
        write32(
            self.gich + GICH_HCR,
            u32::from(enable) | u32::from(underflow) << 1,
        );
    }

    fn save_vif(&self, s: &mut VifState) {
        s.vmcr = u64::from(read32(self.gich + GICH_VMCR));
        s.apr = [u64::from(read32(self.gich + GICH_APR)), 0];
    }

    fn restore_vif(&self, s: &VifState) {
        write32(self.gich + GICH_VMCR, s.vmcr as u32);
        write32(self.gich + GICH_APR, s.apr[0] as u32);
    }
}
