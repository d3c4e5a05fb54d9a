//! A log opened with an encryption key (`OpenOptions::encryption_key`, JS
//! `encryptionKey`): it stores `padding ‖ ciphertext` (the tree and the files over
//! those bytes), reads return the plaintext, the byte length and seeks count the
//! plaintext's bytes; a replica without the key (a seeder) stores, verifies and serves
//! the ciphertext, and a keyed reader fetching from it decrypts, legacy and manifest
//! (v1) cores alike, across a truncation too. Stored bytes are checked against
//! `BlockEncryption`, itself checked byte for byte against JS (encryption_golden.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use nova_hypercore_managed_core::encryption::{
    BlockEncryption, EncryptionKey, KeyDerivation, PADDING,
};
use nova_hypercore_managed_core::{
    CoreFormat, ManagedCore, OpenOptions, RequestBlock, RequestSeek, RequestUpgrade, SeekState,
    SigningKey,
};
use nova_hypercore_serialization::{ErrorCode, HypercoreError, LogName};
use proptest::prelude::*;

fn name(s: &str) -> LogName {
    LogName::parse(s).unwrap()
}

fn key() -> EncryptionKey {
    EncryptionKey::new((100u8..132).collect()).unwrap()
}

fn signer() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// Block `i`'s value: recognisable text of 0 to 60 bytes (block 0 is empty).
fn value(i: u64) -> Vec<u8> {
    let text = format!("secret entry {i} ").repeat(4);
    text.as_bytes()[..((i * 13) % 61) as usize].to_vec()
}

fn derivation(format: CoreFormat) -> KeyDerivation {
    KeyDerivation::from(format)
}

async fn keyed_writer(dir: &std::path::Path, format: CoreFormat, n: u64) -> ManagedCore {
    let w = ManagedCore::open(
        dir,
        name("w"),
        OpenOptions::new()
            .signing_key(signer())
            .format(format)
            .encryption_key(key()),
    )
    .await
    .unwrap();
    let values: Vec<Vec<u8>> = (0..n).map(value).collect();
    w.append_batch(&values).await.unwrap();
    w
}

