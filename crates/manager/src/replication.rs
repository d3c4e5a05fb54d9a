//! The manager's side of replication: which logs are shared, what sessions report, and
//! `replication-state.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nova_hypercore_managed_core::ManagedCore;
use nova_hypercore_replication::{LogSource, SessionEvent};
use nova_hypercore_serialization::{Direction, LogName, ReplicationStatus};
use tracing::warn;

use crate::events::ManagerEvent;
use crate::log::ManagedLog;
use crate::manager::Shared;
use crate::replication_state::{self, ReplicationState};

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Default, Clone)]
struct LogReplication {
    remote_lengths: BTreeMap<String, u64>,
    active_peers: u64,
    bytes_transferred: u64,
}

/// Shortest time between two writes of `replication-state.json` while sessions run
/// (a connection's end and the manager's close write at once).
pub(crate) const PERSIST_INTERVAL: Duration = Duration::from_secs(1);

/// Whether `replication-state.json` is behind memory, and when it was last written.
#[derive(Debug, Default)]
struct Persisting {
    dirty: bool,
    /// A delayed write is on its way.
    scheduled: bool,
    last: Option<Instant>,
}

/// Shared logs and their live replication figures.
#[derive(Debug)]
pub(crate) struct Hub {
    enabled: Mutex<HashMap<[u8; 32], (ManagedLog, ManagedCore)>>,
    status: Mutex<HashMap<[u8; 32], LogReplication>>,
    state: Mutex<ReplicationState>,
    state_file: PathBuf,
    persisting: Mutex<Persisting>,
    /// Held while the file is written (one writer at a time: they share a temp file).
    writing: Mutex<()>,
    /// Times `replication-state.json` was written by this hub.
    pub(crate) state_writes: AtomicU64,
    /// Wire counters of every session this manager ran.
    pub(crate) stats: Arc<nova_hypercore_replication::Stats>,
    /// Bumped whenever the set of shared logs changes (sessions open new channels).
    changes: tokio::sync::watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    pub(crate) fn new(state_file: PathBuf, state: ReplicationState) -> Self {
        Hub {
            enabled: Mutex::new(HashMap::new()),
            status: Mutex::new(HashMap::new()),
            state: Mutex::new(state),
            state_file,
            persisting: Mutex::new(Persisting::default()),
            writing: Mutex::new(()),
            state_writes: AtomicU64::new(0),
            stats: Arc::new(nova_hypercore_replication::Stats::default()),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    pub(crate) fn load_state(&self, state: ReplicationState) {
        *lock(&self.state) = state;
    }

    pub(crate) fn enable(&self, log: ManagedLog, core: ManagedCore) {
        lock(&self.enabled).insert(log.discovery_key(), (log, core));
        self.changes.send_modify(|g| *g += 1);
    }

    pub(crate) fn disable(&self, discovery_key: &[u8; 32]) -> Option<ManagedLog> {
        let removed = lock(&self.enabled).remove(discovery_key).map(|(l, _)| l);
        self.changes.send_modify(|g| *g += 1);
        removed
    }

    pub(crate) fn enabled_keys(&self) -> Vec<[u8; 32]> {
        lock(&self.enabled).keys().copied().collect()
    }

    pub(crate) fn any_enabled(&self) -> bool {
        !lock(&self.enabled).is_empty()
    }

    fn name_of(&self, discovery_key: &[u8; 32]) -> Option<LogName> {
        lock(&self.enabled)
            .get(discovery_key)
            .map(|(l, _)| l.name().clone())
    }

    pub(crate) fn status(&self, log: &ManagedLog) -> ReplicationStatus {
        let r = lock(&self.status)
            .get(&log.discovery_key())
            .cloned()
            .unwrap_or_default();
        ReplicationStatus {
            log_name: log.name().to_string(),
            local_length: log.length(),
            remote_lengths: r.remote_lengths,
            active_peers: r.active_peers,
            bytes_transferred: r.bytes_transferred,
        }
    }

    /// Forgets a deleted log: its confirmed lengths (written with the next
    /// [`persist`](Self::persist)) and its live figures.
    pub(crate) fn forget(&self, log: &str, discovery_key: Option<&[u8; 32]>) {
        if let Some(dk) = discovery_key {
            lock(&self.status).remove(dk);
        }
        if lock(&self.state).logs.remove(log).is_some() {
            lock(&self.persisting).dirty = true;
        }
    }

    /// The last length confirmed in sync with `peer` (hex), as persisted.
    pub(crate) fn confirmed(&self, log: &str, peer: &str) -> Option<u64> {
        lock(&self.state).logs.get(log)?.get(peer).copied()
    }

    fn confirm(&self, log: &LogName, peer: &str, length: u64) -> bool {
        let mut state = lock(&self.state);
        let entry = state.logs.entry(log.to_string()).or_default();
        let old = entry.insert(peer.to_owned(), length);
        // A peer id is the connection's handshake key, new for every connection: without
        // a bound, every reconnect would add an entry for good (the file would grow
        // until it no longer loads). The least informative entries go first.
        while entry.len() > replication_state::MAX_PEERS_PER_LOG {
            let smallest = entry
                .iter()
                .filter(|(p, _)| p.as_str() != peer)
                .min_by_key(|(_, len)| **len)
                .map(|(p, _)| p.clone());
            match smallest {
                Some(p) => entry.remove(&p),
                None => break,
            };
        }
        old != Some(length)
    }

    /// Records `min(what we hold, what the peer has)` as confirmed with `peer`. Returns
    /// true when that caught up with the peer's length (a good moment to persist).
    fn confirm_with(&self, dk: &[u8; 32], name: &LogName, peer: &str, contiguous: u64) -> bool {
        let remote = lock(&self.status)
            .get(dk)
            .and_then(|s| s.remote_lengths.get(peer).copied());
        let Some(remote) = remote else { return false };
        let confirmed = contiguous.min(remote);
        let changed = self.confirm(name, peer, confirmed);
        if changed {
            // Written with the next write at the latest (a connection's end, close).
            lock(&self.persisting).dirty = true;
        }
        changed && confirmed == remote
    }

    /// Asks for the state to be written: at once if the last write is
    /// [`PERSIST_INTERVAL`] old, else once that much time has passed (one write for
    /// everything confirmed meanwhile). The write runs on the blocking pool.
    fn request_persist(self: &Arc<Self>) {
        let wait = {
            let mut p = lock(&self.persisting);
            p.dirty = true;
            if p.scheduled {
                return;
            }
            p.scheduled = true;
            p.last.map_or(Duration::ZERO, |t| {
                PERSIST_INTERVAL.saturating_sub(t.elapsed())
            })
        };
        let hub = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = tokio::task::spawn_blocking(move || hub.write_if_dirty()).await;
                });
            }
            Err(_) => hub.write_if_dirty(),
        }
    }

    /// Writes the state now if memory is ahead of the file (a connection ended, the
    /// manager closes), on the blocking pool.
    pub(crate) async fn persist(self: &Arc<Self>) {
        let hub = self.clone();
        let _ = tokio::task::spawn_blocking(move || hub.write_if_dirty()).await;
    }

    /// Writes the current state if it changed since the last write (blocking).
    fn write_if_dirty(&self) {
        let _one_writer = lock(&self.writing);
        let snapshot = {
            let mut p = lock(&self.persisting);
            p.scheduled = false;
            if !p.dirty {
                return;
            }
            p.dirty = false;
            p.last = Some(Instant::now());
            lock(&self.state).clone()
        };
        self.state_writes.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = replication_state::save(&self.state_file, &snapshot) {
            lock(&self.persisting).dirty = true;
            warn!(error = %e, "cannot persist replication state");
        }
    }

    /// Turns a session event into manager events, metrics and persisted state.
    pub(crate) fn observe(self: &Arc<Self>, shared: &Shared, event: &SessionEvent) {
        let Some(dk) = event_key(event) else { return };
        let Some(name) = self.name_of(dk) else { return };
        let contiguous = lock(&self.enabled)
            .get(dk)
            .map(|(_, core)| core.watch_progress().borrow().contiguous_length)
            .unwrap_or(0);
        if let SessionEvent::Received { .. } | SessionEvent::Truncated { .. } = event {
            // Stored blocks count in the log's and the store's byte size.
            let pair = lock(&self.enabled).get(dk).cloned();
            if let Some((log, core)) = pair {
                log.observe(&core);
            }
        }
        match event {
            SessionEvent::PeerConnected { peer, .. } => {
                lock(&self.status).entry(*dk).or_default().active_peers += 1;
                shared.obs.peer_connected(true);
                shared.emit(ManagerEvent::PeerConnect {
                    log_name: name,
                    peer_id: hex(peer),
                });
            }
            SessionEvent::PeerDisconnected { peer, .. } => {
                {
                    let mut status = lock(&self.status);
                    let s = status.entry(*dk).or_default();
                    s.active_peers = s.active_peers.saturating_sub(1);
                }
                shared.obs.peer_connected(false);
                self.confirm_with(dk, &name, &hex(peer), contiguous);
                // Live status lists connected peers only (ids are per connection, so a
                // gone peer's entry would never be updated again).
                if let Some(s) = lock(&self.status).get_mut(dk) {
                    s.remote_lengths.remove(&hex(peer));
                }
                self.request_persist();
                shared.emit(ManagerEvent::PeerDisconnect {
                    log_name: name,
                    peer_id: hex(peer),
                });
            }
            SessionEvent::RemoteLength { peer, length, .. } => {
                let peer = hex(peer);
                lock(&self.status)
                    .entry(*dk)
                    .or_default()
                    .remote_lengths
                    .insert(peer.clone(), *length);
                if self.confirm_with(dk, &name, &peer, contiguous) {
                    self.request_persist();
                }
            }
            SessionEvent::Received { peer, bytes, .. } | SessionEvent::Sent { peer, bytes, .. } => {
                let direction = if matches!(event, SessionEvent::Received { .. }) {
                    Direction::Receive
                } else {
                    Direction::Send
                };
                lock(&self.status).entry(*dk).or_default().bytes_transferred += bytes;
                let peer = hex(peer);
                if direction == Direction::Receive
                    && self.confirm_with(dk, &name, &peer, contiguous)
                {
                    self.request_persist();
                }
                shared
                    .obs
                    .record_replicate(name.as_str(), &peer, direction, *bytes);
                shared.emit(ManagerEvent::Replicate {
                    log_name: name,
                    peer_id: peer,
                    direction,
                    bytes: *bytes,
                });
            }
            SessionEvent::Rejected { peer, reason, .. } => {
                let error = nova_hypercore_serialization::HypercoreError::ReplicationFailed {
                    log: name.to_string(),
                    reason: format!("peer {} sent data that was refused: {reason}", hex(peer)),
                };
                shared.report_error(name.as_str(), &error);
            }
            // The peer does not share this log: nothing to count or persist.
            SessionEvent::Refused { peer, .. } => {
                tracing::debug!(log = %name, peer = %hex(peer), "peer refused the channel");
            }
            SessionEvent::TooLargeToSend { seq, bytes, .. } => {
                let error = nova_hypercore_serialization::HypercoreError::PayloadTooLarge {
                    log: format!("{name} (block {seq} cannot be replicated)"),
                    size: *bytes,
                    limit: nova_hypercore_replication::MAX_WIRE_BLOCK,
                };
                shared.report_error(name.as_str(), &error);
            }
            SessionEvent::Truncated {
                kept, length, fork, ..
            } => {
                self.request_persist();
                shared.emit(ManagerEvent::Truncate {
                    log_name: name,
                    kept: *kept,
                    length: *length,
                    fork: *fork,
                });
            }
            // As a local read of the damaged block reports it (marked missing there too).
            SessionEvent::DamagedNotSent { path, reason, .. } => {
                let error = nova_hypercore_serialization::HypercoreError::StorageCorrupted {
                    log: name.to_string(),
                    path: path.clone(),
                    reason: reason.clone(),
                };
                shared.report_error(name.as_str(), &error);
            }
        }
    }
}

