//! Byte streams to encrypted, message-framed connections, exactly as JS peers make them
//! (`@hyperswarm/secret-stream`: Noise XX on ed25519 keys, uint24 little-endian frames,
//! then the stream-id + secretstream header exchange and XChaCha20-Poly1305 messages).
//!
//! [`encrypt`] runs that handshake on any duplex byte stream (TCP, an in-process pipe)
//! with `peeroxide-dht`'s `SecretStream` (the implementation the swarm uses, and the one
//! measured to interoperate with JS); [`SecretCipher`] presents the result, or a swarm
//! connection, as the framed, encrypted channel a session runs on.
//!
//! JS over TCP (`socket.pipe(core.replicate(isInitiator)).pipe(socket)`) speaks this,
//! both ways (checked by `cargo xtask test-integration js`). One implementation serves
//! TCP and swarm connections alike; `hypercore_handshake` 0.6's `Cipher` (used before)
//! is no longer needed for transport, and its end-of-stream and `todo!()` defects
//! with it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::cipher::{CipherEvent, CipherTrait, PUBLIC_KEYLEN};
use futures::{Sink, Stream};
use nova_hypercore_serialization::HypercoreError;
use peeroxide_dht::secret_stream::SecretStream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::warn;

/// Bound on the handshake of [`encrypt`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames decrypted ahead of the session before the reader waits (backpressure).
const INBOUND_FRAMES: usize = 256;

fn failed(reason: String) -> HypercoreError {
    HypercoreError::ReplicationFailed {
        log: "connection".into(),
        reason,
    }
}

/// How a connection ended: `None` while open, `Some(Ok)` at a clean end of stream,
/// `Some(Err(reason))` on a transport error.
pub type Ending = Option<Result<(), String>>;

/// Wraps a duplex byte stream (TCP, an in-process pipe, ...) into the encrypted,
/// framed connection a session ([`crate::Replicator`]) runs on, and a receiver that
/// says when the stream ended. `initiator` is the side that opened the connection
/// (exactly one side must be). The handshake is bounded by [`HANDSHAKE_TIMEOUT`].
pub async fn encrypt<S>(
    stream: S,
    initiator: bool,
) -> Result<(SecretCipher, watch::Receiver<Ending>), HypercoreError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let keypair = peeroxide_dht::noise::generate_keypair();
    let local = keypair.public_key;
    // Buffered both ways: the secret stream writes a frame as header + body + flush and
    // reads header then body. Buffering, and flushes deferred while more frames wait
    // (see `pump`), make that one write per burst of frames instead of two per frame.
    let hold = Arc::new(AtomicBool::new(false));
    let stream = Deferred {
        inner: tokio::io::BufStream::new(stream),
        hold: hold.clone(),
    };
    let secret = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        SecretStream::new(initiator, stream, keypair),
    )
    .await
    .map_err(|_| failed(format!("handshake timed out after {HANDSHAKE_TIMEOUT:?}")))?
    .map_err(|e| failed(format!("handshake: {e}")))?;
    let remote = *secret.remote_public_key();
    let hash = secret.handshake_hash().to_vec();
    Ok(SecretCipher::start(
        remote,
        local,
        hash,
        initiator,
        |ends| pump(secret, ends, Some(hold), None),
    ))
}

