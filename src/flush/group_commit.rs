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
//!
//! Puts that do not wait ([`after_append_async`](Flusher::after_append_async)) list a
//! [`Completion`] instead of a thread. No producer is there to lead their sync, so a service
//! thread, started with the first of them, leads when one is listed and no sync runs, and
//! completes with `TimedOut` those whose timeout passes. It can do the latter only between the
//! syncs it leads: a put covered by a sync that outlasted its timeout gets that sync's (true)
//! outcome, later than its timeout. Completions are reported outside the lock.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Completion, FlushOutcome, FlushTarget, Flusher};

/// The group-commit flusher of [`FlushPolicy::sync`](super::FlushPolicy::sync).
pub struct GroupCommit {
    inner: Arc<Inner>,
    /// The service thread, joined at `stop`.
    service_handle: Mutex<Option<JoinHandle<()>>>,
}

/// What the service thread shares with the producers.
struct Inner {
    timeout: Duration,
    target: OnceLock<Arc<dyn FlushTarget>>,
    state: Mutex<State>,
    /// Durable offset, readable without the lock for the fast path.
    durable: AtomicU64,
    /// The thread that leads syncs for puts that do not wait, once one came.
    service: OnceLock<Thread>,
}

/// A put waiting for its bytes to become durable.
struct Waiter {
    /// Its end offset: durable once `durable >= end`.
    end: u64,
    wake: Wake,
}

/// How a waiter learns its outcome.
enum Wake {
    /// A parked producer thread: unparked, it reads the outcome itself.
    Thread(Thread),
    /// A put that did not wait: completed with the outcome, or with `TimedOut` at its deadline.
    Done(Completion, Instant),
}

impl Waiter {
    fn is_thread(&self, id: std::thread::ThreadId) -> bool {
        matches!(&self.wake, Wake::Thread(t) if t.id() == id)
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.wake {
            Wake::Thread(_) => None,
            Wake::Done(_, deadline) => Some(*deadline),
        }
    }
}

#[derive(Default)]
struct State {
    /// A leader is syncing now.
    syncing: bool,
    failed: bool,
    stopped: bool,
    /// Syncs completed (for tests and stats).
    syncs: u64,
    /// Waiting puts, in arrival order.
    waiters: Vec<Waiter>,
    /// An empty vector kept for the next wake-up, so that waking allocates nothing.
    spare: Vec<Waiter>,
}

impl GroupCommit {
    /// A group-commit flusher whose waiters give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        GroupCommit {
            inner: Arc::new(Inner {
                timeout,
                target: OnceLock::new(),
                state: Mutex::new(State::default()),
                durable: AtomicU64::new(0),
                service: OnceLock::new(),
            }),
            service_handle: Mutex::new(None),
        }
    }

    /// The durable offset this flusher has confirmed.
    pub fn durable_offset(&self) -> u64 {
        self.inner.durable.load(Ordering::Acquire)
    }

    /// Number of syncs done so far.
    pub fn syncs(&self) -> u64 {
        self.inner.state.lock().syncs
    }

    /// The service thread, started on first use; `None` if it could not be started.
    fn service(&self) -> Option<&Thread> {
        if let Some(thread) = self.inner.service.get() {
            return Some(thread);
        }
        let mut handle = self.service_handle.lock();
        if self.inner.service.get().is_none() {
            let inner = Arc::clone(&self.inner);
            match std::thread::Builder::new()
                .name("mqstore-group-commit".to_string())
                .spawn(move || inner.serve())
            {
                Ok(h) => {
                    // Set just after the thread starts: its loop looks at the waiters before it
                    // first parks, so an unpark missed meanwhile loses nothing.
                    let _ = self.inner.service.set(h.thread().clone());
                    *handle = Some(h);
                }
                Err(e) => tracing::error!(error = %e, "cannot start the group-commit service thread"),
            }
        }
        self.inner.service.get()
    }
}

impl Inner {
    /// Runs one sync as leader and wakes the waiters it concerns. Called with `syncing` set.
    fn lead(&self, target: &dyn FlushTarget) {
        let result = target.flush(0);
        let mut state = self.state.lock();
        state.syncing = false;
        let (durable, outcome) = match result {
            Ok(durable) => {
                // Published only after the sync returned: no waiter is ever woken for bytes not
                // yet on stable storage.
                state.syncs += 1;
                (
                    self.durable.fetch_max(durable, Ordering::AcqRel).max(durable),
                    FlushOutcome::Durable,
                )
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the dirty pages: nothing
                // pending can be acknowledged any more ("fsyncgate").
                tracing::error!(error = %e, "commit-log sync failed; the store stops acknowledging");
                state.failed = true;
                (u64::MAX, FlushOutcome::Failed)
            }
        };
        let mut covered = std::mem::take(&mut state.spare);
        covered.extend(state.waiters.extract_if(.., |w| w.end <= durable));
        // The oldest uncovered waiter leads next; wake it first so the disk idles least. A put
        // that does not wait has its sync led by the service thread.
        let next = state.waiters.first().map(|w| match &w.wake {
            Wake::Thread(t) => Some(t.clone()),
            Wake::Done(..) => None,
        });
        drop(state);
        match next {
            Some(Some(thread)) => thread.unpark(),
            Some(None) => self.wake_service(),
            None => {}
        }
        for w in covered.drain(..) {
            match w.wake {
                Wake::Thread(thread) => thread.unpark(),
                Wake::Done(done, _) => done.complete(outcome),
            }
        }
        self.state.lock().spare = covered;
    }

