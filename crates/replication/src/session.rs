//! One replication session: many logs over one connection, one channel per log.
//!
//! The request shapes follow `../shared/notes/replication-field-notes.md` (chosen when the
//! storage engine was the `hypercore` 0.17 crate; our own core handles the other shapes
//! too, so these are conservative, not required):
//! 1. one upgrade in flight, on its own: `{start: local length, length: remote - start}`;
//! 2. blocks only below the local length, with `nodes = missing_nodes(i)` at send time;
//! 3. serve only blocks we hold and upgrades within our length (`serve_proof`), each
//!    block's bytes as a verified read returns them (one hash against its leaf): a
//!    block whose stored bytes are damaged is answered with `NoData` and marked missing,
//!    the channel stays;
//! 4. a proof that does not verify means a bad peer: the channel is closed, the log is
//!    untouched; a stale one is dropped and asked again.
//!
//! Manifest cores (hypercore 11 "v1", as JS 11 does it): a writer's `Synchronize` sets
//! `has_manifest`, and its `Data` carries the encoded manifest when the request set
//! `manifest` (alone, when there is nothing to prove: an empty core). A replica opened by
//! core key that still needs its manifest sets `manifest` on its upgrade request while
//! the peer has one (or asks for the manifest alone while the peer's length is 0); a
//! received manifest goes to `set_manifest` (hash == core key, stored) before the proof
//! it came with is verified. A wrong manifest is a bad peer (`SIGNATURE_INVALID`). An
//! upgrade that fails only because the manifest is not known yet is asked again with the
//! manifest flag; failing again is a bad peer. A legacy core settles by its first
//! verified upgrade.
//!
//! Data a peer sends that we did not ask for, or in a shape the storage engine mishandles
//! (a block batched with an upgrade beyond our length), is refused before it reaches the
//! engine.
//!
//! Here: the session's public side (the logs it offers, events, transfer stats,
//! configuration) and the connection's loop (channels opened per log, frames in and
//! out). One channel's protocol, by step as JS's `replicator.js` reads: `state` (what a
//! channel keeps, its loop, the dispatch), `sync` (Synchronize, Range, upgrades),
//! `request` (wanted blocks, requests in flight, timeouts), `seek` (byte offsets
//! our waiting seeks ask the peer to prove), `serve` (the peer's requests) and `data` (what the peer sends, verified).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use nova_hypercore_managed_core::ManagedCore;
use nova_hypercore_serialization::HypercoreError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::debug;

use crate::cipher::{CipherEvent, CipherTrait};
use crate::protomux::{Cursor, Delivery, Event, Mux, Step};
use crate::transport::{Ending, encrypt};

mod data;
mod fork;
mod request;
mod seek;
mod serve;
mod state;
mod sync;

use serve::*;
use state::*;

/// Where a session finds logs: the ones it offers, and any a peer asks for by key.
pub trait LogSource: Send + Sync + 'static {
    /// Logs to open channels for as soon as a connection is up.
    fn announced(&self) -> Vec<ManagedCore>;
    /// The log with this discovery key, if we have it. A peer only ever gets a log whose
    /// key it already knows: channels open only when both sides name the same key.
    fn lookup(&self, discovery_key: &[u8; 32]) -> Option<ManagedCore>;
    /// Changes whenever the announced set changes, so running sessions open channels
    /// for newly shared logs on the connections they already have. `None`: fixed set.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// A fixed set of logs, all announced.
#[derive(Debug, Default, Clone)]
pub struct LogSet {
    logs: Arc<Mutex<HashMap<[u8; 32], ManagedCore>>>,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl LogSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a log (replacing one with the same discovery key).
    pub fn insert(&self, core: ManagedCore) {
        self.lock().insert(core.discovery_key(), core);
        self.changes.send_modify(|g| *g += 1);
    }

