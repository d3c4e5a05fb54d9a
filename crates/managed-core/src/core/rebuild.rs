//! Local rebuild: a log whose `tree` or `bitfield` file is damaged while its `data` file
//! is intact is made whole again from the data file, without a peer.
//!
//! - `tree`: the blocks are re-hashed from the data file, cut at the boundaries the leaf
//!   nodes give (the tree file's surviving leaves, or the oplog's entries since the last
//!   checkpoint), and the tree is recomputed. It is written back only if the recomputed
//!   roots carry the log's stored signature: that proves every block and boundary is
//!   exactly what was signed, so nothing needs re-signing and no altered byte can come
//!   back as good. A block whose leaf is lost takes its size from the `sizes` file
//!   ([`super::sizes`]), the one other record of the boundaries (the data file is the
//!   blocks back to back); the signature check above covers those sizes too. When that
//!   file lacks the block as well, the log cannot be rebuilt here and the error names
//!   the blocks from the first lost leaf on.
//! - `bitfield`: see `Storage::restore_bits` (blocks whose bit was lost are verified
//!   against the signed tree and marked stored again).
//! - `oplog`: see `Storage::extend_from_files`. When the oplog lost state (a damaged
//!   header slot falls back to the older one; both slots lost), a writer re-signs the
//!   blocks past the signed length whose leaves a checkpoint wrote to the tree file and
//!   whose bytes hash to them: they were committed before that checkpoint. Blocks whose
//!   leaves were only in lost oplog entries have no boundaries and stay lost.
//!
//! Two passes over the data file (check, then write), so a failed rebuild leaves the
//! damaged tree as it was, and memory stays bounded by one chunk of leaves.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest as _};

use crate::block_store::MAX_BLOCK_BYTES;
use crate::crypto::Node;
use crate::disk::DiskFile;
use std::collections::BTreeMap;

use crate::merkle_tree::{self, NODE_BYTES, decode_node};
use crate::verifier::Verifier;

use super::sizes::{SizeReader, SizeWriter};

/// Leaves read from the tree file at once.
const LEAVES_PER_READ: u64 = 4096;
/// Bytes of a block hashed at once (a damaged size must not cost its allocation).
const HASH_CHUNK: u64 = 1 << 20;
/// Nodes buffered before they are compared with and written to the tree file in pass 2.
const FLUSH_NODES: usize = 1 << 14;

/// The signed state the rebuilt tree must reproduce.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) length: u64,
    pub(crate) fork: u64,
    pub(crate) signature: &'a [u8],
}

/// Why a rebuild failed: a sentence naming the blocks, or an I/O error.
#[derive(Debug)]
pub(crate) enum RebuildError {
    /// The files do not hold what a rebuild needs (names the seq range).
    Unrecoverable(String),
    /// Reading or writing a file failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for RebuildError {
    fn from(e: std::io::Error) -> Self {
        RebuildError::Io(e)
    }
}

/// Recomputes the tree of `target.length` blocks from `data` and writes it to `tree`,
/// if and only if its roots carry `target.signature`; returns how many nodes differed
/// from the file and were rewritten. `pending` answers leaves the tree file may lack
/// (nodes replayed from the oplog); `sizes` the sizes of leaves lost from both.
pub(crate) fn rebuild_tree(
    tree: &DiskFile,
    data: &DiskFile,
    sizes: &DiskFile,
    pending: &dyn Fn(u64) -> Option<Node>,
    target: Target<'_>,
    verifier: &Verifier,
) -> Result<u64, RebuildError> {
    let mut leaves = Leaves::new(tree, sizes, pending);
    // Pass 1: recompute the roots; nothing is written.
    let mut roots = Vec::new();
    let mut differing = (0u64, None::<u64>);
    walk(data, &mut leaves, target.length, |stored, leaf| {
        if stored.is_some_and(|hash| hash != leaf.hash) {
            differing.0 += 1;
            differing.1.get_or_insert(leaf.index / 2);
        }
        push(&mut roots, leaf, &mut |_| {})
    })?;
    if !verifier.verify(&roots, target.length, target.fork, target.signature) {
        if let (0, Some(seq)) = (differing.0, leaves.first_from_sizes) {
            return Err(sizes_damaged(seq, target.length));
        }
        let detail = match differing {
            (0, _) => "every block hashes to its stored leaf, so the stored sizes or hashes above them are damaged too".to_owned(),
            (n, first) => format!(
                "{n} blocks differ from their stored leaf hash (the first is seq {}): the data file is damaged there",
                first.unwrap_or(0)
            ),
        };
        return Err(RebuildError::Unrecoverable(format!(
            "blocks 0..{} re-hashed from the data file do not carry the log's signature; {detail}",
            target.length
        )));
    }
    // Pass 2: the same walk, writing every node that differs from the file; the roots
    // last, so a crash part-way leaves roots that do not load or verify, and the next
    // open rebuilds again (never a tree whose roots check out over missing nodes).
    let final_roots: Vec<Node> = roots;
    let mut writer = NodeWriter {
        tree,
        buffer: BTreeMap::new(),
        rewritten: 0,
    };
    let mut roots = Vec::new();
    let mut leaves = Leaves::new(tree, sizes, pending);
    // The verified leaves' sizes also go back to the sizes file where it differs.
    let mut size_writer = SizeWriter::new(sizes);
    let mut failed = None;
    let walked = walk(data, &mut leaves, target.length, |_, leaf| {
        push(&mut roots, leaf, &mut |node| {
            if !final_roots.iter().any(|r| r.index == node.index) {
                writer.buffer.insert(node.index, node);
            }
        })?;
        let flushed = size_writer.push(leaf.size).and_then(|()| {
            if writer.buffer.len() >= FLUSH_NODES {
                writer.flush()
            } else {
                Ok(())
            }
        });
        if let Err(e) = flushed {
            failed = Some(e);
            return None;
        }
        Some(())
    });
    // A failed write stops the walk: report it, not the stop.
    if let Some(e) = failed {
        return Err(RebuildError::Io(e));
    }
    walked?;
    size_writer.flush()?;
    if size_writer.rewritten > 0 {
        tracing::warn!(
            file = %sizes.path().display(),
            rewritten = size_writer.rewritten,
            "block sizes rewritten from the verified leaves"
        );
    }
    writer.flush()?;
    writer
        .buffer
        .extend(final_roots.iter().map(|r| (r.index, *r)));
    writer.flush()?;
    Ok(writer.rewritten)
}

