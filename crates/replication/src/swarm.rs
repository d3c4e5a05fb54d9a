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

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_hypercore_serialization::HypercoreError;
use peeroxide::{JoinOpts, KeyPair, SwarmConfig, SwarmConnection, SwarmHandle};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
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

/// Most peers remembered as "had a connection" (oldest forgotten first): remote peers
/// choose their keys, so the memory is bounded. Forgetting one only lets a join dial it
/// by the LAN path again, under the same one-dial-per-peer claim.
const SEEN_CAP: usize = 1024;

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
    /// Peers one of our dials (a join's LAN-path dial, [`Swarm::connect`]) is under
    /// way to: one claim per peer.
    dialling: HashSet<[u8; 32]>,
    /// Peers that had a connection (a join's LAN-path dial is for a first connection;
    /// reconnecting is [`Swarm::connect`]'s), the latest [`SEEN_CAP`] of them.
    seen: Seen,
}

/// Where a new connection comes from, for [`Connected::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// One of our dials (`by_lan`: by the LAN path); its claim is held.
    Ours { by_lan: bool },
    /// The swarm dialled it.
    SwarmDialled,
    /// The peer dialled us.
    Accepted,
}

impl Connected {
    /// Claims `pk` for one of our dials: `false` when a connection to it is up or a
    /// dial to it is under way (and, for a join's dial (`first_only`), when it had a
    /// connection before).
    fn claim(&mut self, pk: [u8; 32], first_only: bool) -> bool {
        if self.all.contains_key(&pk) || (first_only && self.seen.contains(&pk)) {
            return false;
        }
        self.dialling.insert(pk)
    }

    /// Ends the claim [`Self::claim`] made.
    fn release(&mut self, pk: &[u8; 32]) {
        self.dialling.remove(pk);
    }

    /// Counts a new connection to `pk`, or says (`false`) to drop it: one of ours when
    /// a connection to the peer is already up, one the swarm dialled while ours stands
    /// or is being dialled. Connections the peer dialled are always taken.
    fn admit(&mut self, pk: [u8; 32], source: Source) -> bool {
        let keep = match source {
            Source::Ours { .. } => !self.all.contains_key(&pk),
            Source::SwarmDialled => !self.lan.contains_key(&pk) && !self.dialling.contains(&pk),
            Source::Accepted => true,
        };
        if keep {
            self.seen.insert(pk);
            *self.all.entry(pk).or_default() += 1;
            if source == (Source::Ours { by_lan: true }) {
                *self.lan.entry(pk).or_default() += 1;
            }
        }
        keep
    }

    /// Uncounts a connection [`Self::admit`] counted, once it ended.
    fn ended(&mut self, pk: &[u8; 32], source: Source) {
        uncount(&mut self.all, pk);
        if source == (Source::Ours { by_lan: true }) {
            uncount(&mut self.lan, pk);
        }
    }
}

/// A set of at most [`SEEN_CAP`] keys, the oldest evicted first.
#[derive(Default)]
struct Seen {
    keys: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Seen {
    fn insert(&mut self, pk: [u8; 32]) {
        if !self.keys.insert(pk) {
            return;
        }
        self.order.push_back(pk);
        while self.order.len() > SEEN_CAP {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }

    fn contains(&self, pk: &[u8; 32]) -> bool {
        self.keys.contains(pk)
    }
}

/// The connection counts, and a signal for each connection counted.
#[derive(Default)]
struct Tracking {
    state: Mutex<Connected>,
    /// Fired whenever a connection is counted.
    counted: Notify,
}

type Tracked = Arc<Tracking>;

fn lock_connected(tracked: &Tracked) -> std::sync::MutexGuard<'_, Connected> {
    tracked.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a new connection to `pk` (see [`Connected::admit`]); `false`: drop it.
fn admit(tracked: &Tracked, pk: [u8; 32], source: Source) -> bool {
    let keep = lock_connected(tracked).admit(pk, source);
    if keep {
        tracked.counted.notify_waiters();
    }
    keep
}

/// Uncounts `peer`'s connection (admitted as `source`) when it ends.
fn watch_end(tracked: &Tracked, peer: &SwarmPeer, source: Source) {
    let pk = peer.remote_public_key;
    let (tracked, mut ended) = (tracked.clone(), peer.ended.clone());
    tokio::spawn(async move {
        let _ = ended.wait_for(Option::is_some).await;
        lock_connected(&tracked).ended(&pk, source);
    });
}

/// A claim on dialling one peer (see [`Connected::claim`]), released when dropped
/// (also when the dial is cancelled).
struct Claim {
    tracked: Tracked,
    pk: [u8; 32],
}

impl Claim {
    fn new(tracked: &Tracked, pk: [u8; 32], first_only: bool) -> Option<Claim> {
        lock_connected(tracked)
            .claim(pk, first_only)
            .then(|| Claim {
                tracked: tracked.clone(),
                pk,
            })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock_connected(&self.tracked).release(&self.pk);
    }
}

fn uncount(map: &mut HashMap<[u8; 32], usize>, pk: &[u8; 32]) {
    if let Some(n) = map.get_mut(pk) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(pk);
        }
    }
}

