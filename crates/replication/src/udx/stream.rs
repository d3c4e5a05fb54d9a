//! One UDX stream as a sans-I/O state machine: datagrams and a clock in
//! ([`Stream::on_packet`], [`Stream::on_timeout`]), datagrams and a deadline out
//! ([`Stream::poll_transmit`], [`Stream::poll_timeout`]); bytes written and read by the
//! application in between. No socket, no clock, no task: a driver feeds it (a tokio one
//! for real sockets, a simulated link with a virtual clock in the tests), so everything
//! it does is reproducible.
//!
//! What it does, as C libudx does it unless said (docs/udx-protocol.md): sequence numbers
//! per packet from 0, cumulative acks with SACK blocks, an immediate ack for the packets
//! of each received batch (C: one per packet; ours rides on data when there is any),
//! window updates by the wl1/wl2 rule, honest receive windows (ours shrink as data waits
//! to be read, with a window update when reading frees room, and zero-window probes when
//! the peer's is shut), RTT/RTO (§3.3), RACK loss marking with a reordering window and a
//! tail loss probe (§3.4-3.5), retransmission timeouts re-armed at 2 RTO and a give-up
//! after 6 for one packet (§3.6), END riding on the last data packet, DESTROY both ways,
//! MESSAGE both ways. Ours, not C's: CUBIC with a per-packet pacer ([`super::cubic`]);
//! many packets in flight, bounded by the send buffer, the window and the peer's receive
//! window; MTU probing as C ([`super::mtu`]: from 1,152 payload bytes up to 1,452 by
//! padded probes, the sockets setting don't-fragment). Not done: relaying,
//! `change_remote`, keepalive heartbeats (the secret stream above sends its own).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::cubic::{Cubic, Pacer};
use super::mtu::Mtu;
use super::packet::{Flags, HEADER_LEN, Header, MAX_DATAGRAM, Packet};
use super::recv::{Received, Receiver};
use super::rtt::Rtt;
use super::send::{Sender, Sent};

/// Payload bytes per packet at UDX's base MTU of 1,200 over IPv4 (C: `1200 - 48`).
pub const MSS: usize = 1152;
/// Receive window and send buffer, bytes (C advertises 4 MiB).
pub const WINDOW: usize = 4 * 1024 * 1024;
/// Retransmission timeouts one packet may live through; the next closes the stream.
pub const MAX_TIMEOUTS: u8 = 6;
/// Messages (unreliable datagrams) kept until read or sent; more are dropped.
pub const MAX_MESSAGES: usize = 64;
/// Extra time a tail loss probe waits when one packet is out (the peer may delay its ack).
const TLP_ACK_DELAY: Duration = Duration::from_millis(2);

/// A stream's limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// Payload bytes per packet to start with (and the largest message).
    pub mss: usize,
    /// The most payload bytes per packet MTU probing may reach ([`super::mtu`]; at most
    /// a 2,048-byte datagram); no probing when not above `mss`. An endpoint lowers it
    /// for IPv6 and turns probing off where its socket cannot set don't-fragment.
    pub max_mss: usize,
    /// Bytes written and not acked that the stream holds.
    pub send_buffer: usize,
    /// Bytes received and not read that the stream holds (the window it advertises).
    pub recv_window: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss: MSS,
            max_mss: super::mtu::MAX_MSS,
            send_buffer: WINDOW,
            recv_window: WINDOW,
        }
    }
}

/// Why a stream ended without both sides ending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A packet went unacked through every retransmission.
    #[error(
        "UDX stream timed out: a packet was not acked after {MAX_TIMEOUTS} retransmission timeouts"
    )]
    TimedOut,
    /// The peer destroyed the stream.
    #[error("UDX stream reset by the peer (DESTROY)")]
    Reset,
    /// We destroyed it.
    #[error("UDX stream destroyed here")]
    Destroyed,
}

/// The write side was ended or the stream is gone: nothing more can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("UDX stream no longer takes writes (ended or closed)")]
pub struct WriteClosed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LossState {
    Open,
    /// Fast recovery until everything sent before it began is acked.
    Recovery {
        high: u64,
    },
    /// After a retransmission timeout, likewise.
    Loss {
        high: u64,
    },
}