    fn wake_service(&self) {
        if let Some(service) = self.service.get() {
            service.unpark();
        }
    }

    /// The service thread: leads a sync whenever a put that does not wait is listed and no sync
    /// runs, and times such puts out at their deadlines.
    fn serve(&self) {
        let Some(target) = self.target.get() else {
            return;
        };
        loop {
            let mut state = self.state.lock();
            let now = Instant::now();
            let expired: Vec<Waiter> = state
                .waiters
                .extract_if(.., |w| w.deadline().is_some_and(|d| d <= now))
                .collect();
            let stopped = state.stopped;
            // Any such put, not only the oldest waiter: a parked producer handed the lead may
            // have timed out and left instead of leading.
            let lead =
                !stopped && !state.syncing && !state.failed && state.waiters.iter().any(|w| w.deadline().is_some());
            if lead {
                state.syncing = true;
            }
            let next_deadline = state.waiters.iter().filter_map(Waiter::deadline).min();
            drop(state);
            for w in expired {
                if let Wake::Done(done, _) = w.wake {
                    done.complete(FlushOutcome::TimedOut);
                }
            }
            if stopped {
                return;
            }
            if lead {
                self.lead(target.as_ref());
                continue;
            }
            // Woken by a put that does not wait, a leader handing over, or `stop`; a wake-up
            // that came before this park makes it return at once.
            match next_deadline {
                Some(deadline) => std::thread::park_timeout(deadline.saturating_duration_since(now)),
                None => std::thread::park(),
            }
        }
    }
}

impl Flusher for GroupCommit {
    fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()> {
        let inner = &self.inner;
        inner.durable.store(target.flushed_offset(), Ordering::Release);
        inner
            .target
            .set(target)
            .map_err(|_| io::Error::other("group commit already started"))
    }

    fn after_append(&self, end_offset: u64) -> FlushOutcome {
        let inner = &*self.inner;
        if inner.durable.load(Ordering::Acquire) >= end_offset {
            return FlushOutcome::Durable;
        }
        let Some(target) = inner.target.get() else {
            return FlushOutcome::Failed;
        };
        let deadline = Instant::now() + inner.timeout;
        let me = std::thread::current();
        let mut state = inner.state.lock();
        loop {
            // Whoever wakes this thread has removed it from the waiters, or it timed out or woke
            // spuriously: either way it is not listed while it checks.
            if let Some(i) = state.waiters.iter().position(|w| w.is_thread(me.id())) {
                state.waiters.remove(i);
            }
            if inner.durable.load(Ordering::Acquire) >= end_offset {
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
                inner.lead(target.as_ref());
                state = inner.state.lock();
                continue;
            }
            state.waiters.push(Waiter {
                end: end_offset,
                wake: Wake::Thread(me.clone()),
            });
            drop(state);
            // An unpark that comes before this park makes it return at once: no wake-up is lost
            // between listing this waiter and parking.
            std::thread::park_timeout(deadline - now);
            state = inner.state.lock();
        }
    }

    fn after_append_async(&self, end_offset: u64, done: Completion) {
        let inner = &*self.inner;
        if inner.durable.load(Ordering::Acquire) >= end_offset {
            return done.complete(FlushOutcome::Durable);
        }
        if inner.target.get().is_none() {
            return done.complete(FlushOutcome::Failed);
        }
        let Some(service) = self.service() else {
            // No thread to lead its sync: wait here rather than never.
            return done.complete(self.after_append(end_offset));
        };
        let mut state = inner.state.lock();
        // A sync may have ended since the first look; its leader published under this lock.
        if inner.durable.load(Ordering::Acquire) >= end_offset {
            drop(state);
            return done.complete(FlushOutcome::Durable);
        }
        if state.failed {
            drop(state);
            return done.complete(FlushOutcome::Failed);
        }
        if state.stopped {
            drop(state);
            return done.complete(FlushOutcome::TimedOut);
        }
        // The service thread must hear of this put if no sync runs (to lead one), or if no other
        // such put is listed (to time it out: it sleeps until the earliest deadline it knows,
        // and deadlines come in listing order).
        let tell = !state.syncing || !state.waiters.iter().any(|w| w.deadline().is_some());
        state.waiters.push(Waiter {
            end: end_offset,
            wake: Wake::Done(done, Instant::now() + inner.timeout),
        });
        drop(state);
        if tell {
            service.unpark();
        }
    }

