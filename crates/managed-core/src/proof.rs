//! Merkle proofs of hypercore 10: creating them for peers and verifying what peers send.
//!
//! Owns: the proof shapes of the replication protocol exactly as JS hypercore 10.31.12
//! builds and checks them (`lib/merkle-tree.js`): a *block* proof (a block's value and
//! the siblings up to a node the requester has, or up to a root of the upgrade), a
//! *hash* proof (the same for any tree node, its own hash first), a *seek* proof (the
//! node where a byte offset falls, and its siblings), and an *upgrade* proof (the nodes
//! that grow the requester's roots from `start` to `start + length`, plus the
//! *additional nodes* that grow them further to our whole length, because the only
//! signature we hold is the one over our whole tree). [`create_proof`] mirrors
//! `MerkleTree.proof`, [`verify_proof`] mirrors `MerkleTree.verify` plus the signature
//! check of `Core.verify`, [`missing_nodes`] mirrors `MerkleTree.missingNodes`.
//!
//! Does not: read or write storage other than through [`NodeSource`] (nodes are only
//! read), write anything (verification returns what the caller should store), read block
//! values (a created block proof has an empty value that the caller fills from the data
//! file). A proof or request for another fork is [`ProofError::ForkMismatch`] here;
//! following a higher fork is [`reorg`]'s (fork proofs and the search for the common
//! prefix).
//!
//! Longer than the house ~800 lines (about 1,100 without its tests): creating and
//! verifying proofs share the flat-tree walks and the node-list rules that mirror
//! `merkle-tree.js` line by line, and keeping them side by side is how they are checked
//! against each other; following forks is in `proof/reorg.rs`.
//!
//! Every number from a peer is bounded before use: lengths to [`MAX_LENGTH`] blocks,
//! tree indexes to below `2 * MAX_LENGTH`, node lists to [`MAX_PROOF_NODES`] entries,
//! sizes are added with checked arithmetic. No input panics.

use std::io;

use flat_tree::Iterator as FlatIterator;
use hypercore_schema::{
    DataBlock, DataHash, DataSeek, DataUpgrade, Proof, RequestBlock, RequestSeek, RequestUpgrade,
};

use crate::crypto::{Node, root_indexes};
use crate::verifier::{Verifier, VerifyError};

mod reorg;
pub(crate) use reorg::verify_reorg;
pub use reorg::{ForkWant, Reorg};

/// The largest log length (in blocks) a proof may describe: 2^52, below JS's safe
/// integers (2^53), so every tree index of such a log fits below `2^53`.
pub(crate) const MAX_LENGTH: u64 = 1 << 52;

/// Exclusive bound of the tree indexes a proof may name (`2 * MAX_LENGTH`).
const MAX_INDEX: u64 = 2 * MAX_LENGTH;

/// The most nodes one list of a proof may hold. A tree of [`MAX_LENGTH`] blocks is 53
/// levels deep; a block or seek path has one node per level, an upgrade at most one per
/// level for the connecting path plus one per root. Longer lists are refused before any
/// work.
pub(crate) const MAX_PROOF_NODES: usize = 2 * 64 + 8;

/// The most levels a block/hash request may ask to be proven (`RequestBlock::nodes`).
const MAX_REQUEST_NODES: u64 = 64;

/// Nodes of the local tree (stored on disk or still pending in memory), by flat-tree index.
pub(crate) trait NodeSource {
    /// The node at flat-tree `index`, `None` if we do not have it.
    fn node(&self, index: u64) -> io::Result<Option<Node>>;
}

/// The local tree's signed state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeState<'a> {
    /// Fork id (always 0 for our logs).
    pub fork: u64,
    /// Number of blocks.
    pub length: u64,
    /// The roots of a tree of `length` blocks, left to right.
    pub roots: &'a [Node],
    /// The signature over `roots`, `length` and `fork` (empty for an empty log).
    pub signature: &'a [u8],
}

/// What a peer asks us to prove (the proof part of a wire `Request`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProofRequest {
    /// The fork the requester believes we are on.
    pub fork: u64,
    /// A block and how many levels above it the requester is missing.
    pub block: Option<RequestBlock>,
    /// A tree node (by flat-tree index) and how many levels above it are missing.
    /// Ignored when `block` is set, as in JS.
    pub hash: Option<RequestBlock>,
    /// The node where a byte offset falls.
    pub seek: Option<RequestSeek>,
    /// The requester's per-block padding for `seek` (a wire `Request.seek.padding`): 8
    /// from a reader of an encrypted log, whose byte offsets leave out each block's
    /// 8-byte padding (JS `getUnpaddedSize`); 0 otherwise.
    pub padding: u64,
    /// Grow the requester's tree from `start` (its length) by at least `length` blocks.
    pub upgrade: Option<RequestUpgrade>,
}

/// A signed tree proven by an upgrade proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedTree {
    /// Number of blocks.
    pub length: u64,
    /// Fork id.
    pub fork: u64,
    /// Payload bytes of all blocks (sum of the root sizes).
    pub byte_length: u64,
    /// The roots, left to right.
    pub roots: Vec<Node>,
    /// The signature over the roots, length and fork, checked by the [`Verifier`].
    pub signature: Vec<u8>,
}

/// What a verified proof proved. Nothing has been stored; the caller stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VerifiedProof {
    /// The new signed tree when the proof upgrades the local one.
    pub upgrade: Option<SignedTree>,
    /// Nodes the proof proved that the caller should store (tree file), including new
    /// roots; each index once, in the order JS's batch collects them.
    pub nodes: Vec<Node>,
    /// The proven block (index, value): its leaf hash is part of the verified tree.
    pub block: Option<(u64, Vec<u8>)>,
}

/// Why a proof could not be created or verified.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProofError {
    /// The peer sent a bad shape: a wrong or missing sibling, an extra node, a hash not
    /// 32 bytes, roots that are not the roots of the claimed length, overflowing sizes,
    /// numbers out of range, or a request that cannot be answered as asked.
    #[error("malformed proof or request: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// The proof's hashes lead to a node we have, with another hash (or size).
    #[error("proof does not match our tree at node {index}")]
    ChecksumMismatch {
        /// Flat-tree index of the node that differs.
        index: u64,
    },
    /// The upgrade's signature does not sign the proven tree.
    #[error("invalid signature for the tree of length {length}")]
    SignatureInvalid {
        /// Length of the tree the proof claimed.
        length: u64,
    },
    /// The upgrade is signed in a form only the core's manifest can check, and the
    /// manifest is not known yet (a replica opened by its core key).
    #[error("the core's manifest is not known yet: the upgrade's signature cannot be checked")]
    ManifestMissing,
    /// The proof or request is for another fork than ours.
    #[error("fork mismatch: ours {ours}, theirs {theirs}")]
    ForkMismatch {
        /// Our fork.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// We cannot serve the request: beyond our length, or a node we do not have.
    #[error("cannot create the proof: {reason}")]
    NotAvailable {
        /// What is missing.
        reason: String,
    },
    /// An upgrade that does not apply to our current length any more (the peer made it
    /// for an older state of ours); nothing is wrong with the peer.
    #[error("stale upgrade: {reason}")]
    Stale {
        /// Why it does not apply.
        reason: String,
    },
    /// Reading a node failed, or our own tree state is inconsistent.
    #[error("tree storage: {0}")]
    Storage(#[from] io::Error),
}

fn malformed(reason: impl Into<String>) -> ProofError {
    ProofError::Malformed {
        reason: reason.into(),
    }
}

fn not_available(reason: impl Into<String>) -> ProofError {
    ProofError::NotAvailable {
        reason: reason.into(),
    }
}

fn inconsistent(reason: impl Into<String>) -> ProofError {
    ProofError::Storage(io::Error::new(io::ErrorKind::InvalidData, reason.into()))
}

/// Whether the subtree under `node` contains flat-tree index `index` (JS
/// `iterator.contains`). Both must be below [`MAX_INDEX`] (or close to it).
fn contains(node: u64, index: u64) -> bool {
    let (left, right) = flat_tree::spans(node);
    left <= index && index <= right
}

/// Checks our own state: a length in range and the roots of that length.
fn check_state(state: &TreeState<'_>) -> Result<(), ProofError> {
    if state.length > MAX_LENGTH {
        return Err(inconsistent("tree length out of range"));
    }
    let expected = root_indexes(state.length);
    if expected.len() != state.roots.len()
        || expected.iter().zip(state.roots).any(|(i, r)| *i != r.index)
    {
        return Err(inconsistent(format!(
            "roots are not the roots of length {}",
            state.length
        )));
    }
    Ok(())
}

/// A node of our tree: from the roots of `state`, else from `tree`.
fn local_node(
    tree: &impl NodeSource,
    state: &TreeState<'_>,
    index: u64,
) -> Result<Option<Node>, ProofError> {
    if let Some(root) = state.roots.iter().find(|r| r.index == index) {
        return Ok(Some(*root));
    }
    Ok(tree.node(index)?)
}

// ---------------------------------------------------------------------------------
// Creating proofs (JS generateProof and its helpers)
// ---------------------------------------------------------------------------------

/// The block or hash of a request, normalised (JS `normalizeIndexed`).
#[derive(Debug, Clone, Copy)]
struct Indexed {
    /// Whether the value is sent (block) or the node itself (hash).
    value: bool,
    /// Flat-tree index of the node.
    index: u64,
    /// Levels the requester is missing above it.
    nodes: u64,
    /// The last block under the node.
    last_index: u64,
}

/// The node indexes a proof will carry, per list (JS's `p`).
#[derive(Debug, Default)]
struct Parts {
    node: Option<Vec<u64>>,
    seek: Option<Vec<u64>>,
    upgrade: Option<Vec<u64>>,
    additional: Option<Vec<u64>>,
}

/// Reads our nodes while creating a proof.
struct Reader<'a, T> {
    tree: &'a T,
    state: &'a TreeState<'a>,
    /// Bytes each block's stored size counts that the requester's byte offsets do not.
    padding: u64,
}

