//! The vGICv2: its distributor registers, SGIs through GICD_SGIR, SPIs
//! routed by GICD_ITARGETSR, and delivery through GICv2 list registers, as
//! a guest and a GICv2 host would drive it.

use super::*;
use alloc::format;
use alloc::vec::Vec;

const GICD: u64 = 0x0300_1000;
const GICC: u64 = 0x0300_2000;
const LRS: usize = 4;

const CTLR: u64 = 0x000;
const TYPER: u64 = 0x004;
const IIDR: u64 = 0x008;
const IGROUPR: u64 = 0x080;
const ISENABLER: u64 = 0x100;
const ICENABLER: u64 = 0x180;
const ISPENDR: u64 = 0x200;
const ICPENDR: u64 = 0x280;
const ISACTIVER: u64 = 0x300;
const ICACTIVER: u64 = 0x380;
const IPRIORITYR: u64 = 0x400;
const ITARGETSR: u64 = 0x800;
const ICFGR: u64 = 0xc00;
const SGIR: u64 = 0xf00;
const CPENDSGIR: u64 = 0xf10;
const SPENDSGIR: u64 = 0xf20;
const ICPIDR2: u64 = 0xfe8;

/// TargetListFilter values of GICD_SGIR.
const TO_LIST: u64 = 0 << 24;
const TO_OTHERS: u64 = 1 << 24;
const TO_SELF: u64 = 2 << 24;

/// A vGICv2 in its reset state.
fn vgic(nr_vcpus: usize, nr_spis: u32) -> Vgic {
    let mpidrs: Vec<u64> = (0..nr_vcpus as u64).collect();
    Vgic::with_version(GicVersion::V2, nr_vcpus, nr_spis, &mpidrs)
}

/// A vGICv2 with the distributor enabled as Linux enables it
/// (GICD_CTLR = 1: EnableGrp0).
fn ready(nr_vcpus: usize, nr_spis: u32) -> Vgic {
    let mut v = vgic(nr_vcpus, nr_spis);
    write(&mut v, 0, CTLR, 4, 1);
    v
}

fn access(
    v: &mut Vgic,
    vcpu: usize,
    offset: u64,
    access: Access,
) -> Result<(u64, Kicks), MmioError> {
    v.mmio(vcpu, GICD + offset, access)
}

fn read(v: &mut Vgic, vcpu: usize, offset: u64, size: u8) -> u64 {
    access(v, vcpu, offset, Access::Read { size }).unwrap().0
}

fn write(v: &mut Vgic, vcpu: usize, offset: u64, size: u8, value: u64) -> Kicks {
    access(v, vcpu, offset, Access::Write { size, value })
        .unwrap()
        .1
}

/// The word of a bit register (`block` = its offset) holding `intid`, and
/// the bit.
fn bit(block: u64, intid: u32) -> (u64, u64) {
    (block + 4 * u64::from(intid / 32), 1 << (intid % 32))
}

fn enable(v: &mut Vgic, vcpu: usize, intid: u32) -> Kicks {
    let (offset, bit) = bit(ISENABLER, intid);
    write(v, vcpu, offset, 4, bit)
}

fn is_pending(v: &mut Vgic, vcpu: usize, intid: u32) -> bool {
    let (offset, bit) = bit(ISPENDR, intid);
    read(v, vcpu, offset, 4) & bit != 0
}

fn target(v: &mut Vgic, intid: u32, mask: u8) -> Kicks {
    write(v, 0, ITARGETSR + u64::from(intid), 1, u64::from(mask))
}

/// What a GICv2 host does: the model's values converted to GICH_LR values
/// and decoded from those.
fn flush(v: &mut Vgic, vcpu: usize) -> (Vec<u32>, LrFlush) {
    let mut out = [0u64; LRS];
    let result = v.flush_lrs(vcpu, LRS, &mut out);
    let lrs = out[..result.count].iter().map(|&lr| lr_to_v2(lr)).collect();
    (lrs, result)
}

fn sync(v: &mut Vgic, vcpu: usize, lrs: &[u32]) -> Kicks {
    let values: Vec<u64> = lrs.iter().map(|&lr| lr_from_v2(lr)).collect();
    v.sync_lrs(vcpu, &values)
}

