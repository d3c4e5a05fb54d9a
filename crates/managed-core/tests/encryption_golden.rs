//! Block encryption against the bytes JS stores: golden vectors made by JS hypercore
//! 10.31.12 and 11.39.5 (`js/golden/encryption-vectors.mjs`, files under
//! `tests/golden/encryption/`), checked byte for byte (keys, stored blocks, plaintexts,
//! forks), and round-trip properties of `encrypt`/`decrypt`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use nova_hypercore_managed_core::encryption::{BlockEncryption, KeyDerivation, PADDING};
use nova_hypercore_managed_core::manifest::default_core_key;
use nova_hypercore_managed_core::{CoreFormat, SigningKey};
use nova_hypercore_testkit::property_config;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;

/// (file name, the vectors, the format our core would have for this key, if any).
fn vectors() -> [(&'static str, Value, Option<CoreFormat>); 3] {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    [
        (
            "compat-h10",
            parse(include_str!("golden/encryption/compat-h10.json")),
            Some(CoreFormat::Legacy),
        ),
        (
            "manifest-v0-h10",
            parse(include_str!("golden/encryption/manifest-v0-h10.json")),
            None,
        ),
        (
            "manifest-v1-h11",
            parse(include_str!("golden/encryption/manifest-v1-h11.json")),
            Some(CoreFormat::V1),
        ),
    ]
}

fn unhex(s: &Value) -> Vec<u8> {
    let s = s.as_str().unwrap();
    assert_eq!(s.len() % 2, 0);
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key32(v: &Value) -> [u8; 32] {
    unhex(v).try_into().unwrap()
}

fn derivation(v: &Value) -> KeyDerivation {
    if v["compat"].as_bool().unwrap() {
        KeyDerivation::Compat
    } else {
        KeyDerivation::Manifest
    }
}

/// The vectors were made from the key pair of seed 32 × 0x01; the core keys are the ones
/// our own code computes for that signer (compat: the public key; v1: the default
/// manifest's hash).
#[test]
fn core_keys_are_ours() {
    let public = SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes();
    for (name, v, format) in vectors() {
        assert_eq!(key32(&v["publicKey"]), public, "{name}");
        let core_key = key32(&v["coreKey"]);
        match format {
            Some(CoreFormat::Legacy) => assert_eq!(core_key, public, "{name}"),
            Some(CoreFormat::V1) => assert_eq!(core_key, default_core_key(&public), "{name}"),
            None => assert_ne!(core_key, public, "{name}"),
        }
    }
}

/// Block key and blinding key as JS derives them, for both derivations; a core format
/// selects the derivation JS's `compat` does.
#[test]
fn keys_match_js() {
    for (name, v, format) in vectors() {
        let derivation = derivation(&v);
        if let Some(format) = format {
            assert_eq!(KeyDerivation::from(format), derivation, "{name}");
        }
        let keys = BlockEncryption::new(
            &unhex(&v["encryptionKey"]),
            &key32(&v["coreKey"]),
            derivation,
        )
        .unwrap();
        assert_eq!(keys.block_key(), &key32(&v["blockKey"]), "{name}");
        assert_eq!(keys.blinding_key(), &key32(&v["blindingKey"]), "{name}");
        assert_eq!(v["padding"].as_u64().unwrap(), PADDING as u64, "{name}");

        // The other derivation gives another key (the choice matters).
        let other = match derivation {
            KeyDerivation::Compat => KeyDerivation::Manifest,
            KeyDerivation::Manifest => KeyDerivation::Compat,
        };
        let wrong = BlockEncryption::new(&unhex(&v["encryptionKey"]), &key32(&v["coreKey"]), other)
            .unwrap();
        assert_ne!(wrong.block_key(), keys.block_key(), "{name}");
    }
}

/// Every stored block JS wrote: our `encrypt` makes the same bytes, `decrypt` gives the
/// plaintext back, the padding unblinds to the fork, with derived keys and with the block
/// key given directly (JS `isBlockKey`).
#[test]
fn blocks_match_js() {
    let mut sizes = std::collections::BTreeSet::new();
    let mut forks = std::collections::BTreeSet::new();
    for (name, v, _) in vectors() {
        let derived = BlockEncryption::new(
            &unhex(&v["encryptionKey"]),
            &key32(&v["coreKey"]),
            derivation(&v),
        )
        .unwrap();
        let given = BlockEncryption::from_block_key(&unhex(&v["blockKey"])).unwrap();
        assert_eq!(given.blinding_key(), derived.blinding_key(), "{name}");
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 7, "{name}");
        for b in blocks {
            let index = b["index"].as_u64().unwrap();
            let fork = b["fork"].as_u64().unwrap();
            let plaintext = unhex(&b["plaintext"]);
            let stored = unhex(&b["stored"]);
            let at = format!("{name} block {index} fork {fork}");
            assert_eq!(stored.len(), plaintext.len() + PADDING, "{at}");
            for keys in [&derived, &given] {
                assert_eq!(
                    keys.encrypt(index, fork, &plaintext).unwrap(),
                    stored,
                    "{at}"
                );
                assert_eq!(keys.decrypt(index, &stored).unwrap(), plaintext, "{at}");
                assert_eq!(keys.fork(index, &stored).unwrap(), fork, "{at}");
            }
            sizes.insert(plaintext.len());
            forks.insert(fork);
        }
        // The same index at two forks: paddings differ by exactly fork₀ XOR fork₁.
        for index in [2, 3] {
            let at = |fork: u64| {
                let b = blocks
                    .iter()
                    .find(|b| b["index"] == index && b["fork"] == fork)
                    .unwrap();
                unhex(&b["stored"])
            };
            let (f0, f1) = (at(0), at(1));
            let xor: Vec<u8> = f0[..PADDING]
                .iter()
                .zip(&f1[..PADDING])
                .map(|(a, b)| a ^ b)
                .collect();
            assert_eq!(xor, 1u64.to_le_bytes(), "{name} index {index}");
        }
    }
    assert_eq!(
        sizes.into_iter().collect::<Vec<_>>(),
        [0, 1, 100, 5000],
        "the vectors cover these plaintext sizes"
    );
    assert_eq!(forks.into_iter().collect::<Vec<_>>(), [0, 1]);
}

