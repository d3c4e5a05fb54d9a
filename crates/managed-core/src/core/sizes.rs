//! The `sizes` file: a redundant record of each block's byte size, beside the four files
//! JS hypercore keeps (which stay byte-compatible; JS ignores this one).
//!
//! The data file is the blocks back to back; their sizes otherwise live only in the
//! tree's leaf nodes (and the oplog's entries since the last checkpoint). When leaves are
//! lost (a truncated or zeroed `tree`), the block boundaries are lost with them; this
//! file keeps them so that the local rebuild ([`super::rebuild`]) can still cut the data
//! file into blocks. It is only ever a hint: a rebuilt tree is kept only if its roots
//! carry the log's stored signature, so a wrong or damaged `sizes` file can never make
//! bad data good (it can only fail to help).
//!
//! Layout: block `seq`'s size as `u32` little-endian at offset `4 * seq` (blocks are at
//! most [`MAX_BLOCK_BYTES`](crate::block_store::MAX_BLOCK_BYTES), 64 MiB). A block whose
//! leaf was not in the tree file when it was backfilled reads as 0. Written at each
//! checkpoint for the leaves the checkpoint flushes to the tree file, and synced with
//! `tree` and `bitfield` before the header; a writer's log without the file (made before
//! it existed) or with a short one is backfilled from its tree leaves at open. Only a
//! writer's own log keeps it: a replica's leaves can come from a peer's signed upgrade
//! far past any data it holds, and its blocks can be fetched again from peers anyway
//! (its checkpoints do not write the file; only a rebuild of a replica that holds every
//! block writes the verified sizes, bounded by its data file).

use crate::crypto::Node;
use crate::disk::DiskFile;
use crate::merkle_tree::{NODE_BYTES, decode_node};

/// Bytes per recorded size.
pub(crate) const SIZE_BYTES: u64 = 4;
/// Sizes read or backfilled at once.
const SIZES_PER_READ: u64 = 4096;

/// Writes the sizes of the leaf nodes among `nodes` (ascending indexes; parents are
/// skipped), one write per run of consecutive blocks. A size past `u32` (never a block
/// this log can store) is recorded as 0: unknown.
pub(crate) fn write_leaves<'a>(
    file: &DiskFile,
    nodes: impl IntoIterator<Item = &'a Node>,
) -> std::io::Result<()> {
    let mut run: Vec<u8> = Vec::new();
    let mut run_start = 0u64;
    let mut next = None;
    for leaf in nodes.into_iter().filter(|n| n.index % 2 == 0) {
        let seq = leaf.index / 2;
        if next != Some(seq) && !run.is_empty() {
            file.write_at(run_start * SIZE_BYTES, &run)?;
            run.clear();
        }
        if run.is_empty() {
            run_start = seq;
        }
        run.extend_from_slice(&u32::try_from(leaf.size).unwrap_or(0).to_le_bytes());
        next = seq.checked_add(1);
    }
    if !run.is_empty() {
        file.write_at(run_start * SIZE_BYTES, &run)?;
    }
    Ok(())
}

/// Extends `sizes` to cover blocks `0..length` from the leaves in `tree` (a leaf the
/// tree file lacks is recorded as 0), reading both a chunk at a time. Nothing is done
/// when the file already covers `length`. Returns how many sizes were written.
pub(crate) fn backfill(sizes: &DiskFile, tree: &DiskFile, length: u64) -> std::io::Result<u64> {
    let from = sizes.len() / SIZE_BYTES;
    // Leaves past the tree file's end are not known: bounded by the file, not a length.
    let end = length.min((tree.len() / NODE_BYTES).div_ceil(2));
    if from >= end {
        return Ok(0);
    }
    let mut seq = from;
    while seq < end {
        let last = (seq + SIZES_PER_READ).min(end);
        let at = 2 * seq * NODE_BYTES;
        let want = (2 * (last - seq) * NODE_BYTES).min(tree.len().saturating_sub(at));
        let bytes = tree.read_exact_at(at, want)?;
        let mut out = Vec::with_capacity(((last - seq) * SIZE_BYTES) as usize);
        for s in seq..last {
            let slot = ((s - seq) * 2 * NODE_BYTES) as usize;
            let size = bytes
                .get(slot..slot + NODE_BYTES as usize)
                .and_then(|b| decode_node(2 * s, b))
                .map_or(0, |n| u32::try_from(n.size).unwrap_or(0));
            out.extend_from_slice(&size.to_le_bytes());
        }
        sizes.write_at(seq * SIZE_BYTES, &out)?;
        seq = last;
    }
    Ok(end - from)
}

/// Rewrites the recorded sizes of blocks `0..` given in order (a rebuild's verified
/// leaves), a chunk at a time, writing only chunks that differ from the file.
#[derive(Debug)]
pub(crate) struct SizeWriter<'a> {
    file: &'a DiskFile,
    /// First seq of `buffer`.
    first: u64,
    buffer: Vec<u8>,
    /// Sizes that differed from the file (or were missing) and were written.
    pub(crate) rewritten: u64,
}

impl<'a> SizeWriter<'a> {
    pub(crate) fn new(file: &'a DiskFile) -> Self {
        SizeWriter {
            file,
            first: 0,
            buffer: Vec::new(),
            rewritten: 0,
        }
    }

