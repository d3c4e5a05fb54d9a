//! A holepuncher, as JS hyperdht's `lib/holepuncher.js`: UDP sockets of ours whose NAT
//! mappings we sample (`nat.rs`) and from which we send one-byte probes toward the
//! other peer until one of its probes reaches us (the initiator) or its UDX stream
//! arrives (the server).
//!
//! Strategies (JS `_punch`, chosen from both sides' NAT types, open counted as
//! consistent):
//! - both consistent: probe every address the other side offered, once a second for
//!   10 s (unverified ones every fourth round);
//! - we consistent, they random: probe random ports of their verified host, one every
//!   20 ms for 35 s, from our one socket;
//! - we random, they consistent: open up to [`BIRTHDAY_SOCKETS`] sockets, each sending
//!   a probe to their verified address (the birthday paradox finds a pair), then keep
//!   them alive for 35 s;
//! - both random: nothing (a blind relay is needed).
//!
//! Unlike peeroxide-dht's puncher, the socket that heard the other side is known
//! ([`Puncher::connected`] says which), so the stream is made on that socket. The
//! sockets are ours ([`Endpoint`]s): a holepunched connection runs on our own UDX
//! stream; what is not for one of its streams (probes, DHT replies) comes here.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::udx::socket::Endpoint;
use peeroxide_dht::hyperdht_messages::{FIREWALL_CONSISTENT, FIREWALL_OPEN, FIREWALL_RANDOM};
use peeroxide_dht::messages::{
    Command, Ipv4Peer, Message, Request, Response, decode_message, encode_request_to_bytes,
    encode_response_to_bytes,
};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tracing::debug;

use super::nat::{MIN_SAMPLES, Samples};

/// Most sockets a random-NAT side opens (JS `BIRTHDAY_SOCKETS`).
pub(crate) const BIRTHDAY_SOCKETS: usize = 256;

/// TTL of a probe meant to open our own NAT's mapping without reaching theirs.
const LOW_TTL: u32 = 5;
const DEFAULT_TTL: u32 = 64;

/// Pings a server's puncher answers per second (see `Inner::may_pong`).
const PONGS_PER_SECOND: u32 = 16;

/// Bound on one ping to a DHT node (JS: no retry, about 2 s).
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Least time between two random-NAT punches of one swarm, client or server side
/// (JS hyperdht's `randomPunchInterval`): a birthday search opens up to 256 sockets.
pub(crate) const RANDOM_PUNCH_INTERVAL: Duration = Duration::from_secs(20);

/// When this swarm last started a random-NAT punch (shared by its server and client).
#[derive(Clone, Default)]
pub(crate) struct RandomPunches(Arc<Mutex<Option<std::time::Instant>>>);

impl RandomPunches {
    /// Starts one if the last started [`RANDOM_PUNCH_INTERVAL`] ago or more.
    pub(crate) fn try_start(&self) -> bool {
        let mut last = lock(&self.0);
        if last.is_some_and(|t| t.elapsed() < RANDOM_PUNCH_INTERVAL) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }
}

/// What the other peer told us about itself.
#[derive(Debug, Default, Clone)]
struct Remote {
    firewall: u64,
    addresses: Vec<(Ipv4Peer, bool)>,
    punching: bool,
}

struct Inner {
    initiator: bool,
    host: IpAddr,
    sockets: Mutex<Vec<Endpoint>>,
    nat: Mutex<Samples>,
    pings: Mutex<HashMap<u16, oneshot::Sender<Response>>>,
    next_tid: AtomicU16,
    punching: AtomicBool,
    remote: Mutex<Remote>,
    /// The first of the other side's probes to reach an initiator: which of our
    /// sockets, and from where.
    connected: watch::Sender<Option<(usize, SocketAddr)>>,
    /// Told of every socket we open (a server puts a stream on each).
    on_socket: Mutex<Option<SocketHook>>,
    /// Pings answered in the current second (at most [`PONGS_PER_SECOND`]).
    pongs: Mutex<(std::time::Instant, u32)>,
    tasks: Mutex<JoinSet<()>>,
}

/// Called with each socket's index and the socket.
type SocketHook = Box<dyn Fn(usize, &Endpoint) + Send + Sync>;

/// A holepuncher; dropping it stops every probe and closes the sockets no stream
/// holds.
pub(crate) struct Puncher {
    inner: Arc<Inner>,
}

