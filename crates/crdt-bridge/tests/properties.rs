//! Spec property 13, on a real store per case.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use nova_hypercore_crdt_bridge::{CrdtBridge, DEFAULT_LOG};
use nova_hypercore_manager::{HypercoreManager, ManagerConfig};
use nova_hypercore_serialization::{CRDTUpdateEntry, deserialize};
use nova_hypercore_testkit::{CaseCounter, property_config, runtime};
use proptest::collection::vec;
use proptest::prelude::*;

/// Updates from up to four sources, with payloads of any bytes (empty included).
fn updates() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    vec(
        (
            prop::sample::select(vec!["alice", "bob", "carol", "dave"]).prop_map(str::to_owned),
            vec(any::<u8>(), 0..64),
        ),
        1..24,
    )
}

/// Feature: p2p-hypercore-protocol, Property 13: CRDT append preservation with causal metadata
#[test]
fn property_13_crdt_append_preservation_with_causal_metadata() {
    let cases = CaseCounter::new(13);
    let rt = runtime();
    proptest!(property_config(), |(updates in updates())| {
        cases.hit();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let m = HypercoreManager::new(
                ManagerConfig::builder().storage_path(dir.path()).build().unwrap(),
            )
            .unwrap();
            m.initialize().await.unwrap();
            let bridge = CrdtBridge::open(&m).await.unwrap();
            let mut seqs = Vec::new();
            for (source, payload) in &updates {
                seqs.push(bridge.broadcast(payload, source).await.unwrap());
            }
            // Each update is a separate entry; the entry count is the update count.
            let expected: Vec<u64> = (0..updates.len() as u64).collect();
            prop_assert_eq!(seqs, expected);
            prop_assert_eq!(m.get_length(DEFAULT_LOG).await.unwrap(), updates.len() as u64);
            let stored = m.read_range(DEFAULT_LOG, 0, updates.len() as u64).await.unwrap();
            let mut per_source: BTreeMap<&str, u64> = BTreeMap::new();
            for ((source, payload), bytes) in updates.iter().zip(&stored) {
                let entry: CRDTUpdateEntry = deserialize(bytes).unwrap();
                prop_assert_eq!(&entry.source_id, source);
                prop_assert_eq!(&entry.payload, payload);
                // A non-empty causal clock: the source's own counter counts this update,
                // and every source broadcast before is in it.
                prop_assert!(!entry.causal_clock.is_empty());
                *per_source.entry(source.as_str()).or_insert(0) += 1;
                let expected_clock: BTreeMap<String, u64> =
                    per_source.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
                prop_assert_eq!(&entry.causal_clock, &expected_clock);
            }
            bridge.close().await.unwrap();
            m.close().await.unwrap();
            Ok(())
        })?;
    });
    assert!(cases.count() >= 100, "ran {} cases", cases.count());
}
