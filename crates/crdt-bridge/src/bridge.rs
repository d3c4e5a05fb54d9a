//! [`CrdtBridge`]: broadcast CRDT updates on this peer's log, deliver every writer's
//! updates to the handlers exactly once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use nova_hypercore_manager::{HypercoreManager, ManagedLog, ManagerEvent};
use nova_hypercore_serialization::{
    CRDTUpdateEntry, ErrorCode, HypercoreError, LogName, MAX_SAFE_INTEGER, deserialize, serialize,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use crate::clock::{VectorClock, merge};
use crate::state::{self, BridgeState, Position};

type Result<T, E = HypercoreError> = std::result::Result<T, E>;

/// The log the spec's CRDT bridge writes by default.
pub const DEFAULT_LOG: &str = "crdt-collab";

/// Hex digits of a writer's public key in the local name of its replica.
pub const REPLICA_KEY_HEX: usize = 16;

/// Entries read per `get_range` while delivering; the delivered position is persisted
/// after each such chunk.
const CHUNK: u64 = 256;

type Handler = Arc<dyn Fn(&CRDTUpdateEntry, Origin) + Send + Sync>;

/// Where a delivered entry is stored: the writer's log (its public key) and the entry's
/// seq in it. Given to [`CrdtBridge::on_delivery`] handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The public key of the log the entry is in (ours, or a followed writer's).
    pub writer: [u8; 32],
    /// The entry's seq in that log.
    pub seq: u64,
}

/// One writer's log: ours or a followed peer's replica.
#[derive(Debug, Clone)]
struct Source {
    log: ManagedLog,
    delivered: u64,
    /// The log's fork `delivered` counts entries of.
    fork: u64,
}

#[derive(Default)]
struct Handlers {
    next_id: u64,
    by_id: BTreeMap<u64, Handler>,
}

/// Everything the bridge's handles, subscriptions and tasks share.
struct Inner {
    manager: HypercoreManager,
    own: ManagedLog,
    state_path: PathBuf,
    /// Writer public key (hex) to its log and delivered position; ours included.
    sources: Mutex<BTreeMap<String, Source>>,
    /// Merge of every delivered entry's clock and every clock we broadcast.
    clock: Mutex<VectorClock>,
    handlers: Mutex<Handlers>,
    /// Held for one broadcast (clock step + append), so our log's clocks grow in order.
    writer: tokio::sync::Mutex<()>,
    /// Held for one delivery pass and for every change of `sources` (and its persisting).
    delivery: tokio::sync::Mutex<()>,
    /// Something may be deliverable: a log grew, a handler or a log was added.
    wake: Notify,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdtBridge")
            .field("log", self.own.name())
            .field("state_path", &self.state_path)
            .finish_non_exhaustive()
    }
}

/// Aborts the bridge's tasks when the last bridge handle goes.
#[derive(Debug)]
struct Tasks(Arc<Inner>);

impl Drop for Tasks {
    fn drop(&mut self) {
        self.0.abort_tasks();
    }
}

