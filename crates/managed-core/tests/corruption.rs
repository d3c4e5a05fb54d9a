//! Damaged files: one random damage to one of a log's five files (`oplog`, `tree`,
//! `bitfield`, `sizes`, `data`), then a reopen and a read of every block. Whatever the damage, the
//! core never panics, never allocates what a damaged length asks for, never returns
//! bytes other than those appended, and reports the spec's typed errors:
//! `STORAGE_CORRUPTED` (log, file) or `IO_ERROR` at open, `SIGNATURE_INVALID` (log, seq)
//! on a read. A torn oplog tail reopens at the last good state; a damaged bitfield, and a
//! damaged tree whose leaves survive (or whose block sizes the `sizes` file kept), are
//! rebuilt from the data file (tests/rebuild.rs); a damaged `sizes` file alone changes
//! nothing.
//!
//! The base log (a few thousand entries, two checkpoints, entries since the last one
//! still in the oplog because it is dropped without `close`) is built once per test and
//! copied into a fresh directory for every case.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nova_hypercore_managed_core::{ManagedCore, OpenOptions, SigningKey};
use nova_hypercore_serialization::{ErrorCode, HypercoreError, LogName};
use nova_hypercore_testkit::{property_config, runtime};
use proptest::prelude::*;

const LOG: &str = "corrupt-log";
const FILES: [&str; 5] = ["oplog", "tree", "bitfield", "sizes", "data"];
/// Where the oplog's entries start (after its two 4 KiB header slots).
const ENTRIES_AT: u64 = 8192;
/// Blocks appended in batches before the tail (enough for two checkpoints).
const BLOCKS: u64 = 6_000;

fn name() -> LogName {
    LogName::parse(LOG).unwrap()
}

fn options() -> OpenOptions {
    OpenOptions::new().signing_key(SigningKey::from_bytes(&[23; 32]))
}

/// Block `seq`: the seq inside, 12..140 bytes.
fn entry(seq: u64) -> Vec<u8> {
    let mut v = format!("block {seq}:").into_bytes();
    let fill = (seq.wrapping_mul(0x9E37_79B9) % 251) as u8;
    v.resize(12 + (seq * 7 % 128) as usize, fill);
    v
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The undamaged log and what is known about it.
struct Base {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// Blocks appended (and acknowledged).
    length: u64,
    /// Lengths at each checkpoint after creation, oldest first: the current header
    /// slot holds the last, the other slot the one before.
    checkpoints: Vec<u64>,
}

impl Base {
    /// The length of the header in the current slot.
    fn last_checkpoint(&self) -> u64 {
        self.checkpoints.last().copied().unwrap_or(0)
    }

    /// Bytes of the data file.
    fn data_len(&self) -> u64 {
        (0..self.length).map(|seq| entry(seq).len() as u64).sum()
    }

    /// A fresh copy of the five files.
    fn copy(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in FILES {
            std::fs::copy(self.path.join(file), dir.path().join(file)).unwrap();
        }
        dir
    }
}

/// Appends [`BLOCKS`] blocks in batches of 1..=6, then single appends until the oplog
/// holds at least 64 entries since the last checkpoint, and drops the log without
/// closing it (its oplog keeps those entries).
fn build_base(rt: &tokio::runtime::Runtime) -> Base {
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = ManagedCore::open(&path, name(), options()).await.unwrap();
        let oplog = path.join("oplog");
        let mut checkpoints = Vec::new();
        let mut seq = 0;
        let mut batch = 0u64;
        while seq < BLOCKS {
            let end = (seq + 1 + batch % 6).min(BLOCKS);
            let values: Vec<Vec<u8>> = (seq..end).map(entry).collect();
            assert_eq!(log.append_batch(&values).await.unwrap(), seq..end);
            seq = end;
            batch += 1;
            // A checkpoint cuts the oplog back to its two header slots.
            if file_len(&oplog) == ENTRIES_AT {
                checkpoints.push(seq);
            }
        }
        let mut tail = 0;
        while tail < 64 || file_len(&oplog) == ENTRIES_AT {
            assert_eq!(log.append(&entry(seq)).await.unwrap(), seq);
            seq += 1;
            tail += 1;
            if file_len(&oplog) == ENTRIES_AT {
                checkpoints.push(seq);
                tail = 0;
            }
        }
        drop(log);
        assert!(
            checkpoints.len() >= 2,
            "the base log needs two checkpoints, has {checkpoints:?}"
        );
        assert!(file_len(&oplog) > ENTRIES_AT + 4096, "oplog holds entries");
        Base {
            _dir: dir,
            path,
            length: seq,
            checkpoints,
        }
    })
}

