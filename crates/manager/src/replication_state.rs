//! `replication-state.json`: per log and per peer, the last length confirmed in sync.
//!
//! Written atomically (temp file, fsync, rename, directory fsync). A file that does not
//! parse is reported as `STORAGE_CORRUPTED`, never trusted or silently replaced. The
//! replication engine (a later crate) fills it; the manager creates it empty.

use std::collections::BTreeMap;
use std::path::Path;

use nova_hypercore_serialization::HypercoreError;
use serde::{Deserialize, Serialize};

/// File name under the storage path.
pub const FILE_NAME: &str = "replication-state.json";

/// Current format version.
pub const VERSION: u32 = 1;

/// The persisted replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationState {
    /// Format version.
    pub version: u32,
    /// Log name → peer id (hex public key) → last confirmed length.
    pub logs: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Default for ReplicationState {
    fn default() -> Self {
        ReplicationState {
            version: VERSION,
            logs: BTreeMap::new(),
        }
    }
}

/// Peers remembered per log. A peer id is the handshake key of one connection (a new
/// one per connection), so entries accumulate with reconnects; beyond this many, the
/// entry with the smallest confirmed length is dropped (the newest one is always kept).
/// 1,000 logs x 16 peers is about 1.5 MB of file.
pub const MAX_PEERS_PER_LOG: usize = 16;

/// Largest `replication-state.json` accepted (about 100 bytes per log and peer: room
/// for hundreds of thousands of entries). A larger file is `STORAGE_CORRUPTED` and is not
/// read into memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Loads the state; a missing file is an empty state.
pub fn load(path: &Path) -> Result<ReplicationState, HypercoreError> {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > MAX_FILE_BYTES
    {
        return Err(HypercoreError::StorageCorrupted {
            log: "replication-state".into(),
            path: path.to_owned(),
            reason: format!(
                "{} bytes, more than the {MAX_FILE_BYTES} a replication state can hold",
                meta.len()
            ),
        });
    }
    let read = std::fs::File::open(path).and_then(|file| {
        use std::io::Read;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES).read_to_end(&mut bytes)?;
        Ok(bytes)
    });
    let bytes = match read {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ReplicationState::default());
        }
        Err(e) => {
            return Err(HypercoreError::StorageInaccessible {
                path: path.to_owned(),
                source: e,
            });
        }
    };
    let state: ReplicationState =
        serde_json::from_slice(&bytes).map_err(|e| HypercoreError::StorageCorrupted {
            log: "replication-state".into(),
            path: path.to_owned(),
            reason: format!("not a valid replication state: {e}"),
        })?;
    if state.version != VERSION {
        return Err(HypercoreError::StorageCorrupted {
            log: "replication-state".into(),
            path: path.to_owned(),
            reason: format!(
                "unknown format version {} (expected {VERSION})",
                state.version
            ),
        });
    }
    Ok(state)
}

/// Saves the state atomically.
pub fn save(path: &Path, state: &ReplicationState) -> Result<(), HypercoreError> {
    let bytes =
        serde_json::to_vec_pretty(state).map_err(|e| HypercoreError::StorageInaccessible {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
    crate::keys::write_secret_file(path, &bytes)
}

/// Creates an empty state file if there is none; checks an existing one parses.
pub(crate) fn ensure(path: &Path) -> Result<(), HypercoreError> {
    if path.exists() {
        load(path).map(|_| ())
    } else {
        save(path, &ReplicationState::default())
    }
}
