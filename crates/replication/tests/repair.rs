//! Repair from a peer, end to end: two peers over TCP on loopback, logs on disk.
//! (a) A replica whose `data` bytes were damaged for some blocks (closed, damaged,
//! reopened) finds them on reads while connected and gets exactly those blocks back
//! from the writer, verified, without reconnecting. (b) A writer whose own `data`
//! file was damaged for a range gets exactly those blocks back from a replica that
//! holds them; its length and signature stay what they were. (c) A writer, and (d) a
//! replica, whose damaged blocks nobody read serve a new reader every other block, answer
//! `NoData` for the damaged ones (never their bytes; the reader's channel stays up),
//! mark them missing, get them back from a third peer and then serve them too. (e) On
//! the wire (a raw peer asking): `NoData` with hypercore 11's `NOT_AVAILABLE`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod raw_peer;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_hypercore_managed_core::RequestBlock;
use nova_hypercore_managed_core::{ManagedCore, OpenOptions, RequestUpgrade, SigningKey};
use nova_hypercore_replication::wire::{Message, NoData, Request};
use nova_hypercore_replication::{
    LogSet, Replicator, SessionConfig, SessionEvent, Stats, Transfer,
};
use nova_hypercore_serialization::{ErrorCode, LogName};
use tokio::task::JoinHandle;

use raw_peer::Raw;

const BLOCKS: u64 = 400;

fn name() -> LogName {
    LogName::parse("repair").unwrap()
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[61; 32])
}

fn entry(seq: u64) -> Vec<u8> {
    let mut v = format!("repair {seq}:").into_bytes();
    v.resize(20 + (seq * 11 % 150) as usize, (seq % 241) as u8);
    v
}

fn offset(seq: u64) -> u64 {
    (0..seq).map(|s| entry(s).len() as u64).sum()
}

async fn open_writer(dir: &Path) -> ManagedCore {
    ManagedCore::open(dir, name(), OpenOptions::new().signing_key(key()))
        .await
        .unwrap()
}

async fn open_replica(dir: &Path) -> ManagedCore {
    ManagedCore::open(
        dir,
        name(),
        OpenOptions::new().public_key(key().verifying_key()),
    )
    .await
    .unwrap()
}

/// Flips a byte inside each of blocks `seqs` in `dir`'s data file (log closed).
fn damage(dir: &Path, seqs: impl IntoIterator<Item = u64>) {
    let path = dir.join("data");
    let mut bytes = std::fs::read(&path).unwrap();
    for seq in seqs {
        bytes[(offset(seq) + 5) as usize] ^= 0xa5;
    }
    std::fs::write(&path, bytes).unwrap();
}

/// A session on each side over TCP on loopback; each side's replicator with its own
/// counters and a record of its events.
struct Pair {
    tasks: Vec<JoinHandle<()>>,
    stats: [Arc<Stats>; 2],
    events: [Arc<Mutex<Vec<SessionEvent>>>; 2],
}

impl Pair {
    /// `a` listens, `b` dials.
    async fn connect(a: &ManagedCore, b: &ManagedCore) -> Pair {
        Pair::connect_with(a, b, SessionConfig::default()).await
    }

