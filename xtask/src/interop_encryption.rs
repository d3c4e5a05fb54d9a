//! The js suite's block-encryption cases (issue #25, step d; docs/encryption-research.md
//! §6): encrypted logs interoperate with JS, over the wire and on disk. Direct TCP (no
//! DHT): encryption changes the stored bytes, not the transport. Every keyed peer gets
//! the same key from `NOVA_ENCRYPTION_KEY` (JS: `encryptionKey` in hypercore 10.31,
//! `encryption: { key }` in 11); a seeder gets none. Each log is [`ENTRIES`] entries
//! `entry <i>`, and every reader compares every entry's bytes.
//!
//! - JS hypercore 10.31 keyed writer → our keyed reader (every entry decrypted, our
//!   `byte_length` = JS `byteLength` = the plaintext's bytes), our keyed sparse reader
//!   seeking a plaintext byte (padding 8), and our seeder without the key: it verifies
//!   and stores the ciphertext (each stored entry 8 bytes longer than the plaintext and
//!   different from it). The JS writer exits; a JS 10.31 keyed reader fetches every entry
//!   from our seeder and decrypts it, and a keyed JS sparse reader seeks through it. The
//!   seeder's `data` file is byte-identical to the JS writer's.
//! - Our keyed writer (legacy: a compat core) → JS 10.31 and JS 11 `compat: true` keyed
//!   readers, a keyed JS seek; then JS 10.31 opens our core directory with the key,
//!   reads every entry and appends one with the log's key pair, and our `check` decrypts
//!   all of them, JS's included. Our `check` also decrypts the directory the JS writer
//!   left.
//! - Manifest cores (the namespaced key derivation): our keyed v1 writer → JS 11 keyed
//!   default reader and seek; a JS 11 keyed default writer → our keyed reader (which
//!   opens by key, so it starts with the compat derivation and re-derives when the
//!   manifest arrives).
//! - Boundary, kept and marked: a JS 11.39.5 keyed reader opened without `compat: true`
//!   cannot read a compat core (any hypercore 10 core, and our legacy logs): its
//!   `DefaultEncryption._reload` loses the keys when the received manifest flips
//!   `compat`, and `get` throws `k must be a typed array` (research §2, hypercore PR
//!   #776). Fails the day that changes.

use std::path::Path;

use crate::Result;
use crate::integration::{Peer, check, field, number};
use crate::interop::{LOG, node_with, path, rust_peer, rust_peer_with};
use crate::interop_seek::{ENTRIES, keyed_js_seeks, our_keyed_reader_seeks};

/// The suite's encryption key (32 bytes: `nova-hypercore-encryption-test-1`).
const KEY: &str = "6e6f76612d6879706572636f72652d656e6372797074696f6e2d746573742d31";
const KEYED: [(&str, &str); 1] = [("NOVA_ENCRYPTION_KEY", KEY)];
/// Bytes of padding JS puts before each encrypted block (the blinded fork).
const PADDING: u64 = 8;

/// Bytes of the plaintext of entries `0..n` (`entry <i>`, as both peers write them).
fn plaintext_bytes(n: u64) -> u64 {
    (0..n).map(|i| format!("entry {i}").len() as u64).sum()
}

pub(crate) fn encrypted_logs_both_ways(tmp: &Path) -> Result {
    js_keyed_writer_our_reader_and_seeder(tmp)?;
    our_keyed_writer_js_readers(tmp)?;
    manifest_cores_keyed_both_ways(tmp)
}

/// A keyed reader run to [`ENTRIES`] (JS or ours: both print the same lines). Returns
/// (blocks held at start, `byteLength` as the reader reports it, blocks fetched).
fn keyed_read(reader: Peer) -> Result<(u64, u64, u64)> {
    let held = number(&reader.expect("START")?, 1)?;
    reader.expect(&format!("VERIFIED {ENTRIES}"))?;
    let bytes = number(&reader.expect("BYTES")?, 1)?;
    let fetched = number(&reader.expect("FETCHED")?, 1)?;
    reader.wait()?;
    Ok((held, bytes, fetched))
}

/// Checks a keyed reader's run: every entry fetched once and equal to the plaintext
/// (the reader compared each), and its byte length the plaintext's.
fn check_keyed_read(what: &str, (held, bytes, fetched): (u64, u64, u64)) -> Result {
    let plain = plaintext_bytes(ENTRIES);
    check(
        &format!(
            "{what}: all {ENTRIES} entries decrypted, each equal to its plaintext; byteLength {plain} (no padding)"
        ),
        held == 0 && fetched == ENTRIES && bytes == plain,
        format!("held {held}, fetched {fetched}, byteLength {bytes} (plaintext {plain})"),
    )
}

