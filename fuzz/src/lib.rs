//! The checks behind mqstore's fuzz targets: one `check_*` function per target in
//! `fuzz/fuzz_targets/`, each of which panics (the fuzzer's crash signal) exactly when a property
//! fails.
//!
//! This file is compiled twice: as the library of the `mqstore-fuzz` crate, which the cargo-fuzz
//! targets call, and as a module of the main crate's `tests/fuzz_corpus.rs`
//! (`#[path = "../fuzz/src/lib.rs"] mod checks;`), which replays every seed of
//! `fuzz/corpus/<target>/` under a plain `cargo test`. It therefore uses only `mqstore`, `std` and
//! `tempfile` (the main crate's dependencies), and reads structured inputs with the small
//! [`Reader`] below instead of the `arbitrary` crate. Keep it a single file: nested `mod x;`
//! declarations would resolve differently in the two builds.
//!
//! | target | input | property |
//! |---|---|---|
//! | `decode_record` | raw bytes | [`check_decode_record`]: `codec::decode` never panics at any [`Verify`] level, stronger levels accept a subset, and a record accepted with `RequireRecordCrc` re-encodes to the same bytes |
//! | `decode_cq_unit` | raw bytes | [`check_decode_cq_unit`]: `CqUnit::decode` never panics and `encode(decode(x)) == x` |
//! | `recover_store` | [`RecoverInput`] | [`check_recover_store`]: a damaged copy of a small valid store opens or fails cleanly, reads are consistent, close and reopen too |
//! | `store_ops` | [`StoreOps`] | [`check_store_ops`]: put / batch / get / reopen sequences agree with an in-memory model |

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;

use mqstore::checkpoint::{CHECKPOINT_FILE, CHECKPOINT_SIZE, Checkpoint, Loaded};
use mqstore::codec::{self, DecodeError, EncodedRecord, Frame, RecordSpec, RecordView, Verify};
use mqstore::consume_queue::{CqUnit, UNIT_SIZE};
use mqstore::{Error, FlushPolicy, GetResult, GetStatus, Message, MessageStore, StoreConfig};

// ---------------------------------------------------------------------------------------------
// Structured input: a byte reader and its writer.
// ---------------------------------------------------------------------------------------------

/// Reads a fuzzer's bytes as a stream of small values. Past the end every value is zero, so any
/// byte string is a valid input (the idea of `arbitrary::Unstructured`, without the dependency).
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, 0 past the end.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next eight bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_be_bytes(b)
    }

    /// The next `n` bytes, or fewer at the end.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }
}

/// The inverse of [`Reader`], for writing seeds.
#[derive(Clone, Debug, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// A scratch directory, on tmpfs when the machine has one (the fuzzer writes a store per input).
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new().prefix("mqstore-fuzz-").tempdir_in(shm)
    {
        return dir;
    }
    tempfile::Builder::new()
        .prefix("mqstore-fuzz-")
        .tempdir()
        .expect("create a temporary directory")
}

// ---------------------------------------------------------------------------------------------
// decode_record
// ---------------------------------------------------------------------------------------------

/// `decode_record`: decodes `data` at every [`Verify`] level. None may panic; what a stronger
/// level accepts the weaker ones accept too, with the same view; every view is consistent with
/// the bytes; and a record accepted under `RequireRecordCrc` comes out of
/// [`EncodedRecord::encode`] + [`EncodedRecord::seal`] byte for byte (unless it is one of the
/// non-canonical forms of [`non_canonical`]).
pub fn check_decode_record(data: &[u8]) {
    let framing = codec::decode(data, Verify::Framing);
    let crc = codec::decode(data, Verify::Crc);
    let strict = codec::decode(data, Verify::RequireRecordCrc);
    for frame in [&framing, &crc, &strict].into_iter().flatten() {
        check_frame(data, frame);
    }
    if let Ok(frame) = &strict {
        assert_same_frame(frame, crc.as_ref(), "RequireRecordCrc accepted what Crc rejected");
    }
    if let Ok(frame) = &crc {
        assert_same_frame(frame, framing.as_ref(), "Crc accepted what Framing rejected");
    }
    if let Ok(Frame::Record(view)) = &strict {
        check_reencodes(data, view);
    }
}

fn assert_same_frame(frame: &Frame<'_>, weaker: Result<&Frame<'_>, &DecodeError>, what: &str) {
    match weaker {
        // RecordView has no PartialEq; its Debug output shows every field.
        Ok(weaker) => assert_eq!(format!("{frame:?}"), format!("{weaker:?}"), "{what}: views differ"),
        Err(e) => panic!("{what} ({e}): {frame:?}"),
    }
}

fn check_frame(data: &[u8], frame: &Frame<'_>) {
    match frame {
        Frame::Blank { len } => {
            assert!(*len as usize >= codec::BLANK_LEN, "BLANK of {len} bytes");
            assert_eq!(codec::peek_header(data), Some((*len as i32, codec::MAGIC_BLANK)));
        }
        Frame::Record(view) => check_view(data, view),
    }
}

fn slice_at(rec: &[u8], at: u32, len: usize) -> Option<&[u8]> {
    rec.get(at as usize..(at as usize).checked_add(len)?)
}

fn check_view(data: &[u8], v: &RecordView<'_>) {
    let total = v.total_size as usize;
    assert!(
        (codec::MIN_RECORD_LEN..=data.len()).contains(&total),
        "TOTALSIZE {total} outside {}..={}",
        codec::MIN_RECORD_LEN,
        data.len()
    );
    assert!(
        v.magic == codec::MAGIC_V1 || v.magic == codec::MAGIC_V2,
        "magic {:#x}",
        v.magic
    );
    assert_eq!(codec::peek_header(data), Some((v.total_size as i32, v.magic)));
    let rec = &data[..total];
    assert_eq!(
        slice_at(rec, v.body_offset, v.body.len()),
        Some(v.body),
        "body position"
    );
    assert_eq!(
        slice_at(rec, v.topic_offset, v.topic.len()),
        Some(v.topic.as_bytes()),
        "topic position"
    );
    assert_eq!(
        slice_at(rec, v.properties_offset, v.properties.len()),
        Some(v.properties.as_bytes()),
        "properties position"
    );
    assert_eq!(
        v.properties_offset as usize + v.properties.len(),
        total,
        "the properties end the record"
    );
    assert!(v.queue_id <= i32::MAX as u32);
    assert!(v.queue_offset <= i64::MAX as u64);
    assert!(v.physical_offset <= i64::MAX as u64);
    assert_eq!(v.born_host.is_ipv6(), v.sys_flag & codec::BORNHOST_V6 != 0);
    assert_eq!(v.store_host.is_ipv6(), v.sys_flag & codec::STOREHOST_V6 != 0);
    // The accessors are total functions of the view.
    assert_eq!(v.tags_code(), v.tags().map_or(0, codec::tags_code));
    for (key, value) in codec::properties(v.properties) {
        assert!(!key.is_empty() && !value.is_empty(), "empty property {key:?}={value:?}");
    }
    let _ = (
        v.keys().count(),
        v.user_properties().count(),
        v.uniq_key(),
        v.transaction_type(),
    );
    let _ = v.has_record_crc();
    assert_eq!(
        codec::parse_offset_msg_id(&v.offset_msg_id()),
        Some((v.store_host, v.physical_offset)),
        "offset message id round trip"
    );
}

