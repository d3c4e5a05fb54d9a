//! `status` (the store's logs, lengths, disk usage, bootstrap list) and `metrics` (this
//! process's aggregate counters after opening every log).
//!
//! Owns: the per-log summary [`LogSummary`] (also used by `seed`'s status).
//! Must not: change anything in the store.
//! Used by: `commands::run`, `seed`.

use nova_hypercore_manager::ManagedLog;
use serde::Serialize;
use serde_json::json;

use super::{Ctx, finish};
use crate::cli::hex;
use crate::error::CliResult;
use crate::output::{bytes, count};
use crate::store::{Create, Store};

/// One log as `status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogSummary {
    /// Its name.
    pub name: String,
    /// `own` (writable here) or `replica`.
    pub kind: &'static str,
    /// Whether it is a sparse replica.
    pub sparse: bool,
    /// Blocks the signed log has (as far as we know).
    pub length: u64,
    /// Blocks `0..have` are stored here.
    pub have: u64,
    /// Payload bytes of the log.
    pub byte_length: u64,
    /// Public key, hex.
    pub public_key: String,
}

impl LogSummary {
    /// The summary of `log`.
    pub async fn of(log: &ManagedLog) -> CliResult<LogSummary> {
        let progress = *log.watch_progress().await?.borrow();
        Ok(LogSummary {
            name: log.name().to_string(),
            kind: if log.is_writable() { "own" } else { "replica" },
            sparse: log.is_sparse(),
            length: progress.length,
            have: progress.contiguous_length,
            byte_length: log.byte_length(),
            public_key: hex(&log.public_key()),
        })
    }
}

/// Opens every log of the store and summarizes it.
pub async fn summaries(store: &Store) -> CliResult<Vec<LogSummary>> {
    let mut out = Vec::new();
    for name in store.log_names().await? {
        out.push(LogSummary::of(&store.log(&name).await?).await?);
    }
    Ok(out)
}

/// Runs `status`.
pub async fn status(ctx: &Ctx) -> CliResult<()> {
    let store = ctx.open(Create::No).await?;
    let result: CliResult<()> = async {
        let logs = summaries(&store).await?;
        let status = store.manager.status().await;
        let bootstrap = crate::net::bootstrap_list(&ctx.global.bootstrap, &store.dir).await?;
        let mut human = format!("store  {}\nlogs   {}\n", store.dir.display(), logs.len());
        for log in &logs {
            let held = if log.have == log.length {
                count(log.length, "entry", "entries")
            } else {
                format!("{}/{} entries", log.have, log.length)
            };
            let kind = if log.sparse {
                "sparse replica"
            } else {
                log.kind
            };
            human.push_str(&format!(
                "  {:<20} {:<15} {:<18} {}\n",
                log.name,
                kind,
                held,
                bytes(log.byte_length)
            ));
        }
        human.push_str(&format!(
            "disk   {}\n",
            status
                .disk_usage_bytes
                .map_or_else(|| "unknown".to_owned(), bytes)
        ));
        if bootstrap.is_empty() {
            human.push_str("dht    off (no bootstrap nodes configured)");
        } else {
            let list: Vec<String> = bootstrap.iter().map(ToString::to_string).collect();
            human.push_str(&format!("dht    bootstrap {}", list.join(", ")));
        }
        ctx.out.line(
            human,
            json!({
                "dir": store.dir.display().to_string(),
                "logs": logs,
                "diskUsageBytes": status.disk_usage_bytes,
                "bootstrap": bootstrap.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        );
        Ok(())
    }
    .await;
    finish(store, result).await
}

/// Runs `metrics`.
pub async fn metrics(ctx: &Ctx) -> CliResult<()> {
    let store = ctx.open(Create::No).await?;
    let result: CliResult<()> = async {
        summaries(&store).await?;
        let m = store.manager.metrics();
        ctx.out.line(
            format!(
                "managed logs       {}\ntotal byte size    {}\ntotal appends      {}\ntotal reads        {}\nerrors             {}\nactive peers       {}\nreplicated bytes   {}",
                m.managed_logs,
                bytes(m.total_byte_size),
                m.total_appends,
                m.total_reads,
                m.error_count,
                m.active_peers,
                m.replication_bytes_transferred
            ),
            serde_json::to_value(&m).unwrap_or_default(),
        );
        Ok(())
    }
    .await;
    finish(store, result).await
}
