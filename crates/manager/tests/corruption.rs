//! Damaged store-level files: `keys/primary-key`, `keys/<log>.key` and
//! `replication-state.json` flipped, truncated or extended. Whatever the damage, a new
//! manager on the store either refuses with `STORAGE_CORRUPTED` naming the damaged file
//! (or, for a primary key that still has 32 bytes, the log's key file it no longer
//! matches), or opens the log and reads back exactly what was appended. Never a panic,
//! never another log's key silently used, never wrong bytes. And a log's own files
//! (bitfield, tree, oplog) damaged while its data file is intact are rebuilt with the
//! key from `keys/` when the log is opened.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
use nova_hypercore_serialization::{ErrorCode, HypercoreError};
use nova_hypercore_testkit::{property_config, runtime};
use proptest::prelude::*;

const LOG: &str = "notes";
const ENTRIES: u64 = 300;
const FILES: [&str; 3] = [
    "keys/primary-key",
    "keys/notes.key",
    "replication-state.json",
];

fn entry(i: u64) -> Vec<u8> {
    format!("note {i}").into_bytes()
}

async fn manager_at(path: &Path) -> Result<HypercoreManager, HypercoreError> {
    let config = ManagerConfig::builder().storage_path(path).build()?;
    let m = HypercoreManager::new(config)?;
    m.initialize().await?;
    Ok(m)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), target).unwrap();
        }
    }
}

#[derive(Debug, Clone)]
enum Damage {
    Flip(Vec<(u32, u8)>),
    Truncate(u32),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => prop::collection::vec((any::<u32>(), 1u8..=255), 1..4).prop_map(Damage::Flip),
        2 => any::<u32>().prop_map(Damage::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Append),
    ]
}

fn apply(path: &Path, damage: &Damage) -> String {
    let mut bytes = std::fs::read(path).unwrap();
    let len = bytes.len() as u64;
    let at = |frac: u32| ((u64::from(frac) * len) >> 32) as usize;
    let what = match damage {
        Damage::Flip(flips) => {
            for (frac, mask) in flips {
                let i = at(*frac);
                bytes[i] ^= mask;
            }
            format!("flipped {flips:?} of {len} bytes")
        }
        Damage::Truncate(frac) => {
            bytes.truncate(at(*frac));
            format!("truncated {len} to {}", bytes.len())
        }
        Damage::Append(more) => {
            bytes.extend_from_slice(more);
            format!("appended {} bytes to {len}", more.len())
        }
    };
    std::fs::write(path, bytes).unwrap();
    what
}

/// What a damaged store did.
#[derive(Debug)]
enum Outcome {
    Refused(PathBuf),
    ReadBack,
}

async fn open_and_read(dir: &Path) -> Result<Outcome, String> {
    let m = match manager_at(dir).await {
        Ok(m) => m,
        Err(e) => return refused(e),
    };
    let log = match m.get_log(LOG).await {
        Ok(log) => log,
        Err(e) => return refused(e),
    };
    let length = log.current_length().await.map_err(|e| e.to_string())?;
    if length != ENTRIES {
        return Err(format!("opened at length {length}, {ENTRIES} appended"));
    }
    for i in 0..ENTRIES {
        let got = m.read(LOG, i).await.map_err(|e| format!("read {i}: {e}"))?;
        if got != entry(i) {
            return Err(format!("entry {i}: wrong bytes"));
        }
    }
    m.close().await.map_err(|e| e.to_string())?;
    Ok(Outcome::ReadBack)
}

fn refused(e: HypercoreError) -> Result<Outcome, String> {
    match e {
        HypercoreError::StorageCorrupted { path, .. } => Ok(Outcome::Refused(path)),
        other => Err(format!("refused with {}: {other}", other.code())),
    }
}

fn build_store(dir: &Path) {
    runtime().block_on(async {
        let m = manager_at(dir).await.unwrap();
        let values: Vec<Vec<u8>> = (0..ENTRIES).map(entry).collect();
        m.append_batch(LOG, &values).await.unwrap();
        m.close().await.unwrap();
    });
    for file in FILES {
        assert!(dir.join(file).exists(), "{file} missing from the store");
    }
}

