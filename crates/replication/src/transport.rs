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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::budget::{ByteBudget, Pool};
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

/// Bound on the bytes of decrypted frames one connection holds that its session has
/// not taken yet. Past it the pump stops reading the socket, so the peer's sends wait
/// (TCP or UDX flow control); nothing is dropped. One frame larger than what is left
/// still passes when nothing else waits (frames are at most 16 MiB). Without it the
/// bound was `INBOUND_FRAMES` frames of up to 16 MiB: 4 GiB per connection.
pub const MAX_INBOUND_BYTES: usize = 32 * 1024 * 1024;

/// Bound on those bytes summed over every connection of the process: each
/// connection's [`MAX_INBOUND_BYTES`] also draws from this pool, so many connections
/// whose sessions are slow to take frames hold at most this much in all (the peers'
/// sends wait). Frames are drained by our own sessions, never held by a peer, so the
/// pool only slows connections while sessions are busy.
pub const MAX_TOTAL_INBOUND_BYTES: usize = 256 * 1024 * 1024;

static TOTAL_INBOUND: Pool = Pool::new(MAX_TOTAL_INBOUND_BYTES);

/// Bound on the bytes of outgoing frames queued for one connection and not yet written
/// to the socket (two of the largest frames a session sends, [`crate::MAX_WIRE_BLOCK`]).
/// A peer that requests but does not read fills it; the connection is then dropped
/// with a typed error (see [`SecretCipher`]).
pub const MAX_QUEUED_BYTES: usize = 32 * 1024 * 1024;

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
        |ends| pump(secret, ends, Some(hold), None, None),
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
    /// Bytes in `incoming` (bounded by [`MAX_INBOUND_BYTES`]).
    inbound: Arc<ByteBudget>,
    outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    /// Bytes of the frames in `outgoing` plus the one being written.
    queued: Arc<AtomicUsize>,
    ending: Arc<watch::Sender<Ending>>,
}

