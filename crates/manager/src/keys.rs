//! Corestore-compatible keys: the store's primary key and each log's derived key pair.
//!
//! Matches JS corestore (6.x and 7.x): a log's ed25519 seed is
//! `blake2b-256(key = primary key, NS || namespace || name)` with
//! `NS = blake2b-256(blake2b-256("corestore") || 0x00)` (hypercore-crypto's
//! `namespace('corestore', 1)[0]`) and the default namespace of 32 zero bytes; the seed is
//! the ed25519 secret key. The same primary key and name give the same public key in both
//! runtimes (golden vectors from the real JS corestore in `tests/golden/`).
//!
//! Files, all in `keys/` (mode 0600 inside a 0700 directory on Unix, written atomically):
//! `keys/primary-key` (32 raw bytes, the format of JS corestore 6's `primary-key`) and
//! `keys/<log>.key` (64 bytes: seed then public key, libsodium's secret-key layout).
//! Nothing secret of ours is kept under `corestore/`: JS corestore opens that directory
//! when given the key explicitly (`new Corestore(dir, { primaryKey })`). Stores of the
//! earlier layout, with the key at `corestore/primary-key`, are migrated on open
//! (`load_or_migrate_primary_key` says how, including the crash cases).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::{Blake2b, Digest};
use nova_hypercore_managed_core::SigningKey;
use nova_hypercore_serialization::{HypercoreError, LogName};

/// Corestore's default namespace: 32 zero bytes.
pub const DEFAULT_NAMESPACE: [u8; 32] = [0; 32];

/// `namespace('corestore', 1)[0]` of hypercore-crypto.
fn corestore_ns() -> [u8; 32] {
    let base = Blake2b::<U32>::digest(b"corestore");
    let mut h = Blake2b::<U32>::new();
    h.update(base);
    h.update([0u8]);
    h.finalize().into()
}

/// The ed25519 key pair corestore derives for `name` in `namespace`.
pub fn derive_key_pair(primary_key: &[u8; 32], namespace: &[u8; 32], name: &str) -> SigningKey {
    // Any key of up to 64 bytes is valid for keyed blake2b; 32 always is.
    let mut mac = match <blake2::Blake2bMac<U32> as KeyInit>::new_from_slice(primary_key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("blake2b accepts 32-byte keys"),
    };
    mac.update(&corestore_ns());
    mac.update(namespace);
    mac.update(name.as_bytes());
    let seed: [u8; 32] = mac.finalize().into_bytes().into();
    SigningKey::from_bytes(&seed)
}

