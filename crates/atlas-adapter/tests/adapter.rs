//! The ATLAS adapter against a real manager on disk: storing, querying, bad entries,
//! reopening, the open-file cap, truncation. (Two peers, one storing and the other
//! querying what it replicated: the workspace suite `tests/tests/atlas_across_peers.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_atlas_adapter::{AtlasMemoryAdapter, BUCKET_WIDTH_MS, DEFAULT_LOG};
use nova_hypercore_manager::{HypercoreManager, ManagerConfig, ManagerEvent};
use nova_hypercore_serialization::{ErrorCode, MemoryNodeEntry, serialize};

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

fn node(i: u64, agent: &str, category: &str, timestamp: u64) -> MemoryNodeEntry {
    MemoryNodeEntry {
        id: format!("node-{i}"),
        agent_source: agent.into(),
        category: category.into(),
        content: format!("memory {i}"),
        tags: vec!["t".into()],
        importance: 0.5,
        timestamp,
    }
}

#[tokio::test]
async fn stored_nodes_are_found_by_time_agent_and_category() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
    assert_eq!(atlas.log_name().as_str(), DEFAULT_LOG);
    let base = 1_764_000_000_000;
    let a = node(0, "atlas", "fact", base + 10);
    let b = node(1, "planner", "plan", base + BUCKET_WIDTH_MS + 5);
    let c = node(2, "atlas", "plan", base + 3);
    assert_eq!(atlas.store_node(&a).await.unwrap(), 0);
    assert_eq!(
        atlas.store_nodes(&[b.clone(), c.clone()]).await.unwrap(),
        1..3
    );

    // Inclusive bounds, ordered by timestamp.
    assert_eq!(
        atlas
            .query_by_time_range(base + 3, base + 10)
            .await
            .unwrap(),
        vec![c.clone(), a.clone()]
    );
    assert_eq!(
        atlas.query_by_time_range(base + 4, base + 9).await.unwrap(),
        vec![]
    );
    assert_eq!(
        atlas.query_by_time_range(0, u64::MAX).await.unwrap(),
        vec![c.clone(), a.clone(), b.clone()]
    );
    assert!(atlas.query_by_time_range(10, 5).await.unwrap().is_empty());
    assert_eq!(
        atlas.query_by_agent("atlas").await.unwrap(),
        vec![a.clone(), c.clone()]
    );
    assert_eq!(
        atlas.query_by_category("plan").await.unwrap(),
        vec![b.clone(), c]
    );
    assert!(atlas.query_by_agent("nobody").await.unwrap().is_empty());
    let index = atlas.get_index();
    assert_eq!(index.total_entries, 3);
    assert_eq!(index.by_agent["atlas"], vec![0, 2]);
    assert_eq!(atlas.indexed_length(), 3);
    // What is stored is the serialized node, readable by anyone with the manager.
    assert_eq!(
        m.read(DEFAULT_LOG, 1).await.unwrap(),
        serialize(&b).unwrap()
    );
    m.close().await.unwrap();
}

#[tokio::test]
async fn pages_of_an_agent_or_category_query_are_slices_of_the_whole_answer() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
    let nodes: Vec<MemoryNodeEntry> = (0..7)
        .map(|i| node(i, if i % 3 == 0 { "other" } else { "atlas" }, "fact", i))
        .collect();
    atlas.store_nodes(&nodes).await.unwrap();
    let all = atlas.query_by_agent("atlas").await.unwrap();
    assert_eq!(all.len(), 4);
    let mut paged = Vec::new();
    for offset in (0..6).step_by(3) {
        let (page, total) = atlas.query_by_agent_page("atlas", offset, 3).await.unwrap();
        assert_eq!(total, 4);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let (page, total) = atlas.query_by_category_page("fact", 5, 100).await.unwrap();
    assert_eq!((page, total), (nodes[5..].to_vec(), 7));
    let (page, total) = atlas.query_by_category_page("none", 0, 10).await.unwrap();
    assert_eq!((page.len(), total), (0, 0));
    m.close().await.unwrap();
}

#[tokio::test]
async fn an_invalid_node_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
    let mut bad = node(0, "atlas", "fact", 1);
    bad.importance = 1.5;
    let err = atlas.store_node(&bad).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeserializationFailed);
    assert!(err.to_string().contains("importance"), "{err}");
    let err = atlas
        .store_nodes(&[node(1, "a", "c", 1), bad])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeserializationFailed);
    assert_eq!(m.get_length(DEFAULT_LOG).await.unwrap(), 0);
    assert_eq!(atlas.get_index().total_entries, 0);
    m.close().await.unwrap();
}

