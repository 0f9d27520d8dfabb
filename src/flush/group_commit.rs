//! Synchronous flush with group commit, led by the producers themselves.
//!
//! A put that needs its bytes durable becomes the *leader* if no sync is running: it syncs
//! everything appended so far in one call, publishes the durable offset only after that call
//! returned, and wakes the waiters. Puts that arrive while a sync runs wait; the next sync, led
//! by one of them, covers them all: that is the group. No flusher thread sits between a put and
//! its sync, so a lone producer pays one sync and no thread hand-off, and many producers share
//! each sync.
//!
//! Waking is targeted. Each waiter parks its own thread; when a sync ends, its leader first
//! unparks one waiter the sync did not cover, which leads the next sync at once, then unparks
//! exactly the waiters the sync covered. A condition variable would instead wake every waiter
//! through one mutex, one after another, and the next sync would start only when its leader's
//! turn came: with dozens of producers on few cores that chain, not the disk, set the latency.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{FlushOutcome, FlushTarget, Flusher};

/// The group-commit flusher of [`FlushPolicy::sync`](super::FlushPolicy::sync).
pub struct GroupCommit {
    timeout: Duration,
    target: OnceLock<Arc<dyn FlushTarget>>,
    state: Mutex<State>,
    /// Durable offset, readable without the lock for the fast path.
    durable: AtomicU64,
}

/// A put waiting for its bytes to become durable.
struct Waiter {
    /// Its end offset: durable once `durable >= end`.
    end: u64,
    thread: Thread,
}

#[derive(Default)]
struct State {
    /// A leader is syncing now.
    syncing: bool,
    failed: bool,
    stopped: bool,
    /// Syncs completed (for tests and stats).
    syncs: u64,
    /// Parked puts, in arrival order.
    waiters: Vec<Waiter>,
    /// An empty vector kept for the next wake-up, so that waking allocates nothing.
    spare: Vec<Waiter>,
}

impl GroupCommit {
    /// A group-commit flusher whose waiters give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        GroupCommit {
            timeout,
            target: OnceLock::new(),
            state: Mutex::new(State::default()),
            durable: AtomicU64::new(0),
        }
    }

    /// The durable offset this flusher has confirmed.
    pub fn durable_offset(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Number of syncs done so far.
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Runs one sync as leader and wakes the waiters it concerns. Called with `syncing` set.
    fn lead(&self, target: &dyn FlushTarget) {
        let result = target.flush(0);
        let mut state = self.state.lock();
        state.syncing = false;
        let durable = match result {
            Ok(durable) => {
                // Published only after the sync returned: no waiter is ever woken for bytes not
                // yet on stable storage.
                state.syncs += 1;
                self.durable.fetch_max(durable, Ordering::AcqRel).max(durable)
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the dirty pages: nothing
                // pending can be acknowledged any more ("fsyncgate").
                tracing::error!(error = %e, "commit-log sync failed; the store stops acknowledging");
                state.failed = true;
                u64::MAX
            }
        };
        let mut covered = std::mem::take(&mut state.spare);
        covered.extend(state.waiters.extract_if(.., |w| w.end <= durable));
        // The oldest uncovered waiter leads next; wake it first so the disk idles least.
        let next = state.waiters.first().map(|w| w.thread.clone());
        drop(state);
        if let Some(next) = next {
            next.unpark();
        }
        for w in covered.drain(..) {
            w.thread.unpark();
        }
        self.state.lock().spare = covered;
    }
}

impl Flusher for GroupCommit {
    fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()> {
        self.durable.store(target.flushed_offset(), Ordering::Release);
        self.target
            .set(target)
            .map_err(|_| io::Error::other("group commit already started"))
    }

    fn after_append(&self, end_offset: u64) -> FlushOutcome {
        if self.durable.load(Ordering::Acquire) >= end_offset {
            return FlushOutcome::Durable;
        }
        let Some(target) = self.target.get() else {
            return FlushOutcome::Failed;
        };
        let deadline = Instant::now() + self.timeout;
        let me = std::thread::current();
        let mut state = self.state.lock();
        loop {
            // Whoever wakes this thread has removed it from the waiters, or it timed out or woke
            // spuriously: either way it is not listed while it checks.
            if let Some(i) = state.waiters.iter().position(|w| w.thread.id() == me.id()) {
                state.waiters.remove(i);
            }
            if self.durable.load(Ordering::Acquire) >= end_offset {
                return FlushOutcome::Durable;
            }
            if state.failed {
                return FlushOutcome::Failed;
            }
            let now = Instant::now();
            // Also when this thread's own syncs do not reach its bytes: never spin.
            if state.stopped || now >= deadline {
                return FlushOutcome::TimedOut;
            }
            if !state.syncing {
                // Lead: one sync for everything appended so far, this put's bytes included.
                state.syncing = true;
                drop(state);
                self.lead(target.as_ref());
                state = self.state.lock();
                continue;
            }
            state.waiters.push(Waiter {
                end: end_offset,
                thread: me.clone(),
            });
            drop(state);
            // An unpark that comes before this park makes it return at once: no wake-up is lost
            // between listing this waiter and parking.
            std::thread::park_timeout(deadline - now);
            state = self.state.lock();
        }
    }

    fn stop(&self) {
        let mut state = self.state.lock();
        state.stopped = true;
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        for w in waiters {
            w.thread.unpark();
        }
    }
}
