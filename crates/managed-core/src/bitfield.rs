//! The `bitfield` file: which blocks this replica stores, one bit per block.
//!
//! Format (hypercore 10): pages of 4,096 bytes (32,768 blocks) at `page * 4096`, each an
//! array of little-endian u32 words; block `i` is bit `i % 32` of word `i / 32`, which is
//! the same as bit `i % 8` of byte `i / 8`. Pages never written read as zeros.
//!
//! Held in memory as sparse pages (only pages with a set bit or a write exist), so a
//! hostile length costs nothing until blocks arrive. Changes are buffered: the file is
//! written page by page at [`Bitfield::take_dirty`] (the oplog's bitfield entries cover
//! the gap until then, as in JS hypercore).

use std::collections::{BTreeMap, BTreeSet};

/// Bytes per bitfield page.
pub(crate) const BYTES_PER_PAGE: u64 = 4096;
/// Blocks per bitfield page.
pub(crate) const BITS_PER_PAGE: u64 = BYTES_PER_PAGE * 8;
const WORDS_PER_PAGE: usize = (BITS_PER_PAGE / 64) as usize;

type Page = Box<[u64; WORDS_PER_PAGE]>;

/// The set of stored blocks.
#[derive(Debug, Default)]
pub(crate) struct Bitfield {
    pages: BTreeMap<u64, Page>,
    dirty: BTreeSet<u64>,
}

