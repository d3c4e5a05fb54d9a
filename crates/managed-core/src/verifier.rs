//! Who signs a log, and making and checking its tree signatures.
//!
//! Owns: [`Verifier`] (checks the signature over a set of roots, length and fork) and
//! [`Signer`] (makes it). Keys and signatures are data here, not fixed types: a log's
//! *core key* (what names it on the wire) is not always its signer's public key, and a
//! signature is a byte string whose shape the verifier knows. Hypercore 10 logs are the
//! one kind built today: one ed25519 key, the 80-byte legacy signable
//! ([`crate::crypto::signable`]), 64-byte signatures, core key = public key. Hypercore 11
//! manifests add variants here without touching the tree or proof code.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::crypto::{Node, signable, tree_hash};

/// Checks tree signatures for one log.
#[derive(Debug, Clone)]
pub(crate) enum Verifier {
    /// Hypercore 10: one ed25519 key over the legacy signable.
    Ed25519Legacy {
        /// The signer's public key.
        public_key: VerifyingKey,
    },
}

impl Verifier {
    /// Whether `signature` signs the tree whose roots (sorted by index) are `roots`, at
    /// `length` blocks and `fork`.
    pub(crate) fn verify(&self, roots: &[Node], length: u64, fork: u64, signature: &[u8]) -> bool {
        match self {
            Verifier::Ed25519Legacy { public_key } => {
                let Ok(signature) = Signature::from_slice(signature) else {
                    return false;
                };
                public_key
                    .verify_strict(&signable(&tree_hash(roots), length, fork), &signature)
                    .is_ok()
            }
        }
    }
}

/// Signs a writable log's tree.
#[derive(Clone)]
pub(crate) enum Signer {
    /// Hypercore 10: one ed25519 key over the legacy signable.
    Ed25519Legacy(SigningKey),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print the secret.
            Signer::Ed25519Legacy(key) => f
                .debug_tuple("Ed25519Legacy")
                .field(&key.verifying_key())
                .finish(),
        }
    }
}

impl Signer {
    /// The signature over the tree with `roots` at `length` and `fork`.
    pub(crate) fn sign(&self, roots: &[Node], length: u64, fork: u64) -> Vec<u8> {
        match self {
            Signer::Ed25519Legacy(key) => key
                .sign(&signable(&tree_hash(roots), length, fork))
                .to_bytes()
                .to_vec(),
        }
    }

    #[cfg(test)]
    /// The verifier that accepts this signer's signatures.
    pub(crate) fn verifier(&self) -> Verifier {
        match self {
            Signer::Ed25519Legacy(key) => Verifier::Ed25519Legacy {
                public_key: key.verifying_key(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_what_it_signed() {
        let signer = Signer::Ed25519Legacy(SigningKey::from_bytes(&[7; 32]));
        let verifier = signer.verifier();
        let roots = [Node::leaf(0, b"a")];
        let sig = signer.sign(&roots, 1, 0);
        assert_eq!(sig.len(), 64);
        assert!(verifier.verify(&roots, 1, 0, &sig));
        assert!(!verifier.verify(&roots, 2, 0, &sig));
        assert!(!verifier.verify(&roots, 1, 1, &sig));
        assert!(!verifier.verify(&[Node::leaf(0, b"b")], 1, 0, &sig));
        assert!(!verifier.verify(&roots, 1, 0, &sig[..63]));
        let other = Signer::Ed25519Legacy(SigningKey::from_bytes(&[8; 32])).verifier();
        assert!(!other.verify(&roots, 1, 0, &sig));
    }
}
