//! Who signs a log, and making and checking its tree signatures.
//!
//! Owns: [`Verifier`] (checks the signature over a set of roots, length and fork) and
//! [`Signer`] (makes it), for the two kinds of core JS hypercore makes (rules read from
//! hypercore 11.39.5 `lib/verifier.js`):
//! - **legacy** ("compat": hypercore 10, and hypercore 11 with `compat: true`): the core
//!   key is the signer's ed25519 public key; a signature is a raw 64-byte ed25519
//!   signature over the 80-byte signable `TREE ‖ treeHash ‖ length ‖ fork`
//!   ([`crate::crypto::signable`]). A manifest whose one signer's key is the core key is
//!   legacy whatever its version (JS `isCompat`).
//! - **manifest** (hypercore 11 default, version 1+): the core key is the manifest hash
//!   ([`crate::manifest::manifest_hash`]); each signer signs the 112-byte signable
//!   `TREE ‖ core key ‖ treeHash ‖ length ‖ fork` ([`crate::crypto::tree_signable`]), and
//!   the signature is the multisig container ([`crate::multisig`]): `quorum` proofs from
//!   distinct signers. A raw 64-byte signature is refused (it is no container). A
//!   prologue fixes the tree of its first `length` blocks by hash: lengths up to it
//!   verify by that hash alone, as in JS. Patched proofs are refused (see
//!   [`crate::multisig`]). Version-0 manifests that are not compat (a namespaced signer)
//!   verify a raw signature over the 112-byte signable with the signer's namespace as
//!   context; version-0 quorums (multisig v0) are refused.
//! - **pending**: a replica opened by its core key before the manifest is known. It
//!   accepts only what verifies under the legacy reading of the key (JS: no manifest
//!   means the default compat manifest); anything else is
//!   [`VerifyError::ManifestMissing`], so the caller fetches the manifest.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::crypto::{Node, signable, tree_hash, tree_signable};
use crate::manifest::{Manifest, SignatureAlgo};
use crate::multisig::MultiSignature;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VerifyError {
    /// The signature does not sign the tree (or is not in the core's signature form).
    #[error("{0}")]
    Invalid(String),
    /// The core's manifest is not known, and the signature is not a legacy one.
    #[error(
        "the manifest of this core is not known yet: the signature cannot be checked until a peer sends it"
    )]
    ManifestMissing,
}

fn invalid(reason: impl Into<String>) -> VerifyError {
    VerifyError::Invalid(reason.into())
}

/// Checks tree signatures for one log.
#[derive(Debug, Clone)]
pub(crate) enum Verifier {
    /// Legacy: one ed25519 key (the core key) over the 80-byte signable.
    Ed25519Legacy {
        /// The signer's public key.
        public_key: VerifyingKey,
    },
    /// A manifest core (hypercore 11).
    Manifest {
        /// The core key (the manifest's hash).
        key: [u8; 32],
        /// The manifest.
        manifest: Box<Manifest>,
        /// The signers' keys, by index (`None`: not a valid ed25519 point, never
        /// verifies).
        signers: Vec<Option<VerifyingKey>>,
    },
    /// A replica whose manifest is not known yet.
    Pending {
        /// The core key.
        key: [u8; 32],
    },
}

impl Verifier {
    /// The verifier of core `key` under `manifest` (`None`: pending). A compat manifest
    /// whose key is not an ed25519 point is an error.
    pub(crate) fn new(key: [u8; 32], manifest: Option<&Manifest>) -> Result<Self, String> {
        let Some(manifest) = manifest else {
            return Ok(Verifier::Pending { key });
        };
        if manifest.is_compat(&key) {
            let public_key = VerifyingKey::from_bytes(&key)
                .map_err(|_| "the core key is not an ed25519 public key".to_owned())?;
            return Ok(Verifier::Ed25519Legacy { public_key });
        }
        let signers = manifest
            .signers
            .iter()
            .map(|s| match s.signature {
                SignatureAlgo::Ed25519 => VerifyingKey::from_bytes(&s.public_key).ok(),
            })
            .collect();
        Ok(Verifier::Manifest {
            key,
            manifest: Box::new(manifest.clone()),
            signers,
        })
    }