fn intids(lrs: &[u32]) -> Vec<u32> {
    lrs.iter().map(|&lr| lr & 0x3ff).collect()
}

/// GICH_LR.State: bit 28 pending, bit 29 active.
const LR_PENDING: u32 = 1 << 28;
const LR_ACTIVE: u32 = 1 << 29;
const LR_STATE: u32 = LR_PENDING | LR_ACTIVE;

/// The guest acknowledged it (GICV_IAR): pending -> active.
fn acked(lr: u32) -> u32 {
    lr & !LR_STATE | LR_ACTIVE
}

/// The guest acknowledged and EOIed it: the register is invalid.
fn handled(lr: u32) -> u32 {
    lr & !LR_STATE
}

// ---- construction ----------------------------------------------------------

#[test]
fn gicv2_takes_up_to_8_vcpus_and_refuses_9_naming_the_limit() {
    let mpidrs: Vec<u64> = (0..9).collect();

    let eight = Vgic::try_with_version(GicVersion::V2, 8, 32, &mpidrs[..8]);
    let nine = Vgic::try_with_version(GicVersion::V2, 9, 32, &mpidrs).err();

    assert!(eight.is_ok());
    assert_eq!(
        nine,
        Some(VgicError::VcpuCount {
            nr_vcpus: 9,
            max: 8
        })
    );
    assert_eq!(
        format!("{}", nine.unwrap()),
        "vGIC: 9 vCPUs is out of range (expected 1 to 8)"
    );
}

#[test]
fn gicv2_needs_one_mpidr_per_vcpu_but_not_distinct_affinities() {
    let same = Vgic::try_with_version(GicVersion::V2, 2, 32, &[0x10, 0x10]);
    let short = Vgic::try_with_version(GicVersion::V2, 2, 32, &[0]).err();

    assert!(same.is_ok(), "GICv2 routes by vCPU index");
    assert_eq!(
        short,
        Some(VgicError::MpidrCount {
            nr_vcpus: 2,
            mpidrs: 1
        })
    );
}

#[test]
fn version_is_reported_and_both_are_built_in_tests() {
    assert_eq!(vgic(1, 0).version(), GicVersion::V2);
    assert_eq!(Vgic::new(1, 0, &[0]).version(), GicVersion::V3);
    assert!(GicVersion::V2.is_built() && GicVersion::V3.is_built());
    assert_eq!(
        format!(
            "{}",
            VgicError::NotBuilt {
                version: GicVersion::V2
            }
        ),
        "vGIC: this image has no GICv2 emulation (expected a board with the gicv2 feature)"
    );
}

// ---- windows and access widths ---------------------------------------------

#[test]
fn only_the_distributor_window_is_emulated() {
    let mut v = vgic(1, 32);

    assert!(v.covers(GICD) && v.covers(GICD + 0xffc));
    assert!(!v.covers(GICC), "the CPU interface is mapped, not trapped");
    assert!(!v.covers(GICD + 0x1000));
    assert!(!v.covers(0x0302_0000), "no redistributors");
    let err = v.mmio(0, GICC, Access::Read { size: 4 }).unwrap_err();
    assert_eq!(
        err,
        MmioError::OutsideWindows {
            ipa: GICC,
            version: GicVersion::V2
        }
    );
    assert_eq!(
        format!("{err}"),
        "vGIC: 0x3002000 is outside the GICv2 distributor window (0x0003001000-0x0003002000)"
    );
    assert!(v.mmio(0, 0x0302_0000, Access::Read { size: 4 }).is_err());
}

#[test]
fn word_registers_refuse_bytes_and_halfwords_naming_the_register() {
    let mut v = vgic(1, 32);

    for (offset, size, register) in [
        (CTLR, 1, "GICD_CTLR"),
        (ISENABLER + 4, 2, "GICD_ISENABLER<n>"),
        (ICFGR + 8, 1, "GICD_ICFGR<n>"),
        (SGIR, 1, "GICD_SGIR"),
        (IGROUPR, 2, "GICD_IGROUPR<n>"),
        (ICPIDR2, 1, "GICD_ICPIDR2"),
    ] {
        let err = access(&mut v, 0, offset, Access::Read { size }).unwrap_err();
        assert!(
            matches!(err, MmioError::BadWidth { register: r, sizes: &[4], .. } if r == register),
            "{offset:#x}: {err:?}"
        );
    }
}

