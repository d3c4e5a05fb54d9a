//! `cargo xtask test-integration nat`: JS and Rust peers behind simulated NATs find each
//! other on a HyperDHT and replicate, each direction, with the outcome each pair is
//! expected to have today (`pairs.rs`, [`PAIRS`]).
//!
//! The topology ([`net`]) is network namespaces made here, none connected to the host's
//! network: an "internet" bridge with public-looking addresses (203.0.113.0/24) and JS
//! HyperDHT nodes on three of them (JS hyperdht classifies a NAT only when it samples its
//! address from distinct hosts, and treats 10/8, 192.168/16 and loopback as private);
//! per peer behind a NAT a router namespace (`MASQUERADE`, `--random-fully` for a
//! random-mapping NAT; a stateful FORWARD firewall; NEW packets to the router itself
//! dropped: without that rule the other side's first punch creates a conntrack entry on
//! the router and ours is remapped, and even JS fails) with the peer's namespace behind
//! it; a peer on the internet sits on the bridge. Fresh sites for every pair.
//!
//! Each pair expected to pass: a full sync of 2,000 entries, then exactly the 1,000 new
//! ones (every entry compared, [`full_then_incremental`]), printing the connect time
//! (reader start to its first `PROGRESS` line with data it did not hold) and the sync
//! times. JS -> JS pairs are the anchors: when one fails the topology is wrong and the
//! suite stops. A known-boundary pair gets [`BOUNDARY_BOUND`] to sync; it prints
//! `KNOWN BOUNDARY` when it does not, and fails the suite when it does (update the
//! table). Pairs across two consistent NATs that pass also get the reconnect checks:
//! the writer's router drops all its state (`conntrack -F`), then the writer restarts;
//! the reader resumes within [`RESUME_BOUND`] each time. Connect times of pairs with a
//! Rust peer must be within 2x of JS -> JS on the same topology (printed, not compared,
//! across a random NAT).

mod net;
mod pairs;

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::integration::{Peer, check, field, number};
use crate::interop::{FIRST, LOG, MORE, full_then_incremental, prepare_js};
use crate::tally::Outcome;
use crate::{Result, netns_available};
use net::{Internet, Site, Sites, with_sites};
use pairs::{Expect, PAIRS, Pair, Place, TWO_NATS};

/// How long a pair expected to pass has for each sync. Across a random NAT a JS writer
/// punches for a second reader only 20 s after its last random punch (hyperdht's
/// `randomPunchInterval`), and a birthday search may take up to 35 s.
const PASS_BOUND: Duration = Duration::from_secs(90);
/// How long a known-boundary pair has for its full sync.
const BOUNDARY_BOUND: Duration = Duration::from_secs(20);
/// How long a reader has to resume after the writer's router lost its state or the
/// writer restarted.
const RESUME_BOUND: Duration = Duration::from_secs(10);
/// How long our reader has to resume after its writer was killed (`kill -9`: no close
/// reaches the reader) and restarted: it notices the silence after three missed 5 s
/// keepalives (`transport::SILENT_KEEPALIVES`), then reconnects through the DHT.
const KILLED_BOUND: Duration = Duration::from_secs(30);
/// The largest ratio of a Rust pair's connect time to JS -> JS's on the same topology.
const SPEED_RATIO: f64 = 2.0;
/// Set to part of a pair's name (`JS -> Rust (two NATs`), only the pairs whose name
/// contains it run (for debugging one pair; the anchors may then not run).
const ONLY: &str = "NOVA_NAT_PAIRS";
/// The writer's swarm identity in the reconnect checks (kept across its restart).
const WRITER_SEED: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// Which implementation a peer process is (also the `udx_swarm` bench row's pairs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    Js,
    Rust,
}

impl Runtime {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Runtime::Js => "JS",
            Runtime::Rust => "Rust",
        }
    }
}

/// The suite (from the host's namespace: it makes its own).
pub(crate) fn run(tmp: &Path) -> Result<Outcome> {
    if !netns_available() {
        return Ok(Outcome::Skipped(
            "the nat suite needs root with `ip` (iproute2) to make network namespaces".into(),
        ));
    }
    prepare_js("the nat suite")?;
    crate::system::ensure_packages("the nat suite's routers", &["iptables", "conntrack"])?;
    let start = Instant::now();
    let internet = Internet::start()?;
    let result = run_pairs(&internet, tmp);
    drop(internet);
    eprintln!("==> nat suite: {:.0} s", start.elapsed().as_secs_f64());
    result
}

