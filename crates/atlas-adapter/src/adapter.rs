//! [`AtlasMemoryAdapter`]: store, index and query ATLAS memory nodes on one log.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use nova_hypercore_manager::{GetOptions, HypercoreManager, ManagedLog, ManagerEvent};
use nova_hypercore_serialization::{
    ErrorCode, ErrorPayload, HypercoreError, LogName, MemoryNodeEntry, deserialize, serialize,
};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::index::MemoryIndex;
use crate::sparse::SparseQueryOptions;

type Result<T, E = HypercoreError> = std::result::Result<T, E>;

/// The log the spec's ATLAS adapter writes by default.
pub const DEFAULT_LOG: &str = "atlas-memory";

/// Blocks read per `get_range` while indexing (one verified range read each).
pub(crate) const READ_CHUNK: u64 = 1024;

/// What the index covers: the index itself, the entries left out of it, and how far
/// into the log it has read.
#[derive(Debug, Default)]
struct State {
    index: MemoryIndex,
    /// Entries in `0..indexed` that are not in the index, with the reason.
    skipped: BTreeMap<u64, ErrorPayload>,
    /// Blocks `0..indexed` have been looked at.
    indexed: u64,
}

/// Everything the adapter's handles and its follower task share.
#[derive(Debug)]
pub(crate) struct Indexer {
    manager: HypercoreManager,
    pub(crate) log: ManagedLog,
    state: Mutex<State>,
    /// Serializes everything that changes the index (stores, catch-up, rebuild), so
    /// entries go in strictly in log order. Held across reads of the log.
    writer: tokio::sync::Mutex<()>,
    indexed_tx: watch::Sender<u64>,
}

/// Aborts the follower task when the last adapter handle goes.
#[derive(Debug)]
struct Follower(JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The spec's `ATLASMemoryAdapter`: ATLAS memory nodes ([`MemoryNodeEntry`]) stored in
/// one log of a [`HypercoreManager`], found again by time range, agent or category
/// through an in-memory [`MemoryIndex`].
///
/// On open the index is rebuilt from the log (no checkpoint file: the log is the only
/// truth, and 100,000 nodes index in well under a second, see `docs/benchmarks.md`).
/// Afterwards it follows the log: nodes stored through any adapter, and blocks that
/// arrive by replication on a replica, are indexed as they land (the log's progress
/// watch, no polling). An entry that does not decode is reported
/// (`DESERIALIZATION_FAILED` naming the seq, as a manager `error` event too), left out
/// of the index and never breaks a query.
///
/// A cheap `Clone` handle; clones share one index. Uses the manager's public API only.
///
/// ```
/// use nova_hypercore_atlas_adapter::AtlasMemoryAdapter;
/// use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
/// use nova_hypercore_serialization::MemoryNodeEntry;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let manager = HypercoreManager::new(ManagerConfig::builder().storage_path(dir.path()).build()?)?;
/// manager.initialize().await?;
/// let atlas = AtlasMemoryAdapter::open(&manager).await?;
/// let node = MemoryNodeEntry {
///     id: "n-1".into(),
///     agent_source: "atlas".into(),
///     category: "fact".into(),
///     content: "logs are append-only".into(),
///     tags: vec![],
///     importance: 0.5,
///     timestamp: 1_764_000_000_000,
/// };
/// let seq = atlas.store_node(&node).await?;
/// assert_eq!(atlas.query_by_agent("atlas").await?, vec![node.clone()]);
/// assert_eq!(atlas.query_by_time_range(node.timestamp, node.timestamp).await?, vec![node]);
/// assert_eq!(atlas.get_index().by_agent["atlas"], vec![seq]);
/// manager.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct AtlasMemoryAdapter {
    inner: Arc<Indexer>,
    _follower: Arc<Follower>,
}

impl AtlasMemoryAdapter {
    /// The adapter on the default log, [`DEFAULT_LOG`] (`atlas-memory`).
    pub async fn open(manager: &HypercoreManager) -> Result<Self> {
        Self::open_log(manager, DEFAULT_LOG).await
    }

