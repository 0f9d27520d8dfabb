//! Recovery on open: find the end of the valid log, cut what lies past it, bring the consume
//! queues in line with the log, and re-dispatch what they miss.

use std::path::{Path, PathBuf};

use crate::codec::Verify;
use crate::commit_log::{CommitLog, Entry};
use crate::consume_queue::QueueTable;
use crate::dispatch::dispatch_range;
use crate::error::{IoContext, Result};
use crate::segment::Backend;

/// How many of the newest segments a crash recovery scans (RocketMQ 4.x's choice) until the
/// checkpoint-driven start point replaces it.
const CRASH_SCAN_SEGMENTS: usize = 3;

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether the last run shut down cleanly.
    pub clean_shutdown: bool,
    /// Where the scan of the log started.
    pub scanned_from: u64,
    /// Records checked.
    pub records_checked: u64,
    /// The end of the valid log.
    pub log_end: u64,
    /// Segment files that lay wholly past the end, moved into `lost+found/`.
    pub truncated_segments: Vec<PathBuf>,
    /// Where re-dispatch into the consume queues started.
    pub dispatched_from: u64,
}

/// Runs recovery. `clean`: the abort marker was absent. `verify`: what to check per record.
pub fn recover<B: Backend>(
    log: &CommitLog<B>,
    queues: &QueueTable<B>,
    clean: bool,
    verify: Verify,
    warm_up: bool,
    lost_found: &Path,
) -> Result<RecoveryReport> {
    let mut report = RecoveryReport {
        clean_shutdown: clean,
        ..Default::default()
    };
    let (end, last_ts) = {
        let segments = log.segments().snapshot();
        // Segments past the last one holding a record are empty (a roll-over or a preallocation
        // the crash interrupted): the scan starts before them and ends at the first.
        let last_written = segments
            .iter()
            .rposition(|seg| seg.read(0, 8).is_some_and(|b| b.iter().any(|&x| x != 0)))
            .unwrap_or(0);
        let start_idx = if clean {
            last_written
        } else {
            last_written.saturating_sub(CRASH_SCAN_SEGMENTS - 1)
        };
        let verify = if clean { Verify::Framing } else { verify };
        let mut offset = segments.get(start_idx).map_or(0, |s| s.start());
        report.scanned_from = offset;
        let mut last_ts = 0u64;
        'segments: for segment in segments.iter().skip(start_idx) {
            if offset != segment.start() {
                break;
            }
            loop {
                match CommitLog::<B>::entry_in(segment, offset, verify) {
                    Ok(Entry::Record(view)) if view.physical_offset == offset => {
                        report.records_checked += 1;
                        last_ts = last_ts.max(view.store_timestamp.max(0) as u64);
                        offset += view.total_size as u64;
                    }
                    Ok(Entry::Blank { next }) => {
                        offset = next;
                        continue 'segments;
                    }
                    Ok(Entry::Record(view)) => {
                        tracing::warn!(
                            offset,
                            stored = view.physical_offset,
                            "record's physical offset does not match its position: end of log"
                        );
                        break 'segments;
                    }
                    Ok(Entry::End) => break 'segments,
                    Err(e) => {
                        if !is_zero_tail(segment, offset - segment.start()) {
                            tracing::warn!(offset, error = %e, "invalid record: end of log");
                        }
                        break 'segments;
                    }
                }
            }
        }
        (offset, last_ts)
    };
    report.log_end = end;
    let cut = log.set_end(end, !clean, last_ts)?;
    if !cut.is_empty() {
        // They may be evidence of what went wrong: keep them out of the log, not deleted.
        let backend = log.segments().backend();
        backend.create_dir_all(lost_found).at(lost_found)?;
        for path in cut {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let to = lost_found.join(format!("commitlog-{name}"));
            backend.rename(&path, &to).at(&path)?;
            tracing::warn!(from = %path.display(), to = %to.display(), "segment past the end of the log set aside");
            report.truncated_segments.push(to);
        }
    }
    for q in queues.all() {
        q.truncate_to_log(end)?;
        q.correct_min_offset(log.min_offset());
    }
    // After a clean shutdown every record was dispatched: resume after the furthest unit. After
    // a crash the queues may lag anywhere behind the scan start's records: re-dispatch all that
    // was scanned (units already present are skipped).
    let dispatch_from = if clean {
        queues
            .all()
            .iter()
            .map(|q| q.max_physical())
            .max()
            .unwrap_or_else(|| log.min_offset())
            .clamp(log.min_offset(), end)
    } else {
        report.scanned_from
    };
    report.dispatched_from = dispatch_from;
    dispatch_range(log, queues, dispatch_from, end, warm_up)?;
    Ok(report)
}

/// Whether the bytes from `pos` to the end of the first page past it are zero: the normal end of
/// a log in a preallocated segment, not worth a warning.
fn is_zero_tail<S: crate::segment::Storage>(segment: &crate::segment::Segment<S>, pos: u64) -> bool {
    let len = (4096 - pos % 4096).min(segment.size().saturating_sub(pos));
    segment
        .read(pos, len as usize)
        .is_some_and(|b| b.iter().all(|&x| x == 0))
}
