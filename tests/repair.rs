//! `repair`: what `open` refuses (a stray file among the segments, a segment cut short, a hole,
//! a queue directory that is not a queue id) becomes openable again. After a repair the store
//! opens, `verify` finds it consistent, every message outside the lost offsets reads back at
//! its queue offset, and nothing was deleted (what left the store is in `lost+found/`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{body, segment_files, small_config};
use mqstore::repair::{RepairAction, RepairOptions, RepairReport, repair_store};
use mqstore::{Error, GetStatus, Message, MessageStore};

const TOPICS: [&str; 2] = ["orders", "audit"];
const QUEUES: u32 = 2;
const MESSAGES: u64 = 600;

/// A message as put: where it went.
#[derive(Clone, Debug)]
struct Put {
    topic: &'static str,
    queue: u32,
    queue_offset: u64,
    commit_log_offset: u64,
    size: u32,
    body: Vec<u8>,
}

/// Fills a closed store with 64 KiB segments (several of them) and returns what it holds.
fn fill(dir: &Path) -> Vec<Put> {
    let store = MessageStore::open(small_config(dir)).unwrap();
    let mut puts = Vec::new();
    for i in 0..MESSAGES {
        let topic = TOPICS[(i % 2) as usize];
        let queue = ((i / 2) % QUEUES as u64) as u32;
        let body = body(i, 200 + (i % 90) as usize);
        let r = store.put(Message::new(topic, queue, body.clone())).unwrap();
        puts.push(Put {
            topic,
            queue,
            queue_offset: r.queue_offset,
            commit_log_offset: r.commit_log_offset,
            size: r.wrote_bytes,
            body,
        });
    }
    store.close().unwrap();
    assert!(segment_files(&dir.join("commitlog")).len() >= 4);
    puts
}

