//! Following a peer onto a higher fork (JS `replicator.js` `_updateFork`,
//! `_requestForkProof`, `_requestForkRange`, `_onreorgdata`; docs/forks.md step d).
//!
//! A replica whose peer announces a higher fork (and a length) asks it for a fork proof
//! (`Request {fork: theirs, upgrade {0, length}}`), then for `hash` rounds while the
//! common prefix is not found, then applies the reorg (`ManagedCore::apply_reorg`):
//! one request in flight at a time, per channel. Another channel may apply the same
//! fork first; ours is then stale and dropped (the core compares its state). Writers
//! never follow (another device with our key is a conflict).
//!
//! Failures: a fork proof or round that does not verify is a bad peer (the channel
//! closes; stricter than JS, which pauses the peer and, by a bug, never asks anyone for
//! that fork again). `NoData` or a timeout: asked again later, at the next tick after the
//! request timeout. After our fork changed (this channel's reorg, another's, or our own
//! truncation), what was in flight is forgotten and what we lack is wanted again.

use std::time::Instant;

use nova_hypercore_managed_core::{Proof, RequestBlock, RequestUpgrade};
use nova_hypercore_serialization::HypercoreError;
use tracing::debug;

use crate::channel::Channel;
use crate::wanted::Wanted;
use crate::wire::{Data, Message, Request};

use super::SessionEvent;
use super::data::unrequested;
use super::serve::send_failed;
use super::state::{ChannelCtx, ChannelState, Pending, Want};

/// A fork of the peer's that this channel is following.
pub(super) struct ForkFollow {
    /// The peer's fork.
    pub(super) fork: u64,
    /// The verified fork proof and the rounds so far; `None` until the proof came.
    pub(super) reorg: Option<nova_hypercore_managed_core::Reorg>,
    /// Rounds the peer declined or let time out: the next one asks for another block.
    pub(super) misses: u64,
}

impl ChannelState {
    /// Whether a fork request is in flight or was declined and waits.
    fn fork_asked(&self) -> bool {
        let is_fork = |w: &Want| matches!(w, Want::ForkProof(_) | Want::ForkHash(_));
        self.pending.values().any(|p| is_fork(&p.want))
            || self.declined.iter().any(|(_, w)| is_fork(w))
    }

    /// Asks the peer for the next step of following its fork, if it is on a higher one
    /// than ours: the fork proof, or the next `hash` round.
    pub(super) async fn maybe_follow_fork(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
    ) -> Result<(), HypercoreError> {
        let core = &ctx.core;
        let ours = core.fork();
        if core.is_writable() || self.remote_fork <= ours || self.remote_length == 0 {
            if self.follow.as_ref().is_some_and(|f| f.fork <= ours) {
                self.follow = None;
            }
            return Ok(());
        }
        if self.fork_asked() {
            return Ok(());
        }
        if self
            .follow
            .as_ref()
            .is_none_or(|f| f.fork != self.remote_fork)
        {
            self.follow = Some(ForkFollow {
                fork: self.remote_fork,
                reorg: None,
                misses: 0,
            });
        }
        let fork = self.remote_fork;
        let want = self
            .follow
            .as_ref()
            .and_then(|f| f.reorg.as_ref())
            .map(|r| r.want());
        let misses = self.follow.as_ref().map_or(0, |f| f.misses);
        let (request_want, hash, upgrade) = match want {
            // A block under the differing node, one the peer holds if we know of any
            // (JS picks at random among those); the leftmost first, the next one after
            // each round the peer declined (a sparse peer may lack a block's nodes).
            Some(Some(w)) => {
                let width = w.end.min(self.remote_length).saturating_sub(w.start).max(1);
                let held = self.remote_has.saturating_sub(w.start).min(width);
                let pick = if held > 0 {
                    misses % held
                } else {
                    misses % width
                };
                (
                    Want::ForkHash(fork),
                    Some(RequestBlock {
                        index: w.start.saturating_add(pick).saturating_mul(2),
                        nodes: w.nodes,
                    }),
                    None,
                )
            }
            // Finished but not applied (a stale apply dropped it): start again.
            Some(None) | None => {
                if let Some(f) = self.follow.as_mut() {
                    f.reorg = None;
                }
                (
                    Want::ForkProof(fork),
                    None,
                    Some(RequestUpgrade {
                        start: 0,
                        length: self.remote_length,
                    }),
                )
            }
        };
        let manifest = upgrade.is_some() && core.needs_manifest();
        let id = self.next_id();
        self.pending.insert(
            id,
            Pending {
                want: request_want,
                asked_manifest: manifest,
                sent: Instant::now(),
            },
        );
        debug!(log = %core.name(), ours, theirs = fork, want = ?request_want, "following the peer's fork");
        ctx.stats
            .update(&ctx.discovery_key, |t| t.requests_sent += 1);
        channel
            .send(Message::Request(Request {
                id,
                fork,
                block: None,
                hash,
                seek: None,
                upgrade,
                manifest,
                priority: 0,
            }))
            .await
            .map_err(send_failed)
    }

