//! Sparse replicas and reads that wait for peers (issue 23), two managers over a real
//! encrypted pipe: a sparse replica that holds nothing reads one block (only that
//! block travels), downloads a range, waits for an entry the writer has not appended
//! yet; reads that cannot be served are `REPLICATION_FAILED` naming the log and seq,
//! never `SIGNATURE_INVALID`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_manager::{
    GetOptions, HypercoreManager, ManagedLog, ManagerConfig, ReplicaOptions,
};
use nova_hypercore_serialization::{ErrorCode, HypercoreError};

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

/// A writer with `n` entries of "notes", and a sparse replica of it on another manager,
/// connected.
async fn connected_sparse(
    n: u64,
) -> (
    HypercoreManager,
    HypercoreManager,
    ManagedLog,
    (tempfile::TempDir, tempfile::TempDir),
) {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(dirs.0.path()).await;
    let b = manager(dirs.1.path()).await;
    let batch: Vec<Vec<u8>> = (0..n).map(entry).collect();
    a.append_batch("notes", &batch).await.unwrap();
    a.enable_replication("notes").await.unwrap();
    let key = a.get_log("notes").await.unwrap().public_key();
    let replica = b
        .open_replica_with("notes", key, ReplicaOptions::sparse())
        .await
        .unwrap();
    assert!(replica.is_sparse());
    b.enable_replication("notes").await.unwrap();
    connect(&a, &b);
    (a, b, replica, dirs)
}

/// Replicates `a` (initiator) and `b` over an in-memory pipe, in the background.
fn connect(a: &HypercoreManager, b: &HypercoreManager) {
    let (x, y) = tokio::io::duplex(1 << 20);
    let (a2, b2) = (a.clone(), b.clone());
    tokio::spawn(async move { a2.replicate(x, true).await });
    tokio::spawn(async move { b2.replicate(y, false).await });
}

/// A writer of `n` entries of "notes", replicating; its manager, core key and directory.
async fn writer(n: u64) -> (HypercoreManager, [u8; 32], tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let a = manager(dir.path()).await;
    let batch: Vec<Vec<u8>> = (0..n).map(entry).collect();
    a.append_batch("notes", &batch).await.unwrap();
    a.enable_replication("notes").await.unwrap();
    let key = a.get_log("notes").await.unwrap().public_key();
    (a, key, dir)
}

