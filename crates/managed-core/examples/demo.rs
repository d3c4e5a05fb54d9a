//! The main job until the manager exists: three logs on disk, typed entries appended,
//! read back verified, a restart, and a tamper check.
//!
//! `cargo xtask demo [--dir DIR]` (data in a temporary directory unless DIR is given).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use nova_hypercore_managed_core::{Durability, ManagedCore, OpenOptions};
use nova_hypercore_serialization::{
    CRDTUpdateEntry, LogName, MemoryNodeEntry, deserialize, serialize,
};

type BoxError = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let keep = std::env::args().nth(1).map(PathBuf::from);
    let temp = tempfile::tempdir()?;
    let root = keep.clone().unwrap_or_else(|| temp.path().to_owned());
    println!("store: {}", root.display());

    let open = |name: &'static str| {
        let dir = root.join(name);
        async move {
            let name = LogName::parse(name)?;
            let options = OpenOptions::new().durability(Durability::FsyncPerBatch);
            Ok::<_, BoxError>(ManagedCore::open(dir, name, options).await?)
        }
    };

    let atlas = open("atlas-memory").await?;
    let crdt = open("crdt-collab").await?;
    let agent = open("agent-state").await?;

    let node = MemoryNodeEntry {
        id: format!("node-{}", atlas.length()),
        agent_source: "atlas".into(),
        category: "observation".into(),
        content: "Hypercore logs are append-only and signed — ✓".into(),
        tags: vec!["p2p".into(), "demo".into()],
        importance: 0.8,
        timestamp: now_ms(),
    };
    let seq = atlas.append(&serialize(&node)?).await?;
    let update = CRDTUpdateEntry {
        source_id: "replica-a".into(),
        timestamp: now_ms(),
        causal_clock: [("replica-a".to_owned(), crdt.length() + 1)].into(),
        payload: vec![0x01, 0x02, 0xff],
    };
    let crdt_seq = crdt.append(&serialize(&update)?).await?;
    let steps: Vec<Vec<u8>> = (0..5).map(|i| format!("step {i}").into_bytes()).collect();
    let agent_seqs = agent.append_batch(&steps).await?;

    let back: MemoryNodeEntry = deserialize(&atlas.get(seq).await?)?;
    assert_eq!(back, node);
    let back_update: CRDTUpdateEntry = deserialize(&crdt.get(crdt_seq).await?)?;
    assert_eq!(back_update, update);
    println!(
        "atlas-memory[{seq}] = {:?} (importance {})",
        back.content, back.importance
    );
    println!(
        "crdt-collab[{crdt_seq}] = clock {:?}, {} payload bytes",
        back_update.causal_clock,
        back_update.payload.len()
    );
    println!(
        "agent-state[{}..{}] appended as one signed batch",
        agent_seqs.start, agent_seqs.end
    );

    for log in [&atlas, &crdt, &agent] {
        log.close().await?;
    }

    // A restart: everything acknowledged is there, with the same keys.
    println!(
        "\n{:<14} {:>6} {:>10}  {:<16} verified",
        "log", "length", "bytes", "public key"
    );
    for name in ["atlas-memory", "crdt-collab", "agent-state"] {
        let log = open(name).await?;
        let mut verified = 0;
        for s in 0..log.length() {
            if log.verify_signature(s).await? {
                verified += 1;
            }
        }
        let key: String = log.public_key()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!(
            "{:<14} {:>6} {:>10}  {key}…  {verified}/{}",
            name,
            log.length(),
            log.byte_length(),
            log.length()
        );
        log.close().await?;
    }

    // Tamper with a stored block: it is reported, never returned.
    let data = root.join("agent-state").join("data");
    let mut bytes = std::fs::read(&data)?;
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
    std::fs::write(&data, &bytes)?;
    let agent = open("agent-state").await?;
    match agent.get(agent.length() - 1).await {
        Err(e) => println!("\nafter flipping one bit on disk: {} ({})", e.code(), e),
        Ok(_) => return Err("tampered block was returned as good data".into()),
    }
    // Undo, so a kept store stays valid.
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
    std::fs::write(&data, &bytes)?;
    agent.close().await?;
    if keep.is_some() {
        println!("data kept in {}", root.display());
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