/// The spec's `CRDTBridge`: CRDT updates, stamped with a timestamp and a vector clock
/// ([`CRDTUpdateEntry`]), appended to this peer's collaboration log and delivered, with
/// the updates of every followed peer, to the [`on_update`](Self::on_update) handlers.
///
/// A hypercore log has one writer, so each peer appends to its own log (`crdt-collab`
/// by default) and follows the other peers' logs as read-only replicas named
/// `<log>-<first 16 hex of the writer's key>` ([`follow`](Self::follow)). Both kinds
/// are shared for replication; connect the managers (`listen` / `connect`, or a swarm)
/// to exchange them.
///
/// Delivery: every handler gets every entry (ours and every followed writer's) exactly
/// once, each writer's entries in log order, called one at a time from the bridge's
/// task. Delivery runs while at least one handler is registered (entries wait, they are
/// not dropped, while none is). How far each log was delivered is persisted in
/// `crdt-bridge-<log>.json` in the store's root, so a reopened bridge delivers only what
/// is new. A delivered entry from a peer also raises the manager's `crdt-update` event
/// with the update's bytes. An entry that does not decode is skipped with a
/// `DESERIALIZATION_FAILED` error (log and seq) and delivery goes on.
///
/// A cheap `Clone` handle. Open one bridge per log and manager (two would deliver
/// twice and race on the state file). Uses the manager's public API only.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use nova_hypercore_crdt_bridge::CrdtBridge;
/// use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let manager = HypercoreManager::new(ManagerConfig::builder().storage_path(dir.path()).build()?)?;
/// manager.initialize().await?;
/// let bridge = CrdtBridge::open(&manager).await?;
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// let _subscription = bridge.on_update(move |entry| { let _ = tx.send(entry.clone()); });
/// let seq = bridge.broadcast(b"yjs update", "alice").await?;
/// let entry = rx.recv().await.ok_or("no delivery")?;
/// assert_eq!((seq, entry.payload.as_slice()), (0, &b"yjs update"[..]));
/// assert_eq!(entry.causal_clock["alice"], 1);
/// bridge.close().await?;
/// manager.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct CrdtBridge {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

/// A registered [`CrdtBridge::on_update`] handler. Dropping it (or calling
/// [`unsubscribe`](Self::unsubscribe)) removes the handler; an entry being delivered
/// right then may still reach it, no later one does.
#[derive(Debug)]
#[must_use = "the handler is removed when the subscription is dropped"]
pub struct Subscription {
    inner: Weak<Inner>,
    id: u64,
}

impl Subscription {
    /// Removes the handler (the spec's returned `() => void`).
    pub fn unsubscribe(self) {
        drop(self);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.handlers().by_id.remove(&self.id);
        }
    }
}

impl CrdtBridge {
    /// The bridge on the default log, [`DEFAULT_LOG`] (`crdt-collab`).
    pub async fn open(manager: &HypercoreManager) -> Result<Self> {
        Self::open_log(manager, DEFAULT_LOG).await
    }

