//! Recovery on open: find the end of the valid log, cut what lies past it, bring the consume
//! queues in line with the log, and re-dispatch what they miss.
//!
//! One algorithm serves both a clean and an unclean last shutdown; the checkpoint decides where
//! it starts and the abort marker only how suspicious to be of the tail:
//! 1. **Start point**: the start of the segment holding `min(log_flushed, dispatched)` of a
//!    valid checkpoint (a segment start is always a record boundary, so a stale or even wrong
//!    checkpoint can only make the scan longer). With only RocketMQ's timestamps, RocketMQ's
//!    rule; with no checkpoint at all, the first segment.
//! 2. **Scan**: every record from there is checked (framing, physical offset equal to its
//!    position, CRC as the store requires).
//! 3. **Bytes that are not a record, with valid records after them** (in the same segment, or
//!    in a later segment holding data) are damage: a flipped bit, a bad sector, or a page a
//!    crash lost between pages that reached the disk. They are reported, and the scan resumes
//!    at the next valid record (found by its magic and self-referencing physical offset), so
//!    one bad spot never costs the records after it — including records acknowledged after a
//!    checkpoint that was a second old.
//! 4. **Bytes that are not a record, with nothing valid after them**, end the log: zeros are
//!    the normal end; past `log_flushed` after a crash, a torn tail; otherwise damage at the
//!    tail. The rest of that segment is zeroed and synced (so stale bytes can never be taken
//!    for records later), and whole segments past it go to `lost+found/`.
//! 5. Consume queues drop units past the end and are re-dispatched from the start point
//!    (idempotently: units present are skipped, gaps become blank units); after a crash, or
//!    when a queue has a hole, every unit from the start point on is rebuilt from the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::checkpoint::Loaded;
use crate::codec::{self, Frame, Verify};
use crate::commit_log::{CommitLog, Entry};
use crate::consume_queue::registry::Registered;
use crate::consume_queue::{ConsumeQueue, CqUnit, QueueTable};
use crate::dispatch::{Targets, UnitRepair, dispatch_range};
use crate::error::{IoContext, Result};
use crate::index::{IndexRecovery, IndexService, key_hash, tag_hash};
use crate::layout::start::{first_timestamp, first_valid_record, holds_records, recovery_start};
use crate::message::validate_topic;
use crate::segment::{Backend, Segment, Storage};

/// A range of the commit log that held no valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRange {
    /// First damaged byte (where a record should have started).
    pub start: u64,
    /// Where the next valid record (or segment) starts.
    pub end: u64,
    /// What was wrong at `start`.
    pub reason: String,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether the last run shut down cleanly (no abort marker).
    pub clean_shutdown: bool,
    /// How the start point was chosen.
    pub start_rule: &'static str,
    /// Where the scan of the log started.
    pub scanned_from: u64,
    /// Records checked.
    pub records_checked: u64,
    /// Bytes of log scanned.
    pub bytes_scanned: u64,
    /// The end of the valid log.
    pub log_end: u64,
    /// Ranges that hold no record where valid records follow, skipped over: damage below the
    /// durable point, or, past it after a crash, unsynced data the crash lost (a page, or the
    /// space of an append still being written while later ones were complete). The last entry
    /// may be damage at the end of the log that was cut (see `tail_cut`).
    pub damaged: Vec<DamagedRange>,
    /// Where a torn tail was cut, if one was.
    pub torn_tail_at: Option<u64>,
    /// Whether damage at the end of the log was cut (the last entry of `damaged`).
    pub tail_cut: bool,
    /// Durable bytes missing: the checkpoint recorded the log as durable up to `.1`, but the
    /// valid log ends at `.0` (a segment file lost or cut short).
    pub missing_durable: Option<(u64, u64)>,
    /// Segment files that lay wholly past the end, moved into `lost+found/`.
    pub truncated_segments: Vec<PathBuf>,
    /// Where re-dispatch into the consume queues started.
    pub dispatched_from: u64,
    /// What index recovery found and did (`None`: the store keeps no index).
    pub index: Option<IndexRecovery>,
    /// Where re-dispatch into the index started, if the index was behind the queues.
    pub indexed_from: Option<u64>,
    /// Queues rebuilt from the whole log: their files had lost units (the registry knew of
    /// more), or re-dispatch found units missing in the middle of them.
    pub queues_rebuilt: Vec<(String, u32)>,
    /// Units re-dispatch found different from the log's record at their queue offset
    /// (damaged, or copied from another queue), rewritten from the log.
    pub units_repaired: u64,
}

