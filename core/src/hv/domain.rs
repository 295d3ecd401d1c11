//! A running domain: its vCPUs, memory, virtual devices and lifecycle
//! (running, shutting down, torn down, rebuilt on reboot).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

use crate::arch::guest::{El1Regs, GuestFrame};
use crate::arch::mem;
use crate::config::DomainConfig;
use crate::memmap::Range;
use crate::stage2::{Budgeted, Stage2, TableMemory};
use crate::vgic::Vgic;
use crate::vpl011::{LineBuffer, Vpl011};

/// Where a vCPU is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VcpuState {
    /// Not started (secondary vCPUs until PSCI CPU_ON) or stopped by CPU_OFF.
    Offline = 0,
    /// In its pCPU's run queue.
    Runnable = 1,
    /// Loaded on its pCPU.
    Running = 2,
    /// Waiting in WFI for an interrupt.
    Blocked = 3,
    /// Its domain is shutting down.
    Dead = 4,
}

impl VcpuState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Offline,
            1 => Self::Runnable,
            2 => Self::Running,
            3 => Self::Blocked,
            _ => Self::Dead,
        }
    }
}

/// Why a domain stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Shutdown {
    Poweroff = 1,
    Reboot = 2,
    Crash = 3,
}

/// A vCPU's runstate, as Xen accounts it (`struct vcpu_runstate_info`),
/// and where the guest asked to see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Runstate {
    /// Guest-virtual address of the guest's copy (0: none registered).
    pub gva: u64,
    /// RUNSTATE_running 0, runnable 1, blocked 2, offline 3.
    pub state: u32,
    pub entry_ns: u64,
    pub time: [u64; 4],
}

impl Runstate {
    /// Accounts the time spent in the current state and enters `state`.
    pub fn enter(&mut self, state: u32, now_ns: u64) {
        let spent = now_ns.saturating_sub(self.entry_ns);
        if let Some(t) = self.time.get_mut(self.state as usize) {
            *t += spent;
        }
        self.state = state;
        self.entry_ns = now_ns;
    }

    /// The guest's 48-byte view, with XEN_RUNSTATE_UPDATE set in
    /// `state_entry_time` when `updating`.
    pub fn bytes(&self, updating: bool) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[..4].copy_from_slice(&self.state.to_le_bytes());
        let entry = self.entry_ns | if updating { 1 << 63 } else { 0 };
        b[8..16].copy_from_slice(&entry.to_le_bytes());
        for (i, t) in self.time.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&t.to_le_bytes());
        }
        b
    }
}

/// A vCPU's saved state while it is not loaded.
pub struct VcpuCtx {
    pub frame: GuestFrame,
    pub el1: El1Regs,
    /// The virtual GIC interface's own state (outside the list registers).
    pub vif: crate::drivers::VifState,
}

pub struct Vcpu {
    pub idx: usize,
    /// The pCPU it runs on.
    pub pcpu: usize,
    /// Its virtual MPIDR affinity (Xen's layout).
    pub mpidr: u64,
    state: AtomicU8,
    pub ctx: spin::Mutex<VcpuCtx>,
    pub runstate: spin::Mutex<Runstate>,
}

impl Vcpu {
    pub fn new(idx: usize, pcpu: usize, mpidr: u64, state: VcpuState) -> Self {
        Self {
            idx,
            pcpu,
            mpidr,
            state: AtomicU8::new(state as u8),
            ctx: spin::Mutex::new(VcpuCtx {
                frame: GuestFrame::default(),
                el1: El1Regs::default(),
                vif: crate::drivers::VifState::default(),
            }),
            runstate: spin::Mutex::new(Runstate {
                state: 3,
                ..Runstate::default()
            }),
        }
    }

    pub fn state(&self) -> VcpuState {
        VcpuState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, s: VcpuState) -> VcpuState {
        VcpuState::from_u8(self.state.swap(s as u8, Ordering::AcqRel))
    }

