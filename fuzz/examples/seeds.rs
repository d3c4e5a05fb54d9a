//! Writes the seed corpus of every fuzz target into `fuzz/seeds/<target>/` from the
//! golden vectors (JS hypercore 10/11 and protomux bytes, JS-made oplog files) and from
//! real logs made here (proofs, log files). Run `cargo run --manifest-path
//! fuzz/Cargo.toml --example seeds` after a format change; the seeds are committed.

use std::path::{Path, PathBuf};

use nova_hypercore_fuzz::{
    HANDSHAKE_HASH, MUX_KEY, block_on, join_chunks, multisig_seeds, oplog_payloads, proof_input,
    writers,
};
use nova_hypercore_managed_core::{
    CoreFormat, ManagedCore, OpenOptions, RequestBlock, RequestUpgrade, SigningKey, discovery_key,
};
use nova_hypercore_replication::protomux::{self, HYPERCORE_PROTOCOL};
use nova_hypercore_replication::wire::{Data, Handshake};
use nova_hypercore_serialization::LogName;
use serde_json::Value;

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(s.get(i..i + 2).ok_or("odd hex")?, 16)?))
        .collect()
}

fn json(path: &str) -> Result<Value> {
    Ok(serde_json::from_slice(&std::fs::read(root().join(path))?)?)
}

struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn new(target: &str) -> Result<Self> {
        let dir = root().join("fuzz/seeds").join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Seeds { dir, count: 0 })
    }

    fn add(&mut self, what: &str, bytes: &[u8]) -> Result {
        self.count += 1;
        std::fs::write(self.dir.join(format!("{:03}-{what}", self.count)), bytes)?;
        Ok(())
    }
}

fn hex_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn wire_and_mux() -> Result {
    let golden = json("crates/replication/tests/golden/wire-vectors.json")?;
    let mut wire = Seeds::new("wire_message")?;
    for v in golden["vectors"].as_array().ok_or("no vectors")? {
        let typ = v["type"].as_u64().ok_or("no type")? as u8;
        for field in ["js11", "js10"] {
            if let Some(hex) = hex_field(v, field) {
                let mut seed = vec![typ];
                seed.extend(unhex(hex)?);
                let name = v["message"].as_str().unwrap_or("message");
                wire.add(&format!("{name}-{field}"), &seed)?;
            }
        }
    }

    let mut handshake = Seeds::new("channel_handshake")?;
    handshake.add(
        "js11",
        &unhex(hex_field(&golden["handshake"], "js11").ok_or("hs")?)?,
    )?;
    let capability =
        protomux::capability(true, &MUX_KEY, &HANDSHAKE_HASH).ok_or("no capability")?;
    let valid = Handshake {
        seeks: true,
        capability,
    };
    let mut bytes = Vec::new();
    valid.encode(&mut bytes);
    handshake.add("valid-capability", &bytes)?;

    let mut mux = Seeds::new("protomux_frames")?;
    let frames = &golden["protomux_frames"];
    let frame = |name: &str| -> Result<Vec<u8>> {
        unhex(hex_field(&frames[name], "frame").ok_or("no frame")?)
    };
    let open = protomux::open_frame(
        1,
        HYPERCORE_PROTOCOL,
        &discovery_key(&MUX_KEY),
        &Handshake {
            seeks: false,
            capability,
        },
    );
    for name in ["open", "message", "batch", "close", "reject"] {
        mux.add(&format!("js-{name}"), &join_chunks(&[&frame(name)?]))?;
    }
    let (message, batch, close) = (frame("message")?, frame("batch")?, frame("close")?);
    mux.add(
        "open-message-batch-close",
        &join_chunks(&[&open, &message, &batch, &close]),
    )?;
    mux.add("open-twice", &join_chunks(&[&open, &open]))?;
    Ok(())
}

/// Datagrams real C libudx sent (`crates/replication/tests/golden/udx-packets.json`).
fn udx() -> Result {
    let golden = json("crates/replication/tests/golden/udx-packets.json")?;
    let mut seeds = Seeds::new("udx_packet")?;
    for (i, p) in golden["packets"]
        .as_array()
        .ok_or("no packets")?
        .iter()
        .enumerate()
    {
        let scene = p["scene"].as_str().unwrap_or("packet");
        seeds.add(
            &format!("{scene}-{i}"),
            &unhex(hex_field(p, "hex").ok_or("hex")?)?,
        )?;
    }
    Ok(())
}

