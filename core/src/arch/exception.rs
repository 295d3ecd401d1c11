//! EL2 exception vectors: all sixteen entries save the full register frame
//! and call into Rust. A fault in the hypervisor itself is reported (ESR,
//! FAR, ELR, the exception class in words, registers and a frame-pointer
//! backtrace) and halts the CPU it happened on.

use core::arch::{asm, global_asm};
use core::mem::size_of;

use super::{cpu, entry};
use crate::esr::{Esr, ExceptionClass};

/// The registers saved on every exception, in the order the vector code
/// stores them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

const FRAME_SIZE: usize = size_of::<Frame>();
const _: () = assert!(FRAME_SIZE == 34 * 8 && FRAME_SIZE.is_multiple_of(16));

global_asm!(
    r#"
.macro OXEN_VENTRY kind
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       oxen_exception_common
.endm

/* Exits from a guest save the larger guest frame (with FP/SIMD state). */
.macro OXEN_GUEST_VENTRY kind
    .balign 0x80
    sub     sp, sp, #{guest_frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       oxen_guest_exit_common
.endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global oxen_vectors
oxen_vectors:
    OXEN_VENTRY 0
    OXEN_VENTRY 1
    OXEN_VENTRY 2
    OXEN_VENTRY 3
    OXEN_VENTRY 4
    OXEN_VENTRY 5
    OXEN_VENTRY 6
    OXEN_VENTRY 7
    OXEN_GUEST_VENTRY 8
    OXEN_GUEST_VENTRY 9
    OXEN_GUEST_VENTRY 10
    OXEN_GUEST_VENTRY 11
    OXEN_GUEST_VENTRY 12
    OXEN_GUEST_VENTRY 13
    OXEN_GUEST_VENTRY 14
    OXEN_GUEST_VENTRY 15

oxen_exception_common:
"#,
    save_gprs_asm!(),
    r#"
    mov     x1, sp
    bl      oxen_exception
"#,
    restore_gprs_asm!(),
    r#"
    add     sp, sp, #{frame}
    eret
"#,
    frame = const FRAME_SIZE,
    guest_frame = const super::guest::GUEST_FRAME_SIZE,
);

/// Which of the sixteen vectors was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorKind(pub u64);

impl VectorKind {
    /// "synchronous", "IRQ", "FIQ" or "SError".
    pub fn kind(self) -> &'static str {
        ["synchronous exception", "IRQ", "FIQ", "SError"][(self.0 & 3) as usize]
    }

    /// Where it came from.
    pub fn origin(self) -> &'static str {
        [
            "EL2 using SP_EL0",
            "EL2",
            "a lower EL in AArch64",
            "a lower EL in AArch32",
        ][(self.0 >> 2) as usize & 3]
    }
}

fn sysreg_esr() -> u64 {
    let v: u64;
    // SAFETY: reading ESR_EL2 has no side effects.
    unsafe { asm!("mrs {}, esr_el2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn sysreg_far() -> u64 {
    let v: u64;
    // SAFETY: reading FAR_EL2 has no side effects.
    unsafe { asm!("mrs {}, far_el2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Called by the vector code with the frame it saved.
#[unsafe(no_mangle)]
extern "C" fn oxen_exception(kind: u64, frame: &mut Frame) {
    let kind = VectorKind(kind);
    // IRQs at EL2 arrive only while a pCPU idles with them unmasked.
    if kind.0 == 5 {
        crate::hv::irq::handle_all();
        return;
    }
    report_fault(kind, frame, Esr(sysreg_esr()), sysreg_far());
    cpu::halt();
}

macro_rules! fault_println {
    ($($arg:tt)*) => {
        crate::console::print_fmt_unlocked(format_args!("(oxen) {}\n", format_args!($($arg)*)))
    };
}

/// Prints everything known about an unexpected exception.
pub fn report_fault(kind: VectorKind, frame: &Frame, esr: Esr, far: u64) {
    let cpu = cpu::index();
    fault_println!(
        "*** FAULT on CPU{cpu}: {} from {}",
        kind.kind(),
        kind.origin()
    );
    let class = esr.class();
    match class {
        ExceptionClass::DataAbortSame | ExceptionClass::DataAbortLower => {
            let level = esr.fault_level().map_or(-1, i32::from);
            fault_println!(
                "    {}: {} (level {level}) on {}",
                class.describe(),
                esr.fault_status(),
                if esr.is_write() { "write" } else { "read" }
            );
        }
        _ => fault_println!("    {}", class.describe()),
    }
    fault_println!(
        "    ESR_EL2 {:#010x}  FAR_EL2 {:#018x}  ELR_EL2 {:#018x}  SPSR_EL2 {:#010x}",
        esr.0,
        far,
        frame.elr,
        frame.spsr
    );
    for row in 0..8 {
        let i = row * 4;
        let regs = &frame.x[i..(i + 4).min(31)];
        match regs.len() {
            4 => fault_println!(
                "    x{:<2} {:#018x} x{:<2} {:#018x} x{:<2} {:#018x} x{:<2} {:#018x}",
                i,
                regs[0],
                i + 1,
                regs[1],
                i + 2,
                regs[2],
                i + 3,
                regs[3]
            ),
            _ => fault_println!(
                "    x{:<2} {:#018x} x{:<2} {:#018x} x{:<2} {:#018x}",
                i,
                regs[0],
                i + 1,
                regs[1],
                i + 2,
                regs[2]
            ),
        }
    }
    backtrace(frame.elr, frame.x[29]);
    fault_println!("CPU{cpu} halted");
}

/// Walks the frame-pointer chain from `fp`, printing return addresses.
/// Only reads inside Oxen's own stacks, so a corrupt chain cannot fault.
pub fn backtrace(pc: u64, mut fp: u64) {
    fault_println!("    backtrace (resolve with addr2line -e <the ELF>):");
    fault_println!("      #0 {pc:#018x}");
    for depth in 1..32 {
        let in_stack = entry::stack_bounds()
            .any(|(lo, hi)| fp as usize >= lo && (fp as usize).saturating_add(16) <= hi);
        if fp == 0 || !fp.is_multiple_of(8) || !in_stack {
            break;
        }
        let record = fp as *const u64;
        // SAFETY: `fp` is 8-byte aligned and the 16-byte frame record lies
        // entirely inside one of Oxen's stacks, which are always mapped.
        let (next, lr) = unsafe { (record.read_volatile(), record.add(1).read_volatile()) };
        if lr == 0 {
            break;
        }
        fault_println!("      #{depth} {lr:#018x}");
        if next <= fp {
            break; // frames must move towards the stack's top
        }
        fp = next;
    }
}

/// The caller's frame pointer, to start a backtrace from Rust code.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let fp: u64;
    // SAFETY: reading x29 has no side effects.
    unsafe { asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags)) };
    fp
}
