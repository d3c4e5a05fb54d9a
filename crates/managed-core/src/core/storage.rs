//! [`Storage`]: one log's five files and its state in memory (JS hypercore's `core.js`).
//!
//! Open replays the oplog over the last checkpoint; appends and verified proofs write the
//! data file, then one oplog entry (the commit point); a checkpoint writes the buffered
//! tree nodes and bitfield pages, then a new header into the spare slot, then empties
//! the oplog. Synchronous and single-owner: [`crate::ManagedCore`] holds it behind a lock
//! and does the `fdatasync`s its durability mode asks for between the steps
//! ([`Storage::append_prepare`] / [`Storage::append_commit`], [`Storage::checkpoint_pages`]
//! / [`Storage::checkpoint_header`]).
//!
//! Longer than the house ~800 lines: the oplog replay, checkpoint and proof application
//! share one in-memory state that must change together (crash safety depends on their
//! order); reading, rebuilding and block sizes are in their own modules already.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hypercore_schema::{Proof, RequestBlock, RequestSeek, RequestUpgrade};

use crate::bitfield::{BYTES_PER_PAGE, Bitfield};
use crate::block_store::{BlockStore, MAX_BLOCK_BYTES};
use crate::crypto::Node;
use crate::disk::{DiskFile, Durability};
use crate::file_budget::FileBudget;
use crate::manifest::Manifest;
use crate::merkle_tree::{AppendBatch, MerkleTree, NODE_BYTES};
use crate::oplog::{
    self, BitfieldUpdate, Entry, Header, HeaderManifest, Slots, TreeHeader, TreeUpgrade,
};
use crate::proof::{self, ProofError, ProofRequest, TreeState, VerifiedProof};
use crate::verifier::{Signer, Verifier};

use super::read::{self, ReadError, Verified};
use super::rebuild::{self, RebuildError, Target};
use super::sizes;

mod truncate;
pub use truncate::Truncation;
pub(crate) use truncate::record_fork;

/// Oplog entry bytes after which the next append or apply checkpoints.
const CHECKPOINT_OPLOG_BYTES: u64 = 256 * 1024;
/// Pending tree nodes after which the next append or apply checkpoints.
const CHECKPOINT_NODES: usize = 16 * 1024;
/// Where the oplog's entries start (after the two 4 KiB header slots).
const ENTRIES_AT: u64 = 8192;
/// The largest length accepted from a file or a peer (2^52, as for proofs): every
/// flat-tree index (2 * length) stays below 2^53, what JS can count.
use crate::proof::MAX_LENGTH;

/// How a log is keyed when it is opened.
#[derive(Debug, Clone)]
pub(crate) enum Keys {
    /// A new random key pair kept in the oplog header (logs whose owner keeps no key
    /// file: tests, scratch logs, plain `ManagedCore` users).
    Generate,
    /// A signing key held elsewhere (the manager's `keys/`): never written here.
    Secret(ed25519_dalek::SigningKey),
    /// Only the signer's public key: a read-only replica whose core key follows from it
    /// and the format (legacy: the key itself; v1: its default manifest's hash).
    Public(ed25519_dalek::VerifyingKey),
    /// Only the core key: a read-only replica whose manifest (and so whether it is a
    /// legacy or a manifest core) is learnt from peers.
    Core([u8; 32]),
}

/// How a new log is keyed and signed (see [`crate::CoreFormat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Format {
    /// Hypercore 10: core key = public key, legacy signatures.
    #[default]
    Legacy,
    /// Hypercore 11 default: core key = hash of the default v1 manifest.
    V1,
}

/// Why opening or using the files failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StorageError {
    /// A file does not hold what it must (names the file and the seq range affected).
    #[error("{file}: {reason}")]
    Corrupted {
        /// The file at fault.
        file: PathBuf,
        /// What is wrong, with the seq range affected.
        reason: String,
    },
    /// The key given does not match the stored log.
    #[error("{0}")]
    KeyMismatch(String),
    /// The log is read-only here.
    #[error("the log is read-only here: only the holder of its secret key can append")]
    NotWritable,
    /// I/O on a file failed.
    #[error("{operation} {file}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// On which file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The five files, in the order they are synced: data, tree, bitfield, sizes, then
/// oplog. `data`, `tree`, `bitfield` and `oplog` are JS hypercore's; `sizes` is ours
/// ([`super::sizes`]: block sizes kept for a local rebuild when tree leaves are lost).
#[derive(Debug, Clone)]
pub(crate) struct Files {
    /// The log's directory (`None` in memory): where [`truncate::FORK_FILE`] lives.
    pub(crate) dir: Option<PathBuf>,
    pub(crate) data: Arc<DiskFile>,
    pub(crate) tree: Arc<DiskFile>,
    pub(crate) bitfield: Arc<DiskFile>,
    pub(crate) sizes: Arc<DiskFile>,
    pub(crate) oplog: Arc<DiskFile>,
}

impl Files {
    /// Opens (creating) the five files in `dir`, under `budget` if given.
    pub(crate) fn open(
        dir: &Path,
        durability: Durability,
        budget: Option<&FileBudget>,
    ) -> Result<Self, (PathBuf, std::io::Error)> {
        let open = |name: &str, lazy: bool| {
            let path = dir.join(name);
            let file = if lazy {
                DiskFile::open_lazy_in(&path, durability, budget)
            } else {
                DiskFile::open_in(&path, durability, budget)
            };
            file.map(Arc::new).map_err(|e| (path, e))
        };
        // Under a budget (the manager's logs) tree, bitfield and sizes are created by
        // their first write, a checkpoint: a new log is two files, as JS hypercore 10
        // makes it, until then (creating a file is the dearest step of a new log).
        Ok(Files {
            dir: Some(dir.to_owned()),
            data: open("data", false)?,
            tree: open("tree", true)?,
            bitfield: open("bitfield", true)?,
            sizes: open("sizes", true)?,
            oplog: open("oplog", false)?,
        })
    }

    /// Five memory files.
    pub(crate) fn memory() -> Self {
        Files {
            dir: None,
            data: Arc::new(DiskFile::memory("data")),
            tree: Arc::new(DiskFile::memory("tree")),
            bitfield: Arc::new(DiskFile::memory("bitfield")),
            sizes: Arc::new(DiskFile::memory("sizes")),
            oplog: Arc::new(DiskFile::memory("oplog")),
        }
    }

    /// All five, in sync order.
    pub(crate) fn all(&self) -> [Arc<DiskFile>; 5] {
        [
            self.data.clone(),
            self.tree.clone(),
            self.bitfield.clone(),
            self.sizes.clone(),
            self.oplog.clone(),
        ]
    }
}

/// An append whose blocks are written but not yet committed by an oplog entry.
#[derive(Debug)]
pub(crate) struct PreparedAppend {
    batch: AppendBatch,
    signature: Vec<u8>,
}

/// What applying a verified proof changed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Applied {
    /// The proof added a block or moved the length.
    pub(crate) changed: bool,
}

/// One log's files and state.
#[derive(Debug)]
pub(crate) struct Storage {
    files: Files,
    blocks: BlockStore,
    header: Header,
    slots: Slots,
    /// Bytes of entries after the header slots.
    oplog_bytes: u64,
    tree: MerkleTree,
    bitfield: Bitfield,
    contiguous: u64,
    verifier: Verifier,
    signer: Option<Signer>,
    /// The core key (names the log; its discovery key derives from it).
    key: [u8; 32],
    /// The header on disk differs from `header` in more than the tree (keys stripped).
    header_changed: bool,
}

