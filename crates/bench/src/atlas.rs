//! ATLAS adapter workloads (no JS anchor: informational rows): 100,000 memory nodes
//! through `AtlasMemoryAdapter` on a `HypercoreManager` on disk.
//!
//! - `atlas_store`: `store_node` one node at a time (one signed append each); nodes/s.
//! - `atlas_query_time`: 500 `query_by_time_range` calls over 10-minute windows
//!   (about 600 nodes each); queries/s, p50 / p99 latency.
//! - `atlas_query_agent`: 500 `query_by_agent` calls over 100 agents (1,000 nodes each,
//!   every 100th seq); queries/s, p50 / p99 latency.
//! - `atlas_rebuild`: a fresh manager on the stored log: `AtlasMemoryAdapter::open`
//!   (the index built from the log), then `rebuild_index`; seconds for 100,000 nodes.

use std::path::Path;
use std::time::Instant;

use nova_hypercore_atlas_adapter::AtlasMemoryAdapter;
use nova_hypercore_managed_core::Durability;
use nova_hypercore_manager::HypercoreManager;
use nova_hypercore_serialization::MemoryNodeEntry;
use serde_json::{Value, json};

use crate::{BoxError, result};

/// Nodes stored.
const NODES: u64 = 100_000;
/// Node `i` is stored at `T0 + i * STEP_MS`: one a second, 60 per index bucket.
const T0: u64 = 1_764_000_000_000;
const STEP_MS: u64 = 1_000;
const AGENTS: u64 = 100;
const QUERIES: usize = 500;
/// Time-range query window.
const WINDOW_MS: u64 = 600_000;

fn node(i: u64) -> MemoryNodeEntry {
    MemoryNodeEntry {
        id: format!("node-{i:06}"),
        agent_source: format!("agent-{:03}", i % AGENTS),
        category: ["fact", "plan", "observation", "reflection"][(i % 4) as usize].to_owned(),
        content: format!(
            "memory {i}: the agent noted that hypercore logs are append-only, signed and replicated to peers"
        ),
        tags: vec!["atlas".into(), format!("t{}", i % 10)],
        importance: (i % 101) as f64 / 100.0,
        timestamp: T0 + i * STEP_MS,
    }
}

async fn manager(dir: &Path, durability: Durability) -> Result<HypercoreManager, BoxError> {
    crate::open_manager(dir, durability, false).await
}

/// Stores all nodes in batches of 1,000 (set-up of the query and rebuild workloads).
async fn fill(atlas: &AtlasMemoryAdapter) -> Result<(), BoxError> {
    let nodes: Vec<MemoryNodeEntry> = (0..NODES).map(node).collect();
    for chunk in nodes.chunks(1000) {
        atlas.store_nodes(chunk).await?;
    }
    Ok(())
}

pub(crate) async fn store(dir: &Path, durability: Durability) -> Result<Value, BoxError> {
    let m = manager(dir, durability).await?;
    let atlas = AtlasMemoryAdapter::open(&m).await?;
    let nodes: Vec<MemoryNodeEntry> = (0..NODES).map(node).collect();
    let t0 = Instant::now();
    for n in &nodes {
        atlas.store_node(n).await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let index = atlas.get_index();
    if index.total_entries != NODES {
        return Err(format!("indexed {} of {NODES}", index.total_entries).into());
    }
    let log = m.get_log(atlas.log_name().as_str()).await?;
    let bytes = log.byte_length() as usize;
    m.close().await?;
    Ok(result(
        "atlas_store",
        NODES as usize,
        bytes,
        secs,
        json!({"nodes_per_s": NODES as f64 / secs}),
    ))
}

pub(crate) async fn query(
    dir: &Path,
    durability: Durability,
    by_agent: bool,
) -> Result<Value, BoxError> {
    let m = manager(dir, durability).await?;
    let atlas = AtlasMemoryAdapter::open(&m).await?;
    fill(&atlas).await?;
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut latencies = Vec::with_capacity(QUERIES);
    let mut found = 0usize;
    let t0 = Instant::now();
    for _ in 0..QUERIES {
        let q = Instant::now();
        let got = if by_agent {
            let agent = format!("agent-{:03}", next() % AGENTS);
            atlas.query_by_agent(&agent).await?
        } else {
            let start = T0 + next() % (NODES * STEP_MS - WINDOW_MS);
            atlas.query_by_time_range(start, start + WINDOW_MS).await?
        };
        latencies.push(q.elapsed().as_secs_f64());
        found += got.len();
    }
    let secs = t0.elapsed().as_secs_f64();
    let expected = if by_agent {
        (NODES / AGENTS) as usize
    } else {
        (WINDOW_MS / STEP_MS) as usize
    };
    let per_query = found as f64 / QUERIES as f64;
    if (per_query - expected as f64).abs() > 1.0 {
        return Err(format!("{per_query} nodes per query, expected about {expected}").into());
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1000.0;
    m.close().await?;
    Ok(result(
        if by_agent {
            "atlas_query_agent"
        } else {
            "atlas_query_time"
        },
        QUERIES,
        0,
        secs,
        json!({
            "nodes_indexed": NODES,
            "nodes_per_query": per_query,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
        }),
    ))
}

pub(crate) async fn rebuild(dir: &Path, durability: Durability) -> Result<Value, BoxError> {
    let m = manager(dir, durability).await?;
    fill(&AtlasMemoryAdapter::open(&m).await?).await?;
    m.close().await?;
    // As at app start: a new manager opens the store, the adapter indexes the log.
    let m = manager(dir, durability).await?;
    let t0 = Instant::now();
    let atlas = AtlasMemoryAdapter::open(&m).await?;
    let open_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let index = atlas.rebuild_index().await?;
    let rebuild_secs = t1.elapsed().as_secs_f64();
    if index.total_entries != NODES || atlas.get_index() != index {
        return Err(format!("rebuilt {} of {NODES}", index.total_entries).into());
    }
    m.close().await?;
    Ok(result(
        "atlas_rebuild",
        NODES as usize,
        0,
        open_secs,
        json!({"open_seconds": open_secs, "rebuild_index_seconds": rebuild_secs}),
    ))
}
