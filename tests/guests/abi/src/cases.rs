//! The cases, in the order they run. Each returns a [`Verdict`]: a note for
//! its PASS line (usually empty) or why it failed. Expectations that depend
//! on the config (is there a `/hypervisor` node, how many vCPUs, how much
//! RAM) come from the kernel's `bootargs` as `expect.KEY=VALUE` words.

use oxen_guest_common::console;
use oxen_guest_common::dt::{self, Dt, Node};
use oxen_guest_common::msg;
use oxen_guest_common::msg::Msg;

use crate::arch::{self, ms, vtimer};
use crate::ensure;
use crate::gic;
use crate::psci;
use crate::report::{Verdict, case};
use crate::smp::{self, MAILBOX, affinity};
use crate::trap;

use core::sync::atomic::Ordering;

/// Xen's errno for an unknown hypercall, returned negated.
const ENOSYS: i64 = -38;
// Xen's guest address map (public/arch-arm.h, spec §2.1): where things
// must be.
const GUEST_GICD: u64 = 0x0300_1000;
const GUEST_GICD_SIZE: u64 = 0x1_0000;
const GUEST_GICR: u64 = 0x0302_0000;
const GUEST_GICR_SIZE: u64 = 0x100_0000;
const GUEST_GICV2_GICD_SIZE: u64 = 0x1000;
const GUEST_GICC: u64 = 0x0300_2000;
const GUEST_GICC_SIZE: u64 = 0x2000;
const GUEST_RAM0: u64 = 0x4000_0000;
const GUEST_RAM0_SIZE: u64 = 0xc000_0000;
const GUEST_RAM1: u64 = 0x2_0000_0000;
const GUEST_RAM1_SIZE: u64 = 0xfe_0000_0000;
const GUEST_GNTTAB: u64 = 0x3800_0000;
const GUEST_GNTTAB_SIZE: u64 = 0x100_0000;
const GUEST_PL011: u64 = 0x2200_0000;
/// Inside the vPCI ECAM window: nothing is mapped there for a domU.
const UNMAPPED: usize = 0x1000_0000;
/// Longest wait for anything another vCPU or the hypervisor must do.
const WAIT_MS: u64 = 3000;

/// What the cases know about the run.
pub struct Ctx<'a> {
    pub dt: &'a Dt,
    pub bootargs: &'static str,
    /// vCPUs the device tree lists.
    pub vcpus: usize,
}

fn expect<'a>(ctx: &'a Ctx, key: &str) -> Result<&'a str, Msg> {
    dt::bootarg(ctx.bootargs, key)
        .ok_or_else(|| msg!("bootargs \"{}\" have no {key}=", ctx.bootargs))
}

/// `128M`, `1G`, `0x8000000` → bytes.
fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n = match num.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => num.parse().ok()?,
    };
    n.checked_mul(mult)
}

/// Runs every case.
pub fn run(ctx: &Ctx) {
    dt_cases(ctx);
    psci_cases(ctx);
    hypercall_cases();
    case("fp.survives_exits", fp_survives_exits);
    case("isolation.pmu_and_debug_closed", pmu_and_debug_closed);
    case("fault.unmapped_load_aborts", unmapped_load_aborts);
    gic_cases(ctx);
    if ctx.vcpus > 1 {
        case("psci.cpu_off_then_on_again", || {
            cpu_off_then_on_again(ctx.vcpus - 1)
        });
    }
    crate::xencases::run(ctx);
    crate::xscases::run(ctx);
}

// ---- the device tree (Xen's domU tree, spec §2.4) ----

fn dt_cases(ctx: &Ctx) {
    case("dt.root_cells", || {
        let root = ctx.dt.root()?;
        let cells = (root.u32("#address-cells"), root.u32("#size-cells"));
        ensure!(
            cells == (Some(2), Some(2)),
            "#address-cells/#size-cells are {:?}/{:?}, expected 2/2",
            cells.0,
            cells.1
        );
        Ok(Msg::new())
    });
    case("dt.hypervisor", || dt_hypervisor(ctx));
    if dt::bootarg(ctx.bootargs, "expect.hypervisor") == Some("present") {
        case("dt.extended_regions", || dt_extended_regions(ctx));
    }
    case("dt.psci", || dt_psci(ctx));
    case("dt.cpus", || dt_cpus(ctx));
    case("dt.memory", || dt_memory(ctx));
    case("dt.gic", || dt_gic(ctx));
    case("dt.timer", || dt_timer(ctx));
    case("dt.vpl011", || dt_vpl011(ctx));
}