/// Scripts for the stream target: a connected writer acked in order, with a gap SACKed,
/// timed out; a receiver of out-of-order data with END; a DESTROY.
fn udx_stream() -> Result {
    use nova_hypercore_fuzz::udx_script_packet as packet;
    const POLL: u8 = 8;
    const STEP: u8 = 2;
    let mut seeds = Seeds::new("udx_stream")?;
    let mut writer = vec![0, 3, 40, POLL];
    writer.extend(packet(0, 0, 3, &[], 0));
    writer.extend(packet(0x04, 0, 3, &[(5, 9)], 0));
    writer.extend([STEP, 40, POLL, STEP, 200, POLL]);
    writer.extend(packet(0, 0, 17, &[], 0));
    writer.extend([5, POLL, STEP, 255, POLL]);
    seeds.add("writer-acks-sack-timeout", &writer)?;
    let mut reader = vec![0];
    reader.extend(packet(0x01, 1, 0, &[], 100));
    reader.extend(packet(0x01, 0, 0, &[], 100));
    reader.extend(packet(0x03, 3, 0, &[], 10));
    reader.extend(packet(0x01, 2, 0, &[], 100));
    reader.extend([POLL, 4, 5, POLL, 7, POLL]);
    seeds.add("reader-reorder-end", &reader)?;
    let mut destroy = vec![0, 3, 10, POLL];
    destroy.extend(packet(0x20, 0, 0, &[], 0));
    destroy.extend([POLL, 6, POLL]);
    destroy.extend(packet(0x10, 0, 0, &[], 0));
    seeds.add("heartbeat-destroy", &destroy)?;
    Ok(())
}

fn manifests() -> Result {
    let golden = json("crates/managed-core/tests/golden/manifest/vectors.json")?;
    let mut seeds = Seeds::new("manifest")?;
    seeds.add(
        "default",
        &unhex(hex_field(&golden, "manifest").ok_or("manifest")?)?,
    )?;
    for (name, v) in golden["manifests"].as_object().ok_or("manifests")? {
        if let Some(hex) = hex_field(v, "encoded") {
            seeds.add(name, &unhex(hex)?)?;
        }
    }
    let mut multisig = Seeds::new("multisig")?;
    for (i, seed) in multisig_seeds().iter().enumerate() {
        multisig.add(&format!("manifest-{i}"), seed)?;
    }
    Ok(())
}

/// A log on disk with entries still in its oplog (not closed: a close checkpoints).
async fn log_files(format: CoreFormat, close: bool) -> Result<(tempfile::TempDir, Vec<u8>)> {
    let dir = tempfile::tempdir()?;
    let name = LogName::parse("seed")?;
    // A fixed key, so the seeds are the same bytes each time they are written.
    let key = || SigningKey::from_bytes(&[11; 32]);
    let options = OpenOptions::new().signing_key(key()).format(format);
    let mut log = ManagedCore::open(dir.path(), name.clone(), options).await?;
    log.append_batch(&[b"a".as_slice(), b"bc", b"def"]).await?;
    if close {
        // Checkpointed, then reopened.
        log.close().await?;
        log = ManagedCore::open(dir.path(), name, OpenOptions::new().signing_key(key())).await?;
    }
    log.append(b"ghij").await?;
    log.append(&[7; 300]).await?;
    drop(log);
    let oplog = std::fs::read(dir.path().join("oplog"))?;
    Ok((dir, oplog))
}

async fn oplogs() -> Result {
    let mut seeds = Seeds::new("oplog")?;
    let mut open = Seeds::new("core_open")?;
    let golden = root().join("crates/managed-core/tests/golden/oplog");
    let mut files = Vec::new();
    for name in ["js-hypercore.oplog", "js-made.oplog", "rust-written.oplog"] {
        files.push((name.to_owned(), std::fs::read(golden.join(name))?, None));
    }
    for (format, close) in [
        (CoreFormat::Legacy, false),
        (CoreFormat::Legacy, true),
        (CoreFormat::V1, false),
    ] {
        let (dir, oplog) = log_files(format, close).await?;
        let tree = std::fs::read(dir.path().join("tree"))?;
        let bitfield = std::fs::read(dir.path().join("bitfield"))?;
        files.push((
            format!("{format:?}-closed-{close}"),
            oplog,
            Some((tree, bitfield)),
        ));
    }
    for (name, file, disk) in files {
        let mut whole = vec![0];
        whole.extend_from_slice(&file);
        seeds.add(&format!("{name}-file"), &whole)?;
        let Some((header, entries)) = oplog_payloads(&file) else {
            continue;
        };
        let mut h = vec![1];
        h.extend_from_slice(&header);
        seeds.add(&format!("{name}-header"), &h)?;
        for (i, entry) in entries.iter().enumerate().take(4) {
            let mut e = vec![2];
            e.extend_from_slice(entry);
            seeds.add(&format!("{name}-entry{i}"), &e)?;
        }
        if let Some((tree, bitfield)) = disk {
            let mut parts: Vec<&[u8]> = vec![&header, &tree, &bitfield];
            parts.extend(entries.iter().map(Vec::as_slice));
            open.add(&name, &join_chunks(&parts))?;
        }
    }
    Ok(())
}