/// One UDX stream.
#[derive(Debug)]
pub struct Stream {
    config: Config,
    remote_id: Option<u32>,
    send: Sender,
    recv: Receiver,
    rtt: Rtt,
    cubic: Cubic,
    pacer: Pacer,
    mtu: Mtu,
    recovery: LossState,
    /// The peer's receive window and the wl1/wl2 of its last update.
    remote_window: u32,
    wl: (u64, u64),
    ack_needed: bool,
    sack_due: bool,
    /// Our END: wanted, and its seq once sent.
    end_wanted: bool,
    end_seq: Option<u64>,
    rto_at: Option<Instant>,
    tlp_at: Option<Instant>,
    rack_at: Option<Instant>,
    zwp_at: Option<Instant>,
    pacing_at: Option<Instant>,
    tlp_due: bool,
    tlp_seq: Option<u64>,
    heartbeat_due: bool,
    cwnd_limited: bool,
    /// The window we last advertised (a read that opens it sends an update).
    advertised: u32,
    messages_in: VecDeque<Vec<u8>>,
    messages_out: VecDeque<Vec<u8>>,
    destroy_due: bool,
    error: Option<StreamError>,
    closed: bool,
}

impl Stream {
    /// A stream not connected yet: it takes packets (the first one may come before the
    /// driver knows the remote id) and sends nothing until [`connect`](Self::connect).
    pub fn new(config: Config) -> Self {
        Stream {
            send: Sender::new(config.send_buffer),
            recv: Receiver::new(config.recv_window),
            advertised: u32::try_from(config.recv_window).unwrap_or(u32::MAX),
            mtu: Mtu::new(config.mss, config.max_mss.min(MAX_DATAGRAM - HEADER_LEN)),
            config,
            remote_id: None,
            rtt: Rtt::new(),
            cubic: Cubic::new(),
            pacer: Pacer::new(),
            recovery: LossState::Open,
            remote_window: u32::try_from(WINDOW).unwrap_or(u32::MAX),
            wl: (0, 0),
            ack_needed: false,
            sack_due: false,
            end_wanted: false,
            end_seq: None,
            rto_at: None,
            tlp_at: None,
            rack_at: None,
            zwp_at: None,
            pacing_at: None,
            tlp_due: false,
            tlp_seq: None,
            heartbeat_due: false,
            cwnd_limited: false,
            messages_in: VecDeque::new(),
            messages_out: VecDeque::new(),
            destroy_due: false,
            error: None,
            closed: false,
        }
    }

    /// Starts sending to the peer's stream `remote_id`.
    pub fn connect(&mut self, remote_id: u32) {
        self.remote_id = Some(remote_id);
    }

    /// The peer's stream id, once connected.
    pub fn remote_id(&self) -> Option<u32> {
        self.remote_id
    }

