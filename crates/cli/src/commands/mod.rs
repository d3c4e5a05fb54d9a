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
use nova_hypercore_manager::EncryptionKey;

use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::store::{Create, ENCRYPTION_KEY_ENV, Store};

/// What every command gets.
#[derive(Debug)]
pub struct Ctx {
    /// Global options.
    pub global: Global,
    /// Where output goes.
    pub out: Output,
    /// Whether the command's named logs take `--encryption-key`.
    keyed: bool,
}

impl Ctx {
    /// The store directory this run uses.
    pub fn dir(&self) -> CliResult<PathBuf> {
        crate::store::store_dir(self.global.dir.as_deref())
    }

    /// Opens the store with default settings (and the encryption key of the logs the
    /// command names, if one is given).
    pub async fn open(&self, create: Create) -> CliResult<Store> {
        self.open_tuned(create, |_| {}).await
    }

    /// [`open`](Self::open) with the manager's configuration adjusted by `tune`.
    pub async fn open_tuned(
        &self,
        create: Create,
        tune: impl FnOnce(&mut nova_hypercore_manager::ManagerConfig),
    ) -> CliResult<Store> {
        let key = self.encryption_key()?;
        let mut store = Store::open(&self.dir()?, create, tune).await?;
        store.set_encryption(key);
        Ok(store)
    }

    /// `--encryption-key`, else `$NOVA_HYPERCORE_ENCRYPTION_KEY`, for a command that
    /// names logs. A command that does not is refused the flag (a usage error) and
    /// ignores the variable.
    fn encryption_key(&self) -> CliResult<Option<EncryptionKey>> {
        let given = match (&self.global.encryption_key, self.keyed) {
            (Some(_), false) => {
                return Err(CliError::Usage(
                    "--encryption-key applies to commands that name logs (append, read, range, tail, keys, share, follow, verify, clear, delete); status, metrics and seed open every log as stored".into(),
                ));
            }
            (Some(hex), true) => Some(hex.clone()),
            (None, true) => match std::env::var(ENCRYPTION_KEY_ENV) {
                Ok(v) if !v.trim().is_empty() => Some(v),
                Ok(_) | Err(std::env::VarError::NotPresent) => None,
                // Never fall back to "no key" (plaintext) on a key that is set.
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(CliError::Usage(format!(
                        "{ENCRYPTION_KEY_ENV} is not text: it must be the key in hex digits"
                    )));
                }
            },
            (None, false) => None,
        };
        Ok(given.map(|hex| EncryptionKey::from_hex(&hex)).transpose()?)
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
    let waits_for_a_signal = cli.command.is_long_running()
        || matches!(
            &cli.command,
            Command::Follow { .. } | Command::Tail { follow: true, .. }
        )
        || matches!(&cli.command, Command::Append { data: Some(d), .. } if d == "-");
    if waits_for_a_signal {
        crate::shutdown::install();
    }
    let keyed = !matches!(
        cli.command,
        Command::Init
            | Command::Status
            | Command::Metrics
            | Command::Bootstrap { .. }
            | Command::Seed(_)
    );
    let ctx = Ctx {
        global: cli.global,
        out,
        keyed,
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
