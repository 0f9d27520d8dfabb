//! Synchronous flush with group commit, led by the producers themselves.
//!
//! A put that needs its bytes durable becomes the *leader* if no sync is running: it syncs
//! everything appended so far in one call, publishes the durable offset only after that call
//! returned, and wakes every waiter. Puts that arrive while a sync runs wait; when it ends, those
//! it did not cover elect the next leader among themselves, whose one sync covers them all: that
//! is the group. No flusher thread sits between a put and its sync, so a lone producer pays one
//! sync and no thread hand-off, and many producers share each sync.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{FlushOutcome, FlushTarget, Flusher};

/// The group-commit flusher of [`FlushPolicy::sync`](super::FlushPolicy::sync).
pub struct GroupCommit {
    timeout: Duration,
    target: OnceLock<Arc<dyn FlushTarget>>,
    state: Mutex<State>,
    /// Wakes waiting puts when a sync ends.
    done: Condvar,
    /// Durable offset, readable without the lock for the fast path.
    durable: AtomicU64,
}

#[derive(Default)]
struct State {
    /// A leader is syncing now.
    syncing: bool,
    failed: bool,
    stopped: bool,
    /// Syncs completed (for tests and stats).
    syncs: u64,
}

impl GroupCommit {
    /// A group-commit flusher whose waiters give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        GroupCommit {
            timeout,
            target: OnceLock::new(),
            state: Mutex::new(State::default()),
            done: Condvar::new(),
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
        let mut state = self.state.lock();
        loop {
            if self.durable.load(Ordering::Acquire) >= end_offset {
                return FlushOutcome::Durable;
            }
            if state.failed {
                return FlushOutcome::Failed;
            }
            if state.stopped {
                return FlushOutcome::TimedOut;
            }
            if !state.syncing {
                // Lead: one sync for everything appended so far, this put's bytes included.
                state.syncing = true;
                drop(state);
                let result = target.flush(0);
                state = self.state.lock();
                state.syncing = false;
                match result {
                    Ok(durable) => {
                        // Published only after the sync returned: no waiter is ever woken for
                        // bytes not yet on stable storage.
                        self.durable.fetch_max(durable, Ordering::AcqRel);
                        state.syncs += 1;
                    }
                    Err(e) => {
                        // After a failed fsync the kernel may have dropped the dirty pages:
                        // nothing pending can be acknowledged any more ("fsyncgate").
                        tracing::error!(error = %e, "commit-log sync failed; the store stops acknowledging");
                        state.failed = true;
                    }
                }
                self.done.notify_all();
                continue;
            }
            if self.done.wait_until(&mut state, deadline).timed_out() {
                return if self.durable.load(Ordering::Acquire) >= end_offset {
                    FlushOutcome::Durable
                } else {
                    FlushOutcome::TimedOut
                };
            }
        }
    }

    fn stop(&self) {
        let mut state = self.state.lock();
        state.stopped = true;
        self.done.notify_all();
    }
}