fn js_keyed_writer_our_reader_and_seeder(tmp: &Path) -> Result {
    eprintln!(
        "--> encryption: JS hypercore 10 keyed writer -> our keyed reader and our seeder without the key -> JS keyed reader (TCP)"
    );
    let n = ENTRIES.to_string();
    let wdir = tmp.join("enc-js-writer-10");
    let writer = node_with(
        "js-writer",
        &["peer.mjs", "write-tcp", "10", &path(&wdir), &n],
        &KEYED,
    )?;
    let ready = writer.expect("READY")?;
    let (key, addr) = (field(&ready, 1)?, field(&ready, 2)?);
    let js_bytes = number(&writer.expect("BYTES")?, 1)?;
    let plain = plaintext_bytes(ENTRIES);
    check(
        "the keyed JS writer's byteLength is the plaintext's",
        js_bytes == plain,
        format!("byteLength {js_bytes}, plaintext {plain}"),
    )?;
    let reader = rust_peer_with(
        "rust-reader",
        &[
            "read",
            &path(&tmp.join("enc-rust-reader-10")),
            LOG,
            &key,
            &addr,
            &n,
        ],
        &KEYED,
    )?;
    check_keyed_read(
        "our keyed reader from the JS hypercore 10 keyed writer",
        keyed_read(reader)?,
    )?;
    our_keyed_reader_seeks(tmp, &key, &addr, "a JS hypercore 10 keyed log", &KEYED)?;

    // The seeder: no key. It dials the writer and listens for readers.
    let seeder = rust_peer(
        "rust-seeder",
        &[
            "seed",
            &path(&tmp.join("enc-rust-seeder")),
            LOG,
            &key,
            &addr,
            &n,
        ],
    )?;
    let serving = field(&seeder.expect("SERVING")?, 1)?;
    seeder.expect(&format!("VERIFIED {ENTRIES}"))?;
    let stored = seeder.expect("STORED")?;
    let (entries, ciphertext, stored_bytes) = (
        number(&stored, 1)?,
        number(&stored, 2)?,
        number(&stored, 3)?,
    );
    let seeder_bytes = number(&seeder.expect("BYTES")?, 1)?;
    let seeder_dir = field(&seeder.expect("DIR")?, 1)?;
    let padded = plain + PADDING * ENTRIES;
    check(
        &format!(
            "our seeder without the key verifies and stores the ciphertext: all {ENTRIES} entries {PADDING} bytes longer than the plaintext and different from it, {padded} bytes, byte_length {padded}"
        ),
        (entries, ciphertext, stored_bytes, seeder_bytes) == (ENTRIES, ENTRIES, padded, padded),
        format!(
            "{entries} entries, {ciphertext} of them ciphertext, {stored_bytes} bytes stored, byte_length {seeder_bytes} (plaintext {plain})"
        ),
    )?;
    // The JS writer goes: from now on our seeder is the only holder online.
    writer.wait()?;
    let reader = node_with(
        "js-reader",
        &[
            "peer.mjs",
            "read-tcp",
            "10",
            &path(&tmp.join("enc-js-reader-10-from-seeder")),
            &key,
            &n,
            &serving,
        ],
        &KEYED,
    )?;
    check_keyed_read(
        "a keyed JS hypercore 10 reader from our seeder (the writer gone)",
        keyed_read(reader)?,
    )?;
    keyed_js_seeks(
        tmp,
        "10",
        &key,
        &serving,
        "our seeder without the key",
        &KEYED,
    )?;
    seeder.wait()?;

    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("read {}: {e}", p.display()));
    let js_data = read(&wdir.join("data"))?;
    let our_data = read(&Path::new(&seeder_dir).join("data"))?;
    check(
        &format!(
            "our seeder's data file is byte-identical to the JS writer's ({} bytes of padding and ciphertext)",
            js_data.len()
        ),
        js_data == our_data && js_data.len() as u64 == padded,
        format!(
            "JS {} bytes, ours {} bytes, first difference at {:?}",
            js_data.len(),
            our_data.len(),
            js_data.iter().zip(&our_data).position(|(a, b)| a != b)
        ),
    )?;
    // On disk: the directory the JS keyed writer left, opened by our core with the key.
    let ours = rust_peer_with("rust-check", &["check", &path(&wdir), &key, &n], &KEYED)?;
    ours.expect(&format!("VERIFIED {n}"))?;
    ours.wait()?;
    eprintln!(
        "  ok: our core opens the directory the keyed JS hypercore 10 writer wrote, with the key, and decrypts all {n} entries"
    );
    Ok(())
}

