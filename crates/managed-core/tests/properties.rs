//! Spec properties 5-8 on disk-backed logs in temporary directories, plus tampering.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use nova_hypercore_managed_core::{Durability, ManagedCore, OpenOptions};
use nova_hypercore_serialization::{ErrorCode, HypercoreError, LogName};
use nova_hypercore_testkit::{CaseCounter, property_config, runtime};
use proptest::collection::vec;
use proptest::prelude::*;

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => vec(any::<u8>(), 1..64),
        2 => vec(any::<u8>(), 64..2048),
    ]
}

fn durability() -> impl Strategy<Value = Durability> {
    prop_oneof![
        8 => Just(Durability::Flush),
        1 => Just(Durability::FsyncPerBatch),
        1 => Just(Durability::FsyncPerWrite),
    ]
}

async fn open(dir: &std::path::Path, durability: Durability) -> ManagedCore {
    let name = LogName::parse("prop-log").unwrap();
    ManagedCore::open(dir, name, OpenOptions::new().durability(durability))
        .await
        .unwrap()
}

/// Feature: p2p-hypercore-protocol, Property 5: Monotonically increasing sequence numbers
#[test]
fn property_05_monotonic_sequence_numbers() {
    let cases = CaseCounter::new(5);
    let rt = runtime();
    proptest!(property_config(), |(
        payloads in vec(payload(), 1..40),
        batch_sizes in vec(1usize..6, 1..8),
        durability in durability(),
    )| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), durability).await;
            let mut expected = 0u64;
            for p in &payloads {
                let seq = log.append(p).await.unwrap();
                prop_assert_eq!(seq, expected);
                expected += 1;
            }
            // Batches continue the same sequence with no gap.
            for size in &batch_sizes {
                let batch: Vec<&[u8]> = payloads.iter().take(*size).map(Vec::as_slice).collect();
                let seqs = log.append_batch(&batch).await.unwrap();
                prop_assert_eq!(seqs.start, expected);
                prop_assert_eq!(seqs.end, expected + batch.len() as u64);
                expected = seqs.end;
            }
            prop_assert_eq!(log.length(), expected);
            log.close().await.unwrap();
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 6: Append-read round trip
#[test]
fn property_06_append_read_round_trip() {
    let cases = CaseCounter::new(6);
    let rt = runtime();
    proptest!(property_config(), |(payloads in vec(payload(), 1..30), durability in durability())| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), durability).await;
            let mut seqs = Vec::new();
            for p in &payloads {
                seqs.push(log.append(p).await.unwrap());
            }
            for (p, seq) in payloads.iter().zip(&seqs) {
                prop_assert_eq!(&log.get(*seq).await.unwrap(), p);
            }
            // And after a restart, from the files alone.
            log.close().await.unwrap();
            let log = open(dir.path(), durability).await;
            for (p, seq) in payloads.iter().zip(&seqs) {
                prop_assert_eq!(&log.get(*seq).await.unwrap(), p);
            }
            let total: u64 = payloads.iter().map(|p| p.len() as u64).sum();
            prop_assert_eq!(log.byte_length(), total);
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 7: Range read returns correct ordered entries
#[test]
fn property_07_range_read_ordered_entries() {
    let cases = CaseCounter::new(7);
    let rt = runtime();
    proptest!(property_config(), |(
        payloads in vec(payload(), 1..40),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    )| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), Durability::Flush).await;
            log.append_batch(&payloads).await.unwrap();
            let n = payloads.len();
            let (x, y) = (a.index(n), b.index(n + 1));
            let (start, end) = if x < y { (x, y) } else { (y.min(n - 1), (x + 1).min(n)) };
            prop_assume!(start < end);
            let range = log.get_range(start as u64, end as u64).await.unwrap();
            prop_assert_eq!(range.len(), end - start);
            for (i, block) in range.iter().enumerate() {
                let seq = (start + i) as u64;
                prop_assert_eq!(block, &log.get(seq).await.unwrap());
                prop_assert_eq!(block, &payloads[start + i]);
            }
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 8: Signature verification succeeds for all appended entries
#[test]
fn property_08_signature_verification_succeeds() {
    let cases = CaseCounter::new(8);
    let rt = runtime();
    proptest!(property_config(), |(payloads in vec(payload(), 1..40), split in any::<prop::sample::Index>())| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), Durability::Flush).await;
            // Interleave appends and verification so cached roots go stale between lengths.
            let (first, second) = payloads.split_at(split.index(payloads.len()));
            for p in first {
                let seq = log.append(p).await.unwrap();
                prop_assert!(log.verify_signature(seq).await.unwrap());
            }
            log.append_batch(second).await.unwrap();
            for seq in 0..log.length() {
                prop_assert!(log.verify_signature(seq).await.unwrap(), "seq {}", seq);
            }
            Ok(())
        })?;
    });
}

