//! [`ManagedLog`]: the handle `get_log` returns, and the pool that caps open logs (their
//! files obey the store's `FileBudget` on top).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use nova_hypercore_managed_core::encryption::{EncryptionKey, PADDING};
use nova_hypercore_managed_core::{
    Cleared, CoreFormat, ManagedCore, OpenOptions, SigningKey, Unsynced,
};
use nova_hypercore_serialization::{HypercoreError, LogName};
use tracing::debug;

use crate::events::ManagerEvent;
use crate::manager::Shared;

type Result<T, E = HypercoreError> = std::result::Result<T, E>;

/// Logs currently open, to close the least recently used beyond the cap.
#[derive(Debug)]
pub(crate) struct Pool {
    cap: usize,
    open: Mutex<Vec<Weak<LogEntry>>>,
    clock: AtomicU64,
}

impl Pool {
    pub(crate) fn new(cap: usize) -> Self {
        Pool {
            cap: cap.max(1),
            open: Mutex::new(Vec::new()),
            clock: AtomicU64::new(0),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn open_count(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// `entry` just opened its files: remember it and pick victims beyond the cap.
    fn opened(&self, entry: &Arc<LogEntry>) -> Vec<Arc<LogEntry>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|w| w.strong_count() > 0 && !Weak::ptr_eq(w, &Arc::downgrade(entry)));
        open.push(Arc::downgrade(entry));
        let excess = open.len().saturating_sub(self.cap);
        if excess == 0 {
            return Vec::new();
        }
        let mut candidates: Vec<Arc<LogEntry>> = open
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|e| !Arc::ptr_eq(e, entry) && !e.pinned.load(Ordering::Acquire))
            .collect();
        candidates.sort_by_key(|e| e.last_used.load(Ordering::Relaxed));
        candidates.truncate(excess);
        candidates
    }

    fn closed(&self, entry: &LogEntry) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|w| w.upgrade().is_some_and(|e| !std::ptr::eq(&*e, entry)));
    }
}

/// The key a log is opened with: ours (writable, in the format it is created with) or
/// a peer's core key (a replica, legacy or manifest core: the core finds out).
#[derive(Debug, Clone)]
pub(crate) enum LogKey {
    Secret(SigningKey, CoreFormat),
    /// A replica by core key; `true`: sparse ([`ReplicaOptions::sparse`]).
    Core([u8; 32], bool),
}

/// How a replica is opened ([`crate::HypercoreManager::open_replica_with`]); stored
/// with the replica, so a later `open_replica` (after a restart too) opens it the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaOptions {
    /// Download only what is read ([`ManagedLog::get_with`] with `wait`) or asked for
    /// ([`ManagedLog::download`]), not every block (the default: a full replica, the
    /// spec's behaviour).
    pub sparse: bool,
}

impl ReplicaOptions {
    /// A sparse replica.
    pub fn sparse() -> Self {
        ReplicaOptions { sparse: true }
    }

    /// A full replica (the default), e.g. to turn a sparse replica into a full one
    /// from its next open.
    pub fn full() -> Self {
        ReplicaOptions { sparse: false }
    }
}

/// How a read treats a block this replica does not hold ([`ManagedLog::get_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetOptions {
    /// Wait for the block to arrive from a peer (a sparse replica asks for it); when
    /// `false` a block not held here is `REPLICATION_FAILED` at once.
    pub wait: bool,
    /// How long to wait before `REPLICATION_FAILED` (naming the log and seq).
    pub timeout: std::time::Duration,
}

