//! `cargo xtask fuzz [TARGET] [--time S]`: the coverage-guided fuzz targets in `fuzz/`
//! (cargo-fuzz and libFuzzer), and their short smoke run in `cargo xtask test`.
//!
//! Owns: installing cargo-fuzz when it is missing, building the targets without a
//! sanitizer (`-s none`: the sanitizers need a nightly toolchain, libFuzzer's coverage
//! instrumentation does not), running each on its committed seeds (`fuzz/seeds/T`)
//! plus a working corpus, and a table of executions, coverage and findings. A target
//! that crashes fails the run and names the input libFuzzer saved
//! (`fuzz/artifacts/T/`). Does not: write into the seed corpus (new inputs go to the
//! working corpus `fuzz/corpus/T`, or a scratch one for the smoke run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::tally::{Outcome, in_ci};
use crate::{Result, cargo, root};

/// Every target in `fuzz/fuzz_targets/` (see `fuzz/src/lib.rs` for what each reads).
pub(crate) const TARGETS: &[&str] = &[
    "wire_message",
    "protomux_frames",
    "channel_handshake",
    "manifest",
    "multisig",
    "oplog",
    "core_open",
    "proof",
    "udx_packet",
    "udx_stream",
];

/// The cargo-fuzz release installed when it is missing (it builds on stable).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Seconds each target runs in `cargo xtask test`.
pub(crate) const SMOKE_SECS: u64 = 8;

/// `cargo xtask fuzz` options.
#[derive(clap::Args, Debug)]
pub(crate) struct FuzzArgs {
    /// One target (default: every target in turn).
    target: Option<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    time: u64,
}

/// `cargo xtask fuzz`: every target (or one) for `--time` seconds on the seeds and the
/// kept corpus `fuzz/corpus/T`.
pub(crate) fn run(args: &FuzzArgs) -> Result {
    let targets: Vec<&str> = match &args.target {
        None => TARGETS.to_vec(),
        Some(t) if TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(other) => {
            return Err(format!(
                "unknown fuzz target {other:?}; targets: {}",
                TARGETS.join(", ")
            ));
        }
    };
    ensure_cargo_fuzz()?;
    build()?;
    let corpus = |t: &str| root().join("fuzz/corpus").join(t);
    run_all(&targets, args.time, corpus)
}

/// The smoke run of `cargo xtask test`: every target for [`SMOKE_SECS`] on its seeds
/// (a scratch corpus, so nothing is kept). Skipped, saying why, when cargo-fuzz is
/// missing and cannot be installed (a failure under CI).
pub(crate) fn smoke() -> Result<Outcome> {
    if let Err(why) = ensure_cargo_fuzz() {
        return if in_ci() {
            Err(why)
        } else {
            Ok(Outcome::Skipped(why))
        };
    }
    build()?;
    let scratch = root().join("target/fuzz-smoke");
    let _ = std::fs::remove_dir_all(&scratch);
    run_all(TARGETS, SMOKE_SECS, |t| scratch.join(t))?;
    Ok(Outcome::Passed)
}

