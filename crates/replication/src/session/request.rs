//! Wanted blocks and requests in flight: what to ask the peer for (blocks below our
//! length that we lack, a bounded number checked per call), request ids, timeouts, and
//! what the peer declined (asked again after the request timeout). Rule 2 of the
//! `session` docs.

use std::time::{Duration, Instant};

use nova_hypercore_managed_core::{ManagedCore, RequestBlock};
use nova_hypercore_serialization::HypercoreError;
use tracing::debug;

use crate::channel::Channel;
use crate::wire::{Message, Request};

use super::serve::send_failed;
use super::state::{ChannelCtx, ChannelState, Pending, Want};

/// Blocks `fill` checks (held blocks it skips) per call.
pub(super) const MAX_CHECKS_PER_FILL: usize = 4096;

/// Sends our requests `batch` as one frame (nothing when empty) and counts them.
pub(super) async fn send_requests(
    channel: &Channel,
    ctx: &ChannelCtx,
    batch: &[Message],
) -> Result<(), HypercoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let n = batch.len() as u64;
    ctx.stats
        .update(&ctx.discovery_key, |t| t.requests_sent += n);
    channel.send_batch(batch).await.map_err(send_failed)
}

impl ChannelState {
    pub(super) fn retry(&mut self, want: Want) {
        match want {
            Want::Upgrade | Want::Manifest => self.upgrade_pending = false,
            Want::Block(seq) => self.enqueue(seq),
            // Asked again at the next tick (`fork.rs`); a round (declined, then
            // expired here, or timed out) for another block.
            Want::ForkProof(_) => {}
            Want::ForkHash(_) => {
                if let Some(f) = self.follow.as_mut() {
                    f.misses += 1;
                }
            }
            // Asked again by the next `request_seeks` (`seek.rs`).
            Want::Seek { .. } => {}
        }
    }

    /// Notes that the peer declined `want` (asked again after the request timeout).
    pub(super) fn decline(&mut self, want: Want) {
        if let Want::Block(seq) = want
            && !self.declined_blocks.insert(seq)
        {
            return;
        }
        self.declined.push_back((Instant::now(), want));
    }

    pub(super) fn expire(&mut self, timeout: Duration) {
        let now = Instant::now();
        while let Some(&(at, want)) = self.declined.front() {
            if now.duration_since(at) <= timeout {
                break;
            }
            self.declined.pop_front();
            if let Want::Block(seq) = want {
                self.declined_blocks.remove(&seq);
            }
            self.retry(want);
        }
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.sent) > timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                debug!(request = id, want = ?p.want, "request timed out; asking again");
                self.retry(p.want);
            }
        }
    }

    pub(super) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Whether block `seq` is in flight, or declined and waiting to be asked again
    /// (the wanted ranges can name it again when the missing set changes).
    pub(super) fn asked(&self, seq: u64) -> bool {
        let want = Want::Block(seq);
        // `pending` holds at most one window of requests.
        self.declined_blocks.contains(&seq) || self.pending.values().any(|p| p.want == want)
    }

    /// Rule 2: requests for blocks below our length that the peer holds, windowed.
    /// This holds for a writer too: its own log's blocks that its bitfield lacks (bytes
    /// found damaged) are asked for like a reader's, and verified against its own signed
    /// tree; it never asks for an upgrade (rule 1) and its core refuses one.
    pub(super) async fn fill(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
    ) -> Result<(), HypercoreError> {
        let core = &ctx.core;
        let mut batch = Vec::new();
        let info = core.info().await?;
        // Blocks beyond our length cannot be asked for (rule 2); a later upgrade adds
        // them again.
        self.wanted.truncate(info.length);
        // A peer on another fork is asked for nothing (its blocks would not verify at
        // ours, or would belong to a retracted history): JS `_requestBlock`.
        if self.remote_fork != info.fork {
            return Ok(());
        }
        // Runs of blocks we already hold are skipped (one bitfield scan each), at most
        // this many per call, so one call's work is bounded whatever the log's length;
        // the next message or tick goes on.
        let mut checks = MAX_CHECKS_PER_FILL;
        while self.pending.len() < ctx.config.window && checks > 0 {
            let Some(seq) = self.wanted.first() else {
                break;
            };
            if seq >= self.remote_has.min(self.remote_length) {
                break; // the peer does not hold it (yet); wait for its Range
            }
            checks -= 1;
            let held_to = core.first_missing(seq).await?;
            if held_to > seq {
                // Blocks `seq..held_to` are held: skipped as one run.
                self.wanted.skip_first_below(held_to);
                continue;
            }
            self.wanted.pop_first();
            if self.asked(seq) {
                continue;
            }
            let nodes = core.missing_nodes(seq).await?;
            let id = self.next_id();
            self.pending.insert(
                id,
                Pending {
                    want: Want::Block(seq),
                    asked_manifest: false,
                    sent: Instant::now(),
                },
            );
            batch.push(Message::Request(Request {
                id,
                fork: info.fork,
                block: Some(RequestBlock { index: seq, nodes }),
                hash: None,
                seek: None,
                upgrade: None,
                manifest: false,
                priority: 0,
            }));
        }
        send_requests(channel, ctx, &batch).await
    }
    /// Adds blocks `start..end` to what this channel requests, for a full replica; for
    /// a sparse one, what its readers and downloads ask for now instead (past the
    /// length too: `fill` clips to it, and an upgrade adds them again), and nothing
    /// else: a download cancelled or dropped since is asked for no more (requests in
    /// flight still complete).
    pub(super) fn want_all_or_asked(&mut self, core: &ManagedCore, start: u64, end: u64) {
        if core.is_sparse() {
            self.wanted = Default::default();
            for range in core.wanted() {
                self.wanted.insert(range.start, range.end);
            }
        } else {
            self.wanted.insert(start, end);
        }
    }

    pub(super) fn enqueue(&mut self, seq: u64) {
        self.wanted.insert_one(seq);
    }
}
