//! The CLI's error type and the exit-code table (docs/cli.md, "Exit codes").
//!
//! Owns: [`CliError`], which exit code each error gives, and how an error is printed
//! (code, message, then its context: log, seq, path; JSON with `--json`).
//! Must not: panic or print a backtrace; decide anything about the store.
//! Used by: every command module and `main`.

use std::io::Write;
use std::path::PathBuf;

use nova_hypercore_serialization::{ErrorCode, HypercoreError};
use serde::Serialize;

/// Exit code of a usage error (bad arguments, a malformed key, a bad config file): the
/// same as clap's own.
pub const EXIT_USAGE: u8 = 2;
/// Exit code after Ctrl-C stopped a command that had not finished (`follow`, `append -`).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit code of each of the nine error codes (docs/cli.md's table).
pub fn exit_code_of(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::StorageInaccessible => 10,
        ErrorCode::OutOfRange => 11,
        ErrorCode::PayloadTooLarge => 12,
        ErrorCode::SignatureInvalid => 13,
        ErrorCode::ReplicationFailed => 14,
        ErrorCode::DeserializationFailed => 15,
        ErrorCode::Unauthorized => 16,
        ErrorCode::StorageCorrupted => 17,
        ErrorCode::IoError => 18,
    }
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store (or the network under it) refused: carries one of the nine codes.
    #[error(transparent)]
    Store(#[from] HypercoreError),
    /// Arguments that parse but make no sense (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A file the CLI itself owns (config, replica list, seeds) is malformed.
    #[error("{path} is malformed: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Ctrl-C before the command finished (exit 130); the store was closed cleanly.
    #[error("interrupted")]
    Interrupted,
}

/// Shorthand for the CLI's results.
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// The spec's error code, when the error has one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CliError::Store(e) => Some(e.code()),
            CliError::BadFile { .. } => Some(ErrorCode::StorageCorrupted),
            CliError::Usage(_) | CliError::Interrupted => None,
        }
    }

    /// The process exit code (docs/cli.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Interrupted => EXIT_INTERRUPTED,
            other => other.code().map_or(1, exit_code_of),
        }
    }

    /// The path the error is about, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            CliError::Store(HypercoreError::StorageInaccessible { path, .. })
            | CliError::Store(HypercoreError::StorageCorrupted { path, .. })
            | CliError::BadFile { path, .. } => Some(path),
            _ => None,
        }
    }

    /// A storage error at `path` (for the CLI's own file work).
    pub fn storage(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CliError::Store(HypercoreError::StorageInaccessible {
            path: path.into(),
            source,
        })
    }

    /// Prints the error to stderr: `error[CODE]: message` and one line per piece of
    /// context, or one JSON object with `json`.
    pub fn print(&self, json: bool) {
        let log = match self {
            CliError::Store(e) => e.log_name().map(str::to_owned),
            _ => None,
        };
        let seq = match self {
            CliError::Store(e) => e.seq(),
            _ => None,
        };
        let code = self.code().map_or(
            match self {
                CliError::Interrupted => "INTERRUPTED",
                _ => "USAGE",
            },
            ErrorCode::as_str,
        );
        let mut err = anstream::stderr().lock();
        if json {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Shown<'a> {
                code: &'a str,
                message: String,
                exit_code: u8,
                #[serde(skip_serializing_if = "Option::is_none")]
                log_name: Option<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                seq: Option<u64>,
                #[serde(skip_serializing_if = "Option::is_none")]
                path: Option<String>,
            }
            let shown = Shown {
                code,
                message: self.to_string(),
                exit_code: self.exit_code(),
                log_name: log,
                seq,
                path: self.path().map(|p| p.display().to_string()),
            };
            let line = serde_json::to_string(&serde_json::json!({ "error": shown }))
                .unwrap_or_else(|_| format!("{{\"error\":{{\"code\":\"{code}\"}}}}"));
            let _ = writeln!(err, "{line}");
            return;
        }
        // anstream drops the colour when stderr is not a terminal (or NO_COLOR is set).
        let _ = writeln!(err, "\x1b[1;31merror[{code}]\x1b[0m: {self}");
        if let Some(log) = log {
            let _ = writeln!(err, "  log:  {log}");
        }
        if let Some(seq) = seq {
            let _ = writeln!(err, "  seq:  {seq}");
        }
        if let Some(path) = self.path() {
            let _ = writeln!(err, "  path: {}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_exit_code() {
        let mut codes: Vec<u8> = ErrorCode::ALL.iter().map(|c| exit_code_of(*c)).collect();
        codes.push(EXIT_USAGE);
        codes.push(EXIT_INTERRUPTED);
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n);
    }
}