impl<T: NodeSource> Reader<'_, T> {
    /// A node that must exist (JS `tree.get(index)`).
    fn get(&self, index: u64) -> Result<Node, ProofError> {
        self.get_opt(index)?
            .ok_or_else(|| not_available(format!("we do not have node {index}")))
    }

    /// A node that may be missing (JS `tree.get(index, false)`).
    fn get_opt(&self, index: u64) -> Result<Option<Node>, ProofError> {
        if index >= 2 * self.state.length {
            return Ok(None);
        }
        local_node(self.tree, self.state, index)
    }

    /// The size of `node` as the requester counts bytes: its stored size less the
    /// padding of each block under it (JS `getUnpaddedSize`). A node smaller than its
    /// blocks' padding (blocks not written with it) cannot be sought.
    fn unpadded(&self, node: &Node) -> Result<u64, ProofError> {
        if self.padding == 0 {
            return Ok(node.size);
        }
        let (first, last) = flat_tree::spans(node.index);
        let leaves = (last - first) / 2 + 1;
        self.padding
            .checked_mul(leaves)
            .and_then(|pad| node.size.checked_sub(pad))
            .ok_or_else(|| {
                malformed(format!(
                    "node {} holds {} bytes, less than the padding of its {leaves} blocks",
                    node.index, node.size
                ))
            })
    }

    /// Byte offset of the first block under `index` (JS `getByteOffset`).
    fn byte_offset(&self, index: u64) -> Result<u64, ProofError> {
        let byte_length = sum_sizes(self.state.roots)?;
        if index == 2 * self.state.length {
            return Ok(byte_length);
        }
        let index = if index & 1 == 1 {
            flat_tree::left_span(index)
        } else {
            index
        };
        let mut head = 0u64;
        let mut offset = 0u64;
        for root in self.state.roots {
            head += 2 * ((root.index - head) + 1);
            if index >= head {
                offset = add_size(offset, root.size)?;
                continue;
            }
            let mut ite = FlatIterator::new(root.index);
            let mut steps = 0;
            while ite.index() != index {
                steps += 1;
                if steps > 64 || ite.factor() == 2 {
                    return Err(malformed(format!("no block at node {index}")));
                }
                if index < ite.index() {
                    ite.left_child();
                } else {
                    let left = self.get(ite.left_child())?;
                    offset = add_size(offset, left.size)?;
                    ite.sibling();
                }
            }
            return Ok(offset);
        }
        Err(malformed(format!("node {index} is beyond our tree")))
    }

    /// The node under `root` where `bytes` (relative to it) fall (JS `seekTrustedTree`).
    fn seek_trusted_tree(&self, root: u64, mut bytes: u64) -> Result<u64, ProofError> {
        if bytes == 0 {
            return Ok(root);
        }
        let mut ite = FlatIterator::new(root);
        while ite.index() & 1 == 1 {
            match self.get_opt(ite.left_child())? {
                Some(left) => {
                    let size = self.unpadded(&left)?;
                    if size == bytes {
                        return Ok(ite.index());
                    }
                    if size > bytes {
                        continue;
                    }
                    bytes -= size;
                    ite.sibling();
                }
                None => {
                    ite.parent();
                    return Ok(ite.index());
                }
            }
        }
        Ok(ite.index())
    }

    /// The node under `root` where absolute `bytes` fall, checking they do (JS
    /// `seekUntrustedTree`).
    fn seek_untrusted_tree(&self, root: u64, bytes: u64) -> Result<u64, ProofError> {
        // The padding of the blocks before the node (JS: `leftSpan(root) / 2` of them).
        let before = self
            .padding
            .checked_mul(flat_tree::left_span(root) / 2)
            .ok_or_else(|| malformed("seek padding overflows"))?;
        let offset = self
            .byte_offset(root)?
            .checked_sub(before)
            .ok_or_else(|| malformed("blocks smaller than the seek padding"))?;
        if offset > bytes {
            return Err(malformed("seek before the proven subtree"));
        }
        if offset == bytes {
            return Ok(root);
        }
        let bytes = bytes - offset;
        if self.unpadded(&self.get(root)?)? <= bytes {
            return Err(malformed("seek after the proven subtree"));
        }
        self.seek_trusted_tree(root, bytes)
    }

    /// The node where `bytes` fall in the tree of `head / 2` blocks, or `head` if beyond
    /// it (JS `seekFromHead`).
    fn seek_from_head(&self, head: u64, mut bytes: u64) -> Result<u64, ProofError> {
        for root in root_indexes(head / 2) {
            let size = self.unpadded(&self.get(root)?)?;
            if bytes == size {
                return Ok(root);
            }
            if bytes > size {
                bytes -= size;
                continue;
            }
            return self.seek_trusted_tree(root, bytes);
        }
        Ok(head)
    }
}

fn add_size(a: u64, b: u64) -> Result<u64, ProofError> {
    a.checked_add(b)
        .ok_or_else(|| malformed("byte sizes overflow"))
}

fn sum_sizes(nodes: &[Node]) -> Result<u64, ProofError> {
    nodes.iter().try_fold(0u64, |acc, n| add_size(acc, n.size))
}

/// Fails unless `ite` can still climb towards `root` (JS loops until it reaches it; a
/// root that is not an ancestor would never be reached).
fn below(ite: &FlatIterator, root: u64) -> Result<(), ProofError> {
    if flat_tree::depth(ite.index()) >= flat_tree::depth(root) {
        return Err(malformed(format!(
            "node {root} is not above node {}",
            ite.index()
        )));
    }
    Ok(())
}

/// The seek node and its siblings up to `root` (JS `seekProof`).
fn seek_proof(seek_root: u64, root: u64, p: &mut Parts) -> Result<(), ProofError> {
    let mut ite = FlatIterator::new(seek_root);
    let mut list = vec![ite.index()];
    while ite.index() != root {
        below(&ite, root)?;
        list.push(ite.sibling());
        ite.parent();
    }
    p.seek = Some(list);
    Ok(())
}

/// The block/hash node and its siblings up to `root`, with a seek proof in place of the
/// sibling that holds `seek_root` (JS `blockAndSeekProof`).
fn block_and_seek_proof(
    node: Option<Indexed>,
    seek: bool,
    seek_root: u64,
    root: u64,
    p: &mut Parts,
) -> Result<(), ProofError> {
    let Some(node) = node else {
        return seek_proof(seek_root, root, p);
    };
    let mut ite = FlatIterator::new(node.index);
    let mut list = Vec::new();
    if !node.value {
        list.push(ite.index());
    }
    while ite.index() != root {
        below(&ite, root)?;
        ite.sibling();
        if seek && ite.contains(seek_root) && ite.index() != seek_root {
            seek_proof(seek_root, ite.index(), p)?;
        } else {
            list.push(ite.index());
        }
        ite.parent();
    }
    p.node = Some(list);
    Ok(())
}

