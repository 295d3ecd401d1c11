//! The hypervisor heap: a fixed region in BSS, so it exists (and is mapped)
//! before the device tree is read. Guest memory never comes from here.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicUsize, Ordering};

use linked_list_allocator::LockedHeap;

/// Bytes of heap.
pub const HEAP_SIZE: usize = 8 * 1024 * 1024;

#[repr(C, align(4096))]
struct HeapSpace([u8; HEAP_SIZE]);

static mut HEAP_SPACE: HeapSpace = HeapSpace([0; HEAP_SIZE]);

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

/// Hands the heap region to the allocator.
///
/// # Safety
///
/// Once, on the boot CPU, after the MMU is on (the allocator takes a lock).
pub unsafe fn init() {
    // SAFETY: the region is used by nothing else and lives forever.
    unsafe {
        ALLOCATOR
            .0
            .lock()
            .init(addr_of_mut!(HEAP_SPACE).cast::<u8>(), HEAP_SIZE);
    }
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
