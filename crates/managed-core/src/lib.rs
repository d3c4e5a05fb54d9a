//! Append-only signed logs, one per name, on our own hypercore core.
//!
//! Owns: one log's block storage on disk (hypercore 10 file layout: `tree`, `data`,
//! `bitfield`, `oplog`, readable by JS hypercore 10.31 for legacy logs, plus a fifth
//! file of our own, `sizes`, the block sizes kept so that a writer's log whose tree
//! lost its leaves is rebuilt locally: [`ManagedCore::repair`]) or in memory,
//! its durability policy ([`Durability`]), its keys and manifest (hypercore 10 "legacy"
//! logs and hypercore 11 manifest-v1 logs, [`CoreFormat`], [`manifest`]), and
//! verification on read: [`ManagedCore::get`] returns a block only after checking it
//! against the merkle tree signed by the log's signer, and reports `SIGNATURE_INVALID`
//! otherwise. Block encryption as JS hypercore's `encryptionKey` ([`encryption`], and
//! [`OpenOptions::encryption_key`]: stored `padding ‖ ciphertext`, reads decrypted).
//!
//! Used by the manager (a store of logs) and the replication crate (proofs, and the
//! manifest of v1 cores: [`ManagedCore::set_manifest`], [`ManagedCore::manifest`]).
//!
//! Does not: know about other logs (that is the manager's store), networking or
//! replication sessions, payload size limits, or the meaning of payload bytes.
//!
//! ```
//! use nova_hypercore_managed_core::{ManagedCore, OpenOptions};
//! use nova_hypercore_serialization::LogName;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let log = ManagedCore::open(dir.path(), LogName::parse("agent-state")?, OpenOptions::default()).await?;
//! let seq = log.append(b"hello").await?;
//! assert_eq!(log.get(seq).await?, b"hello");
//! assert!(log.verify_signature(seq).await?);
//! log.close().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod bitfield;
mod block_store;
mod core;
mod crypto;
mod disk;
mod encoding;
pub mod encryption;
mod file_budget;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod manifest;
mod merkle_tree;
mod multisig;
mod oplog;
#[cfg(feature = "power-cut")]
pub mod power_cut;
mod proof;
mod verifier;

pub use crate::core::{
    Cleared, CoreFormat, CoreInfo, Download, ManagedCore, OpenOptions, Progress, RangeProgress,
    Repaired, SeekState, Truncation, Unsynced, discovery_key,
};
pub use crate::disk::Durability;
pub use crate::file_budget::{FileBudget, WRITE_TURNS};
pub use crate::proof::{ForkWant, Reorg};
/// ed25519 keys as the log's signer uses them (`ed25519-dalek`).
pub use ed25519_dalek::{SigningKey, VerifyingKey};
/// Proof and request shapes of the replication wire protocol (`hypercore_schema`).
pub use hypercore_schema::{
    DataBlock, DataSeek, DataUpgrade, Proof, RequestBlock, RequestSeek, RequestUpgrade,
};
