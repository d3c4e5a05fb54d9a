//! The LAN path of a DHT connect, decided as JS hyperdht's client decides it.
//!
//! After the `PEER_HANDSHAKE` through a DHT node (the relay), JS's client dials the
//! server directly when the handshake was relayed and the relay saw both peers at the
//! same host (`connect.js`: `c.lan && relayed && clientAddress.host ===
//! serverAddress.host`, where `clientAddress` is our address in the relay's reply). A JS
//! server that sees the same thing takes its own LAN path: it starts no holepuncher and
//! waits to be dialled. peeroxide-dht 1.7.3's client decides "same host" only from its
//! own NAT-sampled address, which nobody gets on a DHT of one node, so it holepunches a
//! server that never answers (`docs/discovery.md`, "One-node DHT").
//!
//! [`connect`] does the handshake itself, on peeroxide-dht's public API, and decides
//! with the relay-observed hosts, as JS's client does: not relayed, the server open, or
//! not holepunchable: dial the address the server offers (or where the relay saw it);
//! relayed and the same host as the relay saw us: dial the server's interface
//! addresses (the LAN rule); otherwise holepunch (`holepunch.rs`). A peer no DHT node
//! holds a record of gives [`Lan::NoRecord`] (the caller may try again); a server that
//! asks for a blind relay, [`Lan::BlindRelay`] (the caller then uses peeroxide-dht's
//! connect, which builds one).
//!
//! Time: [`connect`] takes a deadline that bounds every step up to the handshake's
//! answer. Once a server answered, the dial is finished even past the deadline (within
//! [`ANSWERED_BOUND`]), because cancelling it would leave the server's side reserved;
//! if it fails, the error is [`LanError::Answered`]: the caller must not follow up
//! with another handshake to that server now (it would be refused).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use peeroxide_dht::hyperdht::{HyperDhtError, HyperDhtHandle, KeyPair};
use peeroxide_dht::hyperdht_messages::{
    FIREWALL_OPEN, FIREWALL_UNKNOWN, NoisePayload, PEER_HANDSHAKE, SecretStreamInfo, UdxInfo,
};
use peeroxide_dht::messages::Ipv4Peer;
use peeroxide_dht::noise::Keypair as NoiseKeypair;
use peeroxide_dht::noise_wrap::{NoiseWrap, NoiseWrapError, NoiseWrapResult};
use peeroxide_dht::rpc::{DhtError, UserRequestParams};
use peeroxide_dht::{HandshakeResult, Router, RouterError};
use tokio::time::Instant;
use tracing::debug;

use super::stream::{self, Connection, StreamError};
use super::tap::{Tap, unguessable_stream_id};
use crate::udx::socket::Endpoint;