/// One run's connect and full-sync times.
pub(crate) type ConnectSync = (Duration, Duration);

/// For `cargo xtask bench` (row `nat_connect_sync`): each two-NAT pair with a Rust peer
/// and the JS -> JS anchor, `runs` times interleaved, on the suite's topology: the
/// pair's name and its connect and full-sync (2,000 entries, reader start to every
/// entry verified) times per run.
pub(crate) fn bench(tmp: &Path, runs: usize) -> Result<Vec<(String, Vec<ConnectSync>)>> {
    prepare_js("the nat bench row")?;
    crate::system::ensure_packages("the nat bench row's routers", &["iptables", "conntrack"])?;
    let pairs: Vec<&Pair> = PAIRS.iter().filter(|p| p.topology == &TWO_NATS).collect();
    let internet = Internet::start()?;
    let mut results: Vec<(String, Vec<ConnectSync>)> =
        pairs.iter().map(|p| (p.name(), Vec::new())).collect();
    let mut n = 0;
    for run in 1..=runs {
        for (i, pair) in pairs.iter().enumerate() {
            n += 1;
            eprintln!("run {run}/{runs}: nat {} (two NATs)", pair.name());
            let dir = tmp.join(format!("{n}"));
            let ran = with_sites(n, pair.topology, |sites| {
                run_pair(&internet, sites, pair, &dir)
            })?;
            match ran {
                Ran::Synced(t) => results[i].1.push((t.connect, t.full)),
                Ran::NoSync(e) => return Err(format!("{}: {e}", pair.name())),
            }
        }
    }
    Ok(results)
}

/// What a pair that synced took.
#[derive(Clone, Copy)]
struct Timings {
    /// Writer start to its READY line (announced).
    announce: Duration,
    /// Reader start to its first data.
    connect: Duration,
    /// The same for the second reader (the incremental sync's, a new process).
    connect_again: Duration,
    /// Reader start to every entry verified: the full sync, then the incremental one.
    full: Duration,
    more: Duration,
}

/// One line of the closing table: a pair and how it ended.
struct Row {
    pair: &'static Pair,
    /// Its timings when it passed as expected; otherwise what happened (`KNOWN
    /// BOUNDARY`, `FAILED`, `UNEXPECTED PASS`).
    result: std::result::Result<Timings, &'static str>,
    /// The reconnect checks' times (after `conntrack -F`, after the writer restarted,
    /// after it was killed and restarted: Rust readers),
    /// when they ran.
    reconnect: Option<std::result::Result<Resumed, ()>>,
}

