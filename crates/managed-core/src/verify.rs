//! Verification of stored blocks against the log's signed merkle tree.
//!
//! The `hypercore` crate's `get` returns whatever the data file holds. Here a block counts
//! as good only if its leaf hash, combined with the sibling hashes on its path, reaches a
//! node already known to be good, or a root whose set of roots (with the tree length and
//! fork) carries a valid ed25519 signature by the log's public key.
//!
//! Known-good nodes are kept in [`Verified`]: every node of a checked path, its siblings,
//! and the signed roots. In an append-only tree (fork unchanged) a full subtree's hash
//! never changes, so these stay valid across appends; a change of fork clears them. The
//! proof material comes from the crate's public `create_proof(block i, upgrade 0..length)`.
//!
//! Hashes are hypercore 10's (`hypercore-crypto`): blake2b-256 over a type byte (leaf 0,
//! parent 1, root 2) and little-endian u64 sizes, computed here without allocating.

use std::collections::HashMap;
use std::sync::Mutex;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest as _};
use hypercore::{Signature, VerifyingKey};
use hypercore_schema::{Node, Proof};

/// A blake2b-256 hash.
pub(crate) type Hash = [u8; 32];

/// hypercore's tree-signature namespace (`caps.TREE` in JS hypercore 10:
/// `crypto.namespace('hypercore', ...)[0]`), the first 32 bytes of every signed message.
const TREE_NAMESPACE: [u8; 32] = [
    0x9F, 0xAC, 0x70, 0xB5, 0x0C, 0xA1, 0x4E, 0xFC, 0x4E, 0x91, 0xC8, 0x33, 0xB2, 0x04, 0xE7, 0x5B,
    0x8B, 0x5A, 0xAD, 0x8B, 0x58, 0x81, 0xBF, 0xC0, 0xAD, 0xB5, 0xEF, 0x38, 0xA3, 0x27, 0x5B, 0x9C,
];

/// Known-good nodes kept per log before the map is reset (about 64 bytes each).
const MAX_KNOWN_NODES: usize = 1 << 18;

/// Hash of a block (a leaf of the tree).
pub(crate) fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Blake2b::<U32>::new();
    h.update([0u8]);
    h.update((data.len() as u64).to_le_bytes());
    h.update(data);
    h.finalize().into()
}

/// Hash of a parent from its two children, `left` having the lower index.
pub(crate) fn parent_hash(left: &Known, right: &Known) -> Hash {
    let mut h = Blake2b::<U32>::new();
    h.update([1u8]);
    h.update((left.len + right.len).to_le_bytes());
    h.update(left.hash);
    h.update(right.hash);
    h.finalize().into()
}

/// Hash of the set of roots (sorted by index): what the signature covers.
fn tree_hash(roots: &[(u64, Known)]) -> Hash {
    let mut h = Blake2b::<U32>::new();
    h.update([2u8]);
    for (index, root) in roots {
        h.update(root.hash);
        h.update(index.to_le_bytes());
        h.update(root.len.to_le_bytes());
    }
    h.finalize().into()
}

/// The message hypercore signs: namespace, tree hash, length and fork (u64 little-endian).
fn signable(tree_hash: &Hash, length: u64, fork: u64) -> [u8; 80] {
    let mut msg = [0u8; 80];
    msg[..32].copy_from_slice(&TREE_NAMESPACE);
    msg[32..64].copy_from_slice(tree_hash);
    msg[64..72].copy_from_slice(&length.to_le_bytes());
    msg[72..].copy_from_slice(&fork.to_le_bytes());
    msg
}

/// A node with its flat-tree index.
pub(crate) type Indexed = (u64, Known);

/// Builds a complete subtree bottom-up from its leaves (a power-of-two count, in order):
/// its root and every node of it.
pub(crate) fn subtree(leaves: &[Indexed]) -> (Option<Indexed>, Vec<Indexed>) {
    let mut all = leaves.to_vec();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| {
                let (l, r) = (pair[0].1, pair[1].1);
                (
                    flat_tree::parent(pair[0].0),
                    Known {
                        len: l.len + r.len,
                        hash: parent_hash(&l, &r),
                    },
                )
            })
            .collect();
        all.extend_from_slice(&level);
    }
    (level.first().copied(), all)
}

pub(crate) fn subtree_root(leaves: &[Indexed]) -> Option<Indexed> {
    if leaves.is_empty() {
        return None;
    }
    subtree(leaves).0
}

/// A node's byte length and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    pub(crate) len: u64,
    pub(crate) hash: Hash,
}