/// What a LAN-path dial came to.
enum Dialled {
    /// Connected (counted).
    Peer(SwarmPeer),
    /// Connected, but a connection to the peer came up meanwhile: ours was dropped.
    Duplicate,
    /// The LAN path does not apply or failed before a server answered: peeroxide-dht's
    /// connect may try.
    NotLan,
    /// The server answered our handshake and the dial failed: another handshake to it
    /// now would be refused.
    Answered(lan::LanError),
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
    /// A connection to `peer` by the LAN path, when that path applies and works
    /// (steps up to a server's answer bounded by `deadline`, see module `lan`). The
    /// caller holds the peer's [`Claim`].
    async fn connect(&self, peer: [u8; 32], deadline: Instant) -> Dialled {
        let runtime = match libudx::UdxRuntime::new() {
            Ok(runtime) => runtime,
            Err(e) => {
                debug!(error = %e, "LAN path: no UDX runtime");
                return Dialled::NotLan;
            }
        };
        let connection = match lan::connect(
            &self.dht,
            &self.key_pair,
            peer,
            &runtime,
            self.local_connection,
            deadline,
        )
        .await
        {
            Ok(lan::Lan::Connected(connection)) => connection,
            Ok(lan::Lan::NotLan(reason)) => {
                debug!(%reason, "LAN path does not apply");
                return Dialled::NotLan;
            }
            Err(e @ lan::LanError::Answered(_)) => {
                debug!(error = %e, "LAN path failed after the server answered");
                return Dialled::Answered(e);
            }
            Err(e) => {
                debug!(error = %e, "LAN path failed");
                return Dialled::NotLan;
            }
        };
        let source = Source::Ours { by_lan: true };
        if !admit(&self.tracked, peer, source) {
            debug!("LAN path connected a peer that is connected already: dropped");
            return Dialled::Duplicate;
        }
        let peer = SwarmPeer::new(
            Held::Dialled(*connection, runtime),
            true,
            self.key_pair.public_key,
        );
        watch_end(&self.tracked, &peer, source);
        Dialled::Peer(peer)
    }