fn first_bytes_zero<S: Storage>(segment: &Segment<S>, pos: u64, len: u64) -> bool {
    let len = len.min(segment.size().saturating_sub(pos));
    segment
        .read(pos, len as usize)
        .is_none_or(|b| b.iter().all(|&x| x == 0))
}

/// Runs recovery. `clean`: the abort marker was absent. `verify`: what to check per record.
#[allow(clippy::too_many_arguments)]
pub fn recover<B: Backend>(
    log: &CommitLog<B>,
    queues: &QueueTable<B>,
    registered: Option<&Registered>,
    index: Option<&IndexService<B>>,
    clean: bool,
    checkpoint: &Loaded,
    verify: Verify,
    warm_up: bool,
    lost_found: &Path,
) -> Result<RecoveryReport> {
    // Stores RocketMQ created hold records with only the body CRC; their checkpoint has no
    // mqstore slot until mqstore writes one.
    let rocketmq_store = verify != Verify::RequireRecordCrc;
    let mut report = RecoveryReport {
        clean_shutdown: clean,
        ..Default::default()
    };
    let (end, last_ts) = {
        let segments = log.segments().snapshot();
        // Segments past the last one holding anything are empty (a roll-over or preallocation
        // that the end of the run interrupted): the scan ends at the first of them.
        // A recycled segment prepared ahead holds an earlier life's bytes, none of them a record
        // of its own position: it holds nothing. (Counting it would let the first recovery
        // reach past a gap of zeroed segment starts that the next, finding it gone, would not.)
        let last_written = segments
            .iter()
            .rposition(|seg| {
                seg.read_from(0)
                    .is_some_and(|bytes| holds_records(&bytes, seg.start(), verify))
            })
            .unwrap_or(0);
        let starts: Vec<u64> = segments.iter().map(|s| s.start()).collect();
        let limit = segments.last().map_or(0, |s| s.end());
        let (start_idx, flushed, rule) =
            recovery_start(&starts, limit, last_written, checkpoint, clean, rocketmq_store, |i| {
                segments[i].read_from(0).and_then(|bytes| first_timestamp(&bytes))
            });
        report.start_rule = rule;
        let mut offset = segments.get(start_idx).map_or(log.min_offset(), |s| s.start());
        report.scanned_from = offset;
        let mut last_ts = 0u64;
        let mut idx = start_idx;
        'scan: while let Some(segment) = segments.get(idx) {
            if offset >= segment.end() {
                idx += 1;
                continue;
            }
            let bytes = segment.read_from(offset - segment.start());
            let bad = match CommitLog::<B>::entry_in(bytes.as_deref(), segment.end(), verify) {
                Ok(Entry::Record(view)) if view.physical_offset == offset => {
                    report.records_checked += 1;
                    report.bytes_scanned += view.total_size as u64;
                    last_ts = last_ts.max(view.store_timestamp.max(0) as u64);
                    offset += view.total_size as u64;
                    continue;
                }
                Ok(Entry::Blank { next }) => {
                    report.bytes_scanned += next - offset;
                    offset = next;
                    continue;
                }
                Ok(Entry::End) => break 'scan,
                Ok(Entry::Record(view)) => {
                    format!("record at {offset} carries physical offset {}", view.physical_offset)
                }
                Err(e) => e.to_string(),
            };
            // Not a record. If valid records follow (in this segment, or later segments hold
            // data), the bytes here are damage — a flipped bit, a bad sector, or a page a crash
            // lost between pages that did reach the disk — and the scan goes on past them, so
            // one bad spot never costs the records after it. If nothing valid follows, this is
            // the end of the log: the normal end (zeros), a torn tail, or damage at the tail.
            let next = log.next_valid_record(offset, verify).or_else(|| {
                // Nothing valid left in this segment: is there a valid record in a later one?
                segments[idx + 1..=last_written.max(idx)].iter().find_map(|later| {
                    later
                        .read_from(0)
                        .and_then(|b| first_valid_record(&b, later.start(), verify))
                })
            });
            let Some(next) = next else {
                let zeros = first_bytes_zero(segment, offset - segment.start(), 8);
                if offset >= flushed && zeros {
                    // The normal end: the preallocated zeros after the last record.
                } else if offset >= flushed && !clean {
                    tracing::warn!(offset, reason = %bad, "torn tail: the log ends here");
                    report.torn_tail_at = Some(offset);
                } else {
                    tracing::error!(offset, reason = %bad, "damage at the end of the log: cut");
                    report.damaged.push(DamagedRange {
                        start: offset,
                        end: segment.end(),
                        reason: bad,
                    });
                    report.tail_cut = true;
                }
                break 'scan;
            };
            if offset >= flushed && !clean {
                // Past what was known durable, a crash leaves such gaps without any damage: a
                // page the disk lost between pages it kept, or the space of an append still
                // being written by one producer while others wrote theirs after it (nothing
                // from the gap on was acknowledged then).
                tracing::warn!(start = offset, end = next, reason = %bad, "unsynced commit-log range lost at the crash: skipped");
            } else {
                tracing::error!(start = offset, end = next, reason = %bad, "damaged commit-log range skipped");
            }
            report.damaged.push(DamagedRange {
                start: offset,
                end: next,
                reason: bad,
            });
            offset = next;
        }
        (offset, last_ts)
    };
    report.log_end = end;
    if let Loaded::Exact(cp) = checkpoint
        && cp.log_flushed > end
    {
        tracing::error!(
            end,
            durable = cp.log_flushed,
            "the log ends before what the checkpoint recorded as durable"
        );
        report.missing_durable = Some((end, cp.log_flushed));
    }
    let zero = !clean || report.torn_tail_at.is_some() || report.tail_cut;
    let cut = log.set_end(end, zero, last_ts, report.scanned_from)?;
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
    let lost = lost_queues(queues, registered, log.min_offset())?;
    for q in &lost {
        q.clear()?;
        q.set_rebuilding(true);
    }
    for q in queues.all() {
        q.truncate_to_log(end)?;
        q.correct_min_offset(log.min_offset());
    }
    // A consume queue with a hole (a lost page) is rebuilt from the record before the hole. A log
    // that ends before the checkpoint's durable point (a lost segment) discredits the checkpoint:
    // every queue is rebuilt from the start of the log.
    let mut dispatch_from = report.scanned_from.min(end);
    let mut rebuild = !clean;
    if report.missing_durable.is_some() {
        dispatch_from = log.min_offset();
        rebuild = true;
    }
    if registered.is_none() && queues.all().is_empty() && end > log.min_offset() {
        // Nothing says which queues there were, and none is left: all of them are rebuilt.
        tracing::warn!("no consume queue and no registry of them: dispatching the whole log");
        dispatch_from = log.min_offset();
    }
    let hole_start = || {
        queues
            .all()
            .iter()
            .filter_map(|q| q.hole())
            .map(|(_, resume)| log.segment_at(resume).map_or(log.min_offset(), |s| s.start()))
            .min()
    };
    if let Some(start) = hole_start() {
        dispatch_from = dispatch_from.min(start);
        rebuild = true;
    }
    if rebuild {
        // After a crash the log is the truth from the scan start: units past the checkpoint may
        // be torn, or point at records that did not survive. Drop them and dispatch again.
        // Dropping them can make an earlier file a queue's last one, holding a hole: rebuild
        // from below it as well, as if it had been found at load.
        loop {
            for q in queues.all() {
                q.truncate_from_log_offset(dispatch_from, end)?;
            }
            match hole_start() {
                Some(start) if start < dispatch_from => dispatch_from = start,
                _ => break,
            }
        }
    }
    report.dispatched_from = dispatch_from;
    let mut from = dispatch_from;
    if let Some(index) = index {
        let found = recover_index(log, index, checkpoint, clean, rocketmq_store, verify, end)?;
        let indexed_from = found.covered.max(log.min_offset());
        if indexed_from < from {
            tracing::info!(from = indexed_from, to = from, "indexing records the index is missing");
            report.indexed_from = Some(indexed_from);
            from = indexed_from;
        }
        report.index = Some(found);
    }
    if !lost.is_empty() {
        from = from.min(log.min_offset());
    }
    let skip: Vec<(u64, u64)> = report.damaged.iter().map(|d| (d.start, d.end)).collect();
    let repairs = Mutex::new(Vec::new());
    let targets = Targets {
        queues,
        queues_from: dispatch_from,
        rebuilding: !lost.is_empty(),
        index,
        repairs: Some(&repairs),
        verify: if from < report.scanned_from {
            verify
        } else {
            Verify::Framing
        },
    };
    dispatch_range(log, targets, from, end, &skip, warm_up)?;
    // A queue that re-dispatch found units missing in (a file lost from its middle or its end,
    // with no registry to tell) may hold fewer units than the log has for it: rebuilt whole.
    // So may one that re-dispatch created past offset 0 without walking the log from its start
    // (its directory lost, with no registry to tell).
    let walked_all = dispatch_from <= log.min_offset();
    let incomplete = |q: &ConsumeQueue<B>| !q.rebuilding() && (q.gap_filled() || (q.started_late() && !walked_all));
    let gapped: Vec<_> = queues.all().into_iter().filter(|q| incomplete(q)).collect();
    let mut repairs = repairs.into_inner();
    repairs.retain(|r| !incomplete(&r.queue));
    report.units_repaired = apply_repairs(repairs, log.min_offset())?;
    if !gapped.is_empty() {
        for q in &gapped {
            tracing::warn!(
                topic = q.topic(),
                queue_id = q.queue_id(),
                "consume queue missed units: rebuilding it from the log"
            );
            q.clear()?;
            q.set_rebuilding(true);
        }
        // The log may claim one queue offset twice (a record whose offset field was damaged
        // in a way its CRC cannot see): the later record wins, as the repair of a store
        // that was not rebuilt would decide, so that the next open finds nothing to change.
        let repairs = Mutex::new(Vec::new());
        let targets = Targets {
            queues,
            queues_from: end,
            rebuilding: true,
            index: None,
            repairs: Some(&repairs),
            verify,
        };
        dispatch_range(log, targets, log.min_offset(), end, &skip, warm_up)?;
        report.units_repaired += apply_repairs(repairs.into_inner(), log.min_offset())?;
    }
    for q in lost.iter().chain(&gapped) {
        q.set_rebuilding(false);
        report.queues_rebuilt.push((q.topic().to_string(), q.queue_id()));
    }
    report.queues_rebuilt.sort();
    // Units past each queue's last record are garbage the load could not tell (the next open,
    // finding a read's repair of them, would), then each queue's minimum from the units
    // recovery leaves: the one found at load looked at units truncation may have dropped.
    for q in queues.all() {
        let from = if lost.iter().chain(&gapped).any(|r| Arc::ptr_eq(r, &q)) {
            log.min_offset()
        } else {
            dispatch_from
        };
        // A record start (its framing and offset field sound) that fails its check: a record
        // the dispatch passed over as damaged. Anything else past the queue's last record is
        // garbage: a valid record is another queue's, other bytes are no record's start.
        q.drop_unconfirmed_tail(from, |u| {
            let at = u.commit_log_offset;
            at < end
                && log.segment_at(at).is_some_and(|seg| {
                    let Some(bytes) = seg.read_from(at - seg.start()) else {
                        return false;
                    };
                    let starts_record =
                        |level| matches!(codec::decode(&bytes, level), Ok(Frame::Record(v)) if v.physical_offset == at);
                    starts_record(Verify::Framing) && !starts_record(verify)
                })
        })?;
        q.recompute_min_offset(log.min_offset());
    }
    Ok(report)
}