fn io<'a>(
    operation: &'static str,
    file: &'a DiskFile,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        operation,
        file: file.path().to_owned(),
        source,
    }
}

fn corrupted(file: &DiskFile, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupted {
        file: file.path().to_owned(),
        reason: reason.into(),
    }
}

/// A new log's header: the core key is the signer's key (legacy) or its default
/// manifest's hash (v1).
fn new_header(
    public: ed25519_dalek::VerifyingKey,
    format: Format,
    key_pair: Option<oplog::KeyPair>,
) -> Header {
    match format {
        Format::Legacy => Header::new_compat(public.to_bytes(), key_pair),
        Format::V1 => {
            let manifest = Manifest::default_signer(public.to_bytes());
            Header {
                key: manifest.hash(),
                manifest: Some(HeaderManifest::Versioned(manifest)),
                ..Header::new_compat(public.to_bytes(), key_pair)
            }
        }
    }
}

/// The verifier a new `header` implies, and a signer when `secret` is given and the
/// header names a manifest.
fn verifier_and_signer(
    header: &Header,
    secret: Option<ed25519_dalek::SigningKey>,
) -> Result<(Verifier, Option<Signer>), StorageError> {
    let key = header.key;
    let manifest = header.manifest.as_ref().map(HeaderManifest::general);
    let verifier = Verifier::new(key, manifest.as_ref())
        .map_err(|e| StorageError::KeyMismatch(format!("core key {}: {e}", hex(&key))))?;
    let signer = match (secret, &manifest) {
        (Some(secret), Some(manifest)) => Signer::new(key, manifest, secret),
        _ => None,
    };
    Ok((verifier, signer))
}

impl Storage {
    /// Opens the log in `files` (creating it if the oplog holds no header).
    pub(crate) fn open(files: Files, keys: Keys, format: Format) -> Result<Self, StorageError> {
        let bytes = read_oplog(&files.oplog).map_err(io("read", &files.oplog))?;
        let opened = match oplog::open(&bytes) {
            Ok(opened) => opened,
            Err(e) => {
                let lost = corrupted(&files.oplog, format!("{e}; all blocks are unreachable"));
                return match keys {
                    Keys::Secret(secret) if files.tree.len() > 0 => {
                        Self::recover_header(files, secret, format, lost)
                    }
                    _ => Err(lost),
                };
            }
        };
        drop(bytes);
        match opened.header {
            None => {
                // The other files are written only after a log's first header: blocks
                // in them with no header left mean a cut or damaged oplog, not a new log
                // (creating one would wipe them).
                let holding = [&files.data, &files.tree, &files.bitfield]
                    .into_iter()
                    .find(|f| f.len() > 0)
                    .map(|f| (f.path().to_owned(), f.len()));
                if let Some((path, len)) = holding {
                    let lost = corrupted(
                        &files.oplog,
                        format!(
                            "no valid header, but {} holds {len} bytes: all blocks are unreachable",
                            path.display(),
                        ),
                    );
                    return match keys {
                        Keys::Secret(secret) => Self::recover_header(files, secret, format, lost),
                        _ => Err(lost),
                    };
                }
                Self::create(files, keys, format, opened.slots)
            }
            Some(header) => {
                if opened.valid_len < files.oplog.len() {
                    tracing::warn!(
                        file = %files.oplog.path().display(),
                        kept = opened.valid_len,
                        size = files.oplog.len(),
                        "oplog ends in a torn or unreadable entry: reopening at the last good one"
                    );
                    files
                        .oplog
                        .truncate(opened.valid_len)
                        .map_err(io("truncate", &files.oplog))?;
                }
                let oplog_bytes = opened.valid_len.saturating_sub(ENTRIES_AT);
                Self::resume(
                    files,
                    keys,
                    header,
                    opened.slots,
                    opened.entries,
                    oplog_bytes,
                )
            }
        }
    }

    fn create(
        files: Files,
        keys: Keys,
        format: Format,
        slots: Slots,
    ) -> Result<Self, StorageError> {
        let core_key = match &keys {
            Keys::Core(key) => Some(*key),
            _ => None,
        };
        let (public, secret, key_pair) = match keys {
            Keys::Generate => {
                let mut seed = [0u8; 32];
                getrandom::getrandom(&mut seed).map_err(|e| {
                    io("generate a key for", &files.oplog)(std::io::Error::other(e.to_string()))
                })?;
                let secret = ed25519_dalek::SigningKey::from_bytes(&seed);
                let public = secret.verifying_key();
                let pair = oplog::KeyPair {
                    public_key: public.to_bytes().to_vec(),
                    secret_key: secret.to_keypair_bytes().to_vec(),
                };
                (Some(public), Some(secret), Some(pair))
            }
            Keys::Secret(secret) => (Some(secret.verifying_key()), Some(secret), None),
            Keys::Public(public) => (Some(public), None, None),
            Keys::Core(_) => (None, None, None),
        };
        let header = match (public, format) {
            (Some(public), format) => new_header(public, format, key_pair),
            // Only the core key: the manifest comes later.
            (None, _) => Header {
                manifest: None,
                ..Header::new_compat(core_key.unwrap_or_default(), None)
            },
        };
        let (verifier, signer) = verifier_and_signer(&header, secret)?;
        // No header means no log: whatever the other files hold is not part of one.
        for file in [&files.data, &files.tree, &files.bitfield, &files.sizes] {
            if file.len() > 0 {
                file.truncate(0).map_err(io("truncate", file))?;
            }
        }
        if files.oplog.len() > 0 {
            files
                .oplog
                .truncate(0)
                .map_err(io("truncate", &files.oplog))?;
        }
        let mut storage = Storage::fresh(files, header, slots, verifier, signer)?;
        storage.checkpoint_pages()?;
        storage.sync_pages()?;
        storage.checkpoint_header()?;
        Ok(storage)
    }

    /// A log of length 0 under `header` on `files` (its tree file read as empty); the
    /// header is still to be written (`header_changed`).
    fn fresh(
        files: Files,
        header: Header,
        slots: Slots,
        verifier: Verifier,
        signer: Option<Signer>,
    ) -> Result<Self, StorageError> {
        let tree = MerkleTree::open(&files.tree, header.tree.fork, 0, Vec::new())
            .map_err(|e| corrupted(&files.tree, e.to_string()))?;
        Ok(Storage {
            blocks: BlockStore::new(files.data.clone()),
            key: header.key,
            files,
            header,
            slots,
            oplog_bytes: 0,
            tree,
            bitfield: Bitfield::default(),
            contiguous: 0,
            verifier,
            signer,
            header_changed: true,
        })
    }

    /// Oplog rebuild when no header survives, for a writer whose key is held outside
    /// the files: a new header for this key, then the blocks the tree file and the data
    /// file still hold, signed again ([`extend_from_files`](Self::extend_from_files)).
    /// Nothing recoverable: `lost` (the original error). The files are not truncated.
    fn recover_header(
        files: Files,
        secret: ed25519_dalek::SigningKey,
        format: Format,
        lost: StorageError,
    ) -> Result<Self, StorageError> {
        // The lost header named the log's format; the caller's (`OpenOptions::format`)
        // stands in for it: a v1 log recovered as legacy would change its core key.
        let mut header = new_header(secret.verifying_key(), format, None);
        // A log that truncated recorded its fork beside its files: the tree rebuilt
        // below is that fork's, and signed under it again it is the very tree (and
        // signature) peers hold. Without the record (never truncated by us), fork 0.
        header.tree.fork = truncate::recorded_fork(files.dir.as_deref());
        let (verifier, signer) = verifier_and_signer(&header, Some(secret))?;
        let mut storage = Storage::fresh(files, header, Slots::fresh(), verifier, signer)?;
        if storage.extend_from_files()? == 0 {
            return Err(lost);
        }
        let kept = storage.tree.byte_length();
        if storage.files.data.len() > kept {
            tracing::warn!(
                file = %storage.files.data.path().display(),
                kept,
                size = storage.files.data.len(),
                "the data file holds bytes past the rebuilt log: blocks whose leaves were only in the lost oplog have no boundaries and are lost"
            );
        }
        // Both slots get the new header; the entries after them are dropped.
        storage.checkpoint_pages()?;
        storage.sync_pages()?;
        storage.checkpoint_header()?;
        storage.header_changed = true;
        storage.checkpoint_header()?;
        Ok(storage)
    }

