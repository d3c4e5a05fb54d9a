//! Protomux framing (`protomux` 3.x) and the channel table of one connection.
//!
//! A frame is `uint channel, uint type, body`. Channel 0 carries control messages:
//! type 0 a batch (`uint channel`, then `uint length, message` entries; a length of 0
//! switches the channel; a channel-0 entry is a control message), 1 an open (`uint
//! id, string protocol, optionalBuffer id, handshake`), 2 a reject (`uint id` of the
//! receiver's open), 3 a close (`uint id` of the sender's channel). Every message is
//! handed to its decoder as exactly the bytes its frame or batch entry delimits.
//!
//! [`Mux`] keeps the table and the hygiene JS peers need (formerly a separate guard
//! layer in front of `hypercore-protocol`):
//! - the peer's reject of one of our opens becomes [`Event::Rejected`]; the connection
//!   stays;
//! - unknown control messages, unknown message types, messages for channels that are
//!   not open and frames that do not parse are dropped (logged), as JS does;
//! - an open for another protocol, a second open for a discovery key, or one the session
//!   does not share ([`Mux::reject_remote`]) is answered with a reject;
//! - an open naming a channel id outside `1..=`[`MAX_CHANNEL_ID`], an id the peer
//!   already uses, or a malformed open ends the connection ([`MuxError`]); so the table
//!   never holds more than [`MAX_CHANNEL_ID`] peer channels;
//! - a channel pairs only when the peer's capability proves it knows the log's key
//!   (`blake2b(REPLICATE_* ‖ key)` keyed with the Noise handshake hash, as JS
//!   `caps.replicate`); a wrong capability ends the connection, as in JS.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use blake2::digest::{Mac, consts::U32};
use blake2::{Blake2b, Blake2bMac, Digest};
use tokio::sync::mpsc;
use tracing::debug;

use crate::budget::{ByteBudget, Pool};
use crate::channel::{Channel, Inbox, Outgoing, Queued};
use crate::wire::compact::{Reader, put_buffer, put_uint};
use crate::wire::{Handshake, MESSAGE_TYPES, Message, WireError};

/// The protomux protocol name hypercore channels use.
pub const HYPERCORE_PROTOCOL: &str = "hypercore/alpha";
/// The alias JS hypercore also accepts for it.
const HYPERCORE_ALIAS: &str = "hypercore";
/// Largest channel id a peer may name (JS protomux allocates ids from 1 upwards and
/// reuses freed ones, so real peers stay far below this).
pub const MAX_CHANNEL_ID: u64 = 1 << 16;
/// Decoded messages queued per channel before the connection stops reading
/// (backpressure, not loss).
const CHANNEL_QUEUE: usize = 256;
/// Bound on the bytes of messages one connection's channels hold in their queues and
/// their tasks have not taken yet (the session waits past it, so the peer's sends wait:
/// backpressure, not loss). One message larger than what is left still passes when
/// nothing else is queued. Without it the bound was `CHANNEL_QUEUE` messages of up
/// to 16 MiB per channel: 4 GiB per channel, after the transport's own bound
/// ([`crate::transport::MAX_INBOUND_BYTES`]) had been released.
pub const MAX_CHANNEL_QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// Bound on those bytes summed over every connection of the process (each connection's
/// [`MAX_CHANNEL_QUEUE_BYTES`] also draws from this pool). A separate pool from the
/// transport's ([`crate::transport::MAX_TOTAL_INBOUND_BYTES`]): a session releases a
/// frame's transport bytes before it queues the frame's messages, so neither pool waits
/// on the other.
pub const MAX_TOTAL_CHANNEL_QUEUE_BYTES: usize = 256 * 1024 * 1024;

static TOTAL_QUEUED: Pool = Pool::new(MAX_TOTAL_CHANNEL_QUEUE_BYTES);

/// A protocol violation that ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// A channel open that does not parse.
    #[error("malformed channel open: {0}")]
    MalformedOpen(WireError),
    /// A channel id outside `1..=MAX_CHANNEL_ID`.
    #[error("channel id {id} outside 1..={MAX_CHANNEL_ID}")]
    ChannelId {
        /// The id the peer named.
        id: u64,
    },
    /// An open for a channel id the peer already has open.
    #[error("channel id {id} opened twice")]
    DuplicateChannel {
        /// The id.
        id: u64,
    },
    /// The peer's capability for a log does not match its key.
    #[error("invalid replication capability for discovery key {discovery_key}")]
    Capability {
        /// The log's discovery key (hex).
        discovery_key: String,
    },
}

