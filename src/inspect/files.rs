//! Read-only access to a store directory's files: segment listings, windowed frame scans,
//! consume-queue summaries. Nothing here opens a file for writing.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::codec::{self, DecodeError, Frame, RecordView, Verify};
use crate::consume_queue::{CqUnit, UNIT_SIZE};
use crate::layout::{COMMIT_LOG_DIR, CONSUME_QUEUE_DIR};
use crate::segment::parse_segment_name;

/// One segment file (commit log or consume queue): where it starts and how long it is.
#[derive(Clone, Debug)]
pub struct SegmentFile {
    /// Start offset, from the 20-digit name (bytes for the commit log and the consume queue).
    pub start: u64,
    /// File length in bytes.
    pub len: u64,
    /// Path of the file.
    pub path: PathBuf,
}

impl SegmentFile {
    /// One past the file's last byte, as an offset.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The files of a segmented directory: the segments sorted by start, and any other entries.
#[derive(Debug, Default)]
pub struct SegmentDir {
    /// Files with a 20-digit name, sorted by start offset.
    pub segments: Vec<SegmentFile>,
    /// Names of entries that are not segments (reported, never read).
    pub other: Vec<String>,
}

impl SegmentDir {
    /// Lists `dir`; an absent directory has no segments.
    pub fn list(dir: &Path) -> io::Result<SegmentDir> {
        let mut out = SegmentDir::default();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            match parse_segment_name(&name) {
                Some(start) if meta.is_file() => out.segments.push(SegmentFile {
                    start,
                    len: meta.len(),
                    path: entry.path(),
                }),
                _ => out.other.push(name),
            }
        }
        out.segments.sort_by_key(|s| s.start);
        out.other.sort();
        Ok(out)
    }

    /// The segment holding `offset`, if any.
    pub fn find(&self, offset: u64) -> Option<&SegmentFile> {
        let idx = self.segments.partition_point(|s| s.start <= offset);
        let seg = self.segments.get(idx.checked_sub(1)?)?;
        (offset < seg.end()).then_some(seg)
    }

    /// Pairs of adjacent segments that do not touch (a gap or an overlap), as `(end, next start)`.
    pub fn discontinuities(&self) -> Vec<(u64, u64)> {
        self.segments
            .windows(2)
            .filter(|w| w[0].end() != w[1].start)
            .map(|w| (w[0].end(), w[1].start))
            .collect()
    }
}

/// The commit-log directory of a store.
pub fn commit_log_dir(store: &Path) -> PathBuf {
    store.join(COMMIT_LOG_DIR)
}

/// The directory of one consume queue.
pub fn consume_queue_dir(store: &Path, topic: &str, queue_id: u32) -> PathBuf {
    store.join(CONSUME_QUEUE_DIR).join(topic).join(queue_id.to_string())
}

/// A read window over one file: sequential frame scans read it in large chunks rather than one
/// system call per record, and hold at most one chunk (plus the largest record) in memory.
pub struct FileWindow {
    file: File,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

/// Bytes read at a time by [`FileWindow`].
const WINDOW: usize = 8 << 20;

impl FileWindow {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> io::Result<FileWindow> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileWindow {
            file,
            len,
            buf: Vec::new(),
            buf_start: 0,
        })
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes from `pos` to at least `pos + need` (fewer at the end of the file), possibly
    /// more.
    pub fn bytes_from(&mut self, pos: u64, need: usize) -> io::Result<&[u8]> {
        let pos = pos.min(self.len);
        let want_end = (pos + need as u64).min(self.len);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || want_end > buf_end {
            let read_len = (need.max(WINDOW) as u64).min(self.len - pos) as usize;
            self.buf.resize(read_len, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        Ok(&self.buf[(pos - self.buf_start) as usize..])
    }

    /// Decodes the frame at `pos`, reading as much as it needs.
    pub fn frame_at(&mut self, pos: u64, verify: Verify) -> io::Result<Result<Frame<'_>, DecodeError>> {
        // Ask for the header first, then for the whole record once its size is known.
        let need = match codec::peek_header(self.bytes_from(pos, 8)?) {
            Some((total, _)) if total > 0 => total as usize,
            _ => 8,
        };
        let bytes = self.bytes_from(pos, need)?;
        Ok(codec::decode(bytes, verify))
    }
}

/// Where a scan of a commit-log segment stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// An end-of-segment filler: the segment is full and the log continues in the next one.
    Full,
    /// Zero bytes or the end of the file: the normal end of the log.
    Zero,
    /// Bytes that are not a valid frame (a torn or damaged tail).
    Invalid(String),
}

