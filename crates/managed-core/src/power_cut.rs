//! A journal of the file operations a log issues, for power-cut tests (cargo feature
//! `power-cut`, off by default; the crate's own tests enable it).
//!
//! Owns: recording, in issue order, every `pwrite`, `truncate` and `fdatasync` that a
//! log's files (`DiskFile`, disk.rs) perform in a directory registered with
//! [`Journal::record`]. `tests/power_cut.rs` replays a prefix of the journal onto a copy
//! of the durable starting files (dropping or tearing what was not synced yet) to build
//! the states a power cut can leave, and reopens each with the normal code.
//! Used only by that test (docs/reliability.md "Power loss (simulated)").
//!
//! Does not: change what is written or when, intercept files opened before
//! [`Journal::record`] or outside the registered directory, or record reads, file
//! creation or directory entries. Without the feature none of this is compiled.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// One recorded operation on a file, named by its file name (`data`, `tree`,
/// `bitfield`, `oplog`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `bytes` were written at `offset` (the write returned successfully).
    Write {
        /// The file's name inside the log directory.
        file: String,
        /// Byte offset of the write.
        offset: u64,
        /// The bytes written.
        bytes: Vec<u8>,
    },
    /// The file was cut (or extended with zeros) to `length` bytes.
    Truncate {
        /// The file's name inside the log directory.
        file: String,
        /// The new length.
        length: u64,
    },
    /// `fdatasync` on the file returned successfully: every earlier operation on it is
    /// durable.
    Sync {
        /// The file's name inside the log directory.
        file: String,
    },
}

impl Op {
    /// The file the operation is on.
    pub fn file(&self) -> &str {
        match self {
            Op::Write { file, .. } | Op::Truncate { file, .. } | Op::Sync { file } => file,
        }
    }
}

/// The operations on the files directly inside one directory, in issue order, shared
/// by the log's files. Recording lasts while the `Arc` returned by
/// [`Journal::record`] (or a file opened under it) is alive.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    ops: Mutex<Vec<Op>>,
}

/// Journals being recorded (weak: a dropped journal stops recording new opens).
static JOURNALS: Mutex<Vec<Weak<Journal>>> = Mutex::new(Vec::new());

impl Journal {
    /// Starts recording the files opened from now on directly inside `dir` (the path
    /// as it will be given to `ManagedCore::open`).
    pub fn record(dir: &Path) -> Arc<Journal> {
        let journal = Arc::new(Journal {
            dir: dir.to_owned(),
            ops: Mutex::new(Vec::new()),
        });
        let mut all = JOURNALS.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|j| j.strong_count() > 0);
        all.push(Arc::downgrade(&journal));
        journal
    }

    /// How many operations were recorded so far (a position in the journal).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A copy of the operations recorded so far.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().clone()
    }

    fn push(&self, op: Op) {
        self.lock().push(op);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Op>> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A file's link to the journal of its directory, if one is recording.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    target: Option<(Arc<Journal>, String)>,
}

impl Recorder {
    /// The recorder for a file at `path`: records when a journal watches its directory.
    pub(crate) fn for_path(path: &Path) -> Self {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Recorder::default();
        };
        let all = JOURNALS.lock().unwrap_or_else(|p| p.into_inner());
        let journal = all.iter().filter_map(Weak::upgrade).find(|j| j.dir == dir);
        Recorder {
            target: journal.map(|j| (j, name.to_string_lossy().into_owned())),
        }
    }

    pub(crate) fn write(&self, offset: u64, bytes: &[u8]) {
        if let Some((journal, file)) = &self.target {
            journal.push(Op::Write {
                file: file.clone(),
                offset,
                bytes: bytes.to_vec(),
            });
        }
    }

    pub(crate) fn truncate(&self, length: u64) {
        if let Some((journal, file)) = &self.target {
            journal.push(Op::Truncate {
                file: file.clone(),
                length,
            });
        }
    }

    pub(crate) fn sync(&self) {
        if let Some((journal, file)) = &self.target {
            journal.push(Op::Sync { file: file.clone() });
        }
    }
}
