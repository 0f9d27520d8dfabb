//! Consume queues: per (topic, queue id), fixed 20-byte units pointing into the commit log, so
//! that queue offset N is found in O(1); and the table of all queues.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

pub mod registry;

use crate::error::{Error, IoContext, Result};
use crate::message::validate_topic;
use crate::segment::{Backend, SegmentQueue, SegmentRef, SegmentWriter, SizeRule};

/// Bytes per unit: commit-log offset (i64), size (i32), tag hash (i64), big-endian.
pub const UNIT_SIZE: u64 = 20;

/// One consume-queue unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqUnit {
    /// Where the record starts in the commit log.
    pub commit_log_offset: u64,
    /// The record's total size.
    pub size: u32,
    /// Java hash of the tag (0 = no tag).
    pub tags_code: i64,
}

impl CqUnit {
    /// RocketMQ's filler for units of a queue that starts past offset 0 (`fillPreBlank`).
    pub const BLANK: CqUnit = CqUnit {
        commit_log_offset: 0,
        size: i32::MAX as u32,
        tags_code: 0,
    };

    /// The on-disk bytes.
    pub fn encode(&self) -> [u8; UNIT_SIZE as usize] {
        let mut b = [0u8; UNIT_SIZE as usize];
        b[0..8].copy_from_slice(&self.commit_log_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..20].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }

    /// Parses a unit; `None` for an unwritten or invalid one (offset < 0 or size <= 0, as
    /// RocketMQ's recovery judges it).
    pub fn decode(b: &[u8]) -> Option<CqUnit> {
        let b: &[u8; 20] = b.get(..20)?.try_into().ok()?;
        let offset = i64::from_be_bytes(b[0..8].try_into().ok()?);
        let size = i32::from_be_bytes(b[8..12].try_into().ok()?);
        let tags_code = i64::from_be_bytes(b[12..20].try_into().ok()?);
        if offset < 0 || size <= 0 {
            return None;
        }
        Some(CqUnit {
            commit_log_offset: offset as u64,
            size: size as u32,
            tags_code,
        })
    }

    /// Whether this is a filler unit.
    pub fn is_blank(&self) -> bool {
        *self == Self::BLANK
    }

    /// One past the record's last byte.
    pub fn end(&self) -> u64 {
        self.commit_log_offset + self.size as u64
    }
}

/// See [`ConsumeQueue::hole`].
type Hole = (u64, u64);

/// The units of one (topic, queue id).
pub struct ConsumeQueue<B: Backend> {
    topic: String,
    queue_id: u32,
    segments: SegmentQueue<B>,
    writer: Mutex<Option<SegmentWriter<B::Storage>>>,
    /// Next queue offset to hand to a put. Only the commit log's append lock changes it (and
    /// recovery). On cache lines of its own: a producer writes it on every put, the dispatcher
    /// writes the fields around it on every unit.
    assigned: CachePadded<AtomicU64>,
    /// What the dispatcher last saw of `assigned` (see [`put`](Self::put)); only it writes this.
    assigned_seen: AtomicU64,
    /// One past the last unit written (dispatched).
    max_offset: AtomicU64,
    /// First offset a reader may ask for.
    min_offset: AtomicU64,
    /// Durable up to this queue offset.
    flushed: AtomicU64,
    /// See [`ConsumeQueue::hole`].
    hole: Mutex<Option<(u64, u64)>>,
    /// See [`ConsumeQueue::gap_filled`].
    gap_filled: AtomicBool,
    /// See [`ConsumeQueue::started_late`].
    started_late: AtomicBool,
    /// See [`ConsumeQueue::confirmed`].
    confirmed: AtomicU64,
    /// See [`ConsumeQueue::rebuilding`].
    rebuilding: AtomicBool,
}

/// What [`ConsumeQueue::put`] did with a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitPut {
    /// Appended (after blank units, if there was a gap).
    Written,
    /// The queue already held this very unit.
    Present,
    /// The queue holds something else at that offset: this unit, or nothing readable.
    Differs(Option<CqUnit>),
}

