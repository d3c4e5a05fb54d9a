//! What the machine must have: Debian packages (installed with apt-get when root, otherwise
//! the exact command is printed and the step fails) and `npm ci` of the committed lockfiles
//! (skipped when `node_modules/` already matches the lockfile; everything stays in the clone).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Result, is_root, run_step};

/// What the Tauri crates need to build (webkit2gtk links even for mock tests) and the
/// e2e suite needs to run (a virtual display and a screenshot tool).
pub(crate) const TAURI_PACKAGES: &[&str] =
    &["libwebkit2gtk-4.1-dev", "xvfb", "xauth", "imagemagick"];

/// Whether the Debian package `name` is installed.
fn installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", name])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Whether apt has package lists (a fresh image may have none until `apt-get update`).
fn have_lists() -> bool {
    std::fs::read_dir("/var/lib/apt/lists").is_ok_and(|entries| {
        entries
            .filter_map(std::result::Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
    })
}

fn apt_install(packages: &[&str]) -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

fn apt_update() -> Result {
    run_step(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )
}

/// Installs the missing ones of `packages` (for `what`), running `apt-get update` first only
/// when there are no package lists, or after an install that failed. Not root: an error
/// that gives the command.
pub(crate) fn ensure_packages(what: &str, packages: &[&str]) -> Result {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        eprintln!(
            "==> Debian packages for {what}: all installed ({})",
            packages.join(" ")
        );
        return Ok(());
    }
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        return Err(format!(
            "{what} needs Debian packages that are not installed; run as root: {command}"
        ));
    }
    if !have_lists() {
        apt_update()?;
    }
    let step = format!("{command} (for {what})");
    if run_step(&step, &mut apt_install(&missing)).is_err() {
        apt_update()?;
        run_step(&step, &mut apt_install(&missing))?;
    }
    match missing.iter().find(|p| !installed(p)) {
        Some(p) => Err(format!("{p} is still not installed after: {command}")),
        None => Ok(()),
    }
}

/// `npm ci` in `dir` unless `node_modules/` was made from the same `package-lock.json`
/// (a copy of the lockfile is kept in `node_modules/.xtask-lock` as the stamp).
pub(crate) fn npm_ci(dir: &Path, what: &str) -> Result {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("{}: {e}", dir.join("package-lock.json").display()))?;
    let stamp = dir.join("node_modules").join(".xtask-lock");
    if std::fs::read(&stamp).is_ok_and(|s| s == lock) {
        eprintln!("==> npm ci ({what}): node_modules/ matches package-lock.json, kept");
        return Ok(());
    }
    run_step(
        &format!("npm ci ({what})"),
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir),
    )?;
    std::fs::write(&stamp, &lock).map_err(|e| format!("{}: {e}", stamp.display()))
}