/// Writes recomputed nodes, in runs of consecutive indexes, where the file differs.
struct NodeWriter<'a> {
    tree: &'a DiskFile,
    buffer: BTreeMap<u64, Node>,
    /// Nodes whose 40 bytes in the file were different (or missing).
    rewritten: u64,
}

impl NodeWriter<'_> {
    fn flush(&mut self) -> std::io::Result<()> {
        let nodes = std::mem::take(&mut self.buffer);
        merkle_tree::write_runs(nodes.values(), |first, run| self.write_run(first, run))
    }

    fn write_run(&mut self, first: u64, run: &[u8]) -> std::io::Result<()> {
        let at = first * NODE_BYTES;
        let have = (run.len() as u64).min(self.tree.len().saturating_sub(at));
        let old = if have == 0 {
            Vec::new()
        } else {
            self.tree.read_exact_at(at, have)?
        };
        let differing = run
            .chunks(NODE_BYTES as usize)
            .enumerate()
            .filter(|(i, new)| {
                old.get(i * NODE_BYTES as usize..(i + 1) * NODE_BYTES as usize) != Some(*new)
            })
            .count() as u64;
        if differing > 0 {
            self.tree.write_at(at, run)?;
            self.rewritten += differing;
        }
        Ok(())
    }
}

/// Adds `leaf` to `roots`, merging siblings; every new node goes to `out`. `None` when
/// sizes overflow.
pub(crate) fn push(roots: &mut Vec<Node>, leaf: Node, out: &mut dyn FnMut(Node)) -> Option<()> {
    out(leaf);
    let mut top = leaf;
    while let Some(prev) = roots.last() {
        if flat_tree::sibling(top.index) != prev.index {
            break;
        }
        let parent = Node::parent(prev, &top)?;
        roots.pop();
        out(parent);
        top = parent;
    }
    roots.push(top);
    Some(())
}

/// Walks blocks `0..length`: for each, its stored leaf hash (`None` when only its
/// size was recorded) and the leaf recomputed from the data file at the offset the
/// stored sizes give. `each` returning `None` stops with an overflow error.
fn walk(
    data: &DiskFile,
    leaves: &mut Leaves<'_>,
    length: u64,
    mut each: impl FnMut(Option<[u8; 32]>, Node) -> Option<()>,
) -> Result<(), RebuildError> {
    let mut offset: u64 = 0;
    for seq in 0..length {
        let Some(stored) = leaves.get(seq)? else {
            return Err(RebuildError::Unrecoverable(format!(
                "the leaf of block {seq} is lost with the tree (and not in the oplog) and the sizes file does not record its size, so the boundaries of blocks {seq}..{length} in the data file are unknown; blocks 0..{seq} are intact"
            )));
        };
        let past_data = offset
            .checked_add(stored.size)
            .is_none_or(|e| e > data.len());
        if let (None, Some(first)) = (stored.hash, leaves.first_from_sizes)
            && (stored.size > MAX_BLOCK_BYTES || past_data)
        {
            return Err(sizes_damaged(first, length));
        }
        if stored.size > MAX_BLOCK_BYTES {
            return Err(RebuildError::Unrecoverable(format!(
                "the leaf of block {seq} claims {} bytes, past the {MAX_BLOCK_BYTES}-byte block limit: the boundaries of blocks {seq}..{length} are unknown",
                stored.size
            )));
        }
        let end = offset.checked_add(stored.size).filter(|e| *e <= data.len());
        let Some(end) = end else {
            return Err(RebuildError::Unrecoverable(format!(
                "block {seq} would end past the data file ({} bytes): blocks {seq}..{length} are not all stored",
                data.len()
            )));
        };
        let leaf = Node {
            index: 2 * seq,
            size: stored.size,
            hash: leaf_hash_at(data, offset, stored.size)?,
        };
        each(stored.hash, leaf).ok_or_else(|| {
            RebuildError::Unrecoverable(format!("sizes of blocks 0..{seq} overflow"))
        })?;
        offset = end;
    }
    Ok(())
}

