//! The arm64 Image header and the first instructions of every CPU.
//!
//! The boot CPU enters at `_start` with the device tree's address in x0
//! (arm64 Linux boot protocol, so QEMU `-kernel` and U-Boot `booti` both
//! work). Secondary CPUs enter at `oxen_secondary_entry` through PSCI
//! CPU_ON with their index in x0.

use core::arch::global_asm;

/// Bytes of stack each CPU gets.
pub const STACK_SIZE: usize = 64 * 1024;
/// CPUs Oxen can bring up (secondaries get `STACKS[index]`).
pub const MAX_CPUS: usize = 8;

#[repr(C, align(16))]
pub struct Stacks(pub [[u8; STACK_SIZE]; MAX_CPUS]);

#[repr(C, align(16))]
pub struct BootStack(pub [u8; STACK_SIZE]);

/// Per-CPU stacks, indexed by the CPU's position in `/cpus`.
#[unsafe(no_mangle)]
pub static mut OXEN_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_CPUS]);

/// The boot CPU's stack, used until (and after) it finds its own index.
#[unsafe(no_mangle)]
pub static mut OXEN_BOOT_STACK: BootStack = BootStack([0; STACK_SIZE]);

/// MAIR, TCR, TTBR0 and SCTLR for EL2, written by the boot CPU before its MMU
/// is on (so they are in memory, not only in a cache) and read by each
/// secondary CPU with its MMU still off.
#[unsafe(no_mangle)]
pub static mut OXEN_MMU_CONFIG: [u64; 4] = [0; 4];

/// The bounds of each stack, for the backtrace walker.
pub fn stack_bounds() -> impl Iterator<Item = (usize, usize)> {
    let boot = core::ptr::addr_of!(OXEN_BOOT_STACK) as usize;
    let stacks = core::ptr::addr_of!(OXEN_STACKS) as usize;
    core::iter::once((boot, boot + STACK_SIZE))
        .chain((0..MAX_CPUS).map(move |i| (stacks + i * STACK_SIZE, stacks + (i + 1) * STACK_SIZE)))
}

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    /* arm64 Image header (Documentation/arch/arm64/booting.rst layout). */
    b       oxen_primary_entry      /* code0 */
    .long   0                       /* code1 */
    .quad   _text_offset            /* text_offset: load offset from a 2 MiB aligned base */
    .quad   _image_size             /* image_size: bytes from _start to the end of BSS */
    .quad   0x2                     /* flags: little-endian, 4 KiB pages, near the base of RAM */
    .quad   0, 0, 0                 /* res2..res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5: no PE header */

oxen_primary_entry:
    mov     x19, x0                 /* device tree */
    /* Only one CPU may take this path; any other that arrives here parks. */
    adr     x1, oxen_boot_claimed
    ldr     w2, [x1]
    cbnz    w2, oxen_park
    mov     w2, #1
    str     w2, [x1]
    dsb     sy

    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    oxen_park               /* not at EL2: nothing sensible to do */

    /* EL1 is AArch64; nothing traps to EL2 yet. */
    mov     x1, #(1 << 31)
    msr     hcr_el2, x1
    /* Known SCTLR_EL2: MMU and caches off, little-endian, RES1 bits set. */
    ldr     x1, =0x30c50830
    msr     sctlr_el2, x1
    isb

    ldr     x1, =OXEN_BOOT_STACK
    add     x1, x1, #{stack_size}
    mov     sp, x1

    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    ldr     x1, =oxen_vectors
    msr     vbar_el2, x1
    isb

    mov     x29, xzr                /* end of the frame-pointer chain */
    mov     x30, xzr
    mov     x0, x19
    bl      oxen_board_main
    b       oxen_park

    .global oxen_secondary_entry
oxen_secondary_entry:
    mov     x19, x0                 /* this CPU's index */
    mov     x1, #(1 << 31)
    msr     hcr_el2, x1
    ldr     x1, =0x30c50830
    msr     sctlr_el2, x1
    isb

    ldr     x1, =OXEN_STACKS
    add     x2, x19, #1
    mov     x3, #{stack_size}
    madd    x1, x2, x3, x1
    mov     sp, x1

    ldr     x1, =oxen_vectors
    msr     vbar_el2, x1

    ldr     x1, =OXEN_MMU_CONFIG
    ldr     x2, [x1, #0]
    msr     mair_el2, x2
    ldr     x2, [x1, #8]
    msr     tcr_el2, x2
    ldr     x2, [x1, #16]
    msr     ttbr0_el2, x2
    isb
    tlbi    alle2
    dsb     nsh
    isb
    ldr     x2, [x1, #24]
    msr     sctlr_el2, x2
    isb
    ic      iallu
    dsb     nsh
    isb

    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      oxen_secondary_main
    b       oxen_park

oxen_park:
    msr     daifset, #0xf
3:  wfe
    b       3b

    .section .data.oxen_boot_claimed, "aw"
    .balign 4
oxen_boot_claimed:
    .long   0
"#,
    stack_size = const STACK_SIZE,
);
