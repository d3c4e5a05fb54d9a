//! [`ManagerEvent`]: the spec's eight `HypercoreManagerEvents`, as one typed enum, and
//! two of ours: `truncate` ([`ManagerEvent::Truncate`], issue #23: a log's writer
//! retracted entries) and `log-deleted` ([`ManagerEvent::LogDeleted`]): none of the eight
//! says that entries were retracted or that a log is gone (an `error` is a failure,
//! `peer-disconnect` is about a peer), and whoever lists logs or derives state from
//! entries (a UI, the layers above) must act on them.

use nova_hypercore_serialization::{Direction, ErrorPayload, LogName, StorageMetadata};

/// Something that happened in a [`crate::HypercoreManager`]. Delivered to every
/// subscriber ([`crate::HypercoreManager::subscribe`]) after the fact is durable in the
/// configured durability mode (an `Append` can be read back when it arrives).
#[derive(Debug, Clone, PartialEq)]
pub enum ManagerEvent {
    /// `ready`: the store is initialized.
    Ready(StorageMetadata),
    /// `append`: a block was appended.
    Append {
        /// The log.
        log_name: LogName,
        /// Its sequence number.
        seq: u64,
        /// Its size in bytes.
        byte_length: u64,
    },
    /// `replicate`: bytes moved for a log with a peer.
    Replicate {
        /// The log.
        log_name: LogName,
        /// The remote peer (hex public key).
        peer_id: String,
        /// Which way.
        direction: Direction,
        /// How many bytes.
        bytes: u64,
    },
    /// `crdt-update`: a CRDT update arrived from a peer.
    CrdtUpdate {
        /// The encoded update.
        payload: Vec<u8>,
    },
    /// `error`: an operation on a log failed.
    Error {
        /// The log, as the caller named it.
        log_name: String,
        /// The error in the spec's shape.
        error: ErrorPayload,
    },
    /// `health-warning`: a log had more errors than the threshold within the window.
    HealthWarning {
        /// The log.
        log_name: String,
        /// Errors within the window.
        error_count: u32,
    },
    /// `peer-connect`.
    PeerConnect {
        /// The log.
        log_name: LogName,
        /// The peer (hex public key).
        peer_id: String,
    },
    /// `peer-disconnect`.
    PeerDisconnect {
        /// The log.
        log_name: LogName,
        /// The peer (hex public key).
        peer_id: String,
    },
    /// `truncate` (not one of the spec's eight): the log moved to a new fork whose
    /// first `kept` entries are the old ones; entries `kept..` of the old fork are
    /// retracted (reads of them fail, or return the new fork's entries once the log
    /// grows again). Raised for our own [`crate::ManagedLog::truncate`] and when a
    /// replica follows its writer's truncation. Consumers that derived state from
    /// entries `kept..` (an index, a CRDT document) must drop it (JS hypercore's
    /// `truncate(ancestors, forkId)` event).
    Truncate {
        /// The log.
        log_name: LogName,
        /// Entries kept from before (JS `ancestors`).
        kept: u64,
        /// The length after.
        length: u64,
        /// The new fork id.
        fork: u64,
    },
    /// `log-deleted` (not in the spec; issue 23): the log, its files and key are gone
    /// ([`crate::HypercoreManager::delete_log`]). Emitted after the files were removed.
    LogDeleted {
        /// The log.
        log_name: LogName,
    },
}

impl ManagerEvent {
    /// The spec's event name, e.g. `"health-warning"`.
    pub fn name(&self) -> &'static str {
        match self {
            ManagerEvent::Ready(_) => "ready",
            ManagerEvent::Append { .. } => "append",
            ManagerEvent::Replicate { .. } => "replicate",
            ManagerEvent::CrdtUpdate { .. } => "crdt-update",
            ManagerEvent::Error { .. } => "error",
            ManagerEvent::HealthWarning { .. } => "health-warning",
            ManagerEvent::PeerConnect { .. } => "peer-connect",
            ManagerEvent::PeerDisconnect { .. } => "peer-disconnect",
            ManagerEvent::Truncate { .. } => "truncate",
            ManagerEvent::LogDeleted { .. } => "log-deleted",
        }
    }
}
