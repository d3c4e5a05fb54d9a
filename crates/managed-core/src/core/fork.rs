//! [`ManagedCore`]'s methods for forks (docs/forks.md): our own truncation, and a
//! replica following its writer's (the fork proof, the `hash` rounds, the reorg
//! applied). The work is in `storage/truncate.rs` and `crate::proof::reorg`.

use nova_hypercore_serialization::HypercoreError;
use tracing::{debug, info};

use super::{ManagedCore, Result, storage};
use crate::proof::{ProofError, Reorg};
use crate::{Proof, Truncation};

impl ManagedCore {
    /// Truncates our own log to its first `length` blocks under a new fork (JS
    /// `core.truncate(length)`: the fork becomes the current one plus 1), and returns
    /// the new fork. The prefix is signed under the new fork, the retracted blocks
    /// `length..` read as `OUT_OF_RANGE` from now on, and the change is checkpointed
    /// before this returns (JS does the same; its files stay openable by JS 10).
    /// Replicas learn of it from the new fork in `Synchronize`.
    ///
    /// Errors: `UNAUTHORIZED` on a replica; `OUT_OF_RANGE` (with the current length)
    /// when `length` is past the length; `IO_ERROR` if the files cannot be written (the
    /// log must then be reopened, which replays what was committed).
    pub async fn truncate(&self, length: u64) -> Result<u64> {
        if !self.inner.writable {
            return Err(self.not_writable());
        }
        let mut guard = self.inner.storage.write().await;
        let storage = self.usable_mut(&mut guard)?;
        let current = storage.tree().length();
        if length > current {
            return Err(HypercoreError::OutOfRange {
                log: self.inner.name.to_string(),
                seq: length,
                length: current,
            });
        }
        let fork = storage
            .tree()
            .fork()
            .checked_add(1)
            .ok_or_else(|| HypercoreError::Io {
                log: self.inner.name.to_string(),
                operation: "truncate".into(),
                source: std::io::Error::other("the fork id cannot grow past 2^64 - 1"),
            })?;
        let _turn = self.write_turn().await;
        if let Some(dir) = self.inner.path.clone() {
            // The fork a lost header is recreated at, recorded first: a record ahead of
            // the header (a crash before the entry) only makes a recovery sign under a
            // higher fork, which peers follow; one behind it would sign a second tree
            // under a fork peers already hold. Not written: nothing is changed.
            let written =
                tokio::task::spawn_blocking(move || storage::record_fork(&dir, fork)).await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return Err(self.io(format!("record fork {fork} before truncating"), source));
                }
                Err(e) => {
                    return Err(self.io(
                        format!("record fork {fork} before truncating"),
                        std::io::Error::other(e.to_string()),
                    ));
                }
            }
        }
        let storage = self.usable_mut(&mut guard)?;
        let truncation = match storage.truncate(length, fork) {
            Ok(t) => t,
            Err(e) => return Err(self.broken(e)),
        };
        // At once, before anything else is committed: see `storage/truncate.rs`. A
        // failure leaves memory ahead of the files: the log must be reopened.
        if let Err(e) = self.checkpoint_if_due(&mut guard, true).await {
            return Err(self.broken_by(e));
        }
        let storage = self.usable_mut(&mut guard)?;
        self.publish(storage);
        drop(guard);
        info!(
            log = %self.inner.name,
            kept = truncation.kept,
            from = truncation.old_length,
            fork,
            "truncated"
        );
        Ok(fork)
    }

    /// How many entries of the log as it was at fork `since` are still the same now:
    /// the whole length if the fork did not change, else the lowest cut of the
    /// truncations since (from the header's reorg hints, as JS keeps them: at most four;
    /// 0 when they do not reach back to `since`, which is safe: it only means "treat
    /// everything as new"). For a consumer that remembers how far it read a log.
    pub async fn kept_since(&self, since: u64) -> Result<u64> {
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        Ok(storage.kept_since(since))
    }

    /// Checks a fork proof from a peer on a higher fork: an upgrade from 0 to its length
    /// at its fork (what a `Request {fork: theirs, upgrade {0, length}}` brings back),
    /// and compares the new tree with ours (docs/forks.md §4.4). Nothing is written.
    ///
    /// `Ok(None)`: not applicable (a writer follows no other fork: another device with
    /// our key is a conflict, not ours to follow; or the proof is not for a higher
    /// fork). `SIGNATURE_INVALID` when the proof does not verify (a bad peer). Then
    /// ask for [`Reorg::want`]'s `hash` rounds ([`continue_reorg`](Self::continue_reorg))
    /// until it is `None`, and [`apply_reorg`](Self::apply_reorg).
    pub async fn verify_reorg(&self, proof: &Proof) -> Result<Option<Reorg>> {
        if self.inner.writable {
            debug!(log = %self.inner.name, fork = proof.fork, "a writer follows no other fork");
            return Ok(None);
        }
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        match storage.verify_reorg(proof) {
            Ok(reorg) => Ok(Some(reorg)),
            Err(ProofError::Storage(source)) => Err(self.io("verify a fork proof".into(), source)),
            Err(e @ (ProofError::Stale { .. } | ProofError::ForkMismatch { .. })) => {
                debug!(log = %self.inner.name, error = %e, "fork proof not applicable");
                Ok(None)
            }
            Err(e) => Err(self.invalid(0, format!("fork proof from a peer rejected: {e}"))),
        }
    }

    /// Takes one `hash` round of `reorg` (the answer to `Request {fork: reorg.fork(),
    /// hash {index: 2 * i, nodes: want.nodes}}` for some `i` in `want.start..want.end`).
    /// `Ok(Some(finished))`; `Ok(None)` when our tree changed since the reorg began
    /// (drop it; a new fork proof starts again). `SIGNATURE_INVALID` when the round
    /// does not prove the node asked for (a bad peer).
    pub async fn continue_reorg(&self, reorg: &mut Reorg, proof: &Proof) -> Result<Option<bool>> {
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        match storage.continue_reorg(reorg, proof) {
            Ok(done) => Ok(Some(done)),
            Err(ProofError::Storage(source)) => Err(self.io("verify a fork round".into(), source)),
            Err(e @ ProofError::Stale { .. }) => {
                debug!(log = %self.inner.name, error = %e, "fork rounds no longer apply");
                Ok(None)
            }
            Err(e) => Err(self.invalid(
                reorg.ancestors(),
                format!("fork round from a peer rejected: {e}"),
            )),
        }
    }

    /// Moves this replica to the fork a finished `reorg` proved (JS `Core.reorg`):
    /// blocks from [`Truncation::kept`] on are dropped (reads of them wait for, or
    /// fetch, the new fork's), the new fork's signed tree replaces ours, and the change
    /// is checkpointed before this returns. `Ok(None)`: not finished, or our tree
    /// changed since it began (another peer's reorg came first): nothing written.
    pub async fn apply_reorg(&self, reorg: &Reorg) -> Result<Option<Truncation>> {
        if self.inner.writable {
            return Ok(None);
        }
        if reorg.want().is_some() {
            return Ok(None);
        }
        let mut guard = self.inner.storage.write().await;
        self.usable_mut(&mut guard)?;
        let _turn = self.write_turn().await;
        let storage = self.usable_mut(&mut guard)?;
        let truncation = match storage.apply_reorg(reorg) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.broken(e)),
        };
        // At once, as for our own truncation (storage/truncate.rs).
        if let Err(e) = self.checkpoint_if_due(&mut guard, true).await {
            return Err(self.broken_by(e));
        }
        let storage = self.usable_mut(&mut guard)?;
        if self.needs_manifest() && !storage.needs_manifest() {
            self.refresh_manifest(storage);
        }
        self.publish(storage);
        drop(guard);
        info!(
            log = %self.inner.name,
            kept = truncation.kept,
            from = truncation.old_length,
            length = truncation.length,
            fork = truncation.fork,
            "followed the writer's truncation"
        );
        Ok(Some(truncation))
    }
}
