//! `cargo xtask test-integration js`: Rust and JS peers on one HyperDHT testnet.
//!
//! The JS side is `js/interop` (hyperswarm 4.17.2, @hyperswarm/testnet 3.1.4, hyperdht
//! 6.32.0, hypercore 10.31.12 and 11.39.5, pinned by its lockfile and installed with
//! `npm ci`); the Rust side is `crates/manager/examples/peer.rs` in swarm mode. The
//! peers find each other through a JS testnet, inside a network namespace that has only
//! `lo` (this process re-runs itself under `unshare --net`).
//!
//! Checks, each full sync then +1,000 entries, byte-identical (every entry is compared):
//! - Rust legacy writer → JS reader, hypercore 10 and 11 (default mode: it follows a
//!   legacy core as it is);
//! - Rust v1 writer (`--format v1`, a manifest core) → JS hypercore 11 default reader;
//! - JS writer → Rust reader, hypercore 10, 11 in `compat` mode and 11 default (a
//!   manifest core: the key is the manifest's hash; our replica asks for the manifest);
//! - on a DHT of one node of ours (`peer bootstrap 127.0.0.1:0 1`, as the demo): Rust
//!   v1 writer → JS 11 default reader, and JS hypercore 10 and 11 default writers → Rust
//!   reader (our client dials a JS server by JS's LAN rule there);
//! - direct mode (no DHT) over TCP, both ways: our `listen` / `connect` against JS
//!   `socket.pipe(core.replicate(isInitiator)).pipe(socket)`, with hypercore 10 (legacy)
//!   and hypercore 11 default (manifest cores, both ways, full then +1,000);
//! - forks (`interop_forks.rs`): our writer (legacy; v1 for 11) truncates while a JS
//!   hypercore 10 / 11 reader follows it live over TCP, and a JS 10, 11-compat and 11
//!   writer truncates while our reader follows;
//! - seek (`interop_seek.rs`): a JS 10 / 11 sparse reader seeks a byte of our log, and
//!   our sparse reader one of a JS log, with seek proofs only (no block fetched);
//! - block encryption (`interop_encryption.rs`): JS 10.31 keyed writer → our keyed
//!   reader and our seeder without the key → JS keyed reader; our keyed writer → JS 10
//!   and 11 keyed readers; keyed seeks (padding 8) both ways; the encrypted directories
//!   opened with the key by the other runtime; manifest cores with hypercore 11;
//! - boundary, kept and marked: JS hypercore 10 cannot read our v1 core (its manifest
//!   codec knows version 0 only), which is why new logs are legacy by default;
//! - same storage both ways: JS hypercore 10.31.12 reads the directory our manager
//!   wrote and appends to it with the log's key pair (from `keys/`), our core reopens it
//!   and verifies every entry, JS's included; our reader reads the directory JS wrote;
//! - same store: JS corestore 6.18.4 (`js/golden`, pinned there for the golden vectors)
//!   opens our `corestore/` directory with the primary key from our `keys/primary-key`
//!   given as `primaryKey`, derives our log's key and reads every entry
//!   (`js/golden/open-store.mjs`); then our core reopens the log JS opened writable.

use std::path::Path;
use std::process::Command;

use crate::integration::{Peer, check, field, number};
use crate::system::npm_ci;
use crate::tally::Outcome;
use crate::{Result, have, root, run_step};

pub(crate) const LOG: &str = "notes";
/// Entries of a full sync; then [`MORE`] are appended for the incremental one.
pub(crate) const FIRST: u64 = 2_000;
pub(crate) const MORE: u64 = 1_000;

pub(crate) fn js_dir() -> std::path::PathBuf {
    root().join("js").join("interop")
}

fn golden_dir() -> std::path::PathBuf {
    root().join("js").join("golden")
}

pub(crate) fn node(name: &'static str, args: &[&str]) -> Result<Peer> {
    node_with(name, args, &[])
}

