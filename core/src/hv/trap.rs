//! Guest exits: synchronous traps (hypercalls, PSCI, WFI/WFE, trapped system
//! registers, MMIO to emulated devices) and interrupts, each ending in the
//! scheduler.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use alloc::sync::Arc;

use super::VcpuRef;
use super::domain::{Domain, Shutdown, VcpuState};
use super::sched::{self, After};
use crate::arch::guest::{GuestFrame, reg};
use crate::esr::{Esr, ExceptionClass};
use crate::guest_layout::{
    GUEST_GICV2_GICD, GUEST_GICV3_GICD, GUEST_GICV3_GICR0, GUEST_PL011, GUEST_VPL011_SPI,
};
use crate::inject::{self, Kind, PSTATE_EL1H_MASKED};
use crate::println;
use crate::vgic::GicVersion;
use crate::vpsci::{self, Call};

use crate::hypercall::{HYPERCALLS, Hypercall, dispatch};
use crate::xen::HYPERCALL_TAG as XEN_HYPERCALL_TAG;

/// Called on every exit from a guest (from `arch::guest`'s vector code).
pub fn guest_trap(kind: u64, frame: &mut GuestFrame) {
    let cur = sched::current();
    let after = match kind & 3 {
        0 => match &cur {
            Some(v) => sync_trap(v, frame),
            None => After::Continue,
        },
        1 => {
            super::irq::handle_all_for(cur.as_ref());
            After::Continue
        }
        2 => After::Continue, // FIQs are not used
        _ => {
            // SError from a guest: that domain cannot go on.
            if let Some(v) = &cur {
                println!(
                    "d{} vcpu{}: SError (ESR {:#x}); crashing the domain",
                    v.dom.id,
                    v.idx,
                    reg::esr()
                );
                v.dom.begin_shutdown(Shutdown::Crash);
            }
            After::Continue
        }
    };
    sched::finish_exit(cur, frame, after);
}

/// Register `r` of an ISS (0–30; 31 is XZR: writes vanish, reads are 0).
fn set_reg(frame: &mut GuestFrame, r: u8, v: u64) {
    if let Some(x) = frame.x.get_mut(usize::from(r)) {
        *x = v;
    }
}

fn get_reg(frame: &GuestFrame, r: u8) -> u64 {
    frame.x.get(usize::from(r)).copied().unwrap_or(0)
}

/// Takes the guest into its EL1 exception vector.
fn inject(frame: &mut GuestFrame, kind: Kind) {
    let inj = inject::synchronous(kind, frame.pc, frame.pstate, reg::vbar_el1());
    reg::set_esr_el1(inj.esr_el1);
    reg::set_elr_el1(inj.elr_el1);
    reg::set_spsr_el1(inj.spsr_el1);
    if let Some(far) = inj.far_el1 {
        reg::set_far_el1(far);
    }
    frame.pc = inj.pc;
    frame.pstate = inj.pstate;
}

fn sync_trap(v: &VcpuRef, frame: &mut GuestFrame) -> After {
    let esr = Esr(reg::esr());
    match esr.class() {
        ExceptionClass::Hvc64 => match esr.imm16() {
            0 => psci(v, frame),
            XEN_HYPERCALL_TAG => hypercall(v, frame),
            _ => {
                // HVC is taken after the instruction: point back at it.
                frame.pc -= 4;
                inject(frame, Kind::Undefined);
                After::Continue
            }
        },
        ExceptionClass::Smc64 => {
            // SMC traps before executing: step over it.
            frame.pc += 4;
            if esr.imm16() == 0 {
                psci(v, frame)
            } else {
                frame.pc -= 4;
                inject(frame, Kind::Undefined);
                After::Continue
            }
        }
        ExceptionClass::WfiWfe => {
            frame.pc += 4;
            if esr.iss() & 1 == 0 {
                // WFI: wait unless the virtual timer already fired.
                let ctl = reg::cntv_ctl();
                let fired = ctl & sched::CNTV_ENABLE != 0
                    && ctl & sched::CNTV_ISTATUS != 0
                    && ctl & sched::CNTV_IMASK == 0;
                if fired { After::Continue } else { After::Block }
            } else {
                After::Yield
            }
        }
        ExceptionClass::SysReg => {
            let acc = esr.sysreg();
            if cfg!(feature = "gicv3") && acc.is_icc_sgi1r() && !acc.read {
                #[cfg(feature = "gicv3")]
                {
                    let value = get_reg(frame, acc.reg);
                    let kicks = v.dom.vgic.lock().write_sgi1r(v.idx, value);
                    sched::notify_mask(&v.dom, kicks.0);
                }
                frame.pc += 4;
            } else if acc.is_debug() || acc.is_pmu() {
                // The pCPU's own debug and PMU registers, which no vCPU
                // switch saves: closed as read-as-zero, writes ignored (as
                // on Xen), so no domain sees or sets another's.
                if acc.read {
                    set_reg(frame, acc.reg, 0);
                }
                frame.pc += 4;
            } else {
                inject(frame, Kind::Undefined);
            }
            After::Continue
        }
        ExceptionClass::DataAbortLower => data_abort(v, frame, esr),
        ExceptionClass::InstrAbortLower => {
            inject(frame, Kind::InstructionAbort { far: reg::far() });
            After::Continue
        }
        _ => {
            inject(frame, Kind::Undefined);
            After::Continue
        }
    }
}

