//! The plugin's configuration: the `plugins.nova-hypercore` section of an app's
//! `tauri.conf.json`, read by Tauri when the plugin is initialized (the plugin's config
//! type is `Option<Config>`), checked here and mapped onto the manager's
//! [`ManagerConfig`] and the replication endpoints the plugin starts.
//!
//! ```json
//! "plugins": {
//!   "nova-hypercore": {
//!     "storagePath": "logs",
//!     "replication": true,
//!     "bootstrap": ["dht.example.org:49737"],
//!     "listen": "0.0.0.0:7400",
//!     "connect": ["192.168.1.20:7400"],
//!     "maxPayloadBytes": 1048576,
//!     "maxOpenLogs": 128,
//!     "maxConnections": 256,
//!     "coreFormat": "legacy"
//!   }
//! }
//! ```
//!
//! Every field is optional. A value that Tauri's JSON parse accepts but that does not
//! make sense (an empty path, a bootstrap entry without a port, a limit of 0) fails the
//! plugin's setup with a [`HypercoreError`] whose message names the field, e.g.
//! ``schema violation at `plugins.nova-hypercore.bootstrap[1]`: ...``.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use nova_hypercore_manager::{CoreFormat, ManagerConfig};
use nova_hypercore_serialization::{DecodeError, HypercoreError};
use serde::{Deserialize, Serialize};

/// Where the section lives in `tauri.conf.json` (the prefix of every error path).
pub const CONFIG_PATH: &str = "plugins.nova-hypercore";

/// The store's directory under the app data directory when `storagePath` is not set.
pub const DEFAULT_STORAGE_DIR: &str = "nova-hypercore";

/// The `plugins.nova-hypercore` section (camelCase keys; an unknown key is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Root of the store. A relative path is taken relative to the app data directory
    /// (`app.path().app_data_dir()`); default [`DEFAULT_STORAGE_DIR`] there.
    pub storage_path: Option<PathBuf>,
    /// Whether replication starts enabled ([`ManagerConfig::replication_enabled`]).
    /// Default `false`.
    #[serde(default)]
    pub replication: bool,
    /// Hyperswarm DHT bootstrap nodes, `"host:port"` each. Empty (the default): no DHT,
    /// no discovery; public bootstrap nodes are only used when listed here.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// The address the swarm's UDP sockets bind to (an IP address). Default `0.0.0.0`
    /// (every interface). Only used with `bootstrap`.
    pub swarm_host: Option<String>,
    /// A socket address (`"ip:port"`) to serve direct TCP replication on.
    pub listen: Option<String>,
    /// Socket addresses (`"ip:port"`) to keep a direct TCP replication connection to.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Largest payload one append accepts, in bytes ([`ManagerConfig::max_payload_bytes`]).
    pub max_payload_bytes: Option<u64>,
    /// Logs kept open at once ([`ManagerConfig::max_open_logs`]).
    pub max_open_logs: Option<usize>,
    /// Replication connections a listener serves at once
    /// ([`ManagerConfig::max_connections`]).
    pub max_connections: Option<usize>,
    /// The format of new logs ([`ManagerConfig::core_format`]).
    pub core_format: Option<CoreFormatName>,
}

/// The format of new logs, as the config names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoreFormatName {
    /// Hypercore 10's format ([`CoreFormat::Legacy`], the default): read by JS 10 and 11.
    Legacy,
    /// Hypercore 11's format ([`CoreFormat::V1`]): read by JS 11, not by JS 10.
    V1,
}

impl From<CoreFormatName> for CoreFormat {
    fn from(name: CoreFormatName) -> Self {
        match name {
            CoreFormatName::Legacy => CoreFormat::Legacy,
            CoreFormatName::V1 => CoreFormat::V1,
        }
    }
}

/// The replication endpoints the plugin starts at setup (from [`Config::network`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    /// DHT bootstrap nodes, resolved. Empty: no swarm.
    pub bootstrap: Vec<SocketAddr>,
    /// Where the swarm's sockets bind.
    pub swarm_host: Option<IpAddr>,
    /// Direct TCP listener.
    pub listen: Option<SocketAddr>,
    /// Direct TCP peers to keep connections to.
    pub connect: Vec<SocketAddr>,
}

