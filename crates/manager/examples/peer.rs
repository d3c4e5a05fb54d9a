//! A peer process for the multi-process integration suites (`cargo xtask
//! test-integration two-peer|reconnect|swarm|js`): one manager, one log, direct TCP on
//! loopback or a swarm on a DHT.
//!
//! ```text
//! peer write DIR LOG COUNT        create COUNT entries, serve on 127.0.0.1:0;
//!                                 prints "READY <addr> <core key hex>";
//!                                 stdin "append K" appends K more, prints "LENGTH <n>";
//!                                 "truncate N" truncates to N entries, prints
//!                                 "TRUNCATED <n> <fork>" (entries appended at fork
//!                                 F > 0 are `entry <i> f<F>`)
//! peer read DIR LOG KEY ADDR N    replicate until N entries are held; prints
//!                                 "START <held>", "PROGRESS <have> <total>",
//!                                 "FETCHED <blocks this run>" and "VERIFIED <n>"
//!                                 (N `fork:LEN:F`: follows the writer's truncations
//!                                 until it is at fork F holding LEN entries, prints
//!                                 "TRUNCATE <kept> <fork>" on each; entries below the
//!                                 lowest cut are `entry <i>`, the rest `entry <i> f<F>`)
//!                                 (N `seek:BYTES`: a sparse replica seeks byte BYTES
//!                                 from its peer, prints "SEEK <seq> <offset>",
//!                                 "FETCHED" and "HELD")
//!                                 (N `sparse:I,J,..`: a sparse replica reads only
//!                                 those; prints "VERIFIED", "FETCHED", "HELD <n>")
//! peer seed DIR LOG KEY ADDR N    a seeder: a replica opened without an encryption
//!                                 key, dialling ADDR and listening on 127.0.0.1:0
//!                                 (prints "SERVING <addr>"); once it holds N entries,
//!                                 reads each (the stored bytes: of an encrypted log,
//!                                 `padding ‖ ciphertext`) and prints "VERIFIED <n>",
//!                                 "STORED <n> <c> <bytes>" (c: entries stored 8 bytes
//!                                 longer than entry i and differing from it), "BYTES
//!                                 <byte_length>", "DIR <core dir>"; serves until stdin
//!                                 closes
//! peer check CORE_DIR KEY N       open a hypercore directory written elsewhere, verify
//!                                 entries 0..N; prints "VERIFIED <n>"
//! peer bootstrap ADDR [NODES]     host a DHT of NODES nodes (default 1) on ADDR's host;
//!                                 prints "BOOTSTRAP <addr>[,<addr>...]", runs until
//!                                 stdin closes
//! ```
//! ADDR `swarm:HOST:PORT[,...]` finds the peer on a DHT (the writer announces as a server,
//! the reader looks up as a client) instead of direct TCP. The swarm binds every
//! interface (`0.0.0.0`, the library default) unless `--host IP` is given;
//! `--local-connection true|false` sets `SwarmOptions::local_connection`.
//! `--format legacy|v1` (write): the format of a new log (default legacy, the manager's
//! default; `v1` is hypercore 11's default manifest core). `read` takes any core key.
//! Entry i is the bytes of `entry <i>` (`NOVA_ENTRY_BYTES=N`: `entry <i>;` repeated to N
//! bytes), so a reader can check every byte it got.
//! A swarm reader prints `CONNECTED` when its first connection is up, and
//! `DIAL-FAILED <attempts> <error>` when a dial to a peer it found fails; a swarm peer
//! prints `LIBUDX <n>` when its n-th connection carried by libudx's stream (not our
//! own) comes, `TAPPED <n>` when its n-th on our stream through the DHT socket's tap.
//! `--firewalled true|false` sets `SwarmOptions::firewalled`. `NOVA_SWARM_SEED`
//! (64 hex digits) fixes the swarm identity (a restarted writer is the same peer).
//! `write` (after `READY` too) and `read` print `USAGE <peak RSS MiB> <CPU seconds>` as
//! they exit.
//! `NOVA_ENCRYPTION_KEY` (hex, 16 to 64 bytes; JS `encryptionKey`, as `js/interop/peer.mjs`
//! takes it): `write`, `read` and `check` open the log with that key (appends encrypt,
//! reads decrypt; `seed` ignores it). `write` prints `BYTES <byte_length>` after `DIR`,
//! `read` after `VERIFIED`: with the key, the plaintext's bytes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use nova_hypercore_manager::{
    BootstrapNode, CoreFormat, EncryptionKey, GetOptions, HypercoreManager, ManagerConfig,
    ManagerEvent, ReplicaOptions, SwarmOptions,
};
use nova_hypercore_serialization::Direction;
use tokio::io::AsyncBufReadExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Entry `i`: `entry <i>`, or with `NOVA_ENTRY_BYTES=N` (the large transfers) `entry
/// <i>;` repeated and cut at N bytes, as the JS peer (`js/interop/peer.mjs`) makes it.
fn entry(i: u64) -> Vec<u8> {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let bytes = *BYTES.get_or_init(|| {
        std::env::var("NOVA_ENTRY_BYTES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    });
    let base = format!("entry {i}");
    if bytes == 0 {
        return base.into_bytes();
    }
    format!("{base};")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(bytes)
        .collect()
}

/// Entry `i` as a writer at `fork` appends it: [`entry`] at fork 0, `entry <i> f<fork>`
/// after a truncation (so a retracted entry and its replacement differ), as the JS peer.
fn entry_at(i: u64, fork: u64) -> Vec<u8> {
    if fork == 0 {
        entry(i)
    } else {
        format!("entry {i} f{fork}").into_bytes()
    }
}

/// Prints `LIBUDX <n>` each time the swarm's count of connections carried by libudx's
/// stream (not our own) grows (the suites fail on it where our stream is expected),
/// and `TAPPED <n>` for those on our stream through the tap.
async fn say_libudx_connections(m: &HypercoreManager) {
    if let Some(mut stats) = m.watch_swarm_stats().await {
        tokio::spawn(async move {
            let (mut libudx, mut tapped) = (0, 0);
            while stats.changed().await.is_ok() {
                let now = *stats.borrow_and_update();
                if now.libudx_connections > libudx {
                    libudx = now.libudx_connections;
                    say(format!("LIBUDX {libudx}"));
                }
                if now.tapped_connections > tapped {
                    tapped = now.tapped_connections;
                    say(format!("TAPPED {tapped}"));
                }
            }
        });
    }
}

/// `USAGE <peak RSS MiB> <CPU seconds>` of this process (VmHWM; user + system time
/// from /proc/self/stat in the kernel's 100 Hz clock ticks), for the bench's UDX rows.
fn say_usage() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the 3rd field,
    // utime and stime the 14th and 15th.
    let ticks: f64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(f64::NAN);
    say(format!(
        "USAGE {:.1} {:.2}",
        peak_kib / 1024.0,
        ticks / 100.0
    ));
}

/// The encryption key from `NOVA_ENCRYPTION_KEY` (hex), if set.
fn encryption_key() -> Result<Option<EncryptionKey>, BoxError> {
    match std::env::var("NOVA_ENCRYPTION_KEY") {
        Ok(hex) if !hex.is_empty() => Ok(Some(EncryptionKey::from_hex(&hex)?)),
        _ => Ok(None),
    }
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // Diagnostics on stderr when asked for (`RUST_LOG=nova_hypercore_replication=debug`).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let format = match take_option::<String>(&mut args, "--format")?.as_deref() {
        None | Some("legacy") => CoreFormat::Legacy,
        Some("v1") => CoreFormat::V1,
        Some(other) => return Err(format!("--format legacy|v1, not {other}").into()),
    };
    let peer = Peer {
        host: take_option(&mut args, "--host")?,
        local_connection: take_option(&mut args, "--local-connection")?,
        firewalled: take_option(&mut args, "--firewalled")?,
        format,
    };
    match args.first().map(String::as_str) {
        Some("write") if args.len() == 4 || args.len() == 5 => {
            let addr = args.get(4).map_or("127.0.0.1:0", String::as_str);
            peer.write(&args[1], &args[2], args[3].parse()?, addr)
                .await?;
            say_usage();
            Ok(())
        }
        Some("bootstrap") if args.len() == 2 || args.len() == 3 => {
            let nodes = args.get(2).map_or(Ok(1), |n| n.parse())?;
            bootstrap(args[1].parse()?, nodes).await
        }
        Some("check") if args.len() == 4 => check(&args[1], &args[2], args[3].parse()?).await,
        Some("seed") if args.len() == 6 => {
            seed(&args[1], &args[2], &args[3], &args[4], args[5].parse()?).await
        }
        Some("read") if args.len() == 6 && args[5].starts_with("sparse:") => {
            let indices = args[5]["sparse:".len()..]
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<u64>, _>>()?;
            peer.read_sparse(&args[1], &args[2], &args[3], &args[4], Sparse::Reads(indices))
                .await?;
            say_usage();
            Ok(())
        }
        Some("read") if args.len() == 6 && args[5].starts_with("seek:") => {
            let bytes = args[5]["seek:".len()..].parse()?;
            peer.read_sparse(&args[1], &args[2], &args[3], &args[4], Sparse::Seek(bytes))
                .await?;
            say_usage();
            Ok(())
        }
        Some("read") if args.len() == 6 && args[5].starts_with("fork:") => {
            let mut parts = args[5]["fork:".len()..].split(':');
            let len = parts.next().ok_or("fork:LEN:F")?.parse()?;
            let fork = parts.next().ok_or("fork:LEN:F")?.parse()?;
            peer.read(&args[1], &args[2], &args[3], &args[4], len, Some(fork))
                .await?;
            say_usage();
            Ok(())
        }
        Some("read") if args.len() == 6 => {
            peer.read(&args[1], &args[2], &args[3], &args[4], args[5].parse()?, None)
                .await?;
            say_usage();
            Ok(())
        }
        _ => Err("usage: peer [--host IP] [--format legacy|v1] write DIR LOG COUNT [ADDR] | peer [--host IP] read DIR LOG KEY ADDR N | peer seed DIR LOG KEY ADDR N | peer check CORE_DIR KEY N | peer bootstrap ADDR".into()),
    }
}

/// Removes `name VALUE` from `args` and parses VALUE (`None` when `name` is absent).
fn take_option<T>(args: &mut Vec<String>, name: &str) -> Result<Option<T>, BoxError>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let value = args.get(i + 1).ok_or(format!("{name} needs a value"))?;
    let value = value.parse()?;
    args.drain(i..i + 2);
    Ok(Some(value))
}

