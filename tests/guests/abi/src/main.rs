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
mod gic;
mod psci;
mod report;
mod smp;
mod trap;
mod xen;
mod xencases;
mod xs;
mod xscases;

use core::arch::global_asm;

use oxen_guest_common::boot::{STACK_SIZE, Stack};
use oxen_guest_common::dt::Dt;
use oxen_guest_common::{console, msg, println};
// `crate::ensure` for the cases: the macro is the common report's.
pub(crate) use oxen_guest_common::ensure;

use smp::MAX_VCPUS;

/// Secondary vCPU i runs on `GUEST_STACKS[i - 1]`, vCPU0 on the common
/// crate's boot stack (only the entry code names them).
#[unsafe(no_mangle)]
static mut GUEST_STACKS: [Stack; MAX_VCPUS - 1] = [const { Stack::new() }; MAX_VCPUS - 1];

// vCPU0 comes in through the common crate's entry code
// (`oxen_guest_common::boot`); secondaries come in here.
global_asm!(
    r#"
    /*
     * PSCI CPU_ON target, x0 = the context ID. The vCPU's index comes from
     * MPIDR_EL1 in Xen's layout (Aff0 = index % 16, Aff1 = index / 16), so
     * a wrong context ID is reported rather than obeyed.
     */
    .section .text.guest_secondary_entry, "ax"
    .balign 4
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
    cbz     x19, 1f                 /* vCPU0 never starts here */
    cmp     x19, #{max_vcpus}
    b.hs    1f
    ldr     x1, =GUEST_STACKS       /* the top of GUEST_STACKS[x19 - 1] */
    mov     x3, #{stack_size}
    madd    x1, x19, x3, x1
    mov     sp, x1
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    isb
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    mov     x1, x20
    bl      guest_secondary_main
1:  wfi
    b       1b
"#,
    stack_size = const STACK_SIZE,
    max_vcpus = const MAX_VCPUS,
);

/// vCPU0 after the entry code: find the console, run every case, report.
#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    arch::set_cpu_index(0);
    xencases::set_dtb(dtb);
    let dt = match Dt::at(dtb) {
        Ok(dt) => dt,
        Err(why) => {
            console::init(console::VPL011_BASE);
            report::case("dt.parse", || Err(why));
            report::finish();
        }
    };
    let Some(uart) = dt.top_base(|n| n.is_compatible("arm,sbsa-uart")) else {
        // Nothing to print on: a run with no output fails anyway.
        psci::system_off();
    };
    console::init(uart);
    let bootargs = dt.bootargs();
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
