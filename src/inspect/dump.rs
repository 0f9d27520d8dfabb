//! `dump`: records read from a store's files without opening the store: the record at a
//! commit-log offset (every field, and whether its CRCs verify), a range of a consume queue
//! (each unit and the record it points to), the records the index holds for a key, and the
//! committed consumer offsets. Each answer is a value with a text form (`Display`) and a JSON
//! form (`serde`), so a tool prints it and a test inspects it.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::files::{CrcCheck, QueueFiles, SegmentDir, commit_log_dir, read_frame_bytes};
use super::render::{body_preview, body_text, escape_controls, format_millis, hex, hex_dump, table};
use crate::codec::{self, DecodeError, Frame, MAGIC_V1, MAGIC_V2, RecordView, Verify};
use crate::consume_queue::CqUnit;
use crate::consumer_offset::ConsumerOffsets;
use crate::index::file::{Layout, chain_in};
use crate::layout::INDEX_DIR;
use crate::meta::Meta;
use crate::segment::ReadOnlyMap;

/// Longest body preview of a consume-queue line, in characters.
const LINE_PREVIEW: usize = 48;
/// Longest text body the full form of a record prints, in characters.
const FULL_TEXT: usize = 16 << 10;
/// Bytes of a binary body the full form of a record shows in hex.
const FULL_HEX: usize = 64;
/// Bytes shown of what sits where no valid record is.
const INVALID_SHOWN: usize = 64;

/// Why a dump could not be made (what it found wrong in the files is part of the dump).
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// A file could not be listed or read, or the offset is outside every segment.
    #[error("{0}")]
    Unreadable(String),
    /// The store has no such consume queue; `hint` names the queues or topics it has.
    #[error("no consume queue {topic}/{queue_id} in {}{hint}", dir.display())]
    NoQueue {
        /// The store directory.
        dir: PathBuf,
        /// The topic asked for.
        topic: String,
        /// The queue id asked for.
        queue_id: u32,
        /// What the store does have, e.g. ` (topic t has queues 0, 1)`.
        hint: String,
    },
    /// The consumer-offset file could not be read.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

fn list_log(dir: &Path) -> Result<SegmentDir, DumpError> {
    SegmentDir::list(&commit_log_dir(dir))
        .map_err(|e| DumpError::Unreadable(format!("cannot list the commit log of {}: {e}", dir.display())))
}

/// What one commit-log offset holds.
#[derive(Clone, Debug, Serialize)]
pub struct RecordDump {
    /// The commit-log offset asked for.
    pub offset: u64,
    /// The segment file that holds it.
    pub segment: String,
    /// The offset's position in that segment.
    pub position: u64,
    /// What starts there.
    #[serde(flatten)]
    pub content: RecordContent,
}

/// What starts at a commit-log offset.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordContent {
    /// A record, with every field.
    Record(Box<RecordFields>),
    /// The end-of-segment filler: `len` bytes hold no record, the log goes on at `next`.
    Filler {
        /// Bytes the filler covers.
        len: u32,
        /// Where the log continues (the next segment's start).
        next: u64,
    },
    /// No valid record: why, and the first bytes found.
    Invalid {
        /// Why the bytes are not a record.
        why: String,
        /// The first bytes at the offset (at most 64).
        #[serde(serialize_with = "as_hex")]
        first_bytes: Vec<u8>,
    },
}

