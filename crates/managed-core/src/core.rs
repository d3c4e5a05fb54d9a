//! [`ManagedCore`]: one signed log, its files, its keys and verified reads.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use futures_util::FutureExt;
use hypercore::{
    CacheOptionsBuilder, Hypercore, HypercoreBuilder, PartialKeypair, SigningKey, Storage,
    StorageTraits, Store, VerifyingKey,
};
use hypercore_schema::{Proof, RequestBlock, RequestUpgrade};
use nova_hypercore_serialization::{HypercoreError, LogName};
use random_access_storage::RandomAccessError;
use tokio::sync::RwLock;
use tracing::{debug, warn};

use crate::disk::{DiskFile, Durability};
use crate::verify::{Known, Verified, leaf_hash, subtree, subtree_root};

/// Largest subtree (in payload bytes) verified at once around a proven block.
const NEIGHBOURHOOD_BYTES: u64 = 256 * 1024;
/// ... and at most 2^6 = 64 blocks of it.
const NEIGHBOURHOOD_MAX_HEIGHT: u32 = 6;

/// Byte budget of the crate's merkle-node cache per log.
const NODE_CACHE_BYTES: u64 = 8 * 1024 * 1024;

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

#[derive(Debug, Clone, Default)]
enum KeySource {
    /// A new random key pair (new logs only).
    #[default]
    Generate,
    /// This signing key: creates a writable log, or must match an existing one.
    Secret(SigningKey),
    /// Only the public key: a read-only replica, or must match an existing log.
    Public(VerifyingKey),
}

/// How much of a log this replica has: the signed length and the blocks `0..` it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Blocks the signed tree covers.
    pub length: u64,
    /// Blocks `0..contiguous_length` are all stored locally.
    pub contiguous_length: u64,
}

/// A log's length figures, read together (see [`ManagedCore::info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreInfo {
    /// Number of blocks the signed tree covers.
    pub length: u64,
    /// Blocks `0..contiguous_length` are all stored locally.
    pub contiguous_length: u64,
    /// Bytes the signed tree covers.
    pub byte_length: u64,
    /// Fork id (0 unless the log was truncated).
    pub fork: u64,
}

/// How to open a log.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    durability: Durability,
    key: KeySource,
}

impl OpenOptions {
    /// Defaults: [`Durability::Flush`], a fresh random key pair for a new log.
    pub fn new() -> Self {
        Self::default()
    }

    /// What an acknowledged append survives (disk logs only).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Create the log with this key pair. For an existing log the key must match the one
    /// stored with it, or opening fails with `STORAGE_CORRUPTED`.
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.key = KeySource::Secret(key);
        self
    }

    /// Open a read-only log for this public key (a replica). For an existing log the key
    /// must match, or opening fails with `STORAGE_CORRUPTED`.
    pub fn public_key(mut self, key: VerifyingKey) -> Self {
        self.key = KeySource::Public(key);
        self
    }
}

