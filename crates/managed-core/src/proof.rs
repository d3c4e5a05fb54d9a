//! Merkle proofs of hypercore 10: creating them for peers and verifying what peers send.