    /// Records the size of the next block.
    pub(crate) fn push(&mut self, size: u64) -> std::io::Result<()> {
        self.buffer
            .extend_from_slice(&u32::try_from(size).unwrap_or(0).to_le_bytes());
        if self.buffer.len() as u64 >= SIZES_PER_READ * SIZE_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is buffered where it differs from the file.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let at = self.first * SIZE_BYTES;
        let len = self.buffer.len() as u64;
        let have = len.min(self.file.len().saturating_sub(at));
        let old = if have == 0 {
            Vec::new()
        } else {
            self.file.read_exact_at(at, have)?
        };
        let differing = self
            .buffer
            .chunks(SIZE_BYTES as usize)
            .enumerate()
            .filter(|(i, new)| {
                old.get(i * SIZE_BYTES as usize..(i + 1) * SIZE_BYTES as usize) != Some(*new)
            })
            .count() as u64;
        if differing > 0 {
            self.file.write_at(at, &self.buffer)?;
            self.rewritten += differing;
        }
        self.first += len / SIZE_BYTES;
        self.buffer.clear();
        Ok(())
    }
}

/// Recorded sizes in order of access, read a chunk at a time.
#[derive(Debug)]
pub(crate) struct SizeReader<'a> {
    file: &'a DiskFile,
    /// First seq of `chunk`, and the file's bytes from its size on.
    first: u64,
    chunk: Vec<u8>,
}

impl<'a> SizeReader<'a> {
    pub(crate) fn new(file: &'a DiskFile) -> Self {
        SizeReader {
            file,
            first: 0,
            chunk: Vec::new(),
        }
    }

    /// The recorded size of block `seq`; `None` past the end of the file.
    pub(crate) fn get(&mut self, seq: u64) -> std::io::Result<Option<u64>> {
        if seq < self.first || seq >= self.first + SIZES_PER_READ || self.chunk.is_empty() {
            self.first = seq;
            let Some(from) = seq.checked_mul(SIZE_BYTES) else {
                return Ok(None);
            };
            let len = (SIZES_PER_READ * SIZE_BYTES).min(self.file.len().saturating_sub(from));
            self.chunk = if len == 0 {
                Vec::new()
            } else {
                self.file.read_exact_at(from, len)?
            };
        }
        let at = ((seq - self.first) * SIZE_BYTES) as usize;
        Ok(self
            .chunk
            .get(at..at + SIZE_BYTES as usize)
            .and_then(|b| b.first_chunk::<4>())
            .map(|b| u64::from(u32::from_le_bytes(*b))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn leaf(seq: u64, size: u64) -> Node {
        Node {
            index: 2 * seq,
            size,
            hash: [7; 32],
        }
    }

    #[test]
    fn leaves_are_written_at_four_times_their_seq_and_parents_skipped() {
        let file = DiskFile::memory("sizes");
        let parent = Node {
            index: 1,
            size: 99,
            hash: [1; 32],
        };
        let nodes = [leaf(0, 10), parent, leaf(1, 20), leaf(5, 1 << 26)];
        write_leaves(&file, &nodes).unwrap();
        assert_eq!(file.len(), 24);
        let mut reader = SizeReader::new(&file);
        let got: Vec<Option<u64>> = (0..7).map(|s| reader.get(s).unwrap()).collect();
        assert_eq!(
            got,
            [
                Some(10),
                Some(20),
                Some(0),
                Some(0),
                Some(0),
                Some(1 << 26),
                None
            ]
        );
        // Out of order access re-reads.
        assert_eq!(reader.get(1).unwrap(), Some(20));
    }

    #[test]
    fn backfill_reads_the_tree_leaves_and_stops_at_the_tree_file() {
        let tree = DiskFile::memory("tree");
        let sizes = DiskFile::memory("sizes");
        let leaves: Vec<Node> = (0..10_000).map(|s| leaf(s, s % 300 + 1)).collect();
        // Leaves only (every other slot), as a test tree.
        crate::merkle_tree::write_runs(leaves.iter(), |first, run| {
            tree.write_at(first * NODE_BYTES, run)
        })
        .unwrap();
        write_leaves(&sizes, &leaves[..100]).unwrap();
        // A length far past the tree file (a hostile upgrade) costs only the file.
        assert_eq!(backfill(&sizes, &tree, 1 << 40).unwrap(), 9_900);
        assert_eq!(backfill(&sizes, &tree, 1 << 40).unwrap(), 0, "once");
        let mut reader = SizeReader::new(&sizes);
        for s in 0..10_000 {
            assert_eq!(reader.get(s).unwrap(), Some(s % 300 + 1), "seq {s}");
        }
        assert_eq!(reader.get(10_000).unwrap(), None);
    }

    #[test]
    fn the_writer_rewrites_only_what_differs() {
        let sizes = DiskFile::memory("sizes");
        let leaves: Vec<Node> = (0..5_000).map(|s| leaf(s, s + 1)).collect();
        write_leaves(&sizes, &leaves).unwrap();
        let rewrite = |sizes: &DiskFile| {
            let mut writer = SizeWriter::new(sizes);
            for s in 0..5_000 {
                writer.push(s + 1).unwrap();
            }
            writer.flush().unwrap();
            writer.rewritten
        };
        assert_eq!(rewrite(&sizes), 0);
        sizes.write_at(4 * 17, &[9, 9, 9, 9]).unwrap();
        sizes.write_at(4 * 4_999 + 1, &[1]).unwrap();
        assert_eq!(rewrite(&sizes), 2);
        sizes.truncate(4 * 4_000).unwrap();
        assert_eq!(rewrite(&sizes), 1_000);
        let mut reader = SizeReader::new(&sizes);
        for s in 0..5_000 {
            assert_eq!(reader.get(s).unwrap(), Some(s + 1), "seq {s}");
        }
    }
}
