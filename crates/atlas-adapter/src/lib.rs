//! ATLAS memory on a hypercore log (spec: ATLASMemoryAdapter): store memory nodes, find
//! them again by time range, agent or category, on this peer or on a peer that
//! replicates the log.
//!
//! Owns: [`AtlasMemoryAdapter`] (validate + append + index, the queries, following the
//! log as blocks land, reporting entries that do not decode), [`MemoryIndex`] (time
//! buckets of [`BUCKET_WIDTH_MS`], agents, categories; rebuilt from the log on open) and
//! the time queries of a sparse replica (module `sparse`: a bounded binary search over
//! seqs that fetches only the entries around the range, [`SparseQueryOptions`]).
//!
//! Does not: touch storage, keys or the wire directly. It uses the manager's public API
//! only (`get_log`, `append`, `get_range(_with)`, `get_with`, `watch_progress`,
//! `is_sparse`, `subscribe`, `emit`), like an application would, and persists nothing
//! of its own: the log is the only truth.
//!
//! Used by: Nova26's ATLAS agents (through the Tauri plugin, later), the adapter's demo
//! (`cargo xtask demo`) and the `atlas_*` bench workloads.

mod adapter;
mod index;
mod sparse;

pub use adapter::{AtlasMemoryAdapter, DEFAULT_LOG};
pub use index::{BUCKET_WIDTH_MS, MemoryIndex, bucket_of};
pub use sparse::{DEFAULT_SKEW_MS, SparseQueryOptions};
