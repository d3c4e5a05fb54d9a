//! Our disk backend for the `hypercore` crate: positioned reads and writes on plain files.
//!
//! The crate's stock backend (`random-access-disk`) sends every call through `tokio::fs`
//! (a blocking-pool hop each) behind an async mutex and fsyncs after every write. This one
//! calls `pread`/`pwrite` directly: on page-cached data a call takes a few microseconds,
//! less than a thread hop, so it runs inline on the calling task. Syncing is not done here
//! per write (except in [`Durability::FsyncPerWrite`]); [`crate::ManagedCore`] syncs the
//! files it dirtied once per append call when the durability mode asks for it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use random_access_storage::{BoxFuture, RandomAccess, RandomAccessError};

/// What an acknowledged append survives. Chosen per log when it is opened.
///
/// | mode | process crash | power loss / kernel crash | cost |
/// |---|---|---|---|
/// | [`Flush`](Durability::Flush) | survives | may be lost | a `write` per file touched |
/// | [`FsyncPerBatch`](Durability::FsyncPerBatch) | survives | survives | + one `fdatasync` per touched file per append call |
/// | [`FsyncPerWrite`](Durability::FsyncPerWrite) | survives | survives | + one `fdatasync` per write (the crate's stock behaviour) |
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

/// One of the four hypercore files (`tree`, `data`, `bitfield`, `oplog`).
#[derive(Debug)]
pub(crate) struct DiskFile {
    file: File,
    path: PathBuf,
    len: AtomicU64,
    dirty: AtomicBool,
    sync_each_write: bool,
}

