//! The server side of a DHT connection, as JS hyperdht's `lib/server.js` does it: the
//! answers to `PEER_HANDSHAKE` and `PEER_HOLEPUNCH` that the DHT nodes holding our
//! record forward to us (peeroxide-dht's router hands them over as
//! [`ServerEvent`]s once our key's target is registered).
//!
//! What a client gets from us (JS `_addHandshake`):
//! - **We are reachable** (`firewalled: false`, a public host or a forwarded port):
//!   firewall `OPEN`, our address first in `addresses4`, no holepunch; the client dials.
//! - **We may not be** (the default, as JS: a node that cannot tell behaves as
//!   firewalled): firewall `UNKNOWN`, a holepunch session (`id`, and per relay our
//!   address *as that relay saw it*, so that the client's `PEER_HOLEPUNCH` comes back to
//!   us), `addresses4` our interface addresses only (the port of the puncher socket the
//!   stream waits on: a same-host or same-LAN client dials them, JS's LAN path). A
//!   puncher socket samples its NAT mapping (several DHT nodes) before we answer.
//! - **The client is `OPEN`**: we dial it at once (JS `hs.onsocket` for OPEN clients).
//!
//! Duplicate handshakes (a JS client sends one through two or three relays at once and
//! keeps the first answer) get the same answer and share one session, keyed by the noise
//! bytes as JS does; a key is forgotten [`CLEAR_WAIT`] after its session ended.
//!
//! A stream's first packet fixes the peer's address (libudx's firewall hook); only then
//! is the secret stream started, so our header never goes to an unknown address (the
//! 1 s stall of peeroxide's server, `docs/discovery.md`).
//!
//! Not done here: a blind relay (`relayThrough`) for two random NATs; a client asking
//! for one gets a direct or holepunched answer (see `docs/discovery.md`, "Across NATs").

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libudx::{RuntimeHandle, UdxRuntime, UdxSocket, UdxStream};
use peeroxide_dht::holepuncher::{HolepunchEvent, Holepuncher};
use peeroxide_dht::hyperdht::{
    HyperDhtHandle, KeyPair, PeerConnection, ServerEvent, alloc_stream_id,
};
use peeroxide_dht::hyperdht_messages::{
    ERROR_ABORTED, ERROR_NONE, ERROR_VERSION_MISMATCH, FIREWALL_CONSISTENT, FIREWALL_OPEN,
    FIREWALL_RANDOM, FIREWALL_UNKNOWN, HandshakeMessage, HolepunchInfo, HolepunchMessage,
    HolepunchPayload, MODE_FROM_RELAY, MODE_FROM_SECOND_RELAY, MODE_FROM_SERVER, MODE_REPLY,
    NoisePayload, RelayInfo, SecretStreamInfo, UdxInfo, encode_handshake_to_bytes,
    encode_holepunch_msg_to_bytes,
};
use peeroxide_dht::messages::Ipv4Peer;
use peeroxide_dht::noise::Keypair as NoiseKeypair;
use peeroxide_dht::noise_wrap::{NoiseWrap, NoiseWrapResult};
use peeroxide_dht::secret_stream::SecretStream;
use peeroxide_dht::secure_payload::SecurePayload;
use peeroxide_dht::socket_pool::SocketPool;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::debug;

use super::connected::Gate;

/// How long a handshake waits for the client's first packet (JS
/// `HANDSHAKE_INITIAL_TIMEOUT`).
const FIRST_PACKET_WAIT: Duration = Duration::from_secs(10);

/// How long an answered handshake's noise bytes are remembered after its session ended
/// (JS `HANDSHAKE_CLEAR_WAIT`): copies arriving late through other relays get the same
/// answer instead of a second session.
const CLEAR_WAIT: Duration = Duration::from_secs(10);

/// Bound on opening the secret stream once the first packet came.
const STREAM_WAIT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once, at most (each holds a socket while it waits); more
/// are not answered, as a busy JS server does not.
const MAX_PENDING: usize = 256;

/// Our address as each relay (a DHT node holding our record) saw it: what a client
/// puts in its `PEER_HOLEPUNCH` for the relay to forward back to us.
pub(crate) type RelaysSeen = Arc<Mutex<Vec<RelayInfo>>>;

