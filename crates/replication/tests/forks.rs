//! Replicas follow their writer's truncations over real sessions (docs/forks.md step
//! d): live, from empty, and with peers on two forks at once. Disk-backed logs, an
//! in-process encrypted pipe per connection.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use nova_hypercore_managed_core::{ManagedCore, OpenOptions, SigningKey};
use nova_hypercore_replication::{LogSet, Replicator, SessionEvent};
use nova_hypercore_serialization::LogName;
use tokio::sync::mpsc::UnboundedReceiver;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[73; 32])
}

fn entry(i: u64, fork: u64) -> Vec<u8> {
    if fork == 0 {
        format!("entry {i}").into_bytes()
    } else {
        format!("entry {i} f{fork}").into_bytes()
    }
}

async fn open(dir: &std::path::Path, writer: bool) -> ManagedCore {
    let options = if writer {
        OpenOptions::new().signing_key(key())
    } else {
        OpenOptions::new().public_key(key().verifying_key())
    };
    ManagedCore::open(dir, LogName::parse("log").unwrap(), options)
        .await
        .unwrap()
}

async fn append(w: &ManagedCore, n: u64) {
    let (from, fork) = (w.length(), w.fork());
    let values: Vec<Vec<u8>> = (from..from + n).map(|i| entry(i, fork)).collect();
    for chunk in values.chunks(100) {
        w.append_batch(chunk).await.unwrap();
    }
}

fn replicator(core: &ManagedCore) -> (Replicator, UnboundedReceiver<SessionEvent>) {
    let set = LogSet::new();
    set.insert(core.clone());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let r = Replicator::new(Arc::new(set)).with_observer(Arc::new(move |e: &SessionEvent| {
        let _ = tx.send(e.clone());
    }));
    (r, rx)
}

/// A connection's two sessions (aborted on drop).
struct Conn(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Conn {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Connects `a` and `b` over an in-process pipe; returns `b`'s session events and the
/// connection.
fn connect(a: &ManagedCore, b: &ManagedCore) -> (UnboundedReceiver<SessionEvent>, Conn) {
    let (x, y) = tokio::io::duplex(256 * 1024);
    let ((ra, _), (rb, eb)) = (replicator(a), replicator(b));
    let ta = tokio::spawn(async move {
        let _ = ra.run(x, true).await;
    });
    let tb = tokio::spawn(async move {
        let _ = rb.run(y, false).await;
    });
    (eb, Conn(vec![ta, tb]))
}

/// Waits until `core` is on `fork` and holds `0..length`.
async fn wait_for(core: &ManagedCore, fork: u64, length: u64) {
    let mut progress = core.watch_progress();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let p = *progress.borrow_and_update();
            if p.fork == fork && p.length == length && p.contiguous_length == length {
                return;
            }
            progress.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not on fork {fork} with {length} blocks: {:?}",
            *progress.borrow()
        )
    });
}

/// Every block of `r` equals the writer's.
async fn same_blocks(r: &ManagedCore, w: &ManagedCore) {
    let length = w.length();
    assert_eq!(r.length(), length);
    for seq in 0..length {
        assert_eq!(
            r.get(seq).await.unwrap(),
            w.get(seq).await.unwrap(),
            "seq {seq}"
        );
    }
}

/// The first `Truncated` event, if any within 10 s.
async fn truncated(events: &mut UnboundedReceiver<SessionEvent>) -> Option<(u64, u64, u64)> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.recv().await {
            if let SessionEvent::Truncated {
                kept, length, fork, ..
            } = e
            {
                return Some((kept, length, fork));
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_replica_follows_its_writers_truncation() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = open(dw.path(), true).await;
    let r = open(dr.path(), false).await;
    append(&w, 300).await;
    let (mut events, _conn) = connect(&w, &r);
    wait_for(&r, 0, 300).await;
    w.truncate(100).await.unwrap();
    append(&w, 50).await;
    wait_for(&r, 1, 150).await;
    same_blocks(&r, &w).await;
    // The reorg's length is 100 or 150, as the append raced the fork proof.
    let (kept, length, fork) = truncated(&mut events).await.expect("a Truncated event");
    assert_eq!((kept, fork), (100, 1));
    assert!(length == 100 || length == 150, "length {length}");
    assert_eq!(r.get(120).await.unwrap(), entry(120, 1));
    // It goes on following: appends, and a second truncation.
    append(&w, 10).await;
    wait_for(&r, 1, 160).await;
    w.truncate(40).await.unwrap();
    wait_for(&r, 2, 40).await;
    append(&w, 5).await;
    wait_for(&r, 2, 45).await;
    same_blocks(&r, &w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_replica_of_a_forked_log_syncs() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = open(dw.path(), true).await;
    append(&w, 50).await;
    w.truncate(20).await.unwrap();
    append(&w, 10).await;
    let r = open(dr.path(), false).await;
    let (mut events, _conn) = connect(&w, &r);
    wait_for(&r, 1, 30).await;
    same_blocks(&r, &w).await;
    assert_eq!(truncated(&mut events).await, Some((0, 30, 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_on_two_forks_at_once_never_mix_and_the_stale_one_follows_through_us() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let w = open(dirs[0].path(), true).await;
    let frozen = open(dirs[1].path(), false).await;
    let r = open(dirs[2].path(), false).await;
    append(&w, 100).await;
    // A replica with all of fork 0, then cut off from the writer.
    let conn = connect(&w, &frozen);
    wait_for(&frozen, 0, 100).await;
    drop(conn);
    w.truncate(60).await.unwrap();
    append(&w, 40).await;
    // Our reader gets fork 0 from the frozen replica, then meets the writer on fork 1
    // too, and stays connected to both.
    let _from_frozen = connect(&frozen, &r);
    wait_for(&r, 0, 100).await;
    let (mut events, _from_writer) = connect(&w, &r);
    wait_for(&r, 1, 100).await;
    same_blocks(&r, &w).await;
    assert_eq!(truncated(&mut events).await, Some((60, 100, 1)));
    // The frozen replica, connected to our reader only, follows the fork through it.
    wait_for(&frozen, 1, 100).await;
    same_blocks(&frozen, &w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_to_the_writer_apply_the_reorg_once() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = open(dw.path(), true).await;
    let r = open(dr.path(), false).await;
    append(&w, 64).await;
    let (mut one, _c1) = connect(&w, &r);
    let (mut two, _c2) = connect(&w, &r);
    wait_for(&r, 0, 64).await;
    w.truncate(32).await.unwrap();
    append(&w, 8).await;
    wait_for(&r, 1, 40).await;
    same_blocks(&r, &w).await;
    // Both channels followed; the core applied the reorg once (the other was stale).
    let mut events = 0;
    for rx in [&mut one, &mut two] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok(e) = rx.try_recv() {
            if matches!(e, SessionEvent::Truncated { .. }) {
                events += 1;
            }
        }
    }
    assert_eq!(events, 1, "one Truncated event for one reorg");
}
