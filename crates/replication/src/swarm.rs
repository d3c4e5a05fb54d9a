//! Discovery on a Hyperswarm DHT (`peeroxide` 1.7), as JS peers do it: a log's
//! discovery key is the topic; connections the swarm makes carry replication sessions.
//!
//! - [`Swarm::start`] spawns a swarm on an explicit bootstrap list (required: there is no
//!   fallback to public nodes; an empty list is refused with a clear error, and the
//!   manager treats it as "no DHT"). Spawning is bounded by a timeout, because
//!   `peeroxide::spawn` waits for a bootstrap node forever.
//! - [`Swarm::join`] / [`Swarm::leave`] announce and look up one topic (bounded too).
//! - Every connection arrives as a [`SecretCipher`] (with its ending watch), ready for
//!   [`Replicator::run_encrypted`](crate::Replicator::run_encrypted): the swarm's
//!   Noise-encrypted `SecretStream` already is the framed, encrypted channel
//!   a session wants, so there is no second handshake.
//! - [`BootstrapNode`] hosts a DHT bootstrap node in-process (tests, the demo, a LAN).
//!
//! Servers announce unfirewalled, clients keep the default (measured: the other
//! combinations fail against JS peers; see `docs/discovery.md`).
//!
//! A client also dials peers by JS hyperdht's LAN path (module `lan`): on a DHT where
//! nobody learns its own address (one node, as `BootstrapNode` hosts for the demo)
//! peeroxide-dht's client holepunches a JS server that waits to be dialled; we dial it
//! (`docs/discovery.md`, "One-node DHT"). Each join looks the topic up for that, and
//! [`Swarm::connect`] tries it first.

mod lan;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_hypercore_serialization::HypercoreError;
use peeroxide::{JoinOpts, KeyPair, SwarmConfig, SwarmConnection, SwarmHandle};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::transport::{Ending, SecretCipher};

/// Idle time after which a swarm connection sends an empty message (JS hyperdht's
/// `connectionKeepAlive` default).
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Prefix of the mutable record that advertises a direct TCP endpoint.
const DIRECT_RECORD: &str = "nova-hypercore/direct-tcp/1 ";

/// How long a join keeps looking its topic up for peers to dial by the LAN path while
/// it finds nobody (100 ms doubling to 2 s between lookups).
const LAN_LOOKUP_BOUND: Duration = Duration::from_secs(30);

/// How long a join lets the swarm's own connect reach a peer it found before dialling
/// that peer by the LAN path. The swarm connects in milliseconds wherever it can (a Rust
/// server, or any server once our address is known); two handshakes racing to one
/// peeroxide server leave one of them unanswered (it counts us as connected).
const LAN_GRACE: Duration = Duration::from_secs(2);

fn failed(reason: String) -> HypercoreError {
    HypercoreError::ReplicationFailed {
        log: "swarm".into(),
        reason,
    }
}

/// How to run a swarm. `bootstrap` must name at least one reachable DHT node.
#[derive(Debug, Clone)]
pub struct SwarmOptions {
    /// DHT bootstrap nodes (`host:port`). Required; never defaults to public nodes.
    pub bootstrap: Vec<SocketAddr>,
    /// Address to bind the UDP sockets to (`0.0.0.0` for every interface).
    pub host: IpAddr,
    /// Announce joined topics so that others can connect to us.
    pub server: bool,
    /// Look up joined topics and connect to the peers found.
    pub client: bool,
    /// Bound on waiting for the DHT to bootstrap.
    pub start_timeout: Duration,
    /// Bound on one join or leave.
    pub join_timeout: Duration,
    /// The swarm's Noise identity; a fresh one when `None`.
    pub seed: Option<[u8; 32]>,
    /// Bind a direct TCP listener here and advertise it to peers (Rust peers then
    /// replicate over TCP once the DHT has introduced them; JS peers keep using the
    /// swarm connection). Must be an address peers can reach (not `0.0.0.0`).
    pub direct: Option<SocketAddr>,
    /// Advertise this endpoint instead of the one `direct` binds (port forwarding, a
    /// NAT rule or a proxy in front of the listener).
    pub advertise: Option<SocketAddr>,
    /// Dial a peer's advertised direct endpoint instead of replicating over the UDX
    /// stream (default `true`).
    pub prefer_direct: bool,
    /// Whether a peer found to run on this host is dialled at the private addresses it
    /// advertises (JS hyperdht's `localConnection`) rather than where the DHT saw it.
    /// `None` (default): yes, unless `host` is a loopback address: a loopback-bound
    /// swarm can only reach loopback, and peers advertise their other interfaces'
    /// addresses whatever they are bound to (`docs/discovery.md`).
    pub local_connection: Option<bool>,
    /// Most peers replicated with at once over this swarm (its connections plus the
    /// direct TCP ones it led to); default 64, as JS hyperswarm's `maxPeers`. Enforced
    /// by the manager on live connections (see [`Swarm::start`]).
    pub max_peers: usize,
}

