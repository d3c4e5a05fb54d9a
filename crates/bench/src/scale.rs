//! `idle_logs` (no JS anchor: informational): what an open, idle, replication-enabled
//! log costs a store.
//!
//! A `HypercoreManager` with replication on opens [`LOGS`] logs of [`ENTRIES`] entries
//! each, with no peer connected: `rss_per_idle_log_bytes` is the growth of this process's
//! resident set (`VmRSS`) divided by [`LOGS`], `fds_per_idle_log` the growth of
//! `/proc/self/fd` divided by [`LOGS`]. Enabled logs stay open above `max_open_logs`,
//! but their files are opened on demand under the store's `max_open_files` budget, so
//! the descriptors stop growing at the budget (`fds_idle`, the growth in total, is at
//! most `max_open_files`). Then a second manager in the same process opens a replica
//! of every log, connects over loopback TCP and syncs them all:
//! `rss_per_synced_log_bytes` is the growth from the start divided by the 2 x [`LOGS`]
//! logs now open with a live channel each (`fds_synced`: both budgets and the
//! sockets). ops/s = logs opened and enabled per second.
//!
//! `many_logs` (against JS corestore 6 / hypercore 10, `js/bench/bench.mjs`): a
//! `HypercoreManager` with its default caps (`max_open_logs`, `max_open_files`) takes
//! [`LOGS`] `get_log` calls with one append each (`create_seconds`), is closed, and a new
//! manager on the same directory opens all of them again and checks their lengths
//! (`reopen_seconds`); peak RSS is the process's. JS does the same with one corestore
//! (which keeps every core and its files open).

use std::path::Path;
use std::time::Instant;

use nova_hypercore_managed_core::Durability;
use nova_hypercore_manager::HypercoreManager;
use serde_json::{Value, json};

use crate::{BoxError, result};

/// Logs per store.
const LOGS: usize = 1_000;
/// Entries per log.
const ENTRIES: u64 = 3;

fn open_fds() -> Result<usize, BoxError> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

fn rss_bytes() -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

async fn manager(dir: &Path, durability: Durability) -> Result<HypercoreManager, BoxError> {
    crate::open_manager(dir, durability, true).await
}

fn name(i: usize) -> String {
    format!("idle-{i:04}")
}

pub(crate) async fn idle_logs(dir: &Path, durability: Durability) -> Result<Value, BoxError> {
    let a = manager(&dir.join("a"), durability).await?;
    let b = manager(&dir.join("b"), durability).await?;
    let max_open_files = a.config().max_open_files;
    let (fds0, rss0) = (open_fds()?, rss_bytes()?);
    let t0 = Instant::now();
    let mut keys = Vec::with_capacity(LOGS);
    for i in 0..LOGS {
        let payloads: Vec<Vec<u8>> = (0..ENTRIES)
            .map(|e| format!("log {i} entry {e}").into_bytes())
            .collect();
        a.append_batch(&name(i), &payloads).await?;
        keys.push(a.get_log(&name(i)).await?.public_key());
    }
    let secs = t0.elapsed().as_secs_f64();
    let (fds1, rss1) = (open_fds()?, rss_bytes()?);

    let mut replicas = Vec::with_capacity(LOGS);
    for (i, key) in keys.iter().enumerate() {
        replicas.push(b.open_replica(&name(i), *key).await?);
    }
    let listener = a.listen("127.0.0.1:0".parse()?).await?;
    let connector = b.connect(listener.local_addr());
    tokio::time::timeout(std::time::Duration::from_secs(300), async {
        for replica in &replicas {
            let mut progress = replica.watch_progress().await?;
            while progress.borrow_and_update().contiguous_length < ENTRIES {
                progress.changed().await?;
            }
        }
        Ok::<(), BoxError>(())
    })
    .await
    .map_err(|_| "replicas did not complete within 300 s")??;
    let last = replicas.last().ok_or("no logs")?;
    if last.get(ENTRIES - 1).await? != format!("log {} entry {}", LOGS - 1, ENTRIES - 1).as_bytes()
    {
        return Err("the last replicated entry differs".into());
    }
    let (fds2, rss2) = (open_fds()?, rss_bytes()?);
    drop(connector);
    drop(listener);
    a.close().await?;
    b.close().await?;

    let per = |delta: u64, logs: usize| delta as f64 / logs as f64;
    Ok(result(
        "idle_logs",
        LOGS,
        0,
        secs,
        json!({
            "logs": LOGS,
            "entries_per_log": ENTRIES,
            "rss_per_idle_log_bytes": per(rss1.saturating_sub(rss0), LOGS),
            "fds_per_idle_log": per(fds1.saturating_sub(fds0) as u64, LOGS),
            "rss_per_synced_log_bytes": per(rss2.saturating_sub(rss0), 2 * LOGS),
            "fds_per_synced_log": per(fds2.saturating_sub(fds0) as u64, 2 * LOGS),
            "max_open_files": max_open_files,
            "fds_idle": fds1.saturating_sub(fds0),
            "fds_synced": fds2.saturating_sub(fds0),
        }),
    ))
}

fn many_name(i: usize) -> String {
    format!("log-{i:04}")
}

pub(crate) async fn many_logs(dir: &Path, durability: Durability) -> Result<Value, BoxError> {
    let rss0 = rss_bytes()?;
    let t0 = Instant::now();
    let a = crate::open_manager(dir, durability, false).await?;
    for i in 0..LOGS {
        let log = a.get_log(&many_name(i)).await?;
        log.append(format!("log {i} entry 0").as_bytes()).await?;
    }
    let create = t0.elapsed().as_secs_f64();
    let (rss_created, fds_created) = (rss_bytes()?, open_fds()?);
    a.close().await?;
    drop(a);
    let t1 = Instant::now();
    let b = crate::open_manager(dir, durability, false).await?;
    let mut logs = Vec::with_capacity(LOGS);
    for i in 0..LOGS {
        let log = b.get_log(&many_name(i)).await?;
        if log.current_length().await? != 1 {
            return Err(format!("{}: length {} after reopen", many_name(i), log.length()).into());
        }
        logs.push(log);
    }
    let reopen = t1.elapsed().as_secs_f64();
    let last = logs.last().ok_or("no logs")?.get(0).await?;
    if last != format!("log {} entry 0", LOGS - 1).as_bytes() {
        return Err("the last log's entry differs after reopen".into());
    }
    let rss_reopened = rss_bytes()?;
    let max_open_logs = b.config().max_open_logs;
    let max_open_files = b.config().max_open_files;
    drop(logs);
    b.close().await?;
    let du = crate::disk::dir_bytes(dir)?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    Ok(result(
        "many_logs",
        LOGS,
        0,
        create + reopen,
        json!({
            "logs": LOGS,
            "create_seconds": create,
            "reopen_seconds": reopen,
            "rss_base_mib": mib(rss0),
            "rss_after_create_mib": mib(rss_created),
            "rss_after_reopen_mib": mib(rss_reopened),
            "fds_after_create": fds_created,
            "max_open_logs": max_open_logs,
            "max_open_files": max_open_files,
            "files": du.files,
            "alloc_bytes": du.allocated,
        }),
    ))
}