impl<B: Backend> ConsumeQueue<B> {
    fn open(backend: Arc<B>, dir: PathBuf, topic: String, queue_id: u32, size: SizeRule) -> Result<Self> {
        let segments = SegmentQueue::open(backend, &dir, size)?;
        if segments.segment_size() % UNIT_SIZE != 0 {
            return Err(Error::layout(
                &dir,
                format!(
                    "consume-queue file size {} is not a multiple of 20",
                    segments.segment_size()
                ),
            ));
        }
        let cq = ConsumeQueue {
            topic,
            queue_id,
            segments,
            writer: Mutex::new(None),
            assigned: CachePadded::new(AtomicU64::new(0)),
            assigned_seen: AtomicU64::new(0),
            max_offset: AtomicU64::new(0),
            min_offset: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            hole: Mutex::new(None),
            gap_filled: AtomicBool::new(false),
            started_late: AtomicBool::new(false),
            confirmed: AtomicU64::new(0),
            rebuilding: AtomicBool::new(false),
        };
        cq.recover_end()?;
        Ok(cq)
    }

    /// Finds the end of the written units in the last segment (the first invalid unit) and the
    /// queue's minimum, after loading.
    fn recover_end(&self) -> Result<()> {
        let Some((start, end, hole)) = self.scan_last() else {
            return Ok(());
        };
        if let Some(hole) = hole {
            self.note_hole(hole);
        }
        self.segments.truncate(start + end, false)?;
        let max = (start + end) / UNIT_SIZE;
        self.max_offset.store(max, Ordering::Release);
        self.assigned.store(max, Ordering::Release);
        self.assigned_seen.store(max, Ordering::Relaxed);
        self.flushed.store(max, Ordering::Release);
        self.min_offset.store(self.first_unit_held(), Ordering::Release);
        Ok(())
    }

    /// The first unit held that is not a blank filler.
    fn first_unit_held(&self) -> u64 {
        let max = self.max_offset();
        let mut min = self.first_held();
        while min < max && self.unit(min).is_some_and(|u| u.is_blank()) {
            min += 1;
        }
        min
    }

    /// Finds the minimum again from the files, then past what the log lost: after units were
    /// repaired (a damaged first unit made the minimum pass records still in the log).
    pub fn recompute_min_offset(&self, log_min: u64) {
        self.min_offset.store(self.first_unit_held(), Ordering::Release);
        self.correct_min_offset(log_min);
    }

    /// Reads the last file's units: (its start, the byte after its last valid unit, the hole).
    fn scan_last(&self) -> Option<(u64, u64, Option<Hole>)> {
        // The end is after the last valid unit of the last file. An invalid unit before it is a
        // hole (a lost page): remembered, so that recovery rebuilds the queue from the log.
        self.segments.last().map(|last| {
            let bytes = last.read_from(0);
            let bytes = bytes.as_deref().unwrap_or(&[]);
            let mut end = 0u64;
            let mut first_invalid = None;
            let mut hole = None;
            let mut last_before_hole = 0u64;
            for (i, chunk) in bytes.chunks_exact(UNIT_SIZE as usize).enumerate() {
                let pos = i as u64 * UNIT_SIZE;
                match CqUnit::decode(chunk) {
                    Some(u) => {
                        if let Some(at) = first_invalid.take() {
                            hole.get_or_insert((last.start() + at) / UNIT_SIZE);
                        }
                        if !u.is_blank() && hole.is_none() {
                            last_before_hole = u.commit_log_offset;
                        }
                        end = pos + UNIT_SIZE;
                    }
                    None => {
                        first_invalid.get_or_insert(pos);
                    }
                }
            }
            (last.start(), end, hole.map(|h| (h, last_before_hole)))
        })
    }

    /// Keeps the hole to rebuild from the earlier of `hole` and the one already known. A hole
    /// that truncation dropped stays: its record may still have to be dispatched again.
    fn note_hole(&self, hole: Hole) {
        let mut known = self.hole.lock();
        if known.is_none_or(|(_, resume)| hole.1 < resume) {
            tracing::warn!(topic = %self.topic, queue_id = self.queue_id, hole = hole.0, "consume queue has a hole: it will be rebuilt from the log");
            *known = Some(hole);
        }
    }

    /// The earliest hole found in the queue's last file, when loaded or after recovery truncated
    /// it: (queue offset of the first missing unit, commit-log offset of the last unit before
    /// it). Recovery rebuilds the queue from there.
    pub fn hole(&self) -> Option<(u64, u64)> {
        *self.hole.lock()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queue id.
    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }

    /// The counter puts take their queue offset from (under the commit log's append lock).
    pub fn assign_counter(&self) -> &AtomicU64 {
        &self.assigned
    }

    /// One past the last dispatched unit.
    pub fn max_offset(&self) -> u64 {
        self.max_offset.load(Ordering::Acquire)
    }

