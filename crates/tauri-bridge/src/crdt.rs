//! CRDT collaboration from the page (spec: CRDTBridge): `crdt_broadcast`,
//! `crdt_subscribe` / `crdt_unsubscribe`, `crdt_follow` and `crdt_info`, on one
//! [`CrdtBridge`] per log, opened the first time an allowed caller names that log
//! (opening it shares the log for replication, as the bridge does).
//!
//! Thin as `commands.rs` is: parse, check the caller's NanoClaw scope on the bridge's
//! log name (a refusal opens and writes nothing), call the bridge. The log defaults to
//! the bridge's [`DEFAULT_LOG`] (`crdt-collab`). The replicas of followed writers
//! (`<log>-<16 hex of the key>`) belong to the bridge: the scope is checked on the
//! bridge's log, not on them.
//!
//! Deliveries reach the page over a `tauri::ipc::Channel` as [`CrdtDelivery`]: the
//! spec's `CRDTUpdateEntry` (payload in base64, a third of the size of a JSON number
//! array) plus the writer's key and the entry's seq. Each subscription has its own
//! forwarding task, kept in [`CrdtState`] and aborted by `crdt_unsubscribe` or when the
//! plugin closes (which also closes the bridges, persisting their delivered positions,
//! before the manager closes).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use nova_hypercore_crdt_bridge::{CrdtBridge, DEFAULT_LOG, Origin, Subscription};
use nova_hypercore_manager::HypercoreManager;
use nova_hypercore_serialization::{CRDTUpdateEntry, LogName, deserialize};
use serde::{Deserialize, Serialize};
use tauri::async_runtime::JoinHandle;
use tauri::ipc::{Channel, CommandScope, GlobalScope, InvokeBody, Request};
use tauri::{AppHandle, Manager, Runtime, State, Webview};
use tokio::sync::mpsc;

use crate::NovaHypercore;
use crate::atlas::PerLog;
use crate::commands::{LOG_NAME_HEADER, authorize, schema_error};
use crate::error::Result;
use crate::models::ScopeEntry;

/// Header with the `sourceId` of a raw-body `crdt_broadcast`, percent-encoded UTF-8
/// (what JavaScript's `encodeURIComponent` gives).
pub const SOURCE_ID_HEADER: &str = "x-crdt-source-id";

/// Entries read per range while replaying a subscription's history.
const REPLAY_CHUNK: u64 = 256;

/// One delivered CRDT update as the page receives it: the spec's `CRDTUpdateEntry`
/// (`sourceId`, `timestamp`, `causalClock`, `payload` as standard padded base64), the
/// writer's public key (64 hex) and the entry's seq in that writer's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrdtDelivery {
    /// The entry.
    #[serde(flatten)]
    pub entry: CRDTUpdateEntry,
    /// The public key of the log it is in (64 lowercase hex).
    pub writer: String,
    /// Its seq in that log.
    pub seq: u64,
}

/// A writer in [`CrdtInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriterView {
    /// Its public key (64 lowercase hex).
    pub writer: String,
    /// The local log holding its updates (ours, or the replica `<log>-<16 hex>`).
    pub log_name: String,
    /// Entries `0..delivered` of it were delivered to subscribers.
    pub delivered: u64,
}

/// What `crdt_info` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrdtInfo {
    /// The bridge's log.
    pub log_name: String,
    /// This store's writer key for it (64 hex): what other peers pass to `crdt_follow`.
    pub writer: String,
    /// Every writer whose updates are delivered, ours included, by key.
    pub writers: Vec<WriterView>,
    /// The vector clock the next broadcast builds on.
    pub clock: BTreeMap<String, u64>,
}

/// The JSON form of `crdt_broadcast`: `{ logName?, update, sourceId }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BroadcastArgs {
    /// The bridge's log; [`DEFAULT_LOG`] when absent.
    #[serde(default)]
    pub log_name: Option<String>,
    /// The CRDT update, as a number array.
    pub update: Vec<u8>,
    /// The replica that made it (a clock key).
    pub source_id: String,
}

