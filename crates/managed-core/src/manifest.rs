//! Hypercore manifests: who signs a core and how, and the core key derived from it.
//!
//! Owns: the manifest codec of JS hypercore 11 (`lib/messages.js` `manifest`, pinned
//! 11.39.5), the manifest hash that names a hypercore 11 core, and the default manifest
//! JS makes for one ed25519 key pair. Pure functions, no I/O.
//!
//! Byte layout (compact-encoding, read from the pinned package):
//! - version 1 and later: `uint version ‖ uint flags (1 allowPatch, 2 prologue, 4 linked,
//!   8 userData) ‖ uint hash (0 = blake2b) ‖ uint quorum ‖ array of signers ‖
//!   [prologue: fixed32 hash ‖ uint length] ‖ [linked: array of fixed32] ‖ [userData:
//!   buffer]`; a signer is `uint signature (0 = ed25519) ‖ fixed32 namespace ‖ fixed32
//!   publicKey`. JS decodes versions 1 to 3 with this one layout and refuses versions
//!   above 3; so do we ([`ManifestError::UnknownVersion`]).
//! - version 0 (`manifestv0`): `uint 0 ‖ uint hash ‖ uint type`, then type 0: `fixed32`
//!   prologue hash (a static core); type 1: one signer (quorum 1, no patch); type 2:
//!   `uint flags (1 allowPatch) ‖ uint quorum ‖ array of signers`.
//!
//! The core key of a manifest core is `blake2b-256(MANIFEST ‖ encoded manifest)`
//! ([`manifest_hash`]), `MANIFEST` being `crypto.namespace('hypercore', 6)[3]`. The
//! default manifest for an ed25519 public key ([`Manifest::default_signer`]) is version
//! 1, blake2b, quorum 1, no patch, one ed25519 signer in `DEFAULT_NAMESPACE`: 70 bytes,
//! `01 00 00 01 01 00 ‖ namespace ‖ public key`.
//!
//! A manifest whose only signer's public key *is* the core key is a "compat" manifest
//! (JS `isCompat`): such cores (hypercore 10, and hypercore 11 with `compat: true`)
//! sign the legacy 80-byte signable with a raw 64-byte signature, whatever the
//! manifest's version.
//!
//! Decoding is bounded: every read is checked against the input, array counts are
//! checked against the remaining bytes before anything is allocated, and a decoded
//! manifest must re-encode to exactly the bytes it came from ([`Manifest::decode`]
//! refuses trailing bytes and non-canonical forms, which JS would hash differently).

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest as _};
use thiserror::Error;

use crate::encoding::{DecodeError, Reader, Writer};

/// `caps.MANIFEST` of JS hypercore 11: `crypto.namespace('hypercore', 6)[3]` =
/// blake2b-256(blake2b-256("hypercore") ‖ 3). Prefixes the encoded manifest in the
/// manifest hash.
pub const MANIFEST_NAMESPACE: [u8; 32] = [
    0xE6, 0x4B, 0x71, 0x08, 0xEA, 0xCC, 0xE4, 0x7C, 0xFC, 0x61, 0xAC, 0x85, 0x05, 0x68, 0xF5, 0x5F,
    0x8B, 0x15, 0xB8, 0x2E, 0xC5, 0xED, 0x78, 0xC4, 0xEC, 0x59, 0x7B, 0x03, 0x6E, 0x2A, 0x14, 0x98,
];

/// `caps.DEFAULT_NAMESPACE`: `crypto.namespace('hypercore', 6)[4]`, the namespace of
/// the default signer.
pub const DEFAULT_NAMESPACE: [u8; 32] = [
    0x41, 0x44, 0xEE, 0xA5, 0x31, 0xE4, 0x83, 0xD5, 0x4E, 0x0C, 0x14, 0xF4, 0xCA, 0x68, 0xE0, 0x64,
    0x4F, 0x35, 0x53, 0x43, 0xFF, 0x6F, 0xCB, 0x0F, 0x00, 0x52, 0x00, 0xE1, 0x2C, 0xD7, 0x47, 0xCB,
];

