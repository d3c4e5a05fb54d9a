//! Round-trip time: smoothed estimate, variance, windowed minimum and the
//! retransmission timeout (RFC 6298, as C libudx computes them; docs/udx-protocol.md
//! §3.3), kept in microseconds rather than C's whole milliseconds so that a loopback
//! or LAN path (well under 1 ms) still paces and probes on real numbers.

use std::time::{Duration, Instant};

/// The retransmission timeout never goes below this (C: 1,000 ms).
pub const MIN_RTO: Duration = Duration::from_millis(1000);
/// Nor above this (C: `UDX_RTO_MAX_MS`).
pub const MAX_RTO: Duration = Duration::from_secs(30);
/// How long a minimum RTT sample is remembered (C: 300 s; ours shorter, so that a path
/// that got slower is seen within a minute).
const MIN_RTT_WINDOW: Duration = Duration::from_secs(60);

/// The RTT estimator of one stream.
#[derive(Debug, Clone)]
pub struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
    min: Option<(Duration, Instant)>,
    latest: Duration,
}

impl Default for Rtt {
    fn default() -> Self {
        Rtt::new()
    }
}

impl Rtt {
    /// No sample yet.
    pub fn new() -> Self {
        Rtt {
            srtt: None,
            rttvar: Duration::ZERO,
            min: None,
            latest: Duration::ZERO,
        }
    }

    /// Takes one sample (from a packet never retransmitted: Karn's rule is the
    /// caller's). A sample far above the estimate (a suspended process, not the path)
    /// is cut to `srtt + 5 rttvar` as C does.
    pub fn sample(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.min(MAX_RTO);
        let rtt = match self.srtt {
            Some(srtt) => {
                let cap = srtt + 5 * self.rttvar;
                if rtt > cap && rtt > Duration::from_secs(5) {
                    cap
                } else {
                    rtt
                }
            }
            None => rtt,
        };
        self.latest = rtt;
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (3 * self.rttvar + diff) / 4;
                self.srtt = Some((7 * srtt + rtt) / 8);
            }
        }
        let expired = self.min.is_none_or(|(min, at)| {
            rtt <= min || now.saturating_duration_since(at) > MIN_RTT_WINDOW
        });
        if expired {
            self.min = Some((rtt, now));
        }
    }

    /// The smoothed RTT, if any sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The smoothed RTT, or `fallback` before the first sample.
    pub fn srtt_or(&self, fallback: Duration) -> Duration {
        self.srtt.unwrap_or(fallback)
    }

    /// The smallest recent sample.
    pub fn min(&self) -> Option<Duration> {
        self.min.map(|(min, _)| min)
    }

    /// The latest sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// The retransmission timeout: `srtt + 4 rttvar`, within [`MIN_RTO`]..[`MAX_RTO`]
    /// (1 s before any sample).
    pub fn rto(&self) -> Duration {
        match self.srtt {
            Some(srtt) => (srtt + 4 * self.rttvar).clamp(MIN_RTO, MAX_RTO),
            None => MIN_RTO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_sets_the_estimate_and_later_ones_smooth_it() {
        let now = Instant::now();
        let mut rtt = Rtt::new();
        assert_eq!(rtt.rto(), MIN_RTO);
        rtt.sample(Duration::from_millis(80), now);
        assert_eq!(rtt.srtt(), Some(Duration::from_millis(80)));
        assert_eq!(rtt.rto(), Duration::from_millis(1000));
        for _ in 0..50 {
            rtt.sample(Duration::from_millis(400), now);
        }
        let srtt = rtt.srtt().unwrap();
        assert!(srtt > Duration::from_millis(390) && srtt <= Duration::from_millis(400));
        assert_eq!(rtt.min(), Some(Duration::from_millis(80)));
        // A suspended process's sample is cut.
        rtt.sample(Duration::from_secs(25), now);
        assert!(rtt.latest() < Duration::from_secs(2));
    }

    #[test]
    fn the_minimum_expires() {
        let now = Instant::now();
        let mut rtt = Rtt::new();
        rtt.sample(Duration::from_millis(10), now);
        rtt.sample(Duration::from_millis(30), now + Duration::from_secs(30));
        assert_eq!(rtt.min(), Some(Duration::from_millis(10)));
        rtt.sample(Duration::from_millis(30), now + Duration::from_secs(61));
        assert_eq!(rtt.min(), Some(Duration::from_millis(30)));
    }
}
