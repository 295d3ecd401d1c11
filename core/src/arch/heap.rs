//! The hypervisor heap: `HEAP_SIZE` bytes of free RAM that the boot CPU
//! picks before the MMU is on (not part of the image, so the image stays
//! small and a loader can put boot modules right after it). Guest memory
//! never comes from here.

use linked_list_allocator::LockedHeap;

/// Bytes of heap.
pub const HEAP_SIZE: usize = 8 * 1024 * 1024;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Hands `HEAP_SIZE` bytes at `base` to the allocator.
///
/// # Safety
///
/// Once, on the boot CPU, after the MMU is on (the allocator takes a lock);
/// `base` is the start of `HEAP_SIZE` bytes of RAM, mapped Normal, that
/// nothing else uses, ever.
pub unsafe fn init(base: usize) {
    // SAFETY: the caller gives the region to the heap for good.
    unsafe { ALLOCATOR.lock().init(base as *mut u8, HEAP_SIZE) };
}

/// Bytes currently allocated.
pub fn used() -> usize {
    ALLOCATOR.lock().used()
}