#[test]
fn byte_registers_take_bytes_and_words_only() {
    let mut v = vgic(1, 32);

    for offset in [
        IPRIORITYR + 0x21,
        ITARGETSR + 0x21,
        CPENDSGIR + 1,
        SPENDSGIR + 3,
    ] {
        assert!(access(&mut v, 0, offset, Access::Read { size: 1 }).is_ok());
    }
    let err = access(&mut v, 0, ITARGETSR + 0x20, Access::Read { size: 8 }).unwrap_err();
    assert_eq!(
        format!("{err}"),
        "vGIC: GICD_ITARGETSR<n> at 0x3001820 does not take 8-byte accesses (expected 1 or 4 bytes)"
    );
    assert!(matches!(
        access(&mut v, 0, SPENDSGIR, Access::Read { size: 2 }),
        Err(MmioError::BadWidth {
            register: "GICD_SPENDSGIR<n>",
            ..
        })
    ));
}

#[test]
fn misaligned_and_odd_sized_accesses_are_refused() {
    let mut v = vgic(1, 32);

    assert_eq!(
        access(&mut v, 0, ISENABLER + 2, Access::Read { size: 4 }),
        Err(MmioError::Misaligned {
            ipa: GICD + ISENABLER + 2,
            size: 4
        })
    );
    assert_eq!(
        access(&mut v, 0, CTLR, Access::Read { size: 3 }),
        Err(MmioError::UnsupportedSize { ipa: GICD, size: 3 })
    );
}

#[test]
fn offsets_that_are_not_registers_read_as_zero_and_ignore_writes() {
    let mut v = vgic(1, 32);

    for offset in [0x010, 0x040, 0xe00, 0xf30, 0xfd0, 0xfe0, 0xffc] {
        write(&mut v, 0, offset, 4, 0xffff_ffff);
        assert_eq!(read(&mut v, 0, offset, 4), 0, "{offset:#x}");
    }
    assert_eq!(read(&mut v, 0, 0x012, 2), 0, "any size is fine there");
}

// ---- identification and control -------------------------------------------

#[test]
fn typer_gives_it_lines_and_cpu_number_without_security_extensions() {
    assert_eq!(read(&mut vgic(1, 0), 0, TYPER, 4), 0);
    assert_eq!(read(&mut vgic(4, 64), 0, TYPER, 4), 2 | 3 << 5);
    let typer = read(&mut vgic(8, 33), 0, TYPER, 4);
    assert_eq!(typer, 2 | 7 << 5);
    assert_eq!(typer & 1 << 10, 0, "SecurityExtn");
}

#[test]
fn iidr_is_xens_and_icpidr2_reports_archrev_2() {
    let mut v = vgic(1, 32);

    assert_eq!(read(&mut v, 0, IIDR, 4), 0x43b);
    assert_eq!(read(&mut v, 0, ICPIDR2, 4), 0x2b);
    write(&mut v, 0, IIDR, 4, 0);
    assert_eq!(read(&mut v, 0, IIDR, 4), 0x43b, "read-only");
}

#[test]
fn ctlr_keeps_the_two_group_enables_and_nothing_else() {
    let mut v = vgic(1, 32);
    assert_eq!(read(&mut v, 0, CTLR, 4), 0);

    write(&mut v, 0, CTLR, 4, 0xffff_ffff);
    assert_eq!(read(&mut v, 0, CTLR, 4), 0b11);

    write(&mut v, 0, CTLR, 4, 0b10);
    assert_eq!(read(&mut v, 0, CTLR, 4), 0b10);
}

#[test]
fn group0_enable_gates_delivery_and_group1_enable_does_not() {
    let mut v = vgic(2, 32);
    write(&mut v, 0, CTLR, 4, 0b10);
    enable(&mut v, 0, 40);
    target(&mut v, 40, 0b10);
    v.inject(0, 40);
    assert!(!v.has_pending(1));
    assert!(flush(&mut v, 1).0.is_empty());

    let kicks = write(&mut v, 0, CTLR, 4, 0b01);

    assert_eq!(kicks, Kicks::one(1));
    assert_eq!(intids(&flush(&mut v, 1).0), [40]);
}

