//! `stat`: a summary of a store directory (who wrote it, shutdown state, lock, checkpoint,
//! consumer offsets, epochs, segments, queues, index), read without opening the store. As text
//! (`Display`) or as JSON (`serde`).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{QueueFiles, ScanEnd, SegmentDir, scan_segment};
use super::{format_millis, table};
use crate::checkpoint::{CHECKPOINT_FILE, Checkpoint, Loaded};
use crate::consumer_offset::ConsumerOffsets;
use crate::layout::{ABORT_FILE, COMMIT_LOG_DIR, INDEX_DIR, LOCK_FILE, LOST_FOUND_DIR, META_FILE};
use crate::meta::Meta;
use crate::replication::epoch::EpochHistory;

/// A part of the summary that could be read, or why it could not (in JSON: the part, or
/// `{"error": "..."}`).
pub type Section<T> = std::result::Result<T, String>;

fn section<T: Serialize, S: serde::Serializer>(
    value: &Section<T>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Failed<'a> {
        error: &'a str,
    }
    match value {
        Ok(v) => v.serialize(serializer),
        Err(error) => Failed { error }.serialize(serializer),
    }
}

/// What [`stat_store`] found.
#[derive(Clone, Debug, Serialize)]
pub struct StoreStat {
    /// The store directory.
    #[serde(serialize_with = "lossy_path")]
    pub dir: PathBuf,
    /// `mqstore.meta`: `None` for a store RocketMQ wrote.
    #[serde(serialize_with = "section")]
    pub meta: Section<Option<MetaStat>>,
    /// No abort marker.
    pub clean_shutdown: bool,
    /// Whether a process holds the store's lock.
    pub lock: &'static str,
    /// The checkpoint page (`None`: no checkpoint file, or nothing in it).
    #[serde(serialize_with = "section")]
    pub checkpoint: Section<Option<CheckpointStat>>,
    /// The consumer-offset file, and each group with how many queues it has an offset for.
    #[serde(serialize_with = "section")]
    pub consumer_offsets: Section<OffsetsStat>,
    /// Replication's epoch history.
    #[serde(serialize_with = "section")]
    pub epochs: Section<Vec<EpochStat>>,
    /// The commit log.
    #[serde(serialize_with = "section")]
    pub commit_log: Section<LogStat>,
    /// The consume queues.
    #[serde(serialize_with = "section")]
    pub consume_queues: Section<Vec<QueueStat>>,
    /// The index directory; `None` without one.
    #[serde(serialize_with = "section")]
    pub index: Section<Option<DirUsage>>,
    /// Each index file's header.
    pub index_files: Vec<IndexFileStat>,
    /// What recovery and repairs set aside; `None` without `lost+found/`.
    pub lost_found: Option<DirUsage>,
    /// What could not be read, or is inconsistent: each makes `mqstore stat` exit 1.
    pub failures: Vec<String>,
}

/// `mqstore.meta`.
#[derive(Clone, Debug, Serialize)]
pub struct MetaStat {
    /// Format version.
    pub version: u32,
    /// Commit-log segment size.
    pub commit_log_segment_size: u64,
    /// Consume-queue segment size in bytes.
    pub consume_queue_segment_size: u64,
    /// Whether records must carry the whole-record CRC.
    pub record_crc_required: bool,
}

/// The checkpoint's fields.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointStat {
    /// RocketMQ's fields, by their RocketMQ names: physicMsgTimestamp, logicsMsgTimestamp,
    /// indexMsgTimestamp, masterFlushedOffset, confirmPhyOffset.
    pub rocketmq: std::collections::BTreeMap<&'static str, i64>,
    /// mqstore's slot, if one is valid.
    pub mqstore: Option<SlotStat>,
}

/// mqstore's checkpoint slot.
#[derive(Clone, Debug, Serialize)]
pub struct SlotStat {
    /// The log is durable below this offset.
    pub log_flushed: u64,
    /// Records below this offset are in the consume queues.
    pub dispatched: u64,
    /// The index mark: file, entries, and the log offset the index covers.
    pub index_file: u64,
    /// Entries in that file.
    pub index_count: u64,
    /// Log offset the index covers.
    pub index_covered: u64,
}

/// The consumer-offset file.
#[derive(Clone, Debug, Serialize)]
pub struct OffsetsStat {
    /// Its path.
    pub file: String,
    /// Each group, with how many queues it has an offset for.
    pub groups: Vec<GroupStat>,
}

/// One consumer group.
#[derive(Clone, Debug, Serialize)]
pub struct GroupStat {
    /// Its name.
    pub group: String,
    /// Queues it has an offset for.
    pub queues: usize,
}

