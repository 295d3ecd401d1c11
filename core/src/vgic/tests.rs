//! Delivery: injection, routing, SGIs and the list-register cycle, driven
//! through the guest's registers as a guest would.

use super::*;
use alloc::format;
use alloc::vec::Vec;

const GICD: u64 = 0x0300_1000;
const GICR: u64 = 0x0302_0000;
const SGI_FRAME: u64 = 0x1_0000;
const LRS: usize = 4;

/// Xen's MPIDR for vCPU i: Aff0 = i & 0xf, Aff1 = i >> 4.
fn mpidr(i: usize) -> u64 {
    (i as u64 & 0xf) | ((i as u64 >> 4) << 8)
}

/// `nr_vcpus` vCPUs, `nr_spis` SPIs, distributor group 1 enabled.
fn ready(nr_vcpus: usize, nr_spis: u32) -> Vgic {
    let mpidrs: Vec<u64> = (0..nr_vcpus).map(mpidr).collect();
    let mut v = Vgic::new(nr_vcpus, nr_spis, &mpidrs);
    write(&mut v, GICD, 4, 0x2);
    v
}

fn write(v: &mut Vgic, ipa: u64, size: u8, value: u64) -> Kicks {
    v.mmio(0, ipa, Access::Write { size, value }).unwrap().1
}

fn read(v: &mut Vgic, ipa: u64) -> u64 {
    v.mmio(1, ipa, Access::Read { size: 4 }).unwrap().0
}

/// The word of a bit register (`block` = its offset, e.g. 0x100) holding
/// `intid`, and the bit.
fn bit_reg(vcpu: usize, block: u64, intid: u32) -> (u64, u64) {
    let ipa = if intid < 32 {
        GICR + vcpu as u64 * 0x20000 + SGI_FRAME + block
    } else {
        GICD + block + 4 * u64::from(intid / 32)
    };
    (ipa, 1 << (intid % 32))
}

fn enable(v: &mut Vgic, vcpu: usize, intid: u32) -> Kicks {
    let (ipa, bit) = bit_reg(vcpu, 0x100, intid);
    write(v, ipa, 4, bit)
}

fn is_active(v: &mut Vgic, vcpu: usize, intid: u32) -> bool {
    let (ipa, bit) = bit_reg(vcpu, 0x300, intid);
    read(v, ipa) & bit != 0
}

fn is_pending(v: &mut Vgic, vcpu: usize, intid: u32) -> bool {
    let (ipa, bit) = bit_reg(vcpu, 0x200, intid);
    read(v, ipa) & bit != 0
}

fn set_priority(v: &mut Vgic, vcpu: usize, intid: u32, priority: u8) {
    let ipa = if intid < 32 {
        GICR + vcpu as u64 * 0x20000 + SGI_FRAME + 0x400 + u64::from(intid)
    } else {
        GICD + 0x400 + u64::from(intid)
    };
    write(v, ipa, 1, u64::from(priority));
}

fn route(v: &mut Vgic, intid: u32, irouter: u64) -> Kicks {
    write(v, GICD + 0x6000 + 8 * u64::from(intid), 8, irouter)
}

fn flush(v: &mut Vgic, vcpu: usize) -> (Vec<ListRegister>, LrFlush) {
    let mut out = [0u64; LRS];
    let result = v.flush_lrs(vcpu, LRS, &mut out);
    let lrs = out[..result.count]
        .iter()
        .map(|&lr| ListRegister::decode(lr))
        .collect();
    (lrs, result)
}

fn sync(v: &mut Vgic, vcpu: usize, lrs: &[ListRegister]) -> Kicks {
    let values: Vec<u64> = lrs.iter().map(ListRegister::encode).collect();
    v.sync_lrs(vcpu, &values)
}

fn intids(lrs: &[ListRegister]) -> Vec<u32> {
    lrs.iter().map(|lr| lr.vintid).collect()
}

/// The guest acknowledged it: pending -> active.
fn acked(lr: ListRegister) -> ListRegister {
    ListRegister {
        pending: false,
        active: true,
        ..lr
    }
}

/// The guest acknowledged and deactivated it: the register is invalid.
fn handled(lr: ListRegister) -> ListRegister {
    ListRegister {
        pending: false,
        active: false,
        ..lr
    }
}

