//! Our wire codec against bytes the pinned JS packages wrote
//! (`tests/golden/wire-vectors.json`, made by `js/interop/wire-vectors.mjs` with
//! hypercore 11.39.5 and 10.31.12 `lib/messages.js` and protomux 3.12.1): every sample
//! encodes to hypercore 11's bytes, and decodes from both 11's and 10's to its value.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hypercore_schema::{
    DataBlock, DataHash, DataSeek, DataUpgrade, Node, RequestBlock, RequestUpgrade,
};
use nova_hypercore_replication::protomux::{self, Cursor, Item};
use nova_hypercore_replication::wire::{
    Bitfield, Cancel, Data, Extension, Handshake, Message, NoData, Range, Request, RequestSeek,
    Synchronize, Unwant, Want,
};
use serde_json::Value;

fn golden() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/wire-vectors.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn b(v: &Value, k: &str) -> bool {
    v[k].as_bool().unwrap()
}

fn bytes(v: &Value, k: &str) -> Vec<u8> {
    v[k].as_str().map(unhex).unwrap_or_default()
}

fn opt<T>(v: &Value, k: &str, f: impl Fn(&Value) -> T) -> Option<T> {
    (!v[k].is_null()).then(|| f(&v[k]))
}

fn nodes(v: &Value) -> Vec<Node> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| Node::new(u(n, "index"), bytes(n, "hash"), u(n, "size")))
        .collect()
}

fn request_block(v: &Value) -> RequestBlock {
    RequestBlock {
        index: u(v, "index"),
        nodes: u(v, "nodes"),
    }
}

/// The sample value as our message.
fn message(name: &str, v: &Value) -> Message {
    match name {
        "sync" => Message::Synchronize(Synchronize {
            fork: u(v, "fork"),
            length: u(v, "length"),
            remote_length: u(v, "remoteLength"),
            can_upgrade: b(v, "canUpgrade"),
            uploading: b(v, "uploading"),
            downloading: b(v, "downloading"),
            has_manifest: b(v, "hasManifest"),
            allow_push: b(v, "allowPush"),
        }),
        "request" => Message::Request(Request {
            id: u(v, "id"),
            fork: u(v, "fork"),
            block: opt(v, "block", request_block),
            hash: opt(v, "hash", request_block),
            seek: opt(v, "seek", |s| RequestSeek {
                bytes: u(s, "bytes"),
                padding: u(s, "padding"),
            }),
            upgrade: opt(v, "upgrade", |s| RequestUpgrade {
                start: u(s, "start"),
                length: u(s, "length"),
            }),
            manifest: b(v, "manifest"),
            priority: u(v, "priority"),
        }),
        "cancel" => Message::Cancel(Cancel {
            request: u(v, "request"),
        }),
        "data" => Message::Data(Data {
            request: u(v, "request"),
            fork: u(v, "fork"),
            block: opt(v, "block", |x| DataBlock {
                index: u(x, "index"),
                value: bytes(x, "value"),
                nodes: nodes(&x["nodes"]),
            }),
            hash: opt(v, "hash", |x| DataHash {
                index: u(x, "index"),
                nodes: nodes(&x["nodes"]),
            }),
            seek: opt(v, "seek", |x| DataSeek {
                bytes: u(x, "bytes"),
                nodes: nodes(&x["nodes"]),
            }),
            upgrade: opt(v, "upgrade", |x| DataUpgrade {
                start: u(x, "start"),
                length: u(x, "length"),
                nodes: nodes(&x["nodes"]),
                additional_nodes: nodes(&x["additionalNodes"]),
                signature: bytes(x, "signature"),
            }),
            // The default manifest of a key pair: version 1, no flags, blake2b, quorum
            // 1, one ed25519 signer (namespace, public key), as messages.js writes it.
            manifest: opt(v, "manifest", |m| {
                let signer = &m["signers"][0];
                let mut out = vec![1, 0, 0, 1, 1, 0];
                out.extend(bytes(signer, "namespace"));
                out.extend(bytes(signer, "publicKey"));
                out
            }),
        }),
        "noData" => Message::NoData(NoData {
            request: u(v, "request"),
            reason: u(v, "reason"),
        }),
        "want" => Message::Want(Want {
            start: u(v, "start"),
            length: u(v, "length"),
            any: b(v, "any"),
        }),
        "unwant" => Message::Unwant(Unwant {
            start: u(v, "start"),
            length: u(v, "length"),
            any: b(v, "any"),
        }),
        "bitfield" => Message::Bitfield(Bitfield {
            start: u(v, "start"),
            bitfield: v["bitfield"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| u32::try_from(w.as_u64().unwrap()).unwrap())
                .collect(),
        }),
        "range" => Message::Range(Range {
            drop: b(v, "drop"),
            start: u(v, "start"),
            length: u(v, "length"),
        }),
        "extension" => Message::Extension(Extension {
            name: v["name"].as_str().unwrap().to_string(),
            message: bytes(v, "message"),
        }),
        other => panic!("unknown message {other}"),
    }
}

