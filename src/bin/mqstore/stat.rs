//! `mqstore stat DIR`: what a store directory holds, read from its files without opening the
//! store (no lock taken for long, no abort marker written, no recovery).

use mqstore::checkpoint::{CHECKPOINT_FILE, Checkpoint, Loaded};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use mqstore::layout::{ABORT_FILE, INDEX_DIR, LOCK_FILE, LOST_FOUND_DIR};
use mqstore::meta::{META_FILE, Meta};

use crate::files::{self, QueueFiles, ScanEnd, SegmentDir, format_millis};
use crate::{Failure, Outcome};

/// Arguments of `mqstore stat`.
#[derive(Debug, Args)]
pub struct StatArgs {
    /// The store directory (written by mqstore or by Apache RocketMQ). It is only read.
    pub dir: PathBuf,
}

/// Runs `stat`.
pub fn run(args: StatArgs) -> Result<Outcome, Failure> {
    let dir = args.dir;
    files::check_store_dir(&dir)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut failures = Vec::new();
    let mut fail = |what: String| {
        failures.push(what.clone());
        what
    };

    writeln!(out, "store        {}", dir.display())?;

    // Who wrote it.
    match Meta::read(&dir) {
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
        Err(e) => writeln!(out, "written by   ? ({})", fail(format!("{META_FILE} unreadable: {e}")))?,
    }

    // Shutdown state and lock.
    let shutdown = if dir.join(ABORT_FILE).exists() {
        "not clean (abort marker present)"
    } else {
        "clean"
    };
    writeln!(out, "last shutdown {shutdown}")?;
    writeln!(out, "lock         {}", lock_state(&dir.join(LOCK_FILE)))?;

    // Checkpoint.
    match read_checkpoint(&dir.join(CHECKPOINT_FILE)) {
        Ok(None) | Ok(Some(Loaded::Missing)) => writeln!(out, "checkpoint   none")?,
        Ok(Some(loaded @ (Loaded::Exact(cp) | Loaded::Timestamps(cp)))) => {
            writeln!(out, "checkpoint")?;
            let fields = [
                ("physicMsgTimestamp", cp.physic_msg_timestamp),
                ("logicsMsgTimestamp", cp.logics_msg_timestamp),
                ("indexMsgTimestamp", cp.index_msg_timestamp),
                ("masterFlushedOffset", cp.master_flushed_offset),
                ("confirmPhyOffset", cp.confirm_phy_offset),
            ];
            for (name, value) in fields {
                let when = if name.ends_with("Timestamp") && value > 0 {
                    format!(" ({})", format_millis(value))
                } else {
                    String::new()
                };
                writeln!(out, "  {name:<20} {value}{when}")?;
            }
            if let Loaded::Exact(_) = loaded {
                writeln!(out, "  {:<20} {}", "logFlushed (mqstore)", cp.log_flushed)?;
                writeln!(out, "  {:<20} {}", "dispatched (mqstore)", cp.dispatched)?;
                writeln!(
                    out,
                    "  {:<20} file {} count {} covered {}",
                    "index mark (mqstore)", cp.index.file, cp.index.count, cp.index.covered
                )?;
            } else {
                writeln!(out, "  mqstore slots       none valid")?;
            }
        }
        Err(e) => writeln!(out, "checkpoint   {}", fail(format!("unreadable: {e}")))?,
    }

    // Consumer offsets.
    match mqstore::consumer_offset::ConsumerOffsets::load(&dir) {
        Ok(t) if t.groups().is_empty() => writeln!(out, "consumer offsets none")?,
        Ok(t) => {
            writeln!(out, "consumer offsets ({})", t.path().display())?;
            for g in t.groups() {
                let entries = t.group(&g);
                writeln!(out, "  {g:<20} {} queues", entries.len())?;
            }
        }
        Err(e) => writeln!(out, "consumer offsets {}", fail(format!("unreadable: {e}")))?,
    }

    // Replication's epoch history.
    match mqstore::replication::epoch::EpochHistory::load(&dir) {
        Ok(h) if h.entries().is_empty() => writeln!(out, "epochs       none (the store took no part in replication)")?,
        Ok(h) => {
            let list: Vec<String> = h
                .entries()
                .iter()
                .map(|e| format!("{} from {}", e.epoch, e.start_offset))
                .collect();
            writeln!(out, "epochs       {}", list.join(", "))?;
        }
        Err(e) => writeln!(out, "epochs       {}", fail(format!("unreadable: {e}")))?,
    }

    // Commit log.
    let log_end = match SegmentDir::list(&files::commit_log_dir(&dir)) {
        Ok(log) => commit_log(&mut out, &log, &mut fail)?,
        Err(e) => {
            writeln!(out, "commit log   {}", fail(format!("unreadable: {e}")))?;
            None
        }
    };

    // Consume queues.
    match QueueFiles::list_all(&dir) {
        Ok(queues) => consume_queues(&mut out, &queues, log_end, &mut fail)?,
        Err(e) => writeln!(out, "consume queues {}", fail(format!("unreadable: {e}")))?,
    }

    // Index files and what recovery set aside.
    match dir_usage(&dir.join(INDEX_DIR)) {
        Ok(Some((n, bytes))) => writeln!(out, "index        {n} file(s), {bytes} bytes")?,
        Ok(None) => writeln!(out, "index        none")?,
        Err(e) => writeln!(out, "index        {}", fail(format!("unreadable: {e}")))?,
    }
    index_files(&mut out, &dir, &mut fail)?;
    if let Ok(Some((n, bytes))) = dir_usage(&dir.join(LOST_FOUND_DIR)) {
        writeln!(out, "lost+found   {n} entr(ies), {bytes} bytes set aside by recovery")?;
    }
    out.flush()?;
    drop(out);

    if failures.is_empty() {
        Ok(Outcome::Success)
    } else {
        for f in &failures {
            eprintln!("mqstore: {f}");
        }
        Ok(Outcome::FoundFailures)
    }
}