/// A config error at `field` (a path below [`CONFIG_PATH`], e.g. `connect[2]`).
fn invalid(field: &str, message: impl Into<String>) -> HypercoreError {
    HypercoreError::decode(DecodeError::Schema {
        path: format!("{CONFIG_PATH}.{field}"),
        message: message.into(),
    })
}

/// Parses `"ip:port"`.
fn socket_addr(field: &str, text: &str) -> Result<SocketAddr, HypercoreError> {
    text.parse().map_err(|e| {
        invalid(
            field,
            format!("{text:?} is not an \"ip:port\" socket address ({e})"),
        )
    })
}

/// Resolves `"host:port"` (a name is looked up; every address it has is kept). A
/// malformed entry is an error; one that does not resolve (offline, DNS down) is
/// skipped with a warning, so an app starts without a network (with no bootstrap node
/// left the swarm stays off, as with an empty list).
fn host_port(field: &str, text: &str) -> Result<Vec<SocketAddr>, HypercoreError> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(invalid(field, format!("{text:?} is not \"host:port\"")));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(invalid(
            field,
            format!("{text:?} is not \"host:port\" (a host and a port 0..65535)"),
        ));
    }
    match text.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                tracing::warn!(
                    field,
                    node = text,
                    "DHT bootstrap node resolves to no address: skipped"
                );
            }
            Ok(addrs)
        }
        Err(e) => {
            tracing::warn!(field, node = text, error = %e, "DHT bootstrap node does not resolve: skipped");
            Ok(Vec::new())
        }
    }
}

