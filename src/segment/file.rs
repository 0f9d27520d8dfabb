//! One segment: positions, the single writer, reads below the published position.

use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

use super::Storage;
use super::buffer::{BufferSlice, WriteBuffer};

/// Page size used to decide whether enough is dirty to flush, as RocketMQ's `OS_PAGE_SIZE`.
pub const PAGE_SIZE: u64 = 4096;

/// Zeros written at a time when a segment's tail is cleared.
const ZERO_CHUNK: usize = 1 << 20;

/// Bytes of the end mark (see [`SegmentWriter::mark_end`]): a record's first field, its total
/// size, and the magic after it; zeros there read as the end of the log.
const END_MARK_LEN: usize = 8;

/// One fixed-size segment file covering offsets `start..start + size` of its queue.
///
/// Bytes below [`readable`](Segment::readable) are immutable while any shared reference to the
/// segment exists: the writer only writes at or above it, and only `&mut Segment` (which no
/// reader can hold at the same time) may lower it.
///
/// A *buffered* segment takes its appends into a [`WriteBuffer`] holding a full image of it;
/// [`commit`](Segment::commit) copies them into the file. Below the committed position readers
/// read the file, above it the buffer; the file's bytes at and above it are touched only by the
/// committer.
pub struct Segment<S: Storage> {
    storage: S,
    start: u64,
    path: PathBuf,
    /// Bytes published to readers, relative to `start`. Written by every append, read by the
    /// dispatcher and readers: on cache lines of its own, so that neither the fields the writer
    /// reads on every append nor the `Arc`'s counts (every reader's clone) share its line.
    readable: CachePadded<AtomicU64>,
    /// Bytes known durable, relative to `start`.
    flushed: AtomicU64,
    /// Whether a [`SegmentWriter`] was handed out; there is at most one per segment.
    claimed: AtomicBool,
    /// Whether appends go through a write buffer (fixed before the segment is shared).
    buffered: bool,
    /// The write buffer, until everything is committed.
    buffer: RwLock<Option<Arc<WriteBuffer>>>,
    /// Bytes copied from the buffer into the file (buffered segments only).
    committed: AtomicU64,
    commit_lock: Mutex<()>,
}

/// Bytes of a segment: borrowed from the file mapping, or a slice of its write buffer.
pub enum Bytes<'a> {
    /// From the file.
    Mapped(&'a [u8]),
    /// From the write buffer (not yet committed to the file).
    Buffered(BufferSlice),
}

