//! The dispatcher: follows the commit log behind its write position and appends a
//! consume-queue unit for every record, so that `get` finds it, and its keys to the index, so
//! that `query_by_key` does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::codec::RecordView;
use crate::codec::{self, Verify};
use crate::commit_log::{CommitLog, Entry};
use crate::consume_queue::{ConsumeQueue, CqUnit, QueueCache, QueueTable, UnitPut};
use crate::error::Result;
use crate::flush::FlushTarget;
use crate::index::IndexService;
use crate::message::validate_topic;
use crate::segment::Backend;

/// While appends keep coming, a dispatcher that caught up looks again after this long without
/// being woken (RocketMQ's ReputMessageService sleeps 1 ms the same way). Waking it after every
/// put instead cost a lone async producer a futex wake-up per message, about a tenth of its time.
/// Readers that need a record dispatched wake it at once (`wait_until`).
const BUSY_POLL: Duration = Duration::from_millis(1);
/// Empty polls in a row after which the dispatcher counts as idle: it then sleeps until a put
/// wakes it, so an idle store costs no CPU.
const IDLE_AFTER_POLLS: u32 = 50;
/// Longest an idle dispatcher sleeps before looking again; bounds the dispatch lag should a
/// wake-up be missed.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How long the dispatcher waits before it retries after a failure.
const DISPATCH_RETRY: Duration = Duration::from_millis(50);

/// Whether a record with these sysFlag bits goes into a consume queue: prepared and rolled-back
/// transactional records do not (RocketMQ's rule).
pub(crate) fn is_dispatched(sys_flag: i32) -> bool {
    let tx = sys_flag & codec::TRANSACTION_TYPE_MASK;
    tx != codec::TRANSACTION_PREPARED_TYPE && tx != codec::TRANSACTION_ROLLBACK_TYPE
}

/// How far a dispatch step got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Everything below is dispatched.
    pub offset: u64,
    /// Store timestamp of the last record dispatched (0 if none).
    pub last_timestamp: u64,
}

/// Where a dispatch step sends records.
pub struct Targets<'a, B: Backend> {
    /// The consume queues.
    pub queues: &'a QueueTable<B>,
    /// Records below this offset do not go to the queues (only to the index: recovery's
    /// catch-up of an index that is behind them), except to queues being rebuilt.
    pub queues_from: u64,
    /// Whether some queue is [rebuilding](ConsumeQueue::rebuilding): records below
    /// `queues_from` are then looked at for it.
    pub rebuilding: bool,
    /// The index, if the store keeps one.
    pub index: Option<&'a IndexService<B>>,
    /// Where to report units a queue holds that differ from the log's record (recovery repairs
    /// them, in runs); `None`: rewrite each at once.
    pub repairs: Option<&'a Mutex<Vec<UnitRepair<B>>>>,
    /// What each record is checked for before it is dispatched: framing for records recovery
    /// or an append checked already, the CRC for a walk over older parts of the log (a rebuild
    /// from its start), where damage found in an earlier session is not in the skip list.
    pub verify: Verify,
}

/// A unit a queue holds that the record at its queue offset contradicts.
pub struct UnitRepair<B: Backend> {
    /// The queue.
    pub queue: Arc<ConsumeQueue<B>>,
    /// The queue offset.
    pub queue_offset: u64,
    /// The unit the log's record makes.
    pub unit: CqUnit,
}

impl<B: Backend> Clone for Targets<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Targets<'_, B> {}

impl<'a, B: Backend> Targets<'a, B> {
    /// Queues and index alike.
    pub fn all(queues: &'a QueueTable<B>, index: Option<&'a IndexService<B>>) -> Self {
        Targets {
            queues,
            queues_from: 0,
            rebuilding: false,
            index,
            repairs: None,
            verify: Verify::Framing,
        }
    }
}

