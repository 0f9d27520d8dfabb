//! Retention: the commit log's oldest segments are taken out once they expire, or once the disk
//! fills, and the consume-queue and index files wholly below the log's new start follow them
//! (RocketMQ's `CleanCommitLogService` and `CleanConsumeQueueService`).
//!
//! A pass runs every [`RetentionConfig::interval`] on its own thread, when
//! [`MessageStore::delete_expired_now`](crate::MessageStore::delete_expired_now) asks, and at once
//! when a put finds the disk full. It deletes, oldest first and at most
//! [`delete_file_batch_max`](RetentionConfig::delete_file_batch_max) segments:
//! - segments whose last write is older than the reserve time, when the hour of day is one of
//!   `delete_when`, when disk usage is above `disk_max_used_space_ratio`, or when asked;
//! - any segment, whatever its age, when disk usage is above `disk_space_clean_forcibly_ratio`
//!   (or a put found the disk full) and `clean_file_forcibly` is on.
//!
//! It stops at the first segment it keeps, so the log never has a hole; it never takes the
//! segment being written, nor one whose records are not all dispatched into consume-queue units
//! that are durable (see `Retention::durable_point`). Readers are
//! never in danger: a segment is shared (`Arc`), and a message read from it keeps its mapping
//! alive after its file is gone. A segment nobody holds goes to the recycle bin for reuse (see
//! `allocate`). Deletion order makes a crash at any point harmless: the log's first segment goes
//! first, then consume-queue files (after the queue registry records the queues' new starts),
//! then index files; whatever a crash leaves behind is below the log's start, which readers and
//! recovery already treat as removed, and the next pass takes it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::checkpoint::CheckpointFile;
use crate::clock::now_millis;
use crate::commit_log::CommitLog;
use crate::consume_queue::QueueTable;
use crate::dispatch::DispatchShared;
use crate::dispatch::write_checkpoint;
use crate::error::{Error, Result};
use crate::index::IndexService;
use crate::segment::Backend;

/// A probe of disk usage: given the store's directory, the used ratio (0.0-1.0).
pub type UsageProbe = Arc<dyn Fn(&Path) -> io::Result<f64> + Send + Sync>;

/// How a store learns how full its disk is: a ratio of used space, 0.0 to 1.0.
#[derive(Clone, Default)]
pub enum DiskUsage {
    /// The file system holding the store (`statvfs`): used / (used + available), as `df`
    /// reports it.
    #[default]
    FileSystem,
    /// A budget in bytes for the store's commit log (its segments and the recycle bin): the
    /// ratio is what they take over the budget. For a store sharing its disk with others, or a
    /// test.
    Budget(u64),
    /// Your own probe, given the store's directory.
    Custom(UsageProbe),
}

impl fmt::Debug for DiskUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskUsage::FileSystem => f.write_str("FileSystem"),
            DiskUsage::Budget(bytes) => f.debug_tuple("Budget").field(bytes).finish(),
            DiskUsage::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// When and how much retention deletes. RocketMQ's defaults; hours are UTC.
#[derive(Clone, Debug)]
#[must_use]
pub struct RetentionConfig {
    pub(crate) enabled: bool,
    pub(crate) file_reserved_time: Duration,
    pub(crate) delete_when: Vec<u8>,
    pub(crate) disk_max_used_space_ratio: f64,
    pub(crate) disk_space_clean_forcibly_ratio: f64,
    pub(crate) clean_file_forcibly: bool,
    pub(crate) delete_file_batch_max: usize,
    pub(crate) interval: Duration,
    pub(crate) first_pass_delay: Duration,
    pub(crate) recycle: usize,
    pub(crate) disk_usage: DiskUsage,
    pub(crate) reserved_space: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            file_reserved_time: Duration::from_secs(72 * 3600),
            delete_when: vec![4],
            disk_max_used_space_ratio: 0.75,
            disk_space_clean_forcibly_ratio: 0.85,
            clean_file_forcibly: true,
            delete_file_batch_max: 10,
            interval: Duration::from_secs(10),
            first_pass_delay: Duration::from_secs(60),
            recycle: 2,
            disk_usage: DiskUsage::FileSystem,
            reserved_space: 64 << 20,
        }
    }
}

impl RetentionConfig {
    /// Whether the store deletes anything by itself (default on). Off: only
    /// [`delete_expired_now`](crate::MessageStore::delete_expired_now) deletes, and a full disk
    /// makes puts fail until space is freed by hand.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// How long a segment is kept after its last write (RocketMQ's `fileReservedTime`, 72 h).
    pub fn file_reserved_time(mut self, time: Duration) -> Self {
        self.file_reserved_time = time;
        self
    }

