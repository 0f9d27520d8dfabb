//! [`StoreConfig`] as a TOML file: every knob of the builder under the name an operator reads,
//! durations and sizes written as people write them (`"500ms"`, `"72h"`, `"1GiB"`). Parsing is
//! serde's and the `toml` crate's, so an unknown key or a bad value is an error that names the
//! key and its line; the builder's own checks then run as they do for code.
//!
//! Parts a file cannot name (a custom flusher, a custom disk-usage probe, a replication hook)
//! are set in code, on the configuration the file gave.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::StoreConfig;
use crate::error::{Error, Result};
use crate::flush::{AsyncFlush, BufferedFlush, BuiltIn, FlushPolicy, SyncFlush};
use crate::replication::{ReplicationConfig, Role};
use crate::retention::{DiskUsage, RetentionConfig};

/// A byte count: written `"1GiB"`, `"512MiB"`, `"64KiB"` or a number of bytes (`"1GB"` is
/// 10^9, as `parse-size` reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Size(u64);

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        const UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        match UNITS
            .iter()
            .find(|(unit, _)| self.0 >= *unit && self.0.is_multiple_of(*unit))
        {
            Some((unit, name)) => s.serialize_str(&format!("{}{name}", self.0 / unit)),
            None => s.serialize_u64(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Size, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as \"1GiB\", \"512MiB\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Size, E> {
                parse_size::parse_size(v)
                    .map(Size)
                    .map_err(|e| E::custom(format!("{v:?} is not a size ({e}); write e.g. \"1GiB\" or \"512MiB\"")))
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// A duration: `"500ms"`, `"10s"`, `"72h"`, `"3days"` (`humantime`'s forms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dur(Duration);

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Dur, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(Dur).map_err(|e| {
            de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write e.g. \"500ms\", \"10s\" or \"72h\""
            ))
        })
    }
}

/// Whether new segments are zero-filled: `"auto"` (the flush policy decides), `true`, `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ZeroFill(Option<bool>);

impl Serialize for ZeroFill {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_str("auto"),
            Some(on) => s.serialize_bool(on),
        }
    }
}

