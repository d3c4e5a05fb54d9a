//! Local rebuild on real files: a writer's own log whose `bitfield` or `tree` is damaged
//! while its `data` file is intact opens whole again, every block read back verified,
//! nothing lost; the rebuilt files are byte-identical to the undamaged ones. Leaves lost
//! with the tree (truncated, zeroed) take the block sizes from the `sizes` file. What
//! cannot be rebuilt (leaves lost with the tree and the `sizes` file damaged too: no
//! block boundaries; a damaged data file under a damaged tree) is refused with
//! `STORAGE_CORRUPTED` naming the log, the file and the blocks, and nothing is
//! rewritten.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use nova_hypercore_managed_core::{
    ManagedCore, OpenOptions, RequestBlock, RequestUpgrade, SigningKey,
};
use nova_hypercore_serialization::{ErrorCode, HypercoreError, LogName};
use nova_hypercore_testkit::{property_config, runtime};
use proptest::prelude::*;

const LOG: &str = "rebuild-log";
const FILES: [&str; 5] = ["oplog", "tree", "bitfield", "sizes", "data"];
const BLOCKS: u64 = 5_000;
/// Bytes per tree node; leaf `seq` is node `2 * seq`.
const NODE: u64 = 40;
/// The roots of 5,000 blocks (4,096 + 512 + 256 + 128 + 8), flat-tree indexes.
const ROOTS: [usize; 5] = [4095, 8703, 9471, 9855, 9991];

fn name() -> LogName {
    LogName::parse(LOG).unwrap()
}

fn options() -> OpenOptions {
    OpenOptions::new().signing_key(SigningKey::from_bytes(&[31; 32]))
}

fn entry(seq: u64) -> Vec<u8> {
    let mut v = format!("rebuild {seq}:").into_bytes();
    v.resize(10 + (seq * 13 % 200) as usize, (seq % 251) as u8);
    v
}

/// A log of [`BLOCKS`] blocks in batches; `closed` checkpoints everything into the
/// tree and bitfield, otherwise the last blocks' nodes and bits are only in the oplog.
fn build(dir: &Path, closed: bool) {
    runtime().block_on(async {
        let log = ManagedCore::open(dir, name(), options()).await.unwrap();
        let mut seq = 0;
        while seq < BLOCKS {
            let end = (seq + 1 + seq % 9).min(BLOCKS);
            let values: Vec<Vec<u8>> = (seq..end).map(entry).collect();
            log.append_batch(&values).await.unwrap();
            seq = end;
        }
        if closed {
            log.close().await.unwrap();
        }
    });
}

