//! The client side of the swarm: dialling a peer by its key (our own connect,
//! `lan.rs`, again after a pause while the deadline allows; peeroxide-dht's only for a
//! server that asks for a blind relay), and dialling again the peers lookups found
//! when a dial fails.
//!
//! Must not: answer handshakes (`server.rs`) or decide what a connection carries.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use libudx::UdxRuntime;
use nova_hypercore_serialization::HypercoreError;
use peeroxide_dht::hyperdht::{HyperDhtHandle, KeyPair};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::connected::{Claim, Gate, Source, Tracked, admit, lock_connected, watch_end};
use super::stream::Connection;
use super::{SwarmPeer, failed, lan, puncher, short, tap};

/// Delays before the next dials of a peer a lookup found when one fails (JS hyperswarm
/// retries a failed peer too, backing off 1 s, 5 s, 15 s). The last one outlasts a JS
/// server's pause between two random-NAT punches (20 s, it answers TRY_LATER
/// meanwhile).
const FOUND_RETRIES: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(30),
];

/// Pause before a connect tries our own path again when it failed before any server
/// answered (no record yet, relays that did not answer), within the connect's deadline.
const AGAIN_AFTER: Duration = Duration::from_secs(1);

/// Dials peers (our own connect, `lan.rs`; peeroxide-dht's only for a blind relay) and
/// hands the connections out as the swarm's own.
#[derive(Clone)]
pub(super) struct Dialer {
    pub(super) dht: HyperDhtHandle,
    pub(super) key_pair: KeyPair,
    pub(super) local_connection: bool,
    /// Where our sockets bind.
    pub(super) host: IpAddr,
    /// The bootstrap nodes (our puncher samples its NAT from them, among others).
    pub(super) bootstrap: Vec<peeroxide_dht::messages::Ipv4Peer>,
    /// The swarm's random-NAT punches, shared with its server.
    pub(super) random: puncher::RandomPunches,
    /// How our streams run on the DHT's sockets, shared with the server.
    pub(super) tap: tap::Tap,
    pub(super) join_timeout: Duration,
    pub(super) tracked: Tracked,
    pub(super) gate: Arc<Gate>,
    /// Where the swarm's connections go.
    pub(super) peers: mpsc::Sender<SwarmPeer>,
}

impl Dialer {
    /// Connects to `peer` (see [`Swarm::connect`](super::Swarm::connect)).
    pub(super) async fn connect(&self, peer: [u8; 32]) -> Result<SwarmPeer, HypercoreError> {
        let deadline = Instant::now() + self.join_timeout;
        if self.gate.refuses(&peer) {
            return Err(failed(
                "connect: the peer is refused (firewall or ban), or the swarm is suspended".into(),
            ));
        }
        let Some(_claim) = Claim::new(&self.tracked, peer) else {
            return Err(failed(
                "connect: the peer is connected, or being dialled, already".into(),
            ));
        };
        let how = lan::Dial {
            host: self.host,
            local_connection: self.local_connection,
            bootstrap: &self.bootstrap,
            random: self.random.clone(),
            tap: &self.tap,
        };
        // Our own path, again after a pause while the deadline allows when it failed
        // before a server answered (no record yet, relays that did not answer): every
        // connection is then our own stream. Only a server that asks for a blind relay
        // goes to peeroxide-dht's connect (its relay, libudx's stream).
        let connection = loop {
            let failure = match lan::connect(&self.dht, &self.key_pair, peer, &how, deadline).await
            {
                Ok(lan::Lan::Connected(connection)) => break *connection,
                Ok(lan::Lan::BlindRelay) => {
                    debug!("the server asks for a blind relay: peeroxide-dht's connect");
                    let runtime =
                        UdxRuntime::new().map_err(|e| failed(format!("connect runtime: {e}")))?;
                    break self.dht_connect(peer, &runtime, deadline).await?;
                }
                Ok(lan::Lan::NoRecord) => "no DHT node holds the peer's record".to_string(),
                Err(e) if e.before_any_answer() => e.to_string(),
                Err(e) => return Err(failed(format!("connect: {e}"))),
            };
            if Instant::now() + AGAIN_AFTER >= deadline {
                return Err(failed(format!("connect: {failure}")));
            }
            debug!(%failure, "connect failed before a server answered: again");
            tokio::time::sleep(AGAIN_AFTER).await;
            // Meanwhile the peer may have dialled us, or been refused.
            if lock_connected(&self.tracked).has(&peer) {
                return Err(failed("connect: the peer connected meanwhile".into()));
            }
            if self.gate.refuses(&peer) {
                return Err(failed(
                    "connect: the peer is refused (firewall or ban), or the swarm is suspended"
                        .into(),
                ));
            }
        };
        if !admit(&self.tracked, peer, Source::Ours) {
            return Err(failed("connect: the peer connected meanwhile".into()));
        }
        let peer = SwarmPeer::new(connection, true, self.key_pair.public_key);
        watch_end(&self.tracked, &peer);
        Ok(peer)
    }

    /// peeroxide-dht's connect (for a server that asks for a blind relay), until
    /// `deadline`.
    async fn dht_connect(
        &self,
        peer: [u8; 32],
        runtime: &UdxRuntime,
        deadline: Instant,
    ) -> Result<Connection, HypercoreError> {
        let mut opts = peeroxide_dht::hyperdht::ConnectOpts::default();
        opts.local_connection = self.local_connection;
        tokio::time::timeout_at(
            deadline,
            self.dht
                .connect_with_options(&self.key_pair, peer, &[], runtime, opts),
        )
        .await
        .map_err(|_| failed(format!("connect timed out after {:?}", self.join_timeout)))?
        .map(Connection::from_peeroxide)
        .map_err(|e| failed(format!("connect: {e}")))
    }

    /// Dials a peer a lookup found, unless connected or being dialled; tries again
    /// after [`FOUND_RETRIES`] when it fails.
    pub(super) async fn dial_found(self, peer: [u8; 32]) {
        for wait in std::iter::once(Duration::ZERO).chain(FOUND_RETRIES) {
            tokio::time::sleep(wait).await;
            if lock_connected(&self.tracked).has(&peer) {
                return;
            }
            match self.connect(peer).await {
                Ok(connected) => {
                    debug!("swarm connection (dialled)");
                    let _ = self.peers.send(connected).await;
                    return;
                }
                Err(e) => {
                    let attempts = lock_connected(&self.tracked).failed(peer, e.to_string());
                    if attempts > FOUND_RETRIES.len() as u32 {
                        warn!(
                            peer = %short(&peer),
                            attempts,
                            error = %e,
                            "a peer a lookup found stays unreachable (it is dialled again when a lookup finds it again)"
                        );
                    } else {
                        debug!(error = %e, attempts, "dialling a peer found failed");
                    }
                }
            }
        }
    }
}
