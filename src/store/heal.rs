//! Repair of consume-queue units on the read path. Recovery checks only the units past the
//! checkpoint's mark against the log (checking every unit at every open would cost a walk of the
//! whole log); a unit damaged below it, or one copied in from another queue's file, is found by
//! the first `get` that reads it. That `get` rewrites the units from the log instead of stopping
//! at them (or refusing them at every read), then reads on.
//!
//! The search is local: the records of a run of bad units lie between the records of the good
//! units around it, so only that stretch of the log is walked.

use std::collections::HashMap;

use super::MessageStore;
use crate::consume_queue::{ConsumeQueue, CqUnit, UNIT_SIZE};
use crate::dispatch::{for_each_record, is_dispatched};
use crate::error::{Error, Result};
use crate::segment::Backend;

/// How far a repair looks back and ahead for a good unit to bound its walk of the log; past it,
/// the walk starts at the log's first record or ends at the dispatched end.
const ANCHOR_SEARCH_UNITS: u64 = 4096;

/// What a unit held in a queue's files is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Judged {
    /// Points at its own record: a bound for the walk.
    Sound(CqUnit),
    /// A filler, or a record retention removed: proves nothing either way.
    Neutral,
    /// Not a unit, or one that points past the log, at a filler or at another queue's record.
    Bad,
    /// Points at a record the log holds damaged: the log's damage, which a unit cannot repair
    /// (reads report it, `verify` too).
    DamagedRecord,
    /// Its file is not held (below the queue's first file, or past its end).
    Absent,
}

impl<B: Backend> MessageStore<B> {
    fn judge_unit(&self, cq: &ConsumeQueue<B>, queue_offset: u64, log_min: u64, log_end: u64) -> Result<Judged> {
        if queue_offset < cq.first_held() || queue_offset >= cq.max_offset() {
            return Ok(Judged::Absent);
        }
        let Some(unit) = cq.unit(queue_offset) else {
            let held = queue_offset
                .checked_mul(UNIT_SIZE)
                .and_then(|byte| cq.segments().find(byte))
                .is_some();
            return Ok(if held { Judged::Bad } else { Judged::Absent });
        };
        if unit.is_blank() {
            return Ok(Judged::Neutral);
        }
        // Before the test for a removed record: a unit that starts below the log but ends past
        // it is garbage (the next open's cut of units past the log end would drop it, and the
        // blank units a repair wrote after it with it).
        if unit.end() > log_end {
            return Ok(Judged::Bad);
        }
        if unit.commit_log_offset < log_min {
            return Ok(Judged::Neutral);
        }
        match self.read_unit(cq, queue_offset, unit.commit_log_offset, unit.size, &mut None) {
            Ok(Some(_)) => Ok(Judged::Sound(unit)),
            // Below the log's first segment after all (retention between the two looks).
            Ok(None) => Ok(Judged::Neutral),
            Err(Error::CorruptConsumeQueue { .. }) => Ok(Judged::Bad),
            Err(Error::CorruptRecord { .. }) => Ok(Judged::DamagedRecord),
            Err(e) => Err(e),
        }
    }

    /// Repairs the unit at `queue_offset` of `cq`, and the bad units around it, from the log, if
    /// it is bad. Returns the first queue offset rewritten, if any: the caller reads again from
    /// there (a blank unit it passed over may now hold a record).
    pub(super) fn heal_units(&self, cq: &ConsumeQueue<B>, queue_offset: u64) -> Result<Option<u64>> {
        // One repair at a time: readers that met the same unit find it repaired.
        let _one = self.healing.lock();
        let (log_min, log_end) = (self.log.min_offset(), self.dispatcher.shared().dispatched());
        // A unit that points at a record the log cannot decode may be wrong itself (pointing into
        // the middle of a record): the walk tells, and keeps it if no record claims its offset.
        if !matches!(
            self.judge_unit(cq, queue_offset, log_min, log_end)?,
            Judged::Bad | Judged::DamagedRecord
        ) {
            return Ok(None);
        }
        // The good units around the bad ones bound the stretch of log that holds their records.
        // Units below the queue's minimum are left as they are: no reader is sent there, and a
        // repair must not make messages appear below the minimum readers were given (the next
        // open would find the same minimum again, from the same units).
        let min = cq.min_offset();
        if queue_offset < min {
            return Ok(None);
        }
        let floor = cq
            .first_held()
            .max(min)
            .max(queue_offset.saturating_sub(ANCHOR_SEARCH_UNITS));
        let mut first = queue_offset;
        let mut from = log_min;
        let mut anchored = false;
        while first > floor {
            match self.judge_unit(cq, first - 1, log_min, log_end)? {
                Judged::Sound(unit) => {
                    from = unit.end();
                    anchored = true;
                    break;
                }
                Judged::Absent => break,
                _ => first -= 1,
            }
        }
        let ceiling = cq.max_offset().min(queue_offset.saturating_add(ANCHOR_SEARCH_UNITS));
        let mut end = queue_offset + 1;
        let mut limit = log_end;
        while end < ceiling {
            match self.judge_unit(cq, end, log_min, log_end)? {
                Judged::Sound(unit) => {
                    limit = unit.commit_log_offset;
                    break;
                }
                Judged::Absent => break,
                _ => end += 1,
            }
        }
        let mut found: HashMap<u64, CqUnit> = HashMap::new();
        for_each_record(&self.log, from, limit, &[], self.verify, |offset, view| {
            if view.topic == cq.topic()
                && view.queue_id == cq.queue_id()
                && (first..end).contains(&view.queue_offset)
                && is_dispatched(view.sys_flag)
            {
                // A queue offset claimed twice: the later record wins, as in re-dispatch.
                found.insert(
                    view.queue_offset,
                    CqUnit {
                        commit_log_offset: offset,
                        size: view.total_size,
                        tags_code: view.tags_code(),
                    },
                );
            }
            Ok(())
        })?;
        let mut units = Vec::with_capacity((end - first) as usize);
        let mut changed = false;
        for at in first..end {
            let held = cq.unit(at);
            let unit = match found.get(&at) {
                Some(unit) => *unit,
                // No record claims it. What a unit here may hold is bounded by its neighbours:
                // a filler; a record retention removed, only before every sound unit (offsets
                // grow with queue offsets); a damaged record between the neighbours' records,
                // which stays for reads to report. Anything else points at nothing of this
                // queue: a blank unit, which reads pass over.
                None => match (held, self.judge_unit(cq, at, log_min, log_end)?) {
                    (Some(unit), Judged::Neutral) if unit.is_blank() || !anchored => unit,
                    (Some(unit), Judged::DamagedRecord) if (from..limit).contains(&unit.commit_log_offset) => unit,
                    _ => CqUnit::BLANK,
                },
            };
            changed |= held != Some(unit);
            units.push(unit);
        }
        if !changed {
            return Ok(None);
        }
        tracing::warn!(
            topic = cq.topic(),
            queue_id = cq.queue_id(),
            first,
            end,
            from,
            limit,
            found = found.len(),
            "damaged consume-queue units found by a read: repaired from the commit log"
        );
        // The queue's minimum stays where readers were told it is: a first unit that became a
        // filler is passed over by reads, and the next open starts the queue past it.
        cq.rewrite_units(first, &units)?;
        Ok(Some(first))
    }
}
