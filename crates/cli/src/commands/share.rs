//! `share <log>...`: serve logs to peers (announced on the DHT and/or on `--listen`)
//! until Ctrl-C, printing each log's key, the listen address and peers as they come.
//!
//! Owns: the command's output. Must not: create logs (sharing a name that does not
//! exist is `STORAGE_INACCESSIBLE`).
//! Used by: `commands::run`.

use nova_hypercore_manager::{HypercoreManager, ManagerEvent};
use serde_json::json;

use super::{Ctx, finish};
use crate::cli::{NetArgs, hex};
use crate::error::CliResult;
use crate::net::{Network, bootstrap_list};
use crate::output::Output;
use crate::shutdown::stop_signal;
use crate::store::Create;

/// Runs `share`.
pub async fn run(ctx: &Ctx, logs: &[String], net: &NetArgs) -> CliResult<()> {
    let store = ctx
        .open_tuned(Create::No, |c| {
            c.max_connections = net.max_peers.max(1);
        })
        .await?;
    let result: CliResult<()> = async {
        for name in logs {
            let log = store.log(name).await?;
            store.manager.enable_replication(name).await?;
            let key = hex(&log.public_key());
            ctx.out.line(
                format!("sharing {name} {key}"),
                json!({ "event": "sharing", "log": name, "publicKey": key, "length": log.current_length().await? }),
            );
        }
        let bootstrap = bootstrap_list(&ctx.global.bootstrap, &store.dir).await?;
        let _network = Network::start(&store.manager, net, bootstrap, true, ctx.out).await?;
        tokio::select! {
            () = show_peers(&store.manager, ctx.out) => {}
            () = stop_signal() => {}
        }
        tracing::info!("stopping: closing the store");
        Ok(())
    }
    .await;
    finish(store, result).await
}

/// Prints peers connecting and leaving, until the manager stops sending events.
pub async fn show_peers(manager: &HypercoreManager, out: Output) {
    let mut events = manager.subscribe();
    loop {
        match events.recv().await {
            Ok(ManagerEvent::PeerConnect {
                log_name, peer_id, ..
            }) => out.line(
                format!("peer {} connected ({log_name})", short(&peer_id)),
                json!({ "event": "peer-connect", "log": log_name.as_str(), "peer": peer_id }),
            ),
            Ok(ManagerEvent::PeerDisconnect {
                log_name, peer_id, ..
            }) => out.line(
                format!("peer {} left ({log_name})", short(&peer_id)),
                json!({ "event": "peer-disconnect", "log": log_name.as_str(), "peer": peer_id }),
            ),
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn short(peer: &str) -> &str {
    peer.get(..12).unwrap_or(peer)
}
