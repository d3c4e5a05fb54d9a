//! `tail <log> [-n N] [--follow]`: the last entries, then (with `--follow`) new ones as
//! the log grows until Ctrl-C. A replica replicates meanwhile (`--connect`, `--listen`,
//! the DHT); our own log can only grow from this process, which does not append, so
//! `--follow` on it waits for Ctrl-C.
//!
//! Owns: the follow loop. Must not: append.
//! Used by: `commands::run`.

use nova_hypercore_manager::{GetOptions, ManagedLog};

use super::{Ctx, finish};
use crate::cli::NetArgs;
use crate::error::{CliError, CliResult};
use crate::net::{Network, bootstrap_list};
use crate::output::Output;
use crate::shutdown::stop_signal;
use crate::store::Create;

/// Runs `tail`.
pub async fn run(ctx: &Ctx, name: &str, lines: u64, follow: bool, net: &NetArgs) -> CliResult<()> {
    let store = ctx.open(Create::No).await?;
    let result: CliResult<()> = async {
        let log = store.log(name).await?;
        let length = log.current_length().await?;
        let mut next = length.saturating_sub(lines);
        print_until(&log, ctx.out, &mut next, length).await?;
        if !follow {
            return Ok(());
        }
        let _network = if log.is_writable() {
            None
        } else {
            store.manager.enable_replication(name).await?;
            let bootstrap = bootstrap_list(&ctx.global.bootstrap, &store.dir).await?;
            Some(Network::start(&store.manager, net, bootstrap, true, ctx.out).await?)
        };
        tokio::select! {
            r = follow_log(&log, ctx.out, next) => r,
            () = stop_signal() => Ok(()),
        }
    }
    .await;
    finish(store, result).await
}

/// Prints entries as the log grows, from `next` on.
async fn follow_log(log: &ManagedLog, out: Output, mut next: u64) -> CliResult<()> {
    let mut progress = log.watch_progress().await?;
    loop {
        let now = *progress.borrow_and_update();
        // A sparse replica holds little contiguously: read up to the signed length
        // (each read asks peers for its block).
        let upto = if log.is_sparse() {
            now.length
        } else {
            now.contiguous_length
        };
        print_until(log, out, &mut next, upto).await?;
        if progress.changed().await.is_err() {
            return Err(CliError::Store(
                nova_hypercore_serialization::HypercoreError::Closed {
                    log: log.name().to_string(),
                },
            ));
        }
    }
}

async fn print_until(log: &ManagedLog, out: Output, next: &mut u64, upto: u64) -> CliResult<()> {
    while *next < upto {
        let bytes = log.get_with(*next, GetOptions::default()).await?;
        out.entry(log.name().as_str(), *next, &bytes);
        *next += 1;
    }
    Ok(())
}
