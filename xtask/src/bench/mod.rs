//! `cargo xtask bench`: our workloads next to the JS anchor, as ratios.
//!
//! Each run is a fresh process (like the JS harness); runs are interleaved round-robin
//! across workloads and runtimes, and medians are compared. When `node` and `npm` are
//! present, the JS harness from `../shared/anchors/js-bench` is installed into a scratch
//! directory with `npm ci` and run in the same session; otherwise the medians recorded
//! in its `RESULTS.md` are used and the report says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{Result, cargo, have, root, run_step};

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// Fresh-process runs per workload (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Only these workloads (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Do not run the JS harness; compare against RESULTS.md.
    #[arg(long)]
    no_js: bool,
    /// Exit non-zero if a row misses its target.
    #[arg(long)]
    strict: bool,
}

/// One report row: workload (JS anchor name), API layer, durability, target ratio
/// ours/JS in ops/s (None = informational: JS has no such durability mode).
struct Row {
    workload: &'static str,
    layer: &'static str,
    durability: &'static str,
    target: Option<f64>,
}

const fn row(
    workload: &'static str,
    layer: &'static str,
    durability: &'static str,
    target: Option<f64>,
) -> Row {
    Row {
        workload,
        layer,
        durability,
        target,
    }
}

// Targets of issue 11 (our own core): append_single >= 10x, append_batch >= 8x,
// read_warm >= 20x, replicate_pipe >= 5x; the other rows keep their earlier targets.
const ROWS: &[Row] = &[
    row("append_single", "core", "flush", Some(10.0)),
    row("append_batch", "core", "flush", Some(8.0)),
    row("read_warm", "core", "flush", Some(20.0)),
    row("read_cold", "core", "flush", Some(2.0)),
    row("append_single", "manager", "flush", Some(1.5)),
    row("append_batch", "manager", "flush", Some(1.5)),
    row("read_warm", "manager", "flush", Some(2.0)),
    row("read_cold", "manager", "flush", Some(2.0)),
    // Throughput and, for incremental, 1 / latency: >= 2x ops/s is <= 0.5x the JS time.
    // For these rows the layer column is the transport between the two cores.
    row("replicate_pipe", "pipe", "flush", Some(5.0)),
    row("replicate_pipe", "tcp", "flush", Some(5.0)),
    row("replicate_incremental", "pipe", "flush", Some(2.0)),
    row("replicate_incremental", "tcp", "flush", Some(2.0)),
    // Discovery on a DHT (loopback-only network namespace): connect = 1 / seconds from
    // the client's join to its first connection, so >= 1x is "no slower than JS".
    row("swarm_connect", "swarm", "flush", Some(1.0)),
    row("swarm_replicate", "swarm", "flush", Some(1.0)),
    // The same on our own UDX stream only (no direct TCP endpoint advertised), both
    // peers in one process; issue 22: >= 3x JS <-> JS.
    row("swarm_connect", "udx", "flush", Some(1.0)),
    row("swarm_replicate", "udx", "flush", Some(3.0)),
    row("append_single", "core", "fsync-per-batch", None),
    row("append_batch", "core", "fsync-per-batch", None),
    // ATLAS adapter, 100,000 nodes (no JS anchor: informational). Query rows: ops/s =
    // queries/s; p50_ms / p99_ms in target/bench/results.jsonl.
    row("atlas_store", "manager", "flush", None),
    row("atlas_query_time", "manager", "flush", None),
    row("atlas_query_agent", "manager", "flush", None),
    row("atlas_rebuild", "manager", "flush", None),
    // ATLAS on a fresh sparse replica of a 100,000-node log (issue 23): ops/s = 1 / time
    // to first answer of "the last 10 minutes"; blocks transferred are printed below the
    // table (fields blocks_sent_by_writer, answer_nodes, ... in results.jsonl).
    row("atlas_sparse", "manager", "flush", None),
    row("atlas_sparse_burst", "manager", "flush", None),
    // Scale (issue 14, no JS anchor: informational): 1,000 open, idle, replication-enabled
    // logs in one store; ops/s = logs opened per second. Memory and descriptors per log
    // (bounded in all by the store's max_open_files) are printed below the table (fields
    // rss_per_idle_log_bytes, fds_per_idle_log, fds_idle, max_open_files, ... in
    // target/bench/results.jsonl).
    row("idle_logs", "manager", "flush", None),
    // Issue 21 (no JS anchor: informational): 1 MiB blocks through the manager on a
    // 2-worker runtime with a probe task; worst_stall_ms / p99_stall_ms (how late the
    // probe woke) are printed below the table.
    row("large_append", "manager", "flush", None),
    row("large_read", "manager", "flush", None),
];

