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
//! Must not: decide access (the command checks the scope when the tail starts), or keep
//! entries in memory beyond one batch.

use nova_hypercore_manager::{HypercoreManager, ManagedLog, ManagerEvent};
use nova_hypercore_serialization::{ErrorPayload, HypercoreError};
use serde::Serialize;
use tauri::ipc::InvokeResponseBody;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

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

/// Streams `log` from `from_seq` to `send` until `send` returns `false` (the page is
/// gone), the log is deleted or the store closes. Subscribe-then-read: the manager's
/// events are subscribed before the first read, so nothing appended meanwhile is missed.
pub async fn run(
    manager: HypercoreManager,
    log: ManagedLog,
    from_seq: u64,
    mut send: impl FnMut(TailMessage) -> bool,
) {
    let mut events = manager.subscribe();
    let mut next = from_seq;
    let mut fork = match log.fork().await {
        Ok(fork) => fork,
        Err(e) => {
            send(TailMessage::Error(e.to_payload()));
            send(TailMessage::End { reason: "closed" });
            return;
        }
    };
    loop {
        match catch_up(&log, &mut next, &mut fork, &mut send).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                if log.is_closed() {
                    send(TailMessage::End { reason: "closed" });
                    return;
                }
                tracing::debug!(log = %log.name(), error = %e, "tail: read failed, retried on the next change");
                if !send(TailMessage::Error(e.to_payload())) {
                    return;
                }
            }
        }
        match wait_for_change(&mut events, &log).await {
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

/// Sends what the page lacks: a `truncate` if the fork moved, then `next..` up to what
/// is readable here. `Ok(false)` when the page is gone.
async fn catch_up(
    log: &ManagedLog,
    next: &mut u64,
    fork: &mut u64,
    send: &mut impl FnMut(TailMessage) -> bool,
) -> Result<bool, HypercoreError> {
    let now = log.fork().await?;
    if now != *fork {
        let kept = log.kept_since(*fork).await?;
        let length = log.current_length().await?;
        if !send(TailMessage::Truncate {
            kept,
            length,
            fork: now,
        }) {
            return Ok(false);
        }
        *next = (*next).min(kept);
        *fork = now;
    }
    let readable = readable_length(log).await?;
    while *next < readable {
        let end = readable.min(next.saturating_add(MAX_BATCH_ENTRIES));
        let entries = log.get_range(*next, end).await?;
        let mut first = *next;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        for entry in entries {
            if !batch.is_empty() && bytes.saturating_add(entry.len()) > MAX_BATCH_BYTES {
                let sent = batch.len() as u64;
                if !send(TailMessage::Entries {
                    first,
                    entries: std::mem::take(&mut batch),
                }) {
                    return Ok(false);
                }
                first += sent;
                bytes = 0;
            }
            bytes = bytes.saturating_add(entry.len());
            batch.push(entry);
        }
        if !batch.is_empty()
            && !send(TailMessage::Entries {
                first,
                entries: batch,
            })
        {
            return Ok(false);
        }
        *next = end;
    }
    Ok(true)
}

/// How far the log can be read without waiting: its length for our own logs and sparse
/// replicas (a sparse replica's tail fetches what it reads), the blocks held from the
/// start for a full replica (the rest is on its way and wakes the stream when it lands).
async fn readable_length(log: &ManagedLog) -> Result<u64, HypercoreError> {
    let length = log.current_length().await?;
    if log.is_writable() || log.is_sparse() {
        return Ok(length);
    }
    let held = log.watch_progress().await?.borrow().contiguous_length;
    Ok(length.min(held))
}

enum Change {
    Changed,
    Deleted,
    Closed,
}

/// Waits until the manager reports something about `log` (or that it dropped events),
/// then takes every event already queued so a burst wakes the stream once.
async fn wait_for_change(
    events: &mut tokio::sync::broadcast::Receiver<ManagerEvent>,
    log: &ManagedLog,
) -> Change {
    let mut changed = false;
    loop {
        let event = if changed {
            match events.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(TryRecvError::Empty) => return Change::Changed,
                Err(TryRecvError::Closed) => return Change::Closed,
            }
        } else {
            match events.recv().await {
                Ok(event) => Ok(event),
                Err(RecvError::Lagged(_)) => Err(()),
                Err(RecvError::Closed) => return Change::Closed,
            }
        };
        match event {
            Err(()) => changed = true,
            Ok(ManagerEvent::LogDeleted { log_name }) if log_name == *log.name() => {
                return Change::Deleted;
            }
            Ok(
                ManagerEvent::Append { log_name, .. }
                | ManagerEvent::Replicate { log_name, .. }
                | ManagerEvent::Truncate { log_name, .. },
            ) if log_name == *log.name() => changed = true,
            Ok(_) => {}
        }
    }
}