/// `to` takes `from`'s length and then every block `from` holds.
async fn sync(from: &ManagedCore, to: &ManagedCore) {
    let start = to.length();
    if from.length() > start {
        let upgrade = from
            .serve_proof(
                None,
                Some(RequestUpgrade {
                    start,
                    length: from.length() - start,
                }),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(to.apply_proof(upgrade).await.unwrap());
    }
    for seq in 0..from.length() {
        if to.has_block(seq).await.unwrap() {
            continue;
        }
        let nodes = to.missing_nodes(seq).await.unwrap();
        let proof = from
            .serve_proof(Some(RequestBlock { index: seq, nodes }), None)
            .await
            .unwrap()
            .unwrap();
        assert!(to.apply_proof(proof).await.unwrap(), "block {seq}");
    }
}

#[tokio::test]
async fn an_encrypted_log_stores_padded_ciphertext_and_reads_its_plaintext() {
    for format in [CoreFormat::Legacy, CoreFormat::V1] {
        let dir = tempfile::tempdir().unwrap();
        let n = 40;
        let w = keyed_writer(dir.path(), format, n).await;
        assert!(w.is_encrypted());
        assert_eq!(w.padding(), PADDING as u64);
        let keys =
            BlockEncryption::new(key().as_bytes(), &w.public_key(), derivation(format)).unwrap();
        let mut plain_bytes = 0u64;
        for i in 0..n {
            let stored = w.get_stored(i).await.unwrap();
            assert_eq!(w.get(i).await.unwrap(), value(i), "{format:?} block {i}");
            assert_eq!(stored, keys.encrypt(i, 0, &value(i)).unwrap(), "block {i}");
            assert_eq!(stored.len(), value(i).len() + PADDING);
            plain_bytes += value(i).len() as u64;
        }
        assert_eq!(w.get_range(0, n).await.unwrap()[7], value(7));
        // JS `core.byteLength` of a keyed core: the plaintext's; the tree's is the stored.
        assert_eq!(w.byte_length(), plain_bytes);
        assert_eq!(
            w.info().await.unwrap().byte_length,
            plain_bytes + n * PADDING as u64
        );
        w.close().await.unwrap();

        // No plaintext reaches the disk.
        let data = std::fs::read(dir.path().join("data")).unwrap();
        assert!(
            !data.windows(12).any(|win| win == b"secret entry"),
            "{format:?}: plaintext in the data file"
        );

        // Reopened with the key: the same values. Without it: the stored bytes, and
        // the blocks still verify (a seeder's view).
        let again = ManagedCore::open(
            dir.path(),
            name("w"),
            OpenOptions::new()
                .signing_key(signer())
                .encryption_key(key()),
        )
        .await
        .unwrap();
        assert_eq!(again.get(39).await.unwrap(), value(39));
        again.close().await.unwrap();
        let keyless = ManagedCore::open(
            dir.path(),
            name("w"),
            OpenOptions::new().signing_key(signer()),
        )
        .await
        .unwrap();
        assert!(!keyless.is_encrypted());
        assert_eq!(
            keyless.get(5).await.unwrap(),
            keys.encrypt(5, 0, &value(5)).unwrap()
        );
        assert!(keyless.verify_signature(5).await.unwrap());
        assert_eq!(keyless.byte_length(), plain_bytes + n * PADDING as u64);
    }
}

#[tokio::test]
async fn a_keyless_seeder_serves_the_ciphertext_to_a_keyed_reader() {
    for format in [CoreFormat::Legacy, CoreFormat::V1] {
        let dir = tempfile::tempdir().unwrap();
        let w = keyed_writer(dir.path(), format, 25).await;
        let seeder =
            ManagedCore::in_memory(name("seeder"), OpenOptions::new().core_key(w.public_key()))
                .await
                .unwrap();
        if let Some(manifest) = w.manifest() {
            seeder.set_manifest(&manifest).await.unwrap();
        }
        sync(&w, &seeder).await;
        w.close().await.unwrap();
        for i in 0..25 {
            let stored = seeder.get(i).await.unwrap();
            assert_ne!(stored, value(i), "{format:?}: the seeder reads plaintext");
            assert_eq!(stored.len(), value(i).len() + PADDING);
        }

        // A reader by core key: compat keys until it learns the manifest, then the
        // manifest-keyed ones (a v1 core's blocks decrypt only with those).
        let reader = ManagedCore::in_memory(
            name("reader"),
            OpenOptions::new()
                .core_key(seeder.public_key())
                .encryption_key(key()),
        )
        .await
        .unwrap();
        if let Some(manifest) = seeder.manifest() {
            reader.set_manifest(&manifest).await.unwrap();
        }
        sync(&seeder, &reader).await;
        for i in 0..25 {
            assert_eq!(
                reader.get(i).await.unwrap(),
                value(i),
                "{format:?} block {i}"
            );
        }
        assert_eq!(
            reader.get_stored(3).await.unwrap(),
            seeder.get(3).await.unwrap()
        );
    }
}

#[tokio::test]
async fn blocks_written_after_a_truncation_carry_the_new_fork_blinded() {
    let dir = tempfile::tempdir().unwrap();
    let w = keyed_writer(dir.path(), CoreFormat::Legacy, 6).await;
    w.truncate(2).await.unwrap();
    assert_eq!(w.fork(), 1);
    w.append_batch(&[b"after the cut".to_vec(), b"and one more".to_vec()])
        .await
        .unwrap();
    let keys =
        BlockEncryption::new(key().as_bytes(), &w.public_key(), KeyDerivation::Compat).unwrap();
    for (seq, fork) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
        let stored = w.get_stored(seq).await.unwrap();
        assert_eq!(keys.fork(seq, &stored).unwrap(), fork, "block {seq}");
    }
    assert_eq!(w.get(2).await.unwrap(), b"after the cut");
    assert_eq!(w.get(1).await.unwrap(), value(1));
}

/// `(seq, offset)` of byte `bytes` of the plaintext, by summing the sizes (byte 0 is
/// block 0, empty or not, as JS answers).
fn brute_force(n: u64, bytes: u64) -> (u64, u64) {
    if bytes == 0 {
        return (0, 0);
    }
    let mut start = 0u64;
    for seq in 0..n {
        let end = start + value(seq).len() as u64;
        if bytes < end {
            return (seq, bytes - start);
        }
        start = end;
    }
    (n, 0)
}

