//! The manager against real disk storage: keys (with JS golden vectors), layout,
//! permissions, every error code with its context, lifecycle, events and limits.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use nova_hypercore_manager::keys::{DEFAULT_NAMESPACE, core_dir, derive_key_pair};
use nova_hypercore_manager::{HypercoreManager, ManagerConfig, ManagerEvent};
use nova_hypercore_serialization::{ErrorCode, HypercoreError};
use tokio::sync::broadcast::error::TryRecvError;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn manager_at(path: &Path) -> HypercoreManager {
    let config = ManagerConfig::builder().storage_path(path).build().unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    m
}

#[test]
fn key_derivation_matches_js_corestore() {
    let text = include_str!("golden/corestore-keys.json");
    let golden: serde_json::Value = serde_json::from_str(text).unwrap();
    let primary: Vec<u8> = (0u8..32).collect();
    assert_eq!(golden["primaryKey"], hex(&primary));
    let primary: [u8; 32] = primary.try_into().unwrap();
    let vectors = golden["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 3);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let key = derive_key_pair(&primary, &DEFAULT_NAMESPACE, name);
        assert_eq!(hex(&key.to_bytes()), v["seed"], "seed of {name}");
        let public = key.verifying_key().to_bytes();
        assert_eq!(hex(&public), v["publicKey"], "public key of {name}");
        let dk = nova_hypercore_managed_core::discovery_key(&public);
        assert_eq!(hex(&dk), v["discoveryKey"], "discovery key of {name}");
        let dir = core_dir(Path::new(""), &dk);
        assert_eq!(
            dir.to_str().unwrap(),
            v["storageDir"],
            "directory of {name}"
        );
    }
}

/// The error `initialize()` gives for a store at `path` (it must fail).
async fn initialize_err(path: &Path) -> HypercoreError {
    let config = ManagerConfig::builder().storage_path(path).build().unwrap();
    HypercoreManager::new(config)
        .unwrap()
        .initialize()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_store_with_a_known_primary_key_gives_the_js_public_keys() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/corestore-keys.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(
        dir.path().join("keys/primary-key"),
        (0u8..32).collect::<Vec<_>>(),
    )
    .unwrap();
    let m = manager_at(dir.path()).await;
    for v in golden["vectors"].as_array().unwrap() {
        let log = m.get_log(v["name"].as_str().unwrap()).await.unwrap();
        assert_eq!(hex(&log.public_key()), v["publicKey"]);
        let expected = dir
            .path()
            .join("corestore")
            .join(v["storageDir"].as_str().unwrap());
        assert_eq!(log.path(), expected);
        assert!(expected.join("oplog").exists());
    }
}

#[tokio::test]
async fn layout_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let m = manager_at(&root).await;
    m.append("atlas-memory", b"x").await.unwrap();
    for p in ["corestore", "corestore/cores", "keys"] {
        assert!(root.join(p).is_dir(), "{p}");
    }
    for p in [
        "keys/primary-key",
        "keys/atlas-memory.key",
        "replication-state.json",
    ] {
        assert!(root.join(p).is_file(), "{p}");
    }
    assert!(!root.join("corestore/primary-key").exists());
    assert_eq!(
        std::fs::read(root.join("keys/primary-key")).unwrap().len(),
        32
    );
    assert_eq!(
        std::fs::read(root.join("keys/atlas-memory.key"))
            .unwrap()
            .len(),
        64
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("keys"), 0o700);
        assert_eq!(mode("corestore"), 0o700);
        assert_eq!(mode("keys/atlas-memory.key"), 0o600);
        assert_eq!(mode("keys/primary-key"), 0o600);
    }
}

#[tokio::test]
async fn keys_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_at(dir.path()).await;
    let a = m.get_log("agent-state").await.unwrap();
    m.append("agent-state", b"one").await.unwrap();
    let key = a.public_key();
    m.close().await.unwrap();
    let m = manager_at(dir.path()).await;
    let again = m.get_log("agent-state").await.unwrap();
    assert_eq!(again.public_key(), key);
    assert_eq!(m.read("agent-state", 0).await.unwrap(), b"one");
    assert_eq!(m.append("agent-state", b"two").await.unwrap(), 1);
}