/// What a scan of one commit-log segment found.
#[derive(Clone, Debug)]
pub struct SegmentScan {
    /// Valid records.
    pub records: u64,
    /// Offset (log-wide) one past the last valid record, or the segment end when full.
    pub end: u64,
    /// Largest store timestamp seen (ms).
    pub last_store_timestamp: Option<i64>,
    /// Why the scan stopped.
    pub stop: ScanEnd,
}

/// Scans a commit-log segment from its start, checking framing only (as a clean recovery does).
pub fn scan_segment(seg: &SegmentFile) -> io::Result<SegmentScan> {
    let mut window = FileWindow::open(&seg.path)?;
    let mut pos = 0u64;
    let mut records = 0u64;
    let mut last_ts = None;
    let stop = loop {
        if pos >= window.len() {
            break ScanEnd::Zero;
        }
        match window.frame_at(pos, Verify::Framing)? {
            Ok(Frame::Record(view)) => {
                if view.physical_offset != seg.start + pos {
                    break ScanEnd::Invalid(format!(
                        "record at {} says its offset is {}",
                        seg.start + pos,
                        view.physical_offset
                    ));
                }
                records += 1;
                last_ts = Some(last_ts.map_or(view.store_timestamp, |t: i64| t.max(view.store_timestamp)));
                pos += view.total_size as u64;
            }
            Ok(Frame::Blank { .. }) => {
                pos = window.len();
                break ScanEnd::Full;
            }
            Err(e) => {
                let head = window.bytes_from(pos, 8)?;
                if head.iter().take(8).all(|&b| b == 0) {
                    break ScanEnd::Zero;
                }
                break ScanEnd::Invalid(e.to_string());
            }
        }
    };
    Ok(SegmentScan {
        records,
        end: seg.start + pos,
        last_store_timestamp: last_ts,
        stop,
    })
}

/// Reads the raw bytes of the frame at commit-log `offset`: its header's TOTALSIZE bytes (cut at
/// the segment's end), or the 8-byte header when TOTALSIZE is unusable.
pub fn read_frame_bytes(log: &SegmentDir, offset: u64) -> Result<Vec<u8>, String> {
    let seg = log.find(offset).ok_or_else(|| {
        let range = match (log.segments.first(), log.segments.last()) {
            (Some(f), Some(l)) => format!("the commit log's files cover {}..{}", f.start, l.end()),
            _ => "the commit log has no segment files".to_string(),
        };
        format!("no commit-log segment holds offset {offset} ({range})")
    })?;
    let file = File::open(&seg.path).map_err(|e| format!("cannot read {}: {e}", seg.path.display()))?;
    let pos = offset - seg.start;
    let avail = seg.len - pos;
    let mut head = vec![0u8; 8.min(avail) as usize];
    file.read_exact_at(&mut head, pos)
        .map_err(|e| format!("cannot read {}: {e}", seg.path.display()))?;
    let len = match codec::peek_header(&head) {
        Some((total, _)) if total > 8 => (total as u64).min(avail) as usize,
        _ => return Ok(head),
    };
    let mut rec = vec![0u8; len];
    file.read_exact_at(&mut rec, pos)
        .map_err(|e| format!("cannot read {}: {e}", seg.path.display()))?;
    Ok(rec)
}

/// The CRC verdicts of one record.
#[derive(Clone, Debug)]
pub struct CrcCheck {
    /// Whether BODYCRC matches the body.
    pub body_ok: bool,
    /// The whole-record CRC property: `None` if absent, else whether it matches.
    pub record_ok: Option<bool>,
}

impl CrcCheck {
    /// Checks a record that decoded with framing.
    pub fn of(bytes: &[u8], view: &RecordView<'_>) -> CrcCheck {
        let body_ok = codec::masked_crc32(view.body) == view.body_crc;
        let record_ok = view
            .has_record_crc()
            .then(|| codec::decode(bytes, Verify::RequireRecordCrc).is_ok());
        CrcCheck { body_ok, record_ok }
    }

