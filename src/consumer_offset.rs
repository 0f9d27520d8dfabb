//! Consumer-group offsets: how far each group has consumed each queue, kept in memory and
//! persisted to `config/consumerOffset.json` in RocketMQ's layout.
//!
//! The table is the broker's record of consumer progress: losing it makes every consumer
//! re-read its queues from wherever its reset policy says, so a file that exists but cannot be
//! read in either copy fails the load with [`Error::CorruptOffsets`] instead of starting empty.
//!
//! A flush writes the whole table to `consumerOffset.json.tmp` and syncs it, renames the current
//! file to `consumerOffset.json.bak`, renames the temporary file over the main one and syncs the
//! directory. At every instant the main file, or (between the two renames) the backup, holds a
//! complete table; a crash loses at most the commits since the last flush.
//!
//! ```
//! use mqstore::consumer_offset::ConsumerOffsets;
//! # fn main() -> mqstore::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let offsets = ConsumerOffsets::load(dir.path())?;
//! offsets.commit("group_a", "orders", 0, 42)?;
//! offsets.flush()?;
//! let again = ConsumerOffsets::load(dir.path())?;
//! assert_eq!(again.get("group_a", "orders", 0), Some(42));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::files::{BackedUpFile, sync_dir};
use crate::message::{validate_group, validate_topic};

/// The directory, under the store directory, of RocketMQ's broker state.
pub const CONFIG_DIR: &str = "config";
/// The offset file's name in [`CONFIG_DIR`].
pub const OFFSET_FILE: &str = "consumerOffset.json";
/// The previous version of the offset file, kept by every flush.
pub const OFFSET_BACKUP_FILE: &str = "consumerOffset.json.bak";
/// The file a flush writes before renaming it over [`OFFSET_FILE`].
pub const OFFSET_TEMP_FILE: &str = "consumerOffset.json.tmp";

/// Where a committed offset stands against its queue's readable range `[min, max]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommitStatus {
    /// Within the queue's range (`max` itself means everything is consumed).
    Ok,
    /// Below the queue's smallest readable offset, for example after retention removed old
    /// segments: the messages between this offset and `min` are gone.
    BelowMinOffset {
        /// The queue's smallest readable offset.
        min: u64,
    },
    /// Past the queue's end: more than was ever put was consumed.
    AboveMaxOffset {
        /// One past the queue's last message.
        max: u64,
    },
}

impl CommitStatus {
    /// The status of `offset` against a queue holding `[min, max)`.
    pub fn of(offset: u64, min: u64, max: u64) -> Self {
        if offset < min {
            CommitStatus::BelowMinOffset { min }
        } else if offset > max {
            CommitStatus::AboveMaxOffset { max }
        } else {
            CommitStatus::Ok
        }
    }
}

/// One committed offset of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupOffset {
    /// The topic.
    pub topic: String,
    /// The queue id.
    pub queue_id: u32,
    /// The committed offset: the next queue offset the group will consume.
    pub offset: u64,
    /// Where the offset stands against the queue now.
    pub status: CommitStatus,
}

/// Queue id → offset of one (group, topic).
type Queues = BTreeMap<u32, u64>;
/// Group → topic → queue id → offset.
type Table = BTreeMap<String, BTreeMap<String, Queues>>;

struct State {
    table: Table,
    /// Bumped by every commit that changes a value; a flush with nothing new writes nothing.
    version: u64,
    closed: bool,
}

struct FlushState {
    /// The version the files hold.
    flushed: u64,
    /// Whether the main file holds a valid table, which a flush then keeps as the backup (a
    /// corrupt main file must not replace a good backup).
    main_valid: bool,
    /// Whether the config directory is known to exist durably.
    dir_ready: bool,
}

/// The consumer-offset table of a store. `Send + Sync`; commits from many threads take a short
/// write lock and allocate only for a (group, topic) not seen before.
pub struct ConsumerOffsets {
    store_dir: PathBuf,
    dir: PathBuf,
    state: RwLock<State>,
    /// Held for a whole flush, so two flushes never write the temporary file at once.
    flush: Mutex<FlushState>,
}

