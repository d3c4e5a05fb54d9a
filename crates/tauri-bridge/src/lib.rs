//! `tauri-plugin-nova-hypercore`: the Nova26 desktop app's append-only logs over Tauri 2
//! IPC (spec: RustHypercoreBridge), every call checked against the calling window's
//! NanoClaw scope. Install steps, the `tauri.conf.json` section, permissions and the
//! platform table: the crate's `README.md`.
//!
//! Owns: the plugin (one [`HypercoreManager`] per app, created and initialized in the
//! plugin's `setup` from [`Builder`] / [`init`] and the `plugins.nova-hypercore` config
//! section ([`config`]), with the replication endpoints the section asks for; closed on
//! [`tauri::RunEvent::Exit`] and when the plugin is dropped), the IPC commands and their
//! contract (`CONTRACT.md`: argument names, raw-byte bodies and responses, the JSON
//! error shape [`Error`]): `append`, `read`, `length`, `read_range` (paginated),
//! `status`; the page streams `subscribe` (manager events, [`events`]) and `tail`
//! (entries, [`tail`]) over `Channel`s, stopped by `unsubscribe`; replication
//! ([`replication`]: `share`, `unshare`, `follow`, `replication_status`,
//! `download_progress`, `log_keys`); the ATLAS commands `atlas_store`, `atlas_query`
//! ([`atlas`]: one ATLAS adapter per log, opened on first allowed use) and the CRDT
//! commands `crdt_broadcast`, `crdt_subscribe`, `crdt_unsubscribe`, `crdt_follow`,
//! `crdt_info` ([`crdt`]: one CRDT bridge per log, closed before the manager). Also the
//! permission files and sets (`permissions/`), the scope entry type
//! [`models::ScopeEntry`] and its schema (`build.rs`), and the `withGlobalTauri` script
//! `api-iife.js` (built from `guest-js/`). Commands that only read never create a log.
//!
//! Does not: hold log logic (the manager does), decide access policy (that is
//! `nova-hypercore-nanoclaw`; this crate only feeds it the capability's scope), or pick
//! the app's Tauri runtime (no `wry` feature: the app enables it).
//!
//! Used by: the Nova26 Tauri app (`src-tauri`) and the e2e test app in `e2e-app/`.
//!
//! # Setting up an app
//!
//! From `tauri.conf.json` (`"plugins": { "nova-hypercore": { "storagePath": "logs" } }`,
//! a relative path is under the app data directory; see [`Config`]):
//!
//! ```no_run
//! fn run(context: tauri::Context) -> Result<(), Box<dyn std::error::Error>> {
//!     tauri::Builder::default()
//!         .plugin(tauri_plugin_nova_hypercore::Builder::new().build())
//!         .run(context)?;
//!     Ok(())
//! }
//! ```
//!
//! Or with the manager's config given in code (it wins over the section's storage and
//! limit keys; the section's replication endpoints still apply):
//!
//! ```no_run
//! use nova_hypercore_manager::ManagerConfig;
//!
//! // In an app, `context` is `tauri::generate_context!()`.
//! fn run(context: tauri::Context) -> Result<(), Box<dyn std::error::Error>> {
//!     let config = ManagerConfig::builder().storage_path(".nova/hypercore").build()?;
//!     tauri::Builder::default()
//!         .plugin(tauri_plugin_nova_hypercore::init(config))
//!         .run(context)?;
//!     Ok(())
//! }
//! ```
//!
//! # Permissions and scope
//!
//! `nova-hypercore:default` grants every command but `share`, `unshare`, `follow` and the
//! CRDT ones (they share logs: each has its own permission, and the `crdt` set) but
//! **no log**: until a capability
//! adds scope entries, every call that names a log is refused with `UNAUTHORIZED`
//! (Tauri itself treats an empty allow list as "everything"; this plugin does not).
//! Scope entries are `{ "name": "<log>" }` or `{ "name": "<prefix>*" }`; deny entries
//! remove logs again. Sets: `read-only`, `replicate`; `global-scope` grants no command
//! and carries the app-wide global scope. Per command there are
//! `nova-hypercore:allow-<command>` and `nova-hypercore:deny-<command>`
//! (`allow-read-range` for `read_range`). An app's `src-tauri/capabilities/default.json`:
//!
//! ```json
//! {
//!   "identifier": "default",
//!   "windows": ["main"],
//!   "permissions": [
//!     { "identifier": "nova-hypercore:default",
//!       "allow": [{ "name": "agent-*" }, { "name": "atlas-memory" }],
//!       "deny": [{ "name": "agent-secrets" }] }
//!   ]
//! }
//! ```
//!
//! A refused call writes nothing; it is recorded by the manager's observability
//! (operation `error`, the log name, the `UNAUTHORIZED` message) and emitted as a
//! manager `error` event ([`nova_hypercore_manager::ManagerEvent::Error`]).
//!
//! # From JavaScript
//!
//! ```js
//! const seq = await invoke('plugin:nova-hypercore|append', { logName: 'agent-state', data: [1, 2, 3] });
//! const raw = await invoke('plugin:nova-hypercore|append', new Uint8Array([1, 2, 3]),
//!                          { headers: { 'x-log-name': 'agent-state' } });
//! const bytes = new Uint8Array(await invoke('plugin:nova-hypercore|read', { logName: 'agent-state', seq }));
//! ```
//! A failure rejects with `{ code, message, logName?, seq? }`; Tauri's own refusals (a
//! command the capability does not grant) reject with a string containing `not allowed`.

