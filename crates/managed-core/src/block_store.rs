//! The `data` file: the blocks' bytes, back to back in sequence order.
//!
//! Block `i` starts at the sum of the sizes of blocks `0..i` (the merkle tree's byte
//! offset) and is as long as its leaf says. A replica writes each block where it belongs;
//! gaps (blocks not yet fetched) are holes in the file.
//!
//! Reads go through a small read-ahead window (the last 64 KiB read): sequential readers
//! and a peer fetching consecutive blocks cost one `pread` per window, not per block.
//! Every write through the store drops the window, so it never serves bytes older than
//! the file (blocks are never rewritten, but a replica fills holes).

use std::io::Error;
use std::sync::{Arc, Mutex};

use crate::disk::DiskFile;

/// Largest block value held in one allocation on a read (a corrupted size in the tree
/// file must not make us allocate gigabytes): 64 MiB, far above any block we write.
pub(crate) const MAX_BLOCK_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes read ahead for small blocks.
const WINDOW_BYTES: u64 = 64 * 1024;

#[derive(Debug)]
struct Window {
    offset: u64,
    bytes: Vec<u8>,
}

/// The data file with its read-ahead window.
#[derive(Debug)]
pub(crate) struct BlockStore {
    data: Arc<DiskFile>,
    window: Mutex<Option<Window>>,
}

impl BlockStore {
    /// The store over `data`.
    pub(crate) fn new(data: Arc<DiskFile>) -> Self {
        BlockStore {
            data,
            window: Mutex::new(None),
        }
    }

    /// The data file.
    pub(crate) fn file(&self) -> &DiskFile {
        &self.data
    }

    /// Reads `size` bytes at `offset`. A size above [`MAX_BLOCK_BYTES`] is refused
    /// (`InvalidData`); bytes past the end are `UnexpectedEof`.
    pub(crate) fn read(&self, offset: u64, size: u64) -> std::io::Result<Vec<u8>> {
        if size > MAX_BLOCK_BYTES {
            return Err(Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a block of {size} bytes is larger than any block written here"),
            ));
        }
        let end = offset
            .checked_add(size)
            .ok_or_else(|| Error::new(std::io::ErrorKind::UnexpectedEof, "block past u64"))?;
        if size > WINDOW_BYTES / 4 {
            return self.data.read_exact_at(offset, size);
        }
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = window.as_ref()
            && offset >= w.offset
            && end <= w.offset + w.bytes.len() as u64
        {
            let at = (offset - w.offset) as usize;
            return Ok(w.bytes[at..at + size as usize].to_vec());
        }
        if end > self.data.len() {
            return self.data.read_exact_at(offset, size);
        }
        let len = WINDOW_BYTES.max(size).min(self.data.len() - offset);
        let bytes = self.data.read_exact_at(offset, len)?;
        let value = bytes[..size as usize].to_vec();
        *window = Some(Window { offset, bytes });
        Ok(value)
    }

    /// Writes `value` at `offset`.
    pub(crate) fn write(&self, offset: u64, value: &[u8]) -> std::io::Result<()> {
        self.forget();
        self.data.write_at(offset, value)
    }

    /// Writes consecutive blocks starting at `offset` with one write (values are copied
    /// into one buffer; above 4 MiB each block is written on its own).
    pub(crate) fn write_batch<B: AsRef<[u8]>>(
        &self,
        offset: u64,
        values: &[B],
    ) -> std::io::Result<()> {
        self.forget();
        let total: usize = values.iter().map(|v| v.as_ref().len()).sum();
        if values.len() == 1 || total > 4 * 1024 * 1024 {
            let mut at = offset;
            for value in values {
                let value = value.as_ref();
                self.data.write_at(at, value)?;
                at += value.len() as u64;
            }
            return Ok(());
        }
        let mut buf = Vec::with_capacity(total);
        for value in values {
            buf.extend_from_slice(value.as_ref());
        }
        self.data.write_at(offset, &buf)
    }

    /// Frees bytes `offset..offset + length` (JS block-store's `clear`, random-access-file
    /// `del`): a hole punched in the file, which keeps its length. `Ok(false)`: the
    /// filesystem cannot punch holes (the bytes stay). The caller passes whole filesystem
    /// blocks that hold no stored block's bytes.
    pub(crate) fn clear(&self, offset: u64, length: u64) -> std::io::Result<bool> {
        self.forget();
        self.data.punch_hole(offset, length)
    }

    fn forget(&self) {
        *self.window.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_never_serves_bytes_older_than_the_file() {
        let store = BlockStore::new(Arc::new(DiskFile::memory("data")));
        store
            .write_batch(0, &[b"aaaa".as_slice(), b"bbbb"])
            .unwrap();
        // A hole at 8..12, then a block.
        store.write(12, b"dddd").unwrap();
        assert_eq!(store.read(0, 4).unwrap(), b"aaaa");
        assert_eq!(store.read(8, 4).unwrap(), vec![0; 4]);
        store.write(8, b"cccc").unwrap();
        assert_eq!(store.read(8, 4).unwrap(), b"cccc");
        assert_eq!(store.read(4, 4).unwrap(), b"bbbb");
        assert!(store.read(14, 4).is_err());
        assert_eq!(
            store.read(0, MAX_BLOCK_BYTES + 1).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
    }
}
