//! The fuzz targets' bodies: one function per target, each feeding a fuzzer's bytes to
//! a decoder the way the product runs it (a peer's frame, a file on open), and checking
//! what must hold beyond "no panic" (a decoded message encodes back to what decodes to
//! the same message; a verified container is canonical).
//!
//! Owns: the targets' harness code and the seed generator (`examples/seeds.rs`). Must
//! not: be used by the product. Used by: `fuzz_targets/*.rs` (cargo-fuzz, run by
//! `cargo xtask fuzz`).

use std::sync::OnceLock;

use nova_hypercore_managed_core::{
    CoreFormat, ManagedCore, OpenOptions, Proof, SigningKey, VerifyingKey, discovery_key, fuzzing,
    manifest::{Manifest, manifest_hash},
};
use nova_hypercore_replication::protomux::{self, Cursor, Mux, Step};
use nova_hypercore_replication::udx::packet::{self as udx_packet, Flags, MAX_SACKS};
use nova_hypercore_replication::wire::{Data, Handshake, Message};
use nova_hypercore_serialization::LogName;

pub use fuzzing::{multisig_seeds, oplog_payloads};

/// One current-thread runtime for the async targets.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("no tokio runtime: {e}"),
        }
    })
}

/// Runs `future` on the targets' runtime (the seed generator uses it too: the proof
/// target's writers live on it).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// Splits `data` into chunks, each led by a little-endian `u16` length (cut to what is
/// left): how the targets that need several byte strings read one input.
pub fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && out.len() < 64 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let body = &rest[2..];
        let len = len.min(body.len());
        out.push(&body[..len]);
        rest = &body[len..];
    }
    out
}

/// The inverse of [`chunks`] (for seeds).
pub fn join_chunks(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&part[..usize::from(len)]);
    }
    out
}

/// `wire_message`: the first byte is the message type, the rest its body, as protomux
/// delimits it. A message that decodes encodes to bytes that decode to it again.
pub fn wire_message(data: &[u8]) {
    let Some((&typ, body)) = data.split_first() else {
        return;
    };
    if let Ok(message) = Message::decode(u64::from(typ), body) {
        let mut again = Vec::new();
        message.encode(&mut again);
        let decoded = Message::decode(message.typ(), &again);
        assert!(
            decoded.as_ref().is_ok_and(|m| m == &message),
            "{message:?} encoded to {again:02x?}, which decodes to {decoded:?}"
        );
    }
}

/// The key of the log the protomux target has open (its open frame in the seeds
/// carries a valid capability for [`HANDSHAKE_HASH`]).
pub const MUX_KEY: [u8; 32] = [9; 32];
/// The Noise handshake hash the protomux target's connection has.
pub const HANDSHAKE_HASH: [u8; 64] = [5; 64];

/// `protomux_frames`: a connection's inbound frames ([`chunks`]) read by the channel
/// table of a connection that has [`MUX_KEY`] open, item by item as the session reads
/// them, queued messages drained; an error ends the connection (the rest is not read).
/// Returns the channels opened and the messages delivered (the seeds check them).
pub fn protomux_frames(data: &[u8]) -> (usize, usize) {
    let (tx, mut outgoing) = tokio::sync::mpsc::channel(64);
    let mut mux = Mux::new(false, HANDSHAKE_HASH.to_vec(), tx);
    if mux.open(MUX_KEY).is_err() {
        return (0, 0);
    }
    let mut queues = Vec::new();
    let (mut opened, mut delivered) = (0, 0);
    for frame in chunks(data) {
        let mut cursor = Cursor::default();
        loop {
            match mux.step(frame, &mut cursor) {
                Ok(Step::Done) => break,
                Ok(Step::Continue) => {}
                Ok(Step::Deliver(delivery)) => {
                    delivered += 1;
                    let _ = delivery.try_deliver();
                }
                Err(_) => return (opened, delivered),
            }
            while mux.take_frame().is_some() {}
            while let Some(event) = mux.take_event() {
                if let protomux::Event::Channel(mut channel) = event {
                    opened += 1;
                    if let Some(queue) = channel.take_receiver() {
                        queues.push(queue);
                    }
                    let _ = channel.closed();
                    if queues.len() % 2 == 0 {
                        mux.close_channel(&channel);
                    }
                }
            }
            for queue in &mut queues {
                while queue.try_recv().is_some() {}
            }
            while outgoing.try_recv().is_ok() {}
        }
    }
    (opened, delivered)
}

