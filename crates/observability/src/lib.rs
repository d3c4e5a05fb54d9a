//! Structured operation events, aggregate metrics and health warnings (spec:
//! ObservabilityLogger).
//!
//! Owns: one [`HypercoreLogEvent`] per append, read, replicate, error and lifecycle step,
//! emitted as a `tracing` event with the same fields and kept in a bounded ring
//! ([`Observability::recent_events`]); exact [`AggregateMetrics`] under any concurrency
//! (atomics); the sliding-window health check that says when one log has had more than
//! `threshold` errors within `window` ([`Observability::record_error`]).
//!
//! Does not: open logs, emit manager events or decide what to do about a warning (the
//! manager turns a returned [`HealthWarning`] into its `health-warning` event; the log
//! stays usable).
//!
//! ```
//! use std::time::Duration;
//! use nova_hypercore_observability::{Observability, ObservabilityConfig};
//!
//! let obs = Observability::new(ObservabilityConfig::default());
//! obs.record_append("agent-state", 0, 5);
//! obs.record_read("agent-state", 0, 5);
//! let m = obs.metrics();
//! assert_eq!((m.total_appends, m.total_reads), (1, 1));
//! assert_eq!(obs.recent_events(None).len(), 2);
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nova_hypercore_serialization::{
    AggregateMetrics, Direction, HypercoreError, HypercoreLogEvent, Operation,
};
use tracing::{debug, info, warn};

/// Settings of an [`Observability`] instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservabilityConfig {
    /// How many recent events the ring keeps.
    pub ring_capacity: usize,
    /// More than this many errors for one log within `health_window` is a warning.
    pub health_threshold: u32,
    /// The sliding window for the health check.
    pub health_window: Duration,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            ring_capacity: 1024,
            health_threshold: 10,
            health_window: Duration::from_secs(60),
        }
    }
}

/// One log crossed its error threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthWarning {
    /// The log.
    pub log_name: String,
    /// Errors for that log within the window, including the one just recorded.
    pub error_count: u32,
}

/// Most logs whose recent errors the health check tracks at once. Past it, logs whose
/// window has emptied are forgotten first, then the log whose last error is oldest: the
/// map stays bounded whatever names errors are reported under (a peer or a caller can
/// make up any number), and a log with a burst going on right now keeps its count.
pub const MAX_HEALTH_LOGS: usize = 1024;

/// Errors of one log inside the window, and whether a warning is already out for them.
#[derive(Debug, Default)]
struct Health {
    errors: VecDeque<Instant>,
    warned: bool,
}

/// Records operations; cheap to share behind an `Arc` (all methods take `&self`).
#[derive(Debug)]
pub struct Observability {
    config: ObservabilityConfig,
    ring: Mutex<VecDeque<HypercoreLogEvent>>,
    health: Mutex<HashMap<String, Health>>,
    total_appends: AtomicU64,
    total_reads: AtomicU64,
    replication_bytes: AtomicU64,
    error_count: AtomicU64,
    active_peers: AtomicU64,
    managed_logs: AtomicU64,
    total_byte_size: AtomicU64,
}

/// Milliseconds since the Unix epoch (never 0: a clock before 1970 reads as 1).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
        .max(1)
}