    /// The adapter on log `log_name`: indexes the whole log, then follows it.
    ///
    /// For a replica of a peer's ATLAS log, open the replica first
    /// ([`HypercoreManager::open_replica`]) and enable its replication; this then finds
    /// it by name (otherwise a new writable log of that name is created).
    ///
    /// Must be called inside a tokio runtime (the follower is a spawned task).
    ///
    /// Errors: those of [`HypercoreManager::get_log`] and of reading the log.
    pub async fn open_log(manager: &HypercoreManager, log_name: &str) -> Result<Self> {
        let log = manager.get_log(log_name).await?;
        let (indexed_tx, _) = watch::channel(0);
        let inner = Arc::new(Indexer {
            manager: manager.clone(),
            log,
            state: Mutex::new(State::default()),
            writer: tokio::sync::Mutex::new(()),
            indexed_tx,
        });
        let events = manager.subscribe();
        let started = std::time::Instant::now();
        inner.catch_up(inner.available().await?).await?;
        debug!(
            log = %inner.log.name(),
            entries = inner.state().index.total_entries,
            ms = started.elapsed().as_millis() as u64,
            "ATLAS index built from the log"
        );
        let follower = tokio::spawn(Arc::clone(&inner).follow(events));
        Ok(AtlasMemoryAdapter {
            inner,
            _follower: Arc::new(Follower(follower)),
        })
    }

    /// The log this adapter stores to and indexes.
    pub fn log_name(&self) -> &LogName {
        self.inner.log.name()
    }

    /// Validates `node` (the schema's rules, with `garde`), appends it serialized
    /// (length-prefixed JSON) and indexes it; returns its seq.
    ///
    /// Errors: `DESERIALIZATION_FAILED` naming the field for a node that fails
    /// validation (nothing is written); `UNAUTHORIZED` on a replica (read-only); the
    /// manager's append errors (`PAYLOAD_TOO_LARGE`, closed, I/O).
    pub async fn store_node(&self, node: &MemoryNodeEntry) -> Result<u64> {
        let bytes = serialize(node)?;
        let _writer = self.inner.writer.lock().await;
        let seq = self.inner.log.append(&bytes).await?;
        self.inner
            .insert_stored(seq, std::slice::from_ref(node))
            .await?;
        Ok(seq)
    }

    /// Stores `nodes` as one signed batch (all validated first: one invalid node and
    /// nothing is written); returns their seqs.
    pub async fn store_nodes(&self, nodes: &[MemoryNodeEntry]) -> Result<Range<u64>> {
        let frames = nodes.iter().map(serialize).collect::<Result<Vec<_>>>()?;
        let _writer = self.inner.writer.lock().await;
        let seqs = self.inner.log.append_batch(&frames).await?;
        self.inner.insert_stored(seqs.start, nodes).await?;
        Ok(seqs)
    }

    /// Every node with `start <= timestamp <= end`, by timestamp (ties in log order).
    /// Empty if `start > end`.
    ///
    /// On our own log or a full replica: the indexed nodes; visits only the index
    /// buckets overlapping the range and reads (verified) only their entries. On a
    /// sparse replica ([`ManagedLog::is_sparse`]): searches the log's known length for
    /// the range and fetches only the entries around it, waiting for peers, with
    /// [`SparseQueryOptions::default`] (see
    /// [`query_by_time_range_with`](Self::query_by_time_range_with)).
    pub async fn query_by_time_range(&self, start: u64, end: u64) -> Result<Vec<MemoryNodeEntry>> {
        self.query_by_time_range_with(start, end, SparseQueryOptions::default())
            .await
    }

