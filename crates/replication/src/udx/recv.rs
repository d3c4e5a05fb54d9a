//! The receiving half of a UDX stream: in-order delivery of DATA payloads, an
//! out-of-order buffer, the remote's END, SACK blocks for what is buffered, and the
//! receive window we advertise (docs/udx-protocol.md §3.1, §5).
//!
//! Bounded: every payload byte held (delivered but not read, or buffered out of order)
//! counts against the window, as the sender counts it (so a sender that keeps within
//! our window never has a packet refused), and the packets held are at most
//! `window / 256` (at least 64), against a peer sending tiny packets. An out-of-order
//! packet that does not fit is dropped and neither acked nor SACKed (C forgets SACKed
//! data: we must never SACK what we do not keep); the sender retransmits it once we
//! have room.
//!
//! The next packet in order is taken whenever what waits to be read leaves any room,
//! whatever the out-of-order buffer holds: were it refused because out-of-order data
//! filled the window, nothing could ever drain (the buffered packets wait for it, it
//! waits for room: the stream would time out), and a window left smaller than a packet
//! would never take the one packet a sender may still send. So what a stream holds is
//! at most twice the window plus one datagram.

use std::collections::{BTreeMap, VecDeque};

use super::packet::{MAX_SACKS, SackBlock};

/// Window bytes per packet the receiver may hold (so at most `window / 256` packets).
const BYTES_PER_ENTRY: usize = 256;
/// ... and at least this many packets whatever the window.
const MIN_ENTRIES: usize = 64;

