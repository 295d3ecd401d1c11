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

/// Bytes of heap.
pub const HEAP_SIZE: usize = 8 * 1024 * 1024;

/// Bytes of the work area: the heap, then the secondary CPUs' stacks.
pub const WORK_AREA_SIZE: u64 = (HEAP_SIZE + entry::STACKS_SIZE) as u64;

#[global_allocator]
static ALLOCATOR: Tracked = Tracked(LockedHeap::empty());

/// The most bytes ever allocated at once (the allocator's own count).
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The allocator, noting the high-water mark after each allocation.
struct Tracked(LockedHeap);

// SAFETY: every call is passed on unchanged to `LockedHeap`, which upholds
// the contract; the peak is only counted.
unsafe impl GlobalAlloc for Tracked {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            PEAK.fetch_max(self.0.lock().used(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

/// Where [`place`] put the work area.
static WORK_AREA: BootCell<Range> = BootCell::new();

/// Why no work area was found (shown before the heap exists, so no
/// `String`).
pub enum NoWorkArea {
    Blob(crate::hostdt::FdtError),
    TooManyRanges,
    NoRoom,
    Twice,
}

impl core::fmt::Display for NoWorkArea {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Blob(e) => write!(f, "the device tree {e}"),
            Self::TooManyRanges => write!(
                f,
                "/chosen and /reserved-memory place more than {} ranges in memory; Oxen cannot \
                 tell where its heap may go",
                early::MAX_OCCUPIED
            ),
            Self::NoRoom => write!(
                f,
                "no free {} MiB of RAM for the hypervisor's heap and stacks: the image, the \
                 device tree, the boot modules and the reservations leave none",
                WORK_AREA_SIZE >> 20
            ),
            Self::Twice => f.write_str("the work area was placed twice"),
        }
    }
}

/// Finds RAM for the heap and the stacks that holds nothing the device
/// tree or the loader put there — the highest 2 MiB-aligned fit in `ram`,
/// away from the image, the tree `blob` (at `dtb`) and everything the tree
/// says is occupied (boot modules, reservations), which is where loaders
/// put the least — and gives the secondary CPUs their stacks there. Once,
/// on the boot CPU, with the MMU off.
pub fn place(blob: &[u8], ram: &[Range], dtb: Range) -> Result<Range, NoWorkArea> {
    let occupied = early::occupied(blob).map_err(NoWorkArea::Blob)?;
    if occupied.overflow {
        return Err(NoWorkArea::TooManyRanges);
    }
    let mut taken = [Range::default(); early::MAX_OCCUPIED + 2];
    taken[0] = mmu::image_range();
    taken[1] = dtb;
    for (t, r) in taken[2..].iter_mut().zip(occupied.iter()) {
        *t = *r;
    }
    let taken = &taken[..2 + occupied.len];
    let area = crate::memmap::highest_fit(ram, taken, WORK_AREA_SIZE, 2 << 20)
        .ok_or(NoWorkArea::NoRoom)?;
    if !WORK_AREA.set(area) {
        return Err(NoWorkArea::Twice);
    }
    // SAFETY: boot CPU, MMU off, no secondary started yet; the stacks are
    // the end of the work area, RAM that nothing else uses.
    unsafe { entry::set_stacks_base(area.start + HEAP_SIZE as u64) };
    Ok(area)
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
    unsafe { ALLOCATOR.0.lock().init(area.start as *mut u8, HEAP_SIZE) };
    true
}

/// Bytes currently allocated.
pub fn used() -> usize {
    ALLOCATOR.0.lock().used()
}

/// Bytes currently allocated, unless another CPU holds the allocator.
pub fn try_used() -> Option<usize> {
    ALLOCATOR.0.try_lock().map(|h| h.used())
}

/// The most bytes allocated at once since boot (the high-water mark).
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}