/// Bound on one `PEER_HANDSHAKE` through a relay (peeroxide-dht's own bound).
const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Bound on one ping (our address as the relay saw it; a dial target's liveness).
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Bound on opening the secret stream once dialled (a server that does not take our
/// stream, e.g. one that refused the handshake as a duplicate, never answers).
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Relays (DHT nodes holding the server's record) tried, at most.
const MAX_RELAYS: usize = 3;

/// Bound on finishing a handshake the server answered (our address from the relay,
/// pinging the candidates, opening the stream), whatever the caller's deadline.
pub(crate) const ANSWERED_BOUND: Duration = Duration::from_secs(20);

/// Why the LAN path did not connect (for the logs; see [`LanError::Answered`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum LanError {
    /// The deadline passed before any server answered a handshake.
    #[error("deadline passed during {0}")]
    Deadline(&'static str),
    /// Asking the DHT (our address, FIND_PEER) failed.
    #[error("{what}: {source}")]
    Dht {
        what: &'static str,
        #[source]
        source: HyperDhtError,
    },
    /// The `PEER_HANDSHAKE` request through a relay failed (or timed out).
    #[error("PEER_HANDSHAKE through {relay}: {source}")]
    Request {
        relay: String,
        #[source]
        source: DhtError,
    },
    /// The relay answered with an error code.
    #[error("PEER_HANDSHAKE error {0}")]
    HandshakeCode(u64),
    /// The relay's reply had no value.
    #[error("empty PEER_HANDSHAKE reply")]
    EmptyReply,
    /// Encoding our handshake or checking the reply failed.
    #[error("handshake message: {0}")]
    Router(#[source] RouterError),
    /// peeroxide-dht's router lock was poisoned.
    #[error("router lock poisoned")]
    RouterPoisoned,
    /// The Noise handshake failed.
    #[error("noise: {0}")]
    Noise(#[source] NoiseWrapError),
    /// The server refused our handshake.
    #[error("server refused (version {version}, error {error})")]
    Refused { version: u64, error: u64 },
    /// The server's payload has no usable UDX stream id.
    #[error("server sent no usable UDX stream id")]
    NoStreamId,
    /// The relay reported no address to dial.
    #[error("the relay reported no usable server address")]
    NoServerAddress,
    /// A ping to the relay did not tell us our address.
    #[error("the relay did not tell us our address")]
    NoOwnAddress,
    /// No candidate address answered a ping.
    #[error("none of the server's addresses answered")]
    NoCandidate,
    /// A UDP socket of ours could not be bound.
    #[error("binding a UDP socket on {host}: {source}")]
    Bind {
        host: IpAddr,
        #[source]
        source: std::io::Error,
    },
    /// The stream to the server (or the secret stream on it) failed.
    #[error("{0}")]
    Stream(#[from] StreamError),
    /// Finishing an answered handshake took longer than [`ANSWERED_BOUND`].
    #[error("finishing took longer than {ANSWERED_BOUND:?}")]
    Finishing,
    /// The holepunch after the handshake failed.
    #[error("holepunch: {0}")]
    Holepunch(#[source] super::holepunch::HolepunchError),
    /// A server answered our handshake (it reserved its side for us) and the dial then
    /// failed: another handshake to it now would be refused as "already connected".
    #[error("the server answered our handshake, then: {0}")]
    Answered(#[source] Box<LanError>),
}

impl LanError {
    /// Whether it failed before any server answered, for a reason that may pass (the
    /// DHT, a relay that did not answer or had no record yet): worth trying again. A
    /// server's refusal, a bad answer, or anything after an answer is final.
    pub(crate) fn before_any_answer(&self) -> bool {
        matches!(
            self,
            LanError::Dht { .. }
                | LanError::Request { .. }
                | LanError::HandshakeCode(_)
                | LanError::EmptyReply
        )
    }
}

/// What is left until `deadline`, or the error naming `step` when nothing is.
fn remaining(deadline: Instant, step: &'static str) -> Result<Duration, LanError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(LanError::Deadline(step))
    } else {
        Ok(left)
    }
}

/// Bounds `fut` by `deadline`.
async fn until<T>(
    deadline: Instant,
    step: &'static str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, LanError> {
    tokio::time::timeout_at(deadline, fut)
        .await
        .map_err(|_| LanError::Deadline(step))
}

/// How we dial: where our sockets bind, whether to try a same-host peer's private
/// addresses, and DHT nodes to sample our NAT from.
pub(crate) struct Dial<'a> {
    pub(crate) host: std::net::IpAddr,
    pub(crate) local_connection: bool,
    pub(crate) bootstrap: &'a [Ipv4Peer],
    /// The swarm's random-NAT punches (one per interval).
    pub(crate) random: super::puncher::RandomPunches,
    /// How our streams run on the DHT's sockets.
    pub(crate) tap: &'a Tap,
}

/// What [`connect`] did.
pub(crate) enum Lan {
    /// Connected (directly, by the LAN path or holepunched).
    Connected(Box<Connection>),
    /// No DHT node holds the peer's record (yet): nothing to hand a handshake to.
    NoRecord,
    /// The server answered asking for a blind relay (`relayThrough`), which we do not
    /// build: peeroxide-dht's connect does.
    BlindRelay,
}

/// A completed `PEER_HANDSHAKE` through `relay`.
pub(crate) struct Handshake {
    /// The relay it went through.
    pub(crate) relay: Ipv4Peer,
    /// Where the relay saw both of us.
    pub(crate) reply: HandshakeResult,
    /// The server's payload.
    pub(crate) remote: NoisePayload,
    /// The keys.
    pub(crate) noise: NoiseWrapResult,
    /// Our stream's id, as we offered it.
    pub(crate) local_stream_id: u32,
}

/// Connects to `peer` by JS hyperdht's LAN path when it applies (see the module docs).
/// `local_connection` as in `SwarmOptions::local_connection`: when `false` only the
/// address the relay saw the server at is dialled, never the private ones it advertises.
/// Every step up to a server's answer is bounded by `deadline`; an answered handshake
/// is finished within [`ANSWERED_BOUND`] instead. Errors other than
/// [`LanError::Answered`] leave the server free: the caller may try again.
pub(crate) async fn connect(
    dht: &HyperDhtHandle,
    key_pair: &KeyPair,
    peer: [u8; 32],
    how: &Dial<'_>,
    deadline: Instant,
) -> Result<Lan, LanError> {
    let target = peeroxide_dht::crypto::hash(&peer);
    let replies = until(deadline, "FIND_PEER", dht.query_find_peer(target))
        .await?
        .map_err(|source| LanError::Dht {
            what: "FIND_PEER",
            source,
        })?;
    let mut relays: Vec<Ipv4Peer> = Vec::new();
    // DHT nodes our puncher may sample its NAT from: the ones that answered, then the
    // bootstrap nodes.
    let mut nodes: Vec<Ipv4Peer> = Vec::new();
    for reply in replies {
        if !nodes.contains(&reply.from) {
            nodes.push(reply.from.clone());
        }
        if reply.value.is_some() && !relays.contains(&reply.from) {
            relays.push(reply.from);
        }
    }
    for node in how.bootstrap {
        if !nodes.contains(node) {
            nodes.push(node.clone());
        }
    }
    if relays.is_empty() {
        return Ok(Lan::NoRecord);
    }
    let mut last = LanError::Deadline("PEER_HANDSHAKE");
    for relay in relays.into_iter().take(MAX_RELAYS) {
        match handshake(dht, key_pair, peer, target, relay, deadline).await {
            Ok(hs) => {
                // Answered: finish whatever the deadline says (see the module docs).
                return match tokio::time::timeout(ANSWERED_BOUND, finish(dht, hs, how, &nodes))
                    .await
                {
                    Ok(Ok(lan)) => Ok(lan),
                    Ok(Err(e)) => Err(LanError::Answered(Box::new(e))),
                    Err(_) => Err(LanError::Answered(Box::new(LanError::Finishing))),
                };
            }
            Err(e @ LanError::Deadline(_)) => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Decides on a completed handshake, and dials when the LAN path applies.
async fn finish(
    dht: &HyperDhtHandle,
    hs: Handshake,
    dial_opts: &Dial<'_>,
    nodes: &[Ipv4Peer],
) -> Result<Lan, LanError> {
    let local_connection = dial_opts.local_connection;
    let holepunchable = hs
        .remote
        .holepunch
        .as_ref()
        .is_some_and(|h| !h.relays.is_empty());
    if hs.remote.relay_through.is_some() {
        return Ok(Lan::BlindRelay);
    }
    if !hs.reply.relayed || hs.remote.firewall == FIREWALL_OPEN || !holepunchable {
        // peeroxide-dht's direct path (its same-host check is false here: our address
        // is unknown): the first public address advertised, else where the relay saw
        // the server.
        let addr = hs
            .remote
            .addresses4
            .iter()
            .filter_map(socket_addr)
            .find(|a| a.port() != 0 && !bogon(*a))
            .or_else(|| socket_addr(&hs.reply.server_address))
            .ok_or(LanError::NoServerAddress)?;
        debug!(%addr, "server reachable without holepunching: dialling it");
        return dial(dht, dial_opts.tap, &hs, dial_opts.host, addr)
            .await
            .map(|c| Lan::Connected(Box::new(c)));
    }
    // Our address as the relay sees it: JS reads it from the handshake reply's `to`,
    // which peeroxide-dht's request does not return; a ping to the relay does.
    let ours = ping(dht, &hs.relay).await.ok_or(LanError::NoOwnAddress)?;
    if ours.host != hs.reply.server_address.host {
        debug!(
            ours = %ours.host,
            server = %hs.reply.server_address.host,
            "another host: holepunching"
        );
        return super::holepunch::connect(dht, &hs, dial_opts.host, nodes, &dial_opts.random)
            .await
            .map(|c| Lan::Connected(Box::new(c)))
            .map_err(LanError::Holepunch);
    }
    let candidates = dial_targets(&hs, local_connection, dht).await;
    debug!(
        server = %format!("{}:{}", hs.reply.server_address.host, hs.reply.server_address.port),
        candidates = ?candidates,
        "same host as the relay saw it: dialling the server directly (LAN path)"
    );
    for addr in candidates {
        if ping(
            dht,
            &Ipv4Peer {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
        )
        .await
        .is_none()
        {
            debug!(%addr, "LAN path: no answer to a ping");
            continue;
        }
        return dial(dht, dial_opts.tap, &hs, dial_opts.host, addr)
            .await
            .map(|c| Lan::Connected(Box::new(c)));
    }
    Err(LanError::NoCandidate)
}

/// Sends our Noise handshake to the server through `relay` and checks the reply; the
/// request is bounded by `deadline` (and [`HANDSHAKE_TIMEOUT_MS`]).
async fn handshake(
    dht: &HyperDhtHandle,
    key_pair: &KeyPair,
    peer: [u8; 32],
    target: [u8; 32],
    relay: Ipv4Peer,
    deadline: Instant,
) -> Result<Handshake, LanError> {
    let keys = NoiseKeypair {
        public_key: key_pair.public_key,
        secret_key: key_pair.secret_key,
    };
    let mut noise = NoiseWrap::new_initiator(keys, peer);
    let local_stream_id = unguessable_stream_id();
    let addresses4 = match until(deadline, "our addresses", dht.local_port()).await? {
        Ok(port) => until(deadline, "our addresses", dht.noise_addresses4(port)).await?,
        Err(_) => Vec::new(),
    };
    let payload = NoisePayload {
        version: 1,
        error: 0,
        firewall: FIREWALL_UNKNOWN,
        holepunch: None,
        addresses4,
        addresses6: Vec::new(),
        udx: Some(UdxInfo {
            version: 1,
            reusable_socket: true,
            id: u64::from(local_stream_id),
            seq: 0,
        }),
        secret_stream: Some(SecretStreamInfo { version: 1 }),
        relay_through: None,
        relay_addresses: None,
    };
    let sent = noise.send(&payload).map_err(LanError::Noise)?;
    let value = Router::encode_client_handshake(sent, None, None).map_err(LanError::Router)?;
    // The request's own timeout, not a cancellation: a reply that arrives is used.
    let left = remaining(deadline, "PEER_HANDSHAKE")?;
    let timeout_ms = u64::try_from(left.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, HANDSHAKE_TIMEOUT_MS);
    let mut request = UserRequestParams::default();
    request.command = PEER_HANDSHAKE;
    request.target = Some(target);
    request.value = Some(value);
    request.timeout_ms = Some(timeout_ms);
    request.retries = Some(0);
    let response = dht
        .dht()
        .request(request, &relay.host, relay.port)
        .await
        .map_err(|source| LanError::Request {
            relay: format!("{}:{}", relay.host, relay.port),
            source,
        })?;
    if response.error != 0 {
        return Err(LanError::HandshakeCode(response.error));
    }
    let value = response.value.ok_or(LanError::EmptyReply)?;
    let reply = dht
        .router()
        .lock()
        .map_err(|_| LanError::RouterPoisoned)?
        .validate_handshake_reply(&value, &relay, &response.from)
        .map_err(LanError::Router)?;
    let remote = noise.recv(&reply.noise).map_err(LanError::Noise)?;
    let noise = noise.finalize().map_err(LanError::Noise)?;
    if remote.version != 1 || remote.error != 0 {
        return Err(LanError::Refused {
            version: remote.version,
            error: remote.error,
        });
    }
    if remote.udx.is_none() {
        return Err(LanError::NoStreamId);
    }
    Ok(Handshake {
        relay,
        reply,
        remote,
        noise,
        local_stream_id,
    })
}

/// Where to dial, best first: with `local_connection`, the server's advertised
/// addresses that are not reserved (JS's `onlyNonReserved`), those sharing most leading
/// octets with one of ours first (JS's `matchAddress`); without it, only the advertised
/// ones on the host the relay saw the server at (a firewalled server of ours offers its
/// puncher's socket there, where our own UDX stream waits; no other interface is
/// tried); then the address the relay saw the server at.
async fn dial_targets(
    hs: &Handshake,
    local_connection: bool,
    dht: &HyperDhtHandle,
) -> Vec<SocketAddr> {
    let seen = socket_addr(&hs.reply.server_address);
    let ours: Vec<Ipv4Peer> = if local_connection {
        match dht.local_port().await {
            Ok(port) => dht.noise_addresses4(port).await,
            Err(_) => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let advertised: Vec<Ipv4Peer> = if local_connection {
        hs.remote.addresses4.clone()
    } else {
        hs.remote
            .addresses4
            .iter()
            .filter(|a| seen.is_some_and(|s| socket_addr(a).is_some_and(|a| a.ip() == s.ip())))
            .cloned()
            .collect()
    };
    order_targets(&ours, &advertised, seen)
}

/// [`dial_targets`]' order: `advertised` minus reserved addresses, most leading octets
/// shared with one of `ours` first (stable otherwise), then `seen`; no duplicates.
fn order_targets(
    ours: &[Ipv4Peer],
    advertised: &[Ipv4Peer],
    seen: Option<SocketAddr>,
) -> Vec<SocketAddr> {
    let ours: Vec<Ipv4Addr> = ours.iter().filter_map(|a| a.host.parse().ok()).collect();
    let mut targets: Vec<(usize, SocketAddr)> = advertised
        .iter()
        .filter_map(socket_addr)
        .filter(|a| a.port() != 0)
        .filter_map(|a| match a.ip() {
            IpAddr::V4(ip) if !reserved(ip) => {
                let shared = ours
                    .iter()
                    .map(|o| leading_octets(*o, ip))
                    .max()
                    .unwrap_or(0);
                Some((shared, a))
            }
            _ => None,
        })
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.0));
    let mut out: Vec<SocketAddr> = Vec::new();
    for addr in targets.into_iter().map(|(_, a)| a).chain(seen) {
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// An IPv4 peer address as a socket address.
fn socket_addr(peer: &Ipv4Peer) -> Option<SocketAddr> {
    Some(SocketAddr::from((
        peer.host.parse::<Ipv4Addr>().ok()?,
        peer.port,
    )))
}

/// JS `bogon`'s `isBogon` for IPv4 (private or reserved), as peeroxide-dht's direct
/// path filters the advertised addresses.
fn bogon(addr: SocketAddr) -> bool {
    let IpAddr::V4(ip) = addr.ip() else {
        return true;
    };
    let o = ip.octets();
    reserved(ip)
        || ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || (o[0] == 100 && (64..=127).contains(&o[1]))
}

/// How many leading octets two addresses share.
fn leading_octets(a: Ipv4Addr, b: Ipv4Addr) -> usize {
    a.octets()
        .iter()
        .zip(b.octets())
        .take_while(|(x, y)| **x == *y)
        .count()
}

/// JS `bogon`'s `isReserved` for IPv4: never a peer's address.
fn reserved(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 0
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || ip.is_documentation()
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        || o[0] >= 224
}

/// Pings `to` from the DHT socket: our address as `to` saw it, or `None` when it did
/// not answer.
async fn ping(dht: &HyperDhtHandle, to: &Ipv4Peer) -> Option<Ipv4Peer> {
    match tokio::time::timeout(PING_TIMEOUT, dht.dht().ping(&to.host, to.port)).await {
        Ok(Ok(pong)) => pong.to,
        _ => None,
    }
}

/// Opens our stream to the server's at `addr` and starts the secret stream with the
/// handshake's keys. After a relayed handshake the server waits for our first packet
/// and takes it on any socket (JS `server.js`, ours alike), so the stream is on a
/// socket of ours bound to `host`. After a direct one a JS server sends first, to
/// where our handshake came from (the DHT's socket, `server.js` `direct`): the stream
/// is on that socket, through the tap (`tap.rs`).
async fn dial(
    dht: &HyperDhtHandle,
    tap: &Tap,
    hs: &Handshake,
    host: IpAddr,
    addr: SocketAddr,
) -> Result<Connection, LanError> {
    let remote_id = hs
        .remote
        .udx
        .as_ref()
        .map(|u| u.id)
        .ok_or(LanError::NoStreamId)?;
    let remote_id = u32::try_from(remote_id).map_err(|_| LanError::NoStreamId)?;
    let dht_socket = if hs.reply.relayed {
        None
    } else {
        dht.server_socket().await.ok().flatten()
    };
    let socket = match dht_socket {
        Some(socket) => stream::Socket::Dht(socket, tap.clone()),
        None => {
            let (endpoint, _other_traffic) = Endpoint::bind(SocketAddr::new(host, 0))
                .await
                .map_err(|source| LanError::Bind { host, source })?;
            stream::Socket::Ours(endpoint)
        }
    };
    let ids = (hs.local_stream_id, remote_id);
    let connection = stream::dial(socket, ids, addr, &hs.noise, STREAM_TIMEOUT).await?;
    debug!(%addr, relayed = hs.reply.relayed, "LAN path: connected");
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_matches_js_bogon_is_reserved() {
        for r in [
            "0.0.0.0",
            "192.0.0.5",
            "192.0.2.1",
            "198.18.0.1",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(reserved(r.parse().unwrap()), "{r}");
        }
        for ok in [
            "127.0.0.1",
            "10.0.0.2",
            "192.168.1.4",
            "172.16.0.1",
            "88.99.3.86",
        ] {
            assert!(!reserved(ok.parse().unwrap()), "{ok}");
        }
    }

    fn peer(host: &str, port: u16) -> Ipv4Peer {
        Ipv4Peer {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn targets_best_match_first_then_where_the_relay_saw_the_server() {
        let ours = [peer("192.168.122.238", 1), peer("10.0.0.5", 1)];
        let advertised = [
            peer("172.17.0.1", 7),
            peer("192.168.0.23", 7),
            peer("192.168.122.1", 7),
            peer("0.0.0.0", 7),
            peer("not an address", 7),
            peer("10.9.9.9", 0),
        ];
        let seen = "127.0.0.1:9".parse().ok();
        let got = order_targets(&ours, &advertised, seen);
        let want: Vec<SocketAddr> = [
            "192.168.122.1:7",
            "192.168.0.23:7",
            "172.17.0.1:7",
            "127.0.0.1:9",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn targets_without_local_connection_are_where_the_relay_saw_the_server() {
        let seen = "127.0.0.1:9".parse().ok();
        assert_eq!(order_targets(&[], &[], seen), vec![seen.unwrap()]);
        // The relay's view is tried once, even when the server advertised it too.
        let got = order_targets(&[], &[peer("127.0.0.1", 9)], seen);
        assert_eq!(got, vec![seen.unwrap()]);
    }

    #[test]
    fn bogon_is_private_or_reserved() {
        for b in [
            "127.0.0.1:1",
            "10.1.2.3:1",
            "192.168.0.1:1",
            "100.64.0.1:1",
            "169.254.1.1:1",
            "0.0.0.0:1",
        ] {
            assert!(bogon(b.parse().unwrap()), "{b}");
        }
        for ok in ["88.99.3.86:49737", "100.128.0.1:1"] {
            assert!(!bogon(ok.parse().unwrap()), "{ok}");
        }
    }

    #[tokio::test]
    async fn nothing_is_started_past_the_deadline() {
        let past = Instant::now();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(matches!(
            remaining(past, "PEER_HANDSHAKE"),
            Err(LanError::Deadline("PEER_HANDSHAKE"))
        ));
        let never = std::future::pending::<()>();
        assert!(matches!(
            until(past, "FIND_PEER", never).await,
            Err(LanError::Deadline("FIND_PEER"))
        ));
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(remaining(later, "x").is_ok());
        assert_eq!(until(later, "x", async { 7 }).await.ok(), Some(7));
    }

    #[test]
    fn an_answered_failure_keeps_its_cause() {
        use std::error::Error as _;
        let e = LanError::Answered(Box::new(LanError::NoCandidate));
        let cause = e.source().map(ToString::to_string);
        assert_eq!(
            cause.as_deref(),
            Some("none of the server's addresses answered")
        );
        assert!(e.to_string().contains("answered our handshake"));
    }

    #[test]
    fn leading_octets_counts_the_shared_prefix() {
        let a: Ipv4Addr = "192.168.122.238".parse().unwrap();
        assert_eq!(leading_octets(a, "192.168.122.1".parse().unwrap()), 3);
        assert_eq!(leading_octets(a, "192.168.0.23".parse().unwrap()), 2);
        assert_eq!(leading_octets(a, "10.0.0.1".parse().unwrap()), 0);
    }
}