#[test]
fn igroupr_is_raz_wi_and_interrupts_stay_deliverable() {
    let mut v = ready(1, 32);
    write(&mut v, 0, IGROUPR, 4, 0xffff_ffff);
    write(&mut v, 0, IGROUPR + 4, 4, 0);
    enable(&mut v, 0, 33);
    v.inject(0, 33);

    let (lrs, _) = flush(&mut v, 0);

    assert_eq!(read(&mut v, 0, IGROUPR, 4), 0);
    assert_eq!(read(&mut v, 0, IGROUPR + 4, 4), 0);
    assert_eq!(intids(&lrs), [33]);
}

// ---- enable, pending, active, priority, configuration ----------------------

#[test]
fn spi_enable_is_set_and_cleared_through_its_two_registers() {
    let mut v = vgic(1, 64);

    write(&mut v, 0, ISENABLER + 4, 4, 0b1010);
    assert_eq!(read(&mut v, 0, ISENABLER + 4, 4), 0b1010);
    assert_eq!(read(&mut v, 0, ICENABLER + 4, 4), 0b1010);

    write(&mut v, 0, ICENABLER + 4, 4, 0b0010);

    assert_eq!(read(&mut v, 0, ISENABLER + 4, 4), 0b1000);
}

#[test]
fn word_0_of_each_bit_register_is_banked_per_vcpu() {
    let mut v = vgic(2, 32);

    write(&mut v, 1, ISENABLER, 4, 1 << 27 | 1 << 2);
    write(&mut v, 1, ISACTIVER, 4, 1 << 16);

    assert_eq!(read(&mut v, 1, ISENABLER, 4), 1 << 27 | 1 << 2);
    assert_eq!(read(&mut v, 1, ISACTIVER, 4), 1 << 16);
    assert_eq!(read(&mut v, 0, ISENABLER, 4), 0);
    assert_eq!(read(&mut v, 0, ISACTIVER, 4), 0);
}

#[test]
fn spi_pending_is_set_and_cleared_through_its_two_registers() {
    let mut v = vgic(1, 64);

    write(&mut v, 0, ISPENDR + 8, 4, 1 << 5);
    assert_eq!(read(&mut v, 0, ICPENDR + 8, 4), 1 << 5);

    write(&mut v, 0, ICPENDR + 8, 4, 1 << 5);

    assert_eq!(read(&mut v, 0, ISPENDR + 8, 4), 0);
}

#[test]
fn ispendr0_and_icpendr0_ignore_writes_to_sgi_bits_but_not_ppi_bits() {
    let mut v = vgic(1, 32);

    write(&mut v, 0, ISPENDR, 4, 0xffff_ffff);
    assert_eq!(read(&mut v, 0, ISPENDR, 4), 0xffff_0000);

    write(&mut v, 0, SPENDSGIR, 1, 1);
    write(&mut v, 0, ICPENDR, 4, 0xffff_ffff);

    assert_eq!(read(&mut v, 0, ISPENDR, 4), 1, "SGI 0 is still pending");
}

#[test]
fn active_is_set_and_cleared_through_its_two_registers() {
    let mut v = vgic(1, 32);

    write(&mut v, 0, ISACTIVER + 4, 4, 0x8000_0001);
    assert_eq!(read(&mut v, 0, ICACTIVER + 4, 4), 0x8000_0001);

    write(&mut v, 0, ICACTIVER + 4, 4, 1);

    assert_eq!(read(&mut v, 0, ISACTIVER + 4, 4), 0x8000_0000);
}

#[test]
fn priority_bytes_and_words_address_the_same_interrupts_and_keep_five_bits() {
    let mut v = vgic(2, 32);

    write(&mut v, 0, IPRIORITYR + 0x20, 4, 0x1020_3040);
    write(&mut v, 0, IPRIORITYR + 0x25, 1, 0xff);
    write(&mut v, 1, IPRIORITYR + 0x1b, 1, 0x80);

    assert_eq!(read(&mut v, 0, IPRIORITYR + 0x22, 1), 0x20);
    assert_eq!(read(&mut v, 0, IPRIORITYR + 0x24, 4), 0xf800);
    assert_eq!(read(&mut v, 1, IPRIORITYR + 0x18, 4), 0x8000_0000);
    assert_eq!(read(&mut v, 0, IPRIORITYR + 0x18, 4), 0, "banked per vCPU");
}

