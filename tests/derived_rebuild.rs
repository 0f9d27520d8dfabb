//! Consume queues are derived data: an operator who deletes `consumequeue/`, one queue's
//! directory or one of its files loses no message. After reopening, every message is read at its
//! original queue offset with the same `next_offset` paging as before, and the recovery report
//! names the queues it rebuilt.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{body, consume_queue_dirs, segment_files};
use mqstore::{GetStatus, Message, MessageStore, StoreConfig};

const TOPICS: [&str; 3] = ["orders", "audit", "clicks"];
const QUEUES: u32 = 3;
const MESSAGES: u64 = 2000;

/// 64 KiB log segments, 64-unit queue files: 2,000 messages make many files of each.
fn config(dir: &Path) -> StoreConfig {
    common::small_config(dir).index_size(64, 256)
}

/// What a reader saw: per queue, every (queue offset, body, commit-log offset), and the
/// `next_offset` of each page read 7 at a time.
type Seen = BTreeMap<(String, u32), (Vec<(u64, Vec<u8>, u64)>, Vec<u64>)>;

fn fill(dir: &Path) {
    let store = MessageStore::open(config(dir)).unwrap();
    for i in 0..MESSAGES {
        let topic = TOPICS[(i % 3) as usize];
        let queue = ((i / 3) % QUEUES as u64) as u32;
        let m = Message::new(topic, queue, body(i, 100 + (i % 50) as usize)).with_keys([format!("k{i}")]);
        store.put(m).unwrap();
    }
    store.close().unwrap();
}

fn read_all(store: &MessageStore) -> Seen {
    assert!(store.wait_dispatched(std::time::Duration::from_secs(10)));
    let mut seen = Seen::new();
    for topic in TOPICS {
        for queue in 0..QUEUES {
            let (mut msgs, mut pages) = (Vec::new(), Vec::new());
            let mut offset = store.min_offset(topic, queue);
            assert_eq!(offset, 0, "{topic}/{queue}: nothing was deleted from the log");
            loop {
                let g = store.get(topic, queue, offset, 7).unwrap();
                pages.push(g.next_offset);
                match g.status {
                    GetStatus::Found => {
                        for m in &g.messages {
                            msgs.push((m.queue_offset(), m.body().to_vec(), m.commit_log_offset()));
                        }
                        offset = g.next_offset;
                    }
                    GetStatus::OffsetOverflowOne => break,
                    other => panic!("{topic}/{queue} at {offset}: {other:?}"),
                }
            }
            seen.insert((topic.to_string(), queue), (msgs, pages));
        }
    }
    seen
}

fn reference(dir: &Path) -> Seen {
    let store = MessageStore::open(config(dir)).unwrap();
    let seen = read_all(&store);
    let total: usize = seen.values().map(|(m, _)| m.len()).sum();
    assert_eq!(total as u64, MESSAGES);
    for (msgs, _) in seen.values() {
        assert!(msgs.iter().enumerate().all(|(i, m)| m.0 == i as u64), "dense from 0");
    }
    store.close().unwrap();
    seen
}

