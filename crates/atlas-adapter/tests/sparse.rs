//! ATLAS on a sparse replica (issue 23): a peer that holds none of another peer's
//! 20,000-node memory log answers "the last 10 minutes", an agent's last 10 minutes and
//! an older window exactly as the writer's full index does, after fetching a few
//! hundred blocks (counted on the writer's wire and in the replica's store), and offline
//! answers from what it holds or fails with `REPLICATION_FAILED`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_atlas_adapter::{AtlasMemoryAdapter, DEFAULT_LOG, SparseQueryOptions};
use nova_hypercore_manager::{
    GetOptions, HypercoreManager, ManagedLog, ManagerConfig, ManagerEvent, ReplicaOptions,
};
use nova_hypercore_serialization::{Direction, ErrorCode, MemoryNodeEntry};
use tokio::sync::broadcast;

const NODES: u64 = 20_000;
const T0: u64 = 1_764_000_000_000;
/// One node every 2 s on average: 300 in 10 minutes.
const STEP_MS: u64 = 2_000;
const AGENTS: u64 = 5;
const TEN_MINUTES: u64 = 600_000;
/// Blocks a sparse query may fetch here: the window (about 300), the skew margin
/// (about 30) and two binary searches (about 30). A full download is 20,000.
const BOUND: u64 = 500;

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let config = ManagerConfig::builder()
        .storage_path(path)
        // Room for one event per block sent, so none is lost while we count.
        .event_capacity(1 << 16)
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    m
}

/// Node `i`, by agent `i % 5`: agent `k`'s clock is `7k` s behind, so timestamps are
/// out of order by up to 28 s (within the default one-minute skew bound).
fn node(i: u64) -> MemoryNodeEntry {
    let agent = i % AGENTS;
    MemoryNodeEntry {
        id: format!("node-{i}"),
        agent_source: format!("agent-{agent}"),
        category: ["fact", "plan"][(i % 2) as usize].into(),
        content: format!("memory {i}"),
        tags: vec![],
        importance: 0.5,
        timestamp: T0 + 30_000 + i * STEP_MS - agent * 7_000,
    }
}

/// Blocks of `log` the writer sent (one `replicate` send event per block).
fn sent_blocks(events: &mut broadcast::Receiver<ManagerEvent>) -> u64 {
    let mut sent = 0;
    loop {
        match events.try_recv() {
            Ok(ManagerEvent::Replicate {
                log_name,
                direction: Direction::Send,
                ..
            }) if log_name.as_str() == DEFAULT_LOG => sent += 1,
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Empty) => return sent,
            Err(e) => panic!("events lost while counting: {e}"),
        }
    }
}

async fn until_length(replica: &ManagedLog, n: u64) {
    let mut progress = replica.watch_progress().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while progress.borrow_and_update().length < n {
            progress.changed().await.unwrap();
        }
    })
    .await
    .expect("the replica learns the writer's length");
}

/// A writer (`a`) that stored `nodes` and a sparse replica of its log on a fresh
/// manager (`b`), connected over loopback TCP, knowing the writer's length.
struct Pair {
    a: HypercoreManager,
    b: HypercoreManager,
    writer: AtlasMemoryAdapter,
    reader: AtlasMemoryAdapter,
    replica: ManagedLog,
    /// The writer's events from before the replica connected.
    events: broadcast::Receiver<ManagerEvent>,
    _keep: (
        tempfile::TempDir,
        tempfile::TempDir,
        nova_hypercore_manager::Listener,
        nova_hypercore_manager::Connector,
    ),
}

