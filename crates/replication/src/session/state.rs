//! One channel's state and its loop (JS `replicator.js`'s `Peer`): what a channel
//! knows of its peer and of what we asked, the loop that takes the peer's messages, our
//! own progress and a tick, and the dispatch of each message to its protocol step
//! (`sync`, `serve`, `request`, `data`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use nova_hypercore_managed_core::ManagedCore;
use nova_hypercore_serialization::HypercoreError;
use tracing::{debug, warn};

use crate::channel::{Channel, Inbound, Inbox};
use crate::wanted::Wanted;
use crate::wire::{Message, NoData};

use super::data::overflow;
use super::fork::ForkFollow;
use super::serve::MAX_DRAIN;
use super::{LogSource, Observer, SessionConfig, SessionEvent, Stats, failed};

/// What a channel's steps share and do not change: the log, the peer, the session's
/// stats, observer and configuration.
pub(super) struct ChannelCtx {
    pub(super) core: ManagedCore,
    pub(super) peer: [u8; 32],
    pub(super) discovery_key: [u8; 32],
    pub(super) stats: Arc<Stats>,
    pub(super) observer: Option<Observer>,
    pub(super) config: SessionConfig,
    pub(super) stop: tokio::sync::watch::Receiver<bool>,
    pub(super) logs: Arc<dyn LogSource>,
}

impl ChannelCtx {
    pub(super) fn emit(&self, event: SessionEvent) {
        if let Some(o) = &self.observer {
            o(&event);
        }
    }
}

/// What one of our requests asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    Upgrade,
    Block(u64),
    /// The manifest alone (the peer has none to upgrade us with yet).
    Manifest,
    /// A fork proof of the peer's fork (an upgrade from 0 at that fork).
    ForkProof(u64),
    /// A `hash` round of following the peer's fork.
    ForkHash(u64),
    /// A seek of byte `bytes`, with the `hash` (tree index) it asked to be proven.
    Seek {
        /// The byte offset.
        bytes: u64,
        /// The flat-tree index of the `hash` request.
        hash: u64,
    },
}

/// A request of ours in flight.
pub(super) struct Pending {
    pub(super) want: Want,
    /// Whether the request set the manifest flag.
    pub(super) asked_manifest: bool,
    pub(super) sent: Instant,
}

/// What a channel knows of its peer and of what we asked it.
pub(super) struct ChannelState {
    pub(super) remote_length: u64,
    pub(super) remote_fork: u64,
    /// Blocks `0..remote_has` the peer said it holds.
    pub(super) remote_has: u64,
    pub(super) announced_contiguous: u64,
    pub(super) announced_length: Option<u64>,
    /// The peer length we last acknowledged in a `Synchronize` (`remote_length`). JS
    /// peers only request an upgrade from a peer that acknowledged their current length.
    pub(super) announced_ack: Option<u64>,
    /// The fork of our last `Synchronize` and whether it offered an upgrade (a new
    /// fork, ours or the peer's, is announced even at the same lengths).
    pub(super) announced_fork: Option<(u64, bool)>,
    pub(super) next_id: u64,
    pub(super) pending: HashMap<u64, Pending>,
    /// Requests the peer answered with `NoData`, and when, oldest first: asked again
    /// after the request timeout.
    pub(super) declined: VecDeque<(Instant, Want)>,
    /// The blocks among `declined` (so `asked` is one lookup, not a scan: a peer that
    /// declines everything made `fill` quadratic).
    pub(super) declined_blocks: HashSet<u64>,
    /// An upgrade (or manifest) request is in flight.
    pub(super) upgrade_pending: bool,
    /// The peer's `Synchronize` said it holds a manifest.
    pub(super) remote_has_manifest: bool,
    /// Ask for the manifest with the next upgrade even if the peer did not announce
    /// one: an upgrade failed only because this replica's manifest is not known yet.
    pub(super) ask_manifest: bool,
    /// Blocks still to request, as ranges (bounded by the gaps, not the length).
    pub(super) wanted: Wanted,
    /// The peer's higher fork we are following, if any (`fork.rs`).
    pub(super) follow: Option<ForkFollow>,
    /// Our fork as this channel last saw it (a change resets what is in flight).
    pub(super) seen_fork: u64,
    /// Replies (data / no-data) waiting to go out as one batch.
    pub(super) replies: Vec<Message>,
    /// Block bytes in `replies`.
    pub(super) reply_bytes: usize,
}

