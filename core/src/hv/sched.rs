//! The per-CPU scheduler: each vCPU is placed on one pCPU; every pCPU runs
//! its runnable vCPUs round-robin with a time slice, blocks vCPUs that wait
//! in WFI until an interrupt (or their virtual timer) wakes them, and idles
//! in WFI when nothing is runnable.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::domain::{Domain, Shutdown, VcpuState};
use super::{VcpuRef, hv};
use crate::arch::entry::MAX_CPUS;
use crate::arch::guest::{self, GuestFrame, reg};
use crate::arch::{cpu, psci};
use crate::drivers::chip;
use crate::println;
use crate::vgic::{MAX_LRS, Vgic};

/// Time slice, in microseconds.
const SLICE_US: u64 = 10_000;
/// SGI used to make another pCPU re-examine its vCPUs.
pub const KICK_SGI: u32 = 0;

/// HCR_EL2 while a guest runs: stage 2 on, physical interrupts and SErrors
/// to EL2, WFI/WFE and SMC trapped, broadcast TLB/cache maintenance, EL1
/// AArch64.
const HCR_GUEST: u64 = (1 << 0) // VM
    | (1 << 1)  // SWIO
    | (1 << 3)  // FMO
    | (1 << 4)  // IMO
    | (1 << 5)  // AMO
    | (1 << 9)  // FB
    | (1 << 10) // BSU: inner shareable
    | (1 << 13) // TWI
    | (1 << 14) // TWE
    | (1 << 19) // TSC
    | (1 << 31); // RW

/// HCR_EL2 on a pCPU that has not loaded a vCPU yet: physical interrupts
/// and SErrors go to EL2. Without IMO and FMO they would be routed to EL1,
/// never taken at EL2, and a pending one would end every idle WFI at once:
/// a pCPU with nothing placed on it would spin instead of sleeping (seen
/// under QEMU with 4 pCPUs and 2 single-vCPU domains, the idle pCPUs
/// taking the host time the busy ones needed).
const HCR_IDLE: u64 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 31);

/// CNTV_CTL_EL0 bits.
pub const CNTV_ENABLE: u64 = 1 << 0;
pub const CNTV_IMASK: u64 = 1 << 1;
pub const CNTV_ISTATUS: u64 = 1 << 2;

pub struct Pcpu {
    runq: spin::Mutex<VecDeque<VcpuRef>>,
    current: spin::Mutex<Option<VcpuRef>>,
    stack_top: AtomicUsize,
    slice_end: AtomicU64,
    preempt: AtomicBool,
    /// How many list registers, from LR0, may be non-zero: what the last
    /// flush wrote. The rest are zero, and a guest cannot make an invalid
    /// register valid, so only these are read back or cleared.
    live_lrs: AtomicUsize,
    scratch: spin::Once<spin::Mutex<Box<GuestFrame>>>,
}

impl Pcpu {
    const fn new() -> Self {
        Self {
            runq: spin::Mutex::new(VecDeque::new()),
            current: spin::Mutex::new(None),
            stack_top: AtomicUsize::new(0),
            slice_end: AtomicU64::new(0),
            preempt: AtomicBool::new(false),
            live_lrs: AtomicUsize::new(0),
            scratch: spin::Once::new(),
        }
    }
}

static PCPUS: [Pcpu; MAX_CPUS] = [const { Pcpu::new() }; MAX_CPUS];

#[inline(always)]
fn me() -> &'static Pcpu {
    &PCPUS[cpu::index()]
}

/// The vCPU loaded on this pCPU.
#[inline(always)]
pub fn current() -> Option<VcpuRef> {
    me().current.lock().clone()
}