impl Deref for Bytes<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(b) => b,
            Bytes::Buffered(b) => b,
        }
    }
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
            readable: CachePadded::new(AtomicU64::new(readable)),
            flushed: AtomicU64::new(0),
            claimed: AtomicBool::new(false),
            buffered: false,
            buffer: RwLock::new(None),
            committed: AtomicU64::new(0),
            commit_lock: Mutex::new(()),
        }
    }

    /// The same file, renamed to `path` by the caller, as a new empty segment starting at
    /// `start`: a recycled segment. Its bytes are the old records until overwritten; readers
    /// never see them (nothing is published) and recovery tells them from new ones by the
    /// physical offset every record carries. `None` (the file is dropped) if a write buffer is
    /// still attached: it may hold bytes not yet in the file.
    pub(crate) fn recycle(self, start: u64, path: PathBuf) -> Option<Self> {
        if self.buffer.read().is_some() {
            return None;
        }
        Some(Segment::new(self.storage, start, path, 0))
    }

    /// Makes a fresh segment (not yet shared: `&mut`) take its appends through `buffer`. Gives
    /// the buffer back if it does not fit (wrong size, or the segment already has data).
    pub(crate) fn attach_buffer(&mut self, buffer: Arc<WriteBuffer>) -> Result<(), Arc<WriteBuffer>> {
        if buffer.len() as u64 != self.size() || *self.readable.get_mut() != 0 || *self.claimed.get_mut() {
            return Err(buffer);
        }
        self.buffered = true;
        *self.buffer.get_mut() = Some(buffer);
        Ok(())
    }

    /// Whether appends go through a write buffer.
    pub fn is_buffered(&self) -> bool {
        self.buffered
    }

    /// Bytes in the file (committed), relative to the start: the readable end for a segment
    /// without a write buffer.
    pub fn committed(&self) -> u64 {
        if self.buffered {
            self.committed.load(Ordering::Acquire)
        } else {
            self.readable()
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
    #[inline]
    pub fn read(&self, pos: u64, len: usize) -> Option<Bytes<'_>> {
        let end = pos.checked_add(len as u64)?;
        if end > self.readable() {
            return None;
        }
        if let Some(mapped) = self.read_committed(pos, len) {
            return Some(Bytes::Mapped(mapped));
        }
        match &*self.buffer.read() {
            Some(buffer) => Some(Bytes::Buffered(BufferSlice {
                buffer: Arc::clone(buffer),
                pos: pos as usize,
                len,
            })),
            // Detached: everything was committed meanwhile.
            None => self.read_committed(pos, len).map(Bytes::Mapped),
        }
    }

    /// Borrows `len` bytes at `pos` from the file, if they are all committed there.
    #[inline]
    pub fn read_committed(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len as u64)?;
        if end > self.committed() {
            return None;
        }
        // SAFETY: `end <= committed <= readable <= storage.len()`. Committed bytes of the file are
        // never written while `&self` exists: the writer writes at or above `readable` (or only
        // into the buffer), the committer only at or above `committed`, and lowering either takes
        // `&mut self` (see `set_readable`), which cannot coexist with this borrow.
        Some(unsafe { self.storage.read(pos as usize, len) })
    }

    /// Every published byte from `pos` (relative) to the readable end, from the write buffer
    /// while one is attached, else from the file. For short-lived reads that follow the writer
    /// (the dispatcher): reading the buffer leaves the file's fresh pages unmapped, so syncing
    /// them needs no write-protection of mapped pages and no TLB shoot-down of the other cores.
    /// A slice of the buffer keeps it out of the pool while it lives: never hold one long.
    pub fn read_from_buffer_first(&self, pos: u64) -> Option<Bytes<'_>> {
        let readable = self.readable();
        let len = readable.checked_sub(pos)?;
        if let Some(buffer) = &*self.buffer.read() {
            return Some(Bytes::Buffered(BufferSlice {
                buffer: Arc::clone(buffer),
                pos: pos as usize,
                len: len as usize,
            }));
        }
        self.read(pos, len as usize)
    }

    /// Every published byte from `pos` (relative) to the readable end.
    pub fn read_from(&self, pos: u64) -> Option<Bytes<'_>> {
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
        let readable = self.readable();
        Some(SegmentWriter {
            wrote: readable,
            reserved_to: readable,
            buffer: self.buffer.read().clone(),
            segment: Arc::clone(self),
        })
    }

    /// Copies appended bytes from the write buffer into the file. When the segment is full and
    /// all of it is in the file, the buffer is detached and handed back for reuse. Returns the
    /// committed position and the detached buffer, if any. A no-op for unbuffered segments.
    pub fn commit(&self) -> io::Result<(u64, Option<Arc<WriteBuffer>>)> {
        if !self.buffered {
            return Ok((self.readable(), None));
        }
        let _guard = self.commit_lock.lock();
        let from = self.committed.load(Ordering::Acquire);
        let to = self.readable();
        if to > from
            && let Some(buffer) = self.buffer.read().clone()
        {
            // SAFETY: `from..to` is published in the buffer (never written again), and in the
            // file it lies at or above `committed`, where no reader reads (they go to the buffer)
            // and only this committer, holding `commit_lock`, writes.
            unsafe {
                let bytes = buffer.read(from as usize, (to - from) as usize);
                self.storage.write_through(from as usize, bytes)?;
            }
            self.committed.store(to, Ordering::Release);
        }
        let detached = if self.committed.load(Ordering::Acquire) >= self.size() {
            self.buffer.write().take()
        } else {
            None
        };
        Ok((self.committed(), detached))
    }

    /// Flushes published bytes not yet durable when at least `least_pages` pages are dirty (or
    /// the segment is full, or `least_pages` is 0). Returns the durable position (relative).
    pub fn flush(&self, least_pages: u64) -> io::Result<u64> {
        let readable = self.committed();
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
        // Published bytes never change: nobody writes these pages again, readers map them back.
        self.storage.release_pages(from as usize, (readable - from) as usize);
        self.storage.flush(from as usize, (readable - from) as usize)?;
        self.flushed.fetch_max(readable, Ordering::AcqRel);
        Ok(self.flushed())
    }

    /// Moves the readable (and durable) end to `pos`, discarding what is above it from readers'
    /// view. Needs exclusive access: no reader or writer may hold the segment.
    pub fn set_readable(&mut self, pos: u64) {
        let pos = pos.min(self.size());
        *self.readable.get_mut() = pos;
        let committed = self.committed.get_mut();
        *committed = (*committed).min(pos);
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
            // In chunks: a recycled segment's tail is old records up to its end, not zeros.
            let zeros = vec![0u8; ((end - pos) as usize).min(ZERO_CHUNK)];
            let mut at = pos;
            while at < end {
                let len = ((end - at) as usize).min(zeros.len());
                // SAFETY: `&mut self` proves no reader slice or writer of this segment is alive,
                // and the range lies within the storage (`at + len <= end <= size`).
                unsafe { self.storage.write(at as usize, &zeros[..len]) };
                at += len as u64;
            }
            self.storage.flush(pos as usize, (end - pos) as usize)?;
        }
        self.set_readable(pos);
        Ok(())
    }

    /// Overwrites published bytes at `pos` and makes them durable: the repair of a consume-queue
    /// unit found wrong. Needs exclusive access, like `set_readable`; the readable end stays.
    pub fn overwrite(&mut self, pos: u64, data: &[u8]) -> io::Result<()> {
        let end = pos
            .checked_add(data.len() as u64)
            .filter(|&end| end <= self.readable())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "overwrite past the readable end"))?;
        // SAFETY: `&mut self` proves no reader slice or writer of this segment is alive, and
        // `pos..end` lies within the readable part of the storage (checked above).
        unsafe { self.storage.write(pos as usize, data) };
        self.storage.flush(pos as usize, (end - pos) as usize)?;
        // No writer exists (it would hold a reference): let the next one claim the segment.
        *self.claimed.get_mut() = false;
        Ok(())
    }

    /// Faults every page in ahead of the writer (warm-up); may run while the writer appends.
    pub fn warm_up(&self) -> io::Result<()> {
        self.storage.warm_up(0, self.storage.len())
    }

    /// Faults the pages of `pos..pos + len` (relative) in, as [`warm_up`](Self::warm_up) does.
    pub fn warm_up_range(&self, pos: u64, len: u64) -> io::Result<()> {
        self.storage.warm_up(pos as usize, len as usize)
    }

    /// Writes the zeros of a new, empty segment out to disk (see [`Storage::write_zeros`]),
    /// checking `stop` between chunks. `Ok(false)` if stopped early. Refuses a segment that
    /// holds anything.
    pub fn write_zeros(&mut self, stop: &dyn Fn() -> bool) -> io::Result<bool> {
        if *self.readable.get_mut() != 0 || *self.claimed.get_mut() {
            return Err(io::Error::other("zero-filling a segment that is in use"));
        }
        // SAFETY: `&mut self` proves no reader slice or writer of this segment exists, and none
        // can appear during the call; the segment holds no published byte to destroy.
        unsafe { self.storage.write_zeros(stop) }
    }
}

