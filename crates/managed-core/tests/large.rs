//! Logs at realistic sizes survive a restart: 100,000 entries (own log and replica, each
//! durability mode), lengths around bitfield-page and tree-size boundaries, and kill -9
//! while appending past 32,768 entries. The `hypercore` 0.17 crate could not reopen a
//! log past 32,768 entries (its bitfield pages after the first panicked at open); these
//! tests reopen and read back everything.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use nova_hypercore_managed_core::{
    Durability, ManagedCore, OpenOptions, RequestBlock, RequestUpgrade, SigningKey,
};
use nova_hypercore_serialization::LogName;
use nova_hypercore_testkit::runtime;
use proptest::prelude::*;

const BIG: u64 = 100_000;

fn name() -> LogName {
    LogName::parse("big-log").unwrap()
}

fn entry(seq: u64) -> Vec<u8> {
    // Realistic, varied sizes (16..80 bytes) with the seq inside.
    let mut v = format!("entry {seq} ").into_bytes();
    v.resize(16 + (seq % 64) as usize, b'x');
    v
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

async fn append_all(log: &ManagedCore, from: u64, to: u64, batch: u64) {
    let mut seq = from;
    while seq < to {
        let end = (seq + batch).min(to);
        let values: Vec<Vec<u8>> = (seq..end).map(entry).collect();
        let range = log.append_batch(&values).await.unwrap();
        assert_eq!(range, seq..end);
        seq = end;
    }
}

async fn read_back_all(log: &ManagedCore, length: u64) {
    assert_eq!(log.length(), length);
    let mut seq = 0;
    while seq < length {
        let end = (seq + 5_000).min(length);
        let got = log.get_range(seq, end).await.unwrap();
        for (i, value) in got.iter().enumerate() {
            assert_eq!(value, &entry(seq + i as u64), "seq {}", seq + i as u64);
        }
        seq = end;
    }
    assert!(log.verify_signature(length - 1).await.unwrap());
}

/// A writer's log of 100,000 entries, closed and reopened (and dropped without close and
/// reopened), in each durability mode: every entry reads back verified and the log
/// stays writable.
#[test]
fn own_log_of_100000_entries_reopens_in_every_durability_mode() {
    let rt = runtime();
    for durability in [
        Durability::Flush,
        Durability::FsyncPerBatch,
        Durability::FsyncPerWrite,
    ] {
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let options = OpenOptions::new().durability(durability).signing_key(key());
            let log = ManagedCore::open(dir.path(), name(), options.clone())
                .await
                .unwrap();
            append_all(&log, 0, BIG, 2_000).await;
            log.close().await.unwrap();

            let log = ManagedCore::open(dir.path(), name(), options.clone())
                .await
                .unwrap();
            read_back_all(&log, BIG).await;
            // Single appends past the boundary, then a drop without close: the oplog
            // alone must bring them back.
            append_all(&log, BIG, BIG + 50, 1).await;
            drop(log);

            let log = ManagedCore::open(dir.path(), name(), options)
                .await
                .unwrap();
            read_back_all(&log, BIG + 50).await;
            assert!(log.is_writable());
            log.close().await.unwrap();
        });
    }
}

/// Copies `writer` into `replica` the way replication does: one upgrade proof, then a
/// block proof per block carrying the nodes the replica lacks.
async fn replicate(writer: &ManagedCore, replica: &ManagedCore, blocks: impl Iterator<Item = u64>) {
    let have = replica.length();
    let length = writer.length();
    if length > have {
        let proof = writer
            .serve_proof(
                None,
                Some(RequestUpgrade {
                    start: have,
                    length: length - have,
                }),
            )
            .await
            .unwrap()
            .expect("upgrade proof");
        assert!(replica.apply_proof(proof).await.unwrap());
    }
    for index in blocks {
        let nodes = replica.missing_nodes(index).await.unwrap();
        let proof = writer
            .serve_proof(Some(RequestBlock { index, nodes }), None)
            .await
            .unwrap()
            .expect("block proof");
        assert!(replica.apply_proof(proof).await.unwrap(), "block {index}");
    }
}

