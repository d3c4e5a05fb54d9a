//! [`HypercoreManager`]: the store, its lifecycle, and the per-name log registry.
//!
//! Longer than the house ~800 lines: the manager's public API is one type whose
//! methods are the spec's `HypercoreManager` interface; its parts live in their own
//! modules already (`swarm`, `replication`, `log`, `keys`, `config`). Next split when it
//! grows: direct mode (`listen` / `connect`) into its own module.

mod download;
mod free_disk;
mod replica;

pub(crate) use free_disk::allocated_bytes;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nova_hypercore_managed_core::encryption::EncryptionKey;
use nova_hypercore_managed_core::{CoreFormat, Durability, FileBudget, SigningKey};
use nova_hypercore_observability::{Observability, ObservabilityConfig, now_ms};
use nova_hypercore_serialization::{
    AggregateMetrics, HypercoreError, HypercoreLogEvent, LogName, MAX_LOG_NAME_BYTES,
    ManagerStatus, ReplicationStatus, StorageMetadata,
};
use tokio::sync::{RwLock, broadcast};
use tracing::info;

use crate::backoff::Backoff;
use crate::config::ManagerConfig;
use crate::events::ManagerEvent;
use crate::keys::{self, DEFAULT_NAMESPACE};
use crate::log::{LogKey, ManagedLog, Pool, core_key};
use crate::replication::{Hub, HubSource};
use crate::replication_state;

pub(crate) type Result<T, E = HypercoreError> = std::result::Result<T, E>;

/// First pause of the accept loop after a failed accept; doubles per failure in a row.
pub(crate) const ACCEPT_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(10);
/// Longest pause of the accept loop between failed accepts.
pub(crate) const ACCEPT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// A running TCP listener ([`HypercoreManager::listen`]); dropping it stops serving.
#[derive(Debug)]
pub struct Listener {
    local: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A kept-up outgoing connection ([`HypercoreManager::connect`]); dropping it stops it.
#[derive(Debug)]
pub struct Connector {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How far along a download is: of a whole log
/// ([`HypercoreManager::download_progress`]) or of a range
/// ([`HypercoreManager::download_range_progress`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DownloadProgress {
    /// Whole log: blocks `0..have` are stored here. Range: blocks of it stored here.
    pub have: u64,
    /// Whole log: blocks the signed log has (as far as this replica knows). Range: its
    /// number of blocks.
    pub total: u64,
    /// Verified blocks received by this process's sessions.
    pub blocks_received: u64,
    /// Receive rate in payload bytes per second, once measurable.
    pub bytes_per_second: Option<f64>,
}

/// What every log handle shares with its manager.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ManagerConfig,
    pub(crate) obs: Observability,
    pub(crate) events: broadcast::Sender<ManagerEvent>,
    pub(crate) pool: Pool,
    /// The cap on log file descriptors every log of the store opens under.
    pub(crate) files: FileBudget,
    /// A key file was written without syncing `keys/` (`Durability::Flush`): the
    /// store's close syncs it (`keys::ensure_key_file`).
    pub(crate) keys_dir_unsynced: AtomicBool,
}

impl Shared {
    /// Sends to every subscriber; no subscriber is fine, a slow one lags (never blocks).
    pub(crate) fn emit(&self, event: ManagerEvent) {
        let _ = self.events.send(event);
    }

