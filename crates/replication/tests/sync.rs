//! Two peers over a real encrypted connection (in-process pipe and TCP on loopback),
//! disk-backed logs in temp dirs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use nova_hypercore_managed_core::{ManagedCore, OpenOptions};
use nova_hypercore_replication::{LogSet, Replicator, SessionEvent, transport};
use nova_hypercore_serialization::LogName;

async fn writer(dir: &std::path::Path, n: usize) -> ManagedCore {
    let log = ManagedCore::open(dir, LogName::parse("w").unwrap(), OpenOptions::new())
        .await
        .unwrap();
    let blocks: Vec<Vec<u8>> = (0..n).map(|i| format!("block {i}").into_bytes()).collect();
    for chunk in blocks.chunks(100) {
        log.append_batch(chunk).await.unwrap();
    }
    log
}

async fn replica_of(dir: &std::path::Path, w: &ManagedCore) -> ManagedCore {
    ManagedCore::open(
        dir,
        LogName::parse("w").unwrap(),
        OpenOptions::new().public_key(w.verifying_key()),
    )
    .await
    .unwrap()
}

async fn wait_contiguous(core: &ManagedCore, n: u64) {
    let mut progress = core.watch_progress();
    let deadline = tokio::time::timeout(Duration::from_secs(30), async {
        while progress.borrow_and_update().contiguous_length < n {
            progress.changed().await.unwrap();
        }
    });
    deadline
        .await
        .unwrap_or_else(|_| panic!("no full sync: {:?}", *progress.borrow()));
}

fn replicator(core: &ManagedCore) -> Replicator {
    let set = LogSet::new();
    set.insert(core.clone());
    Replicator::new(Arc::new(set))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_then_live_over_a_pipe() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 250).await;
    let r = replica_of(dr.path(), &w).await;
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (rw, rr) = (replicator(&w), replicator(&r));
    let stats = rr.stats();
    tokio::spawn(async move { rw.run(a, true).await });
    tokio::spawn(async move { rr.run(b, false).await });
    wait_contiguous(&r, 250).await;
    for i in 0..250u64 {
        assert_eq!(r.get(i).await.unwrap(), w.get(i).await.unwrap());
    }
    let dk = r.discovery_key();
    let got = stats
        .wait_until(&dk, Duration::from_secs(10), |t| t.blocks_received >= 250)
        .await;
    assert_eq!(got.blocks_received, 250);
    // New appends reach the connected reader without polling or reconnecting.
    w.append_batch(&[b"x".as_slice(), b"y", b"z"])
        .await
        .unwrap();
    wait_contiguous(&r, 253).await;
    let got = stats
        .wait_until(&dk, Duration::from_secs(10), |t| t.blocks_received >= 253)
        .await;
    assert_eq!(got.blocks_received, 253);
    w.append(b"one more").await.unwrap();
    wait_contiguous(&r, 254).await;
    assert_eq!(r.get(253).await.unwrap(), b"one more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_loopback() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 500).await;
    let r = replica_of(dr.path(), &w).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rw = replicator(&w);
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        rw.run(socket, false).await
    });
    let rr = replicator(&r);
    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::spawn(async move { rr.run(socket, true).await });
    wait_contiguous(&r, 500).await;
    assert_eq!(r.get(499).await.unwrap(), b"block 499");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_the_peer_goes_away() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 10).await;
    let r = replica_of(dr.path(), &w).await;
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (rw, rr) = (replicator(&w), replicator(&r));
    let ta = tokio::spawn(async move { rw.run(a, true).await });
    let tb = tokio::spawn(async move { rr.run(b, false).await });
    wait_contiguous(&r, 10).await;
    ta.abort();
    let ended = tokio::time::timeout(Duration::from_secs(10), tb).await;
    assert!(
        ended.is_ok(),
        "the reader's session did not notice the writer leaving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_resumes_where_it_stopped_and_nothing_travels_twice() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 3000).await;
    let r = replica_of(dr.path(), &w).await;
    let dk = r.discovery_key();
    // First connection: cut it in the middle (a relay between the peers is killed)
    // once part of the log has arrived; both sessions see their stream end and stop.
    let (a, a_far) = tokio::io::duplex(64 * 1024);
    let (b, b_far) = tokio::io::duplex(64 * 1024);
    let relay = tokio::spawn(async move {
        let (mut x, mut y) = (a_far, b_far);
        let _ = tokio::io::copy_bidirectional(&mut x, &mut y).await;
    });
    let (rw, rr) = (replicator(&w), replicator(&r));
    let first = rr.stats();
    let ta = tokio::spawn(async move { rw.run(a, true).await });
    let tb = tokio::spawn(async move { rr.run(b, false).await });
    let got = first
        .wait_until(&dk, Duration::from_secs(20), |t| t.blocks_received >= 500)
        .await;
    assert!(got.blocks_received >= 500);
    relay.abort();
    // Each session returns once its channels have stopped: nothing is written later.
    let ended = tokio::time::timeout(Duration::from_secs(10), async { (ta.await, tb.await) });
    assert!(
        ended.await.is_ok(),
        "the sessions did not end after the cut"
    );
    // What the replica holds now, counted from its own storage.
    let mut before = 0;
    for i in 0..3000u64 {
        if r.has_block(i).await.unwrap() {
            before += 1;
        }
    }
    assert!(
        (500..3000).contains(&before),
        "the cut came too late to test a resume"
    );
    // Second connection: only the rest travels.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (rw, rr) = (replicator(&w), replicator(&r));
    let second = rr.stats();
    tokio::spawn(async move { rw.run(a, true).await });
    tokio::spawn(async move { rr.run(b, false).await });
    wait_contiguous(&r, 3000).await;
    let after = second
        .wait_until(&dk, Duration::from_secs(20), |t| {
            t.blocks_received + before >= 3000
        })
        .await;
    assert_eq!(
        after.blocks_received,
        3000 - before,
        "only the missing blocks travelled"
    );
    for i in [0u64, 1499, 2999] {
        assert_eq!(r.get(i).await.unwrap(), format!("block {i}").as_bytes());
    }
}