/// What hypercore 10 wrote for the same value: without the fields 10 does not have.
fn as_js10(m: &Message) -> Message {
    let mut m = m.clone();
    match &mut m {
        Message::Synchronize(s) => s.allow_push = false,
        Message::NoData(n) => n.reason = 0,
        Message::Want(w) => w.any = false,
        Message::Unwant(w) => w.any = false,
        Message::Data(d) => d.manifest = None,
        _ => {}
    }
    m
}

#[test]
fn every_message_matches_the_js_bytes() {
    let g = golden();
    let vectors = g["vectors"].as_array().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for v in vectors {
        let name = v["message"].as_str().unwrap();
        let typ = u(v, "type");
        let want = message(name, &v["value"]);
        assert_eq!(want.typ(), typ, "{name}");
        assert_eq!(want.name(), name);
        let js11 = unhex(v["js11"].as_str().unwrap());
        let js10 = unhex(v["js10"].as_str().unwrap());
        assert_eq!(
            want.to_bytes(),
            js11,
            "{name}: our bytes differ from hypercore 11's"
        );
        assert_eq!(Message::decode(typ, &js11).unwrap(), want, "{name} from 11");
        assert_eq!(
            Message::decode(typ, &js10).unwrap(),
            as_js10(&want),
            "{name} from 10"
        );
        seen.insert(typ);
    }
    assert_eq!(seen.len(), 10, "a sample per message type");
}

#[test]
fn handshake_and_capability_match_js() {
    let g = golden();
    let h = &g["handshake"];
    let cap = unhex(h["value"]["capability"].as_str().unwrap());
    let handshake = Handshake {
        seeks: true,
        capability: cap.clone().try_into().unwrap(),
    };
    let mut out = Vec::new();
    handshake.encode(&mut out);
    assert_eq!(out, unhex(h["js11"].as_str().unwrap()));
    assert_eq!(Handshake::decode(&out).unwrap(), handshake);
    let c = &h["capability"];
    let hash = unhex(c["handshakeHash"].as_str().unwrap());
    let key: [u8; 32] = unhex(c["key"].as_str().unwrap()).try_into().unwrap();
    let initiator = protomux::capability(true, &key, &hash).unwrap();
    let responder = protomux::capability(false, &key, &hash).unwrap();
    assert_eq!(initiator.to_vec(), unhex(c["initiator"].as_str().unwrap()));
    assert_eq!(responder.to_vec(), unhex(c["responder"].as_str().unwrap()));
    assert_eq!(initiator.to_vec(), cap);
}

#[test]
fn protomux_frames_match_js() {
    let g = golden();
    let f = &g["protomux_frames"];
    let frame = |k: &str| unhex(f[k]["frame"].as_str().unwrap());

    let open = &f["open"];
    let handshake = Handshake {
        seeks: false,
        capability: bytes(&open["handshake"], "capability").try_into().unwrap(),
    };
    let key = bytes(open, "key");
    assert_eq!(
        protomux::open_frame(u(open, "id"), "hypercore/alpha", &key, &handshake),
        frame("open")
    );
    let bytes_open = frame("open");
    let mut cursor = Cursor::default();
    match cursor.next(&bytes_open).unwrap().unwrap() {
        Item::Open {
            id,
            protocol,
            key: k,
            handshake: h,
        } => {
            assert_eq!(
                (id, protocol, k),
                (1, &b"hypercore/alpha"[..], Some(&key[..]))
            );
            assert_eq!(Handshake::decode(h).unwrap(), handshake);
        }
        other => panic!("{other:?}"),
    }
    assert!(cursor.next(&bytes_open).is_none());

    let single = message("sync", &f["message"]["value"]);
    assert_eq!(protomux::message_frame(1, &single), frame("message"));

    let batch: Vec<Message> = f["batch"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| message(pair[0].as_str().unwrap(), &pair[1]))
        .collect();
    let bytes_batch = frame("batch");
    assert_eq!(protomux::batch_frame(1, &batch), bytes_batch);
    let mut cursor = Cursor::default();
    let mut decoded = Vec::new();
    while let Some(item) = cursor.next(&bytes_batch) {
        match item.unwrap() {
            Item::Message { channel, typ, body } => {
                assert_eq!(channel, 1);
                decoded.push(Message::decode(typ, body).unwrap());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(decoded, batch);

    assert_eq!(protomux::close_frame(1), frame("close"));
    assert_eq!(protomux::reject_frame(2), frame("reject"));
    assert_eq!(
        Cursor::default().next(&frame("reject")).unwrap().unwrap(),
        Item::Reject { id: 2 }
    );
    assert_eq!(
        Cursor::default().next(&frame("close")).unwrap().unwrap(),
        Item::Close { id: 1 }
    );
}