impl SwarmOptions {
    /// Server and client on every interface, 10 s bounds, a fresh identity.
    pub fn new(bootstrap: Vec<SocketAddr>) -> Self {
        Self {
            bootstrap,
            host: IpAddr::from([0, 0, 0, 0]),
            server: true,
            client: true,
            start_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(10),
            seed: None,
            direct: None,
            advertise: None,
            prefer_direct: true,
            local_connection: None,
            max_peers: 64,
        }
    }

    /// Serves and advertises a direct TCP endpoint on `addr` (see [`Self::direct`]).
    pub fn direct(mut self, addr: SocketAddr) -> Self {
        self.direct = Some(addr);
        self
    }

    /// Binds to `host` only (tests bind to loopback).
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = host;
        self
    }
}

/// A running swarm. Dropping it leaves every topic and closes its sockets.
pub struct Swarm {
    handle: SwarmHandle,
    task: JoinHandle<()>,
    join: JoinOpts,
    join_timeout: Duration,
    local_connection: bool,
    /// Who we are connected to, and our LAN-path dialler.
    lan: LanDialer,
    /// Joins' LAN-path lookups (aborted when the swarm goes).
    lan_tasks: Mutex<tokio::task::JoinSet<()>>,
}

/// The connections up, by peer, counted while they last.
#[derive(Default)]
struct Connected {
    /// Every connection handed out (the swarm's, ours).
    all: HashMap<[u8; 32], usize>,
    /// Those made by the LAN path.
    lan: HashMap<[u8; 32], usize>,
    /// Peers a LAN-path dial is under way to.
    dialling: HashSet<[u8; 32]>,
    /// Peers that had a connection since the swarm started (a join's LAN-path dial is
    /// for a first connection; reconnecting is [`Swarm::connect`]'s).
    seen: HashSet<[u8; 32]>,
}

type Tracked = Arc<Mutex<Connected>>;

fn lock_connected(tracked: &Tracked) -> std::sync::MutexGuard<'_, Connected> {
    tracked.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts `peer`'s connection until it ends.
fn track(tracked: &Tracked, peer: &SwarmPeer, by_lan: bool) {
    let pk = peer.remote_public_key;
    {
        let mut c = lock_connected(tracked);
        c.seen.insert(pk);
        *c.all.entry(pk).or_default() += 1;
        if by_lan {
            *c.lan.entry(pk).or_default() += 1;
        }
    }
    let (tracked, mut ended) = (tracked.clone(), peer.ended.clone());
    tokio::spawn(async move {
        let _ = ended.wait_for(Option::is_some).await;
        let mut c = lock_connected(&tracked);
        let c = &mut *c;
        uncount(&mut c.all, &pk);
        if by_lan {
            uncount(&mut c.lan, &pk);
        }
    });
}

fn uncount(map: &mut HashMap<[u8; 32], usize>, pk: &[u8; 32]) {
    if let Some(n) = map.get_mut(pk) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(pk);
        }
    }
}

/// Dials peers by JS hyperdht's LAN path (module `lan`) and hands the connections out
/// as the swarm's own.
#[derive(Clone)]
struct LanDialer {
    dht: peeroxide::HyperDhtHandle,
    key_pair: KeyPair,
    local_connection: bool,
    tracked: Tracked,
    /// Where the swarm's connections go.
    peers: mpsc::Sender<SwarmPeer>,
}

impl LanDialer {
    /// A connection to `peer` by the LAN path, when that path applies and works.
    async fn connect(&self, peer: [u8; 32]) -> Option<SwarmPeer> {
        let runtime = match libudx::UdxRuntime::new() {
            Ok(runtime) => runtime,
            Err(e) => {
                debug!(error = %e, "LAN path: no UDX runtime");
                return None;
            }
        };
        let connection = match lan::connect(
            &self.dht,
            &self.key_pair,
            peer,
            &runtime,
            self.local_connection,
        )
        .await
        {
            Ok(lan::Lan::Connected(connection)) => connection,
            Ok(lan::Lan::NotLan(reason)) => {
                debug!(%reason, "LAN path does not apply");
                return None;
            }
            Err(reason) => {
                debug!(%reason, "LAN path failed");
                return None;
            }
        };
        let peer = SwarmPeer::new(
            Held::Dialled(*connection, runtime),
            true,
            self.key_pair.public_key,
        );
        track(&self.tracked, &peer, true);
        Some(peer)
    }