/// Records this CPU's stack top (for entering guests) and sets up EL2 for
/// running them.
pub fn init_cpu(stack_top: usize) {
    let p = me();
    p.stack_top.store(stack_top, Ordering::Release);
    p.scratch
        .call_once(|| spin::Mutex::new(Box::new(GuestFrame::default())));
    let hv = hv();
    reg::set_hcr(HCR_IDLE);
    reg::set_vtcr(hv.vtcr);
    reg::set_vpidr(hv.midr);
    // CPTR_EL2: RES1 bits, nothing trapped (FP/SIMD is saved on every exit).
    reg::set_cptr(0x33ff);
    // Trap the debug registers (TDA, TDOSA, TDRA) and the PMU (TPM,
    // TPMCR): they are the pCPU's, shared by every vCPU that runs on it, and
    // the trap handler closes them (read-as-zero, writes ignored). HPMN keeps
    // its reset value.
    const MDCR_TRAPS: u64 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11);
    reg::set_mdcr((reg::mdcr() & 0x1f) | MDCR_TRAPS);
    reg::set_hstr(0);
    // The physical counter is readable from EL1; the physical timer is not.
    reg::set_cnthctl(1);
    reg::set_cntv_ctl(0);
    reg::set_cnthp_ctl(0);
    chip().vif_init_cpu();
    guest::flush_all_guest_tlb_local();
}

/// Makes a vCPU runnable on its pCPU (from Offline or Blocked).
pub fn make_runnable(v: &VcpuRef, from: VcpuState) -> bool {
    if !v.vcpu().transition(from, VcpuState::Runnable) {
        return false;
    }
    let pcpu = v.vcpu().pcpu;
    PCPUS[pcpu].runq.lock().push_back(v.clone());
    if pcpu != cpu::index() {
        kick(pcpu);
    }
    true
}

/// Wakes a vCPU that gained an interrupt: a blocked one becomes runnable,
/// a running one on another pCPU is kicked so it picks the interrupt up.
pub fn notify(dom: &Arc<Domain>, idx: usize) {
    let v = &dom.vcpus[idx];
    match v.state() {
        VcpuState::Blocked => {
            make_runnable(
                &VcpuRef {
                    dom: dom.clone(),
                    idx,
                },
                VcpuState::Blocked,
            );
        }
        VcpuState::Running if v.pcpu != cpu::index() => kick(v.pcpu),
        _ => {}
    }
}

/// Wakes every vCPU in a vGIC kick mask.
pub fn notify_mask(dom: &Arc<Domain>, mask: u64) {
    if mask == 0 {
        return;
    }
    for idx in 0..dom.vcpus.len().min(64) {
        if mask & (1 << idx) != 0 {
            notify(dom, idx);
        }
    }
}

/// Interrupts pCPU `pcpu` so it re-examines what it runs.
pub fn kick(pcpu: usize) {
    if pcpu == cpu::index() {
        return;
    }
    chip().send_sgi(KICK_SGI, pcpu, hv().pcpu_mpidr[pcpu]);
}

fn ticks_per_us() -> u64 {
    (cpu::counter_frequency() / 1_000_000).max(1)
}

/// Virtual-timer deadline (physical counter) of a saved vCPU, if armed.
fn vtimer_deadline(ctl: u64, cval: u64, cntvoff: u64) -> Option<u64> {
    (ctl & CNTV_ENABLE != 0 && ctl & CNTV_IMASK == 0).then(|| cval.saturating_add(cntvoff))
}

