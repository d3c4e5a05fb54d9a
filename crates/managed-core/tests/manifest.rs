//! Hypercore 11 manifest cores: golden vectors made by JS hypercore 11.39.5
//! (`js/golden/manifest-vectors.mjs`), v1 logs written, reopened and replicated on disk,
//! replicas opened by core key, tampering, and codec properties.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use nova_hypercore_managed_core::manifest::{
    DEFAULT_NAMESPACE, MANIFEST_NAMESPACE, Manifest, ManifestError, default_core_key, manifest_hash,
};
use nova_hypercore_managed_core::{
    CoreFormat, ManagedCore, OpenOptions, Proof, RequestBlock, RequestUpgrade, SigningKey,
    discovery_key,
};
use nova_hypercore_serialization::{ErrorCode, LogName};
use proptest::prelude::*;
use serde_json::Value;

fn name() -> LogName {
    LogName::parse("manifest-core").unwrap()
}

/// A v1 writer log under `dir`, signed by `key`.
async fn open_v1_writer(dir: &std::path::Path, key: &SigningKey) -> ManagedCore {
    ManagedCore::open(
        dir,
        name(),
        OpenOptions::new()
            .signing_key(key.clone())
            .format(CoreFormat::V1),
    )
    .await
    .unwrap()
}

fn golden() -> Value {
    serde_json::from_str(include_str!("golden/manifest/vectors.json")).unwrap()
}

fn unhex(s: &Value) -> Vec<u8> {
    let s = s.as_str().unwrap();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn seed_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8))
}

/// The upgrade proof from `have` to the writer's length.
async fn upgrade(writer: &ManagedCore, have: u64) -> Proof {
    writer
        .serve_proof(
            None,
            Some(RequestUpgrade {
                start: have,
                length: writer.length() - have,
            }),
        )
        .await
        .unwrap()
        .expect("upgrade proof")
}

/// Copies every block of `writer` into `replica` (one upgrade, then block proofs).
async fn replicate(writer: &ManagedCore, replica: &ManagedCore) {
    let have = replica.length();
    if writer.length() > have {
        assert!(
            replica
                .apply_proof(upgrade(writer, have).await)
                .await
                .unwrap()
        );
    }
    for index in 0..writer.length() {
        if replica.has_block(index).await.unwrap() {
            continue;
        }
        let nodes = replica.missing_nodes(index).await.unwrap();
        let proof = writer
            .serve_proof(Some(RequestBlock { index, nodes }), None)
            .await
            .unwrap()
            .expect("block proof");
        assert!(replica.apply_proof(proof).await.unwrap(), "block {index}");
    }
}

