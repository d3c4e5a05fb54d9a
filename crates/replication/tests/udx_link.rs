//! Our UDX stream (`replication::udx::stream`) between two endpoints over a simulated
//! link with a virtual clock (this kernel has no netem): one-way latency, jitter that
//! reorders, loss, duplication, a bandwidth limit with a drop-tail queue. Everything is
//! deterministic (seeded), so a failure replays exactly.
//!
//! Checked: every byte arrives once and in order under loss, reordering and duplication;
//! throughput at 1% and 5% loss on a 50 ms path; no stall (the longest time without
//! delivery); bounded buffering when the reader is slow (the receive window holds, the
//! sender's buffer holds, zero-window probing reopens); a vanished peer times out; a
//! DESTROY resets the peer; and a property test over random links and write patterns.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use nova_hypercore_replication::udx::packet;
use nova_hypercore_replication::udx::stream::{Config, Stream, StreamError};
use nova_hypercore_testkit::replay::Rng;
use proptest::prelude::*;

/// The link's dice: the testkit's seeded xorshift64*, plus a probability draw.
trait Chance {
    fn chance(&mut self, p: f64) -> bool;
}

impl Chance for Rng {
    fn chance(&mut self, p: f64) -> bool {
        // Draws even when `p` is 0, so that one seed gives one run whatever the odds.
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// One direction of the link.
#[derive(Debug, Clone, Copy)]
struct Path {
    delay: Duration,
    jitter: Duration,
    loss: f64,
    duplicate: f64,
    /// Bytes per second; 0: unlimited.
    bandwidth: u64,
    /// Bytes queued before the bottleneck drops (drop-tail).
    queue: usize,
    /// Largest datagram (UDX header and payload) the path carries; larger ones are
    /// lost, as with don't-fragment set.
    mtu: usize,
}

impl Path {
    fn clean(delay: Duration) -> Self {
        Path {
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            bandwidth: 0,
            queue: usize::MAX,
            mtu: usize::MAX,
        }
    }
}

#[derive(PartialEq, Eq)]
struct InFlight {
    at: Instant,
    order: u64,
    to: usize,
    bytes: Vec<u8>,
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.cmp(&self.at).then(other.order.cmp(&self.order))
    }
}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct Link {
    paths: [Path; 2],
    /// When each direction's bottleneck is free again.
    free_at: [Instant; 2],
    queue: BinaryHeap<InFlight>,
    order: u64,
    rng: Rng,
    sent: [u64; 2],
    dropped: [u64; 2],
}

impl Link {
    fn new(paths: [Path; 2], seed: u64, now: Instant) -> Self {
        Link {
            paths,
            free_at: [now; 2],
            queue: BinaryHeap::new(),
            order: 0,
            rng: Rng::new(seed),
            sent: [0; 2],
            dropped: [0; 2],
        }
    }

    /// A datagram from endpoint `from` at `now`.
    fn send(&mut self, from: usize, bytes: Vec<u8>, now: Instant) {
        let path = self.paths[from];
        self.sent[from] += 1;
        if bytes.len() > path.mtu {
            self.dropped[from] += 1;
            return;
        }
        let mut depart = now;
        if path.bandwidth > 0 {
            let start = self.free_at[from].max(now);
            let backlog =
                start.saturating_duration_since(now).as_secs_f64() * path.bandwidth as f64;
            if backlog as usize + bytes.len() > path.queue {
                self.dropped[from] += 1;
                return;
            }
            depart = start + Duration::from_secs_f64(bytes.len() as f64 / path.bandwidth as f64);
            self.free_at[from] = depart;
        }
        if self.rng.chance(path.loss) {
            self.dropped[from] += 1;
            return;
        }
        let copies = if self.rng.chance(path.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = Duration::from_nanos(self.rng.below(path.jitter.as_nanos() as u64 + 1));
            self.order += 1;
            self.queue.push(InFlight {
                at: depart + path.delay + jitter,
                order: self.order,
                to: 1 - from,
                bytes: bytes.clone(),
            });
        }
    }

    fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|p| p.at)
    }

    fn due(&mut self, now: Instant) -> Option<InFlight> {
        if self.queue.peek().is_some_and(|p| p.at <= now) {
            self.queue.pop()
        } else {
            None
        }
    }
}

/// Two streams, `0` writing `data` then ending, `1` reading (at most `read_rate`
/// bytes per second when set) and ending once it saw EOF.
struct Run {
    streams: [Stream; 2],
    link: Link,
    now: Instant,
    data: Vec<u8>,
    written: usize,
    got: Vec<u8>,
    read_rate: Option<u64>,
    read_budget: f64,
    /// The reader reads nothing before this.
    pause_until: Option<Instant>,
    /// Longest time without a byte delivered to the reader, while it waited for some.
    longest_stall: Duration,
    last_progress: Instant,
    max_readable: usize,
    max_writer_held: usize,
    start: Instant,
    /// Write sizes cycle through these.
    write_sizes: Vec<usize>,
    writes: usize,
}

impl Run {
    fn new(paths: [Path; 2], seed: u64, data: Vec<u8>, config: Config) -> Self {
        let start = Instant::now();
        let mut a = Stream::new(config.clone());
        let mut b = Stream::new(config);
        a.connect(2);
        b.connect(1);
        Run {
            streams: [a, b],
            link: Link::new(paths, seed, start),
            now: start,
            data,
            written: 0,
            got: Vec::new(),
            read_rate: None,
            read_budget: 0.0,
            pause_until: None,
            longest_stall: Duration::ZERO,
            last_progress: start,
            max_readable: 0,
            max_writer_held: 0,
            start,
            write_sizes: vec![64 * 1024],
            writes: 0,
        }
    }

    fn app(&mut self) {
        let [a, b] = &mut self.streams;
        while self.written < self.data.len() && a.writable() > 0 {
            let size = self.write_sizes[self.writes % self.write_sizes.len()].max(1);
            let end = (self.written + size).min(self.data.len());
            let n = a.write(&self.data[self.written..end]).unwrap();
            self.written += n;
            self.writes += 1;
            if n == 0 {
                break;
            }
        }
        if self.written == self.data.len() {
            a.end();
        }
        self.max_readable = self.max_readable.max(b.readable());
        let paused = self.pause_until.is_some_and(|t| self.now < t);
        loop {
            if paused || (self.read_rate.is_some() && self.read_budget <= 0.0) {
                break;
            }
            let Some(chunk) = b.read() else { break };
            self.read_budget -= chunk.len() as f64;
            self.got.extend_from_slice(&chunk);
            self.last_progress = self.now;
        }
        if b.eof() {
            b.end();
        }
        // Also drain anything the writer receives (nothing is expected).
        while a.read().is_some() {}
        if a.eof() {
            a.end();
        }
        self.max_writer_held = self
            .max_writer_held
            .max(self.written - self.got.len().min(self.written));
    }

    fn transmit(&mut self) {
        let mut out = Vec::new();
        for from in 0..2 {
            // A bound per turn so that a runaway sender shows up as a failure, not a hang.
            for _ in 0..100_000 {
                if !self.streams[from].poll_transmit(self.now, &mut out) {
                    break;
                }
                assert!(out.len() <= packet::MAX_DATAGRAM);
                self.link.send(from, out.clone(), self.now);
            }
        }
    }

