//! [`ManagedCore`]: one signed log, its files, its keys and verified reads.
//!
//! The handle is async and cheap to clone; the work happens in [`storage::Storage`]
//! (files and state, synchronous) under one lock: appends and applied proofs take it
//! exclusively, reads share it. `fdatasync`s run on tokio's blocking pool between the
//! write steps, in the order the durability contract needs (see [`Durability`]).
//!
//! Longer than the house ~800 lines: it is the one public handle of a log (open, append,
//! read, proofs, manifest, repair, progress), each method a thin async wrapper taking the
//! storage lock; the work is in `storage.rs`, `read.rs`, `rebuild.rs`, `sizes.rs`;
//! `clear.rs` and `fork.rs` hold the handle's methods for clearing and for forks,
//! `encrypted.rs` block encryption, `evict.rs` the pool's eviction.

mod clear;
mod encrypted;
mod evict;
mod fork;
mod read;
mod rebuild;
mod seek;
mod sizes;
mod storage;
mod wants;

pub use clear::Cleared;
pub use evict::Unsynced;
pub use seek::SeekState;
pub use storage::Truncation;
pub use wants::{Download, RangeProgress};

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use ed25519_dalek::{SigningKey, VerifyingKey};
use hypercore_schema::{Proof, RequestBlock, RequestUpgrade};
use nova_hypercore_serialization::{HypercoreError, LogName};
use tokio::sync::RwLock;
use tracing::{debug, warn};

use crate::disk::{DiskFile, Durability};
use crate::encryption::EncryptionKey;
use crate::file_budget::FileBudget;
use crate::proof::ProofError;
use read::{ReadError, Verified};
use storage::{Files, Format, Keys, Storage, StorageError};
use wants::Wants;

type Result<T, E = HypercoreError> = std::result::Result<T, E>;

/// The discovery key of a log: blake2b-256 of the word `hypercore`, keyed with the public
/// key. Peers announce and look up logs by it without revealing the public key; it is the
/// same value JS `hypercore-crypto` and `hypercore-protocol` compute.
pub fn discovery_key(public_key: &[u8; 32]) -> [u8; 32] {
    // A 32-byte key is always a valid blake2b key (limit 64), so this cannot fail.
    let mut mac = match <blake2::Blake2bMac<U32> as KeyInit>::new_from_slice(public_key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("blake2b accepts keys up to 64 bytes"),
    };
    mac.update(b"hypercore");
    mac.finalize().into_bytes().into()
}

/// How much of a log this replica has: the signed length and the blocks `0..` it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Blocks the signed tree covers.
    pub length: u64,
    /// Blocks `0..contiguous_length` are all stored locally.
    pub contiguous_length: u64,
    /// The fork id: a truncation (ours or a writer's we followed) changes it even when
    /// both lengths stay the same.
    pub fork: u64,
}

/// A log's length figures, read together (see [`ManagedCore::info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreInfo {
    /// Number of blocks the signed tree covers.
    pub length: u64,
    /// Blocks `0..contiguous_length` are all stored locally.
    pub contiguous_length: u64,
    /// Bytes the signed tree covers: the stored blocks' (an encrypted log's include
    /// each block's padding; [`ManagedCore::byte_length`] leaves it out).
    pub byte_length: u64,
    /// Fork id (0 unless the log was truncated).
    pub fork: u64,
}

/// How a new log is keyed and signed. Chosen when the log is created; an existing log
/// keeps the format its files record, whatever is asked when it is reopened.
///
/// Who can read what: JS hypercore 10 reads only [`Legacy`](CoreFormat::Legacy) logs
/// (its manifest decoder refuses version 1); JS hypercore 11 reads both (its default is
/// [`V1`](CoreFormat::V1); `compat: true` makes legacy logs).
///
/// ```
/// use nova_hypercore_managed_core::{CoreFormat, ManagedCore, OpenOptions, RequestUpgrade, SigningKey};
/// use nova_hypercore_serialization::LogName;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let name = LogName::parse("v1-log")?;
/// let key = SigningKey::from_bytes(&[1; 32]);
/// let writer = ManagedCore::in_memory(
///     name.clone(),
///     OpenOptions::new().signing_key(key.clone()).format(CoreFormat::V1),
/// )
/// .await?;
/// writer.append(b"hello").await?;
/// // The core key is the manifest's hash, not the signer's key.
/// assert_ne!(writer.public_key(), key.verifying_key().to_bytes());
///
/// // A replica knows only the core key until the manifest comes from the wire.
/// let replica =
///     ManagedCore::in_memory(name, OpenOptions::new().core_key(writer.public_key())).await?;
/// assert!(replica.needs_manifest());
/// replica.set_manifest(&writer.manifest().unwrap()).await?;
/// let upgrade = RequestUpgrade { start: 0, length: 1 };
/// let proof = writer.serve_proof(None, Some(upgrade)).await?.unwrap();
/// assert!(replica.apply_proof(proof).await?);
/// assert_eq!(replica.length(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoreFormat {
    /// Hypercore 10 ("compat"): the core key is the signer's ed25519 public key; a
    /// signature is a raw 64-byte ed25519 signature over the 80-byte legacy signable.
    /// The files are byte-compatible with JS hypercore 10.31.
    #[default]
    Legacy,
    /// Hypercore 11 default: the core key is the hash of the signer's default version-1
    /// manifest ([`crate::manifest::default_core_key`]); a signature is a 68-byte
    /// multisig container over the 112-byte signable. The manifest is kept in the oplog
    /// header.
    V1,
}

impl From<CoreFormat> for Format {
    fn from(f: CoreFormat) -> Self {
        match f {
            CoreFormat::Legacy => Format::Legacy,
            CoreFormat::V1 => Format::V1,
        }
    }
}

/// What [`ManagedCore::repair`] rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repaired {
    /// Tree nodes that differed from the ones recomputed from the data file and were
    /// rewritten.
    pub tree_nodes_rewritten: u64,
    /// Blocks the bitfield had lost that verified and were marked stored again.
    pub blocks_restored: u64,
}

/// How to open a log.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    durability: Durability,
    keys: Keys,
    format: CoreFormat,
    budget: Option<FileBudget>,
    sparse: bool,
    encryption: Option<EncryptionKey>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            durability: Durability::default(),
            keys: Keys::Generate,
            format: CoreFormat::default(),
            budget: None,
            sparse: false,
            encryption: None,
        }
    }
}

impl OpenOptions {
    /// Defaults: [`Durability::Flush`]; a new log gets a fresh random key pair, kept in
    /// its oplog header (as JS hypercore does without a key store).
    pub fn new() -> Self {
        Self::default()
    }

