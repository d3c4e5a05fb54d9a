//! The open-log pool: logs closed to stay under `max_open_logs` are evicted (in `Flush`
//! without a checkpoint or a sync) and reopened on use by replaying their oplog; the
//! store's close syncs what the evictions left, and a new store reads everything back.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use nova_hypercore_managed_core::Durability;
use nova_hypercore_manager::{HypercoreManager, ManagerConfig};

const CAP: usize = 4;
const LOGS: usize = 24;
const ROUNDS: usize = 3;

async fn manager(dir: &Path, durability: Durability) -> HypercoreManager {
    let config = ManagerConfig::builder()
        .storage_path(dir)
        .durability(durability)
        .max_open_logs(CAP)
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    m
}

fn entry(log: usize, round: usize) -> Vec<u8> {
    format!("log {log} round {round}").into_bytes()
}

/// Bytes of the log's oplog past its two header slots: entries not checkpointed yet.
fn oplog_entries(log_dir: &Path) -> u64 {
    std::fs::metadata(log_dir.join("oplog"))
        .unwrap()
        .len()
        .saturating_sub(8192)
}

async fn evicted_logs_come_back(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), durability).await;
    // Rounds over more logs than the cap: every log is evicted and reopened (its
    // entries replayed) between its appends.
    for round in 0..ROUNDS {
        for i in 0..LOGS {
            let log = m.get_log(&format!("log-{i}")).await.unwrap();
            assert_eq!(log.append(&entry(i, round)).await.unwrap(), round as u64);
            assert!(m.open_log_files() <= CAP);
        }
    }
    let first = m.get_log("log-0").await.unwrap();
    let path = first.path().to_owned();
    if durability == Durability::Flush {
        // Never checkpointed yet: tree, bitfield and sizes were never written, so
        // never created (created by their first write).
        for name in ["tree", "bitfield", "sizes"] {
            assert!(
                !path.join(name).exists(),
                "{name} exists before any checkpoint"
            );
        }
    }
    let mut evicted_with_entries = 0;
    for i in 0..LOGS {
        let log = m.get_log(&format!("log-{i}")).await.unwrap();
        if !log.is_open().await && oplog_entries(log.path()) > 0 {
            evicted_with_entries += 1;
        }
    }
    if durability == Durability::Flush {
        // Evicted without a checkpoint: their entries are still in the oplog.
        assert!(
            evicted_with_entries > 0,
            "no evicted log kept its entries in the oplog"
        );
    } else {
        // The fsync modes close (checkpoint) an evicted log as before.
        assert_eq!(evicted_with_entries, 0);
    }
    // Reading reopens evicted logs from their replayed entries.
    for i in 0..LOGS {
        let log = m.get_log(&format!("log-{i}")).await.unwrap();
        assert_eq!(log.current_length().await.unwrap(), ROUNDS as u64);
        for round in 0..ROUNDS {
            assert_eq!(log.get(round as u64).await.unwrap(), entry(i, round));
        }
    }
    m.close().await.unwrap();
    assert!(path.join("oplog").exists());
    assert!(path.join("data").exists());

    let again = manager(dir.path(), durability).await;
    for i in 0..LOGS {
        let log = again.existing_log(&format!("log-{i}")).await.unwrap();
        assert_eq!(
            log.current_length().await.unwrap(),
            ROUNDS as u64,
            "log-{i}"
        );
        for round in 0..ROUNDS {
            assert_eq!(log.get(round as u64).await.unwrap(), entry(i, round));
        }
        // And takes more.
        assert_eq!(log.append(b"after").await.unwrap(), ROUNDS as u64);
    }
    again.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_evictions_replay_at_reopen_and_survive_the_store_close() {
    evicted_logs_come_back(Durability::Flush).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_mode_evictions_still_checkpoint() {
    evicted_logs_come_back(Durability::FsyncPerBatch).await;
}

/// A log evicted with unsynced writes and then deleted: the store's close has nothing
/// left to sync for it and does not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_evicted_log_does_not_fail_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), Durability::Flush).await;
    for i in 0..LOGS {
        m.append(&format!("log-{i}"), b"x").await.unwrap();
    }
    let log = m.get_log("log-0").await.unwrap();
    assert!(!log.is_open().await, "log-0 was not evicted");
    assert!(m.delete_log("log-0").await.unwrap());
    m.close().await.unwrap();
}
