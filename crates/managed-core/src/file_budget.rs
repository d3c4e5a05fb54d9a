//! [`FileBudget`]: a cap on the file descriptors that the logs sharing it hold open.
//!
//! Owns the open/close policy of budgeted files; [`DiskFile`](crate::disk::DiskFile)
//! does their I/O.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::disk::Durability;

/// A cap on the file descriptors held open by the logs that share it: a cheap `Clone`
/// handle; clones share one budget.
///
/// A log has five files (`oplog`, `tree`, `bitfield`, `data`, `sizes`). Without a
/// budget each stays open from [`ManagedCore::open`](crate::ManagedCore::open) until the
/// last handle of the log drops, so a store of N logs holds 5N descriptors. With a budget (given
/// with [`OpenOptions::file_budget`](crate::OpenOptions::file_budget)) a file is opened
/// on demand when an I/O needs it and the least recently used open file of any log
/// sharing the budget is closed when more than its capacity would be open.
///
/// How it stays correct:
/// - An I/O in progress keeps its descriptor: a file is handed out as an `Arc<File>`, and
///   closing it (eviction) only drops the budget's reference; the descriptor closes when
///   the last I/O using it returns. The process may therefore hold, for a moment, the
///   capacity plus one descriptor per I/O running on another thread. The longest such
///   I/O is an `fdatasync` (milliseconds to seconds on a busy disk), during which the
///   file is clean and may be closed; see the write turns below for the bound.
/// - Closing a descriptor loses no written data: `pwrite` put it in the page cache, which
///   belongs to the file, not the descriptor. The log's "written since the last sync"
///   flag stays set across a close, and the next `fdatasync` (on a new descriptor of the
///   same file) writes back every dirty page of the file (Linux and macOS `fsync`
///   semantics).
/// - Eviction never syncs and never touches the "written since the last sync" flag:
///   only the log's own sync clears it, so an append of a durable log is acknowledged
///   only after its own `fdatasync` returned, and a writeback error is reported to that
///   sync (Linux reports an error nobody has seen yet to the next `fsync` on any
///   descriptor of the file; eviction consumes none). A file of a log that promises
///   durability ([`Durability::FsyncPerBatch`], [`Durability::FsyncPerWrite`]) is not
///   chosen for eviction while it holds unsynced writes (between an append's writes and
///   its sync), so its descriptor stays open until the log has synced it; the budget may
///   then hold more than its capacity for as long as such appends run. A
///   [`Durability::Flush`] log promises no sync, so its files close dirty (its page
///   cache is written back by the kernel; an error there is not reported to anyone, as
///   without a budget).
/// - Write turns: a store of many logs can have a write in progress in every log at
///   once (200 replicas syncing over one connection), each holding files that cannot be
///   closed (dirty, durable) or descriptors already closed that its `fdatasync` still
///   uses. The logs of a budget therefore write [`WRITE_TURNS`] at a time: a log's
///   append, applied proof, checkpoint, repair or close waits (asynchronously, holding
///   only its own log's lock) for a turn before its first write and gives it back after
///   its last sync. What the budget holds past its capacity is then bounded by
///   `WRITE_TURNS` × 5 dirty files (kept within the capacity whenever the capacity is
///   larger, by closing clean files instead) plus one descriptor per I/O in progress.
///   Without the turns, 64 durable logs appending at once held 79 descriptors under a
///   budget of 8 (tests/file_budget.rs), and 2 × 200 replicas syncing on a loaded disk
///   48 past their two budgets (`manager/tests/scale.rs`).
/// - A file is created only when its log is opened; a later reopen does not create it,
///   so a file removed underneath an open log fails the next I/O with `NotFound`
///   instead of silently starting an empty file.
/// - A log's [`close`](crate::ManagedCore::close) syncs its files and gives their
///   descriptors back at once, though handles to it may live on.
/// - Running out of descriptors (`EMFILE`/`ENFILE`) while reopening closes the least
///   recently used file of the budget and tries once more.
///
/// Cost on the hot path (the file is open): a tick of the budget's clock (one relaxed
/// atomic add), one uncontended mutex and one `Arc` clone around the `pread`/`pwrite`.
/// A miss adds an `open` syscall and a scan of the open files (at most the capacity).
///
/// ```
/// use nova_hypercore_managed_core::{FileBudget, ManagedCore, OpenOptions};
/// use nova_hypercore_serialization::LogName;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let budget = FileBudget::new(4);
/// let mut logs = Vec::new();
/// for i in 0..3 {
///     let name = LogName::parse(&format!("log-{i}"))?;
///     let options = OpenOptions::new().file_budget(budget.clone());
///     let log = ManagedCore::open(dir.path().join(format!("{i}")), name, options).await?;
///     log.append(b"hello").await?;
///     logs.push(log);
/// }
/// // Three logs, twelve files, at most four descriptors open.
/// assert!(budget.open_files() <= 4);
/// for log in &logs {
///     assert_eq!(log.get(0).await?, b"hello");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileBudget {
    inner: Arc<Budget>,
}