/// The primary key in `keys/primary-key` (32 bytes) is the one every log derives from.
#[tokio::test]
async fn a_fresh_store_keeps_its_primary_key_in_keys() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_at(dir.path()).await;
    let log = m.get_log("agent-state").await.unwrap();
    let primary: [u8; 32] = std::fs::read(dir.path().join("keys/primary-key"))
        .unwrap()
        .try_into()
        .unwrap();
    let derived = derive_key_pair(&primary, &DEFAULT_NAMESPACE, "agent-state");
    assert_eq!(log.public_key(), derived.verifying_key().to_bytes());
    assert!(!dir.path().join("corestore/primary-key").exists());
    assert!(!dir.path().join("keys/primary-key.tmp").exists());
}

/// A store written with a few logs, then turned into the earlier layout (primary key at
/// `corestore/primary-key`, where JS corestore 6 keeps it).
async fn old_layout_store(path: &Path) -> (Vec<[u8; 32]>, u64, Vec<u8>) {
    let m = manager_at(path).await;
    let created_at = m.initialize().await.unwrap().created_at;
    let mut keys = Vec::new();
    for name in ["atlas-memory", "agent-state"] {
        m.append_batch(name, &[b"one".to_vec(), name.as_bytes().to_vec()])
            .await
            .unwrap();
        keys.push(m.get_log(name).await.unwrap().public_key());
    }
    m.close().await.unwrap();
    let primary = std::fs::read(path.join("keys/primary-key")).unwrap();
    std::fs::rename(
        path.join("keys/primary-key"),
        path.join("corestore/primary-key"),
    )
    .unwrap();
    (keys, created_at, primary)
}

/// The old store's logs open with the same keys, their data reads back, and they take
/// new appends; the key now lives only in `keys/` and the store keeps its creation time.
async fn assert_migrated(path: &Path, keys: &[[u8; 32]], created_at: u64, primary: &[u8]) {
    let m = manager_at(path).await;
    assert_eq!(m.initialize().await.unwrap().created_at, created_at);
    for (name, key) in ["atlas-memory", "agent-state"].iter().zip(keys) {
        assert_eq!(&m.get_log(name).await.unwrap().public_key(), key, "{name}");
        assert_eq!(m.read(name, 0).await.unwrap(), b"one");
        assert_eq!(m.read(name, 1).await.unwrap(), name.as_bytes());
        assert_eq!(m.append(name, b"after").await.unwrap(), 2);
    }
    m.close().await.unwrap();
    assert_eq!(
        std::fs::read(path.join("keys/primary-key")).unwrap(),
        primary
    );
    assert!(!path.join("corestore/primary-key").exists());
    assert!(!path.join("keys/primary-key.tmp").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path.join("keys/primary-key")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    // A second open finds the new layout and changes nothing.
    let m = manager_at(path).await;
    assert_eq!(m.read("agent-state", 2).await.unwrap(), b"after");
    m.close().await.unwrap();
    assert_eq!(
        std::fs::read(path.join("keys/primary-key")).unwrap(),
        primary
    );
}

#[tokio::test]
async fn an_old_layout_store_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, created_at, primary) = old_layout_store(dir.path()).await;
    assert!(!dir.path().join("keys/primary-key").exists());
    assert_migrated(dir.path(), &keys, created_at, &primary).await;
}

/// A crash during the migration: before the rename (a partial temp file in `keys/`, the
/// key still only in `corestore/`), or after it but before `corestore/primary-key` was
/// removed (both files, same bytes). The next open finishes the migration either way.
#[tokio::test]
async fn an_interrupted_migration_is_finished_on_the_next_open() {
    for rename_done in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (keys, created_at, primary) = old_layout_store(dir.path()).await;
        let old = dir.path().join("corestore/primary-key");
        let new = dir.path().join("keys/primary-key");
        if rename_done {
            // What the first step leaves: the same bytes and modification time in `keys/`.
            std::fs::copy(&old, &new).unwrap();
            let modified = std::fs::metadata(&old).unwrap().modified().unwrap();
            std::fs::File::options()
                .write(true)
                .open(&new)
                .unwrap()
                .set_modified(modified)
                .unwrap();
        } else {
            std::fs::write(dir.path().join("keys/primary-key.tmp"), b"partial").unwrap();
        }
        assert_migrated(dir.path(), &keys, created_at, &primary).await;
    }
}