/// `channel_handshake`: the handshake of a channel open, decoded alone and inside an
/// open frame for [`MUX_KEY`] read by a channel table (capability checked). Returns
/// whether the channel opened.
pub fn channel_handshake(data: &[u8]) -> bool {
    let Ok(handshake) = Handshake::decode(data) else {
        return false;
    };
    let mut again = Vec::new();
    handshake.encode(&mut again);
    assert_eq!(Handshake::decode(&again).ok(), Some(handshake));
    // `00 01 uint id, string protocol, optionalBuffer discovery key` + the handshake.
    let mut frame = vec![0u8, 1, 1];
    let protocol = protomux::HYPERCORE_PROTOCOL.as_bytes();
    frame.push(protocol.len() as u8);
    frame.extend_from_slice(protocol);
    frame.push(32);
    frame.extend_from_slice(&discovery_key(&MUX_KEY));
    frame.extend_from_slice(data);
    protomux_frames(&join_chunks(&[&frame])).0 == 1
}

/// `manifest`: a manifest as a peer sends it with a data message: decoded (a decoded
/// manifest encodes back to bytes that decode to it), then given to a replica opened by
/// its hash, as the session does, which checks it and keeps it in its header.
pub fn manifest(data: &[u8]) {
    if let Ok(manifest) = Manifest::decode(data) {
        let again = Manifest::decode(&manifest.encode());
        assert!(
            again.as_ref().is_ok_and(|m| m == &manifest),
            "{manifest:?} -> {again:?}"
        );
    }
    let key = manifest_hash(data);
    let _ = Manifest::decode_for_key(&key, data);
    runtime().block_on(async {
        let Ok(name) = LogName::parse("fuzz-manifest") else {
            return;
        };
        let Ok(replica) = ManagedCore::in_memory(name, OpenOptions::new().core_key(key)).await
        else {
            return;
        };
        if replica.set_manifest(data).await.is_ok() {
            assert!(!replica.needs_manifest());
        }
    });
}

/// `multisig`: a multisig container as a peer sends it in an upgrade, verified under
/// a one-signer and two two-of-three manifests (see `fuzzing::multisig`).
pub fn multisig(data: &[u8]) {
    fuzzing::multisig(data);
}

/// `oplog`: the first byte picks what the rest is: a whole oplog file (0), one header
/// slot's payload (1), or one entry's payload (2, encode/decode checked).
pub fn oplog(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            fuzzing::oplog_file(rest);
        }
        1 => {
            fuzzing::oplog_header(rest);
        }
        _ => {
            fuzzing::oplog_entry(rest);
        }
    }
}

/// `core_open`: a log's files from [`chunks`]: an oplog header payload, the `tree` and
/// `bitfield` files, then oplog entry payloads (framed with valid checksums, so the
/// bytes reach the replay); the log is opened from disk as the manager opens it, and a
/// log that opens is read (every read verified) and closed. Returns the length of a
/// log that opened.
pub fn core_open(data: &[u8]) -> Option<u64> {
    let parts = chunks(data);
    let [header, tree, bitfield, entries @ ..] = parts.as_slice() else {
        return None;
    };
    let dir = tempfile::tempdir().ok()?;
    let oplog = fuzzing::oplog_framed(header, entries);
    for (file, bytes) in [
        ("oplog", oplog.as_slice()),
        ("tree", tree),
        ("bitfield", bitfield),
    ] {
        std::fs::write(dir.path().join(file), bytes).ok()?;
    }
    runtime().block_on(async {
        let name = LogName::parse("fuzz-open").ok()?;
        let log = ManagedCore::open(dir.path(), name, OpenOptions::default())
            .await
            .ok()?;
        let length = log.length();
        for seq in 0..length.min(4) {
            let _ = log.get(seq).await;
        }
        let _ = log.get(length).await;
        let _ = log.info().await;
        let _ = log.first_missing(0).await;
        let _ = log.close().await;
        Some(length)
    })
}

/// A writer the proof target's readers follow, with the proofs a reader needs first.
pub struct Writer {
    /// The writer (8 entries).
    pub core: ManagedCore,
    /// Its signer.
    pub public_key: VerifyingKey,
    /// Its format.
    pub format: CoreFormat,
}

/// The proof target's two writers: a legacy (hypercore 10) and a manifest (hypercore
/// 11 default) log of 8 entries each, fixed keys.
pub fn writers() -> &'static [Writer; 2] {
    static WRITERS: OnceLock<[Writer; 2]> = OnceLock::new();
    WRITERS.get_or_init(|| {
        runtime().block_on(async {
            let make = |format: CoreFormat, seed: u8| async move {
                let secret = SigningKey::from_bytes(&[seed; 32]);
                let public_key = secret.verifying_key();
                let name = LogName::parse("fuzz-writer").map_err(|e| e.to_string())?;
                let options = OpenOptions::new().signing_key(secret).format(format);
                let core = ManagedCore::in_memory(name, options)
                    .await
                    .map_err(|e| e.to_string())?;
                for i in 0..8u8 {
                    core.append(&vec![i; usize::from(i) * 3 + 1])
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(Writer {
                    core,
                    public_key,
                    format,
                })
            };
            match (
                make(CoreFormat::Legacy, 7).await,
                make(CoreFormat::V1, 8).await,
            ) {
                (Ok(a), Ok(b)) => [a, b],
                (Err(e), _) | (_, Err(e)) => panic!("fuzz writers: {e}"),
            }
        })
    })
}

