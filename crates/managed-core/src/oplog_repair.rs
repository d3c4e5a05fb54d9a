//! Drops oplog entries that `hypercore` 0.17.0-alpha.1 writes but cannot read back.
//!
//! The crate's `Entry::decode` tests flag bit 2 ("has tree nodes") where it means bit 4
//! ("has a tree upgrade") and bit 8 ("has a bitfield update"). So it reads back only
//! entries that carry all three (every local append) or none. A replica writes entries
//! with nodes and a bitfield update but no upgrade for every block it receives; until the
//! next header flush (every few operations) those sit in the oplog, and if the process
//! stops then (crash, kill, or a plain close) the log cannot be opened again ("Could not
//! take [1] bytes from buffer of length [0]").
//!
//! The repair cuts the oplog at the first entry the crate would misread, exactly as it
//! treats a torn tail. Entries are only the operations since the last flush, and the
//! tree and bitfield files hold the state before them, so the log is consistent at that
//! earlier point: a replica re-fetches the blocks whose records were dropped. A writer's
//! own appends are never affected (they always carry all three parts). Upstream fix: test
//! bits 4 and 8 in `oplog/entry.rs` `Entry::decode`.
//!
//! It also drops entries left over from a superseded header: a header flush writes the
//! new header, then truncates the entries; a crash in between leaves old entries (with
//! the old header bit) that the crate would replay on top of the new header (JS hypercore
//! ignores entries whose header bit is not the current one; the crate does not check).
//!
//! Layout (hypercore 10 oplog): two 4096-byte header slots, then entries, each a leader
//! of crc32 (u32 LE, over the rest of the leader and the entry) and `len << 2 | partial
//! << 1 | header` (u32 LE), then `len` bytes whose first byte is the entry's flags.

use std::path::Path;

const ENTRIES_OFFSET: usize = 2 * 4096;
const LEADER: usize = 8;
/// Flag bits for tree nodes, tree upgrade and bitfield update.
const PARTS: u8 = 0b1110;

/// What a repair removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Repair {
    /// Entries dropped (the unreadable one and every entry after it).
    pub(crate) entries: usize,
    /// Bytes the oplog shrank by.
    pub(crate) bytes: usize,
}

/// The header bit of the header slot at `at`, if the slot holds a valid header.
fn slot_bit(oplog: &[u8], at: usize) -> Option<bool> {
    let leader = oplog.get(at..at + LEADER)?;
    let crc = u32::from_le_bytes([leader[0], leader[1], leader[2], leader[3]]);
    let combined = u32::from_le_bytes([leader[4], leader[5], leader[6], leader[7]]);
    let len = (combined >> 2) as usize;
    if len == 0 || len > 4096 - LEADER {
        return None;
    }
    let hashed = oplog.get(at + 4..at + LEADER + len)?;
    (crc32fast::hash(hashed) == crc).then_some(combined & 1 == 1)
}

/// The header bit current entries carry: the two slots' bits differ (as the crate and
/// JS hypercore define it), or `None` when there is no valid header.
fn current_header_bit(oplog: &[u8]) -> Option<bool> {
    match (slot_bit(oplog, 0), slot_bit(oplog, 4096)) {
        (Some(a), Some(b)) => Some(a != b),
        (Some(_), None) => Some(false),
        (None, Some(_)) => Some(true),
        (None, None) => None,
    }
}

