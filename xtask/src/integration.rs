//! `cargo xtask test-integration <suite>`: peers in separate processes over TCP loopback.
//!
//! The peer is `crates/manager/examples/peer.rs` (one manager, one log). Every wait has a
//! deadline; nothing sleeps to pass.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::tally::{Outcome, Tally};
use crate::{Result, cargo, root, run_step};

const LOG: &str = "atlas-memory";
/// Set in the copy of this process that runs inside a network namespace.
pub(crate) const INSIDE: &str = "NOVA_XTASK_NETNS";
const DEADLINE: Duration = Duration::from_secs(120);

/// The suites, in the order `cargo xtask test` runs them.
pub(crate) const SUITES: &[&str] = &[
    "two-peer",
    "reconnect",
    "crash",
    "swarm",
    "js",
    "nat",
    "tauri",
];

pub(crate) struct Peer {
    pub(crate) child: Child,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    name: &'static str,
    /// Set once the peer printed `TAPPED <n>` (a connection on our stream through its
    /// DHT socket's tap), in whatever read its output.
    tapped: Arc<AtomicBool>,
}

impl Peer {
    pub(crate) fn spawn(name: &'static str, args: &[&str]) -> Result<Peer> {
        let mut cmd = Command::new(example("peer"));
        cmd.args(args);
        Peer::start(name, cmd)
    }

    /// The next line within `timeout`, not echoed; `None` on timeout or once the
    /// child's stdout has closed.
    pub(crate) fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Every line still to come, until the child's stdout closes (call after a kill).
    pub(crate) fn rest(&self) -> Vec<String> {
        self.lines.iter().collect()
    }

    /// Sends SIGKILL and reaps the child.
    pub(crate) fn kill(&mut self) -> Result {
        self.child
            .kill()
            .map_err(|e| format!("kill -9 {}: {e}", self.name))?;
        self.child
            .wait()
            .map_err(|e| format!("wait for {}: {e}", self.name))?;
        Ok(())
    }

    /// Starts `cmd` with piped stdin/stdout (stderr inherited).
    pub(crate) fn start(name: &'static str, mut cmd: Command) -> Result<Peer> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Peer {
            child,
            lines,
            stdin,
            name,
            tapped: Arc::default(),
        })
    }

    /// The first line starting with `prefix` (earlier lines are echoed), within the deadline.
    pub(crate) fn expect(&self, prefix: &str) -> Result<String> {
        self.expect_any_within(&[prefix], DEADLINE)
    }

    /// The first line starting with any of `prefixes`, within the deadline.
    pub(crate) fn expect_any(&self, prefixes: &[&str]) -> Result<String> {
        self.expect_any_within(prefixes, DEADLINE)
    }

    /// The first line starting with `prefix` (earlier lines are echoed), within `within`.
    pub(crate) fn expect_within(&self, prefix: &str, within: Duration) -> Result<String> {
        self.expect_any_within(&[prefix], within)
    }

    /// The first line starting with any of `prefixes` (earlier lines are echoed), within
    /// `within`; an error once it passes or the child's stdout closes.
    pub(crate) fn expect_any_within(&self, prefixes: &[&str], within: Duration) -> Result<String> {
        let end = Instant::now() + within;
        let wanted = match prefixes {
            [one] => format!("`{one}` line"),
            _ => format!("line starting with any of {prefixes:?}"),
        };
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("  [{}] {line}", self.name);
                    self.heard(&line)?;
                    if prefixes.iter().any(|p| line.starts_with(p)) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{}: no {wanted} within {within:.1?}", self.name));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{}: its output ended (exited?) before a {wanted}",
                        self.name
                    ));
                }
            }
        }
    }

    /// Whether the peer printed `TAPPED` (see the field), read later too.
    pub(crate) fn tapped(&self) -> Arc<AtomicBool> {
        self.tapped.clone()
    }

    /// What every echoed line goes through: `LIBUDX` fails, `TAPPED` is noted.
    fn heard(&self, line: &str) -> Result {
        if line.starts_with("TAPPED ") {
            self.tapped.store(true, Ordering::Relaxed);
        }
        libudx_is_a_failure(self.name, line)
    }

    pub(crate) fn send(&mut self, line: &str) -> Result {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}").map_err(|e| format!("{}: {e}", self.name))
    }

    /// Closes the child's stdin (a writer peer then exits, printing its last lines).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin.take();
    }

    pub(crate) fn wait(mut self) -> Result {
        self.stdin.take();
        let end = Instant::now() + DEADLINE;
        loop {
            match self.child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => {
                    // What it printed last still counts (`LIBUDX` fails, `TAPPED` is
                    // noted): read until its stdout closes.
                    while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
                        eprintln!("  [{}] {line}", self.name);
                        self.heard(&line)?;
                    }
                    if status.success() {
                        return Ok(());
                    }
                    return Err(format!("{} exited with {status}", self.name));
                }
                None if Instant::now() > end => {
                    let _ = self.child.kill();
                    return Err(format!("{} did not exit within {DEADLINE:?}", self.name));
                }
                None => {
                    // Drain output while waiting, so the child never blocks on a full pipe.
                    if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                        eprintln!("  [{}] {line}", self.name);
                        self.heard(&line)?;
                    }
                }
            }
        }
    }
}