/// How the server runs.
#[derive(Clone)]
pub(crate) struct ServerOptions {
    /// Whether we may be unreachable (answer with a holepunch session, JS's default).
    pub(crate) firewalled: bool,
    /// Host the puncher sockets bind to.
    pub(crate) host: IpAddr,
    /// Who may connect.
    pub(crate) gate: Arc<Gate>,
}

/// The server: one task that answers what the DHT forwards to us.
pub(crate) struct Server {
    dht: HyperDhtHandle,
    key_pair: KeyPair,
    runtime: Arc<RuntimeHandle>,
    options: ServerOptions,
    relays: RelaysSeen,
    accepted: mpsc::Sender<PeerConnection>,
    state: Mutex<State>,
}

/// A handshake's answer: `None` while being made, then the reply bytes (`None`: not
/// answered).
type Answer = watch::Receiver<Option<Option<Vec<u8>>>>;

#[derive(Default)]
struct State {
    /// Answers by the handshake's noise bytes (`None` while being made).
    answers: HashMap<Vec<u8>, Answer>,
    /// Holepunch sessions by id.
    punches: HashMap<u64, Punch>,
    next_id: u64,
}

/// A holepunch session: the client punches toward us while we wait on the puncher
/// socket for its first packet.
struct Punch {
    payload: Arc<SecurePayload>,
    /// Until the client says it punches (then the punch task owns it).
    puncher: Option<Holepuncher>,
    /// What we say our punch addresses are.
    addresses: Vec<Ipv4Peer>,
    round: u64,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn socket_addr(peer: &Ipv4Peer) -> Option<SocketAddr> {
    Some(SocketAddr::new(peer.host.parse().ok()?, peer.port))
}

impl Server {
    /// Starts answering `events` (peeroxide-dht's server events for our target).
    pub(crate) fn spawn(
        dht: HyperDhtHandle,
        key_pair: KeyPair,
        runtime: Arc<RuntimeHandle>,
        options: ServerOptions,
        relays: RelaysSeen,
        accepted: mpsc::Sender<PeerConnection>,
        mut events: mpsc::UnboundedReceiver<ServerEvent>,
    ) -> tokio::task::JoinHandle<()> {
        let server = Arc::new(Server {
            dht,
            key_pair,
            runtime,
            options,
            relays,
            accepted,
            state: Mutex::new(State::default()),
        });
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                server.on_event(event);
            }
        })
    }

    fn on_event(self: &Arc<Self>, event: ServerEvent) {
        match event {
            ServerEvent::PeerHandshake {
                msg,
                from,
                peer_address,
                reply_tx,
                ..
            } => self.on_peer_handshake(msg, from, peer_address, reply_tx),
            ServerEvent::PeerHolepunch {
                msg,
                peer_address,
                reply_tx,
                ..
            } => {
                let server = self.clone();
                tokio::spawn(async move {
                    let dht_firewall = server.dht_firewall().await;
                    let reply = server.on_peer_holepunch(&msg, &peer_address, dht_firewall);
                    let _ = reply_tx.send(reply);
                });
            }
            _ => {}
        }
    }

    /// JS `_onpeerhandshake`: one session per noise message, however many relays
    /// brought it.
    fn on_peer_handshake(
        self: &Arc<Self>,
        msg: HandshakeMessage,
        from: Ipv4Peer,
        peer_address: Option<Ipv4Peer>,
        reply_tx: oneshot::Sender<Option<Vec<u8>>>,
    ) {
        let existing = lock(&self.state).answers.get(&msg.noise).cloned();
        if let Some(mut answer) = existing {
            debug!("server: a copy of a handshake in progress: the same answer");
            tokio::spawn(async move {
                let reply = match answer.wait_for(Option::is_some).await {
                    Ok(reply) => reply.clone().flatten(),
                    Err(_) => None,
                };
                let _ = reply_tx.send(reply);
            });
            return;
        }
        let (tx, rx) = watch::channel(None);
        {
            let mut state = lock(&self.state);
            if state.answers.len() >= MAX_PENDING {
                debug!("server: too many handshakes in progress; not answered");
                let _ = reply_tx.send(None);
                return;
            }
            state.answers.insert(msg.noise.clone(), rx);
        }
        let server = self.clone();
        tokio::spawn(async move {
            let noise = msg.noise.clone();
            server
                .clone()
                .handshake(msg, from, peer_address, reply_tx, tx)
                .await;
            tokio::time::sleep(CLEAR_WAIT).await;
            lock(&server.state).answers.remove(&noise);
        });
    }

    /// JS `_addHandshake`: answers, then waits for the client's first packet and
    /// hands the connection out.
    async fn handshake(
        self: Arc<Self>,
        msg: HandshakeMessage,
        from: Ipv4Peer,
        peer_address: Option<Ipv4Peer>,
        reply_tx: oneshot::Sender<Option<Vec<u8>>>,
        answer: watch::Sender<Option<Option<Vec<u8>>>>,
    ) {
        let answered = self.answer(&msg, &from, peer_address).await;
        let (reply, session) = match answered {
            Some((reply, session)) => (Some(reply), Some(session)),
            None => (None, None),
        };
        let _ = answer.send(Some(reply.clone()));
        let _ = reply_tx.send(reply);
        if let Some(session) = session {
            self.finish(session).await;
        }
    }

    /// Builds our answer and the session it promises (`None`: not answered).
    async fn answer(
        &self,
        msg: &HandshakeMessage,
        from: &Ipv4Peer,
        peer_address: Option<Ipv4Peer>,
    ) -> Option<(Vec<u8>, Session)> {
        let relayed = peer_address.is_some();
        let client = peer_address.unwrap_or_else(|| from.clone());
        let mut noise = NoiseWrap::new_responder(NoiseKeypair {
            public_key: self.key_pair.public_key,
            secret_key: self.key_pair.secret_key,
        });
        let remote = match noise.recv(&msg.noise) {
            Ok(remote) => remote,
            Err(e) => {
                debug!(error = %e, "server: handshake does not decrypt");
                return None;
            }
        };
        let error = match (remote.version, &remote.udx) {
            (1, Some(_)) => ERROR_NONE,
            (1, None) => ERROR_ABORTED,
            _ => ERROR_VERSION_MISMATCH,
        };
        let remote_udx = remote.udx.clone();
        let local_id = alloc_stream_id();
        let runtime = UdxRuntime::shared(self.runtime.clone());

        // Our DHT sockets: the one on our port (answers pings: what a client on this
        // host or LAN dials, JS's `serverSocket`) and the one our requests leave from
        // (the relays saw us there). A firewalled server also stages a puncher socket
        // that has sampled its NAT mapping (the client punches toward it).
        let dial_client = remote.firewall == FIREWALL_OPEN || !relayed;
        let primary = self.dht.server_socket().await.ok()??;
        let listen = self.dht.listen_socket().await.ok().flatten();
        let port = match &listen {
            Some(listen) => listen.local_addr().await.ok()?.port(),
            None => primary.local_addr().await.ok()?.port(),
        };
        let mut sockets = vec![primary];
        if let Some(listen) = listen {
            sockets.push(listen);
        }
        let mut puncher = None;
        if self.options.firewalled && !dial_client && error == ERROR_NONE {
            let (events, _unused) = mpsc::unbounded_channel::<HolepunchEvent>();
            let pool = SocketPool::new(self.options.host.to_string());
            let mut p = Holepuncher::new(&pool, &runtime, true, false, remote.firewall, events)
                .await
                .map_err(|e| debug!(error = %e, "server: no puncher socket"))
                .ok()?;
            p.auto_sample(self.dht.dht()).await;
            sockets.push(p.primary_socket()?.socket.clone());
            puncher = Some(p);
        }
        let mut ports = Vec::with_capacity(sockets.len());
        for socket in &sockets {
            ports.push(socket.local_addr().await.ok()?.port());
        }

        // Open: where the DHT saw our socket first (peeroxide-dht's own list), then our
        // interfaces. Firewalled: our interfaces only (JS: `remoteAddress()` is null
        // when firewalled), for a client on this host or LAN to dial.
        let addresses4 = if self.options.firewalled {
            local_addresses(self.options.host, port)
        } else {
            self.dht.noise_addresses4(port).await
        };

        let (holepunch_id, holepunch) = if puncher.is_some() {
            let id = {
                let mut state = lock(&self.state);
                let id = state.next_id;
                state.next_id = state.next_id.wrapping_add(1);
                id
            };
            let relays = self.relays().await;
            (id, Some(HolepunchInfo { id, relays }))
        } else {
            (0, None)
        };

        let reply = NoisePayload {
            version: 1,
            error,
            firewall: if self.options.firewalled {
                FIREWALL_UNKNOWN
            } else {
                FIREWALL_OPEN
            },
            holepunch,
            addresses4,
            addresses6: vec![],
            udx: Some(UdxInfo {
                version: 1,
                reusable_socket: false,
                id: u64::from(local_id),
                seq: 0,
            }),
            secret_stream: Some(SecretStreamInfo { version: 1 }),
            relay_through: None,
            relay_addresses: None,
        };
        let noise_reply = noise
            .send(&reply)
            .map_err(|e| debug!(error = %e, "server: noise send"))
            .ok()?;
        let keys = noise
            .finalize()
            .map_err(|e| debug!(error = %e, "server: noise finalize"))
            .ok()?;
        // JS asks its firewall before answering; the client's key is known once the
        // handshake is complete (peeroxide-dht's NoiseWrap shows it only then), and a
        // refused client gets no answer at all, as from JS.
        if self.options.gate.refuses(&keys.remote_public_key) {
            debug!("server: a refused peer (firewall, ban or suspended): not answered");
            return None;
        }
        let (mode, reply_peer) = match msg.mode {
            MODE_FROM_RELAY | MODE_FROM_SECOND_RELAY => (MODE_FROM_SERVER, Some(client.clone())),
            _ => (MODE_REPLY, None),
        };
        let bytes = encode_handshake_to_bytes(&HandshakeMessage {
            mode,
            noise: noise_reply,
            peer_address: reply_peer,
            relay_address: None,
        })
        .ok()?;
        if error != ERROR_NONE {
            return Some((bytes, Session::None));
        }
        let remote_id = u32::try_from(remote_udx?.id).ok()?;
        let session = if dial_client {
            let stream = runtime.create_stream(local_id).await.ok()?;
            Session::Dial {
                stream,
                socket: sockets.swap_remove(0),
                remote_id,
                client: socket_addr(&client)?,
                keys,
                runtime,
            }
        } else {
            // One stream per socket, all with our id: the client's first packet may
            // come to any of them (JS's raw stream takes it on any socket; a libudx
            // stream listens on one). The first to hear from the client wins.
            let (first_tx, first_rx) = oneshot::channel();
            let first_tx = Arc::new(Mutex::new(Some(first_tx)));
            let mut streams = Vec::with_capacity(sockets.len());
            for (i, socket) in sockets.iter().enumerate() {
                if ports[..i].contains(&ports[i]) {
                    continue;
                }
                let stream = runtime.create_stream(local_id).await.ok()?;
                let first_tx = first_tx.clone();
                let hooked = stream.set_firewall_hook(socket, remote_id, move |_, port, ip| {
                    let won = first_tx.lock().unwrap_or_else(|p| p.into_inner()).take();
                    match won {
                        Some(tx) => tx.send((i, SocketAddr::new(ip, port))).is_ok(),
                        None => false,
                    }
                });
                if let Err(e) = hooked {
                    debug!(error = %e, "server: a stream cannot listen on one of our sockets");
                    continue;
                }
                streams.push((i, stream));
            }
            if let Some(p) = puncher {
                let payload = Arc::new(SecurePayload::new(keys.holepunch_secret));
                let addresses = p.punch_addresses(port);
                lock(&self.state).punches.insert(
                    holepunch_id,
                    Punch {
                        payload,
                        puncher: Some(p),
                        addresses,
                        round: 0,
                    },
                );
            }
            Session::Wait {
                streams,
                sockets,
                first: first_rx,
                keys,
                runtime,
                punch: holepunch_id,
            }
        };
        Some((bytes, session))
    }

    /// Our relays, each with our address as it saw us; before any answered a ping,
    /// the relays we announced to with our address as the DHT sampled it.
    async fn relays(&self) -> Vec<RelayInfo> {
        let seen = self
            .relays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !seen.is_empty() {
            return seen;
        }
        let Ok(Some(ours)) = self.dht.remote_address().await else {
            return Vec::new();
        };
        self.dht
            .current_relay_addresses()
            .into_iter()
            .map(|relay_address| RelayInfo {
                relay_address,
                peer_address: ours.clone(),
            })
            .collect()
    }

    /// Waits for the client's first packet (or dials it), then hands the connection
    /// out.
    async fn finish(&self, session: Session) {
        let (stream, socket, keys, runtime, addr) = match session {
            Session::None => return,
            Session::Dial {
                stream,
                socket,
                remote_id,
                client,
                keys,
                runtime,
            } => {
                if let Err(e) = stream.connect(&socket, remote_id, client).await {
                    debug!(error = %e, %client, "server: dialling an open client failed");
                    return;
                }
                (stream, socket, keys, runtime, client)
            }
            Session::Wait {
                streams,
                mut sockets,
                first,
                keys,
                runtime,
                punch,
            } => {
                let got = tokio::time::timeout(FIRST_PACKET_WAIT, first).await;
                if let Some(puncher) = lock(&self.state)
                    .punches
                    .remove(&punch)
                    .and_then(|p| p.puncher)
                    .as_mut()
                {
                    puncher.destroy();
                }
                let Ok(Ok((won, addr))) = got else {
                    debug!("server: no packet from the client in time (holepunch failed)");
                    return;
                };
                let Some((_, stream)) = streams.into_iter().find(|(i, _)| *i == won) else {
                    return;
                };
                if won >= sockets.len() {
                    return;
                }
                (stream, sockets.swap_remove(won), keys, runtime, addr)
            }
        };
        let remote_pk = keys.remote_public_key;
        let secret = SecretStream::from_session(
            false,
            stream.into_async_stream(),
            keys.tx,
            keys.rx,
            keys.handshake_hash,
            keys.remote_public_key,
        );
        let secret = match tokio::time::timeout(STREAM_WAIT, secret).await {
            Ok(Ok(secret)) => secret,
            Ok(Err(e)) => {
                debug!(error = %e, "server: secret stream failed");
                return;
            }
            Err(_) => {
                debug!("server: secret stream timed out");
                return;
            }
        };
        debug!(%addr, "server: connection accepted");
        let peer = PeerConnection::with_remote_addr(secret, remote_pk, addr, socket, None);
        drop(runtime);
        let _ = self.accepted.send(peer).await;
    }

    /// JS `_onpeerholepunch`: the client's probe and punch rounds, relayed to us.
    fn on_peer_holepunch(
        &self,
        msg: &HolepunchMessage,
        peer_address: &Ipv4Peer,
        dht_firewall: u64,
    ) -> Option<Vec<u8>> {
        let mut state = lock(&self.state);
        let Some(punch) = state.punches.get_mut(&msg.id) else {
            debug!(id = msg.id, "server: holepunch for no session");
            return None;
        };
        let remote = match punch.payload.decrypt(&msg.payload) {
            Ok(remote) => remote,
            Err(e) => {
                debug!(error = %e, "server: holepunch payload does not decrypt");
                return None;
            }
        };
        if remote.error != ERROR_NONE {
            debug!(
                error = remote.error,
                "server: the client gave up holepunching"
            );
            if let Some(mut p) = punch.puncher.take() {
                p.destroy();
            }
            return None;
        }
        if remote.round >= punch.round {
            punch.round = remote.round;
            if let Some(p) = punch.puncher.as_mut() {
                let addresses = remote.addresses.clone().unwrap_or_default();
                p.update_remote(
                    remote.punching,
                    remote.firewall,
                    &addresses,
                    Some(peer_address.host.as_str()),
                );
            }
        }
        if remote.punching
            && let Some(mut p) = punch.puncher.take()
        {
            // peeroxide-dht's punch runs its whole probe loop (at most 35 s) and then
            // destroys itself; the stream's socket is ours and outlives it.
            let host = self.options.host.to_string();
            let runtime = UdxRuntime::shared(self.runtime.clone());
            tokio::spawn(async move {
                let pool = SocketPool::new(host);
                p.punch(&pool, &runtime).await;
            });
        }
        let firewall =
            match sampled_firewall(&punch.addresses, &local_addresses(self.options.host, 0)) {
                FIREWALL_UNKNOWN => dht_firewall,
                known => known,
            };
        let payload = HolepunchPayload {
            error: ERROR_NONE,
            firewall,
            round: punch.round,
            connected: false,
            punching: remote.punching,
            addresses: Some(punch.addresses.clone()),
            remote_address: Some(peer_address.clone()),
            token: Some(punch.payload.token(&peer_address.host)),
            remote_token: remote.token,
        };
        let encrypted = punch.payload.encrypt(&payload).ok()?;
        let mode = match msg.mode {
            MODE_FROM_RELAY | MODE_FROM_SECOND_RELAY => MODE_FROM_SERVER,
            _ => MODE_REPLY,
        };
        encode_holepunch_msg_to_bytes(&HolepunchMessage {
            mode,
            id: msg.id,
            payload: encrypted,
            peer_address: Some(peer_address.clone()),
        })
        .ok()
    }

    /// What the DHT found our NAT to be (sampled from its nodes' answers).
    async fn dht_firewall(&self) -> u64 {
        tokio::time::timeout(Duration::from_secs(1), self.dht.firewalled())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(FIREWALL_UNKNOWN)
    }
}