/// hypercore 0.17 writes oplog entries for received blocks that it cannot read back;
/// managed-core's open repairs that, so a replica always reopens and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reopens_after_stopping_and_completes() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 301).await;
    for clean in [true, false] {
        let r = replica_of(dr.path(), &w).await;
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (rw, rr) = (replicator(&w), replicator(&r));
        let ta = tokio::spawn(async move { rw.run(a, true).await });
        let tb = tokio::spawn(async move { rr.run(b, false).await });
        wait_contiguous(&r, 301).await;
        ta.abort();
        tb.abort();
        let _ = (ta.await, tb.await);
        if clean {
            r.close().await.unwrap();
        }
        drop(r);
        // Reopening works, and whatever the repair dropped comes back from the writer.
        let r = replica_of(dr.path(), &w).await;
        assert_eq!(r.length(), 301);
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (rw, rr) = (replicator(&w), replicator(&r));
        let ta = tokio::spawn(async move { rw.run(a, true).await });
        let tb = tokio::spawn(async move { rr.run(b, false).await });
        wait_contiguous(&r, 301).await;
        for i in [0u64, 150, 300] {
            assert_eq!(r.get(i).await.unwrap(), format!("block {i}").as_bytes());
        }
        ta.abort();
        tb.abort();
        r.close().await.unwrap();
    }
}

/// Every event a session reports, in order.
fn observed(
    r: Replicator,
) -> (
    Replicator,
    tokio::sync::mpsc::UnboundedReceiver<SessionEvent>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let r = r.with_observer(Arc::new(move |e: &SessionEvent| {
        let _ = tx.send(e.clone());
    }));
    (r, rx)
}

