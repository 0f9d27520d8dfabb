//! The commit log: one append-only log of every topic's records, cut into segments.
//!
//! An append takes one lock only to reserve its bytes in the active segment and to assign the
//! store timestamp, queue offsets and physical offsets; it writes each record straight into the
//! reserved bytes outside the lock (one copy of the body, one CRC pass), and publishes them in
//! log order (`publish.rs`). A record (or batch) that does not fit the active segment's tail
//! leaves an end-of-segment filler there and goes whole into the next segment.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::allocate::Preallocator;
use crate::codec::{self, BLANK_LEN, DecodeError, Frame, RecordPlan, RecordView, Verify};
use crate::error::{Error, IoContext, Result};
use crate::flush::FlushTarget;
use crate::latency::{LatencyHistogram, LatencyRecorder};
use crate::segment::buffer::BufferPool;
use crate::segment::{Backend, SegmentQueue, SegmentWriter};
use crate::segment::{SegmentRef, SizeRule};

mod publish;
mod replica;

use publish::Sequence;

/// One record on its way into the log, and where it landed.
pub struct Appending<'a> {
    /// The record, written (with its offsets, timestamp and CRC) into the log by the append.
    pub record: RecordPlan<'a>,
    /// The queue's offset counter; read and advanced under the append lock.
    pub queue_counter: &'a AtomicU64,
    /// Assigned commit-log offset.
    pub commit_log_offset: u64,
    /// Assigned queue offset.
    pub queue_offset: u64,
    /// Assigned store timestamp (ms).
    pub store_timestamp: u64,
}

impl<'a> Appending<'a> {
    /// A record to append, taking its queue offset from `queue_counter`.
    pub fn new(record: RecordPlan<'a>, queue_counter: &'a AtomicU64) -> Self {
        Appending {
            record,
            queue_counter,
            commit_log_offset: 0,
            queue_offset: 0,
            store_timestamp: 0,
        }
    }
}

struct AppendState<S: crate::segment::Storage> {
    writer: Option<SegmentWriter<S>>,
    last_store_timestamp: u64,
    /// A slave's log takes replicated bytes only: producer appends are refused.
    slave_of: Option<std::net::SocketAddr>,
}

/// What sits at a commit-log offset.
pub enum Entry<'a> {
    /// A record (validated as asked).
    Record(RecordView<'a>),
    /// The end-of-segment filler; the next record is at `next`.
    Blank {
        /// Start of the next segment.
        next: u64,
    },
    /// Nothing readable here (the end of the log).
    End,
}

/// The commit log of a store.
pub struct CommitLog<B: Backend> {
    segments: Arc<SegmentQueue<B>>,
    allocator: Preallocator<B>,
    /// Write buffers, when appends go through them (the buffered flush policy).
    pool: Option<Arc<BufferPool>>,
    /// Everything below is in the files (committed from write buffers).
    committed: AtomicU64,
    state: Mutex<AppendState<B::Storage>>,
    /// One past the last published byte: the log is whole below it. Written by every append,
    /// read by the dispatcher's every step: on cache lines of its own, away from the append
    /// lock and the sequence.
    written: CachePadded<AtomicU64>,
    /// Reservations being filled, published in log order as they complete.
    sequence: Sequence<B::Storage>,
    /// One past the last byte known durable.
    flushed: AtomicU64,
    /// Store timestamp of the last appended record.
    last_timestamp: AtomicU64,
    /// A store timestamp at or below which every record is durable.
    flushed_timestamp: AtomicU64,
    closed: AtomicBool,
    /// A flush failed: after a failed fsync the kernel may have dropped the dirty pages, so
    /// nothing written since can be trusted to reach the disk.
    flush_failed: AtomicBool,
    /// How long each sync of a range of the log took.
    sync_latency: LatencyRecorder,
    /// An append was published unfilled (its filling code panicked): recovery will skip its
    /// bytes, so the log takes no more appends.
    abandoned: AtomicBool,
}

/// A sync slower than this is logged: the disk, not the store, is then what puts wait on.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(500);

/// The directory, beside `commitlog/`, of retired segments waiting for reuse.
pub const RECYCLED_DIR: &str = "recycled";

/// How the log provisions its segments.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogOptions {
    /// Fault each new segment's pages in ahead of the writer.
    pub warm_up: bool,
    /// Write each new segment's zeros to disk before it is used.
    pub zero_fill: bool,
    /// Up to this many segments retention takes out wait for reuse in [`RECYCLED_DIR`].
    pub recycle: usize,
    /// A new segment is refused with [`Error::DiskFull`] when the file system would be left
    /// with less than this many bytes available (0: no check).
    pub reserved_space: u64,
}