/// The refusal when the leaves from block `seq` on are lost and the sizes the `sizes`
/// file records for them do not cut the data file into the signed blocks.
fn sizes_damaged(seq: u64, length: u64) -> RebuildError {
    RebuildError::Unrecoverable(format!(
        "the leaf of block {seq} is lost with the tree (and not in the oplog), and the block sizes the sizes file records from there on do not reproduce the signed tree (that file, or the data file there, is damaged too), so the boundaries of blocks {seq}..{length} in the data file are unknown; blocks 0..{seq} are intact"
    ))
}

/// The leaf hash of the `size` bytes at `offset`, read in chunks.
pub(crate) fn leaf_hash_at(data: &DiskFile, offset: u64, size: u64) -> std::io::Result<[u8; 32]> {
    let mut h = Blake2b::<U32>::new();
    h.update([0u8]);
    h.update(size.to_le_bytes());
    let mut at = 0;
    while at < size {
        let n = (size - at).min(HASH_CHUNK);
        h.update(data.read_exact_at(offset + at, n)?);
        at += n;
    }
    Ok(h.finalize().into())
}

/// What is stored of one leaf: its size, and its hash unless only the size survived.
#[derive(Debug, Clone, Copy)]
struct Stored {
    size: u64,
    hash: Option<[u8; 32]>,
}

impl From<Node> for Stored {
    fn from(node: Node) -> Self {
        Stored {
            size: node.size,
            hash: Some(node.hash),
        }
    }
}

/// Stored leaves in order: pending (oplog) nodes first, else the tree file, read a
/// chunk at a time, else the size the `sizes` file recorded.
struct Leaves<'a> {
    tree: &'a DiskFile,
    sizes: SizeReader<'a>,
    pending: &'a dyn Fn(u64) -> Option<Node>,
    /// First seq of `chunk`, and the tree file's bytes from its leaf on.
    first: u64,
    chunk: Vec<u8>,
    /// The first block whose size came from the sizes file.
    first_from_sizes: Option<u64>,
}

impl<'a> Leaves<'a> {
    fn new(
        tree: &'a DiskFile,
        sizes: &'a DiskFile,
        pending: &'a dyn Fn(u64) -> Option<Node>,
    ) -> Self {
        Leaves {
            tree,
            sizes: SizeReader::new(sizes),
            pending,
            first: 0,
            chunk: Vec::new(),
            first_from_sizes: None,
        }
    }

    fn get(&mut self, seq: u64) -> std::io::Result<Option<Stored>> {
        if let Some(node) = self.leaf(seq)? {
            return Ok(Some(node.into()));
        }
        let Some(size) = self.sizes.get(seq)? else {
            return Ok(None);
        };
        self.first_from_sizes.get_or_insert(seq);
        Ok(Some(Stored { size, hash: None }))
    }

    fn leaf(&mut self, seq: u64) -> std::io::Result<Option<Node>> {
        let index = 2 * seq;
        if let Some(node) = (self.pending)(index) {
            return Ok(Some(node));
        }
        if seq < self.first || seq >= self.first + LEAVES_PER_READ || self.chunk.is_empty() {
            self.first = seq;
            let from = index * NODE_BYTES;
            let want = (2 * LEAVES_PER_READ) * NODE_BYTES;
            let len = want.min(self.tree.len().saturating_sub(from));
            self.chunk = if len == 0 {
                Vec::new()
            } else {
                self.tree.read_exact_at(from, len)?
            };
        }
        let at = ((index - 2 * self.first) * NODE_BYTES) as usize;
        Ok(self
            .chunk
            .get(at..at + NODE_BYTES as usize)
            .and_then(|slot| decode_node(index, slot)))
    }
}