impl Default for GetOptions {
    /// Wait, up to 10 seconds.
    fn default() -> Self {
        GetOptions {
            wait: true,
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl GetOptions {
    /// Do not wait.
    pub fn no_wait() -> Self {
        GetOptions {
            wait: false,
            ..Self::default()
        }
    }

    /// Wait up to `timeout`.
    pub fn timeout(timeout: std::time::Duration) -> Self {
        GetOptions {
            wait: true,
            timeout,
        }
    }
}

impl LogKey {
    /// The core key: what names the log on the wire and in the store.
    pub(crate) fn core_key(&self) -> [u8; 32] {
        match self {
            LogKey::Secret(k, format) => core_key(k, *format),
            LogKey::Core(k, _) => *k,
        }
    }
}

/// The core key of a log signed by `key` in `format`: the ed25519 key itself (legacy),
/// or its default manifest's hash (v1).
pub(crate) fn core_key(key: &SigningKey, format: CoreFormat) -> [u8; 32] {
    let public = key.verifying_key().to_bytes();
    match format {
        CoreFormat::Legacy => public,
        CoreFormat::V1 => nova_hypercore_managed_core::manifest::default_core_key(&public),
    }
}

#[derive(Debug)]
pub(crate) struct LogEntry {
    name: LogName,
    dir: PathBuf,
    key: LogKey,
    public_key: [u8; 32],
    /// Pinned logs keep their files open (replication sessions hold them).
    pinned: AtomicBool,
    discovery_key: [u8; 32],
    core: tokio::sync::Mutex<Option<ManagedCore>>,
    /// Files the pool's evictions left written but not synced ([`ManagedCore::evict`]:
    /// in `Flush` an eviction neither checkpoints nor syncs), synced by
    /// [`ManagedLog::close`] (the store's close). Paths only, at most five.
    unsynced: Mutex<Unsynced>,
    last_used: AtomicU64,
    length: AtomicU64,
    byte_length: AtomicU64,
    closed: AtomicBool,
    shared: Arc<Shared>,
    /// The key its blocks are encrypted with, held in memory only (never stored).
    encryption: Option<EncryptionKey>,
    /// The log's directory carries the mark of an encrypted log
    /// (`crate::encryption_mark`): without the key it refuses appends.
    marked_encrypted: AtomicBool,
}

/// One named log of a [`crate::HypercoreManager`]. A cheap `Clone` handle; every
/// `get_log` for the same name returns a handle to the same log (`same_log` is true).
///
/// The log is opened on first use and may be closed again when more than
/// `max_open_logs` logs are in use (it reopens transparently); its files are opened
/// and closed on demand under the store's `max_open_files`. Appends, reads and
/// errors through a handle are recorded in the manager's metrics and events exactly like
/// the manager's own `append`/`read` (which use this handle).
#[derive(Debug, Clone)]
pub struct ManagedLog {
    entry: Arc<LogEntry>,
}

impl ManagedLog {
    pub(crate) async fn open(
        shared: Arc<Shared>,
        name: LogName,
        dir: PathBuf,
        key: LogKey,
        encryption: Option<EncryptionKey>,
    ) -> Result<Self> {
        let public_key = key.core_key();
        let log = ManagedLog {
            entry: Arc::new(LogEntry {
                discovery_key: nova_hypercore_managed_core::discovery_key(&public_key),
                name,
                dir,
                key,
                public_key,
                pinned: AtomicBool::new(false),
                core: tokio::sync::Mutex::new(None),
                unsynced: Mutex::new(Unsynced::default()),
                last_used: AtomicU64::new(0),
                length: AtomicU64::new(0),
                byte_length: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                shared,
                encryption,
                marked_encrypted: AtomicBool::new(false),
            }),
        };
        // Open once now: creates the log on disk and checks its files and key.
        log.core().await?;
        Ok(log)
    }

    /// Whether the log was opened with an encryption key
    /// ([`crate::HypercoreManager::get_log_encrypted`],
    /// [`crate::HypercoreManager::open_replica_encrypted`]): its appends store
    /// ciphertext and its reads decrypt. A replica of an encrypted log opened without
    /// the key (a seeder) is not: it holds, verifies and serves the ciphertext, and its
    /// reads return it.
    pub fn is_encrypted(&self) -> bool {
        self.entry.encryption.is_some()
    }

    /// The encryption key the log was opened with.
    pub(crate) fn encryption(&self) -> Option<&EncryptionKey> {
        self.entry.encryption.as_ref()
    }

    /// Records whether the log's directory is marked encrypted.
    pub(crate) fn set_marked_encrypted(&self, marked: bool) {
        self.entry.marked_encrypted.store(marked, Ordering::Release);
    }

    /// Whether two handles refer to the same log instance.
    pub fn same_log(&self, other: &ManagedLog) -> bool {
        Arc::ptr_eq(&self.entry, &other.entry)
    }

    /// The log's name.
    pub fn name(&self) -> &LogName {
        &self.entry.name
    }

    /// The directory holding the log's files.
    pub fn path(&self) -> &Path {
        &self.entry.dir
    }

    /// The core key: what names the log on the wire (its discovery key derives from
    /// it) and what `open_replica` takes. For a legacy log it is the signer's ed25519
    /// key; for a v1 log the hash of its manifest.
    pub fn public_key(&self) -> [u8; 32] {
        self.entry.public_key
    }

    /// The discovery key.
    pub fn discovery_key(&self) -> [u8; 32] {
        self.entry.discovery_key
    }

    /// Number of blocks (as of the last operation).
    pub fn length(&self) -> u64 {
        self.entry.length.load(Ordering::Acquire)
    }

    /// Sum of block sizes in bytes (as of the last operation).
    pub fn byte_length(&self) -> u64 {
        self.entry.byte_length.load(Ordering::Acquire)
    }

    /// The fork id: 0 until the log's writer first truncated it (see
    /// [`truncate`](Self::truncate)).
    pub async fn fork(&self) -> Result<u64> {
        let result = self.with_core(|core| async move { Ok(core.fork()) }).await;
        self.report(result)
    }

    /// How many entries of the log as it was at fork `since` are unchanged now (see
    /// `ManagedCore::kept_since`): a reader that consumed entries `0..n` at fork
    /// `since` must take entries from `min(n, kept_since(since))` on again.
    pub async fn kept_since(&self, since: u64) -> Result<u64> {
        let result = self
            .with_core(|core| async move { core.kept_since(since).await })
            .await;
        self.report(result)
    }

    /// Whether the log was closed for good (its manager closed).
    pub fn is_closed(&self) -> bool {
        self.entry.closed.load(Ordering::Acquire)
    }

    /// Whether its files are open right now (false after the pool closed them).
    pub async fn is_open(&self) -> bool {
        self.entry.core.lock().await.is_some()
    }

    /// The open core, opening the files if needed (and closing the least recently used
    /// other logs beyond the cap).
    async fn core(&self) -> Result<ManagedCore> {
        let e = &self.entry;
        e.last_used.store(e.shared.pool.tick(), Ordering::Relaxed);
        let mut slot = e.core.lock().await;
        if e.closed.load(Ordering::Acquire) {
            return Err(HypercoreError::Closed {
                log: e.name.to_string(),
            });
        }
        if let Some(core) = slot.as_ref() {
            return Ok(core.clone());
        }
        let options = OpenOptions::new()
            .durability(e.shared.config.durability)
            .file_budget(e.shared.files.clone());
        let options = match &e.key {
            LogKey::Secret(k, format) => options.signing_key(k.clone()).format(*format),
            LogKey::Core(k, sparse) => options.core_key(*k).sparse(*sparse),
        };
        let options = match &e.encryption {
            Some(key) => options.encryption_key(key.clone()),
            None => options,
        };
        // Opening reads and checks the files and may sync them: blocking work, done on
        // the blocking pool so the async threads stay free.
        let (dir, name, rt) = (
            e.dir.clone(),
            e.name.clone(),
            tokio::runtime::Handle::current(),
        );
        let core = tokio::task::spawn_blocking(move || {
            rt.block_on(ManagedCore::open(&dir, name, options))
        })
        .await
        .map_err(|join| HypercoreError::StorageInaccessible {
            path: e.dir.clone(),
            source: std::io::Error::other(join.to_string()),
        })??;
        self.observe(&core);
        *slot = Some(core.clone());
        drop(slot);
        debug!(log = %e.name, "log files opened");
        for victim in e.shared.pool.opened(&self.entry) {
            // Busy logs are skipped: they are in use right now, so not least recent.
            if let Ok(mut victim_slot) = victim.core.try_lock()
                && let Some(core) = victim_slot.take()
            {
                // Not the store's close: in `Flush` neither a checkpoint nor a sync
                // (`ManagedCore::evict`; the checkpoint and close cost 6 `fdatasync`s).
                // What it left unsynced is synced when the store closes (`close`
                // below): `Flush` promises durability from a clean close on, and the
                // store's close is that. The fsync modes close as before.
                if let Ok(unsynced) = core.evict().await {
                    victim
                        .unsynced
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .merge(unsynced);
                }
                e.shared.pool.closed(&victim);
                debug!(log = %victim.name, "log files closed (open-log cap)");
            }
        }
        Ok(core)
    }

    /// Takes the core's length and byte length (whoever made it grow: an append here,
    /// or blocks a replication session stored) and adds the growth to the store's
    /// total byte size, exactly once per byte.
    pub(crate) fn observe(&self, core: &ManagedCore) {
        self.entry.length.store(core.length(), Ordering::Release);
        let now = core.byte_length();
        let before = self.entry.byte_length.fetch_max(now, Ordering::AcqRel);
        if now > before {
            self.entry.shared.obs.add_total_byte_size(now - before);
        }
    }

    /// Catches up with growth a replication session stored but has not reported yet
    /// (its `Received` event may still be on its way): observes the open core without
    /// waiting for it. A busy or closed core is skipped; its next event observes it.
    pub(crate) fn refresh(&self) {
        if let Ok(slot) = self.entry.core.try_lock()
            && let Some(core) = slot.as_ref()
        {
            self.observe(core);
        }
    }

    /// Runs `op` on the open core; if the pool closed the files in between, reopens once.
    async fn with_core<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(ManagedCore) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut retried = false;
        loop {
            let core = self.core().await?;
            match op(core.clone()).await {
                Err(HypercoreError::Closed { .. }) if !retried && !self.is_closed() => {
                    retried = true;
                }
                other => {
                    self.observe(&core);
                    return other;
                }
            }
        }
    }

    fn report<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.entry.shared.report_error(self.entry.name.as_str(), e);
        }
        result
    }

