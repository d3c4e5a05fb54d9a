//! Typed errors with context, lifecycle, keys and concurrency of one log on disk.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;

use nova_hypercore_managed_core::{ManagedCore, OpenOptions, SigningKey, discovery_key};
use nova_hypercore_serialization::{ErrorCode, HypercoreError, LogName};

fn name() -> LogName {
    LogName::parse("atlas-memory").unwrap()
}

async fn filled(dir: &std::path::Path, n: u64) -> ManagedCore {
    let log = ManagedCore::open(dir, name(), OpenOptions::new())
        .await
        .unwrap();
    for i in 0..n {
        log.append(format!("entry {i}").as_bytes()).await.unwrap();
    }
    log
}

#[tokio::test]
async fn out_of_range_reads_report_the_length() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 3).await;
    let err = log.get(3).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfRange);
    assert!(
        matches!(
            err,
            HypercoreError::OutOfRange {
                seq: 3,
                length: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.log_name(), Some("atlas-memory"));
    assert!(err.to_string().contains("length 3"), "{err}");
    assert_eq!(
        log.get(u64::MAX).await.unwrap_err().code(),
        ErrorCode::OutOfRange
    );
    assert!(!log.verify_signature(7).await.is_ok_and(|ok| ok));

    for (start, end) in [(2, 1), (0, 4), (3, 5), (u64::MAX, u64::MAX)] {
        let err = log.get_range(start, end).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::OutOfRange, "[{start}, {end})");
        assert!(err.to_string().contains("length 3"), "{err}");
    }
    assert!(log.get_range(1, 1).await.unwrap().is_empty());
    assert_eq!(log.get_range(0, 3).await.unwrap().len(), 3);
}

#[tokio::test]
async fn closed_log_fails_cleanly_and_keeps_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 5).await;
    let other_handle = log.clone();
    log.close().await.unwrap();
    log.close().await.unwrap();
    assert!(other_handle.is_closed());
    for err in [
        other_handle.append(b"late").await.unwrap_err(),
        other_handle.get(0).await.unwrap_err(),
        other_handle.get_range(0, 1).await.unwrap_err(),
    ] {
        assert!(matches!(err, HypercoreError::Closed { .. }), "{err:?}");
        assert_eq!(err.code(), ErrorCode::StorageInaccessible);
        assert!(err.to_string().contains("atlas-memory is closed"), "{err}");
    }
    let reopened = ManagedCore::open(dir.path(), name(), OpenOptions::new())
        .await
        .unwrap();
    assert_eq!(reopened.length(), 5);
    assert_eq!(reopened.public_key(), log.public_key());
    assert_eq!(reopened.get(4).await.unwrap(), b"entry 4");
    // Still writable after a restart: the secret key lives with the log.
    assert_eq!(reopened.append(b"more").await.unwrap(), 5);
}

#[tokio::test]
async fn dropping_without_close_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let _log = filled(dir.path(), 7).await;
    }
    let log = ManagedCore::open(dir.path(), name(), OpenOptions::new())
        .await
        .unwrap();
    assert_eq!(log.length(), 7);
    for i in 0..7 {
        assert_eq!(log.get(i).await.unwrap(), format!("entry {i}").as_bytes());
    }
}

#[tokio::test]
async fn keys_are_stable_and_checked_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let log = ManagedCore::open(
        dir.path(),
        name(),
        OpenOptions::new().signing_key(key.clone()),
    )
    .await
    .unwrap();
    assert_eq!(log.public_key(), key.verifying_key().to_bytes());
    assert_eq!(log.discovery_key(), discovery_key(&log.public_key()));
    assert_ne!(log.discovery_key(), log.public_key());
    log.append(b"x").await.unwrap();
    log.close().await.unwrap();

    // The same key opens it again.
    let again = ManagedCore::open(dir.path(), name(), OpenOptions::new().signing_key(key))
        .await
        .unwrap();
    assert_eq!(again.length(), 1);
    again.close().await.unwrap();

    // Another key does not: that is a log that does not belong to this key.
    let wrong = SigningKey::from_bytes(&[8u8; 32]);
    let err = ManagedCore::open(dir.path(), name(), OpenOptions::new().signing_key(wrong))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test]
async fn read_only_replica_cannot_append() {
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let replica =
        ManagedCore::in_memory(name(), OpenOptions::new().public_key(key.verifying_key()))
            .await
            .unwrap();
    assert!(!replica.is_writable());
    let err = replica.append(b"forged").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    assert_eq!(replica.length(), 0);
}

#[tokio::test]
async fn inaccessible_storage_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = ManagedCore::open(file.join("log"), name(), OpenOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageInaccessible);
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "OS error kept as source"
    );
}

#[tokio::test]
async fn corrupted_tree_is_never_served_as_good_data() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 16).await;
    log.close().await.unwrap();
    let tree = dir.path().join("tree");
    let len = std::fs::metadata(&tree).unwrap().len() as usize;
    std::fs::write(&tree, vec![0xA5u8; len]).unwrap();
    match ManagedCore::open(dir.path(), name(), OpenOptions::new()).await {
        Err(err) => assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{err}"),
        Ok(log) => {
            for seq in 0..log.length() {
                let err = log.get(seq).await.unwrap_err();
                assert_eq!(err.code(), ErrorCode::SignatureInvalid, "seq {seq}: {err}");
            }
        }
    }
}

#[tokio::test]
async fn corrupted_oplog_is_storage_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 3).await;
    log.close().await.unwrap();
    let oplog = dir.path().join("oplog");
    let len = std::fs::metadata(&oplog).unwrap().len() as usize;
    std::fs::write(&oplog, vec![0xFFu8; len]).unwrap();
    let err = ManagedCore::open(dir.path(), name(), OpenOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{err}");
    assert!(err.to_string().contains("atlas-memory"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_gap_free_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let log = ManagedCore::open(dir.path(), name(), OpenOptions::new())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..40u32 {
                let payload = format!("{t}:{i}");
                let seq = if i % 5 == 0 {
                    log.append_batch(&[payload.as_bytes(), b"pair"])
                        .await
                        .unwrap()
                        .start
                } else {
                    log.append(payload.as_bytes()).await.unwrap()
                };
                mine.push((seq, payload));
            }
            mine
        }));
    }
    let mut seen = BTreeSet::new();
    for task in tasks {
        for (seq, payload) in task.await.unwrap() {
            assert!(seen.insert(seq), "seq {seq} handed out twice");
            assert_eq!(log.get(seq).await.unwrap(), payload.as_bytes());
        }
    }
    let total = 8 * 40 + 8 * 8;
    assert_eq!(log.length(), total);
    // Singles plus the first block of each pair; the "pair" blocks fill the rest.
    assert_eq!(seen.len() as u64, 8 * 40);
    for seq in 0..total {
        assert!(log.verify_signature(seq).await.unwrap());
    }
}
