//! The manager's discovery: a Hyperswarm DHT swarm whose topics are the discovery keys
//! of the enabled logs (spec: `enableReplication` → `Hyperswarm.join(discoveryKey)` →
//! on connection → replicate).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_hypercore_replication::swarm::{Carrier, DialFailure, Swarm, SwarmOptions, SwarmPeer};
use nova_hypercore_serialization::HypercoreError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::backoff::Backoff;
use crate::manager::{HypercoreManager, Listener, Result};

/// A set of peers (their swarm public keys).
type PeerSet = Arc<Mutex<HashSet<[u8; 32]>>>;

/// Peers with swarm (UDX) connections up, and how many each (two peers that dial each
/// other at once may both keep a connection: both replicate, nothing is lost, whereas
/// each side dropping "the duplicate" could drop both).
type LivePeers = Arc<Mutex<std::collections::HashMap<[u8; 32], usize>>>;

fn lock_live(
    live: &LivePeers,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], usize>> {
    live.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock(peers: &PeerSet) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
    peers.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counters of a running swarm ([`HypercoreManager::watch_swarm_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwarmStats {
    /// Connections the swarm handed over (one per peer it connected to or that
    /// connected to it), including ones then replaced by direct TCP.
    pub connections: u64,
    /// Direct TCP connections dialled to peers the DHT introduced (redials included).
    pub direct_connections: u64,
    /// Of those, redials after a direct connection dropped.
    pub redials: u64,
    /// Swarm connections we made ourselves after one we dialled was lost.
    pub reconnects: u64,
    /// Swarm connections (admitted ones, reconnects included) carried by libudx's UDX
    /// stream rather than our own ([`Carrier`]): peeroxide-dht's own connect, used only
    /// for a server that asks for a blind relay.
    pub libudx_connections: u64,
    /// Swarm connections on our own stream on one of the DHT's sockets, through the tap
    /// ([`Carrier::OurUdxTapped`]): a handshake that reached a server directly, a
    /// server that is not firewalled, an open client.
    pub tapped_connections: u64,
}

/// What the tasks of one running swarm share (connections, direct peers, stats).
#[derive(Clone)]
struct SwarmCtx {
    swarm: Arc<Swarm>,
    /// Peers we replicate with (or redial) over TCP.
    peers: PeerSet,
    /// Peers we replicate with over a swarm (UDX) connection.
    live: LivePeers,
    /// Advertised direct endpoints that failed (no TCP, or no handshake): not tried
    /// again on a swarm connection (bounded: cleared past [`MAX_FAILED_ENDPOINTS`]).
    failed_endpoints: Arc<Mutex<HashSet<SocketAddr>>>,
    /// Whether every bootstrap node is loopback or private: only then are direct
    /// endpoints at such addresses dialled before a swarm connection vouches for them.
    local_discovery: bool,
    /// Whether this swarm looks topics up (and so reconnects lost peers).
    client: bool,
    /// `SwarmOptions::max_peers`: live swarm plus direct connections.
    max_peers: usize,
    /// Connections [`HypercoreManager::rediscover`] made (already admitted), for the
    /// accept loop.
    reconnected: mpsc::UnboundedSender<SwarmPeer>,
    /// Becomes `true` when the swarm stops: no more dialling.
    stopped: watch::Receiver<bool>,
    stats: Arc<watch::Sender<SwarmStats>>,
}

impl SwarmCtx {
    /// Takes a swarm connection to `pk` unless we replicate with it over direct TCP or
    /// `max_peers` other peers are connected.
    fn admit(&self, pk: [u8; 32]) -> bool {
        let direct = lock(&self.peers);
        let mut live = lock_live(&self.live);
        if direct.contains(&pk) {
            debug!("already replicating with this peer over TCP: swarm connection dropped");
            return false;
        }
        if !live.contains_key(&pk) && direct.len() + live.len() >= self.max_peers {
            debug!(
                max_peers = self.max_peers,
                "at max peers: swarm connection dropped"
            );
            return false;
        }
        *live.entry(pk).or_default() += 1;
        true
    }

    /// Whether `max_peers` peers are connected (swarm and direct).
    fn at_max_peers(&self) -> bool {
        let direct = lock(&self.peers);
        let live = lock_live(&self.live);
        direct.len() + live.len() >= self.max_peers
    }

    /// Records that `addr` did not give a direct connection.
    fn endpoint_failed(&self, addr: SocketAddr) {
        let mut failed = self
            .failed_endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if failed.len() >= MAX_FAILED_ENDPOINTS {
            failed.clear();
        }
        failed.insert(addr);
    }

    /// [`dial_direct`], remembering an endpoint that failed.
    async fn open_direct(&self, addr: SocketAddr, redial: bool) -> Option<Direct> {
        let opened = dial_direct(addr, redial).await;
        if opened.is_none() {
            self.endpoint_failed(addr);
        } else {
            self.failed_endpoints
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&addr);
        }
        opened
    }

    fn endpoint_has_failed(&self, addr: &SocketAddr) -> bool {
        self.failed_endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(addr)
    }

    /// Makes `pk` a direct peer, unless a swarm connection to it is up or it is one
    /// already.
    fn take_direct(&self, pk: [u8; 32]) -> bool {
        let mut direct = lock(&self.peers);
        let live = lock_live(&self.live);
        !live.contains_key(&pk) && direct.len() + live.len() < self.max_peers && direct.insert(pk)
    }

    /// A swarm connection to `pk` is gone (ended, or replaced by direct TCP).
    fn release(&self, pk: [u8; 32]) {
        let mut live = lock_live(&self.live);
        if let Some(n) = live.get_mut(&pk) {
            *n -= 1;
            if *n == 0 {
                live.remove(&pk);
            }
        }
    }

    /// Whether any connection (swarm or direct TCP) to `pk` is up.
    fn connected(&self, pk: &[u8; 32]) -> bool {
        lock_live(&self.live).contains_key(pk) || lock(&self.peers).contains(pk)
    }

    fn count(&self, update: impl FnOnce(&mut SwarmStats)) {
        self.stats.send_modify(update);
    }

    fn stopped(&self) -> bool {
        *self.stopped.borrow()
    }

    /// Sleeps for `delay`; `false` if the swarm stopped meanwhile.
    async fn pause(&self, delay: Duration) -> bool {
        let mut stopped = self.stopped.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => !self.stopped(),
            _ = stopped.wait_for(|s| *s) => false,
        }
    }
}

/// A running swarm and the task that hands its connections to replication.
pub(crate) struct Running {
    swarm: Arc<Swarm>,
    accept: JoinHandle<()>,
    direct: SwarmCtx,
    stop: watch::Sender<bool>,
    prefer_direct: bool,
    client: bool,
    listener: Option<Listener>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("swarm", &self.swarm)
            .finish_non_exhaustive()
    }
}

/// Slot for the manager's swarm (none until [`HypercoreManager::start_swarm`]).
pub(crate) type SwarmSlot = Arc<tokio::sync::Mutex<Option<Running>>>;

impl HypercoreManager {
    /// Starts discovery on the Hyperswarm DHT reached through `options.bootstrap` and
    /// joins the discovery key of every enabled log; from now on
    /// [`enable_replication`](Self::enable_replication) joins and
    /// [`disable_replication`](Self::disable_replication) leaves. Every connection the
    /// swarm makes (one per peer) replicates all enabled logs.
    ///
    /// An empty bootstrap list means "no DHT": nothing starts and `Ok(None)` is
    /// returned (direct mode with [`listen`](Self::listen) / [`connect`](Self::connect)
    /// still works). Public bootstrap nodes are only used when listed explicitly.
    /// Returns the swarm's public key (the id peers see). Starting twice replaces the
    /// first swarm.
    pub async fn start_swarm(&self, options: SwarmOptions) -> Result<Option<[u8; 32]>> {
        self.ensure_ready().await?;
        if options.bootstrap.is_empty() {
            info!("no DHT bootstrap nodes configured: discovery stays off");
            return Ok(None);
        }
        self.stop_swarm().await;
        let (prefer_direct, client, direct_addr, advertise, max_peers) = (
            options.prefer_direct,
            options.client,
            options.direct,
            options.advertise,
            options.max_peers,
        );
        // A DHT of our own network (loopback or private bootstrap nodes: tests, the
        // demo, a LAN) may introduce peers at such addresses; a public one may not.
        let local_discovery = options
            .bootstrap
            .iter()
            .all(|node| node.ip().is_loopback() || private(node.ip()));
        let (swarm, mut peers) = Swarm::start(options).await.inspect_err(|e| {
            self.shared().report_error("swarm", e);
        })?;
        let swarm = Arc::new(swarm);
        let key = swarm.public_key();
        let listener = match direct_addr {
            Some(addr) => {
                let listener = self.listen(addr).await?;
                let endpoint = advertise.unwrap_or(listener.local_addr());
                if let Err(e) = swarm.advertise_direct(endpoint).await {
                    self.shared().report_error("swarm", &e);
                }
                Some(listener)
            }
            None => None,
        };
        let (stop, stopped) = watch::channel(false);
        let (reconnected, mut again) = mpsc::unbounded_channel();
        let direct = SwarmCtx {
            swarm: swarm.clone(),
            peers: Arc::default(),
            live: Arc::default(),
            failed_endpoints: Arc::default(),
            local_discovery,
            client,
            max_peers,
            reconnected,
            stopped,
            stats: Arc::new(watch::channel(SwarmStats::default()).0),
        };
        let (manager, ctx) = (self.clone(), direct.clone());
        let accept = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    peer = peers.recv() => {
                        let Some(peer) = peer else { break };
                        ctx.count(|s| s.connections += 1);
                        if !ctx.admit(peer.remote_public_key) {
                            continue;
                        }
                        let (m, ctx) = (manager.clone(), ctx.clone());
                        sessions.spawn(async move {
                            m.on_swarm_peer(peer, ctx, prefer_direct).await;
                        });
                    }
                    Some(peer) = again.recv() => {
                        let (m, ctx) = (manager.clone(), ctx.clone());
                        sessions.spawn(async move {
                            m.on_swarm_peer(peer, ctx, prefer_direct).await;
                        });
                    }
                    Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                }
            }
        });
        let running = Running {
            swarm,
            accept,
            direct,
            stop,
            prefer_direct,
            client,
            listener,
        };
        for dk in self.hub().enabled_keys() {
            if let Err(e) = running.swarm.join(dk).await {
                self.shared().report_error("swarm", &e);
            }
            self.look_for_direct(&running, dk);
        }
        *self.swarm_slot().lock().await = Some(running);
        info!(public_key = %crate::replication::hex(&key), "swarm started");
        Ok(Some(key))
    }

    /// An admitted swarm connection: if we dialled it and the peer advertises a direct
    /// endpoint, move to TCP (the UDX stream is slow from Rust, see docs/discovery.md);
    /// else replicate over it, and when a connection we dialled ends while the swarm
    /// runs, reconnect ([`Self::rediscover`]).
    async fn on_swarm_peer(&self, peer: SwarmPeer, direct: SwarmCtx, prefer_direct: bool) {
        let pk = peer.remote_public_key;
        match peer.carrier {
            Carrier::Libudx => direct.count(|s| s.libudx_connections += 1),
            Carrier::OurUdxTapped => direct.count(|s| s.tapped_connections += 1),
            Carrier::OurUdx => {}
        }
        if prefer_direct
            && peer.is_initiator
            && let Some(addr) = direct.swarm.direct_endpoint(&pk).await
        {
            if !worth_dialling(addr, peer.remote_addr) {
                debug!(%addr, reached = ?peer.remote_addr, "direct endpoint private to a network we reached through a NAT: staying on the swarm connection");
            } else if direct.endpoint_has_failed(&addr) {
                debug!(%addr, "direct endpoint failed before: staying on the swarm connection");
            } else if let Some(tcp) = direct.open_direct(addr, false).await
                && lock(&direct.peers).insert(pk)
            {
                direct.count(|s| s.direct_connections += 1);
                drop(peer);
                direct.release(pk);
                self.direct_session(tcp, pk, &direct).await;
                return;
            }
        }
        let initiator = peer.is_initiator;
        let _ = self.replicate_peer(peer).await;
        direct.release(pk);
        if initiator && direct.client && !direct.stopped() {
            let (m, direct) = (self.clone(), direct.clone());
            tokio::spawn(async move { m.rediscover(pk, direct).await });
        }
    }

    /// A swarm connection we dialled ended while the swarm runs. The swarm looks topics
    /// up only every 10 minutes; so, as JS hyperswarm retries: connect
    /// to the lost peer, and to whoever announces an enabled log now (a restarted peer
    /// may have a new identity), with backoff (1 s doubling to 10 s) until one
    /// connection is made, the swarm stops, or [`REDIAL_BOUND`] passes.
    async fn rediscover(&self, lost: [u8; 32], direct: SwarmCtx) {
        debug!(peer = %crate::replication::hex(&lost), "swarm connection lost: reconnecting");
        let deadline = tokio::time::Instant::now() + REDIAL_BOUND;
        let mut pace = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        while tokio::time::Instant::now() < deadline && direct.pause(pace.next_delay()).await {
            let mut candidates = vec![lost];
            for dk in self.hub().enabled_keys() {
                candidates.extend(direct.swarm.lookup(dk).await);
            }
            candidates.sort_unstable();
            candidates.dedup();
            for pk in candidates {
                if direct.connected(&pk) {
                    if pk == lost {
                        return; // back already (it connected to us, or a direct dial)
                    }
                    continue;
                }
                match direct.swarm.connect(pk).await {
                    Ok(peer) if direct.admit(pk) => {
                        direct.count(|s| s.reconnects += 1);
                        debug!(peer = %crate::replication::hex(&pk), "swarm peer reconnected");
                        // The accept loop runs it, as a connection the swarm made.
                        let _ = direct.reconnected.send(peer);
                        return;
                    }
                    Ok(_) => {} // someone else connected it meanwhile
                    Err(e) => {
                        debug!(peer = %crate::replication::hex(&pk), error = %e, "reconnect failed")
                    }
                }
            }
        }
        debug!(peer = %crate::replication::hex(&lost), "swarm peer not reconnected");
    }

    /// Replicates over a dialled direct connection until it ends, then redials the
    /// peer (its current record first: a restarted peer may listen elsewhere) while the
    /// swarm runs. Backoff (100 ms doubling to 5 s) carries over connections that end
    /// within [`STABLE`], so a peer that accepts and hangs up is not hammered; after
    /// [`REDIAL_BOUND`] without a stable connection the peer stops being a direct peer
    /// (a new swarm connection from it is then accepted again).
    async fn direct_session(&self, first: Direct, pk: [u8; 32], direct: &SwarmCtx) {
        let peer = crate::replication::hex(&pk);
        let mut backoff = Redial::new();
        let mut next = Some(first);
        while let Some((cipher, ended)) = next.take() {
            debug!(%peer, "replicating over direct TCP");
            let started = tokio::time::Instant::now();
            let _ = self.replicate_encrypted(cipher, ended).await;
            // Not a direct peer while we redial: a swarm connection may take it.
            lock(&direct.peers).remove(&pk);
            if started.elapsed() >= STABLE {
                backoff = Redial::new();
            }
            next = self.redial(pk, direct, &mut backoff).await;
        }
        debug!(%peer, "direct peer given up");
        if direct.client && !direct.stopped() && !direct.connected(&pk) {
            let (m, direct) = (self.clone(), direct.clone());
            tokio::spawn(async move { m.rediscover(pk, direct).await });
        }
    }

    /// Dials `pk`'s advertised endpoint (handshake included) until it answers and no
    /// swarm connection to `pk` came meanwhile, the swarm stops, or the backoff's
    /// deadline passes.
    async fn redial(
        &self,
        pk: [u8; 32],
        direct: &SwarmCtx,
        backoff: &mut Redial,
    ) -> Option<Direct> {
        while !direct.stopped() && tokio::time::Instant::now() < backoff.deadline {
            if backoff.tried && !direct.pause(backoff.pace.next_delay()).await {
                break;
            }
            backoff.tried = true;
            if direct.connected(&pk) {
                debug!("a swarm connection took the peer: direct redial ends");
                return None;
            }
            let Some(addr) = direct.swarm.direct_endpoint(&pk).await else {
                continue;
            };
            if let Some(tcp) = direct.open_direct(addr, true).await {
                if !direct.take_direct(pk) {
                    return None;
                }
                direct.count(|s| {
                    s.direct_connections += 1;
                    s.redials += 1;
                });
                debug!(peer = %crate::replication::hex(&pk), %addr, "direct connection redialled");
                return Some(tcp);
            }
        }
        None
    }

    /// Client side: peers announcing `dk` that advertise a direct endpoint are dialled
    /// at once (no wait for the UDX connection). Nobody found yet (the server may still
    /// be announcing): look again with backoff (100 ms doubling to 2 s) for up to
    /// [`DIRECT_LOOKUP_BOUND`]; the swarm connection stays the fallback.
    fn look_for_direct(&self, running: &Running, dk: [u8; 32]) {
        if !(running.prefer_direct && running.client) {
            return;
        }
        let (m, direct) = (self.clone(), running.direct.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + DIRECT_LOOKUP_BOUND;
            let mut pace = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
            loop {
                let found = direct.swarm.find_direct(dk).await;
                let any = !found.is_empty();
                for (pk, addr) in found {
                    // Until its handshake is done a direct dial holds nothing: a swarm
                    // connection to the peer meanwhile is taken (and then kept).
                    if direct.connected(&pk) {
                        continue;
                    }
                    // A record is the peer's word: it could name our own loopback or
                    // a host of our network. Such addresses only on a local DHT.
                    if !may_dial_unvouched(addr, direct.local_discovery) {
                        debug!(%addr, "direct endpoint on a private address from a public DHT: not dialled before a swarm connection");
                        continue;
                    }
                    if direct.at_max_peers() {
                        debug!(
                            max_peers = direct.max_peers,
                            "at max peers: direct endpoints not dialled"
                        );
                        break;
                    }
                    let Some(tcp) = direct.open_direct(addr, false).await else {
                        continue;
                    };
                    if !direct.take_direct(pk) {
                        debug!(%addr, "a swarm connection came first: staying on it");
                        continue;
                    }
                    direct.count(|s| s.direct_connections += 1);
                    let (m, direct) = (m.clone(), direct.clone());
                    tokio::spawn(async move { m.direct_session(tcp, pk, &direct).await });
                }
                let delay = pace.next_delay();
                if any
                    || tokio::time::Instant::now() + delay > deadline
                    || !direct.pause(delay).await
                {
                    return;
                }
            }
        });
    }

    /// Stops discovery: leaves every topic and closes the swarm's connections. Direct
    /// TCP connections dialled to peers the swarm introduced run until they end and are
    /// not redialled ([`close`](Self::close) ends them too).
    pub async fn stop_swarm(&self) {
        let running = self.swarm_slot().lock().await.take();
        if let Some(running) = running {
            running.stop.send_replace(true);
            running.accept.abort();
            running.swarm.destroy().await;
            debug!("swarm stopped");
        }
    }

    /// Refuses `peer` (its swarm public key) from now on, or lifts that (`banned:
    /// false`): the swarm neither dials it nor answers it, and lost connections to it
    /// are not re-established (JS hyperswarm's `peerInfo.ban()`). Connections up stay
    /// until they end. Without a running swarm this does nothing.
    pub async fn ban_peer(&self, peer: [u8; 32], banned: bool) {
        if let Some(running) = self.swarm_slot().lock().await.as_ref() {
            running.swarm.ban(peer, banned);
        }
    }

    /// Suspends the swarm (a laptop going to sleep; JS hyperswarm's `suspend()`): no
    /// announcing, looking up, dialling or answering until
    /// [`resume_swarm`](Self::resume_swarm). Connections up stay until they end.
    pub async fn suspend_swarm(&self) {
        if let Some(running) = self.swarm_slot().lock().await.as_ref() {
            running.swarm.suspend();
        }
    }

    /// Resumes a suspended swarm (woke up, maybe on another network): every enabled
    /// log's topic is announced and looked up again at once and the peers found are
    /// dialled, so peers reconnect within seconds. Returns once those rounds are done
    /// (within the swarm's join timeout).
    pub async fn resume_swarm(&self) {
        let swarm = self
            .swarm_slot()
            .lock()
            .await
            .as_ref()
            .map(|r| r.swarm.clone());
        if let Some(swarm) = swarm {
            swarm.resume().await;
        }
    }

    /// The swarm's public key, while one runs.
    pub async fn swarm_public_key(&self) -> Option<[u8; 32]> {
        self.swarm_slot()
            .lock()
            .await
            .as_ref()
            .map(|r| r.swarm.public_key())
    }

    /// Peers the swarm found but could not reach, each with its last dial error (for a
    /// "why is this device not syncing" view): kept until a connection to the peer is
    /// up. Empty without a swarm.
    pub async fn dial_failures(&self) -> Vec<DialFailure> {
        match self.swarm_slot().lock().await.as_ref() {
            Some(r) => r.swarm.dial_failures(),
            None => Vec::new(),
        }
    }

    /// Joins `discovery_key` if a swarm runs (called when a log is enabled).
    pub(crate) async fn swarm_join(&self, discovery_key: [u8; 32]) -> Result<()> {
        let slot = self.swarm_slot().lock().await;
        if let Some(running) = slot.as_ref() {
            running.swarm.join(discovery_key).await?;
            self.look_for_direct(running, discovery_key);
        }
        Ok(())
    }

    /// Leaves `discovery_key` if a swarm runs (called when a log is disabled).
    pub(crate) async fn swarm_leave(&self, discovery_key: [u8; 32]) -> Result<()> {
        let slot = self.swarm_slot().lock().await;
        if let Some(running) = slot.as_ref() {
            running.swarm.leave(discovery_key).await?;
        }
        Ok(())
    }

    /// The address the swarm's direct TCP listener is bound to (`SwarmOptions::direct`;
    /// port 0 there picks a free port), while a swarm with one runs.
    pub async fn direct_listen_addr(&self) -> Option<SocketAddr> {
        self.swarm_slot()
            .lock()
            .await
            .as_ref()
            .and_then(|r| r.listener.as_ref().map(Listener::local_addr))
    }

    /// The running swarm's counters, updated as they change (`None` without a swarm).
    pub async fn watch_swarm_stats(&self) -> Option<watch::Receiver<SwarmStats>> {
        self.swarm_slot()
            .lock()
            .await
            .as_ref()
            .map(|r| r.direct.stats.subscribe())
    }

    /// Peers we currently replicate with over direct TCP (their swarm public keys).
    pub async fn direct_peers(&self) -> Vec<[u8; 32]> {
        match self.swarm_slot().lock().await.as_ref() {
            Some(r) => lock(&r.direct.peers).iter().copied().collect(),
            None => Vec::new(),
        }
    }

    async fn replicate_peer(&self, peer: SwarmPeer) -> std::result::Result<(), HypercoreError> {
        debug!(
            peer = %crate::replication::hex(&peer.remote_public_key),
            initiator = peer.is_initiator,
            "replicating over a swarm connection"
        );
        self.replicate_encrypted(peer.cipher, peer.ended).await
    }
}

/// At most this many failed direct endpoints are remembered.
const MAX_FAILED_ENDPOINTS: usize = 256;

/// How long a client keeps looking for direct endpoints of a topic it joined.
const DIRECT_LOOKUP_BOUND: Duration = Duration::from_secs(30);

/// How long a dropped direct connection is redialled without a stable connection.
const REDIAL_BOUND: Duration = Duration::from_secs(60);
/// A direct connection that lasted this long resets the redial backoff.
const STABLE: Duration = Duration::from_secs(10);

/// Redial pacing of one direct peer: 100 ms doubling to 5 s, until a deadline.
struct Redial {
    pace: Backoff,
    /// Whether a dial was made already (the first one goes at once).
    tried: bool,
    deadline: tokio::time::Instant,
}

impl Redial {
    fn new() -> Redial {
        Redial {
            pace: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            tried: false,
            deadline: tokio::time::Instant::now() + REDIAL_BOUND,
        }
    }
}

/// One dial of a direct endpoint, bounded by 5 s.
async fn dial_once(addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A direct connection, its handshake done.
type Direct = (
    nova_hypercore_replication::transport::SecretCipher,
    watch::Receiver<nova_hypercore_replication::transport::Ending>,
);

/// Bound on a direct connection's Noise handshake (a port that accepts but is not a
/// peer of ours holds the dial no longer).
const DIRECT_HANDSHAKE: Duration = Duration::from_secs(5);

/// Dials a peer's direct endpoint and does the handshake: one attempt (`redial`) or
/// up to three (50 ms, then 100 ms apart), each bounded by 5 s, the handshake by
/// [`DIRECT_HANDSHAKE`]. `None` when it cannot be had (logged).
async fn dial_direct(addr: SocketAddr, redial: bool) -> Option<Direct> {
    let mut pace = Backoff::new(Duration::from_millis(50), Duration::from_millis(100));
    let stream = loop {
        match dial_once(addr).await {
            Ok(stream) => break stream,
            Err(e) if redial || pace.attempts >= 2 => {
                debug!(%addr, error = %e, "direct endpoint unreachable");
                return None;
            }
            Err(_) => tokio::time::sleep(pace.next_delay()).await,
        }
    };
    let handshake = nova_hypercore_replication::transport::encrypt(stream, true);
    match tokio::time::timeout(DIRECT_HANDSHAKE, handshake).await {
        Ok(Ok(direct)) => Some(direct),
        Ok(Err(e)) => {
            debug!(%addr, error = %e, "direct endpoint: handshake failed");
            None
        }
        Err(_) => {
            debug!(%addr, "direct endpoint: no handshake within {DIRECT_HANDSHAKE:?}");
            None
        }
    }
}

/// Whether a peer's advertised direct endpoint can work from here, judged by where
/// its swarm connection `reached` it: loopback, the address we reached (its LAN
/// address, a port forward on its NAT's public address), or any public address. A
/// private endpoint of a peer we reached elsewhere (through its NAT) cannot: dialling
/// it would only hold the swarm connection up.
fn worth_dialling(endpoint: SocketAddr, reached: Option<SocketAddr>) -> bool {
    let Some(reached) = reached else {
        return true;
    };
    let ip = endpoint.ip();
    ip.is_loopback() || ip == reached.ip() || !private(ip)
}

/// Whether a direct endpoint from a DHT record may be dialled before any swarm
/// connection reached the peer: a public address, or any address when the DHT itself
/// is local (loopback or private bootstrap nodes). A record from a public DHT naming
/// loopback or a private address would have us dial our own host or network for a
/// stranger.
fn may_dial_unvouched(endpoint: SocketAddr, local_discovery: bool) -> bool {
    let ip = endpoint.ip();
    if ip.is_unspecified() || ip.is_multicast() || endpoint.port() == 0 {
        return false;
    }
    local_discovery || !(ip.is_loopback() || private(ip))
}

/// A private, link-local or unique-local address (reachable only inside its network).
fn private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_private_endpoint_is_dialled_only_where_the_swarm_reached_that_address() {
        // Reached through its NAT: its LAN address is out of reach.
        assert!(!worth_dialling(
            at("10.1.0.2:4000"),
            Some(at("203.0.113.10:5000"))
        ));
        assert!(!worth_dialling(
            at("192.168.1.5:4000"),
            Some(at("192.168.7.5:4000"))
        ));
        assert!(!worth_dialling(
            at("100.64.0.9:4000"),
            Some(at("203.0.113.10:5000"))
        ));
        // Same LAN, loopback, a port forward on its public address, a public endpoint.
        assert!(worth_dialling(
            at("192.168.1.5:4000"),
            Some(at("192.168.1.5:6000"))
        ));
        assert!(worth_dialling(at("127.0.0.1:4000"), Some(at("10.0.0.2:1"))));
        assert!(worth_dialling(
            at("203.0.113.10:4000"),
            Some(at("203.0.113.10:5000"))
        ));
        assert!(worth_dialling(
            at("198.51.100.7:4000"),
            Some(at("203.0.113.10:5000"))
        ));
        // Records from a public DHT: public endpoints only; a local DHT: any.
        assert!(!may_dial_unvouched(at("127.0.0.1:4000"), false));
        assert!(!may_dial_unvouched(at("192.168.1.5:4000"), false));
        assert!(may_dial_unvouched(at("198.51.100.7:4000"), false));
        assert!(may_dial_unvouched(at("127.0.0.1:4000"), true));
        assert!(!may_dial_unvouched(at("0.0.0.0:4000"), true));
        assert!(!may_dial_unvouched(at("198.51.100.7:0"), false));
        // Nothing known of the swarm connection's address: try.
        assert!(worth_dialling(at("10.1.0.2:4000"), None));
        assert!(private("fd00::1".parse().unwrap()) && private("fe80::1".parse().unwrap()));
        assert!(!private("2001:db8::1".parse().unwrap()));
    }
}