    /// Removes a log.
    pub fn remove(&self, discovery_key: &[u8; 32]) {
        self.lock().remove(discovery_key);
        self.changes.send_modify(|g| *g += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], ManagedCore>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LogSource for LogSet {
    fn announced(&self) -> Vec<ManagedCore> {
        self.lock().values().cloned().collect()
    }

    fn lookup(&self, discovery_key: &[u8; 32]) -> Option<ManagedCore> {
        self.lock().get(discovery_key).cloned()
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }
}

/// What a session reports as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A channel for a log is open with a peer.
    PeerConnected {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer's Noise public key.
        peer: [u8; 32],
    },
    /// That channel closed.
    PeerDisconnected {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer.
        peer: [u8; 32],
    },
    /// The peer announced its length.
    RemoteLength {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer.
        peer: [u8; 32],
        /// Its length.
        length: u64,
    },
    /// A verified block was stored.
    Received {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer.
        peer: [u8; 32],
        /// Block index.
        seq: u64,
        /// Block size.
        bytes: u64,
    },
    /// A block was sent.
    Sent {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer.
        peer: [u8; 32],
        /// Block index.
        seq: u64,
        /// Block size.
        bytes: u64,
    },
    /// Data from the peer was refused; the channel was closed, the log is untouched.
    Rejected {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer.
        peer: [u8; 32],
        /// Code and message of the refusal (`SIGNATURE_INVALID` / `UNAUTHORIZED`).
        reason: String,
    },
    /// The peer refused our channel for a log (a protomux reject: it does not have or
    /// share that log). That channel is closed locally; the connection stays.
    Refused {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer.
        peer: [u8; 32],
    },
    /// This replica followed the peer's truncation (docs/forks.md): it is on the peer's
    /// new fork, blocks `kept..` of the old one are gone (JS `truncate(ancestors,
    /// forkId)`), and it fetches the new fork's blocks from here on.
    Truncated {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer whose fork proof it followed.
        peer: [u8; 32],
        /// Blocks kept from the old fork.
        kept: u64,
        /// The new length.
        length: u64,
        /// The new fork id.
        fork: u64,
    },
    /// A block the peer asked for is larger than one wire message can carry
    /// ([`MAX_WIRE_BLOCK`]; a log written elsewhere may hold one): it was answered with
    /// `NoData`, the connection stays.
    TooLargeToSend {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer.
        peer: [u8; 32],
        /// Block index.
        seq: u64,
        /// Block size.
        bytes: u64,
    },
    /// A block the peer asked for failed its check before sending: its bytes in the
    /// `data` file do not hash to its (good) leaf. It was not sent: the peer got
    /// `NoData` ([`NoData::NOT_AVAILABLE`](crate::wire::NoData::NOT_AVAILABLE), as for
    /// a block we do not hold) and the channel stays up. The block is now marked missing
    /// (durably, as a local read of it does), so sessions fetch it again from peers
    /// that hold it. `path` and `reason` are those of the read's `STORAGE_CORRUPTED`.
    DamagedNotSent {
        /// The log.
        discovery_key: [u8; 32],
        /// The peer that asked.
        peer: [u8; 32],
        /// Block index.
        seq: u64,
        /// The log's data file.
        path: std::path::PathBuf,
        /// What failed (names the blocks and the data file).
        reason: String,
    },
}

/// The largest block replication carries: 16 MiB minus 64 KiB. A block travels in one
/// `Data` message, which must fit one secret-stream frame (uint24 length: 16 MiB - 1
/// bytes, the same bound as JS `@hyperswarm/secret-stream`), with room for its proof.
/// The manager refuses larger appends (`PAYLOAD_TOO_LARGE`).
pub const MAX_WIRE_BLOCK: u64 = 16 * 1024 * 1024 - 64 * 1024;

/// Counters of what crossed the wire for one log (all peers, all connections).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Blocks sent in `Data` messages.
    pub blocks_sent: u64,
    /// Payload bytes of those blocks.
    pub bytes_sent: u64,
    /// Verified blocks received and stored.
    pub blocks_received: u64,
    /// Payload bytes of those blocks.
    pub bytes_received: u64,
    /// Proofs refused (bad signature, unrequested, unsafe shape).
    pub rejected: u64,
    /// Blocks asked for that were not sent because their stored bytes failed the check
    /// against their leaf (see [`SessionEvent::DamagedNotSent`]).
    pub damaged_not_sent: u64,
    /// Requests sent (blocks and upgrades).
    pub requests_sent: u64,
    /// When the first verified block was stored.
    pub first_received_at: Option<Instant>,
    /// When the latest verified block was stored.
    pub last_received_at: Option<Instant>,
}

impl Transfer {
    /// Download speed: payload bytes received per second between the first and the
    /// latest stored block (`None` before two blocks arrived at distinct instants).
    pub fn receive_rate(&self) -> Option<f64> {
        let (first, last) = (self.first_received_at?, self.last_received_at?);
        let secs = last.duration_since(first).as_secs_f64();
        (secs > 0.0).then(|| self.bytes_received as f64 / secs)
    }
}

