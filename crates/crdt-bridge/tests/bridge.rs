//! The bridge on one store and on two peers over loopback TCP, as the spec's sentences.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_hypercore_crdt_bridge::clock::dominates;
use nova_hypercore_crdt_bridge::{CrdtBridge, DEFAULT_LOG, Origin, Subscription};
use nova_hypercore_manager::{HypercoreManager, ManagerConfig, ManagerEvent};
use nova_hypercore_serialization::{CRDTUpdateEntry, ErrorCode, deserialize};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(30);

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

/// A handler that records every entry it gets, and a way to await a count.
#[derive(Clone)]
struct Recorder {
    entries: Arc<Mutex<Vec<CRDTUpdateEntry>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            entries: Arc::default(),
            count: Arc::new(watch::channel(0).0),
        }
    }

    fn attach(&self, bridge: &CrdtBridge) -> Subscription {
        let me = self.clone();
        bridge.on_update(move |entry| {
            let mut entries = me.entries.lock().unwrap();
            entries.push(entry.clone());
            me.count.send_replace(entries.len());
        })
    }

    async fn wait_for(&self, n: usize) {
        let mut rx = self.count.subscribe();
        tokio::time::timeout(DEADLINE, rx.wait_for(|c| *c >= n))
            .await
            .expect("entries delivered in time")
            .unwrap();
    }

    fn entries(&self) -> Vec<CRDTUpdateEntry> {
        self.entries.lock().unwrap().clone()
    }
}

