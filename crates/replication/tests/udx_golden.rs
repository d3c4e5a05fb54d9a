//! Our UDX packet codec against datagrams that real C libudx (udx-native 1.21.3) sent:
//! `tests/golden/udx-packets.json`, recorded by `js/interop/udx-capture.mjs` through a
//! proxy that dropped one data packet (so there are SACK acks and a retransmission).
//! Every datagram decodes to what C meant and encodes back to the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use nova_hypercore_replication::udx::packet::{self, Flags, HEADER_LEN};
use serde_json::Value;

struct Captured {
    scene: String,
    dir: String,
    bytes: Vec<u8>,
    dropped: bool,
}

fn captured() -> Vec<Captured> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/udx-packets.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let hex = p["hex"].as_str().unwrap();
            Captured {
                scene: p["scene"].as_str().unwrap().to_owned(),
                dir: p["dir"].as_str().unwrap().to_owned(),
                bytes: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
                dropped: p["dropped"].as_bool().unwrap_or(false),
            }
        })
        .collect()
}

#[test]
fn every_c_datagram_decodes_and_encodes_back_to_its_bytes() {
    let all = captured();
    assert!(all.len() > 20);
    for c in &all {
        let p = packet::decode(&c.bytes)
            .unwrap_or_else(|e| panic!("{e}: {:02x?}", c.bytes))
            .unwrap_or_else(|| panic!("not UDX: {:02x?}", c.bytes));
        assert_eq!(p.header.flags.bits(), c.bytes[2]);
        assert_eq!(p.to_bytes(), c.bytes, "{:?}", p.header);
        // C's receive window is always 4 MiB; ids are the other side's.
        assert_eq!(p.header.rwnd, 4 << 20);
        if c.scene == "stream" {
            assert_eq!(p.header.id, if c.dir == "A->B" { 2 } else { 1 });
        }
    }
}

#[test]
fn the_captured_conversation_reads_as_c_meant_it() {
    let all = captured();
    let decoded: Vec<_> = all
        .iter()
        .map(|c| (c, packet::decode(&c.bytes).unwrap().unwrap()))
        .collect();
    let kinds: std::collections::HashSet<u8> =
        decoded.iter().map(|(_, p)| p.header.flags.bits()).collect();
    for flags in [
        Flags::ACK,
        Flags::DATA,
        Flags::END,
        Flags::SACK,
        Flags::MESSAGE,
        Flags::DESTROY,
        Flags::HEARTBEAT,
    ] {
        assert!(
            kinds.contains(&flags.bits()),
            "no {flags:?} packet captured"
        );
    }
    // A's first packet: "hello" at seq 0.
    let (_, first) = &decoded[0];
    assert_eq!(first.header.flags, Flags::DATA);
    assert_eq!((first.header.seq, first.header.ack), (0, 0));
    assert_eq!(first.payload, b"hello");
    // B's 5,000 bytes arrive by seq (the dropped packet is sent again), each packet at
    // most 1,152 bytes of payload (C's base MTU 1,200 less IPv4 + UDP + UDX headers).
    let mut from_b: BTreeMap<u32, &[u8]> = BTreeMap::new();
    for (c, p) in &decoded {
        if c.scene == "stream" && c.dir == "B->A" && p.header.flags.contains(Flags::DATA) {
            assert!(p.payload.len() <= 1152);
            if !c.dropped {
                from_b.insert(p.header.seq, p.payload);
            }
        }
    }
    let bytes: Vec<u8> = from_b.values().flat_map(|p| p.iter().copied()).collect();
    assert_eq!(bytes, vec![7u8; 5000]);
    // While seq 1 was missing, A's acks said "have 2.., 3.., 4.." in SACK blocks, with
    // data_offset 0 and cumulative ack 1.
    let sacks: Vec<_> = decoded
        .iter()
        .filter(|(_, p)| p.header.flags.contains(Flags::SACK))
        .collect();
    assert!(!sacks.is_empty());
    for (c, p) in sacks {
        assert_eq!(p.header.data_offset, 0);
        assert_eq!(p.header.ack, 1);
        assert_eq!(c.bytes.len(), HEADER_LEN + 8 * p.sacks.len());
        assert!(p.sacks.iter().all(|b| b.start == 2 && b.end > b.start));
    }
    // The datagram and the destroy.
    assert!(
        decoded
            .iter()
            .any(|(_, p)| p.header.flags == Flags::MESSAGE && p.payload == b"datagram")
    );
    let destroy = decoded
        .iter()
        .find(|(_, p)| p.header.flags == Flags::DESTROY)
        .unwrap();
    assert_eq!(destroy.0.scene, "destroy");
    assert!(destroy.1.payload.is_empty());
}