/// Why a record that decodes under `RequireRecordCrc` cannot come out of the encoder byte for
/// byte; `None` if it can.
pub fn non_canonical(v: &RecordView<'_>) -> Option<&'static str> {
    let v2 = v.magic == codec::MAGIC_V2;
    if v.topic.is_empty() {
        // The decoder accepts an empty topic (documented); the encoder refuses one.
        Some("empty topic")
    } else if !v2 && v.topic.len() > codec::MAX_V1_TOPIC_LEN {
        // The decoder reads the V1 topic length byte unsigned (0..=255); the encoder writes V2
        // for topics longer than 127 bytes.
        Some("V1 record with a topic longer than 127 bytes")
    } else if v2 && v.topic.len() <= codec::MAX_V1_TOPIC_LEN {
        // Valid (RocketMQ 5 can write V2 for any topic), but the encoder picks V1 for these.
        Some("V2 record with a topic of at most 127 bytes")
    } else if v.store_timestamp < 0 {
        // `seal` takes the store timestamp as a u64 of at most i64::MAX.
        Some("negative store timestamp")
    } else if v.body_crc != codec::masked_crc32(v.body) {
        // RequireRecordCrc checks only the whole-record CRC, which covers the stored BODYCRC
        // field; the encoder always writes the body's true CRC there.
        Some("BODYCRC that does not match the body")
    } else {
        None
    }
}

/// Encodes the fields of `v` again (its properties without the trailing CRC property) and seals
/// the record with its own offsets and `store_timestamp`.
///
/// # Panics
/// If `v` has no whole-record CRC property.
pub fn reencode(v: &RecordView<'_>, store_timestamp: u64) -> mqstore::Result<Vec<u8>> {
    let props = v.properties.as_bytes();
    assert!(v.has_record_crc(), "re-encoding needs the CRC property");
    let user_props = &props[..props.len() - codec::CRC_PROPERTY_LEN];
    let spec = RecordSpec {
        topic: v.topic,
        queue_id: v.queue_id,
        flag: v.flag,
        sys_flag: v.sys_flag,
        born_timestamp: v.born_timestamp,
        born_host: v.born_host,
        store_host: v.store_host,
        reconsume_times: v.reconsume_times,
        prepared_transaction_offset: v.prepared_transaction_offset,
        body: v.body,
        properties: user_props,
    };
    let mut record = EncodedRecord::encode(&spec)?;
    record.seal(v.queue_offset, v.physical_offset, store_timestamp);
    Ok(record.into_vec())
}

fn check_reencodes(data: &[u8], v: &RecordView<'_>) {
    assert!(
        v.has_record_crc(),
        "RequireRecordCrc accepted a record without the CRC property"
    );
    if non_canonical(v).is_some() {
        return;
    }
    let again = reencode(v, v.store_timestamp as u64)
        .unwrap_or_else(|e| panic!("a record that decodes under RequireRecordCrc does not encode: {e}"));
    assert!(
        again.as_slice() == &data[..v.total_size as usize],
        "re-encoding changed the record:\n decoded  {:02x?}\n encoded  {:02x?}",
        &data[..v.total_size as usize],
        again
    );
}

// ---------------------------------------------------------------------------------------------
// decode_cq_unit
// ---------------------------------------------------------------------------------------------

/// `decode_cq_unit`: `CqUnit::decode` on every 20-byte chunk of `data` (and the short tail) never
/// panics, accepts exactly the units with offset >= 0 and size > 0, and re-encodes them to the
/// same bytes.
pub fn check_decode_cq_unit(data: &[u8]) {
    let unit = UNIT_SIZE as usize;
    for chunk in data.chunks(unit) {
        let decoded = CqUnit::decode(chunk);
        if chunk.len() < unit {
            assert_eq!(decoded, None, "a unit from {} bytes", chunk.len());
            continue;
        }
        let offset = i64::from_be_bytes(chunk[0..8].try_into().expect("8 bytes"));
        let size = i32::from_be_bytes(chunk[8..12].try_into().expect("4 bytes"));
        assert_eq!(decoded.is_some(), offset >= 0 && size > 0, "validity of {chunk:02x?}");
        if let Some(u) = decoded {
            assert_eq!(&u.encode()[..], chunk, "encode(decode(x)) != x");
            assert_eq!(u.is_blank(), u.encode() == CqUnit::BLANK.encode());
            assert!(u.end() >= u.commit_log_offset);
        }
    }
    // A longer slice: only its first 20 bytes count.
    if data.len() > unit {
        assert_eq!(CqUnit::decode(data), CqUnit::decode(&data[..unit]));
    }
}

// ---------------------------------------------------------------------------------------------
// decode_frame
// ---------------------------------------------------------------------------------------------

/// Largest body the fuzzed replication reader accepts: small, so that "too large" is reachable.
pub const FRAME_MAX_BODY: u32 = 4096;

/// Hands out bytes in chunks of a fixed size, with a read timeout between every two, as a
/// socket with a read timeout does.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
    stall: bool,
}

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stall = !self.stall;
        if self.stall {
            return Err(std::io::Error::new(std::io::ErrorKind::WouldBlock, "timeout"));
        }
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// `decode_frame`: replication frames from a peer. `frame::decode` never panics; a frame it
/// accepts re-encodes to exactly the bytes it used; a `FrameReader` fed the same bytes in chunks
/// (the first byte picks their size) with a timeout between every two reads the same frames, and
/// fails where `decode` fails.
pub fn check_decode_frame(data: &[u8]) {
    use mqstore::replication::frame::{self, FrameReader, ProtocolError};
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    // What repeated `decode` makes of the stream: the frames, re-encoded, and whether it ended
    // in an error (rather than at a frame boundary or inside a frame).
    let mut expected = Vec::new();
    let mut rest = stream;
    let decode_failed = loop {
        match frame::decode(rest, FRAME_MAX_BODY) {
            Ok(Some((f, used))) => {
                let mut again = Vec::new();
                frame::encode(&f, &mut again);
                assert_eq!(again, &rest[..used], "encode(decode(x)) != x for a {} frame", f.name());
                expected.push(again);
                rest = &rest[used..];
            }
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    let mut reader = FrameReader::new(
        Chunked {
            data: stream,
            chunk: usize::from(first % 64) + 1,
            stall: false,
        },
        FRAME_MAX_BODY,
    );
    let mut got = Vec::new();
    let reader_failed = loop {
        match reader.read_frame() {
            Ok(Some(f)) => {
                let mut bytes = Vec::new();
                frame::encode(&f, &mut bytes);
                got.push(bytes);
            }
            Ok(None) => break false,
            Err(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // A stream cut inside a frame: `decode` saw an incomplete frame there.
            Err(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break false,
            Err(_) => break true,
        }
    };
    assert_eq!(got, expected, "the reader and decode disagree on the frames");
    assert_eq!(
        reader_failed, decode_failed,
        "the reader and decode disagree on an error"
    );
}

/// Seeds of `decode_frame`: the first byte sets the reader's chunk size, the rest is a stream.
fn frame_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use mqstore::replication::epoch::EpochEntry;
    use mqstore::replication::frame::{self, Frame};
    let one = |chunk: u8, frames: &[Frame<'_>]| {
        let mut v = vec![chunk];
        for f in frames {
            frame::encode(f, &mut v);
        }
        v
    };
    let hello = Frame::Hello {
        segment_size: 1 << 30,
        max_offset: 4096,
        last_epoch: 2,
    };
    let welcome = Frame::Welcome {
        segment_size: 1 << 30,
        max_offset: 8192,
        min_offset: 0,
        epochs: vec![
            EpochEntry {
                epoch: 1,
                start_offset: 0,
            },
            EpochEntry {
                epoch: 2,
                start_offset: 4096,
            },
        ],
    };
    let data = Frame::Data {
        offset: 4096,
        epoch: 2,
        epoch_start: 4096,
        bytes: b"\x00\x00\x00\x08\xcb\xd4\x32\x07",
    };
    let mut bad_crc = one(5, std::slice::from_ref(&data));
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let mut truncated = one(3, &[Frame::Ack { offset: 77 }]);
    truncated.pop();
    vec![
        ("hello", one(0, std::slice::from_ref(&hello))),
        ("welcome", one(7, std::slice::from_ref(&welcome))),
        ("data", one(63, std::slice::from_ref(&data))),
        (
            "ack-heartbeat-refuse",
            one(
                1,
                &[
                    Frame::Ack { offset: 77 },
                    Frame::Heartbeat { max_offset: 99 },
                    Frame::Refuse {
                        code: 3,
                        reason: "diverged",
                    },
                ],
            ),
        ),
        ("handshake", one(16, &[hello, welcome, data])),
        ("bad-crc", bad_crc),
        ("truncated", truncated),
    ]
}

// ---------------------------------------------------------------------------------------------
// recover_store: the base store
// ---------------------------------------------------------------------------------------------

/// Commit-log segment size of the fuzzed stores.
pub const SEGMENT_SIZE: u64 = 4096;
/// Units per consume-queue file of the fuzzed stores (320-byte files).
pub const CQ_UNITS: u64 = 16;
/// The base store's topic (queues 0 and 1).
pub const BASE_TOPIC: &str = "fuzz";
/// Messages in the base store.
pub const BASE_MESSAGES: u64 = 40;
/// Store timestamp of the base store's first record (the next ones count up by 1 ms).
pub const BASE_STORE_TIMESTAMP: u64 = 1_700_000_000_000;

/// The configuration every fuzzed store is opened with.
pub fn store_config(dir: &Path) -> StoreConfig {
    // Index file names and unique keys come from the clock and the process: the base store
    // would differ between runs, and a crashing input would not replay.
    StoreConfig::new(dir)
        .commit_log_segment_size(SEGMENT_SIZE)
        .consume_queue_units_per_segment(CQ_UNITS)
        .message_index(false)
        .unique_keys(false)
}

/// A message of the base store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseMessage {
    /// Queue id (the topic is [`BASE_TOPIC`]).
    pub queue_id: u32,
    /// Queue offset.
    pub queue_offset: u64,
    /// Body.
    pub body: Vec<u8>,
    /// Tag.
    pub tags: Option<String>,
}

/// A small valid store, written by the library: its files and its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseStore {
    /// Relative path (with `/`) to contents, `lock` excluded.
    pub files: BTreeMap<String, Vec<u8>>,
    /// What it holds.
    pub messages: Vec<BaseMessage>,
    /// Its consume-queue registry, kept out of `files` (see [`RecoverInput::registry`]).
    pub registry: Option<Vec<u8>>,
}

/// Where the consume-queue registry lives in a store.
pub const REGISTRY_PATH: &str = "config/consumeQueues.json";

/// The base store, built once per process.
pub fn base_store() -> &'static BaseStore {
    static BASE: OnceLock<BaseStore> = OnceLock::new();
    BASE.get_or_init(build_base_store)
}

/// A deterministic body.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (seed.wrapping_mul(131) as usize).wrapping_add(j * 7) as u8)
        .collect()
}

/// Writes the base store with the library (40 messages over queues 0 and 1 of [`BASE_TOPIC`],
/// 3 commit-log segments of 4 KiB, two 16-unit files per consume queue), closes it, and reads
/// its files back. The store timestamps (the only bytes that depend on the clock) are then
/// rewritten to [`BASE_STORE_TIMESTAMP`]` + i` with the record CRC recomputed, and empty
/// trailing commit-log segments (the background preallocator may or may not have made one) are
/// left out, so that the result is the same in every run: an input that crashes the fuzzer
/// replays.
pub fn build_base_store() -> BaseStore {
    let dir = scratch_dir();
    let store = MessageStore::open(store_config(dir.path())).expect("open a fresh store");
    let mut messages = Vec::new();
    for i in 0..BASE_MESSAGES {
        let queue_id = (i % 2) as u32;
        let body = pattern(i, (i * 37 % 300) as usize);
        let tags = [None, Some("TagA"), Some("TagB")][(i % 3) as usize];
        let mut msg = Message::new(BASE_TOPIC, queue_id, body.clone())
            .with_born_timestamp(BASE_STORE_TIMESTAMP - 1_000)
            .with_keys([format!("key-{i}")]);
        if let Some(tags) = tags {
            msg = msg.with_tags(tags);
        }
        let r = store.put(msg).expect("put into the base store");
        messages.push(BaseMessage {
            queue_id,
            queue_offset: r.queue_offset,
            body,
            tags: tags.map(String::from),
        });
    }
    store.close().expect("close the base store");
    drop(store);
    let mut files = BTreeMap::new();
    read_tree(dir.path(), "", &mut files);
    files.remove("lock");
    let registry = files.remove(REGISTRY_PATH);
    let records = normalize_commit_log(&mut files);
    normalize_checkpoint(&mut files, (BASE_STORE_TIMESTAMP + records).saturating_sub(1) as i64);
    BaseStore {
        files,
        messages,
        registry,
    }
}

fn read_tree(root: &Path, rel: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    let dir = root.join(rel);
    for entry in fs::read_dir(&dir).expect("list the base store") {
        let entry = entry.expect("list the base store");
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        if entry.file_type().expect("file type").is_dir() {
            read_tree(root, &rel, out);
        } else {
            out.insert(rel, fs::read(entry.path()).expect("read the base store"));
        }
    }
}

/// Rewrites the store timestamps of the commit log; returns how many records there are.
fn normalize_commit_log(files: &mut BTreeMap<String, Vec<u8>>) -> u64 {
    let mut n = 0u64;
    for (_, segment) in files.iter_mut().filter(|(k, _)| k.starts_with("commitlog/")) {
        let mut pos = 0usize;
        while let Ok(Frame::Record(v)) = codec::decode(&segment[pos..], Verify::RequireRecordCrc) {
            let total = v.total_size as usize;
            let bytes = reencode(&v, BASE_STORE_TIMESTAMP + n).expect("re-encode a base record");
            segment[pos..pos + total].copy_from_slice(&bytes);
            pos += total;
            n += 1;
        }
    }
    while let Some(last) = files.keys().rfind(|k| k.starts_with("commitlog/")).cloned() {
        if files[&last].iter().any(|&b| b != 0) {
            break;
        }
        files.remove(&last);
    }
    n
}

/// Rewrites the checkpoint's timestamps (the clock's) and sequence numbers (how many periodic
/// checkpoints ran) to fixed values, keeping its offsets: two valid slots, seq 1 and 2.
fn normalize_checkpoint(files: &mut BTreeMap<String, Vec<u8>>, last_store_timestamp: i64) {
    let Some(page) = files.get_mut(CHECKPOINT_FILE) else {
        return;
    };
    if let Loaded::Exact(mut cp) = Checkpoint::decode(page) {
        cp.physic_msg_timestamp = last_store_timestamp;
        cp.logics_msg_timestamp = last_store_timestamp;
        cp.index_msg_timestamp = 0;
        let mut out = Box::new([0u8; CHECKPOINT_SIZE]);
        for seq in [1, 2] {
            cp.seq = seq;
            cp.encode_into(&mut out);
        }
        *page = out.to_vec();
    }
}

// ---------------------------------------------------------------------------------------------
// recover_store: the input
// ---------------------------------------------------------------------------------------------

/// Integers worth writing into headers, by index (see [`FileOp::SetInt`]).
pub const INTERESTING: [u64; 20] = [
    0,
    1,
    8,
    20,
    91,
    120,
    320,
    4088,
    4095,
    4096,
    4104,
    0x7FFF,
    0x8000,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    codec::MAGIC_V1 as u64,
    codec::MAGIC_V2 as u64,
    codec::MAGIC_BLANK as u64,
    u64::MAX,
];

