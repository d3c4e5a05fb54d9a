//! Serving the peer's requests: proofs from our core within our length (rule 3 of the
//! `session` docs), each block checked by a verified read before it goes out, replies
//! batched into frames.

use nova_hypercore_managed_core::Proof;
use nova_hypercore_serialization::HypercoreError;
use tracing::{debug, warn};

use crate::channel::Channel;
use crate::wire::{Data, Message, NoData, Request};

use super::data::overflow;
use super::state::{ChannelCtx, ChannelState};
use super::{MAX_WIRE_BLOCK, SessionEvent, failed};

/// The answer to a request we cannot prove: the manifest alone when it asked for one
/// (as JS 11 sends it: a reader asks for it eagerly while our length is 0), else
/// `NoData`, as hypercore 11 answers a block it does not hold, an upgrade past its
/// length or a request at another fork.
fn unprovable(request: &Request, fork: u64, manifest: Option<Vec<u8>>) -> Message {
    match manifest {
        Some(manifest) => Message::Data(Data {
            request: request.id,
            fork,
            manifest: Some(manifest),
            ..Data::default()
        }),
        None => Message::NoData(NoData {
            request: request.id,
            reason: NoData::NOT_AVAILABLE,
        }),
    }
}

/// Messages taken from a channel in one go before replies are flushed.
pub(super) const MAX_DRAIN: usize = 64;
/// Block bytes in one reply batch before it is flushed (frames stay far below the
/// 16 MiB uint24 framing limit whatever the block size).
pub(super) const MAX_REPLY_BYTES: usize = 256 * 1024;