/// The single writer of a segment. Writes go above the published position and become visible
/// to readers only at [`publish`](SegmentWriter::publish).
pub struct SegmentWriter<S: Storage> {
    segment: Arc<Segment<S>>,
    /// The segment's write buffer, for a buffered segment.
    buffer: Option<Arc<WriteBuffer>>,
    /// Bytes written or reserved, relative to the segment start; `>= segment.readable`.
    wrote: u64,
    /// End of the last [`Reservation`] handed out (relative): the writer's own writes and
    /// patches stay at or above it.
    reserved_to: u64,
}

/// Bytes of a segment its writer set aside for one append: the append fills them outside the
/// lock that orders the writer's calls, then [`publish`](Reservation::publish)es them once
/// everything before them is published. Several can be outstanding at once, each over its own
/// range; readers, the committer and flushes never see a range before it is published.
pub struct Reservation<S: Storage> {
    segment: Arc<Segment<S>>,
    /// The segment's write buffer, for a buffered segment: the bytes go there.
    buffer: Option<Arc<WriteBuffer>>,
    /// Relative to the segment start.
    pos: u64,
    len: u64,
}

impl<S: Storage> Reservation<S> {
    /// Absolute offset of the first reserved byte.
    pub fn start(&self) -> u64 {
        self.segment.start + self.pos
    }

    /// Absolute offset one past the last reserved byte.
    pub fn end(&self) -> u64 {
        self.start() + self.len
    }

