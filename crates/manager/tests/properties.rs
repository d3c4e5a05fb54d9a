//! Spec properties 1-4, 19-22 and 24 against real managers on disk in temp directories.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nova_hypercore_manager::{Durability, HypercoreManager, ManagerConfig, ManagerEvent};
use nova_hypercore_serialization::{ErrorCode, HypercoreError, Operation};
use nova_hypercore_testkit::{CaseCounter, property_config, runtime};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;

fn log_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9-]{0,20}"
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..200)
}

async fn manager(path: &Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

fn durability() -> impl Strategy<Value = Durability> {
    prop_oneof![
        Just(Durability::Flush),
        Just(Durability::FsyncPerBatch),
        Just(Durability::FsyncPerWrite)
    ]
}

/// Feature: p2p-hypercore-protocol, Property 1: Initialization produces ready event with valid metadata
#[test]
fn property_01_ready_event_with_valid_metadata() {
    let cases = CaseCounter::new(1);
    let rt = runtime();
    proptest!(property_config(), |(
        subdirs in vec("[a-z]{1,8}", 0..3),
        existing in vec((log_name(), vec(payload(), 1..4)), 0..4),
        durability in durability(),
        threshold in 0u32..50,
        window_ms in 1u64..120_000,
        max_payload in 200u64..2_000_000,
    )| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path: PathBuf = subdirs.iter().fold(dir.path().to_owned(), |p, s| p.join(s));
            // A previous session leaves some logs behind.
            let mut expected_bytes: BTreeMap<&str, u64> = BTreeMap::new();
            if !existing.is_empty() {
                let first = manager(&path).await;
                for (name, payloads) in &existing {
                    first.append_batch(name, payloads).await.unwrap();
                    *expected_bytes.entry(name).or_default() +=
                        payloads.iter().map(|p| p.len() as u64).sum::<u64>();
                }
                first.close().await.unwrap();
            }
            let config = ManagerConfig::builder()
                .storage_path(&path)
                .durability(durability)
                .health_warning_threshold(threshold)
                .health_warning_window(Duration::from_millis(window_ms))
                .max_payload_bytes(max_payload)
                .build()
                .unwrap();
            let m = HypercoreManager::new(config).unwrap();
            let mut events = m.subscribe();
            let returned = m.initialize().await.unwrap();
            let event = events.try_recv().unwrap();
            let ManagerEvent::Ready(meta) = event else {
                return Err(TestCaseError::fail(format!("first event was {event:?}")));
            };
            prop_assert_eq!(&meta, &returned);
            prop_assert_eq!(&meta.storage_path, &path.display().to_string());
            prop_assert_eq!(meta.log_count, expected_bytes.len() as u64);
            prop_assert_eq!(meta.total_byte_size, expected_bytes.values().sum::<u64>());
            prop_assert!(meta.created_at > 0);
            prop_assert!(m.status().await.initialized);
            m.close().await.unwrap();
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 2: Close flushes all managed logs
#[test]
fn property_02_close_flushes_all_managed_logs() {
    let cases = CaseCounter::new(2);
    let rt = runtime();
    proptest!(property_config(), |(
        logs in btree_set(log_name(), 1..5),
        writes in vec((any::<prop::sample::Index>(), payload()), 1..30),
        yields in 0usize..20,
    )| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let m = manager(dir.path()).await;
            let names: Vec<String> = logs.into_iter().collect();
            let mut handles = Vec::new();
            for n in &names {
                handles.push(m.get_log(n).await.unwrap());
            }
            // Writers run concurrently with close(): some land before it, some after.
            let mut tasks = Vec::new();
            for (i, (which, data)) in writes.iter().enumerate() {
                let m = m.clone();
                let name = names[which.index(names.len())].clone();
                let data = data.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..(i % 3) {
                        tokio::task::yield_now().await;
                    }
                    let r = m.append(&name, &data).await;
                    (name, data, r)
                }));
            }
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            m.close().await.unwrap();
            let mut acked = Vec::new();
            for t in tasks {
                let (name, data, r) = t.await.unwrap();
                match r {
                    Ok(seq) => acked.push((name, seq, data)),
                    Err(e) => prop_assert!(matches!(e, HypercoreError::Closed { .. }), "{:?}", e),
                }
            }
            // All closed, nothing pending: every call now fails as closed.
            prop_assert!(!m.status().await.initialized);
            for h in &handles {
                prop_assert!(h.is_closed());
                prop_assert!(!h.is_open().await);
                let closed = matches!(h.append(b"late").await, Err(HypercoreError::Closed { .. }));
                prop_assert!(closed);
            }
            // Everything acknowledged is on disk.
            let again = manager(dir.path()).await;
            for (name, seq, data) in &acked {
                prop_assert_eq!(&again.read(name, *seq).await.unwrap(), data);
            }
            let mut per_log: BTreeMap<&str, u64> = BTreeMap::new();
            for (name, _, _) in &acked {
                *per_log.entry(name).or_default() += 1;
            }
            for (name, count) in per_log {
                prop_assert_eq!(again.get_length(name).await.unwrap(), count);
            }
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 3: Idempotent log retrieval
#[test]
fn property_03_idempotent_log_retrieval() {
    let cases = CaseCounter::new(3);
    let rt = runtime();
    proptest!(property_config(), |(name in log_name(), others in btree_set(log_name(), 0..4))| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let m = manager(dir.path()).await;
            let (a, b) = tokio::join!(m.get_log(&name), m.get_log(&name));
            let (a, b) = (a.unwrap(), b.unwrap());
            for other in &others {
                m.get_log(other).await.unwrap();
            }
            let c = m.get_log(&name).await.unwrap();
            prop_assert!(a.same_log(&b) && a.same_log(&c));
            prop_assert_eq!(a.public_key(), c.public_key());
            prop_assert_eq!(a.discovery_key(), c.discovery_key());
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 4: Status count accuracy
#[test]
fn property_04_status_count_accuracy() {
    let cases = CaseCounter::new(4);
    let rt = runtime();
    proptest!(property_config(), |(logs in vec((log_name(), vec(payload(), 0..4)), 0..8), repeat in any::<bool>())| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let m = manager(dir.path()).await;
            let mut bytes: BTreeMap<&str, u64> = BTreeMap::new();
            for (name, payloads) in &logs {
                let log = m.get_log(name).await.unwrap();
                if repeat {
                    m.get_log(name).await.unwrap();
                }
                log.append_batch(payloads).await.unwrap();
                *bytes.entry(name).or_default() += payloads.iter().map(|p| p.len() as u64).sum::<u64>();
            }
            let status = m.status().await;
            prop_assert_eq!(status.log_count, bytes.len() as u64);
            prop_assert_eq!(status.total_byte_size, bytes.values().sum::<u64>());
            let mut sum = 0;
            for name in bytes.keys() {
                sum += m.get_log(name).await.unwrap().byte_length();
            }
            prop_assert_eq!(status.total_byte_size, sum);
            prop_assert_eq!(m.metrics().managed_logs, bytes.len() as u64);
            Ok(())
        })?;
    });
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize, Vec<u8>),
    Read(usize, prop::sample::Index),
    ReadRange(usize, prop::sample::Index, prop::sample::Index),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    vec(
        prop_oneof![
            3 => (0usize..3, payload()).prop_map(|(l, p)| Op::Append(l, p)),
            2 => (0usize..3, any::<prop::sample::Index>()).prop_map(|(l, i)| Op::Read(l, i)),
            1 => (0usize..3, any::<prop::sample::Index>(), any::<prop::sample::Index>())
                .prop_map(|(l, a, b)| Op::ReadRange(l, a, b)),
        ],
        1..40,
    )
}