// ---- frames -------------------------------------------------------------------------

/// An open frame: `00 01 uint id, string protocol, optionalBuffer key, handshake`.
pub fn open_frame(id: u64, protocol: &str, key: &[u8], handshake: &Handshake) -> Vec<u8> {
    let mut out = vec![0u8, 1];
    put_uint(&mut out, id);
    put_buffer(&mut out, protocol.as_bytes());
    put_buffer(&mut out, key);
    handshake.encode(&mut out);
    out
}

/// A reject frame for the peer's open `id`.
pub fn reject_frame(id: u64) -> Vec<u8> {
    let mut out = vec![0u8, 2];
    put_uint(&mut out, id);
    out
}

/// A close frame for our channel `id`.
pub fn close_frame(id: u64) -> Vec<u8> {
    let mut out = vec![0u8, 3];
    put_uint(&mut out, id);
    out
}

/// One message on channel `channel`.
pub fn message_frame(channel: u64, message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    put_uint(&mut out, channel);
    put_uint(&mut out, message.typ());
    message.encode(&mut out);
    out
}

/// Messages for one channel in one batch frame (one message: a plain frame).
pub fn batch_frame(channel: u64, messages: &[Message]) -> Vec<u8> {
    if let [one] = messages {
        return message_frame(channel, one);
    }
    let mut out = vec![0u8, 0];
    put_uint(&mut out, channel);
    let mut body = Vec::new();
    for m in messages {
        body.clear();
        put_uint(&mut body, m.typ());
        m.encode(&mut body);
        put_buffer(&mut out, &body);
    }
    out
}

/// One item of a received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// A channel open.
    Open {
        /// The peer's channel id.
        id: u64,
        /// Protocol name.
        protocol: &'a [u8],
        /// The channel key (hypercore: the discovery key).
        key: Option<&'a [u8]>,
        /// The protocol's handshake bytes.
        handshake: &'a [u8],
    },
    /// The peer rejects our open `id`.
    Reject {
        /// Our channel id.
        id: u64,
    },
    /// The peer closes its channel `id`.
    Close {
        /// The peer's channel id.
        id: u64,
    },
    /// A control message protomux does not define (ignored).
    UnknownControl {
        /// Its type.
        typ: u64,
    },
    /// A message on the peer's channel `channel`.
    Message {
        /// The peer's channel id.
        channel: u64,
        /// Message type.
        typ: u64,
        /// Exactly this message's bytes.
        body: &'a [u8],
    },
}

/// Where a frame is being read (frames are read an item at a time, so a batch of any
/// size costs no more than one item at once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pos: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    #[default]
    Start,
    Batch {
        channel: u64,
    },
    Done,
}

impl Cursor {
    /// The next item of `frame`, `None` at its end. An error ends the frame.
    pub fn next<'a>(&mut self, frame: &'a [u8]) -> Option<Result<Item<'a>, WireError>> {
        let item = self.step(frame);
        if matches!(item, Some(Err(_))) {
            self.state = State::Done;
        }
        item
    }

    fn step<'a>(&mut self, frame: &'a [u8]) -> Option<Result<Item<'a>, WireError>> {
        loop {
            let rest = frame.get(self.pos..).unwrap_or_default();
            let mut r = Reader::new(rest);
            match self.state {
                State::Done => return None,
                State::Start => {
                    self.state = State::Done;
                    if rest.is_empty() {
                        return None; // an empty frame: a keepalive
                    }
                    let head = (|| Ok((r.uint("channel")?, r.uint("message type")?)))();
                    let (channel, typ) = match head {
                        Ok(h) => h,
                        Err(e) => return Some(Err(e)),
                    };
                    if channel != 0 {
                        return Some(Ok(Item::Message {
                            channel,
                            typ,
                            body: r.rest(),
                        }));
                    }
                    if typ != 0 {
                        return Some(control(typ, r.rest()));
                    }
                    match r.uint("batch channel") {
                        Ok(channel) => self.state = State::Batch { channel },
                        Err(e) => return Some(Err(e)),
                    }
                    self.pos = frame.len() - r.rest().len();
                }
                State::Batch { channel } => {
                    if rest.is_empty() {
                        self.state = State::Done;
                        return None;
                    }
                    let len = match r.uint("batch entry length") {
                        Ok(len) => len,
                        Err(e) => return Some(Err(e)),
                    };
                    if len == 0 {
                        match r.uint("batch channel") {
                            Ok(channel) => self.state = State::Batch { channel },
                            Err(e) => return Some(Err(e)),
                        }
                        self.pos = frame.len() - r.rest().len();
                        continue;
                    }
                    // As protomux: an entry reaching past the frame is cut at its end.
                    let body = r.rest();
                    let take = usize::try_from(len).map_or(body.len(), |l| l.min(body.len()));
                    let entry = &body[..take];
                    self.pos = frame.len() - body.len() + take;
                    let mut e = Reader::new(entry);
                    let typ = match e.uint("message type") {
                        Ok(t) => t,
                        Err(e) => return Some(Err(e)),
                    };
                    if channel == 0 {
                        if typ == 0 {
                            return Some(Ok(Item::UnknownControl { typ })); // nested batch
                        }
                        return Some(control(typ, e.rest()));
                    }
                    return Some(Ok(Item::Message {
                        channel,
                        typ,
                        body: e.rest(),
                    }));
                }
            }
        }
    }
}