pub(crate) fn node_with(name: &'static str, args: &[&str], env: &[(&str, &str)]) -> Result<Peer> {
    let mut cmd = Command::new("node");
    cmd.args(args)
        .envs(env.iter().copied())
        .current_dir(js_dir());
    Peer::start(name, cmd)
}

pub(crate) fn rust_peer(name: &'static str, args: &[&str]) -> Result<Peer> {
    rust_peer_with(name, args, &[])
}

pub(crate) fn rust_peer_with(
    name: &'static str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Peer> {
    let mut cmd = Command::new(crate::integration::example("peer"));
    cmd.args(args).envs(env.iter().copied());
    Peer::start(name, cmd)
}

/// Entries of each large transfer, of [`LARGE_BYTES`] each (50 MiB).
const LARGE: u64 = 50_000;
const LARGE_BYTES: &str = "1024";

/// 50,000 entries of 1 KiB each way over the swarm, on our own UDX stream (our peers
/// print `LIBUDX` for a connection on libudx's, which fails the step): a Rust writer to
/// a JS hypercore 11 reader, then a JS hypercore 11 writer to our reader. The reader
/// compares every byte of every entry (`NOVA_ENTRY_BYTES`: both peers make entry i the
/// same way) and fetches each once.
fn large_transfers_both_ways(tmp: &Path, bootstrap: &str) -> Result {
    let env = [("NOVA_ENTRY_BYTES", LARGE_BYTES)];
    let n = LARGE.to_string();
    let swarm = format!("swarm:{bootstrap}");
    eprintln!("--> large transfer: Rust v1 writer -> JS hypercore 11 reader, {LARGE} x 1 KiB");
    let wdir = path(&tmp.join("large-rust-writer"));
    let writer = rust_peer_with(
        "rust-writer",
        &["--format", "v1", "write", &wdir, LOG, &n, &swarm],
        &env,
    )?;
    let key = field(&writer.expect("READY")?, 2)?;
    let started = std::time::Instant::now();
    let reader = node_with(
        "js-reader",
        &[
            "peer.mjs",
            "read",
            "11",
            &path(&tmp.join("large-js-reader")),
            &key,
            &n,
            bootstrap,
        ],
        &env,
    )?;
    let (held, fetched) = read_run(reader, LARGE)?;
    check(
        &format!(
            "JS hypercore 11 reader from the Rust writer: all {LARGE} entries of 1 KiB, every byte compared ({:.1} s)",
            started.elapsed().as_secs_f64()
        ),
        held == 0 && fetched == LARGE,
        format!("held {held}, fetched {fetched}"),
    )?;
    writer.wait()?;

    eprintln!("--> large transfer: JS hypercore 11 writer -> Rust reader, {LARGE} x 1 KiB");
    let writer = node_with(
        "js-writer",
        &[
            "peer.mjs",
            "write",
            "11",
            &path(&tmp.join("large-js-writer")),
            &n,
            bootstrap,
        ],
        &env,
    )?;
    let key = field(&writer.expect("READY")?, 1)?;
    let started = std::time::Instant::now();
    let reader = rust_peer_with(
        "rust-reader",
        &[
            "read",
            &path(&tmp.join("large-rust-reader")),
            LOG,
            &key,
            &swarm,
            &n,
        ],
        &env,
    )?;
    let (held, fetched) = read_run(reader, LARGE)?;
    check(
        &format!(
            "Rust reader from the JS hypercore 11 writer: all {LARGE} entries of 1 KiB, every byte compared ({:.1} s)",
            started.elapsed().as_secs_f64()
        ),
        held == 0 && fetched == LARGE,
        format!("held {held}, fetched {fetched}"),
    )?;
    writer.wait()
}

/// Node.js, npm and iproute2 (installed when missing), and js/interop's packages
/// (`npm ci`), for `suite`.
pub(crate) fn prepare_js(suite: &str) -> Result {
    let missing: Vec<&str> = [("node", "nodejs"), ("npm", "npm"), ("ip", "iproute2")]
        .iter()
        .filter(|(program, _)| !have(program, "--version") && !have(program, "-V"))
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        crate::system::ensure_packages(suite, &missing)?;
    }
    npm_ci(
        &js_dir(),
        "js/interop: pinned hyperswarm, hyperdht, hypercore 10 and 11",
    )
}

