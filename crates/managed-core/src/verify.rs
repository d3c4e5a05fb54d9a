//! Verification of stored blocks against the log's signed merkle tree.
//!
//! The `hypercore` crate's `get` returns whatever the data file holds. Here a block counts
//! as good only if its leaf hash, combined with the sibling hashes on its path, gives a
//! root whose set of roots (with the tree length and fork) carries a valid ed25519
//! signature by the log's public key. The proof material comes from the crate's public
//! `create_proof(block i, upgrade 0..length)`. Verified roots are cached per length, so the
//! signature itself is checked once per length, not once per read.

use std::sync::Mutex;

use hypercore::{Signature, VerifyingKey};
use hypercore_schema::{Hash, Node, Proof};

/// hypercore's tree-signature namespace (`caps.TREE` in JS hypercore 10:
/// `crypto.namespace('hypercore', ...)[0]`), the first 32 bytes of every signed message.
const TREE_NAMESPACE: [u8; 32] = [
    0x9F, 0xAC, 0x70, 0xB5, 0x0C, 0xA1, 0x4E, 0xFC, 0x4E, 0x91, 0xC8, 0x33, 0xB2, 0x04, 0xE7, 0x5B,
    0x8B, 0x5A, 0xAD, 0x8B, 0x58, 0x81, 0xBF, 0xC0, 0xAD, 0xB5, 0xEF, 0x38, 0xA3, 0x27, 0x5B, 0x9C,
];

/// The message hypercore signs: namespace, tree hash, length and fork (u64 little-endian).
pub(crate) fn signable(tree_hash: &[u8], length: u64, fork: u64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(32 + tree_hash.len() + 16);
    msg.extend_from_slice(&TREE_NAMESPACE);
    msg.extend_from_slice(tree_hash);
    msg.extend_from_slice(&length.to_le_bytes());
    msg.extend_from_slice(&fork.to_le_bytes());
    msg
}

/// Roots whose signature has been checked, for one (length, fork).
#[derive(Debug, Default)]
pub(crate) struct RootCache {
    verified: Mutex<Option<Verified>>,
}

#[derive(Debug, Clone)]
struct Verified {
    length: u64,
    fork: u64,
    roots: Vec<(u64, u64, Vec<u8>)>,
}

fn key(node: &Node) -> (u64, u64, Vec<u8>) {
    (node.index, node.length, node.hash.clone())
}

impl RootCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Verified>> {
        // A panic while holding this lock cannot leave it half-written (it only ever
        // stores a complete value), so a poisoned lock is still safe to use.
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_verified_root(&self, length: u64, fork: u64, root: &Node) -> bool {
        match &*self.lock() {
            Some(v) if v.length == length && v.fork == fork => {
                v.roots.iter().any(|r| *r == key(root))
            }
            _ => false,
        }
    }

    fn store(&self, length: u64, fork: u64, roots: &[Node]) {
        *self.lock() = Some(Verified {
            length,
            fork,
            roots: roots.iter().map(key).collect(),
        });
    }
}

/// Checks that `roots` (sorted by index) are exactly the roots of a tree of `length`
/// blocks and that `signature` signs them for `length` and `fork`.
pub(crate) fn check_roots(
    public_key: &VerifyingKey,
    roots: &[Node],
    length: u64,
    fork: u64,
    signature: &[u8],
) -> Result<(), String> {
    let mut expected = Vec::new();
    flat_tree::full_roots(2 * length, &mut expected);
    if expected.len() != roots.len() || expected.iter().zip(roots).any(|(e, r)| *e != r.index) {
        return Err(format!(
            "roots {:?} are not the roots {expected:?} of a tree of length {length}",
            roots.iter().map(|r| r.index).collect::<Vec<_>>()
        ));
    }
    let signature = Signature::from_slice(signature)
        .map_err(|_| format!("signature of {} bytes is malformed", signature.len()))?;
    let tree_hash = Hash::tree(roots);
    public_key
        .verify_strict(&signable(tree_hash.as_bytes(), length, fork), &signature)
        .map_err(|_| format!("tree signature for length {length} does not verify"))
}

/// Verifies that the block in `proof` is block `seq` of a tree of `length` blocks signed
/// by `public_key`. Returns the block value on success and a reason otherwise.
pub(crate) fn check_block(
    cache: &RootCache,
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
    // Walk from the leaf up, combining with the sibling hashes the proof carries.
    let mut node = Node::new(
        2 * seq,
        Hash::data(&block.value).as_bytes().to_vec(),
        block.value.len() as u64,
    );
    for sibling in &block.nodes {
        if sibling.index != flat_tree::sibling(node.index) {
            return Err(format!(
                "node {} is not the sibling of node {}",
                sibling.index, node.index
            ));
        }
        let parent = flat_tree::parent(node.index);
        let hash = Hash::parent(&node, sibling);
        node = Node::new(
            parent,
            hash.as_bytes().to_vec(),
            node.length + sibling.length,
        );
    }
    if cache.is_verified_root(length, fork, &node) {
        return Ok(block.value);
    }
    let mut roots = upgrade.nodes;
    roots.push(node);
    roots.sort_by_key(|n| n.index);
    check_roots(public_key, &roots, length, fork, &upgrade.signature)?;
    cache.store(length, fork, &roots);
    Ok(block.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The namespace is blake2b-256 over blake2b-256("hypercore") followed by the byte 0,
    /// as JS hypercore's caps.js computes it; check the constant instead of trusting it.
    #[test]
    fn tree_namespace_matches_its_derivation() {
        use blake2::{Blake2b, Digest, digest::consts::U32};
        let ns = Blake2b::<U32>::digest(b"hypercore");
        let mut h = Blake2b::<U32>::new();
        h.update(ns);
        h.update([0u8]);
        assert_eq!(h.finalize().as_slice(), TREE_NAMESPACE);
    }
}