/// There is no MAC: a wrong key decrypts without error to other bytes.
#[test]
fn a_wrong_key_is_not_detected() {
    let (_, v, _) = &vectors()[0];
    let wrong = BlockEncryption::from_block_key(&[0x55; 32]).unwrap();
    let b = v["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["plaintext"].as_str().unwrap().len() == 200)
        .unwrap();
    let got = wrong
        .decrypt(b["index"].as_u64().unwrap(), &unhex(&b["stored"]))
        .unwrap();
    assert_eq!(got.len(), 100);
    assert_ne!(got, unhex(&b["plaintext"]));
}

fn arb_derivation() -> impl Strategy<Value = KeyDerivation> {
    prop_oneof![Just(KeyDerivation::Compat), Just(KeyDerivation::Manifest)]
}

proptest! {
    #![proptest_config(property_config())]

    /// decrypt(encrypt(x)) == x for any index, fork, payload and key; the stored block is
    /// 8 bytes longer, and its padding unblinds to the fork it was written at.
    #[test]
    fn encrypt_decrypt_round_trip(
        index in any::<u64>(),
        fork in any::<u64>(),
        payload in vec(any::<u8>(), 0..2048),
        encryption_key in vec(any::<u8>(), 32),
        core_key in any::<[u8; 32]>(),
        derivation in arb_derivation(),
    ) {
        let keys = BlockEncryption::new(&encryption_key, &core_key, derivation).unwrap();
        let stored = keys.encrypt(index, fork, &payload).unwrap();
        prop_assert_eq!(stored.len(), payload.len() + PADDING);
        prop_assert_eq!(keys.decrypt(index, &stored).unwrap(), payload.clone());
        prop_assert_eq!(keys.fork(index, &stored).unwrap(), fork);
        // The block key alone reads it too.
        let given = BlockEncryption::from_block_key(keys.block_key()).unwrap();
        prop_assert_eq!(given.decrypt(index, &stored).unwrap(), payload.clone());
        // Another fork at the same index changes only the padding's blinded fork bits,
        // and the body keystream with it; both decrypt.
        let other = keys.encrypt(index, fork ^ 1, &payload).unwrap();
        prop_assert_ne!(&other[..PADDING], &stored[..PADDING]);
        prop_assert_eq!(keys.decrypt(index, &other).unwrap(), payload);
    }

    /// Any stored bytes decrypt without a panic: shorter than the padding is an error,
    /// anything else gives a plaintext 8 bytes shorter.
    #[test]
    fn decrypt_takes_any_bytes(index in any::<u64>(), stored in vec(any::<u8>(), 0..64)) {
        let keys = BlockEncryption::from_block_key(&[9; 32]).unwrap();
        match keys.decrypt(index, &stored) {
            Ok(plain) => prop_assert_eq!(plain.len() + PADDING, stored.len()),
            Err(e) => {
                prop_assert!(stored.len() < PADDING);
                prop_assert_eq!(e.seq(), Some(index));
            }
        }
    }
}