fn event_key(event: &SessionEvent) -> Option<&[u8; 32]> {
    Some(match event {
        SessionEvent::PeerConnected { discovery_key, .. }
        | SessionEvent::PeerDisconnected { discovery_key, .. }
        | SessionEvent::RemoteLength { discovery_key, .. }
        | SessionEvent::Received { discovery_key, .. }
        | SessionEvent::Sent { discovery_key, .. }
        | SessionEvent::Rejected { discovery_key, .. }
        | SessionEvent::Refused { discovery_key, .. }
        | SessionEvent::TooLargeToSend { discovery_key, .. }
        | SessionEvent::DamagedNotSent { discovery_key, .. }
        | SessionEvent::Truncated { discovery_key, .. } => discovery_key,
    })
}

/// The logs a session may share: exactly the enabled ones.
#[derive(Debug, Clone)]
pub(crate) struct HubSource(pub(crate) Arc<Hub>);

impl LogSource for HubSource {
    fn announced(&self) -> Vec<ManagedCore> {
        lock(&self.0.enabled)
            .values()
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn lookup(&self, discovery_key: &[u8; 32]) -> Option<ManagedCore> {
        lock(&self.0.enabled)
            .get(discovery_key)
            .map(|(_, c)| c.clone())
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.0.changes.subscribe())
    }
}
