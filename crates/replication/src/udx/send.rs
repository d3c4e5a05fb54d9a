//! The sending half's bookkeeping: bytes written and not yet sent, packets in flight,
//! what the peer's acks and SACKs delivered, RACK loss marking (RFC 8985, as C does it:
//! docs/udx-protocol.md §3.4) and the queue of packets to send again.
//!
//! Bounded: [`Sender::write`] takes at most the send buffer's free room (unsent plus
//! unacked bytes); the caller waits for acks to free more.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::packet::SackBlock;
use super::recv::unwrap_near;

/// Where a packet in flight stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Sent, not acked, not presumed lost.
    InFlight,
    /// Presumed lost: queued to be sent again.
    Lost,
    /// SACKed: the peer holds it (C never reneges).
    Sacked,
}

/// One packet sent and not cumulatively acked yet.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its sequence number, unwrapped.
    pub seq: u64,
    /// Its payload.
    pub payload: Vec<u8>,
    /// It carries END.
    pub end: bool,
    /// When it was last (re)sent.
    pub sent_at: Instant,
    /// The order of that transmission among all of this stream's (ties in time).
    pub tx: u64,
    /// Sent more than once (its RTT samples are ambiguous: Karn).
    pub retransmitted: bool,
    /// Retransmission timeouts it lived through.
    pub timeouts: u8,
    /// Where it stands.
    pub fate: Fate,
    /// Zero bytes after the header (`data_offset`): an MTU probe's padding, only on its
    /// first transmission (a resend goes without it).
    pub padding: u8,
}

/// What one ack delivered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Delivered {
    /// Packets newly acked or SACKed.
    pub packets: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// The cumulative ack advanced.
    pub advanced: bool,
    /// An RTT sample from a packet sent once.
    pub rtt: Option<Duration>,
    /// A padded packet (an MTU probe) acked in its first transmission: its seq.
    pub probe_acked: Option<u64>,
}

/// The sending half's state.
#[derive(Debug)]
pub struct Sender {
    /// Written, not packetized yet.
    unsent: VecDeque<u8>,
    /// `snd.nxt`, unwrapped.
    next: u64,
    /// Packets `snd.una..snd.nxt`, in seq order.
    flight: VecDeque<Sent>,
    /// Seqs presumed lost, to send again (ascending).
    lost: BTreeSet<u64>,
    /// Packets with fate `InFlight` and their bytes.
    in_flight: usize,
    in_flight_bytes: usize,
    /// Unacked payload bytes (any fate).
    unacked_bytes: usize,
    capacity: usize,
    tx: u64,
    /// RACK: the most recently sent delivered packet's transmission order and RTT.
    rack_tx: u64,
    rack_rtt: Duration,
    /// A packet was delivered below one sent after it: the path reorders.
    pub reordering_seen: bool,
    /// An MTU probe resent without its padding, not yet told (see `take_probe_lost`).
    probe_lost: Option<u64>,
}

impl Sender {
    /// Empty, `snd.nxt = 0`; holds at most `capacity` bytes written and not acked.
    pub fn new(capacity: usize) -> Self {
        Sender {
            unsent: VecDeque::new(),
            next: 0,
            flight: VecDeque::new(),
            lost: BTreeSet::new(),
            in_flight: 0,
            in_flight_bytes: 0,
            unacked_bytes: 0,
            capacity,
            tx: 0,
            rack_tx: 0,
            rack_rtt: Duration::ZERO,
            reordering_seen: false,
            probe_lost: None,
        }
    }

