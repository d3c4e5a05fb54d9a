//! The `data` file: the blocks' bytes, back to back in sequence order.
//!
//! Block `i` starts at the sum of the sizes of blocks `0..i` (the merkle tree's byte
//! offset) and is as long as its leaf says. A replica writes each block where it belongs;
//! gaps (blocks not yet fetched) are holes in the file.

use std::io::Error;

use crate::disk::DiskFile;

/// Largest block value held in one allocation on a read (a corrupted size in the tree
/// file must not make us allocate gigabytes): 64 MiB, far above any block we write.
pub(crate) const MAX_BLOCK_BYTES: u64 = 64 * 1024 * 1024;

/// Reads `size` bytes at `offset`. A size above [`MAX_BLOCK_BYTES`] is refused.
pub(crate) fn read(data: &DiskFile, offset: u64, size: u64) -> std::io::Result<Vec<u8>> {
    if size > MAX_BLOCK_BYTES {
        return Err(Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a block of {size} bytes is larger than any block written here"),
        ));
    }
    data.read_exact_at(offset, size)
}

/// Writes consecutive blocks starting at `offset` with one write (values are copied into
/// one buffer; above 4 MiB each block is written on its own).
pub(crate) fn write_batch<B: AsRef<[u8]>>(
    data: &DiskFile,
    offset: u64,
    values: &[B],
) -> std::io::Result<()> {
    let total: usize = values.iter().map(|v| v.as_ref().len()).sum();
    if values.len() == 1 || total > 4 * 1024 * 1024 {
        let mut at = offset;
        for value in values {
            let value = value.as_ref();
            data.write_at(at, value)?;
            at += value.len() as u64;
        }
        return Ok(());
    }
    let mut buf = Vec::with_capacity(total);
    for value in values {
        buf.extend_from_slice(value.as_ref());
    }
    data.write_at(offset, &buf)
}
