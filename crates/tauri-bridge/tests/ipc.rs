//! The plugin through Tauri's real IPC path with the ACL enforced: a `RuntimeAuthority`
//! resolved from this plugin's `permissions/` files and a capability as an app writes it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Harness, capability, default_with, plain_manager, raw, runtime};
use nova_hypercore_manager::ManagerEvent;
use nova_hypercore_serialization::{ErrorCode, Operation};
use serde_json::{Value, json};
use tauri::ipc::InvokeBody;
use tauri_plugin_nova_hypercore::models::StatusView;

fn code(err: &Value) -> &str {
    err["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error object: {err}"))
}

/// Key files in the store: one per log ever created.
fn key_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".key"))
        .collect();
    names.sort();
    names
}

#[test]
fn an_allowed_log_round_trips_json_and_raw_appends_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), default_with(&["agent-*", "atlas-memory"], &[]));
    let payloads: [&[u8]; 4] = [b"", b"\x00\xff\x10 json", &[7u8; 3000], b"raw \x00 bytes"];

    assert_eq!(h.append("agent-state", payloads[0]).unwrap(), 0);
    assert_eq!(h.append("agent-state", payloads[1]).unwrap(), 1);
    assert_eq!(h.append_raw("agent-state", payloads[2]).unwrap(), 2);
    assert_eq!(h.append_raw("agent-state", payloads[3]).unwrap(), 3);
    assert_eq!(h.append_raw("atlas-memory", b"node").unwrap(), 0);
    for (seq, p) in payloads.iter().enumerate() {
        assert_eq!(h.read("agent-state", seq as u64).unwrap(), *p, "seq {seq}");
    }
    let length = h
        .json("length", json!({ "logName": "agent-state" }))
        .unwrap();
    assert_eq!(length.deserialize::<u64>().unwrap(), 4);

    // read_range: u32 big-endian length + bytes per entry, end exclusive.
    let framed = raw(h
        .json(
            "read_range",
            json!({ "logName": "agent-state", "start": 1, "end": 4 }),
        )
        .unwrap());
    let mut expected = Vec::new();
    for p in &payloads[1..4] {
        expected.extend_from_slice(&(p.len() as u32).to_be_bytes());
        expected.extend_from_slice(p);
    }
    assert_eq!(framed, expected);

    let status: StatusView = h.json("status", json!({})).unwrap().deserialize().unwrap();
    assert!(status.initialized);
    assert_eq!(status.log_count, 2);
    assert_eq!(status.logs[0].log_name, "agent-state");
    assert_eq!(status.logs[0].length, 4);
    assert_eq!(status.logs[1].log_name, "atlas-memory");

    // Acknowledged appends survive the plugin's end: a plain manager reads them.
    let closed = h.shut_down();
    let rt = runtime();
    rt.block_on(async {
        assert!(
            !closed.status().await.initialized,
            "the plugin closed its manager"
        );
        let m = plain_manager(dir.path()).await;
        for (seq, p) in payloads.iter().enumerate() {
            assert_eq!(m.read("agent-state", seq as u64).await.unwrap(), *p);
        }
        assert_eq!(m.read("atlas-memory", 0).await.unwrap(), b"node");
        m.close().await.unwrap();
    });
}