    /// The bridge on this peer's log `log_name` (created on first use, writable).
    ///
    /// Enables replication of it and of every writer followed before (from
    /// `crdt-bridge-<log>.json`), recovers the vector clock from the logs (every clock in
    /// our log, and in each followed log up to its delivered position), then follows
    /// all of them. Must be called inside a tokio runtime.
    ///
    /// Errors: those of [`HypercoreManager::get_log`] / `open_replica` /
    /// `enable_replication` and of reading the logs; `STORAGE_CORRUPTED` for a state
    /// file that does not parse.
    pub async fn open_log(manager: &HypercoreManager, log_name: &str) -> Result<Self> {
        let own = manager.get_log(log_name).await?;
        manager.enable_replication(log_name).await?;
        let state_path = state::path(manager.storage_path(), own.name().as_str());
        let saved = {
            let (path, name) = (state_path.clone(), own.name().to_string());
            tokio::task::spawn_blocking(move || state::load(&path, &name))
                .await
                .map_err(|e| join_error(own.name().as_str(), e))??
        };
        let own_key = state::hex(&own.public_key());
        let mut sources = BTreeMap::new();
        for (key, position) in saved.logs {
            let log = if key == own_key {
                own.clone()
            } else {
                let public_key = state::parse_key(&key).ok_or_else(|| corrupt_key(&own, &key))?;
                let replica = manager.open_replica(&position.log_name, public_key).await?;
                manager.enable_replication(&position.log_name).await?;
                replica
            };
            sources.insert(
                key,
                Source {
                    log,
                    delivered: position.delivered,
                    fork: position.fork,
                },
            );
        }
        sources.entry(own_key).or_insert_with(|| Source {
            log: own.clone(),
            delivered: 0,
            fork: 0,
        });
        let inner = Arc::new(Inner {
            manager: manager.clone(),
            own,
            state_path,
            sources: Mutex::new(sources),
            clock: Mutex::new(VectorClock::new()),
            handlers: Mutex::new(Handlers::default()),
            writer: tokio::sync::Mutex::new(()),
            delivery: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            tasks: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        inner.recover_clock().await?;
        let logs: Vec<ManagedLog> = inner.sources().values().map(|s| s.log.clone()).collect();
        for log in logs {
            inner.watch(log);
        }
        let deliverer = tokio::spawn(Arc::clone(&inner).deliver_forever());
        inner.tasks().push(deliverer);
        Ok(CrdtBridge {
            _tasks: Arc::new(Tasks(Arc::clone(&inner))),
            inner,
        })
    }

    /// This peer's log (the one [`broadcast`](Self::broadcast) appends to).
    pub fn log_name(&self) -> &LogName {
        self.inner.own.name()
    }

    /// This peer's writer key: what other peers pass to [`follow`](Self::follow).
    pub fn public_key(&self) -> [u8; 32] {
        self.inner.own.public_key()
    }

    /// The local name of the replica of writer `public_key`'s log:
    /// `<log>-<first 16 hex of the key>`.
    pub fn replica_name(&self, public_key: &[u8; 32]) -> String {
        replica_name(self.inner.own.name(), public_key)
    }

    /// Follows the writer with `public_key` (another peer's bridge on the same log
    /// name): opens its log as a replica ([`replica_name`](Self::replica_name)),
    /// enables its replication and delivers its entries from the start. Remembered in
    /// the state file, so a reopened bridge follows it again. Following a writer twice
    /// is a no-op; returns the replica's log name.
    ///
    /// Errors: `UNAUTHORIZED` for our own key, for a key that is not an ed25519 key, or
    /// when the replica name would exceed 64 bytes (log names up to 47 bytes fit); the
    /// manager's errors; `IO_ERROR` if the state file cannot be written.
    pub async fn follow(&self, public_key: [u8; 32]) -> Result<LogName> {
        let inner = &self.inner;
        inner.check_open()?;
        if public_key == inner.own.public_key() {
            return Err(HypercoreError::Unauthorized {
                log: Some(inner.own.name().to_string()),
                reason: "a bridge does not follow its own log".into(),
            });
        }
        let key = state::hex(&public_key);
        let _delivery = inner.delivery.lock().await;
        if let Some(source) = inner.sources().get(&key) {
            return Ok(source.log.name().clone());
        }
        let name = self.replica_name(&public_key);
        let log = inner.manager.open_replica(&name, public_key).await?;
        inner.manager.enable_replication(&name).await?;
        inner.sources().insert(
            key,
            Source {
                log: log.clone(),
                delivered: 0,
                fork: 0,
            },
        );
        inner.persist().await?;
        inner.watch(log.clone());
        inner.wake.notify_one();
        debug!(log = %inner.own.name(), replica = %name, "following a CRDT writer");
        Ok(log.name().clone())
    }

    /// The writers followed, by public key, with their local log names (ours included).
    pub fn writers(&self) -> BTreeMap<[u8; 32], LogName> {
        self.inner
            .sources()
            .values()
            .map(|s| (s.log.public_key(), s.log.name().clone()))
            .collect()
    }

    /// Wraps `update` in a [`CRDTUpdateEntry`] (`source_id`, the current time in ms, and
    /// the vector clock: this bridge's merged clock with `source_id`'s counter
    /// incremented) and appends it to this peer's log; returns its seq.
    ///
    /// The clock dominates the clock of every entry delivered before the call, so an
    /// update made after seeing another is ordered after it. `source_id` names one
    /// writer (a replica / client id): two peers must not broadcast with the same one.
    ///
    /// Errors: the manager's append errors (`PAYLOAD_TOO_LARGE` for an entry whose JSON
    /// frame is over the limit, closed, I/O); `STORAGE_INACCESSIBLE` after
    /// [`close`](Self::close).
    pub async fn broadcast(&self, update: &[u8], source_id: &str) -> Result<u64> {
        let inner = &self.inner;
        inner.check_open()?;
        let _writer = inner.writer.lock().await;
        let mut clock = inner.clock().clone();
        let counter = clock.entry(source_id.to_owned()).or_insert(0);
        *counter = counter.saturating_add(1);
        let entry = CRDTUpdateEntry {
            source_id: source_id.to_owned(),
            timestamp: now_ms(),
            causal_clock: clock.clone(),
            payload: update.to_vec(),
        };
        let bytes = serialize(&entry)?;
        let seq = inner.own.append(&bytes).await?;
        merge(&mut inner.clock(), &clock);
        Ok(seq)
    }

    /// Registers `handler` for every entry delivered from now on (ours and every
    /// followed writer's); returns the [`Subscription`] that removes it on drop.
    ///
    /// Handlers run one at a time on the bridge's task: keep them short and
    /// non-blocking (send to a channel for heavy work). A handler that panics is
    /// reported (`tracing` error) and the entry counts as delivered to it.
    pub fn on_update<F>(&self, handler: F) -> Subscription
    where
        F: Fn(&CRDTUpdateEntry) + Send + Sync + 'static,
    {
        self.on_delivery(move |entry, _| handler(entry))
    }

    /// [`on_update`](Self::on_update) with each entry's [`Origin`] (writer key and
    /// seq): what a caller that forwards entries elsewhere (the Tauri plugin's
    /// `crdt_subscribe`) needs to name them. Same delivery guarantees.
    pub fn on_delivery<F>(&self, handler: F) -> Subscription
    where
        F: Fn(&CRDTUpdateEntry, Origin) + Send + Sync + 'static,
    {
        let mut handlers = self.inner.handlers();
        let id = handlers.next_id;
        handlers.next_id += 1;
        handlers.by_id.insert(id, Arc::new(handler));
        drop(handlers);
        self.inner.wake.notify_one();
        Subscription {
            inner: Arc::downgrade(&self.inner),
            id,
        }
    }

    /// The bridge's current vector clock (what the next broadcast builds on).
    pub fn clock(&self) -> VectorClock {
        self.inner.clock().clone()
    }

    /// Entries `0..n` of each writer's log that were delivered, by public key.
    pub fn delivered(&self) -> BTreeMap<[u8; 32], u64> {
        self.inner
            .sources()
            .values()
            .map(|s| (s.log.public_key(), s.delivered))
            .collect()
    }

    /// Stops delivering (after the entry in hand), persists the delivered positions and
    /// stops the bridge's tasks; later broadcasts and follows are
    /// `STORAGE_INACCESSIBLE`. Close the bridge before its manager so nothing delivered
    /// is delivered again on reopen (a crash may repeat the last chunk of up to 256
    /// entries per log: the position is written after its chunk is handed out).
    pub async fn close(&self) -> Result<()> {
        let inner = &self.inner;
        let _delivery = inner.delivery.lock().await;
        if inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        inner.abort_tasks();
        inner.persist().await
    }
}

/// `<log>-<first 16 hex of public_key>`.
pub(crate) fn replica_name(log: &LogName, public_key: &[u8; 32]) -> String {
    let hex = state::hex(public_key);
    format!("{log}-{}", &hex[..REPLICA_KEY_HEX])
}

impl Inner {
    fn sources(&self) -> MutexGuard<'_, BTreeMap<String, Source>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn clock(&self) -> MutexGuard<'_, VectorClock> {
        self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handlers(&self) -> MutexGuard<'_, Handlers> {
        self.handlers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn abort_tasks(&self) {
        for task in self.tasks().drain(..) {
            task.abort();
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(HypercoreError::Closed {
                log: format!("CRDT bridge on {}", self.own.name()),
            });
        }
        Ok(())
    }

    /// Wakes the deliverer whenever `log` grows (until the log's progress watch ends:
    /// the manager closed; shared logs are pinned, the open-file cap leaves them open).
    fn watch(self: &Arc<Self>, log: ManagedLog) {
        let inner = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let Ok(mut progress) = log.watch_progress().await else {
                return;
            };
            loop {
                match inner.upgrade() {
                    Some(inner) => inner.wake.notify_one(),
                    None => return,
                }
                if progress.changed().await.is_err() {
                    return;
                }
            }
        });
        self.tasks().push(task);
    }

    /// The clock after a restart: every clock in our log, and in each followed log up to
    /// its delivered position (what was seen before). Undecodable entries add nothing.
    async fn recover_clock(&self) -> Result<()> {
        let sources: Vec<Source> = self.sources().values().cloned().collect();
        let mut clock = VectorClock::new();
        for source in sources {
            let end = if source.log.same_log(&self.own) {
                source.log.current_length().await?
            } else {
                source.delivered.min(available(&source.log).await?)
            };
            let mut from = 0;
            while from < end {
                let to = end.min(from + CHUNK);
                for bytes in source.log.get_range(from, to).await? {
                    if let Ok(entry) = deserialize::<CRDTUpdateEntry>(&bytes) {
                        merge(&mut clock, &entry.causal_clock);
                    }
                }
                from = to;
            }
        }
        debug!(log = %self.own.name(), ?clock, "CRDT clock recovered from the logs");
        *self.clock() = clock;
        Ok(())
    }

    /// Writes the delivered positions (the caller holds `delivery`).
    async fn persist(&self) -> Result<()> {
        let state = BridgeState {
            version: state::VERSION,
            logs: self
                .sources()
                .iter()
                .map(|(key, s)| {
                    let position = Position {
                        log_name: s.log.name().to_string(),
                        delivered: s.delivered,
                        fork: s.fork,
                    };
                    (key.clone(), position)
                })
                .collect(),
        };
        let (path, name) = (self.state_path.clone(), self.own.name().to_string());
        tokio::task::spawn_blocking(move || state::store(&path, &name, &state))
            .await
            .map_err(|e| join_error(self.own.name().as_str(), e))?
    }

    /// The deliverer: one pass whenever woken, until aborted (close, last handle
    /// dropped) or the manager closes.
    async fn deliver_forever(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            if let Err(e) = self.deliver_pending().await {
                if self.own.is_closed() {
                    return;
                }
                warn!(log = %self.own.name(), %e, "CRDT delivery pass failed; retried on the next change");
            }
        }
    }