#[test]
fn icfgr_sgis_are_always_edge_and_ppis_and_spis_programmable() {
    let mut v = vgic(1, 32);
    assert_eq!(read(&mut v, 0, ICFGR, 4), 0xaaaa_aaaa);
    assert_eq!(read(&mut v, 0, ICFGR + 8, 4), 0, "SPIs reset level");

    write(&mut v, 0, ICFGR, 4, 0);
    write(&mut v, 0, ICFGR + 4, 4, 0x8000_0000);
    write(&mut v, 0, ICFGR + 8, 4, 0b10_00_10);

    assert_eq!(read(&mut v, 0, ICFGR, 4), 0xaaaa_aaaa);
    assert_eq!(read(&mut v, 0, ICFGR + 4, 4), 0x8000_0000);
    assert_eq!(read(&mut v, 0, ICFGR + 8, 4), 0b10_00_10);
}

#[test]
fn interrupts_beyond_nr_spis_are_raz_wi() {
    let mut v = vgic(1, 40);

    write(&mut v, 0, ISENABLER + 8, 4, 0xffff_ffff);
    write(&mut v, 0, ITARGETSR + 0x4f, 1, 1);

    assert_eq!(read(&mut v, 0, ISENABLER + 8, 4), 0xff, "only SPIs 64..72");
    assert_eq!(read(&mut v, 0, ITARGETSR + 0x44, 4), 0x0101_0101);
    assert_eq!(read(&mut v, 0, ITARGETSR + 0x4c, 4), 0);
}

// ---- ITARGETSR --------------------------------------------------------------

#[test]
fn private_target_bytes_read_the_reading_vcpus_bit_and_ignore_writes() {
    let mut v = vgic(3, 32);

    write(&mut v, 2, ITARGETSR, 4, 0xffff_ffff);
    write(&mut v, 2, ITARGETSR + 0x1f, 1, 0x01);

    assert_eq!(read(&mut v, 2, ITARGETSR, 4), 0x0404_0404);
    assert_eq!(read(&mut v, 2, ITARGETSR + 0x1f, 1), 0x04);
    assert_eq!(read(&mut v, 0, ITARGETSR + 0x1c, 4), 0x0101_0101);
    assert_eq!(read(&mut v, 1, ITARGETSR + 0x10, 1), 0x02);
}

#[test]
fn spis_reset_to_target_vcpu_0() {
    let mut v = vgic(2, 32);

    assert_eq!(read(&mut v, 1, ITARGETSR + 0x20, 4), 0x0101_0101);
}

#[test]
fn spi_target_is_the_lowest_vcpu_written_and_reads_back_as_its_bit() {
    let mut v = vgic(4, 32);

    write(&mut v, 0, ITARGETSR + 0x20, 4, 0x0f08_0604);
    write(&mut v, 0, ITARGETSR + 0x25, 1, 0x0c);

    assert_eq!(read(&mut v, 0, ITARGETSR + 0x20, 4), 0x0108_0204);
    assert_eq!(read(&mut v, 0, ITARGETSR + 0x25, 1), 0x04);
    assert_eq!(read(&mut v, 3, ITARGETSR + 0x24, 4) & 0xff00, 0x0400);
}

#[test]
fn spi_naming_no_vcpu_of_the_domain_is_held_pending_until_targeted() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 33);

    target(&mut v, 33, 0xfc);
    let on_inject = v.inject(0, 33);

    assert_eq!(read(&mut v, 0, ITARGETSR + 33, 1), 0);
    assert_eq!(on_inject, Kicks::NONE);
    assert!(!v.has_pending(0) && !v.has_pending(1));
    assert!(is_pending(&mut v, 0, 33));
    assert_eq!(target(&mut v, 33, 0b10), Kicks::one(1));
    assert_eq!(intids(&flush(&mut v, 1).0), [33]);
}

// ---- delivery ---------------------------------------------------------------

