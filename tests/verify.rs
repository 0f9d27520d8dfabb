//! `mqstore::verify`: a clean store verifies consistent with exact counts, verifying changes no
//! byte, a locked store is refused, and each kind of damage is found and located.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use mqstore::verify::{Finding, VerifyReport, verify_store};
use mqstore::{Error, Message, MessageStore, StoreConfig};

const SEGMENT: u64 = 16 * 1024;
const UNITS_PER_FILE: u64 = 32;
const TOPICS: [&str; 3] = ["alpha", "beta", "gamma"];
const QUEUES: u32 = 3;
const MESSAGES: usize = 600;

#[derive(Clone, Debug)]
struct Rec {
    topic: &'static str,
    queue: u32,
    queue_offset: u64,
    offset: u64,
    size: u64,
}

struct Built {
    tmp: tempfile::TempDir,
    recs: Vec<Rec>,
    end: u64,
}

impl Built {
    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn segment_of(&self, offset: u64) -> (PathBuf, u64) {
        let start = offset - offset % SEGMENT;
        (
            self.dir().join("commitlog").join(format!("{start:020}")),
            offset - start,
        )
    }

    fn cq_file(&self, topic: &str, queue: u32, queue_offset: u64) -> (PathBuf, u64) {
        let byte = queue_offset * 20;
        let start = byte - byte % (UNITS_PER_FILE * 20);
        let path = self
            .dir()
            .join("consumequeue")
            .join(topic)
            .join(queue.to_string())
            .join(format!("{start:020}"));
        (path, byte - start)
    }

    /// A record in the middle of the log: in the third segment, neither its first nor its last.
    fn middle_record(&self) -> Rec {
        let in_seg: Vec<&Rec> = self.recs.iter().filter(|r| r.offset / SEGMENT == 2).collect();
        assert!(in_seg.len() >= 3, "the third segment holds too few records");
        in_seg[in_seg.len() / 2].clone()
    }

    /// A record of `alpha/1` whose unit sits in the queue's second consume-queue file.
    fn record_in_middle_cq_file(&self) -> Rec {
        self.recs
            .iter()
            .find(|r| r.topic == "alpha" && r.queue == 1 && r.queue_offset == UNITS_PER_FILE + 5)
            .cloned()
            .expect("alpha/1 has more than 37 messages")
    }
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(SEGMENT)
        .consume_queue_units_per_segment(UNITS_PER_FILE)
}

fn put_all(store: &MessageStore, n: usize, recs: &mut Vec<Rec>) {
    for i in 0..n {
        let topic = TOPICS[i % TOPICS.len()];
        let queue = ((i / TOPICS.len()) % QUEUES as usize) as u32;
        let len = 40 + (i * 97) % 360;
        let body: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
        let mut msg = Message::new(topic, queue, body).with_keys([format!("key-{i}")]);
        if i % 4 != 0 {
            msg = msg.with_tags(if i % 2 == 0 { "TagA" } else { "TagB" });
        }
        let r = store.put(msg).expect("put");
        recs.push(Rec {
            topic,
            queue,
            queue_offset: r.queue_offset,
            offset: r.commit_log_offset,
            size: u64::from(r.wrote_bytes),
        });
    }
}

/// A store of `MESSAGES` messages over 3 topics × 3 queues, closed cleanly.
fn build() -> Built {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(config(tmp.path())).expect("open");
    let mut recs = Vec::new();
    put_all(&store, MESSAGES, &mut recs);
    let end = store.max_commit_log_offset();
    store.close().expect("close");
    Built { tmp, recs, end }
}

fn write_at(path: &Path, pos: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).expect("open for writing");
    f.write_all_at(bytes, pos).expect("write_at");
}

fn read_at(path: &Path, pos: u64, len: usize) -> Vec<u8> {
    let f = fs::File::open(path).expect("open");
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, pos).expect("read_at");
    buf
}

fn flip_bit(path: &Path, pos: u64, bit: u8) {
    let mut b = read_at(path, pos, 1);
    b[0] ^= 1 << bit;
    write_at(path, pos, &b);
}

fn verify(dir: &Path) -> VerifyReport {
    verify_store(dir).unwrap_or_else(|e| panic!("verify_store({}) failed: {e}", dir.display()))
}

