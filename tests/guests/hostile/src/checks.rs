//! The isolation checks: after the attack (another domain's grants refused,
//! the IPAs where other domains' RAM sits in host memory fault, xenstore
//! still served), the timer bound next to a noisy domain, and the reboot
//! check with its witness.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use oxen_guest_common::msg::Msg;
use oxen_guest_common::xen::{Page, Shared};
use oxen_guest_common::{msg, println};

use crate::attack::Attack;
use crate::report::case;
use crate::xen::{self, DOMID_SELF, gnt};
use crate::{Layout, arch, arg_num, ensure, power, trap};

/// A page of the guest's own, for copies into it.
static COPY_PAGE: Page = Page::new();

static PROBES: AtomicU64 = AtomicU64::new(0);
static FIRST_BREACH: AtomicU64 = AtomicU64::new(0);

/// Maps and copies a grant of each peer (one of the refs they use, 8
/// and 9, or another), none of which was granted to this domain: every
/// one must fail. Returns the number that did not.
pub fn probe_peer_grants(a: &mut Attack, i: u64) -> u64 {
    let mut breaches = 0;
    let (peers, n) = a.peers_copy();
    for &dom in &peers[..n] {
        let gref = a.rng.pick(&[8, 9, 8, 9, 0, 1, 10, 31]);
        let host = a.unmapped_target();
        PROBES.fetch_add(2, Ordering::Relaxed);
        let flags = gnt::GNTMAP_HOST_MAP
            | if a.rng.one_in(2) {
                gnt::GNTMAP_READONLY
            } else {
                0
            };
        let (st, h) = xen::map(host, flags, gref, dom);
        if st == 0 {
            breaches += 1;
            FIRST_BREACH.store(
                i << 32 | u64::from(dom) << 16 | u64::from(gref),
                Ordering::Relaxed,
            );
            xen::unmap(host, h);
        }
        let st = xen::copy(
            (u64::from(gref), dom, 0),
            (COPY_PAGE.gfn(), DOMID_SELF, 0),
            8,
            gnt::GNTCOPY_SOURCE_GREF,
        );
        if st == 0 {
            breaches += 1;
            FIRST_BREACH.store(
                i << 32 | u64::from(dom) << 16 | u64::from(gref),
                Ordering::Relaxed,
            );
        }
    }
    breaches
}

/// Loads 32 bits from `addr` armed: `None` if it faulted with FAR =
/// `addr` (the fault is the domain's own), else what came back.
fn load(addr: u64) -> Result<(), Msg> {
    let before = trap::total();
    trap::access(2, addr, 0);
    if trap::total() == before {
        return Err(msg!("a load from {addr:#x} did not fault"));
    }
    let (far, esr) = trap::last();
    ensure!(
        far == addr,
        "a load from {addr:#x} faulted with FAR {far:#x} (ESR {esr:#x})"
    );
    Ok(())
}

pub fn after_attack(l: &Layout, bootargs: &str, breaches: u64) {
    let ram_end = l.ram.0 + l.ram.1;
    case("hostile.survived", || {
        Ok(msg!("{} exceptions taken and survived", trap::total()))
    });
    case("isolation.peer_grants_refused", || {
        let n = PROBES.load(Ordering::Relaxed);
        let b = FIRST_BREACH.load(Ordering::Relaxed);
        ensure!(
            breaches == 0,
            "{breaches} of {n} maps and copies of peer grants succeeded; the first at call {} (domain {}, ref {})",
            b >> 32,
            (b >> 16) & 0xffff,
            b & 0xffff
        );
        ensure!(n > 0, "no peers named (hostile.peers=)");
        Ok(msg!("{n} refused"))
    });
    // Host RAM starts where guest RAM does (0x40000000 on QEMU's virt):
    // every other domain's RAM lies at an IPA in [RAM end, 4 GiB), which
    // for this domain is nothing at all, or an extended region it may map
    // grants into (and has not).
    case("isolation.other_ram_faults", || {
        let top = arg_num(bootargs, "hostile.probe_top", 0x1_0000_0000);
        let step = 0x1_0000;
        let mut n = 0u64;
        let mut a = ram_end;
        while a < top {
            load(a)?;
            load(a + step - 4)?;
            n += 2;
            a += step;
        }
        Ok(msg!("{n} loads in {ram_end:#x}..{top:#x} faulted"))
    });
    let store = match (
        xen::hvm_param(xen::HVM_PARAM_STORE_PFN),
        xen::hvm_param(xen::HVM_PARAM_STORE_EVTCHN),
    ) {
        (Ok(pfn), Ok(port)) if pfn != 0 => Some((pfn << 12, port as u32)),
        _ => None,
    };
    if let Some((ring, port)) = store {
        case("hostile.xenstore_still_served", || {
            xenstore_read_domid(ring, port)
        });
    }
}