fn control(typ: u64, body: &[u8]) -> Result<Item<'_>, WireError> {
    let mut r = Reader::new(body);
    Ok(match typ {
        1 => {
            let id = r.uint("open id")?;
            let protocol = r.buffer("open protocol")?;
            let key = r.buffer("open key")?;
            Item::Open {
                id,
                protocol,
                key: (!key.is_empty()).then_some(key),
                handshake: r.rest(),
            }
        }
        2 => Item::Reject {
            id: r.uint("reject id")?,
        },
        3 => Item::Close {
            id: r.uint("close id")?,
        },
        typ => Item::UnknownControl { typ },
    })
}

// ---- the channel table --------------------------------------------------------------

/// What the table reports to the session.
#[derive(Debug)]
pub enum Event {
    /// The peer opened a channel for a log we have not opened.
    DiscoveryKey([u8; 32]),
    /// A channel is open on both sides (capability verified).
    Channel(Channel),
    /// A channel closed (by either side).
    Close([u8; 32]),
    /// The peer rejected our open for this discovery key.
    Rejected([u8; 32]),
}

/// Bytes a queued message is counted for beyond its body (the decoded shape's own
/// size), so that a flood of empty messages is bounded too.
const QUEUED_OVERHEAD: usize = 64;

/// A decoded message (or why it did not decode) for a channel's queue. It goes in
/// only when the connection's queued bytes ([`MAX_CHANNEL_QUEUE_BYTES`]) and the
/// channel's queue have room: [`Delivery::try_deliver`] now, or [`Delivery::room`]
/// then [`Slot::send`].
#[derive(Debug)]
pub struct Delivery {
    to: mpsc::Sender<Queued>,
    item: Queued,
    budget: Arc<ByteBudget>,
}

/// Room for one delivery: its bytes counted and a place in its channel's queue. Dropped
/// unused, it gives both back.
#[derive(Debug)]
pub struct Slot {
    permit: mpsc::OwnedPermit<Queued>,
    bytes: Counted,
}

/// Bytes counted in a budget; released on drop unless handed to a queued message.
#[derive(Debug)]
struct Counted {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

impl Delivery {
    /// Queues the message if there is room now; gives it back if not. A channel that
    /// is gone drops it.
    pub fn try_deliver(self) -> Result<(), Box<Delivery>> {
        let n = self.item.bytes;
        if !self.budget.try_reserve(n) {
            return Err(Box::new(self));
        }
        match self.to.try_send(self.item) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(item)) => {
                self.budget.release(n);
                Err(Box::new(Delivery { item, ..self }))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.budget.release(n);
                Ok(())
            }
        }
    }

    /// Waits for room for this message (cancel-safe: nothing is held if the future is
    /// dropped). `None`: the channel is gone (drop the message).
    pub fn room(&self) -> impl std::future::Future<Output = Option<Slot>> + Send + 'static {
        let (to, budget, bytes) = (self.to.clone(), self.budget.clone(), self.item.bytes);
        async move {
            budget.reserve(bytes).await;
            let bytes = Counted { budget, bytes };
            let permit = to.reserve_owned().await.ok()?;
            Some(Slot { permit, bytes })
        }
    }
}

impl Slot {
    /// Queues `delivery` (the one this room was made for).
    pub fn send(self, delivery: Delivery) {
        let Slot { permit, mut bytes } = self;
        // The queued message holds the bytes now; its inbox releases them.
        bytes.bytes = 0;
        permit.send(delivery.item);
    }
}

