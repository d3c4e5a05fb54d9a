//! Property tests of the wire codec: every message round-trips; bytes after a
//! message's last field never change it or spill into the next message of a batch; and
//! decoding arbitrary bytes never panics and never allocates what a length field asks
//! for (checked against the process's peak virtual memory, which even an untouched
//! allocation raises).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hypercore_schema::{
    DataBlock, DataHash, DataSeek, DataUpgrade, Node, RequestBlock, RequestUpgrade,
};
use nova_hypercore_replication::protomux::{Cursor, Item, batch_frame};
use nova_hypercore_replication::wire::{
    Bitfield, Cancel, Data, Extension, MAX_NODE_INDEX, Message, NoData, Range, Request,
    RequestSeek, Synchronize, Unwant, Want,
};
use proptest::prelude::*;

/// The process's peak virtual memory (`VmPeak`, KiB). An allocation sized by a length
/// field (even one the kernel maps lazily and never backs) raises it for good.
fn vm_peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs `f` and returns by how much it raised the peak virtual memory (KiB).
/// Every test of this file holds it while it runs: VmPeak is the whole process's, and a
/// test running on another thread (a new malloc arena, 64 MiB of address space) would
/// count as growth of the one measuring (seen: a flaky failure with the suite busy).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = vm_peak_kib();
    let out = f();
    (out, vm_peak_kib() - before)
}

/// Peak growth allowed per decode: far below anything a length field could ask for
/// (the inputs are under 1 KiB; a length-sized allocation would be megabytes to
/// exabytes), above the allocator's own arena growth.
const SLACK_KIB: u64 = 64 * 1024;

fn num() -> impl Strategy<Value = u64> {
    prop_oneof![0..300u64, any::<u32>().prop_map(u64::from), any::<u64>()]
}

/// A node index a peer may send (up to `MAX_NODE_INDEX`; larger ones are refused).
fn index() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..300u64,
        any::<u32>().prop_map(u64::from),
        0..=MAX_NODE_INDEX
    ]
}

fn node() -> impl Strategy<Value = Node> {
    (index(), num(), any::<[u8; 32]>()).prop_map(|(i, s, h)| Node::new(i, h.to_vec(), s))
}

fn nodes() -> impl Strategy<Value = Vec<Node>> {
    prop::collection::vec(node(), 0..4)
}

fn manifest() -> impl Strategy<Value = Vec<u8>> {
    // Version 1 default manifests and version 0 single-signer ones, as JS writes them.
    (any::<bool>(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(v1, ns, pk)| {
        let mut out = if v1 {
            vec![1, 0, 0, 1, 1, 0]
        } else {
            vec![0, 0, 1, 0]
        };
        if v1 {
            out.extend(ns);
        }
        out.extend(pk);
        if !v1 {
            out.extend(ns);
        }
        out
    })
}

fn request_block() -> impl Strategy<Value = RequestBlock> {
    (num(), num()).prop_map(|(index, nodes)| RequestBlock { index, nodes })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (num(), num(), num(), any::<[bool; 5]>()).prop_map(|(fork, length, remote_length, f)| {
            Message::Synchronize(Synchronize {
                fork,
                length,
                remote_length,
                can_upgrade: f[0],
                uploading: f[1],
                downloading: f[2],
                has_manifest: f[3],
                allow_push: f[4],
            })
        }),
        (
            num(),
            num(),
            prop::option::of(request_block()),
            prop::option::of(request_block()),
            prop::option::of((num(), num())),
            prop::option::of((num(), num())),
            any::<bool>(),
            num()
        )
            .prop_map(
                |(id, fork, block, hash, seek, upgrade, manifest, priority)| {
                    Message::Request(Request {
                        id,
                        fork,
                        block,
                        hash,
                        seek: seek.map(|(bytes, padding)| RequestSeek { bytes, padding }),
                        upgrade: upgrade.map(|(start, length)| RequestUpgrade { start, length }),
                        manifest,
                        priority,
                    })
                }
            ),
        num().prop_map(|request| Message::Cancel(Cancel { request })),
        (
            num(),
            num(),
            prop::option::of((num(), prop::collection::vec(any::<u8>(), 0..64), nodes())),
            prop::option::of((num(), nodes())),
            prop::option::of((num(), nodes())),
            prop::option::of((
                num(),
                num(),
                nodes(),
                nodes(),
                prop::collection::vec(any::<u8>(), 0..70)
            )),
            prop::option::of(manifest())
        )
            .prop_map(|(request, fork, block, hash, seek, upgrade, manifest)| {
                Message::Data(Data {
                    request,
                    fork,
                    block: block.map(|(index, value, nodes)| DataBlock {
                        index,
                        value,
                        nodes,
                    }),
                    hash: hash.map(|(index, nodes)| DataHash { index, nodes }),
                    seek: seek.map(|(bytes, nodes)| DataSeek { bytes, nodes }),
                    upgrade: upgrade.map(|(start, length, nodes, additional_nodes, signature)| {
                        DataUpgrade {
                            start,
                            length,
                            nodes,
                            additional_nodes,
                            signature,
                        }
                    }),
                    manifest,
                })
            }),
        (num(), num()).prop_map(|(request, reason)| Message::NoData(NoData { request, reason })),
        (num(), num(), any::<bool>()).prop_map(|(start, length, any)| Message::Want(Want {
            start,
            length,
            any
        })),
        (num(), num(), any::<bool>()).prop_map(|(start, length, any)| Message::Unwant(Unwant {
            start,
            length,
            any
        })),
        (num(), prop::collection::vec(any::<u32>(), 0..8))
            .prop_map(|(start, bitfield)| Message::Bitfield(Bitfield { start, bitfield })),
        (any::<bool>(), num(), num()).prop_map(|(drop, start, length)| Message::Range(Range {
            drop,
            start,
            length
        })),
        (".{0,12}", prop::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(name, message)| Message::Extension(Extension { name, message })),
    ]
}

