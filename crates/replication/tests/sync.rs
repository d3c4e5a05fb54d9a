//! Two peers over a real encrypted connection (in-process pipe and TCP on loopback),
//! disk-backed logs in temp dirs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use nova_hypercore_managed_core::{ManagedCore, OpenOptions};
use nova_hypercore_replication::{LogSet, Replicator};
use nova_hypercore_serialization::LogName;

async fn writer(dir: &std::path::Path, n: usize) -> ManagedCore {
    let log = ManagedCore::open(dir, LogName::parse("w").unwrap(), OpenOptions::new())
        .await
        .unwrap();
    let blocks: Vec<Vec<u8>> = (0..n).map(|i| format!("block {i}").into_bytes()).collect();
    for chunk in blocks.chunks(100) {
        log.append_batch(chunk).await.unwrap();
    }
    log
}

async fn replica_of(dir: &std::path::Path, w: &ManagedCore) -> ManagedCore {
    ManagedCore::open(
        dir,
        LogName::parse("w").unwrap(),
        OpenOptions::new().public_key(w.verifying_key()),
    )
    .await
    .unwrap()
}

async fn wait_contiguous(core: &ManagedCore, n: u64) {
    let mut progress = core.watch_progress();
    let deadline = tokio::time::timeout(Duration::from_secs(30), async {
        while progress.borrow_and_update().contiguous_length < n {
            progress.changed().await.unwrap();
        }
    });
    deadline
        .await
        .unwrap_or_else(|_| panic!("no full sync: {:?}", *progress.borrow()));
}

fn replicator(core: &ManagedCore) -> Replicator {
    let set = LogSet::new();
    set.insert(core.clone());
    Replicator::new(Arc::new(set))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_then_live_over_a_pipe() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 250).await;
    let r = replica_of(dr.path(), &w).await;
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (rw, rr) = (replicator(&w), replicator(&r));
    let stats = rr.stats();
    tokio::spawn(async move { rw.run(a, true).await });
    tokio::spawn(async move { rr.run(b, false).await });
    wait_contiguous(&r, 250).await;
    for i in 0..250u64 {
        assert_eq!(r.get(i).await.unwrap(), w.get(i).await.unwrap());
    }
    let dk = r.discovery_key();
    let got = stats
        .wait_until(&dk, Duration::from_secs(10), |t| t.blocks_received >= 250)
        .await;
    assert_eq!(got.blocks_received, 250);
    // New appends reach the connected reader without polling or reconnecting.
    w.append_batch(&[b"x".as_slice(), b"y", b"z"])
        .await
        .unwrap();
    wait_contiguous(&r, 253).await;
    let got = stats
        .wait_until(&dk, Duration::from_secs(10), |t| t.blocks_received >= 253)
        .await;
    assert_eq!(got.blocks_received, 253);
    w.append(b"one more").await.unwrap();
    wait_contiguous(&r, 254).await;
    assert_eq!(r.get(253).await.unwrap(), b"one more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_loopback() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 500).await;
    let r = replica_of(dr.path(), &w).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rw = replicator(&w);
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        rw.run(socket, false).await
    });
    let rr = replicator(&r);
    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::spawn(async move { rr.run(socket, true).await });
    wait_contiguous(&r, 500).await;
    assert_eq!(r.get(499).await.unwrap(), b"block 499");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_the_peer_goes_away() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 10).await;
    let r = replica_of(dr.path(), &w).await;
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (rw, rr) = (replicator(&w), replicator(&r));
    let ta = tokio::spawn(async move { rw.run(a, true).await });
    let tb = tokio::spawn(async move { rr.run(b, false).await });
    wait_contiguous(&r, 10).await;
    ta.abort();
    let ended = tokio::time::timeout(Duration::from_secs(10), tb).await;
    assert!(
        ended.is_ok(),
        "the reader's session did not notice the writer leaving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_resumes_where_it_stopped_and_nothing_travels_twice() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 3000).await;
    let r = replica_of(dr.path(), &w).await;
    let dk = r.discovery_key();
    // First connection: cut it (both ends dropped) once part of the log has arrived.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (rw, rr) = (replicator(&w), replicator(&r));
    let first = rr.stats();
    let ta = tokio::spawn(async move { rw.run(a, true).await });
    let tb = tokio::spawn(async move { rr.run(b, false).await });
    let got = first
        .wait_until(&dk, Duration::from_secs(20), |t| t.blocks_received >= 500)
        .await;
    assert!(got.blocks_received >= 500);
    ta.abort();
    tb.abort();
    let _ = (ta.await, tb.await);
    // What the replica holds now, counted from its own storage.
    let mut before = 0;
    for i in 0..3000u64 {
        if r.has_block(i).await.unwrap() {
            before += 1;
        }
    }
    assert!(
        (500..3000).contains(&before),
        "the cut came too late to test a resume"
    );
    // Second connection: only the rest travels.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (rw, rr) = (replicator(&w), replicator(&r));
    let second = rr.stats();
    tokio::spawn(async move { rw.run(a, true).await });
    tokio::spawn(async move { rr.run(b, false).await });
    wait_contiguous(&r, 3000).await;
    let after = second
        .wait_until(&dk, Duration::from_secs(20), |t| {
            t.blocks_received + before >= 3000
        })
        .await;
    assert_eq!(
        after.blocks_received,
        3000 - before,
        "only the missing blocks travelled"
    );
    for i in [0u64, 1499, 2999] {
        assert_eq!(r.get(i).await.unwrap(), format!("block {i}").as_bytes());
    }
}

/// hypercore 0.17 writes oplog entries for received blocks that it cannot read back;
/// managed-core's open repairs that, so a replica always reopens and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reopens_after_stopping_and_completes() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 301).await;
    for clean in [true, false] {
        let r = replica_of(dr.path(), &w).await;
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (rw, rr) = (replicator(&w), replicator(&r));
        let ta = tokio::spawn(async move { rw.run(a, true).await });
        let tb = tokio::spawn(async move { rr.run(b, false).await });
        wait_contiguous(&r, 301).await;
        ta.abort();
        tb.abort();
        let _ = (ta.await, tb.await);
        if clean {
            r.close().await.unwrap();
        }
        drop(r);
        // Reopening works, and whatever the repair dropped comes back from the writer.
        let r = replica_of(dr.path(), &w).await;
        assert_eq!(r.length(), 301);
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (rw, rr) = (replicator(&w), replicator(&r));
        let ta = tokio::spawn(async move { rw.run(a, true).await });
        let tb = tokio::spawn(async move { rr.run(b, false).await });
        wait_contiguous(&r, 301).await;
        for i in [0u64, 150, 300] {
            assert_eq!(r.get(i).await.unwrap(), format!("block {i}").as_bytes());
        }
        ta.abort();
        tb.abort();
        r.close().await.unwrap();
    }
}
