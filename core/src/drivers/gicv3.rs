//! The physical GICv3 (`arm,gic-v3`): the distributor, redistributors and
//! system-register CPU interface through the `arm-gic` crate, and the
//! virtualization extension's `ICH_*_EL2` registers for guests' list
//! registers.

use alloc::format;
use alloc::string::String;
use core::arch::asm;
use core::ptr::NonNull;

use arm_gic::IntId;
use arm_gic::gicv3::registers::{Gicd, GicrSgi};
use arm_gic::gicv3::{GicV3, SgiTarget, SgiTargetGroup};
use arm_gic::{InterruptGroup, UniqueMmioPointer, gicv3::GicCpuInterface};

use super::{Acked, IrqChip, VifState};
use crate::hostdt::Gic as GicNode;
use crate::memmap::Range;
use crate::vgic::GicVersion;

struct GicV3Chip {
    gic: spin::Mutex<GicV3<'static>>,
    /// Each CPU's redistributor (by CPU index), matched by MPIDR.
    rd: alloc::vec::Vec<usize>,
    distributor: Range,
    redistributors: usize,
    first_redistributor: u64,
    maintenance: Option<u32>,
    spis: u32,
}

static CHIP: spin::Once<GicV3Chip> = spin::Once::new();

super::register! {
    super::IRQCHIPS,
    GICV3: super::IrqChipDriver = super::IrqChipDriver {
        name: "GICv3",
        compatible: &["arm,gic-v3"],
        probe,
    };
}

/// Initialises the distributor, every redistributor and the boot CPU's
/// interface from the tree's node: `reg` is the distributor, then
/// `#redistributor-regions` (default 1) redistributor regions, none of
/// them RAM (the identity map maps them as Device memory).
fn probe(node: &GicNode, mpidrs: &[u64], boot_cpu: usize) -> Result<&'static dyn IrqChip, String> {
    if CHIP.get().is_some() {
        return Err(format!("{}: the GIC was initialised twice", node.path));
    }
    let nr_redist = node.redistributor_regions.unwrap_or(1) as usize;
    if nr_redist == 0 || node.regs.len() < 1 + nr_redist {
        return Err(format!(
            "{}: reg has {} region(s); a GICv3 needs its distributor and {nr_redist} redistributor \
             region(s) (#redistributor-regions)",
            node.path,
            node.regs.len()
        ));
    }
    let windows = &node.regs[..1 + nr_redist];
    if let Some(w) = windows.iter().find(|w| crate::arch::mem::is_ram(w.start)) {
        return Err(format!(
            "{}: reg region {w} is RAM, not the GIC's registers",
            node.path
        ));
    }
    let (dist, redist) = (windows[0], windows[1]);
    GicCpuInterface::enable_system_register_el2(true);
    let gicd = NonNull::new(dist.start as *mut Gicd)
        .ok_or_else(|| format!("{}: the distributor is at address 0", node.path))?;
    let gicr = NonNull::new(redist.start as *mut GicrSgi)
        .ok_or_else(|| format!("{}: the redistributor is at address 0", node.path))?;
    // The first region's redistributors, up to the one marked last (at
    // most as many 128 KiB frames as the region holds).
    let frames = (redist.size() / 0x2_0000) as usize;
    // SAFETY: the addresses are the GIC's per the device tree, outside RAM
    // (checked), mapped as Device memory; only this driver touches them,
    // and only this first call creates the handle.
    let mut gic = unsafe { GicV3::new(UniqueMmioPointer::new(gicd), gicr, frames) }
        .map_err(|e| format!("{}: redistributor layout: {e:?}", node.path))?;
    let mut present = 0;
    let mut affinities = alloc::vec::Vec::new();
    while present < frames {
        let Ok(t) = gic.gicr_typer(present) else {
            break;
        };
        affinities.push(t.core_mpidr());
        present += 1;
        if t.last_redistributor() {
            break;
        }
    }
    // Each CPU's redistributor, found by its MPIDR (the order of the
    // redistributors need not be the order of /cpus).
    let mut rd = alloc::vec::Vec::with_capacity(mpidrs.len());
    for (i, &m) in mpidrs.iter().enumerate() {
        match affinities.iter().position(|&a| a == m & 0xff_00ff_ffff) {
            Some(j) => rd.push(j),
            None => {
                return Err(format!(
                    "{}: no redistributor in {redist} has the affinity of CPU {i} (MPIDR {m:#x});                      found {present}: {affinities:x?}",
                    node.path
                ));
            }
        }
    }
    // The first handle ends here (it holds no resource beyond the pointer).
    let _ = gic;
    // SAFETY: as above; the first handle is gone, and this one covers only
    // the redistributors that exist.
    let mut gic = unsafe { GicV3::new(UniqueMmioPointer::new(gicd), gicr, present) }
        .map_err(|e| format!("{}: redistributor layout: {e:?}", node.path))?;
    gic.setup(rd.get(boot_cpu).copied().unwrap_or(0));
    let spis = gic.typer().num_spis();
    let chip = CHIP.call_once(|| GicV3Chip {
        gic: spin::Mutex::new(gic),
        rd,
        distributor: dist,
        redistributors: nr_redist,
        first_redistributor: redist.start,
        maintenance: node.maintenance_intid,
        spis,
    });
    Ok(chip)
}

