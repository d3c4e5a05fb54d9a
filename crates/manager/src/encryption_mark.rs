//! The mark an encrypted log leaves in its directory, so that the key, which is never
//! stored, is not forgotten silently: `nova-encryption.json`
//! (`{"version":1,"check":"<64 hex>"}`), written the first time the log is opened with
//! its key ([`crate::HypercoreManager::get_log_encrypted`],
//! [`crate::HypercoreManager::open_replica_encrypted`]), next to the hypercore files
//! (JS hypercore ignores it, as it ignores `nova-replica.json`).
//!
//! `check` is BLAKE2b-256 of a domain string, the core key and the encryption key: it
//! tells whether a later key is the same one (a typo is refused with `UNAUTHORIZED`
//! instead of writing or reading garbage) and reveals nothing usable about the key. A
//! log marked this way opened without a key still opens (a seeder's view: it verifies
//! and serves the ciphertext, reads return it), but refuses appends: a forgotten
//! `--encryption-key` would otherwise store and serve plaintext in an encrypted log.
//!
//! Must not: hold the key, or anything derived from it that decrypts.

use std::io::Read;
use std::path::Path;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use nova_hypercore_managed_core::encryption::EncryptionKey;
use nova_hypercore_serialization::{HypercoreError, LogName};
use serde::{Deserialize, Serialize};

use crate::keys;

/// The mark's file name in a log's directory.
pub(crate) const MARK_FILE: &str = "nova-encryption.json";
const MARK_VERSION: u32 = 1;
/// Largest mark read; a longer one is corrupt.
const MARK_MAX_BYTES: u64 = 4096;
/// Domain of the check value.
const CHECK_DOMAIN: &[u8] = b"nova-hypercore encryption key check v1";

#[derive(Debug, Serialize, Deserialize)]
struct Mark {
    version: u32,
    check: String,
}

/// The check value of `key` for the log `core_key`, hex.
fn check_value(core_key: &[u8; 32], key: &EncryptionKey) -> String {
    let mut hash = Blake2b::<U32>::new();
    hash.update(CHECK_DOMAIN);
    hash.update(core_key);
    hash.update(key.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Settles the mark of log `name` in `dir` at open: with `key`, writes the mark if
/// there is none and refuses (`UNAUTHORIZED`) a key whose check differs; without, only
/// reads it. Returns whether the log is marked encrypted.
///
/// Errors: `UNAUTHORIZED` (another key), `STORAGE_CORRUPTED` (a mark that does not
/// parse), `STORAGE_INACCESSIBLE` (I/O).
pub(crate) fn settle(
    dir: &Path,
    name: &LogName,
    core_key: &[u8; 32],
    key: Option<&EncryptionKey>,
) -> Result<bool, HypercoreError> {
    let path = dir.join(MARK_FILE);
    let stored = load(&path, name)?;
    let Some(key) = key else {
        return Ok(stored.is_some());
    };
    let check = check_value(core_key, key);
    match stored {
        Some(mark) if mark.check == check => Ok(true),
        Some(_) => Err(HypercoreError::Unauthorized {
            log: Some(name.to_string()),
            reason: format!(
                "log {name} is encrypted with another key than the one given ({} records its key's check value)",
                path.display()
            ),
        }),
        None => {
            let mark = Mark {
                version: MARK_VERSION,
                check,
            };
            let bytes =
                serde_json::to_vec(&mark).map_err(|e| HypercoreError::StorageInaccessible {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            keys::write_secret_file(&path, &bytes)?;
            Ok(true)
        }
    }
}

fn load(path: &Path, name: &LogName) -> Result<Option<Mark>, HypercoreError> {
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MARK_MAX_BYTES + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HypercoreError::StorageInaccessible {
                path: path.to_owned(),
                source,
            });
        }
    }
    let corrupted = |reason: String| HypercoreError::StorageCorrupted {
        log: name.to_string(),
        path: path.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MARK_MAX_BYTES {
        return Err(corrupted(format!(
            "encryption mark longer than {MARK_MAX_BYTES} bytes"
        )));
    }
    let mark: Mark = serde_json::from_slice(&bytes)
        .map_err(|e| corrupted(format!("not an encryption mark: {e}")))?;
    if mark.version != MARK_VERSION {
        return Err(corrupted(format!(
            "unknown encryption mark version {} (expected {MARK_VERSION})",
            mark.version
        )));
    }
    Ok(Some(mark))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_written_once_and_checks_later_keys() {
        let dir = tempfile::tempdir().unwrap();
        let name = LogName::parse("n").unwrap();
        let key = EncryptionKey::new(vec![3; 32]).unwrap();
        let other = EncryptionKey::new(vec![4; 32]).unwrap();
        assert!(!settle(dir.path(), &name, &[1; 32], None).unwrap());
        assert!(settle(dir.path(), &name, &[1; 32], Some(&key)).unwrap());
        assert!(settle(dir.path(), &name, &[1; 32], Some(&key)).unwrap());
        assert!(settle(dir.path(), &name, &[1; 32], None).unwrap());
        let err = settle(dir.path(), &name, &[1; 32], Some(&other)).unwrap_err();
        assert!(
            matches!(err, HypercoreError::Unauthorized { .. }),
            "{err:?}"
        );
        let written = std::fs::read_to_string(dir.path().join(MARK_FILE)).unwrap();
        assert!(
            !written.contains("0303"),
            "the key is not in the mark: {written}"
        );
        std::fs::write(dir.path().join(MARK_FILE), b"{").unwrap();
        let err = settle(dir.path(), &name, &[1; 32], None).unwrap_err();
        assert!(
            matches!(err, HypercoreError::StorageCorrupted { .. }),
            "{err:?}"
        );
    }
}