/// Our peers print `LIBUDX <n>` when a swarm connection runs on libudx's UDX stream
/// instead of our own (issue 22: every connection the suites make is ours; the paths
/// left to libudx are in docs/discovery.md, "The stream under a connection").
fn libudx_is_a_failure(name: &str, line: &str) -> Result {
    if line.starts_with("LIBUDX ") {
        return Err(format!(
            "{name}: a swarm connection ran on libudx's UDX stream, not ours ({line})"
        ));
    }
    Ok(())
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A debug-built example of the workspace (`CARGO_TARGET_DIR` respected).
pub(crate) fn example(name: &str) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root().join(t) })
        .unwrap_or_else(|| root().join("target"));
    target.join("debug/examples").join(name)
}

pub(crate) fn field(line: &str, i: usize) -> Result<String> {
    line.split_whitespace()
        .nth(i)
        .map(str::to_owned)
        .ok_or_else(|| format!("malformed line {line:?}"))
}

pub(crate) fn number(line: &str, i: usize) -> Result<u64> {
    field(line, i)?
        .parse()
        .map_err(|e| format!("malformed line {line:?}: {e}"))
}

/// Runs one reader to `until`; returns (blocks held at start, blocks fetched this run).
fn read_to(dir: &Path, key: &str, addr: &str, until: u64) -> Result<(u64, u64)> {
    let reader = Peer::spawn(
        "reader",
        &[
            "read",
            &dir.display().to_string(),
            LOG,
            key,
            addr,
            &until.to_string(),
        ],
    )?;
    let held = number(&reader.expect("START")?, 1)?;
    reader.expect(&format!("VERIFIED {until}"))?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    reader.wait()?;
    Ok((held, fetched))
}

pub(crate) fn check(what: &str, ok: bool, detail: String) -> Result {
    if ok {
        eprintln!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("{what}: {detail}"))
    }
}

fn two_peer(tmp: &Path) -> Result {
    let mut writer = Peer::spawn(
        "writer",
        &["write", &tmp.join("w").display().to_string(), LOG, "2000"],
    )?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let dir = tmp.join("r");
    let (held, fetched) = read_to(&dir, &key, &addr, 2000)?;
    check(
        "full sync of 2,000 entries, each fetched once",
        held == 0 && fetched == 2000,
        format!("held {held}, fetched {fetched}"),
    )?;
    writer.send("append 500")?;
    writer.expect("LENGTH 2500")?;
    let (held, fetched) = read_to(&dir, &key, &addr, 2500)?;
    check(
        "incremental sync moves exactly the 500 new entries",
        held == 2000 && fetched == 500,
        format!("held {held}, fetched {fetched}"),
    )?;
    writer.wait()
}

fn reconnect(tmp: &Path) -> Result {
    let n: u64 = 20_000;
    let writer = Peer::spawn(
        "writer",
        &[
            "write",
            &tmp.join("w").display().to_string(),
            LOG,
            &n.to_string(),
        ],
    )?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let dir = tmp.join("r");
    let mut first = Peer::spawn(
        "reader-1",
        &[
            "read",
            &dir.display().to_string(),
            LOG,
            &key,
            &addr,
            &n.to_string(),
        ],
    )?;
    first.expect("START")?;
    // Kill -9 once a few thousand entries have arrived, in the middle of the transfer.
    loop {
        let line = first.expect("PROGRESS")?;
        if number(&line, 1)? >= 3000 {
            break;
        }
    }
    first
        .child
        .kill()
        .map_err(|e| format!("kill -9 reader: {e}"))?;
    let _ = first.child.wait();
    drop(first);
    let (held, fetched) = read_to(&dir, &key, &addr, n)?;
    check(
        "after kill -9 the reader resumes: it held part, the rest arrives, nothing twice",
        held >= 3000 && held < n && held + fetched == n,
        format!("held {held}, fetched {fetched}, total {n}"),
    )?;
    writer.wait()?;
    writer_restart(tmp, n)
}

