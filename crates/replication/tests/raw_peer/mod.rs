//! A raw hypercore peer built from our own codec, for tests that need a peer sending
//! exactly the frames they choose (bad ones included): it encrypts a real stream with
//! the real Noise handshake (as the initiator), opens one channel and reads the
//! messages the other side sends. Shared by `hostile.rs` and `properties.rs`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nova_hypercore_replication::protomux::{self, Cursor, Item};
use nova_hypercore_replication::transport::{self, SecretCipher};
use nova_hypercore_replication::wire::{Handshake, Message, Request, Synchronize};
use nova_hypercore_replication::{CipherEvent, CipherTrait};
use tokio::io::{AsyncRead, AsyncWrite};

/// How long the raw peer waits for the next frame before it gives up.
pub const WAIT: Duration = Duration::from_secs(20);
/// The channel id the raw peer opens.
pub const OURS: u64 = 1;

/// The peer: raw frames over an encrypted connection.
pub struct Raw {
    pub cipher: SecretCipher,
    messages: VecDeque<Message>,
    /// Whether the other side closed our channel.
    pub closed: bool,
}

impl Raw {
    /// Runs the Noise handshake on `stream` as the initiator.
    pub async fn connect<S>(stream: S) -> Raw
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (cipher, _ended) = transport::encrypt(stream, true).await.unwrap();
        Raw {
            cipher,
            messages: VecDeque::new(),
            closed: false,
        }
    }

    pub async fn send(&mut self, frame: Vec<u8>) {
        self.cipher.send(frame).await.unwrap();
    }

    pub async fn send_message(&mut self, message: Message) {
        self.send(protomux::message_frame(OURS, &message)).await;
    }

    /// Opens our channel for the log whose key is `key`.
    pub async fn open(&mut self, key: &[u8; 32]) {
        let open = self.open_frame(key);
        self.send(open).await;
    }

    pub fn open_frame(&self, key: &[u8; 32]) -> Vec<u8> {
        let hash = self.cipher.handshake_hash().unwrap();
        let dk = nova_hypercore_managed_core::discovery_key(key);
        let capability = protomux::capability(true, key, &hash).unwrap();
        protomux::open_frame(
            OURS,
            protomux::HYPERCORE_PROTOCOL,
            &dk,
            &Handshake {
                seeks: false,
                capability,
            },
        )
    }

    /// The next hypercore message the other side sends (opens and others are noted);
    /// `None` once it closed our channel (or sent nothing for [`WAIT`]).
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = self.messages.pop_front() {
                return Some(m);
            }
            let frame = match tokio::time::timeout(WAIT, self.cipher.next()).await {
                Ok(Some(CipherEvent::Message(frame))) => frame,
                _ => return None,
            };
            let mut cursor = Cursor::default();
            while let Some(item) = cursor.next(&frame) {
                match item.unwrap() {
                    Item::Message { typ, body, .. } => {
                        self.messages.push_back(Message::decode(typ, body).unwrap());
                    }
                    Item::Close { .. } => self.closed = true,
                    _ => {}
                }
            }
            if self.closed && self.messages.is_empty() {
                return None;
            }
        }
    }

    /// The next request the other side sends.
    pub async fn request(&mut self) -> Option<Request> {
        loop {
            match self.next().await? {
                Message::Request(r) => return Some(r),
                _ => continue,
            }
        }
    }
}

/// A `Synchronize` announcing `length`, ready to upload and download.
pub fn sync(length: u64) -> Message {
    Message::Synchronize(Synchronize {
        length,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        ..Synchronize::default()
    })
}
