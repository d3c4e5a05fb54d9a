//! [`ManagerEvent`]: the spec's eight `HypercoreManagerEvents`, as one typed enum, and
//! one of ours, `log-deleted` ([`ManagerEvent::LogDeleted`]): none of the eight says
//! that a log is gone (an `error` is a failure, `peer-disconnect` is about a peer), and
//! whoever lists logs (a UI, the layers above) must drop it.

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
            ManagerEvent::LogDeleted { .. } => "log-deleted",
        }
    }
}