/// Kill -9 the writer mid-transfer and restart it on the same address: the running
/// reader's dialer (`HypercoreManager::connect`) redials with backoff and completes.
fn writer_restart(tmp: &Path, n: u64) -> Result {
    let wdir = tmp.join("w2").display().to_string();
    let mut writer = Peer::spawn("writer-2", &["write", &wdir, LOG, &n.to_string()])?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let reader = Peer::spawn(
        "reader-3",
        &[
            "read",
            &tmp.join("r2").display().to_string(),
            LOG,
            &key,
            &addr,
            &n.to_string(),
        ],
    )?;
    reader.expect("START")?;
    loop {
        let line = reader.expect("PROGRESS")?;
        if number(&line, 1)? >= 3000 {
            break;
        }
    }
    writer
        .child
        .kill()
        .map_err(|e| format!("kill -9 writer: {e}"))?;
    let _ = writer.child.wait();
    drop(writer);
    // Same store, same address: everything the writer acknowledged is still there.
    let writer = Peer::spawn("writer-3", &["write", &wdir, LOG, &n.to_string(), &addr])?;
    writer.expect("READY")?;
    reader.expect(&format!("VERIFIED {n}"))?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    reader.wait()?;
    check(
        "after kill -9 of the writer, the reader redials the restarted writer and completes, nothing twice",
        fetched == n,
        format!("fetched {fetched}, total {n}"),
    )?;
    writer.wait()
}

/// Re-runs `cargo xtask test-integration <suite>` (this binary) in a new network
/// namespace (`unshare --net`, root); the copy sees [`INSIDE`] set.
pub(crate) fn enter_netns(suite: &str) -> Result {
    let me = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    run_step(
        &format!("{suite} suite processes in their own network namespace (unshare --net)"),
        Command::new("unshare")
            .arg("--net")
            .arg(me)
            .args(["test-integration", suite])
            .env(INSIDE, "1")
            .current_dir(root()),
    )
}

/// The swarm suite, part 1: `crates/manager/tests/swarm.rs` (its ignored tests) inside a
/// fresh network namespace that has only `lo`, so that no packet leaves loopback whatever
/// the DHT's holepuncher advertises. Part 2 ([`swarm_processes`]) runs in another
/// namespace. Needs root (`unshare --net`); otherwise it is skipped with a message
/// saying so.
fn swarm() -> Result<Outcome> {
    if !crate::netns_available() {
        return Ok(Outcome::Skipped(
            "the swarm suite needs root with `unshare` and `ip` (iproute2) to run in a loopback-only network namespace".into(),
        ));
    }
    run_step(
        "build the swarm tests",
        cargo().args([
            "test",
            "--no-run",
            "--quiet",
            "--package",
            "nova-hypercore-manager",
            "--test",
            "swarm",
        ]),
    )?;
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let script = format!(
        "ip link set lo up && exec {cargo_bin} test --offline --quiet --package nova-hypercore-manager --test swarm -- --ignored --test-threads 1"
    );
    run_step(
        "swarm tests in a network namespace with only lo (unshare --net)",
        Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .current_dir(root()),
    )?;
    enter_netns("swarm")?;
    Ok(Outcome::Passed)
}

/// Connects per check in [`swarm_processes`].
const SWARM_ROUNDS: usize = 5;
/// Entries each writer serves in [`swarm_processes`].
const SWARM_ENTRIES: &str = "200";

