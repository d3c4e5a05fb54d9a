//! The bridge's one file: which writers' logs it follows and how far it has delivered
//! each one, `crdt-bridge-<log>.json` in the store's root (next to
//! `replication-state.json`). Written atomically: a temp file, fsync, rename, fsync of
//! the directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use nova_hypercore_serialization::HypercoreError;
use serde::{Deserialize, Serialize};

/// The file's format version.
pub(crate) const VERSION: u32 = 1;

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BridgeState {
    pub(crate) version: u32,
    /// Writer public key (64 hex) to that writer's log here and the delivered position.
    pub(crate) logs: BTreeMap<String, Position>,
}

/// One writer's log as this bridge knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Position {
    /// The local log name (the bridge's own log, or the replica `<log>-<16 hex>`).
    pub(crate) log_name: String,
    /// Entries `0..delivered` were handed to the handlers (or skipped as malformed).
    pub(crate) delivered: u64,
    /// The log's fork when they were (absent in older files: 0). A truncation since
    /// moves `delivered` back to what it kept.
    #[serde(default)]
    pub(crate) fork: u64,
}

/// `<storage>/crdt-bridge-<log>.json`.
pub(crate) fn path(storage: &Path, log_name: &str) -> PathBuf {
    storage.join(format!("crdt-bridge-{log_name}.json"))
}

/// Reads the file; a missing file is an empty state. A file that does not parse is
/// `STORAGE_CORRUPTED` (never silently replaced: positions decide what is delivered).
pub(crate) fn load(path: &Path, log_name: &str) -> Result<BridgeState, HypercoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(BridgeState {
                version: VERSION,
                logs: BTreeMap::new(),
            });
        }
        Err(source) => {
            return Err(HypercoreError::Io {
                log: log_name.to_owned(),
                operation: format!("read {}", path.display()),
                source,
            });
        }
    };
    let corrupted = |reason: String| HypercoreError::StorageCorrupted {
        log: log_name.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let state: BridgeState = serde_json::from_slice(&bytes)
        .map_err(|e| corrupted(format!("CRDT bridge state does not parse: {e}")))?;
    if state.version != VERSION {
        return Err(corrupted(format!(
            "CRDT bridge state version {} (expected {VERSION})",
            state.version
        )));
    }
    for key in state.logs.keys() {
        if parse_key(key).is_none() {
            return Err(corrupted(format!("{key:?} is not a 64-hex public key")));
        }
    }
    Ok(state)
}

/// Writes `state` to `path` atomically (blocking: call on the blocking pool).
pub(crate) fn store(
    path: &Path,
    log_name: &str,
    state: &BridgeState,
) -> Result<(), HypercoreError> {
    let io = |operation: &str, source: std::io::Error| HypercoreError::Io {
        log: log_name.to_owned(),
        operation: format!("{operation} {}", path.display()),
        source,
    };
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| io("encode", e.into()))?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
    file.write_all(&bytes).map_err(|e| io("write", e))?;
    file.sync_data().map_err(|e| io("fsync", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("fsync directory of", e))?;
    }
    Ok(())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A 32-byte key from 64 hex digits.
pub(crate) fn parse_key(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut key = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        key[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_round_trip() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(parse_key(&hex(&key)), Some(key));
        assert_eq!(parse_key("zz"), None);
        assert_eq!(parse_key(&"g".repeat(64)), None);
    }

    #[test]
    fn store_then_load_and_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "crdt-collab");
        assert!(load(&p, "crdt-collab").unwrap().logs.is_empty());
        let mut state = BridgeState {
            version: VERSION,
            logs: BTreeMap::new(),
        };
        state.logs.insert(
            hex(&[7; 32]),
            Position {
                log_name: "crdt-collab".into(),
                delivered: 5,
                fork: 2,
            },
        );
        store(&p, "crdt-collab", &state).unwrap();
        assert_eq!(load(&p, "crdt-collab").unwrap(), state);
        std::fs::write(&p, b"{not json").unwrap();
        let err = load(&p, "crdt-collab").unwrap_err();
        assert_eq!(
            err.code(),
            nova_hypercore_serialization::ErrorCode::StorageCorrupted
        );
    }
}
