//! Soak (issue 14, "Scale and soak"): two managers append and replicate while the
//! connection between them is cut at random; both end with identical logs and the
//! metrics add up.
//!
//! Each peer writes its own log (`peer-a`, `peer-b`: single appends and batches of
//! random sizes, random payloads) and follows the other's as a replica. Peer A serves on
//! a real TCP listener ([`HypercoreManager::listen`]); peer B dials it through a small
//! loopback proxy this test controls, redialling as soon as a connection ends. A cutter
//! drops every connection through the proxy (both sockets closed) after a random
//! 10-1,000 ms, so cuts land in handshakes, mid-transfer and on idle channels. When the
//! time is up, appends and cuts stop, the last connection stays and both replicas must
//! catch up; then every entry is compared on both peers, both directions, against what
//! the writer was acknowledged, and the counters are checked against the logs.
//!
//! Duration: 20 s; 2 minutes with `NOVA_FULL=1` (the long variant of `cargo xtask test
//! --full`). `NOVA_SOAK_SEED=<n>` replays a run's random choices (the seed is printed).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nova_hypercore_manager::replication_state::{self, MAX_PEERS_PER_LOG};
use nova_hypercore_manager::{HypercoreManager, ManagedLog, ManagerConfig};
use nova_hypercore_testkit::replay::{Rng, seed_from_env};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A hang detector for the final catch-up, not a speed check.
const HANG: Duration = Duration::from_secs(120);
/// How long counters may trail the blocks they count (a hang detector too: they
/// follow within milliseconds).
const SETTLE: Duration = Duration::from_secs(30);

fn soak_duration() -> Duration {
    if std::env::var_os("NOVA_FULL").is_some_and(|v| v == "1") {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(20)
    }
}

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let config = ManagerConfig::builder().storage_path(path).build().unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    m
}

/// A TCP proxy on loopback that forwards to `upstream` and can drop every connection
/// it carries at once.
struct Proxy {
    addr: SocketAddr,
    pumps: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pumps = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let held = pumps.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                let mut pumps = held.lock().await;
                // Finished pumps are reaped here so the set stays small.
                while pumps.try_join_next().is_some() {}
                pumps.spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = down.set_nodelay(true);
                        let _ = up.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
        });
        Proxy {
            addr,
            pumps,
            accept,
        }
    }

    /// Drops every connection through the proxy (both of its sockets); returns how many.
    async fn cut(&self) -> usize {
        let mut pumps = self.pumps.lock().await;
        while pumps.try_join_next().is_some() {}
        let live = pumps.len();
        pumps.abort_all();
        while pumps.join_next().await.is_some() {}
        live
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// What one writer was acknowledged, in order.
#[derive(Default)]
struct Written {
    payloads: Vec<Vec<u8>>,
    append_calls: u64,
}

/// Appends to `log` until `stop`: single appends and batches of 2-8, payloads of
/// 1-2,048 random bytes, a pause of 0-4 ms between calls (pacing the workload). Every
/// acknowledged range must continue the log without a gap.
async fn write(log: ManagedLog, mut rng: Rng, stop: Arc<AtomicBool>) -> Written {
    let mut written = Written::default();
    while !stop.load(Ordering::Acquire) {
        let count = if rng.below(2) == 0 {
            1
        } else {
            2 + rng.below(7)
        };
        let batch: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let len = 1 + rng.below(2048) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            })
            .collect();
        let seqs = log.append_batch(&batch).await.unwrap();
        let at = written.payloads.len() as u64;
        assert_eq!(seqs, at..at + count, "acknowledged seqs continue the log");
        written.payloads.extend(batch);
        written.append_calls += 1;
        tokio::time::sleep(Duration::from_millis(rng.below(5))).await;
    }
    written
}

async fn caught_up(replica: &ManagedLog, length: u64) {
    let mut progress = replica.watch_progress().await.unwrap();
    tokio::time::timeout(HANG, async {
        while progress.borrow_and_update().contiguous_length < length {
            progress.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} stalled at {:?} of {length} after the cuts stopped",
            replica.name(),
            *progress.borrow()
        )
    });
}

