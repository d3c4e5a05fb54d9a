//! Fuzzing the length-prefixed JSON codec with proptest (no nightly): arbitrary bytes and
//! frames whose length prefix lies (up to 4 GiB) give a typed `DESERIALIZATION_FAILED`
//! or a value, never a panic, and never an allocation sized by the prefix (the process's
//! virtual peak, which counts untouched buffers too, stays put).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use nova_hypercore_serialization::{
    CRDTUpdateEntry, DecodeError, ErrorCode, HypercoreError, HypercoreLogEvent, ManagerStatus,
    MemoryNodeEntry, ReplicationStatus, StorageMetadata, deserialize,
};
use nova_hypercore_testkit::{proc_status_bytes, property_config};
use proptest::collection::vec;
use proptest::prelude::*;

fn decode_all(bytes: &[u8]) {
    fn check<T>(bytes: &[u8])
    where
        T: serde::de::DeserializeOwned + garde::Validate<Context = ()>,
    {
        if let Err(e) = deserialize::<T>(bytes) {
            assert_eq!(e.code(), ErrorCode::DeserializationFailed, "{e}");
        }
    }
    check::<MemoryNodeEntry>(bytes);
    check::<CRDTUpdateEntry>(bytes);
    check::<HypercoreLogEvent>(bytes);
    check::<StorageMetadata>(bytes);
    check::<ManagerStatus>(bytes);
    check::<ReplicationStatus>(bytes);
}

const MIB: u64 = 1024 * 1024;

#[test]
fn lying_length_prefixes_are_typed_errors_without_big_allocations() {
    // Warm up (first allocations of the test harness and of serde) before measuring.
    decode_all(&[0, 0, 0, 2, b'{', b'}']);
    let peak_before = proc_status_bytes("VmPeak");
    proptest!(property_config(), |(
        declared in prop_oneof![0u32..64, (1u32 << 30)..=u32::MAX, any::<u32>()],
        body in vec(any::<u8>(), 0..512),
    )| {
        let mut frame = declared.to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        decode_all(&frame);
        // A prefix announcing more than is there says so, with both numbers.
        if u64::from(declared) > body.len() as u64 {
            let err = deserialize::<MemoryNodeEntry>(&frame).unwrap_err();
            let truncated = matches!(
                err,
                HypercoreError::DeserializationFailed {
                    reason: DecodeError::Truncated { declared: d, available },
                    ..
                } if d == u64::from(declared) && available == body.len()
            );
            prop_assert!(truncated, "{}", err);
        }
    });
    // Prefixes of up to 4 GiB were decoded: a buffer sized by one would show here.
    if let (Some(before), Some(after)) = (peak_before, proc_status_bytes("VmPeak")) {
        assert!(
            after.saturating_sub(before) < 256 * MIB,
            "virtual peak grew by {} MiB while decoding frames with lying prefixes",
            after.saturating_sub(before) / MIB
        );
    }
}

proptest! {
    #![proptest_config(property_config())]

    /// Arbitrary bytes, and JSON-looking bodies, under a correct prefix.
    #[test]
    fn arbitrary_frames_decode_or_fail_typed(
        raw in vec(any::<u8>(), 0..1024),
        json in "[{}\\[\\]\":,0-9a-zA-Z .eE+-]{0,256}",
    ) {
        decode_all(&raw);
        let mut framed = (json.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(json.as_bytes());
        decode_all(&framed);
    }
}
