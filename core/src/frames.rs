//! The physical frame allocator: hands out free host RAM for domain memory
//! and stage-2 tables.
//!
//! It starts from what is free once the hypervisor, its device tree,
//! reserved memory and the boot modules are taken out of RAM, and tracks it
//! as a [`RangeSet`]. Everything is counted in 4 KiB pages: sizes are rounded
//! up to whole pages and every range handed out is page-aligned.

use alloc::vec::Vec;

use crate::memmap::{Range, RangeSet};
use crate::pagetable::PAGE_SIZE;

/// The block size domain memory is carved in, so that stage-2 can map it
/// with 2 MiB blocks.
pub const CHUNK_ALIGN: u64 = 2 << 20;
/// A domain-memory chunk at least this big starts on such a boundary when it
/// can, so that stage-2 can use 1 GiB blocks too.
const GIB: u64 = 1 << 30;

/// Free host RAM, allocated in page-sized units.
#[derive(Debug, Clone)]
pub struct FrameAllocator {
    free: RangeSet,
    /// RAM never handed out since boot: it holds only what was there
    /// before the hypervisor started, never a domain's or the
    /// hypervisor's data. Whatever is allocated leaves it for good.
    fresh: RangeSet,
}

/// A chunk of domain memory, and whether it is fresh: never handed out
/// since boot (see [`FrameAllocator::alloc_memory_marked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub range: Range,
    pub fresh: bool,
}

impl FrameAllocator {
    /// Starts with every page wholly inside `free`; partial pages at the
    /// edges of a range are never handed out.
    pub fn new(free: RangeSet) -> Self {
        let free: RangeSet = free.iter().map(|r| r.shrink_to(PAGE_SIZE)).collect();
        Self {
            fresh: free.clone(),
            free,
        }
    }

    /// Bytes still free.
    pub fn available(&self) -> u64 {
        self.free.total()
    }

    /// The free ranges, lowest first.
    pub fn free_ranges(&self) -> impl Iterator<Item = &Range> {
        self.free.iter()
    }

    /// The lowest free, physically contiguous range of `size` bytes (rounded
    /// up to whole pages) starting at a multiple of `align` (at least a
    /// page). `None` when nothing fits or `size` is 0.
    ///
    /// # Panics
    ///
    /// If `align` is not a power of two: that is a bug in the caller.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<Range> {
        assert!(
            align.is_power_of_two(),
            "frame alignment {align:#x} is not a power of two"
        );
        let size = round_to_pages(size)?;
        if size == 0 {
            return None;
        }
        let align = align.max(PAGE_SIZE);
        let found = self.free.iter().find_map(|r| {
            let start = r.start.checked_next_multiple_of(align)?;
            let got = Range::with_size(start, size)?;
            r.covers(&got).then_some(got)
        })?;
        self.free.remove(found);
        self.fresh.remove(found);
        Some(found)
    }

    /// Memory for a domain: `bytes` (rounded up to whole pages) in as few
    /// and as large chunks as possible, each starting on a 2 MiB boundary
    /// while there is such memory, so that stage-2 can map it with blocks.
    ///
    /// The chunks come back in the order they should be laid out in guest
    /// memory: the 2 MiB-aligned ones first, all but the last of them a
    /// whole number of 2 MiB, so each stays 2 MiB-aligned in the guest too.
    /// Only when there is not enough 2 MiB-aligned memory does the tail come
    /// from smaller, page-aligned pieces after them. All or nothing: on
    /// `None` nothing was taken; 0 bytes gives no chunks.
    pub fn alloc_memory(&mut self, bytes: u64) -> Option<Vec<Range>> {
        let chunks = self.alloc_memory_marked(bytes)?;
        Some(chunks.into_iter().map(|c| c.range).collect())
    }

    /// [`alloc_memory`](Self::alloc_memory), each chunk marked fresh when
    /// none of it was handed out before (then it holds nothing of a domain
    /// or of the hypervisor, and zeroing it is only the boot-time scrub
    /// Xen's `bootscrub` controls).
    pub fn alloc_memory_marked(&mut self, bytes: u64) -> Option<Vec<Chunk>> {
        let chunks = self.pick_memory(bytes)?;
        let marked = chunks
            .iter()
            .map(|&range| Chunk {
                range,
                fresh: self.fresh.covers(&range),
            })
            .collect();
        for c in &chunks {
            self.free.remove(*c);
            self.fresh.remove(*c);
        }
        Some(marked)
    }

    /// The chunks [`alloc_memory`](Self::alloc_memory) takes, not taken.
    fn pick_memory(&self, bytes: u64) -> Option<Vec<Range>> {
        let bytes = round_to_pages(bytes)?;
        if bytes > self.available() {
            return None;
        }
        let aligned: Vec<Range> = self
            .free
            .iter()
            .map(|r| r.shrink_to(CHUNK_ALIGN))
            .filter(|r| !r.is_empty())
            .collect();
        let aligned_total: u64 = aligned.iter().map(Range::size).sum();

        let chunks = if aligned_total >= bytes {
            pick_chunks(aligned, bytes)
        } else {
            // Not enough in 2 MiB pieces: take all of them first (they keep
            // the guest's 2 MiB alignment), then fill the tail from what is
            // left between them.
            let mut rest = self.free.clone();
            for r in &aligned {
                rest.remove(*r);
            }
            let mut chunks = aligned;
            crate::small_sort::sort_by_key(&mut chunks, |r| core::cmp::Reverse(r.size()));
            chunks.extend(pick_chunks(
                rest.iter().copied().collect(),
                bytes - aligned_total,
            ));
            chunks
        };
        debug_assert_eq!(chunks.iter().map(Range::size).sum::<u64>(), bytes);
        Some(chunks)
    }

    /// Gives `range` back (widened to whole pages); it merges with its free
    /// neighbours.
    pub fn free(&mut self, range: Range) {
        let range = Range {
            start: range.start & !(PAGE_SIZE - 1),
            end: range.end.next_multiple_of(PAGE_SIZE),
        };
        debug_assert!(
            !self.free.iter().any(|r| r.overlaps(&range)),
            "double free of {range}"
        );
        self.free.insert(range);
    }
}

