//! The e2e test app of `tauri-plugin-nova-hypercore`: one real window whose page
//! (`page/index.html`, using the guest-js bundle) calls the plugin and reports one result
//! line on stdout. Run by `cargo xtask test-integration tauri` under Xvfb.
//!
//! Owns: the app side of the e2e protocol:
//! - `ready_for_screenshot(summary)`: prints
//!   `READY-FOR-SCREENSHOT display=.. xauthority=.. SUMMARY` and waits (at most 15 s) for one line on stdin, so the runner can take a
//!   screenshot of the window while it shows its results;
//! - `report(line)`: prints `line` (`E2E OK ...` or `E2E FAIL ...`) and exits the app, 0 for
//!   `E2E OK`, 1 otherwise;
//! - `truncate_for_e2e(logName, length)`: truncates a log of the store as its writer
//!   would (the page checks the `truncate` event of its `subscribe` channel);
//! - a watchdog: `E2E FAIL watchdog ...` and exit 3 when no report came within 60 s.
//!
//! The store lives in `$NOVA_E2E_STORE` (a temp dir of the runner's), else in a fresh
//! directory under the system temp dir. The plugin setup is the one the README shows.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use nova_hypercore_manager::ManagerConfig;

/// The store directory's variable.
const STORE_ENV: &str = "NOVA_E2E_STORE";
/// Without a report by then, the app fails and exits.
const WATCHDOG: Duration = Duration::from_secs(60);
/// The longest the window waits for the runner's screenshot.
const SCREENSHOT_WAIT: Duration = Duration::from_secs(15);

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
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
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    let _ = tauri::async_runtime::spawn_blocking(move || rx.recv_timeout(SCREENSHOT_WAIT)).await;
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
    use tauri_plugin_nova_hypercore::NovaHypercoreExt;
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
        .invoke_handler(tauri::generate_handler![
            ready_for_screenshot,
            report,
            truncate_for_e2e
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