impl Drop for Puncher {
    fn drop(&mut self) {
        self.inner.punching.store(false, Ordering::SeqCst);
        lock(&self.inner.tasks).abort_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn socket_addr(peer: &Ipv4Peer) -> Option<SocketAddr> {
    Some(SocketAddr::new(peer.host.parse().ok()?, peer.port))
}

impl Puncher {
    /// A puncher with one socket bound to `host` (port chosen by the system).
    pub(crate) async fn open(initiator: bool, host: IpAddr) -> std::io::Result<Puncher> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos());
        let inner = Arc::new(Inner {
            initiator,
            host,
            sockets: Mutex::new(Vec::new()),
            nat: Mutex::new(Samples::default()),
            pings: Mutex::new(HashMap::new()),
            next_tid: AtomicU16::new(seed as u16),
            punching: AtomicBool::new(false),
            remote: Mutex::new(Remote::default()),
            connected: watch::channel(None).0,
            on_socket: Mutex::new(None),
            pongs: Mutex::new((std::time::Instant::now(), 0)),
            tasks: Mutex::new(JoinSet::new()),
        });
        let puncher = Puncher { inner };
        puncher.add_socket().await?;
        Ok(puncher)
    }

    /// Opens one more socket and listens on it; its index.
    async fn add_socket(&self) -> std::io::Result<usize> {
        Inner::add_socket(&self.inner).await
    }

    /// Calls `hook` for each of our sockets, those open now and those we open later
    /// (birthday sockets).
    pub(crate) fn on_socket(&self, hook: impl Fn(usize, &Endpoint) + Send + Sync + 'static) {
        let sockets = lock(&self.inner.sockets).clone();
        for (i, socket) in sockets.iter().enumerate() {
            hook(i, socket);
        }
        *lock(&self.inner.on_socket) = Some(Box::new(hook));
    }

    /// Our socket number `i` (0: the first).
    pub(crate) fn socket(&self, i: usize) -> Option<Endpoint> {
        lock(&self.inner.sockets).get(i).cloned()
    }

    /// Asks up to [`MIN_SAMPLES`] of `nodes` (DHT nodes) where they see our first
    /// socket, once more with the others if too few answered (JS `autoSample`).
    pub(crate) async fn sample(&self, nodes: &[Ipv4Peer]) {
        let mut next = 0;
        for _round in 0..2 {
            let want = MIN_SAMPLES.saturating_sub(lock(&self.inner.nat).sampled()) as usize;
            let batch: Vec<Ipv4Peer> = nodes.iter().skip(next).take(want).cloned().collect();
            next += batch.len();
            if batch.is_empty() {
                return;
            }
            let mut pings = JoinSet::new();
            for node in batch {
                let inner = self.inner.clone();
                pings.spawn(async move {
                    let reply = Inner::ping_node(&inner, &node).await;
                    (node, reply)
                });
            }
            while let Some(done) = pings.join_next().await {
                if let Ok((node, Some(reply))) = done {
                    lock(&self.inner.nat).add(&reply.to, &node);
                }
                if lock(&self.inner.nat).settled() {
                    return;
                }
            }
        }
    }

    /// A DHT request (a user command such as `PEER_HOLEPUNCH`) to `node`, sent from our
    /// first socket so that the node sees that socket's mapping (JS sends its holepunch
    /// rounds from the puncher's socket: the server then knows where to answer a probe
    /// at once). Tried `tries` times, `timeout` each. The reply's `to` is also a sample
    /// of our NAT.
    pub(crate) async fn request(
        &self,
        node: &Ipv4Peer,
        command: u64,
        target: [u8; 32],
        value: Vec<u8>,
        timeout: Duration,
        tries: u32,
    ) -> Option<Response> {
        for _ in 0..tries {
            let request = Request {
                tid: 0,
                to: node.clone(),
                id: None,
                token: None,
                internal: false,
                command,
                target: Some(target),
                value: Some(value.clone()),
            };
            if let Some(reply) = Inner::send_request(&self.inner, request, timeout).await {
                lock(&self.inner.nat).add(&reply.to, node);
                return Some(reply);
            }
        }
        None
    }

    /// Our NAT type as sampled (`FIREWALL_UNKNOWN` until three nodes answered).
    pub(crate) fn firewall(&self) -> u64 {
        lock(&self.inner.nat).firewall()
    }

    /// Where the other side can reach our first socket.
    pub(crate) fn addresses(&self) -> Option<Vec<Ipv4Peer>> {
        lock(&self.inner.nat).addresses()
    }

