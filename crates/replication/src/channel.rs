//! One open `hypercore/alpha` channel, as a session task holds it: send messages (one
//! frame, or one batch frame), close it, receive what the peer sent on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::budget::ByteBudget;
use crate::protomux::{batch_frame, message_frame};
use crate::wire::{Message, WireError};

/// A received message, or why its bytes did not decode.
pub type Inbound = Result<Message, WireError>;

/// A received message in a channel's queue, with the bytes it came in: what it holds
/// of the connection's budget for queued messages
/// ([`crate::protomux::MAX_CHANNEL_QUEUE_BYTES`]) until the channel's task takes it.
#[derive(Debug)]
pub struct Queued {
    /// The message.
    pub item: Inbound,
    /// Its size on the wire.
    pub bytes: usize,
}

/// The receiving end of a channel's queue: taking a message releases its bytes from
/// the connection's budget; dropping the inbox releases what it still held.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Queued>,
    budget: Arc<ByteBudget>,
}

impl Inbox {
    pub(crate) fn new(rx: mpsc::Receiver<Queued>, budget: Arc<ByteBudget>) -> Self {
        Inbox { rx, budget }
    }

    /// The next message, waiting for one; `None` once the channel is gone.
    pub async fn recv(&mut self) -> Option<Inbound> {
        let queued = self.rx.recv().await?;
        self.budget.release(queued.bytes);
        Some(queued.item)
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<Inbound> {
        let queued = self.rx.try_recv().ok()?;
        self.budget.release(queued.bytes);
        Some(queued.item)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.rx.close();
        while let Ok(queued) = self.rx.try_recv() {
            self.budget.release(queued.bytes);
        }
    }
}

/// What a channel hands the connection to send.
#[derive(Debug)]
pub enum Outgoing {
    /// A frame of this channel's messages.
    Frame {
        /// The channel's local id.
        local_id: u64,
        /// Which channel held that id (ids are reused after a close).
        token: u64,
        /// The frame.
        frame: Vec<u8>,
    },
    /// Close this channel.
    Close {
        /// The channel's local id.
        local_id: u64,
        /// Which channel held that id.
        token: u64,
    },
}

impl Outgoing {
    /// Local id and token.
    pub fn channel(&self) -> (u64, u64) {
        match self {
            Outgoing::Frame {
                local_id, token, ..
            }
            | Outgoing::Close { local_id, token } => (*local_id, *token),
        }
    }
}

fn closed_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "channel is closed")
}

/// An open channel (made by [`crate::protomux::Mux`] once both sides opened it).
#[derive(Debug)]
pub struct Channel {
    local_id: u64,
    token: u64,
    discovery_key: [u8; 32],
    key: [u8; 32],
    out: mpsc::Sender<Outgoing>,
    closed: Arc<AtomicBool>,
    inbound: Option<Inbox>,
}

impl Channel {
    pub(crate) fn new(
        local_id: u64,
        token: u64,
        discovery_key: [u8; 32],
        key: [u8; 32],
        out: mpsc::Sender<Outgoing>,
        closed: Arc<AtomicBool>,
        inbound: Inbox,
    ) -> Self {
        Channel {
            local_id,
            token,
            discovery_key,
            key,
            out,
            closed,
            inbound: Some(inbound),
        }
    }

    /// The log's discovery key.
    pub fn discovery_key(&self) -> &[u8; 32] {
        &self.discovery_key
    }

    /// The log's key.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// Whether the channel closed (either side).
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The messages the peer sends on this channel (once; `None` after).
    pub fn take_receiver(&mut self) -> Option<Inbox> {
        self.inbound.take()
    }

    async fn send_frame(&self, frame: Vec<u8>) -> std::io::Result<()> {
        if self.closed() {
            return Err(closed_error());
        }
        self.out
            .send(Outgoing::Frame {
                local_id: self.local_id,
                token: self.token,
                frame,
            })
            .await
            .map_err(|_| closed_error())
    }

    /// Sends one message.
    pub async fn send(&self, message: Message) -> std::io::Result<()> {
        self.send_frame(message_frame(self.local_id, &message))
            .await
    }

    /// Sends messages as one batch frame (JS: `cork()` / `uncork()`).
    pub async fn send_batch(&self, messages: &[Message]) -> std::io::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        self.send_frame(batch_frame(self.local_id, messages)).await
    }

    /// Marks the channel closed and returns the close for the connection to send.
    pub(crate) fn close_request(&self) -> Outgoing {
        self.closed.store(true, Ordering::Release);
        Outgoing::Close {
            local_id: self.local_id,
            token: self.token,
        }
    }

    /// Closes the channel (a close frame goes to the peer).
    pub async fn close(&self) -> std::io::Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.out
            .send(Outgoing::Close {
                local_id: self.local_id,
                token: self.token,
            })
            .await
            .map_err(|_| closed_error())
    }
}
