//! A writer's truncations on disk (docs/forks.md step a): random appends and truncations,
//! each checked against a model, and again after reopening. The golden comparison with
//! JS's files is in `src/core/storage/truncate.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use nova_hypercore_managed_core::{ManagedCore, OpenOptions, SigningKey};
use nova_hypercore_serialization::{ErrorCode, LogName};
use nova_hypercore_testkit::runtime;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    /// Truncate to this share (0..=100 %) of the length.
    Truncate(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1usize..40).prop_map(Op::Append),
        3 => (0u8..=100).prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
    ]
}

async fn open(dir: &std::path::Path) -> ManagedCore {
    ManagedCore::open(
        dir,
        LogName::parse("truncated").unwrap(),
        OpenOptions::new().signing_key(SigningKey::from_bytes(&[7; 32])),
    )
    .await
    .unwrap()
}

/// Every block below the length reads the model's value; the first past it is out of
/// range; length, fork and byte length agree.
async fn check(core: &ManagedCore, model: &[Vec<u8>], fork: u64) {
    let info = core.info().await.unwrap();
    assert_eq!(info.length, model.len() as u64);
    assert_eq!(info.fork, fork);
    assert_eq!(
        info.byte_length,
        model.iter().map(|b| b.len() as u64).sum::<u64>()
    );
    for (seq, want) in model.iter().enumerate() {
        assert_eq!(&core.get(seq as u64).await.unwrap(), want, "seq {seq}");
    }
    let past = core.get(model.len() as u64).await.unwrap_err();
    assert_eq!(past.code(), ErrorCode::OutOfRange);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn appends_and_truncations_read_back_as_the_model_says(ops in proptest::collection::vec(op(), 1..14)) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut core = open(dir.path()).await;
            let mut model: Vec<Vec<u8>> = Vec::new();
            let mut fork = 0;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        // Blocks of a new fork differ from the retracted ones at the
                        // same seq, so a stale read cannot pass by chance.
                        let blocks: Vec<Vec<u8>> = (0..n)
                            .map(|i| format!("block {} f{fork} {}", model.len() + i, "x".repeat(i % 7)).into_bytes())
                            .collect();
                        core.append_batch(&blocks).await.unwrap();
                        model.extend(blocks);
                    }
                    Op::Truncate(share) => {
                        let to = model.len() * share as usize / 100;
                        fork = core.truncate(to as u64).await.unwrap();
                        model.truncate(to);
                    }
                    Op::Reopen => {
                        drop(core);
                        core = open(dir.path()).await;
                    }
                }
                check(&core, &model, fork).await;
            }
            drop(core);
            let core = open(dir.path()).await;
            check(&core, &model, fork).await;
        });
    }
}

#[tokio::test]
async fn truncate_refuses_a_replica_and_a_length_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let core = open(dir.path()).await;
    core.append_batch(&[b"a".as_slice(), b"b"]).await.unwrap();
    let e = core.truncate(3).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutOfRange);
    assert_eq!(core.info().await.unwrap().fork, 0, "nothing changed");
    let rdir = tempfile::tempdir().unwrap();
    let replica = ManagedCore::open(
        rdir.path(),
        LogName::parse("replica").unwrap(),
        OpenOptions::new().public_key(core.verifying_key()),
    )
    .await
    .unwrap();
    assert_eq!(
        replica.truncate(0).await.unwrap_err().code(),
        ErrorCode::Unauthorized
    );
    // Truncating to the same length opens a new fork (JS does the same).
    assert_eq!(core.truncate(2).await.unwrap(), 1);
    assert_eq!(core.get(1).await.unwrap(), b"b");
}

/// The signature over the whole log, as a peer would get it.
async fn signature(core: &ManagedCore) -> Vec<u8> {
    let length = core.length();
    core.serve_proof(
        None,
        Some(nova_hypercore_managed_core::RequestUpgrade { start: 0, length }),
    )
    .await
    .unwrap()
    .unwrap()
    .upgrade
    .unwrap()
    .signature
}

#[tokio::test]
async fn a_lost_header_after_a_truncation_is_recreated_at_the_same_fork() {
    let dir = tempfile::tempdir().unwrap();
    let core = open(dir.path()).await;
    let blocks: Vec<Vec<u8>> = (0..40).map(|i| format!("a {i}").into_bytes()).collect();
    core.append_batch(&blocks).await.unwrap();
    assert_eq!(core.truncate(25).await.unwrap(), 1);
    core.append_batch(&[b"b 25".as_slice(), b"b 26"])
        .await
        .unwrap();
    assert_eq!(core.truncate(26).await.unwrap(), 2);
    let before = (core.info().await.unwrap(), signature(&core).await);
    core.close().await.unwrap();
    drop(core);
    // Both header slots lost.
    let oplog = dir.path().join("oplog");
    let len = std::fs::metadata(&oplog).unwrap().len();
    std::fs::write(&oplog, vec![0u8; len as usize]).unwrap();
    let core = open(dir.path()).await;
    let after = (core.info().await.unwrap(), signature(&core).await);
    assert_eq!(
        (after.0.length, after.0.fork, after.0.byte_length),
        (before.0.length, 2, before.0.byte_length)
    );
    assert_eq!(after.1, before.1, "the very signature peers hold");
    assert_eq!(core.get(25).await.unwrap(), b"b 25");
}

#[tokio::test]
async fn kept_since_follows_the_reorg_hints() {
    let dir = tempfile::tempdir().unwrap();
    let core = open(dir.path()).await;
    let blocks: Vec<Vec<u8>> = (0..40).map(|i| format!("a {i}").into_bytes()).collect();
    core.append_batch(&blocks).await.unwrap();
    assert_eq!(core.kept_since(0).await.unwrap(), 40);
    core.truncate(25).await.unwrap();
    core.append_batch(&blocks[..10]).await.unwrap();
    core.truncate(30).await.unwrap();
    // From fork 0: the lowest cut since (25); from fork 1: 30; now: the length.
    assert_eq!(core.kept_since(0).await.unwrap(), 25);
    assert_eq!(core.kept_since(1).await.unwrap(), 30);
    assert_eq!(core.kept_since(2).await.unwrap(), 30);
    assert_eq!(core.kept_since(7).await.unwrap(), 0, "a fork we never had");
    // Hints keep four truncations: older forks are no longer covered (0: all new).
    for _ in 0..4 {
        core.truncate(20).await.unwrap();
    }
    assert_eq!(core.kept_since(0).await.unwrap(), 0);
    assert_eq!(core.kept_since(3).await.unwrap(), 20);
}