/// Where in a file a damage lands, as fractions of a region (the file is only known
/// at run time). Regions matter most for the oplog: its first bytes (where the first
/// header frame starts), header slot 0, header slot 1, the entries.
#[derive(Debug, Clone, Copy)]
enum Region {
    Anywhere,
    /// The first 256 bytes.
    Start,
    /// Bytes 0..4096.
    Slot0,
    /// Bytes 4096..8192.
    Slot1,
    /// From 8192 to the end.
    Entries,
}

impl Region {
    fn range(self, len: u64) -> (u64, u64) {
        let (from, to) = match self {
            Region::Anywhere => (0, len),
            Region::Start => (0, 256),
            Region::Slot0 => (0, 4096),
            Region::Slot1 => (4096, ENTRIES_AT),
            Region::Entries => (ENTRIES_AT, len),
        };
        (from.min(len), to.min(len))
    }

    /// A position in the region, `frac` in 0..2^32.
    fn at(self, len: u64, frac: u32) -> u64 {
        let (from, to) = self.range(len);
        from + ((u128::from(to - from) * u128::from(frac)) >> 32) as u64
    }
}

fn region() -> impl Strategy<Value = Region> {
    prop_oneof![
        3 => Just(Region::Anywhere),
        1 => Just(Region::Start),
        2 => Just(Region::Slot0),
        2 => Just(Region::Slot1),
        2 => Just(Region::Entries),
    ]
}

/// One damage to one file.
#[derive(Debug, Clone)]
enum Damage {
    /// XOR bytes at these positions with these (non-zero) masks.
    Flip(Vec<(u32, u8)>),
    /// Zero `len` bytes from a position.
    Zero { at: u32, len: u32 },
    /// Cut the file at a position.
    Truncate(u32),
    /// Append these bytes.
    Append(Vec<u8>),
    /// Set the file's length to 1 TiB (sparse): nothing may allocate that.
    Huge,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => prop::collection::vec((any::<u32>(), 1u8..=255), 1..8).prop_map(Damage::Flip),
        2 => (any::<u32>(), prop_oneof![1u32..64, 1u32..5000, Just(u32::MAX)])
            .prop_map(|(at, len)| Damage::Zero { at, len }),
        3 => any::<u32>().prop_map(Damage::Truncate),
        2 => prop::collection::vec(any::<u8>(), 1..4096).prop_map(Damage::Append),
        1 => Just(Damage::Huge),
    ]
}

/// Applies `damage` to `file` in `region`; returns a description for failure messages.
fn apply(file: &Path, region: Region, damage: &Damage) -> String {
    use std::io::Write;
    let len = file_len(file);
    match damage {
        Damage::Flip(flips) => {
            let mut bytes = std::fs::read(file).unwrap();
            let mut done = Vec::new();
            for (frac, mask) in flips {
                let at = region.at(len, *frac);
                if let Some(b) = bytes.get_mut(at as usize) {
                    *b ^= mask;
                    done.push(at);
                }
            }
            std::fs::write(file, bytes).unwrap();
            format!("flipped bytes {done:?} of {len}")
        }
        Damage::Zero { at, len: n } => {
            let mut bytes = std::fs::read(file).unwrap();
            let from = region.at(len, *at) as usize;
            let to = from.saturating_add(*n as usize).min(bytes.len());
            bytes[from..to].fill(0);
            std::fs::write(file, bytes).unwrap();
            format!("zeroed bytes {from}..{to} of {len}")
        }
        Damage::Truncate(frac) => {
            let to = region.at(len, *frac);
            std::fs::OpenOptions::new()
                .write(true)
                .open(file)
                .unwrap()
                .set_len(to)
                .unwrap();
            format!("truncated from {len} to {to}")
        }
        Damage::Append(garbage) => {
            let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
            f.write_all(garbage).unwrap();
            format!("appended {} bytes to {len}", garbage.len())
        }
        Damage::Huge => {
            std::fs::OpenOptions::new()
                .write(true)
                .open(file)
                .unwrap()
                .set_len(1 << 40)
                .unwrap();
            format!("set the length from {len} to 2^40")
        }
    }
}

