//! One joined topic, as JS hyperswarm's `lib/peer-discovery.js` keeps it: a server
//! announces the topic (and itself, on its key's target, so that the nodes holding that
//! record forward handshakes to it), a client looks the topic up and hands the peers
//! found to the dialler; again every 10 minutes (JS `REFRESH_INTERVAL`, with jitter).
//!
//! A client that finds nobody looks again soon (100 ms doubling to 2 s, for up to
//! [`EMPTY_LOOKUP_BOUND`]): a peer that joins as a server right after us is found in
//! seconds, not at the next refresh.

use std::time::Duration;

use peeroxide_dht::crypto::hash;
use peeroxide_dht::hyperdht::{HyperDhtHandle, KeyPair};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::server::{RelaysSeen, observe_relays};

/// JS hyperswarm's refresh interval.
const REFRESH: Duration = Duration::from_secs(600);

/// At most this much is added to [`REFRESH`] (JS: up to 2 minutes).
const REFRESH_JITTER_MS: u64 = 120_000;

/// How long a client keeps looking a topic up while it finds nobody.
const EMPTY_LOOKUP_BOUND: Duration = Duration::from_secs(30);

/// What a topic's task needs.
#[derive(Clone)]
pub(crate) struct Discovery {
    pub(crate) dht: HyperDhtHandle,
    pub(crate) key_pair: KeyPair,
    pub(crate) server: bool,
    pub(crate) client: bool,
    /// Our address as our relays see it (the server's holepunch answers use it).
    pub(crate) relays: RelaysSeen,
    /// Peers found, for the dialler.
    pub(crate) found: mpsc::UnboundedSender<[u8; 32]>,
    /// Bound on one announce or lookup.
    pub(crate) timeout: Duration,
}

impl Discovery {
    /// Refreshes `topic` until aborted; `refreshed` turns `true` after the first round
    /// (JS `flushed()`); a client that found nobody then looks again soon.
    pub(crate) async fn run(self, topic: [u8; 32], refreshed: watch::Sender<bool>) {
        let mut first = true;
        loop {
            let found_any = self.refresh(topic).await;
            refreshed.send_replace(true);
            if first && self.client && !found_any {
                self.look_again(topic).await;
            }
            first = false;
            tokio::time::sleep(REFRESH + jitter()).await;
        }
    }

    /// One round: announce (server), look up (client); whether anyone was found.
    async fn refresh(&self, topic: [u8; 32]) -> bool {
        if self.server {
            self.announce(topic).await;
        }
        self.client && self.look_up(topic).await
    }

    /// Looks `topic` up again (100 ms doubling to 2 s) until somebody is found or
    /// [`EMPTY_LOOKUP_BOUND`] passed.
    async fn look_again(&self, topic: [u8; 32]) {
        let deadline = Instant::now() + EMPTY_LOOKUP_BOUND;
        let mut delay = Duration::from_millis(100);
        while Instant::now() + delay <= deadline {
            tokio::time::sleep(delay).await;
            if self.look_up(topic).await {
                return;
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Looks `topic` up and hands the peers found to the dialler; whether any was.
    async fn look_up(&self, topic: [u8; 32]) -> bool {
        let found = self.lookup(topic).await;
        let any = !found.is_empty();
        for pk in found {
            let _ = self.found.send(pk);
        }
        any
    }

    /// Announces the topic and ourselves (JS `Announcer`), then asks our relays how
    /// they see us.
    async fn announce(&self, topic: [u8; 32]) {
        let relays = self.dht.current_relay_addresses();
        let ours = hash(&self.key_pair.public_key);
        let (on_topic, on_key) = tokio::join!(
            tokio::time::timeout(
                self.timeout,
                self.dht.announce(topic, &self.key_pair, &relays)
            ),
            tokio::time::timeout(self.timeout, self.dht.announce(ours, &self.key_pair, &[])),
        );
        for (what, result) in [("topic", on_topic), ("key", on_key)] {
            match result {
                Ok(Ok(_)) => debug!(what, "announced"),
                Ok(Err(e)) => warn!(what, error = %e, "announce failed"),
                Err(_) => warn!(what, "announce timed out"),
            }
        }
        let seen = observe_relays(&self.dht).await;
        debug!(relays = seen.len(), "relays observed");
        if !seen.is_empty() {
            *self.relays.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        }
    }

    /// The peers announcing `topic` (not us; empty when the lookup fails).
    async fn lookup(&self, topic: [u8; 32]) -> Vec<[u8; 32]> {
        lookup_peers(&self.dht, topic, self.key_pair.public_key, self.timeout).await
    }
}

/// The public keys of the peers announcing `topic` (not `me`; empty when the lookup
/// fails or times out).
pub(crate) async fn lookup_peers(
    dht: &HyperDhtHandle,
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

/// Up to [`REFRESH_JITTER_MS`], from the clock's nanoseconds (spreading refreshes
/// needs no better randomness).
fn jitter() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    Duration::from_millis(nanos % REFRESH_JITTER_MS)
}