/// A v1 log we write with JS's seed reproduces JS's key, discovery key, manifest and
/// the stored signature (multisig container) at every length, byte for byte.
#[tokio::test]
async fn our_v1_writer_reproduces_the_js_golden_core() {
    let g = golden();
    assert_eq!(g["hypercore"], "11.39.5");
    assert_eq!(unhex(&g["manifestNamespace"]), MANIFEST_NAMESPACE);
    assert_eq!(unhex(&g["defaultNamespace"]), DEFAULT_NAMESPACE);
    let key = seed_key();
    assert_eq!(hex(key.verifying_key().as_bytes()), g["publicKey"]);
    let manifest = Manifest::default_signer(key.verifying_key().to_bytes());
    assert_eq!(hex(&manifest.encode()), g["manifest"]);
    assert_eq!(
        hex(&default_core_key(key.verifying_key().as_bytes())),
        g["key"]
    );

    let dir = tempfile::tempdir().unwrap();
    let log = open_v1_writer(dir.path(), &key).await;
    assert_eq!(hex(&log.public_key()), g["key"]);
    assert_eq!(hex(&log.discovery_key()), g["discoveryKey"]);
    assert_eq!(hex(&discovery_key(&log.public_key())), g["discoveryKey"]);
    assert_eq!(hex(&log.manifest().unwrap()), g["manifest"]);
    assert_eq!(log.signer_key(), Some(key.verifying_key()));
    assert_eq!(log.format(), Some(CoreFormat::V1));
    assert!(log.has_manifest());
    assert!(!log.needs_manifest());

    let entries = g["entries"].as_array().unwrap();
    let lengths = g["lengths"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for (entry, at) in entries.iter().zip(lengths) {
        log.append(entry.as_str().unwrap().as_bytes())
            .await
            .unwrap();
        assert_eq!(log.length(), at["length"].as_u64().unwrap());
        let proof = upgrade(&log, 0).await;
        let signature = proof.upgrade.unwrap().signature;
        assert_eq!(signature.len(), 68);
        assert_eq!(hex(&signature), at["signature"], "length {}", log.length());
    }
    log.close().await.unwrap();
}

/// The vector in the shared field notes (hypercore 11.37.1) is the same core.
#[test]
fn the_field_notes_vector_matches() {
    let g = golden();
    let pk = seed_key().verifying_key().to_bytes();
    assert_eq!(
        hex(&pk),
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    );
    let key = default_core_key(&pk);
    assert_eq!(
        hex(&key),
        "798b52954f2f524c0a491fd95e508007de655fbdc048947a8afa2e65f1a03b77"
    );
    assert_eq!(
        hex(&discovery_key(&key)),
        "f5a5ca96021ad676c5d5a4d3173d456b34c652f306a2ec320a0cc0f2c4cb7040"
    );
    let last = &g["lengths"][2];
    assert_eq!(
        last["treeHash"],
        "7ea73eb86179fb7328e73663f90f4c91256574af1112efe97fdf9309e03b67a7"
    );
    let container = unhex(&last["signature"]);
    assert_eq!(
        hex(&container[2..66]),
        "8b46e19c793a26f79f7e6e9110fcd3874801443c492bf02395f213a076a082d1e3a49c4f76968a894e2fa9686f5a229b87b4af3a7312151cc36758f7da132a03"
    );
    assert_eq!(container[..2], [1, 0]);
    assert_eq!(container[66..], [0, 0]);
}

/// Every other manifest shape JS encoded decodes, re-encodes to the same bytes and
/// hashes to JS's hash.
#[test]
fn js_manifest_shapes_round_trip_and_hash_alike() {
    let g = golden();
    let shapes = g["manifests"].as_object().unwrap();
    assert_eq!(shapes.len(), 6);
    for (shape, v) in shapes {
        let bytes = unhex(&v["encoded"]);
        let m = Manifest::decode(&bytes).unwrap_or_else(|e| panic!("{shape}: {e}"));
        assert_eq!(m.encode(), bytes, "{shape}");
        assert_eq!(hex(&m.hash()), v["hash"], "{shape}");
        assert_eq!(hex(&manifest_hash(&bytes)), v["hash"], "{shape}");
    }
    let v2 = Manifest::decode(&unhex(&g["manifests"]["v2_linked_user_data"]["encoded"])).unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.linked, Some(vec![[7; 32], [8; 32]]));
    assert_eq!(v2.user_data.as_deref(), Some(b"user data".as_slice()));
    let p = Manifest::decode(&unhex(&g["manifests"]["v1_prologue_patch"]["encoded"])).unwrap();
    assert!(p.allow_patch);
    assert_eq!(p.prologue.unwrap().length, 300);
}