/// An error at open must be `STORAGE_CORRUPTED` for this log naming the damaged file
/// (or the log's directory) and the blocks affected, or `IO_ERROR` for this log.
fn check_open_error(err: &HypercoreError, dir: &Path, damaged: &str) -> Result<(), String> {
    if err.log_name() != Some(LOG) {
        return Err(format!("open error names log {:?}: {err}", err.log_name()));
    }
    match err {
        HypercoreError::StorageCorrupted { path, reason, .. } => {
            if *path != dir.join(damaged) && *path != dir {
                return Err(format!(
                    "STORAGE_CORRUPTED names {}, not the damaged {damaged}: {err}",
                    path.display()
                ));
            }
            // The seq range affected: "blocks 0..n", "blocks from n on", "all blocks".
            if !reason.contains("blocks") {
                return Err(format!("STORAGE_CORRUPTED names no blocks: {err}"));
            }
            Ok(())
        }
        HypercoreError::Io { .. } => Ok(()),
        _ => Err(format!("open failed with {}: {err}", err.code())),
    }
}

/// Reads every block of an opened log: each is exactly the block appended or a
/// `SIGNATURE_INVALID` (or `STORAGE_CORRUPTED`) naming this log and seq. Returns the
/// seqs that failed.
async fn read_all(log: &ManagedCore, base: &Base) -> Result<Vec<u64>, String> {
    let length = log.length();
    if length > base.length {
        return Err(format!(
            "reopened at length {length}, past the {} appended",
            base.length
        ));
    }
    let mut failed = Vec::new();
    for seq in 0..length {
        match log.get(seq).await {
            Ok(value) if value == entry(seq) => {}
            Ok(value) => {
                return Err(format!(
                    "seq {seq}: returned {} wrong bytes {:?}",
                    value.len(),
                    String::from_utf8_lossy(&value[..value.len().min(40)])
                ));
            }
            Err(err) => {
                let names_seq = match &err {
                    HypercoreError::SignatureInvalid { seq: s, .. } => *s == seq,
                    HypercoreError::StorageCorrupted { reason, .. } => {
                        reason.contains(&seq.to_string())
                    }
                    _ => false,
                };
                if !names_seq || err.log_name() != Some(LOG) {
                    return Err(format!("seq {seq}: {} {err}", err.code()));
                }
                failed.push(seq);
            }
        }
    }
    match log.get(length).await {
        Err(e) if e.code() == ErrorCode::OutOfRange => {}
        other => return Err(format!("get(length) gave {other:?}")),
    }
    Ok(failed)
}

/// What one damaged case ended as.
#[derive(Debug)]
enum Outcome {
    /// Open failed with an accepted error.
    Refused,
    /// Open succeeded at this length; these seqs failed to read (typed).
    Opened { length: u64, failed: Vec<u64> },
}

/// The first `max` bytes of a (possibly huge, sparse) file, and its length.
fn prefix(path: &Path, max: u64) -> (Vec<u8>, u64) {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .take(max)
        .read_to_end(&mut bytes)
        .unwrap();
    (bytes, file_len(path))
}

