//! The stream under a swarm connection: the one seam between "the connection set-up
//! found a path" (a socket and an address that reach the peer, the handshake's stream
//! ids and Noise keys: `lan.rs`, `holepunch.rs`, `server.rs`) and "an encrypted
//! stream is up" ([`Connection`], which `SwarmPeer` pumps).
//!
//! Two kinds of socket carry streams ([`Socket`]): the DHT's (peeroxide-dht's libudx
//! sockets: a stream there is libudx's) and ours (the holepuncher's
//! [`Endpoint`](crate::udx::socket::Endpoint)s: a stream there is our own UDX stream,
//! `crate::udx`). [`RawStream`] is the only type in the swarm that touches either
//! stream, and [`Connection::new`] takes a secret stream over any byte stream (the
//! pump is generic), so the set-up code picks a socket and does not care which kind
//! (issue 22; docs/udx-socket-seam.md for how the DHT's sockets get ours next).
//!
//! Must not: decide who dials or how (that is the set-up's), or know about sessions.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use libudx::{UdxError, UdxRuntime, UdxSocket, UdxStream};

use crate::udx::socket::{Endpoint, UdxStream as OurStream};
use peeroxide_dht::hyperdht::PeerConnection;
use peeroxide_dht::noise_wrap::NoiseWrapResult;
use peeroxide_dht::secret_stream::{SecretStream, SecretStreamError};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Carrier;
use crate::transport::{Heard, Listened, PumpEnds};

/// Why a stream to a peer could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    /// The UDX stream could not be made, connected or hooked to a socket.
    #[error("UDX {what} ({addr}): {source}")]
    Udx {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: UdxError,
    },
    /// Our stream could not be made on our socket.
    #[error("UDX stream ({addr}): {reason}")]
    Stream { addr: SocketAddr, reason: String },
    /// A stream of one kind on a socket of the other (a bug of ours).
    #[error("UDX stream and socket of different kinds ({addr})")]
    Mismatch { addr: SocketAddr },
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
    /// One of the DHT's (libudx): streams there are libudx's.
    Dht(UdxSocket),
    /// One of ours (the holepuncher's): streams there are our own UDX streams.
    Ours(Endpoint),
}

impl Socket {
    /// The port it is bound to.
    pub(crate) async fn port(&self) -> Option<u16> {
        match self {
            Socket::Dht(socket) => socket.local_addr().await.ok().map(|a| a.port()),
            Socket::Ours(endpoint) => endpoint.local_addr().ok().map(|a| a.port()),
        }
    }
}

/// Our end of a stream to a peer, made with our stream id on one of our sockets.
pub(crate) enum RawStream {
    /// libudx's, on a DHT socket.
    Libudx(UdxStream),
    /// Ours, on one of our endpoints.
    Ours(OurStream),
}

impl RawStream {
    /// A stream with our id `local_id` (the one the handshake offered), of the kind
    /// `socket` carries.
    pub(crate) async fn create(
        runtime: &UdxRuntime,
        socket: &Socket,
        local_id: u32,
    ) -> Result<Self, String> {
        match socket {
            Socket::Dht(_) => runtime
                .create_stream(local_id)
                .await
                .map(RawStream::Libudx)
                .map_err(|e| e.to_string()),
            Socket::Ours(endpoint) => endpoint
                .stream_with_id(local_id)
                .map(RawStream::Ours)
                .ok_or_else(|| format!("stream id {local_id} is taken on our socket")),
        }
    }

    /// Connects it, over `socket`, to the peer's stream `remote_id` at `addr`.
    pub(crate) async fn connect(
        &self,
        socket: &Socket,
        remote_id: u32,
        addr: SocketAddr,
    ) -> Result<(), StreamError> {
        match (self, socket) {
            (RawStream::Libudx(stream), Socket::Dht(socket)) => stream
                .connect(socket, remote_id, addr)
                .await
                .map_err(|source| StreamError::Udx {
                    what: "connect",
                    addr,
                    source,
                }),
            (RawStream::Ours(stream), Socket::Ours(_)) => {
                stream.connect(remote_id, addr);
                Ok(())
            }
            _ => Err(StreamError::Mismatch { addr }),
        }
    }

    /// A stream with our id `local_id` listening on `socket` for the first packet of
    /// the peer's stream `remote_id` (from an address not known yet: a holepunch);
    /// `first(from)` decides whether this stream takes it (and connects to `from`).
    pub(crate) async fn waiting(
        runtime: &UdxRuntime,
        socket: &Socket,
        local_id: u32,
        remote_id: u32,
        first: impl Fn(SocketAddr) -> bool + Send + Sync + 'static,
    ) -> Result<Self, String> {
        match socket {
            Socket::Dht(socket) => {
                let stream = runtime
                    .create_stream(local_id)
                    .await
                    .map_err(|e| e.to_string())?;
                stream
                    .set_firewall_hook(socket, remote_id, move |_, port, ip| {
                        first(SocketAddr::new(ip, port))
                    })
                    .map_err(|e| e.to_string())?;
                Ok(RawStream::Libudx(stream))
            }
            Socket::Ours(endpoint) => endpoint
                .stream_waiting(local_id, remote_id, first)
                .map(RawStream::Ours)
                .ok_or_else(|| format!("stream id {local_id} is taken on our socket")),
        }
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
        match self {
            RawStream::Libudx(stream) => {
                secure_on(
                    stream.into_async_stream(),
                    keys,
                    socket,
                    addr,
                    wait,
                    Carrier::Libudx,
                )
                .await
            }
            RawStream::Ours(stream) => {
                secure_on(stream, keys, socket, addr, wait, Carrier::OurUdx).await
            }
        }
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
    runtime: &UdxRuntime,
    socket: Socket,
    (local_id, remote_id): (u32, u32),
    addr: SocketAddr,
    keys: &NoiseWrapResult,
    wait: Duration,
) -> Result<Connection, StreamError> {
    let stream = RawStream::create(runtime, &socket, local_id)
        .await
        .map_err(|reason| StreamError::Stream { addr, reason })?;
    stream.connect(&socket, remote_id, addr).await?;
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

    /// peeroxide-dht's own connection (its connect, our fallback for a peer no DHT
    /// node holds a record of, or a server asking for a blind relay).
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