fn rel(dir: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(dir).expect("inside the store").to_path_buf()
}

/// The damage finding for `file` at `offset`, or a panic that shows the report.
fn damage_at<'a>(report: &'a VerifyReport, file: &Path, offset: u64) -> &'a Finding {
    report
        .damage
        .iter()
        .find(|d| d.file == file && d.offset == offset)
        .unwrap_or_else(|| panic!("no damage at {} @{offset}:\n{report}", file.display()))
}

fn assert_inconsistent(report: &VerifyReport) {
    assert!(!report.consistent, "expected damage:\n{report}");
    assert!(!report.damage.is_empty());
    assert!(report.to_json().contains("\"consistent\":false"));
    assert!(report.to_string().contains("DAMAGE "));
}

/// Hashes every file under `dir` (path → FNV-1a of its bytes), so that any change shows.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u64, u64)>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                out.insert(path.clone(), (0, 0));
                walk(&path, out);
            } else {
                let bytes = fs::read(&path).expect("read");
                let mut h = 0xcbf2_9ce4_8422_2325u64;
                for b in &bytes {
                    h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
                }
                out.insert(path, (bytes.len() as u64, h));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name),
        tmp.path(),
    );
    tmp
}

// ---------------------------------------------------------------------------------------------
// Consistent stores
// ---------------------------------------------------------------------------------------------

#[test]
fn clean_store_verifies_consistent_with_exact_counts() {
    let b = build();
    let report = verify(b.dir());
    assert!(report.consistent, "{report}");
    assert!(report.notes.is_empty(), "{report}");
    assert!(report.clean_shutdown);
    assert_eq!(report.written_by, "mqstore");
    assert_eq!(report.records, MESSAGES as u64);
    assert_eq!(report.units, MESSAGES as u64);
    assert_eq!(report.bytes, b.recs.iter().map(|r| r.size).sum::<u64>());
    assert_eq!(report.queues, TOPICS.len() * QUEUES as usize);
    assert_eq!(report.log_start, 0);
    assert_eq!(report.log_end, b.end);
    let files = fs::read_dir(b.dir().join("commitlog")).unwrap().count();
    assert_eq!(report.segments, files);
    assert!(report.segments >= 10, "the test wants many segments: {report}");

    let json = report.to_json();
    assert!(!json.contains('\n'));
    assert!(json.starts_with("{\"consistent\":true,\"clean_shutdown\":true,\"written_by\":\"mqstore\""));
    assert!(json.contains(&format!("\"records\":{MESSAGES}")));
    assert!(json.ends_with("\"damage\":[],\"notes\":[]}"));
    let text = report.to_string();
    assert!(text.starts_with("store is consistent"), "{text}");
    assert!(!text.contains("DAMAGE"));
}

#[test]
fn rocketmq_clean_fixture_verifies_consistent() {
    let tmp = fixture("rocketmq-1.0.0-clean");
    let report = verify(tmp.path());
    assert!(report.consistent, "{report}");
    assert!(report.clean_shutdown);
    assert_eq!(report.written_by, "RocketMQ");
    assert_eq!(report.records, 400);
    assert_eq!(report.units, 400);
    assert_eq!(report.queues, 6);
    assert_eq!(report.segments, 11);
    assert_eq!(report.log_end, 658_197);
}

#[test]
fn rocketmq_crash_fixture_verifies_consistent_as_unclean() {
    let tmp = fixture("rocketmq-1.0.0-crash");
    let report = verify(tmp.path());
    assert!(report.consistent, "{report}");
    assert!(!report.clean_shutdown);
    assert_eq!(report.records, 400);
    assert!(report.to_string().contains("unclean shutdown"));
}

#[test]
fn verify_changes_nothing() {
    // A clean store, a damaged one, an unclean one, and RocketMQ's.
    let clean = build();
    let damaged = build();
    let r = damaged.middle_record();
    let (seg, pos) = damaged.segment_of(r.offset);
    flip_bit(&seg, pos + 90, 3);
    let unclean = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(unclean.path())).unwrap();
        put_all(&store, 100, &mut Vec::new());
        store.halt();
    }
    let rocketmq = fixture("rocketmq-1.0.0-crash");
    for dir in [clean.dir(), damaged.dir(), unclean.path(), rocketmq.path()] {
        let before = snapshot(dir);
        let _ = verify(dir);
        let _ = verify(dir);
        assert_eq!(before, snapshot(dir), "verify changed {}", dir.display());
    }
}