/// Damages the files with `damage`, reopens (after a crash when `crash`), and checks that every
/// queue reads as before and that the report names exactly `rebuilt`. Returns the store's
/// directory, closed.
fn check(damage: impl FnOnce(&Path), crash: bool, rebuilt: &[(&str, u32)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let before = reference(dir.path());
    damage(dir.path());
    if crash {
        std::fs::File::create(dir.path().join("abort")).unwrap();
    }
    let store = MessageStore::open(config(dir.path())).unwrap();
    let mut expected: Vec<(String, u32)> = rebuilt.iter().map(|(t, q)| (t.to_string(), *q)).collect();
    expected.sort();
    assert_eq!(store.recovery_report().queues_rebuilt, expected);
    let after = read_all(&store);
    for (queue, (msgs, pages)) in &before {
        let (got, got_pages) = &after[queue];
        assert_eq!(got.len(), msgs.len(), "{queue:?}: message count");
        assert!(got == msgs, "{queue:?}: messages differ");
        assert_eq!(got_pages, pages, "{queue:?}: next offsets");
    }
    // Another key lookup still works (the index was not touched).
    assert_eq!(store.query_by_key("orders", "k0", 4).unwrap().len(), 1);
    store.close().unwrap();
    // The rebuild was made durable: a second open rebuilds nothing and reads the same.
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert!(store.recovery_report().queues_rebuilt.is_empty());
    assert_eq!(read_all(&store), after);
    store.close().unwrap();
    dir
}

fn queue_dir(dir: &Path, topic: &str, queue: u32) -> std::path::PathBuf {
    dir.join("consumequeue").join(topic).join(queue.to_string())
}

fn all_queues() -> Vec<(&'static str, u32)> {
    TOPICS.iter().flat_map(|t| (0..QUEUES).map(move |q| (*t, q))).collect()
}

#[test]
fn the_whole_consume_queue_directory() {
    check(
        |d| std::fs::remove_dir_all(d.join("consumequeue")).unwrap(),
        false,
        &all_queues(),
    );
}

#[test]
fn the_whole_consume_queue_directory_after_a_crash() {
    check(
        |d| std::fs::remove_dir_all(d.join("consumequeue")).unwrap(),
        true,
        &all_queues(),
    );
}

#[test]
fn the_whole_directory_and_the_registry() {
    // Nothing names the queues any more: the whole log is dispatched again.
    check(
        |d| {
            std::fs::remove_dir_all(d.join("consumequeue")).unwrap();
            std::fs::remove_file(d.join("config/consumeQueues.json")).unwrap();
            let _ = std::fs::remove_file(d.join("config/consumeQueues.json.bak"));
        },
        false,
        &[],
    );
}

#[test]
fn one_queue_directory() {
    check(
        |d| std::fs::remove_dir_all(queue_dir(d, "audit", 1)).unwrap(),
        false,
        &[("audit", 1)],
    );
}

#[test]
fn one_topic_directory() {
    check(
        |d| std::fs::remove_dir_all(d.join("consumequeue/clicks")).unwrap(),
        false,
        &[("clicks", 0), ("clicks", 1), ("clicks", 2)],
    );
}

#[test]
fn the_first_file_of_a_queue() {
    check(
        |d| {
            let files = segment_files(&queue_dir(d, "orders", 0));
            assert!(files.len() >= 3, "the queue spans several files");
            std::fs::remove_file(&files[0].1).unwrap();
        },
        false,
        &[("orders", 0)],
    );
}

#[test]
fn the_last_file_of_a_queue() {
    check(
        |d| {
            let files = segment_files(&queue_dir(d, "orders", 2));
            std::fs::remove_file(&files.last().unwrap().1).unwrap();
        },
        false,
        &[("orders", 2)],
    );
}

#[test]
fn the_last_file_of_a_queue_after_a_crash() {
    check(
        |d| {
            let files = segment_files(&queue_dir(d, "orders", 2));
            std::fs::remove_file(&files.last().unwrap().1).unwrap();
        },
        true,
        &[("orders", 2)],
    );
}

#[test]
fn every_queue_loses_its_first_file_without_a_registry() {
    // A store RocketMQ wrote has no registry: a queue starting past unit 0 at a record above the
    // log's start gives itself away.
    let queues = all_queues();
    check(
        |d| {
            std::fs::remove_file(d.join("config/consumeQueues.json")).unwrap();
            let _ = std::fs::remove_file(d.join("config/consumeQueues.json.bak"));
            for (_, _, qdir) in consume_queue_dirs(d) {
                let files = segment_files(&qdir);
                assert!(files.len() >= 2);
                std::fs::remove_file(&files[0].1).unwrap();
            }
        },
        false,
        &queues,
    );
}

#[test]
fn a_middle_file_of_a_queue() {
    check(
        |d| {
            let files = segment_files(&queue_dir(d, "audit", 0));
            assert!(files.len() >= 3);
            std::fs::remove_file(&files[1].1).unwrap();
        },
        false,
        &[("audit", 0)],
    );
}

#[test]
fn a_middle_file_of_a_queue_without_a_registry() {
    check(
        |d| {
            std::fs::remove_file(d.join("config/consumeQueues.json")).unwrap();
            let _ = std::fs::remove_file(d.join("config/consumeQueues.json.bak"));
            let files = segment_files(&queue_dir(d, "audit", 0));
            std::fs::remove_file(&files[1].1).unwrap();
        },
        true,
        &[("audit", 0)],
    );
}

#[test]
fn a_stray_file_in_a_queue_directory() {
    check(
        |d| std::fs::write(queue_dir(d, "clicks", 1).join("notes.txt"), b"hello").unwrap(),
        false,
        &[("clicks", 1)],
    );
}

/// Overwrites units of one queue file (`file` of its files, from unit `first`) with `units`
/// (20 bytes each), checks that every message reads as before with no queue rebuilt (a read
/// finds the damage and repairs it from the log), and that the repair restored the file's bytes.
fn damage_units(topic: &str, queue: u32, file: usize, first: usize, units: &[[u8; 20]], crash: bool) {
    let original = std::cell::RefCell::new(None);
    let dir = check(
        |d| {
            let files = segment_files(&queue_dir(d, topic, queue));
            assert!(files.len() >= 3, "the queue spans several files");
            assert!(file + 1 < files.len(), "a file that is not the last");
            let path = files[file].1.clone();
            let mut bytes = std::fs::read(&path).unwrap();
            *original.borrow_mut() = Some((path.clone(), bytes.clone()));
            for (i, unit) in units.iter().enumerate() {
                let at = (first + i) * 20;
                bytes[at..at + 20].copy_from_slice(unit);
            }
            std::fs::write(&path, bytes).unwrap();
        },
        crash,
        &[],
    );
    let (path, bytes) = original.into_inner().unwrap();
    assert!(path.starts_with(dir.path()));
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "the repaired file holds the original units"
    );
}