use nova_hypercore_manager::{Connector, HypercoreManager, Listener, ManagerConfig, SwarmOptions};
use nova_hypercore_serialization::HypercoreError;
use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Manager, RunEvent, Runtime};

pub mod atlas;
mod commands;
pub mod config;
pub mod crdt;
mod error;
pub mod events;
pub mod models;
pub mod replication;
pub mod tail;

pub use commands::{LOG_NAME_HEADER, MAX_RANGE_BYTES, MAX_RANGE_ENTRIES};
pub use config::Config;
pub use error::{Error, Result};

/// The plugin's runtime name: `invoke('plugin:nova-hypercore|append', ...)`, permission
/// identifiers `nova-hypercore:...`. Equals the `links` key without `tauri-plugin-`.
pub const PLUGIN_NAME: &str = "nova-hypercore";

/// The plugin's state: the app's one store. Reach it from Rust with
/// [`NovaHypercoreExt::nova_hypercore`].
#[derive(Debug)]
pub struct NovaHypercore {
    manager: HypercoreManager,
    /// The pages' streams (`subscribe`, `tail`), by id: the webview's label and the task
    /// forwarding each.
    subscriptions: std::sync::Mutex<Streams>,
    next_subscription: std::sync::atomic::AtomicU32,
    /// Refused calls, for the `refused` event of the calling window's subscriptions.
    refusals: tokio::sync::broadcast::Sender<events::Refusal>,
    /// The direct TCP listener and connectors started from the config (dropped, so
    /// stopped, when the store closes).
    links: std::sync::Mutex<Option<Links>>,
    /// Where `listen` bound (kept apart from `links`: readable without the lock).
    listen_addr: Option<std::net::SocketAddr>,
}

/// The replication endpoints the plugin started (the swarm itself lives in the manager).
#[derive(Debug, Default)]
struct Links {
    listener: Option<Listener>,
    _connectors: Vec<Connector>,
}

impl NovaHypercore {
    /// The manager behind the commands (a cheap clone handle of it can be kept).
    pub fn manager(&self) -> &HypercoreManager {
        &self.manager
    }

