//! Spec properties 12, 17 and 23: real sessions over an encrypted in-process pipe between
//! disk-backed logs in temp dirs (property 23's tampering peer is a raw wire peer from
//! `raw_peer`). Completion is awaited on the logs' progress watches (with a deadline),
//! never by sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod raw_peer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nova_hypercore_managed_core::{ManagedCore, OpenOptions};
use nova_hypercore_replication::wire::{Data, Message, Range};
use nova_hypercore_replication::{LogSet, Replicator, SessionEvent, Stats};
use nova_hypercore_serialization::{ErrorCode, LogName};
use nova_hypercore_testkit::{CaseCounter, property_config, runtime};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio::task::JoinHandle;

use raw_peer::{Raw, sync};

fn name() -> LogName {
    LogName::parse("shared-log").unwrap()
}

fn payloads(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(vec(any::<u8>(), 0..300), 0..max)
}

async fn writer(dir: &Path, blocks: &[Vec<u8>]) -> ManagedCore {
    let log = ManagedCore::open(dir, name(), OpenOptions::new())
        .await
        .unwrap();
    for chunk in blocks.chunks(7) {
        log.append_batch(chunk).await.unwrap();
    }
    log
}

async fn replica(dir: &Path, of: &ManagedCore) -> ManagedCore {
    let options = OpenOptions::new().public_key(of.verifying_key());
    ManagedCore::open(dir, name(), options).await.unwrap()
}

struct Link {
    tasks: Vec<JoinHandle<()>>,
    a_stats: Arc<Stats>,
    b_stats: Arc<Stats>,
}