/// The nodes growing a tree of `from / 2` blocks to `to / 2` blocks (JS `upgradeProof`
/// when `block` is set, `additionalUpgradeProof` otherwise): for each root of `to`, the
/// root itself, or for the root that holds the requester's last block the siblings on
/// the way up from it. When `block` is set, the node or seek proof replaces the first
/// upgrade node that holds `sub_tree`.
fn upgrade_walk(
    block: Option<(Option<Indexed>, bool)>,
    from: u64,
    to: u64,
    sub_tree: u64,
    p: &mut Parts,
) -> Result<Vec<u64>, ProofError> {
    let mut out: Option<Vec<u64>> = if from == 0 { Some(Vec::new()) } else { None };
    let mut ite = FlatIterator::new(0);
    while ite.full_root(to) {
        // Mirrors JS's loop body; `continue` there is the end of this block here.
        'body: {
            // They already have this root.
            if ite.index() + ite.factor() / 2 < from {
                break 'body;
            }
            // Connect their last root to this one.
            if out.is_none() && from >= 2 && ite.contains(from - 2) {
                let list = out.get_or_insert_with(Vec::new);
                let root = ite.index();
                let target = from - 2;
                ite.seek(target);
                while ite.index() != root {
                    below(&ite, root)?;
                    ite.sibling();
                    if ite.index() > target {
                        match block {
                            Some((node, seek))
                                if p.node.is_none()
                                    && p.seek.is_none()
                                    && ite.contains(sub_tree) =>
                            {
                                block_and_seek_proof(node, seek, sub_tree, ite.index(), p)?;
                            }
                            _ => list.push(ite.index()),
                        }
                    }
                    ite.parent();
                }
                break 'body;
            }
            let list = out.get_or_insert_with(Vec::new);
            // The block/seek proof goes up to this root: no duplicate root.
            if let Some((node, seek)) = block
                && p.node.is_none()
                && p.seek.is_none()
                && ite.contains(sub_tree)
            {
                block_and_seek_proof(node, seek, sub_tree, ite.index(), p)?;
                break 'body;
            }
            list.push(ite.index());
        }
        ite.next_tree();
    }
    Ok(out.unwrap_or_default())
}

/// Climbs `nodes` levels from `index`, refusing to reach a node that holds `head` (JS
/// `nodesToRoot`).
fn nodes_to_root(index: u64, nodes: u64, head: u64) -> Result<u64, ProofError> {
    let mut ite = FlatIterator::new(index);
    for _ in 0..nodes {
        ite.parent();
        if ite.contains(head) {
            return Err(malformed("block nodes out of bounds"));
        }
    }
    Ok(ite.index())
}

/// The proof for a request (JS `MerkleTree.proof`), block value left empty (the caller
/// fills it from the data file). Differences from JS, all for requests JS would answer
/// with a useless or broken proof: an empty log answers a non-empty request with
/// [`ProofError::NotAvailable`] (JS: an empty proof), as does a block at or beyond our
/// length (JS: a block proof without nodes that its caller drops); a request for
/// another fork is [`ProofError::ForkMismatch`]; a block or hash that cannot be proven
/// within the requested upgrade is [`ProofError::Malformed`].
pub(crate) fn create_proof(
    tree: &impl NodeSource,
    state: &TreeState<'_>,
    req: &ProofRequest,
) -> Result<Proof, ProofError> {
    if req.fork != state.fork {
        return Err(ProofError::ForkMismatch {
            ours: state.fork,
            theirs: req.fork,
        });
    }
    check_state(state)?;
    let head = 2 * state.length;

    let node = if let Some(block) = &req.block {
        if block.index >= state.length {
            return Err(not_available(format!(
                "block {} is beyond our length {}",
                block.index, state.length
            )));
        }
        Some(Indexed {
            value: true,
            index: 2 * block.index,
            nodes: block.nodes,
            last_index: block.index,
        })
    } else if let Some(hash) = &req.hash {
        if hash.index >= head || flat_tree::right_span(hash.index) >= head {
            return Err(not_available(format!(
                "node {} is beyond our length {}",
                hash.index, state.length
            )));
        }
        Some(Indexed {
            value: false,
            index: hash.index,
            nodes: hash.nodes,
            last_index: flat_tree::right_span(hash.index) / 2,
        })
    } else {
        None
    };
    if node.is_some_and(|n| n.nodes > MAX_REQUEST_NODES) {
        return Err(malformed("too many block nodes requested"));
    }

    let mut proof = Proof {
        fork: state.fork,
        block: None,
        hash: None,
        seek: None,
        upgrade: None,
    };
    if head == 0 {
        if node.is_none() && req.seek.is_none() && req.upgrade.is_none() {
            return Ok(proof);
        }
        return Err(not_available("our log is empty"));
    }

    let (from, to) = match &req.upgrade {
        Some(up) => {
            if up.length == 0 {
                return Err(malformed("upgrade of length 0"));
            }
            let end = up
                .start
                .checked_add(up.length)
                .filter(|end| *end <= state.length)
                .ok_or_else(|| {
                    not_available(format!(
                        "upgrade to {}+{} is beyond our length {}",
                        up.start, up.length, state.length
                    ))
                })?;
            (2 * up.start, 2 * end)
        }
        None => (0, head),
    };
    if let (Some(_), Some(_), Some(n)) = (&req.seek, &req.upgrade, node)
        && n.index >= from
    {
        return Err(malformed(
            "cannot both seek and prove a block or hash when upgrading",
        ));
    }

    let reader = Reader {
        tree,
        state,
        padding: req.padding,
    };
    let seek = req.seek.as_ref().map(|s| s.bytes);
    let mut p = Parts::default();
    let mut sub_tree = head;
    match (node, &req.upgrade) {
        (Some(n), up) if up.as_ref().is_none_or(|u| n.last_index < u.start) => {
            sub_tree = nodes_to_root(n.index, n.nodes, to)?;
            let seek_root = match seek {
                Some(bytes) => reader.seek_untrusted_tree(sub_tree, bytes)?,
                None => head,
            };
            block_and_seek_proof(Some(n), seek.is_some(), seek_root, sub_tree, &mut p)?;
        }
        (n, Some(_)) if n.is_some() || seek.is_some() => {
            sub_tree = match (seek, n) {
                (Some(bytes), _) => reader.seek_from_head(to, bytes)?,
                (None, Some(n)) => n.index,
                (None, None) => head,
            };
        }
        _ => {}
    }
    if req.upgrade.is_some() {
        let nodes = upgrade_walk(Some((node, seek.is_some())), from, to, sub_tree, &mut p)?;
        p.upgrade = Some(nodes);
        if head > to {
            p.additional = Some(upgrade_walk(None, to, head, head, &mut p)?);
        }
    }

    let resolve = |list: &[u64]| -> Result<Vec<hypercore_schema::Node>, ProofError> {
        list.iter()
            .map(|i| reader.get(*i).map(Node::to_wire))
            .collect()
    };
    if let Some(block) = &req.block {
        let nodes = p
            .node
            .as_deref()
            .ok_or_else(|| malformed("the block cannot be proven within the upgrade"))?;
        proof.block = Some(DataBlock {
            index: block.index,
            value: Vec::new(),
            nodes: resolve(nodes)?,
        });
    } else if let Some(hash) = &req.hash {
        let nodes = p
            .node
            .as_deref()
            .ok_or_else(|| malformed("the node cannot be proven within the upgrade"))?;
        proof.hash = Some(DataHash {
            index: hash.index,
            nodes: resolve(nodes)?,
        });
    }
    if let (Some(bytes), Some(nodes)) = (seek, p.seek.as_deref()) {
        proof.seek = Some(DataSeek {
            bytes,
            nodes: resolve(nodes)?,
        });
    }
    if let Some(up) = &req.upgrade {
        proof.upgrade = Some(DataUpgrade {
            start: up.start,
            length: up.length,
            nodes: resolve(p.upgrade.as_deref().unwrap_or_default())?,
            additional_nodes: resolve(p.additional.as_deref().unwrap_or_default())?,
            signature: state.signature.to_vec(),
        });
    }
    Ok(proof)
}