/// The proof of the writer's whole length (what a reader's first upgrade is).
fn full_upgrade(writer: &Writer) -> Option<Proof> {
    static PROOFS: OnceLock<[Option<Proof>; 2]> = OnceLock::new();
    let proofs = PROOFS.get_or_init(|| {
        writers().each_ref().map(|w| {
            runtime()
                .block_on(w.core.serve_proof(
                    None,
                    Some(nova_hypercore_managed_core::RequestUpgrade {
                        start: 0,
                        length: w.core.length(),
                    }),
                ))
                .ok()
                .flatten()
        })
    });
    let index = usize::from(writer.format == CoreFormat::V1);
    proofs[index].clone()
}

/// `proof`: the first byte picks the reader: which writer (bit 0), opened by its signer
/// or by its core key alone (bit 1: a manifest core then takes the manifest the data
/// carries first, as the session does), and whether it already has the writer's length
/// (bit 2: the data then mostly proves blocks); the rest is a `data` message body, whose
/// proof the reader verifies and stores. A proof that applies must leave readable,
/// verified blocks. Returns whether the proof applied.
pub fn proof(data: &[u8]) -> bool {
    let Some((&which, body)) = data.split_first() else {
        return false;
    };
    let Ok(Message::Data(message)) = Message::decode(3, body) else {
        return false;
    };
    let writer = &writers()[usize::from(which & 1)];
    let first = if which & 4 != 0 {
        full_upgrade(writer)
    } else {
        None
    };
    runtime().block_on(async {
        let Ok(name) = LogName::parse("fuzz-reader") else {
            return false;
        };
        let options = if which & 2 == 0 {
            OpenOptions::new()
                .public_key(writer.public_key)
                .format(writer.format)
        } else {
            OpenOptions::new().core_key(writer.core.public_key())
        };
        let Ok(reader) = ManagedCore::in_memory(name, options).await else {
            return false;
        };
        if which & 4 != 0 {
            if reader.needs_manifest()
                && let Some(manifest) = writer.core.manifest()
                && reader.set_manifest(&manifest).await.is_err()
            {
                return false;
            }
            if let Some(upgrade) = first {
                let _ = reader.apply_proof(upgrade).await;
            }
        }
        if let Some(manifest) = &message.manifest
            && reader.needs_manifest()
            && reader.set_manifest(manifest).await.is_err()
        {
            return false;
        }
        let block = message.block.as_ref().map(|b| b.index);
        let proof = Proof {
            fork: message.fork,
            block: message.block,
            hash: message.hash,
            seek: message.seek,
            upgrade: message.upgrade,
        };
        let applied = matches!(reader.apply_proof(proof).await, Ok(true));
        if applied
            && let Some(seq) = block
            && reader.has_block(seq).await.unwrap_or(false)
        {
            let got = reader.get(seq).await;
            let want = writer.core.get(seq).await;
            assert_eq!(got.ok(), want.ok(), "block {seq} stored other bytes");
        }
        applied
    })
}

/// The seed of a `proof` input: the reader byte, then `data`'s body.
pub fn proof_input(which: u8, data: Data) -> Vec<u8> {
    let mut out = vec![which];
    Message::Data(data).encode(&mut out);
    out
}

/// `udx_packet`: a datagram on a UDX socket, read as our stream will read it. A packet
/// that decodes holds at most [`MAX_SACKS`] blocks and a payload inside the datagram;
/// without SACK blocks it encodes to bytes that decode to it again, and in C's SACK form
/// (`data_offset` 0, whole blocks) to the very bytes read.
pub fn udx_packet(data: &[u8]) {
    let Ok(Some(packet)) = udx_packet::decode(data) else {
        return;
    };
    assert!(packet.sacks.len() <= MAX_SACKS);
    assert!(packet.payload.len() <= data.len());
    let again = packet.to_bytes();
    if !packet.header.flags.contains(Flags::SACK) {
        let decoded = udx_packet::decode(&again);
        assert_eq!(decoded, Ok(Some(packet.clone())), "{again:02x?}");
    } else if packet.header.data_offset == 0
        && (data.len() - udx_packet::HEADER_LEN).is_multiple_of(udx_packet::SACK_LEN)
        && packet.sacks.len() < MAX_SACKS
    {
        assert_eq!(again, data);
    }
}

