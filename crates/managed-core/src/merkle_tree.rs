//! The `tree` file and the log's signed merkle tree: roots, length, byte length, fork,
//! signature, and the nodes not yet written to the file.
//!
//! Format (hypercore 10): node `i` (flat-tree index) is 40 bytes at `i * 40`: the byte
//! size under it (u64 little-endian) then its 32-byte hash. An all-zero slot is a node
//! not stored (a sparse replica). Nodes are buffered in memory after an append or a
//! verified proof and written in runs of consecutive indexes at the next checkpoint
//! ([`MerkleTree::flush`]); until then the oplog's entries hold them (replayed at open).
//!
//! Nodes read from the file are data, not truth: the read path compares what they lead
//! to against the signed roots before returning a block (see `crate::core`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::crypto::{Node, root_indexes, tree_hash};
use crate::disk::DiskFile;
use crate::proof::NodeSource;

/// Bytes per node in the tree file.
pub(crate) const NODE_BYTES: u64 = 40;
/// Nodes per cached chunk of the tree file (one read fetches a whole chunk: proofs and
/// offsets for neighbouring blocks touch neighbouring nodes).
const CHUNK_NODES: u64 = 128;
/// Chunks kept per log (128 x 5 KiB = 640 KiB) before the cache is reset.
const CACHE_CHUNKS: usize = 128;

/// Why the tree cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TreeError {
    /// A node the signed state needs is not in the tree (file or oplog).
    #[error("tree node {index} is missing (needed for length {length})")]
    MissingNode {
        /// Flat-tree index.
        index: u64,
        /// The length that needs it.
        length: u64,
    },
    /// Sizes under the roots add up past u64.
    #[error("byte sizes of the roots overflow")]
    Overflow,
    /// Reading or writing the tree file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A batch of appended blocks, hashed but not yet part of the tree.
#[derive(Debug, Clone)]
pub(crate) struct AppendBatch {
    /// Length before the batch (JS `ancestors`).
    pub(crate) ancestors: u64,
    /// Length after it.
    pub(crate) length: u64,
    /// Byte length after it.
    pub(crate) byte_length: u64,
    /// Roots after it.
    pub(crate) roots: Vec<Node>,
    /// New leaves and parents.
    pub(crate) nodes: Vec<Node>,
}

/// One log's merkle tree.
#[derive(Debug)]
pub(crate) struct MerkleTree {
    fork: u64,
    length: u64,
    byte_length: u64,
    roots: Vec<Node>,
    signature: Vec<u8>,
    /// Nodes not yet in the file, by index. A blank node (size 0, zero hash) stands
    /// for a slot to be zeroed: a parent spanning a truncation point (JS `blankNode`).
    unflushed: BTreeMap<u64, Node>,
    /// Set by a truncation until the next flush cuts the file: file slots at or past
    /// `2 * truncated_to` belong to a retracted history and read as missing.
    truncated_to: Option<u64>,
    /// Chunks of the tree file as last read or written (chunk number -> bytes, shorter
    /// than a full chunk at the end of the file).
    cache: Mutex<HashMap<u64, Vec<u8>>>,
}

impl MerkleTree {
    /// The tree as the header left it: `length` blocks, roots read from `file`.
    pub(crate) fn open(
        file: &DiskFile,
        fork: u64,
        length: u64,
        signature: Vec<u8>,
    ) -> Result<Self, TreeError> {
        let mut tree = MerkleTree {
            fork,
            length: 0,
            byte_length: 0,
            roots: Vec::new(),
            signature: Vec::new(),
            unflushed: BTreeMap::new(),
            truncated_to: None,
            cache: Mutex::new(HashMap::new()),
        };
        tree.upgrade_to(file, length, fork, signature)?;
        Ok(tree)
    }