    /// Queues as much of `data` as the buffer has room for; returns how much.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.room());
        self.unsent.extend(&data[..n]);
        n
    }

    /// Free room in the send buffer.
    pub fn room(&self) -> usize {
        self.capacity
            .saturating_sub(self.unsent.len() + self.unacked_bytes)
    }

    /// Bytes written and not packetized yet.
    pub fn unsent(&self) -> usize {
        self.unsent.len()
    }

    /// `snd.nxt` (unwrapped).
    pub fn next(&self) -> u64 {
        self.next
    }

    /// `snd.una` (unwrapped).
    pub fn una(&self) -> u64 {
        self.flight.front().map_or(self.next, |p| p.seq)
    }

    /// Packets in flight (not acked, SACKed or presumed lost) and their bytes.
    pub fn in_flight(&self) -> (usize, usize) {
        (self.in_flight, self.in_flight_bytes)
    }

    /// Nothing sent is unacked.
    pub fn all_acked(&self) -> bool {
        self.flight.is_empty()
    }

    /// Packets presumed lost, waiting to go again.
    pub fn has_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// Some packet in flight is SACKed.
    pub fn any_sacked(&self) -> bool {
        self.flight.iter().any(|p| p.fate == Fate::Sacked)
    }

    /// `seq` from the wire as an unwrapped count near `snd.una` (`None`: before 0).
    pub fn unwrap(&self, seq: u32) -> Option<u64> {
        unwrap_near(self.una(), seq)
    }

    /// Builds the next new packet: up to `mss` unsent bytes, with END if `end` is wanted
    /// and it takes the last of them (or alone when nothing is left). `None`: nothing to send.
    /// `pad_to`: a full packet is padded to that many bytes after the header (an MTU
    /// probe) when the padding fits `data_offset`.
    pub fn next_new(
        &mut self,
        mss: usize,
        end: bool,
        now: Instant,
        pad_to: Option<usize>,
    ) -> Option<&Sent> {
        if self.unsent.is_empty() && !end {
            return None;
        }
        let take = self.unsent.len().min(mss);
        let padding = match pad_to {
            Some(size) if take == mss && size > take => u8::try_from(size - take).unwrap_or(0),
            _ => 0,
        };
        let payload: Vec<u8> = self.unsent.drain(..take).collect();
        let end = end && self.unsent.is_empty();
        if payload.is_empty() && !end {
            return None;
        }
        self.tx += 1;
        let packet = Sent {
            seq: self.next,
            end,
            sent_at: now,
            tx: self.tx,
            retransmitted: false,
            timeouts: 0,
            fate: Fate::InFlight,
            padding,
            payload,
        };
        self.next += 1;
        self.in_flight += 1;
        self.in_flight_bytes += packet.payload.len();
        self.unacked_bytes += packet.payload.len();
        self.flight.push_back(packet);
        self.flight.back()
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let una = self.una();
        let i = usize::try_from(seq.checked_sub(una)?).ok()?;
        (i < self.flight.len()).then_some(i)
    }

    /// Takes the lowest packet presumed lost and marks it sent again now.
    pub fn next_retransmit(&mut self, now: Instant) -> Option<&Sent> {
        let seq = self.lost.pop_first()?;
        let i = self.index(seq)?;
        self.tx += 1;
        let tx = self.tx;
        let p = &mut self.flight[i];
        if p.fate != Fate::Lost {
            return None;
        }
        p.fate = Fate::InFlight;
        p.sent_at = now;
        p.tx = tx;
        p.retransmitted = true;
        if p.padding > 0 {
            p.padding = 0;
            self.probe_lost = Some(p.seq);
        }
        self.in_flight += 1;
        self.in_flight_bytes += p.payload.len();
        Some(&self.flight[i])
    }

    /// The MTU probe last resent without its padding (presumed lost), once.
    pub fn take_probe_lost(&mut self) -> Option<u64> {
        self.probe_lost.take()
    }

    /// Sends the highest packet in flight again (a tail loss probe with nothing new).
    pub fn probe_last(&mut self, now: Instant) -> Option<&Sent> {
        self.tx += 1;
        let tx = self.tx;
        let p = self
            .flight
            .iter_mut()
            .rev()
            .find(|p| p.fate == Fate::InFlight)?;
        p.sent_at = now;
        p.tx = tx;
        p.retransmitted = true;
        if p.padding > 0 {
            p.padding = 0;
            self.probe_lost = Some(p.seq);
        }
        Some(p)
    }

    /// Processes an ack (`ack` is the peer's `rcv.nxt`) and SACK blocks. An ack beyond
    /// `snd.nxt` is for data never sent: the caller drops it before. Blocks outside
    /// `snd.una..snd.nxt` are ignored (C's `udx_sack_is_valid`).
    /// A retransmitted packet delivered sooner than `min_rtt` after its last send was
    /// acked for an earlier transmission: it does not move RACK's clock.
    pub fn on_ack(
        &mut self,
        ack: u32,
        sacks: &[SackBlock],
        now: Instant,
        min_rtt: Duration,
    ) -> Delivered {
        let mut delivered = Delivered::default();
        let Some(ack) = self.unwrap(ack) else {
            return delivered;
        };
        let ack = ack.min(self.next);
        while self.flight.front().is_some_and(|p| p.seq < ack) {
            let Some(p) = self.flight.pop_front() else {
                break;
            };
            delivered.advanced = true;
            self.unacked_bytes -= p.payload.len();
            self.lost.remove(&p.seq);
            self.deliver(&p, now, min_rtt, &mut delivered);
        }
        let (una, next) = (self.una(), self.next);
        for block in sacks {
            let (Some(start), Some(end)) =
                (unwrap_near(una, block.start), unwrap_near(una, block.end))
            else {
                continue;
            };
            if !(una <= start && start < end && end <= next) {
                continue;
            }
            for seq in start..end {
                let Some(i) = self.index(seq) else { break };
                if self.flight[i].fate == Fate::Sacked {
                    continue;
                }
                let p = self.flight[i].clone();
                self.flight[i].fate = Fate::Sacked;
                self.lost.remove(&seq);
                self.deliver(&p, now, min_rtt, &mut delivered);
            }
        }
        delivered
    }

    /// One packet reached the peer: counts, RTT and RACK state.
    fn deliver(&mut self, p: &Sent, now: Instant, min_rtt: Duration, delivered: &mut Delivered) {
        if p.fate == Fate::InFlight {
            self.in_flight -= 1;
            self.in_flight_bytes -= p.payload.len();
        }
        if p.fate == Fate::Sacked {
            return;
        }
        delivered.packets += 1;
        delivered.bytes += p.payload.len();
        let rtt = now.saturating_duration_since(p.sent_at);
        if !p.retransmitted {
            delivered.rtt = Some(rtt);
            if p.padding > 0 {
                delivered.probe_acked = Some(p.seq);
            }
        }
        if p.tx > self.rack_tx {
            if !p.retransmitted || rtt >= min_rtt {
                self.rack_tx = p.tx;
                self.rack_rtt = rtt;
            }
        } else if !p.retransmitted {
            self.reordering_seen = true;
        }
    }

    /// RACK: marks lost every packet in flight sent before the most recently sent
    /// delivered one and older than `rack_rtt + reo_wnd`; returns how many were marked
    /// (MTU probes not counted: their loss is no sign of congestion) and the earliest
    /// time another one would be.
    pub fn detect_losses(&mut self, now: Instant, reo_wnd: Duration) -> (usize, Option<Instant>) {
        let mut marked = 0;
        let mut next_check: Option<Instant> = None;
        let wait = self.rack_rtt + reo_wnd;
        for p in self.flight.iter_mut() {
            if p.fate != Fate::InFlight || p.tx >= self.rack_tx {
                continue;
            }
            let deadline = p.sent_at + wait;
            if deadline <= now {
                p.fate = Fate::Lost;
                self.lost.insert(p.seq);
                self.in_flight -= 1;
                self.in_flight_bytes -= p.payload.len();
                // A lost MTU probe says the packet was too large, not that the path is
                // congested (C's `rack_detect_loss` leaves probes out as well).
                if p.padding == 0 {
                    marked += 1;
                }
            } else {
                next_check = Some(next_check.map_or(deadline, |t: Instant| t.min(deadline)));
            }
        }
        (marked, next_check)
    }

    /// The retransmission timer expired: every packet in flight is presumed lost. Returns
    /// false when the head packet has already lived through `max_timeouts` (give up).
    pub fn on_timeout(&mut self, max_timeouts: u8) -> bool {
        let mut alive = true;
        for (i, p) in self.flight.iter_mut().enumerate() {
            // The head counts even if SACKed: a peer that SACKs everything and never
            // acks it cumulatively is not answering either.
            if p.fate == Fate::Sacked && i > 0 {
                continue;
            }
            p.timeouts = p.timeouts.saturating_add(1);
            if p.timeouts > max_timeouts {
                alive = false;
            }
            if p.fate == Fate::Sacked {
                // The head, held by the peer but never acked (that ack was lost, and
                // the peer acks only what it receives): send it again for a fresh ack.
                p.fate = Fate::Lost;
                self.lost.insert(p.seq);
            } else if p.fate == Fate::InFlight {
                p.fate = Fate::Lost;
                self.lost.insert(p.seq);
                self.in_flight -= 1;
                self.in_flight_bytes -= p.payload.len();
            }
        }
        alive
    }

    /// The send time of the oldest packet in flight.
    pub fn oldest_in_flight(&self) -> Option<Instant> {
        self.flight
            .iter()
            .filter(|p| p.fate == Fate::InFlight)
            .map(|p| p.sent_at)
            .min()
    }

    /// Drops everything (destroyed or timed out).
    pub fn clear(&mut self) {
        self.unsent.clear();
        self.flight.clear();
        self.lost.clear();
        self.in_flight = 0;
        self.in_flight_bytes = 0;
        self.unacked_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_and_sacks_deliver_and_rack_marks_the_gap_lost() {
        let t0 = Instant::now();
        let mut s = Sender::new(1 << 20);
        assert_eq!(s.write(&[7; 5000]), 5000);
        for i in 0..5 {
            let p = s
                .next_new(1000, false, t0 + Duration::from_millis(i), None)
                .unwrap();
            assert_eq!(p.seq, i);
        }
        assert_eq!(s.in_flight(), (5, 5000));
        // Packet 1 lost: the peer acks 0 and SACKs 2..5.
        let at = t0 + Duration::from_millis(50);
        let d = s.on_ack(1, &[SackBlock { start: 2, end: 5 }], at, Duration::ZERO);
        assert_eq!(d.packets, 4);
        assert!(d.advanced);
        assert_eq!(s.una(), 1);
        let (marked, _) = s.detect_losses(at, Duration::from_millis(1));
        assert_eq!(marked, 1);
        let p = s.next_retransmit(at).unwrap();
        assert_eq!(p.seq, 1);
        let d = s.on_ack(5, &[], at + Duration::from_millis(50), Duration::ZERO);
        assert_eq!(d.packets, 1);
        assert!(d.rtt.is_none(), "Karn: no sample from a retransmission");
        assert!(s.all_acked());
        assert_eq!(s.room(), 1 << 20);
    }

    #[test]
    fn invalid_sacks_and_acks_past_what_was_sent_change_nothing() {
        let t0 = Instant::now();
        let mut s = Sender::new(10_000);
        s.write(&[1; 3000]);
        for _ in 0..3 {
            s.next_new(1000, false, t0, None);
        }
        let blocks = [
            SackBlock { start: 2, end: 9 },
            SackBlock { start: 5, end: 1 },
        ];
        let d = s.on_ack(0, &blocks, t0, Duration::ZERO);
        assert_eq!(d.packets, 0);
        assert_eq!(s.in_flight(), (3, 3000));
        assert_eq!(s.room(), 7000);
        assert_eq!(s.write(&[0; 9000]), 7000);
    }

    #[test]
    fn end_rides_on_the_last_packet_or_alone() {
        let t0 = Instant::now();
        let mut s = Sender::new(10_000);
        s.write(&[1; 1500]);
        assert!(!s.next_new(1000, true, t0, None).unwrap().end);
        let p = s.next_new(1000, true, t0, None).unwrap();
        assert!(p.end && p.payload.len() == 500);
        let mut s = Sender::new(10_000);
        let p = s.next_new(1000, true, t0, None).unwrap();
        assert!(p.end && p.payload.is_empty());
        assert!(Sender::new(1).next_new(1000, false, t0, None).is_none());
    }
}