#[test]
fn pending_enabled_spi_is_listed_pending_in_group1_with_its_priority() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 40);
    set_priority(&mut v, 0, 40, 0xa0);

    v.inject(0, 40);
    let (lrs, result) = flush(&mut v, 0);

    assert_eq!(
        lrs,
        [ListRegister {
            vintid: 40,
            priority: 0xa0,
            group1: true,
            pending: true,
            ..Default::default()
        }]
    );
    assert!(!result.underflow);
}

#[test]
fn disabled_interrupt_waits_and_enabling_it_kicks_its_vcpu() {
    let mut v = ready(2, 32);

    let on_inject = v.inject(1, 20);
    assert_eq!(on_inject, Kicks::NONE);
    assert!(flush(&mut v, 1).0.is_empty());
    assert!(is_pending(&mut v, 1, 20));

    let on_enable = enable(&mut v, 1, 20);

    assert_eq!(on_enable, Kicks::one(1));
    assert_eq!(intids(&flush(&mut v, 1).0), [20]);
}

#[test]
fn distributor_group1_disabled_holds_delivery_until_enabled() {
    let mut v = ready(2, 32);
    write(&mut v, GICD, 4, 0);
    enable(&mut v, 1, 31);
    v.inject(1, 31);
    assert!(!v.has_pending(1));
    assert!(flush(&mut v, 1).0.is_empty());

    let kicks = write(&mut v, GICD, 4, 0x2);

    assert_eq!(kicks, Kicks::one(1));
    assert_eq!(intids(&flush(&mut v, 1).0), [31]);
}

#[test]
fn spi_routed_by_irouter_to_vcpu1_is_listed_there_only() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 33);
    route(&mut v, 33, mpidr(1));

    let kicks = v.inject(0, 33);

    assert_eq!(kicks, Kicks::one(1));
    assert!(flush(&mut v, 0).0.is_empty());
    assert_eq!(intids(&flush(&mut v, 1).0), [33]);
}

#[test]
fn rerouting_a_pending_spi_kicks_its_new_vcpu() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 33);
    v.inject(0, 33);

    let kicks = route(&mut v, 33, mpidr(1));

    assert_eq!(kicks, Kicks::one(1));
    assert!(v.has_pending(1));
    assert!(!v.has_pending(0));
}

#[test]
fn irouter_any_routes_to_vcpu0() {
    let mut v = ready(3, 32);
    enable(&mut v, 0, 34);
    route(&mut v, 34, 1 << 31 | mpidr(2));

    let kicks = v.inject(2, 34);

    assert_eq!(kicks, Kicks::one(0));
}

#[test]
fn irouter_naming_no_vcpu_holds_the_spi_pending() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 35);
    route(&mut v, 35, 0x5);

    let kicks = v.inject(0, 35);

    assert_eq!(kicks, Kicks::NONE);
    assert!(!v.has_pending(0) && !v.has_pending(1));
    assert_eq!(route(&mut v, 35, mpidr(0)), Kicks::one(0));
}

#[test]
fn sgi1r_target_list_pends_the_sgi_on_the_named_vcpus() {
    let mut v = ready(4, 32);
    for vcpu in 0..4 {
        enable(&mut v, vcpu, 3);
    }

    let kicks = v.write_sgi1r(0, 3 << 24 | 0b1010);

    assert_eq!(kicks, Kicks::one(1) | Kicks::one(3));
    assert_eq!(intids(&flush(&mut v, 1).0), [3]);
    assert_eq!(intids(&flush(&mut v, 3).0), [3]);
    assert!(!is_pending(&mut v, 0, 3) && !is_pending(&mut v, 2, 3));
}

#[test]
fn sgi1r_aff1_reaches_the_second_cluster_only() {
    let mut v = ready(18, 32);
    enable(&mut v, 1, 5);
    enable(&mut v, 17, 5);

    // Aff1 = 1, TargetList bit 1: vCPU 17, not vCPU 1.
    let kicks = v.write_sgi1r(0, 5 << 24 | 1 << 16 | 0b10);

    assert_eq!(kicks, Kicks::one(17));
    assert!(!is_pending(&mut v, 1, 5));
}

