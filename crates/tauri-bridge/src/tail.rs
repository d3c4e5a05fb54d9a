//! `tail`: a log's entries from a seq on, then every new one (appended here or
//! replicated from a peer), streamed to the page over a `tauri::ipc::Channel` in order
//! and without gaps.
//!
//! How it stays gapless: the stream keeps `next` (the first seq the page has not been
//! sent) and, whenever the manager says something happened to the log (an `append`,
//! `replicate` or `truncate` event, or a lagged receiver: it missed some), reads
//! `next..` from the log itself. Events only wake it; the log is the truth, so a lagged
//! broadcast loses nothing. When the log moves to a new fork (its writer truncated it),
//! the page gets a `truncate` message with `kept` and the stream goes on from `kept`:
//! entries `kept..` the page holds were retracted and come again as they are now.
//!
//! What the page receives (see `CONTRACT.md`):
//! - entries as raw bytes (an `ArrayBuffer`): `u64` big-endian seq of the first entry,
//!   then per entry a `u32` big-endian length and its bytes; at most
//!   [`MAX_BATCH_ENTRIES`] entries and about [`MAX_BATCH_BYTES`] bytes per message;
//! - JSON messages `{ event: "truncate", kept, length, fork }`,
//!   `{ event: "error", error: { code, message, logName?, seq? } }` (a read failed: the
//!   stream retries on the log's next change) and `{ event: "end", reason }` (the log was
//!   deleted or the store closed: nothing more comes).
//!
//! A replica's missing block stops the stream until it lands (a sparse replica asks its
//! peers for everything from `next` on); our own log's missing block (cleared) is one
//! `error` message, retried every [`RECHECK_INTERVAL`]. There is no flow control from the
//! page: a tail from 0 of a large log sends it all as fast as it reads (in messages of
//! about [`MAX_BATCH_BYTES`], reading about one message's worth at a time).
//!
//! Must not: decide access (the command checks the scope when the tail starts), or keep
//! more than about one message of entries in memory.

use nova_hypercore_manager::{Download, HypercoreManager, ManagedLog, ManagerEvent, Progress};
use nova_hypercore_serialization::{ErrorPayload, HypercoreError};
use serde::Serialize;
use tauri::ipc::InvokeResponseBody;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch::Receiver;

use crate::models::frame_entries;

/// Most entries in one message.
pub const MAX_BATCH_ENTRIES: u64 = 256;
/// A message stops taking entries once it holds this many bytes (it always holds at least
/// one entry, so one larger entry travels alone).
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// One message of a tail.
#[derive(Debug, Clone, PartialEq)]
pub enum TailMessage {
    /// Entries `first..first + entries.len()`.
    Entries {
        /// Seq of the first.
        first: u64,
        /// Their bytes, in order.
        entries: Vec<Vec<u8>>,
    },
    /// The log moved to fork `fork`: entries `kept..` the page was sent are gone; the
    /// entries from `kept` on come next.
    Truncate {
        /// Entries of the old fork that stay.
        kept: u64,
        /// The log's length now.
        length: u64,
        /// The new fork id.
        fork: u64,
    },
    /// Reading the log failed; the stream tries again when the log next changes.
    Error(ErrorPayload),
    /// Nothing more comes: `"deleted"` (the log was deleted) or `"closed"` (the store
    /// or the log closed).
    End {
        /// Why.
        reason: &'static str,
    },
}

/// The JSON messages' shape.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
enum Control<'a> {
    Truncate { kept: u64, length: u64, fork: u64 },
    Error { error: &'a ErrorPayload },
    End { reason: &'a str },
}

impl TailMessage {
    /// The message as it crosses IPC (raw bytes for entries, JSON otherwise).
    pub fn body(&self, log: &str) -> Result<InvokeResponseBody, HypercoreError> {
        let json = |c: Control<'_>| {
            serde_json::to_string(&c)
                .map(InvokeResponseBody::Json)
                .map_err(|e| HypercoreError::Io {
                    log: log.to_owned(),
                    operation: "encode a tail message".to_owned(),
                    source: std::io::Error::other(e),
                })
        };
        match self {
            TailMessage::Entries { first, entries } => {
                let mut out = first.to_be_bytes().to_vec();
                out.extend_from_slice(&frame_entries(log, entries)?);
                Ok(InvokeResponseBody::Raw(out))
            }
            TailMessage::Truncate { kept, length, fork } => json(Control::Truncate {
                kept: *kept,
                length: *length,
                fork: *fork,
            }),
            TailMessage::Error(error) => json(Control::Error { error }),
            TailMessage::End { reason } => json(Control::End { reason }),
        }
    }
}