const LOGS: [&str; 3] = ["atlas-memory", "crdt-collab", "agent-state"];

/// Runs `ops`, returning (appends, reads, expected events as (operation, log, seq)).
async fn run_ops(m: &HypercoreManager, ops: &[Op]) -> (u64, u64, Vec<(Operation, String, u64)>) {
    let mut lengths = [0u64; 3];
    let (mut appends, mut reads, mut expected) = (0, 0, Vec::new());
    for op in ops {
        match op {
            Op::Append(l, p) => {
                let seq = m.append(LOGS[*l], p).await.unwrap();
                lengths[*l] += 1;
                appends += 1;
                expected.push((Operation::Append, LOGS[*l].to_owned(), seq));
            }
            Op::Read(l, i) if lengths[*l] > 0 => {
                let seq = i.index(lengths[*l] as usize) as u64;
                m.read(LOGS[*l], seq).await.unwrap();
                reads += 1;
                expected.push((Operation::Read, LOGS[*l].to_owned(), seq));
            }
            Op::ReadRange(l, a, b) if lengths[*l] > 0 => {
                let n = lengths[*l] as usize;
                let (x, y) = (a.index(n), b.index(n));
                let (start, end) = (x.min(y) as u64, x.max(y) as u64 + 1);
                m.read_range(LOGS[*l], start, end).await.unwrap();
                reads += end - start;
                expected.push((Operation::Read, LOGS[*l].to_owned(), start));
            }
            _ => {}
        }
    }
    (appends, reads, expected)
}

