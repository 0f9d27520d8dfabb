//! A put's durability reported later: the flusher holds a [`Completion`], the caller of
//! [`MessageStore::put_async`](crate::MessageStore::put_async) a [`Pending`] that blocks on it
//! or is polled as a future.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

use super::FlushOutcome;

/// What both ends share: the outcome once known, and who to wake for it.
struct Shared {
    slot: Mutex<Slot>,
    done: Condvar,
}

struct Slot {
    outcome: Option<FlushOutcome>,
    waker: Option<Waker>,
}

impl Shared {
    /// Records `outcome` unless one is already there, and wakes the waiting end.
    fn finish(&self, outcome: FlushOutcome) {
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

/// A flusher's handle on one asynchronous append: report what became of its durability with
/// [`complete`](Self::complete), once, from any thread, whenever it is known (see
/// [`Flusher::after_append_async`](super::Flusher::after_append_async)).
///
/// Dropped without being completed (a flusher that gave up on it, say), it reports
/// [`FlushOutcome::TimedOut`]: the bytes are appended, their durability unconfirmed.
pub struct Completion(Option<Arc<Shared>>);

impl Completion {
    /// Reports the outcome.
    pub fn complete(mut self, outcome: FlushOutcome) {
        if let Some(shared) = self.0.take() {
            shared.finish(outcome);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.finish(FlushOutcome::TimedOut);
        }
    }
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Completion")
    }
}

/// The waiting end of a [`Completion`].
pub(crate) struct Pending(Arc<Shared>);

impl Pending {
    /// A completion for a flusher and the pending outcome it reports to.
    pub(crate) fn pair() -> (Completion, Pending) {
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
    pub(crate) fn outcome(&self) -> Option<FlushOutcome> {
        self.0.slot.lock().outcome
    }

    /// Blocks until the outcome is reported.
    pub(crate) fn wait(&self) -> FlushOutcome {
        let mut slot = self.0.slot.lock();
        loop {
            if let Some(outcome) = slot.outcome {
                return outcome;
            }
            self.0.done.wait(&mut slot);
        }
    }

    /// The outcome if reported; otherwise registers `cx`'s waker for it.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<FlushOutcome> {
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