    /// Keeps what we said our NAT is (JS `nat.freeze()`).
    pub(crate) fn freeze(&self) {
        lock(&self.inner.nat).freeze();
    }

    /// What the other side said (JS `updateRemote`); `verified`: a host we know is
    /// theirs (it echoed our token, or the relay saw them there).
    pub(crate) fn update_remote(
        &self,
        punching: bool,
        firewall: u64,
        addresses: &[Ipv4Peer],
        verified: Option<&str>,
    ) {
        let mut remote = lock(&self.inner.remote);
        let was: Vec<String> = remote
            .addresses
            .iter()
            .filter(|(_, v)| *v)
            .map(|(a, _)| a.host.clone())
            .collect();
        remote.addresses = addresses
            .iter()
            .map(|a| {
                let v = verified == Some(a.host.as_str()) || was.contains(&a.host);
                (a.clone(), v)
            })
            .collect();
        remote.firewall = firewall;
        remote.punching = punching;
    }

    /// Whether the other side said it punches.
    pub(crate) fn remote_punching(&self) -> bool {
        lock(&self.inner.remote).punching
    }

    /// A probe from our first socket that opens our mapping toward `addr` without
    /// reaching it (JS `openSession`).
    pub(crate) fn open_session(&self, addr: &Ipv4Peer) {
        if let (Some(socket), Some(addr)) = (self.socket(0), socket_addr(addr)) {
            probe(&socket, addr, true);
        }
    }

    /// Which socket heard the other side first, and from where (initiator only).
    pub(crate) fn connected(&self) -> watch::Receiver<Option<(usize, SocketAddr)>> {
        self.inner.connected.subscribe()
    }

    /// Whether punching now would be a random-NAT strategy (either side random).
    pub(crate) fn random(&self) -> bool {
        self.firewall() == FIREWALL_RANDOM || lock(&self.inner.remote).firewall == FIREWALL_RANDOM
    }

    /// Starts punching (JS `punch()`): `false` when no strategy fits.
    pub(crate) fn punch(&self) -> bool {
        let local = coerce(self.firewall());
        let remote = lock(&self.inner.remote).clone();
        let theirs = coerce(remote.firewall);
        if remote.addresses.is_empty() {
            return false;
        }
        let verified = remote
            .addresses
            .iter()
            .find(|(_, v)| *v)
            .and_then(|(a, _)| a.host.parse::<IpAddr>().ok().map(|ip| (ip, a.port)));
        let inner = self.inner.clone();
        inner.punching.store(true, Ordering::SeqCst);
        let mut tasks = lock(&self.inner.tasks);
        match (local, theirs, verified) {
            (FIREWALL_CONSISTENT, FIREWALL_CONSISTENT, _) => {
                let targets: Vec<(SocketAddr, bool)> = remote
                    .addresses
                    .iter()
                    .filter_map(|(a, v)| socket_addr(a).map(|s| (s, *v)))
                    .collect();
                tasks.spawn(async move { inner.consistent_probe(targets).await });
                true
            }
            (FIREWALL_CONSISTENT, FIREWALL_RANDOM, Some((host, _))) => {
                tasks.spawn(async move { inner.random_probes(host).await });
                true
            }
            (FIREWALL_RANDOM, FIREWALL_CONSISTENT, Some((host, port))) => {
                let target = SocketAddr::new(host, port);
                tasks.spawn(async move { inner.birthday(target).await });
                true
            }
            _ => {
                inner.punching.store(false, Ordering::SeqCst);
                false
            }
        }
    }
}

impl Inner {
    async fn add_socket(inner: &Arc<Inner>) -> std::io::Result<usize> {
        let (socket, mut datagrams) = Endpoint::bind(SocketAddr::new(inner.host, 0)).await?;
        let index = {
            let mut sockets = lock(&inner.sockets);
            sockets.push(socket.clone());
            sockets.len() - 1
        };
        if let Some(hook) = lock(&inner.on_socket).as_ref() {
            hook(index, &socket);
        }
        let me = Arc::downgrade(inner);
        lock(&inner.tasks).spawn(async move {
            while let Some((data, from)) = datagrams.recv().await {
                let Some(inner) = me.upgrade() else { return };
                inner.on_datagram(index, &socket, &data, from);
            }
        });
        Ok(index)
    }

