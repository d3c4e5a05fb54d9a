//! The page-side commands of issue 24 through Tauri's real IPC path with the ACL
//! enforced: reads that never create a log, `read_range` pages, `tail` starting only on
//! a log in scope that exists, sharing and following a log between two apps (two
//! stores) and what a window may do without the `share`/`follow` permissions.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Harness, capability, default_with, raw, runtime};
use serde_json::{Value, json};
use tauri_plugin_nova_hypercore::replication::{DownloadProgressView, LogKeysView};
use tauri_plugin_nova_hypercore::{MAX_RANGE_BYTES, MAX_RANGE_ENTRIES};

fn code(err: &Value) -> &str {
    err["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error object: {err}"))
}

/// Splits `read_range`'s answer into entries.
fn unframe(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        out.push(bytes[4..4 + len].to_vec());
        bytes = &bytes[4 + len..];
    }
    out
}

/// `nova-hypercore:default` plus share/unshare/follow, on logs `e2e-*`.
fn with_replicate() -> tauri::utils::acl::capability::Capability {
    let scope = json!([{ "name": "e2e-*" }]);
    capability(json!([
        { "identifier": "nova-hypercore:default", "allow": scope },
        { "identifier": "nova-hypercore:allow-share", "allow": scope },
        { "identifier": "nova-hypercore:allow-unshare", "allow": scope },
        { "identifier": "nova-hypercore:allow-follow", "allow": scope },
    ]))
}

#[test]
fn commands_that_only_read_never_create_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), default_with(&["e2e-*"], &[]));
    let before = nova_hypercore_testkit::files_under(dir.path());
    let calls = [
        ("read", json!({ "logName": "e2e-ghost", "seq": 0 })),
        ("length", json!({ "logName": "e2e-ghost" })),
        (
            "read_range",
            json!({ "logName": "e2e-ghost", "start": 0, "end": 0 }),
        ),
        (
            "tail",
            json!({ "logName": "e2e-ghost", "fromSeq": 0, "onEntry": "__CHANNEL__:7" }),
        ),
        ("replication_status", json!({ "logName": "e2e-ghost" })),
        ("download_progress", json!({ "logName": "e2e-ghost" })),
        ("log_keys", json!({ "logName": "e2e-ghost" })),
    ];
    for (command, args) in calls {
        let err = h.json(command, args).unwrap_err();
        assert_eq!(code(&err), "STORAGE_INACCESSIBLE", "{command}: {err}");
        assert_eq!(err["logName"], "e2e-ghost", "{command}");
        assert!(
            err["message"].as_str().unwrap().contains("does not exist"),
            "{command}: {err}"
        );
    }
    assert_eq!(
        nova_hypercore_testkit::files_under(dir.path()),
        before,
        "no key file, no log file"
    );

    // Out of scope: refused before the store is asked.
    let err = h
        .json(
            "tail",
            json!({ "logName": "secret", "fromSeq": 0, "onEntry": "__CHANNEL__:8" }),
        )
        .unwrap_err();
    assert_eq!(code(&err), "UNAUTHORIZED");

    // Once the log exists, the same calls answer.
    h.append("e2e-ghost", b"boo").unwrap();
    assert_eq!(h.read("e2e-ghost", 0).unwrap(), b"boo");
    let id = h
        .json(
            "tail",
            json!({ "logName": "e2e-ghost", "fromSeq": 0, "onEntry": "__CHANNEL__:9" }),
        )
        .unwrap()
        .deserialize::<u32>()
        .unwrap();
    let stopped = h.json("unsubscribe", json!({ "id": id })).unwrap();
    assert!(
        stopped.deserialize::<bool>().unwrap(),
        "the tail was running"
    );
    let keys: LogKeysView = h
        .json("log_keys", json!({ "logName": "e2e-ghost" }))
        .unwrap()
        .deserialize()
        .unwrap();
    assert!(keys.writable && !keys.sparse);
    assert_eq!(keys.public_key.len(), 64);
    h.shut_down();
}

