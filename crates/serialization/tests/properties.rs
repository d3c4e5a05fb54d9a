//! Spec property 9 and the decoder's no-panic property, against the public API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use nova_hypercore_serialization::{
    CRDTUpdateEntry, DecodeError, Direction, ErrorCode, HypercoreError, HypercoreLogEvent,
    MAX_SAFE_INTEGER, ManagerStatus, MemoryNodeEntry, Operation, ReplicationStatus,
    StorageMetadata, deserialize, serialize,
};
use nova_hypercore_testkit::{CaseCounter, property_config};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

/// Integers the JS side holds exactly, biased towards the edges.
fn safe_int() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(MAX_SAFE_INTEGER),
        Just(MAX_SAFE_INTEGER - 1),
        Just(u64::from(u32::MAX) + 1),
        0..=MAX_SAFE_INTEGER,
    ]
}

/// Any Unicode text, including escapes JSON must handle (quotes, controls, astral chars).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}\u{2029}\u{1F600}é漢a-z]{0,24}",
    ]
}

fn importance() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1.0), Just(f64::MIN_POSITIVE), 0.0f64..=1.0]
}

fn memory_node() -> impl Strategy<Value = MemoryNodeEntry> {
    (
        text(),
        text(),
        text(),
        text(),
        vec(text(), 0..6),
        importance(),
        safe_int(),
    )
        .prop_map(
            |(id, agent_source, category, content, tags, importance, timestamp)| MemoryNodeEntry {
                id,
                agent_source,
                category,
                content,
                tags,
                importance,
                timestamp,
            },
        )
}

fn crdt_update() -> impl Strategy<Value = CRDTUpdateEntry> {
    (
        text(),
        safe_int(),
        btree_map(text(), safe_int(), 0..5),
        vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(source_id, timestamp, causal_clock, payload)| CRDTUpdateEntry {
                source_id,
                timestamp,
                causal_clock,
                payload,
            },
        )
}