/// How many logs sharing one budget write at once (see [`FileBudget`], "Write turns").
/// A turn spans a log's writes and the `fdatasync`s that follow them; more in parallel
/// buys little on one disk (its journal commits concurrent syncs together anyway).
pub const WRITE_TURNS: usize = 8;

#[derive(Debug)]
struct Budget {
    capacity: usize,
    /// Write turns ([`WRITE_TURNS`]).
    turns: Arc<tokio::sync::Semaphore>,
    clock: AtomicU64,
    /// Files whose descriptor is open (at most one entry per file).
    open: Mutex<Vec<Weak<Slot>>>,
    opens: AtomicU64,
    evictions: AtomicU64,
}

/// One file under a budget: where it is and its descriptor while open.
#[derive(Debug)]
pub(crate) struct Slot {
    path: Arc<Path>,
    file: Mutex<Option<Arc<File>>>,
    last_used: AtomicU64,
    /// The owning [`DiskFile`](crate::disk::DiskFile)'s "written since the last sync".
    dirty: Arc<AtomicBool>,
    /// The log promises durability: a dirty file is not evicted (see [`FileBudget`]).
    durable: bool,
    /// Opened lazily ([`FileBudget::open_lazy`]) and not created yet.
    missing: AtomicBool,
}

impl FileBudget {
    /// A budget of at most `capacity` open files (at least 1).
    pub fn new(capacity: usize) -> Self {
        FileBudget {
            inner: Arc::new(Budget {
                capacity: capacity.max(1),
                turns: Arc::new(tokio::sync::Semaphore::new(WRITE_TURNS)),
                clock: AtomicU64::new(0),
                open: Mutex::new(Vec::new()),
                opens: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
            }),
        }
    }

    /// The most files open at once (I/O running on an evicted file aside).
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Files open under this budget right now.
    pub fn open_files(&self) -> usize {
        let mut open = self.inner.lock();
        open.retain(|w| w.strong_count() > 0);
        open.len()
    }

    /// Files opened under this budget so far (first opens and reopens).
    pub fn opens(&self) -> u64 {
        self.inner.opens.load(Ordering::Relaxed)
    }

    /// Files closed to stay within the capacity so far.
    pub fn evictions(&self) -> u64 {
        self.inner.evictions.load(Ordering::Relaxed)
    }

