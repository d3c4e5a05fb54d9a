//! Spec properties 10 and 11 (ATLAS), on a real manager in a temp dir per case.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_atlas_adapter::{AtlasMemoryAdapter, BUCKET_WIDTH_MS, DEFAULT_LOG, MemoryIndex};
use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
use nova_hypercore_serialization::{MemoryNodeEntry, deserialize};
use nova_hypercore_testkit::{CaseCounter, property_config, runtime};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;

const AGENTS: [&str; 4] = ["atlas", "planner", "critic", "Ω agent"];
const CATEGORIES: [&str; 3] = ["fact", "plan", ""];
/// Timestamps span a dozen buckets, so ranges start and end inside, at and across
/// bucket edges.
const SPAN: u64 = 12 * BUCKET_WIDTH_MS;

fn timestamp() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..SPAN,
        (0..12u64).prop_map(|b| b * BUCKET_WIDTH_MS),
        (1..12u64).prop_map(|b| b * BUCKET_WIDTH_MS - 1),
    ]
}

fn memory_node() -> impl Strategy<Value = MemoryNodeEntry> {
    (
        "[a-z0-9-]{1,12}",
        select(AGENTS.to_vec()),
        select(CATEGORIES.to_vec()),
        "[ -~é漢]{0,24}",
        vec("[a-z]{1,6}", 0..3),
        0.0f64..=1.0,
        timestamp(),
    )
        .prop_map(
            |(id, agent, category, content, tags, importance, timestamp)| MemoryNodeEntry {
                id,
                agent_source: agent.to_owned(),
                category: category.to_owned(),
                content,
                tags,
                importance,
                timestamp,
            },
        )
}

fn time_range() -> impl Strategy<Value = (u64, u64)> {
    (timestamp(), timestamp()).prop_map(|(a, b)| (a.min(b), a.max(b)))
}

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

/// Feature: p2p-hypercore-protocol, Property 10: ATLAS store and query correctness
#[test]
fn property_10_atlas_store_and_query_correctness() {
    let cases = CaseCounter::new(10);
    let rt = runtime();
    proptest!(property_config(), |(
        nodes in vec(memory_node(), 0..30),
        batched in any::<bool>(),
        ranges in vec(time_range(), 1..5),
    )| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let m = manager(dir.path()).await;
            let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
            if batched {
                for chunk in nodes.chunks(7) {
                    atlas.store_nodes(chunk).await.unwrap();
                }
            } else {
                for node in &nodes {
                    atlas.store_node(node).await.unwrap();
                }
            }
            for (t1, t2) in ranges.iter().copied().chain([(0, u64::MAX)]) {
                // Exactly the nodes with t1 <= timestamp <= t2, by time, ties in store order.
                let mut expected: Vec<&MemoryNodeEntry> =
                    nodes.iter().filter(|n| (t1..=t2).contains(&n.timestamp)).collect();
                expected.sort_by_key(|n| n.timestamp);
                let got = atlas.query_by_time_range(t1, t2).await.unwrap();
                prop_assert_eq!(got.iter().collect::<Vec<_>>(), expected, "range [{}, {}]", t1, t2);
            }
            for agent in AGENTS.iter().copied().chain(["nobody"]) {
                let expected: Vec<&MemoryNodeEntry> =
                    nodes.iter().filter(|n| n.agent_source == agent).collect();
                let got = atlas.query_by_agent(agent).await.unwrap();
                prop_assert_eq!(got.iter().collect::<Vec<_>>(), expected, "agent {}", agent);
            }
            for category in CATEGORIES {
                let expected: Vec<&MemoryNodeEntry> =
                    nodes.iter().filter(|n| n.category == category).collect();
                let got = atlas.query_by_category(category).await.unwrap();
                prop_assert_eq!(got.iter().collect::<Vec<_>>(), expected);
            }
            m.close().await.unwrap();
            Ok::<(), TestCaseError>(())
        })?;
    });
    assert!(cases.count() >= 100, "ran {} cases", cases.count());
}

/// One way an entry reaches the log.
#[derive(Debug, Clone)]
enum Append {
    /// `store_node`.
    One(MemoryNodeEntry),
    /// `store_nodes`, one signed batch.
    Batch(Vec<MemoryNodeEntry>),
    /// Raw bytes through the manager, behind the adapter's back (usually not a node).
    Raw(Vec<u8>),
}

fn append() -> impl Strategy<Value = Append> {
    prop_oneof![
        6 => memory_node().prop_map(Append::One),
        3 => vec(memory_node(), 0..6).prop_map(Append::Batch),
        1 => vec(any::<u8>(), 0..40).prop_map(Append::Raw),
    ]
}

/// Feature: p2p-hypercore-protocol, Property 11: Index rebuild consistency
#[test]
fn property_11_index_rebuild_consistency() {
    let cases = CaseCounter::new(11);
    let rt = runtime();
    proptest!(property_config(), |(appends in vec(append(), 0..16))| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let m = manager(dir.path()).await;
            let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
            // What each seq holds: Some(node) if it decodes into one.
            let mut log: Vec<Option<MemoryNodeEntry>> = Vec::new();
            for a in &appends {
                match a {
                    Append::One(node) => {
                        prop_assert_eq!(atlas.store_node(node).await.unwrap(), log.len() as u64);
                        log.push(Some(node.clone()));
                    }
                    Append::Batch(nodes) => {
                        let seqs = atlas.store_nodes(nodes).await.unwrap();
                        prop_assert_eq!(seqs.start, log.len() as u64);
                        log.extend(nodes.iter().cloned().map(Some));
                    }
                    Append::Raw(bytes) => {
                        m.append(DEFAULT_LOG, bytes).await.unwrap();
                        log.push(deserialize::<MemoryNodeEntry>(bytes).ok());
                    }
                }
            }
            tokio::time::timeout(Duration::from_secs(10), atlas.wait_indexed(log.len() as u64))
                .await
                .expect("the index follows raw appends");
            let incremental = atlas.get_index();

            // The index is what the log holds, entry by entry.
            let mut model = MemoryIndex::default();
            for (seq, node) in log.iter().enumerate() {
                if let Some(node) = node {
                    model.insert(seq as u64, node);
                }
            }
            prop_assert_eq!(&incremental, &model);
            let bad: Vec<u64> = (0..log.len() as u64).filter(|s| log[*s as usize].is_none()).collect();
            prop_assert_eq!(atlas.skipped().keys().copied().collect::<Vec<_>>(), bad);

            // rebuild_index() from the log gives the same index ...
            prop_assert_eq!(&atlas.rebuild_index().await.unwrap(), &incremental);
            prop_assert_eq!(&atlas.get_index(), &incremental);
            // ... and so does opening the store again (the index is rebuilt on open).
            drop(atlas);
            m.close().await.unwrap();
            let m = manager(dir.path()).await;
            let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
            prop_assert_eq!(&atlas.get_index(), &incremental);
            prop_assert_eq!(atlas.indexed_length(), log.len() as u64);
            m.close().await.unwrap();
            Ok::<(), TestCaseError>(())
        })?;
    });
    assert!(cases.count() >= 100, "ran {} cases", cases.count());
}
