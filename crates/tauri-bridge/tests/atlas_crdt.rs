//! ATLAS memory and CRDT collaboration through Tauri's real IPC path, with the ACL
//! enforced (a `RuntimeAuthority` from this plugin's `permissions/` files, as in
//! `tests/ipc.rs`). Channel messages are caught with the app's channel interceptor, so
//! the tests see exactly what a page's `Channel` would get.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Harness, capability, default_with, manifest, runtime};
use nova_hypercore_serialization::{MemoryNodeEntry, serialize};
use serde_json::{Value, json};
use tauri::ipc::{InvokeBody, InvokeResponseBody};
use tauri::test::{mock_builder, mock_context, noop_assets};
use tauri::utils::acl::resolved::Resolved;
use tauri::utils::platform::Target;
use tauri::{WebviewWindowBuilder, utils::acl::capability::Capability};
use tauri_plugin_nova_hypercore::PLUGIN_NAME;
use tauri_plugin_nova_hypercore::atlas::{MAX_PAGE, MemoryPage};
use tauri_plugin_nova_hypercore::crdt::{CrdtDelivery, CrdtInfo};

const DEADLINE: Duration = Duration::from_secs(20);

/// `nova-hypercore:default` and the `crdt` set (for `crdt_follow`, which `default` does
/// not grant), both with these scope entries.
fn default_and_crdt(allow: &[&str], deny: &[&str]) -> Capability {
    let entries = |names: &[&str]| {
        names
            .iter()
            .map(|n| json!({ "name": n }))
            .collect::<Vec<_>>()
    };
    capability(json!([
        { "identifier": "nova-hypercore:default", "allow": entries(allow), "deny": entries(deny) },
        { "identifier": "nova-hypercore:crdt", "allow": entries(allow), "deny": entries(deny) },
    ]))
}

fn code(err: &Value) -> &str {
    err["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error object: {err}"))
}