macro_rules! read_sysreg {
    ($get:ident, $reg:literal) => {
        fn $get() -> u64 {
            let v: u64;
            // SAFETY: reading an EL2 GIC virtualization register has no
            // side effects.
            unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
    };
}

macro_rules! write_sysreg {
    ($set:ident, $reg:literal) => {
        fn $set(v: u64) {
            // SAFETY: the virtual CPU interface belongs to EL2; the value
            // comes from the vGIC model of the vCPU that runs next.
            unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nomem, nostack, preserves_flags)) };
        }
    };
}

write_sysreg!(set_ich_hcr, "S3_4_C12_C11_0");
read_sysreg!(ich_vtr, "S3_4_C12_C11_1");
read_sysreg!(ich_vmcr, "S3_4_C12_C11_7");
write_sysreg!(set_ich_vmcr, "S3_4_C12_C11_7");
read_sysreg!(ich_ap0r0, "S3_4_C12_C8_0");
write_sysreg!(set_ich_ap0r0, "S3_4_C12_C8_0");
read_sysreg!(ich_ap1r0, "S3_4_C12_C9_0");
write_sysreg!(set_ich_ap1r0, "S3_4_C12_C9_0");
read_sysreg!(icc_sre_el2, "S3_4_C12_C9_5");
write_sysreg!(set_icc_sre_el2, "S3_4_C12_C9_5");

macro_rules! lr_access {
    ($n:expr, $($i:literal => $reg:literal),*) => {
        match $n {
            $($i => {
                let v: u64;
                // SAFETY: reading a list register has no side effects.
                unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack, preserves_flags)) };
                v
            })*
            _ => 0,
        }
    };
}

macro_rules! lr_write {
    ($n:expr, $v:expr, $($i:literal => $reg:literal),*) => {
        match $n {
            $($i => {
                // SAFETY: list registers belong to EL2; the value comes from
                // the vGIC model for the vCPU about to run.
                unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) $v, options(nomem, nostack, preserves_flags)) };
            })*
            _ => {}
        }
    };
}

impl GicV3Chip {
    fn redistributor(&self, cpu: usize) -> usize {
        self.rd.get(cpu).copied().unwrap_or(cpu)
    }
}

