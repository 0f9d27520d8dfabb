//! The wall clock, as the store reads it: record timestamps, index file names, the names of
//! directories set aside in `lost+found/`, retention's ages. One place, so that the index and
//! the queues do not borrow it from the commit log.
//!
//! A put reads a monotonic clock twice (its start, which also gives its store time, and its end,
//! for the latency `stats()` reports): [`Instant`] here is `quanta`'s, which reads the CPU's
//! time-stamp counter where the CPU says it is invariant and the OS clock elsewhere. Two
//! readings and their difference take 31 ns here against 50 ns with `std::time::Instant`, whose
//! `clock_gettime` scales the same counter with more steps (see docs/performance.md).

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) use quanta::Instant;

/// Calibrates the time-stamp counter against the OS clock (once per process, under a
/// millisecond here), so that the first put does not pay for it.
pub(crate) fn calibrate() {
    let _ = Instant::now();
}

/// Wall-clock time in milliseconds since the Unix epoch (0 before it).
pub(crate) fn now_millis() -> u64 {
    since_epoch().as_millis() as u64
}

fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// How long a thread's anchor serves before the wall clock is read again: a step of the wall
/// clock (an operator's or NTP's) shows in store times within this long. Between steps the two
/// clocks tick together (on Linux NTP slews the monotonic clock with the wall clock).
const ANCHOR_LIFE: Duration = Duration::from_secs(1);

thread_local! {
    /// A monotonic instant and the wall-clock time read with it, to the nanosecond, so that a
    /// time counted from it is never a millisecond short of a wall-clock reading.
    static ANCHOR: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
}

/// The wall-clock milliseconds at `now`, an instant the caller has just read: a put reads the
/// clock once, for both its latency and its store time. Counted from this thread's anchor, so
/// that most calls read no clock at all (the wall clock is read once per [`ANCHOR_LIFE`]).
/// Store times only need to be the wall clock to the millisecond, and the commit log keeps them
/// from going backwards along the log whatever each thread's anchor says.
pub(crate) fn millis_at(now: Instant) -> u64 {
    ANCHOR.with(|anchor| {
        if let Some((at, wall)) = anchor.get() {
            match now.checked_duration_since(at) {
                Some(since) if since < ANCHOR_LIFE => return (wall + since).as_millis() as u64,
                Some(_) => {}
                // An instant from before the anchor: read the wall clock, keep the anchor.
                None => return now_millis(),
            }
        }
        let wall = since_epoch();
        anchor.set(Some((now, wall)));
        wall.as_millis() as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_at_follows_the_wall_clock() {
        for _ in 0..3 {
            let before = now_millis();
            let at = millis_at(Instant::now());
            let after = now_millis();
            // Within the anchor's life the monotonic clock counts from a wall reading; both
            // clocks tick together. The anchor's wall time is read a moment after its instant,
            // so a count from it may run that moment ahead, across a millisecond at worst.
            assert!(before <= at && at <= after + 1, "{before} <= {at} <= {after}");
            std::thread::sleep(Duration::from_millis(400));
        }
    }

    #[test]
    fn an_instant_before_the_anchor_reads_the_wall_clock_and_keeps_the_anchor() {
        let early = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let _ = millis_at(Instant::now());
        let before = now_millis();
        let at = millis_at(early);
        assert!(before <= at && at <= now_millis());
        // Had the early instant become the anchor, with the wall time read now, the times
        // counted from it would run 20 ms ahead.
        let before = now_millis();
        let at = millis_at(Instant::now());
        assert!(before <= at && at <= now_millis() + 1, "{before} <= {at}");
    }
}