impl Drop for Link {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn connect(
    a: &ManagedCore,
    b: &ManagedCore,
    events: Option<tokio::sync::mpsc::UnboundedSender<SessionEvent>>,
) -> Link {
    let (sa, sb) = (LogSet::new(), LogSet::new());
    sa.insert(a.clone());
    sb.insert(b.clone());
    let ra = Replicator::new(Arc::new(sa));
    let mut rb = Replicator::new(Arc::new(sb));
    if let Some(tx) = events {
        rb = rb.with_observer(Arc::new(move |e: &SessionEvent| {
            let _ = tx.send(e.clone());
        }));
    }
    let (a_stats, b_stats) = (ra.stats(), rb.stats());
    let (x, y) = tokio::io::duplex(256 * 1024);
    let tasks = vec![
        tokio::spawn(async move {
            let _ = ra.run(x, true).await;
        }),
        tokio::spawn(async move {
            let _ = rb.run(y, false).await;
        }),
    ];
    Link {
        tasks,
        a_stats,
        b_stats,
    }
}

async fn wait_contiguous(core: &ManagedCore, n: u64) {
    let mut progress = core.watch_progress();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while progress.borrow_and_update().contiguous_length < n {
            if progress.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "sync stalled at {:?}, wanted {n}",
        *progress.borrow()
    );
}

/// Feature: p2p-hypercore-protocol, Property 12: Replication completeness
#[test]
fn property_12_replication_completeness() {
    let cases = CaseCounter::new(12);
    let rt = runtime();
    proptest!(property_config(), |(blocks in payloads(80))| {
        cases.hit();
        rt.block_on(async {
            let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let w = writer(dw.path(), &blocks).await;
            let r = replica(dr.path(), &w).await;
            let link = connect(&w, &r, None);
            wait_contiguous(&r, blocks.len() as u64).await;
            prop_assert_eq!(r.length(), blocks.len() as u64);
            let dk = r.discovery_key();
            let got = link.b_stats.wait_until(&dk, Duration::from_secs(20), |t| t.blocks_received >= blocks.len() as u64).await;
            prop_assert_eq!(got.blocks_received, blocks.len() as u64, "each block crossed exactly once");
            for (i, block) in blocks.iter().enumerate() {
                prop_assert_eq!(&r.get(i as u64).await.unwrap(), block);
            }
            prop_assert_eq!(r.byte_length(), w.byte_length());
            drop(link);
            Ok(())
        })?;
    });
}

/// Feature: p2p-hypercore-protocol, Property 17: Incremental sync transfers only new entries
#[test]
fn property_17_incremental_sync_transfers_only_new_entries() {
    let cases = CaseCounter::new(17);
    let rt = runtime();
    proptest!(property_config(), |(first in payloads(60), more in vec(vec(any::<u8>(), 0..300), 1..40), live in any::<bool>())| {
        cases.hit();
        rt.block_on(async {
            let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let w = writer(dw.path(), &first).await;
            let r = replica(dr.path(), &w).await;
            let n = first.len() as u64;
            let m = more.len() as u64;
            let link = connect(&w, &r, None);
            wait_contiguous(&r, n).await;
            let dk = w.discovery_key();
            let deadline = Duration::from_secs(20);
            let got_before = link.b_stats.wait_until(&dk, deadline, |t| t.blocks_received >= n).await;
            let sent_before = link.a_stats.wait_until(&dk, deadline, |t| t.blocks_sent >= n).await;
            prop_assert_eq!(got_before.blocks_received, n);
            // Either while connected (live) or while apart, then reconnected.
            let link = if live {
                link
            } else {
                drop(link);
                Link { tasks: Vec::new(), a_stats: Arc::new(Stats::default()), b_stats: Arc::new(Stats::default()) }
            };
            for chunk in more.chunks(5) {
                w.append_batch(chunk).await.unwrap();
            }
            let (link, sent_base, got_base) = if live {
                (link, sent_before, got_before)
            } else {
                (connect(&w, &r, None), Default::default(), Default::default())
            };
            wait_contiguous(&r, n + m).await;
            let got = link.b_stats.wait_until(&dk, deadline, |t| t.blocks_received >= got_base.blocks_received + m).await;
            let sent = link.a_stats.wait_until(&dk, deadline, |t| t.blocks_sent >= sent_base.blocks_sent + m).await;
            // Exactly the M new blocks crossed the wire, counted on both ends.
            prop_assert_eq!(got.blocks_received - got_base.blocks_received, m);
            prop_assert_eq!(sent.blocks_sent - sent_base.blocks_sent, m);
            let new_bytes: u64 = more.iter().map(|b| b.len() as u64).sum();
            prop_assert_eq!(got.bytes_received - got_base.bytes_received, new_bytes);
            for (i, block) in more.iter().enumerate() {
                prop_assert_eq!(&r.get(n + i as u64).await.unwrap(), block);
            }
            Ok(())
        })?;
    });
}

/// A peer serving a tampered copy of `w`: a raw wire peer (our codec, real Noise
/// handshake) on `stream` that announces `w`'s length, answers the upgrade and every
/// block request with `w`'s honest proofs, except that block `k`'s bytes have one bit
/// flipped at `at`. Returns when the other side closed the channel (or went quiet).
async fn tampering_peer(stream: tokio::io::DuplexStream, w: ManagedCore, k: u64, at: usize) -> Raw {
    let mut raw = Raw::connect(stream).await;
    raw.open(&w.verifying_key().to_bytes()).await;
    raw.send_message(sync(w.length())).await;
    raw.send_message(Message::Range(Range {
        drop: false,
        start: 0,
        length: w.length(),
    }))
    .await;
    while let Some(req) = raw.request().await {
        let Some(proof) = w
            .serve_proof(req.block.clone(), req.upgrade.clone())
            .await
            .unwrap()
        else {
            continue;
        };
        let mut block = proof.block;
        if let Some(b) = block.as_mut().filter(|b| b.index == k) {
            b.value[at] ^= 0x01;
        }
        raw.send_message(Message::Data(Data {
            request: req.id,
            fork: proof.fork,
            block,
            upgrade: proof.upgrade,
            ..Data::default()
        }))
        .await;
    }
    raw
}

/// Feature: p2p-hypercore-protocol, Property 23: Default access mode
#[test]
fn property_23_default_access_mode() {
    let cases = CaseCounter::new(23);
    let rt = runtime();
    proptest!(property_config(), |(blocks in vec(vec(any::<u8>(), 1..200), 1..40), victim in any::<prop::sample::Index>(), offset in any::<prop::sample::Index>())| {
        cases.hit();
        rt.block_on(async {
            let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let w = writer(dw.path(), &blocks).await;
            // The creator may append; a replica may not.
            prop_assert!(w.is_writable());
            let r = replica(dr.path(), &w).await;
            prop_assert!(!r.is_writable());
            let err = r.append(b"not mine").await.unwrap_err();
            prop_assert_eq!(err.code(), ErrorCode::Unauthorized);

            // A peer serving a tampered copy: one bit of one block changed on the wire
            // (a raw peer: our own sessions check blocks before sending them).
            let k = victim.index(blocks.len());
            let at = offset.index(blocks[k].len());
            let (x, y) = tokio::io::duplex(256 * 1024);
            let mallory = tokio::spawn(tampering_peer(x, w.clone(), k as u64, at));
            let set = LogSet::new();
            set.insert(r.clone());
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let replicator = Replicator::new(Arc::new(set)).with_observer(Arc::new(move |e: &SessionEvent| {
                let _ = tx.send(e.clone());
            }));
            let stats = replicator.stats();
            let session = tokio::spawn(async move {
                let _ = replicator.run(y, false).await;
            });
            let rejected = tokio::time::timeout(Duration::from_secs(20), async {
                while let Some(e) = rx.recv().await {
                    if let SessionEvent::Rejected { reason, .. } = e {
                        return Some(reason);
                    }
                }
                None
            })
            .await;
            let reason = rejected.ok().flatten();
            prop_assert!(reason.is_some(), "tampered block was not refused");
            let reason = reason.unwrap();
            prop_assert!(reason.starts_with("SIGNATURE_INVALID"), "{}", reason);
            prop_assert!(stats.get(&r.discovery_key()).rejected >= 1);
            // The receiver closed the channel to the tampering peer.
            let raw = tokio::time::timeout(Duration::from_secs(20), mallory).await.unwrap().unwrap();
            prop_assert!(raw.closed, "the channel to the tampering peer stayed open");
            session.abort();
            // Nothing wrong was stored: every block the replica holds is the writer's.
            prop_assert!(!r.has_block(k as u64).await.unwrap());
            for i in 0..r.length() {
                if r.has_block(i).await.unwrap() {
                    prop_assert_eq!(&r.get(i).await.unwrap(), &blocks[i as usize]);
                }
            }
            // The honest writer completes the replica; the writer itself is unchanged.
            let _link = connect(&w, &r, None);
            wait_contiguous(&r, blocks.len() as u64).await;
            prop_assert_eq!(&r.get(k as u64).await.unwrap(), &blocks[k]);
            prop_assert_eq!(w.length(), blocks.len() as u64);
            Ok(())
        })?;
    });
}
