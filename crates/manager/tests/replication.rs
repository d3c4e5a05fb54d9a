//! Two managers replicating over a real encrypted pipe: events, status, persisted state.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_manager::{HypercoreManager, ManagerConfig, ManagerEvent};
use nova_hypercore_serialization::{Direction, ErrorCode};

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_sync_with_events_status_and_persisted_state() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    let payloads: Vec<Vec<u8>> = (0..120u32)
        .map(|i| format!("memory {i}").into_bytes())
        .collect();
    a.append_batch("atlas-memory", &payloads).await.unwrap();
    a.enable_replication("atlas-memory").await.unwrap();
    let source = a.get_log("atlas-memory").await.unwrap();
    let replica = b
        .open_replica("atlas-from-a", source.public_key())
        .await
        .unwrap();
    assert!(!replica.is_writable());
    b.enable_replication("atlas-from-a").await.unwrap();
    assert!(b.status().await.replication_enabled);
    let mut b_events = b.subscribe();

    let (x, y) = tokio::io::duplex(256 * 1024);
    let (a2, b2) = (a.clone(), b.clone());
    let ta = tokio::spawn(async move { a2.replicate(x, true).await });
    let tb = tokio::spawn(async move { b2.replicate(y, false).await });

    let mut progress = replica.watch_progress().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while progress.borrow_and_update().contiguous_length < 120 {
            progress.changed().await.unwrap();
        }
    })
    .await
    .expect("replica completes");
    let got = b.read_range("atlas-from-a", 0, 120).await.unwrap();
    assert_eq!(got, payloads);
    // A replica is read-only for this peer.
    let err = b.append("atlas-from-a", b"forged").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);

    // Events arrive as blocks are stored; wait for all of them (with a deadline).
    let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    let (mut connected, mut received) = (false, 0u64);
    tokio::time::timeout(Duration::from_secs(20), async {
        while received < bytes {
            match b_events.recv().await.unwrap() {
                ManagerEvent::PeerConnect { log_name, .. } => {
                    connected |= log_name.as_str() == "atlas-from-a"
                }
                ManagerEvent::Replicate {
                    direction: Direction::Receive,
                    bytes,
                    ..
                } => received += bytes,
                _ => {}
            }
        }
    })
    .await
    .expect("replicate events for every byte");
    assert!(connected);
    assert_eq!(received, bytes);

    let status = b.replication_status("atlas-from-a").await.unwrap();
    assert_eq!(status.local_length, 120);
    assert_eq!(status.active_peers, 1);
    assert_eq!(
        status.remote_lengths.values().copied().collect::<Vec<_>>(),
        vec![120]
    );
    assert_eq!(status.bytes_transferred, bytes);
    assert_eq!(b.metrics().replication_bytes_transferred, bytes);
    assert_eq!(b.metrics().active_peers, 1);
    let progress = b.download_progress("atlas-from-a").await.unwrap();
    assert_eq!(
        (progress.have, progress.total, progress.blocks_received),
        (120, 120, 120)
    );
    assert!(
        progress.bytes_per_second.is_some_and(|r| r > 0.0),
        "{progress:?}"
    );

    // The writer stops sharing the log: the open channel closes, the connection stays.
    a.disable_replication("atlas-memory").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let ManagerEvent::PeerDisconnect { log_name, .. } = b_events.recv().await.unwrap() {
                assert_eq!(log_name.as_str(), "atlas-from-a");
                return;
            }
        }
    })
    .await
    .expect("the channel closes after disable_replication");
    assert!(!tb.is_finished(), "the connection itself stays up");

    // Disconnect: the confirmed length is persisted per peer.
    let peer = status.remote_lengths.keys().next().unwrap().clone();
    ta.abort();
    let _ = tb.await;
    assert_eq!(b.confirmed_length("atlas-from-a", &peer), Some(120));
    let text = std::fs::read_to_string(db.path().join("replication-state.json")).unwrap();
    assert!(
        text.contains(&peer) && text.contains("atlas-from-a"),
        "{text}"
    );
    assert_eq!(b.metrics().active_peers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_redials_after_a_failure_and_stays_live() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    a.append_batch("agent-state", &[b"one".as_slice(), b"two"])
        .await
        .unwrap();
    a.enable_replication("agent-state").await.unwrap();
    let key = a.get_log("agent-state").await.unwrap().public_key();
    let replica = b.open_replica("agent-copy", key).await.unwrap();
    b.enable_replication("agent-copy").await.unwrap();
    // A listener that drops the first connection, then serves normally.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = a.clone();
    tokio::spawn(async move {
        let (first, _) = listener.accept().await.unwrap();
        drop(first);
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let m = server.clone();
            tokio::spawn(async move { m.replicate(socket, false).await });
        }
    });
    let _connector = b.connect(addr);
    let mut progress = replica.watch_progress().await.unwrap();
    let wait = |target: u64| {
        let mut p = progress.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(20), async {
                while p.borrow_and_update().contiguous_length < target {
                    p.changed().await.unwrap();
                }
            })
            .await
            .expect("replica catches up")
        }
    };
    wait(2).await;
    a.append("agent-state", b"three").await.unwrap();
    wait(3).await;
    assert_eq!(b.read("agent-copy", 2).await.unwrap(), b"three");
    progress.borrow_and_update();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_and_connect_in_direct_mode() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    a.append("crdt-collab", b"op-1").await.unwrap();
    a.enable_replication("crdt-collab").await.unwrap();
    let listener = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let key = a.get_log("crdt-collab").await.unwrap().public_key();
    let replica = b.open_replica("crdt-copy", key).await.unwrap();
    b.enable_replication("crdt-copy").await.unwrap();
    let _c = b.connect(listener.local_addr());
    let mut p = replica.watch_progress().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while p.borrow_and_update().contiguous_length < 1 {
            p.changed().await.unwrap();
        }
    })
    .await
    .expect("direct mode syncs");
    assert_eq!(b.read("crdt-copy", 0).await.unwrap(), b"op-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_enabled_after_connecting_replicates_over_the_same_connection() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    a.append_batch("first", &[b"1".to_vec()]).await.unwrap();
    a.append_batch("second", &[b"2".to_vec(), b"3".to_vec()])
        .await
        .unwrap();
    a.enable_replication("first").await.unwrap();
    let first = b
        .open_replica("first", a.get_log("first").await.unwrap().public_key())
        .await
        .unwrap();
    let second = b
        .open_replica("second", a.get_log("second").await.unwrap().public_key())
        .await
        .unwrap();
    b.enable_replication("first").await.unwrap();
    b.enable_replication("second").await.unwrap();
    let (x, y) = tokio::io::duplex(64 * 1024);
    let (a2, b2) = (a.clone(), b.clone());
    tokio::spawn(async move { a2.replicate(x, true).await });
    tokio::spawn(async move { b2.replicate(y, false).await });
    let wait = |log: nova_hypercore_manager::ManagedLog, n: u64| async move {
        let mut progress = log.watch_progress().await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), async {
            while progress.borrow_and_update().contiguous_length < n {
                progress.changed().await.unwrap();
            }
        })
        .await
        .expect("replica completes");
    };
    wait(first, 1).await;
    // Enabling the second log now opens its channel on the connection that is up.
    a.enable_replication("second").await.unwrap();
    wait(second, 2).await;
    assert_eq!(
        b.read_range("second", 0, 2).await.unwrap(),
        vec![b"2".to_vec(), b"3".to_vec()]
    );
}