/// Every field of a record, and its CRC verdicts.
#[derive(Clone, Debug, Serialize)]
pub struct RecordFields {
    /// TOTALSIZE.
    pub total_size: u32,
    /// MAGICCODE.
    pub magic: u32,
    /// BODYCRC as stored.
    pub body_crc: u32,
    /// Whether BODYCRC matches the body.
    pub body_crc_ok: bool,
    /// QUEUEID.
    pub queue_id: u32,
    /// FLAG.
    pub flag: i32,
    /// QUEUEOFFSET.
    pub queue_offset: u64,
    /// PHYSICALOFFSET (differs from the offset read when the record was copied or recycled).
    pub physical_offset: u64,
    /// SYSFLAG.
    pub sys_flag: i32,
    /// BORNTIMESTAMP, ms since the epoch.
    pub born_timestamp: i64,
    /// BORNHOST.
    pub born_host: String,
    /// STORETIMESTAMP, ms since the epoch.
    pub store_timestamp: i64,
    /// STOREHOSTADDRESS.
    pub store_host: String,
    /// RECONSUMETIMES.
    pub reconsume_times: i32,
    /// PREPAREDTRANSACTIONOFFSET.
    pub prepared_transaction_offset: i64,
    /// TOPIC.
    pub topic: String,
    /// The offset message id (store host and physical offset).
    pub msg_id: String,
    /// The properties, in stored order.
    pub properties: Vec<(String, String)>,
    /// PROPERTIES length in bytes.
    pub properties_len: usize,
    /// The tags hash a consume-queue unit holds for it.
    pub tags_code: i64,
    /// BODY (in JSON: text when it is, else hex).
    #[serde(serialize_with = "as_body")]
    pub body: Vec<u8>,
    /// The whole-record CRC property: `None` if absent, else whether it matches.
    pub record_crc_ok: Option<bool>,
}

impl RecordFields {
    fn of(view: &RecordView<'_>, crc: &CrcCheck) -> RecordFields {
        RecordFields {
            total_size: view.total_size,
            magic: view.magic,
            body_crc: view.body_crc,
            body_crc_ok: crc.body_ok,
            queue_id: view.queue_id,
            flag: view.flag,
            queue_offset: view.queue_offset,
            physical_offset: view.physical_offset,
            sys_flag: view.sys_flag,
            born_timestamp: view.born_timestamp,
            born_host: view.born_host.to_string(),
            store_timestamp: view.store_timestamp,
            store_host: view.store_host.to_string(),
            reconsume_times: view.reconsume_times,
            prepared_transaction_offset: view.prepared_transaction_offset,
            topic: view.topic.to_string(),
            msg_id: view.offset_msg_id(),
            properties: codec::properties(view.properties)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            properties_len: view.properties.len(),
            tags_code: view.tags_code(),
            body: view.body.to_vec(),
            record_crc_ok: crc.record_ok,
        }
    }

    /// Whether every CRC present matches.
    pub fn crc_ok(&self) -> bool {
        self.body_crc_ok && self.record_crc_ok != Some(false)
    }
}

fn as_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(bytes))
}

fn as_body<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Body {
        Text(String),
        Hex(String),
    }
    match body_text(body) {
        Some(text) => Body::Text(text.to_string()),
        None => Body::Hex(hex(body)),
    }
    .serialize(s)
}

impl RecordDump {
    /// Whether the offset holds a record whose CRCs verify, or the filler.
    pub fn is_sound(&self) -> bool {
        match &self.content {
            RecordContent::Record(fields) => fields.crc_ok(),
            RecordContent::Filler { .. } => true,
            RecordContent::Invalid { .. } => false,
        }
    }
}

/// The record (or filler, or what is there instead) at commit-log `offset` of the store in `dir`.
pub fn record_at(dir: &Path, offset: u64) -> Result<RecordDump, DumpError> {
    record_in(&list_log(dir)?, offset)
}

fn record_in(log: &SegmentDir, offset: u64) -> Result<RecordDump, DumpError> {
    let bytes = read_frame_bytes(log, offset).map_err(DumpError::Unreadable)?;
    record_from(log, offset, &bytes)
}

