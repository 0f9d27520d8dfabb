//! `MessageStore`: the facade that ties commit log, consume queues, dispatcher and flush policy
//! together, and owns the directory lock and the abort marker.

use std::cell::RefCell;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::clock::{self, millis_at};
use crate::codec::{self, RecordShape};
use crate::codec::{RecordPlan, RecordSpec, Verify};
use crate::commit_log::{Appending, CommitLog, LogOptions};
use crate::config::StoreConfig;
use crate::consume_queue::registry::Registry;
use crate::consume_queue::{ConsumeQueue, QueueTable, UNIT_SIZE};
use crate::consumer_offset::ConsumerOffsets;
use crate::dispatch::{Dispatcher, write_checkpoint};
use crate::error::{Error, IoContext, Result};
use crate::files::{open_or_create, sync_dir};
use crate::flush::{FlushTarget, Flusher, Pending};
use crate::index::file::Layout;
use crate::index::{INDEX_DIR, IndexMark, IndexService};
use crate::message::MessageSource;
use crate::message::{GetResult, GetStatus, Message, PutResult, PutStatus, StoredMessage, TagFilter, validate_topic};
use crate::meta::{FORMAT_VERSION, Meta};
use crate::recovery::{RecoveryReport, recover};
use crate::retention::{Retention, RetentionPass};
use crate::segment::SizeRule;
use crate::segment::buffer::BufferPool;
use crate::segment::{Backend, Bytes, MmapBackend, Pinned, SegmentRead, SegmentRef};
use crate::service::Periodic;
use crate::stats::{Counters, StoreStats};
use crate::unique_key::UniqueKey;
use crate::unique_key::UniqueKeys;

pub use crate::layout::{ABORT_FILE, COMMIT_LOG_DIR, CONSUME_QUEUE_DIR, LOCK_FILE, LOST_FOUND_DIR};

mod heal;
mod offsets;
mod put;
mod query;
mod replica;

pub use put::PendingPut;
use put::combined_status;

/// How long a `get` waits for a message that was put but not yet dispatched.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(1);
/// How long `close` waits for the dispatcher to catch up.
const CLOSE_DISPATCH_WAIT: Duration = Duration::from_secs(5);
/// Units scanned at most by one filtered `get` (RocketMQ's 16,000 bytes of consume queue).
const MAX_FILTER_SCAN_UNITS: u64 = 16_000 / UNIT_SIZE;

