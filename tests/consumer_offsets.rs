//! Consumer-group offsets through the store's public API: commits, read back, listing, status
//! against the queue's range, durability across close, halt and SIGKILL.
//!
//! The SIGKILL test re-runs this binary as a child (the ignored test `offsets_child`, selected by
//! `MQSTORE_OFFSETS_CHILD_DIR`) that commits increasing offsets and flushes in a loop; the parent
//! kills it at random moments and checks what a reopened store holds. `MQSTORE_OFFSETS_SEED`
//! replays a run (every run prints its seed), `MQSTORE_OFFSETS_ROUNDS` (default 6) scales it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Rng, count_from_env, seed_from_env, small_config};
use mqstore::consumer_offset::{CONFIG_DIR, OFFSET_BACKUP_FILE, OFFSET_FILE};
use mqstore::{CommitStatus, Error, GroupOffset, Message, MessageStore, StoreConfig};

/// Long enough that no periodic flush happens during a test that counts on explicit flushes.
const NEVER: Duration = Duration::from_secs(3600);

fn config(dir: &Path) -> StoreConfig {
    small_config(dir)
        .max_queues_per_topic(8)
        .consumer_offset_flush_interval(NEVER)
}

fn put_n(store: &MessageStore, topic: &str, queue_id: u32, n: usize) {
    for i in 0..n {
        store
            .put(Message::new(topic, queue_id, format!("m{i}").into_bytes()))
            .unwrap();
    }
}

fn offset_file(dir: &Path) -> std::path::PathBuf {
    dir.join(CONFIG_DIR).join(OFFSET_FILE)
}

#[test]
fn commit_read_back_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    put_n(&store, "orders", 0, 10);
    put_n(&store, "orders", 3, 4);
    put_n(&store, "audit", 1, 2);

    assert_eq!(store.committed_offset("g1", "orders", 0).unwrap(), None);
    assert_eq!(store.commit_offset("g1", "orders", 0, 7).unwrap(), CommitStatus::Ok);
    assert_eq!(store.commit_offset("g1", "orders", 3, 4).unwrap(), CommitStatus::Ok);
    assert_eq!(store.commit_offset("g1", "audit", 1, 0).unwrap(), CommitStatus::Ok);
    assert_eq!(store.commit_offset("g0", "orders", 0, 10).unwrap(), CommitStatus::Ok);
    // A later commit replaces the value, also backwards (a consumer reset).
    assert_eq!(store.commit_offset("g0", "orders", 0, 2).unwrap(), CommitStatus::Ok);
    assert_eq!(store.committed_offset("g1", "orders", 0).unwrap(), Some(7));
    assert_eq!(store.committed_offset("g0", "orders", 0).unwrap(), Some(2));
    assert_eq!(store.committed_offset("g1", "orders", 1).unwrap(), None);
    store.close().unwrap();

    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.consumer_groups(), vec!["g0".to_string(), "g1".to_string()]);
    let ok = |topic: &str, queue_id, offset| GroupOffset {
        topic: topic.to_string(),
        queue_id,
        offset,
        status: CommitStatus::Ok,
    };
    assert_eq!(
        store.group_offsets("g1").unwrap(),
        vec![ok("audit", 1, 0), ok("orders", 0, 7), ok("orders", 3, 4)]
    );
    assert_eq!(store.group_offsets("g0").unwrap(), vec![ok("orders", 0, 2)]);
    assert_eq!(store.group_offsets("nobody").unwrap(), vec![]);
    assert_eq!(store.committed_offset("g1", "orders", 3).unwrap(), Some(4));
    assert_eq!(
        store.committed_offset_status("g1", "orders", 0).unwrap(),
        Some(ok("orders", 0, 7))
    );
    assert_eq!(store.committed_offset_status("g1", "orders", 5).unwrap(), None);
    store.close().unwrap();
}

#[test]
fn halt_keeps_only_what_was_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    store.commit_offset("g", "t", 0, 5).unwrap();
    store.commit_offset("g", "t", 1, 6).unwrap();
    store.flush_offsets().unwrap();
    store.commit_offset("g", "t", 0, 50).unwrap();
    store.commit_offset("g", "t", 2, 7).unwrap();
    store.commit_offset("h", "t", 0, 1).unwrap();
    store.halt();
    assert!(matches!(store.commit_offset("g", "t", 0, 51), Err(Error::Closed)));
    assert!(matches!(store.flush_offsets(), Err(Error::Closed)));
    drop(store);

    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.committed_offset("g", "t", 0).unwrap(), Some(5));
    assert_eq!(store.committed_offset("g", "t", 1).unwrap(), Some(6));
    assert_eq!(store.committed_offset("g", "t", 2).unwrap(), None);
    assert_eq!(store.consumer_groups(), vec!["g".to_string()]);
    store.close().unwrap();
}