#[test]
fn an_open_store_is_refused_and_usage_errors_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(tmp.path())).unwrap();
    put_all(&store, 10, &mut Vec::new());
    match verify_store(tmp.path()) {
        Err(Error::Locked { path }) => assert_eq!(path, tmp.path().join("lock")),
        other => panic!("expected Error::Locked, got {other:?}"),
    }
    store.close().unwrap();
    assert!(verify(tmp.path()).consistent);

    // Not a directory, missing, or not a store.
    assert!(verify_store(&tmp.path().join("lock")).is_err());
    assert!(verify_store(&tmp.path().join("nope")).is_err());
    let empty = tempfile::tempdir().unwrap();
    assert!(verify_store(empty.path()).is_err());
    assert!(
        fs::read_dir(empty.path()).unwrap().next().is_none(),
        "verify created a file"
    );
}

#[test]
fn unclean_store_with_a_torn_tail_is_consistent_with_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(tmp.path())).unwrap();
    let mut recs = Vec::new();
    put_all(&store, 300, &mut recs);
    let end = store.max_commit_log_offset();
    store.halt();
    assert_ne!(end % SEGMENT, 0, "the test wants the end inside a segment");
    let seg = tmp
        .path()
        .join("commitlog")
        .join(format!("{:020}", end - end % SEGMENT));
    write_at(&seg, end % SEGMENT, &[0xA5; 100]);

    let report = verify(tmp.path());
    assert!(report.consistent, "{report}");
    assert!(!report.clean_shutdown);
    assert_eq!(report.records, 300);
    assert_eq!(report.log_end, end);
    let torn = report
        .notes
        .iter()
        .find(|n| n.what.contains("torn tail"))
        .unwrap_or_else(|| panic!("no torn-tail note:\n{report}"));
    assert_eq!(torn.file, rel(tmp.path(), &seg));
    assert_eq!(torn.offset, end);
    assert!(
        torn.what.contains(&format!("recovery will cut the log at {end}")),
        "{}",
        torn.what
    );
    assert!(report.to_string().contains("note commitlog/"));
}

#[test]
fn stores_recovery_repaired_verify_clean() {
    // A torn tail, cut by recovery at the next open.
    let tmp = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(tmp.path())).unwrap();
    put_all(&store, 300, &mut Vec::new());
    let end = store.max_commit_log_offset();
    store.halt();
    drop(store);
    let seg = tmp
        .path()
        .join("commitlog")
        .join(format!("{:020}", end - end % SEGMENT));
    write_at(&seg, end % SEGMENT, &[0xA5; 100]);
    let store = MessageStore::open(config(tmp.path())).unwrap();
    assert_eq!(store.recovery_report().torn_tail_at, Some(end));
    put_all(&store, 50, &mut Vec::new());
    store.close().unwrap();
    drop(store);
    let report = verify(tmp.path());
    assert!(report.consistent && report.notes.is_empty(), "{report}");
    assert_eq!(report.records, 350);
    assert_eq!(report.units, 350);

    // RocketMQ's crashed store, recovered and closed by mqstore.
    let tmp = fixture("rocketmq-1.0.0-crash");
    let store = MessageStore::open(StoreConfig::new(tmp.path())).unwrap();
    store.close().unwrap();
    drop(store);
    let report = verify(tmp.path());
    assert!(report.consistent && report.notes.is_empty(), "{report}");
    assert_eq!(report.records, 400);
    assert_eq!(report.units, 400);
}