    /// Records an error, emits `error`, and `health-warning` if the threshold is crossed.
    pub(crate) fn report_error(&self, log_name: &str, error: &HypercoreError) {
        let warning = self.obs.record_error(log_name, error);
        self.emit(ManagerEvent::Error {
            log_name: log_name.to_owned(),
            error: error.to_payload(),
        });
        if let Some(w) = warning {
            self.emit(ManagerEvent::HealthWarning {
                log_name: w.log_name,
                error_count: w.error_count,
            });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    Ready,
    Closed,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    primary_key: [u8; 32],
    logs: HashMap<LogName, ManagedLog>,
    /// One gate per log being opened: opens of the same name wait for each other, other
    /// logs and `status` never wait for file work (no store-wide lock across it).
    opening: HashMap<LogName, Arc<tokio::sync::Mutex<()>>>,
    metadata: Option<StorageMetadata>,
    replication_enabled: bool,
}

/// A Corestore-style store of named, signed, append-only logs (spec: HypercoreManager).
///
/// Layout under `storage_path` (JS corestore 6 can open `corestore/` as its own store
/// when given the primary key: `new Corestore(dir, { primaryKey })`):
/// ```text
/// corestore/cores/ab/cd/<dk>/      one log (hypercore 10 files), dk = hex discovery key
/// keys/primary-key                 32 random bytes; every log's key pair derives from it
/// keys/<log>.key                   the log's derived secret key
/// replication-state.json           last confirmed lengths per log and peer
/// ```
/// Directories are 0700 and key files 0600 on Unix. A store of the earlier layout (the
/// primary key at `corestore/primary-key`, where JS corestore keeps it) is migrated by
/// [`initialize`](Self::initialize).
///
/// A cheap `Clone` handle; all clones are the same manager. Many tasks may append to the
/// same and to different logs at once; sequence numbers stay gap-free per log.
///
/// ```
/// use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let config = ManagerConfig::builder().storage_path(dir.path()).build()?;
/// let manager = HypercoreManager::new(config)?;
/// manager.initialize().await?;
/// let seq = manager.append("agent-state", b"step 1").await?;
/// assert_eq!(manager.read("agent-state", seq).await?, b"step 1");
/// manager.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct HypercoreManager {
    shared: Arc<Shared>,
    state: Arc<RwLock<State>>,
    hub: Arc<Hub>,
    swarm: crate::swarm::SwarmSlot,
}

impl HypercoreManager {
    /// A manager for `config` (validated again here). Touches no files until
    /// [`initialize`](Self::initialize).
    pub fn new(config: ManagerConfig) -> Result<Self> {
        config.check()?;
        let (events, _) = broadcast::channel(config.event_capacity);
        let obs = Observability::new(ObservabilityConfig {
            ring_capacity: config.recent_events_capacity,
            health_threshold: config.health_warning_threshold,
            health_window: config.health_warning_window,
        });
        let replication_enabled = config.replication_enabled;
        let state_file = config.storage_path.join(replication_state::FILE_NAME);
        Ok(HypercoreManager {
            hub: Arc::new(Hub::new(state_file, Default::default())),
            swarm: Default::default(),
            shared: Arc::new(Shared {
                pool: Pool::new(config.max_open_logs),
                files: FileBudget::new(config.max_open_files),
                keys_dir_unsynced: AtomicBool::new(false),
                config,
                obs,
                events,
            }),
            state: Arc::new(RwLock::new(State {
                phase: Phase::New,
                primary_key: [0; 32],
                logs: HashMap::new(),
                opening: HashMap::new(),
                metadata: None,
                replication_enabled,
            })),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ManagerConfig {
        &self.shared.config
    }

    /// The store's root directory.
    pub fn storage_path(&self) -> &Path {
        &self.shared.config.storage_path
    }

    fn corestore_dir(&self) -> PathBuf {
        self.storage_path().join("corestore")
    }

    fn keys_dir(&self) -> PathBuf {
        self.storage_path().join("keys")
    }

    /// A receiver of every [`ManagerEvent`] from now on. A receiver that falls more than
    /// `event_capacity` events behind gets `RecvError::Lagged(n)` and continues; appends
    /// never wait for subscribers.
    pub fn subscribe(&self) -> broadcast::Receiver<ManagerEvent> {
        self.shared.events.subscribe()
    }

    /// Emits an event to subscribers (for the layers above: replication, CRDT bridge).
    pub fn emit(&self, event: ManagerEvent) {
        self.shared.emit(event);
    }

    /// Records a failure decided above the manager, e.g. a NanoClaw scope denial
    /// (`UNAUTHORIZED`) in the Tauri plugin, exactly as a failed operation on
    /// `log_name` is recorded: an `error` operation record in observability, the error
    /// count, an `error` event, and `health-warning` when the log passes the threshold.
    /// Touches no log.
    pub fn report_error(&self, log_name: &str, error: &HypercoreError) {
        self.shared.report_error(log_name, error);
    }

    /// The logs opened through this manager so far (the ones [`status`](Self::status)
    /// counts), sorted by name.
    pub async fn open_logs(&self) -> Vec<ManagedLog> {
        let state = self.state.read().await;
        let mut logs: Vec<ManagedLog> = state.logs.values().cloned().collect();
        logs.sort_by(|a, b| a.name().cmp(b.name()));
        logs
    }

    /// The operation recorder (for the layers above, to record replication traffic).
    pub fn observability(&self) -> &Observability {
        &self.shared.obs
    }

    /// Creates the storage layout (directories 0700, primary key 0600), loads the
    /// primary key from `keys/primary-key`, and emits `ready` with the store's metadata.
    /// Calling it again on a ready manager returns the same metadata without a second
    /// `ready`.
    ///
    /// A store of the earlier layout (key at `corestore/primary-key`) is migrated: the
    /// key is written to `keys/primary-key` atomically, then removed from `corestore/`.
    /// If both files exist with the same bytes (a crash between those steps) the
    /// migration is finished; with different bytes nothing is chosen (see Errors).
    ///
    /// Errors: `STORAGE_INACCESSIBLE` with the path and OS error if anything cannot be
    /// created or written; `STORAGE_CORRUPTED` for a primary-key file that is not 32
    /// bytes (naming it), for two different primary keys in `keys/` and `corestore/`
    /// (naming both), or for a malformed replication state; a closed manager cannot be
    /// initialized again.
    pub async fn initialize(&self) -> Result<StorageMetadata> {
        let mut state = self.state.write().await;
        match state.phase {
            Phase::Ready => {
                if let Some(m) = &state.metadata {
                    return Ok(m.clone());
                }
            }
            Phase::Closed => return Err(self.closed()),
            Phase::New => {}
        }
        let result = self.create_layout().await;
        let (primary_key, metadata) = match result {
            Ok(v) => v,
            Err(e) => {
                self.shared.report_error("store", &e);
                return Err(e);
            }
        };
        let state_file = self.storage_path().join(replication_state::FILE_NAME);
        let loaded = blocking(self.storage_path(), move || {
            replication_state::load(&state_file)
        })
        .await;
        match loaded {
            Ok(persisted) => self.hub.load_state(persisted),
            Err(e) => {
                self.shared.report_error("store", &e);
                return Err(e);
            }
        }
        state.primary_key = primary_key;
        state.phase = Phase::Ready;
        state.metadata = Some(metadata.clone());
        drop(state);
        self.shared.obs.record_lifecycle("store", "ready");
        info!(
            storage_path = %metadata.storage_path,
            log_count = metadata.log_count,
            total_byte_size = metadata.total_byte_size,
            "hypercore store ready"
        );
        self.shared.emit(ManagerEvent::Ready(metadata.clone()));
        Ok(metadata)
    }

    async fn create_layout(&self) -> Result<([u8; 32], StorageMetadata)> {
        let root = self.storage_path().to_owned();
        let corestore = self.corestore_dir();
        let keys_dir = self.keys_dir();
        let state_file = root.join(replication_state::FILE_NAME);
        tokio::task::spawn_blocking(move || {
            keys::private_dir(&root)?;
            keys::private_dir(&corestore.join("cores"))?;
            keys::private_dir(&corestore)?;
            keys::private_dir(&keys_dir)?;
            let primary_key = keys::load_or_migrate_primary_key(&keys_dir, &corestore)?;
            replication_state::ensure(&state_file)?;
            let created_at = std::fs::metadata(keys_dir.join(keys::PRIMARY_KEY_FILE))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or_else(now_ms, |d| d.as_millis() as u64);
            let (log_count, total_byte_size) = scan_store(&keys_dir, &corestore)?;
            Ok((
                primary_key,
                StorageMetadata {
                    storage_path: root.display().to_string(),
                    log_count,
                    total_byte_size,
                    created_at,
                },
            ))
        })
        .await
        .map_err(|e| HypercoreError::StorageInaccessible {
            path: self.storage_path().to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    fn closed(&self) -> HypercoreError {
        HypercoreError::Closed {
            log: "store".into(),
        }
    }

    fn not_ready(&self, phase: Phase) -> HypercoreError {
        match phase {
            Phase::Closed => self.closed(),
            _ => HypercoreError::StorageInaccessible {
                path: self.storage_path().to_owned(),
                source: std::io::Error::other(
                    "the manager is not initialized: call initialize() first",
                ),
            },
        }
    }

    /// The log called `name`, created on first use with a key pair derived from the
    /// store's primary key. The same name always gives the same instance
    /// ([`ManagedLog::same_log`]) and, across restarts, the same keys.
    ///
    /// Errors: `UNAUTHORIZED` for an invalid name (nothing is created), a closed or
    /// uninitialized manager, `STORAGE_CORRUPTED` if the stored log or key file does not
    /// match the derived key, `STORAGE_INACCESSIBLE` / `IO_ERROR` from the file system.
    ///
    /// A new log is created in the config's `core_format`; an existing one keeps the
    /// format it was created in.
    pub async fn get_log(&self, name: &str) -> Result<ManagedLog> {
        self.get_log_with_format(name, self.shared.config.core_format)
            .await
    }

    /// [`get_log`](Self::get_log), creating the log (if it does not exist yet) in
    /// `format` instead of the config's. An existing log keeps its format whatever is
    /// asked: its key (and so its core key) is the one `name` always derives.
    pub async fn get_log_with_format(&self, name: &str, format: CoreFormat) -> Result<ManagedLog> {
        let result = self.get_log_inner(name, format, None).await;
        if let Err(e) = &result {
            let shown: String = name.chars().take(MAX_LOG_NAME_BYTES * 2).collect();
            self.shared.report_error(&shown, e);
        }
        result
    }

    /// [`get_log`](Self::get_log) for a log whose blocks are encrypted with `key` (JS
    /// hypercore's `encryptionKey`; a new log is created encrypted): appends store
    /// `padding ‖ ciphertext`, reads decrypt, [`ManagedLog::byte_length`] counts the
    /// plaintext. The key is held in memory only, never written to the store: give it
    /// whenever the log is first opened in a process (a later `get_log` in the same
    /// process returns the same, decrypting, handle). Peers replicate the ciphertext;
    /// only holders of the key read it.
    ///
    /// Errors: those of `get_log`; `UNAUTHORIZED` when the log is already open in
    /// this process without this key (opened plain, or with another key): open it
    /// with its key before any other use.
    pub async fn get_log_encrypted(&self, name: &str, key: EncryptionKey) -> Result<ManagedLog> {
        let format = self.shared.config.core_format;
        let result = self.get_log_inner(name, format, Some(key)).await;
        if let Err(e) = &result {
            let shown: String = name.chars().take(MAX_LOG_NAME_BYTES * 2).collect();
            self.shared.report_error(&shown, e);
        }
        result
    }

    /// The log called `name` if it exists, never creating one: a log open in this
    /// process (its own or a replica), or a log of our own stored here (its key file
    /// is in `keys/` and it was not deleted), which is then opened. For calls that only
    /// read (the Tauri plugin's `read`, `length`, `tail`, ...).
    ///
    /// Errors: `STORAGE_INACCESSIBLE` ([`HypercoreError::NoSuchLog`]) when there is no
    /// such log, or it was deleted; otherwise those of [`get_log`](Self::get_log). A
    /// replica stored here but not opened since the store started is not found: the
    /// store does not remember which names are replicas (see
    /// [`open_replica`](Self::open_replica)).
    pub async fn existing_log(&self, name: &str) -> Result<ManagedLog> {
        let result = self.existing_log_inner(name, None).await;
        if let Err(e) = &result {
            let shown: String = name.chars().take(MAX_LOG_NAME_BYTES * 2).collect();
            self.shared.report_error(&shown, e);
        }
        result
    }

    /// [`existing_log`](Self::existing_log) for a log encrypted with `key` (see
    /// [`get_log_encrypted`](Self::get_log_encrypted)): never creates one.
    ///
    /// Errors: those of `existing_log`, and `UNAUTHORIZED` when the log is already open
    /// in this process without this key.
    pub async fn existing_log_encrypted(
        &self,
        name: &str,
        key: EncryptionKey,
    ) -> Result<ManagedLog> {
        let result = self.existing_log_inner(name, Some(key)).await;
        if let Err(e) = &result {
            let shown: String = name.chars().take(MAX_LOG_NAME_BYTES * 2).collect();
            self.shared.report_error(&shown, e);
        }
        result
    }

    async fn existing_log_inner(
        &self,
        name: &str,
        encryption: Option<EncryptionKey>,
    ) -> Result<ManagedLog> {
        let name = LogName::parse(name)?;
        if let Some(log) = self.registered(&name).await? {
            return same_encryption(log, encryption.as_ref());
        }
        let keys_dir = self.keys_dir();
        let (dir, file_name) = (keys_dir.clone(), name.clone());
        let stored = blocking(&keys_dir, move || {
            let key_file = dir.join(format!("{file_name}.key"));
            let deleted = keys::tombstone_path(&dir, &file_name);
            let exists = |path: &Path| match std::fs::symlink_metadata(path) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(source) => Err(HypercoreError::StorageInaccessible {
                    path: path.to_owned(),
                    source,
                }),
            };
            Ok(exists(&key_file)? && !exists(&deleted)?)
        })
        .await?;
        if !stored {
            return Err(HypercoreError::NoSuchLog {
                log: name.to_string(),
            });
        }
        self.get_log_inner(name.as_str(), self.shared.config.core_format, encryption)
            .await
    }

    async fn get_log_inner(
        &self,
        name: &str,
        format: CoreFormat,
        encryption: Option<EncryptionKey>,
    ) -> Result<ManagedLog> {
        let name = LogName::parse(name)?;
        if let Some(log) = self.registered(&name).await? {
            return same_encryption(log, encryption.as_ref());
        }
        let wanted = encryption.clone();
        let log = self
            .open_once(&name, || async {
                let primary_key = self.state.read().await.primary_key;
                let key = keys::derive_key_pair(&primary_key, &DEFAULT_NAMESPACE, name.as_str());
                let (keys_dir, file_name, file_key) = (self.keys_dir(), name.clone(), key.clone());
                let corestore = self.corestore_dir();
                // The core key (and so the directory) depends on the format: a log that
                // exists in either format is opened as it is; a new one gets `format`.
                // `Flush` leaves the directory sync of a new key file to the store's
                // close (`keys::ensure_key_file` says why that is enough); the fsync
                // modes sync it here, before the log can acknowledge anything.
                let sync_dir = self.shared.config.durability != Durability::Flush;
                let (format, dir, unsynced) = blocking(&self.keys_dir(), move || {
                    keys::check_not_deleted(&keys_dir, &file_name)?;
                    let unsynced =
                        keys::ensure_key_file(&keys_dir, &file_name, &file_key, sync_dir)?;
                    let (format, dir) = existing_format(&corestore, &file_key, format);
                    Ok((format, dir, unsynced))
                })
                .await?;
                if unsynced {
                    self.shared.keys_dir_unsynced.store(true, Ordering::Release);
                }
                self.register(
                    name.clone(),
                    dir,
                    LogKey::Secret(key, format),
                    encryption,
                    "opened",
                )
                .await
            })
            .await?;
        same_encryption(log, wanted.as_ref())
    }

    /// The log registered as `name`, if any; an error unless the manager is ready.
    async fn registered(&self, name: &LogName) -> Result<Option<ManagedLog>> {
        let state = self.state.read().await;
        if state.phase != Phase::Ready {
            return Err(self.not_ready(state.phase));
        }
        Ok(state.logs.get(name).cloned())
    }

    /// Runs `open` for `name` unless the log is registered meanwhile, one open per name
    /// at a time. The store lock is held only to find the name's gate, never across
    /// `open` (which opens files, reads key files and syncs).
    async fn open_once<F, Fut>(&self, name: &LogName, open: F) -> Result<ManagedLog>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<ManagedLog>>,
    {
        let gate = self.name_gate(name).await;
        let held = gate.lock().await;
        let result = match self.registered(name).await {
            Ok(Some(log)) => Ok(log),
            Ok(None) => open().await,
            Err(e) => Err(e),
        };
        drop(held);
        self.release_gate(name, gate).await;
        result
    }

    /// The gate of `name`: whoever holds its lock is the only one opening (or
    /// deleting) that log.
    async fn name_gate(&self, name: &LogName) -> Arc<tokio::sync::Mutex<()>> {
        self.state
            .write()
            .await
            .opening
            .entry(name.clone())
            .or_default()
            .clone()
    }

    /// Forgets `name`'s gate (after its lock was released) unless someone waits on it.
    async fn release_gate(&self, name: &LogName, gate: Arc<tokio::sync::Mutex<()>>) {
        let mut state = self.state.write().await;
        // Gates are cloned only under the store lock: two holders (the map and us)
        // means nobody else waits on it.
        if state
            .opening
            .get(name)
            .is_some_and(|g| Arc::ptr_eq(g, &gate) && Arc::strong_count(&gate) == 2)
        {
            state.opening.remove(name);
        }
    }

    /// Opens a log's files (no store lock held) and adds it to the registry.
    async fn register(
        &self,
        name: LogName,
        dir: PathBuf,
        key: LogKey,
        encryption: Option<EncryptionKey>,
        what: &str,
    ) -> Result<ManagedLog> {
        let log = ManagedLog::open(
            self.shared.clone(),
            name.clone(),
            dir.clone(),
            key,
            encryption,
        )
        .await?;
        let (mark_dir, mark_name, core_key, mark_key) = (
            dir.clone(),
            name.clone(),
            log.public_key(),
            log.encryption().cloned(),
        );
        let marked = blocking(&dir, move || {
            crate::encryption_mark::settle(&mark_dir, &mark_name, &core_key, mark_key.as_ref())
        })
        .await;
        match marked {
            Ok(marked) => log.set_marked_encrypted(marked),
            Err(e) => {
                let _ = log.close().await;
                return Err(e);
            }
        }
        let mut state = self.state.write().await;
        if state.phase != Phase::Ready {
            let phase = state.phase;
            drop(state);
            let _ = log.close().await;
            return Err(self.not_ready(phase));
        }
        state.logs.insert(name.clone(), log.clone());
        self.shared.obs.set_managed_logs(state.logs.len() as u64);
        drop(state);
        self.shared.obs.record_lifecycle(name.as_str(), what);
        if self.shared.config.replication_enabled {
            self.enable_log(&log).await?;
        }
        Ok(log)
    }

    async fn enable_log(&self, log: &ManagedLog) -> Result<()> {
        let core = log.pin().await?;
        self.hub.enable(log.clone(), core);
        self.state.write().await.replication_enabled = true;
        Ok(())
    }

    /// Shares log `log_name` with peers: every connection handed to
    /// [`replicate`](Self::replicate) (now or later) serves it, or fetches it for a
    /// replica. Its files stay open while enabled.
    ///
    /// With a swarm running ([`start_swarm`](Self::start_swarm)) it also joins the
    /// log's discovery key; a failed join is `REPLICATION_FAILED` (the log stays
    /// shared with connections that exist or come through direct mode).
    pub async fn enable_replication(&self, log_name: &str) -> Result<()> {
        let log = self.get_log(log_name).await?;
        self.enable_log(&log).await?;
        self.swarm_join(log.discovery_key()).await.inspect_err(|e| {
            self.shared.report_error(log_name, e);
        })
    }

    /// Stops sharing log `log_name` with new channels. It keeps working locally (offline).
    pub async fn disable_replication(&self, log_name: &str) -> Result<()> {
        let log = self.get_log(log_name).await?;
        if let Some(log) = self.hub.disable(&log.discovery_key()) {
            log.unpin();
        }
        self.state.write().await.replication_enabled =
            self.hub.any_enabled() || self.shared.config.replication_enabled;
        self.swarm_leave(log.discovery_key())
            .await
            .inspect_err(|e| {
                self.shared.report_error(log_name, e);
            })
    }

    /// Replicates every enabled log over `stream` (TCP, a pipe, a swarm connection)
    /// until it closes: serves what we have, fetches what peers have, keeps
    /// connected readers live. `initiator`: this side opened the connection.
    ///
    /// Emits `peer-connect` / `peer-disconnect` / `replicate` events, updates metrics and
    /// [`replication_status`](Self::replication_status), and records the last length
    /// confirmed with each peer in `replication-state.json`. A broken stream is
    /// `REPLICATION_FAILED` (also reported as an `error` event); call again with a new
    /// connection to resume: only missing blocks are fetched.
    pub async fn replicate<S>(&self, stream: S, initiator: bool) -> Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static,
    {
        {
            let state = self.state.read().await;
            if state.phase != Phase::Ready {
                return Err(self.not_ready(state.phase));
            }
        }
        let (cipher, ended) =
            nova_hypercore_replication::transport::encrypt(stream, initiator).await?;
        self.replicate_encrypted(cipher, ended).await
    }

    /// [`replicate`](Self::replicate) over a connection that is already encrypted and
    /// framed (a swarm connection, or [`transport::encrypt`]'s output).
    ///
    /// [`transport::encrypt`]: nova_hypercore_replication::transport::encrypt
    pub async fn replicate_encrypted<C>(
        &self,
        cipher: C,
        ended: tokio::sync::watch::Receiver<nova_hypercore_replication::transport::Ending>,
    ) -> Result<()>
    where
        C: nova_hypercore_replication::CipherTrait + 'static,
    {
        self.ensure_ready().await?;
        let (hub, shared) = (self.hub.clone(), self.shared.clone());
        let replicator =
            nova_hypercore_replication::Replicator::new(Arc::new(HubSource(self.hub.clone())))
                .with_config(nova_hypercore_replication::SessionConfig {
                    idle_timeout: self.config().connection_idle_timeout,
                    ..Default::default()
                })
                .with_stats(self.hub.stats.clone())
                .with_observer(Arc::new(move |event| hub.observe(&shared, event)));
        let result = replicator.run_encrypted(cipher, ended).await;
        self.hub.persist().await;
        if let Err(e) = &result {
            self.shared.report_error("connection", e);
        }
        result
    }

    pub(crate) async fn ensure_ready(&self) -> Result<()> {
        let state = self.state.read().await;
        if state.phase != Phase::Ready {
            return Err(self.not_ready(state.phase));
        }
        Ok(())
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    pub(crate) fn swarm_slot(&self) -> &crate::swarm::SwarmSlot {
        &self.swarm
    }

    /// Serves replication on a TCP listener (direct mode, no DHT): every accepted
    /// connection replicates the enabled logs. Stops when the returned handle is dropped
    /// (open connections with it) or the manager closes. At most
    /// `ManagerConfig::max_connections` connections are served at once, at most
    /// `max_connections_per_address` from one IP address: one past either is closed as
    /// it is accepted. The Noise handshake of each is bounded by
    /// `transport::HANDSHAKE_TIMEOUT` (10 s).
    pub async fn listen(&self, addr: std::net::SocketAddr) -> Result<Listener> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            HypercoreError::ReplicationFailed {
                log: "connection".into(),
                reason: format!("cannot listen on {addr}: {e}"),
            }
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| HypercoreError::ReplicationFailed {
                log: "connection".into(),
                reason: format!("listener address: {e}"),
            })?;
        let manager = self.clone();
        let (max_total, max_per_address) = (
            self.shared.config.max_connections,
            self.shared.config.max_connections_per_address,
        );
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            // Connections served now, per IP address (a task's output is its address).
            let mut serving: HashMap<std::net::IpAddr, usize> = HashMap::new();
            let done = |serving: &mut HashMap<std::net::IpAddr, usize>, ended| {
                if let Ok(ip) = ended
                    && let Some(n) = serving.get_mut(&ip)
                {
                    *n -= 1;
                    if *n == 0 {
                        serving.remove(&ip);
                    }
                }
            };
            let mut backoff = Backoff::new(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, peer)) => {
                            backoff.reset();
                            let from = serving.get(&peer.ip()).copied().unwrap_or(0);
                            if connections.len() >= max_total || from >= max_per_address {
                                tracing::debug!(
                                    %peer, serving = connections.len(), from_this_address = from,
                                    "replication connection refused: at the connection cap"
                                );
                                drop(socket);
                                continue;
                            }
                            *serving.entry(peer.ip()).or_default() += 1;
                            let _ = socket.set_nodelay(true);
                            tracing::debug!(%peer, "replication connection accepted");
                            let m = manager.clone();
                            connections.spawn(async move {
                                let _ = m.replicate(socket, false).await;
                                peer.ip()
                            });
                        }
                        // A persistent error (out of file descriptors: the pending
                        // connection stays queued and every accept fails at once) would
                        // spin this loop: wait, longer each time, while sessions go on.
                        Err(e) => {
                            let delay = backoff.next_delay();
                            let error = HypercoreError::ReplicationFailed {
                                log: "connection".into(),
                                reason: format!(
                                    "accept on {local} failed ({} in a row, next try in {delay:?}): {e}",
                                    backoff.attempts
                                ),
                            };
                            manager.shared.report_error("connection", &error);
                            let pause = tokio::time::sleep(delay);
                            tokio::pin!(pause);
                            loop {
                                tokio::select! {
                                    () = &mut pause => break,
                                    Some(ended) = connections.join_next(), if !connections.is_empty() => {
                                        done(&mut serving, ended);
                                    }
                                }
                            }
                        }
                    },
                    Some(ended) = connections.join_next(), if !connections.is_empty() => {
                        done(&mut serving, ended);
                    }
                }
                if manager.state.read().await.phase == Phase::Closed {
                    break;
                }
            }
        });
        Ok(Listener { local, task })
    }

    /// Keeps a replication connection to `addr` (direct mode): dials, replicates, and
    /// when the connection fails or closes dials again, with exponential backoff from
    /// 50 ms up to 5 s (reset after a connection that worked). Stops when the handle is
    /// dropped or the manager closes. Failures are `error` events (`REPLICATION_FAILED`).
    pub fn connect(&self, addr: std::net::SocketAddr) -> Connector {
        let manager = self.clone();
        let task = tokio::spawn(async move {
            let max = std::time::Duration::from_secs(5);
            let mut backoff = Backoff::new(std::time::Duration::from_millis(50), max);
            loop {
                if manager.state.read().await.phase == Phase::Closed {
                    return;
                }
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(socket) => {
                        let _ = socket.set_nodelay(true);
                        let started = std::time::Instant::now();
                        let _ = manager.replicate(socket, true).await;
                        if started.elapsed() > max {
                            backoff.reset();
                        }
                    }
                    Err(e) => {
                        let error = HypercoreError::ReplicationFailed {
                            log: "connection".into(),
                            reason: format!("cannot connect to {addr}: {e}"),
                        };
                        manager.shared.report_error("connection", &error);
                    }
                }
                // Backoff between attempts (a reconnect policy, not a test wait).
                tokio::time::sleep(backoff.next_delay()).await;
            }
        });
        Connector { task }
    }

    /// `localLength`, `remoteLengths` per connected peer, `activePeers` and
    /// `bytesTransferred` of log `log_name`. A peer id is the hex handshake key of one
    /// connection (new for each connection); a peer's entry goes when its channel closes.
    /// [`confirmed_length`](Self::confirmed_length) keeps the last
    /// [`MAX_PEERS_PER_LOG`](crate::replication_state::MAX_PEERS_PER_LOG) per log.
    pub async fn replication_status(&self, log_name: &str) -> Result<ReplicationStatus> {
        let log = self.get_log(log_name).await?;
        Ok(self.hub.status(&log))
    }

    /// How far along a download of `log_name` is: blocks held from the start, the
    /// signed length, and the receive rate of this process's sessions.
    pub async fn download_progress(&self, log_name: &str) -> Result<DownloadProgress> {
        let log = self.get_log(log_name).await?;
        let progress = *log.watch_progress().await?.borrow();
        let transfer = self.hub.stats.get(&log.discovery_key());
        Ok(DownloadProgress {
            have: progress.contiguous_length,
            total: progress.length,
            blocks_received: transfer.blocks_received,
            bytes_per_second: transfer.receive_rate(),
        })
    }

    /// The last length of `log_name` confirmed in sync with `peer_id` (hex public key),
    /// from `replication-state.json`: the smaller of what we held, verified, and the
    /// length the peer *claimed* in its `Synchronize`. The claim is the peer's word
    /// (nothing proves it holds those blocks): read it as "we hold this much, and the
    /// peer said it had at least as much", never as proof the peer can serve it.
    pub fn confirmed_length(&self, log_name: &str, peer_id: &str) -> Option<u64> {
        self.hub.confirmed(log_name, peer_id)
    }

    /// How many times this manager wrote `replication-state.json` (diagnostics: the
    /// file is written at most once per [`PERSIST_INTERVAL`] while sessions run, plus
    /// once when a connection ends and at close, never once per received block).
    ///
    /// [`PERSIST_INTERVAL`]: Self::PERSIST_INTERVAL
    pub fn replication_state_writes(&self) -> u64 {
        self.hub
            .state_writes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Shortest time between two writes of `replication-state.json` while sessions run.
    pub const PERSIST_INTERVAL: std::time::Duration = crate::replication::PERSIST_INTERVAL;

    /// Appends `payload` to log `log_name`; returns its sequence number.
    pub async fn append(&self, log_name: &str, payload: &[u8]) -> Result<u64> {
        self.get_log(log_name).await?.append(payload).await
    }

    /// Appends payloads as one signed batch; returns their sequence numbers.
    pub async fn append_batch<B: AsRef<[u8]> + Sync>(
        &self,
        log_name: &str,
        payloads: &[B],
    ) -> Result<Range<u64>> {
        self.get_log(log_name).await?.append_batch(payloads).await
    }

    /// Reads block `seq` of log `log_name`, verified.
    pub async fn read(&self, log_name: &str, seq: u64) -> Result<Vec<u8>> {
        self.get_log(log_name).await?.get(seq).await
    }

    /// Reads blocks `[start, end)` of log `log_name`, verified, in order.
    pub async fn read_range(&self, log_name: &str, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        self.get_log(log_name).await?.get_range(start, end).await
    }

    /// The length of log `log_name`.
    pub async fn get_length(&self, log_name: &str) -> Result<u64> {
        self.get_log(log_name).await?.current_length().await
    }

    /// `initialized`, logs opened through this manager, their total byte size,
    /// replication on/off and active peers; and `disk_usage_bytes` (not in the spec):
    /// the bytes the filesystem allocated to the whole store directory, which falls
    /// when blocks are cleared ([`ManagedLog::clear`]) or a log is deleted
    /// ([`delete_log`](Self::delete_log)). It walks the store's files (one `stat`
    /// each, on the blocking pool); `None` if that failed.
    pub async fn status(&self) -> ManagerStatus {
        let mut status = {
            let state = self.state.read().await;
            // Blocks a session stored count at once, not when its event arrives.
            state.logs.values().for_each(ManagedLog::refresh);
            ManagerStatus {
                initialized: state.phase == Phase::Ready,
                log_count: state.logs.len() as u64,
                total_byte_size: state.logs.values().map(ManagedLog::byte_length).sum(),
                replication_enabled: state.replication_enabled,
                active_peers: self.shared.obs.metrics().active_peers,
                disk_usage_bytes: None,
            }
        };
        status.disk_usage_bytes = self.disk_usage().await;
        status
    }

    /// Aggregate counters (appends, reads, errors, bytes, peers, logs).
    pub fn metrics(&self) -> AggregateMetrics {
        self.shared.obs.metrics()
    }

    /// The most recent operation records, oldest first.
    pub fn recent_events(&self, limit: Option<usize>) -> Vec<HypercoreLogEvent> {
        self.shared.obs.recent_events(limit)
    }

    /// Logs open right now in the pool (at most `max_open_logs`; replication-enabled
    /// logs held by sessions come on top).
    pub fn open_log_files(&self) -> usize {
        self.shared.pool.open_count()
    }

    /// Log file descriptors open right now, across all logs (at most `max_open_files`,
    /// plus, for a moment, one per I/O still running on a file just closed).
    pub fn open_files(&self) -> usize {
        self.shared.files.open_files()
    }

    /// Flushes and closes every log, then the store. Afterwards `status().initialized`
    /// is false and every call fails with a "closed" error; appends in flight when close
    /// starts either complete (and are on disk) or fail, never half-done.
    pub async fn close(&self) -> Result<()> {
        let mut state = self.state.write().await;
        if state.phase == Phase::Closed {
            return Ok(());
        }
        state.phase = Phase::Closed;
        let logs: Vec<ManagedLog> = state.logs.values().cloned().collect();
        drop(state);
        self.stop_swarm().await;
        for log in &logs {
            self.hub.disable(&log.discovery_key());
        }
        self.hub.persist().await;
        let mut first_error = None;
        for log in logs {
            if let Err(e) = log.close().await {
                self.shared.report_error(log.name().as_str(), &e);
                first_error.get_or_insert(e);
            }
        }
        if self.shared.keys_dir_unsynced.swap(false, Ordering::AcqRel) {
            let keys_dir = self.keys_dir();
            let _ = tokio::task::spawn_blocking(move || keys::sync_keys_dir(&keys_dir)).await;
        }
        self.shared.obs.record_lifecycle("store", "closed");
        info!(storage_path = %self.storage_path().display(), "hypercore store closed");
        first_error.map_or(Ok(()), Err)
    }
}