#[test]
fn sgi1r_irm_targets_every_vcpu_but_the_sender() {
    let mut v = ready(3, 32);
    for vcpu in 0..3 {
        enable(&mut v, vcpu, 1);
    }

    let kicks = v.write_sgi1r(1, 1 << 40 | 1 << 24);

    assert_eq!(kicks.iter().collect::<Vec<_>>(), [0, 2]);
    assert!(!is_pending(&mut v, 1, 1));
}

#[test]
fn sgi1r_is_not_sent_where_the_sgi_is_group0() {
    let mut v = ready(2, 32);
    enable(&mut v, 1, 2);
    let (igroupr, bit) = bit_reg(1, 0x80, 2);
    write(&mut v, igroupr, 4, 0xffff_ffff & !bit);

    let kicks = v.write_sgi1r(0, 2 << 24 | 0b10);

    assert_eq!(kicks, Kicks::NONE);
    assert!(!is_pending(&mut v, 1, 2));
}

#[test]
fn more_pending_than_lrs_lists_the_highest_priority_first_and_requests_underflow() {
    let mut v = ready(1, 32);
    for (intid, priority) in [
        (40, 0x80),
        (41, 0x10),
        (42, 0xf0),
        (43, 0x40),
        (44, 0x20),
        (45, 0x10),
    ] {
        enable(&mut v, 0, intid);
        set_priority(&mut v, 0, intid, priority);
        v.inject(0, intid);
    }

    let (lrs, result) = flush(&mut v, 0);

    assert_eq!(intids(&lrs), [41, 45, 44, 43]);
    assert!(result.underflow);
}

#[test]
fn remaining_interrupts_follow_once_the_guest_handled_the_first_ones() {
    let mut v = ready(1, 32);
    for (intid, priority) in [
        (40, 0x80),
        (41, 0x10),
        (42, 0xf0),
        (43, 0x40),
        (44, 0x20),
        (45, 0x10),
    ] {
        enable(&mut v, 0, intid);
        set_priority(&mut v, 0, intid, priority);
        v.inject(0, intid);
    }
    let (first, _) = flush(&mut v, 0);

    sync(
        &mut v,
        0,
        &first.iter().map(|&lr| handled(lr)).collect::<Vec<_>>(),
    );
    let (second, result) = flush(&mut v, 0);

    assert_eq!(intids(&second), [40, 42]);
    assert!(!result.underflow);
}

#[test]
fn unconsumed_lrs_are_listed_again_after_sync() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 40);
    v.inject(0, 40);
    let (lrs, _) = flush(&mut v, 0);

    sync(&mut v, 0, &lrs);

    assert_eq!(flush(&mut v, 0).0, lrs);
}

#[test]
fn acknowledged_interrupt_is_active_until_the_guest_deactivates_it() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 27);
    v.inject(0, 27);
    let (lrs, _) = flush(&mut v, 0);

    sync(&mut v, 0, &[acked(lrs[0])]);
    assert!(is_active(&mut v, 0, 27));
    assert!(!is_pending(&mut v, 0, 27));
    let (again, _) = flush(&mut v, 0);
    assert_eq!(
        again,
        [acked(lrs[0])],
        "still listed so it can be deactivated"
    );

    sync(&mut v, 0, &[handled(again[0])]);

    assert!(!is_active(&mut v, 0, 27));
    assert!(flush(&mut v, 0).0.is_empty());
}

#[test]
fn active_interrupts_are_listed_before_pending_ones() {
    let mut v = ready(1, 32);
    for intid in 40..45 {
        enable(&mut v, 0, intid);
        set_priority(&mut v, 0, intid, 0x10);
        v.inject(0, intid);
    }
    set_priority(&mut v, 0, 44, 0xf0);
    let (lrs, _) = flush(&mut v, 0);
    assert_eq!(intids(&lrs), [40, 41, 42, 43]);
    sync(
        &mut v,
        0,
        &[handled(lrs[0]), handled(lrs[1]), handled(lrs[2]), lrs[3]],
    );
    let (lrs, _) = flush(&mut v, 0);
    sync(&mut v, 0, &[acked(lrs[0]), lrs[1]]);
    for intid in 45..48 {
        enable(&mut v, 0, intid);
        set_priority(&mut v, 0, intid, 0x08);
        v.inject(0, intid);
    }

    let (lrs, result) = flush(&mut v, 0);

    assert_eq!(intids(&lrs), [43, 45, 46, 47], "active 43 first, 44 waits");
    assert!(lrs[0].active && !lrs[0].pending);
    assert!(result.underflow);
}