    /// A datagram that is not a UDX packet: a probe (one byte) or a DHT reply.
    fn on_datagram(&self, index: usize, socket: &Endpoint, data: &[u8], from: SocketAddr) {
        if data.len() <= 1 {
            if !self.initiator {
                // JS: the server answers each probe, so the client learns which of
                // our mappings reached it.
                probe(socket, from, false);
                return;
            }
            self.connected.send_if_modified(|c| {
                if c.is_none() {
                    debug!(index, %from, "holepunch: the other side's probe reached us");
                    *c = Some((index, from));
                    true
                } else {
                    false
                }
            });
            self.punching.store(false, Ordering::SeqCst);
            return;
        }
        match decode_message(data) {
            Ok(Message::Response(response)) => {
                if let Some(waiting) = lock(&self.pings).remove(&response.tid) {
                    let _ = waiting.send(response);
                }
            }
            Ok(Message::Request(request)) if !self.initiator => {
                if let Some(reply) = pong(&request, from)
                    && self.may_pong()
                {
                    send(socket, reply, from, None);
                }
            }
            _ => {}
        }
    }

    /// Whether one more ping may be answered this second: a client pings once or twice
    /// before it connects, and a flood must not hold up the probes, which take turns
    /// with replies to send (see [`send`]).
    fn may_pong(&self) -> bool {
        let mut pongs = lock(&self.pongs);
        let now = std::time::Instant::now();
        if now.duration_since(pongs.0) >= Duration::from_secs(1) {
            *pongs = (now, 0);
        }
        pongs.1 += 1;
        pongs.1 <= PONGS_PER_SECOND
    }

    /// A DHT `PING` to `node` from our first socket; its reply (`to`: where it saw us).
    async fn ping_node(inner: &Arc<Inner>, node: &Ipv4Peer) -> Option<Response> {
        let request = Request {
            tid: 0,
            to: node.clone(),
            id: None,
            token: None,
            internal: true,
            command: Command::Ping as u64,
            target: None,
            value: None,
        };
        Inner::send_request(inner, request, PING_TIMEOUT).await
    }

    /// Sends `request` (its tid set here) from our first socket and waits `timeout` for
    /// the reply with that tid.
    async fn send_request(
        inner: &Arc<Inner>,
        mut request: Request,
        timeout: Duration,
    ) -> Option<Response> {
        let socket = lock(&inner.sockets).first().cloned()?;
        let to = socket_addr(&request.to)?;
        let tid = inner.next_tid.fetch_add(1, Ordering::Relaxed);
        request.tid = tid;
        let bytes = encode_request_to_bytes(&request).ok()?;
        let (tx, rx) = oneshot::channel();
        lock(&inner.pings).insert(tid, tx);
        send(&socket, bytes, to, None);
        let reply = tokio::time::timeout(timeout, rx).await;
        lock(&inner.pings).remove(&tid);
        reply.ok()?.ok()
    }

    fn punching(&self) -> bool {
        self.punching.load(Ordering::SeqCst)
    }