#[test]
fn a_log_outside_the_scope_is_unauthorized_writes_nothing_and_is_evented() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), default_with(&["agent-*"], &["agent-secret"]));
    let manager = h.manager();
    let mut events = manager.subscribe();
    h.append("agent-ok", b"fine").unwrap();
    let _append_event = events.try_recv().unwrap();

    for (log, call) in [
        ("crdt-collab", h.append("crdt-collab", b"nope")),
        ("agent-secret", h.append_raw("agent-secret", b"nope")),
        ("Agent-ok", h.append("Agent-ok", b"nope")),
        ("../agent-ok", h.append_raw("../agent-ok", b"nope")),
        ("crdt-collab", h.read("crdt-collab", 0).map(|_| 0)),
        (
            "agent",
            h.json("length", json!({ "logName": "agent" })).map(|_| 0),
        ),
        (
            "atlas-memory",
            h.json(
                "read_range",
                json!({ "logName": "atlas-memory", "start": 0, "end": 1 }),
            )
            .map(|_| 0),
        ),
    ] {
        let err = call.unwrap_err();
        assert_eq!(code(&err), "UNAUTHORIZED", "{log}: {err}");
        assert_eq!(err["logName"], log, "{err}");
        assert!(
            err["message"].as_str().unwrap().contains("unauthorized"),
            "{err}"
        );
        match events.try_recv().unwrap() {
            ManagerEvent::Error { log_name, error } => {
                assert_eq!(log_name, log);
                assert_eq!(error.code, ErrorCode::Unauthorized);
            }
            other => panic!("expected the denial as an error event, got {other:?}"),
        }
    }
    assert!(err_message_names_caller(
        &h.append("crdt-collab", b"x").unwrap_err()
    ));
    // Observability has the denials as `error` operations with the log names.
    let denials: Vec<String> = manager
        .recent_events(None)
        .into_iter()
        .filter(|e| e.operation == Operation::Error)
        .map(|e| e.log_name)
        .collect();
    assert_eq!(denials.len(), 8);
    assert!(denials.contains(&"agent-secret".to_string()));
    assert_eq!(manager.metrics().error_count, 8);
    let status: StatusView = h.json("status", json!({})).unwrap().deserialize().unwrap();
    assert_eq!(status.logs.len(), 1, "only agent-ok is visible: {status:?}");

    // Nothing was written for any refused log: the store holds agent-ok only.
    h.shut_down();
    assert_eq!(key_files(dir.path()), ["agent-ok.key"]);
    runtime().block_on(async {
        let m = plain_manager(dir.path()).await;
        assert_eq!(m.initialize().await.unwrap().log_count, 1);
        m.close().await.unwrap();
    });
}

fn err_message_names_caller(err: &Value) -> bool {
    err["message"].as_str().unwrap().contains("\"main\"")
}

#[test]
fn an_empty_scope_denies_every_log() {
    let dir = tempfile::tempdir().unwrap();
    // The plain default permission: commands granted, no scope entry.
    let h = Harness::new(dir.path(), capability(json!(["nova-hypercore:default"])));
    for name in ["agent-state", "atlas-memory", "a"] {
        assert_eq!(code(&h.append(name, b"x").unwrap_err()), "UNAUTHORIZED");
        assert_eq!(code(&h.append_raw(name, b"x").unwrap_err()), "UNAUTHORIZED");
        assert_eq!(code(&h.read(name, 0).unwrap_err()), "UNAUTHORIZED");
    }
    let status: StatusView = h.json("status", json!({})).unwrap().deserialize().unwrap();
    assert!(status.logs.is_empty());
    assert_eq!(h.manager().metrics().error_count, 9);
    h.shut_down();
    assert!(key_files(dir.path()).is_empty());
}

#[test]
fn a_command_the_capability_does_not_grant_is_refused_by_tauri() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(
        dir.path(),
        capability(json!([
            "nova-hypercore:allow-read",
            { "identifier": "nova-hypercore:allow-length", "allow": [{ "name": "agent-*" }] },
            "nova-hypercore:deny-read-range",
        ])),
    );
    let err = h.append("agent-state", b"x").unwrap_err();
    let text = err
        .as_str()
        .unwrap_or_else(|| panic!("Tauri refuses with a string: {err}"));
    assert!(text.contains("not allowed"), "{text}");
    let err = h.json("status", json!({})).unwrap_err();
    assert!(err.as_str().unwrap().contains("not allowed"), "{err}");
    // An explicit deny-: also Tauri's string (debug builds say "denied", release "not allowed").
    let err = h
        .json(
            "read_range",
            json!({ "logName": "agent-state", "start": 0, "end": 0 }),
        )
        .unwrap_err();
    let text = err.as_str().unwrap_or_else(|| panic!("a string: {err}"));
    assert!(
        text.contains("denied") || text.contains("not allowed"),
        "{text}"
    );
    // Granted with scope: gets past the ACL and the scope, to the store, which has no
    // such log (a read never creates one).
    let err = h
        .json("length", json!({ "logName": "agent-state" }))
        .unwrap_err();
    assert_eq!(code(&err), "STORAGE_INACCESSIBLE", "{err}");
    // Granted without scope (allow-read has none): denied by NanoClaw.
    assert_eq!(code(&h.read("agent-state", 0).unwrap_err()), "UNAUTHORIZED");
    h.shut_down();
}

