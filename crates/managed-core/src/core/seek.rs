//! Seeking a byte offset of the log's concatenated payload (JS `core.seek(bytes)`,
//! `lib/merkle-tree.js` `ByteSeeker`): the block that holds byte `bytes` and the offset
//! inside it, found by walking the merkle tree's sizes down from the signed roots.
//!
//! The walk checks every pair of children it reads against their parent (hash and
//! size), starting from the signed roots, so a damaged tree file gives
//! `SIGNATURE_INVALID`, never a wrong answer. A sparse replica may lack the nodes under
//! the byte: the walk then stops at the node whose children it lacks
//! ([`SeekState::Span`]), and a waiting seek ([`ManagedCore::seek_waiting`]) asks its
//! peers to prove them (the sessions send a wire `Request {hash, seek}` as JS's
//! `_requestSeek` does; the `Data.seek` proof is verified and its nodes stored like any
//! proof's).
//!
//! As JS: byte 0 is block 0 offset 0, a byte that starts a block is that block at
//! offset 0 (with empty blocks, JS's answer is kept: the first block after the subtree
//! that ends there), and `bytes == byte_length` is `(length, 0)`. Past the byte length is `OUT_OF_RANGE`
//! ([`HypercoreError::ByteOutOfRange`]); JS returns `null` or waits there.

use std::time::Duration;

use hypercore_schema::{Proof, RequestBlock, RequestSeek, RequestUpgrade};
use nova_hypercore_serialization::HypercoreError;
use tracing::debug;

use super::storage::{Storage, StorageError};
use super::{ManagedCore, Result};
use crate::crypto::Node;

/// Where a byte offset falls, as far as this replica's tree tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekState {
    /// Block `seq` holds the byte, `offset` bytes into it (`seq == length` for the byte
    /// length itself, as JS).
    Found {
        /// The block.
        seq: u64,
        /// The byte's offset inside the block.
        offset: u64,
    },
    /// The byte lies under tree node `node` (blocks `start..end`), whose children this
    /// replica does not hold: a peer that holds a block of the span proves them (JS
    /// `ByteSeeker.start`/`end`).
    Span {
        /// Flat-tree index of the node.
        node: u64,
        /// Its first block.
        start: u64,
        /// One past its last block.
        end: u64,
        /// Its level above the leaves: the `nodes` of a `hash` request for a block of
        /// the span, so the proof reaches the node.
        depth: u64,
    },
    /// The byte lies past the log's byte length (as this replica knows it).
    PastEnd {
        /// The byte length.
        byte_length: u64,
    },
}

/// The tree is taller than any log of `2^53` blocks: a damaged tree.
const MAX_DEPTH: usize = 64;

/// The size of `node` less `padding` bytes per block under it (JS `getUnpaddedSize`):
/// the bytes a reader of an encrypted log counts. `None` when the node is smaller than
/// its blocks' padding (not written with it).
pub(crate) fn unpadded(node: &Node, padding: u64) -> Option<u64> {
    if padding == 0 {
        return Some(node.size);
    }
    let (first, last) = flat_tree::spans(node.index);
    padding
        .checked_mul((last - first) / 2 + 1)
        .and_then(|pad| node.size.checked_sub(pad))
}

