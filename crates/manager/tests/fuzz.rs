//! Fuzzing the manager's own files with proptest (no nightly): arbitrary bytes in
//! `replication-state.json`, `keys/<log>.key` and `keys/primary-key` give a typed
//! `STORAGE_CORRUPTED` naming the file (or, for bytes that happen to be valid, a
//! working store), never a panic; files of any size (sparse, 1 GiB) are refused
//! without being read into memory (the process's virtual peak stays put).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use nova_hypercore_manager::{HypercoreManager, ManagerConfig, replication_state};
use nova_hypercore_serialization::{ErrorCode, HypercoreError};
use nova_hypercore_testkit::{proc_status_bytes, property_config, runtime};
use proptest::collection::vec;
use proptest::prelude::*;

const MIB: u64 = 1024 * 1024;

fn config(path: &Path) -> ManagerConfig {
    ManagerConfig::builder().storage_path(path).build().unwrap()
}

fn corrupted_at(e: &HypercoreError, file: &Path) -> bool {
    e.code() == ErrorCode::StorageCorrupted
        && matches!(e, HypercoreError::StorageCorrupted { path, .. } if path == file)
}

/// A valid state with a few entries, as JSON text.
fn valid_state() -> impl Strategy<Value = String> {
    vec(("[a-z]{1,8}", "[0-9a-f]{64}", any::<u64>()), 0..4).prop_map(|entries| {
        let mut state = replication_state::ReplicationState::default();
        for (log, peer, length) in entries {
            state.logs.entry(log).or_default().insert(peer, length);
        }
        serde_json::to_string_pretty(&state).unwrap()
    })
}

proptest! {
    #![proptest_config(property_config())]

    /// `replication-state.json`: arbitrary bytes, and valid states with a byte flipped
    /// or cut short, load as a state or fail as STORAGE_CORRUPTED naming the file; the
    /// manager refuses to initialize on a corrupted one.
    #[test]
    fn replication_state_bytes_load_or_fail_typed(
        raw in vec(any::<u8>(), 0..512),
        valid in valid_state(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(replication_state::FILE_NAME);
        let mut mutated = valid.clone().into_bytes();
        let i = flip.index(mutated.len());
        mutated[i] ^= 1 << bit;
        let short = &valid.as_bytes()[..cut.index(valid.len())];
        for bytes in [&raw[..], &mutated[..], short, valid.as_bytes()] {
            std::fs::write(&file, bytes).unwrap();
            match replication_state::load(&file) {
                Ok(state) => prop_assert_eq!(state.version, replication_state::VERSION),
                Err(e) => prop_assert!(corrupted_at(&e, &file), "{}", e),
            }
        }
        prop_assert!(replication_state::load(&file).is_ok(), "the valid state loads");
        std::fs::write(&file, &raw).unwrap();
        if replication_state::load(&file).is_err() {
            let m = HypercoreManager::new(config(dir.path())).unwrap();
            let e = runtime().block_on(m.initialize()).unwrap_err();
            prop_assert!(corrupted_at(&e, &file), "{}", e);
        }
    }

    /// `keys/<log>.key` and `keys/primary-key`: any bytes but the right ones are
    /// STORAGE_CORRUPTED naming the file; any 32 bytes are a primary key.
    #[test]
    fn key_file_bytes_are_checked(
        key in vec(any::<u8>(), 0..160),
        primary in prop_oneof![vec(any::<u8>(), 32..=32), vec(any::<u8>(), 0..80)],
    ) {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let m = HypercoreManager::new(config(dir.path())).unwrap();
        rt.block_on(m.initialize()).unwrap();
        let key_file = dir.path().join("keys").join("fuzzed.key");
        std::fs::write(&key_file, &key).unwrap();
        let e = rt.block_on(m.get_log("fuzzed")).unwrap_err();
        prop_assert!(corrupted_at(&e, &key_file), "{}", e);
        rt.block_on(m.close()).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let primary_file = dir.path().join("keys").join("primary-key");
        std::fs::create_dir_all(primary_file.parent().unwrap()).unwrap();
        std::fs::write(&primary_file, &primary).unwrap();
        let m = HypercoreManager::new(config(dir.path())).unwrap();
        match rt.block_on(m.initialize()) {
            Ok(_) => {
                prop_assert_eq!(primary.len(), 32);
                rt.block_on(m.append("works", b"x")).unwrap();
            }
            Err(e) => {
                prop_assert_ne!(primary.len(), 32);
                prop_assert!(corrupted_at(&e, &primary_file), "{}", e);
            }
        }
    }
}

/// Huge (sparse) files are refused by size, never read into memory.
#[test]
fn huge_files_are_refused_without_reading_them() {
    let rt = runtime();
    let huge = |path: &Path| {
        std::fs::File::create(path)
            .unwrap()
            .set_len(1024 * MIB)
            .unwrap();
    };
    let before = proc_status_bytes("VmPeak");

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(replication_state::FILE_NAME);
    huge(&state);
    let e = replication_state::load(&state).unwrap_err();
    assert!(corrupted_at(&e, &state), "{e}");
    let m = HypercoreManager::new(config(dir.path())).unwrap();
    let e = rt.block_on(m.initialize()).unwrap_err();
    assert!(corrupted_at(&e, &state), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let m = HypercoreManager::new(config(dir.path())).unwrap();
    rt.block_on(m.initialize()).unwrap();
    let key = dir.path().join("keys").join("big.key");
    huge(&key);
    let e = rt.block_on(m.get_log("big")).unwrap_err();
    assert!(corrupted_at(&e, &key), "{e}");
    assert!(e.to_string().contains("1073741824 bytes"), "{e}");
    rt.block_on(m.close()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let primary = dir.path().join("keys").join("primary-key");
    std::fs::create_dir_all(primary.parent().unwrap()).unwrap();
    huge(&primary);
    let m = HypercoreManager::new(config(dir.path())).unwrap();
    let e = rt.block_on(m.initialize()).unwrap_err();
    assert!(corrupted_at(&e, &primary), "{e}");

    if let (Some(before), Some(after)) = (before, proc_status_bytes("VmPeak")) {
        assert!(
            after.saturating_sub(before) < 512 * MIB,
            "virtual peak grew by {} MiB refusing 1 GiB files",
            after.saturating_sub(before) / MIB
        );
    }
}