    fn check_size(&self, size: usize) -> Result<()> {
        let mut limit = self.entry.shared.config.max_payload_bytes;
        if self.is_encrypted() {
            // The stored block is the padding longer, and must still fit the wire.
            limit = limit.min(crate::MAX_PAYLOAD_LIMIT - PADDING as u64);
        }
        if size as u64 > limit {
            return Err(HypercoreError::PayloadTooLarge {
                log: self.entry.name.to_string(),
                size: size as u64,
                limit,
            });
        }
        Ok(())
    }

    /// Appends one payload; returns its sequence number. `PAYLOAD_TOO_LARGE` above the
    /// manager's `max_payload_bytes` (nothing is written).
    pub async fn append(&self, data: &[u8]) -> Result<u64> {
        Ok(self.append_batch(&[data]).await?.start)
    }

    /// Appends payloads as one signed batch; all or nothing for the size check.
    ///
    /// An encrypted log (its directory marked so when it was first opened with its
    /// key) opened without the key refuses appends with `UNAUTHORIZED`: they would
    /// store and serve plaintext in it.
    pub async fn append_batch<B: AsRef<[u8]> + Sync>(&self, batch: &[B]) -> Result<Range<u64>> {
        let result = async {
            if self.entry.encryption.is_none()
                && self.entry.marked_encrypted.load(Ordering::Acquire)
            {
                return Err(HypercoreError::Unauthorized {
                    log: Some(self.entry.name.to_string()),
                    reason: format!(
                        "log {} is encrypted: append with its encryption key (opened without it, the entry would be stored and served unencrypted)",
                        self.entry.name
                    ),
                });
            }
            for payload in batch {
                self.check_size(payload.as_ref().len())?;
            }
            self.with_core(|core| async move { core.append_batch(batch).await })
                .await
        }
        .await;
        let seqs = self.report(result)?;
        let shared = &self.entry.shared;
        let bytes: u64 = batch.iter().map(|b| b.as_ref().len() as u64).sum();
        let count = seqs.end - seqs.start;
        if count > 0 {
            shared
                .obs
                .record_append_batch(self.entry.name.as_str(), seqs.start, count, bytes);
        }
        for (seq, payload) in seqs.clone().zip(batch) {
            shared.emit(ManagerEvent::Append {
                log_name: self.entry.name.clone(),
                seq,
                byte_length: payload.as_ref().len() as u64,
            });
        }
        Ok(seqs)
    }