impl Bitfield {
    /// A bitfield from the file's bytes (a trailing partial page counts; bytes past the
    /// last whole u32 word are ignored, as JS does).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        let mut pages = BTreeMap::new();
        let usable = bytes.len() - bytes.len() % 4;
        for (i, chunk) in bytes[..usable].chunks(BYTES_PER_PAGE as usize).enumerate() {
            if chunk.iter().all(|b| *b == 0) {
                continue;
            }
            let mut page: Page = Box::new([0; WORDS_PER_PAGE]);
            for (w, word) in chunk.chunks(8).enumerate() {
                let mut le = [0u8; 8];
                le[..word.len()].copy_from_slice(word);
                page[w] = u64::from_le_bytes(le);
            }
            pages.insert(i as u64, page);
        }
        Bitfield {
            pages,
            dirty: BTreeSet::new(),
        }
    }

    /// Whether block `index` is stored.
    pub(crate) fn get(&self, index: u64) -> bool {
        let (page, bit) = (index / BITS_PER_PAGE, index % BITS_PER_PAGE);
        self.pages
            .get(&page)
            .is_some_and(|p| p[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// Sets (or clears) blocks `start..start + length`; an empty or overflowing range is
    /// ignored (the caller bounds ranges by the log's length).
    pub(crate) fn set_range(&mut self, start: u64, length: u64, value: bool) {
        let Some(end) = start.checked_add(length) else {
            return;
        };
        let mut at = start;
        while at < end {
            let (page_no, bit) = (at / BITS_PER_PAGE, at % BITS_PER_PAGE);
            let n = (BITS_PER_PAGE - bit).min(end - at);
            if !value && !self.pages.contains_key(&page_no) {
                at += n;
                continue;
            }
            let page = self
                .pages
                .entry(page_no)
                .or_insert_with(|| Box::new([0; WORDS_PER_PAGE]));
            let mut b = bit;
            let mut changed = false;
            while b < bit + n {
                let (w, o) = ((b / 64) as usize, b % 64);
                let span = (64 - o).min(bit + n - b);
                let mask = if span == 64 {
                    u64::MAX
                } else {
                    ((1u64 << span) - 1) << o
                };
                let word = if value {
                    page[w] | mask
                } else {
                    page[w] & !mask
                };
                changed |= word != page[w];
                page[w] = word;
                b += span;
            }
            // A page no bit of which changed is what the file holds (or was already
            // dirty): rewriting it would only cost a checkpoint. Opening a log clears
            // the bits past its length; without this every reopened log had a dirty
            // page and checkpointed (3 `fdatasync`s) at its next close.
            if changed {
                self.dirty.insert(page_no);
            }
            at += n;
        }
    }

    /// The first block at or after `from` that is not stored: `contiguous length` when
    /// `from` is 0 or a known contiguous prefix.
    pub(crate) fn first_unset(&self, from: u64) -> u64 {
        let mut at = from;
        loop {
            let (page_no, bit) = (at / BITS_PER_PAGE, at % BITS_PER_PAGE);
            let Some(page) = self.pages.get(&page_no) else {
                return at;
            };
            let mut w = (bit / 64) as usize;
            let mut word = page[w] | ((1u64 << (bit % 64)) - 1);
            loop {
                if word != u64::MAX {
                    return page_no * BITS_PER_PAGE
                        + w as u64 * 64
                        + u64::from(word.trailing_ones());
                }
                w += 1;
                if w == WORDS_PER_PAGE {
                    break;
                }
                word = page[w];
            }
            at = (page_no + 1) * BITS_PER_PAGE;
        }
    }

    /// How many blocks of `start..end` are stored: a popcount of the pages that exist
    /// (pages never written hold none).
    pub(crate) fn count(&self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        let (first, last) = (start / BITS_PER_PAGE, (end - 1) / BITS_PER_PAGE);
        let mut held = 0;
        for (&page_no, page) in self.pages.range(first..=last) {
            let base = page_no * BITS_PER_PAGE;
            let (from, to) = (start.max(base) - base, end.min(base + BITS_PER_PAGE) - base);
            for (w, &word) in page.iter().enumerate() {
                let (lo, hi) = (w as u64 * 64, w as u64 * 64 + 64);
                if hi <= from || lo >= to {
                    continue;
                }
                let mut mask = u64::MAX;
                if from > lo {
                    mask &= u64::MAX << (from - lo);
                }
                if to < hi {
                    mask &= u64::MAX >> (hi - to);
                }
                held += u64::from((word & mask).count_ones());
            }
        }
        held
    }

    /// The first stored block at or after `from` (JS `bitfield.firstSet`), or `None`.
    pub(crate) fn first_set(&self, from: u64) -> Option<u64> {
        let (first, bit) = (from / BITS_PER_PAGE, from % BITS_PER_PAGE);
        for (&page_no, page) in self.pages.range(first..) {
            let skip = if page_no == first { bit } else { 0 };
            let start_word = (skip / 64) as usize;
            for (w, &word) in page.iter().enumerate().skip(start_word) {
                let mut word = word;
                if w == start_word && page_no == first {
                    word &= u64::MAX << (skip % 64);
                }
                if word != 0 {
                    let at = w as u64 * 64 + u64::from(word.trailing_zeros());
                    return Some(page_no * BITS_PER_PAGE + at);
                }
            }
        }
        None
    }

    /// The last stored block below `end` (JS `bitfield.lastSet(end - 1)`), or `None`.
    pub(crate) fn last_set_before(&self, end: u64) -> Option<u64> {
        let last = end.checked_sub(1)?;
        let (last_page, bit) = (last / BITS_PER_PAGE, last % BITS_PER_PAGE);
        for (&page_no, page) in self.pages.range(..=last_page).rev() {
            let upto = if page_no == last_page {
                bit
            } else {
                BITS_PER_PAGE - 1
            };
            let end_word = (upto / 64) as usize;
            for w in (0..=end_word).rev() {
                let mut word = page[w];
                if w == end_word {
                    word &= u64::MAX >> (63 - upto % 64);
                }
                if word != 0 {
                    let at = w as u64 * 64 + 63 - u64::from(word.leading_zeros());
                    return Some(page_no * BITS_PER_PAGE + at);
                }
            }
        }
        None
    }

    /// The pages changed since the last call, as `(file offset, 4096 bytes)`, in order.
    pub(crate) fn take_dirty(&mut self) -> Vec<(u64, Vec<u8>)> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out = Vec::with_capacity(dirty.len());
        for page_no in dirty {
            let mut bytes = Vec::with_capacity(BYTES_PER_PAGE as usize);
            match self.pages.get(&page_no) {
                Some(page) => page.iter().for_each(|w| bytes.extend(w.to_le_bytes())),
                None => bytes.resize(BYTES_PER_PAGE as usize, 0),
            }
            out.push((page_no * BYTES_PER_PAGE, bytes));
        }
        out
    }

    /// Marks pages as changed again (a failed write of [`take_dirty`](Self::take_dirty)'s
    /// pages must be retried at the next flush).
    pub(crate) fn mark_dirty(&mut self, offsets: impl IntoIterator<Item = u64>) {
        self.dirty
            .extend(offsets.into_iter().map(|o| o / BYTES_PER_PAGE));
    }

    /// Whether any page waits to be written.
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }
}