/// Moves frames between a secret stream and its [`SecretCipher`] until either side
/// ends; records how the connection ended.
/// `hold`, when given, is the switch of the [`Deferred`] stream under `stream`.
/// `keepalive`, when given: after that long without a frame to send, an empty message
/// goes out (as JS hyperdht's 5 s `keepAlive`; JS peers drop empty messages on such
/// connections). On a UDX stream that is what notices a peer that vanished: unacked
/// data fails the stream after six retransmission timeouts (about a minute).
/// `heard`, when given with `keepalive` (the bytes under `stream` pass through a
/// [`Listened`]): once the peer has shown that it sends keepalives (an empty message
/// came), [`SILENT_KEEPALIVES`] keepalive intervals without a byte from it end the
/// connection: a peer that was killed or lost its network is noticed in 15 s.
pub(crate) async fn pump<T>(
    stream: SecretStream<T>,
    ends: PumpEnds,
    hold: Option<Arc<AtomicBool>>,
    keepalive: Option<std::time::Duration>,
    heard: Option<Heard>,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin,
{
    let PumpEnds {
        incoming,
        inbound,
        mut outgoing,
        queued,
        ending,
    } = ends;
    let (mut reader, mut writer) = stream.into_split();
    let silence = keepalive
        .zip(heard)
        .map(|(every, heard)| (every * SILENT_KEEPALIVES, heard));
    let read = async {
        loop {
            let next = match &silence {
                Some((limit, heard)) => tokio::select! {
                    next = reader.read() => next,
                    () = heard.gone(*limit) => {
                        return Err(format!(
                            "nothing from the peer for {limit:?} (it sends keepalives): gone"
                        ));
                    }
                },
                None => reader.read().await,
            };
            match next {
                Ok(Some(frame)) => {
                    // The session holds too much unread: stop reading until it takes
                    // some (the peer's sends wait meanwhile). Our own wait is not the
                    // peer's silence.
                    if inbound.reserve(frame.len()).await
                        && let Some((_, heard)) = &silence
                    {
                        heard.touch();
                    }
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
            let written = writer.write(&frame).await;
            // Saturating: a dropped cipher resets the count while a write may finish.
            let _ = queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(frame.len()))
            });
            if let Err(e) = written {
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
    end(&ending, how);
}

/// Keepalive intervals without a byte from a peer that sends keepalives before its
/// connection is ended (see [`pump`]).
pub(crate) const SILENT_KEEPALIVES: u32 = 3;

/// The size of an encrypted empty message (secretstream's tag and MAC): on the wire,
/// a frame of exactly this length is a keepalive (no session message is empty).
const KEEPALIVE_FRAME: usize = 17;

/// When bytes last came from the peer: any bytes, not whole frames (a 16 MiB frame
/// takes seconds to arrive over a slow link), and whether a keepalive came. Shared by
/// the [`Listened`] stream that reads them and the pump that watches for silence.
#[derive(Clone)]
pub(crate) struct Heard {
    origin: tokio::time::Instant,
    /// Milliseconds from `origin` to the last read that returned bytes.
    at_ms: Arc<AtomicU64>,
    /// Whether a keepalive frame came (the peer sends them).
    keepalive: Arc<AtomicBool>,
}

impl Heard {
    pub(crate) fn new() -> Self {
        Heard {
            origin: tokio::time::Instant::now(),
            at_ms: Arc::new(AtomicU64::new(0)),
            keepalive: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the peer has sent a keepalive (then its silence means it is gone).
    fn keeps_alive(&self) -> bool {
        self.keepalive.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.at_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Completes once the peer has sent a keepalive and nothing was heard from it
    /// for `limit` since.
    pub(crate) async fn gone(&self, limit: Duration) {
        loop {
            let last = self.origin + Duration::from_millis(self.at_ms.load(Ordering::Relaxed));
            let quiet_until = last + limit;
            if !self.keeps_alive() {
                tokio::time::sleep(limit).await;
            } else if tokio::time::Instant::now() >= quiet_until {
                return;
            } else {
                tokio::time::sleep_until(quiet_until).await;
            }
        }
    }
}

/// A byte stream whose reads are recorded in a [`Heard`]; it follows the uint24
/// frame lengths to spot keepalives.
pub(crate) struct Listened<T> {
    inner: T,
    heard: Heard,
    /// Bytes of the current frame's length header read so far.
    header: [u8; 3],
    header_len: usize,
    /// Bytes of the current frame's body still to come.
    body_left: usize,
}

impl<T> Listened<T> {
    pub(crate) fn new(inner: T, heard: Heard) -> Self {
        heard.touch();
        Listened {
            inner,
            heard,
            header: [0; 3],
            header_len: 0,
            body_left: 0,
        }
    }

    /// Follows the frames through `bytes` (just read).
    fn follow(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            self.header[self.header_len] = bytes[0];
            self.header_len += 1;
            bytes = &bytes[1..];
            if self.header_len == 3 {
                let [a, b, c] = self.header;
                self.body_left = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
                self.header_len = 0;
                if self.body_left == KEEPALIVE_FRAME {
                    self.heard.keepalive.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Listened<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.heard.touch();
            self.follow(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Listened<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Records how the connection ended, unless that is already known.
fn end(ending: &watch::Sender<Ending>, how: Result<(), String>) {
    ending.send_if_modified(|now| {
        if now.is_some() {
            return false;
        }
        *now = Some(how);
        true
    });
}

/// An encrypted connection as the framed channel a session runs on
/// (`CipherTrait`). Frames are moved by a pump task; dropping the cipher closes the
/// connection.
///
/// Outgoing frames wait in a queue bounded in bytes (`MAX_QUEUED_BYTES` by default,
/// [`with_queue_limit`](Self::with_queue_limit)). A frame that would take the queue past
/// the bound means the peer does not read what it asked for: the connection is dropped
/// at once (the pump is stopped, the socket closed, frames still queued discarded), the
/// send fails, and the ending watch says why. There is no waiting instead: a peer that
/// asked for that much and read none of it is broken or hostile, and waiting would hold
/// the session (every channel on the connection) hostage to it.
pub struct SecretCipher {
    incoming: mpsc::Receiver<Vec<u8>>,
    inbound: Arc<ByteBudget>,
    outgoing: Option<mpsc::UnboundedSender<Vec<u8>>>,
    queued: Arc<AtomicUsize>,
    queue_limit: usize,
    ending: Arc<watch::Sender<Ending>>,
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
    /// the connection). Outgoing frames are queued up to [`MAX_QUEUED_BYTES`].
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
        let inbound = Arc::new(ByteBudget::with_pool(
            MAX_INBOUND_BYTES,
            Some(&TOTAL_INBOUND),
        ));
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (ending_tx, ending_rx) = watch::channel(None);
        let ending = Arc::new(ending_tx);
        let queued = Arc::new(AtomicUsize::new(0));
        let ends = PumpEnds {
            incoming: in_tx,
            inbound: inbound.clone(),
            outgoing: out_rx,
            queued: queued.clone(),
            ending: ending.clone(),
        };
        let cipher = SecretCipher {
            incoming: in_rx,
            inbound,
            outgoing: Some(out_tx),
            queued,
            queue_limit: MAX_QUEUED_BYTES,
            ending,
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

    /// Sets the bound on queued outgoing bytes (default [`MAX_QUEUED_BYTES`]). A single
    /// frame larger than the bound is still sent when nothing else is queued.
    pub fn with_queue_limit(mut self, bytes: usize) -> Self {
        self.queue_limit = bytes;
        self
    }

    /// Bytes of outgoing frames queued and not yet written to the connection.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Queues `frame`, or drops the connection when that would pass the queue bound
    /// (an error of kind `Other` carrying the typed `REPLICATION_FAILED`; a closed
    /// connection is `BrokenPipe`, a clean end for the session).
    fn enqueue(&mut self, frame: Vec<u8>) -> std::io::Result<()> {
        let closed = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection closed");
        let Some(tx) = &self.outgoing else {
            return Err(closed());
        };
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before.saturating_add(len) > self.queue_limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            let reason = format!(
                "peer does not read: {before} bytes already queued for it, a frame of {len} \
                 would pass the limit of {} bytes; connection dropped",
                self.queue_limit
            );
            warn!(%reason, "dropping a connection");
            self.outgoing.take();
            self._pump.abort();
            // The queued frames go with the pump's receiver.
            self.queued.store(0, Ordering::Release);
            end(&self.ending, Err(reason.clone()));
            return Err(std::io::Error::other(failed(reason)));
        }
        if tx.send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(closed());
        }
        Ok(())
    }
}

/// How long a dropped cipher's pump may keep writing the frames still queued before
/// the connection is cut (a peer that stopped reading would otherwise hold it forever).
const CLOSE_GRACE: Duration = Duration::from_secs(10);

impl Drop for SecretCipher {
    fn drop(&mut self) {
        // Closing the outgoing side lets the pump flush and shut the stream down; the
        // pump also stops when its reader finds nobody listening.
        self.outgoing.take();
        self.incoming.close();
        if !self._pump.is_finished()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let pump = self._pump.abort_handle();
            rt.spawn(async move {
                tokio::time::sleep(CLOSE_GRACE).await;
                pump.abort();
            });
        }
    }
}

impl Stream for SecretCipher {
    type Item = CipherEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CipherEvent>> {
        let polled = self.incoming.poll_recv(cx);
        if let Poll::Ready(Some(frame)) = &polled {
            self.inbound.release(frame.len());
        }
        polled.map(|frame| frame.map(CipherEvent::Message))
    }
}

impl Sink<Vec<u8>> for SecretCipher {
    type Error = std::io::Error;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: Vec<u8>) -> Result<(), Self::Error> {
        self.enqueue(item)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Our side (pumped, watching for silence) and the peer's raw secret stream, over
    /// an in-process pipe that stays open: the peer "vanishes" by just going quiet.
    async fn pumped(
        keepalive: Duration,
    ) -> (
        SecretCipher,
        watch::Receiver<Ending>,
        SecretStream<tokio::io::DuplexStream>,
    ) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let heard = Heard::new();
        let ours = Listened::new(ours, heard.clone());
        let (a, b) = tokio::join!(
            SecretStream::new(true, ours, peeroxide_dht::noise::generate_keypair()),
            SecretStream::new(false, theirs, peeroxide_dht::noise::generate_keypair()),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let (remote, hash) = (*a.remote_public_key(), a.handshake_hash().to_vec());
        let (cipher, ended) = SecretCipher::start(remote, [0; 32], hash, true, move |ends| {
            pump(a, ends, None, Some(keepalive), Some(heard))
        });
        (cipher, ended, b)
    }

    #[tokio::test]
    async fn a_peer_that_sent_keepalives_and_went_quiet_is_gone_after_three_intervals() {
        let every = Duration::from_millis(40);
        let (_cipher, mut ended, mut peer) = pumped(every).await;
        // The peer shows it keeps the connection alive (an empty message), then stops.
        peer.write(&[]).await.unwrap();
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), ended.wait_for(Option::is_some))
            .await
            .expect("a silent peer was never noticed")
            .unwrap();
        let how = ended.borrow().clone();
        assert!(
            matches!(&how, Some(Err(reason)) if reason.contains("nothing from the peer")),
            "{how:?}"
        );
        assert!(started.elapsed() >= every * 2, "{:?}", started.elapsed());
        drop(peer);
    }

    #[tokio::test]
    async fn a_session_that_takes_nothing_holds_at_most_the_inbound_bound() {
        let (cipher, _ended, mut peer) = pumped(Duration::from_secs(600)).await;
        let frame = vec![7u8; 1 << 20];
        let mut sent = 0usize;
        // The peer writes 1 MiB frames until a write stalls: the pump stopped reading.
        // (It used to take 256 frames, up to 4 GiB of 16 MiB ones, before it stopped.)
        loop {
            match tokio::time::timeout(Duration::from_millis(500), peer.write(&frame)).await {
                Ok(written) => {
                    written.unwrap();
                    sent += frame.len();
                }
                Err(_) => break,
            }
            assert!(sent <= 64 << 20, "the pump read {sent} bytes nobody took");
        }
        assert!(
            sent >= MAX_INBOUND_BYTES - (2 << 20),
            "stalled at {sent} bytes, before the bound"
        );
        drop(cipher);
    }

    #[tokio::test]
    async fn a_peer_that_never_sent_a_keepalive_is_not_timed_out() {
        let every = Duration::from_millis(20);
        let (_cipher, ended, mut peer) = pumped(every).await;
        // Data, but never an empty message: the peer may not send keepalives at all.
        peer.write(b"frame").await.unwrap();
        tokio::time::sleep(every * 10).await;
        assert!(ended.borrow().is_none(), "{:?}", *ended.borrow());
        drop(peer);
    }
}