/// Per-log transfer counters shared by every session of a [`Replicator`].
#[derive(Debug)]
pub struct Stats {
    logs: Mutex<HashMap<[u8; 32], Transfer>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            logs: Mutex::new(HashMap::new()),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Stats {
    /// Counters for one log.
    pub fn get(&self, discovery_key: &[u8; 32]) -> Transfer {
        self.lock().get(discovery_key).copied().unwrap_or_default()
    }

    /// Waits (without polling) until the counters of a log satisfy `done`, or `timeout`
    /// passes; returns the counters either way.
    pub async fn wait_until(
        &self,
        discovery_key: &[u8; 32],
        timeout: Duration,
        done: impl Fn(&Transfer) -> bool,
    ) -> Transfer {
        let mut changes = self.changed.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            loop {
                changes.borrow_and_update();
                if done(&self.get(discovery_key)) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        self.get(discovery_key)
    }

    fn update(&self, discovery_key: &[u8; 32], f: impl FnOnce(&mut Transfer)) {
        f(self.lock().entry(*discovery_key).or_default());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Transfer>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Callback for [`SessionEvent`]s.
pub type Observer = Arc<dyn Fn(&SessionEvent) + Send + Sync>;

/// Tunables of a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Block requests in flight per channel.
    pub window: usize,
    /// A request unanswered for this long is asked again.
    pub request_timeout: Duration,
    /// How often timeouts are checked.
    pub tick: Duration,
    /// A connection on which no channel is open (paired by both sides) for this long is
    /// closed, cleanly: a peer that completes the handshake and then shares nothing
    /// does not hold a connection slot for ever (its keepalives do not count).
    pub idle_timeout: Duration,
    /// Times the peer may open the channel of one log within a minute on one
    /// connection (each pairing starts a channel task and a sync); past it the
    /// connection is a protocol violation. Real peers open a log's channel once per
    /// connection, again only when a log is shared anew.
    pub max_channel_opens_per_minute: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            window: 64,
            request_timeout: Duration::from_secs(10),
            tick: Duration::from_millis(500),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_channel_opens_per_minute: 32,
        }
    }
}

/// Default [`SessionConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs replication sessions for a set of logs.
#[derive(Clone)]
pub struct Replicator {
    logs: Arc<dyn LogSource>,
    observer: Option<Observer>,
    stats: Arc<Stats>,
    config: SessionConfig,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn failed(reason: impl Into<String>) -> HypercoreError {
    HypercoreError::ReplicationFailed {
        log: "connection".into(),
        reason: reason.into(),
    }
}

impl Replicator {
    /// Opens a channel for every announced log that has none on this connection yet.
    fn announce(
        &self,
        opened: &mut HashSet<[u8; 32]>,
        mux: &mut Mux,
    ) -> Result<(), HypercoreError> {
        for core in self.logs.announced() {
            if opened.insert(core.discovery_key()) {
                mux.open(core.public_key()).map_err(violation)?;
            }
        }
        Ok(())
    }

    /// A replicator serving and fetching the logs of `logs`.
    pub fn new(logs: Arc<dyn LogSource>) -> Self {
        Replicator {
            logs,
            observer: None,
            stats: Arc::new(Stats::default()),
            config: SessionConfig::default(),
        }
    }

    /// Counts into `stats` (shared with other replicators) instead of its own.
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }

    /// Reports every [`SessionEvent`] to `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Overrides the tunables.
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Transfer counters of every session run by this replicator.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Replicates over `stream` until the peer disconnects or the stream fails.
    /// `initiator`: whether this side opened the connection (exactly one side is).
    /// A clean end of the stream is `Ok`; a broken one `REPLICATION_FAILED`.
    pub async fn run<S>(&self, stream: S, initiator: bool) -> Result<(), HypercoreError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (cipher, ended) = encrypt(stream, initiator).await?;
        self.run_encrypted(cipher, ended).await
    }

