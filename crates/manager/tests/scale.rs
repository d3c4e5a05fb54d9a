//! Scale: many replication-enabled logs in one store, replicated between two managers
//! over direct TCP on loopback (issue 14, "Scale and soak").
//!
//! Writer A holds `n` logs with [`ENTRIES`] entries each; reader B holds a replica of
//! every one; replication is on for all of them in both stores. Every replica must
//! complete over one connection and every entry reads back equal on B. Along the way the
//! test counts this process's open file descriptors (`/proc/self/fd`) and resident memory
//! (`VmRSS`), and prints the figures (`--nocapture`) for docs/reliability.md.
//!
//! `n` is 200 in the default run and 1,000 with `NOVA_FULL=1` (the long variant of
//! `cargo xtask test --full`): creating 1,000 logs and closing them syncs 10,000 files,
//! which took 10-30 s alone on the 2-core CI machine and over 70 s next to the soak.
//!
//! The bound on descriptors checked here: every log of a store opens its 5 files
//! (`oplog`, `tree`, `bitfield`, `data`, `sizes`) under the store's one file budget
//! (`max_open_files`, default 128), whatever holds the log: replication-enabled logs
//! are pinned (their `ManagedCore` is shared with every session) and sit above
//! `max_open_logs`, but their files are opened on demand and the least recently used
//! file of any log is closed beyond the budget. The process therefore holds at most
//! `max_open_files` log descriptors per store (two stores here) plus one socket per
//! connection and a few for the runtime, whatever the number of logs, entries, peers or
//! sessions: checked at each step and, while the replicas sync, by a sampler counting
//! `/proc/self/fd` every 2 ms. Everything is released at close.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use nova_hypercore_manager::{HypercoreManager, ManagedLog, ManagerConfig};
use nova_hypercore_testkit::fds::{FdPeak, open_fds};
use nova_hypercore_testkit::proc_status_bytes;

/// Logs per store (both stores hold this many, all replication-enabled).
fn logs_per_store() -> usize {
    if std::env::var_os("NOVA_FULL").is_some_and(|v| v == "1") {
        1_000
    } else {
        200
    }
}

/// Entries per log.
const ENTRIES: u64 = 3;
/// Open files a log holds while its files are open.
const FILES_PER_LOG: usize = 5;
/// Descriptors beyond the logs' budgets that the test tolerates: the listener, the
/// connection's two sockets, the directory handle of the count itself, key and state
/// files being written, files a budget just closed while an I/O on another thread
/// still uses them, and so on.
const SLACK: usize = 32;
/// A hang detector for the whole sync, not a speed check.
const HANG: Duration = Duration::from_secs(300);
/// How long counters may trail the blocks they count (a hang detector too: they
/// follow within milliseconds).
const SETTLE: Duration = Duration::from_secs(30);

fn payload(log: usize, entry: u64) -> Vec<u8> {
    format!("log {log} entry {entry}: scale test payload").into_bytes()
}

fn name(i: usize) -> String {
    format!("scale-{i:04}")
}

fn rss() -> u64 {
    proc_status_bytes("VmRSS").expect("VmRSS in /proc/self/status")
}

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let config = ManagerConfig::builder()
        .storage_path(path)
        .replication_enabled(true)
        .build()
        .unwrap();
    let m = HypercoreManager::new(config).unwrap();
    m.initialize().await.unwrap();
    m
}

