//! Block encryption as JS hypercore does it: hypercore 10.31's `encryptionKey`
//! (`lib/block-encryption.js`) and hypercore 11's `encryption: { key }`
//! (`lib/default-encryption.js`), which store the same bytes (docs/encryption-research.md).
//!
//! Owns: [`BlockEncryption`], i.e. the block key and the blinding key derived from an
//! encryption key and a core key ([`KeyDerivation`]: compat core or manifest-keyed core),
//! or given directly ([`BlockEncryption::from_block_key`], JS `isBlockKey`), and the
//! transformation of one block: [`BlockEncryption::encrypt`] turns a plaintext into the
//! stored block `padding[8] ‖ ciphertext` and [`BlockEncryption::decrypt`] turns it back.
//! The padding is the writer's fork (u64 little-endian) XOR the first 8 bytes of
//! XSalsa20(blinding key, nonce = u64le(index) ‖ 0¹⁶); the ciphertext is the plaintext
//! XOR XSalsa20(block key, nonce = u64le(index) ‖ padding ‖ 0⁸). There is no MAC: a wrong
//! key decrypts to garbage, and only the tree (over the stored bytes) authenticates.
//!
//! Must not: touch storage, the tree, the wire or a log's state. It holds no key other
//! than the two derived ones (the encryption key is only read while deriving), never logs
//! or prints them (its `Debug` hides them), and wipes them when dropped.
//!
//! Used by: the core ([`crate::OpenOptions::encryption_key`]: a log opened with an
//! [`EncryptionKey`] stores the padded ciphertext, and its tree hashes it; reads
//! decrypt after verifying), and through it the manager and the CLI
//! (docs/encryption-research.md, "Our implementation").

use blake2::digest::Mac;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Blake2bMac, Digest as _};
use nova_hypercore_serialization::{DecodeError, HypercoreError, Result};
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit as _, StreamCipher as _};
use zeroize::Zeroize as _;

use crate::block_store::MAX_BLOCK_BYTES;
use crate::core::CoreFormat;

/// Bytes an encrypted block is longer than its plaintext: the blinded fork in front of
/// the ciphertext (JS `BlockEncryption.padding`, `DefaultEncryption.PADDING`).
pub const PADDING: usize = 8;

/// `caps.BLOCK_ENCRYPTION` of JS hypercore 10.31 (`DEFAULT_ENCRYPTION` in hypercore 11):
/// `crypto.namespace('hypercore', 6)[5]` = blake2b-256(blake2b-256("hypercore") ‖ 5).
/// Prefixes the core key and the encryption key in a manifest-keyed core's block key.
pub const BLOCK_ENCRYPTION_NAMESPACE: [u8; 32] = [
    0x9A, 0xED, 0xB6, 0xF1, 0xDE, 0xA8, 0x48, 0x7C, 0xC1, 0xE1, 0x69, 0x8F, 0x97, 0xEB, 0x2F, 0x06,
    0x3F, 0x6D, 0xB4, 0xC6, 0x49, 0x69, 0x56, 0x22, 0xE7, 0xB6, 0x75, 0xE2, 0xCE, 0xAF, 0xA6, 0xE9,
];

/// Shortest encryption key accepted. JS takes any buffer; everybody uses 32 bytes, and a
/// shorter key than this is a mistake we refuse rather than a key we weaken.
pub const MIN_ENCRYPTION_KEY_BYTES: usize = 16;
/// Longest encryption key accepted (JS has no limit; it only needs one to bound input).
pub const MAX_ENCRYPTION_KEY_BYTES: usize = 64;
/// Length of a block key given directly ([`BlockEncryption::from_block_key`]): an
/// XSalsa20 key.
pub const BLOCK_KEY_BYTES: usize = 32;
/// Largest stored block [`BlockEncryption::encrypt`] makes and
/// [`BlockEncryption::decrypt`] takes: the largest block the block store reads back
/// (64 MiB). A plaintext may therefore be at most this minus [`PADDING`] bytes.
pub const MAX_STORED_BYTES: usize = MAX_BLOCK_BYTES as usize;

/// A log's encryption key (JS `encryptionKey`, hypercore 11 `encryption: { key }`): the
/// secret shared by everyone who may read the log. Checked once when made (16 to 64
/// bytes; 32 is usual), wiped when dropped, never shown by `Debug`. It is not stored
/// with the log: it must be given at every open ([`crate::OpenOptions::encryption_key`]).
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey(Vec<u8>);