#[tokio::test]
async fn an_entry_that_does_not_decode_is_reported_skipped_and_never_breaks_a_query() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let good = node(0, "atlas", "fact", 100);
    // Written before the adapter opens: found while building the index.
    m.append(DEFAULT_LOG, &serialize(&good).unwrap())
        .await
        .unwrap();
    m.append(DEFAULT_LOG, b"not a frame").await.unwrap();
    let mut events = m.subscribe();
    let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
    // Written behind the adapter's back after it opened: found by following the log.
    let mut invalid = serde_json::to_value(node(2, "atlas", "fact", 101)).unwrap();
    invalid["importance"] = serde_json::json!(7);
    let body = serde_json::to_vec(&invalid).unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    m.append(DEFAULT_LOG, &frame).await.unwrap();
    let later = node(3, "atlas", "fact", 102);
    assert_eq!(atlas.store_node(&later).await.unwrap(), 3);
    tokio::time::timeout(Duration::from_secs(10), atlas.wait_indexed(4))
        .await
        .expect("the adapter follows the log");

    let skipped = atlas.skipped();
    assert_eq!(skipped.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    for (seq, error) in &skipped {
        assert_eq!(error.code, ErrorCode::DeserializationFailed);
        assert_eq!(error.seq, Some(*seq));
        assert_eq!(error.log_name.as_deref(), Some(DEFAULT_LOG));
    }
    assert_eq!(
        atlas.query_by_agent("atlas").await.unwrap(),
        vec![good.clone(), later.clone()]
    );
    assert_eq!(
        atlas.query_by_time_range(0, 1_000).await.unwrap(),
        vec![good, later]
    );
    assert_eq!(atlas.get_index().total_entries, 2);
    // Each bad entry was an `error` event naming its seq, and counted.
    let mut reported = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let ManagerEvent::Error { log_name, error } = event {
            assert_eq!(log_name, DEFAULT_LOG);
            assert_eq!(error.code, ErrorCode::DeserializationFailed);
            reported.push(error.seq.unwrap());
        }
    }
    assert_eq!(reported, vec![1, 2]);
    assert!(m.metrics().error_count >= 2);
    // A rebuild agrees and reports them again.
    assert_eq!(atlas.rebuild_index().await.unwrap(), atlas.get_index());
    assert_eq!(atlas.skipped(), skipped);
    m.close().await.unwrap();
}

#[tokio::test]
async fn a_reopened_store_rebuilds_the_same_index() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
    let nodes: Vec<MemoryNodeEntry> = (0..2_500u64)
        .map(|i| node(i, ["a", "b", "c"][i as usize % 3], "k", i * 7_000))
        .collect();
    for chunk in nodes.chunks(500) {
        atlas.store_nodes(chunk).await.unwrap();
    }
    let before = atlas.get_index();
    assert_eq!(before.total_entries, 2_500);
    drop(atlas);
    m.close().await.unwrap();

    let m = manager(dir.path()).await;
    let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
    assert_eq!(atlas.get_index(), before);
    assert_eq!(atlas.indexed_length(), 2_500);
    let got = atlas.query_by_time_range(7_000, 70_000).await.unwrap();
    assert_eq!(got, nodes[1..=10].to_vec());
    m.close().await.unwrap();
}

/// With one open log allowed, using another log closes the ATLAS log's files (and ends
/// its progress watch); the adapter still indexes what is appended to it afterwards.
#[tokio::test]
async fn the_index_keeps_following_after_the_open_file_cap_closed_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let m = HypercoreManager::new(
        ManagerConfig::builder()
            .storage_path(dir.path())
            .max_open_logs(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    m.initialize().await.unwrap();
    let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
    atlas
        .store_node(&node(0, "atlas", "fact", 100))
        .await
        .unwrap();
    for round in 1..4u64 {
        // The cap closes the least recently used log that is not busy: the adapter's
        // follower may be reading it right then (it woke on the last append), so use
        // the other log until the cap has closed this one (bounded).
        let atlas_log = m.get_log(DEFAULT_LOG).await.unwrap();
        let mut tries = 0;
        loop {
            m.append("other-log", b"x").await.unwrap();
            if !atlas_log.is_open().await {
                break;
            }
            tries += 1;
            assert!(tries < 200, "the cap never closed {DEFAULT_LOG}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Behind the adapter's back, through the manager.
        let n = node(round, "atlas", "fact", round);
        m.append(DEFAULT_LOG, &serialize(&n).unwrap())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), atlas.wait_indexed(round + 1))
            .await
            .expect("indexed after the files reopened");
        assert_eq!(
            atlas.query_by_time_range(round, round).await.unwrap(),
            vec![n]
        );
    }
    assert_eq!(atlas.get_index().total_entries, 4);
    m.close().await.unwrap();
}

#[tokio::test]
async fn a_truncated_log_is_indexed_again_without_the_retracted_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let atlas = AtlasMemoryAdapter::open(&m).await.unwrap();
    let base = 1_764_000_000_000;
    let kept = node(0, "atlas", "fact", base);
    atlas
        .store_nodes(&[
            kept.clone(),
            node(1, "planner", "plan", base + 1),
            node(2, "planner", "plan", base + 2),
        ])
        .await
        .unwrap();
    let mut events = m.subscribe();
    let fork = m
        .get_log(DEFAULT_LOG)
        .await
        .unwrap()
        .truncate(1)
        .await
        .unwrap();
    assert_eq!(fork, 1);
    loop {
        match events.recv().await.unwrap() {
            ManagerEvent::Truncate {
                log_name,
                kept,
                length,
                fork,
            } if log_name.as_str() == DEFAULT_LOG => {
                assert_eq!((kept, length, fork), (1, 1, 1));
                break;
            }
            _ => continue,
        }
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        while atlas.get_index().total_entries != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the index drops the retracted nodes");
    assert!(atlas.query_by_agent("planner").await.unwrap().is_empty());
    let new = node(3, "planner", "plan", base + 3);
    assert_eq!(atlas.store_node(&new).await.unwrap(), 1);
    assert_eq!(atlas.query_by_agent("planner").await.unwrap(), vec![new]);
    assert_eq!(
        atlas
            .query_by_time_range(base, base + 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(atlas.query_by_agent("atlas").await.unwrap(), vec![kept]);
}