    /// Runs until both streams closed or `limit` of virtual time passed.
    fn run(&mut self, limit: Duration) {
        loop {
            self.app();
            self.transmit();
            if self.streams.iter().all(Stream::is_closed) && self.link.queue.is_empty() {
                return;
            }
            let mut next = [
                self.link.next_at(),
                self.streams[0].poll_timeout(),
                self.streams[1].poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            if let Some(t) = self.pause_until.filter(|t| *t > self.now) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            if self.read_rate.is_some() && self.streams[1].readable() > 0 {
                // The slow reader wakes every millisecond.
                let tick = self.now + Duration::from_millis(1);
                next = Some(next.map_or(tick, |n| n.min(tick)));
            }
            let Some(next) = next else {
                return;
            };
            let next = next.max(self.now);
            if next - self.start > limit {
                return;
            }
            if let Some(rate) = self.read_rate {
                self.read_budget = (self.read_budget
                    + (next - self.now).as_secs_f64() * rate as f64)
                    .min(rate as f64);
            }
            let waiting = self.got.len() < self.data.len();
            if waiting {
                self.longest_stall = self.longest_stall.max(next - self.last_progress);
            }
            self.now = next;
            while let Some(p) = self.link.due(self.now) {
                let packet = packet::decode(&p.bytes).unwrap().unwrap();
                let expected = if p.to == 0 { 1 } else { 2 };
                assert_eq!(packet.header.id, expected);
                self.streams[p.to].on_packet(self.now, &packet);
            }
            for s in &mut self.streams {
                if s.poll_timeout().is_some_and(|t| t <= self.now) {
                    s.on_timeout(self.now);
                }
            }
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn throughput(&self) -> f64 {
        self.got.len() as f64 / self.elapsed().as_secs_f64()
    }
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn lossy(delay_ms: u64, loss: f64, bandwidth: u64) -> Path {
    Path {
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::ZERO,
        loss,
        duplicate: 0.0,
        bandwidth,
        queue: 256 * 1024,
        mtu: usize::MAX,
    }
}

fn report(name: &str, run: &Run) {
    println!(
        "UDX_SIM {name} bytes={} elapsed={:?} throughput_kib_s={:.0} stall={:?} sent={:?} dropped={:?} srtt={:?} cwnd={}",
        run.got.len(),
        run.elapsed(),
        run.throughput() / 1024.0,
        run.longest_stall,
        run.link.sent,
        run.link.dropped,
        run.streams[0].srtt(),
        run.streams[0].congestion_window(),
    );
}

#[test]
fn a_clean_path_delivers_everything_in_order_and_both_sides_close() {
    let bytes = data(8 << 20, 1);
    let mut run = Run::new(
        [Path::clean(Duration::from_millis(5)); 2],
        1,
        bytes.clone(),
        Config::default(),
    );
    run.run(Duration::from_secs(60));
    report("clean", &run);
    assert!(run.got == bytes, "every byte once, in order");
    assert!(run.streams.iter().all(Stream::is_closed));
    assert!(run.streams.iter().all(|s| s.error().is_none()));
    // 8 MiB on a 10 ms RTT path without a bandwidth limit: the window opens fast.
    assert!(
        run.elapsed() < Duration::from_secs(2),
        "{:?}",
        run.elapsed()
    );
}

/// MTU probing: on a path that carries 1,500-byte packets the payload grows from 1,152
/// to 1,452 bytes (by jumps first); on one that carries at most 1,300-byte datagrams (20
/// of them the UDX header) it climbs by 32-byte steps to the last that fits, 1,280,
/// after a jump and three steps are lost; every byte still arrives (a
/// lost probe is resent without its padding) and nothing but the probes is too large.
#[test]
fn mtu_probing_finds_the_largest_step_the_path_carries() {
    for (mtu, expected) in [
        (usize::MAX, 1452),
        (1500 - 28, 1452),
        (1300, 1280),
        (1180, 1152),
    ] {
        let path = Path {
            mtu,
            ..Path::clean(Duration::from_millis(5))
        };
        let bytes = data(2 << 20, 9);
        let mut run = Run::new([path; 2], 9, bytes.clone(), Config::default());
        run.run(Duration::from_secs(60));
        assert!(run.got == bytes, "every byte once, in order (mtu {mtu})");
        assert!(run.streams.iter().all(Stream::is_closed), "both closed");
        assert_eq!(run.streams[0].mss(), expected, "path carries {mtu} bytes");
        // Only the probes (a jump, then three steps) were too large for the path.
        assert!(run.link.dropped[0] <= 4, "{:?}", run.link.dropped);
        // A lost probe is no congestion signal: the transfer takes no longer than it
        // does without probing (virtual time: the runs are deterministic).
        let without = Config {
            max_mss: Config::default().mss,
            ..Config::default()
        };
        let mut plain = Run::new([path; 2], 9, bytes.clone(), without);
        plain.run(Duration::from_secs(60));
        assert!(plain.got == bytes);
        println!(
            "UDX_SIM mtu={mtu} probing={:?} plain={:?}",
            run.elapsed(),
            plain.elapsed()
        );
        assert!(
            run.elapsed() <= plain.elapsed() + plain.elapsed() / 10,
            "path carries {mtu}: {:?} with probing, {:?} without",
            run.elapsed(),
            plain.elapsed()
        );
    }
}

fn lossy_run(loss: f64, seed: u64) -> Run {
    // 50 ms RTT, 10 Mbit/s each way, 256 KiB bottleneck queue.
    let path = lossy(25, loss, 1_250_000);
    let bytes = data(4 << 20, seed);
    let mut run = Run::new([path; 2], seed, bytes.clone(), Config::default());
    run.run(Duration::from_secs(600));
    assert!(run.got == bytes, "every byte once, in order (loss {loss})");
    assert!(run.streams.iter().all(Stream::is_closed), "both closed");
    run
}

#[test]
fn one_percent_loss_at_50_ms_keeps_most_of_the_bandwidth() {
    let run = lossy_run(0.01, 2);
    report("loss_1pct", &run);
    // The link carries 1.25 MB/s; a Reno flow at 1% loss and 50 ms would get about
    // 1152 / 0.05 x 1.22 / sqrt(0.01) = 280 KB/s.
    assert!(run.throughput() > 400_000.0, "{:.0} B/s", run.throughput());
    assert!(
        run.longest_stall < Duration::from_secs(2),
        "{:?}",
        run.longest_stall
    );
}

#[test]
fn five_percent_loss_at_50_ms_never_stalls() {
    let run = lossy_run(0.05, 3);
    report("loss_5pct", &run);
    assert!(run.throughput() > 100_000.0, "{:.0} B/s", run.throughput());
    assert!(
        run.longest_stall < Duration::from_secs(4),
        "{:?}",
        run.longest_stall
    );
}

#[test]
fn reordering_and_duplication_deliver_once_in_order() {
    let path = Path {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(8),
        loss: 0.01,
        duplicate: 0.05,
        bandwidth: 0,
        queue: usize::MAX,
        mtu: usize::MAX,
    };
    let bytes = data(2 << 20, 4);
    let mut run = Run::new([path; 2], 4, bytes.clone(), Config::default());
    run.run(Duration::from_secs(120));
    report("reorder_dup", &run);
    assert!(run.got == bytes);
    assert!(run.streams.iter().all(Stream::is_closed));
}

#[test]
fn a_slow_reader_bounds_both_buffers_and_the_window_reopens() {
    let config = Config {
        send_buffer: 256 * 1024,
        recv_window: 128 * 1024,
        ..Config::default()
    };
    let bytes = data(2 << 20, 5);
    let mut run = Run::new(
        [Path::clean(Duration::from_millis(10)); 2],
        5,
        bytes.clone(),
        config,
    );
    // 200 KB/s: far slower than the link.
    run.read_rate = Some(200_000);
    run.run(Duration::from_secs(120));
    report("slow_reader", &run);
    assert!(run.got == bytes);
    assert!(
        run.max_readable <= 128 * 1024 + 1152,
        "receiver held {}",
        run.max_readable
    );
    assert!(
        run.max_writer_held <= 256 * 1024 + 128 * 1024 + 2 * 1152,
        "in the pipe {}",
        run.max_writer_held
    );
    // Limited by the reader, not stalled by a shut window.
    assert!(run.throughput() > 150_000.0, "{:.0} B/s", run.throughput());
}

#[test]
fn a_vanished_peer_times_out_and_a_destroy_resets_the_other_side() {
    let bytes = data(1 << 20, 6);
    let mut run = Run::new(
        [Path::clean(Duration::from_millis(10)); 2],
        6,
        bytes,
        Config::default(),
    );
    run.run(Duration::from_millis(30));
    // The path goes dead both ways.
    run.link.paths = [lossy(10, 1.0, 0); 2];
    run.run(Duration::from_secs(120));
    assert_eq!(run.streams[0].error(), Some(StreamError::TimedOut));
    // C gives up after about 13 RTOs of 1 s; ours within the same order.
    assert!(
        run.elapsed() < Duration::from_secs(20),
        "{:?}",
        run.elapsed()
    );

    let mut run = Run::new(
        [Path::clean(Duration::from_millis(10)); 2],
        7,
        data(1 << 20, 7),
        Config::default(),
    );
    run.run(Duration::from_millis(30));
    run.streams[0].destroy();
    run.run(Duration::from_secs(1));
    assert_eq!(run.streams[0].error(), Some(StreamError::Destroyed));
    assert_eq!(run.streams[1].error(), Some(StreamError::Reset));
}

#[test]
fn a_small_window_full_of_out_of_order_data_still_takes_the_missing_packet() {
    // 64 KiB windows on a lossy path: a loss leaves the window full of packets after
    // the gap; the retransmission must still be taken (else: a timeout). Holds while the
    // receiver counts its window as the sender does (payload bytes): with 64 bytes more
    // per packet on the receiver's side only, the gap's packet found no room.
    let config = Config {
        send_buffer: 256 * 1024,
        recv_window: 64 * 1024,
        ..Config::default()
    };
    for seed in [10, 12, 14, 16] {
        let bytes = data(2 << 20, seed);
        let mut run = Run::new([lossy(10, 0.02, 0); 2], seed, bytes.clone(), config.clone());
        run.run(Duration::from_secs(600));
        report("small_window_loss", &run);
        assert!(
            run.streams.iter().all(|s| s.error().is_none()),
            "seed {seed}: {:?}",
            run.streams[0].error()
        );
        assert!(
            run.got == bytes,
            "seed {seed}: got {} of {}",
            run.got.len(),
            bytes.len()
        );
    }
}

#[test]
fn a_reader_that_pauses_longer_than_the_give_up_does_not_kill_the_stream() {
    let config = Config {
        recv_window: 256 * 1024,
        ..Config::default()
    };
    let bytes = data(4 << 20, 20);
    let mut run = Run::new(
        [Path::clean(Duration::from_millis(10)); 2],
        20,
        bytes.clone(),
        config,
    );
    run.pause_until = Some(run.start + Duration::from_secs(40));
    run.run(Duration::from_secs(120));
    report("paused_reader", &run);
    assert!(
        run.streams.iter().all(|s| s.error().is_none()),
        "{:?}",
        run.streams[0].error()
    );
    assert!(run.got == bytes, "got {} of {}", run.got.len(), bytes.len());
    // The window shut while paused: the receiver held at most its window and a packet.
    assert!(
        run.max_readable <= 256 * 1024 + 1152,
        "held {}",
        run.max_readable
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    /// Any link (loss up to 10%, latency, jitter, duplication, a bottleneck) and any
    /// write pattern: the reader gets exactly the bytes written, and both sides close.
    #[test]
    fn any_link_delivers_exactly_what_was_written(
        seed in any::<u64>(),
        len in 0usize..300_000,
        delay_ms in 0u64..80,
        jitter_ms in 0u64..20,
        loss in 0.0f64..0.10,
        duplicate in 0.0f64..0.05,
        bandwidth in prop_oneof![Just(0u64), 100_000u64..5_000_000],
        writes in proptest::collection::vec(1usize..20_000, 1..8),
        mtu in prop_oneof![Just(usize::MAX), 1172usize..1600],
    ) {
        let path = Path {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
            loss,
            duplicate,
            bandwidth,
            queue: 128 * 1024,
            mtu,
        };
        let bytes = data(len, seed);
        let mut run = Run::new([path; 2], seed, bytes.clone(), Config::default());
        run.write_sizes = writes;
        run.run(Duration::from_secs(3600));
        prop_assert!(run.got == bytes, "got {} of {} bytes", run.got.len(), bytes.len());
        prop_assert!(run.streams.iter().all(Stream::is_closed));
        prop_assert!(run.streams.iter().all(|s| s.error().is_none()));
    }
}
