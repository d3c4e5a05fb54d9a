//! Hypercore's wire messages (`hypercore/lib/messages.js`, `wire.*`): the channel
//! handshake and the ten channel messages, with hypercore 11's fields.
//!
//! Each message is decoded from exactly the bytes protomux delimits for it
//! ([`Message::decode`]), so a field a newer peer appends is ignored instead of being
//! read as the next message. Every length and count is checked against the bytes that
//! remain before anything is allocated ([`compact`]). Encoding follows hypercore 11;
//! hypercore 10.31 decodes all of it (checked by `js/interop/wire-vectors.mjs`).

pub mod compact;
mod manifest;
mod messages;

pub use messages::{
    Bitfield, Cancel, Data, Extension, Handshake, MAX_NODE_INDEX, MESSAGE_TYPES, Message, NoData,
    Range, Request, RequestSeek, Synchronize, Unwant, Want,
};

/// Bytes that are not a valid hypercore message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A field reaches past the end of its message.
    #[error("{what}: truncated (reaches past the end of the message)")]
    Truncated {
        /// The field.
        what: &'static str,
    },
    /// A count above what the encoding allows.
    #[error("{what}: {len} is above the limit of {limit}")]
    TooLarge {
        /// The field.
        what: &'static str,
        /// The count sent.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A value the protocol does not define (a manifest version, hash algorithm, ...).
    #[error("{what}: unknown value {value}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// The value sent.
        value: u64,
    },
    /// A string that is not UTF-8.
    #[error("{what}: not UTF-8")]
    NotUtf8 {
        /// The field.
        what: &'static str,
    },
    /// A message type outside `0..=9`.
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
}
