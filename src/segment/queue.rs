//! The ordered queue of equal-sized segments of one directory, named by their start offsets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Backend, Segment, parse_segment_name, segment_name};
use crate::error::{Error, IoContext, Result};

/// Whether `name` is a segment file still being built (see `MmapBackend::create`).
fn is_unfinished(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".creating"))
        .is_some_and(|n| parse_segment_name(n).is_some())
}

/// How a queue learns its segment size when it opens existing files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeRule {
    /// Every file must have exactly this size.
    Exactly(u64),
    /// Take the size from the first file found (stores written by RocketMQ); use this size when
    /// the directory is empty.
    FromDisk(u64),
}

/// Contiguous segments `[s0, s0+size), [s0+size, s0+2*size), ...` of one directory.
pub struct SegmentQueue<B: Backend> {
    backend: Arc<B>,
    dir: PathBuf,
    segment_size: u64,
    segments: RwLock<Vec<Arc<Segment<B::Storage>>>>,
}

/// A shared handle on one segment of a queue.
pub type SegmentRef<B> = Arc<Segment<<B as Backend>::Storage>>;

impl<B: Backend> SegmentQueue<B> {
    /// Opens the segments in `dir` (which need not exist). Every loaded segment is fully
    /// readable; recovery then sets the end of the last ones.
    ///
    /// Fails with a clear [`Error::Layout`] on a stray file name, a file of the wrong size, a
    /// start offset that is not a multiple of the size, or a hole between segments. A
    /// zero-length *last* file (a crash during creation, in RocketMQ) is removed, as RocketMQ
    /// does, and so is a hidden file a crash left while a segment was being built.
    pub fn open(backend: Arc<B>, dir: &Path, size: SizeRule) -> Result<Self> {
        let mut files = backend.list(dir).at(dir)?;
        for (name, _) in files.iter().filter(|(name, _)| is_unfinished(name)) {
            let path = dir.join(name);
            tracing::info!(path = %path.display(), "removing a segment file left unfinished by a crash");
            backend.remove(&path).at(&path)?;
        }
        files.retain(|(name, _)| !name.starts_with('.'));
        let mut parsed = Vec::with_capacity(files.len());
        for (name, len) in &files {
            let start = parse_segment_name(name)
                .ok_or_else(|| Error::layout(dir.join(name), "stray file: segment names are 20-digit start offsets"))?;
            parsed.push((start, *len, name.clone()));
        }
        parsed.sort();
        if let Some((_, 0, name)) = parsed.last() {
            let path = dir.join(name);
            tracing::warn!(path = %path.display(), "removing zero-length last segment left by an interrupted creation");
            backend.remove(&path).at(&path)?;
            parsed.pop();
        }
        let segment_size = match size {
            SizeRule::Exactly(s) => s,
            // The size most files have: one damaged file must not make the others look wrong.
            SizeRule::FromDisk(default) => {
                let mut sizes: Vec<u64> = parsed.iter().map(|f| f.1).collect();
                sizes.sort_unstable();
                sizes
                    .chunk_by(|a, b| a == b)
                    .max_by_key(|run| run.len())
                    .map_or(default, |run| run[0])
            }
        };
        if segment_size == 0 {
            return Err(Error::layout(dir, "segment size is zero"));
        }
        let mut segments = Vec::with_capacity(parsed.len());
        let mut expected_start: Option<u64> = None;
        for (start, len, name) in parsed {
            let path = dir.join(&name);
            if len != segment_size {
                return Err(Error::layout(
                    path,
                    format!("file is {len} bytes, the queue's segment size is {segment_size}"),
                ));
            }
            if !start.is_multiple_of(segment_size) {
                return Err(Error::layout(
                    path,
                    format!("start offset {start} is not a multiple of the segment size {segment_size}"),
                ));
            }
            if let Some(exp) = expected_start
                && start != exp
            {
                return Err(Error::layout(
                    path,
                    format!("hole: expected the segment starting at {exp}"),
                ));
            }
            expected_start = Some(start + segment_size);
            let storage = backend.open(&path).at(&path)?;
            segments.push(Arc::new(Segment::new(storage, start, path, segment_size)));
        }
        Ok(SegmentQueue {
            backend,
            dir: dir.to_path_buf(),
            segment_size,
            segments: RwLock::new(segments),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Size of every segment.
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.segments.read().len()
    }

    /// Whether the queue has no segment.
    pub fn is_empty(&self) -> bool {
        self.segments.read().is_empty()
    }

    /// The first segment.
    pub fn first(&self) -> Option<SegmentRef<B>> {
        self.segments.read().first().cloned()
    }

    /// The last segment.
    pub fn last(&self) -> Option<SegmentRef<B>> {
        self.segments.read().last().cloned()
    }

    /// A snapshot of all segments, oldest first.
    pub fn snapshot(&self) -> Vec<SegmentRef<B>> {
        self.segments.read().clone()
    }

    /// The segment covering `offset`.
    pub fn find(&self, offset: u64) -> Option<SegmentRef<B>> {
        let segments = self.segments.read();
        Some(Arc::clone(&segments[self.index_of(&segments, offset)?]))
    }

    /// Where the segment covering `offset` sits in `segments` (this queue's list).
    fn index_of(&self, segments: &[SegmentRef<B>], offset: u64) -> Option<usize> {
        let first = segments.first()?.start();
        let idx = (offset.checked_sub(first)? / self.segment_size) as usize;
        (idx < segments.len()).then_some(idx)
    }

    /// Smallest offset held, if any segment exists.
    pub fn min_offset(&self) -> Option<u64> {
        self.segments.read().first().map(|s| s.start())
    }

    /// One past the last readable byte (0 for an empty queue).
    pub fn max_offset(&self) -> u64 {
        self.segments.read().last().map_or(0, |s| s.start() + s.readable())
    }

    /// Creates the segment that starts at `start`: the end of the last segment, or, for an
    /// empty queue, any multiple of the segment size.
    pub fn create(&self, start: u64, warm_up: bool) -> Result<SegmentRef<B>> {
        self.check_follows(start)?;
        let segment = self.prepare(start, warm_up)?;
        self.install(Arc::new(segment))
    }

    /// Creates and maps (and warms, if asked) the file of the segment at `start` without adding it
    /// to the queue: lets a background thread allocate ahead of need.
    pub fn prepare(&self, start: u64, warm_up: bool) -> Result<Segment<B::Storage>> {
        self.backend.create_dir_all(&self.dir).at(&self.dir)?;
        let path = self.dir.join(segment_name(start));
        let storage = self
            .backend
            .create(&path, self.segment_size)
            .map_err(|e| classify_create_error(&path, e))?;
        let segment = Segment::new(storage, start, path.clone(), 0);
        if warm_up {
            segment.warm_up().at(&path)?;
        }
        Ok(segment)
    }

    /// Adds a prepared segment at the end of the queue.
    pub fn install(&self, segment: SegmentRef<B>) -> Result<SegmentRef<B>> {
        let mut segments = self.segments.write();
        Self::follows(&self.dir, self.segment_size, segments.last(), segment.start())?;
        segments.push(Arc::clone(&segment));
        Ok(segment)
    }

    fn check_follows(&self, start: u64) -> Result<()> {
        Self::follows(&self.dir, self.segment_size, self.segments.read().last(), start)
    }

    fn follows(dir: &Path, size: u64, last: Option<&SegmentRef<B>>, start: u64) -> Result<()> {
        match last {
            Some(last) if last.end() != start => Err(Error::layout(
                dir,
                format!(
                    "new segment at {start} does not follow the last one ending at {}",
                    last.end()
                ),
            )),
            None if !start.is_multiple_of(size) => Err(Error::layout(
                dir,
                format!("new segment at {start} is not aligned to {size}"),
            )),
            _ => Ok(()),
        }
    }

    /// Cuts the queue at `offset`: the segment holding it keeps only the bytes below (the rest,
    /// up to its readable end, is zeroed and flushed, so that stale records behind the cut can
    /// never be mistaken for valid ones later), and segments wholly above it are removed from
    /// the queue and their paths handed back (their files are not touched; the caller decides
    /// what to do with them).
    ///
    /// Needs exclusive access to the segment that is cut: fails if a reader or writer still
    /// holds it.
    /// With `zero == false` only the readable end moves: for a clean reopen, where nothing was
    /// ever written past the end.
    pub fn truncate(&self, offset: u64, zero: bool) -> Result<Vec<PathBuf>> {
        let mut segments = self.segments.write();
        let removed = Self::pop_past(&mut segments, offset);
        if let Some(last) = segments.last_mut() {
            let cut = offset.saturating_sub(last.start()).min(last.size());
            let readable = last.readable();
            let path = last.path().to_path_buf();
            let seg = Arc::get_mut(last)
                .ok_or_else(|| Error::layout(&path, "cannot truncate a segment that readers still hold"))?;
            if zero {
                seg.zero_tail(cut, readable.max(cut)).at(&path)?;
            } else {
                seg.set_readable(cut);
            }
        }
        Ok(removed)
    }

    /// Cuts the queue at `offset` while readers may hold its segments (a slave truncated to
    /// the point where its log and its master's agree): as [`truncate`](Self::truncate) with
    /// zeroing, but when someone still holds the segment that is cut, its bytes are not touched:
    /// the kept prefix is copied into a new file that replaces it (written aside, synced,
    /// renamed over), so readers keep reading the old, unchanged bytes of the unlinked file.
    pub fn truncate_live(&self, offset: u64) -> Result<Vec<PathBuf>> {
        let mut segments = self.segments.write();
        let removed = Self::pop_past(&mut segments, offset);
        if let Some(last) = segments.last_mut() {
            let cut = offset.saturating_sub(last.start()).min(last.size());
            let readable = last.readable();
            if cut < readable {
                let path = last.path().to_path_buf();
                match Arc::get_mut(last) {
                    Some(seg) => seg.zero_tail(cut, readable).at(&path)?,
                    None => *last = Arc::new(self.copy_prefix(last, cut, None)?),
                }
            } else if let Some(seg) = Arc::get_mut(last) {
                // Nothing to cut, but a writer may have claimed it: let the next one claim it.
                seg.set_readable(readable);
            }
        }
        Ok(removed)
    }

    /// Overwrites the published bytes at `offset` with `data` (within one segment) and makes
    /// them durable: the repair of units found wrong. Readers may hold the segment: then its
    /// bytes are not touched, and a copy with the new bytes replaces the file (as
    /// [`truncate_live`](Self::truncate_live) does), so readers keep the old, unchanged bytes.
    /// The caller must have dropped the segment's writer and keep new ones out.
    pub fn rewrite(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut segments = self.segments.write();
        let idx = self
            .index_of(&segments, offset)
            .ok_or_else(|| Error::layout(&self.dir, format!("no segment holds offset {offset}")))?;
        let slot = &mut segments[idx];
        let pos = offset - slot.start();
        if pos + data.len() as u64 > slot.readable() {
            return Err(Error::layout(
                slot.path(),
                format!("rewrite at {offset} past the readable end"),
            ));
        }
        let path = slot.path().to_path_buf();
        match Arc::get_mut(slot) {
            Some(seg) => seg.overwrite(pos, data).at(&path)?,
            None => {
                let readable = slot.readable();
                *slot = Arc::new(self.copy_prefix(slot, readable, Some((pos, data)))?);
            }
        }
        Ok(())
    }

    /// A new file for `segment` holding its first `cut` bytes (with `patch` applied), renamed
    /// over its file.
    fn copy_prefix(
        &self,
        segment: &SegmentRef<B>,
        cut: u64,
        patch: Option<(u64, &[u8])>,
    ) -> Result<Segment<B::Storage>> {
        let path = segment.path().to_path_buf();
        let aside = self.dir.join(format!(".{}.creating", segment_name(segment.start())));
        // Left by a crash in an earlier attempt (open removes such files too); absent normally.
        let _ = self.backend.remove(&aside);
        let storage = self
            .backend
            .create(&aside, self.segment_size)
            .map_err(|e| classify_create_error(&aside, e))?;
        let fresh = Arc::new(Segment::new(storage, segment.start(), path.clone(), 0));
        {
            let mut w = fresh
                .claim_writer()
                .ok_or_else(|| Error::layout(&aside, "new segment already has a writer"))?;
            let prefix = segment
                .read(0, cut as usize)
                .ok_or_else(|| Error::layout(&path, "the kept prefix is not readable"))?;
            w.write(&prefix);
            if let Some((pos, bytes)) = patch {
                w.patch(pos, bytes);
            }
            w.publish();
        }
        fresh.flush(0).at(&aside)?;
        let mut fresh = Arc::try_unwrap(fresh).map_err(|_| Error::layout(&aside, "new segment still shared"))?;
        // Frees the writer claim; the data stays readable up to `cut`.
        fresh.set_readable(cut);
        self.backend.rename(&aside, &path).at(&path)?;
        tracing::info!(path = %path.display(), cut, "segment held by readers: rewritten by replacing its file");
        Ok(fresh)
    }

    /// Takes the segments that start past `offset` off the end of `segments`: their paths.
    fn pop_past(segments: &mut Vec<SegmentRef<B>>, offset: u64) -> Vec<PathBuf> {
        let keep = segments.partition_point(|s| s.start() <= offset);
        segments.drain(keep..).map(|s| s.path().to_path_buf()).rev().collect()
    }

    /// Takes the oldest segment out of the queue, if `take(first, count)` says so; its file
    /// is left for the caller.
    pub fn pop_first_if(&self, take: impl FnOnce(&SegmentRef<B>, usize) -> bool) -> Option<SegmentRef<B>> {
        let mut segments = self.segments.write();
        let len = segments.len();
        if !take(segments.first()?, len) {
            return None;
        }
        Some(segments.remove(0))
    }

    /// Removes every segment from the queue and deletes their files, newest first (a crash in
    /// the middle leaves a queue that still starts where it did). Readers that still hold one
    /// keep their mapping until they drop it.
    pub fn remove_all(&self) -> Result<()> {
        let mut segments = self.segments.write();
        while let Some(last) = segments.pop() {
            self.backend.remove(last.path()).at(last.path())?;
        }
        Ok(())
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }
}

fn classify_create_error(path: &Path, e: std::io::Error) -> Error {
    // ENOSPC (28) and EDQUOT (122) on Linux: say "disk full" so brokers can map it.
    match e.raw_os_error() {
        Some(28) | Some(122) => Error::DiskFull {
            path: path.to_path_buf(),
            source: e,
        },
        _ => Error::io(path, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::MmapBackend;

    const SIZE: u64 = 64 * 1024;

    /// A queue of two segments, the second half written: byte `i` of the log is `i % 251`.
    fn written(dir: &Path) -> SegmentQueue<MmapBackend> {
        let q = SegmentQueue::open(Arc::new(MmapBackend), dir, SizeRule::Exactly(SIZE)).unwrap();
        for start in [0, SIZE] {
            let seg = q.create(start, false).unwrap();
            let mut w = seg.claim_writer().unwrap();
            let len = if start == 0 { SIZE } else { SIZE / 2 };
            let bytes: Vec<u8> = (start..start + len).map(|i| (i % 251) as u8).collect();
            w.write(&bytes);
            w.publish();
        }
        q
    }

    fn on_disk(dir: &Path, start: u64) -> Vec<u8> {
        std::fs::read(dir.join(segment_name(start))).unwrap()
    }

    #[test]
    fn live_truncation_zeroes_a_segment_nobody_holds() {
        let dir = tempfile::tempdir().unwrap();
        let q = written(dir.path());
        let removed = q.truncate_live(SIZE + 100).unwrap();
        assert!(removed.is_empty());
        assert_eq!(q.max_offset(), SIZE + 100);
        let bytes = on_disk(dir.path(), SIZE);
        assert!(
            bytes[..100]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == ((SIZE + i as u64) % 251) as u8)
        );
        assert!(bytes[100..].iter().all(|&b| b == 0), "the cut part is zeroed on disk");
    }

    #[test]
    fn live_truncation_leaves_a_held_segment_unchanged_and_replaces_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let q = written(dir.path());
        // A reader holds the segment that is cut, and a slice of bytes past the cut.
        let held = q.find(SIZE + 1000).unwrap();
        let before = held.read(1000, 200).unwrap().to_vec();
        let removed = q.truncate_live(SIZE + 100).unwrap();
        assert!(removed.is_empty());
        // The reader's bytes did not change under it.
        assert_eq!(held.read(1000, 200).unwrap().to_vec(), before);
        assert_eq!(held.readable(), SIZE / 2);
        // The queue's segment is a new one, cut; the file on disk too.
        let now = q.find(SIZE).unwrap();
        assert!(!Arc::ptr_eq(&now, &held));
        assert_eq!(now.readable(), 100);
        assert_eq!(q.max_offset(), SIZE + 100);
        let bytes = on_disk(dir.path(), SIZE);
        assert!(
            bytes[..100]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == ((SIZE + i as u64) % 251) as u8)
        );
        assert!(bytes[100..].iter().all(|&b| b == 0), "the cut part is zeroed on disk");
        // The new segment takes a writer at the cut, and no file is left aside.
        let mut w = now.claim_writer().unwrap();
        assert_eq!(w.position(), SIZE + 100);
        w.write(b"next");
        w.publish();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn live_truncation_removes_whole_segments_past_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let q = written(dir.path());
        let _held = q.find(SIZE).unwrap();
        let removed = q.truncate_live(SIZE / 2).unwrap();
        assert_eq!(removed, vec![dir.path().join(segment_name(SIZE))]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.max_offset(), SIZE / 2);
    }
}