#[test]
fn read_range_answers_one_bounded_page_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), default_with(&["e2e-*"], &[]));
    let rt = runtime();
    let total = MAX_RANGE_ENTRIES + 476;
    let entries: Vec<Vec<u8>> = (0..total).map(|i| i.to_be_bytes().to_vec()).collect();
    rt.block_on(h.manager().append_batch("e2e-many", &entries))
        .unwrap();
    let page = |start: u64| {
        unframe(&raw(h
            .json(
                "read_range",
                json!({ "logName": "e2e-many", "start": start, "end": total }),
            )
            .unwrap()))
    };
    let first = page(0);
    assert_eq!(first.len() as u64, MAX_RANGE_ENTRIES);
    let second = page(first.len() as u64);
    assert_eq!(second.len(), 476);
    assert_eq!([first, second].concat(), entries);

    // Big entries: a page stops before MAX_RANGE_BYTES (900 KiB entries: 9 fit in
    // 8 MiB with their frames).
    let size = 900 << 10;
    let big: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; size]).collect();
    rt.block_on(h.manager().append_batch("e2e-big", &big))
        .unwrap();
    let got = unframe(&raw(h
        .json(
            "read_range",
            json!({ "logName": "e2e-big", "start": 0, "end": 12 }),
        )
        .unwrap()));
    let fits = MAX_RANGE_BYTES / (size + 4);
    assert_eq!(fits, 9);
    assert_eq!(got, big[..fits]);
    h.shut_down();
}

#[test]
fn a_window_without_share_and_follow_permissions_cannot_share_or_follow() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), default_with(&["e2e-*"], &[]));
    h.append("e2e-notes", b"x").unwrap();
    for (command, args) in [
        ("share", json!({ "logName": "e2e-notes" })),
        ("unshare", json!({ "logName": "e2e-notes" })),
        (
            "follow",
            json!({ "logName": "e2e-theirs", "publicKey": "ab".repeat(32) }),
        ),
    ] {
        let err = h.json(command, args).unwrap_err();
        let text = err.as_str().unwrap_or_else(|| panic!("{command}: {err}"));
        assert!(text.contains("not allowed"), "{command}: {text}");
    }
    // The read-only views are in the default set.
    let status = h
        .json("replication_status", json!({ "logName": "e2e-notes" }))
        .unwrap();
    assert_eq!(status.deserialize::<Value>().unwrap()["localLength"], 1);
    h.shut_down();
}

