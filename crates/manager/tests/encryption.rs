//! Encrypted logs through the manager (`get_log_encrypted`, `open_replica_encrypted`):
//! a writer's log replicated over TCP to a seeder that has no key (it holds and serves
//! the ciphertext, its reads return it), then, with the writer gone, from the seeder to
//! a reader with the key, which reads every entry as written. A log open without its
//! key is not silently reused with one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_manager::{
    EncryptionKey, HypercoreManager, ManagedLog, ManagerConfig, ReplicaOptions,
};
use nova_hypercore_serialization::ErrorCode;

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

fn key() -> EncryptionKey {
    EncryptionKey::from_hex(&"5a".repeat(32)).unwrap()
}

fn entry(i: u64) -> Vec<u8> {
    format!("private note {i}").into_bytes()
}

async fn wait_for(log: &ManagedLog, n: u64) {
    let mut p = log.watch_progress().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while p.borrow_and_update().contiguous_length < n {
            p.changed().await.unwrap();
        }
    })
    .await
    .expect("the replica syncs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeder_without_the_key_serves_an_encrypted_log_to_a_reader_with_it() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (writer, seeder, reader) = (
        manager(dirs[0].path()).await,
        manager(dirs[1].path()).await,
        manager(dirs[2].path()).await,
    );
    let n = 50;
    let log = writer.get_log_encrypted("notes", key()).await.unwrap();
    assert!(log.is_encrypted());
    let entries: Vec<Vec<u8>> = (0..n).map(entry).collect();
    log.append_batch(&entries).await.unwrap();
    let plain_bytes: u64 = entries.iter().map(|e| e.len() as u64).sum();
    assert_eq!(log.byte_length(), plain_bytes);
    assert_eq!(writer.read("notes", 7).await.unwrap(), entry(7));
    let public_key = log.public_key();
    writer.enable_replication("notes").await.unwrap();
    let listener = writer.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();

    // The seeder: a plain replica. It verifies and stores what it cannot read.
    let held = seeder.open_replica("notes-seed", public_key).await.unwrap();
    assert!(!held.is_encrypted());
    seeder.enable_replication("notes-seed").await.unwrap();
    let connector = seeder.connect(listener.local_addr());
    wait_for(&held, n).await;
    drop(connector);
    for i in 0..n {
        let stored = seeder.read("notes-seed", i).await.unwrap();
        assert_eq!(stored.len(), entry(i).len() + 8);
        assert_ne!(
            &stored[8..],
            &entry(i)[..],
            "the seeder holds plaintext at {i}"
        );
    }
    drop(listener);
    writer.close().await.unwrap();

    // The reader, with the key, fetches everything from the seeder alone.
    let seeder_listener = seeder.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let copy = reader
        .open_replica_encrypted("notes", public_key, Some(ReplicaOptions::full()), key())
        .await
        .unwrap();
    assert!(copy.is_encrypted());
    reader.enable_replication("notes").await.unwrap();
    let _c = reader.connect(seeder_listener.local_addr());
    wait_for(&copy, n).await;
    assert_eq!(reader.read_range("notes", 0, n).await.unwrap(), entries);
    assert_eq!(copy.byte_length(), plain_bytes);
}

#[tokio::test]
async fn a_log_open_without_its_key_is_not_reused_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    m.append("plain", b"x").await.unwrap();
    let err = m.get_log_encrypted("plain", key()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized, "{err}");
    assert!(
        err.to_string().contains("without an encryption key"),
        "{err}"
    );

    let log = m.get_log_encrypted("secret", key()).await.unwrap();
    log.append(b"hidden").await.unwrap();
    let other = EncryptionKey::new(vec![1; 32]).unwrap();
    let err = m.get_log_encrypted("secret", other).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized, "{err}");
    // The same key, or none, gives the same (decrypting) handle.
    assert!(
        m.get_log_encrypted("secret", key())
            .await
            .unwrap()
            .same_log(&log)
    );
    assert_eq!(m.read("secret", 0).await.unwrap(), b"hidden");
    m.close().await.unwrap();

    // After a restart the key must be given again: without it, the stored bytes, and
    // no appends (they would be plaintext in an encrypted log).
    let m = manager(dir.path()).await;
    let stored = m.read("secret", 0).await.unwrap();
    assert_eq!(stored.len(), b"hidden".len() + 8);
    assert_ne!(&stored[8..], b"hidden");
    let err = m.append("secret", b"oops").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized, "{err}");
    assert!(err.to_string().contains("is encrypted"), "{err}");
    assert_eq!(m.get_length("secret").await.unwrap(), 1, "nothing appended");
    m.close().await.unwrap();

    // Another key than the first one is refused at open (the directory's mark).
    let m = manager(dir.path()).await;
    let typo = EncryptionKey::new(vec![0x5b; 32]).unwrap();
    let err = m.get_log_encrypted("secret", typo).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized, "{err}");
    assert!(err.to_string().contains("another key"), "{err}");
    let log = m.get_log_encrypted("secret", key()).await.unwrap();
    log.append(b"more").await.unwrap();
    assert_eq!(
        m.read_range("secret", 0, 2).await.unwrap(),
        vec![b"hidden".to_vec(), b"more".to_vec()]
    );
}

#[tokio::test]
async fn an_encrypted_entry_must_fit_the_wire_with_its_padding() {
    let dir = tempfile::tempdir().unwrap();
    let limit = nova_hypercore_manager::MAX_PAYLOAD_LIMIT;
    let m = HypercoreManager::new(
        ManagerConfig::builder()
            .storage_path(dir.path())
            .max_payload_bytes(limit)
            .build()
            .unwrap(),
    )
    .unwrap();
    m.initialize().await.unwrap();
    let log = m.get_log_encrypted("big", key()).await.unwrap();
    let too_big = vec![7u8; (limit - 7) as usize];
    let err = log.append(&too_big).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PayloadTooLarge, "{err}");
    assert_eq!(
        log.append(&too_big[1..]).await.unwrap(),
        0,
        "limit - 8 fits"
    );
    // A plain log takes the whole limit.
    assert_eq!(
        m.append("plain", &vec![7u8; limit as usize]).await.unwrap(),
        0
    );
}