    /// Replicates over an already encrypted, message-framed connection (a swarm's
    /// secret stream, or [`encrypt`]'s output). `ended` reports the end of the
    /// transport under the cipher. Frames are read and written through the
    /// connection's protomux table ([`Mux`]: channel pairing, capabilities, hygiene).
    pub async fn run_encrypted<C>(
        &self,
        mut cipher: C,
        mut ended: tokio::sync::watch::Receiver<Ending>,
    ) -> Result<(), HypercoreError>
    where
        C: CipherTrait + 'static,
    {
        let peer = cipher.remote_public_key().unwrap_or_default();
        let Some(handshake_hash) = cipher.handshake_hash() else {
            return Err(failed("the connection has no handshake hash"));
        };
        let (out_tx, mut out_rx) = mpsc::channel(OUTGOING_FRAMES);
        let mut mux = Mux::new(cipher.is_initiator(), handshake_hash, out_tx);
        let mut opened: HashSet<[u8; 32]> = HashSet::new();
        let mut channels = JoinSet::new();
        // One stop switch per channel: flipped when the peer closes it or we end.
        let mut stops: HashMap<[u8; 32], tokio::sync::watch::Sender<bool>> = HashMap::new();
        let mut changes = self.logs.changes();
        // The frame being read, and a message waiting for room in its channel's queue
        // (while one waits, nothing more is read: backpressure, not loss).
        let mut reading: Option<(Vec<u8>, Cursor)> = None;
        let mut waiting: Option<Delivery> = None;
        let mut opens = Opens::default();
        // Armed while no channel is open; reset when the last one ends.
        let idle = tokio::time::sleep(self.config.idle_timeout);
        tokio::pin!(idle);
        let mut idle_armed = true;
        let mut result = self.announce(&mut opened, &mut mux);
        while result.is_ok() {
            if waiting.is_none()
                && let Some((frame, cursor)) = &mut reading
            {
                match mux.step(frame, cursor) {
                    Ok(Step::Done) => reading = None,
                    Ok(Step::Continue) => {}
                    Ok(Step::Deliver(d)) => {
                        if let Err(d) = d.try_deliver() {
                            waiting = Some(*d);
                        }
                    }
                    Err(e) => {
                        result = Err(violation(e));
                        break;
                    }
                }
            }
            if let Err(e) = self.flush(&mut mux, &mut cipher).await {
                result = Err(e);
                break;
            }
            while let Some(event) = mux.take_event() {
                let state = Connection {
                    peer,
                    opened: &mut opened,
                    stops: &mut stops,
                    channels: &mut channels,
                    opens: &mut opens,
                };
                if let Err(e) = self.on_event(event, &mut mux, state) {
                    result = Err(e);
                }
            }
            if result.is_err() {
                break;
            }
            if reading.is_some() && waiting.is_none() {
                continue; // the rest of the frame first
            }
            if !channels.is_empty() {
                idle_armed = false;
            } else if !idle_armed {
                idle.as_mut()
                    .reset(tokio::time::Instant::now() + self.config.idle_timeout);
                idle_armed = true;
            }
            let room = waiting.as_ref().map(Delivery::room);
            tokio::select! {
                frame = cipher.next(), if reading.is_none() && waiting.is_none() => match frame {
                    None => break,
                    Some(CipherEvent::Message(frame)) => reading = Some((frame, Cursor::default())),
                    Some(CipherEvent::ErrStuff(e)) if is_clean_end(&e) => break,
                    Some(CipherEvent::ErrStuff(e)) => {
                        result = Err(failed(format!("stream error: {e}")));
                    }
                },
                slot = async move {
                    match room {
                        Some(room) => room.await,
                        None => std::future::pending().await,
                    }
                }, if waiting.is_some() => {
                    // No slot: the channel is gone, and so is the message.
                    if let (Some(slot), Some(d)) = (slot, waiting.take()) {
                        slot.send(d);
                    } else {
                        waiting = None;
                    }
                }
                Some(out) = out_rx.recv() => {
                    if let Some(frame) = mux.outgoing(out)
                        && let Err(e) = cipher.send(frame).await
                    {
                        result = Err(send_failed(e));
                    }
                }
                Some(()) = changed(&mut changes) => {
                    // Newly shared logs get channels on this connection too.
                    result = self.announce(&mut opened, &mut mux);
                }
                changed = ended.changed() => {
                    let ending = ended.borrow().clone();
                    if let (Ok(()), Some(Err(reason))) = (changed, ending) {
                        result = Err(failed(reason));
                    }
                    break;
                }
                Some(done) = channels.join_next(), if !channels.is_empty() => {
                    if let Ok(Err(e)) = done {
                        debug!(error = %e, "channel ended with an error");
                    }
                }
                () = &mut idle, if idle_armed && channels.is_empty() => {
                    debug!(
                        peer = %crate::protomux::hex(&peer),
                        after = ?self.config.idle_timeout,
                        "no log shared on this connection: closing it"
                    );
                    break;
                }
            }
        }
        // Let channels finish (each reports its peer as gone), then drop stragglers.
        drop(out_rx);
        drop(mux);
        for stop in stops.values() {
            let _ = stop.send(true);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while channels.join_next().await.is_some() {}
        })
        .await;
        channels.abort_all();
        result
    }

    /// Writes the frames the table queued (opens, rejects, closes).
    async fn flush<C: CipherTrait>(
        &self,
        mux: &mut Mux,
        cipher: &mut C,
    ) -> Result<(), HypercoreError> {
        while let Some(frame) = mux.take_frame() {
            cipher.send(frame).await.map_err(send_failed)?;
        }
        Ok(())
    }

    /// Acts on one event of the channel table.
    fn on_event(
        &self,
        event: Event,
        mux: &mut Mux,
        conn: Connection<'_>,
    ) -> Result<(), HypercoreError> {
        let peer = conn.peer;
        match event {
            // Never a second channel for a key we already opened.
            Event::DiscoveryKey(dk) if !conn.opened.contains(&dk) => match self.logs.lookup(&dk) {
                Some(core) => {
                    conn.opened.insert(dk);
                    mux.open(core.public_key()).map_err(violation)?;
                }
                // Not ours to share: refuse it, as JS protomux does, so that sharing
                // the log later pairs a fresh open.
                None => mux.reject_remote(&dk),
            },
            Event::DiscoveryKey(_) => {}
            Event::Channel(channel) => {
                let dk = *channel.discovery_key();
                let limit = self.config.max_channel_opens_per_minute;
                if !conn.opens.allow(dk, limit) {
                    return Err(failed(format!(
                        "protocol violation: the peer opened the channel of log {} more than {limit} times in a minute",
                        crate::protomux::hex(&dk)
                    )));
                }
                match self.logs.lookup(&dk) {
                    Some(core) => {
                        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                        if let Some(old) = conn.stops.insert(dk, stop_tx) {
                            let _ = old.send(true);
                        }
                        let ctx = ChannelCtx {
                            core,
                            peer,
                            discovery_key: dk,
                            stats: self.stats.clone(),
                            observer: self.observer.clone(),
                            config: self.config,
                            stop: stop_rx,
                            logs: self.logs.clone(),
                        };
                        conn.channels.spawn(run_channel(channel, ctx));
                    }
                    None => {
                        // Withdrawn meanwhile: close it here (the table writes the frame).
                        mux.close_channel(&channel);
                    }
                }
            }
            Event::Close(dk) => {
                conn.opened.remove(&dk);
                if let Some(stop) = conn.stops.remove(&dk) {
                    let _ = stop.send(true);
                }
            }
            Event::Rejected(dk) => {
                // The peer refused our open: drop that channel, keep the connection.
                debug!("peer rejected a channel; closing it locally");
                conn.opened.remove(&dk);
                if let Some(o) = &self.observer {
                    o(&SessionEvent::Refused {
                        discovery_key: dk,
                        peer,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The per-connection state [`Replicator::on_event`] updates.
struct Connection<'a> {
    peer: [u8; 32],
    opened: &'a mut HashSet<[u8; 32]>,
    stops: &'a mut HashMap<[u8; 32], tokio::sync::watch::Sender<bool>>,
    channels: &'a mut JoinSet<Result<(), HypercoreError>>,
    opens: &'a mut Opens,
}

/// Channel pairings per log on one connection, counted per minute (see
/// [`SessionConfig::max_channel_opens_per_minute`]). Only logs we share get a
/// channel, so this holds at most one entry per shared log.
#[derive(Default)]
struct Opens {
    by_log: HashMap<[u8; 32], (Instant, u32)>,
}

impl Opens {
    /// Counts one more pairing of `dk`; `false` past `limit` within the minute.
    fn allow(&mut self, dk: [u8; 32], limit: u32) -> bool {
        let now = Instant::now();
        let (since, count) = self.by_log.entry(dk).or_insert((now, 0));
        if now.duration_since(*since) >= Duration::from_secs(60) {
            (*since, *count) = (now, 0);
        }
        *count = count.saturating_add(1);
        *count <= limit
    }
}

/// Frames channels may queue for the connection before they wait.
const OUTGOING_FRAMES: usize = 256;

fn violation(e: crate::protomux::MuxError) -> HypercoreError {
    failed(format!("protocol violation: {e}"))
}

/// The next change of the shared set; never ready for a fixed set or a dropped source.
async fn changed(changes: &mut Option<tokio::sync::watch::Receiver<u64>>) -> Option<()> {
    if let Some(rx) = changes
        && rx.changed().await.is_ok()
    {
        return Some(());
    }
    *changes = None;
    std::future::pending().await
}

fn is_clean_end(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionAborted
    )
}