#[test]
fn invalid_group_topic_or_queue_is_refused_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    for group in ["", "a@b", "..", "../g", "a/b", "a\\b", "g\0", "gr oup"] {
        assert!(
            matches!(store.commit_offset(group, "t", 0, 1), Err(Error::InvalidGroup { .. })),
            "{group:?}"
        );
        assert!(matches!(
            store.committed_offset(group, "t", 0),
            Err(Error::InvalidGroup { .. })
        ));
        assert!(matches!(store.group_offsets(group), Err(Error::InvalidGroup { .. })));
    }
    assert!(matches!(
        store.commit_offset(&"g".repeat(256), "t", 0, 1),
        Err(Error::InvalidGroup { .. })
    ));
    for topic in ["", "a@b", "../t", "a/b", "a.b"] {
        assert!(
            matches!(store.commit_offset("g", topic, 0, 1), Err(Error::InvalidTopic { .. })),
            "{topic:?}"
        );
    }
    assert!(matches!(
        store.commit_offset("g", "t", 8, 1),
        Err(Error::QueueIdOutOfRange { queue_id: 8, max: 8 })
    ));
    assert!(matches!(
        store.committed_offset("g", "t", u32::MAX),
        Err(Error::QueueIdOutOfRange { .. })
    ));
    assert!(store.consumer_groups().is_empty());
    store.flush_offsets().unwrap();
    assert!(!offset_file(dir.path()).exists(), "nothing to write");
    store.close().unwrap();
    assert!(matches!(store.commit_offset("g", "t", 0, 1), Err(Error::Closed)));
}

#[test]
fn status_reports_offsets_outside_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    put_n(&store, "t", 0, 5);
    assert_eq!(store.commit_offset("g", "t", 0, 5).unwrap(), CommitStatus::Ok);
    assert_eq!(
        store.commit_offset("g", "t", 0, 6).unwrap(),
        CommitStatus::AboveMaxOffset { max: 5 }
    );
    // Recorded anyway, as RocketMQ does: the status is advice, not a refusal.
    assert_eq!(store.committed_offset("g", "t", 0).unwrap(), Some(6));
    // A queue that holds nothing: anything past 0 is ahead of it.
    assert_eq!(
        store.commit_offset("g", "t", 1, 3).unwrap(),
        CommitStatus::AboveMaxOffset { max: 0 }
    );
    assert_eq!(
        store.group_offsets("g").unwrap(),
        vec![
            GroupOffset {
                topic: "t".into(),
                queue_id: 0,
                offset: 6,
                status: CommitStatus::AboveMaxOffset { max: 5 }
            },
            GroupOffset {
                topic: "t".into(),
                queue_id: 1,
                offset: 3,
                status: CommitStatus::AboveMaxOffset { max: 0 }
            },
        ]
    );
    // The status follows the queue: once it has grown past the offset, the offset is fine.
    put_n(&store, "t", 0, 2);
    assert_eq!(
        store.committed_offset_status("g", "t", 0).unwrap().unwrap().status,
        CommitStatus::Ok
    );
    store.close().unwrap();
}

