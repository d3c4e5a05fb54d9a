//! Verified reads: a block is returned only once its leaf hash leads, through sibling
//! hashes, to a node already known to be good or to one of the signed roots.
//!
//! Known-good nodes are kept in [`Verified`] (bounded; cleared on a change of fork): the
//! leaves this process appended or verified, with their data-file offsets, and the
//! nodes of every checked path. In an append-only tree a full subtree's hash never
//! changes, so they stay valid across appends. Nodes read from the tree file are only
//! ever *compared* against known-good hashes: a tampered tree file costs speed or gives
//! `SIGNATURE_INVALID`, never wrong data.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::crypto::Node;

use super::storage::{Storage, StorageError};

/// Known-good nodes kept per log before the map is reset (about 64 bytes each).
const MAX_KNOWN_NODES: usize = 1 << 17;
/// Largest subtree (in payload bytes) verified at once around a proven block...
const NEIGHBOURHOOD_BYTES: u64 = 256 * 1024;
/// ... and at most 2^6 = 64 blocks of it.
const NEIGHBOURHOOD_MAX_HEIGHT: u32 = 6;

#[derive(Debug, Default)]
struct Known {
    fork: u64,
    /// Node index -> the node and, for leaves, the data-file offset of its block.
    nodes: HashMap<u64, (Node, Option<u64>)>,
}

/// Nodes of one log's tree known to lead to a signed root.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    known: Mutex<Known>,
}

impl Verified {
    fn lock(&self, fork: u64) -> std::sync::MutexGuard<'_, Known> {
        // Only complete values are stored under this lock: a poisoned one is consistent.
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.fork != fork {
            known.nodes.clear();
            known.fork = fork;
        }
        known
    }

    /// A known-good node (and its block's offset, for leaves).
    pub(crate) fn get(&self, fork: u64, index: u64) -> Option<(Node, Option<u64>)> {
        self.lock(fork).nodes.get(&index).copied()
    }

    /// Records known-good nodes.
    pub(crate) fn remember(&self, fork: u64, nodes: impl IntoIterator<Item = (Node, Option<u64>)>) {
        let mut known = self.lock(fork);
        if known.nodes.len() >= MAX_KNOWN_NODES {
            known.nodes.clear();
        }
        for (node, offset) in nodes {
            let slot = known.nodes.entry(node.index).or_insert((node, offset));
            if offset.is_some() {
                slot.1 = offset;
            }
        }
    }

    /// Forgets every node and gives the map's memory back (the log's storage was
    /// closed: a handle kept after that holds no cache).
    pub(crate) fn clear(&self) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.nodes = HashMap::new();
    }
}

/// Why a block cannot be returned.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Stored bytes or tree do not verify (reason).
    Invalid(String),
    /// The block is not stored here (the bitfield says so).
    NotStored,
    /// The block's leaf is known good (verified, or its stored leaf leads to a signed
    /// root) but the data file's bytes for it do not hash to it (or end early): the data
    /// file is damaged there, and a peer's copy can replace the bytes (reason).
    DataDamaged(String),
    /// I/O failed.
    Storage(StorageError),
}

impl From<StorageError> for ReadError {
    fn from(e: StorageError) -> Self {
        ReadError::Storage(e)
    }
}

fn invalid(reason: impl Into<String>) -> ReadError {
    ReadError::Invalid(reason.into())
}

/// Block `seq` (below the length), verified.
pub(crate) fn verified_block(
    storage: &Storage,
    verified: &Verified,
    seq: u64,
) -> Result<Vec<u8>, ReadError> {
    if !storage.has(seq) {
        return Err(ReadError::NotStored);
    }
    verify_stored(storage, verified, seq)
}

/// Block `seq` (below the length) as the data file holds it where the tree says,
/// verified, whatever the bitfield says (the bitfield rebuild asks this of blocks whose
/// bit was lost).
pub(crate) fn verify_stored(
    storage: &Storage,
    verified: &Verified,
    seq: u64,
) -> Result<Vec<u8>, ReadError> {
    let fork = storage.tree().fork();
    // Fast path: the leaf and its offset are known: one read, one hash.
    if let Some((leaf, Some(offset))) = verified.get(fork, 2 * seq) {
        let value = match read_block(storage, offset, leaf.size) {
            Ok(value) => value,
            Err(ReadError::Invalid(reason)) => return Err(ReadError::DataDamaged(reason)),
            Err(e) => return Err(e),
        };
        if Node::leaf(seq, &value) == leaf {
            return Ok(value);
        }
        return Err(ReadError::DataDamaged(
            "the data file's bytes for the block do not match its verified leaf hash".into(),
        ));
    }
    // Slow path: walk up from the stored leaf to a known node or a signed root.
    let stored_leaf = storage
        .node(2 * seq)?
        .ok_or_else(|| invalid("the tree file holds no leaf for the block"))?;
    let offset = storage
        .byte_offset(seq)?
        .ok_or_else(|| invalid("the tree file cannot locate the block"))?;
    let value = match read_block(storage, offset, stored_leaf.size) {
        Ok(value) => value,
        Err(ReadError::Invalid(reason)) => {
            return Err(data_or_tree(storage, verified, stored_leaf, reason));
        }
        Err(e) => return Err(e),
    };
    let leaf = Node::leaf(seq, &value);
    match walk(storage, verified, leaf)? {
        Ok(path) => Ok(finish(storage, verified, seq, leaf, offset, path, value)),
        Err(reason) if leaf != stored_leaf => {
            Err(data_or_tree(storage, verified, stored_leaf, reason))
        }
        Err(reason) => Err(invalid(reason)),
    }
}