fn data_abort(v: &VcpuRef, frame: &mut GuestFrame, esr: Esr) -> After {
    let da = esr.data_abort();
    let far = reg::far();
    let ipa = ((reg::hpfar() >> 4) << 12) | (far & 0xfff);
    // The emulated distributor (and GICv3 redistributors); a GICv2 guest's
    // CPU interface is the hardware's, mapped, never trapped.
    let in_gic = match crate::drivers::chip().guest_version() {
        GicVersion::V2 => GUEST_GICV2_GICD.contains(ipa),
        GicVersion::V3 => GUEST_GICV3_GICD.contains(ipa) || GUEST_GICV3_GICR0.contains(ipa),
    };
    let in_uart = v.dom.vpl011.is_some() && GUEST_PL011.contains(ipa);
    if !da.isv || da.s1ptw || !(in_gic || in_uart) {
        inject(frame, Kind::DataAbort { far });
        return After::Continue;
    }
    let value = get_reg(frame, da.reg);
    let result: Result<u64, ()> = if in_gic {
        let access = if da.write {
            crate::vgic::Access::Write {
                size: da.size,
                value,
            }
        } else {
            crate::vgic::Access::Read { size: da.size }
        };
        let r = v.dom.vgic.lock().mmio(v.idx, ipa, access);
        match r {
            Ok((val, kicks)) => {
                sched::notify_mask(&v.dom, kicks.0);
                Ok(val)
            }
            Err(_) => Err(()),
        }
    } else {
        uart_access(&v.dom, ipa - GUEST_PL011.start, da.write, da.size, value)
    };
    match result {
        Ok(val) => {
            if !da.write {
                let val = if da.sign_extend {
                    let shift = 64 - 8 * u32::from(da.size);
                    (((val << shift) as i64) >> shift) as u64
                } else {
                    val
                };
                let val = if da.sixty_four {
                    val
                } else {
                    val & 0xffff_ffff
                };
                set_reg(frame, da.reg, val);
            }
            frame.pc += 4;
        }
        Err(()) => inject(frame, Kind::DataAbort { far }),
    }
    After::Continue
}

/// A guest access to its vPL011; output goes to the console, the interrupt
/// line to the vGIC.
fn uart_access(
    dom: &Arc<Domain>,
    offset: u64,
    write: bool,
    size: u8,
    value: u64,
) -> Result<u64, ()> {
    let Some(uart) = &dom.vpl011 else {
        return Err(());
    };
    let access = if write {
        crate::vpl011::Access::Write {
            size,
            value: value as u32,
        }
    } else {
        crate::vpl011::Access::Read { size }
    };
    let (r, level) = {
        let mut u = uart.lock();
        let r = u.mmio(offset, access, &mut |bytes| {
            dom.console_write(&dom.uart_out, bytes)
        });
        (r, u.irq_level())
    };
    update_uart_irq(dom, level);
    r.map(u64::from).map_err(|_| ())
}

/// Drives the vPL011's SPI from its line level.
pub fn update_uart_irq(dom: &Arc<Domain>, level: bool) {
    let kicks = dom.vgic.lock().set_level(0, GUEST_VPL011_SPI, level);
    sched::notify_mask(dom, kicks.0);
}