#[test]
fn spi_targeted_at_vcpu1_is_listed_there_in_group0_with_its_priority() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 40);
    write(&mut v, 0, IPRIORITYR + 40, 1, 0xa0);
    target(&mut v, 40, 0b10);

    let kicks = v.inject(0, 40);
    let (on0, _) = flush(&mut v, 0);
    let (on1, result) = flush(&mut v, 1);

    assert_eq!(kicks, Kicks::one(1));
    assert!(on0.is_empty());
    assert_eq!(on1, [LR_PENDING | (0xa0 >> 3) << 23 | 40]);
    assert_eq!(on1[0] & 1 << 30, 0, "group 0: what GICV_IAR delivers");
    assert!(!result.underflow);
}

#[test]
fn retargeting_a_pending_spi_kicks_its_new_vcpu() {
    let mut v = ready(3, 32);
    enable(&mut v, 0, 33);
    v.inject(0, 33);
    assert!(v.has_pending(0));

    let kicks = target(&mut v, 33, 0b100);

    assert_eq!(kicks, Kicks::one(2));
    assert!(!v.has_pending(0));
    assert_eq!(intids(&flush(&mut v, 2).0), [33]);
}

#[test]
fn spi_in_one_vcpus_lr_moves_to_its_new_target_only_once_released() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 36);
    v.inject(0, 36);
    let (on0, _) = flush(&mut v, 0);

    target(&mut v, 36, 0b10);

    assert!(flush(&mut v, 1).0.is_empty());
    assert_eq!(sync(&mut v, 0, &on0), Kicks::one(1));
    assert_eq!(intids(&flush(&mut v, 1).0), [36]);
}

#[test]
fn guest_acknowledge_and_eoi_through_gicv2_list_registers() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 27);
    v.set_level(0, 27, true);
    let (lrs, _) = flush(&mut v, 0);
    assert_ne!(lrs[0] & 1 << 19, 0, "level: EOI maintenance requested");

    sync(&mut v, 0, &[acked(lrs[0])]);
    assert_eq!(read(&mut v, 0, ISACTIVER, 4), 1 << 27);
    v.set_level(0, 27, false);
    let (lrs, _) = flush(&mut v, 0);
    assert_eq!(lrs[0] & LR_STATE, LR_ACTIVE);
    sync(&mut v, 0, &[handled(lrs[0])]);

    assert_eq!(read(&mut v, 0, ISACTIVER, 4), 0);
    assert!(flush(&mut v, 0).0.is_empty());
}

#[test]
fn hw_interrupt_lr_carries_the_physical_id() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 34);

    v.inject_hw(0, 34, 77);
    let (lrs, _) = flush(&mut v, 0);

    assert_eq!(lrs[0] & (1 << 31 | 0x3ff << 10), 1 << 31 | 77 << 10);
}

// ---- SGIs -------------------------------------------------------------------

/// `nr_vcpus` vCPUs with SGI `intid` enabled on each.
fn with_sgi(nr_vcpus: usize, intid: u32) -> Vgic {
    let mut v = ready(nr_vcpus, 32);
    for vcpu in 0..nr_vcpus {
        enable(&mut v, vcpu, intid);
    }
    v
}

fn pending_sgi_on(v: &mut Vgic, intid: u32) -> Vec<usize> {
    (0..v.nr_vcpus())
        .filter(|&vcpu| is_pending(v, vcpu, intid))
        .collect()
}

#[test]
fn sgir_target_list_pends_the_sgi_on_the_named_vcpus() {
    let mut v = with_sgi(4, 3);

    let kicks = write(&mut v, 0, SGIR, 4, TO_LIST | 0b1010 << 16 | 3);

    assert_eq!(kicks, Kicks::one(1) | Kicks::one(3));
    assert_eq!(pending_sgi_on(&mut v, 3), [1, 3]);
    assert_eq!(flush(&mut v, 3).0, [LR_PENDING | 3], "source CPUID 0");
}

#[test]
fn sgir_others_filter_pends_on_every_vcpu_but_the_sender() {
    let mut v = with_sgi(3, 5);

    let kicks = write(&mut v, 1, SGIR, 4, TO_OTHERS | 0xff << 16 | 5);

    assert_eq!(kicks.iter().collect::<Vec<_>>(), [0, 2]);
    assert_eq!(pending_sgi_on(&mut v, 5), [0, 2]);
}

