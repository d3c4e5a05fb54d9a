//! Replicas of peers' logs ([`HypercoreManager::open_replica`] and
//! [`HypercoreManager::open_replica_with`]) and the mode each one is remembered in.
//!
//! A replica's mode (full or sparse, [`ReplicaOptions`]) is stored in its log directory
//! as [`MODE_FILE`], next to the four hypercore files (which it does not touch: JS
//! hypercore opens the directory as before and ignores the file). Written atomically
//! (temp file, fsync, rename, directory fsync). It goes with the directory when the
//! replica is deleted.
//!
//! Must not: store anything about logs of our own (their mode is always full).

use std::io::Read;
use std::path::Path;

use nova_hypercore_serialization::{HypercoreError, LogName};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use nova_hypercore_managed_core::encryption::EncryptionKey;

use super::{HypercoreManager, Result, blocking, same_encryption};
use crate::keys;
use crate::log::{LogKey, ManagedLog, ReplicaOptions};

/// File in a replica's log directory that holds its mode (`{"version":1,"sparse":true}`).
pub(crate) const MODE_FILE: &str = "nova-replica.json";

/// Current version of [`MODE_FILE`].
const MODE_VERSION: u32 = 1;

/// Largest [`MODE_FILE`] read; a longer one is corrupt.
const MODE_MAX_BYTES: u64 = 4096;

/// What [`MODE_FILE`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StoredMode {
    version: u32,
    sparse: bool,
}

impl HypercoreManager {
    /// A read-only replica of a peer's log, known by its core key (as the peer's
    /// `ManagedLog::public_key`, or a JS hypercore's `core.key`: a legacy core's ed25519
    /// key or a hypercore 11 manifest core's hash, told apart by what peers send),
    /// stored in this store under `name` (no key file: there is no secret). Sync it by
    /// enabling replication and connecting to a peer that has it. A name already used
    /// for another key is `UNAUTHORIZED`.
    ///
    /// The store does not remember which names are replicas: after a restart, call
    /// `open_replica(name, key)` again (it reopens the stored replica with its data);
    /// `get_log(name)` would create a new writable log of that name instead. The
    /// replica comes back in the mode it was last opened with explicitly
    /// ([`open_replica_with`](Self::open_replica_with)): a sparse replica stays sparse.
    /// A replica never opened with options is full.
    pub async fn open_replica(&self, name: &str, public_key: [u8; 32]) -> Result<ManagedLog> {
        let result = self.open_replica_inner(name, public_key, None, None).await;
        if let Err(e) = &result {
            self.shared.report_error(name, e);
        }
        result
    }

    /// [`open_replica`](Self::open_replica) with options: a sparse replica
    /// ([`ReplicaOptions::sparse`]) downloads only what its reads and downloads ask
    /// for; a full one ([`ReplicaOptions::full`]) every block.
    ///
    /// The options are stored with the replica (`nova-replica.json` in its log directory) and win over what
    /// was stored before: a later [`open_replica`](Self::open_replica), in this process
    /// or after a restart, opens it in this mode. A replica already open in this
    /// process keeps the mode it was opened in until it is opened again (after a
    /// restart): [`ManagedLog::is_sparse`] tells which one it runs in.
    ///
    /// Errors: those of `open_replica`; `STORAGE_INACCESSIBLE` if the mode cannot be
    /// stored (the replica is then not opened).
    pub async fn open_replica_with(
        &self,
        name: &str,
        public_key: [u8; 32],
        options: ReplicaOptions,
    ) -> Result<ManagedLog> {
        let result = self
            .open_replica_inner(name, public_key, Some(options), None)
            .await;
        if let Err(e) = &result {
            self.shared.report_error(name, e);
        }
        result
    }

    /// [`open_replica_with`](Self::open_replica_with) (with `Some(options)`; `None`:
    /// the stored mode, as [`open_replica`](Self::open_replica)) for a log whose blocks
    /// are encrypted with `key` (JS `encryptionKey`): the replica stores and serves the
    /// ciphertext as every peer does, and its reads decrypt. The key is held in memory
    /// only: give it whenever the replica is first opened in a process. Without a key
    /// ([`open_replica`](Self::open_replica)) a replica of an encrypted log is a
    /// seeder: it holds, verifies and serves the blocks it cannot read.
    ///
    /// The first open with the key marks the replica's directory (a check value of the
    /// key, never the key): a later open with another key is refused.
    ///
    /// Errors: those of `open_replica_with`; `UNAUTHORIZED` when the replica is already
    /// open in this process without this key, or was marked with another key.
    pub async fn open_replica_encrypted(
        &self,
        name: &str,
        public_key: [u8; 32],
        options: Option<ReplicaOptions>,
        key: EncryptionKey,
    ) -> Result<ManagedLog> {
        let result = self
            .open_replica_inner(name, public_key, options, Some(key))
            .await;
        if let Err(e) = &result {
            self.shared.report_error(name, e);
        }
        result
    }