    /// Moves the signed state to `length` (its roots must be stored or pending): the
    /// oplog's tree upgrades replayed at open, and verified upgrades from peers.
    pub(crate) fn upgrade_to(
        &mut self,
        file: &DiskFile,
        length: u64,
        fork: u64,
        signature: Vec<u8>,
    ) -> Result<(), TreeError> {
        let (roots, byte_length) = self.prefix(file, length)?;
        self.set_signed(length, byte_length, fork, roots, signature);
        Ok(())
    }

    /// The roots of the tree of the first `length` blocks and their byte length, read
    /// from this tree (JS `MerkleTree.truncate` builds its batch from these): for a
    /// prefix they are interior nodes of the current tree.
    pub(crate) fn prefix(
        &self,
        file: &DiskFile,
        length: u64,
    ) -> Result<(Vec<Node>, u64), TreeError> {
        let mut roots = Vec::new();
        let mut byte_length: u64 = 0;
        for index in root_indexes(length) {
            let node = self
                .node_in(file, index)?
                .ok_or(TreeError::MissingNode { index, length })?;
            byte_length = byte_length
                .checked_add(node.size)
                .ok_or(TreeError::Overflow)?;
            roots.push(node);
        }
        Ok((roots, byte_length))
    }

    /// Cuts the tree back to its first `ancestors` blocks (JS `_commitUpgrade` when
    /// `ancestors < treeLength`): pending nodes at or past `2 * ancestors` are dropped,
    /// the parents left of the cut whose span crosses it become blank (their hashes
    /// covered retracted blocks), and file slots past the cut read as missing until the
    /// next [`flush`](Self::flush) cuts the file. Stale nodes must never be read again:
    /// a block proof's fork is not signed, so an old-fork block could verify against an
    /// old-fork node left behind. The signed state is the caller's to set.
    pub(crate) fn truncate_to(&mut self, ancestors: u64) {
        let head = ancestors.saturating_mul(2);
        self.unflushed.retain(|index, _| *index < head);
        if ancestors > 0 {
            // Walk up from the last kept leaf: every ancestor left of the head whose
            // span contains leaf `ancestors` (index `head`) also spans retracted leaves.
            let mut index = head - 2;
            loop {
                let (first, last) = flat_tree::spans(index);
                if first <= head && head <= last && index < head {
                    self.unflushed.insert(index, blank(index));
                }
                if flat_tree::offset(index) == 0 {
                    break;
                }
                index = flat_tree::parent(index);
            }
        }
        self.truncated_to = Some(self.truncated_to.map_or(ancestors, |t| t.min(ancestors)));
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Sets the signed state from values already checked by the caller.
    pub(crate) fn set_signed(
        &mut self,
        length: u64,
        byte_length: u64,
        fork: u64,
        roots: Vec<Node>,
        signature: Vec<u8>,
    ) {
        self.length = length;
        self.byte_length = byte_length;
        self.fork = fork;
        self.roots = roots;
        self.signature = signature;
    }

    /// Blocks the signed tree covers.
    pub(crate) fn length(&self) -> u64 {
        self.length
    }

    /// Payload bytes the signed tree covers.
    pub(crate) fn byte_length(&self) -> u64 {
        self.byte_length
    }

    /// Fork id (0: our logs never truncate).
    pub(crate) fn fork(&self) -> u64 {
        self.fork
    }

    /// The roots, left to right.
    pub(crate) fn roots(&self) -> &[Node] {
        &self.roots
    }

    /// The signature over the roots.
    pub(crate) fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The hash the header stores (`rootHash`): the tree hash of the roots.
    pub(crate) fn root_hash(&self) -> [u8; 32] {
        tree_hash(&self.roots)
    }

    /// Hashes `values` as blocks appended after the current length. Pure: the tree
    /// changes only at [`commit_append`](Self::commit_append).
    pub(crate) fn append_batch<B: AsRef<[u8]>>(&self, values: &[B]) -> Option<AppendBatch> {
        let mut roots = self.roots.clone();
        let mut nodes = Vec::with_capacity(values.len() * 2);
        let mut length = self.length;
        let mut byte_length = self.byte_length;
        for value in values {
            let leaf = Node::leaf(length, value.as_ref());
            byte_length = byte_length.checked_add(leaf.size)?;
            length = length.checked_add(1)?;
            nodes.push(leaf);
            let mut top = leaf;
            // Merge while the last two roots are siblings.
            while let Some(prev) = roots.last() {
                if flat_tree::sibling(top.index) != prev.index {
                    break;
                }
                let parent = Node::parent(prev, &top)?;
                roots.pop();
                nodes.push(parent);
                top = parent;
            }
            roots.push(top);
        }
        Some(AppendBatch {
            ancestors: self.length,
            length,
            byte_length,
            roots,
            nodes,
        })
    }

    /// Makes an appended batch part of the tree, signed with `signature`.
    pub(crate) fn commit_append(&mut self, batch: AppendBatch, signature: Vec<u8>) {
        self.add_nodes(batch.nodes);
        self.set_signed(
            batch.length,
            batch.byte_length,
            self.fork,
            batch.roots,
            signature,
        );
    }

    /// Adds nodes (verified, or replayed from the oplog) to the pending set.
    pub(crate) fn add_nodes(&mut self, nodes: impl IntoIterator<Item = Node>) {
        for node in nodes {
            self.unflushed.insert(node.index, node);
        }
    }

    /// Node `index`: pending in memory, or from the tree file through the chunk cache
    /// (one read per 128 nodes; empty slots are answered from the cache too).
    pub(crate) fn node_in(&self, file: &DiskFile, index: u64) -> std::io::Result<Option<Node>> {
        if let Some(node) = self.unflushed.get(&index) {
            return Ok((!is_blank(node)).then_some(*node));
        }
        if self
            .truncated_to
            .is_some_and(|t| index.saturating_add(1) >= t.saturating_mul(2))
        {
            // A retracted slot, not cut from the file yet: the flush keeps nodes
            // `0..=2t-2` only (node `2t-1`, whose span crosses the cut when `t` is a
            // power of two, is not among the blanks the walk above writes).
            return Ok(None);
        }
        let Some(offset) = index.checked_mul(NODE_BYTES) else {
            return Ok(None);
        };
        if offset.saturating_add(NODE_BYTES) > file.len() {
            return Ok(None);
        }
        let chunk = index / CHUNK_NODES;
        let at = usize::try_from((index % CHUNK_NODES) * NODE_BYTES).unwrap_or(usize::MAX);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bytes) = cache.get(&chunk)
            && let Some(slot) = bytes.get(at..at.saturating_add(NODE_BYTES as usize))
        {
            return Ok(decode_node(index, slot));
        }
        let start = chunk * CHUNK_NODES * NODE_BYTES;
        let len = (CHUNK_NODES * NODE_BYTES).min(file.len().saturating_sub(start));
        let bytes = file.read_exact_at(start, len)?;
        let node = bytes
            .get(at..at.saturating_add(NODE_BYTES as usize))
            .and_then(|slot| decode_node(index, slot));
        if cache.len() >= CACHE_CHUNKS {
            cache.clear();
        }
        cache.insert(chunk, bytes);
        Ok(node)
    }

