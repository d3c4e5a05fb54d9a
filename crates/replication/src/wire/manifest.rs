//! The extent of an encoded manifest inside a `data` message (`messages.js`
//! `manifest`, versions 0 to 3 as hypercore 11 decodes them).
//!
//! The manifest is the last field of `data` and is not length-prefixed, so its end is
//! found by walking its structure; the bytes are kept exactly as sent (the core key of a
//! manifest core is the hash of these bytes, checked by the core, not here).

use super::WireError;
use super::compact::Reader;

/// Bytes one signer takes: a signature algorithm id, a namespace and a public key.
const SIGNER_MIN: usize = 1 + 32 + 32;

/// Reads one encoded manifest from `r` and returns its bytes. Unknown versions, hash or
/// signature algorithms and truncated fields are errors, as in JS.
pub fn read(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    let start = r.rest();
    let version = r.uint("manifest version")?;
    if version == 0 {
        hash_id(r)?;
        match r.uint("manifest v0 type")? {
            0 => {
                r.fixed32("manifest prologue hash")?;
            }
            1 => signer(r)?,
            2 => {
                r.uint("manifest flags")?;
                r.uint("manifest quorum")?;
                signers(r)?;
            }
            other => {
                return Err(WireError::Invalid {
                    what: "manifest v0 type",
                    value: other,
                });
            }
        }
    } else if version > 3 {
        return Err(WireError::Invalid {
            what: "manifest version",
            value: version,
        });
    } else {
        let flags = r.uint("manifest flags")?;
        hash_id(r)?;
        r.uint("manifest quorum")?;
        signers(r)?;
        if flags & 2 != 0 {
            r.fixed32("manifest prologue hash")?;
            r.uint("manifest prologue length")?;
        }
        if flags & 4 != 0 {
            let n = r.array_len(32, "manifest linked")?;
            for _ in 0..n {
                r.fixed32("manifest linked")?;
            }
        }
        if flags & 8 != 0 {
            r.buffer("manifest user data")?;
        }
    }
    let used = start.len() - r.rest().len();
    Ok(start[..used].to_vec())
}

fn hash_id(r: &mut Reader<'_>) -> Result<(), WireError> {
    match r.uint("manifest hash")? {
        0 => Ok(()), // blake2b
        other => Err(WireError::Invalid {
            what: "manifest hash",
            value: other,
        }),
    }
}

fn signer(r: &mut Reader<'_>) -> Result<(), WireError> {
    match r.uint("manifest signature algorithm")? {
        0 => {} // ed25519
        other => {
            return Err(WireError::Invalid {
                what: "manifest signature algorithm",
                value: other,
            });
        }
    }
    r.fixed32("manifest signer namespace")?;
    r.fixed32("manifest signer public key")?;
    Ok(())
}

fn signers(r: &mut Reader<'_>) -> Result<(), WireError> {
    let n = r.array_len(SIGNER_MIN, "manifest signers")?;
    for _ in 0..n {
        signer(r)?;
    }
    Ok(())
}