    /// The hours of the day (0-23, UTC) at which expired segments are deleted even with the disk
    /// far from full (RocketMQ's `deleteWhen`, `"04"`). Empty: only by disk usage or when asked.
    pub fn delete_when(mut self, hours: impl IntoIterator<Item = u8>) -> Self {
        self.delete_when = hours.into_iter().collect();
        self
    }

    /// Above this disk usage, expired segments are deleted at any hour (RocketMQ's
    /// `diskMaxUsedSpaceRatio`, 0.75).
    pub fn disk_max_used_space_ratio(mut self, ratio: f64) -> Self {
        self.disk_max_used_space_ratio = ratio;
        self
    }

    /// Above this disk usage, the oldest segments are deleted whatever their age (RocketMQ's
    /// `diskSpaceCleanForciblyRatio`, 0.85), if [`clean_file_forcibly`](Self::clean_file_forcibly).
    pub fn disk_space_clean_forcibly_ratio(mut self, ratio: f64) -> Self {
        self.disk_space_clean_forcibly_ratio = ratio;
        self
    }

    /// Whether a full disk deletes segments that have not expired (RocketMQ's
    /// `cleanFileForciblyEnable`, on).
    pub fn clean_file_forcibly(mut self, on: bool) -> Self {
        self.clean_file_forcibly = on;
        self
    }

    /// Segments deleted at most per pass (RocketMQ's `deleteFileBatchMax`, 10).
    pub fn delete_file_batch_max(mut self, n: usize) -> Self {
        self.delete_file_batch_max = n;
        self
    }

    /// How often a pass runs (RocketMQ's `cleanResourceInterval`, 10 s), and how long after
    /// open the first one does (60 s).
    pub fn interval(mut self, every: Duration, first_after: Duration) -> Self {
        self.interval = every;
        self.first_pass_delay = first_after;
        self
    }

    /// How many deleted segments are kept for reuse as the next segments (default 2; 0: none).
    /// Reusing a file saves allocating its blocks and faulting in fresh pages for it.
    pub fn recycle_segments(mut self, n: usize) -> Self {
        self.recycle = n;
        self
    }

    /// Bytes of the file system kept free for the consume-queue and index files (default
    /// 64 MiB; 0: none): a new commit-log segment that would leave less is refused with
    /// `Error::DiskFull`, which wakes a forced pass. Without it the log could take the last
    /// bytes, the dispatcher could then not create a queue file, and retention, which deletes
    /// only what is dispatched, could free nothing (RocketMQ refuses puts above
    /// `diskSpaceWarningLevelRatio` for the same reason).
    pub fn reserved_space(mut self, bytes: u64) -> Self {
        self.reserved_space = bytes;
        self
    }

    /// How disk usage is measured (default: the file system).
    pub fn disk_usage(mut self, probe: DiskUsage) -> Self {
        self.disk_usage = probe;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let ratio_ok = |r: f64| (0.0..=1.0).contains(&r);
        if !ratio_ok(self.disk_max_used_space_ratio) || !ratio_ok(self.disk_space_clean_forcibly_ratio) {
            return Err(Error::InvalidConfig(
                "retention disk ratios must lie between 0 and 1".into(),
            ));
        }
        if let Some(h) = self.delete_when.iter().find(|&&h| h > 23) {
            return Err(Error::InvalidConfig(format!("retention hour {h} is not 0-23")));
        }
        if self.delete_file_batch_max == 0 {
            return Err(Error::InvalidConfig("delete_file_batch_max must be at least 1".into()));
        }
        if self.interval.is_zero() {
            return Err(Error::InvalidConfig("the retention interval must not be zero".into()));
        }
        if let DiskUsage::Budget(0) = self.disk_usage {
            return Err(Error::InvalidConfig("a disk budget of 0 bytes".into()));
        }
        Ok(())
    }
}

/// Why a pass ran, and what it did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetentionPass {
    /// When it ran (ms since the epoch).
    pub at_ms: u64,
    /// Disk usage it saw (0.0-1.0); `None` if the probe failed.
    pub disk_usage: Option<f64>,
    /// Whether segments could go whatever their age (disk above the forced ratio, or full).
    pub forced: bool,
    /// Commit-log segments deleted.
    pub segments_deleted: usize,
    /// Bytes of them.
    pub bytes_deleted: u64,
    /// How many of them went to the recycle bin.
    pub segments_recycled: usize,
    /// Consume-queue files deleted.
    pub queue_files_deleted: usize,
    /// Index files deleted.
    pub index_files_deleted: usize,
    /// The log's first offset after the pass.
    pub min_offset: u64,
}

