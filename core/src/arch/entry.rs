//! The arm64 Image header and the first instructions of every CPU.
//!
//! The boot CPU enters at `_start` with the device tree's address in x0
//! (arm64 Linux boot protocol, so QEMU `-kernel` and U-Boot `booti` both
//! work). Secondary CPUs enter at `oxen_secondary_entry` through PSCI
//! CPU_ON with their index in x0.
//!
//! The image runs wherever it was loaded, at any 4 KiB-aligned address
//! (the header tells loaders a 2 MiB-aligned one anywhere in RAM is fine):
//! it is linked as a position-independent executable, and before anything
//! else the boot CPU applies the image's own `R_AARCH64_RELATIVE`
//! relocations for the difference between where it runs and where it was
//! linked. Code before that point uses only PC-relative addressing. With
//! the MMU on, Oxen's map is the identity, so run-time addresses are the
//! physical ones throughout.

use core::arch::global_asm;

pub use crate::budget::{MAX_CPUS, STACK_SIZE};

#[repr(C, align(16))]
pub struct BootStack(pub [u8; STACK_SIZE]);

/// Where the secondary CPUs' stacks start: `MAX_CPUS` stacks of
/// `STACK_SIZE` bytes, indexed by the CPU's position in `/cpus`, in free RAM
/// the boot CPU picks (they are not part of the image, so its `image_size`
/// stays small). Written by the boot CPU with its MMU off, so that
/// secondaries read it from memory with theirs still off.
#[unsafe(no_mangle)]
pub static mut OXEN_STACKS_BASE: u64 = 0;

/// The boot CPU's stack, used until (and after) it finds its own index.
#[unsafe(no_mangle)]
pub static mut OXEN_BOOT_STACK: BootStack = BootStack([0; STACK_SIZE]);

/// MAIR, TCR, TTBR0 and SCTLR for EL2, written by the boot CPU before its MMU
/// is on (so they are in memory, not only in a cache) and read by each
/// secondary CPU with its MMU still off.
#[unsafe(no_mangle)]
pub static mut OXEN_MMU_CONFIG: [u64; 4] = [0; 4];

/// Sets where the secondary CPUs' stacks are.
///
/// # Safety
///
/// Boot CPU, MMU off (so the value reaches memory), before any secondary
/// starts; `base` is the start of a stack per CPU, RAM used for
/// nothing else.
pub(super) unsafe fn set_stacks_base(base: u64) {
    // SAFETY: one CPU runs, so nothing reads the static concurrently.
    unsafe { *core::ptr::addr_of_mut!(OXEN_STACKS_BASE) = base };
}

/// Defines the board's entry point: `oxen_core::board!(BOARD);` in the
/// board binary, with `BOARD` a [`crate::boot::Board`].
#[macro_export]
macro_rules! board {
    ($board:expr) => {
        #[unsafe(no_mangle)]
        extern "C" fn oxen_board_main(dtb: usize) -> ! {
            $crate::boot::primary_main(dtb, &$board)
        }
    };
}

/// A secondary CPU's first Rust code, MMU already on.
#[unsafe(no_mangle)]
extern "C" fn oxen_secondary_main(idx: usize) -> ! {
    crate::boot::secondary_main(idx)
}

/// Where secondary CPUs start (for PSCI `CPU_ON`).
pub fn secondary_entry_pa() -> u64 {
    unsafe extern "C" {
        fn oxen_secondary_entry();
    }
    oxen_secondary_entry as *const () as u64
}

/// The top of the boot CPU's stack.
pub fn boot_stack_top() -> usize {
    core::ptr::addr_of!(OXEN_BOOT_STACK) as usize + STACK_SIZE
}

/// The top of secondary CPU `idx`'s stack.
pub fn stack_top(idx: usize) -> usize {
    stacks_base() + (idx + 1) * STACK_SIZE
}

fn stacks_base() -> usize {
    // SAFETY: written once by the boot CPU before any secondary starts.
    unsafe { *core::ptr::addr_of!(OXEN_STACKS_BASE) as usize }
}

