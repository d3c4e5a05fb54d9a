//! Who we are connected to, counted per peer while connections last, and the one
//! claim per peer that our own dials take (JS hyperswarm keeps one connection per peer
//! the same way).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::SwarmPeer;

/// Decides which peers may connect (JS hyperswarm's `firewall` option): called with a
/// peer's public key before we dial it and when it dials us (after its handshake
/// decrypted, before we answer); `true` refuses the peer: we neither dial it nor answer
/// it.
#[derive(Clone)]
pub struct Firewall(Arc<RefusesFn>);

/// The function behind a [`Firewall`].
type RefusesFn = dyn Fn(&[u8; 32]) -> bool + Send + Sync;

impl Firewall {
    /// A firewall from a function (`true`: refuse that peer).
    pub fn new(refuses: impl Fn(&[u8; 32]) -> bool + Send + Sync + 'static) -> Self {
        Firewall(Arc::new(refuses))
    }

    /// Admits only these keys (a person's own devices, known collaborators).
    pub fn allow_only(keys: impl IntoIterator<Item = [u8; 32]>) -> Self {
        let keys: HashSet<[u8; 32]> = keys.into_iter().collect();
        Firewall::new(move |pk| !keys.contains(pk))
    }

    /// Whether `pk` is refused.
    pub fn refuses(&self, pk: &[u8; 32]) -> bool {
        (self.0)(pk)
    }
}

impl std::fmt::Debug for Firewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Firewall(..)")
    }
}

/// Who may connect now: the firewall, the banned keys, and whether the swarm is
/// suspended (then nobody is dialled or answered).
#[derive(Default)]
pub(crate) struct Gate {
    firewall: Option<Firewall>,
    banned: Mutex<HashSet<[u8; 32]>>,
    suspended: AtomicBool,
}

impl Gate {
    /// A gate with `firewall`, nobody banned, not suspended.
    pub(crate) fn new(firewall: Option<Firewall>) -> Self {
        Gate {
            firewall,
            ..Gate::default()
        }
    }

    /// Whether a connection to or from `pk` is refused.
    pub(crate) fn refuses(&self, pk: &[u8; 32]) -> bool {
        self.suspended()
            || self
                .banned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(pk)
            || self.firewall.as_ref().is_some_and(|f| f.refuses(pk))
    }

    pub(crate) fn ban(&self, pk: [u8; 32], banned: bool) {
        let mut set = self.banned.lock().unwrap_or_else(|p| p.into_inner());
        if banned {
            set.insert(pk);
        } else {
            set.remove(&pk);
        }
    }

    pub(crate) fn suspend(&self, suspended: bool) {
        self.suspended.store(suspended, Ordering::SeqCst);
    }

    pub(crate) fn suspended(&self) -> bool {
        self.suspended.load(Ordering::SeqCst)
    }
}

/// Why the swarm cannot reach a peer a lookup found ([`Swarm::dial_failures`]): kept
/// from its first failed dial until a connection to it is up, so a person can see why
/// a device or collaborator stays unreachable (e.g. both behind random NATs).
///
/// [`Swarm::dial_failures`]: super::Swarm::dial_failures
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialFailure {
    /// The peer's Noise public key.
    pub public_key: [u8; 32],
    /// Dials to it that failed since it was found (or last connected).
    pub attempts: u32,
    /// What the last one said.
    pub error: String,
}

/// At most this many peers' dial failures are kept (a lookup answer is a peer's word:
/// a hostile DHT node could name any number of unreachable keys).
pub(crate) const MAX_DIAL_FAILURES: usize = 256;

/// The connections up, by peer, counted while they last.
#[derive(Default)]
pub(crate) struct Connected {
    /// Every connection handed out (dialled or accepted).
    all: HashMap<[u8; 32], usize>,
    /// Peers one of our dials is under way to: one claim per peer.
    dialling: HashSet<[u8; 32]>,
    /// Peers our dials failed to reach, until they connect.
    failures: HashMap<[u8; 32], DialFailure>,
}

/// Where a new connection comes from, for [`Connected::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// One of our dials; its claim is held.
    Ours,
    /// The peer dialled us.
    Accepted,
}

impl Connected {
    /// Claims `pk` for one of our dials: `false` when a connection to it is up or a
    /// dial to it is under way.
    pub(crate) fn claim(&mut self, pk: [u8; 32]) -> bool {
        if self.all.contains_key(&pk) {
            return false;
        }
        self.dialling.insert(pk)
    }

    /// Ends the claim [`Self::claim`] made.
    pub(crate) fn release(&mut self, pk: &[u8; 32]) {
        self.dialling.remove(pk);
    }

    /// Counts a new connection to `pk`, or says (`false`) to drop it: one of ours when
    /// a connection to the peer is already up. Connections the peer dialled are always
    /// taken (two peers dialling each other at once each keep the other's: dropping
    /// "the duplicate" on both sides could drop both).
    pub(crate) fn admit(&mut self, pk: [u8; 32], source: Source) -> bool {
        let keep = match source {
            Source::Ours => !self.all.contains_key(&pk),
            Source::Accepted => true,
        };
        if keep {
            *self.all.entry(pk).or_default() += 1;
            self.failures.remove(&pk);
        }
        keep
    }

