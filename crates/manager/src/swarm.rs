//! The manager's discovery: a Hyperswarm DHT swarm whose topics are the discovery keys
//! of the enabled logs (spec: `enableReplication` → `Hyperswarm.join(discoveryKey)` →
//! on connection → replicate).

use std::sync::Arc;

use nova_hypercore_replication::swarm::{Swarm, SwarmOptions, SwarmPeer};
use nova_hypercore_serialization::HypercoreError;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::manager::{HypercoreManager, Result};

/// A running swarm and the task that hands its connections to replication.
pub(crate) struct Running {
    swarm: Swarm,
    accept: JoinHandle<()>,
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
        let (swarm, mut peers) = Swarm::start(options).await.inspect_err(|e| {
            self.shared().report_error("swarm", e);
        })?;
        let key = swarm.public_key();
        let manager = self.clone();
        let accept = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    peer = peers.recv() => {
                        let Some(peer) = peer else { break };
                        let m = manager.clone();
                        sessions.spawn(async move { m.replicate_peer(peer).await });
                    }
                    Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                }
            }
        });
        for dk in self.hub().enabled_keys() {
            if let Err(e) = swarm.join(dk).await {
                self.shared().report_error("swarm", &e);
            }
        }
        *self.swarm_slot().lock().await = Some(Running { swarm, accept });
        info!(public_key = %crate::replication::hex(&key), "swarm started");
        Ok(Some(key))
    }

    /// Stops discovery: leaves every topic and closes the swarm's connections.
    pub async fn stop_swarm(&self) {
        let running = self.swarm_slot().lock().await.take();
        if let Some(running) = running {
            running.accept.abort();
            running.swarm.destroy().await;
            debug!("swarm stopped");
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

    /// Joins `discovery_key` if a swarm runs (called when a log is enabled).
    pub(crate) async fn swarm_join(&self, discovery_key: [u8; 32]) -> Result<()> {
        let slot = self.swarm_slot().lock().await;
        if let Some(running) = slot.as_ref() {
            running.swarm.join(discovery_key).await?;
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

    async fn replicate_peer(&self, peer: SwarmPeer) -> std::result::Result<(), HypercoreError> {
        debug!(
            peer = %crate::replication::hex(&peer.remote_public_key),
            initiator = peer.is_initiator,
            "replicating over a swarm connection"
        );
        self.replicate_encrypted(peer.cipher, peer.ended).await
    }
}
