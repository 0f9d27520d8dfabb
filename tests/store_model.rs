//! Random sequences of put / batch put / get / filtered get / close-and-reopen, checked against
//! an in-memory model of what each queue must hold.

mod common;

use std::collections::HashMap;

use mqstore::{GetStatus, Message, MessageStore, StoreConfig, TagFilter};
use proptest::prelude::*;

const TOPICS: [&str; 3] = ["a", "b-2", "%c"];
const TAGS: [&str; 3] = ["x", "y", "z"];

#[derive(Clone, Debug)]
enum Op {
    Put {
        topic: usize,
        queue: u32,
        len: usize,
        tag: usize,
    },
    Batch {
        topic: usize,
        queue: u32,
        n: usize,
        len: usize,
    },
    Get {
        topic: usize,
        queue: u32,
        offset: u64,
        max: u32,
    },
    GetTag {
        topic: usize,
        queue: u32,
        tag: usize,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..3u32, 0..3000usize, 0..3usize).prop_map(|(topic, queue, len, tag)| Op::Put { topic, queue, len, tag }),
        2 => (0..3usize, 0..3u32, 1..6usize, 0..800usize).prop_map(|(topic, queue, n, len)| Op::Batch { topic, queue, n, len }),
        4 => (0..3usize, 0..3u32, 0..40u64, 1..8u32).prop_map(|(topic, queue, offset, max)| Op::Get { topic, queue, offset, max }),
        1 => (0..3usize, 0..3u32, 0..3usize).prop_map(|(topic, queue, tag)| Op::GetTag { topic, queue, tag }),
        1 => Just(Op::Reopen),
    ]
}

type Model = HashMap<(usize, u32), Vec<(Vec<u8>, usize)>>;

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(16 * 1024)
        .consume_queue_units_per_segment(5)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MessageStore::open(config(dir.path())).unwrap();
    let mut model: Model = HashMap::new();
    let mut counter = 0u64;
    for op in ops {
        match op {
            Op::Put { topic, queue, len, tag } => {
                counter += 1;
                let body = common::body(counter, len);
                let r = store
                    .put(Message::new(TOPICS[topic], queue, body.clone()).with_tags(TAGS[tag]))
                    .unwrap();
                let q = model.entry((topic, queue)).or_default();
                prop_assert_eq!(r.queue_offset, q.len() as u64);
                q.push((body, tag));
            }
            Op::Batch { topic, queue, n, len } => {
                let msgs: Vec<(Vec<u8>, usize)> = (0..n)
                    .map(|k| {
                        counter += 1;
                        (common::body(counter, len + k), k % 3)
                    })
                    .collect();
                let rs = store
                    .put_batch(
                        msgs.iter()
                            .map(|(b, t)| Message::new(TOPICS[topic], queue, b.clone()).with_tags(TAGS[*t]))
                            .collect(),
                    )
                    .unwrap();
                let q = model.entry((topic, queue)).or_default();
                for (k, r) in rs.iter().enumerate() {
                    prop_assert_eq!(r.queue_offset, (q.len() + k) as u64);
                }
                // A batch is contiguous in the log.
                for w in rs.windows(2) {
                    prop_assert_eq!(w[0].commit_log_offset + w[0].wrote_bytes as u64, w[1].commit_log_offset);
                }
                q.extend(msgs);
            }
            Op::Get {
                topic,
                queue,
                offset,
                max,
            } => {
                let g = store.get(TOPICS[topic], queue, offset, max).unwrap();
                let q = model.get(&(topic, queue)).map_or(&[][..], |v| v.as_slice());
                let n = q.len() as u64;
                prop_assert_eq!(g.max_offset, n);
                let expected_status = if n == 0 {
                    GetStatus::NoMessageInQueue
                } else if offset == n {
                    GetStatus::OffsetOverflowOne
                } else if offset > n {
                    GetStatus::OffsetOverflowBadly
                } else {
                    GetStatus::Found
                };
                prop_assert_eq!(g.status, expected_status);
                if expected_status == GetStatus::Found {
                    let want = (n - offset).min(max as u64);
                    prop_assert_eq!(g.messages.len() as u64, want);
                    prop_assert_eq!(g.next_offset, offset + want);
                    for (k, m) in g.messages.iter().enumerate() {
                        let (body, tag) = &q[offset as usize + k];
                        prop_assert_eq!(m.body(), body.as_slice());
                        prop_assert_eq!(m.tags(), Some(TAGS[*tag]));
                        prop_assert_eq!(m.queue_offset(), offset + k as u64);
                    }
                }
            }
            Op::GetTag { topic, queue, tag } => {
                let q = model.get(&(topic, queue)).map_or(&[][..], |v| v.as_slice());
                if q.is_empty() {
                    continue;
                }
                let filter = TagFilter::parse(TAGS[tag]);
                let mut got = Vec::new();
                let mut offset = 0;
                while offset < q.len() as u64 {
                    let g = store.get_filtered(TOPICS[topic], queue, offset, 4, &filter).unwrap();
                    prop_assert!(matches!(g.status, GetStatus::Found | GetStatus::NoMatchedMessage));
                    prop_assert!(g.next_offset > offset);
                    got.extend(g.messages.iter().map(|m| m.queue_offset()));
                    offset = g.next_offset;
                }
                let want: Vec<u64> = q
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, t))| *t == tag)
                    .map(|(i, _)| i as u64)
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::Reopen => {
                store.close().unwrap();
                drop(store);
                store = MessageStore::open(config(dir.path())).unwrap();
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
