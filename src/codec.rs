//! The commit-log record, byte for byte as Apache RocketMQ writes it.
//!
//! This module is the only code that reads or writes the bytes of a record. `docs/format.md`
//! tells the layout in prose; the constants below name every magic number and field width once.
//!
//! Writing: the store measures a record with [`RecordPlan::new`], reserves that many bytes of a
//! segment under its append lock (where the queue offset, physical offset and store timestamp
//! are assigned), and writes the whole record into them outside the lock with
//! [`RecordPlan::write`]: one copy of the body, its CRC, and one CRC pass over the record.
//! [`EncodedRecord`] serves callers that encode before they know where a record goes: it lays
//! out every field and most of the whole-record CRC up front, and [`EncodedRecord::seal`] patches
//! the three values in and finishes the CRC in constant time whatever the record's length.
//!
//! Reading is [`decode`]: it never panics and never allocates, whatever the bytes, and returns
//! either a [`RecordView`] borrowing from the buffer or a [`DecodeError`] saying what is wrong.

use std::cell::RefCell;
use std::fmt;
use std::iter::FusedIterator;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a record or its properties cannot be encoded. The crate's [`Error`](crate::Error) has a
/// variant of the same name and shape for each (`From` converts), so a put reports them as
/// the store's own errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The topic is empty or too long for the record format.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The rejected name (lossy, for display).
        topic: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The queue id does not fit the on-disk field.
    #[error("queue id {queue_id} out of range: at most {max} queues per topic")]
    QueueIdOutOfRange {
        /// The rejected queue id.
        queue_id: u32,
        /// The largest the format holds, plus one.
        max: u32,
    },
    /// A property key or value is not representable in RocketMQ's property encoding.
    #[error("invalid property {key:?}: {reason}")]
    InvalidProperty {
        /// The property's key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The encoded properties exceed what the format holds.
    #[error("properties of {size} bytes exceed the maximum of {max} bytes")]
    PropertiesTooLarge {
        /// Encoded properties length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The record would exceed what the format's size field holds.
    #[error("message body of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// Body length.
        size: usize,
        /// The limit.
        max: usize,
    },
}

type Result<T, E = EncodeError> = std::result::Result<T, E>;

#[cfg(test)]
mod golden_tests;

/// Magic of a record whose topic length is one byte (RocketMQ's message version V1).
pub const MAGIC_V1: u32 = 0xDAA3_20A7;
/// Magic of a record whose topic length is two bytes (RocketMQ's message version V2).
pub const MAGIC_V2: u32 = 0xDAA3_20AB;
/// Magic of the end-of-segment filler.
pub const MAGIC_BLANK: u32 = 0xCBD4_3194;
/// Length of the end-of-segment filler, `[i32 remaining][i32 MAGIC_BLANK]`.
///
/// It is also the slack a segment always keeps at its end: a record of `len` bytes goes into a
/// segment only if `len + BLANK_LEN` bytes remain, so there is always room for the filler.
pub const BLANK_LEN: usize = 8;
/// Largest encoded properties, CRC property included (the length field is an `i16`).
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;
/// Longest topic written with [`MAGIC_V1`]; longer topics get [`MAGIC_V2`].
pub const MAX_V1_TOPIC_LEN: usize = 127;
/// Longest topic the record format can hold, in bytes (the V2 length field is an `i16`): what a
/// record read from disk may carry. The store accepts shorter topics for puts
/// ([`config::MAX_TOPIC_LEN`](crate::config::MAX_TOPIC_LEN), RocketMQ's 127), as a topic names a
/// directory.
pub const MAX_ENCODED_TOPIC_LEN: usize = i16::MAX as usize;
/// Length of the smallest possible record: V1, IPv4 hosts, empty body, topic and properties.
pub const MIN_RECORD_LEN: usize = 91;
/// Key of RocketMQ's whole-record CRC property.
pub const CRC_PROPERTY_KEY: &str = "__CRC32#";
/// Length of the whole-record CRC property: key, `0x01`, ten digits, `0x02`.
pub const CRC_PROPERTY_LEN: usize = 20;
/// Property holding the message's tag; its Java hash is the consume-queue tag code.
pub const PROPERTY_TAGS: &str = "TAGS";
/// Property holding the message's keys, separated by [`KEY_SEPARATOR`]; each is indexed.
pub const PROPERTY_KEYS: &str = "KEYS";
/// Property holding the client-assigned unique message id; indexed.
pub const PROPERTY_UNIQ_KEY: &str = "UNIQ_KEY";
/// Separator between the keys in [`PROPERTY_KEYS`].
pub const KEY_SEPARATOR: char = ' ';
/// Byte between a property's key and its value.
pub const NAME_VALUE_SEPARATOR: u8 = 0x01;
/// Byte after each property's value.
pub const PROPERTY_SEPARATOR: u8 = 0x02;

/// sysFlag bit: the body is compressed by the client.
pub const COMPRESSED: i32 = 1;
/// sysFlag bit: the message carries several tags.
pub const MULTI_TAGS: i32 = 1 << 1;
/// sysFlag bits 2–3: the transaction type, one of the `TRANSACTION_*_TYPE` values.
pub const TRANSACTION_TYPE_MASK: i32 = 0b11 << 2;
/// Transaction type: not part of a transaction.
pub const TRANSACTION_NOT_TYPE: i32 = 0;
/// Transaction type: a half message waiting for commit or rollback; never dispatched.
pub const TRANSACTION_PREPARED_TYPE: i32 = 1 << 2;
/// Transaction type: the commit of a half message.
pub const TRANSACTION_COMMIT_TYPE: i32 = 2 << 2;
/// Transaction type: the rollback of a half message; never dispatched.
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 3 << 2;
/// sysFlag bit: the born host is IPv6 (20 bytes instead of 8). The encoder sets it itself.
pub const BORNHOST_V6: i32 = 1 << 4;
/// sysFlag bit: the store host is IPv6 (20 bytes instead of 8). The encoder sets it itself.
pub const STOREHOST_V6: i32 = 1 << 5;
/// sysFlag bit: the record is a batch that needs unwrapping.
pub const NEED_UNWRAP: i32 = 1 << 6;
/// sysFlag bit: one record holds several messages (inner batch).
pub const INNER_BATCH: i32 = 1 << 7;
/// sysFlag bits 8–10: the compression type, one of the `COMPRESSION_*` values.
pub const COMPRESSION_TYPE_MASK: i32 = 0b111 << 8;
/// Compression type: LZ4.
pub const COMPRESSION_LZ4: i32 = 1 << 8;
/// Compression type: Zstandard.
pub const COMPRESSION_ZSTD: i32 = 2 << 8;
/// Compression type: zlib.
pub const COMPRESSION_ZLIB: i32 = 3 << 8;

// Field positions that do not depend on the host address families. Everything after the born
// host moves with BORNHOST_V6 and STOREHOST_V6, so it lives in `Layout`.
const POS_TOTAL_SIZE: usize = 0;
const POS_MAGIC: usize = 4;
const POS_BODY_CRC: usize = 8;
const POS_QUEUE_ID: usize = 12;
const POS_FLAG: usize = 16;
const POS_QUEUE_OFFSET: usize = 20;
const POS_PHYSICAL_OFFSET: usize = 28;
const POS_SYS_FLAG: usize = 36;
const POS_BORN_TIMESTAMP: usize = 40;
const POS_BORN_HOST: usize = 48;
const IPV4_HOST_LEN: usize = 4 + 4;
const IPV6_HOST_LEN: usize = 16 + 4;
const CRC_MASK: u32 = 0x7FFF_FFFF;
const CRC_DIGITS: usize = 10;
/// What the encoder writes before `seal`: the CRC property with a zero CRC.
const CRC_PROPERTY_TEMPLATE: [u8; CRC_PROPERTY_LEN] = {
    let key = CRC_PROPERTY_KEY.as_bytes();
    let mut template = [b'0'; CRC_PROPERTY_LEN];
    let mut i = 0;
    while i < key.len() {
        template[i] = key[i];
        i += 1;
    }
    template[key.len()] = NAME_VALUE_SEPARATOR;
    template[CRC_PROPERTY_LEN - 1] = PROPERTY_SEPARATOR;
    template
};
const _: () = assert!(CRC_PROPERTY_KEY.len() + 1 + CRC_DIGITS + 1 == CRC_PROPERTY_LEN);
const _: () = assert!(Layout::new(0).fixed_len(false) == MIN_RECORD_LEN);

