//! Asking the peer where a byte offset falls (JS `replicator.js` `_requestSeek`, the
//! `seek` handling of `ondata`): for each byte a waiting seek of our core looks for
//! ([`ManagedCore::wanted_seeks`]) whose tree nodes we lack
//! ([`SeekState::Span`]: the node whose children we do not hold), a
//! `Request {hash: {index: 2 * seq, nodes: depth}, seek: {bytes, padding}}` for a
//! block `seq` of the span that the peer holds, as JS sends it (`padding` 8 when our
//! core is encrypted: its byte offsets count the plaintext's bytes, else 0). The answer's `hash` and
//! `seek` proofs are verified against our tree and their nodes stored
//! ([`ManagedCore::apply_proof`]); no block value is asked for. The waiting seek then
//! walks further down, and asks again if it still lacks nodes (each answer proves at
//! least the node's two children, so this ends).
//!
//! One request in flight per byte offset and channel, at most [`MAX_SEEKS`] offsets
//! per call. A proof that does not verify is a bad peer (the channel closes); `NoData`
//! or a timeout: asked again after the request timeout.

use std::time::Instant;

use nova_hypercore_managed_core::{RequestBlock, SeekState};
use nova_hypercore_serialization::HypercoreError;
use tracing::{debug, warn};

use crate::channel::Channel;
use crate::wire::{Message, Request, RequestSeek};

use super::request::send_requests;
use super::state::{ChannelCtx, ChannelState, Pending, Want};

/// Byte offsets asked about per call (the rest wait for the next call).
pub(super) const MAX_SEEKS: usize = 16;

impl ChannelState {
    /// Whether a seek of `bytes` is in flight on this channel, or was declined and
    /// waits for the request timeout.
    fn seek_asked(&self, bytes: u64) -> bool {
        let same = |w: &Want| matches!(w, Want::Seek { bytes: b, .. } if *b == bytes);
        self.pending.values().any(|p| same(&p.want)) || self.declined.iter().any(|(_, w)| same(w))
    }

    /// Asks the peer to prove the tree nodes our waiting seeks lack.
    pub(super) async fn request_seeks(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
    ) -> Result<(), HypercoreError> {
        let core = &ctx.core;
        let seeks = core.wanted_seeks();
        if seeks.is_empty() {
            return Ok(());
        }
        let fork = core.fork();
        // A peer on another fork would prove another tree (JS `_requestSeek`).
        if self.remote_fork != fork {
            return Ok(());
        }
        let held = self.remote_has.min(self.remote_length);
        let mut batch = Vec::new();
        for bytes in seeks.into_iter().take(MAX_SEEKS) {
            if self.seek_asked(bytes) {
                continue;
            }
            let (start, depth) = match core.seek_state(bytes).await {
                Ok(SeekState::Span { start, depth, .. }) => (start, depth),
                // Found (the seek returns), or past the length (an upgrade comes first).
                Ok(_) => continue,
                Err(e @ HypercoreError::SignatureInvalid { .. }) => {
                    warn!(log = %core.name(), bytes, error = %e, "seek: our tree does not verify");
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Any block under the node proves the path down to the byte; the first one
            // the peer holds (JS picks one at random among those).
            if start >= held {
                continue;
            }
            let Some(index) = start.checked_mul(2) else {
                continue;
            };
            let id = self.next_id();
            self.pending.insert(
                id,
                Pending {
                    want: Want::Seek { bytes, hash: index },
                    asked_manifest: false,
                    sent: Instant::now(),
                },
            );
            debug!(log = %core.name(), bytes, seq = start, depth, "asking the peer to seek");
            batch.push(Message::Request(Request {
                id,
                fork,
                block: None,
                hash: Some(RequestBlock {
                    index,
                    nodes: depth,
                }),
                seek: Some(RequestSeek {
                    bytes,
                    padding: core.padding(),
                }),
                upgrade: None,
                manifest: false,
                priority: 0,
            }));
        }
        send_requests(channel, ctx, &batch).await
    }
}
