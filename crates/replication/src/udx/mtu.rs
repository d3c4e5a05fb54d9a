//! Path MTU probing, as C libudx does it (docs/udx-protocol.md §6; RFC 8899's search
//! with UDX's steps): a stream starts at the base payload size (1,152 bytes: a 1,200-byte
//! IPv4 packet), and once the peer has acked anything it pads one full data packet at a
//! time with `data_offset` zero bytes to a larger size. Ours, not C's: the first probes
//! jump toward the ceiling (1,452 bytes: a 1,500-byte IPv4 packet, what nearly every
//! path carries) as far as the one-byte padding allows (+255 bytes), so the search
//! usually ends after two round trips; once a jump is lost the search goes up by C's
//! steps (+32 bytes; C climbs that way from the start, one probe per round trip). A probe acked in its first transmission raises the payload
//! size to it; a step lost (resent without its padding) counts a failure, and after
//! [`MAX_PROBES`] failures in a row the search ends where it is. The
//! sockets set don't-fragment (`udx::socket`), so a probe larger than the path is lost,
//! never fragmented.
//!
//! Sans-I/O: the stream asks [`Mtu::probe_size`] when it builds a new full packet and
//! reports what became of it.

/// Bytes a probe adds to the last size that got through (C `UDX_MTU_STEP`).
pub const STEP: usize = 32;
/// Probes lost in a row that end the search (C `UDX_MTU_MAX_PROBES`).
pub const MAX_PROBES: u8 = 3;
/// Payload bytes per packet at a 1,500-byte IPv4 packet (C `UDX_MTU_MAX` 1500 - 48).
pub const MAX_MSS: usize = 1452;

/// One stream's search.
#[derive(Debug, Clone)]
pub struct Mtu {
    mss: usize,
    max: usize,
    /// The probe in flight: its sequence number and size.
    probe: Option<(u64, usize)>,
    failures: u8,
    /// The peer acked something (C's BASE -> SEARCH).
    searching: bool,
    /// A jump was lost: the search goes on by steps.
    stepping: bool,
    done: bool,
}

impl Mtu {
    /// Starts at `base` payload bytes; probes up to `max` (no search when `max <= base`).
    pub fn new(base: usize, max: usize) -> Self {
        Mtu {
            mss: base,
            max: max.max(base),
            probe: None,
            failures: 0,
            searching: false,
            stepping: false,
            done: max <= base,
        }
    }

    /// Payload bytes per packet now.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// Whether the search has ended (at [`mss`](Self::mss)).
    pub fn done(&self) -> bool {
        self.done
    }

    /// The peer acked something: the search may start.
    pub fn on_ack(&mut self) {
        self.searching = true;
    }

    /// The size (payload plus padding) the next full new packet should be padded to, if
    /// a probe is wanted now: searching, none in flight, and the padding fits the
    /// header's one-byte `data_offset`.
    pub fn probe_size(&self) -> Option<usize> {
        if self.done || !self.searching || self.probe.is_some() {
            return None;
        }
        let reach = if self.stepping {
            STEP
        } else {
            usize::from(u8::MAX)
        };
        let size = (self.mss + reach).min(self.max);
        (size > self.mss).then_some(size)
    }

    /// Packet `seq` went out padded to `size`.
    pub fn probe_sent(&mut self, seq: u64, size: usize) {
        self.probe = Some((seq, size));
    }

    /// The probe `seq` was acked in its first (padded) transmission: its size gets
    /// through.
    pub fn probe_acked(&mut self, seq: u64) {
        if let Some((probe, size)) = self.probe
            && probe == seq
        {
            self.probe = None;
            self.failures = 0;
            self.mss = size;
            self.done = self.mss >= self.max;
        }
    }

    /// The probe `seq` was presumed lost (it is resent without its padding).
    pub fn probe_lost(&mut self, seq: u64) {
        if let Some((probe, _)) = self.probe
            && probe == seq
        {
            self.probe = None;
            if self.stepping {
                self.failures += 1;
                self.done = self.failures >= MAX_PROBES;
            } else {
                self.stepping = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_first_then_steps_up_and_a_stop_after_three_lost_steps() {
        let mut m = Mtu::new(1152, MAX_MSS);
        assert_eq!(m.probe_size(), None, "nothing before the first ack");
        m.on_ack();
        assert_eq!(m.probe_size(), Some(1152 + 255), "a jump first");
        m.probe_sent(0, 1152 + 255);
        m.probe_acked(0);
        assert_eq!(m.probe_size(), Some(MAX_MSS), "then the ceiling");
        m.probe_sent(1, MAX_MSS);
        m.probe_acked(1);
        assert!(m.done());
        assert_eq!(m.mss(), MAX_MSS);

        let mut m = Mtu::new(1152, MAX_MSS);
        m.on_ack();
        m.probe_sent(0, 1152 + 255);
        m.probe_lost(0);
        assert!(!m.done(), "a lost jump is no failure of the steps");
        let mut seq = 1;
        while let Some(size) = m.probe_size() {
            assert_eq!(size, (m.mss() + STEP).min(MAX_MSS));
            m.probe_sent(seq, size);
            assert_eq!(m.probe_size(), None, "one probe at a time");
            m.probe_acked(seq);
            assert_eq!(m.mss(), size);
            seq += 1;
        }
        assert_eq!(m.mss(), MAX_MSS);
        assert!(m.done());

        let mut m = Mtu::new(1152, MAX_MSS);
        m.on_ack();
        m.probe_sent(6, 1152 + 255);
        m.probe_lost(6);
        let size = m.probe_size().unwrap();
        assert_eq!(size, 1152 + STEP);
        m.probe_sent(7, size);
        m.probe_acked(8);
        assert_eq!(m.mss(), 1152, "another packet's ack proves nothing");
        m.probe_lost(7);
        for i in 1..u64::from(MAX_PROBES) {
            let size = m.probe_size().unwrap();
            m.probe_sent(7 + i, size);
            m.probe_lost(7 + i);
        }
        assert!(m.done());
        assert_eq!(m.mss(), 1152);
        assert_eq!(m.probe_size(), None);
    }

    #[test]
    fn no_search_without_room_above_the_base() {
        let mut m = Mtu::new(1152, 1152);
        m.on_ack();
        assert!(m.done());
        assert_eq!(m.probe_size(), None);
    }
}