/// `log`, unless an encryption key is asked for and the log is open without it (plain,
/// or with another key): `UNAUTHORIZED` then. Asking for no key takes the log as it is.
pub(crate) fn same_encryption(
    log: ManagedLog,
    wanted: Option<&EncryptionKey>,
) -> Result<ManagedLog> {
    match wanted {
        Some(key) if log.encryption() != Some(key) => Err(HypercoreError::Unauthorized {
            log: Some(log.name().to_string()),
            reason: format!(
                "log {} is already open {}: open it with its encryption key before any other use",
                log.name(),
                if log.is_encrypted() {
                    "with another encryption key"
                } else {
                    "without an encryption key"
                }
            ),
        }),
        _ => Ok(log),
    }
}

/// The format and directory of the log signed by `key`: the format it was created in if
/// its files exist in either one's directory, else `wanted` (a new log).
fn existing_format(
    corestore: &Path,
    key: &SigningKey,
    wanted: CoreFormat,
) -> (CoreFormat, PathBuf) {
    let dir_of = |format| {
        let dk = nova_hypercore_managed_core::discovery_key(&core_key(key, format));
        keys::core_dir(corestore, &dk)
    };
    for format in [CoreFormat::Legacy, CoreFormat::V1] {
        let dir = dir_of(format);
        if dir.join("oplog").exists() {
            return (format, dir);
        }
    }
    (wanted, dir_of(wanted))
}

/// Logs that exist on disk (one key file each) and the bytes their data files hold.
fn scan_store(keys_dir: &Path, corestore: &Path) -> Result<(u64, u64)> {
    let io = |path: &Path, source| HypercoreError::StorageInaccessible {
        path: path.to_owned(),
        source,
    };
    let mut count = 0;
    for entry in std::fs::read_dir(keys_dir).map_err(|e| io(keys_dir, e))? {
        let entry = entry.map_err(|e| io(keys_dir, e))?;
        if entry.path().extension().is_some_and(|x| x == "key") {
            count += 1;
        }
    }
    let mut bytes = 0;
    let cores = corestore.join("cores");
    let mut stack = vec![cores];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "data") {
                bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    Ok((count, bytes))
}

/// Runs blocking file work on the blocking pool (never on the async threads); a task
/// that could not finish is `STORAGE_INACCESSIBLE` at `path`.
pub(crate) async fn blocking<T, F>(path: &Path, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HypercoreError::StorageInaccessible {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?
}
