//! Synchronize and upgrades: telling the peer our length and what we hold
//! (`Synchronize`, `Range`), and asking for an upgrade to the peer's length, with the
//! manifest when this replica still needs it (rule 1 of the `session` docs).

use std::time::Instant;

use nova_hypercore_managed_core::{ManagedCore, RequestUpgrade};
use nova_hypercore_serialization::HypercoreError;

use crate::channel::Channel;
use crate::wire::{Message, Range, Request, Synchronize};

use super::serve::send_failed;
use super::state::{ChannelCtx, ChannelState, Pending, Want};

impl ChannelState {
    /// Tells the peer our length (and what we hold) whenever it changed.
    pub(super) async fn announce(
        &mut self,
        channel: &Channel,
        core: &ManagedCore,
    ) -> Result<(), HypercoreError> {
        let info = core.info().await?;
        let mut batch = Vec::new();
        // Across forks JS acknowledges no length and offers no upgrade (docs/forks.md
        // step 0c).
        let same_fork = self.remote_fork == info.fork;
        // Our fork moved since the last announce (a truncation or a reorg).
        let fork_moved = self
            .announced_fork
            .is_some_and(|(fork, _)| fork != info.fork);
        let ack = if same_fork { self.remote_length } else { 0 };
        if self.announced_length != Some(info.length)
            || self.announced_ack != Some(ack)
            || self.announced_fork != Some((info.fork, same_fork))
        {
            tracing::debug!(
                log = %core.name(),
                fork = info.fork,
                length = info.length,
                acked = ack,
                can_upgrade = same_fork,
                "synchronize to the peer"
            );
            batch.push(Message::Synchronize(Synchronize {
                fork: info.fork,
                length: info.length,
                remote_length: ack,
                can_upgrade: same_fork,
                uploading: true,
                downloading: true,
                has_manifest: core.has_manifest(),
                allow_push: false,
            }));
            self.announced_length = Some(info.length);
            self.announced_ack = Some(ack);
            self.announced_fork = Some((info.fork, same_fork));
        }
        if info.contiguous_length < self.announced_contiguous {
            // Blocks we announced are gone. After a truncation the retracted ones are
            // announced as dropped (JS `onhave(start, length, drop)`), so peers stop
            // asking us for them. A block cleared or found damaged is not: peers track
            // what we hold as a prefix (ours do), and a drop in the middle would hide
            // every block after it; asking us for it just gets `NoData`.
            if fork_moved {
                batch.push(Message::Range(Range {
                    drop: true,
                    start: info.contiguous_length,
                    length: self.announced_contiguous - info.contiguous_length,
                }));
            }
            self.announced_contiguous = info.contiguous_length;
        } else if info.contiguous_length > self.announced_contiguous {
            batch.push(Message::Range(Range {
                drop: false,
                start: self.announced_contiguous,
                length: info.contiguous_length - self.announced_contiguous,
            }));
            self.announced_contiguous = info.contiguous_length;
        }
        if !batch.is_empty() {
            channel.send_batch(&batch).await.map_err(send_failed)?;
        }
        Ok(())
    }

    /// Rule 1: one upgrade in flight, on its own, from our length to theirs. A replica
    /// still waiting for its manifest asks for it with the upgrade when the peer has
    /// one (as JS 11 does), or alone when there is nothing to upgrade to yet.
    pub(super) async fn maybe_upgrade(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
    ) -> Result<(), HypercoreError> {
        if self.upgrade_pending || ctx.core.is_writable() {
            return Ok(());
        }
        let info = ctx.core.info().await?;
        let needs_manifest = ctx.core.needs_manifest();
        let manifest = needs_manifest && (self.remote_has_manifest || self.ask_manifest);
        let upgrade = self.remote_length > info.length && self.remote_fork == info.fork;
        // The manifest alone only from a peer that announced one.
        let manifest_alone = manifest && self.remote_has_manifest;
        if !(upgrade || manifest_alone) {
            return Ok(());
        }
        let want = if upgrade {
            Want::Upgrade
        } else {
            Want::Manifest
        };
        let id = self.next_id();
        self.upgrade_pending = true;
        self.pending.insert(
            id,
            Pending {
                want,
                asked_manifest: manifest,
                sent: Instant::now(),
            },
        );
        ctx.stats
            .update(&ctx.discovery_key, |t| t.requests_sent += 1);
        channel
            .send(Message::Request(Request {
                id,
                fork: info.fork,
                block: None,
                hash: None,
                seek: None,
                upgrade: upgrade.then(|| RequestUpgrade {
                    start: info.length,
                    length: self.remote_length - info.length,
                }),
                manifest,
                priority: 0,
            }))
            .await
            .map_err(send_failed)
    }
}
