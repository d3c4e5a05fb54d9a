//! [`ManagedCore::clear`]: drop local blocks and give their bytes back to the
//! filesystem (JS hypercore 10.31 `core.clear(start, end)`, issue 23 "free disk").
//!
//! Order, for crash safety: first the oplog entry `{bitfield: {drop: true, start,
//! length}}` (the one JS writes), then a checkpoint (bitfield pages, and the header
//! whose contiguous length is now at most `start`, synced), and only then the hole is
//! punched. A crash before the punch leaves the bits cleared and the bytes present
//! (harmless; a crash before the checkpoint may even bring the blocks back at open, as
//! verified blocks below the old header's contiguous length); a punch before the entry
//! is durable could leave a block marked stored over zeros, so it never comes first.
//!
//! What is punched: like JS, the byte span of the cleared blocks widened to the blocks
//! around them that are not stored either (up to the last stored block before `start`
//! and the first stored one at or after `end`), then narrowed to whole filesystem blocks,
//! so no stored block's bytes are ever touched. Offsets come from the signed tree (the
//! byte offset of a block is the sum of the sizes before it); where the tree lacks the
//! nodes to locate a block (a replica that never fetched them) nothing is punched.
//!
//! The tree nodes stay: cleared blocks remain verifiable, and a peer's proof brings them
//! back (a full replica's sessions ask again at once, [`ManagedCore::watch_missing`];
//! a sparse replica when a read wants them).

use std::ops::Range;

use nova_hypercore_serialization::HypercoreError;
use tracing::debug;

use super::storage::{Storage, StorageError};
use super::{ManagedCore, Result};

/// What [`ManagedCore::clear`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cleared {
    /// Blocks of the range that were stored here and are not any more.
    pub blocks: u64,
    /// Bytes of the `data` file handed back to the filesystem with a punched hole
    /// (whole filesystem blocks; parts that were holes already count too).
    pub bytes_punched: u64,
    /// The filesystem (or platform) cannot punch holes: the blocks are cleared all the
    /// same, their bytes stay allocated.
    pub punch_unsupported: bool,
}

impl ManagedCore {
    /// Drops the blocks `range` from this log's local storage (our own log or a
    /// replica), as JS hypercore's `clear(start, end)`: their bitfield bits are cleared
    /// durably, their tree nodes are kept (the log stays verifiable and its length does
    /// not change), and their bytes in the `data` file are given back to the filesystem
    /// where it can punch holes. A read of a cleared block is then `REPLICATION_FAILED`
    /// ([`HypercoreError::BlockUnavailable`]) until a peer sends it again: a full
    /// replica's (or a writer's) replication sessions ask for it at once, a sparse
    /// replica's when a read or download wants it.
    ///
    /// An empty range does nothing. Blocks in the range not stored here are skipped
    /// (the call is idempotent; calling again retries a punch that failed). Survives a
    /// reopen.
    ///
    /// Errors: `OUT_OF_RANGE` ([`HypercoreError::RangeOutOfBounds`], with the length)
    /// for a reversed range or one reaching past the length (nothing changes);
    /// `IO_ERROR` when writing the entry fails, or when punching the hole fails for a
    /// reason other than the filesystem not supporting it (the blocks are cleared
    /// then; only their space is not freed yet).
    pub async fn clear(&self, range: Range<u64>) -> Result<Cleared> {
        let Range { start, end } = range;
        let mut guard = self.inner.storage.write().await;
        let storage = self.usable_mut(&mut guard)?;
        let length = storage.tree().length();
        if start > end || end > length {
            return Err(HypercoreError::RangeOutOfBounds {
                log: self.inner.name.to_string(),
                start,
                end,
                length,
            });
        }
        if start == end {
            return Ok(Cleared::default());
        }
        let _turn = self.write_turn().await;
        let storage = self.usable_mut(&mut guard)?;
        let blocks = storage.clear(start, end).map_err(|e| self.error(e))?;
        if blocks > 0 {
            // The entry, the cleared bitfield pages and a header with the lower
            // contiguous length reach the disk before any byte is punched.
            self.checkpoint_if_due(&mut guard, true).await?;
            self.sync(std::slice::from_ref(&self.inner.files.oplog), true)
                .await?;
            let storage = self.usable_mut(&mut guard)?;
            self.publish(storage);
            self.inner
                .missing_tx
                .send_modify(|n| *n = n.wrapping_add(blocks));
        }
        let storage = self.usable_mut(&mut guard)?;
        let mut cleared = Cleared {
            blocks,
            ..Cleared::default()
        };
        let Some((offset, len)) = punch_span(storage, start, end).map_err(|e| self.error(e))?
        else {
            debug!(log = %self.inner.name, start, end, blocks, "blocks cleared, no whole filesystem block to free");
            return Ok(cleared);
        };
        match storage.blocks().clear(offset, len) {
            Ok(true) => cleared.bytes_punched = len,
            Ok(false) => {
                cleared.punch_unsupported = true;
                debug!(
                    log = %self.inner.name,
                    file = %self.inner.files.data.path().display(),
                    "the filesystem cannot punch holes: blocks cleared, their bytes stay allocated"
                );
            }
            Err(source) => {
                return Err(self.io(
                    format!(
                        "punch a hole at {offset}..+{len} in {} (blocks {start}..{end} are cleared; clear again to free their space)",
                        self.inner.files.data.path().display()
                    ),
                    source,
                ));
            }
        }
        debug!(log = %self.inner.name, start, end, blocks, punched = cleared.bytes_punched, "blocks cleared");
        Ok(cleared)
    }
}

/// The whole filesystem blocks of the data file to punch after clearing `start..end`
/// (see the module docs), as `(offset, length)`; `None` when there are none or the tree
/// cannot locate the blocks.
fn punch_span(storage: &Storage, start: u64, end: u64) -> Result<Option<(u64, u64)>, StorageError> {
    let length = storage.tree().length();
    let (below, above) = storage.stored_around(start, end);
    let lo = below.map_or(Some(0), |s| s.checked_add(1)).unwrap_or(start);
    let hi = above.map_or(length, |s| s.min(length));
    let (lo, hi) = match (offset_of(storage, lo)?, offset_of(storage, hi)?) {
        (Some(a), Some(b)) => ((lo, a), (hi, b)),
        // The tree cannot locate the neighbours: the cleared range alone.
        _ => match (offset_of(storage, start)?, offset_of(storage, end)?) {
            (Some(a), Some(b)) => ((start, a), (end, b)),
            _ => return Ok(None),
        },
    };
    let block = storage
        .blocks()
        .file()
        .fs_block_size()
        .map_err(|source| StorageError::Io {
            operation: "stat",
            file: storage.blocks().file().path().to_owned(),
            source,
        })?;
    let Some(from) = lo.1.checked_next_multiple_of(block) else {
        return Ok(None);
    };
    // Nothing is stored past the last block: the tail's partial filesystem block goes too.
    let to = if hi.0 >= length {
        hi.1.checked_next_multiple_of(block)
    } else {
        Some(hi.1 - hi.1 % block)
    };
    Ok(to.filter(|to| *to > from).map(|to| (from, to - from)))
}

/// Where block `seq` starts in the data file (the byte length for `seq == length`).
fn offset_of(storage: &Storage, seq: u64) -> Result<Option<u64>, StorageError> {
    if seq >= storage.tree().length() {
        return Ok(Some(storage.tree().byte_length()));
    }
    storage.byte_offset(seq)
}