/// The data file's bytes for a block failed: they are what is damaged when the stored
/// leaf itself leads to a known-good node or a signed root (then a peer's copy of the
/// block verifies against our tree); otherwise the tree is damaged too (a local rebuild,
/// [`ManagedCore::repair`](super::ManagedCore::repair), is the way back).
fn data_or_tree(
    storage: &Storage,
    verified: &Verified,
    stored_leaf: Node,
    reason: String,
) -> ReadError {
    match walk(storage, verified, stored_leaf) {
        Ok(Ok(_)) => ReadError::DataDamaged(reason),
        Ok(Err(_)) => invalid(reason),
        Err(e) => e,
    }
}

/// Walks up from `node` through the stored siblings to a known-good node or a signed
/// root. `Ok(Ok(path))`: it got there (the nodes on the way); `Ok(Err(reason))`: it
/// did not.
fn walk(
    storage: &Storage,
    verified: &Verified,
    mut node: Node,
) -> Result<Result<Vec<Node>, String>, ReadError> {
    let fork = storage.tree().fork();
    let mut path = Vec::new();
    // A tree of 2^53 blocks is 54 levels high; a longer walk means a damaged tree.
    for _ in 0..64 {
        if let Some((known, _)) = verified.get(fork, node.index) {
            if known != node {
                return Ok(Err(format!(
                    "node {} does not match the verified tree",
                    node.index
                )));
            }
            return Ok(Ok(path));
        }
        if let Some(root) = storage
            .tree()
            .roots()
            .iter()
            .find(|r| r.index == node.index)
        {
            if *root != node {
                return Ok(Err(format!(
                    "the block's bytes in the data file (or the tree nodes above it) do not hash to signed root {}",
                    root.index
                )));
            }
            return Ok(Ok(path));
        }
        let Some(sibling) = storage.node(flat_tree::sibling(node.index))? else {
            return Ok(Err(format!(
                "tree node {} is missing",
                flat_tree::sibling(node.index)
            )));
        };
        path.push(node);
        path.push(sibling);
        let Some(parent) = Node::parent(&node, &sibling) else {
            return Ok(Err("node sizes overflow".into()));
        };
        node = parent;
    }
    Ok(Err("the tree path does not reach a root".into()))
}

fn finish(
    storage: &Storage,
    verified: &Verified,
    seq: u64,
    leaf: Node,
    offset: u64,
    path: Vec<Node>,
    value: Vec<u8>,
) -> Vec<u8> {
    let fork = storage.tree().fork();
    verified.remember(
        fork,
        std::iter::once((leaf, Some(offset))).chain(path.into_iter().map(|n| (n, None))),
    );
    verify_neighbourhood(storage, verified, seq, offset);
    value
}

fn read_block(storage: &Storage, offset: u64, size: u64) -> Result<Vec<u8>, ReadError> {
    storage
        .blocks()
        .read(offset, size)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => invalid(format!(
                "the data file ends before block bytes {offset}+{size}"
            )),
            std::io::ErrorKind::InvalidData => invalid(e.to_string()),
            _ => ReadError::Storage(StorageError::Io {
                operation: "read",
                file: storage.blocks().file().path().to_owned(),
                source: e,
            }),
        })
}

/// After block `seq` verified, checks the blocks around it in one go: the largest
/// aligned subtree containing `seq` inside the log whose root is known good and which
/// holds at most [`NEIGHBOURHOOD_BYTES`]. Reading its leaves from the tree file (one
/// read) and hashing them up is far cheaper than a walk each, and sequential readers
/// then take the fast path. A mismatch only means the blocks stay unknown.
fn verify_neighbourhood(storage: &Storage, verified: &Verified, seq: u64, offset: u64) {
    let fork = storage.tree().fork();
    let length = storage.tree().length();
    let mut best = None;
    let mut index = 2 * seq;
    for _ in 0..NEIGHBOURHOOD_MAX_HEIGHT {
        index = flat_tree::parent(index);
        let (_, last) = flat_tree::spans(index);
        if last / 2 >= length {
            break;
        }
        match verified.get(fork, index) {
            Some((root, _)) if root.size <= NEIGHBOURHOOD_BYTES => best = Some(root),
            _ => break,
        }
    }
    let Some(root) = best else { return };
    let (first, last) = flat_tree::spans(root.index);
    let Some(leaves) = storage.leaves(first, last) else {
        return;
    };
    let mut level = leaves.clone();
    let mut all = Vec::with_capacity(leaves.len() * 2);
    while level.len() > 1 {
        let mut up = Vec::with_capacity(level.len() / 2);
        for pair in level.chunks_exact(2) {
            let Some(parent) = Node::parent(&pair[0], &pair[1]) else {
                return;
            };
            up.push(parent);
        }
        all.extend(up.iter().map(|n| (*n, None)));
        level = up;
    }
    if level.first() != Some(&root) {
        return;
    }
    // Offsets: block `seq` is at `offset`; the others follow from the verified sizes.
    let before: u64 = leaves
        .iter()
        .take_while(|l| l.index < 2 * seq)
        .map(|l| l.size)
        .sum();
    let Some(mut at) = offset.checked_sub(before) else {
        return;
    };
    let mut with_offsets = Vec::with_capacity(leaves.len());
    for leaf in leaves {
        with_offsets.push((leaf, Some(at)));
        at += leaf.size;
    }
    verified.remember(fork, with_offsets.into_iter().chain(all));
}