fn dt_hypervisor(ctx: &Ctx) -> Verdict {
    let want = expect(ctx, "expect.hypervisor")?;
    let node = ctx.dt.top("hypervisor")?;
    match (want, node) {
        ("absent", None) => Ok(Msg::new()),
        ("absent", Some(_)) => Err(msg!(
            "/hypervisor is present, but expect.hypervisor=absent (no xen,enhanced)"
        )),
        ("present", None) => Err(msg!("/hypervisor is absent")),
        ("present", Some(n)) => {
            let compat = n.prop("compatible").unwrap_or(&[]);
            let mut strings = compat.split(|b| *b == 0);
            let first = strings.next().unwrap_or(&[]);
            ensure!(
                first.starts_with(b"xen,xen-") && strings.any(|s| s == b"xen,xen"),
                "/hypervisor compatible is {:?}, expected \"xen,xen-M.m\", \"xen,xen\"",
                core::str::from_utf8(compat).unwrap_or("?")
            );
            let reg = n
                .cells("reg")
                .ok_or_else(|| msg!("/hypervisor has no reg"))?;
            ensure!(
                reg.len() >= 4
                    && (reg.num(0, 2), reg.num(2, 2)) == (GUEST_GNTTAB, GUEST_GNTTAB_SIZE),
                "/hypervisor reg does not start with the grant table <0 {GUEST_GNTTAB:#x} 0 {GUEST_GNTTAB_SIZE:#x}>"
            );
            let irq = n
                .cells("interrupts")
                .ok_or_else(|| msg!("/hypervisor has no interrupts"))?;
            ensure!(
                irq.len() == 3 && (irq.get(0), irq.get(1), irq.get(2)) == (1, 15, 0xf08),
                "/hypervisor interrupts are not <1 15 0xf08> (PPI 31, level-low)"
            );
            ensure!(
                n.u32("interrupt-parent") == Some(0xfde8),
                "/hypervisor interrupt-parent is {:?}, expected 0xfde8",
                n.u32("interrupt-parent")
            );
            Ok(msg!("{}", core::str::from_utf8(first).unwrap_or("?")))
        }
        (other, _) => Err(msg!(
            "expect.hypervisor={other} (expected absent or present)"
        )),
    }
}

/// The extended regions `/hypervisor` lists after the grant table: what
/// bank 0 has left above the domain's RAM, and all of bank 1 (Xen's
/// algorithm, spec §2.5, for a domain of at most 3 GiB and an IPA space of
/// at least 40 bits).
fn dt_extended_regions(ctx: &Ctx) -> Verdict {
    const MIB: u64 = 1 << 20;
    let mem = parse_size(expect(ctx, "expect.memory")?)
        .ok_or_else(|| msg!("expect.memory is not a size (e.g. 128M)"))?;
    let n = ctx
        .dt
        .top("hypervisor")?
        .ok_or_else(|| msg!("/hypervisor is absent"))?;
    let reg = n
        .cells("reg")
        .ok_or_else(|| msg!("/hypervisor has no reg"))?;
    let start = (GUEST_RAM0 + mem).div_ceil(2 * MIB) * 2 * MIB;
    let bank0_end = GUEST_RAM0 + GUEST_RAM0_SIZE;
    let mut want = [(0, 0); 2];
    let mut nwant = 0;
    if bank0_end.saturating_sub(start) >= 64 * MIB {
        want[nwant] = (start, bank0_end - start);
        nwant += 1;
    }
    want[nwant] = (GUEST_RAM1, GUEST_RAM1_SIZE);
    nwant += 1;
    let got = reg.len() / 4 - 1;
    ensure!(
        got == nwant,
        "/hypervisor lists {got} extended region(s), expected {nwant}: {:#x?}",
        &want[..nwant]
    );
    for (i, (base, size)) in want[..nwant].iter().enumerate() {
        let at = 4 * (i + 1);
        let (b, s) = (reg.num(at, 2), reg.num(at + 2, 2));
        ensure!(
            (b, s) == (*base, *size),
            "/hypervisor extended region {i} is {b:#x}+{s:#x}, expected {base:#x}+{size:#x}"
        );
    }
    Ok(Msg::new())
}

fn dt_psci(ctx: &Ctx) -> Verdict {
    let n = ctx.dt.top("psci")?.ok_or_else(|| msg!("no /psci node"))?;
    let compat = n.prop("compatible").unwrap_or(&[]);
    ensure!(
        compat == b"arm,psci-1.0\0arm,psci-0.2\0arm,psci\0",
        "/psci compatible is {:?}, expected \"arm,psci-1.0\", \"arm,psci-0.2\", \"arm,psci\"",
        core::str::from_utf8(compat).unwrap_or("?")
    );
    ensure!(
        n.str("method") == Some("hvc"),
        "/psci method is {:?}, expected \"hvc\"",
        n.str("method")
    );
    ensure!(
        (n.u32("cpu_off"), n.u32("cpu_on")) == (Some(1), Some(2)),
        "/psci cpu_off/cpu_on are {:?}/{:?}, expected 1/2",
        n.u32("cpu_off"),
        n.u32("cpu_on")
    );
    Ok(Msg::new())
}

fn cpu_nodes(dt: &Dt, mut f: impl FnMut(&Node)) -> Result<(), Msg> {
    dt.each(|n| {
        if n.depth == 2 && n.ancestor(1) == "cpus" && n.str("device_type") == Some("cpu") {
            f(n);
        }
    })
}