    fn stop(&self) {
        let mut state = self.inner.state.lock();
        state.stopped = true;
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        for w in waiters {
            match w.wake {
                Wake::Thread(thread) => thread.unpark(),
                Wake::Done(done, _) => done.complete(FlushOutcome::TimedOut),
            }
        }
        self.inner.wake_service();
        if let Some(handle) = self.service_handle.lock().take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;
    use crate::flush::Pending;

    /// A log whose sync takes a moment and covers what was written when it began.
    #[derive(Default)]
    struct SlowLog {
        written: AtomicU64,
        synced: AtomicU64,
    }

    impl FlushTarget for SlowLog {
        fn written_offset(&self) -> u64 {
            self.written.load(SeqCst)
        }
        fn flushed_offset(&self) -> u64 {
            self.synced.load(SeqCst)
        }
        fn commit(&self) -> u64 {
            self.written_offset()
        }
        fn flush(&self, _least_pages: u64) -> io::Result<u64> {
            let covered = self.written.load(SeqCst);
            std::thread::sleep(Duration::from_micros(300));
            self.synced.fetch_max(covered, SeqCst);
            Ok(covered)
        }
    }

    /// A waker that checks, at the moment a completion wakes it, that a returned sync covers
    /// its put.
    struct Probe {
        log: Arc<SlowLog>,
        end: u64,
        woken: AtomicBool,
        early: Arc<AtomicU64>,
    }

    impl Wake for Probe {
        fn wake(self: Arc<Self>) {
            if self.log.synced.load(SeqCst) < self.end {
                self.early.fetch_add(1, SeqCst);
            }
            self.woken.store(true, SeqCst);
        }
    }

    #[test]
    fn pending_puts_complete_only_after_a_sync_covering_them_returned() {
        let log = Arc::new(SlowLog::default());
        let group = GroupCommit::new(Duration::from_secs(10));
        group.start(Arc::clone(&log) as Arc<dyn FlushTarget>).unwrap();
        let early = Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            // Producers that wait lead syncs too, interleaved with the service thread's.
            s.spawn(|| {
                for _ in 0..200 {
                    let end = log.written.fetch_add(100, SeqCst) + 100;
                    assert_eq!(group.after_append(end), FlushOutcome::Durable);
                    assert!(log.synced.load(SeqCst) >= end);
                }
            });
            let mut waiting = Vec::new();
            for _ in 0..2000 {
                let end = log.written.fetch_add(100, SeqCst) + 100;
                let (done, pending) = Pending::pair();
                group.after_append_async(end, done);
                let probe = Arc::new(Probe {
                    log: Arc::clone(&log),
                    end,
                    woken: AtomicBool::new(false),
                    early: Arc::clone(&early),
                });
                let waker = Waker::from(Arc::clone(&probe));
                match pending.poll(&mut Context::from_waker(&waker)) {
                    Poll::Ready(outcome) => {
                        assert_eq!(outcome, FlushOutcome::Durable);
                        assert!(log.synced.load(SeqCst) >= end);
                    }
                    Poll::Pending => waiting.push((pending, probe)),
                }
            }
            assert!(!waiting.is_empty(), "every put was durable at once: nothing was tested");
            for (pending, probe) in waiting {
                assert_eq!(pending.wait(), FlushOutcome::Durable);
                // The completer records the outcome, then wakes the future outside its lock:
                // `wait` may return between the two.
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while !probe.woken.load(SeqCst) && std::time::Instant::now() < deadline {
                    std::thread::yield_now();
                }
                assert!(probe.woken.load(SeqCst), "completed without waking its future");
            }
        });
        assert_eq!(
            early.load(SeqCst),
            0,
            "a put completed before a sync covering it returned"
        );
        assert!(group.syncs() < 1100, "{} syncs for 2200 puts", group.syncs());
        group.stop();
    }

    #[test]
    fn stop_completes_pending_puts_and_refuses_new_ones() {
        let log = Arc::new(SlowLog::default());
        let group = GroupCommit::new(Duration::from_secs(10));
        group.start(Arc::clone(&log) as Arc<dyn FlushTarget>).unwrap();
        let pending: Vec<_> = (0..50)
            .map(|_| {
                let end = log.written.fetch_add(100, SeqCst) + 100;
                let (done, pending) = Pending::pair();
                group.after_append_async(end, done);
                pending
            })
            .collect();
        group.stop();
        for p in &pending {
            assert!(matches!(p.wait(), FlushOutcome::Durable | FlushOutcome::TimedOut));
        }
        let end = log.written.fetch_add(100, SeqCst) + 100;
        let (done, late) = Pending::pair();
        group.after_append_async(end, done);
        assert_eq!(late.wait(), FlushOutcome::TimedOut);
    }
}
