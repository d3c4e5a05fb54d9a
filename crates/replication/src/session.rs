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
//! Longer than the house ~800 lines: one channel's state machine (the sync / request /
//! data / want rules above) reads as a whole and shares its fields; the wire codec,
//! frames and transport are elsewhere. Next split when it grows: serving requests
//! (`serve`) from fetching (`fill`, `on_data`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use nova_hypercore_managed_core::{ManagedCore, Proof, RequestBlock, RequestUpgrade};
use nova_hypercore_serialization::HypercoreError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::channel::{Channel, Inbound, Inbox};
use crate::cipher::{CipherEvent, CipherTrait};
use crate::protomux::{Cursor, Delivery, Event, Mux, Step};
use crate::transport::{Ending, encrypt};
use crate::wanted::Wanted;
use crate::wire::{Data, Message, NoData, Range, Request, Synchronize};

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

struct ChannelCtx {
    core: ManagedCore,
    peer: [u8; 32],
    discovery_key: [u8; 32],
    stats: Arc<Stats>,
    observer: Option<Observer>,
    config: SessionConfig,
    stop: tokio::sync::watch::Receiver<bool>,
    logs: Arc<dyn LogSource>,
}

impl ChannelCtx {
    fn emit(&self, event: SessionEvent) {
        if let Some(o) = &self.observer {
            o(&event);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Upgrade,
    Block(u64),
    /// The manifest alone (the peer has none to upgrade us with yet).
    Manifest,
}

struct Pending {
    want: Want,
    /// Whether the request set the manifest flag.
    asked_manifest: bool,
    sent: Instant,
}

struct ChannelState {
    remote_length: u64,
    remote_fork: u64,
    /// Blocks `0..remote_has` the peer said it holds.
    remote_has: u64,
    announced_contiguous: u64,
    announced_length: Option<u64>,
    /// The peer length we last acknowledged in a `Synchronize` (`remote_length`). JS
    /// peers only request an upgrade from a peer that acknowledged their current length.
    announced_ack: Option<u64>,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// Requests the peer answered with `NoData`, and when, oldest first: asked again
    /// after the request timeout.
    declined: VecDeque<(Instant, Want)>,
    /// The blocks among `declined` (so `asked` is one lookup, not a scan: a peer that
    /// declines everything made `fill` quadratic).
    declined_blocks: HashSet<u64>,
    /// An upgrade (or manifest) request is in flight.
    upgrade_pending: bool,
    /// The peer's `Synchronize` said it holds a manifest.
    remote_has_manifest: bool,
    /// Ask for the manifest with the next upgrade even if the peer did not announce
    /// one: an upgrade failed only because this replica's manifest is not known yet.
    ask_manifest: bool,
    /// Blocks still to request, as ranges (bounded by the gaps, not the length).
    wanted: Wanted,
    /// Replies (data / no-data) waiting to go out as one batch.
    replies: Vec<Message>,
    /// Block bytes in `replies`.
    reply_bytes: usize,
}

async fn run_channel(mut channel: Channel, ctx: ChannelCtx) -> Result<(), HypercoreError> {
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
        next_id: 1,
        pending: HashMap::new(),
        declined: VecDeque::new(),
        declined_blocks: HashSet::new(),
        upgrade_pending: false,
        remote_has_manifest: false,
        ask_manifest: false,
        wanted: Wanted::default(),
        replies: Vec::new(),
        reply_bytes: 0,
    };
    // Resume: blocks below our length that we do not hold yet (an interrupted download);
    // `fill` skips the ones we hold, a bounded number per call.
    st.wanted.insert(info.contiguous_length, info.length);
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
                st.announce(channel, core).await?;
            }
            changed = missing.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Closed);
                }
                // The damaged blocks lie at or past the contiguous length (their bits
                // are cleared); `fill` skips what we hold and what is in flight.
                let info = core.info().await?;
                st.wanted.insert(info.contiguous_length, info.length);
            }
            _ = tick.tick() => {
                if ctx.logs.lookup(&ctx.discovery_key).is_none() {
                    return Ok(Ended::Unshared);
                }
                st.expire(ctx.config.request_timeout);
                st.maybe_upgrade(channel, ctx).await?;
            }
        }
        st.fill(channel, ctx).await?;
    }
}