thread_local! {
    /// Per-thread scratch for encoding properties: with the record written straight into the
    /// log, a steady producer allocates nothing per message.
    static PROPS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The message store. `Send + Sync`: share it as `Arc<MessageStore>`.
///
/// ```
/// use mqstore::{GetStatus, Message, MessageStore, PutStatus, StoreConfig};
/// # fn main() -> mqstore::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let store = MessageStore::open(StoreConfig::new(dir.path()).commit_log_segment_size(1 << 20))?;
/// let r = store.put(Message::new("orders", 0, b"hello".to_vec()).with_tags("TagA"))?;
/// assert_eq!(r.status, PutStatus::Ok);
/// let g = store.get("orders", 0, r.queue_offset, 32)?;
/// assert_eq!(g.status, GetStatus::Found);
/// assert_eq!(g.messages[0].body(), b"hello");
/// store.close()?;
/// # Ok(()) }
/// ```
pub struct MessageStore<B: Backend = MmapBackend> {
    config: StoreConfig,
    dir: PathBuf,
    lock: Mutex<Option<File>>,
    log: Arc<CommitLog<B>>,
    queues: Arc<QueueTable<B>>,
    dispatcher: Dispatcher,
    flusher: Arc<dyn Flusher>,
    /// The flush policy waits for durability: a put waits for its record to be published first.
    flush_awaited: bool,
    checkpointer: Periodic,
    checkpoint: Arc<CheckpointFile>,
    verify: Verify,
    closed: AtomicBool,
    /// Shared with pending puts, which clear it when their flush fails.
    writeable: Arc<AtomicBool>,
    recovery: RecoveryReport,
    /// Replication, when the store takes part in it.
    replication: Option<replica::Replication>,
    /// The index by key, unless disabled.
    index: Option<Arc<IndexService<B>>>,
    /// Where messages without a `UNIQ_KEY` get one, unless disabled.
    unique_keys: Option<UniqueKeys>,
    /// Committed consumer offsets (`config/consumerOffset.json`).
    offsets: Arc<ConsumerOffsets>,
    offset_flusher: Periodic,
    retention: Arc<Retention<B>>,
    retention_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Puts and gets since open.
    counters: Counters,
    /// Held while a read repairs consume-queue units (see `heal`).
    healing: Mutex<()>,
}

impl MessageStore<MmapBackend> {
    /// Opens (or creates) the store in `config.dir`, recovering it as needed.
    ///
    /// ```
    /// use mqstore::{FlushPolicy, MessageStore, StoreConfig};
    /// # let dir = tempfile::tempdir()?;
    /// let config = StoreConfig::new(dir.path())
    ///     .flush_policy(FlushPolicy::sync())
    ///     .commit_log_segment_size(64 << 20);
    /// let store = MessageStore::open(config)?;
    /// assert!(store.recovery_report().clean_shutdown, "a new store starts clean");
    /// store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(config: StoreConfig) -> Result<Self> {
        Self::open_with_backend(config, MmapBackend)
    }
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = open_or_create(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

impl<B: Backend> MessageStore<B> {
    /// Opens the store with a specific segment backend (tests use one that simulates power
    /// loss).
    pub fn open_with_backend(config: StoreConfig, backend: B) -> Result<Self> {
        config.validate()?;
        let dir = config.dir.clone();
        // Every event of the open (recovery's findings, rebuilds, repairs) carries the store.
        let _open = tracing::info_span!("mqstore_open", dir = %dir.display()).entered();
        let opened_at = Instant::now();
        clock::calibrate();
        fs::create_dir_all(&dir).at(&dir)?;
        let lock = take_lock(&dir)?;
        // Before any thread starts, so that unreadable offsets fail the open with nothing to stop.
        let offsets = Arc::new(ConsumerOffsets::load(&dir)?);
        let backend = Arc::new(backend);

        let log_dir = dir.join(COMMIT_LOG_DIR);
        let cq_dir = dir.join(CONSUME_QUEUE_DIR);
        let meta = match Meta::read(&dir)? {
            Some(meta) => meta,
            None => {
                let rocketmq_written = !backend.list(&log_dir).at(&log_dir)?.is_empty()
                    || !backend.list_dirs(&cq_dir).at(&cq_dir)?.is_empty();
                let meta = if rocketmq_written {
                    // Sizes come from the files; old records carry only the body CRC.
                    let log_size = backend
                        .list(&log_dir)
                        .at(&log_dir)?
                        .iter()
                        .map(|f| f.1)
                        .find(|&len| len > 0)
                        .unwrap_or(config.commit_log_segment_size);
                    Meta {
                        version: FORMAT_VERSION,
                        commit_log_segment_size: log_size,
                        consume_queue_segment_size: config.consume_queue_units * UNIT_SIZE,
                        record_crc_required: false,
                        index_layout: None,
                    }
                } else {
                    Meta {
                        version: FORMAT_VERSION,
                        commit_log_segment_size: config.commit_log_segment_size,
                        consume_queue_segment_size: config.consume_queue_units * UNIT_SIZE,
                        record_crc_required: true,
                        index_layout: Some((config.index_slots, config.index_entries)),
                    }
                };
                if !rocketmq_written {
                    meta.write(&dir)?;
                }
                meta
            }
        };
        let rocketmq_written = !meta.record_crc_required;
        if meta.commit_log_segment_size != config.commit_log_segment_size && !rocketmq_written {
            tracing::info!(
                configured = config.commit_log_segment_size,
                on_disk = meta.commit_log_segment_size,
                "existing store keeps its commit-log segment size"
            );
        }
        let verify = if meta.record_crc_required {
            Verify::RequireRecordCrc
        } else {
            Verify::Crc
        };
        let log_rule = if rocketmq_written {
            SizeRule::FromDisk(meta.commit_log_segment_size)
        } else {
            SizeRule::Exactly(meta.commit_log_segment_size)
        };
        let pool = match config.flush.write_buffers() {
            Some(spec) => Some(Arc::new(
                BufferPool::new(
                    spec.buffers,
                    meta.commit_log_segment_size as usize,
                    spec.lock_memory,
                    spec.prefault,
                )
                .at(&log_dir)?,
            )),
            None => None,
        };
        let log = Arc::new(CommitLog::open(
            Arc::clone(&backend),
            &log_dir,
            log_rule,
            LogOptions {
                warm_up: config.warm_up_segments,
                zero_fill: config.zero_fill(),
                recycle: config.retention.recycle,
                reserved_space: config.retention.reserved_space,
            },
            pool,
        )?);
        let (registry, registered) = Registry::load(&dir);
        let queues = Arc::new(QueueTable::open(
            Arc::clone(&backend),
            cq_dir,
            meta.consume_queue_segment_size / UNIT_SIZE,
            rocketmq_written,
            Some(registry),
        )?);

        let index = if config.message_index {
            // The store keeps the shape it was created with, as it keeps its segment sizes.
            let (slots, entries) = meta.index_layout.unwrap_or((config.index_slots, config.index_entries));
            let layout = Layout { slots, entries };
            Some(Arc::new(IndexService::open(
                Arc::clone(&backend),
                dir.join(INDEX_DIR),
                layout,
            )?))
        } else {
            None
        };

        let abort = dir.join(ABORT_FILE);
        let clean = !abort.exists();
        let lost_found = crate::layout::lost_found_dir(&dir, "");
        let (checkpoint, loaded) = CheckpointFile::open(&dir)?;
        let recovery = recover(
            &log,
            &queues,
            registered.as_ref(),
            index.as_deref(),
            clean,
            &loaded,
            verify,
            config.warm_up_segments,
            &lost_found,
        )?;
        let recovered_in = opened_at.elapsed();
        if clean {
            tracing::info!(
                elapsed_ms = recovered_in.as_millis() as u64,
                start_rule = recovery.start_rule,
                scanned_from = recovery.scanned_from,
                bytes_scanned = recovery.bytes_scanned,
                log_end = recovery.log_end,
                queues_rebuilt = recovery.queues_rebuilt.len(),
                units_repaired = recovery.units_repaired,
                "store recovered after a clean shutdown"
            );
        } else {
            tracing::warn!(
                elapsed_ms = recovered_in.as_millis() as u64,
                ?recovery,
                "recovered after an unclean shutdown"
            );
        }
        // Make the recovered state durable and record it, so the next recovery starts here.
        log.flush(0).at(&log_dir)?;
        queues.flush_all(0)?;
        queues.save_registry(true)?;
        let index_mark = match &index {
            Some(index) => index.flush()?,
            None => IndexMark::default(),
        };
        let end = log.max_offset();
        let stamp = log.flushed_timestamp() as i64;
        checkpoint.write(Checkpoint {
            physic_msg_timestamp: stamp,
            logics_msg_timestamp: stamp,
            log_flushed: end,
            dispatched: end,
            index: index_mark,
            ..Default::default()
        })?;
        let checkpoint = Arc::new(checkpoint);

        File::create(&abort).and_then(|f| f.sync_all()).at(&abort)?;
        sync_dir(&dir)?;

        log.prepare_ahead();
        let flusher = config.flush.build();
        flusher.start(Arc::clone(&log) as Arc<dyn FlushTarget>).at(&log_dir)?;
        let dispatcher = Dispatcher::start(
            Arc::clone(&log),
            Arc::clone(&queues),
            index.clone(),
            end,
            stamp as u64,
            config.warm_up_segments,
        )
        .at(&dir)?;
        let checkpointer = {
            let (log, queues, checkpoint) = (Arc::clone(&log), Arc::clone(&queues), Arc::clone(&checkpoint));
            let shared = Arc::clone(dispatcher.shared());
            let index = index.clone();
            Periodic::spawn(
                "mqstore-checkpoint",
                Duration::from_millis(config.checkpoint_interval_ms),
                move || {
                    if let Err(e) = write_checkpoint(&log, &queues, index.as_deref(), &shared, &checkpoint) {
                        tracing::error!(error = %e, "checkpoint failed");
                    }
                },
            )
            .at(&dir)?
        };
        let offset_flusher = match offsets::spawn_flusher(&offsets, config.consumer_offset_flush_interval) {
            Ok(p) => p,
            Err(e) => {
                log.halt();
                checkpointer.stop();
                dispatcher.stop();
                flusher.stop();
                return Err(Error::io(&dir, e));
            }
        };

        // Leaves as a failed open should: threads stopped, the abort marker kept.
        let abandon = || {
            log.halt();
            checkpointer.stop();
            offset_flusher.stop();
            dispatcher.stop();
            flusher.stop();
        };

        let writeable = Arc::new(AtomicBool::new(true));
        let replication = if config.replicated() {
            let access = Arc::new(replica::StoreLog {
                log: Arc::clone(&log),
                queues: Arc::clone(&queues),
                index: index.clone(),
                dispatch: Arc::clone(dispatcher.shared()),
                flusher: Arc::clone(&flusher),
                checkpoint: Arc::clone(&checkpoint),
                writeable: Arc::clone(&writeable),
                verify,
                dir: dir.clone(),
            });
            let started = replica::Replication::start(access, &config, &|master| log.set_slave_of(master));
            match started {
                Ok(r) => Some(r),
                Err(e) => {
                    abandon();
                    return Err(e);
                }
            }
        } else {
            None
        };

        let retention = Retention::new(
            config.retention.clone(),
            dir.clone(),
            Arc::clone(&log),
            Arc::clone(&queues),
            index.clone(),
            Arc::clone(dispatcher.shared()),
            Arc::clone(&checkpoint),
        );
        let retention_thread = match retention.spawn() {
            Ok(t) => t,
            Err(e) => {
                if let Some(r) = &replication {
                    r.stop();
                }
                abandon();
                return Err(Error::io(&dir, e));
            }
        };
        let config_unique_keys = config.unique_keys.then(|| UniqueKeys::new(config.store_host));
        Ok(MessageStore {
            config,
            dir,
            lock: Mutex::new(Some(lock)),
            log,
            queues,
            dispatcher,
            flush_awaited: flusher.awaits_durability(),
            flusher,
            checkpointer,
            checkpoint,
            verify,
            closed: AtomicBool::new(false),
            writeable,
            recovery,
            replication,
            index,
            unique_keys: config_unique_keys,
            offsets,
            offset_flusher,
            retention,
            retention_thread: Mutex::new(Some(retention_thread)),
            counters: Counters::new(),
            healing: Mutex::new(()),
        })
    }

    fn stop_retention(&self) {
        self.retention.stop();
        if let Some(t) = self.retention_thread.lock().take() {
            let _ = t.join();
        }
    }

    /// Runs a retention pass now: deletes the segments whose reserve time has passed whatever
    /// the hour (RocketMQ's manual deletion), or any segment if the disk is above the forced
    /// ratio, at most `delete_file_batch_max` of them, with the consume-queue and index files
    /// they leave behind. Runs even with retention disabled in the configuration.
    pub fn delete_expired_now(&self) -> Result<RetentionPass> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.retention.pass(true, false)
    }

    /// The last retention pass, whoever started it (`None` before the first).
    pub fn last_retention_pass(&self) -> Option<RetentionPass> {
        self.retention.last_pass()
    }

    /// A snapshot of the store's activity and state for a dashboard: puts and gets, put
    /// latency, dispatch and flush lag, files, disk usage and the last retention pass. Cheap
    /// enough to call every second under load: the put path keeps its counters without a lock.
    pub fn stats(&self) -> StoreStats {
        let mut s = StoreStats::default();
        self.counters.snapshot_into(&mut s);
        let (min, max) = (self.log.min_offset(), self.log.max_offset());
        s.min_commit_log_offset = min;
        s.max_commit_log_offset = max;
        s.dispatch_lag_bytes = max.saturating_sub(self.dispatcher.shared().dispatched());
        s.flush_lag_bytes = max.saturating_sub(self.log.flushed_offset());
        s.flush_lag_ms = self.log.last_timestamp().saturating_sub(self.log.flushed_timestamp());
        s.commit_log_segments = self.log.segments().len();
        let queues = self.queues.all();
        s.consume_queues = queues.len();
        s.consume_queue_segments = queues.iter().map(|q| q.segment_count()).sum();
        s.disk_usage = self.retention.disk_usage().ok();
        s.disk_usage_retention_ratio = self.config.retention.disk_max_used_space_ratio;
        s.disk_usage_forced_ratio = self.config.retention.disk_space_clean_forcibly_ratio;
        s.last_retention = self.retention.last_pass();
        (s.segments_in_recycle_bin, s.segments_recycled) = self.log.recycled();
        s.segments_created = self.log.segments_created();
        s.sync_latency = self.log.sync_latency();
        s.retention_passes = self.retention.passes();
        s.replicas = self.replicas();
        s
    }

    /// Takes a [`stats`](Self::stats) snapshot and writes it to the `metrics` facade (names in
    /// [`stats::METRICS`](crate::stats::METRICS)); call it on the broker's own interval.
    pub fn publish_metrics(&self) {
        self.stats().publish_metrics();
    }

    /// Disk usage as retention measures it (0.0-1.0), with the configured probe.
    pub fn disk_usage(&self) -> Result<f64> {
        self.retention.disk_usage().at(&self.dir)
    }

    /// Retention learns of a full disk at once, so that a forced pass frees room.
    fn note_append_error(&self, e: &Error) {
        if matches!(e, Error::DiskFull { .. }) {
            self.retention.disk_full();
        }
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery did when the store opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    fn check_writeable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if let Some(why) = self.log.refusal() {
            return Err(Error::NotWriteable(why));
        }
        if !self.writeable.load(Ordering::Acquire) {
            return Err(Error::NotWriteable("a commit-log flush failed"));
        }
        Ok(())
    }

    /// Checks a message and appends its encoded properties to `props`; gives the `UNIQ_KEY` the
    /// store assigned it, if any.
    fn prepare(&self, msg: &Message, props: &mut Vec<u8>) -> Result<Option<UniqueKey>> {
        msg.validate(self.config.max_queues_per_topic, self.config.max_message_size)?;
        let unique = match &self.unique_keys {
            Some(keys) if !msg.has_unique_key() => Some(keys.next()),
            _ => None,
        };
        msg.encode_properties(props, unique.as_ref())?;
        Ok(unique)
    }

    /// The record of a prepared message, measured and ready to be written into the log.
    fn plan<'m>(&self, msg: &'m Message, props: &'m [u8], now: u64) -> Result<RecordPlan<'m>> {
        // `props` come from `Message::encode_properties`: `str`s and ASCII separators.
        Ok(RecordPlan::of_encoded_properties(RecordSpec {
            topic: &msg.topic,
            queue_id: msg.queue_id,
            flag: msg.flag,
            sys_flag: msg.sys_flag,
            born_timestamp: msg.born_timestamp.unwrap_or(now) as i64,
            born_host: msg.born_host,
            store_host: self.config.store_host,
            reconsume_times: msg.reconsume_times,
            prepared_transaction_offset: 0,
            body: &msg.body,
            properties: props,
        })?)
    }

    fn status_after(&self, end: u64) -> PutStatus {
        if self.flush_awaited {
            self.log.wait_published(end);
        }
        self.dispatcher.shared().wake();
        // Asked before the flush waits, so both run at once.
        let replicated = self.replication.as_ref().and_then(|r| r.after_append(end));
        let flushed = self.flusher.after_append(end);
        combined_status(flushed, replicated.map(|p| p.wait()), &self.writeable)
    }

    /// Appends one message. `Err` means nothing was appended; `Ok` with a status other than
    /// `PutStatus::Ok` means appended, but the durability the policy promises was not confirmed.
    ///
    /// ```
    /// use mqstore::{Message, MessageStore, PutStatus, StoreConfig};
    /// # let dir = tempfile::tempdir()?;
    /// let store = MessageStore::open(StoreConfig::new(dir.path()).commit_log_segment_size(1 << 20))?;
    /// let r = store.put(Message::new("orders", 0, b"order 42".to_vec()).with_tags("new").with_keys(["order-42"]))?;
    /// assert_eq!((r.status, r.queue_offset), (PutStatus::Ok, 0));
    /// // Not appended: the topic would be a path.
    /// assert!(store.put(Message::new("../orders", 0, b"x".to_vec())).is_err());
    /// # store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put(&self, msg: Message) -> Result<PutResult> {
        self.put_ref(&msg)
    }

    /// Appends one message as [`put`](Self::put) does, leaving it to the caller, who can refill
    /// and append it again: a producer that decodes messages into one buffer allocates nothing
    /// per append (nor does the store).
    ///
    /// ```
    /// use mqstore::{Message, MessageStore, StoreConfig};
    /// # let dir = tempfile::tempdir()?;
    /// let store = MessageStore::open(StoreConfig::new(dir.path()).commit_log_segment_size(1 << 20))?;
    /// let mut msg = Message::new("orders", 0, Vec::with_capacity(64));
    /// for i in 0..4u32 {
    ///     msg.body_mut().clear();
    ///     msg.body_mut().extend_from_slice(format!("order {i}").as_bytes());
    ///     msg.set_queue_id(i % 2);
    ///     store.put_ref(&msg)?;
    /// }
    /// # store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_ref(&self, msg: &Message) -> Result<PutResult> {
        let started = clock::Instant::now();
        let (appended, end) = self.append_one(msg, started)?;
        let status = self.status_after(end);
        self.counters.put(1, u64::from(appended.wrote_bytes), started.elapsed());
        Ok(PutResult { status, ..appended })
    }

    /// Appends one message like [`put`](Self::put), without waiting for the flush policy: the
    /// returned [`PendingPut`] reports the outcome when the policy has it (blocking with
    /// [`PendingPut::wait`], or as a future). Under [`FlushPolicy::sync`](crate::FlushPolicy::sync)
    /// the group commit's service thread leads the syncs of such puts, so one thread can keep
    /// many in flight and they share syncs as if each had its own producer thread. Costs one
    /// allocation per put, for the outcome's slot.
    ///
    /// `Err` means nothing was appended, as for `put`.
    pub fn put_async(&self, msg: Message) -> Result<PendingPut> {
        let started = clock::Instant::now();
        let (appended, end) = self.append_one(&msg, started)?;
        self.counters.put(1, u64::from(appended.wrote_bytes), started.elapsed());
        if self.flush_awaited {
            self.log.wait_published(end);
        }
        self.dispatcher.shared().wake();
        let replicated = self.replication.as_ref().and_then(|r| r.after_append(end));
        let (done, pending) = Pending::pair();
        self.flusher.after_append_async(end, done);
        Ok(PendingPut::new(
            appended,
            pending,
            replicated,
            Arc::clone(&self.writeable),
        ))
    }

    /// Writes one message into the log: its result with status `Ok` (the flush policy has not
    /// been asked yet), and the log's end after it. `started`: when the put began, which gives
    /// its store time without a second reading of the clock.
    fn append_one(&self, msg: &Message, started: clock::Instant) -> Result<(PutResult, u64)> {
        self.check_writeable()?;
        let now = millis_at(started);
        PROPS.with(|props| {
            let mut props = props.borrow_mut();
            props.clear();
            let unique_key = self.prepare(msg, &mut props)?;
            let record = self.plan(msg, &props, now)?;
            let queue = self.queues.get_or_create(&msg.topic, msg.queue_id)?;
            let mut batch = [Appending::new(record, queue.assign_counter())];
            let end = self
                .log
                .append(&mut batch, now)
                .inspect_err(|e| self.note_append_error(e))?;
            let [a] = batch;
            Ok((self.put_result(&a, PutStatus::Ok, unique_key), end))
        })
    }

    /// Appends messages atomically and contiguously (in one segment, under one lock) and waits
    /// once for their durability. Every message is validated first: one bad message fails the
    /// whole batch with nothing appended.
    pub fn put_batch(&self, msgs: Vec<Message>) -> Result<Vec<PutResult>> {
        let started = clock::Instant::now();
        self.check_writeable()?;
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        let now = millis_at(started);
        // Every message's properties encoded into one buffer, rather than a buffer of its own
        // each: an allocation and its reallocations per message (see docs/performance.md,
        // "Batches").
        let mut unique_keys = Vec::with_capacity(msgs.len());
        let mut spans = Vec::with_capacity(msgs.len());
        let mut props = Vec::with_capacity(msgs.len() * 128);
        for msg in &msgs {
            let at = props.len();
            unique_keys.push(self.prepare(msg, &mut props)?);
            spans.push(at..props.len());
        }
        let mut records = Vec::with_capacity(msgs.len());
        let mut queues: Vec<Arc<ConsumeQueue<B>>> = Vec::with_capacity(msgs.len());
        for (msg, span) in msgs.iter().zip(spans) {
            records.push(self.plan(msg, &props[span], now)?);
            queues.push(self.queues.get_or_create(&msg.topic, msg.queue_id)?);
        }
        let mut batch: Vec<Appending<'_>> = records
            .into_iter()
            .zip(&queues)
            .map(|(r, q)| Appending::new(r, q.assign_counter()))
            .collect();
        let end = self
            .log
            .append(&mut batch, now)
            .inspect_err(|e| self.note_append_error(e))?;
        let status = self.status_after(end);
        let bytes = batch.iter().map(|a| a.record.len() as u64).sum();
        self.counters.put(batch.len() as u64, bytes, started.elapsed());
        Ok(batch
            .iter()
            .zip(unique_keys)
            .map(|(a, unique_key)| self.put_result(a, status, unique_key))
            .collect())
    }

    /// What a put tells its caller about a record the log took.
    fn put_result(&self, a: &Appending<'_>, status: PutStatus, unique_key: Option<UniqueKey>) -> PutResult {
        PutResult {
            status,
            commit_log_offset: a.commit_log_offset,
            queue_offset: a.queue_offset,
            wrote_bytes: a.record.len() as u32,
            store_timestamp: a.store_timestamp,
            store_host: self.config.store_host,
            unique_key,
        }
    }

    fn check_queue(&self, topic: &str, queue_id: u32) -> Result<()> {
        validate_topic(topic)?;
        if queue_id >= self.config.max_queues_per_topic {
            return Err(Error::QueueIdOutOfRange {
                queue_id,
                max: self.config.max_queues_per_topic,
            });
        }
        Ok(())
    }

    /// Reads up to `max` messages of a queue from `offset`.
    ///
    /// ```
    /// use mqstore::{GetStatus, Message, MessageStore, StoreConfig};
    /// # let dir = tempfile::tempdir()?;
    /// let store = MessageStore::open(StoreConfig::new(dir.path()).commit_log_segment_size(1 << 20))?;
    /// for i in 0..3 {
    ///     store.put(Message::new("orders", 1, format!("order {i}").into_bytes()))?;
    /// }
    /// store.wait_dispatched(std::time::Duration::from_secs(5));
    /// let got = store.get("orders", 1, 1, 32)?;
    /// assert_eq!(got.status, GetStatus::Found);
    /// assert_eq!(got.messages[0].body(), b"order 1");
    /// assert_eq!((got.next_offset, got.max_offset), (3, 3));
    /// // Caught up: nothing at the next offset yet.
    /// assert_eq!(store.get("orders", 1, 3, 32)?.status, GetStatus::OffsetOverflowOne);
    /// # store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, topic: &str, queue_id: u32, offset: u64, max: u32) -> Result<GetResult> {
        self.get_filtered(topic, queue_id, offset, max, &TagFilter::all())
    }

    /// Reads up to `max` messages of a queue from `offset` that match `filter` (a subscription
    /// such as `TagA || TagB`, see [`TagFilter::parse`]).
    pub fn get_filtered(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max: u32,
        filter: &TagFilter,
    ) -> Result<GetResult> {
        let got = self.get_unaccounted(topic, queue_id, offset, max, filter)?;
        let bytes = got.messages.iter().map(|m| u64::from(m.size())).sum();
        self.counters.get(got.messages.len() as u64, bytes);
        Ok(got)
    }

    fn get_unaccounted(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max: u32,
        filter: &TagFilter,
    ) -> Result<GetResult> {
        self.check_queue(topic, queue_id)?;
        let Some(cq) = self.queues.get(topic, queue_id) else {
            return Ok(GetResult {
                status: GetStatus::NoMessageInQueue,
                messages: Vec::new(),
                next_offset: 0,
                min_offset: 0,
                max_offset: 0,
            });
        };
        self.read_your_writes(&cq);
        let (min, max_offset) = (cq.min_offset(), cq.max_offset());
        let result = |status, next_offset, messages| GetResult {
            status,
            messages,
            next_offset,
            min_offset: min,
            max_offset,
        };
        if max_offset == 0 {
            return Ok(result(GetStatus::NoMessageInQueue, 0, Vec::new()));
        }
        if offset < min {
            return Ok(result(GetStatus::OffsetTooSmall, min, Vec::new()));
        }
        if offset == max_offset {
            return Ok(result(GetStatus::OffsetOverflowOne, offset, Vec::new()));
        }
        if offset > max_offset {
            return Ok(result(GetStatus::OffsetOverflowBadly, max_offset, Vec::new()));
        }
        let want = max.max(1) as usize;
        let scan_limit = max_offset.min(offset.saturating_add((want as u64).max(MAX_FILTER_SCAN_UNITS)));
        let mut messages = Vec::with_capacity(want.min(1024));
        let mut bytes = 0usize;
        let mut next = offset;
        let mut removed = false;
        // One look at the log's bounds per call, not per unit (the minimum takes a lock).
        let (log_min, log_end) = (self.log.min_offset(), self.log.max_offset());
        let mut cq_segment = None;
        let mut log_segment = None;
        // A bad unit is repaired from the log once per call, then the units from the first one
        // rewritten on are read again (a blank unit passed over may now hold a record; none of
        // the messages taken lies past it).
        let mut healed = false;
        let mut heal = |next: &mut u64, cq_segment: &mut Option<_>| -> bool {
            if healed {
                return false;
            }
            healed = true;
            match self.heal_units(&cq, *next) {
                Ok(Some(first)) => {
                    // The repaired file replaced the one the cache holds.
                    *cq_segment = None;
                    *next = first.clamp(offset, *next);
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    tracing::error!(topic = cq.topic(), queue_id = cq.queue_id(), queue_offset = *next, error = %e, "repairing consume-queue units failed");
                    false
                }
            }
        };
        while next < scan_limit && messages.len() < want {
            let Some(unit) = cq.unit_cached(next, &mut cq_segment) else {
                if heal(&mut next, &mut cq_segment) {
                    continue;
                }
                if messages.is_empty() {
                    let per = cq.units_per_segment();
                    let next_file = next - next % per + per;
                    return Ok(result(
                        GetStatus::OffsetFoundNull,
                        next_file.min(max_offset),
                        Vec::new(),
                    ));
                }
                break;
            };
            if unit.is_blank() || !filter.matches_code(unit.tags_code) {
                next += 1;
                continue;
            }
            if !messages.is_empty() && bytes + unit.size as usize > self.config.max_get_bytes {
                break;
            }
            if unit.commit_log_offset < log_min {
                removed = true;
                next += 1;
                continue;
            }
            let read = if unit.end() > log_end {
                // Past the end of the log: the unit is damaged, not its record removed.
                Err(Error::CorruptConsumeQueue {
                    topic: cq.topic().to_string(),
                    queue_id: cq.queue_id(),
                    queue_offset: next,
                    reason: format!("unit points past the end of the log, at {}", unit.commit_log_offset),
                })
            } else {
                self.read_unit(&cq, next, unit.commit_log_offset, unit.size, &mut log_segment)
            };
            let msg = match read {
                Ok(Some(msg)) => msg,
                Ok(None) => {
                    removed = true;
                    next += 1;
                    continue;
                }
                Err(Error::CorruptConsumeQueue { .. } | Error::CorruptRecord { .. })
                    if heal(&mut next, &mut cq_segment) =>
                {
                    continue;
                }
                // A damaged unit or record ends the batch before it; asked for first, it is the
                // error, so the caller learns where it is and can skip it.
                Err(e) if messages.is_empty() => return Err(e),
                Err(_) => break,
            };
            next += 1;
            if !filter.matches_message(&msg) {
                continue;
            }
            bytes += unit.size as usize;
            messages.push(msg);
        }
        let status = if !messages.is_empty() {
            GetStatus::Found
        } else if removed {
            GetStatus::MessageWasRemoving
        } else {
            GetStatus::NoMatchedMessage
        };
        Ok(result(status, next, messages))
    }

    /// Waits (briefly) until every message put to `cq` before this call is dispatched, so that a
    /// get or max offset asked after a put returned reflects it. Costs nothing when the
    /// dispatcher is caught up with the queue.
    fn read_your_writes(&self, cq: &ConsumeQueue<B>) {
        let assigned = cq.assigned();
        if cq.max_offset() < assigned {
            self.dispatcher
                .shared()
                .wait_until(|| cq.max_offset() >= assigned, READ_YOUR_WRITES_WAIT);
        }
    }

    fn read_verify(&self) -> Verify {
        if self.config.verify_crc_on_read {
            self.verify
        } else {
            Verify::Framing
        }
    }

    /// Decodes the record at the start of `bytes` (read from `segment` at `pos`) into a message
    /// that keeps its bytes alive: the segment for bytes in the file, the write buffer for bytes
    /// not yet committed. `Ok(None)` for an end-of-segment filler. `accept` sees the record
    /// before the message is built, and may refuse it with an error.
    fn message_from(
        segment: &SegmentRef<B>,
        pin: Option<&Arc<dyn SegmentRead>>,
        pos: u64,
        bytes: Bytes<'_>,
        verify: Verify,
        accept: impl FnOnce(&[u8], &RecordShape) -> Result<()>,
    ) -> Result<Option<StoredMessage>> {
        let offset = segment.start() + pos;
        let shape = match codec::decode_shape(&bytes, verify) {
            Ok(Some(shape)) => shape,
            Ok(None) => return Ok(None),
            Err(source) => return Err(Error::CorruptRecord { offset, source }),
        };
        accept(&bytes, &shape)?;
        let source = match &bytes {
            Bytes::Mapped(_) => MessageSource::Mapped(
                pin.map_or_else(|| Arc::clone(segment) as Arc<dyn SegmentRead>, Arc::clone),
                pos,
            ),
            Bytes::Buffered(slice) => MessageSource::Buffered(slice.clone()),
        };
        Ok(Some(StoredMessage::new(source, offset, shape)))
    }

    /// Reads the record a unit points at. `cache` keeps the commit-log segment found and a
    /// [`Pinned`] handle on it for the messages of this read.
    fn read_unit(
        &self,
        cq: &ConsumeQueue<B>,
        queue_offset: u64,
        offset: u64,
        size: u32,
        cache: &mut Option<(SegmentRef<B>, Arc<dyn SegmentRead>)>,
    ) -> Result<Option<StoredMessage>> {
        if !cache
            .as_ref()
            .is_some_and(|(s, _)| s.start() <= offset && offset < s.end())
        {
            let Some(segment) = self.log.segment_at(offset) else {
                return Ok(None);
            };
            let pin = Arc::new(Pinned(Arc::clone(&segment))) as Arc<dyn SegmentRead>;
            *cache = Some((segment, pin));
        }
        let Some((segment, pin)) = cache.as_ref() else {
            return Ok(None);
        };
        let pos = offset - segment.start();
        let corrupt_unit = |reason: String| Error::CorruptConsumeQueue {
            topic: cq.topic().to_string(),
            queue_id: cq.queue_id(),
            queue_offset,
            reason,
        };
        let Some(bytes) = segment.read(pos, size as usize) else {
            // No record spans two segments: a size that runs past the end is the unit's damage.
            if pos + u64::from(size) > segment.size() {
                return Err(corrupt_unit(format!(
                    "unit's record at {offset} ({size} bytes) would run past the end of its segment"
                )));
            }
            return Ok(None);
        };
        // The unit must point at its own record: a damaged unit (or a unit of another queue's
        // file) could otherwise serve a valid record of another queue.
        let accept = |record: &[u8], shape: &RecordShape| {
            let topic = RecordShape::part(record, shape.topic);
            if topic == cq.topic().as_bytes()
                && shape.queue_id == cq.queue_id()
                && shape.queue_offset == queue_offset
                && shape.total_size == size
            {
                return Ok(());
            }
            Err(corrupt_unit(format!(
                "unit points at a record of {}/{} offset {} ({} bytes)",
                String::from_utf8_lossy(topic),
                shape.queue_id,
                shape.queue_offset,
                shape.total_size
            )))
        };
        match Self::message_from(segment, Some(pin), pos, bytes, self.read_verify(), accept)? {
            Some(msg) => Ok(Some(msg)),
            None => Err(corrupt_unit(format!(
                "unit points at commit-log offset {offset}, which holds an end-of-segment filler"
            ))),
        }
    }

    /// Reads the record at a commit-log offset (RocketMQ's `lookMessageByOffset`).
    pub fn read_at(&self, commit_log_offset: u64) -> Result<Option<StoredMessage>> {
        let Some(segment) = self.log.segment_at(commit_log_offset) else {
            return Ok(None);
        };
        let pos = commit_log_offset - segment.start();
        let Some(bytes) = segment.read_from(pos) else {
            return Ok(None);
        };
        Self::message_from(&segment, None, pos, bytes, self.read_verify(), |_, _| Ok(()))
    }

    /// The first queue offset whose message was stored at or after `timestamp_ms`: the min
    /// offset for a time before the first message, the max offset (one past the last) for a
    /// time after the last, as RocketMQ's `getOffsetInQueueByTime`. Binary search over the
    /// queue: O(log n) record reads. Sees every message put before the call.
    pub fn offset_for_timestamp(&self, topic: &str, queue_id: u32, timestamp_ms: u64) -> Result<u64> {
        self.check_queue(topic, queue_id)?;
        let Some(cq) = self.queues.get(topic, queue_id) else {
            return Ok(0);
        };
        self.read_your_writes(&cq);
        let (mut lo, mut hi) = (cq.min_offset(), cq.max_offset());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let ts = match cq.unit(mid) {
                Some(u) if !u.is_blank() => self.read_at(u.commit_log_offset)?.map(|m| m.store_timestamp()),
                _ => None,
            };
            match ts {
                Some(ts) if ts >= timestamp_ms => hi = mid,
                Some(_) => lo = mid + 1,
                // A hole or a removed record: treat it as older, the search stays monotonic.
                None => lo = mid + 1,
            }
        }
        Ok(lo)
    }

    /// Smallest readable offset of a queue (0 if the queue does not exist).
    pub fn min_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.queues.get(topic, queue_id).map_or(0, |q| q.min_offset())
    }

    /// One past the last message of a queue (0 if the queue does not exist). Includes every
    /// message whose put returned before this call.
    pub fn max_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.queues.get(topic, queue_id).map_or(0, |q| {
            self.read_your_writes(&q);
            q.max_offset()
        })
    }

    /// One past the last byte appended to the commit log.
    pub fn max_commit_log_offset(&self) -> u64 {
        self.log.max_offset()
    }

    /// Smallest commit-log offset held.
    pub fn min_commit_log_offset(&self) -> u64 {
        self.log.min_offset()
    }

    /// One past the last commit-log byte known durable.
    pub fn flushed_commit_log_offset(&self) -> u64 {
        self.log.flushed_offset()
    }

    /// Commit-log offset below which everything is in the consume queues.
    pub fn dispatched_offset(&self) -> u64 {
        self.dispatcher.shared().dispatched()
    }

    /// Waits until the background allocation thread is done with what it was asked: the commit-log
    /// segment appends will need next is created (and, with [`StoreConfig::warm_up_segments`],
    /// the pages a window ahead of the writer warmed up). A store does this on its own, ahead of
    /// need; waiting for it is for benchmarks and tests that want to start from that steady
    /// state, like a broker that has been running. `false` on timeout.
    pub fn wait_segments_prepared(&self, timeout: Duration) -> bool {
        self.log.wait_prepared(timeout)
    }

    /// Waits until everything appended so far is dispatched; `false` on timeout.
    pub fn wait_dispatched(&self, timeout: Duration) -> bool {
        // Every append made so far, including those whose records are still being written.
        self.dispatcher.shared().wait_for(self.log.reserved_offset(), timeout)
    }

    /// Waits until the dispatcher has moved past commit-log offset `offset` (new messages reached
    /// the consume queues), and returns the dispatched offset then; on timeout or close, the
    /// dispatched offset as it is. A broker's long polling waits here, woken by the dispatcher
    /// itself rather than by polling: read [`dispatched_offset`](Self::dispatched_offset), look
    /// for messages, then wait past the offset read.
    pub fn wait_dispatched_past(&self, offset: u64, timeout: Duration) -> u64 {
        let shared = self.dispatcher.shared();
        shared.wait_until(|| shared.dispatched() > offset, timeout);
        shared.dispatched()
    }

    /// Every (topic, queue id) the store holds, sorted.
    pub fn queues(&self) -> Vec<(String, u32)> {
        self.queues
            .all()
            .iter()
            .map(|q| (q.topic().to_string(), q.queue_id()))
            .collect()
    }

    /// Flushes the commit log and the consume queues now, whatever the policy.
    pub fn flush(&self) -> Result<()> {
        self.log.flush(0).at(self.log.segments().dir())?;
        self.queues.flush_all(0)
    }

    /// Closes the store: stops appends, lets the dispatcher catch up, flushes everything,
    /// removes the abort marker and releases the directory lock. Later calls do nothing.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_retention();
        if let Some(r) = &self.replication {
            r.stop();
        }
        self.log.close();
        let caught_up = self
            .dispatcher
            .shared()
            .wait_for(self.log.max_offset(), CLOSE_DISPATCH_WAIT);
        self.checkpointer.stop();
        self.offset_flusher.stop();
        self.dispatcher.stop();
        self.flusher.stop();
        let offsets_flushed = self.offsets.close();
        let flushed = self
            .flush()
            .and_then(|()| self.queues.save_registry(true))
            .and_then(|()| {
                write_checkpoint(
                    &self.log,
                    &self.queues,
                    self.index.as_deref(),
                    self.dispatcher.shared(),
                    &self.checkpoint,
                )
            });
        if caught_up && flushed.is_ok() && self.writeable.load(Ordering::Acquire) && self.log.refusal().is_none() {
            let abort = self.dir.join(ABORT_FILE);
            fs::remove_file(&abort).at(&abort)?;
            sync_dir(&self.dir)?;
        } else {
            tracing::warn!("store closed with dispatch or flush incomplete: keeping the abort marker");
        }
        if let Some(lock) = self.lock.lock().take() {
            let _ = lock.unlock();
        }
        flushed.and(offsets_flushed)
    }

    /// Stops the store the way a crash would, for crash tests: appends stop and background
    /// threads end, but nothing is flushed, no checkpoint is written, the abort marker stays and
    /// the lock is released. Reopening then runs crash recovery. With the simulated backend
    /// (`segment::sim`, with the `internals` feature), follow it with a power loss.
    pub fn halt(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stop_retention();
        if let Some(r) = &self.replication {
            r.stop();
        }
        self.log.halt();
        self.checkpointer.stop();
        self.offset_flusher.stop();
        self.offsets.halt();
        self.dispatcher.stop();
        self.flusher.stop();
        if let Some(lock) = self.lock.lock().take() {
            let _ = lock.unlock();
        }
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }
}

impl<B: Backend> Drop for MessageStore<B> {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the store on drop failed");
        }
    }
}