    /// Looks `topic` up and, after [`LAN_GRACE`], dials by the LAN path the peers found
    /// that never had a connection; looks again (100 ms doubling to 2 s) while nobody is
    /// found, for up to [`LAN_LOOKUP_BOUND`]. Peers the LAN path does not apply to are
    /// left to the swarm. `bound`: on one lookup, and on one dial.
    async fn connect_found(self, topic: [u8; 32], bound: Duration) {
        let deadline = tokio::time::Instant::now() + LAN_LOOKUP_BOUND;
        let mut delay = Duration::from_millis(100);
        loop {
            let found = lookup_peers(&self.dht, topic, self.key_pair.public_key, bound).await;
            if !found.is_empty() {
                tokio::time::sleep(LAN_GRACE).await;
            }
            for &pk in &found {
                {
                    let mut c = lock_connected(&self.tracked);
                    if c.seen.contains(&pk) || !c.dialling.insert(pk) {
                        continue;
                    }
                }
                let peer = tokio::time::timeout(bound, self.connect(pk))
                    .await
                    .ok()
                    .flatten();
                lock_connected(&self.tracked).dialling.remove(&pk);
                if let Some(peer) = peer {
                    debug!("swarm connection by the LAN path");
                    if self.peers.send(peer).await.is_err() {
                        return;
                    }
                }
            }
            if !found.is_empty() || tokio::time::Instant::now() + delay > deadline {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// The public keys of the peers announcing `topic` (not `me`; empty when the lookup
/// fails or times out).
async fn lookup_peers(
    dht: &peeroxide::HyperDhtHandle,
    topic: [u8; 32],
    me: [u8; 32],
    timeout: Duration,
) -> Vec<[u8; 32]> {
    let Ok(Ok(results)) = tokio::time::timeout(timeout, dht.lookup(topic)).await else {
        return Vec::new();
    };
    let mut peers: Vec<[u8; 32]> = results
        .iter()
        .flat_map(|r| r.peers.iter().map(|p| p.public_key))
        .filter(|pk| *pk != me)
        .collect();
    peers.sort_unstable();
    peers.dedup();
    peers
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swarm")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl Swarm {
    /// Starts a swarm on `options.bootstrap`. Connections arrive on the returned
    /// receiver, one per peer, ready to replicate.
    pub async fn start(
        options: SwarmOptions,
    ) -> Result<(Swarm, mpsc::Receiver<SwarmPeer>), HypercoreError> {
        if options.bootstrap.is_empty() {
            return Err(failed(
                "no bootstrap nodes given (an empty list means no DHT; public nodes are never used implicitly)".into(),
            ));
        }
        // Measured: the holepuncher advertises every interface's address whatever the
        // bind address, and a peer on the same host dials a private one among them,
        // which a socket bound to another address never receives (docs/discovery.md).
        // Bound to loopback we dial where the DHT saw the peer instead (loopback).
        let local_connection = options
            .local_connection
            .unwrap_or(!options.host.is_loopback());
        if !options.host.is_unspecified() && !options.host.is_loopback() {
            warn!(
                host = %options.host,
                "swarm bound to one address: peers on this host may dial another interface's address and fail; bind 0.0.0.0 unless this is the only interface"
            );
        }
        let mut config = SwarmConfig::default();
        config.dht.dht.bootstrap = options.bootstrap.iter().map(|a| a.to_string()).collect();
        config.dht.dht.host = options.host.to_string();
        config.local_connection = local_connection;
        // peeroxide counts every peer it ever connected to (it never learns that a
        // connection ended), so its own cap would refuse everyone once 64 peers had
        // come and gone. The manager enforces `max_peers` on live connections instead.
        config.max_peers = usize::MAX;
        // A server must be reachable without holepunching; a client keeps the default
        // (a client with `firewalled = false` breaks against JS servers).
        config.dht.dht.firewalled = !options.server;
        if let Some(seed) = options.seed {
            config.key_pair = Some(KeyPair::from_seed(seed));
        }
        let spawned = tokio::time::timeout(options.start_timeout, peeroxide::spawn(config))
            .await
            .map_err(|_| {
                failed(format!(
                    "no DHT bootstrap node answered within {:?} (bootstrap: {:?})",
                    options.start_timeout, options.bootstrap
                ))
            })?
            .map_err(|e| failed(format!("swarm start: {e}")))?;
        let (task, handle, mut incoming) = spawned;
        let local = handle.key_pair().public_key;
        let (tx, rx) = mpsc::channel(64);
        let tracked = Tracked::default();
        let lan = LanDialer {
            dht: handle.dht().clone(),
            key_pair: handle.key_pair().clone(),
            local_connection,
            tracked: tracked.clone(),
            peers: tx.clone(),
        };
        tokio::spawn(async move {
            while let Some(conn) = incoming.recv().await {
                debug!(initiator = conn.is_initiator, "swarm connection");
                let is_initiator = conn.is_initiator;
                let pk = conn.peer.remote_public_key;
                if is_initiator && lock_connected(&tracked).lan.contains_key(&pk) {
                    // The swarm got through too (its holepunch) while our LAN-path
                    // connection stands: one connection per peer is enough.
                    debug!("swarm dialled a peer connected by the LAN path: dropped");
                    continue;
                }
                let peer = SwarmPeer::new(Held::Swarm(conn), is_initiator, local);
                track(&tracked, &peer, false);
                if tx.send(peer).await.is_err() {
                    break;
                }
            }
        });
        let swarm = Swarm {
            handle,
            task,
            join: {
                let mut j = JoinOpts::default();
                j.server = options.server;
                j.client = options.client;
                j
            },
            join_timeout: options.join_timeout,
            local_connection,
            lan,
            lan_tasks: Mutex::new(tokio::task::JoinSet::new()),
        };
        Ok((swarm, rx))
    }

    /// This swarm's Noise public key (what peers see as our id).
    pub fn public_key(&self) -> [u8; 32] {
        self.handle.key_pair().public_key
    }

    /// Announces and/or looks up `topic` (a log's discovery key), and waits (within the
    /// join timeout) until the first announce and lookup are done, as JS's
    /// `await swarm.join(topic).flushed()`: when it returns, peers looking the topic up
    /// find us. Past the timeout the join stands and completes in the background (a
    /// warning says so). The DHT refreshes a topic only every 10 minutes, so a client
    /// that looked up before a server announced finds it then, or when it joins again.
    ///
    /// A client then also looks `topic` up for peers to dial by the LAN path (in the
    /// background, see the module docs); their connections arrive with the swarm's.
    pub async fn join(&self, topic: [u8; 32]) -> Result<(), HypercoreError> {
        let mut opts = JoinOpts::default();
        opts.server = self.join.server;
        opts.client = self.join.client;
        let started = tokio::time::Instant::now();
        tokio::time::timeout(self.join_timeout, self.handle.join(topic, opts))
            .await
            .map_err(|_| failed(format!("join timed out after {:?}", self.join_timeout)))?
            .map_err(|e| failed(format!("join: {e}")))?;
        let left = self.join_timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, self.handle.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed(format!("join: {e}"))),
            Err(_) => warn!(
                timeout = ?self.join_timeout,
                "first announce/lookup of a joined topic not done within the join timeout; it continues in the background"
            ),
        }
        if self.join.client {
            let lan = self.lan.clone();
            let mut tasks = self.lan_tasks.lock().unwrap_or_else(|p| p.into_inner());
            while tasks.try_join_next().is_some() {}
            tasks.spawn(lan.connect_found(topic, self.join_timeout));
        }
        Ok(())
    }

    /// Stops announcing and looking up `topic`. Open connections stay.
    pub async fn leave(&self, topic: [u8; 32]) -> Result<(), HypercoreError> {
        tokio::time::timeout(self.join_timeout, self.handle.leave(topic))
            .await
            .map_err(|_| failed(format!("leave timed out after {:?}", self.join_timeout)))?
            .map_err(|e| failed(format!("leave: {e}")))
    }

    /// Publishes `addr` as this peer's direct TCP endpoint: a mutable DHT record signed
    /// with the swarm key, so that Rust peers that found us can replicate over TCP
    /// instead of the UDX stream (see `docs/discovery.md`, "Direct after discovery").
    pub async fn advertise_direct(&self, addr: SocketAddr) -> Result<(), HypercoreError> {
        let value = format!("{DIRECT_RECORD}{addr}");
        // A newer record must win over one from an earlier run: the clock orders them.
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        tokio::time::timeout(
            self.join_timeout,
            self.handle
                .dht()
                .mutable_put(self.handle.key_pair(), value.as_bytes(), seq),
        )
        .await
        .map_err(|_| failed(format!("advertising {addr} timed out")))?
        .map_err(|e| failed(format!("advertising {addr}: {e}")))?;
        Ok(())
    }

    /// The direct TCP endpoint `peer` advertised, if any (the record's signature is
    /// checked against `peer`). JS peers advertise none.
    pub async fn direct_endpoint(&self, peer: &[u8; 32]) -> Option<SocketAddr> {
        let got = tokio::time::timeout(self.join_timeout, self.handle.dht().mutable_get(peer, 0))
            .await
            .ok()?
            .ok()??;
        let text = std::str::from_utf8(&got.value).ok()?;
        text.strip_prefix(DIRECT_RECORD)?.parse().ok()
    }

    /// The public keys of the peers announcing `topic` right now (not ours; empty when
    /// the lookup fails or times out).
    pub async fn lookup(&self, topic: [u8; 32]) -> Vec<[u8; 32]> {
        lookup_peers(
            self.handle.dht(),
            topic,
            self.public_key(),
            self.join_timeout,
        )
        .await
    }

    /// Connects to `peer` through the DHT ourselves, bounded by the join timeout.
    ///
    /// The swarm connects to a peer only once in its life: peeroxide 1.7 never learns
    /// that a connection ended, so it ignores that peer from then on (and refuses its
    /// incoming connections). A client that lost a connection reconnects with this
    /// (as JS hyperswarm's retry does); see `docs/discovery.md`.
    ///
    /// JS hyperdht's LAN path is tried first (bounded by the join timeout too); where it
    /// does not apply, peeroxide-dht's connect runs as before.
    pub async fn connect(&self, peer: [u8; 32]) -> Result<SwarmPeer, HypercoreError> {
        if let Ok(Some(connected)) =
            tokio::time::timeout(self.join_timeout, self.lan.connect(peer)).await
        {
            return Ok(connected);
        }
        let runtime =
            libudx::UdxRuntime::new().map_err(|e| failed(format!("connect runtime: {e}")))?;
        let mut opts = peeroxide_dht::hyperdht::ConnectOpts::default();
        opts.local_connection = self.local_connection;
        let connection = tokio::time::timeout(
            self.join_timeout,
            self.handle.dht().connect_with_options(
                self.handle.key_pair(),
                peer,
                &[],
                &runtime,
                opts,
            ),
        )
        .await
        .map_err(|_| failed(format!("connect timed out after {:?}", self.join_timeout)))?
        .map_err(|e| failed(format!("connect: {e}")))?;
        let peer = SwarmPeer::new(Held::Dialled(connection, runtime), true, self.public_key());
        track(&self.lan.tracked, &peer, false);
        Ok(peer)
    }

    /// Peers announcing `topic` right now that advertise a direct TCP endpoint.
    pub async fn find_direct(&self, topic: [u8; 32]) -> Vec<([u8; 32], SocketAddr)> {
        let mut found = Vec::new();
        for pk in self.lookup(topic).await {
            if let Some(addr) = self.direct_endpoint(&pk).await {
                found.push((pk, addr));
            }
        }
        found
    }

    /// Waits until every joined topic has finished its first lookup.
    pub async fn flush(&self) -> Result<(), HypercoreError> {
        tokio::time::timeout(self.join_timeout, self.handle.flush())
            .await
            .map_err(|_| failed(format!("flush timed out after {:?}", self.join_timeout)))?
            .map_err(|e| failed(format!("flush: {e}")))
    }

    /// Leaves every topic and closes the sockets (bounded by the join timeout).
    pub async fn destroy(&self) {
        self.stop_lan_tasks();
        let _ = tokio::time::timeout(self.join_timeout, self.handle.destroy()).await;
    }
}

impl Swarm {
    fn stop_lan_tasks(&self) {
        self.lan_tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .abort_all();
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        self.stop_lan_tasks();
        if !self.task.is_finished() {
            let handle = self.handle.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = handle.destroy().await;
                });
            }
        }
    }
}