/// One change to the store's files. `file` picks a file of the current set (sorted by path),
/// modulo its size; offsets are taken modulo the file's length and writes never grow a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOp {
    /// Overwrites bytes at `offset`.
    Patch {
        /// File index.
        file: u8,
        /// Where.
        offset: u16,
        /// What (at most 255 bytes).
        bytes: Vec<u8>,
    },
    /// Writes `value` as a big-endian integer of `width` (1, 2, 4 or 8) bytes at `offset`.
    SetInt {
        /// File index.
        file: u8,
        /// Where.
        offset: u16,
        /// 1, 2, 4 or 8.
        width: u8,
        /// The value (its low `width` bytes).
        value: u64,
    },
    /// Cuts the file to `len % (file length + 1)` bytes.
    Truncate {
        /// File index.
        file: u8,
        /// New length.
        len: u16,
    },
    /// Removes the file.
    Delete {
        /// File index.
        file: u8,
    },
    /// Zeroes `len` bytes from `offset`.
    Zero {
        /// File index.
        file: u8,
        /// Where.
        offset: u16,
        /// How many.
        len: u16,
    },
    /// Copies `len` bytes from one file into another (or the same).
    Copy {
        /// Source file index.
        from: u8,
        /// Source offset.
        from_offset: u16,
        /// Destination file index.
        to: u8,
        /// Destination offset.
        to_offset: u16,
        /// How many.
        len: u16,
    },
    /// Adds (or replaces) file [`file_name`]`(dir, index)` of `len` bytes (0: the directory's
    /// segment size; `u16::MAX`: empty), filled by repeating `fill` (zeros if empty).
    Add {
        /// Directory, see [`DIRS`].
        dir: u8,
        /// Name, see [`file_name`].
        index: u8,
        /// Length.
        len: u16,
        /// Fill pattern (at most 255 bytes).
        fill: Vec<u8>,
    },
    /// Moves a file to [`file_name`]`(dir, index)`.
    Rename {
        /// File index.
        file: u8,
        /// Directory, see [`DIRS`].
        dir: u8,
        /// Name, see [`file_name`].
        index: u8,
    },
}

/// Directories [`FileOp::Add`] and [`FileOp::Rename`] can put files in: the store root, the
/// commit log, the base queues, a new queue, a new topic, and two invalid queue directories.
pub const DIRS: [&str; 8] = [
    "",
    "commitlog",
    "consumequeue/fuzz/0",
    "consumequeue/fuzz/1",
    "consumequeue/fuzz/2",
    "consumequeue/other/0",
    "consumequeue/bad topic!/0",
    "consumequeue/fuzz/x",
];

/// Segment size of the files of directory `dir` of [`DIRS`].
pub fn dir_segment_size(dir: &str) -> u64 {
    if dir == "commitlog" {
        SEGMENT_SIZE
    } else {
        CQ_UNITS * UNIT_SIZE
    }
}

/// File name number `index` in directory `dir` of [`DIRS`]: in the root, one of the store's
/// files; in a segment directory, mostly the segment at `index`, sometimes an odd name.
pub fn file_name(dir: &str, index: u8) -> String {
    if dir.is_empty() {
        const ROOT: [&str; 6] = [
            "abort",
            "checkpoint",
            "mqstore.meta",
            "lock",
            "mqstore.meta.tmp",
            "stray",
        ];
        return ROOT[index as usize % ROOT.len()].to_string();
    }
    let size = dir_segment_size(dir);
    match index {
        0..=249 => format!("{:020}", u64::from(index) * size),
        250 => format!("{:020}", size + 1),
        251 => format!("{:019}", size),
        252 => "junk".to_string(),
        253 => ".hidden".to_string(),
        254 => format!("{:020}.tmp", size),
        255 => format!("{:020}", (1u64 << 40) * size),
    }
}

/// A `recover_store` input: how to build the store directory from the base store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoverInput {
    /// Start from an empty directory instead of the base store.
    pub from_empty: bool,
    /// Write the `abort` marker: the last run "crashed".
    pub abort: bool,
    /// Remove `mqstore.meta`: the store looks written by RocketMQ.
    pub drop_meta: bool,
    /// Replace `mqstore.meta` with these bytes (at most 255).
    pub meta: Option<Vec<u8>>,
    /// Write a `checkpoint` file with these bytes (at most 4096).
    pub checkpoint: Option<Vec<u8>>,
    /// Open with `verify_crc_on_read(false)`.
    pub verify_off: bool,
    /// Add the base store's consume-queue registry (`config/consumeQueues.json`), which the
    /// base files leave out so that file indices stay what they were before it existed: a store
    /// without it is one an older mqstore or RocketMQ wrote.
    pub registry: bool,
    /// Changes to the files, in order (at most [`MAX_FILE_OPS`]).
    pub ops: Vec<FileOp>,
}

/// Most file operations read from one input.
pub const MAX_FILE_OPS: usize = 32;

impl RecoverInput {
    /// Reads an input; any bytes are one.
    pub fn decode(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let flags = r.u8();
        let mut input = RecoverInput {
            from_empty: flags & 0x10 != 0,
            abort: flags & 0x01 != 0,
            drop_meta: flags & 0x02 != 0,
            verify_off: flags & 0x20 != 0,
            registry: flags & 0x40 != 0,
            ..Default::default()
        };
        if flags & 0x04 != 0 {
            let n = r.u8() as usize;
            input.meta = Some(r.bytes(n).to_vec());
        }
        if flags & 0x08 != 0 {
            let n = (r.u16() as usize).min(4096);
            input.checkpoint = Some(r.bytes(n).to_vec());
        }
        while !r.is_empty() && input.ops.len() < MAX_FILE_OPS {
            let op = match r.u8() % 8 {
                0 => FileOp::Patch {
                    file: r.u8(),
                    offset: r.u16(),
                    bytes: {
                        let n = r.u8() as usize;
                        r.bytes(n).to_vec()
                    },
                },
                1 => FileOp::SetInt {
                    file: r.u8(),
                    offset: r.u16(),
                    width: [1, 2, 4, 8][r.u8() as usize % 4],
                    value: match r.u8() as usize {
                        i if i < INTERESTING.len() => INTERESTING[i],
                        _ => r.u64(),
                    },
                },
                2 => FileOp::Truncate {
                    file: r.u8(),
                    len: r.u16(),
                },
                3 => FileOp::Delete { file: r.u8() },
                4 => FileOp::Zero {
                    file: r.u8(),
                    offset: r.u16(),
                    len: r.u16(),
                },
                5 => FileOp::Copy {
                    from: r.u8(),
                    from_offset: r.u16(),
                    to: r.u8(),
                    to_offset: r.u16(),
                    len: r.u16(),
                },
                6 => FileOp::Add {
                    dir: r.u8(),
                    index: r.u8(),
                    len: r.u16(),
                    fill: {
                        let n = r.u8() as usize;
                        r.bytes(n).to_vec()
                    },
                },
                _ => FileOp::Rename {
                    file: r.u8(),
                    dir: r.u8(),
                    index: r.u8(),
                },
            };
            input.ops.push(op);
        }
        input
    }

    /// The bytes [`decode`](Self::decode) reads back as `self` (for values in range).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let flags = u8::from(self.abort)
            | u8::from(self.drop_meta) << 1
            | u8::from(self.meta.is_some()) << 2
            | u8::from(self.checkpoint.is_some()) << 3
            | u8::from(self.from_empty) << 4
            | u8::from(self.verify_off) << 5
            | u8::from(self.registry) << 6;
        w.u8(flags);
        if let Some(meta) = &self.meta {
            w.u8(meta.len() as u8).bytes(meta);
        }
        if let Some(cp) = &self.checkpoint {
            w.u16(cp.len() as u16).bytes(cp);
        }
        for op in &self.ops {
            match op {
                FileOp::Patch { file, offset, bytes } => {
                    w.u8(0).u8(*file).u16(*offset).u8(bytes.len() as u8).bytes(bytes);
                }
                FileOp::SetInt {
                    file,
                    offset,
                    width,
                    value,
                } => {
                    let width_code = [1, 2, 4, 8].iter().position(|w| w == width).unwrap_or(0) as u8;
                    w.u8(1).u8(*file).u16(*offset).u8(width_code);
                    match INTERESTING.iter().position(|v| v == value) {
                        Some(i) => w.u8(i as u8),
                        None => w.u8(0xFF).u64(*value),
                    };
                }
                FileOp::Truncate { file, len } => {
                    w.u8(2).u8(*file).u16(*len);
                }
                FileOp::Delete { file } => {
                    w.u8(3).u8(*file);
                }
                FileOp::Zero { file, offset, len } => {
                    w.u8(4).u8(*file).u16(*offset).u16(*len);
                }
                FileOp::Copy {
                    from,
                    from_offset,
                    to,
                    to_offset,
                    len,
                } => {
                    w.u8(5).u8(*from).u16(*from_offset).u8(*to).u16(*to_offset).u16(*len);
                }
                FileOp::Add { dir, index, len, fill } => {
                    w.u8(6).u8(*dir).u8(*index).u16(*len).u8(fill.len() as u8).bytes(fill);
                }
                FileOp::Rename { file, dir, index } => {
                    w.u8(7).u8(*file).u8(*dir).u8(*index);
                }
            }
        }
        w.0
    }

    /// The files of the store directory this input describes.
    pub fn files(&self, base: &BaseStore) -> BTreeMap<String, Vec<u8>> {
        let mut files = if self.from_empty {
            BTreeMap::new()
        } else {
            base.files.clone()
        };
        if self.abort {
            files.insert("abort".into(), Vec::new());
        }
        if self.registry
            && !self.from_empty
            && let Some(registry) = &base.registry
        {
            files.insert(REGISTRY_PATH.into(), registry.clone());
        }
        if self.drop_meta {
            files.remove("mqstore.meta");
        }
        if let Some(meta) = &self.meta {
            files.insert("mqstore.meta".into(), meta.clone());
        }
        if let Some(cp) = &self.checkpoint {
            files.insert("checkpoint".into(), cp.clone());
        }
        for op in &self.ops {
            op.apply(&mut files);
        }
        files
    }

    /// Whether the store is the base store with nothing but the abort marker, the meta file's
    /// absence, a checkpoint or the read verification changed: every message must then read back.
    pub fn keeps_base_intact(&self) -> bool {
        !self.from_empty && self.meta.is_none() && self.ops.is_empty()
    }
}

/// The path of file number `index` (modulo the count), in path order.
fn pick(files: &BTreeMap<String, Vec<u8>>, index: u8) -> Option<String> {
    if files.is_empty() {
        return None;
    }
    files.keys().nth(index as usize % files.len()).cloned()
}

/// `[offset, offset + len)` of a file of `file_len` bytes, with `offset` taken modulo the length
/// and the end clipped to it.
fn clip(file_len: usize, offset: u16, len: usize) -> Option<std::ops::Range<usize>> {
    if file_len == 0 {
        return None;
    }
    let start = offset as usize % file_len;
    Some(start..start + len.min(file_len - start))
}