    /// [`query_by_time_range`](Self::query_by_time_range) with the options of a sparse
    /// replica's search (ignored on our own log and on a full replica).
    ///
    /// On a sparse replica the answer is over the length it knows now (a fresh replica
    /// that has not heard from a peer knows none: wait for the length first, with
    /// [`ManagedLog::watch_progress`]). It is exact when the log keeps the skew bound
    /// ([`SparseQueryOptions::skew_ms`]; see the `sparse` module documentation for what
    /// a log that breaks it costs); it costs about `2 log2(length)` single-block reads
    /// plus the entries within the skew of the range. Offline, a block that is needed
    /// and not held is `REPLICATION_FAILED` naming the log and seq once the read's
    /// timeout passes (at once with [`GetOptions::no_wait`]): never a partial answer.
    pub async fn query_by_time_range_with(
        &self,
        start: u64,
        end: u64,
        options: SparseQueryOptions,
    ) -> Result<Vec<MemoryNodeEntry>> {
        let mut nodes = if self.inner.log.is_sparse() {
            self.inner.sparse_time_range(start, end, options).await?
        } else {
            let seqs = self.inner.state().index.time_candidates(start, end);
            self.inner
                .read_nodes(&seqs)
                .await?
                .into_iter()
                .filter(|n| (start..=end).contains(&n.timestamp))
                .collect()
        };
        nodes.sort_by_key(|n| n.timestamp);
        Ok(nodes)
    }

    /// Every node of `agent_source` with `start <= timestamp <= end`, by timestamp
    /// (ties in log order): [`query_by_time_range_with`](Self::query_by_time_range_with)
    /// filtered, so on a sparse replica it costs what the time query costs.
    pub async fn query_by_agent_in_time_range(
        &self,
        agent_source: &str,
        start: u64,
        end: u64,
        options: SparseQueryOptions,
    ) -> Result<Vec<MemoryNodeEntry>> {
        let mut nodes = self.query_by_time_range_with(start, end, options).await?;
        nodes.retain(|n| n.agent_source == agent_source);
        Ok(nodes)
    }

    /// Every indexed node whose `agentSource` is `agent_source`, in log order. On a
    /// sparse replica the index covers only the blocks held from the start
    /// ([`indexed_length`](Self::indexed_length)); bound the query in time there
    /// ([`query_by_agent_in_time_range`](Self::query_by_agent_in_time_range)).
    pub async fn query_by_agent(&self, agent_source: &str) -> Result<Vec<MemoryNodeEntry>> {
        let seqs = self.inner.state().index.agent_seqs(agent_source).to_vec();
        self.inner.read_nodes(&seqs).await
    }

    /// Every indexed node whose `category` is `category`, in log order (on a sparse
    /// replica, of the blocks held from the start, as for
    /// [`query_by_agent`](Self::query_by_agent)).
    pub async fn query_by_category(&self, category: &str) -> Result<Vec<MemoryNodeEntry>> {
        let seqs = self.inner.state().index.category_seqs(category).to_vec();
        self.inner.read_nodes(&seqs).await
    }

    /// Nodes `offset..offset + limit` of [`query_by_agent`](Self::query_by_agent)'s
    /// answer (log order), and how many nodes the whole answer has. Reads only the
    /// page's entries, so paging through a large answer costs one read of each node.
    pub async fn query_by_agent_page(
        &self,
        agent_source: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<MemoryNodeEntry>, usize)> {
        let (seqs, total) = {
            let state = self.inner.state();
            let all = state.index.agent_seqs(agent_source);
            (page(all, offset, limit), all.len())
        };
        Ok((self.inner.read_nodes(&seqs).await?, total))
    }

    /// Nodes `offset..offset + limit` of
    /// [`query_by_category`](Self::query_by_category)'s answer (log order), and how many
    /// nodes the whole answer has; as [`query_by_agent_page`](Self::query_by_agent_page).
    pub async fn query_by_category_page(
        &self,
        category: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<MemoryNodeEntry>, usize)> {
        let (seqs, total) = {
            let state = self.inner.state();
            let all = state.index.category_seqs(category);
            (page(all, offset, limit), all.len())
        };
        Ok((self.inner.read_nodes(&seqs).await?, total))
    }

    /// A copy of the index as it is now.
    pub fn get_index(&self) -> MemoryIndex {
        self.inner.state().index.clone()
    }

    /// Throws the index away and builds it again from the log (every block available
    /// locally, read and verified); returns the new index. Entries that do not decode
    /// are reported again.
    pub async fn rebuild_index(&self) -> Result<MemoryIndex> {
        self.inner.rebuild().await
    }

    /// Blocks `0..indexed_length()` of the log have been indexed (or skipped).
    pub fn indexed_length(&self) -> u64 {
        self.inner.state().indexed
    }

