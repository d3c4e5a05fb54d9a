//! Replication from the page: share a log, follow one by key, and see how it goes.
//! Each command has its own permission (`allow-share`, `allow-follow`, ...; the sets
//! `read-only` and `replicate` group them), so an app can let a window watch
//! replication without the right to share, and every command checks the window's scope
//! on the log it names.
//!
//! - `share { logName }`: replicate a log of ours with every peer (creating it if
//!   needed); returns its keys for the other side's `follow`.
//! - `unshare { logName }`: stop replicating it.
//! - `follow { logName, publicKey, sparse? }`: open a peer's log (hex core key) under
//!   `logName` as a replica, full or sparse, and replicate it.
//! - `replication_status { logName }`, `download_progress { logName }`, `log_keys
//!   { logName }`: read-only views; never create a log.
//!
//! Connections themselves come from the plugin's configuration (DHT bootstrap list,
//! direct `listen` / `connect` addresses): this module does not dial.

use nova_hypercore_manager::{ManagedLog, ReplicaOptions};
use nova_hypercore_serialization::{DecodeError, HypercoreError, ReplicationStatus};
use serde::{Deserialize, Serialize};
use tauri::ipc::{CommandScope, GlobalScope};
use tauri::{Runtime, State, Webview};

use crate::NovaHypercore;
use crate::commands::{authorize, authorized_existing};
use crate::crdt::hex;
use crate::error::Result;
use crate::models::ScopeEntry;

/// A log's keys as the page sees them (`share`, `follow`, `log_keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogKeysView {
    /// The log's name in this store.
    pub log_name: String,
    /// The core key, 64 lowercase hex characters: what a peer passes to `follow`.
    pub public_key: String,
    /// The discovery key (hex): the DHT topic peers meet on (it does not reveal the key).
    pub discovery_key: String,
    /// Whether this store can append to it (its own log).
    pub writable: bool,
    /// Whether it is a sparse replica.
    pub sparse: bool,
}

impl From<&ManagedLog> for LogKeysView {
    fn from(log: &ManagedLog) -> Self {
        LogKeysView {
            log_name: log.name().to_string(),
            public_key: hex(&log.public_key()),
            discovery_key: hex(&log.discovery_key()),
            writable: log.is_writable(),
            sparse: log.is_sparse(),
        }
    }
}

/// `download_progress`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadProgressView {
    /// The log.
    pub log_name: String,
    /// Blocks `0..have` are here.
    pub have: u64,
    /// Blocks the signed log has, as far as this store knows.
    pub total: u64,
    /// Verified blocks this process received for it.
    pub blocks_received: u64,
    /// Receive rate in payload bytes per second, once measurable.
    pub bytes_per_second: Option<f64>,
}

/// Parses a core key given as 64 hex characters (either case).
///
/// ```
/// use tauri_plugin_nova_hypercore::replication::parse_public_key;
/// assert_eq!(parse_public_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
/// assert!(parse_public_key("abc").is_err());
/// ```
pub fn parse_public_key(text: &str) -> std::result::Result<[u8; 32], HypercoreError> {
    let bad = |message: String| {
        HypercoreError::decode(DecodeError::Schema {
            path: "publicKey".to_owned(),
            message,
        })
    };
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!(
            "expected 64 hex characters (0-9, a-f), got {} characters",
            text.chars().count()
        )));
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        let pair = &text[2 * i..2 * i + 2];
        *byte = u8::from_str_radix(pair, 16)
            .map_err(|_| bad(format!("{pair:?} at offset {} is not hex", 2 * i)))?;
    }
    Ok(key)
}

/// `share`: `{ logName }` -> [`LogKeysView`]. Replicates the log (of ours; created if
/// new) with every connection and announces it when the plugin runs a DHT swarm.
#[tauri::command]
pub(crate) async fn share<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
) -> Result<LogKeysView> {
    let name = authorize(&state, &webview, &command_scope, &global_scope, &log_name)?;
    let manager = state.manager();
    manager.enable_replication(name.as_str()).await?;
    Ok(LogKeysView::from(
        &manager.existing_log(name.as_str()).await?,
    ))
}

/// `unshare`: `{ logName }`. Stops replicating the log (it stays in the store).
#[tauri::command]
pub(crate) async fn unshare<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
) -> Result<()> {
    let log =
        authorized_existing(&state, &webview, &command_scope, &global_scope, &log_name).await?;
    Ok(state
        .manager()
        .disable_replication(log.name().as_str())
        .await?)
}

/// `follow`: `{ logName, publicKey, sparse? }` -> [`LogKeysView`]. Opens the peer's log
/// as a replica named `logName` (sparse: only what is read or downloaded is fetched)
/// and replicates it. A name already used for another key is `UNAUTHORIZED`.
#[tauri::command]
#[allow(clippy::too_many_arguments)] // Tauri's command arguments: each one is injected
pub(crate) async fn follow<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
    public_key: String,
    sparse: Option<bool>,
) -> Result<LogKeysView> {
    let name = authorize(&state, &webview, &command_scope, &global_scope, &log_name)?;
    let key = parse_public_key(&public_key)?;
    let manager = state.manager();
    let options = match sparse {
        Some(true) => Some(ReplicaOptions::sparse()),
        Some(false) => Some(ReplicaOptions::full()),
        None => None,
    };
    let log = match options {
        Some(options) => {
            manager
                .open_replica_with(name.as_str(), key, options)
                .await?
        }
        None => manager.open_replica(name.as_str(), key).await?,
    };
    manager.enable_replication(name.as_str()).await?;
    Ok(LogKeysView::from(&log))
}

/// `replication_status`: `{ logName }` -> the spec's `ReplicationStatus` (camelCase).
#[tauri::command]
pub(crate) async fn replication_status<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
) -> Result<ReplicationStatus> {
    let log =
        authorized_existing(&state, &webview, &command_scope, &global_scope, &log_name).await?;
    Ok(state
        .manager()
        .replication_status(log.name().as_str())
        .await?)
}

/// `download_progress`: `{ logName }` -> [`DownloadProgressView`].
#[tauri::command]
pub(crate) async fn download_progress<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
) -> Result<DownloadProgressView> {
    let log =
        authorized_existing(&state, &webview, &command_scope, &global_scope, &log_name).await?;
    let p = state
        .manager()
        .download_progress(log.name().as_str())
        .await?;
    Ok(DownloadProgressView {
        log_name: log.name().to_string(),
        have: p.have,
        total: p.total,
        blocks_received: p.blocks_received,
        bytes_per_second: p.bytes_per_second,
    })
}

/// `log_keys`: `{ logName }` -> [`LogKeysView`] of an existing log.
#[tauri::command]
pub(crate) async fn log_keys<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
) -> Result<LogKeysView> {
    let log =
        authorized_existing(&state, &webview, &command_scope, &global_scope, &log_name).await?;
    Ok(LogKeysView::from(&log))
}
