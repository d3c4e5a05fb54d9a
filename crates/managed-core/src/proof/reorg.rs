//! Following a writer's truncation: verifying a *fork proof* and finding how much of our
//! tree the new fork keeps (JS `MerkleTree.reorg` and `ReorgBatch`, docs/forks.md §4.4).
//!
//! A replica on fork `f` that meets a peer on fork `g > f` asks it for an upgrade from 0
//! to its length at fork `g`. [`verify_reorg`] checks that proof like any upgrade (the
//! roots of the new tree, their signature over the new fork), then compares the new
//! roots with our tree: the first root that we lack or that differs (`diff`) bounds the
//! common prefix. While `diff` is an interior node spanning blocks we hold, the replica
//! asks for `hash` proofs of a leaf under it ([`Reorg::want`]); [`Reorg::update`] checks
//! each against `diff` and walks down: a left child equal to ours sends the walk right, a
//! differing one left. It ends at a leaf or at a range we do not hold, and
//! [`Reorg::ancestors`] is the first block not proven shared.
//!
//! Guarantee (as JS): going right needs a *local* node with the same hash and size, so
//! every block below `ancestors` lies in a subtree proven identical to the new fork's;
//! `ancestors` is never above the true common prefix (below it when we lack nodes).
//!
//! Stricter than JS: the fork proof must carry an upgrade from 0 and nothing else (JS
//! also takes "pushed" blocks with it), a round's root must equal `diff` in size too,
//! and the rounds are capped ([`MAX_ROUNDS`], one per tree level is all it takes).

use std::collections::HashMap;

use hypercore_schema::Proof;

use super::{
    MAX_LENGTH, NodeSource, ProofError, SignedTree, TreeState, check_state, local_node, malformed,
    signed_tree, verify_tree, verify_upgrade, wire_nodes,
};
use crate::crypto::Node;
use crate::verifier::Verifier;

/// The most `hash` rounds one reorg may take (a tree of 2^52 blocks is 53 levels deep).
pub(crate) const MAX_ROUNDS: u32 = 64;

/// What the next round asks for: a leaf in `start..end` (blocks), proven `nodes` levels
/// up (to `diff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkWant {
    /// First block of the range.
    pub start: u64,
    /// End of the range (exclusive, at most our old length).
    pub end: u64,
    /// Levels from a leaf up to `diff`: the `nodes` of the `hash` request.
    pub nodes: u64,
}

/// A fork proof being followed: the new signed tree, what the proofs proved, and how far
/// the search for the common prefix got.
#[derive(Debug, Clone)]
pub struct Reorg {
    /// The new signed tree (fork, length, roots, signature).
    pub(crate) tree: SignedTree,
    /// Our fork and length when the reorg started: it applies only to that state.
    pub(crate) from_fork: u64,
    /// See `from_fork`.
    pub(crate) from_length: u64,
    /// Every node the proofs proved, by index (all belong to the new fork's tree).
    nodes: HashMap<u64, Node>,
    /// The highest node known to differ (or to be missing locally).
    diff: Option<Node>,
    /// Blocks proven shared so far (final once `want` is `None`).
    pub(crate) ancestors: u64,
    /// The next round, or `None` when the search is over.
    pub(crate) want: Option<ForkWant>,
    /// Rounds taken.
    rounds: u32,
}

impl Reorg {
    /// The new fork.
    pub fn fork(&self) -> u64 {
        self.tree.fork
    }

    /// The new fork's length.
    pub fn length(&self) -> u64 {
        self.tree.length
    }

    /// Blocks of our tree the new fork keeps, as far as proven so far (final once
    /// [`want`](Self::want) is `None`).
    pub fn ancestors(&self) -> u64 {
        self.ancestors
    }

    /// The next `hash` round to ask the peer for: a leaf in `start..end` (the caller
    /// picks one the peer holds) with `nodes` levels; `None` when the reorg can be
    /// applied.
    pub fn want(&self) -> Option<ForkWant> {
        self.want
    }

    /// The nodes to store with the reorg, by index.
    pub(crate) fn nodes(&self) -> Vec<Node> {
        let mut nodes: Vec<Node> = self.nodes.values().copied().collect();
        nodes.sort_by_key(|n| n.index);
        nodes
    }