    /// Truncates our own log to its first `new_length` entries under a new fork (JS
    /// `core.truncate(newLength)`), and returns the fork id. Entries `new_length..`
    /// are retracted: reads of them fail with `OUT_OF_RANGE` until the log grows
    /// again, and replicas that follow the log drop them. A
    /// [`ManagerEvent::Truncate`] reaches subscribers. Durable when this returns.
    ///
    /// Errors: `UNAUTHORIZED` for a replica; `OUT_OF_RANGE` past the length.
    pub async fn truncate(&self, new_length: u64) -> Result<u64> {
        let result = self
            .with_core(|core| async move { core.truncate(new_length).await })
            .await;
        let fork = self.report(result)?;
        self.entry.shared.emit(ManagerEvent::Truncate {
            log_name: self.entry.name.clone(),
            kept: new_length,
            length: new_length,
            fork,
        });
        Ok(fork)
    }

    /// Reads block `seq`, verified against the signed tree.
    pub async fn get(&self, seq: u64) -> Result<Vec<u8>> {
        let result = self
            .with_core(|core| async move { core.get(seq).await })
            .await;
        let value = self.report(result)?;
        self.entry
            .shared
            .obs
            .record_read(self.entry.name.as_str(), seq, value.len() as u64);
        Ok(value)
    }

