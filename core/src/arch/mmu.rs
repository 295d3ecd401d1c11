//! The EL2 stage-1 MMU: an identity map (RAM Normal write-back, everything
//! else Device) turned on by the boot CPU before anything takes a lock, and
//! by each secondary CPU in its entry code from the same tables.

use core::arch::asm;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, Ordering};

use super::{cpu, entry};
use crate::memmap::Range;
use crate::pagetable::{IdentityMap, MAIR_EL2, MapError, MemType, PAGE_SIZE, Table, VA_BITS};

const POOL_TABLES: usize = 64;

#[repr(C, align(4096))]
struct Pool([Table; POOL_TABLES]);

static mut POOL: Pool = Pool([const { Table::ZERO }; POOL_TABLES]);

const SCTLR_RES1: u64 = 0x30c5_0830;
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_SA: u64 = 1 << 3;
const SCTLR_I: u64 = 1 << 12;

unsafe extern "C" {
    static _text: u8;
    static _end: u8;
}

/// The hypervisor image in memory, from its first byte to the end of BSS.
pub fn image_range() -> Range {
    // Only the addresses of the linker-defined symbols are taken.
    let (start, end) = (
        core::ptr::addr_of!(_text) as u64,
        core::ptr::addr_of!(_end) as u64,
    );
    Range { start, end }
}

fn tcr(pa_bits: u32) -> u64 {
    let ps: u64 = match pa_bits {
        32 => 0,
        36 => 1,
        40 => 2,
        42 => 3,
        44 => 4,
        48 => 5,
        _ => 6,
    };
    let t0sz = u64::from(64 - VA_BITS);
    (1 << 31) | (1 << 23) // RES1
        | (ps << 16)
        // TG0 = 0b00: 4 KiB granule
        | (0b11 << 12) // SH0: inner shareable
        | (0b01 << 10) // ORGN0: write-back, write-allocate
        | (0b01 << 8)  // IRGN0: write-back, write-allocate
        | t0sz
}

fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Discards any cached copy of `r`, so that memory written with the MMU off
/// is what the CPU sees once caches are on.
fn invalidate_dcache(r: Range) {
    let line = dcache_line();
    let mut a = r.start & !(line - 1);
    while a < r.end {
        // SAFETY: DC IVAC on an address whose contents are already in memory
        // (written with caches off) loses nothing.
        unsafe { asm!("dc ivac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    // SAFETY: a barrier only.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Set once the boot CPU turned its MMU on.
static BOOT_MMU_ON: AtomicBool = AtomicBool::new(false);

/// Builds the identity map and turns the MMU and caches on: on the boot
/// CPU, once (a second call fails), before any other CPU runs (the entry
/// code lets only one CPU reach here; secondaries start later). `ram` is
/// the memory the device tree describes and `dtb` the tree in use.
pub fn enable_boot(ram: &[Range], dtb: Range) -> Result<usize, MapError> {
    // Plain load and store: exclusive accesses are not safe with the MMU
    // off, and only this CPU runs.
    if BOOT_MMU_ON.load(Ordering::Acquire) {
        return Err(MapError::AlreadyOn);
    }
    BOOT_MMU_ON.store(true, Ordering::Release);
    let pa_bits = cpu::pa_bits();
    // SAFETY: the pool is only touched here, on one CPU, before anything
    // else runs; it is identity-mapped (it is in the image, which is in RAM).
    let pool = unsafe { &mut (*addr_of_mut!(POOL)).0 };
    let pool_pa = pool.as_ptr() as u64;
    let mut map = IdentityMap::new(pool, pool_pa)?;
    let top = 1u64 << pa_bits.min(VA_BITS);
    map.map(Range { start: 0, end: top }, MemType::Device)?;
    let image = image_range();
    for r in ram.iter().chain(core::iter::once(&image)) {
        let r = r.shrink_to(PAGE_SIZE);
        map.map(
            Range {
                start: r.start,
                end: r.end.min(top),
            },
            MemType::Normal,
        )?;
    }
    let used = map.tables_used();
    let config = [
        MAIR_EL2,
        tcr(pa_bits),
        map.root_pa(),
        SCTLR_RES1 | SCTLR_M | SCTLR_C | SCTLR_SA | SCTLR_I,
    ];
    // SAFETY: single CPU, MMU off: this write goes straight to memory, where
    // secondaries (MMU off too) will read it.
    unsafe { *addr_of_mut!(entry::OXEN_MMU_CONFIG) = config };

    invalidate_dcache(image);
    invalidate_dcache(dtb);
    // SAFETY: the tables map all of RAM (including this code, its stack and
    // data) at identical addresses, so execution continues seamlessly.
    unsafe {
        asm!(
            "msr mair_el2, {mair}",
            "msr tcr_el2, {tcr}",
            "msr ttbr0_el2, {ttbr}",
            "isb",
            "tlbi alle2",
            "dsb nsh",
            "isb",
            "msr sctlr_el2, {sctlr}",
            "isb",
            "ic iallu",
            "dsb nsh",
            "isb",
            mair = in(reg) config[0],
            tcr = in(reg) config[1],
            ttbr = in(reg) config[2],
            sctlr = in(reg) config[3],
            options(nostack),
        );
    }
    Ok(used)
}