/// Outside the namespace: install the JS packages, then re-run inside one.
pub(crate) fn prepare_and_enter() -> Result<Outcome> {
    prepare_js("the js suite")?;
    npm_ci(&golden_dir(), "js/golden: pinned corestore 6.18.4")?;
    if !crate::netns_available() {
        return Ok(Outcome::Skipped(
            "the js suite needs root with `unshare` and `ip` (iproute2) to run in a loopback-only network namespace".into(),
        ));
    }
    crate::integration::enter_netns("js")?;
    Ok(Outcome::Passed)
}

/// Inside the namespace: the checks.
pub(crate) fn run_inside(tmp: &Path) -> Result {
    run_step(
        "bring lo up",
        Command::new("ip").args(["link", "set", "lo", "up"]),
    )?;
    let testnet = node("testnet", &["testnet.mjs"])?;
    let bootstrap = field(&testnet.expect("BOOTSTRAP")?, 1)?;
    let rust_dir = rust_writer_js_reader(tmp, &bootstrap, "10", "legacy")?;
    rust_writer_js_reader(tmp, &bootstrap, "11", "legacy")?;
    rust_writer_js_reader(tmp, &bootstrap, "11", "v1")?;
    let (js_dir_10, js_key_10) = js_writer_rust_reader(tmp, &bootstrap, "10")?;
    js_writer_rust_reader(tmp, &bootstrap, "11-compat")?;
    js_writer_rust_reader(tmp, &bootstrap, "11")?;
    rust_reader_follows_a_restarted_js_writer(tmp, &bootstrap)?;
    large_transfers_both_ways(tmp, &bootstrap)?;
    direct_tcp_both_ways(tmp)?;
    crate::interop_forks::our_writer_truncates_js_follows(tmp, "10", "legacy")?;
    crate::interop_forks::our_writer_truncates_js_follows(tmp, "11", "legacy")?;
    crate::interop_forks::our_writer_truncates_js_follows(tmp, "11", "v1")?;
    for js in ["10", "11-compat", "11"] {
        crate::interop_forks::js_writer_truncates_rust_follows(tmp, js)?;
    }
    crate::interop_seek::seek_both_ways(tmp, "10")?;
    crate::interop_seek::seek_both_ways(tmp, "11")?;
    crate::interop_encryption::encrypted_logs_both_ways(tmp)?;
    direct_tcp_manifest_cores_both_ways(tmp)?;
    one_node_dht_of_ours(&tmp.join("one-node"))?;
    let store = tmp.join("rust-writer-10");
    same_storage_both_ways(&store, &rust_dir, (&js_dir_10, &js_key_10))?;
    corestore_opens_our_store(&path(&store), &rust_dir.1)?;
    let n = (FIRST + MORE + 1).to_string();
    let ours = rust_peer("rust-check", &["check", &rust_dir.0, &rust_dir.1, &n])?;
    ours.expect(&format!("VERIFIED {n}"))?;
    ours.wait()?;
    eprintln!(
        "  ok: our core reopens the log after JS corestore opened it writable, all {n} entries"
    );
    testnet.wait()
}

