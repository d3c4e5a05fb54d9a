//! The bench row `udx_swarm` of `cargo xtask bench` (issue 22): 50,000 entries of 1 KiB
//! from a writer process to a reader process over the swarm, on a JS testnet in a
//! loopback-only network namespace, for each pair of runtimes: JS -> JS (the anchor,
//! measured in the same run), Rust -> JS, Rust -> Rust, JS -> Rust. The peers are the
//! interop suite's (`crates/manager/examples/peer.rs` built in release,
//! `js/interop/peer.mjs`); every connection of a Rust peer runs on our own UDX stream
//! (a `LIBUDX` line fails the run).
//!
//! What is measured, from the reader's lines as they arrive: connect = reader start to
//! its first connection (`CONNECTED`), transfer = `CONNECTED` to the last entry held
//! (`PROGRESS N N`); each peer's peak RSS and CPU time (`USAGE` lines; the writer's CPU
//! counted from its `READY`, after it made the log, the reader's for its whole life).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::integration::{Peer, field, number};
use crate::nat::Runtime;
use crate::{Result, cargo, root, run_step};

/// The row's name (`--only udx_swarm`).
pub(crate) const ROW: &str = "udx_swarm";
/// Entries per transfer, [`BYTES`] each.
const N: u64 = 50_000;
const BYTES: &str = "1024";
/// Peak RSS allowed for each Rust peer of the row (issue 22).
const RSS_MIB: f64 = 32.0;
/// The pairs, writer first; the first is the anchor.
const PAIRS: &[(Runtime, Runtime)] = &[
    (Runtime::Js, Runtime::Js),
    (Runtime::Rust, Runtime::Js),
    (Runtime::Rust, Runtime::Rust),
    (Runtime::Js, Runtime::Rust),
];

fn pair_name((w, r): (Runtime, Runtime)) -> String {
    format!("{} -> {}", w.name(), r.name())
}

/// Outside the namespace: builds the release peer, installs the JS packages, runs
/// [`inside`] in a fresh network namespace and adds the row's table to `report`.
pub(crate) fn rows(runs: usize, report: &mut String, misses: &mut Vec<String>) -> Result {
    if !crate::netns_available() {
        eprintln!(
            "skipping {ROW}: it needs root with `unshare` and `ip` for a loopback-only network namespace"
        );
        return Ok(());
    }
    run_step(
        "build the peer process (release)",
        cargo().args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "nova-hypercore-manager",
            "--example",
            "peer",
        ]),
    )?;
    crate::interop::prepare_js("the udx_swarm bench row")?;
    let out = root().join("target").join("bench").join("udx_swarm.jsonl");
    let _ = std::fs::remove_file(&out);
    let me = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    run_step(
        &format!("{ROW}: {runs} runs of each pair in a loopback-only network namespace"),
        Command::new("unshare")
            .arg("--net")
            .arg(me)
            .args(["bench-udx-inside", "--runs", &runs.to_string(), "--out"])
            .arg(&out)
            .current_dir(root()),
    )?;
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let results: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    report_rows(&results, runs, report, misses);
    Ok(())
}