    /// Queues bytes; returns how many fit in the send buffer (0 when full: wait for
    /// acks, [`writable`](Self::writable)).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, WriteClosed> {
        if self.end_wanted || self.closed {
            return Err(WriteClosed);
        }
        Ok(self.send.write(data))
    }

    /// Room in the send buffer.
    pub fn writable(&self) -> usize {
        if self.end_wanted || self.closed {
            0
        } else {
            self.send.room()
        }
    }

    /// Ends the write side after what was written (half close).
    pub fn end(&mut self) {
        self.end_wanted = true;
    }

    /// Everything written was acked (the write side is drained).
    pub fn flushed(&self) -> bool {
        self.send.unsent() == 0 && self.send.all_acked()
    }

    /// Aborts: one DESTROY to the peer, then closed.
    pub fn destroy(&mut self) {
        if self.closed {
            return;
        }
        self.destroy_due = self.remote_id.is_some();
        self.fail(StreamError::Destroyed);
    }

    /// Queues an unreliable datagram (at most one packet's payload); false if too long
    /// or the queue is full.
    pub fn send_message(&mut self, message: &[u8]) -> bool {
        if message.len() > self.config.mss || self.messages_out.len() >= MAX_MESSAGES {
            return false;
        }
        self.messages_out.push_back(message.to_vec());
        true
    }

    /// The next datagram received as a MESSAGE.
    pub fn read_message(&mut self) -> Option<Vec<u8>> {
        self.messages_in.pop_front()
    }

    /// The next bytes received, in order.
    pub fn read(&mut self) -> Option<Vec<u8>> {
        let chunk = self.recv.read()?;
        // Reading opened a window we had shut (or nearly): tell the peer.
        if (self.advertised as usize) < self.config.mss
            && self.recv.rwnd() as usize >= self.config.recv_window / 2
        {
            self.ack_needed = true;
        }
        Some(chunk)
    }

    /// Bytes received and not read.
    pub fn readable(&self) -> usize {
        self.recv.readable()
    }

    /// The peer ended its side and everything before was read.
    pub fn eof(&self) -> bool {
        self.recv.eof()
    }

    /// Why the stream failed, if it did.
    pub fn error(&self) -> Option<StreamError> {
        self.error
    }

    /// Closed: both sides ended (and acked), or failed. Packets are still answered
    /// with acks after a clean close (the peer may not have our last ack).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// Packets the congestion window allows in flight.
    pub fn congestion_window(&self) -> usize {
        self.cubic.window()
    }

    fn fail(&mut self, error: StreamError) {
        if self.error.is_none() && !self.closed {
            self.error = Some(error);
        }
        self.closed = true;
        self.send.clear();
        self.rto_at = None;
        self.tlp_at = None;
        self.rack_at = None;
        self.zwp_at = None;
        self.pacing_at = None;
    }

    /// Takes one packet addressed to this stream.
    pub fn on_packet(&mut self, now: Instant, packet: &Packet<'_>) {
        let h = packet.header;
        if self.error.is_some() {
            return;
        }
        if h.flags.contains(Flags::HEARTBEAT) {
            self.ack_needed = true;
            return;
        }
        let their_seq = self.recv.unwrap(h.seq);
        if h.flags.contains(Flags::DESTROY) {
            if their_seq.is_some_and(|s| s >= self.recv.next()) {
                self.fail(StreamError::Reset);
            }
            return;
        }
        let data = h.flags.contains(Flags::DATA);
        let end = h.flags.contains(Flags::END);
        if data || end {
            let payload = if data { packet.payload } else { &[] };
            let _: Received = self.recv.on_data(h.seq, payload, end);
            self.ack_needed = true;
            // Data packets carry our ack but not SACK blocks: a pure ack must follow.
            self.sack_due = self.recv.has_gaps();
        }
        if h.flags.contains(Flags::MESSAGE) && self.messages_in.len() < MAX_MESSAGES {
            self.messages_in.push_back(packet.payload.to_vec());
        }
        if self.closed {
            return;
        }
        self.on_ack(now, h, their_seq, packet);
        self.check_closed();
    }

    fn on_ack(&mut self, now: Instant, h: Header, their_seq: Option<u64>, packet: &Packet<'_>) {
        let Some(ack) = self.send.unwrap(h.ack) else {
            return;
        };
        if ack > self.send.next() {
            return;
        }
        let una = self.send.una();
        if let Some(their_seq) = their_seq
            && ack >= una
            && (their_seq > self.wl.0 || (their_seq == self.wl.0 && ack >= self.wl.1))
        {
            self.remote_window = h.rwnd;
            self.wl = (their_seq, ack);
            if h.rwnd > 0 {
                self.zwp_at = None;
            }
        }
        let min_rtt = self.rtt.min().unwrap_or(Duration::ZERO);
        let delivered = self.send.on_ack(h.ack, &packet.sacks, now, min_rtt);
        if let Some(sample) = delivered.rtt {
            self.rtt.sample(sample, now);
        }
        if delivered.packets > 0 {
            self.mtu.on_ack();
        }
        if let Some(probe) = delivered.probe_acked {
            self.mtu.probe_acked(probe);
        }
        if let Some(probe) = self.tlp_seq
            && self.send.una() > probe
        {
            self.tlp_seq = None;
        }
        match self.recovery {
            LossState::Recovery { high } | LossState::Loss { high } if self.send.una() >= high => {
                self.recovery = LossState::Open;
            }
            _ => {}
        }
        if delivered.packets > 0 {
            let (marked, next) = self.send.detect_losses(now, self.reorder_window());
            self.rack_at = next;
            if marked > 0 {
                self.enter_recovery();
            }
            let srtt = self.rtt.srtt_or(Duration::ZERO);
            self.cubic
                .on_ack(delivered.packets, now, srtt, self.cwnd_limited);
        }
        self.rearm(now, delivered.packets > 0, false);
    }

    fn enter_recovery(&mut self) {
        if self.recovery == LossState::Open {
            self.recovery = LossState::Recovery {
                high: self.send.next(),
            };
            self.tlp_seq = None;
            self.cubic.on_congestion();
        }
    }

    /// RACK's reordering window: a quarter of the minimum RTT, at least 1 ms, and up to
    /// the smoothed RTT once the path was seen reordering.
    fn reorder_window(&self) -> Duration {
        let min = self.rtt.min().unwrap_or(Duration::ZERO);
        let base = (min / 4).max(Duration::from_millis(1));
        if self.send.reordering_seen {
            self.rtt.srtt_or(base).max(base)
        } else {
            base
        }
    }

    fn our_end_acked(&self) -> bool {
        self.end_seq.is_some_and(|e| self.send.una() > e)
    }

    fn check_closed(&mut self) {
        if self.our_end_acked() && self.recv.remote_ended() && !self.closed {
            self.closed = true;
            self.rto_at = None;
            self.tlp_at = None;
            self.rack_at = None;
            self.zwp_at = None;
            self.pacing_at = None;
        }
    }

    /// Re-arms the loss timers after a send or an ack. `progress`: the ack delivered
    /// something (the RTO restarts); `sent_new`: new data went out. The tail loss probe
    /// is pushed back only on either, so that acks without progress (the peer's own
    /// data) do not defer it for ever.
    fn rearm(&mut self, now: Instant, progress: bool, sent_new: bool) {
        let (packets, _) = self.send.in_flight();
        if packets == 0 && !self.send.has_lost() {
            self.tlp_at = None;
            if self.send.all_acked() {
                self.rto_at = None;
            } else if progress || self.rto_at.is_none() {
                // Everything left is SACKed: the head's retransmission is the RTO's job
                // (and a peer that never acks it cumulatively runs out the give-up).
                self.rto_at = Some(now + self.rtt.rto());
            }
        } else if progress || self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        if progress || sent_new || packets == 0 || self.recovery != LossState::Open {
            self.tlp_at = None;
        }
        if self.tlp_at.is_none()
            && packets > 0
            && self.recovery == LossState::Open
            && self.tlp_seq.is_none()
            && !self.send.any_sacked()
            && let (Some(srtt), Some(rto_at)) = (self.rtt.srtt(), self.rto_at)
        {
            let mut pto = 2 * srtt;
            if packets == 1 {
                pto += TLP_ACK_DELAY;
            }
            self.tlp_at = Some((now + pto).min(rto_at));
        }
        // The peer's window is shut and nothing is out to bring an update: probe it.
        let blocked = self.send.unsent() > 0 || (self.end_wanted && self.end_seq.is_none());
        if self.send.all_acked() && blocked && self.remote_window == 0 {
            self.zwp_at.get_or_insert(now + self.rtt.rto());
        } else {
            self.zwp_at = None;
        }
    }

    /// The next time [`on_timeout`](Self::on_timeout) must run, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [
            self.rto_at,
            self.tlp_at,
            self.rack_at,
            self.zwp_at,
            self.pacing_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.pacing_at.is_some_and(|t| t <= now) {
            self.pacing_at = None;
        }
        if self.rack_at.is_some_and(|t| t <= now) {
            self.rack_at = None;
            let (marked, next) = self.send.detect_losses(now, self.reorder_window());
            self.rack_at = next;
            if marked > 0 {
                self.enter_recovery();
            }
        }
        if self.tlp_at.is_some_and(|t| t <= now) {
            self.tlp_at = None;
            self.tlp_due = true;
        }
        if self.zwp_at.is_some_and(|t| t <= now) {
            self.zwp_at = Some(now + 2 * self.rtt.rto());
            self.heartbeat_due = true;
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = Some(now + 2 * self.rtt.rto());
            self.tlp_at = None;
            self.tlp_due = false;
            self.tlp_seq = None;
            if !self.send.on_timeout(MAX_TIMEOUTS) {
                self.fail(StreamError::TimedOut);
                return;
            }
            self.recovery = LossState::Loss {
                high: self.send.next(),
            };
            self.cubic.on_timeout();
        }
    }

    fn header(&self, flags: Flags, seq: u64) -> Header {
        Header {
            flags,
            data_offset: 0,
            id: self.remote_id.unwrap_or(0),
            rwnd: self.recv.rwnd(),
            seq: seq as u32,
            ack: self.recv.ack(),
        }
    }

    /// Writes a packet without SACK blocks. `fresh`: its seq is news to the peer (a new
    /// data packet, or a control packet carrying `snd.nxt`), so the peer takes its ack
    /// and window (a retransmission's seq is below the peer's wl1: C ignores its window,
    /// so a pending ack or window update must still go on its own).
    fn emit(&mut self, header: Header, payload: &[u8], out: &mut Vec<u8>, fresh: bool) {
        out.clear();
        let packet = Packet {
            header,
            sacks: Vec::new(),
            payload,
        };
        packet.encode_into(out);
        if fresh {
            self.ack_needed = false;
            self.advertised = header.rwnd;
        }
    }

    /// Writes the next datagram to send now into `out` (cleared first); false when there
    /// is none now (see [`poll_timeout`](Self::poll_timeout) for when to ask again).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if self.destroy_due {
            self.destroy_due = false;
            let header = self.header(Flags::DESTROY, self.send.next());
            self.emit(header, &[], out, true);
            return true;
        }
        if self.remote_id.is_none() || self.error.is_some() {
            return false;
        }
        if !self.closed && self.poll_data(now, out) {
            return true;
        }
        if self.ack_needed || self.sack_due {
            let sacks = self.recv.sacks();
            let flags = if sacks.is_empty() {
                Flags::ACK
            } else {
                Flags::SACK
            };
            let header = self.header(flags, self.send.next());
            out.clear();
            Packet {
                header,
                sacks,
                payload: &[],
            }
            .encode_into(out);
            self.ack_needed = false;
            self.sack_due = false;
            self.advertised = header.rwnd;
            return true;
        }
        if self.closed {
            return false;
        }
        if self.heartbeat_due {
            self.heartbeat_due = false;
            let header = self.header(Flags::HEARTBEAT, self.send.next());
            self.emit(header, &[], out, true);
            return true;
        }
        if let Some(message) = self.messages_out.pop_front() {
            let header = self.header(Flags::MESSAGE, self.send.next());
            self.emit(header, &message, out, true);
            return true;
        }
        false
    }

    fn poll_data(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let mss = self.mtu.mss();
        let end = self.end_wanted && self.end_seq.is_none();
        if self.tlp_due {
            self.tlp_due = false;
            let fits = self.new_data_fits();
            let packet = if fits && (self.send.unsent() > 0 || end) {
                self.send.next_new(mss, end, now, None).cloned()
            } else {
                self.send.probe_last(now).cloned()
            };
            if let Some(seq) = self.send.take_probe_lost() {
                self.mtu.probe_lost(seq);
            }
            if let Some(p) = packet {
                if p.end {
                    self.end_seq = Some(p.seq);
                }
                self.tlp_seq = Some(p.seq);
                self.rto_at = Some(now + self.rtt.rto());
                self.send_data(&p, out);
                return true;
            }
        }
        let (packets, _) = self.send.in_flight();
        let window = self.cubic.window();
        let has_new = self.send.unsent() > 0 || end;
        if !(self.send.has_lost() || has_new) {
            return false;
        }
        if packets >= window {
            self.cwnd_limited = true;
            return false;
        }
        let rate = Pacer::rate(&self.cubic, mss, self.rtt.srtt());
        let pad_to = self.mtu.probe_size();
        let size = HEADER_LEN + pad_to.unwrap_or(mss).min(self.send.unsent().max(1));
        let release = self.pacer.release(now, rate, size, mss);
        if release > now {
            self.pacing_at = Some(release);
            return false;
        }
        self.pacing_at = None;
        let mut packet = None;
        while packet.is_none() && self.send.has_lost() {
            packet = self.send.next_retransmit(now).cloned();
        }
        if let Some(seq) = self.send.take_probe_lost() {
            self.mtu.probe_lost(seq);
        }
        if packet.is_none() && has_new && self.new_data_fits() {
            packet = self.send.next_new(mss, end, now, pad_to).cloned();
            if let Some(p) = packet.as_ref().filter(|p| p.padding > 0) {
                self.mtu
                    .probe_sent(p.seq, p.payload.len() + usize::from(p.padding));
            }
        }
        let Some(p) = packet else {
            self.rearm(now, false, false);
            return false;
        };
        if p.end {
            self.end_seq = Some(p.seq);
        }
        self.pacer
            .sent(HEADER_LEN + p.payload.len() + usize::from(p.padding));
        self.cwnd_limited = 2 * (packets + 1) >= window;
        self.send_data(&p, out);
        let new = p.seq + 1 == self.send.next();
        self.rearm(now, false, new);
        true
    }

    /// Whether one more new packet fits the peer's receive window (C: at least one
    /// packet whenever the window is not 0).
    fn new_data_fits(&self) -> bool {
        let (packets, bytes) = self.send.in_flight();
        let next = self.mtu.mss().min(self.send.unsent());
        let window = self.remote_window as usize;
        window > 0 && (packets == 0 || bytes + next <= window)
    }

    fn send_data(&mut self, p: &Sent, out: &mut Vec<u8>) {
        let fresh = p.seq + 1 == self.send.next();
        let mut flags = Flags::ACK;
        if !p.payload.is_empty() {
            flags = flags | Flags::DATA;
        }
        if p.end {
            flags = flags | Flags::END;
        }
        let mut header = self.header(flags, p.seq);
        header.data_offset = p.padding;
        self.emit(header, &p.payload, out, fresh);
    }

    /// Payload bytes per data packet now (MTU probing raises it from `Config::mss`).
    pub fn mss(&self) -> usize {
        self.mtu.mss()
    }
}