#[test]
fn missing_units_after_an_unclean_shutdown_are_notes_where_recovery_rebuilds_them() {
    let b = build();
    // A crash-like state: the abort marker is back, and two units are gone: one of the last
    // record (in the segment recovery re-dispatches from, as the checkpoint says) and one of a
    // record in the first segment (which recovery does not look at again).
    let last = b.recs.last().unwrap().clone();
    let (cq_last, pos) = b.cq_file(last.topic, last.queue, last.queue_offset);
    write_at(&cq_last, pos, &[0u8; 20]);
    let early = b.recs[10].clone();
    assert!(early.offset < SEGMENT);
    let (cq_early, pos) = b.cq_file(early.topic, early.queue, early.queue_offset);
    write_at(&cq_early, pos, &[0u8; 20]);
    fs::write(b.dir().join("abort"), b"").unwrap();

    let report = verify(b.dir());
    assert_inconsistent(&report);
    assert_eq!(report.damage.len(), 1, "{report}");
    damage_at(&report, &rel(b.dir(), &cq_early), early.queue_offset * 20);
    let note = report
        .notes
        .iter()
        .find(|n| n.file == rel(b.dir(), &cq_last))
        .unwrap_or_else(|| panic!("no missing-unit note:\n{report}"));
    assert_eq!(note.offset, last.queue_offset * 20);
    assert!(note.what.contains("recovery rebuilds"), "{}", note.what);

    // Without a checkpoint recovery re-dispatches the whole log: both are notes.
    fs::remove_file(b.dir().join("checkpoint")).unwrap();
    let report = verify(b.dir());
    assert!(report.consistent, "{report}");
    assert!(
        report.notes.iter().any(|n| n.file == rel(b.dir(), &cq_early)),
        "{report}"
    );

    // After a clean shutdown both are damage.
    fs::remove_file(b.dir().join("abort")).unwrap();
    let report = verify(b.dir());
    assert_eq!(report.damage.len(), 2, "{report}");
}

// ---------------------------------------------------------------------------------------------
// The damage catalogue
// ---------------------------------------------------------------------------------------------

#[test]
fn flipped_bit_in_a_middle_record_body_is_damage_and_later_records_count() {
    let b = build();
    let r = b.middle_record();
    let (seg, pos) = b.segment_of(r.offset);
    flip_bit(&seg, pos + 88 + 7, 5); // inside the body
    let report = verify(b.dir());
    assert_inconsistent(&report);
    assert_eq!(report.damage.len(), 1, "{report}");
    let d = damage_at(&report, &rel(b.dir(), &seg), r.offset);
    assert!(d.what.contains("CRC"), "{}", d.what);
    assert!(
        d.what
            .contains(&format!("next valid record is at {}", r.offset + r.size)),
        "{}",
        d.what
    );
    assert_eq!(report.records, MESSAGES as u64 - 1);
    assert_eq!(report.log_end, b.end);
    // Its unit points at the damaged record: a note, not a second finding of damage.
    let (cq, _) = b.cq_file(r.topic, r.queue, r.queue_offset);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.file == rel(b.dir(), &cq) && n.offset == r.queue_offset * 20),
        "{report}"
    );
}

#[test]
fn flipped_bits_in_a_middle_record_header_are_damage_and_later_records_count() {
    // TOTALSIZE, QUEUEID, QUEUEOFFSET, PHYSICALOFFSET, SYSFLAG.
    for (field, bit) in [(3u64, 2u8), (15, 0), (27, 1), (35, 4), (39, 3)] {
        let b = build();
        let r = b.middle_record();
        let (seg, pos) = b.segment_of(r.offset);
        flip_bit(&seg, pos + field, bit);
        let report = verify(b.dir());
        assert_inconsistent(&report);
        assert_eq!(report.damage.len(), 1, "byte {field}: {report}");
        damage_at(&report, &rel(b.dir(), &seg), r.offset);
        assert_eq!(report.records, MESSAGES as u64 - 1, "byte {field}: {report}");
        assert_eq!(report.log_end, b.end);
    }
}

#[test]
fn unit_pointing_past_the_log_is_damage() {
    let b = build();
    let r = b.record_in_middle_cq_file();
    let (cq, pos) = b.cq_file(r.topic, r.queue, r.queue_offset);
    write_at(&cq, pos, &(b.end + 4096).to_be_bytes());
    let report = verify(b.dir());
    assert_inconsistent(&report);
    let d = damage_at(&report, &rel(b.dir(), &cq), r.queue_offset * 20);
    assert!(d.what.contains("past the end of the log"), "{}", d.what);
    assert_eq!(report.damage.len(), 1, "{report}");
    assert_eq!(report.records, MESSAGES as u64);
}