impl std::fmt::Debug for ConsumerOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerOffsets")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The file's shape, as RocketMQ's `ConsumerOffsetManager` serializes it; other top-level
/// fields (newer brokers add `dataVersion`) are ignored.
#[derive(Deserialize)]
struct FileIn {
    #[serde(rename = "offsetTable", default)]
    offset_table: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    #[serde(rename = "offsetTable")]
    offset_table: BTreeMap<String, &'a Queues>,
}

impl ConsumerOffsets {
    /// Loads the table of the store in `store_dir`: the main file, else its backup (with a
    /// warning), else empty when neither was ever written. Fails with
    /// [`Error::CorruptOffsets`] when a file exists but neither copy can be read.
    pub fn load(store_dir: &Path) -> Result<Self> {
        let dir = store_dir.join(CONFIG_DIR);
        let main = dir.join(OFFSET_FILE);
        let bak = dir.join(OFFSET_BACKUP_FILE);
        let (table, main_valid, repair) = match read_table(&main) {
            Ok(Some(table)) => (table, true, false),
            Ok(None) => match read_table(&bak) {
                Ok(Some(table)) => {
                    // A crash between a flush's two renames leaves exactly this.
                    tracing::warn!(path = %main.display(), "consumer offsets missing: using the backup");
                    (table, false, true)
                }
                Ok(None) => (Table::new(), false, false),
                Err(reason) => return Err(Error::CorruptOffsets { path: bak, reason }),
            },
            Err(main_reason) => match read_table(&bak) {
                Ok(Some(table)) => {
                    tracing::warn!(
                        path = %main.display(), reason = %main_reason,
                        "consumer offsets unreadable: using the backup"
                    );
                    (table, false, true)
                }
                Ok(None) => {
                    return Err(Error::CorruptOffsets {
                        path: main,
                        reason: format!("{main_reason}; no backup {OFFSET_BACKUP_FILE}"),
                    });
                }
                Err(bak_reason) => {
                    return Err(Error::CorruptOffsets {
                        path: main,
                        reason: format!("{main_reason}; backup {OFFSET_BACKUP_FILE}: {bak_reason}"),
                    });
                }
            },
        };
        Ok(ConsumerOffsets {
            store_dir: store_dir.to_path_buf(),
            dir,
            // Loaded from the backup: dirty, so the next flush rewrites the main file.
            state: RwLock::new(State {
                table,
                version: u64::from(repair),
                closed: false,
            }),
            flush: Mutex::new(FlushState {
                flushed: 0,
                main_valid,
                dir_ready: false,
            }),
        })
    }