    /// Whether every CRC present matches (what `Verify::Crc` accepts).
    pub fn ok(&self) -> bool {
        self.body_ok && self.record_ok != Some(false)
    }
}

/// The valid units of a consume-queue file, from its start to the first invalid one.
pub fn valid_units(bytes: &[u8]) -> impl Iterator<Item = CqUnit> + '_ {
    bytes.chunks_exact(UNIT_SIZE as usize).map_while(CqUnit::decode)
}

/// A consume queue read from its files.
#[derive(Debug)]
pub struct QueueFiles {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// Its files.
    pub dir: SegmentDir,
}

/// What a consume queue's files say.
#[derive(Clone, Debug, Default)]
pub struct QueueSummary {
    /// First offset holding a real (non-filler) unit; equals `max` when none does.
    pub min: u64,
    /// One past the last valid unit.
    pub max: u64,
    /// End (in the commit log) of the last real unit's record.
    pub max_physical_end: Option<u64>,
}

impl QueueFiles {
    /// Lists every queue under `consumequeue/`, sorted by topic and queue id.
    pub fn list_all(store: &Path) -> io::Result<Vec<QueueFiles>> {
        let root = store.join(CONSUME_QUEUE_DIR);
        let mut out = Vec::new();
        let topics = match fs::read_dir(&root) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for topic in topics {
            let topic = topic?;
            if !topic.file_type()?.is_dir() {
                continue;
            }
            let name = topic.file_name().to_string_lossy().into_owned();
            for queue in fs::read_dir(topic.path())? {
                let queue = queue?;
                let Ok(queue_id) = queue.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if !queue.file_type()?.is_dir() {
                    continue;
                }
                out.push(QueueFiles {
                    topic: name.clone(),
                    queue_id,
                    dir: SegmentDir::list(&queue.path())?,
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
        Ok(out)
    }

    /// Opens one queue; `None` if its directory does not exist.
    pub fn open(store: &Path, topic: &str, queue_id: u32) -> io::Result<Option<QueueFiles>> {
        let dir = consume_queue_dir(store, topic, queue_id);
        if !dir.is_dir() {
            return Ok(None);
        }
        Ok(Some(QueueFiles {
            topic: topic.to_string(),
            queue_id,
            dir: SegmentDir::list(&dir)?,
        }))
    }

    /// Min and max offsets as recovery would find them: the max from the last file's valid
    /// units, the min past the filler units at the start of the first file.
    pub fn summary(&self) -> io::Result<QueueSummary> {
        let (Some(first), Some(last)) = (self.dir.segments.first(), self.dir.segments.last()) else {
            return Ok(QueueSummary::default());
        };
        let last_bytes = fs::read(&last.path)?;
        let mut count = 0u64;
        let mut max_physical_end = None;
        for unit in valid_units(&last_bytes) {
            count += 1;
            if !unit.is_blank() {
                max_physical_end = Some(unit.end());
            }
        }
        let max = last.start / UNIT_SIZE + count;
        let first_bytes = if first.start == last.start {
            last_bytes
        } else {
            fs::read(&first.path)?
        };
        let fillers = valid_units(&first_bytes).take_while(CqUnit::is_blank).count() as u64;
        let min = (first.start / UNIT_SIZE + fillers).min(max);
        Ok(QueueSummary {
            min,
            max,
            max_physical_end,
        })
    }

    /// Reads up to `count` units from queue offset `from`, stopping at the first invalid unit or
    /// missing file. Returns `(offset, unit)` pairs.
    pub fn units(&self, from: u64, count: u64) -> io::Result<Vec<(u64, CqUnit)>> {
        let mut out = Vec::new();
        let mut offset = from;
        while (out.len() as u64) < count {
            let Some(seg) = self.dir.find(offset.saturating_mul(UNIT_SIZE)) else {
                break;
            };
            let bytes = fs::read(&seg.path)?;
            let skip = (offset * UNIT_SIZE - seg.start) as usize;
            let before = out.len();
            for unit in valid_units(bytes.get(skip..).unwrap_or(&[])) {
                if out.len() as u64 >= count {
                    break;
                }
                out.push((offset, unit));
                offset += 1;
            }
            // Stop at an invalid unit; continue into the next file only at a file's end.
            if out.len() == before || offset * UNIT_SIZE < seg.end() {
                break;
            }
        }
        Ok(out)
    }
}