fn median(results: &[Value], pair: &str, field: &str) -> f64 {
    let mut v: Vec<f64> = results
        .iter()
        .filter(|r| r["pair"] == pair)
        .filter_map(|r| r[field].as_f64())
        .collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report_rows(results: &[Value], runs: usize, report: &mut String, misses: &mut Vec<String>) {
    let mb = N as f64 * 1024.0 / 1e6;
    let anchor = pair_name(PAIRS[0]);
    let js_transfer = median(results, &anchor, "transfer_s");
    let js_connect = median(results, &anchor, "connect_s");
    report.push_str(&format!(
        "\n{ROW}: {N} entries of 1 KiB over the swarm (JS testnet on loopback, writer and reader \
         in their own processes, {runs} runs, medians; connect = reader start to its first \
         connection, transfer = first connection to the last entry held; ours/JS = JS -> JS \
         transfer time / this pair's; CPU ms per MB: writer from its READY, reader whole \
         process, MB = 10^6 bytes)\n\n\
         | pair | connect s | transfer s | MB/s | ours/JS | target | writer peak RSS MiB | reader peak RSS MiB | writer CPU ms/MB | reader CPU ms/MB | verdict |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    ));
    for &pair in PAIRS {
        let name = pair_name(pair);
        let connect = median(results, &name, "connect_s");
        let transfer = median(results, &name, "transfer_s");
        let (w_rss, r_rss) = (
            median(results, &name, "writer_rss_mib"),
            median(results, &name, "reader_rss_mib"),
        );
        let (w_cpu, r_cpu) = (
            median(results, &name, "writer_cpu_s"),
            median(results, &name, "reader_cpu_s"),
        );
        let ratio = js_transfer / transfer;
        let target = match pair {
            (Runtime::Rust, Runtime::Js) => Some(1.0),
            (Runtime::Rust, Runtime::Rust) => Some(3.0),
            _ => None,
        };
        let mut verdict = Vec::new();
        if let Some(t) = target {
            if ratio >= t {
                verdict.push("meets".to_owned());
            } else {
                verdict.push("MISSES".to_owned());
                misses.push(format!("{ROW} ({name}) {ratio:.2}x < {t}x"));
            }
        }
        if pair == (Runtime::Rust, Runtime::Rust) {
            if connect <= js_connect {
                verdict.push("connect <= JS's".to_owned());
            } else {
                verdict.push(format!("connect MISSES (JS {js_connect:.2} s)"));
                misses.push(format!(
                    "{ROW} ({name}) connect {connect:.2} s > JS {js_connect:.2} s"
                ));
            }
        }
        for (side, kind, rss) in [("writer", pair.0, w_rss), ("reader", pair.1, r_rss)] {
            if kind == Runtime::Rust && rss > RSS_MIB {
                verdict.push(format!("{side} RSS MISSES"));
                misses.push(format!(
                    "{ROW} ({name}) {side} peak RSS {rss:.1} MiB > {RSS_MIB} MiB"
                ));
            }
        }
        if verdict.is_empty() {
            verdict.push("informational".to_owned());
        }
        report.push_str(&format!(
            "| {name} | {connect:.2} | {transfer:.2} | {:.1} | {ratio:.2}x | {} | {w_rss:.1} | {r_rss:.1} | {:.1} | {:.1} | {} |\n",
            mb / transfer,
            target.map_or("-".into(), |t| format!(">= {t}x")),
            w_cpu * 1000.0 / mb,
            r_cpu * 1000.0 / mb,
            verdict.join(", "),
        ));
    }
    report.push_str(&format!(
        "\nTargets: Rust -> JS at least as fast as JS -> JS; Rust -> Rust >= 3x and its connect \
         no slower than JS's; each Rust peer's peak RSS <= {RSS_MIB} MiB.\n"
    ));
}

/// Inside the namespace (`cargo xtask bench-udx-inside`): a JS testnet, then `runs`
/// rounds of every pair, one JSON line per transfer appended to `out`.
pub(crate) fn inside(runs: usize, out: &Path) -> Result {
    run_step(
        "bring lo up",
        Command::new("ip").args(["link", "set", "lo", "up"]),
    )?;
    let peer = root().join("target/release/examples/peer");
    let tmp = std::env::temp_dir().join(format!("nova-bench-udx-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let testnet = node("testnet", &["testnet.mjs"])?;
    let bootstrap = field(&testnet.expect("BOOTSTRAP")?, 1)?;
    let mut lines = String::new();
    let mut result = Ok(());
    'runs: for run in 1..=runs {
        for &pair in PAIRS {
            let dir = tmp.join(format!("run-{run}-{}-{}", pair.0.name(), pair.1.name()));
            eprintln!("run {run}/{runs}: {ROW} {}", pair_name(pair));
            match transfer(pair, &dir, &bootstrap, &peer) {
                Ok(v) => lines.push_str(&format!("{v}\n")),
                Err(e) => {
                    result = Err(format!("{} (run {run}): {e}", pair_name(pair)));
                    break 'runs;
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    std::fs::write(out, lines).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    testnet.wait()
}

fn node(name: &'static str, args: &[&str]) -> Result<Peer> {
    let mut cmd = Command::new("node");
    cmd.args(args)
        .env("NOVA_ENTRY_BYTES", BYTES)
        .current_dir(crate::interop::js_dir());
    Peer::start(name, cmd)
}

fn rust(name: &'static str, peer: &PathBuf, args: &[&str]) -> Result<Peer> {
    let mut cmd = Command::new(peer);
    cmd.args(args).env("NOVA_ENTRY_BYTES", BYTES);
    Peer::start(name, cmd)
}

/// `USAGE <peak RSS MiB> <CPU seconds>`.
fn usage(line: &str) -> Result<(f64, f64)> {
    let parse = |i| {
        field(line, i)?
            .parse::<f64>()
            .map_err(|e| format!("malformed line {line:?}: {e}"))
    };
    Ok((parse(1)?, parse(2)?))
}

fn transfer(
    pair: (Runtime, Runtime),
    dir: &Path,
    bootstrap: &str,
    peer: &PathBuf,
) -> Result<Value> {
    let n = N.to_string();
    let swarm = format!("swarm:{bootstrap}");
    let wdir = dir.join("writer").display().to_string();
    let rdir = dir.join("reader").display().to_string();
    let mut writer = match pair.0 {
        Runtime::Rust => rust(
            "rust-writer",
            peer,
            &["--format", "v1", "write", &wdir, "notes", &n, &swarm],
        )?,
        Runtime::Js => node(
            "js-writer",
            &["peer.mjs", "write", "11", &wdir, &n, bootstrap],
        )?,
    };
    let ready = writer.expect("READY")?;
    let key = field(&ready, if pair.0 == Runtime::Rust { 2 } else { 1 })?;
    let (_, writer_cpu_start) = usage(&writer.expect("USAGE")?)?;
    let started = Instant::now();
    let reader = match pair.1 {
        Runtime::Rust => rust(
            "rust-reader",
            peer,
            &["read", &rdir, "notes", &key, &swarm, &n],
        )?,
        Runtime::Js => node(
            "js-reader",
            &["peer.mjs", "read", "11", &rdir, &key, &n, bootstrap],
        )?,
    };
    reader.expect("CONNECTED")?;
    let connect = started.elapsed();
    reader.expect(&format!("PROGRESS {N} {N}"))?;
    let done = started.elapsed();
    let verified = number(&reader.expect("VERIFIED")?, 1)?;
    if verified != N {
        return Err(format!("the reader verified {verified} entries, not {N}"));
    }
    let (reader_rss, reader_cpu) = usage(&reader.expect("USAGE")?)?;
    reader.wait()?;
    writer.close_stdin();
    let (writer_rss, writer_cpu) = usage(&writer.expect("USAGE")?)?;
    writer.wait()?;
    Ok(json!({
        "pair": pair_name(pair),
        "connect_s": connect.as_secs_f64(),
        "transfer_s": (done - connect).as_secs_f64(),
        "writer_rss_mib": writer_rss,
        "writer_cpu_s": writer_cpu - writer_cpu_start,
        "reader_rss_mib": reader_rss,
        "reader_cpu_s": reader_cpu,
    }))
}
