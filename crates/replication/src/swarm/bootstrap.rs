//! A DHT bootstrap node hosted in this process ([`BootstrapNode`]): tests, the demo and
//! a LAN get a DHT without any public node.

use std::net::SocketAddr;
use std::time::Duration;

use nova_hypercore_serialization::HypercoreError;
use peeroxide_dht::hyperdht::HyperDhtHandle;
use tokio::task::JoinHandle;

use super::failed;

/// A DHT bootstrap node hosted in this process (not ephemeral, not firewalled).
pub struct BootstrapNode {
    addr: SocketAddr,
    handle: HyperDhtHandle,
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