/// The dump of `bytes`, the frame read at `offset`.
fn record_from(log: &SegmentDir, offset: u64, bytes: &[u8]) -> Result<RecordDump, DumpError> {
    let Some(seg) = log.find(offset) else {
        return Err(DumpError::Unreadable(format!(
            "no commit-log segment holds offset {offset}"
        )));
    };
    let content = match codec::decode(bytes, Verify::Framing) {
        Ok(Frame::Record(view)) => {
            RecordContent::Record(Box::new(RecordFields::of(&view, &CrcCheck::of(bytes, &view))))
        }
        Ok(Frame::Blank { len }) => RecordContent::Filler { len, next: seg.end() },
        Err(e) => {
            let why = if !bytes.is_empty() && bytes.iter().take(8).all(|&b| b == 0) {
                "zero bytes: past the end of the log, or not the start of a record".to_string()
            } else {
                describe(&e)
            };
            let first_bytes = bytes[..bytes.len().min(INVALID_SHOWN)].to_vec();
            RecordContent::Invalid { why, first_bytes }
        }
    };
    Ok(RecordDump {
        offset,
        segment: seg
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        position: offset - seg.start,
        content,
    })
}

fn describe(e: &DecodeError) -> String {
    match e {
        DecodeError::BadMagic { .. } => format!("{e} (not the start of a record?)"),
        _ => e.to_string(),
    }
}

impl fmt::Display for RecordDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "commit-log offset {} (segment {}, position {})",
            self.offset, self.segment, self.position
        )?;
        match &self.content {
            RecordContent::Filler { len, next } => writeln!(
                f,
                "  end-of-segment filler: the last {len} bytes of the segment hold no record; the log continues at {next}"
            ),
            RecordContent::Invalid { why, first_bytes } => {
                writeln!(f, "  no valid record here: {why}")?;
                writeln!(f, "  first bytes:")?;
                write!(f, "{}", hex_dump(first_bytes, "    "))
            }
            RecordContent::Record(v) => write_fields(f, v, self.offset),
        }
    }
}

fn write_fields(f: &mut fmt::Formatter<'_>, v: &RecordFields, offset: u64) -> fmt::Result {
    fn field(f: &mut fmt::Formatter<'_>, name: &str, value: &dyn fmt::Display) -> fmt::Result {
        writeln!(f, "  {name:<29}{value}")
    }
    let magic = match v.magic {
        MAGIC_V1 => "V1",
        MAGIC_V2 => "V2",
        _ => "?",
    };
    let ok = |b: bool| if b { "ok" } else { "MISMATCH" };
    field(f, "total size", &v.total_size)?;
    field(f, "magic", &format!("{:#010x} ({magic})", v.magic))?;
    field(f, "body CRC", &format!("{:#010x} ({})", v.body_crc, ok(v.body_crc_ok)))?;
    field(f, "queue id", &v.queue_id)?;
    field(f, "flag", &v.flag)?;
    field(f, "queue offset", &v.queue_offset)?;
    let phys_note = if v.physical_offset == offset {
        ""
    } else {
        " (DIFFERS from its position)"
    };
    field(f, "physical offset", &format!("{}{phys_note}", v.physical_offset))?;
    field(f, "sys flag", &format!("{:#x}", v.sys_flag))?;
    field(
        f,
        "born timestamp",
        &format!("{} ({})", v.born_timestamp, format_millis(v.born_timestamp)),
    )?;
    field(f, "born host", &v.born_host)?;
    field(
        f,
        "store timestamp",
        &format!("{} ({})", v.store_timestamp, format_millis(v.store_timestamp)),
    )?;
    field(f, "store host", &v.store_host)?;
    field(f, "reconsume times", &v.reconsume_times)?;
    field(f, "prepared transaction offset", &v.prepared_transaction_offset)?;
    field(f, "topic", &escape_controls(&v.topic))?;
    field(f, "msg id", &v.msg_id)?;
    field(
        f,
        "properties",
        &format!("{} ({} bytes)", v.properties.len(), v.properties_len),
    )?;
    for (k, val) in &v.properties {
        writeln!(f, "    {}={}", escape_controls(k), escape_controls(val))?;
    }
    field(f, "tags code", &v.tags_code)?;
    field(f, "body length", &v.body.len())?;
    match body_text(&v.body) {
        Some(text) => {
            let shown: String = text.chars().take(FULL_TEXT).collect();
            let cut = if shown.len() < text.len() {
                format!(" … ({} bytes in all)", text.len())
            } else {
                String::new()
            };
            field(f, "body (text)", &format!("\"{}\"{cut}", shown.escape_debug()))?;
        }
        None => {
            let n = v.body.len().min(FULL_HEX);
            let more = if n < v.body.len() {
                format!(", first {n} bytes")
            } else {
                String::new()
            };
            field(f, "body (binary)", &format!("hex{more}:"))?;
            write!(f, "{}", hex_dump(&v.body[..n], "    "))?;
        }
    }
    let record_crc = match v.record_crc_ok {
        None => "absent (body CRC only, as RocketMQ writes by default)",
        Some(true) => "ok",
        Some(false) => "MISMATCH",
    };
    field(f, "record CRC (__CRC32#)", &record_crc)?;
    field(
        f,
        "CRCs verify",
        &if v.crc_ok() { "yes" } else { "NO: the record is damaged" },
    )
}