/// The highest manifest version JS hypercore 11.39.5 decodes.
pub const MAX_VERSION: u64 = 3;

/// Encoded size of one signer (`uint` 0, two `fixed32`).
const SIGNER_LEN: usize = 1 + 32 + 32;

/// What an unknown version is reported as by the inner decoder.
const WHAT_VERSION: &str = "manifest version";

/// Flag bits of a version-1+ manifest.
const FLAG_PATCH: u64 = 1;
const FLAG_PROLOGUE: u64 = 2;
const FLAG_LINKED: u64 = 4;
const FLAG_USER_DATA: u64 = 8;

/// Why manifest bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestError {
    /// A version this implementation (and JS hypercore 11.39.5) does not know.
    #[error("unknown manifest version {0} (versions 0 to {MAX_VERSION} are known)")]
    UnknownVersion(u64),
    /// The bytes are not a manifest: truncated, an unknown hash or signature id, an
    /// unknown version-0 type, or a count the input cannot hold.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// Bytes follow the manifest.
    #[error("{0} trailing bytes after the manifest")]
    TrailingBytes(usize),
    /// The bytes decode, but re-encode differently (non-minimal integers, unknown flag
    /// bits, an empty user data buffer): JS would hash another byte string.
    #[error("manifest is not in canonical form")]
    NotCanonical,
    /// The manifest's hash is not the core key it was given for.
    #[error("manifest hash {hash} does not match the core key {key}")]
    HashMismatch {
        /// The core key (hex).
        key: String,
        /// blake2b-256(MANIFEST ‖ manifest) (hex).
        hash: String,
    },
}

/// A manifest's tree hash (JS `hashes`: only blake2b, id 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    /// blake2b-256.
    Blake2b,
}

/// A signer's signature scheme (JS `signatures`: only ed25519, id 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgo {
    /// Ed25519.
    Ed25519,
}

/// One signer of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSigner {
    /// Signature scheme.
    pub signature: SignatureAlgo,
    /// Namespace (a version-0 signer's signable context; kept but unused from version 1,
    /// where the signable carries the manifest hash).
    pub namespace: [u8; 32],
    /// The signer's public key.
    pub public_key: [u8; 32],
}

/// A prologue: the core's first `length` blocks are fixed by their tree hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prologue {
    /// Tree hash of the first `length` blocks.
    pub hash: [u8; 32],
    /// Blocks covered.
    pub length: u64,
}

/// A hypercore manifest (JS `lib/messages.js` `manifest`, as decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// 0 to [`MAX_VERSION`].
    pub version: u64,
    /// Tree hash.
    pub hash: HashAlgo,
    /// Whether a signature may carry a patch (a signer signed a longer tree).
    pub allow_patch: bool,
    /// Signatures needed.
    pub quorum: u64,
    /// The signers, in order (a signature names its signer by index).
    pub signers: Vec<ManifestSigner>,
    /// Fixed first blocks, if any.
    pub prologue: Option<Prologue>,
    /// Linked core keys (version 2).
    pub linked: Option<Vec<[u8; 32]>>,
    /// User data (version 2); JS reads an empty buffer as none.
    pub user_data: Option<Vec<u8>>,
}

impl Manifest {
    /// JS `Verifier.defaultSignerManifest(publicKey)`: version 1, blake2b, quorum 1, no
    /// patch, one ed25519 signer in [`DEFAULT_NAMESPACE`]. What `new Hypercore()` makes
    /// for a fresh key pair (70 bytes encoded).
    pub fn default_signer(public_key: [u8; 32]) -> Self {
        Manifest {
            version: 1,
            hash: HashAlgo::Blake2b,
            allow_patch: false,
            quorum: 1,
            signers: vec![ManifestSigner {
                signature: SignatureAlgo::Ed25519,
                namespace: DEFAULT_NAMESPACE,
                public_key,
            }],
            prologue: None,
            linked: None,
            user_data: None,
        }
    }