/// What one [`Mux::step`] did.
#[derive(Debug)]
pub enum Step {
    /// The frame is fully read.
    Done,
    /// An item was handled; call again.
    Continue,
    /// A message for a channel: queue it, then call again.
    Deliver(Box<Delivery>),
}

#[derive(Debug)]
struct Local {
    discovery_key: [u8; 32],
    key: [u8; 32],
    token: u64,
    remote: Option<u64>,
    inbound: Option<mpsc::Sender<Queued>>,
    closed: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Remote {
    discovery_key: [u8; 32],
    handshake: Option<Handshake>,
    local: Option<u64>,
}

/// The channel table of one connection (see the module docs). It does no I/O: frames
/// to send collect in [`Mux::take_frame`], events in [`Mux::take_event`].
#[derive(Debug)]
pub struct Mux {
    is_initiator: bool,
    handshake_hash: Vec<u8>,
    local: HashMap<u64, Local>,
    local_by_key: HashMap<[u8; 32], u64>,
    remote: HashMap<u64, Remote>,
    remote_by_key: HashMap<[u8; 32], u64>,
    next_token: u64,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    outgoing: mpsc::Sender<Outgoing>,
    /// Bytes in the channels' queues ([`MAX_CHANNEL_QUEUE_BYTES`]).
    queued: Arc<ByteBudget>,
}

/// `crypto.namespace('hypercore', n)[i]`: blake2b-256(blake2b-256("hypercore") ‖ i).
fn namespace(i: u8) -> [u8; 32] {
    let name = Blake2b::<U32>::digest(b"hypercore");
    let mut h = Blake2b::<U32>::new();
    h.update(name);
    h.update([i]);
    h.finalize().into()
}

/// `caps.replicate(initiator, key, handshakeHash)` of hypercore `lib/caps.js`: the
/// capability the `initiator` side (or the responder) sends for the log with this key
/// on a connection with this Noise handshake hash. `None` if the hash is longer than a
/// blake2b key may be (64 bytes).
pub fn capability(initiator: bool, key: &[u8; 32], handshake_hash: &[u8]) -> Option<[u8; 32]> {
    // REPLICATE_INITIATOR, REPLICATE_RESPONDER (lib/caps.js).
    let seed = namespace(if initiator { 1 } else { 2 });
    let mut mac = <Blake2bMac<U32> as Mac>::new_from_slice(handshake_hash).ok()?;
    mac.update(&seed);
    mac.update(key);
    Some(mac.finalize().into_bytes().into())
}

impl Mux {
    /// A table for a connection; channels send their frames into `outgoing`.
    pub fn new(
        is_initiator: bool,
        handshake_hash: Vec<u8>,
        outgoing: mpsc::Sender<Outgoing>,
    ) -> Self {
        Mux {
            is_initiator,
            handshake_hash,
            local: HashMap::new(),
            local_by_key: HashMap::new(),
            remote: HashMap::new(),
            remote_by_key: HashMap::new(),
            next_token: 0,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            outgoing,
            queued: Arc::new(ByteBudget::with_pool(
                MAX_CHANNEL_QUEUE_BYTES,
                Some(&TOTAL_QUEUED),
            )),
        }
    }

    fn capability(&self, initiator: bool, key: &[u8; 32]) -> Option<[u8; 32]> {
        capability(initiator, key, &self.handshake_hash)
    }