/// A range of one consume queue: each unit, and the record it points to.
#[derive(Clone, Debug, Serialize)]
pub struct QueueDump {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// The queue's first offset in its files.
    pub min: u64,
    /// One past its last offset.
    pub max: u64,
    /// The first offset asked for.
    pub from: u64,
    /// The units from `from` on.
    pub units: Vec<UnitDump>,
}

/// One consume-queue unit and what it points to.
#[derive(Clone, Debug, Serialize)]
pub struct UnitDump {
    /// Its queue offset.
    pub offset: u64,
    /// The commit-log offset it holds.
    pub commit_log_offset: u64,
    /// The record size it holds.
    pub size: u32,
    /// What the unit points to.
    #[serde(flatten)]
    pub target: UnitTarget,
}

/// What a consume-queue unit points to.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnitTarget {
    /// A filler unit (RocketMQ writes them when a queue starts past 0): no message.
    Filler,
    /// The message of this queue and offset.
    Message {
        /// Its tags, if any.
        tags: Option<String>,
        /// Its keys.
        keys: Vec<String>,
        /// STORETIMESTAMP, ms since the epoch.
        store_timestamp: i64,
        /// Body length in bytes.
        body_len: usize,
        /// A one-line preview of the body.
        preview: String,
        /// Whether every CRC present matches.
        crc_ok: bool,
    },
    /// Not the unit's record: no record there, another queue's, or a size that disagrees.
    Problem {
        /// What is wrong.
        why: String,
    },
}

impl UnitDump {
    /// Whether the unit is a filler or points at its own record with sound CRCs.
    pub fn is_sound(&self) -> bool {
        match &self.target {
            UnitTarget::Filler => true,
            UnitTarget::Message { crc_ok, .. } => *crc_ok,
            UnitTarget::Problem { .. } => false,
        }
    }
}

impl QueueDump {
    /// Whether every unit dumped is sound.
    pub fn is_sound(&self) -> bool {
        self.units.iter().all(UnitDump::is_sound)
    }
}

/// Up to `count` units of queue `topic`/`queue_id` from queue offset `from`, each with the
/// record it points to checked against the unit.
pub fn queue(dir: &Path, topic: &str, queue_id: u32, from: u64, count: u64) -> Result<QueueDump, DumpError> {
    let log = list_log(dir)?;
    let name = format!("{topic}/{queue_id}");
    let unreadable = |e: std::io::Error| DumpError::Unreadable(format!("cannot read the consume queue {name}: {e}"));
    let q = QueueFiles::open(dir, topic, queue_id)
        .map_err(unreadable)?
        .ok_or_else(|| DumpError::NoQueue {
            dir: dir.to_path_buf(),
            topic: topic.to_string(),
            queue_id,
            hint: known_queues(dir, topic),
        })?;
    let summary = q.summary().map_err(unreadable)?;
    let units = q.units(from, count).map_err(unreadable)?;
    Ok(QueueDump {
        topic: topic.to_string(),
        queue_id,
        min: summary.min,
        max: summary.max,
        from,
        units: units
            .into_iter()
            .map(|(offset, unit)| UnitDump {
                offset,
                commit_log_offset: unit.commit_log_offset,
                size: unit.size,
                target: unit_target(&log, &q, offset, &unit),
            })
            .collect(),
    })
}