/// Feature: p2p-hypercore-protocol, Property 19: Operation log events contain required fields
#[test]
fn property_19_operation_events_contain_required_fields() {
    let cases = CaseCounter::new(19);
    let rt = runtime();
    proptest!(property_config(), |(ops in ops())| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let m = manager(dir.path()).await;
            let (_, _, expected) = run_ops(&m, &ops).await;
            let recorded: Vec<_> = m
                .recent_events(None)
                .into_iter()
                .filter(|e| matches!(e.operation, Operation::Append | Operation::Read))
                .collect();
            prop_assert_eq!(recorded.len(), expected.len());
            for (event, (op, log, seq)) in recorded.iter().zip(&expected) {
                prop_assert_eq!(event.operation, *op);
                prop_assert_eq!(&event.log_name, log);
                prop_assert_eq!(event.seq, Some(*seq));
                prop_assert!(event.timestamp > 0);
                prop_assert!(event.byte_count.is_some());
            }
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 20: Metrics accuracy
#[test]
fn property_20_metrics_accuracy() {
    let cases = CaseCounter::new(20);
    let rt = runtime();
    proptest!(property_config(), |(ops in ops())| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let m = manager(dir.path()).await;
            let (appends, reads, _) = run_ops(&m, &ops).await;
            let metrics = m.metrics();
            prop_assert_eq!(metrics.total_appends, appends);
            prop_assert_eq!(metrics.total_reads, reads);
            prop_assert_eq!(metrics.error_count, 0);
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 21: Health warning threshold
#[test]
fn property_21_health_warning_threshold() {
    let cases = CaseCounter::new(21);
    let rt = runtime();
    proptest!(property_config(), |(threshold in 0u32..15, log in 0usize..3, other_errors in 0u32..5)| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let config = ManagerConfig::builder()
                .storage_path(dir.path())
                .health_warning_threshold(threshold)
                .health_warning_window(Duration::from_secs(600))
                .build()
                .unwrap();
            let m = HypercoreManager::new(config).unwrap();
            m.initialize().await.unwrap();
            let mut events = m.subscribe();
            let name = LOGS[log];
            let other = LOGS[(log + 1) % 3];
            // Errors on another log never count towards this one.
            for _ in 0..other_errors.min(threshold) {
                let _ = m.read(other, 99).await.unwrap_err();
            }
            let warnings = |events: &mut tokio::sync::broadcast::Receiver<ManagerEvent>| {
                let mut found = Vec::new();
                while let Ok(e) = events.try_recv() {
                    if let ManagerEvent::HealthWarning { log_name, error_count } = e {
                        found.push((log_name, error_count));
                    }
                }
                found
            };
            for _ in 0..threshold {
                let err = m.read(name, 7).await.unwrap_err();
                prop_assert_eq!(err.code(), ErrorCode::OutOfRange);
            }
            prop_assert!(warnings(&mut events).is_empty(), "no warning at the threshold");
            let _ = m.read(name, 7).await.unwrap_err();
            let found = warnings(&mut events);
            prop_assert_eq!(found, vec![(name.to_owned(), threshold + 1)]);
            // The log stays usable.
            prop_assert_eq!(m.append(name, b"still fine").await.unwrap(), 0);
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 22: Unique key generation
#[test]
fn property_22_unique_key_generation() {
    let cases = CaseCounter::new(22);
    let rt = runtime();
    proptest!(property_config(), |(names in btree_set(log_name(), 2..10))| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let m = manager(dir.path()).await;
            let mut keys = BTreeSet::new();
            for n in &names {
                prop_assert!(keys.insert(m.get_log(n).await.unwrap().public_key()), "duplicate key for {}", n);
            }
            // Another store (another primary key) gives other keys for the same names.
            let dir2 = tempfile::tempdir().unwrap();
            let m2 = manager(dir2.path()).await;
            for n in &names {
                prop_assert!(!keys.contains(&m2.get_log(n).await.unwrap().public_key()));
            }
            Ok(())
        })?;
    });
}

fn files_named(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if pred(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Every file under `dir` with its bytes, recursively.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_named(dir, &|_| true)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The secrets of a store after appending to `names` and opening a replica of another
/// store's log: the primary key, and per log its 32-byte seed and its 64-byte secret key
/// (seed || public key), each labelled. Key files are checked to be in `keys/` and to
/// hold the log's key on the way.
async fn store_with_secrets(
    dir: &Path,
    names: &BTreeSet<String>,
) -> Result<Vec<(String, Vec<u8>)>, TestCaseError> {
    let other_dir = tempfile::tempdir().unwrap();
    let other = manager(other_dir.path()).await;
    other.append("shared", b"from elsewhere").await.unwrap();
    let other_key = other.get_log("shared").await.unwrap().public_key();
    other.close().await.unwrap();

    let m = manager(dir).await;
    let mut secrets = Vec::new();
    let primary = std::fs::read(dir.join("keys/primary-key")).unwrap();
    prop_assert_eq!(primary.len(), 32);
    secrets.push(("primary key".to_string(), primary));
    for n in names {
        let log = m.get_log(n).await.unwrap();
        log.append(b"x").await.unwrap();
        log.append_batch(&[b"y".as_slice(), b"z"]).await.unwrap();
        let key_file = dir.join("keys").join(format!("{n}.key"));
        let bytes = std::fs::read(&key_file).unwrap();
        prop_assert_eq!(bytes.len(), 64);
        prop_assert_eq!(
            &bytes[32..],
            &log.public_key()[..],
            "key file holds this log's key"
        );
        secrets.push((format!("seed of {n}"), bytes[..32].to_vec()));
        secrets.push((format!("secret key of {n}"), bytes));
    }
    // Longer than any generated name, so it never collides with one of ours.
    m.open_replica("replica-of-another-store", other_key)
        .await
        .unwrap();
    m.close().await.unwrap();
    let is_key = |p: &Path| p.extension().is_some_and(|x| x == "key");
    prop_assert!(
        files_named(&dir.join("corestore"), &is_key).is_empty(),
        "a *.key file under corestore/"
    );
    prop_assert_eq!(files_named(&dir.join("keys"), &is_key).len(), names.len());
    Ok(secrets)
}

/// Feature: p2p-hypercore-protocol, Property 24: Key storage separation
///
/// No file under `corestore/` holds any secret (a log's seed or secret key, or the
/// primary key, which lives in `keys/primary-key`), not only no `*.key` file; key files
/// are only in `keys/`.
#[test]
fn property_24_key_storage_separation() {
    let cases = CaseCounter::new(24);
    let rt = runtime();
    proptest!(property_config(), |(names in btree_set(log_name(), 1..6))| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let secrets = store_with_secrets(dir.path(), &names).await?;
            let corestore = dir.path().join("corestore");
            prop_assert!(!corestore.join("primary-key").exists());
            let mut found = Vec::new();
            for (path, bytes) in all_files(&corestore) {
                for (what, secret) in &secrets {
                    if contains(&bytes, secret) {
                        found.push(format!("{what} in {}", path.display()));
                    }
                }
            }
            prop_assert!(found.is_empty(), "secrets under corestore/: {:#?}", found);
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 16: Offline append and read
#[test]
fn property_16_offline_append_and_read() {
    let cases = CaseCounter::new(16);
    let rt = runtime();
    proptest!(property_config(), |(ops in ops())| {
        cases.hit();
        rt.block_on(async {
            let (d_off, d_on, d_peer) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let offline = manager(d_off.path()).await;
            let online = manager(d_on.path()).await;
            let peer = manager(d_peer.path()).await;
            // The online manager shares every log with a connected peer that replicates them.
            for name in LOGS {
                online.enable_replication(name).await.unwrap();
                let key = online.get_log(name).await.unwrap().public_key();
                peer.open_replica(name, key).await.unwrap();
                peer.enable_replication(name).await.unwrap();
            }
            let (x, y) = tokio::io::duplex(64 * 1024);
            let (on, pe) = (online.clone(), peer.clone());
            let t1 = tokio::spawn(async move { on.replicate(x, true).await });
            let t2 = tokio::spawn(async move { pe.replicate(y, false).await });
            prop_assert!(online.status().await.replication_enabled);
            prop_assert!(!offline.status().await.replication_enabled);
            let mut lengths = [0u64; 3];
            for op in &ops {
                match op {
                    Op::Append(l, p) => {
                        let a = offline.append(LOGS[*l], p).await.unwrap();
                        let b = online.append(LOGS[*l], p).await.unwrap();
                        prop_assert_eq!(a, b);
                        prop_assert_eq!(a, lengths[*l]);
                        lengths[*l] += 1;
                    }
                    Op::Read(l, i) | Op::ReadRange(l, i, _) if lengths[*l] > 0 => {
                        let seq = i.index(lengths[*l] as usize) as u64;
                        prop_assert_eq!(
                            offline.read(LOGS[*l], seq).await.unwrap(),
                            online.read(LOGS[*l], seq).await.unwrap()
                        );
                    }
                    _ => {}
                }
            }
            for (l, name) in LOGS.iter().enumerate() {
                prop_assert_eq!(offline.get_length(name).await.unwrap(), lengths[l]);
                prop_assert_eq!(online.get_length(name).await.unwrap(), lengths[l]);
            }
            t1.abort();
            t2.abort();
            Ok(())
        })?;
    });
}

fn replication_state()
-> impl Strategy<Value = nova_hypercore_manager::replication_state::ReplicationState> {
    proptest::collection::btree_map(
        log_name(),
        proptest::collection::btree_map(
            "[0-9a-f]{64}",
            0u64..=nova_hypercore_serialization::MAX_SAFE_INTEGER,
            0..4,
        ),
        0..5,
    )
    .prop_map(
        |logs| nova_hypercore_manager::replication_state::ReplicationState {
            version: nova_hypercore_manager::replication_state::VERSION,
            logs,
        },
    )
}

/// Feature: p2p-hypercore-protocol, Property 18: Replication state persistence round trip
#[test]
fn property_18_replication_state_round_trip() {
    use nova_hypercore_manager::replication_state::{load, save};
    let cases = CaseCounter::new(18);
    proptest!(property_config(), |(state in replication_state(), overwrite in replication_state(), cut in any::<prop::sample::Index>())| {
        cases.hit();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replication-state.json");
        save(&path, &overwrite).unwrap();
        save(&path, &state).unwrap();
        prop_assert_eq!(load(&path).unwrap(), state);
        // A damaged file is reported, never trusted.
        let bytes = std::fs::read(&path).unwrap();
        let cut_at = cut.index(bytes.len());
        std::fs::write(&path, &bytes[..cut_at]).unwrap();
        if let Err(e) = load(&path) {
            prop_assert_eq!(e.code(), ErrorCode::StorageCorrupted);
        }
    });
}