#[test]
fn unit_pointing_at_the_wrong_record_is_damage() {
    let b = build();
    let r = b.record_in_middle_cq_file();
    let (cq, pos) = b.cq_file(r.topic, r.queue, r.queue_offset);
    // Unit n gets unit n+1's bytes (the next record of the same queue).
    let next = read_at(&cq, pos + 20, 20);
    write_at(&cq, pos, &next);
    let report = verify(b.dir());
    assert_inconsistent(&report);
    let d = damage_at(&report, &rel(b.dir(), &cq), r.queue_offset * 20);
    assert!(d.what.contains("whose queue offset is"), "{}", d.what);
    assert_eq!(report.damage.len(), 1, "{report}");

    // A unit pointing into the middle of a record, and one pointing at another queue's record.
    let b = build();
    let r = b.record_in_middle_cq_file();
    let (cq, pos) = b.cq_file(r.topic, r.queue, r.queue_offset);
    write_at(&cq, pos, &(r.offset + 8).to_be_bytes());
    let other = b.recs.iter().find(|o| o.topic == "beta").unwrap();
    let r2 = b
        .recs
        .iter()
        .find(|o| o.topic == "alpha" && o.queue == 1 && o.queue_offset == 3)
        .unwrap();
    let (cq2, pos2) = b.cq_file("alpha", 1, r2.queue_offset);
    write_at(&cq2, pos2, &other.offset.to_be_bytes());
    write_at(&cq2, pos2 + 8, &(other.size as u32).to_be_bytes());
    let report = verify(b.dir());
    assert_inconsistent(&report);
    assert!(
        damage_at(&report, &rel(b.dir(), &cq), r.queue_offset * 20)
            .what
            .contains("no record starts")
    );
    assert!(
        damage_at(&report, &rel(b.dir(), &cq2), 3 * 20)
            .what
            .contains("belongs to beta/")
    );
    assert_eq!(report.damage.len(), 2, "{report}");
}

#[test]
fn wrong_tag_code_and_size_in_a_unit_are_damage() {
    let b = build();
    let r = b.record_in_middle_cq_file();
    let (cq, pos) = b.cq_file(r.topic, r.queue, r.queue_offset);
    write_at(&cq, pos + 12, &12345i64.to_be_bytes());
    let (cq2, pos2) = b.cq_file(r.topic, r.queue, r.queue_offset + 2);
    write_at(&cq2, pos2 + 8, &7u32.to_be_bytes());
    let report = verify(b.dir());
    assert_inconsistent(&report);
    assert!(
        damage_at(&report, &rel(b.dir(), &cq), r.queue_offset * 20)
            .what
            .contains("tag code")
    );
    assert!(
        damage_at(&report, &rel(b.dir(), &cq2), (r.queue_offset + 2) * 20)
            .what
            .contains("says 7 bytes")
    );
    assert_eq!(report.damage.len(), 2, "{report}");
}

#[test]
fn missing_unit_in_a_middle_file_is_damage() {
    let b = build();
    let r = b.record_in_middle_cq_file();
    let (cq, pos) = b.cq_file(r.topic, r.queue, r.queue_offset);
    write_at(&cq, pos, &[0u8; 20]);
    let report = verify(b.dir());
    assert_inconsistent(&report);
    assert_eq!(report.damage.len(), 1, "{report}");
    let d = damage_at(&report, &rel(b.dir(), &cq), r.queue_offset * 20);
    assert!(d.what.contains("missing unit"), "{}", d.what);
    assert!(
        d.what.contains(&format!("commit-log offset {}", r.offset)),
        "{}",
        d.what
    );
    assert_eq!(report.units, MESSAGES as u64 - 1);
}

#[test]
fn missing_queue_directory_is_one_finding() {
    let b = build();
    let dir = b.dir().join("consumequeue/gamma/2");
    fs::remove_dir_all(&dir).unwrap();
    let n = b.recs.iter().filter(|r| r.topic == "gamma" && r.queue == 2).count();
    let report = verify(b.dir());
    assert_inconsistent(&report);
    assert_eq!(report.damage.len(), 1, "{report}");
    let d = damage_at(&report, Path::new("consumequeue/gamma/2/00000000000000000000"), 0);
    assert!(d.what.contains(&format!("0..={}", n - 1)), "{}", d.what);
}