/// The queues the registry knew that lost units since: no files left, first files gone, or
/// fewer units than were durable. Created empty where missing.
fn lost_queues<B: Backend>(
    queues: &QueueTable<B>,
    registered: Option<&Registered>,
    log_min: u64,
) -> Result<Vec<Arc<ConsumeQueue<B>>>> {
    let mut lost = Vec::new();
    for (topic, queue_id) in queues.set_aside() {
        lost.extend(queues.get(&topic, queue_id));
    }
    if registered.is_none() {
        // Nothing recorded what the queues held (a store RocketMQ or an older mqstore wrote, or
        // a registry lost with both copies). A queue whose files start past unit 0 at a record
        // above the log's start may have lost its first files: its earlier records can still
        // be in the log. Retention leaves the same picture for a sparse queue; the rebuild then
        // finds nothing more, at the price of one walk of the log.
        for q in queues.all() {
            let first = q.first_held();
            let start = (first..q.max_offset().min(first + 256)).find_map(|i| q.unit(i).filter(|u| !u.is_blank()));
            if first > 0 && start.is_some_and(|u| u.commit_log_offset > log_min) {
                tracing::warn!(
                    topic = q.topic(),
                    queue_id = q.queue_id(),
                    first,
                    "consume queue starts past its first unit with no registry: rebuilding it from the log"
                );
                lost.push(q);
            }
        }
        return Ok(lost);
    }
    for ((topic, queue_id), known) in registered.into_iter().flatten() {
        if let Err(e) = validate_topic(topic) {
            tracing::warn!(topic, error = %e, "consume-queue registry names an unusable topic: ignored");
            continue;
        }
        let held = queues.get(topic, *queue_id);
        if held.as_ref().is_some_and(|q| lost.iter().any(|l| Arc::ptr_eq(l, q))) {
            continue;
        }
        let why = match &held {
            None => "its files are missing",
            Some(q) if q.first_held() > known.first_offset => "its first files are missing",
            Some(q) if q.max_offset() < known.max_offset => "it holds fewer units than were durable",
            Some(_) => continue,
        };
        tracing::warn!(
            topic,
            queue_id,
            first = known.first_offset,
            max = known.max_offset,
            why,
            "consume queue lost units: rebuilding it from the log"
        );
        lost.push(match held {
            Some(q) => q,
            None => queues.get_or_create(topic, *queue_id)?,
        });
    }
    Ok(lost)
}

