//! The IPC commands. Thin: parse the arguments, check the caller's NanoClaw scope, call
//! the manager. Every command that names a log checks the scope first; a refusal is
//! reported to the manager (observability record + `error` event) and nothing is opened
//! or written.

use nova_hypercore_manager::{GetOptions, ManagedLog};
use nova_hypercore_nanoclaw::NanoClawScope;
use nova_hypercore_serialization::{DecodeError, HypercoreError, LogName};
use serde::Deserialize as _;
use tauri::ipc::{
    Channel, CommandScope, GlobalScope, InvokeBody, InvokeResponseBody, Request, Response,
};
use tauri::{Runtime, State, Webview};

use crate::NovaHypercore;
use crate::error::Result;
use crate::events::{PageEvent, Refusal};
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

/// Checks `name` against the caller's scope; a refusal is reported to the manager
/// (observability record + `error` event) and to the caller's `subscribe` channels
/// (`refused`).
pub(crate) fn authorize<R: Runtime>(
    state: &NovaHypercore,
    webview: &Webview<R>,
    command: &CommandScope<ScopeEntry>,
    global: &GlobalScope<ScopeEntry>,
    name: &str,
) -> Result<LogName> {
    let checked = scope(webview.label(), command, global).and_then(|s| s.check_name(name));
    checked.map_err(|e| {
        let shown: String = name.chars().take(128).collect();
        let e = match e {
            HypercoreError::Unauthorized { log: None, reason } => HypercoreError::Unauthorized {
                log: Some(shown.clone()),
                reason,
            },
            other => other,
        };
        tracing::warn!(caller = webview.label(), log_name = %shown, error = %e, "nova-hypercore: call refused");
        state.manager().report_error(&shown, &e);
        // No window listening is fine.
        let _ = state.refusals.send(Refusal {
            caller: webview.label().to_owned(),
            log_name: shown,
            error: e.to_payload(),
        });
        e.into()
    })
}

/// [`authorize`], then the log if this store has it (commands that only read never
/// create one: `STORAGE_INACCESSIBLE` otherwise).
pub(crate) async fn authorized_existing<R: Runtime>(
    state: &NovaHypercore,
    webview: &Webview<R>,
    command: &CommandScope<ScopeEntry>,
    global: &GlobalScope<ScopeEntry>,
    name: &str,
) -> Result<ManagedLog> {
    let name = authorize(state, webview, command, global, name)?;
    Ok(state.manager().existing_log(name.as_str()).await?)
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
    let log = authorize(&state, &webview, &command_scope, &global_scope, &name)?;
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
    let log =
        authorized_existing(&state, &webview, &command_scope, &global_scope, &log_name).await?;
    // A replica's block not here yet is fetched (a sparse replica asks its peers), up to
    // the default wait; a seq past the length is OUT_OF_RANGE at once.
    let value = if log.is_writable() || seq >= log.current_length().await? {
        log.get(seq).await?
    } else {
        log.get_with(seq, GetOptions::default()).await?
    };
    Ok(Response::new(value))
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
    let log =
        authorized_existing(&state, &webview, &command_scope, &global_scope, &log_name).await?;
    Ok(log.current_length().await?)
}

/// `read_range`: `{ logName, start, end }` (end exclusive) -> entries `start..` framed
/// (u32 big-endian length + bytes each), concatenated: one page of at most
/// [`MAX_RANGE_ENTRIES`] entries and about [`MAX_RANGE_BYTES`] bytes (at least one
/// entry). The caller asks again from `start + entries received` for the rest.
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
    let log =
        authorized_existing(&state, &webview, &command_scope, &global_scope, &log_name).await?;
    Ok(Response::new(read_page(&log, start, end).await?))
}

/// Most entries one `read_range` call returns.
pub const MAX_RANGE_ENTRIES: u64 = 1024;
/// A `read_range` page stops taking entries once it holds this many bytes.
pub const MAX_RANGE_BYTES: usize = 8 << 20;

