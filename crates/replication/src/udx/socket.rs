//! The tokio driver of our UDX streams: an [`Endpoint`] owns one UDP socket and the
//! table of the stream ids registered on it (many streams per socket, told apart by
//! id, as C libudx does); each [`UdxStream`] is an `AsyncRead + AsyncWrite` over a
//! [`Stream`] state machine with one task that runs its timers and sends its packets.
//!
//! Receiving: one task per endpoint reads datagrams; a UDX datagram for a registered id
//! goes to that stream (the first one from an unconnected stream's peer fixes the
//! peer's address: the server side of hyperdht, docs/udx-protocol.md §2.1); everything
//! else (not UDX, or an id nobody registered) goes to the endpoint's fallback channel,
//! for whatever else uses the socket (the holepuncher's probes). A connected stream
//! takes packets only from its peer's address (C takes them from anywhere; the id alone
//! is 32 bits of a stranger's guess).
//!
//! Sending: a stream's task wakes when the application wrote, a packet arrived or a
//! timer is due, asks the state machine for every datagram due now (acks for a whole
//! batch of received packets go as one), sends them, and sleeps until the next
//! deadline. Writes made while the task is busy are packed together, so a secret-stream
//! frame's 3-byte prefix and its body go in one packet.
//!
//! Dropping a [`UdxStream`] ends its write side (what was written is still delivered;
//! the END goes out from the drop itself when nothing is queued before it); its task
//! removes the id once the stream closed (both sides ended) plus a short linger that
//! answers the peer's retransmitted END, failed (reset, or the peer stopped answering:
//! retransmission timeouts), was never connected, or, dropped, saw its peer not end its
//! side for a minute (then silently: a DESTROY would make a JS peer discard what it
//! received and has not read). The endpoint's socket closes when the endpoint and its
//! streams are gone.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};
use tracing::debug;

use super::packet::{self, MAX_DATAGRAM};
use super::stream::{Config, Stream, StreamError};

/// How long a closed stream keeps answering its peer (a lost last ack).
const LINGER: Duration = Duration::from_secs(2);
/// How long a dropped stream whose peer never ends its side lives on (its data still
/// goes out meanwhile); then it goes silently (no DESTROY: a JS peer would discard
/// data it received and has not read yet).
const ABANDON: Duration = Duration::from_secs(60);
/// Datagrams queued on the fallback channel before more are dropped.
const FALLBACK_QUEUE: usize = 1024;

/// A datagram that was not for any of our streams, and where it came from.
pub type Datagram = (Vec<u8>, SocketAddr);

/// One UDP socket carrying many UDX streams.
#[derive(Debug, Clone)]
pub struct Endpoint {
    inner: Arc<EndpointInner>,
}