#[test]
fn interrupt_in_an_lr_is_not_listed_twice() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 40);
    v.inject(0, 40);
    let (first, _) = flush(&mut v, 0);

    v.inject(0, 40);
    let (second, _) = flush(&mut v, 0);

    assert_eq!(intids(&first), [40]);
    assert_eq!(intids(&second), [40]);
}

#[test]
fn spi_in_one_vcpus_lr_is_not_listed_on_another_after_rerouting() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 36);
    v.inject(0, 36);
    let (on0, _) = flush(&mut v, 0);
    assert_eq!(intids(&on0), [36]);

    route(&mut v, 36, mpidr(1));

    assert!(flush(&mut v, 1).0.is_empty());
    let kicks = sync(&mut v, 0, &on0);
    assert_eq!(
        kicks,
        Kicks::one(1),
        "released unacknowledged: its new vCPU takes it"
    );
    assert_eq!(intids(&flush(&mut v, 1).0), [36]);
}

#[test]
fn active_spi_stays_with_its_vcpu_after_rerouting_until_deactivated() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 36);
    v.inject(0, 36);
    let (on0, _) = flush(&mut v, 0);
    sync(&mut v, 0, &[acked(on0[0])]);

    route(&mut v, 36, mpidr(1));
    v.inject(0, 36);

    assert!(flush(&mut v, 1).0.is_empty());
    let (on0, _) = flush(&mut v, 0);
    assert_eq!(intids(&on0), [36]);
    assert!(on0[0].pending && on0[0].active);
    sync(
        &mut v,
        0,
        &[ListRegister {
            active: false,
            ..on0[0]
        }],
    );
    assert_eq!(intids(&flush(&mut v, 1).0), [36]);
}

#[test]
fn level_interrupt_stays_pending_while_high_and_asks_for_eoi_maintenance() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 32);

    let kicks = v.set_level(0, 32, true);
    let (lrs, _) = flush(&mut v, 0);
    sync(&mut v, 0, &[acked(lrs[0])]);

    assert_eq!(kicks, Kicks::one(0));
    assert!(lrs[0].pending && lrs[0].eoi_maintenance);
    assert!(is_pending(&mut v, 0, 32), "the line is still high");
    let (lrs, _) = flush(&mut v, 0);
    assert!(
        lrs[0].active && !lrs[0].pending,
        "not offered again before EOI"
    );
}

#[test]
fn level_interrupt_is_presented_again_after_eoi_while_still_high() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 32);
    v.set_level(0, 32, true);
    let (lrs, _) = flush(&mut v, 0);

    sync(&mut v, 0, &[handled(lrs[0])]);
    let (lrs, _) = flush(&mut v, 0);

    assert_eq!(intids(&lrs), [32]);
    assert!(lrs[0].pending && !lrs[0].active);
}

#[test]
fn level_interrupt_lowered_before_eoi_is_not_presented_again() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 32);
    v.set_level(0, 32, true);
    let (lrs, _) = flush(&mut v, 0);
    sync(&mut v, 0, &[acked(lrs[0])]);

    v.set_level(0, 32, false);
    let (lrs, _) = flush(&mut v, 0);
    sync(&mut v, 0, &[handled(lrs[0])]);

    assert!(flush(&mut v, 0).0.is_empty());
    assert!(!is_pending(&mut v, 0, 32));
}

#[test]
fn level_line_rising_while_active_kicks_to_request_eoi_maintenance() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 32);
    v.inject(0, 32);
    let (lrs, _) = flush(&mut v, 0);
    assert!(
        !lrs[0].eoi_maintenance,
        "a software pend needs no re-sampling"
    );
    sync(&mut v, 0, &[acked(lrs[0])]);

    let kicks = v.set_level(0, 32, true);
    let (lrs, _) = flush(&mut v, 0);

    assert_eq!(kicks, Kicks::one(0));
    assert!(lrs[0].active && lrs[0].eoi_maintenance);
}