impl Observability {
    /// A fresh recorder with all counters at zero.
    pub fn new(config: ObservabilityConfig) -> Self {
        Observability {
            ring: Mutex::new(VecDeque::with_capacity(config.ring_capacity.min(4096))),
            health: Mutex::new(HashMap::new()),
            config,
            total_appends: AtomicU64::new(0),
            total_reads: AtomicU64::new(0),
            replication_bytes: AtomicU64::new(0),
            error_count: AtomicU64::new(0),
            active_peers: AtomicU64::new(0),
            managed_logs: AtomicU64::new(0),
            total_byte_size: AtomicU64::new(0),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> ObservabilityConfig {
        self.config
    }

    fn push(&self, event: HypercoreLogEvent) {
        if self.config.ring_capacity == 0 {
            return;
        }
        // Only whole events are pushed under this lock, so a poisoned ring is still valid.
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        while ring.len() >= self.config.ring_capacity {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    fn event(operation: Operation, log_name: &str) -> HypercoreLogEvent {
        HypercoreLogEvent {
            operation,
            log_name: log_name.to_owned(),
            seq: None,
            timestamp: now_ms(),
            peer_id: None,
            direction: None,
            byte_count: None,
            error_message: None,
        }
    }

    /// One block appended at `seq` (call once per block of a batch, or use
    /// [`record_append_batch`](Self::record_append_batch)).
    pub fn record_append(&self, log_name: &str, seq: u64, byte_count: u64) {
        self.record_append_batch(log_name, seq, 1, byte_count);
    }

    /// `count` blocks appended from `first_seq` on, `byte_count` bytes in all: one event
    /// (for the first seq) and `count` appends in the metrics.
    pub fn record_append_batch(&self, log_name: &str, first_seq: u64, count: u64, byte_count: u64) {
        self.total_appends.fetch_add(count, Ordering::Relaxed);
        debug!(
            operation = "append",
            log_name,
            seq = first_seq,
            count,
            byte_count
        );
        let mut event = Self::event(Operation::Append, log_name);
        event.seq = Some(first_seq);
        event.byte_count = Some(byte_count);
        self.push(event);
    }

    /// One block read at `seq`.
    pub fn record_read(&self, log_name: &str, seq: u64, byte_count: u64) {
        self.record_read_range(log_name, seq, 1, byte_count);
    }

    /// `count` blocks read from `first_seq` on: one event, `count` reads in the metrics.
    pub fn record_read_range(&self, log_name: &str, first_seq: u64, count: u64, byte_count: u64) {
        self.total_reads.fetch_add(count, Ordering::Relaxed);
        debug!(
            operation = "read",
            log_name,
            seq = first_seq,
            count,
            byte_count
        );
        let mut event = Self::event(Operation::Read, log_name);
        event.seq = Some(first_seq);
        event.byte_count = Some(byte_count);
        self.push(event);
    }

    /// Replication traffic for a log with one peer.
    pub fn record_replicate(
        &self,
        log_name: &str,
        peer_id: &str,
        direction: Direction,
        bytes: u64,
    ) {
        self.replication_bytes.fetch_add(bytes, Ordering::Relaxed);
        debug!(
            operation = "replicate",
            log_name,
            peer_id,
            ?direction,
            byte_count = bytes
        );
        let mut event = Self::event(Operation::Replicate, log_name);
        event.peer_id = Some(peer_id.to_owned());
        event.direction = Some(direction);
        event.byte_count = Some(bytes);
        self.push(event);
    }

    /// A lifecycle step (`opened`, `closed`, `ready`, ...) for a log or the store.
    pub fn record_lifecycle(&self, log_name: &str, what: &str) {
        info!(operation = "lifecycle", log_name, what);
        let mut event = Self::event(Operation::Lifecycle, log_name);
        event.error_message = None;
        self.push(event);
    }

    /// An error on a log. Returns a [`HealthWarning`] when this error takes the log over
    /// its threshold within the window; one warning per crossing (a log that stays above
    /// the threshold does not warn again until it has dropped back under it).
    pub fn record_error(&self, log_name: &str, error: &HypercoreError) -> Option<HealthWarning> {
        self.error_count.fetch_add(1, Ordering::Relaxed);
        let message = error.to_string();
        warn!(operation = "error", log_name, code = %error.code(), seq = error.seq(), error = %message);
        let mut event = Self::event(Operation::Error, log_name);
        event.seq = error.seq();
        event.error_message = Some(message);
        self.push(event);
        self.check_health(log_name, Instant::now())
    }

    fn check_health(&self, log_name: &str, now: Instant) -> Option<HealthWarning> {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if health.len() >= MAX_HEALTH_LOGS && !health.contains_key(log_name) {
            self.make_room(&mut health, now);
        }
        let entry = health.entry(log_name.to_owned()).or_default();
        entry.errors.push_back(now);
        let window = self.config.health_window;
        while let Some(first) = entry.errors.front() {
            if now.duration_since(*first) > window {
                entry.errors.pop_front();
            } else {
                break;
            }
        }
        let count = u32::try_from(entry.errors.len()).unwrap_or(u32::MAX);
        if count <= self.config.health_threshold {
            entry.warned = false;
            return None;
        }
        if entry.warned {
            return None;
        }
        entry.warned = true;
        warn!(
            log_name,
            error_count = count,
            "health warning: error threshold exceeded"
        );
        Some(HealthWarning {
            log_name: log_name.to_owned(),
            error_count: count,
        })
    }

    /// Forgets logs until the map has room for one more (see [`MAX_HEALTH_LOGS`]).
    fn make_room(&self, health: &mut HashMap<String, Health>, now: Instant) {
        let window = self.config.health_window;
        health.retain(|_, h| {
            h.errors
                .back()
                .is_some_and(|last| now.saturating_duration_since(*last) <= window)
        });
        while health.len() >= MAX_HEALTH_LOGS {
            let oldest = health
                .iter()
                .min_by_key(|(_, h)| h.errors.back().copied())
                .map(|(name, _)| name.clone());
            match oldest {
                Some(name) => health.remove(&name),
                None => break,
            };
        }
    }

    /// Logs whose errors the health check currently tracks (at most
    /// [`MAX_HEALTH_LOGS`]).
    pub fn tracked_logs(&self) -> usize {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Sets the number of logs the manager has open or known (a gauge).
    pub fn set_managed_logs(&self, n: u64) {
        self.managed_logs.store(n, Ordering::Relaxed);
    }

    /// Sets the total byte size of the managed logs (a gauge).
    pub fn set_total_byte_size(&self, n: u64) {
        self.total_byte_size.store(n, Ordering::Relaxed);
    }

    /// Adds to the total byte size of the managed logs (a log was added or grew).
    pub fn add_total_byte_size(&self, n: u64) {
        self.total_byte_size.fetch_add(n, Ordering::Relaxed);
    }

    /// A peer connected (+1) or disconnected (-1).
    pub fn peer_connected(&self, connected: bool) {
        if connected {
            self.active_peers.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = self
                .active_peers
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
    }

    /// The counters now.
    pub fn metrics(&self) -> AggregateMetrics {
        AggregateMetrics {
            total_appends: self.total_appends.load(Ordering::Relaxed),
            total_reads: self.total_reads.load(Ordering::Relaxed),
            replication_bytes_transferred: self.replication_bytes.load(Ordering::Relaxed),
            error_count: self.error_count.load(Ordering::Relaxed),
            active_peers: self.active_peers.load(Ordering::Relaxed),
            managed_logs: self.managed_logs.load(Ordering::Relaxed),
            total_byte_size: self.total_byte_size.load(Ordering::Relaxed),
        }
    }

    /// The most recent events, oldest first; at most `limit` (default: all in the ring).
    pub fn recent_events(&self, limit: Option<usize>) -> Vec<HypercoreLogEvent> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let n = limit.unwrap_or(ring.len()).min(ring.len());
        ring.iter().skip(ring.len() - n).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> HypercoreError {
        HypercoreError::OutOfRange {
            log: "l".into(),
            seq: 9,
            length: 1,
        }
    }

    #[test]
    fn ring_is_bounded_and_keeps_the_newest() {
        let obs = Observability::new(ObservabilityConfig {
            ring_capacity: 3,
            ..ObservabilityConfig::default()
        });
        for seq in 0..10 {
            obs.record_append("l", seq, 1);
        }
        let seqs: Vec<_> = obs.recent_events(None).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![Some(7), Some(8), Some(9)]);
        assert_eq!(obs.recent_events(Some(1))[0].seq, Some(9));
        assert_eq!(obs.metrics().total_appends, 10);
    }

    #[test]
    fn health_window_slides_and_warns_once_per_crossing() {
        let obs = Observability::new(ObservabilityConfig {
            ring_capacity: 8,
            health_threshold: 2,
            health_window: Duration::from_millis(100),
        });
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(obs.check_health("l", ms(0)), None);
        assert_eq!(obs.check_health("l", ms(10)), None);
        let w = obs
            .check_health("l", ms(20))
            .expect("third error within 100 ms warns");
        assert_eq!(w.error_count, 3);
        assert_eq!(
            obs.check_health("l", ms(30)),
            None,
            "no second warning while above"
        );
        // Other logs have their own window.
        assert_eq!(obs.check_health("m", ms(30)), None);
        // Long after: the window has emptied, the next burst warns again.
        assert_eq!(obs.check_health("l", ms(500)), None);
        assert_eq!(obs.check_health("l", ms(510)), None);
        assert!(obs.check_health("l", ms(520)).is_some());
        // Errors spread wider than the window never warn.
        let obs = Observability::new(ObservabilityConfig {
            ring_capacity: 8,
            health_threshold: 2,
            health_window: Duration::from_millis(100),
        });
        for i in 0..20 {
            assert_eq!(obs.check_health("l", ms(i * 60)), None);
        }
        let _ = obs.record_error("l", &err());
        assert_eq!(obs.metrics().error_count, 1);
    }

    #[test]
    fn health_map_stays_bounded_and_keeps_a_burst_going_on() {
        let obs = Observability::new(ObservabilityConfig {
            ring_capacity: 8,
            health_threshold: 3,
            health_window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        // A burst on one log, then errors under 10x the cap of made-up names.
        for i in 0..3 {
            assert_eq!(obs.check_health("hot", t0 + Duration::from_millis(i)), None);
        }
        for i in 0..(MAX_HEALTH_LOGS as u64 * 10) {
            let now = t0 + Duration::from_millis(10 + i);
            let _ = obs.check_health(&format!("made-up-{i}"), now);
            // The hot log is touched now and then: still within its window.
            if i % 100 == 0 {
                let _ = obs.check_health("hot", now);
            }
            assert!(obs.tracked_logs() <= MAX_HEALTH_LOGS);
        }
        assert_eq!(obs.tracked_logs(), MAX_HEALTH_LOGS);
        // The hot log was never forgotten: its count is above the threshold and the
        // warning it gave is not repeated.
        let health = obs.health.lock().unwrap();
        assert!(health["hot"].errors.len() > 3);
        assert!(health["hot"].warned);
    }

    #[test]
    fn logs_with_an_empty_window_go_first() {
        let obs = Observability::new(ObservabilityConfig {
            ring_capacity: 8,
            health_threshold: 3,
            health_window: Duration::from_millis(100),
        });
        let t0 = Instant::now();
        for i in 0..MAX_HEALTH_LOGS {
            let _ = obs.check_health(&format!("old-{i}"), t0);
        }
        // Long after: every old window is empty, so one new error frees them all.
        let _ = obs.check_health("new", t0 + Duration::from_secs(10));
        assert_eq!(obs.tracked_logs(), 1);
    }
}