/// Calls `record` for every record in `from..limit` of `log` (checked as `verify` says, and
/// for the physical offset it carries), passing over the `skip` ranges (damage recovery found; sorted).
/// A record whose framing is damaged is logged and skipped to the next valid one. Stops early
/// only at the end of what is readable, or where damage reaches the end of the active segment.
/// Returns where it stopped.
pub fn for_each_record<B: Backend>(
    log: &CommitLog<B>,
    from: u64,
    limit: u64,
    skip: &[(u64, u64)],
    verify: Verify,
    mut record: impl FnMut(u64, &RecordView<'_>) -> Result<()>,
) -> Result<u64> {
    let mut skip = skip.iter().copied().peekable();
    let mut offset = from;
    while offset < limit {
        let Some(segment) = log.segment_at(offset) else {
            break;
        };
        // Walk the records of one segment without looking it up again, and read its published
        // bytes once for all the records they hold, not once per record: the readable end and
        // the write buffer's lock sit beside what the producer reads and writes on every put,
        // and a look per record sent those lines from core to core with every message.
        let mut window: Option<(u64, crate::segment::Bytes<'_>)> = None;
        loop {
            if offset >= limit {
                break;
            }
            while skip.peek().is_some_and(|&(_, end)| end <= offset) {
                skip.next();
            }
            if let Some(&(start, end)) = skip.peek()
                && start <= offset
            {
                offset = end;
                if offset >= segment.end() {
                    break;
                }
                continue;
            }
            if window
                .as_ref()
                .is_none_or(|(at, bytes)| offset >= at + bytes.len() as u64)
            {
                // Published bytes end where a reservation ends: the window holds whole records.
                window = segment
                    .read_from_buffer_first(offset - segment.start())
                    .map(|bytes| (offset, bytes));
            }
            let bytes = window.as_ref().map(|(at, bytes)| &bytes[(offset - at) as usize..]);
            let entry = match CommitLog::<B>::entry_in(bytes, segment.end(), verify) {
                Ok(Entry::Record(view)) if view.physical_offset != offset => {
                    Err(format!("record carries physical offset {}", view.physical_offset))
                }
                Ok(entry) => Ok(entry),
                Err(e) => Err(e.to_string()),
            };
            let entry = match entry {
                Ok(entry) => entry,
                Err(reason) => {
                    let next = log.next_valid_record(offset, verify);
                    let resume = match next {
                        Some(next) => next,
                        None if segment.is_full() && segment.end() < limit => segment.end(),
                        None => return Ok(offset),
                    };
                    tracing::error!(offset, resume, %reason, "damaged record not dispatched");
                    offset = resume;
                    if resume >= segment.end() {
                        break;
                    }
                    continue;
                }
            };
            match entry {
                Entry::End => return Ok(offset),
                Entry::Blank { next } => {
                    offset = next;
                    break;
                }
                Entry::Record(view) => {
                    record(offset, &view)?;
                    offset += view.total_size as u64;
                }
            }
        }
    }
    Ok(offset)
}

/// Dispatches every record in `from..limit` of `log` into the targets, passing over the `skip`
/// ranges (see [`for_each_record`]).
pub fn dispatch_range<B: Backend>(
    log: &CommitLog<B>,
    targets: Targets<'_, B>,
    from: u64,
    limit: u64,
    skip: &[(u64, u64)],
    warm_up: bool,
) -> Result<Dispatched> {
    let mut cache = QueueCache::default();
    let (step, failure) = dispatch_range_partly(log, targets, &mut cache, from, limit, skip, warm_up);
    match failure {
        Some(e) => Err(e),
        None => Ok(step),
    }
}

/// As [`dispatch_range`], keeping what was done before a failure (a consume-queue file that
/// cannot be created on a full disk): everything below the returned offset is dispatched.
/// `cache`: the queues this thread has looked up, kept from one step to the next.
pub fn dispatch_range_partly<B: Backend>(
    log: &CommitLog<B>,
    targets: Targets<'_, B>,
    cache: &mut QueueCache<B>,
    from: u64,
    limit: u64,
    skip: &[(u64, u64)],
    warm_up: bool,
) -> (Dispatched, Option<crate::error::Error>) {
    let queues = targets.queues;
    let mut last_timestamp = 0u64;
    // Everything below the record being dispatched is done.
    let mut done = from;
    let walked = for_each_record(log, from, limit, skip, targets.verify, |offset, view| {
        done = offset;
        last_timestamp = last_timestamp.max(view.store_timestamp.max(0) as u64);
        if let Some(index) = targets.index {
            index.index_record(view);
        }
        let below = offset < targets.queues_from;
        if below && !targets.rebuilding || !is_dispatched(view.sys_flag) {
            return Ok(());
        }
        let cq = match cache.get(queues, view.topic, view.queue_id) {
            Some(q) => q,
            // Only a queue being rebuilt takes these, and it exists already.
            None if below => return Ok(()),
            None => {
                if let Err(e) = validate_topic(view.topic) {
                    tracing::error!(offset, error = %e, "record with an unusable topic name not dispatched");
                    return Ok(());
                }
                cache.get_or_create(queues, view.topic, view.queue_id)?
            }
        };
        if below && !cq.rebuilding() {
            return Ok(());
        }
        let unit = CqUnit {
            commit_log_offset: offset,
            size: view.total_size,
            tags_code: view.tags_code(),
        };
        if let UnitPut::Differs(held) = cq.put(view.queue_offset, unit, warm_up)? {
            match targets.repairs {
                Some(repairs) => repairs.lock().push(UnitRepair {
                    queue: Arc::clone(cq),
                    queue_offset: view.queue_offset,
                    unit,
                }),
                None => {
                    // The log is the truth: a unit it contradicts (copied in from another
                    // queue's file, say) is rewritten rather than left for every read to refuse.
                    tracing::warn!(
                        topic = view.topic,
                        queue_id = view.queue_id,
                        queue_offset = view.queue_offset,
                        ?held,
                        offset,
                        "consume-queue unit differs from the log: rewritten"
                    );
                    cq.rewrite_units(view.queue_offset, &[unit])?;
                }
            }
        }
        Ok(())
    });
    match walked {
        Ok(offset) => (Dispatched { offset, last_timestamp }, None),
        Err(e) => (
            Dispatched {
                offset: done,
                last_timestamp,
            },
            Some(e),
        ),
    }
}

struct State {
    stop: bool,
}

/// State shared between the dispatcher thread, producers and readers.
pub struct DispatchShared {
    /// Everything below this commit-log offset is in the consume queues.
    dispatched: AtomicU64,
    /// Store timestamp of the last record dispatched.
    dispatched_timestamp: AtomicU64,
    /// Whether the dispatcher sleeps until woken. Read by every put; on cache lines of its own,
    /// away from what each dispatch step writes (the offsets, the locks), which the producer
    /// would otherwise fetch back after every step.
    idle: CachePadded<AtomicBool>,
    /// Held for each dispatch step: a truncation takes it to keep the dispatcher out while it
    /// cuts the log and the queues.
    step: Mutex<()>,
    state: Mutex<State>,
    /// Wakes the dispatcher.
    wake: Condvar,
    /// Wakes readers waiting for progress.
    progress: Condvar,
}

impl DispatchShared {
    /// The dispatched offset.
    pub fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Acquire)
    }

    /// Store timestamp of the last record dispatched (for the checkpoint).
    pub fn dispatched_timestamp(&self) -> u64 {
        self.dispatched_timestamp.load(Ordering::Acquire)
    }

    /// Keeps the dispatcher between steps while the guard lives (to cut the log under it).
    pub(crate) fn pause(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.step.lock()
    }

    /// Moves the dispatch point back to `offset` if it is past it (the log was cut there).
    /// Call while [`pause`](Self::pause)d.
    pub(crate) fn rewind(&self, offset: u64) {
        self.dispatched.fetch_min(offset, Ordering::AcqRel);
    }

    /// Wakes the dispatcher if it sleeps (called after every append).
    pub fn wake(&self) {
        if self.idle.load(Ordering::SeqCst) {
            let _state = self.state.lock();
            self.wake.notify_one();
        }
    }

    /// Waits until everything below `offset` is dispatched; `false` on timeout or stop.
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        self.wait_until(|| self.dispatched() >= offset, timeout)
    }

    /// Waits until `done` holds, re-checking after every dispatch step; `false` on timeout or
    /// stop.
    pub fn wait_until(&self, done: impl Fn() -> bool, timeout: Duration) -> bool {
        if done() {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        loop {
            if done() {
                return true;
            }
            if state.stop {
                return false;
            }
            self.wake.notify_one();
            if self.progress.wait_until(&mut state, deadline).timed_out() {
                return done();
            }
        }
    }
}