async fn manager(dir: &str, format: CoreFormat) -> Result<HypercoreManager, BoxError> {
    let config = ManagerConfig::builder()
        .storage_path(PathBuf::from(dir))
        .core_format(format)
        .event_capacity(1 << 16)
        .build()?;
    let manager = HypercoreManager::new(config)?;
    manager.initialize().await?;
    Ok(manager)
}

/// Hosts a DHT of `nodes` nodes (the first on `addr`, the others on its host, joining
/// it) until stdin closes.
async fn bootstrap(addr: std::net::SocketAddr, nodes: usize) -> Result<(), BoxError> {
    let first = BootstrapNode::start(addr).await?;
    let mut addrs = vec![first.addr()];
    let mut all = vec![first];
    for _ in 1..nodes {
        let node = BootstrapNode::start_with((addr.ip(), 0).into(), vec![addrs[0]]).await?;
        addrs.push(node.addr());
        all.push(node);
    }
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    say(format!("BOOTSTRAP {}", list.join(",")));
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while lines.next_line().await?.is_some() {}
    for node in all {
        node.stop().await;
    }
    Ok(())
}

/// Options shared by the write and read modes.
struct Peer {
    /// Bind the swarm to this address only (`--host`); every interface otherwise.
    host: Option<std::net::IpAddr>,
    /// `--local-connection`: overrides `SwarmOptions::local_connection`.
    local_connection: Option<bool>,
    /// `--firewalled`: overrides `SwarmOptions::firewalled`.
    firewalled: Option<bool>,
    /// `--format`: the format of a log `write` creates.
    format: CoreFormat,
}