/// Rewrites the units re-dispatch found wrong, one run of neighbouring units at a time.
fn apply_repairs<B: Backend>(mut repairs: Vec<UnitRepair<B>>, log_min: u64) -> Result<u64> {
    repairs.sort_by(|a, b| {
        (a.queue.topic(), a.queue.queue_id(), a.queue_offset).cmp(&(
            b.queue.topic(),
            b.queue.queue_id(),
            b.queue_offset,
        ))
    });
    let mut repaired = 0u64;
    let mut rest = &repairs[..];
    while let Some(first) = rest.first() {
        let run = rest
            .iter()
            .enumerate()
            .take_while(|(i, r)| {
                Arc::ptr_eq(&r.queue, &first.queue) && r.queue_offset == first.queue_offset + *i as u64
            })
            .count();
        let units: Vec<CqUnit> = rest[..run].iter().map(|r| r.unit).collect();
        first.queue.rewrite_units(first.queue_offset, &units)?;
        // A unit that was wrong may have moved the queue's minimum past good records.
        first.queue.recompute_min_offset(log_min);
        repaired += run as u64;
        rest = &rest[run..];
    }
    Ok(repaired)
}

/// Index recovery: entries past the checkpoint's mark are checked against the (recovered) log,
/// and nothing past the log's end survives.
fn recover_index<B: Backend>(
    log: &CommitLog<B>,
    index: &IndexService<B>,
    checkpoint: &Loaded,
    clean: bool,
    rocketmq_store: bool,
    verify: Verify,
    end: u64,
) -> Result<IndexRecovery> {
    let (mark, trust_headers) = match checkpoint {
        Loaded::Exact(cp) => (cp.index, false),
        // A store RocketMQ shut down cleanly: its index files are whole.
        Loaded::Timestamps(_) => (Default::default(), clean && rocketmq_store),
        Loaded::Missing => (Default::default(), false),
    };
    let record = |offset: u64, hashes: &mut Vec<i32>| -> Option<i64> {
        hashes.clear();
        if offset >= end {
            return None;
        }
        let segment = log.segment_at(offset)?;
        let bytes = segment.read_from(offset - segment.start());
        match CommitLog::<B>::entry_in(bytes.as_deref(), segment.end(), verify) {
            Ok(Entry::Record(view)) if view.physical_offset == offset => {
                hashes.extend(crate::index::indexed_keys(view.properties).map(|k| key_hash(view.topic, k)));
                if let Some(tags) = view.tags() {
                    hashes.push(tag_hash(view.topic, tags));
                }
                Some(view.store_timestamp)
            }
            _ => None,
        }
    };
    let mut found = index.recover(mark, trust_headers, record)?;
    if found.covered > end {
        index.truncate_from(end)?;
        found.covered = index.covered();
    }
    if !found.files_removed.is_empty() || found.entries_cut > 0 {
        tracing::warn!(?found, "index repaired");
    }
    Ok(found)
}