/// Directory of a log inside `corestore/`: `cores/<dk[0..2]>/<dk[2..4]>/<dk>` in hex,
/// the layout of JS corestore 6.
pub fn core_dir(corestore: &Path, discovery_key: &[u8; 32]) -> PathBuf {
    let hex = hex(discovery_key);
    corestore
        .join("cores")
        .join(&hex[0..2])
        .join(&hex[2..4])
        .join(&hex)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn inaccessible(path: &Path, source: std::io::Error) -> HypercoreError {
    HypercoreError::StorageInaccessible {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` (and parents) and, on Unix, restricts it to the owner (0700).
pub(crate) fn private_dir(dir: &Path) -> Result<(), HypercoreError> {
    std::fs::create_dir_all(dir).map_err(|e| inaccessible(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| inaccessible(dir, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the
/// directory), readable by the owner only on Unix.
pub(crate) fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), HypercoreError> {
    write_secret_file_at(path, bytes, None, true)
}

/// [`write_secret_file`], giving the new file the modification time `modified` (a
/// migrated primary key keeps its age: it is the store's creation time); the directory
/// is synced only when `sync_parent` (else the caller syncs it later, [`sync_keys_dir`]).
fn write_secret_file_at(
    path: &Path,
    bytes: &[u8],
    modified: Option<SystemTime>,
    sync_parent: bool,
) -> Result<(), HypercoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| inaccessible(&tmp, e))?;
    #[cfg(unix)]
    {
        // `mode` applies only when the file is created; a temp file left by a crash
        // (or made by someone else) keeps its mode unless it is set here.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| inaccessible(&tmp, e))?;
    }
    file.write_all(bytes).map_err(|e| inaccessible(&tmp, e))?;
    if let Some(t) = modified {
        file.set_modified(t).map_err(|e| inaccessible(&tmp, e))?;
    }
    file.sync_all().map_err(|e| inaccessible(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| inaccessible(path, e))?;
    if sync_parent {
        sync_dir(dir);
    }
    Ok(())
}

/// Makes the key files written by [`ensure_key_file`] without their directory sync
/// durable: one directory `fsync` for all of them (the store's close).
pub(crate) fn sync_keys_dir(keys_dir: &Path) {
    sync_dir(keys_dir);
}

/// Makes renames and removals in `dir` durable; not every file system supports a
/// directory fsync, so a failure is ignored.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// File name of the store's primary key, in `keys/` (and, in stores written before the
/// key moved, in `corestore/`, where JS corestore 6 keeps it).
pub const PRIMARY_KEY_FILE: &str = "primary-key";

/// Reads a primary-key file: `None` if it does not exist, `STORAGE_CORRUPTED` naming the
/// file if it does not hold exactly 32 bytes.
/// Reads a small file, at most `limit + 1` bytes of it: whatever size the file claims,
/// no more than that is allocated (a longer file is wrong anyway, and the caller says so).
fn read_small(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// How a key file of unexpected size is described (its real size when it is longer
/// than what was read).
fn size_of(path: &Path, read: &[u8], limit: u64) -> String {
    if read.len() as u64 > limit {
        match std::fs::metadata(path) {
            Ok(m) => format!("{} bytes", m.len()),
            Err(_) => format!("more than {limit} bytes"),
        }
    } else {
        format!("{} bytes", read.len())
    }
}

fn read_primary_key(path: &Path) -> Result<Option<[u8; 32]>, HypercoreError> {
    match read_small(path, 32) {
        Ok(bytes) => {
            bytes
                .as_slice()
                .try_into()
                .map(Some)
                .map_err(|_| HypercoreError::StorageCorrupted {
                    log: "store".into(),
                    path: path.to_owned(),
                    reason: format!(
                        "primary key file holds {}, expected 32",
                        size_of(path, &bytes, 32)
                    ),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(inaccessible(path, e)),
    }
}

/// Removes the old `corestore/primary-key` (after its bytes are safely in `keys/`) and
/// makes the removal durable.
fn remove_old_primary_key(old: &Path) -> Result<(), HypercoreError> {
    match std::fs::remove_file(old) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(inaccessible(old, e)),
    }
    sync_dir(old.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Loads the store's primary key from `keys/primary-key`, migrating a store of the old
/// layout (key in `corestore/primary-key`) or creating a random key for a new store.
///
/// - only `keys/primary-key`: used;
/// - only `corestore/primary-key` (old layout): copied to `keys/primary-key` atomically
///   (temp file, fsync, rename, fsync of `keys/`, same modification time), then removed
///   from `corestore/` (and `corestore/` fsynced);
/// - both, equal bytes (a crash between those two steps, or JS corestore given the key
///   explicitly, which writes it there): the copy in `corestore/` is removed;
/// - both, different bytes: `STORAGE_CORRUPTED` naming both files; neither is picked,
///   since logs derived from the other key would silently stop matching;
/// - neither: a new random key is written to `keys/primary-key`.
///
/// A file of the wrong size is `STORAGE_CORRUPTED` naming it; I/O failures are
/// `STORAGE_INACCESSIBLE` with the path.
pub(crate) fn load_or_migrate_primary_key(
    keys_dir: &Path,
    corestore: &Path,
) -> Result<[u8; 32], HypercoreError> {
    let new = keys_dir.join(PRIMARY_KEY_FILE);
    let old = corestore.join(PRIMARY_KEY_FILE);
    match (read_primary_key(&new)?, read_primary_key(&old)?) {
        (Some(key), None) => Ok(key),
        (Some(key), Some(stale)) if key == stale => {
            remove_old_primary_key(&old)?;
            Ok(key)
        }
        (Some(_), Some(_)) => Err(HypercoreError::StorageCorrupted {
            log: "store".into(),
            path: old.clone(),
            reason: format!(
                "two different primary keys: {} and {}; the store's logs derive from one of them, \
                 so neither is chosen: keep the one the logs were created with and remove the other",
                new.display(),
                old.display()
            ),
        }),
        (None, Some(key)) => {
            let modified = std::fs::metadata(&old).and_then(|m| m.modified()).ok();
            write_secret_file_at(&new, &key, modified, true)?;
            remove_old_primary_key(&old)?;
            Ok(key)
        }
        (None, None) => {
            let mut key = [0u8; 32];
            getrandom::getrandom(&mut key)
                .map_err(|e| inaccessible(&new, std::io::Error::other(e.to_string())))?;
            write_secret_file(&new, &key)?;
            Ok(key)
        }
    }
}

/// Makes sure `keys/<name>.key` holds `key`: writes it if missing, and reports a file
/// that holds another key as `STORAGE_CORRUPTED` (it does not belong to this log).
/// Returns whether a file was written whose directory entry is not synced yet: with
/// `sync_dir` false the new file's contents are synced before its rename (so it is
/// never seen short or empty) but `keys/` is not, and the caller syncs it later with
/// [`sync_keys_dir`] (the manager does at its close, in `Durability::Flush`).
///
/// Why that is enough there: the key is derived from the primary key and the name,
/// so the file only records that the log is ours (`existing_log`) and checks the
/// primary key. If a power cut loses the rename, the name has no key file until the
/// next `get_log` writes it again; a log created in `Flush` since the last clean close
/// has no guarantee of surviving a power cut anyway (its own directory entries are
/// not synced either). Deletion marks (`<log>.deleted`) and the primary key keep
/// their directory sync.
pub(crate) fn ensure_key_file(
    keys_dir: &Path,
    name: &LogName,
    key: &SigningKey,
    sync_dir: bool,
) -> Result<bool, HypercoreError> {
    let path = keys_dir.join(format!("{name}.key"));
    let mut expected = Vec::with_capacity(64);
    expected.extend_from_slice(&key.to_bytes());
    expected.extend_from_slice(key.verifying_key().as_bytes());
    match read_small(&path, 64) {
        Ok(stored) if stored == expected => Ok(false),
        Ok(stored) => Err(HypercoreError::StorageCorrupted {
            log: name.to_string(),
            reason: format!(
                "key file ({}) does not match the key derived for this log from the store's primary key",
                size_of(&path, &stored, 64)
            ),
            path,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_secret_file_at(&path, &expected, None, sync_dir)?;
            Ok(!sync_dir)
        }
        Err(e) => Err(inaccessible(&path, e)),
    }
}

/// The mark `keys/<log>.deleted` that [`crate::HypercoreManager::delete_log`] leaves
/// for a deleted log of our own: its key pair derives from the name, so a new log of
/// that name would sign a second history with the same key, which peers holding the
/// old one would see as a fork. `get_log` refuses a name so marked.
pub(crate) fn tombstone_path(keys_dir: &Path, name: &LogName) -> PathBuf {
    keys_dir.join(format!("{name}.deleted"))
}

/// Marks `name` deleted (atomically, durably), before its files go.
pub(crate) fn write_tombstone(keys_dir: &Path, name: &LogName) -> Result<(), HypercoreError> {
    write_secret_file(&tombstone_path(keys_dir, name), b"deleted\n")
}

/// `UNAUTHORIZED` when the log `name` of our own was deleted (see [`tombstone_path`]).
pub(crate) fn check_not_deleted(keys_dir: &Path, name: &LogName) -> Result<(), HypercoreError> {
    let path = tombstone_path(keys_dir, name);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => Err(HypercoreError::Unauthorized {
            log: Some(name.to_string()),
            reason: format!(
                "log {name} was deleted ({}): its key derives from the name, and a new log under it would sign a second history with the same key; use another name",
                path.display()
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(inaccessible(&path, e)),
    }
}

/// Removes `path` if it exists.
pub(crate) fn remove_file_if_any(path: &Path) -> Result<(), HypercoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            sync_dir(path.parent().unwrap_or(Path::new(".")));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(inaccessible(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Different names and primary keys give different keys (JS equality: tests/golden).
    #[test]
    fn namespace_is_deterministic_and_distinct() {
        assert_ne!(corestore_ns(), [0u8; 32]);
        assert_eq!(corestore_ns(), corestore_ns());
        let a = derive_key_pair(&[1; 32], &DEFAULT_NAMESPACE, "a");
        let b = derive_key_pair(&[1; 32], &DEFAULT_NAMESPACE, "b");
        let a2 = derive_key_pair(&[2; 32], &DEFAULT_NAMESPACE, "a");
        assert_ne!(a.verifying_key(), b.verifying_key());
        assert_ne!(a.verifying_key(), a2.verifying_key());
    }
}