    /// Waits until blocks `0..length` are indexed (for example, until nodes a peer
    /// stored have arrived here). Put a timeout around it: on a replica it waits for
    /// the network.
    pub async fn wait_indexed(&self, length: u64) {
        let mut rx = self.inner.indexed_tx.subscribe();
        // The sender lives in `self.inner`, so `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|indexed| *indexed >= length).await;
    }

    /// Entries left out of the index, by seq, with the reason (`DESERIALIZATION_FAILED`
    /// for bytes that are not a valid node).
    pub fn skipped(&self) -> BTreeMap<u64, ErrorPayload> {
        self.inner.state().skipped.clone()
    }
}

impl Indexer {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks stored here from the start (a replica may know of more than it has).
    async fn available(&self) -> Result<u64> {
        Ok(self.log.watch_progress().await?.borrow().contiguous_length)
    }

    /// Indexes `nodes`, just appended at `first..` by the caller (holding `writer`),
    /// after any entries others appended before them.
    async fn insert_stored(&self, first: u64, nodes: &[MemoryNodeEntry]) -> Result<()> {
        self.catch_up_locked(first).await?;
        let end = first + nodes.len() as u64;
        let mut state = self.state();
        for (seq, node) in (first..).zip(nodes) {
            state.index.insert(seq, node);
        }
        state.indexed = end;
        drop(state);
        self.indexed_tx.send_replace(end);
        Ok(())
    }

    /// Indexes blocks up to `target` (exclusive) that are not indexed yet.
    /// A fresh index of blocks `0..available` (replacing the current one).
    async fn rebuild(&self) -> Result<MemoryIndex> {
        let _writer = self.writer.lock().await;
        let target = self.available().await?;
        let mut fresh = State::default();
        self.index_into(&mut fresh, target).await?;
        let index = fresh.index.clone();
        *self.state() = fresh;
        self.indexed_tx.send_replace(target);
        Ok(index)
    }

    async fn catch_up(&self, target: u64) -> Result<()> {
        let _writer = self.writer.lock().await;
        self.catch_up_locked(target).await
    }

    async fn catch_up_locked(&self, target: u64) -> Result<()> {
        loop {
            let from = self.state().indexed;
            if from >= target {
                return Ok(());
            }
            let to = target.min(from + READ_CHUNK);
            let entries = self.decode_range(from, to, None).await?;
            let mut state = self.state();
            apply(&mut state, entries);
            state.indexed = to;
            drop(state);
            self.indexed_tx.send_replace(to);
        }
    }

    /// Indexes blocks `state.indexed..target` into `state` (not the shared one).
    async fn index_into(&self, state: &mut State, target: u64) -> Result<()> {
        while state.indexed < target {
            let to = target.min(state.indexed + READ_CHUNK);
            let entries = self.decode_range(state.indexed, to, None).await?;
            apply(state, entries);
            state.indexed = to;
        }
        Ok(())
    }

    /// Reads and decodes blocks `from..to` (with `wait`: waiting for blocks not held, as
    /// [`ManagedLog::get_range_with`] does); an entry that cannot be read or decoded is
    /// reported and returned as its error.
    pub(crate) async fn decode_range(
        &self,
        from: u64,
        to: u64,
        wait: Option<GetOptions>,
    ) -> Result<Vec<(u64, Result<MemoryNodeEntry, ErrorPayload>)>> {
        let read = match wait {
            Some(options) => self.log.get_range_with(from, to, options).await,
            None => self.log.get_range(from, to).await,
        };
        let blocks = match read {
            Ok(blocks) => blocks.into_iter().map(Ok).collect(),
            // One bad block fails the range: read one by one to keep the good ones.
            Err(e) if unreadable_block(&e) => {
                let mut blocks = Vec::new();
                for seq in from..to {
                    let read = match wait {
                        Some(options) => self.log.get_with(seq, options).await,
                        None => self.log.get(seq).await,
                    };
                    blocks.push(match read {
                        Ok(b) => Ok(b),
                        Err(e) if unreadable_block(&e) => Err(e),
                        Err(e) => return Err(e),
                    });
                }
                blocks
            }
            Err(e) => return Err(e),
        };
        Ok((from..)
            .zip(blocks)
            .map(|(seq, block)| {
                let node = block.and_then(|b| {
                    deserialize::<MemoryNodeEntry>(&b)
                        .map_err(|e| e.at_entry(self.log.name().as_str(), seq))
                });
                (seq, node.map_err(|e| self.report(&e)))
            })
            .collect())
    }