impl EncryptionKey {
    /// Takes `bytes` as the key.
    ///
    /// Errors: `DESERIALIZATION_FAILED` when it is shorter than
    /// [`MIN_ENCRYPTION_KEY_BYTES`] or longer than [`MAX_ENCRYPTION_KEY_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<Self> {
        let key = EncryptionKey(bytes);
        let len = key.0.len();
        if !(MIN_ENCRYPTION_KEY_BYTES..=MAX_ENCRYPTION_KEY_BYTES).contains(&len) {
            return Err(invalid(
                "encryption_key",
                format!(
                    "an encryption key of {len} bytes (between {MIN_ENCRYPTION_KEY_BYTES} and {MAX_ENCRYPTION_KEY_BYTES} are accepted, 32 is usual)"
                ),
            ));
        }
        Ok(key)
    }

    /// The key written as hex digits (64 for a 32-byte key), as the CLI and JS tools
    /// print keys.
    ///
    /// Errors: `DESERIALIZATION_FAILED` for an odd count or a character that is not a
    /// hex digit (the message never repeats the key), or a length [`new`](Self::new)
    /// refuses.
    pub fn from_hex(hex: &str) -> Result<Self> {
        let hex = hex.trim();
        if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "encryption_key",
                format!(
                    "an encryption key must be written as hex digits, two per byte (got {} characters)",
                    hex.len()
                ),
            ));
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| invalid("encryption_key", "not hex digits".into()))?;
        Self::new(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKey({} bytes)", self.0.len())
    }
}

impl Drop for EncryptionKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Which formula turns the encryption key into the block key. JS chooses by
/// `core.compat`: whether the core key is the single signer's public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDerivation {
    /// A compat core (hypercore 10 default, our [`CoreFormat::Legacy`]): block key =
    /// BLAKE2b-256 keyed with the core key over the encryption key.
    Compat,
    /// A manifest-keyed core (the core key is a manifest hash: hypercore 11 default, our
    /// [`CoreFormat::V1`], or a hypercore 10 core made with `compat: false`): block key =
    /// BLAKE2b-256(BLOCK_ENCRYPTION ‖ core key ‖ encryption key).
    Manifest,
}

impl From<CoreFormat> for KeyDerivation {
    fn from(format: CoreFormat) -> Self {
        match format {
            CoreFormat::Legacy => KeyDerivation::Compat,
            CoreFormat::V1 => KeyDerivation::Manifest,
        }
    }
}

/// The keys that encrypt and decrypt one core's blocks (JS `BlockEncryption` /
/// `DefaultEncryption`). Cheap to clone; both keys are wiped when a value is dropped.
#[derive(Clone)]
pub struct BlockEncryption {
    block_key: [u8; 32],
    blinding_key: [u8; 32],
}

impl std::fmt::Debug for BlockEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockEncryption").finish_non_exhaustive()
    }
}

impl Drop for BlockEncryption {
    fn drop(&mut self) {
        self.block_key.zeroize();
        self.blinding_key.zeroize();
    }
}

impl BlockEncryption {
    /// Derives the keys of the core `core_key` from `encryption_key`, with the formula
    /// the core's keying selects (see [`KeyDerivation`]; a [`CoreFormat`] converts).
    ///
    /// Errors: `DESERIALIZATION_FAILED` when `encryption_key` is shorter than
    /// [`MIN_ENCRYPTION_KEY_BYTES`] or longer than [`MAX_ENCRYPTION_KEY_BYTES`].
    pub fn new(
        encryption_key: &[u8],
        core_key: &[u8; 32],
        derivation: KeyDerivation,
    ) -> Result<Self> {
        let len = encryption_key.len();
        if !(MIN_ENCRYPTION_KEY_BYTES..=MAX_ENCRYPTION_KEY_BYTES).contains(&len) {
            return Err(invalid(
                "encryption_key",
                format!(
                    "an encryption key of {len} bytes (between {MIN_ENCRYPTION_KEY_BYTES} and {MAX_ENCRYPTION_KEY_BYTES} are accepted, 32 is usual)"
                ),
            ));
        }
        let mut block_key: [u8; 32] = match derivation {
            KeyDerivation::Compat => {
                // A 32-byte BLAKE2b key is always accepted (at most 64 are).
                let mut mac = <Blake2bMac<U32> as Mac>::new_from_slice(core_key)
                    .map_err(|_| invalid("core_key", "not usable as a BLAKE2b key".into()))?;
                Mac::update(&mut mac, encryption_key);
                mac.finalize().into_bytes().into()
            }
            KeyDerivation::Manifest => {
                let mut hash = Blake2b::<U32>::new();
                hash.update(BLOCK_ENCRYPTION_NAMESPACE);
                hash.update(core_key);
                hash.update(encryption_key);
                hash.finalize().into()
            }
        };
        let keys = Self::with_block_key(block_key);
        block_key.zeroize();
        Ok(keys)
    }

