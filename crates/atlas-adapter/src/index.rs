//! [`MemoryIndex`]: the spec's in-memory index (time buckets, agents, categories).
//!
//! Pure data, no I/O: the adapter feeds it entries in log order, so every list of seqs
//! is ascending and two indexes fed the same entries are equal (Property 11).

use std::collections::BTreeMap;

use nova_hypercore_serialization::MemoryNodeEntry;
use serde::Serialize;

/// Width of one time bucket of [`MemoryIndex::by_timestamp`], in milliseconds: one
/// minute. A time-range query visits `(end - start) / BUCKET_WIDTH_MS + 1` buckets at
/// most (a `BTreeMap` range, never a scan of the index) and reads the entries of those
/// buckets, keeping those whose timestamp is inside the range; with nodes arriving at
/// agent speed (a few per second) a bucket holds tens to hundreds of entries.
pub const BUCKET_WIDTH_MS: u64 = 60_000;

/// The bucket (its first millisecond) holding `timestamp`.
///
/// ```
/// use nova_hypercore_atlas_adapter::{BUCKET_WIDTH_MS, bucket_of};
/// assert_eq!(bucket_of(0), 0);
/// assert_eq!(bucket_of(BUCKET_WIDTH_MS - 1), 0);
/// assert_eq!(bucket_of(BUCKET_WIDTH_MS + 5), BUCKET_WIDTH_MS);
/// ```
pub fn bucket_of(timestamp: u64) -> u64 {
    timestamp - timestamp % BUCKET_WIDTH_MS
}

/// The spec's `MemoryIndex`: where in the log each node is, by time bucket, agent and
/// category. Serializes with the spec's camelCase field names.
///
/// Every list holds sequence numbers of the log in ascending order; only entries that
/// decoded into a valid [`MemoryNodeEntry`] are counted (see
/// `AtlasMemoryAdapter::skipped`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryIndex {
    /// Bucket start ([`bucket_of`] the node's timestamp, ms) to seqs.
    pub by_timestamp: BTreeMap<u64, Vec<u64>>,
    /// `agentSource` to seqs.
    pub by_agent: BTreeMap<String, Vec<u64>>,
    /// `category` to seqs.
    pub by_category: BTreeMap<String, Vec<u64>>,
    /// Entries indexed.
    pub total_entries: u64,
}

impl MemoryIndex {
    /// Adds the node stored at `seq`. Callers add seqs in ascending order.
    pub fn insert(&mut self, seq: u64, node: &MemoryNodeEntry) {
        self.by_timestamp
            .entry(bucket_of(node.timestamp))
            .or_default()
            .push(seq);
        push(&mut self.by_agent, &node.agent_source, seq);
        push(&mut self.by_category, &node.category, seq);
        self.total_entries += 1;
    }

    /// Seqs of every node whose bucket overlaps `[start, end]` (inclusive), ascending.
    /// A superset of the nodes inside the range: the first and last bucket may hold
    /// nodes just outside it. Visits only the buckets in range.
    pub fn time_candidates(&self, start: u64, end: u64) -> Vec<u64> {
        if start > end {
            return Vec::new();
        }
        let mut seqs: Vec<u64> = self
            .by_timestamp
            .range(bucket_of(start)..=bucket_of(end))
            .flat_map(|(_, seqs)| seqs.iter().copied())
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// Seqs of the nodes written by `agent`, ascending.
    pub fn agent_seqs(&self, agent: &str) -> &[u64] {
        self.by_agent.get(agent).map_or(&[], Vec::as_slice)
    }

    /// Seqs of the nodes in `category`, ascending.
    pub fn category_seqs(&self, category: &str) -> &[u64] {
        self.by_category.get(category).map_or(&[], Vec::as_slice)
    }
}

fn push(map: &mut BTreeMap<String, Vec<u64>>, key: &str, seq: u64) {
    match map.get_mut(key) {
        Some(seqs) => seqs.push(seq),
        None => {
            map.insert(key.to_owned(), vec![seq]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(agent: &str, category: &str, timestamp: u64) -> MemoryNodeEntry {
        MemoryNodeEntry {
            id: format!("{agent}-{timestamp}"),
            agent_source: agent.into(),
            category: category.into(),
            content: String::new(),
            tags: vec![],
            importance: 0.5,
            timestamp,
        }
    }

    #[test]
    fn buckets_agents_and_categories_hold_ascending_seqs() {
        let mut index = MemoryIndex::default();
        index.insert(0, &node("a", "fact", 10));
        index.insert(1, &node("b", "fact", BUCKET_WIDTH_MS + 1));
        index.insert(2, &node("a", "plan", 20));
        assert_eq!(index.total_entries, 3);
        assert_eq!(index.by_timestamp[&0], vec![0, 2]);
        assert_eq!(index.by_timestamp[&BUCKET_WIDTH_MS], vec![1]);
        assert_eq!(index.agent_seqs("a"), &[0, 2]);
        assert_eq!(index.category_seqs("fact"), &[0, 1]);
        assert!(index.agent_seqs("nobody").is_empty());
    }

    #[test]
    fn time_candidates_visit_only_overlapping_buckets() {
        let mut index = MemoryIndex::default();
        for (seq, minute) in [(0, 0), (1, 5), (2, 2), (3, 9)] {
            index.insert(seq, &node("a", "c", minute * BUCKET_WIDTH_MS + 7));
        }
        // Minutes 2..=5: seqs 1 and 2, in seq order.
        let got = index.time_candidates(2 * BUCKET_WIDTH_MS + 30_000, 5 * BUCKET_WIDTH_MS);
        assert_eq!(got, vec![1, 2]);
        assert!(index.time_candidates(10, 5).is_empty());
        assert_eq!(index.time_candidates(0, u64::MAX).len(), 4);
    }

    #[test]
    fn serializes_with_the_spec_field_names() {
        let mut index = MemoryIndex::default();
        index.insert(0, &node("a", "c", 1));
        let json = serde_json::to_value(&index).unwrap_or_default();
        for field in ["byTimestamp", "byAgent", "byCategory", "totalEntries"] {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
    }
}