fn proofs() -> Result {
    let mut seeds = Seeds::new("proof")?;
    for (w, writer) in writers().iter().enumerate() {
        let length = writer.core.length();
        let upgrade = RequestUpgrade { start: 0, length };
        let block = |index, nodes| Some(RequestBlock { index, nodes });
        let cases = [
            ("upgrade", None, Some(upgrade.clone()), false),
            ("block0-upgrade", block(0, 0), Some(upgrade.clone()), false),
            ("block5-upgrade", block(5, 0), Some(upgrade.clone()), false),
            ("block3", block(3, 0), None, true),
            ("block7", block(7, 0), None, true),
        ];
        for (name, block, upgrade, has_length) in cases {
            let by_signer = w as u8 | if has_length { 4 } else { 0 };
            // `nodes`: how many tree nodes above the block the asker misses; the
            // smallest count whose proof applies (a reader that has only the signed
            // roots misses the nodes below them).
            let mut found = None;
            for nodes in 0..8 {
                let block = block.clone().map(|b| RequestBlock { nodes, ..b });
                let served = block_on(writer.core.serve_proof(block, upgrade.clone()))?;
                let Some(proof) = served else { continue };
                let data = Data {
                    request: 1,
                    fork: proof.fork,
                    block: proof.block,
                    hash: proof.hash,
                    seek: proof.seek,
                    upgrade: proof.upgrade,
                    manifest: None,
                };
                if nova_hypercore_fuzz::proof(&proof_input(by_signer, data.clone())) {
                    found = Some(data);
                    break;
                }
            }
            let data = found.ok_or_else(|| format!("writer {w}: no {name} proof applies"))?;
            seeds.add(
                &format!("w{w}-{name}"),
                &proof_input(by_signer, data.clone()),
            )?;
            // By core key: a manifest core's data carries the manifest.
            let with_manifest = Data {
                manifest: writer.core.manifest(),
                ..data
            };
            seeds.add(
                &format!("w{w}-{name}-by-key"),
                &proof_input(by_signer | 2, with_manifest),
            )?;
        }
    }
    Ok(())
}

/// Inputs a fuzz run found (kept as regression tests in
/// `crates/managed-core/tests/fuzz-regressions/<target>/`) are seeds too, so the smoke
/// run replays them first.
fn regressions() -> Result {
    let found = root().join("crates/managed-core/tests/fuzz-regressions");
    for target in std::fs::read_dir(&found)? {
        let target = target?.path();
        let Some(name) = target.file_name() else {
            continue;
        };
        let seeds = root().join("fuzz/seeds").join(name);
        for input in std::fs::read_dir(&target)? {
            let input = input?.path();
            if let Some(file) = input.file_name() {
                std::fs::copy(&input, seeds.join(file))?;
            }
        }
    }
    Ok(())
}

/// The seeds reach the code behind the checks they open: every proof applies, every
/// log opens with its entries, the capability seed opens a channel, the frames seed
/// delivers its messages. A seed that stopped at the door would fuzz nothing.
fn check() -> Result {
    let dir = root().join("fuzz/seeds");
    for entry in std::fs::read_dir(dir.join("udx_stream"))? {
        nova_hypercore_fuzz::udx_stream(&std::fs::read(entry?.path())?);
    }
    for entry in std::fs::read_dir(dir.join("proof"))? {
        let path = entry?.path();
        if !nova_hypercore_fuzz::proof(&std::fs::read(&path)?) {
            return Err(format!("{} does not apply", path.display()).into());
        }
    }
    for entry in std::fs::read_dir(dir.join("core_open"))? {
        let path = entry?.path();
        // Regression inputs (named, not numbered) are refused by design.
        if !path.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .starts_with(|c: char| c.is_ascii_digit())
        }) {
            continue;
        }
        if nova_hypercore_fuzz::core_open(&std::fs::read(&path)?) != Some(5) {
            return Err(format!("{} does not open with 5 entries", path.display()).into());
        }
    }
    for entry in std::fs::read_dir(dir.join("channel_handshake"))? {
        let path = entry?.path();
        let opens = nova_hypercore_fuzz::channel_handshake(&std::fs::read(&path)?);
        if opens != path.to_string_lossy().contains("valid") {
            return Err(format!("{}: opened {opens}", path.display()).into());
        }
    }
    for entry in std::fs::read_dir(dir.join("protomux_frames"))? {
        let path = entry?.path();
        let (opened, delivered) = nova_hypercore_fuzz::protomux_frames(&std::fs::read(&path)?);
        if path.to_string_lossy().contains("batch-close") && (opened, delivered) != (1, 4) {
            return Err(
                format!("{}: {opened} opened, {delivered} delivered", path.display()).into(),
            );
        }
    }
    Ok(())
}

fn main() -> Result {
    wire_and_mux()?;
    udx()?;
    udx_stream()?;
    manifests()?;
    let _ = writers();
    block_on(async { oplogs().await })?;
    proofs()?;
    regressions()?;
    check()?;
    println!("seeds written to {}", root().join("fuzz/seeds").display());
    Ok(())
}