/// A page's CRDT subscription: the handler registered on the bridge and the task
/// forwarding to the page. Dropping it removes the handler and stops the task.
#[derive(Debug)]
struct CrdtSubscription {
    _handler: Subscription,
    task: JoinHandle<()>,
    /// The label of the webview that subscribed (only it may end the subscription; it
    /// ends when that page reloads or its window goes).
    caller: String,
}

impl Drop for CrdtSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The plugin's CRDT bridges (one per log name) and the pages' CRDT subscriptions
/// (managed state beside [`NovaHypercore`]).
#[derive(Debug)]
pub struct CrdtState {
    bridges: PerLog<CrdtBridge>,
    subscriptions: Mutex<HashMap<u32, CrdtSubscription>>,
    next_subscription: AtomicU32,
}

impl Default for CrdtState {
    fn default() -> Self {
        CrdtState {
            bridges: PerLog::default(),
            subscriptions: Mutex::default(),
            next_subscription: AtomicU32::new(1),
        }
    }
}

impl CrdtState {
    /// The bridge on `log` (opened on first use).
    async fn bridge(&self, manager: &HypercoreManager, log: &LogName) -> Result<CrdtBridge> {
        let manager = manager.clone();
        let name = log.clone();
        self.bridges
            .get_or_open(log, || async move {
                CrdtBridge::open_log(&manager, name.as_str()).await
            })
            .await
    }

    fn subscriptions(&self) -> std::sync::MutexGuard<'_, HashMap<u32, CrdtSubscription>> {
        self.subscriptions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the subscriptions of webview `caller` (its page reloaded or its window went:
    /// Tauri's channel sends to a gone page still succeed, so nothing else ends them).
    pub(crate) fn stop_for(&self, caller: &str) {
        let ended: Vec<CrdtSubscription> = {
            let mut subscriptions = self.subscriptions();
            let ids: Vec<u32> = subscriptions
                .iter()
                .filter(|(_, s)| s.caller == caller)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| subscriptions.remove(id))
                .collect()
        };
        drop(ended);
    }
}

/// Ends every CRDT subscription and closes every bridge (persisting how far each log
/// was delivered). Called by the plugin's close before the manager closes; blocks on
/// its own thread so it works from inside the async runtime too.
pub(crate) fn shutdown<R: Runtime>(app: &AppHandle<R>) {
    let Some(state) = app.try_state::<CrdtState>() else {
        return;
    };
    let subscriptions: Vec<CrdtSubscription> =
        state.subscriptions().drain().map(|(_, s)| s).collect();
    drop(subscriptions);
    let bridges = state.bridges.take_all();
    if bridges.is_empty() {
        return;
    }
    let closed = std::thread::spawn(move || {
        tauri::async_runtime::block_on(async move {
            for bridge in bridges {
                if let Err(e) = bridge.close().await {
                    tracing::error!(log = %bridge.log_name(), error = %e, "CRDT bridge closed with an error");
                }
            }
        })
    })
    .join();
    if closed.is_err() {
        tracing::error!("CRDT bridges' close panicked");
    }
}

/// Lowercase hex of a key.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 64-hex public key (either case); `None` for anything else.
pub fn parse_key(hex: &str) -> Option<[u8; 32]> {
    let digits = hex.as_bytes();
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(key)
}

/// Decodes `%XX` escapes (as `encodeURIComponent` writes them) into UTF-8; `None` for
/// a malformed escape or bytes that are not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let pair = bytes.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn source_id_error(message: &str) -> crate::Error {
    schema_error("sourceId", message).into()
}

