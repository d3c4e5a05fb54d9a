//! Discovery on a Hyperswarm DHT, as JS peers do it: a log's discovery key is the
//! topic; connections the swarm makes or accepts carry replication sessions.
//!
//! The DHT itself (routing, announce, lookup, records, relaying) is `peeroxide-dht`
//! 1.7.3; everything between "the DHT found the peer" and "an encrypted stream is up"
//! is ours, one module per JS hyperdht/hyperswarm file:
//! - `discovery` (hyperswarm `peer-discovery.js`): a joined topic announced and looked
//!   up now and every 10 minutes;
//! - `server` (hyperdht `server.js`): answers forwarded handshakes and holepunch
//!   rounds, so a peer behind a NAT is reachable (firewalled by default, as JS);
//! - `lan` (hyperdht `connect.js`): the client's handshake through a relay and its
//!   choice: dial an open server, dial a same-host server by JS's LAN rule, or
//!   `holepunch` (the probe and punch rounds), with `puncher` (hyperdht
//!   `holepuncher.js`: our sockets and the punch strategies) and `nat` (hyperdht
//!   `nat.js`: what our NAT does, sampled from DHT nodes);
//! - `connected`: one connection per peer, our dials claimed per peer.
//!
//! - [`Swarm::start`] starts a DHT node on an explicit bootstrap list (required: there
//!   is no fallback to public nodes; an empty list is refused with a clear error, and
//!   the manager treats it as "no DHT"). Bounded by a timeout.
//! - [`Swarm::join`] / [`Swarm::leave`] announce and look up one topic (bounded too).
//! - Every connection arrives as a [`SwarmPeer`] (a [`SecretCipher`] and its ending
//!   watch), ready for [`Replicator::run_encrypted`](crate::Replicator::run_encrypted):
//!   the DHT's Noise-encrypted `SecretStream` already is the framed, encrypted channel
//!   a session wants, so there is no second handshake.
//! - [`BootstrapNode`] hosts a DHT bootstrap node in-process (tests, the demo, a LAN).
//!
//! `docs/discovery.md` has the connection path (who dials, when it holepunches) and
//! what each NAT type gets.

mod bootstrap;
mod connected;
mod dialer;
mod discovery;
mod holepunch;
mod lan;
mod nat;
mod puncher;
mod server;
mod stream;
mod tap;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libudx::UdxRuntime;
use nova_hypercore_serialization::HypercoreError;
use peeroxide_dht::crypto::hash;
use peeroxide_dht::hyperdht::{HyperDhtHandle, KeyPair};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::transport::{Ending, SecretCipher};
pub use bootstrap::BootstrapNode;
pub use connected::{DialFailure, Firewall};
use connected::{Gate, Source, Tracked, admit, lock_connected, watch_end};
use dialer::Dialer;
use discovery::{Discovery, lookup_peers};
use server::{RelaysSeen, Server, ServerOptions};
use stream::Connection;

/// Idle time after which a swarm connection sends an empty message (JS hyperdht's
/// `connectionKeepAlive` default).
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Prefix of the mutable record that advertises a direct TCP endpoint.
const DIRECT_RECORD: &str = "nova-hypercore/direct-tcp/1 ";

/// A peer key's first 8 bytes in hex, for the logs.
fn short(pk: &[u8; 32]) -> String {
    pk[..8].iter().map(|b| format!("{b:02x}")).collect()
}

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
    /// Whether this node may be unreachable from the internet (behind a NAT or a
    /// firewall). `None` (default): yes, as JS hyperdht assumes of every node that has
    /// not been told otherwise: peers then reach us by holepunching through the DHT
    /// nodes we announce to, which also works where we are reachable. `Some(false)`:
    /// we are reachable at our DHT socket's address (a public host, a forwarded port);
    /// peers dial it directly.
    pub firewalled: Option<bool>,
    /// Which peers may connect (JS hyperswarm's `firewall`); everyone when `None`.
    pub firewall: Option<Firewall>,
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
            firewalled: None,
            firewall: None,
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
    dht: HyperDhtHandle,
    key_pair: KeyPair,
    server: bool,
    client: bool,
    join_timeout: Duration,
    dialer: Dialer,
    relays: RelaysSeen,
    found: mpsc::UnboundedSender<[u8; 32]>,
    gate: Arc<Gate>,
    topics: Mutex<Topics>,
    /// The DHT, server and dial tasks (aborted when the swarm goes).
    tasks: Mutex<JoinSet<()>>,
}