fn key_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("keys"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".key"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn node(i: u64, agent: &str, category: &str, timestamp: u64) -> MemoryNodeEntry {
    MemoryNodeEntry {
        id: format!("n-{i}"),
        agent_source: agent.into(),
        category: category.into(),
        content: format!("memory {i}"),
        tags: vec!["t".into()],
        importance: 0.25,
        timestamp,
    }
}

/// Channel messages the plugin sent to the page: (channel id, message), and those read
/// while waiting for another channel's (kept for their own `next_on`: channels are
/// independent, so their messages may interleave in any order).
struct Sent {
    rx: mpsc::Receiver<(u32, Value)>,
    held: std::cell::RefCell<std::collections::VecDeque<(u32, Value)>>,
}

impl Sent {
    /// Any message not read yet (held or queued), without waiting.
    fn try_recv(&self) -> Option<(u32, Value)> {
        let held = self.held.borrow_mut().pop_front();
        held.or_else(|| self.rx.try_recv().ok())
    }
}

/// [`Harness::new`] with a channel interceptor that hands every channel message to the
/// test instead of the (mock) webview.
fn harness_with_channels(storage: &Path, capability: Capability) -> (Harness, Sent) {
    let acl: BTreeMap<_, _> = [(PLUGIN_NAME.to_string(), manifest())].into();
    let resolved = Resolved::resolve(
        &acl,
        [(capability.identifier.clone(), capability)].into(),
        Target::current(),
    )
    .unwrap();
    let mut context = mock_context(noop_assets());
    *context.runtime_authority_mut() = tauri::ipc::RuntimeAuthority::new(acl, resolved);
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let app = mock_builder()
        .channel_interceptor(move |_webview, callback, _index, body| {
            let message = match body {
                InvokeResponseBody::Json(json) => serde_json::from_str(json).unwrap(),
                InvokeResponseBody::Raw(bytes) => json!(bytes),
            };
            let _ = tx.lock().unwrap().send((callback.0, message));
            true
        })
        .plugin(tauri_plugin_nova_hypercore::init(common::config(storage)))
        .build(context)
        .unwrap();
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    let sent = Sent {
        rx,
        held: Default::default(),
    };
    (Harness { app, window }, sent)
}

fn store(h: &Harness, args: Value) -> Result<u64, Value> {
    h.json("atlas_store", args)
        .map(|b| b.deserialize::<u64>().unwrap())
}

fn query(h: &Harness, args: Value) -> Result<MemoryPage, Value> {
    h.json("atlas_query", args)
        .map(|b| b.deserialize().unwrap())
}

fn info(h: &Harness, log: Option<&str>) -> Result<CrdtInfo, Value> {
    let args = match log {
        Some(l) => json!({ "logName": l }),
        None => json!({}),
    };
    h.json("crdt_info", args).map(|b| b.deserialize().unwrap())
}

fn broadcast_raw(
    h: &Harness,
    update: &[u8],
    headers: &[(&'static str, &str)],
) -> Result<u64, Value> {
    h.invoke("crdt_broadcast", InvokeBody::Raw(update.to_vec()), headers)
        .map(|b| b.deserialize::<u64>().unwrap())
}

fn subscribe(h: &Harness, channel: u32, args: Value) -> Result<u32, Value> {
    let mut args = args;
    args["onUpdate"] = json!(format!("__CHANNEL__:{channel}"));
    h.json("crdt_subscribe", args)
        .map(|b| b.deserialize::<u32>().unwrap())
}

/// The next message on channel `channel` within the deadline (others are kept).
fn next_on(sent: &Sent, channel: u32) -> CrdtDelivery {
    let held = {
        let mut held = sent.held.borrow_mut();
        let at = held.iter().position(|(id, _)| *id == channel);
        at.and_then(|i| held.remove(i))
    };
    if let Some((_, message)) = held {
        return serde_json::from_value(message).unwrap();
    }
    let end = Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let (id, message) = sent
            .rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no message on channel {channel} in time"));
        if id == channel {
            return serde_json::from_value(message).unwrap();
        }
        sent.held.borrow_mut().push_back((id, message));
    }
}

fn wait_info(h: &Harness, log: Option<&str>, done: impl Fn(&CrdtInfo) -> bool) -> CrdtInfo {
    let end = Instant::now() + DEADLINE;
    loop {
        let now = info(h, log).unwrap();
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < end, "condition not reached: {now:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn nodes_stored_from_the_page_are_found_by_time_agent_and_category_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), default_with(&["atlas-*"], &[]));
    let base = 1_764_000_000_000u64;
    let a = node(0, "atlas", "fact", base + 10);
    let b = node(1, "planner", "plan", base + 70_000);
    let c = node(2, "atlas", "plan", base + 3);
    for (seq, n) in [&a, &b, &c].into_iter().enumerate() {
        let got = store(&h, json!({ "node": serde_json::to_value(n).unwrap() })).unwrap();
        assert_eq!(got, seq as u64);
    }
    // Another ATLAS log, named by logName.
    assert_eq!(
        store(&h, json!({ "logName": "atlas-b", "node": a })).unwrap(),
        0
    );

    let time = query(
        &h,
        json!({ "by": "time", "start": base + 3, "end": base + 10 }),
    )
    .unwrap();
    assert_eq!(
        time,
        MemoryPage {
            nodes: vec![c.clone(), a.clone()],
            next: None
        }
    );
    let agent = query(&h, json!({ "by": "agent", "agentSource": "atlas" })).unwrap();
    assert_eq!(agent.nodes, vec![a.clone(), c.clone()], "log order");
    let bounded = query(
        &h,
        json!({ "by": "agent", "agentSource": "atlas", "end": base + 5 }),
    )
    .unwrap();
    assert_eq!(bounded.nodes, vec![c.clone()]);
    let plan = query(&h, json!({ "by": "category", "category": "plan" })).unwrap();
    assert_eq!(plan.nodes, vec![b.clone(), c.clone()]);
    let other = query(
        &h,
        json!({ "logName": "atlas-b", "by": "category", "category": "fact" }),
    )
    .unwrap();
    assert_eq!(other.nodes, vec![a.clone()]);

    // Pages: limit 2, follow next.
    for by in [
        json!({ "by": "time", "start": 0, "end": u64::MAX >> 11 }),
        json!({ "by": "category", "category": "fact" }),
    ] {
        let mut args = by.clone();
        args["limit"] = json!(1);
        let mut got = Vec::new();
        let mut calls = 0;
        loop {
            let page = query(&h, args.clone()).unwrap();
            calls += 1;
            got.extend(page.nodes);
            match page.next {
                Some(next) => args["offset"] = json!(next),
                None => break,
            }
        }
        let whole = query(&h, by.clone()).unwrap();
        assert_eq!(whole.next, None);
        assert_eq!(got, whole.nodes, "{by}");
        assert_eq!(calls, whole.nodes.len(), "{by}");
    }
    let past = query(
        &h,
        json!({ "by": "agent", "agentSource": "atlas", "offset": 9 }),
    )
    .unwrap();
    assert_eq!(
        past,
        MemoryPage {
            nodes: vec![],
            next: None
        }
    );
    h.shut_down();
}

#[test]
fn a_page_is_at_most_max_page_nodes_and_next_leads_to_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // The log is written by the app (no page involved) before the page asks.
    runtime().block_on(async {
        let m = common::plain_manager(dir.path()).await;
        let frames: Vec<Vec<u8>> = (0..(MAX_PAGE as u64 + 7))
            .map(|i| serialize(&node(i, "bulk", "fact", i)).unwrap())
            .collect();
        m.append_batch("atlas-memory", &frames).await.unwrap();
        m.close().await.unwrap();
    });
    let h = Harness::new(dir.path(), default_with(&["atlas-memory"], &[]));
    let first = query(
        &h,
        json!({ "by": "agent", "agentSource": "bulk", "limit": 100_000 }),
    )
    .unwrap();
    assert_eq!(first.nodes.len(), MAX_PAGE, "a larger limit is clamped");
    assert_eq!(first.next, Some(MAX_PAGE as u64));
    let rest = query(
        &h,
        json!({ "by": "agent", "agentSource": "bulk", "offset": first.next }),
    )
    .unwrap();
    assert_eq!(rest.nodes.len(), 7);
    assert_eq!(rest.nodes[6].id, format!("n-{}", MAX_PAGE + 6));
    assert_eq!(rest.next, None);
    let zero = query(
        &h,
        json!({ "by": "time", "start": 0, "end": 10, "limit": 0 }),
    )
    .unwrap();
    assert_eq!((zero.nodes.len(), zero.next), (1, Some(1)), "limit 0 is 1");
    h.shut_down();
}

#[test]
fn invalid_atlas_bodies_are_deserialization_failed_and_open_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(dir.path(), default_with(&["atlas-memory"], &[]));
    let mut bad = serde_json::to_value(node(0, "a", "c", 1)).unwrap();
    bad["importance"] = json!(1.5);
    let err = store(&h, json!({ "node": bad })).unwrap_err();
    assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("importance"),
        "{err}"
    );
    for body in [
        json!({ "node": { "id": "x" } }),
        json!({}),
        json!({ "node": node(0, "a", "c", 1), "extra": 1 }),
    ] {
        let err = store(&h, body.clone()).unwrap_err();
        assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{body}: {err}");
    }
    let err = h
        .invoke("atlas_store", InvokeBody::Raw(b"{}".to_vec()), &[])
        .unwrap_err();
    assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{err}");
    for body in [
        json!({ "by": "colour" }),
        json!({ "by": "time", "start": 1 }),
        json!({ "agentSource": "a" }),
        json!({ "by": "time", "start": 0, "end": 1, "offset": -1 }),
    ] {
        let err = query(&h, body.clone()).unwrap_err();
        assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{body}: {err}");
    }
    h.shut_down();
    assert!(key_files(dir.path()).is_empty(), "nothing was opened");
}