    /// [`Pair::connect`] with both sessions tuned by `config`.
    async fn connect_with(a: &ManagedCore, b: &ManagedCore, config: SessionConfig) -> Pair {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = Vec::new();
        let mut stats = Vec::new();
        let mut events = Vec::new();
        let mut replicators = Vec::new();
        for core in [a, b] {
            let set = LogSet::new();
            set.insert(core.clone());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            let replicator = Replicator::new(Arc::new(set))
                .with_config(config)
                .with_observer(Arc::new(move |e: &SessionEvent| {
                    log.lock().unwrap().push(e.clone())
                }));
            stats.push(replicator.stats());
            events.push(seen);
            replicators.push(replicator);
        }
        let dialer = replicators.pop().unwrap();
        let listening = replicators.pop().unwrap();
        tasks.push(tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let _ = listening.run(socket, false).await;
        }));
        let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let _ = dialer.run(socket, true).await;
        }));
        Pair {
            tasks,
            stats: [stats[0].clone(), stats[1].clone()],
            events: [events[0].clone(), events[1].clone()],
        }
    }

    /// Waits until side `i` heard the peer's length (the channel is up).
    async fn wait_channel(&self, i: usize) {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if self.events[i]
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|e| matches!(e, SessionEvent::RemoteLength { .. }))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the channel never came up");
    }

    /// Seqs side `i` sent, in order.
    fn sent(&self, i: usize) -> Vec<u64> {
        self.events[i]
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Sent { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    /// Events of side `i` that match `pick`.
    fn events_of<T>(&self, i: usize, pick: impl Fn(&SessionEvent) -> Option<T>) -> Vec<T> {
        self.events[i]
            .lock()
            .unwrap()
            .iter()
            .filter_map(pick)
            .collect()
    }

    fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Waits until `core` holds blocks `0..n`.
async fn wait_contiguous(core: &ManagedCore, n: u64) {
    let mut progress = core.watch_progress();
    tokio::time::timeout(Duration::from_secs(60), async {
        while progress.borrow_and_update().contiguous_length < n {
            progress.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not all blocks back: {:?}", *progress.borrow()));
}

/// The signature of the tree of `length` blocks, as `core` serves it.
async fn signature(core: &ManagedCore) -> Vec<u8> {
    let up = RequestUpgrade {
        start: 0,
        length: core.length(),
    };
    let proof = core.serve_proof(None, Some(up)).await.unwrap().unwrap();
    proof.upgrade.unwrap().signature
}

/// A writer of [`BLOCKS`] blocks in `w` and a replica in `r` that downloaded them all
/// over loopback; both closed.
async fn writer_and_full_replica(w: &Path, r: &Path) {
    let writer = open_writer(w).await;
    let values: Vec<Vec<u8>> = (0..BLOCKS).map(entry).collect();
    for chunk in values.chunks(50) {
        writer.append_batch(chunk).await.unwrap();
    }
    let replica = open_replica(r).await;
    let pair = Pair::connect(&writer, &replica).await;
    wait_contiguous(&replica, BLOCKS).await;
    pair.stop();
    writer.close().await.unwrap();
    replica.close().await.unwrap();
}

/// Reads every block; returns the seqs whose read failed (and checks the error and
/// that the others read back as appended).
async fn read_all(core: &ManagedCore) -> Vec<u64> {
    let mut failed = Vec::new();
    for seq in 0..BLOCKS {
        match core.get(seq).await {
            Ok(value) => assert_eq!(value, entry(seq), "seq {seq}"),
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::StorageCorrupted, "{e}");
                assert!(e.to_string().contains("marked missing"), "{e}");
                failed.push(seq);
            }
        }
    }
    failed
}

/// Checks that exactly the `damaged` blocks of the log `key` went from side 0 to side 1 of `pair` (block
/// and byte counters on both sides, the record of what was sent) and returns side 1's
/// counters. The counters are updated just after a block is stored: waits for them.
async fn only_damaged_travelled(pair: &Pair, key: &[u8; 32], damaged: &[u64]) -> Transfer {
    let bytes: u64 = damaged.iter().map(|s| entry(*s).len() as u64).sum();
    let served = pair.stats[0].get(key);
    let got = pair.stats[1]
        .wait_until(key, Duration::from_secs(30), |t| {
            t.blocks_received >= damaged.len() as u64
        })
        .await;
    assert_eq!(pair.sent(0), damaged, "only the damaged blocks travel");
    assert_eq!(
        (served.blocks_sent, served.bytes_sent),
        (damaged.len() as u64, bytes)
    );
    assert_eq!(
        (got.blocks_received, got.bytes_received),
        (damaged.len() as u64, bytes)
    );
    got
}

/// (a) The replica is connected before its reads find the damage: the session is woken
/// by the blocks marked missing and fetches exactly those from the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_replica_gets_its_blocks_back_from_the_writer() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    writer_and_full_replica(dw.path(), dr.path()).await;
    let damaged: Vec<u64> = vec![0, 1, 2, 77, 200, 399];
    damage(dr.path(), damaged.iter().copied());
    let writer = open_writer(dw.path()).await;
    let replica = open_replica(dr.path()).await;
    assert_eq!(replica.info().await.unwrap().contiguous_length, BLOCKS);

    let pair = Pair::connect(&writer, &replica).await;
    pair.wait_channel(1).await;
    assert_eq!(read_all(&replica).await, damaged);
    wait_contiguous(&replica, BLOCKS).await;
    assert_eq!(
        read_all(&replica).await,
        Vec::<u64>::new(),
        "every entry reads back"
    );

    let got = only_damaged_travelled(&pair, &writer.discovery_key(), &damaged).await;
    assert_eq!(got.requests_sent, damaged.len() as u64);
    assert_eq!(got.rejected, 0);
    pair.stop();
    replica.close().await.unwrap();
    // Durable: the repaired replica reopens whole.
    let replica = open_replica(dr.path()).await;
    assert_eq!(replica.info().await.unwrap().contiguous_length, BLOCKS);
    assert_eq!(read_all(&replica).await, Vec::<u64>::new());
}

/// (b) The writer's own data file is damaged for a range: the reads mark it missing,
/// and on connecting it asks the replica for that range alone, verifies the blocks
/// against its own signed tree and stores them; length and signature do not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_writer_gets_its_blocks_back_from_a_replica() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    writer_and_full_replica(dw.path(), dr.path()).await;
    let damaged: Vec<u64> = (120..135).collect();
    damage(dw.path(), damaged.iter().copied());
    let writer = open_writer(dw.path()).await;
    assert!(writer.is_writable());
    let before = (writer.info().await.unwrap(), signature(&writer).await);
    assert_eq!(read_all(&writer).await, damaged);
    assert_eq!(writer.info().await.unwrap().contiguous_length, 120);

    let replica = open_replica(dr.path()).await;
    let pair = Pair::connect(&replica, &writer).await;
    wait_contiguous(&writer, BLOCKS).await;
    assert_eq!(
        read_all(&writer).await,
        Vec::<u64>::new(),
        "every entry reads back"
    );

    let got = only_damaged_travelled(&pair, &writer.discovery_key(), &damaged).await;
    assert_eq!(got.requests_sent, damaged.len() as u64, "no upgrade asked");
    assert_eq!(
        pair.sent(1),
        Vec::<u64>::new(),
        "the replica needed nothing"
    );
    let after = (writer.info().await.unwrap(), signature(&writer).await);
    assert_eq!(
        after, before,
        "length, byte length, fork and signature unchanged"
    );
    assert_eq!(signature(&replica).await, before.1);
    pair.stop();
    writer.close().await.unwrap();
    // Durable, and the writer still appends on top of its signed tree.
    let writer = open_writer(dw.path()).await;
    assert_eq!(writer.info().await.unwrap().contiguous_length, BLOCKS);
    assert_eq!(writer.append(b"after repair").await.unwrap(), BLOCKS);
    assert_eq!(writer.get(BLOCKS).await.unwrap(), b"after repair");
    assert_eq!(read_all(&writer).await, Vec::<u64>::new());
}

/// Blocks damaged in (c) and (d): the first, a run, one alone and the last.
fn unread_damage() -> Vec<u64> {
    let mut seqs = vec![0];
    seqs.extend(150..160);
    seqs.extend([271, BLOCKS - 1]);
    seqs
}

/// (c) and (d): the server (the writer, or a full replica) has damaged blocks nobody
/// read; a fresh reader connects to it alone over loopback TCP. The server checks each
/// block before sending: the reader gets every other block and, for the damaged ones,
/// `NoData` (no bad bytes, nothing refused, its channel stays up); the server marks them
/// missing (as a read would), reports each once (event and counter). Once the server is
/// connected to a third peer holding a healthy copy, it gets those blocks back and the
/// reader, still on the same connection, gets them from it.
async fn damaged_blocks_nobody_read_are_not_served(server_is_writer: bool) {
    let (dw, dr, dn) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    writer_and_full_replica(dw.path(), dr.path()).await;
    let damaged = unread_damage();
    let (server_dir, _) = if server_is_writer {
        (dw.path(), dr.path())
    } else {
        (dr.path(), dw.path())
    };
    damage(server_dir, damaged.iter().copied());
    let (server, healthy) = if server_is_writer {
        (open_writer(dw.path()).await, open_replica(dr.path()).await)
    } else {
        (open_replica(dr.path()).await, open_writer(dw.path()).await)
    };
    assert_eq!(server.info().await.unwrap().contiguous_length, BLOCKS);
    let reader = open_replica(dn.path()).await;
    // A declined block is asked again after the request timeout: short, so the reader
    // asks again soon after the server got the blocks back.
    let config = SessionConfig {
        request_timeout: Duration::from_millis(300),
        tick: Duration::from_millis(50),
        ..SessionConfig::default()
    };
    let served = Pair::connect_with(&server, &reader, config).await;
    let dk = server.discovery_key();
    let others = BLOCKS - damaged.len() as u64;
    let got = served.stats[1]
        .wait_until(&dk, Duration::from_secs(60), |t| {
            t.blocks_received >= others
        })
        .await;
    assert_eq!(got.blocks_received, others, "every other block arrives");
    let checked = served.stats[0]
        .wait_until(&dk, Duration::from_secs(30), |t| {
            t.damaged_not_sent >= damaged.len() as u64
        })
        .await;
    assert_eq!(checked.damaged_not_sent, damaged.len() as u64);
    let mut reported = served.events_of(0, |e| match e {
        SessionEvent::DamagedNotSent {
            seq, path, reason, ..
        } => Some((*seq, path.clone(), reason.clone())),
        _ => None,
    });
    reported.sort_by_key(|(seq, ..)| *seq);
    assert_eq!(
        reported.iter().map(|(seq, ..)| *seq).collect::<Vec<_>>(),
        damaged,
        "each damaged block reported once"
    );
    for (seq, path, reason) in &reported {
        assert_eq!(path, &server_dir.join("data"));
        assert!(
            reason.starts_with(&format!("blocks {seq}..{}", seq + 1))
                && reason.contains("marked missing"),
            "{reason}"
        );
    }
    // Marked missing on the server, durably counted, as a local read would.
    for seq in 0..BLOCKS {
        assert_eq!(
            server.has_block(seq).await.unwrap(),
            !damaged.contains(&seq),
            "seq {seq}"
        );
    }
    assert_eq!(*server.watch_missing().borrow(), damaged.len() as u64);
    assert_eq!(server.info().await.unwrap().length, BLOCKS);
    // The reader got no bad bytes: nothing refused, the damaged blocks not held, every
    // block it holds is the writer's; none of them was sent.
    let sent = served.sent(0);
    assert!(sent.iter().all(|s| !damaged.contains(s)), "{sent:?}");
    assert_eq!(got.rejected, 0);
    for seq in 0..BLOCKS {
        if damaged.contains(&seq) {
            assert!(!reader.has_block(seq).await.unwrap(), "seq {seq}");
        } else {
            assert_eq!(reader.get(seq).await.unwrap(), entry(seq), "seq {seq}");
        }
    }

    // A third peer with a healthy copy: the server gets the damaged blocks back...
    let repair = Pair::connect(&healthy, &server).await;
    wait_contiguous(&server, BLOCKS).await;
    assert_eq!(read_all(&server).await, Vec::<u64>::new());
    let mut fetched = repair.sent(0);
    fetched.sort_unstable();
    assert_eq!(fetched, damaged, "only the damaged blocks travel");
    // ... and the reader, on the connection it always had, gets them from the server.
    wait_contiguous(&reader, BLOCKS).await;
    assert_eq!(read_all(&reader).await, Vec::<u64>::new());
    for i in 0..2 {
        let ended = served.events_of(i, |e| match e {
            SessionEvent::PeerDisconnected { .. } | SessionEvent::Rejected { .. } => {
                Some(e.clone())
            }
            _ => None,
        });
        assert!(ended.is_empty(), "side {i}: {ended:?}");
    }
    let got = served.stats[1].get(&dk);
    assert_eq!(got.rejected, 0);
    let mut sent = served.sent(0);
    sent.sort_unstable();
    sent.dedup();
    assert_eq!(sent, (0..BLOCKS).collect::<Vec<_>>(), "every block served");
    assert_eq!(
        served.stats[0].get(&dk).damaged_not_sent,
        damaged.len() as u64
    );
    served.stop();
    repair.stop();
    // The server reopens whole.
    server.close().await.unwrap();
    let server = if server_is_writer {
        open_writer(server_dir).await
    } else {
        open_replica(server_dir).await
    };
    assert_eq!(server.info().await.unwrap().contiguous_length, BLOCKS);
    assert_eq!(read_all(&server).await, Vec::<u64>::new());
}

/// (c) A writer whose damaged blocks nobody read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_does_not_serve_damaged_blocks_nobody_read() {
    damaged_blocks_nobody_read_are_not_served(true).await;
}