impl<'de> Deserialize<'de> for ZeroFill {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<ZeroFill, D::Error> {
        struct ZeroFillVisitor;
        impl Visitor<'_> for ZeroFillVisitor {
            type Value = ZeroFill;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<ZeroFill, E> {
                Ok(ZeroFill(Some(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ZeroFill, E> {
                match v {
                    "auto" => Ok(ZeroFill(None)),
                    _ => Err(E::custom(format!("{v:?}: expected true, false or \"auto\""))),
                }
            }
        }
        d.deserialize_any(ZeroFillVisitor)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FlushMode {
    Sync,
    Async,
    Buffered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoleName {
    AsyncMaster,
    SyncMaster,
    Slave,
}

/// The file's shape. Every field has the builder's default, so a file names only what it
/// changes; `deny_unknown_fields` makes a misspelt key an error rather than a silent default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    dir: PathBuf,
    #[serde(default = "defaults::store_host")]
    store_host: SocketAddr,
    #[serde(default = "defaults::max_message_size")]
    max_message_size: Size,
    #[serde(default = "defaults::max_queues_per_topic")]
    max_queues_per_topic: u32,
    #[serde(default = "defaults::max_get_bytes")]
    max_get_bytes: Size,
    #[serde(default = "defaults::verify_crc_on_read")]
    verify_crc_on_read: bool,
    #[serde(default = "defaults::checkpoint_interval")]
    checkpoint_interval: Dur,
    #[serde(default = "defaults::consumer_offset_flush_interval")]
    consumer_offset_flush_interval: Dur,
    #[serde(default)]
    flush: FlushSection,
    #[serde(default)]
    commit_log: CommitLogSection,
    #[serde(default)]
    consume_queue: ConsumeQueueSection,
    #[serde(default)]
    index: IndexSection,
    #[serde(default)]
    replication: ReplicationSection,
    #[serde(default)]
    retention: RetentionSection,
}

/// Defaults of the top-level keys, taken from the builder so that the two never differ.
mod defaults {
    use super::*;

    fn base() -> StoreConfig {
        StoreConfig::new("")
    }
    pub(super) fn store_host() -> SocketAddr {
        base().store_host
    }
    pub(super) fn max_message_size() -> Size {
        Size(base().max_message_size as u64)
    }
    pub(super) fn max_queues_per_topic() -> u32 {
        base().max_queues_per_topic
    }
    pub(super) fn max_get_bytes() -> Size {
        Size(base().max_get_bytes as u64)
    }
    pub(super) fn verify_crc_on_read() -> bool {
        base().verify_crc_on_read
    }
    pub(super) fn checkpoint_interval() -> Dur {
        Dur(Duration::from_millis(base().checkpoint_interval_ms))
    }
    pub(super) fn consumer_offset_flush_interval() -> Dur {
        Dur(base().consumer_offset_flush_interval)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FlushSection {
    mode: FlushMode,
    sync: SyncSection,
    #[serde(rename = "async")]
    asynchronous: AsyncSection,
    buffered: BufferedSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SyncSection {
    timeout: Dur,
    write_buffers: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AsyncSection {
    interval: Dur,
    least_pages: u64,
    thorough_interval: Dur,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct BufferedSection {
    buffers: usize,
    lock_memory: bool,
    commit_interval: Dur,
}

impl Default for FlushSection {
    fn default() -> Self {
        FlushSection::of(&FlushPolicy::asynchronous()).expect("a built-in policy")
    }
}

impl Default for SyncSection {
    fn default() -> Self {
        FlushSection::default().sync
    }
}

impl Default for AsyncSection {
    fn default() -> Self {
        FlushSection::default().asynchronous
    }
}

impl Default for BufferedSection {
    fn default() -> Self {
        FlushSection::default().buffered
    }
}

impl FlushSection {
    /// The section for `policy`: its mode's settings from it, the other modes' defaults.
    fn of(policy: &FlushPolicy) -> Option<FlushSection> {
        let sync = |s: SyncFlush| SyncSection {
            timeout: Dur(s.timeout),
            write_buffers: s.write_buffers,
        };
        let asynchronous = |a: AsyncFlush| AsyncSection {
            interval: Dur(a.interval),
            least_pages: a.least_pages,
            thorough_interval: Dur(a.thorough_interval),
        };
        let buffered = |b: BufferedFlush| BufferedSection {
            buffers: b.buffers,
            lock_memory: b.lock_memory,
            commit_interval: Dur(b.commit_interval),
        };
        let builtin = |p: FlushPolicy| p.settings().expect("a built-in policy");
        let (BuiltIn::Sync(s0), BuiltIn::Buffered(b0)) =
            (builtin(FlushPolicy::sync()), builtin(FlushPolicy::buffered()))
        else {
            unreachable!("the built-in constructors make their own kind")
        };
        let mut section = FlushSection {
            mode: FlushMode::Async,
            sync: sync(s0),
            asynchronous: asynchronous(b0.flush),
            buffered: buffered(b0),
        };
        match policy.settings()? {
            BuiltIn::Sync(s) => {
                section.mode = FlushMode::Sync;
                section.sync = sync(s);
            }
            BuiltIn::Async(a) => section.asynchronous = asynchronous(a),
            BuiltIn::Buffered(b) => {
                section.mode = FlushMode::Buffered;
                section.buffered = buffered(b);
                // Buffered flushes its files as the async policy does, with these settings.
                section.asynchronous = asynchronous(b.flush);
            }
        }
        Some(section)
    }

    fn policy(&self) -> FlushPolicy {
        let a = &self.asynchronous;
        let flush = AsyncFlush {
            interval: a.interval.0,
            least_pages: a.least_pages,
            thorough_interval: a.thorough_interval.0,
        };
        FlushPolicy::from_settings(match self.mode {
            FlushMode::Sync => BuiltIn::Sync(SyncFlush {
                timeout: self.sync.timeout.0,
                write_buffers: self.sync.write_buffers,
            }),
            FlushMode::Async => BuiltIn::Async(flush),
            FlushMode::Buffered => BuiltIn::Buffered(BufferedFlush {
                buffers: self.buffered.buffers,
                lock_memory: self.buffered.lock_memory,
                commit_interval: self.buffered.commit_interval.0,
                flush,
            }),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CommitLogSection {
    segment_size: Size,
    warm_up: bool,
    zero_fill: ZeroFill,
}

impl Default for CommitLogSection {
    fn default() -> Self {
        let c = StoreConfig::new("");
        CommitLogSection {
            segment_size: Size(c.commit_log_segment_size),
            warm_up: c.warm_up_segments,
            zero_fill: ZeroFill(c.zero_fill_segments),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ConsumeQueueSection {
    units_per_segment: u64,
}

impl Default for ConsumeQueueSection {
    fn default() -> Self {
        ConsumeQueueSection {
            units_per_segment: StoreConfig::new("").consume_queue_units,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct IndexSection {
    enabled: bool,
    slots: u32,
    entries: u32,
    unique_keys: bool,
}

impl Default for IndexSection {
    fn default() -> Self {
        let c = StoreConfig::new("");
        IndexSection {
            enabled: c.message_index,
            slots: c.index_slots,
            entries: c.index_entries,
            unique_keys: c.unique_keys,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ReplicationSection {
    role: RoleName,
    sync_timeout: Dur,
    #[serde(skip_serializing_if = "Option::is_none")]
    master: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    in_sync_slaves: usize,
    max_gap_not_in_sync: Size,
    transfer_batch: Size,
    max_frame_size: Size,
    heartbeat_interval: Dur,
    heartbeat_timeout: Dur,
    reconnect_min: Dur,
    reconnect_max: Dur,
}

impl Default for ReplicationSection {
    fn default() -> Self {
        ReplicationSection::of(&Role::AsyncMaster, &ReplicationConfig::default())
    }
}

impl ReplicationSection {
    fn of(role: &Role, r: &ReplicationConfig) -> ReplicationSection {
        let Role::SyncMaster {
            timeout: default_timeout,
        } = Role::sync_master()
        else {
            unreachable!("sync_master makes a SyncMaster")
        };
        let (role, sync_timeout, master) = match role {
            Role::AsyncMaster => (RoleName::AsyncMaster, default_timeout, None),
            Role::SyncMaster { timeout } => (RoleName::SyncMaster, *timeout, None),
            Role::Slave { master } => (RoleName::Slave, default_timeout, Some(*master)),
        };
        ReplicationSection {
            role,
            sync_timeout: Dur(sync_timeout),
            master,
            listen: r.listen,
            in_sync_slaves: r.in_sync_slaves,
            max_gap_not_in_sync: Size(r.max_gap_not_in_sync),
            transfer_batch: Size(r.transfer_batch as u64),
            max_frame_size: Size(u64::from(r.max_frame_size)),
            heartbeat_interval: Dur(r.heartbeat_interval),
            heartbeat_timeout: Dur(r.heartbeat_timeout),
            reconnect_min: Dur(r.reconnect_min),
            reconnect_max: Dur(r.reconnect_max),
        }
    }

    fn role(&self) -> std::result::Result<Role, String> {
        match (self.role, self.master) {
            (RoleName::AsyncMaster, _) => Ok(Role::AsyncMaster),
            (RoleName::SyncMaster, _) => Ok(Role::SyncMaster {
                timeout: self.sync_timeout.0,
            }),
            (RoleName::Slave, Some(master)) => Ok(Role::Slave { master }),
            (RoleName::Slave, None) => Err("role = \"slave\" needs `master`, the master's replication address".into()),
        }
    }

    fn config(&self) -> std::result::Result<ReplicationConfig, String> {
        let transfer_batch = usize::try_from(self.transfer_batch.0).map_err(|_| "transfer_batch is too large")?;
        let max_frame_size = u32::try_from(self.max_frame_size.0).map_err(|_| "max_frame_size must be below 4GiB")?;
        let mut r = ReplicationConfig::default()
            .in_sync_slaves(self.in_sync_slaves)
            .max_gap_not_in_sync(self.max_gap_not_in_sync.0)
            .transfer_batch(transfer_batch)
            .max_frame_size(max_frame_size)
            .heartbeat(self.heartbeat_interval.0, self.heartbeat_timeout.0)
            .reconnect_backoff(self.reconnect_min.0, self.reconnect_max.0);
        if let Some(addr) = self.listen {
            r = r.listen(addr);
        }
        Ok(r)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RetentionSection {
    enabled: bool,
    file_reserved_time: Dur,
    delete_when: Vec<u8>,
    disk_max_used_space_ratio: f64,
    disk_space_clean_forcibly_ratio: f64,
    clean_file_forcibly: bool,
    delete_file_batch_max: usize,
    interval: Dur,
    first_pass_delay: Dur,
    recycle_segments: usize,
    reserved_space: Size,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_budget: Option<Size>,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection::of(&RetentionConfig::default()).expect("the default probe is the file system")
    }
}

impl RetentionSection {
    fn of(r: &RetentionConfig) -> Option<RetentionSection> {
        let disk_budget = match r.disk_usage {
            DiskUsage::FileSystem => None,
            DiskUsage::Budget(bytes) => Some(Size(bytes)),
            DiskUsage::Custom(_) => return None,
        };
        Some(RetentionSection {
            enabled: r.enabled,
            file_reserved_time: Dur(r.file_reserved_time),
            delete_when: r.delete_when.clone(),
            disk_max_used_space_ratio: r.disk_max_used_space_ratio,
            disk_space_clean_forcibly_ratio: r.disk_space_clean_forcibly_ratio,
            clean_file_forcibly: r.clean_file_forcibly,
            delete_file_batch_max: r.delete_file_batch_max,
            interval: Dur(r.interval),
            first_pass_delay: Dur(r.first_pass_delay),
            recycle_segments: r.recycle,
            reserved_space: Size(r.reserved_space),
            disk_budget,
        })
    }

    fn config(&self) -> RetentionConfig {
        RetentionConfig::default()
            .enabled(self.enabled)
            .file_reserved_time(self.file_reserved_time.0)
            .delete_when(self.delete_when.iter().copied())
            .disk_max_used_space_ratio(self.disk_max_used_space_ratio)
            .disk_space_clean_forcibly_ratio(self.disk_space_clean_forcibly_ratio)
            .clean_file_forcibly(self.clean_file_forcibly)
            .delete_file_batch_max(self.delete_file_batch_max)
            .interval(self.interval.0, self.first_pass_delay.0)
            .recycle_segments(self.recycle_segments)
            .reserved_space(self.reserved_space.0)
            .disk_usage(
                self.disk_budget
                    .map_or(DiskUsage::FileSystem, |b| DiskUsage::Budget(b.0)),
            )
    }
}

impl FileConfig {
    fn of(c: &StoreConfig) -> Result<FileConfig> {
        let unwritable = |what: &str| Error::InvalidConfig(format!("{what} cannot be written to a configuration file"));
        if c.replication.hook.is_some() {
            return Err(unwritable("a replication hook"));
        }
        Ok(FileConfig {
            dir: c.dir.clone(),
            store_host: c.store_host,
            max_message_size: Size(c.max_message_size as u64),
            max_queues_per_topic: c.max_queues_per_topic,
            max_get_bytes: Size(c.max_get_bytes as u64),
            verify_crc_on_read: c.verify_crc_on_read,
            checkpoint_interval: Dur(Duration::from_millis(c.checkpoint_interval_ms)),
            consumer_offset_flush_interval: Dur(c.consumer_offset_flush_interval),
            flush: FlushSection::of(&c.flush).ok_or_else(|| unwritable("a custom flush policy"))?,
            commit_log: CommitLogSection {
                segment_size: Size(c.commit_log_segment_size),
                warm_up: c.warm_up_segments,
                zero_fill: ZeroFill(c.zero_fill_segments),
            },
            consume_queue: ConsumeQueueSection {
                units_per_segment: c.consume_queue_units,
            },
            index: IndexSection {
                enabled: c.message_index,
                slots: c.index_slots,
                entries: c.index_entries,
                unique_keys: c.unique_keys,
            },
            replication: ReplicationSection::of(&c.role, &c.replication),
            retention: RetentionSection::of(&c.retention).ok_or_else(|| unwritable("a custom disk-usage probe"))?,
        })
    }

    /// The configuration, checked as `open` checks it. Errors name the key.
    fn store_config(&self) -> std::result::Result<StoreConfig, String> {
        let too_large = |key: &str| format!("`{key}` is too large for this machine");
        let max_message_size = usize::try_from(self.max_message_size.0).map_err(|_| too_large("max_message_size"))?;
        let max_get_bytes = usize::try_from(self.max_get_bytes.0).map_err(|_| too_large("max_get_bytes"))?;
        let mut c = StoreConfig::new(&self.dir)
            .store_host(self.store_host)
            .max_message_size(max_message_size)
            .max_queues_per_topic(self.max_queues_per_topic)
            .max_get_bytes(max_get_bytes)
            .verify_crc_on_read(self.verify_crc_on_read)
            .checkpoint_interval(self.checkpoint_interval.0)
            .consumer_offset_flush_interval(self.consumer_offset_flush_interval.0)
            .flush_policy(self.flush.policy())
            .commit_log_segment_size(self.commit_log.segment_size.0)
            .warm_up_segments(self.commit_log.warm_up)
            .consume_queue_units_per_segment(self.consume_queue.units_per_segment)
            .message_index(self.index.enabled)
            .index_size(self.index.slots, self.index.entries)
            .unique_keys(self.index.unique_keys)
            .role(self.replication.role().map_err(|e| format!("[replication] {e}"))?)
            .replication(self.replication.config().map_err(|e| format!("[replication] {e}"))?)
            .retention(self.retention.config());
        c.zero_fill_segments = self.commit_log.zero_fill.0;
        c.validate().map_err(|e| match e {
            Error::InvalidConfig(why) => why,
            other => other.to_string(),
        })?;
        Ok(c)
    }
}

/// One line of comment for each key of the default file, and an example for the keys that
/// have no default value (written commented out).
const KEY_DOCS: &[(&str, &str, Option<&str>)] = &[
    ("dir", "The store directory (created if missing). Required.", None),
    (
        "store_host",
        "The address written as STOREHOST in every record (it is part of each message id).",
        None,
    ),
    ("max_message_size", "Largest accepted message body.", None),
    ("max_queues_per_topic", "Queue ids accepted per topic are 0..n.", None),
    (
        "max_get_bytes",
        "Upper bound on the record bytes one get returns (one message is always returned).",
        None,
    ),
    (
        "verify_crc_on_read",
        "Check every record's CRC when it is read: a damaged record is an error, never data.",
        None,
    ),
    (
        "checkpoint_interval",
        "How often consume queues are flushed and the checkpoint written.",
        None,
    ),
    (
        "consumer_offset_flush_interval",
        "How often committed consumer offsets are written when they changed.",
        None,
    ),
    ("flush", "How appended bytes are made durable.", None),
    (
        "flush.mode",
        "\"sync\" (group commit: a put returns once durable), \"async\" (background flush) or \"buffered\" (write buffers committed in the background, then flushed as async).",
        None,
    ),
    ("flush.sync", "Settings of mode = \"sync\".", None),
    (
        "flush.sync.timeout",
        "How long a put waits for its flush before answering FlushDiskTimeout.",
        None,
    ),
    (
        "flush.sync.write_buffers",
        "Segment-sized buffers appends go through, written out by each sync (0: append into the file mapping).",
        None,
    ),
    (
        "flush.async",
        "Settings of mode = \"async\", and of how mode = \"buffered\" flushes its files.",
        None,
    ),
    ("flush.async.interval", "Time between flushes.", None),
    (
        "flush.async.least_pages",
        "Flush only when at least this many 4 KiB pages are dirty...",
        None,
    ),
    (
        "flush.async.thorough_interval",
        "...and everything at least this often.",
        None,
    ),
    ("flush.buffered", "Settings of mode = \"buffered\".", None),
    (
        "flush.buffered.buffers",
        "Segment-sized write buffers in the pool.",
        None,
    ),
    (
        "flush.buffered.lock_memory",
        "Lock the buffers in memory (mlock; needs RLIMIT_MEMLOCK).",
        None,
    ),
    (
        "flush.buffered.commit_interval",
        "Time between commits of buffered bytes into the files.",
        None,
    ),
    ("commit_log", "The commit log's segment files.", None),
    (
        "commit_log.segment_size",
        "Size of each segment file (a new store only; an existing one keeps its size). At least 4KiB.",
        None,
    ),
    (
        "commit_log.warm_up",
        "Touch every page of a new segment before use, so that appends do not page-fault.",
        None,
    ),
    (
        "commit_log.zero_fill",
        "Write zeros over a new segment's blocks ahead of need: true, false or \"auto\" (on for sync flush).",
        None,
    ),
    ("consume_queue", "The consume queues' files.", None),
    (
        "consume_queue.units_per_segment",
        "Units (20 bytes each) per file, for new queues of a new store.",
        None,
    ),
    ("index", "The index by key and unique key.", None),
    (
        "index.enabled",
        "Build the index (without it, queries by key find nothing).",
        None,
    ),
    ("index.slots", "Hash slots per new index file.", None),
    ("index.entries", "Entries per new index file.", None),
    (
        "index.unique_keys",
        "Give a message without UNIQ_KEY one, indexed like a key.",
        None,
    ),
    ("replication", "Master/slave replication.", None),
    (
        "replication.role",
        "\"async_master\" (never waits for slaves), \"sync_master\" (acknowledges once slaves hold the bytes) or \"slave\".",
        None,
    ),
    (
        "replication.sync_timeout",
        "How long a sync master's put waits for its slaves before FlushSlaveTimeout.",
        None,
    ),
    (
        "replication.master",
        "The master's replication address (role = \"slave\").",
        Some("\"10.0.0.1:10912\""),
    ),
    (
        "replication.listen",
        "Where a master listens for slaves (none: it serves no slave; port 0 picks one).",
        Some("\"0.0.0.0:10912\""),
    ),
    (
        "replication.in_sync_slaves",
        "Slaves that must hold a put's bytes before a sync master acknowledges it.",
        None,
    ),
    (
        "replication.max_gap_not_in_sync",
        "A slave further behind than this is not in sync.",
        None,
    ),
    (
        "replication.transfer_batch",
        "Bytes of log sent to a slave per frame, at most.",
        None,
    ),
    (
        "replication.max_frame_size",
        "Largest frame accepted from a peer (must hold the largest record).",
        None,
    ),
    (
        "replication.heartbeat_interval",
        "Time between heartbeats on an idle connection.",
        None,
    ),
    (
        "replication.heartbeat_timeout",
        "A connection silent this long is dropped.",
        None,
    ),
    (
        "replication.reconnect_min",
        "A slave's first wait before reconnecting...",
        None,
    ),
    ("replication.reconnect_max", "...doubling up to this.", None),
    (
        "retention",
        "Deletion of old commit-log segments, and of the queue and index files with them. Hours are UTC.",
        None,
    ),
    (
        "retention.enabled",
        "Delete by itself (off: only when asked, and a full disk stops puts).",
        None,
    ),
    (
        "retention.file_reserved_time",
        "How long a segment is kept after its last write.",
        None,
    ),
    (
        "retention.delete_when",
        "Hours of the day at which expired segments are deleted.",
        None,
    ),
    (
        "retention.disk_max_used_space_ratio",
        "Above this disk usage, expired segments go at any hour.",
        None,
    ),
    (
        "retention.disk_space_clean_forcibly_ratio",
        "Above this, the oldest segments go whatever their age (if clean_file_forcibly).",
        None,
    ),
    (
        "retention.clean_file_forcibly",
        "Let a full disk delete segments that have not expired.",
        None,
    ),
    (
        "retention.delete_file_batch_max",
        "Segments deleted at most per pass.",
        None,
    ),
    ("retention.interval", "How often a pass runs.", None),
    (
        "retention.first_pass_delay",
        "How long after open the first pass runs.",
        None,
    ),
    (
        "retention.recycle_segments",
        "Deleted segments kept for reuse as the next ones (0: none).",
        None,
    ),
    (
        "retention.reserved_space",
        "Bytes of the file system kept free for queue and index files.",
        None,
    ),
    (
        "retention.disk_budget",
        "Measure disk usage against this budget for the commit log instead of the file system.",
        Some("\"64GiB\""),
    ),
];

/// Writes `table`'s keys (scalars first, then sub-tables) under `path`, each after its comment.
fn render_table(out: &mut String, path: &str, table: &toml::Table) {
    fn child_of<'k>(path: &str, k: &'k str) -> Option<&'k str> {
        let rest = if path.is_empty() {
            Some(k)
        } else {
            k.strip_prefix(path).and_then(|r| r.strip_prefix('.'))
        };
        rest.filter(|r| !r.contains('.'))
    }
    let mut tables = Vec::new();
    for (key, doc_text, example) in KEY_DOCS {
        let Some(leaf) = child_of(path, key) else {
            continue;
        };
        match table.get(leaf) {
            Some(toml::Value::Table(sub)) => tables.push((key, doc_text, sub)),
            Some(value) => {
                let _ = writeln!(out, "# {doc_text}\n{leaf} = {value}");
            }
            None => {
                if let Some(example) = example {
                    let _ = writeln!(out, "# {doc_text}\n# {leaf} = {example}");
                }
            }
        }
    }
    // Sub-tables after the keys (TOML puts a key after a table header into that table), in
    // the order of the documentation.
    for (key, doc_text, sub) in tables {
        let _ = writeln!(out, "\n# {doc_text}\n[{key}]");
        render_table(out, key, sub);
    }
}

fn parse(text: &str) -> std::result::Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

impl StoreConfig {
    /// Reads a configuration from a TOML file (`mqstore config --default` writes one with every
    /// key and its default). Unknown keys and bad values are errors naming the key and its line.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<StoreConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidConfig(format!("cannot read {}: {e}", path.display())))?;
        let file = parse(&text).map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())))?;
        file.store_config()
            .map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())))
    }

    /// The configuration as a TOML file that [`from_toml_file`](Self::from_toml_file) reads
    /// back to the same settings. Fails for what a file cannot name: a custom flusher, a custom
    /// disk-usage probe, a replication hook.
    pub fn to_toml(&self) -> Result<String> {
        let file = FileConfig::of(self)?;
        toml::to_string(&file).map_err(|e| Error::InvalidConfig(format!("cannot write the configuration: {e}")))
    }

    /// The full default configuration for a store in `dir` as a TOML file, every key with its
    /// default value and a comment (keys without a default commented out, with an example).
    pub fn default_toml(dir: impl Into<PathBuf>) -> String {
        let file = FileConfig::of(&StoreConfig::new(dir)).expect("the defaults have no custom part");
        let table = toml::Table::try_from(&file).expect("the file's shape is a table");
        let mut out = String::from(
            "# mqstore store configuration (StoreConfig::from_toml_file, mqstore --config FILE).\n\
             # Every key is optional but `dir`; sizes: \"1GiB\", \"512MiB\" or bytes; durations: \"500ms\", \"10s\", \"72h\".\n",
        );
        render_table(&mut out, "", &table);
        out
    }
}

impl FromStr for StoreConfig {
    type Err = Error;

    /// Reads a configuration from TOML text (see [`StoreConfig::from_toml_file`]).
    fn from_str(text: &str) -> Result<StoreConfig> {
        parse(text)
            .and_then(|file| file.store_config())
            .map_err(Error::InvalidConfig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(text: &str) -> FileConfig {
        parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn the_default_file_reads_back_as_the_defaults() {
        let text = StoreConfig::default_toml("/var/lib/mqstore");
        let expected = FileConfig::of(&StoreConfig::new("/var/lib/mqstore")).unwrap();
        assert_eq!(file_of(&text), expected);
        // Every key the file has is documented, and every documented key is in the file.
        for (key, ..) in KEY_DOCS {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{leaf} = "))
                    || l.starts_with(&format!("# {leaf} = "))
                    || l == format!("[{key}]")),
                "{key} missing from:\n{text}"
            );
        }
        let keys = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('[') && l.contains(" = "))
            .count();
        let commented = KEY_DOCS.iter().filter(|(_, _, example)| example.is_some()).count();
        let sections = text.lines().filter(|l| l.starts_with('[')).count();
        assert_eq!(keys + commented + sections, KEY_DOCS.len(), "{text}");
    }

    #[test]
    fn every_setting_round_trips() {
        let config = StoreConfig::new("/data/mq")
            .flush_policy(
                FlushPolicy::buffered()
                    .with_buffers(5, true)
                    .with_commit_interval(Duration::from_millis(50))
                    .with_interval(Duration::from_millis(250), 8, Duration::from_secs(3)),
            )
            .commit_log_segment_size(256 << 20)
            .consume_queue_units_per_segment(1000)
            .max_message_size(1 << 20)
            .max_queues_per_topic(16)
            .warm_up_segments(true)
            .zero_fill_segments(false)
            .verify_crc_on_read(false)
            .store_host("10.1.2.3:10911".parse().unwrap())
            .max_get_bytes(12345)
            .checkpoint_interval(Duration::from_millis(300))
            .message_index(false)
            .index_size(100, 400)
            .unique_keys(false)
            .role(Role::Slave {
                master: "10.0.0.9:10912".parse().unwrap(),
            })
            .replication(
                ReplicationConfig::default()
                    .listen("0.0.0.0:0".parse().unwrap())
                    .in_sync_slaves(2),
            )
            .consumer_offset_flush_interval(Duration::from_secs(2))
            .retention(
                RetentionConfig::default()
                    .delete_when([1, 13])
                    .file_reserved_time(Duration::from_secs(3600))
                    .disk_usage(DiskUsage::Budget(6 << 30)),
            );
        let text = config.to_toml().unwrap();
        let back: StoreConfig = text.parse().unwrap();
        assert_eq!(
            FileConfig::of(&back).unwrap(),
            FileConfig::of(&config).unwrap(),
            "{text}"
        );
        assert!(text.contains("segment_size = \"256MiB\""), "{text}");
        assert!(text.contains("max_get_bytes = 12345"), "{text}");
        assert!(text.contains("file_reserved_time = \"1h\""), "{text}");
        assert_eq!(back.flush.name(), "buffered");
        assert_eq!(back.zero_fill_segments, Some(false));
    }

    #[test]
    fn a_file_names_only_what_it_changes() {
        let c: StoreConfig = "dir = \"/d\"\n[flush]\nmode = \"sync\"\n[flush.sync]\ntimeout = \"2s\"\n\
                              [commit_log]\nsegment_size = \"64MiB\"\n[replication]\nrole = \"sync_master\"\n"
            .parse()
            .unwrap();
        assert_eq!(c.dir, Path::new("/d"));
        assert_eq!(c.commit_log_segment_size, 64 << 20);
        assert!(c.flush.is_sync());
        assert_eq!(
            c.flush.settings(),
            Some(BuiltIn::Sync(SyncFlush {
                timeout: Duration::from_secs(2),
                write_buffers: 2
            }))
        );
        assert!(matches!(c.role, Role::SyncMaster { timeout } if timeout == Duration::from_secs(3)));
        assert_eq!(c.max_message_size, StoreConfig::new("").max_message_size);
    }

    fn error_of(text: &str) -> String {
        match text.parse::<StoreConfig>() {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(Error::InvalidConfig(why)) => why,
            Err(e) => panic!("not a config error: {e}"),
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_the_line() {
        let e = error_of("dir = \"/d\"\n[commit_log]\nsegmnet_size = \"1GiB\"\n");
        assert!(e.contains("line 3") && e.contains("segmnet_size"), "{e}");
        let e = error_of("dir = \"/d\"\n\n[flush.async]\ninterval = \"soon\"\n");
        assert!(e.contains("line 4") && e.contains("\"soon\" is not a duration"), "{e}");
        let e = error_of("dir = \"/d\"\n[commit_log]\nsegment_size = \"1 gigantic\"\n");
        assert!(e.contains("line 3") && e.contains("not a size"), "{e}");
        let e = error_of("dir = \"/d\"\nmax_queues_per_topic = \"many\"\n");
        assert!(e.contains("line 2") && e.contains("max_queues_per_topic"), "{e}");
        let e = error_of("dir = \"/d\"\n[flush]\nmode = \"sometimes\"\n");
        assert!(e.contains("line 3") && e.contains("sometimes"), "{e}");
        let e = error_of("[flush]\nmode = \"sync\"\n");
        assert!(e.contains("dir"), "{e}");
        // Values of the right type that the store refuses: the builder's own checks.
        let e = error_of("dir = \"/d\"\n[commit_log]\nsegment_size = \"1KiB\"\n");
        assert!(e.contains("below 4096"), "{e}");
        let e = error_of("dir = \"/d\"\n[retention]\ndelete_when = [4, 25]\n");
        assert!(e.contains("25"), "{e}");
        let e = error_of("dir = \"/d\"\n[replication]\nrole = \"slave\"\n");
        assert!(e.contains("master"), "{e}");
    }

    #[test]
    fn the_readme_example_reads() {
        let readme = include_str!("../../README.md");
        let start = readme.find("```toml\n").expect("a TOML example") + "```toml\n".len();
        let end = start + readme[start..].find("```").expect("its end");
        let c: StoreConfig = readme[start..end].parse().unwrap();
        assert!(c.flush.is_sync());
        assert_eq!(c.commit_log_segment_size, 256 << 20);
        assert!(matches!(c.role, Role::SyncMaster { .. }));
        assert_eq!(c.retention.file_reserved_time, Duration::from_secs(48 * 3600));
    }

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        let c: StoreConfig = "dir = \"/d\"\nmax_message_size = 65536\nmax_get_bytes = \"1MB\"\n\
                              checkpoint_interval = \"1m 30s\"\n[retention]\nfile_reserved_time = \"3days\"\n"
            .parse()
            .unwrap();
        assert_eq!(c.max_message_size, 65536);
        assert_eq!(c.max_get_bytes, 1_000_000);
        assert_eq!(c.checkpoint_interval_ms, 90_000);
        assert_eq!(c.retention.file_reserved_time, Duration::from_secs(3 * 86_400));
    }
}