fn repair(dir: &Path) -> RepairReport {
    repair_store(dir, &RepairOptions::default()).unwrap()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// After a repair: the store opens, verify is clean, a second repair finds nothing, and every
/// message outside `lost` (commit-log ranges) reads back where it was; those inside do not.
fn check_after(dir: &Path, puts: &[Put], report: &RepairReport) {
    let verified = mqstore::verify::verify_store(dir).unwrap();
    assert!(verified.consistent, "verify after repair:\n{verified}");
    let again = repair(dir);
    assert!(again.nothing_to_do(), "a second repair found work:\n{again}");
    let store = MessageStore::open(small_config(dir)).unwrap();
    let lost = |p: &Put| {
        report
            .lost
            .iter()
            .any(|l| p.commit_log_offset < l.to && l.from < p.commit_log_offset + p.size as u64)
            || report.recovery.as_ref().is_some_and(|r| {
                r.damaged
                    .iter()
                    .any(|d| p.commit_log_offset < d.end && d.start <= p.commit_log_offset)
            })
    };
    let mut kept = 0;
    for p in puts {
        let g = store.get(p.topic, p.queue, p.queue_offset, 1);
        if lost(p) {
            let found = g.ok().filter(|g| g.status == GetStatus::Found);
            assert!(
                found.is_none_or(|g| g.messages[0].queue_offset() != p.queue_offset),
                "lost message {}/{} at {} still read",
                p.topic,
                p.queue,
                p.queue_offset
            );
        } else {
            let g = g.unwrap();
            assert_eq!(
                g.status,
                GetStatus::Found,
                "{}/{} at {}",
                p.topic,
                p.queue,
                p.queue_offset
            );
            let m = &g.messages[0];
            assert_eq!(m.queue_offset(), p.queue_offset);
            assert_eq!(m.commit_log_offset(), p.commit_log_offset);
            assert!(m.body() == p.body.as_slice());
            kept += 1;
        }
    }
    assert!(kept > 0);
    store.close().unwrap();
}

fn open_refuses(dir: &Path) {
    match MessageStore::open(small_config(dir)) {
        Err(Error::Layout { .. }) => {}
        Err(e) => panic!("open failed otherwise: {e}"),
        Ok(_) => panic!("open accepted the damaged layout"),
    }
}

#[test]
fn a_stray_file_among_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    let puts = fill(dir.path());
    std::fs::write(dir.path().join("commitlog/notes.txt"), b"operator notes").unwrap();
    open_refuses(dir.path());
    let report = repair(dir.path());
    assert!(report.lost.is_empty(), "{report}");
    let moved: Vec<_> = report
        .actions
        .iter()
        .filter_map(|a| match a {
            RepairAction::MovedAside { to, .. } => Some(to.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(moved.len(), 1, "{report}");
    assert_eq!(
        std::fs::read(&moved[0]).unwrap(),
        b"operator notes",
        "kept, not deleted"
    );
    assert!(moved[0].starts_with(dir.path().join("lost+found")));
    check_after(dir.path(), &puts, &report);
}

#[test]
fn a_last_segment_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let puts = fill(dir.path());
    let files = segment_files(&dir.path().join("commitlog"));
    let (start, path, len) = files.last().unwrap().clone();
    let original = std::fs::read(&path).unwrap();
    // Cut in the middle of a record: the bytes of the last whole record end somewhere before.
    let cut = 10_001u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    open_refuses(dir.path());
    let report = repair(dir.path());
    let padded = report.actions.iter().find_map(|a| match a {
        RepairAction::Padded {
            records_end,
            filler,
            copy,
            ..
        } => Some((*records_end, *filler, copy.clone())),
        _ => None,
    });
    let (records_end, filler, copy) = padded.expect("the segment was padded");
    assert!(!filler, "the last segment ends with zeros");
    assert!(records_end < cut && records_end > 0);
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        original[..cut as usize],
        "the cut file kept"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    assert_eq!(report.lost.len(), 1, "{report}");
    assert_eq!(
        (report.lost[0].from, report.lost[0].to),
        (start + records_end, start + cut)
    );
    // Every message whose record ended before the cut is kept; the rest are gone.
    let kept = puts
        .iter()
        .filter(|p| p.commit_log_offset + p.size as u64 <= start + records_end)
        .count();
    assert!(kept < puts.len());
    let mut report = report;
    report.lost.push(mqstore::repair::Lost {
        from: start + cut,
        to: u64::MAX,
        why: "past the cut".into(),
    });
    check_after(dir.path(), &puts, &report);
}

#[test]
fn a_hole_where_a_segment_was() {
    let dir = tempfile::tempdir().unwrap();
    let puts = fill(dir.path());
    let files = segment_files(&dir.path().join("commitlog"));
    let (start, path, len) = files[1].clone();
    std::fs::remove_file(&path).unwrap();
    open_refuses(dir.path());
    let report = repair(dir.path());
    assert!(
        report
            .actions
            .iter()
            .any(|a| matches!(a, RepairAction::FilledHole { file } if *file == path)),
        "{report}"
    );
    assert_eq!(report.lost.len(), 1, "{report}");
    assert_eq!((report.lost[0].from, report.lost[0].to), (start, start + len));
    check_after(dir.path(), &puts, &report);
}

#[test]
fn a_middle_segment_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let puts = fill(dir.path());
    let files = segment_files(&dir.path().join("commitlog"));
    let (start, path, len) = files[2].clone();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(30_000)
        .unwrap();
    open_refuses(dir.path());
    let report = repair(dir.path());
    assert!(
        report
            .actions
            .iter()
            .any(|a| matches!(a, RepairAction::Padded { filler: true, .. })),
        "{report}"
    );
    assert_eq!(report.lost.last().unwrap().to, start + len, "{report}");
    check_after(dir.path(), &puts, &report);
}

#[test]
fn a_queue_directory_that_is_not_a_queue_id() {
    let dir = tempfile::tempdir().unwrap();
    let puts = fill(dir.path());
    std::fs::create_dir_all(dir.path().join("consumequeue/orders/backup")).unwrap();
    std::fs::write(dir.path().join("consumequeue/orders/backup/x"), b"x").unwrap();
    open_refuses(dir.path());
    let report = repair(dir.path());
    assert!(report.lost.is_empty());
    assert!(
        matches!(report.actions.as_slice(), [RepairAction::MovedAside { .. }]),
        "{report}"
    );
    check_after(dir.path(), &puts, &report);
}

#[test]
fn a_dry_run_changes_nothing_and_says_the_same() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let files = segment_files(&dir.path().join("commitlog"));
    std::fs::remove_file(&files[1].1).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files.last().unwrap().1)
        .unwrap()
        .set_len(5000)
        .unwrap();
    std::fs::write(dir.path().join("commitlog/stray"), b"?").unwrap();
    let before = snapshot(dir.path());
    let dry = repair_store(
        dir.path(),
        &RepairOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(dry.dry_run && dry.recovery.is_none());
    assert!(snapshot(dir.path()) == before, "a dry run changed files");
    let real = repair(dir.path());
    assert_eq!(dry.lost, real.lost);
    let kinds = |r: &RepairReport| r.actions.iter().map(std::mem::discriminant).collect::<Vec<_>>();
    assert_eq!(kinds(&dry), kinds(&real));
    assert!(real.recovery.is_some());
    assert!(mqstore::verify::verify_store(dir.path()).unwrap().consistent);
}

#[test]
fn a_sound_store_needs_nothing_and_a_running_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let before = snapshot(dir.path());
    let report = repair_store(
        dir.path(),
        &RepairOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(report.nothing_to_do() && report.lost.is_empty());
    assert!(snapshot(dir.path()) == before);
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert!(matches!(
        repair_store(dir.path(), &RepairOptions::default()),
        Err(Error::Locked { .. })
    ));
    store.close().unwrap();
}