    /// Takes `block_key` as the block key itself (JS `isBlockKey` in 10.31, `block: true`
    /// in 11): no derivation from a core key; the blinding key is derived as usual.
    ///
    /// Errors: `DESERIALIZATION_FAILED` when `block_key` is not [`BLOCK_KEY_BYTES`] long.
    pub fn from_block_key(block_key: &[u8]) -> Result<Self> {
        let Ok(mut key) = <[u8; BLOCK_KEY_BYTES]>::try_from(block_key) else {
            return Err(invalid(
                "block_key",
                format!(
                    "a block key of {} bytes ({BLOCK_KEY_BYTES} expected)",
                    block_key.len()
                ),
            ));
        };
        let keys = Self::with_block_key(key);
        key.zeroize();
        Ok(keys)
    }

    /// The keys for `block_key`: the blinding key is BLAKE2b-256(block key).
    fn with_block_key(block_key: [u8; 32]) -> Self {
        let blinding_key: [u8; 32] = Blake2b::<U32>::digest(block_key).into();
        BlockEncryption {
            block_key,
            blinding_key,
        }
    }

    /// The XSalsa20 key of the block bodies (JS `encryption.blockKey`).
    pub fn block_key(&self) -> &[u8; 32] {
        &self.block_key
    }

    /// The XSalsa20 key that blinds the fork in the padding (JS `encryption.blindingKey`).
    pub fn blinding_key(&self) -> &[u8; 32] {
        &self.blinding_key
    }

    /// The stored block of `plaintext` written as block `index` at fork `fork`:
    /// `padding ‖ ciphertext`, [`PADDING`] bytes longer than `plaintext`. The fork must
    /// be the core's fork when the block is written (JS `tree.fork`), not 0.
    ///
    /// Errors: `DESERIALIZATION_FAILED` (a value that is never written) when the stored
    /// block would exceed [`MAX_STORED_BYTES`].
    pub fn encrypt(&self, index: u64, fork: u64, plaintext: &[u8]) -> Result<Vec<u8>> {
        let stored_len = plaintext.len().saturating_add(PADDING);
        if stored_len > MAX_STORED_BYTES {
            return Err(too_large(index, stored_len));
        }
        let mut padding = fork.to_le_bytes();
        xor_keystream(
            &self.blinding_key,
            &blinding_nonce(index),
            &mut padding,
            index,
        )?;
        let mut stored = Vec::with_capacity(stored_len);
        stored.extend_from_slice(&padding);
        stored.extend_from_slice(plaintext);
        xor_keystream(
            &self.block_key,
            &block_nonce(index, &padding),
            &mut stored[PADDING..],
            index,
        )?;
        Ok(stored)
    }

    /// The plaintext of the stored block `stored` of block `index`. The fork is not
    /// needed: it travels blinded in the padding. A wrong key is not detected (there is
    /// no MAC); it yields other bytes of the same length.
    ///
    /// Errors: `DESERIALIZATION_FAILED` when `stored` is shorter than [`PADDING`] (JS
    /// decrypts such a block to an empty value; only a writer without the key can make
    /// one, so we refuse it rather than invent a value) or longer than
    /// [`MAX_STORED_BYTES`].
    pub fn decrypt(&self, index: u64, stored: &[u8]) -> Result<Vec<u8>> {
        let (padding, body) = split(index, stored)?;
        let mut plaintext = body.to_vec();
        xor_keystream(
            &self.block_key,
            &block_nonce(index, padding),
            &mut plaintext,
            index,
        )?;
        Ok(plaintext)
    }

    /// The fork that block `index` was written at, unblinded from its padding. Only a
    /// holder of the key can read it; decryption does not need it.
    ///
    /// Errors: as [`decrypt`](Self::decrypt) for the length of `stored`.
    pub fn fork(&self, index: u64, stored: &[u8]) -> Result<u64> {
        let (padding, _) = split(index, stored)?;
        let mut fork = *padding;
        xor_keystream(&self.blinding_key, &blinding_nonce(index), &mut fork, index)?;
        Ok(u64::from_le_bytes(fork))
    }
}

/// `stored` as its padding and its ciphertext, lengths checked.
fn split(index: u64, stored: &[u8]) -> Result<(&[u8; PADDING], &[u8])> {
    if stored.len() > MAX_STORED_BYTES {
        return Err(too_large(index, stored.len()));
    }
    match stored.split_first_chunk::<PADDING>() {
        Some(parts) => Ok(parts),
        None => Err(HypercoreError::DeserializationFailed {
            log: None,
            seq: Some(index),
            reason: DecodeError::Schema {
                path: "block".into(),
                message: format!(
                    "an encrypted block of {} bytes is shorter than its {PADDING}-byte padding (written without the key?)",
                    stored.len()
                ),
            },
        }),
    }
}

