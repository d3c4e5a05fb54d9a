//! A writer's truncation (JS `Hypercore.truncate`, `Core._truncate`): a new fork whose
//! signed tree is a prefix of the old one. Written exactly as JS 10.31 writes it, so
//! either side can open the other's files (docs/forks.md §2.2):
//!
//! 1. one oplog entry `{treeNodes [], treeUpgrade {fork, ancestors n, length n, sig},
//!    bitfield drop n..old}`, the commit point;
//! 2. in memory: the tree cut (parents spanning the cut blank, slots past it unreadable),
//!    the bits cleared, the contiguous length lowered, a reorg hint;
//! 3. the caller checkpoints at once (the tree file is cut to `40 * (2n - 1)` bytes, the
//!    header names the new fork): JS cannot replay an unflushed truncation followed by
//!    appends, so our store must never hold one for long.
//!
//! The `data` file is left alone, as JS does: appends after the cut write over the
//! retracted bytes, and nothing reads past the tree's byte length.

use hypercore_schema::Proof;

use super::{Storage, StorageError, corrupted, io};
use crate::crypto::Node;
use crate::oplog::{BitfieldUpdate, Entry, ReorgHint, TreeUpgrade};
use crate::proof::{self, ProofError, Reorg};

/// At most this many reorg hints are kept in the header (JS `addReorgHint`).
const MAX_REORG_HINTS: usize = 4;

/// The file (ours; JS ignores it) beside a log's four files that records the fork of
/// its writer's last truncation, as 8 bytes little-endian. The header holds the fork
/// too; this copy is for the day the header is lost: the writer then rebuilds its log
/// from the tree and data files and signs it again under the recorded fork, which is
/// the tree and signature its peers hold (under fork 0 its peers, on a higher fork,
/// would never follow it again). Absent: the log never truncated here (fork 0).
pub(crate) const FORK_FILE: &str = "fork";