impl FileOp {
    /// Applies the change.
    pub fn apply(&self, files: &mut BTreeMap<String, Vec<u8>>) {
        match self {
            FileOp::Patch { file, offset, bytes } => {
                let Some(path) = pick(files, *file) else { return };
                let f = files.get_mut(&path).expect("picked");
                if let Some(range) = clip(f.len(), *offset, bytes.len()) {
                    let n = range.len();
                    f[range].copy_from_slice(&bytes[..n]);
                }
            }
            FileOp::SetInt {
                file,
                offset,
                width,
                value,
            } => {
                let Some(path) = pick(files, *file) else { return };
                let f = files.get_mut(&path).expect("picked");
                let width = (*width as usize).clamp(1, 8);
                let bytes = &value.to_be_bytes()[8 - width..];
                if let Some(range) = clip(f.len(), *offset, width) {
                    let n = range.len();
                    f[range].copy_from_slice(&bytes[..n]);
                }
            }
            FileOp::Truncate { file, len } => {
                let Some(path) = pick(files, *file) else { return };
                let f = files.get_mut(&path).expect("picked");
                let new_len = *len as usize % (f.len() + 1);
                f.truncate(new_len);
            }
            FileOp::Delete { file } => {
                if let Some(path) = pick(files, *file) {
                    files.remove(&path);
                }
            }
            FileOp::Zero { file, offset, len } => {
                let Some(path) = pick(files, *file) else { return };
                let f = files.get_mut(&path).expect("picked");
                if let Some(range) = clip(f.len(), *offset, *len as usize) {
                    f[range].fill(0);
                }
            }
            FileOp::Copy {
                from,
                from_offset,
                to,
                to_offset,
                len,
            } => {
                let (Some(src), Some(dst)) = (pick(files, *from), pick(files, *to)) else {
                    return;
                };
                let Some(range) = clip(files[&src].len(), *from_offset, *len as usize) else {
                    return;
                };
                let chunk = files[&src][range].to_vec();
                let f = files.get_mut(&dst).expect("picked");
                if let Some(range) = clip(f.len(), *to_offset, chunk.len()) {
                    let n = range.len();
                    f[range].copy_from_slice(&chunk[..n]);
                }
            }
            FileOp::Add { dir, index, len, fill } => {
                let dir = DIRS[*dir as usize % DIRS.len()];
                let len = match *len {
                    0 => dir_segment_size(dir) as usize,
                    u16::MAX => 0,
                    n => n as usize,
                };
                let contents = if fill.is_empty() {
                    vec![0; len]
                } else {
                    fill.iter().copied().cycle().take(len).collect()
                };
                files.insert(join(dir, &file_name(dir, *index)), contents);
            }
            FileOp::Rename { file, dir, index } => {
                let Some(path) = pick(files, *file) else { return };
                let dir = DIRS[*dir as usize % DIRS.len()];
                let contents = files.remove(&path).expect("picked");
                files.insert(join(dir, &file_name(dir, *index)), contents);
            }
        }
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Writes `files` under `root`. A path that clashes with another (a file where a directory must
/// be) is left out, as it could not exist on disk either.
pub fn write_files(root: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (rel, contents) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent()
            && fs::create_dir_all(parent).is_err()
        {
            continue;
        }
        let _ = fs::write(&path, contents);
    }
}

// ---------------------------------------------------------------------------------------------
// recover_store: the check
// ---------------------------------------------------------------------------------------------

/// What one `get` returned, comparable across a reopen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `Ok`: the status, the next offset, and each message.
    Got(GetStatus, u64, Vec<MessageDigest>),
    /// `Err`: its message.
    Failed(String),
}

/// A message as [`ReadOutcome`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDigest {
    /// Queue offset.
    pub queue_offset: u64,
    /// Commit-log offset.
    pub commit_log_offset: u64,
    /// Body length.
    pub body_len: usize,
    /// CRC of the body.
    pub body_crc: u32,
    /// Tag.
    pub tags: Option<String>,
}

/// What must survive a clean close and reopen: per non-empty queue, its max offset and every
/// message any `get` returned, by queue offset. (Not the min offset, nor the status at offsets
/// without a message: a reopen may legitimately tidy those, e.g. skip leading filler units.)
pub type Readable = BTreeMap<(String, u32), (u64, BTreeMap<u64, MessageDigest>)>;

/// The [`Readable`] part of a snapshot.
pub fn readable(snapshot: &Snapshot) -> Readable {
    let mut out = Readable::new();
    for (key, (_, max, outcomes)) in snapshot {
        let mut messages = BTreeMap::new();
        for outcome in outcomes {
            if let ReadOutcome::Got(_, _, found) = outcome {
                for m in found {
                    messages.insert(m.queue_offset, m.clone());
                }
            }
        }
        if *max > 0 || !messages.is_empty() {
            out.insert(key.clone(), (*max, messages));
        }
    }
    out
}

/// Where two [`Readable`]s differ, briefly.
fn readable_difference(a: &Readable, b: &Readable) -> String {
    let mut out = Vec::new();
    for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        let empty = (0, BTreeMap::new());
        let (x, y) = (a.get(key).unwrap_or(&empty), b.get(key).unwrap_or(&empty));
        if x.0 != y.0 {
            out.push(format!("{key:?}: max offset {} then {}", x.0, y.0));
        }
        let offsets: std::collections::BTreeSet<u64> = x.1.keys().chain(y.1.keys()).copied().collect();
        let differing: Vec<_> = offsets.into_iter().filter(|o| x.1.get(o) != y.1.get(o)).collect();
        if let Some(o) = differing.first() {
            out.push(format!(
                "{key:?}: {} messages differ, first at queue offset {o}:\n  first  {:?}\n  second {:?}",
                differing.len(),
                x.1.get(o),
                y.1.get(o)
            ));
        }
    }
    out.join("\n")
}

/// Everything readable from a store: per queue, (min offset, max offset, one outcome per offset).
pub type Snapshot = BTreeMap<(String, u32), (u64, u64, Vec<ReadOutcome>)>;

/// Most `get`s one snapshot makes (a damaged consume-queue file name can claim a huge range).
const MAX_GETS: usize = 2_000;

/// Reads every queue the store lists from its min to its max offset, checking each result: `Ok`
/// with messages of the requested queue at offsets in `[offset, next_offset)`, inside the commit
/// log, or a typed `Err`; and the statuses just outside the range.
pub fn read_everything(store: &MessageStore) -> Snapshot {
    let (log_min, log_max) = (store.min_commit_log_offset(), store.max_commit_log_offset());
    assert!(log_min <= log_max, "commit log min {log_min} > max {log_max}");
    let mut budget = MAX_GETS;
    let mut snapshot = Snapshot::new();
    for (topic, queue_id) in store.queues() {
        let (min, max) = (store.min_offset(&topic, queue_id), store.max_offset(&topic, queue_id));
        assert!(min <= max, "{topic}/{queue_id}: min offset {min} > max offset {max}");
        let status_at = |offset: u64| store.get(&topic, queue_id, offset, 1).map(|g| g.status).ok();
        if max == 0 {
            assert_eq!(
                status_at(0),
                Some(GetStatus::NoMessageInQueue),
                "{topic}/{queue_id} is empty"
            );
        } else {
            assert_eq!(
                status_at(max),
                Some(GetStatus::OffsetOverflowOne),
                "{topic}/{queue_id} at max"
            );
            assert_eq!(
                status_at(max + 1),
                Some(GetStatus::OffsetOverflowBadly),
                "{topic}/{queue_id} past max"
            );
            if min > 0 {
                assert_eq!(
                    status_at(min - 1),
                    Some(GetStatus::OffsetTooSmall),
                    "{topic}/{queue_id} below min"
                );
            }
        }
        let mut outcomes = Vec::new();
        for offset in min..max {
            if budget == 0 {
                break;
            }
            budget -= 1;
            let outcome = match store.get(&topic, queue_id, offset, 4) {
                Ok(g) => {
                    check_get(&topic, queue_id, offset, (min, max), (log_min, log_max), &g);
                    ReadOutcome::Got(
                        g.status,
                        g.next_offset,
                        g.messages
                            .iter()
                            .map(|m| MessageDigest {
                                queue_offset: m.queue_offset(),
                                commit_log_offset: m.commit_log_offset(),
                                body_len: m.body().len(),
                                body_crc: codec::masked_crc32(m.body()),
                                tags: m.tags().map(String::from),
                            })
                            .collect(),
                    )
                }
                Err(e) => ReadOutcome::Failed(e.to_string()),
            };
            outcomes.push(outcome);
        }
        snapshot.insert((topic, queue_id), (min, max, outcomes));
    }
    snapshot
}

fn check_get(
    topic: &str,
    queue_id: u32,
    offset: u64,
    (min, max): (u64, u64),
    (log_min, log_max): (u64, u64),
    g: &GetResult,
) {
    let at = format!("get({topic}, {queue_id}, {offset})");
    assert_eq!((g.min_offset, g.max_offset), (min, max), "{at}: queue range");
    assert_eq!(
        g.status == GetStatus::Found,
        !g.messages.is_empty(),
        "{at}: {:?}",
        g.status
    );
    assert!(
        g.next_offset <= max,
        "{at}: next offset {} past max {max}",
        g.next_offset
    );
    if g.status == GetStatus::Found {
        assert!(
            g.next_offset > offset,
            "{at}: next offset {} does not advance",
            g.next_offset
        );
    }
    let mut expected_at_least = offset;
    for m in &g.messages {
        assert_eq!(
            (m.topic(), m.queue_id()),
            (topic, queue_id),
            "{at}: message of another queue"
        );
        assert!(
            (expected_at_least..g.next_offset).contains(&m.queue_offset()),
            "{at}: message at queue offset {} outside {expected_at_least}..{}",
            m.queue_offset(),
            g.next_offset
        );
        expected_at_least = m.queue_offset() + 1;
        let end = m.commit_log_offset() + u64::from(m.size());
        assert!(
            log_min <= m.commit_log_offset() && end <= log_max,
            "{at}: record {}..{end} outside the commit log {log_min}..{log_max}",
            m.commit_log_offset()
        );
        let _ = (m.keys(), m.store_timestamp(), m.msg_id(), m.record().len());
    }
}

/// `recover_store`: builds a store directory from the base store and `data` (a
/// [`RecoverInput`]), opens it with [`store_config`], and requires:
/// - `open` returns `Ok` or `Err`, never panics;
/// - when `Ok`, [`read_everything`] holds; if the input left the base store intact, every base
///   message reads back exactly;
/// - `close` returns `Ok` or `Err`;
/// - a second `open` also returns `Ok` or `Err`; and if the first open and close both succeeded,
///   it succeeds with the same [`Readable`] state: per queue the same max offset and the same
///   messages, none lost and none gained (what the first session after recovery shows is what
///   recovery made of the store; the next restart may not change it).
pub fn check_recover_store(data: &[u8]) {
    let input = RecoverInput::decode(data);
    let base = base_store();
    let dir = scratch_dir();
    write_files(dir.path(), &input.files(base));
    let config = || store_config(dir.path()).verify_crc_on_read(!input.verify_off);

    let first = match MessageStore::open(config()) {
        Ok(store) => {
            let snapshot = read_everything(&store);
            if input.keeps_base_intact() {
                check_base_messages(&store, base);
            }
            let closed = store.close();
            drop(store);
            Some((snapshot, closed.is_ok()))
        }
        Err(e) => {
            check_open_error(&e);
            None
        }
    };
    match MessageStore::open(config()) {
        Ok(store) => {
            let snapshot = read_everything(&store);
            if let Some((first, true)) = &first {
                let (before, after) = (readable(first), readable(&snapshot));
                assert!(
                    before == after,
                    "reopening after a successful open and close reads differently:\n{}",
                    readable_difference(&before, &after)
                );
            }
            let _ = store.close();
        }
        Err(e) => {
            check_open_error(&e);
            assert!(
                !matches!(first, Some((_, true))),
                "the store opened and closed cleanly, but reopening failed: {e}"
            );
        }
    }
}

/// An `open` error must be about the files, never a lock held by a store this process dropped.
fn check_open_error(e: &Error) {
    assert!(
        !matches!(e, Error::Locked { .. }),
        "the previous handle still holds the lock: {e}"
    );
}

fn check_base_messages(store: &MessageStore, base: &BaseStore) {
    let queues: Vec<_> = (0..2).map(|q| (BASE_TOPIC.to_string(), q)).collect();
    assert_eq!(store.queues(), queues, "the base store's queues");
    for q in 0..2u32 {
        let n = base.messages.iter().filter(|m| m.queue_id == q).count() as u64;
        assert_eq!(
            (store.min_offset(BASE_TOPIC, q), store.max_offset(BASE_TOPIC, q)),
            (0, n),
            "range of queue {q}"
        );
    }
    for m in &base.messages {
        let g = store
            .get(BASE_TOPIC, m.queue_id, m.queue_offset, 1)
            .unwrap_or_else(|e| panic!("base message {}/{}: {e}", m.queue_id, m.queue_offset));
        assert_eq!(
            g.status,
            GetStatus::Found,
            "base message {}/{}",
            m.queue_id,
            m.queue_offset
        );
        let got = &g.messages[0];
        assert_eq!(got.queue_offset(), m.queue_offset);
        assert!(
            got.body() == m.body.as_slice(),
            "body of base message {}/{}",
            m.queue_id,
            m.queue_offset
        );
        assert_eq!(got.tags(), m.tags.as_deref());
    }
}

// ---------------------------------------------------------------------------------------------
// store_ops
// ---------------------------------------------------------------------------------------------

/// Topics of `store_ops`: short, with `%` and `|`, and the longest allowed (127 bytes).
pub fn ops_topic(i: u8) -> String {
    match i % 4 {
        0 => "a".into(),
        1 => "orders".into(),
        2 => "%RETRY%group|x".into(),
        _ => "L".repeat(mqstore::config::MAX_TOPIC_LEN),
    }
}

