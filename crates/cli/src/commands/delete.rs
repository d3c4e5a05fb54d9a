//! `delete <log>`: remove a log (its files, key, replication state). Our own log's name
//! can never be used again (a new log would fork the old one's history); a replica's
//! can.
//!
//! Owns: forgetting a deleted replica in `replicas.json`. Must not: delete anything
//! the manager does not.
//! Used by: `commands::run`.

use serde_json::json;

use super::{Ctx, finish};
use crate::error::CliResult;
use crate::store::Create;

/// Runs `delete`.
pub async fn run(ctx: &Ctx, name: &str) -> CliResult<()> {
    let mut store = ctx.open(Create::No).await?;
    let result: CliResult<()> = async {
        // Opens it first: a replica must be open to be deleted, an unknown name fails.
        let log = store.log(name).await?;
        let replica = !log.is_writable();
        let deleted = store.manager.delete_log(name).await?;
        if replica {
            store.forget_replica(name).await?;
        }
        ctx.out.line(
            format!("deleted {name}"),
            json!({ "log": name, "deleted": deleted }),
        );
        Ok(())
    }
    .await;
    finish(store, result).await
}