    /// A [`NodeSource`] over this tree and its file (for proofs).
    pub(crate) fn source<'a>(&'a self, file: &'a DiskFile) -> TreeSource<'a> {
        TreeSource { tree: self, file }
    }

    /// Where block `seq` starts in the data file: the sizes left of it, found by walking
    /// down from its root (JS `byteOffset`). `None` if a node on the way is missing or
    /// the sizes are inconsistent (a damaged tree).
    pub(crate) fn byte_offset(&self, file: &DiskFile, seq: u64) -> std::io::Result<Option<u64>> {
        let index = seq.checked_mul(2);
        let Some(index) = index else { return Ok(None) };
        let mut offset: u64 = 0;
        for root in &self.roots {
            let (first, last) = flat_tree::spans(root.index);
            if index > last {
                let Some(o) = offset.checked_add(root.size) else {
                    return Ok(None);
                };
                offset = o;
                continue;
            }
            if index < first {
                return Ok(None);
            }
            let mut at = root.index;
            while at != index {
                let left = flat_tree::left_child(at).unwrap_or(at);
                if left == at {
                    return Ok(None);
                }
                if index < at {
                    at = left;
                } else {
                    let Some(node) = self.node_in(file, left)? else {
                        return Ok(None);
                    };
                    let Some(o) = offset.checked_add(node.size) else {
                        return Ok(None);
                    };
                    offset = o;
                    at = flat_tree::sibling(left);
                }
            }
            return Ok(Some(offset));
        }
        Ok(None)
    }