impl Peer {
    /// Swarm options for a comma-separated bootstrap list.
    fn swarm_options(&self, bootstrap: &str) -> Result<SwarmOptions, BoxError> {
        let nodes = bootstrap
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<std::net::SocketAddr>, _>>()?;
        let mut options = SwarmOptions::new(nodes);
        // A fixed swarm identity (a writer that restarts is the same peer to readers).
        if let Ok(hex) = std::env::var("NOVA_SWARM_SEED") {
            options.seed = Some(parse_key(&hex)?);
        }
        if let Some(host) = self.host {
            options = options.host(host);
        }
        options.local_connection = self.local_connection;
        options.firewalled = self.firewalled;
        Ok(options)
    }

    async fn write(&self, dir: &str, log: &str, count: u64, addr: &str) -> Result<(), BoxError> {
        let m = manager(dir, self.format).await?;
        // Opened with the key first: every later use by name is the decrypting handle.
        if let Some(key) = encryption_key()? {
            m.get_log_encrypted(log, key).await?;
        }
        let have = m.get_length(log).await?;
        // A thousand entries at a time (a large log is never all in memory at once).
        for start in (have..count).step_by(1000) {
            let chunk: Vec<Vec<u8>> = (start..count.min(start + 1000)).map(entry).collect();
            m.append_batch(log, &chunk).await?;
        }
        let key = m.get_log(log).await?.public_key();
        let hex_key = key.iter().map(|b| format!("{b:02x}")).collect::<String>();
        // `swarm:BOOTSTRAP`: announce on the DHT (server only, as a writer).
        let _listener = if let Some(bootstrap) = addr.strip_prefix("swarm:") {
            let mut options = self.swarm_options(bootstrap)?;
            options.client = false;
            m.start_swarm(options).await?;
            say_libudx_connections(&m).await;
            m.enable_replication(log).await?;
            say(format!("READY {addr} {hex_key}"));
            say_usage();
            say(format!("DIR {}", m.get_log(log).await?.path().display()));
            None
        } else {
            // The manager's direct mode: accepts connections and replicates every enabled log.
            m.enable_replication(log).await?;
            let listener = m.listen(addr.parse()?).await?;
            say(format!("READY {} {hex_key}", listener.local_addr()));
            say_usage();
            say(format!("DIR {}", m.get_log(log).await?.path().display()));
            Some(listener)
        };
        say(format!("BYTES {}", m.get_log(log).await?.byte_length()));
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut fork = m.get_log(log).await?.fork().await?;
        while let Some(line) = lines.next_line().await? {
            if let Some(k) = line.strip_prefix("append ") {
                let k: u64 = k.trim().parse()?;
                let from = m.get_length(log).await?;
                let more: Vec<Vec<u8>> = (from..from + k).map(|i| entry_at(i, fork)).collect();
                m.append_batch(log, &more).await?;
                say(format!("LENGTH {}", m.get_length(log).await?));
            } else if let Some(n) = line.strip_prefix("truncate ") {
                let n: u64 = n.trim().parse()?;
                fork = m.get_log(log).await?.truncate(n).await?;
                say(format!("TRUNCATED {n} {fork}"));
            }
        }
        m.close().await?;
        Ok(())
    }