#[test]
fn sgir_self_filter_pends_on_the_sender_only() {
    let mut v = with_sgi(3, 7);

    let kicks = write(&mut v, 2, SGIR, 4, TO_SELF | 0b11 << 16 | 7);

    assert_eq!(kicks, Kicks::one(2));
    assert_eq!(pending_sgi_on(&mut v, 7), [2]);
}

#[test]
fn sgir_reserved_filter_sends_nothing() {
    let mut v = with_sgi(2, 1);

    let kicks = write(&mut v, 0, SGIR, 4, 3 << 24 | 0b11 << 16 | 1);

    assert_eq!(kicks, Kicks::NONE);
    assert!(pending_sgi_on(&mut v, 1).is_empty());
}

#[test]
fn sgir_targets_past_the_last_vcpu_and_nsatt_are_ignored() {
    let mut v = with_sgi(2, 4);

    let kicks = write(
        &mut v,
        0,
        SGIR,
        4,
        TO_LIST | 0xfe << 16 | 1 << 15 | 0x10 | 4,
    );

    assert_eq!(kicks, Kicks::one(1));
    assert_eq!(pending_sgi_on(&mut v, 4), [1]);
    assert_eq!(read(&mut v, 0, SGIR, 4), 0, "write-only");
}

#[test]
fn sgi1r_does_nothing_on_a_gicv2() {
    let mut v = with_sgi(2, 1);

    assert_eq!(v.write_sgi1r(0, 1 << 40 | 1 << 24), Kicks::NONE);
    assert!(pending_sgi_on(&mut v, 1).is_empty());
}

#[test]
fn spendsgir_pends_on_the_accessing_vcpu_and_reads_as_sent_by_vcpu0() {
    let mut v = with_sgi(2, 5);

    let kicks = write(&mut v, 1, SPENDSGIR + 4, 4, 0x0000_0200);

    assert_eq!(kicks, Kicks::one(1));
    assert_eq!(pending_sgi_on(&mut v, 5), [1]);
    assert_eq!(read(&mut v, 1, SPENDSGIR + 4, 4), 0x0000_0100);
    assert_eq!(read(&mut v, 1, CPENDSGIR + 5, 1), 0x01);
    assert_eq!(read(&mut v, 0, SPENDSGIR + 4, 4), 0);
}

#[test]
fn cpendsgir_clears_the_pending_sgi_and_naming_no_vcpu_does_nothing() {
    let mut v = with_sgi(2, 2);
    write(&mut v, 0, SGIR, 4, TO_LIST | 0b11 << 16 | 2);

    write(&mut v, 1, CPENDSGIR + 2, 1, 0x80);
    assert_eq!(pending_sgi_on(&mut v, 2), [0, 1], "vCPU 7 does not exist");
    write(&mut v, 1, CPENDSGIR, 4, 0x0001_0000);

    assert_eq!(pending_sgi_on(&mut v, 2), [0]);
    assert!(flush(&mut v, 1).0.is_empty());
}

// ---- Linux ------------------------------------------------------------------

/// What Linux 6.12's GICv2 driver does at boot, for `nr_vcpus` CPUs:
/// distributor init on CPU 0 (gic_dist_init), then each CPU's banked
/// registers (gic_cpu_init).
fn linux_init(v: &mut Vgic, nr_vcpus: usize) {
    write(v, 0, CTLR, 4, 0);
    let lines = 32 * ((read(v, 0, TYPER, 4) & 0x1f) + 1);
    let mut mask = 0;
    for i in 0..8 {
        mask |= read(v, 0, ITARGETSR + 4 * i, 4) as u8;
    }
    let mask = u64::from(mask) * 0x0101_0101;
    for intid in (32..lines).step_by(4) {
        write(v, 0, ITARGETSR + intid, 4, mask);
    }
    for intid in (32..lines).step_by(16) {
        write(v, 0, ICFGR + intid / 4, 4, 0);
    }
    for intid in (32..lines).step_by(4) {
        write(v, 0, IPRIORITYR + intid, 4, 0xa0a0_a0a0);
    }
    for intid in (32..lines).step_by(32) {
        write(v, 0, ICACTIVER + intid / 8, 4, 0xffff_ffff);
        write(v, 0, ICENABLER + intid / 8, 4, 0xffff_ffff);
    }
    write(v, 0, CTLR, 4, 1);
    for vcpu in 0..nr_vcpus {
        assert_eq!(read(v, vcpu, ITARGETSR, 1), 1 << vcpu, "its CPU mask");
        write(v, vcpu, ICACTIVER, 4, 0xffff_ffff);
        write(v, vcpu, ICENABLER, 4, 0xffff_0000);
        write(v, vcpu, ISENABLER, 4, 0x0000_ffff);
        for intid in (0..32).step_by(4) {
            write(v, vcpu, IPRIORITYR + intid, 4, 0xa0a0_a0a0);
        }
    }
}