#[test]
fn offset_below_the_queue_minimum_is_reported_not_clamped() {
    let dir = tempfile::tempdir().unwrap();
    // 64 units per consume-queue file and 64 KiB commit-log segments (small_config): 150
    // messages of 600 bytes fill two queue files and part of a third, and two log segments.
    let store = MessageStore::open(config(dir.path())).unwrap();
    for _ in 0..150 {
        store.put(Message::new("t", 0, vec![7u8; 600])).unwrap();
    }
    store.commit_offset("g", "t", 0, 10).unwrap();
    store.close().unwrap();

    // What retention does: the oldest log segment goes, and the queue file wholly below it.
    std::fs::remove_file(dir.path().join("commitlog/00000000000000000000")).unwrap();
    std::fs::remove_file(dir.path().join("consumequeue/t/0/00000000000000000000")).unwrap();

    let store = MessageStore::open(config(dir.path())).unwrap();
    let min = store.min_offset("t", 0);
    assert!(
        min > 64 && min < 150,
        "the queue starts at the first record left: {min}"
    );
    let first = store.get("t", 0, min, 1).unwrap();
    assert_eq!(first.messages[0].queue_offset(), min);
    assert!(first.messages[0].commit_log_offset() >= 64 * 1024);
    let listed = store.group_offsets("g").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].offset, 10, "never clamped");
    assert_eq!(listed[0].status, CommitStatus::BelowMinOffset { min });
    assert_eq!(store.committed_offset("g", "t", 0).unwrap(), Some(10));
    assert_eq!(
        store.committed_offset_status("g", "t", 0).unwrap().unwrap().status,
        CommitStatus::BelowMinOffset { min }
    );
    assert_eq!(
        store.commit_offset("g", "t", 0, 20).unwrap(),
        CommitStatus::BelowMinOffset { min }
    );
    assert_eq!(store.commit_offset("g", "t", 0, min).unwrap(), CommitStatus::Ok);
    store.close().unwrap();
}

#[test]
fn periodic_flush_writes_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        MessageStore::open(config(dir.path()).consumer_offset_flush_interval(Duration::from_millis(20))).unwrap();
    store.commit_offset("g", "t", 0, 12345).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = offset_file(dir.path());
    loop {
        if std::fs::read_to_string(&path).is_ok_and(|s| s.contains("12345")) {
            break;
        }
        assert!(Instant::now() < deadline, "no periodic flush wrote the commit");
        std::thread::sleep(Duration::from_millis(10));
    }
    store.halt();
    drop(store);
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.committed_offset("g", "t", 0).unwrap(), Some(12345));
    store.close().unwrap();
}

#[test]
fn zero_flush_interval_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = MessageStore::open(config(dir.path()).consumer_offset_flush_interval(Duration::ZERO));
    assert!(matches!(r, Err(Error::InvalidConfig(_))));
}

#[test]
fn corrupt_offsets_fail_the_open_and_release_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    store.commit_offset("g", "t", 0, 1).unwrap();
    store.flush_offsets().unwrap();
    store.commit_offset("g", "t", 0, 2).unwrap();
    store.close().unwrap();
    let main = offset_file(dir.path());
    let bak = dir.path().join(CONFIG_DIR).join(OFFSET_BACKUP_FILE);

    // The main file damaged: the backup's (older) value, and the main file rewritten.
    std::fs::write(&main, b"{\"offsetTable\":{\"t@g\":{\"0\":2").unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.committed_offset("g", "t", 0).unwrap(), Some(1));
    store.close().unwrap();
    assert!(std::fs::read_to_string(&main).unwrap().contains("\"0\": 1"));

    // Both damaged: a typed error, not an empty table.
    std::fs::write(&main, b"\0\0\0\0").unwrap();
    std::fs::write(&bak, b"}").unwrap();
    match MessageStore::open(config(dir.path())) {
        Err(Error::CorruptOffsets { path, .. }) => assert_eq!(path, main),
        Err(e) => panic!("expected CorruptOffsets, got {e:?}"),
        Ok(_) => panic!("expected CorruptOffsets, the store opened"),
    }
    // The failed open left nothing locked: repaired by hand, the store opens.
    std::fs::write(&main, br#"{"offsetTable":{"t@g":{0:3}}}"#).unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.committed_offset("g", "t", 0).unwrap(), Some(3));
    store.close().unwrap();
}

#[test]
fn reads_a_rocketmq_offset_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(CONFIG_DIR)).unwrap();
    std::fs::write(
        offset_file(dir.path()),
        br#"{"offsetTable":{"TopicTest@group_a":{0:250,1:250,2:250,3:250},"%RETRY%group_a@group_a":{0:0}}}"#,
    )
    .unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.consumer_groups(), vec!["group_a".to_string()]);
    let listed = store.group_offsets("group_a").unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[0].topic, "%RETRY%group_a");
    for q in 0..4 {
        assert_eq!(store.committed_offset("group_a", "TopicTest", q).unwrap(), Some(250));
    }
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// SIGKILL
// ---------------------------------------------------------------------------------------------