#[derive(Debug)]
struct EndpointInner {
    socket: Arc<UdpSocket>,
    streams: Mutex<HashMap<u32, Arc<Shared>>>,
    config: Config,
    /// Dropped with the endpoint: its receive task then ends and the socket closes.
    _closed: tokio::sync::watch::Sender<()>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the stream's task.
    notify: Notify,
    /// What must live as long as the stream's task (whatever carries its packets
    /// beyond the socket: a tap's relays), dropped when the task ends.
    kept: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

struct State {
    stream: Stream,
    remote: Option<SocketAddr>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// The application's handle is gone.
    dropped: bool,
    /// A payload read in part: the rest, from the offset.
    partial: Option<(Vec<u8>, usize)>,
    /// Asked before an unconnected stream takes its first packet: whether to take it
    /// (and connect to its sender's stream id given with the hook).
    first_packet: Option<(u32, FirstPacketHook)>,
}

/// Decides whether a waiting stream takes a first packet from this address.
type FirstPacketHook = Box<dyn Fn(SocketAddr) -> bool + Send + Sync>;

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("stream", &self.stream)
            .field("remote", &self.remote)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl State {
    fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

/// Payload bytes per packet at a 1,500-byte IPv6 packet (C: 1500 - 68).
const MAX_MSS_V6: usize = 1432;

/// Sets don't-fragment on every datagram and ignores the kernel's path MTU cache (C
/// libudx's `IP_PMTUDISC_PROBE`), so an MTU probe larger than the path is lost, never
/// fragmented (`udx::mtu`). False where it cannot be set (then the endpoint's streams
/// do not probe).
fn dont_fragment(socket: &UdpSocket) -> bool {
    #[cfg(target_os = "linux")]
    {
        use rustix::net::sockopt;
        let set = match socket.local_addr() {
            Ok(SocketAddr::V6(_)) => {
                sockopt::set_ipv6_mtu_discover(socket, sockopt::Ipv6PathMtuDiscovery::PROBE)
            }
            _ => sockopt::set_ip_mtu_discover(socket, sockopt::Ipv4PathMtuDiscovery::PROBE),
        };
        match set {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "UDX socket: don't-fragment not set; no MTU probing");
                false
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        false
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Endpoint {
    /// Binds a UDP socket at `addr`; returns the endpoint and the channel of datagrams
    /// that were not for any of its streams.
    pub async fn bind(addr: SocketAddr) -> io::Result<(Endpoint, mpsc::Receiver<Datagram>)> {
        let socket = UdpSocket::bind(addr).await?;
        Ok(Endpoint::from_socket(socket, Config::default()))
    }

    /// Runs on `socket` (its other traffic comes out of the returned channel); every
    /// stream gets `config`. Needs a tokio runtime.
    pub fn from_socket(
        socket: UdpSocket,
        mut config: Config,
    ) -> (Endpoint, mpsc::Receiver<Datagram>) {
        if dont_fragment(&socket) {
            if matches!(socket.local_addr(), Ok(SocketAddr::V6(_))) {
                config.max_mss = config.max_mss.min(MAX_MSS_V6);
            }
        } else {
            // A probe that "gets through" fragmented proves nothing: no probing.
            config.max_mss = config.mss;
        }
        let (tx, rx) = mpsc::channel(FALLBACK_QUEUE);
        let (closed_tx, closed) = tokio::sync::watch::channel(());
        let inner = Arc::new(EndpointInner {
            socket: Arc::new(socket),
            streams: Mutex::new(HashMap::new()),
            config,
            _closed: closed_tx,
        });
        tokio::spawn(receive(
            Arc::downgrade(&inner),
            inner.socket.clone(),
            tx,
            closed,
        ));
        (Endpoint { inner }, rx)
    }

    /// The socket's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.socket.local_addr()
    }

    /// The socket, for sending datagrams that are not UDX (probes).
    pub fn socket(&self) -> &Arc<UdpSocket> {
        &self.inner.socket
    }

    /// A new stream with a random unused id, not connected: it takes the first packet
    /// for its id from anyone and connects to its sender with
    /// [`UdxStream::connect`] (or sends first once connected).
    pub fn stream(&self) -> UdxStream {
        loop {
            if let Some(stream) = self.stream_with_id(random_id()) {
                return stream;
            }
        }
    }

    /// A new stream with id `id` (offered to the peer already), unless a stream of
    /// this endpoint has it.
    pub fn stream_with_id(&self, id: u32) -> Option<UdxStream> {
        self.register(id, None)
    }

    /// A new stream with id `id` that waits for the first packet of the peer's stream
    /// `remote_id` from an address not known yet (a holepunch): `take(from)` decides
    /// whether it takes it (and connects to `from`); a refused packet is dropped. The
    /// hook is in place before the id is, so no packet slips past it.
    pub fn stream_waiting(
        &self,
        id: u32,
        remote_id: u32,
        take: impl Fn(SocketAddr) -> bool + Send + Sync + 'static,
    ) -> Option<UdxStream> {
        self.register(id, Some((remote_id, Box::new(take))))
    }

    fn register(&self, id: u32, first_packet: Option<(u32, FirstPacketHook)>) -> Option<UdxStream> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                stream: Stream::new(self.inner.config.clone()),
                remote: None,
                read_waker: None,
                write_waker: None,
                dropped: false,
                partial: None,
                first_packet,
            }),
            notify: Notify::new(),
            kept: Mutex::new(None),
        });
        match lock(&self.inner.streams).entry(id) {
            Entry::Vacant(slot) => slot.insert(shared.clone()),
            Entry::Occupied(_) => return None,
        };
        tokio::spawn(drive(self.inner.clone(), id, shared.clone()));
        Some(UdxStream {
            id,
            shared,
            endpoint: self.inner.clone(),
        })
    }
}