    /// The answer to a fork request of ours (its manifest, if any, already stored).
    pub(super) async fn on_fork_data(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
        pending: Pending,
        data: Data,
    ) -> Result<(), HypercoreError> {
        let (Want::ForkProof(fork) | Want::ForkHash(fork)) = pending.want else {
            return Ok(());
        };
        let core = &ctx.core;
        if data.fork != fork || self.follow.as_ref().is_none_or(|f| f.fork != fork) {
            // The peer or we moved on meanwhile.
            debug!(log = %core.name(), fork, theirs = data.fork, "fork answer no longer applies");
            return Ok(());
        }
        let shape_ok = data.block.is_none()
            && data.seek.is_none()
            && match pending.want {
                Want::ForkProof(_) => data.upgrade.is_some() && data.hash.is_none(),
                _ => data.upgrade.is_none() && data.hash.is_some(),
            };
        if !shape_ok {
            return self.reject(ctx, unrequested(ctx, &data, pending.want));
        }
        let proof = Proof {
            fork: data.fork,
            block: None,
            hash: data.hash,
            seek: None,
            upgrade: data.upgrade,
        };
        let finished = match pending.want {
            Want::ForkProof(_) => match core.verify_reorg(&proof).await {
                Ok(Some(reorg)) => {
                    let done = reorg.want().is_none();
                    if let Some(f) = self.follow.as_mut() {
                        f.reorg = Some(reorg);
                    }
                    done
                }
                Ok(None) => {
                    self.follow = None;
                    return Ok(());
                }
                Err(e @ HypercoreError::SignatureInvalid { .. }) => return self.reject(ctx, e),
                Err(e) => return Err(e),
            },
            _ => {
                let Some(reorg) = self.follow.as_mut().and_then(|f| f.reorg.as_mut()) else {
                    return Ok(());
                };
                match core.continue_reorg(reorg, &proof).await {
                    Ok(Some(done)) => done,
                    Ok(None) => {
                        self.follow = None; // our tree changed: start again
                        return Ok(());
                    }
                    Err(e @ HypercoreError::SignatureInvalid { .. }) => {
                        return self.reject(ctx, e);
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if finished {
            self.apply_followed_fork(ctx).await?;
        }
        self.maybe_follow_fork(channel, ctx).await
    }

    /// Applies the finished reorg; the fork change itself is handled where every
    /// channel sees it ([`after_fork_change`](Self::after_fork_change)).
    async fn apply_followed_fork(&mut self, ctx: &ChannelCtx) -> Result<(), HypercoreError> {
        let Some(reorg) = self.follow.take().and_then(|f| f.reorg) else {
            return Ok(());
        };
        if let Some(t) = ctx.core.apply_reorg(&reorg).await? {
            ctx.emit(SessionEvent::Truncated {
                discovery_key: ctx.discovery_key,
                peer: ctx.peer,
                kept: t.kept,
                length: t.length,
                fork: t.fork,
            });
        }
        Ok(())
    }

    /// Our fork changed (a reorg on any channel, or our own truncation): requests in
    /// flight were made at the old fork (their answers are stale or `NoData`), what was
    /// declined may be served now, and blocks from the cut on are wanted again.
    pub(super) fn after_fork_change(&mut self, ctx: &ChannelCtx, fork: u64) {
        debug!(log = %ctx.core.name(), fork, "our fork changed: requests in flight forgotten");
        self.pending
            .retain(|_, p| matches!(p.want, Want::ForkProof(f) | Want::ForkHash(f) if f > fork));
        self.declined.clear();
        self.declined_blocks.clear();
        self.upgrade_pending = false;
        self.wanted = Wanted::default();
        if self.follow.as_ref().is_some_and(|f| f.fork <= fork) {
            self.follow = None;
        }
        let info = ctx.core.watch_progress().borrow().to_owned();
        self.want_all_or_asked(&ctx.core, info.contiguous_length, info.length);
    }
}
