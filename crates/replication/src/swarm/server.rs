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
//! A stream's first packet fixes the peer's address (our endpoint's first-packet hook,
//! or libudx's firewall hook on a DHT socket, `tap.rs`); only then
//! is the secret stream started, so our header never goes to an unknown address (the
//! 1 s stall of peeroxide's server, `docs/discovery.md`).
//!
//! Not done here: a blind relay (`relayThrough`) for two random NATs; a client asking
//! for one gets a direct or holepunched answer (see `docs/discovery.md`, "Across NATs").

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libudx::UdxSocket;
use peeroxide_dht::holepuncher::Holepuncher;
use peeroxide_dht::hyperdht::{HyperDhtHandle, KeyPair, ServerEvent};
use peeroxide_dht::hyperdht_messages::{
    ERROR_ABORTED, ERROR_NONE, ERROR_TRY_LATER, ERROR_VERSION_MISMATCH, FIREWALL_CONSISTENT,
    FIREWALL_OPEN, FIREWALL_UNKNOWN, HandshakeMessage, HolepunchInfo, HolepunchMessage,
    HolepunchPayload, MODE_FROM_RELAY, MODE_FROM_SECOND_RELAY, MODE_FROM_SERVER, MODE_REPLY,
    NoisePayload, RelayInfo, SecretStreamInfo, UdxInfo, encode_handshake_to_bytes,
    encode_holepunch_msg_to_bytes,
};
use peeroxide_dht::messages::Ipv4Peer;
use peeroxide_dht::noise::Keypair as NoiseKeypair;
use peeroxide_dht::noise_wrap::{NoiseWrap, NoiseWrapResult};
use peeroxide_dht::secure_payload::SecurePayload;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::debug;

use super::connected::Gate;
use super::puncher::Puncher;
use super::stream::{Connection, RawStream, Socket};
use super::tap::{Tap, unguessable_stream_id};
use crate::udx::socket::Endpoint;

/// How long a handshake waits for the client's first packet (JS
/// `HANDSHAKE_INITIAL_TIMEOUT`).
const FIRST_PACKET_WAIT: Duration = Duration::from_secs(10);

/// How long an answered handshake's noise bytes are remembered after its session ended
/// (JS `HANDSHAKE_CLEAR_WAIT`): copies arriving late through other relays get the same
/// answer instead of a second session.
const CLEAR_WAIT: Duration = Duration::from_secs(10);

/// How long a handshake waits for the client's first packet once both punch (the
/// random strategies run 35 s).
const PUNCH_WAIT: Duration = Duration::from_secs(40);

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
    /// DHT nodes our punchers sample their NAT from (with our relays).
    pub(crate) bootstrap: Vec<Ipv4Peer>,
    /// Who may connect.
    pub(crate) gate: Arc<Gate>,
    /// The swarm's random-NAT punches (one per interval).
    pub(crate) random: super::puncher::RandomPunches,
    /// How our streams run on the DHT's sockets.
    pub(crate) tap: Tap,
}