/// Java's `String.hashCode`: `h = 31 * h + c` over the UTF-16 code units, wrapping.
///
/// RocketMQ hashes tags and index keys this way, so characters outside the Basic Multilingual
/// Plane count as their two surrogates.
#[must_use]
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// The consume-queue tag code of a tag: [`java_hash`] sign-extended to `i64` (0 for `""`).
#[must_use]
pub fn tags_code(tags: &str) -> i64 {
    i64::from(java_hash(tags))
}

/// CRC32 (IEEE, as `java.util.zip.CRC32`) with the top bit cleared, as RocketMQ stores it.
#[must_use]
pub fn masked_crc32(data: &[u8]) -> u32 {
    crc32(data) & CRC_MASK
}

/// `crc32fast::hash` without its CPU feature detection on every call: a message costs two or
/// three CRCs on the put and read paths, where the detection showed in profiles.
fn crc32(data: &[u8]) -> u32 {
    static TEMPLATE: std::sync::LazyLock<crc32fast::Hasher> = std::sync::LazyLock::new(crc32fast::Hasher::new);
    let mut hasher = TEMPLATE.clone();
    hasher.update(data);
    hasher.finalize()
}

/// Appends `key 0x01 value 0x02` for each pair.
///
/// A pair with an empty value is left out: RocketMQ's reader drops it, so writing it would only
/// cost bytes. On error `out` is restored to its length on entry.
///
/// # Errors
/// [`EncodeError::InvalidProperty`] if a key is empty or is [`CRC_PROPERTY_KEY`] (the store writes that
/// one itself), or if a key or value contains [`NAME_VALUE_SEPARATOR`] or [`PROPERTY_SEPARATOR`].
pub fn encode_properties<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, out: &mut Vec<u8>) -> Result<()> {
    encode_properties_with_keys(pairs, &[], out)
}

/// As [`encode_properties`], then the `KEYS` property with `keys` joined by
/// [`KEY_SEPARATOR`], written in place (no joined string is built). Empty `keys`: no `KEYS`.
pub fn encode_properties_with_keys<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    keys: &[String],
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    for (key, value) in pairs {
        if let Err(reason) = check_property(key, value) {
            out.truncate(start);
            return Err(EncodeError::InvalidProperty {
                key: display_prefix(key),
                reason,
            });
        }
        if value.is_empty() {
            continue;
        }
        out.extend_from_slice(key.as_bytes());
        out.push(NAME_VALUE_SEPARATOR);
        out.extend_from_slice(value.as_bytes());
        out.push(PROPERTY_SEPARATOR);
    }
    if keys.iter().any(|k| !k.is_empty()) {
        out.extend_from_slice(PROPERTY_KEYS.as_bytes());
        out.push(NAME_VALUE_SEPARATOR);
        for (i, k) in keys.iter().enumerate() {
            if let Err(reason) = check_property(PROPERTY_KEYS, k) {
                out.truncate(start);
                return Err(EncodeError::InvalidProperty {
                    key: PROPERTY_KEYS.into(),
                    reason,
                });
            }
            if i > 0 {
                out.push(KEY_SEPARATOR as u8);
            }
            out.extend_from_slice(k.as_bytes());
        }
        out.push(PROPERTY_SEPARATOR);
    }
    Ok(())
}

fn check_property(key: &str, value: &str) -> std::result::Result<(), &'static str> {
    let has_separator = |s: &str| s.bytes().any(|b| b == NAME_VALUE_SEPARATOR || b == PROPERTY_SEPARATOR);
    if key.is_empty() {
        Err("empty key")
    } else if key == CRC_PROPERTY_KEY {
        Err("reserved for the record CRC written by the store")
    } else if has_separator(key) {
        Err("key contains a separator byte (0x01 or 0x02)")
    } else if has_separator(value) {
        Err("value contains a separator byte (0x01 or 0x02)")
    } else {
        Ok(())
    }
}

/// Error payloads carry names for display only; a megabyte-long name would swamp a log line.
fn display_prefix(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Iterator over the `(key, value)` pairs of an encoded properties blob; see [`properties`].
#[derive(Clone, Debug)]
pub struct PropertyIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for PropertyIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (segment, rest) = self
                .rest
                .split_once(char::from(PROPERTY_SEPARATOR))
                .unwrap_or((self.rest, ""));
            self.rest = rest;
            // RocketMQ's reader keeps a pair only when both sides are non-empty; a value may
            // itself contain 0x01 (only the first one separates).
            if let Some((key, value)) = segment.split_once(char::from(NAME_VALUE_SEPARATOR))
                && !key.is_empty()
                && !value.is_empty()
            {
                return Some((key, value));
            }
        }
        None
    }
}

impl FusedIterator for PropertyIter<'_> {}

/// Iterates the pairs of an encoded properties blob, in order, duplicates included.
///
/// Parsing follows RocketMQ's reader: the blob is split on `0x02` (the last pair may lack it),
/// each piece on its first `0x01`; a piece without `0x01`, with an empty key or with an empty
/// value is skipped. Where a key repeats, RocketMQ's map keeps the last value.
#[must_use]
pub fn properties(blob: &str) -> PropertyIter<'_> {
    PropertyIter { rest: blob }
}

/// Everything an encoder needs to know about a message.
///
/// The queue offset, physical offset and store timestamp are not here: the store assigns them
/// under its append lock and writes them with the record ([`RecordPlan::write`]).
#[derive(Clone, Copy, Debug)]
pub struct RecordSpec<'a> {
    /// Topic; 1 to [`MAX_ENCODED_TOPIC_LEN`] bytes.
    pub topic: &'a str,
    /// Queue id within the topic; at most `i32::MAX` (it is an `i32` on disk).
    pub queue_id: u32,
    /// Opaque application flag, stored unchanged.
    pub flag: i32,
    /// The caller's sysFlag bits. [`BORNHOST_V6`] and [`STOREHOST_V6`] are ignored: the encoder
    /// derives them from `born_host` and `store_host`.
    pub sys_flag: i32,
    /// Producer-side creation time, ms since the epoch.
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// This broker's address.
    pub store_host: SocketAddr,
    /// Redelivery count.
    pub reconsume_times: i32,
    /// For a transaction commit or rollback, the commit-log offset of the half message.
    pub prepared_transaction_offset: i64,
    /// Body, stored as given (possibly compressed by the client).
    pub body: &'a [u8],
    /// Properties already encoded (see [`encode_properties`]), without the CRC property; may be
    /// empty. Must be valid UTF-8.
    pub properties: &'a [u8],
}

/// Positions of the fields that move with the host address families.
#[derive(Clone, Copy, Debug)]
struct Layout {
    born_host_len: usize,
    store_host_len: usize,
}

impl Layout {
    const fn new(sys_flag: i32) -> Layout {
        Layout {
            born_host_len: host_len(sys_flag & BORNHOST_V6 != 0),
            store_host_len: host_len(sys_flag & STOREHOST_V6 != 0),
        }
    }

    const fn store_timestamp(self) -> usize {
        POS_BORN_HOST + self.born_host_len
    }

    const fn store_host(self) -> usize {
        self.store_timestamp() + 8
    }

    const fn reconsume_times(self) -> usize {
        self.store_host() + self.store_host_len
    }

    const fn prepared_transaction_offset(self) -> usize {
        self.reconsume_times() + 4
    }

    const fn body_length(self) -> usize {
        self.prepared_transaction_offset() + 8
    }

    /// Length of a record with empty body, topic and properties.
    const fn fixed_len(self, v2: bool) -> usize {
        self.body_length() + 4 + topic_length_width(v2) + 2
    }
}

const fn host_len(v6: bool) -> usize {
    if v6 { IPV6_HOST_LEN } else { IPV4_HOST_LEN }
}

const fn topic_length_width(v2: bool) -> usize {
    if v2 { 2 } else { 1 }
}

/// A message checked and measured for the log: everything about its record but the three
/// values the append assigns. The store reserves [`len`](Self::len) bytes of a segment under its
/// append lock and, outside it, [`write`](Self::write)s the record straight into them: one copy
/// of the body and one CRC pass, the least an append with a whole-record CRC can cost.
///
/// V2 is chosen when the topic is longer than [`MAX_V1_TOPIC_LEN`] bytes. The record always ends
/// with the whole-record CRC property (20 bytes), preceded by one `0x02` when the caller's
/// properties are non-empty and do not already end in `0x02`, as RocketMQ writes it.
#[derive(Clone, Copy, Debug)]
pub struct RecordPlan<'a> {
    spec: RecordSpec<'a>,
    queue_id: i32,
    sys_flag: i32,
    layout: Layout,
    v2: bool,
    needs_separator: bool,
    props_len: usize,
    total: usize,
}

