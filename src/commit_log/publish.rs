//! Publishing appends in log order.
//!
//! An append reserves its bytes under the append lock and fills them outside it, so several
//! producers fill their records at once and finish in any order. What is published must still
//! grow as one prefix of the log: readers, the dispatcher, flushes and replication read up to
//! the published end. So every reservation takes a number in a sequence when it is made (under
//! the append lock, which is all that numbering needs), and whoever finishes filling hands it in
//! at its place: the producer that completes the prefix publishes it, its own reservation and
//! every one finished after it, in order. No producer waits for another to publish its own, and
//! none is woken to do it: with more producers than cores, a producer preempted in the middle of
//! its fill holds up publication, never the others' appends.
//!
//! A put under the async policies returns once its record is filled, published or not: its
//! bytes are in the page cache, whole, and a crash before the records in front of it are filled
//! leaves holes that recovery skips (`recovery.rs`), keeping it. A put whose policy waits for a
//! flush first waits for its record to be published ([`CommitLog::wait_published`]), since only
//! published bytes are flushed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use super::CommitLog;
use crate::segment::{Backend, Reservation, Storage};

/// Spins before a waiter sleeps.
const SPINS: u32 = 100;

/// Reservations in log order, from the first not yet published.
pub(super) struct Sequence<S: Storage> {
    state: Mutex<Slots<S>>,
    /// Notified (under `state`) whenever the published end moves.
    published: Condvar,
    /// End of the last reservation made, published or not.
    reserved: AtomicU64,
    /// The number the next reservation takes. Read and advanced only under the append lock: a
    /// load and a store, no lock of its own (taking the slots' lock here as well cost an
    /// append a second lock).
    next: AtomicU64,
}

struct Slots<S: Storage> {
    /// Number of the first slot: the first reservation not yet published.
    first: u64,
    /// `None` while its reservation is being filled (the slots of those being filled after the
    /// last one handed in are not there yet); then the reservation and the store timestamp of
    /// its last record (`None` for a filler).
    slots: VecDeque<Option<(Reservation<S>, Option<u64>)>>,
}

impl<S: Storage> Sequence<S> {
    pub(super) fn new(end: u64) -> Self {
        Sequence {
            state: Mutex::new(Slots {
                first: 0,
                slots: VecDeque::with_capacity(64),
            }),
            published: Condvar::new(),
            reserved: AtomicU64::new(end),
            next: AtomicU64::new(0),
        }
    }

    /// End of the last reservation made.
    pub(super) fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }

    /// The log's end was set directly (recovery, replication, truncation), with nothing in
    /// flight.
    pub(super) fn reset(&self, end: u64) {
        debug_assert!({
            let state = self.state.lock();
            state.slots.is_empty() && state.first == self.next.load(Ordering::Relaxed)
        });
        self.reserved.store(end, Ordering::Release);
    }
}

impl<B: Backend> CommitLog<B> {
    /// Gives `reservation`, made under the append lock (still held), the next number in the
    /// sequence.
    pub(super) fn enter(&self, reservation: Reservation<B::Storage>) -> Filling<'_, B> {
        let seq = self.sequence.next.load(Ordering::Relaxed);
        self.sequence.next.store(seq + 1, Ordering::Relaxed);
        self.sequence.reserved.store(reservation.end(), Ordering::Release);
        Filling {
            log: self,
            seq,
            reservation: Some(reservation),
        }
    }

    /// Hands in a filled reservation and publishes the prefix it completes, if it does.
    fn hand_in(&self, seq: u64, reservation: Reservation<B::Storage>, timestamp: Option<u64>) {
        let mut state = self.sequence.state.lock();
        // Every reservation before `first` is published, this one included only once handed in.
        let at = (seq - state.first) as usize;
        if at == 0 && state.slots.is_empty() {
            // The front, with none handed in behind it (one producer, always): published at
            // once, without a slot.
            state.first += 1;
            self.publish_one(reservation, timestamp);
        } else {
            if at >= state.slots.len() {
                state.slots.resize_with(at + 1, || None);
            }
            state.slots[at] = Some((reservation, timestamp));
            if at != 0 {
                return;
            }
            while let Some(Some(_)) = state.slots.front() {
                let (reservation, timestamp) = state.slots.pop_front().flatten().expect("the front slot is filled");
                state.first += 1;
                self.publish_one(reservation, timestamp);
            }
        }
        self.sequence.published.notify_all();
    }

    /// Publishes the reservation at the front of the sequence. Called under the slots' lock.
    fn publish_one(&self, reservation: Reservation<B::Storage>, timestamp: Option<u64>) {
        let end = reservation.end();
        if let Err(reservation) = reservation.publish() {
            // Every reservation before it in the segment is published (they come first in the
            // sequence): only a bug in the order of reservations gets here.
            unreachable!(
                "commit-log reservation at {} published out of order",
                reservation.start()
            );
        }
        self.written.store(end, Ordering::Release);
        // After the end moved: a flush reads the timestamp first, then the end, and promises the
        // timestamp durable once that end is; a timestamp seen must bring its record's end with
        // it.
        if let Some(timestamp) = timestamp {
            self.last_timestamp.store(timestamp, Ordering::Release);
        }
    }

    /// Waits until the log is published up to at least `offset` (a reservation's end, or
    /// below).
    pub fn wait_published(&self, offset: u64) {
        for _ in 0..SPINS {
            if self.written.load(Ordering::Acquire) >= offset {
                return;
            }
            std::hint::spin_loop();
        }
        let mut state = self.sequence.state.lock();
        while self.written.load(Ordering::Acquire) < offset {
            self.sequence.published.wait(&mut state);
        }
    }
}

/// A reservation being filled. Dropped unfilled (the filling code panicked), it is handed in
/// anyway, so that publication goes on past it, and the log refuses appends from then on.
pub(super) struct Filling<'a, B: Backend> {
    log: &'a CommitLog<B>,
    seq: u64,
    reservation: Option<Reservation<B::Storage>>,
}

impl<B: Backend> Filling<'_, B> {
    /// The reserved bytes.
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        self.reservation
            .as_mut()
            .expect("a reservation is held until handed in")
            .bytes_mut()
    }

    /// Hands the filled reservation in; `timestamp`: the store timestamp of its last record
    /// (`None` for a filler).
    pub(super) fn finish(mut self, timestamp: Option<u64>) {
        if let Some(reservation) = self.reservation.take() {
            self.log.hand_in(self.seq, reservation, timestamp);
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
            self.log.abandoned.store(true, Ordering::Release);
            self.log.hand_in(self.seq, reservation, None);
        }
    }
}