/// One channel, from the peer's pairing to its end: events before and after, and the
/// channel closed when it ends on an error or the log is no longer shared.
pub(super) async fn run_channel(
    mut channel: Channel,
    ctx: ChannelCtx,
) -> Result<(), HypercoreError> {
    let Some(rx) = channel.take_receiver() else {
        return Err(failed("channel has no receiver"));
    };
    ctx.emit(SessionEvent::PeerConnected {
        discovery_key: ctx.discovery_key,
        peer: ctx.peer,
    });
    let result = drive_channel(&channel, rx, &ctx).await;
    ctx.emit(SessionEvent::PeerDisconnected {
        discovery_key: ctx.discovery_key,
        peer: ctx.peer,
    });
    match &result {
        Err(e) => {
            warn!(log = %ctx.core.name(), error = %e, "closing replication channel");
            let _ = channel.close().await;
        }
        Ok(Ended::Unshared) => {
            debug!(log = %ctx.core.name(), "log no longer shared: closing its channel");
            let _ = channel.close().await;
        }
        Ok(Ended::Closed) => {}
    }
    result.map(|_| ())
}

/// Why a channel's loop ended without an error.
enum Ended {
    /// The peer or the connection closed it.
    Closed,
    /// The log was withdrawn from sharing (e.g. replication disabled for it).
    Unshared,
}

/// The channel's loop: the peer's messages (a batch at a time, replies flushed once),
/// our progress (announced), blocks found damaged (asked again), and a tick (timeouts,
/// upgrades, whether the log is still shared); then requests for what is wanted.
async fn drive_channel(
    channel: &Channel,
    mut rx: Inbox,
    ctx: &ChannelCtx,
) -> Result<Ended, HypercoreError> {
    let core = &ctx.core;
    let info = core.info().await?;
    let mut st = ChannelState {
        remote_length: 0,
        remote_fork: 0,
        remote_has: 0,
        announced_contiguous: 0,
        announced_length: None,
        announced_ack: None,
        announced_fork: None,
        next_id: 1,
        pending: HashMap::new(),
        declined: VecDeque::new(),
        declined_blocks: HashSet::new(),
        upgrade_pending: false,
        remote_has_manifest: false,
        ask_manifest: false,
        wanted: Wanted::default(),
        follow: None,
        seen_fork: info.fork,
        replies: Vec::new(),
        reply_bytes: 0,
    };
    // Resume: blocks below our length that we do not hold yet (an interrupted download);
    // `fill` skips the ones we hold, a bounded number per call. A sparse replica wants
    // only what its reads and downloads ask for.
    st.want_all_or_asked(core, info.contiguous_length, info.length);
    let mut wants = core.watch_wants();
    st.announce(channel, core).await?;
    let mut progress = core.watch_progress();
    // Blocks we held that a read found damaged (marked missing): asked for again on
    // this connection, without waiting for a reconnect.
    let mut missing = core.watch_missing();
    let mut tick = tokio::time::interval(ctx.config.tick);
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(Ended::Closed),
            message = rx.recv() => {
                let Some(message) = message else { return Ok(Ended::Closed) };
                st.on_inbound(channel, ctx, message).await?;
                // Take what else has already arrived, so replies go out as one batch
                // (one frame, one encryption, one write) instead of one per request.
                for _ in 1..MAX_DRAIN {
                    let Some(message) = rx.try_recv() else { break };
                    st.on_inbound(channel, ctx, message).await?;
                }
                st.send_replies(channel).await?;
            }
            changed = progress.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Closed);
                }
                let fork = progress.borrow_and_update().fork;
                if fork != st.seen_fork {
                    st.seen_fork = fork;
                    st.after_fork_change(ctx, fork);
                }
                st.announce(channel, core).await?;
                st.maybe_upgrade(channel, ctx).await?;
                st.maybe_follow_fork(channel, ctx).await?;
            }
            changed = missing.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Closed);
                }
                // The damaged blocks lie at or past the contiguous length (their bits
                // are cleared); `fill` skips what we hold and what is in flight.
                let info = core.info().await?;
                st.want_all_or_asked(core, info.contiguous_length, info.length);
            }
            changed = wants.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Closed);
                }
                // A sparse replica's reader or download asks for more, or withdrew.
                st.want_all_or_asked(core, 0, 0);
            }
            _ = tick.tick() => {
                if ctx.logs.lookup(&ctx.discovery_key).is_none() {
                    return Ok(Ended::Unshared);
                }
                st.expire(ctx.config.request_timeout);
                st.maybe_upgrade(channel, ctx).await?;
                st.maybe_follow_fork(channel, ctx).await?;
            }
        }
        st.fill(channel, ctx).await?;
        st.request_seeks(channel, ctx).await?;
    }
}