    /// Smallest offset readable.
    pub fn min_offset(&self) -> u64 {
        self.min_offset.load(Ordering::Acquire)
    }

    /// Next queue offset a put will get (the max offset plus what is appended but not yet
    /// dispatched).
    pub fn assigned(&self) -> u64 {
        self.assigned.load(Ordering::Acquire)
    }

    /// Files the queue holds.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Units per segment file.
    pub fn units_per_segment(&self) -> u64 {
        self.segments.segment_size() / UNIT_SIZE
    }

    /// The unit at `offset`, if written and still held.
    pub fn unit(&self, offset: u64) -> Option<CqUnit> {
        self.unit_cached(offset, &mut None)
    }

    /// As [`unit`](Self::unit), keeping the segment looked up in `cache` for the next call: a
    /// scan over consecutive units finds each segment once.
    #[inline]
    pub fn unit_cached(&self, offset: u64, cache: &mut Option<SegmentRef<B>>) -> Option<CqUnit> {
        let byte = offset.checked_mul(UNIT_SIZE)?;
        if !cache.as_ref().is_some_and(|s| s.start() <= byte && byte < s.end()) {
            *cache = Some(self.segments.find(byte)?);
        }
        let seg = cache.as_ref()?;
        let bytes = seg.read(byte - seg.start(), UNIT_SIZE as usize)?;
        CqUnit::decode(&bytes)
    }

    /// Appends the unit for the record with queue offset `queue_offset`. Idempotent: a unit
    /// below what the queue already holds is not written again, so recovery can re-dispatch
    /// freely; one that differs is handed back ([`UnitPut::Differs`]) for the caller to judge
    /// against the log. A gap (units lost, for example with a deleted file) is filled with blank
    /// units so that offsets stay positional, and remembered ([`gap_filled`](Self::gap_filled)).
    pub fn put(&self, queue_offset: u64, unit: CqUnit, warm_up: bool) -> Result<UnitPut> {
        let mut writer = self.writer.lock();
        self.confirmed.store(queue_offset + 1, Ordering::Relaxed);
        let max = self.max_offset();
        if queue_offset < max {
            return Ok(match self.unit(queue_offset) {
                Some(held) if held == unit => UnitPut::Present,
                // Below the files held (retention, or a lost first file): nothing to compare.
                None if queue_offset < self.first_held() => UnitPut::Present,
                held => UnitPut::Differs(held),
            });
        }
        if queue_offset > max {
            tracing::warn!(
                topic = %self.topic, queue_id = self.queue_id, expected = max, got = queue_offset,
                "consume queue gap: filling with blank units"
            );
            if max > 0 || !self.segments.is_empty() {
                self.gap_filled.store(true, Ordering::Release);
            }
        }
        let mut next = max;
        // Checked in this order so the common case (a queue with units) takes no lock here.
        if max == 0 && queue_offset > 0 && self.segments.is_empty() {
            // A queue whose first file is created past 0: start at the file holding the offset.
            let per = self.units_per_segment();
            next = queue_offset - queue_offset % per;
            self.min_offset.store(queue_offset, Ordering::Release);
            self.started_late.store(true, Ordering::Release);
        }
        while next <= queue_offset {
            let w = self.writable(&mut writer, next, warm_up)?;
            let u = if next == queue_offset { unit } else { CqUnit::BLANK };
            w.write(&u.encode());
            w.publish();
            next += 1;
        }
        self.max_offset.store(next, Ordering::Release);
        // Keeps the put counter at least at the end, for records no put numbered (recovery,
        // replication). Looked at only once the dispatch passes what it saw there last: puts
        // numbered everything below, and a read of the counter on every unit would pull its line
        // from the producer's core each time.
        if next > self.assigned_seen.load(Ordering::Relaxed) {
            let assigned = self.assigned();
            if assigned < next {
                self.assigned.fetch_max(next, Ordering::AcqRel);
            }
            self.assigned_seen.store(assigned.max(next), Ordering::Relaxed);
        }
        Ok(UnitPut::Written)
    }