    /// Moves from `from` to `to` if the vCPU is still in `from`.
    pub fn transition(&self, from: VcpuState, to: VcpuState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

pub use crate::arch::mem::HeapTables;

impl TableMemory for HeapTables {
    fn alloc_tables(&mut self, n: usize) -> Option<u64> {
        self.alloc(n)
    }

    fn free_table(&mut self, pa: u64) {
        self.free(pa)
    }

    fn table(&self, pa: u64) -> &[u64; 512] {
        HeapTables::table(self, pa)
    }

    fn table_mut(&mut self, pa: u64) -> &mut [u64; 512] {
        HeapTables::table_mut(self, pa)
    }
}

/// A domain's memory: its stage-2 tables and where its RAM lives.
pub struct DomainMem {
    /// `None` once torn down.
    pub stage2: Option<Stage2>,
    /// Within the domain's P2M budget (`DomainConfig::p2m_pages`).
    pub tables: Budgeted<HeapTables>,
    /// Guest-physical range → host-physical start, for each RAM chunk.
    pub ram: Vec<(Range, u64)>,
}

impl DomainMem {
    /// The host range backing guest range `[ipa, ipa+len)`, if it is all RAM
    /// of this domain in one chunk.
    pub fn host_range(&self, ipa: u64, len: u64) -> Option<Range> {
        let want = Range::with_size(ipa, len)?;
        self.ram
            .iter()
            .find(|(g, _)| g.covers(&want))
            .map(|(g, h)| Range {
                start: h + (ipa - g.start),
                end: h + (ipa - g.start) + len,
            })
    }

    /// Whether the host range is RAM of this domain.
    #[inline(always)]
    pub fn owns_host(&self, r: Range) -> bool {
        // A plain loop, as in `mem::is_guest_ram`: on every guest copy.
        for (g, h) in self.ram.iter() {
            if let Some(hr) = Range::with_size(*h, g.size())
                && hr.covers(&r)
            {
                return true;
            }
        }
        false
    }

    /// Copies `bytes` into guest RAM at `ipa` (possibly across chunks).
    pub fn write(&self, mut ipa: u64, mut bytes: &[u8]) -> Result<(), u64> {
        while !bytes.is_empty() {
            let (g, h) = self.ram.iter().find(|(g, _)| g.contains(ipa)).ok_or(ipa)?;
            let n = (g.end - ipa).min(bytes.len() as u64);
            let host = Range::with_size(h + (ipa - g.start), n).ok_or(ipa)?;
            if !mem::write_ram(host.start, &bytes[..n as usize]) {
                return Err(ipa);
            }
            crate::arch::guest::clean_for_guest(host.start, host.end);
            bytes = &bytes[n as usize..];
            ipa += n;
        }
        Ok(())
    }
}

pub struct Domain {
    pub id: u16,
    pub name: String,
    pub config: DomainConfig,
    pub vcpus: Vec<Vcpu>,
    pub mem: spin::Mutex<DomainMem>,
    pub vgic: spin::Mutex<Vgic>,
    /// The vGIC's lock-free hint of which vCPUs may have something to
    /// list ([`Vgic::may_want_lrs`]).
    pub vgic_busy: alloc::sync::Arc<core::sync::atomic::AtomicU64>,
    pub vpl011: Option<spin::Mutex<Vpl011>>,
    /// Output lines of the vPL011 and of `console_io`.
    pub uart_out: spin::Mutex<LineBuffer>,
    pub hvc_out: spin::Mutex<LineBuffer>,
    /// Console input for `console_io` reads (domains without a vPL011).
    pub hvc_in: spin::Mutex<alloc::collections::VecDeque<u8>>,
    pub vttbr: u64,
    pub cntvoff: u64,
    /// The Xen interfaces this domain was given.
    pub granted: Vec<crate::subsystem::Interface>,
    /// HVM parameters (0 unless a subsystem set one).
    pub hvm_params: spin::Mutex<[u64; crate::hypercall::hvm::HVM_NR_PARAMS as usize]>,
    /// 0 while running, else the `Shutdown` reason.
    dying: AtomicU8,
    /// vCPUs currently loaded on a pCPU.
    pub active: AtomicU32,
    torn_down: AtomicBool,
}

/// A vCPU of a domain.
#[derive(Clone)]
pub struct VcpuRef {
    pub dom: Arc<Domain>,
    pub idx: usize,
}

impl VcpuRef {
    #[inline(always)]
    pub fn vcpu(&self) -> &Vcpu {
        &self.dom.vcpus[self.idx]
    }
}

impl Domain {
    pub fn new(
        config: DomainConfig,
        vcpus: Vec<Vcpu>,
        mem: DomainMem,
        vgic: Vgic,
        vttbr: u64,
        cntvoff: u64,
        granted: Vec<crate::subsystem::Interface>,
    ) -> Self {
        let vpl011 = config.vpl011.then(|| spin::Mutex::new(Vpl011::new()));
        Self {
            id: config.domid,
            name: config.name.clone(),
            config,
            vcpus,
            mem: spin::Mutex::new(mem),
            vgic_busy: vgic.busy_handle(),
            vgic: spin::Mutex::new(vgic),
            vpl011,
            uart_out: spin::Mutex::new(LineBuffer::default()),
            hvc_out: spin::Mutex::new(LineBuffer::default()),
            hvc_in: spin::Mutex::new(alloc::collections::VecDeque::new()),
            vttbr,
            cntvoff,
            granted,
            hvm_params: spin::Mutex::new([0; crate::hypercall::hvm::HVM_NR_PARAMS as usize]),
            dying: AtomicU8::new(0),
            active: AtomicU32::new(0),
            torn_down: AtomicBool::new(false),
        }
    }

    /// Why the domain is stopping, if it is.
    pub fn dying(&self) -> Option<Shutdown> {
        match self.dying.load(Ordering::Acquire) {
            0 => None,
            1 => Some(Shutdown::Poweroff),
            2 => Some(Shutdown::Reboot),
            _ => Some(Shutdown::Crash),
        }
    }

    /// Starts stopping the domain (the first reason wins). Every vCPU is
    /// marked dead; pCPUs running one are kicked so they let go of it.
    pub fn begin_shutdown(self: &Arc<Self>, why: Shutdown) {
        if self
            .dying
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        for v in &self.vcpus {
            if v.set_state(VcpuState::Dead) == VcpuState::Running {
                super::sched::kick(v.pcpu);
            }
        }
    }

    /// Claims the right to tear the domain down (true once).
    pub fn claim_teardown(&self) -> bool {
        self.dying().is_some()
            && self.active.load(Ordering::Acquire) == 0
            && !self.torn_down.swap(true, Ordering::AcqRel)
    }

    /// Prints the complete lines of a guest console stream with the
    /// domain's prefix.
    pub fn console_write(&self, which: &spin::Mutex<LineBuffer>, bytes: &[u8]) {
        let id = self.id;
        which.lock().push(bytes, &mut |line| {
            crate::console::print_fmt(format_args!(
                "(d{id}) {}\n",
                core::str::from_utf8(line).unwrap_or("<non-UTF-8 output>")
            ));
        });
    }
}
