//! Where recovery starts checking the log: one rule, which recovery acts on and `verify`
//! reports against (a store it calls consistent is one recovery would open as it is).

use crate::checkpoint::Loaded;
use crate::codec::{self, Frame, Verify};

use super::scan::next_valid_record;

/// Segments RocketMQ's normal (clean) recovery scans from the end of the log.
pub const ROCKETMQ_NORMAL_SEGMENTS: usize = 3;

/// The first record in the bytes of a segment starting at `base` that is valid at its own
/// position, checked as `verify` says.
pub fn first_valid_record(data: &[u8], base: u64, verify: Verify) -> Option<u64> {
    match codec::decode(data, verify) {
        Ok(Frame::Record(v)) if v.physical_offset == base => Some(base),
        _ => next_valid_record(data, base, 0, verify),
    }
}

/// Whether a segment holds anything written in its own life: something at its start, and a
/// record of its own position somewhere. A recycled segment prepared ahead holds an earlier
/// life's bytes, none of them a record of its own position: it holds nothing.
pub fn holds_records(data: &[u8], base: u64, verify: Verify) -> bool {
    data.get(..8).is_some_and(|h| h.iter().any(|&b| b != 0)) && first_valid_record(data, base, verify).is_some()
}

/// The store timestamp of the record at the start of a segment's bytes, if one is there (the
/// framing checked, as RocketMQ's abnormal recovery reads it).
pub fn first_timestamp(data: &[u8]) -> Option<i64> {
    match codec::decode(data, Verify::Framing) {
        Ok(Frame::Record(v)) if v.store_timestamp != 0 => Some(v.store_timestamp),
        _ => None,
    }
}

/// Where recovery starts: (index of the segment to scan from, the durable offset below which
/// damage is damage rather than a torn tail, the rule's name). `starts`: the segments' start
/// offsets; `limit`: the end of the last one; `last_written`: the index of the last segment
/// that [holds records](holds_records); `rocketmq_store`: records carry only the body CRC (a
/// store RocketMQ created); `first_timestamp`: [`first_timestamp`] of segment `i`.
pub fn recovery_start(
    starts: &[u64],
    limit: u64,
    last_written: usize,
    checkpoint: &Loaded,
    clean: bool,
    rocketmq_store: bool,
    first_timestamp: impl Fn(usize) -> Option<i64>,
) -> (usize, u64, &'static str) {
    let index_of = |offset: u64| starts.iter().rposition(|&s| s <= offset).unwrap_or(0).min(last_written);
    match checkpoint {
        Loaded::Exact(cp) => {
            let flushed = cp.log_flushed.min(limit);
            (index_of(cp.dispatched.min(flushed)), flushed, "mqstore checkpoint")
        }
        // A store mqstore created always has a valid slot unless the page was damaged; then its
        // unprotected header may be garbage too (huge timestamps would start the scan far too
        // late): start from the first segment.
        Loaded::Timestamps(_) if !rocketmq_store => (0, 0, "checkpoint damaged: from the first segment"),
        Loaded::Timestamps(_) if clean => (
            last_written.saturating_sub(ROCKETMQ_NORMAL_SEGMENTS - 1),
            0,
            "RocketMQ normal recovery: the last three segments",
        ),
        Loaded::Timestamps(cp) => {
            // RocketMQ's abnormal recovery: the newest segment whose first record is older than
            // the checkpoint's minimum timestamp minus three seconds.
            let min_ts = cp.min_timestamp();
            let idx = (0..=last_written)
                .rev()
                .find(|&i| i < starts.len() && first_timestamp(i).is_some_and(|ts| ts <= min_ts));
            (idx.unwrap_or(0), 0, "RocketMQ checkpoint timestamps")
        }
        Loaded::Missing => (0, 0, "no checkpoint: from the first segment"),
    }
}