fn our_keyed_writer_js_readers(tmp: &Path) -> Result {
    eprintln!(
        "--> encryption: our keyed writer -> JS hypercore 10 and 11 (compat) keyed readers; JS 10 opens our directory (TCP, disk)"
    );
    let n = ENTRIES.to_string();
    let store = tmp.join("enc-rust-writer");
    let writer = rust_peer_with(
        "rust-writer",
        &["write", &path(&store), LOG, &n, "127.0.0.1:0"],
        &KEYED,
    )?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let core_dir = field(&writer.expect("DIR")?, 1)?;
    let our_bytes = number(&writer.expect("BYTES")?, 1)?;
    let plain = plaintext_bytes(ENTRIES);
    check(
        "our keyed writer's byte_length is the plaintext's",
        our_bytes == plain,
        format!("byte_length {our_bytes}, plaintext {plain}"),
    )?;
    for js in ["10", "11-compat"] {
        let reader = node_with(
            "js-reader",
            &[
                "peer.mjs",
                "read-tcp",
                js,
                &path(&tmp.join(format!("enc-js-reader-{js}"))),
                &key,
                &n,
                &addr,
            ],
            &KEYED,
        )?;
        check_keyed_read(
            &format!("a keyed JS hypercore {js} reader from our keyed writer"),
            keyed_read(reader)?,
        )?;
    }
    keyed_js_seeks(tmp, "10", &key, &addr, "our keyed writer", &KEYED)?;
    // Boundary: hypercore 11.39.5 without `compat: true` cannot decrypt a compat core.
    let probe = node_with(
        "js-reader",
        &[
            "peer.mjs",
            "read-tcp",
            "11",
            &path(&tmp.join("enc-js-reader-11-default")),
            &key,
            "probe:5000",
            &addr,
        ],
        &KEYED,
    )?;
    let line = probe.expect("PROBE")?;
    probe.wait()?;
    check(
        "boundary: a JS hypercore 11.39.5 keyed reader without `compat: true` fails on our compat core as on JS 10's (`k must be a typed array`, its _reload bug)",
        line.contains("k must be a typed array"),
        format!("{line}: update docs/encryption-research.md §2 and §6"),
    )?;
    writer.wait()?;

    // On disk: JS 10.31 opens our core directory with the key, reads every entry and
    // appends one with the log's key pair (from `keys/`); our core decrypts them all.
    let secret = std::fs::read(store.join("keys").join(format!("{LOG}.key")))
        .map_err(|e| format!("read the writer's key file: {e}"))?;
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let dump = node_with(
        "js-dump",
        &["peer.mjs", "dump", "10", &core_dir, &key, &n, &secret],
        &KEYED,
    )?;
    dump.expect(&format!("VERIFIED {n}"))?;
    let appended = (ENTRIES + 1).to_string();
    dump.expect(&format!("APPENDED {appended}"))?;
    dump.wait()?;
    eprintln!(
        "  ok: JS hypercore 10.31 opens our encrypted core directory with the key, decrypts all {n} entries and appends one"
    );
    let ours = rust_peer_with("rust-check", &["check", &core_dir, &key, &appended], &KEYED)?;
    ours.expect(&format!("VERIFIED {appended}"))?;
    ours.wait()?;
    eprintln!(
        "  ok: our core reopens that directory with the key and decrypts all {appended} entries, JS's included"
    );
    Ok(())
}

fn manifest_cores_keyed_both_ways(tmp: &Path) -> Result {
    eprintln!(
        "--> encryption, manifest cores: our keyed v1 writer -> JS 11 keyed reader, JS 11 keyed writer -> our keyed reader (TCP)"
    );
    let n = ENTRIES.to_string();
    let writer = rust_peer_with(
        "rust-writer",
        &[
            "--format",
            "v1",
            "write",
            &path(&tmp.join("enc-rust-writer-v1")),
            LOG,
            &n,
            "127.0.0.1:0",
        ],
        &KEYED,
    )?;
    let ready = writer.expect("READY")?;
    let (addr, key) = (field(&ready, 1)?, field(&ready, 2)?);
    let reader = node_with(
        "js-reader",
        &[
            "peer.mjs",
            "read-tcp",
            "11",
            &path(&tmp.join("enc-js-reader-11-of-v1")),
            &key,
            &n,
            &addr,
        ],
        &KEYED,
    )?;
    check_keyed_read(
        "a keyed JS hypercore 11 reader from our keyed v1 writer",
        keyed_read(reader)?,
    )?;
    keyed_js_seeks(tmp, "11", &key, &addr, "our keyed v1 writer", &KEYED)?;
    writer.wait()?;

    let writer = node_with(
        "js-writer",
        &[
            "peer.mjs",
            "write-tcp",
            "11",
            &path(&tmp.join("enc-js-writer-11")),
            &n,
        ],
        &KEYED,
    )?;
    let ready = writer.expect("READY")?;
    let (key, addr) = (field(&ready, 1)?, field(&ready, 2)?);
    let reader = rust_peer_with(
        "rust-reader",
        &[
            "read",
            &path(&tmp.join("enc-rust-reader-11")),
            LOG,
            &key,
            &addr,
            &n,
        ],
        &KEYED,
    )?;
    check_keyed_read(
        "our keyed reader from a JS hypercore 11 keyed writer (manifest core)",
        keyed_read(reader)?,
    )?;
    writer.wait()
}
