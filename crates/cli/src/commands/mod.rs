//! One module per command; [`run`] dispatches and [`Ctx`] is what they share.
//!
//! Owns: the dispatch, and [`Ctx`] (global options, output, the store directory).
//! Must not: hold logic shared by several commands beyond opening and closing the store
//! (that lives in `store`, `net` and `output`).
//! Used by: `main`.

mod append;
mod bootstrap;
mod clear;
mod delete;
mod follow;
mod init;
mod keys;
mod read;
mod seed;
mod share;
mod status;
mod tail;
mod verify;

use std::path::PathBuf;

use crate::cli::{Cli, Command, Global};
use crate::error::CliResult;
use crate::output::Output;
use crate::store::{Create, Store};

/// What every command gets.
#[derive(Debug)]
pub struct Ctx {
    /// Global options.
    pub global: Global,
    /// Where output goes.
    pub out: Output,
}

impl Ctx {
    /// The store directory this run uses.
    pub fn dir(&self) -> CliResult<PathBuf> {
        crate::store::store_dir(self.global.dir.as_deref())
    }

    /// Opens the store with default settings.
    pub async fn open(&self, create: Create) -> CliResult<Store> {
        Store::open(&self.dir()?, create, |_| {}).await
    }
}

/// Closes `store` after `body`'s result: the body's error wins, else the close's.
pub async fn finish<T>(store: Store, result: CliResult<T>) -> CliResult<T> {
    let closed = store.close().await;
    let value = result?;
    closed?;
    Ok(value)
}

/// Runs the parsed command line.
pub async fn run(cli: Cli, out: Output) -> CliResult<()> {
    let ctx = Ctx {
        global: cli.global,
        out,
    };
    match cli.command {
        Command::Init => init::run(&ctx).await,
        Command::Append { log, data, file } => {
            append::run(&ctx, &log, data.as_deref(), file.as_deref()).await
        }
        Command::Read { log, seq } => read::read(&ctx, &log, seq).await,
        Command::Range { log, start, end } => read::range(&ctx, &log, start, end).await,
        Command::Tail {
            log,
            lines,
            follow,
            net,
        } => tail::run(&ctx, &log, lines, follow, &net).await,
        Command::Status => status::status(&ctx).await,
        Command::Metrics => status::metrics(&ctx).await,
        Command::Keys { log } => keys::run(&ctx, &log).await,
        Command::Share { logs, net } => share::run(&ctx, &logs, &net).await,
        Command::Follow {
            key,
            name,
            sparse,
            keep,
            net,
        } => follow::run(&ctx, key, &name, sparse, keep, &net).await,
        Command::Bootstrap { addr, join } => bootstrap::run(&ctx, addr, join).await,
        Command::Verify { log } => verify::run(&ctx, &log).await,
        Command::Clear { log, start, end } => clear::run(&ctx, &log, start, end).await,
        Command::Delete { log } => delete::run(&ctx, &log).await,
        Command::Seed(args) => seed::run(&ctx, args).await,
    }
}
