//! The five files of a log (`oplog`, `tree`, `bitfield`, `data`, `sizes`): positioned reads and
//! writes on plain files, or on memory for scratch logs.
//!
//! Calls `pread`/`pwrite` directly: on page-cached data a small call takes a few
//! microseconds, less than a thread hop, so it runs inline on the calling task. What may
//! block longer leaves the runtime's worker first ([`offload`]: `block_in_place` on a
//! multi-thread runtime): reads and writes of [`LARGE_IO`] bytes or more (blocks of up to
//! 16 MiB), truncates, writes that sync ([`Durability::FsyncPerWrite`]), and any I/O on a
//! budgeted file whose descriptor is closed (the reopen runs under the budget's lock).
//! Syncing is not done here per write (except in [`Durability::FsyncPerWrite`]); the core
//! syncs the files it dirtied on the blocking pool when the durability mode asks for it
//! ([`DiskFile::sync_if_dirty`]).
//!
//! A file opened under a [`FileBudget`] holds its descriptor only while the budget lets
//! it: each I/O takes the open file from the budget (reopening it if it was closed);
//! see [`FileBudget`] for why that loses neither data nor sync errors.

use std::fs::{File, OpenOptions};
use std::io::{Error, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::file_budget::{FileBudget, Slot};

/// What an acknowledged append survives. Chosen per log when it is opened.
///
/// | mode | process crash | power loss / kernel crash | cost |
/// |---|---|---|---|
/// | [`Flush`](Durability::Flush) | survives | may be lost | a `write` per file touched |
/// | [`FsyncPerBatch`](Durability::FsyncPerBatch) | survives | survives | + one `fdatasync` per touched file per append call |
/// | [`FsyncPerWrite`](Durability::FsyncPerWrite) | survives | survives | + one `fdatasync` per write (for comparison) |
///
/// `Flush` is what JS hypercore 11 / corestore 7 give by default (RocksDB WAL written, not
/// synced), so benchmarks against the JS numbers use it. A batch append is one append
/// call: `FsyncPerBatch` syncs once for all its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// Written to the OS before the append returns; not synced to the device.
    #[default]
    Flush,
    /// Every file the append touched is synced (`fdatasync`) before it returns.
    FsyncPerBatch,
    /// Every single write is synced as it happens.
    FsyncPerWrite,
}

impl Durability {
    /// Short name used in benchmark reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Flush => "flush",
            Durability::FsyncPerBatch => "fsync-per-batch",
            Durability::FsyncPerWrite => "fsync-per-write",
        }
    }
}

#[derive(Debug)]
enum Backing {
    File(File),
    /// Opened on demand under a budget shared with other files.
    Budgeted(FileBudget, Arc<Slot>),
    Memory(Mutex<Vec<u8>>),
}

/// Reads and writes of at least this many bytes leave the runtime's worker
/// ([`offload`]): a 64 KiB `pread` from a cold page cache or a `pwrite` that has to wait
/// for writeback can take milliseconds; below it, page-cached I/O takes microseconds.
pub(crate) const LARGE_IO: u64 = 64 * 1024;

/// Runs `f`, which may block on the disk, without stalling the tasks of the runtime it
/// is called from: on a multi-thread tokio runtime the worker hands its other tasks to
/// another thread first (`block_in_place`; no copy of the data, the borrows stay valid);
/// elsewhere (a current-thread runtime, which has no other worker to hand them to, or
/// no runtime) it runs inline.
pub(crate) fn offload<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// One of the four hypercore files.
#[derive(Debug)]
pub(crate) struct DiskFile {
    backing: Backing,
    /// Shared with the budget's record of the file (one copy per file).
    path: Arc<Path>,
    len: AtomicU64,
    /// Written since the last sync; only this file's own sync clears it (shared with
    /// the budget, which does not evict a durable log's dirty file).
    dirty: Arc<AtomicBool>,
    sync_each_write: bool,
    /// Records this file's writes, truncates and syncs (power-cut tests only).
    #[cfg(feature = "power-cut")]
    recorder: crate::power_cut::Recorder,
}