impl<'a> RecordPlan<'a> {
    /// Checks `spec` and measures its record.
    ///
    /// # Errors
    /// - [`EncodeError::InvalidTopic`]: the topic is empty or longer than [`MAX_ENCODED_TOPIC_LEN`] bytes;
    /// - [`EncodeError::QueueIdOutOfRange`]: the queue id does not fit the on-disk `i32`;
    /// - [`EncodeError::InvalidProperty`]: the properties are not valid UTF-8;
    /// - [`EncodeError::PropertiesTooLarge`]: the properties with the CRC property exceed
    ///   [`MAX_PROPERTIES_LEN`];
    /// - [`EncodeError::MessageTooLarge`]: the record would exceed `i32::MAX` bytes.
    pub fn new(spec: RecordSpec<'a>) -> Result<RecordPlan<'a>> {
        if std::str::from_utf8(spec.properties).is_err() {
            return Err(EncodeError::InvalidProperty {
                key: String::new(),
                reason: "encoded properties are not valid UTF-8",
            });
        }
        Self::of_encoded_properties(spec)
    }

    /// As [`new`](Self::new), for properties encoded by the store itself from `str`s (so UTF-8
    /// already): the put path spares itself the check.
    pub(crate) fn of_encoded_properties(spec: RecordSpec<'a>) -> Result<RecordPlan<'a>> {
        let topic = spec.topic.as_bytes();
        if topic.is_empty() {
            return Err(EncodeError::InvalidTopic {
                topic: String::new(),
                reason: "empty",
            });
        }
        if topic.len() > MAX_ENCODED_TOPIC_LEN {
            return Err(EncodeError::InvalidTopic {
                topic: display_prefix(spec.topic),
                reason: "longer than 32767 bytes",
            });
        }
        let queue_id = i32::try_from(spec.queue_id).map_err(|_| EncodeError::QueueIdOutOfRange {
            queue_id: spec.queue_id,
            max: 1 << 31,
        })?;
        let props = spec.properties;
        let needs_separator = props.last().is_some_and(|&b| b != PROPERTY_SEPARATOR);
        let props_len = props.len() + usize::from(needs_separator) + CRC_PROPERTY_LEN;
        if props_len > MAX_PROPERTIES_LEN {
            return Err(EncodeError::PropertiesTooLarge {
                size: props_len,
                max: MAX_PROPERTIES_LEN,
            });
        }

        let v2 = topic.len() > MAX_V1_TOPIC_LEN;
        let mut sys_flag = spec.sys_flag & !(BORNHOST_V6 | STOREHOST_V6);
        if spec.born_host.is_ipv6() {
            sys_flag |= BORNHOST_V6;
        }
        if spec.store_host.is_ipv6() {
            sys_flag |= STOREHOST_V6;
        }
        let layout = Layout::new(sys_flag);
        let without_body = layout.fixed_len(v2) + topic.len() + props_len;
        let max_body = i32::MAX as usize - without_body;
        if spec.body.len() > max_body {
            return Err(EncodeError::MessageTooLarge {
                size: spec.body.len(),
                max: max_body,
            });
        }
        Ok(RecordPlan {
            spec,
            queue_id,
            sys_flag,
            layout,
            v2,
            needs_separator,
            props_len,
            total: without_body + spec.body.len(),
        })
    }

    /// Length of the record in bytes (its TOTALSIZE).
    #[must_use]
    pub fn len(&self) -> usize {
        self.total
    }

    /// Always `false`: a record has at least [`MIN_RECORD_LEN`] bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Writes the whole record, with the three values the append assigned and its CRC, into
    /// `out`. Returns the body CRC as stored.
    ///
    /// Each value must be at most `i64::MAX` (the fields are `i64` on disk).
    ///
    /// # Panics
    /// If `out` is not exactly [`len`](Self::len) bytes long: the caller reserved the space by
    /// that length, so anything else is a bug in the caller.
    pub fn write(&self, out: &mut [u8], queue_offset: u64, physical_offset: u64, store_timestamp: u64) -> u32 {
        let body_hash = self.write_fields(out, queue_offset, physical_offset, store_timestamp);
        // One pass over the record just written, still in the cache: the vectorized CRC runs
        // at its full rate over it, where hashing the short header and tail apart and joining
        // them to the body's CRC costs more than rehashing the body.
        let crc_end = self.total - CRC_PROPERTY_LEN;
        let crc = crc32(&out[..crc_end]) & CRC_MASK;
        let digits_end = self.total - 1;
        write_crc_digits(&mut out[digits_end - CRC_DIGITS..digits_end], crc);
        body_hash & CRC_MASK
    }

    fn body_start(&self) -> usize {
        self.layout.body_length() + 4
    }

    /// Writes every field, the CRC property with a zero CRC. Returns the body's CRC, unmasked.
    fn write_fields(&self, out: &mut [u8], queue_offset: u64, physical_offset: u64, store_timestamp: u64) -> u32 {
        assert_eq!(out.len(), self.total, "a record written into space of another size");
        debug_assert!(
            i64::try_from(queue_offset).is_ok()
                && i64::try_from(physical_offset).is_ok()
                && i64::try_from(store_timestamp).is_ok()
        );
        let spec = &self.spec;
        let body_hash = crc32(spec.body);
        let mut w = SliceWriter { out, at: 0 };
        // Bounded by i32::MAX in `new`.
        w.put(&(self.total as i32).to_be_bytes());
        w.put(&(if self.v2 { MAGIC_V2 } else { MAGIC_V1 }).to_be_bytes());
        w.put(&(body_hash & CRC_MASK).to_be_bytes());
        w.put(&self.queue_id.to_be_bytes());
        w.put(&spec.flag.to_be_bytes());
        w.put(&queue_offset.to_be_bytes());
        w.put(&physical_offset.to_be_bytes());
        w.put(&self.sys_flag.to_be_bytes());
        w.put(&spec.born_timestamp.to_be_bytes());
        w.host(spec.born_host);
        w.put(&store_timestamp.to_be_bytes());
        w.host(spec.store_host);
        w.put(&spec.reconsume_times.to_be_bytes());
        w.put(&spec.prepared_transaction_offset.to_be_bytes());
        w.put(&(spec.body.len() as i32).to_be_bytes());
        w.put(spec.body);
        let topic = spec.topic.as_bytes();
        if self.v2 {
            w.put(&(topic.len() as i16).to_be_bytes());
        } else {
            w.put(&[topic.len() as u8]);
        }
        w.put(topic);
        w.put(&(self.props_len as i16).to_be_bytes());
        w.put(spec.properties);
        if self.needs_separator {
            w.put(&[PROPERTY_SEPARATOR]);
        }
        w.put(&CRC_PROPERTY_TEMPLATE);
        debug_assert_eq!(w.at, self.total);
        body_hash
    }
}

/// Writes fields one after another into a slice sized for them.
struct SliceWriter<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl SliceWriter<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    #[inline]
    fn host(&mut self, addr: SocketAddr) {
        match addr.ip() {
            IpAddr::V4(ip) => self.put(&ip.octets()),
            IpAddr::V6(ip) => self.put(&ip.octets()),
        }
        self.put(&i32::from(addr.port()).to_be_bytes());
    }
}

/// A record encoded into a buffer of its own, waiting for [`seal`](Self::seal): for callers
/// that encode before they know where the record goes (tests, tools, replay). The store itself
/// writes each record in place with [`RecordPlan::write`].
#[derive(Clone)]
pub struct EncodedRecord {
    buf: Vec<u8>,
    store_timestamp_pos: usize,
    /// CRC of the bytes between the store timestamp and the CRC property: they never change after
    /// encoding, so `seal` only has to hash the header in front of them.
    tail_crc: u32,
    /// Length of those bytes. Multiplying the header's CRC by x^(8 · tail length) shifts it past
    /// the tail, which is how `seal` joins the two CRCs without rereading the tail. Encoding
    /// leaves the multiplication's map in its thread's memo (see [`shift_known`]), so that
    /// sealing is 32 independent masked XORs instead of a 32-step dependency chain.
    tail_len: u32,
    /// x^(8 · tail length) mod P, for a thread whose memo lacks the map.
    tail_x8n: u32,
    body_crc: u32,
}

impl fmt::Debug for EncodedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedRecord")
            .field("len", &self.buf.len())
            .field("body_crc", &self.body_crc)
            .finish_non_exhaustive()
    }
}

