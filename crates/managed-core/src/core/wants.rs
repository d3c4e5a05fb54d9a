//! What a sparse replica wants from its peers (JS hypercore's `sparse` cores, whose
//! `get` and `download` ask the replicator for blocks): ranges of blocks that reads
//! and downloads registered, byte offsets that waiting seeks registered (JS
//! `replicator.addSeek`), which replication sessions request, and a clock of blocks
//! (and tree nodes) applied from peers, which waiting readers watch.
//!
//! A full replica (the default) wants every block; its sessions do not read this. The
//! ranges live in memory only: a want belongs to a read or a download in progress.
//!
//! A [`Download`] also tells how far along its range is ([`Download::progress`]),
//! resolves when all of it is stored ([`Download::done`]), and is withdrawn by
//! [`Download::cancel`] or by dropping it; sessions hear of a withdrawal and stop
//! asking for what only it wanted.
//!
//! Must not: request anything itself (the sessions do), or know about peers.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use nova_hypercore_serialization::HypercoreError;
use tokio::sync::watch;

use super::ManagedCore;

/// The wants of one log, shared by its handles and the [`Download`] guards.
#[derive(Debug)]
pub(super) struct Wants {
    ranges: Mutex<Ranges>,
    /// Bumped whenever a range is added (what the sessions watch).
    changed: watch::Sender<u64>,
    /// Bumped whenever a block from a peer is stored (what waiting readers watch).
    stored: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Ranges {
    by_id: BTreeMap<u64, Range<u64>>,
    /// Byte offsets being sought, by guard id.
    seeks: BTreeMap<u64, u64>,
    next_id: u64,
}

impl Wants {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Wants {
            ranges: Mutex::new(Ranges::default()),
            changed: watch::Sender::new(0),
            stored: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ranges> {
        self.ranges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `range` of `core` until the returned guard drops or is cancelled.
    pub(super) fn add(self: &Arc<Self>, range: Range<u64>, core: ManagedCore) -> Download {
        let id = {
            let mut ranges = self.lock();
            let id = ranges.next_id;
            ranges.next_id = ranges.next_id.wrapping_add(1);
            ranges.by_id.insert(id, range.clone());
            id
        };
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Download {
            wants: self.clone(),
            id,
            range,
            core,
            cancelled: watch::Sender::new(false),
        }
    }

    /// Withdraws range `id` (if still registered) and tells the sessions.
    fn remove(&self, id: u64) {
        let removed = self.lock().by_id.remove(&id).is_some();
        if removed {
            self.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Registers a seek of byte `bytes` until the returned guard drops.
    pub(super) fn add_seek(self: &Arc<Self>, bytes: u64) -> Seeking {
        let id = {
            let mut ranges = self.lock();
            let id = ranges.next_id;
            ranges.next_id = ranges.next_id.wrapping_add(1);
            ranges.seeks.insert(id, bytes);
            id
        };
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Seeking {
            wants: self.clone(),
            id,
        }
    }

    /// The byte offsets being sought (each once), lowest first.
    pub(super) fn seeks(&self) -> Vec<u64> {
        let mut seeks: Vec<u64> = self.lock().seeks.values().copied().collect();
        seeks.sort_unstable();
        seeks.dedup();
        seeks
    }

    /// Every registered range (overlaps possible), in registration order.
    pub(super) fn ranges(&self) -> Vec<Range<u64>> {
        self.lock().by_id.values().cloned().collect()
    }

    pub(super) fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(super) fn watch_stored(&self) -> watch::Receiver<u64> {
        self.stored.subscribe()
    }

    /// A block or tree nodes from a peer were stored.
    pub(super) fn stored(&self) {
        self.stored.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// How much of a [`Download`]'s range is stored here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeProgress {
    /// Blocks of the range stored here (of those below the log's length).
    pub held: u64,
    /// Blocks in the range.
    pub total: u64,
}

impl RangeProgress {
    /// Whether every block of the range is stored.
    pub fn is_complete(&self) -> bool {
        self.held >= self.total
    }
}

/// Blocks a sparse replica asks its peers for, while this guard lives (see
/// [`ManagedCore::download`](super::ManagedCore::download)).
///
/// [`progress`](Self::progress) tells how much of the range is stored,
/// [`done`](Self::done) resolves once all of it is. [`cancel`](Self::cancel), or
/// dropping the guard, withdraws the range: sessions stop asking for blocks only it
/// wanted; requests already sent still complete (at most a session's window of
/// blocks arrives afterwards), and other reads and downloads of the same blocks go on.
#[derive(Debug)]
pub struct Download {
    wants: Arc<Wants>,
    id: u64,
    range: Range<u64>,
    core: ManagedCore,
    cancelled: watch::Sender<bool>,
}

impl Download {
    /// The blocks asked for.
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }

    /// How many blocks of the range are stored now (blocks past the log's length
    /// count as not held until an upgrade brings them). Errors: those of
    /// [`ManagedCore::has_range`](super::ManagedCore::has_range) (a closed log).
    pub async fn progress(&self) -> Result<RangeProgress, HypercoreError> {
        let total = self.range.end.saturating_sub(self.range.start);
        let held = self.core.has_range(self.range.clone()).await?;
        Ok(RangeProgress { held, total })
    }

    /// Withdraws the range now (what dropping the guard does, without giving it up):
    /// [`done`](Self::done) then fails, and sessions stop asking for its blocks.
    /// Calling it again does nothing.
    pub fn cancel(&self) {
        self.wants.remove(self.id);
        self.cancelled.send_replace(true);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Resolves when every block of the range is stored here (at once for an empty
    /// range, or one already held). It waits as long as that takes (a range past the
    /// length waits for the log to grow): bound it with a timeout.
    ///
    /// Errors: `REPLICATION_FAILED` naming the range and how much of it is stored if
    /// the download is cancelled (before or while waiting); `CLOSED` if the log is
    /// closed when it looks (a close does not wake it: bound it with a timeout).
    pub async fn done(&self) -> Result<(), HypercoreError> {
        let mut cancelled = self.cancelled.subscribe();
        let mut stored = self.core.watch_stored();
        let mut length = self.core.watch_progress();
        loop {
            let is_cancelled = *cancelled.borrow_and_update();
            stored.borrow_and_update();
            length.borrow_and_update();
            let progress = self.progress().await?;
            if is_cancelled {
                return Err(HypercoreError::ReplicationFailed {
                    log: self.core.name().to_string(),
                    reason: format!(
                        "the download of blocks {}..{} was cancelled ({} of {} stored)",
                        self.range.start, self.range.end, progress.held, progress.total
                    ),
                });
            }
            if progress.is_complete() {
                return Ok(());
            }
            let open = tokio::select! {
                changed = cancelled.changed() => changed.is_ok(),
                changed = stored.changed() => changed.is_ok(),
                changed = length.changed() => changed.is_ok(),
            };
            if !open || self.core.is_closed() {
                return Err(self.core.closed_error());
            }
        }
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.wants.remove(self.id);
    }
}

/// A seek waiting for peers (see [`Wants::add_seek`]); dropping it withdraws it.
#[derive(Debug)]
pub(super) struct Seeking {
    wants: Arc<Wants>,
    id: u64,
}

impl Drop for Seeking {
    fn drop(&mut self) {
        self.wants.lock().seeks.remove(&self.id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use nova_hypercore_serialization::LogName;

    use super::super::OpenOptions;
    use super::*;

    async fn core() -> ManagedCore {
        let name = LogName::parse("w").unwrap();
        ManagedCore::in_memory(name, OpenOptions::new())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_range_is_wanted_while_its_guard_lives_and_sessions_hear_of_it() {
        let core = core().await;
        let wants = Wants::new();
        let mut changed = wants.watch();
        let a = wants.add(5..10, core.clone());
        let b = wants.add(100..101, core.clone());
        assert!(changed.has_changed().unwrap());
        assert_eq!(wants.ranges(), vec![5..10, 100..101]);
        changed.borrow_and_update();
        drop(a);
        assert_eq!(wants.ranges(), vec![100..101]);
        assert!(changed.has_changed().unwrap(), "a withdrawal is told");
        assert_eq!(b.range(), 100..101);
        drop(b);
        assert!(wants.ranges().is_empty());
    }

    #[tokio::test]
    async fn cancel_withdraws_the_range_and_fails_done() {
        let core = core().await;
        let wants = Wants::new();
        let mut changed = wants.watch();
        let d = wants.add(0..3, core.clone());
        let keep = wants.add(7..9, core);
        changed.borrow_and_update();
        assert!(!d.is_cancelled());
        assert_eq!(
            d.progress().await.unwrap(),
            RangeProgress { held: 0, total: 3 }
        );
        d.cancel();
        assert!(d.is_cancelled());
        assert_eq!(wants.ranges(), vec![7..9]);
        assert!(changed.has_changed().unwrap());
        let err = d.done().await.unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
        d.cancel();
        drop(d);
        assert_eq!(wants.ranges(), vec![7..9]);
        drop(keep);
    }

    #[tokio::test]
    async fn done_resolves_when_the_range_is_held() {
        let core = core().await;
        let empty = core.download(4..4);
        empty.done().await.unwrap();
        let name = LogName::parse("w").unwrap();
        let writer = ManagedCore::in_memory(
            name,
            OpenOptions::new().signing_key(super::super::SigningKey::from_bytes(&[1; 32])),
        )
        .await
        .unwrap();
        writer.append_batch(&[b"a", b"b"]).await.unwrap();
        let d = writer.download(0..2);
        assert!(d.progress().await.unwrap().is_complete());
        d.done().await.unwrap();
    }

    #[test]
    fn a_seek_is_wanted_while_its_guard_lives() {
        let wants = Wants::new();
        let changed = wants.watch();
        let a = wants.add_seek(700);
        let b = wants.add_seek(5);
        let c = wants.add_seek(700);
        assert!(changed.has_changed().unwrap());
        assert_eq!(wants.seeks(), vec![5, 700]);
        drop(a);
        assert_eq!(wants.seeks(), vec![5, 700]);
        drop(c);
        drop(b);
        assert!(wants.seeks().is_empty());
    }
}