/// Where the readable entries end, and how many entries follow (None: all readable).
fn readable_end(oplog: &[u8]) -> Option<(usize, usize)> {
    let current = current_header_bit(oplog);
    let mut at = ENTRIES_OFFSET;
    let mut cut = None;
    let mut after = 0;
    while oplog.len() >= at + LEADER {
        let crc = u32::from_le_bytes([oplog[at], oplog[at + 1], oplog[at + 2], oplog[at + 3]]);
        let combined =
            u32::from_le_bytes([oplog[at + 4], oplog[at + 5], oplog[at + 6], oplog[at + 7]]);
        let len = (combined >> 2) as usize;
        if len == 0 || oplog.len() < at + LEADER + len {
            break; // a torn tail: the crate ignores it
        }
        if crc32fast::hash(&oplog[at + 4..at + LEADER + len]) != crc {
            cut.get_or_insert(at); // the crate would refuse the whole oplog
            after += 1;
            break;
        }
        let flags = oplog[at + LEADER];
        let parts = flags & PARTS;
        let stale = current.is_some_and(|bit| bit != (combined & 1 == 1));
        if cut.is_some() || stale || (parts != 0 && parts != PARTS) {
            cut.get_or_insert(at);
            after += 1;
        }
        at += LEADER + len;
    }
    cut.map(|c| (c, after))
}

/// Checks the oplog at `path` and cuts unreadable entries off. `Ok(None)`: nothing to do.
pub(crate) fn repair(path: &Path) -> std::io::Result<Option<Repair>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some((cut, entries)) = readable_end(&bytes) else {
        return Ok(None);
    };
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(cut as u64)?;
    file.sync_all()?;
    Ok(Some(Repair {
        entries,
        bytes: bytes.len() - cut,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(flags: u8, body: usize) -> Vec<u8> {
        let mut data = vec![flags];
        data.extend(std::iter::repeat_n(7u8, body));
        let combined = (data.len() as u32) << 2;
        let mut hashed = combined.to_le_bytes().to_vec();
        hashed.extend_from_slice(&data);
        let mut out = crc32fast::hash(&hashed).to_le_bytes().to_vec();
        out.extend_from_slice(&hashed);
        out
    }

    fn oplog(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0u8; ENTRIES_OFFSET];
        for e in entries {
            out.extend_from_slice(e);
        }
        out
    }

    fn header(bit: bool) -> Vec<u8> {
        let data = vec![1u8, 2, 3];
        let combined = ((data.len() as u32) << 2) | u32::from(bit);
        let mut hashed = combined.to_le_bytes().to_vec();
        hashed.extend_from_slice(&data);
        let mut out = crc32fast::hash(&hashed).to_le_bytes().to_vec();
        out.extend_from_slice(&hashed);
        out
    }

    #[test]
    fn entries_of_a_superseded_header_are_dropped() {
        let mut log = oplog(&[entry(0b1110, 5), entry(0b1110, 5)]);
        // Slots [true, false]: the current bit is true, entries carry false: stale.
        log[..11].copy_from_slice(&header(true));
        log[4096..4096 + 11].copy_from_slice(&header(false));
        assert_eq!(current_header_bit(&log), Some(true));
        assert_eq!(readable_end(&log), Some((ENTRIES_OFFSET, 2)));
        // Slots [false, false]: current bit false, the entries are current.
        log[..11].copy_from_slice(&header(false));
        assert_eq!(readable_end(&log), None);
    }

    #[test]
    fn keeps_readable_entries_and_cuts_at_the_first_unreadable_one() {
        let good = entry(0b1110, 20);
        let block_only = entry(0b1010, 10);
        assert_eq!(readable_end(&oplog(&[good.clone(), good.clone()])), None);
        let log = oplog(&[good.clone(), block_only, good.clone()]);
        assert_eq!(readable_end(&log), Some((ENTRIES_OFFSET + good.len(), 2)));
        // A torn tail is left to the crate, which ignores it.
        let mut torn = oplog(std::slice::from_ref(&good));
        torn.extend_from_slice(&good[..good.len() - 3]);
        assert_eq!(readable_end(&torn), None);
        // A checksum mismatch would make the crate refuse everything: cut there.
        let mut bad = good.clone();
        bad[LEADER + 2] ^= 1;
        assert_eq!(
            readable_end(&oplog(&[good.clone(), bad])),
            Some((ENTRIES_OFFSET + good.len(), 1))
        );
    }
}
