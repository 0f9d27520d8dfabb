//! `verify`: a read-only check of a whole store directory (`mqstore verify`).
//!
//! [`verify_store`] reads every file of a store, written by mqstore or by Apache RocketMQ, and
//! reports what recovery would find, without changing anything: it takes the directory's `lock`
//! (so no store can open it meanwhile), opens every file read-only, maps segment files with
//! [`ReadOnlyMap`] and never creates a file. It never panics, whatever the bytes.
//!
//! What it checks:
//! 1. **Layout** of `commitlog/` and of every `consumequeue/{topic}/{queue}/`: 20-digit names,
//!    one file size (`mqstore.meta`'s, or for a store RocketMQ wrote the size most of the files
//!    have, so that one short file is the one blamed), starts that are multiples of it, no holes. A zero-length *last* file is a note
//!    (recovery removes it); any other misfit is damage naming the file.
//! 2. **The commit log**, record by record from the first segment: framing, the PHYSICALOFFSET
//!    field equal to the record's position, and the CRC (`Verify::RequireRecordCrc` when
//!    `mqstore.meta` requires the whole-record CRC, `Verify::Crc` otherwise). An invalid record
//!    below the checkpoint's durable offset (`logFlushed`) is damage: it is reported and the
//!    scan resyncs at the next valid record, as recovery does. At or past that offset, after an
//!    unclean shutdown it is a torn tail (a note: recovery cuts the log there), after a clean
//!    shutdown it is damage. Bytes after the end of the log are checked too.
//! 3. **Consume queues**, both ways: every unit must point at the start of a valid record of its
//!    topic and queue, with the unit's queue offset, size and tag code; every dispatched record
//!    must have its unit. Missing units after an unclean shutdown, for records recovery will
//!    re-dispatch, are notes (recovery rebuilds them).
//! 4. **The checkpoint**: missing, short or with no valid mqstore slot (notes: recovery falls
//!    back to a slower start), or recording as durable more log than there is (damage).
//!
//! Memory stays bounded by the number of files, queues and findings: record offsets are never
//! collected. Each record is checked against its queue's unit file directly (each queue keeps a
//! window of 50 units read ahead, since a queue's records come in queue-offset order), then each
//! queue's units are walked and each unit's record decoded from the mapped log.
//!
//! Finding offsets are in the offset space the file's name counts in: commit-log offsets for
//! `commitlog/` files, byte offsets of the queue (queue offset × 20) for consume-queue files,
//! and the byte position for other files. Finding paths are relative to the store directory.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod index;

use crate::checkpoint::{CHECKPOINT_FILE, CHECKPOINT_SIZE, Checkpoint, Loaded, SLOT_AT};
use crate::codec::{self, Frame, RecordView, Verify};
use crate::config::DEFAULT_CONSUME_QUEUE_UNITS;
use crate::consume_queue::{CqUnit, UNIT_SIZE};
use crate::error::{Error, Result};
use crate::layout::lock_existing as lock;
use crate::layout::scan::next_valid_record;
use crate::layout::segments::{Extra, Problem, list_segments, read_dir_sorted};
use crate::layout::start::{self, holds_records};
use crate::layout::{ABORT_FILE, COMMIT_LOG_DIR, CONSUME_QUEUE_DIR};
use crate::message::validate_topic;
use crate::meta::{FORMAT_VERSION, META_FILE, Meta};
use crate::segment::{ReadOnlyMap, segment_name};

/// Bytes of a queue's units read at once while the log is scanned (50 units): a queue's records
/// come in queue-offset order, so one read serves the next 50 of them.
const CQ_WINDOW: u64 = 50 * UNIT_SIZE;
/// RocketMQ's schedule topic, whose units hold a delivery time instead of the tag code.
const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

/// How to verify. No flags yet: room for later ones.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct VerifyOptions {}

/// One fact found in the store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The file, relative to the store directory.
    #[serde(serialize_with = "lossy_path")]
    pub file: PathBuf,
    /// Where in it: a commit-log offset for `commitlog/` files, the queue's byte offset
    /// (queue offset × 20) for consume-queue files, the byte position for other files.
    pub offset: u64,
    /// What is wrong, or what recovery will do.
    pub what: String,
}

/// What [`verify_store`] found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    /// No damage found.
    pub consistent: bool,
    /// No abort marker: the last run shut down cleanly.
    pub clean_shutdown: bool,
    /// `"mqstore"` (`mqstore.meta` present) or `"RocketMQ"`.
    pub written_by: &'static str,
    /// Commit-log segment files.
    pub segments: usize,
    /// Valid records in the commit log.
    pub records: u64,
    /// Bytes of those records.
    pub bytes: u64,
    /// Offset of the first segment.
    pub log_start: u64,
    /// Where the valid log ends.
    pub log_end: u64,
    /// Consume-queue directories (topic, queue id).
    pub queues: usize,
    /// Written (not blank) consume-queue units.
    pub units: u64,
    /// Index files.
    pub index_files: usize,
    /// Entries in them.
    pub index_entries: u64,
    /// Damage: each makes the store inconsistent.
    pub damage: Vec<Finding>,
    /// Facts that are not damage (what recovery will repair, files it will ignore).
    pub notes: Vec<Finding>,
}

/// Verifies the store in `dir` with the default options; see [`verify_store_with`].
///
/// # Errors
/// As [`verify_store_with`].
pub fn verify_store(dir: &Path) -> Result<VerifyReport> {
    verify_store_with(dir, &VerifyOptions::default())
}

