//! The workspace's one error type, carrying the spec's nine error codes.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Result with the workspace error type.
pub type Result<T, E = HypercoreError> = std::result::Result<T, E>;

/// The spec's nine error codes (`HypercoreErrorSchema.code`). Serialized in
/// SCREAMING_SNAKE_CASE, exactly as the TypeScript side matches on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Storage path missing, not creatable or not writable; also a closed log or store.
    StorageInaccessible,
    /// A sequence number or range outside the log.
    OutOfRange,
    /// An append above the configured payload limit.
    PayloadTooLarge,
    /// A block that does not verify against the log's signed merkle tree.
    SignatureInvalid,
    /// A replication stream failed.
    ReplicationFailed,
    /// Bytes that do not decode into the expected schema.
    DeserializationFailed,
    /// A scope violation, an invalid log name or a write attempt by a remote peer.
    Unauthorized,
    /// Files on disk that do not verify (tampered or truncated).
    StorageCorrupted,
    /// Any other disk I/O failure.
    IoError,
}

impl ErrorCode {
    /// All nine codes, in the spec's order.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::StorageInaccessible,
        ErrorCode::OutOfRange,
        ErrorCode::PayloadTooLarge,
        ErrorCode::SignatureInvalid,
        ErrorCode::ReplicationFailed,
        ErrorCode::DeserializationFailed,
        ErrorCode::Unauthorized,
        ErrorCode::StorageCorrupted,
        ErrorCode::IoError,
    ];

    /// The code as the spec spells it, e.g. `"OUT_OF_RANGE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::StorageInaccessible => "STORAGE_INACCESSIBLE",
            ErrorCode::OutOfRange => "OUT_OF_RANGE",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::SignatureInvalid => "SIGNATURE_INVALID",
            ErrorCode::ReplicationFailed => "REPLICATION_FAILED",
            ErrorCode::DeserializationFailed => "DESERIALIZATION_FAILED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::StorageCorrupted => "STORAGE_CORRUPTED",
            ErrorCode::IoError => "IO_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes could not be decoded (always reported as `DESERIALIZATION_FAILED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than four bytes: not even a length prefix.
    #[error("truncated: {available} bytes is shorter than the 4-byte length prefix")]
    MissingPrefix {
        /// Bytes available.
        available: usize,
    },
    /// The prefix announces more bytes than the buffer holds.
    #[error("truncated: prefix announces {declared} bytes of JSON but only {available} follow")]
    Truncated {
        /// Length announced by the prefix.
        declared: u64,
        /// Bytes after the prefix.
        available: usize,
    },
    /// Bytes after the announced frame.
    #[error("{trailing} trailing bytes after the {declared}-byte frame")]
    TrailingBytes {
        /// Length announced by the prefix.
        declared: u64,
        /// Bytes left over.
        trailing: usize,
    },
    /// The frame is not JSON (syntax error, bad UTF-8, early end).
    #[error("bad JSON at line {line}, column {column}: {message}")]
    BadJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// Valid JSON that does not fit the schema (wrong type, missing field, failed rule).
    #[error("schema violation at `{path}`: {message}")]
    Schema {
        /// Field path, e.g. `tags[2]` or `importance`; `.` for the whole value.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// A value too large to frame (over [`crate::MAX_FRAME_BYTES`]).
    #[error("value of {size} bytes exceeds the frame limit of {limit} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// The workspace error. Every variant maps to one of the spec's [`ErrorCode`]s via
/// [`HypercoreError::code`], carries its context (log name, seq, limit, path), and keeps
/// the OS error as its [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HypercoreError {
    /// The storage path cannot be created, opened or written.
    #[error("storage at {path} is inaccessible: {source}")]
    StorageInaccessible {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The log (or the store holding it) was closed; nothing more can be done with it.
    #[error("log {log} is closed")]
    Closed {
        /// The closed log.
        log: String,
    },
    /// No log of that name is in this store (reported by calls that only read and so
    /// never create one, e.g. `HypercoreManager::existing_log` in the manager crate).
    #[error(
        "log {log} does not exist in this store (append to it, or open it as a replica, first)"
    )]
    NoSuchLog {
        /// The log asked for.
        log: String,
    },
    /// `seq` is at or beyond the log's length.
    #[error("seq {seq} is out of range for log {log} (length {length})")]
    OutOfRange {
        /// The log.
        log: String,
        /// The requested seq.
        seq: u64,
        /// The log's length when the request was made.
        length: u64,
    },
    /// A byte offset past the log's byte length (a `seek`).
    #[error("byte {bytes} is out of range for log {log} (byte length {byte_length})")]
    ByteOutOfRange {
        /// The log.
        log: String,
        /// The byte offset asked for.
        bytes: u64,
        /// The log's byte length (payload bytes of all its blocks) when asked.
        byte_length: u64,
    },
    /// A range `[start, end)` that is reversed or reaches beyond the log.
    #[error("range [{start}, {end}) is invalid for log {log} (length {length})")]
    RangeOutOfBounds {
        /// The log.
        log: String,
        /// Range start (inclusive).
        start: u64,
        /// Range end (exclusive).
        end: u64,
        /// The log's length.
        length: u64,
    },
    /// An append larger than the limit.
    #[error("payload of {size} bytes for log {log} exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The log.
        log: String,
        /// Payload size.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A block or tree that does not verify against the log's public key.
    #[error("signature check failed for log {log} at seq {seq}: {reason}")]
    SignatureInvalid {
        /// The log.
        log: String,
        /// The block that failed.
        seq: u64,
        /// What did not match.
        reason: String,
    },
    /// A replication stream failed.
    #[error("replication of log {log} failed: {reason}")]
    ReplicationFailed {
        /// The log.
        log: String,
        /// What happened.
        reason: String,
    },
    /// A block below the log's length that this replica does not hold and did not get
    /// from a peer: not asked to wait, or no connected peer sent it in time
    /// (`REPLICATION_FAILED`).
    #[error("block {seq} of log {log} is not available: {reason}")]
    BlockUnavailable {
        /// The log.
        log: String,
        /// The block asked for.
        seq: u64,
        /// Why (not stored and not waited for, or the wait's bound).
        reason: String,
    },
    /// Bytes that do not decode into the expected schema, or a value that fails
    /// validation and therefore is never written.
    #[error("deserialization failed{}: {reason}", at(.log, .seq))]
    DeserializationFailed {
        /// The log the bytes came from, when known.
        log: Option<String>,
        /// The seq the bytes came from, when known.
        seq: Option<u64>,
        /// Why.
        #[source]
        reason: DecodeError,
    },
    /// Access outside the caller's scope, an invalid log name, or a remote write attempt.
    #[error("unauthorized: {reason}")]
    Unauthorized {
        /// The log name as given (may be invalid).
        log: Option<String>,
        /// Why it was refused.
        reason: String,
    },
    /// Files that do not verify on open or on read.
    #[error("storage of log {log} at {path} is corrupted: {reason}")]
    StorageCorrupted {
        /// The log.
        log: String,
        /// Its directory.
        path: PathBuf,
        /// What failed to verify.
        reason: String,
    },
    /// A disk I/O failure during read or write.
    #[error("I/O error on log {log} ({operation}): {source}")]
    Io {
        /// The log.
        log: String,
        /// What was being done, e.g. `append`, `read seq 4`, `fsync`.
        operation: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn at(log: &Option<String>, seq: &Option<u64>) -> String {
    match (log, seq) {
        (Some(l), Some(s)) => format!(" (log {l}, seq {s})"),
        (Some(l), None) => format!(" (log {l})"),
        (None, Some(s)) => format!(" (seq {s})"),
        (None, None) => String::new(),
    }
}

impl HypercoreError {
    /// The spec's code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            HypercoreError::StorageInaccessible { .. }
            | HypercoreError::Closed { .. }
            | HypercoreError::NoSuchLog { .. } => ErrorCode::StorageInaccessible,
            HypercoreError::OutOfRange { .. }
            | HypercoreError::ByteOutOfRange { .. }
            | HypercoreError::RangeOutOfBounds { .. } => ErrorCode::OutOfRange,
            HypercoreError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            HypercoreError::SignatureInvalid { .. } => ErrorCode::SignatureInvalid,
            HypercoreError::ReplicationFailed { .. } | HypercoreError::BlockUnavailable { .. } => {
                ErrorCode::ReplicationFailed
            }
            HypercoreError::DeserializationFailed { .. } => ErrorCode::DeserializationFailed,
            HypercoreError::Unauthorized { .. } => ErrorCode::Unauthorized,
            HypercoreError::StorageCorrupted { .. } => ErrorCode::StorageCorrupted,
            HypercoreError::Io { .. } => ErrorCode::IoError,
        }
    }

    /// The log this error is about, when there is one.
    pub fn log_name(&self) -> Option<&str> {
        match self {
            HypercoreError::StorageInaccessible { .. } => None,
            HypercoreError::Closed { log }
            | HypercoreError::NoSuchLog { log }
            | HypercoreError::OutOfRange { log, .. }
            | HypercoreError::ByteOutOfRange { log, .. }
            | HypercoreError::RangeOutOfBounds { log, .. }
            | HypercoreError::PayloadTooLarge { log, .. }
            | HypercoreError::SignatureInvalid { log, .. }
            | HypercoreError::ReplicationFailed { log, .. }
            | HypercoreError::BlockUnavailable { log, .. }
            | HypercoreError::StorageCorrupted { log, .. }
            | HypercoreError::Io { log, .. } => Some(log),
            HypercoreError::DeserializationFailed { log, .. }
            | HypercoreError::Unauthorized { log, .. } => log.as_deref(),
        }
    }

    /// The sequence number this error is about, when there is one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            HypercoreError::OutOfRange { seq, .. }
            | HypercoreError::SignatureInvalid { seq, .. }
            | HypercoreError::BlockUnavailable { seq, .. } => Some(*seq),
            HypercoreError::RangeOutOfBounds { start, .. } => Some(*start),
            HypercoreError::DeserializationFailed { seq, .. } => *seq,
            _ => None,
        }
    }

    /// A `DESERIALIZATION_FAILED` error without log context.
    pub fn decode(reason: DecodeError) -> Self {
        HypercoreError::DeserializationFailed {
            log: None,
            seq: None,
            reason,
        }
    }

    /// Adds log and seq context to a `DESERIALIZATION_FAILED` error (others unchanged).
    pub fn at_entry(self, log_name: &str, at_seq: u64) -> Self {
        match self {
            HypercoreError::DeserializationFailed { reason, .. } => {
                HypercoreError::DeserializationFailed {
                    log: Some(log_name.to_owned()),
                    seq: Some(at_seq),
                    reason,
                }
            }
            other => other,
        }
    }

    /// The spec's JSON shape of this error (`{code, message, logName?, seq?}`).
    pub fn to_payload(&self) -> ErrorPayload {
        ErrorPayload {
            code: self.code(),
            message: self.to_string(),
            log_name: self.log_name().map(str::to_owned),
            seq: self.seq(),
        }
    }
}

impl Serialize for HypercoreError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_payload().serialize(serializer)
    }
}

/// The spec's `HypercoreErrorSchema`: what crosses IPC to TypeScript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorPayload {
    /// One of the nine codes.
    pub code: ErrorCode,
    /// Human-readable message with context.
    pub message: String,
    /// The log, when the error is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_name: Option<String>,
    /// The seq, when the error is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}