/// A v1 log appended, closed and reopened (with no format option, and read-only by its
/// signer's key) is still v1 and every entry verifies.
#[tokio::test]
async fn a_v1_log_reopens_as_v1_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[3; 32]);
    let log = open_v1_writer(dir.path(), &key).await;
    let core_key = log.public_key();
    assert_ne!(core_key, key.verifying_key().to_bytes());
    for i in 0..40u32 {
        log.append(format!("entry {i}").as_bytes()).await.unwrap();
    }
    log.append_batch(&[b"x".as_slice(), b"y"]).await.unwrap();
    log.close().await.unwrap();

    for options in [
        OpenOptions::new().signing_key(key.clone()),
        OpenOptions::new().public_key(key.verifying_key()),
        OpenOptions::new().core_key(core_key),
        OpenOptions::new(),
    ] {
        let again = ManagedCore::open(dir.path(), name(), options)
            .await
            .unwrap();
        assert_eq!(again.public_key(), core_key);
        assert_eq!(again.format(), Some(CoreFormat::V1));
        assert_eq!(again.length(), 42);
        for seq in 0..42 {
            assert!(again.verify_signature(seq).await.unwrap());
        }
        assert_eq!(again.get(41).await.unwrap(), b"y");
        again.close().await.unwrap();
    }
    // Writable again with its key, and the new entries verify after another reopen.
    let again = ManagedCore::open(
        dir.path(),
        name(),
        OpenOptions::new().signing_key(key.clone()),
    )
    .await
    .unwrap();
    assert!(again.is_writable());
    again.append(b"more").await.unwrap();
    again.close().await.unwrap();
    let again = ManagedCore::open(dir.path(), name(), OpenOptions::new())
        .await
        .unwrap();
    assert_eq!(again.get(42).await.unwrap(), b"more");
    again.close().await.unwrap();

    // Another key does not open it.
    let err = ManagedCore::open(
        dir.path(),
        name(),
        OpenOptions::new().signing_key(SigningKey::from_bytes(&[4; 32])),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{err}");
}

/// A replica opened by a v1 core key waits for its manifest: upgrades fail with a typed
/// error and change nothing; a wrong or tampered manifest is refused; the right one is
/// stored durably and every block then verifies, also after a reopen.
#[tokio::test]
async fn a_replica_by_core_key_takes_the_manifest_then_verifies() {
    let writer_dir = tempfile::tempdir().unwrap();
    let writer = open_v1_writer(writer_dir.path(), &SigningKey::from_bytes(&[5; 32])).await;
    for i in 0..25u32 {
        writer
            .append(format!("block {i}").as_bytes())
            .await
            .unwrap();
    }
    let manifest = writer.manifest().unwrap();
    assert_eq!(manifest.len(), 70);

    let dir = tempfile::tempdir().unwrap();
    let core_key = writer.public_key();
    let replica = ManagedCore::open(dir.path(), name(), OpenOptions::new().core_key(core_key))
        .await
        .unwrap();
    assert!(replica.needs_manifest());
    assert!(!replica.has_manifest());
    assert_eq!(replica.format(), None);
    assert_eq!(replica.signer_key(), None);
    assert_eq!(replica.discovery_key(), writer.discovery_key());

    let err = replica
        .apply_proof(upgrade(&writer, 0).await)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SignatureInvalid, "{err}");
    assert!(err.to_string().contains("manifest"), "{err}");
    assert_eq!(replica.length(), 0);

    // Wrong manifests: another signer's, one tampered byte, garbage, a trailing byte.
    let other = Manifest::default_signer([6; 32]).encode();
    let mut tampered = manifest.clone();
    tampered[40] ^= 1;
    let mut trailing = manifest.clone();
    trailing.push(0);
    for bad in [other, tampered, vec![0xff; 5], trailing, Vec::new()] {
        let err = replica.set_manifest(&bad).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::SignatureInvalid, "{err}");
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(replica.needs_manifest());
    }

    replica.set_manifest(&manifest).await.unwrap();
    assert!(!replica.needs_manifest());
    assert_eq!(replica.manifest(), Some(manifest.clone()));
    assert_eq!(replica.format(), Some(CoreFormat::V1));
    assert_eq!(replica.signer_key(), writer.signer_key());
    // Setting it again is a no-op.
    replica.set_manifest(&manifest).await.unwrap();

    // A tampered signature is refused: a flipped byte, the bare 64-byte signature, the
    // legacy form.
    let good = upgrade(&writer, 0).await;
    let sig = good.upgrade.as_ref().unwrap().signature.clone();
    for bad in [
        {
            let mut s = sig.clone();
            s[10] ^= 1;
            s
        },
        sig[2..66].to_vec(),
        {
            let mut s = sig.clone();
            s[66] = 1; // a patch: not allowed by the default manifest
            s
        },
    ] {
        let mut proof = good.clone();
        proof.upgrade.as_mut().unwrap().signature = bad;
        let err = replica.apply_proof(proof).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::SignatureInvalid, "{err}");
        assert_eq!(replica.length(), 0);
    }

    replicate(&writer, &replica).await;
    for seq in 0..25u64 {
        assert_eq!(
            replica.get(seq).await.unwrap(),
            format!("block {seq}").as_bytes()
        );
    }
    replica.close().await.unwrap();

    // The manifest was stored: the reopened replica is v1 without asking again, and
    // follows the writer's next entries.
    let replica = ManagedCore::open(dir.path(), name(), OpenOptions::new().core_key(core_key))
        .await
        .unwrap();
    assert!(!replica.needs_manifest());
    assert_eq!(replica.manifest(), Some(manifest));
    assert_eq!(replica.length(), 25);
    writer.append(b"after reopen").await.unwrap();
    replicate(&writer, &replica).await;
    assert_eq!(replica.get(25).await.unwrap(), b"after reopen");
    replica.close().await.unwrap();
    writer.close().await.unwrap();
}