/// On a DHT of one node hosted by our `BootstrapNode` (what the demo starts), where no
/// peer learns its own address: a Rust v1 writer is followed by a JS 11 default reader,
/// and our reader follows a JS hypercore 10 writer and a JS 11 default writer (each
/// full, then exactly the new entries, every entry compared). The JS writers take their
/// LAN path there and wait to be dialled; our reader dials them by the same rule as JS's
/// client (docs/discovery.md, "One-node DHT").
fn one_node_dht_of_ours(tmp: &Path) -> Result {
    std::fs::create_dir_all(tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    let node = rust_peer("one-node-dht", &["bootstrap", "127.0.0.1:0", "1"])?;
    let bootstrap = field(&node.expect("BOOTSTRAP")?, 1)?;
    eprintln!("--> one-node DHT of ours at {bootstrap}");
    rust_writer_js_reader(tmp, &bootstrap, "11", "v1")?;
    js_writer_rust_reader(tmp, &bootstrap, "10")?;
    js_writer_rust_reader(tmp, &bootstrap, "11")?;
    node.wait()
}

pub(crate) fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A reader run to `until`: (blocks held at start, blocks fetched this run).
fn read_run(reader: Peer, until: u64) -> Result<(u64, u64)> {
    let held = number(&reader.expect("START")?, 1)?;
    reader.expect(&format!("VERIFIED {until}"))?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    reader.wait()?;
    Ok((held, fetched))
}

/// Full sync of `FIRST` entries, then `MORE` appended by `writer`: checks that the first
/// run fetches everything and the second exactly the new entries.
pub(crate) fn full_then_incremental(
    writer: &mut Peer,
    what: &str,
    read: impl Fn(u64) -> Result<(u64, u64)>,
) -> Result {
    let (held, fetched) = read(FIRST)?;
    check(
        &format!("{what}: all {FIRST} entries"),
        held == 0 && fetched == FIRST,
        format!("held {held}, fetched {fetched}"),
    )?;
    writer.send(&format!("append {MORE}"))?;
    writer.expect(&format!("LENGTH {}", FIRST + MORE))?;
    let (held, fetched) = read(FIRST + MORE)?;
    check(
        &format!("{what}: then exactly the {MORE} new entries"),
        held == FIRST && fetched == MORE,
        format!("held {held}, fetched {fetched}"),
    )
}

/// A Rust writer creating its log in `format` (`legacy` or `v1`, the example's
/// `--format`) for a JS hypercore `js` reader. Returns (the writer's core directory,
/// its key).
fn rust_writer_js_reader(
    tmp: &Path,
    bootstrap: &str,
    js: &str,
    format: &str,
) -> Result<(String, String)> {
    eprintln!("--> Rust {format} writer, JS hypercore {js} reader");
    let swarm = format!("swarm:{bootstrap}");
    // The legacy writer keeps its historical directory name (the storage checks use it).
    let suffix = if format == "legacy" {
        js.to_string()
    } else {
        format!("{js}-{format}")
    };
    let wdir = path(&tmp.join(format!("rust-writer-{suffix}")));
    let mut writer = rust_peer(
        "rust-writer",
        &[
            "--format",
            format,
            "write",
            &wdir,
            LOG,
            &FIRST.to_string(),
            &swarm,
        ],
    )?;
    let key = field(&writer.expect("READY")?, 2)?;
    let core_dir = field(&writer.expect("DIR")?, 1)?;
    let rdir = path(&tmp.join(format!("js-reader-{suffix}")));
    let read = |until: u64| {
        let reader = node(
            "js-reader",
            &[
                "peer.mjs",
                "read",
                js,
                &rdir,
                &key,
                &until.to_string(),
                bootstrap,
            ],
        )?;
        read_run(reader, until)
    };
    full_then_incremental(
        &mut writer,
        &format!("JS hypercore {js} reader from the Rust {format} writer"),
        read,
    )?;
    // A sparse JS reader (`get` of scattered entries, no download) learns what we hold
    // from our Range announcements; we send no answers to its `Want` messages.
    let indices = [FIRST + MORE - 1, 0, 1500, 777, FIRST];
    let list: Vec<String> = indices.iter().map(ToString::to_string).collect();
    let sparse = node(
        "js-sparse-reader",
        &[
            "peer.mjs",
            "read",
            js,
            &path(&tmp.join(format!("js-sparse-reader-{suffix}"))),
            &key,
            &format!("sparse:{}", list.join(",")),
            bootstrap,
        ],
    )?;
    sparse.expect(&format!("VERIFIED {}", indices.len()))?;
    let fetched = number(&sparse.expect("FETCHED")?, 1)?;
    sparse.wait()?;
    check(
        &format!(
            "sparse JS hypercore {js} reader from the Rust {format} writer: {} scattered entries, each fetched once",
            indices.len()
        ),
        fetched == indices.len() as u64,
        format!("fetched {fetched}"),
    )?;
    writer.wait()?;
    Ok((core_dir, key))
}

/// Returns (the JS writer's directory, its key).
fn js_writer_rust_reader(tmp: &Path, bootstrap: &str, js: &str) -> Result<(String, String)> {
    eprintln!("--> JS hypercore {js} writer, Rust reader");
    let swarm = format!("swarm:{bootstrap}");
    let wdir = path(&tmp.join(format!("js-writer-{js}")));
    let mut writer = node(
        "js-writer",
        &[
            "peer.mjs",
            "write",
            js,
            &wdir,
            &FIRST.to_string(),
            bootstrap,
        ],
    )?;
    let key = field(&writer.expect("READY")?, 1)?;
    let rdir = path(&tmp.join(format!("rust-reader-{js}")));
    let read = |until: u64| {
        let reader = rust_peer(
            "rust-reader",
            &["read", &rdir, LOG, &key, &swarm, &until.to_string()],
        )?;
        read_run(reader, until)
    };
    full_then_incremental(
        &mut writer,
        &format!("Rust reader from the JS hypercore {js} writer"),
        read,
    )?;
    // A sparse Rust reader (reads that wait, nothing else): only the entries it reads
    // travel, counted by the JS writer (its `upload` events) and by our reader.
    let indices = [FIRST + MORE - 1, 0, 1500, 777, FIRST];
    let list: Vec<String> = indices.iter().map(ToString::to_string).collect();
    writer.send("uploads")?;
    let before = number(&writer.expect("UPLOADED")?, 1)?;
    let sparse = rust_peer(
        "rust-sparse-reader",
        &[
            "read",
            &path(&tmp.join(format!("rust-sparse-reader-{js}"))),
            LOG,
            &key,
            &swarm,
            &format!("sparse:{}", list.join(",")),
        ],
    )?;
    sparse.expect(&format!("VERIFIED {}", indices.len()))?;
    let fetched = number(&sparse.expect("FETCHED")?, 1)?;
    let held = number(&sparse.expect("HELD")?, 1)?;
    sparse.wait()?;
    writer.send("uploads")?;
    let sent = number(&writer.expect("UPLOADED")?, 1)? - before;
    let n = indices.len() as u64;
    check(
        &format!(
            "sparse Rust reader from the JS hypercore {js} writer: {n} scattered entries read, only they travel (JS sent {sent}, we received {fetched} and hold {held})"
        ),
        sent == n && fetched == n && held == n,
        format!("JS sent {sent}, we received {fetched}, we hold {held}"),
    )?;
    writer.wait()?;
    Ok((wdir, key))
}

/// The JS writer goes away and comes back (same log, a new swarm identity, more
/// entries) while the Rust reader keeps running: the reader reconnects by itself
/// (peeroxide's swarm would not, for 10 minutes: docs/discovery.md) and gets the rest.
fn rust_reader_follows_a_restarted_js_writer(tmp: &Path, bootstrap: &str) -> Result {
    eprintln!("--> JS writer restarts while the Rust reader runs");
    let swarm = format!("swarm:{bootstrap}");
    let wdir = path(&tmp.join("js-writer-restarts"));
    let writer = node(
        "js-writer",
        &[
            "peer.mjs",
            "write",
            "10",
            &wdir,
            &FIRST.to_string(),
            bootstrap,
        ],
    )?;
    let key = field(&writer.expect("READY")?, 1)?;
    let all = (FIRST + MORE).to_string();
    let reader = rust_peer(
        "rust-reader",
        &[
            "read",
            &path(&tmp.join("rust-reader-restarts")),
            LOG,
            &key,
            &swarm,
            &all,
        ],
    )?;
    loop {
        if number(&reader.expect("PROGRESS")?, 1)? >= FIRST {
            break;
        }
    }
    // Gone (its swarm destroyed: the connection ends), then back with MORE entries.
    writer.wait()?;
    let writer = node(
        "js-writer",
        &["peer.mjs", "write", "10", &wdir, &all, bootstrap],
    )?;
    writer.expect("READY")?;
    reader.expect(&format!("VERIFIED {all}"))?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    reader.wait()?;
    writer.wait()?;
    check(
        "the running Rust reader reconnects to the restarted JS writer and gets the new entries, each once",
        fetched == FIRST + MORE,
        format!("fetched {fetched} in all"),
    )
}

/// Direct TCP, no DHT, with manifest cores both ways: our v1 writer's listener and a
/// JS hypercore 11 default reader dialling it; a JS hypercore 11 default writer's
/// listener and our reader connecting. Each full, then exactly +1,000.
fn direct_tcp_manifest_cores_both_ways(tmp: &Path) -> Result {
    eprintln!(
        "--> direct TCP, manifest cores: Rust v1 listen -> JS 11 dial, JS 11 listen -> Rust connect"
    );
    let mut writer = rust_peer(
        "rust-writer",
        &[
            "--format",
            "v1",
            "write",
            &path(&tmp.join("tcp-rust-writer-v1")),
            LOG,
            &FIRST.to_string(),
            "127.0.0.1:0",
        ],
    )?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let rdir = path(&tmp.join("tcp-js-reader-11"));
    let read = |until: u64| {
        let reader = node(
            "js-reader",
            &[
                "peer.mjs",
                "read-tcp",
                "11",
                &rdir,
                &key,
                &until.to_string(),
                &addr,
            ],
        )?;
        read_run(reader, until)
    };
    full_then_incremental(
        &mut writer,
        "JS hypercore 11 reader over TCP from our v1 listener",
        read,
    )?;
    // JS hypercore 10 has no manifest v1 (its codec takes version 0 only): it cannot
    // read a v1 core. Kept as a boundary check: it fails the day that changes.
    let probe = node(
        "js-reader",
        &[
            "peer.mjs",
            "read-tcp",
            "10",
            &path(&tmp.join("tcp-js-reader-10-of-v1")),
            &key,
            "probe:5000",
            &addr,
        ],
    )?;
    let line = probe.expect("PROBE")?;
    probe.wait()?;
    check(
        "boundary: JS hypercore 10 cannot read our v1 core (the reason we write legacy by default)",
        !line.starts_with("PROBE ok"),
        format!("JS hypercore 10 read a v1 core ({line}): update docs/discovery.md"),
    )?;
    writer.wait()?;
    let mut writer = node(
        "js-writer",
        &[
            "peer.mjs",
            "write-tcp",
            "11",
            &path(&tmp.join("tcp-js-writer-11")),
            &FIRST.to_string(),
        ],
    )?;
    let ready = writer.expect("READY")?;
    let (key, addr) = (field(&ready, 1)?, field(&ready, 2)?);
    let rdir = path(&tmp.join("tcp-rust-reader-11"));
    let read = |until: u64| {
        let reader = rust_peer(
            "rust-reader",
            &["read", &rdir, LOG, &key, &addr, &until.to_string()],
        )?;
        read_run(reader, until)
    };
    full_then_incremental(
        &mut writer,
        "our reader over TCP from a JS hypercore 11 (manifest core) listener",
        read,
    )?;
    writer.wait()
}

fn direct_tcp_both_ways(tmp: &Path) -> Result {
    eprintln!("--> direct TCP (no DHT): Rust listen -> JS dial, JS listen -> Rust connect");
    let n = FIRST.to_string();
    let writer = rust_peer(
        "rust-writer",
        &[
            "write",
            &path(&tmp.join("tcp-rust-writer")),
            LOG,
            &n,
            "127.0.0.1:0",
        ],
    )?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let reader = node(
        "js-reader",
        &[
            "peer.mjs",
            "read-tcp",
            "10",
            &path(&tmp.join("tcp-js-reader")),
            &key,
            &n,
            &addr,
        ],
    )?;
    let (_, fetched) = read_run(reader, FIRST)?;
    writer.wait()?;
    check(
        "JS hypercore 10 fetched every entry from our TCP listener",
        fetched == FIRST,
        format!("fetched {fetched}"),
    )?;
    let writer = node(
        "js-writer",
        &[
            "peer.mjs",
            "write-tcp",
            "10",
            &path(&tmp.join("tcp-js-writer")),
            &n,
        ],
    )?;
    let ready = writer.expect("READY")?;
    let (key, addr) = (field(&ready, 1)?, field(&ready, 2)?);
    let reader = rust_peer(
        "rust-reader",
        &[
            "read",
            &path(&tmp.join("tcp-rust-reader")),
            LOG,
            &key,
            &addr,
            &n,
        ],
    )?;
    let (_, fetched) = read_run(reader, FIRST)?;
    writer.wait()?;
    check(
        "our connect fetched every entry from a JS TCP listener",
        fetched == FIRST,
        format!("fetched {fetched}"),
    )
}

fn same_storage_both_ways(store: &Path, rust: &(String, String), js: (&str, &str)) -> Result {
    eprintln!("--> same storage both ways (hypercore 10.31.12 files)");
    let n = (FIRST + MORE).to_string();
    // The log's key pair as JS takes it (libsodium layout: seed || public key), from the
    // store's `keys/` (our oplog header holds no secret).
    let secret = std::fs::read(store.join("keys").join(format!("{LOG}.key")))
        .map_err(|e| format!("read the writer's key file: {e}"))?;
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let dump = node(
        "js-dump",
        &["peer.mjs", "dump", "10", &rust.0, &rust.1, &n, &secret],
    )?;
    dump.expect(&format!("VERIFIED {n}"))?;
    let appended = (FIRST + MORE + 1).to_string();
    dump.expect(&format!("APPENDED {appended}"))?;
    dump.wait()?;
    eprintln!(
        "  ok: JS hypercore 10.31.12 opens and reads the directory our manager wrote, and appends with the key pair"
    );
    let ours = rust_peer("rust-check", &["check", &rust.0, &rust.1, &appended])?;
    ours.expect(&format!("VERIFIED {appended}"))?;
    ours.wait()?;
    eprintln!(
        "  ok: our core opens that directory again and verifies all {appended} entries, JS's included"
    );
    let ours = rust_peer("rust-check", &["check", js.0, js.1, &n])?;
    ours.expect(&format!("VERIFIED {n}"))?;
    ours.wait()?;
    eprintln!("  ok: our reader opens and verifies the directory JS hypercore 10.31.12 wrote");
    Ok(())
}

/// JS corestore 6.18.4 opens the store the Rust writer left behind: `corestore/` with
/// the primary key from `keys/primary-key` passed explicitly (it is not under
/// `corestore/`), the same key for our log name, every entry readable. corestore writes
/// the key it is given to `corestore/primary-key`; the script checks and removes that.
fn corestore_opens_our_store(store: &str, key: &str) -> Result {
    eprintln!("--> same store (JS corestore 6.18.4, primaryKey from keys/primary-key)");
    let n = (FIRST + MORE).to_string();
    let mut cmd = Command::new("node");
    cmd.args(["open-store.mjs", store, LOG, key, &n])
        .current_dir(golden_dir());
    let js = Peer::start("js-corestore", cmd)?;
    js.expect(&format!("KEY {key}"))?;
    js.expect(&format!("VERIFIED {n}"))?;
    js.wait()?;
    check(
        "JS corestore holds no primary key under our corestore/ afterwards",
        !Path::new(store).join("corestore/primary-key").exists(),
        "corestore/primary-key exists".to_string(),
    )?;
    eprintln!(
        "  ok: JS corestore 6.18.4 with our primaryKey derives our key and reads every entry"
    );
    Ok(())
}