#[test]
fn linux_boot_sequence_leaves_ipis_and_spis_deliverable() {
    let mut v = vgic(2, 64);
    linux_init(&mut v, 2);

    let ipi = write(&mut v, 0, SGIR, 4, TO_LIST | 0b10 << 16 | 1);
    enable(&mut v, 0, 33);
    let spi = v.set_level(0, 33, true);

    assert_eq!(ipi, Kicks::one(1));
    assert_eq!(spi, Kicks::one(0));
    assert_eq!(flush(&mut v, 1).0, [LR_PENDING | 0x14 << 23 | 1]);
    assert_eq!(flush(&mut v, 0).0, [LR_PENDING | 1 << 19 | 0x14 << 23 | 33]);
}

// ---- the candidate sets under GICv2 routing --------------------------------

/// A deterministic pseudo-random sequence (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn flush_from_candidate_sets_chooses_what_a_full_scan_would_with_itargetsr_and_sgir() {
    const VCPUS: usize = 3;
    const SPIS: u32 = 64;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut v = ready(VCPUS, SPIS);
    for step in 0..20_000 {
        let vcpu = rng.below(VCPUS as u64) as usize;
        let intid = rng.below(32 + u64::from(SPIS)) as u32;
        match rng.below(10) {
            0 | 1 => {
                v.inject(vcpu, intid);
            }
            2 => {
                enable(&mut v, vcpu, intid);
            }
            3 => {
                let (offset, bit) = bit(ICENABLER, intid);
                write(&mut v, vcpu, offset, 4, bit);
            }
            4 => {
                v.set_level(vcpu, intid, rng.below(2) == 0);
            }
            5 => {
                // Any mask, including none and absent vCPUs.
                target(&mut v, intid, rng.below(16) as u8);
            }
            6 => {
                let filter = rng.below(4) << 24;
                let list = rng.below(256) << 16;
                write(&mut v, vcpu, SGIR, 4, filter | list | u64::from(intid % 16));
            }
            7 => {
                write(&mut v, 0, CTLR, 4, if rng.below(8) == 0 { 2 } else { 1 });
            }
            8 => {
                let (offset, bit) = bit(ISACTIVER + 0x80 * rng.below(2), intid);
                write(&mut v, vcpu, offset, 4, bit);
            }
            _ => {
                write(
                    &mut v,
                    vcpu,
                    IPRIORITYR + u64::from(intid),
                    1,
                    rng.below(256),
                );
            }
        }
        for c in 0..VCPUS {
            assert!(
                v.candidates_cover(c),
                "step {step}: vCPU {c} misses a candidate"
            );
        }
        let (expected, wanted) = v.choice_by_full_scan(vcpu, LRS);
        let (lrs, result) = flush(&mut v, vcpu);
        assert_eq!(intids(&lrs), expected, "step {step}: vCPU {vcpu}");
        assert_eq!(result.underflow, wanted > LRS, "step {step}");
        assert!(
            lrs.iter().all(|lr| lr & 1 << 30 == 0),
            "step {step}: group 0"
        );
        let after: Vec<u32> = lrs
            .iter()
            .map(|&lr| match rng.below(3) {
                0 => lr,
                1 if lr & LR_PENDING != 0 => acked(lr),
                _ => handled(lr),
            })
            .collect();
        sync(&mut v, vcpu, &after);
    }
}
