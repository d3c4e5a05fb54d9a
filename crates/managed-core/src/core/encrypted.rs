//! Block encryption in the core (JS hypercore 10.31 `encryptionKey`, 11 `encryption`):
//! a log opened with an [`EncryptionKey`] ([`super::OpenOptions::encryption_key`])
//! stores each block as `padding[8] ‖ ciphertext` ([`crate::encryption`]), written at the
//! log's fork and its index. Everything below the handle sees only those stored bytes:
//! the data file, the tree's leaf hashes and sizes, the signatures, proofs on the wire,
//! so the files are what JS writes and a peer without the key (a seeder) stores,
//! verifies and serves them as any blocks. Reads decrypt after verifying; the byte
//! length and byte offsets leave the padding out, as JS counts them.
//!
//! The block key depends on how the core is keyed: a legacy (compat) core derives it
//! from its public key, a manifest core with the manifest-keyed formula
//! ([`KeyDerivation`]). A replica opened by core key does not know which until its
//! manifest arrives, so the keys are derived when first used and again when the
//! keying is learnt.

use std::sync::{Arc, Mutex};

use nova_hypercore_serialization::HypercoreError;

use super::{ManagedCore, Result};
use crate::encryption::{BlockEncryption, EncryptionKey, KeyDerivation, PADDING};

/// The key a core was opened with and the block keys derived from it.
#[derive(Debug)]
pub(super) struct Encryption {
    key: EncryptionKey,
    derived: Mutex<Option<(KeyDerivation, Arc<BlockEncryption>)>>,
}

impl Encryption {
    pub(super) fn new(key: EncryptionKey) -> Self {
        Encryption {
            key,
            derived: Mutex::new(None),
        }
    }

    /// The block keys of the core `core_key`, keyed as `legacy` tells (`None`: not
    /// known yet, taken as compat; no block can be stored or read before it is known).
    fn keys(&self, core_key: &[u8; 32], legacy: Option<bool>) -> Result<Arc<BlockEncryption>> {
        let derivation = match legacy {
            Some(false) => KeyDerivation::Manifest,
            Some(true) | None => KeyDerivation::Compat,
        };
        let mut derived = self.derived.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((d, keys)) = derived.as_ref()
            && *d == derivation
        {
            return Ok(keys.clone());
        }
        let keys = Arc::new(BlockEncryption::new(
            self.key.as_bytes(),
            core_key,
            derivation,
        )?);
        *derived = Some((derivation, keys.clone()));
        Ok(keys)
    }
}

impl ManagedCore {
    /// Whether this log was opened with an encryption key: it writes encrypted blocks
    /// and its reads decrypt them. A log of encrypted blocks opened without the key
    /// (a seeder) is not: its reads return the stored bytes.
    pub fn is_encrypted(&self) -> bool {
        self.inner.encryption.is_some()
    }

    /// Bytes each stored block holds beyond its value: 8 for an encrypted log (the
    /// blinded fork), else 0. What a reader's byte offsets leave out, and the padding
    /// its seek requests carry (wire `Request.seek.padding`).
    pub fn padding(&self) -> u64 {
        if self.is_encrypted() {
            PADDING as u64
        } else {
            0
        }
    }

    /// The block keys, if this log is encrypted.
    fn cipher(&self) -> Result<Option<Arc<BlockEncryption>>> {
        let Some(encryption) = &self.inner.encryption else {
            return Ok(None);
        };
        // Only the keying is needed: no copy of the manifest per block.
        let legacy = self
            .inner
            .manifest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .legacy;
        encryption
            .keys(&self.inner.key, legacy)
            .map(Some)
            .map_err(|e| self.with_log(e))
    }

    /// The stored blocks of `batch` appended from block `start` at fork `fork`:
    /// `None` when the log is not encrypted (the values are stored as they are).
    pub(super) fn encrypt_batch<B: AsRef<[u8]>>(
        &self,
        start: u64,
        fork: u64,
        batch: &[B],
    ) -> Result<Option<Vec<Vec<u8>>>> {
        let Some(keys) = self.cipher()? else {
            return Ok(None);
        };
        let mut stored = Vec::with_capacity(batch.len());
        for (i, value) in batch.iter().enumerate() {
            let index = start
                .checked_add(i as u64)
                .ok_or_else(|| self.with_log(overflow(start)))?;
            stored.push(
                keys.encrypt(index, fork, value.as_ref())
                    .map_err(|e| self.with_log(e))?,
            );
        }
        Ok(Some(stored))
    }

    /// The value of block `seq` from its verified stored bytes: decrypted for an
    /// encrypted log, else as stored.
    ///
    /// Errors: `DESERIALIZATION_FAILED` (log and seq) for a stored block shorter than
    /// the padding, which a writer with the key never makes.
    pub(super) fn decrypted(&self, seq: u64, stored: Vec<u8>) -> Result<Vec<u8>> {
        match self.cipher()? {
            Some(keys) => keys.decrypt(seq, &stored).map_err(|e| self.with_log(e)),
            None => Ok(stored),
        }
    }

    /// `e` with this log's name as its context.
    fn with_log(&self, e: HypercoreError) -> HypercoreError {
        match e {
            HypercoreError::DeserializationFailed {
                log: None,
                seq,
                reason,
            } => HypercoreError::DeserializationFailed {
                log: Some(self.inner.name.to_string()),
                seq,
                reason,
            },
            other => other,
        }
    }
}

fn overflow(start: u64) -> HypercoreError {
    HypercoreError::decode(nova_hypercore_serialization::DecodeError::Schema {
        path: "block".into(),
        message: format!("block indexes from {start} overflow"),
    })
}
