//! The js suite's seek cases: a sparse reader finds the block holding a byte of the
//! log (`seek`, JS `core.seek`) with its peer's seek proofs, no block travelling, both
//! ways across runtimes. Direct TCP (no DHT).
//!
//! Encrypted logs (called from `interop_encryption.rs`): a keyed reader seeks in
//! plaintext bytes and sends `Request.seek.padding = 8`; the server, keyed or a seeder
//! without the key, subtracts 8 bytes per block (docs/encryption-research.md §1.5,
//! §1.7), so the answer is the same block and offset as for the plaintext log.

use std::path::Path;

use crate::Result;
use crate::integration::{check, field, number};
use crate::interop::{LOG, node, node_with, path, rust_peer, rust_peer_with};

/// Entries of the log; the byte sought falls in the middle.
pub(crate) const ENTRIES: u64 = 1_000;
/// The byte sought (in the plaintext: `entry 0`, `entry 1`, ... back to back).
const BYTES: u64 = 4_567;

/// Where byte `bytes` of entries `entry 0`, `entry 1`, ... falls: (seq, offset).
fn expected(bytes: u64) -> (u64, u64) {
    let mut start = 0;
    for i in 0..ENTRIES {
        let end = start + format!("entry {i}").len() as u64;
        if bytes < end {
            return (i, bytes - start);
        }
        start = end;
    }
    (ENTRIES, 0)
}

/// A Rust writer and a JS `js` sparse reader seeking, then a JS writer and our sparse
/// reader seeking.
pub(crate) fn seek_both_ways(tmp: &Path, js: &str) -> Result {
    eprintln!(
        "--> seek: JS hypercore {js} sparse reader from our writer, ours from a JS writer (TCP)"
    );
    let bytes = BYTES;
    let (seq, offset) = expected(bytes);
    let n = ENTRIES.to_string();
    let writer = rust_peer(
        "rust-writer",
        &[
            "write",
            &path(&tmp.join(format!("seek-rust-writer-{js}"))),
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
            js,
            &path(&tmp.join(format!("seek-js-reader-{js}"))),
            &key,
            &format!("seek:{bytes}"),
            &addr,
        ],
    )?;
    let found = reader.expect("SEEK")?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    reader.wait()?;
    drop(writer);
    check(
        &format!(
            "JS hypercore {js} seeks byte {bytes} of our log: block {seq} offset {offset}, no block fetched"
        ),
        (number(&found, 1)?, number(&found, 2)?, fetched) == (seq, offset, 0),
        format!("{found}, fetched {fetched}"),
    )?;
    let writer = node(
        "js-writer",
        &[
            "peer.mjs",
            "write-tcp",
            js,
            &path(&tmp.join(format!("seek-js-writer-{js}"))),
            &n,
        ],
    )?;
    let ready = writer.expect("READY")?;
    let (key, addr) = (field(&ready, 1)?, field(&ready, 2)?);
    let reader = rust_peer(
        "rust-reader",
        &[
            "read",
            &path(&tmp.join(format!("seek-rust-reader-{js}"))),
            LOG,
            &key,
            &addr,
            &format!("seek:{bytes}"),
        ],
    )?;
    let found = reader.expect("SEEK")?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    let held = number(&reader.expect("HELD")?, 1)?;
    reader.wait()?;
    drop(writer);
    check(
        &format!(
            "our sparse reader seeks byte {bytes} of a JS hypercore {js} log: block {seq} offset {offset}, no block fetched or held"
        ),
        (number(&found, 1)?, number(&found, 2)?, fetched, held) == (seq, offset, 0, 0),
        format!("{found}, fetched {fetched}, held {held}"),
    )
}

/// A keyed JS hypercore `js` sparse reader (`env` holds the key) seeks byte [`BYTES`] of
/// the plaintext of the encrypted log `key` served at `addr` by `server`: it sends
/// padding 8, and must get the plaintext's block and offset with no block fetched.
pub(crate) fn keyed_js_seeks(
    tmp: &Path,
    js: &str,
    key: &str,
    addr: &str,
    server: &str,
    env: &[(&str, &str)],
) -> Result {
    let (seq, offset) = expected(BYTES);
    let dir = tmp.join(format!(
        "enc-seek-js-reader-{js}-{}",
        server.replace(' ', "-")
    ));
    let reader = node_with(
        "js-reader",
        &[
            "peer.mjs",
            "read-tcp",
            js,
            &path(&dir),
            key,
            &format!("seek:{BYTES}"),
            addr,
        ],
        env,
    )?;
    let found = reader.expect("SEEK")?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    reader.wait()?;
    check(
        &format!(
            "keyed JS hypercore {js} seeks plaintext byte {BYTES} of {server} (padding 8): block {seq} offset {offset}, no block fetched"
        ),
        (number(&found, 1)?, number(&found, 2)?, fetched) == (seq, offset, 0),
        format!("{found}, fetched {fetched}"),
    )
}

/// Our keyed sparse reader (`env` holds the key) seeks byte [`BYTES`] of the plaintext
/// of the encrypted log `key` served at `addr` by `server` (a JS writer): it must send
/// padding 8 and get the plaintext's block and offset, no block fetched or held.
pub(crate) fn our_keyed_reader_seeks(
    tmp: &Path,
    key: &str,
    addr: &str,
    server: &str,
    env: &[(&str, &str)],
) -> Result {
    let (seq, offset) = expected(BYTES);
    let dir = tmp.join(format!("enc-seek-rust-reader-{}", server.replace(' ', "-")));
    let reader = rust_peer_with(
        "rust-reader",
        &[
            "read",
            &path(&dir),
            LOG,
            key,
            addr,
            &format!("seek:{BYTES}"),
        ],
        env,
    )?;
    let found = reader.expect("SEEK")?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    let held = number(&reader.expect("HELD")?, 1)?;
    reader.wait()?;
    check(
        &format!(
            "our keyed sparse reader seeks plaintext byte {BYTES} of {server} (padding 8): block {seq} offset {offset}, no block fetched or held"
        ),
        (number(&found, 1)?, number(&found, 2)?, fetched, held) == (seq, offset, 0, 0),
        format!("{found}, fetched {fetched}, held {held}"),
    )
}