/// The discovery key of the first channel the peer refused (10 s bound).
async fn first_refusal(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<SessionEvent>,
) -> Option<[u8; 32]> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.recv().await {
            if let SessionEvent::Refused { discovery_key, .. } = e {
                return Some(discovery_key);
            }
        }
        None
    })
    .await
    .expect("no refusal within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_channel_closes_alone_and_the_connection_keeps_serving() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let unshared = writer(dirs[0].path(), 5).await;
    let shared = writer(dirs[1].path(), 40).await;
    let replica = replica_of(dirs[2].path(), &shared).await;
    // The writer offers both logs; the reader only knows one and refuses the other.
    let set = LogSet::new();
    set.insert(unshared.clone());
    set.insert(shared.clone());
    let (rw, mut events) = observed(Replicator::new(Arc::new(set)));
    let rr = replicator(&replica);
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move { rw.run(a, true).await });
    tokio::spawn(async move { rr.run(b, false).await });
    let refused = first_refusal(&mut events).await;
    assert_eq!(refused, Some(unshared.discovery_key()));
    wait_contiguous(&replica, 40).await;
    // Same connection, still live: a new append arrives.
    shared.append(b"after the refusal").await.unwrap();
    wait_contiguous(&replica, 41).await;
    assert_eq!(replica.get(40).await.unwrap(), b"after the refusal");
}

/// A cipher that sends extra protomux frames right after the session's first frame
/// and records every frame it receives.
struct Noisy {
    inner: transport::SecretCipher,
    extra: Vec<Vec<u8>>,
    received: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl futures::Stream for Noisy {
    type Item = nova_hypercore_replication::CipherEvent;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        if let std::task::Poll::Ready(Some(nova_hypercore_replication::CipherEvent::Message(m))) =
            &r
        {
            self.received.lock().unwrap().push(m.clone());
        }
        r
    }
}