fn from_node(node: &Node) -> Result<(u64, Known), String> {
    let hash: Hash = node
        .hash
        .as_slice()
        .try_into()
        .map_err(|_| format!("node {} has a {}-byte hash", node.index, node.hash.len()))?;
    Ok((
        node.index,
        Known {
            len: node.length,
            hash,
        },
    ))
}

#[derive(Debug, Default)]
struct State {
    fork: u64,
    known: HashMap<u64, Known>,
    /// Byte offset in the data file of the first block under a known node, where known.
    offsets: HashMap<u64, u64>,
}

/// Nodes of one log's tree known to lead to a signed root.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    state: Mutex<State>,
}

impl Verified {
    fn lock(&self, fork: u64) -> std::sync::MutexGuard<'_, State> {
        // Only complete values are ever stored under this lock, so a poisoned lock is
        // still consistent.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.fork != fork {
            state.known.clear();
            state.offsets.clear();
            state.fork = fork;
        }
        state
    }

    fn remember(
        &self,
        fork: u64,
        nodes: impl IntoIterator<Item = (u64, Known)>,
        offsets: impl IntoIterator<Item = (u64, u64)>,
    ) {
        let mut state = self.lock(fork);
        if state.known.len() >= MAX_KNOWN_NODES {
            state.known.clear();
            state.offsets.clear();
        }
        state.known.extend(nodes);
        state.offsets.extend(offsets);
    }

    /// Where block `seq` starts in the data file, if known.
    pub(crate) fn offset(&self, fork: u64, index: u64) -> Option<u64> {
        self.lock(fork).offsets.get(&index).copied()
    }

    /// A known-good node, if any.
    pub(crate) fn get(&self, fork: u64, index: u64) -> Option<Known> {
        self.lock(fork).known.get(&index).copied()
    }

    /// The known-good leaf of block `seq` and its data-file offset, if known.
    pub(crate) fn leaf(&self, fork: u64, seq: u64) -> Option<(Known, Option<u64>)> {
        let state = self.lock(fork);
        let known = state.known.get(&(2 * seq)).copied()?;
        Some((known, state.offsets.get(&(2 * seq)).copied()))
    }

    /// Records the leaves and inner nodes of a subtree whose root is known to be good,
    /// with the data-file offsets of the blocks under them where known.
    pub(crate) fn remember_subtree(
        &self,
        fork: u64,
        nodes: Vec<(u64, Known)>,
        offsets: Vec<(u64, u64)>,
    ) {
        self.remember(fork, nodes, offsets);
    }

    /// Verifies the block in `proof` as block `seq` of a tree of `length` blocks signed by
    /// `public_key`: walks from the leaf up until a known-good node or a root, checking
    /// the roots' signature if needed. Returns the block value, or why it is not good.
    pub(crate) fn check_proof(
        &self,
        public_key: &VerifyingKey,
        proof: Proof,
        seq: u64,
        length: u64,
    ) -> Result<Vec<u8>, String> {
        let fork = proof.fork;
        let (Some(block), Some(upgrade)) = (proof.block, proof.upgrade) else {
            return Err("proof lacks the block or the signed roots".into());
        };
        if block.index != seq {
            return Err(format!("proof is for block {}, not {seq}", block.index));
        }
        if upgrade.start != 0 || upgrade.length != length {
            return Err(format!(
                "proof covers [{}, {}), not the whole log of length {length}",
                upgrade.start,
                upgrade.start + upgrade.length
            ));
        }
        let mut index = 2 * seq;
        let mut node = Known {
            len: block.value.len() as u64,
            hash: leaf_hash(&block.value),
        };
        // path[k] is the node at height k above the block, siblings[k] its sibling.
        let mut path = Vec::with_capacity(block.nodes.len() + 1);
        let mut siblings_seen = Vec::with_capacity(block.nodes.len());
        let mut siblings = block.nodes.iter();
        let top_offset = loop {
            if let Some(known) = self.get(fork, index) {
                if known != node {
                    return Err(format!("node {index} does not match the verified tree"));
                }
                break self.offset(fork, index);
            }
            path.push((index, node));
            let Some(sibling) = siblings.next() else {
                // `node` is the root above the block: check the signature over all roots.
                let mut roots = Vec::with_capacity(upgrade.nodes.len() + 1);
                for root in &upgrade.nodes {
                    roots.push(from_node(root)?);
                }
                roots.push((index, node));
                roots.sort_by_key(|(i, _)| *i);
                check_roots(public_key, &roots, length, fork, &upgrade.signature)?;
                let mut offset = 0;
                let mut root_offsets = Vec::with_capacity(roots.len());
                for (i, root) in &roots {
                    root_offsets.push((*i, offset));
                    offset += root.len;
                }
                let top = root_offsets
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, o)| *o);
                self.remember(fork, roots, root_offsets);
                path.pop();
                break top;
            };
            let (sibling_index, sibling) = from_node(sibling)?;
            if sibling_index != flat_tree::sibling(index) {
                return Err(format!(
                    "node {sibling_index} is not the sibling of node {index}"
                ));
            }
            siblings_seen.push((sibling_index, sibling));
            node = Known {
                hash: if index < sibling_index {
                    parent_hash(&node, &sibling)
                } else {
                    parent_hash(&sibling, &node)
                },
                len: node.len + sibling.len,
            };
            index = flat_tree::parent(index);
        };
        // Everything below the good top node is good too; offsets flow down from it.
        let mut offsets = Vec::new();
        if let Some(mut parent_offset) = top_offset {
            for ((i, n), (si, sn)) in path.iter().zip(&siblings_seen).rev() {
                let (mine, theirs) = if i < si {
                    (parent_offset, parent_offset + n.len)
                } else {
                    (parent_offset + sn.len, parent_offset)
                };
                offsets.push((*i, mine));
                offsets.push((*si, theirs));
                parent_offset = mine;
            }
        }
        self.remember(fork, path.into_iter().chain(siblings_seen), offsets);
        Ok(block.value)
    }

    /// Checks a signed set of roots (from an upgrade-only proof) and remembers them.
    pub(crate) fn check_signed_roots(
        &self,
        public_key: &VerifyingKey,
        nodes: &[Node],
        length: u64,
        fork: u64,
        signature: &[u8],
    ) -> Result<u64, String> {
        let roots = nodes.iter().map(from_node).collect::<Result<Vec<_>, _>>()?;
        check_roots(public_key, &roots, length, fork, signature)?;
        let mut bytes = 0;
        let mut offsets = Vec::with_capacity(roots.len());
        for (i, root) in &roots {
            offsets.push((*i, bytes));
            bytes += root.len;
        }
        self.remember(fork, roots, offsets);
        Ok(bytes)
    }
}