/// How often a waiting tail looks again without news: it retries a read that failed and
/// notices a log closed by someone else (a closed manager sends no event).
pub const RECHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Streams `log` from `from_seq` to `send` until `send` returns `false` (the page is
/// gone), the log is deleted or closed. Subscribe-then-read: the manager's events are
/// subscribed before the first read, so nothing appended meanwhile is missed.
///
/// `since_fork`: the fork the page's entries `..from_seq` are of (a page resuming a
/// tail); when the log has moved on since, the stream starts with the `truncate` that
/// says what of them is gone. `None`: the log's fork now.
pub async fn run(
    manager: HypercoreManager,
    log: ManagedLog,
    from_seq: u64,
    since_fork: Option<u64>,
    mut send: impl FnMut(TailMessage) -> bool,
) {
    let mut events = manager.subscribe();
    let mut progress = None;
    let mut state = Position {
        next: from_seq,
        fork: match since_fork {
            Some(fork) => fork,
            None => match log.fork().await {
                Ok(fork) => fork,
                Err(e) => {
                    if log.is_closed() {
                        send(TailMessage::End { reason: "closed" });
                        return;
                    }
                    // The first read below reports it (and is retried).
                    tracing::debug!(log = %log.name(), error = %e, "tail: fork unknown at start");
                    0
                }
            },
        },
        reported: None,
        download: None,
    };
    loop {
        if log.is_closed() {
            send(TailMessage::End { reason: "closed" });
            return;
        }
        match catch_up(&log, &mut state, &mut send).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(log = %log.name(), error = %e, "tail: read failed, retried");
                // One report per failing place, not one per retry.
                let place = (e.code(), e.seq());
                if state.reported != Some(place) {
                    state.reported = Some(place);
                    if !send(TailMessage::Error(e.to_payload())) {
                        return;
                    }
                }
            }
        }
        if progress
            .as_ref()
            .is_none_or(|p: &Receiver<Progress>| p.has_changed().is_err())
        {
            progress = log.watch_progress().await.ok();
        }
        match wait_for_change(&mut events, &log, progress.as_mut()).await {
            Change::Changed => {}
            Change::Deleted => {
                send(TailMessage::End { reason: "deleted" });
                return;
            }
            Change::Closed => {
                send(TailMessage::End { reason: "closed" });
                return;
            }
        }
    }
}

/// Where a tail is.
struct Position {
    /// The first seq the page has not been sent.
    next: u64,
    /// The fork the page's entries are of.
    fork: u64,
    /// The last error sent (code, seq), so a failing read is reported once.
    reported: Option<(nova_hypercore_serialization::ErrorCode, Option<u64>)>,
    /// A sparse replica's request for the blocks the tail is waiting for, and its range.
    download: Option<(std::ops::Range<u64>, Download)>,
}

/// Sends what the page lacks: a `truncate` if the fork moved, then `next..` as far as
/// the blocks are here (a replica's missing block stops it until the block lands; a
/// sparse replica asks its peers for `next..length`). `Ok(false)` when the page is gone.
async fn catch_up(
    log: &ManagedLog,
    state: &mut Position,
    send: &mut impl FnMut(TailMessage) -> bool,
) -> Result<bool, HypercoreError> {
    let now = log.fork().await?;
    if now != state.fork {
        let kept = log.kept_since(state.fork).await?;
        let length = log.current_length().await?;
        if !send(TailMessage::Truncate {
            kept,
            length,
            fork: now,
        }) {
            return Ok(false);
        }
        state.next = state.next.min(kept);
        state.fork = now;
        state.download = None;
    }
    let length = log.current_length().await?;
    if log.is_sparse() && state.next < length {
        let want = state.next..length;
        if state.download.as_ref().is_none_or(|(r, _)| *r != want) {
            state.download = Some((want.clone(), log.download(want).await?));
        }
    }
    // Entries per read: as many as make about one message, from the sizes seen so far
    // (a log of large entries is read a few at a time, never 256 of them at once).
    let mut per_read = 16u64;
    while state.next < length {
        let end = length.min(state.next.saturating_add(per_read));
        let (entries, complete) = read_held(log, state.next, end).await?;
        if entries.is_empty() {
            // The next block is not here yet: a replica gets it from a peer (its arrival
            // wakes the tail); our own log's missing block is an error.
            if log.is_writable() {
                return Err(HypercoreError::BlockUnavailable {
                    log: log.name().to_string(),
                    seq: state.next,
                    reason: "not stored here (cleared or damaged): the tail waits at it".into(),
                });
            }
            return Ok(true);
        }
        let bytes: usize = entries.iter().map(Vec::len).sum();
        let average = (bytes / entries.len()).max(1);
        per_read = ((MAX_BATCH_BYTES / average) as u64).clamp(1, MAX_BATCH_ENTRIES);
        let sent = entries.len() as u64;
        if !send_batches(state.next, entries, send) {
            return Ok(false);
        }
        state.next += sent;
        state.reported = None;
        if !complete {
            return Ok(true);
        }
    }
    Ok(true)
}

