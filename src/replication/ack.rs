//! The master's view of its slaves' acknowledgements, and the puts waiting for them (RocketMQ's
//! GroupTransferService).
//!
//! Every put of a `SyncMaster` registers its end offset and a [`Completion`]; every
//! acknowledgement recomputes the *confirmed* offset (the offset that at least `required`
//! connected slaves hold) and completes, in one pass outside the lock, every put it covers: many
//! waiters share one ack, as they share one sync under group commit. A service thread completes
//! the puts whose timeout passes. Nothing here touches the append lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::ReplicationOutcome;
use crate::flush::Completion;

/// One connected slave.
#[derive(Clone, Debug)]
struct Replica {
    id: u64,
    name: String,
    acked: u64,
}

#[derive(Default)]
struct State {
    replicas: Vec<Replica>,
    next_id: u64,
    /// Offset at least `required` replicas hold.
    confirmed: u64,
    /// Waiting puts by (end offset, sequence).
    waiters: BTreeMap<(u64, u64), Completion<ReplicationOutcome>>,
    /// The same puts by deadline (all share one timeout, so arrival order is deadline order).
    deadlines: VecDeque<(Instant, (u64, u64))>,
    seq: u64,
    stop: bool,
}

struct Shared {
    required: usize,
    max_gap: u64,
    state: Mutex<State>,
    /// Wakes the deadline thread.
    timer: Condvar,
}

/// Acknowledgements and waiting puts of one master.
pub(crate) struct AckTracker {
    shared: Arc<Shared>,
    timer_thread: Mutex<Option<JoinHandle<()>>>,
}

/// A snapshot of one connected slave, for stats and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The name its transport gave it (the built-in one: the peer's address).
    pub name: String,
    /// Everything below this commit-log offset is on the slave.
    pub acked_offset: u64,
}

impl AckTracker {
    /// A tracker needing `required` slaves, counting those within `max_gap` bytes as in sync.
    pub(crate) fn new(required: usize, max_gap: u64) -> Self {
        AckTracker {
            shared: Arc::new(Shared {
                required: required.max(1),
                max_gap,
                state: Mutex::new(State::default()),
                timer: Condvar::new(),
            }),
            timer_thread: Mutex::new(None),
        }
    }

    /// Registers a connected slave that holds everything below `acked`; returns its id.
    pub(crate) fn connect(&self, name: String, acked: u64) -> u64 {
        let mut state = self.shared.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.replicas.push(Replica { id, name, acked });
        let done = self.shared.recompute(&mut state);
        drop(state);
        complete_all(done, ReplicationOutcome::Replicated);
        id
    }

    /// Forgets a slave (its connection ended). Puts waiting for it keep waiting for another
    /// until their timeout.
    pub(crate) fn disconnect(&self, id: u64) {
        let mut state = self.shared.state.lock();
        state.replicas.retain(|r| r.id != id);
        // The confirmed offset may fall; waiters already completed stay completed.
        let done = self.shared.recompute(&mut state);
        drop(state);
        complete_all(done, ReplicationOutcome::Replicated);
    }

    /// Records that slave `id` holds everything below `offset`. Acknowledgements never go
    /// backwards; a lower one is ignored (the caller validates the protocol).
    pub(crate) fn ack(&self, id: u64, offset: u64) {
        let mut state = self.shared.state.lock();
        let Some(r) = state.replicas.iter_mut().find(|r| r.id == id) else {
            return;
        };
        if offset <= r.acked {
            return;
        }
        r.acked = offset;
        // Fast path: nothing waits, or the kth ack did not move.
        let done = self.shared.recompute(&mut state);
        drop(state);
        complete_all(done, ReplicationOutcome::Replicated);
    }

    /// Slaves connected and within the gap of `master_end`.
    pub(crate) fn in_sync(&self, master_end: u64) -> usize {
        let state = self.shared.state.lock();
        self.shared.in_sync(&state, master_end)
    }

