//! Secondary vCPUs: started with PSCI CPU_ON, each reports through its
//! mailbox in shared memory, then waits in WFI for commands from vCPU0
//! (rung with an SGI).
//!
//! The MMU stays off, so guest memory is Device memory to the guest: plain
//! loads and stores (and load-acquire/store-release) are coherent between
//! vCPUs, exclusive accesses are not to be relied on. So every field has
//! one writer at a time: `cmd` passes from vCPU0 to the secondary and back
//! (vCPU0 writes it only after `done` moved), the rest have one writer.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::arch;
use crate::gic;

/// vCPUs this guest can run (vCPU0 on the boot stack, the others on
/// `GUEST_STACKS`).
pub const MAX_VCPUS: usize = 8;

/// The SGI vCPU0 rings to make a secondary look at its mailbox.
pub const DOORBELL_SGI: u32 = 15;

/// Commands to a secondary.
pub const CMD_NONE: u32 = 0;
/// Call PSCI CPU_OFF.
pub const CMD_OFF: u32 = 1;
/// Send SGI `arg & 0xff` to the vCPU with affinity `arg >> 8`.
pub const CMD_SGI: u32 = 2;

/// One secondary's mailbox.
pub struct Mailbox {
    /// Times this vCPU came up (written by the secondary).
    pub boots: AtomicU32,
    /// MPIDR_EL1 as the secondary read it.
    pub mpidr: AtomicU64,
    /// x0 at entry: CPU_ON's context ID.
    pub context: AtomicU64,
    /// 0, or [`GIC_FAILED`] if setting up its GIC interface failed.
    pub gic_error: AtomicU32,
    /// ESR (with bit 63 set, so that 0 means none) and ELR of an
    /// unexpected exception.
    pub fault_esr: AtomicU64,
    pub fault_elr: AtomicU64,
    /// Written by vCPU0: the command and its argument.
    pub cmd: AtomicU32,
    pub arg: AtomicU64,
    /// Commands completed (written by the secondary).
    pub done: AtomicU32,
    /// Times CPU_OFF returned (it must not) and what it returned last.
    pub off_returned: AtomicU32,
    pub off_result: AtomicU64,
}

impl Mailbox {
    const fn new() -> Self {
        Self {
            boots: AtomicU32::new(0),
            mpidr: AtomicU64::new(0),
            context: AtomicU64::new(u64::MAX),
            gic_error: AtomicU32::new(0),
            fault_esr: AtomicU64::new(0),
            fault_elr: AtomicU64::new(0),
            cmd: AtomicU32::new(CMD_NONE),
            arg: AtomicU64::new(0),
            done: AtomicU32::new(0),
            off_returned: AtomicU32::new(0),
            off_result: AtomicU64::new(0),
        }
    }
}

/// One mailbox per vCPU (vCPU0's is unused).
pub static MAILBOX: [Mailbox; MAX_VCPUS] = [const { Mailbox::new() }; MAX_VCPUS];

/// A secondary's GIC setup failed.
pub const GIC_FAILED: u32 = 1;

/// Records an unexpected exception on secondary `cpu` for vCPU0 to report.
pub fn report_fault(cpu: usize, esr: u64, elr: u64) {
    if let Some(m) = MAILBOX.get(cpu) {
        m.fault_elr.store(elr, Ordering::Relaxed);
        m.fault_esr.store(esr | 1 << 63, Ordering::Release);
    }
}

/// The MPIDR affinity Xen (and Oxen) give vCPU `i`: Aff0 = i % 16,
/// Aff1 = i / 16.
pub fn affinity(i: usize) -> u64 {
    ((i as u64 / 16) << 8) | (i as u64 % 16)
}

/// Asks secondary `cpu` to run `cmd`, rings its doorbell and waits up to
/// `timeout` ticks for it to finish; whether it did.
pub fn command(cpu: usize, cmd: u32, arg: u64, timeout: u64) -> bool {
    let m = &MAILBOX[cpu];
    let before = m.done.load(Ordering::Acquire);
    m.arg.store(arg, Ordering::Relaxed);
    m.cmd.store(cmd, Ordering::Release);
    gic::send_sgi(DOORBELL_SGI, affinity(cpu));
    arch::wait_for(timeout, || m.done.load(Ordering::Acquire) != before)
}

/// Where CPU_ON starts a secondary, with x0 = its index: FP/SIMD on, its
/// own stack, the vectors, then `guest_secondary_main`. An index out of
/// range parks.
pub fn entry_point() -> u64 {
    unsafe extern "C" {
        fn guest_secondary_entry();
    }
    guest_secondary_entry as *const () as usize as u64
}

/// A secondary vCPU's life after its entry code.
#[unsafe(no_mangle)]
extern "C" fn guest_secondary_main(cpu: usize, context: u64) -> ! {
    arch::set_cpu_index(cpu);
    let m = &MAILBOX[cpu];
    m.mpidr.store(arch::mpidr(), Ordering::Relaxed);
    m.context.store(context, Ordering::Relaxed);
    if gic::init_cpu().is_err() {
        m.gic_error.store(GIC_FAILED, Ordering::Relaxed);
    }
    m.boots
        .store(m.boots.load(Ordering::Relaxed) + 1, Ordering::Release);
    loop {
        arch::irq_disable();
        let cmd = m.cmd.load(Ordering::Acquire);
        if cmd == CMD_NONE {
            // An interrupt that arrives now stays pending and ends the WFI.
            arch::wfi();
        } else {
            m.cmd.store(CMD_NONE, Ordering::Relaxed);
            let arg = m.arg.load(Ordering::Relaxed);
            match cmd {
                CMD_OFF => {
                    m.done
                        .store(m.done.load(Ordering::Relaxed) + 1, Ordering::Release);
                    let r = arch::smccc(crate::psci::CPU_OFF, 0, 0, 0);
                    m.off_result.store(r, Ordering::Relaxed);
                    m.off_returned.store(
                        m.off_returned.load(Ordering::Relaxed) + 1,
                        Ordering::Release,
                    );
                    continue;
                }
                CMD_SGI => gic::send_sgi((arg & 0xff) as u32, arg >> 8),
                _ => {}
            }
            m.done
                .store(m.done.load(Ordering::Relaxed) + 1, Ordering::Release);
        }
        arch::irq_enable();
    }
}
