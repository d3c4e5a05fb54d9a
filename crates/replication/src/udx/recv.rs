//! The receiving half of a UDX stream: in-order delivery of DATA payloads, an
//! out-of-order buffer, the remote's END, SACK blocks for what is buffered, and the
//! receive window we advertise (docs/udx-protocol.md §3.1, §5).
//!
//! Bounded: every byte held (delivered but not read, or buffered out of order) counts
//! against the window, and so does a fixed overhead per buffered packet (an END-only
//! packet has no payload but is still an entry). A packet that does not fit is dropped
//! and neither acked nor SACKed (C forgets SACKed data: we must never SACK what we do
//! not keep); the sender retransmits it once we have room.

use std::collections::{BTreeMap, VecDeque};

use super::packet::{MAX_SACKS, SackBlock};

/// What each buffered packet costs beyond its payload, in window bytes.
const ENTRY_OVERHEAD: usize = 64;

/// A packet buffered out of order.
#[derive(Debug)]
struct Segment {
    payload: Vec<u8>,
    end: bool,
}

/// What became of one DATA/END packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Delivered or buffered.
    New,
    /// Already delivered or buffered (acked again all the same).
    Duplicate,
    /// No room: dropped, not acked.
    NoRoom,
    /// After the remote's END, or past any seq the remote can have sent: dropped.
    Ignored,
}

/// The receiving half.
#[derive(Debug)]
pub struct Receiver {
    /// `rcv.nxt` as an unwrapped 64-bit count: the next seq to deliver.
    next: u64,
    out_of_order: BTreeMap<u64, Segment>,
    /// Payloads delivered in order, not read yet.
    ready: VecDeque<Vec<u8>>,
    /// Window bytes in use: `ready` plus `out_of_order` (with overheads).
    held: usize,
    /// The most we hold.
    window: usize,
    /// The seq of the remote's END once received (delivered or buffered).
    remote_end: Option<u64>,
}

impl Receiver {
    /// Empty, `rcv.nxt = 0`, holding at most `window` bytes.
    pub fn new(window: usize) -> Self {
        Receiver {
            next: 0,
            out_of_order: BTreeMap::new(),
            ready: VecDeque::new(),
            held: 0,
            window,
            remote_end: None,
        }
    }

    /// `rcv.nxt` on the wire.
    pub fn ack(&self) -> u32 {
        self.next as u32
    }

    /// `seq` from the wire as the unwrapped count nearest `rcv.nxt`.
    pub fn unwrap(&self, seq: u32) -> u64 {
        unwrap_near(self.next, seq)
    }

    /// The window we advertise: bytes we can still take.
    pub fn rwnd(&self) -> u32 {
        u32::try_from(self.window.saturating_sub(self.held)).unwrap_or(u32::MAX)
    }

    /// Takes a DATA and/or END packet.
    pub fn on_data(&mut self, seq: u32, payload: &[u8], end: bool) -> Received {
        let seq = self.unwrap(seq);
        if seq < self.next || self.out_of_order.contains_key(&seq) {
            return Received::Duplicate;
        }
        if self.remote_end.is_some_and(|e| seq > e) || (end && self.remote_end.is_some()) {
            return Received::Ignored;
        }
        let cost = payload.len() + if seq == self.next { 0 } else { ENTRY_OVERHEAD };
        if self.held + cost > self.window {
            return Received::NoRoom;
        }
        if end {
            self.remote_end = Some(seq);
        }
        if seq == self.next {
            self.deliver(payload.to_vec());
            self.drain();
        } else {
            self.held += cost;
            self.out_of_order.insert(
                seq,
                Segment {
                    payload: payload.to_vec(),
                    end,
                },
            );
        }
        Received::New
    }

    fn deliver(&mut self, payload: Vec<u8>) {
        self.next += 1;
        if !payload.is_empty() {
            self.held += payload.len();
            self.ready.push_back(payload);
        }
    }

    fn drain(&mut self) {
        while let Some(segment) = self.out_of_order.remove(&self.next) {
            self.held -= segment.payload.len() + ENTRY_OVERHEAD;
            let _ = segment.end;
            self.deliver(segment.payload);
        }
    }

    /// Whether the remote's END was reached (everything before it delivered).
    pub fn remote_ended(&self) -> bool {
        self.remote_end.is_some_and(|e| self.next > e)
    }