    /// Every connected slave.
    pub(crate) fn replicas(&self) -> Vec<ReplicaStatus> {
        self.shared
            .state
            .lock()
            .replicas
            .iter()
            .map(|r| ReplicaStatus {
                name: r.name.clone(),
                acked_offset: r.acked,
            })
            .collect()
    }

    /// The offset at least the required number of slaves hold.
    #[cfg(test)]
    pub(crate) fn confirmed(&self) -> u64 {
        self.shared.state.lock().confirmed
    }

    /// Reports through `done` when enough slaves hold everything below `end`: at once if they
    /// do, or if too few are in sync to ever say so in time (`NoSlave`); else when an
    /// acknowledgement covers it, or `TimedOut` after `timeout`.
    pub(crate) fn wait(&self, end: u64, timeout: Duration, done: Completion<ReplicationOutcome>) {
        let mut state = self.shared.state.lock();
        if state.confirmed >= end {
            drop(state);
            done.complete(ReplicationOutcome::Replicated);
            return;
        }
        if state.stop {
            drop(state);
            done.complete(ReplicationOutcome::TimedOut);
            return;
        }
        if self.shared.in_sync(&state, end) < self.shared.required {
            drop(state);
            done.complete(ReplicationOutcome::NoSlave);
            return;
        }
        let key = (end, state.seq);
        state.seq += 1;
        state.waiters.insert(key, done);
        let wake_timer = state.deadlines.is_empty();
        state.deadlines.push_back((Instant::now() + timeout, key));
        drop(state);
        if wake_timer {
            self.start_timer();
            self.shared.timer.notify_one();
        }
    }

    fn start_timer(&self) {
        let mut thread = self.timer_thread.lock();
        if thread.is_some() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        match std::thread::Builder::new()
            .name("mqstore-repl-acks".into())
            .spawn(move || shared.expire_loop())
        {
            Ok(t) => *thread = Some(t),
            // Without the thread, waiters still complete on acks, or at stop.
            Err(e) => tracing::error!(error = %e, "could not start the replication timeout thread"),
        }
    }

    /// Completes every waiter with `TimedOut` and stops the timer thread; later waits time out
    /// at once.
    pub(crate) fn stop(&self) {
        let waiters = {
            let mut state = self.shared.state.lock();
            state.stop = true;
            state.deadlines.clear();
            std::mem::take(&mut state.waiters)
        };
        self.shared.timer.notify_all();
        complete_all(waiters.into_values().collect(), ReplicationOutcome::TimedOut);
        if let Some(t) = self.timer_thread.lock().take() {
            let _ = t.join();
        }
    }

    /// Undoes `stop`: the tracker serves a new term as master.
    pub(crate) fn restart(&self) {
        let mut state = self.shared.state.lock();
        state.stop = false;
        state.replicas.clear();
        state.confirmed = 0;
    }
}

impl Shared {
    fn in_sync(&self, state: &State, master_end: u64) -> usize {
        state
            .replicas
            .iter()
            .filter(|r| master_end.saturating_sub(r.acked) <= self.max_gap)
            .count()
    }

    /// Recomputes the confirmed offset; returns the waiters it now covers.
    fn recompute(&self, state: &mut State) -> Vec<Completion<ReplicationOutcome>> {
        let mut acks: Vec<u64> = state.replicas.iter().map(|r| r.acked).collect();
        let confirmed = if acks.len() < self.required {
            0
        } else {
            // The `required`-th highest ack.
            acks.sort_unstable_by(|a, b| b.cmp(a));
            acks[self.required - 1]
        };
        state.confirmed = confirmed;
        if state.waiters.first_key_value().is_none_or(|(k, _)| k.0 > confirmed) {
            return Vec::new();
        }
        let rest = state.waiters.split_off(&(confirmed + 1, 0));
        let covered = std::mem::replace(&mut state.waiters, rest);
        covered.into_values().collect()
    }

