//! What the seeder knows about itself ([`SeedState`]) and its status report, served on
//! `GET /status` and logged on SIGUSR1.
//!
//! Owns: the report's JSON shape. Must not: change what is seeded.
//! Used by: `seed` and its HTTP endpoint.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use nova_hypercore_manager::{HypercoreManager, ManagedLog};
use serde_json::{Value, json};

use crate::commands::status::LogSummary;

/// The seeder's state, shared with the status endpoint.
#[derive(Debug)]
pub struct SeedState {
    /// The store.
    pub manager: HypercoreManager,
    /// The logs seeded.
    pub logs: Mutex<Vec<ManagedLog>>,
    /// Replicas whose replication is paused (over `--max-storage`).
    pub paused: Mutex<BTreeSet<String>>,
    /// When the seeder started.
    pub started: Instant,
    /// The direct TCP address served, if any.
    pub listen: Option<SocketAddr>,
    /// Whether the DHT is on.
    pub dht: bool,
    /// `--max-storage`.
    pub max_storage: Option<u64>,
    /// `--max-peers`.
    pub max_peers: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SeedState {
    /// The logs seeded now.
    pub fn logs(&self) -> Vec<ManagedLog> {
        lock(&self.logs).clone()
    }

    /// The replicas paused now.
    pub fn paused(&self) -> BTreeSet<String> {
        lock(&self.paused).clone()
    }

    /// Marks `name` paused or not; returns whether that changed anything.
    pub fn set_paused(&self, name: &str, paused: bool) -> bool {
        let mut set = lock(&self.paused);
        if paused {
            set.insert(name.to_owned())
        } else {
            set.remove(name)
        }
    }

    /// The status report (`GET /status`).
    pub async fn report(&self) -> Value {
        let paused = self.paused();
        let mut logs = Vec::new();
        for log in self.logs() {
            let name = log.name().to_string();
            let summary = match LogSummary::of(&log).await {
                Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                Err(e) => json!({ "name": name, "error": e.to_string() }),
            };
            let peers = self
                .manager
                .replication_status(&name)
                .await
                .map(|s| s.active_peers)
                .unwrap_or(0);
            let mut summary = summary;
            if let Some(obj) = summary.as_object_mut() {
                obj.insert("peers".into(), json!(peers));
                obj.insert("paused".into(), json!(paused.contains(&name)));
            }
            logs.push(summary);
        }
        let status = self.manager.status().await;
        json!({
            "uptimeSeconds": self.started.elapsed().as_secs(),
            "logs": logs,
            "activePeers": status.active_peers,
            "maxPeers": self.max_peers,
            "diskUsageBytes": status.disk_usage_bytes,
            "maxStorageBytes": self.max_storage,
            "storageFull": !paused.is_empty(),
            "listen": self.listen.map(|a| a.to_string()),
            "dht": self.dht,
        })
    }
}
