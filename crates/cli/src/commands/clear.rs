//! `clear <log> <start> <end>`: drop blocks from local storage (the log keeps its
//! length and stays verifiable; peers can send the blocks again).
//!
//! Owns: the output. Must not: delete the log (that is `delete`).
//! Used by: `commands::run`.

use serde_json::json;

use super::{Ctx, finish};
use crate::error::CliResult;
use crate::output::bytes;
use crate::store::Create;

/// Runs `clear`.
pub async fn run(ctx: &Ctx, log: &str, start: u64, end: u64) -> CliResult<()> {
    let store = ctx.open(Create::No).await?;
    let result: CliResult<()> = async {
        let log = store.log(log).await?;
        let cleared = log.clear(start..end).await?;
        let note = if cleared.punch_unsupported {
            " (this filesystem cannot punch holes: the bytes stay allocated)"
        } else {
            ""
        };
        ctx.out.line(
            format!(
                "cleared {} blocks of {} ({} given back){note}",
                cleared.blocks,
                log.name(),
                bytes(cleared.bytes_punched)
            ),
            json!({
                "log": log.name().as_str(),
                "start": start,
                "end": end,
                "blocks": cleared.blocks,
                "bytesPunched": cleared.bytes_punched,
                "punchUnsupported": cleared.punch_unsupported,
            }),
        );
        Ok(())
    }
    .await;
    finish(store, result).await
}
