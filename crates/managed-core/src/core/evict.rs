//! [`ManagedCore::evict`]: closing a log's storage for a pool that keeps only so many
//! logs open, and [`Unsynced`], what such a close left to sync.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use nova_hypercore_serialization::HypercoreError;
use tracing::debug;

use super::{ManagedCore, Result};
use crate::disk::Durability;

/// The files of a log that an [`evict`](ManagedCore::evict) left written but not
/// synced, to be synced later ([`sync`](Self::sync), e.g. by the store's close). Holds
/// only their paths (at most the log's five files, in the order they are synced: data,
/// tree, bitfield, sizes, oplog); the evicted log keeps nothing else in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unsynced {
    log: String,
    /// Indexed like `Files::all`.
    files: [Option<Arc<Path>>; 5],
}

impl Unsynced {
    /// Nothing to sync.
    pub fn is_empty(&self) -> bool {
        self.files.iter().all(Option::is_none)
    }

    /// Adds what `other` (a later eviction of the same log) left to sync.
    pub fn merge(&mut self, other: Unsynced) {
        if self.log.is_empty() {
            self.log = other.log;
        }
        for (mine, theirs) in self.files.iter_mut().zip(other.files) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
    }

    /// `fdatasync`s each file (data first, the oplog last, so a synced oplog entry
    /// never points at blocks that are not), on the blocking pool, through a descriptor
    /// of its own (outside any file budget; one at a time). A file that is gone (its
    /// log was deleted) is skipped. Afterwards everything the evicted log acknowledged
    /// is on disk: blocks, and the oplog entries the next open replays.
    ///
    /// Errors: `IO_ERROR` naming the log and the file.
    pub async fn sync(self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let Unsynced { log, files } = self;
        let joined = tokio::task::spawn_blocking(move || {
            for path in files.iter().flatten() {
                let file = match std::fs::File::open(path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err((path.display().to_string(), e)),
                };
                // Linux reports a writeback error nobody has seen yet to the next
                // `fsync` on any descriptor of the file (see `FileBudget`).
                file.sync_data()
                    .map_err(|e| (path.display().to_string(), e))?;
                #[cfg(feature = "power-cut")]
                crate::power_cut::Recorder::for_path(path).sync();
            }
            Ok(())
        })
        .await;
        let (operation, source) = match joined {
            Ok(Ok(())) => return Ok(()),
            Ok(Err((path, source))) => (format!("fdatasync {path}"), source),
            Err(join) => ("fdatasync".into(), std::io::Error::other(join.to_string())),
        };
        Err(HypercoreError::Io {
            log,
            operation,
            source,
        })
    }
}

impl ManagedCore {
    /// Closes the log's storage for a pool that keeps only so many logs open (the
    /// manager's `max_open_logs`), not for good. In [`Durability::Flush`] there is
    /// neither a checkpoint nor a sync (a checkpoint and a close cost about six
    /// `fdatasync`s): what was written stays as a kill -9 would leave it, the oplog's
    /// entries since the last checkpoint (which the next [`open`](Self::open) replays:
    /// the crash path, checked by the crash trials and tests/power_cut.rs) and the
    /// written pages in the page cache. `Flush` makes nothing durable before a clean
    /// close, so an eviction need not; the returned [`Unsynced`] names the files to
    /// sync when the owner closes for good (the store's close), which then makes
    /// everything acknowledged durable. In the fsync modes (and for memory logs) this
    /// is [`close`](Self::close), and nothing is left to sync.
    ///
    /// Later calls on any handle fail with a "closed" error, as after `close`.
    pub async fn evict(&self) -> Result<Unsynced> {
        if self.inner.durability != Durability::Flush || self.inner.path.is_none() {
            self.close().await?;
            return Ok(Unsynced::default());
        }
        let mut guard = self.inner.storage.write().await;
        if guard.is_none() {
            return Ok(Unsynced::default());
        }
        self.inner.closed.store(true, Ordering::Release);
        guard.take();
        drop(guard);
        // A handle kept after this holds no cache.
        self.inner.verified.clear();
        let mut unsynced = Unsynced {
            log: self.inner.name.to_string(),
            files: Default::default(),
        };
        for (slot, file) in unsynced.files.iter_mut().zip(self.inner.files.all()) {
            if file.is_dirty() {
                *slot = Some(Arc::from(file.path()));
            }
            file.release();
        }
        debug!(
            log = %self.inner.name,
            length = self.length(),
            unsynced = unsynced.files.iter().flatten().count(),
            "log evicted (no checkpoint, no sync)"
        );
        Ok(unsynced)
    }
}
