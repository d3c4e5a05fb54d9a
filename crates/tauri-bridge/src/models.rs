//! What crosses IPC besides bytes: the scope entry, the JSON append body, the status view,
//! and the `read_range` framing.

use nova_hypercore_manager::ManagedLog;
use nova_hypercore_serialization::{HypercoreError, ManagerStatus};
use serde::{Deserialize, Serialize};

/// One permission scope entry, as an app writes it in a capability:
/// `{ "name": "atlas-memory" }` (exactly that log) or `{ "name": "agent-*" }` (every log
/// whose name starts with `agent-`). See [`nova_hypercore_nanoclaw::Pattern`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeEntry {
    /// A log name, or a prefix followed by `*`.
    pub name: String,
}

/// The JSON form of `append`: `{ logName, data }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppendArgs {
    /// The log to append to.
    pub log_name: String,
    /// The payload, as a number array.
    pub data: Vec<u8>,
}

/// One log in [`StatusView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogView {
    /// The log.
    pub log_name: String,
    /// Entries in it.
    pub length: u64,
    /// Sum of their sizes in bytes.
    pub byte_length: u64,
}

impl From<&ManagedLog> for LogView {
    fn from(log: &ManagedLog) -> Self {
        LogView {
            log_name: log.name().to_string(),
            length: log.length(),
            byte_length: log.byte_length(),
        }
    }
}

/// What `status` returns: the manager's status restricted to the logs the caller's
/// scope allows (camelCase JSON, see `CONTRACT.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// Store initialized and not closed.
    pub initialized: bool,
    /// Whether replication is on.
    pub replication_enabled: bool,
    /// Connected peers.
    pub active_peers: u64,
    /// `logs.len()`.
    pub log_count: u64,
    /// Sum of `logs[].byteLength`.
    pub total_byte_size: u64,
    /// The allowed logs open in this process, sorted by name.
    pub logs: Vec<LogView>,
}

impl StatusView {
    /// The view of `status` showing only `logs`.
    pub fn new(status: &ManagerStatus, logs: Vec<LogView>) -> Self {
        StatusView {
            initialized: status.initialized,
            replication_enabled: status.replication_enabled,
            active_peers: status.active_peers,
            log_count: logs.len() as u64,
            total_byte_size: logs.iter().map(|l| l.byte_length).sum(),
            logs,
        }
    }
}

/// Frames entries as our codec does: per entry a u32 big-endian length, then its bytes.
///
/// ```
/// use tauri_plugin_nova_hypercore::models::frame_entries;
/// let framed = frame_entries("log", &[b"ab".to_vec(), vec![]])?;
/// assert_eq!(framed, [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0]);
/// # Ok::<(), nova_hypercore_serialization::HypercoreError>(())
/// ```
pub fn frame_entries(log: &str, entries: &[Vec<u8>]) -> Result<Vec<u8>, HypercoreError> {
    let total = entries.iter().map(|e| 4 + e.len()).sum();
    let mut out = Vec::with_capacity(total);
    for entry in entries {
        let len = u32::try_from(entry.len()).map_err(|_| HypercoreError::PayloadTooLarge {
            log: log.to_owned(),
            size: entry.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}