#[test]
fn edge_arriving_after_the_guest_acknowledged_is_not_lost() {
    let mut v = ready(2, 32);
    enable(&mut v, 1, 1);
    v.write_sgi1r(0, 1 << 24 | 0b10);
    let (lrs, _) = flush(&mut v, 1);

    // vCPU 1 acknowledges while vCPU 0 sends again, then EOIs; one exit.
    let kicks = v.write_sgi1r(0, 1 << 24 | 0b10);
    sync(&mut v, 1, &[handled(lrs[0])]);

    assert_eq!(kicks, Kicks::one(1));
    assert_eq!(intids(&flush(&mut v, 1).0), [1]);
}

#[test]
fn edges_before_the_guest_acknowledges_coalesce() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 40);
    v.inject(0, 40);
    v.inject(0, 40);
    let (lrs, _) = flush(&mut v, 0);

    sync(&mut v, 0, &[handled(lrs[0])]);

    assert!(flush(&mut v, 0).0.is_empty());
}

#[test]
fn clearing_pending_while_listed_is_not_undone_by_sync() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 40);
    v.inject(0, 40);
    let (lrs, _) = flush(&mut v, 0);

    let (icpendr, bit) = bit_reg(0, 0x280, 40);
    write(&mut v, icpendr, 4, bit);
    sync(&mut v, 0, &lrs);

    assert!(!is_pending(&mut v, 0, 40));
    assert!(flush(&mut v, 0).0.is_empty());
}

#[test]
fn setting_pending_through_ispendr_kicks_the_target() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 33);
    route(&mut v, 33, mpidr(1));
    let (ispendr, bit) = bit_reg(0, 0x200, 33);

    let kicks = write(&mut v, ispendr, 4, bit);

    assert_eq!(kicks, Kicks::one(1));
}

#[test]
fn hw_interrupt_lr_carries_pintid_and_no_eoi_request() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 27);

    v.inject_hw(0, 27, 27);
    let (lrs, _) = flush(&mut v, 0);

    assert_eq!(lrs[0].pintid, Some(27));
    assert!(lrs[0].pending && !lrs[0].eoi_maintenance);
}

#[test]
fn hw_interrupt_is_never_listed_pending_and_active() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 27);
    v.inject_hw(0, 27, 27);
    let (lrs, _) = flush(&mut v, 0);
    sync(&mut v, 0, &[acked(lrs[0])]);

    v.inject_hw(0, 27, 27);
    let (lrs, _) = flush(&mut v, 0);

    assert!(lrs[0].active && !lrs[0].pending);
}

#[test]
fn hw_link_ends_when_the_guest_deactivates() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 27);
    v.inject_hw(0, 27, 27);
    let (lrs, _) = flush(&mut v, 0);
    sync(&mut v, 0, &[handled(lrs[0])]);

    v.inject(0, 27);
    let (lrs, _) = flush(&mut v, 0);

    assert_eq!(lrs[0].pintid, None);
}

#[test]
fn hw_injection_of_a_non_ppi_or_spi_pintid_is_ignored() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 27);

    let kicks = v.inject_hw(0, 27, 1023);

    assert_eq!(kicks, Kicks::NONE);
    assert!(!is_pending(&mut v, 0, 27));
}

#[test]
fn edge_configured_line_pends_once_per_rising_edge() {
    let mut v = ready(1, 32);
    enable(&mut v, 0, 33);
    write(&mut v, GICD + 0xc08, 4, 0b1000);
    v.set_level(0, 33, true);
    v.set_level(0, 33, true);
    let (lrs, _) = flush(&mut v, 0);
    sync(&mut v, 0, &[handled(lrs[0])]);
    assert!(flush(&mut v, 0).0.is_empty(), "no new edge while high");

    v.set_level(0, 33, false);
    v.set_level(0, 33, true);

    assert_eq!(intids(&flush(&mut v, 0).0), [33]);
}

#[test]
fn has_pending_counts_only_deliverable_interrupts_of_that_vcpu() {
    let mut v = ready(2, 32);
    v.inject(0, 20);
    assert!(!v.has_pending(0), "disabled");

    enable(&mut v, 0, 20);

    assert!(v.has_pending(0));
    assert!(!v.has_pending(1));
    assert!(!v.has_pending(2), "no such vCPU");
}

