//! The blocks a channel still wants, as ranges: a verified upgrade to any length adds
//! one range, not one entry per block, so memory stays bounded by the number of gaps
//! (at most one per request in flight or declined), whatever length a peer announces.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent block ranges `start..end`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    ranges: BTreeMap<u64, u64>,
}

impl Wanted {
    /// Adds blocks `start..end` (nothing if empty).
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        // Merge with a range that starts before and reaches `start`.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
        }
        // Swallow ranges starting inside `start..=end`.
        let inside: Vec<u64> = self.ranges.range(start..=end).map(|(&s, _)| s).collect();
        for s in inside {
            if let Some(e) = self.ranges.remove(&s) {
                end = end.max(e);
            }
        }
        self.ranges.insert(start, end);
    }

    /// Adds one block.
    pub(crate) fn insert_one(&mut self, seq: u64) {
        self.insert(seq, seq.saturating_add(1));
    }

    /// The lowest wanted block.
    pub(crate) fn first(&self) -> Option<u64> {
        self.ranges.first_key_value().map(|(&s, _)| s)
    }

    /// Removes the lowest wanted block.
    pub(crate) fn pop_first(&mut self) -> Option<u64> {
        let (start, end) = self.ranges.pop_first()?;
        if start + 1 < end {
            self.ranges.insert(start + 1, end);
        }
        Some(start)
    }

    /// Removes the blocks of the lowest range that lie below `to` (a run of blocks
    /// found held all at once).
    pub(crate) fn skip_first_below(&mut self, to: u64) {
        if let Some((start, end)) = self.ranges.pop_first()
            && to < end
        {
            self.ranges.insert(start.max(to), end);
        }
    }

    /// Forgets every block at or beyond `length`.
    pub(crate) fn truncate(&mut self, length: u64) {
        let beyond: Vec<u64> = self.ranges.range(length..).map(|(&s, _)| s).collect();
        for s in beyond {
            self.ranges.remove(&s);
        }
        if let Some((_, e)) = self.ranges.range_mut(..length).next_back()
            && *e > length
        {
            *e = length;
        }
    }

    /// Ranges held (the memory this costs).
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_huge_range_is_one_entry() {
        let mut w = Wanted::default();
        w.insert(0, 1 << 40);
        w.insert_one(5);
        assert_eq!(w.ranges(), 1);
        assert_eq!(w.pop_first(), Some(0));
        assert_eq!(w.first(), Some(1));
        w.truncate(3);
        assert_eq!(
            (w.pop_first(), w.pop_first(), w.pop_first()),
            (Some(1), Some(2), None)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Same blocks, in the same order, as a plain set of block numbers.
        #[test]
        fn behaves_as_a_set_of_blocks(ops in prop::collection::vec((0u8..5, 0u64..64, 0u64..16), 0..40)) {
            let mut w = Wanted::default();
            let mut set = BTreeSet::new();
            for (op, a, n) in ops {
                match op {
                    0 => { w.insert(a, a + n); set.extend(a..a + n); }
                    1 => { w.insert_one(a); set.insert(a); }
                    2 => { prop_assert_eq!(w.pop_first(), set.pop_first()); }
                    3 => { w.truncate(a); set.retain(|s| *s < a); }
                    _ => {
                        w.skip_first_below(a);
                        // The lowest range is the first run of consecutive blocks.
                        if let Some(mut b) = set.first().copied() {
                            while set.contains(&b) && b < a {
                                set.remove(&b);
                                b += 1;
                            }
                        }
                    }
                }
                prop_assert_eq!(w.first(), set.first().copied());
                prop_assert!(w.ranges() <= set.len());
            }
            let mut rest = Vec::new();
            while let Some(s) = w.pop_first() { rest.push(s); }
            prop_assert_eq!(rest, set.into_iter().collect::<Vec<_>>());
        }
    }
}
