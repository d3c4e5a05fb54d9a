//! What a sparse replica wants from its peers (JS hypercore's `sparse` cores, whose
//! `get` and `download` ask the replicator for blocks): ranges of blocks that reads
//! and downloads registered, byte offsets that waiting seeks registered (JS
//! `replicator.addSeek`), which replication sessions request, and a clock of blocks
//! (and tree nodes) applied from peers, which waiting readers watch.
//!
//! A full replica (the default) wants every block; its sessions do not read this. The
//! ranges live in memory only: a want belongs to a read or a download in progress.
//!
//! Must not: request anything itself (the sessions do), or know about peers.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

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

    /// Registers `range` until the returned guard drops.
    pub(super) fn add(self: &Arc<Self>, range: Range<u64>) -> Download {
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

/// Blocks a sparse replica asks its peers for, while this guard lives (see
/// [`ManagedCore::download`](super::ManagedCore::download)). Dropping it withdraws
/// the range; requests already sent still complete.
#[derive(Debug)]
pub struct Download {
    wants: Arc<Wants>,
    id: u64,
    range: Range<u64>,
}

impl Download {
    /// The blocks asked for.
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.wants.lock().by_id.remove(&self.id);
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
    use super::*;

    #[test]
    fn a_range_is_wanted_while_its_guard_lives_and_sessions_hear_of_it() {
        let wants = Wants::new();
        let changed = wants.watch();
        let a = wants.add(5..10);
        let b = wants.add(100..101);
        assert!(changed.has_changed().unwrap());
        assert_eq!(wants.ranges(), vec![5..10, 100..101]);
        drop(a);
        assert_eq!(wants.ranges(), vec![100..101]);
        assert_eq!(b.range(), 100..101);
        drop(b);
        assert!(wants.ranges().is_empty());
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
