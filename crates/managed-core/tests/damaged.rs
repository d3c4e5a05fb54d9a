//! Damaged blocks on real files: a read of a block whose bytes in `data` fail
//! verification (while its tree leaf is good) reports `STORAGE_CORRUPTED` naming the
//! log, the seq and the data file, and marks the block missing durably (one oplog
//! entry clearing its bit), so it counts as not stored after a reopen and
//! [`ManagedCore::watch_missing`] changes. A healthy peer's proof then restores it in
//! place: for a replica, and for the writer's own log, whose length and signature stay
//! as they were (a writer takes blocks, never an upgrade).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use nova_hypercore_managed_core::{
    ManagedCore, OpenOptions, RequestBlock, RequestUpgrade, SigningKey,
};
use nova_hypercore_serialization::{ErrorCode, HypercoreError, LogName};

const BLOCKS: u64 = 300;
const FILES: [&str; 5] = ["oplog", "tree", "bitfield", "sizes", "data"];

fn name() -> LogName {
    LogName::parse("damaged-log").unwrap()
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[47; 32])
}

fn writer_options() -> OpenOptions {
    OpenOptions::new().signing_key(key())
}

fn replica_options() -> OpenOptions {
    OpenOptions::new().public_key(key().verifying_key())
}

fn entry(seq: u64) -> Vec<u8> {
    let mut v = format!("damaged {seq}:").into_bytes();
    v.resize(12 + (seq * 7 % 90) as usize, (seq % 251) as u8);
    v
}

/// Where block `seq` starts in the data file.
fn offset(seq: u64) -> u64 {
    (0..seq).map(|s| entry(s).len() as u64).sum()
}

/// A closed writer log of [`BLOCKS`] blocks in `dir`.
async fn build(dir: &Path) {
    let log = ManagedCore::open(dir, name(), writer_options())
        .await
        .unwrap();
    let values: Vec<Vec<u8>> = (0..BLOCKS).map(entry).collect();
    for chunk in values.chunks(37) {
        log.append_batch(chunk).await.unwrap();
    }
    log.close().await.unwrap();
}