/// One connection from the swarm: who it is, and the encrypted channel to replicate on.
pub struct SwarmPeer {
    /// The peer's Noise public key.
    pub remote_public_key: [u8; 32],
    /// Whether we dialled (client side).
    pub is_initiator: bool,
    /// The channel, for [`Replicator::run_encrypted`](crate::Replicator::run_encrypted).
    pub cipher: SecretCipher,
    /// Says when the connection ended (and how).
    pub ended: watch::Receiver<Ending>,
}

impl std::fmt::Debug for SwarmPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmPeer")
            .field("is_initiator", &self.is_initiator)
            .finish_non_exhaustive()
    }
}

/// A DHT connection and what must stay alive with it (its UDX runtime).
enum Held {
    /// Made by the swarm.
    Swarm(SwarmConnection),
    /// Made by [`Swarm::connect`].
    Dialled(peeroxide_dht::hyperdht::PeerConnection, libudx::UdxRuntime),
}

impl Held {
    fn peer(&self) -> &peeroxide_dht::hyperdht::PeerConnection {
        match self {
            Held::Swarm(conn) => &conn.peer,
            Held::Dialled(peer, _) => peer,
        }
    }

    /// Pumps the connection's frames until it ends, then drops everything it held.
    async fn pump(self, ends: crate::transport::PumpEnds) {
        match self {
            Held::Swarm(conn) => {
                // The rest of `conn` (its runtime) is dropped when this arm ends.
                let SwarmConnection { peer, .. } = conn;
                crate::transport::pump(peer.stream, ends, None, Some(KEEPALIVE)).await;
                drop(peer.socket);
            }
            Held::Dialled(peer, runtime) => {
                crate::transport::pump(peer.stream, ends, None, Some(KEEPALIVE)).await;
                drop(peer.socket);
                drop(runtime);
            }
        }
    }
}