/// The joined topics.
#[derive(Default)]
struct Topics {
    joined: HashMap<[u8; 32], Joined>,
    /// Whether our key's target is registered with the DHT's router (a server topic
    /// is joined).
    registered: bool,
}

struct Joined {
    task: JoinHandle<()>,
    refreshed: watch::Receiver<bool>,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.task.abort();
    }
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
        // Measured: peers advertise every interface's address whatever the bind
        // address, and a peer on the same host dials a private one among them, which a
        // socket bound to another address never receives (docs/discovery.md). Bound
        // to loopback we dial where the DHT saw the peer instead (loopback).
        let local_connection = options
            .local_connection
            .unwrap_or(!options.host.is_loopback());
        if !options.host.is_unspecified() && !options.host.is_loopback() {
            warn!(
                host = %options.host,
                "swarm bound to one address: peers on this host may dial another interface's address and fail; bind 0.0.0.0 unless this is the only interface"
            );
        }
        let firewalled = options.firewalled.unwrap_or(true);
        let gate = Arc::new(Gate::new(options.firewall.clone()));
        let random = puncher::RandomPunches::default();
        let tap = tap::Tap::default();
        let bootstrap: Vec<peeroxide_dht::messages::Ipv4Peer> = options
            .bootstrap
            .iter()
            .map(|a| peeroxide_dht::messages::Ipv4Peer {
                host: a.ip().to_string(),
                port: a.port(),
            })
            .collect();
        let runtime = UdxRuntime::new().map_err(|e| failed(format!("swarm runtime: {e}")))?;
        let mut config = peeroxide_dht::hyperdht::HyperDhtConfig::default();
        config.dht.bootstrap = options.bootstrap.iter().map(|a| a.to_string()).collect();
        config.dht.host = options.host.to_string();
        config.dht.firewalled = firewalled;
        let spawned = async {
            let (dht_task, dht, server_events) =
                peeroxide_dht::hyperdht::spawn(&runtime, config).await?;
            dht.bootstrapped().await?;
            Ok::<_, peeroxide_dht::hyperdht::HyperDhtError>((dht_task, dht, server_events))
        };
        let (dht_task, dht, server_events) = tokio::time::timeout(options.start_timeout, spawned)
            .await
            .map_err(|_| {
                failed(format!(
                    "no DHT bootstrap node answered within {:?} (bootstrap: {:?})",
                    options.start_timeout, options.bootstrap
                ))
            })?
            .map_err(|e| failed(format!("swarm start: {e}")))?;
        let key_pair = options
            .seed
            .map_or_else(KeyPair::generate, KeyPair::from_seed);
        let local = key_pair.public_key;
        let (tx, rx) = mpsc::channel(64);
        let tracked = Tracked::default();
        let relays = RelaysSeen::default();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let _ = dht_task.await;
        });

        // Connections peers make to us.
        let (accepted_tx, mut accepted) = mpsc::channel::<Connection>(16);
        let server = Server::spawn(
            dht.clone(),
            key_pair.clone(),
            ServerOptions {
                firewalled,
                host: options.host,
                bootstrap: bootstrap.clone(),
                gate: gate.clone(),
                random: random.clone(),
                tap: tap.clone(),
            },
            relays.clone(),
            accepted_tx,
            server_events,
        );
        tasks.spawn(async move {
            let _ = server.await;
        });
        let (accepted_tracked, accepted_peers) = (tracked.clone(), tx.clone());
        tasks.spawn(async move {
            while let Some(connection) = accepted.recv().await {
                let pk = connection.remote_public_key;
                admit(&accepted_tracked, pk, Source::Accepted);
                let peer = SwarmPeer::new(connection, false, local);
                watch_end(&accepted_tracked, &peer);
                debug!("swarm connection (accepted)");
                if accepted_peers.send(peer).await.is_err() {
                    break;
                }
            }
        });

        // Peers our lookups find.
        let dialer = Dialer {
            dht: dht.clone(),
            key_pair: key_pair.clone(),
            local_connection,
            host: options.host,
            bootstrap,
            random,
            tap,
            join_timeout: options.join_timeout,
            tracked,
            gate: gate.clone(),
            peers: tx,
        };
        let (found, mut found_rx) = mpsc::unbounded_channel::<[u8; 32]>();
        let found_dialer = dialer.clone();
        tasks.spawn(async move {
            let mut dials = JoinSet::new();
            while let Some(pk) = found_rx.recv().await {
                while dials.try_join_next().is_some() {}
                dials.spawn(found_dialer.clone().dial_found(pk));
            }
        });
        let swarm = Swarm {
            dht,
            key_pair,
            server: options.server,
            client: options.client,
            join_timeout: options.join_timeout,
            dialer,
            relays,
            found,
            gate,
            topics: Mutex::new(Topics::default()),
            tasks: Mutex::new(tasks),
        };
        drop(runtime);
        Ok((swarm, rx))
    }

    /// This swarm's Noise public key (what peers see as our id).
    pub fn public_key(&self) -> [u8; 32] {
        self.key_pair.public_key
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, Topics> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Announces and/or looks up `topic` (a log's discovery key), and waits (within the
    /// join timeout) until the first announce and lookup are done, as JS's
    /// `await swarm.join(topic).flushed()`: when it returns, peers looking the topic up
    /// find us. Past the timeout the join stands and completes in the background (a
    /// warning says so). The topic is refreshed every 10 minutes, as JS does; a
    /// client that finds nobody looks again within seconds for 30 s.
    pub async fn join(&self, topic: [u8; 32]) -> Result<(), HypercoreError> {
        let mut refreshed = {
            let mut topics = self.topics();
            if let Some(joined) = topics.joined.get(&topic) {
                joined.refreshed.clone()
            } else {
                if self.server && !topics.registered {
                    self.dht.register_server(&hash(&self.key_pair.public_key));
                    topics.registered = true;
                }
                let joined = self.discover(topic);
                let refreshed = joined.refreshed.clone();
                topics.joined.insert(topic, joined);
                refreshed
            }
        };
        let waited =
            tokio::time::timeout(self.join_timeout, refreshed.wait_for(|done| *done)).await;
        if waited.is_err() {
            warn!(
                timeout = ?self.join_timeout,
                "first announce/lookup of a joined topic not done within the join timeout; it continues in the background"
            );
        }
        Ok(())
    }

    /// Starts announcing and looking up `topic` now and every 10 minutes.
    fn discover(&self, topic: [u8; 32]) -> Joined {
        let (done, refreshed) = watch::channel(false);
        let discovery = Discovery {
            dht: self.dht.clone(),
            key_pair: self.key_pair.clone(),
            server: self.server,
            client: self.client,
            relays: self.relays.clone(),
            found: self.found.clone(),
            timeout: self.join_timeout,
        };
        let task = tokio::spawn(discovery.run(topic, done));
        Joined { task, refreshed }
    }

    /// Peers a lookup found that our dials could not reach, with the last error (e.g.
    /// "both NATs are random: a blind relay is needed"), until a connection to each is
    /// up. At most 256 are kept.
    pub fn dial_failures(&self) -> Vec<DialFailure> {
        lock_connected(&self.dialer.tracked).failures()
    }

    /// Refuses `peer` from now on (`banned: false` lifts it): we neither dial it nor
    /// answer it (JS hyperswarm's `peerInfo.ban()`). Connections up stay until they
    /// end; the manager's `ban_peer` closes them.
    pub fn ban(&self, peer: [u8; 32], banned: bool) {
        self.gate.ban(peer, banned);
    }

    /// Stops announcing, looking up, dialling and answering (JS hyperswarm's
    /// `suspend()`: a laptop going to sleep). Joined topics are kept; connections up
    /// stay until they end.
    pub fn suspend(&self) {
        self.gate.suspend(true);
        for joined in self.topics().joined.values_mut() {
            joined.task.abort();
        }
    }

    /// Undoes [`Self::suspend`] (JS `resume()`: the laptop woke up, maybe on another
    /// network): every joined topic is announced and looked up again at once, and the
    /// peers found are dialled. Waits, within the join timeout, for those rounds.
    pub async fn resume(&self) {
        self.gate.suspend(false);
        let waits: Vec<watch::Receiver<bool>> = {
            let mut topics = self.topics();
            let keys: Vec<[u8; 32]> = topics.joined.keys().copied().collect();
            keys.into_iter()
                .map(|topic| {
                    let joined = self.discover(topic);
                    let wait = joined.refreshed.clone();
                    topics.joined.insert(topic, joined);
                    wait
                })
                .collect()
        };
        let all = async {
            for mut w in waits {
                let _ = w.wait_for(|done| *done).await;
            }
        };
        let _ = tokio::time::timeout(self.join_timeout, all).await;
    }

    /// Whether [`Self::suspend`] is in force.
    pub fn is_suspended(&self) -> bool {
        self.gate.suspended()
    }

    /// Stops announcing and looking up `topic` (and withdraws our announcement of
    /// it). Open connections stay.
    pub async fn leave(&self, topic: [u8; 32]) -> Result<(), HypercoreError> {
        let unregister = {
            let mut topics = self.topics();
            if topics.joined.remove(&topic).is_none() {
                return Ok(());
            }
            let last = topics.joined.is_empty() && topics.registered;
            if last {
                topics.registered = false;
            }
            last
        };
        if unregister {
            self.dht.unregister_server(&hash(&self.key_pair.public_key));
        }
        if self.server {
            tokio::time::timeout(
                self.join_timeout,
                self.dht.unannounce(topic, &self.key_pair),
            )
            .await
            .map_err(|_| failed(format!("leave timed out after {:?}", self.join_timeout)))?
            .map_err(|e| failed(format!("leave: {e}")))?;
        }
        Ok(())
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
            self.dht.mutable_put(&self.key_pair, value.as_bytes(), seq),
        )
        .await
        .map_err(|_| failed(format!("advertising {addr} timed out")))?
        .map_err(|e| failed(format!("advertising {addr}: {e}")))?;
        Ok(())
    }

    /// The direct TCP endpoint `peer` advertised, if any (the record's signature is
    /// checked against `peer`). JS peers advertise none.
    pub async fn direct_endpoint(&self, peer: &[u8; 32]) -> Option<SocketAddr> {
        let got = tokio::time::timeout(self.join_timeout, self.dht.mutable_get(peer, 0))
            .await
            .ok()?
            .ok()??;
        let text = std::str::from_utf8(&got.value).ok()?;
        text.strip_prefix(DIRECT_RECORD)?.parse().ok()
    }

    /// The public keys of the peers announcing `topic` right now (not ours; empty when
    /// the lookup fails or times out).
    pub async fn lookup(&self, topic: [u8; 32]) -> Vec<[u8; 32]> {
        lookup_peers(&self.dht, topic, self.public_key(), self.join_timeout).await
    }

    /// Connects to `peer` through the DHT ourselves, bounded by the join timeout
    /// (except that a LAN-path handshake the server answered is finished, within 20 s
    /// more, rather than thrown away). The manager reconnects lost peers with it.
    ///
    /// JS hyperdht's LAN path is tried first; where it does not apply, peeroxide-dht's
    /// connect (which holepunches) runs in the time left. Fails at once when a
    /// connection to `peer` is up or one of our dials to it is under way: one
    /// connection per peer.
    pub async fn connect(&self, peer: [u8; 32]) -> Result<SwarmPeer, HypercoreError> {
        self.dialer.connect(peer).await
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

    /// Waits until every joined topic has finished its first announce and lookup.
    pub async fn flush(&self) -> Result<(), HypercoreError> {
        let waits: Vec<watch::Receiver<bool>> = self
            .topics()
            .joined
            .values()
            .map(|j| j.refreshed.clone())
            .collect();
        let all = async {
            for mut w in waits {
                let _ = w.wait_for(|done| *done).await;
            }
        };
        tokio::time::timeout(self.join_timeout, all)
            .await
            .map_err(|_| failed(format!("flush timed out after {:?}", self.join_timeout)))
    }

    /// Leaves every topic and closes the sockets (bounded by the join timeout).
    pub async fn destroy(&self) {
        let registered = {
            let mut topics = self.topics();
            topics.joined.clear();
            std::mem::take(&mut topics.registered)
        };
        if registered {
            self.dht.unregister_server(&hash(&self.key_pair.public_key));
        }
        let _ = tokio::time::timeout(self.join_timeout, self.dht.destroy()).await;
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .abort_all();
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        self.topics().joined.clear();
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .abort_all();
        let dht = self.dht.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = dht.destroy().await;
            });
        }
    }
}