    /// Whether nodes (or a truncation) wait to be written.
    pub(crate) fn has_unflushed(&self) -> bool {
        !self.unflushed.is_empty() || self.truncated_to.is_some()
    }

    /// The nodes waiting to be written, by index.
    pub(crate) fn unflushed(&self) -> impl Iterator<Item = &Node> {
        self.unflushed.values()
    }

    /// How many nodes wait to be written.
    pub(crate) fn unflushed_len(&self) -> usize {
        self.unflushed.len()
    }

    /// Writes the pending nodes to `file`, one write per run of consecutive indexes;
    /// after a truncation the file is first cut to the nodes of the kept blocks
    /// (`40 * (2t - 1)` bytes, JS `_flushTruncation`) and blank nodes are written as
    /// zeros. On error the nodes stay pending (the next flush writes them again).
    pub(crate) fn flush(&mut self, file: &DiskFile) -> std::io::Result<()> {
        if let Some(t) = self.truncated_to {
            let keep = if t == 0 {
                0
            } else {
                (t.saturating_mul(2) - 1).saturating_mul(NODE_BYTES)
            };
            if file.len() > keep {
                file.truncate(keep)?;
            }
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
            self.truncated_to = None;
        }
        write_runs(self.unflushed.values(), |first, run| {
            let offset = first.checked_mul(NODE_BYTES).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("tree node {first} lies past any tree file"),
                )
            })?;
            file.write_at(offset, run)
        })?;
        // Cached chunks now differ from the file where nodes were written: patch them.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for node in std::mem::take(&mut self.unflushed).into_values() {
            let Some(bytes) = cache.get_mut(&(node.index / CHUNK_NODES)) else {
                continue;
            };
            let at = ((node.index % CHUNK_NODES) * NODE_BYTES) as usize;
            if bytes.len() < at + NODE_BYTES as usize {
                bytes.resize(at + NODE_BYTES as usize, 0);
            }
            bytes[at..at + 8].copy_from_slice(&node.size.to_le_bytes());
            bytes[at + 8..at + NODE_BYTES as usize].copy_from_slice(&node.hash);
        }
        Ok(())
    }
}

/// Calls `write` once per run of consecutive node indexes (in the order given, which must
/// be ascending) with the run's first index and its nodes laid out as in the tree file
/// (`u64le size ‖ hash`, [`NODE_BYTES`] each). The one place that lays nodes out for writing.
pub(crate) fn write_runs<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    mut write: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut run: Vec<u8> = Vec::new();
    let mut run_start = 0;
    let mut next = None;
    for node in nodes {
        if next != Some(node.index) && !run.is_empty() {
            write(run_start, &run)?;
            run.clear();
        }
        if run.is_empty() {
            run_start = node.index;
        }
        run.extend_from_slice(&node.size.to_le_bytes());
        run.extend_from_slice(&node.hash);
        next = node.index.checked_add(1);
    }
    if !run.is_empty() {
        write(run_start, &run)?;
    }
    Ok(())
}

/// A blank node: written as an empty slot (40 zero bytes).
fn blank(index: u64) -> Node {
    Node {
        index,
        size: 0,
        hash: [0; 32],
    }
}