async fn wait_complete(replicas: &[ManagedLog]) {
    tokio::time::timeout(HANG, async {
        for replica in replicas {
            let mut progress = replica.watch_progress().await.unwrap();
            while progress.borrow_and_update().contiguous_length < ENTRIES {
                progress.changed().await.unwrap();
            }
        }
    })
    .await
    .expect("every replica completes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_logs_at_scale_sync_with_bounded_open_files() {
    let n = logs_per_store();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    let cap = a.config().max_open_logs;
    assert!(
        cap < n,
        "the test must enable more logs than the open-log cap"
    );
    let budget = a.config().max_open_files;
    assert_eq!(budget, b.config().max_open_files);
    assert!(
        FILES_PER_LOG * n > 2 * budget + SLACK,
        "the test must open more log files than both budgets hold"
    );
    // Both stores' logs together, in this one process.
    let bound = 2 * budget + SLACK;
    let fds_base = open_fds();
    let rss_base = rss();
    let started = std::time::Instant::now();

    // Writer: `n` logs, replication on for each (config), no peer yet: idle logs.
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let payloads: Vec<Vec<u8>> = (0..ENTRIES).map(|e| payload(i, e)).collect();
        let seqs = a.append_batch(&name(i), &payloads).await.unwrap();
        assert_eq!(seqs, 0..ENTRIES);
        keys.push(a.get_log(&name(i)).await.unwrap().public_key());
    }
    let fds_writer = open_fds();
    let rss_writer = rss();
    let t_writer = started.elapsed();
    let per_log_writer = (fds_writer - fds_base) as f64 / n as f64;
    let idle_bytes_per_log = rss_writer.saturating_sub(rss_base) / n as u64;

    // Reader: a replica of each, replication on for each.
    let mut replicas = Vec::with_capacity(n);
    for (i, key) in keys.iter().enumerate() {
        replicas.push(b.open_replica(&name(i), *key).await.unwrap());
    }
    let fds_idle = open_fds();
    let t_reader = started.elapsed();
    let b_status = b.status().await;
    assert_eq!(b_status.log_count, n as u64);
    assert!(b_status.replication_enabled);

    // Bound: the stores' budgets, nothing per log (5 files each would be 5 x n).
    assert!(
        fds_writer - fds_base <= budget + SLACK,
        "{n} idle enabled logs hold {} descriptors (budget {budget} + {SLACK})",
        fds_writer - fds_base
    );
    assert!(a.open_files() <= budget);
    assert!(
        fds_idle - fds_base <= bound,
        "{} descriptors for 2 x {n} idle enabled logs (bound {bound})",
        fds_idle - fds_base
    );
    assert!(b.open_files() <= budget);

    // One direct TCP connection carries all `n` channels; a sampler keeps the peak
    // descriptor count while they sync.
    let sampler = FdPeak::start(Duration::from_millis(2));
    let listener = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let connector = b.connect(listener.local_addr());
    wait_complete(&replicas).await;
    let t_synced = started.elapsed();
    let fds_synced = open_fds();
    let rss_synced = rss();
    // Each replica counts the peer, and its bytes count in the store's size, before
    // anything is read back (reads refresh a log's figures themselves). The counters
    // follow the session's events a moment after the blocks are stored: wait for them
    // (bounded), then check.
    let replicated_bytes: u64 = (0..n)
        .flat_map(|i| (0..ENTRIES).map(move |e| payload(i, e).len() as u64))
        .sum();
    let _ = tokio::time::timeout(SETTLE, async {
        while b.metrics().active_peers < n as u64
            || b.status().await.total_byte_size < replicated_bytes
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(b.metrics().active_peers, n as u64, "one channel per log");
    assert_eq!(b.status().await.total_byte_size, replicated_bytes);
    assert_eq!(b.metrics().total_byte_size, replicated_bytes);
    assert_eq!(a.status().await.total_byte_size, replicated_bytes);
    // Every entry of every log, verified by the reader's core, equals what A wrote.
    for (i, replica) in replicas.iter().enumerate() {
        let got = replica.get_range(0, ENTRIES).await.unwrap();
        let want: Vec<Vec<u8>> = (0..ENTRIES).map(|e| payload(i, e)).collect();
        assert_eq!(got, want, "log {}", name(i));
    }
    let fds_peak = sampler.stop().max(fds_synced);
    assert!(
        fds_synced - fds_base <= bound,
        "{} descriptors after syncing 2 x {n} logs over one connection (bound {bound})",
        fds_synced - fds_base
    );
    assert!(
        fds_peak - fds_base <= bound,
        "{} descriptors at the peak of syncing and reading 2 x {n} logs (bound {bound})",
        fds_peak - fds_base
    );
    assert!(a.open_files() <= budget && b.open_files() <= budget);

    let t_checked = started.elapsed();
    drop(connector);
    drop(listener);
    a.close().await.unwrap();
    let t_closed_a = started.elapsed();
    b.close().await.unwrap();
    let t_closed_b = started.elapsed();
    // Sessions end with the connection; closed logs release their files.
    let fds_closed = tokio::time::timeout(SETTLE, async {
        loop {
            let fds = open_fds();
            if fds <= fds_base + SLACK {
                return fds;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("descriptors not released after close: {}", open_fds()));

    println!(
        "SCALE logs_per_store={n} entries_per_log={ENTRIES} max_open_logs={cap} \
         max_open_files={budget} fds_base={fds_base} fds_writer_idle={fds_writer} \
         fds_both_idle={fds_idle} fds_synced={fds_synced} fds_peak={fds_peak} \
         fds_closed={fds_closed} fds_per_enabled_log={per_log_writer:.2} \
         rss_base_kib={} rss_writer_idle_kib={} rss_synced_kib={} \
         idle_rss_per_log_bytes={idle_bytes_per_log} \
         synced_rss_per_log_bytes={} elapsed_writer={t_writer:?} elapsed_reader={t_reader:?} \
         elapsed_synced={t_synced:?} elapsed_checked={t_checked:?} elapsed_closed_a={t_closed_a:?} \
         elapsed_closed_b={t_closed_b:?} elapsed_total={:?}",
        rss_base / 1024,
        rss_writer / 1024,
        rss_synced / 1024,
        rss_synced.saturating_sub(rss_base) / (2 * n as u64),
        started.elapsed(),
    );
}