fn dt_cpus(ctx: &Ctx) -> Verdict {
    let want: usize = expect(ctx, "expect.cpus")?
        .parse()
        .map_err(|_| msg!("expect.cpus is not a number"))?;
    let cpus = ctx.dt.top("cpus")?.ok_or_else(|| msg!("no /cpus node"))?;
    ensure!(
        (cpus.u32("#address-cells"), cpus.u32("#size-cells")) == (Some(1), Some(0)),
        "/cpus #address-cells/#size-cells are not 1/0"
    );
    let mut i = 0;
    let mut bad: Option<Msg> = None;
    cpu_nodes(ctx.dt, |n| {
        let aff = affinity(i);
        let name = msg!("cpu@{aff:x}");
        if bad.is_none() {
            if n.name() != name.as_str() {
                bad = Some(msg!("cpu {i} is /cpus/{}, expected /cpus/{name}", n.name()));
            } else if n.u32("reg") != Some(aff as u32) {
                bad = Some(msg!(
                    "/cpus/{} reg is {:?}, expected {aff:#x}",
                    n.name(),
                    n.u32("reg")
                ));
            } else if n.str("enable-method") != Some("psci") {
                bad = Some(msg!("/cpus/{} enable-method is not \"psci\"", n.name()));
            }
        }
        i += 1;
    })?;
    if let Some(b) = bad {
        return Err(b);
    }
    ensure!(
        i == want,
        "/cpus lists {i} cpu node(s), the config asks for {want}"
    );
    Ok(Msg::new())
}

fn dt_memory(ctx: &Ctx) -> Verdict {
    let want = parse_size(expect(ctx, "expect.memory")?)
        .ok_or_else(|| msg!("expect.memory is not a size (e.g. 128M)"))?;
    let n = ctx
        .dt
        .find(|n| n.depth == 1 && n.str("device_type") == Some("memory"))?
        .ok_or_else(|| msg!("no node with device_type \"memory\""))?;
    ensure!(
        n.name() == "memory@40000000",
        "the memory node is /{}, expected /memory@40000000",
        n.name()
    );
    let reg = n
        .cells("reg")
        .ok_or_else(|| msg!("/{} has no reg", n.name()))?;
    ensure!(
        reg.len() == 4,
        "/{} reg has {} cells, expected one bank of 4",
        n.name(),
        reg.len()
    );
    let (base, size) = (reg.num(0, 2), reg.num(2, 2));
    ensure!(
        base == GUEST_RAM0 && size == want,
        "/{} reg is {base:#x}+{size:#x}, expected {GUEST_RAM0:#x}+{want:#x}",
        n.name()
    );
    Ok(Msg::new())
}

fn gic_node(dt: &Dt) -> Result<Option<Node>, Msg> {
    dt.find(|n| n.depth == 1 && n.prop("interrupt-controller").is_some())
}

/// The guest's `/interrupt-controller` node, in Xen's shape for the GIC
/// version the tree gives (the host's): a GICv3 with its distributor and
/// one redistributor region, or a GIC-400 with its distributor and CPU
/// interface. The PASS note names the version.
fn dt_gic(ctx: &Ctx) -> Verdict {
    let n = gic_node(ctx.dt)?.ok_or_else(|| msg!("no interrupt-controller node"))?;
    ensure!(
        n.name() == "interrupt-controller@3001000",
        "the GIC is /{}, expected /interrupt-controller@3001000",
        n.name()
    );
    let v2 = n.is_compatible("arm,gic-400");
    ensure!(
        v2 || n.is_compatible("arm,gic-v3"),
        "/{} is compatible with neither \"arm,gic-v3\" nor \"arm,gic-400\"",
        n.name()
    );
    let reg = n
        .cells("reg")
        .ok_or_else(|| msg!("/{} has no reg", n.name()))?;
    let got = [reg.num(0, 2), reg.num(2, 2), reg.num(4, 2), reg.num(6, 2)];
    let want = if v2 {
        [
            GUEST_GICD,
            GUEST_GICV2_GICD_SIZE,
            GUEST_GICC,
            GUEST_GICC_SIZE,
        ]
    } else {
        [GUEST_GICD, GUEST_GICD_SIZE, GUEST_GICR, GUEST_GICR_SIZE]
    };
    ensure!(
        reg.len() == 8 && got == want,
        "/{} reg is {got:#x?}, expected {want:#x?}",
        n.name()
    );
    ensure!(
        n.u32("phandle") == Some(0xfde8),
        "/{} phandle is {:?}, expected 0xfde8",
        n.name(),
        n.u32("phandle")
    );
    if v2 {
        ensure!(
            n.prop("#redistributor-regions").is_none(),
            "/{} is a GIC-400 with #redistributor-regions",
            n.name()
        );
        return Ok(msg!("gic=v2"));
    }
    ensure!(
        n.u32("#redistributor-regions") == Some(1),
        "/{} #redistributor-regions is {:?}, expected 1",
        n.name(),
        n.u32("#redistributor-regions")
    );
    Ok(msg!("gic=v3"))
}