async fn sparse_pair(nodes: &[MemoryNodeEntry]) -> Pair {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    let writer = AtlasMemoryAdapter::open(&a).await.unwrap();
    for chunk in nodes.chunks(1_000) {
        writer.store_nodes(chunk).await.unwrap();
    }
    a.enable_replication(DEFAULT_LOG).await.unwrap();
    let events = a.subscribe();

    let key = a.get_log(DEFAULT_LOG).await.unwrap().public_key();
    let replica = b
        .open_replica_with(DEFAULT_LOG, key, ReplicaOptions::sparse())
        .await
        .unwrap();
    b.enable_replication(DEFAULT_LOG).await.unwrap();
    let reader = AtlasMemoryAdapter::open(&b).await.unwrap();
    let listener = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let connector = b.connect(listener.local_addr());
    until_length(&replica, nodes.len() as u64).await;
    Pair {
        a,
        b,
        writer,
        reader,
        replica,
        events,
        _keep: (da, db, listener, connector),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_replica_answers_time_queries_as_the_full_index_after_a_few_hundred_blocks() {
    let nodes: Vec<MemoryNodeEntry> = (0..NODES).map(node).collect();
    let Pair {
        a,
        b,
        writer,
        reader,
        replica,
        mut events,
        _keep,
    } = sparse_pair(&nodes).await;

    // The last 10 minutes, as the writer's full index answers them.
    let newest = nodes.iter().map(|n| n.timestamp).max().unwrap();
    let (start, end) = (newest - TEN_MINUTES, newest);
    let expected = writer.query_by_time_range(start, end).await.unwrap();
    assert!(expected.len() > 250, "{} nodes", expected.len());
    let got = reader.query_by_time_range(start, end).await.unwrap();
    assert_eq!(got, expected);
    let held = replica.has_range(0..NODES).await.unwrap();
    let sent = sent_blocks(&mut events);
    assert!(held >= expected.len() as u64 && held < BOUND, "held {held}");
    assert!(sent >= held && sent < BOUND, "sent {sent}, held {held}");

    // One agent's last 10 minutes: what the time query fetched already answers it.
    let agent = reader
        .query_by_agent_in_time_range("agent-3", start, end, SparseQueryOptions::default())
        .await
        .unwrap();
    let mut agent_expected = expected.clone();
    agent_expected.retain(|n| n.agent_source == "agent-3");
    assert!(!agent.is_empty());
    assert_eq!(agent, agent_expected);
    assert_eq!(replica.has_range(0..NODES).await.unwrap(), held);

    // An older window (both ends searched).
    let (start2, end2) = (T0 + 10_000 * STEP_MS, T0 + 10_000 * STEP_MS + TEN_MINUTES);
    let older = reader.query_by_time_range(start2, end2).await.unwrap();
    assert_eq!(
        older,
        writer.query_by_time_range(start2, end2).await.unwrap()
    );
    assert!(older.len() > 250, "{} nodes", older.len());
    let held2 = replica.has_range(0..NODES).await.unwrap();
    assert!(held2 - held < BOUND, "held {held2} after {held}");

    // Offline: what is held still answers (without waiting); the rest is a typed error.
    a.close().await.unwrap();
    let offline = SparseQueryOptions::default().get(GetOptions::no_wait());
    assert_eq!(
        reader
            .query_by_time_range_with(start, end, offline)
            .await
            .unwrap(),
        expected
    );
    let (start3, end3) = (T0 + 3_000 * STEP_MS, T0 + 3_000 * STEP_MS + TEN_MINUTES);
    let err = reader
        .query_by_time_range_with(start3, end3, offline)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReplicationFailed, "{err}");
    let err = reader
        .query_by_time_range_with(
            start3,
            end3,
            SparseQueryOptions::default().get(GetOptions::timeout(Duration::from_millis(300))),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReplicationFailed, "{err}");
    b.close().await.unwrap();
}

/// A full replica and the writer keep answering from their index (no search): a full
/// replica that holds everything answers as the writer does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_replica_still_answers_from_its_index() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    let writer = AtlasMemoryAdapter::open(&a).await.unwrap();
    let nodes: Vec<MemoryNodeEntry> = (0..2_000).map(node).collect();
    writer.store_nodes(&nodes).await.unwrap();
    a.enable_replication(DEFAULT_LOG).await.unwrap();
    let key = a.get_log(DEFAULT_LOG).await.unwrap().public_key();
    let replica = b.open_replica(DEFAULT_LOG, key).await.unwrap();
    assert!(!replica.is_sparse());
    b.enable_replication(DEFAULT_LOG).await.unwrap();
    let reader = AtlasMemoryAdapter::open(&b).await.unwrap();
    let listener = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _connector = b.connect(listener.local_addr());
    tokio::time::timeout(Duration::from_secs(30), reader.wait_indexed(2_000))
        .await
        .expect("the full replica indexes every node");
    let (start, end) = (T0 + 500 * STEP_MS, T0 + 700 * STEP_MS);
    let expected = writer.query_by_time_range(start, end).await.unwrap();
    assert!(expected.len() > 150);
    assert_eq!(
        reader.query_by_time_range(start, end).await.unwrap(),
        expected
    );
    // With no skew margin at all, the index still answers exactly (it is not searched).
    let strict = SparseQueryOptions::default().skew_ms(0);
    assert_eq!(
        reader
            .query_by_time_range_with(start, end, strict)
            .await
            .unwrap(),
        expected
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// What the skew bound guarantees, pinned: a node stored far later than its timestamp
/// (more than the bound out of order, outside the searched window) is not found with
/// the default bound, and is with a bound that covers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_further_out_of_order_than_the_skew_bound_needs_a_wider_bound() {
    let mut nodes: Vec<MemoryNodeEntry> = (0..2_000).map(node).collect();
    // Seq 1,990: a memory of minute 5 stored an hour later.
    nodes[1_990].timestamp = T0 + 300_000;
    let pair = sparse_pair(&nodes).await;
    let (start, end) = (T0 + 290_000, T0 + 310_000);
    let expected = pair.writer.query_by_time_range(start, end).await.unwrap();
    assert!(expected.contains(&nodes[1_990]), "{expected:?}");
    let got = pair.reader.query_by_time_range(start, end).await.unwrap();
    let mut without = expected.clone();
    without.retain(|n| n != &nodes[1_990]);
    assert_eq!(got, without);
    let wide = SparseQueryOptions::default().skew_ms(2 * 3_600_000);
    assert_eq!(
        pair.reader
            .query_by_time_range_with(start, end, wide)
            .await
            .unwrap(),
        expected
    );
    pair.a.close().await.unwrap();
    pair.b.close().await.unwrap();
}
