//! The client's holepunch, as JS hyperdht's `lib/connect.js` (`holepunch`,
//! `probeRound`, `roundPunch`) runs it after a handshake whose server offered a
//! holepunch session: rounds of `PEER_HOLEPUNCH` through the server's relay tell each
//! side the other's NAT type and addresses, both punch (`puncher.rs`), and the UDX
//! stream is made on the socket that heard the server.
//!
//! Ours rather than peeroxide-dht's because its client makes the stream on its first
//! socket even when the probe that got through reached another one (a client behind a
//! random NAT opens up to 256: JS writer to Rust reader behind such a NAT never
//! connected), and never asks whether its own NAT is known.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use peeroxide_dht::hyperdht::HyperDhtHandle;
use peeroxide_dht::hyperdht_messages::{
    ERROR_ABORTED, ERROR_NONE, ERROR_TRY_LATER, FIREWALL_RANDOM, FIREWALL_UNKNOWN,
    HolepunchPayload, PEER_HOLEPUNCH, RelayInfo,
};
use peeroxide_dht::messages::Ipv4Peer;
use peeroxide_dht::secure_payload::SecurePayload;
use peeroxide_dht::{Router, RouterError};
use tracing::debug;

use super::lan::Handshake;
use super::puncher::{Puncher, RandomPunches};
use super::stream::{self, Connection};

/// Bound on one try of a `PEER_HOLEPUNCH` round trip through the relay, and tries.
const ROUND_TIMEOUT: Duration = Duration::from_secs(2);
const ROUND_TRIES: u32 = 3;

/// How long we wait for a probe of the server's once both punch (JS: the probes run
/// 10 s consistent, 35 s random).
const PUNCH_WAIT: Duration = Duration::from_secs(20);

/// Bound on opening the secret stream once the stream is connected.
const STREAM_WAIT: Duration = Duration::from_secs(10);

/// Why the holepunch did not connect.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HolepunchError {
    /// The server offered no holepunch session (no relays).
    #[error("the server offers no holepunch session")]
    NotOffered,
    /// A round through the relay failed.
    #[error("PEER_HOLEPUNCH through {relay}: {reason}")]
    Round { relay: String, reason: String },
    /// The server ended the session (error code from its payload).
    #[error("the server aborted the holepunch (error {0})")]
    Aborted(u64),
    /// One side's NAT type stayed unknown (too few DHT nodes answered).
    #[error("NAT type unknown (ours {ours}, theirs {theirs})")]
    Unknown { ours: u64, theirs: u64 },
    /// Both NATs are random: only a blind relay connects them.
    #[error("both NATs are random: a blind relay is needed (not built)")]
    DoubleRandom,
    /// The server did not say it punches.
    #[error("the server does not punch")]
    RemoteNotPunching,
    /// No strategy fits what the server told us.
    #[error("no holepunch strategy fits (ours {ours}, theirs {theirs})")]
    NoStrategy { ours: u64, theirs: u64 },
    /// This swarm punched a random NAT less than 20 s ago (one birthday search at a
    /// time, as JS); the dial is tried again later.
    #[error("a random-NAT punch ran less than 20 s ago: later")]
    TryLater,
    /// The server punched a random NAT less than 20 s ago (JS's `randomPunchInterval`,
    /// ours too) and said TRY_LATER; the dial is tried again later.
    #[error("the server punched for another random NAT less than 20 s ago (TRY_LATER): later")]
    ServerTryLater,
    /// No probe of the server's reached us in time.
    #[error("no probe from the server within {PUNCH_WAIT:?}")]
    Timeout,
    /// A socket, stream or the secret stream failed.
    #[error("{0}")]
    Stream(String),
}

fn router(e: RouterError) -> String {
    e.to_string()
}

