//! A set of INTIDs (0..1024) as a bitmap: the interrupts that may want a
//! list register on one vCPU, so that a flush looks only at those.

/// Words of the bitmap: INTIDs 0..1024 cover every SGI, PPI and SPI.
const WORDS: usize = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct IrqSet {
    words: [u64; WORDS],
    /// Bit w set when `words[w]` is not zero, so that an empty set (the
    /// common exit) is one comparison.
    summary: u16,
}

impl IrqSet {
    pub fn insert(&mut self, intid: u32) {
        let i = intid as usize;
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
            self.summary |= 1 << (i / 64);
        }
    }

    pub fn remove(&mut self, intid: u32) {
        let i = intid as usize;
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
            if *w == 0 {
                self.summary &= !(1 << (i / 64));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.summary == 0
    }

    #[cfg(test)]
    pub fn contains(&self, intid: u32) -> bool {
        let i = intid as usize;
        i < WORDS * 64 && self.words[i / 64] & 1 << (i % 64) != 0
    }

    /// The members, lowest first. Iterates a copy, so the set may change
    /// meanwhile.
    pub fn iter(&self) -> impl Iterator<Item = u32> + use<> {
        let words = self.words;
        let summary = self.summary;
        (0..WORDS)
            .filter(move |w| summary & 1 << w != 0)
            .flat_map(move |w| {
                let mut bits = words.get(w).copied().unwrap_or(0);
                core::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    Some((w * 64) as u32 + b)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn iterates_members_in_ascending_order_across_words() {
        let mut s = IrqSet::default();
        for i in [1019, 0, 63, 64, 31, 32, 500] {
            s.insert(i);
        }

        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 31, 32, 63, 64, 500, 1019]);
    }

    #[test]
    fn remove_takes_out_only_that_member() {
        let mut s = IrqSet::default();
        s.insert(40);
        s.insert(41);

        s.remove(40);

        assert!(!s.contains(40));
        assert!(s.contains(41));
        assert_eq!(s.iter().count(), 1);
    }

    #[test]
    fn removing_the_last_members_leaves_an_empty_set() {
        let mut s = IrqSet::default();
        s.insert(3);
        s.insert(700);
        s.remove(3);
        assert!(!s.is_empty());

        s.remove(700);

        assert!(s.is_empty());
        assert_eq!(s, IrqSet::default());
    }

    #[test]
    fn intids_past_the_bitmap_are_ignored() {
        let mut s = IrqSet::default();
        s.insert(1024);
        s.remove(5000);

        assert_eq!(s, IrqSet::default());
        assert!(!s.contains(1024));
    }

    #[test]
    fn empty_set_yields_nothing() {
        assert_eq!(IrqSet::default().iter().next(), None);
        assert!(IrqSet::default().is_empty());
    }
}