/// Tags of `store_ops`; the empty tag is invalid.
pub const OPS_TAGS: [Option<&str>; 4] = [None, Some("TagA"), Some("TagB"), Some("")];
/// Queues per topic in `store_ops`; queue id 4 is out of range on purpose.
pub const OPS_QUEUES: u32 = 4;
/// Most operations read from one input.
pub const MAX_STORE_OPS: usize = 64;

/// One operation of `store_ops`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// `put` one message.
    Put {
        /// Topic, see [`ops_topic`].
        topic: u8,
        /// Queue id, `0..=OPS_QUEUES` (the last is invalid).
        queue: u8,
        /// Body length (up to ~4 KiB: some do not fit a segment).
        len: u16,
        /// Tag, see [`OPS_TAGS`].
        tags: u8,
    },
    /// `put_batch` of `n` messages (0..=5) of one queue, bodies of `len8 * 8 + k` bytes.
    Batch {
        /// Topic.
        topic: u8,
        /// Queue id.
        queue: u8,
        /// Messages.
        n: u8,
        /// Body length / 8.
        len8: u8,
        /// Tag of every message.
        tags: u8,
    },
    /// `get(topic, queue, offset, max)`.
    Get {
        /// Topic.
        topic: u8,
        /// Queue id.
        queue: u8,
        /// Offset.
        offset: u8,
        /// Max messages (0 asks for 1).
        max: u8,
    },
    /// `close`, drop, `open` again.
    Reopen,
    // Op code 7 is reserved for `Crash { seed }`: drop the store without `close` through a
    // power-loss-simulating segment backend (`MessageStore::open_with_backend`), reopen, and
    // check that every message whose put was acknowledged durable survives while later ones may
    // be cut at a prefix. It needs that backend to be public; until then code 7 is skipped.
}

/// A `store_ops` input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreOps {
    /// Use `FlushPolicy::sync()` (group commit) instead of the default asynchronous flush.
    pub sync: bool,
    /// The operations.
    pub ops: Vec<StoreOp>,
}

impl StoreOps {
    /// Reads an input; any bytes are one.
    pub fn decode(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let mut input = StoreOps {
            sync: r.u8() & 1 != 0,
            ops: Vec::new(),
        };
        while !r.is_empty() && input.ops.len() < MAX_STORE_OPS {
            let op = match r.u8() % 8 {
                0..=2 => StoreOp::Put {
                    topic: r.u8() % 4,
                    queue: r.u8() % (OPS_QUEUES as u8 + 1),
                    len: match r.u8() {
                        b @ 0..200 => u16::from(b),
                        _ => r.u16() % 4300,
                    },
                    tags: r.u8() % OPS_TAGS.len() as u8,
                },
                3 => StoreOp::Batch {
                    topic: r.u8() % 4,
                    queue: r.u8() % (OPS_QUEUES as u8 + 1),
                    n: r.u8() % 6,
                    len8: r.u8(),
                    tags: r.u8() % OPS_TAGS.len() as u8,
                },
                4 | 5 => StoreOp::Get {
                    topic: r.u8() % 4,
                    queue: r.u8() % (OPS_QUEUES as u8 + 1),
                    offset: r.u8(),
                    max: r.u8() % 9,
                },
                6 => StoreOp::Reopen,
                _ => continue, // reserved for Crash, see StoreOp
            };
            input.ops.push(op);
        }
        input
    }

    /// The bytes [`decode`](Self::decode) reads back as `self` (for values in range).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(u8::from(self.sync));
        for op in &self.ops {
            match *op {
                StoreOp::Put {
                    topic,
                    queue,
                    len,
                    tags,
                } => {
                    w.u8(0).u8(topic).u8(queue);
                    if len < 200 {
                        w.u8(len as u8);
                    } else {
                        w.u8(200).u16(len);
                    }
                    w.u8(tags);
                }
                StoreOp::Batch {
                    topic,
                    queue,
                    n,
                    len8,
                    tags,
                } => {
                    w.u8(3).u8(topic).u8(queue).u8(n).u8(len8).u8(tags);
                }
                StoreOp::Get {
                    topic,
                    queue,
                    offset,
                    max,
                } => {
                    w.u8(4).u8(topic).u8(queue).u8(offset).u8(max);
                }
                StoreOp::Reopen => {
                    w.u8(6);
                }
            }
        }
        w.0
    }
}

/// The record length the store writes for a message (its default hosts are IPv4).
fn record_len(topic: &str, body: &[u8], tags: Option<&str>) -> usize {
    let mut props = Vec::new();
    if let Some(tags) = tags {
        codec::encode_properties([(codec::PROPERTY_TAGS, tags)], &mut props).expect("valid tag");
    }
    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let spec = RecordSpec {
        topic,
        queue_id: 0,
        flag: 0,
        sys_flag: 0,
        born_timestamp: 0,
        born_host: v4,
        store_host: v4,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body,
        properties: &props,
    };
    EncodedRecord::encode(&spec).expect("encodable").len()
}

/// Queue key → (body, tag) of each message, by queue offset.
type Model = HashMap<(String, u32), Vec<(Vec<u8>, Option<&'static str>)>>;

fn ops_config(dir: &Path, sync: bool) -> StoreConfig {
    let config = store_config(dir).max_queues_per_topic(OPS_QUEUES);
    if sync {
        config.flush_policy(FlushPolicy::sync())
    } else {
        config
    }
}

/// Whether a message is refused by `put` (nothing appended), and a description of why.
fn refusal(topic: &str, queue: u32, body: &[u8], tags: Option<&str>) -> Option<&'static str> {
    if queue >= OPS_QUEUES {
        Some("queue id out of range")
    } else if tags == Some("") {
        Some("empty tag")
    } else if record_len(topic, body, tags) + codec::BLANK_LEN > SEGMENT_SIZE as usize {
        Some("record larger than a segment")
    } else {
        None
    }
}

/// `store_ops`: runs the [`StoreOps`] in `data` against a fresh store (4 KiB segments, 16-unit
/// consume-queue files) and an in-memory model of each queue, and requires that
/// - `put` and `put_batch` fail exactly for invalid messages (queue id out of range, empty tag,
///   record larger than a segment), and otherwise return the next dense queue offset;
/// - `get` returns the model's status, max offset, messages (bodies, tags, offsets) and next
///   offset;
/// - `close` succeeds, a reopen is clean, and every queue reads back whole afterwards.
pub fn check_store_ops(data: &[u8]) {
    let input = StoreOps::decode(data);
    let dir = scratch_dir();
    let mut store = MessageStore::open(ops_config(dir.path(), input.sync)).expect("open a fresh store");
    let mut model = Model::new();
    let mut counter = 0u64;
    for op in &input.ops {
        match *op {
            StoreOp::Put {
                topic,
                queue,
                len,
                tags,
            } => {
                counter += 1;
                let (topic, queue, tags) = (ops_topic(topic), u32::from(queue), OPS_TAGS[tags as usize % 4]);
                let body = pattern(counter, len as usize);
                let mut msg = Message::new(topic.clone(), queue, body.clone());
                if let Some(tags) = tags {
                    msg = msg.with_tags(tags);
                }
                let result = store.put(msg);
                match refusal(&topic, queue, &body, tags) {
                    Some(why) => assert!(result.is_err(), "put accepted a message with {why}: {result:?}"),
                    None => {
                        let r = result.unwrap_or_else(|e| panic!("put {topic}/{queue} ({len} bytes): {e}"));
                        let q = model.entry((topic, queue)).or_default();
                        assert_eq!(r.queue_offset, q.len() as u64, "queue offsets are dense");
                        q.push((body, tags));
                    }
                }
            }
            StoreOp::Batch {
                topic,
                queue,
                n,
                len8,
                tags,
            } => {
                let (topic, queue, tags) = (ops_topic(topic), u32::from(queue), OPS_TAGS[tags as usize % 4]);
                let bodies: Vec<Vec<u8>> = (0..u64::from(n))
                    .map(|k| {
                        counter += 1;
                        pattern(counter, usize::from(len8) * 8 + k as usize)
                    })
                    .collect();
                let msgs = bodies
                    .iter()
                    .map(|b| {
                        let m = Message::new(topic.clone(), queue, b.clone());
                        match tags {
                            Some(t) => m.with_tags(t),
                            None => m,
                        }
                    })
                    .collect();
                let result = store.put_batch(msgs);
                let invalid = bodies.iter().find_map(|b| refusal(&topic, queue, b, tags));
                let total: usize = bodies.iter().map(|b| record_len(&topic, b, tags)).sum();
                let why = invalid.or((!bodies.is_empty() && total + codec::BLANK_LEN > SEGMENT_SIZE as usize)
                    .then_some("batch larger than a segment"));
                match why {
                    Some(why) => assert!(result.is_err(), "put_batch accepted a batch with {why}"),
                    None => {
                        let rs = result.unwrap_or_else(|e| panic!("put_batch {topic}/{queue} x{n}: {e}"));
                        assert_eq!(rs.len(), bodies.len());
                        let q = model.entry((topic, queue)).or_default();
                        for (k, r) in rs.iter().enumerate() {
                            assert_eq!(r.queue_offset, (q.len() + k) as u64, "batch queue offsets");
                        }
                        for w in rs.windows(2) {
                            assert_eq!(
                                w[0].commit_log_offset + u64::from(w[0].wrote_bytes),
                                w[1].commit_log_offset,
                                "a batch is contiguous"
                            );
                        }
                        q.extend(bodies.into_iter().map(|b| (b, tags)));
                    }
                }
            }
            StoreOp::Get {
                topic,
                queue,
                offset,
                max,
            } => check_model_get(
                &store,
                &model,
                &ops_topic(topic),
                u32::from(queue),
                u64::from(offset),
                u32::from(max),
            ),
            StoreOp::Reopen => {
                store.close().expect("close");
                drop(store);
                store = MessageStore::open(ops_config(dir.path(), input.sync)).expect("reopen");
                assert!(store.recovery_report().clean_shutdown, "a closed store reopens clean");
                check_model_ranges(&store, &model);
            }
        }
    }
    check_model_ranges(&store, &model);
    for ((topic, queue), msgs) in &model {
        for offset in (0..msgs.len() as u64).step_by(8) {
            check_model_get(&store, &model, topic, *queue, offset, 8);
        }
    }
    store.close().expect("close");
}

fn check_model_ranges(store: &MessageStore, model: &Model) {
    for ((topic, queue), msgs) in model {
        assert_eq!(
            (store.min_offset(topic, *queue), store.max_offset(topic, *queue)),
            (0, msgs.len() as u64),
            "range of {topic}/{queue}"
        );
    }
    for (topic, queue) in store.queues() {
        let n = model.get(&(topic.clone(), queue)).map_or(0, Vec::len) as u64;
        assert_eq!(store.max_offset(&topic, queue), n, "listed queue {topic}/{queue}");
    }
}

