//! The js suite's fork cases (docs/forks.md §8): a log's writer truncates and its
//! readers follow, across runtimes. Direct TCP (no DHT): forks are a replication
//! matter, the transport is covered by the other cases.
//!
//! - our writer (legacy, and v1 for hypercore 11) truncates while a JS reader follows
//!   it live: the JS reader must raise `truncate` with the cut and fork, then verify
//!   every entry of the new fork (old entries below the cut, `entry <i> f1` past it). A
//!   JS reader bisects our fork with `hash` requests; a server that declined them would
//!   loop the reader on `NoData` and it would never finish.
//! - a JS writer (hypercore 10, 11 compat, 11 default) truncates while our reader
//!   follows it: ours must report `truncate(cut, 1)` and verify every entry of the new
//!   fork, which needs the fork proof, the hash rounds and the reorg (docs/forks.md
//!   steps c and d).

use std::path::Path;

use crate::Result;
use crate::integration::{check, field};
use crate::interop::{LOG, node, path, rust_peer};

/// Entries before the truncation, the cut, and entries appended after it.
const BEFORE: u64 = 200;
const CUT: u64 = 100;
const AFTER: u64 = 150;

/// Our writer (`format`) truncates; a JS hypercore `js` reader connected to it follows.
pub(crate) fn our_writer_truncates_js_follows(tmp: &Path, js: &str, format: &str) -> Result {
    eprintln!("--> Rust {format} writer truncates, JS hypercore {js} reader follows (TCP)");
    let mut writer = rust_peer(
        "rust-writer",
        &[
            "--format",
            format,
            "write",
            &path(&tmp.join(format!("fork-rust-writer-{js}-{format}"))),
            LOG,
            &BEFORE.to_string(),
            "127.0.0.1:0",
        ],
    )?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let len = CUT + AFTER;
    let reader = node(
        "js-reader",
        &[
            "peer.mjs",
            "read-tcp",
            js,
            &path(&tmp.join(format!("fork-js-reader-{js}-{format}"))),
            &key,
            &format!("fork:{len}:1"),
            &addr,
        ],
    )?;
    reader.expect(&format!("PROGRESS {BEFORE} {BEFORE}"))?;
    writer.send(&format!("truncate {CUT}"))?;
    writer.expect(&format!("TRUNCATED {CUT} 1"))?;
    writer.send(&format!("append {AFTER}"))?;
    writer.expect(&format!("LENGTH {len}"))?;
    let truncated = reader.expect("TRUNCATE")?;
    let (ancestors, fork) = (field(&truncated, 1)?, field(&truncated, 2)?);
    reader.expect(&format!("VERIFIED {len}"))?;
    reader.wait()?;
    writer.close_stdin();
    writer.wait()?;
    check(
        &format!(
            "JS hypercore {js} followed our {format} writer's truncation to {CUT} (fork 1) and verified all {len} entries of the new fork"
        ),
        ancestors == CUT.to_string() && fork == "1",
        format!("JS saw truncate({ancestors}, {fork})"),
    )
}

/// A JS hypercore `js` writer truncates; our reader connected to it follows.
pub(crate) fn js_writer_truncates_rust_follows(tmp: &Path, js: &str) -> Result {
    eprintln!("--> JS hypercore {js} writer truncates, Rust reader follows (TCP)");
    let mut writer = node(
        "js-writer",
        &[
            "peer.mjs",
            "write-tcp",
            js,
            &path(&tmp.join(format!("fork-js-writer-{js}"))),
            &BEFORE.to_string(),
        ],
    )?;
    let ready = writer.expect("READY")?;
    let (key, addr) = (field(&ready, 1)?, field(&ready, 2)?);
    let len = CUT + AFTER;
    let reader = rust_peer(
        "rust-reader",
        &[
            "read",
            &path(&tmp.join(format!("fork-rust-reader-{js}"))),
            LOG,
            &key,
            &addr,
            &format!("fork:{len}:1"),
        ],
    )?;
    reader.expect(&format!("PROGRESS {BEFORE} {BEFORE}"))?;
    writer.send(&format!("truncate {CUT}"))?;
    writer.expect(&format!("TRUNCATED {CUT} 1"))?;
    writer.send(&format!("append {AFTER}"))?;
    writer.expect(&format!("LENGTH {len}"))?;
    let truncated = reader.expect("TRUNCATE")?;
    let (kept, fork) = (field(&truncated, 1)?, field(&truncated, 2)?);
    reader.expect(&format!("VERIFIED {len}"))?;
    reader.wait()?;
    writer.close_stdin();
    writer.wait()?;
    check(
        &format!(
            "our reader followed the JS hypercore {js} writer's truncation to {CUT} (fork 1) and verified all {len} entries of the new fork"
        ),
        kept == CUT.to_string() && fork == "1",
        format!("we saw truncate({kept}, {fork})"),
    )
}