/// Workloads the JS harness has no counterpart for.
fn has_js_anchor(workload: &str) -> bool {
    !workload.starts_with("atlas_") && !workload.starts_with("large_") && workload != "idle_logs"
}

/// Where cargo builds (`CARGO_TARGET_DIR` respected, as `cargo build` does).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root().join(t) })
        .unwrap_or_else(|| root().join("target"))
}

fn anchor_dir() -> PathBuf {
    root()
        .join("..")
        .join("shared")
        .join("anchors")
        .join("js-bench")
}

pub(crate) fn run(args: &BenchArgs) -> Result {
    run_step(
        "build the bench binary (release)",
        cargo().args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "nova-hypercore-bench",
        ]),
    )?;
    let bin = target_dir().join("release").join("nova-hypercore-bench");
    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|r| args.only.is_empty() || args.only.iter().any(|o| o == r.workload))
        .filter(|r| {
            let ok = !needs_netns(r.workload) || crate::netns_available();
            if !ok {
                eprintln!(
                    "skipping {}: it needs root with `unshare` and `ip` to run in a loopback-only network namespace",
                    r.workload
                );
            }
            ok
        })
        .collect();
    let js = if args.no_js { None } else { prepare_js() };
    let js_workloads: Vec<&str> = {
        let mut v: Vec<&str> = rows.iter().map(|r| r.workload).collect();
        v.retain(|w| has_js_anchor(w));
        v.sort();
        v.dedup();
        v
    };

    let out_dir = root().join("target").join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let mut ours: BTreeMap<(&str, &str, &str), Vec<Value>> = BTreeMap::new();
    let mut theirs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut raw = String::new();
    for run in 1..=args.runs {
        for r in &rows {
            eprintln!(
                "run {run}/{}: rust {} ({}, {})",
                args.runs, r.workload, r.layer, r.durability
            );
            let mut cmd = Command::new(&bin);
            cmd.args([
                "--workload",
                r.workload,
                "--layer",
                r.layer,
                "--durability",
                r.durability,
            ]);
            let line = one_line(&mut in_netns_if_needed(r.workload, cmd))?;
            raw.push_str(&format!("{line}\n"));
            ours.entry((r.workload, r.layer, r.durability))
                .or_default()
                .push(line);
        }
        if let Some(js) = &js {
            for workload in &js_workloads {
                eprintln!("run {run}/{}: js {workload}", args.runs);
                let mut cmd = Command::new("node");
                cmd.arg(js.join("bench.mjs")).args(["--workload", workload]);
                match one_line(&mut in_netns_if_needed(workload, cmd)) {
                    Ok(line) => {
                        raw.push_str(&format!("{line}\n"));
                        theirs.entry(workload.to_string()).or_default().push(line);
                    }
                    Err(e) => eprintln!("warning: js {workload} failed: {e}"),
                }
            }
        }
    }
    std::fs::write(out_dir.join("results.jsonl"), &raw).map_err(|e| e.to_string())?;

    let anchors = read_anchor_results();
    let mut report = String::new();
    report.push_str(&format!(
        "JS reference: {}\n\n",
        if theirs.is_empty() {
            "medians from ../shared/anchors/js-bench/RESULTS.md (node not run in this session)"
        } else {
            "JS harness run in this session, interleaved with ours (same machine, same window)"
        }
    ));
    report.push_str(
        "| workload | layer | durability | ours ops/s | ours MB/s | ours peak RSS MiB | JS ops/s | ours/JS | target | verdict |\n",
    );
    report.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    let mut misses = Vec::new();
    for r in &rows {
        let (workload, layer, durability, target) = (r.workload, r.layer, r.durability, &r.target);
        let runs = ours
            .get(&(workload, layer, durability))
            .cloned()
            .unwrap_or_default();
        let ops = median(&runs, "ops_per_s");
        let mbs = median(&runs, "mb_per_s");
        let rss = median(&runs, "peak_rss_mib");
        let js_ops = if theirs.is_empty() {
            anchors.get(workload).copied()
        } else {
            theirs.get(workload).map(|r| median(r, "ops_per_s"))
        };
        let ratio = js_ops.map(|j| ops / j);
        let verdict = match (target, ratio, durability) {
            (Some(t), Some(r), "flush") if r >= *t => "meets".to_owned(),
            (Some(t), Some(r), "flush") => {
                misses.push(format!("{workload} ({layer}) {r:.2}x < {t}x"));
                "MISSES".to_owned()
            }
            _ => "informational (no JS row at this durability)".to_owned(),
        };
        report.push_str(&format!(
            "| {workload} | {layer} | {durability} | {ops:.0} | {mbs:.2} | {rss:.1} | {} | {} | {} | {verdict} |\n",
            js_ops.map_or("-".into(), |j| format!("{j:.0}")),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            target.map_or("-".into(), |t| format!(">= {t}x")),
        ));
    }
    if rows.iter().any(|r| r.workload.starts_with("replicate")) {
        for r in rows.iter().filter(|r| r.workload.starts_with("replicate")) {
            let runs = ours
                .get(&(r.workload, r.layer, r.durability))
                .cloned()
                .unwrap_or_default();
            let rss = median(&runs, "peak_rss_mib");
            if rss > REPLICATE_RSS_MIB {
                misses.push(format!(
                    "{} ({}) peak RSS {rss:.1} MiB > {REPLICATE_RSS_MIB} MiB",
                    r.workload, r.layer
                ));
            }
        }
        report.push_str(&format!(
            "\nReplicate rows: peak RSS target <= {REPLICATE_RSS_MIB} MiB (both peers in one process).\n"
        ));
    }
    if rows.iter().any(|r| r.workload == "replicate_pipe") {
        match syscalls_per_replicated_block(&bin) {
            Some(per_block) => {
                let verdict = if per_block <= 3.0 { "meets" } else { "MISSES" };
                if per_block > 3.0 {
                    misses.push(format!("{per_block:.2} syscalls per replicated block > 3"));
                }
                report.push_str(&format!(
                    "Syscalls per replicated block (`strace -f -c`, replicate_pipe over the pipe, both peers, all syscalls / {REPL_BLOCKS} blocks): {per_block:.2} (target <= 3, {verdict}).\n"
                ));
            }
            None => report
                .push_str("Syscalls per replicated block: not measured (strace not installed).\n"),
        }
    }
    if let Some(r) = rows.iter().find(|r| r.workload == "idle_logs") {
        let runs = ours
            .get(&(r.workload, r.layer, r.durability))
            .cloned()
            .unwrap_or_default();
        report.push_str(&format!(
            "\nIdle logs ({} replication-enabled logs in one store, no peer): {:.1} KiB RSS and {:.2} open files per log \
             ({} descriptors in all, budget max_open_files = {}); \
             with a peer's replica of each synced over one TCP connection (both stores in one process): {:.1} KiB RSS and {:.2} open files per log \
             ({} descriptors in all: both budgets and the sockets).\n",
            median(&runs, "logs"),
            median(&runs, "rss_per_idle_log_bytes") / 1024.0,
            median(&runs, "fds_per_idle_log"),
            median(&runs, "fds_idle"),
            median(&runs, "max_open_files"),
            median(&runs, "rss_per_synced_log_bytes") / 1024.0,
            median(&runs, "fds_per_synced_log"),
            median(&runs, "fds_synced"),
        ));
    }
    for r in rows
        .iter()
        .filter(|r| r.workload.starts_with("atlas_sparse"))
    {
        let runs = ours
            .get(&(r.workload, r.layer, r.durability))
            .cloned()
            .unwrap_or_default();
        report.push_str(&format!(
            "\n{} (100,000 nodes, one every {:.0} ms; a fresh sparse replica over loopback TCP): \
             first answer of the last 10 minutes after {:.0} ms ({:.0} ms of it the query), \
             {:.0} nodes in the answer, {:.0} blocks sent by the writer ({:.0} beyond the answer), \
             {:.0} held by the replica; the agent's last 10 minutes in {:.1} ms, {:.0} blocks sent in all (medians).\n",
            r.workload,
            median(&runs, "step_ms"),
            median(&runs, "time_to_first_answer_ms"),
            median(&runs, "query_ms"),
            median(&runs, "answer_nodes"),
            median(&runs, "blocks_sent_by_writer"),
            median(&runs, "blocks_beyond_answer"),
            median(&runs, "blocks_held_by_replica"),
            median(&runs, "agent_query_ms"),
            median(&runs, "blocks_sent_after_agent_query"),
        ));
    }
    for r in rows.iter().filter(|r| r.workload.starts_with("large_")) {
        let runs = ours
            .get(&(r.workload, r.layer, r.durability))
            .cloned()
            .unwrap_or_default();
        report.push_str(&format!(
            "\n{} (1 MiB blocks, 2-worker runtime): a task asking to wake every 1 ms woke at worst {:.1} ms late, p99 {:.2} ms (medians of the runs).\n",
            r.workload,
            median(&runs, "worst_stall_ms"),
            median(&runs, "p99_stall_ms"),
        ));
    }
    if (args.only.is_empty() || args.only.iter().any(|o| o == NAT_ROW)) && !args.no_js {
        nat_rows(args.runs, &mut report, &mut misses)?;
    }
    if (args.only.is_empty() || args.only.iter().any(|o| o == crate::udx_bench::ROW)) && !args.no_js
    {
        crate::udx_bench::rows(args.runs, &mut report, &mut misses)?;
    }
    report.push_str(
        "\nDurability: `flush` = written to the OS before an append returns, not fsynced \
         (same as JS hypercore 11 defaults: RocksDB WAL write, sync=false). \
         `fsync-per-batch` adds one fdatasync per append call (power-loss durable).\n",
    );
    println!("{report}");
    std::fs::write(out_dir.join("REPORT.md"), &report).map_err(|e| e.to_string())?;
    eprintln!("raw runs: target/bench/results.jsonl; report: target/bench/REPORT.md");
    if args.strict && !misses.is_empty() {
        return Err(format!("targets missed: {}", misses.join(", ")));
    }
    Ok(())
}