/// The seqs a damage to `data` or `bitfield` must make unreadable (and no others),
/// from what the damaged file now holds; `None` for the other files.
fn expected_failures(base: &Base, dir: &Path, file: &str) -> Option<BTreeSet<u64>> {
    match file {
        // A block reads back exactly when its bytes are still where they were.
        "data" => {
            let (bytes, _) = prefix(&dir.join(file), base.data_len());
            let mut at = 0usize;
            let mut failing = BTreeSet::new();
            for seq in 0..base.length {
                let value = entry(seq);
                if bytes.get(at..at + value.len()) != Some(value.as_slice()) {
                    failing.insert(seq);
                }
                at += value.len();
            }
            Some(failing)
        }
        // The log is the writer's own (its signing key is given): every block whose bit
        // is lost verifies against the signed tree and is marked stored again at open
        // (the bitfield rebuild), so nothing fails.
        "bitfield" => Some(BTreeSet::new()),
        // Only a rebuild of lost tree leaves reads it (and checks what it gives against
        // the signature): with the tree intact, nothing fails.
        "sizes" => Some(BTreeSet::new()),
        _ => None,
    }
}

/// Damages `file` of a copy of `base`, reopens, reads everything; checks the allowed
/// outcomes and returns which one it was.
fn run_case(
    rt: &tokio::runtime::Runtime,
    base: &Base,
    file: &str,
    region: Region,
    damage: &Damage,
) -> Result<Outcome, TestCaseError> {
    let dir = base.copy();
    let what = apply(&dir.path().join(file), region, damage);
    let expected = expected_failures(base, dir.path(), file);
    let started = Instant::now();
    let outcome = rt.block_on(async {
        match ManagedCore::open(dir.path(), name(), options()).await {
            Err(err) => check_open_error(&err, dir.path(), file).map(|()| Outcome::Refused),
            Ok(log) => {
                let failed = read_all(&log, base).await?;
                let length = log.length();
                drop(log);
                Ok(Outcome::Opened { length, failed })
            }
        }
    });
    let outcome = outcome.map_err(|e| TestCaseError::fail(format!("{file} ({what}): {e}")))?;
    // A damaged length must not cost a read or an allocation of that length.
    prop_assert!(
        started.elapsed().as_secs() < 20,
        "{file} ({what}): reopen and read took {:?}",
        started.elapsed()
    );
    match (&outcome, expected) {
        // `data` and `bitfield` are not needed to open: the log opens whole, and
        // exactly the damaged blocks fail.
        (Outcome::Opened { length, failed }, Some(expected)) => {
            prop_assert_eq!(*length, base.length, "{} ({})", file, what);
            let failed: BTreeSet<u64> = failed.iter().copied().collect();
            prop_assert_eq!(failed, expected, "{} ({}): failing seqs", file, what);
        }
        (Outcome::Refused, Some(_)) => {
            prop_assert!(false, "{file} ({what}): open refused");
        }
        (Outcome::Opened { length, failed }, None) if file == "oplog" => {
            // A damaged oplog loses at most the entries since the last checkpoint: the
            // writer re-signs what the tree file holds past an older header (never a
            // new, empty log), and every block it keeps reads back.
            prop_assert!(
                *length >= base.last_checkpoint(),
                "oplog ({what}): reopened at length {length}, behind the last checkpoint {:?}",
                base.checkpoints
            );
            prop_assert!(failed.is_empty(), "oplog ({what}): unreadable {failed:?}");
        }
        _ => {}
    }
    Ok(outcome)
}

fn property(file: &'static str) {
    let rt = runtime();
    let base = build_base(&rt);
    // Counted to show the cases reach each outcome (printed with --nocapture).
    let refused = std::cell::Cell::new(0);
    let failing_reads = std::cell::Cell::new(0);
    proptest!(property_config(), |(region in region(), damage in damage())| {
        match run_case(&rt, &base, file, region, &damage)? {
            Outcome::Refused => refused.set(refused.get() + 1),
            Outcome::Opened { failed, .. } if !failed.is_empty() => {
                failing_reads.set(failing_reads.get() + 1);
            }
            Outcome::Opened { .. } => {}
        }
    });
    eprintln!(
        "{file}: {} cases refused at open, {} opened with failing reads",
        refused.get(),
        failing_reads.get()
    );
}

/// A damaged `oplog` (header slots or entries): `STORAGE_CORRUPTED` naming the oplog, or
/// a reopen at the last good state (never behind the other header slot, never empty)
/// that reads back only what was appended.
#[test]
fn damaged_oplog_never_panics_or_returns_wrong_data() {
    property("oplog");
}

