//! The store's files as they lie on disk, read in one place: directory and file names, the
//! listing and checking of a directory of segment files, and the scan for the next valid record
//! after damage. Recovery (which acts on what it finds), `verify` (which only reports), `repair`
//! (which fixes what `open` refuses) and the command-line tools read the layout through here,
//! so that they agree on what a valid store is.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub mod scan;
pub mod segments;
pub mod start;

pub use crate::checkpoint::CHECKPOINT_FILE;
pub use crate::consumer_offset::CONFIG_DIR;
pub use crate::index::INDEX_DIR;
pub use crate::meta::META_FILE;

/// The commit log's directory.
pub const COMMIT_LOG_DIR: &str = "commitlog";
/// The consume queues' directory (one subdirectory per topic, then per queue id).
pub const CONSUME_QUEUE_DIR: &str = "consumequeue";
/// Present while a store is open: found at open, it means the last run did not close cleanly.
pub const ABORT_FILE: &str = "abort";
/// The file a running store holds locked.
pub const LOCK_FILE: &str = "lock";
/// Where files the store will not use are moved rather than deleted.
pub const LOST_FOUND_DIR: &str = "lost+found";

/// Takes the lock of the store in `dir` for a tool that reads or mends its files while no store
/// runs, if the lock file exists (never creating it): `Error::Locked` while a store holds it.
pub fn lock_existing(dir: &Path) -> Result<Option<File>> {
    let path = dir.join(LOCK_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// Where one step sets aside what the store will not use, under `lost+found/`: a directory
/// named by the time, `{ms}-{what}` (`{ms}` alone for recovery's cut segments), so that nothing
/// set aside ever replaces what an earlier step set aside.
pub fn lost_found_dir(store_dir: &Path, what: &str) -> PathBuf {
    let ms = crate::clock::now_millis();
    let name = if what.is_empty() {
        ms.to_string()
    } else {
        format!("{ms}-{what}")
    };
    store_dir.join(LOST_FOUND_DIR).join(name)
}
