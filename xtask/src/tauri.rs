//! The Tauri plugin's JS side and its real-window test.
//!
//! - [`guest_js_test`]: `crates/tauri-bridge/guest-js` (`npm ci`, then `npm test`: tsc and
//!   rollup build `dist/` (ESM, CJS, types) and the plugin's `withGlobalTauri` script
//!   `crates/tauri-bridge/api-iife.js`, the README's TypeScript example is type-checked,
//!   `node --test` with `@tauri-apps/api/mocks`); a rebuilt `api-iife.js` that differs from
//!   the committed one is reported (it is committed: Tauri reads it when an app is built).
//! - [`e2e`] (`cargo xtask test-integration tauri`): builds `crates/tauri-bridge/e2e-app`,
//!   runs it under `xvfb-run` with the WebKit settings a virtual display needs, takes a
//!   screenshot of the window (`target/tauri-e2e/window.png`, ImageMagick `import`) while
//!   the page shows its results, and checks the page's result line (`E2E OK ...`); then
//!   the two-instance run ([`live`]): two processes, two stores, entries appended in one
//!   window shown live in the other, a Yjs text edited in both.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::integration::{Peer, check};
use crate::system::{TAURI_PACKAGES, ensure_packages, npm_ci};
use crate::tally::Outcome;
use crate::{Result, cargo, root, run_step};

mod live;

const APP: &str = "nova-hypercore-e2e-app";
/// The plugin's `withGlobalTauri` script, relative to the workspace root.
const IIFE: &str = "crates/tauri-bridge/api-iife.js";

fn guest_js_dir() -> PathBuf {
    root().join("crates/tauri-bridge/guest-js")
}

/// Where cargo builds (`CARGO_TARGET_DIR` respected, as `cargo build` does).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root().join(t) })
        .unwrap_or_else(|| root().join("target"))
}

/// Where the screenshot and the result line are kept.
fn out_dir() -> PathBuf {
    root().join("target/tauri-e2e")
}

fn npm(step: &str, args: &[&str]) -> Result {
    run_step(
        step,
        Command::new("npm").args(args).current_dir(guest_js_dir()),
    )
}

/// Warns when the rebuilt `api-iife.js` differs from the committed one (apps built from
/// a checkout get the committed file).
fn check_iife_committed() {
    let out = Command::new("git")
        .args(["diff", "--quiet", "--", IIFE])
        .current_dir(root())
        .status();
    if matches!(out, Ok(s) if s.code() == Some(1)) {
        eprintln!(
            "  warning: {IIFE} was rebuilt from guest-js/src and differs from the committed file: commit it with the source change"
        );
    }
}

/// guest-js: `npm ci`, build, type-check the examples, `node --test`.
pub(crate) fn guest_js_test() -> Result {
    npm_ci(
        &guest_js_dir(),
        "crates/tauri-bridge/guest-js: @tauri-apps/api, typescript, rollup",
    )?;
    npm(
        "guest-js: npm test (tsc + rollup to dist/, tsc on examples/usage.ts = the README example, node --test with mockIPC)",
        &["test"],
    )?;
    check_iife_committed();
    Ok(())
}

/// Builds `api-iife.js`, the plugin's `withGlobalTauri` script the e2e app embeds (its
/// page uses `window.__TAURI__.novaHypercore`), and Yjs for the page's two-instance run
/// (copied into the page when it changed, so cargo does not rebuild the app for nothing).
fn guest_js_bundle() -> Result {
    npm_ci(
        &guest_js_dir(),
        "crates/tauri-bridge/guest-js: @tauri-apps/api, typescript, rollup, yjs",
    )?;
    npm("guest-js: npm run build", &["run", "build"])?;
    check_iife_committed();
    npm(
        "guest-js: npm run build:e2e (Yjs for the e2e page)",
        &["run", "build:e2e"],
    )?;
    let from = guest_js_dir().join("dist-e2e/yjs.iife.js");
    let to = root().join("crates/tauri-bridge/e2e-app/page/yjs.iife.js");
    let bytes = std::fs::read(&from).map_err(|e| format!("{}: {e}", from.display()))?;
    if std::fs::read(&to).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(&to, bytes).map_err(|e| format!("{}: {e}", to.display()))
}

