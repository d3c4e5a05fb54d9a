//! Build, test and benchmark orchestration for nova-hypercore: `cargo xtask <command>`.
//!
//! Owns: the README's test command (`cargo xtask test`), the property-test runner
//! (`cargo xtask test-props [N...]`), benchmarks against the JS anchor (`cargo xtask
//! bench`) and the demo (`cargo xtask demo`).
//!
//! Does not: contain product code or tests of its own behaviour beyond its helpers; it
//! only drives cargo, the bench binary and (for JS comparisons) node/npm.

mod bench;
mod integration;
mod interop;
mod props;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "nova-hypercore tasks", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole suite: fmt check, clippy -D warnings, every test of the workspace.
    Test,
    /// Run the spec's property tests (all, or the listed numbers) and print a table.
    TestProps {
        /// Property numbers (1-24); none means all.
        numbers: Vec<u32>,
    },
    /// Multi-process suites over TCP loopback: two-peer, reconnect (kill -9), or all.
    TestIntegration {
        /// Suite name.
        #[arg(default_value = "all")]
        suite: String,
    },
    /// Benchmarks, reported as ratios against the JS anchor.
    Bench(bench::BenchArgs),
    /// The main job: a small end-to-end run on a real log on disk.
    Demo {
        /// Keep the data in this directory (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Test => test(),
        Cmd::TestProps { numbers } => props::run(&numbers),
        Cmd::TestIntegration { suite } => integration::run(&suite),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Demo { dir } => demo(dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) type Result<T = (), E = String> = std::result::Result<T, E>;

/// The workspace root (the parent of this crate's directory).
pub(crate) fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd`, echoing it; an unsuccessful exit is an error naming the step.
pub(crate) fn run_step(step: &str, cmd: &mut Command) -> Result {
    eprintln!("==> {step}");
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether a loopback-only network namespace can be made here (root, `unshare`, `ip`).
pub(crate) fn netns_available() -> bool {
    is_root() && have("unshare", "--version") && have("ip", "-V")
}

pub(crate) fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn test() -> Result {
    run_step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    run_step(
        "cargo clippy -D warnings",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let report = props::report_file()?;
    let nextest = cargo().args(["nextest", "--version"]).output();
    if nextest.is_ok_and(|o| o.status.success()) {
        run_step(
            "cargo nextest run (unit, integration and property tests)",
            cargo()
                .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .env(props::REPORT_ENV, &report),
        )?;
        run_step(
            "cargo test --doc",
            cargo().args(["test", "--workspace", "--doc"]),
        )?;
    } else {
        eprintln!("(cargo-nextest not found: using cargo test)");
        run_step(
            "cargo test",
            cargo()
                .args(["test", "--workspace", "--no-fail-fast"])
                .env(props::REPORT_ENV, &report),
        )?;
    }
    integration::run("all")?;
    props::summarize_report(&report);
    Ok(())
}

fn demo(dir: Option<&Path>) -> Result {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "nova-hypercore-manager",
        "--example",
        "demo",
        "--",
    ]);
    if let Some(dir) = dir {
        cmd.arg(dir);
    }
    run_step("demo", &mut cmd)?;
    run_step(
        "demo: ATLAS nodes stored on one peer, queried on the other",
        cargo().args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "nova-hypercore-atlas-adapter",
            "--example",
            "demo",
        ]),
    )
}
