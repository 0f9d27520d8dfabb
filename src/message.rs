//! What producers give ([`Message`]), what consumers get ([`StoredMessage`]), the results of
//! put and get, and the validation of names and sizes.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use crate::codec::{self, RecordShape};
use crate::error::{Error, Result};
use crate::segment::SegmentRead;
use crate::segment::buffer::BufferSlice;
use crate::unique_key::UniqueKey;

/// Longest topic name, in bytes (RocketMQ's `maxTopicLength`). Defined with the rule that
/// checks topic names, below the configuration and the queues that use it.
pub const MAX_TOPIC_LEN: usize = 127;

/// A message as a producer hands it to [`MessageStore::put`](crate::MessageStore::put).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub(crate) topic: String,
    pub(crate) queue_id: u32,
    pub(crate) body: Vec<u8>,
    pub(crate) tags: Option<String>,
    pub(crate) keys: Vec<String>,
    pub(crate) properties: Vec<(String, String)>,
    pub(crate) flag: i32,
    pub(crate) born_timestamp: Option<u64>,
    pub(crate) born_host: SocketAddr,
    pub(crate) sys_flag: i32,
    pub(crate) reconsume_times: i32,
}

/// The sysFlag bits a producer may set: they describe the body (compressed, and how) and its
/// tags. The store sets the others itself (host address families) or does not support them
/// (transactions, batches stored as one record).
pub const PRODUCER_SYS_FLAGS: i32 = codec::COMPRESSED | codec::MULTI_TAGS | codec::COMPRESSION_TYPE_MASK;

impl Message {
    /// A message for `topic`, queue `queue_id`, with `body`.
    pub fn new(topic: impl Into<String>, queue_id: u32, body: impl Into<Vec<u8>>) -> Self {
        Message {
            topic: topic.into(),
            queue_id,
            body: body.into(),
            tags: None,
            keys: Vec::new(),
            properties: Vec::new(),
            flag: 0,
            born_timestamp: None,
            born_host: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            sys_flag: 0,
            reconsume_times: 0,
        }
    }

    /// Sets the tag (RocketMQ's `TAGS` property), used by consumers' filters.
    #[must_use]
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.tags = Some(tags.into());
        self
    }

    /// Sets the keys (RocketMQ's `KEYS` property), indexed for lookup by key. A key may not
    /// contain a space (keys are stored space-separated).
    #[must_use]
    pub fn with_keys<K: Into<String>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        self.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a user property. Names `TAGS`, `KEYS` and `__CRC32#` are reserved.
    #[must_use]
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Sets the application flag stored with the message (default 0).
    #[must_use]
    pub fn with_flag(mut self, flag: i32) -> Self {
        self.flag = flag;
        self
    }

    /// Sets the producer-side creation time in ms since the epoch (default: the time of `put`).
    #[must_use]
    pub fn with_born_timestamp(mut self, millis: u64) -> Self {
        self.born_timestamp = Some(millis);
        self
    }

    /// Sets the producer's address (default 127.0.0.1:0).
    #[must_use]
    pub fn with_born_host(mut self, addr: SocketAddr) -> Self {
        self.born_host = addr;
        self
    }

    /// Sets the sysFlag bits that describe the body as the producer sent it (RocketMQ clients
    /// compress large bodies and say so here; consumers read the bits back to decompress).
    /// Only the bits of [`PRODUCER_SYS_FLAGS`] are accepted: others fail the put with
    /// [`Error::InvalidSysFlag`].
    #[must_use]
    pub fn with_sys_flag(mut self, sys_flag: i32) -> Self {
        self.sys_flag = sys_flag;
        self
    }

    /// Sets how many times the message was consumed and handed back before (a broker re-putting
    /// a message whose consumption failed counts up here; default 0).
    #[must_use]
    pub fn with_reconsume_times(mut self, times: i32) -> Self {
        self.reconsume_times = times;
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queue id.
    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, to change in place: a producer that appends with
    /// [`put_ref`](crate::MessageStore::put_ref) can refill one message for each append instead
    /// of allocating a new one.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// Moves the message to another queue of its topic.
    pub fn set_queue_id(&mut self, queue_id: u32) {
        self.queue_id = queue_id;
    }

    /// Appends the properties (TAGS, user properties in order, then KEYS, then `unique` as
    /// UNIQ_KEY) to `out`, without allocating beyond `out`'s growth; on an error `out` is left
    /// as it was.
    pub(crate) fn encode_properties(&self, out: &mut Vec<u8>, unique: Option<&UniqueKey>) -> Result<()> {
        let tags = self.tags.as_deref().map(|t| (codec::PROPERTY_TAGS, t));
        let user = self.properties.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        codec::encode_properties_with_keys(tags.into_iter().chain(user), &self.keys, out)?;
        if let Some(key) = unique {
            out.extend_from_slice(codec::PROPERTY_UNIQ_KEY.as_bytes());
            out.push(codec::NAME_VALUE_SEPARATOR);
            out.extend_from_slice(&key.hex());
            out.push(codec::PROPERTY_SEPARATOR);
        }
        Ok(())
    }

    /// Whether the producer set a `UNIQ_KEY` property.
    pub(crate) fn has_unique_key(&self) -> bool {
        self.properties.iter().any(|(k, _)| k == codec::PROPERTY_UNIQ_KEY)
    }

    /// Checks everything that does not depend on the store's state.
    pub(crate) fn validate(&self, max_queues: u32, max_body: usize) -> Result<()> {
        validate_topic(&self.topic)?;
        if self.queue_id >= max_queues {
            return Err(Error::QueueIdOutOfRange {
                queue_id: self.queue_id,
                max: max_queues,
            });
        }
        if self.body.len() > max_body {
            return Err(Error::MessageTooLarge {
                size: self.body.len(),
                max: max_body,
            });
        }
        if self.sys_flag & !PRODUCER_SYS_FLAGS != 0 {
            return Err(Error::InvalidSysFlag {
                sys_flag: self.sys_flag,
            });
        }
        if let Some(tags) = &self.tags
            && tags.is_empty()
        {
            return Err(Error::InvalidProperty {
                key: codec::PROPERTY_TAGS.into(),
                reason: "empty tag",
            });
        }
        for key in &self.keys {
            if key.is_empty() || key.contains(' ') {
                return Err(Error::InvalidProperty {
                    key: codec::PROPERTY_KEYS.into(),
                    reason: "a key must be non-empty and contain no space",
                });
            }
        }
        for (k, _) in &self.properties {
            if k == codec::PROPERTY_TAGS || k == codec::PROPERTY_KEYS || k == codec::CRC_PROPERTY_KEY {
                return Err(Error::InvalidProperty {
                    key: k.clone(),
                    reason: "reserved property name: use with_tags / with_keys",
                });
            }
        }
        Ok(())
    }
}