    /// Waits for a write turn (at most [`WRITE_TURNS`] logs of this budget write at
    /// once); the turn ends when the permit drops. The caller must hold no other turn
    /// and await nothing while holding it but its own log's I/O.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        // The semaphore is never closed: an error cannot happen, and would only mean
        // writing without a turn.
        self.inner.turns.clone().acquire_owned().await.ok()
    }

    /// Opens `path` (creating it if missing) as a file of this budget.
    pub(crate) fn open(
        &self,
        path: Arc<Path>,
        durability: Durability,
        dirty: Arc<AtomicBool>,
    ) -> std::io::Result<(Arc<Slot>, u64)> {
        let slot = Slot::new(path, durability, dirty);
        let file = self.file_with(&slot, true)?;
        let len = file.metadata()?.len();
        Ok((slot, len))
    }

    /// Opens `path` as a file of this budget if it exists; if it does not, the file is
    /// created by the first I/O that needs a descriptor, a write (the caller sees a
    /// length of 0, so reads never get that far). For the files of a log written only
    /// at its first checkpoint (tree, bitfield, sizes): most logs of a store of many
    /// small ones never get one before they are closed, and creating a file costs far
    /// more than opening one (0.6 ms each on this VM's ext4, the largest share of
    /// creating a log). A later reopen of a file that was created never creates it.
    pub(crate) fn open_lazy(
        &self,
        path: Arc<Path>,
        durability: Durability,
        dirty: Arc<AtomicBool>,
    ) -> std::io::Result<(Arc<Slot>, u64)> {
        let slot = Slot::new(path, durability, dirty);
        match self.file_with(&slot, false) {
            Ok(file) => {
                let len = file.metadata()?.len();
                Ok((slot, len))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                slot.missing.store(true, Ordering::Release);
                Ok((slot, 0))
            }
            Err(e) => Err(e),
        }
    }

    /// The slot's open file, opening it (and closing others beyond the capacity) if it
    /// is closed.
    pub(crate) fn file(&self, slot: &Arc<Slot>) -> std::io::Result<Arc<File>> {
        self.file_with(slot, false)
    }

    /// Whether `slot`'s descriptor is open now (an I/O on it opens nothing). A hint:
    /// the budget may close it right after.
    pub(crate) fn is_open(&self, slot: &Slot) -> bool {
        slot.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn file_with(&self, slot: &Arc<Slot>, create: bool) -> std::io::Result<Arc<File>> {
        let now = self.inner.clock.fetch_add(1, Ordering::Relaxed);
        slot.last_used.store(now, Ordering::Relaxed);
        let mut guard = slot.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = guard.as_ref() {
            return Ok(file.clone());
        }
        // Opened under the slot's lock: two I/Os on one closed file open it once.
        // A file opened lazily and not there yet is created by its first I/O (a write).
        let create = create || slot.missing.load(Ordering::Acquire);
        let file = match open_file(&slot.path, create) {
            Err(e) if out_of_descriptors(&e) => {
                // Make room in the process, not only in the budget, and try once more.
                // This thread holds its own slot's lock here, so it must not wait for
                // another's: a victim busy right now is left open.
                if let Some(victim) = self.inner.pick(Some(slot), 1).pop() {
                    if victim.try_close() {
                        self.inner.evictions.fetch_add(1, Ordering::Relaxed);
                    } else {
                        // Still open: keep counting it.
                        self.inner.lock().push(Arc::downgrade(&victim));
                    }
                }
                open_file(&slot.path, create)?
            }
            other => other?,
        };
        let file = Arc::new(file);
        *guard = Some(file.clone());
        slot.missing.store(false, Ordering::Release);
        drop(guard);
        self.inner.opens.fetch_add(1, Ordering::Relaxed);
        // Victims are closed outside every lock but their own slot's.
        for victim in self.inner.admit(slot) {
            victim.close();
            self.inner.evictions.fetch_add(1, Ordering::Relaxed);
        }
        Ok(file)
    }

    /// Closes the slot's descriptor now (its log closed); a later I/O reopens it.
    pub(crate) fn release(&self, slot: &Arc<Slot>) {
        self.inner
            .lock()
            .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(slot)));
        slot.close();
    }
}

impl Budget {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Slot>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `slot` has just opened its file: records it and takes out of the open list the
    /// least recently used others beyond the capacity, for the caller to close.
    fn admit(&self, slot: &Arc<Slot>) -> Vec<Arc<Slot>> {
        let mut open = self.lock();
        open.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(slot)));
        open.push(Arc::downgrade(slot));
        let excess = open.len().saturating_sub(self.capacity);
        drop(open);
        if excess == 0 {
            return Vec::new();
        }
        self.pick(Some(slot), excess)
    }

    /// Takes out of the open list up to `count` least recently used files, `keep` aside.
    fn pick(&self, keep: Option<&Arc<Slot>>, count: usize) -> Vec<Arc<Slot>> {
        let mut open = self.lock();
        let mut victims = Vec::with_capacity(count);
        while victims.len() < count {
            let oldest = open
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.upgrade().map(|s| (i, s)))
                .filter(|(_, s)| keep.is_none_or(|k| !Arc::ptr_eq(k, s)))
                .filter(|(_, s)| !s.holds_unsynced_durable_writes())
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed));
            match oldest {
                Some((i, s)) => {
                    open.swap_remove(i);
                    victims.push(s);
                }
                None => break,
            }
        }
        victims
    }
}