/// A packet buffered out of order (its END, if any, is `Receiver::remote_end`).
#[derive(Debug)]
struct Segment {
    payload: Vec<u8>,
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
    /// Window bytes in use: the payloads of `ready` and `out_of_order`.
    held: usize,
    /// The part of `held` that is out of order.
    ooo_held: usize,
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
            ooo_held: 0,
            window,
            remote_end: None,
        }
    }

    /// `rcv.nxt` on the wire.
    pub fn ack(&self) -> u32 {
        self.next as u32
    }

    /// `seq` from the wire as the unwrapped count nearest `rcv.nxt` (`None`: before
    /// the stream's first packet).
    pub fn unwrap(&self, seq: u32) -> Option<u64> {
        unwrap_near(self.next, seq)
    }

    /// `rcv.nxt`, unwrapped.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The window we advertise: bytes we can still take.
    pub fn rwnd(&self) -> u32 {
        u32::try_from(self.window.saturating_sub(self.held)).unwrap_or(u32::MAX)
    }

    /// Takes a DATA and/or END packet.
    pub fn on_data(&mut self, seq: u32, payload: &[u8], end: bool) -> Received {
        let Some(seq) = self.unwrap(seq) else {
            return Received::Duplicate;
        };
        if seq < self.next || self.out_of_order.contains_key(&seq) {
            return Received::Duplicate;
        }
        if self.remote_end.is_some_and(|e| seq > e) || (end && self.remote_end.is_some()) {
            return Received::Ignored;
        }
        let cost = payload.len();
        let entries = self.ready.len() + self.out_of_order.len();
        let room = entries < (self.window / BYTES_PER_ENTRY).max(MIN_ENTRIES)
            && if seq == self.next {
                self.ready_held() < self.window
            } else {
                self.held + cost <= self.window
            };
        if !room {
            return Received::NoRoom;
        }
        if end {
            self.remote_end = Some(seq);
            // Anything buffered past the END is not part of the stream.
            let beyond: Vec<u64> = self
                .out_of_order
                .range(seq + 1..)
                .map(|(k, _)| *k)
                .collect();
            for key in beyond {
                if let Some(segment) = self.out_of_order.remove(&key) {
                    self.held -= segment.payload.len();
                    self.ooo_held -= segment.payload.len();
                }
            }
        }
        if seq == self.next {
            self.deliver(payload.to_vec());
            self.drain();
        } else {
            self.held += cost;
            self.ooo_held += cost;
            self.out_of_order.insert(
                seq,
                Segment {
                    payload: payload.to_vec(),
                },
            );
        }
        Received::New
    }

    /// Window bytes held by what waits to be read.
    fn ready_held(&self) -> usize {
        self.held - self.out_of_order_held()
    }

    fn out_of_order_held(&self) -> usize {
        self.ooo_held
    }

    fn deliver(&mut self, payload: Vec<u8>) {
        self.next += 1;
        if !payload.is_empty() {
            self.held += payload.len();
            self.ready.push_back(payload);
        }
    }

    fn drain(&mut self) {
        while !self.remote_ended() {
            let Some(segment) = self.out_of_order.remove(&self.next) else {
                break;
            };
            let cost = segment.payload.len();
            self.held -= cost;
            self.ooo_held -= cost;
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

/// `seq` as the unwrapped 64-bit count nearest `base` (within 2^31 either side);
/// `None` when that would be before 0 (a number the stream never used).
pub fn unwrap_near(base: u64, seq: u32) -> Option<u64> {
    let delta = seq.wrapping_sub(base as u32) as i32;
    if delta >= 0 {
        Some(base + delta as u64)
    } else {
        base.checked_sub(u64::from(delta.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_packets_are_delivered_in_order_and_sacked_meanwhile() {
        let mut r = Receiver::new(1 << 20);
        assert_eq!(r.on_data(1, b"b", false), Received::New);
        assert_eq!(r.on_data(3, b"d", true), Received::New);
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
        assert_eq!(r.on_data(2, b"c", false), Received::New);
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
        let mut r = Receiver::new(1000);
        assert_eq!(r.on_data(0, &[0; 600], false), Received::New);
        assert_eq!(r.rwnd(), 400);
        // Out of order: only within the window.
        assert_eq!(r.on_data(2, &[0; 600], false), Received::NoRoom);
        assert!(r.sacks().is_empty(), "never SACK what was not kept");
        // In order: taken while anything is left, so a window smaller than a packet
        // still takes the one packet a sender may send (then it is shut).
        assert_eq!(r.on_data(1, &[0; 600], false), Received::New);
        assert_eq!(r.rwnd(), 0);
        assert_eq!(r.on_data(2, &[0; 600], false), Received::NoRoom);
        assert_eq!(r.ack(), 2);
        // Far ahead: no room left.
        assert_eq!(r.on_data(9, b"x", false), Received::NoRoom);
        r.read();
        r.read();
        assert_eq!(r.rwnd(), 1000);
        assert_eq!(r.on_data(2, &[0; 600], false), Received::New);
    }

    #[test]
    fn a_full_out_of_order_buffer_still_takes_the_packet_that_drains_it() {
        let mut r = Receiver::new(1800);
        for seq in 1..=3 {
            assert_eq!(r.on_data(seq, &[1; 600], false), Received::New);
        }
        assert_eq!(r.on_data(4, &[1; 600], false), Received::NoRoom);
        assert_eq!(r.rwnd(), 0);
        assert_eq!(r.on_data(0, &[1; 600], false), Received::New);
        assert_eq!(r.ack(), 4);
        assert_eq!(r.readable(), 2400);
    }

    #[test]
    fn nothing_past_the_remote_end_is_delivered() {
        let mut r = Receiver::new(1 << 20);
        assert_eq!(r.on_data(3, b"after", false), Received::New);
        assert_eq!(r.on_data(1, b"", true), Received::New);
        assert_eq!(
            r.sacks(),
            vec![SackBlock { start: 1, end: 2 }],
            "the packet past END was dropped"
        );
        assert_eq!(r.on_data(0, b"last", false), Received::New);
        assert!(r.remote_ended());
        assert_eq!(r.read(), Some(b"last".to_vec()));
        assert_eq!(r.read(), None);
        assert!(r.eof());
        assert_eq!(r.on_data(2, b"x", false), Received::Ignored);
    }

    #[test]
    fn sequence_numbers_unwrap_near_the_base() {
        assert_eq!(unwrap_near(0, 5), Some(5));
        assert_eq!(
            unwrap_near(u64::from(u32::MAX) - 1, 2),
            Some(u64::from(u32::MAX) + 3)
        );
        assert_eq!(unwrap_near((1 << 32) + 3, u32::MAX), Some((1 << 32) - 1));
        assert_eq!(unwrap_near(3, u32::MAX), None);
        assert_eq!(
            unwrap_near(0, 1 << 31),
            None,
            "far ahead of a new stream: before 0"
        );
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn tiny_packets_are_bounded_in_number() {
        let mut r = Receiver::new(64 * 1024);
        let mut taken = 0;
        for seq in 0..10_000u32 {
            if r.on_data(seq, b"x", false) == Received::New {
                taken += 1;
            }
        }
        assert_eq!(taken, 256);
        assert_eq!(r.ack(), 256);
    }
}