impl EncodedRecord {
    /// Encodes `spec` into a fresh buffer.
    ///
    /// # Errors
    /// As [`RecordPlan::new`].
    pub fn encode(spec: &RecordSpec<'_>) -> Result<EncodedRecord> {
        Self::encode_into(spec, Vec::new())
    }

    /// Same as [`encode`](Self::encode), reusing the allocation of `buf` (cleared first), for
    /// example one returned by [`into_vec`](Self::into_vec).
    ///
    /// # Errors
    /// As [`RecordPlan::new`].
    pub fn encode_into(spec: &RecordSpec<'_>, mut buf: Vec<u8>) -> Result<EncodedRecord> {
        let plan = RecordPlan::new(*spec)?;
        let total = plan.len();
        buf.clear();
        buf.resize(total, 0);
        let body_hash = plan.write_fields(&mut buf, 0, 0, 0);
        let store_timestamp_pos = plan.layout.store_timestamp();
        let tail_start = store_timestamp_pos + 8;
        let body_start = plan.body_start();
        let body_end = body_start + spec.body.len();
        let crc_end = total - CRC_PROPERTY_LEN;
        let before_body = crc32(&buf[tail_start..body_start]);
        let mut tail = crc32fast::Hasher::new_with_initial(crc_concat(before_body, body_hash, spec.body.len()));
        // Below 2^31: the record's length is.
        let tail_len = (crc_end - tail_start) as u32;
        tail.update(&buf[body_end..crc_end]);
        Ok(EncodedRecord {
            tail_crc: tail.finalize(),
            tail_len,
            tail_x8n: shift_memoized(tail_len, 0).1,
            buf,
            store_timestamp_pos,
            body_crc: body_hash & CRC_MASK,
        })
    }

    /// Length of the whole record in bytes (its TOTALSIZE).
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Always `false`: a record has at least [`MIN_RECORD_LEN`] bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Writes QUEUEOFFSET, PHYSICALOFFSET and STORETIMESTAMP and the whole-record CRC property.
    ///
    /// The CRC covers bytes `[0, len - 20)`. Only the 34 bytes that change are written, and the
    /// CRC costs a hash of the first 64 (or 76) bytes plus one polynomial multiplication,
    /// whatever the body's size. Sealing again (after rolling to a new segment, say) simply
    /// overwrites the previous values.
    ///
    /// Each value must be at most `i64::MAX` (the fields are `i64` on disk).
    pub fn seal(&mut self, queue_offset: u64, physical_offset: u64, store_timestamp: u64) {
        debug_assert!(
            i64::try_from(queue_offset).is_ok()
                && i64::try_from(physical_offset).is_ok()
                && i64::try_from(store_timestamp).is_ok()
        );
        let ts = self.store_timestamp_pos;
        let buf = &mut self.buf;
        buf[POS_QUEUE_OFFSET..POS_QUEUE_OFFSET + 8].copy_from_slice(&queue_offset.to_be_bytes());
        buf[POS_PHYSICAL_OFFSET..POS_PHYSICAL_OFFSET + 8].copy_from_slice(&physical_offset.to_be_bytes());
        buf[ts..ts + 8].copy_from_slice(&store_timestamp.to_be_bytes());
        let head_crc = crc32(&buf[..ts + 8]);
        let crc = (shift_known(self.tail_len, self.tail_x8n, head_crc) ^ self.tail_crc) & CRC_MASK;
        let digits_end = buf.len() - 1;
        write_crc_digits(&mut buf[digits_end - CRC_DIGITS..digits_end], crc);
    }

    /// The record's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The record's bytes, giving up the wrapper (the buffer can go back to
    /// [`encode_into`](Self::encode_into)).
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The body CRC as stored: masked with `0x7FFF_FFFF`.
    #[must_use]
    pub fn body_crc(&self) -> u32 {
        self.body_crc
    }
}

/// Ten ASCII digits, least significant first, as RocketMQ writes the CRC property.
fn write_crc_digits(out: &mut [u8], mut crc: u32) {
    for digit in out {
        *digit = b'0' + (crc % 10) as u8;
        crc /= 10;
    }
}

/// Inverse of [`write_crc_digits`]; `None` unless exactly ten ASCII digits of a masked CRC.
fn parse_crc_digits(digits: &[u8]) -> Option<u32> {
    if digits.len() != CRC_DIGITS {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits.iter().rev() {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(d - b'0');
    }
    u32::try_from(value).ok().filter(|&v| v <= CRC_MASK)
}

/// The CRC-32 polynomial, bit-reflected.
const CRC_POLY: u32 = 0xEDB8_8320;

/// `a · b mod P` for bit-reflected polynomials (bit 31 is x^0), the arithmetic of CRC-32.
///
/// A CRC is linear: CRC(A ‖ B) = CRC(A) · x^(8·|B|) ⊕ CRC(B). That identity is what lets `seal`
/// hash only the bytes it patched.
const fn multiply_mod_p(a: u32, mut b: u32) -> u32 {
    let mut product = 0u32;
    let mut i = 0;
    while i < 32 {
        product ^= b & ((a >> (31 - i)) & 1).wrapping_neg();
        b = (b >> 1) ^ ((b & 1).wrapping_neg() & CRC_POLY);
        i += 1;
    }
    product
}

/// Multiplication by a fixed polynomial `c`, as the images `c · x^j` of the 32 basis
/// polynomials `x^j`.
#[derive(Clone, Copy, Debug)]
struct ShiftMap([u32; 32]);

impl ShiftMap {
    fn new(c: u32) -> ShiftMap {
        let mut images = [0u32; 32];
        let mut image = c;
        for slot in &mut images {
            *slot = image;
            image = (image >> 1) ^ ((image & 1).wrapping_neg() & CRC_POLY);
        }
        ShiftMap(images)
    }

    /// `c · a mod P`; equal to `multiply_mod_p(c, a)`.
    fn apply(&self, a: u32) -> u32 {
        let mut product = 0;
        for (j, image) in self.0.iter().enumerate() {
            product ^= image & ((a >> (31 - j)) & 1).wrapping_neg();
        }
        product
    }
}

/// x^(8·v·256^k) mod P for byte position `k` and byte value `v`, built at compile time, so
/// that [`x8n`] needs one multiplication per non-zero byte of the length after the first.
const X8N_BY_BYTE: [[u32; 256]; 4] = {
    let mut table = [[0u32; 256]; 4];
    let mut step = 0x0080_0000; // x^8: one byte
    let mut k = 0;
    while k < 4 {
        let mut power = 0x8000_0000; // x^0
        let mut v = 0;
        while v < 256 {
            table[k][v] = power;
            power = multiply_mod_p(power, step);
            v += 1;
        }
        step = power; // x^(8·256^(k+1))
        k += 1;
    }
    table
};

/// x^(8·len) mod P, bit-reflected: the factor that shifts a CRC past `len` more bytes.
fn x8n(len: u32) -> u32 {
    let [b3, b2, b1, b0] = len.to_be_bytes();
    let mut result = X8N_BY_BYTE[0][usize::from(b0)];
    for (k, byte) in [(1, b1), (2, b2), (3, b3)] {
        if byte != 0 {
            result = multiply_mod_p(result, X8N_BY_BYTE[k][usize::from(byte)]);
        }
    }
    result
}

/// CRC(A ‖ B) from CRC(A), CRC(B) and |B| (the length of a part of one record, so below 2^31).
fn crc_concat(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    shift_memoized(len_b as u32, crc_a).0 ^ crc_b
}

const SHIFT_WAYS: usize = 8;

thread_local! {
    /// Maps of multiplication by x^(8·len) mod P, which shifts a CRC past `len` bytes, with
    /// their `len` and x^(8·len) mod P. Building one costs two serial chains of 32 steps, as
    /// much as hashing a few hundred bytes, and every put shifts by two lengths (body and tail).
    /// A producer's records mostly repeat a few lengths, so each thread keeps the last ones.
    /// `u32::MAX` marks an empty way: lengths within a record are below 2^31.
    static SHIFTS: RefCell<[(u32, u32, ShiftMap); SHIFT_WAYS]> =
        const { RefCell::new([(u32::MAX, 0, ShiftMap([0; 32])); SHIFT_WAYS]) };
}

/// The way of `len` in [`SHIFTS`]. Fibonacci hashing: lengths that differ by a small multiple
/// of a power of two (a body and its record's tail, say) still land in different ways.
fn shift_way(len: u32) -> usize {
    (len.wrapping_mul(0x9E37_79B9) >> 29) as usize % SHIFT_WAYS
}

/// `a` shifted past `len` bytes, keeping the map for `len` in this thread's memo; with
/// x^(8·len) mod P.
fn shift_memoized(len: u32, a: u32) -> (u32, u32) {
    SHIFTS.with_borrow_mut(|ways| {
        let way = &mut ways[shift_way(len)];
        if way.0 != len {
            let c = x8n(len);
            *way = (len, c, ShiftMap::new(c));
        }
        (way.2.apply(a), way.1)
    })
}

/// `a` shifted past `len` bytes, `c` being x^(8·len) mod P: through this thread's memo if it
/// holds the map, else by the 32-step multiplication. Never builds a map, so that sealing costs
/// little whichever thread encoded the record.
fn shift_known(len: u32, c: u32, a: u32) -> u32 {
    SHIFTS.with_borrow(|ways| {
        let way = &ways[shift_way(len)];
        if way.0 == len {
            way.2.apply(a)
        } else {
            multiply_mod_p(c, a)
        }
    })
}

/// Writes the end-of-segment filler for a tail of `remaining` bytes.
///
/// `remaining` is the whole tail from the filler's first byte to the end of the segment; it must
/// be at least [`BLANK_LEN`] (the slack rule guarantees it) and at most `i32::MAX` (segment sizes
/// are). The bytes after the filler are left as they are.
#[must_use]
pub fn encode_blank(remaining: u32) -> [u8; BLANK_LEN] {
    debug_assert!((BLANK_LEN as u32..=i32::MAX as u32).contains(&remaining));
    let mut out = [0u8; BLANK_LEN];
    out[..4].copy_from_slice(&remaining.to_be_bytes());
    out[4..].copy_from_slice(&MAGIC_BLANK.to_be_bytes());
    out
}

/// How much [`decode`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Framing only: magic, every length against the bytes at hand, TOTALSIZE equal to the
    /// computed length, non-negative offsets and queue id, valid ports, UTF-8 of topic and
    /// properties.
    Framing,
    /// Framing, then the whole-record CRC property if the record has one, otherwise the body CRC
    /// (stores written by RocketMQ, where the property is optional).
    Crc,
    /// Framing, then the whole-record CRC, which must be present (stores written by mqstore).
    RequireRecordCrc,
}

