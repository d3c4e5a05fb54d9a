//! Hostile peers against a real manager (its `listen`er, sessions and store), played by
//! the replication crate's raw wire peer (`replication/tests/raw_peer`): what a peer
//! without the write key can send must not break a replica the manager holds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../replication/tests/raw_peer/mod.rs"]
mod raw_peer;

use nova_hypercore_managed_core::{CoreFormat, ManagedCore, OpenOptions};
use nova_hypercore_manager::{HypercoreManager, Listener, ManagerConfig};
use nova_hypercore_replication::wire::{Data, Message, Range, Synchronize};
use nova_hypercore_serialization::LogName;

use raw_peer::Raw;

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

/// A raw wire peer connected to `listener` (Noise handshake done, no channel yet).
async fn raw_peer_of(listener: &Listener) -> Raw {
    let stream = tokio::net::TcpStream::connect(listener.local_addr())
        .await
        .unwrap();
    Raw::connect(stream).await
}

fn sync_with_manifest(length: u64) -> Message {
    Message::Synchronize(Synchronize {
        length,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        has_manifest: true,
        ..Synchronize::default()
    })
}

/// Issue 21 (high): a relaying peer pads a hypercore 11 writer's real signature with
/// 300 KiB. Before the fix the manager's replica verified it, stored it, and broke at
/// the next checkpoint (the oplog header holds 4 KiB); now it is refused and the log
/// stays whole across a restart of the manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_padded_signature_is_refused_and_the_managers_log_stays_whole() {
    let wdir = tempfile::tempdir().unwrap();
    let w = ManagedCore::open(
        wdir.path(),
        LogName::parse("w").unwrap(),
        OpenOptions::new().format(CoreFormat::V1),
    )
    .await
    .unwrap();
    for i in 0..20 {
        w.append(format!("entry {i}").as_bytes()).await.unwrap();
    }
    let key = w.public_key();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    m.open_replica("notes", key).await.unwrap();
    m.enable_replication("notes").await.unwrap();
    let listener = m.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut raw = raw_peer_of(&listener).await;
    raw.open(&key).await;
    raw.send_message(sync_with_manifest(20)).await;
    let req = raw.request().await.expect("an upgrade request");
    let proof = w
        .serve_proof(None, req.upgrade.clone())
        .await
        .unwrap()
        .unwrap();
    let mut upgrade = proof.upgrade.expect("an upgrade");
    upgrade
        .signature
        .extend(std::iter::repeat_n(0u8, 300 * 1024));
    raw.send_message(Message::Data(Data {
        request: req.id,
        fork: proof.fork,
        upgrade: Some(upgrade),
        manifest: w.manifest(),
        ..Data::default()
    }))
    .await;
    // Refused: the manager's session closes the channel; nothing was stored.
    while raw.next().await.is_some() {}
    assert!(
        raw.closed,
        "the channel stayed open after a padded signature"
    );
    assert_eq!(m.get_length("notes").await.unwrap(), 0);
    // The log is not broken: the writer's own upgrade, on a new connection, is taken
    // and every entry can be fetched.
    let mut honest = raw_peer_of(&listener).await;
    honest.open(&key).await;
    honest.send_message(sync_with_manifest(20)).await;
    honest
        .send_message(Message::Range(Range {
            drop: false,
            start: 0,
            length: 20,
        }))
        .await;
    let writer = w.clone();
    let serving = tokio::spawn(async move {
        while let Some(req) = honest.request().await {
            let proof = writer
                .serve_proof(req.block.clone(), req.upgrade.clone())
                .await
                .unwrap();
            let (block, upgrade, fork) = proof
                .map(|p| (p.block, p.upgrade, p.fork))
                .unwrap_or_default();
            honest
                .send_message(Message::Data(Data {
                    request: req.id,
                    fork,
                    block,
                    upgrade,
                    manifest: if req.manifest {
                        writer.manifest()
                    } else {
                        None
                    },
                    ..Data::default()
                }))
                .await;
        }
    });
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while m
            .read_range("notes", 0, 20)
            .await
            .map(|r| r.len())
            .unwrap_or(0)
            != 20
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the honest writer's entries never all arrived: the log is broken");
    serving.abort();
    for i in 0..20u64 {
        assert_eq!(
            m.read("notes", i).await.unwrap(),
            format!("entry {i}").into_bytes()
        );
    }
    drop(listener);
    m.close().await.unwrap();
    // The store opens again and the log with it.
    let m = manager(dir.path()).await;
    let log = m.open_replica("notes", key).await.unwrap();
    assert_eq!(log.public_key(), key);
    assert_eq!(m.get_length("notes").await.unwrap(), 20);
    assert_eq!(m.read("notes", 19).await.unwrap(), b"entry 19".to_vec());
    m.close().await.unwrap();
}

/// Issue 21 (medium): a peer that completes the handshake with the manager's listener
/// and then shares nothing (its only open is for a log the manager does not have) held
/// one of the listener's connections for ever. Now the manager closes it once no
/// channel has been open for `connection_idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_closes_a_connection_that_shares_nothing() {
    use futures::{SinkExt, StreamExt};
    use nova_hypercore_replication::{CipherEvent, CipherTrait};

    let dir = tempfile::tempdir().unwrap();
    let config = ManagerConfig::builder()
        .storage_path(dir.path())
        .connection_idle_timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    m.get_log("notes").await.unwrap();
    m.enable_replication("notes").await.unwrap();
    let listener = m.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut raw = raw_peer_of(&listener).await;
    raw.open(&[3; 32]).await;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            // Keepalives (empty frames) do not count as sharing.
            if raw.cipher.send(Vec::new()).await.is_err() {
                return;
            }
            match tokio::time::timeout(std::time::Duration::from_millis(100), raw.cipher.next())
                .await
            {
                Ok(None | Some(CipherEvent::ErrStuff(_))) => return,
                Ok(Some(CipherEvent::Message(_))) | Err(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the manager kept an idle connection for 10 s"
    );
    assert!(raw.cipher.handshake_hash().is_some());
}

/// Issue 21 (low): a peer that closes and reopens one log's channel on a manager's
/// listener again and again made the manager start a channel task and a sync for each
/// pairing. Now the manager drops the connection at the 33rd pairing within a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_drops_a_peer_churning_one_channel() {
    use futures::{SinkExt, StreamExt};
    use nova_hypercore_replication::{CipherEvent, protomux};

    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let key = m.get_log("notes").await.unwrap().public_key();
    m.enable_replication("notes").await.unwrap();
    let listener = m.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut raw = raw_peer_of(&listener).await;
    let open = raw.open_frame(&key);
    let mut sent = 0;
    for _ in 0..200 {
        if raw.cipher.send(open.clone()).await.is_err()
            || raw
                .cipher
                .send(protomux::close_frame(raw_peer::OURS))
                .await
                .is_err()
        {
            break;
        }
        sent += 1;
    }
    // The manager ends the connection: the stream closes (or fails) well before the
    // raw peer's patience runs out.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match raw.cipher.next().await {
                None | Some(CipherEvent::ErrStuff(_)) => return,
                Some(CipherEvent::Message(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the manager kept a peer that paired {sent} times"
    );
}