/// One epoch of replication's history.
#[derive(Clone, Debug, Serialize)]
pub struct EpochStat {
    /// The epoch.
    pub epoch: u32,
    /// Where it starts in the log.
    pub start_offset: u64,
}

/// A directory's entries and bytes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DirUsage {
    /// Entries (one level).
    pub entries: usize,
    /// Bytes of the files (two levels).
    pub bytes: u64,
}

/// One segment file.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentStat {
    /// File name.
    pub name: String,
    /// Length.
    pub bytes: u64,
}

/// The commit log's segments.
#[derive(Clone, Debug, Serialize)]
pub struct LogStat {
    /// Each segment file.
    pub segments: Vec<SegmentStat>,
    /// Bytes on disk.
    pub bytes: u64,
    /// The first segment's start.
    pub min_offset: u64,
    /// Where the valid log ends (`None`: the last segment could not be read).
    pub end: Option<u64>,
    /// The last (active) segment's state, as one phrase.
    pub active: Option<String>,
    /// Pairs of adjacent segments that do not touch: (end, next start).
    pub discontinuities: Vec<(u64, u64)>,
    /// Entries that are not segments.
    pub other: Vec<String>,
}

/// One consume queue.
#[derive(Clone, Debug, Serialize)]
pub struct QueueStat {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// Its range, if the files could be read.
    pub range: Option<QueueRange>,
    /// Files.
    pub files: usize,
    /// Bytes on disk.
    pub bytes: u64,
    /// What is wrong with it.
    pub notes: Vec<String>,
}

/// A consume queue's range, from its files.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct QueueRange {
    /// First offset holding a unit that is not a filler.
    pub min: u64,
    /// One past the last valid unit.
    pub max: u64,
    /// Where the last unit's record ends in the log.
    pub last_record_end: Option<u64>,
}

/// One index file.
#[derive(Clone, Debug, Serialize)]
pub struct IndexFileStat {
    /// File name.
    pub name: String,
    /// Its header, or why it could not be read.
    #[serde(serialize_with = "section")]
    pub header: Section<IndexHeaderStat>,
}

/// An index file's header.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct IndexHeaderStat {
    /// Entries.
    pub entries: i32,
    /// Hash slots used.
    pub slots_used: i32,
    /// First and last commit-log offsets indexed.
    pub offsets: (i64, i64),
    /// First and last store timestamps (ms).
    pub times: (i64, i64),
}

/// RocketMQ's checkpoint fields, in the order of the page.
const ROCKETMQ_FIELDS: [&str; 5] = [
    "physicMsgTimestamp",
    "logicsMsgTimestamp",
    "indexMsgTimestamp",
    "masterFlushedOffset",
    "confirmPhyOffset",
];