/// A replica opened by a legacy core key settles as legacy with its first verified
/// upgrade (no manifest on the wire), and stays legacy after a reopen.
#[tokio::test]
async fn a_replica_by_legacy_core_key_settles_as_legacy() {
    let writer = ManagedCore::in_memory(
        name(),
        OpenOptions::new().signing_key(SigningKey::from_bytes(&[8; 32])),
    )
    .await
    .unwrap();
    for i in 0..10u32 {
        writer
            .append(format!("legacy {i}").as_bytes())
            .await
            .unwrap();
    }
    assert_eq!(writer.format(), Some(CoreFormat::Legacy));
    assert_eq!(writer.manifest(), None);
    assert!(!writer.has_manifest());
    assert_eq!(writer.public_key(), writer.verifying_key().to_bytes());

    let dir = tempfile::tempdir().unwrap();
    let replica = ManagedCore::open(
        dir.path(),
        name(),
        OpenOptions::new().core_key(writer.public_key()),
    )
    .await
    .unwrap();
    assert!(replica.needs_manifest());
    // A v1 manifest cannot hash to a legacy key.
    let err = replica
        .set_manifest(&Manifest::default_signer(writer.public_key()).encode())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SignatureInvalid);
    replicate(&writer, &replica).await;
    assert!(!replica.needs_manifest());
    assert_eq!(replica.format(), Some(CoreFormat::Legacy));
    assert_eq!(replica.signer_key(), Some(writer.verifying_key()));
    replica.close().await.unwrap();
    let replica = ManagedCore::open(
        dir.path(),
        name(),
        OpenOptions::new().core_key(writer.public_key()),
    )
    .await
    .unwrap();
    assert_eq!(replica.format(), Some(CoreFormat::Legacy));
    assert_eq!(replica.get(9).await.unwrap(), b"legacy 9");
    replica.close().await.unwrap();
}

/// A replica opened with the signer's key and `CoreFormat::V1` knows the manifest at
/// once (the core key is its default manifest's hash).
#[tokio::test]
async fn a_replica_by_signer_key_and_v1_format_needs_no_manifest() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let writer = ManagedCore::in_memory(
        name(),
        OpenOptions::new()
            .signing_key(key.clone())
            .format(CoreFormat::V1),
    )
    .await
    .unwrap();
    writer
        .append_batch(&[b"1".as_slice(), b"2", b"3"])
        .await
        .unwrap();
    let replica = ManagedCore::in_memory(
        name(),
        OpenOptions::new()
            .public_key(key.verifying_key())
            .format(CoreFormat::V1),
    )
    .await
    .unwrap();
    assert_eq!(replica.public_key(), writer.public_key());
    assert!(!replica.needs_manifest());
    assert!(!replica.is_writable());
    replicate(&writer, &replica).await;
    assert_eq!(
        replica.get_range(0, 3).await.unwrap(),
        vec![b"1", b"2", b"3"]
    );
    // A legacy replica of the same signer is another core: the v1 upgrade is refused.
    let legacy = ManagedCore::in_memory(name(), OpenOptions::new().public_key(key.verifying_key()))
        .await
        .unwrap();
    let err = legacy
        .apply_proof(upgrade(&writer, 0).await)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SignatureInvalid);
}