/// The fork recorded in `dir`'s [`FORK_FILE`], 0 when there is none (or it is not 8
/// bytes: a damaged record is no record).
pub(crate) fn recorded_fork(dir: Option<&std::path::Path>) -> u64 {
    dir.and_then(|d| std::fs::read(d.join(FORK_FILE)).ok())
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Records `fork` in `dir`'s [`FORK_FILE`]: written to a temporary file, synced, then
/// renamed over the old one (a crash leaves the old record or the new one).
pub(crate) fn record_fork(dir: &std::path::Path, fork: u64) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{FORK_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&fork.to_le_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(FORK_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

/// What a truncation did: our own ([`crate::ManagedCore::truncate`]) or a writer's
/// that this replica followed ([`crate::ManagedCore::apply_reorg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// Blocks kept from before (JS `ancestors`, the first argument of its `truncate`
    /// event): blocks `kept..old_length` of the old fork are gone.
    pub kept: u64,
    /// The length before.
    pub old_length: u64,
    /// The length after (a replica's new fork may be longer than before).
    pub length: u64,
    /// The new fork id.
    pub fork: u64,
}

impl Storage {
    /// Truncates our own log to `length` blocks under `fork` (which must be above the
    /// current one; `length` at most the current length: the caller checks both and
    /// reports them to the user). Signs the prefix (an empty signature at length 0, the
    /// `null` JS 10 writes) and commits the entry; the caller must checkpoint next.
    pub(crate) fn truncate(&mut self, length: u64, fork: u64) -> Result<Truncation, StorageError> {
        let Some(signer) = &self.signer else {
            return Err(StorageError::NotWritable);
        };
        let old_length = self.tree.length();
        let old_fork = self.tree.fork();
        if length > old_length || fork <= old_fork {
            return Err(corrupted(
                &self.files.oplog,
                format!(
                    "truncate to {length} at fork {fork} from length {old_length} fork {old_fork}: only shorter or equal lengths at a higher fork"
                ),
            ));
        }
        let (roots, byte_length) = self
            .tree
            .prefix(&self.files.tree, length)
            .map_err(|e| corrupted(&self.files.tree, format!("{e}; cannot truncate")))?;
        let signature = if length == 0 {
            Vec::new()
        } else {
            signer.sign(&roots, length, fork)
        };
        let entry = Entry {
            user_data: None,
            // An empty list, not none: JS writes `[]` (flags 0x0e), byte for byte.
            tree_nodes: Some(Vec::new()),
            tree_upgrade: Some(TreeUpgrade {
                fork,
                ancestors: length,
                length,
                signature: signature.clone(),
            }),
            bitfield: Some(BitfieldUpdate {
                drop: true,
                start: length,
                length: old_length - length,
            }),
        };
        self.write_entry(&entry)?;
        self.apply_truncation(length, length, fork, roots, byte_length, signature, &[])?;
        Ok(Truncation {
            kept: length,
            old_length,
            length,
            fork,
        })
    }

    /// The blocks of the log as it was at fork `since` that every truncation since
    /// kept (the lowest `ancestors` of the reorg hints after `since`): entries below it
    /// are the same as then. The whole length if the fork is still `since`; 0 when the
    /// hints (at most four) no longer reach back that far.
    pub(crate) fn kept_since(&self, since: u64) -> u64 {
        let fork = self.tree.fork();
        if fork == since {
            return self.tree.length();
        }
        let hints = &self.header.hints.reorgs;
        let covered = hints.iter().any(|h| h.from <= since && h.to > since);
        if fork < since || !covered {
            return 0;
        }
        hints
            .iter()
            .filter(|h| h.to > since)
            .map(|h| h.ancestors)
            .min()
            .unwrap_or(0)
            .min(self.tree.length())
    }

    /// Checks a fork proof from a peer on a higher fork (see [`proof::verify_reorg`]).
    pub(crate) fn verify_reorg(&self, proof: &Proof) -> Result<Reorg, ProofError> {
        proof::verify_reorg(
            &self.tree.source(&self.files.tree),
            &self.tree_state(),
            &self.verifier,
            proof,
        )
    }

    /// Takes one `hash` round of `reorg` ([`Reorg::update`]); `Stale` if our tree
    /// changed since the reorg started.
    pub(crate) fn continue_reorg(
        &self,
        reorg: &mut Reorg,
        proof: &Proof,
    ) -> Result<bool, ProofError> {
        if !self.reorg_applies(reorg) {
            return Err(ProofError::Stale {
                reason: "our tree changed since the fork proof".into(),
            });
        }
        reorg.update(
            &self.tree.source(&self.files.tree),
            &self.tree_state(),
            proof,
        )
    }

    fn reorg_applies(&self, reorg: &Reorg) -> bool {
        self.tree.fork() == reorg.from_fork && self.tree.length() == reorg.from_length
    }

    /// Moves this replica to the fork `reorg` proved (JS `Core.reorg`): one entry
    /// `{treeNodes: the proven nodes, treeUpgrade {fork, ancestors, length, sig},
    /// bitfield drop ancestors..old}`, then the same in memory as a truncation, with
    /// the new fork's nodes added after the cut. `None` when the search is not over or
    /// our tree changed since it began (JS `commitable`). The caller checkpoints next.
    pub(crate) fn apply_reorg(
        &mut self,
        reorg: &Reorg,
    ) -> Result<Option<Truncation>, StorageError> {
        if reorg.want.is_some() || !self.reorg_applies(reorg) || self.signer.is_some() {
            return Ok(None);
        }
        let old_length = self.tree.length();
        let new = &reorg.tree;
        let ancestors = reorg.ancestors.min(old_length).min(new.length);
        let nodes = reorg.nodes();
        let entry = Entry {
            user_data: None,
            tree_nodes: Some(nodes.clone()),
            tree_upgrade: Some(TreeUpgrade {
                fork: new.fork,
                ancestors,
                length: new.length,
                signature: new.signature.clone(),
            }),
            bitfield: Some(BitfieldUpdate {
                drop: true,
                start: ancestors,
                length: old_length - ancestors,
            }),
        };
        self.write_entry(&entry)?;
        self.apply_truncation(
            ancestors,
            new.length,
            new.fork,
            new.roots.clone(),
            new.byte_length,
            new.signature.clone(),
            &nodes,
        )?;
        self.adopt_legacy_if_pending();
        Ok(Some(Truncation {
            kept: ancestors,
            old_length,
            length: new.length,
            fork: new.fork,
        }))
    }

    /// The in-memory side of a truncation keeping `ancestors` blocks, whose entry is
    /// committed: the cut, the new fork's `nodes` (a replica's reorg), the new signed
    /// state of `length` blocks, the bits, the contiguous length and the reorg hint.
    #[allow(clippy::too_many_arguments)] // one signed state, spelled out
    fn apply_truncation(
        &mut self,
        ancestors: u64,
        length: u64,
        fork: u64,
        roots: Vec<Node>,
        byte_length: u64,
        signature: Vec<u8>,
        nodes: &[Node],
    ) -> Result<(), StorageError> {
        let old_length = self.tree.length();
        let old_fork = self.tree.fork();
        add_reorg_hint(
            &mut self.header.hints.reorgs,
            old_length,
            old_fork,
            fork,
            ancestors,
        );
        if ancestors < old_length {
            self.tree.truncate_to(ancestors);
            self.bitfield
                .set_range(ancestors, old_length - ancestors, false);
        }
        self.tree.add_nodes(nodes.iter().copied());
        self.tree
            .set_signed(length, byte_length, fork, roots, signature);
        self.contiguous = self.contiguous.min(ancestors);
        self.header_changed = true;
        if self.signer.is_some() {
            // Sizes past the cut would only mislead a rebuild (it keeps nothing that
            // does not verify, but reads them).
            let keep = ancestors.saturating_mul(super::sizes::SIZE_BYTES);
            if self.files.sizes.len() > keep {
                self.files
                    .sizes
                    .truncate(keep)
                    .map_err(io("truncate", &self.files.sizes))?;
            }
        }
        Ok(())
    }
}

/// JS `addReorgHint`: nothing for an empty log or an unchanged fork; at most
/// [`MAX_REORG_HINTS`], the oldest dropped first; hints that kept more blocks than this
/// one dropped from the end.
fn add_reorg_hint(
    hints: &mut Vec<ReorgHint>,
    old_length: u64,
    old_fork: u64,
    fork: u64,
    ancestors: u64,
) {
    if old_length == 0 || old_fork == fork {
        return;
    }
    while hints.len() >= MAX_REORG_HINTS {
        hints.remove(0);
    }
    while hints.last().is_some_and(|h| h.ancestors > ancestors) {
        hints.pop();
    }
    hints.push(ReorgHint {
        from: old_fork,
        to: fork,
        ancestors,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reorg_hints_follow_js() {
        let mut hints = Vec::new();
        add_reorg_hint(&mut hints, 0, 0, 1, 0);
        assert!(hints.is_empty(), "an empty log gets no hint");
        add_reorg_hint(&mut hints, 10, 0, 1, 5);
        add_reorg_hint(&mut hints, 7, 1, 1, 3);
        assert_eq!(hints.len(), 1, "an unchanged fork gets no hint");
        add_reorg_hint(&mut hints, 7, 1, 2, 6);
        assert_eq!(hints.len(), 2);
        // A cut below earlier ones replaces them.
        add_reorg_hint(&mut hints, 9, 2, 3, 4);
        assert_eq!(
            hints,
            [ReorgHint {
                from: 2,
                to: 3,
                ancestors: 4
            }]
        );
        for fork in 4..10 {
            add_reorg_hint(&mut hints, 9, fork - 1, fork, 4);
        }
        assert_eq!(hints.len(), MAX_REORG_HINTS);
        assert_eq!(hints[0].from, 5, "the oldest dropped first");
    }
}

/// Our files against JS 10.31.12's for the same truncations (golden vectors from
/// `js/golden/truncate-vectors.mjs`, docs/forks.md §2.2).
#[cfg(test)]
mod golden {
    use std::path::{Path, PathBuf};

    use ed25519_dalek::SigningKey;
    use nova_hypercore_serialization::{ErrorCode, LogName};
    use serde_json::Value;

    use crate::oplog::{self, Entry};
    use crate::{ManagedCore, OpenOptions};

    fn golden_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/truncate")
    }

    fn step(name: &str) -> Value {
        let text = std::fs::read_to_string(golden_dir().join("vectors.json")).unwrap();
        let vectors: Value = serde_json::from_str(&text).unwrap();
        vectors["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[0x2a; 32])
    }

    async fn open(dir: &Path) -> ManagedCore {
        ManagedCore::open(
            dir,
            LogName::parse("golden").unwrap(),
            OpenOptions::new().signing_key(key()),
        )
        .await
        .unwrap()
    }

    /// Our directory after a step equals JS's: `tree` and `bitfield` byte for byte,
    /// `data` up to JS's byte length, the header as JS decodes it, no entries left.
    fn assert_like_js(ours: &Path, name: &str) {
        let js = golden_dir().join(name);
        let v = step(name);
        for file in ["tree", "bitfield"] {
            assert_eq!(
                std::fs::read(ours.join(file)).unwrap(),
                std::fs::read(js.join(file)).unwrap(),
                "{name}: {file} differs from JS's"
            );
        }
        let byte_length = v["byteLength"].as_u64().unwrap() as usize;
        assert_eq!(
            std::fs::read(ours.join("data")).unwrap()[..byte_length],
            std::fs::read(js.join("data")).unwrap()[..byte_length],
            "{name}: data differs"
        );
        let opened = oplog::open(&std::fs::read(ours.join("oplog")).unwrap()).unwrap();
        assert!(
            opened.entries.is_empty(),
            "{name}: not checkpointed at once"
        );
        let header = opened.header.unwrap();
        assert_eq!(header.tree.fork, v["fork"].as_u64().unwrap(), "{name}");
        assert_eq!(header.tree.length, v["length"].as_u64().unwrap(), "{name}");
        assert_eq!(
            hex(&header.tree.root_hash),
            v["rootHash"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            hex(&header.tree.signature),
            v["signature"].as_str().unwrap_or(""),
            "{name}: signature"
        );
        let reorgs: Vec<(u64, u64, u64)> = header
            .hints
            .reorgs
            .iter()
            .map(|h| (h.from, h.to, h.ancestors))
            .collect();
        let js_reorgs: Vec<(u64, u64, u64)> = v["reorgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["from"].as_u64().unwrap(),
                    h["to"].as_u64().unwrap(),
                    h["ancestors"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(reorgs, js_reorgs, "{name}: reorg hints");
        assert_eq!(
            header.hints.contiguous_length,
            v["contiguousLength"].as_u64().unwrap(),
            "{name}"
        );
    }

    #[tokio::test]
    async fn our_truncations_write_what_js_writes() {
        let dir = tempfile::tempdir().unwrap();
        let core = open(dir.path()).await;
        let blocks: Vec<Vec<u8>> = (0..10).map(|i| format!("entry {i}").into_bytes()).collect();
        core.append_batch(&blocks).await.unwrap();
        assert_eq!(core.truncate(5).await.unwrap(), 1);
        assert_like_js(dir.path(), "truncate-5");
        // The entry we wrote, byte for byte (the oplog was checkpointed: encode it again
        // from what JS wrote).
        let v = step("truncate-5");
        let entry = hex_bytes(v["entry"].as_str().unwrap());
        let decoded = Entry::decode(&entry).unwrap();
        assert_eq!(decoded.encode(), entry);
        assert_eq!(decoded.tree_nodes, Some(Vec::new()));
        core.append_batch(&[b"entry 5 f1".as_slice(), b"entry 6 f1"])
            .await
            .unwrap();
        assert_eq!(core.truncate(0).await.unwrap(), 2);
        assert_like_js(dir.path(), "truncate-0");
        // Reads of retracted seqs are out of range; appends go on at the new fork.
        let e = core.get(0).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::OutOfRange);
        core.append(b"entry 0 f2").await.unwrap();
        drop(core);
        let core = open(dir.path()).await;
        let info = core.info().await.unwrap();
        assert_eq!((info.length, info.fork), (1, 2));
        assert_eq!(core.get(0).await.unwrap(), b"entry 0 f2");
    }

    #[tokio::test]
    async fn we_open_and_continue_a_store_js_truncated() {
        for (name, length, fork) in [("truncate-5", 5u64, 1u64), ("truncate-0", 0, 2)] {
            let dir = tempfile::tempdir().unwrap();
            for file in ["oplog", "tree", "bitfield", "data"] {
                std::fs::copy(golden_dir().join(name).join(file), dir.path().join(file)).unwrap();
            }
            let core = open(dir.path()).await;
            let info = core.info().await.unwrap();
            assert_eq!((info.length, info.fork), (length, fork), "{name}");
            for seq in 0..length {
                assert_eq!(
                    core.get(seq).await.unwrap(),
                    format!("entry {seq}").as_bytes()
                );
            }
            assert_eq!(
                core.get(length).await.unwrap_err().code(),
                ErrorCode::OutOfRange
            );
            core.append(b"after js").await.unwrap();
            drop(core);
            let core = open(dir.path()).await;
            assert_eq!(core.get(length).await.unwrap(), b"after js", "{name}");
        }
    }

    /// A truncation whose entry was written but not checkpointed (a crash right after
    /// the commit point), followed by appends also only in the oplog: the replay cuts
    /// the tree before adding the later nodes (JS cannot replay this, docs/forks.md
    /// §2.4), and the reopened log reads the new fork's blocks, never the old ones.
    #[tokio::test]
    async fn an_unflushed_truncation_and_later_appends_replay() {
        use super::super::{Files, Format, Keys, Storage};
        use crate::disk::Durability;
        let dir = tempfile::tempdir().unwrap();
        let roots = {
            let files = Files::open(dir.path(), Durability::Flush, None).unwrap();
            let mut storage = Storage::open(files, Keys::Secret(key()), Format::Legacy).unwrap();
            let old: Vec<Vec<u8>> = (0..16).map(|i| format!("entry {i}").into_bytes()).collect();
            let prepared = storage.append_prepare(&old).unwrap();
            storage.append_commit(prepared).unwrap();
            storage.checkpoint_pages().unwrap();
            storage.checkpoint_header().unwrap();
            storage.truncate(5, 1).unwrap();
            let new: Vec<Vec<u8>> = (5..9)
                .map(|i| format!("entry {i} f1").into_bytes())
                .collect();
            let prepared = storage.append_prepare(&new).unwrap();
            storage.append_commit(prepared).unwrap();
            storage.tree().roots().to_vec()
            // dropped without a checkpoint: the entries are all there is
        };
        let core = open(dir.path()).await;
        let info = core.info().await.unwrap();
        assert_eq!((info.length, info.fork), (9, 1));
        for seq in 0..9 {
            let want = if seq < 5 {
                format!("entry {seq}")
            } else {
                format!("entry {seq} f1")
            };
            assert_eq!(core.get(seq).await.unwrap(), want.as_bytes(), "seq {seq}");
        }
        assert_eq!(core.get(9).await.unwrap_err().code(), ErrorCode::OutOfRange);
        let guard = core.inner.storage.read().await;
        let storage = guard.as_ref().unwrap();
        assert_eq!(storage.tree().roots(), roots.as_slice());
        // Old fork's nodes past the cut are gone (leaf 9, and the parent of leaves 8
        // and 9), not readable from the file they are still in.
        for index in [18, 17, 23] {
            assert_eq!(storage.node(index).unwrap(), None, "stale node {index}");
        }
    }

    /// Power cuts around a truncation of our own log: after the entry only, after the
    /// tree flush (file cut, header not yet written), each with appends after it or
    /// not. The reopened log is at the new fork with its blocks, holds no bit of a
    /// retracted block, and has checkpointed what it replayed (so JS can open it).
    #[tokio::test]
    async fn power_cuts_around_a_truncation_reopen_at_the_new_fork() {
        use super::super::{Files, Format, Keys, Storage};
        use crate::disk::Durability;
        for (flushed, appends) in [(false, 0u64), (false, 2), (true, 0), (true, 2)] {
            for cut in [4u64, 5, 8] {
                let case = format!("cut {cut}, flushed {flushed}, {appends} appends");
                let dir = tempfile::tempdir().unwrap();
                {
                    let files = Files::open(dir.path(), Durability::Flush, None).unwrap();
                    let mut storage =
                        Storage::open(files, Keys::Secret(key()), Format::Legacy).unwrap();
                    let old: Vec<Vec<u8>> =
                        (0..16).map(|i| format!("entry {i}").into_bytes()).collect();
                    let prepared = storage.append_prepare(&old).unwrap();
                    storage.append_commit(prepared).unwrap();
                    storage.checkpoint_pages().unwrap();
                    storage.checkpoint_header().unwrap();
                    storage.truncate(cut, 1).unwrap();
                    let new: Vec<Vec<u8>> = (cut..cut + appends)
                        .map(|i| format!("entry {i} f1").into_bytes())
                        .collect();
                    if !new.is_empty() {
                        let prepared = storage.append_prepare(&new).unwrap();
                        storage.append_commit(prepared).unwrap();
                    }
                    if flushed {
                        storage.checkpoint_pages().unwrap(); // the header never written
                    }
                }
                let core = open(dir.path()).await;
                let info = core.info().await.unwrap();
                let length = cut + appends;
                assert_eq!((info.length, info.fork), (length, 1), "{case}");
                for seq in 0..length {
                    let want = if seq < cut {
                        format!("entry {seq}")
                    } else {
                        format!("entry {seq} f1")
                    };
                    assert_eq!(core.get(seq).await.unwrap(), want.as_bytes(), "{case}");
                }
                {
                    let guard = core.inner.storage.read().await;
                    let storage = guard.as_ref().unwrap();
                    for seq in length..16 {
                        assert!(!storage.has(seq), "{case}: bit {seq} of the old fork");
                    }
                }
                let opened =
                    oplog::open(&std::fs::read(dir.path().join("oplog")).unwrap()).unwrap();
                assert!(
                    opened.entries.is_empty(),
                    "{case}: not checkpointed at open"
                );
                assert_eq!(opened.header.unwrap().tree.fork, 1, "{case}");
            }
        }
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