fn lossy_path<S: serde::Serializer>(path: &Path, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// Summarizes the store in `dir` without opening it (no lock taken, nothing written).
pub fn stat_store(dir: &Path) -> StoreStat {
    let mut failures = Vec::new();
    let mut fail = |what: String| {
        failures.push(what.clone());
        what
    };
    let meta = match Meta::read(dir) {
        Ok(meta) => Ok(meta.map(|m| MetaStat {
            version: m.version,
            commit_log_segment_size: m.commit_log_segment_size,
            consume_queue_segment_size: m.consume_queue_segment_size,
            record_crc_required: m.record_crc_required,
        })),
        Err(e) => Err(fail(format!("{META_FILE} unreadable: {e}"))),
    };
    let checkpoint = match fs::read(dir.join(CHECKPOINT_FILE)) {
        Ok(page) => Ok(match Checkpoint::decode(&page) {
            Loaded::Missing => None,
            loaded @ (Loaded::Exact(cp) | Loaded::Timestamps(cp)) => Some(CheckpointStat {
                rocketmq: ROCKETMQ_FIELDS
                    .iter()
                    .zip([
                        cp.physic_msg_timestamp,
                        cp.logics_msg_timestamp,
                        cp.index_msg_timestamp,
                        cp.master_flushed_offset,
                        cp.confirm_phy_offset,
                    ])
                    .map(|(name, value)| (*name, value))
                    .collect(),
                mqstore: matches!(loaded, Loaded::Exact(_)).then_some(SlotStat {
                    log_flushed: cp.log_flushed,
                    dispatched: cp.dispatched,
                    index_file: cp.index.file,
                    index_count: cp.index.count,
                    index_covered: cp.index.covered,
                }),
            }),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(format!("unreadable: {e}"))),
    };
    let consumer_offsets = match ConsumerOffsets::load(dir) {
        Ok(t) => Ok(OffsetsStat {
            file: t.path().display().to_string(),
            groups: t
                .groups()
                .into_iter()
                .map(|g| GroupStat {
                    queues: t.group(&g).len(),
                    group: g,
                })
                .collect(),
        }),
        Err(e) => Err(fail(format!("unreadable: {e}"))),
    };
    let epochs = match EpochHistory::load(dir) {
        Ok(h) => Ok(h
            .entries()
            .iter()
            .map(|e| EpochStat {
                epoch: e.epoch,
                start_offset: e.start_offset,
            })
            .collect()),
        Err(e) => Err(fail(format!("unreadable: {e}"))),
    };
    let commit_log = match SegmentDir::list(&dir.join(COMMIT_LOG_DIR)) {
        Ok(log) => Ok(log_stat(&log, &mut fail)),
        Err(e) => Err(fail(format!("unreadable: {e}"))),
    };
    let log_end = commit_log.as_ref().ok().and_then(|l| l.end);
    let consume_queues = match QueueFiles::list_all(dir) {
        Ok(queues) => Ok(queues.iter().map(|q| queue_stat(q, log_end, &mut fail)).collect()),
        Err(e) => Err(fail(format!("unreadable: {e}"))),
    };
    let index = dir_usage(&dir.join(INDEX_DIR)).map_err(|e| fail(format!("unreadable: {e}")));
    let index_files = index_files(dir, &mut fail);
    StoreStat {
        dir: dir.to_path_buf(),
        meta,
        clean_shutdown: !dir.join(ABORT_FILE).exists(),
        lock: lock_state(&dir.join(LOCK_FILE)),
        checkpoint,
        consumer_offsets,
        epochs,
        commit_log,
        consume_queues,
        index,
        index_files,
        lost_found: dir_usage(&dir.join(LOST_FOUND_DIR)).ok().flatten(),
        failures,
    }
}

fn log_stat(log: &SegmentDir, fail: &mut impl FnMut(String) -> String) -> LogStat {
    let segments = log
        .segments
        .iter()
        .map(|s| {
            let name = s
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            SegmentStat { name, bytes: s.len }
        })
        .collect();
    let mut stat = LogStat {
        segments,
        bytes: log.segments.iter().map(|s| s.len).sum(),
        min_offset: log.segments.first().map_or(0, |s| s.start),
        end: Some(0),
        active: None,
        discontinuities: Vec::new(),
        other: log.other.clone(),
    };
    let Some(last) = log.segments.last() else {
        return stat;
    };
    match scan_segment(last) {
        Ok(scan) => {
            let ts = scan
                .last_store_timestamp
                .map_or(String::new(), |t| format!(", last stored {}", format_millis(t)));
            let why = match &scan.stop {
                ScanEnd::Full => "full".to_string(),
                ScanEnd::Zero => format!("written to {}", scan.end),
                ScanEnd::Invalid(e) => format!("written to {}, then invalid bytes: {e}", scan.end),
            };
            stat.active = Some(format!("active: {} record(s), {why}{ts}", scan.records));
            stat.end = Some(scan.end);
        }
        Err(e) => {
            fail(format!("cannot read {}: {e}", last.path.display()));
            stat.active = Some("unreadable".to_string());
            stat.end = None;
        }
    }
    for (end, next) in log.discontinuities() {
        fail(format!(
            "commit-log segments do not touch: one ends at {end}, the next starts at {next}"
        ));
        stat.discontinuities.push((end, next));
    }
    stat
}

fn queue_stat(q: &QueueFiles, log_end: Option<u64>, fail: &mut impl FnMut(String) -> String) -> QueueStat {
    let mut notes = Vec::new();
    let range = match q.summary() {
        Ok(s) => {
            if let (Some(e), Some(log_end)) = (s.max_physical_end, log_end)
                && e > log_end
            {
                notes.push(fail(format!(
                    "{}/{}: its last unit points past the commit log's end ({e} > {log_end})",
                    q.topic, q.queue_id
                )));
            }
            Some(QueueRange {
                min: s.min,
                max: s.max,
                last_record_end: s.max_physical_end,
            })
        }
        Err(e) => {
            notes.push(fail(format!("{}/{}: unreadable: {e}", q.topic, q.queue_id)));
            None
        }
    };
    for (end, next) in q.dir.discontinuities() {
        notes.push(fail(format!(
            "{}/{}: files do not touch: one ends at byte {end}, the next starts at {next}",
            q.topic, q.queue_id
        )));
    }
    QueueStat {
        topic: q.topic.clone(),
        queue_id: q.queue_id,
        range,
        files: q.dir.segments.len(),
        bytes: q.dir.segments.iter().map(|s| s.len).sum(),
        notes,
    }
}

/// Whether another process holds the store's lock, probed with a shared lock taken and released
/// at once (the file is opened read-only; nothing is written).
fn lock_state(path: &Path) -> &'static str {
    let Ok(file) = File::open(path) else {
        return "no lock file";
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            "free (no mqstore process has the store open)"
        }
        Err(fs::TryLockError::WouldBlock) => "held: a process has the store open now",
        Err(fs::TryLockError::Error(_)) => "unknown (cannot probe the lock)",
    }
}