/// A damaged `tree`: `STORAGE_CORRUPTED` naming the tree (roots do not verify), or
/// reads that return what was appended or `SIGNATURE_INVALID` for that seq.
#[test]
fn damaged_tree_never_panics_or_returns_wrong_data() {
    property("tree");
}

/// A damaged `bitfield` of a writer's own log: rebuilt at open, every block reads back
/// (a damaged bit cannot claim a block that does not verify).
#[test]
fn damaged_bitfield_never_panics_or_returns_wrong_data() {
    property("bitfield");
}

/// A damaged `sizes` file under an intact tree: the log opens whole and every block
/// reads back.
#[test]
fn damaged_sizes_never_panics_or_returns_wrong_data() {
    property("sizes");
}

/// A damaged `data` file: blocks whose bytes changed or are gone are
/// `SIGNATURE_INVALID` for that seq, never returned.
#[test]
fn damaged_data_never_panics_or_returns_wrong_data() {
    property("data");
}

/// A torn oplog tail (cut anywhere inside the entries, or garbage over the end of
/// them): the log reopens with at least the last checkpoint's blocks, all readable,
/// stays writable, and a later reopen sees the new block after them.
#[test]
fn torn_oplog_tail_reopens_at_the_last_good_state() {
    let rt = runtime();
    let base = build_base(&rt);
    proptest!(property_config(), |(cut in any::<u32>(), garbage in prop::collection::vec(any::<u8>(), 0..300))| {
        let dir = base.copy();
        let oplog = dir.path().join("oplog");
        let what = apply(&oplog, Region::Entries, &Damage::Truncate(cut));
        if !garbage.is_empty() {
            apply(&oplog, Region::Entries, &Damage::Append(garbage.clone()));
        }
        rt.block_on(async {
            let log = ManagedCore::open(dir.path(), name(), options()).await
                .map_err(|e| TestCaseError::fail(format!("oplog {what}: {e}")))?;
            let length = log.length();
            prop_assert!(
                length >= base.last_checkpoint() && length <= base.length,
                "oplog {what}: length {length}, checkpoint {}", base.last_checkpoint()
            );
            let failed = read_all(&log, &base).await.map_err(TestCaseError::fail)?;
            prop_assert!(failed.is_empty(), "oplog {what}: unreadable {failed:?}");
            // The log goes on from there: the torn bytes are gone, a new entry lands
            // after the last good one and survives a reopen.
            prop_assert_eq!(log.append(&entry(length)).await.unwrap(), length);
            drop(log);
            let log = ManagedCore::open(dir.path(), name(), options()).await.unwrap();
            prop_assert_eq!(log.length(), length + 1);
            prop_assert_eq!(log.get(length).await.unwrap(), entry(length));
            prop_assert_eq!(log.get(0).await.unwrap(), entry(0));
            Ok(())
        })?;
    });
}

/// Each file set to 1 TiB (sparse): nothing reads or allocates its length. An oplog
/// with zeros past its entries and a tree, bitfield or data file with zeros past their
/// end are a whole log: it reopens at full length and reads everything back.
#[test]
fn huge_sparse_files_cost_nothing_and_lose_nothing() {
    let rt = runtime();
    let base = build_base(&rt);
    for file in FILES {
        let started = Instant::now();
        let dir = base.copy();
        apply(&dir.path().join(file), Region::Anywhere, &Damage::Huge);
        rt.block_on(async {
            let log = ManagedCore::open(dir.path(), name(), options())
                .await
                .unwrap_or_else(|e| panic!("{file} at 2^40: {e}"));
            assert_eq!(log.length(), base.length, "{file}");
            let failed = read_all(&log, &base).await.unwrap();
            assert!(failed.is_empty(), "{file} at 2^40: unreadable {failed:?}");
        });
        assert!(
            started.elapsed().as_secs() < 10,
            "{file} at 2^40 took {:?}",
            started.elapsed()
        );
    }
}

