//! The e2e test app of `tauri-plugin-nova-hypercore`: one real window whose page
//! (`page/index.html`, using the guest-js bundle) calls the plugin and reports one result
//! line on stdout. Run by `cargo xtask test-integration tauri` under Xvfb, alone
//! (`NOVA_E2E_ROLE` unset: the checks of `page/e2e.js`) and as a pair of processes with
//! two stores (`NOVA_E2E_ROLE=writer` / `reader`: `page/live.js`, entries appended in one
//! window shown live in the other, a Yjs text edited in both).
//!
//! Owns: the app side of the e2e protocol:
//! - `ready_for_screenshot(summary)`: prints
//!   `READY-FOR-SCREENSHOT display=.. xauthority=.. SUMMARY` and waits (at most 15 s) for one line on stdin, so the runner can take a
//!   screenshot of the window while it shows its results;
//! - `report(line)`: prints `line` (`E2E OK ...` or `E2E FAIL ...`) and exits the app, 0 for
//!   `E2E OK`, 1 otherwise;
//! - `truncate_for_e2e(logName, length)`: truncates a log of the store as its writer
//!   would (the page checks the `truncate` event of its `subscribe` channel);
//! - `e2e_params()`: `{ role, follow, crdtFollow }` from `NOVA_E2E_ROLE`,
//!   `NOVA_E2E_FOLLOW` (the writer's log key) and `NOVA_E2E_CRDT_FOLLOW` (its CRDT
//!   writer key), for the pair;
//! - `announce(line)`: prints a line for the runner (`E2E-SHARE ...`, `E2E-READER-READY
//!   ...`); `wait_line(timeoutMs)`: the runner's next stdin line, or `null`;
//! - direct replication for the pair: with `NOVA_E2E_LISTEN=<addr>` the store listens
//!   there and prints `E2E-LISTEN addr=<bound address>`; with `NOVA_E2E_CONNECT=<addr>` it
//!   dials it (and redials);
//! - a watchdog: `E2E FAIL watchdog ...` and exit 3 when no report came within 90 s.
//!
//! The store lives in `$NOVA_E2E_STORE` (a temp dir of the runner's), else in a fresh
//! directory under the system temp dir. The plugin setup is the one the README shows.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use nova_hypercore_manager::ManagerConfig;
use tauri::Manager;
use tauri_plugin_nova_hypercore::NovaHypercoreExt;

/// The store directory's variable.
const STORE_ENV: &str = "NOVA_E2E_STORE";
/// Without a report by then, the app fails and exits.
const WATCHDOG: Duration = Duration::from_secs(90);
/// The longest the window waits for the runner's screenshot.
const SCREENSHOT_WAIT: Duration = Duration::from_secs(15);

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The runner's stdin lines, read by one thread (started on first use) so a wait that
/// timed out does not leave a reader behind that would eat the next line.
fn stdin_lines() -> &'static Mutex<mpsc::Receiver<String>> {
    static LINES: OnceLock<Mutex<mpsc::Receiver<String>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                if tx.send(line.trim_end().to_owned()).is_err() {
                    return;
                }
                line.clear();
            }
        });
        Mutex::new(rx)
    })
}

/// The runner's next stdin line within `wait`.
async fn next_line(wait: Duration) -> Option<String> {
    tauri::async_runtime::spawn_blocking(move || {
        let lines = stdin_lines().lock().unwrap_or_else(|p| p.into_inner());
        lines.recv_timeout(wait).ok()
    })
    .await
    .ok()
    .flatten()
}

/// The page shows its results: tell the runner, then wait for its one stdin line (the
/// screenshot is taken) or [`SCREENSHOT_WAIT`].
#[tauri::command]
async fn ready_for_screenshot(summary: String) {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    say(&format!(
        "READY-FOR-SCREENSHOT display={} xauthority={} {summary}",
        var("DISPLAY"),
        var("XAUTHORITY")
    ));
    next_line(SCREENSHOT_WAIT).await;
}

/// What the page of this instance does (see the module doc).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    role: String,
    follow: Option<String>,
    crdt_follow: Option<String>,
}

#[tauri::command]
fn e2e_params() -> Params {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Params {
        role: var("NOVA_E2E_ROLE").unwrap_or_else(|| "single".to_owned()),
        follow: var("NOVA_E2E_FOLLOW"),
        crdt_follow: var("NOVA_E2E_CRDT_FOLLOW"),
    }
}

/// Prints `line` for the runner.
#[tauri::command]
fn announce(line: String) {
    say(&line);
}

/// The runner's next stdin line, or `None` after `timeout_ms`.
#[tauri::command]
async fn wait_line(timeout_ms: u64) -> Option<String> {
    next_line(Duration::from_millis(timeout_ms)).await
}

/// Direct replication for the pair (`NOVA_E2E_LISTEN`, `NOVA_E2E_CONNECT`): the listener
/// and the connector are kept in the app's state for as long as it runs.
fn direct_replication(app: &tauri::App) -> Result<(), Box<dyn std::error::Error>> {
    let manager = app.nova_hypercore().manager().clone();
    if let Some(addr) = std::env::var("NOVA_E2E_LISTEN")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let listener = tauri::async_runtime::block_on(manager.listen(addr.parse()?))?;
        say(&format!("E2E-LISTEN addr={}", listener.local_addr()));
        app.manage(Mutex::new(Some(listener)));
    }
    if let Some(addr) = std::env::var("NOVA_E2E_CONNECT")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let addr = addr.parse()?;
        // `connect` spawns its task on the current runtime: enter Tauri's.
        let connector = tauri::async_runtime::block_on(async { manager.connect(addr) });
        app.manage(Mutex::new(Some(connector)));
    }
    Ok(())
}

/// Prints the page's result line and exits the app (0 for `E2E OK`, else 1).
#[tauri::command]
fn report(app: tauri::AppHandle, line: String) {
    say(&line);
    app.exit(if line.starts_with("E2E OK") { 0 } else { 1 });
}

/// Truncates `log_name` of the plugin's store to `length`, as the log's writer would (a
/// truncation is not a page command); returns the new fork. The page checks that its
/// `subscribe` channel gets the `truncate` event for a log in its scope, and none for a
/// log outside it.
#[tauri::command]
async fn truncate_for_e2e(
    app: tauri::AppHandle,
    log_name: String,
    length: u64,
) -> Result<u64, String> {
    let manager = app.nova_hypercore().manager().clone();
    let log = manager
        .get_log(&log_name)
        .await
        .map_err(|e| e.to_string())?;
    log.truncate(length).await.map_err(|e| e.to_string())
}

fn store_dir() -> PathBuf {
    std::env::var_os(STORE_ENV).map_or_else(
        || std::env::temp_dir().join(format!("nova-hypercore-e2e-{}", std::process::id())),
        PathBuf::from,
    )
}

fn run() -> Result<i32, Box<dyn std::error::Error>> {
    let config = ManagerConfig::builder().storage_path(store_dir()).build()?;
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_nova_hypercore::init(config))
        .setup(|app| direct_replication(app))
        .invoke_handler(tauri::generate_handler![
            ready_for_screenshot,
            report,
            truncate_for_e2e,
            e2e_params,
            announce,
            wait_line
        ])
        .build(tauri::generate_context!())?;
    Ok(app.run_return(|_, _| {}))
}

fn main() -> ExitCode {
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        say(&format!(
            "E2E FAIL watchdog: no report within {} s",
            WATCHDOG.as_secs()
        ));
        std::process::exit(3);
    });
    match run() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            say(&format!("E2E FAIL app: {e}"));
            ExitCode::from(2)
        }
    }
}
