//! The main job: a Nova26-style store with three logs, typed entries, events, status,
//! metrics, a restart, a tamper check, and a second peer that finds the store on a DHT
//! (a bootstrap node hosted in this process, on 127.0.0.1) and replicates a log.
//!
//! `cargo xtask demo [--dir DIR]` (a temporary directory unless DIR is given).

use std::path::PathBuf;

use nova_hypercore_manager::{
    BootstrapNode, Durability, HypercoreManager, ManagerConfig, SwarmOptions,
};
use nova_hypercore_serialization::{CRDTUpdateEntry, MemoryNodeEntry, deserialize, serialize};

type BoxError = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let keep = std::env::args().nth(1).map(PathBuf::from);
    let temp = tempfile::tempdir()?;
    let root = keep
        .clone()
        .unwrap_or_else(|| temp.path().join("hypercore"));
    let config = ManagerConfig::builder()
        .storage_path(&root)
        .durability(Durability::FsyncPerBatch)
        .build()?;

    let manager = HypercoreManager::new(config.clone())?;
    let mut events = manager.subscribe();
    let meta = manager.initialize().await?;
    println!(
        "ready: {} ({} logs, {} bytes already stored)",
        meta.storage_path, meta.log_count, meta.total_byte_size
    );

    let now = now_ms();
    let node = MemoryNodeEntry {
        id: format!("node-{now}"),
        agent_source: "atlas".into(),
        category: "observation".into(),
        content: "Hypercore logs are append-only and signed — ✓".into(),
        tags: vec!["p2p".into(), "demo".into()],
        importance: 0.8,
        timestamp: now,
    };
    let atlas_seq = manager.append("atlas-memory", &serialize(&node)?).await?;
    let update = CRDTUpdateEntry {
        source_id: "replica-a".into(),
        timestamp: now,
        causal_clock: [("replica-a".to_owned(), atlas_seq + 1)].into(),
        payload: vec![0x01, 0x02, 0xff],
    };
    let crdt_seq = manager.append("crdt-collab", &serialize(&update)?).await?;
    let steps: Vec<Vec<u8>> = (0..5).map(|i| format!("step {i}").into_bytes()).collect();
    let agent_seqs = manager.append_batch("agent-state", &steps).await?;

    let back: MemoryNodeEntry = deserialize(&manager.read("atlas-memory", atlas_seq).await?)?;
    assert_eq!(back, node);
    let back_update: CRDTUpdateEntry = deserialize(&manager.read("crdt-collab", crdt_seq).await?)?;
    assert_eq!(back_update, update);
    let range = manager
        .read_range("agent-state", agent_seqs.start, agent_seqs.end)
        .await?;
    println!(
        "atlas-memory[{atlas_seq}]  {:?} (importance {})",
        back.content, back.importance
    );
    println!(
        "crdt-collab[{crdt_seq}]   clock {:?}, {} payload bytes",
        back_update.causal_clock,
        back_update.payload.len()
    );
    println!(
        "agent-state[{}..{}] {} entries, one signed batch",
        agent_seqs.start,
        agent_seqs.end,
        range.len()
    );

    // A bad request is a typed error, and the store stays usable.
    if let Err(err) = manager.read("agent-state", 10_000).await {
        println!("read past the end: {} ({err})", err.code());
    }
    if let Err(err) = manager.append("../escape", b"x").await {
        println!("bad log name:      {} ({err})", err.code());
    }

    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    while let Ok(e) = events.try_recv() {
        *seen.entry(e.name()).or_default() += 1;
    }
    println!("events: {seen:?}");
    println!(
        "status:  {}",
        serde_json::to_string(&manager.status().await)?
    );
    println!("metrics: {}", serde_json::to_string(&manager.metrics())?);
    manager.close().await?;

    // A restart: the same keys, everything acknowledged is there, every block verifies.
    let manager = HypercoreManager::new(config.clone())?;
    manager.initialize().await?;
    println!(
        "\n{:<14} {:>6} {:>8}  {:<18} verified",
        "log", "length", "bytes", "public key"
    );
    for name in ["atlas-memory", "crdt-collab", "agent-state"] {
        let log = manager.get_log(name).await?;
        let length = log.current_length().await?;
        let mut ok = 0;
        for seq in 0..length {
            if log.verify_signature(seq).await? {
                ok += 1;
            }
        }
        let key: String = log.public_key()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!(
            "{name:<14} {length:>6} {:>8}  {key}…  {ok}/{length}",
            log.byte_length()
        );
    }

    // Flip one bit of a stored block on disk while the store is closed (a running core
    // may serve the block from its read-ahead window): it is reported, never returned.
    let log = manager.get_log("agent-state").await?;
    let last = log.current_length().await? - 1;
    let data = log.path().join("data");
    manager.close().await?;
    let mut bytes = std::fs::read(&data)?;
    if let Some(b) = bytes.last_mut() {
        *b ^= 1;
    }
    std::fs::write(&data, &bytes)?;
    let manager = HypercoreManager::new(config)?;
    manager.initialize().await?;
    match manager.read("agent-state", last).await {
        Err(e) => println!("\nafter flipping one bit on disk: {} ({e})", e.code()),
        Ok(_) => return Err("tampered block was returned as good data".into()),
    }
    if let Some(b) = bytes.last_mut() {
        *b ^= 1;
    }
    std::fs::write(&data, &bytes)?;

    // A second peer finds the store by the log's discovery key on a DHT and replicates.
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let node = BootstrapNode::start((loopback, 0).into()).await?;
    let mut server = SwarmOptions::new(vec![node.addr()])
        .host(loopback)
        .direct((loopback, 0).into());
    server.client = false;
    manager.start_swarm(server).await?;
    manager.enable_replication("atlas-memory").await?;
    let peer = HypercoreManager::new(
        ManagerConfig::builder()
            .storage_path(temp.path().join("peer"))
            .build()?,
    )?;
    peer.initialize().await?;
    let source = manager.get_log("atlas-memory").await?;
    let replica = peer
        .open_replica("atlas-memory", source.public_key())
        .await?;
    let mut client = SwarmOptions::new(vec![node.addr()]).host(loopback);
    client.server = false;
    peer.start_swarm(client).await?;
    peer.enable_replication("atlas-memory").await?;
    let want = source.current_length().await?;
    let mut progress = replica.watch_progress().await?;
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while progress.borrow_and_update().contiguous_length < want {
            if progress.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .map_err(|_| "the second peer did not sync within 30 s")?;
    let first: MemoryNodeEntry = deserialize(&peer.read("atlas-memory", 0).await?)?;
    println!(
        "
a second peer found atlas-memory on the DHT (bootstrap {}), replicated {want}/{want} entries {}, verified; first: {:?}",
        node.addr(),
        if peer.direct_peers().await.is_empty() {
            "over the swarm connection"
        } else {
            "over direct TCP"
        },
        first.content
    );
    peer.close().await?;
    node.stop().await;
    manager.close().await?;
    if keep.is_some() {
        println!("data kept in {}", root.display());
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
}