fn bytes(payloads: &[Vec<u8>]) -> u64 {
    payloads.iter().map(|p| p.len() as u64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_append_and_replicate_through_random_cuts() {
    let mut rng = Rng::new(seed_from_env("NOVA_SOAK_SEED", "SOAK"));
    let duration = soak_duration();

    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    let own_a = a.get_log("peer-a").await.unwrap();
    let own_b = b.get_log("peer-b").await.unwrap();
    let replica_a = b.open_replica("peer-a", own_a.public_key()).await.unwrap();
    let replica_b = a.open_replica("peer-b", own_b.public_key()).await.unwrap();
    for (m, log) in [
        (&a, "peer-a"),
        (&a, "peer-b"),
        (&b, "peer-a"),
        (&b, "peer-b"),
    ] {
        m.enable_replication(log).await.unwrap();
    }

    let listener = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let proxy = Proxy::start(listener.local_addr()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let connections = Arc::new(AtomicU64::new(0));

    // B dials A through the proxy, again as soon as a connection ends.
    let dialer = {
        let (b, addr, connections) = (b.clone(), proxy.addr, connections.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(socket) = TcpStream::connect(addr).await {
                    let _ = socket.set_nodelay(true);
                    connections.fetch_add(1, Ordering::Relaxed);
                    let _ = b.replicate(socket, true).await;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writer_a = tokio::spawn(write(own_a.clone(), rng.fork(), stop.clone()));
    let writer_b = tokio::spawn(write(own_b.clone(), rng.fork(), stop.clone()));

    // Cut at random moments until the time is up.
    let started = Instant::now();
    let (mut cuts, mut severed) = (0u64, 0u64);
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(10 + rng.below(990))).await;
        let dropped = proxy.cut().await;
        cuts += 1;
        severed += dropped as u64;
    }
    stop.store(true, Ordering::Release);
    let written_a = writer_a.await.unwrap();
    let written_b = writer_b.await.unwrap();
    let (len_a, len_b) = (
        written_a.payloads.len() as u64,
        written_b.payloads.len() as u64,
    );

    // No more cuts: the connection that is up (or the next one) brings both replicas level.
    caught_up(&replica_a, len_a).await;
    caught_up(&replica_b, len_b).await;

    // A replica's progress moves when a block is stored, the counters a moment later
    // when the manager sees the session's `Received` event: wait for them (bounded).
    let (bytes_a, bytes_b) = (bytes(&written_a.payloads), bytes(&written_b.payloads));
    let _ = tokio::time::timeout(SETTLE, async {
        loop {
            let mut settled = true;
            for (m, replica, want) in [(&a, "peer-b", bytes_b), (&b, "peer-a", bytes_a)] {
                let status = m.replication_status(replica).await.unwrap();
                settled &= status.bytes_transferred >= want
                    && m.status().await.total_byte_size >= bytes_a + bytes_b
                    && m.metrics().total_byte_size >= bytes_a + bytes_b;
            }
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // Metrics add up: appends counted == entries written; bytes stored == payload bytes
    // (replicated blocks counted once, in total_byte_size); each replica received its
    // log's bytes exactly once; the totals equal the per-log figures.
    for (m, own, replica, appended) in [
        (&a, "peer-a", "peer-b", len_a),
        (&b, "peer-b", "peer-a", len_b),
    ] {
        let metrics = m.metrics();
        assert_eq!(metrics.total_appends, appended, "appends counted by {own}");
        let status = m.status().await;
        assert_eq!(status.total_byte_size, bytes_a + bytes_b);
        assert_eq!(metrics.total_byte_size, status.total_byte_size);
        let own_status = m.replication_status(own).await.unwrap();
        let replica_status = m.replication_status(replica).await.unwrap();
        let replica_bytes = if replica == "peer-a" {
            bytes_a
        } else {
            bytes_b
        };
        assert_eq!(
            replica_status.bytes_transferred, replica_bytes,
            "{replica} on the {own} peer: every byte received once"
        );
        // Sent at least once; a cut can lose blocks in flight, which are sent again.
        let own_bytes = if own == "peer-a" { bytes_a } else { bytes_b };
        assert!(own_status.bytes_transferred >= own_bytes, "{own} sent");
        assert_eq!(
            metrics.replication_bytes_transferred,
            own_status.bytes_transferred + replica_status.bytes_transferred,
            "the store's replication bytes are the logs' sum"
        );
    }
    // Identical logs, every entry, both directions, and equal to what was acknowledged
    // (after the counters: reads refresh a log's figures themselves).
    for (m, log, written) in [
        (&a, "peer-a", &written_a),
        (&b, "peer-a", &written_a),
        (&a, "peer-b", &written_b),
        (&b, "peer-b", &written_b),
    ] {
        let len = written.payloads.len() as u64;
        assert_eq!(m.get_length(log).await.unwrap(), len, "length of {log}");
        let got = m.read_range(log, 0, len).await.unwrap();
        assert!(
            got == written.payloads,
            "{log} on {} differs from what its writer was acknowledged (first difference at {:?})",
            m.storage_path().display(),
            got.iter().zip(&written.payloads).position(|(x, y)| x != y)
        );
    }

    // The soak really cut live connections, many times.
    let made = connections.load(Ordering::Relaxed);
    assert!(severed >= 5, "only {severed} connections were cut");
    assert!(made > severed, "{made} connections for {severed} cuts");

    // Peer ids are per connection: the live status lists the one connected peer, not
    // every connection there ever was (each cut one's entry goes with its channel).
    let remote_entries = tokio::time::timeout(HANG, async {
        loop {
            let a_side = a.replication_status("peer-b").await.unwrap();
            let b_side = b.replication_status("peer-a").await.unwrap();
            let most = a_side.remote_lengths.len().max(b_side.remote_lengths.len());
            if most <= 1 {
                return b_side.remote_lengths.len();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("status keeps only connected peers' lengths");
    dialer.abort();
    drop(proxy);
    drop(listener);
    a.close().await.unwrap();
    b.close().await.unwrap();
    // The persisted state keeps a bounded number of peers per log (more connections than
    // that were made), the newest with the final length.
    assert!(made > MAX_PEERS_PER_LOG as u64, "{made} connections");
    for (dir, replica, len) in [(&da, "peer-b", len_b), (&db, "peer-a", len_a)] {
        let state =
            replication_state::load(&dir.path().join(replication_state::FILE_NAME)).unwrap();
        for (log, peers) in &state.logs {
            assert!(
                peers.len() <= MAX_PEERS_PER_LOG,
                "{} peers remembered for {log}",
                peers.len()
            );
        }
        assert_eq!(state.logs[replica].values().max(), Some(&len), "{replica}");
    }
    let state_bytes = std::fs::metadata(db.path().join(replication_state::FILE_NAME))
        .unwrap()
        .len();
    println!(
        "SOAK seconds={} cuts={cuts} connections_cut={severed} connections={made} \
         a_entries={len_a} a_appends={} a_bytes={bytes_a} b_entries={len_b} b_appends={} \
         b_bytes={bytes_b} remote_lengths_entries={remote_entries} state_file_bytes={state_bytes}",
        duration.as_secs(),
        written_a.append_calls,
        written_b.append_calls,
    );
}
