//! Reaching peers: the explicit bootstrap list and starting direct TCP and the DHT for
//! a command (`share`, `follow`, `seed`, `tail --follow`).
//!
//! Owns: where the bootstrap list comes from (`--bootstrap`, `NOVA_HYPERCORE_BOOTSTRAP`,
//! `bootstrap` in the store's `config.toml`; nothing else: no list means no DHT), the
//! [`SwarmOptions`] a command runs with, the listener and connectors it keeps.
//! Must not: choose logs to share (the commands do) or speak the protocol (manager).
//! Used by: the commands that replicate.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use nova_hypercore_manager::{Connector, HypercoreManager, Listener, SwarmOptions};
use serde::Deserialize;

use crate::cli::NetArgs;
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// The environment variable with bootstrap nodes (`host:port,host:port`).
pub const BOOTSTRAP_ENV: &str = "NOVA_HYPERCORE_BOOTSTRAP";
/// The store's config file.
pub const CONFIG_FILE: &str = "config.toml";

/// `config.toml` in the store directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// DHT bootstrap nodes, `host:port`.
    #[serde(default)]
    bootstrap: Vec<String>,
}

/// The bootstrap nodes: `--bootstrap` if given, else the environment, else the store's
/// config file; resolved to addresses. Empty: no DHT.
pub async fn bootstrap_list(flags: &[String], store_dir: &Path) -> CliResult<Vec<SocketAddr>> {
    let names: Vec<String> = if !flags.is_empty() {
        flags.to_vec()
    } else if let Some(env) = std::env::var(BOOTSTRAP_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        env.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        read_config(&store_dir.join(CONFIG_FILE))?.bootstrap
    };
    let mut addrs = Vec::new();
    for name in names {
        let found = tokio::net::lookup_host(name.as_str()).await.map_err(|e| {
            CliError::Usage(format!("bootstrap node {name:?}: {e} (expected host:port)"))
        })?;
        addrs.extend(found.filter(SocketAddr::is_ipv4));
    }
    Ok(addrs)
}

fn read_config(path: &Path) -> CliResult<Config> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| CliError::BadFile {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(CliError::storage(path, e)),
    }
}

/// What keeps a command's connections up; dropping it stops them.
#[derive(Debug, Default)]
pub struct Network {
    /// The direct TCP listener, when `--listen` was given.
    pub listener: Option<Listener>,
    _connectors: Vec<Connector>,
    /// Whether the DHT is on.
    pub dht: bool,
}

impl Network {
    /// Starts direct TCP (`--listen`, `--connect`) and, with bootstrap nodes, the DHT
    /// (server: announce; client: look up). Prints the listen address (`listening on
    /// ADDR`) and whether the DHT is on. Call after the logs are enabled for
    /// replication or before: enabling later joins their topics.
    pub async fn start(
        manager: &HypercoreManager,
        net: &NetArgs,
        bootstrap: Vec<SocketAddr>,
        server: bool,
        out: Output,
    ) -> CliResult<Network> {
        let mut network = Network::default();
        for addr in &net.connect {
            network._connectors.push(manager.connect(*addr));
        }
        let swarm = if bootstrap.is_empty() {
            if net.listen.is_none() && net.connect.is_empty() {
                tracing::warn!(
                    "no bootstrap nodes and no --listen/--connect: no peer can be reached (pass --bootstrap HOST:PORT, set {BOOTSTRAP_ENV}, or put `bootstrap = [..]` in the store's {CONFIG_FILE})"
                );
            } else {
                tracing::info!("no bootstrap nodes configured: the DHT stays off");
            }
            None
        } else {
            let loopback = bootstrap.iter().all(|a| a.ip().is_loopback());
            let host = net.host.unwrap_or(if loopback {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            });
            let mut options = SwarmOptions::new(bootstrap.clone()).host(host);
            options.server = server;
            options.max_peers = net.max_peers;
            Some(options)
        };
        // --listen on a reachable address doubles as the swarm's advertised direct
        // endpoint (Rust peers the DHT introduces move to it); on 0.0.0.0 it is a plain
        // listener. A loopback DHT server without --listen gets a fresh direct endpoint,
        // as the demo does.
        let mut swarm_direct = false;
        match (&net.listen, swarm.is_some() && server) {
            (Some(addr), true) if !addr.ip().is_unspecified() => swarm_direct = true,
            (Some(addr), _) => {
                let listener = manager.listen(*addr).await?;
                announce_listener(out, listener.local_addr());
                network.listener = Some(listener);
            }
            (None, _) => {}
        }
        let Some(mut options) = swarm else {
            return Ok(network);
        };
        if swarm_direct {
            options.direct = net.listen;
        } else if server && net.listen.is_none() && options.host.is_loopback() {
            options.direct = Some(SocketAddr::new(options.host, 0));
        }
        manager.start_swarm(options).await?;
        network.dht = true;
        if swarm_direct && let Some(bound) = manager.direct_listen_addr().await {
            announce_listener(out, bound);
        }
        out.line(
            format!(
                "on the DHT (bootstrap {})",
                bootstrap
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            serde_json::json!({
                "event": "dht",
                "bootstrap": bootstrap.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        );
        Ok(network)
    }
}

/// Prints the bound listen address (tests and scripts read it from stdout).
fn announce_listener(out: Output, bound: SocketAddr) {
    out.line(
        format!("listening on {bound}"),
        serde_json::json!({ "event": "listening", "addr": bound.to_string() }),
    );
}