/// Prints the commit-log section; returns the log's end when it could be found.
fn commit_log(
    out: &mut impl Write,
    log: &SegmentDir,
    fail: &mut impl FnMut(String) -> String,
) -> io::Result<Option<u64>> {
    let total: u64 = log.segments.iter().map(|s| s.len).sum();
    let (Some(first), Some(last)) = (log.segments.first(), log.segments.last()) else {
        writeln!(out, "commit log   no segments (empty store)")?;
        return Ok(Some(0));
    };
    let scan = match files::scan_segment(last) {
        Ok(scan) => Some(scan),
        Err(e) => {
            fail(format!("cannot read {}: {e}", last.path.display()));
            None
        }
    };
    let end = scan.as_ref().map(|s| s.end);
    writeln!(
        out,
        "commit log   {} segment(s), {total} bytes on disk, min offset {}, end {}",
        log.segments.len(),
        first.start,
        end.map_or("?".to_string(), |e| e.to_string()),
    )?;
    for seg in &log.segments {
        let name = seg
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let state = if seg.start != last.start {
            String::new()
        } else {
            match &scan {
                None => "unreadable".to_string(),
                Some(scan) => {
                    let ts = scan
                        .last_store_timestamp
                        .map_or(String::new(), |t| format!(", last stored {}", format_millis(t)));
                    let why = match &scan.stop {
                        ScanEnd::Full => "full".to_string(),
                        ScanEnd::Zero => format!("written to {}", scan.end),
                        ScanEnd::Invalid(e) => format!("written to {}, then invalid bytes: {e}", scan.end),
                    };
                    format!("  active: {} record(s), {why}{ts}", scan.records)
                }
            }
        };
        writeln!(out, "  {name}  {:>12} bytes{state}", seg.len)?;
    }
    for (end, next) in log.discontinuities() {
        writeln!(
            out,
            "  {}",
            fail(format!(
                "commit-log segments do not touch: one ends at {end}, the next starts at {next}"
            ))
        )?;
    }
    for other in &log.other {
        writeln!(out, "  (not a segment: {other})")?;
    }
    Ok(end)
}