    /// The address the direct TCP listener (config `listen`) is bound to, if one was
    /// started (with port 0, the port the system picked).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen_addr
    }

    /// Keeps a page stream's task (`subscribe`, `tail`) of webview `caller` so
    /// `unsubscribe`, the page's reload or its window's end, and the app's end can stop
    /// it; forgets streams that ended on their own.
    pub(crate) fn keep_stream(
        &self,
        id: u32,
        caller: &str,
        task: tauri::async_runtime::JoinHandle<()>,
    ) {
        let mut streams = self.streams();
        streams.retain(|_, (_, t)| !t.inner().is_finished());
        streams.insert(id, (caller.to_owned(), task));
    }

    /// Stops stream `id` if webview `caller` started it; whether it was running.
    pub(crate) fn stop_stream(&self, id: u32, caller: &str) -> bool {
        let mut streams = self.streams();
        match streams.get(&id) {
            Some((owner, _)) if owner == caller => {}
            _ => return false,
        }
        streams.remove(&id).is_some_and(|(_, task)| {
            let running = !task.inner().is_finished();
            task.abort();
            running
        })
    }

    /// Stops every stream of webview `caller`: its page reloaded or its window went
    /// (Tauri's channel sends to a gone page still succeed, so the streams would not
    /// notice).
    fn stop_streams_of(&self, caller: &str) {
        self.streams().retain(|_, (owner, task)| {
            let keep = owner != caller;
            if !keep {
                task.abort();
            }
            keep
        });
    }

    /// The streams map (a poisoned lock is taken over: the map stays consistent).
    fn streams(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.subscriptions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pages' streams by id: the webview label and the task of each.
type Streams = std::collections::HashMap<u32, (String, tauri::async_runtime::JoinHandle<()>)>;

/// Access to the plugin's store from any [`Manager`] (app, handle, window, webview).
pub trait NovaHypercoreExt<R: Runtime> {
    /// The plugin's state. Panics if the plugin was not registered (as Tauri's own
    /// `state()` does).
    fn nova_hypercore(&self) -> &NovaHypercore;
}

impl<R: Runtime, T: Manager<R>> NovaHypercoreExt<R> for T {
    fn nova_hypercore(&self) -> &NovaHypercore {
        self.state::<NovaHypercore>().inner()
    }
}

/// The plugin configured by `tauri.conf.json`'s `plugins.nova-hypercore` section, or
/// programmatically; `Builder::new().build()` is the plugin with the section alone.
///
/// ```no_run
/// fn run(context: tauri::Context) -> Result<(), Box<dyn std::error::Error>> {
///     tauri::Builder::default()
///         .plugin(tauri_plugin_nova_hypercore::Builder::new().build())
///         .run(context)?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    manager_config: Option<ManagerConfig>,
}

impl Builder {
    /// A builder that takes everything from the config section.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use `config` for the manager instead of the section's `storagePath`,
    /// `replication` and limits (which are then ignored, with a warning when set). The
    /// section's `bootstrap`, `swarmHost`, `listen` and `connect` still apply.
    pub fn manager_config(mut self, config: ManagerConfig) -> Self {
        self.manager_config = Some(config);
        self
    }

    /// The plugin. In its `setup` (an error fails the app's build): the section is
    /// checked ([`Config::manager_config`], [`Config::network`]), the manager is
    /// created and initialized, then the swarm (non-empty `bootstrap`), the `listen`er
    /// and one connector per `connect` address are started. The manager is closed
    /// when the app exits ([`RunEvent::Exit`]) or the plugin is dropped; everything an
    /// `append` acknowledged is then on disk.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R, Option<Config>> {
        let programmatic = self.manager_config;
        tauri::plugin::Builder::<R, Option<Config>>::new(PLUGIN_NAME)
            .invoke_handler(tauri::generate_handler![
                commands::append,
                commands::read,
                commands::length,
                commands::read_range,
                commands::status,
                commands::subscribe,
                commands::unsubscribe,
                commands::tail,
                replication::share,
                replication::unshare,
                replication::follow,
                replication::replication_status,
                replication::download_progress,
                replication::log_keys,
                atlas::atlas_store,
                atlas::atlas_query,
                crdt::crdt_broadcast,
                crdt::crdt_subscribe,
                crdt::crdt_unsubscribe,
                crdt::crdt_follow,
                crdt::crdt_info
            ])
            .setup(move |app, api| {
                let section = api.config().clone().unwrap_or_default();
                let manager_config = match programmatic {
                    Some(config) => {
                        if section.sets_manager_fields() {
                            tracing::warn!(
                                "nova-hypercore: init(ManagerConfig) given; the storage and limit keys of tauri.conf.json's {} are ignored",
                                config::CONFIG_PATH
                            );
                        }
                        config
                    }
                    None => section.manager_config(app.path().app_data_dir().ok().as_deref())?,
                };
                let network = section.network()?;
                let manager = HypercoreManager::new(manager_config)?;
                let links = tauri::async_runtime::block_on(start(&manager, &network))?;
                tracing::info!(storage_path = %manager.storage_path().display(), "nova-hypercore plugin ready");
                app.manage(NovaHypercore {
                    manager,
                    subscriptions: std::sync::Mutex::default(),
                    next_subscription: std::sync::atomic::AtomicU32::new(1),
                    refusals: tokio::sync::broadcast::channel(64).0,
                    listen_addr: links.listener.as_ref().map(Listener::local_addr),
                    links: std::sync::Mutex::new(Some(links)),
                });
                app.manage(atlas::AtlasState::default());
                app.manage(crdt::CrdtState::default());
                Ok(())
            })
            .on_page_load(|webview, payload| {
                if payload.event() == tauri::webview::PageLoadEvent::Started {
                    page_gone(webview.app_handle(), webview.label());
                }
            })
            .on_event(|app, event| match event {
                RunEvent::Exit => close(app),
                RunEvent::WindowEvent {
                    label,
                    event: tauri::WindowEvent::Destroyed,
                    ..
                } => page_gone(app, label),
                _ => {}
            })
            .on_drop(|app| close(&app))
            .build()
    }
}