/// Two different primary keys: neither is chosen, the error names both files, and both
/// stay as they were.
#[tokio::test]
async fn two_different_primary_keys_are_storage_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, primary) = old_layout_store(dir.path()).await;
    let other = [0x5au8; 32];
    std::fs::write(dir.path().join("keys/primary-key"), other).unwrap();
    let config = ManagerConfig::builder()
        .storage_path(dir.path())
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    let err = m.initialize().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageCorrupted);
    for file in ["keys/primary-key", "corestore/primary-key"] {
        let path = dir.path().join(file).display().to_string();
        assert!(err.to_string().contains(&path), "{file} in {err}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("keys/primary-key")).unwrap(),
        other
    );
    assert_eq!(
        std::fs::read(dir.path().join("corestore/primary-key")).unwrap(),
        primary
    );
    assert!(!m.status().await.initialized);
}

/// An old-layout key of the wrong size is reported, and nothing is migrated.
#[tokio::test]
async fn a_malformed_old_layout_primary_key_is_not_migrated() {
    let dir = tempfile::tempdir().unwrap();
    old_layout_store(dir.path()).await;
    let old = dir.path().join("corestore/primary-key");
    std::fs::write(&old, [1u8; 31]).unwrap();
    let err = initialize_err(dir.path()).await;
    assert_eq!(err.code(), ErrorCode::StorageCorrupted);
    assert!(
        err.to_string().contains(&old.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("31 bytes"), "{err}");
    assert!(!dir.path().join("keys/primary-key").exists());
    assert_eq!(std::fs::read(&old).unwrap(), [1u8; 31]);
}

#[tokio::test]
async fn payload_too_large_names_the_limit_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = ManagerConfig::builder()
        .storage_path(dir.path())
        .max_payload_bytes(100)
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    m.append("crdt-collab", &[0u8; 100]).await.unwrap();
    let err = m.append("crdt-collab", &[0u8; 101]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
    assert!(matches!(
        err,
        HypercoreError::PayloadTooLarge {
            size: 101,
            limit: 100,
            ..
        }
    ));
    assert!(err.to_string().contains("limit of 100 bytes"), "{err}");
    // A batch with one oversized payload writes none of it.
    let err = m
        .append_batch("crdt-collab", &[vec![1u8; 10], vec![2u8; 101]])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
    assert_eq!(m.get_length("crdt-collab").await.unwrap(), 1);
}

#[tokio::test]
async fn inaccessible_storage_reports_path_and_os_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let config = ManagerConfig::builder()
        .storage_path(file.join("store"))
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    let mut events = m.subscribe();
    let err = m.initialize().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageInaccessible);
    assert!(err.to_string().contains("a-file"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(matches!(events.try_recv(), Ok(ManagerEvent::Error { .. })));
    // Nothing works before a successful initialize.
    let err = m.append("agent-state", b"x").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageInaccessible);
    assert!(err.to_string().contains("initialize"), "{err}");
}

#[tokio::test]
async fn invalid_names_are_unauthorized_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_at(dir.path()).await;
    let before = files_under(dir.path());
    for name in [
        "../escape",
        "/etc/passwd",
        "a/b",
        "",
        "UPPER",
        "x\0y",
        "..",
        "-x",
    ] {
        let err = m.append(name, b"x").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthorized, "{name:?}");
        assert!(err.to_string().contains("invalid log name"), "{err}");
    }
    assert_eq!(files_under(dir.path()), before);
    assert!(!dir.path().parent().unwrap().join("escape").exists());
}

fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            out.insert(e.path().display().to_string());
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn mismatched_key_file_is_storage_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_at(dir.path()).await;
    m.append("agent-state", b"x").await.unwrap();
    m.close().await.unwrap();
    let key_file = dir.path().join("keys/agent-state.key");
    let mut bytes = std::fs::read(&key_file).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&key_file, bytes).unwrap();
    let m = manager_at(dir.path()).await;
    let err = m.get_log("agent-state").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageCorrupted);
    assert!(err.to_string().contains("agent-state"), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test]
async fn malformed_primary_key_and_replication_state_are_reported() {
    for (file, garbage) in [
        ("keys/primary-key", b"short".as_slice()),
        ("keys/primary-key", [7u8; 33].as_slice()),
        // An old-layout key file next to the new one is read (and checked) too.
        ("corestore/primary-key", b"short".as_slice()),
        ("replication-state.json", b"{not json".as_slice()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        manager_at(dir.path()).await.close().await.unwrap();
        std::fs::write(dir.path().join(file), garbage).unwrap();
        let err = initialize_err(dir.path()).await;
        assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{file}");
        let path = dir.path().join(file);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

#[tokio::test]
async fn closed_manager_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_at(dir.path()).await;
    let log = m.get_log("agent-state").await.unwrap();
    m.append("agent-state", b"x").await.unwrap();
    m.close().await.unwrap();
    m.close().await.unwrap();
    assert!(!m.status().await.initialized);
    assert!(log.is_closed());
    for err in [
        m.append("agent-state", b"y").await.unwrap_err(),
        m.read("agent-state", 0).await.unwrap_err(),
        log.append(b"y").await.unwrap_err(),
        m.initialize().await.unwrap_err(),
    ] {
        assert!(matches!(err, HypercoreError::Closed { .. }), "{err:?}");
        assert_eq!(err.code(), ErrorCode::StorageInaccessible);
    }
}

#[test]
fn config_is_validated_with_field_names() {
    let err = ManagerConfig::builder()
        .max_payload_bytes(0)
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeserializationFailed);
    assert!(err.to_string().contains("max_payload_bytes"), "{err}");
    // A payload limit above what one wire frame carries: such blocks could never
    // replicate.
    let ok = ManagerConfig::builder()
        .max_payload_bytes(nova_hypercore_manager::MAX_PAYLOAD_LIMIT)
        .build();
    assert!(ok.is_ok());
    let err = ManagerConfig::builder()
        .max_payload_bytes(nova_hypercore_manager::MAX_PAYLOAD_LIMIT + 1)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_payload_bytes"), "{err}");
    let err = ManagerConfig::builder()
        .health_warning_window(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("health_warning_window"), "{err}");
    let err = ManagerConfig::builder()
        .storage_path("")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("storage_path"), "{err}");
    // Fewer descriptors than one log's five files: refused.
    let err = ManagerConfig::builder()
        .max_open_files(nova_hypercore_manager::MIN_OPEN_FILES - 1)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_open_files"), "{err}");
    let d = ManagerConfig::default();
    assert_eq!(
        d.max_open_files,
        nova_hypercore_manager::DEFAULT_MAX_OPEN_FILES
    );
    assert_eq!(d.storage_path, Path::new(".nova/hypercore"));
    assert!(!d.replication_enabled);
    assert_eq!(d.max_payload_bytes, 1_048_576);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_logs_in_one_store_stay_under_the_open_file_cap() {
    let dir = tempfile::tempdir().unwrap();
    let config = ManagerConfig::builder()
        .storage_path(dir.path())
        .max_open_logs(64)
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    let fds_before = open_fds();
    for i in 0..1000 {
        let name = format!("log-{i}");
        assert_eq!(m.append(&name, name.as_bytes()).await.unwrap(), 0);
        assert!(m.open_log_files() <= 64);
    }
    let fds_during = open_fds();
    // Every log reads back (reopening closed ones transparently).
    for i in (0..1000).rev() {
        let name = format!("log-{i}");
        assert_eq!(m.read(&name, 0).await.unwrap(), name.as_bytes());
    }
    let status = m.status().await;
    assert_eq!(status.log_count, 1000);
    assert!(m.open_log_files() <= 64);
    if let (Some(before), Some(during)) = (fds_before, fds_during) {
        assert!(
            during < before + 64 * 4 + 32,
            "fds grew from {before} to {during}"
        );
    }
    m.close().await.unwrap();
    let reopened = manager_at(dir.path()).await;
    let meta = reopened.initialize().await.unwrap();
    assert_eq!(meta.log_count, 1000);
}

fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

#[tokio::test]
async fn a_slow_subscriber_lags_instead_of_blocking_appends() {
    let dir = tempfile::tempdir().unwrap();
    let config = ManagerConfig::builder()
        .storage_path(dir.path())
        .event_capacity(8)
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    let mut slow = m.subscribe();
    m.initialize().await.unwrap();
    for i in 0..200u32 {
        m.append("agent-state", &i.to_le_bytes()).await.unwrap();
    }
    match slow.try_recv() {
        Err(TryRecvError::Lagged(n)) => assert!(n >= 190, "lagged by {n}"),
        other => panic!("expected a lag report, got {other:?}"),
    }
    // After the lag report it continues with the newest events.
    assert!(matches!(slow.try_recv(), Ok(ManagerEvent::Append { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_across_logs_are_gap_free() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager_at(dir.path()).await;
    let mut tasks = Vec::new();
    for t in 0..6u32 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let log = if t % 2 == 0 {
                "atlas-memory"
            } else {
                "crdt-collab"
            };
            let mut seqs = Vec::new();
            for i in 0..30u32 {
                seqs.push((
                    log,
                    m.append(log, format!("{t}-{i}").as_bytes()).await.unwrap(),
                ));
            }
            seqs
        }));
    }
    let mut per_log: std::collections::BTreeMap<&str, BTreeSet<u64>> = Default::default();
    for t in tasks {
        for (log, seq) in t.await.unwrap() {
            assert!(per_log.entry(log).or_default().insert(seq));
        }
    }
    for (log, seqs) in per_log {
        assert_eq!(seqs, (0..90).collect::<BTreeSet<u64>>(), "{log}");
        assert_eq!(m.get_length(log).await.unwrap(), 90);
    }
    assert_eq!(m.metrics().total_appends, 180);
}

#[tokio::test]
async fn report_error_records_and_events_a_refusal_without_touching_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let manager = manager_at(dir.path()).await;
    let mut events = manager.subscribe();
    let denied = HypercoreError::Unauthorized {
        log: Some("secret-log".into()),
        reason: "log secret-log is outside the scope of caller \"main\"".into(),
    };
    manager.report_error("secret-log", &denied);

    let event = events.recv().await.unwrap();
    match event {
        ManagerEvent::Error { log_name, error } => {
            assert_eq!(log_name, "secret-log");
            assert_eq!(error.code, ErrorCode::Unauthorized);
            assert_eq!(error.log_name.as_deref(), Some("secret-log"));
        }
        other => panic!("expected an error event, got {other:?}"),
    }
    let recorded = manager.recent_events(None);
    let last = recorded.last().unwrap();
    assert_eq!(
        last.operation,
        nova_hypercore_serialization::Operation::Error
    );
    assert_eq!(last.log_name, "secret-log");
    assert!(
        last.error_message
            .as_deref()
            .unwrap()
            .contains("unauthorized")
    );
    assert_eq!(manager.metrics().error_count, 1);
    // Nothing was opened or created for the refused log.
    assert!(manager.open_logs().await.is_empty());
    assert!(!dir.path().join("keys/secret-log.key").exists());
    manager.close().await.unwrap();
}

#[tokio::test]
async fn open_logs_lists_the_logs_status_counts() {
    let dir = tempfile::tempdir().unwrap();
    let manager = manager_at(dir.path()).await;
    manager.append("b-log", b"x").await.unwrap();
    manager.append("a-log", b"yy").await.unwrap();
    let names: Vec<String> = manager
        .open_logs()
        .await
        .iter()
        .map(|l| l.name().to_string())
        .collect();
    assert_eq!(names, ["a-log", "b-log"]);
    assert_eq!(manager.status().await.log_count, 2);
    manager.close().await.unwrap();
}