    fn resume(
        files: Files,
        keys: Keys,
        mut header: Header,
        slots: Slots,
        entries: Vec<Entry>,
        oplog_bytes: u64,
    ) -> Result<Self, StorageError> {
        let key = header.key;
        let mut header_changed = false;
        let given = match &keys {
            Keys::Secret(secret) => Some(secret.verifying_key()),
            Keys::Public(public) => Some(*public),
            Keys::Generate => None,
            Keys::Core(given) => {
                if *given != key {
                    return Err(StorageError::KeyMismatch(format!(
                        "stored core key {} does not match the given key {}",
                        hex(&key),
                        hex(given)
                    )));
                }
                None
            }
        };
        // A header without a manifest (a replica opened by core key, before its
        // manifest came) takes the one a given signer key implies.
        if header.manifest.is_none()
            && let Some(public) = given
        {
            let pk = public.to_bytes();
            if key == pk {
                // Legacy, as read before manifests were known: the header stays as is.
            } else if key == crate::manifest::default_core_key(&pk) {
                header.manifest = Some(HeaderManifest::Versioned(Manifest::default_signer(pk)));
                header_changed = true;
            }
        }
        let manifest = match &header.manifest {
            Some(m) => Some(m.general()),
            None => {
                // Legacy when a key given or kept in the header is the core key.
                let legacy = given.is_some_and(|p| p.to_bytes() == key)
                    || header
                        .key_pair
                        .as_ref()
                        .is_some_and(|p| p.public_key == key);
                legacy.then(|| Manifest::default_signer(key))
            }
        };
        if let Some(m) = &manifest
            && !m.is_compat(&key)
            && m.hash() != key
        {
            return Err(corrupted(
                &files.oplog,
                format!(
                    "the stored manifest does not hash to the core key {}; all blocks are unreachable",
                    hex(&key)
                ),
            ));
        }
        let verifier = Verifier::new(key, manifest.as_ref())
            .map_err(|e| corrupted(&files.oplog, format!("{e}; all blocks are unreachable")))?;
        if let Some(public) = given
            && !manifest
                .as_ref()
                .is_some_and(|m| m.signers.iter().any(|s| s.public_key == public.to_bytes()))
        {
            return Err(StorageError::KeyMismatch(format!(
                "the given key {} does not match the log with core key {} (not one of its signers)",
                hex(public.as_bytes()),
                hex(&key)
            )));
        }
        let signer = match keys {
            Keys::Secret(secret) => {
                if let Some(pair) = &header.key_pair
                    && !pair.secret_key.is_empty()
                    && pair.secret_key.get(..32) != Some(secret.to_bytes().as_slice())
                {
                    return Err(StorageError::KeyMismatch(
                        "stored secret key does not match the given key".into(),
                    ));
                }
                // The key lives elsewhere: a secret in the header is an old layout's
                // copy, removed at the next checkpoint (both slots).
                if header.key_pair.take().is_some() {
                    header_changed = true;
                }
                let signer = manifest
                    .as_ref()
                    .and_then(|m| Signer::new(key, m, secret.clone()));
                if signer.is_none() {
                    return Err(StorageError::KeyMismatch(format!(
                        "the key {} cannot sign the log with core key {} alone",
                        hex(secret.verifying_key().as_bytes()),
                        hex(&key)
                    )));
                }
                signer
            }
            Keys::Public(_) | Keys::Generate | Keys::Core(_) => {
                stored_signer(&header, key, manifest.as_ref())
            }
        };
        let fork = header.tree.fork;
        let length = header.tree.length;
        if length > MAX_LENGTH {
            return Err(corrupted(
                &files.oplog,
                format!("header length {length} is past 2^52"),
            ));
        }
        // The oplog's own consistency first: these are not the tree's fault. Forks
        // only go up (a truncation not yet checkpointed moves to a higher one).
        let mut at_fork = fork;
        for (i, entry) in entries.iter().enumerate() {
            if let Some(upgrade) = &entry.tree_upgrade {
                if upgrade.length > MAX_LENGTH || upgrade.fork < at_fork {
                    return Err(corrupted(
                        &files.oplog,
                        format!(
                            "entry {i} moves to length {} fork {} (from fork {at_fork})",
                            upgrade.length, upgrade.fork
                        ),
                    ));
                }
                at_fork = upgrade.fork;
            }
        }
        let tree = match load_tree(&files, &header.tree, &entries, &verifier) {
            Ok(tree) => tree,
            Err(damage) => {
                rebuild_tree_or(damage, &files, &header.tree, &entries, &verifier)?;
                load_tree(&files, &header.tree, &entries, &verifier)?
            }
        };
        // A truncation or reorg replayed from the oplog: checkpointed at once below (JS
        // cannot open a store whose oplog holds one followed by other entries).
        if lowest_cut(&header.tree, &entries).is_some() {
            header_changed = true;
        }
        let length = tree.length();
        // Bits past the final length are never needed: read no more of the file.
        let bitfield_bytes = length
            .div_ceil(8)
            .next_multiple_of(BYTES_PER_PAGE)
            .min(files.bitfield.len());
        let bits = files
            .bitfield
            .read_exact_at(0, bitfield_bytes)
            .map_err(io("read", &files.bitfield))?;
        let mut bitfield = Bitfield::from_bytes(&bits);
        drop(bits);
        for entry in entries {
            if let Some((name, value)) = entry.user_data {
                header.user_data.retain(|(k, _)| *k != name);
                if let Some(value) = value {
                    header.user_data.push((name, value));
                }
            }
            // Bits past the final length are never needed either; a range from a
            // damaged or hostile file may claim any span (it would allocate its pages).
            if let Some(update) = entry.bitfield {
                let end = update.start.saturating_add(update.length).min(length);
                if update.start < end {
                    bitfield.set_range(update.start, end - update.start, !update.drop);
                }
            }
        }
        // Bits past the final length are an old fork's (a replayed drop was clipped to
        // the final length above; a later upgrade must not find them set).
        let loaded = bitfield_bytes.saturating_mul(8);
        if loaded > length {
            bitfield.set_range(length, loaded - length, false);
        }
        let contiguous = bitfield.first_unset(0).min(length);
        let mut storage = Storage {
            blocks: BlockStore::new(files.data.clone()),
            files,
            header,
            slots,
            oplog_bytes,
            tree,
            bitfield,
            contiguous,
            verifier,
            signer,
            key,
            header_changed,
        };
        storage.extend_from_files()?;
        let length = storage.tree.length();
        if storage.signer.is_some() {
            // A log made before the sizes file existed, or one whose file was cut: once.
            let files = &storage.files;
            let written = sizes::backfill(&files.sizes, &files.tree, length)
                .map_err(io("backfill", &files.sizes))?;
            if written > 0 {
                tracing::info!(
                    file = %files.sizes.path().display(),
                    written,
                    "block sizes backfilled from the tree's leaves"
                );
            }
        }
        if length > 0 {
            // A pending replica whose tree verified as legacy (a crash came between the
            // upgrade's oplog entry and the header naming its manifest).
            storage.adopt_legacy_if_pending();
        }
        // Every block below the contiguous length the last header recorded is held (a
        // writer's and a replica's alike: a writer may have cleared blocks, and a clear
        // checkpoints its lower contiguous length before any byte is punched). A lost
        // bit there is a damaged bitfield: blocks that verify are marked stored again.
        let expected = storage.header.hints.contiguous_length.min(length);
        if storage.contiguous < expected && storage.restore_bits(expected)? > 0 {
            storage.header_changed = true;
        }
        if storage.header_changed {
            // Both slots: the spare one may hold the old header too.
            storage.checkpoint_pages()?;
            storage.sync_pages()?;
            storage.checkpoint_header()?;
            storage.header_changed = true;
            storage.checkpoint_header()?;
        }
        Ok(storage)
    }

