//! Random choices that a failing run can repeat: a seed taken from an environment
//! variable (or the clock), printed with the command that replays it, and a small
//! deterministic generator (xorshift64*) driven by it.
//!
//! Used by the randomized suites (crash trials, soak, power-cut trials), so that each
//! prints its seed the same way and draws from the same generator.

/// The seed named by `var` when it is set to a number, otherwise one from the clock;
/// printed to stderr as `<label> seed <n> (<var>=<n> replays it)`. Never 0.
pub fn seed_from_env(var: &str, label: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    eprintln!("{label} seed {seed} ({var}={seed} replays it)");
    seed
}

/// A xorshift64* generator: fast, deterministic, not for cryptography.
///
/// ```
/// let mut a = nova_hypercore_testkit::replay::Rng::new(7);
/// let mut b = nova_hypercore_testkit::replay::Rng::new(7);
/// assert_eq!(a.next(), b.next());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (0 is replaced: xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A new generator seeded from this one (for a task of its own).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }
}
