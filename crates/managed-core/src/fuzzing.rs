//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): the crate-private
//! decoders a peer's or a file's bytes reach, each run the way the core runs it.
//!
//! Owns: nothing of the product. Must not: be used by product code (hidden from the
//! docs; every function here only decodes and checks, it writes nothing). Used by:
//! `fuzz/src/lib.rs` only (the targets and their seed generator).

use ed25519_dalek::{Signer as _, SigningKey};

use crate::crypto::{Node, tree_hash, tree_signable};
use crate::manifest::{Manifest, ManifestSigner, SignatureAlgo};
use crate::multisig::{MultiSignature, MultisigProof};
use crate::oplog::{self, Entry, Header};
use crate::verifier::Verifier;

/// Three fixed signer keys (the manifests below are built from them).
fn keys() -> [SigningKey; 3] {
    [1u8, 2, 3].map(|b| SigningKey::from_bytes(&[b; 32]))
}

fn signer(key: &SigningKey) -> ManifestSigner {
    ManifestSigner {
        signature: SignatureAlgo::Ed25519,
        namespace: [0; 32],
        public_key: key.verifying_key().to_bytes(),
    }
}

/// The manifests the multisig target verifies under: one signer (hypercore 11's
/// default) and two of three signers, with and without patches allowed.
fn manifests() -> Vec<Manifest> {
    let keys = keys();
    let single = Manifest::default_signer(keys[0].verifying_key().to_bytes());
    let mut two_of_three = single.clone();
    two_of_three.signers = keys.iter().map(signer).collect();
    two_of_three.quorum = 2;
    let mut patched = two_of_three.clone();
    patched.allow_patch = true;
    vec![single, two_of_three, patched]
}

/// The tree every multisig signature signs: three leaves.
fn roots() -> [Node; 2] {
    [Node::leaf(0, b"a"), Node::leaf(2, b"c")]
}

/// The target's manifests with their verifiers, built once (deriving the signers'
/// public keys is most of the cost of building them).
fn verifiers() -> &'static [Verifier] {
    static VERIFIERS: std::sync::OnceLock<Vec<Verifier>> = std::sync::OnceLock::new();
    VERIFIERS.get_or_init(|| {
        manifests()
            .iter()
            .filter_map(|m| Verifier::new(m.hash(), Some(m)).ok())
            .collect()
    })
}

/// Verifies `signature` (a multisig container as a peer sends it in an upgrade) under
/// each of the target's manifests; returns how many accepted it. Never panics on any
/// input (that is the property the fuzzer checks), and a container that verifies must
/// be the canonical encoding of what it decodes to.
pub fn multisig(signature: &[u8]) -> usize {
    let roots = roots();
    let mut accepted = 0;
    for verifier in verifiers() {
        if verifier.verify(&roots, 3, 0, signature) {
            accepted += 1;
            let decoded = MultiSignature::decode(signature);
            assert!(
                decoded.is_ok_and(|d| d.encode() == signature),
                "a non-canonical container verified"
            );
        }
    }
    accepted
}

/// Valid containers for [`multisig`]: one per manifest (seeds for the fuzzer).
pub fn multisig_seeds() -> Vec<Vec<u8>> {
    let keys = keys();
    let roots = roots();
    manifests()
        .iter()
        .map(|manifest| {
            let key = manifest.hash();
            let signable = tree_signable(&key, &tree_hash(&roots), 3, 0);
            let quorum = usize::try_from(manifest.quorum).unwrap_or(1);
            MultiSignature {
                proofs: keys
                    .iter()
                    .take(quorum)
                    .enumerate()
                    .map(|(i, k)| MultisigProof {
                        signer: i as u64,
                        signature: k.sign(&signable).to_bytes(),
                        patch: 0,
                    })
                    .collect(),
                patch: Vec::new(),
            }
            .encode()
        })
        .collect()
}

/// Reads `file` as a whole oplog file, as opening a core does (both header slots, CRC
/// framing, entries); `true` if it opened.
pub fn oplog_file(file: &[u8]) -> bool {
    oplog::open(file).is_ok()
}

/// Decodes `payload` as one oplog header slot's payload; `true` if it decoded.
pub fn oplog_header(payload: &[u8]) -> bool {
    Header::decode(payload).is_ok()
}

/// Decodes `payload` as one oplog entry's payload; a decoded entry must encode again
/// and decode to the same entry. `true` if it decoded.
pub fn oplog_entry(payload: &[u8]) -> bool {
    match Entry::decode(payload) {
        Ok(entry) => {
            let again = Entry::decode(&entry.encode());
            assert!(
                again.as_ref().is_ok_and(|e| e == &entry),
                "an entry did not survive encode/decode: {entry:?} -> {again:?}"
            );
            true
        }
        Err(_) => false,
    }
}

/// An oplog file with `header` (a header payload) in the first slot and `entries`
/// (entry payloads) after it, each framed with a valid CRC, so a fuzzer's bytes reach
/// the decoders and the replay instead of stopping at the checksum.
pub fn oplog_framed(header: &[u8], entries: &[&[u8]]) -> Vec<u8> {
    let mut file = Vec::new();
    oplog::push_raw_frame(&mut file, 0, false, header);
    file.resize(oplog::ENTRY_OFFSET as usize, 0);
    for entry in entries {
        oplog::push_raw_frame(&mut file, 0, false, entry);
    }
    file
}

/// The inverse of [`oplog_framed`] for a real oplog file whose current header is in
/// the first slot: the header payload and the entry payloads (seeds for the fuzzer).
pub fn oplog_payloads(file: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    oplog::raw_payloads(file)
}