    /// The core key.
    pub(crate) fn key(&self) -> [u8; 32] {
        self.key
    }

    /// The ed25519 key of the log's one signer, if it has exactly one (or the key we
    /// sign with); `None` while the manifest is not known.
    pub(crate) fn signer_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        if let Some(signer) = &self.signer {
            return Some(signer.public_key());
        }
        match &self.verifier {
            Verifier::Ed25519Legacy { public_key } => Some(*public_key),
            Verifier::Manifest { signers, .. } => match signers.as_slice() {
                [Some(only)] => Some(*only),
                _ => None,
            },
            Verifier::Pending { .. } => None,
        }
    }

    /// Whether the manifest is still unknown (a replica opened by core key).
    pub(crate) fn needs_manifest(&self) -> bool {
        matches!(self.verifier, Verifier::Pending { .. })
    }

    /// The encoded manifest of a manifest (non-compat) core, as peers ask for it.
    pub(crate) fn manifest_to_serve(&self) -> Option<Vec<u8>> {
        match &self.verifier {
            Verifier::Manifest { manifest, .. } => Some(manifest.encode()),
            _ => None,
        }
    }

    /// Whether the log is a legacy core (`Some(false)`: a manifest core; `None`: not
    /// known yet).
    pub(crate) fn is_legacy(&self) -> Option<bool> {
        match &self.verifier {
            Verifier::Ed25519Legacy { .. } => Some(true),
            Verifier::Manifest { .. } => Some(false),
            Verifier::Pending { .. } => None,
        }
    }

    /// Takes `manifest` (whose hash the caller checked against the key) as the
    /// manifest of a pending core; the header is rewritten at the next checkpoint,
    /// which the caller runs at once. A core that already has one keeps it.
    /// The size the oplog header would have with `manifest` and the longest signature
    /// it allows (the quorum's proofs), when that is more than a header slot holds:
    /// such a core could never checkpoint (JS cannot write it either).
    pub(crate) fn header_overflow_with(&self, manifest: &Manifest) -> Option<usize> {
        let mut trial = self.header.clone();
        trial.manifest = Some(HeaderManifest::Versioned(manifest.clone()));
        trial.tree.signature =
            vec![
                0xff;
                crate::multisig::MultiSignature::max_len(crate::verifier::quorum_of(manifest))
            ];
        trial.tree.root_hash = vec![0xff; 32];
        trial.tree.length = u64::MAX;
        trial.tree.fork = u64::MAX;
        match self.slots.encode_header(&trial) {
            Err(oplog::OplogError::HeaderOverflow { size }) => Some(size),
            _ => None,
        }
    }

    pub(crate) fn set_manifest(&mut self, manifest: Manifest) -> Result<bool, StorageError> {
        if !self.needs_manifest() {
            return Ok(false);
        }
        self.verifier = Verifier::new(self.key, Some(&manifest))
            .map_err(|e| corrupted(&self.files.oplog, e))?;
        self.header.manifest = Some(HeaderManifest::Versioned(manifest));
        self.header_changed = true;
        Ok(true)
    }

    /// A pending core whose signed tree verified under the legacy reading of its key
    /// is a legacy core: record the compat manifest JS 10 would have written.
    fn adopt_legacy_if_pending(&mut self) {
        if !self.needs_manifest() {
            return;
        }
        if let Ok(public_key) = ed25519_dalek::VerifyingKey::from_bytes(&self.key) {
            self.verifier = Verifier::Ed25519Legacy { public_key };
            self.header.manifest = Some(HeaderManifest::V0(oplog::Manifest::default_signer(
                self.key,
            )));
            self.header_changed = true;
        }
    }

    /// Whether this process can append.
    pub(crate) fn writable(&self) -> bool {
        self.signer.is_some()
    }

    /// The signed tree.
    pub(crate) fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// Blocks `0..contiguous` are all stored.
    pub(crate) fn contiguous(&self) -> u64 {
        self.contiguous
    }

    /// Whether block `seq` is stored here.
    pub(crate) fn has(&self, seq: u64) -> bool {
        seq < self.tree.length() && self.bitfield.get(seq)
    }

    /// How many blocks of `range` (clipped to the length) are stored here.
    pub(crate) fn held(&self, range: std::ops::Range<u64>) -> u64 {
        self.bitfield
            .count(range.start, range.end.min(self.tree.length()))
    }

    /// The first block at or after `from` not stored here, or the length.
    pub(crate) fn first_missing(&self, from: u64) -> u64 {
        let length = self.tree.length();
        if from >= length {
            return length;
        }
        self.bitfield.first_unset(from).min(length)
    }

    /// Bitfield rebuild: every block below `end` whose bit is unset but whose bytes in
    /// the data file verify against the signed tree is marked stored again (the pages
    /// are written at the next checkpoint). Returns how many were restored.
    pub(crate) fn restore_bits(&mut self, end: u64) -> Result<u64, StorageError> {
        let verified = Verified::default();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut seq = self.contiguous;
        while seq < end {
            if self.bitfield.get(seq) {
                seq = self.bitfield.first_unset(seq);
                continue;
            }
            match read::verify_stored(self, &verified, seq) {
                Ok(_) => match runs.last_mut() {
                    Some((start, len)) if *start + *len == seq => *len += 1,
                    _ => runs.push((seq, 1)),
                },
                Err(ReadError::Invalid(_) | ReadError::DataDamaged(_) | ReadError::NotStored) => {}
                Err(ReadError::Storage(e)) => return Err(e),
            }
            seq += 1;
        }
        let restored = runs.iter().map(|(_, n)| n).sum();
        for (start, len) in runs {
            self.bitfield.set_range(start, len, true);
        }
        if restored > 0 {
            tracing::warn!(
                file = %self.files.bitfield.path().display(),
                restored,
                end,
                "bitfield rebuilt: blocks whose bit was lost verified and were marked stored again"
            );
            self.advance_contiguous();
        }
        Ok(restored)
    }

    /// Marks block `seq` as not stored, durably (one oplog entry `{bitfield: drop seq}`,
    /// the same entry JS hypercore writes for a cleared block): its bytes in the data
    /// file failed verification, so it counts as missing and replication fetches it
    /// again. Returns whether the bit was set. Memory changes only after the entry was
    /// written.
    pub(crate) fn drop_block(&mut self, seq: u64) -> Result<bool, StorageError> {
        if !self.has(seq) {
            return Ok(false);
        }
        Ok(self.clear(seq, seq.saturating_add(1))? > 0)
    }

    /// Marks blocks `start..end` (within the length) as not stored, durably: one oplog
    /// entry `{bitfield: {drop: true, start, length}}`, as JS hypercore's `core.clear`
    /// writes, and only when one of them is stored. Memory changes only after the entry
    /// was written; the data file is not touched (see `super::clear`). Returns how many
    /// were stored.
    pub(crate) fn clear(&mut self, start: u64, end: u64) -> Result<u64, StorageError> {
        let end = end.min(self.tree.length());
        let held = self.held(start..end);
        if held == 0 {
            return Ok(0);
        }
        let entry = Entry {
            user_data: None,
            tree_nodes: None,
            tree_upgrade: None,
            bitfield: Some(BitfieldUpdate {
                drop: true,
                start,
                length: end - start,
            }),
        };
        self.write_entry(&entry)?;
        self.bitfield.set_range(start, end - start, false);
        self.contiguous = self.contiguous.min(start);
        Ok(held)
    }

    /// The stored blocks nearest to `start..end`: the last one below `start` and the
    /// first one at or after `end` (JS `bitfield.lastSet` / `firstSet`).
    pub(crate) fn stored_around(&self, start: u64, end: u64) -> (Option<u64>, Option<u64>) {
        (
            self.bitfield.last_set_before(start),
            self.bitfield.first_set(end),
        )
    }

    /// Oplog rebuild for a writer's own log (fork 0, or from length 0): blocks past the
    /// signed length whose leaf nodes the tree file holds (a checkpoint wrote them, so
    /// they were committed) and whose bytes in the data file hash to those leaves are
    /// signed again and become part of the log. That is what a damaged oplog loses:
    /// a header slot falling back to the older checkpoint, or both slots. Signatures are
    /// deterministic (ed25519), so the re-signed tree carries the very signature peers
    /// may have seen. Returns the blocks added (usually none: nothing past the length).
    pub(crate) fn extend_from_files(&mut self) -> Result<u64, StorageError> {
        let Some(signer) = &self.signer else {
            return Ok(0);
        };
        if self.tree.fork() != 0 && self.tree.length() != 0 {
            // After a truncation the nodes past the length may be an old fork's (a
            // header from before it). From length 0 (a truncation to 0, or a lost
            // header recreated at the recorded fork) the file holds only nodes written
            // since the last truncation's flush cut it: this fork's.
            return Ok(0);
        }
        let start = self.tree.length();
        let data = &self.files.data;
        let mut offset = self.tree.byte_length();
        let mut leaves = Vec::new();
        let mut seq = start;
        while seq < MAX_LENGTH {
            let Some(leaf) = self
                .tree
                .node_in(&self.files.tree, 2 * seq)
                .map_err(io("read", &self.files.tree))?
            else {
                break;
            };
            let end = offset.checked_add(leaf.size).filter(|e| *e <= data.len());
            let Some(end) = end.filter(|_| leaf.size <= MAX_BLOCK_BYTES) else {
                break;
            };
            let hash = rebuild::leaf_hash_at(data, offset, leaf.size).map_err(io("read", data))?;
            if hash != leaf.hash {
                break;
            }
            leaves.push(leaf);
            offset = end;
            seq += 1;
        }
        if leaves.is_empty() {
            return Ok(0);
        }
        let mut roots = self.tree.roots().to_vec();
        let mut nodes = Vec::with_capacity(leaves.len() * 2);
        for leaf in leaves {
            rebuild::push(&mut roots, leaf, &mut |n| nodes.push(n)).ok_or_else(|| {
                corrupted(
                    &self.files.tree,
                    format!("sizes of blocks 0..{seq} overflow"),
                )
            })?;
        }
        let fork = self.tree.fork();
        let signature = signer.sign(&roots, seq, fork);
        self.tree.add_nodes(nodes);
        self.tree.set_signed(seq, offset, fork, roots, signature);
        self.bitfield.set_range(start, seq - start, true);
        self.advance_contiguous();
        self.header_changed = true;
        tracing::warn!(
            file = %self.files.oplog.path().display(),
            from = start,
            to = seq,
            "oplog rebuilt: blocks a checkpoint wrote to the tree file, with intact data, signed again"
        );
        Ok(seq - start)
    }

    /// Full local check and rebuild (see [`rebuild`](super::rebuild)): every block is
    /// re-hashed from the data file, the tree recomputed and, if its roots carry the
    /// stored signature, every node that differs is rewritten; then lost bitfield bits
    /// are restored. Call after a checkpoint (no nodes pending). Returns the nodes
    /// rewritten and the bits restored.
    pub(crate) fn repair(&mut self) -> Result<(u64, u64), StorageError> {
        let length = self.tree.length();
        let mut rewritten = 0;
        if length > 0 {
            let signature = self.tree.signature().to_vec();
            let target = Target {
                length,
                fork: self.tree.fork(),
                signature: &signature,
            };
            rewritten = match rebuild::rebuild_tree(
                &self.files.tree,
                &self.files.data,
                &self.files.sizes,
                &|_| None,
                target,
                &self.verifier,
            ) {
                Ok(n) => n,
                Err(RebuildError::Io(e)) => return Err(io("rebuild", &self.files.tree)(e)),
                Err(RebuildError::Unrecoverable(why)) => {
                    return Err(corrupted(&self.files.tree, why));
                }
            };
            if rewritten > 0 {
                // The tree's chunk cache holds the old bytes: read the roots afresh.
                self.tree = MerkleTree::open(&self.files.tree, target.fork, length, signature)
                    .map_err(|e| corrupted(&self.files.tree, format!("{e} after a rebuild")))?;
                tracing::warn!(
                    file = %self.files.tree.path().display(),
                    rewritten,
                    "tree repaired from the data file"
                );
            }
        }
        let expected = if self.signer.is_some() {
            length
        } else {
            self.header.hints.contiguous_length.min(length)
        };
        let restored = self.restore_bits(expected)?;
        if rewritten > 0 || restored > 0 {
            self.header_changed = true;
        }
        Ok((rewritten, restored))
    }

    /// Step 1 of an append: hashes and signs the batch and writes its blocks to the data
    /// file. Nothing is committed until [`append_commit`](Self::append_commit).
    pub(crate) fn append_prepare<B: AsRef<[u8]>>(
        &self,
        values: &[B],
    ) -> Result<PreparedAppend, StorageError> {
        let Some(signer) = &self.signer else {
            return Err(StorageError::NotWritable);
        };
        let batch = self
            .tree
            .append_batch(values)
            .filter(|b| b.length <= MAX_LENGTH)
            .ok_or_else(|| {
                corrupted(
                    &self.files.data,
                    "the log cannot grow past 2^52 blocks or bytes",
                )
            })?;
        let signature = signer.sign(&batch.roots, batch.length, self.tree.fork());
        self.blocks
            .write_batch(self.tree.byte_length(), values)
            .map_err(io("write", &self.files.data))?;
        Ok(PreparedAppend { batch, signature })
    }

    /// Step 2 of an append: writes the oplog entry (the commit point) and updates the
    /// state. Returns the leaves appended, with their data-file offsets.
    pub(crate) fn append_commit(
        &mut self,
        prepared: PreparedAppend,
    ) -> Result<Vec<(Node, u64)>, StorageError> {
        let PreparedAppend { batch, signature } = prepared;
        let ancestors = batch.ancestors;
        let count = batch.length - ancestors;
        let entry = Entry {
            user_data: None,
            tree_nodes: Some(batch.nodes.clone()),
            tree_upgrade: Some(TreeUpgrade {
                fork: self.tree.fork(),
                ancestors,
                length: batch.length,
                signature: signature.clone(),
            }),
            bitfield: Some(BitfieldUpdate {
                drop: false,
                start: ancestors,
                length: count,
            }),
        };
        self.write_entry(&entry)?;
        let mut offset = self.tree.byte_length();
        let mut leaves = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for node in batch.nodes.iter().filter(|n| n.index % 2 == 0) {
            leaves.push((*node, offset));
            offset += node.size;
        }
        self.tree.commit_append(batch, signature);
        self.bitfield.set_range(ancestors, count, true);
        self.advance_contiguous();
        Ok(leaves)
    }

    fn write_entry(&mut self, entry: &Entry) -> Result<(), StorageError> {
        let bytes = self
            .slots
            .encode_entries(std::slice::from_ref(entry), false)
            .map_err(|e| corrupted(&self.files.oplog, e.to_string()))?;
        self.files
            .oplog
            .write_at(ENTRIES_AT + self.oplog_bytes, &bytes)
            .map_err(io("write", &self.files.oplog))?;
        self.oplog_bytes += bytes.len() as u64;
        Ok(())
    }

    fn advance_contiguous(&mut self) {
        if self.bitfield.get(self.contiguous) {
            self.contiguous = self.bitfield.first_unset(self.contiguous);
        }
        self.contiguous = self.contiguous.min(self.tree.length());
    }

    /// Whether enough is buffered that a checkpoint is due.
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.oplog_bytes >= CHECKPOINT_OPLOG_BYTES
            || self.tree.unflushed_len() >= CHECKPOINT_NODES
            || self.header_changed
    }

    /// Whether anything waits for a checkpoint.
    pub(crate) fn checkpoint_pending(&self) -> bool {
        self.oplog_bytes > 0
            || self.tree.has_unflushed()
            || self.bitfield.has_dirty()
            || self.header_changed
    }

    /// Checkpoint step 1: writes the buffered tree nodes and bitfield pages, and (a
    /// writer's log) the sizes of the leaves among those nodes to the `sizes` file. The
    /// caller syncs tree, bitfield and sizes before step 2.
    pub(crate) fn checkpoint_pages(&mut self) -> Result<(), StorageError> {
        let pages = self.bitfield.take_dirty();
        for (i, (offset, bytes)) in pages.iter().enumerate() {
            if let Err(e) = self.files.bitfield.write_at(*offset, bytes) {
                self.bitfield.mark_dirty(pages[i..].iter().map(|(o, _)| *o));
                return Err(io("write", &self.files.bitfield)(e));
            }
        }
        // Before the flush empties the pending set (on error it stays pending, and the
        // next checkpoint writes these sizes again). A writer's own log only: its leaves
        // are blocks it holds, while a replica's can come from a peer's signed upgrade
        // far past any data (a leaf at seq 2^40 would land 4 TiB into the file).
        if self.signer.is_some() {
            sizes::write_leaves(&self.files.sizes, self.tree.unflushed())
                .map_err(io("write", &self.files.sizes))?;
        }
        self.tree
            .flush(&self.files.tree)
            .map_err(io("write", &self.files.tree))
    }

    /// Syncs what [`checkpoint_pages`](Self::checkpoint_pages) wrote (tree, bitfield,
    /// sizes) before a header written at open points at it, in every mode: the order
    /// `ManagedCore::checkpoint_if_due` keeps (a header on disk before the tree pages
    /// it names left a log unopenable after a power cut, tests/power_cut.rs). Only
    /// files written since their last sync: nothing on a new log or a clean reopen.
    fn sync_pages(&self) -> Result<(), StorageError> {
        for file in [&self.files.tree, &self.files.bitfield, &self.files.sizes] {
            file.sync_if_dirty().map_err(io("fdatasync", file))?;
        }
        Ok(())
    }

    /// Checkpoint step 2: the header (tree state, hints) into the spare slot, synced
    /// (every durability mode), then the oplog's entries are dropped. A crash between the
    /// two leaves entries whose header bit no longer matches: they are ignored at open,
    /// which is right, as the new header covers them.
    ///
    /// The sync is what makes that true after a power cut: without it the cut could reach
    /// the disk and the header not (the acknowledged entries since the last checkpoint
    /// lost), or the next header, written over the other slot, could reach the disk and
    /// this one not, so the slot parity picks the header before both (a rollback past a
    /// clean close). Found by tests/power_cut.rs (replicas, which cannot re-sign blocks
    /// past the header as a writer does at open). One `fdatasync` per checkpoint.
    pub(crate) fn checkpoint_header(&mut self) -> Result<(), StorageError> {
        self.header.tree = TreeHeader {
            fork: self.tree.fork(),
            length: self.tree.length(),
            // A new log's header holds JS's `null`; after a truncation to 0 (fork > 0)
            // JS writes the hash of the empty root list, and so do we.
            root_hash: if self.tree.length() == 0 && self.tree.fork() == 0 {
                Vec::new()
            } else {
                self.tree.root_hash().to_vec()
            },
            signature: self.tree.signature().to_vec(),
        };
        self.header.hints.contiguous_length = self.contiguous;
        let write = self
            .slots
            .encode_header(&self.header)
            .map_err(|e| corrupted(&self.files.oplog, e.to_string()))?;
        self.files
            .oplog
            .write_at(write.offset, &write.bytes)
            .map_err(io("write", &self.files.oplog))?;
        self.files
            .oplog
            .sync_if_dirty()
            .map_err(io("fdatasync", &self.files.oplog))?;
        self.files
            .oplog
            .truncate(ENTRIES_AT)
            .map_err(io("truncate", &self.files.oplog))?;
        self.slots
            .commit_header(&write)
            .map_err(|e| corrupted(&self.files.oplog, e.to_string()))?;
        self.oplog_bytes = 0;
        self.header_changed = false;
        Ok(())
    }

    /// JS `MerkleTree.missingNodes`: the `nodes` field of a request for block `seq`.
    pub(crate) fn missing_nodes(&self, seq: u64) -> Result<u64, StorageError> {
        let Some(index) = seq.checked_mul(2) else {
            return Ok(0);
        };
        proof::missing_nodes(
            &self.tree.source(&self.files.tree),
            self.tree.length(),
            index,
        )
        .map_err(io("read", &self.files.tree))
    }

    fn tree_state(&self) -> TreeState<'_> {
        TreeState {
            fork: self.tree.fork(),
            length: self.tree.length(),
            roots: self.tree.roots(),
            signature: self.tree.signature(),
        }
    }

    /// A proof answering a peer's request, or `None` when we cannot serve it.
    pub(crate) fn create_proof(
        &self,
        block: Option<RequestBlock>,
        hash: Option<RequestBlock>,
        seek: Option<RequestSeek>,
        padding: u64,
        upgrade: Option<RequestUpgrade>,
    ) -> Result<Option<Proof>, StorageError> {
        if let Some(b) = &block
            && !self.has(b.index)
        {
            return Ok(None);
        }
        let request = ProofRequest {
            fork: self.tree.fork(),
            block,
            hash,
            seek,
            padding,
            upgrade,
        };
        let source = self.tree.source(&self.files.tree);
        let mut proof = match proof::create_proof(&source, &self.tree_state(), &request) {
            Ok(proof) => proof,
            Err(ProofError::Storage(e)) => return Err(io("read", &self.files.tree)(e)),
            Err(e) => {
                tracing::debug!(error = %e, "cannot serve proof");
                return Ok(None);
            }
        };
        if let Some(block) = &mut proof.block {
            let Some(value) = self.read_unverified(block.index)? else {
                return Ok(None);
            };
            block.value = value;
        }
        Ok(Some(proof))
    }

    /// The stored bytes of block `seq` where the tree says they are, unverified; `None`
    /// when the tree lacks the nodes to locate it.
    pub(crate) fn read_unverified(&self, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(index) = seq.checked_mul(2) else {
            return Ok(None);
        };
        let tree_file = &self.files.tree;
        let Some(leaf) = self
            .tree
            .node_in(tree_file, index)
            .map_err(io("read", tree_file))?
        else {
            return Ok(None);
        };
        let Some(offset) = self
            .tree
            .byte_offset(tree_file, seq)
            .map_err(io("read", tree_file))?
        else {
            return Ok(None);
        };
        match self.blocks.read(offset, leaf.size) {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(None),
            Err(e) => Err(io("read", &self.files.data)(e)),
        }
    }

    /// Checks a peer's proof against the tree and the signer (nothing is written).
    pub(crate) fn verify_proof(&self, proof: &Proof) -> Result<VerifiedProof, ProofError> {
        proof::verify_proof(
            &self.tree.source(&self.files.tree),
            &self.tree_state(),
            &self.verifier,
            proof,
        )
    }

    /// Stores a verified proof: the block into the data file, then one oplog entry with
    /// the new nodes, the upgrade and the bitfield bit. An I/O error part-way leaves the
    /// in-memory state ahead of the files: the caller must stop using this storage.
    pub(crate) fn apply_verified(
        &mut self,
        verified: VerifiedProof,
    ) -> Result<Applied, StorageError> {
        let ancestors = self.tree.length();
        let upgrade = verified.upgrade.filter(|u| u.length > ancestors);
        let length = upgrade.as_ref().map_or(ancestors, |u| u.length);
        // A block must lie inside the (new) length; verify_proof guarantees it, and
        // nothing below may change memory without the oplog entry that records it.
        let block = verified
            .block
            .filter(|(index, _)| *index < length && !self.bitfield.get(*index));
        if upgrade.is_none() && block.is_none() {
            return self.apply_nodes(verified.nodes);
        }
        self.tree.add_nodes(verified.nodes.iter().copied());
        if let Some(u) = &upgrade {
            self.tree.set_signed(
                u.length,
                u.byte_length,
                u.fork,
                u.roots.clone(),
                u.signature.clone(),
            );
        }
        if let Some((index, value)) = &block {
            let offset = self
                .tree
                .byte_offset(&self.files.tree, *index)
                .map_err(io("read", &self.files.tree))?
                .ok_or_else(|| {
                    corrupted(
                        &self.files.tree,
                        format!("block {index} cannot be located after its proof verified"),
                    )
                })?;
            self.blocks
                .write(offset, value)
                .map_err(io("write", &self.files.data))?;
        }
        let entry = Entry {
            user_data: None,
            tree_nodes: (!verified.nodes.is_empty()).then_some(verified.nodes),
            tree_upgrade: upgrade.as_ref().map(|u| TreeUpgrade {
                fork: u.fork,
                ancestors,
                length: u.length,
                signature: u.signature.clone(),
            }),
            bitfield: block.as_ref().map(|(index, _)| BitfieldUpdate {
                drop: false,
                start: *index,
                length: 1,
            }),
        };
        self.write_entry(&entry)?;
        if let Some((index, _)) = &block {
            self.bitfield.set_range(*index, 1, true);
        }
        if upgrade.is_some() {
            self.adopt_legacy_if_pending();
        }
        self.advance_contiguous();
        Ok(Applied { changed: true })
    }

    /// Stores the nodes of a verified proof that brings neither a block nor an upgrade
    /// (a `hash` or `seek` proof): the ones not held yet, in one oplog entry.
    fn apply_nodes(&mut self, nodes: Vec<Node>) -> Result<Applied, StorageError> {
        let tree_file = &self.files.tree;
        let mut fresh = Vec::new();
        for node in nodes {
            if self
                .tree
                .node_in(tree_file, node.index)
                .map_err(io("read", tree_file))?
                .is_none()
            {
                fresh.push(node);
            }
        }
        if fresh.is_empty() {
            return Ok(Applied { changed: false });
        }
        self.tree.add_nodes(fresh.iter().copied());
        self.write_entry(&Entry {
            user_data: None,
            tree_nodes: Some(fresh),
            tree_upgrade: None,
            bitfield: None,
        })?;
        Ok(Applied { changed: true })
    }

    /// Where the data of block `seq` starts per the tree (unverified).
    pub(crate) fn byte_offset(&self, seq: u64) -> Result<Option<u64>, StorageError> {
        self.tree
            .byte_offset(&self.files.tree, seq)
            .map_err(io("read", &self.files.tree))
    }

    /// Node `index` per the tree (unverified).
    pub(crate) fn node(&self, index: u64) -> Result<Option<Node>, StorageError> {
        self.tree
            .node_in(&self.files.tree, index)
            .map_err(io("read", &self.files.tree))
    }

    /// Leaf nodes `first..=last` (tree indexes) as the tree file holds them, in one
    /// read; pending nodes override the file. Unverified.
    pub(crate) fn leaves(&self, first: u64, last: u64) -> Option<Vec<Node>> {
        let tree_file = &self.files.tree;
        let span = last.checked_sub(first)?.checked_add(1)?;
        let from_file = tree_file
            .read_exact_at(
                first.checked_mul(NODE_BYTES)?,
                span.checked_mul(NODE_BYTES)?,
            )
            .ok();
        let mut out = Vec::with_capacity(usize::try_from(span / 2 + 1).ok()?);
        for index in (first..=last).step_by(2) {
            let node = match self.tree.node_in(tree_file, index) {
                Ok(Some(node)) => node,
                _ => {
                    let bytes = from_file.as_ref()?;
                    let at = usize::try_from((index - first) * NODE_BYTES).ok()?;
                    crate::merkle_tree::decode_node(
                        index,
                        bytes.get(at..at + NODE_BYTES as usize)?,
                    )?
                }
            };
            out.push(node);
        }
        Some(out)
    }

    /// The data file and its read-ahead window.
    pub(crate) fn blocks(&self) -> &BlockStore {
        &self.blocks
    }
}

