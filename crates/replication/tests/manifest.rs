//! Manifest-v1 cores (hypercore 11 default) between two real sessions over loopback TCP,
//! disk-backed logs in temp dirs: the replica is opened by the core key alone (as a peer
//! names the log), asks for the manifest, checks and stores it, then verifies every block
//! under it. A legacy core opened the same way settles as legacy by itself.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use nova_hypercore_managed_core::{CoreFormat, ManagedCore, OpenOptions};
use nova_hypercore_replication::{LogSet, Replicator};
use nova_hypercore_serialization::LogName;
use tokio::net::{TcpListener, TcpStream};

async fn writer(dir: &std::path::Path, format: CoreFormat, n: usize) -> ManagedCore {
    let log = ManagedCore::open(
        dir,
        LogName::parse("w").unwrap(),
        OpenOptions::new().format(format),
    )
    .await
    .unwrap();
    append(&log, 0, n).await;
    log
}

async fn append(log: &ManagedCore, from: usize, n: usize) {
    let blocks: Vec<Vec<u8>> = (from..from + n)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    for chunk in blocks.chunks(100) {
        log.append_batch(chunk).await.unwrap();
    }
}

async fn wait_contiguous(core: &ManagedCore, n: u64) {
    let mut progress = core.watch_progress();
    tokio::time::timeout(Duration::from_secs(60), async {
        while progress.borrow_and_update().contiguous_length < n {
            progress.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no full sync: {:?}", *progress.borrow()));
}

fn replicator(core: &ManagedCore) -> Replicator {
    let set = LogSet::new();
    set.insert(core.clone());
    Replicator::new(Arc::new(set))
}

/// Connects a session for `w` and one for `r` over loopback TCP.
async fn connect(w: &ManagedCore, r: &ManagedCore) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rw = replicator(w);
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        rw.run(stream, false).await
    });
    let rr = replicator(r);
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio::spawn(async move { rr.run(stream, true).await });
}

async fn same_entries(r: &ManagedCore, w: &ManagedCore, n: u64) {
    for i in 0..n {
        assert_eq!(
            r.get(i).await.unwrap(),
            w.get(i).await.unwrap(),
            "entry {i}"
        );
        assert_eq!(r.get(i).await.unwrap(), format!("entry {i}").into_bytes());
    }
}

/// A log named `name` under `dir` that follows `writer` knowing only its core key.
async fn replica_by_core_key(
    dir: &std::path::Path,
    name: &str,
    writer: &ManagedCore,
) -> ManagedCore {
    ManagedCore::open(
        dir,
        LogName::parse(name).unwrap(),
        OpenOptions::new().core_key(writer.public_key()),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_core_reaches_a_replica_opened_by_its_core_key_full_then_live() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), CoreFormat::V1, 500).await;
    assert_eq!(w.format(), Some(CoreFormat::V1));
    // The core key is the manifest's hash, not the signer's ed25519 key.
    assert_ne!(w.public_key(), w.signer_key().unwrap().to_bytes());
    let r = replica_by_core_key(dr.path(), "r", &w).await;
    assert!(r.needs_manifest());
    connect(&w, &r).await;
    wait_contiguous(&r, 500).await;
    assert_eq!(r.format(), Some(CoreFormat::V1));
    assert_eq!(r.manifest(), w.manifest());
    assert_eq!(r.signer_key(), w.signer_key());
    same_entries(&r, &w, 500).await;
    // Live: exactly the new entries follow on the same connection.
    append(&w, 500, 250).await;
    wait_contiguous(&r, 750).await;
    assert_eq!(r.info().await.unwrap().length, 750);
    same_entries(&r, &w, 750).await;
    // The replica serves the manifest on in turn: a third peer, by key, from it alone.
    let d3 = tempfile::tempdir().unwrap();
    let third = replica_by_core_key(d3.path(), "t", &w).await;
    connect(&r, &third).await;
    wait_contiguous(&third, 750).await;
    assert_eq!(third.manifest(), w.manifest());
    same_entries(&third, &w, 750).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_v1_core_still_hands_over_its_manifest() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), CoreFormat::V1, 0).await;
    let r = replica_by_core_key(dr.path(), "r", &w).await;
    connect(&w, &r).await;
    // Nothing to upgrade to: the manifest is asked for on its own.
    tokio::time::timeout(Duration::from_secs(30), async {
        while r.needs_manifest() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("manifest received");
    assert_eq!(r.manifest(), w.manifest());
    append(&w, 0, 10).await;
    wait_contiguous(&r, 10).await;
    same_entries(&r, &w, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_core_opened_by_core_key_settles_as_legacy() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), CoreFormat::Legacy, 300).await;
    let r = replica_by_core_key(dr.path(), "r", &w).await;
    connect(&w, &r).await;
    wait_contiguous(&r, 300).await;
    assert_eq!(r.format(), Some(CoreFormat::Legacy));
    assert_eq!(r.manifest(), None);
    same_entries(&r, &w, 300).await;
}