fn copy(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in FILES {
        std::fs::copy(from.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

/// Opens, reads every block back (verified, compared), checks every block is held.
fn open_and_read_all(dir: &Path) -> Result<(), HypercoreError> {
    runtime().block_on(async {
        let log = ManagedCore::open(dir, name(), options()).await?;
        assert_eq!(log.length(), BLOCKS);
        let info = log.info().await?;
        assert_eq!(info.contiguous_length, BLOCKS, "every block is held");
        for (seq, value) in log.get_range(0, BLOCKS).await?.into_iter().enumerate() {
            assert_eq!(value, entry(seq as u64), "seq {seq}");
        }
        assert!(log.has_block(BLOCKS - 1).await?);
        log.close().await
    })
}

/// Whether node `index` belongs to the tree of [`BLOCKS`] blocks (lies under a root).
fn in_tree(index: u64) -> bool {
    ROOTS.iter().any(|root| {
        let half = (1u64 << (root.trailing_ones())) - 1;
        let root = *root as u64;
        index >= root - half && index <= root + half
    })
}

/// The file holds exactly `expected` (the first differing byte otherwise).
fn same_bytes(path: &Path, expected: &[u8], what: &str) {
    let got = std::fs::read(path).unwrap();
    let first = got.iter().zip(expected).position(|(a, b)| a != b);
    assert!(
        got.len() == expected.len() && first.is_none(),
        "{what}: {} differs from the original (length {} vs {}, first differing byte {first:?})",
        path.display(),
        got.len(),
        expected.len()
    );
}

fn refused(dir: &Path) -> HypercoreError {
    runtime()
        .block_on(ManagedCore::open(dir, name(), options()))
        .map(|log| log.length())
        .expect_err("the open must be refused")
}

/// A zeroed, truncated or emptied bitfield: every block is held and reads back, and the
/// rebuilt bitfield is written (a second open finds it whole, byte-identical).
#[test]
fn zeroed_or_truncated_bitfield_is_rebuilt() {
    let base = tempfile::tempdir().unwrap();
    build(base.path(), true);
    let original = std::fs::read(base.path().join("bitfield")).unwrap();
    for damage in ["zero", "truncate", "half"] {
        let dir = copy(base.path());
        let path = dir.path().join("bitfield");
        match damage {
            "zero" => edit(&path, |b| b.fill(0)),
            "truncate" => edit(&path, Vec::clear),
            _ => edit(&path, |b| b[100..400].fill(0)),
        }
        open_and_read_all(dir.path()).unwrap_or_else(|e| panic!("{damage}: {e}"));
        let rebuilt = std::fs::read(&path).unwrap();
        assert!(
            rebuilt.len() >= original.len() && rebuilt[..original.len()] == original[..],
            "{damage}: the rebuilt bitfield is written back"
        );
        open_and_read_all(dir.path()).unwrap();
    }
}

/// The bitfield rebuild also covers blocks whose bits were only in the oplog (a log
/// dropped without `close`), and the log stays writable after it.
#[test]
fn bitfield_rebuild_of_an_unclosed_log_then_appends() {
    let base = tempfile::tempdir().unwrap();
    build(base.path(), false);
    let dir = copy(base.path());
    edit(&dir.path().join("bitfield"), |b| b.fill(0));
    open_and_read_all(dir.path()).unwrap();
    runtime().block_on(async {
        let log = ManagedCore::open(dir.path(), name(), options())
            .await
            .unwrap();
        assert_eq!(log.append(&entry(BLOCKS)).await.unwrap(), BLOCKS);
        assert_eq!(log.get(BLOCKS).await.unwrap(), entry(BLOCKS));
    });
}

/// Parent nodes (the roots among them) zeroed or altered, leaf hashes altered: the tree
/// is recomputed from the data file and its leaves' sizes, checked against the stored
/// signature, written back byte-identical.
#[test]
fn tree_with_lost_parents_or_altered_hashes_is_rebuilt_byte_identical() {
    let base = tempfile::tempdir().unwrap();
    build(base.path(), true);
    let original = std::fs::read(base.path().join("tree")).unwrap();
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 3] = [
        ("every parent node zeroed", |b| {
            for node in b.chunks_mut(NODE as usize).skip(1).step_by(2) {
                node.fill(0);
            }
        }),
        ("every root node's hash flipped", |b| {
            for index in ROOTS {
                b[index * NODE as usize + 20] ^= 0x5a;
            }
        }),
        ("leaf hashes flipped and the tail of parents cut", |b| {
            for seq in [0usize, 17, 4_999] {
                b[2 * seq * NODE as usize + 30] ^= 0xff;
            }
            b[4095 * NODE as usize + 9] ^= 1;
        }),
    ];
    for (what, damage) in damages {
        let dir = copy(base.path());
        edit(&dir.path().join("tree"), damage);
        open_and_read_all(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        same_bytes(&dir.path().join("tree"), &original, what);
    }
}

/// A log dropped without `close` (the last nodes only in the oplog) whose tree file lost
/// its roots: the leaves come from the tree file and the oplog's entries.
#[test]
fn unclosed_log_tree_rebuilt_with_leaves_from_the_oplog() {
    let base = tempfile::tempdir().unwrap();
    build(base.path(), false);
    let dir = copy(base.path());
    edit(&dir.path().join("tree"), |b| {
        for node in b.chunks_mut(NODE as usize).skip(1).step_by(2) {
            node.fill(0);
        }
    });
    open_and_read_all(dir.path()).unwrap();
}

/// What cannot be rebuilt, refused with the log, the file and the blocks, and nothing
/// rewritten: leaves lost with a truncated tree while the `sizes` file is cut short,
/// deleted, zeroed or altered there too (no boundaries for the blocks after the cut);
/// roots lost and a data byte altered (the signature proves the data wrong and the
/// leaf hashes name the block).
#[test]
fn unrecoverable_tree_damage_is_refused_naming_the_blocks() {
    let base = tempfile::tempdir().unwrap();
    build(base.path(), true);
    type Damage = fn(&mut Vec<u8>);
    let sizes_damages: [(&str, Damage); 4] = [
        ("sizes cut at the same block", |b| b.truncate(4 * 1_001)),
        ("sizes emptied (a log made before the file)", Vec::clear),
        ("sizes zeroed from the cut on", |b| b[4 * 1_001..].fill(0)),
        ("one size altered after the cut", |b| b[4 * 3_000] ^= 1),
    ];
    for (what, damage) in sizes_damages {
        // Tree truncated after leaf 1,000: blocks 1,001.. have no boundaries.
        let dir = copy(base.path());
        edit(&dir.path().join("tree"), |b| {
            b.truncate((2 * 1_000 + 1) as usize * NODE as usize);
        });
        edit(&dir.path().join("sizes"), damage);
        let before: Vec<Vec<u8>> = FILES
            .iter()
            .map(|f| std::fs::read(dir.path().join(f)).unwrap())
            .collect();
        let err = refused(dir.path());
        assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{what}: {err}");
        assert_eq!(err.log_name(), Some(LOG));
        let HypercoreError::StorageCorrupted { path, reason, .. } = &err else {
            unreachable!()
        };
        assert_eq!(*path, dir.path().join("tree"), "{what}: {err}");
        assert!(
            reason.contains("boundaries of blocks 1001..5000")
                && reason.contains("blocks 0..1001 are intact"),
            "{what}: {err}"
        );
        for (file, bytes) in FILES.iter().zip(before) {
            assert_eq!(
                std::fs::read(dir.path().join(file)).unwrap(),
                bytes,
                "{what}: {file} rewritten by a refused open"
            );
        }
    }
    // Roots zeroed and one byte of block 2,345 altered.
    let dir = copy(base.path());
    edit(&dir.path().join("tree"), |b| {
        for index in ROOTS {
            b[index * NODE as usize..(index + 1) * NODE as usize].fill(0);
        }
    });
    let at: u64 = (0..2_345).map(|s| entry(s).len() as u64).sum::<u64>() + 3;
    edit(&dir.path().join("data"), |b| b[at as usize] ^= 0x10);
    let err = refused(dir.path());
    assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{err}");
    assert!(
        err.to_string().contains("the first is seq 2345") && err.to_string().contains("tree"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(property_config())]
    /// Any set of interior or root nodes zeroed or flipped (leaves kept): the log opens
    /// (rebuilt at open when a root is hit), `repair()` finds and rewrites every other
    /// damaged node, every block reads back, and the tree file is byte-identical to the
    /// original after.
    #[test]
    fn any_damage_to_parent_nodes_is_repaired(
        damages in prop::collection::vec((0u64..BLOCKS - 1, 0usize..40, any::<bool>()), 1..20)
    ) {
        thread_local! {
            static BASE: (tempfile::TempDir, Vec<u8>) = {
                let base = tempfile::tempdir().unwrap();
                build(base.path(), true);
                let tree = std::fs::read(base.path().join("tree")).unwrap();
                (base, tree)
            };
        }
        BASE.with(|(base, original)| {
            let dir = copy(base.path());
            edit(&dir.path().join("tree"), |b| {
                for (parent, byte, zero) in &damages {
                    let index = 2 * parent + 1;
                    // Slots between the roots' spans belong to no node of this length.
                    if !in_tree(index) {
                        continue;
                    }
                    let at = (index * NODE) as usize;
                    if *zero {
                        b[at..at + NODE as usize].fill(0);
                    } else {
                        b[at + byte] ^= 0x81;
                    }
                }
            });
            let repaired = runtime().block_on(async {
                let log = ManagedCore::open(dir.path(), name(), options()).await?;
                let repaired = log.repair().await?;
                log.close().await?;
                Ok::<_, HypercoreError>(repaired)
            }).map_err(|e| TestCaseError::fail(format!("{damages:?}: {e}")))?;
            prop_assert!(repaired.blocks_restored == 0);
            open_and_read_all(dir.path()).map_err(|e| TestCaseError::fail(format!("{damages:?}: {e}")))?;
            let got = std::fs::read(dir.path().join("tree")).unwrap();
            prop_assert!(got == *original, "{:?}: tree differs after repair ({:?})", damages, repaired);
            Ok(())
        })?;
    }
}

/// `repair()` on an intact log rewrites nothing; on a log whose leaf hashes were altered
/// (reads of their sibling blocks fail until then: the open cannot see it) it rewrites
/// exactly those leaves, and every block reads back.
#[test]
fn repair_rewrites_only_what_differs() {
    let base = tempfile::tempdir().unwrap();
    build(base.path(), true);
    let original = std::fs::read(base.path().join("tree")).unwrap();
    let dir = copy(base.path());
    runtime().block_on(async {
        let log = ManagedCore::open(dir.path(), name(), options())
            .await
            .unwrap();
        assert_eq!(log.repair().await.unwrap(), Default::default());
        log.close().await.unwrap();
    });
    edit(&dir.path().join("tree"), |b| {
        for seq in [3usize, 1_000, 4_321] {
            b[2 * seq * NODE as usize + 12] ^= 0x40;
        }
    });
    runtime().block_on(async {
        let log = ManagedCore::open(dir.path(), name(), options())
            .await
            .unwrap();
        // Block 2 is the sibling of the altered leaf 3: its path does not verify.
        assert!(!log.verify_signature(2).await.unwrap());
        let repaired = log.repair().await.unwrap();
        assert_eq!(repaired.tree_nodes_rewritten, 3, "{repaired:?}");
        for seq in [2u64, 3, 1_000, 1_001, 4_320, 4_321] {
            assert_eq!(log.get(seq).await.unwrap(), entry(seq));
        }
        log.close().await.unwrap();
    });
    same_bytes(&dir.path().join("tree"), &original, "after repair");
    open_and_read_all(dir.path()).unwrap();
}

/// A replica (public key only) that held blocks 0..1,500 of 2,000 at its last checkpoint,
/// and blocks 1,700..2,000: its bitfield zeroed, it restores exactly the blocks below the
/// contiguous length its header recorded (a replica may be sparse above it, so those
/// are left to be fetched again), and they read back.
#[test]
fn replica_bitfield_rebuilt_up_to_its_recorded_contiguous_length() {
    let dir = tempfile::tempdir().unwrap();
    let writer_dir = dir.path().join("w");
    let replica_dir = dir.path().join("r");
    runtime().block_on(async {
        let writer = ManagedCore::open(&writer_dir, name(), options())
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = (0..2_000).map(entry).collect();
        writer.append_batch(&values).await.unwrap();
        let public = OpenOptions::new().public_key(writer.verifying_key());
        let replica = ManagedCore::open(&replica_dir, name(), public)
            .await
            .unwrap();
        let proof = writer
            .serve_proof(
                None,
                Some(RequestUpgrade {
                    start: 0,
                    length: 2_000,
                }),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(replica.apply_proof(proof).await.unwrap());
        for index in (0..1_500).chain(1_700..2_000) {
            let nodes = replica.missing_nodes(index).await.unwrap();
            let proof = writer
                .serve_proof(Some(RequestBlock { index, nodes }), None)
                .await
                .unwrap()
                .unwrap();
            assert!(replica.apply_proof(proof).await.unwrap());
        }
        replica.close().await.unwrap();
    });
    // Only a writer's own log keeps block sizes (a replica's leaves may come from a
    // peer's upgrade far past its data).
    assert!(std::fs::read(replica_dir.join("sizes")).unwrap().is_empty());
    edit(&replica_dir.join("bitfield"), |b| b.fill(0));
    runtime().block_on(async {
        let public = SigningKey::from_bytes(&[31; 32]).verifying_key();
        let replica =
            ManagedCore::open(&replica_dir, name(), OpenOptions::new().public_key(public))
                .await
                .unwrap();
        let info = replica.info().await.unwrap();
        assert_eq!(info.length, 2_000);
        assert_eq!(info.contiguous_length, 1_500);
        for seq in 0..1_500 {
            assert_eq!(replica.get(seq).await.unwrap(), entry(seq));
        }
        // Above the recorded contiguous length: not claimed, even where the bytes exist
        // (not stored: `REPLICATION_FAILED`, a read that waits fetches it).
        assert!(!replica.has_block(1_800).await.unwrap());
        assert_eq!(
            replica.get(1_800).await.unwrap_err().code(),
            ErrorCode::ReplicationFailed
        );
    });
}

/// Entries of [`lost_leaves_are_rebuilt_from_the_sizes_file`]: sizes from 0 bytes to
/// 2 MiB, a few large ones.
const VARIED: u64 = 300;

fn varied(seq: u64) -> Vec<u8> {
    let size = match seq % 97 {
        13 => (1 << 21) - (seq as usize % 7),
        50 => 300_000 + seq as usize,
        _ => (seq as usize * 37) % 1_500,
    };
    let mut v = format!("varied {seq}:").into_bytes();
    v.resize(size.max(v.len()), (seq % 251) as u8);
    v
}

/// A closed writer log of [`VARIED`] entries of varied sizes, appended singly and in
/// batches.
fn build_varied(dir: &Path) {
    runtime().block_on(async {
        let log = ManagedCore::open(dir, name(), options()).await.unwrap();
        let mut seq = 0;
        while seq < VARIED {
            let end = (seq + 1 + seq % 5).min(VARIED);
            let values: Vec<Vec<u8>> = (seq..end).map(varied).collect();
            log.append_batch(&values).await.unwrap();
            seq = end;
        }
        log.close().await.unwrap();
    });
}

/// Opens the varied log: `length` entries, each read back exactly and verifying; then
/// one more append, which reads back after a reopen.
fn open_varied_then_append(dir: &Path, length: u64) -> Result<(), HypercoreError> {
    runtime().block_on(async {
        let log = ManagedCore::open(dir, name(), options()).await?;
        assert_eq!(log.length(), length);
        assert_eq!(log.info().await?.contiguous_length, length);
        for seq in 0..length {
            assert_eq!(log.get(seq).await?, varied(seq), "seq {seq}");
            assert!(log.verify_signature(seq).await?, "seq {seq}");
        }
        assert_eq!(log.append(&varied(length)).await?, length);
        log.close().await?;
        let log = ManagedCore::open(dir, name(), options()).await?;
        assert_eq!(log.length(), length + 1);
        assert_eq!(log.get(length).await?, varied(length));
        assert_eq!(log.get(length / 2).await?, varied(length / 2));
        log.close().await
    })
}

/// Leaves lost with the tree (truncated to nothing, to half, zeroed) of a writer's closed
/// log: the block sizes come from the `sizes` file, the rebuilt roots carry the stored
/// signature, the tree is written back byte-identical, every entry reads back, and the
/// log takes another append and reopens.
#[test]
fn lost_leaves_are_rebuilt_from_the_sizes_file() {
    let base = tempfile::tempdir().unwrap();
    build_varied(base.path());
    let original = std::fs::read(base.path().join("tree")).unwrap();
    let sizes = std::fs::read(base.path().join("sizes")).unwrap();
    assert_eq!(sizes.len() as u64, 4 * VARIED, "a size per block");
    for seq in [0u64, 13, 50, 299] {
        let at = 4 * seq as usize;
        let size = u32::from_le_bytes(sizes[at..at + 4].try_into().unwrap());
        assert_eq!(size as usize, varied(seq).len(), "seq {seq}");
    }
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 3] = [
        ("tree truncated to 0", Vec::clear),
        ("tree truncated to half", |b| b.truncate(b.len() / 2)),
        ("tree zeroed", |b| b.fill(0)),
    ];
    for (what, damage) in damages {
        let dir = copy(base.path());
        edit(&dir.path().join("tree"), damage);
        // The damaged tree alone does not open as it was.
        assert_ne!(std::fs::read(dir.path().join("tree")).unwrap(), original);
        runtime()
            .block_on(async {
                let log = ManagedCore::open(dir.path(), name(), options()).await?;
                log.close().await
            })
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        same_bytes(&dir.path().join("tree"), &original, what);
        open_varied_then_append(dir.path(), VARIED).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// A log made before the `sizes` file existed (deleted here) gets it backfilled from its
/// intact tree at open, once; then it survives a truncated tree.
#[test]
fn a_log_without_sizes_is_backfilled_then_survives_a_truncated_tree() {
    let base = tempfile::tempdir().unwrap();
    build_varied(base.path());
    let sizes = std::fs::read(base.path().join("sizes")).unwrap();
    let dir = copy(base.path());
    std::fs::remove_file(dir.path().join("sizes")).unwrap();
    runtime().block_on(async {
        let log = ManagedCore::open(dir.path(), name(), options())
            .await
            .unwrap();
        log.close().await.unwrap();
    });
    same_bytes(&dir.path().join("sizes"), &sizes, "backfilled");
    edit(&dir.path().join("tree"), |b| b.truncate(b.len() / 3));
    open_varied_then_append(dir.path(), VARIED).unwrap();
}

/// A tampered `sizes` file under an intact tree changes nothing: the log opens and reads
/// as before with its tree untouched, and `repair()` writes the sizes back from the
/// verified leaves (after which a truncated tree is rebuilt again). Tampered sizes can
/// never make a rebuild accept data: with the tree lost too, the open is refused.
#[test]
fn tampered_sizes_under_an_intact_tree_change_nothing() {
    let base = tempfile::tempdir().unwrap();
    build_varied(base.path());
    let tree = std::fs::read(base.path().join("tree")).unwrap();
    let sizes = std::fs::read(base.path().join("sizes")).unwrap();
    let tamper = |b: &mut Vec<u8>| {
        for seq in [1usize, 13, 200] {
            b[4 * seq] ^= 0x21;
        }
        b.truncate(4 * 250);
    };
    let dir = copy(base.path());
    edit(&dir.path().join("sizes"), tamper);
    runtime().block_on(async {
        let log = ManagedCore::open(dir.path(), name(), options())
            .await
            .unwrap();
        for seq in 0..VARIED {
            assert_eq!(log.get(seq).await.unwrap(), varied(seq), "seq {seq}");
        }
        log.close().await.unwrap();
    });
    same_bytes(&dir.path().join("tree"), &tree, "tree under tampered sizes");
    // The open backfilled only the cut tail; the altered sizes stay until a repair.
    assert_ne!(std::fs::read(dir.path().join("sizes")).unwrap(), sizes);
    runtime().block_on(async {
        let log = ManagedCore::open(dir.path(), name(), options())
            .await
            .unwrap();
        assert_eq!(log.repair().await.unwrap(), Default::default());
        log.close().await.unwrap();
    });
    same_bytes(&dir.path().join("sizes"), &sizes, "sizes after repair");
    same_bytes(&dir.path().join("tree"), &tree, "tree after repair");
    edit(&dir.path().join("tree"), Vec::clear);
    open_varied_then_append(dir.path(), VARIED).unwrap();

    // Tampered sizes and a lost tree: refused, nothing rewritten. Every leaf was lost,
    // so no block can be told good from the sizes alone.
    let dir = copy(base.path());
    edit(&dir.path().join("sizes"), |b| b[4 * 13] ^= 0x21);
    edit(&dir.path().join("tree"), Vec::clear);
    let err = refused(dir.path());
    assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{err}");
    assert!(
        err.to_string().contains("boundaries of blocks 0..300"),
        "{err}"
    );
    assert!(std::fs::read(dir.path().join("tree")).unwrap().is_empty());
    let mut tampered = sizes.clone();
    tampered[4 * 13] ^= 0x21;
    same_bytes(
        &dir.path().join("sizes"),
        &tampered,
        "sizes after a refused open",
    );
}