fn dt_timer(ctx: &Ctx) -> Verdict {
    let n = ctx.dt.top("timer")?.ok_or_else(|| msg!("no /timer node"))?;
    ensure!(
        n.is_compatible("arm,armv8-timer"),
        "/timer is not compatible with \"arm,armv8-timer\""
    );
    let irqs = n
        .cells("interrupts")
        .ok_or_else(|| msg!("/timer has no interrupts"))?;
    let want = [1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08];
    ensure!(
        irqs.len() == want.len() && (0..want.len()).all(|i| irqs.get(i) == want[i]),
        "/timer interrupts are not <1 13 0xf08 1 14 0xf08 1 11 0xf08>"
    );
    Ok(Msg::new())
}

fn dt_vpl011(ctx: &Ctx) -> Verdict {
    let n = ctx
        .dt
        .find(|n| n.depth == 1 && n.is_compatible("arm,sbsa-uart"))?
        .ok_or_else(|| msg!("no node compatible with \"arm,sbsa-uart\""))?;
    ensure!(
        n.name() == "sbsa-uart@22000000",
        "the vPL011 is /{}, expected /sbsa-uart@22000000",
        n.name()
    );
    let reg = n
        .cells("reg")
        .ok_or_else(|| msg!("/{} has no reg", n.name()))?;
    ensure!(
        reg.len() == 4 && reg.num(0, 2) == GUEST_PL011 && reg.num(2, 2) == 0x1000,
        "/{} reg is not <0 0x22000000 0 0x1000>",
        n.name()
    );
    let irq = n
        .cells("interrupts")
        .ok_or_else(|| msg!("/{} has no interrupts", n.name()))?;
    ensure!(
        irq.len() == 3 && (irq.get(0), irq.get(1), irq.get(2)) == (0, 0, 0xf04),
        "/{} interrupts are not <0 0 0xf04> (SPI 32, level-high)",
        n.name()
    );
    ensure!(
        n.u32("current-speed") == Some(115_200),
        "/{} current-speed is {:?}, expected 115200",
        n.name(),
        n.u32("current-speed")
    );
    Ok(Msg::new())
}

// ---- PSCI through HVC #0 ----

fn returns(what: &str, got: i32, want: i32) -> Verdict {
    ensure!(got == want, "{what} returned {got}, expected {want}");
    Ok(Msg::new())
}

fn psci_cases(ctx: &Ctx) {
    case("psci.version", || {
        let v = psci::call(psci::PSCI_VERSION, 0, 0, 0) as u32;
        ensure!(
            v == 0x1_0001,
            "PSCI_VERSION is {v:#x}, expected 0x10001 (1.1)"
        );
        Ok(Msg::new())
    });
    case("psci.smccc_version", || {
        let v = psci::call(psci::SMCCC_VERSION, 0, 0, 0) as u32;
        ensure!(
            v == 0x1_0002,
            "SMCCC_VERSION is {v:#x}, expected 0x10002 (1.2)"
        );
        Ok(Msg::new())
    });
    case("psci.features_cpu_on", || {
        let r = psci::call(psci::PSCI_FEATURES, u64::from(psci::CPU_ON_64), 0, 0);
        returns("PSCI_FEATURES(CPU_ON)", r, psci::SUCCESS)
    });
    case("psci.features_unknown", || {
        let r = psci::call(psci::PSCI_FEATURES, u64::from(psci::UNIMPLEMENTED), 0, 0);
        returns("PSCI_FEATURES(0x84000012)", r, psci::NOT_SUPPORTED)
    });
    case("psci.unknown_function", || {
        let r = psci::call(psci::UNIMPLEMENTED, 0, 0, 0);
        returns("function 0x84000012", r, psci::NOT_SUPPORTED)
    });
    case("psci.migrate_info_type", || {
        let r = psci::call(psci::MIGRATE_INFO_TYPE, 0, 0, 0);
        returns("MIGRATE_INFO_TYPE", r, psci::TOS_NOT_PRESENT_MP)
    });
    case("psci.cpu_on_missing_vcpu", || {
        // The vCPU after the last one the tree lists does not exist.
        let target = affinity(ctx.vcpus);
        let r = psci::cpu_on(target, smp::entry_point(), 0);
        returns(
            "CPU_ON of a vCPU that does not exist",
            r,
            psci::INVALID_PARAMETERS,
        )
    });
    case("psci.cpu_on_self_already_on", || {
        let r = psci::cpu_on(arch::mpidr() & 0xff_ffff, smp::entry_point(), 0);
        returns("CPU_ON of the calling vCPU", r, psci::ALREADY_ON)
    });
    let n = ctx.vcpus.min(smp::MAX_VCPUS);
    for (i, name) in SECONDARY_CASES.iter().enumerate().take(n).skip(1) {
        case(name, || cpu_on_secondary(i));
    }
    if ctx.vcpus > 1 {
        case("psci.cpu_on_running_vcpu", || {
            let r = psci::cpu_on(affinity(1), smp::entry_point(), 1);
            returns("CPU_ON of a running secondary", r, psci::ALREADY_ON)
        });
    }
}