/// `config.max_open_logs` (the manager's check) as our key, `maxOpenLogs`.
fn camel_field(manager_path: &str) -> String {
    let field = manager_path.strip_prefix("config.").unwrap_or(manager_path);
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Config {
    /// Whether the section sets anything [`ManagerConfig`] holds (which
    /// [`init`](crate::init)'s config replaces).
    pub fn sets_manager_fields(&self) -> bool {
        self.storage_path.is_some()
            || self.replication
            || self.max_payload_bytes.is_some()
            || self.max_open_logs.is_some()
            || self.max_connections.is_some()
            || self.core_format.is_some()
    }

    /// The store's directory: `storagePath` as given when absolute, else below
    /// `app_data_dir` (`None` when the platform has none: then only an absolute
    /// `storagePath` works).
    pub fn storage_path(&self, app_data_dir: Option<&Path>) -> Result<PathBuf, HypercoreError> {
        let relative = match &self.storage_path {
            Some(p) if p.as_os_str().is_empty() => {
                return Err(invalid("storagePath", "must not be empty"));
            }
            Some(p) if p.is_absolute() => return Ok(p.clone()),
            Some(p) => p.as_path(),
            None => Path::new(DEFAULT_STORAGE_DIR),
        };
        app_data_dir.map(|dir| dir.join(relative)).ok_or_else(|| {
            invalid(
                "storagePath",
                format!(
                    "{} is relative, and this platform has no app data directory: give an absolute path",
                    relative.display()
                ),
            )
        })
    }

    /// The manager's config: the defaults of [`ManagerConfig`] with this section's
    /// values, checked (an error names the section's key).
    pub fn manager_config(
        &self,
        app_data_dir: Option<&Path>,
    ) -> Result<ManagerConfig, HypercoreError> {
        let mut builder = ManagerConfig::builder()
            .storage_path(self.storage_path(app_data_dir)?)
            .replication_enabled(self.replication);
        if let Some(n) = self.max_payload_bytes {
            builder = builder.max_payload_bytes(n);
        }
        if let Some(n) = self.max_open_logs {
            builder = builder.max_open_logs(n);
        }
        if let Some(n) = self.max_connections {
            builder = builder.max_connections(n);
        }
        if let Some(format) = self.core_format {
            builder = builder.core_format(format.into());
        }
        builder.build().map_err(|e| match e {
            HypercoreError::DeserializationFailed {
                reason: DecodeError::Schema { path, message },
                ..
            } => invalid(&camel_field(&path), message),
            other => other,
        })
    }

    /// The replication endpoints: bootstrap nodes resolved (a host name is looked up
    /// now), the socket addresses parsed.
    pub fn network(&self) -> Result<Network, HypercoreError> {
        let mut bootstrap = Vec::new();
        for (i, node) in self.bootstrap.iter().enumerate() {
            bootstrap.extend(host_port(&format!("bootstrap[{i}]"), node)?);
        }
        let swarm_host = self
            .swarm_host
            .as_deref()
            .map(|h| {
                h.parse::<IpAddr>()
                    .map_err(|e| invalid("swarmHost", format!("{h:?} is not an IP address ({e})")))
            })
            .transpose()?;
        let listen = self
            .listen
            .as_deref()
            .map(|a| socket_addr("listen", a))
            .transpose()?;
        let connect = self
            .connect
            .iter()
            .enumerate()
            .map(|(i, a)| socket_addr(&format!("connect[{i}]"), a))
            .collect::<Result<_, _>>()?;
        Ok(Network {
            bootstrap,
            swarm_host,
            listen,
            connect,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<Config, serde_json::Error> {
        serde_json::from_value(value)
    }

    fn message(e: HypercoreError) -> String {
        assert_eq!(
            e.code(),
            nova_hypercore_serialization::ErrorCode::DeserializationFailed
        );
        e.to_string()
    }

    #[test]
    fn an_empty_section_is_the_managers_defaults_under_the_app_data_dir() {
        let config = parse(json!({})).unwrap();
        assert_eq!(config, Config::default());
        let manager = config.manager_config(Some(Path::new("/data/app"))).unwrap();
        assert_eq!(manager.storage_path, Path::new("/data/app/nova-hypercore"));
        let defaults = ManagerConfig::default();
        assert_eq!(
            ManagerConfig {
                storage_path: defaults.storage_path.clone(),
                ..manager
            },
            defaults
        );
        assert_eq!(config.network().unwrap(), Network::default());
    }

    #[test]
    fn every_key_reaches_the_manager_config() {
        let config = parse(json!({
            "storagePath": "logs/main",
            "replication": true,
            "maxPayloadBytes": 4096,
            "maxOpenLogs": 7,
            "maxConnections": 9,
            "coreFormat": "v1",
        }))
        .unwrap();
        let m = config.manager_config(Some(Path::new("/data/app"))).unwrap();
        assert_eq!(m.storage_path, Path::new("/data/app/logs/main"));
        assert!(m.replication_enabled);
        assert_eq!(m.max_payload_bytes, 4096);
        assert_eq!(m.max_open_logs, 7);
        assert_eq!(m.max_connections, 9);
        assert_eq!(m.core_format, CoreFormat::V1);
        assert!(config.sets_manager_fields());
        assert!(!Config::default().sets_manager_fields());
    }

    #[test]
    fn an_absolute_storage_path_is_kept_and_a_relative_one_needs_an_app_data_dir() {
        let abs = std::env::temp_dir().join("nova-store");
        let config = Config {
            storage_path: Some(abs.clone()),
            ..Config::default()
        };
        assert_eq!(config.storage_path(None).unwrap(), abs);
        assert_eq!(config.storage_path(Some(Path::new("/x"))).unwrap(), abs);

        let relative = Config {
            storage_path: Some("store".into()),
            ..Config::default()
        };
        let e = message(relative.storage_path(None).unwrap_err());
        assert!(e.contains("plugins.nova-hypercore.storagePath"), "{e}");
        let e = message(Config::default().storage_path(None).unwrap_err());
        assert!(e.contains("storagePath"), "{e}");

        let empty = parse(json!({ "storagePath": "" })).unwrap();
        let e = message(empty.storage_path(Some(Path::new("/x"))).unwrap_err());
        assert!(e.contains("storagePath") && e.contains("empty"), "{e}");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_by_the_parse() {
        for (value, needle) in [
            (json!({ "storage": "x" }), "unknown field `storage`"),
            (json!({ "maxOpenLogs": -1 }), "invalid value"),
            (json!({ "replication": "yes" }), "invalid type"),
            (json!({ "coreFormat": "v2" }), "unknown variant `v2`"),
            (json!({ "bootstrap": "a:1" }), "invalid type"),
        ] {
            let e = parse(value.clone()).unwrap_err().to_string();
            assert!(e.contains(needle), "{value}: {e}");
        }
    }

    #[test]
    fn out_of_range_limits_name_the_key() {
        for (value, key) in [
            (json!({ "maxPayloadBytes": 0 }), "maxPayloadBytes"),
            (json!({ "maxPayloadBytes": u64::MAX }), "maxPayloadBytes"),
            (json!({ "maxOpenLogs": 0 }), "maxOpenLogs"),
            (json!({ "maxConnections": 0 }), "maxConnections"),
        ] {
            let e = message(
                parse(value.clone())
                    .unwrap()
                    .manager_config(Some(Path::new("/d")))
                    .unwrap_err(),
            );
            assert!(
                e.contains(&format!("`plugins.nova-hypercore.{key}`")),
                "{value}: {e}"
            );
        }
    }

    #[test]
    fn endpoints_are_parsed_and_bad_ones_name_their_index() {
        let config = parse(json!({
            "bootstrap": ["127.0.0.1:49737", "[::1]:10001"],
            "swarmHost": "127.0.0.1",
            "listen": "127.0.0.1:0",
            "connect": ["127.0.0.1:7400", "[::1]:7401"],
        }))
        .unwrap();
        let net = config.network().unwrap();
        assert_eq!(
            net.bootstrap,
            [
                "127.0.0.1:49737".parse().unwrap(),
                "[::1]:10001".parse().unwrap()
            ] as [SocketAddr; 2]
        );
        assert_eq!(net.swarm_host, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(net.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(net.connect.len(), 2);
        assert_eq!(net.connect[1], "[::1]:7401".parse::<SocketAddr>().unwrap());

        // `localhost` resolves from the hosts file, without a network.
        let named = parse(json!({ "bootstrap": ["localhost:49737"] })).unwrap();
        let resolved = named.network().unwrap().bootstrap;
        assert!(!resolved.is_empty());
        assert!(
            resolved
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 49737)
        );

        // A name that does not resolve (offline, DNS down) is skipped: the app starts.
        let offline = parse(json!({
            "bootstrap": ["does-not-resolve.invalid:49737", "127.0.0.1:49737"]
        }))
        .unwrap();
        assert_eq!(
            offline.network().unwrap().bootstrap,
            ["127.0.0.1:49737".parse::<SocketAddr>().unwrap()]
        );

        for (value, path) in [
            (
                json!({ "bootstrap": ["127.0.0.1:1", "no-port"] }),
                "bootstrap[1]",
            ),
            (json!({ "bootstrap": [":49737"] }), "bootstrap[0]"),
            (json!({ "bootstrap": ["host:99999"] }), "bootstrap[0]"),
            (json!({ "listen": "localhost:7400" }), "listen"),
            (
                json!({ "connect": ["127.0.0.1:1", "127.0.0.1"] }),
                "connect[1]",
            ),
            (json!({ "swarmHost": "0.0.0.0:1" }), "swarmHost"),
        ] {
            let e = message(parse(value.clone()).unwrap().network().unwrap_err());
            assert!(
                e.contains(&format!("`plugins.nova-hypercore.{path}`")),
                "{value}: {e}"
            );
        }
    }

    #[test]
    fn manager_check_paths_become_config_keys() {
        assert_eq!(camel_field("config.max_open_logs"), "maxOpenLogs");
        assert_eq!(camel_field("config.storage_path"), "storagePath");
        assert_eq!(camel_field("x"), "x");
    }
}
