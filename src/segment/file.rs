//! One segment: positions, the single writer, reads below the published position.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Storage;

/// Page size used to decide whether enough is dirty to flush, as RocketMQ's `OS_PAGE_SIZE`.
pub const PAGE_SIZE: u64 = 4096;

/// One fixed-size segment file covering offsets `start..start + size` of its queue.
///
/// Bytes below [`readable`](Segment::readable) are immutable while any shared reference to the
/// segment exists: the writer only writes at or above it, and only `&mut Segment` (which no
/// reader can hold at the same time) may lower it.
pub struct Segment<S: Storage> {
    storage: S,
    start: u64,
    path: PathBuf,
    /// Bytes published to readers, relative to `start`.
    readable: AtomicU64,
    /// Bytes known durable, relative to `start`.
    flushed: AtomicU64,
    /// Whether a [`SegmentWriter`] was handed out; there is at most one per segment.
    claimed: AtomicBool,
}

impl<S: Storage> Segment<S> {
    /// Wraps storage; `readable` is where readers may read up to (the end of valid data). Nothing
    /// is taken to be durable yet: the first flush syncs from the start.
    pub(crate) fn new(storage: S, start: u64, path: PathBuf, readable: u64) -> Self {
        let readable = readable.min(storage.len() as u64);
        Segment {
            storage,
            start,
            path,
            readable: AtomicU64::new(readable),
            flushed: AtomicU64::new(0),
            claimed: AtomicBool::new(false),
        }
    }

    /// First offset of the segment.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.storage.len() as u64
    }

    /// One past the last offset the segment covers.
    pub fn end(&self) -> u64 {
        self.start + self.size()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes readable, relative to the start.
    pub fn readable(&self) -> u64 {
        self.readable.load(Ordering::Acquire)
    }

    /// Bytes durable, relative to the start.
    pub fn flushed(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    /// Whether every byte is published (the writer reached the end).
    pub fn is_full(&self) -> bool {
        self.readable() >= self.size()
    }

    /// Borrows `len` published bytes at `pos` (relative), or `None` if they are not all published.
    pub fn read(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len as u64)?;
        if end > self.readable() {
            return None;
        }
        // SAFETY: `end <= readable <= storage.len()`. Published bytes are never written while
        // `&self` exists: the single writer only writes at or above `readable`, and lowering
        // `readable` takes `&mut self` (see `set_readable`), which cannot coexist with this borrow.
        Some(unsafe { self.storage.read(pos as usize, len) })
    }

    /// Every published byte from `pos` (relative) to the readable end.
    pub fn read_from(&self, pos: u64) -> Option<&[u8]> {
        let readable = self.readable();
        let len = readable.checked_sub(pos)?;
        self.read(pos, len as usize)
    }

    /// Hands out the segment's writer, positioned at the readable end. `None` if one was
    /// already handed out.
    pub fn claim_writer(self: &Arc<Self>) -> Option<SegmentWriter<S>> {
        if self.claimed.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(SegmentWriter {
            wrote: self.readable(),
            segment: Arc::clone(self),
        })
    }

    /// Flushes published bytes not yet durable when at least `least_pages` pages are dirty (or
    /// the segment is full, or `least_pages` is 0). Returns the durable position (relative).
    pub fn flush(&self, least_pages: u64) -> io::Result<u64> {
        let readable = self.readable();
        let flushed = self.flushed();
        if readable <= flushed {
            return Ok(flushed);
        }
        let dirty_pages = readable / PAGE_SIZE - flushed / PAGE_SIZE;
        if least_pages > 0 && dirty_pages < least_pages && readable < self.size() {
            return Ok(flushed);
        }
        // msync wants page alignment; flushing from the page that holds `flushed` is enough.
        let from = flushed - flushed % PAGE_SIZE;
        self.storage.flush(from as usize, (readable - from) as usize)?;
        self.flushed.fetch_max(readable, Ordering::AcqRel);
        Ok(self.flushed())
    }

    /// Moves the readable (and durable) end to `pos`, discarding what is above it from readers'
    /// view. Needs exclusive access: no reader or writer may hold the segment.
    pub fn set_readable(&mut self, pos: u64) {
        let pos = pos.min(self.size());
        *self.readable.get_mut() = pos;
        let flushed = self.flushed.get_mut();
        *flushed = (*flushed).min(pos);
        *self.claimed.get_mut() = false;
    }

    /// Overwrites `pos..end` with zeros and flushes them, then sets the readable end to `pos`.
    /// Used to make a truncation durable. Pages at the end that are already zero are left alone
    /// (a preallocated segment is mostly zeros). Needs exclusive access, like `set_readable`.
    pub fn zero_tail(&mut self, pos: u64, end: u64) -> io::Result<()> {
        fail::fail_point!("segment-truncate", |_| Err(io::Error::from_raw_os_error(5)));
        let mut end = end.min(self.size());
        while end > pos {
            let page_start = (end - 1) / PAGE_SIZE * PAGE_SIZE;
            let from = page_start.max(pos);
            // SAFETY: `&mut self`: no writer or reader slice of this segment is alive; the range
            // is within the storage.
            let page = unsafe { self.storage.read(from as usize, (end - from) as usize) };
            if page.iter().any(|&b| b != 0) {
                break;
            }
            end = from;
        }
        if pos < end {
            let zeros = vec![0u8; (end - pos) as usize];
            // SAFETY: `&mut self` proves no reader slice or writer of this segment is alive, and
            // the range lies within the storage (`end <= size`).
            unsafe { self.storage.write(pos as usize, &zeros) };
            self.storage.flush(pos as usize, (end - pos) as usize)?;
        }
        self.set_readable(pos);
        Ok(())
    }

    /// Touches every page (warm-up).
    pub fn warm_up(&self) -> io::Result<()> {
        self.storage.warm_up()
    }
}