/// Holepunches to the server of `hs` from sockets bound to `host`; `nodes`: DHT nodes
/// to sample our NAT from.
pub(crate) async fn connect(
    dht: &HyperDhtHandle,
    hs: &Handshake,
    host: IpAddr,
    nodes: &[Ipv4Peer],
    random: &RandomPunches,
) -> Result<Connection, HolepunchError> {
    let info = hs
        .remote
        .holepunch
        .as_ref()
        .filter(|h| !h.relays.is_empty())
        .ok_or(HolepunchError::NotOffered)?;
    // JS `pickServerRelay`: the relay we went through if the server offers it.
    let relay = info
        .relays
        .iter()
        .find(|r| r.relay_address == hs.relay)
        .unwrap_or(&info.relays[0])
        .clone();
    let session = Session {
        dht,
        target: peeroxide_dht::crypto::hash(&hs.noise.remote_public_key),
        id: info.id,
        relay,
        payload: SecurePayload::new(hs.noise.holepunch_secret),
    };
    let puncher = Puncher::open(true, host)
        .await
        .map_err(|e| HolepunchError::Stream(format!("puncher socket: {e}")))?;
    let server = hs.reply.server_address.clone();

    // Probe round: open our mapping toward the server, learn its NAT and addresses
    // while we sample ours.
    puncher.open_session(&server);
    let (_, first) = tokio::join!(
        puncher.sample(nodes),
        session.round(&puncher, 0, false, Some(server.clone()), None, None)
    );
    let mut reply = first?;
    if reply.firewall == FIREWALL_UNKNOWN || reply.token.is_none() {
        // JS: give the server a moment to sample its own NAT, then ask again.
        tokio::time::sleep(Duration::from_secs(1)).await;
        reply = session
            .round(&puncher, 1, false, Some(server.clone()), None, None)
            .await?;
    }
    let (ours, theirs) = (puncher.firewall(), reply.firewall);
    if ours == FIREWALL_UNKNOWN || theirs == FIREWALL_UNKNOWN {
        session.abort(&puncher).await;
        return Err(HolepunchError::Unknown { ours, theirs });
    }
    if ours >= FIREWALL_RANDOM && theirs >= FIREWALL_RANDOM {
        session.abort(&puncher).await;
        return Err(HolepunchError::DoubleRandom);
    }

    // Punch round: we say we punch (and echo the server's token so it trusts our
    // address); the server starts punching and says so.
    puncher.freeze();
    let token = Some(session.payload.token(&session.relay.peer_address.host));
    session
        .round(&puncher, 2, true, None, token, reply.token)
        .await?;
    if !puncher.remote_punching() {
        return Err(HolepunchError::RemoteNotPunching);
    }
    if puncher.random() && !random.try_start() {
        session.abort(&puncher).await;
        return Err(HolepunchError::TryLater);
    }
    let mut connected = puncher.connected();
    if !puncher.punch() {
        return Err(HolepunchError::NoStrategy { ours, theirs });
    }
    let (index, addr) = tokio::time::timeout(PUNCH_WAIT, connected.wait_for(Option::is_some))
        .await
        .map_err(|_| HolepunchError::Timeout)?
        .map_err(|_| HolepunchError::Timeout)?
        .ok_or(HolepunchError::Timeout)?;
    debug!(index, %addr, ours, theirs, "holepunched");
    let socket = puncher
        .socket(index)
        .ok_or_else(|| HolepunchError::Stream("the socket that heard the server is gone".into()))?;
    drop(puncher);
    open_stream(hs, socket, addr).await
}

/// Our stream to the server's from `socket`, and the secret stream on it.
async fn open_stream(
    hs: &Handshake,
    socket: crate::udx::socket::Endpoint,
    addr: SocketAddr,
) -> Result<Connection, HolepunchError> {
    let remote_id = hs
        .remote
        .udx
        .as_ref()
        .and_then(|u| u32::try_from(u.id).ok())
        .ok_or_else(|| HolepunchError::Stream("the server sent no stream id".into()))?;
    let ids = (hs.local_stream_id, remote_id);
    let socket = stream::Socket::Ours(socket);
    stream::dial(socket, ids, addr, &hs.noise, STREAM_WAIT)
        .await
        .map_err(|e| HolepunchError::Stream(e.to_string()))
}

