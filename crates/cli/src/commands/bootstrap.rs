//! `bootstrap [ADDR]`: host a DHT bootstrap node (a new DHT, or `--join` others) for a
//! LAN or a test, until Ctrl-C. Prints the address peers put in `--bootstrap`.
//!
//! Owns: the command's output. Must not: open a store (it has none).
//! Used by: `commands::run`.

use std::net::SocketAddr;

use nova_hypercore_manager::BootstrapNode;
use serde_json::json;

use super::Ctx;
use crate::error::CliResult;
use crate::shutdown::stop_signal;

/// Runs `bootstrap`.
pub async fn run(ctx: &Ctx, addr: SocketAddr, join: Vec<SocketAddr>) -> CliResult<()> {
    let node = BootstrapNode::start_with(addr, join).await?;
    let bound = node.addr();
    ctx.out.line(
        format!("bootstrap node on {bound}"),
        json!({ "event": "bootstrap", "addr": bound.to_string() }),
    );
    if bound.ip().is_unspecified() {
        tracing::info!(
            "bound to every interface: peers use this machine's address with port {}",
            bound.port()
        );
    }
    stop_signal().await;
    node.stop().await;
    Ok(())
}