/// One frame of the commit log: a record or the end-of-segment filler.
#[derive(Clone, Copy, Debug)]
pub enum Frame<'a> {
    /// A message record.
    Record(RecordView<'a>),
    /// The end-of-segment filler: the segment's remaining `len` bytes (filler included) hold no
    /// record; the next frame starts at the next segment.
    Blank {
        /// The tail length the filler declares, at least [`BLANK_LEN`].
        len: u32,
    },
}

/// Why bytes are not a valid record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ends before the frame does.
    #[error("truncated frame: {need} bytes needed, {have} available")]
    Truncated {
        /// Bytes the frame needs (8 until the header is read, then its TOTALSIZE).
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The magic code is none of V1, V2 and BLANK.
    #[error("unknown magic code {magic:#010x}")]
    BadMagic {
        /// The magic found.
        magic: u32,
    },
    /// TOTALSIZE is negative or smaller than the smallest frame of its kind.
    #[error("impossible total size {total_size}")]
    BadTotalSize {
        /// The size found.
        total_size: i32,
    },
    /// TOTALSIZE differs from the length the record's own length fields add up to.
    #[error("total size {declared} but the fields add up to {computed} bytes")]
    LengthMismatch {
        /// TOTALSIZE.
        declared: u32,
        /// The length the fields imply; a lower bound when a length field lies past TOTALSIZE.
        computed: u64,
    },
    /// A field that cannot be negative is.
    #[error("negative {field}: {value}")]
    NegativeField {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// A host address's port is outside 0..=65535.
    #[error("{field} port {port} out of range")]
    BadPort {
        /// `"born host"` or `"store host"`.
        field: &'static str,
        /// The port found.
        port: i32,
    },
    /// The topic or the properties are not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// `"topic"` or `"properties"`.
        field: &'static str,
    },
    /// The body does not match the body CRC.
    #[error("body CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BodyCrcMismatch {
        /// BODYCRC.
        stored: u32,
        /// CRC of the body found.
        computed: u32,
    },
    /// The record does not match its whole-record CRC property.
    #[error("record CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    RecordCrcMismatch {
        /// The value of the CRC property.
        stored: u32,
        /// CRC of the bytes found.
        computed: u32,
    },
    /// The whole-record CRC property is required but absent.
    #[error("the record has no CRC property")]
    MissingRecordCrc,
    /// The last property is the CRC property but not in its 20-byte form of ten decimal digits.
    #[error("malformed CRC property")]
    BadRecordCrcProperty,
}

/// A decoded record, borrowing the buffer it was decoded from.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    /// TOTALSIZE: the record's length in bytes.
    pub total_size: u32,
    /// [`MAGIC_V1`] or [`MAGIC_V2`].
    pub magic: u32,
    /// BODYCRC as stored (masked).
    pub body_crc: u32,
    /// Queue id within the topic.
    pub queue_id: u32,
    /// Application flag.
    pub flag: i32,
    /// Offset in the consume queue (0 for transactional half messages and rollbacks).
    pub queue_offset: u64,
    /// The record's own commit-log offset.
    pub physical_offset: u64,
    /// sysFlag bits.
    pub sys_flag: i32,
    /// Producer-side creation time, ms.
    pub born_timestamp: i64,
    /// Producer address (IPv6 addresses come back with flow info and scope id 0).
    pub born_host: SocketAddr,
    /// Broker store time, ms.
    pub store_timestamp: i64,
    /// Broker address.
    pub store_host: SocketAddr,
    /// Redelivery count.
    pub reconsume_times: i32,
    /// Commit-log offset of the half message, for transaction commits and rollbacks.
    pub prepared_transaction_offset: i64,
    /// The body as stored.
    pub body: &'a [u8],
    /// The topic.
    pub topic: &'a str,
    /// The encoded properties, CRC property included; see [`properties`].
    pub properties: &'a str,
    /// Position of the body's first byte, from the record's first byte.
    pub body_offset: u32,
    /// Position of the topic's first byte (after its length), from the record's first byte.
    pub topic_offset: u32,
    /// Position of the properties' first byte (after their length), from the record's first
    /// byte.
    pub properties_offset: u32,
}

impl<'a> RecordView<'a> {
    /// The value of property `key`; the last one if it repeats (as RocketMQ's map keeps it).
    #[must_use]
    pub fn property(&self, key: &str) -> Option<&'a str> {
        properties(self.properties)
            .filter(|&(k, _)| k == key)
            .last()
            .map(|(_, v)| v)
    }

    /// The `TAGS` property; `None` if absent or empty.
    #[must_use]
    pub fn tags(&self) -> Option<&'a str> {
        self.property(PROPERTY_TAGS)
    }

    /// The keys of the `KEYS` property, split on spaces, empty tokens skipped.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.property(PROPERTY_KEYS)
            .into_iter()
            .flat_map(|keys| keys.split(KEY_SEPARATOR))
            .filter(|key| !key.is_empty())
    }

    /// The `UNIQ_KEY` property: the client-assigned message id.
    #[must_use]
    pub fn uniq_key(&self) -> Option<&'a str> {
        self.property(PROPERTY_UNIQ_KEY)
    }

    /// Every property but `TAGS`, `KEYS` and the CRC property, in stored order.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        properties(self.properties).filter(|&(k, _)| k != PROPERTY_TAGS && k != PROPERTY_KEYS && k != CRC_PROPERTY_KEY)
    }

    /// Whether the properties end with a well-formed whole-record CRC property.
    #[must_use]
    pub fn has_record_crc(&self) -> bool {
        matches!(crc_property(self.properties.as_bytes()), CrcProperty::Present(_))
    }

    /// The consume-queue tag code: [`tags_code`] of the tags, 0 without tags.
    #[must_use]
    pub fn tags_code(&self) -> i64 {
        self.tags().map_or(0, tags_code)
    }

    /// The sysFlag's transaction type, one of the `TRANSACTION_*_TYPE` values.
    #[must_use]
    pub fn transaction_type(&self) -> i32 {
        self.sys_flag & TRANSACTION_TYPE_MASK
    }

    /// RocketMQ's store-assigned message id of this record; see [`offset_msg_id`].
    #[must_use]
    pub fn offset_msg_id(&self) -> String {
        offset_msg_id(self.store_host, self.physical_offset)
    }
}