impl Slot {
    /// A slot for `path`, no descriptor open yet.
    fn new(path: Arc<Path>, durability: Durability, dirty: Arc<AtomicBool>) -> Arc<Slot> {
        Arc::new(Slot {
            path,
            file: Mutex::new(None),
            last_used: AtomicU64::new(0),
            dirty,
            durable: durability != Durability::Flush,
            missing: AtomicBool::new(false),
        })
    }

    /// Drops the budget's descriptor (I/O still running on it keeps it until done).
    /// Never syncs: the log's own sync does (see [`FileBudget`]).
    fn close(&self) {
        drop(self.file.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// [`close`](Self::close) unless another thread holds the slot right now (it is
    /// being opened or handed to an I/O: not a file to close anyway); false then.
    fn try_close(&self) -> bool {
        match self.file.try_lock() {
            Ok(mut guard) => drop(guard.take()),
            Err(std::sync::TryLockError::Poisoned(p)) => drop(p.into_inner().take()),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        }
        true
    }

    /// A durable log's file written since its last sync: kept open until that sync.
    fn holds_unsynced_durable_writes(&self) -> bool {
        self.durable && self.dirty.load(Ordering::Acquire)
    }
}

fn open_file(path: &Path, create: bool) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
}

/// `ENFILE` (system-wide table full): the same number on Linux and macOS.
const ENFILE: i32 = 23;
/// `EMFILE` (per-process limit reached): the same number on Linux and macOS.
const EMFILE: i32 = 24;

fn out_of_descriptors(e: &std::io::Error) -> bool {
    // EMFILE (per process) and ENFILE (system-wide) on Linux and macOS.
    matches!(e.raw_os_error(), Some(ENFILE | EMFILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::DiskFile;

    fn open(budget: &FileBudget, path: &Path, durability: Durability) -> DiskFile {
        DiskFile::open_in(path, durability, Some(budget)).unwrap()
    }

    #[test]
    fn interleaved_io_on_more_files_than_the_budget_keeps_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(2);
        let files: Vec<DiskFile> = (0..5)
            .map(|i| {
                open(
                    &budget,
                    &dir.path().join(format!("f{i}")),
                    Durability::Flush,
                )
            })
            .collect();
        for round in 0..20u64 {
            for (i, f) in files.iter().enumerate() {
                f.write_at(round * 8, &(i as u64 * 1000 + round).to_le_bytes())
                    .unwrap();
                assert!(budget.open_files() <= 2);
            }
            for (i, f) in files.iter().enumerate().rev() {
                let got = f.read_exact_at(round * 8, 8).unwrap();
                assert_eq!(got, (i as u64 * 1000 + round).to_le_bytes());
            }
        }
        assert!(budget.evictions() > 0, "the files must have been evicted");
        assert!(budget.opens() > 5);
        for f in &files {
            f.truncate(16).unwrap();
            f.sync_if_dirty().unwrap();
            assert_eq!(f.len(), 16);
        }
        assert!(budget.open_files() <= 2);
        for (i, f) in files.iter().enumerate() {
            let on_disk = std::fs::read(dir.path().join(format!("f{i}"))).unwrap();
            assert_eq!(on_disk[8..16], (i as u64 * 1000 + 1).to_le_bytes());
            f.release();
        }
        assert_eq!(budget.open_files(), 0);
    }

    #[test]
    fn eviction_never_syncs_and_keeps_durable_unsynced_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(1);
        let flush = open(&budget, &dir.path().join("flush"), Durability::Flush);
        let durable = open(
            &budget,
            &dir.path().join("durable"),
            Durability::FsyncPerBatch,
        );
        flush.write_at(0, b"page cache").unwrap();
        assert!(flush.is_dirty());
        // Writing the durable file evicts the flush file: closed without a sync, so
        // it is still dirty and its next sync (on a new descriptor) does the work.
        durable.write_at(0, b"durable").unwrap();
        assert!(flush.is_dirty());
        assert!(durable.is_dirty());
        assert_eq!(budget.open_files(), 1);
        // Reading the flush file would evict the durable one, but it holds writes its
        // log has not synced: it stays open (and dirty: only its own sync clears that),
        // over the capacity for now.
        assert_eq!(flush.read_all().unwrap(), b"page cache");
        assert!(durable.is_dirty());
        assert_eq!(budget.open_files(), 2);
        // Its own sync clears it; the next open evicts it again.
        durable.sync_if_dirty().unwrap();
        assert!(!durable.is_dirty());
        let other = open(&budget, &dir.path().join("other"), Durability::Flush);
        other.write_at(0, b"x").unwrap();
        assert_eq!(budget.open_files(), 1);
        flush.sync_if_dirty().unwrap();
        assert!(!flush.is_dirty());
        assert_eq!(durable.read_all().unwrap(), b"durable");
    }

    #[test]
    fn a_reopen_never_creates_a_removed_file() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(1);
        let a = open(&budget, &dir.path().join("a"), Durability::Flush);
        a.write_at(0, b"a").unwrap();
        let b = open(&budget, &dir.path().join("b"), Durability::Flush);
        std::fs::remove_file(dir.path().join("a")).unwrap();
        let err = a.read_exact_at(0, 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(!dir.path().join("a").exists());
        b.write_at(0, b"b").unwrap();
    }

    #[test]
    fn a_lazy_file_is_created_by_its_first_write_and_never_again() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(1);
        let path = dir.path().join("lazy");
        let lazy = DiskFile::open_lazy_in(&path, Durability::Flush, Some(&budget)).unwrap();
        // Reads as empty, syncs nothing, creates nothing.
        assert_eq!(lazy.len(), 0);
        assert_eq!(lazy.read_all().unwrap(), Vec::<u8>::new());
        lazy.sync_if_dirty().unwrap();
        assert!(!path.exists());
        assert_eq!(budget.open_files(), 0);
        lazy.write_at(3, b"abc").unwrap();
        assert!(path.exists());
        assert_eq!(lazy.read_exact_at(3, 3).unwrap(), b"abc");
        // Closed by another file's open, then removed: the reopen does not create it.
        let other = open(&budget, &dir.path().join("other"), Durability::Flush);
        other.write_at(0, b"o").unwrap();
        std::fs::remove_file(&path).unwrap();
        let err = lazy.read_exact_at(3, 3).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(!path.exists());
        // An existing file opens lazily like any other, with its length.
        std::fs::write(&path, b"12345").unwrap();
        let again = DiskFile::open_lazy_in(&path, Durability::Flush, Some(&budget)).unwrap();
        assert_eq!(again.len(), 5);
        assert_eq!(again.read_all().unwrap(), b"12345");
    }

