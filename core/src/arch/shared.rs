//! Memory shared with guests: a 4 KiB page that a guest may read and
//! write at any moment (a shared_info page, a grant-table frame, a page of
//! guest RAM a guest registered with Oxen). Like MMIO, every access is a
//! single atomic operation; this module is where such pages are touched,
//! so the subsystems above it need no `unsafe`.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

/// Bytes in a page.
pub const PAGE: usize = 4096;

/// A page shared with guests, by its (identity-mapped) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedPage {
    pa: u64,
}

fn check(off: usize, size: usize) {
    assert!(
        off.is_multiple_of(size) && off + size <= PAGE,
        "shared-page access of {size} bytes at {off:#x}"
    );
}

macro_rules! accessors {
    ($($load:ident, $store:ident, $or:ident, $and:ident, $cas:ident, $swap:ident: $t:ty, $atomic:ty;)*) => {
        $(
            /// Atomic load (acquire).
            pub fn $load(&self, off: usize) -> $t {
                self.atomic::<$atomic>(off).load(Ordering::Acquire)
            }
            /// Atomic store (release).
            pub fn $store(&self, off: usize, v: $t) {
                self.atomic::<$atomic>(off).store(v, Ordering::Release)
            }
            /// Atomic OR; returns the old value.
            pub fn $or(&self, off: usize, v: $t) -> $t {
                self.atomic::<$atomic>(off).fetch_or(v, Ordering::AcqRel)
            }
            /// Atomic AND; returns the old value.
            pub fn $and(&self, off: usize, v: $t) -> $t {
                self.atomic::<$atomic>(off).fetch_and(v, Ordering::AcqRel)
            }
            /// Atomic compare-and-exchange.
            pub fn $cas(&self, off: usize, old: $t, new: $t) -> Result<$t, $t> {
                self.atomic::<$atomic>(off).compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            }
            /// Atomic exchange; returns the old value.
            pub fn $swap(&self, off: usize, v: $t) -> $t {
                self.atomic::<$atomic>(off).swap(v, Ordering::AcqRel)
            }
        )*
    };
}

/// An atomic type that can overlay shared memory.
trait Overlay {
    const SIZE: usize;
}
impl Overlay for AtomicU8 {
    const SIZE: usize = 1;
}
impl Overlay for AtomicU16 {
    const SIZE: usize = 2;
}
impl Overlay for AtomicU32 {
    const SIZE: usize = 4;
}
impl Overlay for AtomicU64 {
    const SIZE: usize = 8;
}

impl SharedPage {
    /// A handle for the page at `pa`.
    ///
    /// # Safety
    ///
    /// `pa` must be the address of a page-aligned 4 KiB page of RAM that is
    /// mapped at that address and stays allocated for as long as any copy
    /// of the handle is used.
    pub const unsafe fn new(pa: u64) -> Self {
        Self { pa }
    }

    /// The page's address.
    pub fn pa(&self) -> u64 {
        self.pa
    }

    fn atomic<A: Overlay>(&self, off: usize) -> &A {
        check(off, A::SIZE);
        // SAFETY: `new`'s contract keeps the page mapped and allocated; the
        // offset is aligned and inside the page (checked above); atomics
        // of this width have no invalid bit patterns, so overlaying memory
        // a guest writes is sound.
        unsafe { &*((self.pa as usize + off) as *const A) }
    }

    accessors! {
        load_u8, store_u8, fetch_or_u8, fetch_and_u8, compare_exchange_u8, swap_u8: u8, AtomicU8;
        load_u16, store_u16, fetch_or_u16, fetch_and_u16, compare_exchange_u16, swap_u16: u16, AtomicU16;
        load_u32, store_u32, fetch_or_u32, fetch_and_u32, compare_exchange_u32, swap_u32: u32, AtomicU32;
        load_u64, store_u64, fetch_or_u64, fetch_and_u64, compare_exchange_u64, swap_u64: u64, AtomicU64;
    }

    /// Copies `out.len()` bytes from offset `off` (byte by byte: the guest
    /// may change them meanwhile).
    pub fn read(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= PAGE, "shared-page read past the page");
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.load_u8(off + i);
        }
    }

    /// Copies `data` to offset `off`.
    pub fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= PAGE, "shared-page write past the page");
        for (i, b) in data.iter().enumerate() {
            self.store_u8(off + i, *b);
        }
    }

    /// Zeroes the page.
    pub fn zero(&self) {
        for off in (0..PAGE).step_by(8) {
            self.store_u64(off, 0);
        }
    }
}

/// Pages for host tests: leaked, aligned, zeroed allocations.
#[cfg(any(test, feature = "test-pages"))]
pub fn test_page() -> SharedPage {
    #[repr(C, align(4096))]
    struct P([u8; PAGE]);
    let p = alloc::boxed::Box::leak(alloc::boxed::Box::new(P([0; PAGE])));
    // SAFETY: a leaked, page-aligned, 4 KiB allocation lives forever.
    unsafe { SharedPage::new(p as *mut P as u64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomics_see_each_others_writes_at_every_width() {
        let p = test_page();
        p.store_u64(8, 0x1122_3344_5566_7788);
        assert_eq!(p.load_u32(8), 0x5566_7788);
        assert_eq!(p.load_u16(14), 0x1122);
        assert_eq!(p.fetch_or_u64(8, 1 << 63), 0x1122_3344_5566_7788);
        assert_eq!(p.load_u8(15), 0x91);
        assert_eq!(p.compare_exchange_u32(0, 0, 7), Ok(0));
        assert_eq!(p.compare_exchange_u32(0, 0, 9), Err(7));
        assert_eq!(p.swap_u16(2, 5), 0);
        assert_eq!(p.fetch_and_u64(8, 0xff), 0x9122_3344_5566_7788);
    }

    #[test]
    fn byte_copies_and_zero() {
        let p = test_page();
        p.write(4094, b"ab");
        let mut out = [0u8; 2];
        p.read(4094, &mut out);
        assert_eq!(&out, b"ab");
        p.zero();
        assert_eq!(p.load_u16(4094), 0);
    }

    #[test]
    #[should_panic(expected = "shared-page access of 4 bytes at 0x2")]
    fn misaligned_access_is_a_bug_not_silent() {
        test_page().load_u32(2);
    }

    #[test]
    #[should_panic(expected = "shared-page access of 8 bytes at 0x1000")]
    fn access_past_the_page_is_a_bug_not_silent() {
        test_page().load_u64(4096);
    }
}