/// Fires the virtual timers of this pCPU's blocked vCPUs that expired, and
/// returns the earliest deadline still pending.
///
/// Runs on every idle wake-up, so it allocates nothing: expired timers are
/// marked under the domains' lock (each vCPU's context lock nests inside
/// it; nothing holding a context lock takes the domains' lock) and fired
/// after it, a fixed batch at a time.
fn fire_blocked_timers() -> Option<u64> {
    const BATCH: usize = 8;
    let me_idx = cpu::index();
    let now = cpu::counter();
    let mut next: Option<u64> = None;
    loop {
        let mut due: [Option<(Arc<Domain>, usize)>; BATCH] = Default::default();
        let mut n = 0;
        let mut more = false;
        {
            let domains = hv().domains.lock();
            'scan: for dom in domains.iter() {
                for (idx, v) in dom.vcpus.iter().enumerate() {
                    if v.pcpu != me_idx || v.state() != VcpuState::Blocked {
                        continue;
                    }
                    let mut ctx = v.ctx.lock();
                    match vtimer_deadline(ctx.el1.cntv_ctl, ctx.el1.cntv_cval, dom.cntvoff) {
                        Some(d) if d <= now => {
                            let Some(slot) = due.get_mut(n) else {
                                // Left unmarked: the next round fires it.
                                more = true;
                                break 'scan;
                            };
                            // As if the timer's output had reached the
                            // guest: the guest's handler unmasks when it
                            // re-arms.
                            ctx.el1.cntv_ctl |= CNTV_IMASK | CNTV_ISTATUS;
                            *slot = Some((dom.clone(), idx));
                            n += 1;
                        }
                        Some(d) => next = Some(next.map_or(d, |x| x.min(d))),
                        None => {}
                    }
                }
            }
        }
        for (dom, idx) in due.iter().flatten() {
            let kicks = dom
                .vgic
                .lock()
                .inject(*idx, crate::guest_layout::GUEST_VTIMER_PPI);
            notify_mask(dom, kicks.0);
            notify(dom, *idx);
        }
        if !more {
            return next;
        }
    }
}

/// Programs the EL2 physical timer for the next slice end or blocked-vCPU
/// timer deadline.
fn program_timer(next_deadline: Option<u64>) {
    let p = me();
    let slice = p.slice_end.load(Ordering::Relaxed);
    let at = match (p.current.lock().is_some(), next_deadline) {
        (true, Some(d)) => slice.min(d),
        (true, None) => slice,
        (false, Some(d)) => d,
        (false, None) => {
            reg::set_cnthp_ctl(0);
            return;
        }
    };
    reg::set_cnthp_cval(at);
    reg::set_cnthp_ctl(1);
}

/// The EL2 timer fired: wake timers, and preempt if the slice is over.
pub fn on_tick() {
    reg::set_cnthp_ctl(0);
    let next = fire_blocked_timers();
    let p = me();
    let now = cpu::counter();
    if now >= p.slice_end.load(Ordering::Relaxed) {
        if p.runq.lock().is_empty() {
            // Nobody else wants this pCPU: the current vCPU gets another slice.
            p.slice_end
                .store(now + SLICE_US * ticks_per_us(), Ordering::Relaxed);
        } else {
            p.preempt.store(true, Ordering::Release);
            // The switch happens when this exit finishes; until then the
            // timer must not re-arm at the slice end that has passed (it
            // would fire again at once, forever). Loading the next vCPU
            // starts a fresh slice.
            p.slice_end.store(u64::MAX, Ordering::Relaxed);
        }
    }
    program_timer(next);
}

/// What a trap decided about the vCPU that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Keep running it.
    Continue,
    /// Let others run first (WFE, SCHEDOP_yield).
    Yield,
    /// It waits for an interrupt (WFI with nothing pending).
    Block,
    /// It stopped (PSCI CPU_OFF).
    Offline,
}

/// Nanoseconds since boot, Xen's system time on Arm.
fn now_ns() -> u64 {
    let f = u128::from(cpu::counter_frequency().max(1));
    (u128::from(cpu::counter()) * 1_000_000_000 / f) as u64
}

/// Accounts `v` entering runstate `state` and, while it is loaded, writes
/// the guest's copy (with Xen's update-in-progress flag around it).
fn set_runstate(v: &VcpuRef, state: u32) {
    v.vcpu().runstate.lock().enter(state, now_ns());
    publish_runstate(v);
}

/// Writes the loaded vCPU's runstate to the area its guest registered;
/// failures (the area unmapped) are ignored, as Xen ignores them.
pub fn publish_runstate(v: &VcpuRef) {
    let rs = *v.vcpu().runstate.lock();
    if rs.gva == 0 {
        return;
    }
    let dom = &v.dom;
    let flagged = rs.bytes(true);
    let _ = super::hcall::write_guest(dom, rs.gva + 8, &flagged[8..16]);
    let _ = super::hcall::write_guest(dom, rs.gva, &flagged);
    let _ = super::hcall::write_guest(dom, rs.gva + 8, &rs.bytes(false)[8..16]);
}