const SECONDARY_CASES: [&str; smp::MAX_VCPUS] = [
    "",
    "psci.cpu_on.vcpu1",
    "psci.cpu_on.vcpu2",
    "psci.cpu_on.vcpu3",
    "psci.cpu_on.vcpu4",
    "psci.cpu_on.vcpu5",
    "psci.cpu_on.vcpu6",
    "psci.cpu_on.vcpu7",
];

/// Why secondary `i` did not answer, from its mailbox.
fn silent(i: usize, what: &str) -> Msg {
    let m = &MAILBOX[i];
    let esr = m.fault_esr.load(Ordering::Acquire);
    if esr != 0 {
        return msg!(
            "vCPU{i} took an unexpected exception (ESR_EL1 {:#x}, ELR_EL1 {:#x}) before {what}",
            esr & !(1 << 63),
            m.fault_elr.load(Ordering::Relaxed)
        );
    }
    msg!("vCPU{i} did not {what} within {WAIT_MS} ms")
}

fn cpu_on_secondary(i: usize) -> Verdict {
    let aff = affinity(i);
    let m = &MAILBOX[i];
    let before = psci::affinity_info(aff);
    ensure!(
        before == psci::AFFINITY_OFF,
        "AFFINITY_INFO({aff:#x}) before CPU_ON returned {before}, expected 1 (off)"
    );
    let boots = m.boots.load(Ordering::Acquire);
    let r = psci::cpu_on(aff, smp::entry_point(), i as u64);
    ensure!(
        r == psci::SUCCESS,
        "CPU_ON({aff:#x}) returned {r}, expected 0"
    );
    if !arch::wait_for(ms(WAIT_MS), || m.boots.load(Ordering::Acquire) != boots) {
        return Err(silent(i, "report in"));
    }
    let mpidr = m.mpidr.load(Ordering::Relaxed);
    ensure!(
        mpidr & 0xff_ffff == aff,
        "vCPU{i} reads MPIDR_EL1 {mpidr:#x}, expected affinity {aff:#x}"
    );
    let context = m.context.load(Ordering::Relaxed);
    ensure!(
        context == i as u64,
        "vCPU{i} started with x0 = {context:#x}, expected the context ID {i}"
    );
    ensure!(
        m.gic_error.load(Ordering::Relaxed) == 0,
        "vCPU{i} could not set up its GIC CPU interface"
    );
    let after = psci::affinity_info(aff);
    ensure!(
        after == psci::AFFINITY_ON,
        "AFFINITY_INFO({aff:#x}) after CPU_ON returned {after}, expected 0 (on)"
    );
    Ok(Msg::new())
}

fn cpu_off_then_on_again(i: usize) -> Verdict {
    let aff = affinity(i);
    let m = &MAILBOX[i];
    if m.boots.load(Ordering::Acquire) == 0 {
        return Err(msg!("vCPU{i} never came up"));
    }
    if !smp::command(i, smp::CMD_OFF, 0, ms(WAIT_MS)) {
        return Err(silent(i, "take the CPU_OFF command"));
    }
    let off = arch::wait_for(ms(WAIT_MS), || {
        psci::affinity_info(aff) == psci::AFFINITY_OFF
    });
    ensure!(
        m.off_returned.load(Ordering::Acquire) == 0,
        "CPU_OFF on vCPU{i} returned {}",
        m.off_result.load(Ordering::Relaxed) as i64
    );
    ensure!(
        off,
        "AFFINITY_INFO({aff:#x}) did not say off within {WAIT_MS} ms of CPU_OFF"
    );
    // Xen 4.20 says "off" as soon as CPU_OFF marks the vCPU down, before
    // it has left the hypervisor; a CPU_ON at that moment loses its context
    // ID to CPU_OFF's own return value (x0 = 0). Linux never restarts a CPU
    // that fast; neither does this case (docs/testing.md).
    settle(50);
    let boots = m.boots.load(Ordering::Acquire);
    let r = psci::cpu_on(aff, smp::entry_point(), i as u64);
    ensure!(
        r == psci::SUCCESS,
        "CPU_ON({aff:#x}) after CPU_OFF returned {r}, expected 0"
    );
    if !arch::wait_for(ms(WAIT_MS), || m.boots.load(Ordering::Acquire) != boots) {
        return Err(silent(i, "come back"));
    }
    let context = m.context.load(Ordering::Relaxed);
    ensure!(
        context == i as u64,
        "vCPU{i} came back with x0 = {context:#x}, expected the context ID {i}"
    );
    let after = psci::affinity_info(aff);
    returns(
        "AFFINITY_INFO after the second CPU_ON",
        after,
        psci::AFFINITY_ON,
    )
}

// ---- Xen hypercalls through HVC #0xEA1 ----