/// A replica of 100,000 entries (fetched out of order: odd blocks first, then even),
/// closed and reopened in each durability mode, reads every entry back verified.
#[test]
fn replica_of_100000_entries_reopens_in_every_durability_mode() {
    let rt = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let writer = ManagedCore::open(
            dir.path().join("writer"),
            name(),
            OpenOptions::new().signing_key(key()),
        )
        .await
        .unwrap();
        append_all(&writer, 0, BIG, 5_000).await;
        for durability in [
            Durability::Flush,
            Durability::FsyncPerBatch,
            Durability::FsyncPerWrite,
        ] {
            let path = dir.path().join(durability.as_str());
            let options = OpenOptions::new()
                .durability(durability)
                .public_key(writer.verifying_key());
            let replica = ManagedCore::open(&path, name(), options.clone())
                .await
                .unwrap();
            // FsyncPerWrite syncs every write: a smaller log keeps the test quick there.
            let n = if durability == Durability::FsyncPerWrite {
                40_000
            } else {
                BIG
            };
            replicate(
                &writer,
                &replica,
                (1..n).step_by(2).chain((0..n).step_by(2)),
            )
            .await;
            assert_eq!(replica.info().await.unwrap().contiguous_length, n);
            replica.close().await.unwrap();

            let replica = ManagedCore::open(&path, name(), options).await.unwrap();
            assert!(!replica.is_writable());
            let info = replica.info().await.unwrap();
            assert_eq!((info.length, info.contiguous_length), (BIG, n));
            let got = replica.get_range(0, n).await.unwrap();
            assert!(got.iter().enumerate().all(|(i, v)| *v == entry(i as u64)));
            if n < BIG {
                assert!(!replica.has_block(n).await.unwrap());
            }
            replica.close().await.unwrap();
        }
    });
}

fn boundary_length() -> impl Strategy<Value = u64> {
    // Bitfield pages hold 32,768 blocks; tree sizes change shape at powers of two.
    let anchors = prop_oneof![
        Just(1u64),
        Just(32_768),
        Just(65_536),
        Just(98_304),
        Just(1 << 10),
        Just(1 << 12),
        Just(1 << 14),
    ];
    (anchors, -3i64..=3).prop_map(|(a, d)| (a as i64 + d).max(1) as u64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    /// Lengths around bitfield-page and tree-size boundaries, appended in random batch
    /// sizes, reopen with the same length, roots and readable first/last/boundary blocks.
    #[test]
    fn lengths_around_page_boundaries_reopen(
        length in boundary_length(),
        batch in prop_oneof![Just(1u64), 2u64..64, Just(4_096)],
        close_first in any::<bool>(),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let options = OpenOptions::new().signing_key(key());
            let log = ManagedCore::open(dir.path(), name(), options.clone()).await.unwrap();
            // Single appends only near the end (a 98k log of single appends is slow in
            // a debug build and proves nothing more than batches do).
            let singles_from = length.saturating_sub(if batch == 1 { 70 } else { 0 });
            append_all(&log, 0, singles_from, 4_096).await;
            append_all(&log, singles_from, length, batch).await;
            if close_first {
                log.close().await.unwrap();
            } else {
                drop(log);
            }
            let log = ManagedCore::open(dir.path(), name(), options).await.unwrap();
            prop_assert_eq!(log.length(), length);
            prop_assert_eq!(log.info().await.unwrap().contiguous_length, length);
            for seq in [0, length / 2, length - 1, 32_767, 32_768, 65_535, 65_536] {
                if seq < length {
                    prop_assert_eq!(log.get(seq).await.unwrap(), entry(seq));
                }
            }
            prop_assert_eq!(log.append(b"after").await.unwrap(), length);
            Ok(())
        })?;
    }
}