/// One holepunch session: where its rounds go and how they are sealed.
struct Session<'a> {
    dht: &'a HyperDhtHandle,
    target: [u8; 32],
    id: u64,
    relay: RelayInfo,
    payload: SecurePayload,
}

impl Session<'_> {
    /// Sends one round and returns the server's payload (its NAT, addresses, whether
    /// it punches), after telling the puncher about it.
    async fn round(
        &self,
        puncher: &Puncher,
        round: u64,
        punching: bool,
        remote_address: Option<Ipv4Peer>,
        token: Option<[u8; 32]>,
        remote_token: Option<[u8; 32]>,
    ) -> Result<HolepunchPayload, HolepunchError> {
        let ours = HolepunchPayload {
            error: ERROR_NONE,
            firewall: puncher.firewall(),
            round,
            connected: false,
            punching,
            addresses: puncher.addresses(),
            remote_address,
            token,
            remote_token,
        };
        let theirs = self.send(puncher, &ours).await?;
        if theirs.error == ERROR_TRY_LATER {
            return Err(HolepunchError::ServerTryLater);
        }
        if theirs.error != ERROR_NONE {
            return Err(HolepunchError::Aborted(theirs.error));
        }
        // The server's host is verified when it echoed the token we sent (JS
        // `echoed`): it really is where the relay forwards to.
        let echoed = token.is_some() && theirs.remote_token == token;
        let verified = echoed.then_some(self.relay.peer_address.host.as_str());
        puncher.update_remote(
            theirs.punching,
            theirs.firewall,
            theirs.addresses.as_deref().unwrap_or_default(),
            verified,
        );
        Ok(theirs)
    }

    /// Tells the server we give up (JS `abort`), best effort.
    async fn abort(&self, puncher: &Puncher) {
        let ours = HolepunchPayload {
            error: ERROR_ABORTED,
            firewall: FIREWALL_UNKNOWN,
            round: 0,
            connected: false,
            punching: false,
            addresses: None,
            remote_address: None,
            token: None,
            remote_token: None,
        };
        let _ = self.send(puncher, &ours).await;
    }

    async fn send(
        &self,
        puncher: &Puncher,
        ours: &HolepunchPayload,
    ) -> Result<HolepunchPayload, HolepunchError> {
        let relay = &self.relay.relay_address;
        let failed = |reason: String| HolepunchError::Round {
            relay: format!("{}:{}", relay.host, relay.port),
            reason,
        };
        let sealed = self
            .payload
            .encrypt(ours)
            .map_err(|e| failed(e.to_string()))?;
        let value =
            Router::encode_client_holepunch(self.id, sealed, Some(self.relay.peer_address.clone()))
                .map_err(|e| failed(router(e)))?;
        // From the puncher's socket, as JS: the relay tells the server where that
        // socket is, and a server whose NAT is consistent probes it at once.
        let response = puncher
            .request(
                relay,
                PEER_HOLEPUNCH,
                self.target,
                value,
                ROUND_TIMEOUT,
                ROUND_TRIES,
            )
            .await
            .ok_or_else(|| failed("no reply".into()))?;
        if response.error != 0 {
            return Err(failed(format!("error {}", response.error)));
        }
        let value = response.value.ok_or_else(|| failed("empty reply".into()))?;
        let reply = self
            .dht
            .router()
            .lock()
            .map_err(|_| failed("router lock poisoned".into()))?
            .validate_holepunch_reply(&value, relay, relay, &response.to)
            .map_err(|e| failed(router(e)))?;
        self.payload
            .decrypt(&reply.payload)
            .map_err(|e| failed(e.to_string()))
    }
}