/// A segment retention took out of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retired {
    /// Where it started.
    pub start: u64,
    /// Its size.
    pub bytes: u64,
    /// Whether its file went to the recycle bin (else it was removed).
    pub recycled: bool,
}

impl<B: Backend> CommitLog<B> {
    /// Loads the segments of `dir`. Every segment is fully readable until [`set_end`] is called
    /// by recovery. See [`LogOptions`] for the rest.
    ///
    /// [`set_end`]: CommitLog::set_end
    pub fn open(
        backend: Arc<B>,
        dir: &Path,
        size: SizeRule,
        options: LogOptions,
        pool: Option<Arc<BufferPool>>,
    ) -> Result<Self> {
        let LogOptions {
            warm_up,
            zero_fill,
            recycle,
            reserved_space,
        } = options;
        let segments = Arc::new(SegmentQueue::open(backend, dir, size)?);
        let end = segments.max_offset();
        // With write buffers, appends never touch the file's pages: warming them is wasted work.
        let warm_up = warm_up && pool.is_none();
        let bin = dir.with_file_name(RECYCLED_DIR);
        let allocator = Preallocator::start(Arc::clone(&segments), warm_up, zero_fill, &bin, recycle, reserved_space)?;
        Ok(CommitLog {
            segments,
            allocator,
            pool,
            committed: AtomicU64::new(end),
            state: Mutex::new(AppendState {
                writer: None,
                last_store_timestamp: 0,
                slave_of: None,
            }),
            written: CachePadded::new(AtomicU64::new(end)),
            sequence: Sequence::new(end),
            flushed: AtomicU64::new(0),
            last_timestamp: AtomicU64::new(0),
            flushed_timestamp: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            flush_failed: AtomicBool::new(false),
            sync_latency: LatencyRecorder::default(),
            abandoned: AtomicBool::new(false),
        })
    }

    /// The segments.
    pub fn segments(&self) -> &SegmentQueue<B> {
        &self.segments
    }

    /// Segment size.
    pub fn segment_size(&self) -> u64 {
        self.segments.segment_size()
    }

    /// Smallest offset held.
    pub fn min_offset(&self) -> u64 {
        self.segments.min_offset().unwrap_or(0)
    }