fn log_event() -> impl Strategy<Value = HypercoreLogEvent> {
    let op = prop_oneof![
        Just(Operation::Append),
        Just(Operation::Read),
        Just(Operation::Replicate),
        Just(Operation::Error),
        Just(Operation::Lifecycle),
    ];
    let dir = prop_oneof![Just(Direction::Send), Just(Direction::Receive)];
    (
        op,
        text(),
        proptest::option::of(safe_int()),
        safe_int(),
        proptest::option::of(text()),
        proptest::option::of(dir),
        proptest::option::of(safe_int()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(
                operation,
                log_name,
                seq,
                timestamp,
                peer_id,
                direction,
                byte_count,
                error_message,
            )| {
                HypercoreLogEvent {
                    operation,
                    log_name,
                    seq,
                    timestamp,
                    peer_id,
                    direction,
                    byte_count,
                    error_message,
                }
            },
        )
}

fn storage_metadata() -> impl Strategy<Value = StorageMetadata> {
    (text(), safe_int(), safe_int(), safe_int()).prop_map(
        |(storage_path, log_count, total_byte_size, created_at)| StorageMetadata {
            storage_path,
            log_count,
            total_byte_size,
            created_at,
        },
    )
}

fn manager_status() -> impl Strategy<Value = ManagerStatus> {
    (
        any::<bool>(),
        safe_int(),
        safe_int(),
        any::<bool>(),
        safe_int(),
        proptest::option::of(safe_int()),
    )
        .prop_map(
            |(
                initialized,
                log_count,
                total_byte_size,
                replication_enabled,
                active_peers,
                disk_usage_bytes,
            )| {
                ManagerStatus {
                    initialized,
                    log_count,
                    total_byte_size,
                    replication_enabled,
                    active_peers,
                    disk_usage_bytes,
                }
            },
        )
}

fn replication_status() -> impl Strategy<Value = ReplicationStatus> {
    (
        text(),
        safe_int(),
        btree_map("[0-9a-f]{64}", safe_int(), 0..4),
        safe_int(),
        safe_int(),
    )
        .prop_map(
            |(log_name, local_length, remote_lengths, active_peers, bytes_transferred)| {
                ReplicationStatus {
                    log_name,
                    local_length,
                    remote_lengths,
                    active_peers,
                    bytes_transferred,
                }
            },
        )
}

fn round_trip<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned + garde::Validate<Context = ()>,
{
    let bytes = serialize(value).unwrap();
    deserialize(&bytes).unwrap()
}

/// Feature: p2p-hypercore-protocol, Property 9: Serialization round trip
#[test]
fn property_09_serialization_round_trip() {
    let cases = CaseCounter::new(9);
    proptest!(property_config(), |(
        node in memory_node(),
        update in crdt_update(),
        event in log_event(),
        meta in storage_metadata(),
        status in manager_status(),
        repl in replication_status(),
        code in proptest::sample::select(ErrorCode::ALL.to_vec()),
    )| {
        cases.hit();
        prop_assert_eq!(round_trip(&node), node);
        prop_assert_eq!(round_trip(&update), update);
        prop_assert_eq!(round_trip(&event), event);
        prop_assert_eq!(round_trip(&meta), meta);
        prop_assert_eq!(round_trip(&status), status);
        prop_assert_eq!(round_trip(&repl), repl);
        // The error type crosses IPC as the spec's JSON shape with the code spelled out.
        let json = serde_json::to_value(code).unwrap();
        prop_assert_eq!(json.as_str(), Some(code.as_str()));
        let back: ErrorCode = serde_json::from_value(json).unwrap();
        prop_assert_eq!(back, code);
    });
}

fn decode_all(bytes: &[u8]) {
    // Every model, every input: a value or a DESERIALIZATION_FAILED error, never a panic.
    fn check<T>(bytes: &[u8])
    where
        T: serde::de::DeserializeOwned + garde::Validate<Context = ()>,
    {
        if let Err(e) = deserialize::<T>(bytes) {
            assert_eq!(e.code(), ErrorCode::DeserializationFailed, "{e}");
            assert!(!e.to_string().is_empty());
        }
    }
    check::<MemoryNodeEntry>(bytes);
    check::<CRDTUpdateEntry>(bytes);
    check::<HypercoreLogEvent>(bytes);
    check::<StorageMetadata>(bytes);
    check::<ManagerStatus>(bytes);
    check::<ReplicationStatus>(bytes);
}

proptest! {
    #![proptest_config(property_config())]

    /// Raw bytes, well-framed garbage and mutated valid frames never panic the decoder.
    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(
        raw in vec(any::<u8>(), 0..256),
        body in vec(any::<u8>(), 0..128),
        node in memory_node(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cut in any::<prop::sample::Index>(),
    ) {
        decode_all(&raw);
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        decode_all(&framed);
        let valid = serialize(&node).unwrap();
        let mut mutated = valid.clone();
        let i = flip.index(mutated.len());
        mutated[i] ^= 1 << bit;
        decode_all(&mutated);
        decode_all(&valid[..cut.index(valid.len())]);
    }

    /// Values outside the schema are refused on the way in, with the field path.
    #[test]
    fn invalid_values_are_never_serialized(
        mut node in memory_node(),
        importance in prop_oneof![1.000_001f64..1e300, -1e300f64..-0.0001],
        ts in (MAX_SAFE_INTEGER + 1)..=u64::MAX,
    ) {
        node.importance = importance;
        let err = serialize(&node).unwrap_err();
        prop_assert_eq!(err.code(), ErrorCode::DeserializationFailed);
        let is_importance = matches!(
            &err,
            HypercoreError::DeserializationFailed { reason: DecodeError::Schema { path, .. }, .. }
                if path == "importance"
        );
        prop_assert!(is_importance, "{}", err);
        node.importance = 0.5;
        node.timestamp = ts;
        prop_assert!(serialize(&node).is_err());
    }
}

#[test]
fn error_serializes_to_the_spec_shape() {
    let err = HypercoreError::OutOfRange {
        log: "atlas-memory".into(),
        seq: 12,
        length: 10,
    };
    let json = serde_json::to_value(&err).unwrap();
    assert_eq!(json["code"], "OUT_OF_RANGE");
    assert_eq!(json["logName"], "atlas-memory");
    assert_eq!(json["seq"], 12);
    assert!(json["message"].as_str().unwrap().contains("length 10"));
    let _: BTreeMap<String, serde_json::Value> = serde_json::from_value(json).unwrap();
}