/// The number of levels above node `index` (block `i` is node `2i`) that a tree of
/// `length` blocks is missing, up to the first node it has (JS
/// `MerkleTree.missingNodes`): the `nodes` field of a block request. 0 when the node is
/// beyond the tree.
pub(crate) fn missing_nodes(tree: &impl NodeSource, length: u64, index: u64) -> io::Result<u64> {
    if length > MAX_LENGTH || index >= MAX_INDEX {
        return Ok(0);
    }
    let head = 2 * length;
    if flat_tree::right_span(index) >= head {
        return Ok(0);
    }
    let mut count = 0;
    let mut current = index;
    while !contains(current, head) && tree.node(current)?.is_none() {
        count += 1;
        current = flat_tree::parent(current);
    }
    Ok(count)
}

// ---------------------------------------------------------------------------------
// Verifying proofs (JS verifyTree, verifyUpgrade, MerkleTree.verify, Core.verify)
// ---------------------------------------------------------------------------------

/// The nodes of one list of a proof, consumed in the order the tree needs them, with an
/// optional already-computed node that stands in for the one at its index (JS
/// `NodeQueue`).
struct Queue<'a> {
    nodes: &'a [Node],
    next: usize,
    extra: Option<Node>,
}

impl<'a> Queue<'a> {
    fn new(nodes: &'a [Node], extra: Option<Node>) -> Self {
        Queue {
            nodes,
            next: 0,
            extra,
        }
    }

    /// Nodes left, the extra one included.
    fn remaining(&self) -> usize {
        self.nodes.len() - self.next + usize::from(self.extra.is_some())
    }

    /// The next node, which must be at `index`.
    fn shift(&mut self, index: u64) -> Result<Node, ProofError> {
        if let Some(extra) = self.extra
            && extra.index == index
        {
            self.extra = None;
            return Ok(extra);
        }
        let Some(node) = self.nodes.get(self.next) else {
            return Err(malformed(format!("expected node {index}, got none")));
        };
        if node.index != index {
            return Err(malformed(format!(
                "expected node {index}, got node {}",
                node.index
            )));
        }
        self.next += 1;
        Ok(*node)
    }
}

/// The parent of `a` and its sibling `b`, refusing overflowing sizes and indexes out of
/// range.
fn parent_of(a: &Node, b: &Node) -> Result<Node, ProofError> {
    let parent = Node::parent(a, b).ok_or_else(|| malformed("node sizes overflow"))?;
    if parent.index >= MAX_INDEX {
        return Err(malformed("node index out of range"));
    }
    Ok(parent)
}

/// Hashes up from `first` with the siblings in `q` until it is empty; returns the top.
fn climb(mut root: Node, q: &mut Queue<'_>, out: &mut Vec<Node>) -> Result<Node, ProofError> {
    while q.remaining() > 0 {
        let sibling = q.shift(flat_tree::sibling(root.index))?;
        let parent = parent_of(&root, &sibling)?;
        out.push(sibling);
        out.push(parent);
        root = parent;
    }
    Ok(root)
}

/// Checks the block/hash and seek parts and returns the node they prove, not yet
/// trusted (JS `verifyTree`); every node it hashed goes to `out`.
fn verify_tree(
    block: Option<(u64, &[u8], &[Node])>,
    hash: Option<(u64, &[Node])>,
    seek: &[Node],
    out: &mut Vec<Node>,
) -> Result<Option<Node>, ProofError> {
    let untrusted = match (block, hash) {
        (Some((index, value, nodes)), _) => Some((2 * index, Some(value), nodes)),
        (None, Some((index, nodes))) => Some((index, None, nodes)),
        (None, None) => None,
    };
    let mut root = None;
    if let Some(first) = seek.first() {
        let mut q = Queue::new(seek, None);
        let node = q.shift(first.index)?;
        out.push(node);
        root = Some(climb(node, &mut q, out)?);
    }
    let Some((index, value, nodes)) = untrusted else {
        return Ok(root);
    };
    let mut q = Queue::new(nodes, root);
    let node = match value {
        Some(value) => Node::leaf(index / 2, value),
        None => q.shift(index)?,
    };
    out.push(node);
    climb(node, &mut q, out).map(Some)
}

/// Roots being grown: appending a node merges it with the roots it completes (JS
/// `MerkleTreeBatch.appendRoot`). Every appended and merged node goes to `out`.
struct Roots<'a> {
    roots: Vec<Node>,
    out: &'a mut Vec<Node>,
}

impl Roots<'_> {
    fn append(&mut self, node: Node) -> Result<(), ProofError> {
        self.out.push(node);
        let mut top = node;
        while let Some(previous) = self.roots.last() {
            if flat_tree::sibling(top.index) != previous.index {
                break;
            }
            let parent = parent_of(previous, &top)?;
            self.roots.pop();
            self.out.push(parent);
            top = parent;
        }
        self.roots.push(top);
        Ok(())
    }

    fn top(&self) -> Result<u64, ProofError> {
        self.roots
            .last()
            .map(|n| n.index)
            .ok_or_else(|| malformed("upgrade without roots"))
    }
}

/// Grows our roots by the upgrade's nodes and additional nodes (JS `verifyUpgrade`,
/// for an upgrade that starts at our length). `block_root` stands in for the upgrade
/// node at its index; returns the new roots and whether it was used.
fn verify_upgrade(
    upgrade: &DataUpgrade,
    nodes: &[Node],
    additional: &[Node],
    block_root: Option<Node>,
    local: &[Node],
    out: &mut Vec<Node>,
) -> Result<(Vec<Node>, bool), ProofError> {
    let end = upgrade.start + upgrade.length; // both checked <= MAX_LENGTH
    let mut q = Queue::new(nodes, block_root);
    let mut roots = Roots {
        roots: local.to_vec(),
        out,
    };
    let mut grow = !local.is_empty();
    let mut matched = 0;
    for target in root_indexes(end) {
        if local.get(matched).is_some_and(|r| r.index == target) {
            matched += 1;
            continue;
        }
        if grow {
            grow = false;
            if matched < local.len() {
                // Climb from our last root to this one, taking the right siblings.
                loop {
                    let top = roots.top()?;
                    if top == target {
                        break;
                    }
                    if flat_tree::depth(top) >= flat_tree::depth(target) {
                        return Err(malformed(format!("node {target} is not above {top}")));
                    }
                    let sibling = q.shift(flat_tree::sibling(top))?;
                    roots.append(sibling)?;
                }
                continue;
            }
        }
        roots.append(q.shift(target)?)?;
    }
    if q.next != q.nodes.len() {
        return Err(malformed("extra upgrade nodes"));
    }
    let used_block_root = q.extra.is_none();

    // Additional nodes: first the right siblings of the top root, then the roots to its
    // right, found by descending from the top root's right sibling.
    let mut extra = additional.iter();
    let mut pending = extra.next();
    let mut position = flat_tree::sibling(roots.top()?);
    while let Some(node) = pending.filter(|n| n.index == position) {
        roots.append(*node)?;
        position = flat_tree::sibling(roots.top()?);
        pending = extra.next();
    }
    while let Some(node) = pending {
        while node.index != position {
            if position & 1 == 0 {
                return Err(malformed(format!("unexpected node {}", node.index)));
            }
            position = flat_tree::left_child(position)
                .ok_or_else(|| malformed(format!("unexpected node {}", node.index)))?;
        }
        roots.append(*node)?;
        let top = roots.top()?;
        if top >= MAX_INDEX {
            return Err(malformed("node index out of range"));
        }
        position = flat_tree::sibling(top);
        pending = extra.next();
    }
    Ok((roots.roots, used_block_root))
}