/// The background dispatcher thread.
pub struct Dispatcher {
    shared: Arc<DispatchShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Dispatcher {
    /// Starts dispatching from `from` (everything below is already dispatched).
    pub fn start<B: Backend>(
        log: Arc<CommitLog<B>>,
        queues: Arc<QueueTable<B>>,
        index: Option<Arc<IndexService<B>>>,
        from: u64,
        from_timestamp: u64,
        warm_up: bool,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(DispatchShared {
            dispatched: AtomicU64::new(from),
            dispatched_timestamp: AtomicU64::new(from_timestamp),
            idle: CachePadded::new(AtomicBool::new(false)),
            step: Mutex::new(()),
            state: Mutex::new(State { stop: false }),
            wake: Condvar::new(),
            progress: Condvar::new(),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("mqstore-dispatch".into())
            .spawn(move || run(&s, &log, Targets::all(&queues, index.as_deref()), warm_up))?;
        Ok(Dispatcher {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<DispatchShared> {
        &self.shared
    }

    /// Stops the thread (after the current step).
    pub fn stop(&self) {
        {
            let mut state = self.shared.state.lock();
            state.stop = true;
            self.shared.wake.notify_all();
            self.shared.progress.notify_all();
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn run<B: Backend>(shared: &DispatchShared, log: &CommitLog<B>, targets: Targets<'_, B>, warm_up: bool) {
    let mut cache = QueueCache::default();
    let mut stalled_at = None;
    let mut empty_polls = 0u32;
    loop {
        let step_guard = shared.step.lock();
        let from = shared.dispatched();
        let limit = log.max_offset();
        if from < limit && stalled_at != Some((from, limit)) {
            let (step, failure) = dispatch_range_partly(log, targets, &mut cache, from, limit, &[], warm_up);
            // What was done is kept even before a failure: retention waits for it.
            if step.offset > from {
                empty_polls = 0;
                shared
                    .dispatched_timestamp
                    .fetch_max(step.last_timestamp, Ordering::AcqRel);
                shared.dispatched.store(step.offset, Ordering::Release);
                let _state = shared.state.lock();
                shared.progress.notify_all();
            }
            drop(step_guard);
            match failure {
                // Damage up to the end of the active segment: retry when the log grows.
                None if step.offset < limit => stalled_at = Some((step.offset, limit)),
                None => {}
                Some(e) => {
                    tracing::error!(error = %e, at = step.offset, "dispatch failed; retrying");
                    // Shortly, not when the log grows: the cause (a full disk) may pass first.
                    stalled_at = None;
                    let mut state = shared.state.lock();
                    if state.stop {
                        return;
                    }
                    shared.wake.wait_for(&mut state, DISPATCH_RETRY);
                }
            }
            continue;
        }
        drop(step_guard);
        let mut state = shared.state.lock();
        if state.stop {
            return;
        }
        if empty_polls < IDLE_AFTER_POLLS {
            empty_polls += 1;
            shared.wake.wait_for(&mut state, BUSY_POLL);
        } else {
            shared.idle.store(true, Ordering::SeqCst);
            if log.max_offset() == limit {
                shared.wake.wait_for(&mut state, IDLE_WAIT);
            }
            shared.idle.store(false, Ordering::SeqCst);
        }
        if log.max_offset() != limit {
            stalled_at = None;
        }
    }
}

/// Makes the consume queues durable up to what is dispatched now and records, with the log's
/// durable offset, where the next recovery may start. Reads the dispatch point before flushing,
/// so the checkpoint never claims more than is on disk.
pub(crate) fn write_checkpoint<B: Backend>(
    log: &CommitLog<B>,
    queues: &QueueTable<B>,
    index: Option<&IndexService<B>>,
    dispatch: &DispatchShared,
    checkpoint: &CheckpointFile,
) -> Result<()> {
    let dispatched = dispatch.dispatched();
    let dispatched_ts = dispatch.dispatched_timestamp();
    queues.flush_all(0)?;
    queues.save_registry(false)?;
    let last = checkpoint.last();
    let log_flushed = log.flushed_offset();
    let index_mark = match index {
        Some(index) if index.mark() != last.index => index.flush_below(log_flushed)?,
        _ => last.index,
    };
    if last.dispatched == dispatched && last.log_flushed == log_flushed && last.index == index_mark && last.seq > 0 {
        return Ok(());
    }
    checkpoint.write(Checkpoint {
        physic_msg_timestamp: log.flushed_timestamp() as i64,
        logics_msg_timestamp: dispatched_ts as i64,
        log_flushed,
        dispatched,
        index: index_mark,
        ..Default::default()
    })?;
    Ok(())
}