    /// Reads block `seq` as [`get`](Self::get) does, and for a block this replica does
    /// not hold (or past its length) waits for it from its peers as `options` say (a
    /// sparse replica asks them for it). A block that does not come in time, or is not
    /// held when `wait` is false, is `REPLICATION_FAILED`
    /// ([`HypercoreError::BlockUnavailable`](nova_hypercore_serialization::HypercoreError::BlockUnavailable),
    /// with the log and seq); a seq past the length with `wait` false is `OUT_OF_RANGE`.
    pub async fn get_with(&self, seq: u64, options: GetOptions) -> Result<Vec<u8>> {
        if !options.wait {
            return self.get(seq).await;
        }
        let result = self
            .with_core(|core| async move { core.get_waiting(seq, options.timeout).await })
            .await;
        let value = self.report(result)?;
        self.entry
            .shared
            .obs
            .record_read(self.entry.name.as_str(), seq, value.len() as u64);
        Ok(value)
    }

    /// The block holding byte `bytes` of the log's concatenated payload and the byte's
    /// offset inside it, `(seq, offset)` (JS `core.seek(bytes, {wait, timeout})`;
    /// `bytes == byte_length` is `(length, 0)` as in JS). A sparse replica that lacks
    /// the tree nodes under the byte asks its peers to prove them (seek requests, no
    /// block values) when `options.wait` is set, for up to `options.timeout`; then, or
    /// at once without `wait`, the error is `REPLICATION_FAILED`
    /// ([`HypercoreError::BlockUnavailable`](nova_hypercore_serialization::HypercoreError::BlockUnavailable)).
    /// Past the byte length: `OUT_OF_RANGE`
    /// ([`HypercoreError::ByteOutOfRange`](nova_hypercore_serialization::HypercoreError::ByteOutOfRange),
    /// with the byte length), after waiting for the log to grow when `wait` is set.
    pub async fn seek(&self, bytes: u64, options: GetOptions) -> Result<(u64, u64)> {
        let result = self
            .with_core(|core| async move {
                if options.wait {
                    core.seek_waiting(bytes, options.timeout).await
                } else {
                    core.seek(bytes).await
                }
            })
            .await;
        self.report(result)
    }

    /// Reads blocks `[start, end)` as [`get_range`](Self::get_range) does, waiting for
    /// the ones not held as [`get_with`](Self::get_with) does: a sparse replica asks
    /// its peers for the whole range at once; `options.timeout` bounds the whole read.
    pub async fn get_range_with(
        &self,
        start: u64,
        end: u64,
        options: GetOptions,
    ) -> Result<Vec<Vec<u8>>> {
        if !options.wait {
            return self.get_range(start, end).await;
        }
        if start > end {
            return self.get_range(start, end).await;
        }
        let deadline = tokio::time::Instant::now() + options.timeout;
        let result = self
            .with_core(|core| async move {
                let _want = core.download(start..end);
                let mut out = Vec::new();
                for seq in start..end {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    out.push(core.get_waiting(seq, left).await?);
                }
                Ok(out)
            })
            .await;
        self.report(result)
    }

    /// Asks this sparse replica's peers for blocks `range` while the returned guard
    /// lives (a full replica fetches everything anyway). The guard tells how much of
    /// the range is stored ([`Download::progress`](nova_hypercore_managed_core::Download::progress);
    /// for the UI, `HypercoreManager::download_range_progress`), resolves when all of
    /// it is ([`Download::done`](nova_hypercore_managed_core::Download::done)), and
    /// stops asking peers when cancelled
    /// ([`Download::cancel`](nova_hypercore_managed_core::Download::cancel)) or
    /// dropped. The log must be open for replication (its files stay open while it is
    /// enabled).
    pub async fn download(
        &self,
        range: std::ops::Range<u64>,
    ) -> Result<nova_hypercore_managed_core::Download> {
        let result = self
            .with_core(|core| {
                let range = range.clone();
                async move { Ok(core.download(range)) }
            })
            .await;
        self.report(result)
    }

    /// How many blocks of `range` (clipped to the length) are stored here.
    pub async fn has_range(&self, range: std::ops::Range<u64>) -> Result<u64> {
        let result = self
            .with_core(|core| {
                let range = range.clone();
                async move { core.has_range(range).await }
            })
            .await;
        self.report(result)
    }