#[test]
fn atlas_and_crdt_calls_outside_the_scope_are_unauthorized_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(
        dir.path(),
        default_and_crdt(&["agent-*"], &["atlas-memory"]),
    );
    let n = node(0, "a", "c", 1);
    let calls: Vec<(&str, Result<Value, Value>)> = vec![
        (
            "atlas-memory",
            h.json("atlas_store", json!({ "node": n }))
                .map(|_| json!(0)),
        ),
        (
            "atlas-memory",
            h.json("atlas_query", json!({ "by": "category", "category": "c" }))
                .map(|_| json!(0)),
        ),
        (
            "atlas-other",
            h.json(
                "atlas_store",
                json!({ "logName": "atlas-other", "node": n }),
            )
            .map(|_| json!(0)),
        ),
        (
            "crdt-collab",
            h.json("crdt_broadcast", json!({ "update": [1], "sourceId": "s" }))
                .map(|_| json!(0)),
        ),
        (
            "crdt-x",
            broadcast_raw(
                &h,
                b"u",
                &[("x-log-name", "crdt-x"), ("x-crdt-source-id", "s")],
            )
            .map(|_| json!(0)),
        ),
        ("crdt-collab", info(&h, None).map(|_| json!(0))),
        (
            "crdt-collab",
            h.json("crdt_follow", json!({ "publicKey": "ab".repeat(32) }))
                .map(|_| json!(0)),
        ),
        (
            "crdt-collab",
            h.json("crdt_subscribe", json!({ "onUpdate": "__CHANNEL__:9" }))
                .map(|_| json!(0)),
        ),
    ];
    for (log, call) in calls {
        let err = call.unwrap_err();
        assert_eq!(code(&err), "UNAUTHORIZED", "{log}: {err}");
        assert_eq!(err["logName"], log, "{err}");
    }
    assert_eq!(
        h.manager().metrics().error_count,
        8,
        "each refusal is recorded"
    );
    h.shut_down();
    assert!(key_files(dir.path()).is_empty(), "no log was created");
    assert!(!dir.path().join("crdt-bridge-crdt-collab.json").exists());
}