/// A hint listing the queues a store does have for `topic` (or its topics).
fn known_queues(dir: &Path, topic: &str) -> String {
    let Ok(all) = QueueFiles::list_all(dir) else {
        return String::new();
    };
    let of_topic: Vec<String> = all
        .iter()
        .filter(|q| q.topic == topic)
        .map(|q| q.queue_id.to_string())
        .collect();
    if !of_topic.is_empty() {
        return format!(" (topic {topic} has queues {})", of_topic.join(", "));
    }
    let mut topics: Vec<&str> = all.iter().map(|q| q.topic.as_str()).collect();
    topics.dedup();
    if topics.is_empty() {
        " (the store has no consume queues)".to_string()
    } else {
        format!(" (topics: {})", topics.join(", "))
    }
}

fn unit_target(log: &SegmentDir, q: &QueueFiles, offset: u64, unit: &CqUnit) -> UnitTarget {
    if unit.is_blank() {
        return UnitTarget::Filler;
    }
    let problem = |why: String| UnitTarget::Problem { why };
    let bytes = match read_frame_bytes(log, unit.commit_log_offset) {
        Ok(b) => b,
        Err(e) => return problem(e),
    };
    let view = match codec::decode(&bytes, Verify::Framing) {
        Ok(Frame::Record(v)) => v,
        Ok(Frame::Blank { .. }) => return problem("the unit points at an end-of-segment filler".into()),
        Err(e) => return problem(format!("no valid record there: {}", describe(&e))),
    };
    if view.topic != q.topic
        || view.queue_id != q.queue_id
        || view.queue_offset != offset
        || view.total_size != unit.size
    {
        return problem(format!(
            "the unit points at a record of {}/{} offset {} ({} bytes)",
            view.topic, view.queue_id, view.queue_offset, view.total_size
        ));
    }
    UnitTarget::Message {
        tags: view.tags().map(str::to_string),
        keys: view.keys().map(str::to_string).collect(),
        store_timestamp: view.store_timestamp,
        body_len: view.body.len(),
        preview: body_preview(view.body, LINE_PREVIEW),
        crc_ok: CrcCheck::of(&bytes, &view).ok(),
    }
}

impl fmt::Display for QueueDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}/{}: offsets {}..{} ({} message(s))",
            self.topic,
            self.queue_id,
            self.min,
            self.max,
            self.max.saturating_sub(self.min)
        )?;
        if self.units.is_empty() {
            return writeln!(f, "no unit at offset {}", self.from);
        }
        let mut rows =
            vec![["offset", "commit-log offset", "size", "tags", "keys", "stored", "body"].map(String::from)];
        for u in &self.units {
            let dash = || "-".to_string();
            let [tags, keys, stored, body] = match &u.target {
                UnitTarget::Filler => [dash(), dash(), dash(), "(filler unit: no message)".into()],
                UnitTarget::Problem { why } => [dash(), dash(), dash(), format!("!! {why}")],
                UnitTarget::Message {
                    tags,
                    keys,
                    store_timestamp,
                    preview,
                    crc_ok,
                    ..
                } => [
                    tags.as_deref().map_or_else(dash, escape_controls),
                    if keys.is_empty() {
                        dash()
                    } else {
                        escape_controls(&keys.join(" "))
                    },
                    format_millis(*store_timestamp),
                    if *crc_ok {
                        preview.clone()
                    } else {
                        format!("!! CRC MISMATCH  {preview}")
                    },
                ],
            };
            rows.push([
                u.offset.to_string(),
                u.commit_log_offset.to_string(),
                u.size.to_string(),
                tags,
                keys,
                stored,
                body,
            ]);
        }
        write!(
            f,
            "{}",
            table(&rows, "", &[true, true, true, false, false, false, false])
        )
    }
}