    /// Records a failed dial to `pk` (the oldest record goes first when
    /// [`MAX_DIAL_FAILURES`] are kept); the number of failures in a row.
    pub(crate) fn failed(&mut self, pk: [u8; 32], error: String) -> u32 {
        if !self.failures.contains_key(&pk) && self.failures.len() >= MAX_DIAL_FAILURES {
            let fewest = self
                .failures
                .values()
                .min_by_key(|f| f.attempts)
                .map(|f| f.public_key);
            if let Some(gone) = fewest {
                self.failures.remove(&gone);
            }
        }
        let entry = self.failures.entry(pk).or_insert_with(|| DialFailure {
            public_key: pk,
            attempts: 0,
            error: String::new(),
        });
        entry.attempts = entry.attempts.saturating_add(1);
        entry.error = error;
        entry.attempts
    }

    /// The peers our dials could not reach (see [`DialFailure`]).
    pub(crate) fn failures(&self) -> Vec<DialFailure> {
        let mut all: Vec<DialFailure> = self.failures.values().cloned().collect();
        all.sort_by_key(|f| f.public_key);
        all
    }

    /// Uncounts a connection [`Self::admit`] counted, once it ended.
    pub(crate) fn ended(&mut self, pk: &[u8; 32]) {
        if let Some(n) = self.all.get_mut(pk) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.all.remove(pk);
            }
        }
    }

    /// Whether a connection to `pk` is up.
    pub(crate) fn has(&self, pk: &[u8; 32]) -> bool {
        self.all.contains_key(pk)
    }
}

/// The connection counts, and a signal for each connection counted.
#[derive(Default)]
pub(crate) struct Tracking {
    state: Mutex<Connected>,
    /// Fired whenever a connection is counted.
    pub(crate) counted: Notify,
}

pub(crate) type Tracked = Arc<Tracking>;

pub(crate) fn lock_connected(tracked: &Tracked) -> std::sync::MutexGuard<'_, Connected> {
    tracked.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a new connection to `pk` (see [`Connected::admit`]); `false`: drop it.
pub(crate) fn admit(tracked: &Tracked, pk: [u8; 32], source: Source) -> bool {
    let keep = lock_connected(tracked).admit(pk, source);
    if keep {
        tracked.counted.notify_waiters();
    }
    keep
}

/// Uncounts `peer`'s connection when it ends.
pub(crate) fn watch_end(tracked: &Tracked, peer: &SwarmPeer) {
    let pk = peer.remote_public_key;
    let (tracked, mut ended) = (tracked.clone(), peer.ended.clone());
    tokio::spawn(async move {
        let _ = ended.wait_for(Option::is_some).await;
        lock_connected(&tracked).ended(&pk);
    });
}

/// A claim on dialling one peer (see [`Connected::claim`]), released when dropped
/// (also when the dial is cancelled).
pub(crate) struct Claim {
    tracked: Tracked,
    pk: [u8; 32],
}

impl Claim {
    pub(crate) fn new(tracked: &Tracked, pk: [u8; 32]) -> Option<Claim> {
        lock_connected(tracked).claim(pk).then(|| Claim {
            tracked: tracked.clone(),
            pk,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock_connected(&self.tracked).release(&self.pk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_le_bytes());
        k
    }

    #[test]
    fn the_gate_refuses_banned_firewalled_and_everyone_while_suspended() {
        let (a, b, c) = (key(10), key(11), key(12));
        let gate = Gate::new(Some(Firewall::allow_only([a, b])));
        assert!(!gate.refuses(&a) && !gate.refuses(&b));
        assert!(gate.refuses(&c), "not on the allow list");
        gate.ban(b, true);
        assert!(gate.refuses(&b));
        gate.ban(b, false);
        assert!(!gate.refuses(&b));
        gate.suspend(true);
        assert!(gate.refuses(&a));
        gate.suspend(false);
        assert!(!gate.refuses(&a));
    }

    #[test]
    fn one_claim_per_peer() {
        let mut c = Connected::default();
        let pk = key(1);
        assert!(c.claim(pk));
        assert!(!c.claim(pk));
        c.release(&pk);
        assert!(c.claim(pk));
        c.release(&pk);
        assert!(c.dialling.is_empty());
    }

    #[test]
    fn no_claim_on_a_connected_peer_and_a_new_one_once_it_ended() {
        let mut c = Connected::default();
        let pk = key(2);
        assert!(c.admit(pk, Source::Accepted));
        assert!(!c.claim(pk));
        c.ended(&pk);
        assert!(!c.has(&pk));
        assert!(c.claim(pk));
    }

    #[test]
    fn dial_failures_are_counted_until_the_peer_connects_and_bounded() {
        let mut c = Connected::default();
        let pk = key(4);
        assert_eq!(c.failed(pk, "first".into()), 1);
        assert_eq!(c.failed(pk, "both NATs are random".into()), 2);
        assert_eq!(
            c.failures(),
            vec![DialFailure {
                public_key: pk,
                attempts: 2,
                error: "both NATs are random".into()
            }]
        );
        assert!(c.admit(pk, Source::Accepted));
        assert!(c.failures().is_empty(), "a connection clears the record");
        for n in 0..(MAX_DIAL_FAILURES as u32 + 10) {
            c.failed(key(100 + n), "unreachable".into());
        }
        assert_eq!(c.failures().len(), MAX_DIAL_FAILURES);
    }

    #[test]
    fn our_connection_to_a_connected_peer_is_dropped_theirs_is_taken() {
        let mut c = Connected::default();
        let pk = key(3);
        assert!(c.claim(pk));
        assert!(c.admit(pk, Source::Ours));
        // A second dial that got through anyway (claimed before the first counted).
        assert!(!c.admit(pk, Source::Ours));
        // The peer dialling us at the same time is kept.
        assert!(c.admit(pk, Source::Accepted));
        assert_eq!(c.all.get(&pk), Some(&2));
        c.release(&pk);
        c.ended(&pk);
        c.ended(&pk);
        assert!(c.all.is_empty());
    }
}