    /// Whether this is a "compat" manifest for `key` (JS `isCompat`): one signer whose
    /// public key is the core key. Such a core signs like hypercore 10.
    pub fn is_compat(&self, key: &[u8; 32]) -> bool {
        matches!(self.signers.as_slice(), [only] if only.public_key == *key)
    }

    /// The manifest's encoding (JS `c.encode(manifest, m)`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_vec()
    }

    /// blake2b-256(MANIFEST ‖ encoding): the core key this manifest names.
    pub fn hash(&self) -> [u8; 32] {
        manifest_hash(&self.encode())
    }

    /// Decodes exactly one manifest filling `bytes`: no trailing bytes, canonical form.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut r = Reader::new(bytes);
        let manifest = Self::decode_from(&mut r).map_err(|e| match e {
            DecodeError::Invalid {
                what: WHAT_VERSION,
                value,
            } => ManifestError::UnknownVersion(value),
            e => ManifestError::Malformed(e.to_string()),
        })?;
        if !r.is_empty() {
            return Err(ManifestError::TrailingBytes(r.remaining()));
        }
        if manifest.encode() != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(manifest)
    }

    /// Decodes `encoded` for the core `key`: the hash is checked first, then the bytes
    /// are decoded (what a replica does with a manifest a peer sent).
    pub fn decode_for_key(key: &[u8; 32], encoded: &[u8]) -> Result<Self, ManifestError> {
        let hash = manifest_hash(encoded);
        if hash != *key {
            return Err(ManifestError::HashMismatch {
                key: hex(key),
                hash: hex(&hash),
            });
        }
        Self::decode(encoded)
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.uint(self.version);
        if self.version == 0 {
            self.encode_v0(w);
            return;
        }
        let flags = if self.allow_patch { FLAG_PATCH } else { 0 }
            | if self.prologue.is_some() {
                FLAG_PROLOGUE
            } else {
                0
            }
            | if self.linked.is_some() {
                FLAG_LINKED
            } else {
                0
            }
            | if self.user_data.is_some() {
                FLAG_USER_DATA
            } else {
                0
            };
        w.uint(flags);
        encode_hash(w, self.hash);
        w.uint(self.quorum);
        w.array(&self.signers, encode_signer);
        if let Some(p) = &self.prologue {
            w.fixed32(&p.hash);
            w.uint(p.length);
        }
        if let Some(linked) = &self.linked {
            w.array(linked, |w, key| w.fixed32(key));
        }
        if let Some(data) = &self.user_data {
            w.buffer(data);
        }
    }

    /// JS `manifestv0.encode`: the type follows from the fields.
    fn encode_v0(&self, w: &mut Writer) {
        encode_hash(w, self.hash);
        match (&self.prologue, self.signers.as_slice()) {
            (Some(p), []) => {
                w.uint(0);
                w.fixed32(&p.hash);
            }
            (_, [only]) if self.quorum == 1 && !self.allow_patch => {
                w.uint(1);
                encode_signer(w, only);
            }
            _ => {
                w.uint(2);
                w.uint(u64::from(self.allow_patch));
                w.uint(self.quorum);
                w.array(&self.signers, encode_signer);
            }
        }
    }

    /// Decodes one manifest at the reader's position (JS `manifest.decode`); the reader
    /// may hold more after it.
    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.uint()?;
        if version == 0 {
            return Self::decode_v0(r);
        }
        if version > MAX_VERSION {
            return Err(DecodeError::Invalid {
                what: WHAT_VERSION,
                value: version,
            });
        }
        let flags = r.uint()?;
        let hash = decode_hash(r)?;
        let quorum = r.uint()?;
        let signers = r.array(SIGNER_LEN, decode_signer)?;
        let prologue = if flags & FLAG_PROLOGUE != 0 {
            Some(Prologue {
                hash: r.fixed32()?,
                length: r.uint()?,
            })
        } else {
            None
        };
        let linked = if flags & FLAG_LINKED != 0 {
            Some(r.array(32, |r| r.fixed32())?)
        } else {
            None
        };
        let user_data = if flags & FLAG_USER_DATA != 0 {
            // JS `c.buffer` reads length 0 as null.
            Some(r.buffer()?.to_vec()).filter(|d| !d.is_empty())
        } else {
            None
        };
        Ok(Manifest {
            version,
            hash,
            allow_patch: flags & FLAG_PATCH != 0,
            quorum,
            signers,
            prologue,
            linked,
            user_data,
        })
    }

    fn decode_v0(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let hash = decode_hash(r)?;
        let empty = Manifest {
            version: 0,
            hash,
            allow_patch: false,
            quorum: 0,
            signers: Vec::new(),
            prologue: None,
            linked: None,
            user_data: None,
        };
        match r.uint()? {
            0 => Ok(Manifest {
                prologue: Some(Prologue {
                    hash: r.fixed32()?,
                    length: 0,
                }),
                ..empty
            }),
            1 => Ok(Manifest {
                quorum: 1,
                signers: vec![decode_signer(r)?],
                ..empty
            }),
            2 => {
                let flags = r.uint()?;
                Ok(Manifest {
                    allow_patch: flags & 1 != 0,
                    quorum: r.uint()?,
                    signers: r.array(SIGNER_LEN, decode_signer)?,
                    ..empty
                })
            }
            t => Err(DecodeError::Invalid {
                what: "version-0 manifest type",
                value: t,
            }),
        }
    }
}