    /// Looks `topic` up and dials by the LAN path the peers found that never had a
    /// connection, once they had [`LAN_GRACE`] to get one from the swarm; looks again
    /// (100 ms doubling to 2 s) while nobody is found, for up to [`LAN_LOOKUP_BOUND`].
    /// Peers the LAN path does not apply to are left to the swarm. `bound`: on one
    /// lookup, and on one dial up to the server's answer.
    async fn connect_found(self, topic: [u8; 32], bound: Duration) {
        let deadline = Instant::now() + LAN_LOOKUP_BOUND;
        let mut delay = Duration::from_millis(100);
        loop {
            let found = lookup_peers(&self.dht, topic, self.key_pair.public_key, bound).await;
            if !found.is_empty() {
                self.grace(&found).await;
            }
            for &pk in &found {
                let Some(_claim) = Claim::new(&self.tracked, pk, true) else {
                    continue;
                };
                if let Dialled::Peer(peer) = self.connect(pk, Instant::now() + bound).await {
                    debug!("swarm connection by the LAN path");
                    if self.peers.send(peer).await.is_err() {
                        return;
                    }
                }
            }
            if !found.is_empty() || Instant::now() + delay > deadline {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Waits until every peer in `found` had a connection, or [`LAN_GRACE`] passed.
    async fn grace(&self, found: &[[u8; 32]]) {
        let until = Instant::now() + LAN_GRACE;
        loop {
            let counted = self.tracked.counted.notified();
            tokio::pin!(counted);
            // Registered before checking, so a connection counted in between wakes us.
            counted.as_mut().enable();
            if found
                .iter()
                .all(|pk| lock_connected(&self.tracked).seen.contains(pk))
            {
                return;
            }
            if tokio::time::timeout_at(until, counted).await.is_err() {
                return;
            }
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
                let source = if is_initiator {
                    Source::SwarmDialled
                } else {
                    Source::Accepted
                };
                if !admit(&tracked, pk, source) {
                    // The swarm got through too (its holepunch) while our connection
                    // stands or is being dialled: one connection per peer is enough.
                    debug!("swarm dialled a peer we connect ourselves: dropped");
                    continue;
                }
                let peer = SwarmPeer::new(Held::Swarm(conn), is_initiator, local);
                watch_end(&tracked, &peer, source);
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

    /// Connects to `peer` through the DHT ourselves, bounded by the join timeout
    /// (except that a LAN-path handshake the server answered is finished, within 20 s
    /// more, rather than thrown away).
    ///
    /// The swarm connects to a peer only once in its life: peeroxide 1.7 never learns
    /// that a connection ended, so it ignores that peer from then on (and refuses its
    /// incoming connections). A client that lost a connection reconnects with this
    /// (as JS hyperswarm's retry does); see `docs/discovery.md`.
    ///
    /// JS hyperdht's LAN path is tried first; where it does not apply, peeroxide-dht's
    /// connect runs in the time left. Fails at once when a connection to `peer` is up or
    /// one of our dials to it is under way (a join's LAN-path dial, another `connect`):
    /// one connection per peer.
    pub async fn connect(&self, peer: [u8; 32]) -> Result<SwarmPeer, HypercoreError> {
        let deadline = Instant::now() + self.join_timeout;
        let Some(_claim) = Claim::new(&self.lan.tracked, peer, false) else {
            return Err(failed(
                "connect: the peer is connected, or being dialled, already".into(),
            ));
        };
        match self.lan.connect(peer, deadline).await {
            Dialled::Peer(connected) => return Ok(connected),
            Dialled::Duplicate => {
                return Err(failed("connect: the peer connected meanwhile".into()));
            }
            Dialled::Answered(e) => return Err(failed(format!("connect (LAN path): {e}"))),
            Dialled::NotLan => {}
        }
        let runtime =
            libudx::UdxRuntime::new().map_err(|e| failed(format!("connect runtime: {e}")))?;
        let mut opts = peeroxide_dht::hyperdht::ConnectOpts::default();
        opts.local_connection = self.local_connection;
        let connection = tokio::time::timeout_at(
            deadline,
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
        let source = Source::Ours { by_lan: false };
        if !admit(&self.lan.tracked, peer, source) {
            return Err(failed("connect: the peer connected meanwhile".into()));
        }
        let peer = SwarmPeer::new(Held::Dialled(connection, runtime), true, self.public_key());
        watch_end(&self.lan.tracked, &peer, source);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_le_bytes());
        k
    }

    #[test]
    fn one_claim_per_peer_for_both_dial_paths() {
        let mut c = Connected::default();
        let pk = key(1);
        // A join's dial claims the peer; a reconnect (or another join) cannot.
        assert!(c.claim(pk, true));
        assert!(!c.claim(pk, false));
        assert!(!c.claim(pk, true));
        c.release(&pk);
        // Released: the reconnect may claim it, and then the join cannot.
        assert!(c.claim(pk, false));
        assert!(!c.claim(pk, true));
        c.release(&pk);
        assert!(c.dialling.is_empty());
    }

    #[test]
    fn no_claim_on_a_connected_peer_and_a_joins_dial_is_for_a_first_connection() {
        let mut c = Connected::default();
        let pk = key(2);
        assert!(c.admit(pk, Source::Accepted));
        assert!(!c.claim(pk, false));
        assert!(!c.claim(pk, true));
        c.ended(&pk, Source::Accepted);
        // Gone: a reconnect may dial it, a join's LAN-path dial may not.
        assert!(!c.claim(pk, true));
        assert!(c.claim(pk, false));
    }

    #[test]
    fn our_connection_to_a_connected_peer_is_dropped() {
        let mut c = Connected::default();
        let pk = key(3);
        let ours = Source::Ours { by_lan: true };
        assert!(c.claim(pk, false));
        assert!(c.admit(pk, ours));
        // A second dial that got through anyway (claimed before the first counted).
        assert!(!c.admit(pk, ours));
        assert!(!c.admit(pk, Source::Ours { by_lan: false }));
        assert_eq!(c.all.get(&pk), Some(&1));
        assert_eq!(c.lan.get(&pk), Some(&1));
        c.release(&pk);
        c.ended(&pk, ours);
        assert!(c.all.is_empty() && c.lan.is_empty());
    }

    #[test]
    fn the_swarms_dial_is_dropped_while_ours_stands_or_is_under_way() {
        let mut c = Connected::default();
        let pk = key(4);
        // Under way.
        assert!(c.claim(pk, false));
        assert!(!c.admit(pk, Source::SwarmDialled));
        // The peer dialling us is always taken.
        assert!(c.admit(pk, Source::Accepted));
        c.ended(&pk, Source::Accepted);
        // Ours (LAN path) stands, the claim released.
        assert!(c.admit(pk, Source::Ours { by_lan: true }));
        c.release(&pk);
        assert!(!c.admit(pk, Source::SwarmDialled));
        c.ended(&pk, Source::Ours { by_lan: true });
        // Neither: the swarm's connection is taken.
        assert!(c.admit(pk, Source::SwarmDialled));
        assert_eq!(c.all.get(&pk), Some(&1));
        assert!(c.lan.is_empty());
    }

    #[test]
    fn seen_is_bounded_and_forgets_the_oldest_first() {
        let mut c = Connected::default();
        let extra = 10u32;
        let total = u32::try_from(SEEN_CAP).unwrap() + extra;
        for n in 0..total {
            assert!(c.admit(key(n), Source::Accepted));
            c.ended(&key(n), Source::Accepted);
        }
        assert_eq!(c.seen.keys.len(), SEEN_CAP);
        assert_eq!(c.seen.order.len(), SEEN_CAP);
        assert!(c.all.is_empty());
        for n in 0..extra {
            assert!(!c.seen.contains(&key(n)), "{n} kept");
        }
        for n in extra..total {
            assert!(c.seen.contains(&key(n)), "{n} forgotten");
        }
        // Seen again: not counted twice.
        c.seen.insert(key(total - 1));
        assert_eq!(c.seen.order.len(), SEEN_CAP);
    }
}
