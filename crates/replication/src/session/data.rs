//! Applying what the peer sends: data that answers a request of ours, verified before
//! it is stored (rule 4 of the `session` docs), manifests, and refusals of anything
//! else (a bad peer: the channel closes).

use std::time::Instant;

use nova_hypercore_managed_core::Proof;
use nova_hypercore_serialization::HypercoreError;
use tracing::{debug, warn};

use crate::channel::Channel;
use crate::wire::Data;

use super::SessionEvent;
use super::state::{ChannelCtx, ChannelState, Want};

/// Data that does not answer the request it names: a bad peer.
pub(super) fn unrequested(ctx: &ChannelCtx, data: &Data, want: Want) -> HypercoreError {
    HypercoreError::Unauthorized {
        log: Some(ctx.core.name().to_string()),
        reason: format!(
            "peer sent data that does not answer request {} ({want:?})",
            data.request
        ),
    }
}

/// A peer-sent `start + length` that does not fit a u64: a bad peer.
pub(super) fn overflow(ctx: &ChannelCtx, what: &str, start: u64, length: u64) -> HypercoreError {
    HypercoreError::ReplicationFailed {
        log: ctx.core.name().to_string(),
        reason: format!("peer sent a {what} whose end overflows: start {start} + length {length}"),
    }
}

impl ChannelState {
    pub(super) async fn on_data(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
        data: Data,
    ) -> Result<(), HypercoreError> {
        let Some(pending) = self.pending.remove(&data.request) else {
            // A late answer to a request we gave up on, or one we never sent.
            return Ok(());
        };
        let core = &ctx.core;
        // A manifest is checked against the core key and stored before any proof is
        // verified under it; one whose hash is not the key is a bad peer.
        if let Some(manifest) = &data.manifest {
            match core.set_manifest(manifest).await {
                Ok(()) => {}
                Err(e @ HypercoreError::SignatureInvalid { .. }) => return self.reject(ctx, e),
                Err(e) => return Err(e),
            }
        }
        let nothing_proven = data.block.is_none()
            && data.upgrade.is_none()
            && data.hash.is_none()
            && data.seek.is_none();
        if pending.want == Want::Manifest || (nothing_proven && data.manifest.is_some()) {
            if !nothing_proven {
                return self.reject(ctx, unrequested(ctx, &data, pending.want));
            }
            // The manifest alone (stored above, if sent): asked for on its own, or what
            // a JS 11 peer sends when it cannot prove what we asked for.
            if pending.want == Want::Manifest && data.manifest.is_some() {
                self.upgrade_pending = false;
                return self.maybe_upgrade(channel, ctx).await;
            }
            self.decline(pending.want);
            return Ok(());
        }
        if matches!(pending.want, Want::ForkProof(_) | Want::ForkHash(_)) {
            return self.on_fork_data(channel, ctx, pending, data).await;
        }
        let info = core.info().await?;
        // A proof at another fork (the peer moved on, or has not followed ours yet) is
        // stale, not hostile: asked again later (docs/forks.md step 0b). A manifest is
        // the same on every fork (taken above).
        if data.fork != info.fork {
            debug!(log = %core.name(), ours = info.fork, theirs = data.fork, request = data.request, "data at another fork: asked again later");
            self.decline(pending.want);
            return Ok(());
        }
        // Refuse shapes we did not ask for before they reach the storage engine.
        let shape_ok = match pending.want {
            Want::Upgrade => data.block.is_none() && data.upgrade.is_some(),
            Want::Manifest | Want::ForkProof(_) | Want::ForkHash(_) => false,
            Want::Block(seq) => {
                data.upgrade.is_none()
                    && data
                        .block
                        .as_ref()
                        .is_some_and(|b| b.index == seq && seq < info.length)
            }
            // The hash proof asked for, with the seek proof inside it unless the node
            // where the byte falls is on the hash's own path (then JS sends none).
            Want::Seek { bytes, hash } => {
                data.block.is_none()
                    && data.upgrade.is_none()
                    && data.hash.as_ref().is_some_and(|h| h.index == hash)
                    && data.seek.as_ref().is_none_or(|s| s.bytes == bytes)
            }
        };
        if !shape_ok {
            return self.reject(ctx, unrequested(ctx, &data, pending.want));
        }
        let sent_manifest = data.manifest.is_some();
        let block = data.block.as_ref().map(|b| (b.index, b.value.len() as u64));
        let proof = Proof {
            fork: data.fork,
            block: data.block,
            hash: data.hash,
            seek: data.seek,
            upgrade: data.upgrade,
        };
        match core.apply_proof(proof).await {
            Ok(true) => {
                if let Some((seq, bytes)) = block {
                    let now = Instant::now();
                    ctx.stats.update(&ctx.discovery_key, |t| {
                        t.blocks_received += 1;
                        t.bytes_received += bytes;
                        t.first_received_at.get_or_insert(now);
                        t.last_received_at = Some(now);
                    });
                    ctx.emit(SessionEvent::Received {
                        discovery_key: ctx.discovery_key,
                        peer: ctx.peer,
                        seq,
                        bytes,
                    });
                }
                if pending.want == Want::Upgrade {
                    self.upgrade_pending = false;
                    let now = core.info().await?;
                    self.want_all_or_asked(core, info.length, now.length);
                    self.maybe_upgrade(channel, ctx).await?;
                }
                Ok(())
            }
            // A seek proof that brought nothing new (another channel's answer came
            // first, or our tree changed): asked again after the request timeout, not at
            // once.
            Ok(false) if matches!(pending.want, Want::Seek { .. }) => {
                self.decline(pending.want);
                Ok(())
            }
            Ok(false) => {
                self.retry(pending.want);
                Ok(())
            }
            // A replica opened by core key cannot verify a manifest core's upgrade
            // before it has the manifest: not a bad peer yet. Ask again for the
            // upgrade, now with the manifest; a second failure is one.
            Err(HypercoreError::SignatureInvalid { .. })
                if core.needs_manifest() && !sent_manifest && !pending.asked_manifest =>
            {
                debug!(log = %core.name(), "upgrade needs the manifest: asking for it");
                self.ask_manifest = true;
                self.retry(pending.want);
                self.maybe_upgrade(channel, ctx).await
            }
            Err(e @ HypercoreError::SignatureInvalid { .. }) => self.reject(ctx, e),
            Err(e) => Err(e),
        }
    }

    pub(super) fn reject(
        &mut self,
        ctx: &ChannelCtx,
        error: HypercoreError,
    ) -> Result<(), HypercoreError> {
        ctx.stats.update(&ctx.discovery_key, |t| t.rejected += 1);
        warn!(log = %ctx.core.name(), error = %error, "refused data from peer");
        ctx.emit(SessionEvent::Rejected {
            discovery_key: ctx.discovery_key,
            peer: ctx.peer,
            reason: format!("{}: {error}", error.code()),
        });
        Err(error)
    }
}
