//! The hypervisor heap and the secondary CPUs' stacks: `WORK_AREA_SIZE`
//! bytes of free RAM that the boot CPU picks before the MMU is on (not part
//! of the image, so the image stays small and a loader can put boot modules
//! right after it). Guest memory never comes from here.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use linked_list_allocator::LockedHeap;

use super::cell::BootCell;
use super::{entry, mmu};
use crate::hostdt::early;
use crate::memmap::Range;

pub use crate::budget::HEAP_SIZE;

#[global_allocator]
static ALLOCATOR: Tracked = Tracked {
    fixed: LockedHeap::empty(),
    domains: LockedHeap::empty(),
};

/// The most bytes ever allocated at once (the allocators' own counts).
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Where the domains' reserve lies (see [`add_domain_reserve`]); empty
/// until then.
static RESERVE_START: AtomicUsize = AtomicUsize::new(0);
static RESERVE_END: AtomicUsize = AtomicUsize::new(0);

/// The allocator: the fixed heap of the work area first, then the reserve
/// sized at boot for what the domains can make Oxen hold at their bounds;
/// the high-water mark is noted after each allocation.
struct Tracked {
    fixed: LockedHeap,
    domains: LockedHeap,
}

impl Tracked {
    fn used(&self) -> usize {
        self.fixed.lock().used() + self.domains.lock().used()
    }
}

fn in_reserve(p: *mut u8) -> bool {
    let a = p as usize;
    a >= RESERVE_START.load(Ordering::Acquire) && a < RESERVE_END.load(Ordering::Acquire)
}

// SAFETY: every call is passed on unchanged to the `LockedHeap` that owns
// the memory (the reserve's range says which), which upholds the
// contract; the peak is only counted.
unsafe impl GlobalAlloc for Tracked {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let mut p = unsafe { self.fixed.alloc(layout) };
        if p.is_null() {
            // SAFETY: the caller's contract, passed on.
            p = unsafe { self.domains.alloc(layout) };
        }
        if !p.is_null() {
            PEAK.fetch_max(self.used(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on to the heap `ptr` came
        // from.
        unsafe {
            if in_reserve(ptr) {
                self.domains.dealloc(ptr, layout)
            } else {
                self.fixed.dealloc(ptr, layout)
            }
        }
    }
}

/// Where [`place`] put the work area.
static WORK_AREA: BootCell<Range> = BootCell::new();

pub use crate::hostdt::early::NoWorkArea;

/// Finds RAM for the heap and the stacks (`early::work_area`) and gives
/// the secondary CPUs their stacks there. Once, on the boot CPU, with the
/// MMU off; `None` for a second call.
pub fn place(blob: &[u8], ram: &[Range], dtb: Range) -> Result<Option<Range>, NoWorkArea> {
    let cpus = early::cpu_count(blob)
        .map_err(NoWorkArea::Blob)?
        .min(crate::budget::MAX_CPUS);
    let size = crate::budget::work_area_size(cpus);
    let area = early::work_area(blob, ram, mmu::image_range(), dtb, size)?;
    if !WORK_AREA.set(area) {
        return Ok(None);
    }
    STACKS.store(cpus, Ordering::Relaxed);
    // SAFETY: boot CPU, MMU off, no secondary started yet; the stacks are
    // the end of the work area, RAM that nothing else uses.
    unsafe { entry::set_stacks_base(area.start + HEAP_SIZE as u64) };
    Ok(Some(area))
}

/// Stacks in the work area: one per CPU of `/cpus`.
static STACKS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// How many CPU stacks the work area holds (CPUs with a higher index are
/// not started).
pub fn stack_count() -> usize {
    STACKS.load(Ordering::Relaxed)
}

/// The work area [`place`] chose (empty before).
pub fn work_area() -> Range {
    WORK_AREA.get().unwrap_or_default()
}

static HEAP_READY: AtomicBool = AtomicBool::new(false);

/// Hands the start of the work area to the allocator: once, after
/// [`place`] and with the MMU on (the allocator takes a lock). `false` if
/// there is no work area or the heap already exists.
pub fn init() -> bool {
    let Some(area) = WORK_AREA.get() else {
        return false;
    };
    if HEAP_READY.swap(true, Ordering::AcqRel) {
        return false;
    }
    // SAFETY: the work area's first HEAP_SIZE bytes are RAM (mapped
    // Normal) that `place` chose clear of everything else, and this is the
    // only time they are given away.
    unsafe {
        ALLOCATOR
            .fixed
            .lock()
            .init(area.start as *mut u8, HEAP_SIZE)
    };
    true
}

static RESERVE_READY: AtomicBool = AtomicBool::new(false);

/// Adds `r` to the heap as the domains' reserve: once, after [`init`], on
/// the boot CPU before any domain exists. `r` must be RAM outside the
/// hypervisor and the boot modules (checked: `arch::mem` then counts it
/// as the hypervisor's, so nothing writes it for a guest). `false` when
/// refused.
pub fn add_domain_reserve(r: Range) -> bool {
    if r.is_empty() || !HEAP_READY.load(Ordering::Acquire) || !super::mem::claim_for_hypervisor(r) {
        return false;
    }
    if RESERVE_READY.swap(true, Ordering::AcqRel) {
        return false;
    }
    RESERVE_START.store(r.start as usize, Ordering::Release);
    RESERVE_END.store(r.end as usize, Ordering::Release);
    // SAFETY: RAM (mapped Normal) that was free and is now the
    // hypervisor's alone (claimed above), given away once.
    unsafe {
        ALLOCATOR
            .domains
            .lock()
            .init(r.start as *mut u8, r.size() as usize)
    };
    true
}

/// Bytes currently allocated.
pub fn used() -> usize {
    ALLOCATOR.used()
}

/// Bytes currently allocated, unless another CPU holds the allocator.
pub fn try_used() -> Option<usize> {
    let fixed = ALLOCATOR.fixed.try_lock().map(|h| h.used())?;
    let domains = ALLOCATOR.domains.try_lock().map(|h| h.used())?;
    Some(fixed + domains)
}

/// Bytes the heap holds in all: the fixed heap and the domains' reserve.
pub fn size() -> usize {
    HEAP_SIZE + RESERVE_END.load(Ordering::Acquire) - RESERVE_START.load(Ordering::Acquire)
}

/// The most bytes allocated at once since boot (the high-water mark).
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}