/// Checks a topic name: non-empty, at most 127 bytes, only ASCII letters, digits, `-`, `_`, `%`
/// and `|`. A topic becomes a directory name, so nothing else is let through.
pub fn validate_topic(topic: &str) -> Result<()> {
    match name_problem(topic, MAX_TOPIC_LEN, "longer than 127 bytes") {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidTopic {
            topic: topic.chars().take(200).collect(),
            reason,
        }),
    }
}

/// What is wrong with a topic or group name, if anything: both become file or directory names
/// (or parts of them), so the same characters are let through.
fn name_problem(name: &str, max: usize, too_long: &'static str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > max {
        Some(too_long)
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'%' | b'|'))
    {
        Some("only ASCII letters, digits, '-', '_', '%' and '|' are allowed")
    } else {
        None
    }
}

/// Longest consumer-group name, in bytes (RocketMQ's limit on group names).
pub const MAX_GROUP_LEN: usize = 255;

/// Checks a consumer-group name: non-empty, at most 255 bytes, and the characters of a topic
/// (ASCII letters, digits, `-`, `_`, `%` and `|`). The offset table keys its entries
/// `topic@group`, so `@` must stay out; the rest matches RocketMQ's own group check.
pub fn validate_group(group: &str) -> Result<()> {
    let reason = name_problem(group, MAX_GROUP_LEN, "longer than 255 bytes");
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidGroup {
            group: group.chars().take(300).collect(),
            reason,
        }),
    }
}

/// Outcome of a put that appended its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PutStatus {
    /// Appended, and durable (and replicated) as the policy promises.
    Ok,
    /// Appended, but the flush did not complete within the policy's timeout (or failed).
    FlushDiskTimeout,
    /// Appended, but the slave did not acknowledge within the timeout.
    FlushSlaveTimeout,
    /// Appended, but no slave was available to replicate to.
    SlaveNotAvailable,
}

