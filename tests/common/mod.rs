//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use mqstore::{GetStatus, MessageStore, StoreConfig, StoredMessage};

/// A small-segment configuration, so tests cross segment boundaries often.
pub fn small_config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(64 * 1024)
        .consume_queue_units_per_segment(64)
}

/// Reads every message of a queue from its min offset, paging with `next_offset`.
pub fn read_queue(store: &MessageStore, topic: &str, queue_id: u32) -> Vec<StoredMessage> {
    assert!(store.wait_dispatched(Duration::from_secs(10)), "dispatch stalled");
    let mut out = Vec::new();
    let mut offset = store.min_offset(topic, queue_id);
    loop {
        let g = store.get(topic, queue_id, offset, 32).expect("get");
        match g.status {
            GetStatus::Found => {
                assert!(g.next_offset > offset, "next_offset must advance");
                out.extend(g.messages);
                offset = g.next_offset;
            }
            GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue => return out,
            other => panic!("unexpected status {other:?} at offset {offset}"),
        }
    }
}

/// A deterministic body for message `i` of length `len`.
pub fn body(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i.wrapping_mul(131) as usize + j * 7) as u8).collect()
}