    /// Whether everything up to the remote's END was delivered and read: end of file.
    pub fn eof(&self) -> bool {
        self.remote_ended() && self.ready.is_empty()
    }

    /// Bytes delivered and not read yet.
    pub fn readable(&self) -> usize {
        self.ready.iter().map(Vec::len).sum()
    }

    /// The next delivered payload, in order.
    pub fn read(&mut self) -> Option<Vec<u8>> {
        let payload = self.ready.pop_front()?;
        self.held -= payload.len();
        Some(payload)
    }

    /// Whether anything is buffered out of order (an ack then carries SACK blocks).
    pub fn has_gaps(&self) -> bool {
        !self.out_of_order.is_empty()
    }

    /// SACK blocks for the out-of-order buffer, ascending, at most `MAX_SACKS`.
    pub fn sacks(&self) -> Vec<SackBlock> {
        let mut blocks: Vec<SackBlock> = Vec::new();
        let mut run: Option<(u64, u64)> = None;
        for &seq in self.out_of_order.keys() {
            run = match run {
                Some((start, end)) if end == seq => Some((start, seq + 1)),
                Some((start, end)) => {
                    blocks.push(block(start, end));
                    if blocks.len() == MAX_SACKS {
                        return blocks;
                    }
                    Some((seq, seq + 1))
                }
                None => Some((seq, seq + 1)),
            };
        }
        if let Some((start, end)) = run {
            blocks.push(block(start, end));
        }
        blocks
    }
}

fn block(start: u64, end: u64) -> SackBlock {
    SackBlock {
        start: start as u32,
        end: end as u32,
    }
}

/// `seq` as the unwrapped 64-bit count nearest `base` (within 2^31 either side).
pub fn unwrap_near(base: u64, seq: u32) -> u64 {
    let delta = seq.wrapping_sub(base as u32) as i32;
    if delta >= 0 {
        base + delta as u64
    } else {
        base.saturating_sub(u64::from(delta.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_packets_are_delivered_in_order_and_sacked_meanwhile() {
        let mut r = Receiver::new(1 << 20);
        assert_eq!(r.on_data(1, b"b", false), Received::New);
        assert_eq!(r.on_data(3, b"d", false), Received::New);
        assert_eq!(r.ack(), 0);
        assert_eq!(
            r.sacks(),
            vec![
                SackBlock { start: 1, end: 2 },
                SackBlock { start: 3, end: 4 }
            ]
        );
        assert_eq!(r.on_data(0, b"a", false), Received::New);
        assert_eq!(r.ack(), 2);
        assert_eq!(r.on_data(2, b"c", true), Received::New);
        assert_eq!(r.ack(), 4);
        assert!(r.sacks().is_empty());
        let mut got = Vec::new();
        while let Some(p) = r.read() {
            got.extend(p);
        }
        assert_eq!(got, b"abcd");
        assert!(r.eof());
        assert_eq!(r.on_data(1, b"b", false), Received::Duplicate);
        assert_eq!(r.on_data(4, b"e", false), Received::Ignored);
    }

    #[test]
    fn the_window_bounds_what_is_held_and_nothing_unheld_is_acked() {
        let mut r = Receiver::new(100);
        assert_eq!(r.on_data(0, &[0; 60], false), Received::New);
        assert_eq!(r.rwnd(), 40);
        assert_eq!(r.on_data(1, &[0; 60], false), Received::NoRoom);
        assert_eq!(r.ack(), 1);
        // Far ahead and empty: still an entry with a cost.
        assert_eq!(r.on_data(9, b"", true), Received::NoRoom);
        assert!(r.sacks().is_empty());
        r.read();
        assert_eq!(r.rwnd(), 100);
        assert_eq!(r.on_data(1, &[0; 60], false), Received::New);
    }

    #[test]
    fn sequence_numbers_unwrap_near_the_base() {
        assert_eq!(unwrap_near(0, 5), 5);
        assert_eq!(
            unwrap_near(u64::from(u32::MAX) - 1, 2),
            u64::from(u32::MAX) + 3
        );
        assert_eq!(unwrap_near((1 << 32) + 3, u32::MAX), (1 << 32) - 1);
        assert_eq!(unwrap_near(3, u32::MAX), 0);
    }
}