fn encode_hash(w: &mut Writer, hash: HashAlgo) {
    match hash {
        HashAlgo::Blake2b => w.uint(0),
    }
}

fn decode_hash(r: &mut Reader<'_>) -> Result<HashAlgo, DecodeError> {
    match r.uint()? {
        0 => Ok(HashAlgo::Blake2b),
        n => Err(DecodeError::Invalid {
            what: "hash id",
            value: n,
        }),
    }
}

pub(crate) fn encode_signer(w: &mut Writer, s: &ManifestSigner) {
    match s.signature {
        SignatureAlgo::Ed25519 => w.uint(0),
    }
    w.fixed32(&s.namespace);
    w.fixed32(&s.public_key);
}

pub(crate) fn decode_signer(r: &mut Reader<'_>) -> Result<ManifestSigner, DecodeError> {
    let signature = match r.uint()? {
        0 => SignatureAlgo::Ed25519,
        n => {
            return Err(DecodeError::Invalid {
                what: "signature id",
                value: n,
            });
        }
    };
    Ok(ManifestSigner {
        signature,
        namespace: r.fixed32()?,
        public_key: r.fixed32()?,
    })
}

/// blake2b-256(MANIFEST ‖ `encoded`): the core key of the manifest encoded as
/// `encoded` (JS `Verifier.manifestHash`).
pub fn manifest_hash(encoded: &[u8]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(MANIFEST_NAMESPACE);
    h.update(encoded);
    h.finalize().into()
}

