//! Opening the store for one command: where it is, the lock that keeps a second
//! `nova-hypercore` process off it, the manager, and logs by name (own or replica).
//!
//! Owns: the store-directory rule (`--dir`, `NOVA_HYPERCORE_DIR`, the platform data
//! dir), `cli.lock`, and `replicas.json` (which names are replicas of which keys: the
//! manager does not remember it, so `read notes` after `follow ... --as notes` needs it).
//! Must not: hold log logic (the manager does) or touch the network.
//! Used by: every command that works on a store.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use nova_hypercore_manager::{
    EncryptionKey, HypercoreManager, ManagedLog, ManagerConfig, ReplicaOptions,
};
use nova_hypercore_serialization::HypercoreError;
use serde::{Deserialize, Serialize};

use crate::cli::{hex, parse_key};
use crate::error::{CliError, CliResult};

/// The environment variable naming the store directory.
pub const DIR_ENV: &str = "NOVA_HYPERCORE_DIR";
/// The lock file in the store directory.
const LOCK_FILE: &str = "cli.lock";
/// The environment variable holding the encryption key (hex) of the logs a command
/// names (`--encryption-key`).
pub const ENCRYPTION_KEY_ENV: &str = "NOVA_HYPERCORE_ENCRYPTION_KEY";
/// The replica list in the store directory.
pub const REPLICAS_FILE: &str = "replicas.json";

/// The store directory: `--dir`, else `$NOVA_HYPERCORE_DIR`, else the platform's data
/// directory (`~/.local/share/nova-hypercore` on Linux).
pub fn store_dir(dir: Option<&Path>) -> CliResult<PathBuf> {
    if let Some(dir) = dir {
        return Ok(dir.to_owned());
    }
    if let Some(dir) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "nova-hypercore")
        .map(|d| d.data_dir().to_owned())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "no store directory: pass --dir or set {DIR_ENV} (no home directory found)"
            ))
        })
}

/// Whether the store may be created by this command, or must exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create the directory and layout when missing (init, append, follow, seed, share).
    Yes,
    /// A missing store is `STORAGE_INACCESSIBLE` (commands that only read or remove).
    No,
}

/// An open store: the manager, the lock, and the replica list.
#[derive(Debug)]
pub struct Store {
    /// The manager (initialized).
    pub manager: HypercoreManager,
    /// The store directory.
    pub dir: PathBuf,
    replicas: Replicas,
    /// The key of the logs the command names (`--encryption-key`), if any.
    encryption: Option<EncryptionKey>,
    _lock: File,
}