    /// One past the last published byte.
    pub fn max_offset(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Sets the end of the log after recovery: everything at or above `end` is cut (zeroed when
    /// `zero`, so stale bytes can never be taken for records). `durable_below`: what recovery
    /// knows to be on stable storage already; the next flush syncs from there. Returns the paths
    /// of segments that lay wholly past the end, removed from the log but left on disk for the
    /// caller.
    pub fn set_end(
        &self,
        end: u64,
        zero: bool,
        last_store_timestamp: u64,
        durable_below: u64,
    ) -> Result<Vec<std::path::PathBuf>> {
        let mut state = self.state.lock();
        self.drain(&state);
        state.writer = None;
        let removed = self.segments.truncate(end, zero)?;
        self.written.store(end, Ordering::Release);
        self.sequence.reset(end);
        // Lowered too: write buffers attached to segments created after the cut commit from here.
        self.committed.store(end, Ordering::Release);
        self.flushed.store(durable_below.min(end), Ordering::Release);
        state.last_store_timestamp = last_store_timestamp;
        self.last_timestamp.store(last_store_timestamp, Ordering::Release);
        self.flushed_timestamp.store(last_store_timestamp, Ordering::Release);
        Ok(removed)
    }

    /// Starts preparing, in the background, the segment appends will need next: the one after the
    /// last (or, for an empty log, the first), so that no put waits for a segment to be created
    /// (and zero-filled, if so configured). Called once recovery has set the end.
    pub fn prepare_ahead(&self) {
        let next = match self.segments.last() {
            Some(last) => last.end(),
            None => {
                let end = self.written.load(Ordering::Acquire);
                end - end % self.segment_size()
            }
        };
        self.allocator.request(next);
    }

    /// Waits until the allocation thread has prepared (and warmed) every segment asked of it.
    pub fn wait_prepared(&self, timeout: std::time::Duration) -> bool {
        self.allocator.wait_idle(timeout)
    }

    /// Stops appends: later ones fail with [`Error::Closed`].
    pub fn close(&self) {
        self.stop(true);
    }

    /// Stops appends as a crash would: a segment prepared ahead of need stays on disk.
    pub fn halt(&self) {
        self.stop(false);
    }

    fn stop(&self, discard_prepared: bool) {
        let mut state = self.state.lock();
        self.closed.store(true, Ordering::Release);
        // A clean close lets the appends in progress finish; a crash (simulated) does not wait.
        if discard_prepared {
            self.drain(&state);
        }
        if discard_prepared && let Some(w) = state.writer.as_mut() {
            // A clean close: zeros after the last record say where the log ends, even in a
            // recycled segment whose older records lie past it.
            if let Err(e) = w.mark_end() {
                tracing::warn!(error = %e, "could not write the end mark of the log");
            }
        }
        state.writer = None;
        self.allocator.stop(discard_prepared);
    }

    /// When the first segment was last written: the store time of the record that follows it,
    /// the first of the next segment (the roll-over that sealed it wrote its filler at that
    /// moment). `None` when there is no next segment or it holds no record yet.
    pub fn first_segment_sealed_at(&self) -> Option<(SegmentRef<B>, u64)> {
        let segments = self.segments.snapshot();
        let (first, next) = (segments.first()?, segments.get(1)?);
        let bytes = next.read_from(0)?;
        match codec::decode(&bytes, Verify::Framing) {
            Ok(Frame::Record(view)) if view.physical_offset == next.start() => {
                Some((Arc::clone(first), view.store_timestamp.max(0) as u64))
            }
            _ => None,
        }
    }

    /// Takes the first segment out of the log (never the last one): its file goes to the
    /// recycle bin when nobody holds the segment and the bin has room, else it is removed.
    /// Readers that hold it keep reading it: its mapping lives until the last one drops it.
    pub fn retire_first(&self, start: u64) -> Result<Option<Retired>> {
        let Some(segment) = self
            .segments
            .pop_first_if(|first, len| first.start() == start && len > 1)
        else {
            return Ok(None);
        };
        let (bytes, path) = (segment.size(), segment.path().to_path_buf());
        let kept = match Arc::try_unwrap(segment) {
            // Handed back: the bin is full.
            Ok(segment) => self.allocator.recycle(segment)?.is_none(),
            Err(_held) => false,
        };
        if !kept {
            self.segments.backend().remove(&path).at(&path)?;
        }
        tracing::info!(start, bytes, recycled = kept, "commit-log segment retired");
        Ok(Some(Retired {
            start,
            bytes,
            recycled: kept,
        }))
    }

    /// Segments waiting in the recycle bin now, and segments reused since open.
    pub fn recycled(&self) -> (usize, u64) {
        self.allocator.recycled()
    }

    /// Appends `batch` contiguously in one segment. Either all records are appended or none.
    /// `now`: the wall clock in milliseconds, read by the caller (one reading serves a put's
    /// born and store timestamps). Returns the end offset of the last record, whole in the log
    /// but not necessarily published yet (see [`wait_published`](Self::wait_published)).
    pub fn append(&self, batch: &mut [Appending<'_>], now: u64) -> Result<u64> {
        let total: u64 = batch.iter().map(|a| a.record.len() as u64).sum();
        let segment_size = self.segments.segment_size();
        if total + BLANK_LEN as u64 > segment_size {
            return Err(Error::RecordExceedsSegment {
                size: total as usize,
                segment_size,
            });
        }
        let mut state = self.state.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if let Some(master) = state.slave_of {
            return Err(Error::RoleIsSlave { master });
        }
        self.ensure_room(&mut state, total)?;
        // Under the lock, so that store timestamps never decrease along the log.
        let timestamp = now.max(state.last_store_timestamp);
        state.last_store_timestamp = timestamp;
        let writer = state.writer.as_mut().expect("ensure_room sets the writer");
        let mut physical = writer.position();
        for a in batch.iter_mut() {
            let queue_offset = a.queue_counter.load(Ordering::Relaxed);
            a.queue_counter.store(queue_offset + 1, Ordering::Relaxed);
            a.commit_log_offset = physical;
            a.queue_offset = queue_offset;
            a.store_timestamp = timestamp;
            physical += a.record.len() as u64;
        }
        let mut filling = self.enter(writer.reserve(total));
        // The next append most likely has the size of this one.
        writer.prefetch_ahead(total as usize);
        drop(state);
        // Tests hold a producer here, its space reserved and not written, to crash the store
        // while the producers after it wait.
        fail::fail_point!("commit-log-fill");

        let bytes = filling.bytes_mut();
        let mut at = 0usize;
        for a in batch.iter() {
            let len = a.record.len();
            a.record
                .write(&mut bytes[at..at + len], a.queue_offset, a.commit_log_offset, timestamp);
            at += len;
        }
        fail::fail_point!("commit-log-filled");
        filling.finish(Some(timestamp));
        Ok(physical)
    }

    /// Waits until every reservation made so far is published. Called under the append lock,
    /// which keeps new ones from being made; the producers filling the others need no lock.
    fn drain(&self, _state: &AppendState<B::Storage>) {
        self.wait_published(self.sequence.reserved());
    }

    /// End of the last append made, whether or not everything before it is published yet.
    pub fn reserved_offset(&self) -> u64 {
        self.sequence.reserved().max(self.max_offset())
    }

    /// Makes sure the active writer has room for `len` bytes plus the filler slack, rolling to a
    /// new segment (after writing the filler) when not.
    fn ensure_room(&self, state: &mut AppendState<B::Storage>, len: u64) -> Result<()> {
        let need = len + BLANK_LEN as u64;
        if state.writer.as_ref().is_some_and(|w| w.remaining() >= need) {
            return Ok(());
        }
        // Find or resume the active segment.
        let next_start = match state.writer.take() {
            Some(mut w) => {
                self.seal_segment(&mut w);
                w.segment().end()
            }
            None => match self.segments.last() {
                Some(last) if !last.is_full() => {
                    let mut w = last
                        .claim_writer()
                        .ok_or_else(|| Error::layout(last.path(), "active segment already has a writer"))?;
                    if w.remaining() >= need {
                        state.writer = Some(w);
                        self.allocator.request(last.end());
                        return Ok(());
                    }
                    self.seal_segment(&mut w);
                    last.end()
                }
                Some(last) => last.end(),
                None => {
                    let end = self.written.load(Ordering::Acquire);
                    end - end % self.segment_size()
                }
            },
        };
        let mut prepared = match self.allocator.take(next_start) {
            Some(Ok(prepared)) => prepared,
            // Nothing prepared, or preparing failed (disk full?): try once more here, so the
            // error the caller sees is this attempt's. No warm-up: the writer is waiting.
            Some(Err(_)) | None => self.allocator.prepare_now(next_start)?,
        };
        if let Some(pool) = &self.pool {
            let attached = match (pool.take(), Arc::get_mut(&mut prepared)) {
                (Some(buffer), Some(segment)) => segment.attach_buffer(buffer).map_err(|b| pool.give_back(b)).is_ok(),
                (Some(buffer), None) => {
                    pool.give_back(buffer);
                    false
                }
                (None, _) => false,
            };
            if !attached {
                tracing::warn!(
                    start = next_start,
                    "no write buffer free: this segment is written directly"
                );
            }
        }
        let segment = self.segments.install(prepared)?;
        tracing::debug!(start = segment.start(), "commit log rolled to a new segment");
        self.allocator.request(segment.end());
        let w = segment
            .claim_writer()
            .ok_or_else(|| Error::layout(segment.path(), "new segment already has a writer"))?;
        state.writer = Some(w);
        Ok(())
    }

    /// Writes the end-of-segment filler over the writer's tail; it is published once the records
    /// before it are.
    fn seal_segment(&self, w: &mut SegmentWriter<B::Storage>) {
        let remaining = w.remaining();
        let mut filling = self.enter(w.reserve(remaining));
        let buffered = w.segment().is_buffered();
        let bytes = filling.bytes_mut();
        if remaining >= BLANK_LEN as u64 {
            bytes[..BLANK_LEN].copy_from_slice(&codec::encode_blank(remaining as u32));
        }
        // A reused write buffer still holds an older segment's bytes past the filler: zeroed, so
        // the file's tail stays zeros as in a segment written directly.
        if buffered {
            let from = BLANK_LEN.min(bytes.len());
            bytes[from..].fill(0);
        }
        filling.finish(None);
    }

    /// How long the syncs of the log took, since open.
    pub fn sync_latency(&self) -> LatencyHistogram {
        self.sync_latency.snapshot()
    }

    /// Commit-log segment files created since open (not counting those reused from the
    /// recycle bin).
    pub fn segments_created(&self) -> u64 {
        self.allocator.created()
    }

    /// Why the log takes no more writes, if it does not: a failed flush, or an append abandoned
    /// half-written.
    pub fn refusal(&self) -> Option<&'static str> {
        if self.abandoned.load(Ordering::Acquire) {
            Some("an append was abandoned half-written")
        } else if self.flush_failed() {
            Some("a commit-log flush failed")
        } else {
            None
        }
    }

    /// Whether a flush has failed (the store must stop accepting writes).
    pub fn flush_failed(&self) -> bool {
        self.flush_failed.load(Ordering::Acquire)
    }

    /// Store timestamp of the last appended record.
    pub fn last_timestamp(&self) -> u64 {
        self.last_timestamp.load(Ordering::Acquire)
    }

    /// A store timestamp at or below which every record is durable (for the checkpoint).
    pub fn flushed_timestamp(&self) -> u64 {
        self.flushed_timestamp.load(Ordering::Acquire)
    }

    /// Finds the first valid record (full check as `verify` says, and its physical-offset field
    /// equal to its position) strictly after `from` in the segment holding `from`: the way past
    /// a damaged record. `None` if the rest of the segment holds none.
    pub fn next_valid_record(&self, from: u64, verify: Verify) -> Option<u64> {
        let segment = self.segments.find(from)?;
        let bytes = segment.read_from(0)?;
        let bytes: &[u8] = &bytes;
        crate::layout::scan::next_valid_record(bytes, segment.start(), (from - segment.start()) as usize, verify)
    }

    /// The segment holding `offset`.
    pub fn segment_at(&self, offset: u64) -> Option<SegmentRef<B>> {
        self.segments.find(offset)
    }

    /// Decodes what sits at the start of `bytes`: the published bytes of a segment ending at
    /// `segment_end`, from some offset on (`None` or empty: the end of what is published).
    pub fn entry_in(bytes: Option<&[u8]>, segment_end: u64, verify: Verify) -> Result<Entry<'_>, DecodeError> {
        let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
            return Ok(Entry::End);
        };
        match codec::decode(bytes, verify)? {
            Frame::Record(view) => Ok(Entry::Record(view)),
            Frame::Blank { .. } => Ok(Entry::Blank { next: segment_end }),
        }
    }
}