fn clock(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_update_is_one_entry_with_a_vector_clock_delivered_once_to_every_handler() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let bridge = CrdtBridge::open(&m).await.unwrap();
    assert_eq!(bridge.log_name().as_str(), DEFAULT_LOG);
    let (one, two) = (Recorder::new(), Recorder::new());
    let (_s1, _s2) = (one.attach(&bridge), two.attach(&bridge));

    let updates: [(&[u8], &str); 3] = [(b"u1", "alice"), (b"u2", "bob"), (b"u3", "alice")];
    for (i, (update, source)) in updates.iter().enumerate() {
        assert_eq!(bridge.broadcast(update, source).await.unwrap(), i as u64);
    }
    one.wait_for(3).await;
    two.wait_for(3).await;

    let stored: Vec<CRDTUpdateEntry> = m
        .read_range(DEFAULT_LOG, 0, 3)
        .await
        .unwrap()
        .iter()
        .map(|b| deserialize(b).unwrap())
        .collect();
    assert_eq!(m.get_length(DEFAULT_LOG).await.unwrap(), 3);
    let clocks: Vec<_> = stored.iter().map(|e| e.causal_clock.clone()).collect();
    assert_eq!(
        clocks,
        vec![
            clock(&[("alice", 1)]),
            clock(&[("alice", 1), ("bob", 1)]),
            clock(&[("alice", 2), ("bob", 1)]),
        ]
    );
    assert!(dominates(&clocks[2], &clocks[1]) && dominates(&clocks[1], &clocks[0]));
    assert_eq!(stored[1].payload, b"u2");
    assert!(stored.iter().all(|e| e.timestamp > 1_700_000_000_000));
    // Every handler got every entry exactly once, in log order.
    assert_eq!(one.entries(), stored);
    assert_eq!(two.entries(), stored);
    assert_eq!(bridge.delivered()[&bridge.public_key()], 3);
    bridge.close().await.unwrap();
    let err = bridge.broadcast(b"late", "alice").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageInaccessible);
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_unsubscribes_when_dropped_or_called() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let bridge = CrdtBridge::open(&m).await.unwrap();
    let (dropped, called, kept) = (Recorder::new(), Recorder::new(), Recorder::new());
    let s_dropped = dropped.attach(&bridge);
    let s_called = called.attach(&bridge);
    let _s_kept = kept.attach(&bridge);
    bridge.broadcast(b"first", "alice").await.unwrap();
    kept.wait_for(1).await;
    dropped.wait_for(1).await;
    called.wait_for(1).await;

    drop(s_dropped);
    s_called.unsubscribe();
    bridge.broadcast(b"second", "alice").await.unwrap();
    kept.wait_for(2).await;
    assert_eq!(dropped.entries().len(), 1);
    assert_eq!(called.entries().len(), 1);
    assert_eq!(kept.entries()[1].payload, b"second");
    bridge.close().await.unwrap();
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_delivery_names_each_entry_by_its_writer_key_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let bridge = CrdtBridge::open(&m).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _s = bridge.on_delivery(move |entry, origin| {
        let _ = tx.send((entry.payload.clone(), origin));
    });
    for update in [&b"a"[..], b"b", b"c"] {
        bridge.broadcast(update, "alice").await.unwrap();
    }
    for (seq, payload) in [&b"a"[..], b"b", b"c"].iter().enumerate() {
        let (got, origin) = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, *payload);
        assert_eq!(
            origin,
            Origin {
                writer: bridge.public_key(),
                seq: seq as u64
            }
        );
    }
    bridge.close().await.unwrap();
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_does_not_stop_delivery_to_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let bridge = CrdtBridge::open(&m).await.unwrap();
    let _bad = bridge.on_update(|entry| {
        if entry.payload == b"one" {
            panic!("handler bug");
        }
    });
    let good = Recorder::new();
    let _good = good.attach(&bridge);
    bridge.broadcast(b"one", "alice").await.unwrap();
    bridge.broadcast(b"two", "alice").await.unwrap();
    good.wait_for(2).await;
    let got: Vec<_> = good.entries().into_iter().map(|e| e.payload).collect();
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
    bridge.close().await.unwrap();
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_entry_is_skipped_with_an_error_naming_log_and_seq_and_delivery_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let mut events = m.subscribe();
    let bridge = CrdtBridge::open(&m).await.unwrap();
    m.append(DEFAULT_LOG, b"not a CRDT entry").await.unwrap();
    bridge.broadcast(b"good", "alice").await.unwrap();
    let rec = Recorder::new();
    let _s = rec.attach(&bridge);
    rec.wait_for(1).await;
    assert_eq!(rec.entries()[0].payload, b"good");

    let error = tokio::time::timeout(DEADLINE, async {
        loop {
            if let ManagerEvent::Error { log_name, error } = events.recv().await.unwrap() {
                return (log_name, error);
            }
        }
    })
    .await
    .expect("an error event");
    assert_eq!(error.0, DEFAULT_LOG);
    assert_eq!(error.1.code, ErrorCode::DeserializationFailed);
    assert_eq!(error.1.log_name.as_deref(), Some(DEFAULT_LOG));
    assert_eq!(error.1.seq, Some(0));
    assert_eq!(m.metrics().error_count, 1);
    assert_eq!(bridge.delivered()[&bridge.public_key()], 2);
    bridge.close().await.unwrap();
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_only_undelivered_entries_are_delivered_and_the_clock_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = manager(dir.path()).await;
        let bridge = CrdtBridge::open(&m).await.unwrap();
        let rec = Recorder::new();
        let s = rec.attach(&bridge);
        bridge.broadcast(b"a1", "alice").await.unwrap();
        bridge.broadcast(b"a2", "alice").await.unwrap();
        rec.wait_for(2).await;
        drop(s);
        // No handler: this one waits for the next handler, across the restart.
        bridge.broadcast(b"b1", "bob").await.unwrap();
        bridge.close().await.unwrap();
        m.close().await.unwrap();
    }
    let m = manager(dir.path()).await;
    let bridge = CrdtBridge::open(&m).await.unwrap();
    assert_eq!(bridge.clock(), clock(&[("alice", 2), ("bob", 1)]));
    let rec = Recorder::new();
    let _s = rec.attach(&bridge);
    rec.wait_for(1).await;
    assert_eq!(bridge.broadcast(b"a3", "alice").await.unwrap(), 3);
    rec.wait_for(2).await;
    let got: Vec<_> = rec.entries().into_iter().map(|e| e.payload).collect();
    assert_eq!(got, vec![b"b1".to_vec(), b"a3".to_vec()]);
    assert_eq!(
        rec.entries()[1].causal_clock,
        clock(&[("alice", 3), ("bob", 1)])
    );
    bridge.close().await.unwrap();
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_follow_each_other_over_tcp_and_remote_entries_raise_crdt_update() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (manager(da.path()).await, manager(db.path()).await);
    let mut a_events = a.subscribe();
    let (ba, bb) = (
        CrdtBridge::open(&a).await.unwrap(),
        CrdtBridge::open(&b).await.unwrap(),
    );
    let replica_of_b = ba.follow(bb.public_key()).await.unwrap();
    assert_eq!(
        replica_of_b.as_str(),
        ba.replica_name(&bb.public_key()).as_str()
    );
    assert!(replica_of_b.as_str().starts_with("crdt-collab-"));
    assert_eq!(replica_of_b.as_str().len(), "crdt-collab-".len() + 16);
    assert_eq!(ba.follow(bb.public_key()).await.unwrap(), replica_of_b);
    let own = ba.follow(ba.public_key()).await.unwrap_err();
    assert_eq!(own.code(), ErrorCode::Unauthorized);
    bb.follow(ba.public_key()).await.unwrap();

    let listener = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _connector = b.connect(listener.local_addr());
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let (_sa, _sb) = (ra.attach(&ba), rb.attach(&bb));

    // B's log starts with an entry that is not a CRDT entry: A skips it, naming it.
    b.append(DEFAULT_LOG, b"garbage").await.unwrap();
    ba.broadcast(b"from a", "a").await.unwrap();
    rb.wait_for(1).await; // B has seen A's update ...
    bb.broadcast(b"from b", "b").await.unwrap(); // ... so B's clock dominates it.
    ra.wait_for(2).await;
    rb.wait_for(2).await;

    let a_got = ra.entries();
    let b_got = rb.entries();
    let from_a = a_got.iter().find(|e| e.source_id == "a").unwrap();
    let from_b = a_got.iter().find(|e| e.source_id == "b").unwrap();
    assert_eq!(b_got.iter().filter(|e| e.source_id == "a").count(), 1);
    assert_eq!(from_b.payload, b"from b");
    assert!(dominates(&from_b.causal_clock, &from_a.causal_clock));

    // A's events: the remote entry raised crdt-update (A's own did not), the garbage
    // block an error naming the replica and seq 0.
    let (mut crdt_updates, mut error) = (Vec::new(), None);
    tokio::time::timeout(DEADLINE, async {
        while crdt_updates.is_empty() || error.is_none() {
            match a_events.recv().await {
                Ok(ManagerEvent::CrdtUpdate { payload }) => crdt_updates.push(payload),
                Ok(ManagerEvent::Error { error: e, .. })
                    if e.code == ErrorCode::DeserializationFailed =>
                {
                    error = Some(e)
                }
                Ok(_) => {}
                Err(e) => panic!("events: {e}"),
            }
        }
    })
    .await
    .expect("crdt-update and error events");
    assert_eq!(crdt_updates, vec![b"from b".to_vec()]);
    let error = error.unwrap();
    assert_eq!(error.log_name.as_deref(), Some(replica_of_b.as_str()));
    assert_eq!(error.seq, Some(0));
    assert_eq!(ba.delivered()[&bb.public_key()], 2);

    // The followed writer is remembered: a reopened bridge follows B without being told.
    ba.close().await.unwrap();
    let again = CrdtBridge::open(&a).await.unwrap();
    assert_eq!(again.writers().get(&bb.public_key()), Some(&replica_of_b));
    assert_eq!(again.clock(), from_b.causal_clock);
    again.close().await.unwrap();
    bb.close().await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_that_does_not_parse_is_storage_corrupted_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let file = dir.path().join("crdt-bridge-crdt-collab.json");
    CrdtBridge::open(&m).await.unwrap().close().await.unwrap();
    assert!(file.exists());
    std::fs::write(&file, b"{\"version\":1,\"logs\":").unwrap();
    let err = CrdtBridge::open(&m).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageCorrupted);
    assert_eq!(std::fs::read(&file).unwrap(), b"{\"version\":1,\"logs\":");
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_truncation_the_new_entries_are_delivered_and_the_old_stay_applied() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let bridge = CrdtBridge::open(&m).await.unwrap();
    let seen = Recorder::new();
    let _s = seen.attach(&bridge);
    for update in [b"u1", b"u2", b"u3"] {
        bridge.broadcast(update, "alice").await.unwrap();
    }
    seen.wait_for(3).await;
    // The writer retracts u2 and u3 (fork 1), then writes on: the new entries take
    // seqs 1 and 2, which were delivered before as u2 and u3.
    m.get_log(DEFAULT_LOG)
        .await
        .unwrap()
        .truncate(1)
        .await
        .unwrap();
    assert_eq!(bridge.broadcast(b"u4", "alice").await.unwrap(), 1);
    assert_eq!(bridge.broadcast(b"u5", "alice").await.unwrap(), 2);
    seen.wait_for(5).await;
    let payloads: Vec<Vec<u8>> = seen.entries().into_iter().map(|e| e.payload).collect();
    assert_eq!(
        payloads,
        [b"u1", b"u2", b"u3", b"u4", b"u5"].map(|p| p.to_vec())
    );
    assert_eq!(bridge.delivered()[&bridge.public_key()], 3);
    bridge.close().await.unwrap();
    m.close().await.unwrap();
}