const ENV_DIR: &str = "MQSTORE_OFFSETS_CHILD_DIR";
const ENV_BASE: &str = "MQSTORE_OFFSETS_CHILD_BASE";
const GROUPS: [&str; 3] = ["ga", "gb", "%RETRY%gc"];
const QUEUES: u32 = 2;
/// Values of round r are `r * ROUND_SPAN + i`, so rounds never overlap.
const ROUND_SPAN: u64 = 1 << 32;

fn child_config(dir: &Path) -> StoreConfig {
    // A short periodic flush races with the child's own flushes.
    small_config(dir).consumer_offset_flush_interval(Duration::from_millis(3))
}

/// Child mode: run by the parent with `MQSTORE_OFFSETS_CHILD_DIR` set; does nothing by hand.
/// Before committing value `v` to every (group, queue) it prints `C v`; after `flush_offsets`
/// returns it prints `F v`, the last value it had committed.
#[test]
#[ignore = "child process of the SIGKILL test: the parent runs it with MQSTORE_OFFSETS_CHILD_DIR set"]
fn offsets_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let base: u64 = std::env::var(ENV_BASE).expect("base").parse().expect("base");
    // A child whose parent died ends itself.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(0);
    });
    let store = MessageStore::open(child_config(Path::new(&dir))).expect("child open");
    let mut out = std::io::stdout().lock();
    // Ends whatever line the test harness started.
    writeln!(out).unwrap();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    for v in base + 1.. {
        writeln!(out, "C {v}").unwrap();
        out.flush().unwrap();
        for group in GROUPS {
            for q in 0..QUEUES {
                store.commit_offset(group, "topic", q, v).expect("commit");
            }
        }
        if v % 3 != 0 {
            store.flush_offsets().expect("flush");
            writeln!(out, "F {v}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn sigkill_keeps_flushed_or_later_offsets() {
    let seed = seed_from_env("MQSTORE_OFFSETS_SEED");
    let rounds = count_from_env("MQSTORE_OFFSETS_ROUNDS", 6);
    eprintln!("consumer offsets SIGKILL: MQSTORE_OFFSETS_SEED={seed} rounds={rounds}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    // What the store held after the previous round, per (group, queue).
    let mut previous: Vec<Option<u64>> = vec![None; GROUPS.len() * QUEUES as usize];
    for round in 1..=rounds {
        let base = round * ROUND_SPAN;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "offsets_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env(ENV_DIR, dir.path())
            .env(ENV_BASE, base.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| panic!("round {round}: no READY from the child: {e}"));
            if line == "READY" {
                break;
            }
            lines.push(line);
        }
        let delay = rng.range(0, 250);
        std::thread::sleep(Duration::from_millis(delay));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round}: the child ended before the kill"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());

        // A line cut by the kill cannot parse as a complete number of the right round, and a
        // value is announced before it is committed: the last `C` bounds what can be on disk.
        let values = |prefix: &str| {
            lines
                .iter()
                .filter_map(|l| l.strip_prefix(prefix)?.parse::<u64>().ok())
                .filter(|&v| v > base && v < base + ROUND_SPAN)
                .max()
        };
        let (flushed, committed) = (values("F "), values("C "));
        let store = MessageStore::open(small_config(dir.path())).unwrap();
        for (i, group) in GROUPS.iter().enumerate() {
            for q in 0..QUEUES {
                let slot = i * QUEUES as usize + q as usize;
                let got = store.committed_offset(group, "topic", q).unwrap();
                let ok = match (got, flushed) {
                    // Everything reported flushed is there, or something committed later.
                    (Some(v), Some(f)) => f <= v && committed.is_some_and(|c| v <= c),
                    (None, Some(_)) => false,
                    // Nothing flushed this round: the previous round's value, or one of this
                    // round's that a periodic flush wrote.
                    (v, None) => {
                        v == previous[slot] || committed.is_some_and(|c| v.is_some_and(|v| v > base && v <= c))
                    }
                };
                assert!(
                    ok,
                    "round {round} (seed {seed}, killed after {delay} ms): {group}/{q} holds {got:?}; \
                     last flushed {flushed:?}, last committed {committed:?}, previous {:?}",
                    previous[slot]
                );
                previous[slot] = got;
            }
        }
        eprintln!(
            "round {round}: killed after {delay} ms, last flushed {:?}, last committed {:?}",
            flushed.map(|v| v - base),
            committed.map(|v| v - base)
        );
        store.close().unwrap();
    }
}