#[test]
fn the_atlas_and_crdt_permission_sets_grant_their_own_commands_only() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(
        dir.path(),
        capability(json!([
            { "identifier": "nova-hypercore:atlas", "allow": [{ "name": "atlas-memory" }] },
        ])),
    );
    assert_eq!(
        store(&h, json!({ "node": node(0, "a", "c", 1) })).unwrap(),
        0
    );
    let err = info(&h, None).unwrap_err();
    assert!(err.as_str().unwrap().contains("not allowed"), "{err}");
    let err = h.append("atlas-memory", b"x").unwrap_err();
    assert!(err.as_str().unwrap().contains("not allowed"), "{err}");
    h.shut_down();

    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(
        dir.path(),
        capability(json!([
            { "identifier": "nova-hypercore:crdt", "allow": [{ "name": "crdt-collab" }] },
        ])),
    );
    assert_eq!(info(&h, None).unwrap().log_name, "crdt-collab");
    let err = query(&h, json!({ "by": "category", "category": "c" })).unwrap_err();
    assert!(err.as_str().unwrap().contains("not allowed"), "{err}");
    h.shut_down();
}

#[test]
fn updates_broadcast_from_the_page_reach_its_channel_with_writer_seq_and_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (h, sent) = harness_with_channels(dir.path(), default_and_crdt(&["crdt-*"], &[]));
    // Before anyone subscribes: JSON and raw bodies (source id percent-encoded).
    let json_seq = h
        .json(
            "crdt_broadcast",
            json!({ "update": [1, 2, 3], "sourceId": "client-1" }),
        )
        .unwrap()
        .deserialize::<u64>()
        .unwrap();
    assert_eq!(json_seq, 0);
    let raw_seq = broadcast_raw(&h, &[0, 255], &[("x-crdt-source-id", "client%20%C3%A9")]).unwrap();
    assert_eq!(raw_seq, 1);
    let me = info(&h, None).unwrap();
    assert_eq!(me.writer.len(), 64);
    assert_eq!(me.writers.len(), 1);
    assert_eq!(me.writers[0].writer, me.writer);
    assert_eq!(me.writers[0].log_name, "crdt-collab");
    assert_eq!(
        me.clock,
        [("client é".to_owned(), 1), ("client-1".to_owned(), 1)].into()
    );

    // A subscription from the start gets both, then a live one; one without history only
    // the live one.
    let from_start = subscribe(&h, 41, json!({ "fromStart": true })).unwrap();
    let first = next_on(&sent, 41);
    assert_eq!(
        (first.entry.payload.as_slice(), first.seq),
        (&[1u8, 2, 3][..], 0)
    );
    assert_eq!(first.entry.source_id, "client-1");
    assert_eq!(first.writer, me.writer);
    let second = next_on(&sent, 41);
    assert_eq!(
        (second.entry.payload.as_slice(), second.seq),
        (&[0u8, 255][..], 1)
    );
    assert_eq!(second.entry.source_id, "client é");
    wait_info(&h, None, |i| i.writers[0].delivered == 2);
    let live_only = subscribe(&h, 42, json!({})).unwrap();
    assert_ne!(live_only, from_start);
    broadcast_raw(&h, b"live", &[("x-crdt-source-id", "client-1")]).unwrap();
    for channel in [41, 42] {
        let live = next_on(&sent, channel);
        assert_eq!((live.entry.payload.as_slice(), live.seq), (&b"live"[..], 2));
        assert_eq!(live.entry.causal_clock["client-1"], 2);
        assert_eq!(live.entry.causal_clock["client é"], 1);
    }
    // The raw message is the spec's entry, payload in base64, plus writer and seq.
    assert_eq!(
        serde_json::to_value(&first).unwrap()["payload"],
        json!("AQID"),
        "base64"
    );

    let unsubscribe = |id: u32| -> bool {
        h.json("crdt_unsubscribe", json!({ "id": id }))
            .unwrap()
            .deserialize()
            .unwrap()
    };
    assert!(unsubscribe(live_only));
    assert!(!unsubscribe(live_only), "already gone");
    broadcast_raw(&h, b"after", &[("x-crdt-source-id", "client-1")]).unwrap();
    assert_eq!(next_on(&sent, 41).entry.payload, b"after");
    while let Some((id, _)) = sent.try_recv() {
        assert_ne!(id, 42, "no message after unsubscribe");
    }

    // Bad broadcasts.
    for (headers, what) in [
        (vec![], "no source id"),
        (vec![("x-crdt-source-id", "bad%zz")], "bad escape"),
        (vec![("x-crdt-source-id", "")], "empty"),
    ] {
        let err = broadcast_raw(&h, b"x", &headers).unwrap_err();
        assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{what}: {err}");
    }
    let err = h
        .json("crdt_broadcast", json!({ "update": [1] }))
        .unwrap_err();
    assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{err}");
    let err = h
        .json("crdt_follow", json!({ "publicKey": "not hex" }))
        .unwrap_err();
    assert_eq!(code(&err), "DESERIALIZATION_FAILED", "{err}");
    let err = h
        .json("crdt_follow", json!({ "publicKey": me.writer }))
        .unwrap_err();
    assert_eq!(code(&err), "UNAUTHORIZED", "own key: {err}");

    // Closing the plugin closes the bridge: delivered positions are persisted.
    h.shut_down();
    let state = std::fs::read_to_string(dir.path().join("crdt-bridge-crdt-collab.json")).unwrap();
    assert!(state.contains(&me.writer), "{state}");
}