/// What one I/O works on: a file or memory.
enum Io<'a> {
    File(Fd<'a>),
    Memory(&'a Mutex<Vec<u8>>),
}

/// A file held open by its `DiskFile`, or lent by the budget: a lent file stays open
/// until the I/O drops it, even if the budget closes it meanwhile.
enum Fd<'a> {
    Held(&'a File),
    Lent(Arc<File>),
}

impl std::ops::Deref for Fd<'_> {
    type Target = File;
    fn deref(&self) -> &File {
        match self {
            Fd::Held(file) => file,
            Fd::Lent(file) => file,
        }
    }
}

impl DiskFile {
    /// Opens (creating if missing) the file at `path`, held open until dropped.
    #[cfg(test)]
    pub(crate) fn open(path: &Path, durability: Durability) -> std::io::Result<Self> {
        Self::open_in(path, durability, None)
    }

    /// Opens (creating if missing) the file at `path`; under `budget`, its descriptor is
    /// opened and closed on demand (see [`FileBudget`]).
    pub(crate) fn open_in(
        path: &Path,
        durability: Durability,
        budget: Option<&FileBudget>,
    ) -> std::io::Result<Self> {
        let dirty = Arc::new(AtomicBool::new(false));
        let path: Arc<Path> = Arc::from(path);
        if let Some(budget) = budget {
            let (slot, len) = budget.open(path.clone(), durability, dirty.clone())?;
            return Ok(Self::with_backing(
                Backing::Budgeted(budget.clone(), slot),
                path,
                len,
                dirty,
                durability,
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let len = file.metadata()?.len();
        Ok(Self::with_backing(
            Backing::File(file),
            path,
            len,
            dirty,
            durability,
        ))
    }

    /// [`open_in`](Self::open_in), but under `budget` a file that does not exist is
    /// not created until its first write ([`FileBudget::open_lazy`]); it reads as
    /// empty until then. Without a budget the file is created now.
    pub(crate) fn open_lazy_in(
        path: &Path,
        durability: Durability,
        budget: Option<&FileBudget>,
    ) -> std::io::Result<Self> {
        let Some(budget) = budget else {
            return Self::open_in(path, durability, None);
        };
        let dirty = Arc::new(AtomicBool::new(false));
        let path: Arc<Path> = Arc::from(path);
        let (slot, len) = budget.open_lazy(path.clone(), durability, dirty.clone())?;
        Ok(Self::with_backing(
            Backing::Budgeted(budget.clone(), slot),
            path,
            len,
            dirty,
            durability,
        ))
    }

    /// The handle over `backing`, `len` bytes long.
    fn with_backing(
        backing: Backing,
        path: Arc<Path>,
        len: u64,
        dirty: Arc<AtomicBool>,
        durability: Durability,
    ) -> Self {
        DiskFile {
            backing,
            #[cfg(feature = "power-cut")]
            recorder: crate::power_cut::Recorder::for_path(&path),
            path,
            len: AtomicU64::new(len),
            dirty,
            sync_each_write: durability == Durability::FsyncPerWrite,
        }
    }

    /// An empty file held in memory (scratch logs); `name` only labels errors.
    pub(crate) fn memory(name: &str) -> Self {
        DiskFile {
            backing: Backing::Memory(Mutex::new(Vec::new())),
            path: Arc::from(PathBuf::from(format!(":memory:/{name}"))),
            len: AtomicU64::new(0),
            dirty: Arc::new(AtomicBool::new(false)),
            sync_each_write: false,
            #[cfg(feature = "power-cut")]
            recorder: crate::power_cut::Recorder::default(),
        }
    }

    /// Whether an I/O of `bytes` on this file may block long enough to leave the
    /// runtime's worker for it (see the module docs).
    fn may_block(&self, bytes: u64) -> bool {
        match &self.backing {
            Backing::Memory(_) => false,
            Backing::File(_) => bytes >= LARGE_IO || self.sync_each_write,
            Backing::Budgeted(budget, slot) => {
                bytes >= LARGE_IO || self.sync_each_write || !budget.is_open(slot)
            }
        }
    }

    /// Runs `f` inline, or off the worker when an I/O of `bytes` [may block](Self::may_block).
    fn run<R>(&self, bytes: u64, f: impl FnOnce() -> R) -> R {
        if self.may_block(bytes) {
            offload(f)
        } else {
            f()
        }
    }

    /// What one I/O works on, opening a budgeted file if the budget closed it.
    fn io(&self) -> std::io::Result<Io<'_>> {
        match &self.backing {
            Backing::File(file) => Ok(Io::File(Fd::Held(file))),
            Backing::Budgeted(budget, slot) => Ok(Io::File(Fd::Lent(budget.file(slot)?))),
            Backing::Memory(mem) => Ok(Io::Memory(mem)),
        }
    }

    /// Closes the descriptor of a budgeted file now (its log closed), leaving room for
    /// other logs; a later I/O would reopen it. Other files: nothing to do.
    pub(crate) fn release(&self) {
        if let Backing::Budgeted(budget, slot) = &self.backing {
            budget.release(slot);
        }
    }

    /// Where the file is (`:memory:/<name>` for memory files).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether anything was written since the last sync.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// The file's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Reads exactly `length` bytes at `offset` (`UnexpectedEof` past the end).
    pub(crate) fn read_exact_at(&self, offset: u64, length: u64) -> std::io::Result<Vec<u8>> {
        let end = offset.checked_add(length);
        if end.is_none_or(|end| end > self.len()) {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "{}: bytes {offset}..+{length} lie past the end ({})",
                    self.path.display(),
                    self.len()
                ),
            ));
        }
        if length == 0 {
            // Nothing to read: no descriptor needed (a lazily opened file may not exist).
            return Ok(Vec::new());
        }
        let size = usize::try_from(length)
            .map_err(|_| Error::new(ErrorKind::InvalidInput, "read length"))?;
        let mut buf = vec![0u8; size];
        self.run(length, || match self.io()? {
            Io::File(file) => file.read_exact_at(&mut buf, offset),
            Io::Memory(mem) => {
                let mem = mem.lock().unwrap_or_else(|p| p.into_inner());
                let start = usize::try_from(offset)
                    .map_err(|_| Error::new(ErrorKind::InvalidInput, "offset"))?;
                let src = mem
                    .get(start..start + size)
                    .ok_or_else(|| Error::new(ErrorKind::UnexpectedEof, "memory file"))?;
                buf.copy_from_slice(src);
                Ok(())
            }
        })?;
        Ok(buf)
    }

    /// The whole file (the oplog and bitfield are read whole at open).
    pub(crate) fn read_all(&self) -> std::io::Result<Vec<u8>> {
        self.read_exact_at(0, self.len())
    }

    /// Writes `data` at `offset`, growing the file as needed.
    pub(crate) fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "write past u64"))?;
        self.run(data.len() as u64, || {
            match self.io()? {
                Io::File(file) => file.write_all_at(data, offset)?,
                Io::Memory(mem) => {
                    let mut mem = mem.lock().unwrap_or_else(|p| p.into_inner());
                    let (start, end) = (to_usize(offset)?, to_usize(end)?);
                    if mem.len() < end {
                        mem.resize(end, 0);
                    }
                    mem[start..end].copy_from_slice(data);
                }
            }
            self.len.fetch_max(end, Ordering::AcqRel);
            #[cfg(feature = "power-cut")]
            self.recorder.write(offset, data);
            self.after_write()
        })
    }

    /// Cuts (or extends with zeros) the file to `length` bytes.
    pub(crate) fn truncate(&self, length: u64) -> std::io::Result<()> {
        // Truncating frees (or zero-fills) blocks in the filesystem: never inline.
        self.run(u64::MAX, || {
            match self.io()? {
                Io::File(file) => file.set_len(length)?,
                Io::Memory(mem) => mem
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .resize(to_usize(length)?, 0),
            }
            self.len.store(length, Ordering::Release);
            #[cfg(feature = "power-cut")]
            self.recorder.truncate(length);
            self.after_write()
        })
    }

    /// Gives the filesystem blocks of bytes `offset..offset + length` back to the
    /// filesystem (`fallocate(PUNCH_HOLE | KEEP_SIZE)`, what JS random-access-file's `del`
    /// does through fs-native-extensions' `trim`): they read as zeros afterwards and the
    /// file keeps its length. Partial filesystem blocks at either end are zeroed by the
    /// kernel, so callers pass whole filesystem blocks ([`Self::fs_block_size`]).
    /// `Ok(false)`: the filesystem (or the platform) cannot punch holes; nothing changed.
    /// A memory file zeroes the bytes.
    pub(crate) fn punch_hole(&self, offset: u64, length: u64) -> std::io::Result<bool> {
        let end = offset
            .checked_add(length)
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "hole past u64"))?;
        if length == 0 {
            return Ok(true);
        }
        // Freeing extents can take a while: never inline.
        self.run(u64::MAX, || {
            let punched = match self.io()? {
                Io::File(file) => punch(&file, offset, length)?,
                Io::Memory(mem) => {
                    let mut mem = mem.lock().unwrap_or_else(|p| p.into_inner());
                    let end = to_usize(end.min(mem.len() as u64))?;
                    let start = to_usize(offset)?.min(end);
                    mem[start..end].fill(0);
                    true
                }
            };
            if punched {
                self.after_write()?;
            }
            Ok(punched)
        })
    }

    /// The filesystem's block size for this file (`st_blksize`; 4096 for memory files
    /// or when the filesystem reports none): the unit holes are punched in.
    pub(crate) fn fs_block_size(&self) -> std::io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let size = match self.io()? {
            Io::File(file) => file.metadata()?.blksize(),
            Io::Memory(_) => 0,
        };
        Ok(if size == 0 { 4096 } else { size })
    }

    /// `fdatasync` if anything was written since the last sync.
    pub(crate) fn sync_if_dirty(&self) -> std::io::Result<()> {
        if !matches!(self.backing, Backing::Memory(_)) && self.dirty.swap(false, Ordering::AcqRel) {
            let synced = self.io().and_then(|io| match io {
                Io::File(file) => file.sync_data(),
                Io::Memory(_) => Ok(()),
            });
            if let Err(e) = synced {
                self.dirty.store(true, Ordering::Release);
                return Err(e);
            }
            self.synced();
        }
        Ok(())
    }

    fn after_write(&self) -> std::io::Result<()> {
        match &self.backing {
            Backing::File(file) if self.sync_each_write => {
                file.sync_data()?;
                self.synced();
                Ok(())
            }
            Backing::Budgeted(budget, slot) if self.sync_each_write => {
                budget.file(slot)?.sync_data()?;
                self.synced();
                Ok(())
            }
            _ => {
                self.dirty.store(true, Ordering::Release);
                Ok(())
            }
        }
    }

    /// An `fdatasync` of this file returned: recorded for power-cut tests (feature
    /// `power-cut`), nothing otherwise.
    fn synced(&self) {
        #[cfg(feature = "power-cut")]
        self.recorder.sync();
    }
}

