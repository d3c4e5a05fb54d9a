//! CRDT collaboration over hypercore logs (spec: CRDTBridge): CRDT updates (opaque
//! bytes, e.g. Yjs / `yrs` updates) stamped with a timestamp and a vector clock,
//! appended to this peer's log and delivered, with every followed peer's updates, to the
//! application exactly once.
//!
//! Owns: [`CrdtBridge`] (broadcast, `on_update` handlers with [`Subscription`]s,
//! following other writers' logs as replicas, delivery in log order per writer, the
//! vector clock and its recovery from the logs, reporting entries that do not decode),
//! the [`clock`] helpers, and one small file, `crdt-bridge-<log>.json` in the store's
//! root: the writers followed and how far each was delivered.
//!
//! Truncation: when a followed writer (or we) truncates its log, the entries kept are
//! the ones delivered before, and delivery resumes at the cut (`ManagedLog::kept_since`
//! with the fork each position was counted at); the retracted updates stay applied,
//! since a CRDT update cannot be taken back (CRDT merges are idempotent, so an update
//! delivered again is harmless, one skipped would be lost).
//!
//! Does not: touch storage, keys or the wire directly, decode the CRDT payload, or
//! decide which peers to connect to. It uses the manager's public API only (`get_log`,
//! `open_replica`, `enable_replication`, `append`, `get_range`, `watch_progress`,
//! `emit`, `observability`), like an application would.
//!
//! Used by: Nova26's collaborative editors (through the Tauri plugin, later) and the
//! workspace's cross-crate suite `tests/tests/yrs_three_peers.rs`, which runs three `yrs`
//! documents over three managers.

mod bridge;
pub mod clock;
mod state;

pub use bridge::{CrdtBridge, DEFAULT_LOG, Origin, REPLICA_KEY_HEX, Subscription};
pub use clock::VectorClock;