/// Script bytes for [`udx_stream`] (for seeds): a packet from the peer.
pub fn udx_script_packet(
    flags: u8,
    seq: u16,
    ack: u16,
    sacks: &[(u16, u16)],
    payload_words: u8,
) -> Vec<u8> {
    let mut out = vec![1, flags, 6];
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ack.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&1024u16.to_le_bytes());
    out.push(sacks.len() as u8);
    out.push(payload_words);
    for (start, end) in sacks {
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&end.to_le_bytes());
    }
    out.extend(std::iter::repeat_n(0x5a, usize::from(payload_words) * 8));
    out
}

/// `udx_stream`: our UDX stream state machine driven by a script of operations read
/// from the input (a hostile peer's packets with seqs and acks near the stream's, clock
/// steps, application writes, reads, END, DESTROY, messages). Checks beyond "no panic":
/// what the stream holds stays within its configured buffers, every datagram it sends
/// decodes, is addressed to the peer and fits a datagram, and one poll round sends a
/// bounded number of packets.
pub fn udx_stream(data: &[u8]) {
    use nova_hypercore_replication::udx::stream::{Config, MAX_MESSAGES, Stream};
    use std::time::{Duration, Instant};

    const BUFFER: usize = 64 * 1024;
    let config = Config {
        send_buffer: BUFFER,
        recv_window: BUFFER,
        ..Config::default()
    };
    let start = Instant::now();
    let mut now = start;
    let mut stream = Stream::new(config);
    let mut rest = data;
    let mut out = Vec::new();
    fn take<'a>(n: usize, rest: &mut &'a [u8]) -> &'a [u8] {
        let (head, tail) = rest.split_at(n.min(rest.len()));
        *rest = tail;
        head
    }
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 9 {
            0 => stream.connect(7),
            1 => {
                // A packet: flags, data_offset, seq and ack as u16 (near the stream's
                // numbers) or u32 when the top flag bit asks, rwnd, SACK count, payload.
                let h = take(12, &mut rest);
                if h.len() < 12 {
                    break;
                }
                let wide = h[0] & 0x80 != 0;
                let word = |i: usize| u32::from(u16::from_le_bytes([h[i], h[i + 1]]));
                let (seq, ack) = if wide {
                    (word(2) << 16 | word(4), word(6) << 16)
                } else {
                    (word(2), word(4))
                };
                let header = udx_packet::Header {
                    flags: Flags::from_bits(h[0] & 0x3f),
                    data_offset: 0,
                    id: 1,
                    rwnd: word(8) << (h[1] % 16),
                    seq,
                    ack,
                };
                let sacks: Vec<udx_packet::SackBlock> = (0..usize::from(h[10] % 8))
                    .filter_map(|_| {
                        let b = take(4, &mut rest);
                        (b.len() == 4).then(|| udx_packet::SackBlock {
                            start: u32::from(u16::from_le_bytes([b[0], b[1]])),
                            end: u32::from(u16::from_le_bytes([b[2], b[3]])),
                        })
                    })
                    .collect();
                let payload = take(usize::from(h[11]) * 8, &mut rest);
                let packet = udx_packet::Packet {
                    header,
                    sacks,
                    payload,
                };
                // Through the codec, as the driver hands packets over.
                let bytes = packet.to_bytes();
                if let Ok(Some(packet)) = udx_packet::decode(&bytes) {
                    stream.on_packet(now, &packet);
                }
            }
            2 => {
                let step = rest.first().copied().unwrap_or(0);
                rest = rest.get(1..).unwrap_or_default();
                now += Duration::from_millis(u64::from(step) * u64::from(step));
                if stream.poll_timeout().is_some_and(|t| t <= now) {
                    stream.on_timeout(now);
                }
            }
            3 => {
                let n = usize::from(rest.first().copied().unwrap_or(0)) * 512;
                rest = rest.get(1..).unwrap_or_default();
                let _ = stream.write(&vec![0xab; n]);
            }
            4 => while stream.read().is_some() {},
            5 => stream.end(),
            6 => stream.destroy(),
            7 => {
                let _ = stream.send_message(b"message");
                while stream.read_message().is_some() {}
            }
            _ => {
                // The window, the queued messages, and a few control packets.
                let bound = stream.congestion_window() + MAX_MESSAGES + 16;
                let mut sent = 0;
                while stream.poll_transmit(now, &mut out) {
                    sent += 1;
                    assert!(
                        sent <= bound,
                        "{sent} packets in one round (window {bound})"
                    );
                    assert!(out.len() <= udx_packet::HEADER_LEN + 1152 + MAX_SACKS * 8);
                    let Ok(Some(p)) = udx_packet::decode(&out) else {
                        panic!("undecodable datagram {out:02x?}");
                    };
                    assert_eq!(p.header.id, 7);
                }
            }
        }
        // The next packet in order is taken while any room is left: one over at most.
        assert!(stream.readable() <= BUFFER + udx_packet::MAX_DATAGRAM);
        assert!(stream.writable() <= BUFFER);
    }
}