    /// Whether recovery is rebuilding this queue from the whole log (it takes records from
    /// below the point where the other queues' dispatch starts).
    pub fn rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::Acquire)
    }

    /// Marks the queue as being rebuilt, or done.
    pub fn set_rebuilding(&self, on: bool) {
        self.rebuilding.store(on, Ordering::Release);
    }

    /// The first unit the queue's files hold (0 for a queue without files).
    pub fn first_held(&self) -> u64 {
        self.segments.min_offset().unwrap_or(0) / UNIT_SIZE
    }

    /// Units durable (flushed).
    pub fn flushed_units(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    /// Whether a put found units missing before its own (a gap filled with blank units) in a
    /// queue that already held units: their records may still be in the log.
    pub fn gap_filled(&self) -> bool {
        self.gap_filled.load(Ordering::Acquire)
    }

    /// One past the queue offset of the last record dispatched since open, in log order (0:
    /// none). The later record wins: a damaged offset field far ahead of the queue's records
    /// that follow it does not count.
    pub fn confirmed(&self) -> u64 {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// Drops the units past [`confirmed`](Self::confirmed) that cannot belong to a record: after
    /// recovery dispatched every record from `from` to the log's end, no record of the queue
    /// claims an offset past its last one (queue offsets grow along the log), so a unit
    /// past it is garbage (a file's damaged tail, or blanks a read's repair left for such
    /// garbage) unless `damaged` says it points at bytes of the range that are not a valid
    /// record, past the queue's last record: a record the dispatch passed over as damaged,
    /// which readers are told about.
    pub fn drop_unconfirmed_tail(&self, from: u64, damaged: impl Fn(&CqUnit) -> bool) -> Result<()> {
        let confirmed = self.confirmed();
        if confirmed == 0 {
            return Ok(());
        }
        // A damaged record before the queue's last one cannot hold a later queue offset.
        let after = self
            .unit(confirmed - 1)
            .filter(|u| !u.is_blank())
            .map_or(from, |u| u.end().max(from));
        let mut keep = self.max_offset();
        while keep > confirmed.max(self.first_held()) {
            match self.unit(keep - 1) {
                Some(u) if !u.is_blank() && u.commit_log_offset >= after && damaged(&u) => break,
                _ => keep -= 1,
            }
        }
        self.truncate_units(keep)
    }

    /// Whether the queue had no file when a put past queue offset 0 created its first one: its
    /// earlier records may still be in the log (its files lost, and no registry to tell).
    pub fn started_late(&self) -> bool {
        self.started_late.load(Ordering::Acquire)
    }

    /// Writes `units` over the units held from queue offset `first` on (a repair from the log),
    /// durably. Units outside what the queue holds are left alone. Readers may go on reading:
    /// a file they hold is replaced by a repaired copy rather than written under them.
    pub fn rewrite_units(&self, first: u64, units: &[CqUnit]) -> Result<()> {
        let mut writer = self.writer.lock();
        // The writer holds the last file; the next put claims it again, at its end.
        *writer = None;
        let per = self.units_per_segment();
        let held_from = self.first_held();
        let max = self.max_offset();
        let mut at = first.max(held_from);
        let end = (first + units.len() as u64).min(max);
        while at < end {
            let stop = (at - at % per + per).min(end);
            let bytes: Vec<u8> = units[(at - first) as usize..(stop - first) as usize]
                .iter()
                .flat_map(|u| u.encode())
                .collect();
            self.segments.rewrite(at * UNIT_SIZE, &bytes)?;
            at = stop;
        }
        if end > first.max(held_from) {
            tracing::warn!(
                topic = %self.topic, queue_id = self.queue_id, first, units = units.len(),
                "consume-queue units repaired from the commit log"
            );
        }
        Ok(())
    }

    /// Drops every unit and file of the queue, so that a dispatch from the start of the log
    /// rebuilds it (its files were lost, or damaged beyond a local repair).
    pub fn clear(&self) -> Result<()> {
        let mut writer = self.writer.lock();
        *writer = None;
        self.segments.remove_all()?;
        self.max_offset.store(0, Ordering::Release);
        self.assigned.store(0, Ordering::Release);
        self.assigned_seen.store(0, Ordering::Relaxed);
        self.flushed.store(0, Ordering::Release);
        self.min_offset.store(0, Ordering::Release);
        *self.hole.lock() = None;
        self.gap_filled.store(false, Ordering::Release);
        self.started_late.store(false, Ordering::Release);
        self.confirmed.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn writable<'w>(
        &self,
        writer: &'w mut Option<SegmentWriter<B::Storage>>,
        offset: u64,
        warm_up: bool,
    ) -> Result<&'w mut SegmentWriter<B::Storage>> {
        let byte = offset * UNIT_SIZE;
        let usable = writer
            .as_ref()
            .is_some_and(|w| w.position() == byte && w.remaining() >= UNIT_SIZE);
        if !usable {
            *writer = None;
            let seg = match self.segments.find(byte) {
                Some(seg) => seg,
                None => self
                    .segments
                    .create(byte - byte % self.segments.segment_size(), warm_up)?,
            };
            let w = seg
                .claim_writer()
                .ok_or_else(|| Error::layout(seg.path(), "consume-queue segment already has a writer"))?;
            if w.position() != byte {
                return Err(Error::CorruptConsumeQueue {
                    topic: self.topic.clone(),
                    queue_id: self.queue_id,
                    queue_offset: offset,
                    reason: format!("file end at byte {} but the next unit is at byte {byte}", w.position()),
                });
            }
            *writer = Some(w);
        }
        Ok(writer.as_mut().expect("set above"))
    }

    /// Drops units whose record does not end at or below `log_end` (after the commit log was
    /// cut), and unreadable units at the tail, so that the queue never points past the log.
    pub fn truncate_to_log(&self, log_end: u64) -> Result<()> {
        self.truncate_tail(|u| u.end() <= log_end)
    }

    /// Drops the units from the highest one that fails `fits` on (unreadable units fail), and
    /// the blank units above it, stopping at the first unit from the end that fits. Blank units
    /// prove nothing: those after a unit that goes would stand for records past the log (a
    /// repair leaves blanks where garbage was), while a queue that holds only blanks above its
    /// units that fit keeps them.
    fn truncate_tail(&self, fits: impl Fn(&CqUnit) -> bool) -> Result<()> {
        let min_held = self.first_held();
        let mut keep = self.max_offset();
        let mut at = keep;
        while at > min_held {
            at -= 1;
            match self.unit(at) {
                Some(u) if u.is_blank() => {}
                Some(u) if fits(&u) => break,
                _ => keep = at,
            }
        }
        self.truncate_units(keep)
    }

    /// Drops the units of records at or past commit-log offset `from`, and unreadable units
    /// among them, so that a re-dispatch from `from` rebuilds them from the log (after a crash,
    /// units past the checkpoint may be torn, or point at records that did not survive).
    ///
    /// The unit left last must also pass [`truncate_to_log`](Self::truncate_to_log)'s test
    /// against `log_end`: the one before this call did not look at it, and if the re-dispatch
    /// adds nothing after it (a queue without records from `from` on), the next open would drop
    /// it and the two sessions would disagree on the queue's max offset.
    pub fn truncate_from_log_offset(&self, from: u64, log_end: u64) -> Result<()> {
        self.truncate_tail(|u| u.commit_log_offset < from && u.end() <= log_end)
    }

    fn truncate_units(&self, keep: u64) -> Result<()> {
        let mut writer = self.writer.lock();
        if keep >= self.max_offset() {
            return Ok(());
        }
        *writer = None;
        // Live: a reader may hold the file that is cut (a slave truncated at run time).
        let removed = self.segments.truncate_live(keep * UNIT_SIZE)?;
        for path in &removed {
            self.segments.backend().remove(path).at(path)?;
        }
        self.max_offset.store(keep, Ordering::Release);
        self.assigned.store(keep, Ordering::Release);
        self.assigned_seen.store(keep, Ordering::Relaxed);
        self.flushed.fetch_min(keep, Ordering::AcqRel);
        if self.min_offset() > keep {
            self.min_offset.store(keep, Ordering::Release);
        }
        // An earlier file is the last one now. Holes are looked for in the last file only, so
        // this recovery must look again: a hole left for the next open to find would be rebuilt
        // then, and the two sessions would read the queue differently.
        if !removed.is_empty()
            && let Some((_, _, Some(hole))) = self.scan_last()
        {
            self.note_hole(hole);
        }
        Ok(())
    }

    /// Moves the minimum offset past units whose record lies below `log_min` (removed from the
    /// commit log), as RocketMQ's `correctMinOffset`. Units are ordered by commit-log offset, so
    /// this is a binary search.
    pub fn correct_min_offset(&self, log_min: u64) {
        // Whether the records from `at` on are still in the log, judged by the first real unit
        // at or after it: blank units (fillers, or records lost to damage) and unreadable ones
        // carry no offset. With no real unit near, the answer is "yes": the minimum must never
        // move past messages that may still be there.
        const LOOK_AHEAD: u64 = 256;
        let (mut lo, max) = (self.min_offset(), self.max_offset());
        let mut hi = max;
        let kept = |at: u64| {
            (at..max.min(at + LOOK_AHEAD))
                .find_map(|i| self.unit(i).filter(|u| !u.is_blank()))
                .is_none_or(|u| u.commit_log_offset >= log_min)
        };
        // Nothing removed below the first unit: the usual case.
        if kept(lo) {
            return;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if kept(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        if lo > self.min_offset() {
            self.min_offset.store(lo, Ordering::Release);
        }
    }

    /// Takes out of the queue, oldest first, the files whose every record lies below `log_min`
    /// (retention took them out of the log), never the last file; the caller removes them once
    /// the registry records the queue's new start. Call after
    /// [`correct_min_offset`](Self::correct_min_offset), so that no reader is sent into them.
    pub fn take_files_below(&self, log_min: u64) -> Vec<SegmentRef<B>> {
        let per = self.units_per_segment();
        let mut taken = Vec::new();
        while self.segments.len() > 1 {
            let Some(first) = self.segments.first() else {
                break;
            };
            // The newest real unit of the file decides (units are in log order); a file with no
            // readable unit holds nothing to keep.
            let newest = (0..per.min(256)).find_map(|back| {
                let pos = (per - 1 - back) * UNIT_SIZE;
                first
                    .read(pos, UNIT_SIZE as usize)
                    .and_then(|b| CqUnit::decode(&b))
                    .filter(|u| !u.is_blank())
            });
            if newest.is_some_and(|u| u.commit_log_offset >= log_min) {
                break;
            }
            match self.segments.pop_first_if(|f, len| Arc::ptr_eq(f, &first) && len > 1) {
                Some(seg) => taken.push(seg),
                None => break,
            }
        }
        if !taken.is_empty() {
            self.min_offset.fetch_max(self.first_held(), Ordering::AcqRel);
        }
        taken
    }

    /// Flushes written units when at least `least_pages` pages are dirty (0: all).
    pub fn flush(&self, least_pages: u64) -> io::Result<()> {
        let flushed = self.flushed.load(Ordering::Acquire);
        if flushed >= self.max_offset() {
            return Ok(());
        }
        let mut byte = flushed * UNIT_SIZE;
        let mut durable = flushed;
        while let Some(seg) = self.segments.find(byte) {
            let f = seg.flush(least_pages)?;
            durable = (seg.start() + f) / UNIT_SIZE;
            if f < seg.size() {
                break;
            }
            byte = seg.end();
        }
        self.flushed.fetch_max(durable, Ordering::AcqRel);
        Ok(())
    }

    /// Directory of the queue's files.
    pub fn dir(&self) -> &Path {
        self.segments.dir()
    }

    /// The queue's segments (for tools).
    pub fn segments(&self) -> &SegmentQueue<B> {
        &self.segments
    }
}

/// The queues of one topic, by queue id.
/// Every put looks its queue up, so the table hashes with foldhash rather than SipHash: several
/// times faster on short topic names, and still seeded per process against crafted collisions.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type TopicQueues<B> = FastMap<u32, Arc<ConsumeQueue<B>>>;

/// The queues one thread has looked up in a [`QueueTable`], kept by that thread. Every lookup in
/// the table writes its lock and the queue's reference count: a thread that looked up the queue
/// of every record it dispatches moved those cache lines away from the producers, which look
/// up the same queues, on every put. Queues never leave a table, so an entry never goes stale.
pub struct QueueCache<B: Backend> {
    queues: FastMap<String, FastMap<u32, Arc<ConsumeQueue<B>>>>,
}

impl<B: Backend> Default for QueueCache<B> {
    fn default() -> Self {
        QueueCache {
            queues: FastMap::default(),
        }
    }
}

impl<B: Backend> QueueCache<B> {
    /// The queue, if the table has it.
    pub fn get(&mut self, table: &QueueTable<B>, topic: &str, queue_id: u32) -> Option<&Arc<ConsumeQueue<B>>> {
        if !self.queues.get(topic).is_some_and(|m| m.contains_key(&queue_id)) {
            let q = table.get(topic, queue_id)?;
            self.queues.entry(topic.to_string()).or_default().insert(queue_id, q);
        }
        self.queues.get(topic)?.get(&queue_id)
    }

    /// The queue, created in the table if missing (see [`QueueTable::get_or_create`]).
    pub fn get_or_create(
        &mut self,
        table: &QueueTable<B>,
        topic: &str,
        queue_id: u32,
    ) -> Result<&Arc<ConsumeQueue<B>>> {
        let per_topic = self.queues.entry(topic.to_string()).or_default();
        match per_topic.entry(queue_id) {
            std::collections::hash_map::Entry::Occupied(q) => Ok(q.into_mut()),
            std::collections::hash_map::Entry::Vacant(slot) => Ok(slot.insert(table.get_or_create(topic, queue_id)?)),
        }
    }
}

/// All consume queues of a store, by topic and queue id.
pub struct QueueTable<B: Backend> {
    backend: Arc<B>,
    root: PathBuf,
    units_per_segment: u64,
    size_from_disk: bool,
    queues: RwLock<FastMap<String, TopicQueues<B>>>,
    registry: Option<registry::Registry>,
    /// Queues whose files could not be loaded as a queue and were moved aside at open.
    set_aside: Mutex<Vec<(String, u32)>>,
}

impl<B: Backend> QueueTable<B> {
    /// Loads every queue under `root` (`consumequeue/`). `size_from_disk`: take each queue's
    /// file size from its files (stores written by RocketMQ). `registry`: where to record the
    /// queues (see [`save_registry`](Self::save_registry)).
    pub fn open(
        backend: Arc<B>,
        root: PathBuf,
        units_per_segment: u64,
        size_from_disk: bool,
        registry: Option<registry::Registry>,
    ) -> Result<Self> {
        let table = QueueTable {
            backend,
            root,
            units_per_segment,
            size_from_disk,
            queues: RwLock::new(FastMap::default()),
            registry,
            set_aside: Mutex::new(Vec::new()),
        };
        let topics = table.backend.list_dirs(&table.root).at(&table.root)?;
        let mut map = FastMap::default();
        for topic in topics {
            let tdir = table.root.join(&topic);
            validate_topic(&topic).map_err(|e| Error::layout(&tdir, e.to_string()))?;
            let mut queues = TopicQueues::default();
            for qname in table.backend.list_dirs(&tdir).at(&tdir)? {
                let queue_id: u32 = qname
                    .parse()
                    .ok()
                    .filter(|_| qname.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| Error::layout(tdir.join(&qname), "queue directory is not a queue id"))?;
                let cq = match table.open_queue(&topic, queue_id) {
                    Ok(cq) => cq,
                    // Derived data: files that do not make a queue (a hole, a file of the wrong
                    // size, a stray name) are moved aside and the queue is rebuilt from the log.
                    Err(Error::Layout { path, reason }) => {
                        tracing::warn!(
                            topic, queue_id, path = %path.display(), %reason,
                            "consume queue unusable: moving its files aside to rebuild it from the log"
                        );
                        table.move_aside(&topic, queue_id)?;
                        table.set_aside.lock().push((topic.clone(), queue_id));
                        table.open_queue(&topic, queue_id)?
                    }
                    Err(e) => return Err(e),
                };
                queues.insert(queue_id, Arc::new(cq));
            }
            map.insert(topic, queues);
        }
        *table.queues.write() = map;
        Ok(table)
    }

    /// Moves every file of a queue's directory into the store's `lost+found/`.
    fn move_aside(&self, topic: &str, queue_id: u32) -> Result<()> {
        let dir = self.root.join(topic).join(queue_id.to_string());
        let store_dir = self.root.parent().unwrap_or(&self.root);
        let aside = crate::layout::lost_found_dir(store_dir, "consumequeue")
            .join(topic)
            .join(queue_id.to_string());
        self.backend.create_dir_all(&aside).at(&aside)?;
        for (name, _) in self.backend.list(&dir).at(&dir)? {
            let from = dir.join(&name);
            self.backend.rename(&from, &aside.join(&name)).at(&from)?;
        }
        Ok(())
    }

    /// The queues whose files were moved aside at open (see [`open`](Self::open)): recovery
    /// rebuilds them.
    pub fn set_aside(&self) -> Vec<(String, u32)> {
        self.set_aside.lock().clone()
    }

    fn open_queue(&self, topic: &str, queue_id: u32) -> Result<ConsumeQueue<B>> {
        let size = self.units_per_segment * UNIT_SIZE;
        let rule = if self.size_from_disk {
            SizeRule::FromDisk(size)
        } else {
            SizeRule::Exactly(size)
        };
        let dir = self.root.join(topic).join(queue_id.to_string());
        ConsumeQueue::open(Arc::clone(&self.backend), dir, topic.to_string(), queue_id, rule)
    }

    /// The queue, if it exists.
    pub fn get(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue<B>>> {
        self.queues.read().get(topic)?.get(&queue_id).cloned()
    }

    /// The queue, created (in memory; files come with the first unit) if missing. The caller
    /// has validated the topic.
    pub fn get_or_create(&self, topic: &str, queue_id: u32) -> Result<Arc<ConsumeQueue<B>>> {
        if let Some(q) = self.get(topic, queue_id) {
            return Ok(q);
        }
        let mut queues = self.queues.write();
        let per_topic = queues.entry(topic.to_string()).or_default();
        if let Some(q) = per_topic.get(&queue_id) {
            return Ok(Arc::clone(q));
        }
        let q = Arc::new(self.open_queue(topic, queue_id)?);
        per_topic.insert(queue_id, Arc::clone(&q));
        Ok(q)
    }

    /// Every queue.
    pub fn all(&self) -> Vec<Arc<ConsumeQueue<B>>> {
        let queues = self.queues.read();
        let mut all: Vec<_> = queues.values().flat_map(|m| m.values().cloned()).collect();
        all.sort_by(|a, b| (a.topic(), a.queue_id()).cmp(&(b.topic(), b.queue_id())));
        all
    }

    /// Flushes every queue.
    pub fn flush_all(&self, least_pages: u64) -> Result<()> {
        for q in self.all() {
            q.flush(least_pages).at(q.dir())?;
        }
        Ok(())
    }

    /// What the queues' files durably hold now, for the registry: queues with units only.
    pub fn registered(&self) -> registry::Registered {
        self.all()
            .iter()
            .filter(|q| q.max_offset() > 0)
            .map(|q| {
                let first = q.first_held();
                let queue = registry::RegisteredQueue {
                    first_offset: first,
                    max_offset: q.flushed_units().max(first),
                };
                ((q.topic().to_string(), q.queue_id()), queue)
            })
            .collect()
    }

    /// Records the queues in the registry, after a flush and before the checkpoint that counts
    /// them as dispatched. `exact`: also record growth (at close).
    pub fn save_registry(&self, exact: bool) -> Result<()> {
        match &self.registry {
            // The view is taken under the registry's lock: a save of an older view (a checkpoint
            // racing retention) must never land after a newer one.
            Some(registry) => registry.save_with(|| self.registered(), exact),
            None => Ok(()),
        }
    }

    /// Retention: takes out of every queue the files wholly below `log_min` (after moving each
    /// queue's minimum past what the log lost), records the queues' new starts in the registry,
    /// then removes the files. A crash in between leaves files the registry no longer counts,
    /// which the next pass removes. Returns the files removed.
    pub fn delete_below(&self, log_min: u64) -> Result<usize> {
        let mut taken = Vec::new();
        for q in self.all() {
            q.correct_min_offset(log_min);
            taken.extend(q.take_files_below(log_min));
        }
        if taken.is_empty() {
            return Ok(0);
        }
        self.save_registry(false)?;
        for seg in &taken {
            self.backend.remove(seg.path()).at(seg.path())?;
        }
        Ok(taken.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::MmapBackend;

    fn unit(i: u64) -> CqUnit {
        CqUnit {
            commit_log_offset: i * 100,
            size: 100,
            tags_code: 0,
        }
    }

    /// The dispatcher keeps the put counter at least at the queue's end without reading it on
    /// every unit; whatever lowers the counter must make it look again.
    #[test]
    fn the_put_counter_follows_the_dispatch_through_numbered_puts_cuts_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let table = QueueTable::open(Arc::new(MmapBackend), dir.path().join("cq"), 64, false, None).unwrap();
        let q = table.get_or_create("t", 0).unwrap();
        // Records no put numbered (recovery, replication): the counter follows.
        for i in 0..3 {
            q.put(i, unit(i), false).unwrap();
            assert_eq!(q.assigned(), i + 1);
        }
        // Puts numbered ahead of the dispatch: the counter is theirs.
        q.assign_counter().store(10, Ordering::Relaxed);
        for i in 3..6 {
            q.put(i, unit(i), false).unwrap();
        }
        assert_eq!(q.assigned(), 10);
        // Cut back to the units wholly below 300: the counter with them, and the next unit
        // dispatched raises it again.
        q.truncate_to_log(300).unwrap();
        assert_eq!((q.max_offset(), q.assigned()), (3, 3));
        q.put(3, unit(3), false).unwrap();
        assert_eq!(q.assigned(), 4);
        q.clear().unwrap();
        assert_eq!(q.assigned(), 0);
        q.put(0, unit(0), false).unwrap();
        assert_eq!(q.assigned(), 1);
    }
}
