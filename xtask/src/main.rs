//! Build, test and benchmark orchestration for nova-hypercore: `cargo xtask <command>`.
//!
//! Owns: the README's test command (`cargo xtask test`), the property-test runner
//! (`cargo xtask test-props [N...]`), benchmarks against the JS anchor (`cargo xtask
//! bench`), fuzzing (`cargo xtask fuzz`, a smoke run of it in the test command), the demo (`cargo xtask demo`), the Tauri guest-js package and e2e window.
//!
//! Does not: contain product code or tests of its own behaviour beyond its helpers; it
//! only drives cargo, the bench binary, node/npm, apt-get and (for the Tauri e2e) Xvfb.

mod bench;
mod crash;
mod fuzz;
mod integration;
mod interop;
mod interop_encryption;
mod interop_forks;
mod interop_seek;
mod nat;
mod props;
mod system;
mod tally;
mod tauri;
mod udx_bench;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use tally::{Outcome, Tally};

#[derive(Parser)]
#[command(about = "nova-hypercore tasks", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole suite: fmt check, clippy -D warnings, every test of the workspace.
    Test {
        /// The long variants too (e.g. 200+ crash trials instead of 20).
        #[arg(long)]
        full: bool,
    },
    /// Run the spec's property tests (all, or the listed numbers) and print a table.
    TestProps {
        /// Property numbers (1-24); none means all.
        numbers: Vec<u32>,
    },
    /// Multi-process suites: two-peer, reconnect (kill -9), crash (kill -9 trials),
    /// swarm (DHT), js (JS peers), nat (peers behind simulated NATs), tauri (a real
    /// window under Xvfb), or all.
    TestIntegration {
        /// Suite name.
        #[arg(default_value = "all")]
        suite: String,
        /// The long variants (e.g. 200+ crash trials instead of 20).
        #[arg(long)]
        full: bool,
    },
    /// Benchmarks, reported as ratios against the JS anchor.
    Bench(bench::BenchArgs),
    /// Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every decoder that reads a
    /// peer's or a file's bytes: all targets in turn, or one.
    Fuzz(fuzz::FuzzArgs),
    /// Inside the `udx_swarm` bench row's network namespace (run by `cargo xtask bench`).
    #[command(hide = true)]
    BenchUdxInside {
        #[arg(long)]
        runs: usize,
        #[arg(long)]
        out: PathBuf,
    },
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
        Cmd::Test { full } => {
            set_full(full);
            test()
        }
        Cmd::TestProps { numbers } => props::run(&numbers),
        Cmd::TestIntegration { suite, full } => {
            set_full(full);
            integration::run(&suite)
        }
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Fuzz(args) => fuzz::run(&args),
        Cmd::BenchUdxInside { runs, out } => udx_bench::inside(runs, &out),
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

/// Set by `--full`: suites run their long variants.
static FULL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn set_full(full: bool) {
    FULL.store(full, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the long variants run (`--full`).
pub(crate) fn full() -> bool {
    FULL.load(std::sync::atomic::Ordering::Relaxed)
}

/// Read by tests with a long variant (`crates/manager/tests/scale.rs`, `soak.rs`): `1`
/// runs it. Set for the workspace tests by `--full`.
pub(crate) const FULL_ENV: &str = "NOVA_FULL";

/// `cmd` with [`FULL_ENV`]`=1` under `--full` (as it was otherwise: a caller's own
/// `NOVA_FULL=1` still applies).
fn full_env(cmd: &mut Command) -> &mut Command {
    if full() {
        cmd.env(FULL_ENV, "1");
    }
    cmd
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

/// Runs `cmd` as a step that passes or fails.
fn passes(step: &str, cmd: &mut Command) -> Result<Outcome> {
    run_step(step, cmd).map(|()| Outcome::Passed)
}

fn test() -> Result {
    let mut tally = Tally::default();
    let result = test_steps(&mut tally);
    tally.finish(result)
}

fn test_steps(t: &mut Tally) -> Result {
    t.step("cargo fmt --check", || {
        passes(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--check"]),
        )
    })?;
    // Before clippy: `--workspace` includes the Tauri crates (not default members), which
    // link webkit2gtk.
    t.step("Debian packages for the Tauri crates", || {
        system::ensure_packages("the Tauri crates", system::TAURI_PACKAGES)
            .map(|()| Outcome::Passed)
    })?;
    // Before the tests: the plugin's cross-runtime test runs node from js/interop.
    t.step("npm ci (js/interop, js/golden)", || {
        system::npm_ci(
            &root().join("js/interop"),
            "js/interop: pinned hyperswarm, hyperdht, hypercore 10 and 11",
        )?;
        system::npm_ci(
            &root().join("js/golden"),
            "js/golden: pinned corestore 6.18.4",
        )?;
        Ok(Outcome::Passed)
    })?;
    t.step(
        "guest-js: npm ci, build, type-check the README example, node --test",
        || tauri::guest_js_test().map(|()| Outcome::Passed),
    )?;
    t.step("cargo clippy --workspace -D warnings", || {
        passes(
            "cargo clippy -D warnings (every member, the Tauri crates included)",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        )
    })?;
    // The tests crate's CLI suites run this binary of another package and have cargo build
    // it on first use (tests/tests/cli_common): built here, no test compiles it while the
    // others run.
    t.step("build the nova-hypercore binary", || {
        passes(
            "cargo build -p nova-hypercore-cli --bin nova-hypercore (for tests/)",
            cargo().args([
                "build",
                "--package",
                "nova-hypercore-cli",
                "--bin",
                "nova-hypercore",
            ]),
        )
    })?;
    let report = props::report_file()?;
    let nextest = cargo().args(["nextest", "--version"]).output();
    if nextest.is_ok_and(|o| o.status.success()) {
        t.step("cargo nextest run --workspace", || {
            passes(
                "cargo nextest run --workspace (unit, integration and property tests; tauri-plugin-nova-hypercore included)",
                full_env(
                    cargo()
                        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                        .env(props::REPORT_ENV, &report),
                ),
            )
        })?;
        t.step("cargo test --workspace --doc", || {
            passes(
                "cargo test --doc",
                cargo().args(["test", "--workspace", "--doc"]),
            )
        })?;
    } else {
        eprintln!("(cargo-nextest not found: using cargo test)");
        t.step("cargo test --workspace", || {
            passes(
                "cargo test --workspace (tauri-plugin-nova-hypercore included)",
                full_env(
                    cargo()
                        .args(["test", "--workspace", "--no-fail-fast"])
                        .env(props::REPORT_ENV, &report),
                ),
            )
        })?;
    }
    t.step(
        &format!(
            "fuzz smoke ({} targets, {} s each)",
            fuzz::TARGETS.len(),
            fuzz::SMOKE_SECS
        ),
        fuzz::smoke,
    )?;
    integration::run_into(t, "all")?;
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