    /// The main offset file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(OFFSET_FILE)
    }

    /// Records `offset` for (group, topic, queue id), in memory; [`flush`](Self::flush) makes it
    /// durable. Fails on an invalid group or topic name, or after [`close`](Self::close) or
    /// [`halt`](Self::halt), recording nothing.
    pub fn commit(&self, group: &str, topic: &str, queue_id: u32, offset: u64) -> Result<()> {
        validate_group(group)?;
        validate_topic(topic)?;
        let mut state = self.state.write();
        if state.closed {
            return Err(Error::Closed);
        }
        let queues = slot(slot(&mut state.table, group), topic);
        if queues.insert(queue_id, offset) != Some(offset) {
            state.version += 1;
        }
        Ok(())
    }

    /// The offset committed for (group, topic, queue id), if any.
    pub fn get(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        let state = self.state.read();
        state.table.get(group)?.get(topic)?.get(&queue_id).copied()
    }

    /// Every group with a committed offset, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.state.read().table.keys().cloned().collect()
    }

    /// Every (topic, queue id, offset) committed by `group`, sorted by topic and queue id.
    pub fn group(&self, group: &str) -> Vec<(String, u32, u64)> {
        let state = self.state.read();
        let Some(topics) = state.table.get(group) else {
            return Vec::new();
        };
        topics
            .iter()
            .flat_map(|(topic, queues)| queues.iter().map(move |(&q, &o)| (topic.clone(), q, o)))
            .collect()
    }

    /// Whether something was committed since the last flush.
    pub fn is_dirty(&self) -> bool {
        // Not both locks at once in this order: a flush takes them the other way round.
        let version = self.state.read().version;
        version != self.flush.lock().flushed
    }

    /// Writes the table if anything changed since the last flush; `Ok(true)` when it wrote.
    /// Fails with [`Error::Closed`] after [`close`](Self::close) or [`halt`](Self::halt).
    pub fn flush(&self) -> Result<bool> {
        let mut flush = self.flush.lock();
        if self.state.read().closed {
            return Err(Error::Closed);
        }
        self.flush_locked(&mut flush)
    }

    /// Refuses further commits and flushes what is left. Later calls do nothing.
    pub fn close(&self) -> Result<()> {
        let mut flush = self.flush.lock();
        {
            let mut state = self.state.write();
            if state.closed {
                return Ok(());
            }
            state.closed = true;
        }
        self.flush_locked(&mut flush).map(drop)
    }

    /// Refuses further commits and flushes without writing anything, as a crash would. Waits
    /// for a flush in progress, so nothing is written once it returns.
    pub fn halt(&self) {
        let _flush = self.flush.lock();
        self.state.write().closed = true;
    }

    fn flush_locked(&self, flush: &mut FlushState) -> Result<bool> {
        let (version, bytes) = {
            let state = self.state.read();
            if state.version == flush.flushed {
                return Ok(false);
            }
            (state.version, encode(&state.table))
        };
        let bytes = bytes.map_err(|e| Error::io(self.path(), io::Error::other(e)))?;
        self.write_files(flush, &bytes)?;
        flush.flushed = version;
        Ok(true)
    }

    fn write_files(&self, flush: &mut FlushState, bytes: &[u8]) -> Result<()> {
        if !flush.dir_ready {
            fs::create_dir_all(&self.dir).at(&self.dir)?;
            sync_dir(&self.store_dir)?;
            flush.dir_ready = true;
        }
        BackedUpFile::new(&self.dir, OFFSET_FILE).replace(bytes, &mut flush.main_valid)
    }
}

/// The value under `key`, inserted empty first if missing; allocates the key only then.
fn slot<'a, V: Default>(map: &'a mut BTreeMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("the key was inserted above")
}

fn encode(table: &Table) -> serde_json::Result<Vec<u8>> {
    let mut offset_table = BTreeMap::new();
    for (group, topics) in table {
        for (topic, queues) in topics {
            offset_table.insert(format!("{topic}@{group}"), queues);
        }
    }
    let mut out = serde_json::to_vec_pretty(&FileOut { offset_table })?;
    out.push(b'\n');
    Ok(out)
}

