//! The stream under a swarm connection: the one seam between "the connection set-up
//! found a path" (a socket and an address that reach the peer, the handshake's stream
//! ids and Noise keys: `lan.rs`, `holepunch.rs`, `server.rs`) and "an encrypted
//! stream is up" ([`Connection`], which `SwarmPeer` pumps).
//!
//! Every stream the set-up makes is our own UDX stream (`crate::udx`), on one of two
//! kinds of socket ([`Socket`]): ours (the holepuncher's, or one bound for a dial: the
//! stream runs on it directly) and the DHT's (peeroxide-dht's libudx sockets: the
//! stream runs through the swarm's tap, `tap.rs`). [`RawStream`] is the only type in
//! the swarm that makes streams, and [`Connection::new`] takes a secret stream over any
//! byte stream (the pump is generic), so the set-up code picks a socket and does not
//! care which kind. The one libudx stream left is peeroxide-dht's own connect
//! ([`Connection::from_peeroxide`]), for a server that asks for a blind relay.
//!
//! Must not: decide who dials or how (that is the set-up's), or know about sessions.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use libudx::UdxSocket;

use crate::udx::socket::{Endpoint, UdxStream as OurStream};
use peeroxide_dht::hyperdht::PeerConnection;
use peeroxide_dht::noise_wrap::NoiseWrapResult;
use peeroxide_dht::secret_stream::{SecretStream, SecretStreamError};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Carrier;
use super::tap::Tap;
use crate::transport::{Heard, Listened, PumpEnds};

/// Why a stream to a peer could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    /// Our stream could not be made (on our socket, or through the tap).
    #[error("UDX stream ({addr}): {reason}")]
    Stream { addr: SocketAddr, reason: String },
    /// The peer did not take our secret stream in time.
    #[error("no secret stream from {addr} within {wait:?}")]
    Timeout { addr: SocketAddr, wait: Duration },
    /// The secret stream's header exchange failed.
    #[error("secret stream with {addr}: {source}")]
    Secret {
        addr: SocketAddr,
        #[source]
        source: SecretStreamError,
    },
}

/// A UDP socket a stream can be made on.
#[derive(Clone)]
pub(crate) enum Socket {
    /// One of the DHT's (libudx): our stream runs there through the swarm's tap
    /// (`tap.rs`).
    Dht(UdxSocket, Tap),
    /// One of ours (the holepuncher's, or one bound for a dial): our stream runs on
    /// it directly.
    Ours(Endpoint),
}

/// Our end of a stream to a peer: always our own UDX stream, on one of our sockets
/// or tapped from one of the DHT's.
pub(crate) enum RawStream {
    /// On one of the DHT's sockets, through the tap.
    Tapped(OurStream),
    /// On one of our endpoints.
    Ours(OurStream),
}

impl RawStream {
    /// A stream with our id `local_id` (the one the handshake offered) on `socket`,
    /// connected to the peer's stream `remote_id` at `addr`.
    pub(crate) async fn connect(
        socket: &Socket,
        local_id: u32,
        remote_id: u32,
        addr: SocketAddr,
    ) -> Result<Self, StreamError> {
        match socket {
            Socket::Dht(dht, tap) => tap
                .connect(dht, local_id, remote_id, addr)
                .await
                .map(RawStream::Tapped)
                .map_err(|reason| StreamError::Stream { addr, reason }),
            Socket::Ours(endpoint) => {
                let stream =
                    endpoint
                        .stream_with_id(local_id)
                        .ok_or_else(|| StreamError::Stream {
                            addr,
                            reason: format!("stream id {local_id} is taken on our socket"),
                        })?;
                stream.connect(remote_id, addr);
                Ok(RawStream::Ours(stream))
            }
        }
    }

    /// A stream with our id `local_id` listening on `socket` for the first packet of
    /// the peer's stream `remote_id` (from an address not known yet: a holepunch);
    /// `first(from)` decides whether this stream takes it (and connects to `from`).
    /// For the DHT's sockets see [`RawStream::waiting_tapped`].
    pub(crate) fn waiting(
        endpoint: &Endpoint,
        local_id: u32,
        remote_id: u32,
        first: impl Fn(SocketAddr) -> bool + Send + Sync + 'static,
    ) -> Result<Self, String> {
        endpoint
            .stream_waiting(local_id, remote_id, first)
            .map(RawStream::Ours)
            .ok_or_else(|| format!("stream id {local_id} is taken on our socket"))
    }