    /// The next frame to send (opens, rejects, closes), in order.
    pub fn take_frame(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// The next event for the session.
    pub fn take_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Opens a channel for the log with this key (nothing if one is open already).
    pub fn open(&mut self, key: [u8; 32]) -> Result<(), MuxError> {
        let dk = nova_hypercore_managed_core::discovery_key(&key);
        if self.local_by_key.contains_key(&dk) {
            return Ok(());
        }
        let id = (1..).find(|id| !self.local.contains_key(id)).unwrap_or(1);
        let Some(capability) = self.capability(self.is_initiator, &key) else {
            return Err(MuxError::Capability {
                discovery_key: hex(&dk),
            });
        };
        self.next_token += 1;
        self.local.insert(
            id,
            Local {
                discovery_key: dk,
                key,
                token: self.next_token,
                remote: None,
                inbound: None,
                closed: Arc::new(AtomicBool::new(false)),
            },
        );
        self.local_by_key.insert(dk, id);
        // We serve `seek` requests (JS readers send them only to peers that say so).
        let handshake = Handshake {
            seeks: true,
            capability,
        };
        self.outbox
            .push_back(open_frame(id, HYPERCORE_PROTOCOL, &dk, &handshake));
        match self.remote_by_key.get(&dk) {
            Some(&remote) => self.pair(id, remote),
            None => Ok(()),
        }
    }

    fn pair(&mut self, local_id: u64, remote_id: u64) -> Result<(), MuxError> {
        let (Some(local), Some(remote)) = (self.local.get(&local_id), self.remote.get(&remote_id))
        else {
            return Ok(());
        };
        let expected = self.capability(!self.is_initiator, &local.key);
        let sent = remote.handshake.as_ref().map(|h| h.capability);
        if expected.is_none() || expected != sent {
            return Err(MuxError::Capability {
                discovery_key: hex(&local.discovery_key),
            });
        }
        let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
        let channel = Channel::new(
            local_id,
            local.token,
            local.discovery_key,
            local.key,
            self.outgoing.clone(),
            local.closed.clone(),
            Inbox::new(rx, self.queued.clone()),
        );
        if let Some(local) = self.local.get_mut(&local_id) {
            local.remote = Some(remote_id);
            local.inbound = Some(tx);
        }
        if let Some(remote) = self.remote.get_mut(&remote_id) {
            remote.local = Some(local_id);
        }
        self.events.push_back(Event::Channel(channel));
        Ok(())
    }

    /// Rejects the peer's open for `discovery_key` (a log we do not share), so its
    /// channel closes on its side. Does nothing if the peer has no such open waiting.
    pub fn reject_remote(&mut self, discovery_key: &[u8; 32]) {
        let Some(&id) = self.remote_by_key.get(discovery_key) else {
            return;
        };
        if self.remote.get(&id).is_some_and(|r| r.local.is_none()) {
            self.remote.remove(&id);
            self.remote_by_key.remove(discovery_key);
            self.outbox.push_back(reject_frame(id));
        }
    }

    /// A channel's outgoing frame or close: the frame to write, if its channel is still
    /// the one open under that id.
    pub fn outgoing(&mut self, out: Outgoing) -> Option<Vec<u8>> {
        let (local_id, token) = out.channel();
        if self.local.get(&local_id).is_none_or(|l| l.token != token) {
            return None; // from a channel that closed meanwhile
        }
        match out {
            Outgoing::Frame { frame, .. } => Some(frame),
            Outgoing::Close { .. } => {
                self.close_local(local_id);
                Some(close_frame(local_id))
            }
        }
    }

    /// Closes a channel the session will not run (its frame is queued here).
    pub fn close_channel(&mut self, channel: &Channel) {
        if let Some(frame) = self.outgoing(channel.close_request()) {
            self.outbox.push_back(frame);
        }
    }

    fn close_local(&mut self, local_id: u64) {
        let Some(local) = self.local.remove(&local_id) else {
            return;
        };
        local.closed.store(true, Ordering::Release);
        self.local_by_key.remove(&local.discovery_key);
        if let Some(remote) = local.remote {
            self.remote.remove(&remote);
            self.remote_by_key.remove(&local.discovery_key);
        }
        self.events.push_back(Event::Close(local.discovery_key));
    }

    /// Handles the next item of a received frame.
    pub fn step(&mut self, frame: &[u8], cursor: &mut Cursor) -> Result<Step, MuxError> {
        let item = match cursor.next(frame) {
            None => return Ok(Step::Done),
            Some(Ok(item)) => item,
            Some(Err(e)) => {
                // An open that does not parse ends the connection; other garbage is
                // dropped with the rest of its frame.
                if frame.starts_with(&[0, 1]) {
                    return Err(MuxError::MalformedOpen(e));
                }
                debug!(error = %e, "dropped a malformed frame");
                return Ok(Step::Done);
            }
        };
        match item {
            Item::Open {
                id,
                protocol,
                key,
                handshake,
            } => self.on_open(id, protocol, key, handshake)?,
            Item::Reject { id } => {
                if self.local.get(&id).is_some_and(|l| l.remote.is_none())
                    && let Some(local) = self.local.remove(&id)
                {
                    debug!(channel = id, "peer rejected our open");
                    local.closed.store(true, Ordering::Release);
                    self.local_by_key.remove(&local.discovery_key);
                    self.events.push_back(Event::Rejected(local.discovery_key));
                }
            }
            Item::Close { id } => {
                if let Some(remote) = self.remote.remove(&id) {
                    self.remote_by_key.remove(&remote.discovery_key);
                    if let Some(local_id) = remote.local
                        && let Some(local) = self.local.remove(&local_id)
                    {
                        local.closed.store(true, Ordering::Release);
                        self.local_by_key.remove(&local.discovery_key);
                        self.events.push_back(Event::Close(local.discovery_key));
                    }
                }
            }
            Item::UnknownControl { typ } => debug!(typ, "dropped an unknown control message"),
            Item::Message { channel, typ, body } => {
                let to = self
                    .remote
                    .get(&channel)
                    .and_then(|r| r.local)
                    .and_then(|l| self.local.get(&l))
                    .and_then(|l| l.inbound.clone());
                let Some(to) = to else {
                    debug!(
                        channel,
                        typ, "dropped a message for a channel that is not open"
                    );
                    return Ok(Step::Continue);
                };
                if typ >= MESSAGE_TYPES {
                    debug!(channel, typ, "dropped a message of unknown type");
                    return Ok(Step::Continue);
                }
                return Ok(Step::Deliver(Box::new(Delivery {
                    to,
                    item: Queued {
                        item: Message::decode(typ, body),
                        bytes: body.len().saturating_add(QUEUED_OVERHEAD),
                    },
                    budget: self.queued.clone(),
                })));
            }
        }
        Ok(Step::Continue)
    }

    fn on_open(
        &mut self,
        id: u64,
        protocol: &[u8],
        key: Option<&[u8]>,
        handshake: &[u8],
    ) -> Result<(), MuxError> {
        if id == 0 || id > MAX_CHANNEL_ID {
            return Err(MuxError::ChannelId { id });
        }
        if self.remote.contains_key(&id) {
            return Err(MuxError::DuplicateChannel { id });
        }
        let hypercore =
            protocol == HYPERCORE_PROTOCOL.as_bytes() || protocol == HYPERCORE_ALIAS.as_bytes();
        let dk = key.and_then(|k| <[u8; 32]>::try_from(k).ok());
        let Some(dk) = dk.filter(|dk| hypercore && !self.remote_by_key.contains_key(dk)) else {
            debug!(
                channel = id,
                protocol = %String::from_utf8_lossy(protocol),
                "rejecting an open for another protocol, or a second one for a log"
            );
            self.outbox.push_back(reject_frame(id));
            return Ok(());
        };
        self.remote.insert(
            id,
            Remote {
                discovery_key: dk,
                handshake: Handshake::decode(handshake).ok(),
                local: None,
            },
        );
        self.remote_by_key.insert(dk, id);
        match self.local_by_key.get(&dk) {
            Some(&local) if self.local.get(&local).is_some_and(|l| l.remote.is_none()) => {
                self.pair(local, id)
            }
            _ => {
                self.events.push_back(Event::DiscoveryKey(dk));
                Ok(())
            }
        }
    }

    /// Channels the peer has open or waiting (bounded by [`MAX_CHANNEL_ID`]).
    pub fn remote_channels(&self) -> usize {
        self.remote.len()
    }
}

/// Lower-case hex of `bytes` (keys in errors and logs).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Inbound;
    use crate::wire::{Range, Synchronize};

