//! `tail` ([`tauri_plugin_nova_hypercore::tail::run`]) on real stores: a backlog then live
//! appends in order and without gaps even when the event broadcast lags, a truncation
//! in the middle (the stream says `truncate` and resends from `kept`), entries arriving
//! by replication, a deleted log ending the stream; and the wire form of its messages.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
use tauri::ipc::InvokeResponseBody;
use tauri_plugin_nova_hypercore::tail::{self, MAX_BATCH_BYTES, TailMessage};

async fn manager(path: &std::path::Path, event_capacity: usize) -> HypercoreManager {
    let config = ManagerConfig::builder()
        .storage_path(path)
        .event_capacity(event_capacity)
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    m
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

/// A running tail and what it sent.
struct Tail {
    /// The seq the tail started from.
    from: u64,
    messages: Arc<Mutex<Vec<TailMessage>>>,
    task: tokio::task::JoinHandle<()>,
}

fn start(m: &HypercoreManager, log: nova_hypercore_manager::ManagedLog, from: u64) -> Tail {
    start_since(m, log, from, None)
}

fn start_since(
    m: &HypercoreManager,
    log: nova_hypercore_manager::ManagedLog,
    from: u64,
    since_fork: Option<u64>,
) -> Tail {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let sink = messages.clone();
    let task = tokio::spawn(tail::run(m.clone(), log, from, since_fork, move |msg| {
        sink.lock().unwrap().push(msg);
        true
    }));
    Tail {
        from,
        messages,
        task,
    }
}

impl Tail {
    /// The log from `from` on as the page would hold it: entries by seq, truncations
    /// applied.
    fn view(&self) -> Vec<Vec<u8>> {
        let from = self.from as usize;
        let mut view: Vec<Vec<u8>> = Vec::new();
        for m in self.messages.lock().unwrap().iter() {
            match m {
                TailMessage::Entries { first, entries } => {
                    assert_eq!(*first as usize, from + view.len(), "no gap, no overlap");
                    view.extend(entries.iter().cloned());
                }
                TailMessage::Truncate { kept, .. } => {
                    view.truncate((*kept as usize).saturating_sub(from));
                }
                TailMessage::Error(e) => panic!("tail error {e:?}"),
                TailMessage::End { .. } => {}
            }
        }
        view
    }

    async fn until_len(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while self.view().len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("tail reached {n} entries (has {})", self.view().len()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_then_live_entries_arrive_in_order_even_when_events_lag() {
    let dir = tempfile::tempdir().unwrap();
    // Four events per subscriber: the tail's receiver lags all the time.
    let m = manager(dir.path(), 4).await;
    let backlog: Vec<Vec<u8>> = (0..1000).map(entry).collect();
    m.append_batch("notes", &backlog).await.unwrap();
    let log = m.existing_log("notes").await.unwrap();
    let t = start(&m, log, 10);
    for i in 1000..3000 {
        m.append("notes", &entry(i)).await.unwrap();
    }
    t.until_len(2990).await;
    let want: Vec<Vec<u8>> = (10..3000).map(entry).collect();
    assert_eq!(t.view(), want);
    t.task.abort();
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncation_is_announced_and_the_new_entries_follow_from_kept() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), 1024).await;
    let log = m.get_log("notes").await.unwrap();
    let first: Vec<Vec<u8>> = (0..50).map(entry).collect();
    log.append_batch(&first).await.unwrap();
    let t = start(&m, log.clone(), 0);
    t.until_len(50).await;
    log.truncate(20).await.unwrap();
    let second: Vec<Vec<u8>> = (0..30)
        .map(|i| format!("fork 1 entry {i}").into_bytes())
        .collect();
    log.append_batch(&second).await.unwrap();
    let want: Vec<Vec<u8>> = first[..20].iter().chain(&second).cloned().collect();
    tokio::time::timeout(Duration::from_secs(30), async {
        while t.view() != want {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the page's view is the new fork");
    let truncates: Vec<_> = t
        .messages
        .lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            TailMessage::Truncate { kept, fork, .. } => Some((*kept, *fork)),
            _ => None,
        })
        .collect();
    assert_eq!(truncates.first(), Some(&(20, 1)));
    t.task.abort();
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicas_tail_shows_entries_as_they_replicate_and_a_delete_ends_it() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(dirs.0.path(), 1024).await;
    let b = manager(dirs.1.path(), 1024).await;
    a.append_batch("notes", &(0..100).map(entry).collect::<Vec<_>>())
        .await
        .unwrap();
    a.enable_replication("notes").await.unwrap();
    let key = a.get_log("notes").await.unwrap().public_key();
    let replica = b.open_replica("their-notes", key).await.unwrap();
    b.enable_replication("their-notes").await.unwrap();
    let t = start(&b, replica, 0);
    let (x, y) = tokio::io::duplex(1 << 20);
    let (a2, b2) = (a.clone(), b.clone());
    tokio::spawn(async move { a2.replicate(x, true).await });
    tokio::spawn(async move { b2.replicate(y, false).await });
    t.until_len(100).await;
    for i in 100..300 {
        a.append("notes", &entry(i)).await.unwrap();
    }
    t.until_len(300).await;
    assert_eq!(t.view(), (0..300).map(entry).collect::<Vec<_>>());

    assert!(b.delete_log("their-notes").await.unwrap());
    tokio::time::timeout(Duration::from_secs(10), t.task)
        .await
        .expect("a deleted log ends the tail")
        .unwrap();
    assert_eq!(
        t.messages.lock().unwrap().last(),
        Some(&TailMessage::End { reason: "deleted" })
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_replicas_tail_fetches_from_its_seq_on_and_nothing_before() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(dirs.0.path(), 1024).await;
    let b = manager(dirs.1.path(), 1024).await;
    a.append_batch("notes", &(0..300).map(entry).collect::<Vec<_>>())
        .await
        .unwrap();
    a.enable_replication("notes").await.unwrap();
    let key = a.get_log("notes").await.unwrap().public_key();
    let replica = b
        .open_replica_with(
            "their-notes",
            key,
            nova_hypercore_manager::ReplicaOptions::sparse(),
        )
        .await
        .unwrap();
    b.enable_replication("their-notes").await.unwrap();
    let (x, y) = tokio::io::duplex(1 << 20);
    let (a2, b2) = (a.clone(), b.clone());
    tokio::spawn(async move { a2.replicate(x, true).await });
    tokio::spawn(async move { b2.replicate(y, false).await });
    // The replica learns the length from the writer, then the tail asks for 250.. only.
    let t = start(&b, replica.clone(), 250);
    t.until_len(50).await;
    for i in 300..320 {
        a.append("notes", &entry(i)).await.unwrap();
    }
    t.until_len(70).await;
    assert_eq!(t.view(), (250..320).map(entry).collect::<Vec<_>>());
    assert_eq!(
        replica.has_range(0..250).await.unwrap(),
        0,
        "nothing before the tail's seq was fetched"
    );
    t.task.abort();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_tail_first_says_what_a_truncation_since_its_fork_retracted() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), 1024).await;
    let log = m.get_log("notes").await.unwrap();
    log.append_batch(&(0..50).map(entry).collect::<Vec<_>>())
        .await
        .unwrap();
    // The page had 0..50 at fork 0; meanwhile the writer truncated to 20 and wrote 10.
    log.truncate(20).await.unwrap();
    let new: Vec<Vec<u8>> = (0..10).map(|i| format!("new {i}").into_bytes()).collect();
    log.append_batch(&new).await.unwrap();
    let t = start_since(&m, log, 50, Some(0));
    tokio::time::timeout(Duration::from_secs(10), async {
        while t.messages.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let messages = t.messages.lock().unwrap().clone();
    assert_eq!(
        messages[0],
        TailMessage::Truncate {
            kept: 20,
            length: 30,
            fork: 1
        }
    );
    assert_eq!(
        messages[1],
        TailMessage::Entries {
            first: 20,
            entries: new
        }
    );
    t.task.abort();
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_ends_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), 1024).await;
    m.append("notes", b"x").await.unwrap();
    let t = start(&m, m.existing_log("notes").await.unwrap(), 0);
    t.until_len(1).await;
    m.close().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), t.task)
        .await
        .expect("the tail notices the closed store")
        .unwrap();
    assert_eq!(
        t.messages.lock().unwrap().last(),
        Some(&TailMessage::End { reason: "closed" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_entries_are_split_into_messages_near_the_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), 1024).await;
    let big: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 300 * 1024]).collect();
    m.append_batch("big", &big).await.unwrap();
    let t = start(&m, m.existing_log("big").await.unwrap(), 0);
    t.until_len(10).await;
    assert_eq!(t.view(), big);
    for msg in t.messages.lock().unwrap().iter() {
        if let TailMessage::Entries { entries, .. } = msg {
            let bytes: usize = entries.iter().map(Vec::len).sum();
            assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
            assert!(entries.len() <= 3);
        }
    }
    t.task.abort();
    m.close().await.unwrap();
}