/// Verifies the store in `dir` without changing anything: what `mqstore verify` does.
///
/// # Errors
/// Only for problems that prevent a verdict: `dir` is not a directory or not a store
/// ([`Error::Io`], [`Error::Layout`]), the store is in use ([`Error::Locked`]), a file cannot be
/// read ([`Error::Io`]), or its format version is newer than this build's. Damage is reported
/// in the [`VerifyReport`], never as an error.
pub fn verify_store_with(dir: &Path, options: &VerifyOptions) -> Result<VerifyReport> {
    let _ = options;
    let md = fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !md.is_dir() {
        return Err(Error::io(
            dir,
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let _lock = lock(dir)?;
    let is_store = [COMMIT_LOG_DIR, CONSUME_QUEUE_DIR, CHECKPOINT_FILE, META_FILE]
        .iter()
        .any(|name| fs::symlink_metadata(dir.join(name)).is_ok());
    if !is_store {
        return Err(Error::layout(
            dir,
            "not a store directory: no commitlog/, consumequeue/, checkpoint or mqstore.meta",
        ));
    }
    let mut f = Findings::default();

    // mqstore.meta: sizes and the CRC mode.
    let meta_present = fs::symlink_metadata(dir.join(META_FILE)).is_ok();
    let meta = read_meta(dir, &mut f)?;
    let verify = match &meta {
        Some(m) if m.record_crc_required => Verify::RequireRecordCrc,
        _ => Verify::Crc,
    };
    let clean = fs::symlink_metadata(dir.join(ABORT_FILE)).is_err();
    let checkpoint = read_checkpoint(dir, meta_present, &mut f)?;

    for name in [COMMIT_LOG_DIR, CONSUME_QUEUE_DIR] {
        if fs::metadata(dir.join(name)).is_ok_and(|md| !md.is_dir()) {
            f.damage(name, 0, "not a directory: the store will not open");
        }
    }

    // Layout and mapping of the commit log.
    let log_dir = PathBuf::from(COMMIT_LOG_DIR);
    let listed = list_segment_dir(
        dir,
        &log_dir,
        meta.as_ref().map(|m| m.commit_log_segment_size),
        false,
        &mut f,
    )?;
    let mut segs = Vec::with_capacity(listed.files.len());
    for file in listed.files {
        let map = ReadOnlyMap::open(&file.path).map_err(|e| Error::io(&file.path, e))?;
        let data_len = (file.len.min(listed.size) as usize).min(map.len());
        segs.push(LogSeg {
            start: file.start,
            end: file.start.saturating_add(listed.size),
            rel: file.rel,
            map,
            data_len,
        });
    }
    let log = LogFiles { segs };

    // Layout of the consume queues.
    let queues = list_queues(dir, meta.as_ref().map(|m| m.consume_queue_segment_size), &mut f)?;

    let durable = match checkpoint {
        Loaded::Exact(cp) => cp.log_flushed,
        _ => 0,
    };
    let ctx = Ctx {
        clean,
        durable,
        verify,
        rebuild_from: recovery_start(&log.segs, &checkpoint, clean, verify),
    };

    // The log, with each record's unit (records → units).
    let mut qc = QueueCheck::new(&queues);
    let scan = scan_log(&log, &ctx, &mut qc, &mut f)?;
    qc.finish(&mut f);
    check_after_end(&log, &ctx, &scan, &mut f);
    if let Loaded::Exact(cp) = checkpoint
        && cp.log_flushed > scan.log_end
        && scan.end != End::Damage
    {
        f.damage(
            CHECKPOINT_FILE,
            SLOT_AT[(cp.seq % 2) as usize] as u64,
            format!(
                "durable data missing: the log ends at {} but the checkpoint recorded {} as durable",
                scan.log_end, cp.log_flushed
            ),
        );
    }

    // Units → records.
    let mut units = 0u64;
    for info in &queues.list {
        let state = qc.state_of(&info.topic, info.queue_id);
        units += walk_queue(info, state, &log, &ctx, &scan, &mut f)?;
    }

    // Entries of records the log scan found damaged are that damage, not the index's.
    let damaged_records: Vec<u64> = f
        .damage
        .iter()
        .filter(|d| d.file.starts_with(COMMIT_LOG_DIR))
        .map(|d| d.offset)
        .collect();
    let indexed = index::check_index(
        dir,
        &log,
        scan.log_end,
        &checkpoint,
        (clean, !meta_present),
        meta.as_ref().and_then(|m| m.index_layout),
        &damaged_records,
        &mut f,
    )?;

    Ok(VerifyReport {
        consistent: f.damage.is_empty(),
        clean_shutdown: clean,
        written_by: if meta_present { "mqstore" } else { "RocketMQ" },
        segments: log.segs.len(),
        records: scan.records,
        bytes: scan.bytes,
        log_start: log.segs.first().map_or(0, |s| s.start),
        log_end: scan.log_end,
        queues: queues.list.len(),
        units,
        index_files: indexed.files,
        index_entries: indexed.entries,
        damage: f.damage,
        notes: f.notes,
    })
}

/// Reads `mqstore.meta`. An unparsable file is damage (the store would not open) and the check
/// goes on with sizes from the files; a newer format version is an error.
fn read_meta(dir: &Path, f: &mut Findings) -> Result<Option<Meta>> {
    let path = dir.join(META_FILE);
    if let Ok(text) = fs::read_to_string(&path) {
        let newer = text.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            let v: u32 = v.trim().trim_matches('"').parse().ok()?;
            (k.trim() == "version" && v > FORMAT_VERSION).then_some(v)
        });
        if let Some(v) = newer {
            return Err(Error::layout(
                path,
                format!("store format version {v} is newer than this build's {FORMAT_VERSION}"),
            ));
        }
    }
    match Meta::read(dir) {
        Ok(meta) => Ok(meta),
        Err(Error::Layout { reason, .. }) => {
            f.damage(META_FILE, 0, format!("{reason}: the store will not open"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads the checkpoint page, noting what recovery will fall back on.
fn read_checkpoint(dir: &Path, meta_present: bool, f: &mut Findings) -> Result<Loaded> {
    let path = dir.join(CHECKPOINT_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            f.note(
                CHECKPOINT_FILE,
                0,
                "no checkpoint: recovery scans the log from the first segment",
            );
            return Ok(Loaded::Missing);
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut page = Vec::with_capacity(CHECKPOINT_SIZE);
    file.take(CHECKPOINT_SIZE as u64)
        .read_to_end(&mut page)
        .map_err(|e| Error::io(&path, e))?;
    if page.len() < CHECKPOINT_SIZE {
        f.note(
            CHECKPOINT_FILE,
            page.len() as u64,
            format!(
                "the checkpoint is {} bytes, shorter than its {CHECKPOINT_SIZE}-byte page",
                page.len()
            ),
        );
    }
    let loaded = Checkpoint::decode(&page);
    match loaded {
        Loaded::Missing => f.note(
            CHECKPOINT_FILE,
            0,
            "the checkpoint holds nothing readable: recovery scans the log from the first segment",
        ),
        Loaded::Timestamps(_) if meta_present => f.note(
            CHECKPOINT_FILE,
            SLOT_AT[0] as u64,
            "neither mqstore checkpoint slot is valid: recovery falls back to RocketMQ's timestamps (a slower, earlier start)",
        ),
        _ => {}
    }
    Ok(loaded)
}

// ---------------------------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sev {
    Damage,
    Note,
}

#[derive(Default)]
struct Findings {
    damage: Vec<Finding>,
    notes: Vec<Finding>,
}

impl Findings {
    fn push(&mut self, sev: Sev, file: impl Into<PathBuf>, offset: u64, what: impl Into<String>) {
        let finding = Finding {
            file: file.into(),
            offset,
            what: what.into(),
        };
        match sev {
            Sev::Damage => self.damage.push(finding),
            Sev::Note => self.notes.push(finding),
        }
    }

    fn damage(&mut self, file: impl Into<PathBuf>, offset: u64, what: impl Into<String>) {
        self.push(Sev::Damage, file, offset, what);
    }

    fn note(&mut self, file: impl Into<PathBuf>, offset: u64, what: impl Into<String>) {
        self.push(Sev::Note, file, offset, what);
    }
}

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

/// A segment file: its start (from its name), length and paths.
struct SegFile {
    start: u64,
    len: u64,
    path: PathBuf,
    rel: PathBuf,
}

/// The segment files of one directory and the segment size they should all have.
struct SegDir {
    files: Vec<SegFile>,
    size: u64,
}

/// Lists and checks the segment files of `root/rel_dir`: names, sizes, alignment, holes.
/// `configured`: the size `mqstore.meta` records; without it, the size most files have.
fn list_segment_dir(
    root: &Path,
    rel_dir: &Path,
    configured: Option<u64>,
    units: bool,
    f: &mut Findings,
) -> Result<SegDir> {
    let kind = if units { "consume-queue" } else { "commit-log" };
    let listing = list_segments(&root.join(rel_dir), configured)?;
    for extra in &listing.extras {
        match extra {
            Extra::Hidden(e) => f.note(rel_dir.join(&e.name), 0, "hidden file: ignored by the store"),
            Extra::Directory(e) => f.note(
                rel_dir.join(&e.name),
                0,
                "a directory among segment files: ignored by the store",
            ),
            Extra::Stray(e) => f.damage(
                rel_dir.join(&e.name),
                0,
                format!("stray file: {kind} segment names are 20-digit start offsets (the store will not open)"),
            ),
            Extra::EmptyLast(last) => f.note(
                rel_dir.join(&last.name),
                last.start,
                "zero-length last segment (a creation the end of the run interrupted): recovery removes it",
            ),
        }
    }
    let size = listing.size;
    if units && size > 0 && !size.is_multiple_of(UNIT_SIZE) {
        f.damage(
            rel_dir,
            0,
            format!("consume-queue file size {size} is not a multiple of {UNIT_SIZE}"),
        );
    }
    let files: Vec<SegFile> = listing
        .files
        .iter()
        .map(|file| SegFile {
            start: file.start,
            len: file.len,
            path: file.path.clone(),
            rel: rel_dir.join(&file.name),
        })
        .collect();
    for problem in &listing.problems {
        match *problem {
            Problem::WrongSize { file } => {
                let file = &files[file];
                let how = if file.len < size { "short" } else { "too long" };
                f.damage(
                    &file.rel,
                    file.start,
                    format!("{how} segment file: {} bytes, the segment size is {size}", file.len),
                );
            }
            Problem::Misaligned { file } => {
                let file = &files[file];
                f.damage(
                    &file.rel,
                    file.start,
                    format!(
                        "start offset {} is not a multiple of the segment size {size}",
                        file.start
                    ),
                );
            }
            Problem::Hole { from, to } => f.damage(
                rel_dir.join(segment_name(from)),
                from,
                format!("missing segment file: a hole from {from} to {to} between the segments around it"),
            ),
            Problem::Overlap { file, previous_end } => {
                let file = &files[file];
                f.damage(
                    &file.rel,
                    file.start,
                    format!("segment overlaps the previous one, which ends at {previous_end}"),
                );
            }
        }
    }
    Ok(SegDir { files, size })
}

/// One consume queue's directory and files.
struct QueueInfo {
    topic: String,
    queue_id: u32,
    rel_dir: PathBuf,
    files: Vec<SegFile>,
    size: u64,
}

/// Every consume queue of the store.
struct Queues {
    list: Vec<QueueInfo>,
    index: HashMap<String, HashMap<u32, usize>>,
    /// File size for queues that have no files (to name the file a missing unit belongs in).
    default_size: u64,
}

fn list_queues(root: &Path, configured: Option<u64>, f: &mut Findings) -> Result<Queues> {
    let cq_dir = PathBuf::from(CONSUME_QUEUE_DIR);
    let mut list = Vec::new();
    for topic in read_dir_sorted(&root.join(&cq_dir))?.unwrap_or_default() {
        let tdir = cq_dir.join(&topic.name);
        if !topic.is_dir {
            f.note(tdir, 0, "not a topic directory: ignored by the store");
            continue;
        }
        let invalid = if topic.utf8 {
            validate_topic(&topic.name).err().map(|e| e.to_string())
        } else {
            Some("not UTF-8".to_string())
        };
        if let Some(e) = invalid {
            f.damage(
                tdir,
                0,
                format!("the directory name is not a valid topic ({e}): the store will not open"),
            );
            continue;
        }
        for queue in read_dir_sorted(&topic.path)?.unwrap_or_default() {
            let qdir = tdir.join(&queue.name);
            if !queue.is_dir {
                f.note(qdir, 0, "not a queue directory: ignored by the store");
                continue;
            }
            let queue_id = Some(&queue.name)
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok());
            let Some(queue_id) = queue_id else {
                f.damage(qdir, 0, "the directory name is not a queue id: the store will not open");
                continue;
            };
            let listed = list_segment_dir(root, &qdir, configured, true, f)?;
            list.push(QueueInfo {
                topic: topic.name.clone(),
                queue_id,
                rel_dir: qdir,
                files: listed.files,
                size: listed.size,
            });
        }
    }
    list.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
    let mut index: HashMap<String, HashMap<u32, usize>> = HashMap::new();
    for (i, q) in list.iter().enumerate() {
        index.entry(q.topic.clone()).or_default().insert(q.queue_id, i);
    }
    let default_size = configured
        .or_else(|| list.iter().map(|q| q.size).find(|&s| s > 0))
        .filter(|&s| s > 0)
        .unwrap_or(DEFAULT_CONSUME_QUEUE_UNITS * UNIT_SIZE);
    Ok(Queues {
        list,
        index,
        default_size,
    })
}

// ---------------------------------------------------------------------------------------------
// The commit log
// ---------------------------------------------------------------------------------------------

/// A mapped commit-log segment.
struct LogSeg {
    start: u64,
    /// Its nominal end: start + the segment size.
    end: u64,
    rel: PathBuf,
    map: ReadOnlyMap,
    /// Bytes of the file that belong to the segment (fewer for a short file).
    data_len: usize,
}

impl LogSeg {
    fn data(&self) -> &[u8] {
        self.map.get(..self.data_len).unwrap_or(&[])
    }
}

struct LogFiles {
    segs: Vec<LogSeg>,
}

impl LogFiles {
    fn find(&self, offset: u64) -> Option<&LogSeg> {
        let i = self.segs.partition_point(|s| s.start <= offset);
        let seg = self.segs.get(i.checked_sub(1)?)?;
        (offset < seg.end).then_some(seg)
    }

    /// The record that starts at `offset`, checked for framing and its physical offset.
    fn record_at(&self, offset: u64) -> std::result::Result<RecordView<'_>, String> {
        let seg = self
            .find(offset)
            .ok_or_else(|| "no commit-log segment holds it".to_string())?;
        let bytes = usize::try_from(offset - seg.start)
            .ok()
            .and_then(|pos| seg.data().get(pos..))
            .ok_or_else(|| "it lies past the bytes of a short segment file".to_string())?;
        match codec::decode(bytes, Verify::Framing) {
            Ok(Frame::Record(v)) if v.physical_offset == offset => Ok(v),
            Ok(Frame::Record(v)) => Err(format!("the bytes there carry physical offset {}", v.physical_offset)),
            Ok(Frame::Blank { .. }) => Err("an end-of-segment filler is there".to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What the checks depend on.
struct Ctx {
    clean: bool,
    /// The checkpoint's exact `logFlushed` (0 without a valid mqstore slot).
    durable: u64,
    verify: Verify,
    /// Where recovery would start re-dispatching after an unclean shutdown: units of records
    /// from here on are rebuilt.
    rebuild_from: u64,
}

/// How the scan of the log ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// At an all-zero header: the end of the written log.
    Zero,
    /// At a torn tail (unclean shutdown): recovery cuts there.
    Torn,
    /// At damage with no valid record after it.
    Damage,
    /// At the end of the files.
    Files,
}

struct LogScan {
    records: u64,
    bytes: u64,
    log_end: u64,
    end: End,
    /// Index of the segment the log ends in.
    end_idx: usize,
    /// Commit-log ranges that held no valid record, in order.
    damaged: Vec<(u64, u64)>,
}

impl LogScan {
    fn damaged_range(&self, offset: u64) -> Option<(u64, u64)> {
        let i = self.damaged.partition_point(|r| r.0 <= offset);
        let r = *self.damaged.get(i.checked_sub(1)?)?;
        (offset < r.1).then_some(r)
    }
}

/// Where recovery would start its scan (and re-dispatch): the rule recovery acts on.
fn recovery_start(segs: &[LogSeg], checkpoint: &Loaded, clean: bool, verify: Verify) -> u64 {
    let last_written = segs
        .iter()
        .rposition(|s| holds_records(s.data(), s.start, verify))
        .unwrap_or(0);
    let starts: Vec<u64> = segs.iter().map(|s| s.start).collect();
    let limit = segs.last().map_or(0, |s| s.end);
    let rocketmq_store = verify != Verify::RequireRecordCrc;
    let (idx, _, _) = start::recovery_start(&starts, limit, last_written, checkpoint, clean, rocketmq_store, |i| {
        start::first_timestamp(segs[i].data())
    });
    segs.get(idx).map_or(0, |s| s.start)
}

/// Checks every record of the log from the first segment, and each record's unit.
fn scan_log(log: &LogFiles, ctx: &Ctx, qc: &mut QueueCheck<'_>, f: &mut Findings) -> Result<LogScan> {
    let segs = &log.segs;
    let mut scan = LogScan {
        records: 0,
        bytes: 0,
        log_end: segs.first().map_or(0, |s| s.start),
        end: End::Files,
        end_idx: 0,
        damaged: Vec::new(),
    };
    let mut idx = 0usize;
    let mut offset = scan.log_end;
    let end = loop {
        let Some(seg) = segs.get(idx) else { break End::Files };
        // A hole between files (reported with the layout): go on at the next file.
        offset = offset.max(seg.start);
        if offset >= seg.end {
            idx += 1;
            continue;
        }
        let data = seg.data();
        let pos = (offset - seg.start) as usize;
        if pos >= data.len() {
            // A short file (reported with the layout): its bytes end here.
            if idx + 1 < segs.len() {
                idx += 1;
                continue;
            }
            break End::Files;
        }
        let rest = &data[pos..];
        let problem = if codec::peek_header(rest) == Some((0, 0)) {
            if offset >= ctx.durable {
                break End::Zero;
            }
            "zeros where a record should start".to_string()
        } else {
            match codec::decode(rest, ctx.verify) {
                Ok(Frame::Record(v)) if v.physical_offset == offset => {
                    scan.records += 1;
                    scan.bytes += u64::from(v.total_size);
                    qc.record(&v, offset, &seg.rel, ctx, log, f)?;
                    offset += u64::from(v.total_size);
                    continue;
                }
                Ok(Frame::Record(v)) => {
                    format!("the record carries physical offset {}", v.physical_offset)
                }
                Ok(Frame::Blank { len }) => {
                    let remaining = seg.end - offset;
                    if u64::from(len) != remaining {
                        f.damage(
                            &seg.rel,
                            offset,
                            format!(
                                "the end-of-segment filler declares {len} bytes, but {remaining} remain in the segment"
                            ),
                        );
                    }
                    offset = seg.end;
                    idx += 1;
                    continue;
                }
                Err(e) => e.to_string(),
            }
        };
        let next = next_valid_record(data, seg.start, pos, ctx.verify);
        if offset >= ctx.durable && !ctx.clean {
            // Past what the checkpoint recorded as durable, after a crash: an interrupted write.
            let follow = next.map_or(String::new(), |n| {
                format!(" (the valid record at {n} lies past the cut and is dropped with it)")
            });
            f.note(
                &seg.rel,
                offset,
                format!(
                    "torn tail after an unclean shutdown ({problem}), at or past the durable point {}: recovery will cut the log at {offset}{follow}",
                    ctx.durable
                ),
            );
            break End::Torn;
        }
        let why = if offset < ctx.durable {
            format!("damaged record below the durable point {}: {problem}", ctx.durable)
        } else {
            format!("invalid record after a clean shutdown ({problem}): recovery will cut the log here")
        };
        match next {
            Some(n) => {
                f.damage(
                    &seg.rel,
                    offset,
                    format!("{why}; the next valid record is at {n} ({} bytes skipped)", n - offset),
                );
                scan.damaged.push((offset, n));
                offset = n;
            }
            None if idx + 1 < segs.len() => {
                f.damage(
                    &seg.rel,
                    offset,
                    format!(
                        "{why}; no valid record follows in this segment, the scan goes on at the next one ({})",
                        seg.end
                    ),
                );
                scan.damaged.push((offset, seg.end));
                offset = seg.end;
                idx += 1;
            }
            None => {
                f.damage(
                    &seg.rel,
                    offset,
                    format!("{why}; no valid record follows: the log ends here"),
                );
                scan.damaged.push((offset, seg.end));
                break End::Damage;
            }
        }
    };
    scan.log_end = offset;
    scan.end = end;
    scan.end_idx = idx.min(segs.len().saturating_sub(1));
    Ok(scan)
}

/// Bytes after the end of the log: in the segment it ends in, and in segments past it.
fn check_after_end(log: &LogFiles, ctx: &Ctx, scan: &LogScan, f: &mut Findings) {
    let segs = &log.segs;
    if segs.is_empty() || scan.end == End::Files {
        return;
    }
    if scan.end == End::Zero
        && let Some(seg) = segs.get(scan.end_idx)
    {
        let pos = (scan.log_end.saturating_sub(seg.start) as usize).min(seg.data().len());
        if let Some(i) = seg.data()[pos..].iter().position(|&b| b != 0) {
            let at = scan.log_end + i as u64;
            // A recycled segment holds an earlier life's records past the end mark: old bytes,
            // none of them a record at its own position. Only such a record means data past
            // the end.
            let stale = next_valid_record(seg.data(), seg.start, pos, ctx.verify).is_none();
            if ctx.clean && stale {
                f.note(
                    &seg.rel,
                    at,
                    format!(
                        "older bytes at {at} after the end mark of the log at {} (a recycled segment's earlier life; no record of this position)",
                        scan.log_end
                    ),
                );
            } else if ctx.clean {
                f.damage(
                    &seg.rel,
                    at,
                    format!(
                        "non-zero bytes at {at} after the end of the log at {} (a clean shutdown leaves zeros there)",
                        scan.log_end
                    ),
                );
            } else {
                f.note(
                    &seg.rel,
                    at,
                    format!(
                        "non-zero bytes at {at} after the end of the log at {}: recovery will zero them",
                        scan.log_end
                    ),
                );
            }
        }
    }
    for seg in segs.iter().skip(scan.end_idx + 1) {
        match seg.data().iter().position(|&b| b != 0) {
            None => f.note(
                &seg.rel,
                seg.start,
                format!(
                    "empty segment past the end of the log at {} (prepared ahead of need)",
                    scan.log_end
                ),
            ),
            Some(i) => {
                let what = format!(
                    "segment past the end of the log at {} holds data (first non-zero byte at {}): recovery will set it aside in lost+found/",
                    scan.log_end,
                    seg.start + i as u64
                );
                let sev = if ctx.clean && scan.end == End::Zero {
                    Sev::Damage
                } else {
                    Sev::Note
                };
                f.push(sev, &seg.rel, seg.start, what);
            }
        }
    }
}

/// Reads from `pos` until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// RocketMQ's rule: prepared and rolled-back transactional records get no unit.
fn is_dispatched(sys_flag: i32) -> bool {
    let tx = sys_flag & codec::TRANSACTION_TYPE_MASK;
    tx != codec::TRANSACTION_PREPARED_TYPE && tx != codec::TRANSACTION_ROLLBACK_TYPE
}

// ---------------------------------------------------------------------------------------------
// Consume queues: records → units
// ---------------------------------------------------------------------------------------------

/// A run of consecutive queue offsets whose records have no unit.
struct MissRun {
    first_q: u64,
    last_q: u64,
    first_offset: u64,
    sev: Sev,
}

/// Per (topic, queue id) met in the log.
struct QState {
    qidx: Option<usize>,
    rel_dir: PathBuf,
    size: u64,
    /// Queue offset of the first record recovery would re-dispatch (unclean shutdown only).
    rebuild_q: Option<u64>,
    run: Option<MissRun>,
    /// Queue offsets reported as missing (inclusive ranges, in order).
    missing: Vec<(u64, u64)>,
    /// Units read ahead from the queue's files: the queue byte offset of `window[0]`.
    window_at: u64,
    window: Vec<u8>,
}

impl QState {
    fn file_for(&self, q: u64) -> (PathBuf, u64) {
        let byte = q.saturating_mul(UNIT_SIZE);
        let size = self.size.max(1);
        (self.rel_dir.join(segment_name(byte - byte % size)), byte)
    }

    fn flush_run(&mut self, f: &mut Findings) {
        let Some(run) = self.run.take() else { return };
        let (file, byte) = self.file_for(run.first_q);
        let mut what = if run.first_q == run.last_q {
            format!(
                "missing unit: the record at commit-log offset {} (queue offset {}) has no consume-queue unit",
                run.first_offset, run.first_q
            )
        } else {
            format!(
                "missing units: the records of queue offsets {}..={} ({} records, the first at commit-log offset {}) have no consume-queue unit",
                run.first_q,
                run.last_q,
                run.last_q - run.first_q + 1,
                run.first_offset
            )
        };
        if run.sev == Sev::Note {
            what.push_str("; after the unclean shutdown, recovery rebuilds units from the log");
        }
        f.push(run.sev, file, byte, what);
        self.missing.push((run.first_q, run.last_q));
    }
}

/// Checks each record of the log against its queue's unit.
struct QueueCheck<'a> {
    queues: &'a Queues,
    ids: HashMap<String, HashMap<u32, usize>>,
    states: Vec<QState>,
}

impl<'a> QueueCheck<'a> {
    fn new(queues: &'a Queues) -> Self {
        QueueCheck {
            queues,
            ids: HashMap::new(),
            states: Vec::new(),
        }
    }

    fn state_index(&mut self, topic: &str, queue_id: u32) -> usize {
        if let Some(&i) = self.ids.get(topic).and_then(|m| m.get(&queue_id)) {
            return i;
        }
        let qidx = self.queues.index.get(topic).and_then(|m| m.get(&queue_id)).copied();
        let (rel_dir, size) = match qidx.and_then(|i| self.queues.list.get(i)) {
            Some(q) if q.size > 0 => (q.rel_dir.clone(), q.size),
            Some(q) => (q.rel_dir.clone(), self.queues.default_size),
            None => (
                Path::new(CONSUME_QUEUE_DIR).join(topic).join(queue_id.to_string()),
                self.queues.default_size,
            ),
        };
        let i = self.states.len();
        self.states.push(QState {
            qidx,
            rel_dir,
            size,
            rebuild_q: None,
            run: None,
            missing: Vec::new(),
            window_at: 0,
            window: Vec::new(),
        });
        self.ids.entry(topic.to_string()).or_default().insert(queue_id, i);
        i
    }

    fn state_of(&self, topic: &str, queue_id: u32) -> Option<&QState> {
        let &i = self.ids.get(topic)?.get(&queue_id)?;
        self.states.get(i)
    }

    /// The written unit at queue offset `q` of the queue of state `si`, if any: from the
    /// state's window, refilled from the file holding `q` when `q` lies outside it.
    fn unit_at(&mut self, si: usize, q: u64) -> Result<Option<CqUnit>> {
        let queues = self.queues;
        let st = &mut self.states[si];
        let Some(info) = st.qidx.and_then(|qi| queues.list.get(qi)) else {
            return Ok(None);
        };
        let Some(byte) = q.checked_mul(UNIT_SIZE) else {
            return Ok(None);
        };
        let in_window = |st: &QState| byte >= st.window_at && byte - st.window_at + UNIT_SIZE <= st.window.len() as u64;
        if !in_window(st) {
            let i = info.files.partition_point(|file| file.start <= byte);
            let Some(file) = i.checked_sub(1).and_then(|i| info.files.get(i)) else {
                return Ok(None);
            };
            let pos = byte - file.start;
            let want = CQ_WINDOW.min(file.len.saturating_sub(pos)) as usize;
            st.window.clear();
            st.window_at = byte;
            if want >= UNIT_SIZE as usize {
                st.window.resize(want, 0);
                let read = File::open(&file.path)
                    .and_then(|f| read_full_at(&f, &mut st.window, pos))
                    .map_err(|e| Error::io(&file.path, e))?;
                st.window.truncate(read);
            }
            if !in_window(st) {
                return Ok(None);
            }
        }
        let at = (byte - st.window_at) as usize;
        Ok(st.window.get(at..at + UNIT_SIZE as usize).and_then(CqUnit::decode))
    }

    /// Checks that the valid record `v` at `offset` has its unit.
    fn record(
        &mut self,
        v: &RecordView<'_>,
        offset: u64,
        seg_rel: &Path,
        ctx: &Ctx,
        log: &LogFiles,
        f: &mut Findings,
    ) -> Result<()> {
        if !is_dispatched(v.sys_flag) {
            return Ok(());
        }
        if let Err(e) = validate_topic(v.topic) {
            f.note(
                seg_rel,
                offset,
                format!("the record's topic cannot be a queue directory ({e}): it is never dispatched"),
            );
            return Ok(());
        }
        let q = v.queue_offset;
        let si = self.state_index(v.topic, v.queue_id);
        let rebuilt = !ctx.clean && offset >= ctx.rebuild_from;
        if rebuilt && self.states[si].rebuild_q.is_none() {
            self.states[si].rebuild_q = Some(q);
        }
        let unit = self.unit_at(si, q)?;
        match unit {
            Some(u) if !u.is_blank() => {
                if u.commit_log_offset != offset
                    && let Ok(other) = log.record_at(u.commit_log_offset)
                    && other.topic == v.topic
                    && other.queue_id == v.queue_id
                    && other.queue_offset == q
                {
                    let (file, byte) = self.states[si].file_for(q);
                    f.damage(
                        file,
                        byte,
                        format!(
                            "queue offset {q} is claimed by two records: the one at {} (which the unit points at) and the one at {offset}",
                            u.commit_log_offset
                        ),
                    );
                }
                // Any other mismatch is the unit's, reported when the units are walked.
            }
            _ => {
                let sev = if rebuilt { Sev::Note } else { Sev::Damage };
                let st = &mut self.states[si];
                match &mut st.run {
                    Some(run) if run.sev == sev && run.last_q.checked_add(1) == Some(q) => run.last_q = q,
                    _ => {
                        st.flush_run(f);
                        st.run = Some(MissRun {
                            first_q: q,
                            last_q: q,
                            first_offset: offset,
                            sev,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Reports the runs of missing units still open, queue by queue.
    fn finish(&mut self, f: &mut Findings) {
        let mut order: Vec<(&String, u32, usize)> = self
            .ids
            .iter()
            .flat_map(|(t, m)| m.iter().map(move |(&q, &i)| (t, q, i)))
            .collect();
        order.sort();
        let order: Vec<usize> = order.into_iter().map(|e| e.2).collect();
        for i in order {
            let st = &mut self.states[i];
            st.flush_run(f);
            st.window = Vec::new();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Consume queues: units → records
// ---------------------------------------------------------------------------------------------

/// The kind of a unit whose record lies in a damaged range of the log: a note whatever the
/// shutdown (the damage is reported once, with the log).
const DAMAGED: &str = "damaged";

/// A run of consecutive units with the same problem, reported as one finding.
struct UnitRun {
    kind: &'static str,
    sev: Sev,
    first: u64,
    last: u64,
    detail: String,
}

struct UnitRuns<'q> {
    rel_dir: &'q Path,
    size: u64,
    run: Option<UnitRun>,
}

impl UnitRuns<'_> {
    fn add(&mut self, kind: &'static str, sev: Sev, n: u64, detail: impl FnOnce() -> String, f: &mut Findings) {
        if let Some(run) = &mut self.run
            && run.kind == kind
            && run.sev == sev
            && run.last.checked_add(1) == Some(n)
        {
            run.last = n;
            return;
        }
        self.flush(f);
        self.run = Some(UnitRun {
            kind,
            sev,
            first: n,
            last: n,
            detail: detail(),
        });
    }

    fn flush(&mut self, f: &mut Findings) {
        let Some(run) = self.run.take() else { return };
        let byte = run.first.saturating_mul(UNIT_SIZE);
        let file = self.rel_dir.join(segment_name(byte - byte % self.size.max(1)));
        let mut what = format!("unit {}: {}", run.first, run.detail);
        match run.last - run.first {
            0 => {}
            1 => {
                let _ = write!(what, " (and so does the next unit, {})", run.last);
            }
            more => {
                let _ = write!(what, " (and so do the next {more} units, to queue offset {})", run.last);
            }
        }
        if run.sev == Sev::Note && run.kind != DAMAGED {
            what.push_str("; after the unclean shutdown, recovery drops or rebuilds such units");
        }
        f.push(run.sev, file, byte, what);
    }
}

/// Walks the units of one queue; returns how many written (not blank) units it holds.
fn walk_queue(
    info: &QueueInfo,
    state: Option<&QState>,
    log: &LogFiles,
    ctx: &Ctx,
    scan: &LogScan,
    f: &mut Findings,
) -> Result<u64> {
    let size = if info.size > 0 { info.size } else { UNIT_SIZE };
    let rebuild_q = state.and_then(|s| s.rebuild_q);
    let missing: &[(u64, u64)] = state.map_or(&[], |s| &s.missing);
    let log_start = log.segs.first().map_or(0, |s| s.start);
    // Severity of a bad unit at queue offset `n`: a note when recovery will rewrite or drop it.
    let sev_at = |n: u64, past_end: bool| {
        if !ctx.clean && (past_end || rebuild_q.is_some_and(|r| n >= r)) {
            Sev::Note
        } else {
            Sev::Damage
        }
    };
    let mut runs = UnitRuns {
        rel_dir: &info.rel_dir,
        size,
        run: None,
    };
    let mut units = 0u64;
    // Unwritten units not yet known to be followed by written ones: (first, last).
    let mut hole: Option<(u64, u64)> = None;
    for file in &info.files {
        let map = ReadOnlyMap::open(&file.path).map_err(|e| Error::io(&file.path, e))?;
        for (k, chunk) in map.chunks_exact(UNIT_SIZE as usize).enumerate() {
            let n = (file.start + k as u64 * UNIT_SIZE) / UNIT_SIZE;
            let Some(u) = CqUnit::decode(chunk) else {
                hole = match hole {
                    Some((a, b)) if b.checked_add(1) == Some(n) => Some((a, n)),
                    Some(h) => {
                        report_holes(h, missing, &sev_at, &mut runs, f);
                        Some((n, n))
                    }
                    None => Some((n, n)),
                };
                continue;
            };
            if let Some(h) = hole.take() {
                report_holes(h, missing, &sev_at, &mut runs, f);
            }
            if u.is_blank() {
                continue;
            }
            units += 1;
            if u.commit_log_offset < log_start {
                continue; // a record retention removed from the log: a stale unit
            }
            let at = u.commit_log_offset;
            if at >= scan.log_end || u.end() > scan.log_end {
                runs.add(
                    "past end",
                    sev_at(n, true),
                    n,
                    || {
                        format!(
                            "points at commit-log offset {at} ({} bytes), past the end of the log at {}",
                            u.size, scan.log_end
                        )
                    },
                    f,
                );
                continue;
            }
            if let Some((a, b)) = scan.damaged_range(at) {
                runs.add(
                    DAMAGED,
                    Sev::Note,
                    n,
                    || format!("points at commit-log offset {at}, in the damaged range {a}..{b}: that message is lost"),
                    f,
                );
                continue;
            }
            let v = match log.record_at(at) {
                Ok(v) => v,
                Err(why) => {
                    runs.add(
                        "no record",
                        sev_at(n, false),
                        n,
                        || format!("points at commit-log offset {at}, where no record starts: {why}"),
                        f,
                    );
                    continue;
                }
            };
            if v.topic != info.topic || v.queue_id != info.queue_id {
                runs.add(
                    "wrong queue",
                    sev_at(n, false),
                    n,
                    || {
                        format!(
                            "points at the record at {at}, which belongs to {}/{}",
                            v.topic, v.queue_id
                        )
                    },
                    f,
                );
            } else if v.queue_offset != n {
                runs.add(
                    "wrong offset",
                    sev_at(n, false),
                    n,
                    || format!("points at the record at {at}, whose queue offset is {}", v.queue_offset),
                    f,
                );
            } else if !is_dispatched(v.sys_flag) {
                runs.add(
                    "not dispatched",
                    sev_at(n, false),
                    n,
                    || format!("points at the record at {at}, a prepared or rolled-back transaction record, which gets no unit"),
                    f,
                );
            } else if u.size != v.total_size {
                runs.add(
                    "size",
                    sev_at(n, false),
                    n,
                    || format!("says {} bytes, but the record at {at} has {}", u.size, v.total_size),
                    f,
                );
            } else if u.tags_code != v.tags_code() && v.topic != SCHEDULE_TOPIC && u.tags_code >= i64::from(i32::MIN) {
                runs.add(
                    "tags",
                    sev_at(n, false),
                    n,
                    || {
                        format!(
                            "tag code {} differs from the record's {} (record at {at})",
                            u.tags_code,
                            v.tags_code()
                        )
                    },
                    f,
                );
            }
        }
    }
    runs.flush(f);
    Ok(units)
}

/// Reports unwritten units `h` that written ones follow, except those whose records were
/// already reported as missing their unit.
fn report_holes(
    h: (u64, u64),
    missing: &[(u64, u64)],
    sev_at: &dyn Fn(u64, bool) -> Sev,
    runs: &mut UnitRuns<'_>,
    f: &mut Findings,
) {
    runs.flush(f);
    let claimed = |n: u64| {
        let i = missing.partition_point(|r| r.0 <= n);
        i.checked_sub(1).is_some_and(|i| n <= missing[i].1)
    };
    let mut n = h.0;
    loop {
        if !claimed(n) {
            runs.add(
                "hole",
                sev_at(n, false),
                n,
                || "unwritten, though later units are written, and no valid record claims its queue offset".to_string(),
                f,
            );
        }
        if n >= h.1 {
            break;
        }
        n += 1;
    }
    runs.flush(f);
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// A path as JSON text: a file name that is not UTF-8 must not fail the report.
fn lossy_path<S: serde::Serializer>(path: &Path, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

impl VerifyReport {
    /// The report as one line of JSON: every field of the report, findings as objects with
    /// `file`, `offset` and `what`.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Strings, numbers, booleans and lists of them: nothing serde_json can refuse.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shutdown = if self.clean_shutdown {
            "clean shutdown"
        } else {
            "unclean shutdown: recovery runs at the next open"
        };
        if self.consistent {
            writeln!(f, "store is consistent (written by {}, {shutdown})", self.written_by)?;
        } else {
            writeln!(
                f,
                "store is INCONSISTENT: {} damage finding{} (written by {}, {shutdown})",
                self.damage.len(),
                if self.damage.len() == 1 { "" } else { "s" },
                self.written_by
            )?;
        }
        writeln!(
            f,
            "commit log: {} segment{}, {} records ({} bytes), offsets {}..{}",
            self.segments,
            if self.segments == 1 { "" } else { "s" },
            self.records,
            self.bytes,
            self.log_start,
            self.log_end
        )?;
        writeln!(f, "consume queues: {} queues, {} units", self.queues, self.units)?;
        writeln!(f, "index: {} files, {} entries", self.index_files, self.index_entries)?;
        for d in &self.damage {
            writeln!(f, "DAMAGE {} @{}: {}", d.file.display(), d.offset, d.what)?;
        }
        for n in &self.notes {
            writeln!(f, "note {} @{}: {}", n.file.display(), n.offset, n.what)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn json_escapes_strings_and_survives_non_utf8_names() {
        let finding = |name: &[u8], what: &str| Finding {
            file: PathBuf::from(std::ffi::OsStr::from_bytes(name)),
            offset: 7,
            what: what.to_string(),
        };
        let report = VerifyReport {
            consistent: false,
            clean_shutdown: true,
            written_by: "mqstore",
            segments: 1,
            records: 2,
            bytes: 3,
            log_start: 0,
            log_end: 4,
            queues: 5,
            units: 6,
            index_files: 0,
            index_entries: 0,
            damage: vec![finding(b"commitlog/\xff\xfe", "a\"b\\c\nd\u{1}\u{e9}")],
            notes: vec![finding(b"lock", "ok")],
        };
        let json = report.to_json();
        assert_eq!(
            json,
            "{\"consistent\":false,\"clean_shutdown\":true,\"written_by\":\"mqstore\",\"segments\":1,\"records\":2,\
             \"bytes\":3,\"log_start\":0,\"log_end\":4,\"queues\":5,\"units\":6,\"index_files\":0,\"index_entries\":0,\
             \"damage\":[{\"file\":\"commitlog/\u{fffd}\u{fffd}\",\"offset\":7,\"what\":\"a\\\"b\\\\c\\nd\\u0001\u{e9}\"}],\
             \"notes\":[{\"file\":\"lock\",\"offset\":7,\"what\":\"ok\"}]}"
        );
    }
}