/// Checks that `roots` (sorted by index) are exactly the roots of a tree of `length`
/// blocks and that `signature` signs them for `length` and `fork`.
fn check_roots(
    public_key: &VerifyingKey,
    roots: &[(u64, Known)],
    length: u64,
    fork: u64,
    signature: &[u8],
) -> Result<(), String> {
    let mut expected = Vec::new();
    flat_tree::full_roots(2 * length, &mut expected);
    if expected.len() != roots.len() || expected.iter().zip(roots).any(|(e, (i, _))| e != i) {
        return Err(format!(
            "roots {:?} are not the roots {expected:?} of a tree of length {length}",
            roots.iter().map(|(i, _)| *i).collect::<Vec<_>>()
        ));
    }
    let signature = Signature::from_slice(signature)
        .map_err(|_| format!("signature of {} bytes is malformed", signature.len()))?;
    public_key
        .verify_strict(&signable(&tree_hash(roots), length, fork), &signature)
        .map_err(|_| format!("tree signature for length {length} does not verify"))
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

    /// Our allocation-free hashes equal the ones the storage engine writes.
    #[test]
    fn hashes_match_the_engine() {
        let a = b"left block".as_slice();
        let b = b"the right block".as_slice();
        assert_eq!(leaf_hash(a).as_slice(), SchemaHash::data(a).as_bytes());
        let la = Node::new(0, SchemaHash::data(a).as_bytes().to_vec(), a.len() as u64);
        let lb = Node::new(2, SchemaHash::data(b).as_bytes().to_vec(), b.len() as u64);
        let ka = Known {
            len: a.len() as u64,
            hash: leaf_hash(a),
        };
        let kb = Known {
            len: b.len() as u64,
            hash: leaf_hash(b),
        };
        assert_eq!(
            parent_hash(&ka, &kb).as_slice(),
            SchemaHash::parent(&la, &lb).as_bytes()
        );
        let parent = Node::new(
            1,
            SchemaHash::parent(&la, &lb).as_bytes().to_vec(),
            la.length + lb.length,
        );
        let kp = Known {
            len: parent.length,
            hash: parent_hash(&ka, &kb),
        };
        assert_eq!(
            tree_hash(&[(1, kp), (4, ka)]).as_slice(),
            SchemaHash::tree(&[parent, Node::new(4, la.hash.clone(), la.length)]).as_bytes()
        );
    }
}
