//! Logs under a [`FileBudget`] on real files: more logs than the budget has descriptors
//! append, read and sync in an interleaved order while the process's open descriptors
//! (`/proc/self/fd`, one process per test under nextest) stay within the budget; every
//! entry reads back after close and reopen; eviction while two tasks use their logs
//! at once fails no I/O; 64 durable logs appending at once stay within the budget plus
//! one descriptor per write turn; and a process with no descriptor left (a child under
//! `ulimit -n 64`, the rest taken) keeps working on the budget's own descriptors.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use nova_hypercore_managed_core::{Durability, FileBudget, ManagedCore, OpenOptions, WRITE_TURNS};
use nova_hypercore_serialization::LogName;
use nova_hypercore_testkit::fds::{FdPeak, open_fds};

const BUDGET: usize = 8;
const LOGS: usize = 12;
const ROUNDS: u64 = 6;
/// Descriptors beyond the budget the count tolerates: none are expected on a
/// current-thread runtime (no I/O runs on another thread while the test counts).
const SLACK: usize = 2;

fn durability(i: usize) -> Durability {
    [
        Durability::Flush,
        Durability::FsyncPerBatch,
        Durability::FsyncPerWrite,
    ][i % 3]
}

fn entry(log: usize, seq: u64) -> Vec<u8> {
    format!("log {log} entry {seq}").into_bytes()
}