/// What the end of a properties blob says about the whole-record CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrcProperty {
    Absent,
    Present(u32),
    Malformed,
}

/// Looks at the last property only: that is where writers put the CRC property, and the CRC's
/// range `[0, len - 20)` only makes sense if it fills the record's last 20 bytes.
fn crc_property(props: &[u8]) -> CrcProperty {
    // What the encoder writes, checked in place: the CRC property closing the properties, after
    // a separator or alone. Anything else takes the general path below, which gives the same
    // answer on these bytes but scans for the last property.
    let key_end = CRC_PROPERTY_KEY.len() + 1;
    if let Some((before, last)) = props
        .len()
        .checked_sub(CRC_PROPERTY_LEN)
        .map(|head| props.split_at(head))
        && matches!(before.last(), None | Some(&PROPERTY_SEPARATOR))
        && last[..key_end] == CRC_PROPERTY_TEMPLATE[..key_end]
        && last[CRC_PROPERTY_LEN - 1] == PROPERTY_SEPARATOR
        && let Some(crc) = parse_crc_digits(&last[key_end..CRC_PROPERTY_LEN - 1])
    {
        return CrcProperty::Present(crc);
    }
    crc_property_scan(props)
}

/// [`crc_property`]'s general path: finds the last property, then judges it.
fn crc_property_scan(props: &[u8]) -> CrcProperty {
    let terminated = props.last() == Some(&PROPERTY_SEPARATOR);
    let end = props.len() - usize::from(terminated);
    let start = props[..end]
        .iter()
        .rposition(|&b| b == PROPERTY_SEPARATOR)
        .map_or(0, |i| i + 1);
    let last = &props[start..end];
    let key_len = last
        .iter()
        .position(|&b| b == NAME_VALUE_SEPARATOR)
        .unwrap_or(last.len());
    if &last[..key_len] != CRC_PROPERTY_KEY.as_bytes() {
        return CrcProperty::Absent;
    }
    if !terminated || last.len() != CRC_PROPERTY_LEN - 1 {
        return CrcProperty::Malformed;
    }
    match parse_crc_digits(&last[key_len + 1..]) {
        Some(crc) => CrcProperty::Present(crc),
        None => CrcProperty::Malformed,
    }
}

/// Cheap look at a frame's first 8 bytes: `(TOTALSIZE, MAGICCODE)`, unchecked.
#[must_use]
pub fn peek_header(buf: &[u8]) -> Option<(i32, u32)> {
    Some((be_i32(buf, POS_TOTAL_SIZE)?, be_u32(buf, POS_MAGIC)?))
}

fn be_array<const N: usize>(buf: &[u8], pos: usize) -> Option<[u8; N]> {
    buf.get(pos..pos.checked_add(N)?)?.try_into().ok()
}

fn be_u32(buf: &[u8], pos: usize) -> Option<u32> {
    be_array(buf, pos).map(u32::from_be_bytes)
}

fn be_i32(buf: &[u8], pos: usize) -> Option<i32> {
    be_array(buf, pos).map(i32::from_be_bytes)
}

fn be_i64(buf: &[u8], pos: usize) -> Option<i64> {
    be_array(buf, pos).map(i64::from_be_bytes)
}

/// Decodes the frame at the start of `buf`.
///
/// `buf` may extend past the frame. A record must lie entirely in `buf`, otherwise
/// [`DecodeError::Truncated`]; a BLANK filler needs only its 8 bytes (the tail it declares is
/// the caller's to check against the segment). Never panics and never allocates, whatever the
/// bytes.
///
/// Checks run from the cheapest and most telling: magic, TOTALSIZE, the length fields, then the
/// CRC `verify` asks for, then field values and UTF-8. Running the CRC before interpreting
/// values makes a damaged record report a CRC mismatch rather than a symptom of the damage.
///
/// A V1 topic length is read as unsigned (0..=255): RocketMQ writes V1 only for topics of at
/// most 127 bytes, so the two readings never differ on its records. An empty topic is accepted
/// here; the encoder never writes one.
///
/// # Errors
/// A [`DecodeError`] naming the first check that failed.
pub fn decode(buf: &[u8], verify: Verify) -> std::result::Result<Frame<'_>, DecodeError> {
    match locate(buf)? {
        Located::Blank(len) => Ok(Frame::Blank { len }),
        Located::Record(rec, v2) => {
            let (shape, topic, properties) = check_record(rec, v2, verify)?;
            Ok(Frame::Record(view_of(rec, v2, &shape, topic, properties)))
        }
    }
}

/// [`decode`] without building a [`RecordView`]: the same checks, in the same order, with the
/// same errors; `None` for an end-of-segment filler. The store's read path keeps only the
/// record's [`RecordShape`] and reads any other field from the bytes when asked.
pub(crate) fn decode_shape(buf: &[u8], verify: Verify) -> std::result::Result<Option<RecordShape>, DecodeError> {
    match locate(buf)? {
        Located::Blank(_) => Ok(None),
        Located::Record(rec, v2) => check_record(rec, v2, verify).map(|(shape, ..)| Some(shape)),
    }
}

/// The frame at the start of a buffer, before its fields are checked.
enum Located<'a> {
    /// A filler declaring this tail length.
    Blank(u32),
    /// A record's bytes (exactly TOTALSIZE of them) and whether it is V2.
    Record(&'a [u8], bool),
}

fn locate(buf: &[u8]) -> std::result::Result<Located<'_>, DecodeError> {
    let (total_size, magic) = peek_header(buf).ok_or(DecodeError::Truncated {
        need: BLANK_LEN,
        have: buf.len(),
    })?;
    let v2 = match magic {
        MAGIC_V1 => false,
        MAGIC_V2 => true,
        MAGIC_BLANK => {
            return match u32::try_from(total_size) {
                Ok(len) if len as usize >= BLANK_LEN => Ok(Located::Blank(len)),
                _ => Err(DecodeError::BadTotalSize { total_size }),
            };
        }
        magic => return Err(DecodeError::BadMagic { magic }),
    };
    let total = usize::try_from(total_size)
        .ok()
        .filter(|&t| t >= MIN_RECORD_LEN + usize::from(v2))
        .ok_or(DecodeError::BadTotalSize { total_size })?;
    let rec = buf.get(..total).ok_or(DecodeError::Truncated {
        need: total,
        have: buf.len(),
    })?;
    Ok(Located::Record(rec, v2))
}

/// Bounds-checked big-endian reads inside one record.
///
/// `check_record` checks every length before it reads past it, so these reads cannot fail; the
/// `Truncated` they would return keeps the decoder free of panicking index operations anyway.
#[derive(Clone, Copy)]
struct Fields<'a> {
    rec: &'a [u8],
}

impl<'a> Fields<'a> {
    fn short(self, pos: usize, width: usize) -> DecodeError {
        DecodeError::Truncated {
            need: pos.saturating_add(width),
            have: self.rec.len(),
        }
    }

    fn array<const N: usize>(self, pos: usize) -> Result<[u8; N], DecodeError> {
        be_array(self.rec, pos).ok_or_else(|| self.short(pos, N))
    }

    fn u8(self, pos: usize) -> Result<u8, DecodeError> {
        self.array::<1>(pos).map(|[b]| b)
    }

    fn i16(self, pos: usize) -> Result<i16, DecodeError> {
        self.array(pos).map(i16::from_be_bytes)
    }

    fn i32(self, pos: usize) -> Result<i32, DecodeError> {
        self.array(pos).map(i32::from_be_bytes)
    }

    fn u32(self, pos: usize) -> Result<u32, DecodeError> {
        self.array(pos).map(u32::from_be_bytes)
    }

    fn i64(self, pos: usize) -> Result<i64, DecodeError> {
        self.array(pos).map(i64::from_be_bytes)
    }

    fn slice(self, start: usize, end: usize) -> Result<&'a [u8], DecodeError> {
        self.rec
            .get(start..end)
            .ok_or_else(|| self.short(start, end.saturating_sub(start)))
    }

    fn host(self, pos: usize, len: usize, field: &'static str) -> Result<SocketAddr, DecodeError> {
        let ip = if len == IPV6_HOST_LEN {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>(pos)?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>(pos)?))
        };
        Ok(SocketAddr::new(ip, self.port(pos, len, field)?))
    }

    /// The port of the host address at `pos` (`len` bytes, the port last), which must fit a
    /// `u16`.
    fn port(self, pos: usize, len: usize, field: &'static str) -> Result<u16, DecodeError> {
        let port = self.i32(pos + len - 4)?;
        u16::try_from(port).map_err(|_| DecodeError::BadPort { field, port })
    }
}

