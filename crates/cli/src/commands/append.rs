//! `append <log> [DATA | -] [--file PATH]`: one entry from the argument or a file, or
//! one entry per stdin line (batched: the lines already buffered go in one append).
//!
//! Owns: reading the input. Must not: append to replicas (the store refuses).
//! Used by: `commands::run`.

use std::ops::Range;
use std::path::Path;

use nova_hypercore_manager::ManagedLog;
use nova_hypercore_serialization::HypercoreError;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use super::{Ctx, finish};
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::shutdown::stop_signal;
use crate::store::Create;

/// Lines appended in one batch at most.
const MAX_BATCH: usize = 1024;

/// Runs `append`.
pub async fn run(ctx: &Ctx, log: &str, data: Option<&str>, file: Option<&Path>) -> CliResult<()> {
    let entry: Option<Vec<u8>> = match (data, file) {
        (Some("-"), None) => None,
        (Some(data), None) => Some(data.as_bytes().to_vec()),
        (None, Some(path)) => {
            Some(
                tokio::fs::read(path)
                    .await
                    .map_err(|source| HypercoreError::Io {
                        log: log.to_owned(),
                        operation: format!("reading {}", path.display()),
                        source,
                    })?,
            )
        }
        _ => {
            return Err(CliError::Usage(
                "append needs DATA, `-` (one entry per stdin line) or --file PATH".into(),
            ));
        }
    };
    let store = ctx.open(Create::Yes).await?;
    let result: CliResult<()> = async {
        let log = store.own_log(log).await?;
        match entry {
            Some(bytes) => {
                let seq = log.append(&bytes).await?;
                ctx.out.line(
                    format!("appended to {} at seq {seq}", log.name()),
                    json!({ "log": log.name().as_str(), "seq": seq }),
                );
                Ok(())
            }
            None => {
                tokio::select! {
                    r = from_stdin(&log, ctx.out) => r,
                    () = stop_signal() => Err(CliError::Interrupted),
                }
            }
        }
    }
    .await;
    finish(store, result).await
}

/// Appends every stdin line as one entry until end of input.
async fn from_stdin(log: &ManagedLog, out: Output) -> CliResult<()> {
    let mut input = tokio::io::BufReader::new(tokio::io::stdin());
    let mut batch: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = input
            .read_until(b'\n', &mut line)
            .await
            .map_err(|source| HypercoreError::Io {
                log: log.name().to_string(),
                operation: "reading stdin".into(),
                source,
            })?;
        if n > 0 {
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            batch.push(line);
        }
        // Append what is buffered now: a pipe goes in large batches, a person typing
        // sees each line acknowledged.
        if !batch.is_empty() && (n == 0 || input.buffer().is_empty() || batch.len() >= MAX_BATCH) {
            let seqs = log.append_batch(&batch).await?;
            report(out, log, seqs);
            batch.clear();
        }
        if n == 0 {
            return Ok(());
        }
    }
}

fn report(out: Output, log: &ManagedLog, seqs: Range<u64>) {
    let n = seqs.end - seqs.start;
    let human = if n == 1 {
        format!("appended to {} at seq {}", log.name(), seqs.start)
    } else {
        format!(
            "appended {n} entries to {} at seq {}..{}",
            log.name(),
            seqs.start,
            seqs.end
        )
    };
    out.line(
        human,
        json!({ "log": log.name().as_str(), "start": seqs.start, "end": seqs.end }),
    );
}