fn check_model_get(store: &MessageStore, model: &Model, topic: &str, queue: u32, offset: u64, max: u32) {
    let at = format!("get({topic}, {queue}, {offset}, {max})");
    let result = store.get(topic, queue, offset, max);
    if queue >= OPS_QUEUES {
        assert!(result.is_err(), "{at}: accepted an out-of-range queue id");
        return;
    }
    let g = result.unwrap_or_else(|e| panic!("{at}: {e}"));
    let q = model.get(&(topic.to_string(), queue)).map_or(&[][..], Vec::as_slice);
    let n = q.len() as u64;
    assert_eq!(g.max_offset, n, "{at}: max offset");
    let expected = if n == 0 {
        GetStatus::NoMessageInQueue
    } else if offset == n {
        GetStatus::OffsetOverflowOne
    } else if offset > n {
        GetStatus::OffsetOverflowBadly
    } else {
        GetStatus::Found
    };
    assert_eq!(g.status, expected, "{at}: status");
    if expected != GetStatus::Found {
        return;
    }
    let want = (max.max(1) as u64).min(n - offset);
    assert_eq!(g.messages.len() as u64, want, "{at}: message count");
    assert_eq!(g.next_offset, offset + want, "{at}: next offset");
    for (k, m) in g.messages.iter().enumerate() {
        let o = offset + k as u64;
        let (body, tags) = &q[o as usize];
        assert_eq!(
            (m.topic(), m.queue_id(), m.queue_offset()),
            (topic, queue, o),
            "{at}: message {k}"
        );
        assert!(m.body() == body.as_slice(), "{at}: body of offset {o}");
        assert_eq!(m.tags(), *tags, "{at}: tags of offset {o}");
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------

/// The generated seeds, as (path under `fuzz/`, bytes): `corpus/<target>/<name>` for the
/// corpus, and `known-crashes/<target>/<name>` for the minimized inputs of open library bugs
/// (see [`known_crashes`]). `tests/fuzz_corpus.rs` checks that the files hold exactly these
/// bytes, and writes them when run with `MQSTORE_WRITE_FUZZ_SEEDS=1`. `repo` is the main crate's
/// directory (for the RocketMQ fixture).
pub fn generated_seeds(repo: &Path) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, bytes) in record_seeds(repo) {
        seeds.push((format!("corpus/decode_record/{name}"), bytes));
    }
    for (name, bytes) in cq_unit_seeds(repo) {
        seeds.push((format!("corpus/decode_cq_unit/{name}"), bytes));
    }
    for (name, bytes) in frame_seeds() {
        seeds.push((format!("corpus/decode_frame/{name}"), bytes));
    }
    for (name, input) in recover_seeds(base_store()).into_iter().chain(found_seeds(base_store())) {
        seeds.push((format!("corpus/recover_store/{name}"), input.encode()));
    }
    for (name, input) in store_ops_seeds() {
        seeds.push((format!("corpus/store_ops/{name}"), input.encode()));
    }
    for (target, name, bytes, _, _) in known_crashes() {
        seeds.push((format!("known-crashes/{target}/{name}"), bytes));
    }
    seeds
}

/// Minimized inputs that fail a target because of a library bug not fixed yet: (target, name,
/// input, the bug, a piece of the panic message it causes). They live in
/// `fuzz/known-crashes/<target>/`, outside the corpus, so that `cargo test` stays green while
/// `tests/fuzz_corpus.rs` checks that each still fails; once the library is fixed that test says
/// so, and the entry moves to the target's seeds ([`recover_seeds`] for recover_store).
pub fn known_crashes() -> Vec<(&'static str, &'static str, Vec<u8>, &'static str, &'static str)> {
    // Open bugs, minimized; fixed ones move to the seeds (`found_seeds`).
    vec![]
}

/// Index of `path` in `files`, as [`FileOp`]s pick files.
fn nth_file(files: &BTreeMap<String, Vec<u8>>, path: &str) -> u8 {
    files.keys().position(|k| k == path).expect("a base store file") as u8
}

/// The input of `flags` and `steps`, where a step may name its file by path: that path is
/// resolved to the index the operation picks at its turn (after the flags and earlier steps).
fn scripted(base: &BaseStore, flags: &RecoverInput, steps: Vec<(Option<&str>, FileOp)>) -> RecoverInput {
    let mut files = flags.files(base);
    let mut ops = Vec::new();
    for (path, mut op) in steps {
        if let Some(path) = path {
            let index = nth_file(&files, path);
            match &mut op {
                FileOp::Patch { file, .. }
                | FileOp::SetInt { file, .. }
                | FileOp::Truncate { file, .. }
                | FileOp::Delete { file }
                | FileOp::Zero { file, .. }
                | FileOp::Rename { file, .. } => *file = index,
                FileOp::Copy { .. } | FileOp::Add { .. } => panic!("Copy and Add name their files by index"),
            }
        }
        op.apply(&mut files);
        ops.push(op);
    }
    RecoverInput { ops, ..flags.clone() }
}

fn sealed(spec: &RecordSpec<'_>, queue_offset: u64, physical_offset: u64) -> Vec<u8> {
    let mut r = EncodedRecord::encode(spec).expect("seed record encodes");
    r.seal(queue_offset, physical_offset, BASE_STORE_TIMESTAMP);
    r.into_vec()
}

fn record_seeds(repo: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), 45678);
    let store = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 10911);
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)), 10911);
    let minimal = RecordSpec {
        topic: "t",
        queue_id: 0,
        flag: 0,
        sys_flag: 0,
        born_timestamp: 0,
        born_host: v4,
        store_host: store,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: b"",
        properties: b"",
    };
    let mut props = Vec::new();
    codec::encode_properties(
        [
            (codec::PROPERTY_TAGS, "TagA"),
            (codec::PROPERTY_KEYS, "order-42 order-43"),
            (codec::PROPERTY_UNIQ_KEY, "C0A8000100002A9F0000000000000001"),
            ("region", "eu"),
        ],
        &mut props,
    )
    .expect("valid properties");
    let full = RecordSpec {
        topic: "orders",
        queue_id: 3,
        flag: 7,
        born_timestamp: BASE_STORE_TIMESTAMP as i64 - 5,
        born_host: v6,
        store_host: v6,
        reconsume_times: 2,
        body: b"order #42",
        properties: &props,
        ..minimal
    };
    let long_topic = "T".repeat(200);
    let body64 = pattern(64, 64);
    let v2 = RecordSpec {
        topic: &long_topic,
        body: &body64,
        ..minimal
    };
    let half = RecordSpec {
        topic: "tx",
        sys_flag: codec::TRANSACTION_PREPARED_TYPE,
        body: b"half",
        ..minimal
    };
    let commit = RecordSpec {
        topic: "tx",
        sys_flag: codec::TRANSACTION_COMMIT_TYPE,
        prepared_transaction_offset: 4096,
        body: b"half",
        ..minimal
    };
    let full_bytes = sealed(&full, 42, 8192);
    let fixture = fs::read(repo.join("tests/fixtures/rocketmq-1.0.0-clean/commitlog/00000000000000000000"))
        .expect("read the RocketMQ fixture");
    let (first_len, _) = codec::peek_header(&fixture).expect("fixture header");
    let mut with_tail = full_bytes.clone();
    with_tail.extend_from_slice(&[0xAB; 16]);
    vec![
        ("v1-minimal", sealed(&minimal, 0, 0)),
        ("v1-properties-ipv6", full_bytes.clone()),
        ("v2-topic-200-bytes", sealed(&v2, 1, 4096)),
        ("transaction-prepared", sealed(&half, 0, 300)),
        ("transaction-commit", sealed(&commit, 5, 400)),
        ("blank-filler", codec::encode_blank(4096).to_vec()),
        ("rocketmq-1.0.0-first-record", fixture[..first_len as usize].to_vec()),
        ("record-then-bytes", with_tail),
        ("record-truncated", full_bytes[..60].to_vec()),
    ]
}

fn cq_unit_seeds(repo: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let unit = CqUnit {
        commit_log_offset: 4096,
        size: 187,
        tags_code: codec::tags_code("TagA"),
    };
    let mut negative = unit.encode();
    negative[..8].copy_from_slice(&(-1i64).to_be_bytes());
    let mut two_and_tail = [unit.encode(), CqUnit::BLANK.encode()].concat();
    two_and_tail.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
    let fixture = fs::read(repo.join("tests/fixtures/rocketmq-1.0.0-clean/consumequeue/orders/0/00000000000000000000"))
        .expect("read the RocketMQ fixture");
    vec![
        ("unit", unit.encode().to_vec()),
        ("blank-unit", CqUnit::BLANK.encode().to_vec()),
        ("zero-unit", vec![0; 20]),
        ("negative-offset", negative.to_vec()),
        ("two-units-and-tail", two_and_tail),
        ("rocketmq-1.0.0-first-units", fixture[..60].to_vec()),
    ]
}

/// Index of `path` among the files an input's first [`FileOp`] picks from (the base store's,
/// after the input's flags).
fn file_index(base: &BaseStore, input: &RecoverInput, path: &str) -> u8 {
    let flags_only = RecoverInput {
        ops: Vec::new(),
        ..input.clone()
    };
    flags_only
        .files(base)
        .keys()
        .position(|k| k == path)
        .unwrap_or_else(|| panic!("no {path} in the base store")) as u8
}