/// What a pass may delete: `Expired` segments only, or any (`Forced`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Expired,
    Forced,
}

struct Shared {
    stop: bool,
    /// A put found the disk full: run a forced pass now.
    disk_full: bool,
}

/// The parts of a store a pass works on.
pub(crate) struct Retention<B: Backend> {
    config: RetentionConfig,
    dir: PathBuf,
    log: Arc<CommitLog<B>>,
    queues: Arc<QueueTable<B>>,
    index: Option<Arc<IndexService<B>>>,
    dispatch: Arc<DispatchShared>,
    checkpoint: Arc<CheckpointFile>,
    /// One pass at a time.
    pass: Mutex<Option<RetentionPass>>,
    /// Passes run since open.
    passes: std::sync::atomic::AtomicU64,
    shared: Mutex<Shared>,
    wake: Condvar,
}

impl<B: Backend> Retention<B> {
    pub(crate) fn new(
        config: RetentionConfig,
        dir: PathBuf,
        log: Arc<CommitLog<B>>,
        queues: Arc<QueueTable<B>>,
        index: Option<Arc<IndexService<B>>>,
        dispatch: Arc<DispatchShared>,
        checkpoint: Arc<CheckpointFile>,
    ) -> Arc<Self> {
        Arc::new(Retention {
            config,
            dir,
            log,
            queues,
            index,
            dispatch,
            checkpoint,
            pass: Mutex::new(None),
            passes: std::sync::atomic::AtomicU64::new(0),
            shared: Mutex::new(Shared {
                stop: false,
                disk_full: false,
            }),
            wake: Condvar::new(),
        })
    }

    /// Starts the thread that runs passes on the interval (and at once on a full disk).
    pub(crate) fn spawn(self: &Arc<Self>) -> io::Result<JoinHandle<()>> {
        let this = Arc::clone(self);
        std::thread::Builder::new()
            .name("mqstore-retention".into())
            .spawn(move || {
                crate::segment::lower_thread_priority();
                this.run()
            })
    }

    fn run(&self) {
        let mut wait = self.config.first_pass_delay;
        loop {
            let forced = {
                let mut shared = self.shared.lock();
                if !shared.stop && !shared.disk_full {
                    self.wake.wait_for(&mut shared, wait);
                }
                if shared.stop {
                    return;
                }
                std::mem::take(&mut shared.disk_full)
            };
            wait = self.config.interval;
            // Disabled means nothing is deleted unasked, not even on a full disk: the puts then
            // fail with `DiskFull` until the operator frees space.
            if !self.config.enabled {
                continue;
            }
            if let Err(e) = self.pass(false, forced) {
                tracing::error!(error = %e, "retention pass failed");
            }
        }
    }

    /// Stops the thread (the caller joins it).
    pub(crate) fn stop(&self) {
        self.shared.lock().stop = true;
        self.wake.notify_all();
    }

    /// A put could not get a new segment: run a forced pass now.
    pub(crate) fn disk_full(&self) {
        self.shared.lock().disk_full = true;
        self.wake.notify_all();
    }