#[test]
fn injecting_a_missing_interrupt_or_vcpu_does_nothing() {
    let mut v = ready(2, 32);
    enable(&mut v, 0, 20);

    assert_eq!(v.inject(0, 64), Kicks::NONE);
    assert_eq!(v.inject(2, 20), Kicks::NONE);
    assert_eq!(v.set_level(0, 1020, true), Kicks::NONE);
    assert_eq!(v.write_sgi1r(5, 1 << 40), Kicks::NONE);
    assert!(!v.has_pending(0) && !v.has_pending(1));
}

#[test]
fn flush_uses_at_most_nr_lrs_and_clears_the_rest() {
    let mut v = ready(1, 32);
    for intid in 40..43 {
        enable(&mut v, 0, intid);
        v.inject(0, intid);
    }
    let mut out = [u64::MAX; 4];

    let result = v.flush_lrs(0, 2, &mut out);

    assert_eq!(
        result,
        LrFlush {
            count: 2,
            underflow: true
        }
    );
    assert_eq!(ListRegister::decode(out[1]).vintid, 41);
    assert_eq!(out[2..], [u64::MAX, u64::MAX], "beyond nr_lrs untouched");

    v.sync_lrs(0, &out[..2]);
    let result = v.flush_lrs(0, 4, &mut out);
    assert_eq!(result.count, 3);
    assert_eq!(out[3], u64::MAX, "past count untouched");
}

#[test]
fn kicks_list_their_vcpus_lowest_first() {
    let kicks = Kicks::one(63) | Kicks::one(3);

    assert_eq!(kicks.iter().collect::<Vec<_>>(), [3, 63]);
    assert!(kicks.contains(63) && !kicks.contains(4));
    assert!(Kicks::NONE.is_empty());
}

#[test]
fn too_many_spis_is_refused_with_the_limit() {
    let err = Vgic::try_new(1, 989, &[0]).err().unwrap();

    assert_eq!(err, VgicError::SpiCount { nr_spis: 989 });
    assert_eq!(
        format!("{err}"),
        "vGIC: nr_spis = 989 is out of range (expected at most 988)"
    );
}

#[test]
fn vcpu_count_outside_1_to_64_is_refused() {
    assert_eq!(
        Vgic::try_new(0, 32, &[]).err(),
        Some(VgicError::VcpuCount {
            nr_vcpus: 0,
            max: 64
        })
    );
    let mpidrs: Vec<u64> = (0..65).map(mpidr).collect();
    let err = Vgic::try_new(65, 32, &mpidrs).err().unwrap();
    assert_eq!(
        format!("{err}"),
        "vGIC: 65 vCPUs is out of range (expected 1 to 64)"
    );
}

#[test]
fn mpidr_list_must_match_the_vcpu_count() {
    let err = Vgic::try_new(2, 32, &[0]).err().unwrap();

    assert_eq!(
        err,
        VgicError::MpidrCount {
            nr_vcpus: 2,
            mpidrs: 1
        }
    );
}

#[test]
fn aff0_above_15_is_refused_naming_the_vcpu() {
    let err = Vgic::try_new(2, 32, &[0, 0x10]).err().unwrap();

    assert_eq!(
        format!("{err}"),
        "vGIC: vCPU 1 MPIDR 0x10 has Aff0 16 (expected 0 to 15)"
    );
}

#[test]
fn two_vcpus_with_one_affinity_are_refused() {
    let err = Vgic::try_new(3, 32, &[0, 1, 0x8000_0001]).err().unwrap();

    assert_eq!(
        err,
        VgicError::DuplicateAffinity {
            first: 1,
            second: 2,
            mpidr: 0x8000_0001
        }
    );
}

