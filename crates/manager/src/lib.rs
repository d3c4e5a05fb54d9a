//! The store Nova26 holds one of: named, signed, append-only logs with typed events,
//! status, metrics and health warnings (spec: HypercoreManager).
//!
//! Owns: the storage layout (`corestore/`, `keys/`, `replication-state.json`) and its
//! migration from the earlier one, the store's primary key and each log's
//! Corestore-compatible derived key pair ([`keys`]),
//! log-name validation at the API boundary, the registry that makes `get_log`
//! idempotent, the caps on open logs (`max_open_logs`) and on the file descriptors of
//! all its logs together (`max_open_files`: one managed-core `FileBudget` per store,
//! which also binds the logs replication sessions hold), payload limits,
//! [`ManagerEvent`]s and the wiring of every operation into
//! [`nova_hypercore_observability`].
//!
//! Freeing disk (issue 23): [`ManagedLog::clear`] drops blocks of a log,
//! [`HypercoreManager::delete_log`] deletes a whole log (files, key, replication state;
//! [`ManagerEvent::LogDeleted`]), and `status().disk_usage_bytes` reports the bytes the
//! store occupies on disk.
//!
//! Also owns the replication control the spec puts on the manager: which logs are
//! shared, sessions over any stream ([`HypercoreManager::replicate`]), direct TCP mode
//! ([`HypercoreManager::listen`] / [`HypercoreManager::connect`]) and DHT discovery
//! ([`HypercoreManager::start_swarm`]), all driving `nova-hypercore-replication`.
//!
//! Does not: implement storage or verification (that is `managed-core`), or the wire
//! protocol and swarm mechanics (that is `replication`).
//!
//! Key material, honestly: a log's secret key exists in `keys/<log>.key` and is derivable
//! from `keys/primary-key`; nothing of ours that is secret is kept under `corestore/`
//! (stores that had the primary key at `corestore/primary-key` are migrated by
//! [`HypercoreManager::initialize`]). The log's `oplog` header is the exception until the
//! own storage core lands: the hypercore 10 format the `hypercore` crate writes keeps a
//! writable core's key pair there. Protect the whole storage directory (it is created
//! 0700, key files 0600).

mod backoff;
mod config;
mod encryption_mark;
mod events;
pub mod keys;
mod log;
mod manager;
mod replication;
pub mod replication_state;
mod swarm;

pub use config::{
    DEFAULT_MAX_OPEN_FILES, MAX_PAYLOAD_LIMIT, MIN_OPEN_FILES, ManagerConfig, ManagerConfigBuilder,
};
pub use events::ManagerEvent;
pub use log::{GetOptions, ManagedLog, ReplicaOptions};
pub use manager::{Connector, DownloadProgress, HypercoreManager, Listener};
pub use nova_hypercore_managed_core::encryption::EncryptionKey;
pub use nova_hypercore_managed_core::{CoreFormat, Download, Durability, Progress, RangeProgress};
pub use nova_hypercore_replication::swarm::{BootstrapNode, DialFailure, Firewall, SwarmOptions};
pub use swarm::SwarmStats;

/// The README's code blocks, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