/// What an answered handshake leads to.
enum Session {
    /// An error was answered: nothing follows.
    None,
    /// The client is open: we dial it.
    Dial {
        stream: UdxStream,
        socket: UdxSocket,
        remote_id: u32,
        client: SocketAddr,
        keys: NoiseWrapResult,
        runtime: UdxRuntime,
    },
    /// The client dials or punches to us: a stream per socket waits for its first
    /// packet (`first` says which socket, by index, and from where).
    Wait {
        streams: Vec<(usize, UdxStream)>,
        sockets: Vec<UdxSocket>,
        first: oneshot::Receiver<(usize, SocketAddr)>,
        keys: NoiseWrapResult,
        runtime: UdxRuntime,
        punch: u64,
    },
}

/// What our puncher's NAT is, from the addresses it offers (`punch_addresses`: its
/// NAT samples, then our interface addresses; peeroxide-dht keeps its classification
/// private): no sample, unknown; port 0, random; else consistent (or open).
fn sampled_firewall(offered: &[Ipv4Peer], local: &[Ipv4Peer]) -> u64 {
    let sampled: Vec<&Ipv4Peer> = offered
        .iter()
        .filter(|a| !local.iter().any(|l| l.host == a.host))
        .collect();
    match sampled.first() {
        None => FIREWALL_UNKNOWN,
        Some(a) if a.port == 0 => FIREWALL_RANDOM,
        Some(_) => FIREWALL_CONSISTENT,
    }
}