#[test]
#[should_panic(expected = "vGIC: 2 MPIDRs given for 1 vCPUs")]
fn new_panics_with_the_message_try_new_would_return() {
    Vgic::new(1, 32, &[0, 1]);
}

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
fn flush_from_candidate_sets_chooses_what_a_full_scan_would() {
    const VCPUS: usize = 3;
    const SPIS: u32 = 64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut v = ready(VCPUS, SPIS);
    let mut quiet = 0;
    for step in 0..20_000 {
        let vcpu = rng.below(VCPUS as u64) as usize;
        let intid = rng.below(32 + u64::from(SPIS)) as u32;
        match rng.below(11) {
            0 | 1 => {
                v.inject(vcpu, intid);
            }
            2 => {
                enable(&mut v, vcpu, intid);
            }
            3 => {
                let (ipa, bit) = bit_reg(vcpu, 0x180, intid);
                write(&mut v, ipa, 4, bit); // ICENABLER
            }
            4 => {
                v.set_level(vcpu, intid, rng.below(2) == 0);
            }
            5 if intid >= 32 => {
                route(&mut v, intid, mpidr(rng.below(VCPUS as u64 + 1) as usize));
            }
            6 => set_priority(&mut v, vcpu, intid, rng.below(256) as u8),
            7 => {
                let (ipa, bit) = bit_reg(vcpu, 0x080, intid);
                let group = read(&mut v, ipa) ^ bit; // IGROUPR: flip one
                write(&mut v, ipa, 4, group);
            }
            8 => {
                // GICD_CTLR: group 1 off now and then, mostly on.
                write(&mut v, GICD, 4, if rng.below(8) == 0 { 0 } else { 2 });
            }
            9 => {
                let (ipa, bit) = bit_reg(vcpu, 0x300 + 0x80 * rng.below(2), intid);
                write(&mut v, ipa, 4, bit); // ISACTIVER / ICACTIVER
            }
            _ => {}
        }
        for c in 0..VCPUS {
            assert!(
                v.candidates_cover(c),
                "step {step}: vCPU {c} misses a candidate"
            );
        }
        // Run one vCPU: flush, the guest acknowledges or handles some of
        // what it got, sync.
        let (expected, wanted) = v.choice_by_full_scan(vcpu, LRS);
        let has_pending = v.has_pending(vcpu);
        // The lock-free hint may say "maybe" too often, never "no" wrongly.
        let busy = v.busy_handle();
        let hinted = Vgic::may_want_lrs(&busy, vcpu);
        quiet += usize::from(!hinted);
        assert!(
            hinted || expected.is_empty() && !has_pending,
            "step {step}: the busy hint says vCPU {vcpu} has nothing to list, but a full scan lists {expected:?}"
        );
        let (lrs, result) = flush(&mut v, vcpu);
        assert_eq!(intids(&lrs), expected, "step {step}: vCPU {vcpu}");
        assert_eq!(result.underflow, wanted > LRS, "step {step}");
        let offered = lrs.iter().any(|lr| lr.pending);
        assert!(
            has_pending == offered || has_pending && result.underflow,
            "step {step}: has_pending {has_pending} against what flush offered"
        );
        let after: Vec<ListRegister> = lrs
            .iter()
            .map(|&lr| match rng.below(3) {
                0 => lr,
                1 if lr.pending => acked(lr),
                _ => handled(lr),
            })
            .collect();
        sync(&mut v, vcpu, &after);
    }
    assert!(
        quiet > 100,
        "the busy hint said \"nothing\" only {quiet} times"
    );
}

#[test]
fn insert_sorted_keeps_the_smallest_keys_in_order() {
    // Every order of a few keys, into 0 to 5 slots: the result is the
    // smallest `slots` keys ascending, as a sort and truncate would give.
    let keys = [50u64, 10, 40, 30, 20, 60];
    let mut orders = alloc::vec![alloc::vec::Vec::new()];
    for &k in &keys {
        orders = orders
            .into_iter()
            .flat_map(|o: alloc::vec::Vec<u64>| {
                (0..=o.len()).map(move |at| {
                    let mut o = o.clone();
                    o.insert(at, k);
                    o
                })
            })
            .collect();
    }
    assert_eq!(orders.len(), 720);
    for order in &orders {
        for slots in 0..=5 {
            let mut best = [0u64; MAX_LRS];
            let mut chosen = 0;
            for &k in order {
                chosen = super::insert_sorted(&mut best, chosen, slots, k);
            }
            let mut want = order.clone();
            want.sort();
            want.truncate(slots);
            assert_eq!(&best[..chosen], &want[..], "order {order:?}, {slots} slots");
        }
    }
}