#[test]
fn errors_arrive_as_code_objects() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), default_with(&["log"], &[]));
    h.append("log", b"one").unwrap();

    let err = h.read("log", 5).unwrap_err();
    assert_eq!(code(&err), "OUT_OF_RANGE");
    assert_eq!(err["logName"], "log");
    assert_eq!(err["seq"], 5);
    assert!(
        err["message"].as_str().unwrap().contains("out of range"),
        "{err}"
    );

    let err = h
        .json(
            "read_range",
            json!({ "logName": "log", "start": 0, "end": 3 }),
        )
        .unwrap_err();
    assert_eq!(code(&err), "OUT_OF_RANGE");
    assert_eq!(err["seq"], 0);

    let big = vec![0u8; 1_048_577];
    let err = h.append_raw("log", &big).unwrap_err();
    assert_eq!(code(&err), "PAYLOAD_TOO_LARGE");
    assert_eq!(err["logName"], "log");

    let err = h
        .invoke("append", InvokeBody::Raw(b"x".to_vec()), &[])
        .unwrap_err();
    assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{err}");
    let err = h.json("append", json!({ "logName": "log" })).unwrap_err();
    assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{err}");
    // Only the keys the spec's shape has.
    let keys: Vec<&String> = err.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["code", "message", "logName", "seq"].contains(&k.as_str()))
    );

    // Arguments Tauri itself cannot parse are its own string errors.
    let err = h.json("read", json!({ "logName": "log" })).unwrap_err();
    assert!(err.is_string(), "{err}");
    assert_eq!(h.read("log", 0).unwrap(), b"one");
    h.shut_down();
}

#[test]
fn app_exit_closes_the_store_and_keeps_every_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), default_with(&["agent-*"], &[]));
    let mut seqs = Vec::new();
    for i in 0..20u32 {
        seqs.push(h.append_raw("agent-log", &i.to_be_bytes()).unwrap());
    }
    assert_eq!(seqs, (0..20).collect::<Vec<u64>>());
    let manager = h.manager();
    // Closing the last window ends the mock run loop: RunEvent::Exit reaches the plugin.
    let Harness { app, window } = h;
    drop(window);
    let exited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = exited.clone();
    app.run(move |handle, event| match event {
        tauri::RunEvent::Ready => {
            use tauri::Manager;
            handle
                .get_webview_window("main")
                .unwrap()
                .destroy()
                .unwrap();
        }
        tauri::RunEvent::Exit => seen.store(true, std::sync::atomic::Ordering::SeqCst),
        _ => {}
    });
    assert!(exited.load(std::sync::atomic::Ordering::SeqCst));
    runtime().block_on(async {
        assert!(
            !manager.status().await.initialized,
            "Exit closed the manager"
        );
        let m = plain_manager(dir.path()).await;
        assert_eq!(m.get_length("agent-log").await.unwrap(), 20);
        for i in 0..20u32 {
            assert_eq!(
                m.read("agent-log", u64::from(i)).await.unwrap(),
                i.to_be_bytes()
            );
        }
        m.close().await.unwrap();
    });
}
