//! `keys <log>`: the log's public key (what followers pass to `follow`) and its
//! discovery key (the DHT topic), in hex.
//!
//! Owns: the output. Must not: print secret keys.
//! Used by: `commands::run`.

use serde_json::json;

use super::{Ctx, finish};
use crate::cli::hex;
use crate::error::CliResult;
use crate::store::Create;

/// Runs `keys`.
pub async fn run(ctx: &Ctx, log: &str) -> CliResult<()> {
    let store = ctx.open(Create::No).await?;
    let result: CliResult<()> = async {
        let log = store.log(log).await?;
        let (public, discovery) = (hex(&log.public_key()), hex(&log.discovery_key()));
        ctx.out.line(
            format!("public key     {public}\ndiscovery key  {discovery}"),
            json!({ "log": log.name().as_str(), "publicKey": public, "discoveryKey": discovery }),
        );
        Ok(())
    }
    .await;
    finish(store, result).await
}
