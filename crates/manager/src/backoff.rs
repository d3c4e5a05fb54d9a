//! [`Backoff`]: the one pacing policy of the manager's retry loops (accepting, dialling,
//! redialling, reconnecting): a delay that doubles from `min` up to `max`, reset after
//! a success.

use std::time::Duration;

/// Exponential pacing of a retried operation: `min`, `2 * min`, ... up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    /// Delays handed out since the last reset (or since creation).
    pub(crate) attempts: u32,
}

impl Backoff {
    /// Pacing from `min` doubling to `max` (`max` below `min` is taken as `min`).
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
            attempts: 0,
        }
    }

    /// The delay to wait before the next attempt; the one after is doubled (capped).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        self.attempts = self.attempts.saturating_add(1);
        delay
    }

    /// Back to `min` (the operation succeeded).
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(10), ms(100));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]);
        assert_eq!(b.attempts, 6);
        b.reset();
        assert_eq!((b.next_delay(), b.attempts), (ms(10), 1));
    }

    #[test]
    fn never_overflows_and_never_goes_below_min() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        let mut huge = Backoff::new(Duration::MAX / 2, Duration::MAX);
        for _ in 0..5 {
            assert!(huge.next_delay() >= Duration::MAX / 2);
        }
    }
}