    fn expire_loop(&self) {
        let mut state = self.state.lock();
        loop {
            if state.stop {
                return;
            }
            let now = Instant::now();
            let mut expired = Vec::new();
            while let Some(&(deadline, key)) = state.deadlines.front() {
                if deadline > now {
                    break;
                }
                state.deadlines.pop_front();
                if let Some(done) = state.waiters.remove(&key) {
                    expired.push(done);
                }
            }
            if !expired.is_empty() {
                drop(state);
                complete_all(expired, ReplicationOutcome::TimedOut);
                state = self.state.lock();
                continue;
            }
            match state.deadlines.front() {
                Some(&(deadline, _)) => {
                    self.timer.wait_until(&mut state, deadline);
                }
                None => self.timer.wait(&mut state),
            }
        }
    }
}

fn complete_all(done: Vec<Completion<ReplicationOutcome>>, outcome: ReplicationOutcome) {
    for d in done {
        d.complete(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flush::Pending;

    fn wait(t: &AckTracker, end: u64, timeout: Duration) -> Pending<ReplicationOutcome> {
        let (done, pending) = Pending::pair();
        t.wait(end, timeout, done);
        pending
    }

    #[test]
    fn no_slave_is_reported_at_once() {
        let t = AckTracker::new(1, 1000);
        assert_eq!(
            wait(&t, 10, Duration::from_secs(5)).outcome(),
            Some(ReplicationOutcome::NoSlave)
        );
        // A slave too far behind is not in sync either.
        t.connect("far".into(), 0);
        assert_eq!(
            wait(&t, 5000, Duration::from_secs(5)).outcome(),
            Some(ReplicationOutcome::NoSlave)
        );
        t.stop();
    }

    #[test]
    fn one_ack_completes_every_covered_waiter_and_no_other() {
        let t = AckTracker::new(1, 1 << 20);
        let id = t.connect("s".into(), 0);
        let waiting: Vec<_> = (1..=10).map(|i| wait(&t, i * 100, Duration::from_secs(30))).collect();
        assert!(waiting.iter().all(|p| p.outcome().is_none()));
        t.ack(id, 500);
        for (i, p) in waiting.iter().enumerate() {
            let end = (i as u64 + 1) * 100;
            let expect = (end <= 500).then_some(ReplicationOutcome::Replicated);
            assert_eq!(p.outcome(), expect, "waiter ending at {end}");
        }
        // A lower ack changes nothing; an ack past everything completes the rest.
        t.ack(id, 200);
        assert_eq!(t.confirmed(), 500);
        t.ack(id, 1000);
        assert!(
            waiting
                .iter()
                .all(|p| p.outcome() == Some(ReplicationOutcome::Replicated))
        );
        t.stop();
    }

    #[test]
    fn two_required_waits_for_the_second_highest_ack() {
        let t = AckTracker::new(2, 1 << 20);
        let a = t.connect("a".into(), 0);
        let b = t.connect("b".into(), 0);
        let p = wait(&t, 100, Duration::from_secs(30));
        t.ack(a, 150);
        assert_eq!(p.outcome(), None, "one of two slaves is not enough");
        t.ack(b, 120);
        assert_eq!(p.outcome(), Some(ReplicationOutcome::Replicated));
        assert_eq!(t.confirmed(), 120);
        t.disconnect(b);
        assert_eq!(t.confirmed(), 0);
        t.stop();
    }

    #[test]
    fn unacknowledged_waiters_time_out() {
        let t = AckTracker::new(1, 1 << 20);
        let _id = t.connect("silent".into(), 0);
        let p = wait(&t, 100, Duration::from_millis(20));
        assert_eq!(
            p.wait_until(Instant::now() + Duration::from_secs(10)),
            Some(ReplicationOutcome::TimedOut)
        );
        t.stop();
    }

    #[test]
    fn stop_completes_every_waiter() {
        let t = AckTracker::new(1, 1 << 20);
        let _id = t.connect("s".into(), 0);
        let p = wait(&t, 100, Duration::from_secs(60));
        t.stop();
        assert_eq!(p.outcome(), Some(ReplicationOutcome::TimedOut));
        assert_eq!(
            wait(&t, 1, Duration::from_secs(60)).outcome(),
            Some(ReplicationOutcome::TimedOut)
        );
    }
}
