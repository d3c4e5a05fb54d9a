//! Benchmark workloads of nova-hypercore, with the same names and timing boundaries as the
//! JS anchor harness (`../shared/anchors/js-bench`, see its README).
//!
//! Owns: the Rust side of `cargo xtask bench`: one measurement per process, printed as one
//! JSON line (`workload`, `ops`, `bytes`, `seconds`, `ops_per_s`, `mb_per_s`,
//! `peak_rss_mib`, `durability`, extras), the same fields the JS harness prints.
//!
//! Does not: compare, aggregate or judge results (xtask does), or run anything on a
//! network other than loopback.

mod atlas;
mod atlas_sparse;
mod disk;
mod large;
mod scale;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use nova_hypercore_managed_core::{Durability, ManagedCore, OpenOptions};
use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
use nova_hypercore_serialization::LogName;
use serde_json::{Value, json};

const KIB: usize = 1024;
const N: usize = 10_000;
const BATCH: usize = 100;

/// Workloads, as named in the JS anchor.
const WORKLOADS: &[&str] = &[
    "append_single",
    "append_batch",
    "read_warm",
    "read_cold",
    "replicate_pipe",
    "replicate_incremental",
    "swarm_connect",
    "swarm_replicate",
    "atlas_store",
    "atlas_query_time",
    "atlas_query_agent",
    "atlas_rebuild",
    "atlas_sparse",
    "atlas_sparse_burst",
    "idle_logs",
    "large_append",
    "large_read",
    "disk_usage",
    "many_logs",
];

/// Blocks for swarm_replicate (as the JS anchor).
const SWARM_N: usize = 10_000;

const REPL_N: usize = 50_000;
const INCR_N: usize = 1_000;

