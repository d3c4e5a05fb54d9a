//! `disk_usage`: bytes on disk per payload byte, against JS corestore 6 / hypercore 10
//! (`js/bench/bench.mjs`, the same entry sizes and counts).
//!
//! Owns: the Rust side of the row: [`ENTRIES`] entries of each size in [`SIZES`], each
//! size in its own fresh store (a `HypercoreManager`, one log, appended in batches of
//! [`BATCH`](crate::BATCH)), the manager closed, then every file under the store counted.
//! Allocated bytes are `st_blocks * 512` (what the file system reserved, 4 KiB blocks on
//! ext4), apparent bytes `st_size`; the verdict uses allocated bytes.
//!
//! Must not: judge the ratio (xtask does) or count anything outside the store directory.
//! Used by `cargo xtask bench --only disk_usage`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use nova_hypercore_managed_core::Durability;
use serde_json::{Map, Value, json};

use crate::{BATCH, BlockStream, BoxError, LOG, result};

/// Entry sizes in bytes (as `DISK_SIZES` in `js/bench/bench.mjs`).
pub(crate) const SIZES: [usize; 3] = [128, 1024, 16 * 1024];
/// Entries per size (as `DISK_N` in `js/bench/bench.mjs`).
pub(crate) const ENTRIES: usize = 5_000;

/// Apparent and allocated bytes, and files, under `dir` (recursively).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirBytes {
    pub apparent: u64,
    pub allocated: u64,
    pub files: u64,
}

pub(crate) fn dir_bytes(dir: &Path) -> Result<DirBytes, BoxError> {
    let mut total = DirBytes::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total.apparent += meta.len();
                total.allocated += meta.blocks() * 512;
                total.files += 1;
            }
        }
    }
    Ok(total)
}

/// Entries of `size` bytes from the bench's pseudo-random stream.
fn entries(stream: &mut BlockStream, size: usize) -> Vec<Vec<u8>> {
    let per_block = size.div_ceil(crate::KIB);
    let blocks = stream.take(ENTRIES * per_block);
    blocks
        .chunks(per_block)
        .map(|c| c.concat()[..size].to_vec())
        .collect()
}

pub(crate) async fn disk_usage(dir: &Path, durability: Durability) -> Result<Value, BoxError> {
    let mut extra = Map::new();
    let mut stream = BlockStream::new();
    let (mut secs, mut payload_all, mut alloc_all) = (0.0, 0u64, 0u64);
    for size in SIZES {
        let store = dir.join(format!("size-{size}"));
        let data = entries(&mut stream, size);
        let manager = crate::open_manager(&store, durability, false).await?;
        let log = manager.get_log(LOG).await?;
        let t0 = Instant::now();
        for chunk in data.chunks(BATCH) {
            log.append_batch(chunk).await?;
        }
        secs += t0.elapsed().as_secs_f64();
        if log.length() != ENTRIES as u64 {
            return Err(format!("length {} != {ENTRIES}", log.length()).into());
        }
        drop(log);
        manager.close().await?;
        let du = dir_bytes(&store)?;
        let payload = (ENTRIES * size) as u64;
        payload_all += payload;
        alloc_all += du.allocated;
        extra.insert(format!("payload_bytes_{size}"), json!(payload));
        extra.insert(format!("alloc_bytes_{size}"), json!(du.allocated));
        extra.insert(format!("apparent_bytes_{size}"), json!(du.apparent));
        extra.insert(format!("files_{size}"), json!(du.files));
        extra.insert(
            format!("alloc_ratio_{size}"),
            json!(du.allocated as f64 / payload as f64),
        );
        extra.insert(
            format!("apparent_ratio_{size}"),
            json!(du.apparent as f64 / payload as f64),
        );
    }
    extra.insert(
        "alloc_ratio".into(),
        json!(alloc_all as f64 / payload_all as f64),
    );
    extra.insert("sizes".into(), json!(SIZES));
    extra.insert("entries_per_size".into(), json!(ENTRIES));
    Ok(result(
        "disk_usage",
        ENTRIES * SIZES.len(),
        payload_all as usize,
        secs,
        Value::Object(extra),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_bytes_counts_allocated_blocks_of_every_file() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("sub"))?;
        std::fs::write(dir.path().join("a"), vec![1u8; 10])?;
        std::fs::write(dir.path().join("sub").join("b"), vec![2u8; 5000])?;
        let du = dir_bytes(dir.path())?;
        assert_eq!((du.apparent, du.files), (5010, 2));
        // Whole file-system blocks: at least the bytes written, a multiple of 512.
        assert!(
            du.allocated >= 5010 && du.allocated.is_multiple_of(512),
            "{du:?}"
        );
        Ok(())
    }

    #[test]
    fn entries_have_the_asked_size() {
        let mut stream = BlockStream::new();
        for size in SIZES {
            let e = entries(&mut stream, size);
            assert_eq!(e.len(), ENTRIES);
            assert!(e.iter().all(|x| x.len() == size));
        }
    }
}