#[test]
fn stray_file_in_the_commit_log_is_damage() {
    let b = build();
    fs::write(b.dir().join("commitlog/notes.txt"), b"hello").unwrap();
    let report = verify(b.dir());
    assert_inconsistent(&report);
    assert_eq!(report.damage.len(), 1, "{report}");
    assert!(
        damage_at(&report, Path::new("commitlog/notes.txt"), 0)
            .what
            .contains("stray")
    );
    assert_eq!(report.records, MESSAGES as u64);
}

#[test]
fn short_segment_file_is_damage() {
    let b = build();
    let r = b.middle_record();
    let (seg, _) = b.segment_of(r.offset);
    let start = r.offset - r.offset % SEGMENT;
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(SEGMENT / 2).unwrap();
    drop(f);
    let report = verify(b.dir());
    assert_inconsistent(&report);
    let d = damage_at(&report, &rel(b.dir(), &seg), start);
    assert!(d.what.contains("short segment file"), "{}", d.what);
    // The records of the later segments are still checked and counted.
    let later = b.recs.iter().filter(|x| x.offset >= start + SEGMENT).count() as u64;
    let before = b
        .recs
        .iter()
        .filter(|x| x.offset + x.size <= start + SEGMENT / 2)
        .count() as u64;
    assert_eq!(report.records, before + later, "{report}");
    assert_eq!(report.log_end, b.end);
}

#[test]
fn missing_middle_segment_and_missing_last_segment_are_damage() {
    let b = build();
    let (seg, _) = b.segment_of(3 * SEGMENT);
    fs::remove_file(&seg).unwrap();
    let report = verify(b.dir());
    assert_inconsistent(&report);
    assert!(
        damage_at(&report, &rel(b.dir(), &seg), 3 * SEGMENT)
            .what
            .contains("hole")
    );

    let b = build();
    let (seg, _) = b.segment_of(b.end);
    fs::remove_file(&seg).unwrap();
    let report = verify(b.dir());
    assert_inconsistent(&report);
    let d = damage_at(&report, Path::new("checkpoint"), 1024);
    assert!(d.what.contains("durable data missing"), "{}", d.what);
}

#[test]
fn garbage_after_the_end_of_the_log_in_a_clean_store_is_damage() {
    let b = build();
    assert_ne!(b.end % SEGMENT, 0);
    let (seg, pos) = b.segment_of(b.end);
    write_at(&seg, pos, &[0x5A; 64]);
    let report = verify(b.dir());
    assert_inconsistent(&report);
    assert_eq!(report.damage.len(), 1, "{report}");
    damage_at(&report, &rel(b.dir(), &seg), b.end);
    assert_eq!(report.records, MESSAGES as u64);

    // Further on, behind the end mark's zeros: what a recycled segment holds from its earlier
    // life. Not a record of this position, so a note, not damage.
    let b = build();
    let (seg, pos) = b.segment_of(b.end);
    let room = SEGMENT - pos;
    write_at(&seg, pos + room / 2, &[0x01]);
    let report = verify(b.dir());
    assert!(report.consistent, "{report}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.offset == b.end + room / 2 && n.what.contains("earlier life")),
        "{report}"
    );
    assert_eq!(report.log_end, b.end);
}

#[test]
fn bad_checkpoint_slots_are_notes() {
    let b = build();
    let cp = b.dir().join("checkpoint");
    flip_bit(&cp, 1024 + 20, 0);
    flip_bit(&cp, 2048 + 20, 0);
    let report = verify(b.dir());
    assert!(report.consistent, "{report}");
    assert!(
        report.notes.iter().any(|n| n.file == Path::new("checkpoint")),
        "{report}"
    );
}

#[test]
fn random_garbage_never_panics() {
    let b = build();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut files = Vec::new();
    for sub in ["commitlog", "consumequeue/alpha/0", "consumequeue/beta/1"] {
        for e in fs::read_dir(b.dir().join(sub)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    files.push(b.dir().join("checkpoint"));
    for round in 0..40 {
        let path = &files[(next() % files.len() as u64) as usize];
        let len = fs::metadata(path).unwrap().len();
        if len == 0 {
            continue;
        }
        let at = next() % len;
        let n = (1 + next() % 300).min(len - at) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        write_at(path, at, &bytes);
        if round % 7 == 3 {
            fs::write(b.dir().join("abort"), b"").unwrap();
        }
        let report = verify(b.dir());
        let _ = (report.to_json(), report.to_string());
    }
}
