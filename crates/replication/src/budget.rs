//! A byte budget between one producer and its consumers: the bytes a connection holds
//! that its reader has not taken yet. The producer waits when the next item does not fit
//! (so the peer's sends wait on flow control; nothing is dropped); one item larger than
//! the whole budget still passes when nothing else is held, so any frame the format
//! allows gets through.
//!
//! Used by the transport (decrypted frames the session has not read,
//! [`crate::transport::MAX_INBOUND_BYTES`]) and by the session (messages in its channels'
//! queues that their tasks have not handled, [`crate::protomux::MAX_CHANNEL_QUEUE_BYTES`]);
//! each kind also draws from one [`Pool`] for the whole process, so the bytes held are
//! bounded across connections too ([`crate::transport::MAX_TOTAL_INBOUND_BYTES`],
//! [`crate::protomux::MAX_TOTAL_CHANNEL_QUEUE_BYTES`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Notify, Semaphore};

/// A pool of bytes shared by every connection's budget of one kind in the process (a
/// tokio semaphore: fair, many producers). A budget draws from it after its own limit;
/// an item larger than the whole pool is counted as the whole pool.
#[derive(Debug)]
pub(crate) struct Pool {
    bytes: usize,
    permits: Semaphore,
}

impl Pool {
    /// A pool of `bytes` (at most `u32::MAX`).
    pub(crate) const fn new(bytes: usize) -> Self {
        Pool {
            bytes,
            permits: Semaphore::const_new(bytes),
        }
    }

    fn share(&self, n: usize) -> u32 {
        u32::try_from(n.min(self.bytes)).unwrap_or(u32::MAX)
    }

    /// Bytes of the pool not counted by any budget now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

/// Bytes held against a limit (see the module docs). One producer reserves; any number
/// of consumers release.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    limit: usize,
    /// The process-wide pool this budget also draws from, if any.
    pool: Option<&'static Pool>,
    held: AtomicUsize,
    /// Whether the producer waits (only then is it woken: no lock taken per item
    /// otherwise).
    waiting: AtomicBool,
    taken: Notify,
}

impl ByteBudget {
    /// A budget of `limit` bytes, drawing from no pool.
    #[cfg(test)]
    pub(crate) fn new(limit: usize) -> Self {
        Self::with_pool(limit, None)
    }

    /// A budget of `limit` bytes whose items also count against `pool`.
    pub(crate) fn with_pool(limit: usize, pool: Option<&'static Pool>) -> Self {
        ByteBudget {
            limit,
            pool,
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
        if let Some(pool) = self.pool {
            match pool.permits.try_acquire_many(pool.share(n)) {
                Ok(permit) => permit.forget(),
                Err(_) => return false,
            }
        }
        self.held.fetch_add(n, Ordering::SeqCst);
        true
    }

    /// Waits until `n` more bytes fit (or nothing is held), then counts them. Returns
    /// whether it had to wait.
    pub(crate) async fn reserve(&self, n: usize) -> bool {
        let mut waited = !self.fits(n);
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
        if let Some(pool) = self.pool {
            let share = pool.share(n);
            match pool.permits.try_acquire_many(share) {
                Ok(permit) => permit.forget(),
                Err(_) => {
                    waited = true;
                    // The pool's semaphore is never closed.
                    if let Ok(permit) = pool.permits.acquire_many(share).await {
                        permit.forget();
                    }
                }
            }
        }
        self.held.fetch_add(n, Ordering::SeqCst);
        waited
    }

    /// A consumer took an item of `n` bytes.
    pub(crate) fn release(&self, n: usize) {
        if let Some(pool) = self.pool {
            pool.permits.add_permits(pool.share(n) as usize);
        }
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

    /// Issue 21: bytes held across connections are bounded in total. Ten connections'
    /// budgets of 4 MiB each share a pool of 10 MiB: at most two take 4 MiB at once, the
    /// third waits until one is released (without the pool all ten would hold 40 MiB).
    #[tokio::test]
    async fn budgets_sharing_a_pool_hold_at_most_the_pool() {
        const MIB: usize = 1 << 20;
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(10 * MIB)));
        let budgets: Vec<Arc<ByteBudget>> = (0..10)
            .map(|_| Arc::new(ByteBudget::with_pool(4 * MIB, Some(pool))))
            .collect();
        let took: Vec<bool> = budgets.iter().map(|b| b.try_reserve(4 * MIB)).collect();
        assert_eq!(took.iter().filter(|t| **t).count(), 2, "{took:?}");
        assert_eq!(pool.available(), 2 * MIB);
        // A refused budget counted nothing, of its own or of the pool.
        assert_eq!(budgets[9].held(), 0);
        let waiter = {
            let b = budgets[9].clone();
            tokio::spawn(async move { b.reserve(4 * MIB).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "took past the pool");
        budgets[0].release(4 * MIB);
        assert!(waiter.await.unwrap_or(false), "it did not wait");
        assert_eq!(pool.available(), 2 * MIB);
        // An item larger than the pool counts as the whole pool, and passes alone.
        budgets[1].release(4 * MIB);
        budgets[9].release(4 * MIB);
        assert_eq!(pool.available(), 10 * MIB);
        assert!(budgets[2].try_reserve(16 * MIB));
        assert_eq!(pool.available(), 0);
        budgets[2].release(16 * MIB);
        assert_eq!(pool.available(), 10 * MIB);
    }

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