impl Store {
    /// Opens (or, with [`Create::Yes`], creates) the store at `dir`, taking its lock.
    pub async fn open(
        dir: &Path,
        create: Create,
        tune: impl FnOnce(&mut ManagerConfig),
    ) -> CliResult<Store> {
        let dir = dir.to_owned();
        let lock = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || prepare(&dir, create))
                .await
                .map_err(|e| CliError::storage(PathBuf::new(), std::io::Error::other(e)))??
        };
        let mut config = ManagerConfig::builder().storage_path(&dir).build()?;
        tune(&mut config);
        let manager = HypercoreManager::new(config)?;
        manager.initialize().await?;
        let replicas = Replicas::load(&dir.join(REPLICAS_FILE))?;
        Ok(Store {
            manager,
            dir,
            replicas,
            encryption: None,
            _lock: lock,
        })
    }

    /// Opens the logs this command names with `key` (their blocks encrypted).
    pub fn set_encryption(&mut self, key: Option<EncryptionKey>) {
        self.encryption = key;
    }

    /// The log called `name`: a replica this CLI opened before (by its key), else our
    /// own log if it exists. Never creates one: unknown is `STORAGE_INACCESSIBLE`.
    pub async fn log(&self, name: &str) -> CliResult<ManagedLog> {
        if let Some(entry) = self.replicas.entries.get(name) {
            let key = parse_key(&entry.key).map_err(|reason| CliError::BadFile {
                path: self.dir.join(REPLICAS_FILE),
                reason: format!("replica {name}: {reason}"),
            })?;
            return Ok(match &self.encryption {
                Some(secret) => {
                    self.manager
                        .open_replica_encrypted(name, key, None, secret.clone())
                        .await?
                }
                None => self.manager.open_replica(name, key).await?,
            });
        }
        Ok(match &self.encryption {
            Some(secret) => {
                self.manager
                    .existing_log_encrypted(name, secret.clone())
                    .await?
            }
            None => self.manager.existing_log(name).await?,
        })
    }

    /// Our own log called `name`, created on first use (`append`).
    pub async fn own_log(&self, name: &str) -> CliResult<ManagedLog> {
        if self.replicas.entries.contains_key(name) {
            return Err(HypercoreError::Unauthorized {
                log: Some(name.to_owned()),
                reason: format!(
                    "log {name} is a replica of a peer's log: it cannot be appended to"
                ),
            }
            .into());
        }
        Ok(match &self.encryption {
            Some(secret) => self.manager.get_log_encrypted(name, secret.clone()).await?,
            None => self.manager.get_log(name).await?,
        })
    }

    /// Opens the replica `name` of `key` and records it in `replicas.json`.
    pub async fn open_replica(
        &mut self,
        name: &str,
        key: [u8; 32],
        sparse: bool,
    ) -> CliResult<ManagedLog> {
        let options = if sparse {
            ReplicaOptions::sparse()
        } else {
            ReplicaOptions::full()
        };
        let log = match &self.encryption {
            Some(secret) => {
                self.manager
                    .open_replica_encrypted(name, key, Some(options), secret.clone())
                    .await?
            }
            None => self.manager.open_replica_with(name, key, options).await?,
        };
        let entry = ReplicaEntry {
            key: hex(&key),
            sparse,
        };
        if self.replicas.entries.get(name) != Some(&entry) {
            self.replicas.entries.insert(name.to_owned(), entry);
            self.save_replicas().await?;
        }
        Ok(log)
    }

    /// Forgets replica `name` (after `delete`).
    pub async fn forget_replica(&mut self, name: &str) -> CliResult<()> {
        if self.replicas.entries.remove(name).is_some() {
            self.save_replicas().await?;
        }
        Ok(())
    }

    /// The replicas this CLI knows: name to (key, sparse).
    pub fn replicas(&self) -> impl Iterator<Item = (&str, &ReplicaEntry)> {
        self.replicas.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Every log of the store: our own (a key file, not deleted) and known replicas.
    pub async fn log_names(&self) -> CliResult<Vec<String>> {
        let keys = self.dir.join("keys");
        let mut names = tokio::task::spawn_blocking(move || own_log_names(&keys))
            .await
            .map_err(|e| CliError::storage(PathBuf::new(), std::io::Error::other(e)))??;
        names.extend(self.replicas.entries.keys().cloned());
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Closes the manager (everything acknowledged is on disk).
    pub async fn close(self) -> CliResult<()> {
        Ok(self.manager.close().await?)
    }

    async fn save_replicas(&self) -> CliResult<()> {
        let path = self.dir.join(REPLICAS_FILE);
        let json = serde_json::to_vec_pretty(&self.replicas).map_err(|e| CliError::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(path, json).await
    }
}

/// One replica in `replicas.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaEntry {
    /// The writer's public key, hex.
    pub key: String,
    /// Whether it was opened sparse.
    #[serde(default)]
    pub sparse: bool,
}

/// `replicas.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Replicas {
    version: u32,
    #[serde(rename = "replicas")]
    entries: BTreeMap<String, ReplicaEntry>,
}

impl Replicas {
    fn load(path: &Path) -> CliResult<Replicas> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CliError::BadFile {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Replicas {
                version: 1,
                entries: BTreeMap::new(),
            }),
            Err(e) => Err(CliError::storage(path, e)),
        }
    }
}

/// Writes `bytes` to `path` through a temp file and a rename (never half a file).
pub async fn write_atomically(path: PathBuf, bytes: Vec<u8>) -> CliResult<()> {
    tokio::task::spawn_blocking(move || {
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| CliError::storage(&path, e))
    })
    .await
    .map_err(|e| CliError::storage(PathBuf::new(), std::io::Error::other(e)))?
}

/// Checks (or creates) the directory and takes the store lock.
fn prepare(dir: &Path, create: Create) -> CliResult<File> {
    let is_store = dir.join("keys").join("primary-key").is_file();
    match create {
        Create::No if !dir.is_dir() => {
            return Err(CliError::storage(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no store here (create one with `nova-hypercore init`)",
                ),
            ));
        }
        Create::No if !is_store => {
            return Err(CliError::storage(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not a nova-hypercore store (no keys/primary-key; create one with `nova-hypercore init`)",
                ),
            ));
        }
        Create::No => {}
        Create::Yes => create_private_dir(dir).map_err(|e| CliError::storage(dir, e))?,
    }
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CliError::storage(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(CliError::storage(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::ResourceBusy,
                "the store is in use by another nova-hypercore process (share, follow, seed, ...): stop it or use another --dir",
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(CliError::storage(&path, e)),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Names of our own logs: `keys/<name>.key` without a `keys/<name>.deleted` mark.
fn own_log_names(keys: &Path) -> CliResult<Vec<String>> {
    let entries = match std::fs::read_dir(keys) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::storage(keys, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CliError::storage(keys, e))?;
        let file = entry.file_name();
        let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".key")) else {
            continue;
        };
        if !keys.join(format!("{name}.deleted")).exists() {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}