/// Saves the loaded vCPU into its context and unloads it; `runstate` is
/// the state it leaves for.
fn unload(v: &VcpuRef, frame: &GuestFrame, runstate: u32) {
    set_runstate(v, runstate);
    {
        let mut ctx = v.vcpu().ctx.lock();
        ctx.frame = *frame;
        ctx.el1.save();
        let gic = chip();
        gic.save_vif(&mut ctx.vif);
        let mut lrs = [0u64; MAX_LRS];
        let n = read_lrs(&mut lrs, me().live_lrs.swap(0, Ordering::Relaxed));
        write_lrs(&[0; MAX_LRS], n);
        let kicks = v
            .dom
            .vgic
            .lock()
            .sync_lrs(v.idx, lrs.get(..n).unwrap_or(&[]));
        notify_mask(&v.dom, kicks.0);
    }
    chip().set_vif_control(false, false);
    reg::set_cntv_ctl(0);
    *me().current.lock() = None;
    if v.dom.active.fetch_sub(1, Ordering::AcqRel) == 1 {
        maybe_teardown(&v.dom);
    }
}

/// Loads `v` onto this pCPU and puts its registers in `frame`.
fn load(v: &VcpuRef, frame: &mut GuestFrame) {
    let dom = &v.dom;
    reg::set_hcr(HCR_GUEST);
    reg::set_vttbr(dom.vttbr);
    reg::set_vmpidr((1 << 31) | v.vcpu().mpidr);
    reg::set_cntvoff(dom.cntvoff);
    {
        let ctx = v.vcpu().ctx.lock();
        ctx.el1.restore();
        chip().restore_vif(&ctx.vif);
        *frame = ctx.frame;
    }
    flush_lrs(v);
    set_runstate(v, 0);
    *me().current.lock() = Some(v.clone());
    let p = me();
    p.slice_end.store(
        cpu::counter() + SLICE_US * ticks_per_us(),
        Ordering::Relaxed,
    );
    p.preempt.store(false, Ordering::Relaxed);
}

/// Reads list registers `0..n` (at most [`MAX_LRS`]) into `lrs`; how many.
/// Plain loops here and below: iterator adapters are calls under
/// opt-level `z`, and these run on every exit that lists something.
#[inline(always)]
fn read_lrs(lrs: &mut [u64; MAX_LRS], n: usize) -> usize {
    let gic = chip();
    let n = n.min(MAX_LRS);
    let mut i = 0;
    while i < n {
        if let Some(lr) = lrs.get_mut(i) {
            *lr = gic.read_lr(i);
        }
        i += 1;
    }
    n
}

/// Writes `lrs[..n]` (at most [`MAX_LRS`]) to list registers `0..n`.
#[inline(always)]
fn write_lrs(lrs: &[u64; MAX_LRS], n: usize) {
    let gic = chip();
    let mut i = 0;
    while i < n {
        let Some(&lr) = lrs.get(i) else { break };
        gic.write_lr(i, lr);
        i += 1;
    }
}

/// Re-reads the list registers into the vGIC (what the guest acknowledged
/// or completed) without unloading.
fn sync_lrs(v: &VcpuRef) {
    let n = me().live_lrs.load(Ordering::Relaxed);
    if n == 0 {
        // The last flush listed nothing, so the vGIC has nothing to take
        // back: the common exit skips its lock.
        return;
    }
    let mut lrs = [0u64; MAX_LRS];
    let n = read_lrs(&mut lrs, n);
    let kicks = v
        .dom
        .vgic
        .lock()
        .sync_lrs(v.idx, lrs.get(..n).unwrap_or(&[]));
    notify_mask(&v.dom, kicks.0);
}