/// `fallocate(PUNCH_HOLE | KEEP_SIZE)`; `Ok(false)` where the filesystem does not
/// support it (`EOPNOTSUPP`, `ENOSYS`).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn punch(file: &File, offset: u64, length: u64) -> std::io::Result<bool> {
    use rustix::fs::{FallocateFlags, fallocate};
    use rustix::io::Errno;
    match fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        length,
    ) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// No hole punching here yet (macOS has `F_PUNCHHOLE`, not wired): the space stays
/// allocated, the caller's bookkeeping is unchanged.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn punch(_file: &File, _offset: u64, _length: u64) -> std::io::Result<bool> {
    Ok(false)
}

fn to_usize(n: u64) -> std::io::Result<usize> {
    usize::try_from(n).map_err(|_| Error::new(ErrorKind::InvalidInput, "size past usize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(f: &DiskFile) {
        f.write_at(10, b"hello").unwrap();
        assert_eq!(f.len(), 15);
        assert_eq!(f.read_exact_at(10, 5).unwrap(), b"hello");
        assert_eq!(f.read_exact_at(0, 10).unwrap(), vec![0u8; 10]);
        assert_eq!(
            f.read_exact_at(12, 5).unwrap_err().kind(),
            ErrorKind::UnexpectedEof
        );
        assert_eq!(
            f.read_exact_at(u64::MAX, 2).unwrap_err().kind(),
            ErrorKind::UnexpectedEof
        );
        f.truncate(3).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f.read_all().unwrap(), vec![0u8; 3]);
        f.sync_if_dirty().unwrap();
    }

    #[test]
    fn positioned_reads_and_writes_on_disk_and_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        exercise(&DiskFile::open(&path, Durability::Flush).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3);
        // Reopening sees the same length.
        assert_eq!(
            DiskFile::open(&path, Durability::FsyncPerWrite)
                .unwrap()
                .len(),
            3
        );
        exercise(&DiskFile::memory("data"));
    }
}
