//! Helpers of the CLI's end-to-end tests: the binary, temp stores, long-running
//! processes whose stdout lines are read with a bounded wait.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The `nova-hypercore` binary with `--dir dir`, no environment leaking in.
pub fn cli(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("nova-hypercore").unwrap();
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
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nova-hypercore"))
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
    pub fn wait_for<T>(&mut self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = pick(&line);
                    self.seen.push(line);
                    if let Some(v) = found {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no such line within 20 s; seen {:?}", self.seen)
                }
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
