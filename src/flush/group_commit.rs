//! Synchronous flush with group commit.
//!
//! Puts record the end offset they need durable and sleep; one flusher thread takes the highest
//! requested offset, syncs everything appended so far in one call, publishes the durable offset
//! only after that call returned, and wakes every waiter it covered. Producers that arrive while
//! a sync runs are covered by the next one: that is the group.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{FlushOutcome, FlushTarget, Flusher};

/// The group-commit flusher of [`FlushPolicy::sync`](super::FlushPolicy::sync).
pub struct GroupCommit {
    timeout: Duration,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the flusher thread.
    work: Condvar,
    /// Wakes waiting puts.
    done: Condvar,
    /// Durable offset, readable without the lock for the fast path.
    durable: AtomicU64,
}

#[derive(Default)]
struct State {
    requested: u64,
    failed: bool,
    stop: bool,
    /// Number of syncs completed (exposed for tests and stats).
    syncs: u64,
}

impl GroupCommit {
    /// A group-commit flusher whose waiters give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        GroupCommit {
            timeout,
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                done: Condvar::new(),
                durable: AtomicU64::new(0),
            }),
            thread: Mutex::new(None),
        }
    }

    /// The durable offset this flusher has confirmed.
    pub fn durable_offset(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Number of syncs done so far.
    pub fn syncs(&self) -> u64 {
        self.shared.state.lock().syncs
    }
}

fn run(shared: &Shared, target: &dyn FlushTarget) {
    let mut state = shared.state.lock();
    loop {
        while !state.stop && (state.failed || state.requested <= shared.durable.load(Ordering::Acquire)) {
            shared.work.wait(&mut state);
        }
        if state.stop {
            return;
        }
        drop(state);
        // Everything appended up to now is covered, whatever was requested: later waiters whose
        // bytes are already in get their wake-up from this same sync.
        let result = target.flush(0);
        state = shared.state.lock();
        match result {
            Ok(durable) => {
                // Publish only after the sync call returned: no waiter is ever woken for bytes
                // that were not yet on stable storage.
                shared.durable.fetch_max(durable, Ordering::AcqRel);
                state.syncs += 1;
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the dirty pages: nothing
                // pending can be acknowledged any more (see the "fsyncgate" discussions).
                tracing::error!(error = %e, "commit-log sync failed; the store stops acknowledging");
                state.failed = true;
            }
        }
        shared.done.notify_all();
    }
}

impl Flusher for GroupCommit {
    fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()> {
        let mut thread = self.thread.lock();
        if thread.is_some() {
            return Err(io::Error::other("group commit already started"));
        }
        self.shared.durable.store(target.flushed_offset(), Ordering::Release);
        let shared = Arc::clone(&self.shared);
        *thread = Some(
            std::thread::Builder::new()
                .name("mqstore-group-commit".into())
                .spawn(move || run(&shared, target.as_ref()))?,
        );
        Ok(())
    }

    fn after_append(&self, end_offset: u64) -> FlushOutcome {
        let shared = &self.shared;
        if shared.durable.load(Ordering::Acquire) >= end_offset {
            return FlushOutcome::Durable;
        }
        let deadline = Instant::now() + self.timeout;
        let mut state = shared.state.lock();
        if state.requested < end_offset {
            state.requested = end_offset;
            shared.work.notify_one();
        }
        loop {
            if shared.durable.load(Ordering::Acquire) >= end_offset {
                return FlushOutcome::Durable;
            }
            if state.failed {
                return FlushOutcome::Failed;
            }
            if state.stop {
                return FlushOutcome::TimedOut;
            }
            if shared.done.wait_until(&mut state, deadline).timed_out() {
                return if shared.durable.load(Ordering::Acquire) >= end_offset {
                    FlushOutcome::Durable
                } else {
                    FlushOutcome::TimedOut
                };
            }
        }
    }

    fn stop(&self) {
        {
            let mut state = self.shared.state.lock();
            state.stop = true;
            self.shared.work.notify_all();
            self.shared.done.notify_all();
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}
