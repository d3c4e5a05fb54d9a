//! The hashes of hypercore 10's merkle tree (`hypercore-crypto`) and the tree node type.
//!
//! Owns: [`Node`] (flat-tree index, byte size, blake2b-256 hash), the leaf, parent and
//! root-set hashes, and the bytes a tree signature covers ([`signable`]). Pure functions,
//! no I/O. Every hash is blake2b-256 over a type byte (leaf 0, parent 1, roots 2) and
//! little-endian u64 sizes/indexes, as JS `hypercore-crypto` computes them.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest as _};

/// A blake2b-256 hash.
pub(crate) type Hash = [u8; 32];

/// hypercore's tree-signature namespace (`caps.TREE` in JS hypercore 10:
/// `crypto.namespace('hypercore', 6)[0]`), the first 32 bytes of every legacy signable.
pub(crate) const TREE_NAMESPACE: [u8; 32] = [
    0x9F, 0xAC, 0x70, 0xB5, 0x0C, 0xA1, 0x4E, 0xFC, 0x4E, 0x91, 0xC8, 0x33, 0xB2, 0x04, 0xE7, 0x5B,
    0x8B, 0x5A, 0xAD, 0x8B, 0x58, 0x81, 0xBF, 0xC0, 0xAD, 0xB5, 0xEF, 0x38, 0xA3, 0x27, 0x5B, 0x9C,
];

/// One node of a log's merkle tree: its flat-tree index (leaves are even: block `i` is
/// node `2i`), the number of payload bytes under it, and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Node {
    /// Flat-tree index.
    pub(crate) index: u64,
    /// Payload bytes of the blocks under this node.
    pub(crate) size: u64,
    /// blake2b-256 hash (leaf, or parent of its two children).
    pub(crate) hash: Hash,
}

impl Node {
    /// The leaf node of block `seq` holding `data`.
    pub(crate) fn leaf(seq: u64, data: &[u8]) -> Self {
        Node {
            index: 2 * seq,
            size: data.len() as u64,
            hash: leaf_hash(data),
        }
    }

    /// The parent of two sibling nodes (in either order). The caller guarantees they are
    /// siblings; the size is checked (a sum past u64 is `None`: only corrupted or hostile
    /// input gets there).
    pub(crate) fn parent(a: &Node, b: &Node) -> Option<Self> {
        let (left, right) = if a.index <= b.index { (a, b) } else { (b, a) };
        let size = left.size.checked_add(right.size)?;
        Some(Node {
            index: flat_tree::parent(left.index),
            size,
            hash: parent_hash(left, right),
        })
    }

    /// This node in the wire shape (`hypercore_schema::Node`).
    pub(crate) fn to_wire(self) -> hypercore_schema::Node {
        hypercore_schema::Node::new(self.index, self.hash.to_vec(), self.size)
    }

    /// A node received on the wire; `None` if its hash is not 32 bytes.
    pub(crate) fn from_wire(node: &hypercore_schema::Node) -> Option<Self> {
        Some(Node {
            index: node.index,
            size: node.length,
            hash: node.hash.as_slice().try_into().ok()?,
        })
    }
}

/// Hash of a block (a leaf of the tree).
pub(crate) fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Blake2b::<U32>::new();
    h.update([0u8]);
    h.update((data.len() as u64).to_le_bytes());
    h.update(data);
    h.finalize().into()
}

/// Hash of a parent from its two children, `left` having the lower index.
pub(crate) fn parent_hash(left: &Node, right: &Node) -> Hash {
    let mut h = Blake2b::<U32>::new();
    h.update([1u8]);
    h.update(left.size.wrapping_add(right.size).to_le_bytes());
    h.update(left.hash);
    h.update(right.hash);
    h.finalize().into()
}

/// Hash of the set of roots (sorted by index): what a tree signature covers.
pub(crate) fn tree_hash(roots: &[Node]) -> Hash {
    let mut h = Blake2b::<U32>::new();
    h.update([2u8]);
    for root in roots {
        h.update(root.hash);
        h.update(root.index.to_le_bytes());
        h.update(root.size.to_le_bytes());
    }
    h.finalize().into()
}

/// The message a hypercore 10 (legacy, "compat") signature covers: namespace, tree hash,
/// length and fork (u64 little-endian), 80 bytes (`caps.treeSignableCompat`).
pub(crate) fn signable(tree_hash: &Hash, length: u64, fork: u64) -> [u8; 80] {
    let mut msg = [0u8; 80];
    msg[..32].copy_from_slice(&TREE_NAMESPACE);
    msg[32..64].copy_from_slice(tree_hash);
    msg[64..72].copy_from_slice(&length.to_le_bytes());
    msg[72..].copy_from_slice(&fork.to_le_bytes());
    msg
}

/// The message a manifest core's signer signs (`caps.treeSignable`): namespace, the
/// signer's context (the manifest hash, i.e. the core key, from manifest version 1; the
/// signer's namespace in version 0), tree hash, length and fork (u64 little-endian),
/// 112 bytes.
pub(crate) fn tree_signable(
    context: &[u8; 32],
    tree_hash: &Hash,
    length: u64,
    fork: u64,
) -> [u8; 112] {
    let mut msg = [0u8; 112];
    msg[..32].copy_from_slice(&TREE_NAMESPACE);
    msg[32..64].copy_from_slice(context);
    msg[64..96].copy_from_slice(tree_hash);
    msg[96..104].copy_from_slice(&length.to_le_bytes());
    msg[104..].copy_from_slice(&fork.to_le_bytes());
    msg
}

/// The flat-tree indexes of the roots of a tree of `length` blocks, left to right.
pub(crate) fn root_indexes(length: u64) -> Vec<u64> {
    let mut roots = Vec::new();
    if length > 0 {
        flat_tree::full_roots(2 * length, &mut roots);
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypercore_schema::Hash as SchemaHash;

    /// The namespace is blake2b-256 over blake2b-256("hypercore") followed by the byte 0,
    /// as JS hypercore's caps.js computes it; check the constant instead of trusting it.
    #[test]
    fn tree_namespace_matches_its_derivation() {
        let ns = Blake2b::<U32>::digest(b"hypercore");
        let mut h = Blake2b::<U32>::new();
        h.update(ns);
        h.update([0u8]);
        assert_eq!(h.finalize().as_slice(), TREE_NAMESPACE);
    }

    /// Our allocation-free hashes equal `hypercore_schema`'s (the wire crate's) ones.
    #[test]
    fn hashes_match_the_wire_crate() {
        let a = b"left block".as_slice();
        let b = b"the right block".as_slice();
        assert_eq!(leaf_hash(a).as_slice(), SchemaHash::data(a).as_bytes());
        let (la, lb) = (Node::leaf(0, a), Node::leaf(1, b));
        let parent = Node::parent(&lb, &la).unwrap();
        assert_eq!(parent.index, 1);
        assert_eq!(
            parent.hash.as_slice(),
            SchemaHash::parent(&la.to_wire(), &lb.to_wire()).as_bytes()
        );
        let third = Node { index: 4, ..la };
        assert_eq!(
            tree_hash(&[parent, third]).as_slice(),
            SchemaHash::tree(&[parent.to_wire(), third.to_wire()]).as_bytes()
        );
        assert_eq!(root_indexes(3), vec![1, 4]);
        assert!(root_indexes(0).is_empty());
    }
}