/// The server: one task that answers what the DHT forwards to us.
pub(crate) struct Server {
    dht: HyperDhtHandle,
    key_pair: KeyPair,
    options: ServerOptions,
    relays: RelaysSeen,
    accepted: mpsc::Sender<Connection>,
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

/// A holepunch session: the client punches toward us while streams wait on our
/// sockets for its first packet.
struct Punch {
    payload: Arc<SecurePayload>,
    puncher: Arc<Puncher>,
    round: u64,
    /// Whether we punch (told to the handshake's waiter).
    punching: watch::Sender<bool>,
    /// Whether our NAT was opened toward the client's puncher (the fast probe).
    opened: bool,
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
        options: ServerOptions,
        relays: RelaysSeen,
        accepted: mpsc::Sender<Connection>,
        mut events: mpsc::UnboundedReceiver<ServerEvent>,
    ) -> tokio::task::JoinHandle<()> {
        let server = Arc::new(Server {
            dht,
            key_pair,
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
                let _ = reply_tx.send(self.on_peer_holepunch(&msg, &peer_address));
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
        let local_id = unguessable_stream_id();

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
        let mut sockets = vec![primary.clone()];
        if let Some(listen) = listen {
            sockets.push(listen);
        }
        let mut puncher = None;
        if self.options.firewalled && !dial_client && error == ERROR_NONE {
            let p = Puncher::open(false, self.options.host)
                .await
                .map_err(|e| debug!(error = %e, "server: no puncher socket"))
                .ok()?;
            let mut nodes = self.dht.current_relay_addresses();
            for node in &self.options.bootstrap {
                if !nodes.contains(node) {
                    nodes.push(node.clone());
                }
            }
            p.sample(&nodes).await;
            puncher = Some(p);
        }
        let mut ports = Vec::with_capacity(sockets.len());
        for socket in &sockets {
            ports.push(socket.local_addr().await.ok()?.port());
        }

        // Open: where the DHT saw our socket first (peeroxide-dht's own list), then our
        // interfaces. Firewalled: our interfaces only (JS: `remoteAddress()` is null
        // when firewalled), for a client on this host or LAN to dial: with the port of
        // the puncher's first socket (ours: it answers the client's ping and our own
        // UDX stream waits there), else the DHT's.
        let addresses4 = if self.options.firewalled {
            let port = match puncher.as_ref().and_then(|p| p.socket(0)) {
                Some(socket) => socket.local_addr().map_or(port, |a| a.port()),
                None => port,
            };
            local_addresses(self.options.host, port)
        } else {
            self.dht.noise_addresses4(port).await
        };
        debug!(
            ?addresses4,
            puncher = puncher.is_some(),
            firewalled = self.options.firewalled,
            dial_client,
            "server: answering a handshake"
        );

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
            // An open client, or one whose handshake reached us directly, is dialled
            // from the DHT's socket (through the tap): JS's client dials us at the same
            // time, at our advertised address or where its relay saw us, both the
            // DHT's sockets, and takes whichever packet comes first; a stream on
            // another socket would lose the race half the time (docs/discovery.md,
            // "The stream under a connection").
            Session::Dial {
                socket: Socket::Dht(sockets.swap_remove(0), self.options.tap.clone()),
                local_id,
                remote_id,
                client: socket_addr(&client)?,
                keys,
            }
        } else {
            // Our id on every socket: the client's first packet may come to any of
            // them (JS's raw stream takes it on any socket). The first to hear from
            // the client wins. The DHT's sockets share one tapped stream; the
            // puncher's sockets (birthday sockets too, as they open) get one each as
            // they come.
            let (first_tx, first_rx) = oneshot::channel();
            let waiting = Waiting {
                first: Arc::new(Mutex::new(Some(first_tx))),
                streams: Arc::new(Mutex::new(Vec::new())),
                local_id,
                remote_id,
            };
            let dhts: Vec<(usize, UdxSocket)> = sockets
                .iter()
                .enumerate()
                .filter(|(i, _)| !ports[..*i].contains(&ports[*i]))
                .map(|(i, socket)| (i, socket.clone()))
                .collect();
            waiting.listen_dht(&self.options.tap, dhts).await;
            let (punching_tx, punching) = watch::channel(false);
            if let Some(p) = puncher {
                let first_puncher_index = sockets.len();
                // The puncher's first socket is the one `addresses4` offers: its stream
                // waits before our answer leaves, so a client's first packet cannot
                // come before it (the others, birthday sockets, come later anyway).
                if let Some(first) = p.socket(0) {
                    waiting.listen(first_puncher_index, first);
                }
                let w = waiting.clone();
                p.on_socket(move |i, socket| {
                    if i != 0 {
                        w.listen(first_puncher_index + i, socket.clone());
                    }
                });
                let payload = Arc::new(SecurePayload::new(keys.holepunch_secret));
                lock(&self.state).punches.insert(
                    holepunch_id,
                    Punch {
                        payload,
                        puncher: Arc::new(p),
                        round: 0,
                        punching: punching_tx,
                        opened: false,
                    },
                );
            }
            Session::Wait {
                waiting,
                first: first_rx,
                punching,
                keys,
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
        let (stream, socket, keys, addr) = match session {
            Session::None => return,
            Session::Dial {
                socket,
                local_id,
                remote_id,
                client,
                keys,
            } => match RawStream::connect(&socket, local_id, remote_id, client).await {
                Ok(stream) => (stream, socket, keys, client),
                Err(e) => {
                    debug!(error = %e, %client, "server: dialling an open client failed");
                    return;
                }
            },
            Session::Wait {
                waiting,
                mut first,
                mut punching,
                keys,
                punch,
            } => {
                // JS: 10 s for the client to dial or start punching; once both punch,
                // as long as the punch runs.
                let mut got = tokio::time::timeout(FIRST_PACKET_WAIT, &mut first).await;
                if got.is_err() && *punching.borrow_and_update() {
                    got = tokio::time::timeout(PUNCH_WAIT, &mut first).await;
                }
                // The puncher (and its sockets but the one a stream took) goes.
                lock(&self.state).punches.remove(&punch);
                let Ok(Ok((won, addr))) = got else {
                    debug!("server: no packet from the client in time (holepunch failed)");
                    return;
                };
                let Some((stream, socket)) = waiting.take(won) else {
                    return;
                };
                (stream, socket, keys, addr)
            }
        };
        let ours = matches!(socket, Socket::Ours(_));
        let peer = match stream.secure(&keys, socket, addr, STREAM_WAIT).await {
            Ok(peer) => peer,
            Err(e) => {
                debug!(error = %e, "server: secret stream failed");
                return;
            }
        };
        debug!(%addr, ours, "server: connection accepted");
        let _ = self.accepted.send(peer).await;
    }

    /// JS `_onpeerholepunch`: the client's probe and punch rounds, relayed to us.
    fn on_peer_holepunch(
        &self,
        msg: &HolepunchMessage,
        peer_address: &Ipv4Peer,
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
        let puncher = punch.puncher.clone();
        if remote.error != ERROR_NONE {
            debug!(
                error = remote.error,
                "server: the client gave up holepunching"
            );
            state.punches.remove(&msg.id);
            return None;
        }
        // The client's host is verified when it echoed the token we gave it for the
        // address the relay saw it at (JS `echoed`).
        let token = punch.payload.token(&peer_address.host);
        let echoed = remote.remote_token == Some(token);
        if remote.round >= punch.round {
            punch.round = remote.round;
            puncher.update_remote(
                remote.punching,
                remote.firewall,
                remote.addresses.as_deref().unwrap_or_default(),
                echoed.then_some(peer_address.host.as_str()),
            );
        }
        // JS's "fast mode", on our socket: JS answers a client that opened its NAT
        // toward where our handshake answer came from (it says so with
        // `remoteAddress`) with a probe from there, and the client's stream then goes
        // to that socket: the DHT's (our stream runs there only through the tap, two
        // loopback hops and no MTU probing). We send the probe
        // from our puncher's socket instead, with a low TTL: it opens our NAT toward
        // the client's puncher (where its round came from) without reaching theirs,
        // so the client's first probe to the puncher address we answer with gets
        // through and is answered at once, and its stream comes to our socket (docs/
        // discovery.md, "The stream under a connection").
        if !punch.opened
            && remote.remote_address.is_some()
            && puncher.firewall() == FIREWALL_CONSISTENT
        {
            punch.opened = true;
            puncher.open_session(peer_address);
        }
        let mut punching = *punch.punching.borrow();
        let mut error = ERROR_NONE;
        // One random-NAT punch (up to 256 sockets) per interval, as JS: a client asking
        // sooner is told TRY_LATER.
        if remote.punching && !punching && puncher.random() && !self.options.random.try_start() {
            debug!("server: a random-NAT punch too soon after the last: TRY_LATER");
            error = ERROR_TRY_LATER;
        } else if remote.punching && !punching {
            punching = puncher.punch();
            punch.punching.send_replace(punching);
            debug!(
                punching,
                ours = puncher.firewall(),
                theirs = remote.firewall,
                "server: punching"
            );
        }
        if puncher.firewall() != FIREWALL_UNKNOWN {
            puncher.freeze();
        }
        let payload = HolepunchPayload {
            error,
            firewall: puncher.firewall(),
            round: punch.round,
            connected: false,
            punching,
            addresses: puncher.addresses(),
            remote_address: None,
            token: Some(token),
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
}

/// What an answered handshake leads to.
enum Session {
    /// An error was answered: nothing follows.
    None,
    /// The client is open: we dial it.
    Dial {
        socket: Socket,
        local_id: u32,
        remote_id: u32,
        client: SocketAddr,
        keys: NoiseWrapResult,
    },
    /// The client dials or punches to us: a stream per socket waits for its first
    /// packet (`first` says which socket, by index, and from where).
    Wait {
        waiting: Waiting,
        first: oneshot::Receiver<(usize, SocketAddr)>,
        /// Turns `true` when both sides punch.
        punching: watch::Receiver<bool>,
        keys: NoiseWrapResult,
        punch: u64,
    },
}

/// Says which socket (by index) heard the client first, and from where.
type FirstPacket = oneshot::Sender<(usize, SocketAddr)>;

/// A waiting stream, the indexes of the sockets it listens on, and one of them.
type Listening = (Vec<usize>, RawStream, Socket);

/// The streams (all with our id: one through the tap for the DHT's sockets, one per
/// puncher socket) waiting for the client's first packet.
#[derive(Clone)]
struct Waiting {
    first: Arc<Mutex<Option<FirstPacket>>>,
    streams: Arc<Mutex<Vec<Listening>>>,
    local_id: u32,
    remote_id: u32,
}

impl Waiting {
    /// Whether the socket `index` is the first to hear the client, from `from`.
    fn first_packet(first: &Mutex<Option<FirstPacket>>, index: usize, from: SocketAddr) -> bool {
        let won = first.lock().unwrap_or_else(|p| p.into_inner()).take();
        match won {
            Some(tx) => tx.send((index, from)).is_ok(),
            None => false,
        }
    }

    /// A stream with our id listening on our socket `endpoint` (number `index`).
    fn listen(&self, index: usize, endpoint: Endpoint) {
        let first = self.first.clone();
        let stream = RawStream::waiting(&endpoint, self.local_id, self.remote_id, move |from| {
            Self::first_packet(&first, index, from)
        });
        match stream {
            Ok(stream) => self.keep(vec![index], stream, Socket::Ours(endpoint)),
            Err(e) => debug!(error = %e, "server: a stream cannot listen on one of our sockets"),
        }
    }

    /// One tapped stream with our id listening on the DHT's sockets `dhts` (each with
    /// its index).
    async fn listen_dht(&self, tap: &Tap, dhts: Vec<(usize, UdxSocket)>) {
        let Some((_, any)) = dhts.first().cloned() else {
            return;
        };
        let first = self.first.clone();
        let stream = RawStream::waiting_tapped(
            tap,
            &dhts,
            self.local_id,
            self.remote_id,
            move |index, from| Self::first_packet(&first, index, from),
        )
        .await;
        match stream {
            Ok(stream) => {
                let indexes = dhts.iter().map(|(i, _)| *i).collect();
                self.keep(indexes, stream, Socket::Dht(any, tap.clone()));
            }
            Err(e) => debug!(error = %e, "server: no stream can listen on the DHT's sockets"),
        }
    }

    fn keep(&self, indexes: Vec<usize>, stream: RawStream, socket: Socket) {
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((indexes, stream, socket));
    }

    /// The stream listening on socket `index` (the others are dropped with `self`).
    fn take(self, index: usize) -> Option<(RawStream, Socket)> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let at = streams.iter().position(|(i, _, _)| i.contains(&index))?;
        let (_, stream, socket) = streams.swap_remove(at);
        Some((stream, socket))
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