/// A length, id or offset field that must not be negative.
fn non_negative(field: &'static str, value: impl Into<i64>) -> Result<u64, DecodeError> {
    let value = value.into();
    u64::try_from(value).map_err(|_| DecodeError::NegativeField { field, value })
}

/// A checked record, reduced to where its parts lie and the fields the store's read path needs
/// to place it: a few words, cheap to keep per message. Every other field is read from the
/// record's bytes on demand (see the accessors), which [`check_record`] has already validated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordShape {
    /// TOTALSIZE.
    pub(crate) total_size: u32,
    /// sysFlag: where the host-dependent fields lie.
    pub(crate) sys_flag: i32,
    /// Queue id, checked non-negative.
    pub(crate) queue_id: u32,
    /// Queue offset, checked non-negative.
    pub(crate) queue_offset: u64,
    /// Position and length of the body.
    pub(crate) body: (u32, u32),
    /// Position and length of the topic (valid UTF-8).
    pub(crate) topic: (u32, u32),
    /// Position and length of the properties (valid UTF-8).
    pub(crate) properties: (u32, u32),
}

impl RecordShape {
    /// The record's bytes between `at` and `at + len`, empty should `rec` not be this record.
    pub(crate) fn part(rec: &[u8], (at, len): (u32, u32)) -> &[u8] {
        rec.get(at as usize..at as usize + len as usize).unwrap_or(&[])
    }

    // The accessors below read fields `check_record` validated on these very bytes, so their
    // fallbacks (0, an unspecified address) only keep them total; they are never taken.

    /// The application flag of record `rec`.
    pub(crate) fn flag(&self, rec: &[u8]) -> i32 {
        be_i32(rec, POS_FLAG).unwrap_or(0)
    }

    /// BODYCRC as stored.
    pub(crate) fn body_crc(&self, rec: &[u8]) -> u32 {
        be_u32(rec, POS_BODY_CRC).unwrap_or(0)
    }

    /// The record's own commit-log offset (checked non-negative).
    pub(crate) fn physical_offset(&self, rec: &[u8]) -> u64 {
        be_i64(rec, POS_PHYSICAL_OFFSET).map_or(0, |v| v.max(0) as u64)
    }

    /// Commit-log offset of the half message, for transaction commits and rollbacks.
    pub(crate) fn prepared_transaction_offset(&self, rec: &[u8]) -> i64 {
        be_i64(rec, Layout::new(self.sys_flag).prepared_transaction_offset()).unwrap_or(0)
    }

    /// Producer-side creation time, ms.
    pub(crate) fn born_timestamp(&self, rec: &[u8]) -> i64 {
        be_i64(rec, POS_BORN_TIMESTAMP).unwrap_or(0)
    }

    /// Broker store time, ms.
    pub(crate) fn store_timestamp(&self, rec: &[u8]) -> i64 {
        be_i64(rec, Layout::new(self.sys_flag).store_timestamp()).unwrap_or(0)
    }

    /// Redelivery count.
    pub(crate) fn reconsume_times(&self, rec: &[u8]) -> i32 {
        be_i32(rec, Layout::new(self.sys_flag).reconsume_times()).unwrap_or(0)
    }

    /// The producer's address.
    pub(crate) fn born_host(&self, rec: &[u8]) -> SocketAddr {
        let layout = Layout::new(self.sys_flag);
        Self::host(rec, POS_BORN_HOST, layout.born_host_len)
    }

    /// The storing broker's address.
    pub(crate) fn store_host(&self, rec: &[u8]) -> SocketAddr {
        let layout = Layout::new(self.sys_flag);
        Self::host(rec, layout.store_host(), layout.store_host_len)
    }

    fn host(rec: &[u8], pos: usize, len: usize) -> SocketAddr {
        Fields { rec }
            .host(pos, len, "host")
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }
}

/// Checks a record whose magic is V1 or V2 and whose TOTALSIZE is `rec.len()`, at least
/// [`MIN_RECORD_LEN`]: every length, the CRC `verify` asks for, every field a reader could
/// misread (negative ids and offsets, ports out of range) and the UTF-8 of topic and properties,
/// which it returns as strings with the shape.
fn check_record(rec: &[u8], v2: bool, verify: Verify) -> Result<(RecordShape, &str, &str), DecodeError> {
    let f = Fields { rec };
    let total = rec.len();
    let mismatch = |computed: usize| DecodeError::LengthMismatch {
        declared: total as u32,
        computed: computed as u64,
    };

    // Lengths, each checked against TOTALSIZE before anything behind it is read.
    let sys_flag = f.i32(POS_SYS_FLAG)?;
    let layout = Layout::new(sys_flag);
    let fixed = layout.fixed_len(v2);
    if total < fixed {
        return Err(mismatch(fixed));
    }
    let body_len = non_negative("body length", f.i32(layout.body_length())?)? as usize;
    if fixed + body_len > total {
        return Err(mismatch(fixed + body_len));
    }
    let body_start = layout.body_length() + 4;
    let topic_len_pos = body_start + body_len;
    let topic_len = if v2 {
        non_negative("topic length", f.i16(topic_len_pos)?)? as usize
    } else {
        usize::from(f.u8(topic_len_pos)?)
    };
    if fixed + body_len + topic_len > total {
        return Err(mismatch(fixed + body_len + topic_len));
    }
    let topic_start = topic_len_pos + topic_length_width(v2);
    let props_len_pos = topic_start + topic_len;
    let props_len = non_negative("properties length", f.i16(props_len_pos)?)? as usize;
    let computed = fixed + body_len + topic_len + props_len;
    if computed != total {
        return Err(mismatch(computed));
    }
    let props_start = props_len_pos + 2;
    let body = f.slice(body_start, topic_len_pos)?;
    let topic = f.slice(topic_start, props_len_pos)?;
    let props = f.slice(props_start, total)?;

    if verify != Verify::Framing {
        match crc_property(props) {
            CrcProperty::Present(stored) => {
                let computed = masked_crc32(f.slice(0, total - CRC_PROPERTY_LEN)?);
                if computed != stored {
                    return Err(DecodeError::RecordCrcMismatch { stored, computed });
                }
            }
            CrcProperty::Malformed => return Err(DecodeError::BadRecordCrcProperty),
            CrcProperty::Absent if verify == Verify::RequireRecordCrc => {
                return Err(DecodeError::MissingRecordCrc);
            }
            CrcProperty::Absent => {
                let body_crc = f.u32(POS_BODY_CRC)?;
                let computed = masked_crc32(body);
                if computed != body_crc {
                    return Err(DecodeError::BodyCrcMismatch {
                        stored: body_crc,
                        computed,
                    });
                }
            }
        }
    }

    // Values.
    let queue_id = non_negative("queue id", f.i32(POS_QUEUE_ID)?)? as u32;
    let queue_offset = non_negative("queue offset", f.i64(POS_QUEUE_OFFSET)?)?;
    non_negative("physical offset", f.i64(POS_PHYSICAL_OFFSET)?)?;
    f.port(POS_BORN_HOST, layout.born_host_len, "born host")?;
    f.port(layout.store_host(), layout.store_host_len, "store host")?;
    let topic = std::str::from_utf8(topic).map_err(|_| DecodeError::InvalidUtf8 { field: "topic" })?;
    let props = std::str::from_utf8(props).map_err(|_| DecodeError::InvalidUtf8 { field: "properties" })?;

    // All positions are below TOTALSIZE, an i32.
    let shape = RecordShape {
        total_size: total as u32,
        sys_flag,
        queue_id,
        queue_offset,
        body: (body_start as u32, body_len as u32),
        topic: (topic_start as u32, topic_len as u32),
        properties: (props_start as u32, props_len as u32),
    };
    Ok((shape, topic, props))
}