#[test]
fn one_app_shares_a_log_and_another_follows_it_by_key() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Harness::new(dirs.0.path(), with_replicate());
    let b = Harness::new(dirs.1.path(), with_replicate());
    for i in 0..200u32 {
        a.append("e2e-notes", &i.to_be_bytes()).unwrap();
    }
    let shared: LogKeysView = a
        .json("share", json!({ "logName": "e2e-notes" }))
        .unwrap()
        .deserialize()
        .unwrap();
    assert!(shared.writable);

    // Bad keys are typed errors naming the field.
    let err = b
        .json(
            "follow",
            json!({ "logName": "e2e-theirs", "publicKey": "xyz" }),
        )
        .unwrap_err();
    assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{err}");
    assert!(err["message"].as_str().unwrap().contains("publicKey"));
    let err = b
        .json(
            "follow",
            json!({ "logName": "outside", "publicKey": shared.public_key }),
        )
        .unwrap_err();
    assert_eq!(code(&err), "UNAUTHORIZED");

    let followed: LogKeysView = b
        .json(
            "follow",
            json!({ "logName": "e2e-theirs", "publicKey": shared.public_key, "sparse": false }),
        )
        .unwrap()
        .deserialize()
        .unwrap();
    assert_eq!(followed.public_key, shared.public_key);
    assert_eq!(followed.discovery_key, shared.discovery_key);
    assert!(!followed.writable && !followed.sparse);

    let rt = runtime();
    let (ma, mb) = (a.manager(), b.manager());
    rt.block_on(async {
        let (x, y) = tokio::io::duplex(1 << 20);
        tauri::async_runtime::spawn(async move { ma.replicate(x, true).await });
        tauri::async_runtime::spawn(async move { mb.replicate(y, false).await });
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let p: DownloadProgressView = b
                    .json("download_progress", json!({ "logName": "e2e-theirs" }))
                    .unwrap()
                    .deserialize()
                    .unwrap();
                if p.have == 200 && p.total == 200 {
                    assert!(p.blocks_received >= 200);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the follower downloads the shared log");
    });
    assert_eq!(b.read("e2e-theirs", 199).unwrap(), 199u32.to_be_bytes());

    // A sparse follower (a third store) fetches what the page reads, and only that.
    let dc = tempfile::tempdir().unwrap();
    let c = Harness::new(dc.path(), with_replicate());
    let sparse: LogKeysView = c
        .json(
            "follow",
            json!({ "logName": "e2e-sparse", "publicKey": shared.public_key, "sparse": true }),
        )
        .unwrap()
        .deserialize()
        .unwrap();
    assert!(sparse.sparse);
    let (ma, mc) = (a.manager(), c.manager());
    rt.block_on(async {
        let (x, y) = tokio::io::duplex(1 << 20);
        tauri::async_runtime::spawn(async move { ma.replicate(x, true).await });
        tauri::async_runtime::spawn(async move { mc.replicate(y, false).await });
        // The replica learns the length from the writer.
        tokio::time::timeout(Duration::from_secs(30), async {
            while c
                .json("length", json!({ "logName": "e2e-sparse" }))
                .unwrap()
                .deserialize::<u64>()
                .unwrap()
                < 200
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the sparse replica learns the length");
    });
    assert_eq!(c.read("e2e-sparse", 150).unwrap(), 150u32.to_be_bytes());
    let page = unframe(&raw(c
        .json(
            "read_range",
            json!({ "logName": "e2e-sparse", "start": 160, "end": 163 }),
        )
        .unwrap()));
    assert_eq!(page.len(), 3);
    let held = rt
        .block_on(async {
            c.manager()
                .existing_log("e2e-sparse")
                .await
                .unwrap()
                .has_range(0..200)
                .await
        })
        .unwrap();
    assert_eq!(held, 4, "only the blocks read were fetched");
    c.shut_down();
    let status: Value = b
        .json("replication_status", json!({ "logName": "e2e-theirs" }))
        .unwrap()
        .deserialize()
        .unwrap();
    assert_eq!(status["localLength"], 200);
    assert_eq!(status["logName"], "e2e-theirs");
    // A replica is not ours to append to.
    assert!(b.append("e2e-theirs", b"no").is_err());
    a.json("unshare", json!({ "logName": "e2e-notes" }))
        .unwrap();
    a.shut_down();
    b.shut_down();
}

/// Calls `command` as webview `window` would.
fn invoke_on(
    window: &tauri::WebviewWindow<tauri::test::MockRuntime>,
    command: &str,
    args: Value,
) -> Result<tauri::ipc::InvokeResponseBody, Value> {
    tauri::test::get_ipc_response(
        window,
        tauri::webview::InvokeRequest {
            cmd: format!("plugin:nova-hypercore|{command}"),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: tauri::test::INVOKE_KEY.to_string(),
        },
    )
}

#[test]
fn a_stream_belongs_to_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let two_windows: tauri::utils::acl::capability::Capability = serde_json::from_value(json!({
        "identifier": "two-windows",
        "windows": ["main", "other"],
        "permissions": [
            { "identifier": "nova-hypercore:default", "allow": [{ "name": "e2e-*" }] }
        ],
    }))
    .unwrap();
    let h = Harness::new(dir.path(), two_windows);
    h.append("e2e-notes", b"x").unwrap();
    let other = || {
        tauri::WebviewWindowBuilder::new(&h.app, "other", Default::default())
            .build()
            .unwrap()
    };
    let window = other();
    let tail = |w: &tauri::WebviewWindow<tauri::test::MockRuntime>, channel: u32| {
        invoke_on(
            w,
            "tail",
            json!({ "logName": "e2e-notes", "fromSeq": 0, "onEntry": format!("__CHANNEL__:{channel}") }),
        )
        .unwrap()
        .deserialize::<u32>()
        .unwrap()
    };
    let stop = |w: &tauri::WebviewWindow<tauri::test::MockRuntime>, id: u32| {
        invoke_on(w, "unsubscribe", json!({ "id": id }))
            .unwrap()
            .deserialize::<bool>()
            .unwrap()
    };
    let mine = tail(&h.window, 11);
    let theirs = tail(&window, 12);
    assert!(
        !stop(&window, mine),
        "another window's tail is not this one's to stop"
    );
    assert!(stop(&h.window, mine));
    assert!(!stop(&h.window, mine), "stopped already");

    assert!(stop(&window, theirs));
    h.shut_down();
}
