//! Inputs the fuzz targets (`fuzz/`, `cargo xtask fuzz`) found, replayed as the targets
//! run them: each must end in a typed error or a working log, never a panic. A file in
//! `tests/fuzz-regressions/<target>/` is named for what it found (docs/reliability.md,
//! "Fuzzing").

use std::path::{Path, PathBuf};

use nova_hypercore_managed_core::{ManagedCore, OpenOptions, fuzzing};
use nova_hypercore_serialization::{ErrorCode, LogName};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out.into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}

/// The `core_open` target's input layout (`fuzz/src/lib.rs` `chunks`): chunks led by a
/// little-endian `u16` length, cut to what is left.
fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && out.len() < 64 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out
}

#[tokio::test]
async fn core_open_findings_end_in_typed_errors() -> Result<(), Box<dyn std::error::Error>> {
    let found = inputs("core_open");
    assert!(!found.is_empty(), "no core_open regressions found");
    for (path, data) in found {
        let parts = chunks(&data);
        let [header, tree, bitfield, entries @ ..] = parts.as_slice() else {
            panic!("{}: not a core_open input", path.display());
        };
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("oplog"),
            fuzzing::oplog_framed(header, entries),
        )?;
        std::fs::write(dir.path().join("tree"), tree)?;
        std::fs::write(dir.path().join("bitfield"), bitfield)?;
        let opened = ManagedCore::open(
            dir.path(),
            LogName::parse("fuzz-open")?,
            OpenOptions::default(),
        )
        .await;
        match opened {
            Ok(log) => {
                for seq in 0..log.length().min(4) {
                    let _ = log.get(seq).await;
                }
                log.close().await?;
            }
            Err(e) => assert_eq!(
                e.code(),
                ErrorCode::StorageCorrupted,
                "{}: {e}",
                path.display()
            ),
        }
    }
    Ok(())
}
