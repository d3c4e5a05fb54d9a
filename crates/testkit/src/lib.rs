//! Helpers for nova-hypercore's own test suites; a dev-dependency, never shipped.
//!
//! Owns: the property-test conventions that `cargo xtask test-props` relies on
//! ([`property_config`], [`CaseCounter`]) and a tokio runtime for running async code
//! inside proptest cases; seeds and a generator for randomized suites ([`replay`]);
//! this process's open descriptors and their peak ([`fds`]).
//!
//! Does not: mock or fake any component. Tests use real storage and real sockets.

pub mod fds;
pub mod replay;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::test_runner::Config;

/// Minimum number of cases every spec property runs.
pub const PROPERTY_CASES: u32 = 100;

/// Environment variable naming the file that [`CaseCounter`] appends its report to.
pub const REPORT_ENV: &str = "NOVA_PROPERTY_REPORT";

/// The proptest configuration for spec properties: [`PROPERTY_CASES`] cases (more if
/// `PROPTEST_CASES` asks for more, never fewer), no failure persistence files.
pub fn property_config() -> Config {
    let from_env = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    Config {
        cases: PROPERTY_CASES.max(from_env),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Counts the cases a property test actually ran and, when dropped, appends
/// `property <n> cases <count>` to the file named by [`REPORT_ENV`] (if set).
///
/// ```
/// let cases = nova_hypercore_testkit::CaseCounter::new(9);
/// cases.hit();
/// assert_eq!(cases.count(), 1);
/// ```
#[derive(Debug)]
pub struct CaseCounter {
    property: u32,
    count: AtomicU64,
}

impl CaseCounter {
    /// A counter for spec property `property`.
    pub fn new(property: u32) -> Self {
        CaseCounter {
            property,
            count: AtomicU64::new(0),
        }
    }

    /// Records one case.
    pub fn hit(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Cases recorded so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for CaseCounter {
    fn drop(&mut self) {
        let Some(path) = std::env::var_os(REPORT_ENV) else {
            return;
        };
        let line = format!("property {} cases {}\n", self.property, self.count());
        // Best effort: a report that cannot be written shows up as "cases unknown".
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// A current-thread tokio runtime with timers and I/O, for `block_on` inside proptest cases.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a tokio runtime for tests: {e}"),
    }
}

/// A memory figure of this process from `/proc/self/status` in bytes, e.g. `"VmRSS"`
/// (resident now), `"VmHWM"` (resident peak) or `"VmPeak"` (virtual peak: it grows with
/// every large allocation, touched or not, so it shows a buffer sized by a length field
/// that was never filled). `None` where there is no procfs.
///
/// ```
/// if let Some(rss) = nova_hypercore_testkit::proc_status_bytes("VmRSS") {
///     assert!(rss > 0);
/// }
/// ```
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Runs the test `test` of this test binary again in a child process whose open-file
/// limit is `limit` (`ulimit -n`), with `env_var=1` set so the child knows it is the
/// child, and panics unless it succeeds and prints `marker` (so a child that did not
/// run the test, e.g. filtered out, cannot pass). For tests that must run out of file
/// descriptors without starving the rest of the test process.
#[allow(
    clippy::expect_used,
    reason = "a test helper: not starting the child fails the test"
)]
pub fn run_under_ulimit(limit: u32, test: &str, env_var: &str, marker: &str) {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args(["--exact", test, "--nocapture"])
        .env(env_var, "1")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(marker),
        "the child test did not run:\n{stdout}\n{stderr}"
    );
}

/// Every file under `dir`, as paths relative to it, sorted: to check that a call wrote
/// nothing (compare before and after). Panics on an unreadable directory (tests only).
pub fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) => panic!("cannot list {}: {e}", d.display()),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                out.push(relative.display().to_string());
            }
        }
    }
    out.sort();
    out
}