#[derive(Parser, Debug)]
#[command(about = "Run one nova-hypercore benchmark workload and print one JSON line")]
struct Args {
    /// Workload to run (see --list).
    #[arg(long)]
    workload: Option<String>,
    /// Durability mode: flush, fsync-per-batch or fsync-per-write.
    #[arg(long, default_value = "flush")]
    durability: String,
    /// Which API to drive: `core` (one ManagedCore) or `manager` (HypercoreManager by
    /// log name, with its limits, metrics and events). For the replicate workloads, the
    /// transport between the two ManagedCores: `pipe` (in-process) or `tcp` (loopback).
    #[arg(long, default_value = "core")]
    layer: String,
    /// List the workload names.
    #[arg(long)]
    list: bool,
    /// Directory for temporary data (default: the system temp dir).
    #[arg(long)]
    tmpdir: Option<PathBuf>,
    /// Internal: write the read_cold fixture into this directory and exit.
    #[arg(long, hide = true)]
    write_fixture: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An initialized manager on `dir` (the set-up every manager-level workload shares).
async fn open_manager(
    dir: &Path,
    durability: Durability,
    replication: bool,
) -> Result<HypercoreManager, BoxError> {
    let config = ManagerConfig::builder()
        .storage_path(dir)
        .durability(durability)
        .replication_enabled(replication)
        .build()?;
    let manager = HypercoreManager::new(config)?;
    manager.initialize().await?;
    Ok(manager)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for w in WORKLOADS {
            println!("{w}");
        }
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_durability(s: &str) -> Result<Durability, BoxError> {
    Ok(match s {
        "flush" => Durability::Flush,
        "fsync-per-batch" => Durability::FsyncPerBatch,
        "fsync-per-write" => Durability::FsyncPerWrite,
        other => return Err(format!("unknown durability {other:?}").into()),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Core,
    Manager,
}

/// The API under test: the same workloads run against either layer.
enum Target {
    Core(ManagedCore),
    Manager(HypercoreManager),
}

const LOG: &str = "bench";

impl Target {
    async fn append(&self, block: &[u8]) -> Result<u64, BoxError> {
        Ok(match self {
            Target::Core(c) => c.append(block).await?,
            Target::Manager(m) => m.append(LOG, block).await?,
        })
    }

    async fn append_batch(&self, blocks: &[Vec<u8>]) -> Result<(), BoxError> {
        match self {
            Target::Core(c) => {
                c.append_batch(blocks).await?;
            }
            Target::Manager(m) => {
                m.append_batch(LOG, blocks).await?;
            }
        }
        Ok(())
    }

    async fn get(&self, seq: u64) -> Result<Vec<u8>, BoxError> {
        Ok(match self {
            Target::Core(c) => c.get(seq).await?,
            Target::Manager(m) => m.read(LOG, seq).await?,
        })
    }

    async fn length(&self) -> Result<u64, BoxError> {
        Ok(match self {
            Target::Core(c) => c.length(),
            Target::Manager(m) => m.get_length(LOG).await?,
        })
    }

    async fn close(&self) -> Result<(), BoxError> {
        match self {
            Target::Core(c) => c.close().await?,
            Target::Manager(m) => m.close().await?,
        }
        Ok(())
    }
}

fn parse_layer(s: &str) -> Result<Layer, BoxError> {
    match s {
        "core" => Ok(Layer::Core),
        "manager" => Ok(Layer::Manager),
        other => Err(format!("unknown layer {other:?} (core or manager)").into()),
    }
}

fn run(args: &Args) -> Result<Value, BoxError> {
    let durability = parse_durability(&args.durability)?;
    let replicating = args
        .workload
        .as_deref()
        .is_some_and(|w| w.starts_with("replicate") || w.starts_with("swarm"));
    let tcp = match (replicating, args.layer.as_str()) {
        (true, "pipe" | "core" | "swarm" | "udx") => false,
        (true, "tcp") => true,
        (true, other) => return Err(format!("unknown transport {other:?} (pipe or tcp)").into()),
        (false, _) => false,
    };
    let layer = if replicating {
        Layer::Core
    } else {
        parse_layer(&args.layer)?
    };
    // One thread, like the JS harness's single event loop (a 2-worker runtime measured
    // slower for replication: both peers then pay for cross-thread wake-ups).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let base = args.tmpdir.clone().unwrap_or_else(std::env::temp_dir);
    if let Some(dir) = &args.write_fixture {
        return rt.block_on(async {
            let log = open(dir, durability, layer).await?;
            write_all(&log, &blocks(N)).await?;
            log.close().await?;
            Ok(json!({"fixture": dir}))
        });
    }
    let Some(workload) = args.workload.as_deref() else {
        return Err("give --workload NAME or --list".into());
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("nova-bench-{workload}-"))
        .tempdir_in(&base)?;
    let mut result = match workload {
        "append_single" => rt.block_on(append_single(dir.path(), durability, layer))?,
        "append_batch" => rt.block_on(append_batch(dir.path(), durability, layer))?,
        "read_warm" => rt.block_on(read_warm(dir.path(), durability, layer))?,
        "read_cold" => read_cold(dir.path(), durability, layer, args, &rt)?,
        "replicate_pipe" => rt.block_on(replicate(dir.path(), durability, false, tcp))?,
        "replicate_incremental" => rt.block_on(replicate(dir.path(), durability, true, tcp))?,
        "swarm_connect" => rt.block_on(swarm(dir.path(), false, args.layer != "udx"))?,
        "swarm_replicate" => rt.block_on(swarm(dir.path(), true, args.layer != "udx"))?,
        "atlas_store" => rt.block_on(atlas::store(dir.path(), durability))?,
        "atlas_query_time" => rt.block_on(atlas::query(dir.path(), durability, false))?,
        "atlas_query_agent" => rt.block_on(atlas::query(dir.path(), durability, true))?,
        "atlas_rebuild" => rt.block_on(atlas::rebuild(dir.path(), durability))?,
        "atlas_sparse" => {
            rt.block_on(atlas_sparse::run(dir.path(), durability, workload, 2_000))?
        }
        "atlas_sparse_burst" => {
            rt.block_on(atlas_sparse::run(dir.path(), durability, workload, 50))?
        }
        "idle_logs" => rt.block_on(scale::idle_logs(dir.path(), durability))?,
        "many_logs" => rt.block_on(scale::many_logs(dir.path(), durability))?,
        "disk_usage" => rt.block_on(disk::disk_usage(dir.path(), durability))?,
        // Their own 2-worker runtime: what blocking I/O costs other tasks there.
        "large_append" => large::run(dir.path(), durability, false)?,
        "large_read" => large::run(dir.path(), durability, true)?,
        other => return Err(format!("unknown workload {other:?}; see --list").into()),
    };
    if let Value::Object(map) = &mut result {
        map.insert("durability".into(), json!(durability.as_str()));
        map.insert("peak_rss_mib".into(), json!(peak_rss_mib()));
        map.insert("runtime".into(), json!("rust"));
        map.insert("layer".into(), json!(args.layer));
    }
    Ok(result)
}

fn result(workload: &str, ops: usize, bytes: usize, seconds: f64, extra: Value) -> Value {
    let mut v = json!({
        "workload": workload,
        "ops": ops,
        "bytes": bytes,
        "seconds": seconds,
        "ops_per_s": ops as f64 / seconds,
        "mb_per_s": bytes as f64 / 1e6 / seconds,
    });
    if let (Value::Object(map), Value::Object(extra)) = (&mut v, extra) {
        map.extend(extra);
    }
    v
}

/// Pseudo-random 1 KiB blocks (xorshift64*; incompressible enough, no extra dependency).
fn blocks(n: usize) -> Vec<Vec<u8>> {
    BlockStream::new().take(n)
}

/// The same blocks, made a chunk at a time: the replicate workloads never hold all 50 MB
/// of payload, so peak RSS measures the product, not the harness's copy of the data.
struct BlockStream {
    state: u64,
}

impl BlockStream {
    fn new() -> Self {
        BlockStream {
            state: 0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64,
        }
    }

    fn take(&mut self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                let mut block = Vec::with_capacity(KIB);
                while block.len() < KIB {
                    let s = &mut self.state;
                    *s ^= *s >> 12;
                    *s ^= *s << 25;
                    *s ^= *s >> 27;
                    block.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
                }
                block
            })
            .collect()
    }
}

async fn open(dir: &Path, durability: Durability, layer: Layer) -> Result<Target, BoxError> {
    Ok(match layer {
        Layer::Core => {
            let name = LogName::parse(LOG)?;
            let options = OpenOptions::new().durability(durability);
            Target::Core(ManagedCore::open(dir, name, options).await?)
        }
        Layer::Manager => {
            let manager = open_manager(dir, durability, false).await?;
            manager.get_log(LOG).await?;
            Target::Manager(manager)
        }
    })
}

async fn write_all(log: &Target, data: &[Vec<u8>]) -> Result<(), BoxError> {
    for chunk in data.chunks(BATCH) {
        log.append_batch(chunk).await?;
    }
    Ok(())
}

async fn append_single(
    dir: &Path,
    durability: Durability,
    layer: Layer,
) -> Result<Value, BoxError> {
    let log = open(dir, durability, layer).await?;
    let data = blocks(N);
    let t0 = Instant::now();
    for block in &data {
        log.append(block).await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    check_length(&log, N).await?;
    log.close().await?;
    Ok(result("append_single", N, N * KIB, secs, json!({})))
}

async fn append_batch(dir: &Path, durability: Durability, layer: Layer) -> Result<Value, BoxError> {
    let log = open(dir, durability, layer).await?;
    let data = blocks(N);
    let t0 = Instant::now();
    write_all(&log, &data).await?;
    let secs = t0.elapsed().as_secs_f64();
    check_length(&log, N).await?;
    log.close().await?;
    Ok(result(
        "append_batch",
        N,
        N * KIB,
        secs,
        json!({"batch": BATCH}),
    ))
}

async fn read_all(log: &Target, expected: Option<&[Vec<u8>]>) -> Result<f64, BoxError> {
    let t0 = Instant::now();
    let mut bytes = 0usize;
    let mut read = Vec::with_capacity(if expected.is_some() { N } else { 0 });
    for i in 0..N as u64 {
        let block = log.get(i).await?;
        bytes += block.len();
        if expected.is_some() {
            read.push(block);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if bytes != N * KIB {
        return Err(format!("read {bytes} bytes, expected {}", N * KIB).into());
    }
    if let Some(expected) = expected
        && read != expected
    {
        return Err("blocks read back differ from those written".into());
    }
    Ok(secs)
}

async fn read_warm(dir: &Path, durability: Durability, layer: Layer) -> Result<Value, BoxError> {
    let log = open(dir, durability, layer).await?;
    let data = blocks(N);
    write_all(&log, &data).await?;
    let secs = read_all(&log, Some(&data)).await?;
    log.close().await?;
    Ok(result("read_warm", N, N * KIB, secs, json!({})))
}

fn read_cold(
    dir: &Path,
    durability: Durability,
    layer: Layer,
    args: &Args,
    rt: &tokio::runtime::Runtime,
) -> Result<Value, BoxError> {
    // A separate process writes the log and exits; this fresh process opens and reads it.
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--write-fixture")
        .arg(dir)
        .arg("--durability")
        .arg(&args.durability)
        .arg("--layer")
        .arg(&args.layer)
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("fixture writer failed: {status}").into());
    }
    rt.block_on(async {
        let t0 = Instant::now();
        let log = open(dir, durability, layer).await?;
        let open_seconds = t0.elapsed().as_secs_f64();
        check_length(&log, N).await?;
        let secs = read_all(&log, None).await?;
        log.close().await?;
        Ok(result(
            "read_cold",
            N,
            N * KIB,
            secs,
            json!({"open_seconds": open_seconds}),
        ))
    })
}

/// Writer with 50,000 blocks (batches of 1,000) and an empty replica, both on disk,
/// replicating over an encrypted in-process pipe or loopback TCP connection.
/// `replicate_pipe` times the full sync; `replicate_incremental` then times one batch of
/// 1,000 more reaching the reader.
async fn replicate(
    dir: &Path,
    durability: Durability,
    incremental: bool,
    tcp: bool,
) -> Result<Value, BoxError> {
    use nova_hypercore_replication::{LogSet, Replicator};
    use std::sync::Arc;
    let name = LogName::parse(LOG)?;
    let options = OpenOptions::new().durability(durability);
    let writer = ManagedCore::open(dir.join("writer"), name.clone(), options.clone()).await?;
    let mut stream = BlockStream::new();
    let mut last = Vec::new();
    for _ in 0..REPL_N / 1000 {
        let chunk = stream.take(1000);
        writer.append_batch(&chunk).await?;
        last = chunk.last().cloned().unwrap_or_default();
    }
    let reader_options = options.public_key(writer.verifying_key());
    let reader = ManagedCore::open(dir.join("reader"), name, reader_options).await?;
    let (ws, rs) = (LogSet::new(), LogSet::new());
    ws.insert(writer.clone());
    rs.insert(reader.clone());
    let (wr, rr) = (Replicator::new(Arc::new(ws)), Replicator::new(Arc::new(rs)));
    let t0 = Instant::now();
    let (wt, rt) = if tcp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let dial = tokio::net::TcpStream::connect(addr);
        let (accepted, dialed) = tokio::join!(listener.accept(), dial);
        let (a, b) = (accepted?.0, dialed?);
        a.set_nodelay(true)?;
        b.set_nodelay(true)?;
        (
            tokio::spawn(async move { wr.run(a, false).await }),
            tokio::spawn(async move { rr.run(b, true).await }),
        )
    } else {
        let (a, b) = tokio::io::duplex(1024 * 1024);
        (
            tokio::spawn(async move { wr.run(a, true).await }),
            tokio::spawn(async move { rr.run(b, false).await }),
        )
    };
    wait_contiguous(&reader, REPL_N as u64).await?;
    let initial = t0.elapsed().as_secs_f64();
    let result = if incremental {
        let more = blocks(INCR_N);
        let t1 = Instant::now();
        writer.append_batch(&more).await?;
        wait_contiguous(&reader, (REPL_N + INCR_N) as u64).await?;
        let secs = t1.elapsed().as_secs_f64();
        if reader.get((REPL_N + INCR_N - 1) as u64).await? != more[INCR_N - 1] {
            return Err("last incremental block differs".into());
        }
        result(
            "replicate_incremental",
            INCR_N,
            INCR_N * KIB,
            secs,
            json!({"initial_sync_seconds": initial}),
        )
    } else {
        if reader.get((REPL_N - 1) as u64).await? != last {
            return Err("last block differs".into());
        }
        result("replicate_pipe", REPL_N, REPL_N * KIB, initial, json!({}))
    };
    wt.abort();
    rt.abort();
    Ok(result)
}

/// swarm_connect / swarm_replicate, through the manager as an app uses it: a bootstrap
/// node on 127.0.0.1 (in-process), a writer manager announcing the log (server, with a
/// direct TCP endpoint advertised on the DHT) and a reader manager looking it up
/// (client). connect = the reader's `enable_replication` (its join) to its first
/// `peer-connect`; swarm_replicate then times from that event until the reader holds
/// all 10,000 blocks. Must run where only loopback exists (xtask: `unshare --net`).
/// `direct`: the writer advertises a direct TCP endpoint and the reader moves there
/// (layer `swarm`); without it (layer `udx`) they stay on the swarm connection, our
/// own UDX stream.
async fn swarm(dir: &Path, replicate: bool, direct: bool) -> Result<Value, BoxError> {
    use nova_hypercore_manager::{BootstrapNode, ManagerEvent, SwarmOptions};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let node = BootstrapNode::start(SocketAddr::new(loopback, 0)).await?;
    let manager = |sub: &str| -> Result<HypercoreManager, BoxError> {
        Ok(HypercoreManager::new(
            ManagerConfig::builder()
                .storage_path(dir.join(sub))
                .event_capacity(1 << 16)
                .build()?,
        )?)
    };
    let (a, b) = (manager("writer")?, manager("reader")?);
    a.initialize().await?;
    b.initialize().await?;
    if replicate {
        let mut stream = BlockStream::new();
        for _ in 0..SWARM_N / 1000 {
            a.append_batch(LOG, &stream.take(1000)).await?;
        }
    } else {
        a.append(LOG, b"topic").await?;
    }
    let mut server = SwarmOptions::new(vec![node.addr()]).host(loopback);
    if direct {
        server = server.direct(SocketAddr::new(loopback, 0));
    }
    server.client = false;
    a.start_swarm(server).await?;
    a.enable_replication(LOG).await?;
    let replica = b
        .open_replica(LOG, a.get_log(LOG).await?.public_key())
        .await?;
    let mut client = SwarmOptions::new(vec![node.addr()]).host(loopback);
    client.server = false;
    b.start_swarm(client).await?;
    let mut events = b.subscribe();
    let t0 = Instant::now();
    b.enable_replication(LOG).await?;
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(ManagerEvent::PeerConnect { .. }) => return Ok(()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .map_err(|_| "no peer-connect within 60 s")??;
    let connect = t0.elapsed().as_secs_f64();
    let direct = !b.direct_peers().await.is_empty();
    if !replicate {
        return Ok(result(
            "swarm_connect",
            1,
            0,
            connect,
            json!({"ms": connect * 1000.0, "direct_tcp": direct}),
        ));
    }
    let t1 = Instant::now();
    let mut progress = replica.watch_progress().await?;
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while progress.borrow_and_update().contiguous_length < SWARM_N as u64 {
            if progress.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .map_err(|_| "swarm_replicate did not complete within 120 s")?;
    let secs = t1.elapsed().as_secs_f64();
    Ok(result(
        "swarm_replicate",
        SWARM_N,
        SWARM_N * KIB,
        secs,
        json!({"connect_seconds": connect, "join_to_done_seconds": t0.elapsed().as_secs_f64(), "direct_tcp": direct}),
    ))
}

async fn wait_contiguous(core: &ManagedCore, n: u64) -> Result<(), BoxError> {
    let mut progress = core.watch_progress();
    let waited = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while progress.borrow_and_update().contiguous_length < n {
            if progress.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    match waited {
        Ok(()) if progress.borrow().contiguous_length >= n => Ok(()),
        _ => Err(format!("replication stalled at {:?}", *progress.borrow()).into()),
    }
}

async fn check_length(log: &Target, n: usize) -> Result<(), BoxError> {
    let length = log.length().await?;
    if length != n as u64 {
        return Err(format!("length {length} != {n}").into());
    }
    Ok(())
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| (kib / 1024.0 * 10.0).round() / 10.0)
}
