//! The signature container of manifest cores (JS hypercore 11 `lib/multisig.js`,
//! `multiSignature` in `lib/messages.js`).
//!
//! Owns: the byte form of a version-1+ manifest core's tree signature: an array of
//! proofs `{uint signer, fixed64 signature, uint patch}` then an array of patch nodes
//! `{uint index, uint size, fixed32 hash}`. With one signer and no patch it is 68 bytes,
//! `01 00 ‖ signature ‖ 00 00`: what the oplog stores and `DataUpgrade.signature`
//! carries for such a core.
//!
//! Patches: a proof's `patch` > 0 says its signer signed a tree `patch` blocks longer
//! than the one being verified, the patch nodes proving the difference (multi-writer
//! setups). JS ignores a patch unless the manifest sets `allowPatch`, then rebuilds the
//! longer tree. We refuse every signature whose proof carries a patch: with `allowPatch`
//! off JS would check that signature against the tree as it is, which a patched proof's
//! signature (made for another length) cannot match anyway, and patched verification
//! itself is not implemented (no writer we talk to makes patched signatures for
//! single-writer cores). See [`crate::verifier`].
//!
//! Decoding is bounded like every codec here: counts are checked against the remaining
//! input before anything is allocated.

use crate::crypto::Node;
use crate::encoding::{DecodeError, Reader, Writer};

/// Smallest encoded proof: `uint`, 64 bytes, `uint`.
const PROOF_MIN_LEN: usize = 1 + 64 + 1;
/// Smallest encoded node: `uint`, `uint`, 32 bytes.
const NODE_MIN_LEN: usize = 1 + 1 + 32;

/// One signer's part of a multisig signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MultisigProof {
    /// Index of the signer in the manifest.
    pub(crate) signer: u64,
    /// The ed25519 signature.
    pub(crate) signature: [u8; 64],
    /// Blocks the signed tree has beyond the verified one (0: none).
    pub(crate) patch: u64,
}

/// A multisig signature (JS `multiSignature`, version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MultiSignature {
    /// One per signer taking part, in order.
    pub(crate) proofs: Vec<MultisigProof>,
    /// Tree nodes the patches need.
    pub(crate) patch: Vec<Node>,
}

impl MultiSignature {
    /// The container for one signer's plain signature: `signer`, no patch.
    pub(crate) fn single(signer: u64, signature: [u8; 64]) -> Self {
        MultiSignature {
            proofs: vec![MultisigProof {
                signer,
                signature,
                patch: 0,
            }],
            patch: Vec::new(),
        }
    }

    /// The longest canonical container for `signers` signers without patches: a
    /// proof from each (`uint` index, 64 bytes, `uint` 0) and the two array counts.
    pub(crate) fn max_len(signers: usize) -> usize {
        const UINT_MAX_LEN: usize = 9;
        signers
            .saturating_mul(UINT_MAX_LEN + 64 + 1)
            .saturating_add(2 * UINT_MAX_LEN)
    }

    /// JS `c.encode(multiSignature, s)`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.array(&self.proofs, |w, p| {
            w.uint(p.signer);
            w.bytes(&p.signature);
            w.uint(p.patch);
        });
        w.array(&self.patch, |w, n| {
            w.uint(n.index);
            w.uint(n.size);
            w.fixed32(&n.hash);
        });
        w.into_vec()
    }

    /// JS `c.decode(multiSignature, bytes)`. Like JS, bytes after the container are
    /// not read here; the verifier takes only a container that re-encodes to exactly
    /// the bytes received (`crate::verifier`).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let r = &mut Reader::new(bytes);
        let proofs = r.array(PROOF_MIN_LEN, |r| {
            Ok(MultisigProof {
                signer: r.uint()?,
                signature: r.fixed::<64>()?,
                patch: r.uint()?,
            })
        })?;
        let patch = r.array(NODE_MIN_LEN, |r| {
            Ok(Node {
                index: r.uint()?,
                size: r.uint()?,
                hash: r.fixed32()?,
            })
        })?;
        Ok(MultiSignature { proofs, patch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_signer_is_68_bytes() {
        let sig = [0xab; 64];
        let bytes = MultiSignature::single(0, sig).encode();
        assert_eq!(bytes.len(), 68);
        assert_eq!(bytes[..2], [1, 0]);
        assert_eq!(bytes[2..66], sig);
        assert_eq!(bytes[66..], [0, 0]);
        assert_eq!(
            MultiSignature::decode(&bytes).unwrap(),
            MultiSignature::single(0, sig)
        );
    }

    #[test]
    fn short_or_oversized_counts_are_errors() {
        assert!(MultiSignature::decode(&[]).is_err());
        assert!(MultiSignature::decode(&[1, 0]).is_err());
        assert!(MultiSignature::decode(&[0xfe, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // A raw 64-byte signature is not a container: its first byte is read as a
        // proof count the rest cannot hold (or, by chance, as something that then
        // fails to verify).
        let raw = [0x05; 64];
        assert!(MultiSignature::decode(&raw).is_err());
        let mut with_nodes = MultiSignature::single(0, [1; 64]);
        with_nodes.patch.push(Node {
            index: 3,
            size: 300,
            hash: [4; 32],
        });
        let bytes = with_nodes.encode();
        assert_eq!(MultiSignature::decode(&bytes).unwrap(), with_nodes);
        for cut in 0..bytes.len() {
            assert!(MultiSignature::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }
}