    /// A bad entry: a `tracing` warning and error record (observability), a manager
    /// `error` event (and `health-warning` past the threshold). Reads that failed were
    /// already recorded by the manager; this records only decoding failures.
    fn report(&self, error: &HypercoreError) -> ErrorPayload {
        let log_name = self.log.name().as_str();
        if error.code() == ErrorCode::DeserializationFailed {
            let warning = self.manager.observability().record_error(log_name, error);
            self.manager.emit(ManagerEvent::Error {
                log_name: log_name.to_owned(),
                error: error.to_payload(),
            });
            if let Some(w) = warning {
                self.manager.emit(ManagerEvent::HealthWarning {
                    log_name: w.log_name,
                    error_count: w.error_count,
                });
            }
        }
        warn!(log = log_name, seq = error.seq(), code = %error.code(), %error, "ATLAS entry left out of the index");
        error.to_payload()
    }

    /// Reads the nodes at `seqs` (ascending), coalescing runs of consecutive seqs into
    /// one range read each.
    async fn read_nodes(&self, seqs: &[u64]) -> Result<Vec<MemoryNodeEntry>> {
        let mut nodes = Vec::with_capacity(seqs.len());
        let mut i = 0;
        while i < seqs.len() {
            let start = seqs[i];
            let mut end = start + 1;
            i += 1;
            while i < seqs.len() && seqs[i] == end && end - start < READ_CHUNK {
                end += 1;
                i += 1;
            }
            for (seq, bytes) in (start..).zip(self.log.get_range(start, end).await?) {
                nodes.push(
                    deserialize(&bytes).map_err(|e| e.at_entry(self.log.name().as_str(), seq))?,
                );
            }
        }
        Ok(nodes)
    }

    /// Follows the log: indexes whatever becomes available, until the log closes.
    async fn follow(self: Arc<Self>, mut events: broadcast::Receiver<ManagerEvent>) {
        loop {
            let Ok(mut progress) = self.log.watch_progress().await else {
                return; // the log (its manager) is closed
            };
            let mut fork = progress.borrow().fork;
            loop {
                let now = *progress.borrow_and_update();
                if now.fork != fork {
                    // The log was truncated (ours, or its writer's followed by this
                    // replica): entries from the cut on are retracted, and the index
                    // may name them. Built again from the log as it is now.
                    fork = now.fork;
                    if let Err(e) = self.rebuild().await {
                        warn!(log = %self.log.name(), %e, "ATLAS index could not be rebuilt after a truncation");
                    }
                }
                if let Err(e) = self.catch_up(now.contiguous_length).await {
                    if self.log.is_closed() {
                        return;
                    }
                    warn!(log = %self.log.name(), %e, "ATLAS index could not follow the log");
                }
                if progress.changed().await.is_err() {
                    break;
                }
            }
            if self.log.is_closed() {
                return;
            }
            // The open-file cap closed the log's files (their watch ended): wait for the
            // next activity on this log, then watch the reopened files.
            loop {
                match events.recv().await {
                    Ok(ManagerEvent::Append { log_name, .. })
                    | Ok(ManagerEvent::Replicate { log_name, .. })
                        if &log_name == self.log.name() =>
                    {
                        break;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

/// `seqs[offset..offset + limit]`, clipped to the slice.
fn page(seqs: &[u64], offset: usize, limit: usize) -> Vec<u64> {
    let start = offset.min(seqs.len());
    let end = start.saturating_add(limit).min(seqs.len());
    seqs[start..end].to_vec()
}

/// Puts decoded entries into `state`: nodes into the index, failures into `skipped`.
fn apply(state: &mut State, entries: Vec<(u64, Result<MemoryNodeEntry, ErrorPayload>)>) {
    for (seq, entry) in entries {
        match entry {
            Ok(node) => state.index.insert(seq, &node),
            Err(error) => {
                state.skipped.insert(seq, error);
            }
        }
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
