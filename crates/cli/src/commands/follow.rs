//! `follow <key> --as <name> [--sparse] [--keep]`: open a replica of a peer's log by its
//! public key, find peers (`--connect`, the DHT), show progress (blocks/total, MB/s,
//! ETA) and exit once complete (or keep replicating and serving with `--keep`).
//!
//! Complete means: a peer told us its length, and we hold every block up to it (a
//! sparse replica: we know the length; it downloads blocks only when they are read).
//!
//! Owns: the completion rule and the progress display. Must not: trust peers: every
//! block is verified by the manager before it is stored.
//! Used by: `commands::run`.

use std::time::{Duration, Instant};

use nova_hypercore_manager::DownloadProgress;
use serde_json::json;

use super::share::show_peers;
use super::{Ctx, finish};
use crate::cli::{NetArgs, hex};
use crate::error::{CliError, CliResult};
use crate::net::{Network, bootstrap_list};
use crate::output::{Output, rate};
use crate::shutdown::stop_signal;
use crate::store::{Create, Store};

/// How often progress is redrawn (and emitted as JSON, at most).
const TICK: Duration = Duration::from_millis(250);
/// JSON progress lines at most this often.
const JSON_EVERY: Duration = Duration::from_secs(1);

/// Runs `follow`.
pub async fn run(
    ctx: &Ctx,
    key: [u8; 32],
    name: &str,
    sparse: bool,
    keep: bool,
    net: &NetArgs,
) -> CliResult<()> {
    let mut store = ctx.open(Create::Yes).await?;
    let result: CliResult<()> = async {
        store.open_replica(name, key, sparse).await?;
        store.manager.enable_replication(name).await?;
        ctx.out.line(
            format!("following {} as {name}", hex(&key)),
            json!({ "event": "following", "log": name, "publicKey": hex(&key), "sparse": sparse }),
        );
        let bootstrap = bootstrap_list(&ctx.global.bootstrap, &store.dir).await?;
        let _network = Network::start(&store.manager, net, bootstrap, true, ctx.out).await?;
        let done = tokio::select! {
            r = wait_complete(&store, name, sparse, ctx.out) => r?,
            () = stop_signal() => return Err(CliError::Interrupted),
        };
        ctx.out.line(
            format!("{name}: complete, {}/{} blocks", done.have, done.total),
            json!({ "event": "complete", "log": name, "have": done.have, "total": done.total }),
        );
        if keep {
            tokio::select! {
                () = show_peers(&store.manager, ctx.out) => {}
                () = stop_signal() => {}
            }
        }
        Ok(())
    }
    .await;
    finish(store, result).await
}

/// Shows progress until the replica is complete; returns the last progress.
async fn wait_complete(
    store: &Store,
    name: &str,
    sparse: bool,
    out: Output,
) -> CliResult<DownloadProgress> {
    let manager = &store.manager;
    let log = store.log(name).await?;
    let mut watch = log.watch_progress().await?;
    let bar = out.progress(0, name);
    let mut last_json: Option<(Instant, u64, u64)> = None;
    loop {
        let progress = manager.download_progress(name).await?;
        let status = manager.replication_status(name).await?;
        let peer_length = status.remote_lengths.values().copied().max();
        bar.set_length(progress.total);
        bar.set_position(progress.have);
        bar.set_message(rate(progress.bytes_per_second));
        let due = last_json.is_none_or(|(at, have, total)| {
            at.elapsed() >= JSON_EVERY && (have, total) != (progress.have, progress.total)
        });
        if due {
            out.json_only(json!({
                "event": "progress",
                "log": name,
                "have": progress.have,
                "total": progress.total,
                "bytesPerSecond": progress.bytes_per_second,
            }));
            last_json = Some((Instant::now(), progress.have, progress.total));
        }
        if let Some(peer_length) = peer_length {
            let known = progress.total >= peer_length;
            if known && (sparse || progress.have >= progress.total) {
                bar.finish_and_clear();
                return Ok(progress);
            }
        }
        // Redraw on a tick too: the rate and the peers' lengths change without a
        // progress change.
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    return Err(nova_hypercore_serialization::HypercoreError::Closed { log: name.to_owned() }.into());
                }
            }
            () = tokio::time::sleep(TICK) => {}
        }
    }
}