    /// Whether `signature` signs the tree whose roots (sorted by index) are `roots`, at
    /// `length` blocks and `fork`.
    pub(crate) fn verify(&self, roots: &[Node], length: u64, fork: u64, signature: &[u8]) -> bool {
        self.check(roots, length, fork, signature).is_ok()
    }

    /// Like [`verify`](Self::verify), with the reason for a refusal.
    pub(crate) fn check(
        &self,
        roots: &[Node],
        length: u64,
        fork: u64,
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        match self {
            Verifier::Ed25519Legacy { public_key } => {
                verify_legacy(public_key, roots, length, fork, signature)
            }
            Verifier::Pending { key } => {
                let public_key =
                    VerifyingKey::from_bytes(key).map_err(|_| VerifyError::ManifestMissing)?;
                verify_legacy(&public_key, roots, length, fork, signature)
                    .map_err(|_| VerifyError::ManifestMissing)
            }
            Verifier::Manifest {
                key,
                manifest,
                signers,
            } => verify_manifest(key, manifest, signers, roots, length, fork, signature),
        }
    }

    /// The manifest, for a manifest core.
    #[cfg(test)]
    pub(crate) fn manifest(&self) -> Option<&Manifest> {
        match self {
            Verifier::Manifest { manifest, .. } => Some(manifest),
            _ => None,
        }
    }
}

fn verify_legacy(
    public_key: &VerifyingKey,
    roots: &[Node],
    length: u64,
    fork: u64,
    signature: &[u8],
) -> Result<(), VerifyError> {
    let signature = Signature::from_slice(signature).map_err(|_| {
        invalid(format!(
            "a {}-byte signature is not ed25519",
            signature.len()
        ))
    })?;
    public_key
        .verify_strict(&signable(&tree_hash(roots), length, fork), &signature)
        .map_err(|_| invalid("the signature does not sign this tree"))
}

/// The proofs a signature of `manifest` carries (its quorum, at least one, at most
/// one per signer).
pub(crate) fn quorum_of(manifest: &Manifest) -> usize {
    usize::try_from(manifest.quorum)
        .unwrap_or(usize::MAX)
        .clamp(1, manifest.signers.len().max(1))
}