/// The signed tree `roots` describe, once they are the roots of a length (within
/// [`MAX_LENGTH`]) and `signature` signs them with that length and `fork` (`what`
/// names them in the error). Upgrades and fork proofs alike.
fn signed_tree(
    roots: Vec<Node>,
    fork: u64,
    signature: &[u8],
    verifier: &Verifier,
    what: &str,
) -> Result<SignedTree, ProofError> {
    let last = roots
        .last()
        .ok_or_else(|| malformed(format!("{what}: none")))?;
    let length = flat_tree::right_span(last.index) / 2 + 1;
    if length > MAX_LENGTH
        || root_indexes(length)
            .iter()
            .ne(roots.iter().map(|r| &r.index))
    {
        return Err(malformed(format!(
            "{what} are not the roots of length {length}"
        )));
    }
    let byte_length = sum_sizes(&roots)?;
    match verifier.check(&roots, length, fork, signature) {
        Ok(()) => {}
        Err(VerifyError::ManifestMissing) => return Err(ProofError::ManifestMissing),
        Err(VerifyError::Invalid(_)) => return Err(ProofError::SignatureInvalid { length }),
    }
    Ok(SignedTree {
        length,
        fork,
        byte_length,
        roots,
        signature: signature.to_vec(),
    })
}

/// Converts a wire node list, refusing long lists, hashes that are not 32 bytes and
/// indexes out of range.
fn wire_nodes(list: &[hypercore_schema::Node], what: &str) -> Result<Vec<Node>, ProofError> {
    if list.len() > MAX_PROOF_NODES {
        return Err(malformed(format!("too many {what} nodes")));
    }
    list.iter()
        .map(|n| {
            let node = Node::from_wire(n)
                .ok_or_else(|| malformed(format!("{what} node hash is not 32 bytes")))?;
            if node.index >= MAX_INDEX {
                return Err(malformed(format!("{what} node index out of range")));
            }
            Ok(node)
        })
        .collect()
}