/// Unit `n` of a queue file, as stored.
fn unit_of(dir: &Path, topic: &str, queue: u32, file: usize, n: usize) -> [u8; 20] {
    let files = segment_files(&queue_dir(dir, topic, queue));
    std::fs::read(&files[file].1).unwrap()[n * 20..n * 20 + 20]
        .try_into()
        .unwrap()
}

fn unit_bytes(offset: i64, size: i32, tags: i64) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&offset.to_be_bytes());
    b[8..12].copy_from_slice(&size.to_be_bytes());
    b[12..].copy_from_slice(&tags.to_be_bytes());
    b
}

#[test]
fn a_damaged_unit_in_a_file_that_is_not_the_last() {
    // Not a unit at all (negative size): a read used to skip the rest of the file.
    damage_units("audit", 2, 0, 10, &[unit_bytes(12345, -7, 0)], false);
}

#[test]
fn a_run_of_zeroed_units_in_the_first_file() {
    // Unwritten units in the middle of a file that is not the last, the first unit among them.
    damage_units("orders", 1, 0, 0, &[[0; 20]; 5], false);
}

#[test]
fn a_unit_pointing_into_the_middle_of_a_record() {
    damage_units("clicks", 0, 1, 3, &[unit_bytes(4096 + 17, 150, 0)], false);
}

#[test]
fn a_unit_pointing_past_the_end_of_the_log() {
    damage_units("clicks", 2, 0, 63, &[unit_bytes(1 << 40, 150, 0)], true);
}

#[test]
fn a_unit_of_another_queue_in_the_middle_of_a_queue() {
    // A unit copied from another queue's file: a valid record, of the wrong queue. Reads used
    // to refuse it every time; recovery never looked (it lies below the checkpoint's mark).
    let foreign = std::cell::RefCell::new(None);
    let probe = tempfile::tempdir().unwrap();
    fill(probe.path());
    *foreign.borrow_mut() = Some(unit_of(probe.path(), "audit", 1, 1, 5));
    let foreign = foreign.into_inner().unwrap();
    damage_units("orders", 0, 1, 5, &[foreign, foreign], false);
}

// ---------------------------------------------------------------------------------------------
// Random damage to the derived files only.
// ---------------------------------------------------------------------------------------------

mod random_damage {
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::common::{body, segment_files};
    use mqstore::{GetStatus, Message, MessageStore, StoreConfig};

    const TOPICS: [&str; 2] = ["pay", "ship"];
    const QUEUES: u32 = 2;
    const MESSAGES: u64 = 400;