    /// The reserved bytes, to be filled. They hold whatever was there before (zeros of a fresh
    /// file, an older life's bytes in a recycled file or a reused buffer).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let base = match &self.buffer {
            Some(buffer) => buffer.as_mut_ptr(),
            None => self.segment.storage.as_mut_ptr(),
        };
        // SAFETY: `pos..pos + len` lies within the segment, and within its buffer, which has the
        // segment's size (`reserve` checked it against the remaining space). It lay at or above
        // the writer's position when reserved, and the writer moved past it: the writer writes
        // and patches only at or above `reserved_to`, and publishes (raises `readable` to its
        // position) only once `readable` reached `reserved_to`. Readers, the committer and
        // flushes stay below `readable`, which only `publish` raises over this range, and that
        // consumes the reservation. No other reservation overlaps it, and `&mut self` makes the
        // slice the only access for as long as it lives. The storage (and the buffer) outlive
        // it: `self` holds both.
        unsafe { std::slice::from_raw_parts_mut(base.add(self.pos as usize), self.len as usize) }
    }

    /// Makes the reserved bytes visible to readers, if everything before them in the segment is
    /// published; else hands the reservation back unchanged. A caller that publishes
    /// reservations in the order they were made, each once its predecessor is published,
    /// never gets one back.
    pub fn publish(self) -> Result<(), Self> {
        // A load and a store, not a compare-and-swap (one locked instruction fewer per append):
        // only the reservation that starts at the published end may move it, and there is one
        // such reservation at a time, so no other store can come between the two.
        if self.segment.readable.load(Ordering::Acquire) != self.pos {
            return Err(self);
        }
        self.segment.readable.store(self.pos + self.len, Ordering::Release);
        Ok(())
    }
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
        self.write_at(self.wrote, data);
        self.wrote += data.len() as u64;
    }

    /// Sets `len` bytes aside at the write position, for one append to fill outside the
    /// writer's lock (see [`Reservation`]).
    ///
    /// # Panics
    /// If `len` exceeds the remaining space: callers check `remaining` first.
    pub fn reserve(&mut self, len: u64) -> Reservation<S> {
        assert!(len <= self.remaining(), "segment reservation past its end");
        let reservation = Reservation {
            segment: Arc::clone(&self.segment),
            buffer: self.buffer.clone(),
            pos: self.wrote,
            len,
        };
        self.wrote += len;
        self.reserved_to = self.wrote;
        reservation
    }

    /// Writes `data` at `pos` (relative), which must be at or above the published position and
    /// any reservation, and below the write position: lets the writer patch bytes it wrote but
    /// has not published.
    pub fn patch(&mut self, pos: u64, data: &[u8]) {
        assert!(
            pos >= self.segment.readable().max(self.reserved_to) && pos + data.len() as u64 <= self.wrote,
            "patch outside the unpublished range"
        );
        self.write_at(pos, data);
    }

    fn write_at(&mut self, pos: u64, data: &[u8]) {
        // SAFETY: callers keep `pos..pos + len` at or above the published position and every
        // reservation, and within the segment, so no reader slice covers it (of the file, nor
        // of the buffer), the committer does not reach it, no reservation overlaps it, and this
        // writer is the only one of the segment (`claim_writer` hands out at most one),
        // borrowed mutably here.
        unsafe {
            match &self.buffer {
                Some(buffer) => buffer.write(pos as usize, data),
                None => self.segment.storage.write(pos as usize, data),
            }
        }
    }

    /// Hints the CPU to take ownership of the cache lines of the next `len` bytes to be written,
    /// so that the next append's copy does not wait for each line to be read in from memory (a
    /// read-for-ownership per 64 bytes, which the lock release after the copy otherwise waits for
    /// in full). A hint only: no byte is read or written.
    pub fn prefetch_ahead(&self, len: usize) {
        let len = len.min(self.remaining() as usize);
        if len == 0 {
            return;
        }
        // SAFETY: `wrote..wrote + len` lies within the segment (bounded by `remaining`), above
        // the published position, where nobody but this writer (borrowed here) writes or reads;
        // the slices are only used for their addresses, never dereferenced.
        let bytes = unsafe {
            match &self.buffer {
                Some(buffer) => buffer.read(self.wrote as usize, len),
                None => self.segment.storage.read(self.wrote as usize, len),
            }
        };
        for line in bytes.chunks(64) {
            prefetch_for_write(line);
        }
    }

    /// Writes zeros just past the write position, into the file, and makes them durable: the
    /// end mark of a log closed cleanly. A fresh segment reads as zeros there anyway; a recycled
    /// one holds an older life's bytes, which a reader of the files (recovery, `verify`,
    /// RocketMQ) must not take for the log going on. Nothing is published.
    pub fn mark_end(&mut self) -> io::Result<()> {
        let len = (END_MARK_LEN as u64).min(self.remaining()) as usize;
        if len == 0 {
            return Ok(());
        }
        let segment = &self.segment;
        // The committer writes the file below the write position only; it is held off anyway.
        let _commit = segment.commit_lock.lock();
        // SAFETY: `wrote..wrote + len` lies within the segment, at or above the published and
        // committed positions, where no reader reads and only this writer (borrowed mutably)
        // and the committer (whose lock is held) write.
        unsafe { segment.storage.write(self.wrote as usize, &[0u8; END_MARK_LEN][..len]) };
        segment.storage.flush(self.wrote as usize, len)
    }

    /// Makes everything written visible to readers.
    ///
    /// # Panics
    /// If a reservation is not published yet: its bytes may still be being filled.
    pub fn publish(&mut self) {
        assert!(
            self.segment.readable() >= self.reserved_to,
            "publishing a segment over a reservation not yet published"
        );
        self.segment.readable.store(self.wrote, Ordering::Release);
    }
}

