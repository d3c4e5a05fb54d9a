//! ATLAS memory across two peers: peer A stores memory nodes through its
//! `AtlasMemoryAdapter`; peer B replicates A's `atlas-memory` log over loopback TCP
//! (direct mode) and answers time-range, agent and category queries from its own index,
//! built as the blocks land, including a node A stores while they are connected.
//!
//! The second step of `cargo xtask demo` (after the manager demo); data in a temporary
//! directory. Run alone: `cargo run -p nova-hypercore-atlas-adapter --example demo`.

use std::time::Duration;

use nova_hypercore_atlas_adapter::{AtlasMemoryAdapter, BUCKET_WIDTH_MS, DEFAULT_LOG};
use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
use nova_hypercore_serialization::MemoryNodeEntry;

type BoxError = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let temp = tempfile::tempdir()?;
    let a = peer(&temp.path().join("peer-a")).await?;
    let b = peer(&temp.path().join("peer-b")).await?;

    // Peer A: an ATLAS agent team writes memory nodes over the last half hour.
    let atlas_a = AtlasMemoryAdapter::open(&a).await?;
    let now = now_ms();
    let notes = [
        (
            "planner",
            "plan",
            "split the sync work into three steps",
            30,
        ),
        (
            "researcher",
            "fact",
            "hypercore blocks are signed by the writer",
            27,
        ),
        ("critic", "observation", "step two lacks a timeout", 22),
        ("planner", "plan", "add a bounded wait to step two", 18),
        (
            "researcher",
            "fact",
            "a replica verifies every block it stores",
            12,
        ),
        ("critic", "reflection", "the plan is sound now", 7),
        ("planner", "plan", "ship it", 2),
    ];
    let nodes: Vec<MemoryNodeEntry> = notes
        .iter()
        .enumerate()
        .map(
            |(i, (agent, category, content, minutes_ago))| MemoryNodeEntry {
                id: format!("node-{i}"),
                agent_source: (*agent).into(),
                category: (*category).into(),
                content: (*content).into(),
                tags: vec!["demo".into()],
                importance: 0.5 + i as f64 / 20.0,
                timestamp: now - minutes_ago * 60_000,
            },
        )
        .collect();
    for node in &nodes {
        atlas_a.store_node(node).await?;
    }
    println!(
        "peer A stored {} ATLAS nodes in {DEFAULT_LOG} (index: {} entries, {} agents, {} time buckets of {} s)",
        nodes.len(),
        atlas_a.get_index().total_entries,
        atlas_a.get_index().by_agent.len(),
        atlas_a.get_index().by_timestamp.len(),
        BUCKET_WIDTH_MS / 1000
    );

    // A shares the log on a TCP listener; B opens a replica by A's public key and dials.
    a.enable_replication(DEFAULT_LOG).await?;
    let listener = a.listen(([127, 0, 0, 1], 0).into()).await?;
    let key = a.get_log(DEFAULT_LOG).await?.public_key();
    b.open_replica(DEFAULT_LOG, key).await?;
    b.enable_replication(DEFAULT_LOG).await?;
    let atlas_b = AtlasMemoryAdapter::open(&b).await?;
    let _connection = b.connect(listener.local_addr());
    wait(&atlas_b, nodes.len() as u64).await?;
    println!(
        "peer B replicated A's log over 127.0.0.1 (direct TCP) and indexed {} nodes as they landed\n",
        atlas_b.get_index().total_entries
    );

    // B answers from its own copy.
    show(
        "B: query_by_agent(\"planner\")",
        &atlas_b.query_by_agent("planner").await?,
        now,
    );
    show(
        "B: query_by_time_range(last 15 minutes)",
        &atlas_b.query_by_time_range(now - 15 * 60_000, now).await?,
        now,
    );
    show(
        "B: query_by_category(\"fact\")",
        &atlas_b.query_by_category("fact").await?,
        now,
    );

    // Live: a node A stores now reaches B's index without anyone asking.
    let late = MemoryNodeEntry {
        id: "node-late".into(),
        agent_source: "critic".into(),
        category: "observation".into(),
        content: "peer B sees this one live".into(),
        tags: vec!["demo".into(), "live".into()],
        importance: 0.9,
        timestamp: now_ms(),
    };
    let seq = atlas_a.store_node(&late).await?;
    wait(&atlas_b, seq + 1).await?;
    show(
        "B: query_by_agent(\"critic\") after A stored one more",
        &atlas_b.query_by_agent("critic").await?,
        now,
    );
    let same = atlas_b.rebuild_index().await? == atlas_a.get_index();
    println!(
        "B's index rebuilt from its replica equals A's index: {same}; B's copy is read-only: {}",
        atlas_b
            .store_node(&late)
            .await
            .err()
            .map_or("no".to_owned(), |e| format!("yes ({})", e.code()))
    );
    if !same {
        return Err("B's rebuilt index differs from A's".into());
    }
    b.close().await?;
    a.close().await?;
    Ok(())
}

async fn peer(dir: &std::path::Path) -> Result<HypercoreManager, BoxError> {
    let manager = HypercoreManager::new(ManagerConfig::builder().storage_path(dir).build()?)?;
    manager.initialize().await?;
    Ok(manager)
}

/// Waits (at most 30 s) until B's index covers blocks `0..length`.
async fn wait(atlas: &AtlasMemoryAdapter, length: u64) -> Result<(), BoxError> {
    tokio::time::timeout(Duration::from_secs(30), atlas.wait_indexed(length))
        .await
        .map_err(|_| format!("peer B did not index {length} entries within 30 s").into())
}

fn show(title: &str, nodes: &[MemoryNodeEntry], now: u64) {
    println!("{title}: {} nodes", nodes.len());
    for n in nodes {
        println!(
            "  {:>3} min ago  {:<10} {:<11} {}",
            now.saturating_sub(n.timestamp) / 60_000,
            n.agent_source,
            n.category,
            n.content
        );
    }
    println!();
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
}