/// The core key of a hypercore 11 default core signed by `public_key`: the hash of
/// [`Manifest::default_signer`]. What JS hypercore 11 names a new core by (compat off).
pub fn default_core_key(public_key: &[u8; 32]) -> [u8; 32] {
    Manifest::default_signer(*public_key).hash()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(i: u8) -> [u8; 32] {
        let ns = Blake2b::<U32>::digest(b"hypercore");
        let mut h = Blake2b::<U32>::new();
        h.update(ns);
        h.update([i]);
        h.finalize().into()
    }

    /// The constants are `crypto.namespace('hypercore', 6)[3]` and `[4]`.
    #[test]
    fn namespaces_match_their_derivation() {
        assert_eq!(namespace(3), MANIFEST_NAMESPACE);
        assert_eq!(namespace(4), DEFAULT_NAMESPACE);
    }

    #[test]
    fn default_manifest_is_70_bytes_in_the_documented_layout() {
        let pk = [9u8; 32];
        let bytes = Manifest::default_signer(pk).encode();
        assert_eq!(bytes.len(), 70);
        assert_eq!(bytes[..6], [1, 0, 0, 1, 1, 0]);
        assert_eq!(bytes[6..38], DEFAULT_NAMESPACE);
        assert_eq!(bytes[38..], pk);
        assert_eq!(
            Manifest::decode(&bytes).unwrap(),
            Manifest::default_signer(pk)
        );
    }

    #[test]
    fn version_0_decodes_each_type_as_js() {
        let signer = ManifestSigner {
            signature: SignatureAlgo::Ed25519,
            namespace: [1; 32],
            public_key: [2; 32],
        };
        let mut one = vec![0, 0, 1, 0];
        one.extend([1; 32]);
        one.extend([2; 32]);
        let m = Manifest::decode(&one).unwrap();
        assert_eq!((m.version, m.quorum), (0, 1));
        assert_eq!(m.signers, vec![signer.clone()]);
        let mut fixed = vec![0, 0, 0];
        fixed.extend([7; 32]);
        let m = Manifest::decode(&fixed).unwrap();
        assert_eq!(
            m.prologue,
            Some(Prologue {
                hash: [7; 32],
                length: 0
            })
        );
        assert!(m.signers.is_empty());
        // Type 2 with quorum 1 and one signer re-encodes as type 1 (JS normalizes).
        let mut multi = vec![0, 0, 2, 0, 1, 1, 0];
        multi.extend([1; 32]);
        multi.extend([2; 32]);
        let m = Manifest::decode_from(&mut Reader::new(&multi)).unwrap();
        assert_eq!(m.encode(), one);
        assert_eq!(Manifest::decode(&multi), Err(ManifestError::NotCanonical));
        assert!(matches!(
            Manifest::decode(&[0, 0, 3]),
            Err(ManifestError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_versions_and_ids_are_typed_errors() {
        assert_eq!(
            Manifest::decode(&[4, 0, 0, 0, 0]),
            Err(ManifestError::UnknownVersion(4))
        );
        assert_eq!(
            Manifest::decode(&[0xfd, 0, 1]),
            Err(ManifestError::UnknownVersion(256))
        );
        assert!(matches!(
            Manifest::decode(&[1, 0, 1, 0, 0]),
            Err(ManifestError::Malformed(_))
        ));
        let mut bad_sig = Manifest::default_signer([3; 32]).encode();
        bad_sig[5] = 1;
        assert!(matches!(
            Manifest::decode(&bad_sig),
            Err(ManifestError::Malformed(_))
        ));
        let mut trailing = Manifest::default_signer([3; 32]).encode();
        trailing.push(0);
        assert_eq!(
            Manifest::decode(&trailing),
            Err(ManifestError::TrailingBytes(1))
        );
        // An unknown flag bit decodes in JS but re-encodes without it.
        let mut flagged = Manifest::default_signer([3; 32]).encode();
        flagged[1] = 16;
        assert_eq!(Manifest::decode(&flagged), Err(ManifestError::NotCanonical));
        // A signer count the input cannot hold fails before allocating.
        assert!(matches!(
            Manifest::decode(&[1, 0, 0, 1, 0xfe, 0, 0, 0x10, 0]),
            Err(ManifestError::Malformed(_))
        ));
    }

    #[test]
    fn the_hash_is_checked_before_decoding() {
        let m = Manifest::default_signer([5; 32]);
        let bytes = m.encode();
        let key = m.hash();
        assert_eq!(Manifest::decode_for_key(&key, &bytes).unwrap(), m);
        assert!(matches!(
            Manifest::decode_for_key(&[5; 32], &bytes),
            Err(ManifestError::HashMismatch { .. })
        ));
        // Garbage whose hash does not match is a mismatch, not a decode error.
        assert!(matches!(
            Manifest::decode_for_key(&key, &[0xff; 3]),
            Err(ManifestError::HashMismatch { .. })
        ));
        assert_eq!(default_core_key(&[5; 32]), key);
        assert!(!m.is_compat(&key));
        assert!(m.is_compat(&[5; 32]));
    }
}