fn signer() -> impl Strategy<Value = nova_hypercore_managed_core::manifest::ManifestSigner> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(namespace, public_key)| {
        nova_hypercore_managed_core::manifest::ManifestSigner {
            signature: nova_hypercore_managed_core::manifest::SignatureAlgo::Ed25519,
            namespace,
            public_key,
        }
    })
}

/// Version 1 to 3 manifests of every shape.
fn manifest() -> impl Strategy<Value = Manifest> {
    (
        1u64..=3,
        any::<bool>(),
        any::<u64>(),
        proptest::collection::vec(signer(), 0..4),
        proptest::option::of((any::<[u8; 32]>(), any::<u64>())),
        proptest::option::of(proptest::collection::vec(any::<[u8; 32]>(), 0..3)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)),
    )
        .prop_map(
            |(version, allow_patch, quorum, signers, prologue, linked, user_data)| Manifest {
                version,
                hash: nova_hypercore_managed_core::manifest::HashAlgo::Blake2b,
                allow_patch,
                quorum,
                signers,
                prologue: prologue.map(|(hash, length)| {
                    nova_hypercore_managed_core::manifest::Prologue { hash, length }
                }),
                linked,
                user_data,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Encode then decode gives the same manifest, and the hash of the bytes is the
    /// manifest's hash (decode_for_key accepts exactly that key).
    #[test]
    fn manifest_codec_round_trips(m in manifest()) {
        let bytes = m.encode();
        prop_assert_eq!(Manifest::decode(&bytes).unwrap(), m.clone());
        prop_assert_eq!(manifest_hash(&bytes), m.hash());
        prop_assert_eq!(Manifest::decode_for_key(&m.hash(), &bytes).unwrap(), m);
    }

    /// Arbitrary bytes never panic: they decode to a manifest that re-encodes to them,
    /// or give a typed error; any prefix of a valid manifest is an error.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), m in manifest()) {
        match Manifest::decode(&bytes) {
            Ok(decoded) => prop_assert_eq!(decoded.encode(), bytes.clone()),
            Err(ManifestError::UnknownVersion(v)) => prop_assert!(v > 3),
            Err(_) => {}
        }
        let _ = Manifest::decode_for_key(&[0; 32], &bytes);
        let full = m.encode();
        for cut in 0..full.len() {
            prop_assert!(Manifest::decode(&full[..cut]).is_err());
        }
        // A huge signer count is refused before allocating.
        let mut huge = vec![1u8, 0, 0, 1, 0xff];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(&bytes);
        prop_assert!(Manifest::decode(&huge).is_err());
    }
}

/// A v1 log whose stored manifest was altered (CRC fixed up, so the header still
/// decodes) no longer hashes to its core key: reopening is `STORAGE_CORRUPTED`.
#[tokio::test]
async fn a_tampered_stored_manifest_is_storage_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[10; 32]);
    let log = open_v1_writer(dir.path(), &key).await;
    log.append(b"x").await.unwrap();
    let manifest = log.manifest().unwrap();
    log.close().await.unwrap();

    let path = dir.path().join("oplog");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut tampered = 0;
    for slot in [0usize, 4096] {
        let word = u32::from_le_bytes(bytes[slot + 4..slot + 8].try_into().unwrap());
        let len = (word >> 2) as usize;
        if len == 0 {
            continue;
        }
        let payload = slot + 8..slot + 8 + len;
        let Some(at) = bytes[payload.clone()]
            .windows(manifest.len())
            .position(|w| w == manifest.as_slice())
        else {
            continue;
        };
        // The last byte of the signer's public key.
        bytes[payload.start + at + manifest.len() - 1] ^= 1;
        let crc = crc32fast::hash(&bytes[slot + 4..payload.end]);
        bytes[slot..slot + 4].copy_from_slice(&crc.to_le_bytes());
        tampered += 1;
    }
    assert!(tampered > 0);
    std::fs::write(&path, &bytes).unwrap();

    let err = ManagedCore::open(dir.path(), name(), OpenOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageCorrupted, "{err}");
    assert!(err.to_string().contains("manifest"), "{err}");
}