    const HASH: [u8; 64] = [9; 64];
    const KEY: [u8; 32] = [7; 32];

    fn mux() -> (Mux, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(8);
        (Mux::new(true, HASH.to_vec(), tx), rx)
    }

    fn dk() -> [u8; 32] {
        nova_hypercore_managed_core::discovery_key(&KEY)
    }

    /// The peer's open for `KEY` (it is the responder: its capability says so).
    fn peer_open(id: u64, capability: Option<[u8; 32]>) -> Vec<u8> {
        let capability = capability.unwrap_or_else(capability_of_peer);
        open_frame(
            id,
            HYPERCORE_PROTOCOL,
            &dk(),
            &Handshake {
                seeks: true,
                capability,
            },
        )
    }

    fn capability_of_peer() -> [u8; 32] {
        capability(false, &KEY, &HASH).unwrap()
    }

    /// Feeds a whole frame; returns the messages delivered.
    fn feed(m: &mut Mux, frame: &[u8]) -> Result<Vec<Inbound>, MuxError> {
        let mut cursor = Cursor::default();
        let mut out = Vec::new();
        loop {
            match m.step(frame, &mut cursor)? {
                Step::Done => return Ok(out),
                Step::Continue => {}
                Step::Deliver(d) => out.push(d.item.item),
            }
        }
    }