/// The swarm suite, part 2 (inside its namespace): Rust peers in separate processes find
/// each other on a three-node DHT (loopback) and replicate over the swarm's UDX stream,
/// on a host that also has non-loopback interfaces (a veth pair whose both ends are in
/// the namespace, so nothing leaves it). That is the set-up in which connects failed:
/// the DHT tells a peer that the other one runs on the same host, and it dials one of
/// the other's advertised interface addresses (docs/discovery.md). Checks:
/// - bound to every interface (the default), every connect succeeds;
/// - bound to 127.0.0.1 (`local_connection` then off), every connect succeeds;
/// - bound to 127.0.0.1 with `local_connection` forced on, every connect succeeds too
///   (it never did under peeroxide's server, which offered every interface's address
///   whatever it was bound to; our server offers the address it is bound to).
fn swarm_processes(tmp: &Path) -> Result {
    let ip = |args: &[&str]| -> Result {
        run_step(
            &format!("ip {}", args.join(" ")),
            Command::new("ip").args(args),
        )
    };
    ip(&["link", "set", "lo", "up"])?;
    ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]).map_err(|e| {
        format!("{e}: the suite needs a veth pair inside its namespace (kernel module veth)")
    })?;
    ip(&["addr", "add", "10.77.0.1/24", "dev", "v0"])?;
    ip(&["addr", "add", "10.77.0.2/24", "dev", "v1"])?;
    ip(&["link", "set", "v0", "up"])?;
    ip(&["link", "set", "v1", "up"])?;
    let dht = Peer::spawn("dht", &["bootstrap", "127.0.0.1:0", "3"])?;
    let swarm = format!("swarm:{}", field(&dht.expect("BOOTSTRAP")?, 1)?);
    let mut round = 0;
    let mut connect = |options: &[&str]| -> Result<String> {
        round += 1;
        let dir = |side: &str| tmp.join(format!("{side}-{round}")).display().to_string();
        let wdir = dir("w");
        let mut args = options.to_vec();
        args.extend(["write", &wdir, LOG, SWARM_ENTRIES, &swarm]);
        let writer = Peer::spawn("writer", &args)?;
        let key = field(&writer.expect("READY")?, 2)?;
        let rdir = dir("r");
        let mut args = options.to_vec();
        args.extend(["read", &rdir, LOG, &key, &swarm, SWARM_ENTRIES]);
        let reader = Peer::spawn("reader", &args)?;
        // A reader that has not connected reports STALL after 10 s without progress.
        let outcome = reader.expect_any(&["VERIFIED", "STALL"])?;
        if outcome.starts_with("VERIFIED") {
            reader.expect("FETCHED")?;
            reader.wait()?;
        }
        writer.wait()?;
        Ok(outcome)
    };
    for (what, options) in [
        ("bound to every interface (the default)", &[][..]),
        (
            "bound to 127.0.0.1 (local_connection off by default)",
            &["--host", "127.0.0.1"][..],
        ),
        (
            "bound to 127.0.0.1 with local_connection forced on (failed under peeroxide's server, which offered every interface's address; ours offers the address it is bound to)",
            &["--host", "127.0.0.1", "--local-connection", "true"][..],
        ),
    ] {
        let outcomes = (0..SWARM_ROUNDS)
            .map(|_| connect(options))
            .collect::<Result<Vec<_>>>()?;
        let connected = outcomes
            .iter()
            .filter(|o| o.starts_with("VERIFIED"))
            .count();
        check(
            &format!(
                "{what}: {SWARM_ROUNDS} of {SWARM_ROUNDS} pairs of processes connect over the swarm and sync {SWARM_ENTRIES} entries"
            ),
            connected == SWARM_ROUNDS,
            format!("{connected} connected: {outcomes:?}"),
        )?;
    }
    dht.wait()
}

/// `cargo xtask test-integration <suite>`: runs `suite` (or every suite for `all`) and
/// prints the summary (under `CI=true` a skipped suite fails).
pub(crate) fn run(suite: &str) -> Result {
    let mut tally = Tally::default();
    let result = run_into(&mut tally, suite);
    if std::env::var_os(INSIDE).is_some() {
        // The copy inside a network namespace: its parent counts the suite.
        return result;
    }
    tally.finish(result)
}

/// Builds the peer (when a suite uses it) and runs `suite` (or every suite for `all`),
/// counting each in `tally`.
pub(crate) fn run_into(tally: &mut Tally, suite: &str) -> Result {
    let suites: Vec<&str> = match suite {
        "all" => SUITES.to_vec(),
        s if SUITES.contains(&s) => vec![s],
        other => {
            return Err(format!(
                "unknown suite {other:?}; suites: all, {}",
                SUITES.join(", ")
            ));
        }
    };
    let inside_netns = std::env::var_os(INSIDE).is_some();
    if !inside_netns && suites.iter().any(|s| *s != "tauri") {
        run_step(
            "build the peer process (crates/manager/examples/peer.rs)",
            cargo().args([
                "build",
                "--quiet",
                "--package",
                "nova-hypercore-manager",
                "--example",
                "peer",
            ]),
        )?;
    }
    for s in suites {
        let label = if inside_netns {
            format!("{s} (inside its network namespace)")
        } else {
            s.to_owned()
        };
        tally.step(&format!("integration suite {label}"), || {
            eprintln!("==> integration suite {label}");
            let tmp = std::env::temp_dir().join(format!("nova-it-{s}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
            let passed = |r: Result| r.map(|()| Outcome::Passed);
            let result = match s {
                "two-peer" => passed(two_peer(&tmp)),
                "swarm" if inside_netns => passed(swarm_processes(&tmp)),
                "swarm" => swarm(),
                "js" if inside_netns => passed(crate::interop::run_inside(&tmp)),
                "js" => crate::interop::prepare_and_enter(),
                "nat" => crate::nat::run(&tmp),
                "tauri" => crate::tauri::e2e(&tmp),
                "crash" => passed(crate::crash::run(&tmp)),
                _ => passed(reconnect(&tmp)),
            };
            if result.is_ok() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            let outcome = result.map_err(|e| {
                format!(
                    "integration suite {s} failed (data kept in {}): {e}",
                    tmp.display()
                )
            })?;
            if outcome == Outcome::Passed {
                eprintln!("==> integration suite {label}: passed");
            }
            Ok(outcome)
        })?;
    }
    Ok(())
}