/// The signed tree the header and the oplog's entries describe: the header's roots from
/// the tree file, then each entry's nodes and upgrade, then the final roots' signature.
fn load_tree(
    files: &Files,
    header: &TreeHeader,
    entries: &[Entry],
    verifier: &Verifier,
) -> Result<MerkleTree, StorageError> {
    // After a truncation whose entry is not checkpointed the tree file may already be
    // cut (a crash after the flush, before the header): the header's roots are gone,
    // those of the lowest cut survive. Open there; the entries replay the rest.
    // (Roots of a length at most the header's and at most the cut are never cut or
    // blanked: their spans end before the cut point.)
    let cuts = lowest_cut(header, entries);
    let (length, signature) = match cuts {
        Some((cut, _)) if cut < header.length => (cut, Vec::new()),
        _ => (header.length, header.signature.clone()),
    };
    // The states before the last cut are superseded: their nodes are added (the cut
    // then drops or blanks what it retracted) but their roots are not looked up, as
    // the flush of the cut may have removed them from the file.
    let last_cut = cuts.map(|(_, at)| at);
    let mut tree = MerkleTree::open(&files.tree, header.fork, length, signature).map_err(|e| {
        corrupted(
            &files.tree,
            format!("{e}; blocks 0..{length} are unreachable"),
        )
    })?;
    // A node an entry logs lies inside the tree some header or entry describes: in
    // the flat tree of `span` blocks, indexes are below `2 * span`. Anything past that
    // came from a damaged or hostile file (and would be written at an offset past any
    // real tree file, or one that overflows).
    let span = entries
        .iter()
        .filter_map(|e| e.tree_upgrade.as_ref().map(|u| u.length))
        .fold(length, u64::max);
    let node_bound = span.saturating_mul(2);
    // The length the log had before each entry (the header's, then each upgrade's).
    let mut before = header.length;
    for (i, entry) in entries.iter().enumerate() {
        // A truncation (or a replica's reorg) cuts the tree before the entry's nodes
        // are added: they belong to the new fork (JS adds them first and then loses
        // them, docs/forks.md §2.4; we do not copy that).
        if let Some(upgrade) = &entry.tree_upgrade
            && upgrade.ancestors < before
        {
            tree.truncate_to(upgrade.ancestors);
        }
        if let Some(upgrade) = &entry.tree_upgrade {
            before = upgrade.length;
        }
        if let Some(nodes) = &entry.tree_nodes {
            if let Some(bad) = nodes.iter().find(|n| n.index >= node_bound) {
                return Err(corrupted(
                    &files.oplog,
                    format!(
                        "entry {i}: tree node {} lies past a tree of {span} blocks; blocks from {} on are unreachable",
                        bad.index,
                        tree.length()
                    ),
                ));
            }
            tree.add_nodes(nodes.iter().copied());
        }
        if let Some(upgrade) = &entry.tree_upgrade
            && last_cut.is_none_or(|at| i >= at)
        {
            tree.upgrade_to(
                &files.tree,
                upgrade.length,
                upgrade.fork,
                upgrade.signature.clone(),
            )
            .map_err(|e| {
                corrupted(
                    &files.oplog,
                    format!(
                        "entry {i}: {e}; blocks from {} on are unreachable",
                        tree.length()
                    ),
                )
            })?;
        }
    }
    let length = tree.length();
    if length > 0 && !verifier.verify(tree.roots(), length, tree.fork(), tree.signature()) {
        return Err(corrupted(
            &files.tree,
            format!("the stored roots of blocks 0..{length} do not carry a valid signature"),
        ));
    }
    Ok(tree)
}