proptest! {
    #![proptest_config(property_config())]

    /// Flipping one bit of one stored block is caught: verify_signature is false for that
    /// block (and only that block; that first read meets the damage and drops the block,
    /// `STORAGE_CORRUPTED`), and a later get fails naming log and seq: the block is not
    /// stored any more (`REPLICATION_FAILED`, fetched again from a peer), never read
    /// back altered.
    #[test]
    fn flipped_data_byte_fails_verification(
        payloads in vec(vec(any::<u8>(), 1..200), 1..20),
        which in any::<prop::sample::Index>(),
        offset in any::<prop::sample::Index>(),
        bit in 0u8..8,
        reopen in any::<bool>(),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), Durability::Flush).await;
            for p in &payloads {
                log.append(p).await.unwrap();
            }
            let victim = which.index(payloads.len());
            let start: usize = payloads[..victim].iter().map(Vec::len).sum();
            let at = start + offset.index(payloads[victim].len());
            let log = if reopen {
                log.close().await.unwrap();
                flip(&dir.path().join("data"), at, bit);
                open(dir.path(), Durability::Flush).await
            } else {
                flip(&dir.path().join("data"), at, bit);
                log
            };
            for seq in 0..payloads.len() as u64 {
                let ok = log.verify_signature(seq).await.unwrap();
                prop_assert_eq!(ok, seq != victim as u64, "seq {}", seq);
            }
            match log.get(victim as u64).await {
                Err(e @ HypercoreError::BlockUnavailable { .. }) => {
                    prop_assert_eq!(e.code(), ErrorCode::ReplicationFailed);
                    prop_assert_eq!(e.log_name(), Some("prop-log"));
                    prop_assert_eq!(e.seq(), Some(victim as u64));
                }
                other => prop_assert!(false, "expected the block to be gone, got {:?}", other),
            }
            let range = log.get_range(0, payloads.len() as u64).await;
            let range_failed = matches!(range, Err(HypercoreError::BlockUnavailable { .. }));
            prop_assert!(range_failed, "get_range must fail on a tampered block");
            Ok(())
        })?;
    }
}

fn flip(path: &std::path::Path, at: usize, bit: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 1 << bit;
    std::fs::write(path, bytes).unwrap();
}

proptest! {
    #![proptest_config(property_config())]

    /// Flipping any bit of the tree file never yields wrong data: every read returns the
    /// written bytes or a verification error, and opening fails only as STORAGE_CORRUPTED.
    #[test]
    fn flipped_tree_byte_never_yields_wrong_data(
        payloads in vec(vec(any::<u8>(), 1..100), 1..150),
        offset in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let rt = runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), Durability::Flush).await;
            log.append_batch(&payloads).await.unwrap();
            log.close().await.unwrap();
            let tree = dir.path().join("tree");
            let len = std::fs::metadata(&tree).unwrap().len() as usize;
            prop_assume!(len > 0);
            flip(&tree, offset.index(len), bit);
            let name = LogName::parse("prop-log").unwrap();
            let log = match ManagedCore::open(dir.path(), name, OpenOptions::new()).await {
                Ok(log) => log,
                Err(e) => {
                    prop_assert_eq!(e.code(), ErrorCode::StorageCorrupted, "{}", e);
                    return Ok(());
                }
            };
            for (seq, expected) in payloads.iter().enumerate() {
                match log.get(seq as u64).await {
                    Ok(bytes) => prop_assert_eq!(&bytes, expected, "seq {}", seq),
                    Err(e) => prop_assert!(
                        matches!(e.code(), ErrorCode::SignatureInvalid | ErrorCode::StorageCorrupted),
                        "seq {}: {}", seq, e
                    ),
                }
            }
            Ok(())
        })?;
    }
}