fn hypercall_cases() {
    let enosys = |nr: u64, what: &str| -> Verdict {
        let r = arch::hypercall(nr, [0; 5]);
        ensure!(
            r == ENOSYS,
            "{what} (x16 = {nr}) returned {r}, expected -38 (ENOSYS)"
        );
        Ok(Msg::new())
    };
    case("xen.mmu_update_enosys", || {
        enosys(1, "mmu_update, x86 only,")
    });
    case("xen.sched_op_compat_enosys", || {
        enosys(6, "sched_op_compat")
    });
    case("xen.event_channel_op_compat_enosys", || {
        enosys(16, "event_channel_op_compat")
    });
    case("xen.physdev_op_compat_enosys", || {
        enosys(19, "physdev_op_compat")
    });
    case("xen.unknown_hypercall_enosys", || {
        enosys(999, "hypercall 999")
    });
    case("xen.hvc_bad_immediate_undefined", || {
        let f = trap::hvc_bad_immediate().ok_or_else(|| {
            msg!("HVC #0x123 returned normally, expected an undefined-instruction exception")
        })?;
        ensure!(
            f.class() == 0,
            "HVC #0x123 took exception class {:#x} (ESR_EL1 {:#x}), expected 0 (unknown reason)",
            f.class(),
            f.esr
        );
        // Xen returns after the HVC, Oxen at it (as an undefined HVC is
        // taken architecturally): the expectations pin each.
        Ok(msg!("elr={}", f.elr_position()))
    });
}

// ---- FP/SIMD state across exits ----

/// Exits (hypercall pairs: `xen_version`, then `SCHEDOP_yield`) the case
/// makes with its FP/SIMD registers loaded.
const FP_ROUNDS: u64 = 2000;