/// For entries that truncate (keep fewer blocks than the log had before them: a
/// truncation or reorg not checkpointed yet), the lowest `ancestors` and the index of
/// the last such entry; `None` when no entry truncates.
fn lowest_cut(header: &TreeHeader, entries: &[Entry]) -> Option<(u64, usize)> {
    let mut before = header.length;
    let mut found: Option<(u64, usize)> = None;
    for (i, entry) in entries.iter().enumerate() {
        let Some(upgrade) = &entry.tree_upgrade else {
            continue;
        };
        if upgrade.ancestors < before {
            let lowest = found.map_or(upgrade.ancestors, |(l, _)| l.min(upgrade.ancestors));
            found = Some((lowest, i));
        }
        before = upgrade.length;
    }
    found
}

/// The tree could not be loaded (`damage`): rebuilds it from the data file (see
/// [`rebuild`](super::rebuild)), or returns `damage` with why that failed too.
fn rebuild_tree_or(
    damage: StorageError,
    files: &Files,
    header: &TreeHeader,
    entries: &[Entry],
    verifier: &Verifier,
) -> Result<(), StorageError> {
    let (length, fork, signature) = entries
        .iter()
        .rev()
        .find_map(|e| e.tree_upgrade.as_ref())
        .map_or(
            (header.length, header.fork, header.signature.as_slice()),
            |u| (u.length, u.fork, u.signature.as_slice()),
        );
    if length == 0 {
        return Err(damage);
    }
    let pending: std::collections::HashMap<u64, Node> = entries
        .iter()
        .filter_map(|e| e.tree_nodes.as_ref())
        .flatten()
        .filter(|n| n.index % 2 == 0)
        .map(|n| (n.index, *n))
        .collect();
    let target = Target {
        length,
        fork,
        signature,
    };
    let lookup = |index: u64| pending.get(&index).copied();
    match rebuild::rebuild_tree(
        &files.tree,
        &files.data,
        &files.sizes,
        &lookup,
        target,
        verifier,
    ) {
        Ok(rewritten) => {
            tracing::warn!(
                file = %files.tree.path().display(),
                length,
                rewritten,
                damage = %damage,
                "tree rebuilt from the data file: its roots carry the stored signature"
            );
            Ok(())
        }
        Err(RebuildError::Io(e)) => Err(io("rebuild", &files.tree)(e)),
        Err(RebuildError::Unrecoverable(why)) => Err(match damage {
            StorageError::Corrupted { file, reason } => StorageError::Corrupted {
                file,
                reason: format!("{reason}; a local rebuild from the data file failed: {why}"),
            },
            other => other,
        }),
    }
}

