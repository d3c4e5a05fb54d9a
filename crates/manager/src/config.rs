//! [`ManagerConfig`]: the spec's `HypercoreManagerConfig` with its defaults, validated.

use std::path::PathBuf;
use std::time::Duration;

use garde::Validate;
use nova_hypercore_managed_core::{CoreFormat, Durability};
use nova_hypercore_serialization::{DecodeError, HypercoreError};

/// Largest accepted `max_payload_bytes`: 16 MiB minus 64 KiB, the largest block that
/// replication can carry ([`nova_hypercore_replication::MAX_WIRE_BLOCK`]: one block
/// travels in one wire frame, whose length is a uint24, in JS as here). A larger
/// payload could be stored but never reach a peer.
pub const MAX_PAYLOAD_LIMIT: u64 = nova_hypercore_replication::MAX_WIRE_BLOCK;

/// Default [`ManagerConfig::max_open_files`]: half of the smallest common desktop soft
/// limit (macOS, 256 descriptors), leaving the other half for sockets (one per peer
/// connection), the store's own short-lived files and the app.
pub const DEFAULT_MAX_OPEN_FILES: usize = 128;

/// Smallest accepted [`ManagerConfig::max_open_files`]: the five files of one log
/// (`oplog`, `tree`, `bitfield`, `data`, and `sizes`, the block sizes kept for a local
/// rebuild).
pub const MIN_OPEN_FILES: usize = 5;

/// How a [`crate::HypercoreManager`] is set up. Build with [`ManagerConfig::builder`] (or
/// take [`ManagerConfig::default`]); every value is checked before a manager uses it.
#[derive(Debug, Clone, PartialEq, Validate)]
pub struct ManagerConfig {
    /// Root of the store. Default `.nova/hypercore`.
    #[garde(custom(non_empty_path))]
    pub storage_path: PathBuf,
    /// Whether replication starts enabled. Default `false`.
    #[garde(skip)]
    pub replication_enabled: bool,
    /// Largest payload one append accepts, in bytes. Default 1 MiB.
    #[garde(range(min = 1, max = MAX_PAYLOAD_LIMIT))]
    pub max_payload_bytes: u64,
    /// More than this many errors for one log within the window raise a `health-warning`.
    /// Default 10.
    #[garde(skip)]
    pub health_warning_threshold: u32,
    /// The sliding window of the health check. Default 60 s.
    #[garde(custom(positive_duration))]
    pub health_warning_window: Duration,
    /// What an acknowledged append survives. Default [`Durability::Flush`].
    #[garde(skip)]
    pub durability: Durability,
    /// Logs kept open at once (their state in memory); others are closed and reopened
    /// on use. Replication-enabled logs are held open by their sessions beyond this
    /// cap; their files still obey [`max_open_files`](Self::max_open_files). Default 128.
    #[garde(range(min = 1))]
    pub max_open_logs: usize,
    /// File descriptors all logs of the store hold open at once, whatever holds the
    /// logs (the pool, replication sessions, handles): each log file is opened when an
    /// I/O needs it and the least recently used file of any log is closed beyond this
    /// ([`FileBudget`](nova_hypercore_managed_core::FileBudget)). At least
    /// [`MIN_OPEN_FILES`] (one log's files). Default [`DEFAULT_MAX_OPEN_FILES`] (128):
    /// half of macOS's default soft limit of 256 descriptors, leaving the rest for
    /// sockets and the app.
    #[garde(range(min = MIN_OPEN_FILES))]
    pub max_open_files: usize,
    /// Events buffered per subscriber before a slow one starts lagging. Default 1024.
    #[garde(range(min = 1))]
    pub event_capacity: usize,
    /// Operation records kept for `recent_events`. Default 1024.
    #[garde(skip)]
    pub recent_events_capacity: usize,
    /// The format of logs `get_log` creates (an existing log keeps the format its files
    /// record). Default [`CoreFormat::Legacy`]: readable by JS hypercore 10 and by JS
    /// hypercore 11 (which follows a legacy core's key as it is); a [`CoreFormat::V1`]
    /// log (hypercore 11's default, named by its manifest's hash) is readable by JS 11
    /// and by us, not by JS 10. See docs/discovery.md, "Who reads what".
    #[garde(skip)]
    pub core_format: CoreFormat,
    /// Replication connections a [`listen`](crate::HypercoreManager::listen)er serves at
    /// once; a connection past it is closed as it is accepted. Default 256.
    #[garde(range(min = 1))]
    pub max_connections: usize,
    /// Of those, from one IP address (a peer opening connection after connection).
    /// Default 16.
    #[garde(range(min = 1))]
    pub max_connections_per_address: usize,
    /// A replication connection (listened, dialled or from the swarm) on which no log's
    /// channel is open for this long is closed: a peer that completes the handshake and
    /// then shares nothing holds no connection for ever. Default 60 s
    /// ([`nova_hypercore_replication::DEFAULT_IDLE_TIMEOUT`]).
    #[garde(custom(positive_duration))]
    pub connection_idle_timeout: Duration,
}