fn run_pairs(internet: &Internet, tmp: &Path) -> Result<Outcome> {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut runs = 0;
    let only = std::env::var(ONLY).ok();
    for pair in PAIRS {
        let what = format!("{} ({})", pair.name(), pair.topology.name);
        if only
            .as_ref()
            .is_some_and(|only| !what.contains(only.as_str()))
        {
            continue;
        }
        runs += 1;
        let expected = match pair.expect {
            Expect::Pass => "expected to pass",
            Expect::KnownBoundary { .. } => "known boundary",
        };
        eprintln!("==> pair {what}, {expected}");
        let dir = tmp.join(format!("{runs}"));
        let ran = with_sites(runs, pair.topology, |sites| {
            run_pair(internet, sites, pair, &dir)
        });
        let result = judge(pair, ran, &mut failures)?;
        rows.push(Row {
            pair,
            result,
            reconnect: None,
        });
    }
    for row in &mut rows {
        if row.pair.topology != &TWO_NATS || row.result.is_err() {
            continue;
        }
        runs += 1;
        let pair = row.pair;
        let what = format!("reconnect, {} ({})", pair.name(), pair.topology.name);
        eprintln!("==> {what}");
        let dir = tmp.join(format!("{runs}"));
        let result = with_sites(runs, pair.topology, |sites| {
            reconnect(internet, sites, pair, &dir)
        });
        row.reconnect = Some(result.map_err(|e| {
            eprintln!("  FAILED {what}: {e}");
            failures.push(format!("{what}: {e}"));
        }));
    }
    speed(&rows, &mut failures);
    summary(&rows);
    if let Some(only) = only {
        eprintln!("  (only the pairs matching {ONLY}={only:?} ran)");
    }
    if failures.is_empty() {
        Ok(Outcome::Passed)
    } else {
        Err(format!(
            "{} check(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        ))
    }
}

/// Prints how `pair` ran against what is expected of it and adds any mismatch to
/// `failures`; an anchor that fails ends the suite (the topology is wrong).
fn judge(
    pair: &Pair,
    ran: Result<Ran>,
    failures: &mut Vec<String>,
) -> Result<std::result::Result<Timings, &'static str>> {
    let (name, topology) = (pair.name(), pair.topology.name);
    let what = format!("{name} ({topology})");
    match (&pair.expect, ran) {
        (Expect::Pass, Ok(Ran::Synced(t))) => {
            eprintln!(
                "  RESULT {name} | {topology} | announce {} | connect {} | full sync {} | +{MORE} {}",
                secs(t.announce),
                secs(t.connect),
                secs(t.full),
                secs(t.more)
            );
            Ok(Ok(t))
        }
        (Expect::Pass, Ok(Ran::NoSync(e))) => unreachable!("only boundaries end so: {e}"),
        (Expect::Pass, Err(e)) if pair.anchor() => Err(format!(
            "the anchor {what} failed, so the simulated topology is wrong (JS holepunches across these NATs): {e}"
        )),
        (Expect::KnownBoundary { why, .. }, Ok(Ran::NoSync(said))) => {
            eprintln!(
                "  KNOWN BOUNDARY {name} | {topology} | no sync within {}: {said} (known: {why})",
                secs(BOUNDARY_BOUND)
            );
            Ok(Err("KNOWN BOUNDARY"))
        }
        (Expect::KnownBoundary { .. }, Ok(Ran::Synced(t))) => {
            let e = format!(
                "UNEXPECTED PASS: {what} synced {FIRST} entries in {} (connect {}): the boundary moved; make its row in PAIRS (xtask/src/nat.rs) Expect::Pass and update docs/discovery.md",
                secs(t.full),
                secs(t.connect)
            );
            eprintln!("  {e}");
            failures.push(e);
            Ok(Err("UNEXPECTED PASS"))
        }
        (_, Err(e)) => {
            eprintln!("  FAILED {what}: {e}");
            failures.push(format!("{what}: {e}"));
            Ok(Err("FAILED"))
        }
    }
}

/// Pairs with a Rust peer connect within [`SPEED_RATIO`] of JS -> JS on the same topology,
/// each side's connect the better of its two readers' (the full sync's and the
/// incremental one's, two processes): one sample could miss by a lost probe (a CI run
/// once measured Rust -> JS across two NATs at 0.64 s against 0.22 s, then 0.20-0.22 s in
/// every rerun).
/// Across a random NAT the connect time is itself random (a birthday search for a
/// mapped port: JS -> JS measured 1.4 to 10.6 s), so one sample of each is printed there,
/// not compared.
fn speed(rows: &[Row], failures: &mut Vec<String>) {
    let anchor = |topology| {
        rows.iter().find_map(|r| match r.result {
            Ok(t) if r.pair.anchor() && r.pair.topology == topology => Some(t),
            _ => None,
        })
    };
    for row in rows {
        let (Ok(t), false) = (row.result, row.pair.anchor()) else {
            continue;
        };
        let Some(js) = anchor(row.pair.topology) else {
            continue;
        };
        let best = |t: &Timings| t.connect.min(t.connect_again);
        let (ours, theirs) = (best(&t), best(&js));
        let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
        let random = row.pair.topology.random();
        let line = format!(
            "SPEED {} | {} | connect {} vs JS -> JS {} ({ratio:.2}x, {})",
            row.pair.name(),
            row.pair.topology.name,
            secs(ours),
            secs(theirs),
            if random {
                "not compared: random-NAT punching takes a random time".to_string()
            } else {
                format!("limit {SPEED_RATIO}x")
            }
        );
        eprintln!("  {line}");
        if ratio > SPEED_RATIO && !random {
            failures.push(line);
        }
    }
}

fn summary(rows: &[Row]) {
    eprintln!(
        "==> nat suite pairs (connect: reader start to first data; syncs: reader start to every entry verified; reconnect: reader resumed after conntrack -F / after the writer restarted / after kill -9 and restart, Rust readers)"
    );
    eprintln!(
        "  {:<13} {:<51} {:<15} {:>8} {:>10} {:>8}  reconnect",
        "pair", "topology", "result", "connect", "full sync", "+1,000"
    );
    for row in rows {
        let times = match row.result {
            Ok(t) => format!(
                "{:>8} {:>10} {:>8}",
                secs(t.connect),
                secs(t.full),
                secs(t.more)
            ),
            Err("KNOWN BOUNDARY") => format!("{:>8}", format!("> {}", secs(BOUNDARY_BOUND))),
            Err(_) => String::new(),
        };
        let reconnect = match row.reconnect {
            Some(Ok(r)) => match r.killed {
                Some(killed) => format!(
                    "  {} / {} / {}",
                    secs(r.flushed),
                    secs(r.restarted),
                    secs(killed)
                ),
                None => format!("  {} / {}", secs(r.flushed), secs(r.restarted)),
            },
            Some(Err(())) => "  FAILED".into(),
            None => String::new(),
        };
        let line = format!(
            "  {:<13} {:<51} {:<15} {times:<28}{reconnect}",
            row.pair.name(),
            row.pair.topology.name,
            row.result.err().unwrap_or("passed"),
        );
        eprintln!("{}", line.trim_end());
    }
    if rows
        .iter()
        .any(|r| r.result.is_ok() && r.pair.topology.random())
    {
        eprintln!(
            "  (across a random NAT the +1,000 reader waits out the writer's 20 s between random punches: hyperdht's randomPunchInterval, which our swarm keeps too)"
        );
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// How a pair ran (when nothing failed around the reader).
enum Ran {
    Synced(Timings),
    /// A known-boundary pair's reader did not sync within [`BOUNDARY_BOUND`] (what it said).
    NoSync(String),
}

/// One pair on fresh sites. A pair expected to pass syncs or fails; a known-boundary
/// pair gets one bounded full sync.
fn run_pair(internet: &Internet, sites: &Sites, pair: &Pair, dir: &Path) -> Result<Ran> {
    let started = Instant::now();
    let open = pair.topology.writer == Place::Open;
    let (mut writer, key) = spawn_writer(
        &sites.writer,
        pair.writer,
        dir,
        FIRST,
        internet,
        (None, open),
    )?;
    let tapped = writer.tapped();
    let announce = started.elapsed();
    let rdir = dir.join("reader");
    let bound = match pair.expect {
        Expect::Pass => PASS_BOUND,
        Expect::KnownBoundary { .. } => BOUNDARY_BOUND,
    };
    let reads = RefCell::new(Vec::new());
    let read = |until: u64| {
        let reader = spawn_reader(&sites.reader, pair, &rdir, &key, internet, until)?;
        let r = read_run(&reader, until, bound, &mut Vec::new())?;
        reader.wait()?;
        reads.borrow_mut().push(r);
        Ok((r.held, r.fetched))
    };
    if let Expect::KnownBoundary { says, .. } = pair.expect {
        let reader = spawn_reader(&sites.reader, pair, &rdir, &key, internet, FIRST)?;
        let mut said = Vec::new();
        let ran = read_run(&reader, FIRST, bound, &mut said);
        drop(reader);
        return match ran {
            Ok(r) => Ok(Ran::Synced(Timings {
                announce,
                connect: r.connect,
                connect_again: r.connect,
                full: r.took,
                more: Duration::ZERO,
            })),
            Err(e) if pair.reader == Runtime::Rust => {
                match said.iter().find(|line| line.contains(says)) {
                    Some(line) => Ok(Ran::NoSync(line.clone())),
                    None => Err(format!(
                        "no sync (as known), but the reader did not say why: no DIAL-FAILED line containing {says:?} (it said {said:?}; {e})"
                    )),
                }
            }
            Err(e) => Ok(Ran::NoSync(e)),
        };
    }
    let what = format!("{} ({})", pair.name(), pair.topology.name);
    full_then_incremental(&mut writer, &what, read)?;
    writer.wait()?;
    if pair.tapped() {
        check(
            "our writer's connection ran on its DHT socket, through the tap",
            tapped.load(std::sync::atomic::Ordering::Relaxed),
            "the writer printed no TAPPED line".into(),
        )?;
    }
    let reads = reads.borrow();
    Ok(Ran::Synced(Timings {
        announce,
        connect: reads[0].connect,
        connect_again: reads[1].connect,
        full: reads[0].took,
        more: reads[1].took,
    }))
}

/// How long the reader took to resume in the reconnect checks.
#[derive(Clone, Copy)]
struct Resumed {
    flushed: Duration,
    restarted: Duration,
    /// After `kill -9` and a restart (our readers only).
    killed: Option<Duration>,
}

/// The writer's router drops its state (`conntrack -F`) and the writer appends; then the
/// writer restarts (same store, same swarm identity: `NOVA_SWARM_SEED`) with more
/// entries; then (our readers) it is killed (`kill -9`) and restarted with more. The
/// one reader, running all along, resumes within [`RESUME_BOUND`] (after a kill,
/// [`KILLED_BOUND`]) each time and ends with every entry, each fetched once.
fn reconnect(internet: &Internet, sites: &Sites, pair: &Pair, dir: &Path) -> Result<Resumed> {
    let all = FIRST + 2 * MORE;
    let kill = pair.reader == Runtime::Rust;
    let last = if kill { all + MORE } else { all };
    let seed = Some(WRITER_SEED);
    let (mut writer, key) = spawn_writer(
        &sites.writer,
        pair.writer,
        dir,
        FIRST,
        internet,
        (seed, false),
    )?;
    let rdir = dir.join("reader");
    let reader = spawn_reader(&sites.reader, pair, &rdir, &key, internet, last)?;
    progress_to(&reader, FIRST, PASS_BOUND)?;
    let flushed = sites.writer.flush_conntrack()?;
    let t = Instant::now();
    writer.send(&format!("append {MORE}"))?;
    writer.expect(&format!("LENGTH {}", FIRST + MORE))?;
    progress_to(&reader, FIRST + MORE, RESUME_BOUND)?;
    let after_flush = t.elapsed();
    eprintln!(
        "  RESUMED {} | {} | after conntrack -F in the writer's router (it held {flushed} entries): the {MORE} new entries in {}",
        pair.name(),
        pair.topology.name,
        secs(after_flush)
    );
    check(
        "the writer's router had connection state to drop",
        flushed > 0,
        "conntrack -F deleted nothing".into(),
    )?;
    let t = Instant::now();
    writer.wait()?;
    let (mut writer, _) = spawn_writer(
        &sites.writer,
        pair.writer,
        dir,
        all,
        internet,
        (seed, false),
    )?;
    let back = t.elapsed();
    let t = Instant::now();
    progress_to(&reader, all, RESUME_BOUND)?;
    let after_restart = t.elapsed();
    eprintln!(
        "  RESUMED {} | {} | after the writer restarted (down {}): every entry to {all} in {}",
        pair.name(),
        pair.topology.name,
        secs(back),
        secs(after_restart)
    );
    let mut killed = None;
    if kill {
        // Idle for a moment first (keepalives flow, as on a quiet connection).
        std::thread::sleep(Duration::from_secs(6));
        writer.kill()?;
        let t = Instant::now();
        let (restarted, _) = spawn_writer(
            &sites.writer,
            pair.writer,
            dir,
            last,
            internet,
            (seed, false),
        )?;
        writer = restarted;
        progress_to(&reader, last, KILLED_BOUND)?;
        killed = Some(t.elapsed());
        eprintln!(
            "  RESUMED {} | {} | after the writer was killed (kill -9) and restarted: every entry to {last} in {}",
            pair.name(),
            pair.topology.name,
            secs(t.elapsed())
        );
    }
    reader.expect_within(&format!("VERIFIED {last}"), RESUME_BOUND)?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    reader.wait()?;
    writer.wait()?;
    check(
        &format!(
            "{}: the reader resumed after each and fetched each entry once",
            pair.name()
        ),
        fetched == last,
        format!("fetched {fetched} of {last}"),
    )?;
    Ok(Resumed {
        flushed: after_flush,
        restarted: after_restart,
        killed,
    })
}

/// Waits for the reader's PROGRESS line at `at` or beyond.
fn progress_to(reader: &Peer, at: u64, within: Duration) -> Result {
    let start = Instant::now();
    loop {
        let left = within.saturating_sub(start.elapsed());
        let line = reader.expect_within("PROGRESS", left)?;
        if number(&line, 1)? >= at {
            return Ok(());
        }
    }
}

#[derive(Clone, Copy)]
struct Read {
    held: u64,
    fetched: u64,
    /// Reader start to its first connection (`CONNECTED`), else to its first PROGRESS
    /// line past what it held.
    connect: Duration,
    /// Reader start to VERIFIED.
    took: Duration,
}

/// Follows a reader to `VERIFIED until` within `bound` (from now).
/// `DIAL-FAILED` lines the reader prints on the way go to `said`.
fn read_run(reader: &Peer, until: u64, bound: Duration, said: &mut Vec<String>) -> Result<Read> {
    let start = Instant::now();
    let left = || bound.saturating_sub(start.elapsed());
    let held = number(&reader.expect_within("START", left())?, 1)?;
    let mut connect = None;
    loop {
        let line = reader.expect_any_within(
            &["CONNECTED", "PROGRESS", "VERIFIED", "DIAL-FAILED"],
            left(),
        )?;
        if line.starts_with("DIAL-FAILED") {
            said.push(line);
            continue;
        }
        if line.starts_with("CONNECTED") {
            connect.get_or_insert(start.elapsed());
            continue;
        }
        if line.starts_with("VERIFIED") {
            if number(&line, 1)? != until {
                return Err(format!("expected VERIFIED {until}, got {line:?}"));
            }
            break;
        }
        if number(&line, 1)? > held {
            connect.get_or_insert(start.elapsed());
        }
    }
    let took = start.elapsed();
    let fetched = number(
        &reader.expect_within("FETCHED", left().max(RESUME_BOUND))?,
        1,
    )?;
    Ok(Read {
        held,
        fetched,
        connect: connect.unwrap_or(took),
        took,
    })
}

fn spawn_writer(
    site: &Site,
    runtime: Runtime,
    dir: &Path,
    count: u64,
    internet: &Internet,
    (seed, open): (Option<&str>, bool),
) -> Result<(Peer, String)> {
    let wdir = dir.join("writer").display().to_string();
    let count = count.to_string();
    let bootstrap = internet.bootstrap.as_str();
    let (writer, key_field) = match runtime {
        Runtime::Js => {
            let mut cmd = site.node(&["peer.mjs", "write", "10", &wdir, &count, bootstrap]);
            if let Some(seed) = seed {
                cmd.env("NOVA_SWARM_SEED", seed);
            }
            if open {
                cmd.env("NOVA_FIREWALLED", "false");
            }
            (Peer::start("js-writer", cmd)?, 1)
        }
        Runtime::Rust => {
            let swarm = format!("swarm:{bootstrap}");
            let mut args = vec!["write", &wdir, LOG, &count, &swarm];
            if open {
                args.extend(["--firewalled", "false"]);
            }
            let mut cmd = site.rust(&args);
            if let Some(seed) = seed {
                cmd.env("NOVA_SWARM_SEED", seed);
            }
            (Peer::start("rust-writer", cmd)?, 2)
        }
    };
    let key = field(&writer.expect("READY")?, key_field)?;
    Ok((writer, key))
}

fn spawn_reader(
    site: &Site,
    pair: &Pair,
    dir: &Path,
    key: &str,
    internet: &Internet,
    until: u64,
) -> Result<Peer> {
    let rdir = dir.display().to_string();
    let until = until.to_string();
    let bootstrap = internet.bootstrap.as_str();
    let open = pair.topology.reader == Place::Open;
    match pair.reader {
        Runtime::Js => {
            let mut cmd = site.node(&["peer.mjs", "read", "10", &rdir, key, &until, bootstrap]);
            if open {
                cmd.env("NOVA_FIREWALLED", "false");
            }
            Peer::start("js-reader", cmd)
        }
        Runtime::Rust => {
            let swarm = format!("swarm:{bootstrap}");
            let mut args = vec!["read", &rdir, LOG, key, &swarm, &until];
            if open {
                args.extend(["--firewalled", "false"]);
            }
            Peer::start("rust-reader", site.rust(&args))
        }
    }
}