    /// `options`: an explicit choice (stored), or `None` for the stored one.
    async fn open_replica_inner(
        &self,
        name: &str,
        public_key: [u8; 32],
        options: Option<ReplicaOptions>,
        encryption: Option<EncryptionKey>,
    ) -> Result<ManagedLog> {
        let wanted = encryption.clone();
        let name = LogName::parse(name)?;
        let dk = nova_hypercore_managed_core::discovery_key(&public_key);
        let dir = keys::core_dir(&self.corestore_dir(), &dk);
        let log = match self.registered(&name).await? {
            Some(log) => log,
            None => {
                self.open_once(&name, || async {
                    let (d, n) = (dir.clone(), name.clone());
                    let sparse = blocking(&dir, move || settle_mode(&d, &n, options)).await?;
                    self.register(
                        name.clone(),
                        dir.clone(),
                        LogKey::Core(public_key, sparse),
                        encryption,
                        "replica opened",
                    )
                    .await
                })
                .await?
            }
        };
        if log.public_key() != public_key {
            return Err(HypercoreError::Unauthorized {
                log: Some(name.to_string()),
                reason: format!("log name {name} is already used for another key"),
            });
        }
        if let Some(options) = options
            && options.sparse != log.is_sparse()
        {
            let (d, n) = (dir.clone(), name.clone());
            blocking(&dir, move || settle_mode(&d, &n, Some(options))).await?;
            warn!(
                log = %name,
                sparse = options.sparse,
                "replica already open in the other mode: the new mode is stored and applies from its next open"
            );
        }
        same_encryption(log, wanted.as_ref())
    }
}

/// The mode to open the replica in `dir` with: `explicit` (stored if it differs from
/// what is stored), else the stored one, else full.
fn settle_mode(dir: &Path, name: &LogName, explicit: Option<ReplicaOptions>) -> Result<bool> {
    let stored = load_mode(dir, name);
    let Some(options) = explicit else {
        return Ok(stored?.unwrap_or(false));
    };
    // An explicit choice replaces whatever was there, a damaged file too.
    if stored.ok().flatten() != Some(options.sparse) {
        store_mode(dir, options.sparse)?;
        info!(log = %name, sparse = options.sparse, "replica mode stored");
    }
    Ok(options.sparse)
}

/// The mode stored in `dir`: `None` if no mode was ever stored; `STORAGE_CORRUPTED`
/// naming the file if it does not parse.
fn load_mode(dir: &Path, name: &LogName) -> Result<Option<bool>> {
    let path = dir.join(MODE_FILE);
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(&path).and_then(|f| f.take(MODE_MAX_BYTES + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(HypercoreError::StorageInaccessible { path, source }),
    }
    let corrupted = |reason: String| HypercoreError::StorageCorrupted {
        log: name.to_string(),
        path: path.clone(),
        reason,
    };
    if bytes.len() as u64 > MODE_MAX_BYTES {
        return Err(corrupted(format!(
            "replica mode file longer than {MODE_MAX_BYTES} bytes"
        )));
    }
    let mode: StoredMode = serde_json::from_slice(&bytes)
        .map_err(|e| corrupted(format!("not a replica mode: {e}")))?;
    if mode.version != MODE_VERSION {
        return Err(corrupted(format!(
            "unknown replica mode version {} (expected {MODE_VERSION})",
            mode.version
        )));
    }
    Ok(Some(mode.sparse))
}

/// Stores `sparse` as the mode of the replica in `dir` (creating the directory).
fn store_mode(dir: &Path, sparse: bool) -> Result<()> {
    keys::private_dir(dir)?;
    let mode = StoredMode {
        version: MODE_VERSION,
        sparse,
    };
    let path = dir.join(MODE_FILE);
    let bytes = serde_json::to_vec(&mode).map_err(|e| HypercoreError::StorageInaccessible {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    keys::write_secret_file(&path, &bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_mode_is_stored_and_a_plain_open_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let name = LogName::parse("r").unwrap();
        assert!(!settle_mode(&log, &name, None).unwrap());
        assert!(!log.join(MODE_FILE).exists());
        assert!(settle_mode(&log, &name, Some(ReplicaOptions::sparse())).unwrap());
        assert!(settle_mode(&log, &name, None).unwrap());
        assert!(!settle_mode(&log, &name, Some(ReplicaOptions::full())).unwrap());
        assert!(!settle_mode(&log, &name, None).unwrap());
    }

    #[test]
    fn a_damaged_mode_file_is_corrupted_unless_replaced_explicitly() {
        let dir = tempfile::tempdir().unwrap();
        let name = LogName::parse("r").unwrap();
        std::fs::write(dir.path().join(MODE_FILE), b"{not json").unwrap();
        let err = settle_mode(dir.path(), &name, None).unwrap_err();
        assert!(
            matches!(&err, HypercoreError::StorageCorrupted { path, .. } if path.ends_with(MODE_FILE)),
            "{err:?}"
        );
        assert!(settle_mode(dir.path(), &name, Some(ReplicaOptions::sparse())).unwrap());
        assert!(settle_mode(dir.path(), &name, None).unwrap());
    }
}