/// A buffered stream whose flushes are skipped while `hold` is set (more frames are
/// queued behind the one being written); the last frame of a burst flushes them all.
struct Deferred<S> {
    inner: tokio::io::BufStream<S>,
    hold: Arc<AtomicBool>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Deferred<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Deferred<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.hold.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The pump's side of a [`SecretCipher`].
pub(crate) struct PumpEnds {
    incoming: mpsc::Sender<Vec<u8>>,
    outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    ending: watch::Sender<Ending>,
}

/// Moves frames between a secret stream and its [`SecretCipher`] until either side
/// ends; records how the connection ended.
/// `hold`, when given, is the switch of the [`Deferred`] stream under `stream`.
/// `keepalive`, when given: after that long without a frame to send, an empty message
/// goes out (as JS hyperdht's 5 s `keepAlive`; JS peers drop empty messages on such
/// connections). On a UDX stream that is what notices a peer that vanished: unacked
/// data fails the stream after six retransmission timeouts.
pub(crate) async fn pump<T>(
    stream: SecretStream<T>,
    ends: PumpEnds,
    hold: Option<Arc<AtomicBool>>,
    keepalive: Option<std::time::Duration>,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin,
{
    let PumpEnds {
        incoming,
        mut outgoing,
        ending,
    } = ends;
    let (mut reader, mut writer) = stream.into_split();
    let read = async {
        loop {
            match reader.read().await {
                Ok(Some(frame)) => {
                    if incoming.send(frame).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    };
    let write = async {
        loop {
            let next = match keepalive {
                Some(every) => tokio::time::timeout(every, outgoing.recv())
                    .await
                    .unwrap_or_else(|_| Some(Vec::new())),
                None => outgoing.recv().await,
            };
            let Some(frame) = next else { break };
            if let Some(hold) = &hold {
                hold.store(!outgoing.is_empty(), Ordering::Relaxed);
            }
            if let Err(e) = writer.write(&frame).await {
                return Err(format!("write: {e}"));
            }
        }
        let _ = writer.shutdown().await;
        Ok(())
    };
    let how = tokio::select! {
        r = read => r,
        w = write => w,
    };
    if let Err(reason) = &how {
        warn!(%reason, "connection ended");
    }
    let _ = ending.send(Some(how));
}

/// An encrypted connection as the framed channel a session runs on
/// (`CipherTrait`). Frames are moved by a pump task; dropping the cipher closes the
/// connection.
pub struct SecretCipher {
    incoming: mpsc::Receiver<Vec<u8>>,
    outgoing: Option<mpsc::UnboundedSender<Vec<u8>>>,
    remote: [u8; 32],
    local: [u8; 32],
    handshake_hash: Vec<u8>,
    is_initiator: bool,
    _pump: JoinHandle<()>,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCipher")
            .field("is_initiator", &self.is_initiator)
            .finish_non_exhaustive()
    }
}

impl SecretCipher {
    /// A cipher whose frames are moved by the task `pump(ends)` (spawned here; it owns
    /// the connection). Outgoing frames are queued without a bound: the sessions above
    /// bound what they have in flight (request windows), so the queue holds at most one
    /// window of replies per channel.
    pub(crate) fn start<F>(
        remote: [u8; 32],
        local: [u8; 32],
        handshake_hash: Vec<u8>,
        is_initiator: bool,
        pump: impl FnOnce(PumpEnds) -> F,
    ) -> (Self, watch::Receiver<Ending>)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (in_tx, in_rx) = mpsc::channel(INBOUND_FRAMES);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (ending_tx, ending_rx) = watch::channel(None);
        let ends = PumpEnds {
            incoming: in_tx,
            outgoing: out_rx,
            ending: ending_tx,
        };
        let cipher = SecretCipher {
            incoming: in_rx,
            outgoing: Some(out_tx),
            remote,
            local,
            handshake_hash,
            is_initiator,
            _pump: tokio::spawn(pump(ends)),
        };
        (cipher, ending_rx)
    }

    /// The peer's Noise public key.
    pub fn remote_public_key(&self) -> [u8; 32] {
        self.remote
    }
}

impl Drop for SecretCipher {
    fn drop(&mut self) {
        // Closing the outgoing side lets the pump flush and shut the stream down; the
        // pump also stops when its reader finds nobody listening.
        self.outgoing.take();
        self.incoming.close();
    }
}

impl Stream for SecretCipher {
    type Item = CipherEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CipherEvent>> {
        self.incoming
            .poll_recv(cx)
            .map(|frame| frame.map(CipherEvent::Message))
    }
}

impl Sink<Vec<u8>> for SecretCipher {
    type Error = std::io::Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Vec<u8>) -> Result<(), Self::Error> {
        match &self.outgoing {
            Some(tx) if tx.send(item).is_ok() => Ok(()),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "connection closed",
            )),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.outgoing.take();
        Poll::Ready(Ok(()))
    }
}

impl CipherTrait for SecretCipher {
    fn remote_public_key(&self) -> Option<[u8; PUBLIC_KEYLEN]> {
        Some(self.remote)
    }

    fn local_public_key(&self) -> [u8; PUBLIC_KEYLEN] {
        self.local
    }

    fn handshake_hash(&self) -> Option<Vec<u8>> {
        Some(self.handshake_hash.clone())
    }

    fn is_initiator(&self) -> bool {
        self.is_initiator
    }
}
