//! The fuzz targets' entry points (`fuzzing`, feature `fuzzing`) do what the targets
//! rely on: the multisig seeds verify (so the fuzzer starts from accepted containers,
//! and the canonical check runs), and a real oplog file splits into payloads and frames
//! back into a file a core opens with the same entries.

use nova_hypercore_managed_core::{ManagedCore, OpenOptions, fuzzing};
use nova_hypercore_serialization::LogName;

#[test]
fn every_multisig_seed_verifies_and_a_flipped_byte_does_not() {
    let seeds = fuzzing::multisig_seeds();
    assert_eq!(seeds.len(), 3);
    for seed in &seeds {
        assert!(fuzzing::multisig(seed) >= 1, "{seed:02x?}");
        let mut flipped = seed.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 1;
        assert_eq!(fuzzing::multisig(&flipped), 0);
        let mut padded = seed.clone();
        padded.push(0);
        assert_eq!(fuzzing::multisig(&padded), 0, "trailing bytes verified");
    }
}

#[tokio::test]
async fn a_real_oplog_splits_into_payloads_and_frames_back()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let name = LogName::parse("fuzz-seed")?;
    let log = ManagedCore::open(dir.path(), name.clone(), OpenOptions::default()).await?;
    log.append_batch(&[b"a".as_slice(), b"bc", b"def"]).await?;
    log.append(b"ghij").await?;
    let key = log.public_key();
    // Not closed: a close checkpoints the entries into the header.
    drop(log);

    let file = std::fs::read(dir.path().join("oplog"))?;
    assert!(fuzzing::oplog_file(&file));
    let (header, entries) = fuzzing::oplog_payloads(&file).ok_or("no payloads")?;
    assert!(fuzzing::oplog_header(&header));
    assert!(
        !entries.is_empty(),
        "the appends were not logged as entries"
    );
    for entry in &entries {
        assert!(fuzzing::oplog_entry(entry));
    }

    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    std::fs::write(
        dir.path().join("oplog"),
        fuzzing::oplog_framed(&header, &refs),
    )?;
    let log = ManagedCore::open(dir.path(), name, OpenOptions::default()).await?;
    assert_eq!(log.public_key(), key);
    assert_eq!(log.length(), 4);
    assert_eq!(log.get(3).await?, b"ghij");
    log.close().await?;
    Ok(())
}
