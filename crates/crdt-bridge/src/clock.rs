//! Vector clocks as the spec stores them (`causalClock: Record<string, number>`): source
//! id to the number of updates from that source the writer had seen (its own included).

use std::collections::BTreeMap;

/// A vector clock: source id to counter. A missing source counts as 0.
pub type VectorClock = BTreeMap<String, u64>;

/// Raises every counter of `into` to at least the one in `other` (pointwise maximum).
pub fn merge(into: &mut VectorClock, other: &VectorClock) {
    for (source, &counter) in other {
        let mine = into.entry(source.clone()).or_insert(0);
        *mine = (*mine).max(counter);
    }
}

/// `a` dominates `b`: every counter of `a` is at least `b`'s and at least one is greater,
/// i.e. the update stamped `a` was made after seeing the one stamped `b`.
///
/// ```
/// use nova_hypercore_crdt_bridge::clock::{VectorClock, dominates};
///
/// let b: VectorClock = [("alice".to_owned(), 1)].into();
/// let a: VectorClock = [("alice".to_owned(), 1), ("bob".to_owned(), 1)].into();
/// assert!(dominates(&a, &b));
/// assert!(!dominates(&b, &a));
/// assert!(!dominates(&a, &a));
/// ```
pub fn dominates(a: &VectorClock, b: &VectorClock) -> bool {
    let at_least = b
        .iter()
        .all(|(source, &counter)| a.get(source).copied().unwrap_or(0) >= counter);
    at_least
        && a.iter()
            .any(|(source, &counter)| b.get(source).copied().unwrap_or(0) < counter)
}

/// Neither clock dominates the other and they differ: the updates were concurrent.
pub fn concurrent(a: &VectorClock, b: &VectorClock) -> bool {
    a != b && !dominates(a, b) && !dominates(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(pairs: &[(&str, u64)]) -> VectorClock {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn merge_takes_the_pointwise_maximum() {
        let mut a = clock(&[("a", 3), ("b", 1)]);
        merge(&mut a, &clock(&[("b", 4), ("c", 2)]));
        assert_eq!(a, clock(&[("a", 3), ("b", 4), ("c", 2)]));
    }

    #[test]
    fn dominance_and_concurrency() {
        let a = clock(&[("a", 1)]);
        let b = clock(&[("b", 1)]);
        assert!(concurrent(&a, &b));
        let ab = clock(&[("a", 1), ("b", 1)]);
        assert!(dominates(&ab, &a) && dominates(&ab, &b));
        // A zero counter is the same as a missing one.
        assert!(!dominates(&clock(&[("a", 1), ("z", 0)]), &a));
    }
}