/// `crdt_broadcast`: raw body (the update's bytes) with headers `x-crdt-source-id`
/// (percent-encoded) and optionally `x-log-name`, or JSON `{ logName?, update, sourceId }`.
/// Returns the entry's seq in this store's log.
#[tauri::command]
pub(crate) async fn crdt_broadcast<R: Runtime>(
    request: Request<'_>,
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    crdt: State<'_, CrdtState>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
) -> Result<u64> {
    let (name, update, source_id): (String, std::borrow::Cow<'_, [u8]>, String) =
        match request.body() {
            InvokeBody::Raw(bytes) => {
                let header = |key: &str| -> Result<Option<&str>> {
                    request
                        .headers()
                        .get(key)
                        .map(|v| {
                            v.to_str()
                                .map_err(|_| schema_error(key, "not visible ASCII").into())
                        })
                        .transpose()
                };
                let name = header(LOG_NAME_HEADER)?.unwrap_or(DEFAULT_LOG).to_owned();
                let encoded = header(SOURCE_ID_HEADER)?
                    .ok_or_else(|| source_id_error("a raw broadcast needs x-crdt-source-id"))?;
                let source_id = percent_decode(encoded)
                    .ok_or_else(|| source_id_error("not percent-encoded UTF-8"))?;
                (name, bytes.as_slice().into(), source_id)
            }
            InvokeBody::Json(value) => {
                let args = BroadcastArgs::deserialize(value).map_err(|e| {
                    schema_error(
                        ".",
                        format!("expected {{ logName?, update, sourceId }}: {e}"),
                    )
                })?;
                let name = args.log_name.unwrap_or_else(|| DEFAULT_LOG.to_owned());
                (name, args.update.into(), args.source_id)
            }
        };
    if source_id.is_empty() {
        return Err(source_id_error("must not be empty"));
    }
    let manager = state.manager();
    let log = authorize(&state, &webview, &command_scope, &global_scope, &name)?;
    let bridge = crdt.bridge(manager, &log).await?;
    Ok(bridge.broadcast(&update, &source_id).await?)
}

/// `crdt_subscribe`: `{ logName?, onUpdate: Channel, fromStart? }` -> the subscription id.
/// Every update the bridge delivers from now on (this store's and every followed
/// writer's, each writer's in log order) is sent on `onUpdate` as a [`CrdtDelivery`].
/// With `fromStart: true`, every update delivered before is sent first (a fresh page
/// document gets the whole state); an update may then arrive twice, which a CRDT
/// ignores.
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub(crate) async fn crdt_subscribe<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    crdt: State<'_, CrdtState>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: Option<String>,
    on_update: Channel<CrdtDelivery>,
    from_start: Option<bool>,
) -> Result<u32> {
    let manager = state.manager();
    let name = log_name.as_deref().unwrap_or(DEFAULT_LOG);
    let log = authorize(&state, &webview, &command_scope, &global_scope, name)?;
    let bridge = crdt.bridge(manager, &log).await?;
    let id = crdt.next_subscription.fetch_add(1, Ordering::Relaxed);
    let caller = webview.label().to_owned();
    let subscription = forward(
        manager.clone(),
        &bridge,
        on_update,
        from_start.unwrap_or(false),
        move || {
            tracing::debug!(
                caller,
                subscription = id,
                "page gone: CRDT subscription ends"
            );
            if let Some(state) = app.try_state::<CrdtState>() {
                state.subscriptions().remove(&id);
            }
        },
    );
    let mut subscription = subscription;
    subscription.caller = webview.label().to_owned();
    let mut subscriptions = crdt.subscriptions();
    subscriptions.retain(|_, s| !s.task.inner().is_finished());
    subscriptions.insert(id, subscription);
    Ok(id)
}