/// Waits until the replica knows the writer's length (the upgrade, no blocks).
async fn until_length(replica: &ManagedLog, n: u64) {
    let mut progress = replica.watch_progress().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while progress.borrow_and_update().length < n {
            progress.changed().await.unwrap();
        }
    })
    .await
    .expect("the replica learns the length");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_replica_fetches_only_what_is_read_or_downloaded() {
    let (_a, _b, replica, _dirs) = connected_sparse(1_000).await;
    until_length(&replica, 1_000).await;
    // The length is known, no block is: a read without waiting says so.
    let err = replica
        .get_with(10, GetOptions::no_wait())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReplicationFailed, "{err}");
    assert!(
        matches!(&err, HypercoreError::BlockUnavailable { log, seq: 10, .. } if log == "notes"),
        "{err:?}"
    );

    // One read, one block.
    let got = replica
        .get_with(500, GetOptions::timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(got, entry(500));
    // A full replica would hold all 1,000 by now; give it the time it would take.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(replica.has_range(0..1_000).await.unwrap(), 1);

    // A range, in one go.
    let range = replica
        .get_range_with(100, 150, GetOptions::timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(range, (100..150).map(entry).collect::<Vec<_>>());
    // A download held while the blocks come.
    let download = replica.download(700..800).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while replica.has_range(700..800).await.unwrap() < 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the download completes");
    drop(download);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(replica.has_range(0..1_000).await.unwrap(), 1 + 50 + 100);
    // Blocks not fetched still read as unavailable, not as a bad signature.
    let err = replica.get(0).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReplicationFailed, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_read_gets_an_entry_appended_after_it_asked() {
    let (a, _b, replica, _dirs) = connected_sparse(10).await;
    until_length(&replica, 10).await;
    let reader = replica.clone();
    let read = tokio::spawn(async move {
        reader
            .get_with(12, GetOptions::timeout(Duration::from_secs(20)))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.append_batch("notes", &[entry(10), entry(11), entry(12)])
        .await
        .unwrap();
    assert_eq!(read.await.unwrap().unwrap(), entry(12));
    assert_eq!(replica.has_range(0..13).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_nobody_can_serve_fails_within_its_bound_naming_log_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let b = manager(dir.path()).await;
    let replica = b
        .open_replica_with("lonely", [7u8; 32], ReplicaOptions::sparse())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = replica
        .get_with(5, GetOptions::timeout(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.code(), ErrorCode::ReplicationFailed, "{err}");
    assert!(
        matches!(&err, HypercoreError::BlockUnavailable { log, seq: 5, reason } if log == "lonely" && reason.contains("300ms")),
        "{err:?}"
    );
    // Without waiting, past the length: out of range.
    let err = replica
        .get_with(5, GetOptions::no_wait())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfRange, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_replica_stays_sparse_after_a_restart() {
    let (a, key, _writer_dir) = writer(1_000).await;
    let dir = tempfile::tempdir().unwrap();
    {
        let b = manager(dir.path()).await;
        let replica = b
            .open_replica_with("notes", key, ReplicaOptions::sparse())
            .await
            .unwrap();
        b.enable_replication("notes").await.unwrap();
        connect(&a, &b);
        until_length(&replica, 1_000).await;
        for seq in [10, 20] {
            let got = replica
                .get_with(seq, GetOptions::timeout(Duration::from_secs(20)))
                .await
                .unwrap();
            assert_eq!(got, entry(seq));
        }
        b.close().await.unwrap();
    }
    // A new process: the replica is reopened the plain way.
    let b = manager(dir.path()).await;
    let replica = b.open_replica("notes", key).await.unwrap();
    assert!(replica.is_sparse(), "the stored mode is sparse");
    b.enable_replication("notes").await.unwrap();
    connect(&a, &b);
    // Connected: a read that waits is served (so a full replica would be fetching).
    let got = replica
        .get_with(30, GetOptions::timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(got, entry(30));
    // A full replica would hold all 1,000 by now; give it the time it would take.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(replica.has_range(0..1_000).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_mode_wins_and_is_kept_by_plain_reopens() {
    let (a, key, _writer_dir) = writer(300).await;
    let dir = tempfile::tempdir().unwrap();
    let b = manager(dir.path()).await;
    let replica = b
        .open_replica_with("notes", key, ReplicaOptions::sparse())
        .await
        .unwrap();
    assert!(replica.is_sparse());
    b.close().await.unwrap();

    let b = manager(dir.path()).await;
    let replica = b.open_replica("notes", key).await.unwrap();
    assert!(replica.is_sparse(), "a plain reopen keeps the stored mode");
    // Switching while open: stored, applies from the next open.
    let again = b
        .open_replica_with("notes", key, ReplicaOptions::full())
        .await
        .unwrap();
    assert!(again.same_log(&replica));
    assert!(again.is_sparse(), "an open replica keeps its mode");
    b.close().await.unwrap();

    let b = manager(dir.path()).await;
    let replica = b.open_replica("notes", key).await.unwrap();
    assert!(!replica.is_sparse(), "the explicit full mode was stored");
    b.enable_replication("notes").await.unwrap();
    connect(&a, &b);
    tokio::time::timeout(Duration::from_secs(20), async {
        while replica.has_range(0..300).await.unwrap() < 300 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a full replica downloads everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_download_reports_progress_and_resolves_when_complete() {
    let (_a, b, replica, _dirs) = connected_sparse(1_000).await;
    until_length(&replica, 1_000).await;
    let download = std::sync::Arc::new(replica.download(200..400).await.unwrap());
    let first = download.progress().await.unwrap();
    assert_eq!(first.total, 200);
    let watcher = {
        let download = download.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let p = download.progress().await.unwrap();
                seen.push(p.held);
                if p.is_complete() {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(20), download.done())
        .await
        .expect("the download completes")
        .unwrap();
    assert_eq!(replica.has_range(200..400).await.unwrap(), 200);
    let seen = watcher.await.unwrap();
    assert!(first.held < 200, "{first:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&200));
    let ui = b.download_range_progress("notes", &download).await.unwrap();
    assert_eq!((ui.have, ui.total), (200, 200));
    assert!(ui.blocks_received >= 200, "{ui:?}");
    // Done stays done.
    download.done().await.unwrap();
}

/// Starts a download of all `n` blocks, stops it (`cancel`: explicitly, else by
/// dropping it) once a few blocks arrived, and returns how many are held 1.5 s later
/// and 0.5 s after that.
async fn stopped_download(n: u64, cancel: bool) -> (u64, u64) {
    let (_a, _b, replica, _dirs) = connected_sparse(n).await;
    until_length(&replica, n).await;
    let download = replica.download(0..n).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while download.progress().await.unwrap().held < 5 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the download starts");
    if cancel {
        download.cancel();
        assert!(download.is_cancelled());
        let err = download.done().await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ReplicationFailed, "{err}");
    } else {
        drop(download);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let after = replica.has_range(0..n).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    (after, replica.has_range(0..n).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_download_stops_asking() {
    let (after, later) = stopped_download(5_000, true).await;
    assert!(after < 5_000, "{after}");
    assert_eq!(
        after, later,
        "nothing arrives once the requests in flight are in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_download_stops_asking() {
    let (after, later) = stopped_download(5_000, false).await;
    assert!(after < 5_000, "{after}");
    assert_eq!(
        after, later,
        "nothing arrives once the requests in flight are in"
    );
}

/// The payload bytes of entries `0..n` ("entry {i}" each) and where byte `bytes` falls.
fn seek_by_sum(n: u64, bytes: u64) -> (u64, u64) {
    let mut start = 0;
    for i in 0..n {
        let end = start + entry(i).len() as u64;
        if bytes < end {
            return (i, bytes - start);
        }
        start = end;
    }
    (n, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_replica_seeks_a_byte_from_its_peer_without_any_block_value() {
    let (_a, b, replica, _dirs) = connected_sparse(1_000).await;
    until_length(&replica, 1_000).await;
    let total: u64 = (0..1_000).map(|i| entry(i).len() as u64).sum();
    let bytes = total / 2 + 3;
    let expected = seek_by_sum(1_000, bytes);
    assert!(expected.0 > 0 && expected.0 < 999, "{expected:?}");
    // Not held: without waiting, REPLICATION_FAILED.
    let err = replica
        .seek(bytes, GetOptions::no_wait())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReplicationFailed, "{err}");
    // Waiting: the peer proves the nodes down to the byte (seek requests).
    let found = replica
        .seek(bytes, GetOptions::timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(found, expected);
    // Only proofs travelled: no block stored, none received.
    assert_eq!(replica.has_range(0..1_000).await.unwrap(), 0);
    assert_eq!(
        b.download_progress("notes").await.unwrap().blocks_received,
        0
    );
    // Local now, and the seq reads.
    assert_eq!(
        replica.seek(bytes, GetOptions::no_wait()).await.unwrap(),
        expected
    );
    let got = replica
        .get_with(expected.0, GetOptions::timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(got, entry(expected.0));
    // The counter does count blocks (the session updates it just after storing).
    tokio::time::timeout(Duration::from_secs(5), async {
        while b.download_progress("notes").await.unwrap().blocks_received != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("one block received, the one read");
    // Past the byte length: OUT_OF_RANGE with it, after the wait.
    let err = replica
        .seek(total + 1, GetOptions::timeout(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfRange, "{err}");
    assert!(
        matches!(err, HypercoreError::ByteOutOfRange { byte_length, .. } if byte_length == total),
        "{err:?}"
    );
}