/// The records the index files hold for a key of a topic.
#[derive(Clone, Debug, Serialize)]
pub struct KeyDump {
    /// The topic.
    pub topic: String,
    /// The key (or unique key).
    pub key: String,
    /// The index directory looked in.
    pub index_dir: PathBuf,
    /// Whether it could be read (no index directory: the store keeps no index, or lost it).
    pub index_present: bool,
    /// The records found, newest first, each confirmed on its topic and keys.
    pub records: Vec<RecordDump>,
}

/// Up to `count` records the index files hold for `topic`'s `key`, newest first; each
/// candidate the hash chains name is read and kept only if its topic and keys match.
pub fn by_key(dir: &Path, topic: &str, key: &str, count: u64) -> Result<KeyDump, DumpError> {
    let log = list_log(dir)?;
    let mut dump = KeyDump {
        topic: topic.to_string(),
        key: key.to_string(),
        index_dir: dir.join(INDEX_DIR),
        index_present: false,
        records: Vec::new(),
    };
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dump.index_dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => return Ok(dump),
    };
    dump.index_present = true;
    paths.sort();
    // Files written with another layout than the default are read with the one meta names.
    let configured = Meta::read(dir)
        .ok()
        .flatten()
        .and_then(|m| m.index_layout)
        .unwrap_or((crate::index::DEFAULT_SLOTS, crate::index::DEFAULT_ENTRIES));
    let preferred = Layout {
        slots: configured.0,
        entries: configured.1,
    };
    let hash = crate::index::key_hash(topic, key);
    let mut seen = HashSet::new();
    for path in paths.iter().rev() {
        let Ok(map) = ReadOnlyMap::open(path) else {
            continue;
        };
        let Some(layout) = Layout::infer(map.len() as u64, preferred) else {
            continue;
        };
        for offset in chain_in(&map, layout, hash) {
            if dump.records.len() as u64 >= count || !seen.insert(offset) {
                continue;
            }
            let Ok(bytes) = read_frame_bytes(&log, offset) else {
                continue;
            };
            let matches = matches!(codec::decode(&bytes, Verify::Framing),
                Ok(Frame::Record(v)) if v.topic == topic && crate::index::has_key(v.properties, key));
            if matches && let Ok(record) = record_from(&log, offset, &bytes) {
                dump.records.push(record);
            }
        }
    }
    Ok(dump)
}

impl KeyDump {
    /// Whether every record found verifies.
    pub fn is_sound(&self) -> bool {
        self.records.iter().all(RecordDump::is_sound)
    }
}

impl fmt::Display for KeyDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.index_present {
            return writeln!(f, "no index files in {}", self.index_dir.display());
        }
        for r in &self.records {
            write!(f, "{r}")?;
        }
        if self.records.is_empty() {
            writeln!(
                f,
                "no message of topic {} with key {:?} in the index files",
                self.topic, self.key
            )?;
        }
        Ok(())
    }
}

/// One committed consumer offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommittedOffset {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// The next queue offset the group reads.
    pub offset: u64,
}

/// The committed consumer offsets of a store, by group, topic and queue.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct OffsetsDump(pub Vec<CommittedOffset>);

/// The offsets `config/consumerOffset.json` holds.
pub fn consumer_offsets(dir: &Path) -> Result<OffsetsDump, DumpError> {
    let table = ConsumerOffsets::load(dir)?;
    let mut all = Vec::new();
    for group in table.groups() {
        for (topic, queue_id, offset) in table.group(&group) {
            all.push(CommittedOffset {
                group: group.clone(),
                topic,
                queue_id,
                offset,
            });
        }
    }
    Ok(OffsetsDump(all))
}

impl fmt::Display for OffsetsDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no committed consumer offsets");
        }
        for c in &self.0 {
            writeln!(f, "{}  {}/{}  {}", c.group, c.topic, c.queue_id, c.offset)?;
        }
        Ok(())
    }
}