    async fn read(
        &self,
        dir: &str,
        log: &str,
        key: &str,
        addr: &str,
        until: u64,
        fork: Option<u64>,
    ) -> Result<(), BoxError> {
        let m = manager(dir, self.format).await?;
        let key_bytes = parse_key(key)?;
        let opened = match encryption_key()? {
            Some(k) => {
                m.open_replica_encrypted(log, key_bytes, Some(ReplicaOptions::full()), k)
                    .await
            }
            None => m.open_replica(log, key_bytes).await,
        };
        let replica = match opened {
            Ok(replica) => replica,
            Err(e) => {
                // e.g. the name is already used for another key.
                say(format!("REFUSED {}", e.code()));
                return Err(e.into());
            }
        };
        m.enable_replication(log).await?;
        let mut held = 0;
        for i in 0..replica.current_length().await? {
            if replica.verify_signature(i).await.unwrap_or(false) {
                held += 1;
            }
        }
        say(format!("START {held}"));
        // Count the blocks this run receives (one `replicate` receive event per block).
        let mut events = m.subscribe();
        let (count_tx, mut count_rx) = tokio::sync::watch::channel(0u64);
        // The lowest cut of the truncations followed (entries from it on are new).
        let (cut_tx, cut_rx) = tokio::sync::watch::channel(u64::MAX);
        tokio::spawn(async move {
            let mut fetched = 0u64;
            loop {
                match events.recv().await {
                    Ok(ManagerEvent::Replicate {
                        direction: Direction::Receive,
                        ..
                    }) => {
                        fetched += 1;
                        count_tx.send_replace(fetched);
                    }
                    Ok(ManagerEvent::Truncate { kept, fork, .. }) => {
                        say(format!("TRUNCATE {kept} {fork}"));
                        cut_tx.send_modify(|c| *c = (*c).min(kept));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        say(format!("LAGGED {n}"));
                    }
                    Err(_) => return,
                }
            }
        });
        // `swarm:BOOTSTRAP`: look the log up on the DHT (client only, as a reader).
        // Otherwise the manager's dialer: redials with backoff (50 ms .. 5 s) whenever the
        // connection drops or the writer is not reachable yet.
        let _connector = if let Some(bootstrap) = addr.strip_prefix("swarm:") {
            let mut options = self.swarm_options(bootstrap)?;
            options.server = false;
            m.start_swarm(options).await?;
            say_libudx_connections(&m).await;
            // `CONNECTED` once the swarm has a connection (connect time for the suites).
            if let Some(mut stats) = m.watch_swarm_stats().await {
                tokio::spawn(async move {
                    if stats.wait_for(|s| s.connections > 0).await.is_ok() {
                        say("CONNECTED".into());
                    }
                });
            }
            // `DIAL-FAILED <attempts> <error>` for each failed dial to a peer found.
            let watched = m.clone();
            tokio::spawn(async move {
                let mut said = std::collections::HashMap::new();
                loop {
                    for f in watched.dial_failures().await {
                        if said.insert(f.public_key, f.attempts) != Some(f.attempts) {
                            say(format!("DIAL-FAILED {} {}", f.attempts, f.error));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            None
        } else {
            Some(m.connect(addr.parse()?))
        };
        let mut progress = replica.watch_progress().await?;
        let mut reported = 0;
        loop {
            let p = *progress.borrow_and_update();
            // Every 500 entries, and whenever it caught up with what it knows of.
            let caught_up = p.contiguous_length == p.length && p.length > reported;
            if p.contiguous_length >= reported + 500 || p.contiguous_length >= until || caught_up {
                reported = p.contiguous_length;
                say(format!("PROGRESS {} {}", p.contiguous_length, p.length));
            }
            if p.contiguous_length >= until && fork.is_none_or(|f| p.fork == f) {
                break;
            }
            // No progress for a while: say where things stand (diagnostics for the suites).
            match tokio::time::timeout(Duration::from_secs(10), progress.changed()).await {
                Ok(changed) => changed?,
                Err(_) => {
                    let status = m.replication_status(log).await?;
                    let next = match m.read(log, p.contiguous_length).await {
                        Ok(_) => "readable".to_owned(),
                        Err(e) => e.code().to_string(),
                    };
                    say(format!(
                        "STALL have {} total {} next {next} peers {} remote {:?} bytes {}",
                        p.contiguous_length,
                        p.length,
                        status.active_peers,
                        status.remote_lengths,
                        status.bytes_transferred
                    ));
                }
            }
        }
        let cut = *cut_rx.borrow();
        for i in 0..until {
            let want = match fork {
                Some(f) if i >= cut => entry_at(i, f),
                _ => entry(i),
            };
            if m.read(log, i).await? != want {
                return Err(format!("entry {i} differs").into());
            }
        }
        say(format!("VERIFIED {until}"));
        say(format!("BYTES {}", replica.byte_length()));
        // Events trail the stored blocks slightly: wait (bounded) for the expected count.
        let expected = until.saturating_sub(held);
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            count_rx.wait_for(|c| *c >= expected),
        )
        .await;
        say(format!("FETCHED {}", *count_rx.borrow()));
        m.close().await?;
        Ok(())
    }

    /// A sparse reader (`read ... sparse:I,J,..`): a sparse replica, found on the swarm
    /// (`swarm:BOOTSTRAP`, client only) or dialled directly, reads only those entries,
    /// each with a read that waits. Prints `VERIFIED <n>`, `FETCHED <blocks received>`
    /// and `HELD <blocks stored at the end>`.
    async fn read_sparse(
        &self,
        dir: &str,
        log: &str,
        key: &str,
        addr: &str,
        what: Sparse,
    ) -> Result<(), BoxError> {
        let m = manager(dir, self.format).await?;
        let replica = match encryption_key()? {
            Some(k) => {
                m.open_replica_encrypted(log, parse_key(key)?, Some(ReplicaOptions::sparse()), k)
                    .await?
            }
            None => {
                m.open_replica_with(log, parse_key(key)?, ReplicaOptions::sparse())
                    .await?
            }
        };
        m.enable_replication(log).await?;
        let mut events = m.subscribe();
        let (count_tx, count_rx) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            let mut fetched = 0u64;
            while let Ok(event) = events.recv().await {
                if let ManagerEvent::Replicate {
                    direction: Direction::Receive,
                    ..
                } = event
                {
                    fetched += 1;
                    count_tx.send_replace(fetched);
                }
            }
        });
        let _connector = if let Some(bootstrap) = addr.strip_prefix("swarm:") {
            let mut options = self.swarm_options(bootstrap)?;
            options.server = false;
            m.start_swarm(options).await?;
            say_libudx_connections(&m).await;
            None
        } else {
            Some(m.connect(addr.parse()?))
        };
        match what {
            Sparse::Reads(indices) => {
                for &i in &indices {
                    let got = replica
                        .get_with(i, GetOptions::timeout(Duration::from_secs(60)))
                        .await?;
                    if got != entry(i) {
                        return Err(format!("entry {i} differs").into());
                    }
                }
                say(format!("VERIFIED {}", indices.len()));
            }
            Sparse::Seek(bytes) => {
                let (seq, offset) = replica
                    .seek(bytes, GetOptions::timeout(Duration::from_secs(60)))
                    .await?;
                say(format!("SEEK {seq} {offset}"));
            }
        }
        // What else might still come (nothing should): give it a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        say(format!("FETCHED {}", *count_rx.borrow()));
        let length = replica.current_length().await?;
        say(format!("HELD {}", replica.has_range(0..length).await?));
        m.close().await?;
        Ok(())
    }
}

/// What a sparse reader does.
enum Sparse {
    /// Reads these entries (each waiting for its peer).
    Reads(Vec<u64>),
    /// Seeks this byte of the log (waiting for its peer).
    Seek(u64),
}

fn parse_key(key: &str) -> Result<[u8; 32], BoxError> {
    let mut key_bytes = [0u8; 32];
    for (i, b) in key_bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(key.get(2 * i..2 * i + 2).ok_or("short key")?, 16)?;
    }
    Ok(key_bytes)
}

/// Opens one hypercore directory written by another runtime (JS hypercore 10) and
/// reads entries `0..n`, each verified against the signed tree.
async fn check(dir: &str, key: &str, n: u64) -> Result<(), BoxError> {
    use nova_hypercore_managed_core::{ManagedCore, OpenOptions, VerifyingKey};
    let name = nova_hypercore_serialization::LogName::parse("check")?;
    let key = VerifyingKey::from_bytes(&parse_key(key)?)?;
    let options = OpenOptions::new().public_key(key);
    let options = match encryption_key()? {
        Some(k) => options.encryption_key(k),
        None => options,
    };
    let core = ManagedCore::open(dir, name, options).await?;
    if core.public_key() != key.to_bytes() {
        return Err("the directory holds another log".into());
    }
    let length = core.length();
    if length < n {
        return Err(format!("length {length} < {n}").into());
    }
    for i in 0..n {
        if core.get(i).await? != entry(i) {
            return Err(format!("entry {i} differs").into());
        }
    }
    say(format!("VERIFIED {n}"));
    Ok(())
}

/// A seeder (`seed`): a replica opened without an encryption key, fed from `addr` and
/// serving on 127.0.0.1:0. Once it holds `n` entries it reads each (verified against
/// the signed tree; what it returns is what it stores) and says how many are stored as
/// ciphertext: [`PADDING`] bytes longer than `entry <i>` and different from it.
async fn seed(dir: &str, log: &str, key: &str, addr: &str, n: u64) -> Result<(), BoxError> {
    /// What JS puts before each encrypted block.
    const PADDING: usize = 8;
    let m = manager(dir, CoreFormat::Legacy).await?;
    let replica = m.open_replica(log, parse_key(key)?).await?;
    m.enable_replication(log).await?;
    let listener = m.listen("127.0.0.1:0".parse()?).await?;
    say(format!("SERVING {}", listener.local_addr()));
    let _connector = m.connect(addr.parse()?);
    let mut progress = replica.watch_progress().await?;
    progress.wait_for(|p| p.contiguous_length >= n).await?;
    let (mut ciphertext, mut bytes) = (0, 0);
    for i in 0..n {
        let stored = m.read(log, i).await?;
        let plain = entry(i);
        if stored.len() == plain.len() + PADDING && stored[PADDING..] != plain[..] {
            ciphertext += 1;
        }
        bytes += stored.len() as u64;
    }
    say(format!("VERIFIED {n}"));
    say(format!("STORED {n} {ciphertext} {bytes}"));
    say(format!("BYTES {}", replica.byte_length()));
    say(format!("DIR {}", replica.path().display()));
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while lines.next_line().await?.is_some() {}
    m.close().await?;
    Ok(())
}