    /// JS `_consistentProbe`.
    async fn consistent_probe(self: Arc<Self>, targets: Vec<(SocketAddr, bool)>) {
        if !self.initiator {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        for tries in 1..=10u32 {
            if !self.punching() {
                return;
            }
            let socket = lock(&self.sockets).first().cloned();
            if let Some(socket) = socket {
                for (addr, verified) in &targets {
                    if *verified || tries & 3 == 0 {
                        probe(&socket, *addr, false);
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// JS `_randomProbes`: random ports of their host, from our one socket.
    async fn random_probes(self: Arc<Self>, host: IpAddr) {
        let mut rng = Rng::seeded();
        for _ in 0..1750 {
            if !self.punching() {
                return;
            }
            let port = 1000 + (rng.next() % 64536) as u16;
            let socket = lock(&self.sockets).first().cloned();
            if let Some(socket) = socket {
                probe(&socket, SocketAddr::new(host, port), false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// JS `_openBirthdaySockets` then `_keepAliveRandomNat`.
    async fn birthday(self: Arc<Self>, target: SocketAddr) {
        while self.punching() && lock(&self.sockets).len() < BIRTHDAY_SOCKETS {
            match Inner::add_socket(&self).await {
                Ok(i) => {
                    if let Some(socket) = lock(&self.sockets).get(i).cloned() {
                        probe(&socket, target, true);
                    }
                }
                Err(e) => {
                    debug!(error = %e, "holepunch: no more birthday sockets");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut i = 0;
        for _ in 0..1750 {
            if !self.punching() {
                return;
            }
            let socket = {
                let sockets = lock(&self.sockets);
                if sockets.is_empty() {
                    return;
                }
                i %= sockets.len();
                sockets[i].clone()
            };
            probe(&socket, target, false);
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The reply to a DHT ping (no id, token, value or closer nodes; `to` = where the
/// request came from), or `None` for any other request. A server's puncher socket is
/// what it offers a client on its host or LAN (`addresses4`); such a client pings it
/// before it connects there (JS `connect.js`, the LAN rule: a `PING`; peeroxide-dht's
/// `ping`, which our client uses: a `FIND_NODE`). Both match the reply by its tid
/// alone; without an id in it, nobody takes the socket for a DHT node.
fn pong(request: &Request, from: SocketAddr) -> Option<Vec<u8>> {
    let SocketAddr::V4(from) = from else {
        return None;
    };
    let ping =
        request.command == Command::Ping as u64 || request.command == Command::FindNode as u64;
    if !request.internal || !ping {
        return None;
    }
    let response = Response {
        tid: request.tid,
        to: Ipv4Peer {
            host: from.ip().to_string(),
            port: from.port(),
        },
        id: None,
        token: None,
        closer_nodes: Vec::new(),
        error: 0,
        value: None,
    };
    encode_response_to_bytes(&response).ok()
}

/// Sends one probe (`[0]`, JS's `HOLEPUNCH`); `low_ttl`: only far enough to open our
/// own NAT's mapping.
fn probe(socket: &Endpoint, to: SocketAddr, low_ttl: bool) {
    send(socket, vec![0], to, low_ttl.then_some(LOW_TTL));
}

/// Sends `bytes` from `socket` to `to` from a task (a fresh socket may not be known
/// writable yet, so a `try_send` could fail), with `ttl` for this datagram if given.
/// The TTL is the socket's, so the puncher's sends go one at a time (a DHT ping sent
/// while a low-TTL probe waits would die on the way): they are few and small. A UDX
/// stream already running on the socket does not take turns: a datagram of it sent
/// during a low-TTL probe also goes out with that TTL (5 hops, enough on a LAN; further
/// away it is lost and resent like any loss).
fn send(socket: &Endpoint, bytes: Vec<u8>, to: SocketAddr, ttl: Option<u32>) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let socket = socket.socket().clone();
    tokio::spawn(async move {
        let _turn = ONE_AT_A_TIME.lock().await;
        if let Some(ttl) = ttl {
            let _ = socket.set_ttl(ttl);
        }
        let _ = socket.send_to(&bytes, to).await;
        if ttl.is_some() {
            let _ = socket.set_ttl(DEFAULT_TTL);
        }
    });
}

/// JS `coerceFirewall`: an open NAT punches like a consistent one.
fn coerce(firewall: u64) -> u64 {
    if firewall == FIREWALL_OPEN {
        FIREWALL_CONSISTENT
    } else {
        firewall
    }
}

/// xorshift32 for probe ports (their spread matters, not their secrecy).
struct Rng(u32);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.subsec_nanos());
        Rng(nanos | 1)
    }

    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_random_punch_per_interval() {
        let random = RandomPunches::default();
        assert!(random.try_start());
        assert!(!random.try_start(), "a second birthday search at once");
        // The interval runs from the start of the last one.
        *lock(&random.0) = Some(std::time::Instant::now() - RANDOM_PUNCH_INTERVAL);
        assert!(random.try_start());
    }

    #[test]
    fn random_ports_are_spread_over_the_range() {
        let mut rng = Rng::seeded();
        let ports: Vec<u16> = (0..1000)
            .map(|_| 1000 + (rng.next() % 64536) as u16)
            .collect();
        assert!(ports.iter().all(|p| *p >= 1000));
        assert!(ports.iter().any(|p| *p < 20_000) && ports.iter().any(|p| *p > 50_000));
    }

    #[tokio::test]
    async fn an_initiator_learns_which_socket_the_other_side_reached() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let ours = Puncher::open(true, lo).await.unwrap();
        let theirs = Puncher::open(false, lo).await.unwrap();
        let their_addr = theirs.socket(0).unwrap().local_addr().unwrap();
        let mut connected = ours.connected();
        // Our probe reaches the server side, which answers it: we learn its address.
        probe(&ours.socket(0).unwrap(), their_addr, false);
        let got = tokio::time::timeout(Duration::from_secs(5), connected.wait_for(Option::is_some))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, (0, their_addr));
    }
}