/// (d) A replica whose damaged blocks nobody read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_does_not_serve_damaged_blocks_nobody_read() {
    damaged_blocks_nobody_read_are_not_served(false).await;
}

/// (e) What the asking peer sees on the wire, from a raw peer (our codec, real Noise
/// handshake, TCP on loopback) asking a writer's session for blocks: a damaged block
/// nobody read is answered `NoData { reason: NOT_AVAILABLE }` (hypercore 11's answer for
/// a block it does not hold), again when asked again, and the blocks around it come with
/// their bytes on the same channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_block_is_answered_not_available_on_the_wire() {
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    writer_and_full_replica(dw.path(), dr.path()).await;
    let seq = 42;
    damage(dw.path(), [seq]);
    let writer = open_writer(dw.path()).await;
    let set = LogSet::new();
    set.insert(writer.clone());
    let replicator = Replicator::new(Arc::new(set));
    let stats = replicator.stats();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let session = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        replicator.run(socket, false).await
    });
    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut raw = Raw::connect(socket).await;
    raw.open(&key().verifying_key().to_bytes()).await;
    let mut id = 0;
    let mut ask = async |raw: &mut Raw, index: u64| {
        id += 1;
        raw.send_message(Message::Request(Request {
            id,
            block: Some(RequestBlock { index, nodes: 0 }),
            ..Request::default()
        }))
        .await;
        loop {
            match raw.next().await.expect("an answer") {
                Message::Data(d) if d.request == id => return Ok(d.block.unwrap().value),
                Message::NoData(n) if n.request == id => return Err(n),
                _ => continue,
            }
        }
    };
    let not_available = |request| NoData {
        request,
        reason: NoData::NOT_AVAILABLE,
    };
    assert_eq!(ask(&mut raw, seq).await, Err(not_available(1)));
    assert!(!writer.has_block(seq).await.unwrap(), "marked missing");
    assert_eq!(ask(&mut raw, seq + 1).await, Ok(entry(seq + 1)));
    assert_eq!(ask(&mut raw, seq).await, Err(not_available(3)));
    assert_eq!(ask(&mut raw, seq - 1).await, Ok(entry(seq - 1)));
    assert!(!raw.closed, "the channel stays up");
    let counted = stats.get(&writer.discovery_key());
    assert_eq!((counted.blocks_sent, counted.damaged_not_sent), (2, 1));
    assert_eq!(*writer.watch_missing().borrow(), 1);
    session.abort();
}
