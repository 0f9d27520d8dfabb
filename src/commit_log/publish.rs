//! Publishing appends in log order.
//!
//! An append reserves its bytes under the append lock and fills them outside it, so several
//! producers fill their records at once and finish in any order. What they publish must still
//! grow as one prefix of the log: readers, the dispatcher, flushes and replication read up to
//! the published end, and a crash must never leave an acknowledged record behind a hole that
//! recovery stops at. So each reservation is published once the log is published exactly up to
//! its start, by its own producer, which waits for that first: the put returns only when every
//! record before it is whole, as it did when the copy ran under the lock.
//!
//! The wait is a short spin (a predecessor is normally a few hundred nanoseconds from done),
//! then a sleep on a condition variable that publishers notify only when someone sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

use super::CommitLog;
use crate::segment::{Backend, Reservation};

/// Spins before a waiter sleeps.
const SPINS: u32 = 200;

/// Producers waiting for the published end to reach their reservation.
#[derive(Default)]
pub(super) struct PublishWait {
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl<B: Backend> CommitLog<B> {
    /// Publishes `reservation`, filled, once everything before it is published; `timestamp`:
    /// the store timestamp of its last record (`None` for a filler).
    pub(super) fn publish_in_order(&self, reservation: Reservation<B::Storage>, timestamp: Option<u64>) {
        let (start, end) = (reservation.start(), reservation.end());
        self.wait_published(start);
        if reservation.publish().is_err() {
            // The log is published up to `start`, so the segment is published up to the
            // reservation: only a bug in the order of reservations gets here.
            unreachable!("commit-log reservation at {start} published out of order");
        }
        // Before the end moves: a flush reads the timestamp first, then the end, and promises
        // the timestamp durable once that end is.
        if let Some(timestamp) = timestamp {
            self.last_timestamp.store(timestamp, Ordering::Release);
        }
        // SeqCst, with the load of `sleepers` after it, pairs with a sleeper's SeqCst increment
        // and load of the end: one of the two sees the other's write, so no wake-up is lost.
        self.written.store(end, Ordering::SeqCst);
        if self.publish_wait.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.publish_wait.lock.lock();
            self.publish_wait.wake.notify_all();
        }
    }

    /// Waits until the log is published up to at least `offset`.
    pub(super) fn wait_published(&self, offset: u64) {
        for _ in 0..SPINS {
            if self.written.load(Ordering::Acquire) >= offset {
                return;
            }
            std::hint::spin_loop();
        }
        let wait = &self.publish_wait;
        let mut guard = wait.lock.lock();
        wait.sleepers.fetch_add(1, Ordering::SeqCst);
        while self.written.load(Ordering::SeqCst) < offset {
            wait.wake.wait(&mut guard);
        }
        wait.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A reservation being filled. Dropped unfilled (the filling code panicked), it is published
/// anyway, so that the producers after it do not wait forever, and the log refuses appends
/// from then on: recovery stops at the damaged record, so nothing after it may be acknowledged.
pub(super) struct Filling<'a, B: Backend> {
    log: &'a CommitLog<B>,
    reservation: Option<Reservation<B::Storage>>,
}

impl<'a, B: Backend> Filling<'a, B> {
    pub(super) fn new(log: &'a CommitLog<B>, reservation: Reservation<B::Storage>) -> Self {
        Filling {
            log,
            reservation: Some(reservation),
        }
    }

    /// The reserved bytes.
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        self.reservation
            .as_mut()
            .expect("a reservation is held until published")
            .bytes_mut()
    }

    /// Where the reservation starts.
    pub(super) fn start(&self) -> u64 {
        self.reservation
            .as_ref()
            .expect("a reservation is held until published")
            .start()
    }

    /// Publishes the filled reservation in order.
    pub(super) fn publish(mut self, timestamp: Option<u64>) {
        if let Some(reservation) = self.reservation.take() {
            self.log.publish_in_order(reservation, timestamp);
        }
    }
}

impl<B: Backend> Drop for Filling<'_, B> {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            tracing::error!(
                start = reservation.start(),
                "an append was abandoned half-written; the store stops accepting writes"
            );
            self.log.flush_failed.store(true, Ordering::Release);
            self.log.abandoned_at.fetch_min(reservation.start(), Ordering::AcqRel);
            self.log.publish_in_order(reservation, None);
        }
    }
}