/// JS `Verifier.verify` for a non-compat manifest.
fn verify_manifest(
    key: &[u8; 32],
    manifest: &Manifest,
    signers: &[Option<VerifyingKey>],
    roots: &[Node],
    length: u64,
    fork: u64,
    signature: &[u8],
) -> Result<(), VerifyError> {
    let hash = tree_hash(roots);
    if manifest.version == 0 {
        // JS `_verifyCompat` for a namespaced (non-compat) version-0 signer.
        return match (signers, manifest.allow_patch) {
            ([Some(public_key)], false) => {
                let signature = Signature::from_slice(signature)
                    .map_err(|_| invalid("a version-0 signer's signature is 64 bytes"))?;
                let context = &manifest.signers[0].namespace;
                public_key
                    .verify_strict(&tree_signable(context, &hash, length, fork), &signature)
                    .map_err(|_| invalid("the signature does not sign this tree"))
            }
            _ => Err(invalid(
                "version-0 quorum signatures (multisig v0) are not supported",
            )),
        };
    }
    if let Some(prologue) = &manifest.prologue
        && length <= prologue.length
    {
        // Not checked against a key, but stored and served on: no bigger than a
        // container with the quorum's proofs.
        let bound = MultiSignature::max_len(quorum_of(manifest));
        if signature.len() > bound {
            return Err(invalid(format!(
                "a {}-byte signature for the manifest's prologue: at most {bound} bytes",
                signature.len()
            )));
        }
        return if length == prologue.length && hash == prologue.hash {
            Ok(())
        } else {
            Err(invalid(format!(
                "the tree of length {length} is not the manifest's prologue"
            )))
        };
    }
    if manifest.quorum == 0 {
        return Err(invalid("the manifest's quorum is 0: nothing verifies"));
    }
    let container = MultiSignature::decode(signature).map_err(|e| {
        invalid(format!(
            "a {}-byte signature is not a multisig container: {e}",
            signature.len()
        ))
    })?;
    // Only the canonical container is taken (it is stored, written into the oplog
    // header and served on as received): no bytes after it, minimal numbers, exactly
    // the quorum's proofs, no patch nodes (patches are not supported). A relaying
    // peer could otherwise pad a writer's real signature until the header overflows.
    if container.encode() != signature {
        return Err(invalid(format!(
            "a {}-byte multisig container that is not in canonical form (bytes after it, or non-minimal numbers)",
            signature.len()
        )));
    }
    let quorum = usize::try_from(manifest.quorum).unwrap_or(usize::MAX);
    if container.proofs.len() != quorum {
        return Err(invalid(format!(
            "{} signatures for a quorum of {quorum}: exactly the quorum is taken",
            container.proofs.len()
        )));
    }
    if !container.patch.is_empty() {
        return Err(invalid(format!(
            "{} patch nodes in a signature (patches are not supported)",
            container.patch.len()
        )));
    }
    let signable = tree_signable(key, &hash, length, fork);
    let mut tried = vec![false; signers.len()];
    for proof in &container.proofs[..quorum] {
        if proof.patch != 0 {
            return Err(invalid(if manifest.allow_patch {
                "patched signatures are not supported"
            } else {
                "a patched signature for a manifest that does not allow patches"
            }));
        }
        let index = usize::try_from(proof.signer).unwrap_or(usize::MAX);
        let Some(seen) = tried.get_mut(index).filter(|seen| !**seen) else {
            return Err(invalid(format!(
                "signer {} is unknown or signed twice",
                proof.signer
            )));
        };
        *seen = true;
        let Some(Some(public_key)) = signers.get(index) else {
            return Err(invalid(format!("signer {index} has no valid ed25519 key")));
        };
        public_key
            .verify_strict(&signable, &Signature::from_bytes(&proof.signature))
            .map_err(|_| {
                invalid(format!(
                    "signer {index}'s signature does not sign this tree"
                ))
            })?;
    }
    Ok(())
}

/// Signs a writable log's tree.
#[derive(Clone)]
pub(crate) enum Signer {
    /// Legacy: a raw signature over the 80-byte signable.
    Ed25519Legacy(SigningKey),
    /// The one signer (quorum 1) of a version-1+ manifest core: a multisig container
    /// over the 112-byte signable.
    Manifest {
        /// The core key (manifest hash).
        key: [u8; 32],
        /// Our index among the manifest's signers.
        index: u64,
        /// Our secret key.
        secret: SigningKey,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        match self {
            Signer::Ed25519Legacy(key) => f
                .debug_tuple("Ed25519Legacy")
                .field(&key.verifying_key())
                .finish(),
            Signer::Manifest { index, secret, .. } => f
                .debug_struct("Manifest")
                .field("index", index)
                .field("public_key", &secret.verifying_key())
                .finish(),
        }
    }
}

impl Signer {
    /// The signer for `secret` on core `key` under `manifest`, or `None` when this key
    /// cannot sign alone: not a declared signer, a quorum above 1, a prologue, or a
    /// version-0 namespaced manifest (JS would sign, but its signatures need others').
    pub(crate) fn new(key: [u8; 32], manifest: &Manifest, secret: SigningKey) -> Option<Self> {
        let public = secret.verifying_key().to_bytes();
        if manifest.is_compat(&key) {
            return (public == key).then_some(Signer::Ed25519Legacy(secret));
        }
        if manifest.version == 0 || manifest.quorum != 1 || manifest.prologue.is_some() {
            return None;
        }
        let index = manifest
            .signers
            .iter()
            .position(|s| s.signature == SignatureAlgo::Ed25519 && s.public_key == public)?;
        Some(Signer::Manifest {
            key,
            index: index as u64,
            secret,
        })
    }

