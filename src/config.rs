//! Store configuration: one builder, RocketMQ's defaults, and a validation step run by `open`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

mod file;

use crate::consume_queue::UNIT_SIZE;
use crate::error::{Error, Result};
use crate::flush::FlushPolicy;
use crate::replication::{ReplicationConfig, ReplicationHook, Role};
use crate::retention::RetentionConfig;

/// RocketMQ's commit-log segment size: 1 GiB.
pub const DEFAULT_COMMIT_LOG_SEGMENT_SIZE: u64 = 1 << 30;
/// RocketMQ's consume-queue segment: 300,000 units of 20 bytes.
pub const DEFAULT_CONSUME_QUEUE_UNITS: u64 = 300_000;
/// RocketMQ's `maxMessageSize`: 4 MiB of body.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 << 20;
/// Queues per topic accepted by default.
pub const DEFAULT_MAX_QUEUES_PER_TOPIC: u32 = 1024;
pub use crate::message::MAX_TOPIC_LEN;

/// Everything [`MessageStore::open`](crate::MessageStore::open) needs. Only the directory is
/// required; every other field has RocketMQ's default unless noted.
#[derive(Clone, Debug)]
#[must_use]
pub struct StoreConfig {
    pub(crate) dir: PathBuf,
    pub(crate) flush: FlushPolicy,
    pub(crate) commit_log_segment_size: u64,
    pub(crate) consume_queue_units: u64,
    pub(crate) max_message_size: usize,
    pub(crate) max_queues_per_topic: u32,
    pub(crate) warm_up_segments: bool,
    pub(crate) zero_fill_segments: Option<bool>,
    pub(crate) verify_crc_on_read: bool,
    pub(crate) store_host: SocketAddr,
    pub(crate) max_get_bytes: usize,
    pub(crate) checkpoint_interval_ms: u64,
    pub(crate) message_index: bool,
    pub(crate) index_slots: u32,
    pub(crate) index_entries: u32,
    pub(crate) unique_keys: bool,
    pub(crate) role: Role,
    pub(crate) replication: ReplicationConfig,
    pub(crate) consumer_offset_flush_interval: std::time::Duration,
    pub(crate) retention: RetentionConfig,
}