/// An unpredictable u32 (std's randomly keyed SipHash over a counter and the clock).
pub(crate) fn random_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

/// The endpoint's receive loop: ends when the endpoint is dropped.
async fn receive(
    inner: std::sync::Weak<EndpointInner>,
    socket: Arc<UdpSocket>,
    fallback: mpsc::Sender<Datagram>,
    mut closed: tokio::sync::watch::Receiver<()>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buf) => received,
            // The endpoint and every stream on it are gone: close the socket.
            _ = closed.changed() => return,
        };
        let (len, from) = match received {
            Ok(got) => got,
            Err(e) => {
                // ICMP errors surface here on some systems: not fatal to the socket.
                debug!(error = %e, "udx endpoint: receive error");
                if inner.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let datagram = &buf[..len];
        let decoded = packet::decode(datagram);
        let Some((p, shared)) = decoded
            .ok()
            .flatten()
            .and_then(|p| Some((p.clone(), lock(&inner.streams).get(&p.header.id).cloned()?)))
        else {
            // Not UDX, or not for us: the socket's other users (a full queue drops it,
            // as a full socket buffer would).
            let _ = fallback.try_send((datagram.to_vec(), from));
            continue;
        };
        let mut state = lock(&shared.state);
        match state.remote {
            Some(remote) if remote != from => continue,
            Some(_) => {}
            None => {
                if let Some((remote_id, hook)) = state.first_packet.take() {
                    if !hook(from) {
                        state.first_packet = Some((remote_id, hook));
                        continue;
                    }
                    state.stream.connect(remote_id);
                }
                state.remote = Some(from);
            }
        }
        state.stream.on_packet(Instant::now(), &p);
        state.wake();
        drop(state);
        shared.notify.notify_one();
    }
}

/// A stream's task: timers and sending.
async fn drive(endpoint: Arc<EndpointInner>, id: u32, shared: Arc<Shared>) {
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut closed_at: Option<Instant> = None;
    let mut dropped_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let (remote, deadline, done) = {
            let mut state = lock(&shared.state);
            if state.stream.poll_timeout().is_some_and(|t| t <= now) {
                state.stream.on_timeout(now);
                state.wake();
            }
            while state.stream.poll_transmit(now, &mut out) {
                batch.push(out.clone());
            }
            let closed = state.stream.is_closed();
            if closed && closed_at.is_none() {
                closed_at = Some(now);
                state.wake();
            }
            if state.dropped && dropped_at.is_none() {
                dropped_at = Some(now);
            }
            // Dropped and never connected (nothing can go out), or dropped long ago
            // with a peer that never ended its side: gone, silently.
            let abandoned = dropped_at.is_some_and(|t| {
                let waited = now.duration_since(t);
                (state.stream.remote_id().is_none() && waited >= LINGER) || waited >= ABANDON
            });
            let lingered = closed_at.is_some_and(|t| now.duration_since(t) >= LINGER);
            let failed = state.stream.error().is_some();
            (
                state.remote,
                state.stream.poll_timeout(),
                failed || (closed && lingered) || abandoned,
            )
        };
        if let Some(remote) = remote {
            for datagram in batch.drain(..) {
                if let Err(e) = endpoint.socket.send_to(&datagram, remote).await {
                    debug!(id, error = %e, "udx stream: send failed");
                }
            }
        }
        batch.clear();
        if done {
            lock(&endpoint.streams).remove(&id);
            drop(lock(&shared.kept).take());
            return;
        }
        let lingering = [
            closed_at.map(|t| t + LINGER),
            dropped_at.map(|t| t + LINGER),
            dropped_at.map(|t| t + ABANDON),
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t > now);
        let deadline = deadline.into_iter().chain(lingering).min();
        match deadline {
            Some(at) => {
                let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(at));
                tokio::select! {
                    () = shared.notify.notified() => {}
                    () = sleep => {}
                }
            }
            None => shared.notify.notified().await,
        }
    }
}