impl<B: Backend> FlushTarget for CommitLog<B> {
    fn written_offset(&self) -> u64 {
        self.max_offset()
    }

    fn flushed_offset(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    fn commit(&self) -> u64 {
        if self.pool.is_none() {
            return self.max_offset();
        }
        let mut at = self.committed.load(Ordering::Acquire);
        let mut reached = at;
        while let Some(segment) = self.segments.find(at) {
            let (committed, detached) = match segment.commit() {
                Ok(done) => done,
                Err(e) => {
                    // As a failed flush: what was acknowledged may never reach the file.
                    tracing::error!(error = %e, "committing write buffers failed; the store stops accepting writes");
                    self.flush_failed.store(true, Ordering::Release);
                    break;
                }
            };
            if let (Some(buffer), Some(pool)) = (detached, &self.pool) {
                pool.give_back(buffer);
            }
            reached = segment.start() + committed;
            if committed < segment.size() {
                break;
            }
            at = segment.end();
        }
        self.committed.fetch_max(reached, Ordering::AcqRel).max(reached)
    }

    fn flush(&self, least_pages: u64) -> io::Result<u64> {
        // Read before the data it stands for: the records up to this stamp are all published
        // by now, so they are covered by what is flushed below if everything written is.
        let stamp = self.last_timestamp.load(Ordering::Acquire);
        let written = self.max_offset();
        // Write buffers first: only what is in the files can be synced.
        self.commit();
        // Retention may have taken segments that were never flushed: start at the first left.
        let mut at = self.flushed.load(Ordering::Acquire).max(self.min_offset());
        let mut durable = at;
        // Up to what was written when the call began: under a writer faster than the disk, a
        // flush that chased the end would never return.
        while at < written
            && let Some(segment) = self.segments.find(at)
        {
            let before = segment.flushed();
            let started = std::time::Instant::now();
            let f = segment.flush(least_pages).inspect_err(|_| {
                self.flush_failed.store(true, Ordering::Release);
            })?;
            if f > before {
                let took = started.elapsed();
                self.sync_latency.record(took);
                if took >= SLOW_SYNC {
                    tracing::warn!(
                        segment = segment.start(),
                        bytes = f - before,
                        ms = took.as_millis() as u64,
                        "slow sync of the commit log"
                    );
                }
            }
            durable = segment.start() + f;
            // Published segment by segment: retention and the checkpoint wait for it.
            self.flushed.fetch_max(durable, Ordering::AcqRel);
            if f < segment.size() {
                break;
            }
            at = segment.end();
        }
        if durable >= written {
            self.flushed_timestamp.fetch_max(stamp, Ordering::AcqRel);
        }
        Ok(self.flushed.fetch_max(durable, Ordering::AcqRel).max(durable))
    }
}