    /// What an acknowledged append survives (disk logs only).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The log's signing key, kept by the caller (the manager's `keys/`): it is never
    /// written into the log's files, and a secret found in an existing log's oplog
    /// header (older layouts) is removed at open. For an existing log the key must match
    /// the stored public key, or opening fails with `STORAGE_CORRUPTED`.
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.keys = Keys::Secret(key);
        self
    }

    /// Open a read-only log signed by this ed25519 key (a replica). A new log's core key
    /// follows from the key and the [`format`](Self::format): the key itself
    /// (legacy), or its default manifest's hash (v1, the manifest known at once). For
    /// an existing log the key must be one of its signers, or opening fails with
    /// `STORAGE_CORRUPTED`.
    pub fn public_key(mut self, key: VerifyingKey) -> Self {
        self.keys = Keys::Public(key);
        self
    }

    /// Open a read-only log by its core key (a replica), as peers name it, not knowing
    /// yet whether it is a legacy or a manifest core: see
    /// [`ManagedCore::needs_manifest`]. For an existing log the key must match, or
    /// opening fails with `STORAGE_CORRUPTED`.
    pub fn core_key(mut self, key: [u8; 32]) -> Self {
        self.keys = Keys::Core(key);
        self
    }

    /// Open the log's files under `budget`, a cap on open descriptors shared with other
    /// logs: each file is opened when an I/O needs it and may be closed again when
    /// another file of the budget needs room (see [`FileBudget`]). Without one (the
    /// default) the five files stay open until the log's last handle drops. Disk logs
    /// only.
    pub fn file_budget(mut self, budget: FileBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The format of a new log (default [`CoreFormat::Legacy`]); ignored for an
    /// existing log and for [`core_key`](Self::core_key) replicas.
    pub fn format(mut self, format: CoreFormat) -> Self {
        self.format = format;
        self
    }

    /// A sparse replica (default: full): its replication sessions fetch only the
    /// blocks it wants ([`ManagedCore::download`], reads that wait:
    /// [`ManagedCore::get_waiting`]) instead of every block. Ignored for a writable log
    /// (it holds its blocks).
    pub fn sparse(mut self, sparse: bool) -> Self {
        self.sparse = sparse;
        self
    }

    /// Encrypt the log's blocks with `key` (JS hypercore's `encryptionKey`): appends
    /// store `padding ‖ ciphertext` (8 bytes more per block, written at the log's fork),
    /// which the tree, the signatures, the files and the wire carry as they are; reads
    /// ([`ManagedCore::get`]) decrypt after verifying; [`ManagedCore::byte_length`] and
    /// seeks count the plaintext's bytes. The key is not stored: give it at every open.
    /// Without it, a log of encrypted blocks is still opened, verified, replicated and
    /// served (a seeder), and its reads return the stored bytes. A wrong key is not
    /// detected (there is no MAC): reads return other bytes.
    pub fn encryption_key(mut self, key: EncryptionKey) -> Self {
        self.encryption = Some(key);
        self
    }
}

/// What is known of a log's manifest, kept outside the storage lock for cheap reads.
#[derive(Debug, Clone, Default)]
struct ManifestState {
    /// The encoded manifest of a manifest core (`None` for legacy or pending cores).
    encoded: Option<Vec<u8>>,
    /// `None` while pending; `Some(true)` legacy; `Some(false)` manifest core.
    legacy: Option<bool>,
    /// The key of the log's one signer, if known.
    signer_key: Option<VerifyingKey>,
}