/// Entries `start..end`, or those of them held here from `start` up to the first one
/// that is not (`false`: stopped short at a missing block).
async fn read_held(
    log: &ManagedLog,
    start: u64,
    end: u64,
) -> Result<(Vec<Vec<u8>>, bool), HypercoreError> {
    match log.get_range(start, end).await {
        Ok(entries) => Ok((entries, true)),
        Err(HypercoreError::BlockUnavailable { .. }) => {
            let mut entries = Vec::new();
            for seq in start..end {
                match log.get(seq).await {
                    Ok(entry) => entries.push(entry),
                    Err(HypercoreError::BlockUnavailable { .. }) => return Ok((entries, false)),
                    Err(e) => return Err(e),
                }
            }
            Ok((entries, true))
        }
        Err(e) => Err(e),
    }
}

/// Sends `entries` (from seq `first`) as messages of about [`MAX_BATCH_BYTES`];
/// `false` when the page is gone.
fn send_batches(
    first: u64,
    entries: Vec<Vec<u8>>,
    send: &mut impl FnMut(TailMessage) -> bool,
) -> bool {
    let mut first = first;
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    for entry in entries {
        if !batch.is_empty() && bytes.saturating_add(entry.len()) > MAX_BATCH_BYTES {
            let sent = batch.len() as u64;
            if !send(TailMessage::Entries {
                first,
                entries: std::mem::take(&mut batch),
            }) {
                return false;
            }
            first += sent;
            bytes = 0;
        }
        bytes = bytes.saturating_add(entry.len());
        batch.push(entry);
    }
    batch.is_empty()
        || send(TailMessage::Entries {
            first,
            entries: batch,
        })
}

enum Change {
    Changed,
    Deleted,
    Closed,
}

/// Waits until the manager reports something about `log` (or that it dropped events),
/// the log's progress moves (a length raised with no block, as a sparse replica sees
/// it), or [`RECHECK_INTERVAL`] passes; then takes every event already queued so a
/// burst wakes the stream once.
async fn wait_for_change(
    events: &mut tokio::sync::broadcast::Receiver<ManagerEvent>,
    log: &ManagedLog,
    progress: Option<&mut Receiver<Progress>>,
) -> Change {
    let first = {
        let progressed = async {
            let moved = match progress {
                Some(p) => p.changed().await.is_ok(),
                None => false,
            };
            if !moved {
                // No watch (or its log's files closed): only events and the timer.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            event = events.recv() => Some(event),
            () = progressed => None,
            () = tokio::time::sleep(RECHECK_INTERVAL) => None,
        }
    };
    let mut pending = match first {
        None => return Change::Changed,
        Some(Ok(event)) => Some(event),
        Some(Err(RecvError::Lagged(_))) => None,
        Some(Err(RecvError::Closed)) => return Change::Closed,
    };
    loop {
        match pending.take() {
            Some(ManagerEvent::LogDeleted { log_name }) if log_name == *log.name() => {
                return Change::Deleted;
            }
            _ => {}
        }
        match events.try_recv() {
            Ok(event) => pending = Some(event),
            Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty) => return Change::Changed,
            Err(TryRecvError::Closed) => return Change::Closed,
        }
    }
}