/// Prints the consume-queue section.
fn consume_queues(
    out: &mut impl Write,
    queues: &[QueueFiles],
    log_end: Option<u64>,
    fail: &mut impl FnMut(String) -> String,
) -> io::Result<()> {
    let mut topics: Vec<&str> = queues.iter().map(|q| q.topic.as_str()).collect();
    topics.dedup();
    writeln!(
        out,
        "consume queues {} topic(s), {} queue(s)",
        topics.len(),
        queues.len()
    )?;
    if queues.is_empty() {
        return Ok(());
    }
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
    let mut notes = Vec::new();
    for q in queues {
        let bytes: u64 = q.dir.segments.iter().map(|s| s.len).sum();
        let (min, max, count, last_end) = match q.summary() {
            Ok(s) => {
                if let (Some(e), Some(log_end)) = (s.max_physical_end, log_end)
                    && e > log_end
                {
                    notes.push(fail(format!(
                        "{}/{}: its last unit points past the commit log's end ({e} > {log_end})",
                        q.topic, q.queue_id
                    )));
                }
                (
                    s.min.to_string(),
                    s.max.to_string(),
                    (s.max - s.min).to_string(),
                    s.max_physical_end.map_or("-".to_string(), |e| e.to_string()),
                )
            }
            Err(e) => {
                notes.push(fail(format!("{}/{}: unreadable: {e}", q.topic, q.queue_id)));
                ("?".into(), "?".into(), "?".into(), "?".into())
            }
        };
        for (end, next) in q.dir.discontinuities() {
            notes.push(fail(format!(
                "{}/{}: files do not touch: one ends at byte {end}, the next starts at {next}",
                q.topic, q.queue_id
            )));
        }
        rows.push([
            q.topic.clone(),
            q.queue_id.to_string(),
            min,
            max,
            count,
            q.dir.segments.len().to_string(),
            bytes.to_string(),
            last_end,
        ]);
    }
    write_table(out, &rows, "  ", &[false, true, true, true, true, true, true, true])?;
    for note in notes {
        writeln!(out, "  {note}")?;
    }
    Ok(())
}

/// Writes rows as aligned columns (right-aligned where `right`), each line prefixed by `indent`.
pub fn write_table<const N: usize>(
    out: &mut impl Write,
    rows: &[[String; N]],
    indent: &str,
    right: &[bool; N],
) -> io::Result<()> {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::from(indent);
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if right[i] {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i + 1 < N {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
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

/// The checkpoint page, decoded; `None` without a checkpoint file.
fn read_checkpoint(path: &Path) -> io::Result<Option<Loaded>> {
    match fs::read(path) {
        Ok(page) => Ok(Some(Checkpoint::decode(&page))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Entries and total file bytes under `dir` (one level); `None` if it does not exist.
fn dir_usage(dir: &Path) -> io::Result<Option<(usize, u64)>> {
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
    Ok(Some((n, bytes)))
}

/// One line per index file, from its 40-byte header (read, not mapped: nothing is changed).
fn index_files(out: &mut impl Write, dir: &std::path::Path, fail: &mut impl FnMut(String) -> String) -> io::Result<()> {
    use std::io::Read;
    let index_dir = dir.join(mqstore::index::INDEX_DIR);
    let mut names: Vec<_> = match std::fs::read_dir(&index_dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => return Ok(()),
    };
    names.sort();
    for path in names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut header = [0u8; 40];
        let read = std::fs::File::open(&path).and_then(|mut f| f.read_exact(&mut header));
        if let Err(e) = read {
            writeln!(out, "  {name} {}", fail(format!("unreadable: {e}")))?;
            continue;
        }
        let h = mqstore::index::file::Header::decode(&header);
        writeln!(
            out,
            "  {name}  entries {}  slots used {}  offsets {}..={}  times {}..{}",
            h.index_count.saturating_sub(1),
            h.hash_slot_count,
            h.begin_phy_offset,
            h.end_phy_offset,
            format_millis(h.begin_timestamp),
            format_millis(h.end_timestamp),
        )?;
    }
    Ok(())
}