/// Damages that must refuse the open, each with `STORAGE_CORRUPTED` naming the log, the
/// damaged file and the blocks affected: both header slots gone or the oplog cut before
/// its first header, for a replica (the log must not be recreated empty over its blocks;
/// the writer rebuilds it, see the next test), the tree's leaves lost and the `sizes`
/// file emptied (no block boundaries left to rebuild it from; with `sizes` intact the
/// tree is rebuilt: tests/rebuild.rs).
#[test]
fn refused_opens_name_the_log_the_file_and_the_blocks() {
    let rt = runtime();
    let base = build_base(&rt);
    let cases = [
        ("oplog", Region::Slot0, Damage::Zero { at: 0, len: 8192 }),
        ("oplog", Region::Start, Damage::Truncate(0)),
        ("oplog", Region::Start, Damage::Truncate(1 << 30)),
        ("tree", Region::Anywhere, Damage::Truncate(0)),
        ("tree", Region::Anywhere, Damage::Truncate(1 << 31)),
        (
            "tree",
            Region::Anywhere,
            Damage::Zero {
                at: 0,
                len: u32::MAX,
            },
        ),
    ];
    for (file, region, damage) in cases {
        let dir = base.copy();
        let what = apply(&dir.path().join(file), region, &damage);
        if file == "tree" {
            apply(
                &dir.path().join("sizes"),
                Region::Start,
                &Damage::Truncate(0),
            );
        }
        let before: Vec<Vec<u8>> = FILES
            .iter()
            .map(|f| std::fs::read(dir.path().join(f)).unwrap())
            .collect();
        // The oplog cases as a replica: only the writer can sign a rebuilt header.
        let public = SigningKey::from_bytes(&[23; 32]).verifying_key();
        let opts = if file == "oplog" {
            OpenOptions::new().public_key(public)
        } else {
            options()
        };
        let err = rt
            .block_on(ManagedCore::open(dir.path(), name(), opts))
            .map(|log| log.length())
            .expect_err(&format!("{file} ({what}) opened"));
        assert_eq!(
            err.code(),
            ErrorCode::StorageCorrupted,
            "{file} ({what}): {err}"
        );
        check_open_error(&err, dir.path(), file).unwrap_or_else(|e| panic!("{file} ({what}): {e}"));
        // Nothing was wiped: the other files are as they were.
        for (other, bytes) in FILES.iter().zip(&before).filter(|(f, _)| **f != file) {
            assert!(
                std::fs::read(dir.path().join(other)).unwrap() == *bytes,
                "{other} changed by a refused open"
            );
        }
    }
}

/// Both header slots gone, or the oplog cut before its first header, in the writer's own
/// log (its signing key given): the blocks a checkpoint wrote to the tree file are signed
/// again under a new header, every one reads back, the log goes on; what was only in the
/// oplog's entries since the last checkpoint is lost (no boundaries), nothing else.
#[test]
fn lost_oplog_headers_are_rebuilt_by_the_writer() {
    let rt = runtime();
    let base = build_base(&rt);
    let cases = [
        (Region::Slot0, Damage::Zero { at: 0, len: 8192 }),
        (Region::Start, Damage::Truncate(0)),
        (Region::Start, Damage::Truncate(1 << 30)),
    ];
    for (region, damage) in cases {
        let dir = base.copy();
        let what = apply(&dir.path().join("oplog"), region, &damage);
        rt.block_on(async {
            let log = ManagedCore::open(dir.path(), name(), options())
                .await
                .unwrap_or_else(|e| panic!("oplog ({what}): {e}"));
            assert_eq!(log.length(), base.last_checkpoint(), "oplog ({what})");
            let failed = read_all(&log, &base).await.unwrap();
            assert!(failed.is_empty(), "oplog ({what}): unreadable {failed:?}");
            let next = log.length();
            assert_eq!(log.append(&entry(next)).await.unwrap(), next);
            log.close().await.unwrap();
            let log = ManagedCore::open(dir.path(), name(), options())
                .await
                .unwrap();
            assert_eq!(
                log.length(),
                next + 1,
                "oplog ({what}): rebuilt header persisted"
            );
            assert_eq!(log.get(next).await.unwrap(), entry(next));
        });
    }
}