/// The single writer of a segment. Writes go above the published position and become visible
/// to readers only at [`publish`](SegmentWriter::publish).
pub struct SegmentWriter<S: Storage> {
    segment: Arc<Segment<S>>,
    /// Bytes written, relative to the segment start; `>= segment.readable`.
    wrote: u64,
}

impl<S: Storage> SegmentWriter<S> {
    /// The segment written to.
    pub fn segment(&self) -> &Arc<Segment<S>> {
        &self.segment
    }

    /// Absolute offset of the next byte to write.
    pub fn position(&self) -> u64 {
        self.segment.start + self.wrote
    }

    /// Bytes left in the segment.
    pub fn remaining(&self) -> u64 {
        self.segment.size() - self.wrote
    }

    /// Writes `data` at the write position (unpublished).
    ///
    /// # Panics
    /// If `data` does not fit in the remaining space: callers check `remaining` first, so this is
    /// a bug in the caller, never a consequence of data read from disk.
    pub fn write(&mut self, data: &[u8]) {
        assert!(data.len() as u64 <= self.remaining(), "segment write past its end");
        // SAFETY: in bounds by the assert. The bytes at and above `wrote` are above the published
        // position, so no reader slice covers them, and this writer is the only one of the
        // segment (`claim_writer` hands out at most one), borrowed mutably here.
        unsafe { self.segment.storage.write(self.wrote as usize, data) };
        self.wrote += data.len() as u64;
    }

    /// Writes `data` at `pos` (relative), which must be at or above the published position and
    /// below the write position: lets the writer patch bytes it wrote but has not published.
    pub fn patch(&mut self, pos: u64, data: &[u8]) {
        assert!(
            pos >= self.segment.readable() && pos + data.len() as u64 <= self.wrote,
            "patch outside the unpublished range"
        );
        // SAFETY: the range is unpublished (no reader sees it) and within what this single
        // writer has written, so within the storage.
        unsafe { self.segment.storage.write(pos as usize, data) };
    }

    /// Skips to the end of the segment (after an end-of-segment filler was written).
    pub fn fill_to_end(&mut self) {
        self.wrote = self.segment.size();
    }

    /// Makes everything written visible to readers.
    pub fn publish(&mut self) {
        self.segment.readable.store(self.wrote, Ordering::Release);
    }
}

/// Type-erased read access to a segment, so that messages handed to consumers need no generic
/// parameter.
pub trait SegmentRead: Send + Sync {
    /// Borrows published bytes, as [`Segment::read`].
    fn read_bytes(&self, pos: u64, len: usize) -> Option<&[u8]>;
}

impl<S: Storage> SegmentRead for Segment<S> {
    fn read_bytes(&self, pos: u64, len: usize) -> Option<&[u8]> {
        self.read(pos, len)
    }
}