impl DiskFile {
    pub(crate) fn open(path: &Path, durability: Durability) -> std::io::Result<Arc<Self>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(Arc::new(DiskFile {
            file,
            path: path.to_owned(),
            len: AtomicU64::new(len),
            dirty: AtomicBool::new(false),
            sync_each_write: durability == Durability::FsyncPerWrite,
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads exactly `length` bytes at `offset` (`UnexpectedEof` past the end).
    pub(crate) fn read_exact_at(&self, offset: u64, length: u64) -> std::io::Result<Vec<u8>> {
        let size = usize::try_from(length)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "length"))?;
        let mut buf = vec![0u8; size];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// `fdatasync` if anything was written since the last sync.
    pub(crate) fn sync_if_dirty(&self) -> std::io::Result<()> {
        if self.dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = self.file.sync_data()
        {
            self.dirty.store(true, Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    fn do_write(&self, offset: u64, data: &[u8]) -> Result<(), RandomAccessError> {
        self.file
            .write_all_at(data, offset)
            .map_err(|e| self.io_error(e, "write", offset))?;
        self.len
            .fetch_max(offset + data.len() as u64, Ordering::AcqRel);
        self.after_write()
    }

    fn after_write(&self) -> Result<(), RandomAccessError> {
        if self.sync_each_write {
            self.file
                .sync_data()
                .map_err(|e| self.io_error(e, "fdatasync", 0))?;
        } else {
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn do_read(&self, offset: u64, length: u64) -> Result<Vec<u8>, RandomAccessError> {
        let len = self.len.load(Ordering::Acquire);
        let end = offset.checked_add(length);
        match end {
            Some(end) if end <= len => {}
            _ => {
                return Err(RandomAccessError::OutOfBounds {
                    offset,
                    end,
                    length: len,
                });
            }
        }
        let size = usize::try_from(length).map_err(|_| RandomAccessError::OutOfBounds {
            offset,
            end,
            length: len,
        })?;
        let mut buf = vec![0u8; size];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| self.io_error(e, "read", offset))?;
        Ok(buf)
    }

    fn do_del(&self, offset: u64, length: u64) -> Result<(), RandomAccessError> {
        let len = self.len.load(Ordering::Acquire);
        if offset > len {
            return Err(RandomAccessError::OutOfBounds {
                offset,
                end: None,
                length: len,
            });
        }
        if length == 0 {
            return Ok(());
        }
        // Same contract as random-access-disk: deleting up to the end truncates,
        // deleting inside the file zeroes the range.
        if offset.saturating_add(length) >= len {
            return self.do_truncate(offset);
        }
        const CHUNK: u64 = 64 * 1024;
        let zeros = vec![0u8; CHUNK.min(length) as usize];
        let mut at = offset;
        let end = offset + length;
        while at < end {
            let n = (end - at).min(CHUNK) as usize;
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| self.io_error(e, "del", at))?;
            at += n as u64;
        }
        self.after_write()
    }

    fn do_truncate(&self, length: u64) -> Result<(), RandomAccessError> {
        self.file
            .set_len(length)
            .map_err(|e| self.io_error(e, "truncate", length))?;
        self.len.store(length, Ordering::Release);
        self.after_write()
    }

    fn io_error(&self, source: std::io::Error, op: &str, offset: u64) -> RandomAccessError {
        RandomAccessError::IO {
            return_code: source.raw_os_error(),
            context: Some(format!(
                "{op} at offset {offset} of {}",
                self.path.display()
            )),
            source,
        }
    }
}

impl RandomAccess for DiskFile {
    fn write(&self, offset: u64, data: &[u8]) -> BoxFuture<Result<(), RandomAccessError>> {
        Box::pin(std::future::ready(self.do_write(offset, data)))
    }

    fn read(&self, offset: u64, length: u64) -> BoxFuture<Result<Vec<u8>, RandomAccessError>> {
        Box::pin(std::future::ready(self.do_read(offset, length)))
    }

    fn del(&self, offset: u64, length: u64) -> BoxFuture<Result<(), RandomAccessError>> {
        Box::pin(std::future::ready(self.do_del(offset, length)))
    }

    fn truncate(&self, length: u64) -> BoxFuture<Result<(), RandomAccessError>> {
        Box::pin(std::future::ready(self.do_truncate(length)))
    }

    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    fn sync_all(&self) -> BoxFuture<Result<(), RandomAccessError>> {
        Box::pin(std::future::ready(
            self.sync_if_dirty()
                .map_err(|e| self.io_error(e, "fdatasync", 0)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready<T>(f: BoxFuture<T>) -> T {
        futures_lite_block_on(f)
    }

    // The futures here are always immediately ready; poll once with a no-op waker.
    fn futures_lite_block_on<T>(mut f: BoxFuture<T>) -> T {
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("disk futures are always ready"),
        }
    }

    #[test]
    fn write_read_del_truncate_follow_the_random_access_contract() {
        let dir = tempfile::tempdir().unwrap();
        let f = DiskFile::open(&dir.path().join("data"), Durability::Flush).unwrap();
        ready(f.write(10, b"hello")).unwrap();
        assert_eq!(f.len(), 15);
        assert_eq!(ready(f.read(10, 5)).unwrap(), b"hello");
        assert_eq!(ready(f.read(0, 10)).unwrap(), vec![0u8; 10]);
        assert!(matches!(
            ready(f.read(12, 5)),
            Err(RandomAccessError::OutOfBounds { length: 15, .. })
        ));
        assert!(matches!(
            ready(f.read(u64::MAX, 2)),
            Err(RandomAccessError::OutOfBounds { .. })
        ));
        ready(f.del(11, 2)).unwrap();
        assert_eq!(ready(f.read(10, 5)).unwrap(), b"h\0\0lo");
        ready(f.del(12, 100)).unwrap();
        assert_eq!(f.len(), 12);
        ready(f.truncate(3)).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(std::fs::metadata(dir.path().join("data")).unwrap().len(), 3);
        ready(f.sync_all()).unwrap();
        // Reopening sees the same length.
        let g = DiskFile::open(&dir.path().join("data"), Durability::FsyncPerWrite).unwrap();
        assert_eq!(g.len(), 3);
    }
}
