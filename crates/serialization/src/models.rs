//! The spec's Zod schemas as Rust types.
//!
//! JSON field names are camelCase, as the TypeScript side writes them. Validation mirrors
//! the Zod rules, plus one rule Zod leaves implicit: integers must be at most
//! [`MAX_SAFE_INTEGER`] (2^53 - 1), the largest integer a JavaScript `number` holds
//! exactly. A value the TypeScript side could not read back unchanged is rejected.

use std::collections::BTreeMap;

use garde::Validate;
use serde::{Deserialize, Serialize};

/// `Number.MAX_SAFE_INTEGER`: the largest integer JavaScript represents exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

fn finite(value: &f64, _ctx: &()) -> garde::Result {
    if value.is_finite() {
        Ok(())
    } else {
        Err(garde::Error::new("must be a finite number"))
    }
}

fn safe_clock(clock: &BTreeMap<String, u64>, _ctx: &()) -> garde::Result {
    match clock.iter().find(|(_, v)| **v > MAX_SAFE_INTEGER) {
        Some((k, v)) => Err(garde::Error::new(format!(
            "clock entry {k:?} = {v} is above 2^53 - 1"
        ))),
        None => Ok(()),
    }
}

fn safe_lengths(lengths: &BTreeMap<String, u64>, ctx: &()) -> garde::Result {
    safe_clock(lengths, ctx)
}

/// An ATLAS memory node (`MemoryNodeEntrySchema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct MemoryNodeEntry {
    /// Node id.
    #[garde(skip)]
    pub id: String,
    /// The agent that wrote the node.
    #[garde(skip)]
    pub agent_source: String,
    /// Category (index key).
    #[garde(skip)]
    pub category: String,
    /// Free text.
    #[garde(skip)]
    pub content: String,
    /// Tags.
    #[garde(skip)]
    pub tags: Vec<String>,
    /// Importance in `[0, 1]`.
    #[garde(custom(finite), range(min = 0.0, max = 1.0))]
    pub importance: f64,
    /// Milliseconds since the Unix epoch.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub timestamp: u64,
}

/// A CRDT update with its vector clock (`CRDTUpdateEntrySchema`).
///
/// `payload` is raw bytes in Rust and base64 (standard alphabet, padded) in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct CRDTUpdateEntry {
    /// The replica that produced the update.
    #[garde(skip)]
    pub source_id: String,
    /// Milliseconds since the Unix epoch.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub timestamp: u64,
    /// Vector clock: replica id to counter.
    #[garde(custom(safe_clock))]
    pub causal_clock: BTreeMap<String, u64>,
    /// The opaque CRDT update.
    #[garde(skip)]
    #[serde(with = "base64_bytes")]
    pub payload: Vec<u8>,
}

/// `HypercoreLogEvent.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// An append.
    Append,
    /// A read.
    Read,
    /// Replication traffic.
    Replicate,
    /// An error.
    Error,
    /// Open, close, ready and other lifecycle steps.
    Lifecycle,
}

/// `'send' | 'receive'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Bytes sent to a peer.
    Send,
    /// Bytes received from a peer.
    Receive,
}

/// One structured operation record (`HypercoreLogEventSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct HypercoreLogEvent {
    /// What happened.
    #[garde(skip)]
    pub operation: Operation,
    /// The log it happened to.
    #[garde(skip)]
    pub log_name: String,
    /// The seq, for appends and reads.
    #[garde(inner(range(max = MAX_SAFE_INTEGER)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Milliseconds since the Unix epoch.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub timestamp: u64,
    /// The remote peer, for replication.
    #[garde(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    /// Direction, for replication.
    #[garde(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Bytes moved.
    #[garde(inner(range(max = MAX_SAFE_INTEGER)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_count: Option<u64>,
    /// The error, for `error` events.
    #[garde(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// What `ready` reports about a store (`StorageMetadataSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct StorageMetadata {
    /// The store's root directory.
    #[garde(skip)]
    pub storage_path: String,
    /// Logs in the store.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub log_count: u64,
    /// Sum of the logs' byte lengths.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub total_byte_size: u64,
    /// Milliseconds since the Unix epoch at which the store was created.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub created_at: u64,
}

/// `ManagerStatusSchema`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct ManagerStatus {
    /// Whether `initialize` completed and `close` has not run.
    #[garde(skip)]
    pub initialized: bool,
    /// Logs opened through the manager.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub log_count: u64,
    /// Sum of their byte lengths.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub total_byte_size: u64,
    /// Whether replication is on.
    #[garde(skip)]
    pub replication_enabled: bool,
    /// Connected peers.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub active_peers: u64,
    /// `diskUsageBytes`, not in the spec's schema (issue 23, "free disk"): bytes the
    /// filesystem allocated to the whole store (every log's files, keys, replication
    /// state), counted in allocated blocks (`st_blocks * 512`), not file lengths, so
    /// it falls when blocks are cleared or a log is deleted. Optional: absent when it
    /// could not be measured, omitted from the JSON then, and JSON without it (the
    /// spec's shape) still decodes; the spec's zod object ignores it.
    #[garde(inner(range(max = MAX_SAFE_INTEGER)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_usage_bytes: Option<u64>,
}

/// `AggregateMetrics` (the spec's ObservabilityLogger interface).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct AggregateMetrics {
    /// Appends acknowledged (blocks, not calls).
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub total_appends: u64,
    /// Blocks read.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub total_reads: u64,
    /// Replication bytes sent plus received.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub replication_bytes_transferred: u64,
    /// Errors recorded.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub error_count: u64,
    /// Connected peers now.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub active_peers: u64,
    /// Logs opened through the manager.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub managed_logs: u64,
    /// Sum of the managed logs' byte lengths.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub total_byte_size: u64,
}

/// `ReplicationStatusSchema`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// The log.
    #[garde(skip)]
    pub log_name: String,
    /// Local length.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub local_length: u64,
    /// Peer id (hex public key) to the length that peer reported.
    #[garde(custom(safe_lengths))]
    pub remote_lengths: BTreeMap<String, u64>,
    /// Connected peers for this log.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub active_peers: u64,
    /// Bytes sent plus received.
    #[garde(range(max = MAX_SAFE_INTEGER))]
    pub bytes_transferred: u64,
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("payload is not base64: {e}")))
    }
}
