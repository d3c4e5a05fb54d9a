//! Lock and I/O hygiene of the manager, with real files, real sockets and real peers:
//! a stalled log open does not stall `status` or other logs; the accept loop backs off
//! on a persistent accept error (out of file descriptors, in a child process with a
//! low `ulimit -n`); `replication-state.json` is written at a bounded rate, not per
//! received block; replicated bytes count in `total_byte_size`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_manager::{HypercoreManager, ManagerConfig, ManagerEvent, keys};
use nova_hypercore_serialization::ErrorCode;

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

/// A bound on waiting for something that must happen (a hang detector, not a speed check).
const HANG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_open_stalls_neither_status_nor_other_logs() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    m.append("busy", b"one").await.unwrap();

    // The key file of "slow" is a FIFO: reading it blocks until the test writes to it,
    // as a file on a stalled disk would. Opening "slow" waits there.
    let key_path = dir.path().join("keys").join("slow.key");
    let made = std::process::Command::new("mkfifo")
        .arg(&key_path)
        .status()
        .unwrap();
    assert!(made.success());
    let primary: [u8; 32] = std::fs::read(dir.path().join("keys/primary-key"))
        .unwrap()
        .try_into()
        .unwrap();
    let key = keys::derive_key_pair(&primary, &keys::DEFAULT_NAMESPACE, "slow");
    let mut key_bytes = key.to_bytes().to_vec();
    key_bytes.extend_from_slice(key.verifying_key().as_bytes());

    let m2 = m.clone();
    let slow = tokio::spawn(async move { m2.get_log("slow").await });
    // Wait until the open is actually blocked on the FIFO: a non-blocking open for
    // writing succeeds only once a reader is there. Holding this writer open without
    // writing keeps the reader blocked in read(), like a stalled disk.
    let writer = tokio::time::timeout(HANG, async {
        loop {
            if let Some(w) = fifo_writer(&key_path) {
                return w;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the open of \"slow\" reaches its key file");
    // Releases the reader, however this test ends.
    let release = move || {
        use std::io::Write;
        let mut writer = writer;
        writer.write_all(&key_bytes).unwrap();
    };

    // While that open is stalled: status answers, other logs open, append and read.
    let answered = tokio::time::timeout(HANG, async {
        let status = m.status().await;
        m.append("busy", b"two").await.unwrap();
        let other = m.get_log("other").await.unwrap();
        other.append(b"x").await.unwrap();
        let again = m.status().await;
        (status, again)
    })
    .await;
    let Ok((status, again)) = answered else {
        release();
        panic!("status / other logs stalled behind the open of one log");
    };
    assert!(status.initialized);
    assert_eq!(status.log_count, 1, "only \"busy\" is registered yet");
    assert_eq!(again.log_count, 2);
    assert!(
        !slow.is_finished(),
        "the slow open is still waiting on its key file"
    );

    // Let the open finish: it completes with the right key.
    release();
    let log = tokio::time::timeout(HANG, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(log.public_key(), *key.verifying_key().as_bytes());
    assert_eq!(m.status().await.log_count, 3);
    m.close().await.unwrap();
}

/// The FIFO at `path` opened for writing without blocking: `None` (ENXIO) while no
/// reader has it open.
fn fifo_writer(path: &std::path::Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    /// `O_NONBLOCK` on Linux.
    const O_NONBLOCK: i32 = 0o4000;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_one_name_give_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let opens: Vec<_> = (0..16)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.get_log("shared").await.unwrap() })
        })
        .collect();
    let mut logs = Vec::new();
    for open in opens {
        logs.push(open.await.unwrap());
    }
    assert!(logs.iter().all(|l| l.same_log(&logs[0])));
    assert_eq!(m.status().await.log_count, 1);
    // A replica under a taken name is refused, whoever opened it first.
    let err = m.open_replica("shared", [7; 32]).await;
    assert!(err.is_err());
    m.close().await.unwrap();
}

/// Runs in a child process whose file descriptor limit is low (see
/// `accept_errors_back_off`); does nothing when run directly.
#[tokio::test(start_paused = true)]
async fn accept_errors_back_off_child() {
    if std::env::var_os("NOVA_ACCEPT_CHILD").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let listener = m.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut events = m.subscribe();
    // Use up every file descriptor but one, which the client's socket takes: the
    // connection then waits in the listen queue and every accept fails with EMFILE.
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    hog.pop();
    let _client = std::net::TcpStream::connect(listener.local_addr()).unwrap();

    // The clock is paused: it moves only when every task waits. A loop that retried at
    // once would report all its failures at the same instant.
    let mut seen = Vec::new();
    while seen.len() < 8 {
        match events.recv().await {
            Ok(ManagerEvent::Error { error, .. })
                if error.code == ErrorCode::ReplicationFailed
                    && error.message.contains("accept") =>
            {
                seen.push(tokio::time::Instant::now());
            }
            Ok(_) => {}
            Err(e) => panic!("events lost ({e}): the accept loop floods"),
        }
    }
    let waited = seen[7] - seen[0];
    // 10 + 20 + 40 + 80 + 160 + 320 + 640 ms between the first and the eighth failure.
    assert!(
        waited >= Duration::from_millis(1270),
        "8 accept failures within {waited:?}: no backoff"
    );
    drop(hog);
    println!("ACCEPT-BACKOFF-CHILD-OK {waited:?}");
}

