//! This process's open file descriptors (`/proc/self/fd`, Linux): the count now, and
//! the peak a sampler thread sees while something runs ([`FdPeak`]). The suites that
//! bound descriptors (managed-core's file budget, the manager's scale test) use it; each
//! test runs in its own process under nextest, so the count is the test's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Open descriptors of this process now (the directory handle the count itself opens
/// included). Panics where `/proc/self/fd` cannot be read: tests only.
pub fn open_fds() -> usize {
    #[allow(clippy::expect_used)]
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// A thread counting [`open_fds`] every `every` until [`stop`](Self::stop), which
/// returns the highest count it saw.
pub struct FdPeak {
    running: Arc<AtomicBool>,
    thread: JoinHandle<usize>,
}

impl FdPeak {
    /// Starts sampling now.
    pub fn start(every: Duration) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let thread = {
            let running = running.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                while running.load(Ordering::Acquire) {
                    peak = peak.max(open_fds());
                    std::thread::sleep(every);
                }
                peak
            })
        };
        FdPeak { running, thread }
    }

    /// Stops sampling; the peak count (0 if the sampler thread panicked).
    pub fn stop(self) -> usize {
        self.running.store(false, Ordering::Release);
        self.thread.join().unwrap_or(0)
    }
}
