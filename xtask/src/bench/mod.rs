//! `cargo xtask bench`: our workloads next to the JS anchor, as ratios.
//!
//! Owns: which rows exist and their targets (`ROWS`), running them (each run a fresh
//! process, like the JS harness; runs interleaved round-robin across workloads and
//! runtimes, medians compared) and collecting their JSON lines into a
//! [`report::Report`], written as `target/bench/report.md` and drawn as
//! `target/bench/report.svg` ([`chart`]). When `node` and `npm` are present, the JS
//! harnesses ([`js`]: the shared anchor `../shared/anchors/js-bench`, and `js/bench` for
//! the rows it lacks) are installed into scratch directories with `npm ci` and run in the
//! same session; otherwise the anchor's `RESULTS.md` medians are used and the report
//! says so.
//!
//! Must not: hold product code or measure anything itself (the bench binary,
//! `crates/bench`, and the JS harnesses measure). Used by `cargo xtask bench`.

mod chart;
mod footprint;
mod js;
mod report;

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
    // Issue 25, against JS corestore 6 / hypercore 10 (js/bench, same file format): bytes
    // on disk per payload byte (target <= 1.1x JS) and 1,000 logs opened, appended,
    // reopened (time and peak RSS: <= 1x JS). Targets in footprint.rs.
    row("disk_usage", "manager", "flush", None),
    row("many_logs", "manager", "flush", None),
];

/// Workloads the shared JS anchor runs (disk_usage there is hypercore 11's, reported
/// beside the hypercore 10 row of our own harness).
fn has_js_anchor(workload: &str) -> bool {
    !workload.starts_with("atlas_")
        && !workload.starts_with("large_")
        && workload != "idle_logs"
        && workload != "many_logs"
}

/// Rows compared as ratios of bytes, seconds or memory (smaller is better), in their
/// own table: see `footprint.rs`.
fn is_footprint(workload: &str) -> bool {
    matches!(workload, "disk_usage" | "many_logs")
}