impl futures::Sink<Vec<u8>> for Noisy {
    type Error = std::io::Error;
    fn poll_ready(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::pin::Pin::new(&mut self.inner).poll_ready(cx)
    }
    fn start_send(mut self: std::pin::Pin<&mut Self>, item: Vec<u8>) -> Result<(), Self::Error> {
        std::pin::Pin::new(&mut self.inner).start_send(item)?;
        for frame in std::mem::take(&mut self.extra) {
            std::pin::Pin::new(&mut self.inner).start_send(frame)?;
        }
        Ok(())
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl nova_hypercore_replication::CipherTrait for Noisy {
    fn remote_public_key(&self) -> Option<[u8; 32]> {
        nova_hypercore_replication::CipherTrait::remote_public_key(&self.inner)
    }
    fn local_public_key(&self) -> [u8; 32] {
        self.inner.local_public_key()
    }
    fn handshake_hash(&self) -> Option<Vec<u8>> {
        self.inner.handshake_hash()
    }
    fn is_initiator(&self) -> bool {
        self.inner.is_initiator()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_protomux_traffic_does_not_end_the_connection() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = writer(dw.path(), 60).await;
    let r = replica_of(dr.path(), &w).await;
    let (a, b) = tokio::io::duplex(64 * 1024);
    let rw = replicator(&w);
    tokio::spawn(async move { rw.run(a, true).await });
    // The reader's side also sends what JS peers may send and 0.7.2 cannot decode.
    let mut other_open = vec![0u8, 1, 7, 11];
    other_open.extend(b"other/proto");
    other_open.extend([2, b'i', b'd']);
    let extra = vec![
        vec![0, 9, 1, 2],     // an unknown protomux control message
        vec![1, 42, 0],       // channel 1, message type 42
        vec![0, 0, 1, 1, 77], // a batch holding only an unknown type
        other_open,           // a channel for another protocol, id 7
    ];
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (cipher, ended) = transport::encrypt(b, false).await.unwrap();
    let noisy = Noisy {
        inner: cipher,
        extra,
        received: received.clone(),
    };
    let rr = replicator(&r);
    tokio::spawn(async move { rr.run_encrypted(noisy, ended).await });
    wait_contiguous(&r, 60).await;
    w.append(b"live").await.unwrap();
    wait_contiguous(&r, 61).await;
    // The other protocol's open was answered with a protomux reject for id 7.
    assert!(
        received.lock().unwrap().iter().any(|f| f == &[0, 2, 7]),
        "no reject for the foreign open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_shared_later_travels_over_the_connection_already_up() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let first = writer(dirs[0].path(), 20).await;
    let later = writer(dirs[1].path(), 30).await;
    let first_r = replica_of(dirs[2].path(), &first).await;
    let later_r = replica_of(dirs[3].path(), &later).await;
    let offered = LogSet::new();
    offered.insert(first.clone());
    let wanted = LogSet::new();
    wanted.insert(first_r.clone());
    wanted.insert(later_r.clone());
    let rw = Replicator::new(Arc::new(offered.clone()));
    let (rr, mut events) = observed(Replicator::new(Arc::new(wanted)));
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move { rw.run(a, true).await });
    tokio::spawn(async move { rr.run(b, false).await });
    wait_contiguous(&first_r, 20).await;
    // The writer does not share `later` yet: the reader's open for it is refused.
    let refused = first_refusal(&mut events).await;
    assert_eq!(refused, Some(later.discovery_key()));
    assert_eq!(later_r.watch_progress().borrow().contiguous_length, 0);
    // Sharing it now opens a channel on the same connection.
    offered.insert(later.clone());
    wait_contiguous(&later_r, 30).await;
    assert_eq!(later_r.get(29).await.unwrap(), b"block 29");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_too_large_for_the_wire_is_declined_and_everything_else_still_syncs() {
    use nova_hypercore_replication::MAX_WIRE_BLOCK;
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Block 2 is one byte over the wire bound (a log written elsewhere, e.g. by JS, may
    // hold such a block); block 3 is exactly at the bound and must travel.
    let w = writer(dw.path(), 2).await;
    let at_bound = vec![3u8; MAX_WIRE_BLOCK as usize];
    w.append(&vec![2u8; MAX_WIRE_BLOCK as usize + 1])
        .await
        .unwrap();
    w.append(&at_bound).await.unwrap();
    w.append(b"block 4").await.unwrap();
    let r = replica_of(dr.path(), &w).await;
    let dk = r.discovery_key();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (rw, mut events) = observed(replicator(&w));
    let rr = replicator(&r);
    let stats = rr.stats();
    let session = tokio::spawn(async move { rw.run(a, true).await });
    tokio::spawn(async move { rr.run(b, false).await });
    let got = stats
        .wait_until(&dk, Duration::from_secs(30), |t| t.blocks_received >= 4)
        .await;
    assert_eq!(got.blocks_received, 4);
    assert_eq!(r.get(3).await.unwrap(), at_bound);
    assert_eq!(r.get(4).await.unwrap(), b"block 4");
    assert!(!r.has_block(2).await.unwrap());
    let declined = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.recv().await {
            if let SessionEvent::TooLargeToSend { seq, bytes, .. } = e {
                return Some((seq, bytes));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(declined, Some((2, MAX_WIRE_BLOCK + 1)));
    // The connection stays up and live: a new block arrives.
    w.append(b"block 5").await.unwrap();
    let got = stats
        .wait_until(&dk, Duration::from_secs(10), |t| t.blocks_received >= 5)
        .await;
    assert_eq!(got.blocks_received, 5);
    assert!(!session.is_finished());
    // The declined block is asked for again only after the request timeout (10 s), not
    // in a request/no-data loop: 5 blocks asked once, plus the upgrades.
    assert!(
        got.requests_sent <= 10,
        "requests went round in a loop: {got:?}"
    );
}
