//! Access to physical memory through the identity map: boot modules,
//! guest RAM and stage-2 table pages. Every function here checks nothing
//! about ownership — callers pass ranges they own (validated RAM ranges of a
//! domain, boot modules described by the device tree).

use crate::memmap::Range;

/// The bytes of a physical range (e.g. a boot module).
///
/// # Safety
///
/// `r` must be RAM (identity-mapped Normal memory) that nothing writes
/// while the slice lives.
pub unsafe fn bytes(r: Range) -> &'static [u8] {
    // SAFETY: per the contract the range is readable RAM that stays unchanged.
    unsafe { core::slice::from_raw_parts(r.start as *const u8, r.size() as usize) }
}

/// A mutable view of a physical range (e.g. guest RAM being loaded).
///
/// # Safety
///
/// `r` must be RAM owned by the caller, with no other live reference to it.
pub unsafe fn bytes_mut(r: Range) -> &'static mut [u8] {
    // SAFETY: per the contract the range is exclusively owned RAM.
    unsafe { core::slice::from_raw_parts_mut(r.start as *mut u8, r.size() as usize) }
}

/// One 4 KiB translation-table page at `pa`.
///
/// # Safety
///
/// `pa` must be a page-aligned table page owned by the caller.
pub unsafe fn table<'a>(pa: u64) -> &'a mut [u64; 512] {
    // SAFETY: per the contract `pa` is an exclusively owned, aligned page.
    unsafe { &mut *(pa as *mut [u64; 512]) }
}

/// Zeroes a physical range, with `DC ZVA` (a whole block per instruction)
/// where the CPU permits it: a domain's RAM is zeroed at every build, and
/// the compiler's `memset` stores 8 bytes per three instructions.
///
/// # Safety
///
/// `r` must be RAM (identity-mapped Normal memory) owned by the caller,
/// with no live reference to it.
pub unsafe fn zero(r: Range) {
    let dczid: u64;
    // SAFETY: reading DCZID_EL0 has no side effects.
    unsafe {
        core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags))
    };
    let block = 4u64 << (dczid & 0xf);
    let prohibited = dczid & (1 << 4) != 0;
    let first = r.start.next_multiple_of(block);
    let last = r.end & !(block - 1);
    if prohibited || first >= last {
        // SAFETY: per the contract the range is exclusively owned RAM.
        unsafe { bytes_mut(r) }.fill(0);
        return;
    }
    for edge in [
        Range {
            start: r.start,
            end: first,
        },
        Range {
            start: last,
            end: r.end,
        },
    ] {
        // SAFETY: a part of the caller's range.
        unsafe { bytes_mut(edge) }.fill(0);
    }
    let mut a = first;
    while a < last {
        // SAFETY: `a` is a block-aligned address inside the caller's RAM;
        // DC ZVA writes zeros to that one block, as stores would.
        unsafe { core::arch::asm!("dc zva, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += block;
    }
}