    /// Delivers whatever is available and not yet delivered, log by log, in log order.
    async fn deliver_pending(&self) -> Result<()> {
        let _delivery = self.delivery.lock().await;
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let sources: Vec<(String, Source)> = self
            .sources()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        for (key, source) in sources {
            let remote = !source.log.same_log(&self.own);
            let writer = source.log.public_key();
            let mut from = source.delivered;
            let fork = source.log.fork().await?;
            if fork != source.fork {
                // The writer truncated: entries from the cut on are new ones (those
                // delivered before stay applied: an update cannot be taken back).
                from = from.min(source.log.kept_since(source.fork).await?);
                if let Some(s) = self.sources().get_mut(&key) {
                    s.delivered = from;
                    s.fork = fork;
                }
                warn!(log = %source.log.name(), fork, from, "CRDT writer truncated its log: delivering its new entries");
                self.persist().await?;
            }
            let end = available(&source.log).await?;
            while from < end {
                let handlers: Vec<Handler> = self.handlers().by_id.values().cloned().collect();
                if handlers.is_empty() {
                    return Ok(()); // entries wait for a handler
                }
                let to = end.min(from + CHUNK);
                for (seq, block) in (from..).zip(read_blocks(&source.log, from, to).await?) {
                    let entry = block.and_then(|b| {
                        deserialize::<CRDTUpdateEntry>(&b)
                            .map_err(|e| e.at_entry(source.log.name().as_str(), seq))
                    });
                    // Counted before the handlers run, so `delivered()` covers what
                    // a handler has seen.
                    if let Some(s) = self.sources().get_mut(&key) {
                        s.delivered = seq + 1;
                    }
                    match entry {
                        Ok(entry) => {
                            let origin = Origin { writer, seq };
                            self.deliver(&entry, remote, origin, &handlers)
                        }
                        Err(e) => self.report(source.log.name(), &e),
                    }
                }
                from = to;
                self.persist().await?;
            }
        }
        Ok(())
    }