/// The plugin with `config` for the manager: the programmatic override of
/// `tauri.conf.json`'s section ([`Builder::manager_config`]: the section's storage and
/// limit keys are ignored, its `bootstrap`, `listen` and `connect` still apply).
pub fn init<R: Runtime>(config: ManagerConfig) -> TauriPlugin<R, Option<Config>> {
    Builder::new().manager_config(config).build()
}

/// Initializes the store and starts the configured replication endpoints. On an error
/// the manager is closed again (nothing keeps running behind a failed setup).
async fn start(
    manager: &HypercoreManager,
    network: &config::Network,
) -> std::result::Result<Links, HypercoreError> {
    manager.initialize().await?;
    let started = async {
        if !network.bootstrap.is_empty() {
            let mut options = SwarmOptions::new(network.bootstrap.clone());
            if let Some(host) = network.swarm_host {
                options = options.host(host);
            }
            let key = manager.start_swarm(options).await?;
            tracing::info!(bootstrap = ?network.bootstrap, swarm_key = ?key.map(|k| crdt::hex(&k)), "nova-hypercore swarm started");
        }
        let listener = match network.listen {
            Some(addr) => Some(manager.listen(addr).await?),
            None => None,
        };
        let connectors = network.connect.iter().map(|a| manager.connect(*a)).collect();
        Ok(Links {
            listener,
            _connectors: connectors,
        })
    }
    .await;
    if started.is_err() {
        let _ = manager.close().await;
    }
    started
}

/// Webview `label`'s page is gone (reloaded, or its window destroyed): its streams and
/// CRDT subscriptions end.
fn page_gone<R: Runtime>(app: &AppHandle<R>, label: &str) {
    if let Some(state) = app.try_state::<NovaHypercore>() {
        state.stop_streams_of(label);
    }
    if let Some(crdt) = app.try_state::<crdt::CrdtState>() {
        crdt.stop_for(label);
    }
}

/// Closes the store (idempotent). Runs on its own thread so it can block even when
/// called from inside the async runtime.
fn close<R: Runtime>(app: &AppHandle<R>) {
    crdt::shutdown(app);
    let Some(state) = app.try_state::<NovaHypercore>() else {
        return;
    };
    for (_, (_, task)) in state.streams().drain() {
        task.abort();
    }
    drop(state.links.lock().unwrap_or_else(|p| p.into_inner()).take());
    let manager = state.manager.clone();
    let closed = std::thread::spawn(move || tauri::async_runtime::block_on(manager.close())).join();
    match closed {
        Ok(Ok(())) => tracing::info!("nova-hypercore store closed"),
        Ok(Err(e)) => tracing::error!(error = %e, "nova-hypercore store closed with an error"),
        Err(_) => tracing::error!("nova-hypercore store close panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gone_pages_streams_end_and_other_pages_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let manager = HypercoreManager::new(
            ManagerConfig::builder()
                .storage_path(dir.path())
                .build()
                .unwrap(),
        )
        .unwrap();
        let state = NovaHypercore {
            manager,
            subscriptions: std::sync::Mutex::default(),
            next_subscription: std::sync::atomic::AtomicU32::new(1),
            refusals: tokio::sync::broadcast::channel(1).0,
            links: std::sync::Mutex::default(),
            listen_addr: None,
        };
        let forever = || tauri::async_runtime::spawn(std::future::pending::<()>());
        state.keep_stream(1, "main", forever());
        state.keep_stream(2, "other", forever());
        state.keep_stream(3, "other", forever());
        // What the page-load and window-destroyed hooks do for "other".
        state.stop_streams_of("other");
        assert!(!state.stop_stream(2, "other"), "ended with its page");
        assert!(!state.stop_stream(3, "other"));
        assert!(!state.stop_stream(1, "other"), "not other's to stop");
        assert!(state.stop_stream(1, "main"));
    }
}