/// Checks a peer's proof against the local tree and, for upgrades, `verifier` (JS
/// `MerkleTree.verify` plus the signature check of `Core.verify`). Nothing is written;
/// the caller stores what is returned.
///
/// An upgrade must start at our length, as JS's `verifyUpgrade` grows the local roots:
/// one starting below it is [`ProofError::Stale`] (made for an older state of ours; the
/// whole proof is refused, block included, as JS does), one starting above it is
/// [`ProofError::Malformed`]. Unlike JS, leftover upgrade nodes are refused, and a proof
/// rooted in our tree must match our node's size as well as its hash.
pub(crate) fn verify_proof(
    tree: &impl NodeSource,
    state: &TreeState<'_>,
    verifier: &Verifier,
    proof: &Proof,
) -> Result<VerifiedProof, ProofError> {
    if proof.fork != state.fork {
        return Err(ProofError::ForkMismatch {
            ours: state.fork,
            theirs: proof.fork,
        });
    }
    check_state(state)?;

    // Shape and bounds first, before hashing anything.
    let block_nodes = match &proof.block {
        Some(block) => {
            if block.index >= MAX_LENGTH {
                return Err(malformed("block index out of range"));
            }
            wire_nodes(&block.nodes, "block")?
        }
        None => Vec::new(),
    };
    let hash_nodes = match &proof.hash {
        Some(hash) => {
            if hash.index >= MAX_INDEX {
                return Err(malformed("hash index out of range"));
            }
            wire_nodes(&hash.nodes, "hash")?
        }
        None => Vec::new(),
    };
    let seek_nodes = match &proof.seek {
        Some(seek) => wire_nodes(&seek.nodes, "seek")?,
        None => Vec::new(),
    };
    let (upgrade_nodes, additional_nodes) = match &proof.upgrade {
        Some(up) => {
            if up.start > MAX_LENGTH
                || up
                    .start
                    .checked_add(up.length)
                    .is_none_or(|end| end > MAX_LENGTH)
            {
                return Err(malformed("upgrade out of range"));
            }
            if up.length == 0 {
                return Err(malformed("upgrade of length 0"));
            }
            if up.start < state.length {
                return Err(ProofError::Stale {
                    reason: format!(
                        "upgrade from {} but our length is {}",
                        up.start, state.length
                    ),
                });
            }
            if up.start > state.length {
                return Err(malformed(format!(
                    "upgrade from {} but our length is {}",
                    up.start, state.length
                )));
            }
            (
                wire_nodes(&up.nodes, "upgrade")?,
                wire_nodes(&up.additional_nodes, "additional")?,
            )
        }
        None => (Vec::new(), Vec::new()),
    };

    let mut nodes = Vec::new();
    let root = verify_tree(
        proof
            .block
            .as_ref()
            .map(|b| (b.index, b.value.as_slice(), block_nodes.as_slice())),
        proof
            .hash
            .as_ref()
            .map(|h| (h.index, hash_nodes.as_slice())),
        &seek_nodes,
        &mut nodes,
    )?;

    let mut upgrade = None;
    let mut root_used = false;
    if let Some(up) = &proof.upgrade {
        let (roots, used) = verify_upgrade(
            up,
            &upgrade_nodes,
            &additional_nodes,
            root,
            state.roots,
            &mut nodes,
        )?;
        root_used = used;
        upgrade = Some(signed_tree(
            roots,
            proof.fork,
            &up.signature,
            verifier,
            "upgraded roots",
        )?);
    }

    // A proof not rooted in the upgrade must be rooted in our tree.
    if let Some(root) = root
        && !root_used
    {
        if flat_tree::right_span(root.index) >= 2 * state.length {
            return Err(malformed(format!(
                "proof rooted at node {} beyond our length {}",
                root.index, state.length
            )));
        }
        let Some(ours) = local_node(tree, state, root.index)? else {
            return Err(malformed(format!(
                "proof rooted at node {} that we do not have",
                root.index
            )));
        };
        if ours.hash != root.hash || ours.size != root.size {
            return Err(ProofError::ChecksumMismatch { index: root.index });
        }
    }

    let mut seen = std::collections::HashSet::new();
    nodes.retain(|n| seen.insert(n.index));
    Ok(VerifiedProof {
        upgrade,
        nodes,
        block: proof.block.as_ref().map(|b| (b.index, b.value.clone())),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::verifier::Signer;

    /// The golden vectors' key seed (bytes 100..132, as in js/golden/proof-vectors.mjs).
    fn signer() -> Signer {
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = 100 + i as u8;
        }
        Signer::Ed25519Legacy(SigningKey::from_bytes(&seed))
    }

    /// Block `i` of the test logs (`blockData` in js/golden/proof-vectors.mjs).
    fn block_data(i: u64) -> Vec<u8> {
        let mut v = format!("block-{i}-").into_bytes();
        v.extend(std::iter::repeat_n(b'x', ((i * 7) % 13) as usize));
        v
    }

    /// An in-memory tree: nodes by index, roots, signature.
    #[derive(Clone, Debug)]
    struct MemTree {
        nodes: HashMap<u64, Node>,
        length: u64,
        roots: Vec<Node>,
        signature: Vec<u8>,
    }

    impl NodeSource for MemTree {
        fn node(&self, index: u64) -> io::Result<Option<Node>> {
            Ok(self.nodes.get(&index).copied())
        }
    }

    impl MemTree {
        /// The full tree of the first `length` test blocks, signed by [`signer`].
        fn build(length: u64) -> Self {
            let mut nodes = HashMap::new();
            let mut roots: Vec<Node> = Vec::new();
            for i in 0..length {
                let mut top = Node::leaf(i, &block_data(i));
                nodes.insert(top.index, top);
                while let Some(prev) = roots.last() {
                    if flat_tree::sibling(top.index) != prev.index {
                        break;
                    }
                    top = Node::parent(prev, &top).unwrap();
                    nodes.insert(top.index, top);
                    roots.pop();
                }
                roots.push(top);
            }
            let signature = if length == 0 {
                Vec::new()
            } else {
                signer().sign(&roots, length, 0)
            };
            MemTree {
                nodes,
                length,
                roots,
                signature,
            }
        }

        /// A replica at `length` that only has the roots (as after an upgrade).
        fn sparse(length: u64) -> Self {
            let full = Self::build(length);
            MemTree {
                nodes: full.roots.iter().map(|r| (r.index, *r)).collect(),
                ..full
            }
        }

        fn state(&self) -> TreeState<'_> {
            TreeState {
                fork: 0,
                length: self.length,
                roots: &self.roots,
                signature: &self.signature,
            }
        }

        /// Stores what a verified proof returned (as the caller will).
        fn apply(&mut self, v: &VerifiedProof) {
            for n in &v.nodes {
                self.nodes.insert(n.index, *n);
            }
            if let Some(up) = &v.upgrade {
                self.length = up.length;
                self.roots = up.roots.clone();
                self.signature = up.signature.clone();
                for r in &up.roots {
                    self.nodes.insert(r.index, *r);
                }
            }
        }

        fn create(&self, req: &ProofRequest) -> Result<Proof, ProofError> {
            let mut proof = create_proof(self, &self.state(), req)?;
            if let Some(b) = &mut proof.block {
                b.value = block_data(b.index);
            }
            Ok(proof)
        }

        fn verify(&self, proof: &Proof) -> Result<VerifiedProof, ProofError> {
            verify_proof(self, &self.state(), &signer().verifier(), proof)
        }
    }

    fn request(
        block: Option<(u64, u64)>,
        hash: Option<(u64, u64)>,
        seek: Option<u64>,
        upgrade: Option<(u64, u64)>,
    ) -> ProofRequest {
        ProofRequest {
            fork: 0,
            block: block.map(|(index, nodes)| RequestBlock { index, nodes }),
            hash: hash.map(|(index, nodes)| RequestBlock { index, nodes }),
            seek: seek.map(|bytes| RequestSeek { bytes }),
            padding: 0,
            upgrade: upgrade.map(|(start, length)| RequestUpgrade { start, length }),
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn pair(v: &Value, a: &str, b: &str) -> Option<(u64, u64)> {
        v.as_object()
            .map(|o| (o[a].as_u64().unwrap(), o[b].as_u64().unwrap()))
    }

    fn indexes(list: &[hypercore_schema::Node]) -> Vec<u64> {
        list.iter().map(|n| n.index).collect()
    }

    fn json_indexes(v: &Value) -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    }

    /// Our proofs equal JS hypercore 10.31.12's for every request of the golden matrix,
    /// byte for byte (nodes, sizes, hashes, signatures); JS's proofs verify with ours.
    #[test]
    fn golden_proofs_match_js_and_verify() {
        let text = include_str!("../tests/golden/proof/vectors.json");
        let golden: Value = serde_json::from_str(text).unwrap();
        assert_eq!(golden["hypercore"], "10.31.12");
        let public = signer().verifier();
        let Verifier::Ed25519Legacy { public_key } = &public else {
            panic!("a legacy signer's verifier is legacy");
        };
        assert_eq!(golden["publicKey"], hex(public_key.as_bytes()));
        let mut checked = 0;
        for t in golden["trees"].as_array().unwrap() {
            let n = t["length"].as_u64().unwrap();
            let full = MemTree::build(n);
            assert_eq!(
                t["signature"],
                hex(&full.signature),
                "signature of length {n}"
            );
            // The node table pins every index to JS's size and hash.
            let mut table = HashMap::new();
            for (k, v) in t["nodes"].as_object().unwrap() {
                let index: u64 = k.parse().unwrap();
                let ours = full.nodes[&index];
                assert_eq!(v[0].as_u64().unwrap(), ours.size, "size of node {index}");
                assert_eq!(v[1], hex(&ours.hash), "hash of node {index}");
                table.insert(index, ours.to_wire());
            }
            let wire = |v: &Value| -> Vec<hypercore_schema::Node> {
                json_indexes(v).iter().map(|i| table[i].clone()).collect()
            };
            for case in t["cases"].as_array().unwrap() {
                let r = &case["request"];
                let req = request(
                    pair(&r["block"], "index", "nodes"),
                    pair(&r["hash"], "index", "nodes"),
                    r["seek"]["bytes"].as_u64(),
                    pair(&r["upgrade"], "start", "length"),
                );
                let ours = full.create(&req);
                let what = format!("length {n}, request {r}");
                if case.get("error").is_some() {
                    assert!(
                        matches!(ours, Err(ProofError::Malformed { .. })),
                        "{what}: JS refused, we made {ours:?}"
                    );
                    continue;
                }
                let ours = ours.unwrap_or_else(|e| panic!("{what}: {e}"));
                let js = &case["proof"];
                assert_eq!(js["fork"], 0);
                let js_proof = Proof {
                    fork: 0,
                    block: js["block"].as_object().map(|b| DataBlock {
                        index: b["index"].as_u64().unwrap(),
                        value: block_data(b["index"].as_u64().unwrap()),
                        nodes: wire(&b["nodes"]),
                    }),
                    hash: js["hash"].as_object().map(|h| DataHash {
                        index: h["index"].as_u64().unwrap(),
                        nodes: wire(&h["nodes"]),
                    }),
                    seek: js["seek"].as_object().map(|s| DataSeek {
                        bytes: s["bytes"].as_u64().unwrap(),
                        nodes: wire(&s["nodes"]),
                    }),
                    upgrade: js["upgrade"].as_object().map(|u| DataUpgrade {
                        start: u["start"].as_u64().unwrap(),
                        length: u["length"].as_u64().unwrap(),
                        nodes: wire(&u["nodes"]),
                        additional_nodes: wire(&u["additionalNodes"]),
                        signature: full.signature.clone(),
                    }),
                };
                assert_eq!(ours, js_proof, "{what}");
                assert_eq!(
                    ours.upgrade.as_ref().map(|u| indexes(&u.nodes)),
                    js["upgrade"].get("nodes").map(json_indexes),
                    "{what}"
                );

                // JS's proof verifies on a replica at the upgrade's start (full history
                // up to it), or on the full tree without upgrade.
                let replica = match &req.upgrade {
                    Some(u) => MemTree::build(u.start),
                    None => full.clone(),
                };
                let verified = replica
                    .verify(&js_proof)
                    .unwrap_or_else(|e| panic!("{what}: JS proof refused: {e}"));
                if req.upgrade.is_some() {
                    let up = verified.upgrade.as_ref().unwrap();
                    assert_eq!((up.length, &up.roots), (n, &full.roots), "{what}");
                    assert_eq!(up.byte_length, t["byteLength"].as_u64().unwrap());
                }
                for node in &verified.nodes {
                    assert_eq!(full.nodes.get(&node.index), Some(node), "{what}");
                }
                checked += 1;
            }
        }
        assert!(checked > 900, "only {checked} golden proofs");
    }

    /// missing_nodes counts the levels a replica with only roots misses (what the golden
    /// generator's `rootDistance` computes with JS flat-tree), 0 with the full tree and
    /// for nodes beyond the tree or out of range.
    #[test]
    fn missing_nodes_counts_levels_to_a_node_we_have() {
        for n in 1..=40u64 {
            let sparse = MemTree::sparse(n);
            let full = MemTree::build(n);
            for i in 0..n {
                let mut expected = 0;
                let mut ite = 2 * i;
                while !sparse.nodes.contains_key(&ite) {
                    ite = flat_tree::parent(ite);
                    expected += 1;
                }
                assert_eq!(missing_nodes(&sparse, n, 2 * i).unwrap(), expected);
                assert_eq!(missing_nodes(&full, n, 2 * i).unwrap(), 0);
            }
            assert_eq!(missing_nodes(&sparse, n, 2 * n).unwrap(), 0);
            assert_eq!(missing_nodes(&sparse, n, u64::MAX).unwrap(), 0);
            assert_eq!(missing_nodes(&sparse, u64::MAX, 0).unwrap(), 0);
        }
    }

    /// Proofs we create verify on replicas, and what they return builds replicas whose
    /// later proofs verify, for lengths 1..=70 and every block.
    #[test]
    fn round_trip_for_every_length_and_block() {
        for n in 1..=70u64 {
            let full = MemTree::build(n);
            let mut starts = vec![0, 1, n / 2, n - 1];
            starts.retain(|k| *k < n);
            starts.dedup();
            for &k in &starts {
                // Upgrade only, to the end and a shorter one that gets additional nodes.
                for length in [n - k, 1] {
                    let mut replica = MemTree::sparse(k);
                    let p = full
                        .create(&request(None, None, None, Some((k, length))))
                        .unwrap();
                    if k + length < n {
                        assert!(!p.upgrade.as_ref().unwrap().additional_nodes.is_empty());
                    }
                    let v = replica.verify(&p).unwrap();
                    assert_eq!(v.upgrade.as_ref().unwrap().length, n);
                    assert_eq!(v.upgrade.as_ref().unwrap().roots, full.roots);
                    replica.apply(&v);
                    // Then every block, asking for the levels the replica misses.
                    for i in 0..n {
                        let nodes = missing_nodes(&replica, n, 2 * i).unwrap();
                        let p = full
                            .create(&request(Some((i, nodes)), None, None, None))
                            .unwrap();
                        let v = replica.verify(&p).unwrap();
                        assert_eq!(v.block, Some((i, block_data(i))));
                        assert!(v.upgrade.is_none());
                        replica.apply(&v);
                        assert_eq!(missing_nodes(&replica, n, 2 * i).unwrap(), 0);
                    }
                    // It now has the whole tree and serves the same proofs.
                    assert_eq!(replica.nodes, full.nodes);
                    let req = request(Some((n - 1, 0)), None, None, Some((0, n)));
                    assert_eq!(replica.create(&req).unwrap(), full.create(&req).unwrap());
                }
                // Block + upgrade on a replica at k (sparse), for every block.
                let sparse = MemTree::sparse(k);
                for i in 0..n {
                    let nodes = if i < k {
                        missing_nodes(&sparse, k, 2 * i).unwrap()
                    } else {
                        0
                    };
                    let p = full
                        .create(&request(Some((i, nodes)), None, None, Some((k, n - k))))
                        .unwrap();
                    let v = sparse.verify(&p).unwrap();
                    assert_eq!(v.block, Some((i, block_data(i))));
                    assert_eq!(v.upgrade.as_ref().unwrap().length, n);
                    let mut next = sparse.clone();
                    next.apply(&v);
                    for node in &v.nodes {
                        assert_eq!(full.nodes.get(&node.index), Some(node));
                    }
                    // The stored result serves a later block proof.
                    let j = (i + 1) % n;
                    let m = missing_nodes(&next, n, 2 * j).unwrap();
                    let p = full
                        .create(&request(Some((j, m)), None, None, None))
                        .unwrap();
                    next.verify(&p).unwrap();
                }
            }
        }
    }

    /// Hash and seek proofs round-trip too, alone and with an upgrade.
    #[test]
    fn hash_and_seek_round_trip() {
        for n in 1..=20u64 {
            let full = MemTree::build(n);
            let total: u64 = full.roots.iter().map(|r| r.size).sum();
            for index in 0..2 * n {
                if flat_tree::right_span(index) >= 2 * n {
                    continue;
                }
                let p = full
                    .create(&request(None, Some((index, 0)), None, None))
                    .unwrap();
                full.verify(&p).unwrap();
                let p = full
                    .create(&request(None, Some((index, 0)), None, Some((0, n))))
                    .unwrap();
                MemTree::sparse(0).verify(&p).unwrap();
            }
            for bytes in 0..total {
                let p = full
                    .create(&request(None, None, Some(bytes), Some((0, n))))
                    .unwrap();
                MemTree::sparse(0).verify(&p).unwrap();
                let nodes = missing_nodes(&MemTree::sparse(n), n, 0).unwrap();
                if let Ok(p) = full.create(&request(Some((0, nodes)), None, Some(bytes), None)) {
                    MemTree::sparse(n).verify(&p).unwrap();
                }
            }
        }
    }

    /// Requests we cannot or must not serve.
    #[test]
    fn create_refuses_what_it_cannot_serve() {
        let full = MemTree::build(5);
        let err = |r: ProofRequest| full.create(&r).unwrap_err();
        assert!(matches!(
            err(request(Some((5, 0)), None, None, None)),
            ProofError::NotAvailable { .. }
        ));
        assert!(matches!(
            err(request(None, None, None, Some((3, 3)))),
            ProofError::NotAvailable { .. }
        ));
        assert!(matches!(
            err(request(None, None, None, Some((u64::MAX, 2)))),
            ProofError::NotAvailable { .. }
        ));
        assert!(matches!(
            err(request(None, None, None, Some((2, 0)))),
            ProofError::Malformed { .. }
        ));
        assert!(matches!(
            err(request(Some((1, 40)), None, None, None)),
            ProofError::Malformed { .. }
        ));
        assert!(matches!(
            err(request(Some((1, u64::MAX)), None, None, None)),
            ProofError::Malformed { .. }
        ));
        assert!(matches!(
            err(request(None, Some((u64::MAX, 0)), None, None)),
            ProofError::NotAvailable { .. }
        ));
        let mut other_fork = request(Some((1, 0)), None, None, None);
        other_fork.fork = 1;
        assert!(matches!(
            err(other_fork),
            ProofError::ForkMismatch { ours: 0, theirs: 1 }
        ));
        // A replica cannot prove a block it has no nodes for.
        let sparse = MemTree::sparse(5);
        assert!(matches!(
            sparse.create(&request(Some((1, 2)), None, None, None)),
            Err(ProofError::NotAvailable { .. })
        ));
        // An empty log serves only an empty request.
        let empty = MemTree::build(0);
        assert!(empty.create(&request(None, None, None, None)).is_ok());
        assert!(matches!(
            empty.create(&request(None, None, None, Some((0, 1)))),
            Err(ProofError::NotAvailable { .. })
        ));
    }

    /// Upgrades that do not start at our length.
    #[test]
    fn upgrades_must_start_at_our_length() {
        let full = MemTree::build(9);
        let p = full
            .create(&request(Some((6, 0)), None, None, Some((2, 7))))
            .unwrap();
        assert!(matches!(
            MemTree::build(4).verify(&p),
            Err(ProofError::Stale { .. })
        ));
        assert!(matches!(
            MemTree::build(1).verify(&p),
            Err(ProofError::Malformed { .. })
        ));
        assert!(MemTree::build(2).verify(&p).is_ok());
    }

    // -------------------------------------------------------------------------------
    // Tampering
    // -------------------------------------------------------------------------------

    /// The node lists of a proof, for mutation.
    fn lists(p: &mut Proof) -> Vec<&mut Vec<hypercore_schema::Node>> {
        let mut out = Vec::new();
        if let Some(b) = &mut p.block {
            out.push(&mut b.nodes);
        }
        if let Some(h) = &mut p.hash {
            out.push(&mut h.nodes);
        }
        if let Some(s) = &mut p.seek {
            out.push(&mut s.nodes);
        }
        if let Some(u) = &mut p.upgrade {
            out.push(&mut u.nodes);
            out.push(&mut u.additional_nodes);
        }
        out
    }

    /// Every single mutation of `proof` we make; each must be refused.
    fn mutations(proof: &Proof) -> Vec<(String, Proof)> {
        let mut out = Vec::new();
        let count = lists(&mut proof.clone()).len();
        for l in 0..count {
            let len = lists(&mut proof.clone())[l].len();
            for i in 0..len {
                let mut m = |what: &str, f: &dyn Fn(&mut Vec<hypercore_schema::Node>)| {
                    let mut p = proof.clone();
                    f(lists(&mut p)[l]);
                    out.push((format!("list {l} node {i}: {what}"), p));
                };
                for byte in [0usize, 17, 31] {
                    m("hash byte", &|v| v[i].hash[byte] ^= 0x40);
                }
                m("size +1", &|v| v[i].length = v[i].length.wrapping_add(1));
                m("size max", &|v| v[i].length = u64::MAX);
                m("index +2", &|v| v[i].index += 2);
                m("index ^1", &|v| v[i].index ^= 1);
                m("index max", &|v| v[i].index = u64::MAX);
                m("short hash", &|v| {
                    v[i].hash.pop();
                });
                m("drop", &|v| {
                    v.remove(i);
                });
                m("duplicate", &|v| {
                    let n = v[i].clone();
                    v.insert(i, n);
                });
                if i + 1 < len {
                    m("swap", &|v| v.swap(i, i + 1));
                }
            }
            let mut p = proof.clone();
            let list = &mut lists(&mut p)[l];
            let last = list.last().cloned();
            if let Some(mut n) = last {
                n.hash = vec![7; 32];
                n.index = flat_tree::sibling(flat_tree::parent(n.index));
                list.push(n);
                out.push((format!("list {l}: garbage node appended"), p));
            }
        }
        let mut p = proof.clone();
        p.fork = 1;
        out.push(("fork".into(), p));
        if let Some(b) = &proof.block {
            let mut p = proof.clone();
            p.block.as_mut().unwrap().value.push(0);
            out.push(("value longer".into(), p));
            let mut p = proof.clone();
            p.block.as_mut().unwrap().index = b.index ^ 1;
            out.push(("block index".into(), p));
        }
        if let Some(h) = &proof.hash {
            let mut p = proof.clone();
            p.hash.as_mut().unwrap().index = h.index + 2;
            out.push(("hash index".into(), p));
        }
        if proof.upgrade.is_some() {
            for (what, f) in [
                (
                    "signature",
                    (|u: &mut DataUpgrade| u.signature[5] ^= 1) as fn(&mut DataUpgrade),
                ),
                ("short signature", |u| {
                    u.signature.pop();
                }),
                ("start +1", |u| u.start += 1),
                ("start -1", |u| u.start = u.start.wrapping_sub(1)),
                ("length +1", |u| u.length += 1),
                ("length -1", |u| u.length -= 1),
                ("length max", |u| u.length = u64::MAX),
            ] {
                let mut p = proof.clone();
                f(p.upgrade.as_mut().unwrap());
                out.push((what.into(), p));
            }
        }
        out
    }

    /// A proof shape for tampering tests and the replica it verifies on.
    fn shape(n: u64, kind: u8, a: u64, b: u64) -> (MemTree, ProofRequest) {
        let i = a % n;
        let k = b % n;
        let mut hash_index = a % (2 * n);
        while flat_tree::right_span(hash_index) >= 2 * n {
            hash_index = flat_tree::left_child(hash_index).unwrap_or(0);
        }
        match kind % 7 {
            0 => (
                MemTree::sparse(k),
                request(None, None, None, Some((k, n - k))),
            ),
            1 => (MemTree::sparse(k), request(None, None, None, Some((k, 1)))),
            2 => {
                let sparse = MemTree::sparse(k);
                let nodes = if i < k {
                    missing_nodes(&sparse, k, 2 * i).unwrap()
                } else {
                    0
                };
                (
                    sparse,
                    request(Some((i, nodes)), None, None, Some((k, n - k))),
                )
            }
            3 => {
                let sparse = MemTree::sparse(n);
                let nodes = missing_nodes(&sparse, n, 2 * i).unwrap();
                (sparse, request(Some((i, nodes)), None, None, None))
            }
            4 => (
                MemTree::sparse(0),
                request(None, Some((hash_index, 0)), None, Some((0, n))),
            ),
            // The hash node itself is the proof's root, checked against our copy.
            5 => (
                MemTree::build(n),
                request(None, Some((hash_index, 0)), None, None),
            ),
            _ => {
                let total: u64 = MemTree::build(n).roots.iter().map(|r| r.size).sum();
                (
                    MemTree::sparse(0),
                    request(None, None, Some(b % total), Some((0, n))),
                )
            }
        }
    }

    /// Whether a mutation is the one harmless reshaping: a seek proof names its starting
    /// node by its first entry (JS starts from `seek.nodes[0].index` too), so swapping
    /// the seek node with its sibling proves the sibling instead, equally true.
    fn harmless(what: &str, bad: &Proof, verified: &VerifiedProof, full: &MemTree) -> bool {
        what.ends_with("node 0: swap")
            && bad.seek.as_ref().is_some_and(|s| s.nodes.len() > 1)
            && verified
                .nodes
                .iter()
                .all(|n| full.nodes.get(&n.index) == Some(n))
            && verified
                .upgrade
                .as_ref()
                .is_none_or(|u| u.roots == full.roots)
    }

    fn assert_all_refused(full: &MemTree, replica: &MemTree, proof: &Proof) {
        replica.verify(proof).unwrap();
        for (what, bad) in mutations(proof) {
            if let Ok(v) = replica.verify(&bad) {
                assert!(
                    harmless(&what, &bad, &v, full),
                    "length {}, {what}: accepted {bad:?}",
                    full.length
                );
            }
        }
    }

    /// Every mutation of every proof shape is refused, for small lengths exhaustively.
    #[test]
    fn tampering_is_always_refused() {
        for n in 1..=17u64 {
            let full = MemTree::build(n);
            for kind in 0..7 {
                for a in 0..n {
                    for b in [0, n / 2, n - 1] {
                        let (replica, req) = shape(n, kind, a, b);
                        let proof = full.create(&req).unwrap();
                        assert_all_refused(&full, &replica, &proof);
                    }
                }
            }
        }
    }

    fn arb_wire_node() -> impl Strategy<Value = hypercore_schema::Node> {
        (
            prop_oneof![0..64u64, any::<u64>()],
            prop_oneof![Just(32usize), 0..40usize],
            prop_oneof![0..100u64, any::<u64>()],
        )
            .prop_map(|(index, len, size)| {
                hypercore_schema::Node::new(index, vec![index as u8; len], size)
            })
    }

    fn arb_nodes() -> impl Strategy<Value = Vec<hypercore_schema::Node>> {
        prop_oneof![
            proptest::collection::vec(arb_wire_node(), 0..8),
            proptest::collection::vec(arb_wire_node(), 0..200),
        ]
    }

    fn arb_number() -> impl Strategy<Value = u64> {
        prop_oneof![0..70u64, any::<u64>(), Just(u64::MAX), Just(MAX_LENGTH)]
    }

    fn arb_proof() -> impl Strategy<Value = Proof> {
        (
            prop_oneof![Just(0u64), any::<u64>()],
            proptest::option::of((
                arb_number(),
                proptest::collection::vec(any::<u8>(), 0..8),
                arb_nodes(),
            )),
            proptest::option::of((arb_number(), arb_nodes())),
            proptest::option::of((arb_number(), arb_nodes())),
            proptest::option::of((
                arb_number(),
                arb_number(),
                arb_nodes(),
                arb_nodes(),
                proptest::collection::vec(any::<u8>(), 0..70),
            )),
        )
            .prop_map(|(fork, block, hash, seek, upgrade)| Proof {
                fork,
                block: block.map(|(index, value, nodes)| DataBlock {
                    index,
                    value,
                    nodes,
                }),
                hash: hash.map(|(index, nodes)| DataHash { index, nodes }),
                seek: seek.map(|(bytes, nodes)| DataSeek { bytes, nodes }),
                upgrade: upgrade.map(|(start, length, nodes, additional_nodes, signature)| {
                    DataUpgrade {
                        start,
                        length,
                        nodes,
                        additional_nodes,
                        signature,
                    }
                }),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Random lengths, shapes and one random mutation: always refused.
        #[test]
        fn random_mutations_are_refused(n in 1..60u64, kind in 0..7u8, a in any::<u64>(), b in any::<u64>(), pick in any::<prop::sample::Index>()) {
            let full = MemTree::build(n);
            let (replica, req) = shape(n, kind, a, b);
            let proof = full.create(&req).unwrap();
            prop_assert!(replica.verify(&proof).is_ok());
            let all = mutations(&proof);
            let (what, bad) = &all[pick.index(all.len())];
            if let Ok(v) = replica.verify(bad) {
                prop_assert!(harmless(what, bad, &v, &full), "{}", what);
            }
        }

        /// Garbage proofs never panic, and never verify.
        #[test]
        fn garbage_proofs_never_panic(proof in arb_proof(), length in 0..40u64) {
            let replica = MemTree::sparse(length);
            let _ = replica.verify(&proof);
            let full = MemTree::build(length);
            prop_assert!(full.verify(&proof).map(|v| v.upgrade.is_none() && v.block.is_none()).unwrap_or(true)
                || proof.block.as_ref().is_some_and(|b| b.value == block_data(b.index)));
        }

        /// Garbage requests never panic.
        #[test]
        fn garbage_requests_never_panic(
            length in 0..40u64,
            block in proptest::option::of((arb_number(), arb_number())),
            hash in proptest::option::of((arb_number(), arb_number())),
            seek in proptest::option::of(arb_number()),
            upgrade in proptest::option::of((arb_number(), arb_number())),
        ) {
            let full = MemTree::build(length);
            let req = request(block, hash, seek, upgrade);
            let _ = full.create(&req);
            let _ = MemTree::sparse(length).create(&req);
            let _ = missing_nodes(&full, length, block.map_or(0, |b| b.0));
        }
    }
}
