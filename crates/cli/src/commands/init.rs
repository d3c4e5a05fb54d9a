//! `init`: create the store (directory 0700, primary key) and say where it is.
//!
//! Owns: the command's output. Must not: create any log.
//! Used by: `commands::run`.

use serde_json::json;

use super::{Ctx, finish};
use crate::error::CliResult;
use crate::store::Create;

/// Runs `init`.
pub async fn run(ctx: &Ctx) -> CliResult<()> {
    let store = ctx.open(Create::Yes).await?;
    let dir = store.dir.display().to_string();
    let result = store.log_names().await.map(|names| {
        ctx.out.line(
            format!("store ready at {dir} ({} logs)", names.len()),
            json!({ "dir": dir, "logCount": names.len() }),
        );
    });
    finish(store, result).await
}