/// Loads the vGIC's pending interrupts for `v` into the list registers.
fn flush_lrs(v: &VcpuRef) {
    relist(v, false);
}

/// On an exit that returns to the vCPU it came from: what the guest did to
/// the listed interrupts folds back into the vGIC, and what is pending now
/// is listed, under one hold of the vGIC's lock.
fn resync(v: &VcpuRef) {
    relist(v, true);
}

/// [`resync`] (`take_back`) or [`flush_lrs`] (the registers were synced
/// already, or hold nothing of this vCPU's).
#[inline(always)]
fn relist(v: &VcpuRef, take_back: bool) {
    let gic = chip();
    let live = me().live_lrs.load(Ordering::Relaxed).min(MAX_LRS);
    if live == 0 && !Vgic::may_want_lrs(&v.dom.vgic_busy, v.idx) {
        // The common exit: nothing listed and nothing to list, so the
        // registers stay clear and the vGIC's lock is not taken. An
        // interrupt added from now on kicks this vCPU (`notify`), and the
        // exit that follows lists it.
        gic.set_vif_control(true, false);
        return;
    }
    let mut lrs = [0u64; MAX_LRS];
    let taken = if take_back {
        read_lrs(&mut lrs, live)
    } else {
        0
    };
    let slots = gic.nr_lrs().min(MAX_LRS);
    let (kicks, flush) = {
        let mut vgic = v.dom.vgic.lock();
        let kicks = match taken {
            0 => crate::vgic::Kicks::NONE,
            n => vgic.sync_lrs(v.idx, lrs.get(..n).unwrap_or(&[])),
        };
        (kicks, vgic.flush_lrs(v.idx, slots, &mut lrs))
    };
    // Registers past both the new and the old contents are zero already;
    // those past the new ones only are cleared.
    let mut i = flush.count;
    while i < live {
        let Some(lr) = lrs.get_mut(i) else { break };
        *lr = 0;
        i += 1;
    }
    me().live_lrs.store(flush.count, Ordering::Relaxed);
    write_lrs(&lrs, live.max(flush.count));
    // Enabled, plus the underflow interrupt when more are pending than fit.
    gic.set_vif_control(true, flush.underflow);
    notify_mask(&v.dom, kicks.0);
}

fn maybe_teardown(dom: &Arc<Domain>) {
    if dom.claim_teardown() {
        super::build::teardown(dom);
    }
}

/// Picks the next runnable vCPU of this pCPU, claiming it.
fn pick() -> Option<VcpuRef> {
    loop {
        let v = me().runq.lock().pop_front()?;
        if !v.vcpu().transition(VcpuState::Runnable, VcpuState::Running) {
            continue; // dead or already taken
        }
        v.dom.active.fetch_add(1, Ordering::AcqRel);
        if v.dom.dying().is_some() {
            v.vcpu().set_state(VcpuState::Dead);
            if v.dom.active.fetch_sub(1, Ordering::AcqRel) == 1 {
                maybe_teardown(&v.dom);
            }
            continue;
        }
        return Some(v);
    }
}

/// Waits for an interrupt with nothing loaded.
fn idle_once() {
    let next = fire_blocked_timers();
    program_timer(next);
    if !me().runq.lock().is_empty() {
        return;
    }
    // Nothing is held across the wait or while IRQs are unmasked.
    crate::arch::cpu::wait_and_take_irqs();
}

/// Picks something to run, idling until there is, and loads it into `frame`.
fn switch_in(frame: &mut GuestFrame) {
    loop {
        if let Some(v) = pick() {
            load(&v, frame);
            let next = fire_blocked_timers();
            program_timer(next);
            return;
        }
        idle_once();
    }
}

