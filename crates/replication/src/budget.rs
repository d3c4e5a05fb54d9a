//! A byte budget between one producer and its consumers: the bytes a connection holds
//! that its reader has not taken yet. The producer waits when the next item does not fit
//! (so the peer's sends wait on flow control; nothing is dropped); one item larger than
//! the whole budget still passes when nothing else is held, so any frame the format
//! allows gets through.
//!
//! Used by the transport (decrypted frames the session has not read,
//! [`crate::transport::MAX_INBOUND_BYTES`]) and by the session (messages in its channels'
//! queues that their tasks have not handled, [`crate::protomux::MAX_QUEUED_BYTES`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Bytes held against a limit (see the module docs). One producer reserves; any number
/// of consumers release.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    limit: usize,
    held: AtomicUsize,
    /// Whether the producer waits (only then is it woken: no lock taken per item
    /// otherwise).
    waiting: AtomicBool,
    taken: Notify,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        ByteBudget {
            limit,
            held: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            taken: Notify::new(),
        }
    }

    fn fits(&self, n: usize) -> bool {
        let held = self.held.load(Ordering::SeqCst);
        held == 0 || held.saturating_add(n) <= self.limit
    }

    /// Counts `n` bytes if they fit now; `false` (nothing counted) if not.
    pub(crate) fn try_reserve(&self, n: usize) -> bool {
        if !self.fits(n) {
            return false;
        }
        self.held.fetch_add(n, Ordering::SeqCst);
        true
    }

    /// Waits until `n` more bytes fit (or nothing is held), then counts them. Returns
    /// whether it had to wait.
    pub(crate) async fn reserve(&self, n: usize) -> bool {
        let waited = !self.fits(n);
        if waited {
            loop {
                let taken = self.taken.notified();
                tokio::pin!(taken);
                taken.as_mut().enable();
                self.waiting.store(true, Ordering::SeqCst);
                if self.fits(n) {
                    break;
                }
                taken.await;
            }
            self.waiting.store(false, Ordering::SeqCst);
        }
        self.held.fetch_add(n, Ordering::SeqCst);
        waited
    }

    /// A consumer took an item of `n` bytes.
    pub(crate) fn release(&self, n: usize) {
        let _ = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
                Some(h.saturating_sub(n))
            });
        if self.waiting.load(Ordering::SeqCst) {
            self.taken.notify_one();
        }
    }

    /// The bytes held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn the_producer_waits_until_a_consumer_releases() {
        let budget = Arc::new(ByteBudget::new(100));
        assert!(budget.try_reserve(60));
        assert!(!budget.try_reserve(50), "past the limit");
        assert_eq!(budget.held(), 60);
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(50).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "reserved past the limit");
        budget.release(60);
        assert!(waiter.await.unwrap_or(false), "it did not wait");
        assert_eq!(budget.held(), 50);
        // One item larger than the budget passes when nothing else is held.
        budget.release(50);
        assert!(budget.try_reserve(1000));
    }
}