fn round_to_pages(bytes: u64) -> Option<u64> {
    bytes.checked_next_multiple_of(PAGE_SIZE)
}

/// Chooses `bytes` from `candidates` (disjoint ranges whose total is at
/// least `bytes`) in the fewest pieces: the whole request from the smallest
/// candidate that holds it, or else the largest candidate whole and repeat.
/// Taking the largest first is what minimises the count; picking the
/// smallest that fits for the final piece keeps large free ranges for later
/// domains.
fn pick_chunks(mut candidates: Vec<Range>, mut bytes: u64) -> Vec<Range> {
    let mut chunks = Vec::new();
    while bytes > 0 {
        let fits = candidates
            .iter()
            .enumerate()
            .filter(|(_, r)| r.size() >= bytes)
            .min_by_key(|(_, r)| (r.size(), r.start))
            .map(|(i, _)| i);
        if let Some(i) = fits {
            chunks.push(place_in(candidates[i], bytes));
            break;
        }
        let Some(i) = candidates
            .iter()
            .enumerate()
            .max_by_key(|(_, r)| (r.size(), core::cmp::Reverse(r.start)))
            .map(|(i, _)| i)
        else {
            break;
        };
        let whole = candidates.swap_remove(i);
        bytes -= whole.size();
        chunks.push(whole);
    }
    chunks
}

