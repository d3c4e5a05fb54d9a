//! The IPC commands. Thin: parse the arguments, check the caller's NanoClaw scope, call
//! the manager. Every command that names a log checks the scope first; a refusal is
//! reported to the manager (observability record + `error` event) and nothing is opened
//! or written.

use nova_hypercore_manager::HypercoreManager;
use nova_hypercore_nanoclaw::NanoClawScope;
use nova_hypercore_serialization::{DecodeError, HypercoreError, LogName};
use serde::Deserialize as _;
use tauri::ipc::{Channel, CommandScope, GlobalScope, InvokeBody, Request, Response};
use tauri::{Runtime, State, Webview};

use crate::NovaHypercore;
use crate::error::Result;
use crate::events::{PageEvent, for_page};
use crate::models::{AppendArgs, LogView, ScopeEntry, StatusView, frame_entries};

/// Header naming the log of a raw-body `append`.
pub const LOG_NAME_HEADER: &str = "x-log-name";

/// The caller's scope: the command's and the plugin's global scope entries together
/// (allow entries minus deny entries), deny by default.
fn scope(
    caller: &str,
    command: &CommandScope<ScopeEntry>,
    global: &GlobalScope<ScopeEntry>,
) -> Result<NanoClawScope, HypercoreError> {
    let names = |entries: &[std::sync::Arc<ScopeEntry>]| -> Vec<String> {
        entries.iter().map(|e| e.name.clone()).collect()
    };
    let allow = [names(command.allows()), names(global.allows())].concat();
    let deny = [names(command.denies()), names(global.denies())].concat();
    NanoClawScope::new(caller, allow)
        .and_then(|s| s.with_denied(deny))
        .map_err(|e| HypercoreError::Unauthorized {
            log: None,
            reason: format!("caller {caller:?} has an invalid scope: {e}"),
        })
}

/// Checks `name` against the caller's scope; a refusal is reported to the manager.
pub(crate) fn authorize<R: Runtime>(
    manager: &HypercoreManager,
    webview: &Webview<R>,
    command: &CommandScope<ScopeEntry>,
    global: &GlobalScope<ScopeEntry>,
    name: &str,
) -> Result<LogName> {
    let checked = scope(webview.label(), command, global).and_then(|s| s.check_name(name));
    checked.map_err(|e| {
        let e = match e {
            HypercoreError::Unauthorized { log: None, reason } => HypercoreError::Unauthorized {
                log: Some(name.chars().take(128).collect()),
                reason,
            },
            other => other,
        };
        tracing::warn!(caller = webview.label(), log_name = name, error = %e, "nova-hypercore: call refused");
        manager.report_error(name, &e);
        e.into()
    })
}

pub(crate) fn schema_error(path: &str, message: impl Into<String>) -> HypercoreError {
    HypercoreError::decode(DecodeError::Schema {
        path: path.to_owned(),
        message: message.into(),
    })
}

/// `append`: JSON `{ logName, data }`, or raw bytes with the log in `x-log-name`.
/// Returns the seq.
#[tauri::command]
pub(crate) async fn append<R: Runtime>(
    request: Request<'_>,
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
) -> Result<u64> {
    let (name, data): (String, std::borrow::Cow<'_, [u8]>) = match request.body() {
        InvokeBody::Raw(bytes) => {
            let name = request
                .headers()
                .get(LOG_NAME_HEADER)
                .ok_or_else(|| schema_error(LOG_NAME_HEADER, "a raw append needs this header"))?
                .to_str()
                .map_err(|_| schema_error(LOG_NAME_HEADER, "not visible ASCII"))?;
            (name.to_owned(), bytes.as_slice().into())
        }
        InvokeBody::Json(value) => {
            let args = AppendArgs::deserialize(value)
                .map_err(|e| schema_error(".", format!("expected {{ logName, data }}: {e}")))?;
            (args.log_name, args.data.into())
        }
    };
    let manager = state.manager();
    let log = authorize(manager, &webview, &command_scope, &global_scope, &name)?;
    Ok(manager.append(log.as_str(), &data).await?)
}

/// `read`: `{ logName, seq }` -> the entry's bytes (an `ArrayBuffer` in JS).
#[tauri::command]
pub(crate) async fn read<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
    seq: u64,
) -> Result<Response> {
    let manager = state.manager();
    let log = authorize(manager, &webview, &command_scope, &global_scope, &log_name)?;
    Ok(Response::new(manager.read(log.as_str(), seq).await?))
}

/// `length`: `{ logName }` -> the log's length.
#[tauri::command]
pub(crate) async fn length<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
) -> Result<u64> {
    let manager = state.manager();
    let log = authorize(manager, &webview, &command_scope, &global_scope, &log_name)?;
    Ok(manager.get_length(log.as_str()).await?)
}

/// `read_range`: `{ logName, start, end }` (end exclusive) -> the entries framed
/// (u32 big-endian length + bytes each), concatenated.
#[tauri::command]
pub(crate) async fn read_range<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
    start: u64,
    end: u64,
) -> Result<Response> {
    let manager = state.manager();
    let log = authorize(manager, &webview, &command_scope, &global_scope, &log_name)?;
    let entries = manager.read_range(log.as_str(), start, end).await?;
    Ok(Response::new(frame_entries(log.as_str(), &entries)?))
}

/// `status`: the manager's status restricted to the logs the caller's scope allows.
#[tauri::command]
pub(crate) async fn status<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
) -> Result<StatusView> {
    let manager = state.manager();
    let scope = scope(webview.label(), &command_scope, &global_scope)?;
    let status = manager.status().await;
    let logs = manager
        .open_logs()
        .await
        .iter()
        .filter(|log| scope.allows(log.name()))
        .map(LogView::from)
        .collect();
    Ok(StatusView::new(&status, logs))
}

/// `subscribe`: manager events about the logs the caller's scope allows, sent on
/// `onEvent` (a `Channel`) until `unsubscribe` or the page goes (a send fails). Returns the
/// subscription's id. See [`crate::events`] for which events.
#[tauri::command]
pub(crate) async fn subscribe<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    on_event: Channel<PageEvent>,
) -> Result<u32> {
    let scope = scope(webview.label(), &command_scope, &global_scope)?;
    let mut events = state.manager().subscribe();
    let id = state
        .next_subscription
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let caller = webview.label().to_owned();
    let task = tauri::async_runtime::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => match for_page(&event, &scope) {
                    Some(e) => e,
                    None => continue,
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    PageEvent::Lagged { missed }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if on_event.send(event).is_err() {
                tracing::debug!(caller, subscription = id, "page gone: subscription ends");
                return;
            }
        }
    });
    let mut subscriptions = state
        .subscriptions
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    subscriptions.insert(id, task);
    Ok(id)
}

/// `unsubscribe`: ends subscription `id`; `false` if there was none.
#[tauri::command]
pub(crate) async fn unsubscribe(state: State<'_, NovaHypercore>, id: u32) -> Result<bool> {
    let task = state
        .subscriptions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    Ok(task.map(|t| t.abort()).is_some())
}