fn copy(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in FILES {
        std::fs::copy(from.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

/// Flips one byte inside each of blocks `seqs` in the data file.
fn damage(dir: &Path, seqs: &[u64]) {
    let path = dir.join("data");
    let mut bytes = std::fs::read(&path).unwrap();
    for &seq in seqs {
        bytes[(offset(seq) + 3) as usize] ^= 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
}

fn assert_damaged_error(e: &HypercoreError, seq: u64) {
    assert_eq!(e.code(), ErrorCode::StorageCorrupted, "{e}");
    match e {
        HypercoreError::StorageCorrupted { log, path, reason } => {
            assert_eq!(log, "damaged-log");
            assert!(
                path.ends_with("data"),
                "names the data file: {}",
                path.display()
            );
            assert!(
                reason.contains(&format!("blocks {seq}..{}", seq + 1)),
                "reason names the seq range: {reason}"
            );
            assert!(reason.contains("marked missing"), "{reason}");
        }
        other => panic!("unexpected error {other}"),
    }
}

/// A damaged block read once is reported, marked missing durably, and the watchers
/// hear of it; the other blocks still read; a reopen keeps it missing.
#[tokio::test]
async fn damaged_block_is_reported_and_marked_missing_durably() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path()).await;
    damage(dir.path(), &[40, 41, 200]);
    let log = ManagedCore::open(dir.path(), name(), writer_options())
        .await
        .unwrap();
    let mut missing = log.watch_missing();
    assert_eq!(*missing.borrow_and_update(), 0);
    assert!(log.has_block(41).await.unwrap(), "not known yet");

    let e = log.get(41).await.unwrap_err();
    assert_damaged_error(&e, 41);
    assert!(!log.has_block(41).await.unwrap());
    assert!(missing.has_changed().unwrap());
    assert_eq!(*missing.borrow_and_update(), 1);
    assert_eq!(log.info().await.unwrap().contiguous_length, 41);

    // get_range stops at the first damaged block and marks it.
    let e = log.get_range(0, BLOCKS).await.unwrap_err();
    assert_damaged_error(&e, 40);
    assert_eq!(*missing.borrow_and_update(), 2);
    assert_eq!(log.info().await.unwrap().contiguous_length, 40);
    // A second read of a dropped block fails without counting it again: not stored
    // here (`REPLICATION_FAILED`, fetched again from a peer), not a bad signature.
    assert_eq!(
        log.get(41).await.unwrap_err().code(),
        ErrorCode::ReplicationFailed
    );
    assert!(!missing.has_changed().unwrap());
    for seq in (0..40).chain(42..200).chain(201..BLOCKS) {
        assert_eq!(log.get(seq).await.unwrap(), entry(seq), "seq {seq}");
    }
    assert_damaged_error(&log.get(200).await.unwrap_err(), 200);
    let length = log.length();
    log.close().await.unwrap();

    // Durable: the reopened log holds neither block, and its length is the same.
    let log = ManagedCore::open(dir.path(), name(), writer_options())
        .await
        .unwrap();
    assert_eq!(log.length(), length);
    for seq in [40, 41, 200] {
        assert!(!log.has_block(seq).await.unwrap(), "seq {seq}");
    }
    assert!(log.has_block(39).await.unwrap());
    assert_eq!(log.info().await.unwrap().contiguous_length, 40);
    log.close().await.unwrap();
}

/// A writer gets its damaged blocks back from a replica that holds them, verified
/// against its own signed tree; length and signature (the tree file's roots, the
/// oplog's header) stay; an upgrade offered to a writer is refused.
#[tokio::test]
async fn writer_restores_damaged_blocks_from_a_replica_proof() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path()).await;
    let healthy = copy(dir.path());
    damage(dir.path(), &[7, 9, 150]);
    let replica = ManagedCore::open(healthy.path(), name(), replica_options())
        .await
        .unwrap();
    assert!(!replica.is_writable());
    let writer = ManagedCore::open(dir.path(), name(), writer_options())
        .await
        .unwrap();
    let before = writer.info().await.unwrap();
    for seq in [7, 150] {
        assert_damaged_error(&writer.get(seq).await.unwrap_err(), seq);
    }
    for seq in [7, 150] {
        let nodes = writer.missing_nodes(seq).await.unwrap();
        let proof = replica
            .serve_proof(Some(RequestBlock { index: seq, nodes }), None)
            .await
            .unwrap()
            .unwrap();
        assert!(writer.apply_proof(proof).await.unwrap(), "seq {seq}");
        assert_eq!(writer.get(seq).await.unwrap(), entry(seq));
    }
    // A tampered proof for a block still missing is refused, nothing stored.
    assert_damaged_error(&writer.get(9).await.unwrap_err(), 9);
    let nodes = writer.missing_nodes(9).await.unwrap();
    let mut proof = replica
        .serve_proof(Some(RequestBlock { index: 9, nodes }), None)
        .await
        .unwrap()
        .unwrap();
    proof.block.as_mut().unwrap().value[0] ^= 1;
    assert_eq!(
        writer.apply_proof(proof).await.unwrap_err().code(),
        ErrorCode::SignatureInvalid
    );
    assert!(!writer.has_block(9).await.unwrap());
    // A writer never takes an upgrade, even a valid one of its own log.
    let upgrade = replica
        .serve_proof(
            None,
            Some(RequestUpgrade {
                start: 0,
                length: 1,
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!writer.apply_proof(upgrade).await.unwrap());
    let after = writer.info().await.unwrap();
    assert_eq!(after.length, before.length);
    assert_eq!(after.byte_length, before.byte_length);
    writer.close().await.unwrap();
    replica.close().await.unwrap();

    // After a reopen: every block but 9 is held and reads back; same length.
    let writer = ManagedCore::open(dir.path(), name(), writer_options())
        .await
        .unwrap();
    assert_eq!(writer.length(), BLOCKS);
    for seq in (0..9).chain(10..BLOCKS) {
        assert_eq!(writer.get(seq).await.unwrap(), entry(seq), "seq {seq}");
    }
    assert!(!writer.has_block(9).await.unwrap());
    writer.close().await.unwrap();
    // The signature is unchanged: the healthy copy's oplog header and tree still
    // describe the same signed tree (an upgrade proof from either verifies on a fresh
    // replica and yields the same roots).
    let a = ManagedCore::open(dir.path(), name(), writer_options())
        .await
        .unwrap();
    let b = ManagedCore::open(healthy.path(), name(), replica_options())
        .await
        .unwrap();
    let up = RequestUpgrade {
        start: 0,
        length: BLOCKS,
    };
    let pa = a
        .serve_proof(None, Some(up.clone()))
        .await
        .unwrap()
        .unwrap();
    let pb = b.serve_proof(None, Some(up)).await.unwrap().unwrap();
    assert_eq!(pa.upgrade.unwrap().signature, pb.upgrade.unwrap().signature);
}

/// A replica's damaged block comes back from the writer's proof into the same place,
/// and stays after a reopen.
#[tokio::test]
async fn replica_restores_a_damaged_block_from_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path()).await;
    let replica_dir = copy(dir.path());
    damage(replica_dir.path(), &[0, 299]);
    let writer = ManagedCore::open(dir.path(), name(), writer_options())
        .await
        .unwrap();
    let replica = ManagedCore::open(replica_dir.path(), name(), replica_options())
        .await
        .unwrap();
    let data_len = std::fs::metadata(replica_dir.path().join("data"))
        .unwrap()
        .len();
    for seq in [0, 299] {
        assert_damaged_error(&replica.get(seq).await.unwrap_err(), seq);
        let nodes = replica.missing_nodes(seq).await.unwrap();
        let proof = writer
            .serve_proof(Some(RequestBlock { index: seq, nodes }), None)
            .await
            .unwrap()
            .unwrap();
        assert!(replica.apply_proof(proof).await.unwrap());
    }
    replica.close().await.unwrap();
    assert_eq!(
        std::fs::metadata(replica_dir.path().join("data"))
            .unwrap()
            .len(),
        data_len,
        "written over the damaged bytes, in place"
    );
    assert_eq!(
        std::fs::read(replica_dir.path().join("data")).unwrap(),
        std::fs::read(dir.path().join("data")).unwrap()
    );
    let replica = ManagedCore::open(replica_dir.path(), name(), replica_options())
        .await
        .unwrap();
    assert_eq!(replica.info().await.unwrap().contiguous_length, BLOCKS);
    for (seq, value) in replica
        .get_range(0, BLOCKS)
        .await
        .unwrap()
        .into_iter()
        .enumerate()
    {
        assert_eq!(value, entry(seq as u64));
    }
}

/// Damage to the tree (a leaf hash) is not data damage: the read fails, the block is
/// not marked missing (a peer's copy would not verify against the damaged leaf);
/// `repair()` is the way back.
#[tokio::test]
async fn tree_damage_does_not_mark_the_block_missing() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path()).await;
    // Leaf of block 20 is tree node 40; 40 bytes per node, the hash after the size.
    let path = dir.path().join("tree");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40 * 40 + 12] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let log = ManagedCore::open(dir.path(), name(), writer_options())
        .await
        .unwrap();
    // Block 21's path goes through the damaged leaf of its sibling, block 20.
    let e = log.get(21).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SignatureInvalid);
    assert!(!e.to_string().contains("marked missing"), "{e}");
    assert!(log.has_block(21).await.unwrap());
    assert_eq!(*log.watch_missing().borrow(), 0);
    log.repair().await.unwrap();
    assert_eq!(log.get(21).await.unwrap(), entry(21));
    assert_eq!(log.get(20).await.unwrap(), entry(20));
}