/// The bounds of each stack, for the backtrace walker.
pub fn stack_bounds() -> impl Iterator<Item = (usize, usize)> {
    let boot = core::ptr::addr_of!(OXEN_BOOT_STACK) as usize;
    let stacks = stacks_base();
    let cpus = super::heap::stack_count();
    core::iter::once((boot, boot + STACK_SIZE))
        .chain((0..cpus).map(move |i| (stacks + i * STACK_SIZE, stacks + (i + 1) * STACK_SIZE)))
}

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    /* arm64 Image header (Documentation/arch/arm64/booting.rst layout). */
    b       oxen_primary_entry      /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset: runs at the 2 MiB-aligned address it is loaded at */
    .quad   _image_size             /* image_size: bytes from _start to the end of BSS */
    .quad   0xa                     /* flags: little-endian, 4 KiB pages, anywhere in RAM */
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
    movz    x1, #0x0830
    movk    x1, #0x30c5, lsl #16
    msr     sctlr_el2, x1
    isb

    /* Relocate: x1 = run-time minus link-time address of _start. The
       linker applied every relocation for the link address already
       (--apply-dynamic-relocs), so an image loaded there has nothing to
       do, and any other place adds the same delta to each pointer. */
    adr     x1, _start
    adrp    x2, oxen_link_base
    ldr     x2, [x2, :lo12:oxen_link_base]
    sub     x1, x1, x2
    cbz     x1, 9f
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
1:  cmp     x2, x3
    b.hs    2f
    ldp     x4, x5, [x2], #16       /* r_offset, r_info */
    ldr     x6, [x2], #8            /* r_addend */
    cmp     w5, #1027               /* R_AARCH64_RELATIVE */
    b.ne    oxen_park               /* the linker emits no other kind */
    add     x4, x4, x1
    add     x6, x6, x1
    str     x6, [x4]
    b       1b
2:  /* The packed form (SHT_RELR) the linker uses for most of them: an
       even word is the link address of a pointer to relocate, and the
       63 pointers after it are covered by the odd bitmap words that
       follow (bit n: the pointer n-1 words on). */
    adrp    x2, __relr_start
    add     x2, x2, :lo12:__relr_start
    adrp    x3, __relr_end
    add     x3, x3, :lo12:__relr_end
    mov     x7, xzr                 /* where the next bitmap starts */
6:  cmp     x2, x3
    b.hs    9f
    ldr     x4, [x2], #8
    tbnz    x4, #0, 7f
    add     x5, x4, x1
    ldr     x6, [x5]
    add     x6, x6, x1
    str     x6, [x5], #8
    mov     x7, x5
    b       6b
7:  lsr     x4, x4, #1
    mov     x5, x7
8:  cbz     x4, 10f
    tbz     x4, #0, 11f
    ldr     x6, [x5]
    add     x6, x6, x1
    str     x6, [x5]
11: add     x5, x5, #8
    lsr     x4, x4, #1
    b       8b
10: add     x7, x7, #(63 * 8)
    b       6b
9:
    adrp    x1, OXEN_BOOT_STACK
    add     x1, x1, :lo12:OXEN_BOOT_STACK
    add     x1, x1, #{stack_size}
    mov     sp, x1

    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:
    adrp    x1, oxen_vectors
    add     x1, x1, :lo12:oxen_vectors
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
    movz    x1, #0x0830
    movk    x1, #0x30c5, lsl #16
    msr     sctlr_el2, x1
    isb

    adrp    x1, OXEN_STACKS_BASE
    ldr     x1, [x1, :lo12:OXEN_STACKS_BASE]
    add     x2, x19, #1
    mov     x3, #{stack_size}
    madd    x1, x2, x3, x1
    mov     sp, x1

    adrp    x1, oxen_vectors
    add     x1, x1, :lo12:oxen_vectors
    msr     vbar_el2, x1

    adrp    x1, OXEN_MMU_CONFIG
    add     x1, x1, :lo12:OXEN_MMU_CONFIG
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
5:  wfe
    b       5b

    .section .data.oxen_boot_claimed, "aw"
    .balign 4
oxen_boot_claimed:
    .long   0

    /* The link-time address of _start, as a constant: the linker script
       defines the absolute symbol, so this word carries no relocation. */
    .section .rodata.oxen_link_base, "a"
    .balign 8
oxen_link_base:
    .quad   _link_base
"#,
    stack_size = const STACK_SIZE,
);