#[derive(Debug)]
struct Inner {
    name: LogName,
    path: Option<PathBuf>,
    public_key: VerifyingKey,
    discovery_key: [u8; 32],
    writable: bool,
    durability: Durability,
    /// Data, tree and bitfield first, oplog last: the order in which they are synced.
    files: Vec<Arc<DiskFile>>,
    core: RwLock<Option<Hypercore>>,
    length: AtomicU64,
    byte_length: AtomicU64,
    /// Blocks `0..contiguous` known stored (never decreases: blocks are never cleared).
    contiguous: AtomicU64,
    /// Length and contiguous length, for tasks that wait for the log to grow (live
    /// replication, download progress).
    progress_tx: tokio::sync::watch::Sender<Progress>,
    closed: AtomicBool,
    /// Set when the storage engine panicked: the reason every later call reports.
    broken: std::sync::Mutex<Option<String>>,
    verified: Verified,
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
    /// opened), `STORAGE_CORRUPTED` (files do not verify, or the given key does not match
    /// the stored one), `IO_ERROR`.
    pub async fn open(dir: impl AsRef<Path>, name: LogName, options: OpenOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let inaccessible = |path: &Path, source| HypercoreError::StorageInaccessible {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| inaccessible(dir, e))?;
        let oplog_path = dir.join("oplog");
        let exists = std::fs::metadata(&oplog_path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if exists {
            match crate::oplog_repair::repair(&oplog_path) {
                Ok(Some(r)) => warn!(
                    log = %name,
                    entries = r.entries,
                    bytes = r.bytes,
                    "dropped oplog entries the storage engine cannot read back (blocks they recorded will be fetched again)"
                ),
                Ok(None) => {}
                Err(e) => return Err(inaccessible(&oplog_path, e)),
            }
        }
        let mut files = Vec::with_capacity(4);
        for file in ["data", "tree", "bitfield", "oplog"] {
            let path = dir.join(file);
            files.push(
                DiskFile::open(&path, options.durability).map_err(|e| inaccessible(&path, e))?,
            );
        }
        let by_store = files.clone();
        let storage = Storage::open(
            move |store: Store| {
                let file: Arc<dyn StorageTraits> = match store {
                    Store::Data => by_store[0].clone(),
                    Store::Tree => by_store[1].clone(),
                    Store::Bitfield => by_store[2].clone(),
                    Store::Oplog => by_store[3].clone(),
                };
                Box::pin(async move { Ok::<_, RandomAccessError>(file) })
            },
            false,
        )
        .await
        .map_err(|e| corrupted(&name, dir, format!("cannot open storage: {e}")))?;
        Self::build(storage, name, Some(dir.to_owned()), files, exists, options).await
    }

    /// A log held in memory only (tests, scratch logs). Gone when the last handle drops.
    pub async fn in_memory(name: LogName, options: OpenOptions) -> Result<Self> {
        let storage = Storage::new_memory()
            .await
            .map_err(|e| HypercoreError::Io {
                log: name.to_string(),
                operation: "create memory storage".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        Self::build(storage, name, None, Vec::new(), false, options).await
    }

    async fn build(
        storage: Storage,
        name: LogName,
        path: Option<PathBuf>,
        files: Vec<Arc<DiskFile>>,
        exists: bool,
        options: OpenOptions,
    ) -> Result<Self> {
        let where_ = path.clone().unwrap_or_else(|| PathBuf::from(":memory:"));
        // Merkle nodes read for proofs are cached (bounded, bytes): every verified read
        // walks a path of ~log2(length) nodes, mostly the same ones as the read before.
        let builder = HypercoreBuilder::new(storage)
            .node_cache_options(CacheOptionsBuilder::new().max_capacity(NODE_CACHE_BYTES));
        let builder = if exists {
            // The crate ignores a key pair for existing storage; we compare below instead.
            builder.open(true)
        } else {
            let key_pair = match &options.key {
                KeySource::Generate => {
                    let secret = hypercore::generate_signing_key();
                    PartialKeypair {
                        public: secret.verifying_key(),
                        secret: Some(secret),
                    }
                }
                KeySource::Secret(secret) => PartialKeypair {
                    public: secret.verifying_key(),
                    secret: Some(secret.clone()),
                },
                KeySource::Public(public) => PartialKeypair {
                    public: *public,
                    secret: None,
                },
            };
            builder.key_pair(key_pair)
        };
        let built = contained(builder.build())
            .await
            .map_err(|reason| corrupted(&name, &where_, reason))?;
        let core = built.map_err(|e| match e {
            hypercore::HypercoreError::IO { source, .. } => HypercoreError::Io {
                log: name.to_string(),
                operation: format!("open {}", where_.display()),
                source,
            },
            other => corrupted(&name, &where_, format!("cannot open log: {other}")),
        })?;
        let key_pair = core.key_pair();
        let expected = match &options.key {
            KeySource::Generate => None,
            KeySource::Secret(secret) => Some(secret.verifying_key()),
            KeySource::Public(public) => Some(*public),
        };
        if let Some(expected) = expected
            && expected != key_pair.public
        {
            return Err(corrupted(
                &name,
                &where_,
                format!(
                    "stored public key {} does not match the given key {}",
                    hex(key_pair.public.as_bytes()),
                    hex(expected.as_bytes())
                ),
            ));
        }
        if let (KeySource::Secret(secret), Some(stored)) = (&options.key, &key_pair.secret)
            && secret.to_bytes() != stored.to_bytes()
        {
            return Err(corrupted(
                &name,
                &where_,
                "stored secret key does not match the given key".into(),
            ));
        }
        let info = core.info();
        let public_key = key_pair.public;
        let managed = ManagedCore {
            inner: Arc::new(Inner {
                discovery_key: discovery_key(public_key.as_bytes()),
                name,
                path,
                public_key,
                writable: key_pair.secret.is_some(),
                durability: options.durability,
                files,
                core: RwLock::new(None),
                length: AtomicU64::new(info.length),
                contiguous: AtomicU64::new(0),
                progress_tx: tokio::sync::watch::Sender::new(Progress {
                    length: info.length,
                    contiguous_length: info.contiguous_length,
                }),
                byte_length: AtomicU64::new(info.byte_length),
                closed: AtomicBool::new(false),
                broken: std::sync::Mutex::new(None),
                verified: Verified::default(),
            }),
        };
        managed
            .check_signed_tree(&core, info.length, &where_)
            .await?;
        let contiguous_length = managed.contiguous(&core);
        managed.inner.progress_tx.send_replace(Progress {
            length: info.length,
            contiguous_length,
        });
        *managed.inner.core.write().await = Some(core);
        debug!(
            log = %managed.inner.name,
            path = %where_.display(),
            length = info.length,
            byte_length = info.byte_length,
            writable = managed.inner.writable,
            "log opened"
        );
        Ok(managed)
    }

    /// On open: the stored roots must carry a valid signature for the stored length.
    async fn check_signed_tree(&self, core: &Hypercore, length: u64, where_: &Path) -> Result<()> {
        if length == 0 {
            return Ok(());
        }
        let name = &self.inner.name;
        let proof = contained(core.create_proof(
            None,
            None,
            None,
            Some(RequestUpgrade { start: 0, length }),
        ))
        .await
        .map_err(|reason| corrupted(name, where_, reason))?
        .map_err(|e| corrupted(name, where_, format!("cannot read the tree: {e}")))?;
        let Some(upgrade) = proof.as_ref().and_then(|p| p.upgrade.as_ref()) else {
            return Err(corrupted(
                name,
                where_,
                "no signed tree for the stored length".into(),
            ));
        };
        let fork = proof.as_ref().map_or(0, |p| p.fork);
        let total = self
            .inner
            .verified
            .check_signed_roots(
                &self.inner.public_key,
                &upgrade.nodes,
                length,
                fork,
                &upgrade.signature,
            )
            .map_err(|reason| corrupted(name, where_, reason))?;
        if total != self.byte_length() {
            return Err(corrupted(
                name,
                where_,
                format!(
                    "signed roots cover {total} bytes, the log says {}",
                    self.byte_length()
                ),
            ));
        }
        Ok(())
    }

    /// The log's name.
    pub fn name(&self) -> &LogName {
        &self.inner.name
    }

    /// The directory holding the log's files (`None` for memory logs).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The ed25519 public key that signs the log.
    pub fn public_key(&self) -> [u8; 32] {
        self.inner.public_key.to_bytes()
    }

    /// The public key as an ed25519 verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.inner.public_key
    }

    /// The discovery key (see [`discovery_key`]).
    pub fn discovery_key(&self) -> [u8; 32] {
        self.inner.discovery_key
    }

    /// Number of blocks.
    pub fn length(&self) -> u64 {
        self.inner.length.load(Ordering::Acquire)
    }

    /// Sum of the blocks' sizes in bytes.
    pub fn byte_length(&self) -> u64 {
        self.inner.byte_length.load(Ordering::Acquire)
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
    pub async fn append_batch<B: AsRef<[u8]>>(&self, batch: &[B]) -> Result<Range<u64>> {
        if !self.inner.writable {
            return Err(HypercoreError::Unauthorized {
                log: Some(self.inner.name.to_string()),
                reason: format!(
                    "log {} is read-only here: only the holder of its secret key can append",
                    self.inner.name
                ),
            });
        }
        let guard = self.inner.core.write().await;
        let core = self.usable(&guard)?;
        let start = core.info().length;
        let outcome = contained(core.append_batch(batch))
            .await
            .map_err(|reason| self.mark_broken(reason))?
            .map_err(|e| self.core_error(e, "append"))?;
        self.sync(self.inner.durability == Durability::FsyncPerBatch)
            .await?;
        self.inner.length.store(outcome.length, Ordering::Release);
        let contiguous_length = self.contiguous(core);
        self.inner.progress_tx.send_replace(Progress {
            length: outcome.length,
            contiguous_length,
        });
        self.inner
            .byte_length
            .store(outcome.byte_length, Ordering::Release);
        drop(guard);
        Ok(start..outcome.length)
    }

    /// Reads block `seq`, verified against the signed tree.
    ///
    /// Errors: `OUT_OF_RANGE` (with the current length) for `seq >= length`,
    /// `SIGNATURE_INVALID` (log and seq) if the stored block does not verify; such bytes
    /// are never returned.
    pub async fn get(&self, seq: u64) -> Result<Vec<u8>> {
        let guard = self.inner.core.read().await;
        let core = self.usable(&guard)?;
        let length = core.info().length;
        self.verified_block(core, seq, length).await
    }

    /// Reads blocks `[start, end)`, each verified like [`get`](Self::get), in order.
    /// A reversed range or one reaching past the length is `OUT_OF_RANGE`.
    pub async fn get_range(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let guard = self.inner.core.read().await;
        let core = self.usable(&guard)?;
        let length = core.info().length;
        if start > end || end > length {
            return Err(HypercoreError::RangeOutOfBounds {
                log: self.inner.name.to_string(),
                start,
                end,
                length,
            });
        }
        let capacity = usize::try_from(end - start).unwrap_or(0).min(1 << 16);
        let mut out = Vec::with_capacity(capacity);
        for seq in start..end {
            out.push(self.verified_block(core, seq, length).await?);
        }
        Ok(out)
    }

    /// Checks block `seq` against the merkle tree signed by the log's public key.
    /// `Ok(false)` means the stored block (or the tree above it) has been altered.
    pub async fn verify_signature(&self, seq: u64) -> Result<bool> {
        match self.get(seq).await {
            Ok(_) => Ok(true),
            Err(HypercoreError::SignatureInvalid { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Syncs every file to disk, then closes the log. Later calls on any handle of this
    /// log fail with a "closed" error (`STORAGE_INACCESSIBLE`). Closing twice is a no-op.
    pub async fn close(&self) -> Result<()> {
        let mut guard = self.inner.core.write().await;
        let Some(core) = guard.take() else {
            return Ok(());
        };
        self.inner.closed.store(true, Ordering::Release);
        let result = self.sync(true).await;
        drop(core);
        debug!(log = %self.inner.name, length = self.length(), "log closed");
        result
    }

    /// Blocks `0..n` all stored: the storage engine's hint, extended by checking the
    /// bitfield from there. The hint alone can stay behind forever (it only advances
    /// when an update touches it, e.g. not after a crash left bits set past it).
    fn contiguous(&self, core: &Hypercore) -> u64 {
        let info = core.info();
        let mut c = self
            .inner
            .contiguous
            .load(Ordering::Acquire)
            .max(info.contiguous_length)
            .min(info.length);
        while c < info.length && core.has(c) {
            c += 1;
        }
        self.inner.contiguous.fetch_max(c, Ordering::AcqRel);
        c
    }

    /// A receiver that sees [`Progress`] whenever the log grows (appends here, or an
    /// upgrade or block applied from a peer): lets a replication session push news and a
    /// reader follow a download without polling.
    pub fn watch_progress(&self) -> tokio::sync::watch::Receiver<Progress> {
        self.inner.progress_tx.subscribe()
    }

    /// Whether block `seq` is stored locally.
    pub async fn has_block(&self, seq: u64) -> Result<bool> {
        let guard = self.inner.core.read().await;
        Ok(self.usable(&guard)?.has(seq))
    }

    /// Length, contiguous length (blocks 0.. all stored) and fork, read together.
    pub async fn info(&self) -> Result<CoreInfo> {
        let guard = self.inner.core.read().await;
        let core = self.usable(&guard)?;
        let info = core.info();
        Ok(CoreInfo {
            length: info.length,
            contiguous_length: self.contiguous(core),
            byte_length: info.byte_length,
            fork: info.fork,
        })
    }

    /// How many merkle nodes a proof for block `seq` must carry for this replica: the
    /// `nodes` field of a block request. Only meaningful for `seq < length`.
    pub async fn missing_nodes(&self, seq: u64) -> Result<u64> {
        let guard = self.inner.core.read().await;
        let core = self.usable(&guard)?;
        contained(core.missing_nodes(seq))
            .await
            .map_err(|reason| self.mark_broken(reason))?
            .map_err(|e| self.core_error(e, "missing_nodes"))
    }

    /// Serves a peer's request: a proof for `block` and/or `upgrade`, or `None` when this
    /// replica cannot serve it (block not stored or beyond the length, upgrade beyond
    /// the length). Never an error for a bad request: a peer's request is just data.
    pub async fn serve_proof(
        &self,
        block: Option<RequestBlock>,
        upgrade: Option<RequestUpgrade>,
    ) -> Result<Option<Proof>> {
        let guard = self.inner.core.read().await;
        let core = self.usable(&guard)?;
        let info = core.info();
        if let Some(b) = &block {
            // The crate errors (or worse) on blocks it does not hold: stay off that path.
            if b.index >= info.length || !core.has(b.index) {
                return Ok(None);
            }
        }
        if let Some(u) = &upgrade
            && (u.start > info.length || u.length == 0 || u.start + u.length > info.length)
        {
            return Ok(None);
        }
        if block.is_none() && upgrade.is_none() {
            return Ok(None);
        }
        match contained(core.create_proof(block, None, None, upgrade)).await {
            Ok(Ok(proof)) => Ok(proof),
            Ok(Err(e)) => {
                debug!(log = %self.inner.name, error = %e, "cannot serve proof");
                Ok(None)
            }
            Err(reason) => Err(self.mark_broken(reason)),
        }
    }

    /// Verifies a proof received from a peer against this log's public key and stores
    /// what it proves. `Ok(true)`: applied (length and/or a block added). `Ok(false)`:
    /// stale or not applicable now (e.g. an upgrade that no longer fits); nothing
    /// changed. `SIGNATURE_INVALID`: the proof does not verify (forged, tampered or
    /// not signed by this log's key); nothing changed.
    pub async fn apply_proof(&self, proof: Proof) -> Result<bool> {
        let seq = proof
            .block
            .as_ref()
            .map(|b| b.index)
            .or_else(|| proof.upgrade.as_ref().map(|u| u.start))
            .unwrap_or(0);
        let guard = self.inner.core.write().await;
        let core = self.usable(&guard)?;
        let applied = contained(core.verify_and_apply_proof(proof))
            .await
            .map_err(|reason| self.mark_broken(reason))?;
        let applied = match applied {
            Ok(applied) => applied,
            Err(hypercore::HypercoreError::InvalidSignature { context })
            | Err(hypercore::HypercoreError::InvalidChecksum { context }) => {
                return Err(self.invalid(seq, format!("proof from a peer rejected: {context}")));
            }
            Err(hypercore::HypercoreError::IO { source, .. }) => {
                return Err(self.io(format!("apply proof at seq {seq}"), source));
            }
            Err(e) => {
                debug!(log = %self.inner.name, seq, error = %e, "proof not applicable now");
                false
            }
        };
        let info = core.info();
        self.sync(self.inner.durability == Durability::FsyncPerBatch)
            .await?;
        self.inner.length.store(info.length, Ordering::Release);
        self.inner
            .byte_length
            .store(info.byte_length, Ordering::Release);
        let contiguous_length = self.contiguous(core);
        drop(guard);
        let now = Progress {
            length: info.length,
            contiguous_length,
        };
        self.inner.progress_tx.send_if_modified(|p| {
            let changed = *p != now;
            *p = now;
            changed
        });
        Ok(applied)
    }

    async fn verified_block(&self, core: &Hypercore, seq: u64, length: u64) -> Result<Vec<u8>> {
        if seq >= length {
            return Err(HypercoreError::OutOfRange {
                log: self.inner.name.to_string(),
                seq,
                length,
            });
        }
        if !core.has(seq) {
            return Err(self.invalid(seq, "the block is not stored locally".into()));
        }
        // Fast path: the block's leaf hash (and usually its place in the data file) is
        // already known to be good: one read and one hash.
        let fork = core.info().fork;
        if let Some((leaf, offset)) = self.inner.verified.leaf(fork, seq) {
            let value = match (offset, self.inner.files.first()) {
                (Some(offset), Some(data)) => {
                    data.read_exact_at(offset, leaf.len)
                        .map_err(|e| match e.kind() {
                            std::io::ErrorKind::UnexpectedEof => self.invalid(
                                seq,
                                format!(
                                    "the data file ends before block bytes {offset}+{}",
                                    leaf.len
                                ),
                            ),
                            _ => self.io(format!("read seq {seq}"), e),
                        })?
                }
                _ => self.read_raw(core, seq).await?,
            };
            if value.len() as u64 == leaf.len && leaf_hash(&value) == leaf.hash {
                return Ok(value);
            }
            return Err(self.invalid(seq, "block does not match its verified leaf hash".into()));
        }
        // Slow path: a proof up to a known node or the signed roots.
        let proof = contained(core.create_proof(
            Some(RequestBlock {
                index: seq,
                nodes: 0,
            }),
            None,
            None,
            Some(RequestUpgrade { start: 0, length }),
        ))
        .await
        .map_err(|reason| self.mark_broken(reason))?;
        let proof = match proof {
            Ok(Some(proof)) => proof,
            Ok(None) => {
                return Err(self.invalid(seq, "no proof could be built for the block".into()));
            }
            Err(hypercore::HypercoreError::IO { source, .. }) => {
                return Err(self.io(format!("read seq {seq}"), source));
            }
            Err(e) => return Err(self.invalid(seq, format!("cannot read the tree: {e}"))),
        };
        let value = self
            .inner
            .verified
            .check_proof(&self.inner.public_key, proof, seq, length)
            .map_err(|reason| self.invalid(seq, reason))?;
        self.verify_neighbourhood(core, seq, length, fork).await;
        Ok(value)
    }

    /// After a proof verified block `seq`, checks the blocks around it in one go: the
    /// largest aligned subtree containing `seq` that lies inside the log, whose root is
    /// now known to be good and which holds at most [`NEIGHBOURHOOD_BYTES`]. Reading and
    /// hashing those blocks is far cheaper than a proof each, and sequential readers
    /// (the common case) then take the fast path. A mismatch only means the blocks stay
    /// unknown: each is then checked, and reported, on its own.
    async fn verify_neighbourhood(&self, core: &Hypercore, seq: u64, length: u64, fork: u64) {
        let verified = &self.inner.verified;
        let mut best = None;
        let mut index = 2 * seq;
        for _ in 0..NEIGHBOURHOOD_MAX_HEIGHT {
            index = flat_tree::parent(index);
            let (_, last) = flat_tree::spans(index);
            if last / 2 >= length {
                break;
            }
            match verified.get(fork, index) {
                Some(root) if root.len <= NEIGHBOURHOOD_BYTES => best = Some((index, root)),
                _ => break,
            }
        }
        let Some((root_index, root)) = best else {
            return;
        };
        let (first, last) = flat_tree::spans(root_index);
        // Cheapest: the leaf nodes as the tree file holds them, in one read (the file
        // may lag behind the oplog; then the subtree does not match and we read blocks).
        let mut level = self.tree_file_leaves(first, last).unwrap_or_default();
        if subtree_root(&level).map(|(_, k)| k) != Some(root) {
            level.clear();
            for block in first / 2..=last / 2 {
                let leaf = match verified.get(fork, 2 * block) {
                    Some(known) => known,
                    None => match self.read_raw(core, block).await {
                        Ok(value) => Known {
                            len: value.len() as u64,
                            hash: leaf_hash(&value),
                        },
                        Err(_) => return,
                    },
                };
                level.push((2 * block, leaf));
            }
        }
        let mut offsets = Vec::new();
        if let Some(mut at) = verified.offset(fork, root_index) {
            for (index, leaf) in &level {
                offsets.push((*index, at));
                at += leaf.len;
            }
        }
        let (top, all) = subtree(&level);
        if top.map(|(_, k)| k) == Some(root) {
            verified.remember_subtree(fork, all, offsets);
        }
    }

    /// Leaf nodes `first..=last` (tree indices) as stored in the tree file: 8 bytes of
    /// little-endian size, then the 32-byte hash, at `index * 40`. Unverified.
    fn tree_file_leaves(&self, first: u64, last: u64) -> Option<Vec<(u64, Known)>> {
        let tree = self.inner.files.get(1)?;
        let bytes = tree
            .read_exact_at(first * 40, (last - first + 1) * 40)
            .ok()?;
        let mut leaves = Vec::with_capacity(((last - first) / 2 + 1) as usize);
        for (i, node) in bytes.chunks_exact(40).enumerate().step_by(2) {
            let (len, hash) = node.split_first_chunk::<8>()?;
            leaves.push((
                first + i as u64,
                Known {
                    len: u64::from_le_bytes(*len),
                    hash: hash.try_into().ok()?,
                },
            ));
        }
        Some(leaves)
    }

    /// The stored bytes of block `seq`, unverified.
    async fn read_raw(&self, core: &Hypercore, seq: u64) -> Result<Vec<u8>> {
        match contained(core.get(seq))
            .await
            .map_err(|reason| self.mark_broken(reason))?
        {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(self.invalid(seq, "the block is not stored locally".into())),
            Err(hypercore::HypercoreError::IO { source, .. }) => {
                Err(self.io(format!("read seq {seq}"), source))
            }
            Err(e) => Err(self.invalid(seq, format!("cannot locate the block: {e}"))),
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

    /// Syncs dirtied files (data, tree, bitfield, then oplog) on the blocking pool.
    async fn sync(&self, wanted: bool) -> Result<()> {
        if !wanted || self.inner.files.is_empty() {
            return Ok(());
        }
        let files = self.inner.files.clone();
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
            Ok(Err((path, source))) => Err(HypercoreError::Io {
                log: self.inner.name.to_string(),
                operation: format!("fdatasync {path}"),
                source,
            }),
            Err(join) => Err(HypercoreError::Io {
                log: self.inner.name.to_string(),
                operation: "fdatasync".into(),
                source: std::io::Error::other(join.to_string()),
            }),
        }
    }

    /// The open core, unless the log was closed or broken by an engine panic.
    fn usable<'a>(&self, guard: &'a Option<Hypercore>) -> Result<&'a Hypercore> {
        match guard.as_ref() {
            Some(core) if self.broken_reason().is_none() => Ok(core),
            _ => Err(self.closed_error()),
        }
    }

    fn closed_error(&self) -> HypercoreError {
        match self.broken_reason() {
            Some(reason) => corrupted(&self.inner.name, &self.where_(), reason),
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

    /// After a panic inside the storage engine the log is unusable: take the core out so
    /// every later call reports `STORAGE_CORRUPTED` instead of touching a poisoned lock.
    fn mark_broken(&self, reason: String) -> HypercoreError {
        warn!(log = %self.inner.name, %reason, "log is unusable");
        *self.inner.broken.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
        if let Ok(mut guard) = self.inner.core.try_write() {
            guard.take();
        }
        corrupted(&self.inner.name, &self.where_(), reason)
    }

    fn core_error(&self, e: hypercore::HypercoreError, operation: &str) -> HypercoreError {
        match e {
            hypercore::HypercoreError::IO { source, .. } => HypercoreError::Io {
                log: self.inner.name.to_string(),
                operation: operation.to_owned(),
                source,
            },
            hypercore::HypercoreError::NotWritable => HypercoreError::Unauthorized {
                log: Some(self.inner.name.to_string()),
                reason: format!("log {} is read-only here", self.inner.name),
            },
            other => HypercoreError::Io {
                log: self.inner.name.to_string(),
                operation: operation.to_owned(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

/// Runs a call into the `hypercore` crate, turning a panic inside it into an error.
///
/// The crate panics on some corrupted files (arithmetic overflow on garbage tree nodes,
/// indexing past a vector). A panic may also have poisoned the crate's internal lock, so
/// the caller must treat the log as unusable afterwards.
async fn contained<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            format!("the storage engine panicked: {what}")
        })
}

fn corrupted(name: &LogName, path: &Path, reason: String) -> HypercoreError {
    HypercoreError::StorageCorrupted {
        log: name.to_string(),
        path: path.to_owned(),
        reason,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        assert_eq!(hex(&discovery_key(&pk)), GOLDEN);
    }
    const GOLDEN: &str = "b74b6d642892501cca569ff03d3bd21d9db9768a3c12a5516a4a80a7bebad901";
}
#[cfg(test)]
mod fast_path_tests {
    use super::*;

    /// After the first proof, sequential reads are served from known leaf hashes and
    /// data-file offsets (one read, one hash), and still return exactly what was written.
    #[tokio::test]
    async fn sequential_reads_use_known_leaves_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let name = LogName::parse("x").unwrap();
        let log = ManagedCore::open(dir.path(), name, OpenOptions::new())
            .await
            .unwrap();
        let blocks: Vec<Vec<u8>> = (0..200u32)
            .map(|i| vec![i as u8; 10 + i as usize])
            .collect();
        log.append_batch(&blocks).await.unwrap();
        let mut direct = 0;
        for seq in 0..200u64 {
            if matches!(log.inner.verified.leaf(0, seq), Some((_, Some(_)))) {
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