    fn config(dir: &Path) -> StoreConfig {
        StoreConfig::new(dir)
            .commit_log_segment_size(64 * 1024)
            .consume_queue_units_per_segment(32)
            .index_size(64, 256)
    }

    /// (topic, queue, queue offset, body) of every message of the template store.
    type Puts = Vec<(&'static str, u32, u64, Vec<u8>)>;

    /// A closed store built once per process; each case works on a copy.
    fn template() -> &'static (tempfile::TempDir, Puts) {
        static TEMPLATE: OnceLock<(tempfile::TempDir, Puts)> = OnceLock::new();
        TEMPLATE.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = MessageStore::open(config(dir.path())).unwrap();
            let mut puts = Vec::new();
            for i in 0..MESSAGES {
                let (topic, queue) = (TOPICS[(i % 2) as usize], ((i / 2) % QUEUES as u64) as u32);
                let b = body(i, 60 + (i % 200) as usize);
                let r = store
                    .put(Message::new(topic, queue, b.clone()).with_keys([format!("k{i}")]))
                    .unwrap();
                puts.push((topic, queue, r.queue_offset, b));
            }
            store.close().unwrap();
            (dir, puts)
        })
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &target);
            } else if e.file_name() != "lock" {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }

    /// One change to a derived file: consume-queue files, their registry, the index.
    #[derive(Clone, Debug)]
    enum Damage {
        DeleteQueue {
            queue: usize,
        },
        DeleteFile {
            queue: usize,
            file: usize,
        },
        TruncateFile {
            queue: usize,
            file: usize,
            len: usize,
        },
        ZeroUnits {
            queue: usize,
            file: usize,
            unit: usize,
            n: usize,
        },
        Garbage {
            queue: usize,
            file: usize,
            at: usize,
            bytes: Vec<u8>,
        },
        /// A unit copied from one queue's file into another's (or the same).
        CopyUnit {
            from: (usize, usize, usize),
            to: (usize, usize, usize),
        },
        StrayFile {
            queue: usize,
        },
        DeleteRegistry,
        DeleteIndex,
    }

    fn damage() -> impl Strategy<Value = Damage> {
        let q = 0usize..4;
        let f = 0usize..8;
        prop_oneof![
            q.clone().prop_map(|queue| Damage::DeleteQueue { queue }),
            (q.clone(), f.clone()).prop_map(|(queue, file)| Damage::DeleteFile { queue, file }),
            (q.clone(), f.clone(), 0usize..640).prop_map(|(queue, file, len)| Damage::TruncateFile {
                queue,
                file,
                len
            }),
            (q.clone(), f.clone(), 0usize..32, 1usize..40).prop_map(|(queue, file, unit, n)| Damage::ZeroUnits {
                queue,
                file,
                unit,
                n
            }),
            (
                q.clone(),
                f.clone(),
                0usize..640,
                prop::collection::vec(any::<u8>(), 1..24)
            )
                .prop_map(|(queue, file, at, bytes)| Damage::Garbage { queue, file, at, bytes }),
            ((q.clone(), f.clone(), 0usize..32), (q.clone(), f.clone(), 0usize..32))
                .prop_map(|(from, to)| Damage::CopyUnit { from, to }),
            q.prop_map(|queue| Damage::StrayFile { queue }),
            Just(Damage::DeleteRegistry),
            Just(Damage::DeleteIndex),
        ]
    }

    fn queue_dir(dir: &Path, q: usize) -> PathBuf {
        dir.join("consumequeue")
            .join(TOPICS[q / QUEUES as usize])
            .join((q % QUEUES as usize).to_string())
    }

    /// The `file`-th file of queue `q` (modulo how many it has), if any is left.
    fn nth_file(dir: &Path, q: usize, file: usize) -> Option<PathBuf> {
        let files = segment_files(&queue_dir(dir, q));
        (!files.is_empty()).then(|| files[file % files.len()].1.clone())
    }

    fn apply(dir: &Path, d: &Damage) {
        match d {
            Damage::DeleteQueue { queue } => {
                let _ = std::fs::remove_dir_all(queue_dir(dir, *queue));
            }
            Damage::DeleteFile { queue, file } => {
                if let Some(p) = nth_file(dir, *queue, *file) {
                    std::fs::remove_file(p).unwrap();
                }
            }
            Damage::TruncateFile { queue, file, len } => {
                if let Some(p) = nth_file(dir, *queue, *file) {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(p)
                        .unwrap()
                        .set_len(*len as u64)
                        .unwrap();
                }
            }
            Damage::ZeroUnits { queue, file, unit, n } => {
                if let Some(p) = nth_file(dir, *queue, *file) {
                    let mut b = std::fs::read(&p).unwrap();
                    let end = ((unit + n) * 20).min(b.len());
                    let start = (unit * 20).min(end);
                    b[start..end].fill(0);
                    std::fs::write(p, b).unwrap();
                }
            }
            Damage::Garbage { queue, file, at, bytes } => {
                if let Some(p) = nth_file(dir, *queue, *file) {
                    let mut b = std::fs::read(&p).unwrap();
                    for (i, x) in bytes.iter().enumerate() {
                        if let Some(slot) = b.get_mut(at + i) {
                            *slot = *x;
                        }
                    }
                    std::fs::write(p, b).unwrap();
                }
            }
            Damage::CopyUnit { from, to } => {
                let (Some(src), Some(dst)) = (nth_file(dir, from.0, from.1), nth_file(dir, to.0, to.1)) else {
                    return;
                };
                let unit = std::fs::read(src)
                    .unwrap()
                    .get(from.2 * 20..from.2 * 20 + 20)
                    .map(<[u8]>::to_vec);
                let mut b = std::fs::read(&dst).unwrap();
                if let (Some(unit), Some(slot)) = (unit, b.get_mut(to.2 * 20..to.2 * 20 + 20)) {
                    slot.copy_from_slice(&unit);
                    std::fs::write(dst, b).unwrap();
                }
            }
            Damage::StrayFile { queue } => {
                let qdir = queue_dir(dir, *queue);
                if qdir.is_dir() {
                    std::fs::write(qdir.join("copy.bak"), b"stray").unwrap();
                }
            }
            Damage::DeleteRegistry => {
                let _ = std::fs::remove_file(dir.join("config/consumeQueues.json"));
                let _ = std::fs::remove_file(dir.join("config/consumeQueues.json.bak"));
            }
            Damage::DeleteIndex => {
                let _ = std::fs::remove_dir_all(dir.join("index"));
            }
        }
    }

    fn run(damages: &[Damage], crash: bool) -> Result<(), TestCaseError> {
        let (template, puts) = template();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("store");
        copy_dir(template.path(), &dir);
        for d in damages {
            apply(&dir, d);
        }
        if crash {
            std::fs::File::create(dir.join("abort")).unwrap();
        }
        let store = MessageStore::open(config(&dir)).map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
        assert!(store.wait_dispatched(std::time::Duration::from_secs(10)));
        for (topic, queue, offset, b) in puts {
            let g = store
                .get(topic, *queue, *offset, 1)
                .map_err(|e| TestCaseError::fail(format!("{topic}/{queue} at {offset}: {e}")))?;
            prop_assert_eq!(g.status, GetStatus::Found, "{}/{} at {}", topic, queue, offset);
            prop_assert_eq!(g.messages[0].queue_offset(), *offset);
            prop_assert!(
                g.messages[0].body() == b.as_slice(),
                "{}/{} at {}: body",
                topic,
                queue,
                offset
            );
        }
        for (i, (topic, _, _, _)) in puts.iter().enumerate().step_by(37) {
            prop_assert_eq!(
                store.query_by_key(topic, &format!("k{i}"), 4).unwrap().len(),
                1,
                "key k{}",
                i
            );
        }
        store.close().unwrap();
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
        /// Whatever happens to the consume queues, their registry and the index, every message
        /// put before reads back at its queue offset after reopening (after a clean close, or a
        /// crash).
        #[test]
        fn every_message_reads_back_after_damage_to_derived_files(
            damages in prop::collection::vec(damage(), 1..6),
            crash in any::<bool>(),
        ) {
            run(&damages, crash)?;
        }
    }
}