/// The row across simulated NATs (run by the nat suite's machinery, not the bench
/// binary): `--only nat_connect_sync` selects it.
const NAT_ROW: &str = "nat_connect_sync";

/// Connect and connect + full sync across two consistent NATs, each two-NAT pair with a
/// Rust peer against JS -> JS in the same run (medians); target: within 2x of JS.
fn nat_rows(runs: usize, report: &mut String, misses: &mut Vec<String>) -> Result {
    if !crate::netns_available() {
        eprintln!("skipping {NAT_ROW}: it needs root with `ip` to make network namespaces");
        return Ok(());
    }
    let tmp = std::env::temp_dir().join(format!("nova-bench-nat-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let results = crate::nat::bench(&tmp, runs);
    let _ = std::fs::remove_dir_all(&tmp);
    let results = results?;
    let med = |v: &[crate::nat::ConnectSync], full: bool| -> f64 {
        let mut xs: Vec<f64> = v
            .iter()
            .map(|(c, f)| {
                if full {
                    f.as_secs_f64()
                } else {
                    c.as_secs_f64()
                }
            })
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let Some((_, js)) = results.iter().find(|(name, _)| name == "JS -> JS") else {
        return Err("the nat bench row ran no JS -> JS anchor".into());
    };
    let (js_connect, js_full) = (med(js, false), med(js, true));
    report.push_str(&format!(
        "\n{NAT_ROW}: across two consistent NATs (the nat suite's topology, {runs} runs, medians; \
         connect = reader start to its first connection, full = reader start to all 2,000 entries verified; \
         ours/JS = JS time / our time, target >= 0.5x = within 2x of JS -> JS)\n\n\
         | pair | connect s | JS -> JS connect s | ours/JS | connect + full sync s | JS -> JS s | ours/JS | verdict |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n"
    ));
    for (name, times) in results.iter().filter(|(name, _)| name != "JS -> JS") {
        let (connect, full) = (med(times, false), med(times, true));
        let (rc, rf) = (js_connect / connect, js_full / full);
        let verdict = if rc >= 0.5 { "meets" } else { "MISSES" };
        if rc < 0.5 {
            misses.push(format!("{NAT_ROW} ({name}) connect {rc:.2}x < 0.5x"));
        }
        report.push_str(&format!(
            "| {name} | {connect:.2} | {js_connect:.2} | {rc:.2}x | {full:.2} | {js_full:.2} | {rf:.2}x | {verdict} (connect) |\n"
        ));
    }
    Ok(())
}

/// Peak RSS allowed for the replicate rows (issue 11).
const REPLICATE_RSS_MIB: f64 = 32.0;
/// Blocks the replicate_pipe workload moves (as the bench binary's REPL_N).
const REPL_BLOCKS: f64 = 50_000.0;

/// Runs replicate_pipe (pipe) once under `strace -f -c` and returns every syscall of the
/// process (both peers, set-up included) divided by the blocks replicated.
fn syscalls_per_replicated_block(bin: &Path) -> Option<f64> {
    if !have("strace", "-V") {
        return None;
    }
    let out = root().join("target").join("bench").join("strace.txt");
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg(bin)
        .args(["--workload", "replicate_pipe", "--layer", "pipe"])
        .stdout(std::process::Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let text = std::fs::read_to_string(&out).ok()?;
    // The summary's last line: "100.00 <seconds> <usecs/call> <calls> [errors] total".
    let total = text
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with("total"))?;
    let calls: f64 = total.split_whitespace().nth(3)?.parse().ok()?;
    Some(calls / REPL_BLOCKS)
}

/// Workloads that use a DHT: they run where only `lo` exists.
fn needs_netns(workload: &str) -> bool {
    workload.starts_with("swarm")
}

/// `cmd` itself, or `cmd` run inside a fresh network namespace with only `lo` up.
fn in_netns_if_needed(workload: &str, cmd: Command) -> Command {
    if !needs_netns(workload) {
        return cmd;
    }
    let mut wrapped = Command::new("unshare");
    wrapped
        .args([
            "--net",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

fn one_line(cmd: &mut Command) -> Result<Value> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("{cmd:?} printed no JSON line"))?;
    serde_json::from_str(line).map_err(|e| format!("bad JSON from {cmd:?}: {e}"))
}

fn median(runs: &[Value], field: &str) -> f64 {
    let mut v: Vec<f64> = runs.iter().filter_map(|r| r[field].as_f64()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Installs the JS harness into `target/js-bench` with `npm ci`. None if node/npm are
/// missing or the install fails (the report then falls back to RESULTS.md).
fn prepare_js() -> Option<PathBuf> {
    if !have("node", "--version") || !have("npm", "--version") {
        eprintln!("node/npm not found: comparing against RESULTS.md instead of a live JS run");
        return None;
    }
    let src = anchor_dir();
    let dst = root().join("target").join("js-bench");
    if std::fs::create_dir_all(&dst).is_err() {
        return None;
    }
    for f in ["package.json", "package-lock.json", "bench.mjs"] {
        if let Err(e) = std::fs::copy(src.join(f), dst.join(f)) {
            eprintln!("cannot copy the JS harness ({f}): {e}; using RESULTS.md");
            return None;
        }
    }
    let ok = run_step(
        "npm ci (JS anchor harness)",
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dst),
    );
    match ok {
        Ok(()) => Some(dst),
        Err(e) => {
            eprintln!("{e}: using RESULTS.md");
            None
        }
    }
}

/// Median ops/s per workload from the anchor's RESULTS.md table.
fn read_anchor_results() -> BTreeMap<String, f64> {
    let path: &Path = &anchor_dir().join("RESULTS.md");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | workload | ops | median ops/s | ...
        if cells.len() > 4
            && let Ok(v) = cells[3].replace(',', "").parse::<f64>()
        {
            out.insert(cells[1].to_owned(), v);
        }
    }
    out
}