/// Result of one appended message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutResult {
    /// Whether the durability the policy promises was confirmed.
    pub status: PutStatus,
    /// Where the record starts in the commit log.
    pub commit_log_offset: u64,
    /// The message's offset in its queue (dense from 0).
    pub queue_offset: u64,
    /// Bytes of the record in the commit log.
    pub wrote_bytes: u32,
    /// The store timestamp assigned (ms since the epoch); never decreases along the log.
    pub store_timestamp: u64,
    /// The STOREHOST written in the record (part of the message id).
    pub store_host: SocketAddr,
    /// The `UNIQ_KEY` the store gave the message (`None`: the producer set one, or the store
    /// gives none, see [`StoreConfig::unique_keys`](crate::StoreConfig::unique_keys)). Find the
    /// message by it with [`query_by_key`](crate::MessageStore::query_by_key).
    pub unique_key: Option<UniqueKey>,
}

impl PutResult {
    /// RocketMQ's store-assigned message id (`offsetMsgId`): hex of the store host and the
    /// commit-log offset. [`get_by_id`](crate::MessageStore::get_by_id) reads the message back.
    pub fn msg_id(&self) -> String {
        codec::offset_msg_id(self.store_host, self.commit_log_offset)
    }
}

/// Outcome of a get, with RocketMQ's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GetStatus {
    /// At least one message is returned.
    Found,
    /// Messages were scanned but none matched the filter; `next_offset` skips them.
    NoMatchedMessage,
    /// The commit-log region a unit points to was removed by retention.
    MessageWasRemoving,
    /// No consume-queue unit at the offset (a hole or a removed file).
    OffsetFoundNull,
    /// The offset is more than one past the last message.
    OffsetOverflowBadly,
    /// The offset is exactly one past the last message: the consumer is caught up.
    OffsetOverflowOne,
    /// The offset is below the queue's minimum (removed by retention).
    OffsetTooSmall,
    /// RocketMQ's status for a queue that does not exist. Kept for brokers that map RocketMQ's
    /// codes; this store answers `NoMessageInQueue` for a queue never written, as RocketMQ does
    /// in practice (it creates queues on lookup).
    NoMatchedLogicQueue,
    /// The queue has no message yet.
    NoMessageInQueue,
}

/// The result of [`MessageStore::get`](crate::MessageStore::get).
#[derive(Clone, Debug)]
pub struct GetResult {
    /// What happened.
    pub status: GetStatus,
    /// The messages found, in queue order.
    pub messages: Vec<StoredMessage>,
    /// The offset to ask for next.
    pub next_offset: u64,
    /// The queue's smallest offset.
    pub min_offset: u64,
    /// One past the queue's last dispatched message.
    pub max_offset: u64,
}

/// Where a message's bytes live: the mapped segment file, or (with the buffered policy) the
/// write buffer they were appended to and not yet committed from.
#[derive(Clone)]
pub(crate) enum MessageSource {
    /// A segment and the record's position in it.
    Mapped(Arc<dyn SegmentRead>, u64),
    /// A slice of a write buffer starting with the record.
    Buffered(BufferSlice),
}

/// A message read from the store. The body and strings are borrowed from the mapped segment
/// (or write buffer), which the message keeps alive: no copy is made.
#[derive(Clone)]
pub struct StoredMessage {
    source: MessageSource,
    commit_log_offset: u64,
    /// Where the record's parts lie; other fields are read from the bytes when asked for, so a
    /// message costs a few words however many fields a consumer ends up reading.
    shape: RecordShape,
}

impl StoredMessage {
    /// Builds a message from a checked record whose bytes live in `source`.
    pub(crate) fn new(source: MessageSource, commit_log_offset: u64, shape: RecordShape) -> Self {
        StoredMessage {
            source,
            commit_log_offset,
            shape,
        }
    }

    /// The whole encoded record, as stored in the commit log.
    pub fn record(&self) -> &[u8] {
        // The record was validated when this message was built, and a segment's published bytes
        // never shrink while a handle exists, so the read cannot fail; the empty fallback only
        // keeps this total.
        let bytes = match &self.source {
            MessageSource::Mapped(segment, pos) => segment.read_bytes(*pos, self.shape.total_size as usize),
            MessageSource::Buffered(slice) => slice.get(..self.shape.total_size as usize),
        };
        bytes.unwrap_or(&[])
    }

    fn str_field(&self, part: (u32, u32)) -> &str {
        // Validated as UTF-8 at decode time.
        std::str::from_utf8(RecordShape::part(self.record(), part)).unwrap_or("")
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        RecordShape::part(self.record(), self.shape.body)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.str_field(self.shape.topic)
    }

    /// The encoded properties (`key 0x01 value 0x02 ...`).
    pub fn properties_raw(&self) -> &str {
        self.str_field(self.shape.properties)
    }

    /// A property by name (the last one, should the name repeat, as RocketMQ's reader keeps).
    pub fn property(&self, key: &str) -> Option<&str> {
        codec::properties(self.properties_raw())
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }

    /// User properties: all but TAGS, KEYS and the record CRC.
    pub fn user_properties(&self) -> impl Iterator<Item = (&str, &str)> {
        codec::properties(self.properties_raw())
            .filter(|(k, _)| *k != codec::PROPERTY_TAGS && *k != codec::PROPERTY_KEYS && *k != codec::CRC_PROPERTY_KEY)
    }

    /// The tag, if any.
    pub fn tags(&self) -> Option<&str> {
        self.property(codec::PROPERTY_TAGS).filter(|t| !t.is_empty())
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<&str> {
        self.property(codec::PROPERTY_KEYS)
            .map(|k| k.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }

    /// The queue id.
    pub fn queue_id(&self) -> u32 {
        self.shape.queue_id
    }

    /// The offset in its queue.
    pub fn queue_offset(&self) -> u64 {
        self.shape.queue_offset
    }

    /// Where the record starts in the commit log.
    pub fn commit_log_offset(&self) -> u64 {
        self.commit_log_offset
    }

    /// The record's total size in the commit log.
    pub fn size(&self) -> u32 {
        self.shape.total_size
    }

    /// Store time in ms since the epoch.
    pub fn store_timestamp(&self) -> u64 {
        self.shape.store_timestamp(self.record()).max(0) as u64
    }

    /// Producer-side creation time in ms since the epoch.
    pub fn born_timestamp(&self) -> u64 {
        self.shape.born_timestamp(self.record()).max(0) as u64
    }

    /// The producer's address.
    pub fn born_host(&self) -> SocketAddr {
        self.shape.born_host(self.record())
    }

    /// The storing broker's address.
    pub fn store_host(&self) -> SocketAddr {
        self.shape.store_host(self.record())
    }

    /// The application flag.
    pub fn flag(&self) -> i32 {
        self.shape.flag(self.record())
    }

    /// RocketMQ's sysFlag bits.
    pub fn sys_flag(&self) -> i32 {
        self.shape.sys_flag
    }

    /// Redelivery count.
    pub fn reconsume_times(&self) -> i32 {
        self.shape.reconsume_times(self.record())
    }

    /// The body CRC as stored (CRC32 masked with 0x7FFFFFFF).
    pub fn body_crc(&self) -> u32 {
        self.shape.body_crc(self.record())
    }

    /// The `UNIQ_KEY` property: the producer's unique id, or the one the store gave.
    pub fn unique_key(&self) -> Option<&str> {
        self.property(codec::PROPERTY_UNIQ_KEY)
    }

    /// RocketMQ's store-assigned message id (hex of store host and commit-log offset).
    pub fn msg_id(&self) -> String {
        codec::offset_msg_id(self.store_host(), self.commit_log_offset)
    }
}

impl std::fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMessage")
            .field("topic", &self.topic())
            .field("queue_id", &self.shape.queue_id)
            .field("queue_offset", &self.shape.queue_offset)
            .field("commit_log_offset", &self.commit_log_offset)
            .field("size", &self.shape.total_size)
            .field("tags", &self.tags())
            .field("body_len", &self.shape.body.1)
            .field("store_timestamp", &self.store_timestamp())
            .finish()
    }
}

/// A subscription's tag filter: `*` (everything) or `TagA || TagB`. Matches by the tag hash in
/// the consume queue, then confirms on the record's tag string (hashes collide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFilter {
    tags: Vec<(i64, String)>,
}

impl TagFilter {
    /// Everything matches.
    pub fn all() -> Self {
        TagFilter { tags: Vec::new() }
    }

    /// Parses a subscription expression: `*`, empty, or tags separated by `||`.
    pub fn parse(expr: &str) -> Self {
        let expr = expr.trim();
        if expr.is_empty() || expr == "*" {
            return Self::all();
        }
        let mut tags: Vec<(i64, String)> = expr
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| (codec::tags_code(t), t.to_string()))
            .collect();
        tags.sort();
        tags.dedup();
        TagFilter { tags }
    }

    /// Whether every message matches.
    pub fn is_all(&self) -> bool {
        self.tags.is_empty()
    }

    /// First pass, on the consume queue's tag hash.
    pub(crate) fn matches_code(&self, code: i64) -> bool {
        self.is_all() || self.tags.iter().any(|(c, _)| *c == code)
    }

    /// Second pass, on the record's tag string.
    pub(crate) fn matches_message(&self, msg: &StoredMessage) -> bool {
        // `All` first: finding the tags means scanning the record's properties.
        self.is_all() || msg.tags().is_some_and(|t| self.tags.iter().any(|(_, s)| s == t))
    }
}