/// The child side of the crash trials: appends entries to the log in `dir` (from its
/// current length on), printing each acknowledged seq, until killed.
fn crash_child(dir: &Path, durability: Durability) {
    runtime().block_on(async {
        let options = OpenOptions::new().durability(durability).signing_key(key());
        let log = ManagedCore::open(dir, name(), options).await.unwrap();
        let mut seq = log.length();
        let mut out = std::io::stdout().lock();
        loop {
            // Mixed shapes: singles and batches.
            let n = if seq % 7 == 0 { 1 + seq % 97 } else { 1 };
            let values: Vec<Vec<u8>> = (seq..seq + n).map(entry).collect();
            let range = log.append_batch(&values).await.unwrap();
            use std::io::Write;
            writeln!(out, "{}", range.end).unwrap();
            out.flush().unwrap();
            seq = range.end;
        }
    });
}

/// Entry point for the child process (does nothing unless the parent set the env).
#[test]
fn crash_trial_child() {
    if let (Ok(dir), Ok(mode)) = (
        std::env::var("NOVA_CRASH_DIR"),
        std::env::var("NOVA_CRASH_DURABILITY"),
    ) {
        let durability = match mode.as_str() {
            "fsync-per-batch" => Durability::FsyncPerBatch,
            _ => Durability::Flush,
        };
        crash_child(Path::new(&dir), durability);
    }
}

/// kill -9 while appending, past 32,768 entries: each trial kills the child at a random
/// point; the log must reopen (never a panic or corruption error), hold every entry the
/// child saw acknowledged, and read them all back verified.
#[test]
fn kill_9_while_appending_past_32768_entries_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let rt = runtime();
    let mut acknowledged = 0u64;
    let mut trial = 0u64;
    // Until past 40,000 entries, at least 12 trials.
    while acknowledged < 40_000 || trial < 12 {
        let mode = if trial % 3 == 2 {
            "fsync-per-batch"
        } else {
            "flush"
        };
        let mut child = Command::new(&exe)
            .args([
                "crash_trial_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NOVA_CRASH_DIR", dir.path())
            .env("NOVA_CRASH_DURABILITY", mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Kill after a varying number of acknowledgements (more in the first trials
        // so the log passes 32,768 entries quickly).
        let goal = if acknowledged < 40_000 {
            9_000 + trial * 37
        } else {
            50 + trial * 13
        };
        let mut last = acknowledged;
        let mut seen = 0;
        while seen < goal {
            match lines.next() {
                Some(Ok(line)) => {
                    let Ok(n) = line.trim().parse::<u64>() else {
                        continue;
                    };
                    last = n;
                    seen += 1;
                }
                _ => break,
            }
        }
        child.kill().unwrap();
        // Whatever it printed before dying is acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Ok(n) = line.trim().parse::<u64>() {
                last = n;
            }
        }
        let _ = child.wait();
        assert!(
            last > acknowledged || seen == 0,
            "trial {trial}: child made no progress"
        );
        acknowledged = last;
        rt.block_on(async {
            let log = ManagedCore::open(dir.path(), name(), OpenOptions::new().signing_key(key()))
                .await
                .unwrap_or_else(|e| panic!("trial {trial}: reopen failed: {e}"));
            let length = log.length();
            assert!(
                length >= acknowledged,
                "trial {trial}: length {length} < acknowledged {acknowledged}"
            );
            let from = acknowledged.saturating_sub(3_000);
            let got = log.get_range(from, length).await.unwrap();
            for (i, v) in got.iter().enumerate() {
                assert_eq!(
                    *v,
                    entry(from + i as u64),
                    "trial {trial}, seq {}",
                    from + i as u64
                );
            }
            acknowledged = length;
            log.close().await.unwrap();
        });
        trial += 1;
    }
    // Finally every entry, from the start.
    rt.block_on(async {
        let log = ManagedCore::open(dir.path(), name(), OpenOptions::new().signing_key(key()))
            .await
            .unwrap();
        assert!(log.length() > 32_768);
        read_back_all(&log, log.length()).await;
    });
}