    /// The signer's public key.
    pub(crate) fn public_key(&self) -> VerifyingKey {
        match self {
            Signer::Ed25519Legacy(key) => key.verifying_key(),
            Signer::Manifest { secret, .. } => secret.verifying_key(),
        }
    }

    /// The signature over the tree with `roots` at `length` and `fork`, in the form the
    /// core stores and sends.
    pub(crate) fn sign(&self, roots: &[Node], length: u64, fork: u64) -> Vec<u8> {
        match self {
            Signer::Ed25519Legacy(key) => key
                .sign(&signable(&tree_hash(roots), length, fork))
                .to_bytes()
                .to_vec(),
            Signer::Manifest { key, index, secret } => {
                let signature = secret.sign(&tree_signable(key, &tree_hash(roots), length, fork));
                MultiSignature::single(*index, signature.to_bytes()).encode()
            }
        }
    }

    #[cfg(test)]
    /// The verifier that accepts this signer's signatures (a manifest signer's under
    /// the default manifest).
    pub(crate) fn verifier(&self) -> Verifier {
        match self {
            Signer::Ed25519Legacy(key) => Verifier::Ed25519Legacy {
                public_key: key.verifying_key(),
            },
            Signer::Manifest { secret, .. } => {
                let manifest = Manifest::default_signer(secret.verifying_key().to_bytes());
                let key = manifest.hash();
                match Verifier::new(key, Some(&manifest)) {
                    Ok(v) => v,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ManifestSigner, Prologue};

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

    fn v1(secret: &SigningKey) -> (Manifest, [u8; 32]) {
        let m = Manifest::default_signer(secret.verifying_key().to_bytes());
        let key = m.hash();
        (m, key)
    }

    #[test]
    fn manifest_signatures_are_68_byte_containers_over_the_112_byte_signable() {
        let secret = SigningKey::from_bytes(&[7; 32]);
        let (manifest, key) = v1(&secret);
        let signer = Signer::new(key, &manifest, secret.clone()).unwrap();
        let verifier = Verifier::new(key, Some(&manifest)).unwrap();
        let roots = [Node::leaf(0, b"a")];
        let sig = signer.sign(&roots, 1, 0);
        assert_eq!(sig.len(), 68);
        let raw = secret.sign(&tree_signable(&key, &tree_hash(&roots), 1, 0));
        assert_eq!(sig[2..66], raw.to_bytes());
        assert_eq!(verifier.check(&roots, 1, 0, &sig), Ok(()));
        // The raw signature alone is refused, and so is the legacy form.
        assert!(!verifier.verify(&roots, 1, 0, &raw.to_bytes()));
        let legacy = Signer::Ed25519Legacy(secret.clone()).sign(&roots, 1, 0);
        assert!(!verifier.verify(&roots, 1, 0, &legacy));
        // Other length, fork, tree, signer index, patch: refused.
        assert!(!verifier.verify(&roots, 2, 0, &sig));
        assert!(!verifier.verify(&roots, 1, 1, &sig));
        assert!(!verifier.verify(&[Node::leaf(0, b"b")], 1, 0, &sig));
        let mut other_index = sig.clone();
        other_index[1] = 1;
        assert!(!verifier.verify(&roots, 1, 0, &other_index));
        let mut patched = sig.clone();
        patched[66] = 1;
        assert!(matches!(
            verifier.check(&roots, 1, 0, &patched),
            Err(VerifyError::Invalid(r)) if r.contains("does not allow patches")
        ));
        for i in 0..sig.len() {
            let mut bad = sig.clone();
            bad[i] ^= 0x40;
            assert!(!verifier.verify(&roots, 1, 0, &bad), "byte {i}");
        }
        // A compat manifest (signer key = core key) verifies legacy signatures.
        let pk = secret.verifying_key().to_bytes();
        let compat = Verifier::new(pk, Some(&Manifest::default_signer(pk))).unwrap();
        assert!(compat.verify(&roots, 1, 0, &legacy));
        assert!(!compat.verify(&roots, 1, 0, &sig));
    }

    /// The tree hash, 112-byte signable and stored signature of JS hypercore 11.39.5's
    /// golden core (seed 00..1f, entries "a", "b", "c") at each length, byte for byte.
    #[test]
    fn golden_signables_and_signatures_match_js() {
        let golden: serde_json::Value =
            serde_json::from_str(include_str!("../tests/golden/manifest/vectors.json")).unwrap();
        let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let secret = SigningKey::from_bytes(&std::array::from_fn(|i| i as u8));
        let (manifest, key) = v1(&secret);
        assert_eq!(golden["key"], hex(&key));
        let signer = Signer::new(key, &manifest, secret).unwrap();
        let verifier = Verifier::new(key, Some(&manifest)).unwrap();
        let mut leaves = Vec::new();
        for (seq, (entry, at)) in golden["entries"]
            .as_array()
            .unwrap()
            .iter()
            .zip(golden["lengths"].as_array().unwrap())
            .enumerate()
        {
            leaves.push(Node::leaf(seq as u64, entry.as_str().unwrap().as_bytes()));
            let length = seq as u64 + 1;
            let roots: Vec<Node> = crate::crypto::root_indexes(length)
                .into_iter()
                .map(|index| build(&leaves, index))
                .collect();
            let hash = tree_hash(&roots);
            assert_eq!(at["treeHash"], hex(&hash), "length {length}");
            assert_eq!(
                at["signable"],
                hex(&tree_signable(&key, &hash, length, 0)),
                "length {length}"
            );
            let sig = signer.sign(&roots, length, 0);
            assert_eq!(at["signature"], hex(&sig), "length {length}");
            assert!(verifier.verify(&roots, length, 0, &sig));
        }
    }

    /// Node `index` of the tree over `leaves`.
    fn build(leaves: &[Node], index: u64) -> Node {
        if index.is_multiple_of(2) {
            return leaves[(index / 2) as usize];
        }
        let (left, right) = flat_tree::children(index).unwrap();
        Node::parent(&build(leaves, left), &build(leaves, right)).unwrap()
    }

    #[test]
    fn pending_accepts_legacy_signatures_only() {
        let secret = SigningKey::from_bytes(&[7; 32]);
        let (manifest, key) = v1(&secret);
        let roots = [Node::leaf(0, b"a")];
        let sig = Signer::new(key, &manifest, secret.clone())
            .unwrap()
            .sign(&roots, 1, 0);
        let pending = Verifier::new(key, None).unwrap();
        assert_eq!(
            pending.check(&roots, 1, 0, &sig),
            Err(VerifyError::ManifestMissing)
        );
        let pk = secret.verifying_key().to_bytes();
        let legacy = Signer::Ed25519Legacy(secret).sign(&roots, 1, 0);
        let pending = Verifier::new(pk, None).unwrap();
        assert_eq!(pending.check(&roots, 1, 0, &legacy), Ok(()));
        assert_eq!(
            pending.check(&roots, 2, 0, &legacy),
            Err(VerifyError::ManifestMissing)
        );
    }

    #[test]
    fn quorum_prologue_and_unknown_signers() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let signer = |k: &SigningKey| ManifestSigner {
            signature: SignatureAlgo::Ed25519,
            namespace: [0; 32],
            public_key: k.verifying_key().to_bytes(),
        };
        let roots = [Node::leaf(0, b"a"), Node::leaf(2, b"c")];
        let mut manifest = Manifest::default_signer([0; 32]);
        manifest.signers = vec![signer(&a), signer(&b)];
        manifest.quorum = 2;
        let key = manifest.hash();
        let verifier = Verifier::new(key, Some(&manifest)).unwrap();
        let part = |k: &SigningKey| k.sign(&tree_signable(&key, &tree_hash(&roots), 3, 0));
        let both = MultiSignature {
            proofs: vec![
                crate::multisig::MultisigProof {
                    signer: 1,
                    signature: part(&b).to_bytes(),
                    patch: 0,
                },
                crate::multisig::MultisigProof {
                    signer: 0,
                    signature: part(&a).to_bytes(),
                    patch: 0,
                },
            ],
            patch: vec![],
        };
        assert!(verifier.verify(&roots, 3, 0, &both.encode()));
        let mut twice = both.clone();
        twice.proofs[1] = twice.proofs[0].clone();
        assert!(!verifier.verify(&roots, 3, 0, &twice.encode()));
        let mut one = both.clone();
        one.proofs.pop();
        assert!(!verifier.verify(&roots, 3, 0, &one.encode()));
        let mut unknown = both;
        unknown.proofs[0].signer = 7;
        assert!(!verifier.verify(&roots, 3, 0, &unknown.encode()));
        // Quorum 2: no lone signer can write.
        assert!(Signer::new(key, &manifest, a.clone()).is_none());

        // A prologue of length 3 fixes that tree by hash, with no signature.
        let mut with_prologue = Manifest::default_signer(a.verifying_key().to_bytes());
        with_prologue.prologue = Some(Prologue {
            hash: tree_hash(&roots),
            length: 3,
        });
        let key = with_prologue.hash();
        let verifier = Verifier::new(key, Some(&with_prologue)).unwrap();
        assert!(verifier.verify(&roots, 3, 0, &[]));
        assert!(!verifier.verify(&roots[..1], 1, 0, &[]));
        assert_eq!(verifier.manifest(), Some(&with_prologue));
        // The prologue's signature is not checked, but it is stored: bounded.
        let bound = MultiSignature::max_len(1);
        assert!(verifier.verify(&roots, 3, 0, &vec![0; bound]));
        let refused = verifier.check(&roots, 3, 0, &vec![0; bound + 1]);
        assert!(
            matches!(&refused, Err(VerifyError::Invalid(why)) if why.contains("prologue")),
            "{refused:?}"
        );
    }

    #[test]
    fn only_the_canonical_container_of_exactly_the_quorum_verifies() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let manifest = Manifest::default_signer(a.verifying_key().to_bytes());
        let key = manifest.hash();
        let verifier = Verifier::new(key, Some(&manifest)).unwrap();
        let roots = [Node::leaf(0, b"a")];
        let signature = a.sign(&tree_signable(&key, &tree_hash(&roots), 1, 0));
        let good = MultiSignature::single(0, signature.to_bytes()).encode();
        assert!(verifier.verify(&roots, 1, 0, &good));
        let mut padded = good.clone();
        padded.push(0);
        let mut two = MultiSignature::single(0, signature.to_bytes());
        two.proofs.push(two.proofs[0].clone());
        let mut noded = MultiSignature::single(0, signature.to_bytes());
        noded.patch.push(Node::leaf(0, b"x"));
        let mut long_index = vec![1, 0xfd, 0, 0];
        long_index.extend_from_slice(&good[2..]);
        for (what, bytes) in [
            ("padded", padded),
            ("two proofs", two.encode()),
            ("a patch node", noded.encode()),
            ("a non-minimal index", long_index),
        ] {
            let refused = verifier.check(&roots, 1, 0, &bytes);
            assert!(
                matches!(refused, Err(VerifyError::Invalid(_))),
                "{what}: {refused:?}"
            );
        }
    }
}