/// Reads one copy of the file: `Ok(None)` when it does not exist, `Err` with the reason when it
/// cannot be read or parsed.
fn read_table(path: &Path) -> Result<Option<Table>, String> {
    match fs::read(path) {
        Ok(bytes) => parse(&bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// Parses the file's bytes. Entries that cannot be represented (a key without `@`, a queue id
/// that is not a u32, an offset that is not a u64) are skipped with a warning; anything else
/// that is not the expected shape is an error.
pub(crate) fn parse(bytes: &[u8]) -> Result<Table, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let text = quote_bare_keys(text);
    let file: FileIn = serde_json::from_str(&text).map_err(|e| format!("not an offset table: {e}"))?;
    let mut table = Table::new();
    for (key, queues) in file.offset_table {
        // Groups cannot hold `@`, so the last one separates even a topic that does.
        let Some((topic, group)) = key.rsplit_once('@').filter(|(t, g)| !t.is_empty() && !g.is_empty()) else {
            tracing::warn!(key = %key, "consumer offsets: skipping a key that is not topic@group");
            continue;
        };
        for (queue, offset) in queues {
            match (queue.parse::<u32>(), offset.as_u64()) {
                (Ok(queue_id), Some(offset)) => {
                    slot(slot(&mut table, group), topic).insert(queue_id, offset);
                }
                _ => tracing::warn!(
                    key = %key, queue = %queue, offset = %offset,
                    "consumer offsets: skipping an entry that is not a queue id and an offset"
                ),
            }
        }
    }
    Ok(table)
}

/// Quotes the integer object keys fastjson writes bare (`{0:250}` becomes `{"0":250}`), leaving
/// string literals and everything else as they are, so the result is standard JSON when the
/// input was fastjson's.
fn quote_bare_keys(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    // Bytes of `text` before `copied` are in `out` already.
    let mut copied = 0;
    let mut in_string = false;
    let mut escaped = false;
    // After `{` or `,` outside a string, until the next token: where a key may start.
    let mut key_position = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                key_position = false;
            }
            b'{' | b',' => key_position = true,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'0'..=b'9' | b'-' if key_position => {
                key_position = false;
                let end = i + bytes[i..]
                    .iter()
                    .position(|c| !matches!(c, b'0'..=b'9' | b'-'))
                    .unwrap_or(bytes.len() - i);
                let after = bytes[end..].iter().find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
                if after == Some(&b':') {
                    let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 64));
                    out.push_str(&text[copied..i]);
                    out.push('"');
                    out.push_str(&text[i..end]);
                    out.push('"');
                    copied = end;
                }
                i = end;
                continue;
            }
            _ => key_position = false,
        }
        i += 1;
    }
    match out {
        None => std::borrow::Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            std::borrow::Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        let config = dir.join(CONFIG_DIR);
        fs::create_dir_all(&config).unwrap();
        fs::write(config.join(name), bytes).unwrap();
    }

    fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
        fs::read(dir.join(CONFIG_DIR).join(name)).ok()
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = ConsumerOffsets::load(dir.path()).unwrap();
        assert!(!offsets.is_dirty());
        offsets.commit("group_a", "orders", 0, 250).unwrap();
        offsets.commit("group_a", "orders", 10, 7).unwrap();
        offsets.commit("group_a", "audit-log", 1, u64::MAX).unwrap();
        offsets.commit("%RETRY%group_b", "%RETRY%group_b", 0, 0).unwrap();
        assert!(offsets.is_dirty());
        assert!(offsets.flush().unwrap());
        assert!(!offsets.is_dirty());

        let again = ConsumerOffsets::load(dir.path()).unwrap();
        assert_eq!(
            again.groups(),
            vec!["%RETRY%group_b".to_string(), "group_a".to_string()]
        );
        assert_eq!(
            again.group("group_a"),
            vec![
                ("audit-log".to_string(), 1, u64::MAX),
                ("orders".to_string(), 0, 250),
                ("orders".to_string(), 10, 7),
            ]
        );
        assert_eq!(again.get("%RETRY%group_b", "%RETRY%group_b", 0), Some(0));
        assert_eq!(again.get("group_a", "orders", 1), None);
        assert_eq!(again.get("nobody", "orders", 0), None);
        assert!(!again.is_dirty(), "a table read from the main file is clean");

        let text = String::from_utf8(read(dir.path(), OFFSET_FILE).unwrap()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["offsetTable"]["orders@group_a"]["10"], 7);
        assert_eq!(
            read(dir.path(), OFFSET_TEMP_FILE),
            None,
            "the temporary file is renamed away"
        );
    }

    #[test]
    fn flushes_only_changes_and_keeps_the_previous_file_as_backup() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = ConsumerOffsets::load(dir.path()).unwrap();
        assert!(!offsets.flush().unwrap(), "nothing to write");
        assert_eq!(read(dir.path(), OFFSET_FILE), None);
        offsets.commit("g", "t", 0, 1).unwrap();
        assert!(offsets.flush().unwrap());
        let first = read(dir.path(), OFFSET_FILE).unwrap();
        assert_eq!(read(dir.path(), OFFSET_BACKUP_FILE), None, "no previous file to keep");
        offsets.commit("g", "t", 0, 1).unwrap();
        assert!(!offsets.flush().unwrap(), "the same value again changes nothing");
        offsets.commit("g", "t", 0, 2).unwrap();
        assert!(offsets.flush().unwrap());
        assert_eq!(read(dir.path(), OFFSET_BACKUP_FILE).unwrap(), first);
        assert_ne!(read(dir.path(), OFFSET_FILE).unwrap(), first);
    }

    #[test]
    fn reads_fastjson_bare_and_quoted_keys() {
        for text in [
            r#"{"offsetTable":{"TopicTest@group_a":{0:250,1:250,2:250,3:250}}}"#,
            r#"{"offsetTable":{"TopicTest@group_a":{"0":250,"1":250,"2":250,"3":250}}}"#,
            "{\n\t\"offsetTable\":{\n\t\t\"TopicTest@group_a\":{ 0 : 250 ,1:250,\n2:250,3:250\n\t\t}\n\t}\n}",
            r#"{"dataVersion":{"counter":3,"timestamp":1},"offsetTable":{"TopicTest@group_a":{0:250,"1":250,2:250,3:250}}}"#,
        ] {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), OFFSET_FILE, text.as_bytes());
            let offsets = ConsumerOffsets::load(dir.path()).unwrap();
            assert_eq!(offsets.groups(), vec!["group_a".to_string()], "{text}");
            for q in 0..4 {
                assert_eq!(offsets.get("group_a", "TopicTest", q), Some(250), "{text}");
            }
        }
    }

    #[test]
    fn bare_key_quoting_leaves_strings_and_values_alone() {
        assert_eq!(quote_bare_keys(r#"{"a":{0:1, 12 :-3}}"#), r#"{"a":{"0":1, "12" :-3}}"#);
        // Digits inside strings, including after escaped quotes, and array elements stay.
        let s = r#"{"x\",{0:1":[1,2,{3:4}],"y":"\\",5:6}"#;
        assert_eq!(quote_bare_keys(s), r#"{"x\",{0:1":[1,2,{"3":4}],"y":"\\","5":6}"#);
        assert!(matches!(quote_bare_keys(r#"{"a":1}"#), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn key_splits_at_the_last_at_sign() {
        let table = parse(br#"{"offsetTable":{"a@b@g":{"0":5},"noat":{"0":1},"@g":{"0":1},"t@":{"0":1}}}"#).unwrap();
        assert_eq!(table.len(), 1);
        assert_eq!(table["g"]["a@b"][&0], 5);
    }

    #[test]
    fn odd_entries_are_skipped_not_fatal() {
        let table = parse(br#"{"offsetTable":{"t@g":{"0":5,"x":1,"1":-1,"2":1.5,"4294967296":1,"3":"7"}}}"#).unwrap();
        assert_eq!(table["g"]["t"].len(), 1);
        assert_eq!(table["g"]["t"][&0], 5);
        assert!(parse(b"{}").unwrap().is_empty());
    }

    #[test]
    fn corrupt_main_falls_back_to_backup_and_repairs_it() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = ConsumerOffsets::load(dir.path()).unwrap();
        offsets.commit("g", "t", 0, 1).unwrap();
        offsets.flush().unwrap();
        offsets.commit("g", "t", 0, 2).unwrap();
        offsets.flush().unwrap();
        let good_backup = read(dir.path(), OFFSET_BACKUP_FILE).unwrap();
        for garbage in [
            &b""[..],
            b"{\"offsetTable\":{\"t@g\":{\"0\":",
            b"\xff\xfe",
            b"[1,2]",
            b"null",
        ] {
            write(dir.path(), OFFSET_FILE, garbage);
            let offsets = ConsumerOffsets::load(dir.path()).unwrap();
            assert_eq!(offsets.get("g", "t", 0), Some(1), "the backup's value");
            assert!(
                offsets.is_dirty(),
                "loaded from the backup: the next flush rewrites the main file"
            );
            assert!(offsets.flush().unwrap());
            assert_eq!(
                read(dir.path(), OFFSET_BACKUP_FILE).unwrap(),
                good_backup,
                "a corrupt main file never replaces a good backup"
            );
            assert_eq!(ConsumerOffsets::load(dir.path()).unwrap().get("g", "t", 0), Some(1));
        }
    }

    #[test]
    fn missing_main_uses_backup() {
        // What a crash between a flush's two renames leaves.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), OFFSET_BACKUP_FILE, br#"{"offsetTable":{"t@g":{"3":9}}}"#);
        write(dir.path(), OFFSET_TEMP_FILE, br#"{"offsetTable":{"t@g":{"3":"#);
        let offsets = ConsumerOffsets::load(dir.path()).unwrap();
        assert_eq!(offsets.get("g", "t", 3), Some(9));
        offsets.commit("g", "t", 3, 10).unwrap();
        offsets.flush().unwrap();
        assert_eq!(ConsumerOffsets::load(dir.path()).unwrap().get("g", "t", 3), Some(10));
    }

    #[test]
    fn both_corrupt_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), OFFSET_FILE, b"garbage");
        match ConsumerOffsets::load(dir.path()) {
            Err(Error::CorruptOffsets { path, .. }) => assert!(path.ends_with(OFFSET_FILE)),
            other => panic!("expected CorruptOffsets, got {other:?}"),
        }
        write(dir.path(), OFFSET_BACKUP_FILE, b"{\"offsetTable\":");
        match ConsumerOffsets::load(dir.path()) {
            Err(Error::CorruptOffsets { path, reason }) => {
                assert!(path.ends_with(OFFSET_FILE));
                assert!(reason.contains(OFFSET_BACKUP_FILE), "{reason}");
            }
            other => panic!("expected CorruptOffsets, got {other:?}"),
        }
        fs::remove_file(dir.path().join(CONFIG_DIR).join(OFFSET_FILE)).unwrap();
        match ConsumerOffsets::load(dir.path()) {
            Err(Error::CorruptOffsets { path, .. }) => assert!(path.ends_with(OFFSET_BACKUP_FILE)),
            other => panic!("expected CorruptOffsets, got {other:?}"),
        }
    }

    #[test]
    fn invalid_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = ConsumerOffsets::load(dir.path()).unwrap();
        for group in ["", "a@b", "../x", "a/b", "a.b", &"g".repeat(256)] {
            assert!(
                matches!(offsets.commit(group, "t", 0, 1), Err(Error::InvalidGroup { .. })),
                "{group:?}"
            );
        }
        assert!(offsets.commit(&"g".repeat(255), "t", 0, 1).is_ok());
        assert!(matches!(
            offsets.commit("g", "t@x", 0, 1),
            Err(Error::InvalidTopic { .. })
        ));
        assert_eq!(offsets.groups(), vec!["g".repeat(255)]);
    }

    #[test]
    fn close_flushes_and_halt_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = ConsumerOffsets::load(dir.path()).unwrap();
        offsets.commit("g", "t", 0, 1).unwrap();
        offsets.close().unwrap();
        assert!(matches!(offsets.commit("g", "t", 0, 2), Err(Error::Closed)));
        assert!(matches!(offsets.flush(), Err(Error::Closed)));
        offsets.close().unwrap();
        assert_eq!(ConsumerOffsets::load(dir.path()).unwrap().get("g", "t", 0), Some(1));

        let offsets = ConsumerOffsets::load(dir.path()).unwrap();
        offsets.commit("g", "t", 0, 5).unwrap();
        offsets.halt();
        assert!(matches!(offsets.commit("g", "t", 0, 6), Err(Error::Closed)));
        assert_eq!(ConsumerOffsets::load(dir.path()).unwrap().get("g", "t", 0), Some(1));
    }

    #[test]
    fn status_against_the_queue_range() {
        assert_eq!(CommitStatus::of(5, 5, 10), CommitStatus::Ok);
        assert_eq!(CommitStatus::of(10, 5, 10), CommitStatus::Ok);
        assert_eq!(CommitStatus::of(4, 5, 10), CommitStatus::BelowMinOffset { min: 5 });
        assert_eq!(CommitStatus::of(11, 5, 10), CommitStatus::AboveMaxOffset { max: 10 });
    }

    /// Fragments a corrupted file might be made of, so the generator reaches the parser's
    /// deeper states and not only the UTF-8 check.
    fn fragments() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"{".to_vec()),
            Just(b"}".to_vec()),
            Just(b"\"offsetTable\"".to_vec()),
            Just(b":".to_vec()),
            Just(b",".to_vec()),
            Just(b"\"t@g\"".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"[".to_vec()),
            Just(b"-".to_vec()),
            Just(b" ".to_vec()),
            "[0-9]{1,25}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..4),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn near_json_garbage_never_panics(bytes in fragments()) {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = quote_bare_keys(text);
            }
            let _ = parse(&bytes);
        }

        #[test]
        fn garbage_file_loads_or_fails_typed(bytes in fragments()) {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), OFFSET_FILE, &bytes);
            match ConsumerOffsets::load(dir.path()) {
                Ok(_) | Err(Error::CorruptOffsets { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
        }
    }
}
