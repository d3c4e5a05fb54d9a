//! ATLAS on a sparse replica (issue 23; no JS anchor: informational rows): a writer
//! stores 100,000 memory nodes; a fresh device (another manager, empty store) opens a
//! sparse replica of the log, connects over loopback TCP and asks for "the last 10
//! minutes", then one agent's last 10 minutes.
//!
//! - `atlas_sparse`: one node every 2 s on average (about 55 hours of agent activity):
//!   about 300 nodes in the last 10 minutes.
//! - `atlas_sparse_burst`: one node every 50 ms (about 1.4 hours): about 12,000 nodes in
//!   the last 10 minutes, so the answer alone is 12,000 blocks.
//!
//! Both: 8 agents whose clocks differ by up to 28 s (timestamps out of order within the
//! default skew bound) plus per-node jitter. `seconds` = time to first answer, from
//! opening the replica on the fresh device (connection, learning the length, the search
//! and the reads); extras: blocks the writer sent (its `replicate` send events, one per
//! block), blocks the replica holds and received, the answer's size, and whether it
//! equals the writer's full-index answer (the run fails otherwise).

use std::path::Path;
use std::time::{Duration, Instant};

use nova_hypercore_atlas_adapter::{AtlasMemoryAdapter, DEFAULT_LOG, SparseQueryOptions};
use nova_hypercore_managed_core::Durability;
use nova_hypercore_manager::{HypercoreManager, ManagerConfig, ManagerEvent, ReplicaOptions};
use nova_hypercore_serialization::{Direction, MemoryNodeEntry};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::{BoxError, result};

const NODES: u64 = 100_000;
const T0: u64 = 1_764_000_000_000;
const AGENTS: u64 = 8;
const TEN_MINUTES: u64 = 600_000;

fn node(i: u64, step_ms: u64) -> MemoryNodeEntry {
    let agent = i % AGENTS;
    // A fixed pseudo-random jitter in 0..step_ms.
    let jitter = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    MemoryNodeEntry {
        id: format!("node-{i:06}"),
        agent_source: format!("agent-{agent}"),
        category: ["fact", "plan", "observation", "reflection"][(i % 4) as usize].to_owned(),
        content: format!(
            "memory {i}: the agent noted that hypercore logs are append-only, signed and replicated to peers"
        ),
        tags: vec!["atlas".into()],
        importance: (i % 101) as f64 / 100.0,
        timestamp: T0 + 30_000 + i * step_ms + jitter % step_ms - agent * 4_000,
    }
}

async fn manager(dir: &Path, durability: Durability) -> Result<HypercoreManager, BoxError> {
    let config = ManagerConfig::builder()
        .storage_path(dir)
        .durability(durability)
        // Room for one event per block sent, so the writer's count loses none.
        .event_capacity(1 << 18)
        .build()?;
    let manager = HypercoreManager::new(config)?;
    manager.initialize().await?;
    Ok(manager)
}

/// Blocks of the ATLAS log the writer sent since `events` subscribed.
fn sent_blocks(events: &mut broadcast::Receiver<ManagerEvent>) -> Result<u64, BoxError> {
    let mut sent = 0;
    loop {
        match events.try_recv() {
            Ok(ManagerEvent::Replicate {
                log_name,
                direction: Direction::Send,
                ..
            }) if log_name.as_str() == DEFAULT_LOG => sent += 1,
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Empty) => return Ok(sent),
            Err(e) => return Err(format!("writer events lost while counting: {e}").into()),
        }
    }
}

pub(crate) async fn run(
    dir: &Path,
    durability: Durability,
    workload: &str,
    step_ms: u64,
) -> Result<Value, BoxError> {
    let a = manager(&dir.join("writer"), durability).await?;
    let writer = AtlasMemoryAdapter::open(&a).await?;
    let nodes: Vec<MemoryNodeEntry> = (0..NODES).map(|i| node(i, step_ms)).collect();
    for chunk in nodes.chunks(1000) {
        writer.store_nodes(chunk).await?;
    }
    a.enable_replication(DEFAULT_LOG).await?;
    let key = a.get_log(DEFAULT_LOG).await?.public_key();
    let listener = a.listen("127.0.0.1:0".parse()?).await?;
    let newest = nodes.iter().map(|n| n.timestamp).max().unwrap_or(T0);
    let (start, end) = (newest - TEN_MINUTES, newest);
    let expected = writer.query_by_time_range(start, end).await?;
    let agent = "agent-3";
    let mut agent_expected = expected.clone();
    agent_expected.retain(|n| n.agent_source == agent);
    let mut events = a.subscribe();

    // The fresh device.
    let b = manager(&dir.join("reader"), durability).await?;
    let t0 = Instant::now();
    let replica = b
        .open_replica_with(DEFAULT_LOG, key, ReplicaOptions::sparse())
        .await?;
    b.enable_replication(DEFAULT_LOG).await?;
    let reader = AtlasMemoryAdapter::open(&b).await?;
    let _connector = b.connect(listener.local_addr());
    let mut progress = replica.watch_progress().await?;
    tokio::time::timeout(Duration::from_secs(60), async {
        while progress.borrow_and_update().length < NODES {
            if progress.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .map_err(|_| "the replica did not learn the writer's length in 60 s")?;
    let length_secs = t0.elapsed().as_secs_f64();
    let q = Instant::now();
    let got = reader.query_by_time_range(start, end).await?;
    let query_secs = q.elapsed().as_secs_f64();
    let first_answer_secs = t0.elapsed().as_secs_f64();
    if got != expected {
        return Err(format!(
            "sparse answer differs from the full index: {} vs {} nodes",
            got.len(),
            expected.len()
        )
        .into());
    }
    let held = replica.has_range(0..NODES).await?;
    let received = b.download_progress(DEFAULT_LOG).await?.blocks_received;
    let sent = sent_blocks(&mut events)?;

    let q = Instant::now();
    let by_agent = reader
        .query_by_agent_in_time_range(agent, start, end, SparseQueryOptions::default())
        .await?;
    let agent_secs = q.elapsed().as_secs_f64();
    if by_agent != agent_expected {
        return Err("sparse agent answer differs from the full index".into());
    }
    let sent_after_agent = sent + sent_blocks(&mut events)?;

    b.close().await?;
    a.close().await?;
    Ok(result(
        workload,
        1,
        0,
        first_answer_secs,
        json!({
            "nodes_in_log": NODES,
            "step_ms": step_ms,
            "time_to_first_answer_ms": first_answer_secs * 1000.0,
            "until_length_known_ms": length_secs * 1000.0,
            "query_ms": query_secs * 1000.0,
            "answer_nodes": expected.len(),
            "blocks_sent_by_writer": sent,
            "blocks_received_by_replica": received,
            "blocks_held_by_replica": held,
            "blocks_beyond_answer": sent.saturating_sub(expected.len() as u64),
            "agent_query_ms": agent_secs * 1000.0,
            "agent_answer_nodes": by_agent.len(),
            "blocks_sent_after_agent_query": sent_after_agent,
            "same_answer_as_full_index": true,
        }),
    ))
}
