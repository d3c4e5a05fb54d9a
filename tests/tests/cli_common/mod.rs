//! Helpers of the CLI's end-to-end suites (`cli_local.rs`, `cli_replicate.rs`): the
//! `nova-hypercore` binary of the `nova-hypercore-cli` package, built for this run, temp
//! stores, long-running processes whose stdout lines are read with a bounded wait.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The package whose binary these suites run, and the binary.
const PACKAGE: &str = "nova-hypercore-cli";
const BINARY: &str = "nova-hypercore";

/// The `nova-hypercore` executable, up to date with the CLI's sources.
///
/// This is another package's binary: cargo sets `CARGO_BIN_EXE_nova-hypercore` only for
/// the CLI package's own tests and builds a package's binaries only for those, so a
/// binary found by path in the target directory may be missing or older than the sources
/// (`cargo test -p nova-hypercore-tests` never rebuilds it). So the first call in each
/// test process runs `cargo build -p nova-hypercore-cli --bin nova-hypercore` in this
/// test's profile (nothing to do when it is up to date) and takes the executable cargo
/// reports. `cargo xtask test` runs that build before the tests, so that no test waits
/// for a compile there.
pub fn binary() -> &'static Path {
    static EXECUTABLE: OnceLock<PathBuf> = OnceLock::new();
    EXECUTABLE.get_or_init(build_binary)
}

fn build_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--package", PACKAGE, "--bin", BINARY])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    if let Some(profile) = test_profile() {
        cmd.args(["--profile", &profile]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {BINARY}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`cargo build -p {PACKAGE} --bin {BINARY}` failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let executable = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == BINARY)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    match executable {
        Some(path) if path.is_file() => path,
        other => panic!("cargo built {BINARY} but reported no executable ({other:?}):\n{stdout}"),
    }
}

/// The cargo profile this test executable was built in, read from where it lies
/// (`<target>/<profile dir>/deps/<test>`; the `dev` profile's directory is `debug`).
fn test_profile() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let dir = deps.parent()?.file_name()?.to_str()?;
    Some(if dir == "debug" { "dev" } else { dir }.to_owned())
}

/// The `nova-hypercore` binary with `--dir dir`, no environment leaking in.
pub fn cli(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(binary());
    cmd.arg("--dir")
        .arg(dir)
        .env_remove("NOVA_HYPERCORE_DIR")
        .env_remove("NOVA_HYPERCORE_BOOTSTRAP")
        .env_remove("RUST_LOG")
        .timeout(Duration::from_secs(20));
    cmd
}

/// stdout of a successful run, as text.
pub fn ok(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

/// A running `nova-hypercore` process; killed when dropped.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    /// Starts `nova-hypercore ARGS` (stdout piped and read line by line).
    pub fn spawn(args: &[&str]) -> Proc {
        let mut child = std::process::Command::new(binary())
            .args(args)
            .env_remove("NOVA_HYPERCORE_DIR")
            .env_remove("NOVA_HYPERCORE_BOOTSTRAP")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stdout line (from now on) for which `pick` gives a value, within 20 s.
    pub fn wait_for<T>(&mut self, pick: impl FnMut(&str) -> Option<T>) -> T {
        match self.within(Duration::from_secs(20), pick) {
            Some(v) => v,
            None => panic!("no such line within 20 s; seen {:?}", self.seen),
        }
    }

    /// [`wait_for`](Self::wait_for) for at most `limit`: `None` when no such line came.
    pub fn within<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = pick(&line);
                    self.seen.push(line);
                    if found.is_some() {
                        return found;
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "process ended; seen {:?}: {:?}",
                        self.seen,
                        self.child.try_wait()
                    )
                }
            }
        }
    }

    /// The address in the `listening on ADDR` line.
    pub fn listening(&mut self) -> String {
        self.wait_for(|l| l.strip_prefix("listening on ").map(str::to_owned))
    }

    /// Sends `signal` (e.g. "INT") and waits (bounded) for the exit status.
    pub fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not stop within 15 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The public key `keys LOG --json` prints.
pub fn public_key(dir: &Path, log: &str) -> String {
    let out = ok(cli(dir).args(["--json", "keys", log]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["publicKey"].as_str().unwrap().to_owned()
}