/// Oplog files up to this size are read whole at open; a longer one (a damaged length,
/// or an unusually large unflushed oplog) is read frame by frame.
const OPLOG_READ_WHOLE: u64 = 32 * 1024 * 1024;
/// Chunks in which a long oplog frame's CRC is checked before its payload is kept.
const OPLOG_READ_CHUNK: u64 = 1024 * 1024;

/// The oplog bytes [`oplog::open`] needs: the whole file when it is small, else its two
/// header slots and then its entry frames for as long as their CRC holds (each checked
/// in chunks before it is kept). So a damaged length (a huge sparse file, garbage
/// claiming a long frame) costs no more memory than the valid entries.
fn read_oplog(file: &DiskFile) -> std::io::Result<Vec<u8>> {
    let len = file.len();
    if len <= OPLOG_READ_WHOLE {
        return file.read_all();
    }
    let overhead = oplog::FRAME_OVERHEAD as u64;
    let mut bytes = file.read_exact_at(0, ENTRIES_AT)?;
    let mut at = ENTRIES_AT;
    while let Some(payload_at) = at.checked_add(overhead).filter(|p| *p <= len) {
        let lead = file.read_exact_at(at, overhead)?;
        let Some((crc, word)) = lead.split_first_chunk::<4>() else {
            break;
        };
        let Some(word) = word.first_chunk::<4>() else {
            break;
        };
        let size = u64::from(u32::from_le_bytes(*word) >> 2);
        let Some(end) = payload_at.checked_add(size).filter(|e| *e <= len) else {
            break;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(word);
        let mut from = payload_at;
        while from < end {
            let n = (end - from).min(OPLOG_READ_CHUNK);
            hasher.update(&file.read_exact_at(from, n)?);
            from += n;
        }
        if hasher.finalize() != u32::from_le_bytes(*crc) {
            break;
        }
        bytes.extend_from_slice(&lead);
        bytes.extend_from_slice(&file.read_exact_at(payload_at, size)?);
        at = end;
    }
    Ok(bytes)
}

/// The signer kept in the header (logs created with [`Keys::Generate`], or by JS), if
/// it can sign the log alone.
fn stored_signer(header: &Header, key: [u8; 32], manifest: Option<&Manifest>) -> Option<Signer> {
    let pair = header.key_pair.as_ref()?;
    let seed: [u8; 32] = pair.secret_key.get(..32)?.try_into().ok()?;
    Signer::new(key, manifest?, ed25519_dalek::SigningKey::from_bytes(&seed))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