/// Whether `node` is a blank (an empty slot to be written).
fn is_blank(node: &Node) -> bool {
    node.size == 0 && node.hash == [0; 32]
}

/// Node `index` from its 40 bytes in the tree file; `None` for an empty slot.
pub(crate) fn decode_node(index: u64, bytes: &[u8]) -> Option<Node> {
    let (size, hash) = bytes.split_first_chunk::<8>()?;
    let hash: [u8; 32] = hash.get(..32)?.try_into().ok()?;
    let size = u64::from_le_bytes(*size);
    if size == 0 && hash == [0; 32] {
        return None;
    }
    Some(Node { index, size, hash })
}

/// The tree plus its file, as proofs see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeSource<'a> {
    tree: &'a MerkleTree,
    file: &'a DiskFile,
}

impl NodeSource for TreeSource<'_> {
    fn node(&self, index: u64) -> std::io::Result<Option<Node>> {
        self.tree.node_in(self.file, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_of(values: &[&[u8]]) -> (MerkleTree, DiskFile) {
        let file = DiskFile::memory("tree");
        let mut tree = MerkleTree::open(&file, 0, 0, Vec::new()).unwrap();
        let batch = tree.append_batch(values).unwrap();
        tree.commit_append(batch, vec![1; 64]);
        (tree, file)
    }

    #[test]
    fn a_cut_hides_every_retracted_node_before_and_after_the_flush() {
        for (blocks, cut) in [(8u8, 4u64), (16, 8), (10, 5), (16, 11), (4, 1), (7, 0)] {
            let values: Vec<Vec<u8>> = (0..blocks).map(|i| vec![i; 3]).collect();
            let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
            let (mut tree, file) = tree_of(&refs);
            tree.flush(&file).unwrap();
            tree.truncate_to(cut);
            // What survives the file cut (nodes 0..=2t-2) and was not blanked: exactly
            // the nodes whose span lies below the cut.
            let check = |tree: &MerkleTree, when: &str| {
                for index in 0..2 * u64::from(blocks) {
                    let (_, last) = flat_tree::spans(index);
                    let kept = last < 2 * cut;
                    let node = tree.node_in(&file, index).unwrap();
                    assert_eq!(
                        node.is_some(),
                        kept,
                        "{when}: {blocks} blocks cut at {cut}, node {index}"
                    );
                }
            };
            check(&tree, "before the flush");
            tree.flush(&file).unwrap();
            check(&tree, "after the flush");
        }
    }

    #[test]
    fn appends_build_the_flat_tree_roots_and_offsets() {
        let values: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1 + i as usize]).collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let (mut tree, file) = tree_of(&refs);
        assert_eq!(tree.length(), 5);
        assert_eq!(tree.byte_length(), 15);
        assert_eq!(
            tree.roots().iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![3, 8]
        );
        // One batch of five equals five single appends.
        let file2 = DiskFile::memory("tree");
        let mut one_by_one = MerkleTree::open(&file2, 0, 0, Vec::new()).unwrap();
        for v in &refs {
            let b = one_by_one.append_batch(&[v]).unwrap();
            one_by_one.commit_append(b, vec![]);
        }
        assert_eq!(one_by_one.roots(), tree.roots());
        for seq in 0..5 {
            let expected: u64 = (1..=seq).sum();
            assert_eq!(tree.byte_offset(&file, seq).unwrap(), Some(expected));
        }
        // Flushed to the file and reopened from it, the roots and offsets are the same.
        tree.flush(&file).unwrap();
        assert!(!tree.has_unflushed());
        assert_eq!(file.len(), 9 * NODE_BYTES);
        let reopened = MerkleTree::open(&file, 0, 5, vec![1; 64]).unwrap();
        assert_eq!(reopened.roots(), tree.roots());
        assert_eq!(reopened.byte_offset(&file, 4).unwrap(), Some(10));
        assert!(matches!(
            MerkleTree::open(&file, 0, 6, vec![]),
            Err(TreeError::MissingNode { index: 9, .. })
        ));
    }
}
