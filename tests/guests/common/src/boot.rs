//! The entry code every guest starts with: the arm64 Image header (like
//! Oxen's own, `core/src/arch/entry.rs`), then vCPU 0's way into Rust:
//! FP/SIMD untrapped, BSS cleared, the boot stack, the guest's vectors,
//! `guest_main`.
//!
//! A guest that links this crate defines, for this code to call:
//! - `guest_main`, `#[unsafe(no_mangle)] extern "C" fn(dtb: usize) -> !`:
//!   vCPU 0 with the device tree's address (x0 at entry);
//! - `guest_vectors`: its EL1 vector table, installed when the guest runs
//!   at EL1 (under a hypervisor). With none, QEMU enters the guest at EL2,
//!   where an EL1 table would never be used.
//!
//! Its linker script puts `.text.head` first and provides `_text_offset`,
//! `_image_size`, `__bss_start` and `__bss_end`.

use core::arch::global_asm;

/// Bytes of stack per vCPU: the xenstore cases keep request and reply
/// buffers on it (several KiB deep; there is no heap).
pub const STACK_SIZE: usize = 32 * 1024;

/// One vCPU's stack.
#[repr(C, align(16))]
pub struct Stack([u8; STACK_SIZE]);

impl Stack {
    pub const fn new() -> Self {
        Self([0; STACK_SIZE])
    }
}

impl Default for Stack {
    fn default() -> Self {
        Self::new()
    }
}

/// vCPU 0's stack. Only entry code names it: the code below, and a guest's
/// exception entry that starts again from its top.
#[unsafe(no_mangle)]
static mut GUEST_BOOT_STACK: Stack = Stack::new();

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
2:  ldr     x1, =GUEST_BOOT_STACK
    add     x1, x1, #{stack_size}
    mov     sp, x1
    mrs     x1, CurrentEL
    cmp     x1, #(1 << 2)
    b.ne    3f                      /* with no hypervisor: no EL1 vectors */
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    isb
3:  mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      guest_main
4:  wfi
    b       4b
"#,
    stack_size = const STACK_SIZE,
);