/// Inputs the fuzzer once failed on, fixed since: regression seeds.
fn found_seeds(base: &BaseStore) -> Vec<(&'static str, RecoverInput)> {
    let clean = RecoverInput::default();
    let crash = RecoverInput {
        abort: true,
        ..Default::default()
    };
    let cq = |q: u32, file: u64| format!("consumequeue/fuzz/{q}/{:020}", file * CQ_UNITS * UNIT_SIZE);
    let cq0 = cq(0, 0);
    let crash_no_meta = RecoverInput {
        drop_meta: true,
        ..crash.clone()
    };
    let cq0_index = file_index(base, &crash_no_meta, &cq0);
    let other_queue = DIRS.iter().position(|d| *d == "consumequeue/other/0").expect("in DIRS") as u8;
    vec![
        (
            // The last segment lost and queue fuzz/0's units 0..2 damaged: crash recovery left
            // the units (below its scan start) and only the next clean open repaired them. A log
            // ending before the checkpoint's durable point now rebuilds every queue.
            "found-missing-last-segment-damaged-units-repaired-next-session",
            scripted(
                base,
                &crash,
                vec![
                    (Some("commitlog/00000000000000008192"), FileOp::Delete { file: 0 }),
                    (
                        Some(cq0.as_str()),
                        FileOp::Patch {
                            file: 0,
                            offset: 0,
                            bytes: base.files[CHECKPOINT_FILE][..60].to_vec(),
                        },
                    ),
                ],
            ),
        ),
        (
            // A unit below the rebuilt range whose SIZE made it end past the log set the queue's
            // idempotency mark (max physical offset), so re-dispatched units were skipped until
            // the next restart. Idempotency is now by queue offset alone.
            "found-cq-unit-size-past-log-before-scan-start-crash",
            scripted(
                base,
                &crash,
                vec![(
                    Some(format!("consumequeue/fuzz/1/{:020}", 0).as_str()),
                    FileOp::SetInt {
                        file: 0,
                        offset: 13 * UNIT_SIZE as u16 + 8,
                        width: 4,
                        value: 0x0085_0000,
                    },
                )],
            ),
        ),
        (
            // After retention (log min 4096), the blank unit left for a damaged record made the
            // minimum-offset correction's binary search skip intact messages at the next open.
            // Blank units now take the verdict of the next real unit.
            "found-blank-unit-after-retention-hid-messages-after-restart",
            scripted(
                base,
                &crash,
                vec![
                    (Some("commitlog/00000000000000000000"), FileOp::Delete { file: 0 }),
                    (Some("commitlog/00000000000000008192"), FileOp::Delete { file: 0 }),
                    (
                        Some("commitlog/00000000000000004096"),
                        FileOp::Patch {
                            file: 0,
                            offset: 2075,
                            bytes: vec![0, 0, 240, 1, 255, 255, 99, 104, 1, 255, 255, 99, 104, 101, 0],
                        },
                    ),
                ],
            ),
        ),
        (
            // recovery::start_point indexed segments[0] of an empty log (RocketMQ checkpoint
            // timestamps only, abort marker present): a panic.
            "found-empty-log-rocketmq-checkpoint-crash",
            RecoverInput {
                from_empty: true,
                abort: true,
                checkpoint: Some(vec![0; 40]),
                ..Default::default()
            },
        ),
        (
            // No checkpoint and a damaged record: the log is cut there as a torn tail and queue 1
            // loses its second file; its damaged first unit was repaired only a session later.
            "found-damaged-cq-unit-repaired-only-next-session",
            scripted(
                base,
                &clean,
                vec![
                    (Some(CHECKPOINT_FILE), FileOp::Delete { file: 0 }),
                    (
                        Some("commitlog/00000000000000000000"),
                        FileOp::Patch {
                            file: 0,
                            offset: 2560,
                            bytes: vec![0x59],
                        },
                    ),
                    (
                        Some(cq(1, 0).as_str()),
                        FileOp::Patch {
                            file: 0,
                            offset: 0,
                            bytes: vec![0xFF],
                        },
                    ),
                ],
            ),
        ),
        (
            // Units 2..19 of queue 0 lost: 15..19 re-dispatched, 2..14 filled with blank units;
            // at the next open correct_min_offset's binary search skipped messages 0 and 1.
            "found-blank-gap-hid-earlier-messages-after-restart",
            scripted(
                base,
                &clean,
                vec![
                    (
                        Some(cq(0, 0).as_str()),
                        FileOp::Zero {
                            file: 0,
                            offset: 2 * UNIT_SIZE as u16,
                            len: 14 * UNIT_SIZE as u16,
                        },
                    ),
                    (Some(cq(0, 1).as_str()), FileOp::Delete { file: 0 }),
                ],
            ),
        ),
        (
            // Crash recovery: unit 14 of queue 0 (just below the rebuilt range) pointed past the
            // log, truncate_units took its end as max_physical, and put skipped the re-dispatched
            // units 15..19: five intact messages hidden until the next restart.
            "found-cq-unit-past-log-before-scan-start-crash",
            scripted(
                base,
                &RecoverInput {
                    abort: true,
                    ..Default::default()
                },
                vec![(
                    Some(cq(0, 0).as_str()),
                    FileOp::SetInt {
                        file: 0,
                        offset: 14 * UNIT_SIZE as u16,
                        width: 8,
                        value: 1 << 40,
                    },
                )],
            ),
        ),
        (
            // Clean close, empty checkpoint, an empty last segment: the log cut removed queue
            // fuzz/0's second file, leaving last its first, whose unit 0 is damaged. Holes are
            // looked for in a queue's last file only, and were only at load: the next open found
            // this one and rebuilt the unit. Truncation now looks again.
            "found-clean-no-checkpoint-damaged-first-unit-second-session-differs",
            scripted(
                base,
                &RecoverInput {
                    checkpoint: Some(Vec::new()),
                    ..Default::default()
                },
                vec![
                    (
                        Some("commitlog/00000000000000000000"),
                        FileOp::Patch {
                            file: 0,
                            offset: 263,
                            bytes: vec![12],
                        },
                    ),
                    (
                        Some("commitlog/00000000000000008192"),
                        FileOp::Truncate { file: 0, len: 0 },
                    ),
                    (
                        Some(cq0.as_str()),
                        FileOp::Patch {
                            file: 0,
                            offset: 0,
                            bytes: vec![188, 17, 1, 7, 1, 12, 2, 255, 0, 0, 0, 0],
                        },
                    ),
                ],
            ),
        ),
        (
            // The same with no meta file, no checkpoint and the last segment deleted: queue
            // fuzz/1's units 5 and 6 damaged in its first file, which the log cut left last.
            // The fuzzer saw it fail only sometimes; 40 of 40 replays failed before the fix.
            "found-flaky-damaged-first-record-second-session-differs",
            scripted(
                base,
                &clean,
                vec![
                    (Some("mqstore.meta"), FileOp::Delete { file: 0 }),
                    (Some("commitlog/00000000000000008192"), FileOp::Delete { file: 0 }),
                    (Some(CHECKPOINT_FILE), FileOp::Delete { file: 0 }),
                    (
                        Some("commitlog/00000000000000000000"),
                        FileOp::Patch {
                            file: 0,
                            offset: 260,
                            bytes: vec![0x23],
                        },
                    ),
                    (
                        Some(cq(1, 0).as_str()),
                        FileOp::Patch {
                            file: 0,
                            offset: 99,
                            bytes: [
                                &[0x23; 9][..],
                                &[60, 245, 175, 0, 251, 0, 42, 3, 2, 1, 1, 87, 0, 1, 0, 0, 0, 0, 0],
                                &[255, 255, 255, 255, 255, 255, 111],
                            ]
                            .concat(),
                        },
                    ),
                ],
            ),
        ),
        (
            // The first segment gone and units of queue fuzz/1 damaged: recovery set the queue's
            // minimum while a damaged unit made its record look deleted, then rewrote the units
            // from the log; only the next open found the minimum one lower (14, not 15). A repair
            // now finds the queue's minimum again. (Found by CI's fuzz smoke, 2026-12-07.)
            "found-repaired-unit-minimum-differs-next-session",
            RecoverInput::decode(&[
                0, 1, 0, 243, 1, 0, 12, 255, 2, 0, 1, 0, 42, 159, 3, 1, 1, 1, 243, 197, 243, 243, 3, 255, 243, 243, 0,
                243, 1, 0, 0, 107, 3, 94, 7, 0, 0, 1, 0, 0, 250, 255, 255, 255, 0, 0, 0,
            ]),
        ),
        (
            // The first open left queue fuzz/1 unreadable from offset 0 and only a second open
            // rebuilt it (found by CI's fuzz smoke, kept as a known crash since). Recovery now
            // compares each unit re-dispatch passes with the log's record, rewrites those that
            // differ and rebuilds a queue that missed units, in the same open.
            "found-cq-reopen-reads-differently",
            RecoverInput::decode(&[
                0, 1, 0, 243, 1, 16, 12, 2, 255, 0, 0, 0, 1, 3, 3, 1, 1, 1, 243, 243, 243, 243, 243, 243, 243, 243,
                243, 243, 243, 0, 60, 3, 94, 255, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 190,
            ]),
        ),
        (
            // Queue fuzz/0's record at 746 claims queue offset 65538 (a flipped byte of a store
            // RocketMQ wrote, which no CRC covers) and the last segment is gone: the first open
            // rebuilt the queue, gap-filled 2..65537 and kept those blanks where the later records
            // claim 3..14 again; the second open rewrote 8..14 from its scan. The rebuild now
            // rewrites such units as the repair of any other open would: the later record wins.
            // (Found by CI's fuzz smoke, 2026-12-07; a known crash until the fix.)
            "found-rebuilt-queue-repaired-next-session",
            RecoverInput::decode(&[
                2, 3, 100, 0, 1, 0, 243, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 1,
                0, 12, 2, 4, 1, 0, 0, 1, 3, 3, 1, 1, 1, 243, 243, 243, 3, 255, 243, 243, 243, 243, 0, 0, 1, 3, 243, 3,
                1, 1, 243, 243, 243, 3, 255, 243, 243,
            ]),
        ),
        (
            // A store RocketMQ wrote, its checkpoint and first segment gone, and queue fuzz/1's
            // units 14..30 garbage past its last record (unit 30 pointing below the log). The
            // first read of unit 14 repaired 14..29 to blank units but kept unit 30 as a record
            // retention removed; the next open's minimum search took it for one and moved the
            // minimum to 31 past messages 7..13. A repair now keeps a unit below the log only
            // before every sound unit. (Found by a 10-minute run of recover_store, 2026-12-07.)
            "found-healed-queue-keeps-a-unit-below-the-log",
            RecoverInput::decode(&[
                0, 3, 8, 3, 3, 3, 0, 59, 0, 1, 4, 1, 35, 0, 4, 0, 99, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 60, 245,
                175, 0, 251, 0, 42, 3, 2, 1, 1, 87, 0, 1, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 111,
            ]),
        ),
        (
            // The first segment gone and queue fuzz/1's unit 7 damaged to point below the log:
            // the minimum was set past it (8), then the first read of a bad unit above repaired
            // units 0..13 from the log, unit 7 among them, and the next open started the queue
            // at 7. A repair now leaves the units below the minimum readers were given alone.
            // (Found by a 10-minute run of recover_store, 2026-12-07.)
            "found-heal-below-the-minimum",
            RecoverInput::decode(&[
                2, 3, 25, 100, 10, 189, 255, 12, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 34, 25, 25, 25, 25, 25,
                25, 25, 1, 0, 12, 2, 4, 1, 0, 0, 1, 3, 3, 1, 1, 1, 243, 243, 1, 47, 3, 0, 3, 3, 1, 1, 243, 243, 3, 3,
                7, 243, 243, 0,
            ]),
        ),
        (
            // Queue fuzz/0's unit 13 garbled into a blank unit and unit 14 into garbage: a read
            // from 13 passed over the blank, met 14, and the repair rewrote 13 and 14 from the
            // log; the read went on from 14, so message 13 appeared only in the next session.
            // A read now starts again from the first unit a repair rewrote. (Found by a
            // 10-minute run of recover_store, 2026-12-07.)
            "found-heal-unblanks-a-unit-the-read-passed",
            RecoverInput::decode(&[
                0, 35, 253, 253, 248, 253, 253, 253, 253, 253, 253, 253, 253, 253, 253, 253, 253, 253, 253, 253, 253,
                253, 28, 0, 0, 0, 0, 0, 0, 0, 253, 253, 0, 35, 253, 253, 248, 253, 253, 253, 253, 253, 253, 253, 253,
                253, 253, 253, 253, 253, 75, 75, 75, 1, 9, 0, 40, 0, 2,
            ]),
        ),
        (
            // Queue fuzz/0's last file replaced by garbage units of another queue's file, with a
            // hole: the minimum found at load, over units the rebuild then dropped, was 36 (the
            // new maximum), so the first session read nothing of the queue and the second 8..19.
            // Recovery now finds each queue's minimum again from the units it leaves. (Found by
            // a 10-minute run of recover_store, 2026-12-07.)
            "found-minimum-from-units-recovery-dropped",
            RecoverInput::decode(&[0, 111, 109, 109, 105, 47, 5, 2, 2, 165, 165, 165, 165, 5, 5, 77, 165]),
        ),
        (
            // Queue fuzz/1's units past its last record garbled (pointing into the log, and
            // below it): the first session's reads repaired them to blank units, which the next
            // open's truncation dropped: max offset 31, then 14. Recovery now drops a queue's
            // units past the last record it dispatched unless they point at damaged bytes.
            // (Found by a 10-minute run of recover_store, 2026-12-07.)
            "found-garbage-past-the-last-record",
            RecoverInput::decode(&[
                0, 3, 8, 3, 3, 3, 0, 3, 0, 1, 4, 1, 35, 0, 4, 0, 1, 4, 1, 35, 0, 4, 0, 99, 35, 35, 33, 35, 35, 35, 35,
                35, 0, 42, 0, 0, 0, 3, 2, 1, 1, 0, 202, 154, 59, 87, 0, 35, 35, 33, 35, 35, 35, 35, 35, 0, 42, 0, 0, 0,
            ]),
        ),
        (
            // Units past queue fuzz/1's last record garbled to point into the middle of records:
            // recovery kept them as if they named damaged records, the first session's reads
            // repaired them to blank units, and the next open dropped those: max offset 25, then
            // 20. Only a record start whose check fails now counts as a damaged record. (Found
            // by a 10-minute run of recover_store, 2026-12-07.)
            "found-garbage-into-records-past-the-last-record",
            RecoverInput::decode(&[
                1, 250, 251, 25, 25, 25, 25, 25, 25, 25, 1, 0, 12, 2, 4, 1, 255, 255, 255, 255, 0, 0, 1, 3, 3, 1, 1, 1,
                243, 243, 0, 1, 3, 3, 1, 1, 1, 243, 243, 243, 3, 255, 243, 243, 243, 243, 243, 3, 3, 7, 243, 243, 1, 0,
                0, 0, 0, 0, 0, 1, 2, 188, 16, 50,
            ]),
        ),
        (
            // After a crash with no checkpoint, queue fuzz/1 held garbage units past its last record
            // (offset 19), one of them pointing at a damaged record of the queue earlier in the log.
            // Recovery kept the tail for that unit; a read's repair, anchored on unit 19, blanked it, and
            // the next open dropped the blanks: max offset 27, then 20. A damaged record before the
            // queue's last record cannot hold a later queue offset. (Found by a 10-minute run of
            // recover_store, 2026-12-07.)
            "found-damaged-record-before-the-last-one-past-the-tail",
            RecoverInput::decode(&[
                3, 0, 243, 1, 0, 12, 2, 255, 0, 0, 169, 169, 169, 169, 169, 169, 169, 169, 169, 169, 3, 3, 1, 82, 82,
                82, 82, 82, 82, 82, 82, 82, 82, 82, 1, 1, 243, 243, 243, 0, 0, 1, 118, 35, 1, 255, 255, 171, 3, 1, 1,
                1, 5, 5, 1, 29, 5, 109, 6, 35,
            ]),
        ),
        (
            // A queue with no record in the log (fuzz/2, made from garbage) whose unit 1 starts
            // below the log's first segment and, by its size, ends far past the log's end. A read
            // judged it a record retention removed and kept it, blanking the garbage after it;
            // the next open's cut of units past the log end then dropped it and the blanks: max
            // offset 4, then 1. A unit ending past the log is garbage first. (Found by a
            // 10-minute run of recover_store, 2026-12-07.)
            "found-unit-below-the-log-ending-past-it",
            RecoverInput::decode(&[
                2, 3, 25, 4, 10, 189, 255, 12, 25, 1, 25, 25, 25, 1, 255, 25, 25, 25, 25, 38, 25, 25, 25, 1, 25, 25,
                25, 255, 46, 0, 4, 2, 4, 1, 0, 0, 33, 3, 3, 1, 1, 1, 3, 211, 1, 47, 3, 68, 0, 3, 3, 1, 252, 243, 243,
                3, 3, 7, 243, 243, 0,
            ]),
        ),
        (
            // After a crash, queue fuzz/0's first file moved to other/0 (no record in the log)
            // at unit 1232, its bytes 285..320 copied 16 bytes back: unit 13's size now puts its
            // record's end past the log. Recovery checked only the last unit (15, sound) against
            // the log end; the rebuild from the checkpoint's segment dropped units 14 and 15 and
            // left 13 last, which the next open dropped: max offset 1246, then 1245. The rebuild's
            // truncation now applies the log-end test too.
            "found-cq-file-of-another-queue-max-offset-differs-next-session",
            scripted(
                base,
                &crash_no_meta,
                vec![
                    (
                        None,
                        FileOp::Copy {
                            from: cq0_index,
                            from_offset: 14 * UNIT_SIZE as u16 + 5,
                            to: cq0_index,
                            to_offset: 13 * UNIT_SIZE as u16 + 9,
                            len: 35,
                        },
                    ),
                    (
                        Some(cq0.as_str()),
                        FileOp::Rename {
                            file: 0,
                            dir: other_queue,
                            index: 77,
                        },
                    ),
                ],
            ),
        ),
    ]
}