/// Walks from `roots` down to the block holding byte `bytes` (JS `ByteSeeker._seek`),
/// reading nodes with `node` and checking each pair of children against its parent.
/// Byte offsets leave out `padding` bytes per block (8 for an encrypted log, as JS
/// seeks one: the plaintext's bytes). `Ok(Err(reason))`: the nodes read do not verify.
pub(crate) fn locate<E>(
    roots: &[Node],
    bytes: u64,
    padding: u64,
    mut node: impl FnMut(u64) -> std::result::Result<Option<Node>, E>,
) -> std::result::Result<std::result::Result<SeekState, String>, E> {
    let size = |n: &Node| {
        unpadded(n, padding).ok_or_else(|| {
            format!(
                "node {} holds {} bytes, less than its blocks' padding",
                n.index, n.size
            )
        })
    };
    let mut byte_length = 0u64;
    for root in roots {
        let root_size = match size(root) {
            Ok(s) => s,
            Err(reason) => return Ok(Err(reason)),
        };
        let Some(sum) = byte_length.checked_add(root_size) else {
            return Ok(Err("root sizes overflow".into()));
        };
        byte_length = sum;
    }
    let length = roots
        .last()
        .map_or(0, |r| flat_tree::right_span(r.index) / 2 + 1);
    if bytes > byte_length {
        return Ok(Ok(SeekState::PastEnd { byte_length }));
    }
    if bytes == 0 || bytes == byte_length {
        let seq = if bytes == 0 { 0 } else { length };
        return Ok(Ok(SeekState::Found { seq, offset: 0 }));
    }
    let after = |n: &Node| flat_tree::right_span(n.index) / 2 + 1;
    let mut rest = bytes;
    for root in roots {
        let root_size = match size(root) {
            Ok(s) => s,
            Err(reason) => return Ok(Err(reason)),
        };
        if rest == root_size {
            return Ok(Ok(SeekState::Found {
                seq: after(root),
                offset: 0,
            }));
        }
        if rest > root_size {
            rest -= root_size;
            continue;
        }
        let mut current = *root;
        for _ in 0..MAX_DEPTH {
            if current.index & 1 == 0 {
                return Ok(Ok(SeekState::Found {
                    seq: current.index / 2,
                    offset: rest,
                }));
            }
            let Some((l, r)) = flat_tree::children(current.index) else {
                return Ok(Err(format!("node {} has no children", current.index)));
            };
            let (Some(left), Some(right)) = (node(l)?, node(r)?) else {
                let (first, last) = flat_tree::spans(current.index);
                return Ok(Ok(SeekState::Span {
                    node: current.index,
                    start: first / 2,
                    end: last / 2 + 1,
                    depth: flat_tree::depth(current.index),
                }));
            };
            if Node::parent(&left, &right) != Some(current) {
                return Ok(Err(format!(
                    "tree nodes {l} and {r} do not hash to node {}",
                    current.index
                )));
            }
            let left_size = match size(&left) {
                Ok(s) => s,
                Err(reason) => return Ok(Err(reason)),
            };
            if rest == left_size {
                return Ok(Ok(SeekState::Found {
                    seq: after(&left),
                    offset: 0,
                }));
            }
            if rest < left_size {
                current = left;
            } else {
                rest -= left_size;
                current = right;
            }
        }
        return Ok(Err("the tree is deeper than any log".into()));
    }
    Ok(Err("root sizes do not add up to the byte length".into()))
}

impl ManagedCore {
    /// Where byte `bytes` of the log's concatenated payload falls, as far as this
    /// replica's tree tells (what the replication sessions ask peers about). Errors:
    /// `SIGNATURE_INVALID` when the stored tree nodes do not verify; I/O.
    pub async fn seek_state(&self, bytes: u64) -> Result<SeekState> {
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        self.locate(storage, bytes)
    }

