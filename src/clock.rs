//! The wall clock, as the store reads it: record timestamps, index file names, the names of
//! directories set aside in `lost+found/`, retention's ages. One place, so that the index and
//! the queues do not borrow it from the commit log.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in milliseconds since the Unix epoch (0 before it).
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
