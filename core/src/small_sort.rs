//! Sorting for the hypervisor's short lists: memory banks, reserved ranges,
//! subsystems, console commands, a domain's memory chunks.
//!
//! The standard library's sorts are fast on long slices and large in code:
//! every element type instantiates several kilobytes of quicksort,
//! merging and small-sort networks. Oxen sorts a handful of lists of a few
//! dozen entries at most, each once at boot or domain build (none that a
//! guest makes longer), so a plain insertion sort — a few hundred bytes
//! per type, and stable — serves them. Quadratic in the length: not for
//! anything long or guest-controlled.

/// Sorts `v` stably by `key`, ascending.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a) <= key(b));
}

/// Sorts `v` ascending (stably, which for a total order is the same).
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, |a, b| a <= b);
}

/// The insertion sort both use: `in_order(a, b)` says `a` may stay before
/// `b`. Only an out-of-order pair is swapped, so equal elements keep
/// their order.
fn sort_by<T>(v: &mut [T], mut in_order: impl FnMut(&T, &T) -> bool) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 {
            let (Some(a), Some(b)) = (v.get(j - 1), v.get(j)) else {
                break;
            };
            if in_order(a, b) {
                break;
            }
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A small deterministic generator, so that failures repeat.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn sorts_as_the_standard_library_does() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for len in 0..70 {
            for _ in 0..20 {
                let v: Vec<u32> = (0..len).map(|_| (next(&mut state) % 16) as u32).collect();
                let mut ours = v.clone();
                let mut theirs = v.clone();
                sort(&mut ours);
                theirs.sort();
                assert_eq!(ours, theirs, "{v:?}");
            }
        }
    }

    #[test]
    fn by_key_is_stable() {
        let mut state = 7;
        for len in 0..70 {
            // (key, original position): equal keys must stay in position
            // order, which is what the standard library's stable sort gives.
            let v: Vec<(u8, usize)> = (0..len)
                .map(|i| ((next(&mut state) % 5) as u8, i))
                .collect();
            let mut ours = v.clone();
            let mut theirs = v.clone();
            sort_by_key(&mut ours, |&(k, _)| core::cmp::Reverse(k));
            theirs.sort_by_key(|&(k, _)| core::cmp::Reverse(k));
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn already_sorted_and_reversed_input() {
        let mut up: Vec<u16> = (0..50).collect();
        sort(&mut up);
        assert_eq!(up, (0..50).collect::<Vec<_>>());
        let mut down: Vec<u16> = (0..50).rev().collect();
        sort(&mut down);
        assert_eq!(down, (0..50).collect::<Vec<_>>());
    }
}
