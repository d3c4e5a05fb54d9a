//! Congestion control and pacing for our UDX stream: CUBIC (RFC 9438) in packets, and a
//! pacer that spreads a window over the RTT with sub-millisecond release times.
//!
//! Sender-local policy: nothing here is on the wire, so any sane controller
//! interoperates with C libudx (which runs BBR, docs/udx-protocol.md §4). CUBIC was
//! chosen for its small state and its known behaviour on lossy long paths; the pacer is
//! what C's 1 ms token bucket and the Rust crate's ~1 packet per ms were not: a release
//! time per packet, computed exactly, with a small burst allowance so that a driver
//! whose timer fires late (tokio's is 1 ms grained) catches up instead of falling behind.

use std::time::{Duration, Instant};

/// Initial window, packets (RFC 6928, and C).
pub const INITIAL_WINDOW: f64 = 10.0;
/// The window never goes below this many packets.
pub const MIN_WINDOW: f64 = 2.0;
/// Nor above (a bound, far beyond any window the receive windows allow).
pub const MAX_WINDOW: f64 = 100_000.0;
/// CUBIC's multiplicative decrease.
const BETA: f64 = 0.7;
/// CUBIC's scaling constant (packets / s^3).
const C: f64 = 0.4;

/// CUBIC's window.
#[derive(Debug, Clone)]
pub struct Cubic {
    cwnd: f64,
    ssthresh: f64,
    w_max: f64,
    k: f64,
    epoch: Option<Instant>,
    /// The Reno-friendly estimate (RFC 9438 §4.3).
    w_est: f64,
}

impl Default for Cubic {
    fn default() -> Self {
        Cubic::new()
    }
}

impl Cubic {
    /// Slow start from the initial window.
    pub fn new() -> Self {
        Cubic {
            cwnd: INITIAL_WINDOW,
            ssthresh: f64::INFINITY,
            w_max: 0.0,
            k: 0.0,
            epoch: None,
            w_est: 0.0,
        }
    }

    /// Packets that may be in flight.
    pub fn window(&self) -> usize {
        self.cwnd as usize
    }

    /// Whether still in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// `acked` packets were delivered. `limited`: the window, not the application or
    /// the peer's receive window, was what held the sender back (an application-limited
    /// sender's window does not grow: it has not been tested).
    pub fn on_ack(&mut self, acked: usize, now: Instant, srtt: Duration, limited: bool) {
        if acked == 0 || !limited {
            return;
        }
        let acked = acked as f64;
        if self.cwnd < self.ssthresh {
            self.cwnd = (self.cwnd + acked).min(MAX_WINDOW);
            return;
        }
        let epoch = *self.epoch.get_or_insert_with(|| {
            self.k = if self.w_max > self.cwnd {
                ((self.w_max - self.cwnd) / C).cbrt()
            } else {
                0.0
            };
            self.w_est = self.cwnd;
            now
        });
        if self.w_max < self.cwnd && self.k == 0.0 {
            self.w_max = self.cwnd;
        }
        let t = now.saturating_duration_since(epoch).as_secs_f64() + srtt.as_secs_f64();
        let target = C * (t - self.k).powi(3) + self.w_max;
        self.w_est += 3.0 * (1.0 - BETA) / (1.0 + BETA) * acked / self.cwnd;
        let grow = if target > self.cwnd {
            (target - self.cwnd) / self.cwnd * acked
        } else {
            0.01 * acked / self.cwnd
        };
        self.cwnd = (self.cwnd + grow).max(self.w_est).min(MAX_WINDOW);
    }

    /// A loss was detected (once per round of recovery): multiplicative decrease.
    pub fn on_congestion(&mut self) {
        self.epoch = None;
        // Fast convergence: a flow losing below its last maximum lets others grow.
        self.w_max = if self.cwnd < self.w_max {
            self.cwnd * (1.0 + BETA) / 2.0
        } else {
            self.cwnd
        };
        self.cwnd = (self.cwnd * BETA).max(MIN_WINDOW);
        self.ssthresh = self.cwnd;
    }

