//! What a command prints: human lines or one JSON value per line on stdout, entries,
//! and progress bars on stderr (only when stderr is a terminal and not `--json`).
//!
//! Owns: the output shapes (JSON field names are camelCase, as the spec's), progress
//! bar styles.
//! Must not: decide what to print (the commands do) or print errors (`error.rs`).
//! Used by: every command module.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use base64::Engine;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

/// Where and how a command prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`.
    pub json: bool,
    /// Whether stderr is a terminal (progress bars only then).
    stderr_tty: bool,
}

impl Output {
    /// Output for this process's stdout and stderr.
    pub fn new(json: bool) -> Self {
        Output {
            json,
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }

    /// Prints `human` in human mode, `value` as one JSON line with `--json`.
    pub fn line(&self, human: impl std::fmt::Display, value: Value) {
        let mut out = anstream::stdout().lock();
        let _ = if self.json {
            writeln!(out, "{value}")
        } else {
            writeln!(out, "{human}")
        };
        let _ = out.flush();
    }

    /// Prints only in JSON mode (a stream event a human does not need).
    pub fn json_only(&self, value: Value) {
        if self.json {
            self.line("", value);
        }
    }

    /// Prints one entry: its bytes and a newline, or `{"log","seq","data"}` (UTF-8) /
    /// `{"log","seq","base64"}` with `--json`.
    pub fn entry(&self, log: &str, seq: u64, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = if self.json {
            let value = match std::str::from_utf8(bytes) {
                Ok(text) => json!({ "log": log, "seq": seq, "data": text }),
                Err(_) => json!({
                    "log": log,
                    "seq": seq,
                    "base64": base64::engine::general_purpose::STANDARD.encode(bytes),
                }),
            };
            writeln!(out, "{value}")
        } else {
            out.write_all(bytes).and_then(|()| out.write_all(b"\n"))
        };
        let _ = out.flush();
    }

    /// A progress bar of `total` units on stderr, hidden unless stderr is a terminal
    /// and the output is for humans.
    pub fn progress(&self, total: u64, what: &str) -> ProgressBar {
        if self.json || !self.stderr_tty {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template =
            format!("{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} blocks {{msg}} ETA {{eta}}");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// `n` bytes per second as `1.23 MB/s`.
pub fn rate(bytes_per_second: Option<f64>) -> String {
    match bytes_per_second {
        Some(r) => format!("{:.2} MB/s", r / 1_000_000.0),
        None => "- MB/s".to_owned(),
    }
}

/// `n` and the noun in the right number (`1 block`, `3 blocks`).
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `n` bytes for humans (`12.3 KiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(rate(Some(2_500_000.0)), "2.50 MB/s");
        assert_eq!(rate(None), "- MB/s");
        assert_eq!(count(1, "block", "blocks"), "1 block");
        assert_eq!(count(2, "block", "blocks"), "2 blocks");
    }
}