#[test]
fn accept_errors_back_off() {
    nova_hypercore_testkit::run_under_ulimit(
        128,
        "accept_errors_back_off_child",
        "NOVA_ACCEPT_CHILD",
        "ACCEPT-BACKOFF-CHILD-OK",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_state_is_written_at_a_bounded_rate_and_bytes_add_up() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    a.append("feed", b"first").await.unwrap();
    a.enable_replication("feed").await.unwrap();
    let source = a.get_log("feed").await.unwrap();
    let replica = b
        .open_replica("feed-of-a", source.public_key())
        .await
        .unwrap();
    b.enable_replication("feed-of-a").await.unwrap();
    let before = b.replication_state_writes();
    let bytes_before = b.status().await.total_byte_size;

    let (x, y) = tokio::io::duplex(256 * 1024);
    let (a2, b2) = (a.clone(), b.clone());
    let ta = tokio::spawn(async move { a2.replicate(x, true).await });
    let tb = tokio::spawn(async move { b2.replicate(y, false).await });
    let started = std::time::Instant::now();

    // Live: the writer appends one block at a time and the reader catches up with each,
    // which confirms a new length with the peer every time.
    const N: u64 = 400;
    let mut progress = replica.watch_progress().await.unwrap();
    let mut payload_bytes = 5u64;
    for i in 1..N {
        let payload = format!("block {i}");
        payload_bytes += payload.len() as u64;
        a.append("feed", payload.as_bytes()).await.unwrap();
        tokio::time::timeout(HANG, async {
            while progress.borrow_and_update().contiguous_length <= i {
                progress.changed().await.unwrap();
            }
        })
        .await
        .expect("the reader follows live");
    }
    let elapsed = started.elapsed();
    let during = b.replication_state_writes() - before;
    // At most one write per interval (plus the first at once) while the session runs.
    let bound = elapsed.as_secs_f64() / HypercoreManager::PERSIST_INTERVAL.as_secs_f64() + 2.0;
    assert!(
        (during as f64) <= bound,
        "{during} writes of replication-state.json for {N} blocks in {elapsed:?} (bound {bound:.1})"
    );

    // Replicated bytes count in the reader's total byte size (status and metrics). The
    // replica's progress moves when a block is stored, the counters a moment later when
    // the manager sees the session's `Received` event: wait for them (bounded), then check.
    let _ = tokio::time::timeout(HANG, async {
        while b.status().await.total_byte_size - bytes_before != payload_bytes
            || b.metrics().total_byte_size != b.status().await.total_byte_size
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let status = b.status().await;
    assert_eq!(status.total_byte_size - bytes_before, payload_bytes);
    assert_eq!(b.metrics().total_byte_size, status.total_byte_size);
    assert_eq!(replica.byte_length(), payload_bytes);

    // The end of the connection writes what was confirmed last (the peer is listed in
    // the live status while connected only).
    let peer = b
        .replication_status("feed-of-a")
        .await
        .unwrap()
        .remote_lengths
        .into_keys()
        .next()
        .unwrap();
    ta.abort();
    let _ = tb.await;
    let state =
        nova_hypercore_manager::replication_state::load(&db.path().join("replication-state.json"))
            .unwrap();
    assert_eq!(state.logs["feed-of-a"][&peer], N);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Whether the server closed `stream` (EOF) within `within`; `false` if it stays open.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // The other side's handshake bytes: keep reading.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_serves_at_most_its_connection_caps() {
    let dir = tempfile::tempdir().unwrap();
    let m = HypercoreManager::new(
        ManagerConfig::builder()
            .storage_path(dir.path())
            .max_connections(3)
            .max_connections_per_address(2)
            .build()
            .unwrap(),
    )
    .unwrap();
    m.initialize().await.unwrap();
    let listener = m.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr();
    // Two from 127.0.0.1 are served (they sit in the Noise handshake), the third is
    // closed at once.
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let second = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(3)).await,
        "a third connection from one address was served"
    );
    assert!(!closed_within(&mut first, Duration::from_millis(300)).await);
    // Another address (127.0.0.2 is loopback too) gets the last slot of three; a fourth
    // connection, whatever its address, is closed.
    let from = |ip: &str| {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        socket.connect(addr)
    };
    let mut other = from("127.0.0.2").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!closed_within(&mut other, Duration::from_millis(300)).await);
    let mut fourth = from("127.0.0.3").await.unwrap();
    assert!(
        closed_within(&mut fourth, Duration::from_secs(3)).await,
        "a fourth connection was served"
    );
    // A slot freed (the first closes) is taken again.
    drop(first);
    drop(second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(!closed_within(&mut again, Duration::from_millis(300)).await);
    drop(listener);
}