    /// Passes run since open.
    pub(crate) fn passes(&self) -> u64 {
        self.passes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last pass that ran.
    pub(crate) fn last_pass(&self) -> Option<RetentionPass> {
        self.pass.lock().clone()
    }

    /// Disk usage as the configured probe measures it.
    pub(crate) fn disk_usage(&self) -> io::Result<f64> {
        match &self.config.disk_usage {
            DiskUsage::FileSystem => {
                let stats = fs4::statvfs(&self.dir)?;
                let used = stats.total_space().saturating_sub(stats.free_space());
                let usable = used + stats.available_space();
                Ok(if usable == 0 { 1.0 } else { used as f64 / usable as f64 })
            }
            DiskUsage::Budget(budget) => {
                let segments = self.log.segments();
                let held = segments.len() as u64 + self.log.recycled().0 as u64;
                Ok((held * segments.segment_size()) as f64 / *budget as f64)
            }
            DiskUsage::Custom(probe) => probe(&self.dir),
        }
    }

    /// Runs one pass. `asked`: delete expired segments whatever the hour (a caller asked);
    /// `disk_full`: a put found no room for a segment.
    pub(crate) fn pass(&self, asked: bool, disk_full: bool) -> Result<RetentionPass> {
        let mut last = self.pass.lock();
        let now = now_millis();
        let usage = match self.disk_usage() {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!(error = %e, "cannot measure disk usage");
                None
            }
        };
        let over = |ratio: f64| usage.is_some_and(|u| u > ratio);
        let forced =
            self.config.clean_file_forcibly && (disk_full || over(self.config.disk_space_clean_forcibly_ratio));
        let hour = ((now / 3_600_000) % 24) as u8;
        let time_up = self.config.delete_when.contains(&hour);
        let mut report = RetentionPass {
            at_ms: now,
            disk_usage: usage,
            forced,
            ..Default::default()
        };
        if forced || asked || time_up || over(self.config.disk_max_used_space_ratio) {
            let mode = if forced { Mode::Forced } else { Mode::Expired };
            self.delete_segments(mode, now, &mut report)?;
        }
        let log_min = self.log.min_offset();
        report.min_offset = log_min;
        // Also after a pass that deleted nothing: a crash may have left derived files behind.
        // A failure here (a full disk refusing the queue registry's new copy) leaves the files
        // for the next open's passes; the log's segments, which hold the space, are gone already.
        match self.queues.delete_below(log_min) {
            Ok(n) => report.queue_files_deleted = n,
            Err(e) => tracing::warn!(error = %e, "consume-queue files below the log's start kept for now"),
        }
        if let Some(index) = &self.index {
            match index.delete_below(log_min) {
                Ok(n) => report.index_files_deleted = n,
                Err(e) => tracing::warn!(error = %e, "index files below the log's start kept for now"),
            }
        }
        if report.segments_deleted > 0 || report.queue_files_deleted > 0 || report.index_files_deleted > 0 {
            tracing::info!(?report, "retention pass");
        }
        *last = Some(report.clone());
        self.passes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(report)
    }

    fn delete_segments(&self, mode: Mode, now: u64, report: &mut RetentionPass) -> Result<()> {
        let reserved = self.config.file_reserved_time.as_millis() as u64;
        let mut safe = None;
        while report.segments_deleted < self.config.delete_file_batch_max {
            let Some((first, sealed_at)) = self.log.first_segment_sealed_at() else {
                break;
            };
            let expired = sealed_at.saturating_add(reserved) <= now;
            if mode == Mode::Expired && !expired {
                break;
            }
            let safe = *safe.get_or_insert_with(|| self.durable_point());
            if first.end() > safe {
                tracing::debug!(first = first.start(), safe, "retention waits for the dispatcher");
                break;
            }
            let (start, end) = (first.start(), first.end());
            drop(first);
            // Readers are sent past the segment before it goes.
            for q in self.queues.all() {
                q.correct_min_offset(end);
            }
            let Some(retired) = self.log.retire_first(start)? else {
                break;
            };
            report.segments_deleted += 1;
            report.bytes_deleted += retired.bytes;
            report.segments_recycled += usize::from(retired.recycled);
        }
        Ok(())
    }

    /// Where the log may be deleted up to: what the consume queues hold durably. Below it every
    /// record has its unit in the queues, flushed here (a queue whose records all go keeps its
    /// offsets through its units alone, and recovery never needs a deleted record to rebuild
    /// one). Records need not be flushed to go: deleting them is the point, and under an
    /// asynchronous flush slower than the appends the flush point would hold a full disk. A
    /// checkpoint is written first, so that recovery after a crash starts past what goes; on a
    /// full disk it may be refused (the queue registry needs a new file), and recovery then
    /// starts at the log's first segment, slower but right.
    fn durable_point(&self) -> u64 {
        let written = write_checkpoint(
            &self.log,
            &self.queues,
            self.index.as_deref(),
            &self.dispatch,
            &self.checkpoint,
        );
        match written {
            // The checkpoint flushed the queues up to what it records as dispatched.
            Ok(()) => return self.checkpoint.last().dispatched,
            Err(e) => tracing::warn!(error = %e, "retention could not write a checkpoint"),
        }
        let dispatched = self.dispatch.dispatched();
        match self.queues.flush_all(0) {
            Ok(()) => dispatched,
            Err(e) => {
                tracing::warn!(error = %e, "retention could not flush the consume queues");
                self.checkpoint.last().dispatched
            }
        }
    }
}
