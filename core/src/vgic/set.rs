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
    #[inline(always)]
    pub fn insert(&mut self, intid: u32) {
        let i = intid as usize;
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
            self.summary |= 1 << (i / 64);
        }
    }

    #[inline(always)]
    pub fn remove(&mut self, intid: u32) {
        let i = intid as usize;
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
            if *w == 0 {
                self.summary &= !(1 << (i / 64));
            }
        }
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.summary == 0
    }

    #[cfg(test)]
    pub fn contains(&self, intid: u32) -> bool {
        let i = intid as usize;
        i < WORDS * 64 && self.words[i / 64] & 1 << (i % 64) != 0
    }

    /// The lowest member at or above `from`, if any. A walk that calls this
    /// with one past the last member it saw may change the set between
    /// calls (a flush drops stale members as it goes) and copies nothing:
    /// the exit path used to copy the whole bitmap to iterate it.
    #[inline(always)]
    pub fn first_from(&self, from: u32) -> Option<u32> {
        let i = from as usize;
        let w = i / 64;
        let here = self.words.get(w)? & (u64::MAX << (i % 64));
        if here != 0 {
            return Some((w * 64) as u32 + here.trailing_zeros());
        }
        // The summary's bits above `w` are the later non-empty words
        // (`w` < WORDS = 16, so the shift stays inside a u32).
        let later = u32::from(self.summary) & !((2u32 << w) - 1);
        if later == 0 {
            return None;
        }
        let w = later.trailing_zeros() as usize;
        let bits = *self.words.get(w)?;
        (bits != 0).then(|| (w * 64) as u32 + bits.trailing_zeros())
    }

    /// The members, lowest first.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut at = Some(0u32);
        core::iter::from_fn(move || {
            let m = self.first_from(at?)?;
            at = m.checked_add(1);
            Some(m)
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
    fn first_from_finds_the_next_member_in_this_or_a_later_word() {
        let mut s = IrqSet::default();
        for i in [5, 63, 64, 700, 1023] {
            s.insert(i);
        }

        assert_eq!(s.first_from(0), Some(5));
        assert_eq!(s.first_from(5), Some(5));
        assert_eq!(s.first_from(6), Some(63));
        assert_eq!(s.first_from(64), Some(64));
        assert_eq!(s.first_from(65), Some(700), "skips the empty words between");
        assert_eq!(s.first_from(701), Some(1023));
        assert_eq!(s.first_from(1024), None, "past the bitmap");
        s.remove(1023);
        assert_eq!(s.first_from(701), None);
    }

    #[test]
    fn empty_set_yields_nothing() {
        assert_eq!(IrqSet::default().iter().next(), None);
        assert!(IrqSet::default().is_empty());
    }
}