/// Resets the ring the attack left in any state (connection = 1, as a
/// reconnecting client does), then READs `domid`.
fn xenstore_read_domid(ring: u64, port: u32) -> Result<Msg, Msg> {
    let p = Shared(ring as usize);
    let wait = |ms: u64, cond: &dyn Fn() -> bool| {
        let start = arch::ticks();
        while !cond() {
            if arch::ticks().wrapping_sub(start) > arch::ms(ms) {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    };
    p.w32(2068, 1);
    arch::barrier();
    xen::send(port);
    ensure!(
        wait(3000, &|| p.r32(2068) == 0),
        "the server did not reset the ring (connection {}, error {})",
        p.r32(2068),
        p.r32(2072)
    );
    let prod = p.r32(2052);
    let mut at = prod;
    let req: [u32; 4] = [2, 0x4242, 0, 6];
    for w in req {
        for b in w.to_le_bytes() {
            p.w8((at % 1024) as usize, b);
            at = at.wrapping_add(1);
        }
    }
    for &b in b"domid\0" {
        p.w8((at % 1024) as usize, b);
        at = at.wrapping_add(1);
    }
    arch::barrier();
    p.w32(2052, at);
    arch::barrier();
    xen::send(port);
    // Replies are read until ours; events of watches set before the reset
    // are gone with it, but skip anything else.
    let start = arch::ticks();
    loop {
        ensure!(
            arch::ticks().wrapping_sub(start) < arch::ms(3000),
            "no reply to READ domid within 3 s (rsp_cons {}, rsp_prod {}, error {})",
            p.r32(2056),
            p.r32(2060),
            p.r32(2072)
        );
        let (cons, prod) = (p.r32(2056), p.r32(2060));
        if prod.wrapping_sub(cons) < 16 {
            continue;
        }
        let byte = |i: u32| p.r8((1024 + cons.wrapping_add(i) % 1024) as usize);
        let word = |i: u32| u32::from_le_bytes([byte(i), byte(i + 1), byte(i + 2), byte(i + 3)]);
        let (ty, id, len) = (word(0), word(4), word(12));
        if prod.wrapping_sub(cons) < 16 + len {
            continue;
        }
        p.w32(2056, cons.wrapping_add(16 + len));
        if id == 0x4242 {
            // The attack may have rewritten or removed `domid` (the domain
            // owns its home), so any answer to READ will do: the value, or
            // an error.
            ensure!(
                ty == 2 || ty == 16,
                "READ domid was answered with type {ty} (len {len})"
            );
            return Ok(if ty == 2 {
                msg!("READ domid: {len} byte(s)")
            } else {
                msg!("READ domid: error")
            });
        }
    }
}

// ---- the timer bound ----

const GICR_WAKER: u64 = 0x14;
const GICR_SGI: u64 = 0x1_0000;
/// GICv2: the distributor's SGI register and the CPU interface's.
const GICD_SGIR: u64 = 0xf00;
const GICC_CTLR: u64 = 0x00;
const GICC_PMR: u64 = 0x04;
const GICC_IAR: u64 = 0x0c;
const GICC_EOIR: u64 = 0x10;
const GICC_APR0: u64 = 0xd0;

/// Turns the guest's GIC on for every SGI and PPI and the vPL011's SPI,
/// with IRQs still masked at the CPU: whatever is raised stays pending.
fn gic_on(l: &Layout) {
    if l.v2 {
        // SAFETY: the registers are this domain's distributor (its words
        // for INTIDs 0-31 banked per vCPU) and its CPU interface, as the
        // device tree names them; the guest takes no interrupt (PSTATE.I).
        unsafe {
            use oxen_guest_common::arch::mmio::write32;
            write32(l.gicd.0 as usize, 1);
            write32((l.gicd.0 + 0x100) as usize, u32::MAX);
            write32((l.gicd.0 + 0x104) as usize, u32::MAX);
            write32((l.gicr.0 + GICC_PMR) as usize, 0xff);
            write32((l.gicr.0 + GICC_CTLR) as usize, 1);
        }
        return;
    }
    // SAFETY: the registers are this domain's distributor and its vCPU 0's
    // redistributor, as the device tree names them; the values enable
    // Group 1 interrupts, which the guest never takes (PSTATE.I is set).
    unsafe {
        use oxen_guest_common::arch::mmio::write32;
        write32(l.gicd.0 as usize, (1 << 4) | (1 << 1));
        write32((l.gicd.0 + 0x84) as usize, u32::MAX);
        write32((l.gicd.0 + 0x104) as usize, u32::MAX);
        write32((l.gicr.0 + GICR_WAKER) as usize, 0);
        write32((l.gicr.0 + GICR_SGI + 0x80) as usize, u32::MAX);
        write32((l.gicr.0 + GICR_SGI + 0x100) as usize, u32::MAX);
        asm!(
            "msr icc_sre_el1, {one}",
            "isb",
            "msr icc_pmr_el1, {pmr}",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            one = in(reg) 1u64, pmr = in(reg) 0xffu64,
            options(nomem, nostack)
        );
    }
}

/// Makes the virtual timer's PPI (27) able to wake the guest from WFI,
/// whatever random accesses did to its GIC: redistributor awake, PPI 27
/// in Group 1, enabled, at a priority above the mask; the distributor's
/// Group 1 on; the CPU interface's mask open and Group 1 enabled. On a
/// GICv2 the same through the distributor's banked words and the
/// memory-mapped CPU interface, whose active priorities are cleared too
/// (a random read of GICC_IAR leaves an interrupt active, and its
/// priority would mask the timer's).
pub fn timer_wakes(l: &Layout) {
    if l.v2 {
        // SAFETY: the registers are this domain's distributor and CPU
        // interface, as the device tree names them.
        unsafe {
            use oxen_guest_common::arch::mmio::{read32, write32};
            write32(l.gicd.0 as usize, 1);
            write32((l.gicd.0 + 0x100) as usize, 1 << 27);
            let prio = (l.gicd.0 + 0x400 + 24) as usize;
            write32(prio, (read32(prio) & !(0xff << 24)) | 0xa0 << 24);
            write32((l.gicr.0 + GICC_APR0) as usize, 0);
            write32((l.gicr.0 + GICC_PMR) as usize, 0xff);
            write32((l.gicr.0 + GICC_CTLR) as usize, 1);
        }
        return;
    }
    // SAFETY: the registers are this domain's distributor and its vCPU 0's
    // redistributor, as the device tree names them.
    unsafe {
        use oxen_guest_common::arch::mmio::{read32, write32};
        write32(l.gicd.0 as usize, (1 << 4) | (1 << 1));
        write32((l.gicr.0 + GICR_WAKER) as usize, 0);
        let group = read32((l.gicr.0 + GICR_SGI + 0x80) as usize);
        write32((l.gicr.0 + GICR_SGI + 0x80) as usize, group | 1 << 27);
        write32((l.gicr.0 + GICR_SGI + 0x100) as usize, 1 << 27);
        let prio = (l.gicr.0 + GICR_SGI + 0x400 + 24) as usize;
        write32(prio, (read32(prio) & !(0xff << 24)) | 0xa0 << 24);
        asm!(
            "msr icc_sre_el1, {one}",
            "isb",
            "msr icc_pmr_el1, {pmr}",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            one = in(reg) 1u64, pmr = in(reg) 0xffu64,
            options(nomem, nostack)
        );
    }
}

/// Acknowledges every interrupt pending for the CPU interface.
fn ack_all(l: &Layout) {
    for _ in 0..64 {
        if l.v2 {
            // SAFETY: GICC_IAR and GICC_EOIR of this domain's CPU
            // interface; the guest takes no interrupt (PSTATE.I is set).
            unsafe {
                use oxen_guest_common::arch::mmio::{read32, write32};
                let iar = read32((l.gicr.0 + GICC_IAR) as usize);
                if iar & 0x3ff >= 1020 {
                    return;
                }
                write32((l.gicr.0 + GICC_EOIR) as usize, iar);
            }
            continue;
        }
        let id: u64;
        // SAFETY: acknowledging and ending interrupts has no effect on
        // memory; the guest takes none (PSTATE.I is set).
        unsafe {
            asm!("mrs {}, icc_iar1_el1", out(reg) id, options(nomem, nostack));
            if id >= 1020 {
                return;
            }
            asm!("msr icc_eoir1_el1, {0}", "msr icc_dir_el1, {0}", in(reg) id, options(nomem, nostack));
        }
    }
}

/// Sends SGI 1 to this vCPU alone; it stays pending.
fn sgi_to_self(l: &Layout) {
    if l.v2 {
        // SAFETY: GICD_SGIR of this domain's distributor, TargetListFilter
        // 2 (the sender only).
        unsafe {
            oxen_guest_common::arch::mmio::write32((l.gicd.0 + GICD_SGIR) as usize, 2 << 24 | 1)
        };
        return;
    }
    // SAFETY: an SGI (INTID 1) to this vCPU alone through ICC_SGI1R_EL1.
    unsafe { asm!("msr icc_sgi1r_el1, {}", in(reg) (1u64 << 24) | 1, options(nomem, nostack)) };
}

/// For `hostile.seconds`: the vPL011 written without waiting for room,
/// `console_io` writes, an SGI to itself, its timer fired and never
/// handled, so it always has interrupts pending and output queued, and
/// never waits.
pub fn noisy(l: &Layout, bootargs: &str) {
    let secs = arg_num(bootargs, "hostile.seconds", 5);
    // Which noises (the first three by default): 1 the vPL011, 2 console_io,
    // 4 SGIs, 8 one long console_io write (`hostile.big` bytes), 16 a grant
    // copy of 2^31 - 1 elements (needs grant tables).
    let noise = arg_num(bootargs, "hostile.noise", 7);
    gic_on(l);
    // SAFETY: IMSC of the vPL011 the device tree names: the TX interrupt.
    unsafe { oxen_guest_common::arch::mmio::write32((l.uart + 0x38) as usize, 1 << 5) };
    arch::timer_arm(0);
    static LINE: &[u8] = b"noisy noisy noisy noisy noisy noisy noisy noisy noisy noisy ..\n";
    // Text for the long console_io writes: RAM above the image.
    let text = l.ram.0 + (16 << 20);
    if noise & 8 != 0 {
        let big = arg_num(bootargs, "hostile.big", 256 << 10);
        for off in 0..big.min(32 << 20) as usize {
            Shared(text as usize).w8(off, LINE[off % LINE.len()]);
        }
    }
    let start = arch::ticks();
    let mut lines = 0u64;
    while arch::ticks().wrapping_sub(start) < arch::ms(1000 * secs) {
        if noise & 1 != 0 {
            for &b in LINE.iter() {
                // SAFETY: DR of this domain's vPL011, written without
                // polling FR: the hypervisor must cope with a full FIFO.
                unsafe { oxen_guest_common::arch::mmio::write32(l.uart as usize, u32::from(b)) };
            }
        }
        if noise & 2 != 0 {
            let _ = trap::hypercall(18, [0, LINE.len() as u64, LINE.as_ptr() as u64, 0, 0]);
        }
        if noise & 8 != 0 {
            // One console_io write of `hostile.big` bytes of text.
            let big = arg_num(bootargs, "hostile.big", 256 << 10);
            let _ = trap::hypercall(18, [0, big, text, 0, 0]);
        }
        if noise & 16 != 0 {
            // GNTTABOP_copy of 2^31 - 1 elements, read from its RAM until
            // the end of RAM (each fails on its own).
            let _ = trap::hypercall(20, [5, text, 0x7fff_ffff, 0, 0]);
        }
        if noise & 4 != 0 {
            sgi_to_self(l);
        }
        lines += 2;
    }
    // Let the last line end before the report.
    println!("");
    case("noisy.flooded", || Ok(msg!("{lines} lines in {secs} s")));
}

/// Measures how late the virtual timer's interrupt wakes this vCPU from
/// WFI, `hostile.rounds` times with delays of 1–20 ms, while the noisy
/// domain shares the CPU. Each wake-up must come within one scheduling
/// slice (`hostile.slice_ms`, Oxen's 10 ms) plus `hostile.slack_ms` (2 ms)
/// for the switch itself. QEMU's TCG runs on a shared host whose own
/// scheduling shows in the virtual counter too (a QEMU thread descheduled
/// for 30 ms is 30 ms of guest time): up to `hostile.spikes` rounds (2)
/// may be later, none by more than `hostile.cap_ms` (100 ms). What the
/// hypervisor does wrong is late every time it happens: one console_io
/// write of 1 MiB kept the CPU for 1.6 s before it continued itself.
pub fn timer(l: &Layout, bootargs: &str) {
    let rounds = arg_num(bootargs, "hostile.rounds", 200);
    let slice = arg_num(bootargs, "hostile.slice_ms", 10);
    let slack = arg_num(bootargs, "hostile.slack_ms", 2);
    let spikes = arg_num(bootargs, "hostile.spikes", 2);
    let cap = arg_num(bootargs, "hostile.cap_ms", 100);
    gic_on(l);
    let us = |t: u64| t * 1_000_000 / arch::ticks_per_second();
    let (mut worst, mut total, mut over, mut second) = (0u64, 0u64, 0u64, 0u64);
    let mut rng = crate::rng::Rng::new(arg_num(bootargs, "hostile.seed", 7));
    for _ in 0..rounds {
        let delay = arch::ms(1 + rng.below(20));
        let deadline = arch::ticks() + delay;
        arch::timer_arm(delay);
        while arch::timer_ctl() & 4 == 0 || arch::ticks() < deadline {
            trap::wfi();
        }
        let late = us(arch::ticks().wrapping_sub(deadline));
        arch::timer_stop();
        ack_all(l);
        if late > worst {
            second = worst;
            worst = late;
        } else {
            second = second.max(late);
        }
        total += late;
        if late > (slice + slack) * 1000 {
            over += 1;
        }
    }
    let mean = total / rounds.max(1);
    case("isolation.timer_within_slice", || {
        ensure!(
            over <= spikes && worst <= cap * 1000,
            "{over}/{rounds} over {} ms (max {spikes}), worst {worst} us (cap {cap} ms), mean {mean} us",
            slice + slack
        );
        Ok(msg!(
            "worst {worst} us, next {second} us, mean {mean} us, {over} of {rounds} over {} ms",
            slice + slack
        ))
    });
}

// ---- the reboot check ----

/// The witness's page, granted to the rebooting domain as ref 8: its
/// boot count at 0, [`WITNESS_MAGIC`] at 8.
static WITNESS: Page = Page::new();
const WITNESS_MAGIC: u64 = 0x5749_544e_4553_5321;
const WITNESS_REF: u32 = 8;
/// The page the rebooting domain grants the witness (ref 9), at the
/// start of its pattern.
const SHARED_REF: u32 = 9;
/// What the rebooting domain fills its RAM with before the reboot, and
/// what it writes in the shared page after it.
const PATTERN: u64 = 0x0bad_c0de_5ec2_e7ed;
const PATTERN_AFTER: u64 = 0x0a57_e2ed_0000_2222;
/// Where the pattern starts: above the image, its stacks and BSS.
const PATTERN_OFFSET: u64 = 16 << 20;

fn grant_table(l: &Layout) -> Result<Shared, Msg> {
    ensure!(l.nhyp > 0, "no /hypervisor node: no grant table");
    let gfn = l.hyp[0].0 >> 12;
    let r = xen::add_to_physmap(xen::XENMAPSPACE_GRANT_TABLE, 0, gfn);
    ensure!(r == 0, "add_to_physmap(grant_table, 0) returned {r}");
    Ok(Shared((gfn << 12) as usize))
}

/// The witness's boot count, read by grant copy: `None` until the
/// witness has granted its page.
fn read_count(witness: u16) -> Option<u64> {
    let local = Shared::of(&COPY_PAGE);
    let st = xen::copy(
        (u64::from(WITNESS_REF), witness, 0),
        (COPY_PAGE.gfn(), DOMID_SELF, 0),
        16,
        gnt::GNTCOPY_SOURCE_GREF,
    );
    LAST_COPY.store(st as u64, Ordering::Relaxed);
    (st == 0 && local.r64(8) == WITNESS_MAGIC).then(|| local.r64(0))
}

/// The status of the last copy of the witness's page.
static LAST_COPY: AtomicU64 = AtomicU64::new(0);

fn write_count(witness: u16, n: u64) -> Result<(), Msg> {
    let local = Shared::of(&COPY_PAGE);
    local.w64(0, n);
    let st = xen::copy(
        (COPY_PAGE.gfn(), DOMID_SELF, 0),
        (u64::from(WITNESS_REF), witness, 0),
        8,
        gnt::GNTCOPY_DEST_GREF,
    );
    ensure!(
        st == 0,
        "copy of the boot count to the witness: status {st}"
    );
    Ok(())
}

fn wait_count(witness: u16, want: u64, secs: u64) -> Result<(), Msg> {
    let start = arch::ticks();
    loop {
        let c = read_count(witness);
        if c == Some(want) {
            return Ok(());
        }
        ensure!(
            arch::ticks().wrapping_sub(start) < arch::ms(1000 * secs),
            "the witness's count is {c:?} after {secs} s, expected {want}"
        );
    }
}

pub fn reboot(l: &Layout, bootargs: &str) {
    let witness = arg_num(bootargs, "hostile.witness", 2) as u16;
    let start = l.ram.0 + PATTERN_OFFSET;
    let end = l.ram.0 + l.ram.1;
    let dtb = (l.dtb & !0xfff, (l.dtb + (2 << 20)) & !0xfff);
    let in_dtb = |a: u64| a >= dtb.0 && a < dtb.1;
    // Only the second boot reports: the run's lines are both boots'.
    let mut count = None;
    if let Err(why) = wait_count_any(witness, &mut count) {
        case("reboot.witness_reached", || Err(why));
    }
    match count {
        Some(0) => {
            // The first boot: fill RAM, share its first page, tell the
            // witness, wait until it mapped it, reboot.
            let mut a = start;
            while a < end {
                if !in_dtb(a) {
                    Shared(a as usize).w64(0, PATTERN);
                    Shared(a as usize).w64(4088, PATTERN);
                }
                a += 4096;
            }
            let first = (start..end)
                .step_by(4096)
                .find(|a| !in_dtb(*a))
                .unwrap_or(start);
            Shared(first as usize).fill(0x5e);
            Shared(first as usize).w64(0, PATTERN);
            let shared_gfn = first >> 12;
            let r = grant_table(l)
                .map(|t| xen::grant(t, SHARED_REF as usize, witness, shared_gfn as u32, false));
            let r = r
                .and_then(|()| write_count(witness, 1))
                .and_then(|()| wait_count(witness, 2, 30));
            match r {
                Ok(()) => {
                    println!(
                        "hostile: reboot: pattern written and page {first:#x} shared; SYSTEM_RESET"
                    );
                    power::reset();
                }
                Err(why) => case("reboot.first_boot", || Err(why)),
            }
        }
        Some(2) => {
            case("reboot.witness_reached", || Ok(msg!("second boot")));
            case("reboot.ram_scrubbed", || {
                let mut pages = 0u64;
                let mut a = start;
                while a < end {
                    if !in_dtb(a) {
                        let s = Shared(a as usize);
                        for off in (0..4096).step_by(8) {
                            ensure!(
                                s.r64(off) != PATTERN,
                                "{:#x} still holds the pattern of the first boot",
                                a + off as u64
                            );
                        }
                        pages += 1;
                    }
                    a += 4096;
                }
                Ok(msg!("{pages} pages"))
            });
            case("reboot.grant_table_fresh", || {
                let t = grant_table(l)?;
                for off in (0..4096).step_by(8) {
                    let v = t.r64(off);
                    ensure!(
                        v == 0,
                        "entry {} of the rebuilt grant table is {v:#x}",
                        off / 8
                    );
                }
                Ok(Msg::new())
            });
            // Something new where the shared page was: the witness must not
            // see it through the mapping it made of the old domain's page.
            let mut a = start;
            while in_dtb(a) {
                a += 4096;
            }
            Shared(a as usize).w64(0, PATTERN_AFTER);
            case("reboot.witness_told", || {
                write_count(witness, 3).map(|()| Msg::new())
            });
        }
        _ => {}
    }
}

fn wait_count_any(witness: u16, count: &mut Option<u64>) -> Result<(), Msg> {
    let start = arch::ticks();
    loop {
        if let Some(c) = read_count(witness) {
            *count = Some(c);
            ensure!(
                c == 0 || c == 2,
                "the witness's count is {c}, expected 0 or 2"
            );
            return Ok(());
        }
        ensure!(
            arch::ticks().wrapping_sub(start) < arch::ms(30_000),
            "the witness's page is not readable by grant copy after 30 s (copy status {})",
            LAST_COPY.load(Ordering::Relaxed) as i64
        );
    }
}

pub fn witness(l: &Layout, bootargs: &str) {
    let dom = arg_num(bootargs, "hostile.peers", 1) as u16;
    let w = Shared::of(&WITNESS);
    w.w64(0, 0);
    w.w64(8, WITNESS_MAGIC);
    let at = if l.nhyp > 1 { l.hyp[1].0 } else { 0 };
    let mut handle = 0;
    let mut ok = false;
    case("witness.grant", || {
        let t = grant_table(l)?;
        xen::grant(t, WITNESS_REF as usize, dom, WITNESS.gfn() as u32, false);
        ensure!(at != 0, "no extended region to map into");
        Ok(Msg::new())
    });
    let wait = |want: u64, secs: u64| -> Result<(), Msg> {
        let start = arch::ticks();
        while w.r64(0) != want {
            ensure!(
                arch::ticks().wrapping_sub(start) < arch::ms(1000 * secs),
                "count {} after {secs} s, expected {want}",
                w.r64(0)
            );
        }
        Ok(())
    };
    case("witness.maps_shared_page", || {
        wait(1, 60)?;
        let (st, h) = xen::map(at, gnt::GNTMAP_HOST_MAP, SHARED_REF, dom);
        ensure!(
            st == 0,
            "map of domain {dom}'s ref {SHARED_REF}: status {st}"
        );
        handle = h;
        let v = Shared(at as usize).r64(0);
        ensure!(
            v == PATTERN,
            "the shared page reads {v:#x}, expected {PATTERN:#x}"
        );
        ok = true;
        w.w64(0, 2);
        Ok(Msg::new())
    });
    if !ok {
        return;
    }
    case("witness.stale_mapping_gone", || {
        wait(3, 60)?;
        let before = trap::total();
        trap::access(3, at, 0);
        let faulted = trap::total() != before;
        let v = if faulted {
            0
        } else {
            Shared(at as usize).r64(0)
        };
        ensure!(
            v != PATTERN_AFTER,
            "the mapping of the old domain's page shows the rebuilt domain's RAM ({v:#x})"
        );
        let st = xen::unmap(at, handle);
        Ok(if faulted {
            msg!("faults; unmap {st}")
        } else {
            msg!("reads {v:#x}; unmap {st}")
        })
    });
}