fn psci(v: &VcpuRef, frame: &mut GuestFrame) -> After {
    let call = vpsci::decode([frame.x[0], frame.x[1], frame.x[2], frame.x[3]]);
    let (ret, after): (i64, After) = match call {
        Call::Version => (vpsci::PSCI_VERSION as i64, After::Continue),
        Call::SmcccVersion => (vpsci::SMCCC_VERSION as i64, After::Continue),
        Call::SmcccArchFeatures(_) => (vpsci::NOT_SUPPORTED, After::Continue),
        Call::Features(f) => (vpsci::features(f), After::Continue),
        Call::MigrateInfoType => (2, After::Continue), // no Trusted OS to migrate
        Call::CpuSuspend => (vpsci::SUCCESS, After::Block),
        Call::CpuOff => (vpsci::SUCCESS, After::Offline),
        Call::CpuOn {
            target,
            entry,
            context,
        } => (cpu_on(v, target, entry, context), After::Continue),
        Call::AffinityInfo { target, level } => {
            let r = match (level, vpsci::vcpu_of_mpidr(target, v.dom.vcpus.len())) {
                (0, Some(i)) => match v.dom.vcpus.get(i).map(|c| c.state()) {
                    Some(VcpuState::Offline | VcpuState::Dead) => vpsci::AFFINITY_OFF,
                    Some(_) => vpsci::AFFINITY_ON,
                    None => vpsci::INVALID_PARAMETERS,
                },
                _ => vpsci::INVALID_PARAMETERS,
            };
            (r, After::Continue)
        }
        Call::SystemOff => {
            v.dom.begin_shutdown(Shutdown::Poweroff);
            (vpsci::SUCCESS, After::Continue)
        }
        Call::SystemReset => {
            v.dom.begin_shutdown(Shutdown::Reboot);
            (vpsci::SUCCESS, After::Continue)
        }
        Call::Unknown(_) => (vpsci::NOT_SUPPORTED, After::Continue),
    };
    frame.x[0] = ret as u64;
    after
}

fn cpu_on(v: &VcpuRef, target: u64, entry: u64, context: u64) -> i64 {
    let Some(idx) = vpsci::vcpu_of_mpidr(target, v.dom.vcpus.len()) else {
        return vpsci::INVALID_PARAMETERS;
    };
    let Some(t) = v.dom.vcpus.get(idx) else {
        return vpsci::INVALID_PARAMETERS;
    };
    match t.state() {
        VcpuState::Offline => {}
        VcpuState::Dead => return vpsci::DENIED,
        _ => return vpsci::ALREADY_ON,
    }
    {
        let mut ctx = t.ctx.lock();
        ctx.frame = GuestFrame::default();
        ctx.frame.pc = entry;
        ctx.frame.x[0] = context;
        ctx.frame.pstate = PSTATE_EL1H_MASKED;
        ctx.el1 = Default::default();
        ctx.el1.sctlr = super::build::SCTLR_EL1_RESET;
    }
    if sched::make_runnable(
        &VcpuRef {
            dom: v.dom.clone(),
            idx,
        },
        VcpuState::Offline,
    ) {
        vpsci::SUCCESS
    } else {
        vpsci::ALREADY_ON
    }
}

/// Hypercall numbers below this are looked up by index.
const INDEXED: usize = 64;

/// The handler of each hypercall number below [`INDEXED`], the first the
/// table has for it as [`dispatch`] would find; built once, since
/// searching linkme's slice (itself rebuilt at every dereference) cost
/// more than Xen's whole `xen_version`.
fn hypercall_index() -> &'static [Option<&'static Hypercall>; INDEXED] {
    static INDEX: spin::Once<[Option<&'static Hypercall>; INDEXED]> = spin::Once::new();
    INDEX.call_once(|| {
        let mut index = [None; INDEXED];
        for h in HYPERCALLS.iter().rev() {
            if let Some(slot) = index.get_mut(h.nr as usize) {
                *slot = Some(h);
            }
        }
        index
    })
}

fn hypercall(v: &VcpuRef, frame: &mut GuestFrame) -> After {
    let nr = frame.x[16];
    let args = [frame.x[0], frame.x[1], frame.x[2], frame.x[3], frame.x[4]];
    let mut caller = super::hcall::CurrentVcpu::new(v);
    let ret = match hypercall_index().get(nr as usize) {
        Some(Some(h)) => dispatch(core::slice::from_ref(*h), &mut caller, nr, args),
        Some(None) => dispatch(&[], &mut caller, nr, args),
        None => dispatch(&HYPERCALLS, &mut caller, nr, args),
    };
    match caller.again() {
        // Back to the HVC, with what is left to do: the guest issues the
        // call again when it next runs (x16 still holds the number).
        Some(a) => {
            frame.x[..5].copy_from_slice(&a);
            frame.pc -= 4;
        }
        None => frame.x[0] = ret as u64,
    }
    caller.after()
}