#[tokio::test]
async fn seeks_count_the_plaintext_and_a_keyless_seeder_serves_padded_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30;
    let w = keyed_writer(dir.path(), CoreFormat::Legacy, n).await;
    let total = w.byte_length();
    for bytes in 0..=total {
        assert_eq!(
            w.seek(bytes).await.unwrap(),
            brute_force(n, bytes),
            "byte {bytes}"
        );
    }
    let err = w.seek(total + 1).await.unwrap_err();
    assert!(
        matches!(&err, HypercoreError::ByteOutOfRange { byte_length, .. } if *byte_length == total),
        "{err:?}"
    );

    let seeder =
        ManagedCore::in_memory(name("seeder"), OpenOptions::new().core_key(w.public_key()))
            .await
            .unwrap();
    sync(&w, &seeder).await;
    // A sparse keyed reader with the signed roots only: every seek it cannot answer is
    // proven by the keyless seeder with the reader's padding.
    let reader = ManagedCore::in_memory(
        name("reader"),
        OpenOptions::new()
            .core_key(w.public_key())
            .sparse(true)
            .encryption_key(key()),
    )
    .await
    .unwrap();
    let upgrade = seeder
        .serve_proof(
            None,
            Some(RequestUpgrade {
                start: 0,
                length: n,
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(reader.apply_proof(upgrade).await.unwrap());
    assert_eq!(reader.byte_length(), total);
    for bytes in [1, 17, total / 2, total - 1] {
        let mut rounds = 0;
        loop {
            let state = reader.seek_state(bytes).await.unwrap();
            let SeekState::Span { start, depth, .. } = state else {
                break;
            };
            let proof = seeder
                .serve_seek(
                    None,
                    Some(RequestBlock {
                        index: 2 * start,
                        nodes: depth,
                    }),
                    RequestSeek { bytes },
                    reader.padding(),
                    None,
                )
                .await
                .unwrap()
                .expect("the seeder proves a padded seek");
            assert!(reader.apply_proof(proof).await.unwrap());
            rounds += 1;
            assert!(rounds < 10, "byte {bytes}: no progress");
        }
        assert_eq!(
            reader.seek(bytes).await.unwrap(),
            brute_force(n, bytes),
            "byte {bytes}"
        );
    }
    assert_eq!(
        reader.has_range(0..n).await.unwrap(),
        0,
        "no block value travelled"
    );
}

#[tokio::test]
async fn a_stored_block_shorter_than_the_padding_is_refused_with_its_log_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let plain = ManagedCore::open(
        dir.path(),
        name("w"),
        OpenOptions::new().signing_key(signer()),
    )
    .await
    .unwrap();
    plain.append(b"abc").await.unwrap();
    plain.close().await.unwrap();
    let keyed = ManagedCore::open(
        dir.path(),
        name("w"),
        OpenOptions::new()
            .signing_key(signer())
            .encryption_key(key()),
    )
    .await
    .unwrap();
    let err = keyed.get(0).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeserializationFailed, "{err}");
    assert!(
        matches!(&err, HypercoreError::DeserializationFailed { log: Some(log), seq: Some(0), .. } if log == "w"),
        "{err:?}"
    );
    assert!(
        keyed.verify_signature(0).await.unwrap(),
        "the block itself verifies"
    );
}

#[test]
fn encryption_keys_are_bounded_and_never_shown() {
    for bad in ["", "abc", "zz", &"00".repeat(15), &"00".repeat(65)] {
        let err = EncryptionKey::from_hex(bad).unwrap_err();
        assert_eq!(err.code(), ErrorCode::DeserializationFailed, "{bad:?}");
    }
    let key = EncryptionKey::from_hex(&"ab".repeat(32)).unwrap();
    assert_eq!(key.as_bytes(), &[0xab; 32]);
    let shown = format!("{key:?}");
    assert!(
        !shown.to_lowercase().contains("ab, ") && !shown.contains("171"),
        "{shown}"
    );
    assert_eq!(
        EncryptionKey::new(vec![1; 16]).unwrap().as_bytes().len(),
        16
    );
}

proptest! {
    #![proptest_config(nova_hypercore_testkit::property_config())]

    /// Any batches appended to an encrypted log read back as written, and its stored
    /// blocks are the JS transform of them at their index.
    #[test]
    fn encrypted_batches_read_back_as_written(
        batches in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            1..5,
        ),
        v1 in any::<bool>(),
    ) {
        let format = if v1 { CoreFormat::V1 } else { CoreFormat::Legacy };
        nova_hypercore_testkit::runtime().block_on(async {
            let w = ManagedCore::in_memory(
                name("p"),
                OpenOptions::new().format(format).encryption_key(key()),
            )
            .await
            .unwrap();
            let keys = BlockEncryption::new(key().as_bytes(), &w.public_key(), derivation(format)).unwrap();
            let mut all = Vec::new();
            for batch in &batches {
                w.append_batch(batch).await.unwrap();
                all.extend(batch.iter().cloned());
            }
            let read = w.get_range(0, all.len() as u64).await.unwrap();
            prop_assert_eq!(&read, &all);
            for (i, v) in all.iter().enumerate() {
                prop_assert_eq!(w.get_stored(i as u64).await.unwrap(), keys.encrypt(i as u64, 0, v).unwrap());
            }
            prop_assert_eq!(w.byte_length(), all.iter().map(|v| v.len() as u64).sum::<u64>());
            Ok(())
        })?;
    }
}