/// Entries and total file bytes under `dir` (one level); `None` if it does not exist.
fn dir_usage(dir: &Path) -> io::Result<Option<DirUsage>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    let mut bytes = 0;
    for entry in entries {
        let entry = entry?;
        n += 1;
        let meta = entry.metadata()?;
        if meta.is_file() {
            bytes += meta.len();
        } else if meta.is_dir() {
            for inner in fs::read_dir(entry.path())? {
                bytes += inner?.metadata()?.len();
            }
        }
    }
    Ok(Some(DirUsage { entries: n, bytes }))
}

/// Each index file's 40-byte header (read, not mapped: nothing is changed).
fn index_files(dir: &Path, fail: &mut impl FnMut(String) -> String) -> Vec<IndexFileStat> {
    let mut names: Vec<_> = match fs::read_dir(dir.join(INDEX_DIR)) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => return Vec::new(),
    };
    names.sort();
    names
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut header = [0u8; 40];
            let header = match File::open(&path).and_then(|mut f| f.read_exact(&mut header)) {
                Ok(()) => {
                    let h = crate::index::file::Header::decode(&header);
                    Ok(IndexHeaderStat {
                        entries: h.index_count.saturating_sub(1),
                        slots_used: h.hash_slot_count,
                        offsets: (h.begin_phy_offset, h.end_phy_offset),
                        times: (h.begin_timestamp, h.end_timestamp),
                    })
                }
                Err(e) => Err(fail(format!("unreadable: {e}"))),
            };
            IndexFileStat { name, header }
        })
        .collect()
}

