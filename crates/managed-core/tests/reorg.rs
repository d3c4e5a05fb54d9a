//! A replica follows its writer's truncation (docs/forks.md step c): the fork proof, the
//! `hash` rounds that find the common prefix, and the reorg applied. Two cores on disk,
//! the writer's proofs handed over directly (the replication session's part is tested in
//! the replication crate). The expected `kept` values are what JS hypercore 10.31 gives
//! in the same situations (docs/forks.md §5, seen with the pinned packages).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use nova_hypercore_managed_core::{
    ManagedCore, OpenOptions, Proof, RequestBlock, RequestUpgrade, SigningKey, Truncation,
};
use nova_hypercore_serialization::{ErrorCode, LogName};
use proptest::prelude::*;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[61; 32])
}

fn entry(seq: u64, fork: u64) -> Vec<u8> {
    if fork == 0 {
        format!("entry {seq}").into_bytes()
    } else {
        format!("entry {seq} f{fork}").into_bytes()
    }
}

struct Pair {
    writer: ManagedCore,
    replica: ManagedCore,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn pair() -> Pair {
    let (wd, rd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let writer = ManagedCore::open(
        wd.path(),
        LogName::parse("w").unwrap(),
        OpenOptions::new().signing_key(key()),
    )
    .await
    .unwrap();
    let replica = ManagedCore::open(
        rd.path(),
        LogName::parse("r").unwrap(),
        OpenOptions::new().public_key(key().verifying_key()),
    )
    .await
    .unwrap();
    Pair {
        writer,
        replica,
        _dirs: (wd, rd),
    }
}

async fn append(core: &ManagedCore, n: u64) {
    let fork = core.fork();
    let from = core.length();
    let values: Vec<Vec<u8>> = (from..from + n).map(|i| entry(i, fork)).collect();
    core.append_batch(&values).await.unwrap();
}

/// The replica takes the writer's length (same fork), no blocks.
async fn upgrade(p: &Pair) {
    let from = p.replica.length();
    let proof = p
        .writer
        .serve_proof(
            None,
            Some(RequestUpgrade {
                start: from,
                length: p.writer.length() - from,
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(p.replica.apply_proof(proof).await.unwrap());
}

/// The replica fetches blocks `seqs` from the writer.
async fn fetch(p: &Pair, seqs: impl IntoIterator<Item = u64>) {
    for seq in seqs {
        let nodes = p.replica.missing_nodes(seq).await.unwrap();
        let proof = p
            .writer
            .serve_proof(Some(RequestBlock { index: seq, nodes }), None)
            .await
            .unwrap()
            .unwrap();
        assert!(p.replica.apply_proof(proof).await.unwrap(), "block {seq}");
    }
}

fn fork_proof_request(p: &Pair) -> RequestUpgrade {
    RequestUpgrade {
        start: 0,
        length: p.writer.length(),
    }
}

/// The replica follows the writer's fork as a session would: the fork proof, then
/// hash rounds at the leftmost block of each want. Returns what it did and the rounds.
async fn follow(p: &Pair) -> (Truncation, u32) {
    let proof = p
        .writer
        .serve_proof(None, Some(fork_proof_request(p)))
        .await
        .unwrap()
        .unwrap();
    let mut reorg = p.replica.verify_reorg(&proof).await.unwrap().unwrap();
    let mut rounds = 0;
    while let Some(want) = reorg.want() {
        rounds += 1;
        let round = p
            .writer
            .serve_hash(
                RequestBlock {
                    index: 2 * want.start,
                    nodes: want.nodes,
                },
                None,
            )
            .await
            .unwrap()
            .unwrap();
        p.replica
            .continue_reorg(&mut reorg, &round)
            .await
            .unwrap()
            .unwrap();
    }
    let t = p.replica.apply_reorg(&reorg).await.unwrap().unwrap();
    (t, rounds)
}

/// Every block the replica holds reads as the writer's; blocks it does not hold are
/// unavailable, never another fork's bytes.
async fn agrees(p: &Pair) {
    let info = p.replica.info().await.unwrap();
    let w = p.writer.info().await.unwrap();
    assert_eq!((info.length, info.fork), (w.length, w.fork));
    for seq in 0..info.length {
        match p.replica.get(seq).await {
            Ok(value) => assert_eq!(value, p.writer.get(seq).await.unwrap(), "seq {seq}"),
            Err(e) => assert_eq!(e.code(), ErrorCode::ReplicationFailed, "seq {seq}: {e}"),
        }
    }
}

async fn full_pair(n: u64) -> Pair {
    let p = pair().await;
    append(&p.writer, n).await;
    upgrade(&p).await;
    fetch(&p, 0..n).await;
    p
}

#[tokio::test]
async fn a_pure_truncation_keeps_the_prefix() {
    let p = full_pair(16).await;
    p.writer.truncate(5).await.unwrap();
    let (t, _) = follow(&p).await;
    assert_eq!((t.kept, t.old_length, t.length, t.fork), (5, 16, 5, 1));
    agrees(&p).await;
    assert_eq!(
        p.replica.get(5).await.unwrap_err().code(),
        ErrorCode::OutOfRange
    );
    assert_eq!(p.replica.info().await.unwrap().contiguous_length, 5);
}

#[tokio::test]
async fn truncate_and_append_bisects_to_the_cut_and_fetches_the_new_blocks() {
    let p = full_pair(16).await;
    p.writer.truncate(5).await.unwrap();
    append(&p.writer, 3).await;
    let (t, rounds) = follow(&p).await;
    assert_eq!((t.kept, t.length, t.fork), (5, 8, 1));
    assert!(rounds >= 1, "bisected in {rounds} rounds");
    fetch(&p, 5..8).await;
    agrees(&p).await;
    assert_eq!(p.replica.get(6).await.unwrap(), entry(6, 1));
}

#[tokio::test]
async fn the_same_length_at_a_new_fork_is_followed() {
    let p = full_pair(16).await;
    p.writer.truncate(11).await.unwrap();
    append(&p.writer, 5).await;
    let (t, _) = follow(&p).await;
    assert_eq!((t.kept, t.length), (11, 16));
    fetch(&p, 11..16).await;
    agrees(&p).await;
}

#[tokio::test]
async fn identical_blocks_appended_again_keep_everything() {
    let p = full_pair(16).await;
    p.writer.truncate(11).await.unwrap();
    let same: Vec<Vec<u8>> = (11..16).map(|i| entry(i, 0)).collect();
    p.writer.append_batch(&same).await.unwrap();
    let (t, _) = follow(&p).await;
    assert_eq!((t.kept, t.length, t.fork), (16, 16, 1));
    assert_eq!(p.replica.info().await.unwrap().contiguous_length, 16);
    agrees(&p).await;
}

#[tokio::test]
async fn a_sparse_replica_keeps_only_what_is_proven_shared() {
    let p = pair().await;
    append(&p.writer, 16).await;
    upgrade(&p).await;
    fetch(&p, [2, 9, 14]).await;
    p.writer.truncate(11).await.unwrap();
    append(&p.writer, 5).await;
    let (t, _) = follow(&p).await;
    // JS 10.31 gives truncate(10, 1) here (docs/forks.md §5).
    assert_eq!((t.kept, t.length), (10, 16));
    for (seq, held) in [(2, true), (9, true), (14, false)] {
        assert_eq!(
            p.replica.has_range(seq..seq + 1).await.unwrap() == 1,
            held,
            "{seq}"
        );
    }
    agrees(&p).await;
}

#[tokio::test]
async fn a_replica_behind_the_cut_drops_nothing() {
    let p = pair().await;
    append(&p.writer, 5).await;
    upgrade(&p).await;
    fetch(&p, 0..5).await;
    append(&p.writer, 11).await;
    p.writer.truncate(11).await.unwrap();
    append(&p.writer, 5).await;
    let (t, _) = follow(&p).await;
    assert_eq!((t.kept, t.old_length, t.length), (5, 5, 16));
    fetch(&p, 5..16).await;
    agrees(&p).await;
}

#[tokio::test]
async fn a_fresh_replica_adopts_a_forked_log_in_one_proof() {
    let p = pair().await;
    append(&p.writer, 16).await;
    p.writer.truncate(7).await.unwrap();
    append(&p.writer, 2).await;
    let (t, rounds) = follow(&p).await;
    assert_eq!((t.kept, t.length, t.fork, rounds), (0, 9, 1, 0));
    fetch(&p, 0..9).await;
    agrees(&p).await;
    // Reopened, it is on the new fork with every block.
    let dir = p._dirs.1.path().to_owned();
    drop(p.replica);
    let replica = ManagedCore::open(
        &dir,
        LogName::parse("r").unwrap(),
        OpenOptions::new().public_key(key().verifying_key()),
    )
    .await
    .unwrap();
    let info = replica.info().await.unwrap();
    assert_eq!((info.length, info.fork, info.contiguous_length), (9, 1, 9));
    assert_eq!(replica.get(8).await.unwrap(), entry(8, 1));
}

#[tokio::test]
async fn bad_fork_proofs_and_rounds_are_refused_and_change_nothing() {
    let p = full_pair(16).await;
    p.writer.truncate(5).await.unwrap();
    append(&p.writer, 3).await;
    let good = p
        .writer
        .serve_proof(None, Some(fork_proof_request(&p)))
        .await
        .unwrap()
        .unwrap();
    // A flipped signature byte.
    let mut forged = good.clone();
    forged.upgrade.as_mut().unwrap().signature[3] ^= 1;
    let e = p.replica.verify_reorg(&forged).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SignatureInvalid);
    // The same tree claimed for another fork: its signature does not cover it.
    let mut relabelled: Proof = good.clone();
    relabelled.fork = 7;
    assert_eq!(
        p.replica
            .verify_reorg(&relabelled)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::SignatureInvalid
    );
    // Not a higher fork: not applicable.
    let mut lower = good.clone();
    lower.fork = 0;
    assert!(p.replica.verify_reorg(&lower).await.unwrap().is_none());
    // A round that proves another node.
    let mut reorg = p.replica.verify_reorg(&good).await.unwrap().unwrap();
    let want = reorg.want().unwrap();
    let wrong = p
        .writer
        .serve_hash(
            RequestBlock {
                index: 2 * want.start,
                nodes: want.nodes.saturating_sub(1),
            },
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p.replica
            .continue_reorg(&mut reorg, &wrong)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::SignatureInvalid
    );
    let info = p.replica.info().await.unwrap();
    assert_eq!(
        (info.length, info.fork, info.contiguous_length),
        (16, 0, 16)
    );
    // An unfinished reorg is not applied.
    assert!(p.replica.apply_reorg(&reorg).await.unwrap().is_none());
    assert_eq!(p.replica.get(12).await.unwrap(), entry(12, 0));
}

#[tokio::test]
async fn a_reorg_made_before_our_tree_changed_is_not_applied() {
    let p = pair().await;
    append(&p.writer, 8).await;
    upgrade(&p).await;
    p.writer.truncate(4).await.unwrap();
    append(&p.writer, 2).await;
    let proof = p
        .writer
        .serve_proof(None, Some(fork_proof_request(&p)))
        .await
        .unwrap()
        .unwrap();
    let reorg = p.replica.verify_reorg(&proof).await.unwrap().unwrap();
    // Meanwhile another peer's reorg moved us (here: the same one, applied first).
    let (t, _) = follow(&p).await;
    assert_eq!(t.fork, 1);
    assert!(p.replica.apply_reorg(&reorg).await.unwrap().is_none());
}

#[tokio::test]
async fn a_writer_follows_no_other_fork() {
    let p = full_pair(4).await;
    let proof = p
        .writer
        .serve_proof(None, Some(fork_proof_request(&p)))
        .await
        .unwrap()
        .unwrap();
    let mut relabelled = proof;
    relabelled.fork = 3;
    assert!(p.writer.verify_reorg(&relabelled).await.unwrap().is_none());
}

#[tokio::test]
async fn an_old_fork_block_relabelled_does_not_verify_after_the_reorg() {
    // A peer still on fork 0 (same key, same first 16 blocks) serves block 14 of the
    // old fork, labelled with the new fork: the replica's tree has no old-fork node
    // left that it could verify against.
    let old = pair().await;
    append(&old.writer, 16).await;
    let p = full_pair(16).await;
    p.writer.truncate(11).await.unwrap();
    append(&p.writer, 5).await;
    follow(&p).await;
    let nodes = p.replica.missing_nodes(14).await.unwrap();
    let mut stale = old
        .writer
        .serve_proof(Some(RequestBlock { index: 14, nodes }), None)
        .await
        .unwrap()
        .unwrap();
    stale.fork = 1;
    match p.replica.apply_proof(stale).await {
        Ok(applied) => assert!(!applied),
        Err(e) => assert_eq!(e.code(), ErrorCode::SignatureInvalid),
    }
    assert_eq!(p.replica.has_range(14..15).await.unwrap(), 0);
    fetch(&p, [14]).await;
    assert_eq!(p.replica.get(14).await.unwrap(), entry(14, 1));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    /// Random history, cut, appends and replica subset: `kept` is never above the true
    /// common prefix, every block kept still reads as the writer's, nothing past `kept`
    /// of the old fork is held.
    #[test]
    fn kept_never_exceeds_the_common_prefix(
        first in 1u64..60,
        cut_share in 0u64..=100,
        more in 0u64..40,
        held in proptest::collection::vec(any::<bool>(), 60),
        same in any::<bool>(),
    ) {
        nova_hypercore_testkit::runtime().block_on(async {
            let p = pair().await;
            append(&p.writer, first).await;
            upgrade(&p).await;
            let seqs: Vec<u64> = (0..first).filter(|s| held[*s as usize]).collect();
            fetch(&p, seqs.iter().copied()).await;
            let cut = first * cut_share / 100;
            p.writer.truncate(cut).await.unwrap();
            if same {
                // Re-append identical blocks first: the true common prefix grows.
                let again: Vec<Vec<u8>> = (cut..first).map(|i| entry(i, 0)).collect();
                if !again.is_empty() {
                    p.writer.append_batch(&again).await.unwrap();
                }
            }
            append(&p.writer, more).await;
            if p.writer.length() == 0 {
                return; // a truncation to 0 is not followed until the writer appends
            }
            let common = if same { first } else { cut };
            let (t, rounds) = follow(&p).await;
            assert!(t.kept <= common, "kept {} > common prefix {common}", t.kept);
            assert!(rounds <= 64);
            for seq in seqs {
                let has = p.replica.has_range(seq..seq + 1).await.unwrap() == 1;
                assert_eq!(has, seq < t.kept, "seq {seq} kept {}", t.kept);
            }
            agrees(&p).await;
        });
    }
}
