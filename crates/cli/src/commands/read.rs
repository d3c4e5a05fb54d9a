//! `read <log> <seq>` and `range <log> <start> <end>`: entries, verified against the
//! signed tree as they are read.
//!
//! Owns: printing entries in bounded chunks. Must not: create logs (unknown names are
//! `STORAGE_INACCESSIBLE`).
//! Used by: `commands::run`.

use super::{Ctx, finish};
use crate::error::CliResult;
use crate::store::Create;

/// Entries read per call while printing a range (bounds memory).
pub const CHUNK: u64 = 256;

/// Runs `read`.
pub async fn read(ctx: &Ctx, log: &str, seq: u64) -> CliResult<()> {
    let store = ctx.open(Create::No).await?;
    let result: CliResult<()> = async {
        let log = store.log(log).await?;
        let bytes = log.get(seq).await?;
        ctx.out.entry(log.name().as_str(), seq, &bytes);
        Ok(())
    }
    .await;
    finish(store, result).await
}

/// Runs `range`.
pub async fn range(ctx: &Ctx, log: &str, start: u64, end: u64) -> CliResult<()> {
    let store = ctx.open(Create::No).await?;
    let result: CliResult<()> = async {
        let log = store.log(log).await?;
        if start > end {
            // Let the store word the error (OUT_OF_RANGE with the length).
            log.get_range(start, end).await?;
        }
        let mut at = start;
        while at < end {
            let to = end.min(at.saturating_add(CHUNK));
            for (i, bytes) in log.get_range(at, to).await?.iter().enumerate() {
                ctx.out.entry(log.name().as_str(), at + i as u64, bytes);
            }
            at = to;
        }
        Ok(())
    }
    .await;
    finish(store, result).await
}