/// The e2e app under its own `xvfb-run` (a virtual display of its own) with the WebKit
/// settings such a display needs, its store in `store`, and `env` set.
fn app_command(store: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("xvfb-run");
    cmd.args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(target_dir().join("debug").join(APP))
        .env("NOVA_E2E_STORE", store)
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .env("NO_AT_BRIDGE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A screenshot of the display named in a `READY-FOR-SCREENSHOT` line, into `png`.
fn screenshot(ready: &str, png: &Path) -> Result {
    let _ = std::fs::remove_file(png);
    run_step(
        &format!("screenshot: import -window root {}", png.display()),
        Command::new("import")
            .args(["-window", "root"])
            .arg(png)
            .env("DISPLAY", value(ready, "display").unwrap_or_default())
            .env("XAUTHORITY", value(ready, "xauthority").unwrap_or_default()),
    )
}

/// Checks that `png` shows a rendered window (not one flat colour).
fn check_rendered(png: &Path) -> Result {
    let spread = image_spread(png)?;
    check(
        "the screenshot shows a rendered window (not one flat colour)",
        spread > 0.01,
        format!("{} has pixel standard deviation {spread}", png.display()),
    )
}

/// `name=value` from a line of `key=value` words.
fn value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// The standard deviation of the screenshot's pixels (0 for a blank, one-colour image).
fn image_spread(png: &Path) -> Result<f64> {
    let out = Command::new("convert")
        .arg(png)
        .args(["-format", "%[fx:standard_deviation]", "info:"])
        .output()
        .map_err(|e| format!("convert: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .map_err(|e| format!("convert printed {text:?} for {}: {e}", png.display()))
}

/// `cargo xtask test-integration tauri`.
pub(crate) fn e2e(tmp: &Path) -> Result<Outcome> {
    ensure_packages("the tauri suite", TAURI_PACKAGES)?;
    guest_js_bundle()?;
    // The same target selection as `cargo nextest run --workspace` (dev-dependencies on,
    // so the same features): after the test step this builds only the app binary, instead
    // of rebuilding tokio, tauri and everything above them with a smaller feature set.
    let started = Instant::now();
    run_step(
        &format!("build {APP} (cargo build --workspace --all-targets)"),
        cargo().args(["build", "--quiet", "--workspace", "--all-targets"]),
    )?;
    eprintln!("  built in {:.1} s", started.elapsed().as_secs_f64());
    let out = out_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let png = out.join("window.png");

    let started = Instant::now();
    let mut app = Peer::start("e2e-app", app_command(&tmp.join("store"), &[]))?;
    let ready = app.expect_any(&["READY-FOR-SCREENSHOT", "E2E FAIL"])?;
    if ready.starts_with("E2E FAIL") {
        return Err(ready);
    }
    let shot = screenshot(&ready, &png);
    app.send("screenshot taken")?;
    let line = app.expect_any(&["E2E OK", "E2E FAIL"])?;
    app.wait()?;
    let took = started.elapsed();
    let _ = std::fs::write(out.join("result.txt"), format!("{line}\n"));
    check(
        "the page reports E2E OK",
        line.starts_with("E2E OK"),
        line.clone(),
    )?;
    check(
        "append and read back in the webview: equal bytes",
        value(&line, "read") == Some("equal"),
        line.clone(),
    )?;
    check(
        "a log outside the capability's scope is HypercoreError UNAUTHORIZED",
        value(&line, "denied") == Some("UNAUTHORIZED"),
        line.clone(),
    )?;
    check(
        "a truncation reaches the page over its subscribe channel (and none of a log out of scope)",
        value(&line, "truncate_event") == Some("fork1"),
        line.clone(),
    )?;
    check(
        "a call the window's capability refuses comes back on its subscribe channel as `refused`",
        value(&line, "refused_event") == Some("UNAUTHORIZED"),
        line.clone(),
    )?;
    let ms: f64 = value(&line, "roundtrip_1mib_ms")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no roundtrip_1mib_ms in {line:?}"))?;
    shot?;
    check_rendered(&png)?;
    eprintln!(
        "  1 MiB append + read round trip over IPC: {ms} ms (median); app run {:.1} s; screenshot {}",
        took.as_secs_f64(),
        png.display()
    );
    live::pair(tmp, &out)?;
    Ok(Outcome::Passed)
}

#[cfg(test)]
mod tests {
    use super::value;

    #[test]
    fn values_of_the_result_line() {
        let line = "E2E OK append=seq0 read=equal denied=UNAUTHORIZED truncate_event=fork1 refused_event=UNAUTHORIZED roundtrip_1mib_ms=12.5";
        assert_eq!(value(line, "read"), Some("equal"));
        assert_eq!(value(line, "denied"), Some("UNAUTHORIZED"));
        assert_eq!(value(line, "roundtrip_1mib_ms"), Some("12.5"));
        assert_eq!(value(line, "roundtrip"), None);
        assert_eq!(
            value("READY-FOR-SCREENSHOT display=:99 xauthority=", "xauthority"),
            Some("")
        );
    }
}
