//! `ManagedCore::seek` (JS `core.seek(bytes)`): a byte offset of the concatenated
//! payload to `(seq, offset)`, locally on a writer, and on a sparse replica that has
//! only the signed roots, proven by the writer's seek proofs (`serve_seek` answers the
//! `hash` + `seek` request the sessions send), no block value travelling; a tampered
//! seek proof is refused and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use nova_hypercore_managed_core::{
    ManagedCore, OpenOptions, RequestBlock, RequestSeek, RequestUpgrade, SeekState,
};
use nova_hypercore_serialization::{ErrorCode, HypercoreError, LogName};

fn name(s: &str) -> LogName {
    LogName::parse(s).unwrap()
}

/// Block `i`'s value: 1 to 37 bytes, varied.
fn value(i: u64) -> Vec<u8> {
    vec![i as u8; 1 + ((i * 7 + 3) % 37) as usize]
}

/// `(seq, offset)` of byte `bytes`, by summing the sizes.
fn brute_force(sizes: &[usize], bytes: u64) -> (u64, u64) {
    let mut start = 0u64;
    for (seq, size) in sizes.iter().enumerate() {
        let end = start + *size as u64;
        if bytes < end {
            return (seq as u64, bytes - start);
        }
        start = end;
    }
    (sizes.len() as u64, 0)
}

async fn writer(n: u64) -> (ManagedCore, Vec<usize>) {
    let w = ManagedCore::in_memory(name("w"), OpenOptions::new())
        .await
        .unwrap();
    let values: Vec<Vec<u8>> = (0..n).map(value).collect();
    w.append_batch(&values).await.unwrap();
    (w, values.iter().map(Vec::len).collect())
}

#[tokio::test]
async fn every_byte_of_a_log_seeks_to_its_block_and_offset() {
    let (w, sizes) = writer(45).await;
    let total: u64 = sizes.iter().map(|s| *s as u64).sum();
    assert_eq!(w.byte_length(), total);
    for bytes in 0..total {
        assert_eq!(
            w.seek(bytes).await.unwrap(),
            brute_force(&sizes, bytes),
            "byte {bytes}"
        );
    }
    // The byte length itself is (length, 0), as JS.
    assert_eq!(w.seek(total).await.unwrap(), (45, 0));
    let err = w.seek(total + 1).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfRange, "{err}");
    assert!(
        matches!(&err, HypercoreError::ByteOutOfRange { log, bytes, byte_length }
            if log == "w" && *bytes == total + 1 && *byte_length == total),
        "{err:?}"
    );
    let err = w.seek(u64::MAX).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfRange, "{err}");

    let empty = ManagedCore::in_memory(name("e"), OpenOptions::new())
        .await
        .unwrap();
    assert_eq!(empty.seek(0).await.unwrap(), (0, 0));
    assert_eq!(
        empty.seek(1).await.unwrap_err().code(),
        ErrorCode::OutOfRange
    );
}

/// A sparse replica of `w` that has the signed roots of its length and nothing else.
async fn roots_only_replica(w: &ManagedCore) -> ManagedCore {
    let r = ManagedCore::in_memory(
        name("r"),
        OpenOptions::new()
            .public_key(w.verifying_key())
            .sparse(true),
    )
    .await
    .unwrap();
    let upgrade = w
        .serve_proof(
            None,
            Some(RequestUpgrade {
                start: 0,
                length: w.length(),
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(r.apply_proof(upgrade).await.unwrap());
    assert_eq!(r.length(), w.length());
    r
}

/// What the sessions send for a span: a `hash` of the span's first block up to the
/// node, with the seek.
async fn seek_proof(
    w: &ManagedCore,
    state: SeekState,
    bytes: u64,
) -> nova_hypercore_managed_core::Proof {
    let SeekState::Span { start, depth, .. } = state else {
        panic!("not a span: {state:?}");
    };
    w.serve_seek(
        None,
        Some(RequestBlock {
            index: 2 * start,
            nodes: depth,
        }),
        RequestSeek { bytes },
        0,
        None,
    )
    .await
    .unwrap()
    .expect("the writer proves the seek")
}

#[tokio::test]
async fn a_sparse_replica_seeks_with_the_writers_seek_proofs_and_no_block_values() {
    let (w, sizes) = writer(1_000).await;
    let total: u64 = sizes.iter().map(|s| *s as u64).sum();
    for bytes in [1, total / 3, total / 2, total - 1] {
        let r = roots_only_replica(&w).await;
        let expected = brute_force(&sizes, bytes);
        // Not held locally: REPLICATION_FAILED, not a wrong answer.
        let err = r.seek(bytes).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ReplicationFailed, "{err}");
        let mut rounds = 0;
        let found = loop {
            let state = r.seek_state(bytes).await.unwrap();
            if let SeekState::Found { seq, offset } = state {
                break (seq, offset);
            }
            rounds += 1;
            assert!(rounds <= 12, "no progress at byte {bytes}: {state:?}");
            let proof = seek_proof(&w, state, bytes).await;
            assert!(proof.block.is_none() && proof.upgrade.is_none());
            assert!(r.apply_proof(proof).await.unwrap(), "nodes stored");
        };
        assert_eq!(found, expected, "byte {bytes}");
        assert_eq!(r.seek(bytes).await.unwrap(), expected);
        assert_eq!(r.has_range(0..1_000).await.unwrap(), 0, "no block stored");
    }
    // Past the byte length the replica knows: OUT_OF_RANGE with it.
    let r = roots_only_replica(&w).await;
    let err = r.seek(total + 5).await.unwrap_err();
    assert!(
        matches!(err, HypercoreError::ByteOutOfRange { byte_length, .. } if byte_length == total),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_seek_proof_with_wrong_nodes_is_refused_and_changes_nothing() {
    let (w, sizes) = writer(1_000).await;
    let total: u64 = sizes.iter().map(|s| *s as u64).sum();
    let bytes = total / 2;
    let r = roots_only_replica(&w).await;
    let state = r.seek_state(bytes).await.unwrap();
    let good = seek_proof(&w, state, bytes).await;
    assert!(
        good.seek.as_ref().is_some_and(|s| !s.nodes.is_empty()),
        "the proof carries seek nodes"
    );

    // A seek node's hash altered.
    let mut forged = good.clone();
    forged.seek.as_mut().unwrap().nodes[0].hash[0] ^= 1;
    // A seek node's size altered (sends the seek elsewhere).
    let mut resized = good.clone();
    resized.seek.as_mut().unwrap().nodes[0].length += 1;
    // A seek node left out.
    let mut short = good.clone();
    short.seek.as_mut().unwrap().nodes.pop();
    // The hash proof without its seek part.
    let mut unseeked = good.clone();
    unseeked.seek = None;
    for bad in [forged, resized, short, unseeked] {
        let err = r.apply_proof(bad).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::SignatureInvalid, "{err}");
        assert_eq!(r.seek_state(bytes).await.unwrap(), state, "nothing stored");
    }
    // The good one still applies.
    assert!(r.apply_proof(good).await.unwrap());
    assert_ne!(r.seek_state(bytes).await.unwrap(), state);
}