/// `bytes` from inside `r`: at its start, unless the piece is big enough for
/// 1 GiB blocks and a 1 GiB boundary inside `r` leaves room for it.
fn place_in(r: Range, bytes: u64) -> Range {
    let start = if bytes >= GIB {
        let gib = r.start.next_multiple_of(GIB);
        if gib.checked_add(bytes).is_some_and(|end| end <= r.end) {
            gib
        } else {
            r.start
        }
    } else {
        r.start
    };
    Range {
        start,
        end: start + bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    fn allocator(ranges: &[Range]) -> FrameAllocator {
        FrameAllocator::new(ranges.iter().copied().collect())
    }

    fn ranges(a: &FrameAllocator) -> Vec<Range> {
        a.free_ranges().copied().collect()
    }

    #[test]
    fn memory_is_fresh_until_handed_out_and_never_again() {
        let mut a = allocator(&[r(0x4000_0000, 0x4000_0000 + 64 * MIB)]);
        let first = a.alloc_memory_marked(16 * MIB).unwrap();
        assert!(first.iter().all(|c| c.fresh), "{first:?}");
        // A stage-2 table page taken and given back is no longer fresh.
        let table = a.alloc(4096, 4096).unwrap();
        a.free(table);
        for c in &first {
            a.free(c.range);
        }
        // The same RAM again: the domain's earlier memory, and the table.
        let again = a.alloc_memory_marked(64 * MIB).unwrap();
        let total: u64 = again.iter().map(|c| c.range.size()).sum();
        assert_eq!(total, 64 * MIB);
        for c in &again {
            let reused =
                first.iter().any(|f| f.range.overlaps(&c.range)) || c.range.overlaps(&table);
            assert_eq!(c.fresh, !reused, "{c:?}");
        }
        assert!(
            again.iter().any(|c| !c.fresh),
            "reused memory must not be marked fresh: {again:?}"
        );
    }

    #[test]
    fn new_drops_partial_pages_at_range_edges() {
        let a = allocator(&[r(0x4000_0010, 0x4000_3ff0)]);
        assert_eq!(ranges(&a), [r(0x4000_1000, 0x4000_3000)]);
        assert_eq!(a.available(), 0x2000);
    }

    #[test]
    fn alloc_takes_the_lowest_fit_and_rounds_up_to_pages() {
        let mut a = allocator(&[r(0x4000_0000, 0x4000_2000), r(0x5000_0000, 0x6000_0000)]);
        let got = a.alloc(0x2001, PAGE_SIZE).unwrap();
        // The first range is one page too small for three pages.
        assert_eq!(got, r(0x5000_0000, 0x5000_3000));
        let got = a.alloc(1, 1).unwrap();
        assert_eq!(got, r(0x4000_0000, 0x4000_1000));
    }

    #[test]
    fn alloc_honours_alignment_and_keeps_the_skipped_head_free() {
        let mut a = allocator(&[r(0x4000_1000, 0x4100_0000)]);
        let got = a.alloc(0x3000, 0x4000).unwrap();
        assert_eq!(got, r(0x4000_4000, 0x4000_7000));
        assert_eq!(
            ranges(&a),
            [r(0x4000_1000, 0x4000_4000), r(0x4000_7000, 0x4100_0000)]
        );
        let big = a.alloc(2 * MIB, 2 * MIB).unwrap();
        assert_eq!(big.start % (2 * MIB), 0);
        assert_eq!(big, r(0x4020_0000, 0x4040_0000));
    }

    #[test]
    fn alloc_of_nothing_or_too_much_returns_none() {
        let mut a = allocator(&[r(0x4000_0000, 0x4010_0000)]);
        assert_eq!(a.alloc(0, PAGE_SIZE), None);
        assert_eq!(a.alloc(MIB + 1, PAGE_SIZE), None);
        assert_eq!(a.available(), MIB);
    }

    #[test]
    #[should_panic(expected = "not a power of two")]
    fn alloc_with_a_non_power_of_two_alignment_panics() {
        let mut a = allocator(&[r(0x4000_0000, 0x4010_0000)]);
        a.alloc(PAGE_SIZE, 3 * PAGE_SIZE);
    }

    #[test]
    fn free_merges_with_both_neighbours() {
        let mut a = allocator(&[r(0x4000_0000, 0x4000_4000)]);
        let first = a.alloc(PAGE_SIZE, PAGE_SIZE).unwrap();
        let middle = a.alloc(PAGE_SIZE, PAGE_SIZE).unwrap();
        let last = a.alloc(PAGE_SIZE, PAGE_SIZE).unwrap();
        a.free(first);
        assert_eq!(
            ranges(&a),
            [r(0x4000_0000, 0x4000_1000), r(0x4000_3000, 0x4000_4000)]
        );
        a.free(last);
        a.free(middle);
        assert_eq!(ranges(&a), [r(0x4000_0000, 0x4000_4000)]);
        assert_eq!(a.available(), 0x4000);
    }

    #[test]
    fn domain_memory_comes_in_one_chunk_when_one_range_holds_it() {
        let mut a = allocator(&[r(0x4000_0000, 0x4800_0000), r(0x5000_0000, 0x9000_0000)]);
        let got = a.alloc_memory(64 * MIB).unwrap();
        // Both ranges hold it; the smaller is used so the 1 GiB one stays whole.
        assert_eq!(got, [r(0x4000_0000, 0x4400_0000)]);
    }

    #[test]
    fn domain_memory_avoids_unaligned_heads_of_free_ranges() {
        let mut a = allocator(&[r(0x4000_3000, 0x4800_0000)]);
        let got = a.alloc_memory(16 * MIB).unwrap();
        assert_eq!(got, [r(0x4020_0000, 0x4120_0000)]);
        // The unaligned head stays free.
        assert_eq!(ranges(&a)[0], r(0x4000_3000, 0x4020_0000));
    }

    #[test]
    fn domain_memory_of_a_gigabyte_or_more_starts_on_a_gigabyte_boundary_when_it_can() {
        let mut a = allocator(&[r(0x4020_0000, 0xc000_0000)]);
        let got = a.alloc_memory(GIB).unwrap();
        assert_eq!(got, [r(0x8000_0000, 0xc000_0000)]);
    }

    #[test]
    fn fragmented_memory_is_taken_largest_first_in_2mib_multiples() {
        let mut a = allocator(&[
            r(0x4000_0000, 0x4060_0000), // 6 MiB
            r(0x4100_0000, 0x4200_0000), // 16 MiB
            r(0x4300_1000, 0x4340_0000), // only 2 MiB of it is 2 MiB-aligned
        ]);
        let got = a.alloc_memory(20 * MIB).unwrap();
        assert_eq!(
            got,
            [r(0x4100_0000, 0x4200_0000), r(0x4000_0000, 0x4040_0000)]
        );
        for c in &got[..got.len() - 1] {
            assert_eq!(c.size() % CHUNK_ALIGN, 0, "{c} breaks guest alignment");
        }
        assert!(got.iter().all(|c| c.start % CHUNK_ALIGN == 0));
    }

    #[test]
    fn domain_memory_falls_back_to_small_pieces_for_its_tail_only() {
        let mut a = allocator(&[r(0x4000_0000, 0x4020_0000), r(0x4030_0000, 0x4038_0000)]);
        let got = a.alloc_memory(2 * MIB + 256 * 1024).unwrap();
        assert_eq!(
            got,
            [r(0x4000_0000, 0x4020_0000), r(0x4030_0000, 0x4034_0000)]
        );
        assert_eq!(a.available(), 256 * 1024);
    }

    #[test]
    fn domain_memory_is_all_or_nothing() {
        let mut a = allocator(&[r(0x4000_0000, 0x4060_0000), r(0x5000_0000, 0x5040_0000)]);
        let before = ranges(&a);
        assert_eq!(a.alloc_memory(10 * MIB + PAGE_SIZE), None);
        assert_eq!(ranges(&a), before);
        assert_eq!(a.available(), 10 * MIB);
        assert_eq!(a.alloc_memory(10 * MIB).map(|c| c.len()), Some(2));
        assert_eq!(a.available(), 0);
    }

    #[test]
    fn domain_memory_of_zero_bytes_is_no_chunks_and_takes_nothing() {
        let mut a = allocator(&[r(0x4000_0000, 0x4060_0000)]);
        assert_eq!(a.alloc_memory(0), Some(Vec::new()));
        assert_eq!(a.available(), 6 * MIB);
    }

    #[test]
    fn freed_domain_memory_merges_back() {
        let mut a = allocator(&[r(0x4000_0000, 0x5000_0000)]);
        let before = ranges(&a);
        let first = a.alloc_memory(64 * MIB).unwrap();
        let second = a.alloc_memory(32 * MIB).unwrap();
        for c in first.into_iter().chain(second) {
            a.free(c);
        }
        assert_eq!(ranges(&a), before);
    }
}