    /// The retransmission timer expired: everything in flight is presumed lost.
    pub fn on_timeout(&mut self) {
        self.on_congestion();
        self.cwnd = MIN_WINDOW;
    }
}

/// Releases packets at `gain × window / srtt`.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Bytes that may go now.
    tokens: f64,
    last: Option<Instant>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

/// The pacer's burst: this much time's worth of rate, at least this many packets.
const BURST_TIME: Duration = Duration::from_millis(2);
const BURST_PACKETS: f64 = 10.0;

impl Pacer {
    /// A pacer with a full burst.
    pub fn new() -> Self {
        Pacer {
            tokens: f64::INFINITY,
            last: None,
        }
    }

    /// The sending rate in bytes per second, if there is an RTT to pace over.
    pub fn rate(cubic: &Cubic, mss: usize, srtt: Option<Duration>) -> Option<f64> {
        let srtt = srtt?.as_secs_f64().max(1e-6);
        let gain = if cubic.in_slow_start() { 2.0 } else { 1.25 };
        Some(gain * cubic.cwnd * mss as f64 / srtt)
    }

    fn refill(&mut self, now: Instant, rate: f64, mss: usize) {
        let burst = (rate * BURST_TIME.as_secs_f64()).max(BURST_PACKETS * mss as f64);
        let elapsed = self.last.map_or(0.0, |last| {
            now.saturating_duration_since(last).as_secs_f64()
        });
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = Some(now);
    }

    /// When a packet of `size` bytes may go (now or later); `None` when `rate` is unknown
    /// (no RTT yet: the window alone limits).
    pub fn release(&mut self, now: Instant, rate: Option<f64>, size: usize, mss: usize) -> Instant {
        let Some(rate) = rate else {
            return now;
        };
        self.refill(now, rate, mss);
        if self.tokens >= size as f64 {
            return now;
        }
        let wait = (size as f64 - self.tokens) / rate;
        now + Duration::from_secs_f64(wait.min(1.0))
    }

    /// A packet of `size` bytes went.
    pub fn sent(&mut self, size: usize) {
        if self.tokens.is_finite() {
            self.tokens -= size as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_doubles_then_loss_cuts_and_cubic_regrows() {
        let now = Instant::now();
        let rtt = Duration::from_millis(50);
        let mut c = Cubic::new();
        c.on_ack(10, now, rtt, true);
        assert_eq!(c.window(), 20);
        c.on_ack(10, now, rtt, false);
        assert_eq!(c.window(), 20, "application-limited: no growth");
        c.on_congestion();
        assert_eq!(c.window(), 14);
        assert!(!c.in_slow_start());
        let mut t = now;
        for _ in 0..200 {
            t += rtt;
            let w = c.window();
            c.on_ack(w, t, rtt, true);
        }
        assert!(
            c.window() > 20,
            "regrows past the old maximum: {}",
            c.window()
        );
        c.on_timeout();
        assert_eq!(c.window(), 2);
    }

    #[test]
    fn the_pacer_spreads_a_window_over_the_rtt() {
        let now = Instant::now();
        let c = Cubic::new();
        let mss = 1000;
        let rate = Pacer::rate(&c, mss, Some(Duration::from_millis(100)));
        assert_eq!(rate, Some(2.0 * 10.0 * 1000.0 / 0.1));
        let mut p = Pacer::new();
        // The burst goes at once, then one packet per 1/rate.
        let mut t = now;
        let mut sent = 0;
        while p.release(t, rate, mss, mss) == t {
            p.sent(mss);
            sent += 1;
        }
        assert_eq!(sent, 10);
        let next = p.release(t, rate, mss, mss);
        assert_eq!(next - t, Duration::from_secs_f64(1000.0 / 200_000.0));
        t = next;
        assert_eq!(p.release(t, rate, mss, mss), t);
        assert_eq!(Pacer::new().release(now, None, mss, mss), now);
    }
}