fn recover_seeds(base: &BaseStore) -> Vec<(&'static str, RecoverInput)> {
    let segments: Vec<&String> = base.files.keys().filter(|k| k.starts_with("commitlog/")).collect();
    let clean = RecoverInput::default();
    let crash = RecoverInput {
        abort: true,
        ..Default::default()
    };
    let seg = |input: &RecoverInput, i: usize| file_index(base, input, segments[i.min(segments.len() - 1)]);
    let cq = |input: &RecoverInput, q: u32| file_index(base, input, &format!("consumequeue/fuzz/{q}/{:020}", 0));
    let with = |base: &RecoverInput, ops: Vec<FileOp>| RecoverInput { ops, ..base.clone() };
    let registered = RecoverInput {
        registry: true,
        ..Default::default()
    };
    let cq_file = |q: u32, file: u64| format!("consumequeue/fuzz/{q}/{:020}", file * CQ_UNITS * UNIT_SIZE);
    let (q0f0, q0f1, q1f0, q1f1) = (cq_file(0, 0), cq_file(0, 1), cq_file(1, 0), cq_file(1, 1));
    vec![
        ("base-clean", RecoverInput::default()),
        ("base-crash", crash.clone()),
        (
            "base-without-meta-crash",
            RecoverInput {
                drop_meta: true,
                ..crash.clone()
            },
        ),
        (
            "checkpoint-garbage",
            RecoverInput {
                checkpoint: Some(vec![0xA5; 64]),
                ..crash.clone()
            },
        ),
        (
            "meta-garbage",
            RecoverInput {
                meta: Some(b"version = one\n".to_vec()),
                ..Default::default()
            },
        ),
        (
            "torn-tail",
            with(
                &crash,
                vec![FileOp::Zero {
                    file: seg(&crash, usize::MAX),
                    offset: 700,
                    len: 4096,
                }],
            ),
        ),
        (
            "zeroed-middle-segment",
            with(
                &crash,
                vec![FileOp::Zero {
                    file: seg(&crash, 1),
                    offset: 0,
                    len: 4096,
                }],
            ),
        ),
        (
            "damaged-byte-middle-segment",
            with(
                &crash,
                vec![FileOp::Patch {
                    file: seg(&crash, 1),
                    offset: 300,
                    bytes: vec![0x5A],
                }],
            ),
        ),
        (
            "damaged-byte-clean",
            with(
                &clean,
                vec![FileOp::Patch {
                    file: seg(&clean, usize::MAX),
                    offset: 40,
                    bytes: vec![0x5A, 0x5A],
                }],
            ),
        ),
        (
            // Without a checkpoint there is no durable bound: the damage reads as a torn tail.
            "damaged-byte-middle-segment-no-checkpoint",
            RecoverInput {
                checkpoint: Some(Vec::new()),
                ops: vec![FileOp::Patch {
                    file: seg(&crash, 1),
                    offset: 300,
                    bytes: vec![0x5A],
                }],
                ..crash.clone()
            },
        ),
        (
            "missing-first-segment",
            with(&crash, vec![FileOp::Delete { file: seg(&crash, 0) }]),
        ),
        (
            "missing-middle-segment",
            with(&crash, vec![FileOp::Delete { file: seg(&crash, 1) }]),
        ),
        (
            "short-segment-file",
            with(
                &crash,
                vec![FileOp::Truncate {
                    file: seg(&crash, usize::MAX),
                    len: 100,
                }],
            ),
        ),
        (
            "cq-unit-past-log",
            with(
                &clean,
                vec![FileOp::SetInt {
                    file: cq(&clean, 0),
                    offset: 60,
                    width: 8,
                    value: 1 << 40,
                }],
            ),
        ),
        (
            "cq-file-missing",
            with(&crash, vec![FileOp::Delete { file: cq(&crash, 1) }]),
        ),
        (
            "garbage-segment-after-end",
            with(
                &crash,
                vec![FileOp::Add {
                    dir: 1,
                    index: segments.len() as u8,
                    len: 0,
                    fill: codec::MAGIC_V1.to_be_bytes().to_vec(),
                }],
            ),
        ),
        (
            "stray-file",
            with(
                &RecoverInput::default(),
                vec![FileOp::Add {
                    dir: 1,
                    index: 252,
                    len: 10,
                    fill: vec![],
                }],
            ),
        ),
        (
            "record-copied-forward",
            with(
                &crash,
                vec![FileOp::Copy {
                    from: seg(&crash, 0),
                    from_offset: 0,
                    to: seg(&crash, usize::MAX),
                    to_offset: 1000,
                    len: 400,
                }],
            ),
        ),
        (
            "empty-dir-garbage-segment",
            RecoverInput {
                from_empty: true,
                abort: true,
                ops: vec![FileOp::Add {
                    dir: 1,
                    index: 0,
                    len: 0,
                    fill: vec![0, 0, 0, 120, 0xDA, 0xA3, 0x20, 0xA7],
                }],
                ..Default::default()
            },
        ),
        // Derived data (issue 20): each loss or damage of consume-queue files alone, with the
        // registry that says which queues there were; every message must read back.
        (
            "derived-every-queue-file-deleted",
            scripted(
                base,
                &registered,
                [&q0f0, &q0f1, &q1f0, &q1f1]
                    .into_iter()
                    .map(|path| (Some(path.as_str()), FileOp::Delete { file: 0 }))
                    .collect(),
            ),
        ),
        (
            "derived-one-queue-deleted",
            scripted(
                base,
                &registered,
                vec![
                    (Some(q1f0.as_str()), FileOp::Delete { file: 0 }),
                    (Some(q1f1.as_str()), FileOp::Delete { file: 0 }),
                ],
            ),
        ),
        (
            "derived-first-queue-file-deleted",
            scripted(
                base,
                &registered,
                vec![(Some(q0f0.as_str()), FileOp::Delete { file: 0 })],
            ),
        ),
        (
            "derived-foreign-unit-in-a-non-last-file",
            scripted(
                base,
                &registered,
                vec![(
                    None,
                    FileOp::Copy {
                        from: file_index(base, &registered, &q1f0),
                        from_offset: 3 * UNIT_SIZE as u16,
                        to: file_index(base, &registered, &q0f0),
                        to_offset: 5 * UNIT_SIZE as u16,
                        len: UNIT_SIZE as u16,
                    },
                )],
            ),
        ),
        (
            "derived-damaged-unit-in-a-non-last-file",
            scripted(
                base,
                &registered,
                vec![(
                    Some(q0f0.as_str()),
                    FileOp::SetInt {
                        file: 0,
                        offset: 5 * UNIT_SIZE as u16 + 8,
                        width: 4,
                        value: u64::from(u32::MAX),
                    },
                )],
            ),
        ),
    ]
}

fn store_ops_seeds() -> Vec<(&'static str, StoreOps)> {
    let put = |topic, queue, len, tags| StoreOp::Put {
        topic,
        queue,
        len,
        tags,
    };
    let get = |topic, queue, offset, max| StoreOp::Get {
        topic,
        queue,
        offset,
        max,
    };
    vec![
        (
            "puts-and-gets",
            StoreOps {
                sync: false,
                ops: vec![
                    put(0, 0, 10, 1),
                    put(0, 1, 0, 0),
                    put(1, 0, 150, 2),
                    put(0, 0, 199, 0),
                    get(0, 0, 0, 8),
                    get(0, 0, 1, 1),
                    get(0, 0, 2, 1),
                    get(0, 0, 3, 1),
                    get(1, 0, 0, 0),
                    get(2, 3, 0, 1),
                ],
            },
        ),
        (
            "batches-and-reopen",
            StoreOps {
                sync: false,
                ops: vec![
                    StoreOp::Batch {
                        topic: 2,
                        queue: 3,
                        n: 5,
                        len8: 10,
                        tags: 1,
                    },
                    StoreOp::Batch {
                        topic: 0,
                        queue: 0,
                        n: 0,
                        len8: 0,
                        tags: 0,
                    },
                    put(2, 3, 20, 0),
                    StoreOp::Reopen,
                    get(2, 3, 0, 8),
                    put(2, 3, 20, 2),
                    get(2, 3, 5, 3),
                ],
            },
        ),
        (
            "segment-roll-over",
            StoreOps {
                sync: false,
                ops: [
                    vec![put(3, 0, 1500, 1); 7],
                    vec![StoreOp::Reopen, get(3, 0, 0, 8), put(3, 0, 3900, 0), get(3, 0, 6, 2)],
                ]
                .concat(),
            },
        ),
        (
            "refused-messages",
            StoreOps {
                sync: false,
                ops: vec![
                    put(0, 4, 10, 0),
                    put(0, 0, 10, 3),
                    put(0, 0, 4200, 0),
                    StoreOp::Batch {
                        topic: 1,
                        queue: 1,
                        n: 3,
                        len8: 200,
                        tags: 0,
                    },
                    get(0, 4, 0, 1),
                    get(0, 0, 0, 1),
                    get(1, 1, 0, 1),
                ],
            },
        ),
        (
            "group-commit",
            StoreOps {
                sync: true,
                ops: vec![
                    put(1, 2, 64, 1),
                    put(1, 2, 64, 2),
                    StoreOp::Reopen,
                    get(1, 2, 0, 2),
                    get(1, 2, 2, 1),
                ],
            },
        ),
    ]
}