/// Blocks `fill` checks (held blocks it skips) per call.
const MAX_CHECKS_PER_FILL: usize = 4096;

/// Data that does not answer the request it names: a bad peer.
fn unrequested(ctx: &ChannelCtx, data: &Data, want: Want) -> HypercoreError {
    HypercoreError::Unauthorized {
        log: Some(ctx.core.name().to_string()),
        reason: format!(
            "peer sent data that does not answer request {} ({want:?})",
            data.request
        ),
    }
}

/// A peer-sent `start + length` that does not fit a u64: a bad peer.
fn overflow(ctx: &ChannelCtx, what: &str, start: u64, length: u64) -> HypercoreError {
    HypercoreError::ReplicationFailed {
        log: ctx.core.name().to_string(),
        reason: format!("peer sent a {what} whose end overflows: start {start} + length {length}"),
    }
}

/// Messages taken from a channel in one go before replies are flushed.
const MAX_DRAIN: usize = 64;
/// Block bytes in one reply batch before it is flushed (frames stay far below the
/// 16 MiB uint24 framing limit whatever the block size).
const MAX_REPLY_BYTES: usize = 256 * 1024;

/// `proof` with its block checked before it goes on the wire: the block's bytes are
/// replaced by what [`ManagedCore::get`] returns for it, the verified read (one hash
/// against a known-good leaf, or a walk to a signed root), so no bytes that fail their
/// leaf are ever sent. `None` when the block fails: bytes damaged under a good leaf
/// (the read marks the block missing, durably, and wakes the sessions to fetch it again
/// from peers; reported as [`SessionEvent::DamagedNotSent`] and counted), or not stored
/// (any more) or its tree path does not verify (the core logs that). Other errors
/// (I/O, a closed log) are the session's, as for `serve_proof`.
async fn checked(ctx: &ChannelCtx, mut proof: Proof) -> Result<Option<Proof>, HypercoreError> {
    let Some(block) = proof.block.as_mut() else {
        return Ok(Some(proof));
    };
    let seq = block.index;
    match ctx.core.get(seq).await {
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
        Err(HypercoreError::SignatureInvalid { .. } | HypercoreError::OutOfRange { .. }) => {
            debug!(log = %ctx.core.name(), seq, "block not servable (not stored or not verifying): not sent");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn send_failed(e: std::io::Error) -> HypercoreError {
    failed(format!("send failed: {e}"))
}

impl ChannelState {
    async fn reply(&mut self, channel: &Channel, message: Message) -> Result<(), HypercoreError> {
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

    async fn send_replies(&mut self, channel: &Channel) -> Result<(), HypercoreError> {
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

    fn enqueue(&mut self, seq: u64) {
        self.wanted.insert_one(seq);
    }

    /// Tells the peer our length (and what we hold) whenever it changed.
    async fn announce(
        &mut self,
        channel: &Channel,
        core: &ManagedCore,
    ) -> Result<(), HypercoreError> {
        let info = core.info().await?;
        let mut batch = Vec::new();
        if self.announced_length != Some(info.length)
            || self.announced_ack != Some(self.remote_length)
        {
            batch.push(Message::Synchronize(Synchronize {
                fork: info.fork,
                length: info.length,
                remote_length: self.remote_length,
                can_upgrade: true,
                uploading: true,
                downloading: true,
                has_manifest: core.has_manifest(),
                allow_push: false,
            }));
            self.announced_length = Some(info.length);
            self.announced_ack = Some(self.remote_length);
        }
        if info.contiguous_length > self.announced_contiguous {
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

    /// A message from the peer, or bytes that did not decode as one (a bad peer: the
    /// channel is closed).
    async fn on_inbound(
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

    async fn on_message(
        &mut self,
        channel: &Channel,
        ctx: &ChannelCtx,
        message: Message,
    ) -> Result<(), HypercoreError> {
        match message {
            Message::Synchronize(sync) => {
                self.remote_length = sync.length;
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
            }
            Message::Range(range) => {
                let Some(end) = range.start.checked_add(range.length) else {
                    return self.reject(ctx, overflow(ctx, "range", range.start, range.length));
                };
                if !range.drop && range.start <= self.remote_has {
                    self.remote_has = self.remote_has.max(end);
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

    async fn serve(
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
        let proof = if request.hash.is_some() || request.seek.is_some() {
            None // not supported: answered with NoData, never an error
        } else {
            ctx.core
                .serve_proof(request.block.clone(), request.upgrade.clone())
                .await?
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
        // The manifest goes along when the peer asks for it (a manifest core only).
        let manifest = if request.manifest {
            ctx.core.manifest()
        } else {
            None
        };
        let Some(proof) = proof else {
            // Nothing to prove, but the manifest it asked for: sent alone, as JS 11
            // does (a reader asks for it eagerly while our length is 0).
            let reply = match manifest {
                Some(manifest) => Message::Data(Data {
                    request: request.id,
                    fork: ctx.core.info().await?.fork,
                    manifest: Some(manifest),
                    ..Data::default()
                }),
                // As hypercore 11 answers what it cannot prove (a block it does not
                // hold, an upgrade past its length).
                None => Message::NoData(NoData {
                    request: request.id,
                    reason: NoData::NOT_AVAILABLE,
                }),
            };
            return self.reply(channel, reply).await;
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

    async fn on_data(
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
        let info = core.info().await?;
        // Refuse shapes we did not ask for before they reach the storage engine.
        let shape_ok = match pending.want {
            Want::Upgrade => data.block.is_none() && data.upgrade.is_some(),
            Want::Manifest => false,
            Want::Block(seq) => {
                data.upgrade.is_none()
                    && data
                        .block
                        .as_ref()
                        .is_some_and(|b| b.index == seq && seq < info.length)
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
                    self.wanted.insert(info.length, now.length);
                    self.maybe_upgrade(channel, ctx).await?;
                }
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

    fn reject(&mut self, ctx: &ChannelCtx, error: HypercoreError) -> Result<(), HypercoreError> {
        ctx.stats.update(&ctx.discovery_key, |t| t.rejected += 1);
        warn!(log = %ctx.core.name(), error = %error, "refused data from peer");
        ctx.emit(SessionEvent::Rejected {
            discovery_key: ctx.discovery_key,
            peer: ctx.peer,
            reason: format!("{}: {error}", error.code()),
        });
        Err(error)
    }

    fn retry(&mut self, want: Want) {
        match want {
            Want::Upgrade | Want::Manifest => self.upgrade_pending = false,
            Want::Block(seq) => self.enqueue(seq),
        }
    }

    /// Notes that the peer declined `want` (asked again after the request timeout).
    fn decline(&mut self, want: Want) {
        if let Want::Block(seq) = want
            && !self.declined_blocks.insert(seq)
        {
            return;
        }
        self.declined.push_back((Instant::now(), want));
    }

    fn expire(&mut self, timeout: Duration) {
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

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Rule 1: one upgrade in flight, on its own, from our length to theirs. A replica
    /// still waiting for its manifest asks for it with the upgrade when the peer has
    /// one (as JS 11 does), or alone when there is nothing to upgrade to yet.
    async fn maybe_upgrade(
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

    /// Whether block `seq` is in flight, or declined and waiting to be asked again
    /// (the wanted ranges can name it again when the missing set changes).
    fn asked(&self, seq: u64) -> bool {
        let want = Want::Block(seq);
        // `pending` holds at most one window of requests.
        self.declined_blocks.contains(&seq) || self.pending.values().any(|p| p.want == want)
    }

    /// Rule 2: requests for blocks below our length that the peer holds, windowed.
    /// This holds for a writer too: its own log's blocks that its bitfield lacks (bytes
    /// found damaged) are asked for like a reader's, and verified against its own signed
    /// tree; it never asks for an upgrade (rule 1) and its core refuses one.
    async fn fill(&mut self, channel: &Channel, ctx: &ChannelCtx) -> Result<(), HypercoreError> {
        let core = &ctx.core;
        let mut batch = Vec::new();
        let info = core.info().await?;
        // Blocks beyond our length cannot be asked for (rule 2); a later upgrade adds
        // them again.
        self.wanted.truncate(info.length);
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
        if !batch.is_empty() {
            let n = batch.len() as u64;
            ctx.stats
                .update(&ctx.discovery_key, |t| t.requests_sent += n);
            channel.send_batch(&batch).await.map_err(send_failed)?;
        }
        Ok(())
    }
}