    fn paired() -> (Mux, Channel, mpsc::Receiver<Outgoing>) {
        let (mut m, rx) = mux();
        m.open(KEY).unwrap();
        assert!(m.take_frame().is_some_and(|f| f.starts_with(&[0, 1, 1])));
        feed(&mut m, &peer_open(5, None)).unwrap();
        match m.take_event() {
            Some(Event::Channel(c)) => (m, c, rx),
            other => panic!("expected a channel, got {other:?}"),
        }
    }

    #[test]
    fn reject_of_our_open_becomes_an_event_and_the_rest_stays() {
        let (mut m, _rx) = mux();
        m.open(KEY).unwrap();
        assert!(feed(&mut m, &[0, 2, 1]).unwrap().is_empty());
        assert!(matches!(m.take_event(), Some(Event::Rejected(k)) if k == dk()));
        // A reject for an id we never opened changes nothing.
        assert!(feed(&mut m, &[0, 2, 9]).unwrap().is_empty());
        assert!(m.take_event().is_none());
        // The log can be opened again afterwards.
        m.open(KEY).unwrap();
        assert!(m.take_frame().is_some());
    }

    #[test]
    fn unknown_control_messages_and_types_are_dropped() {
        let (mut m, mut c, _rx) = paired();
        let mut rx = c.take_receiver().unwrap();
        assert!(feed(&mut m, &[0, 7, 1]).unwrap().is_empty()); // unknown control
        assert!(feed(&mut m, &[5, 42, 0]).unwrap().is_empty()); // unknown type
        assert!(feed(&mut m, &[9, 0, 0, 0, 0, 0]).unwrap().is_empty()); // channel not open
        assert!(feed(&mut m, &[1]).unwrap().is_empty()); // too short
        assert!(feed(&mut m, &[]).unwrap().is_empty()); // keepalive
        let sync = Message::Synchronize(Synchronize::default());
        let got = feed(&mut m, &message_frame(5, &sync)).unwrap();
        assert_eq!(got, vec![Ok(sync)]);
        assert!(m.take_frame().is_none() && m.take_event().is_none());
        assert!(rx.try_recv().is_none()); // deliveries go through the caller
    }

    fn vm_rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// The queue bound is in bytes: a peer's 1 MiB messages to a channel whose task does
    /// not read fill [`MAX_CHANNEL_QUEUE_BYTES`] (32 of them), not [`CHANNEL_QUEUE`]
    /// slots (256 x up to 16 MiB, as before); taking messages makes room again, and a
    /// dropped inbox gives back what it held.
    #[tokio::test]
    async fn queued_messages_are_bounded_in_bytes_across_a_connection() {
        let (mut m, mut c, _rx) = paired();
        let mut inbox = c.take_receiver().unwrap();
        let big = Message::Extension(crate::wire::Extension {
            name: "x".into(),
            message: vec![7; 1 << 20],
        });
        let frame = message_frame(5, &big);
        let rss_before = vm_rss_kib();
        let mut queued = 0;
        let refused = loop {
            let mut cursor = Cursor::default();
            let Step::Deliver(d) = m.step(&frame, &mut cursor).unwrap() else {
                panic!("not delivered");
            };
            match d.try_deliver() {
                Ok(()) => queued += 1,
                Err(d) => break d,
            }
            assert!(queued <= 64, "no bound in bytes");
        };
        // 32 MiB of 1 MiB bodies, each counted with its name and overhead: 31.
        assert_eq!(queued, (MAX_CHANNEL_QUEUE_BYTES >> 20) - 1);
        assert!(m.queued.held() <= MAX_CHANNEL_QUEUE_BYTES);
        // What the queue holds is what the process holds: 31 MiB, not 64.
        let grown_mib = vm_rss_kib().saturating_sub(rss_before) / 1024;
        assert!(grown_mib < 48, "RSS grew {grown_mib} MiB");
        // Room comes back when the channel's task takes a message.
        let room = refused.room();
        tokio::pin!(room);
        assert!(futures::FutureExt::now_or_never(room.as_mut()).is_none());
        assert!(matches!(
            inbox.recv().await,
            Some(Ok(Message::Extension(_)))
        ));
        let slot = room.await.expect("the channel is open");
        slot.send(*refused);
        // A dropped inbox (the channel's task ended) releases every queued byte.
        drop(inbox);
        assert_eq!(m.queued.held(), 0);
    }

