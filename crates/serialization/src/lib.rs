//! Data models, the length-prefixed JSON codec and the one error type of nova-hypercore.
//!
//! Owns: the spec's schemas as Rust types (validated with `garde`, JSON field names in
//! camelCase exactly as the TypeScript side writes them), [`LogName`] (the only way a log
//! name reaches the file system), [`serialize`] / [`deserialize`] (u32 big-endian length
//! prefix + JSON), and [`HypercoreError`] with the spec's nine [`ErrorCode`]s.
//!
//! Does not: touch storage, networking or async runtimes. Every other crate depends on this
//! one; it depends on none of them.
//!
//! ```
//! use nova_hypercore_serialization::{deserialize, serialize, MemoryNodeEntry};
//!
//! let node = MemoryNodeEntry {
//!     id: "n-1".into(),
//!     agent_source: "atlas".into(),
//!     category: "fact".into(),
//!     content: "hypercore logs are append-only".into(),
//!     tags: vec!["p2p".into()],
//!     importance: 0.5,
//!     timestamp: 1_764_000_000_000,
//! };
//! let bytes = serialize(&node)?;
//! let back: MemoryNodeEntry = deserialize(&bytes)?;
//! assert_eq!(back, node);
//! # Ok::<(), nova_hypercore_serialization::HypercoreError>(())
//! ```

mod codec;
mod error;
mod log_name;
mod models;

pub use codec::{MAX_FRAME_BYTES, PREFIX_BYTES, deserialize, serialize};
pub use error::{DecodeError, ErrorCode, ErrorPayload, HypercoreError, Result};
pub use log_name::{LogName, MAX_LOG_NAME_BYTES};
pub use models::{
    AggregateMetrics, CRDTUpdateEntry, Direction, HypercoreLogEvent, MAX_SAFE_INTEGER,
    ManagerStatus, MemoryNodeEntry, Operation, ReplicationStatus, StorageMetadata,
};
