//! `tauri.conf.json`'s `plugins.nova-hypercore` section, given to the mock app's context
//! as an app's config file would give it: it reaches the manager and starts the
//! replication endpoints; `init(ManagerConfig)` overrides the manager part; a bad
//! section fails the app's build with the key's path.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Harness, config, default_with};
use nova_hypercore_manager::{BootstrapNode, CoreFormat};
use serde_json::json;
use tauri_plugin_nova_hypercore::{Builder, NovaHypercoreExt, init};

/// Accepts one connection on `listener` within `timeout`; whether one came.
fn accepts_within(listener: TcpListener, timeout: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(listener.accept().is_ok());
    });
    rx.recv_timeout(timeout).unwrap_or(false)
}

/// Whether connecting to `addr` is refused within `timeout` (bounded retries).
fn refused_within(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn the_section_configures_the_manager_and_starts_listen_and_connect() {
    let dir = tempfile::tempdir().unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let h = Harness::try_new(
        default_with(&["conf-*"], &[]),
        Builder::new().build(),
        Some(json!({
            "storagePath": dir.path(),
            "replication": true,
            "maxPayloadBytes": 16,
            "maxOpenLogs": 3,
            "maxConnections": 2,
            "coreFormat": "v1",
            "listen": "127.0.0.1:0",
            "connect": [peer_addr.to_string()],
        })),
    )
    .unwrap();

    let manager = h.manager();
    let m = manager.config();
    assert_eq!(m.storage_path, dir.path());
    assert!(m.replication_enabled);
    assert_eq!(
        (m.max_payload_bytes, m.max_open_logs, m.max_connections),
        (16, 3, 2)
    );
    assert_eq!(m.core_format, CoreFormat::V1);

    // The limit is the one IPC callers meet; the store is at storagePath.
    assert_eq!(h.append("conf-log", &[1; 16]).unwrap(), 0);
    let err = h.append_raw("conf-log", &[1; 17]).unwrap_err();
    assert_eq!(err["code"], "PAYLOAD_TOO_LARGE", "{err}");
    assert!(dir.path().join("keys/conf-log.key").exists());

    // `connect`: the plugin dials the peer; `listen`: a bound listener that accepts.
    assert!(
        accepts_within(peer, Duration::from_secs(10)),
        "the plugin dialled {peer_addr}"
    );
    let listen = h.app.nova_hypercore().listen_addr().unwrap();
    assert!(listen.ip().is_loopback() && listen.port() != 0);
    TcpStream::connect_timeout(&listen, Duration::from_secs(5)).unwrap();

    // Closing the store stops the listener.
    h.shut_down();
    assert!(refused_within(listen, Duration::from_secs(5)));
}

#[test]
fn no_section_is_the_default_store_with_no_endpoint() {
    // Only the storage path is set (the default is under the user's app data dir).
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::try_new(
        default_with(&["a"], &[]),
        Builder::new().build(),
        Some(json!({ "storagePath": dir.path() })),
    )
    .unwrap();
    let manager = h.manager();
    assert_eq!(manager.config().max_payload_bytes, 1_048_576);
    assert!(!manager.config().replication_enabled);
    assert_eq!(h.app.nova_hypercore().listen_addr(), None);
    assert_eq!(
        tauri::async_runtime::block_on(manager.swarm_public_key()),
        None
    );
    h.shut_down();
}

#[test]
fn init_overrides_the_manager_keys_of_the_section_and_keeps_its_endpoints() {
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let h = Harness::try_new(
        default_with(&["a"], &[]),
        init(config(ours.path())),
        Some(json!({
            "storagePath": theirs.path(),
            "maxPayloadBytes": 16,
            "listen": "127.0.0.1:0",
        })),
    )
    .unwrap();
    let manager = h.manager();
    assert_eq!(manager.config().storage_path, ours.path());
    assert_eq!(manager.config().max_payload_bytes, 1_048_576);
    assert_eq!(h.append("a", &[0; 100]).unwrap(), 0);
    assert!(ours.path().join("keys/a.key").exists());
    assert!(!theirs.path().join("keys").exists());
    assert!(h.app.nova_hypercore().listen_addr().is_some());
    h.shut_down();
}

#[test]
fn bootstrap_nodes_start_the_managers_swarm() {
    let dir = tempfile::tempdir().unwrap();
    let node = tauri::async_runtime::block_on(BootstrapNode::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let h = Harness::try_new(
        default_with(&["a"], &[]),
        Builder::new().build(),
        Some(json!({
            "storagePath": dir.path(),
            "replication": true,
            "bootstrap": [node.addr().to_string()],
            "swarmHost": "127.0.0.1",
        })),
    )
    .unwrap();
    let key = tauri::async_runtime::block_on(h.manager().swarm_public_key());
    assert!(key.is_some(), "the swarm runs");
    let manager = h.shut_down();
    assert_eq!(
        tauri::async_runtime::block_on(manager.swarm_public_key()),
        None,
        "closing the store stopped the swarm"
    );
}

#[test]
fn a_bad_section_fails_the_apps_build_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_string_lossy().into_owned();
    for (section, needle) in [
        (
            json!({ "storagePath": store, "connect": ["127.0.0.1:1", "nope"] }),
            "`plugins.nova-hypercore.connect[1]`",
        ),
        (
            json!({ "storagePath": store, "bootstrap": ["no-port"] }),
            "`plugins.nova-hypercore.bootstrap[0]`",
        ),
        (
            json!({ "storagePath": store, "maxOpenLogs": 0 }),
            "`plugins.nova-hypercore.maxOpenLogs`",
        ),
        (
            json!({ "storagePath": "" }),
            "`plugins.nova-hypercore.storagePath`",
        ),
        // Tauri's own parse: unknown keys are refused too.
        (
            json!({ "storagePath": store, "maxPeers": 3 }),
            "unknown field `maxPeers`",
        ),
    ] {
        let err = Harness::try_new(
            default_with(&[], &[]),
            Builder::new().build(),
            Some(section.clone()),
        )
        .err()
        .unwrap_or_else(|| panic!("{section} was accepted"));
        let text = err.to_string();
        assert!(text.contains(needle), "{section}: {text}");
        assert!(text.contains("nova-hypercore"), "{text}");
    }
    // A port already taken: the manager started, and is closed again.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Harness::try_new(
        default_with(&[], &[]),
        Builder::new().build(),
        Some(json!({ "storagePath": store, "listen": taken.local_addr().unwrap().to_string() })),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("cannot listen"), "{err}");
}