    /// Whether this replica downloads only what is asked for ([`ReplicaOptions`]).
    pub fn is_sparse(&self) -> bool {
        matches!(self.entry.key, LogKey::Core(_, true))
    }

    /// Reads blocks `[start, end)`, each verified, in order.
    pub async fn get_range(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let result = self
            .with_core(|core| async move { core.get_range(start, end).await })
            .await;
        let values = self.report(result)?;
        if !values.is_empty() {
            let bytes = values.iter().map(|v| v.len() as u64).sum();
            self.entry.shared.obs.record_read_range(
                self.entry.name.as_str(),
                start,
                values.len() as u64,
                bytes,
            );
        }
        Ok(values)
    }

    /// Checks block `seq` against the signed tree (`false`: the stored block was altered).
    pub async fn verify_signature(&self, seq: u64) -> Result<bool> {
        let result = self
            .with_core(|core| async move { core.verify_signature(seq).await })
            .await;
        self.report(result)
    }

    /// The current length, opening the files if needed.
    pub async fn current_length(&self) -> Result<u64> {
        let result = self
            .with_core(|core| async move { Ok(core.length()) })
            .await;
        self.report(result)
    }

    /// Follows how much of the log is here (length, contiguous length), e.g. while a
    /// replica downloads: `have = contiguous_length`, `total = length`.
    pub async fn watch_progress(
        &self,
    ) -> Result<tokio::sync::watch::Receiver<nova_hypercore_managed_core::Progress>> {
        let result = self
            .with_core(|core| async move { Ok(core.watch_progress()) })
            .await;
        self.report(result)
    }

    /// Whether this process can append to the log (false for replicas of peers' logs).
    pub fn is_writable(&self) -> bool {
        matches!(self.entry.key, LogKey::Secret(..))
    }

    /// The log's format: `None` for a replica that has not learnt it from a peer yet
    /// (opened by core key, no manifest or verified upgrade received).
    pub async fn format(&self) -> Result<Option<CoreFormat>> {
        let result = self
            .with_core(|core| async move { Ok(core.format()) })
            .await;
        self.report(result)
    }

    /// Drops blocks `range` from local storage, our own log's or a replica's (JS
    /// hypercore `clear(start, end)`; managed-core's `ManagedCore::clear`): the log keeps
    /// its length and stays verifiable, reads of those blocks are `REPLICATION_FAILED`
    /// until a peer sends them again (a full replica's sessions ask at once, a sparse
    /// replica's when a read wants them), and their bytes are given back to the
    /// filesystem where it can punch holes (see [`Cleared`]). An empty range does
    /// nothing; a reversed one or one past the length is `OUT_OF_RANGE`.
    pub async fn clear(&self, range: Range<u64>) -> Result<Cleared> {
        let result = self
            .with_core(|core| {
                let range = range.clone();
                async move { core.clear(range).await }
            })
            .await;
        self.report(result)
    }

    /// Bytes the filesystem allocated to this log's files (`st_blocks * 512`: what a
    /// [`clear`](Self::clear) gives back shows here, unlike in the files' lengths).
    pub async fn disk_usage(&self) -> Result<u64> {
        let dir = self.entry.dir.clone();
        let result = crate::manager::blocking(&self.entry.dir, move || {
            crate::manager::allocated_bytes(&dir).map_err(|source| {
                HypercoreError::StorageInaccessible {
                    path: dir.clone(),
                    source,
                }
            })
        })
        .await;
        self.report(result)
    }

    /// The open core, kept open until [`unpin`](Self::unpin) (for replication sessions).
    pub(crate) async fn pin(&self) -> Result<ManagedCore> {
        self.entry.pinned.store(true, Ordering::Release);
        self.core().await
    }

    /// Lets the open-log cap close this log again.
    pub(crate) fn unpin(&self) {
        self.entry.pinned.store(false, Ordering::Release);
    }

    /// Closes for good: syncs and closes the files (those an eviction left unsynced
    /// first); later calls fail with "closed".
    pub(crate) async fn close(&self) -> Result<()> {
        let mut slot = self.entry.core.lock().await;
        self.entry.closed.store(true, Ordering::Release);
        let evicted = std::mem::take(
            &mut *self
                .entry
                .unsynced
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let synced = evicted.sync().await;
        let result = match slot.take() {
            Some(core) => core.close().await,
            None => Ok(()),
        };
        drop(slot);
        self.entry.shared.pool.closed(&self.entry);
        synced.and(result)
    }
}