    fn deliver(&self, entry: &CRDTUpdateEntry, remote: bool, origin: Origin, handlers: &[Handler]) {
        merge(&mut self.clock(), &entry.causal_clock);
        for handler in handlers {
            // A panicking handler must not stop delivery to the others (or later).
            let call = std::panic::AssertUnwindSafe(|| handler(entry, origin));
            if std::panic::catch_unwind(call).is_err() {
                error!(log = %self.own.name(), source_id = %entry.source_id, "a CRDT update handler panicked; delivery goes on");
            }
        }
        if remote {
            self.manager.emit(ManagerEvent::CrdtUpdate {
                payload: entry.payload.clone(),
            });
        }
    }

    /// A skipped entry: a `tracing` warning; for a decoding failure also an
    /// observability error record and a manager `error` event (`health-warning` past
    /// the threshold). Failed reads were already recorded by the manager.
    fn report(&self, log: &LogName, error: &HypercoreError) {
        if error.code() == ErrorCode::DeserializationFailed {
            let warning = self
                .manager
                .observability()
                .record_error(log.as_str(), error);
            self.manager.emit(ManagerEvent::Error {
                log_name: log.to_string(),
                error: error.to_payload(),
            });
            if let Some(w) = warning {
                self.manager.emit(ManagerEvent::HealthWarning {
                    log_name: w.log_name,
                    error_count: w.error_count,
                });
            }
        }
        warn!(log = %log, seq = error.seq(), code = %error.code(), %error, "CRDT entry skipped");
    }
}

