//! Log formats in a manager: v1 (hypercore 11 manifest) logs created by config or per
//! log, kept across restarts whatever the config says, and replicas opened by core key
//! (v1 keys are not ed25519 points) syncing over real loopback TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_manager::{CoreFormat, HypercoreManager, ManagedLog, ManagerConfig};

async fn manager(path: &std::path::Path, format: CoreFormat) -> HypercoreManager {
    let config = ManagerConfig::builder()
        .storage_path(path)
        .core_format(format)
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    m
}

fn entries(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("entry {i}").into_bytes()).collect()
}

async fn wait_contiguous(log: &ManagedLog, n: u64) {
    let mut progress = log.watch_progress().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while progress.borrow_and_update().contiguous_length < n {
            progress.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no full sync: {:?}", *progress.borrow()));
}

/// `a` serves `name`; `b` follows it by core key as `replica`, over loopback TCP; both
/// steps (full, then exactly the new entries) compared entry by entry.
async fn follow(a: &HypercoreManager, b: &HypercoreManager, name: &str) {
    let source = a.get_log(name).await.unwrap();
    a.append_batch(name, &entries(0..300)).await.unwrap();
    a.enable_replication(name).await.unwrap();
    let replica = b
        .open_replica("replica", source.public_key())
        .await
        .unwrap();
    assert_eq!(replica.format().await.unwrap(), None, "not known yet");
    b.enable_replication("replica").await.unwrap();
    let listener = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _c = b.connect(listener.local_addr());
    wait_contiguous(&replica, 300).await;
    assert_eq!(
        b.read_range("replica", 0, 300).await.unwrap(),
        entries(0..300)
    );
    a.append_batch(name, &entries(300..400)).await.unwrap();
    wait_contiguous(&replica, 400).await;
    assert_eq!(b.get_length("replica").await.unwrap(), 400);
    assert_eq!(
        b.read_range("replica", 0, 400).await.unwrap(),
        entries(0..400)
    );
    assert_eq!(
        replica.format().await.unwrap(),
        source.format().await.unwrap()
    );
    assert_eq!(replica.discovery_key(), source.discovery_key());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_log_from_the_config_reaches_a_replica_opened_by_its_core_key() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path(), CoreFormat::V1).await;
    let b = manager(db.path(), CoreFormat::Legacy).await;
    let log = a.get_log("notes").await.unwrap();
    assert_eq!(log.format().await.unwrap(), Some(CoreFormat::V1));
    follow(&a, &b, "notes").await;
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_is_the_default_and_replicas_by_core_key_settle_as_legacy() {
    assert_eq!(ManagerConfig::default().core_format, CoreFormat::Legacy);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path(), CoreFormat::Legacy).await;
    let b = manager(db.path(), CoreFormat::V1).await;
    let log = a.get_log("notes").await.unwrap();
    assert_eq!(log.format().await.unwrap(), Some(CoreFormat::Legacy));
    follow(&a, &b, "notes").await;
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_keeps_its_format_and_key_whatever_the_config_says_later() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), CoreFormat::Legacy).await;
    // Per-log override: this one is v1 although the store's default is legacy.
    let v1 = m
        .get_log_with_format("v1-log", CoreFormat::V1)
        .await
        .unwrap();
    let legacy = m.get_log("legacy-log").await.unwrap();
    m.append("v1-log", b"one").await.unwrap();
    m.append("legacy-log", b"two").await.unwrap();
    let (v1_key, legacy_key) = (v1.public_key(), legacy.public_key());
    m.close().await.unwrap();

    // Reopened with the opposite default: each log keeps its format, key and entries.
    let m = manager(dir.path(), CoreFormat::V1).await;
    let legacy = m.get_log("legacy-log").await.unwrap();
    assert_eq!(legacy.public_key(), legacy_key);
    assert_eq!(legacy.format().await.unwrap(), Some(CoreFormat::Legacy));
    assert_eq!(m.read("legacy-log", 0).await.unwrap(), b"two");
    let v1 = m
        .get_log_with_format("v1-log", CoreFormat::Legacy)
        .await
        .unwrap();
    assert_eq!(v1.public_key(), v1_key);
    assert_eq!(v1.format().await.unwrap(), Some(CoreFormat::V1));
    assert_eq!(m.read("v1-log", 0).await.unwrap(), b"one");
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_opens_by_a_core_key_that_is_no_ed25519_point() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), CoreFormat::Legacy).await;
    // A manifest hash is any 32 bytes: this one is not a valid ed25519 point (about half
    // of all v1 keys are not). It names a replica all the same.
    let key = (0..=255u8)
        .map(|i| [i; 32])
        .find(|k| nova_hypercore_managed_core::VerifyingKey::from_bytes(k).is_err())
        .expect("a 32-byte string off the curve");
    let replica = m.open_replica("far", key).await.unwrap();
    assert_eq!(replica.public_key(), key);
    assert!(!replica.is_writable());
    // The same name for another key is still refused.
    let err = m.open_replica("far", [7; 32]).await.unwrap_err();
    assert_eq!(
        err.code(),
        nova_hypercore_serialization::ErrorCode::Unauthorized
    );
    m.close().await.unwrap();
}