async fn open(root: &Path, i: usize, budget: Option<&FileBudget>) -> ManagedCore {
    let mut options = OpenOptions::new().durability(durability(i));
    if let Some(budget) = budget {
        options = options.file_budget(budget.clone());
    }
    let name = LogName::parse(&format!("log-{i}")).unwrap();
    ManagedCore::open(root.join(format!("log-{i}")), name, options)
        .await
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn more_logs_than_the_budget_append_read_sync_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let base = open_fds();
    let budget = FileBudget::new(BUDGET);
    let mut logs = Vec::new();
    for i in 0..LOGS {
        logs.push(open(dir.path(), i, Some(&budget)).await);
        assert!(open_fds() <= base + BUDGET + SLACK);
    }
    let mut peak = 0;
    for round in 0..ROUNDS {
        for (i, log) in logs.iter().enumerate() {
            // Single appends in even rounds, batches of two in odd ones.
            if round % 2 == 0 {
                assert_eq!(
                    log.append(&entry(i, log.length())).await.unwrap(),
                    round * 3 / 2
                );
            } else {
                let at = log.length();
                log.append_batch(&[entry(i, at), entry(i, at + 1)])
                    .await
                    .unwrap();
            }
            // Read another log (its files are likely closed by now) and this one.
            let other = &logs[(i + LOGS / 2) % LOGS];
            if other.length() > 0 {
                let seq = round % other.length();
                let j = (i + LOGS / 2) % LOGS;
                assert_eq!(other.get(seq).await.unwrap(), entry(j, seq));
                assert!(other.verify_signature(seq).await.unwrap());
            }
            assert_eq!(
                log.get(log.length() - 1).await.unwrap(),
                entry(i, log.length() - 1)
            );
            peak = peak.max(open_fds() - base);
            assert!(budget.open_files() <= BUDGET);
        }
    }
    assert!(
        peak <= BUDGET + SLACK,
        "{peak} descriptors for {LOGS} logs under a budget of {BUDGET}"
    );
    assert!(peak >= BUDGET.min(4), "the logs used the budget: {peak}");
    assert!(budget.evictions() > 0);
    let lengths: Vec<u64> = logs.iter().map(ManagedCore::length).collect();
    assert!(lengths.iter().all(|&l| l == ROUNDS * 3 / 2));
    for log in &logs {
        log.close().await.unwrap();
    }
    // Closed logs give their descriptors back though the handles are still alive.
    assert_eq!(budget.open_files(), 0);
    assert!(open_fds() <= base, "{} open after close", open_fds() - base);
    drop(logs);

    // Reopen: under a new budget, and one log without any.
    let budget = FileBudget::new(BUDGET);
    for (i, &length) in lengths.iter().enumerate() {
        let log = open(dir.path(), i, (i != 0).then_some(&budget)).await;
        assert_eq!(log.length(), length);
        let all = log.get_range(0, length).await.unwrap();
        let want: Vec<Vec<u8>> = (0..length).map(|s| entry(i, s)).collect();
        assert_eq!(all, want, "log {i}");
        log.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_while_two_tasks_use_their_logs_fails_no_io() {
    let dir = tempfile::tempdir().unwrap();
    // Six logs (30 files) on 4 descriptors: nearly every I/O reopens a file and closes
    // one the other task may be using right then.
    let budget = FileBudget::new(4);
    let mut logs = Vec::new();
    for i in 0..6 {
        logs.push(open(dir.path(), i, Some(&budget)).await);
    }
    let tasks: Vec<_> = (0..2)
        .map(|t| {
            let mine: Vec<(usize, ManagedCore)> = (0..3)
                .map(|k| (2 * k + t, logs[2 * k + t].clone()))
                .collect();
            tokio::spawn(async move {
                for round in 0..100u64 {
                    for (i, log) in &mine {
                        let seq = log.append(&entry(*i, round)).await?;
                        assert_eq!(seq, round);
                        assert_eq!(log.get(round / 2).await?, entry(*i, round / 2));
                    }
                }
                Ok::<(), nova_hypercore_serialization::HypercoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert!(budget.evictions() > 0);
    for (i, log) in logs.iter().enumerate() {
        let want: Vec<Vec<u8>> = (0..100).map(|s| entry(i, s)).collect();
        assert_eq!(log.get_range(0, 100).await.unwrap(), want);
        log.close().await.unwrap();
    }
    assert_eq!(budget.open_files(), 0);
}

/// Run by [`a_process_out_of_descriptors_reuses_the_budgets_own`] in a child with a low
/// `ulimit -n`; does nothing in a normal run.
#[tokio::test(flavor = "current_thread")]
async fn out_of_descriptors_child() {
    if std::env::var_os("NOVA_EMFILE_CHILD").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let budget = FileBudget::new(BUDGET);
    let mut logs = Vec::new();
    for i in 0..8 {
        let log = open(dir.path(), i, Some(&budget)).await;
        log.append(&entry(i, 0)).await.unwrap();
        logs.push(log);
    }
    assert_eq!(budget.open_files(), BUDGET);
    // Take every descriptor the process has left.
    let mut hog = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) if e.raw_os_error() == Some(24) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        std::fs::File::open("/dev/null").is_err(),
        "no descriptor left"
    );
    // Every reopen now meets EMFILE, gives up one of the budget's files and retries.
    let evictions = budget.evictions();
    for round in 1..4u64 {
        for (i, log) in logs.iter().enumerate() {
            assert_eq!(log.append(&entry(i, round)).await.unwrap(), round);
            assert_eq!(log.get(round - 1).await.unwrap(), entry(i, round - 1));
        }
    }
    // The budget stays full: each reopen took the descriptor of the file it closed.
    assert!(budget.evictions() > evictions, "closed for room");
    assert!(budget.open_files() <= BUDGET);
    assert!(std::fs::File::open("/dev/null").is_err(), "none leaked");
    drop(hog);
    for (i, log) in logs.iter().enumerate() {
        let want: Vec<Vec<u8>> = (0..4).map(|s| entry(i, s)).collect();
        assert_eq!(log.get_range(0, 4).await.unwrap(), want);
        log.close().await.unwrap();
    }
    println!("EMFILE-CHILD-OK");
}

#[test]
fn a_process_out_of_descriptors_reuses_the_budgets_own() {
    nova_hypercore_testkit::run_under_ulimit(
        64,
        "out_of_descriptors_child",
        "NOVA_EMFILE_CHILD",
        "EMFILE-CHILD-OK",
    );
}

/// Many durable logs of one budget appending at once: a file between its write and its
/// sync cannot be closed, and an `fdatasync` may hold a descriptor the budget already
/// closed, so the logs of a budget write [`WRITE_TURNS`] at a time. Without the turns
/// the 64 logs here held 69-80 descriptors under a budget of 8 (and 2 x 200 replicas on
/// the 2-core CI machine 48 past their two budgets in `manager/tests/scale.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_logs_appending_at_once_hold_the_budget_plus_one_descriptor_per_write_turn() {
    const MANY: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let budget = FileBudget::new(BUDGET);
    let mut logs = Vec::new();
    for i in 0..MANY {
        let options = OpenOptions::new()
            .durability(Durability::FsyncPerBatch)
            .file_budget(budget.clone());
        let name = LogName::parse(&format!("sync-{i}")).unwrap();
        let log = ManagedCore::open(dir.path().join(format!("sync-{i}")), name, options)
            .await
            .unwrap();
        logs.push(log);
    }
    let base = open_fds().saturating_sub(budget.open_files());
    let sampler = FdPeak::start(std::time::Duration::from_micros(200));
    let tasks: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(i, log)| {
            let log = log.clone();
            tokio::spawn(async move {
                for seq in 0..ROUNDS {
                    assert_eq!(log.append(&entry(i, seq)).await.unwrap(), seq);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let peak = sampler.stop();
    println!("SYNC_PEAK peak={peak} base={base}");
    // An append holds one file dirty or syncing at a time (`data`, then `oplog`), so
    // each turn adds at most one descriptor; the sampler's directory handle counts once.
    let bound = base + BUDGET + WRITE_TURNS + SLACK;
    assert!(
        peak <= bound,
        "{peak} descriptors while {MANY} logs synced (base {base}, budget {BUDGET}, {WRITE_TURNS} write turns, bound {bound})"
    );
    for (i, log) in logs.iter().enumerate() {
        assert_eq!(log.length(), ROUNDS);
        assert_eq!(log.get(ROUNDS - 1).await.unwrap(), entry(i, ROUNDS - 1));
        log.close().await.unwrap();
    }
}
