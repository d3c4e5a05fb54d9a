//! Time-range queries on a sparse replica: a bounded binary search over seqs instead of
//! an index of the whole log, so a query fetches the entries it answers with and a few
//! more, never the whole log.
//!
//! A sparse replica holds only what was read, so [`MemoryIndex`](crate::MemoryIndex)
//! (built from the blocks held from the start) cannot answer for the rest of the log.
//! The log is in time order but not strictly (several agents, nodes stored a little
//! after they were made), so the search assumes a bound on how far out of order it is:
//!
//! **Skew bound** ([`SparseQueryOptions::skew_ms`], default [`DEFAULT_SKEW_MS`]): no
//! node is more than `skew_ms` older than a node stored before it in the log, i.e. for
//! seqs `i < j`, `ts[j] >= ts[i] - skew_ms` (over the entries that decode).
//!
//! The query `[start, end]`:
//! 1. finds a seq `b` where the entry before it is older than `start - skew` and the
//!    entry at it is not (binary search over `0..length`, one block per probe);
//! 2. finds a seq `u` likewise for "newer than `end + skew`" (one probe of the last
//!    block when it is within the bound, as for "the last 10 minutes"; otherwise a
//!    binary search over `b..length`);
//! 3. reads `b..u` (range reads: one request per chunk) and keeps the nodes inside
//!    `[start, end]`.
//!
//! Guarantee: when the log keeps the skew bound, the answer is exactly the full index's
//! (every entry before `b` is older than `start`, every entry from `u` on is newer than
//! `end`; this holds for any boundary the search stops at, even though timestamps are
//! not monotonic). Cost: about `2 log2(length)` probes plus the entries within `skew`
//! of the range. When the log breaks the bound, entries that are more than `skew_ms`
//! out of order and lie outside `b..u` are missed; the ones seen inside `b..u` are
//! counted and logged as a warning. A writer's own log and a full replica never take
//! this path (their index sees every entry).

use std::time::Instant;

use nova_hypercore_manager::GetOptions;
use nova_hypercore_serialization::MemoryNodeEntry;
use tracing::{debug, warn};

use crate::adapter::{Indexer, READ_CHUNK};

type Result<T, E = nova_hypercore_serialization::HypercoreError> = std::result::Result<T, E>;

/// The default skew bound: one minute (see the module documentation). At one node a
/// second it costs about 60 extra blocks per query; at 20 a second, 1,200.
pub const DEFAULT_SKEW_MS: u64 = 60_000;

/// How a time-range query on a sparse replica searches and waits
/// ([`AtlasMemoryAdapter::query_by_time_range_with`](crate::AtlasMemoryAdapter::query_by_time_range_with)).
/// Ignored by a writer's own log and by full replicas.
///
/// ```
/// use std::time::Duration;
/// use nova_hypercore_atlas_adapter::SparseQueryOptions;
/// use nova_hypercore_manager::GetOptions;
///
/// let options = SparseQueryOptions::default()
///     .skew_ms(5_000)
///     .get(GetOptions::timeout(Duration::from_secs(2)));
/// assert_eq!(options.skew(), 5_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseQueryOptions {
    skew_ms: u64,
    get: GetOptions,
}

impl Default for SparseQueryOptions {
    /// A skew bound of [`DEFAULT_SKEW_MS`]; reads wait as [`GetOptions::default`] (up to
    /// 10 seconds per read).
    fn default() -> Self {
        SparseQueryOptions {
            skew_ms: DEFAULT_SKEW_MS,
            get: GetOptions::default(),
        }
    }
}

impl SparseQueryOptions {
    /// How far out of time order (ms) the log is assumed to be at most.
    pub fn skew_ms(mut self, skew_ms: u64) -> Self {
        self.skew_ms = skew_ms;
        self
    }

    /// How reads of blocks not held here wait for peers: [`GetOptions::no_wait`] for an
    /// answer from held blocks only (else `REPLICATION_FAILED` at once).
    pub fn get(mut self, get: GetOptions) -> Self {
        self.get = get;
        self
    }

    /// The skew bound in ms.
    pub fn skew(&self) -> u64 {
        self.skew_ms
    }
}

/// What one sparse query cost (for its `debug` record).
#[derive(Debug, Default)]
struct Cost {
    probes: u64,
    out_of_order: u64,
}