/// Entries `start..end` of `log` (checked against its length as `get_range` does), cut
/// to one page, framed. A replica's blocks not here yet are fetched (as `read` does).
async fn read_page(log: &ManagedLog, start: u64, end: u64) -> Result<Vec<u8>, HypercoreError> {
    let length = log.current_length().await?;
    if start > end || end > length {
        // The log's own range check gives the typed error.
        log.get_range(start, end).await?;
    }
    let end = end.min(start.saturating_add(MAX_RANGE_ENTRIES));
    let mut out = Vec::new();
    let mut next = start;
    // Read in chunks sized from the entries seen so far, so a page of large entries
    // stops near the byte limit without reading far past it.
    let mut per_read = 16u64;
    while next < end && (next == start || out.len() < MAX_RANGE_BYTES) {
        let chunk_end = end.min(next.saturating_add(per_read));
        let entries = if log.is_writable() {
            log.get_range(next, chunk_end).await?
        } else {
            log.get_range_with(next, chunk_end, GetOptions::default())
                .await?
        };
        let bytes: usize = entries.iter().map(Vec::len).sum();
        let average = (bytes / entries.len().max(1)).max(1);
        let room = MAX_RANGE_BYTES.saturating_sub(out.len()).max(average);
        per_read = ((room / average) as u64).clamp(1, 64);
        for entry in entries {
            if next > start && out.len().saturating_add(4 + entry.len()) > MAX_RANGE_BYTES {
                return Ok(out);
            }
            out.extend_from_slice(&frame_entries(
                log.name().as_str(),
                std::slice::from_ref(&entry),
            )?);
            next += 1;
        }
    }
    Ok(out)
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
    let id = state
        .next_subscription
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let caller = webview.label().to_owned();
    let (manager, refusals) = (state.manager().clone(), state.refusals.subscribe());
    let task = tauri::async_runtime::spawn(async move {
        crate::events::forward(manager, scope, refusals, |event| {
            on_event.send(event).is_ok()
        })
        .await;
        tracing::debug!(caller, subscription = id, "subscription ended");
    });
    state.keep_stream(id, webview.label(), task);
    Ok(id)
}

/// `tail`: `{ logName, fromSeq, fork?, onEntry }` -> the stream's id (`fork`: the fork
/// the page's entries before `fromSeq` are of, when it resumes a tail: a truncation
/// since then comes first). Sends entries `fromSeq..`
/// of the log and then every new one on `onEntry` (a `Channel`), until `unsubscribe(id)`,
/// the page goes, the log is deleted or the store closes ([`crate::tail`]: the messages).
/// The scope is checked when the tail starts; a log that does not exist is
/// `STORAGE_INACCESSIBLE` (a tail never creates one).
#[tauri::command]
#[allow(clippy::too_many_arguments)] // Tauri's command arguments: each one is injected
pub(crate) async fn tail<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
    log_name: String,
    from_seq: u64,
    fork: Option<u64>,
    on_entry: Channel<InvokeResponseBody>,
) -> Result<u32> {
    let log =
        authorized_existing(&state, &webview, &command_scope, &global_scope, &log_name).await?;
    let id = state
        .next_subscription
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let manager = state.manager().clone();
    let task = tauri::async_runtime::spawn(async move {
        let log_name = log.name().to_string();
        crate::tail::run(manager, log, from_seq, fork, |message| {
            match message.body(&log_name) {
                Ok(body) => on_entry.send(body).is_ok(),
                Err(e) => {
                    tracing::error!(log_name, error = %e, "tail: a message could not be encoded: the stream ends");
                    false
                }
            }
        })
        .await;
        tracing::debug!(log_name, tail = id, "tail ended");
    });
    state.keep_stream(id, webview.label(), task);
    Ok(id)
}

/// `unsubscribe`: ends subscription or tail `id` of this window; `false` if it had none
/// running (another window's stream is not this one's to end).
#[tauri::command]
pub(crate) async fn unsubscribe<R: Runtime>(
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    id: u32,
) -> Result<bool> {
    Ok(state.stop_stream(id, webview.label()))
}