#[cfg(test)]
mod count_tests {
    use super::*;

    #[test]
    fn count_is_the_number_of_set_bits_in_the_range() {
        let mut b = Bitfield::default();
        let set = [0u64, 1, 63, 64, 65, 500, 32_767, 32_768, 40_000, 100_000];
        for &i in &set {
            b.set_range(i, 1, true);
        }
        for (start, end) in [
            (0, 200_000),
            (1, 64),
            (63, 65),
            (64, 65),
            (2, 63),
            (501, 32_767),
            (32_767, 32_769),
            (40_000, 40_001),
            (7, 7),
            (9, 3),
            (99_999, 1 << 40),
        ] {
            let want = set.iter().filter(|&&i| i >= start && i < end).count() as u64;
            assert_eq!(b.count(start, end), want, "{start}..{end}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_layout_is_lsb_first_within_bytes() {
        let mut b = Bitfield::default();
        b.set_range(0, 1, true);
        b.set_range(9, 1, true);
        b.set_range(BITS_PER_PAGE + 3, 1, true);
        let pages = b.take_dirty();
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].0, 0);
        assert_eq!(&pages[0].1[..2], &[0b1, 0b10]);
        assert_eq!(pages[1].0, 4096);
        assert_eq!(pages[1].1[0], 0b1000);
        assert!(!b.has_dirty());
        // Reading the bytes back gives the same bits, on any page (the crate's bug was
        // indexing every page after the first by its file offset).
        let mut file = vec![0u8; 8192];
        for (offset, bytes) in pages {
            file[offset as usize..offset as usize + bytes.len()].copy_from_slice(&bytes);
        }
        let r = Bitfield::from_bytes(&file);
        for i in 0..2 * BITS_PER_PAGE {
            assert_eq!(r.get(i), [0, 9, BITS_PER_PAGE + 3].contains(&i), "bit {i}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Random ranges across page boundaries: get, first_unset and the file bytes agree
        /// with a plain Vec<bool> model.
        #[test]
        fn ranges_match_a_plain_model(ops in prop::collection::vec((0u64..100_000, 0u64..40_000, any::<bool>()), 1..12)) {
            let mut b = Bitfield::default();
            let mut model = vec![false; 140_000];
            for (start, len, v) in ops {
                b.set_range(start, len, v);
                for i in start..start + len { model[i as usize] = v; }
            }
            for i in (0..140_000u64).step_by(7) {
                prop_assert_eq!(b.get(i), model[i as usize]);
            }
            let first = model.iter().position(|x| !x).unwrap_or(model.len()) as u64;
            prop_assert_eq!(b.first_unset(0), first);
            for at in [0u64, 1, 63, 64, 65, 32_767, 32_768, 50_001, 99_999, 139_999, 140_000] {
                let next = (at as usize..model.len()).find(|&i| model[i]).map(|i| i as u64);
                prop_assert_eq!(b.first_set(at), next, "first_set({})", at);
                let prev = (0..at as usize).rev().find(|&i| model[i]).map(|i| i as u64);
                prop_assert_eq!(b.last_set_before(at), prev, "last_set_before({})", at);
            }
            let mut file = vec![0u8; 5 * 4096];
            for (offset, bytes) in b.take_dirty() {
                file[offset as usize..offset as usize + 4096].copy_from_slice(&bytes);
            }
            let r = Bitfield::from_bytes(&file);
            for i in (0..140_000u64).step_by(3) {
                prop_assert_eq!(r.get(i), model[i as usize]);
            }
        }
    }
}