/// Hints the CPU to load the cache line of `bytes[0]` for writing (a no-op where the hardware
/// has no such hint).
#[inline]
fn prefetch_for_write(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and neither reads nor writes program-visible
    // memory; the address comes from a live slice in any case.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_ET0>(bytes.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Type-erased read access to a segment, so that messages handed to consumers need no generic
/// parameter.
pub trait SegmentRead: Send + Sync {
    /// Borrows committed bytes of the file, as [`Segment::read_committed`].
    fn read_bytes(&self, pos: u64, len: usize) -> Option<&[u8]>;
}

impl<S: Storage> SegmentRead for Segment<S> {
    fn read_bytes(&self, pos: u64, len: usize) -> Option<&[u8]> {
        self.read_committed(pos, len)
    }
}

/// A reader's own handle on a segment, shared by the messages of one read. Cloning it for each
/// message leaves the segment's reference count alone: every reader thread shares that one, and
/// bouncing its cache line between cores cost more than decoding the record.
pub struct Pinned<S: Storage>(pub Arc<Segment<S>>);

impl<S: Storage> SegmentRead for Pinned<S> {
    fn read_bytes(&self, pos: u64, len: usize) -> Option<&[u8]> {
        self.0.read_committed(pos, len)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::io::AsRawFd;
    use std::path::Path;

    use super::*;
    use crate::segment::{MmapBackend, SegmentQueue, SizeRule};

    const SIZE: u64 = 1 << 20;

    /// Where the first hole at or after 0 starts (the size when there is none). ext4 and XFS
    /// report unwritten extents as holes.
    fn first_hole(path: &Path) -> i64 {
        let file = std::fs::File::open(path).unwrap();
        // SAFETY: a system call on a descriptor `file` keeps open.
        unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_HOLE) }
    }

    fn prepared(dir: &Path) -> Segment<crate::segment::MmapStorage> {
        let queue = SegmentQueue::open(std::sync::Arc::new(MmapBackend), dir, SizeRule::Exactly(SIZE)).unwrap();
        queue.prepare(0, false).unwrap()
    }

    #[test]
    fn write_zeros_leaves_no_unwritten_range_and_honours_stop() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = prepared(dir.path());
        let path = segment.path().to_path_buf();
        let reserved_hole = first_hole(&path);
        // Asked to stop before the first chunk: nothing is written.
        assert!(!segment.write_zeros(&|| true).unwrap());
        assert_eq!(first_hole(&path), reserved_hole);
        assert!(segment.write_zeros(&|| false).unwrap());
        assert_eq!(first_hole(&path), SIZE as i64, "a zero-filled segment has no hole");
        assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));
    }

    #[test]
    fn write_zeros_refuses_a_segment_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let segment = std::sync::Arc::new(prepared(dir.path()));
        let mut writer = segment.claim_writer().unwrap();
        writer.write(b"record");
        writer.publish();
        drop(writer);
        let mut segment = std::sync::Arc::into_inner(segment).unwrap();
        assert!(segment.write_zeros(&|| false).is_err());
        assert_eq!(&segment.read(0, 6).unwrap()[..], b"record");
    }
}