/// Our interface addresses with `port` (JS `localAddresses`: IPv4, not loopback; a
/// loopback-bound server offers loopback only, as it can be reached there only).
fn local_addresses(host: IpAddr, port: u16) -> Vec<Ipv4Peer> {
    if host.is_loopback() {
        return vec![Ipv4Peer {
            host: host.to_string(),
            port,
        }];
    }
    Holepuncher::local_addresses(port)
}

/// Asks each of our relays (the DHT nodes that took our announce on our key's target)
/// how it sees us: the `peerAddress` a client's `PEER_HOLEPUNCH` is forwarded to (JS
/// keeps the announce reply's `to`; peeroxide-dht's announce drops it, a ping tells the
/// same).
pub(crate) async fn observe_relays(dht: &HyperDhtHandle) -> Vec<RelayInfo> {
    let mut seen = Vec::new();
    for relay in dht.current_relay_addresses() {
        let pinged = tokio::time::timeout(
            Duration::from_secs(3),
            dht.dht().ping(&relay.host, relay.port),
        )
        .await;
        match pinged {
            Ok(Ok(reply)) => {
                if let Some(to) = reply.to {
                    seen.push(RelayInfo {
                        relay_address: relay,
                        peer_address: to,
                    });
                }
            }
            _ => {
                debug!(relay = %format!("{}:{}", relay.host, relay.port), "relay did not answer a ping")
            }
        }
    }
    seen
}