/// One UDX stream on an [`Endpoint`]: bytes in order, both ways.
#[derive(Debug)]
pub struct UdxStream {
    id: u32,
    shared: Arc<Shared>,
    endpoint: Arc<EndpointInner>,
}

impl UdxStream {
    /// This stream's id (the peer's `remote_id`).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends to the peer's stream `remote_id` at `addr`.
    pub fn connect(&self, remote_id: u32, addr: SocketAddr) {
        let mut state = lock(&self.shared.state);
        state.remote = Some(addr);
        state.stream.connect(remote_id);
        drop(state);
        self.shared.notify.notify_one();
    }

    /// The peer's stream id once known (set by [`connect`](Self::connect)) and the
    /// address its packets come from (learnt from the first one when not connected).
    pub fn remote(&self) -> (Option<u32>, Option<SocketAddr>) {
        let state = lock(&self.shared.state);
        (state.stream.remote_id(), state.remote)
    }

    /// Aborts: the peer gets a DESTROY.
    pub fn destroy(&self) {
        lock(&self.shared.state).stream.destroy();
        self.shared.notify.notify_one();
    }

    /// Keeps `thing` alive as long as this stream's task runs (past the handle's
    /// drop: the END and the answers of the linger still go out), then drops it.
    pub fn keep_while_open(&self, thing: impl Send + 'static) {
        *lock(&self.shared.kept) = Some(Box::new(thing));
    }

    /// The smoothed round-trip time, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        lock(&self.shared.state).stream.srtt()
    }
}

fn stream_error(e: StreamError) -> io::Error {
    let kind = match e {
        StreamError::TimedOut => io::ErrorKind::TimedOut,
        StreamError::Reset => io::ErrorKind::ConnectionReset,
        StreamError::Destroyed => io::ErrorKind::ConnectionAborted,
    };
    io::Error::new(kind, e)
}

impl AsyncRead for UdxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = lock(&self.shared.state);
        let mut read_any = false;
        while buf.remaining() > 0 {
            let (chunk, offset) = match state.partial.take() {
                Some(partial) => partial,
                None => match state.stream.read() {
                    Some(chunk) => (chunk, 0),
                    None => break,
                },
            };
            let n = (chunk.len() - offset).min(buf.remaining());
            buf.put_slice(&chunk[offset..offset + n]);
            read_any = true;
            if offset + n < chunk.len() {
                state.partial = Some((chunk, offset + n));
            }
        }
        if read_any {
            drop(state);
            // Reading may have reopened our window: the task sends the update.
            self.shared.notify.notify_one();
            return Poll::Ready(Ok(()));
        }
        if state.stream.eof() {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = state.stream.error() {
            return Poll::Ready(Err(stream_error(e)));
        }
        state.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for UdxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = lock(&self.shared.state);
        if let Some(e) = state.stream.error() {
            return Poll::Ready(Err(stream_error(e)));
        }
        match state.stream.write(data) {
            Err(e) => Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, e))),
            Ok(0) if !data.is_empty() => {
                state.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Ok(n) => {
                drop(state);
                self.shared.notify.notify_one();
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are the task's to send; nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.shared.state).stream.end();
        self.shared.notify.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for UdxStream {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.dropped = true;
        state.stream.end();
        // Send what is due now (the END, when everything written is out) from here:
        // the handle is often dropped as the process or its runtime stops, and the
        // stream's task may never run again. Without the END the peer learns of the
        // end only by timing out (~18 s for a JS peer), and reconnects that late.
        if let Some(remote) = state.remote {
            let mut out = Vec::new();
            let now = Instant::now();
            while state.stream.poll_transmit(now, &mut out) {
                let _ = self.endpoint.socket.try_send_to(&out, remote);
            }
        }
        drop(state);
        self.shared.notify.notify_one();
    }
}