/// Nonce of the blinding keystream: u64le(index) ‖ 0¹⁶.
fn blinding_nonce(index: u64) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(&index.to_le_bytes());
    nonce
}

/// Nonce of the body keystream: u64le(index) ‖ padding ‖ 0⁸.
fn block_nonce(index: u64, padding: &[u8; PADDING]) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(&index.to_le_bytes());
    nonce[8..16].copy_from_slice(padding);
    nonce
}

/// XORs `buf` with the XSalsa20 keystream of `key` and `nonce` from its start
/// (libsodium `crypto_stream_xor`).
fn xor_keystream(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8], index: u64) -> Result<()> {
    let mut cipher = XSalsa20::new(key.into(), nonce.into());
    // Only a buffer past the 2⁷⁰-byte keystream fails; our buffers are at most 64 MiB.
    cipher
        .try_apply_keystream(buf)
        .map_err(|_| too_large(index, buf.len()))
}

/// A stored block over [`MAX_STORED_BYTES`].
fn too_large(index: u64, size: usize) -> HypercoreError {
    HypercoreError::DeserializationFailed {
        log: None,
        seq: Some(index),
        reason: DecodeError::TooLarge {
            size,
            limit: MAX_STORED_BYTES,
        },
    }
}

/// An invalid key given to a constructor.
fn invalid(path: &str, message: String) -> HypercoreError {
    HypercoreError::decode(DecodeError::Schema {
        path: path.into(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nova_hypercore_serialization::ErrorCode;

    fn keys() -> BlockEncryption {
        let enc: Vec<u8> = (0u8..32).collect();
        BlockEncryption::new(&enc, &[7; 32], KeyDerivation::Compat).unwrap()
    }

    /// The constant is `crypto.namespace('hypercore', 6)[5]`.
    #[test]
    fn namespace_matches_its_derivation() {
        let ns = Blake2b::<U32>::digest(b"hypercore");
        let mut h = Blake2b::<U32>::new();
        h.update(ns);
        h.update([5u8]);
        let derived: [u8; 32] = h.finalize().into();
        assert_eq!(derived, BLOCK_ENCRYPTION_NAMESPACE);
    }

    #[test]
    fn formats_select_their_derivation() {
        assert_eq!(
            KeyDerivation::from(CoreFormat::Legacy),
            KeyDerivation::Compat
        );
        assert_eq!(KeyDerivation::from(CoreFormat::V1), KeyDerivation::Manifest);
    }

    #[test]
    fn key_lengths_are_bounded() {
        for len in [
            0,
            1,
            MIN_ENCRYPTION_KEY_BYTES - 1,
            MAX_ENCRYPTION_KEY_BYTES + 1,
        ] {
            let err =
                BlockEncryption::new(&vec![1; len], &[0; 32], KeyDerivation::Manifest).unwrap_err();
            assert_eq!(err.code(), ErrorCode::DeserializationFailed, "{len}");
        }
        for len in [MIN_ENCRYPTION_KEY_BYTES, 32, MAX_ENCRYPTION_KEY_BYTES] {
            BlockEncryption::new(&vec![1; len], &[0; 32], KeyDerivation::Compat).unwrap();
        }
        for len in [0, 31, 33] {
            let err = BlockEncryption::from_block_key(&vec![1; len]).unwrap_err();
            assert_eq!(err.code(), ErrorCode::DeserializationFailed, "{len}");
        }
    }

    /// A stored block shorter than the padding is refused (JS would read it as empty).
    #[test]
    fn short_blocks_are_refused() {
        let keys = keys();
        for len in 0..PADDING {
            let err = keys.decrypt(3, &vec![0; len]).unwrap_err();
            assert_eq!(err.code(), ErrorCode::DeserializationFailed);
            assert_eq!(err.seq(), Some(3));
            assert_eq!(keys.fork(3, &vec![0; len]).unwrap_err().seq(), Some(3));
        }
        assert_eq!(keys.decrypt(3, &[0; PADDING]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn oversized_blocks_are_refused() {
        let keys = keys();
        let big = vec![0u8; MAX_STORED_BYTES - PADDING + 1];
        let err = keys.encrypt(0, 0, &big).unwrap_err();
        assert_eq!(err.code(), ErrorCode::DeserializationFailed);
        let stored = vec![0u8; MAX_STORED_BYTES + 1];
        assert!(keys.decrypt(0, &stored).is_err());
        // The largest allowed plaintext encrypts.
        let ok = keys.encrypt(0, 0, &big[1..]).unwrap();
        assert_eq!(ok.len(), MAX_STORED_BYTES);
    }

    #[test]
    fn debug_hides_the_keys() {
        let shown = format!("{:?}", keys());
        assert_eq!(shown, "BlockEncryption { .. }");
    }
}