    #[test]
    fn batches_keep_only_known_types_and_survive_garbage_entries() {
        let (mut m, _c, _rx) = paired();
        let range = Message::Range(Range {
            drop: false,
            start: 3,
            length: 4,
        });
        // channel 5: [type 0], [type 42], [range]; channel 6 (not open): [type 0]
        let mut frame = vec![0, 0, 5, 5, 0, 0, 0, 0, 0, 2, 42, 9];
        let mut entry = vec![8];
        range.encode(&mut entry);
        frame.push(u8::try_from(entry.len()).unwrap());
        frame.extend(&entry);
        frame.extend([0, 6, 5, 0, 0, 0, 0, 0]);
        let got = feed(&mut m, &frame).unwrap();
        assert_eq!(
            got,
            vec![Ok(Message::Synchronize(Synchronize::default())), Ok(range)]
        );
        // A message whose bytes do not decode is delivered as an error (the session
        // closes that channel), not dropped silently and not fatal for the connection.
        let got = feed(&mut m, &[5, 3, 1]).unwrap();
        assert!(matches!(got.as_slice(), [Err(WireError::Truncated { .. })]));
    }

    #[test]
    fn opens_for_other_protocols_are_rejected_and_bad_ids_fail() {
        let (mut m, _rx) = mux();
        let other = open_frame(
            5,
            "autobase/x",
            b"id",
            &Handshake {
                seeks: false,
                capability: [0; 32],
            },
        );
        feed(&mut m, &other).unwrap();
        assert_eq!(m.take_frame(), Some(vec![0, 2, 5]));
        assert!(matches!(
            feed(&mut m, &peer_open(MAX_CHANNEL_ID + 1, None)),
            Err(MuxError::ChannelId { .. })
        ));
        assert!(matches!(
            feed(&mut m, &peer_open(0, None)),
            Err(MuxError::ChannelId { id: 0 })
        ));
        assert!(matches!(
            feed(&mut m, &[0, 1, 2, 0xff]),
            Err(MuxError::MalformedOpen(_))
        ));
        feed(&mut m, &peer_open(2, None)).unwrap();
        assert!(matches!(m.take_event(), Some(Event::DiscoveryKey(k)) if k == dk()));
        assert!(matches!(
            feed(&mut m, &peer_open(2, None)),
            Err(MuxError::DuplicateChannel { id: 2 })
        ));
        // A second open for the same log under another id is refused.
        feed(&mut m, &peer_open(3, None)).unwrap();
        assert_eq!(m.take_frame(), Some(vec![0, 2, 3]));
        // The session does not share it: rejected, and forgotten.
        m.reject_remote(&dk());
        assert_eq!(m.take_frame(), Some(vec![0, 2, 2]));
        assert_eq!(m.remote_channels(), 0);
    }

    #[test]
    fn a_wrong_capability_ends_the_connection() {
        let (mut m, _rx) = mux();
        m.open(KEY).unwrap();
        let mut wrong = capability_of_peer();
        wrong[0] ^= 1;
        assert!(matches!(
            feed(&mut m, &peer_open(1, Some(wrong))),
            Err(MuxError::Capability { .. })
        ));
        // Our own side's capability (initiator) is not the peer's either.
        let (mut m, _rx) = mux();
        m.open(KEY).unwrap();
        let ours = capability(true, &KEY, &HASH);
        assert!(matches!(
            feed(&mut m, &peer_open(1, ours)),
            Err(MuxError::Capability { .. })
        ));
    }

    #[test]
    fn closes_from_either_side_free_the_channel() {
        let (mut m, c, _rx) = paired();
        feed(&mut m, &close_frame(5)).unwrap();
        assert!(matches!(m.take_event(), Some(Event::Close(k)) if k == dk()));
        assert!(c.closed());
        assert_eq!(m.remote_channels(), 0);
        // A frame the old channel still had queued is not sent.
        let (local_id, token) = (1, 1);
        assert!(
            m.outgoing(Outgoing::Frame {
                local_id,
                token,
                frame: vec![1, 0]
            })
            .is_none()
        );
        let (mut m, c, _rx) = paired();
        assert_eq!(m.outgoing(c.close_request()), Some(close_frame(1)));
        assert!(matches!(m.take_event(), Some(Event::Close(_))));
        assert_eq!(m.remote_channels(), 0);
    }

    #[test]
    fn the_namespace_matches_hypercore_caps() {
        // REPLICATE_INITIATOR as hypercore-protocol 0.7.2 hard-coded it.
        assert_eq!(
            namespace(1)[..4],
            [0x51, 0x81, 0x2A, 0x2A],
            "crypto.namespace('hypercore', 6)[1]"
        );
        assert_eq!(namespace(2)[..4], [0x04, 0x38, 0x49, 0x2D]);
    }
}
