//! Physical address ranges and sets of them: RAM banks, reserved regions and
//! what is left free.

use alloc::vec::Vec;
use core::fmt;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// `[start, start + size)`, or `None` if it wraps the address space.
    pub fn with_size(start: u64, size: u64) -> Option<Self> {
        Some(Self {
            start,
            end: start.checked_add(size)?,
        })
    }

    pub fn size(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn covers(&self, other: &Range) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Rounds the start up and the end down to `align` (a power of two).
    pub fn shrink_to(&self, align: u64) -> Range {
        let start = self.start.next_multiple_of(align);
        let end = self.end & !(align - 1);
        Range {
            start,
            end: end.max(start),
        }
    }
}

impl fmt::Debug for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#012x}-{:#012x}", self.start, self.end)
    }
}

/// A sorted set of disjoint, non-empty ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range>,
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `r`, merging with neighbours it touches or overlaps.
    pub fn insert(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        let mut merged = r;
        self.ranges.retain(|x| {
            if x.start <= merged.end && merged.start <= x.end {
                merged.start = merged.start.min(x.start);
                merged.end = merged.end.max(x.end);
                false
            } else {
                true
            }
        });
        let pos = self.ranges.partition_point(|x| x.start < merged.start);
        self.ranges.insert(pos, merged);
    }

    /// Removes every address of `r` from the set.
    pub fn remove(&mut self, r: Range) {
        if r.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for x in self.ranges.drain(..) {
            if !x.overlaps(&r) {
                out.push(x);
                continue;
            }
            if x.start < r.start {
                out.push(Range {
                    start: x.start,
                    end: r.start,
                });
            }
            if r.end < x.end {
                out.push(Range {
                    start: r.end,
                    end: x.end,
                });
            }
        }
        self.ranges = out;
    }

    pub fn iter(&self) -> impl Iterator<Item = &Range> {
        self.ranges.iter()
    }

    /// Total bytes in the set.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(Range::size).sum()
    }

    /// Whether every address of `r` is in the set.
    pub fn covers(&self, r: &Range) -> bool {
        self.ranges.iter().any(|x| x.covers(r))
    }
}

impl FromIterator<Range> for RangeSet {
    fn from_iter<I: IntoIterator<Item = Range>>(iter: I) -> Self {
        let mut s = Self::new();
        for r in iter {
            s.insert(r);
        }
        s
    }
}

/// The highest `size` bytes, starting at a multiple of `align` (a power of
/// two), that lie inside one of `ram` and overlap none of `taken`. Needs no
/// heap: it places the heap.
pub fn highest_fit(ram: &[Range], taken: &[Range], size: u64, align: u64) -> Option<Range> {
    // The best candidate ends either at a bank's end or where something
    // taken begins; each is tried with its start aligned down.
    let ends = ram
        .iter()
        .map(|r| r.end)
        .chain(taken.iter().map(|t| t.start));
    let mut best: Option<Range> = None;
    for end in ends {
        let Some(start) = end.checked_sub(size).map(|s| s & !(align - 1)) else {
            continue;
        };
        let cand = Range {
            start,
            end: start + size,
        };
        let fits = ram.iter().any(|r| r.covers(&cand)) && !taken.iter().any(|t| t.overlaps(&cand));
        if fits && best.is_none_or(|b| cand.start > b.start) {
            best = Some(cand);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    #[test]
    fn insert_merges_touching_and_overlapping_ranges() {
        let s: RangeSet = [r(0x10, 0x20), r(0x30, 0x40), r(0x20, 0x30), r(0x5, 0x8)]
            .into_iter()
            .collect();
        assert_eq!(
            s.iter().copied().collect::<Vec<_>>(),
            [r(0x5, 0x8), r(0x10, 0x40)]
        );
    }

    #[test]
    fn remove_splits_a_range_around_a_hole() {
        let mut s: RangeSet = [r(0x4000_0000, 0x8000_0000)].into_iter().collect();
        s.remove(r(0x4020_0000, 0x4040_0000));
        assert_eq!(
            s.iter().copied().collect::<Vec<_>>(),
            [r(0x4000_0000, 0x4020_0000), r(0x4040_0000, 0x8000_0000)]
        );
        assert_eq!(s.total(), 0x4000_0000 - 0x20_0000);
    }

    #[test]
    fn remove_across_several_ranges_trims_each() {
        let mut s: RangeSet = [r(0, 10), r(20, 30), r(40, 50)].into_iter().collect();
        s.remove(r(5, 45));
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), [r(0, 5), r(45, 50)]);
    }

    #[test]
    fn with_size_rejects_wrapping() {
        assert!(Range::with_size(u64::MAX - 1, 4).is_none());
        assert_eq!(Range::with_size(0x1000, 0x1000), Some(r(0x1000, 0x2000)));
    }

    #[test]
    fn shrink_to_aligns_inwards() {
        assert_eq!(r(0x1001, 0x5fff).shrink_to(0x1000), r(0x2000, 0x5000));
        assert!(r(0x1001, 0x1fff).shrink_to(0x1000).is_empty());
    }

    #[test]
    fn highest_fit_takes_the_top_of_ram_below_anything_taken() {
        let r = |start: u64, end: u64| Range { start, end };
        let ram = [r(0x4000_0000, 0x8000_0000)];
        let mib = 1 << 20;
        assert_eq!(
            highest_fit(&ram, &[], 9 * mib, 2 * mib),
            Some(r(0x7f60_0000, 0x7f60_0000 + 9 * mib))
        );
        // Something at the top pushes it down, below and aligned.
        let taken = [r(0x7fe0_0000, 0x8000_0000), r(0x4000_0000, 0x4100_0000)];
        assert_eq!(
            highest_fit(&ram, &taken, 9 * mib, 2 * mib),
            Some(r(0x7f40_0000, 0x7f40_0000 + 9 * mib))
        );
        // A gap too small is skipped; a second bank may hold it.
        let ram2 = [r(0x4000_0000, 0x4080_0000), r(0x8000_0000, 0x8100_0000)];
        assert_eq!(
            highest_fit(&ram2, &[r(0x8000_0000, 0x8080_0000)], 9 * mib, 2 * mib),
            None
        );
        assert_eq!(
            highest_fit(&ram2, &[r(0x8080_0000, 0x8100_0000)], 4 * mib, 2 * mib),
            Some(r(0x8040_0000, 0x8080_0000))
        );
    }
}
