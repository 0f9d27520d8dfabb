//! Eight producer threads over shared queues, with readers running at the same time: every
//! message is read back exactly once, queue offsets are dense, commit-log offsets unique.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{read_queue, small_config};
use mqstore::{FlushPolicy, GetStatus, Message, MessageStore, PutStatus};

const THREADS: u64 = 8;
const PER_THREAD: u64 = 1500;
const QUEUES: u32 = 4;

fn run(policy: FlushPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MessageStore::open(small_config(dir.path()).flush_policy(policy)).unwrap());
    let stop_readers = Arc::new(AtomicBool::new(false));
    // Readers tail queue 0 while producers write, checking order and density as they go.
    let reader = {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop_readers);
        std::thread::spawn(move || {
            let mut next = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let g = store.get("conc", 0, next, 16).unwrap();
                if g.status == GetStatus::Found {
                    for m in &g.messages {
                        assert_eq!(m.queue_offset(), next, "reader saw a gap or reordering");
                        next += 1;
                    }
                } else {
                    // Caught up (or, before the first put of the queue, nothing there yet).
                    assert!(
                        matches!(g.status, GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue),
                        "{:?}",
                        g.status
                    );
                    std::thread::yield_now();
                }
            }
            next
        })
    };
    let results: Vec<Vec<(u64, u32, u64, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let q = ((t + i) % QUEUES as u64) as u32;
                            let body = format!("{t}:{i}").into_bytes();
                            let r = store.put(Message::new("conc", q, body)).unwrap();
                            assert_eq!(r.status, PutStatus::Ok);
                            (t, q, r.queue_offset, r.commit_log_offset)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    stop_readers.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    let mut commit_offsets = HashSet::new();
    let mut per_queue: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (_, q, qo, co) in results.iter().flatten() {
        assert!(commit_offsets.insert(*co), "commit-log offset {co} handed out twice");
        per_queue.entry(*q).or_default().push(*qo);
    }
    for (q, mut offsets) in per_queue {
        offsets.sort_unstable();
        let dense: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, dense, "queue {q} offsets are not dense");
    }
    // Every message read back exactly once, with the body its producer wrote.
    let mut seen = HashSet::new();
    for q in 0..QUEUES {
        for m in read_queue(&store, "conc", q) {
            let body = String::from_utf8(m.body().to_vec()).unwrap();
            let (t, i) = body.split_once(':').unwrap();
            let (t, i): (u64, u64) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(((t + i) % QUEUES as u64) as u32, q, "message in the wrong queue");
            assert!(seen.insert((t, i)), "message {t}:{i} read twice");
        }
    }
    assert_eq!(seen.len() as u64, THREADS * PER_THREAD);
    store.close().unwrap();
}

#[test]
fn eight_threads_async() {
    run(FlushPolicy::asynchronous());
}

#[test]
fn eight_threads_sync_group_commit() {
    run(FlushPolicy::sync());
}
