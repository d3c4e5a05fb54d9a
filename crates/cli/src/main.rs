//! `nova-hypercore`: the command line for a nova-hypercore store (issue 25): append,
//! read, verify, share and follow signed append-only logs, host a DHT bootstrap node,
//! and run an always-on seeder. Reference with examples: docs/cli.md.
//!
//! Owns: parsing (`cli`), one module per command (`commands/`), the exit-code table
//! (`error`), output shapes (`output`), the store lock and replica list (`store`),
//! bootstrap list and network start (`net`), signals (`shutdown`).
//! Must not: hold log, key or replication logic (that is `nova-hypercore-manager`'s);
//! panic or print a backtrace on bad input, I/O or network failures.
//! Used by: people and scripts; nothing depends on this crate.

mod cli;
mod commands;
mod error;
mod net;
mod output;
mod shutdown;
mod store;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::output::Output;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version print to stdout and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(error::EXIT_USAGE));
        }
    };
    init_tracing(&cli);
    let out = Output::new(cli.global.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error::CliError::Store(nova_hypercore_serialization::HypercoreError::Io {
                log: "store".into(),
                operation: "starting the async runtime".into(),
                source: e,
            })
            .print(out.json);
            return ExitCode::from(18);
        }
    };
    let result = runtime.block_on(commands::run(cli, out));
    // Sessions still winding down must not hold the exit: everything acknowledged was
    // flushed by the command's `close()`.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.print(out.json);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs (tracing) to stderr: `RUST_LOG` if set, else warnings, or info for the
/// long-running commands; no colour when stderr is not a terminal (journald, files).
/// The store's per-operation records (`nova_hypercore_observability`) stay out of a
/// one-shot command's stderr: its error is printed once, by `CliError::print`.
fn init_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = if cli.command.is_long_running() {
        "info,nova_hypercore_observability=warn"
    } else {
        "warn,nova_hypercore_observability=off"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let tty = std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(tty)
        .with_target(false)
        .try_init();
}