impl IrqChip for GicV3Chip {
    fn name(&self) -> &'static str {
        "GICv3"
    }

    fn describe(&self) -> String {
        format!(
            "GICv3: distributor at {:#x}, {} redistributor region(s) from {:#x}, {} SPIs{}",
            self.distributor.start,
            self.redistributors,
            self.first_redistributor,
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
        GicVersion::V3
    }

    fn guest_cpu_window(&self) -> Option<(u64, u64)> {
        None
    }

    fn max_guest_vcpus(&self) -> u32 {
        crate::vgic::MAX_VCPUS as u32
    }

    fn init_cpu(&self, cpu: usize) {
        GicCpuInterface::enable_system_register_el2(true);
        self.gic.lock().init_cpu(self.redistributor(cpu));
        // `init_cpu` leaves the group-1 enable of this CPU's interface alone.
        GicCpuInterface::enable_group1(true);
    }

    fn enable_private(&self, cpu: usize, intid: u32) {
        let id = if intid < 16 {
            IntId::sgi(intid)
        } else {
            IntId::ppi(intid - 16)
        };
        let rd = self.redistributor(cpu);
        let mut gic = self.gic.lock();
        let _ = gic.set_interrupt_priority(id, Some(rd), 0x80);
        let _ = gic.enable_interrupt(id, Some(rd), true);
    }

    fn enable_spi(&self, intid: u32, _cpu: usize, mpidr: u64) {
        let id = IntId::spi(intid - 32);
        let mut gic = self.gic.lock();
        let _ = gic.set_interrupt_priority(id, None, 0x80);
        let _ = gic.distributor().set_routing(id, Some(mpidr));
        let _ = gic.enable_interrupt(id, None, true);
    }

    fn unmask_priorities(&self) {
        GicCpuInterface::set_priority_mask(0xff);
    }

    fn send_sgi(&self, sgi: u32, _cpu: usize, mpidr: u64) {
        let target = SgiTarget::List {
            affinity3: ((mpidr >> 32) & 0xff) as u8,
            affinity2: ((mpidr >> 16) & 0xff) as u8,
            affinity1: ((mpidr >> 8) & 0xff) as u8,
            target_list: 1 << (mpidr & 0xf),
        };
        let _ = GicCpuInterface::send_sgi(IntId::sgi(sgi), target, SgiTargetGroup::CurrentGroup1);
    }

    fn ack(&self) -> Option<Acked> {
        GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1).map(|id| {
            let intid = u32::from(id);
            Acked { intid, raw: intid }
        })
    }

    fn eoi(&self, acked: Acked) {
        let intid = acked.intid;
        let id = match intid {
            0..16 => IntId::sgi(intid),
            16..32 => IntId::ppi(intid - 16),
            _ => IntId::spi(intid - 32),
        };
        GicCpuInterface::end_interrupt(id, InterruptGroup::Group1);
    }

    fn vif_init_cpu(&self) {
        // Let EL1 use the system-register GIC interface (SRE, Enable).
        set_icc_sre_el2(icc_sre_el2() | 0b1001);
        set_ich_hcr(0);
        for n in 0..self.nr_lrs() {
            self.write_lr(n, 0);
        }
    }

    fn nr_lrs(&self) -> usize {
        (ich_vtr() & 0x1f) as usize + 1
    }

    fn read_lr(&self, n: usize) -> u64 {
        lr_access!(n,
            0 => "S3_4_C12_C12_0", 1 => "S3_4_C12_C12_1", 2 => "S3_4_C12_C12_2", 3 => "S3_4_C12_C12_3",
            4 => "S3_4_C12_C12_4", 5 => "S3_4_C12_C12_5", 6 => "S3_4_C12_C12_6", 7 => "S3_4_C12_C12_7",
            8 => "S3_4_C12_C13_0", 9 => "S3_4_C12_C13_1", 10 => "S3_4_C12_C13_2", 11 => "S3_4_C12_C13_3",
            12 => "S3_4_C12_C13_4", 13 => "S3_4_C12_C13_5", 14 => "S3_4_C12_C13_6", 15 => "S3_4_C12_C13_7")
    }

    fn write_lr(&self, n: usize, v: u64) {
        lr_write!(n, v,
            0 => "S3_4_C12_C12_0", 1 => "S3_4_C12_C12_1", 2 => "S3_4_C12_C12_2", 3 => "S3_4_C12_C12_3",
            4 => "S3_4_C12_C12_4", 5 => "S3_4_C12_C12_5", 6 => "S3_4_C12_C12_6", 7 => "S3_4_C12_C12_7",
            8 => "S3_4_C12_C13_0", 9 => "S3_4_C12_C13_1", 10 => "S3_4_C12_C13_2", 11 => "S3_4_C12_C13_3",
            12 => "S3_4_C12_C13_4", 13 => "S3_4_C12_C13_5", 14 => "S3_4_C12_C13_6", 15 => "S3_4_C12_C13_7")
    }

    fn set_vif_control(&self, enable: bool, underflow: bool) {
        // ICH_HCR_EL2: En (bit 0), UIE (bit 1).
        set_ich_hcr(u64::from(enable) | u64::from(underflow) << 1);
    }

    fn save_vif(&self, s: &mut VifState) {
        s.vmcr = ich_vmcr();
        s.apr = [ich_ap0r0(), ich_ap1r0()];
    }

    fn restore_vif(&self, s: &VifState) {
        set_ich_vmcr(s.vmcr);
        set_ich_ap0r0(s.apr[0]);
        set_ich_ap1r0(s.apr[1]);
    }
}