/// The full view of a record [`check_record`] accepted: every field through the shape's
/// accessors, so that the store's lazy reads and this view read each field one way.
fn view_of<'a>(rec: &'a [u8], v2: bool, shape: &RecordShape, topic: &'a str, properties: &'a str) -> RecordView<'a> {
    RecordView {
        total_size: shape.total_size,
        magic: if v2 { MAGIC_V2 } else { MAGIC_V1 },
        body_crc: shape.body_crc(rec),
        queue_id: shape.queue_id,
        flag: shape.flag(rec),
        queue_offset: shape.queue_offset,
        physical_offset: shape.physical_offset(rec),
        sys_flag: shape.sys_flag,
        born_timestamp: shape.born_timestamp(rec),
        born_host: shape.born_host(rec),
        store_timestamp: shape.store_timestamp(rec),
        store_host: shape.store_host(rec),
        reconsume_times: shape.reconsume_times(rec),
        prepared_transaction_offset: shape.prepared_transaction_offset(rec),
        body: RecordShape::part(rec, shape.body),
        topic,
        properties,
        body_offset: shape.body.0,
        topic_offset: shape.topic.0,
        properties_offset: shape.properties.0,
    }
}

/// RocketMQ's store-assigned message id (`offsetMsgId`): uppercase hex of the store host's IP
/// (4 or 16 bytes), its port (`i32`) and the physical offset (`i64`), all big-endian: 32 hex
/// digits for IPv4, 56 for IPv6.
#[must_use]
pub fn offset_msg_id(store_host: SocketAddr, physical_offset: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut bytes = [0u8; IPV6_HOST_LEN + 8];
    let mut w = SliceWriter { out: &mut bytes, at: 0 };
    w.host(store_host);
    w.put(&physical_offset.to_be_bytes());
    let len = w.at;
    bytes[..len]
        .iter()
        .flat_map(|&b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]])
        .map(char::from)
        .collect()
}

/// Inverse of [`offset_msg_id`]; accepts either case, as RocketMQ does.
///
/// `None` unless `id` is 32 or 56 hex digits with a port in range and a non-negative offset.
#[must_use]
pub fn parse_offset_msg_id(id: &str) -> Option<(SocketAddr, u64)> {
    let ip_len = match id.len() {
        32 => 4,
        56 => 16,
        _ => return None,
    };
    let mut bytes = [0u8; 28];
    let bytes = &mut bytes[..id.len() / 2];
    for (out, pair) in bytes.iter_mut().zip(id.as_bytes().chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *out = (hi << 4 | lo) as u8;
    }
    let ip = if ip_len == 4 {
        IpAddr::V4(Ipv4Addr::from(be_array::<4>(bytes, 0)?))
    } else {
        IpAddr::V6(Ipv6Addr::from(be_array::<16>(bytes, 0)?))
    };
    let port = u16::try_from(be_i32(bytes, ip_len)?).ok()?;
    let offset = u64::try_from(be_i64(bytes, ip_len + 4)?).ok()?;
    Some((SocketAddr::new(ip, port), offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_crc_equals_crc_of_concatenation() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for split in [0, 1, 63, 64, 76, 1000, 2999, 3000] {
            let (head, tail) = data.split_at(split);
            let joined = crc_concat(crc32fast::hash(head), crc32fast::hash(tail), tail.len());
            assert_eq!(joined, crc32fast::hash(&data), "split at {split}");
        }
    }

    #[test]
    fn shift_map_is_multiplication() {
        for c in [0x8000_0000u32, 0x0080_0000, 0xDEAD_BEEF, 1, u32::MAX, x8n(12_345)] {
            let map = ShiftMap::new(c);
            for a in [0u32, 1, 0x8000_0000, 0x1234_5678, u32::MAX, 0x0F0F_0F0F] {
                assert_eq!(map.apply(a), multiply_mod_p(c, a), "{c:#x} · {a:#x}");
            }
        }
    }

    #[test]
    fn memoized_shift_maps_stay_right_as_lengths_evict_each_other() {
        // Far more lengths than ways, revisited out of order: every answer must be that of a
        // freshly built map, whatever the memo holds at the time.
        let lengths: Vec<u32> = (0..200u32).map(|i| (i * 7919) % 5000 + 1).collect();
        for round in 0..3u32 {
            for (k, &len) in lengths.iter().enumerate() {
                let len = if (k as u32 + round).is_multiple_of(3) {
                    len + 1024
                } else {
                    len
                };
                let a = 0x9E37_79B9u32.rotate_left(len % 32) ^ round;
                let expected = multiply_mod_p(x8n(len), a);
                assert_eq!(shift_memoized(len, a), (expected, x8n(len)), "len {len}");
                assert_eq!(shift_known(len, x8n(len), a), expected, "len {len}, memoized");
                assert_eq!(
                    shift_known(len ^ 1, x8n(len ^ 1), a),
                    multiply_mod_p(x8n(len ^ 1), a),
                    "len {len} ^ 1"
                );
            }
        }
    }

    #[test]
    fn crc_concat_agrees_with_crc32fast_combine_at_any_length() {
        // crc32fast's own combine (a different algorithm) only needs the length, so lengths
        // far beyond anything we could allocate can be checked.
        for len in [
            1u32,
            2,
            3,
            255,
            256,
            4096,
            65535,
            65536,
            0x0102_0304,
            i32::MAX as u32,
            u32::MAX,
        ] {
            for (a, b) in [(0u32, 0u32), (0xDEAD_BEEF, 0x1234_5678), (u32::MAX, 1)] {
                let mut expected = crc32fast::Hasher::new_with_initial(a);
                expected.combine(&crc32fast::Hasher::new_with_initial_len(b, u64::from(len)));
                let shifted = multiply_mod_p(x8n(len), a) ^ b;
                assert_eq!(shifted, expected.finalize(), "len {len}");
            }
        }
    }

    #[test]
    fn crc_digits_are_least_significant_first() {
        let mut out = [0u8; 10];
        write_crc_digits(&mut out, 0);
        assert_eq!(&out, b"0000000000");
        write_crc_digits(&mut out, 0x7FFF_FFFF);
        assert_eq!(&out, b"7463847412");
        write_crc_digits(&mut out, 1_234);
        assert_eq!(&out, b"4321000000");
        assert_eq!(parse_crc_digits(b"4321000000"), Some(1_234));
        assert_eq!(parse_crc_digits(b"7463847412"), Some(0x7FFF_FFFF));
        // 2147483648 does not fit a masked CRC.
        assert_eq!(parse_crc_digits(b"8463847412"), None);
        assert_eq!(parse_crc_digits(b"999999999"), None);
        assert_eq!(parse_crc_digits(b"99999999x9"), None);
    }

    #[test]
    fn crc_property_in_place_agrees_with_the_scan() {
        // Tails near the CRC property's shape: every byte drawn from the few that matter.
        let alphabet = b"_CR32#\x01\x02019ab";
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut checked_present = 0;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 28) as usize;
            let mut props: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 60)) as usize + i * 7) % alphabet.len()])
                .collect();
            if seed.is_multiple_of(3) {
                // A well-formed tail, sometimes after a prefix, sometimes with a byte changed.
                props.extend_from_slice(b"__CRC32#\x014321000000\x02");
                if seed.is_multiple_of(5) {
                    let at = (seed >> 8) as usize % props.len();
                    props[at] = alphabet[(seed >> 16) as usize % alphabet.len()];
                }
            }
            let fast = crc_property(&props);
            assert_eq!(fast, crc_property_scan(&props), "{props:?}");
            checked_present += usize::from(matches!(fast, CrcProperty::Present(_)));
        }
        assert!(checked_present > 1000, "the in-place path was hardly taken");
    }

    #[test]
    fn crc_property_is_found_only_as_the_last_property() {
        assert_eq!(crc_property(b""), CrcProperty::Absent);
        assert_eq!(crc_property(b"a\x01b"), CrcProperty::Absent);
        assert_eq!(crc_property(b"__CRC32#\x014321000000\x02"), CrcProperty::Present(1_234));
        assert_eq!(
            crc_property(b"a\x01b\x02__CRC32#\x014321000000\x02"),
            CrcProperty::Present(1_234)
        );
        // A longer key that merely ends like the CRC key is a user property.
        assert_eq!(
            crc_property(b"a\x01b\x02X__CRC32#\x014321000000\x02"),
            CrcProperty::Absent
        );
        assert_eq!(
            crc_property(b"__CRC32#\x014321000000\x02a\x01b\x02"),
            CrcProperty::Absent
        );
        assert_eq!(crc_property(b"__CRC32#\x01123\x02"), CrcProperty::Malformed);
        assert_eq!(crc_property(b"__CRC32#\x014321000000"), CrcProperty::Malformed);
        assert_eq!(crc_property(b"__CRC32#"), CrcProperty::Malformed);
    }
}
