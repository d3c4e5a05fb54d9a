//! The encrypted, message-framed connection a session runs on.
//!
//! [`transport::encrypt`](crate::transport::encrypt) and swarm connections present
//! themselves as a [`CipherTrait`]: a stream of decrypted frames and a sink of frames to
//! encrypt, plus what the channel capabilities are computed from (the Noise handshake
//! hash and which side initiated). Same shape as `hypercore_handshake` 0.6's trait of
//! that name, which this replaces (that crate's handshake code was not used).

use futures::{Sink, Stream};

/// Bytes of a Noise public key.
pub const PUBLIC_KEYLEN: usize = 32;

/// A public key of the connection's Noise handshake.
pub type PublicKey = [u8; PUBLIC_KEYLEN];

/// What the connection yields.
#[derive(Debug)]
pub enum CipherEvent {
    /// One decrypted frame.
    Message(Vec<u8>),
    /// The connection failed.
    ErrStuff(std::io::Error),
}

/// An encrypted, framed connection (see the module docs).
pub trait CipherTrait:
    Stream<Item = CipherEvent> + Sink<Vec<u8>, Error = std::io::Error> + Unpin + Send + Sync
{
    /// The peer's Noise public key.
    fn remote_public_key(&self) -> Option<PublicKey>;
    /// Our Noise public key.
    fn local_public_key(&self) -> PublicKey;
    /// The Noise handshake hash (64 bytes), the key of every channel capability.
    fn handshake_hash(&self) -> Option<Vec<u8>>;
    /// Whether this side opened the connection.
    fn is_initiator(&self) -> bool;
}