impl ManifestState {
    fn of(storage: &Storage) -> Self {
        ManifestState {
            encoded: storage.manifest_to_serve(),
            legacy: storage.is_legacy(),
            signer_key: storage.signer_key(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    name: LogName,
    path: Option<PathBuf>,
    key: [u8; 32],
    manifest: std::sync::RwLock<ManifestState>,
    discovery_key: [u8; 32],
    writable: bool,
    durability: Durability,
    files: Files,
    /// The budget the files are under, whose sync turns [`ManagedCore::sync`] takes.
    budget: Option<FileBudget>,
    storage: RwLock<Option<Storage>>,
    length: AtomicU64,
    byte_length: AtomicU64,
    fork: AtomicU64,
    /// Length and contiguous length, for tasks that wait for the log to grow (live
    /// replication, download progress).
    progress_tx: tokio::sync::watch::Sender<Progress>,
    /// Counts blocks found damaged and marked missing since open (see
    /// [`ManagedCore::watch_missing`]).
    missing_tx: tokio::sync::watch::Sender<u64>,
    closed: AtomicBool,
    /// Set when a write failed part-way: the reason every later call reports.
    broken: std::sync::Mutex<Option<String>>,
    verified: Verified,
    /// A sparse replica (see [`OpenOptions::sparse`]).
    sparse: bool,
    /// What a sparse replica asks its peers for, and the clock of blocks stored from
    /// peers that waiting reads watch (any replica).
    wants: Arc<Wants>,
    /// The encryption key and its block keys (see [`OpenOptions::encryption_key`]).
    encryption: Option<encrypted::Encryption>,
}

/// One append-only log. A cheap `Clone` handle: clones share the same log.
///
/// Appends are serialized (sequence numbers are gap-free under any number of concurrent
/// callers); reads run concurrently with each other.
#[derive(Debug, Clone)]
pub struct ManagedCore {
    inner: Arc<Inner>,
}

impl ManagedCore {
    /// Opens the log stored in `dir`, creating the directory and a new log if there is
    /// none. Errors: `STORAGE_INACCESSIBLE` (directory or files cannot be created or
    /// opened), `STORAGE_CORRUPTED` (files do not verify, naming the file and the blocks
    /// affected, or the given key does not match the stored one), `IO_ERROR`.
    ///
    /// Damage the data file can make good is rebuilt here, without a peer (see
    /// docs/reliability.md): a tree whose roots are lost or altered but whose leaves
    /// survive (recomputed, kept only if it carries the stored signature); bitfield bits
    /// lost for blocks that verify; and, for a writer whose key is given with
    /// [`OpenOptions::signing_key`], blocks past a damaged or lost oplog header that a
    /// checkpoint wrote to the tree file (signed again).
    pub async fn open(dir: impl AsRef<Path>, name: LogName, options: OpenOptions) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| HypercoreError::StorageInaccessible {
            path: dir.to_owned(),
            source,
        })?;
        let files = Files::open(dir, options.durability, options.budget.as_ref())
            .map_err(|(path, source)| HypercoreError::StorageInaccessible { path, source })?;
        Self::build(files, name, Some(dir.to_owned()), options).await
    }

    /// A log held in memory only (tests, scratch logs). Gone when the last handle drops.
    pub async fn in_memory(name: LogName, options: OpenOptions) -> Result<Self> {
        Self::build(Files::memory(), name, None, options).await
    }

    async fn build(
        files: Files,
        name: LogName,
        path: Option<PathBuf>,
        options: OpenOptions,
    ) -> Result<Self> {
        let where_ = path.clone().unwrap_or_else(|| PathBuf::from(":memory:"));
        // Opening may rewrite damaged parts and syncs every file: a write turn.
        let _turn = match (&options.budget, &path) {
            (Some(budget), Some(_)) => budget.write_turn().await,
            _ => None,
        };
        let storage = Storage::open(files.clone(), options.keys.clone(), options.format.into())
            .map_err(|e| storage_error(&name, &where_, e))?;
        let length = storage.tree().length();
        let progress = Progress {
            length,
            contiguous_length: storage.contiguous(),
            fork: storage.tree().fork(),
        };
        let sparse = options.sparse && !storage.writable();
        let managed = ManagedCore {
            inner: Arc::new(Inner {
                discovery_key: discovery_key(&storage.key()),
                name,
                path,
                key: storage.key(),
                manifest: std::sync::RwLock::new(ManifestState::of(&storage)),
                writable: storage.writable(),
                durability: options.durability,
                files,
                budget: options.budget,
                length: AtomicU64::new(length),
                byte_length: AtomicU64::new(Self::value_bytes(
                    if options.encryption.is_some() {
                        crate::encryption::PADDING as u64
                    } else {
                        0
                    },
                    &storage,
                )),
                fork: AtomicU64::new(storage.tree().fork()),
                progress_tx: tokio::sync::watch::Sender::new(progress),
                missing_tx: tokio::sync::watch::Sender::new(0),
                storage: RwLock::new(Some(storage)),
                closed: AtomicBool::new(false),
                broken: std::sync::Mutex::new(None),
                verified: Verified::default(),
                sparse,
                wants: Wants::new(),
                encryption: options.encryption.map(encrypted::Encryption::new),
            }),
        };
        // What opening wrote is synced here, and only that (`sync` skips clean files;
        // a clean reopen writes nothing). Every header it wrote (a new log's, or one
        // rewritten: an old layout's secret removed, a replayed truncation, restored
        // bits) is already synced: `Storage::checkpoint_header` syncs it before it cuts
        // the oplog. Left: the pages a rewrite wrote (tree, bitfield, sizes), and the
        // oplog's cut itself (entries the new header covers, a torn tail, or a new log's
        // file extended to its two header slots). `Flush` does not sync that cut (one
        // `fdatasync` per new log): if it is lost, the entries it cut no longer match
        // the header's bit and are ignored at open, a torn tail is cut again, and a new
        // log's file simply ends after its first slot (read as an empty second slot);
        // a `Flush` checkpoint leaves its own cut unsynced the same way
        // (`checkpoint_if_due`). The fsync modes sync it, as their contract says.
        let files = &managed.inner.files;
        if managed.inner.durability == Durability::Flush {
            let pages = [
                files.data.clone(),
                files.tree.clone(),
                files.bitfield.clone(),
                files.sizes.clone(),
            ];
            managed.sync(&pages, true).await?;
        } else {
            managed.sync(&files.all(), true).await?;
        }
        debug!(
            log = %managed.inner.name,
            path = %where_.display(),
            length,
            writable = managed.inner.writable,
            "log opened"
        );
        Ok(managed)
    }

    /// The log's name.
    pub fn name(&self) -> &LogName {
        &self.inner.name
    }

    /// The directory holding the log's files (`None` for memory logs).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The core key: what names the log on the wire and in the store, and what its
    /// discovery key derives from. For a legacy log it is also the ed25519 key that
    /// signs it; for a v1 log it is the manifest's hash (the signer's key is
    /// [`signer_key`](Self::signer_key)).
    pub fn public_key(&self) -> [u8; 32] {
        self.inner.key
    }

    /// The ed25519 key of the log's single signer ([`signer_key`](Self::signer_key)),
    /// kept for callers written when it was also the core key. A log with no single
    /// signer known (a replica waiting for its manifest, or a manifest with several
    /// signers) has none; then this is the core key read as an ed25519 key if it is
    /// one, else the identity point, which verifies nothing.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signer_key().unwrap_or_else(|| {
            VerifyingKey::from_bytes(&self.inner.key).unwrap_or_else(|_| identity_point())
        })
    }

    /// The ed25519 key of the log's single signer (or the key this process signs
    /// with); `None` while the manifest is not known or when several keys sign.
    pub fn signer_key(&self) -> Option<VerifyingKey> {
        self.manifest_state().signer_key
    }

    /// The log's format: `None` for a replica opened by core key whose manifest has
    /// not arrived yet ([`needs_manifest`](Self::needs_manifest)).
    pub fn format(&self) -> Option<CoreFormat> {
        self.manifest_state().legacy.map(|legacy| {
            if legacy {
                CoreFormat::Legacy
            } else {
                CoreFormat::V1
            }
        })
    }

    /// The encoded manifest of a manifest core, to serve to peers that ask for it (JS
    /// 11 sends it in `Data.manifest`); `None` for legacy logs (JS 11 sends none for
    /// them either) and while it is unknown.
    pub fn manifest(&self) -> Option<Vec<u8>> {
        self.manifest_state().encoded
    }

    /// Whether this log has a manifest to serve: the `hasManifest` flag of the wire's
    /// `Sync` message.
    pub fn has_manifest(&self) -> bool {
        self.manifest_state().encoded.is_some()
    }

    /// Whether this replica still waits for its manifest: it was opened by core key
    /// ([`OpenOptions::core_key`]) and nothing has told it yet whether the key is a
    /// manifest hash or a legacy signer key. Until then a manifest core's upgrades fail
    /// with `SIGNATURE_INVALID` (the reason says the manifest is missing); a legacy
    /// core's first verified upgrade settles it as legacy by itself.
    pub fn needs_manifest(&self) -> bool {
        self.manifest_state().legacy.is_none()
    }

    /// Takes the manifest a peer sent for this log. Checks first that
    /// blake2b-256(MANIFEST ‖ `encoded`) is the core key, then decodes it, then stores
    /// it durably (a new oplog header, synced) before returning. A log that already has
    /// its manifest (or is legacy) keeps it: the call only checks the hash then.
    ///
    /// Errors: `SIGNATURE_INVALID` when the hash is not the core key, or the bytes do
    /// not decode as a canonical manifest (nothing changes); `IO_ERROR` or
    /// `STORAGE_CORRUPTED` when storing fails.
    pub async fn set_manifest(&self, encoded: &[u8]) -> Result<()> {
        let manifest = crate::manifest::Manifest::decode_for_key(&self.inner.key, encoded)
            .map_err(|e| self.invalid(0, format!("manifest from a peer rejected: {e}")))?;
        let mut guard = self.inner.storage.write().await;
        let _turn = self.write_turn().await;
        let storage = self.usable_mut(&mut guard)?;
        if storage.needs_manifest()
            && let Some(size) = storage.header_overflow_with(&manifest)
        {
            return Err(self.invalid(
                0,
                format!(
                    "manifest from a peer rejected: with its largest signature the oplog header would be {size} bytes, over the {} a header slot holds (the core could never be stored)",
                    crate::oplog::PAGE_SIZE
                ),
            ));
        }
        if !storage.set_manifest(manifest).map_err(|e| self.error(e))? {
            return Ok(());
        }
        self.checkpoint_if_due(&mut guard, true).await?;
        self.sync(std::slice::from_ref(&self.inner.files.oplog), true)
            .await?;
        let storage = self.usable(&guard)?;
        self.refresh_manifest(storage);
        debug!(log = %self.inner.name, "manifest stored");
        Ok(())
    }

    fn manifest_state(&self) -> ManifestState {
        self.inner
            .manifest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn refresh_manifest(&self, storage: &Storage) {
        *self
            .inner
            .manifest
            .write()
            .unwrap_or_else(|p| p.into_inner()) = ManifestState::of(storage);
    }

    /// The discovery key (see [`discovery_key`]).
    pub fn discovery_key(&self) -> [u8; 32] {
        self.inner.discovery_key
    }

    /// Number of blocks.
    pub fn length(&self) -> u64 {
        self.inner.length.load(Ordering::Acquire)
    }

    /// Sum of the blocks' sizes in bytes: of their values (JS `core.byteLength`), so an
    /// encrypted log's leaves out each block's padding ([`padding`](Self::padding)).
    pub fn byte_length(&self) -> u64 {
        self.inner.byte_length.load(Ordering::Acquire)
    }

    /// The byte length [`byte_length`](Self::byte_length) reports for `storage`: the
    /// stored bytes less each block's padding (computed under the storage lock, so
    /// length and bytes are of the same state).
    fn value_bytes(padding: u64, storage: &Storage) -> u64 {
        let tree = storage.tree();
        tree.byte_length()
            .saturating_sub(padding.saturating_mul(tree.length()))
    }

    /// Whether this process holds the secret key (can append).
    pub fn is_writable(&self) -> bool {
        self.inner.writable
    }

    /// The durability mode appends use.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Whether [`close`](Self::close) has run.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Appends one block; returns its sequence number.
    pub async fn append(&self, data: &[u8]) -> Result<u64> {
        Ok(self.append_batch(&[data]).await?.start)
    }

    /// Appends blocks as one batch under one signature; returns their sequence numbers.
    /// An empty batch appends nothing and returns an empty range at the current length.
    ///
    /// Write order: the blocks to `data`, then one oplog entry (the commit point); in
    /// [`Durability::FsyncPerBatch`] `data` is synced before the entry is written and the
    /// oplog after, so a synced entry never points at unsynced blocks.
    pub async fn append_batch<B: AsRef<[u8]>>(&self, batch: &[B]) -> Result<Range<u64>> {
        if !self.inner.writable {
            return Err(self.not_writable());
        }
        let mut guard = self.inner.storage.write().await;
        let storage = self.usable_mut(&mut guard)?;
        let start = storage.tree().length();
        if batch.is_empty() {
            return Ok(start..start);
        }
        let _turn = self.write_turn().await;
        let storage = self.usable_mut(&mut guard)?;
        let fsync = self.inner.durability == Durability::FsyncPerBatch;
        let encrypted = self.encrypt_batch(start, storage.tree().fork(), batch)?;
        let prepared = match &encrypted {
            Some(stored) => storage.append_prepare(stored),
            None => storage.append_prepare(batch),
        }
        .map_err(|e| self.error(e))?;
        self.sync(std::slice::from_ref(&self.inner.files.data), fsync)
            .await?;
        let storage = self.usable_mut(&mut guard)?;
        let leaves = match storage.append_commit(prepared) {
            Ok(leaves) => leaves,
            Err(e) => return Err(self.broken(e)),
        };
        self.sync(std::slice::from_ref(&self.inner.files.oplog), fsync)
            .await?;
        let storage = self.usable_mut(&mut guard)?;
        let fork = storage.tree().fork();
        self.inner
            .verified
            .remember(fork, leaves.into_iter().map(|(n, o)| (n, Some(o))));
        self.checkpoint_if_due(&mut guard, false).await?;
        let storage = self.usable_mut(&mut guard)?;
        let end = storage.tree().length();
        self.publish(storage);
        drop(guard);
        Ok(start..end)
    }

    /// Writes the buffered tree and bitfield and a new header when due (or `always`).
    /// `tree` and `bitfield` are synced before the header in every mode: a header that
    /// reached the disk before the tree pages it points at left a `Flush` log unopenable
    /// after a power cut (every block unreachable) in up to half the simulated states
    /// (tests/power_cut.rs); the header itself is synced by
    /// `Storage::checkpoint_header`. `data` before the header and the oplog after it
    /// only in the fsync modes: in `Flush` a block whose bytes did not reach the disk is
    /// refused on read, never wrong. `Flush` pays three `fdatasync`s of small writes per
    /// checkpoint (every 256 KiB of oplog).
    async fn checkpoint_if_due(&self, guard: &mut Option<Storage>, always: bool) -> Result<()> {
        let storage = self.usable_mut(guard)?;
        if !(storage.checkpoint_due() || always && storage.checkpoint_pending()) {
            return Ok(());
        }
        let fsync = self.inner.durability != Durability::Flush;
        if let Err(e) = storage.checkpoint_pages() {
            return Err(self.error(e));
        }
        let files = &self.inner.files;
        self.sync(std::slice::from_ref(&files.data), fsync).await?;
        self.sync(
            &[
                files.tree.clone(),
                files.bitfield.clone(),
                files.sizes.clone(),
            ],
            true,
        )
        .await?;
        let storage = self.usable_mut(guard)?;
        if let Err(e) = storage.checkpoint_header() {
            return Err(self.broken(e));
        }
        self.sync(std::slice::from_ref(&files.oplog), fsync).await
    }

    /// Reads block `seq`, verified against the signed tree.
    ///
    /// Errors: `OUT_OF_RANGE` (with the current length) for `seq >= length`,
    /// `SIGNATURE_INVALID` (log and seq) if the block is not stored or its tree path does
    /// not verify; such bytes are never returned. When the block's leaf is good but its
    /// bytes in the `data` file are not (tampered or damaged data), the error is
    /// `STORAGE_CORRUPTED` naming the log, the data file and the seq range, and the block
    /// is also marked missing, durably (one oplog entry clearing its bitfield bit): it
    /// then counts as not stored, [`watch_missing`](Self::watch_missing) changes, and
    /// replication fetches it again from a peer that holds it, verified, into the same
    /// place.
    ///
    /// An encrypted log ([`OpenOptions::encryption_key`]) returns the block decrypted;
    /// [`get_stored`](Self::get_stored) the bytes as stored.
    pub async fn get(&self, seq: u64) -> Result<Vec<u8>> {
        let stored = self.get_stored(seq).await?;
        self.decrypted(seq, stored)
    }

    /// Block `seq` as stored and verified, as [`get`](Self::get) but not decrypted:
    /// what replication serves (the same bytes whether or not this log holds the
    /// encryption key). Errors: those of `get`.
    pub async fn get_stored(&self, seq: u64) -> Result<Vec<u8>> {
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        match self.verified_block(storage, seq) {
            Ok(value) => Ok(value),
            Err(BlockError::Fatal(e)) => Err(e),
            Err(BlockError::Damaged(reason)) => {
                drop(guard);
                self.drop_damaged(seq, reason).await
            }
        }
    }

    fn verified_block(&self, storage: &Storage, seq: u64) -> Result<Vec<u8>, BlockError> {
        let length = storage.tree().length();
        if seq >= length {
            return Err(BlockError::Fatal(HypercoreError::OutOfRange {
                log: self.inner.name.to_string(),
                seq,
                length,
            }));
        }
        read::verified_block(storage, &self.inner.verified, seq).map_err(|e| match e {
            ReadError::Invalid(reason) => BlockError::Fatal(self.invalid(seq, reason)),
            ReadError::NotStored => BlockError::Fatal(self.not_stored(seq)),
            ReadError::DataDamaged(reason) => BlockError::Damaged(reason),
            ReadError::Storage(e) => BlockError::Fatal(self.error(e)),
        })
    }

    /// Block `seq` failed verification in the data file while its leaf is good: checks
    /// again under the write lock (another reader may have dropped it, or it verifies
    /// now), then clears its bitfield bit durably and tells the watchers. Returns the
    /// block if it verifies now, else the `STORAGE_CORRUPTED` error for the read.
    async fn drop_damaged(&self, seq: u64, reason: String) -> Result<Vec<u8>> {
        let mut guard = self.inner.storage.write().await;
        let storage = self.usable_mut(&mut guard)?;
        let data = self.inner.files.data.path().display().to_string();
        if !storage.has(seq) {
            // Another read dropped it meanwhile.
            return Err(self.damaged(seq, format!("{reason} (data file {data})")));
        }
        let reason = match read::verify_stored(storage, &self.inner.verified, seq) {
            Ok(value) => return Ok(value),
            Err(ReadError::DataDamaged(reason)) => reason,
            Err(ReadError::Invalid(reason)) => return Err(self.invalid(seq, reason)),
            Err(ReadError::NotStored) => return Err(self.not_stored(seq)),
            Err(ReadError::Storage(e)) => return Err(self.error(e)),
        };
        let _turn = self.write_turn().await;
        let storage = self.usable_mut(&mut guard)?;
        if !storage.drop_block(seq).map_err(|e| self.error(e))? {
            return Err(self.damaged(seq, reason));
        }
        let fsync = self.inner.durability == Durability::FsyncPerBatch;
        self.sync(std::slice::from_ref(&self.inner.files.oplog), fsync)
            .await?;
        self.checkpoint_if_due(&mut guard, false).await?;
        let storage = self.usable_mut(&mut guard)?;
        self.publish(storage);
        drop(guard);
        self.inner
            .missing_tx
            .send_modify(|n| *n = n.wrapping_add(1));
        warn!(
            log = %self.inner.name,
            seq,
            file = %data,
            "block damaged in the data file: marked missing, to be fetched again from a peer"
        );
        Err(self.damaged(
            seq,
            format!(
                "{reason} (data file {data}); the block is now marked missing and is fetched again from a peer that holds it"
            ),
        ))
    }

    /// Reads blocks `[start, end)`, each verified like [`get`](Self::get), in order
    /// (a damaged block is marked missing as there).
    /// A reversed range or one reaching past the length is `OUT_OF_RANGE`.
    pub async fn get_range(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let capacity = usize::try_from(end.saturating_sub(start))
            .unwrap_or(0)
            .min(1 << 16);
        let mut out = Vec::with_capacity(capacity);
        let mut seq = start;
        loop {
            let guard = self.inner.storage.read().await;
            let storage = self.usable(&guard)?;
            let length = storage.tree().length();
            if start > end || end > length {
                return Err(HypercoreError::RangeOutOfBounds {
                    log: self.inner.name.to_string(),
                    start,
                    end,
                    length,
                });
            }
            while seq < end {
                match self.verified_block(storage, seq) {
                    Ok(value) => out.push(self.decrypted(seq, value)?),
                    Err(BlockError::Fatal(e)) => return Err(e),
                    Err(BlockError::Damaged(reason)) => {
                        drop(guard);
                        let value = self.drop_damaged(seq, reason).await?;
                        out.push(self.decrypted(seq, value)?);
                        seq += 1;
                        break;
                    }
                }
                seq += 1;
            }
            if seq >= end {
                return Ok(out);
            }
        }
    }

    /// Checks block `seq` against the merkle tree signed by the log's public key.
    /// `Ok(false)` means the stored block (or the tree above it) has been altered.
    pub async fn verify_signature(&self, seq: u64) -> Result<bool> {
        match self.get_stored(seq).await {
            Ok(_) => Ok(true),
            // Not stored or not verifying, or its data bytes damaged (marked missing).
            Err(
                HypercoreError::SignatureInvalid { .. }
                | HypercoreError::StorageCorrupted { .. }
                | HypercoreError::BlockUnavailable { .. },
            ) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Checkpoints and syncs every file, then closes the log. Later calls on any handle
    /// of this log fail with a "closed" error (`STORAGE_INACCESSIBLE`). Closing twice is
    /// a no-op.
    pub async fn close(&self) -> Result<()> {
        let mut guard = self.inner.storage.write().await;
        if guard.is_none() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let checkpoint = if self.broken_reason().is_none() {
            self.checkpoint_if_due(&mut guard, true).await
        } else {
            Ok(())
        };
        self.inner.closed.store(true, Ordering::Release);
        guard.take();
        let synced = self.sync(&self.inner.files.all(), true).await;
        // Under a budget the descriptors go back now, not when the last handle drops
        // (a failed sync was reported just above, by this close).
        for file in self.inner.files.all() {
            file.release();
        }
        debug!(log = %self.inner.name, length = self.length(), "log closed");
        checkpoint.and(synced)
    }

    /// Checks the whole log against its data file and rebuilds locally what is damaged
    /// (no peer needed): every block is re-hashed, the tree recomputed and, when its
    /// roots carry the log's stored signature (which proves every block and boundary is
    /// what was signed), every tree node that differs is rewritten; blocks the bitfield
    /// lost are verified and marked stored again. Leaves lost with the tree take their
    /// block sizes from the log's `sizes` file (a record of each block's size written at
    /// each checkpoint; the signature check covers it, so a wrong one cannot make bad
    /// data good), and the verified sizes are written back to that file where it
    /// differs. Opening a log does the same when its roots are damaged or its bitfield
    /// lost blocks; this finds damage that reads may not hit yet (an interior tree node,
    /// an altered `sizes` file). Cost: one read of the data file, the tree file and the
    /// `sizes` file.
    ///
    /// Errors: `STORAGE_CORRUPTED` naming the tree file and the blocks when the data file
    /// does not reproduce the signed tree (nothing is rewritten then), `IO_ERROR`.
    pub async fn repair(&self) -> Result<Repaired> {
        let mut guard = self.inner.storage.write().await;
        let _turn = self.write_turn().await;
        // Everything pending goes to the files first, so the rebuild reads one truth.
        self.checkpoint_if_due(&mut guard, true).await?;
        let storage = self.usable_mut(&mut guard)?;
        let (tree_nodes_rewritten, blocks_restored) =
            storage.repair().map_err(|e| self.error(e))?;
        self.checkpoint_if_due(&mut guard, true).await?;
        let storage = self.usable_mut(&mut guard)?;
        self.publish(storage);
        drop(guard);
        self.sync(&self.inner.files.all(), true).await?;
        Ok(Repaired {
            tree_nodes_rewritten,
            blocks_restored,
        })
    }

    /// A receiver that sees [`Progress`] whenever the log grows (appends here, or an
    /// upgrade or block applied from a peer): lets a replication session push news and a
    /// reader follow a download without polling.
    pub fn watch_progress(&self) -> tokio::sync::watch::Receiver<Progress> {
        self.inner.progress_tx.subscribe()
    }

    /// A receiver that changes whenever blocks this log claimed to hold were found
    /// damaged (their `data` bytes failed verification on a read) and marked missing,
    /// or were cleared ([`clear`](Self::clear)); the value counts them since open. A replication session watches it to request
    /// those blocks again from its peers without reconnecting. Blocks missing for other
    /// reasons (not downloaded yet) do not change it.
    pub fn watch_missing(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.missing_tx.subscribe()
    }

    /// The fork id (0 unless the log was truncated), without taking the storage lock.
    pub fn fork(&self) -> u64 {
        self.inner.fork.load(Ordering::Acquire)
    }

    /// Whether this is a sparse replica (see [`OpenOptions::sparse`]).
    pub fn is_sparse(&self) -> bool {
        self.inner.sparse
    }

    /// Asks the peers of a sparse replica for blocks `range` (past the length too: they
    /// are asked once an upgrade reaches them) while the returned guard lives (JS
    /// `core.download(range)`). A full replica asks for every block anyway; the guard
    /// then changes nothing. Progress and completion: [`Download::progress`] and
    /// [`Download::done`]; [`Download::cancel`] (or dropping it) withdraws the range.
    pub fn download(&self, range: Range<u64>) -> Download {
        self.inner.wants.add(range, self.clone())
    }

    /// The ranges a sparse replica's readers and downloads want now (overlaps
    /// possible): what its replication sessions request.
    pub fn wanted(&self) -> Vec<Range<u64>> {
        self.inner.wants.ranges()
    }

    /// Changes whenever a range is added to [`wanted`](Self::wanted).
    pub fn watch_wants(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wants.watch()
    }

    /// Changes whenever a block from a peer is stored (any replica).
    pub fn watch_stored(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wants.watch_stored()
    }

    /// How many blocks of `range` (clipped to the length) are stored here.
    pub async fn has_range(&self, range: Range<u64>) -> Result<u64> {
        let guard = self.inner.storage.read().await;
        Ok(self.usable(&guard)?.held(range))
    }

    /// Block `seq`, waiting up to `timeout` for it to arrive from a peer when it is not
    /// stored here (or lies past the length: it waits for an upgrade too); a sparse
    /// replica asks its peers for it meanwhile. Errors: `REPLICATION_FAILED`
    /// ([`HypercoreError::BlockUnavailable`], naming the log and seq) when the time is
    /// up; otherwise those of [`get`](Self::get).
    pub async fn get_waiting(&self, seq: u64, timeout: std::time::Duration) -> Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let _want = self.download(seq..seq.saturating_add(1));
        let mut stored = self.watch_stored();
        let mut progress = self.watch_progress();
        loop {
            stored.borrow_and_update();
            progress.borrow_and_update();
            match self.get(seq).await {
                Err(
                    HypercoreError::BlockUnavailable { .. } | HypercoreError::OutOfRange { .. },
                ) => {}
                done => return done,
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
                    return Err(HypercoreError::BlockUnavailable {
                        log: self.inner.name.to_string(),
                        seq,
                        reason: format!("no peer sent it within {timeout:?}"),
                    });
                }
            }
        }
    }

    /// The first block at or after `from` that is not stored locally, or the length
    /// when every block from `from` on is (a replication session skips held runs with
    /// it).
    pub async fn first_missing(&self, from: u64) -> Result<u64> {
        let guard = self.inner.storage.read().await;
        Ok(self.usable(&guard)?.first_missing(from))
    }

    /// Whether block `seq` is stored locally.
    pub async fn has_block(&self, seq: u64) -> Result<bool> {
        let guard = self.inner.storage.read().await;
        Ok(self.usable(&guard)?.has(seq))
    }

    /// Length, contiguous length (blocks 0.. all stored) and fork, read together.
    pub async fn info(&self) -> Result<CoreInfo> {
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        Ok(CoreInfo {
            length: storage.tree().length(),
            contiguous_length: storage.contiguous(),
            byte_length: storage.tree().byte_length(),
            fork: storage.tree().fork(),
        })
    }

    /// How many merkle nodes a proof for block `seq` must carry for this replica: the
    /// `nodes` field of a block request. Only meaningful for `seq < length`.
    pub async fn missing_nodes(&self, seq: u64) -> Result<u64> {
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        storage.missing_nodes(seq).map_err(|e| self.error(e))
    }

    /// Serves a peer's request: a proof for `block` and/or `upgrade`, or `None` when this
    /// replica cannot serve it (block not stored or beyond the length, upgrade beyond
    /// the length). Never an error for a bad request: a peer's request is just data.
    pub async fn serve_proof(
        &self,
        block: Option<RequestBlock>,
        upgrade: Option<RequestUpgrade>,
    ) -> Result<Option<Proof>> {
        if block.is_none() && upgrade.is_none() {
            return Ok(None);
        }
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        storage
            .create_proof(block, None, None, 0, upgrade)
            .map_err(|e| self.error(e))
    }

    /// The proof of tree node `hash.index` (a flat-tree index: `2 * seq` for a leaf)
    /// with the `hash.nodes` levels above it the peer lacks, and optionally an upgrade
    /// (a wire `Request.hash`, JS `MerkleTree.proof`). Readers following a fork
    /// bisect with these (docs/forks.md §4.4). As in JS, the node is proven from the
    /// tree whether or not the block's bytes are held; `Ok(None)` when the tree lacks
    /// a node of the proof or the index is past our length.
    pub async fn serve_hash(
        &self,
        hash: RequestBlock,
        upgrade: Option<RequestUpgrade>,
    ) -> Result<Option<Proof>> {
        let guard = self.inner.storage.read().await;
        let storage = self.usable(&guard)?;
        storage
            .create_proof(None, Some(hash), None, 0, upgrade)
            .map_err(|e| self.error(e))
    }

    /// Verifies a proof received from a peer against this log's public key and stores
    /// what it proves. `Ok(true)`: applied (length and/or a block added). `Ok(false)`:
    /// stale or not applicable now (e.g. an upgrade that no longer fits); nothing
    /// changed. `SIGNATURE_INVALID`: the proof does not verify (forged, tampered or
    /// not signed by this log's key); nothing changed.
    ///
    /// A writable log (this process signs it) takes blocks only, verified against its
    /// own signed tree (that is how it gets back blocks whose bytes were damaged): a
    /// proof carrying an upgrade is `Ok(false)`, so its length and signature never
    /// change but by its own appends.
    pub async fn apply_proof(&self, proof: Proof) -> Result<bool> {
        if self.inner.writable && proof.upgrade.is_some() {
            debug!(log = %self.inner.name, "a writer takes no upgrade from a peer");
            return Ok(false);
        }
        let seq = proof
            .block
            .as_ref()
            .map(|b| b.index)
            .or_else(|| proof.upgrade.as_ref().map(|u| u.start))
            .unwrap_or(0);
        let mut guard = self.inner.storage.write().await;
        let storage = self.usable_mut(&mut guard)?;
        let verified = match storage.verify_proof(&proof) {
            Ok(verified) => verified,
            Err(ProofError::Storage(source)) => {
                return Err(self.io(format!("apply proof at seq {seq}"), source));
            }
            // Another fork's proof (docs/forks.md step 0b): stale or not followable yet,
            // not a forgery.
            Err(
                e @ (ProofError::Stale { .. }
                | ProofError::NotAvailable { .. }
                | ProofError::ForkMismatch { .. }),
            ) => {
                debug!(log = %self.inner.name, seq, error = %e, "proof not applicable now");
                return Ok(false);
            }
            Err(e) => {
                return Err(self.invalid(seq, format!("proof from a peer rejected: {e}")));
            }
        };
        let _turn = self.write_turn().await;
        let storage = self.usable_mut(&mut guard)?;
        let applied = match storage.apply_verified(verified) {
            Ok(applied) => applied,
            Err(e) => return Err(self.broken(e)),
        };
        if !applied.changed {
            return Ok(false);
        }
        let fsync = self.inner.durability == Durability::FsyncPerBatch;
        self.sync(
            &[
                self.inner.files.data.clone(),
                self.inner.files.oplog.clone(),
            ],
            fsync,
        )
        .await?;
        self.checkpoint_if_due(&mut guard, false).await?;
        let storage = self.usable_mut(&mut guard)?;
        if self.needs_manifest() && !storage.needs_manifest() {
            // The first verified upgrade settled a replica opened by core key as legacy.
            self.refresh_manifest(storage);
        }
        self.publish(storage);
        // Waiting reads and seeks look again (a seek proof brings nodes only).
        self.inner.wants.stored();
        Ok(true)
    }

    /// Publishes length, byte length and progress after a change.
    fn publish(&self, storage: &Storage) {
        let length = storage.tree().length();
        self.inner.length.store(length, Ordering::Release);
        self.inner.byte_length.store(
            Self::value_bytes(self.padding(), storage),
            Ordering::Release,
        );
        self.inner
            .fork
            .store(storage.tree().fork(), Ordering::Release);
        let now = Progress {
            length,
            contiguous_length: storage.contiguous(),
            fork: storage.tree().fork(),
        };
        self.inner.progress_tx.send_if_modified(|p| {
            let changed = *p != now;
            *p = now;
            changed
        });
    }

    /// Block `seq`'s bytes in the data file fail under a good leaf: tampered or
    /// damaged data, `STORAGE_CORRUPTED` naming the log, the data file and the seq range.
    fn damaged(&self, seq: u64, reason: String) -> HypercoreError {
        HypercoreError::StorageCorrupted {
            log: self.inner.name.to_string(),
            path: self.inner.files.data.path().to_owned(),
            reason: format!("blocks {seq}..{}: {reason}", seq.saturating_add(1)),
        }
    }

    /// Block `seq` (below the length) is not stored here: `REPLICATION_FAILED`.
    fn not_stored(&self, seq: u64) -> HypercoreError {
        let reason = if self.inner.writable {
            // A writer holds every block it appended unless it was cleared or a read
            // found its bytes damaged and dropped it.
            "not stored here: cleared, or its bytes were found damaged and dropped; it is fetched again from a peer that holds it"
        } else {
            "not stored here: not downloaded yet (or cleared, or dropped as damaged); a read that waits fetches it from a peer"
        };
        HypercoreError::BlockUnavailable {
            log: self.inner.name.to_string(),
            seq,
            reason: reason.into(),
        }
    }

    fn invalid(&self, seq: u64, reason: String) -> HypercoreError {
        warn!(log = %self.inner.name, seq, %reason, "block failed verification");
        HypercoreError::SignatureInvalid {
            log: self.inner.name.to_string(),
            seq,
            reason,
        }
    }

    fn io(&self, operation: String, source: std::io::Error) -> HypercoreError {
        HypercoreError::Io {
            log: self.inner.name.to_string(),
            operation,
            source,
        }
    }

    fn not_writable(&self) -> HypercoreError {
        HypercoreError::Unauthorized {
            log: Some(self.inner.name.to_string()),
            reason: format!(
                "log {} is read-only here: only the holder of its secret key can append",
                self.inner.name
            ),
        }
    }

    fn error(&self, e: StorageError) -> HypercoreError {
        if matches!(e, StorageError::NotWritable) {
            return self.not_writable();
        }
        storage_error(&self.inner.name, &self.where_(), e)
    }

    /// A write failed part-way: memory is ahead of the files, so the log must be
    /// reopened (which replays what was committed). Every later call reports why.
    /// As [`broken`](Self::broken), for a step that already reported `e` (a checkpoint
    /// that must not fail after a truncation or reorg).
    fn broken_by(&self, e: HypercoreError) -> HypercoreError {
        let mut broken = self.inner.broken.lock().unwrap_or_else(|p| p.into_inner());
        if broken.is_none() {
            let reason = format!("a write failed part-way, reopen the log: {e}");
            warn!(log = %self.inner.name, %reason, "log is unusable until reopened");
            *broken = Some(reason);
        }
        e
    }

    fn broken(&self, e: StorageError) -> HypercoreError {
        let reason = format!("a write failed part-way, reopen the log: {e}");
        warn!(log = %self.inner.name, %reason, "log is unusable until reopened");
        *self.inner.broken.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.error(e)
    }

    /// A write turn of the file budget, if the log has one (see [`FileBudget`], "Write
    /// turns"): taken by every operation that writes or syncs, after its log's lock and
    /// before its first write, and held until its last sync returned.
    async fn write_turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match (&self.inner.budget, &self.inner.path) {
            (Some(budget), Some(_)) => budget.write_turn().await,
            _ => None,
        }
    }

    /// Syncs `files` (in order) on the blocking pool when `wanted`.
    async fn sync(&self, files: &[Arc<DiskFile>], wanted: bool) -> Result<()> {
        if !wanted || self.inner.path.is_none() {
            return Ok(());
        }
        let files = files.to_vec();
        let joined = tokio::task::spawn_blocking(move || {
            for file in &files {
                file.sync_if_dirty()
                    .map_err(|e| (file.path().display().to_string(), e))?;
            }
            Ok::<_, (String, std::io::Error)>(())
        })
        .await;
        match joined {
            Ok(Ok(())) => Ok(()),
            Ok(Err((path, source))) => Err(self.io(format!("fdatasync {path}"), source)),
            Err(join) => Err(self.io("fdatasync".into(), std::io::Error::other(join.to_string()))),
        }
    }

    /// The open storage, unless the log was closed or broken.
    fn usable<'a>(&self, guard: &'a Option<Storage>) -> Result<&'a Storage> {
        match guard.as_ref() {
            Some(storage) if self.broken_reason().is_none() => Ok(storage),
            _ => Err(self.closed_error()),
        }
    }

    fn usable_mut<'a>(&self, guard: &'a mut Option<Storage>) -> Result<&'a mut Storage> {
        if self.broken_reason().is_some() {
            return Err(self.closed_error());
        }
        guard.as_mut().ok_or_else(|| self.closed_error())
    }

    fn closed_error(&self) -> HypercoreError {
        match self.broken_reason() {
            Some(reason) => HypercoreError::StorageCorrupted {
                log: self.inner.name.to_string(),
                path: self.where_(),
                reason,
            },
            None => HypercoreError::Closed {
                log: self.inner.name.to_string(),
            },
        }
    }

    fn where_(&self) -> PathBuf {
        self.inner
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(":memory:"))
    }

    fn broken_reason(&self) -> Option<String> {
        self.inner
            .broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The ed25519 identity point (a valid encoding that `verify_strict` never accepts).
fn identity_point() -> VerifyingKey {
    let mut bytes = [0u8; 32];
    bytes[0] = 1;
    match VerifyingKey::from_bytes(&bytes) {
        Ok(key) => key,
        Err(_) => unreachable!("the identity point is a valid encoding"),
    }
}

/// Why [`ManagedCore::verified_block`] gave no block.
enum BlockError {
    /// Reported as is.
    Fatal(HypercoreError),
    /// The data file's bytes for a block with a good leaf failed (reason): mark it
    /// missing.
    Damaged(String),
}

fn storage_error(name: &LogName, dir: &Path, e: StorageError) -> HypercoreError {
    match e {
        StorageError::Corrupted { file, reason } => HypercoreError::StorageCorrupted {
            log: name.to_string(),
            path: file,
            reason,
        },
        StorageError::KeyMismatch(reason) => HypercoreError::StorageCorrupted {
            log: name.to_string(),
            path: dir.to_owned(),
            reason,
        },
        StorageError::NotWritable => HypercoreError::Unauthorized {
            log: Some(name.to_string()),
            reason: format!("log {name} is read-only here"),
        },
        StorageError::Io {
            operation,
            file,
            source,
        } => HypercoreError::Io {
            log: name.to_string(),
            operation: format!("{operation} {}", file.display()),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden vector: JS `hypercore-crypto` 3.7.0 `discoveryKey(Buffer.from([0..32]))`, equal to
    /// Python's `hashlib.blake2b(b"hypercore", key=bytes(range(32)),
    /// digest_size=32)`, i.e. libsodium's keyed `crypto_generichash` that JS uses.
    #[test]
    fn discovery_key_matches_keyed_blake2b() {
        let pk: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(storage::hex(&discovery_key(&pk)), GOLDEN);
    }
    const GOLDEN: &str = "b74b6d642892501cca569ff03d3bd21d9db9768a3c12a5516a4a80a7bebad901";

    /// After the first verified read, sequential reads are served from known leaf
    /// hashes and data-file offsets (one read, one hash), and still return exactly what
    /// was written, also after a reopen (nothing known yet).
    #[tokio::test]
    async fn sequential_reads_use_known_leaves_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let name = LogName::parse("x").unwrap();
        let blocks: Vec<Vec<u8>> = (0..200u32)
            .map(|i| vec![i as u8; 10 + i as usize])
            .collect();
        let log = ManagedCore::open(dir.path(), name.clone(), OpenOptions::new())
            .await
            .unwrap();
        log.append_batch(&blocks).await.unwrap();
        log.close().await.unwrap();
        let log = ManagedCore::open(dir.path(), name, OpenOptions::new())
            .await
            .unwrap();
        let mut direct = 0;
        for seq in 0..200u64 {
            if matches!(log.inner.verified.get(0, 2 * seq), Some((_, Some(_)))) {
                direct += 1;
            }
            assert_eq!(log.get(seq).await.unwrap(), blocks[seq as usize]);
        }
        assert!(
            direct > 180,
            "only {direct} of 200 reads took the fast path"
        );
    }
}