impl SwarmPeer {
    fn new(held: Held, is_initiator: bool, local_public_key: [u8; 32]) -> Self {
        let remote_public_key = held.peer().remote_public_key;
        let handshake_hash = held.peer().stream.handshake_hash().to_vec();
        // One task owns the connection (its UDX runtime and socket stay alive with it).
        let (cipher, ended) = SecretCipher::start(
            remote_public_key,
            local_public_key,
            handshake_hash,
            is_initiator,
            |ends| held.pump(ends),
        );
        SwarmPeer {
            remote_public_key,
            is_initiator,
            cipher,
            ended,
        }
    }
}

/// A DHT bootstrap node hosted in this process (not ephemeral, not firewalled).
pub struct BootstrapNode {
    addr: SocketAddr,
    handle: peeroxide::HyperDhtHandle,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for BootstrapNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapNode")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl BootstrapNode {
    /// Starts a bootstrap node on `addr` (port 0 picks a free port): a new DHT of one node.
    pub async fn start(addr: SocketAddr) -> Result<BootstrapNode, HypercoreError> {
        Self::start_with(addr, Vec::new()).await
    }

    /// Starts a node on `addr` that joins the DHT of the nodes in `bootstrap` (empty: a
    /// new DHT). Peers learn their own address (and so whether another peer runs on the
    /// same host) only from the answers of two nodes or more, as on the public DHT: a
    /// few nodes started this way make a testnet that behaves like it.
    pub async fn start_with(
        addr: SocketAddr,
        bootstrap: Vec<SocketAddr>,
    ) -> Result<BootstrapNode, HypercoreError> {
        let runtime = libudx::UdxRuntime::new()
            .map_err(|e| failed(format!("bootstrap node runtime: {e}")))?;
        let mut config = peeroxide_dht::hyperdht::HyperDhtConfig::default();
        config.dht.bootstrap = bootstrap.iter().map(ToString::to_string).collect();
        config.dht.host = addr.ip().to_string();
        config.dht.port = addr.port();
        config.dht.ephemeral = Some(false);
        config.dht.firewalled = false;
        let (join, handle, server_events) = peeroxide_dht::hyperdht::spawn(&runtime, config)
            .await
            .map_err(|e| failed(format!("bootstrap node on {addr}: {e}")))?;
        let port = handle
            .local_port()
            .await
            .map_err(|e| failed(format!("bootstrap node port: {e}")))?;
        let task = tokio::spawn(async move {
            let _events = server_events;
            let _ = join.await;
            drop(runtime);
        });
        Ok(BootstrapNode {
            addr: SocketAddr::new(addr.ip(), port),
            handle,
            task,
        })
    }

    /// The address peers put in their bootstrap list.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the node.
    pub async fn stop(self) {
        let _ = self.handle.destroy().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}