#[allow(clippy::ptr_arg)] // garde hands custom validators a reference to the field type
fn non_empty_path(path: &PathBuf, _ctx: &()) -> garde::Result {
    if path.as_os_str().is_empty() {
        Err(garde::Error::new("must not be empty"))
    } else {
        Ok(())
    }
}

fn positive_duration(d: &Duration, _ctx: &()) -> garde::Result {
    if d.is_zero() {
        Err(garde::Error::new("must be longer than zero"))
    } else {
        Ok(())
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            storage_path: PathBuf::from(".nova/hypercore"),
            replication_enabled: false,
            max_payload_bytes: 1_048_576,
            health_warning_threshold: 10,
            health_warning_window: Duration::from_secs(60),
            durability: Durability::Flush,
            max_open_logs: 128,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            event_capacity: 1024,
            recent_events_capacity: 1024,
            core_format: CoreFormat::Legacy,
            max_connections: 256,
            max_connections_per_address: 16,
            connection_idle_timeout: nova_hypercore_replication::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl ManagerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ManagerConfigBuilder {
        ManagerConfigBuilder(ManagerConfig::default())
    }

    /// Checks every field. A violation is `DESERIALIZATION_FAILED` (the config does not
    /// fit its schema) naming the field, as the TypeScript side's Zod parse would.
    pub fn check(&self) -> Result<(), HypercoreError> {
        self.validate().map_err(|report| {
            let (path, message) = report
                .iter()
                .next()
                .map(|(p, e)| (p.to_string(), e.message().to_owned()))
                .unwrap_or_else(|| (".".into(), "invalid".into()));
            HypercoreError::decode(DecodeError::Schema {
                path: format!("config.{path}"),
                message,
            })
        })
    }
}

/// Builder for [`ManagerConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct ManagerConfigBuilder(ManagerConfig);

impl ManagerConfigBuilder {
    /// Root of the store.
    pub fn storage_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.0.storage_path = path.into();
        self
    }
    /// Whether replication starts enabled.
    pub fn replication_enabled(mut self, on: bool) -> Self {
        self.0.replication_enabled = on;
        self
    }
    /// Largest payload one append accepts.
    pub fn max_payload_bytes(mut self, n: u64) -> Self {
        self.0.max_payload_bytes = n;
        self
    }
    /// Errors per log tolerated within the window.
    pub fn health_warning_threshold(mut self, n: u32) -> Self {
        self.0.health_warning_threshold = n;
        self
    }
    /// The health check's sliding window.
    pub fn health_warning_window(mut self, d: Duration) -> Self {
        self.0.health_warning_window = d;
        self
    }
    /// Durability of appends.
    pub fn durability(mut self, d: Durability) -> Self {
        self.0.durability = d;
        self
    }
    /// Logs kept open at once.
    pub fn max_open_logs(mut self, n: usize) -> Self {
        self.0.max_open_logs = n;
        self
    }
    /// Log file descriptors open at once, across all logs.
    pub fn max_open_files(mut self, n: usize) -> Self {
        self.0.max_open_files = n;
        self
    }
    /// Per-subscriber event buffer.
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.0.event_capacity = n;
        self
    }
    /// Size of the recent-events ring.
    pub fn recent_events_capacity(mut self, n: usize) -> Self {
        self.0.recent_events_capacity = n;
        self
    }
    /// The format of new logs.
    pub fn core_format(mut self, format: CoreFormat) -> Self {
        self.0.core_format = format;
        self
    }
    /// Connections a listener serves at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.0.max_connections = n;
        self
    }

    /// Connections a listener serves at once from one IP address.
    pub fn max_connections_per_address(mut self, n: usize) -> Self {
        self.0.max_connections_per_address = n;
        self
    }

    /// How long a connection with no open channel is kept.
    pub fn connection_idle_timeout(mut self, timeout: Duration) -> Self {
        self.0.connection_idle_timeout = timeout;
        self
    }

    /// The validated config.
    pub fn build(self) -> Result<ManagerConfig, HypercoreError> {
        self.0.check()?;
        Ok(self.0)
    }
}
