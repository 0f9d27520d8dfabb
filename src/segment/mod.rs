//! Fixed-size, preallocated segment files and the ordered queue of them.
//!
//! This module is the only home of `unsafe` in the crate. Everything above it (commit log,
//! consume queues) sees safe types:
//! - [`Segment`]: one file of a fixed size, readable up to a published position;
//! - [`SegmentWriter`]: the single writer of a segment, which appends and publishes;
//! - [`SegmentQueue`]: the ordered list of segments of one directory, named by start offset.
//!
//! The bytes themselves live behind [`Storage`], produced by a [`Backend`]. The default backend
//! maps files with mmap; tests can plug in one that simulates power loss. The commit log and
//! consume queues are generic over the backend, so the mmap path pays no dynamic dispatch.

pub mod buffer;
mod file;
mod mmap;
mod queue;
mod region;
#[cfg(any(test, feature = "internals"))]
pub mod sim;

use std::io;
use std::path::Path;

pub use file::{Bytes, Pinned, Reservation, Segment, SegmentRead, SegmentWriter};
pub use mmap::{MmapBackend, MmapStorage, ReadOnlyMap, lower_thread_priority, lowest_thread_priority};
pub use queue::{SegmentQueue, SegmentRef, SizeRule};
pub use region::{Region, RegionRead, RegionWrite};

/// The bytes of one segment file: a fixed-size region that can be written, read and flushed.
///
/// Implementations hand out raw access; the safe types of this module ([`Segment`],
/// [`SegmentWriter`]) uphold the rules the methods' safety sections state.
pub trait Storage: Send + Sync + 'static {
    /// Size of the region in bytes; it never changes.
    fn len(&self) -> usize;

    /// Whether the region is empty (never, for a real segment).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `data` to `pos`.
    ///
    /// # Safety
    /// `pos + data.len() <= self.len()`, and no other thread reads or writes any byte of
    /// `pos..pos + data.len()` while the call runs or while a slice from [`Storage::read`] over
    /// those bytes is alive.
    unsafe fn write(&self, pos: usize, data: &[u8]);

    /// Copies `data` to `pos` the way a bulk commit wants it: through the file (`pwrite`) where
    /// the backend can, so that whole pages are filled without first being zeroed. Defaults to
    /// [`write`](Storage::write).
    ///
    /// # Safety
    /// As [`write`](Storage::write).
    unsafe fn write_through(&self, pos: usize, data: &[u8]) -> io::Result<()> {
        // SAFETY: the caller upholds `write`'s contract, which is this method's.
        unsafe { self.write(pos, data) };
        Ok(())
    }

    /// The address of the region's first byte, for writers that fill a reserved range in place
    /// (see [`Reservation`]). The region's bytes stay at this address for the storage's
    /// lifetime; every access through the pointer follows [`write`](Storage::write)'s contract.
    fn as_mut_ptr(&self) -> *mut u8;

    /// Borrows `len` bytes at `pos`.
    ///
    /// # Safety
    /// `pos + len <= self.len()`, and nothing writes to those bytes while the slice is alive.
    unsafe fn read(&self, pos: usize, len: usize) -> &[u8];

    /// Makes the bytes `pos..pos + len` durable (msync / fdatasync of the range). Returns only
    /// after the data is on stable storage.
    fn flush(&self, pos: usize, len: usize) -> io::Result<()>;

    /// Drops this process's mappings of the whole pages within `pos..pos + len`, keeping their
    /// bytes (dirty or not) in the file's cache, before the range is flushed. Cleaning a page
    /// that is mapped writable makes the kernel write-protect it and shoot its translation down
    /// on every core running the process, one interrupt per page; cleaning an unmapped page
    /// needs neither. Whoever touches such a page again maps it back, with the same bytes. The
    /// default does nothing. Best effort: an error only leaves the pages mapped.
    fn release_pages(&self, pos: usize, len: usize) {
        let _ = (pos, len);
    }

    /// Faults the pages of `pos..pos + len` in ahead of the writer (warm-up). Must be safe to
    /// run while the writer appends: implementations touch no byte of the region themselves.
    fn warm_up(&self, pos: usize, len: usize) -> io::Result<()>;

    /// Writes zeros over the whole region and makes them durable, so that later syncs of
    /// written ranges carry data alone. File systems such as ext4 and XFS mark preallocated
    /// blocks *unwritten*, and the first sync of each range written into them must also commit
    /// that change to the journal. Checks `stop` between chunks and returns `Ok(false)` if it
    /// stopped early (the region still reads as zeros). The default does nothing: a backend
    /// without such metadata has nothing to gain.
    ///
    /// # Safety
    /// Nothing else reads or writes the region while the call runs.
    unsafe fn write_zeros(&self, stop: &dyn Fn() -> bool) -> io::Result<bool> {
        let _ = stop;
        Ok(true)
    }
}

/// Creates, opens, lists and removes segment files.
pub trait Backend: Send + Sync + 'static {
    /// The storage of one segment file.
    type Storage: Storage;

    /// Creates `path` with `size` bytes really allocated on disk (not sparse) and zeroed, and
    /// makes its directory entry durable. Fails if the file exists.
    fn create(&self, path: &Path, size: u64) -> io::Result<Self::Storage>;

    /// Opens an existing file with its current size.
    fn open(&self, path: &Path) -> io::Result<Self::Storage>;

    /// Lists the regular files of `dir` (name, size). A missing directory lists as empty.
    fn list(&self, dir: &Path) -> io::Result<Vec<(String, u64)>>;

    /// Lists the subdirectories of `dir`. A missing directory lists as empty.
    fn list_dirs(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Renames a file (atomically, on one file system) and makes the change durable.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Creates a directory and its parents, making the new entries durable.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
}

/// Formats a segment's start offset as RocketMQ's 20-digit file name.
pub fn segment_name(start: u64) -> String {
    format!("{start:020}")
}

/// Parses a 20-digit segment file name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    crate::files::parse_digits(name, 20)
}