impl StoreStat {
    /// The summary as one line of JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Strings, numbers, booleans and lists of them: nothing serde_json can refuse.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for StoreStat {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(out, "store        {}", self.dir.display())?;
        match &self.meta {
            Ok(Some(meta)) => writeln!(
                out,
                "written by   mqstore ({META_FILE}: version {}, commit-log segment {} bytes, consume-queue segment {} bytes, record CRC {})",
                meta.version,
                meta.commit_log_segment_size,
                meta.consume_queue_segment_size,
                if meta.record_crc_required {
                    "required"
                } else {
                    "optional"
                }
            )?,
            Ok(None) => writeln!(out, "written by   RocketMQ (no {META_FILE})")?,
            Err(e) => writeln!(out, "written by   ? ({e})")?,
        }
        let shutdown = if self.clean_shutdown {
            "clean"
        } else {
            "not clean (abort marker present)"
        };
        writeln!(out, "last shutdown {shutdown}")?;
        writeln!(out, "lock         {}", self.lock)?;
        match &self.checkpoint {
            Ok(None) => writeln!(out, "checkpoint   none")?,
            Ok(Some(cp)) => {
                writeln!(out, "checkpoint")?;
                for name in ROCKETMQ_FIELDS {
                    let value = cp.rocketmq.get(name).copied().unwrap_or_default();
                    let when = if name.ends_with("Timestamp") && value > 0 {
                        format!(" ({})", format_millis(value))
                    } else {
                        String::new()
                    };
                    writeln!(out, "  {name:<20} {value}{when}")?;
                }
                match &cp.mqstore {
                    Some(slot) => {
                        writeln!(out, "  {:<20} {}", "logFlushed (mqstore)", slot.log_flushed)?;
                        writeln!(out, "  {:<20} {}", "dispatched (mqstore)", slot.dispatched)?;
                        writeln!(
                            out,
                            "  {:<20} file {} count {} covered {}",
                            "index mark (mqstore)", slot.index_file, slot.index_count, slot.index_covered
                        )?;
                    }
                    None => writeln!(out, "  mqstore slots       none valid")?,
                }
            }
            Err(e) => writeln!(out, "checkpoint   {e}")?,
        }
        match &self.consumer_offsets {
            Ok(offsets) if offsets.groups.is_empty() => writeln!(out, "consumer offsets none")?,
            Ok(offsets) => {
                writeln!(out, "consumer offsets ({})", offsets.file)?;
                for g in &offsets.groups {
                    writeln!(out, "  {:<20} {} queues", g.group, g.queues)?;
                }
            }
            Err(e) => writeln!(out, "consumer offsets {e}")?,
        }
        match &self.epochs {
            Ok(epochs) if epochs.is_empty() => {
                writeln!(out, "epochs       none (the store took no part in replication)")?
            }
            Ok(epochs) => {
                let list: Vec<String> = epochs
                    .iter()
                    .map(|e| format!("{} from {}", e.epoch, e.start_offset))
                    .collect();
                writeln!(out, "epochs       {}", list.join(", "))?;
            }
            Err(e) => writeln!(out, "epochs       {e}")?,
        }
        match &self.commit_log {
            Ok(log) if log.segments.is_empty() => writeln!(out, "commit log   no segments (empty store)")?,
            Ok(log) => {
                writeln!(
                    out,
                    "commit log   {} segment(s), {} bytes on disk, min offset {}, end {}",
                    log.segments.len(),
                    log.bytes,
                    log.min_offset,
                    log.end.map_or("?".to_string(), |e| e.to_string()),
                )?;
                for (i, SegmentStat { name, bytes: len }) in log.segments.iter().enumerate() {
                    let state = match &log.active {
                        Some(active) if i + 1 == log.segments.len() => format!("  {active}"),
                        _ => String::new(),
                    };
                    writeln!(out, "  {name}  {len:>12} bytes{state}")?;
                }
                for (end, next) in &log.discontinuities {
                    writeln!(
                        out,
                        "  commit-log segments do not touch: one ends at {end}, the next starts at {next}"
                    )?;
                }
                for other in &log.other {
                    writeln!(out, "  (not a segment: {other})")?;
                }
            }
            Err(e) => writeln!(out, "commit log   {e}")?,
        }
        match &self.consume_queues {
            Ok(queues) => {
                let mut topics: Vec<&str> = queues.iter().map(|q| q.topic.as_str()).collect();
                topics.dedup();
                writeln!(
                    out,
                    "consume queues {} topic(s), {} queue(s)",
                    topics.len(),
                    queues.len()
                )?;
                if !queues.is_empty() {
                    let mut rows = vec![[
                        "topic".to_string(),
                        "queue".to_string(),
                        "min".to_string(),
                        "max".to_string(),
                        "messages".to_string(),
                        "files".to_string(),
                        "bytes".to_string(),
                        "last record end".to_string(),
                    ]];
                    for q in queues {
                        let (min, max, count, last_end) = match q.range {
                            Some(r) => (
                                r.min.to_string(),
                                r.max.to_string(),
                                (r.max - r.min).to_string(),
                                r.last_record_end.map_or("-".to_string(), |e| e.to_string()),
                            ),
                            None => ("?".into(), "?".into(), "?".into(), "?".into()),
                        };
                        rows.push([
                            q.topic.clone(),
                            q.queue_id.to_string(),
                            min,
                            max,
                            count,
                            q.files.to_string(),
                            q.bytes.to_string(),
                            last_end,
                        ]);
                    }
                    out.write_str(&table(&rows, "  ", &[false, true, true, true, true, true, true, true]))?;
                    for note in queues.iter().flat_map(|q| &q.notes) {
                        writeln!(out, "  {note}")?;
                    }
                }
            }
            Err(e) => writeln!(out, "consume queues {e}")?,
        }
        match &self.index {
            Ok(Some(u)) => writeln!(out, "index        {} file(s), {} bytes", u.entries, u.bytes)?,
            Ok(None) => writeln!(out, "index        none")?,
            Err(e) => writeln!(out, "index        {e}")?,
        }
        for file in &self.index_files {
            match &file.header {
                Ok(h) => writeln!(
                    out,
                    "  {}  entries {}  slots used {}  offsets {}..={}  times {}..{}",
                    file.name,
                    h.entries,
                    h.slots_used,
                    h.offsets.0,
                    h.offsets.1,
                    format_millis(h.times.0),
                    format_millis(h.times.1),
                )?,
                Err(e) => writeln!(out, "  {} {e}", file.name)?,
            }
        }
        if let Some(u) = self.lost_found {
            writeln!(
                out,
                "lost+found   {} entr(ies), {} bytes set aside by recovery",
                u.entries, u.bytes
            )?;
        }
        Ok(())
    }
}
