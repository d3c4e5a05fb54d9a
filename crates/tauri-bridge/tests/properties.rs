//! Spec property 14 across runtimes: the plugin's IPC and JS hypercore 10.31.12 on one
//! store directory, each reading what the other appended.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use common::{Harness, default_with, runtime};
use nova_hypercore_testkit::{CaseCounter, property_config};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::json;

const LOG: &str = "p14-log";

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One node process running `tests/js/round-trip.mjs`, one request per line.
struct JsPeer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl JsPeer {
    /// `None` (after saying SKIPPED) when node or `js/interop/node_modules` is missing,
    /// unless `CI=true`, where that is a failure naming what is missing.
    fn start() -> Option<JsPeer> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let modules = root.join("../../js/interop/node_modules/hypercore/package.json");
        let node = Command::new("node").arg("--version").output();
        let missing = match (&node, modules.exists()) {
            (Ok(out), true) if out.status.success() => None,
            (Ok(out), _) if out.status.success() => Some(format!(
                "{} (run `npm ci` in js/interop)",
                modules.display()
            )),
            _ => Some("the `node` executable on PATH".to_string()),
        };
        if let Some(missing) = missing {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("property 14 needs {missing}");
            }
            println!("SKIPPED: property 14 needs node and npm ci in js/interop");
            return None;
        }
        let mut child = Command::new("node")
            .arg(root.join("tests/js/round-trip.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Some(JsPeer {
            child,
            stdin,
            lines,
        })
    }

    fn ask(&mut self, request: &str) -> String {
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let answer = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("no answer from node to {request:?}: {e}"));
        assert!(!answer.starts_with("ERR"), "{request:?} -> {answer}");
        answer
    }
}

impl Drop for JsPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => vec(any::<u8>(), 1..64),
        2 => vec(any::<u8>(), 64..4096),
    ]
}

/// The log's directory and public key, as the plugin's manager created them.
fn log_location(h: &Harness) -> (PathBuf, String) {
    runtime().block_on(async {
        let log = h.manager().get_log(LOG).await.unwrap();
        (log.path().to_owned(), hex(&log.public_key()))
    })
}

/// Feature: p2p-hypercore-protocol, Property 14: Cross-runtime append-read round trip
#[test]
fn property_14_cross_runtime_append_read_round_trip() {
    let Some(js) = JsPeer::start() else {
        return;
    };
    let js = std::cell::RefCell::new(js);
    let cases = CaseCounter::new(14);
    proptest!(property_config(), |(
        from_rust in vec((payload(), any::<bool>()), 1..6),
        from_js in vec(payload(), 1..6),
    )| {
        cases.hit();
        let dir = tempfile::tempdir().unwrap();
        let capability = || default_with(&["p14-*"], &[]);

        // Rust appends through the plugin's IPC (JSON and raw bodies), then exits.
        let h = Harness::new(dir.path(), capability());
        for (i, (p, raw)) in from_rust.iter().enumerate() {
            let seq = if *raw { h.append_raw(LOG, p) } else { h.append(LOG, p) };
            prop_assert_eq!(seq.unwrap(), i as u64);
        }
        let (core_dir, key) = log_location(&h);
        h.shut_down();

        // JS reads every entry byte for byte, then appends its own with the log's key pair.
        let core = core_dir.display().to_string();
        for (i, (p, _)) in from_rust.iter().enumerate() {
            prop_assert_eq!(js.borrow_mut().ask(&format!("read {core} {key} {i}")), hex(p), "seq {}", i);
        }
        let secret = std::fs::read(dir.path().join(format!("keys/{LOG}.key"))).unwrap();
        prop_assert_eq!(secret.len(), 64);
        let secret = hex(&secret);
        let base = from_rust.len();
        for (j, p) in from_js.iter().enumerate() {
            let seq = js.borrow_mut().ask(&format!("append {core} {key} {secret} {}", hex(p)));
            prop_assert_eq!(seq, (base + j).to_string());
        }

        // The plugin, reopened on the same store, reads JS's entries (and its own).
        let h = Harness::new(dir.path(), capability());
        let total = (base + from_js.len()) as u64;
        let length = h.json("length", json!({ "logName": LOG })).unwrap();
        prop_assert_eq!(length.deserialize::<u64>().unwrap(), total);
        for (j, p) in from_js.iter().enumerate() {
            prop_assert_eq!(&h.read(LOG, (base + j) as u64).unwrap(), p);
        }
        for (i, (p, _)) in from_rust.iter().enumerate() {
            prop_assert_eq!(&h.read(LOG, i as u64).unwrap(), p);
        }
        h.shut_down();
    });
}