    /// One stream with our id `local_id` listening on each of the DHT's sockets
    /// `dhts` (with their indexes) at once: `first(index, from)` decides, as for
    /// [`RawStream::waiting`].
    pub(crate) async fn waiting_tapped(
        tap: &Tap,
        dhts: &[(usize, UdxSocket)],
        local_id: u32,
        remote_id: u32,
        first: impl Fn(usize, SocketAddr) -> bool + Clone + Send + Sync + 'static,
    ) -> Result<Self, String> {
        tap.waiting(dhts, local_id, remote_id, first)
            .await
            .map(RawStream::Tapped)
    }

    /// The encrypted stream on this one, with the handshake's keys (the ID header
    /// exchange must finish within `wait`). `socket` is kept with it.
    pub(crate) async fn secure(
        self,
        keys: &NoiseWrapResult,
        socket: Socket,
        addr: SocketAddr,
        wait: Duration,
    ) -> Result<Connection, StreamError> {
        let (stream, carrier) = match self {
            RawStream::Tapped(stream) => (stream, Carrier::OurUdxTapped),
            RawStream::Ours(stream) => (stream, Carrier::OurUdx),
        };
        secure_on(stream, keys, socket, addr, wait, carrier).await
    }
}

async fn secure_on<T>(
    stream: T,
    keys: &NoiseWrapResult,
    socket: Socket,
    addr: SocketAddr,
    wait: Duration,
    carrier: Carrier,
) -> Result<Connection, StreamError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let heard = Heard::new();
    let secret = SecretStream::from_session(
        keys.is_initiator,
        Listened::new(stream, heard.clone()),
        keys.tx,
        keys.rx,
        keys.handshake_hash,
        keys.remote_public_key,
    );
    let secret = tokio::time::timeout(wait, secret)
        .await
        .map_err(|_| StreamError::Timeout { addr, wait })?
        .map_err(|source| StreamError::Secret { addr, source })?;
    Ok(Connection::new(secret, socket, addr, Some(heard), carrier))
}

/// Connects a fresh stream (our id `local_id`) over `socket` to the peer's `remote_id`
/// at `addr` and secures it: the client side of every path we dial.
pub(crate) async fn dial(
    socket: Socket,
    (local_id, remote_id): (u32, u32),
    addr: SocketAddr,
    keys: &NoiseWrapResult,
    wait: Duration,
) -> Result<Connection, StreamError> {
    let stream = RawStream::connect(&socket, local_id, remote_id, addr).await?;
    stream.secure(keys, socket, addr, wait).await
}

/// The task that moves a connection's frames (see `transport::pump`).
type Pump = Box<dyn FnOnce(PumpEnds) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// An encrypted stream to a peer, whatever carries it, ready to be pumped.
pub(crate) struct Connection {
    pub(crate) remote_public_key: [u8; 32],
    pub(crate) handshake_hash: Vec<u8>,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) carrier: Carrier,
    pump: Pump,
}

impl Connection {
    /// A connection on `secret` over any byte stream; `keep` (e.g. the socket under
    /// it) lives as long as the connection. `heard`: the clock of the [`Listened`]
    /// stream under `secret`, if any (a peer that sends keepalives and then falls
    /// silent is noticed by it, see `transport::pump`). `carrier`: whose UDX stream
    /// is under it.
    pub(crate) fn new<T>(
        secret: SecretStream<T>,
        keep: impl Send + 'static,
        remote_addr: SocketAddr,
        heard: Option<Heard>,
        carrier: Carrier,
    ) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Connection {
            remote_public_key: *secret.remote_public_key(),
            handshake_hash: secret.handshake_hash().to_vec(),
            remote_addr: Some(remote_addr),
            carrier,
            pump: pump_with(secret, keep, heard),
        }
    }

    /// peeroxide-dht's own connection (its connect: a server asking for a blind
    /// relay).
    pub(crate) fn from_peeroxide(peer: PeerConnection) -> Self {
        let PeerConnection {
            stream,
            remote_public_key,
            remote_addr,
            socket,
            ..
        } = peer;
        Connection {
            remote_public_key,
            handshake_hash: stream.handshake_hash().to_vec(),
            remote_addr,
            carrier: Carrier::Libudx,
            pump: pump_with(stream, socket, None),
        }
    }

    /// Pumps the connection's frames until it ends (an empty message after
    /// `swarm::KEEPALIVE` without traffic), then drops what it held.
    pub(crate) fn pump(self, ends: PumpEnds) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        (self.pump)(ends)
    }
}

fn pump_with<T>(secret: SecretStream<T>, keep: impl Send + 'static, heard: Option<Heard>) -> Pump
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    Box::new(move |ends| {
        Box::pin(async move {
            crate::transport::pump(secret, ends, None, Some(super::KEEPALIVE), heard).await;
            drop(keep);
        })
    })
}