impl Indexer {
    /// Every node with `start <= timestamp <= end` of a sparse replica, in log order,
    /// found as the module documentation says. Reads wait as `options` say; a block
    /// that does not come is `REPLICATION_FAILED` naming the log and seq (no partial
    /// answer). Entries that do not decode are reported and left out, as by the index.
    pub(crate) async fn sparse_time_range(
        &self,
        start: u64,
        end: u64,
        options: SparseQueryOptions,
    ) -> Result<Vec<MemoryNodeEntry>> {
        if start > end {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let length = self.log.current_length().await?;
        let mut cost = Cost::default();
        let low = start.saturating_sub(options.skew_ms);
        let first = self
            .boundary(0, length, |ts| ts >= low, options, &mut cost)
            .await?;
        let last = match end.checked_add(options.skew_ms) {
            None => length,
            Some(high) => self.upper(first, length, high, options, &mut cost).await?,
        };
        // Ask for the whole window at once (blocks stream while the chunks are read);
        // without waiting nothing is asked: held blocks answer or the read fails.
        let _window = if options.get.wait && first < last {
            Some(self.log.download(first..last).await?)
        } else {
            None
        };
        let mut nodes = Vec::new();
        let mut newest = 0u64;
        let mut from = first;
        while from < last {
            let to = last.min(from + READ_CHUNK);
            for (_, entry) in self.decode_range(from, to, Some(options.get)).await? {
                let Ok(node) = entry else { continue };
                if node.timestamp.saturating_add(options.skew_ms) < newest {
                    cost.out_of_order += 1;
                }
                newest = newest.max(node.timestamp);
                if (start..=end).contains(&node.timestamp) {
                    nodes.push(node);
                }
            }
            from = to;
        }
        if cost.out_of_order > 0 {
            warn!(
                log = %self.log.name(),
                entries = cost.out_of_order,
                skew_ms = options.skew_ms,
                "ATLAS entries further out of time order than the skew bound: a sparse time query may miss some"
            );
        }
        debug!(
            log = %self.log.name(),
            start, end, length, first, last,
            probes = cost.probes,
            found = nodes.len(),
            ms = started.elapsed().as_millis() as u64,
            "ATLAS sparse time query"
        );
        Ok(nodes)
    }

    /// The end of the window for `end + skew = high`: `length` when the last entry is
    /// not newer than `high` (one probe), else a boundary search over `from..length`.
    async fn upper(
        &self,
        from: u64,
        length: u64,
        high: u64,
        options: SparseQueryOptions,
        cost: &mut Cost,
    ) -> Result<u64> {
        if from >= length {
            return Ok(length);
        }
        // Any seq is a valid boundary when the last entry before it is on its left side
        // and none follows: so `length` is, if the last block decodes and is not newer.
        if let Some((_, ts)) = self.probe(length - 1, length, options, cost).await?
            && ts <= high
        {
            return Ok(length);
        }
        self.boundary(from, length, |ts| ts > high, options, cost)
            .await
    }

    /// A seq `b` in `lo..=hi` where the last entry that decodes before `b` (if any, in
    /// `lo..`) fails `right` and the first one at or after `b` (if any, before `hi`)
    /// passes it. With the skew bound this splits the log for the query; without
    /// monotonic timestamps it is still a boundary (binary search keeps that invariant).
    async fn boundary(
        &self,
        mut lo: u64,
        mut hi: u64,
        right: impl Fn(u64) -> bool,
        options: SparseQueryOptions,
        cost: &mut Cost,
    ) -> Result<u64> {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.probe(mid, hi, options, cost).await? {
                Some((seq, ts)) if !right(ts) => lo = seq + 1,
                // `mid..hi` holds no entry that decodes, or its first one passes.
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// The first entry in `from..hi` that decodes, as `(seq, timestamp)`.
    async fn probe(
        &self,
        from: u64,
        hi: u64,
        options: SparseQueryOptions,
        cost: &mut Cost,
    ) -> Result<Option<(u64, u64)>> {
        for seq in from..hi {
            cost.probes += 1;
            if let Some((seq, Ok(node))) = self
                .decode_range(seq, seq + 1, Some(options.get))
                .await?
                .into_iter()
                .next()
            {
                return Ok(Some((seq, node.timestamp)));
            }
        }
        Ok(None)
    }
}