/// The end of every guest exit: decides what runs next on this pCPU and
/// leaves its registers in `frame`. `cur` is [`current`] as the exit began:
/// nothing but this pCPU changes it.
pub fn finish_exit(cur: Option<VcpuRef>, frame: &mut GuestFrame, after: After) {
    let Some(cur) = cur else {
        switch_in(frame);
        return;
    };
    let p = me();
    let dead = cur.dom.dying().is_some() || cur.vcpu().state() == VcpuState::Dead;
    let preempt = p.preempt.swap(false, Ordering::AcqRel);
    if !dead && after == After::Continue && !preempt {
        resync(&cur);
        return;
    }
    if !dead && after == After::Block {
        // Block unless an interrupt is already deliverable; a wake-up racing
        // with this sees Blocked and re-queues the vCPU.
        cur.vcpu().set_state(VcpuState::Blocked);
        sync_lrs(&cur);
        let pending = cur.dom.vgic.lock().has_pending(cur.idx);
        if pending
            && cur
                .vcpu()
                .transition(VcpuState::Blocked, VcpuState::Running)
        {
            flush_lrs(&cur);
            return;
        }
    }
    let runstate = match (dead, after) {
        (true, _) | (false, After::Offline) => 3,
        (false, After::Block) => 2,
        (false, _) => 1,
    };
    unload(&cur, frame, runstate);
    if !dead {
        match after {
            After::Continue | After::Yield => {
                if cur
                    .vcpu()
                    .transition(VcpuState::Running, VcpuState::Runnable)
                {
                    p.runq.lock().push_back(cur.clone());
                }
            }
            After::Offline => {
                cur.vcpu()
                    .transition(VcpuState::Running, VcpuState::Offline);
            }
            After::Block => {}
        }
    }
    drop(cur);
    switch_in(frame);
}

/// A pCPU's life after boot: run vCPUs forever.
pub fn run() -> ! {
    let p = me();
    let scratch = p.scratch.get().expect("init_cpu ran");
    let top = p.stack_top.load(Ordering::Acquire);
    guest::enter_scratch(scratch, top, switch_in)
}

/// Prints every domain's vCPUs: where they run, their state, PC, virtual
/// timer and interrupts (Xen's debug key 'q' shows the same kind of
/// report). Never waits for a lock another CPU may hold.
pub fn dump_state() {
    let now = cpu::counter();
    let Some(domains) = hv().domains.try_lock().map(|d| d.clone()) else {
        println!("state dump: domain list busy");
        return;
    };
    for d in &domains {
        let tables = d
            .mem
            .try_lock()
            .map(|m| (m.tables.used(), m.tables.limit()));
        println!(
            "d{} ({}): {:?}, stage-2 tables (used, budget) {tables:?}",
            d.id,
            d.name,
            d.dying()
        );
        for v in &d.vcpus {
            let (pc, ctl, cval) = v
                .ctx
                .try_lock()
                .map(|c| (c.frame.pc, c.el1.cntv_ctl, c.el1.cntv_cval))
                .unwrap_or_default();
            let irqs = d.vgic.try_lock().map(|g| g.describe(v.idx));
            println!(
                "  vcpu{} on cpu{}: {:?}, saved pc {pc:#x}, vtimer ctl {ctl:#x} cval {cval:#x} (now {:#x}), irqs (pending, active) {irqs:?}, run queue {:?}",
                v.idx,
                v.pcpu,
                v.state(),
                now.wrapping_sub(d.cntvoff),
                PCPUS[v.pcpu].runq.try_lock().map(|q| q.len())
            );
        }
    }
    println!(
        "heap: {} KiB in use, peak {} KiB, of {} KiB",
        crate::arch::heap::try_used().map_or(alloc::string::String::from("?"), |u| alloc::format!(
            "{}",
            u / 1024
        )),
        crate::arch::heap::peak() / 1024,
        crate::arch::heap::size() / 1024
    );
}

/// Called when a domain was torn down and nothing replaced it.
pub fn all_domains_gone() -> ! {
    println!("all domains have stopped: powering off");
    psci::system_off()
}

/// Stops the domain of the current vCPU.
pub fn shutdown_current(why: Shutdown) {
    if let Some(cur) = current() {
        cur.dom.begin_shutdown(why);
    }
}
