//! ATLAS across peers: peer A stores memory nodes with its `AtlasMemoryAdapter`, peer B's
//! manager replicates A's `atlas-memory` log over loopback TCP, and B's own adapter finds
//! the nodes with the same answers as A's, live appends included. (Moved from
//! `crates/atlas-adapter/tests/adapter.rs`: it needs the adapter and the manager's
//! replication together.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_atlas_adapter::{AtlasMemoryAdapter, DEFAULT_LOG};
use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
use nova_hypercore_serialization::{ErrorCode, MemoryNodeEntry};

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

/// Peer A stores nodes; peer B replicates A's log over loopback TCP and finds them with
/// its own queries, including nodes A stores while connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_stored_on_one_peer_are_found_by_the_other() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    let atlas_a = AtlasMemoryAdapter::open(&a).await.unwrap();
    let agents = ["atlas", "planner", "critic"];
    let first: Vec<MemoryNodeEntry> = (0..150u64)
        .map(|i| node(i, agents[i as usize % 3], "fact", 1_000_000 + i * 1_000))
        .collect();
    for n in &first[..50] {
        atlas_a.store_node(n).await.unwrap();
    }
    atlas_a.store_nodes(&first[50..]).await.unwrap();
    a.enable_replication(DEFAULT_LOG).await.unwrap();

    let key = a.get_log(DEFAULT_LOG).await.unwrap().public_key();
    b.open_replica(DEFAULT_LOG, key).await.unwrap();
    b.enable_replication(DEFAULT_LOG).await.unwrap();
    let atlas_b = AtlasMemoryAdapter::open(&b).await.unwrap();
    assert_eq!(atlas_b.get_index().total_entries, 0);

    let listener = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _connector = b.connect(listener.local_addr());
    tokio::time::timeout(Duration::from_secs(30), atlas_b.wait_indexed(150))
        .await
        .expect("B indexes A's nodes as they land");
    assert_eq!(atlas_b.get_index(), atlas_a.get_index());
    for agent in agents {
        assert_eq!(
            atlas_b.query_by_agent(agent).await.unwrap(),
            atlas_a.query_by_agent(agent).await.unwrap()
        );
    }
    let (t1, t2) = (1_000_000 + 20_500, 1_000_000 + 90_000);
    assert_eq!(
        atlas_b.query_by_time_range(t1, t2).await.unwrap(),
        first[21..=90].to_vec()
    );

    // Live: a node A stores now reaches B's index without anyone asking.
    let late = node(999, "latecomer", "fact", 5);
    let seq = atlas_a.store_node(&late).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), atlas_b.wait_indexed(seq + 1))
        .await
        .expect("B indexes the live append");
    assert_eq!(
        atlas_b.query_by_agent("latecomer").await.unwrap(),
        vec![late.clone()]
    );
    assert_eq!(atlas_b.query_by_time_range(0, 5).await.unwrap(), vec![late]);
    // B's copy is read-only.
    let err = atlas_b.store_node(&node(1, "b", "c", 1)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    assert_eq!(atlas_b.rebuild_index().await.unwrap(), atlas_a.get_index());
    a.close().await.unwrap();
    b.close().await.unwrap();
}