/// A v1 writer whose oplog is lost entirely is recovered as v1 (its core key, hence its
/// discovery key and its peers, unchanged) when opened with its key and `CoreFormat::V1`:
/// the blocks its last checkpoint wrote to the tree file are signed again with 68-byte
/// multisig containers and read back verified.
#[tokio::test]
async fn lost_oplog_of_a_v1_writer_is_recovered_as_v1() {
    let dir = tempfile::tempdir().unwrap();
    let options = || {
        OpenOptions::new()
            .signing_key(seed_key())
            .format(CoreFormat::V1)
    };
    let writer = ManagedCore::open(dir.path(), name(), options())
        .await
        .unwrap();
    let key = writer.public_key();
    assert_eq!(
        key,
        default_core_key(&seed_key().verifying_key().to_bytes())
    );
    for i in 0..40u32 {
        writer
            .append(format!("entry {i}").as_bytes())
            .await
            .unwrap();
    }
    writer.close().await.unwrap();
    let length = {
        let log = ManagedCore::open(dir.path(), name(), options())
            .await
            .unwrap();
        let length = log.length();
        log.close().await.unwrap();
        length
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("oplog"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let log = ManagedCore::open(dir.path(), name(), options())
        .await
        .unwrap();
    assert_eq!(log.public_key(), key, "recovered under the same core key");
    assert_eq!(log.format(), Some(CoreFormat::V1));
    assert!(log.length() > 0 && log.length() <= length);
    for seq in 0..log.length() {
        assert_eq!(
            log.get(seq).await.unwrap(),
            format!("entry {seq}").into_bytes()
        );
        assert!(log.verify_signature(seq).await.unwrap());
    }
    log.close().await.unwrap();
}

/// A manifest whose largest signature (its quorum's proofs) would not fit the oplog
/// header with it: refused when it arrives, with a typed error, not a log that breaks
/// at its first checkpoint with that signature (JS could not store such a core either).
#[tokio::test]
async fn a_manifest_too_large_for_the_header_is_refused_when_it_arrives() {
    let mut manifest = Manifest::default_signer([1; 32]);
    let one = manifest.signers[0].clone();
    manifest.signers = (0..30u8)
        .map(|i| nova_hypercore_managed_core::manifest::ManifestSigner {
            public_key: [i; 32],
            ..one.clone()
        })
        .collect();
    manifest.quorum = 30;
    let encoded = manifest.encode();
    let key = manifest_hash(&encoded);
    let dir = tempfile::tempdir().unwrap();
    let replica = ManagedCore::open(dir.path(), name(), OpenOptions::new().core_key(key))
        .await
        .unwrap();
    let err = replica.set_manifest(&encoded).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::SignatureInvalid, "{err}");
    assert!(err.to_string().contains("oplog header"), "{err}");
    assert!(replica.needs_manifest());
    // A manifest that fits (the same signers, quorum 1) is taken.
    let mut fits = manifest.clone();
    fits.quorum = 1;
    let encoded = fits.encode();
    let key = manifest_hash(&encoded);
    let dir = tempfile::tempdir().unwrap();
    let replica = ManagedCore::open(dir.path(), name(), OpenOptions::new().core_key(key))
        .await
        .unwrap();
    replica.set_manifest(&encoded).await.unwrap();
    assert!(!replica.needs_manifest());
    replica.close().await.unwrap();
}
