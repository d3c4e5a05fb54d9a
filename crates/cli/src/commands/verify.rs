//! `verify <log>`: every stored block checked against the log's signed merkle tree;
//! reports how many were checked, missing (not stored: cleared, or a sparse replica)
//! and bad, and fails with `SIGNATURE_INVALID` naming the first bad seq.
//!
//! Owns: the walk and its progress bar. Must not: repair anything.
//! Used by: `commands::run`.

use nova_hypercore_serialization::HypercoreError;
use serde_json::json;

use super::{Ctx, finish};
use crate::error::CliResult;
use crate::output::count;
use crate::store::Create;

/// Runs `verify`.
pub async fn run(ctx: &Ctx, name: &str) -> CliResult<()> {
    let store = ctx.open(Create::No).await?;
    let result: CliResult<()> = async {
        let log = store.log(name).await?;
        let length = log.current_length().await?;
        let bar = ctx.out.progress(length, "verifying");
        let (mut checked, mut missing, mut bad, mut first_bad) = (0u64, 0u64, 0u64, None);
        for seq in 0..length {
            if log.has_range(seq..seq + 1).await? == 0 {
                missing += 1;
            } else {
                checked += 1;
                if !log.verify_signature(seq).await? {
                    bad += 1;
                    first_bad.get_or_insert(seq);
                }
            }
            bar.set_position(seq + 1);
        }
        bar.finish_and_clear();
        let human = match first_bad {
            None => format!(
                "{name}: {} checked, all verify ({missing} not stored here)",
                count(checked, "block", "blocks")
            ),
            Some(seq) => format!(
                "{name}: {} checked, {bad} do not verify, the first at seq {seq} ({missing} not stored here)",
                count(checked, "block", "blocks")
            ),
        };
        ctx.out.line(
            human,
            json!({
                "log": name,
                "length": length,
                "checked": checked,
                "missing": missing,
                "bad": bad,
                "firstBad": first_bad,
            }),
        );
        match first_bad {
            None => Ok(()),
            Some(seq) => Err(HypercoreError::SignatureInvalid {
                log: name.to_owned(),
                seq,
                reason: format!("{bad} of {checked} stored blocks do not verify against the signed tree"),
            }
            .into()),
        }
    }
    .await;
    finish(store, result).await
}