/// `proof` with its block checked before it goes on the wire: the block's bytes are
/// replaced by what [`ManagedCore::get_stored`] returns for it, the verified read (one hash
/// against a known-good leaf, or a walk to a signed root), so no bytes that fail their
/// leaf are ever sent. `None` when the block fails: bytes damaged under a good leaf
/// (the read marks the block missing, durably, and wakes the sessions to fetch it again
/// from peers; reported as [`SessionEvent::DamagedNotSent`] and counted), or not stored
/// (any more) or its tree path does not verify (the core logs that). Other errors
/// (I/O, a closed log) are the session's, as for `serve_proof`.
pub(super) async fn checked(
    ctx: &ChannelCtx,
    mut proof: Proof,
) -> Result<Option<Proof>, HypercoreError> {
    let Some(block) = proof.block.as_mut() else {
        return Ok(Some(proof));
    };
    let seq = block.index;
    match ctx.core.get_stored(seq).await {
        Ok(value) => {
            block.value = value;
            Ok(Some(proof))
        }
        Err(HypercoreError::StorageCorrupted { path, reason, .. }) => {
            warn!(
                log = %ctx.core.name(),
                seq,
                file = %path.display(),
                %reason,
                "block asked for by a peer is damaged in the data file: not sent, marked missing"
            );
            ctx.stats
                .update(&ctx.discovery_key, |t| t.damaged_not_sent += 1);
            ctx.emit(SessionEvent::DamagedNotSent {
                discovery_key: ctx.discovery_key,
                peer: ctx.peer,
                seq,
                path,
                reason,
            });
            Ok(None)
        }
        Err(
            HypercoreError::SignatureInvalid { .. }
            | HypercoreError::OutOfRange { .. }
            | HypercoreError::BlockUnavailable { .. },
        ) => {
            debug!(log = %ctx.core.name(), seq, "block not servable (not stored or not verifying): not sent");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

pub(super) fn send_failed(e: std::io::Error) -> HypercoreError {
    failed(format!("send failed: {e}"))
}

impl ChannelState {
    pub(super) async fn reply(
        &mut self,
        channel: &Channel,
        message: Message,
    ) -> Result<(), HypercoreError> {
        if let Message::Data(Data {
            block: Some(block), ..
        }) = &message
        {
            let bytes = block.value.len() + 32 * block.nodes.len();
            // A large block goes in a frame of its own (a batch must fit one frame).
            if bytes >= MAX_REPLY_BYTES {
                self.send_replies(channel).await?;
            }
            self.reply_bytes += bytes;
        }
        self.replies.push(message);
        if self.reply_bytes >= MAX_REPLY_BYTES {
            self.send_replies(channel).await?;
        }
        Ok(())
    }

    pub(super) async fn send_replies(&mut self, channel: &Channel) -> Result<(), HypercoreError> {
        self.reply_bytes = 0;
        match self.replies.len() {
            0 => Ok(()),
            1 => {
                let message = self.replies.remove(0);
                channel.send(message).await.map_err(send_failed)
            }
            _ => {
                let batch = std::mem::take(&mut self.replies);
                channel.send_batch(&batch).await.map_err(send_failed)
            }
        }
    }

    pub(super) async fn serve(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
        request: Request,
    ) -> Result<(), HypercoreError> {
        debug!(
            id = request.id,
            block = ?request.block.as_ref().map(|b| (b.index, b.nodes)),
            upgrade = ?request.upgrade.as_ref().map(|u| (u.start, u.length)),
            hash = request.hash.is_some(),
            seek = request.seek.is_some(),
            "request from the peer"
        );
        if let Some(u) = &request.upgrade
            && u.start.checked_add(u.length).is_none()
        {
            return self.reject(ctx, overflow(ctx, "request upgrade", u.start, u.length));
        }
        // The manifest goes along when the peer asks for it (a manifest core only).
        let manifest = if request.manifest {
            ctx.core.manifest()
        } else {
            None
        };
        // A request made at another fork cannot be proven at ours: answered as
        // unprovable, as JS does (`replicator.js` `onrequest`; docs/forks.md step 0a).
        let fork = ctx.core.fork();
        if request.fork != fork {
            debug!(log = %ctx.core.name(), ours = fork, theirs = request.fork, "request at another fork");
            return self
                .reply(channel, unprovable(&request, fork, manifest))
                .await;
        }
        // A `hash` (a tree node, JS ignores it beside a block) is what a reader
        // following our fork bisects with (docs/forks.md §4.4), and, with a `seek`,
        // what a reader seeking a byte asks (JS `_requestSeek`; `session/seek.rs`).
        let proof = match (&request.block, &request.hash, &request.seek) {
            (block, hash, Some(seek)) => {
                ctx.core
                    .serve_seek(
                        block.clone(),
                        hash.clone(),
                        nova_hypercore_managed_core::RequestSeek { bytes: seek.bytes },
                        seek.padding,
                        request.upgrade.clone(),
                    )
                    .await?
            }
            (None, Some(hash), None) => {
                ctx.core
                    .serve_hash(hash.clone(), request.upgrade.clone())
                    .await?
            }
            (block, _, None) => {
                ctx.core
                    .serve_proof(block.clone(), request.upgrade.clone())
                    .await?
            }
        };
        // A block too large for one wire message cannot be sent: NoData instead.
        let proof = proof.filter(|p| match &p.block {
            Some(block) if block.value.len() as u64 > MAX_WIRE_BLOCK => {
                let bytes = block.value.len() as u64;
                warn!(
                    log = %ctx.core.name(),
                    seq = block.index,
                    bytes,
                    limit = MAX_WIRE_BLOCK,
                    "block too large for one wire message: answered with NoData"
                );
                ctx.emit(SessionEvent::TooLargeToSend {
                    discovery_key: ctx.discovery_key,
                    peer: ctx.peer,
                    seq: block.index,
                    bytes,
                });
                false
            }
            _ => true,
        });
        // A block goes on the wire only as a verified read returns it; one that fails
        // is answered as a block we do not hold.
        let proof = match proof {
            Some(proof) => checked(ctx, proof).await?,
            None => None,
        };
        let Some(proof) = proof else {
            return self
                .reply(channel, unprovable(&request, fork, manifest))
                .await;
        };
        if let Some(block) = &proof.block {
            let bytes = block.value.len() as u64;
            ctx.stats.update(&ctx.discovery_key, |t| {
                t.blocks_sent += 1;
                t.bytes_sent += bytes;
            });
            ctx.emit(SessionEvent::Sent {
                discovery_key: ctx.discovery_key,
                peer: ctx.peer,
                seq: block.index,
                bytes,
            });
        }
        self.reply(
            channel,
            Message::Data(Data {
                request: request.id,
                fork: proof.fork,
                block: proof.block,
                hash: proof.hash,
                seek: proof.seek,
                upgrade: proof.upgrade,
                manifest,
            }),
        )
        .await
    }
}