impl StoreConfig {
    /// A configuration for the store in `dir` (created if missing) with all defaults.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            flush: FlushPolicy::asynchronous(),
            commit_log_segment_size: DEFAULT_COMMIT_LOG_SEGMENT_SIZE,
            consume_queue_units: DEFAULT_CONSUME_QUEUE_UNITS,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_queues_per_topic: DEFAULT_MAX_QUEUES_PER_TOPIC,
            warm_up_segments: false,
            zero_fill_segments: None,
            verify_crc_on_read: true,
            store_host: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10911)),
            max_get_bytes: 128 << 20,
            checkpoint_interval_ms: 1000,
            message_index: true,
            index_slots: crate::index::DEFAULT_SLOTS,
            index_entries: crate::index::DEFAULT_ENTRIES,
            unique_keys: true,
            role: Role::AsyncMaster,
            replication: ReplicationConfig::default(),
            consumer_offset_flush_interval: std::time::Duration::from_secs(5),
            retention: RetentionConfig::default(),
        }
    }

    /// How appends are made durable. Default: [`FlushPolicy::asynchronous`].
    pub fn flush_policy(mut self, policy: FlushPolicy) -> Self {
        self.flush = policy;
        self
    }

    /// Size in bytes of each commit-log segment file (default 1 GiB). Applies to a new store; an
    /// existing store keeps the size it was created with. At least 4 KiB.
    pub fn commit_log_segment_size(mut self, bytes: u64) -> Self {
        self.commit_log_segment_size = bytes;
        self
    }

    /// Units (of 20 bytes) per consume-queue segment file (default 300,000). Applies to new
    /// queues of a new store, like the commit-log segment size.
    pub fn consume_queue_units_per_segment(mut self, units: u64) -> Self {
        self.consume_queue_units = units;
        self
    }

    /// Largest accepted message body in bytes (default 4 MiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Queue ids accepted per topic are `0..n` (default 1024).
    pub fn max_queues_per_topic(mut self, n: u32) -> Self {
        self.max_queues_per_topic = n;
        self
    }

    /// Touch every page of a new commit-log segment before it is used, so that appends do not
    /// page-fault (default off, as in RocketMQ). A background thread does it, ahead of the
    /// writer by at most half the dirty memory the kernel allows before it starts writing back
    /// (at least 64 MiB): warmed pages are dirty zeros, which writeback would otherwise write
    /// (and write-protect) before the writer gets there.
    pub fn warm_up_segments(mut self, on: bool) -> Self {
        self.warm_up_segments = on;
        self
    }

    /// Write zeros over each new commit-log segment file, and sync them, before it is used,
    /// instead of only reserving its blocks. File systems such as ext4 and XFS mark reserved
    /// blocks unwritten; the first sync of each range written into them must then also write the
    /// file's extent metadata (a journal commit, or on ext4 without a journal a synchronous inode
    /// write): a second I/O inside every put's sync. Once the zeros are written, a sync carries
    /// the data alone. The zeros are written in the background, ahead of need, at idle I/O
    /// priority, in chunks written back one at a time, and the fill is cut short if the writer
    /// needs the segment first (it is then used as it is).
    ///
    /// Default: on for [`FlushPolicy::sync`], off otherwise (a background flush has no sync on
    /// the put path to spare, and the fill is a second write of every segment). On the project's
    /// machine, sync puts on zero-filled segments: 1 producer 7.0k -> 9.8k msg/s (94% of one
    /// fdatasync per append), 8 producers 18.7k -> 37.9k, 64 producers 90k -> 138k; with 128 MiB
    /// segments, so that the fill of the next one always competes with the puts, still 8
    /// producers 22k -> 33k and 64 producers 96k -> 118k, at a higher p99 (1.7 -> 3.3 ms).
    pub fn zero_fill_segments(mut self, on: bool) -> Self {
        self.zero_fill_segments = Some(on);
        self
    }

    /// Check every record's CRC when it is read by `get` (default on). A damaged record is then
    /// an error, never data.
    pub fn verify_crc_on_read(mut self, on: bool) -> Self {
        self.verify_crc_on_read = on;
        self
    }

    /// The address written as STOREHOST in every record (default 127.0.0.1:10911).
    pub fn store_host(mut self, addr: SocketAddr) -> Self {
        self.store_host = addr;
        self
    }

    /// Upper bound on the record bytes one `get` returns (default 128 MiB, RocketMQ's hard cap).
    /// At least one message is always returned when one is available.
    pub fn max_get_bytes(mut self, bytes: usize) -> Self {
        self.max_get_bytes = bytes;
        self
    }

    /// How often consume queues are flushed and the checkpoint written (default 1 s, as
    /// RocketMQ's FlushConsumeQueueService and checkpoint). Crash recovery re-checks the log
    /// from at most about this far back.
    pub fn checkpoint_interval(mut self, interval: std::time::Duration) -> Self {
        self.checkpoint_interval_ms = interval.as_millis().max(1) as u64;
        self
    }

    /// Whether the dispatcher builds the index by key (default on, RocketMQ's
    /// `messageIndexEnable`). Without it, [`query_by_key`](crate::MessageStore::query_by_key)
    /// finds nothing.
    pub fn message_index(mut self, on: bool) -> Self {
        self.message_index = on;
        self
    }

    /// The shape of new index files: `slots` hash slots and `entries` entries each (defaults
    /// 5,000,000 and 20,000,000, RocketMQ's: 420 MB a file). A full file is followed by a new
    /// one. Existing files keep their shape.
    pub fn index_size(mut self, slots: u32, entries: u32) -> Self {
        self.index_slots = slots;
        self.index_entries = entries;
        self
    }

    /// Whether a message the producer gave no `UNIQ_KEY` gets one (default on): a 32-digit hex
    /// id unique to the store, indexed like a key, as RocketMQ's clients set it.
    pub fn unique_keys(mut self, on: bool) -> Self {
        self.unique_keys = on;
        self
    }

    /// The store's replication role (default [`Role::AsyncMaster`]). See
    /// [`replication`](crate::replication).
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Replication settings: the master's listen address, the slaves a sync master needs,
    /// frame sizes, heartbeats (defaults in [`ReplicationConfig`]).
    pub fn replication(mut self, config: ReplicationConfig) -> Self {
        let hook = self.replication.hook.take();
        self.replication = config;
        if self.replication.hook.is_none() {
            self.replication.hook = hook;
        }
        self
    }

    /// Replaces the built-in TCP transport with a broker's own.
    pub fn replication_hook(mut self, hook: std::sync::Arc<dyn ReplicationHook>) -> Self {
        self.replication.hook = Some(hook);
        self
    }

    /// Whether the store takes part in replication: a role other than a lone async master, a
    /// listen address, or a transport of its own. Only then does it keep an epoch history.
    pub(crate) fn replicated(&self) -> bool {
        self.role != Role::AsyncMaster || self.replication.listen.is_some() || self.replication.hook.is_some()
    }

    pub(crate) fn zero_fill(&self) -> bool {
        self.zero_fill_segments.unwrap_or_else(|| self.flush.is_sync())
    }

    /// Moves the store to `dir`, keeping every other setting (a configuration file's settings
    /// for another directory, as `mqstore bench --config` uses them).
    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    /// The store directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Queue ids accepted per topic are `0..queue_limit()` (set by
    /// [`max_queues_per_topic`](Self::max_queues_per_topic)).
    pub fn queue_limit(&self) -> u32 {
        self.max_queues_per_topic
    }

    /// The address written as STOREHOST in every record (set by
    /// [`store_host`](Self::store_host)).
    pub fn store_host_addr(&self) -> SocketAddr {
        self.store_host
    }

    /// Checks the fields against each other; `open` calls it.
    pub fn validate(&self) -> Result<()> {
        if self.commit_log_segment_size < 4096 {
            return Err(Error::InvalidConfig(format!(
                "commit_log_segment_size {} is below 4096 bytes",
                self.commit_log_segment_size
            )));
        }
        if self.commit_log_segment_size > i64::MAX as u64 / 2 {
            return Err(Error::InvalidConfig("commit_log_segment_size is too large".into()));
        }
        if self.consume_queue_units == 0 || self.consume_queue_units > (1 << 40) / UNIT_SIZE {
            return Err(Error::InvalidConfig(format!(
                "consume_queue_units_per_segment {} is out of range",
                self.consume_queue_units
            )));
        }
        if self.max_message_size == 0 || self.max_message_size > i32::MAX as usize {
            return Err(Error::InvalidConfig(format!(
                "max_message_size {} is out of range 1..=2^31-1",
                self.max_message_size
            )));
        }
        if self.max_queues_per_topic == 0 || self.max_queues_per_topic > i32::MAX as u32 {
            return Err(Error::InvalidConfig(
                "max_queues_per_topic must be in 1..=2^31-1".into(),
            ));
        }
        if self.index_slots == 0 || self.index_entries < 2 || self.index_entries >= i32::MAX as u32 {
            return Err(Error::InvalidConfig(format!(
                "index_size: {} slots and {} entries; need at least 1 slot and 2..2^31-1 entries",
                self.index_slots, self.index_entries
            )));
        }
        self.flush.validate()?;
        if let Role::SyncMaster { timeout } = self.role
            && timeout.is_zero()
        {
            return Err(Error::InvalidConfig("sync master timeout is zero".into()));
        }
        self.replication.validate(self.max_message_size)?;
        if self.consumer_offset_flush_interval.is_zero() {
            return Err(Error::InvalidConfig("consumer_offset_flush_interval is zero".into()));
        }
        self.retention.validate()
    }

    /// How often committed consumer offsets are written to `config/consumerOffset.json` when
    /// they changed (default 5 s, RocketMQ's `flushConsumerOffsetInterval`). A crash loses at
    /// most the commits of about this long. Must not be zero.
    pub fn consumer_offset_flush_interval(mut self, interval: std::time::Duration) -> Self {
        self.consumer_offset_flush_interval = interval;
        self
    }

    /// When and how much of the commit log is deleted, and the consume-queue and index files
    /// with it (default: RocketMQ's, see [`RetentionConfig`]).
    pub fn retention(mut self, retention: RetentionConfig) -> Self {
        self.retention = retention;
        self
    }
}