/// Whether the encoding ends with its last field written (Want/Unwant without `any`
/// and Extension end with an open field: bytes after them are read as that field,
/// in JS as here).
fn closed_encoding(m: &Message) -> bool {
    !matches!(
        m,
        Message::Want(Want { any: false, .. })
            | Message::Unwant(Unwant { any: false, .. })
            | Message::Extension(_)
    )
}

/// Input bytes leaning towards the length prefixes (0xfd..0xff) that make huge counts.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![any::<u8>(), Just(0xff), Just(0xfe), Just(0x1f), Just(0x01)],
        0..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_round_trips(m in message()) {
        let _serial = serial();
        let bytes = m.to_bytes();
        prop_assert_eq!(Message::decode(m.typ(), &bytes).unwrap(), m);
    }

    #[test]
    fn trailing_unknown_bytes_are_ignored(m in message(), extra in prop::collection::vec(any::<u8>(), 1..16)) {
        let _serial = serial();
        prop_assume!(closed_encoding(&m));
        let mut bytes = m.to_bytes();
        bytes.extend(&extra);
        prop_assert_eq!(Message::decode(m.typ(), &bytes).unwrap(), m);
    }

    /// hypercore-protocol 0.7.2 read an unknown trailing field as the next message; a
    /// batch of messages with extra bytes each still yields exactly those messages.
    #[test]
    fn batch_entries_are_sliced_by_their_length(
        ms in prop::collection::vec(message(), 2..6),
        extra in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        let _serial = serial();
        let ms: Vec<Message> = ms.into_iter().filter(closed_encoding).collect();
        prop_assume!(ms.len() >= 2);
        // A batch whose entries carry unknown trailing bytes (a newer peer's fields).
        let mut frame = vec![0u8, 0, 7];
        for m in &ms {
            let mut entry = vec![u8::try_from(m.typ()).unwrap()];
            m.encode(&mut entry);
            entry.extend(&extra);
            nova_hypercore_replication::wire::compact::put_buffer(&mut frame, &entry);
        }
        let mut cursor = Cursor::default();
        let mut got = Vec::new();
        while let Some(item) = cursor.next(&frame) {
            match item.unwrap() {
                Item::Message { channel: 7, typ, body } => got.push(Message::decode(typ, body).unwrap()),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(&got, &ms);
        // And the plain batch encoder round-trips too.
        let plain = batch_frame(7, &ms);
        let mut cursor = Cursor::default();
        let mut again = Vec::new();
        while let Some(Ok(Item::Message { typ, body, .. })) = cursor.next(&plain) {
            again.push(Message::decode(typ, body).unwrap());
        }
        prop_assert_eq!(again, ms);
    }

    /// Arbitrary bytes as each message type: an error or a value, never a panic, no
    /// allocation sized by a length field, and what decodes holds no more than the
    /// input carried.
    #[test]
    fn arbitrary_bytes_decode_within_bounds(typ in 0u64..11, bytes in hostile_bytes()) {
        let _serial = serial();
        let (result, grew) = peak_growth(|| Message::decode(typ, &bytes));
        prop_assert!(grew <= SLACK_KIB, "peak memory grew {} KiB for {} input bytes", grew, bytes.len());
        if let Ok(m) = result {
            prop_assert!(m.to_bytes().len() <= bytes.len() + 9 * 8);
        }
    }

    /// Arbitrary frames through the protomux reader: bounded the same way.
    #[test]
    fn arbitrary_frames_read_within_bounds(bytes in hostile_bytes()) {
        let _serial = serial();
        let (items, grew) = peak_growth(|| {
            let mut cursor = Cursor::default();
            let mut n = 0usize;
            while let Some(item) = cursor.next(&bytes) {
                if let Ok(Item::Message { typ, body, .. }) = item {
                    let _ = Message::decode(typ, body);
                }
                n += 1;
            }
            n
        });
        prop_assert!(items <= bytes.len() + 1);
        prop_assert!(grew <= SLACK_KIB, "peak memory grew {} KiB", grew);
    }
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Found by coverage-guided fuzzing (libFuzzer: 55,109 runs, then 673,973 more): a `Data` whose node
/// index is all ones made the flat-tree parent computation shift past 64 bits (a
/// panic in debug builds). Node indexes past `MAX_NODE_INDEX` are a typed error.
#[test]
fn a_node_index_past_the_tree_limit_is_an_error_not_a_panic() {
    let _serial = serial();
    let crash = "33363b0f000200000000000000000000000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff000031a301261b2d00000318000000300000000000000000000000000000000000303030";
    let bytes = unhex(crash);
    // The fuzz target read the first byte as the message type (mod 12): 0x33 is Data.
    let (typ, body) = bytes.split_first().unwrap();
    let decoded = Message::decode(u64::from(*typ % 12), body);
    assert!(decoded.is_err(), "{decoded:?}");
    assert!(
        decoded.unwrap_err().to_string().contains("above the limit"),
        "a typed TooLarge"
    );
    // The fuzzer's second find: index 2^62 - 1 (62 ones), under a first limit of 2^62.
    let second = "ff05000000000400010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000ffffffffffffffffffffffffffffffffffff3f184e4700000000a2ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0000ffffffffffffffffffffffffffffffffff000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
    let bytes = unhex(second);
    let (typ, body) = bytes.split_first().unwrap();
    assert!(Message::decode(u64::from(*typ % 12), body).is_err());
    // Every node index up to the limit is safe to take: its parent is computed.
    for depth in 0..61u32 {
        let ones = (1u64 << depth) - 1;
        for index in [ones, MAX_NODE_INDEX - ones, MAX_NODE_INDEX] {
            let _ = hypercore_schema::Node::new(index, vec![0; 32], 1);
        }
    }
}

#[test]
fn huge_length_fields_allocate_nothing() {
    let _serial = serial();
    // data: block flag, request 0, fork 0, index 0, value length 2^64 - 1.
    let mut bytes = vec![1, 0, 0, 0, 0xff];
    bytes.extend(u64::MAX.to_le_bytes());
    let (r, grew) = peak_growth(|| Message::decode(3, &bytes));
    assert!(r.is_err());
    assert!(grew <= SLACK_KIB, "{grew}");
    // A bitfield of 2^32 - 1 words, a nodes array of 2^20 entries.
    let (r, grew) = peak_growth(|| Message::decode(7, &[0, 0xfe, 0xff, 0xff, 0xff, 0xff]));
    assert!(r.is_err() && grew <= SLACK_KIB);
    let (r, grew) = peak_growth(|| Message::decode(3, &[2, 0, 0, 0, 0xfe, 0, 0, 0x10, 0]));
    assert!(r.is_err() && grew <= SLACK_KIB);
}