/// Where cargo builds (`CARGO_TARGET_DIR` respected, as `cargo build` does).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root().join(t) })
        .unwrap_or_else(|| root().join("target"))
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
    let workloads = |keep: fn(&str) -> bool| -> Vec<&'static str> {
        let mut v: Vec<&'static str> = rows.iter().map(|r| r.workload).collect();
        v.retain(|w| keep(w));
        v.sort();
        v.dedup();
        v
    };
    let anchor_workloads = workloads(has_js_anchor);
    let repo_workloads = workloads(js::in_repo_harness);
    let (anchor_js, repo_js) = if args.no_js {
        (None, None)
    } else {
        (
            (!anchor_workloads.is_empty())
                .then(js::prepare_anchor)
                .flatten(),
            (!repo_workloads.is_empty())
                .then(js::prepare_repo)
                .flatten(),
        )
    };

    let out_dir = root().join("target").join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let mut ours: BTreeMap<(&str, &str, &str), Vec<Value>> = BTreeMap::new();
    let mut theirs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut theirs_repo: BTreeMap<String, Vec<Value>> = BTreeMap::new();
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
        for (harness, list, into) in [
            (&anchor_js, &anchor_workloads, &mut theirs),
            (&repo_js, &repo_workloads, &mut theirs_repo),
        ] {
            let Some(dir) = harness else { continue };
            for workload in list {
                eprintln!("run {run}/{}: js {workload} ({})", args.runs, dir.display());
                let mut cmd = Command::new("node");
                cmd.arg(dir.join("bench.mjs"))
                    .args(["--workload", workload]);
                match one_line(&mut in_netns_if_needed(workload, cmd)) {
                    Ok(line) => {
                        raw.push_str(&format!("{line}\n"));
                        into.entry(workload.to_string()).or_default().push(line);
                    }
                    Err(e) => eprintln!("warning: js {workload} failed: {e}"),
                }
            }
        }
    }
    std::fs::write(out_dir.join("results.jsonl"), &raw).map_err(|e| e.to_string())?;

    let anchors = js::read_anchor_results();
    let runs_of = |r: &Row| {
        ours.get(&(r.workload, r.layer, r.durability))
            .cloned()
            .unwrap_or_default()
    };
    let mut throughput = Vec::new();
    let mut rss = Vec::new();
    for r in rows.iter().filter(|r| !is_footprint(r.workload)) {
        let runs = runs_of(r);
        let js_runs = theirs.get(r.workload).filter(|v| !v.is_empty());
        let js_ops = match js_runs {
            Some(v) => Some(median(v, "ops_per_s")),
            None if theirs.is_empty() && has_js_anchor(r.workload) => {
                anchors.get(r.workload).copied()
            }
            None => None,
        };
        let row = report::ThroughputRow {
            workload: r.workload.into(),
            layer: r.layer.into(),
            durability: r.durability.into(),
            ours_ops: median(&runs, "ops_per_s"),
            ours_mbs: median(&runs, "mb_per_s"),
            ours_rss_mib: median(&runs, "peak_rss_mib"),
            js_ops,
            js_rss_mib: js_runs.map(|v| median(v, "peak_rss_mib")),
            target: r.target,
        };
        rss.push(report::RssPair {
            label: if r.durability == "flush" {
                format!("{} ({})", r.workload, r.layer)
            } else {
                format!("{} ({}, {})", r.workload, r.layer, r.durability)
            },
            ours_mib: row.ours_rss_mib,
            js_mib: row.js_rss_mib,
        });
        throughput.push(row);
    }
    let mut footprint = Vec::new();
    for r in rows.iter().filter(|r| is_footprint(r.workload)) {
        let runs = runs_of(r);
        let js_runs = theirs_repo.get(r.workload).cloned().unwrap_or_default();
        let anchor_runs = theirs.get(r.workload).cloned().unwrap_or_default();
        footprint.extend(footprint::rows(r.workload, &runs, &js_runs, &anchor_runs));
        rss.push(report::RssPair {
            label: r.workload.into(),
            ours_mib: median(&runs, "peak_rss_mib"),
            js_mib: (!js_runs.is_empty()).then(|| median(&js_runs, "peak_rss_mib")),
        });
    }

    let mut notes = String::new();
    let mut misses = Vec::new();
    if rows.iter().any(|r| r.workload.starts_with("replicate")) {
        for r in rows.iter().filter(|r| r.workload.starts_with("replicate")) {
            let rss = median(&runs_of(r), "peak_rss_mib");
            if rss > REPLICATE_RSS_MIB {
                misses.push(format!(
                    "{} ({}) peak RSS {rss:.1} MiB > {REPLICATE_RSS_MIB} MiB",
                    r.workload, r.layer
                ));
            }
        }
        notes.push_str(&format!(
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
                notes.push_str(&format!(
                    "Syscalls per replicated block (`strace -f -c`, replicate_pipe over the pipe, both peers, all syscalls / {REPL_BLOCKS} blocks): {per_block:.2} (target <= 3, {verdict}).\n"
                ));
            }
            None => notes
                .push_str("Syscalls per replicated block: not measured (strace not installed).\n"),
        }
    }
    if let Some(r) = rows.iter().find(|r| r.workload == "idle_logs") {
        let runs = runs_of(r);
        notes.push_str(&format!(
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
        let runs = runs_of(r);
        notes.push_str(&format!(
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
        let runs = runs_of(r);
        notes.push_str(&format!(
            "\n{} (1 MiB blocks, 2-worker runtime): a task asking to wake every 1 ms woke at worst {:.1} ms late, p99 {:.2} ms (medians of the runs).\n",
            r.workload,
            median(&runs, "worst_stall_ms"),
            median(&runs, "p99_stall_ms"),
        ));
    }
    for r in rows.iter().filter(|r| is_footprint(r.workload)) {
        let js_runs = theirs_repo.get(r.workload).cloned().unwrap_or_default();
        notes.push_str(&footprint::note(r.workload, &runs_of(r), &js_runs));
    }
    if (args.only.is_empty() || args.only.iter().any(|o| o == NAT_ROW)) && !args.no_js {
        nat_rows(args.runs, &mut notes, &mut misses)?;
    }
    if (args.only.is_empty() || args.only.iter().any(|o| o == crate::udx_bench::ROW)) && !args.no_js
    {
        crate::udx_bench::rows(args.runs, &mut notes, &mut misses)?;
    }
    notes.push_str(
        "\nDurability: `flush` = written to the OS before an append returns, not fsynced \
         (same as JS hypercore 11 defaults: RocksDB WAL write, sync=false). \
         `fsync-per-batch` adds one fdatasync per append call (power-loss durable).\n",
    );
    let js_source = match (theirs.is_empty(), theirs_repo.is_empty()) {
        (true, true) if anchor_workloads.is_empty() => {
            "none (no row has a JS counterpart run)".into()
        }
        (true, true) => {
            "medians from ../shared/anchors/js-bench/RESULTS.md (node not run in this session)"
                .into()
        }
        _ => {
            "JS harnesses run in this session, interleaved with ours (same machine, same window): \
              ../shared/anchors/js-bench (hypercore 11, corestore 7) for the ops/s rows, \
              js/bench (hypercore 10, corestore 6) for disk_usage and many_logs"
                .into()
        }
    };
    let report = report::Report {
        meta: report::Meta::collect(args.runs, js_source),
        throughput,
        footprint,
        rss,
        notes,
    };
    misses.extend(report.misses());
    println!("{}", report.markdown());
    let md = report.write_markdown(&out_dir).map_err(|e| e.to_string())?;
    let svg = chart::write_svg(&report, &out_dir).map_err(|e| e.to_string())?;
    eprintln!(
        "raw runs: target/bench/results.jsonl; report: {}; chart: {}",
        md.display(),
        svg.display()
    );
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