/// Entries stored here from the start (a replica may know of more than it holds).
async fn available(log: &ManagedLog) -> Result<u64> {
    Ok(log.watch_progress().await?.borrow().contiguous_length)
}

/// Blocks `from..to`; a block that fails verification is returned as its error (the
/// others still delivered), any other failure ends the pass.
async fn read_blocks(log: &ManagedLog, from: u64, to: u64) -> Result<Vec<Result<Vec<u8>>>> {
    match log.get_range(from, to).await {
        Ok(blocks) => Ok(blocks.into_iter().map(Ok).collect()),
        Err(e) if unreadable_block(&e) => {
            let mut blocks = Vec::new();
            for seq in from..to {
                blocks.push(match log.get(seq).await {
                    Ok(b) => Ok(b),
                    Err(e) if unreadable_block(&e) => Err(e),
                    Err(e) => return Err(e),
                });
            }
            Ok(blocks)
        }
        Err(e) => Err(e),
    }
}

fn now_ms() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    u64::try_from(ms).unwrap_or(u64::MAX).min(MAX_SAFE_INTEGER)
}

fn join_error(log: &str, e: tokio::task::JoinError) -> HypercoreError {
    HypercoreError::Io {
        log: log.to_owned(),
        operation: "CRDT bridge state file".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn corrupt_key(own: &ManagedLog, key: &str) -> HypercoreError {
    HypercoreError::StorageCorrupted {
        log: own.name().to_string(),
        path: own.path().to_owned(),
        reason: format!("{key:?} is not a 64-hex public key"),
    }
}

/// A block that fails verification (`SIGNATURE_INVALID`) or whose stored bytes are
/// damaged (`STORAGE_CORRUPTED`, the block then marked missing for repair): reported for
/// that block, the others still read. So is a block of an encrypted log that does not
/// decrypt (`DESERIALIZATION_FAILED` naming its seq: shorter than the padding).
fn unreadable_block(e: &HypercoreError) -> bool {
    matches!(
        e.code(),
        ErrorCode::SignatureInvalid | ErrorCode::StorageCorrupted
    ) || matches!(
        e,
        HypercoreError::DeserializationFailed { seq: Some(_), .. }
    )
}