/// Registers a handler on `bridge` and spawns the task that sends its deliveries on
/// `channel` (after the history up to now, with `from_start`); `on_gone` runs when a
/// send fails.
fn forward(
    manager: HypercoreManager,
    bridge: &CrdtBridge,
    channel: Channel<CrdtDelivery>,
    from_start: bool,
    on_gone: impl FnOnce() + Send + 'static,
) -> CrdtSubscription {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = bridge.on_delivery(move |entry, origin: Origin| {
        let _ = tx.send(CrdtDelivery {
            entry: entry.clone(),
            writer: hex(&origin.writer),
            seq: origin.seq,
        });
    });
    // Taken after the handler is registered: whatever is not delivered by now reaches it.
    let history = from_start.then(|| {
        let delivered = bridge.delivered();
        bridge
            .writers()
            .into_iter()
            .map(|(key, log)| (key, log, delivered.get(&key).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
    });
    let task = tauri::async_runtime::spawn(async move {
        for (key, log, delivered) in history.unwrap_or_default() {
            if replay(&manager, &channel, key, &log, delivered)
                .await
                .is_err()
            {
                on_gone();
                return;
            }
        }
        while let Some(delivery) = rx.recv().await {
            if channel.send(delivery).is_err() {
                on_gone();
                return;
            }
        }
    });
    CrdtSubscription {
        _handler: handler,
        task,
        caller: String::new(),
    }
}

/// Sends entries `0..delivered` of writer `key`'s log `log`. A read failure ends the
/// replay of that log (logged); `Err` only when the page is gone.
async fn replay(
    manager: &HypercoreManager,
    channel: &Channel<CrdtDelivery>,
    key: [u8; 32],
    log: &LogName,
    delivered: u64,
) -> std::result::Result<(), tauri::Error> {
    let writer = hex(&key);
    let mut from = 0;
    while from < delivered {
        let to = delivered.min(from + REPLAY_CHUNK);
        let blocks = match manager.read_range(log.as_str(), from, to).await {
            Ok(blocks) => blocks,
            Err(e) => {
                tracing::warn!(log = %log, error = %e, "CRDT history could not be read for a subscription");
                return Ok(());
            }
        };
        for (seq, bytes) in (from..).zip(blocks) {
            // An entry that does not decode was reported by the bridge when delivered.
            if let Ok(entry) = deserialize::<CRDTUpdateEntry>(&bytes) {
                channel.send(CrdtDelivery {
                    entry,
                    writer: writer.clone(),
                    seq,
                })?;
            }
        }
        from = to;
    }
    Ok(())
}

/// `crdt_unsubscribe`: `{ id }` -> whether this window had such a CRDT subscription.
#[tauri::command]
pub(crate) async fn crdt_unsubscribe<R: Runtime>(
    webview: Webview<R>,
    crdt: State<'_, CrdtState>,
    id: u32,
) -> Result<bool> {
    let subscription = {
        let mut subscriptions = crdt.subscriptions();
        // Another window's subscription is not this one's to end.
        match subscriptions.get(&id) {
            Some(s) if s.caller == webview.label() => subscriptions.remove(&id),
            _ => None,
        }
    };
    Ok(subscription.is_some())
}

/// `crdt_follow`: `{ logName?, publicKey }` (64 hex) -> the local name of the writer's
/// replica. Following a writer twice is a no-op.
#[tauri::command]
pub(crate) async fn crdt_follow<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    crdt: State<'_, CrdtState>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: Option<String>,
    public_key: String,
) -> Result<String> {
    let key = parse_key(&public_key).ok_or_else(|| {
        schema_error(
            "publicKey",
            "expected 64 hex digits (a writer's public key)",
        )
    })?;
    let manager = state.manager();
    let name = log_name.as_deref().unwrap_or(DEFAULT_LOG);
    let log = authorize(&state, &webview, &command_scope, &global_scope, name)?;
    let bridge = crdt.bridge(manager, &log).await?;
    Ok(bridge.follow(key).await?.to_string())
}

/// `crdt_info`: `{ logName? }` -> [`CrdtInfo`].
#[tauri::command]
pub(crate) async fn crdt_info<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    crdt: State<'_, CrdtState>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: Option<String>,
) -> Result<CrdtInfo> {
    let manager = state.manager();
    let name = log_name.as_deref().unwrap_or(DEFAULT_LOG);
    let log = authorize(&state, &webview, &command_scope, &global_scope, name)?;
    let bridge = crdt.bridge(manager, &log).await?;
    let delivered = bridge.delivered();
    Ok(CrdtInfo {
        log_name: bridge.log_name().to_string(),
        writer: hex(&bridge.public_key()),
        writers: bridge
            .writers()
            .into_iter()
            .map(|(key, log)| WriterView {
                writer: hex(&key),
                log_name: log.to_string(),
                delivered: delivered.get(&key).copied().unwrap_or(0),
            })
            .collect(),
        clock: bridge.clock(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use nova_hypercore_manager::ManagerConfig;
    use tauri::ipc::InvokeResponseBody;

    #[test]
    fn keys_and_source_ids_decode_strictly() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        assert_eq!(parse_key(&hex(&key)), Some(key));
        assert_eq!(parse_key(&hex(&key).to_uppercase()), Some(key));
        assert_eq!(parse_key(&hex(&key)[1..]), None);
        assert_eq!(parse_key(&format!("{}zz", &hex(&key)[2..])), None);
        assert_eq!(parse_key("+f"), None);
        assert_eq!(
            percent_decode("client%20%C3%A9-1").as_deref(),
            Some("client é-1")
        );
        assert_eq!(percent_decode("12345").as_deref(), Some("12345"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn a_delivery_is_the_spec_entry_with_writer_and_seq() {
        let delivery = CrdtDelivery {
            entry: CRDTUpdateEntry {
                source_id: "42".into(),
                timestamp: 7,
                causal_clock: [("42".to_owned(), 1)].into(),
                payload: vec![1, 2, 255],
            },
            writer: "ab".repeat(32),
            seq: 3,
        };
        assert_eq!(
            serde_json::to_value(&delivery).unwrap(),
            serde_json::json!({
                "sourceId": "42", "timestamp": 7, "causalClock": { "42": 1 },
                "payload": "AQL/", "writer": "ab".repeat(32), "seq": 3
            })
        );
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<CrdtDelivery>) -> CrdtDelivery {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
    }

    /// The forwarding task: history first with `fromStart`, then live deliveries, each
    /// named by writer and seq; a page that is gone ends it.
    #[test]
    fn forward_sends_history_then_live_updates_and_stops_when_the_page_is_gone() {
        let rt = nova_hypercore_testkit::runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let config = ManagerConfig::builder()
                .storage_path(dir.path())
                .build()
                .unwrap();
            let manager = HypercoreManager::new(config).unwrap();
            manager.initialize().await.unwrap();
            let bridge = CrdtBridge::open(&manager).await.unwrap();
            // Delivered once (to another handler) before the page subscribes.
            let (tx, mut rx) = mpsc::unbounded_channel();
            let early = bridge.on_update(move |e| {
                let _ = tx.send(e.payload.clone());
            });
            bridge.broadcast(b"old", "a").await.unwrap();
            assert_eq!(rx.recv().await.unwrap(), b"old");
            drop(early);

            let (page_tx, mut page_rx) = mpsc::unbounded_channel();
            let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let is_open = Arc::clone(&open);
            let channel = Channel::<CrdtDelivery>::new(move |body| {
                if !is_open.load(Ordering::SeqCst) {
                    return Err(tauri::Error::WebviewNotFound);
                }
                let InvokeResponseBody::Json(json) = body else {
                    panic!("JSON expected")
                };
                let _ = page_tx.send(serde_json::from_str::<CrdtDelivery>(&json).unwrap());
                Ok(())
            });
            let (gone_tx, gone_rx) = tokio::sync::oneshot::channel();
            let sub = forward(manager.clone(), &bridge, channel, true, move || {
                let _ = gone_tx.send(());
            });
            bridge.broadcast(b"new", "b").await.unwrap();
            let first = next(&mut page_rx).await;
            assert_eq!(
                (first.entry.payload.as_slice(), first.seq),
                (&b"old"[..], 0)
            );
            assert_eq!(first.writer, hex(&bridge.public_key()));
            let second = next(&mut page_rx).await;
            assert_eq!(
                (second.entry.payload.as_slice(), second.seq),
                (&b"new"[..], 1)
            );
            assert_eq!(second.entry.causal_clock["b"], 1);
            assert_eq!(second.entry.causal_clock["a"], 1, "the clock saw the first");

            open.store(false, Ordering::SeqCst);
            bridge.broadcast(b"lost", "b").await.unwrap();
            tokio::time::timeout(Duration::from_secs(10), gone_rx)
                .await
                .unwrap()
                .unwrap();
            drop(sub);
            bridge.close().await.unwrap();
            manager.close().await.unwrap();
        });
    }
}