#[test]
fn messages_cross_ipc_as_raw_frames_or_json() {
    let entries = TailMessage::Entries {
        first: 258,
        entries: vec![b"ab".to_vec(), vec![]],
    };
    match entries.body("notes").unwrap() {
        InvokeResponseBody::Raw(bytes) => assert_eq!(
            bytes,
            [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0]
        ),
        other => panic!("{other:?}"),
    }
    let json = |m: TailMessage| match m.body("notes").unwrap() {
        InvokeResponseBody::Json(s) => serde_json::from_str::<serde_json::Value>(&s).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        json(TailMessage::Truncate {
            kept: 3,
            length: 5,
            fork: 1
        }),
        serde_json::json!({ "event": "truncate", "kept": 3, "length": 5, "fork": 1 })
    );
    assert_eq!(
        json(TailMessage::End { reason: "deleted" }),
        serde_json::json!({ "event": "end", "reason": "deleted" })
    );
    let error = nova_hypercore_serialization::HypercoreError::NoSuchLog { log: "x".into() };
    let value = json(TailMessage::Error(error.to_payload()));
    assert_eq!(value["event"], "error");
    assert_eq!(value["error"]["code"], "STORAGE_INACCESSIBLE");
    assert_eq!(value["error"]["logName"], "x");
}
