//! The store's own small files (lock, checkpoint, metadata) live in its directory outside the
//! segment backend: these are the file-system steps they share.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{IoContext, Result};

/// Opens `path` for reading and writing, creating it empty if missing, keeping what it holds.
pub(crate) fn open_or_create(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
}

/// Makes `dir`'s entries (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Parses a file name of exactly `len` ASCII digits (segment and index file names).
pub(crate) fn parse_digits(name: &str, len: usize) -> Option<u64> {
    if name.len() != len || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}