/// Loads a pattern into all 32 Q registers and FPCR, makes `FP_ROUNDS`
/// pairs of hypercalls (each an exit; a yield may run another vCPU or
/// domain on this pCPU in between), and checks every register came back.
/// The pattern comes from the counter, so two guests running the case at
/// once hold different values.
fn fp_survives_exits() -> Verdict {
    let mut seed = oxen_guest_common::arch::ticks() | 1;
    let mut next = || {
        // splitmix64
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut before = [0u128; 32];
    for q in before.iter_mut() {
        *q = (u128::from(next()) << 64) | u128::from(next());
    }
    // RMode (bits 23:22) and FZ (bit 24): bits every FPCR implements.
    let fpcr_in = (next() & 7) << 22;
    let mut after = [0u128; 32];
    let fpcr_out: u64;
    // SAFETY: the block reads `before` and writes `after` (32 Q registers
    // each), declares every register it or the hypercalls change.
    unsafe {
        core::arch::asm!(
            "msr fpcr, {fpcr_in}",
            "ldp q0, q1, [{a}, #0]", "ldp q2, q3, [{a}, #32]",
            "ldp q4, q5, [{a}, #64]", "ldp q6, q7, [{a}, #96]",
            "ldp q8, q9, [{a}, #128]", "ldp q10, q11, [{a}, #160]",
            "ldp q12, q13, [{a}, #192]", "ldp q14, q15, [{a}, #224]",
            "ldp q16, q17, [{a}, #256]", "ldp q18, q19, [{a}, #288]",
            "ldp q20, q21, [{a}, #320]", "ldp q22, q23, [{a}, #352]",
            "ldp q24, q25, [{a}, #384]", "ldp q26, q27, [{a}, #416]",
            "ldp q28, q29, [{a}, #448]", "ldp q30, q31, [{a}, #480]",
            "2:",
            "mov x16, #17", "mov x0, #0", "mov x1, #0", "hvc #0xea1",
            "mov x16, #29", "mov x0, #0", "mov x1, #0", "hvc #0xea1",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "stp q0, q1, [{b}, #0]", "stp q2, q3, [{b}, #32]",
            "stp q4, q5, [{b}, #64]", "stp q6, q7, [{b}, #96]",
            "stp q8, q9, [{b}, #128]", "stp q10, q11, [{b}, #160]",
            "stp q12, q13, [{b}, #192]", "stp q14, q15, [{b}, #224]",
            "stp q16, q17, [{b}, #256]", "stp q18, q19, [{b}, #288]",
            "stp q20, q21, [{b}, #320]", "stp q22, q23, [{b}, #352]",
            "stp q24, q25, [{b}, #384]", "stp q26, q27, [{b}, #416]",
            "stp q28, q29, [{b}, #448]", "stp q30, q31, [{b}, #480]",
            "mrs {fpcr_out}, fpcr",
            "msr fpcr, xzr",
            a = in(reg) before.as_ptr(),
            b = in(reg) after.as_mut_ptr(),
            n = inout(reg) FP_ROUNDS => _,
            fpcr_in = in(reg) fpcr_in,
            fpcr_out = out(reg) fpcr_out,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _,
            out("x5") _, out("x16") _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _,
            out("v5") _, out("v6") _, out("v7") _, out("v8") _, out("v9") _,
            out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _,
            out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _,
            out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _,
            out("v30") _, out("v31") _,
            options(nostack),
        );
    }
    if let Some(i) = (0..32).find(|&i| before[i] != after[i]) {
        return Err(msg!(
            "q{i} was {:#034x} before {FP_ROUNDS} hypercall pairs and {:#034x} after",
            before[i],
            after[i]
        ));
    }
    ensure!(
        fpcr_out == fpcr_in,
        "FPCR was {fpcr_in:#x} before {FP_ROUNDS} hypercall pairs and {fpcr_out:#x} after"
    );
    Ok(Msg::new())
}

// ---- registers every domain on a pCPU would share ----

/// The PMU's cycle counter and a breakpoint register are the pCPU's, not
/// the vCPU's (neither hypervisor switches them): a guest must not be able
/// to set one and read it back (read-as-zero and writes ignored, or an
/// undefined-instruction exception, both close them).
fn pmu_and_debug_closed() -> Verdict {
    const PATTERN: u64 = 0x0000_1234_5678_0000;
    type Write = fn(u64) -> Option<trap::Fault>;
    type Read = fn() -> Result<u64, trap::Fault>;
    let probes: [(&str, Write, Read); 2] = [
        ("PMCCNTR_EL0", trap::write_pmccntr, trap::read_pmccntr),
        ("DBGBVR0_EL1", trap::write_dbgbvr0, trap::read_dbgbvr0),
    ];
    let mut how = Msg::new();
    for (name, write, read) in probes {
        let wrote = write(PATTERN);
        match (wrote, read()) {
            (_, Ok(v)) if v == PATTERN => {
                return Err(msg!(
                    "{name} kept {PATTERN:#x}: the guest programs the pCPU's own register"
                ));
            }
            (Some(f), _) if f.class() != 0 => {
                return Err(msg!(
                    "writing {name} took exception class {:#x}, expected none or 0",
                    f.class()
                ));
            }
            (_, Err(f)) if f.class() != 0 => {
                return Err(msg!(
                    "reading {name} took exception class {:#x}, expected none or 0",
                    f.class()
                ));
            }
            (_, Err(_)) => {
                let _ = core::fmt::Write::write_fmt(&mut how, format_args!("{name}=undef "));
            }
            (_, Ok(_)) => {
                let _ = core::fmt::Write::write_fmt(&mut how, format_args!("{name}=raz "));
            }
        }
    }
    Ok(how)
}

// ---- a stage-2 fault ----

fn unmapped_load_aborts() -> Verdict {
    match trap::probe_load(UNMAPPED) {
        Ok(v) => Err(msg!(
            "a load from {UNMAPPED:#x} (nothing mapped) read {v:#x} instead of aborting"
        )),
        Err(f) => {
            ensure!(
                f.class() == 0x25,
                "the load from {UNMAPPED:#x} took exception class {:#x} (ESR_EL1 {:#x}), expected 0x25 (data abort)",
                f.class(),
                f.esr
            );
            ensure!(
                f.far == UNMAPPED as u64,
                "the data abort reports FAR_EL1 {:#x}, expected {UNMAPPED:#x}",
                f.far
            );
            ensure!(
                f.elr_position() == "at",
                "the data abort returns to {:#x}, expected the load at {:#x}",
                f.elr,
                f.at
            );
            Ok(msg!("esr={:#x}", f.esr))
        }
    }
}

// ---- the vGIC, the virtual timer and the vPL011's interrupt ----

/// Lets IRQs in until `done` holds or `WAIT_MS` pass.
fn wait_irq(mut done: impl FnMut() -> bool) -> bool {
    arch::irq_enable();
    let ok = arch::wait_for(ms(WAIT_MS), &mut done);
    arch::irq_disable();
    ok
}

/// Lets IRQs in for `millis` ms: time for an interrupt that should not
/// come to arrive anyway.
fn settle(millis: u64) {
    arch::irq_enable();
    arch::wait_for(ms(millis), || false);
    arch::irq_disable();
}

fn gic_cases(ctx: &Ctx) {
    case("gic.cpu_interface", || {
        gic::enable_distributor()?;
        gic::init_cpu()?;
        Ok(Msg::new())
    });
    case("gic.sgi_to_self", || {
        let me = arch::mpidr() & 0xffff;
        let before = gic::count(0, 1);
        gic::send_sgi(1, me);
        ensure!(
            wait_irq(|| gic::count(0, 1) != before),
            "SGI 1 sent to this vCPU ({me:#x}) was not taken within {WAIT_MS} ms"
        );
        Ok(Msg::new())
    });
    let n = ctx.vcpus.min(smp::MAX_VCPUS);
    for (i, name) in SGI_CASES.iter().enumerate().take(n).skip(1) {
        case(name, || {
            let before = gic::count(i, 2);
            gic::send_sgi(2, affinity(i));
            ensure!(
                arch::wait_for(ms(WAIT_MS), || gic::count(i, 2) != before),
                "SGI 2 sent to vCPU{i} was not taken there within {WAIT_MS} ms"
            );
            Ok(Msg::new())
        });
    }
    if ctx.vcpus > 1 {
        case("gic.sgi_from_vcpu1", || {
            let before = gic::count(0, 3);
            let arg = 3 | (arch::mpidr() & 0xffff) << 8;
            if !smp::command(1, smp::CMD_SGI, arg, ms(WAIT_MS)) {
                return Err(silent(1, "take the send-SGI command"));
            }
            ensure!(
                wait_irq(|| gic::count(0, 3) != before),
                "SGI 3 sent by vCPU1 to vCPU0 was not taken within {WAIT_MS} ms"
            );
            Ok(Msg::new())
        });
        case("gic.sgi_to_others", || {
            let n = ctx.vcpus.min(smp::MAX_VCPUS);
            let mut before = [0u32; smp::MAX_VCPUS];
            for (i, b) in before.iter_mut().enumerate().take(n) {
                *b = gic::count(i, 4);
            }
            gic::send_sgi_to_others(4);
            let all = arch::wait_for(ms(WAIT_MS), || {
                (1..n).all(|i| gic::count(i, 4) != before[i])
            });
            // Give a wrongly targeted SGI time to arrive here too.
            settle(50);
            ensure!(
                all,
                "SGI 4 with IRM = 1 did not reach every other vCPU within {WAIT_MS} ms"
            );
            ensure!(
                gic::count(0, 4) == before[0],
                "SGI 4 with IRM = 1 was also taken by the sender"
            );
            Ok(Msg::new())
        });
    }
    case("timer.virtual_fires", || {
        let before = gic::count(0, gic::VTIMER_PPI);
        vtimer::arm(ms(10));
        let fired = wait_irq(|| gic::count(0, gic::VTIMER_PPI) != before);
        let ctl = vtimer::ctl();
        vtimer::stop();
        ensure!(
            fired,
            "PPI 27 was not taken within {WAIT_MS} ms of a 10 ms CNTV_TVAL_EL0 (CNTV_CTL_EL0 {ctl:#x})"
        );
        Ok(Msg::new())
    });
    case("timer.wfi_wakes", || {
        let before = gic::count(0, gic::VTIMER_PPI);
        let start = arch::ticks();
        vtimer::arm(ms(20));
        let mut wakes = 0u32;
        loop {
            arch::irq_disable();
            if gic::count(0, gic::VTIMER_PPI) != before {
                break;
            }
            if arch::ticks().wrapping_sub(start) > ms(WAIT_MS) {
                vtimer::stop();
                return Err(msg!(
                    "WFI did not end with the timer's interrupt within {WAIT_MS} ms ({wakes} wake-ups)"
                ));
            }
            arch::wfi();
            wakes += 1;
            arch::irq_enable();
        }
        let waited = arch::ticks().wrapping_sub(start);
        ensure!(
            waited >= ms(20),
            "the timer fired after {} µs, before its 20 ms were up",
            waited * 1_000_000 / arch::ticks_per_second()
        );
        Ok(Msg::new())
    });
    case("vpl011.tx_interrupt", || {
        gic::enable_spi(gic::UART_SPI, arch::mpidr() & 0xff_ffff);
        let ris = console::reg(console::RIS);
        ensure!(
            ris & console::INT_TX != 0,
            "RIS is {ris:#x} after output: the TX interrupt is not raised"
        );
        let before = gic::count(0, gic::UART_SPI);
        console::set_reg(console::IMSC, console::INT_TX);
        let taken = wait_irq(|| gic::count(0, gic::UART_SPI) != before);
        console::set_reg(console::IMSC, 0);
        ensure!(
            taken,
            "SPI 32 was not taken within {WAIT_MS} ms of unmasking TXIM"
        );
        let once = gic::count(0, gic::UART_SPI);
        settle(50);
        let later = gic::count(0, gic::UART_SPI);
        ensure!(
            later == once,
            "SPI 32 was taken {} more time(s) after the handler masked TXIM",
            later - once
        );
        Ok(Msg::new())
    });
}

const SGI_CASES: [&str; smp::MAX_VCPUS] = [
    "",
    "gic.sgi_to_vcpu1",
    "gic.sgi_to_vcpu2",
    "gic.sgi_to_vcpu3",
    "gic.sgi_to_vcpu4",
    "gic.sgi_to_vcpu5",
    "gic.sgi_to_vcpu6",
    "gic.sgi_to_vcpu7",
];

/// Sets up the GIC bases and version from the tree (Xen's GICv3 addresses
/// if it has none).
pub fn gic_from_dt(dt: &Dt) {
    let (mut d, mut r, mut rs) = (GUEST_GICD, GUEST_GICR, GUEST_GICR_SIZE);
    if let Ok(Some(n)) = gic_node(dt)
        && let Some(reg) = n.cells("reg")
        && reg.len() >= 8
    {
        (d, r, rs) = (reg.num(0, 2), reg.num(4, 2), reg.num(6, 2));
        if n.is_compatible("arm,gic-400") {
            gic::init_v2(d as usize, r as usize);
            return;
        }
    }
    gic::init(d as usize, r as usize, rs as usize);
}