impl ChannelState {
    /// A message from the peer, or bytes that did not decode as one (a bad peer: the
    /// channel is closed).
    pub(super) async fn on_inbound(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
        inbound: Inbound,
    ) -> Result<(), HypercoreError> {
        match inbound {
            Ok(message) => self.on_message(channel, ctx, message).await,
            Err(e) => self.reject(
                ctx,
                HypercoreError::ReplicationFailed {
                    log: ctx.core.name().to_string(),
                    reason: format!("malformed message from the peer: {e}"),
                },
            ),
        }
    }

    pub(super) async fn on_message(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
        message: Message,
    ) -> Result<(), HypercoreError> {
        match message {
            Message::Synchronize(sync) => {
                debug!(
                    log = %ctx.core.name(),
                    fork = sync.fork,
                    length = sync.length,
                    acked = sync.remote_length,
                    can_upgrade = sync.can_upgrade,
                    "synchronize from the peer"
                );
                self.remote_length = sync.length;
                if sync.fork != self.remote_fork && sync.fork == ctx.core.fork() {
                    // The peer just came to our fork: what we hold is told again. A JS 11
                    // reader drops a `Range` that arrived while it was still on its old
                    // fork, and would never ask us for the blocks appended while it
                    // bisected (docs/forks.md §5; JS writers have that race).
                    self.announced_contiguous = 0;
                }
                self.remote_fork = sync.fork;
                self.remote_has_manifest = sync.has_manifest;
                ctx.emit(SessionEvent::RemoteLength {
                    discovery_key: ctx.discovery_key,
                    peer: ctx.peer,
                    length: sync.length,
                });
                // Acknowledge the peer's length (JS waits for that before upgrading).
                self.announce(channel, &ctx.core).await?;
                self.maybe_upgrade(channel, ctx).await?;
                self.maybe_follow_fork(channel, ctx).await?;
            }
            Message::Range(range) => {
                let Some(end) = range.start.checked_add(range.length) else {
                    return self.reject(ctx, overflow(ctx, "range", range.start, range.length));
                };
                if !range.drop && range.start <= self.remote_has {
                    self.remote_has = self.remote_has.max(end);
                } else if range.drop && range.length > 0 && range.start < self.remote_has {
                    // The peer cleared or truncated them (JS `onhave` with `drop`): its
                    // contiguous prefix now ends where the drop starts.
                    self.remote_has = range.start;
                }
            }
            Message::Request(request) => self.serve(channel, ctx, request).await?,
            Message::Data(data) => self.on_data(channel, ctx, data).await?,
            Message::NoData(NoData { request, reason }) => {
                // The peer cannot serve it now: ask again after the request timeout
                // (not at once, which would ping-pong as fast as the link allows).
                if let Some(p) = self.pending.remove(&request) {
                    debug!(request, reason, want = ?p.want, "peer has no data for it; asking again later");
                    self.decline(p.want);
                }
            }
            other => debug!(message = other.name(), "ignored message"),
        }
        Ok(())
    }
}
