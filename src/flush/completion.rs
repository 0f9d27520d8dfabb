//! An outcome reported later: the service that learns it (a flusher, the replication ack
//! tracker) holds a [`Completion`], the caller of
//! [`MessageStore::put_async`](crate::MessageStore::put_async) a [`Pending`] that blocks on it
//! or is polled as a future.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

use super::FlushOutcome;

/// An outcome a [`Completion`] can carry: what to report if it is dropped unreported.
pub trait Outcome: Copy + Send + 'static {
    /// Reported by a completion dropped without being completed: the service gave up on it.
    const ABANDONED: Self;
}

impl Outcome for FlushOutcome {
    /// The bytes are appended, their durability unconfirmed.
    const ABANDONED: Self = FlushOutcome::TimedOut;
}

/// What both ends share: the outcome once known, and who to wake for it.
struct Shared<T> {
    slot: Mutex<Slot<T>>,
    done: Condvar,
}

struct Slot<T> {
    outcome: Option<T>,
    waker: Option<Waker>,
}

impl<T: Outcome> Shared<T> {
    /// Records `outcome` unless one is already there, and wakes the waiting end.
    fn finish(&self, outcome: T) {
        let waker = {
            let mut slot = self.slot.lock();
            if slot.outcome.is_some() {
                return;
            }
            slot.outcome = Some(outcome);
            slot.waker.take()
        };
        self.done.notify_all();
        // Outside the lock: a waker may run the caller's executor code.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A service's handle on one asynchronous outcome (by default a flush's, see
/// [`Flusher::after_append_async`](super::Flusher::after_append_async)): report it with
/// [`complete`](Self::complete), once, from any thread, whenever it is known.
///
/// Dropped without being completed (a flusher that gave up on it, say), it reports
/// [`Outcome::ABANDONED`]: for a flush, [`FlushOutcome::TimedOut`] (the bytes are appended, their
/// durability unconfirmed).
pub struct Completion<T: Outcome = FlushOutcome>(Option<Arc<Shared<T>>>);

impl<T: Outcome> Completion<T> {
    /// Reports the outcome.
    pub fn complete(mut self, outcome: T) {
        if let Some(shared) = self.0.take() {
            shared.finish(outcome);
        }
    }
}

impl<T: Outcome> Drop for Completion<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.finish(T::ABANDONED);
        }
    }
}

impl<T: Outcome> std::fmt::Debug for Completion<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Completion")
    }
}

/// The waiting end of a [`Completion`].
pub(crate) struct Pending<T: Outcome = FlushOutcome>(Arc<Shared<T>>);

impl<T: Outcome> Pending<T> {
    /// A completion for a service and the pending outcome it reports to.
    pub(crate) fn pair() -> (Completion<T>, Pending<T>) {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                outcome: None,
                waker: None,
            }),
            done: Condvar::new(),
        });
        (Completion(Some(Arc::clone(&shared))), Pending(shared))
    }

    /// The outcome, if reported.
    pub(crate) fn outcome(&self) -> Option<T> {
        self.0.slot.lock().outcome
    }

    /// Blocks until the outcome is reported.
    pub(crate) fn wait(&self) -> T {
        let mut slot = self.0.slot.lock();
        loop {
            if let Some(outcome) = slot.outcome {
                return outcome;
            }
            self.0.done.wait(&mut slot);
        }
    }

    /// Blocks until the outcome is reported or `deadline` passes (`None` then).
    #[cfg(test)]
    pub(crate) fn wait_until(&self, deadline: std::time::Instant) -> Option<T> {
        let mut slot = self.0.slot.lock();
        loop {
            if let Some(outcome) = slot.outcome {
                return Some(outcome);
            }
            if self.0.done.wait_until(&mut slot, deadline).timed_out() {
                return slot.outcome;
            }
        }
    }

    /// The outcome if reported; otherwise registers `cx`'s waker for it.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.slot.lock();
        if let Some(outcome) = slot.outcome {
            return Poll::Ready(outcome);
        }
        match &mut slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