/// The files named `name` anywhere under `dir`.
fn files_named(dir: &std::path::Path, name: &str, found: &mut Vec<std::path::PathBuf>) {
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_dir() {
            files_named(&path, name, found);
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
}

/// A shared log whose data bytes for one block were damaged while the manager was
/// closed, and that nobody read since: a peer gets every other block, never the damaged
/// bytes, and the serving manager reports `STORAGE_CORRUPTED` for that log naming the
/// data file (the same error a local read gives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_block_is_not_served_and_reported_as_storage_corrupted() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let payloads: Vec<Vec<u8>> = (0..20u32)
        .map(|i| format!("entry {i:02}").into_bytes())
        .collect();
    let a = manager(da.path()).await;
    a.append_batch("notes", &payloads).await.unwrap();
    let key = a.get_log("notes").await.unwrap().public_key();
    a.close().await.unwrap();
    let mut data = Vec::new();
    files_named(da.path(), "data", &mut data);
    assert_eq!(data.len(), 1, "{data:?}");
    let mut bytes = std::fs::read(&data[0]).unwrap();
    let at = 5 * payloads[0].len() + 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&data[0], bytes).unwrap();

    let a = manager(da.path()).await;
    a.enable_replication("notes").await.unwrap();
    let mut a_events = a.subscribe();
    let b = manager(db.path()).await;
    let replica = b.open_replica("notes-copy", key).await.unwrap();
    b.enable_replication("notes-copy").await.unwrap();
    let (x, y) = tokio::io::duplex(256 * 1024);
    let (a2, b2) = (a.clone(), b.clone());
    tokio::spawn(async move { a2.replicate(x, true).await });
    tokio::spawn(async move { b2.replicate(y, false).await });

    let error = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let ManagerEvent::Error { log_name, error } = a_events.recv().await.unwrap() {
                return (log_name, error);
            }
        }
    })
    .await
    .expect("the serving manager reports the damaged block");
    assert_eq!(error.0, "notes");
    assert_eq!(error.1.code, ErrorCode::StorageCorrupted);
    assert!(
        error.1.message.contains(&data[0].display().to_string()),
        "{error:?}"
    );
    // Every other block arrives, with its bytes; the damaged one does not.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let mut have = 0;
            for seq in 0..20u64 {
                if seq != 5 && b.read("notes-copy", seq).await.is_ok() {
                    have += 1;
                }
            }
            if have == 19 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the other 19 blocks arrive");
    for seq in (0..20u64).filter(|s| *s != 5) {
        assert_eq!(
            b.read("notes-copy", seq).await.unwrap(),
            payloads[seq as usize]
        );
    }
    assert!(b.read("notes-copy", 5).await.is_err());
    assert_eq!(replica.current_length().await.unwrap(), 20);
}