/// One connection from the swarm: who it is, and the encrypted channel to replicate on.
pub struct SwarmPeer {
    /// The peer's Noise public key.
    pub remote_public_key: [u8; 32],
    /// Whether we dialled (client side).
    pub is_initiator: bool,
    /// The peer's address as our stream reaches it (after any NAT), when known.
    pub remote_addr: Option<SocketAddr>,
    /// Whose UDX stream carries the connection.
    pub carrier: Carrier,
    /// The channel, for [`Replicator::run_encrypted`](crate::Replicator::run_encrypted).
    pub cipher: SecretCipher,
    /// Says when the connection ended (and how).
    pub ended: watch::Receiver<Ending>,
}

/// Whose UDX stream carries a swarm connection (docs/discovery.md, "The stream under a
/// connection").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// Our own UDX stream (`crate::udx`), on a socket of ours: every holepunched
    /// connection and the LAN path.
    OurUdx,
    /// Our own UDX stream on one of the DHT's sockets, through libudx's packet relay
    /// (the tap, docs/udx-socket-seam.md §5(e)): a handshake that reached the server
    /// directly, a server that is not firewalled, an open client.
    OurUdxTapped,
    /// libudx's stream: peeroxide-dht's own connect, used only for a server that
    /// asks for a blind relay (which we do not build).
    Libudx,
}

impl std::fmt::Debug for SwarmPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmPeer")
            .field("is_initiator", &self.is_initiator)
            .finish_non_exhaustive()
    }
}

impl SwarmPeer {
    fn new(connection: Connection, is_initiator: bool, local_public_key: [u8; 32]) -> Self {
        let remote_public_key = connection.remote_public_key;
        let handshake_hash = connection.handshake_hash.clone();
        let remote_addr = connection.remote_addr;
        let carrier = connection.carrier;
        // One task owns the connection (its stream and socket stay alive with it).
        let (cipher, ended) = SecretCipher::start(
            remote_public_key,
            local_public_key,
            handshake_hash,
            is_initiator,
            |ends| connection.pump(ends),
        );
        SwarmPeer {
            remote_public_key,
            is_initiator,
            remote_addr,
            carrier,
            cipher,
            ended,
        }
    }
}
