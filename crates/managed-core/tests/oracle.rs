//! The `hypercore` 0.17 crate as an oracle (dev-dependency only): the same entries
//! appended through it and through our core, with the same key, give the same roots,
//! the same signature, the same data file and the same tree nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hypercore::{HypercoreBuilder, PartialKeypair, Storage};
use nova_hypercore_managed_core::{ManagedCore, OpenOptions, RequestUpgrade, SigningKey};
use nova_hypercore_serialization::LogName;
use nova_hypercore_testkit::runtime;
use proptest::collection::vec;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    #[test]
    fn same_entries_give_the_same_tree_signature_and_files(
        batches in vec(vec(vec(any::<u8>(), 0..300), 1..20), 1..8),
        seed in any::<[u8; 32]>(),
    ) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let key = SigningKey::from_bytes(&seed);
            let theirs_dir = dir.path().join("crate");
            let theirs = HypercoreBuilder::new(Storage::new_disk(&theirs_dir, false).await.unwrap())
                .key_pair(PartialKeypair { public: key.verifying_key(), secret: Some(key.clone()) })
                .build()
                .await
                .unwrap();
            let ours_dir = dir.path().join("ours");
            let ours = ManagedCore::open(&ours_dir, LogName::parse("oracle").unwrap(), OpenOptions::new().signing_key(key))
                .await
                .unwrap();
            for batch in &batches {
                theirs.append_batch(batch).await.unwrap();
                ours.append_batch(batch).await.unwrap();
            }
            let length = ours.length();
            prop_assert_eq!(theirs.info().length, length);
            let upgrade = Some(RequestUpgrade { start: 0, length });
            let a = theirs.create_proof(None, None, None, upgrade.clone()).await.unwrap().unwrap().upgrade.unwrap();
            let b = ours.serve_proof(None, upgrade).await.unwrap().unwrap().upgrade.unwrap();
            prop_assert_eq!(&a.nodes, &b.nodes, "roots");
            prop_assert_eq!(&a.signature, &b.signature, "signature");
            ours.close().await.unwrap();
            drop(theirs);
            let data_a = std::fs::read(theirs_dir.join("data")).unwrap();
            let data_b = std::fs::read(ours_dir.join("data")).unwrap();
            prop_assert_eq!(data_a, data_b, "data file");
            // Tree nodes both have written are equal (the crate flushes every 4th append).
            let tree_a = std::fs::read(theirs_dir.join("tree")).unwrap();
            let tree_b = std::fs::read(ours_dir.join("tree")).unwrap();
            prop_assert!(tree_b.len() >= tree_a.len());
            for (i, (na, nb)) in tree_a.chunks(40).zip(tree_b.chunks(40)).enumerate() {
                if na.iter().any(|b| *b != 0) {
                    prop_assert_eq!(na, nb, "tree node {}", i);
                }
            }
            Ok(())
        })?;
    }
}

/// A log written by the `hypercore` crate (our earlier engine: secret key in the oplog
/// header) opens with our core given the signing key: every block verifies, appends
/// continue, and afterwards no file of the log holds the seed or the secret key (both
/// header slots rewritten).
#[test]
fn a_log_the_crate_wrote_opens_verifies_and_loses_its_secret() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[9; 32]);
        let entries: Vec<Vec<u8>> = (0..40_000u32)
            .map(|i| format!("old entry {i}").into_bytes())
            .collect();
        {
            let theirs = HypercoreBuilder::new(
                Storage::new_disk(&dir.path().to_path_buf(), false)
                    .await
                    .unwrap(),
            )
            .key_pair(PartialKeypair {
                public: key.verifying_key(),
                secret: Some(key.clone()),
            })
            .build()
            .await
            .unwrap();
            // Batches of 1,000 keep the log under the crate's 32,768-entry reopen limit
            // only until the last batches: it is never reopened by the crate.
            for chunk in entries.chunks(1_000) {
                theirs.append_batch(chunk).await.unwrap();
            }
        }
        let oplog = std::fs::read(dir.path().join("oplog")).unwrap();
        let seed = key.to_bytes();
        assert!(
            oplog.windows(32).any(|w| w == seed),
            "the crate keeps the seed in its oplog header (what this test migrates)"
        );
        let name = LogName::parse("old-store").unwrap();
        let ours = ManagedCore::open(
            dir.path(),
            name.clone(),
            OpenOptions::new().signing_key(key.clone()),
        )
        .await
        .unwrap();
        assert_eq!(ours.length(), 40_000);
        let got = ours.get_range(0, 40_000).await.unwrap();
        assert!(got.iter().zip(&entries).all(|(a, b)| a == b));
        assert_eq!(ours.append(b"new").await.unwrap(), 40_000);
        ours.close().await.unwrap();
        for file in ["oplog", "tree", "bitfield", "sizes", "data"] {
            let bytes = std::fs::read(dir.path().join(file)).unwrap();
            assert!(
                !bytes.windows(32).any(|w| w == seed),
                "{file} still holds the seed"
            );
        }
        let ours = ManagedCore::open(dir.path(), name, OpenOptions::new().signing_key(key))
            .await
            .unwrap();
        assert_eq!(ours.get(40_000).await.unwrap(), b"new");
    });
}