    /// Takes one round's `hash` proof (JS `ReorgBatch.update`): its root must be `diff`
    /// (hash and size), then the walk goes down. `Ok(true)` when the search is over.
    pub(crate) fn update(
        &mut self,
        tree: &impl NodeSource,
        state: &TreeState<'_>,
        proof: &Proof,
    ) -> Result<bool, ProofError> {
        let (Some(want), Some(diff)) = (self.want, self.diff) else {
            return Ok(true);
        };
        if proof.fork != self.tree.fork {
            return Err(ProofError::ForkMismatch {
                ours: self.tree.fork,
                theirs: proof.fork,
            });
        }
        if proof.block.is_some() || proof.seek.is_some() || proof.upgrade.is_some() {
            return Err(malformed("a fork round carries a hash proof only"));
        }
        let Some(hash) = &proof.hash else {
            return Err(malformed("a fork round without a hash proof"));
        };
        if hash.index % 2 != 0 || hash.index / 2 < want.start || hash.index / 2 >= want.end {
            return Err(malformed(format!(
                "fork round for node {} outside blocks {}..{}",
                hash.index, want.start, want.end
            )));
        }
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(malformed("too many fork rounds"));
        }
        let hash_nodes = wire_nodes(&hash.nodes, "hash")?;
        let mut proven = Vec::new();
        let root = verify_tree(None, Some((hash.index, &hash_nodes)), &[], &mut proven)?;
        if root != Some(diff) {
            return Err(malformed(format!(
                "fork round does not prove node {} of the new tree",
                diff.index
            )));
        }
        for node in &proven {
            self.nodes.insert(node.index, *node);
        }
        self.walk(tree, state)?;
        Ok(self.want.is_none())
    }

    /// Walks down from `diff` through proven nodes (JS `ReorgBatch._update`): left when
    /// the left child is not ours, right when it is; then `diff` moves there.
    fn walk(&mut self, tree: &impl NodeSource, state: &TreeState<'_>) -> Result<(), ProofError> {
        let Some(start) = self.diff else {
            return Ok(());
        };
        let mut at = start;
        while at.index % 2 == 1 {
            let Some(left_index) = flat_tree::left_child(at.index) else {
                break;
            };
            let Some(left) = self.nodes.get(&left_index).copied() else {
                break;
            };
            if local_node(tree, state, left_index)? == Some(left) {
                let Some(right) = self.nodes.get(&flat_tree::sibling(left_index)).copied() else {
                    break;
                };
                at = right;
            } else {
                at = left;
            }
        }
        if start.index % 2 == 0 {
            self.want = None; // a leaf: done
            return Ok(());
        }
        if at == start {
            return Ok(()); // no step down (not finished; the next round goes on)
        }
        self.set_diff(at);
        Ok(())
    }

    /// JS `_updateDiffRoot`: `diff` bounds the common prefix at its first block; the
    /// search ends at a leaf or when `diff` spans none of our blocks.
    fn set_diff(&mut self, diff: Node) {
        let (first, last) = flat_tree::spans(diff.index);
        let start = first / 2;
        let end = self.from_length.min(last / 2 + 1);
        self.ancestors = start;
        self.diff = Some(diff);
        if diff.index.is_multiple_of(2) || self.from_length == 0 || end <= start {
            self.want = None;
            return;
        }
        self.want = Some(ForkWant {
            start,
            end,
            nodes: flat_tree::depth(diff.index),
        });
    }
}

/// Verifies a fork proof from a peer on a higher fork: an upgrade from 0 to its length,
/// signed over its fork (JS `MerkleTree.reorg` plus `Core.verifyReorg`). Returns the
/// reorg with its first `want`, or finished. Nothing is written.
pub(crate) fn verify_reorg(
    tree: &impl NodeSource,
    state: &TreeState<'_>,
    verifier: &Verifier,
    proof: &Proof,
) -> Result<Reorg, ProofError> {
    check_state(state)?;
    if proof.fork <= state.fork {
        return Err(ProofError::ForkMismatch {
            ours: state.fork,
            theirs: proof.fork,
        });
    }
    if proof.block.is_some() || proof.hash.is_some() || proof.seek.is_some() {
        return Err(malformed("a fork proof carries an upgrade only"));
    }
    let Some(up) = &proof.upgrade else {
        return Err(malformed("a fork proof without an upgrade"));
    };
    if up.start != 0 {
        return Err(malformed(format!("a fork proof from {}, not 0", up.start)));
    }
    if up.length == 0 || up.length > MAX_LENGTH {
        return Err(malformed("fork proof length out of range"));
    }
    let upgrade_nodes = wire_nodes(&up.nodes, "upgrade")?;
    let additional_nodes = wire_nodes(&up.additional_nodes, "additional")?;
    let mut proven = Vec::new();
    let (roots, _) = verify_upgrade(
        up,
        &upgrade_nodes,
        &additional_nodes,
        None,
        &[],
        &mut proven,
    )?;
    let signed = signed_tree(
        roots,
        proof.fork,
        &up.signature,
        verifier,
        "fork proof roots",
    )?;
    let mut reorg = Reorg {
        tree: signed.clone(),
        from_fork: state.fork,
        from_length: state.length,
        nodes: proven.iter().map(|n| (n.index, *n)).collect(),
        diff: None,
        ancestors: 0,
        want: Some(ForkWant {
            start: 0,
            end: 0,
            nodes: 0,
        }),
        rounds: 0,
    };
    for root in &signed.roots {
        if local_node(tree, state, root.index)? == Some(*root) {
            continue;
        }
        reorg.set_diff(*root);
        break;
    }
    if reorg.diff.is_none() {
        // Every new root is ours: the new fork keeps all of its length.
        reorg.want = None;
        reorg.ancestors = signed.length;
    } else {
        reorg.walk(tree, state)?;
    }
    Ok(reorg)
}
