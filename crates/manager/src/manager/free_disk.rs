//! Freeing disk (issue 23): deleting a whole log ([`HypercoreManager::delete_log`]) and
//! measuring what the store occupies ([`allocated_bytes`]). Clearing blocks of one log
//! is [`ManagedLog::clear`](crate::ManagedLog::clear) (managed-core's `clear`).

use std::path::Path;

use nova_hypercore_serialization::{HypercoreError, LogName};
use tracing::{info, warn};

use super::{HypercoreManager, Phase, Result, blocking, existing_format};
use crate::events::ManagerEvent;
use crate::keys::{self, DEFAULT_NAMESPACE};

impl HypercoreManager {
    /// Deletes log `name` from the store: stops sharing it (its replication sessions
    /// end), closes it (every handle to it then fails with "closed"), removes its
    /// directory (the hypercore files), its key file and its entries in
    /// `replication-state.json`, then emits [`ManagerEvent::LogDeleted`]. Returns
    /// `false` when there was nothing to delete.
    ///
    /// Which log: the one open under `name` (our own or a replica), else our own log of
    /// that name if its key file exists. The store does not remember replicas, so a
    /// replica must be open ([`open_replica`](Self::open_replica)) to be deleted; it can
    /// be opened again afterwards and starts empty. Our own log's name cannot be used
    /// again: its key derives from the name, and a new log would sign a second history
    /// with the same key (a fork to every peer that held the old one), so a mark
    /// `keys/<name>.deleted` is written first and [`get_log`](Self::get_log) refuses the
    /// name with `UNAUTHORIZED` from then on. A crash part-way leaves that mark and
    /// some files: calling `delete_log` again finishes.
    ///
    /// Errors: `UNAUTHORIZED` for an invalid name, a closed or uninitialized manager,
    /// `STORAGE_INACCESSIBLE` when files cannot be removed.
    pub async fn delete_log(&self, name: &str) -> Result<bool> {
        let result = self.delete_log_inner(name).await;
        if let Err(e) = &result {
            self.shared.report_error(name, e);
        }
        result
    }

    async fn delete_log_inner(&self, name: &str) -> Result<bool> {
        let name = LogName::parse(name)?;
        self.registered(&name).await?;
        let gate = self.name_gate(&name).await;
        let held = gate.lock().await;
        let result = self.delete_under_gate(&name).await;
        drop(held);
        self.release_gate(&name, gate).await;
        result
    }

    /// [`delete_log`](Self::delete_log) while holding `name`'s gate (no open of it runs).
    async fn delete_under_gate(&self, name: &LogName) -> Result<bool> {
        let (registered, primary_key) = {
            let mut state = self.state.write().await;
            if state.phase != Phase::Ready {
                return Err(self.not_ready(state.phase));
            }
            let log = state.logs.remove(name);
            self.shared.obs.set_managed_logs(state.logs.len() as u64);
            (log, state.primary_key)
        };
        let own = registered.as_ref().is_none_or(|log| log.is_writable());
        if let Some(log) = &registered {
            let dk = log.discovery_key();
            if let Some(shared) = self.hub.disable(&dk) {
                shared.unpin();
            }
            if let Err(e) = self.swarm_leave(dk).await {
                warn!(log = %name, error = %e, "deleting a log: leaving its swarm topic failed");
            }
            if let Err(e) = log.close().await {
                // Its files go anyway.
                warn!(log = %name, error = %e, "deleting a log: closing it failed");
            }
        }
        let (keys_dir, corestore) = (self.keys_dir(), self.corestore_dir());
        let format = self.shared.config.core_format;
        let dir = registered.as_ref().map(|log| log.path().to_owned());
        let owned = name.clone();
        let deleted = blocking(&self.keys_dir(), move || {
            let key_file = keys_dir.join(format!("{owned}.key"));
            let marked = keys::tombstone_path(&keys_dir, &owned).exists();
            let dir = match dir {
                Some(dir) => dir,
                None if key_file.exists() || marked => {
                    let key =
                        keys::derive_key_pair(&primary_key, &DEFAULT_NAMESPACE, owned.as_str());
                    let dir = existing_format(&corestore, &key, format).1;
                    if !key_file.exists() && !dir.exists() {
                        // Deleted before, and finished.
                        return Ok(false);
                    }
                    dir
                }
                None => return Ok(false),
            };
            if own {
                keys::write_tombstone(&keys_dir, &owned)?;
                keys::remove_file_if_any(&key_file)?;
            }
            remove_log_dir(&dir, &corestore.join("cores"))?;
            Ok(true)
        })
        .await?;
        if !deleted {
            return Ok(false);
        }
        let dk = registered.as_ref().map(|log| log.discovery_key());
        self.hub.forget(name.as_str(), dk.as_ref());
        self.hub.persist().await;
        self.shared.obs.record_lifecycle(name.as_str(), "deleted");
        info!(log = %name, own, "log deleted");
        self.shared.emit(ManagerEvent::LogDeleted {
            log_name: name.clone(),
        });
        Ok(true)
    }

    /// Bytes the filesystem allocated to the store directory (see [`allocated_bytes`]);
    /// `None` if it could not be measured.
    pub(super) async fn disk_usage(&self) -> Option<u64> {
        let root = self.storage_path().to_owned();
        tokio::task::spawn_blocking(move || allocated_bytes(&root).ok())
            .await
            .ok()
            .flatten()
    }
}

/// Removes a log's directory, then its two hash-prefix parents under `cores` if they
/// are left empty.
fn remove_log_dir(dir: &Path, cores: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(HypercoreError::StorageInaccessible {
                path: dir.to_owned(),
                source,
            });
        }
    }
    let mut parent = dir.parent();
    while let Some(p) = parent.filter(|p| p.starts_with(cores) && *p != cores) {
        // Fails (and stops) when not empty: another log shares the prefix.
        if std::fs::remove_dir(p).is_err() {
            break;
        }
        parent = p.parent();
    }
    if let Some(p) = parent
        && let Ok(d) = std::fs::File::open(p)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Bytes the filesystem allocated to everything under `root` (files and directories,
/// `st_blocks * 512`, not lengths: holes punched by a clear do not count). Symbolic
/// links are not followed. Entries that vanish while it walks are skipped.
pub(crate) fn allocated_bytes(root: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = std::fs::symlink_metadata(root)?
        .blocks()
        .saturating_mul(512);
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}