fn cargo_fuzz_present() -> bool {
    cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_cargo_fuzz() -> Result {
    if cargo_fuzz_present() {
        return Ok(());
    }
    eprintln!("==> cargo install cargo-fuzz {CARGO_FUZZ_VERSION} (not found)");
    let installed = cargo()
        .args([
            "install",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
            "--locked",
        ])
        .status();
    match installed {
        Ok(s) if s.success() && cargo_fuzz_present() => Ok(()),
        Ok(s) => Err(format!(
            "cargo-fuzz is missing and `cargo install cargo-fuzz --version {CARGO_FUZZ_VERSION} --locked` failed ({s}): install it, then run again"
        )),
        Err(e) => Err(format!(
            "cargo-fuzz is missing and cargo could not be run: {e}"
        )),
    }
}

fn fuzz_command() -> Command {
    let mut cmd = cargo();
    cmd.args(["fuzz"]);
    cmd
}

fn build() -> Result {
    crate::run_step(
        "cargo fuzz build -s none (every target in fuzz/)",
        fuzz_command().args(["build", "-s", "none", "--fuzz-dir", "fuzz"]),
    )
}

/// What one target's run did, from libFuzzer's output.
#[derive(Debug, Default)]
struct Stats {
    execs: u64,
    cov: u64,
    features: u64,
    corpus: u64,
    new_units: u64,
    secs: f64,
}

fn run_all(targets: &[&str], secs: u64, corpus: impl Fn(&str) -> PathBuf) -> Result {
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for target in targets {
        match run_target(target, secs, &corpus(target)) {
            Ok(stats) => rows.push((*target, Ok(stats))),
            Err(e) => {
                failed.push(format!("{target}: {e}"));
                rows.push((*target, Err(e)));
            }
        }
    }
    eprintln!("==> fuzz results ({secs} s per target)");
    eprintln!(
        "  {:<18} {:>10} {:>8} {:>8} {:>8} {:>7}  result",
        "target", "execs", "exec/s", "cov", "ft", "corpus"
    );
    for (target, row) in &rows {
        match row {
            Ok(s) => eprintln!(
                "  {:<18} {:>10} {:>8.0} {:>8} {:>8} {:>7}  ok (+{} new)",
                target,
                s.execs,
                s.execs as f64 / s.secs.max(0.001),
                s.cov,
                s.features,
                s.corpus,
                s.new_units
            ),
            Err(e) => eprintln!("  {target:<18} FAILED: {e}"),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzzing found: {}", failed.join("; ")))
    }
}

fn run_target(target: &str, secs: u64, corpus: &Path) -> Result<Stats> {
    let seeds = root().join("fuzz/seeds").join(target);
    let artifacts = root().join("fuzz/artifacts").join(target);
    for dir in [corpus, &artifacts] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    eprintln!("==> fuzz {target} for {secs} s");
    let start = Instant::now();
    let output = fuzz_command()
        .args(["run", "-s", "none", "--fuzz-dir", "fuzz", target])
        .arg(corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=20")
        .arg("-rss_limit_mb=2048")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .output()
        .map_err(|e| format!("cannot start cargo fuzz: {e}"))?;
    let text = String::from_utf8_lossy(&output.stderr);
    let mut stats = parse(&text);
    stats.secs = start.elapsed().as_secs_f64().min(secs as f64).max(1.0);
    if output.status.success() {
        return Ok(stats);
    }
    let tail: Vec<&str> = text.lines().rev().take(40).collect();
    for line in tail.iter().rev() {
        eprintln!("  | {line}");
    }
    let saved = text
        .lines()
        .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
        .map(|p| {
            format!(
                "; input saved to {p} (replay: cargo fuzz run -s none --fuzz-dir fuzz {target} {p})"
            )
        })
        .unwrap_or_default();
    Err(format!("{target} failed ({}){saved}", output.status))
}

/// Reads libFuzzer's final stats and last status line (`#N DONE cov: C ft: F corp: K/..`).
fn parse(text: &str) -> Stats {
    let mut stats = Stats::default();
    let field = |line: &str, key: &str| -> Option<u64> {
        let at = line.find(key)? + key.len();
        let rest = line.get(at..)?.trim_start();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    for line in text.lines() {
        if let Some(n) = line
            .strip_prefix("stat::number_of_executed_units:")
            .and_then(|v| v.trim().parse().ok())
        {
            stats.execs = n;
        }
        if let Some(n) = line
            .strip_prefix("stat::new_units_added:")
            .and_then(|v| v.trim().parse().ok())
        {
            stats.new_units = n;
        }
        if line.starts_with('#') && line.contains("cov:") {
            stats.cov = field(line, "cov:").unwrap_or(stats.cov);
            stats.features = field(line, "ft:").unwrap_or(stats.features);
            stats.corpus = field(line, "corp:").unwrap_or(stats.corpus);
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_stats() {
        let text = "INFO: seed\n#2\tINITED cov: 10 ft: 11 corp: 3/1b exec/s: 0 rss: 40Mb\n\
                    #900\tDONE   cov: 812 ft: 2301 corp: 140/9Kb lim: 4096 exec/s: 90 rss: 60Mb\n\
                    stat::number_of_executed_units: 900\nstat::new_units_added: 137\n";
        let s = parse(text);
        assert_eq!(
            (s.execs, s.cov, s.features, s.corpus, s.new_units),
            (900, 812, 2301, 140, 137)
        );
    }
}
