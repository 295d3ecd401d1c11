//! The hypervisor heap: a fixed region in BSS, so it exists (and is mapped)
//! before the device tree is read. Guest memory never comes from here.

use core::ptr::addr_of_mut;

use linked_list_allocator::LockedHeap;

/// Bytes of heap.
pub const HEAP_SIZE: usize = 8 * 1024 * 1024;

#[repr(C, align(4096))]
struct HeapSpace([u8; HEAP_SIZE]);

static mut HEAP_SPACE: HeapSpace = HeapSpace([0; HEAP_SIZE]);

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Hands the heap region to the allocator.
///
/// # Safety
///
/// Once, on the boot CPU, after the MMU is on (the allocator takes a lock).
pub unsafe fn init() {
    // SAFETY: the region is used by nothing else and lives forever.
    unsafe {
        ALLOCATOR
            .lock()
            .init(addr_of_mut!(HEAP_SPACE).cast::<u8>(), HEAP_SIZE);
    }
}

/// Bytes currently allocated.
pub fn used() -> usize {
    ALLOCATOR.lock().used()
}