    fn locate(&self, storage: &Storage, bytes: u64) -> Result<SeekState> {
        match locate(storage.tree().roots(), bytes, self.padding(), |i| {
            storage.node(i)
        }) {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(reason)) => Err(self.invalid(
                0,
                format!("seek of byte {bytes}: the tree does not verify: {reason}"),
            )),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The block holding byte `bytes` of the log's concatenated payload and the byte's
    /// offset inside it: `(seq, offset)` (JS `core.seek(bytes)`; see the module docs
    /// for the boundaries). Local only.
    ///
    /// Errors: `OUT_OF_RANGE` ([`HypercoreError::ByteOutOfRange`], with the byte
    /// length) past the byte length; `REPLICATION_FAILED`
    /// ([`HypercoreError::BlockUnavailable`], naming the first block of the span) when
    /// this sparse replica lacks the tree nodes under the byte
    /// ([`seek_waiting`](Self::seek_waiting) asks peers); `SIGNATURE_INVALID` when the
    /// stored tree does not verify.
    pub async fn seek(&self, bytes: u64) -> Result<(u64, u64)> {
        let state = self.seek_state(bytes).await?;
        self.seek_result(bytes, state)
    }

    fn seek_result(&self, bytes: u64, state: SeekState) -> Result<(u64, u64)> {
        match state {
            SeekState::Found { seq, offset } => Ok((seq, offset)),
            SeekState::PastEnd { byte_length } => Err(HypercoreError::ByteOutOfRange {
                log: self.inner.name.to_string(),
                bytes,
                byte_length,
            }),
            SeekState::Span { start, end, .. } => Err(HypercoreError::BlockUnavailable {
                log: self.inner.name.to_string(),
                seq: start,
                reason: format!(
                    "the tree nodes under byte {bytes} (blocks {start}..{end}) are not held here; a seek that waits asks peers"
                ),
            }),
        }
    }

    /// [`seek`](Self::seek), waiting up to `timeout` for peers when this replica lacks
    /// the tree nodes under the byte (its sessions ask them with seek requests) or the
    /// byte lies past the length known here (it waits for an upgrade). When the time is
    /// up the error is the one [`seek`](Self::seek) gives then.
    pub async fn seek_waiting(&self, bytes: u64, timeout: Duration) -> Result<(u64, u64)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let _seeking = self.inner.wants.add_seek(bytes);
        let mut stored = self.watch_stored();
        let mut progress = self.watch_progress();
        loop {
            stored.borrow_and_update();
            progress.borrow_and_update();
            let state = self.seek_state(bytes).await?;
            if let SeekState::Found { seq, offset } = state {
                return Ok((seq, offset));
            }
            let arrived = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    changed = stored.changed() => changed.is_ok(),
                    changed = progress.changed() => changed.is_ok(),
                }
            })
            .await;
            match arrived {
                Ok(true) => {}
                Ok(false) => return Err(self.closed_error()),
                Err(_) => {
                    debug!(log = %self.inner.name, bytes, ?state, "seek: no peer answered in time");
                    return self.seek_result(bytes, state);
                }
            }
        }
    }

    /// The byte offsets this replica's waiting seeks look for (what its replication
    /// sessions ask peers about; [`watch_wants`](Self::watch_wants) changes when one is
    /// added).
    pub fn wanted_seeks(&self) -> Vec<u64> {
        self.inner.wants.seeks()
    }

    /// Serves a peer's seek request (a wire `Request` with `seek`, JS
    /// `MerkleTree.proof`): the seek proof (the node where `seek.bytes` falls and its
    /// siblings) inside the proof of `block` or `hash` (JS readers send a `hash` of a
    /// block under the node they hold), or inside `upgrade`. `padding` is the
    /// requester's per-block padding: 8 from a reader of an encrypted log (its byte
    /// offsets leave each block's padding out), whether or not this log holds the key
    /// (a seeder serves the seeks of keyed readers too); 0 otherwise.
    /// `Ok(None)` when it cannot be proven as asked; a bad request is never an error.
    pub async fn serve_seek(
        &self,
        block: Option<RequestBlock>,
        hash: Option<RequestBlock>,
        seek: RequestSeek,
        padding: u64,
        upgrade: Option<RequestUpgrade>,
    ) -> Result<Option<Proof>> {
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        storage
            .create_proof(block, hash, Some(seek), padding, upgrade)
            .map_err(|e: StorageError| self.error(e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::crypto::root_indexes;

    /// A full tree over blocks of `sizes` bytes: every node, and the roots.
    fn tree(sizes: &[usize]) -> (HashMap<u64, Node>, Vec<Node>) {
        let mut nodes = HashMap::new();
        let mut level: Vec<Node> = Vec::new();
        for (seq, size) in sizes.iter().enumerate() {
            let n = Node::leaf(seq as u64, &vec![seq as u8; *size]);
            nodes.insert(n.index, n);
            level.push(n);
        }
        // Parents of every complete pair, level by level.
        let mut all = level;
        loop {
            let mut added = false;
            let snapshot: Vec<Node> = all.clone();
            for a in &snapshot {
                let sib = flat_tree::sibling(a.index);
                if a.index < sib
                    && let Some(b) = nodes.get(&sib).copied()
                {
                    let p = Node::parent(a, &b).unwrap();
                    if nodes.insert(p.index, p).is_none() {
                        all.push(p);
                        added = true;
                    }
                }
            }
            if !added {
                break;
            }
        }
        let roots = root_indexes(sizes.len() as u64)
            .iter()
            .map(|i| nodes[i])
            .collect();
        (nodes, roots)
    }

    fn found(state: SeekState) -> (u64, u64) {
        match state {
            SeekState::Found { seq, offset } => (seq, offset),
            other => panic!("not found: {other:?}"),
        }
    }

    #[test]
    fn every_byte_maps_to_its_block_and_offset() {
        let sizes = [3, 1, 7, 2, 9, 4, 1, 1, 5, 12, 6];
        let (nodes, roots) = tree(&sizes);
        let total: usize = sizes.iter().sum();
        let mut expected = Vec::new();
        for (seq, size) in sizes.iter().enumerate() {
            for offset in 0..*size {
                expected.push((seq as u64, offset as u64));
            }
        }
        for (bytes, want) in expected.iter().enumerate() {
            let got = locate(&roots, bytes as u64, 0, |i| {
                Ok::<_, ()>(nodes.get(&i).copied())
            })
            .unwrap()
            .unwrap();
            assert_eq!(found(got), *want, "byte {bytes}");
        }
        let end = locate(&roots, total as u64, 0, |i| {
            Ok::<_, ()>(nodes.get(&i).copied())
        });
        assert_eq!(found(end.unwrap().unwrap()), (sizes.len() as u64, 0));
        let past = locate(&roots, total as u64 + 1, 0, |i| {
            Ok::<_, ()>(nodes.get(&i).copied())
        });
        assert_eq!(
            past.unwrap().unwrap(),
            SeekState::PastEnd {
                byte_length: total as u64
            }
        );
    }

    #[test]
    fn padded_blocks_are_sought_by_their_values_bytes() {
        // Stored sizes with 8 bytes of padding each: values of 2, 4, 0 and 3 bytes.
        let (nodes, roots) = tree(&[10, 12, 8, 11]);
        let seek = |bytes: u64| {
            locate(&roots, bytes, 8, |i| Ok::<_, ()>(nodes.get(&i).copied()))
                .unwrap()
                .unwrap()
        };
        // Byte 6 starts the empty block 2: the block after the subtree ending there.
        let want = [
            (0, 0),
            (0, 1),
            (1, 0),
            (1, 1),
            (1, 2),
            (1, 3),
            (2, 0),
            (3, 1),
            (3, 2),
        ];
        for (bytes, want) in want.iter().enumerate() {
            assert_eq!(found(seek(bytes as u64)), *want, "byte {bytes}");
        }
        assert_eq!(found(seek(9)), (4, 0));
        assert_eq!(seek(10), SeekState::PastEnd { byte_length: 9 });
        // A node smaller than its blocks' padding is no tree written with it.
        let (nodes, roots) = tree(&[3, 12]);
        let bad = locate(&roots, 1, 8, |i| Ok::<_, ()>(nodes.get(&i).copied())).unwrap();
        assert!(bad.is_err(), "{bad:?}");
    }

    #[test]
    fn missing_children_stop_at_the_node_and_bad_ones_are_refused() {
        let sizes = [4; 8];
        let (nodes, roots) = tree(&sizes);
        // Only the root: the whole log is the span.
        let state = locate(&roots, 13, 0, |_| Ok::<_, ()>(None))
            .unwrap()
            .unwrap();
        assert_eq!(
            state,
            SeekState::Span {
                node: 7,
                start: 0,
                end: 8,
                depth: 3
            }
        );
        // Root and its children: the right half is the span.
        let state = locate(&roots, 21, 0, |i| {
            Ok::<_, ()>(nodes.get(&i).copied().filter(|_| i == 3 || i == 11))
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            state,
            SeekState::Span {
                node: 11,
                start: 4,
                end: 8,
                depth: 2
            }
        );
        // A child whose size was altered does not hash to its parent.
        let bad = locate(&roots, 21, 0, |i| {
            Ok::<_, ()>(nodes.get(&i).copied().map(|mut n| {
                if n.index == 3 {
                    n.size = 20;
                }
                n
            }))
        })
        .unwrap();
        assert!(bad.is_err(), "{bad:?}");
    }
}
