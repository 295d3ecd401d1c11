//! A bare-metal arm64 domU that checks the Xen guest ABI as a dom0less
//! guest sees it — its device tree, PSCI, hypercall errors, faults, the
//! vGIC, the virtual timer, the vPL011 — and prints one
//! `TEST <name> PASS|FAIL` line per case and `N passed, M failed`, then
//! powers its domain off. It runs unchanged on Oxen and on Xen.
//!
//! Boot: an arm64 Image loaded at guest RAM + `text_offset`, entered at
//! EL1h with the MMU off and x0 = the device tree; it keeps the MMU off.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Without a heap, a case's failure text travels by value in a fixed buffer.
#![expect(clippy::result_large_err)]

mod arch;
mod cases;
mod console;
mod dt;
mod gic;
mod msg;
mod psci;
mod report;
mod smp;
mod trap;
mod xen;
mod xencases;

use core::arch::global_asm;

use smp::MAX_VCPUS;

/// Bytes of stack per vCPU.
const STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; MAX_VCPUS]);

/// vCPU i runs on `GUEST_STACKS[i]` (only the entry code names it).
#[unsafe(no_mangle)]
static mut GUEST_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_VCPUS]);

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    /* arm64 Image header (Linux Documentation/arch/arm64/booting.rst). */
    b       guest_primary_entry     /* code0 */
    .long   0                       /* code1 */
    .quad   _text_offset            /* load offset from a 2 MiB aligned base */
    .quad   _image_size             /* bytes from _start to the end of BSS */
    .quad   0x2                     /* little-endian, 4 KiB pages */
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .long   0

guest_primary_entry:
    mov     x19, x0                 /* the device tree */
    mov     x1, #(3 << 20)          /* CPACR_EL1.FPEN: FP/SIMD untrapped */
    msr     cpacr_el1, x1
    isb
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  ldr     x1, =GUEST_STACKS
    add     x1, x1, #{stack_size}
    mov     sp, x1
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    isb
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      guest_main
3:  wfi
    b       3b

    /*
     * PSCI CPU_ON target, x0 = the context ID. The vCPU's index comes from
     * MPIDR_EL1 in Xen's layout (Aff0 = index % 16, Aff1 = index / 16), so
     * a wrong context ID is reported rather than obeyed.
     */
    .global guest_secondary_entry
guest_secondary_entry:
    mov     x20, x0
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb
    mrs     x1, mpidr_el1
    and     x2, x1, #0xf
    ubfx    x3, x1, #8, #8
    add     x19, x2, x3, lsl #4
    cbz     x19, 4f                 /* vCPU0 never starts here */
    cmp     x19, #{max_vcpus}
    b.hs    4f
    ldr     x1, =GUEST_STACKS
    add     x2, x19, #1
    mov     x3, #{stack_size}
    madd    x1, x2, x3, x1
    mov     sp, x1
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    isb
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    mov     x1, x20
    bl      guest_secondary_main
4:  wfi
    b       4b
"#,
    stack_size = const STACK_SIZE,
    max_vcpus = const MAX_VCPUS,
);

/// vCPU0 after the entry code: find the console, run every case, report.
#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    arch::set_cpu_index(0);
    xencases::set_dtb(dtb);
    let dt = match dt::Dt::at(dtb) {
        Ok(dt) => dt,
        Err(why) => {
            // Both hypervisors put the vPL011 here; try to say why.
            console::init(0x2200_0000);
            report::case("dt.parse", || Err(why));
            report::finish();
        }
    };
    let uart = dt
        .find(|n| n.depth == 1 && n.is_compatible("arm,sbsa-uart"))
        .ok()
        .flatten()
        .and_then(|n| n.cells("reg"))
        .filter(|r| r.len() >= 2)
        .map(|r| r.num(0, 2) as usize);
    let Some(uart) = uart else {
        // Nothing to print on: a run with no output fails anyway.
        psci::system_off();
    };
    console::init(uart);
    let bootargs = dt
        .top("chosen")
        .ok()
        .flatten()
        .and_then(|c| c.str("bootargs"))
        .unwrap_or("");
    let mut vcpus = 0;
    let _ = dt.each(|n| {
        if n.depth == 2 && n.ancestor(1) == "cpus" && n.str("device_type") == Some("cpu") {
            vcpus += 1;
        }
    });
    println!("abi guest: device tree at {dtb:#x}, {vcpus} vCPU(s), bootargs \"{bootargs}\"");
    cases::gic_from_dt(&dt);
    cases::run(&cases::Ctx {
        dt: &dt,
        bootargs,
        vcpus,
    });
    report::finish()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if arch::cpu_index() == 0 {
        report::fatal(msg!("panic: {info}"));
    }
    loop {
        arch::irq_disable();
        arch::wfi();
    }
}