proptest! {
    #![proptest_config(property_config())]
    /// One damage to one of the three files: refused with `STORAGE_CORRUPTED` naming the
    /// damaged file (or the key file a changed primary key no longer matches), or every
    /// entry reads back.
    #[test]
    fn damaged_store_files_are_refused_by_name_or_read_back(
        file in 0usize..3,
        damage in damage(),
    ) {
        thread_local! {
            static BASE: tempfile::TempDir = {
                let base = tempfile::tempdir().unwrap();
                build_store(base.path());
                base
            };
        }
        let dir = tempfile::tempdir().unwrap();
        BASE.with(|base| copy_dir(base.path(), dir.path()));
        let damaged = dir.path().join(FILES[file]);
        let what = apply(&damaged, &damage);
        let outcome = runtime()
            .block_on(open_and_read(dir.path()))
            .map_err(|e| TestCaseError::fail(format!("{} ({what}): {e}", FILES[file])))?;
        if let Outcome::Refused(path) = &outcome {
            let key_file = dir.path().join("keys/notes.key");
            prop_assert!(
                *path == damaged || (FILES[file] == "keys/primary-key" && *path == key_file),
                "{} ({what}): STORAGE_CORRUPTED names {}", FILES[file], path.display()
            );
        }
    }
}

/// The cases the property draws at random, each once: every one of them is refused by
/// name (a damaged key file or primary key is never used to sign; a replication state
/// that does not parse is never trusted).
#[test]
fn each_file_cut_to_half_is_refused_by_name() {
    let base = tempfile::tempdir().unwrap();
    build_store(base.path());
    for file in FILES {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let damaged = dir.path().join(file);
        apply(&damaged, &Damage::Truncate(1 << 31));
        let err = runtime()
            .block_on(async {
                let m = manager_at(dir.path()).await?;
                m.get_log(LOG).await.map(|_| ())
            })
            .expect_err(file);
        assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{file}: {err}");
        let HypercoreError::StorageCorrupted { path, .. } = &err else {
            unreachable!()
        };
        assert_eq!(*path, damaged, "{file}: {err}");
    }
}

/// The directory holding the log's five files (under `corestore/`).
fn core_dir(store: &Path) -> PathBuf {
    fn find(dir: &Path) -> Option<PathBuf> {
        for item in std::fs::read_dir(dir).ok()? {
            let path = item.ok()?.path();
            if path.join("oplog").is_file() {
                return Some(path);
            }
            if path.is_dir()
                && let Some(found) = find(&path)
            {
                return Some(found);
            }
        }
        None
    }
    find(&store.join("corestore")).expect("a log directory under corestore/")
}

/// A log of the manager (key in `keys/`) whose bitfield, tree parents or oplog headers
/// are damaged while its data file is intact is rebuilt when `get_log` opens it: every
/// entry reads back, the log takes a new entry, and the next open finds it whole.
#[test]
fn a_managed_log_with_damaged_bitfield_tree_or_oplog_is_rebuilt_from_data_and_keys() {
    let base = tempfile::tempdir().unwrap();
    build_store(base.path());
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 3] = [
        ("bitfield zeroed", |core| {
            let path = core.join("bitfield");
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            std::fs::write(path, vec![0u8; len]).unwrap();
        }),
        ("every parent node of the tree zeroed", |core| {
            let path = core.join("tree");
            let mut bytes = std::fs::read(&path).unwrap();
            for node in bytes.chunks_mut(40).skip(1).step_by(2) {
                node.fill(0);
            }
            std::fs::write(path, bytes).unwrap();
        }),
        ("both oplog header slots zeroed", |core| {
            let path = core.join("oplog");
            let mut bytes = std::fs::read(&path).unwrap();
            let n = bytes.len().min(8192);
            bytes[..n].fill(0);
            std::fs::write(path, bytes).unwrap();
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        damage(&core_dir(dir.path()));
        let outcome = runtime()
            .block_on(open_and_read(dir.path()))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(matches!(outcome, Outcome::ReadBack), "{what}: {outcome:?}");
        runtime().block_on(async {
            let m = manager_at(dir.path()).await.unwrap();
            assert_eq!(
                m.append(LOG, &entry(ENTRIES)).await.unwrap(),
                ENTRIES,
                "{what}"
            );
            m.close().await.unwrap();
            let m = manager_at(dir.path()).await.unwrap();
            assert_eq!(m.get_length(LOG).await.unwrap(), ENTRIES + 1, "{what}");
            assert_eq!(
                m.read(LOG, ENTRIES).await.unwrap(),
                entry(ENTRIES),
                "{what}"
            );
            m.close().await.unwrap();
        });
    }
}