#[test]
fn a_page_follows_another_stores_writer_and_gets_its_updates() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Harness::new(da.path(), default_and_crdt(&["crdt-collab"], &[]));
    let (b, b_sent) = harness_with_channels(db.path(), default_and_crdt(&["crdt-collab"], &[]));
    let a_info = info(&a, None).unwrap();
    let sub = subscribe(&b, 7, json!({ "fromStart": true })).unwrap();
    assert!(sub > 0);
    let replica = b
        .json("crdt_follow", json!({ "publicKey": a_info.writer }))
        .unwrap()
        .deserialize::<String>()
        .unwrap();
    assert_eq!(replica, format!("crdt-collab-{}", &a_info.writer[..16]));
    let again = b
        .json(
            "crdt_follow",
            json!({ "publicKey": a_info.writer.to_uppercase() }),
        )
        .unwrap()
        .deserialize::<String>()
        .unwrap();
    assert_eq!(again, replica, "following twice is a no-op");

    // Connect the two stores over loopback (the app's job, not the page's).
    let (ma, mb) = (a.manager(), b.manager());
    let (_listener, _connector) = tauri::async_runtime::block_on(async move {
        let listener = ma.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let connector = mb.connect(listener.local_addr());
        (listener, connector)
    });
    a.json(
        "crdt_broadcast",
        json!({ "update": [9, 9], "sourceId": "a" }),
    )
    .unwrap();
    let got = next_on(&b_sent, 7);
    assert_eq!(got.entry.payload, [9, 9]);
    assert_eq!((got.writer.as_str(), got.seq), (a_info.writer.as_str(), 0));
    let b_info = wait_info(&b, None, |i| i.clock.get("a") == Some(&1));
    let followed = b_info
        .writers
        .iter()
        .find(|w| w.writer == a_info.writer)
        .unwrap();
    assert_eq!(
        (followed.log_name.as_str(), followed.delivered),
        (replica.as_str(), 1)
    );
    assert_eq!(b_info.writers.len(), 2);
    // A later page on B gets A's update from the replica's history.
    subscribe(&b, 8, json!({ "fromStart": true })).unwrap();
    let replayed = next_on(&b_sent, 8);
    assert_eq!(replayed.entry.payload, [9, 9]);
    assert_eq!(
        (replayed.writer.as_str(), replayed.seq),
        (a_info.writer.as_str(), 0)
    );
    b.shut_down();
    a.shut_down();
}
