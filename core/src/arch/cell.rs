//! A cell for what the boot CPU sets up before any other CPU runs and
//! before locks may be used (with the MMU off, exclusive accesses are not
//! architecturally safe): the early console.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A value the boot CPU may set once, before the cell is sealed, and
/// anyone may read; it never changes once set.
///
/// Only the boot CPU runs before [`BootCell::seal`] (the entry code parks
/// any other CPU that arrives at the boot entry, and secondaries are
/// started later, by the boot CPU, once locks work); a second `set`, or
/// one after sealing, is refused, so no write ever races a read or meets
/// a reference handed out by [`BootCell::get_ref`].
pub struct BootCell<T: Copy> {
    value: UnsafeCell<Option<T>>,
    sealed: AtomicBool,
    set: AtomicBool,
}

// SAFETY: writes happen only before sealing, on the one CPU running then;
// afterwards the value is only read.
unsafe impl<T: Copy + Send + Sync> Sync for BootCell<T> {}

impl<T: Copy> BootCell<T> {
    pub const fn new() -> Self {
        Self {
            value: UnsafeCell::new(None),
            sealed: AtomicBool::new(false),
            set: AtomicBool::new(false),
        }
    }

    /// Sets the value; `false` (and no change) if it was set or sealed.
    pub fn set(&self, v: T) -> bool {
        // Plain loads and stores: no exclusive access, usable with the MMU
        // off.
        if self.sealed.load(Ordering::Acquire) || self.set.load(Ordering::Acquire) {
            return false;
        }
        // SAFETY: not sealed, so only the boot CPU runs (see the type's
        // documentation); never set, so no reference to the value exists.
        unsafe { *self.value.get() = Some(v) };
        self.set.store(true, Ordering::Release);
        true
    }

    /// The value, by reference: it never changes once set.
    pub fn get_ref(&self) -> Option<&T> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: set, so never written again (see `set`).
        unsafe { (*self.value.get()).as_ref() }
    }

    /// Fixes the value for good.
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    pub fn get(&self) -> Option<T> {
        // SAFETY: written only before sealing by the one running CPU; a
        // read either is that CPU's own or comes after sealing.
        unsafe { *self.value.get() }
    }
}

impl<T: Copy> Default for BootCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cell_keeps_its_value() {
        let c = BootCell::new();
        assert_eq!(c.get(), None);
        assert_eq!(c.get_ref(), None);
        assert!(c.set(1));
        assert!(!c.set(2));
        c.seal();
        assert_eq!(c.get(), Some(1));
        assert_eq!(c.get_ref(), Some(&1));
        let d = BootCell::new();
        d.seal();
        assert!(!d.set(3));
        assert_eq!(d.get(), None);
    }
}