    #[test]
    fn eviction_under_concurrent_io_fails_no_io() {
        let dir = tempfile::tempdir().unwrap();
        // One descriptor for four files on two threads: nearly every I/O reopens its
        // file and closes the one the other thread is using.
        let budget = FileBudget::new(1);
        let files: Vec<Arc<DiskFile>> = (0..4)
            .map(|i| {
                Arc::new(open(
                    &budget,
                    &dir.path().join(format!("f{i}")),
                    if i % 2 == 0 {
                        Durability::Flush
                    } else {
                        Durability::FsyncPerBatch
                    },
                ))
            })
            .collect();
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let mine = [files[t].clone(), files[t + 2].clone()];
                std::thread::spawn(move || {
                    for round in 0..500u64 {
                        for f in &mine {
                            let value = (t as u64) << 32 | round;
                            f.write_at(round * 8, &value.to_le_bytes())?;
                            let back = f.read_exact_at(round * 8, 8)?;
                            assert_eq!(back, value.to_le_bytes());
                            if round % 50 == 0 {
                                f.sync_if_dirty()?;
                            }
                        }
                    }
                    Ok::<(), std::io::Error>(())
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert!(budget.evictions() > 0);
        // Durable files with unsynced writes stay open beyond the capacity; once every
        // file is synced, the next open brings the budget back to its capacity.
        for f in &files {
            f.sync_if_dirty().unwrap();
        }
        let g = open(&budget, &dir.path().join("g"), Durability::Flush);
        g.write_at(0, b"g").unwrap();
        assert_eq!(budget.open_files(), 1);
        for (i, f) in files.iter().enumerate() {
            let t = (i % 2) as u64;
            let bytes = f.read_all().unwrap();
            assert_eq!(bytes.len(), 500 * 8);
            for (round, chunk) in bytes.chunks(8).enumerate() {
                assert_eq!(chunk, (t << 32 | round as u64).to_le_bytes());
            }
        }
    }
}
